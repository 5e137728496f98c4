/*
 * fp16.c — ir_widen_fp16: a float16 model computes in float32 (issue 17).
 *
 * Run between import and shape inference. Every float16 constant (initializers, Constant
 * nodes, ConstantOfShape values) becomes its float32 value (exact); every Cast or EyeLike to
 * float16 casts to float32 instead; a float16 graph input gets a Cast to float32 in front of its
 * readers, and a graph output declared float16 is written by a Cast from the float32 tensor its
 * producer now computes. The model's interface (float16 inputs and outputs, the bytes clients
 * send and get) is unchanged; inside, the plan holds float32 weights and activations, so every
 * float32 kernel runs them. Results differ from a float16 run by float16's rounding of the
 * intermediates (ORT's CPU kernels widen most float16 ops the same way).
 */
#include "engine/ir.h"
#include "engine/kernels.h"

#include "common/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every float16 constant as float32, in place; one that is also a graph output keeps its float16
 * bytes and its readers get a float32 copy. */
static int widen_consts(struct ir_graph *g)
{
    int n = g->n_tensors; /* copies added below are float32 already */
    for (int t = 0; t < n; t++) {
        struct ir_tensor *x = &g->tensors[t];
        if (!x->data || x->dtype != ENGINE_F16)
            continue;
        size_t count = x->nbytes / 2;
        float *f = malloc(count ? count * sizeof(float) : 1);
        if (!f)
            return -ENOMEM;
        k_cast(x->data, ENGINE_F16, f, ENGINE_F32, count);
        if (!(x->flags & IR_T_OUTPUT)) {
            free(x->data);
            x->data = f;
            x->nbytes = count * sizeof(float);
            x->dtype = ENGINE_F32;
            continue;
        }
        struct engine_shape s = x->shape;
        int c = ir_add_const(g, x->name, "/f32", ENGINE_F32, &s, f);
        if (c < 0)
            return c;
        for (int i = 0; i < g->n_nodes; i++)
            for (int k = 0; k < g->nodes[i].n_in; k++)
                if (g->nodes[i].in[k] == t)
                    g->nodes[i].in[k] = c;
    }
    return 0;
}

/* A Cast node from tensor `from` to `to`, named "<to's name>/cast". */
static int cast_node(struct ir_graph *g, struct ir_node *n, int from, int to, int dtype)
{
    memset(n, 0, sizeof(*n));
    size_t len = strlen(g->tensors[to].name) + sizeof("/cast");
    n->name = malloc(len);
    n->op = strdup("Cast");
    n->in = malloc(sizeof(int));
    n->out = malloc(sizeof(int));
    if (!n->name || !n->op || !n->in || !n->out)
        return -ENOMEM;
    snprintf(n->name, len, "%s/cast", g->tensors[to].name);
    n->in[0] = from;
    n->out[0] = to;
    n->n_in = n->n_out = 1;
    return ir_attr_set_int(n, "to", dtype);
}

/* Grows the node array to hold `extra` more nodes. */
static int reserve_nodes(struct ir_graph *g, int extra)
{
    if (g->n_nodes + extra <= g->cap_nodes)
        return 0;
    struct ir_node *p = realloc(g->nodes, (size_t)(g->n_nodes + extra) * sizeof(*p));
    if (!p)
        return -ENOMEM;
    g->nodes = p;
    g->cap_nodes = g->n_nodes + extra;
    return 0;
}

/* Each float16 graph input x is read through a new float32 tensor "x/f32" that a Cast at the
 * front of the (topologically ordered) node array writes. */
static int widen_inputs(struct ir_graph *g)
{
    int k = 0;
    for (int i = 0; i < g->n_inputs; i++)
        k += g->tensors[g->inputs[i]].dtype == ENGINE_F16 && !g->tensors[g->inputs[i]].data;
    if (k == 0)
        return 0;
    int rc = reserve_nodes(g, k);
    if (rc)
        return rc;
    memmove(g->nodes + k, g->nodes, (size_t)g->n_nodes * sizeof(*g->nodes));
    memset(g->nodes, 0, (size_t)k * sizeof(*g->nodes));
    int first_old = k;
    g->n_nodes += k;
    for (int t = 0; t < g->n_tensors; t++)
        if (g->tensors[t].producer >= 0)
            g->tensors[t].producer += k;
    int at = 0;
    for (int i = 0; i < g->n_inputs && rc == 0; i++) {
        int x = g->inputs[i];
        if (g->tensors[x].dtype != ENGINE_F16 || g->tensors[x].data)
            continue;
        size_t len = strlen(g->tensors[x].name) + sizeof("/f32");
        char *name = malloc(len);
        if (!name)
            return -ENOMEM;
        snprintf(name, len, "%s/f32", g->tensors[x].name);
        int w = ir_add_tensor(g, name);
        free(name);
        if (w < 0)
            return w;
        for (int j = first_old; j < g->n_nodes; j++)
            for (int q = 0; q < g->nodes[j].n_in; q++)
                if (g->nodes[j].in[q] == x)
                    g->nodes[j].in[q] = w;
        g->tensors[w].producer = at;
        rc = cast_node(g, &g->nodes[at++], x, w, ENGINE_F32);
    }
    return rc;
}

/* Each graph output declared float16 and produced by a node: the node writes a new tensor
 * "y/f32" (its readers follow), and a Cast appended at the end writes y from it. */
static int widen_outputs(struct ir_graph *g)
{
    for (int i = 0; i < g->n_outputs && g->output_dtypes; i++) {
        int y = g->outputs[i], p = g->tensors[y].producer;
        if (g->output_dtypes[i] != ENGINE_F16 || p < 0)
            continue;
        size_t len = strlen(g->tensors[y].name) + sizeof("/f32");
        char *name = malloc(len);
        if (!name)
            return -ENOMEM;
        snprintf(name, len, "%s/f32", g->tensors[y].name);
        int w = ir_add_tensor(g, name);
        free(name);
        int rc = w < 0 ? w : reserve_nodes(g, 1);
        if (rc)
            return rc;
        for (int j = 0; j < g->n_nodes; j++) {
            struct ir_node *n = &g->nodes[j];
            for (int q = 0; q < n->n_in; q++)
                if (n->in[q] == y)
                    n->in[q] = w;
            for (int q = 0; q < n->n_out; q++)
                if (n->out[q] == y)
                    n->out[q] = w;
        }
        g->tensors[w].producer = p;
        g->tensors[y].producer = g->n_nodes;
        rc = cast_node(g, &g->nodes[g->n_nodes++], w, y, ENGINE_F16);
        if (rc)
            return rc;
    }
    return 0;
}

int ir_widen_fp16(struct ir_graph *g, char *err, size_t errlen)
{
    int rc = widen_consts(g);
    for (int i = 0; i < g->n_nodes && rc == 0; i++) {
        struct ir_node *n = &g->nodes[i];
        const char *attr = strcmp(n->op, "Cast") == 0      ? "to"
                           : strcmp(n->op, "EyeLike") == 0 ? "dtype"
                                                           : NULL;
        if (attr && ir_attr_int(n, attr, 0) == ENGINE_F16)
            rc = ir_attr_set_int(n, attr, ENGINE_F32);
    }
    if (rc == 0)
        rc = widen_inputs(g);
    if (rc == 0)
        rc = widen_outputs(g);
    return rc ? seterr(err, errlen, rc, "model %s: out of memory widening float16", g->name) : 0;
}
