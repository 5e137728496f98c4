/*
 * ops/reduce.c — reductions and what reduces along an axis: Reduce*, ArgMax/ArgMin, TopK, CumSum,
 * the two losses. Kernels: kernels_math.c (CumSum: kernels_move.c).
 *
 * Ops (shape rule, constant evaluation, lowering):
 *   ReduceSum                  infer_reduce, eval_reduce, lower_reduce
 *   ReduceMean                 infer_reduce, eval_reduce, lower_reduce
 *   ReduceMax                  infer_reduce, eval_reduce, lower_reduce
 *   ReduceMin                  infer_reduce, eval_reduce, lower_reduce
 *   ReduceProd                 infer_reduce, eval_reduce, lower_reduce
 *   ReduceL1                   infer_reduce, eval_reduce, lower_reduce
 *   ReduceL2                   infer_reduce, eval_reduce, lower_reduce
 *   ReduceSumSquare            infer_reduce, eval_reduce, lower_reduce
 *   ReduceLogSum               infer_reduce, eval_reduce, lower_reduce
 *   ReduceLogSumExp            infer_reduce, eval_reduce, lower_reduce
 *   ArgMax                     infer_argext, lower_argext
 *   ArgMin                     infer_argext, lower_argext
 *   TopK                       infer_topk, lower_topk
 *   CumSum                     infer_cumsum, eval_cumsum, lower_cumsum
 *   NegativeLogLikelihoodLoss  infer_loss, lower_nll
 *   SoftmaxCrossEntropyLoss    infer_loss, lower_sce
 */
#include "engine/ops/op.h"

/* ---- ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd, ReduceL1, ReduceL2,
 * ReduceSumSquare, ReduceLogSum, ReduceLogSumExp ---- */

/* Reductions: the reduced axes become the normalised attribute reduce_mask (1 per reduced input
 * axis); empty axes reduce everything unless noop_with_empty_axes, which reduces nothing. */
int infer_reduce(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
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

int eval_reduce(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
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

/* The reduce flag per axis: shape inference's reduce_mask, or for graphs that skipped it, the
 * axes attribute or constant input (none: every axis unless noop_with_empty_axes). */
static int reduce_flags(struct lower *l, const struct ir_node *n, int r, int64_t *flags)
{
    const struct ir_attr *a = ir_attr_get(n, "reduce_mask");
    int64_t axes[ENGINE_MAX_RANK];
    int na = 0;
    if (a && a->type == IR_ATTR_INTS && a->n == (size_t)r) {
        memcpy(flags, a->ints, a->n * sizeof(int64_t));
        return 0;
    }
    a = ir_attr_get(n, "axes");
    if (a && (a->type != IR_ATTR_INTS || a->n > ENGINE_MAX_RANK))
        return lerr(l, n, -EINVAL, "bad axes");
    if (a) {
        na = (int)a->n;
        memcpy(axes, a->ints, a->n * sizeof(int64_t));
    } else if (const_input_ints(l, n, 1, axes, &na)) {
        return -EINVAL;
    }
    for (int i = 0; i < r; i++)
        flags[i] = na == 0 && !ir_attr_int(n, "noop_with_empty_axes", 0);
    for (int j = 0; j < na; j++) {
        int64_t ax = axes[j] < 0 ? axes[j] + r : axes[j];
        if (ax < 0 || ax >= r)
            return lerr(l, n, -EINVAL, "axis out of range");
        flags[ax] = 1;
    }
    return 0;
}

int lower_reduce(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *x = ir_in(l, n, 0);
    int64_t params[ENGINE_MAX_RANK + 1], ins[1];
    if (!x)
        return lerr(l, n, -EINVAL, "missing input");
    params[0] = k_redop_find(n->op);
    int rc = reduce_flags(l, n, x->shape.rank, params + 1);
    /* a float32 ReduceMean over every spatial axis with keepdims (a squeeze-excite's squeeze) is
     * a global average pooling: oneDNN's, in the input's (blocked) layout, no reorders */
    const struct ir_tensor *y = &l->g->tensors[n->out[0]];
    int spatial = !rc && strcmp(n->op, "ReduceMean") == 0 && x->dtype == ENGINE_F32 &&
                  x->shape.rank >= 3 && x->shape.rank <= 2 + PLAN_MAX_SPATIAL &&
                  y->shape.rank == x->shape.rank && !params[1] && !params[2];
    for (int i = 2; spatial && i < x->shape.rank; i++)
        spatial = params[1 + i] != 0;
    if (spatial)
        return lower_pool(l, n);
    if (rc)
        return rc;
    struct kp_reduce q = {.op = (enum k_redop)params[0]};
    for (int i = 0; i < x->shape.rank; i++)
        q.mask[i] = params[1 + i] != 0;
    uint32_t np = kp_encode_reduce(&q, x->shape.rank, 1, params);
    rc = math_operands(l, n, 1, ins);
    return rc < 0 ? rc : emit_math(l, n, 0, PLAN_K_REDUCE, ins, 1, params, np, 0, 0, 0);
}

/* ---- ArgMax, ArgMin ---- */

/* ArgMax/ArgMin: int64 indices; axis normalised. */
int infer_argext(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
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

int lower_argext(struct lower *l, const struct ir_node *n)
{
    struct kp_argext q = {strcmp(n->op, "ArgMin") == 0,
                          ir_attr_int(n, "select_last_index", 0) != 0};
    int64_t ins[1], params[2];
    uint32_t np = kp_encode_argext(&q, params);
    int rc = math_operands(l, n, 1, ins);
    return rc < 0 ? rc
                  : emit_math(l, n, 0, PLAN_K_ARGEXT, ins, 1, params, np, ir_attr_int(n, "axis", 0),
                              0, 0);
}

/* ---- TopK ---- */

/* TopK: k from the constant input (opset 10 on) or attribute; values and int64 indices. */
int infer_topk(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
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

/* TopK: one kernel per output present (values, indices); k is the outputs' size along axis. */
int lower_topk(struct lower *l, const struct ir_node *n)
{
    int64_t ins[1], axis = ir_attr_int(n, "axis", -1);
    if (!ir_in(l, n, 0) || axis < 0)
        return lerr(l, n, -EINVAL, "axis was not resolved by shape inference");
    int rc = math_operands(l, n, 1, ins);
    for (int64_t k = 0; rc >= 0 && k < 2 && k < n->n_out; k++) {
        int64_t params[2];
        uint32_t np =
            kp_encode_topk(&(struct kp_topk){ir_attr_int(n, "largest", 1) != 0, (int)k}, params);
        if (n->out[k] >= 0)
            rc = emit_math(l, n, (int)k, PLAN_K_TOPK, ins, 1, params, np, axis, 0, 0);
    }
    return rc < 0 ? rc : 0;
}

/* ---- CumSum ---- */

/* CumSum: the axis may be computed at run time (the kernel checks it then). */
int infer_cumsum(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
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

int eval_cumsum(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
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

int lower_cumsum(struct lower *l, const struct ir_node *n)
{
    int64_t ins[2], p[2];
    struct kp_cumsum q = {(int)ir_attr_int(n, "exclusive", 0), (int)ir_attr_int(n, "reverse", 0)};
    uint32_t np = kp_encode_cumsum(&q, p);
    int rc = plain_inputs(l, n, 2, ins);
    return rc ? rc : emit_kernel(l, n, PLAN_K_CUMSUM, ins, 2, p, np, 0);
}

/* ---- NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss ---- */

/* NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss: input [N, C, d...], int64 target
 * [N, d...], optional weights [C]; loss per element (reduction none) or a scalar. */
int infer_loss(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
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

/* A loss op's kernel parameters (struct kp_nll) into params; returns their count. */
static uint32_t loss_params(const struct ir_node *n, int64_t *params)
{
    const char *red = ir_attr_str(n, "reduction", "mean");
    struct kp_nll q = {strcmp(red, "none") == 0  ? K_LOSS_NONE
                       : strcmp(red, "sum") == 0 ? K_LOSS_SUM
                                                 : K_LOSS_MEAN,
                       ir_attr_get(n, "ignore_index") != NULL, ir_attr_int(n, "ignore_index", 0)};
    return kp_encode_nll(&q, params);
}

int lower_nll(struct lower *l, const struct ir_node *n)
{
    int64_t params[3], ins[3];
    uint32_t np = loss_params(n, params);
    int cnt = math_operands(l, n, 3, ins);
    return cnt < 0 ? cnt : emit_math(l, n, 0, PLAN_K_NLL, ins, (uint32_t)cnt, params, np, 0, 0, 0);
}

/* SoftmaxCrossEntropyLoss = NegativeLogLikelihoodLoss of LogSoftmax over axis 1; the
 * log-probabilities go to the log_prob output when there is one, else to a scratch tensor. */
int lower_sce(struct lower *l, const struct ir_node *n)
{
    int64_t params[3], ins[3], sm[2];
    uint32_t np = loss_params(n, params),
             nsm = kp_encode_softmax(&(struct kp_softmax){K_SM_LOGSOFTMAX, 0}, sm);
    int cnt = math_operands(l, n, 3, ins);
    if (cnt < 2)
        return cnt < 0 ? cnt : lerr(l, n, -EINVAL, "needs scores and labels");
    int64_t logp;
    if (n->n_out > 1 && n->out[1] >= 0) {
        logp = output_of(l, n, 1);
    } else {
        struct plan_tensor t = l->b.tensors[ins[0]];
        t.storage = PLAN_ST_ARENA;
        t.offset = 0;
        t.flags = 0;
        logp = plan_add_tensor(&l->b, &t);
    }
    if (logp < 0)
        return lerr(l, n, (int)logp, "cannot add the log-probabilities");
    int rc = emit_math_to(l, n, logp, PLAN_K_SOFTMAX_F, ins, 1, sm, nsm, 1, 0, 0);
    ins[0] = logp;
    return rc ? rc : emit_math(l, n, 0, PLAN_K_NLL, ins, (uint32_t)cnt, params, np, 0, 0, 0);
}
