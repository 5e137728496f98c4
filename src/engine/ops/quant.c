/*
 * ops/quant.c — quantisation: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear
 * (kernels_math.c).
 *
 * Ops (shape rule, constant evaluation, lowering):
 *   QuantizeLinear         infer_quant, lower_quant
 *   DequantizeLinear       infer_quant, lower_quant
 *   DynamicQuantizeLinear  infer_dynquant, lower_dynquant
 */
#include "engine/ops/op.h"

/* ---- QuantizeLinear, DequantizeLinear ---- */

/* QuantizeLinear / DequantizeLinear: scale and zero point per tensor or per axis (normalised). */
int infer_quant(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
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

/* Per tensor the op is element-wise: a channels-last x (an int8 convolution's output, a QDQ
 * residual's operand) is read in place and y written in that layout, with no reorder. */
int lower_quant(struct lower *l, const struct ir_node *n)
{
    int64_t ins[3], deq = strcmp(n->op, "DequantizeLinear") == 0, out;
    const struct ir_tensor *sc = ir_in(l, n, 1);
    int64_t x = n->n_in > 0 && n->in[0] >= 0 ? operand_of(l, n, n->in[0]) : -1;
    uint32_t layout = x >= 0 && sc && engine_shape_numel(&sc->shape) == 1 ? layout_of(l, x) : 0;
    if (!plan_layout_channels_last(layout))
        layout = PLAN_LAYOUT_PLAIN;
    int cnt = 0;
    for (; cnt < 3 && cnt < n->n_in && n->in[cnt] >= 0; cnt++)
        if ((ins[cnt] = cnt == 0 && layout != PLAN_LAYOUT_PLAIN ? x
                                                                : plain_operand(l, n, n->in[cnt])) < 0)
            return (int)ins[cnt];
    if (cnt == 0)
        return lerr(l, n, -EINVAL, "missing input");
    if ((out = output_of(l, n, 0)) < 0 ||
        (layout != PLAN_LAYOUT_PLAIN && set_layout(l, out, layout)))
        return out < 0 ? (int)out : lerr(l, n, -EINVAL, "bad quantize output");
    return emit_math_to(l, n, out, PLAN_K_QUANTIZE, ins, (uint32_t)cnt, &deq, 1,
                        ir_attr_int(n, "axis", 0), 0, 0);
}

/* ---- DynamicQuantizeLinear ---- */

int infer_dynquant(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
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

/* DynamicQuantizeLinear: one kernel per output present. */
/* x stays channels last when it is (an int8 convolution's input then needs no reorder): y takes
 * its layout, the scale and zero point are plain scalars. */
int lower_dynquant(struct lower *l, const struct ir_node *n)
{
    int64_t ins[1] = {operand_of(l, n, n->in[0])}, out;
    uint32_t layout = layout_of(l, ins[0]);
    if (ins[0] >= 0 && !plan_layout_channels_last(layout))
        ins[0] = in_layout(l, n, ins[0], layout = PLAN_LAYOUT_PLAIN);
    int rc = ins[0] < 0 ? (int)ins[0] : 0;
    for (int64_t k = 0; rc >= 0 && k < 3 && k < n->n_out; k++)
        if (n->out[k] >= 0) {
            if ((out = output_of(l, n, (int)k)) < 0 ||
                (k == 0 && layout != PLAN_LAYOUT_PLAIN && set_layout(l, out, layout)))
                return out < 0 ? (int)out : lerr(l, n, -EINVAL, "bad output layout");
            rc = emit_math_to(l, n, out, PLAN_K_DYNQUANT, ins, 1, &k, 1, 0, 0, 0);
        }
    return rc < 0 ? rc : 0;
}
