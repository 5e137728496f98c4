/*
 * shape.c — the per-op table (shape inference + compile-time evaluation) and the
 * ir_infer_shapes pass.
 *
 * Every supported op is one row of `ops` below: its infer function checks attributes and input
 * dtypes/shapes and sets the outputs' (refusing any attribute value it does not implement, never
 * guessing), and its eval function, if any, computes the outputs from constant inputs with
 * kernels.h. Shape inference evaluates constant nodes as it goes, so a Reshape fed by a
 * Shape→Gather→Concat subgraph sees a constant target shape. Infer functions also write
 * normalised attributes (explicit pads/strides/dilations, resolved auto_pad, non-negative axes)
 * so the backend never re-derives ONNX defaults.
 */
#include "engine/ir.h"

#include "common/common.h"
#include "engine/kernels.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INFERRED_BYTES ((uint64_t)16 << 30)
#define MAX_SPATIAL        3
#define MAX_PAD            ((int64_t)1 << 40)
#define MAX_GROUP          ((int64_t)1 << 24)
#define MAX_FOLD_BYTES     ((uint64_t)1 << 30) /* largest constant folding may create */

typedef int (*op_fn)(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen);

/* ---- helpers ---- */

static struct ir_tensor *in_t(struct ir_graph *g, const struct ir_node *n, int i)
{
    return i < n->n_in && n->in[i] >= 0 ? &g->tensors[n->in[i]] : NULL;
}

static const char *shape_s(const struct engine_shape *s, char *buf)
{
    return engine_shape_str(s, buf, 128);
}

static int arity(struct ir_graph *g, struct ir_node *n, int min_in, int max_in, char *err,
                 size_t errlen)
{
    if (n->n_in < min_in || n->n_in > max_in || n->n_out < 1)
        return ir_node_err(g, n, err, errlen, -EINVAL, "expects %d to %d inputs, has %d", min_in,
                           max_in, n->n_in);
    for (int i = 0; i < min_in; i++)
        if (n->in[i] < 0)
            return ir_node_err(g, n, err, errlen, -EINVAL, "required input %d is missing", i);
    return 0;
}

static int want_dtype(struct ir_graph *g, struct ir_node *n, int i, int dtype, char *err,
                      size_t errlen)
{
    struct ir_tensor *x = in_t(g, n, i);
    if (x && x->dtype != dtype)
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "input %d ('%s') is %s, expected %s", i,
                           x->name, engine_dtype_name(x->dtype), engine_dtype_name(dtype));
    return 0;
}

static int set_out(struct ir_graph *g, struct ir_node *n, int i, int dtype,
                   const struct engine_shape *s, char *err, size_t errlen)
{
    if (i >= n->n_out || n->out[i] < 0)
        return 0;
    uint64_t numel = 1;
    for (int d = 0; d < s->rank; d++) {
        if (s->dims[d] < 0)
            return ir_node_err(g, n, err, errlen, -EINVAL, "output %d gets negative dim %lld", i,
                               (long long)s->dims[d]);
        if (s->dims[d] > 0 && numel > MAX_INFERRED_BYTES / (uint64_t)s->dims[d])
            return ir_node_err(g, n, err, errlen, -EFBIG, "output %d is too large", i);
        numel *= (uint64_t)s->dims[d];
    }
    if (numel * engine_dtype_size(dtype) > MAX_INFERRED_BYTES)
        return ir_node_err(g, n, err, errlen, -EFBIG, "output %d is too large", i);
    struct ir_tensor *t = &g->tensors[n->out[i]];
    t->dtype = dtype;
    t->shape = *s;
    t->shape_known = 1;
    return 0;
}

/* Axis in [-rank, rank) → [0, rank). */
static int norm_axis(struct ir_graph *g, struct ir_node *n, int64_t axis, int rank, int *out,
                     char *err, size_t errlen)
{
    *out = 0;
    if (axis < -rank || axis >= rank)
        return ir_node_err(g, n, err, errlen, -EINVAL, "axis %lld out of range for rank %d",
                           (long long)axis, rank);
    *out = (int)(axis < 0 ? axis + rank : axis);
    return 0;
}

/* Reads an int64/int32 constant input as up to max int64 values. */
static int const_ints(struct ir_graph *g, struct ir_node *n, int i, int64_t *v, int max, int *count,
                      char *err, size_t errlen)
{
    struct ir_tensor *x = in_t(g, n, i);
    if (!x || !x->data)
        return ir_node_err(g, n, err, errlen, -ENOTSUP,
                           "input %d must be a constant (computed at run time is unsupported)", i);
    if (x->dtype != ENGINE_I64 && x->dtype != ENGINE_I32)
        return ir_node_err(g, n, err, errlen, -EINVAL, "input %d must be int64, is %s", i,
                           engine_dtype_name(x->dtype));
    int64_t k = engine_shape_numel(&x->shape);
    if (x->shape.rank > 1 || k > max)
        return ir_node_err(g, n, err, errlen, -EINVAL, "input %d must be a 1-D list of <= %d", i,
                           max);
    for (int64_t j = 0; j < k; j++)
        v[j] = x->dtype == ENGINE_I64 ? ((int64_t *)x->data)[j] : ((int32_t *)x->data)[j];
    *count = (int)k;
    return 0;
}

/* An INTS attribute of exactly `expect` values, or `def` everywhere when absent. */
static int attr_ints(struct ir_graph *g, struct ir_node *n, const char *name, int64_t *v,
                     int expect, int64_t def, char *err, size_t errlen)
{
    const struct ir_attr *a = ir_attr_get(n, name);
    if (!a) {
        for (int i = 0; i < expect; i++)
            v[i] = def;
        return 0;
    }
    if (a->type != IR_ATTR_INTS || a->n != (size_t)expect)
        return ir_node_err(g, n, err, errlen, -EINVAL, "attribute %s needs %d ints", name, expect);
    memcpy(v, a->ints, (size_t)expect * sizeof(int64_t));
    return 0;
}

static void *alloc_out(struct ir_graph *g, struct ir_node *n, int i)
{
    struct ir_tensor *t = &g->tensors[n->out[i]];
    size_t bytes = (size_t)engine_shape_numel(&t->shape) * engine_dtype_size(t->dtype);
    return calloc(1, bytes ? bytes : 1);
}

static int set_data(struct ir_graph *g, struct ir_node *n, int i, void *data)
{
    if (i >= n->n_out || n->out[i] < 0) {
        free(data);
        return 0;
    }
    struct ir_tensor *t = &g->tensors[n->out[i]];
    ir_set_const(g, n->out[i], t->dtype, &t->shape, data);
    return 0;
}

static int oom(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    return ir_node_err(g, n, err, errlen, -ENOMEM, "out of memory while folding");
}

/* Output 0 = input 0's bytes (Identity, Reshape, Squeeze, Unsqueeze, Flatten, Dropout: its
 * mask, if any, became a constant in infer_dropout). */
static int eval_copy(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *x = in_t(g, n, 0);
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    memcpy(d, x->data, x->nbytes);
    return set_data(g, n, 0, d);
}

/* ---- activations and element-wise unary ---- */

int ir_node_act(const struct ir_graph *g, const struct ir_node *n, enum ir_act *act, float *alpha,
                float *beta)
{
    static const struct {
        const char *op;
        enum ir_act act;
    } map[] = {
        {"Relu", IR_ACT_RELU},
        {"LeakyRelu", IR_ACT_RELU},
        {"Sigmoid", IR_ACT_SIGMOID},
        {"Tanh", IR_ACT_TANH},
        {"Clip", IR_ACT_CLIP},
        {"HardSigmoid", IR_ACT_HARDSIGMOID},
        {"HardSwish", IR_ACT_HARDSWISH},
        {"Elu", IR_ACT_ELU},
        {"Exp", IR_ACT_EXP},
        {"Sqrt", IR_ACT_SQRT},
        {"Abs", IR_ACT_ABS},
    };
    for (size_t i = 0; i < ARRAY_LEN(map); i++) {
        if (strcmp(n->op, map[i].op) != 0)
            continue;
        *act = map[i].act;
        *alpha = 0;
        *beta = 0;
        if (strcmp(n->op, "LeakyRelu") == 0)
            *alpha = ir_attr_float(n, "alpha", 0.01f);
        else if (*act == IR_ACT_HARDSIGMOID)
            *alpha = ir_attr_float(n, "alpha", 0.2f), *beta = ir_attr_float(n, "beta", 0.5f);
        else if (*act == IR_ACT_ELU)
            *alpha = ir_attr_float(n, "alpha", 1.0f);
        else if (*act == IR_ACT_CLIP) {
            *alpha = ir_attr_float(n, "min", -INFINITY);
            *beta = ir_attr_float(n, "max", INFINITY);
            for (int k = 1; k <= 2; k++) {
                const struct ir_tensor *b =
                    k < n->n_in && n->in[k] >= 0 ? &g->tensors[n->in[k]] : NULL;
                if (!b)
                    continue;
                if (!b->data || b->dtype != ENGINE_F32 || engine_shape_numel(&b->shape) != 1)
                    return 0;
                *(k == 1 ? alpha : beta) = *(const float *)b->data;
            }
        }
        return 1;
    }
    return 0;
}

static int infer_act(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, strcmp(n->op, "Clip") == 0 ? 3 : 1, err, errlen);
    if (rc || (rc = want_dtype(g, n, 0, ENGINE_F32, err, errlen)))
        return rc;
    enum ir_act act;
    float a, b;
    if (!ir_node_act(g, n, &act, &a, &b))
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "min/max must be constant float scalars");
    struct ir_tensor *x = in_t(g, n, 0);
    return set_out(g, n, 0, x->dtype, &x->shape, err, errlen);
}

static int eval_act(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    enum ir_act act;
    float a, b;
    ir_node_act(g, n, &act, &a, &b);
    struct ir_tensor *x = in_t(g, n, 0);
    float *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    k_act(act, a, b, x->data, d, (size_t)engine_shape_numel(&x->shape));
    return set_data(g, n, 0, d);
}

static int infer_identity(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 1, err, errlen);
    if (rc)
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    return set_out(g, n, 0, x->dtype, &x->shape, err, errlen);
}

/* LayerNormalization (opset 17): Y has X's shape; Mean and InvStdDev (training outputs, which
 * the backend refuses when used) have X's dims with those from axis on set to 1. */
static int infer_layernorm(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 2, 3, err, errlen);
    for (int i = 0; i < n->n_in && !rc; i++)
        rc = want_dtype(g, n, i, ENGINE_F32, err, errlen);
    if (rc)
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    int64_t axis = ir_attr_int(n, "axis", -1);
    axis += axis < 0 ? x->shape.rank : 0;
    if (axis < 0 || axis >= x->shape.rank)
        return ir_node_err(g, n, err, errlen, -EINVAL, "axis %lld is out of range for rank %d",
                           (long long)ir_attr_int(n, "axis", -1), x->shape.rank);
    struct engine_shape stat = x->shape;
    for (int d = (int)axis; d < stat.rank; d++)
        stat.dims[d] = 1;
    if ((rc = set_out(g, n, 0, ENGINE_F32, &x->shape, err, errlen)) ||
        (rc = set_out(g, n, 1, ENGINE_F32, &stat, err, errlen)))
        return rc;
    return set_out(g, n, 2, ENGINE_F32, &stat, err, errlen);
}

static int infer_dropout(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 3, err, errlen);
    if (rc)
        return rc;
    struct ir_tensor *tm = in_t(g, n, 2);
    if (ir_attr_int(n, "is_test", 1) == 0 ||
        (tm && (!tm->data || tm->dtype != ENGINE_BOOL || *(uint8_t *)tm->data)))
        return ir_node_err(g, n, err, errlen, -ENOTSUP,
                           "unsupported attribute training_mode (only inference)");
    struct ir_tensor *x = in_t(g, n, 0);
    if ((rc = set_out(g, n, 0, x->dtype, &x->shape, err, errlen)) ||
        (rc = set_out(g, n, 1, ENGINE_BOOL, &x->shape, err, errlen)))
        return rc;
    if (n->n_out < 2 || n->out[1] < 0)
        return 0;
    /* in inference the mask is all true whatever the input: a constant, not an output */
    void *mask = alloc_out(g, n, 1);
    if (!mask)
        return oom(g, n, err, errlen);
    memset(mask, 1, (size_t)engine_shape_numel(&x->shape));
    set_data(g, n, 1, mask);
    g->tensors[n->out[1]].producer = -1;
    n->out[1] = -1;
    return 0;
}

/* ---- element-wise binary with broadcasting ---- */

static const struct {
    const char *op;
    enum k_binop k;
} binops[] = {
    {"Add", K_ADD}, {"Sub", K_SUB}, {"Mul", K_MUL},     {"Div", K_DIV},   {"Pow", K_POW},
    {"Max", K_MAX}, {"Min", K_MIN}, {"Equal", K_EQUAL}, {"Less", K_LESS}, {"Greater", K_GREATER},
};

static enum k_binop binop_of(const char *op)
{
    for (size_t i = 0; i < ARRAY_LEN(binops); i++)
        if (strcmp(binops[i].op, op) == 0)
            return binops[i].k;
    return K_ADD;
}

static int infer_binary(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 2, 2, err, errlen);
    if (rc)
        return rc;
    struct ir_tensor *a = in_t(g, n, 0), *b = in_t(g, n, 1);
    if (a->dtype != b->dtype)
        return ir_node_err(g, n, err, errlen, -EINVAL, "input types differ (%s vs %s)",
                           engine_dtype_name(a->dtype), engine_dtype_name(b->dtype));
    struct engine_shape o;
    char s1[128], s2[128];
    if (k_broadcast_shape(&a->shape, &b->shape, &o))
        return ir_node_err(g, n, err, errlen, -EINVAL, "shapes %s and %s do not broadcast",
                           shape_s(&a->shape, s1), shape_s(&b->shape, s2));
    enum k_binop k = binop_of(n->op);
    int cmp = k == K_EQUAL || k == K_LESS || k == K_GREATER;
    return set_out(g, n, 0, cmp ? ENGINE_BOOL : a->dtype, &o, err, errlen);
}

static int eval_binary(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *a = in_t(g, n, 0), *b = in_t(g, n, 1);
    struct ir_tensor *o = &g->tensors[n->out[0]];
    if (a->dtype != ENGINE_F32 && a->dtype != ENGINE_I64 && a->dtype != ENGINE_I32 &&
        a->dtype != ENGINE_F64)
        return 1;
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    int rc =
        k_binary(binop_of(n->op), a->dtype, a->data, &a->shape, b->data, &b->shape, d, &o->shape);
    if (rc) {
        free(d);
        return ir_node_err(g, n, err, errlen, rc, "integer division by zero in constants");
    }
    return set_data(g, n, 0, d);
}

static int infer_where(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 3, 3, err, errlen);
    if (rc || (rc = want_dtype(g, n, 0, ENGINE_BOOL, err, errlen)))
        return rc;
    struct ir_tensor *c = in_t(g, n, 0), *a = in_t(g, n, 1), *b = in_t(g, n, 2);
    struct engine_shape t, o;
    if (a->dtype != b->dtype)
        return ir_node_err(g, n, err, errlen, -EINVAL, "input types differ");
    if (k_broadcast_shape(&c->shape, &a->shape, &t) || k_broadcast_shape(&t, &b->shape, &o))
        return ir_node_err(g, n, err, errlen, -EINVAL, "input shapes do not broadcast");
    return set_out(g, n, 0, a->dtype, &o, err, errlen);
}

static int eval_where(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *c = in_t(g, n, 0), *a = in_t(g, n, 1), *b = in_t(g, n, 2);
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    k_where(c->data, &c->shape, a->data, &a->shape, b->data, &b->shape, engine_dtype_size(a->dtype),
            d, &g->tensors[n->out[0]].shape);
    return set_data(g, n, 0, d);
}

static int infer_expand(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 2, 2, err, errlen), k;
    int64_t v[ENGINE_MAX_RANK];
    if (rc || (rc = const_ints(g, n, 1, v, ENGINE_MAX_RANK, &k, err, errlen)))
        return rc;
    struct engine_shape s = {.rank = k}, o;
    memcpy(s.dims, v, (size_t)k * sizeof(int64_t));
    struct ir_tensor *x = in_t(g, n, 0);
    if (k_broadcast_shape(&x->shape, &s, &o))
        return ir_node_err(g, n, err, errlen, -EINVAL, "shape does not broadcast");
    return set_out(g, n, 0, x->dtype, &o, err, errlen);
}

static int eval_expand(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *x = in_t(g, n, 0);
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    k_expand(x->data, &x->shape, engine_dtype_size(x->dtype), d, &g->tensors[n->out[0]].shape);
    return set_data(g, n, 0, d);
}

/* ---- convolution and pooling ---- */

struct window {
    int k; /* spatial rank */
    int64_t kernel[MAX_SPATIAL], stride[MAX_SPATIAL], dil[MAX_SPATIAL];
    int64_t pads[2 * MAX_SPATIAL]; /* begins, then ends */
};

static int read_window(struct ir_graph *g, struct ir_node *n, struct window *w, char *err,
                       size_t errlen)
{
    int rc;
    if ((rc = attr_ints(g, n, "strides", w->stride, w->k, 1, err, errlen)) ||
        (rc = attr_ints(g, n, "dilations", w->dil, w->k, 1, err, errlen)) ||
        (rc = attr_ints(g, n, "pads", w->pads, 2 * w->k, 0, err, errlen)))
        return rc;
    for (int i = 0; i < w->k; i++) {
        if (w->stride[i] < 1 || w->dil[i] < 1 || w->kernel[i] < 1 || w->pads[i] < 0 ||
            w->pads[w->k + i] < 0)
            return ir_node_err(g, n, err, errlen, -EINVAL,
                               "kernel, strides and dilations must be >= 1, pads >= 0");
        if (w->kernel[i] > 1 << 20 || w->stride[i] > 1 << 20 || w->dil[i] > 1 << 20 ||
            w->pads[i] > 1 << 20 || w->pads[w->k + i] > 1 << 20)
            return ir_node_err(g, n, err, errlen, -EINVAL, "window attribute too large");
    }
    return 0;
}

/* Output spatial dims; resolves auto_pad into explicit pads. */
static int window_out(struct ir_graph *g, struct ir_node *n, struct window *w, const int64_t *in,
                      int ceil_mode, int64_t *out, char *err, size_t errlen)
{
    const char *ap = ir_attr_str(n, "auto_pad", "NOTSET");
    int same_upper = strcmp(ap, "SAME_UPPER") == 0, same_lower = strcmp(ap, "SAME_LOWER") == 0;
    if (strcmp(ap, "NOTSET") != 0 && strcmp(ap, "VALID") != 0 && !same_upper && !same_lower)
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "unsupported attribute auto_pad=%s", ap);
    for (int i = 0; i < w->k; i++) {
        int64_t ek = (w->kernel[i] - 1) * w->dil[i] + 1;
        if (same_upper || same_lower) {
            out[i] = (in[i] + w->stride[i] - 1) / w->stride[i];
            int64_t total = (out[i] - 1) * w->stride[i] + ek - in[i];
            total = total < 0 ? 0 : total;
            int64_t small = total / 2;
            w->pads[i] = same_upper ? small : total - small;
            w->pads[w->k + i] = total - w->pads[i];
            continue;
        }
        if (strcmp(ap, "VALID") == 0)
            w->pads[i] = w->pads[w->k + i] = 0;
        int64_t span = in[i] + w->pads[i] + w->pads[w->k + i] - ek;
        if (span < 0)
            return ir_node_err(g, n, err, errlen, -EINVAL,
                               "kernel extent %lld exceeds padded input %lld on spatial axis %d",
                               (long long)ek, (long long)(span + ek), i);
        out[i] = (ceil_mode ? (span + w->stride[i] - 1) / w->stride[i] : span / w->stride[i]) + 1;
        /* the last window must start inside the input or the begin padding */
        if (ceil_mode && (out[i] - 1) * w->stride[i] >= in[i] + w->pads[i])
            out[i]--;
    }
    return 0;
}

static int write_window(struct ir_node *n, const struct window *w)
{
    int rc;
    if ((rc = ir_attr_set_ints(n, "kernel_shape", w->kernel, (size_t)w->k)) ||
        (rc = ir_attr_set_ints(n, "strides", w->stride, (size_t)w->k)) ||
        (rc = ir_attr_set_ints(n, "dilations", w->dil, (size_t)w->k)) ||
        (rc = ir_attr_set_ints(n, "pads", w->pads, 2 * (size_t)w->k)))
        return rc;
    struct ir_attr *a = (struct ir_attr *)ir_attr_get(n, "auto_pad");
    if (a && a->type == IR_ATTR_STRING) {
        char *s = strdup("NOTSET");
        if (!s)
            return -ENOMEM;
        free(a->s);
        a->s = s;
    }
    return 0;
}

static int spatial_input(struct ir_graph *g, struct ir_node *n, struct ir_tensor *x, char *err,
                         size_t errlen)
{
    char s[128];
    if (x->shape.rank < 3 || x->shape.rank > 2 + MAX_SPATIAL)
        return ir_node_err(g, n, err, errlen, -ENOTSUP,
                           "input %s must be [N,C,spatial...] with 1 to 3 spatial dims",
                           shape_s(&x->shape, s));
    return 0;
}

static int infer_conv(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 2, 3, err, errlen);
    if (rc || (rc = want_dtype(g, n, 0, ENGINE_F32, err, errlen)) ||
        (rc = want_dtype(g, n, 1, ENGINE_F32, err, errlen)) ||
        (rc = want_dtype(g, n, 2, ENGINE_F32, err, errlen)))
        return rc;
    struct ir_tensor *x = in_t(g, n, 0), *w = in_t(g, n, 1), *b = in_t(g, n, 2);
    if ((rc = spatial_input(g, n, x, err, errlen)))
        return rc;
    struct window win = {.k = x->shape.rank - 2};
    int64_t group = ir_attr_int(n, "group", 1);
    char s1[128], s2[128];
    if (w->shape.rank != x->shape.rank || group < 1 || group > MAX_GROUP ||
        w->shape.dims[0] % group != 0 || x->shape.dims[1] != w->shape.dims[1] * group)
        return ir_node_err(g, n, err, errlen, -EINVAL,
                           "weights %s do not fit input %s with group=%lld", shape_s(&w->shape, s1),
                           shape_s(&x->shape, s2), (long long)group);
    if (b && (b->shape.rank != 1 || b->shape.dims[0] != w->shape.dims[0]))
        return ir_node_err(g, n, err, errlen, -EINVAL, "bias %s must be [%lld]",
                           shape_s(&b->shape, s1), (long long)w->shape.dims[0]);
    if ((rc = attr_ints(g, n, "kernel_shape", win.kernel, win.k, 0, err, errlen)))
        return rc;
    for (int i = 0; i < win.k; i++) {
        if (ir_attr_get(n, "kernel_shape") && win.kernel[i] != w->shape.dims[2 + i])
            return ir_node_err(g, n, err, errlen, -EINVAL, "kernel_shape disagrees with weights %s",
                               shape_s(&w->shape, s1));
        win.kernel[i] = w->shape.dims[2 + i];
    }
    struct engine_shape o = {.rank = x->shape.rank};
    o.dims[0] = x->shape.dims[0];
    o.dims[1] = w->shape.dims[0];
    if ((rc = read_window(g, n, &win, err, errlen)) ||
        (rc = window_out(g, n, &win, x->shape.dims + 2, 0, o.dims + 2, err, errlen)))
        return rc;
    if ((rc = write_window(n, &win)) || (rc = ir_attr_set_int(n, "group", group)))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, ENGINE_F32, &o, err, errlen);
}

static int infer_pool(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 1, err, errlen);
    if (rc || (rc = want_dtype(g, n, 0, ENGINE_F32, err, errlen)))
        return rc;
    int max = strcmp(n->op, "MaxPool") == 0;
    int64_t order = ir_attr_int(n, "storage_order", 0); /* only Indices depend on it */
    if (order != 0 && order != 1)
        return ir_node_err(g, n, err, errlen, -EINVAL, "storage_order must be 0 or 1");
    struct ir_tensor *x = in_t(g, n, 0);
    if ((rc = spatial_input(g, n, x, err, errlen)))
        return rc;
    struct window win = {.k = x->shape.rank - 2};
    const struct ir_attr *ks = ir_attr_get(n, "kernel_shape");
    if (!ks)
        return ir_node_err(g, n, err, errlen, -EINVAL, "attribute kernel_shape is required");
    if ((rc = attr_ints(g, n, "kernel_shape", win.kernel, win.k, 0, err, errlen)) ||
        (rc = read_window(g, n, &win, err, errlen)))
        return rc;
    int64_t ceil_mode = ir_attr_int(n, "ceil_mode", 0);
    if (ceil_mode != 0 && ceil_mode != 1)
        return ir_node_err(g, n, err, errlen, -EINVAL, "ceil_mode must be 0 or 1");
    struct engine_shape o = x->shape;
    if ((rc = window_out(g, n, &win, x->shape.dims + 2, (int)ceil_mode, o.dims + 2, err, errlen)))
        return rc;
    if ((rc = write_window(n, &win)))
        return oom(g, n, err, errlen);
    if (max && (rc = set_out(g, n, 1, ENGINE_I64, &o, err, errlen)))
        return rc;
    return set_out(g, n, 0, ENGINE_F32, &o, err, errlen);
}

static int infer_global_pool(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 1, err, errlen);
    if (rc || (rc = want_dtype(g, n, 0, ENGINE_F32, err, errlen)))
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    if ((rc = spatial_input(g, n, x, err, errlen)))
        return rc;
    struct engine_shape o = x->shape;
    for (int i = 2; i < o.rank; i++)
        o.dims[i] = 1;
    return set_out(g, n, 0, ENGINE_F32, &o, err, errlen);
}

static int infer_batchnorm(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 5, 5, err, errlen);
    if (rc)
        return rc;
    if (ir_attr_int(n, "training_mode", 0) != 0 || (n->n_out > 1 && n->out[1] >= 0))
        return ir_node_err(g, n, err, errlen, -ENOTSUP,
                           "unsupported attribute training_mode (only inference)");
    if (ir_attr_int(n, "spatial", 1) != 1)
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "unsupported attribute spatial=0");
    struct ir_tensor *x = in_t(g, n, 0);
    if (x->shape.rank < 2)
        return ir_node_err(g, n, err, errlen, -EINVAL, "input must have a channel axis");
    for (int i = 0; i < 5; i++) {
        struct ir_tensor *p = in_t(g, n, i);
        if ((rc = want_dtype(g, n, i, ENGINE_F32, err, errlen)))
            return rc;
        if (i > 0 && (p->shape.rank != 1 || p->shape.dims[0] != x->shape.dims[1]))
            return ir_node_err(g, n, err, errlen, -EINVAL, "input %d must be [%lld]", i,
                               (long long)x->shape.dims[1]);
    }
    return set_out(g, n, 0, ENGINE_F32, &x->shape, err, errlen);
}

/* ---- matrix products ---- */

static int infer_gemm(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 2, 3, err, errlen);
    for (int i = 0; i < 3 && rc == 0; i++)
        rc = want_dtype(g, n, i, ENGINE_F32, err, errlen);
    if (rc)
        return rc;
    struct ir_tensor *a = in_t(g, n, 0), *b = in_t(g, n, 1), *c = in_t(g, n, 2);
    int64_t ta = ir_attr_int(n, "transA", 0), tb = ir_attr_int(n, "transB", 0);
    char s1[128], s2[128];
    if (a->shape.rank != 2 || b->shape.rank != 2)
        return ir_node_err(g, n, err, errlen, -EINVAL, "A %s and B %s must be 2-D",
                           shape_s(&a->shape, s1), shape_s(&b->shape, s2));
    int64_t m = a->shape.dims[ta ? 1 : 0], k = a->shape.dims[ta ? 0 : 1];
    int64_t kb = b->shape.dims[tb ? 1 : 0], nn = b->shape.dims[tb ? 0 : 1];
    if (k != kb)
        return ir_node_err(g, n, err, errlen, -EINVAL, "A %s and B %s disagree on K",
                           shape_s(&a->shape, s1), shape_s(&b->shape, s2));
    struct engine_shape o = {.rank = 2, .dims = {m, nn}}, t;
    if (c && (k_broadcast_shape(&c->shape, &o, &t) || t.dims[0] != m || t.dims[1] != nn))
        return ir_node_err(g, n, err, errlen, -EINVAL, "C %s does not broadcast to [%lld,%lld]",
                           shape_s(&c->shape, s1), (long long)m, (long long)nn);
    if ((rc = ir_attr_set_int(n, "transA", ta)) || (rc = ir_attr_set_int(n, "transB", tb)) ||
        (rc = ir_attr_set_float(n, "alpha", ir_attr_float(n, "alpha", 1.0f))) ||
        (rc = ir_attr_set_float(n, "beta", ir_attr_float(n, "beta", 1.0f))))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, ENGINE_F32, &o, err, errlen);
}

static int infer_matmul(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 2, 2, err, errlen);
    if (rc || (rc = want_dtype(g, n, 0, ENGINE_F32, err, errlen)) ||
        (rc = want_dtype(g, n, 1, ENGINE_F32, err, errlen)))
        return rc;
    struct engine_shape a = in_t(g, n, 0)->shape, b = in_t(g, n, 1)->shape, ab, bb, o;
    char s1[128], s2[128];
    if (a.rank < 1 || b.rank < 1)
        return ir_node_err(g, n, err, errlen, -EINVAL, "inputs must have rank >= 1");
    int a1 = a.rank == 1, b1 = b.rank == 1;
    if (a1)
        a = (struct engine_shape){.rank = 2, .dims = {1, a.dims[0]}};
    if (b1)
        b = (struct engine_shape){.rank = 2, .dims = {b.dims[0], 1}};
    if (a.dims[a.rank - 1] != b.dims[b.rank - 2])
        return ir_node_err(g, n, err, errlen, -EINVAL, "shapes %s and %s disagree on K",
                           shape_s(&in_t(g, n, 0)->shape, s1), shape_s(&in_t(g, n, 1)->shape, s2));
    ab = a, bb = b;
    ab.rank -= 2, bb.rank -= 2;
    if (k_broadcast_shape(&ab, &bb, &o) || o.rank + 2 > ENGINE_MAX_RANK)
        return ir_node_err(g, n, err, errlen, -EINVAL, "batch dims do not broadcast");
    if (!a1)
        o.dims[o.rank++] = a.dims[a.rank - 2];
    if (!b1)
        o.dims[o.rank++] = b.dims[b.rank - 1];
    return set_out(g, n, 0, ENGINE_F32, &o, err, errlen);
}

static int infer_softmax(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 1, err, errlen), axis;
    if (rc || (rc = want_dtype(g, n, 0, ENGINE_F32, err, errlen)))
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    int64_t def = g->opset >= 13 ? -1 : 1;
    if ((rc = norm_axis(g, n, ir_attr_int(n, "axis", def), x->shape.rank, &axis, err, errlen)))
        return rc;
    if (g->opset < 13) {
        /* before opset 13 Softmax flattens to 2-D at axis: per-axis only when nothing follows */
        for (int i = axis + 1; i < x->shape.rank; i++)
            if (x->shape.dims[i] != 1)
                return ir_node_err(g, n, err, errlen, -ENOTSUP,
                                   "unsupported attribute axis=%d (opset %lld coerces to 2-D)",
                                   axis, (long long)g->opset);
    }
    if (ir_attr_set_int(n, "axis", axis))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, ENGINE_F32, &x->shape, err, errlen);
}

static int eval_softmax(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *x = in_t(g, n, 0);
    int axis = (int)ir_attr_int(n, "axis", 0);
    size_t outer = 1, inner = 1;
    for (int i = 0; i < axis; i++)
        outer *= (size_t)x->shape.dims[i];
    for (int i = axis + 1; i < x->shape.rank; i++)
        inner *= (size_t)x->shape.dims[i];
    float *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    k_softmax(x->data, d, outer, (size_t)x->shape.dims[axis], inner);
    return set_data(g, n, 0, d);
}

/* ---- shape ops ---- */

static int infer_flatten(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 1, err, errlen), axis;
    if (rc)
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    int64_t a = ir_attr_int(n, "axis", 1);
    if (a == x->shape.rank)
        axis = (int)a;
    else if ((rc = norm_axis(g, n, a, x->shape.rank, &axis, err, errlen)))
        return rc;
    struct engine_shape o = {.rank = 2, .dims = {1, 1}};
    for (int i = 0; i < x->shape.rank; i++)
        o.dims[i < axis ? 0 : 1] *= x->shape.dims[i];
    if (ir_attr_set_int(n, "axis", axis))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, x->dtype, &o, err, errlen);
}

static int infer_reshape(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 2, 2, err, errlen), k;
    int64_t v[ENGINE_MAX_RANK + 1];
    if (rc || (rc = const_ints(g, n, 1, v, ENGINE_MAX_RANK, &k, err, errlen)))
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    int allowzero = ir_attr_int(n, "allowzero", 0) != 0, infer = -1;
    struct engine_shape o = {.rank = k};
    int64_t known = 1;
    for (int i = 0; i < k; i++) {
        o.dims[i] = v[i];
        if (v[i] == 0 && !allowzero) {
            if (i >= x->shape.rank)
                return ir_node_err(g, n, err, errlen, -EINVAL, "dim %d is 0 beyond input rank", i);
            o.dims[i] = x->shape.dims[i];
        } else if (v[i] == -1) {
            if (infer >= 0)
                return ir_node_err(g, n, err, errlen, -EINVAL, "more than one -1 in shape");
            infer = i;
            continue;
        } else if (v[i] < -1)
            return ir_node_err(g, n, err, errlen, -EINVAL, "invalid dim %lld in shape",
                               (long long)v[i]);
        if (o.dims[i] > 0 && known > INT64_MAX / o.dims[i])
            return ir_node_err(g, n, err, errlen, -EINVAL, "shape too large");
        known *= o.dims[i];
    }
    int64_t total = engine_shape_numel(&x->shape);
    char s1[128], s2[128];
    if (infer >= 0)
        o.dims[infer] = known ? total / known : 0;
    if (engine_shape_numel(&o) != total || (infer >= 0 && known == 0)) {
        struct engine_shape req = {.rank = k};
        memcpy(req.dims, v, (size_t)k * sizeof(int64_t));
        return ir_node_err(g, n, err, errlen, -EINVAL, "cannot reshape %s to %s",
                           shape_s(&x->shape, s1), shape_s(&req, s2));
    }
    return set_out(g, n, 0, x->dtype, &o, err, errlen);
}

/* Axes from the attribute (before opset 13) or the constant second input. */
static int read_axes(struct ir_graph *g, struct ir_node *n, int64_t *v, int *k, char *err,
                     size_t errlen)
{
    const struct ir_attr *a = ir_attr_get(n, "axes");
    *k = 0;
    if (a && a->type == IR_ATTR_INTS) {
        if (a->n > ENGINE_MAX_RANK)
            return ir_node_err(g, n, err, errlen, -EINVAL, "too many axes");
        memcpy(v, a->ints, a->n * sizeof(int64_t));
        *k = (int)a->n;
        return 1;
    }
    if (n->n_in > 1 && n->in[1] >= 0) {
        int rc = const_ints(g, n, 1, v, ENGINE_MAX_RANK, k, err, errlen);
        return rc ? rc : 1;
    }
    return 0;
}

static int infer_unsqueeze(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 2, err, errlen), k;
    int64_t v[ENGINE_MAX_RANK];
    if (rc || (rc = read_axes(g, n, v, &k, err, errlen)) < 0)
        return rc;
    if (rc == 0)
        return ir_node_err(g, n, err, errlen, -EINVAL, "axes are required");
    struct ir_tensor *x = in_t(g, n, 0);
    int r = x->shape.rank + k, mark[ENGINE_MAX_RANK] = {0}, axis;
    if (r > ENGINE_MAX_RANK)
        return ir_node_err(g, n, err, errlen, -EINVAL, "result rank %d exceeds %d", r,
                           ENGINE_MAX_RANK);
    for (int i = 0; i < k; i++) {
        if ((rc = norm_axis(g, n, v[i], r, &axis, err, errlen)))
            return rc;
        if (mark[axis]++)
            return ir_node_err(g, n, err, errlen, -EINVAL, "axis %d repeated", axis);
    }
    struct engine_shape o = {.rank = r};
    for (int i = 0, j = 0; i < r; i++)
        o.dims[i] = mark[i] ? 1 : x->shape.dims[j++];
    return set_out(g, n, 0, x->dtype, &o, err, errlen);
}

static int infer_squeeze(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 2, err, errlen), k, axis;
    int64_t v[ENGINE_MAX_RANK];
    if (rc || (rc = read_axes(g, n, v, &k, err, errlen)) < 0)
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    int mark[ENGINE_MAX_RANK] = {0};
    for (int i = 0; i < x->shape.rank && rc == 0; i++)
        mark[i] = x->shape.dims[i] == 1;
    if (rc == 1) {
        memset(mark, 0, sizeof(mark));
        for (int i = 0; i < k; i++) {
            if ((rc = norm_axis(g, n, v[i], x->shape.rank, &axis, err, errlen)))
                return rc;
            if (x->shape.dims[axis] != 1)
                return ir_node_err(g, n, err, errlen, -EINVAL, "axis %d has size %lld, not 1", axis,
                                   (long long)x->shape.dims[axis]);
            mark[axis] = 1;
        }
    }
    struct engine_shape o = {.rank = 0};
    for (int i = 0; i < x->shape.rank; i++)
        if (!mark[i])
            o.dims[o.rank++] = x->shape.dims[i];
    return set_out(g, n, 0, x->dtype, &o, err, errlen);
}

static int infer_shape(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 1, err, errlen), r;
    if (rc)
        return rc;
    r = in_t(g, n, 0)->shape.rank;
    int64_t start = ir_attr_int(n, "start", 0), end = ir_attr_int(n, "end", r);
    start = start < 0 ? start + r : start;
    end = end < 0 ? end + r : end;
    start = start < 0 ? 0 : start > r ? r : start;
    end = end < 0 ? 0 : end > r ? r : end;
    if ((rc = ir_attr_set_int(n, "start", start)) || (rc = ir_attr_set_int(n, "end", end)))
        return oom(g, n, err, errlen);
    struct engine_shape o = {.rank = 1, .dims = {end > start ? end - start : 0}};
    return set_out(g, n, 0, ENGINE_I64, &o, err, errlen);
}

static int eval_shape(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *x = in_t(g, n, 0);
    int64_t start = ir_attr_int(n, "start", 0), cnt = g->tensors[n->out[0]].shape.dims[0];
    int64_t *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    for (int64_t i = 0; i < cnt; i++)
        d[i] = x->shape.dims[start + i];
    return set_data(g, n, 0, d);
}

static int infer_size(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 1, err, errlen);
    struct engine_shape o = {.rank = 0};
    return rc ? rc : set_out(g, n, 0, ENGINE_I64, &o, err, errlen);
}

static int eval_size(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int64_t *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    *d = engine_shape_numel(&in_t(g, n, 0)->shape);
    return set_data(g, n, 0, d);
}

/* Range's three scalar inputs as doubles (they decide the output's length, so constant). */
static int range_params(struct ir_graph *g, struct ir_node *n, double *v, char *err, size_t errlen)
{
    for (int i = 0; i < 3; i++) {
        struct ir_tensor *x = in_t(g, n, i);
        int dt = x->dtype;
        if (!x->data || engine_shape_numel(&x->shape) != 1 || x->shape.rank > 1 ||
            (dt != ENGINE_F32 && dt != ENGINE_I32 && dt != ENGINE_I64) ||
            dt != in_t(g, n, 0)->dtype)
            return ir_node_err(g, n, err, errlen, -ENOTSUP,
                               "start, limit and delta must be constant scalars of one type");
        v[i] = dt == ENGINE_F32   ? *(float *)x->data
               : dt == ENGINE_I32 ? *(int32_t *)x->data
                                  : (double)*(int64_t *)x->data;
    }
    if (v[2] == 0 || isnan(v[0]) || isnan(v[1]) || isnan(v[2]))
        return ir_node_err(g, n, err, errlen, -EINVAL, "delta is 0 or a value is NaN");
    return 0;
}

static int infer_range(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 3, 3, err, errlen);
    double v[3];
    if (rc || (rc = range_params(g, n, v, err, errlen)))
        return rc;
    double count = ceil((v[1] - v[0]) / v[2]);
    if (count > (double)(1 << 30))
        return ir_node_err(g, n, err, errlen, -EFBIG, "range of %.0f elements is too long", count);
    struct engine_shape o = {.rank = 1, .dims = {count > 0 ? (int64_t)count : 0}};
    return set_out(g, n, 0, in_t(g, n, 0)->dtype, &o, err, errlen);
}

static int eval_range(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *s = in_t(g, n, 0), *dl = in_t(g, n, 2), *o = &g->tensors[n->out[0]];
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    for (int64_t i = 0; i < o->shape.dims[0]; i++) {
        if (o->dtype == ENGINE_F32)
            ((float *)d)[i] = *(float *)s->data + (float)i * *(float *)dl->data;
        else if (o->dtype == ENGINE_I32)
            ((int32_t *)d)[i] = (int32_t)(*(int32_t *)s->data + i * *(int32_t *)dl->data);
        else
            ((int64_t *)d)[i] = (int64_t)((uint64_t) * (int64_t *)s->data +
                                          (uint64_t)i * (uint64_t) * (int64_t *)dl->data);
    }
    return set_data(g, n, 0, d);
}

static int infer_gather(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 2, 2, err, errlen), axis;
    if (rc)
        return rc;
    struct ir_tensor *x = in_t(g, n, 0), *idx = in_t(g, n, 1);
    if (idx->dtype != ENGINE_I64 && idx->dtype != ENGINE_I32)
        return ir_node_err(g, n, err, errlen, -EINVAL, "indices must be int64 or int32");
    if ((rc = norm_axis(g, n, ir_attr_int(n, "axis", 0), x->shape.rank, &axis, err, errlen)))
        return rc;
    int r = x->shape.rank - 1 + idx->shape.rank;
    if (r > ENGINE_MAX_RANK)
        return ir_node_err(g, n, err, errlen, -EINVAL, "result rank too large");
    struct engine_shape o = {.rank = 0};
    for (int i = 0; i < axis; i++)
        o.dims[o.rank++] = x->shape.dims[i];
    for (int i = 0; i < idx->shape.rank; i++)
        o.dims[o.rank++] = idx->shape.dims[i];
    for (int i = axis + 1; i < x->shape.rank; i++)
        o.dims[o.rank++] = x->shape.dims[i];
    if (ir_attr_set_int(n, "axis", axis))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, x->dtype, &o, err, errlen);
}

static int eval_gather(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *x = in_t(g, n, 0), *idx = in_t(g, n, 1);
    size_t ni = (size_t)engine_shape_numel(&idx->shape);
    int64_t *iv = malloc((ni ? ni : 1) * sizeof(int64_t));
    void *d = alloc_out(g, n, 0);
    if (!iv || !d) {
        free(iv), free(d);
        return oom(g, n, err, errlen);
    }
    k_cast(idx->data, idx->dtype, iv, ENGINE_I64, ni);
    int rc = k_gather(x->data, &x->shape, (int)ir_attr_int(n, "axis", 0), iv, ni,
                      engine_dtype_size(x->dtype), d);
    free(iv);
    if (rc) {
        free(d);
        return ir_node_err(g, n, err, errlen, -EINVAL, "constant index out of range");
    }
    return set_data(g, n, 0, d);
}

static int infer_concat(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 1 << 16, err, errlen), axis;
    if (rc)
        return rc;
    struct ir_tensor *x0 = in_t(g, n, 0);
    if (!ir_attr_get(n, "axis"))
        return ir_node_err(g, n, err, errlen, -EINVAL, "attribute axis is required");
    if ((rc = norm_axis(g, n, ir_attr_int(n, "axis", 0), x0->shape.rank, &axis, err, errlen)))
        return rc;
    struct engine_shape o = x0->shape;
    o.dims[axis] = 0;
    char s1[128], s2[128];
    for (int i = 0; i < n->n_in; i++) {
        struct ir_tensor *x = in_t(g, n, i);
        if (!x)
            return ir_node_err(g, n, err, errlen, -EINVAL, "input %d is missing", i);
        int ok = x->dtype == x0->dtype && x->shape.rank == x0->shape.rank;
        for (int d = 0; ok && d < o.rank; d++)
            ok = d == axis || x->shape.dims[d] == x0->shape.dims[d];
        if (!ok)
            return ir_node_err(g, n, err, errlen, -EINVAL,
                               "input %d %s %s does not match input 0 %s %s off axis %d", i,
                               engine_dtype_name(x->dtype), shape_s(&x->shape, s1),
                               engine_dtype_name(x0->dtype), shape_s(&x0->shape, s2), axis);
        o.dims[axis] += x->shape.dims[axis];
    }
    if (ir_attr_set_int(n, "axis", axis))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, x0->dtype, &o, err, errlen);
}

static int eval_concat(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    const void **srcs = calloc((size_t)n->n_in, sizeof(void *));
    struct engine_shape *shapes = calloc((size_t)n->n_in, sizeof(*shapes));
    void *d = alloc_out(g, n, 0);
    if (!srcs || !shapes || !d) {
        free(srcs), free(shapes), free(d);
        return oom(g, n, err, errlen);
    }
    for (int i = 0; i < n->n_in; i++) {
        srcs[i] = in_t(g, n, i)->data;
        shapes[i] = in_t(g, n, i)->shape;
    }
    k_concat(srcs, shapes, n->n_in, (int)ir_attr_int(n, "axis", 0),
             engine_dtype_size(in_t(g, n, 0)->dtype), d);
    free(srcs);
    free(shapes);
    return set_data(g, n, 0, d);
}

static int infer_cast(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 1, err, errlen);
    if (rc)
        return rc;
    int64_t to = ir_attr_int(n, "to", 0);
    if (!engine_dtype_size((int)to) || to > 100)
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "unsupported attribute to=%lld",
                           (long long)to);
    return set_out(g, n, 0, (int)to, &in_t(g, n, 0)->shape, err, errlen);
}

static int eval_cast(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *x = in_t(g, n, 0);
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    k_cast(x->data, x->dtype, d, g->tensors[n->out[0]].dtype,
           (size_t)engine_shape_numel(&x->shape));
    return set_data(g, n, 0, d);
}

static int infer_constant_of_shape(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 1, err, errlen), k;
    int64_t v[ENGINE_MAX_RANK];
    if (rc || (rc = const_ints(g, n, 0, v, ENGINE_MAX_RANK, &k, err, errlen)))
        return rc;
    const struct ir_attr *a = ir_attr_get(n, "value");
    int dtype = ENGINE_F32;
    if (a) {
        if (a->type != IR_ATTR_TENSOR || a->tensor < 0 ||
            engine_shape_numel(&g->tensors[a->tensor].shape) != 1)
            return ir_node_err(g, n, err, errlen, -EINVAL, "value must be a one-element tensor");
        dtype = g->tensors[a->tensor].dtype;
    }
    struct engine_shape o = {.rank = k};
    memcpy(o.dims, v, (size_t)k * sizeof(int64_t));
    return set_out(g, n, 0, dtype, &o, err, errlen);
}

static int eval_constant_of_shape(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    const struct ir_attr *a = ir_attr_get(n, "value");
    struct ir_tensor *o = &g->tensors[n->out[0]];
    size_t es = engine_dtype_size(o->dtype), cnt = (size_t)engine_shape_numel(&o->shape);
    char *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    if (a)
        for (size_t i = 0; i < cnt; i++)
            memcpy(d + i * es, g->tensors[a->tensor].data, es);
    return set_data(g, n, 0, d);
}

/* Clamps ONNX Slice parameters for one axis into start/step/count. */
static int64_t slice_axis(int64_t dim, int64_t start, int64_t end, int64_t step, int64_t *s0)
{
    if (start < 0)
        start += dim;
    if (end < 0)
        end += dim;
    if (step > 0) {
        start = start < 0 ? 0 : start > dim ? dim : start;
        end = end < 0 ? 0 : end > dim ? dim : end;
        *s0 = start;
        return end > start ? (end - start - 1) / step + 1 : 0;
    }
    start = start < 0 ? -1 : start > dim - 1 ? dim - 1 : start;
    end = end < -1 ? -1 : end > dim - 1 ? dim - 1 : end;
    *s0 = start;
    return start > end ? (start - end - 1) / (-step) + 1 : 0;
}

static int slice_params(struct ir_graph *g, struct ir_node *n, int64_t *st, int64_t *e, int64_t *ax,
                        int64_t *sp, int *k, char *err, size_t errlen)
{
    int rc, k2 = 0, k3, k4;
    if (g->opset < 10) {
        const struct ir_attr *as = ir_attr_get(n, "starts"), *ae = ir_attr_get(n, "ends");
        if (!as || !ae || as->type != IR_ATTR_INTS || ae->type != IR_ATTR_INTS || as->n != ae->n ||
            as->n > ENGINE_MAX_RANK)
            return ir_node_err(g, n, err, errlen, -EINVAL, "starts/ends attributes invalid");
        *k = (int)as->n;
        if (*k) {
            memcpy(st, as->ints, as->n * 8);
            memcpy(e, ae->ints, ae->n * 8);
        }
        for (int i = 0; i < *k; i++)
            ax[i] = i, sp[i] = 1;
        const struct ir_attr *aa = ir_attr_get(n, "axes");
        if (aa && (aa->type != IR_ATTR_INTS || aa->n != as->n))
            return ir_node_err(g, n, err, errlen, -EINVAL, "axes attribute invalid");
        if (aa && aa->n)
            memcpy(ax, aa->ints, aa->n * 8);
        return 0;
    }
    if ((rc = arity(g, n, 3, 5, err, errlen)) ||
        (rc = const_ints(g, n, 1, st, ENGINE_MAX_RANK, k, err, errlen)) ||
        (rc = const_ints(g, n, 2, e, ENGINE_MAX_RANK, &k2, err, errlen)))
        return rc;
    k3 = k4 = *k;
    for (int i = 0; i < *k; i++)
        ax[i] = i, sp[i] = 1;
    if (in_t(g, n, 3) && (rc = const_ints(g, n, 3, ax, ENGINE_MAX_RANK, &k3, err, errlen)))
        return rc;
    if (in_t(g, n, 4) && (rc = const_ints(g, n, 4, sp, ENGINE_MAX_RANK, &k4, err, errlen)))
        return rc;
    if (k2 != *k || k3 != *k || k4 != *k)
        return ir_node_err(g, n, err, errlen, -EINVAL, "starts/ends/axes/steps lengths differ");
    return 0;
}

static int infer_slice(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int64_t st[ENGINE_MAX_RANK], e[ENGINE_MAX_RANK], ax[ENGINE_MAX_RANK], sp[ENGINE_MAX_RANK];
    int k, rc = arity(g, n, 1, 5, err, errlen), axis, seen[ENGINE_MAX_RANK] = {0};
    if (rc || (rc = slice_params(g, n, st, e, ax, sp, &k, err, errlen)))
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    struct engine_shape o = x->shape;
    int64_t starts[ENGINE_MAX_RANK] = {0}, steps[ENGINE_MAX_RANK];
    for (int i = 0; i < ENGINE_MAX_RANK; i++)
        steps[i] = 1;
    for (int i = 0; i < k; i++) {
        if ((rc = norm_axis(g, n, ax[i], x->shape.rank, &axis, err, errlen)))
            return rc;
        if (sp[i] == 0 || sp[i] == INT64_MIN || seen[axis]++)
            return ir_node_err(g, n, err, errlen, -EINVAL, "invalid step or repeated axis");
        o.dims[axis] = slice_axis(x->shape.dims[axis], st[i], e[i], sp[i], &starts[axis]);
        steps[axis] = sp[i];
    }
    /* normalised for the backend: one start and step per input axis */
    if (ir_attr_set_ints(n, "norm_starts", starts, (size_t)x->shape.rank) ||
        ir_attr_set_ints(n, "norm_steps", steps, (size_t)x->shape.rank))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, x->dtype, &o, err, errlen);
}

static int eval_slice(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *x = in_t(g, n, 0);
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    k_slice(x->data, &x->shape, ir_attr_get(n, "norm_starts")->ints,
            ir_attr_get(n, "norm_steps")->ints, &g->tensors[n->out[0]].shape,
            engine_dtype_size(x->dtype), d);
    return set_data(g, n, 0, d);
}

static int infer_transpose(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 1, err, errlen);
    if (rc)
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    int r = x->shape.rank, seen[ENGINE_MAX_RANK] = {0};
    int64_t perm[ENGINE_MAX_RANK];
    for (int i = 0; i < r; i++)
        perm[i] = r - 1 - i;
    if (ir_attr_get(n, "perm") && (rc = attr_ints(g, n, "perm", perm, r, 0, err, errlen)))
        return rc;
    struct engine_shape o = {.rank = r};
    for (int i = 0; i < r; i++) {
        if (perm[i] < 0 || perm[i] >= r || seen[perm[i]]++)
            return ir_node_err(g, n, err, errlen, -EINVAL, "perm is not a permutation");
        o.dims[i] = x->shape.dims[perm[i]];
    }
    if (ir_attr_set_ints(n, "perm", perm, (size_t)r))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, x->dtype, &o, err, errlen);
}

static int eval_transpose(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *x = in_t(g, n, 0);
    const struct ir_attr *a = ir_attr_get(n, "perm");
    int perm[ENGINE_MAX_RANK];
    for (int i = 0; i < x->shape.rank; i++)
        perm[i] = (int)a->ints[i];
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    k_transpose(x->data, &x->shape, perm, engine_dtype_size(x->dtype), d);
    return set_data(g, n, 0, d);
}

static int infer_pad(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 3, err, errlen), k = 0;
    if (rc)
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    int r = x->shape.rank;
    int64_t p[2 * ENGINE_MAX_RANK];
    const char *mode = ir_attr_str(n, "mode", "constant");
    if (strcmp(mode, "constant") && strcmp(mode, "reflect") && strcmp(mode, "edge"))
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "unsupported attribute mode=%s", mode);
    if (g->opset < 11) {
        if ((rc = attr_ints(g, n, "pads", p, 2 * r, 0, err, errlen)))
            return rc;
        k = 2 * r;
    } else if ((rc = const_ints(g, n, 1, p, 2 * ENGINE_MAX_RANK, &k, err, errlen)))
        return rc;
    struct ir_tensor *cv = in_t(g, n, 2);
    if (k != 2 * r || (cv && (!cv->data || cv->dtype != x->dtype)))
        return ir_node_err(g, n, err, errlen, -EINVAL,
                           "pads needs %d values and constant_value a constant of the input type",
                           2 * r);
    struct engine_shape o = x->shape;
    for (int i = 0; i < r; i++) {
        if (p[i] < -MAX_PAD || p[i] > MAX_PAD || p[r + i] < -MAX_PAD || p[r + i] > MAX_PAD)
            return ir_node_err(g, n, err, errlen, -EINVAL, "pads out of range on axis %d", i);
        o.dims[i] += p[i] + p[r + i];
        if (o.dims[i] < 0 || (strcmp(mode, "reflect") == 0 &&
                              (p[i] >= x->shape.dims[i] || p[r + i] >= x->shape.dims[i])))
            return ir_node_err(g, n, err, errlen, -EINVAL, "pads do not fit axis %d", i);
    }
    if (ir_attr_set_ints(n, "pads", p, (size_t)k) ||
        ir_attr_set_float(n, "value",
                          cv && cv->dtype == ENGINE_F32 ? *(float *)cv->data
                                                        : ir_attr_float(n, "value", 0)))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, x->dtype, &o, err, errlen);
}

static int eval_pad(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *x = in_t(g, n, 0), *cv = in_t(g, n, 2);
    const char *mode = ir_attr_str(n, "mode", "constant");
    enum k_pad_mode m = strcmp(mode, "edge") == 0      ? K_PAD_EDGE
                        : strcmp(mode, "reflect") == 0 ? K_PAD_REFLECT
                                                       : K_PAD_CONSTANT;
    char zero[8] = {0};
    float fv = ir_attr_float(n, "value", 0);
    const void *value = cv ? cv->data : x->dtype == ENGINE_F32 ? (void *)&fv : (void *)zero;
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    k_pad(x->data, &x->shape, ir_attr_get(n, "pads")->ints, m, value, engine_dtype_size(x->dtype),
          d, &g->tensors[n->out[0]].shape);
    return set_data(g, n, 0, d);
}

/* ---- math ops (kernels_math.c) ---- */

static int unsupported_type(struct ir_graph *g, struct ir_node *n, const struct ir_tensor *x,
                            char *err, size_t errlen)
{
    return ir_node_err(g, n, err, errlen, -ENOTSUP, "input type %s is unsupported for %s",
                       engine_dtype_name(x->dtype), n->op);
}

static int infer_unary_math(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 1, err, errlen);
    if (rc)
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    int out = k_unary_dtype((enum k_unop)k_unop_find(n->op), x->dtype);
    if (!out)
        return unsupported_type(g, n, x, err, errlen);
    return set_out(g, n, 0, out, &x->shape, err, errlen);
}

static int eval_unary_math(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *x = in_t(g, n, 0);
    float alpha, beta;
    k_unary_attrs(n, &alpha, &beta);
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    k_unary((enum k_unop)k_unop_find(n->op), x->dtype, alpha, beta, x->data, d,
            (size_t)engine_shape_numel(&x->shape));
    return set_data(g, n, 0, d);
}

/* Reductions: the reduced axes become the normalised attribute reduce_mask (1 per reduced input
 * axis); empty axes reduce everything unless noop_with_empty_axes, which reduces nothing. */
static int infer_reduce(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 2, err, errlen), k, axis;
    int64_t v[ENGINE_MAX_RANK], mask[ENGINE_MAX_RANK] = {0};
    if (rc || (rc = read_axes(g, n, v, &k, err, errlen)) < 0)
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    if (!k_reduce_dtype_ok((enum k_redop)k_redop_find(n->op), x->dtype))
        return unsupported_type(g, n, x, err, errlen);
    for (int i = 0; (rc == 0 || k == 0) && i < x->shape.rank; i++)
        mask[i] = !ir_attr_int(n, "noop_with_empty_axes", 0);
    for (int i = 0; i < k; i++) {
        if ((rc = norm_axis(g, n, v[i], x->shape.rank, &axis, err, errlen)))
            return rc;
        mask[axis] = 1;
    }
    int keep = ir_attr_int(n, "keepdims", 1) != 0;
    struct engine_shape o = {.rank = 0};
    for (int i = 0; i < x->shape.rank; i++)
        if (!mask[i] || keep)
            o.dims[o.rank++] = mask[i] ? 1 : x->shape.dims[i];
    if (ir_attr_set_ints(n, "reduce_mask", mask, (size_t)x->shape.rank))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, x->dtype, &o, err, errlen);
}

static int eval_reduce(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *x = in_t(g, n, 0);
    const struct ir_attr *a = ir_attr_get(n, "reduce_mask");
    int32_t mask[ENGINE_MAX_RANK];
    for (int i = 0; i < x->shape.rank; i++)
        mask[i] = (int32_t)a->ints[i];
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    k_reduce((enum k_redop)k_redop_find(n->op), x->dtype, x->data, &x->shape, mask, d);
    return set_data(g, n, 0, d);
}

/* ArgMax/ArgMin: int64 indices; axis normalised. */
static int infer_argext(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 1, err, errlen), axis;
    if (rc || (rc = want_dtype(g, n, 0, ENGINE_F32, err, errlen)))
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    if ((rc = norm_axis(g, n, ir_attr_int(n, "axis", 0), x->shape.rank, &axis, err, errlen)))
        return rc;
    if (x->shape.dims[axis] < 1)
        return ir_node_err(g, n, err, errlen, -EINVAL, "axis %d is empty", axis);
    int keep = ir_attr_int(n, "keepdims", 1) != 0;
    struct engine_shape o = {.rank = 0};
    for (int i = 0; i < x->shape.rank; i++)
        if (i != axis || keep)
            o.dims[o.rank++] = i == axis ? 1 : x->shape.dims[i];
    if (ir_attr_set_int(n, "axis", axis))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, ENGINE_I64, &o, err, errlen);
}

/* LogSoftmax, Hardmax: axis normalised; before opset 13 the kernel coerces to 2-D at axis. */
static int infer_softmax_f(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 1, err, errlen), axis;
    if (rc || (rc = want_dtype(g, n, 0, ENGINE_F32, err, errlen)))
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    int64_t def = g->opset >= 13 ? -1 : 1;
    if ((rc = norm_axis(g, n, ir_attr_int(n, "axis", def), x->shape.rank, &axis, err, errlen)))
        return rc;
    if (ir_attr_set_int(n, "axis", axis))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, ENGINE_F32, &x->shape, err, errlen);
}

/* And, Or, Xor, Mod, LessOrEqual, GreaterOrEqual, PRelu (slope broadcast to X only). */
static int infer_logic(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 2, 2, err, errlen);
    if (rc)
        return rc;
    struct ir_tensor *a = in_t(g, n, 0), *b = in_t(g, n, 1);
    int op = k_logop_of(n);
    if (op < 0)
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "unsupported attribute direction=%s",
                           ir_attr_str(n, "direction", ""));
    int out = a->dtype == b->dtype ? k_logic_dtype((enum k_logop)op, a->dtype) : 0;
    if (!out)
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "input types %s and %s are unsupported",
                           engine_dtype_name(a->dtype), engine_dtype_name(b->dtype));
    struct engine_shape o;
    char s1[128], s2[128];
    if (k_broadcast_shape(&a->shape, &b->shape, &o) ||
        (op == K_PRELU && (o.rank != a->shape.rank ||
                           memcmp(o.dims, a->shape.dims, (size_t)o.rank * sizeof(int64_t)))))
        return ir_node_err(g, n, err, errlen, -EINVAL, "shapes %s and %s do not broadcast",
                           shape_s(&a->shape, s1), shape_s(&b->shape, s2));
    return set_out(g, n, 0, out, &o, err, errlen);
}

/* Two-input Max/Min of the dtypes the binary kernels take stay binary ops. */
static int eval_logic(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *a = in_t(g, n, 0), *b = in_t(g, n, 1), *o = &g->tensors[n->out[0]];
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    int rc = k_logic((enum k_logop)k_logop_of(n), a->dtype, a->data, &a->shape, b->data, &b->shape,
                     d, &o->shape);
    if (rc) {
        free(d);
        return ir_node_err(g, n, err, errlen, rc, "integer modulo by zero in constants");
    }
    return set_data(g, n, 0, d);
}

static int variadic_binary(struct ir_graph *g, const struct ir_node *n)
{
    struct ir_tensor *a = in_t(g, n, 0);
    return n->n_in == 2 && (strcmp(n->op, "Max") == 0 || strcmp(n->op, "Min") == 0) && a &&
           (a->dtype == ENGINE_F32 || a->dtype == ENGINE_I32 || a->dtype == ENGINE_I64);
}

/* Sum, Mean, Max, Min of 1 to 8 inputs (two-input Max/Min stay binary ops). */
static int infer_variadic(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    if (variadic_binary(g, n))
        return infer_binary(g, n, err, errlen);
    int rc = arity(g, n, 1, 8, err, errlen);
    if (rc)
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    struct engine_shape o = x->shape;
    for (int i = 0; i < n->n_in; i++) {
        struct ir_tensor *t = in_t(g, n, i);
        if (!t || t->dtype != x->dtype || k_broadcast_shape(&o, &t->shape, &o))
            return ir_node_err(g, n, err, errlen, -EINVAL,
                               "inputs are missing, differ in type or do not broadcast");
    }
    if (!k_variadic_dtype_ok((enum k_varop)k_varop_find(n->op), x->dtype))
        return unsupported_type(g, n, x, err, errlen);
    return set_out(g, n, 0, x->dtype, &o, err, errlen);
}

static int eval_variadic(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    if (variadic_binary(g, n))
        return eval_binary(g, n, err, errlen);
    const void *srcs[8];
    struct engine_shape shapes[8];
    for (int i = 0; i < n->n_in; i++) {
        srcs[i] = in_t(g, n, i)->data;
        shapes[i] = in_t(g, n, i)->shape;
    }
    struct ir_tensor *o = &g->tensors[n->out[0]];
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    k_variadic((enum k_varop)k_varop_find(n->op), o->dtype, srcs, shapes, n->n_in, d, &o->shape);
    return set_data(g, n, 0, d);
}

/* Add, Sub, Mul, Div, Pow on int8/uint8, and Pow whose exponent has another type than its base:
 * the arithmetic kernel; every other case is an ordinary binary op. */
static int is_arith(struct ir_graph *g, struct ir_node *n)
{
    struct ir_tensor *a = in_t(g, n, 0), *b = in_t(g, n, 1);
    return n->n_in == 2 && a && b &&
           (a->dtype != b->dtype || a->dtype == ENGINE_I8 || a->dtype == ENGINE_U8);
}

static int infer_arith(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    if (!is_arith(g, n))
        return infer_binary(g, n, err, errlen);
    struct ir_tensor *a = in_t(g, n, 0), *b = in_t(g, n, 1);
    struct engine_shape o;
    if (!k_arith_dtypes_ok(binop_of(n->op), a->dtype, b->dtype))
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "input types %s and %s are unsupported",
                           engine_dtype_name(a->dtype), engine_dtype_name(b->dtype));
    if (k_broadcast_shape(&a->shape, &b->shape, &o))
        return ir_node_err(g, n, err, errlen, -EINVAL, "input shapes do not broadcast");
    return set_out(g, n, 0, a->dtype, &o, err, errlen);
}

static int eval_arith(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    if (!is_arith(g, n))
        return eval_binary(g, n, err, errlen);
    struct ir_tensor *a = in_t(g, n, 0), *b = in_t(g, n, 1), *o = &g->tensors[n->out[0]];
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    int rc = k_arith(binop_of(n->op), a->dtype, a->data, &a->shape, b->dtype, b->data, &b->shape, d,
                     &o->shape);
    if (rc) {
        free(d);
        return ir_node_err(g, n, err, errlen, rc, "integer division by zero in constants");
    }
    return set_data(g, n, 0, d);
}

/* TopK: k from the constant input (opset 10 on) or attribute; values and int64 indices. */
static int infer_topk(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 2, err, errlen), axis, cnt = 1;
    int64_t k = ir_attr_int(n, "k", -1);
    if (rc || (rc = want_dtype(g, n, 0, ENGINE_F32, err, errlen)))
        return rc;
    if (n->n_in > 1 && (rc = const_ints(g, n, 1, &k, 1, &cnt, err, errlen)))
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    if ((rc = norm_axis(g, n, ir_attr_int(n, "axis", -1), x->shape.rank, &axis, err, errlen)))
        return rc;
    if (cnt != 1 || k < 0 || k > x->shape.dims[axis])
        return ir_node_err(g, n, err, errlen, -EINVAL, "k must be one value in [0, %lld]",
                           (long long)x->shape.dims[axis]);
    if (!ir_attr_int(n, "sorted", 1))
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "unsupported attribute sorted=0");
    struct engine_shape o = x->shape;
    o.dims[axis] = k;
    if (ir_attr_set_int(n, "axis", axis) || (rc = set_out(g, n, 0, ENGINE_F32, &o, err, errlen)))
        return rc ? rc : oom(g, n, err, errlen);
    return set_out(g, n, 1, ENGINE_I64, &o, err, errlen);
}

/* ---- quantisation, determinant, mean-variance normalisation ---- */

static int is_q8(int dtype)
{
    return dtype == ENGINE_U8 || dtype == ENGINE_I8;
}

/* QuantizeLinear / DequantizeLinear: scale and zero point per tensor or per axis (normalised). */
static int infer_quant(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 2, 3, err, errlen), axis = 0;
    if (rc || (rc = want_dtype(g, n, 1, ENGINE_F32, err, errlen)))
        return rc;
    struct ir_tensor *x = in_t(g, n, 0), *sc = in_t(g, n, 1), *zp = in_t(g, n, 2);
    int deq = strcmp(n->op, "DequantizeLinear") == 0;
    int qdt = zp ? zp->dtype : deq ? x->dtype : ENGINE_U8;
    int64_t ns = engine_shape_numel(&sc->shape);
    if (deq ? (!is_q8(x->dtype) && x->dtype != ENGINE_I32) || qdt != x->dtype
            : x->dtype != ENGINE_F32 || !is_q8(qdt))
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "input types %s and %s are unsupported",
                           engine_dtype_name(x->dtype), engine_dtype_name(qdt));
    if (ns != 1 &&
        (rc = norm_axis(g, n, ir_attr_int(n, "axis", 1), x->shape.rank, &axis, err, errlen)))
        return rc;
    if (sc->shape.rank > 1 || (ns != 1 && ns != x->shape.dims[axis]) ||
        (zp && engine_shape_numel(&zp->shape) != ns))
        return ir_node_err(g, n, err, errlen, -EINVAL,
                           "scale and zero point need one value or one per axis element");
    if (ir_attr_set_int(n, "axis", axis))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, deq ? ENGINE_F32 : qdt, &x->shape, err, errlen);
}

static int infer_dynquant(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 1, err, errlen);
    if (rc || (rc = want_dtype(g, n, 0, ENGINE_F32, err, errlen)))
        return rc;
    struct engine_shape scalar = {.rank = 0};
    if ((rc = set_out(g, n, 0, ENGINE_U8, &in_t(g, n, 0)->shape, err, errlen)) ||
        (rc = set_out(g, n, 1, ENGINE_F32, &scalar, err, errlen)))
        return rc;
    return set_out(g, n, 2, ENGINE_U8, &scalar, err, errlen);
}

/* a [batch..., m, k] x b [k, n] or [batch..., k, n]: the output shape, or -EINVAL. */
static int qmatmul_shape(const struct ir_tensor *a, const struct ir_tensor *b,
                         struct engine_shape *o)
{
    int r = a->shape.rank;
    if (r < 2 || (b->shape.rank != 2 && b->shape.rank != r) ||
        b->shape.dims[b->shape.rank - 2] != a->shape.dims[r - 1] ||
        (b->shape.rank == r &&
         memcmp(a->shape.dims, b->shape.dims, (size_t)(r - 2) * sizeof(int64_t))))
        return -EINVAL;
    *o = a->shape;
    o->dims[r - 1] = b->shape.dims[b->shape.rank - 1];
    return 0;
}

/* MatMulInteger (A, B, [a_zero_point], [b_zero_point]) and QLinearMatMul (8 inputs). */
static int infer_qmatmul(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int ql = strcmp(n->op, "QLinearMatMul") == 0;
    int rc = arity(g, n, ql ? 8 : 2, ql ? 8 : 4, err, errlen);
    if (rc)
        return rc;
    struct ir_tensor *a = in_t(g, n, 0), *b = in_t(g, n, ql ? 3 : 1);
    struct engine_shape o;
    if (!is_q8(a->dtype) || !is_q8(b->dtype) || qmatmul_shape(a, b, &o))
        return ir_node_err(g, n, err, errlen, -ENOTSUP,
                           "needs uint8/int8 A [..., M, K] and B [K, N] or [..., K, N]");
    int64_t m = a->shape.dims[a->shape.rank - 2], nn = o.dims[o.rank - 1];
    for (int i = 2; i < n->n_in; i++) {
        struct ir_tensor *t = ql && i == 3 ? NULL : in_t(g, n, i); /* 3 is B itself */
        int64_t k = t ? engine_shape_numel(&t->shape) : 1;
        int want = ql       ? (i == 4 || i == 6 ? ENGINE_F32
                               : i == 5         ? b->dtype
                               : i == 7         ? -1
                                                : a->dtype)
                   : i == 2 ? a->dtype
                            : b->dtype;
        int64_t per = ql ? 1 : i == 2 ? m : nn;
        if (t && ((want >= 0 && t->dtype != want) || (want < 0 && !is_q8(t->dtype)) ||
                  t->shape.rank > 1 || (k != 1 && k != per)))
            return ir_node_err(g, n, err, errlen, -ENOTSUP,
                               "scales and zero points must be per tensor (or per row/column)");
    }
    if (ql &&
        (in_t(g, n, 1)->dtype != ENGINE_F32 || engine_shape_numel(&in_t(g, n, 1)->shape) != 1))
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "a_scale must be one float32");
    return set_out(g, n, 0, ql ? in_t(g, n, 7)->dtype : ENGINE_I32, &o, err, errlen);
}

/* ConvInteger (x, w, [x_zero_point], [w_zero_point]) and QLinearConv without a bias: the window
 * as Conv's, normalised the same way. */
static int infer_qconv(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int ql = strcmp(n->op, "QLinearConv") == 0;
    int rc = arity(g, n, ql ? 8 : 2, ql ? 9 : 4, err, errlen);
    if (rc)
        return rc;
    if (ql && in_t(g, n, 8))
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "unsupported input B");
    struct ir_tensor *x = in_t(g, n, 0), *w = in_t(g, n, ql ? 3 : 1);
    if ((rc = spatial_input(g, n, x, err, errlen)))
        return rc;
    int64_t group = ir_attr_int(n, "group", 1), m = w->shape.dims[0];
    if (!is_q8(x->dtype) || !is_q8(w->dtype) || w->shape.rank != x->shape.rank || group < 1 ||
        group > MAX_GROUP || m % group || w->shape.dims[1] * group != x->shape.dims[1])
        return ir_node_err(g, n, err, errlen, -ENOTSUP,
                           "needs uint8/int8 input and weights that fit it with group=%lld",
                           (long long)group);
    for (int i = 2; i < n->n_in && i < 8; i++) {
        struct ir_tensor *t = ql && i == 3 ? NULL : in_t(g, n, i); /* 3 is W itself */
        int want = !ql                          ? (i == 2 ? x->dtype : w->dtype)
                   : i == 1 || i == 4 || i == 6 ? ENGINE_F32
                   : i == 2                     ? x->dtype
                   : i == 5                     ? w->dtype
                                                : -1;
        int64_t per = (!ql && i == 3) || (ql && (i == 4 || i == 5)) ? m : 1;
        int64_t k = t ? engine_shape_numel(&t->shape) : 1;
        if (t && ((want >= 0 && t->dtype != want) || (want < 0 && !is_q8(t->dtype)) ||
                  t->shape.rank > 1 || (k != 1 && k != per)))
            return ir_node_err(g, n, err, errlen, -ENOTSUP,
                               "scales and zero points must be per tensor (or per channel)");
    }
    if (ql &&
        (in_t(g, n, 1)->dtype != ENGINE_F32 || engine_shape_numel(&in_t(g, n, 1)->shape) != 1))
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "x_scale must be one float32");
    struct window win = {.k = x->shape.rank - 2};
    for (int i = 0; i < win.k; i++)
        win.kernel[i] = w->shape.dims[2 + i];
    struct engine_shape o = {.rank = x->shape.rank, .dims = {x->shape.dims[0], m}};
    if ((rc = read_window(g, n, &win, err, errlen)) ||
        (rc = window_out(g, n, &win, x->shape.dims + 2, 0, o.dims + 2, err, errlen)))
        return rc;
    if ((rc = write_window(n, &win)) || (rc = ir_attr_set_int(n, "group", group)))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, ql ? in_t(g, n, 7)->dtype : ENGINE_I32, &o, err, errlen);
}

/* Einsum: the equation becomes the normalised attribute einsum_spec (kernels.h). */
static int infer_einsum(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, K_EINSUM_MAX_IN, err, errlen), ranks[K_EINSUM_MAX_IN];
    if (rc)
        return rc;
    struct engine_shape shapes[K_EINSUM_MAX_IN], o;
    for (int i = 0; i < n->n_in; i++) {
        struct ir_tensor *t = in_t(g, n, i);
        if (!t || t->dtype != in_t(g, n, 0)->dtype || !k_einsum_dtype_ok(t->dtype))
            return ir_node_err(g, n, err, errlen, -ENOTSUP,
                               "inputs must share one type of float32, float64, int32, int64");
        ranks[i] = t->shape.rank;
        shapes[i] = t->shape;
    }
    int32_t spec[2 + ENGINE_MAX_RANK + K_EINSUM_MAX_IN * (1 + ENGINE_MAX_RANK)];
    int64_t wide[sizeof(spec) / sizeof(spec[0])];
    const char *eq = ir_attr_str(n, "equation", "");
    int len = k_einsum_parse(eq, n->n_in, ranks, spec, (int)(sizeof(spec) / sizeof(spec[0])));
    if (len < 0 || k_einsum_check(spec, len, shapes, n->n_in, &o))
        return ir_node_err(g, n, err, errlen, -ENOTSUP,
                           "equation '%s' is unsupported for these shapes (labels must agree in "
                           "size, one ellipsis length)",
                           eq);
    for (int i = 0; i < len; i++)
        wide[i] = spec[i];
    if (ir_attr_set_ints(n, "einsum_spec", wide, (size_t)len))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, in_t(g, n, 0)->dtype, &o, err, errlen);
}

/* HannWindow, HammingWindow, BlackmanWindow: a constant of the given size, folded here (a size
 * computed at run time is refused: it decides the output's shape). */
static int infer_window(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 1, err, errlen), cnt;
    int64_t size;
    if (rc || (rc = const_ints(g, n, 0, &size, 1, &cnt, err, errlen)))
        return rc;
    int dt = (int)ir_attr_int(n, "output_datatype", ENGINE_F32);
    if (cnt != 1 || size < 0 || (size == 1 && !ir_attr_int(n, "periodic", 1)))
        return ir_node_err(g, n, err, errlen, -EINVAL,
                           "size must be one value >= 0 (2 or more "
                           "for a symmetric window)");
    if (dt != ENGINE_F32 && dt != ENGINE_F64)
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "unsupported attribute output_datatype=%d",
                           dt);
    struct engine_shape o = {.rank = 1, .dims = {size}};
    return set_out(g, n, 0, dt, &o, err, errlen);
}

static int eval_window(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *o = &g->tensors[n->out[0]];
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    k_window((enum k_window)k_window_find(n->op), o->shape.dims[0],
             ir_attr_int(n, "periodic", 1) != 0, o->dtype, d);
    return set_data(g, n, 0, d);
}

/* MelWeightMatrix: every input must be constant (they decide the shape); folded here. */
static int infer_mel(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 5, 5, err, errlen), cnt;
    int64_t v[3];
    for (int i = 0; i < 3 && !rc; i++)
        if (!(rc = const_ints(g, n, i, &v[i], 1, &cnt, err, errlen)) && cnt != 1)
            rc = ir_node_err(g, n, err, errlen, -EINVAL, "input %d must be one integer", i);
    for (int i = 3; i < 5 && !rc; i++) {
        struct ir_tensor *t = in_t(g, n, i);
        if (!t->data || t->dtype != ENGINE_F32 || engine_shape_numel(&t->shape) != 1)
            rc = ir_node_err(g, n, err, errlen, -ENOTSUP, "input %d must be a float32 constant", i);
    }
    int dt = (int)ir_attr_int(n, "output_datatype", ENGINE_F32);
    if (rc)
        return rc;
    if (v[0] < 0 || v[1] < 0 || v[2] < 1 || (dt != ENGINE_F32 && dt != ENGINE_F64))
        return ir_node_err(g, n, err, errlen, -ENOTSUP,
                           "needs bins >= 0, dft_length >= 0, sample_rate >= 1, float output");
    struct engine_shape o = {.rank = 2, .dims = {v[1] / 2 + 1, v[0]}};
    return set_out(g, n, 0, dt, &o, err, errlen);
}

static int eval_mel(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int64_t v[3];
    int cnt;
    for (int i = 0; i < 3; i++)
        const_ints(g, n, i, &v[i], 1, &cnt, err, errlen);
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    if (k_mel_weights(v[0], v[1], v[2], *(const float *)in_t(g, n, 3)->data,
                      *(const float *)in_t(g, n, 4)->data, g->tensors[n->out[0]].dtype, d)) {
        free(d);
        return ir_node_err(g, n, err, errlen, -EINVAL,
                           "a filter edge falls outside the spectrogram bins");
    }
    return set_data(g, n, 0, d);
}

/* STFT (opset 17): frame_step and frame_length must be constant (they decide the shape). */
static int infer_stft(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 2, 4, err, errlen), cnt = 1;
    int64_t step, fl = -1;
    if (rc || (rc = want_dtype(g, n, 0, ENGINE_F32, err, errlen)) ||
        (rc = want_dtype(g, n, 2, ENGINE_F32, err, errlen)) ||
        (rc = const_ints(g, n, 1, &step, 1, &cnt, err, errlen)))
        return rc;
    struct ir_tensor *x = in_t(g, n, 0), *w = in_t(g, n, 2);
    if (cnt == 1 && in_t(g, n, 3) && (rc = const_ints(g, n, 3, &fl, 1, &cnt, err, errlen)))
        return rc;
    fl = fl < 0 && w ? engine_shape_numel(&w->shape) : fl;
    int onesided = ir_attr_int(n, "onesided", 1) != 0;
    if (cnt != 1 || x->shape.rank != 3 || (x->shape.dims[2] != 1 && x->shape.dims[2] != 2) ||
        step < 1 || fl < 1 || fl > x->shape.dims[1] || (w && engine_shape_numel(&w->shape) != fl) ||
        (onesided && x->shape.dims[2] == 2) || step > INT32_MAX || fl > INT32_MAX)
        return ir_node_err(g, n, err, errlen, -ENOTSUP,
                           "needs a [batch, length, 1 or 2] signal, a constant frame_step and a "
                           "frame length (input or window size) within the signal");
    struct engine_shape o = {.rank = 4,
                             .dims = {x->shape.dims[0], (x->shape.dims[1] - fl) / step + 1,
                                      onesided ? fl / 2 + 1 : fl, 2}};
    if (ir_attr_set_int(n, "frame_step", step) || ir_attr_set_int(n, "frame_length", fl))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, ENGINE_F32, &o, err, errlen);
}

static int infer_det(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 1, err, errlen);
    if (rc || (rc = want_dtype(g, n, 0, ENGINE_F32, err, errlen)))
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    int r = x->shape.rank;
    if (r < 2 || x->shape.dims[r - 1] != x->shape.dims[r - 2] || x->shape.dims[r - 1] > K_DET_MAX)
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "needs square matrices of at most %d rows",
                           K_DET_MAX);
    struct engine_shape o = x->shape;
    o.rank -= 2;
    return set_out(g, n, 0, ENGINE_F32, &o, err, errlen);
}

/* DFT (opset 17): real or complex signal, the transform along axis; dft_length must be absent. */
static int infer_dft(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 2, err, errlen), axis;
    if (rc || (rc = want_dtype(g, n, 0, ENGINE_F32, err, errlen)))
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    int r = x->shape.rank;
    if (in_t(g, n, 1))
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "unsupported input dft_length");
    if (r < 3 || (x->shape.dims[r - 1] != 1 && x->shape.dims[r - 1] != 2))
        return ir_node_err(g, n, err, errlen, -EINVAL, "needs [batch, signal..., 1 or 2]");
    if ((rc = norm_axis(g, n, ir_attr_int(n, "axis", 1), r, &axis, err, errlen)))
        return rc;
    int onesided = ir_attr_int(n, "onesided", 0) != 0;
    if (axis < 1 || axis > r - 2 || (onesided && ir_attr_int(n, "inverse", 0)))
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "unsupported axis or onesided inverse");
    struct engine_shape o = x->shape;
    o.dims[r - 1] = 2;
    o.dims[axis] = onesided ? o.dims[axis] / 2 + 1 : o.dims[axis];
    if (ir_attr_set_int(n, "axis", axis))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, ENGINE_F32, &o, err, errlen);
}

/* MeanVarianceNormalization: axes (default 0, 2, 3) become reduce_mask. */
static int infer_mvn(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 1, err, errlen), axis;
    if (rc || (rc = want_dtype(g, n, 0, ENGINE_F32, err, errlen)))
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    const struct ir_attr *a = ir_attr_get(n, "axes");
    int64_t def[3] = {0, 2, 3}, mask[ENGINE_MAX_RANK] = {0};
    const int64_t *axes = a && a->type == IR_ATTR_INTS ? a->ints : def;
    size_t na = a && a->type == IR_ATTR_INTS ? a->n : 3;
    for (size_t i = 0; i < na; i++) {
        if ((rc = norm_axis(g, n, axes[i], x->shape.rank, &axis, err, errlen)))
            return rc;
        mask[axis] = 1;
    }
    if (ir_attr_set_ints(n, "reduce_mask", mask, (size_t)x->shape.rank))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, ENGINE_F32, &x->shape, err, errlen);
}

/* Clip: the activation when float32 with constant bounds, else a C kernel whose bounds (one
 * element of the input's type each) may be computed at run time. */
static int clip_is_act(struct ir_graph *g, struct ir_node *n)
{
    enum ir_act act;
    float a, b;
    struct ir_tensor *x = in_t(g, n, 0);
    return x && x->dtype == ENGINE_F32 && ir_node_act(g, n, &act, &a, &b);
}

static int infer_clip(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    if (clip_is_act(g, n))
        return infer_act(g, n, err, errlen);
    int rc = arity(g, n, 1, 3, err, errlen);
    if (rc)
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    if (!k_clip_dtype_ok(x->dtype))
        return unsupported_type(g, n, x, err, errlen);
    for (int i = 1; i <= 2; i++) {
        struct ir_tensor *b = in_t(g, n, i);
        if (b && (b->dtype != x->dtype || engine_shape_numel(&b->shape) != 1))
            return ir_node_err(g, n, err, errlen, -EINVAL,
                               "min and max must be one element of the input's type");
    }
    return set_out(g, n, 0, x->dtype, &x->shape, err, errlen);
}

static int eval_clip(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    if (clip_is_act(g, n))
        return eval_act(g, n, err, errlen);
    struct ir_tensor *x = in_t(g, n, 0), *lo = in_t(g, n, 1), *hi = in_t(g, n, 2);
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    k_clip(x->dtype, x->data, lo ? lo->data : NULL, hi ? hi->data : NULL, d,
           (size_t)engine_shape_numel(&x->shape));
    return set_data(g, n, 0, d);
}

/* InstanceNormalization: X [N, C, ...], scale and B [C]. */
static int infer_instnorm(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 3, 3, err, errlen);
    for (int i = 0; i < 3 && !rc; i++)
        rc = want_dtype(g, n, i, ENGINE_F32, err, errlen);
    if (rc)
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    if (x->shape.rank < 2 || engine_shape_numel(&in_t(g, n, 1)->shape) != x->shape.dims[1] ||
        engine_shape_numel(&in_t(g, n, 2)->shape) != x->shape.dims[1])
        return ir_node_err(g, n, err, errlen, -EINVAL,
                           "input [N, C, ...] with scale and B of C values each expected");
    return set_out(g, n, 0, ENGINE_F32, &x->shape, err, errlen);
}

/* NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss: input [N, C, d...], int64 target
 * [N, d...], optional weights [C]; loss per element (reduction none) or a scalar. */
static int infer_loss(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 2, 3, err, errlen);
    if (rc || (rc = want_dtype(g, n, 0, ENGINE_F32, err, errlen)) ||
        (rc = want_dtype(g, n, 1, ENGINE_I64, err, errlen)) ||
        (rc = want_dtype(g, n, 2, ENGINE_F32, err, errlen)))
        return rc;
    struct ir_tensor *x = in_t(g, n, 0), *t = in_t(g, n, 1), *w = in_t(g, n, 2);
    const char *red = ir_attr_str(n, "reduction", "mean");
    int ok = x->shape.rank >= 2 && t->shape.rank == x->shape.rank - 1 &&
             t->shape.dims[0] == x->shape.dims[0] &&
             memcmp(t->shape.dims + 1, x->shape.dims + 2,
                    (size_t)(t->shape.rank - 1) * sizeof(int64_t)) == 0 &&
             (!w || (w->shape.rank == 1 && w->shape.dims[0] == x->shape.dims[1]));
    if (!ok)
        return ir_node_err(g, n, err, errlen, -EINVAL,
                           "input [N, C, ...], target [N, ...] and weights [C] do not match");
    if (strcmp(red, "none") != 0 && strcmp(red, "sum") != 0 && strcmp(red, "mean") != 0)
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "unsupported attribute reduction=%s", red);
    struct engine_shape scalar = {.rank = 0};
    rc = set_out(g, n, 0, ENGINE_F32, strcmp(red, "none") == 0 ? &t->shape : &scalar, err, errlen);
    if (!rc && strcmp(n->op, "SoftmaxCrossEntropyLoss") == 0)
        rc = set_out(g, n, 1, ENGINE_F32, &x->shape, err, errlen);
    return rc;
}

/* ---- the table ---- */

/* ---- data movement (kernels_move.c) ---- */

static int index_input(struct ir_graph *g, struct ir_node *n, int i, char *err, size_t errlen)
{
    struct ir_tensor *t = in_t(g, n, i);
    if (t->dtype != ENGINE_I64 && t->dtype != ENGINE_I32)
        return ir_node_err(g, n, err, errlen, -EINVAL, "indices must be int64 or int32, are %s",
                           engine_dtype_name(t->dtype));
    return 0;
}

/* The reduction attribute of ScatterElements/ScatterND, kept as "reduction_code". */
static int read_reduction(struct ir_graph *g, struct ir_node *n, int dtype, char *err,
                          size_t errlen)
{
    static const char *names[] = {"none", "add", "mul", "max", "min"};
    const char *r = ir_attr_str(n, "reduction", "none");
    size_t k = 0;
    while (k < ARRAY_LEN(names) && strcmp(names[k], r) != 0)
        k++;
    if (k == ARRAY_LEN(names) || !k_reduction_ok((enum k_scatter_red)k, dtype))
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "unsupported attribute reduction=%s for %s",
                           r, engine_dtype_name(dtype));
    return ir_attr_set_int(n, "reduction_code", (int64_t)k) ? oom(g, n, err, errlen) : 0;
}

/* GatherElements, and ScatterElements/Scatter (scatter = 1): indices (and updates) of data's
 * rank, no larger than data off the axis. */
static int elements_common(struct ir_graph *g, struct ir_node *n, int scatter, char *err,
                           size_t errlen)
{
    int rc = arity(g, n, 2 + scatter, 2 + scatter, err, errlen), axis;
    if (rc || (rc = index_input(g, n, 1, err, errlen)))
        return rc;
    struct ir_tensor *x = in_t(g, n, 0), *idx = in_t(g, n, 1), *u = in_t(g, n, 2);
    if ((rc = norm_axis(g, n, ir_attr_int(n, "axis", 0), x->shape.rank, &axis, err, errlen)))
        return rc;
    int ok = idx->shape.rank == x->shape.rank;
    for (int d = 0; ok && d < x->shape.rank; d++)
        ok = d == axis || idx->shape.dims[d] <= x->shape.dims[d];
    if (ok && scatter)
        ok = u->dtype == x->dtype && u->shape.rank == idx->shape.rank &&
             !memcmp(u->shape.dims, idx->shape.dims, (size_t)u->shape.rank * sizeof(int64_t));
    char s1[128], s2[128];
    if (!ok)
        return ir_node_err(g, n, err, errlen, -EINVAL, "indices %s do not fit data %s",
                           shape_s(&idx->shape, s1), shape_s(&x->shape, s2));
    if (scatter && (rc = read_reduction(g, n, x->dtype, err, errlen)))
        return rc;
    if (ir_attr_set_int(n, "axis", axis))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, x->dtype, scatter ? &x->shape : &idx->shape, err, errlen);
}

static int infer_gather_elements(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    return elements_common(g, n, 0, err, errlen);
}

static int infer_scatter_elements(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    return elements_common(g, n, 1, err, errlen);
}

static int index_err(struct ir_graph *g, struct ir_node *n, void *d, char *err, size_t errlen)
{
    free(d);
    return ir_node_err(g, n, err, errlen, -EINVAL, "constant index out of range");
}

static int eval_gather_elements(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *x = in_t(g, n, 0), *idx = in_t(g, n, 1);
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    if (k_gather_elements(x->data, &x->shape, idx->data, idx->dtype, &idx->shape,
                          (int)ir_attr_int(n, "axis", 0), engine_dtype_size(x->dtype), d))
        return index_err(g, n, d, err, errlen);
    return set_data(g, n, 0, d);
}

static int eval_scatter_elements(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *x = in_t(g, n, 0), *idx = in_t(g, n, 1), *u = in_t(g, n, 2);
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    if (k_scatter_elements(x->data, &x->shape, idx->data, idx->dtype, &idx->shape, u->data,
                           (int)ir_attr_int(n, "axis", 0),
                           (enum k_scatter_red)ir_attr_int(n, "reduction_code", 0), x->dtype, d))
        return index_err(g, n, d, err, errlen);
    return set_data(g, n, 0, d);
}

/* GatherND (scatter = 0) and ScatterND: tuples of k indices in the last dim of indices. */
static int nd_common(struct ir_graph *g, struct ir_node *n, int scatter, char *err, size_t errlen)
{
    int rc = arity(g, n, 2 + scatter, 2 + scatter, err, errlen);
    if (rc || (rc = index_input(g, n, 1, err, errlen)))
        return rc;
    struct ir_tensor *x = in_t(g, n, 0), *idx = in_t(g, n, 1), *u = in_t(g, n, 2);
    int64_t b = scatter ? 0 : ir_attr_int(n, "batch_dims", 0);
    int64_t k = idx->shape.rank ? idx->shape.dims[idx->shape.rank - 1] : 0;
    int r = x->shape.rank, q = idx->shape.rank;
    if (b < 0 || b >= q || b >= r || k < 1 || b + k > r || q - 1 + r - b - k > ENGINE_MAX_RANK)
        return ir_node_err(g, n, err, errlen, -EINVAL,
                           "batch_dims %lld and index depth %lld do not fit ranks %d and %d",
                           (long long)b, (long long)k, r, q);
    struct engine_shape o = {.rank = 0};
    for (int64_t d = 0; d < b; d++) {
        if (idx->shape.dims[d] != x->shape.dims[d])
            return ir_node_err(g, n, err, errlen, -EINVAL, "batch dims of data and indices differ");
        o.dims[o.rank++] = x->shape.dims[d];
    }
    for (int64_t d = b; d < q - 1; d++)
        o.dims[o.rank++] = idx->shape.dims[d];
    for (int64_t d = b + k; d < r; d++)
        o.dims[o.rank++] = x->shape.dims[d];
    if (!scatter)
        return set_out(g, n, 0, x->dtype, &o, err, errlen);
    if (u->dtype != x->dtype || u->shape.rank != o.rank ||
        memcmp(u->shape.dims, o.dims, (size_t)o.rank * sizeof(int64_t)))
        return ir_node_err(g, n, err, errlen, -EINVAL, "updates do not fit indices and data");
    if ((rc = read_reduction(g, n, x->dtype, err, errlen)))
        return rc;
    return set_out(g, n, 0, x->dtype, &x->shape, err, errlen);
}

static int infer_gather_nd(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    return nd_common(g, n, 0, err, errlen);
}

static int infer_scatter_nd(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    return nd_common(g, n, 1, err, errlen);
}

static int eval_gather_nd(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *x = in_t(g, n, 0), *idx = in_t(g, n, 1);
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    if (k_gather_nd(x->data, &x->shape, idx->data, idx->dtype, &idx->shape,
                    (int)ir_attr_int(n, "batch_dims", 0), engine_dtype_size(x->dtype), d))
        return index_err(g, n, d, err, errlen);
    return set_data(g, n, 0, d);
}

static int eval_scatter_nd(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *x = in_t(g, n, 0), *idx = in_t(g, n, 1), *u = in_t(g, n, 2);
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    if (k_scatter_nd(x->data, &x->shape, idx->data, idx->dtype, &idx->shape, u->data,
                     (enum k_scatter_red)ir_attr_int(n, "reduction_code", 0), x->dtype, d))
        return index_err(g, n, d, err, errlen);
    return set_data(g, n, 0, d);
}

static int infer_trilu(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 2, err, errlen);
    if (rc)
        return rc;
    struct ir_tensor *x = in_t(g, n, 0), *k = in_t(g, n, 1);
    if (x->shape.rank < 2)
        return ir_node_err(g, n, err, errlen, -EINVAL, "input must have rank >= 2");
    if (k && (k->dtype != ENGINE_I64 || engine_shape_numel(&k->shape) != 1))
        return ir_node_err(g, n, err, errlen, -EINVAL, "k must be one int64");
    int64_t upper = ir_attr_int(n, "upper", 1);
    if (upper != 0 && upper != 1)
        return ir_node_err(g, n, err, errlen, -EINVAL, "attribute upper must be 0 or 1");
    return set_out(g, n, 0, x->dtype, &x->shape, err, errlen);
}

static int eval_trilu(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *x = in_t(g, n, 0), *k = in_t(g, n, 1);
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    k_trilu(x->data, &x->shape, k ? *(int64_t *)k->data : 0, (int)ir_attr_int(n, "upper", 1),
            engine_dtype_size(x->dtype), d);
    return set_data(g, n, 0, d);
}

/* DepthToSpace (DCR, CRD) and SpaceToDepth; the mode is kept as "depth_mode". */
static int infer_depth_space(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 1, err, errlen);
    if (rc)
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    int64_t b = ir_attr_int(n, "blocksize", 0), mode = K_SPACE_TO_DEPTH;
    if (strcmp(n->op, "DepthToSpace") == 0) {
        const char *m = ir_attr_str(n, "mode", "DCR");
        mode = strcmp(m, "DCR") == 0 ? K_DEPTH_DCR : strcmp(m, "CRD") == 0 ? K_DEPTH_CRD : -1;
        if (mode < 0)
            return ir_node_err(g, n, err, errlen, -ENOTSUP, "unsupported attribute mode=%s", m);
    }
    if (x->shape.rank != 4 || b < 1 || b > (1 << 15))
        return ir_node_err(g, n, err, errlen, -EINVAL, "needs a 4-D input and a blocksize >= 1");
    struct engine_shape o = x->shape;
    const int64_t *s = x->shape.dims;
    int fits = mode == K_SPACE_TO_DEPTH ? s[2] % b == 0 && s[3] % b == 0 : s[1] % (b * b) == 0;
    if (!fits)
        return ir_node_err(g, n, err, errlen, -EINVAL, "blocksize %lld does not divide the input",
                           (long long)b);
    if (mode == K_SPACE_TO_DEPTH) {
        o.dims[1] = s[1] * b * b, o.dims[2] = s[2] / b, o.dims[3] = s[3] / b;
    } else {
        o.dims[1] = s[1] / (b * b), o.dims[2] = s[2] * b, o.dims[3] = s[3] * b;
    }
    if (ir_attr_set_int(n, "depth_mode", mode))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, x->dtype, &o, err, errlen);
}

static int eval_depth_space(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *x = in_t(g, n, 0);
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    k_depth_space(x->data, &x->shape, ir_attr_int(n, "blocksize", 1),
                  (enum k_depth_mode)ir_attr_int(n, "depth_mode", 0), engine_dtype_size(x->dtype),
                  d);
    return set_data(g, n, 0, d);
}

static int infer_tile(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 2, 2, err, errlen), k;
    int64_t rep[ENGINE_MAX_RANK];
    if (rc || (rc = const_ints(g, n, 1, rep, ENGINE_MAX_RANK, &k, err, errlen)))
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    if (k != x->shape.rank)
        return ir_node_err(g, n, err, errlen, -EINVAL, "repeats needs %d values", x->shape.rank);
    struct engine_shape o = x->shape;
    for (int d = 0; d < k; d++) {
        if (rep[d] < 0 || (o.dims[d] && rep[d] > INT64_MAX / o.dims[d]))
            return ir_node_err(g, n, err, errlen, -EINVAL, "repeats out of range on axis %d", d);
        o.dims[d] *= rep[d];
    }
    return set_out(g, n, 0, x->dtype, &o, err, errlen);
}

static int eval_tile(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *x = in_t(g, n, 0);
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    k_tile(x->data, &x->shape, engine_dtype_size(x->dtype), d, &g->tensors[n->out[0]].shape);
    return set_data(g, n, 0, d);
}

/* Split: sizes from the split attribute (before opset 13) or constant input, num_outputs (opset
 * 18) or equal parts; kept as an explicit "split" and a non-negative "axis". */
static int split_sizes(struct ir_graph *g, struct ir_node *n, int64_t dim, int64_t *sz, char *err,
                       size_t errlen)
{
    int k = 0, rc;
    const struct ir_attr *a = ir_attr_get(n, "split");
    if (g->opset < 13 && a) {
        if (a->type != IR_ATTR_INTS || a->n != (size_t)n->n_out)
            return ir_node_err(g, n, err, errlen, -EINVAL, "split needs %d values", n->n_out);
        memcpy(sz, a->ints, a->n * sizeof(int64_t));
        k = n->n_out;
    } else if (g->opset >= 13 && in_t(g, n, 1)) {
        if ((rc = const_ints(g, n, 1, sz, n->n_out, &k, err, errlen)))
            return rc;
    } else {
        int64_t parts = n->n_out, each = parts ? (dim + parts - 1) / parts : 0;
        if (g->opset < 18 && dim % parts)
            return ir_node_err(g, n, err, errlen, -EINVAL, "%lld does not split into %d parts",
                               (long long)dim, n->n_out);
        for (int i = 0; i < n->n_out; i++)
            sz[i] = dim - each * i < each ? (dim - each * i > 0 ? dim - each * i : 0) : each;
        k = n->n_out;
    }
    int64_t sum = 0;
    for (int i = 0; i < k; i++)
        sum += sz[i] >= 0 && sz[i] <= dim ? sz[i] : dim + 1;
    if (k != n->n_out || sum != dim)
        return ir_node_err(g, n, err, errlen, -EINVAL,
                           "split sizes do not add up to %lld over %d outputs", (long long)dim,
                           n->n_out);
    return 0;
}

#define MAX_SPLIT 1024

static int infer_split(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 2, err, errlen), axis;
    if (rc)
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    if (n->n_out > MAX_SPLIT)
        return ir_node_err(g, n, err, errlen, -EINVAL, "more than %d outputs", MAX_SPLIT);
    if ((rc = norm_axis(g, n, ir_attr_int(n, "axis", 0), x->shape.rank, &axis, err, errlen)))
        return rc;
    int64_t sz[MAX_SPLIT];
    if ((rc = split_sizes(g, n, x->shape.dims[axis], sz, err, errlen)))
        return rc;
    for (int i = 0; i < n->n_out; i++) {
        struct engine_shape o = x->shape;
        o.dims[axis] = sz[i];
        if ((rc = set_out(g, n, i, x->dtype, &o, err, errlen)))
            return rc;
    }
    if (ir_attr_set_int(n, "axis", axis) || ir_attr_set_ints(n, "split", sz, (size_t)n->n_out))
        return oom(g, n, err, errlen);
    return 0;
}

static int eval_split(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *x = in_t(g, n, 0);
    int axis = (int)ir_attr_int(n, "axis", 0);
    const struct ir_attr *a = ir_attr_get(n, "split");
    int64_t starts[ENGINE_MAX_RANK] = {0}, steps[ENGINE_MAX_RANK];
    for (int d = 0; d < ENGINE_MAX_RANK; d++)
        steps[d] = 1;
    for (int i = 0; i < n->n_out; i++) {
        if (n->out[i] >= 0) {
            void *d = alloc_out(g, n, i);
            if (!d)
                return oom(g, n, err, errlen);
            k_slice(x->data, &x->shape, starts, steps, &g->tensors[n->out[i]].shape,
                    engine_dtype_size(x->dtype), d);
            set_data(g, n, i, d);
        }
        starts[axis] += a->ints[i];
    }
    return 0;
}

/* EyeLike depends only on its input's shape: always folded to a constant. */
static int infer_eyelike(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 1, err, errlen);
    if (rc)
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    int64_t dt = ir_attr_int(n, "dtype", x->dtype);
    if (dt <= 0 || dt > 100 || !engine_dtype_size((int)dt) || dt == ENGINE_BOOL)
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "unsupported attribute dtype=%lld",
                           (long long)dt);
    if (x->shape.rank != 2)
        return ir_node_err(g, n, err, errlen, -EINVAL, "input must be 2-D");
    return set_out(g, n, 0, (int)dt, &x->shape, err, errlen);
}

static int eval_eyelike(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *o = &g->tensors[n->out[0]];
    int64_t k = ir_attr_int(n, "k", 0), rows = o->shape.dims[0], cols = o->shape.dims[1];
    uint8_t *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    float one = 1.0f;
    size_t es = engine_dtype_size(o->dtype);
    for (int64_t i = 0; i < rows; i++)
        if (k >= -i && k < cols - i) /* column i + k inside the matrix */
            k_cast(&one, ENGINE_F32, d + (size_t)(i * cols + i + k) * es, o->dtype, 1);
    return set_data(g, n, 0, d);
}

/* ConvTranspose: pads (begin..., end...) follow from the attributes or from output_shape;
 * kept as explicit kernel_shape, strides, dilations, pads and group. */
static int deconv_pads(struct ir_graph *g, struct ir_node *n, struct window *w, const int64_t *in,
                       const int64_t *outpad, int64_t *out, char *err, size_t errlen)
{
    const struct ir_attr *os = ir_attr_get(n, "output_shape");
    const char *ap = ir_attr_str(n, "auto_pad", "NOTSET");
    int upper = strcmp(ap, "SAME_UPPER") == 0, lower = strcmp(ap, "SAME_LOWER") == 0;
    if (strcmp(ap, "NOTSET") && strcmp(ap, "VALID") && !upper && !lower)
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "unsupported attribute auto_pad=%s", ap);
    if (os && (os->type != IR_ATTR_INTS || (os->n != (size_t)w->k && os->n != (size_t)w->k + 2)))
        return ir_node_err(g, n, err, errlen, -EINVAL, "output_shape needs %d values", w->k);
    if (os && (upper || lower))
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "output_shape with auto_pad=%s", ap);
    for (int i = 0; i < w->k; i++) {
        int64_t full = w->stride[i] * (in[i] - 1) + outpad[i] + (w->kernel[i] - 1) * w->dil[i] + 1;
        if (!os && !upper && !lower) {
            if (strcmp(ap, "VALID") == 0)
                w->pads[i] = w->pads[w->k + i] = 0;
            out[i] = full - w->pads[i] - w->pads[w->k + i];
            if (out[i] < 0)
                return ir_node_err(g, n, err, errlen, -EINVAL, "pads exceed the output");
            continue;
        }
        out[i] = os ? os->ints[os->n - (size_t)w->k + (size_t)i] : in[i] * w->stride[i];
        int64_t total = full - out[i], fl = total >= 0 ? total / 2 : -((1 - total) / 2);
        /* the spec's and ONNX Runtime's split of an odd total disagree unless it is negative
         * (output_shape) or the auto_pad says where the extra goes */
        if (out[i] < 0 || out[i] > (1 << 30) || (total % 2 && (upper || lower) && total < 0) ||
            (total % 2 && !upper && !lower && total > 0))
            return ir_node_err(g, n, err, errlen, -ENOTSUP,
                               "output size %lld on spatial axis %d needs an ambiguous padding",
                               (long long)out[i], i);
        w->pads[i] = upper ? fl : total - fl;
        w->pads[w->k + i] = total - w->pads[i];
    }
    return 0;
}

static int infer_conv_transpose(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 2, 3, err, errlen);
    if (rc || (rc = want_dtype(g, n, 0, ENGINE_F32, err, errlen)) ||
        (rc = want_dtype(g, n, 1, ENGINE_F32, err, errlen)) ||
        (rc = want_dtype(g, n, 2, ENGINE_F32, err, errlen)))
        return rc;
    struct ir_tensor *x = in_t(g, n, 0), *w = in_t(g, n, 1), *b = in_t(g, n, 2);
    if ((rc = spatial_input(g, n, x, err, errlen)))
        return rc;
    struct window win = {.k = x->shape.rank - 2};
    int64_t group = ir_attr_int(n, "group", 1), outpad[MAX_SPATIAL];
    char s1[128], s2[128];
    if (w->shape.rank != x->shape.rank || group < 1 || group > MAX_GROUP ||
        x->shape.dims[1] % group != 0 || w->shape.dims[0] != x->shape.dims[1])
        return ir_node_err(g, n, err, errlen, -EINVAL,
                           "weights %s do not fit input %s with group=%lld", shape_s(&w->shape, s1),
                           shape_s(&x->shape, s2), (long long)group);
    struct engine_shape o = {.rank = x->shape.rank};
    o.dims[0] = x->shape.dims[0];
    o.dims[1] = w->shape.dims[1] * group;
    if (b && (b->shape.rank != 1 || b->shape.dims[0] != o.dims[1]))
        return ir_node_err(g, n, err, errlen, -EINVAL, "bias %s must be [%lld]",
                           shape_s(&b->shape, s1), (long long)o.dims[1]);
    if ((rc = attr_ints(g, n, "kernel_shape", win.kernel, win.k, 0, err, errlen)) ||
        (rc = attr_ints(g, n, "output_padding", outpad, win.k, 0, err, errlen)))
        return rc;
    for (int i = 0; i < win.k; i++) {
        if (ir_attr_get(n, "kernel_shape") && win.kernel[i] != w->shape.dims[2 + i])
            return ir_node_err(g, n, err, errlen, -EINVAL, "kernel_shape disagrees with weights %s",
                               shape_s(&w->shape, s1));
        win.kernel[i] = w->shape.dims[2 + i];
    }
    if ((rc = read_window(g, n, &win, err, errlen)))
        return rc;
    for (int i = 0; i < win.k; i++)
        if (outpad[i] < 0 || (outpad[i] >= win.stride[i] && outpad[i] >= win.dil[i]))
            return ir_node_err(g, n, err, errlen, -EINVAL,
                               "output_padding must be below the stride or dilation");
    if ((rc = deconv_pads(g, n, &win, x->shape.dims + 2, outpad, o.dims + 2, err, errlen)))
        return rc;
    if ((rc = write_window(n, &win)) || (rc = ir_attr_set_int(n, "group", group)))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, ENGINE_F32, &o, err, errlen);
}

/* GridSample (4-D): mode and padding_mode kept as "grid_mode" and "grid_pad". */
static int infer_grid_sample(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    static const char *modes[] = {"bilinear", "nearest", "bicubic"};
    static const char *pads[] = {"zeros", "border", "reflection"};
    int rc = arity(g, n, 2, 2, err, errlen);
    if (rc || (rc = want_dtype(g, n, 0, ENGINE_F32, err, errlen)) ||
        (rc = want_dtype(g, n, 1, ENGINE_F32, err, errlen)))
        return rc;
    struct ir_tensor *x = in_t(g, n, 0), *gr = in_t(g, n, 1);
    const char *m = ir_attr_str(n, "mode", "bilinear"),
               *pm = ir_attr_str(n, "padding_mode", "zeros");
    int64_t mi = 0, pi = 0, ac = ir_attr_int(n, "align_corners", 0);
    while (mi < 3 && strcmp(modes[mi], m))
        mi++;
    while (pi < 3 && strcmp(pads[pi], pm))
        pi++;
    if (mi == 3 || pi == 3 || (ac != 0 && ac != 1))
        return ir_node_err(g, n, err, errlen, -ENOTSUP,
                           "unsupported mode=%s, padding_mode=%s or align_corners=%lld", m, pm,
                           (long long)ac);
    if (x->shape.rank != 4 || gr->shape.rank != 4 || gr->shape.dims[0] != x->shape.dims[0] ||
        gr->shape.dims[3] != 2)
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "needs X [N,C,H,W] and grid [N,Ho,Wo,2]");
    if ((x->shape.dims[2] == 0 || x->shape.dims[3] == 0) && engine_shape_numel(&gr->shape))
        return ir_node_err(g, n, err, errlen, -EINVAL, "cannot sample an empty image");
    struct engine_shape o = {
        4, {x->shape.dims[0], x->shape.dims[1], gr->shape.dims[1], gr->shape.dims[2]}};
    if (ir_attr_set_int(n, "grid_mode", mi) || ir_attr_set_int(n, "grid_pad", pi))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, ENGINE_F32, &o, err, errlen);
}

static int infer_reverse_sequence(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 2, 2, err, errlen);
    if (rc || (rc = index_input(g, n, 1, err, errlen)))
        return rc;
    struct ir_tensor *x = in_t(g, n, 0), *len = in_t(g, n, 1);
    int64_t b = ir_attr_int(n, "batch_axis", 1), t = ir_attr_int(n, "time_axis", 0);
    if (x->shape.rank < 2 || (b != 0 && b != 1) || t != 1 - b)
        return ir_node_err(g, n, err, errlen, -EINVAL,
                           "batch_axis and time_axis must be 0 and 1 of a rank >= 2 input");
    if (len->shape.rank != 1 || len->shape.dims[0] != x->shape.dims[b])
        return ir_node_err(g, n, err, errlen, -EINVAL, "sequence_lens needs one value per batch");
    if (ir_attr_set_int(n, "batch_axis", b))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, x->dtype, &x->shape, err, errlen);
}

/* MaxUnpool: the output shape from kernel/strides/pads, or a constant output_shape. */
static int infer_max_unpool(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 2, 3, err, errlen), k = 0;
    if (rc || (rc = want_dtype(g, n, 1, ENGINE_I64, err, errlen)))
        return rc;
    struct ir_tensor *x = in_t(g, n, 0), *idx = in_t(g, n, 1);
    if ((rc = spatial_input(g, n, x, err, errlen)))
        return rc;
    if (idx->shape.rank != x->shape.rank ||
        memcmp(idx->shape.dims, x->shape.dims, (size_t)x->shape.rank * sizeof(int64_t)))
        return ir_node_err(g, n, err, errlen, -EINVAL, "indices must have X's shape");
    struct window win = {.k = x->shape.rank - 2};
    struct engine_shape o = x->shape;
    if ((rc = attr_ints(g, n, "kernel_shape", win.kernel, win.k, 0, err, errlen)) ||
        (rc = read_window(g, n, &win, err, errlen)))
        return rc;
    int64_t v[ENGINE_MAX_RANK];
    if (in_t(g, n, 2)) {
        if ((rc = const_ints(g, n, 2, v, ENGINE_MAX_RANK, &k, err, errlen)))
            return rc;
        if (k != o.rank)
            return ir_node_err(g, n, err, errlen, -EINVAL, "output_shape needs %d values", o.rank);
        if (o.dims[0] != v[0] || o.dims[1] != v[1])
            return ir_node_err(g, n, err, errlen, -EINVAL, "output_shape changes N or C");
    }
    for (int i = 0; i < win.k; i++)
        o.dims[2 + i] = (x->shape.dims[2 + i] - 1) * win.stride[i] - win.pads[i] -
                        win.pads[win.k + i] + win.kernel[i];
    /* the indices address the default output; another output_shape moves every element */
    if (k && memcmp(o.dims, v, (size_t)k * sizeof(int64_t)))
        return ir_node_err(g, n, err, errlen, -ENOTSUP,
                           "an output_shape other than the default unpooled shape is unsupported");
    return set_out(g, n, 0, x->dtype, &o, err, errlen);
}

/* CastLike: Cast to the second input's element type (kept as "to"; the second input is only
 * looked at here). */
static int infer_castlike(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 2, 2, err, errlen);
    if (rc)
        return rc;
    if (ir_attr_set_int(n, "to", in_t(g, n, 1)->dtype))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, in_t(g, n, 1)->dtype, &in_t(g, n, 0)->shape, err, errlen);
}

/* CumSum: the axis may be computed at run time (the kernel checks it then). */
static int infer_cumsum(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 2, 2, err, errlen);
    if (rc || (rc = index_input(g, n, 1, err, errlen)))
        return rc;
    struct ir_tensor *x = in_t(g, n, 0), *ax = in_t(g, n, 1);
    int64_t ex = ir_attr_int(n, "exclusive", 0), rev = ir_attr_int(n, "reverse", 0);
    if (!k_cumsum_ok(x->dtype))
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "input type %s is unsupported",
                           engine_dtype_name(x->dtype));
    if (engine_shape_numel(&ax->shape) != 1 || ax->shape.rank > 1 || (ex != 0 && ex != 1) ||
        (rev != 0 && rev != 1) || x->shape.rank < 1)
        return ir_node_err(g, n, err, errlen, -EINVAL,
                           "needs a one-value axis, exclusive and reverse 0 or 1");
    return set_out(g, n, 0, x->dtype, &x->shape, err, errlen);
}

static int eval_cumsum(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *x = in_t(g, n, 0), *ax = in_t(g, n, 1);
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    int64_t axis = ax->dtype == ENGINE_I32 ? *(int32_t *)ax->data : *(int64_t *)ax->data;
    if (k_cumsum(x->data, &x->shape, axis, (int)ir_attr_int(n, "exclusive", 0),
                 (int)ir_attr_int(n, "reverse", 0), x->dtype, d)) {
        free(d);
        return ir_node_err(g, n, err, errlen, -EINVAL, "axis out of range");
    }
    return set_data(g, n, 0, d);
}

/* RNN, GRU, LSTM with the default activations; kept as "rnn_kind", "rnn_dir" and "layout". */
static int rnn_attrs(struct ir_graph *g, struct ir_node *n, int kind, char *err, size_t errlen)
{
    static const char *dirs[] = {"forward", "reverse", "bidirectional"};
    const char *dir = ir_attr_str(n, "direction", "forward");
    int64_t d = 0;
    while (d < 3 && strcmp(dirs[d], dir))
        d++;
    if (d == 3 || ir_attr_get(n, "activations") || ir_attr_get(n, "activation_alpha") ||
        ir_attr_get(n, "activation_beta") || ir_attr_get(n, "clip") ||
        ir_attr_int(n, "input_forget", 0) != 0 || (g->opset < 14 && ir_attr_get(n, "layout")))
        return ir_node_err(g, n, err, errlen, -ENOTSUP,
                           "unsupported direction=%s, activations, clip or input_forget", dir);
    int64_t layout = ir_attr_int(n, "layout", 0), lbr = ir_attr_int(n, "linear_before_reset", 0);
    if ((layout != 0 && layout != 1) || (lbr != 0 && lbr != 1) || (kind != K_RNN_GRU && lbr))
        return ir_node_err(g, n, err, errlen, -EINVAL, "layout and linear_before_reset are 0 or 1");
    if (ir_attr_set_int(n, "rnn_kind", kind) || ir_attr_set_int(n, "rnn_dir", d) ||
        ir_attr_set_int(n, "layout", layout) || ir_attr_set_int(n, "linear_before_reset", lbr))
        return oom(g, n, err, errlen);
    return 0;
}

static int want_dims(struct ir_tensor *t, int rank, int64_t d0, int64_t d1, int64_t d2)
{
    int64_t d[3] = {d0, d1, d2};
    if (!t)
        return 1;
    if (t->shape.rank != rank)
        return 0;
    for (int i = 0; i < rank; i++)
        if (t->shape.dims[i] != d[i])
            return 0;
    return 1;
}

static int infer_rnn(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int kind = strcmp(n->op, "RNN") == 0   ? K_RNN_SIMPLE
               : strcmp(n->op, "GRU") == 0 ? K_RNN_GRU
                                           : K_RNN_LSTM;
    int gates = kind == K_RNN_SIMPLE ? 1 : kind == K_RNN_GRU ? 3 : 4, rc;
    if ((rc = arity(g, n, 3, kind == K_RNN_LSTM ? 8 : 6, err, errlen)) ||
        (rc = rnn_attrs(g, n, kind, err, errlen)))
        return rc;
    for (int i = 0; i < n->n_in; i++)
        if ((rc = want_dtype(g, n, i, i == 4 ? ENGINE_I32 : ENGINE_F32, err, errlen)))
            return rc;
    struct ir_tensor *x = in_t(g, n, 0), *w = in_t(g, n, 1);
    int64_t layout = ir_attr_int(n, "layout", 0), h = ir_attr_int(n, "hidden_size", 0);
    int64_t dirs = ir_attr_int(n, "rnn_dir", 0) == K_RNN_BIDIRECTIONAL ? 2 : 1;
    if (x->shape.rank != 3 || h < 1 || h > K_RNN_MAX_HIDDEN)
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "needs a 3-D X and hidden_size in [1, %d]",
                           K_RNN_MAX_HIDDEN);
    int64_t seq = x->shape.dims[layout], batch = x->shape.dims[1 - layout], in = x->shape.dims[2];
    int64_t s0 = layout ? batch : dirs, s1 = layout ? dirs : batch;
    if (!want_dims(w, 3, dirs, gates * h, in) || !want_dims(in_t(g, n, 2), 3, dirs, gates * h, h) ||
        !want_dims(in_t(g, n, 3), 2, dirs, 2 * gates * h, 0) ||
        !want_dims(in_t(g, n, 4), 1, batch, 0, 0) || !want_dims(in_t(g, n, 5), 3, s0, s1, h) ||
        !want_dims(in_t(g, n, 6), 3, s0, s1, h) || !want_dims(in_t(g, n, 7), 2, dirs, 3 * h, 0))
        return ir_node_err(g, n, err, errlen, -EINVAL,
                           "W, R, B, sequence_lens, initial states or P do not fit X and "
                           "hidden_size=%lld",
                           (long long)h);
    struct engine_shape y = {4, {seq, dirs, batch, h}}, yh = {3, {s0, s1, h}};
    if (layout)
        y = (struct engine_shape){4, {batch, seq, dirs, h}};
    if ((rc = set_out(g, n, 0, ENGINE_F32, &y, err, errlen)) ||
        (rc = set_out(g, n, 1, ENGINE_F32, &yh, err, errlen)))
        return rc;
    return kind == K_RNN_LSTM ? set_out(g, n, 2, ENGINE_F32, &yh, err, errlen) : 0;
}

/* Resize (opset 11 on) with constant scales or sizes; kept as "resize_params" (see plan.h). */
static int resize_enum(const char *v, const char *const *names, int count)
{
    for (int i = 0; i < count; i++)
        if (strcmp(v, names[i]) == 0)
            return i;
    return -1;
}

/* A constant float input as up to `max` floats; 0 values when absent or empty. */
static int const_floats(struct ir_tensor *t, float *v, int max)
{
    if (!t)
        return 0;
    int64_t k = engine_shape_numel(&t->shape);
    if (!t->data || t->dtype != ENGINE_F32 || t->shape.rank > 1 || k > max)
        return -1;
    memcpy(v, t->data, (size_t)k * sizeof(float));
    return (int)k;
}

static int resize_modes(struct ir_graph *g, struct ir_node *n, int64_t *p, char *err, size_t errlen)
{
    static const char *modes[] = {"nearest", "linear", "cubic"};
    static const char *coords[] = {"half_pixel", "pytorch_half_pixel",   "align_corners",
                                   "asymmetric", "tf_half_pixel_for_nn", "tf_crop_and_resize"};
    static const char *nearest[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
    const char *m = ir_attr_str(n, "mode", "nearest");
    const char *c = ir_attr_str(n, "coordinate_transformation_mode", "half_pixel");
    const char *nm = ir_attr_str(n, "nearest_mode", "round_prefer_floor");
    p[0] = resize_enum(m, modes, 3), p[1] = resize_enum(c, coords, 6);
    p[2] = resize_enum(nm, nearest, 4), p[3] = ir_attr_int(n, "exclude_outside", 0);
    float a = ir_attr_float(n, "cubic_coeff_a", -0.75f),
          e = ir_attr_float(n, "extrapolation_value", 0);
    int32_t bits;
    memcpy(&bits, &a, 4), p[4] = bits;
    memcpy(&bits, &e, 4), p[5] = bits;
    if (p[0] < 0 || p[1] < 0 || p[2] < 0 || (p[3] != 0 && p[3] != 1) || g->opset < 11 ||
        ir_attr_int(n, "antialias", 0) != 0 || ir_attr_get(n, "axes") ||
        strcmp(ir_attr_str(n, "keep_aspect_ratio_policy", "stretch"), "stretch") != 0)
        return ir_node_err(
            g, n, err, errlen, -ENOTSUP,
            "unsupported mode=%s, coordinate_transformation_mode=%s, nearest_mode=%s, "
            "antialias, axes or keep_aspect_ratio_policy (or opset < 11)",
            m, c, nm);
    return 0;
}

/* Upsample (opsets 7-9): asymmetric coordinates, floor for nearest; scales as an attribute
 * (before 9) or a constant input. */
static int infer_upsample(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 2, err, errlen);
    if (rc || (rc = want_dtype(g, n, 0, ENGINE_F32, err, errlen)))
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    const char *m = ir_attr_str(n, "mode", "nearest");
    const struct ir_attr *sa = ir_attr_get(n, "scales");
    float scales[ENGINE_MAX_RANK];
    int r = x->shape.rank, ns = -1;
    if (g->opset < 9 && sa && sa->type == IR_ATTR_FLOATS && sa->n == (size_t)r) {
        memcpy(scales, sa->floats, (size_t)r * sizeof(float));
        ns = r;
    } else if (g->opset >= 9) {
        ns = const_floats(in_t(g, n, 1), scales, ENGINE_MAX_RANK);
    }
    int mode = strcmp(m, "nearest") == 0  ? K_RESIZE_NEAREST
               : strcmp(m, "linear") == 0 ? K_RESIZE_LINEAR
                                          : -1;
    if (ns != r || mode < 0)
        return ir_node_err(g, n, err, errlen, -ENOTSUP,
                           "needs mode nearest or linear and %d constant scales", r);
    int64_t p[6 + 3 * ENGINE_MAX_RANK] = {mode, K_RESIZE_ASYMMETRIC, K_NEAREST_FLOOR, 0, 0, 0};
    struct engine_shape o = x->shape;
    for (int d = 0; d < r; d++) {
        double out = floor((double)x->shape.dims[d] * scales[d]);
        if (!(scales[d] > 0) || out > (double)(1 << 30) || (x->shape.dims[d] == 0 && out > 0))
            return ir_node_err(g, n, err, errlen, -EINVAL, "scale out of range on axis %d", d);
        o.dims[d] = (int64_t)out;
        int32_t bits;
        memcpy(&bits, &scales[d], 4);
        p[6 + d] = bits, p[6 + r + d] = 0, p[6 + 2 * r + d] = 0;
    }
    if (ir_attr_set_ints(n, "resize_params", p, (size_t)(6 + 3 * r)))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, ENGINE_F32, &o, err, errlen);
}

static int infer_resize(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 4, err, errlen), k = 0;
    if (rc || (rc = want_dtype(g, n, 0, ENGINE_F32, err, errlen)))
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    int r = x->shape.rank;
    int64_t p[6 + 3 * ENGINE_MAX_RANK], sizes[ENGINE_MAX_RANK];
    float scales[ENGINE_MAX_RANK], roi[2 * ENGINE_MAX_RANK] = {0};
    if ((rc = resize_modes(g, n, p, err, errlen)))
        return rc;
    int ns = const_floats(in_t(g, n, 2), scales, ENGINE_MAX_RANK);
    int nr = const_floats(in_t(g, n, 1), roi, 2 * ENGINE_MAX_RANK);
    if (in_t(g, n, 3) && (rc = const_ints(g, n, 3, sizes, ENGINE_MAX_RANK, &k, err, errlen)))
        return rc;
    if (ns < 0 || nr < 0 || (ns != 0) == (k != 0) || (ns && ns != r) || (k && k != r) ||
        (p[1] == K_RESIZE_TF_CROP_AND_RESIZE && nr != 2 * r))
        return ir_node_err(g, n, err, errlen, -ENOTSUP,
                           "needs constant scales or sizes (one of them, %d values) and for "
                           "tf_crop_and_resize a constant roi",
                           r);
    struct engine_shape o = x->shape;
    for (int d = 0; d < r; d++) {
        double sc = ns                 ? scales[d]
                    : x->shape.dims[d] ? (double)sizes[d] / (double)x->shape.dims[d]
                                       : 0;
        double out = ns ? floor((double)x->shape.dims[d] * sc) : (double)sizes[d];
        if (!(sc > 0) || !(out >= 0) || out > (double)(1 << 30) ||
            (x->shape.dims[d] == 0 && out > 0))
            return ir_node_err(g, n, err, errlen, -EINVAL, "scale or size out of range on axis %d",
                               d);
        o.dims[d] = (int64_t)out;
        float f = (float)sc, rs = roi[d], re = roi[r + d];
        int32_t bits;
        memcpy(&bits, &f, 4), p[6 + d] = bits;
        memcpy(&bits, &rs, 4), p[6 + r + d] = bits;
        memcpy(&bits, &re, 4), p[6 + 2 * r + d] = bits;
    }
    if (ir_attr_set_ints(n, "resize_params", p, (size_t)(6 + 3 * r)))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, ENGINE_F32, &o, err, errlen);
}

/* RoiAlign (average mode); the batch indices are checked at run time. */
static int infer_roi_align(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 3, 3, err, errlen);
    if (rc || (rc = want_dtype(g, n, 0, ENGINE_F32, err, errlen)) ||
        (rc = want_dtype(g, n, 1, ENGINE_F32, err, errlen)) ||
        (rc = want_dtype(g, n, 2, ENGINE_I64, err, errlen)))
        return rc;
    struct ir_tensor *x = in_t(g, n, 0), *r = in_t(g, n, 1), *b = in_t(g, n, 2);
    const char *mode = ir_attr_str(n, "mode", "avg");
    const char *ct = ir_attr_str(n, "coordinate_transformation_mode",
                                 g->opset >= 16 ? "half_pixel" : "output_half_pixel");
    int64_t oh = ir_attr_int(n, "output_height", 1), ow = ir_attr_int(n, "output_width", 1);
    int64_t sr = ir_attr_int(n, "sampling_ratio", 0);
    int half = strcmp(ct, "half_pixel") == 0;
    if (strcmp(mode, "avg") || (!half && strcmp(ct, "output_half_pixel")))
        return ir_node_err(g, n, err, errlen, -ENOTSUP,
                           "unsupported mode=%s or coordinate_transformation_mode=%s", mode, ct);
    if (x->shape.rank != 4 || r->shape.rank != 2 || r->shape.dims[1] != 4 || b->shape.rank != 1 ||
        b->shape.dims[0] != r->shape.dims[0] || oh < 1 || ow < 1 || oh > (1 << 20) ||
        ow > (1 << 20) || sr < 0 || sr > 1024 ||
        (r->shape.dims[0] && (x->shape.dims[2] == 0 || x->shape.dims[3] == 0)))
        return ir_node_err(g, n, err, errlen, -EINVAL,
                           "needs X [N,C,H,W], rois [R,4], batch_indices [R] and positive sizes");
    struct engine_shape o = {4, {r->shape.dims[0], x->shape.dims[1], oh, ow}};
    if (ir_attr_set_int(n, "roi_half_pixel", half))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, ENGINE_F32, &o, err, errlen);
}

/* OneHot with a constant depth; indices and values may be computed. */
static int infer_onehot(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 3, 3, err, errlen), axis;
    if (rc)
        return rc;
    struct ir_tensor *idx = in_t(g, n, 0), *dep = in_t(g, n, 1), *val = in_t(g, n, 2);
    if (idx->dtype != ENGINE_I32 && idx->dtype != ENGINE_I64 && idx->dtype != ENGINE_F32)
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "indices of type %s are unsupported",
                           engine_dtype_name(idx->dtype));
    if (!dep->data || engine_shape_numel(&dep->shape) != 1 || dep->shape.rank > 1)
        return ir_node_err(g, n, err, errlen, -ENOTSUP,
                           "depth must be a constant scalar (computed at run time is unsupported)");
    double depth = 0;
    if (k_cast(dep->data, dep->dtype, &depth, ENGINE_F64, 1) || !(depth >= 1) ||
        depth > (double)(1 << 24))
        return ir_node_err(g, n, err, errlen, -EINVAL, "depth must be in [1, %d]", 1 << 24);
    if (engine_shape_numel(&val->shape) != 2 || val->shape.rank != 1 ||
        idx->shape.rank >= ENGINE_MAX_RANK)
        return ir_node_err(g, n, err, errlen, -EINVAL, "values must hold [off, on]");
    if ((rc = norm_axis(g, n, ir_attr_int(n, "axis", -1), idx->shape.rank + 1, &axis, err, errlen)))
        return rc;
    struct engine_shape o = {.rank = idx->shape.rank + 1};
    for (int d = 0, k = 0; d < o.rank; d++)
        o.dims[d] = d == axis ? (int64_t)depth : idx->shape.dims[k++];
    if (ir_attr_set_int(n, "axis", axis) || ir_attr_set_int(n, "onehot_depth", (int64_t)depth))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, val->dtype, &o, err, errlen);
}

/* Compress with a constant condition: the selected positions (along axis, or of the flattened
 * input) are kept as "compress_idx" for the backend's gather. */
static int infer_compress(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 2, 2, err, errlen), axis = -1;
    if (rc)
        return rc;
    struct ir_tensor *x = in_t(g, n, 0), *c = in_t(g, n, 1);
    if (!c->data || c->dtype != ENGINE_BOOL || c->shape.rank != 1)
        return ir_node_err(g, n, err, errlen, -ENOTSUP,
                           "condition must be a constant 1-D bool (computed at run time is "
                           "unsupported: it decides the output shape)");
    int has_axis = ir_attr_get(n, "axis") != NULL;
    if (has_axis &&
        (rc = norm_axis(g, n, ir_attr_int(n, "axis", 0), x->shape.rank, &axis, err, errlen)))
        return rc;
    int64_t len = has_axis ? x->shape.dims[axis] : engine_shape_numel(&x->shape);
    int64_t m = c->shape.dims[0] < len ? c->shape.dims[0] : len, count = 0;
    int64_t *sel = malloc((size_t)(m > 0 ? m : 1) * sizeof(int64_t));
    if (!sel)
        return oom(g, n, err, errlen);
    for (int64_t j = 0; j < m; j++)
        if (((const uint8_t *)c->data)[j])
            sel[count++] = j;
    struct engine_shape o = has_axis ? x->shape : (struct engine_shape){.rank = 1};
    o.dims[has_axis ? axis : 0] = count;
    rc = ir_attr_set_ints(n, "compress_idx", sel, (size_t)count) ||
         ir_attr_set_int(n, "compress_axis", axis);
    free(sel);
    if (rc)
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, x->dtype, &o, err, errlen);
}

static int infer_lrn(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 1, err, errlen);
    if (rc || (rc = want_dtype(g, n, 0, ENGINE_F32, err, errlen)))
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    int64_t size = ir_attr_int(n, "size", 0);
    if (x->shape.rank < 2 || size < 1 || size > (1 << 20))
        return ir_node_err(g, n, err, errlen, -EINVAL, "needs a channel axis and a size >= 1");
    return set_out(g, n, 0, ENGINE_F32, &x->shape, err, errlen);
}

static const struct ir_op_def ops[] = {
    {"Neg", infer_unary_math, eval_unary_math},
    {"Reciprocal", infer_unary_math, eval_unary_math},
    {"Cos", infer_unary_math, eval_unary_math},
    {"Sin", infer_unary_math, eval_unary_math},
    {"Tan", infer_unary_math, eval_unary_math},
    {"Sinh", infer_unary_math, eval_unary_math},
    {"Cosh", infer_unary_math, eval_unary_math},
    {"Asin", infer_unary_math, eval_unary_math},
    {"Acos", infer_unary_math, eval_unary_math},
    {"Atan", infer_unary_math, eval_unary_math},
    {"Asinh", infer_unary_math, eval_unary_math},
    {"Acosh", infer_unary_math, eval_unary_math},
    {"Atanh", infer_unary_math, eval_unary_math},
    {"Ceil", infer_unary_math, eval_unary_math},
    {"Floor", infer_unary_math, eval_unary_math},
    {"Round", infer_unary_math, eval_unary_math},
    {"Sign", infer_unary_math, eval_unary_math},
    {"Erf", infer_unary_math, eval_unary_math},
    {"Log", infer_unary_math, eval_unary_math},
    {"IsInf", infer_unary_math, eval_unary_math},
    {"IsNaN", infer_unary_math, eval_unary_math},
    {"ThresholdedRelu", infer_unary_math, eval_unary_math},
    {"Shrink", infer_unary_math, eval_unary_math},
    {"Celu", infer_unary_math, eval_unary_math},
    {"Softsign", infer_unary_math, eval_unary_math},
    {"Softplus", infer_unary_math, eval_unary_math},
    {"Not", infer_unary_math, eval_unary_math},
    {"Selu", infer_unary_math, eval_unary_math},
    {"ReduceSum", infer_reduce, eval_reduce},
    {"ReduceMax", infer_reduce, eval_reduce},
    {"ReduceMin", infer_reduce, eval_reduce},
    {"ReduceProd", infer_reduce, eval_reduce},
    {"ReduceL1", infer_reduce, eval_reduce},
    {"ReduceL2", infer_reduce, eval_reduce},
    {"ReduceSumSquare", infer_reduce, eval_reduce},
    {"ReduceLogSum", infer_reduce, eval_reduce},
    {"ReduceLogSumExp", infer_reduce, eval_reduce},
    {"ArgMax", infer_argext, NULL},
    {"ArgMin", infer_argext, NULL},
    {"LogSoftmax", infer_softmax_f, NULL},
    {"Hardmax", infer_softmax_f, NULL},
    {"And", infer_logic, eval_logic},
    {"Or", infer_logic, eval_logic},
    {"Xor", infer_logic, eval_logic},
    {"Mod", infer_logic, eval_logic},
    {"LessOrEqual", infer_logic, eval_logic},
    {"GreaterOrEqual", infer_logic, eval_logic},
    {"PRelu", infer_logic, eval_logic},
    {"BitShift", infer_logic, eval_logic},
    {"Sum", infer_variadic, eval_variadic},
    {"Mean", infer_variadic, eval_variadic},
    {"NegativeLogLikelihoodLoss", infer_loss, NULL},
    {"SoftmaxCrossEntropyLoss", infer_loss, NULL},
    {"InstanceNormalization", infer_instnorm, NULL},
    {"TopK", infer_topk, NULL},
    {"QuantizeLinear", infer_quant, NULL},
    {"DequantizeLinear", infer_quant, NULL},
    {"DynamicQuantizeLinear", infer_dynquant, NULL},
    {"MatMulInteger", infer_qmatmul, NULL},
    {"QLinearMatMul", infer_qmatmul, NULL},
    {"Det", infer_det, NULL},
    {"MeanVarianceNormalization", infer_mvn, NULL},
    {"DFT", infer_dft, NULL},
    {"Einsum", infer_einsum, NULL},
    {"HannWindow", infer_window, eval_window},
    {"HammingWindow", infer_window, eval_window},
    {"BlackmanWindow", infer_window, eval_window},
    {"MelWeightMatrix", infer_mel, eval_mel},
    {"STFT", infer_stft, NULL},
    {"ConvInteger", infer_qconv, NULL},
    {"QLinearConv", infer_qconv, NULL},
    {"Abs", infer_act, eval_act},
    {"Add", infer_arith, eval_arith},
    {"AveragePool", infer_pool, NULL},
    {"BatchNormalization", infer_batchnorm, NULL},
    {"Cast", infer_cast, eval_cast},
    {"Clip", infer_clip, eval_clip},
    {"Concat", infer_concat, eval_concat},
    {"ConstantOfShape", infer_constant_of_shape, eval_constant_of_shape},
    {"Conv", infer_conv, NULL},
    {"Div", infer_arith, eval_arith},
    {"Dropout", infer_dropout, eval_copy},
    {"Elu", infer_act, eval_act},
    {"Equal", infer_binary, eval_binary},
    {"Exp", infer_act, eval_act},
    {"Expand", infer_expand, eval_expand},
    {"Flatten", infer_flatten, eval_copy},
    {"Gather", infer_gather, eval_gather},
    {"Gemm", infer_gemm, NULL},
    {"GlobalAveragePool", infer_global_pool, NULL},
    {"GlobalMaxPool", infer_global_pool, NULL},
    {"Greater", infer_binary, eval_binary},
    {"HardSigmoid", infer_act, eval_act},
    {"HardSwish", infer_act, eval_act},
    {"Identity", infer_identity, eval_copy},
    {"LeakyRelu", infer_act, eval_act},
    {"Less", infer_binary, eval_binary},
    {"MatMul", infer_matmul, NULL},
    {"Max", infer_variadic, eval_variadic},
    {"MaxPool", infer_pool, NULL},
    {"Min", infer_variadic, eval_variadic},
    {"Mul", infer_arith, eval_arith},
    {"Pad", infer_pad, eval_pad},
    {"Pow", infer_arith, eval_arith},
    {"Range", infer_range, eval_range},
    {"ReduceMean", infer_reduce, eval_reduce},
    {"Relu", infer_act, eval_act},
    {"Reshape", infer_reshape, eval_copy},
    {"Shape", infer_shape, eval_shape},
    {"Sigmoid", infer_act, eval_act},
    {"Size", infer_size, eval_size},
    {"Slice", infer_slice, eval_slice},
    {"Softmax", infer_softmax, eval_softmax},
    {"LayerNormalization", infer_layernorm, NULL},
    {"Sqrt", infer_act, eval_act},
    {"Squeeze", infer_squeeze, eval_copy},
    {"Sub", infer_arith, eval_arith},
    {"Tanh", infer_act, eval_act},
    {"Transpose", infer_transpose, eval_transpose},
    {"Unsqueeze", infer_unsqueeze, eval_copy},
    {"Where", infer_where, eval_where},
    {"GatherElements", infer_gather_elements, eval_gather_elements},
    {"ScatterElements", infer_scatter_elements, eval_scatter_elements},
    {"Scatter", infer_scatter_elements, eval_scatter_elements},
    {"GatherND", infer_gather_nd, eval_gather_nd},
    {"ScatterND", infer_scatter_nd, eval_scatter_nd},
    {"Trilu", infer_trilu, eval_trilu},
    {"DepthToSpace", infer_depth_space, eval_depth_space},
    {"SpaceToDepth", infer_depth_space, eval_depth_space},
    {"Tile", infer_tile, eval_tile},
    {"Split", infer_split, eval_split},
    {"EyeLike", infer_eyelike, eval_eyelike},
    {"ConvTranspose", infer_conv_transpose, NULL},
    {"LRN", infer_lrn, NULL},
    {"GridSample", infer_grid_sample, NULL},
    {"ReverseSequence", infer_reverse_sequence, NULL},
    {"MaxUnpool", infer_max_unpool, NULL},
    {"CastLike", infer_castlike, eval_cast},
    {"CumSum", infer_cumsum, eval_cumsum},
    {"Resize", infer_resize, NULL},
    {"OneHot", infer_onehot, NULL},
    {"Compress", infer_compress, NULL},
    {"RoiAlign", infer_roi_align, NULL},
    {"Upsample", infer_upsample, NULL},
    {"RNN", infer_rnn, NULL},
    {"GRU", infer_rnn, NULL},
    {"LSTM", infer_rnn, NULL},
};

const struct ir_op_def *ir_op_find(const char *op)
{
    for (size_t i = 0; i < ARRAY_LEN(ops); i++)
        if (strcmp(ops[i].op, op) == 0)
            return &ops[i];
    return NULL;
}

/* ---- the pass ---- */

int ir_node_foldable(const struct ir_graph *g, const struct ir_node *n)
{
    const struct ir_op_def *d = ir_op_find(n->op);
    if (!d || !d->eval)
        return 0;
    if (strcmp(n->op, "Shape") == 0 || strcmp(n->op, "Size") == 0 || strcmp(n->op, "EyeLike") == 0)
        return 1; /* need only the input's shape */
    for (int i = 0; i < n->n_in; i++)
        if (n->in[i] >= 0 && !g->tensors[n->in[i]].data)
            return 0;
    return 1;
}

static const struct engine_input_shape *find_override(const struct ir_graph *g, int t,
                                                      const struct engine_input_shape *shapes,
                                                      int n_shapes)
{
    for (int i = 0; i < n_shapes; i++)
        if (shapes[i].name ? strcmp(shapes[i].name, g->tensors[t].name) == 0 : g->n_inputs == 1)
            return &shapes[i];
    return NULL;
}

static int fix_input(struct ir_graph *g, int t, const struct engine_input_shape *ov, char *err,
                     size_t errlen)
{
    struct ir_tensor *x = &g->tensors[t];
    char s1[128], s2[128];
    if (ov) {
        if (ov->shape.rank < 0 || ov->shape.rank > ENGINE_MAX_RANK ||
            (x->shape.rank >= 0 && ov->shape.rank != x->shape.rank))
            return seterr(err, errlen, -EINVAL,
                          "model %s: input '%s': shape %s given, model has %s", g->name, x->name,
                          shape_s(&ov->shape, s1), shape_s(&x->shape, s2));
        for (int i = 0; i < ov->shape.rank; i++)
            if (ov->shape.dims[i] < 0 || (x->shape.rank >= 0 && x->shape.dims[i] >= 0 &&
                                          x->shape.dims[i] != ov->shape.dims[i]))
                return seterr(err, errlen, -EINVAL,
                              "model %s: input '%s': shape %s given, but the model fixes %s",
                              g->name, x->name, shape_s(&ov->shape, s1), shape_s(&x->shape, s2));
        x->shape = ov->shape;
    }
    if (x->shape.rank < 0)
        return seterr(err, errlen, -EINVAL,
                      "model %s: input '%s' has no shape in the model: give one", g->name, x->name);
    for (int i = 0; i < x->shape.rank; i++)
        if (x->shape.dims[i] < 0)
            return seterr(err, errlen, -EINVAL,
                          "model %s: input '%s' has symbolic dim %d in %s (shown as -1): give a "
                          "concrete shape for it",
                          g->name, x->name, i, shape_s(&x->shape, s1));
    if (!x->dtype)
        return seterr(err, errlen, -EINVAL, "model %s: input '%s' has no element type", g->name,
                      x->name);
    uint64_t numel = 1;
    for (int i = 0; i < x->shape.rank; i++) {
        if (x->shape.dims[i] > 0 && numel > MAX_INFERRED_BYTES / (uint64_t)x->shape.dims[i])
            return seterr(err, errlen, -EFBIG, "model %s: input '%s' shape %s is too large",
                          g->name, x->name, shape_s(&x->shape, s1));
        numel *= (uint64_t)x->shape.dims[i];
    }
    if (numel * engine_dtype_size(x->dtype) > MAX_INFERRED_BYTES)
        return seterr(err, errlen, -EFBIG, "model %s: input '%s' shape %s is too large", g->name,
                      x->name, shape_s(&x->shape, s1));
    x->shape_known = 1;
    return 0;
}

static int infer_node(struct ir_graph *g, int i, char *err, size_t errlen)
{
    struct ir_node *n = &g->nodes[i];
    const struct ir_op_def *d = ir_op_find(n->op);
    if (!d)
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "unsupported op");
    for (int k = 0; k < n->n_in; k++)
        if (n->in[k] >= 0 && !g->tensors[n->in[k]].shape_known)
            return ir_node_err(g, n, err, errlen, -EINVAL, "input '%s' has no known shape",
                               g->tensors[n->in[k]].name);
    int rc = ir_legacy_infer(g, n, err, errlen);
    if (rc || (rc = d->infer(g, n, err, errlen)))
        return rc;
    n = &g->nodes[i];
    /* a node whose first output is absent ("") computes nothing anyone can read: never evaluated */
    if (n->n_out > 0 && n->out[0] >= 0 && ir_node_foldable(g, n)) {
        for (int k = 0; k < n->n_out; k++) {
            const struct ir_tensor *t = n->out[k] >= 0 ? &g->tensors[n->out[k]] : NULL;
            if (t && !t->data &&
                (uint64_t)engine_shape_numel(&t->shape) * engine_dtype_size(t->dtype) >
                    MAX_FOLD_BYTES)
                return ir_node_err(g, n, err, errlen, -EFBIG,
                                   "folding would create a constant over %llu bytes",
                                   (unsigned long long)MAX_FOLD_BYTES);
        }
        rc = d->eval(g, n, err, errlen);
        return rc > 0 ? 0 : rc;
    }
    return 0;
}

int ir_infer_shapes(struct ir_graph *g, const struct engine_input_shape *shapes, int n_shapes,
                    char *err, size_t errlen)
{
    for (int i = 0; i < n_shapes; i++) {
        int t = shapes[i].name ? ir_find_tensor(g, shapes[i].name) : -1;
        if (shapes[i].name && (t < 0 || !(g->tensors[t].flags & IR_T_INPUT)))
            return seterr(err, errlen, -EINVAL,
                          "model %s: a shape is given for '%s', which "
                          "is not an input of the model",
                          g->name, shapes[i].name);
    }
    for (int i = 0; i < g->n_inputs; i++) {
        int rc = fix_input(g, g->inputs[i], find_override(g, g->inputs[i], shapes, n_shapes), err,
                           errlen);
        if (rc)
            return rc;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].dead)
            continue;
        int rc = infer_node(g, i, err, errlen);
        if (rc)
            return rc;
    }
    return 0;
}

static int check_pin(const struct ir_graph *g, const struct engine_tensor *p, char *err,
                     size_t errlen)
{
    char s1[128], s2[128];
    int t = p->name ? ir_find_tensor(g, p->name) : -1;
    if (t < 0 || !(g->tensors[t].flags & IR_T_INPUT))
        return seterr(err, errlen, -EINVAL, "model %s: cannot pin '%s': not an input of the model",
                      g->name, p->name ? p->name : "(no name)");
    const struct ir_tensor *x = &g->tensors[t];
    int64_t numel = engine_shape_numel(&p->shape);
    int integer = p->dtype == ENGINE_I32 || p->dtype == ENGINE_I64 || p->dtype == ENGINE_BOOL;
    if (p->shape.rank < 0 || p->shape.rank > ENGINE_MAX_RANK || numel < 0 ||
        !(integer || (p->dtype == ENGINE_F32 && numel <= ENGINE_MAX_PIN_FLOATS)) ||
        numel > ENGINE_MAX_PIN_ELEMS)
        return seterr(err, errlen, -EINVAL,
                      "model %s: cannot pin '%s' (%s %s): only int32/int64/bool inputs of up to %d "
                      "elements or float32 inputs of up to %d may be pinned",
                      g->name, p->name, engine_dtype_name(p->dtype), shape_s(&p->shape, s1),
                      ENGINE_MAX_PIN_ELEMS, ENGINE_MAX_PIN_FLOATS);
    if (x->dtype != p->dtype)
        return seterr(err, errlen, -EINVAL, "model %s: pin '%s' is %s, the input is %s", g->name,
                      p->name, engine_dtype_name(p->dtype), engine_dtype_name(x->dtype));
    int fits = x->shape.rank < 0 || x->shape.rank == p->shape.rank;
    for (int i = 0; fits && x->shape.rank >= 0 && i < x->shape.rank; i++)
        fits = x->shape.dims[i] < 0 || x->shape.dims[i] == p->shape.dims[i];
    if (!fits)
        return seterr(err, errlen, -EINVAL, "model %s: pin '%s' has shape %s, the model has %s",
                      g->name, p->name, shape_s(&p->shape, s1), shape_s(&x->shape, s2));
    if (!p->data || p->nbytes != (size_t)numel * engine_dtype_size(p->dtype))
        return seterr(err, errlen, -EINVAL, "model %s: pin '%s': %zu bytes of data for %s %s",
                      g->name, p->name, p->nbytes, engine_dtype_name(p->dtype),
                      shape_s(&p->shape, s1));
    return t;
}

int ir_pin_inputs(struct ir_graph *g, const struct engine_tensor *pins, int n_pins, char *err,
                  size_t errlen)
{
    if (n_pins < 0 || (n_pins && !pins))
        return seterr(err, errlen, -EINVAL, "model %s: bad pinned input list", g->name);
    for (int i = 0; i < n_pins; i++) {
        int t = check_pin(g, &pins[i], err, errlen);
        if (t < 0)
            return t;
        void *copy = malloc(pins[i].nbytes ? pins[i].nbytes : 1);
        if (!copy)
            return seterr(err, errlen, -ENOMEM, "out of memory");
        memcpy(copy, pins[i].data, pins[i].nbytes);
        ir_set_const(g, t, pins[i].dtype, &pins[i].shape, copy);
    }
    return 0;
}
