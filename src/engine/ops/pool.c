/*
 * ops/pool.c — pooling: MaxPool, AveragePool and their global forms (oneDNN; MaxPool with its
 * Indices output in kernels_move.c), MaxUnpool.
 *
 * Ops (shape rule, constant evaluation, lowering):
 *   AveragePool        infer_pool, lower_pool
 *   MaxPool            infer_pool, lower_pool
 *   GlobalAveragePool  infer_global_pool, lower_pool
 *   GlobalMaxPool      infer_global_pool, lower_pool
 *   MaxUnpool          infer_max_unpool, lower_max_unpool
 */
#include "engine/ops/op.h"

/* ---- AveragePool, MaxPool ---- */

int infer_pool(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
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

/* MaxPool with its Indices output: the plain-C kernel, one node per output. */
static int lower_maxpool_idx(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *x = ir_in(l, n, 0);
    int sp = x ? x->shape.rank - 2 : 0;
    int64_t p[KP_MAX_PARAMS], pads[2 * PLAN_MAX_SPATIAL], in[1];
    struct kp_maxpool_idx m = {
        .pool = {.sp = sp, .storage_order = (int)ir_attr_int(n, "storage_order", 0)}};
    struct k_pool *q = &m.pool;
    if (!x || sp < 1 || sp > PLAN_MAX_SPATIAL || get_ints(n, "kernel_shape", q->kernel, sp, 1) ||
        get_ints(n, "strides", q->stride, sp, 1) || get_ints(n, "pads", pads, 2 * sp, 0) ||
        get_ints(n, "dilations", q->dil, sp, 1))
        return lerr(l, n, -EINVAL, "window was not resolved by shape inference");
    memcpy(q->pad, pads, (size_t)sp * sizeof(int64_t));
    if ((in[0] = plain_operand(l, n, n->in[0])) < 0)
        return (int)in[0];
    for (int o = 0; o < 2 && o < n->n_out; o++) {
        if (n->out[o] < 0)
            continue;
        m.which = o;
        uint32_t np = kp_encode_maxpool_idx(&m, p);
        int rc = emit_math(l, n, o, PLAN_K_MAXPOOL_IDX, in, 1, p, np, 0, 0, 0);
        if (rc)
            return rc;
    }
    return 0;
}

int lower_pool(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *x = ir_in(l, n, 0);
    const struct ir_tensor *y = n->n_out > 0 && n->out[0] >= 0 ? &l->g->tensors[n->out[0]] : NULL;
    if (!x || !y || x->dtype != ENGINE_F32)
        return lerr(l, n, -EINVAL, "pooling needs a float32 input");
    if (n->n_out > 1 && n->out[1] >= 0)
        return lower_maxpool_idx(l, n);
    struct plan_node pn = node_init(l, n, PLAN_OP_POOL);
    int sp = x->shape.rank - 2;
    int64_t kernel[PLAN_MAX_SPATIAL];
    /* a ReduceMean over every spatial axis, kept (lower_reduce checks): a global average */
    int global = strncmp(n->op, "Global", 6) == 0 || strcmp(n->op, "ReduceMean") == 0;
    if (sp < 1 || sp > PLAN_MAX_SPATIAL)
        return lerr(l, n, -EINVAL, "only 1-3 spatial dims are supported");
    if (global) {
        for (int i = 0; i < sp; i++) {
            pn.kernel[i] = x->shape.dims[2 + i];
            pn.strides[i] = 1;
        }
    } else {
        if (get_ints(n, "kernel_shape", kernel, sp, 0))
            return lerr(l, n, -EINVAL, "kernel_shape has the wrong length");
        int rc = node_window(l, n, x, y, kernel, &pn);
        if (rc)
            return rc;
    }
    int is_max = strstr(n->op, "Max") != NULL;
    pn.alg = is_max                                   ? dnnl_pooling_max
             : ir_attr_int(n, "count_include_pad", 0) ? dnnl_pooling_avg_include_padding
                                                      : dnnl_pooling_avg_exclude_padding;
    if (ir_attr_int(n, "storage_order", 0))
        return lerr(l, n, -EINVAL, "unsupported attribute storage_order=1");
    int64_t ts[1] = {act_operand(l, n, n->in[0])};
    int64_t out = output_of(l, n, 0);
    if (ts[0] < 0 || out < 0 || set_layout(l, out, layout_of(l, ts[0])))
        return -EINVAL;
    return emit_with_posts(l, n, &pn, out, ts, 1);
}

/* ---- GlobalAveragePool, GlobalMaxPool ---- */

int infer_global_pool(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
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

/* ---- MaxUnpool ---- */

/* MaxUnpool: the output shape from kernel/strides/pads, or a constant output_shape. */
int infer_max_unpool(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
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

int lower_max_unpool(struct lower *l, const struct ir_node *n)
{
    int64_t ins[2];
    int rc = plain_inputs(l, n, 2, ins);
    return rc ? rc : emit_kernel(l, n, PLAN_K_MAX_UNPOOL, ins, 2, NULL, 0, 0);
}
