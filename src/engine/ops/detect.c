/*
 * ops/detect.c — ops whose output size depends on the data: NonMaxSuppression, NonZero.
 *
 * Ops (shape rule, constant evaluation, lowering):
 *   NonMaxSuppression  infer_nms, eval_nms, lower_nms
 *   NonZero            infer_nonzero, eval_nonzero, lower_nonzero
 *
 * With constant inputs they fold to a constant of the exact shape. Otherwise the output is
 * bounded (IR_T_BOUND0/1, ir.h): its tensor is sized for the most the data can select —
 * NonMaxSuppression's selected_indices [batches × classes × min(max_output_boxes_per_class,
 * boxes), 3], NonZero's [rank, numel] —, the kernel (kernels_select.c) fills it compactly and
 * marks the count, and the run reports the output's actual shape (engine_session_run). Only a
 * graph output may be bounded: a node reading one is refused at shape inference (shape.c), so a
 * padded row can never reach an op that would compute with it.
 */
#include "engine/kernel_params.h"
#include "engine/ops/op.h"

/* ---- NonMaxSuppression ---- */

static int nms_geometry(struct ir_graph *g, struct ir_node *n, struct k_nms *p, char *err,
                        size_t errlen)
{
    int rc = arity(g, n, 2, 5, err, errlen);
    for (int i = 0; !rc && i < n->n_in; i++)
        rc = i == 2 ? 0 : want_dtype(g, n, i, ENGINE_F32, err, errlen);
    if (rc)
        return rc;
    const struct ir_tensor *b = in_t(g, n, 0), *s = in_t(g, n, 1);
    int64_t center = ir_attr_int(n, "center_point_box", 0);
    if (!b || !s || b->shape.rank != 3 || b->shape.dims[2] != 4 || s->shape.rank != 3 ||
        s->shape.dims[0] != b->shape.dims[0] || s->shape.dims[2] != b->shape.dims[1] ||
        (center != 0 && center != 1))
        return ir_node_err(g, n, err, errlen, -EINVAL,
                           "needs boxes [B,N,4], scores [B,C,N] and center_point_box 0 or 1");
    for (int i = 3; i < n->n_in; i++)
        if (in_t(g, n, i) && engine_shape_numel(&in_t(g, n, i)->shape) != 1)
            return ir_node_err(g, n, err, errlen, -EINVAL, "input %d must be one float", i);
    int64_t max = 0;
    int count = 0;
    if (in_t(g, n, 2) && (rc = const_ints(g, n, 2, &max, 1, &count, err, errlen)))
        return rc;
    int64_t boxes = b->shape.dims[1];
    *p = (struct k_nms){.batches = b->shape.dims[0],
                        .classes = s->shape.dims[1],
                        .boxes = boxes,
                        .max_per_class = count && max > 0 ? (max < boxes ? max : boxes) : 0,
                        .center = (int)center,
                        .has_iou = in_t(g, n, 3) != NULL,
                        .has_score = in_t(g, n, 4) != NULL};
    if (boxes > INT32_MAX || p->batches * p->classes > INT32_MAX / (p->max_per_class + 1))
        return ir_node_err(g, n, err, errlen, -EFBIG, "too many boxes");
    return 0;
}

int infer_nms(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct k_nms p;
    int rc = nms_geometry(g, n, &p, err, errlen);
    if (rc)
        return rc;
    struct engine_shape s = {.rank = 2, .dims = {p.batches * p.classes * p.max_per_class, 3}};
    rc = set_out(g, n, 0, ENGINE_I64, &s, err, errlen);
    if (!rc && n->out[0] >= 0 && s.dims[0] > 0)
        g->tensors[n->out[0]].flags |= IR_T_BOUND0;
    return rc;
}

/* The exact constant of a bounded output whose kernel filled buf: its bounded axis cut to the
 * count, the data (compact already) kept. */
static int set_bounded(struct ir_graph *g, struct ir_node *n, int axis, int64_t *buf, int64_t count)
{
    struct ir_tensor *t = &g->tensors[n->out[0]];
    struct engine_shape s = t->shape;
    s.dims[axis] = count;
    t->flags &= ~(unsigned)(IR_T_BOUND0 | IR_T_BOUND1);
    ir_set_const(g, n->out[0], ENGINE_I64, &s, buf);
    return 0;
}

int eval_nms(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct k_nms p;
    int rc = nms_geometry(g, n, &p, err, errlen);
    if (rc || n->out[0] < 0)
        return rc;
    if (p.has_iou)
        p.iou = *(const float *)in_t(g, n, 3)->data;
    if (p.has_score)
        p.score = *(const float *)in_t(g, n, 4)->data;
    int64_t bound = g->tensors[n->out[0]].shape.dims[0];
    int64_t *sel = alloc_out(g, n, 0);
    if (!sel || k_nms(&p, in_t(g, n, 0)->data, in_t(g, n, 1)->data, sel, bound)) {
        free(sel);
        return oom(g, n, err, errlen);
    }
    return set_bounded(g, n, 0, sel, k_bounded_count(sel, (size_t)bound * 3, bound));
}

/* The output tensor of a selection kernel, flagged as bounded along axis. */
static int64_t bounded_output(struct lower *l, const struct ir_node *n, int axis)
{
    int64_t out = output_of(l, n, 0);
    if (out >= 0 && l->g->tensors[n->out[0]].flags & (IR_T_BOUND0 | IR_T_BOUND1))
        l->b.tensors[out].flags |= axis ? PLAN_TF_BOUND1 : PLAN_TF_BOUND0;
    return out;
}

int lower_nms(struct lower *l, const struct ir_node *n)
{
    const struct ir_attr *c = ir_attr_get(n, "center_point_box");
    const struct ir_tensor *mx = ir_in(l, n, 2);
    int64_t boxes = ir_in(l, n, 0)->shape.dims[1];
    int64_t max =
        mx ? (mx->dtype == ENGINE_I64 ? *(const int64_t *)mx->data : *(const int32_t *)mx->data)
           : 0;
    struct kp_nms q = {.center = c ? (int)c->i : 0,
                       .max_per_class = max > 0 ? (max < boxes ? max : boxes) : 0,
                       .has_iou = ir_in(l, n, 3) != NULL,
                       .has_score = ir_in(l, n, 4) != NULL};
    int64_t ins[4], params[4];
    uint32_t k = 0;
    for (int i = 0; i < n->n_in && i < 5; i++) {
        if (i == 2 || n->in[i] < 0)
            continue;
        ins[k] = plain_operand(l, n, n->in[i]);
        if (ins[k++] < 0)
            return lerr(l, n, -EINVAL, "missing or unusable input");
    }
    int64_t out = bounded_output(l, n, 0);
    if (out < 0)
        return (int)out;
    struct plan_node pn = node_init(l, n, PLAN_OP_KERNEL);
    pn.alg = PLAN_K_NMS;
    pn.out = (uint32_t)out;
    if (set_inputs(l, &pn, ins, k) || set_params(l, &pn, params, kp_encode_nms(&q, params)))
        return lerr(l, n, -EINVAL, "kernel parameters out of range");
    return emit(l, n, &pn, -1, NULL);
}

/* ---- NonZero ---- */

int infer_nonzero(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 1, err, errlen);
    if (rc)
        return rc;
    const struct ir_tensor *x = in_t(g, n, 0);
    if (x->shape.rank < 1)
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "NonZero of a scalar is not supported");
    if (!engine_dtype_size(x->dtype))
        return unsupported_type(g, n, x, err, errlen);
    int64_t numel = engine_shape_numel(&x->shape);
    struct engine_shape s = {.rank = 2, .dims = {x->shape.rank, numel}};
    rc = set_out(g, n, 0, ENGINE_I64, &s, err, errlen);
    if (!rc && n->out[0] >= 0 && numel > 0)
        g->tensors[n->out[0]].flags |= IR_T_BOUND1;
    return rc;
}

int eval_nonzero(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    const struct ir_tensor *x = in_t(g, n, 0);
    if (n->out[0] < 0)
        return 0;
    int64_t *out = alloc_out(g, n, 0);
    if (!out)
        return oom(g, n, err, errlen);
    return set_bounded(g, n, 1, out, k_nonzero(x->data, x->dtype, &x->shape, out));
}

int lower_nonzero(struct lower *l, const struct ir_node *n)
{
    int64_t in = plain_operand(l, n, n->in[0]);
    int64_t out = in < 0 ? in : bounded_output(l, n, 1);
    if (out < 0)
        return lerr(l, n, -EINVAL, "missing or unusable input");
    struct plan_node pn = node_init(l, n, PLAN_OP_KERNEL);
    pn.alg = PLAN_K_NONZERO;
    pn.out = (uint32_t)out;
    if (set_inputs(l, &pn, &in, 1))
        return lerr(l, n, -ENOMEM, "out of memory");
    return emit(l, n, &pn, -1, NULL);
}
