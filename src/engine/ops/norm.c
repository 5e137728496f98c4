/*
 * ops/norm.c — normalisations and softmaxes: Softmax (oneDNN), LogSoftmax/Hardmax, batch, layer,
 * instance and mean-variance normalisation, LRN.
 *
 * Ops (shape rule, constant evaluation, lowering):
 *   Softmax                    infer_softmax, eval_softmax, lower_softmax
 *   LogSoftmax                 infer_softmax_f, lower_softmax_f
 *   Hardmax                    infer_softmax_f, lower_softmax_f
 *   BatchNormalization         infer_batchnorm, lower_batchnorm
 *   LayerNormalization         infer_layernorm, lower_layernorm
 *   InstanceNormalization      infer_instnorm, lower_instnorm
 *   MeanVarianceNormalization  infer_mvn, lower_mvn
 *   LRN                        infer_lrn, lower_lrn
 */
#include "engine/ops/op.h"

/* ---- Softmax ---- */

/* The one float32 input's axis, normalised; the default is -1 from opset 13 on, 1 before. */
static int softmax_axis(struct ir_graph *g, struct ir_node *n, int *axis, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 1, err, errlen);
    if (rc || (rc = want_dtype(g, n, 0, ENGINE_F32, err, errlen)))
        return rc;
    int64_t def = g->opset >= 13 ? -1 : 1;
    return norm_axis(g, n, ir_attr_int(n, "axis", def), in_t(g, n, 0)->shape.rank, axis, err,
                     errlen);
}

int infer_softmax(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int axis, rc = softmax_axis(g, n, &axis, err, errlen);
    if (rc)
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
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

int eval_softmax(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
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

int lower_softmax(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *x = ir_in(l, n, 0);
    int64_t axis = ir_attr_int(n, "axis", l->g->opset >= 13 ? -1 : 1);
    if (!x)
        return lerr(l, n, -EINVAL, "missing input");
    if (axis < 0)
        axis += x->shape.rank;
    if (axis < 0 || axis >= (x->shape.rank ? x->shape.rank : 1))
        return lerr(l, n, -EINVAL, "axis out of range");
    struct plan_node pn = node_init(l, n, PLAN_OP_SOFTMAX);
    pn.axis = axis;
    if (l->g->opset < 13 && axis > 0) {
        pn.collapse = (uint32_t)axis; /* opset < 13 softmax is over the flattened tail */
        pn.axis = 1;
    }
    if (l->g->opset < 13 && axis == 0)
        return lerr(l, n, -EINVAL, "unsupported attribute axis=0 before opset 13");
    int64_t ts[1] = {plain_act_operand(l, n, n->in[0])};
    int64_t out = output_of(l, n, 0);
    if (ts[0] < 0 || out < 0)
        return -EINVAL;
    return emit_with_posts(l, n, &pn, out, ts, 1);
}

/* ---- LogSoftmax, Hardmax ---- */

/* LogSoftmax, Hardmax: axis normalised; before opset 13 the kernel coerces to 2-D at axis. */
int infer_softmax_f(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int axis, rc = softmax_axis(g, n, &axis, err, errlen);
    if (rc)
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    if (ir_attr_set_int(n, "axis", axis))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, ENGINE_F32, &x->shape, err, errlen);
}

int lower_softmax_f(struct lower *l, const struct ir_node *n)
{
    struct kp_softmax q = {strcmp(n->op, "Hardmax") == 0 ? K_SM_HARDMAX : K_SM_LOGSOFTMAX,
                           l->g->opset < 13};
    int64_t ins[1], params[2];
    uint32_t np = kp_encode_softmax(&q, params);
    int rc = math_operands(l, n, 1, ins);
    return rc < 0 ? rc
                  : emit_math(l, n, 0, PLAN_K_SOFTMAX_F, ins, 1, params, np,
                              ir_attr_int(n, "axis", 0), 0, 0);
}

/* ---- BatchNormalization ---- */

int infer_batchnorm(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
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

int lower_batchnorm(struct lower *l, const struct ir_node *n)
{
    if (n->n_in != 5 || (n->n_out > 1 && n->out[1] >= 0))
        return lerr(l, n, -EINVAL, "only inference-mode BatchNormalization is supported");
    struct plan_node pn = node_init(l, n, PLAN_OP_BATCHNORM);
    pn.alpha = ir_attr_float(n, "epsilon", 1e-5f);
    static const int order[5] = {0, 3, 4, 1, 2}; /* X, mean, var, scale, B */
    int64_t ts[5];
    for (int i = 0; i < 5; i++) {
        ts[i] = i == 0 ? act_operand(l, n, n->in[0]) : operand_of(l, n, n->in[order[i]]);
        if (ts[i] < 0)
            return (int)ts[i];
    }
    int64_t out = output_of(l, n, 0);
    if (out < 0 || set_layout(l, out, layout_of(l, ts[0])))
        return lerr(l, n, -EINVAL, "cannot lay out the output");
    return emit_with_posts(l, n, &pn, out, ts, 5);
}

/* ---- LayerNormalization ---- */

/* LayerNormalization (opset 17): Y has X's shape; Mean and InvStdDev (training outputs, which
 * the backend refuses when used) have X's dims with those from axis on set to 1. */
int infer_layernorm(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
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

/* LayerNormalization with its Mean/InvStdDev outputs used: one C kernel per output. */
static int lower_layernorm_c(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *x = ir_in(l, n, 0);
    int64_t ins[3], axis = ir_attr_int(n, "axis", -1);
    axis += axis < 0 ? x->shape.rank : 0;
    if (ir_attr_int(n, "stash_type", 1) != 1)
        return lerr(l, n, -ENOTSUP, "unsupported attribute stash_type (only float)");
    int cnt = math_operands(l, n, 3, ins);
    for (int64_t k = 0; cnt > 0 && k < 3 && k < n->n_out; k++) {
        if (n->out[k] < 0 || (k > 0 && !ir_tensor_used(l->g, n->out[k])))
            continue;
        int64_t p[1];
        uint32_t np = kp_encode_layernorm(&(struct kp_layernorm){(int)k}, p);
        int rc = emit_math(l, n, (int)k, PLAN_K_LAYERNORM, ins, (uint32_t)cnt, p, np, axis,
                           ir_attr_float(n, "epsilon", 1e-5f), 0);
        if (rc)
            return rc;
    }
    return cnt < 0 ? cnt : 0;
}

/* LayerNormalization (opset 17): oneDNN layer_normalization on a plain src seen as 2-D [dims
 * before axis, dims from axis on]. The Mean and InvStdDev outputs (training only) must be unused.
 */
int lower_layernorm(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *x = ir_in(l, n, 0);
    if (!x || n->n_in < 2 || x->dtype != ENGINE_F32 || x->shape.rank < 1)
        return lerr(l, n, -EINVAL, "LayerNormalization needs a float32 input of rank 1 or more");
    int64_t axis = ir_attr_int(n, "axis", -1), inner = 1;
    axis += axis < 0 ? x->shape.rank : 0;
    if (axis < 0 || axis >= x->shape.rank)
        return lerr(l, n, -EINVAL, "axis is out of range for the input's rank");
    for (int i = (int)axis; i < x->shape.rank; i++)
        inner *= x->shape.dims[i];
    for (int k = 1; k < n->n_out; k++)
        if (n->out[k] >= 0 && ir_tensor_used(l->g, n->out[k]))
            return lower_layernorm_c(l, n);
    int n_in = n->n_in > 2 && n->in[2] >= 0 ? 3 : 2;
    for (int i = 1; i < n_in; i++) {
        const struct ir_tensor *p = ir_in(l, n, i);
        if (!p || p->dtype != ENGINE_F32 || engine_shape_numel(&p->shape) != inner)
            return lerr(l, n, -ENOTSUP, "scale and bias must be float32 of the normalized shape");
    }
    struct plan_node pn = node_init(l, n, PLAN_OP_LAYERNORM);
    pn.alpha = ir_attr_float(n, "epsilon", 1e-5f);
    pn.axis = axis;
    int64_t ts[3];
    for (int i = 0; i < n_in; i++)
        if ((ts[i] = plain_operand(l, n, n->in[i])) < 0)
            return (int)ts[i];
    int64_t out = output_of(l, n, 0);
    if (out < 0 || set_layout(l, out, PLAN_LAYOUT_PLAIN))
        return lerr(l, n, -EINVAL, "cannot lay out the output");
    pn.out = (uint32_t)out;
    int rc = set_inputs(l, &pn, ts, (uint32_t)n_in);
    if (!rc)
        rc = lower_posts(l, n, &pn);
    return rc ? rc : emit(l, n, &pn, -1, NULL);
}

/* ---- InstanceNormalization ---- */

/* InstanceNormalization: X [N, C, ...], scale and B [C]. */
int infer_instnorm(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
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

int lower_instnorm(struct lower *l, const struct ir_node *n)
{
    int64_t ins[3];
    int cnt = math_operands(l, n, 3, ins);
    if (cnt >= 0 && cnt != 3)
        return lerr(l, n, -EINVAL, "needs input, scale and B");
    return cnt < 0 ? cnt
                   : emit_math(l, n, 0, PLAN_K_INSTNORM, ins, 3, NULL, 0, 0,
                               ir_attr_float(n, "epsilon", 1e-5f), 0);
}

/* ---- MeanVarianceNormalization ---- */

/* MeanVarianceNormalization: axes (default 0, 2, 3) become reduce_mask. */
int infer_mvn(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
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

int lower_mvn(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *x = ir_in(l, n, 0);
    const struct ir_attr *a = ir_attr_get(n, "reduce_mask");
    int64_t ins[1], p[ENGINE_MAX_RANK];
    if (!x || !a || a->type != IR_ATTR_INTS || a->n != (size_t)x->shape.rank)
        return lerr(l, n, -EINVAL, "axes were not resolved by shape inference");
    struct kp_reduce q = {0};
    for (int i = 0; i < x->shape.rank; i++)
        q.mask[i] = a->ints[i] != 0;
    uint32_t np = kp_encode_reduce(&q, x->shape.rank, 0, p);
    int rc = math_operands(l, n, 1, ins);
    return rc < 0 ? rc : emit_math(l, n, 0, PLAN_K_MVN, ins, 1, p, np, 0, 0, 0);
}

/* ---- LRN ---- */

int infer_lrn(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
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

int lower_lrn(struct lower *l, const struct ir_node *n)
{
    struct kp_lrn r = {(int)ir_attr_int(n, "size", 1), ir_attr_float(n, "bias", 1.0f)};
    int64_t ins[1], p[KP_MAX_PARAMS];
    uint32_t np = kp_encode_lrn(&r, p);
    int rc = plain_inputs(l, n, 1, ins);
    return rc ? rc
              : emit_math(l, n, 0, PLAN_K_LRN, ins, 1, p, np, 0, ir_attr_float(n, "alpha", 0.0001f),
                          ir_attr_float(n, "beta", 0.75f));
}
