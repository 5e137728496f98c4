/*
 * ir.c — the engine graph's bookkeeping: tensors, attributes, constants, consumers, freeing.
 *
 * The graph owns every string and payload it points to. Tensor lookups by name are linear: the
 * importer keeps its own hash index while it builds the graph, and the passes work on indices.
 */
#include "engine/ir.h"

#include "common/common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ir_add_tensor(struct ir_graph *g, const char *name)
{
    if (g->n_tensors == g->cap_tensors) {
        int cap = g->cap_tensors ? g->cap_tensors * 2 : 64;
        struct ir_tensor *t = realloc(g->tensors, (size_t)cap * sizeof(*t));
        if (!t)
            return -ENOMEM;
        g->tensors = t;
        g->cap_tensors = cap;
    }
    struct ir_tensor *t = &g->tensors[g->n_tensors];
    memset(t, 0, sizeof(*t));
    t->name = strdup(name ? name : "");
    if (!t->name)
        return -ENOMEM;
    t->producer = -1;
    return g->n_tensors++;
}

int ir_find_tensor(const struct ir_graph *g, const char *name)
{
    for (int i = 0; i < g->n_tensors; i++)
        if (strcmp(g->tensors[i].name, name) == 0)
            return i;
    return -1;
}

void ir_set_const(struct ir_graph *g, int t, int dtype, const struct engine_shape *shape,
                  void *data)
{
    struct ir_tensor *x = &g->tensors[t];
    free(x->data);
    x->dtype = dtype;
    x->shape = *shape;
    x->shape_known = 1;
    x->data = data;
    x->nbytes = (size_t)engine_shape_numel(shape) * engine_dtype_size(dtype);
}

int ir_add_const(struct ir_graph *g, const char *base, const char *suffix, int dtype,
                 const struct engine_shape *shape, void *data)
{
    char name[512];
    snprintf(name, sizeof(name), "%s%s", base, suffix);
    for (int k = 2; ir_find_tensor(g, name) >= 0; k++)
        snprintf(name, sizeof(name), "%s%s%d", base, suffix, k);
    int t = ir_add_tensor(g, name);
    if (t < 0) {
        free(data);
        return t;
    }
    ir_set_const(g, t, dtype, shape, data);
    return t;
}

int ir_node_err(const struct ir_graph *g, const struct ir_node *n, char *err, size_t errlen,
                int code, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return code;
    int k = snprintf(err, errlen, "model %s: node %s (%s): ", g->name ? g->name : "model",
                     n->name ? n->name : "?", n->op ? n->op : "?");
    if (k < 0 || (size_t)k >= errlen)
        return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
    va_end(ap);
    return code;
}

/* ---- attributes ---- */

const struct ir_attr *ir_attr_get(const struct ir_node *n, const char *name)
{
    for (int i = 0; i < n->n_attrs; i++)
        if (strcmp(n->attrs[i].name, name) == 0)
            return &n->attrs[i];
    return NULL;
}

int64_t ir_attr_int(const struct ir_node *n, const char *name, int64_t def)
{
    const struct ir_attr *a = ir_attr_get(n, name);
    return a && a->type == IR_ATTR_INT ? a->i : def;
}

float ir_attr_float(const struct ir_node *n, const char *name, float def)
{
    const struct ir_attr *a = ir_attr_get(n, name);
    return a && a->type == IR_ATTR_FLOAT ? a->f : def;
}

const char *ir_attr_str(const struct ir_node *n, const char *name, const char *def)
{
    const struct ir_attr *a = ir_attr_get(n, name);
    return a && a->type == IR_ATTR_STRING && a->s ? a->s : def;
}

static void attr_clear(struct ir_attr *a)
{
    free(a->s);
    free(a->ints);
    free(a->floats);
    a->s = NULL;
    a->ints = NULL;
    a->floats = NULL;
    a->n = 0;
}

/* Returns the attribute named `name`, cleared, adding it if missing; NULL on ENOMEM. */
static struct ir_attr *attr_slot(struct ir_node *n, const char *name)
{
    for (int i = 0; i < n->n_attrs; i++) {
        if (strcmp(n->attrs[i].name, name) == 0) {
            attr_clear(&n->attrs[i]);
            return &n->attrs[i];
        }
    }
    struct ir_attr *a = realloc(n->attrs, (size_t)(n->n_attrs + 1) * sizeof(*a));
    if (!a)
        return NULL;
    n->attrs = a;
    struct ir_attr *s = &a[n->n_attrs];
    memset(s, 0, sizeof(*s));
    s->tensor = -1;
    s->name = strdup(name);
    if (!s->name)
        return NULL;
    n->n_attrs++;
    return s;
}

int ir_attr_set_int(struct ir_node *n, const char *name, int64_t v)
{
    struct ir_attr *a = attr_slot(n, name);
    if (!a)
        return -ENOMEM;
    a->type = IR_ATTR_INT;
    a->i = v;
    return 0;
}

int ir_attr_set_float(struct ir_node *n, const char *name, float v)
{
    struct ir_attr *a = attr_slot(n, name);
    if (!a)
        return -ENOMEM;
    a->type = IR_ATTR_FLOAT;
    a->f = v;
    return 0;
}

int ir_attr_set_ints(struct ir_node *n, const char *name, const int64_t *v, size_t count)
{
    struct ir_attr *a = attr_slot(n, name);
    if (!a)
        return -ENOMEM;
    a->type = IR_ATTR_INTS;
    a->ints = malloc((count ? count : 1) * sizeof(int64_t));
    if (!a->ints)
        return -ENOMEM;
    if (count)
        memcpy(a->ints, v, count * sizeof(int64_t));
    a->n = count;
    return 0;
}

/* ---- graph queries ---- */

int ir_consumers(const struct ir_graph *g, int t)
{
    int count = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const struct ir_node *n = &g->nodes[i];
        if (n->dead)
            continue;
        for (int k = 0; k < n->n_in; k++)
            count += n->in[k] == t;
        for (int k = 0; k < n->n_post; k++)
            count += n->post[k].kind == IR_POST_SUM && n->post[k].tensor == t;
    }
    return count;
}

int ir_node_scope(const struct ir_graph *g, const struct ir_node *n)
{
    int s = n->scope;
    while (s > 0 && g->scopes[s].inlined)
        s = g->scopes[s].parent;
    return s;
}

int ir_node_dropped(const struct ir_graph *g, const struct ir_node *n)
{
    for (int s = n->scope; s > 0; s = g->scopes[s].parent) {
        if (g->scopes[s].cond < 0) /* a Loop/Scan body: not conditional */
            continue;
        const struct ir_tensor *c = &g->tensors[g->scopes[s].cond];
        if (c->data && (*(const uint8_t *)c->data != 0) != g->scopes[s].then)
            return 1;
    }
    return 0;
}

int ir_tensor_used(const struct ir_graph *g, int t)
{
    for (int i = 0; i < g->n_outputs; i++)
        if (g->outputs[i] == t)
            return 1;
    return ir_consumers(g, t) > 0;
}

int ir_insert_nodes(struct ir_graph *g, int at, int count)
{
    if (count <= 0 || at < 0 || at > g->n_nodes)
        return count == 0 ? 0 : -EINVAL;
    if (g->n_nodes + count > g->cap_nodes) {
        int cap = g->n_nodes + count + 16;
        struct ir_node *p = realloc(g->nodes, (size_t)cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        g->nodes = p;
        g->cap_nodes = cap;
    }
    memmove(g->nodes + at + count, g->nodes + at, (size_t)(g->n_nodes - at) * sizeof(*g->nodes));
    memset(g->nodes + at, 0, (size_t)count * sizeof(*g->nodes));
    g->n_nodes += count;
    for (int t = 0; t < g->n_tensors; t++)
        if (g->tensors[t].producer >= at)
            g->tensors[t].producer += count;
    return 0;
}

/* ---- freeing ---- */

static void node_free(struct ir_node *n)
{
    free(n->name);
    free(n->op);
    free(n->in);
    free(n->out);
    for (int i = 0; i < n->n_attrs; i++) {
        attr_clear(&n->attrs[i]);
        free(n->attrs[i].name);
    }
    free(n->attrs);
}

void ir_free(struct ir_graph *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n_tensors; i++) {
        free(g->tensors[i].name);
        free(g->tensors[i].data);
        free(g->tensors[i].seq);
    }
    for (int i = 0; i < g->n_nodes; i++)
        node_free(&g->nodes[i]);
    free(g->tensors);
    free(g->nodes);
    free(g->inputs);
    free(g->outputs);
    for (int i = 0; i < g->n_scopes; i++) {
        free(g->scopes[i].prefix);
        free(g->scopes[i].vars);
        free(g->scopes[i].deps);
    }
    free(g->scopes);
    free(g->output_dtypes);
    free(g->output_seq);
    free(g->name);
    free(g);
}
