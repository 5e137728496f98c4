/*
 * legacy.c — models below opset 7.
 *
 * Opset 7 changed a handful of ops (numpy broadcasting replaced the broadcast/axis attributes,
 * is_test left BatchNormalization and Dropout) and a few more changed between opsets 1 and 6.
 * A model below opset 7 is accepted node by node: an op whose version in force at the model's
 * opset means what the engine's (opset 7) implementation computes passes, possibly rewritten
 * into its opset-7 form here or, where that needs shapes, by ir_legacy_infer; any other is
 * refused with the op, opset and reason named. consumed_inputs (opset 1) was an in-place hint
 * without effect on the result and is ignored. Which op needs what: the since and legacy columns
 * of ops/ops.def.
 */
#include "engine/ir.h"

#include "common/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIN_MODERN_OPSET 7 /* below: ir_legacy_nodes() rewrites or refuses each node */

/* What the rewrites need of the import: the graph and where errors go. */
struct legacy {
    struct ir_graph *g;
    char *err;
    size_t errlen;
};

#define LEGACY_AXIS_ATTR "legacy_broadcast_axis" /* marks an Unsqueeze inserted for Add(axis) */

static int legacy_refuse(struct legacy *im, const struct ir_node *n, const char *why)
{
    return ir_node_err(im->g, n, im->err, im->errlen, -ENOTSUP, "at opset %lld: %s",
                       (long long)im->g->opset, why);
}

/* Cast-1 named the target type: "FLOAT", "INT64", ... */
static int legacy_cast(struct legacy *im, struct ir_node *n)
{
    const struct ir_attr *a = ir_attr_get(n, "to");
    if (!a || a->type != IR_ATTR_STRING)
        return 0;
    for (int t = 1; t <= 16; t++) {
        const char *name = onnx_dtype_name(t);
        char upper[16];
        size_t k = 0;
        for (; name[k] && k < sizeof(upper) - 1; k++)
            upper[k] = (char)(name[k] >= 'a' && name[k] <= 'z' ? name[k] - 32 : name[k]);
        upper[k] = '\0';
        if (strcmp(upper, a->s) == 0 || (t == ENGINE_F32 && strcmp(a->s, "FLOAT") == 0))
            return ir_attr_set_int(n, "to", t);
    }
    return legacy_refuse(im, n, "attribute to names an unknown type");
}

/* Reshape-1: the target shape becomes the constant second input of Reshape-5. */
static int legacy_reshape(struct legacy *im, struct ir_node *n)
{
    const struct ir_attr *a = ir_attr_get(n, "shape");
    if (n->n_in != 1 || !a || a->type != IR_ATTR_INTS || a->n > ENGINE_MAX_RANK)
        return legacy_refuse(im, n, "Reshape needs one input and a shape attribute of ints");
    struct engine_shape s = {.rank = 1, .dims = {(int64_t)a->n}};
    int64_t *v = malloc((a->n ? a->n : 1) * sizeof(int64_t));
    if (!v)
        return -ENOMEM;
    if (a->n)
        memcpy(v, a->ints, a->n * sizeof(int64_t));
    char base[300];
    snprintf(base, sizeof(base), "%s::", n->name);
    int t = ir_add_const(im->g, base, "shape", ENGINE_I64, &s, v);
    if (t < 0)
        return t;
    n->in[1] = t; /* in[] has room: import_node allocates one slot more than the inputs */
    n->n_in = 2;
    return 0;
}

/* Inserts Unsqueeze(B, A) before a binary node with an explicit broadcast axis; ir_legacy_infer
 * gives it the axes that align B's dims at `axis` of A (trailing ones), once A's rank is known. */
static int legacy_axis_unsqueeze(struct legacy *im, int i, int64_t axis)
{
    struct ir_graph *g = im->g;
    if (g->n_nodes == g->cap_nodes) {
        struct ir_node *nn = realloc(g->nodes, (size_t)g->cap_nodes * 2 * sizeof(*nn));
        if (!nn)
            return -ENOMEM;
        g->nodes = nn;
        g->cap_nodes *= 2;
    }
    char name[300];
    snprintf(name, sizeof(name), "%s::aligned_B", g->nodes[i].name);
    int t = ir_add_tensor(g, name);
    if (t < 0)
        return t;
    struct ir_node *u = &g->nodes[g->n_nodes];
    memset(u, 0, sizeof(*u));
    u->name = strdup(name);
    u->op = strdup("Unsqueeze");
    u->in = calloc(3, sizeof(int));
    u->out = calloc(2, sizeof(int));
    u->attrs = calloc(1, sizeof(struct ir_attr));
    u->scope = g->nodes[i].scope;
    g->n_nodes++;
    if (!u->name || !u->op || !u->in || !u->out || !u->attrs)
        return -ENOMEM;
    u->in[0] = g->nodes[i].in[1];
    u->in[1] = g->nodes[i].in[0];
    u->n_in = 2;
    u->out[0] = t;
    u->n_out = 1;
    g->tensors[t].producer = g->n_nodes - 1;
    g->nodes[i].in[1] = t;
    return ir_attr_set_int(u, LEGACY_AXIS_ATTR, axis);
}

static int legacy_bcast(struct legacy *im, int i)
{
    struct ir_node *n = &im->g->nodes[i];
    const struct ir_attr *ax = ir_attr_get(n, "axis");
    if (n->n_in != 2 || n->in[0] < 0 || n->in[1] < 0)
        return legacy_refuse(im, n, "needs two inputs");
    if (!ax || ir_attr_int(n, "broadcast", 0) == 0)
        return 0;
    if (ax->type != IR_ATTR_INT)
        return legacy_refuse(im, n, "attribute axis must be an int");
    return legacy_axis_unsqueeze(im, i, ax->i);
}

static int legacy_node(struct legacy *im, int i)
{
    struct ir_node *n = &im->g->nodes[i];
    int64_t opset = im->g->opset;
    const struct ir_op_def *d = ir_op_find(n->op);
    if (!d || opset < d->since)
        return legacy_refuse(im, n, "this op's semantics at this opset are not implemented");
    switch (d->legacy) {
    case IR_LEGACY_SAME:
        return 0;
    case IR_LEGACY_BCAST:
        return legacy_bcast(im, i);
    case IR_LEGACY_TEST:
        return ir_attr_int(n, "is_test", 0) != 0 && ir_attr_int(n, "spatial", 1) == 1
                   ? 0
                   : legacy_refuse(im, n,
                                   "attribute is_test=0 (training) or spatial=0 unsupported");
    case IR_LEGACY_CAST:
        return opset < 6 ? legacy_cast(im, n) : 0;
    case IR_LEGACY_CONCAT:
        return opset < 4 && !ir_attr_get(n, "axis") ? ir_attr_set_int(n, "axis", 1) : 0;
    case IR_LEGACY_RESHAPE:
        return opset < 5 ? legacy_reshape(im, n) : 0;
    case IR_LEGACY_PAD: {
        struct ir_attr *a = (struct ir_attr *)ir_attr_get(n, "paddings");
        if (opset >= 2 || !a)
            return 0;
        char *pads = strdup("pads");
        if (!pads)
            return -ENOMEM;
        free(a->name);
        a->name = pads;
        return 0;
    }
    case IR_LEGACY_SPLIT:
        return opset < 2 && n->n_in > 1
                   ? legacy_refuse(im, n, "split as a second input unsupported")
                   : 0;
    case IR_LEGACY_PRELU: {
        const struct ir_tensor *s =
            n->n_in == 2 && n->in[1] >= 0 ? &im->g->tensors[n->in[1]] : NULL;
        return s && s->data && (engine_shape_numel(&s->shape) == 1 || s->shape.rank == 1)
                   ? 0
                   : legacy_refuse(
                         im, n, "the slope must be a constant of one element or one per channel");
    }
    }
    return 0;
}

int ir_legacy_nodes(struct ir_graph *g, char *err, size_t errlen)
{
    struct legacy ctx = {g, err, errlen}, *im = &ctx;
    if (im->g->opset >= MIN_MODERN_OPSET)
        return 0;
    int n = im->g->n_nodes; /* nodes inserted here need no rewrite */
    for (int i = 0; i < n; i++) {
        int rc = legacy_node(im, i);
        if (rc)
            return rc == -ENOMEM ? seterr(im->err, im->errlen, rc, "out of memory") : rc;
    }
    return 0;
}

static int legacy_unsqueeze_infer(struct ir_graph *g, struct ir_node *n, const struct ir_attr *ax,
                                  char *err, size_t errlen)
{
    if (n->n_in != 2 || n->in[0] < 0 || n->in[1] < 0)
        return ir_node_err(g, n, err, errlen, -EINVAL, "legacy broadcast: bad operands");
    int ra = g->tensors[n->in[1]].shape.rank, rb = g->tensors[n->in[0]].shape.rank;
    int64_t axis = ax->i < 0 ? ax->i + ra : ax->i;
    if (axis < 0 || axis + rb > ra)
        return ir_node_err(g, n, err, errlen, -EINVAL,
                           "at opset %lld: broadcast axis %lld does not fit ranks %d and %d",
                           (long long)g->opset, (long long)ax->i, ra, rb);
    int64_t axes[ENGINE_MAX_RANK];
    int k = 0;
    for (int64_t d = rb; d < ra - axis; d++)
        axes[k++] = d;
    n->in[1] = -1;
    n->n_in = 1;
    return ir_attr_set_ints(n, "axes", axes, (size_t)k) ? -ENOMEM : 0;
}

/* Legacy broadcasting is unidirectional: B (aligned by now) must broadcast to A's shape, and
 * without broadcast=1 the shapes must be equal. */
static int legacy_bcast_infer(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    if (n->n_in != 2 || n->in[0] < 0 || n->in[1] < 0)
        return 0;
    const struct engine_shape *a = &g->tensors[n->in[0]].shape, *b = &g->tensors[n->in[1]].shape;
    int ok = b->rank <= a->rank;
    int bcast = ir_attr_int(n, "broadcast", 0) != 0;
    for (int i = 0; ok && i < b->rank; i++) {
        int64_t da = a->dims[a->rank - b->rank + i], db = b->dims[i];
        ok = db == da || (bcast && db == 1);
    }
    if (!ok || (!bcast && a->rank != b->rank))
        return ir_node_err(g, n, err, errlen, -EINVAL, "at opset %lld: input B does not %s input A",
                           (long long)g->opset,
                           bcast ? "broadcast to" : "have the shape of (broadcast=0)");
    return 0;
}

/* PRelu before opset 7 (Caffe2's): a slope of C values applies along axis 1 of X; as an
 * opset-7 operand it becomes a new constant of shape [C, 1, ...] (X's rank minus one). */
static int legacy_prelu_infer(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    const struct ir_tensor *x = &g->tensors[n->in[0]], *s = &g->tensors[n->in[1]];
    int64_t c = engine_shape_numel(&s->shape);
    if (c == 1)
        return 0;
    if (x->shape.rank < 2 || s->shape.rank != 1 || c != x->shape.dims[1])
        return ir_node_err(g, n, err, errlen, -ENOTSUP,
                           "at opset %lld: slope of %lld values for an input with %lld channels",
                           (long long)g->opset, (long long)c,
                           (long long)(x->shape.rank >= 2 ? x->shape.dims[1] : 0));
    struct engine_shape cs = {.rank = x->shape.rank - 1};
    cs.dims[0] = c;
    for (int i = 1; i < cs.rank; i++)
        cs.dims[i] = 1;
    size_t bytes = (size_t)c * engine_dtype_size(s->dtype);
    void *d = malloc(bytes ? bytes : 1);
    if (!d)
        return ir_node_err(g, n, err, errlen, -ENOMEM, "out of memory");
    memcpy(d, s->data, bytes);
    char base[300];
    snprintf(base, sizeof(base), "%s::", n->name);
    int t = ir_add_const(g, base, "channel_slope", s->dtype, &cs, d);
    if (t < 0)
        return ir_node_err(g, n, err, errlen, t, "out of memory");
    n->in[1] = t;
    return 0;
}

int ir_legacy_infer(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    if (g->opset >= MIN_MODERN_OPSET)
        return 0;
    const struct ir_attr *ax = ir_attr_get(n, LEGACY_AXIS_ATTR);
    if (ax && strcmp(n->op, "Unsqueeze") == 0)
        return legacy_unsqueeze_infer(g, n, ax, err, errlen);
    if (strcmp(n->op, "PRelu") == 0 && n->n_in == 2 && n->in[0] >= 0 && n->in[1] >= 0)
        return legacy_prelu_infer(g, n, err, errlen);
    const struct ir_op_def *d = ir_op_find(n->op);
    return d && d->legacy == IR_LEGACY_BCAST ? legacy_bcast_infer(g, n, err, errlen) : 0;
}
