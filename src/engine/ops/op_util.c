/*
 * ops/op_util.c — the helpers shape rules share: arity and dtype checks, setting outputs,
 * reading axes, constant inputs and int-list attributes, windows of convolutions and pools.
 */
#include "engine/ops/op.h"

struct ir_tensor *in_t(struct ir_graph *g, const struct ir_node *n, int i)
{
    return i < n->n_in && n->in[i] >= 0 ? &g->tensors[n->in[i]] : NULL;
}

const char *shape_s(const struct engine_shape *s, char *buf)
{
    return engine_shape_str(s, buf, 128);
}

int arity(struct ir_graph *g, struct ir_node *n, int min_in, int max_in, char *err, size_t errlen)
{
    if (n->n_in < min_in || n->n_in > max_in || n->n_out < 1)
        return ir_node_err(g, n, err, errlen, -EINVAL, "expects %d to %d inputs, has %d", min_in,
                           max_in, n->n_in);
    for (int i = 0; i < min_in; i++)
        if (n->in[i] < 0)
            return ir_node_err(g, n, err, errlen, -EINVAL, "required input %d is missing", i);
    return 0;
}

int want_dtype(struct ir_graph *g, struct ir_node *n, int i, int dtype, char *err, size_t errlen)
{
    struct ir_tensor *x = in_t(g, n, i);
    if (x && x->dtype != dtype)
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "input %d ('%s') is %s, expected %s", i,
                           x->name, engine_dtype_name(x->dtype), engine_dtype_name(dtype));
    return 0;
}

int set_out(struct ir_graph *g, struct ir_node *n, int i, int dtype, const struct engine_shape *s,
            char *err, size_t errlen)
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
int norm_axis(struct ir_graph *g, struct ir_node *n, int64_t axis, int rank, int *out, char *err,
              size_t errlen)
{
    *out = 0;
    if (axis < -rank || axis >= rank)
        return ir_node_err(g, n, err, errlen, -EINVAL, "axis %lld out of range for rank %d",
                           (long long)axis, rank);
    *out = (int)(axis < 0 ? axis + rank : axis);
    return 0;
}

/* Reads an int64/int32 constant input as up to max int64 values. */
int const_ints(struct ir_graph *g, struct ir_node *n, int i, int64_t *v, int max, int *count,
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
int attr_ints(struct ir_graph *g, struct ir_node *n, const char *name, int64_t *v, int expect,
              int64_t def, char *err, size_t errlen)
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

void *alloc_out(struct ir_graph *g, struct ir_node *n, int i)
{
    struct ir_tensor *t = &g->tensors[n->out[i]];
    size_t bytes = (size_t)engine_shape_numel(&t->shape) * engine_dtype_size(t->dtype);
    return calloc(1, bytes ? bytes : 1);
}

int set_data(struct ir_graph *g, struct ir_node *n, int i, void *data)
{
    if (i >= n->n_out || n->out[i] < 0) {
        free(data);
        return 0;
    }
    struct ir_tensor *t = &g->tensors[n->out[i]];
    ir_set_const(g, n->out[i], t->dtype, &t->shape, data);
    return 0;
}

int oom(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    return ir_node_err(g, n, err, errlen, -ENOMEM, "out of memory while folding");
}

int read_window(struct ir_graph *g, struct ir_node *n, struct window *w, char *err, size_t errlen)
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
int window_out(struct ir_graph *g, struct ir_node *n, struct window *w, const int64_t *in,
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

int write_window(struct ir_node *n, const struct window *w)
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

int spatial_input(struct ir_graph *g, struct ir_node *n, struct ir_tensor *x, char *err,
                  size_t errlen)
{
    char s[128];
    if (x->shape.rank < 3 || x->shape.rank > 2 + MAX_SPATIAL)
        return ir_node_err(g, n, err, errlen, -ENOTSUP,
                           "input %s must be [N,C,spatial...] with 1 to 3 spatial dims",
                           shape_s(&x->shape, s));
    return 0;
}

/* Axes from the attribute (before opset 13) or the constant second input. */
int read_axes(struct ir_graph *g, struct ir_node *n, int64_t *v, int *k, char *err, size_t errlen)
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

int unsupported_type(struct ir_graph *g, struct ir_node *n, const struct ir_tensor *x, char *err,
                     size_t errlen)
{
    return ir_node_err(g, n, err, errlen, -ENOTSUP, "input type %s is unsupported for %s",
                       engine_dtype_name(x->dtype), n->op);
}

int is_q8(int dtype)
{
    return dtype == ENGINE_U8 || dtype == ENGINE_I8;
}

int index_input(struct ir_graph *g, struct ir_node *n, int i, char *err, size_t errlen)
{
    struct ir_tensor *t = in_t(g, n, i);
    if (t->dtype != ENGINE_I64 && t->dtype != ENGINE_I32)
        return ir_node_err(g, n, err, errlen, -EINVAL, "indices must be int64 or int32, are %s",
                           engine_dtype_name(t->dtype));
    return 0;
}

int no_eval(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    return 1;
}
