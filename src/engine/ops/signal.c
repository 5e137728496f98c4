/*
 * ops/signal.c — signal processing: DFT, STFT (kernels_math.c), the three windows and
 * MelWeightMatrix (always folded to constants).
 *
 * Ops (shape rule, constant evaluation, lowering):
 *   DFT              infer_dft, lower_dft
 *   STFT             infer_stft, lower_stft
 *   HannWindow       infer_window, eval_window
 *   HammingWindow    infer_window, eval_window
 *   BlackmanWindow   infer_window, eval_window
 *   MelWeightMatrix  infer_mel, eval_mel
 */
#include "engine/ops/op.h"

/* ---- DFT ---- */

/* DFT (opset 17): real or complex signal, the transform along axis; dft_length must be absent. */
int infer_dft(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
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

int lower_dft(struct lower *l, const struct ir_node *n)
{
    int64_t ins[1], p[2];
    struct kp_dft q = {ir_attr_int(n, "inverse", 0) != 0, ir_attr_int(n, "onesided", 0) != 0};
    uint32_t np = kp_encode_dft(&q, p);
    int rc = math_operands(l, n, 1, ins);
    return rc < 0 ? rc
                  : emit_math(l, n, 0, PLAN_K_DFT, ins, 1, p, np, ir_attr_int(n, "axis", 1), 0, 0);
}

/* ---- STFT ---- */

/* STFT (opset 17): frame_step and frame_length must be constant (they decide the shape). */
int infer_stft(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
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

/* STFT: the signal and the window, if any (the step and length were resolved as attributes). */
int lower_stft(struct lower *l, const struct ir_node *n)
{
    int64_t ins[2], p[3];
    struct kp_stft q = {ir_attr_int(n, "frame_step", 0), ir_attr_int(n, "frame_length", 0),
                        ir_attr_int(n, "onesided", 1) != 0};
    uint32_t np = kp_encode_stft(&q, p), cnt = 1;
    if ((ins[0] = plain_operand(l, n, n->in[0])) < 0)
        return (int)ins[0];
    if (n->n_in > 2 && n->in[2] >= 0 && (ins[cnt++] = plain_operand(l, n, n->in[2])) < 0)
        return (int)ins[1];
    return emit_math(l, n, 0, PLAN_K_STFT, ins, cnt, p, np, 0, 0, 0);
}

/* ---- HannWindow, HammingWindow, BlackmanWindow ---- */

/* HannWindow, HammingWindow, BlackmanWindow: a constant of the given size, folded here (a size
 * computed at run time is refused: it decides the output's shape). */
int infer_window(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
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

int eval_window(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *o = &g->tensors[n->out[0]];
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    k_window((enum k_window)k_window_find(n->op), o->shape.dims[0],
             ir_attr_int(n, "periodic", 1) != 0, o->dtype, d);
    return set_data(g, n, 0, d);
}

/* ---- MelWeightMatrix ---- */

/* MelWeightMatrix: every input must be constant (they decide the shape); folded here. */
int infer_mel(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
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

int eval_mel(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
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
