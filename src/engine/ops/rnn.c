/*
 * ops/rnn.c — recurrent layers: RNN, GRU, LSTM with the default activations (kernels_move.c).
 *
 * Ops (shape rule, constant evaluation, lowering):
 *   RNN   infer_rnn, lower_rnn
 *   GRU   infer_rnn, lower_rnn
 *   LSTM  infer_rnn, lower_rnn
 */
#include "engine/ops/op.h"

/* ---- RNN, GRU, LSTM ---- */

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

int infer_rnn(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
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

/* RNN/GRU/LSTM: one kernel node per present output (each runs the recurrence). */
int lower_rnn(struct lower *l, const struct ir_node *n)
{
    struct kp_rnn q = {.kind = (enum k_rnn_kind)ir_attr_int(n, "rnn_kind", 0),
                       .direction = (enum k_rnn_dir)ir_attr_int(n, "rnn_dir", 0),
                       .layout = (int)ir_attr_int(n, "layout", 0),
                       .linear_before_reset = (int)ir_attr_int(n, "linear_before_reset", 0),
                       .hidden = (int)ir_attr_int(n, "hidden_size", 1)};
    int64_t ins[8], p[KP_MAX_PARAMS];
    int rc = plain_inputs(l, n, 3, ins), k = 3;
    for (int i = 3; !rc && i < n->n_in && i < 8; i++) {
        if (n->in[i] < 0)
            continue;
        q.present |= 1 << (i - 3);
        ins[k] = plain_operand(l, n, n->in[i]);
        if (ins[k++] < 0)
            rc = lerr(l, n, -EINVAL, "unusable input");
    }
    for (int o = 0; !rc && o < n->n_out && o < 3; o++) {
        if (n->out[o] < 0)
            continue;
        q.which = o;
        uint32_t np = kp_encode_rnn(&q, p);
        rc = emit_math(l, n, o, PLAN_K_RNN, ins, (uint32_t)k, p, np, 0, 0, 0);
    }
    return rc;
}
