/*
 * qdq.c — QDQ lowering (ir_optimize's last rewrite): the float Conv between quantize/dequantize
 * pairs that a statically quantized ("QDQ") model spells out becomes the one int8 convolution it
 * stands for, a QLinearConv.
 *
 *   DequantizeLinear(x_q, xs, xzp) ─┐
 *   DequantizeLinear(w_q const, ws, wzp, axis 0) ── Conv [fused ReLU] ── QuantizeLinear(ys, yzp)
 *   [DequantizeLinear(b int32 const, xs·ws) or a float32 constant bias] ─┘
 *
 * becomes QLinearConv(x_q, xs, xzp, w_q, ws, wzp, ys, yzp, B) [ReLU], writing the
 * QuantizeLinear's output. A Gemm (transB, A = Flatten(DequantizeLinear(x_q [B, K, 1, 1])) as
 * after global pooling) becomes the same as a 1x1 QLinearConv of weights [N, K, 1, 1], and its
 * QuantizeLinear the Flatten of the result to [B, N]. B is the int32 bias as written (its scale must be xs·ws), or a float
 * bias quantized with that scale (round to nearest even). A fused ReLU stays a post-op: before
 * the output zero point is added it is max(y, y_zp) after quantization, which is what
 * quantizing ReLU's output gives. Everything but the rewritten Conv stays (the dead DQ/Q nodes go
 * with drop_dead), so a pattern that does not match exactly keeps today's float path.
 *
 * Then every DequantizeLinear left with constant inputs (the weights of a Gemm/MatMul, of a Conv
 * that did not match) is evaluated once here: its consumers read float32 weights from the image
 * instead of dequantizing them on every request.
 *
 * Rounding: the int8 result rounds once (the scaled integer sum), the float path twice (the
 * float Conv, then the quantization), so the two may differ by one quantum at a tie; ONNX
 * Runtime runs QDQ models through the same integer kernels.
 */
#include "engine/ir.h"
#include "engine/kernels.h"

#include "common/common.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The live producer of t if it is the given op, else NULL. */
static const struct ir_node *producer_op(const struct ir_graph *g, int t, const char *op)
{
    if (t < 0 || g->tensors[t].producer < 0)
        return NULL;
    const struct ir_node *p = &g->nodes[g->tensors[t].producer];
    return !p->dead && strcmp(p->op, op) == 0 ? p : NULL;
}

static const struct ir_tensor *in_of(const struct ir_graph *g, const struct ir_node *n, int i)
{
    return i < n->n_in && n->in[i] >= 0 ? &g->tensors[n->in[i]] : NULL;
}

static int64_t numel(const struct ir_tensor *t)
{
    return engine_shape_numel(&t->shape);
}

/* A constant float32 scale of `count` values (or one), positive and finite. */
static int scale_ok(const struct ir_tensor *s, int64_t count)
{
    if (!s || !s->data || s->dtype != ENGINE_F32 || s->shape.rank > 1 ||
        (numel(s) != 1 && numel(s) != count))
        return 0;
    for (int64_t i = 0; i < numel(s); i++)
        if (!(((const float *)s->data)[i] > 0) || !isfinite(((const float *)s->data)[i]))
            return 0;
    return 1;
}

/* A constant zero point of `count` values (or one) of an 8-bit dtype, or absent (nonconst 0). */
static int zp_ok(const struct ir_tensor *z, int64_t count)
{
    return !z || (z->data && (z->dtype == ENGINE_U8 || z->dtype == ENGINE_I8) &&
                  z->shape.rank <= 1 && (numel(z) == 1 || numel(z) == count));
}

static float at(const struct ir_tensor *s, int64_t i)
{
    return ((const float *)s->data)[numel(s) == 1 ? 0 : i];
}

/* The int32 bias of a QLinearConv with m output channels and scales xs, ws: from
 * DequantizeLinear(int32 const, xs·ws), or a float32 constant quantized; -1 if none fits, -2 if
 * absent, else a new constant tensor. */
static int qdq_bias(struct ir_graph *g, const struct ir_node *conv, float xs,
                    const struct ir_tensor *ws, int64_t m)
{
    int bt = conv->n_in > 2 ? conv->in[2] : -1;
    if (bt < 0)
        return -2;
    const struct ir_node *d = producer_op(g, bt, "DequantizeLinear");
    const struct ir_tensor *b = d ? in_of(g, d, 0) : &g->tensors[bt];
    if (!b->data || b->shape.rank != 1 || b->shape.dims[0] != m ||
        b->dtype != (d ? ENGINE_I32 : ENGINE_F32))
        return -1;
    int32_t *q = malloc((size_t)m * sizeof(*q) + 1);
    if (!q)
        return -ENOMEM;
    const struct ir_tensor *bs = d ? in_of(g, d, 1) : NULL, *bz = d ? in_of(g, d, 2) : NULL;
    int ok = !d || (scale_ok(bs, m) && (!bz || (bz->data && bz->dtype == ENGINE_I32 &&
                                                 (numel(bz) == 1 || numel(bz) == m))));
    for (int64_t i = 0; ok && i < m; i++) {
        double s = (double)xs * at(ws, i);
        if (d) {
            ok = fabs(at(bs, i) - s) <= 1e-6 * s &&
                 (!bz || ((const int32_t *)bz->data)[numel(bz) == 1 ? 0 : i] == 0);
            q[i] = ((const int32_t *)b->data)[i];
        } else {
            double v = nearbyint(((const float *)b->data)[i] / s);
            ok = fabs(v) < 2147483647.0;
            q[i] = (int32_t)v;
        }
    }
    if (!ok) {
        free(q);
        return -1;
    }
    struct engine_shape shape = {.rank = 1, .dims = {m}};
    return ir_add_const(g, g->tensors[bt].name, "::qbias", ENGINE_I32, &shape, q);
}

/* A zero point tensor (for an absent one): 0 of dtype dt. */
static int zero_zp(struct ir_graph *g, int like, int dt)
{
    uint8_t *z = calloc(1, 1);
    struct engine_shape scalar = {.rank = 0};
    return ir_add_const(g, g->tensors[like].name, "::zp", dt, &scalar, z);
}

/* The uint8/int8 x a Gemm's A is (Flatten(DequantizeLinear(x)), x [B, K, 1, 1] as global
 * pooling leaves it): its DequantizeLinear, or NULL. */
static const struct ir_node *gemm_x(const struct ir_graph *g, const struct ir_node *gemm)
{
    const struct ir_node *fl = producer_op(g, gemm->in[0], "Flatten"), *dx;
    if (!fl || ir_attr_int(fl, "axis", 1) != 1 || !(dx = producer_op(g, fl->in[0], "DequantizeLinear")))
        return NULL;
    const struct ir_tensor *x = in_of(g, dx, 0);
    if (x->shape.rank != 4 || x->shape.dims[2] != 1 || x->shape.dims[3] != 1 ||
        ir_attr_int(gemm, "transA", 0) != 0 || ir_attr_int(gemm, "transB", 0) != 1 ||
        ir_attr_float(gemm, "alpha", 1) != 1 || ir_attr_float(gemm, "beta", 1) != 1)
        return NULL;
    return dx;
}

/* A Gemm's int8 weights [N, K] as the [N, K, 1, 1] of a 1x1 convolution: a new constant. */
static int gemm_weights(struct ir_graph *g, int w)
{
    const struct ir_tensor *t = &g->tensors[w];
    struct engine_shape s = {.rank = 4, .dims = {t->shape.dims[0], t->shape.dims[1], 1, 1}};
    void *d = malloc(t->nbytes + 1);
    if (!d)
        return -ENOMEM;
    memcpy(d, t->data, t->nbytes);
    return ir_add_const(g, t->name, "::1x1", t->dtype, &s, d);
}

/* The rewrite of Conv (or Gemm: a 1x1 QLinearConv, then the QuantizeLinear node becomes the
 * Flatten back to [B, N]) node ci when it matches; 0 when it does not, 1 done, -errno. */
static int lower_qdq_conv(struct ir_graph *g, int ci, int gemm)
{
    struct ir_node *conv = &g->nodes[ci];
    if (conv->n_in < 2 || conv->n_out < 1 || conv->out[0] < 0 || conv->n_post > 1 ||
        (conv->n_post == 1 &&
         (conv->post[0].kind != IR_POST_ACT || conv->post[0].act != IR_ACT_RELU ||
          conv->post[0].alpha != 0)))
        return 0;
    const struct ir_node *dx = gemm ? gemm_x(g, conv)
                                    : producer_op(g, conv->in[0], "DequantizeLinear");
    const struct ir_node *dw = producer_op(g, conv->in[1], "DequantizeLinear");
    int y = conv->out[0], qi = -1;
    if (!dx || !dw || g->tensors[y].flags & IR_T_OUTPUT || ir_consumers(g, y) != 1)
        return 0;
    for (int i = ci + 1; i < g->n_nodes && qi < 0; i++)
        if (!g->nodes[i].dead && g->nodes[i].n_in > 0 && g->nodes[i].in[0] == y)
            qi = i;
    if (qi < 0 || strcmp(g->nodes[qi].op, "QuantizeLinear") ||
        ir_node_scope(g, &g->nodes[qi]) != ir_node_scope(g, conv) || g->nodes[qi].out[0] < 0)
        return 0;
    const struct ir_node *q = &g->nodes[qi];
    const struct ir_tensor *xq = in_of(g, dx, 0), *xs = in_of(g, dx, 1), *xz = in_of(g, dx, 2);
    const struct ir_tensor *wq = in_of(g, dw, 0), *ws = in_of(g, dw, 1), *wz = in_of(g, dw, 2);
    const struct ir_tensor *ys = in_of(g, q, 1), *yz = in_of(g, q, 2);
    int64_t m = wq->shape.dims[0];
    if ((xq->dtype != ENGINE_U8 && xq->dtype != ENGINE_I8) || !scale_ok(xs, 1) || !zp_ok(xz, 1) ||
        (xz && xz->dtype != xq->dtype) || !wq->data ||
        (wq->dtype != ENGINE_U8 && wq->dtype != ENGINE_I8) || wq->shape.rank != (gemm ? 2 : xq->shape.rank) ||
        (gemm && wq->shape.dims[1] != xq->shape.dims[1]) ||
        !scale_ok(ws, m) || !zp_ok(wz, m) || (wz && wz->dtype != wq->dtype) ||
        (numel(ws) != 1 && ir_attr_int(dw, "axis", 1) != 0) ||
        (wz && numel(wz) != 1 && ir_attr_int(dw, "axis", 1) != 0) || !scale_ok(ys, 1) ||
        !zp_ok(yz, 1) || in_of(g, q, 1)->shape.rank > 1)
        return 0;
    float xsv = at(xs, 0);
    int in[9] = {dx->in[0], dx->in[1], xz ? dx->in[2] : -1, dw->in[0], dw->in[1],
                 wz ? dw->in[2] : -1, q->in[1], yz ? q->in[2] : -1, -1};
    int qout = q->out[0], xdt = xq->dtype, wdt = wq->dtype, ydt = yz ? yz->dtype : ENGINE_U8;
    int64_t batch = xq->shape.dims[0];
    int b = qdq_bias(g, conv, xsv, ws, m); /* these may move g->tensors */
    if (b == -1 || b == -ENOMEM)
        return b == -1 ? 0 : b;
    if (gemm && (in[3] = gemm_weights(g, in[3])) < 0)
        return in[3];
    int zs[3][2] = {{2, xdt}, {5, wdt}, {7, ydt}};
    for (int k = 0; k < 3; k++)
        if (in[zs[k][0]] < 0 && (in[zs[k][0]] = zero_zp(g, in[0], zs[k][1])) < 0)
            return in[zs[k][0]];
    int out = qout;
    if (gemm) { /* the 1x1 convolution writes [B, N, 1, 1]; the Flatten makes it [B, N] */
        if ((out = ir_add_tensor(g, g->tensors[qout].name)) < 0)
            return out;
        struct ir_tensor *t = &g->tensors[out];
        t->dtype = ydt;
        t->shape = (struct engine_shape){.rank = 4, .dims = {batch, m, 1, 1}};
        t->shape_known = 1;
    }
    int *nin = malloc(9 * sizeof(int));
    char *op = strdup("QLinearConv"), *fop = gemm ? strdup("Flatten") : NULL;
    if (!nin || !op || (gemm && (!fop || ir_attr_set_int(&g->nodes[qi], "axis", 1)))) {
        free(nin), free(op), free(fop);
        return -ENOMEM;
    }
    conv = &g->nodes[ci];
    memcpy(nin, in, sizeof(in));
    nin[8] = b >= 0 ? b : -1;
    free(conv->in);
    free(conv->op);
    conv->in = nin;
    conv->n_in = b >= 0 ? 9 : 8;
    conv->op = op;
    conv->out[0] = out;
    g->tensors[out].producer = ci;
    g->tensors[y].producer = -1;
    struct ir_node *qn = &g->nodes[qi];
    if (gemm) {
        free(qn->op);
        qn->op = fop;
        qn->in[0] = out;
        qn->n_in = 1;
    } else {
        qn->dead = 1; /* the Conv writes the QuantizeLinear's output now */
        g->tensors[qout].producer = ci;
    }
    return 1;
}

/* A DequantizeLinear of constants (x, scale, zero point) becomes its float32 result; 0 or
 * -ENOMEM. */
static int fold_dq(struct ir_graph *g, struct ir_node *n)
{
    const struct ir_tensor *x = in_of(g, n, 0), *s = in_of(g, n, 1), *z = in_of(g, n, 2);
    int y = n->out[0];
    if (!x->data || !s->data || (z && !z->data) ||
        (x->dtype != ENGINE_U8 && x->dtype != ENGINE_I8 && x->dtype != ENGINE_I32) ||
        y < 0 || g->tensors[y].flags & IR_T_OUTPUT || ir_node_scope(g, n) != 0)
        return 0;
    int64_t count = numel(x), axis = ir_attr_int(n, "axis", 1), inner = 1, len = 1;
    if (numel(s) != 1) {
        if (axis < 0 || axis >= x->shape.rank)
            return 0;
        len = x->shape.dims[axis];
        for (int d = (int)axis + 1; d < x->shape.rank; d++)
            inner *= x->shape.dims[d];
    }
    float *f = malloc((size_t)count * sizeof(float) + 1);
    if (!f)
        return -ENOMEM;
    k_dequantize(x->data, x->dtype, s->data, z ? z->data : NULL, (size_t)numel(s), (size_t)len,
                 (size_t)inner, f, (size_t)count);
    struct engine_shape shape = x->shape;
    n->dead = 1;
    g->tensors[y].producer = -1;
    ir_set_const(g, y, ENGINE_F32, &shape, f);
    return 0;
}

/* ---- dynamic quantization's dequantising tail ---- */

/* The one live node reading t (t no graph output, read once), else -1. */
static int sole_reader(const struct ir_graph *g, int t)
{
    if (t < 0 || g->tensors[t].flags & IR_T_OUTPUT || ir_consumers(g, t) != 1)
        return -1;
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; !g->nodes[i].dead && k < g->nodes[i].n_in; k++)
            if (g->nodes[i].in[k] == t)
                return ir_node_scope(g, &g->nodes[i]) == 0 ? i : -1;
    return -1;
}

/* The other operand of binary node b (op) reading t, when it is one float32 or one per output
 * channel (m of them along axis 1 of the rank-r output) and b's output has t's shape; else -1. */
static int channel_operand(const struct ir_graph *g, int bi, const char *op, int t, int64_t m,
                           int r)
{
    const struct ir_node *b = &g->nodes[bi];
    if (strcmp(b->op, op) || b->n_in != 2 || b->n_out != 1 || b->out[0] < 0 || b->n_post)
        return -1;
    int o = b->in[0] == t ? b->in[1] : b->in[0];
    const struct ir_tensor *v = &g->tensors[o], *y = &g->tensors[b->out[0]];
    if (o < 0 || o == t || v->dtype != ENGINE_F32 || y->dtype != ENGINE_F32 ||
        y->shape.rank != r || memcmp(y->shape.dims, g->tensors[t].shape.dims,
                                     (size_t)r * sizeof(y->shape.dims[0])))
        return -1;
    if (numel(v) == 1)
        return v->shape.rank <= r ? o : -1;
    int c = v->shape.rank == r ? 1 : 0; /* [1, m, 1...] or [m, 1...] */
    if (numel(v) != m || v->shape.rank < r - 1 || v->shape.rank > r || v->shape.dims[c] != m)
        return -1;
    for (int d = 0; d < c; d++)
        if (v->shape.dims[d] != 1)
            return -1;
    return o;
}

/* A MatMulInteger's A as global pooling leaves it: DynamicQuantizeLinear(Flatten(x [B, K, 1,
 * 1])), read only here, B [K, N]: the DynamicQuantizeLinear's node index, else -1. */
static int classifier_dq(const struct ir_graph *g, const struct ir_node *mm)
{
    const struct ir_node *dq = producer_op(g, mm->in[0], "DynamicQuantizeLinear");
    const struct ir_node *fl = dq ? producer_op(g, dq->in[0], "Flatten") : NULL;
    const struct ir_tensor *w = in_of(g, mm, 1), *x = fl ? in_of(g, fl, 0) : NULL;
    if (!x || ir_attr_int(fl, "axis", 1) != 1 || ir_node_scope(g, dq) || dq->out[0] != mm->in[0] ||
        !w || w->shape.rank != 2 || g->tensors[mm->in[0]].flags & IR_T_OUTPUT ||
        ir_consumers(g, mm->in[0]) != 1 || x->dtype != ENGINE_F32 || x->shape.rank != 4 ||
        x->shape.dims[2] != 1 || x->shape.dims[3] != 1 || x->shape.dims[1] != w->shape.dims[0])
        return -1;
    return g->tensors[mm->in[0]].producer;
}

/* The classifier's MatMulInteger as a 1x1 ConvInteger: its DynamicQuantizeLinear (node di)
 * quantizes the pooled [B, K, 1, 1] itself, B [K, N] becomes the weights [N, K, 1, 1] (a new
 * constant: *w), and the convolution writes a new [B, N, 1, 1] (*y) that node fi, the tail's
 * last, becomes the Flatten of. 0 or -ENOMEM. */
static int classifier_conv(struct ir_graph *g, int mi, int di, int fi, int *w, int *y)
{
    const struct ir_tensor *b = &g->tensors[g->nodes[mi].in[1]];
    int64_t k = b->shape.dims[0], n = b->shape.dims[1], batch = g->tensors[g->nodes[mi].in[0]].shape.dims[0];
    struct engine_shape s = {.rank = 4, .dims = {n, k, 1, 1}};
    int8_t *d = malloc((size_t)(n * k) + 1);
    char *op = strdup("Flatten");
    if (!d || !op || ir_attr_set_int(&g->nodes[fi], "axis", 1)) {
        free(d), free(op);
        return -ENOMEM;
    }
    for (int64_t i = 0; i < k; i++)
        for (int64_t j = 0; j < n; j++)
            d[j * k + i] = ((const int8_t *)b->data)[i * n + j];
    int xq = g->nodes[mi].in[0], x4 = g->nodes[g->tensors[g->nodes[di].in[0]].producer].in[0];
    if ((*w = ir_add_const(g, b->name, "::1x1", ENGINE_I8, &s, d)) < 0 ||
        (*y = ir_add_tensor(g, g->tensors[g->nodes[fi].out[0]].name)) < 0) {
        free(op);
        return -ENOMEM;
    }
    g->nodes[di].in[0] = x4;
    g->tensors[xq].shape = (struct engine_shape){.rank = 4, .dims = {batch, k, 1, 1}};
    struct ir_tensor *t = &g->tensors[*y];
    t->dtype = ENGINE_F32;
    t->shape = (struct engine_shape){.rank = 4, .dims = {batch, n, 1, 1}};
    t->shape_known = 1;
    struct ir_node *f = &g->nodes[fi];
    free(f->op);
    f->op = op;
    f->in[0] = *y;
    f->n_in = 1;
    f->n_post = 0;
    f->dead = 0;
    g->tensors[f->out[0]].producer = fi;
    return 0;
}

/* A classifier's tail is Cast (slot chain[0]) -> Mul (chain[1]); its 1x1 convolution writes
 * [B, N, 1, 1], so the Mul's slot becomes the Flatten to [B, N] and the convolution runs in the
 * Cast's, after the scale: the scale's producer, when it comes between them (tools/quantize's
 * order), trades slots with the Cast if its inputs exist before the Cast. 1 when placed so
 * (chain[0] then the slot for the convolution), else 0. A bias Add stays after the Flatten:
 * at batch 1 a per-channel src1 [1, N, 1, 1] is the whole dst, which oneDNN 2.6's int8
 * convolutions take only in their reference kernel. */
static int classifier_slots(struct ir_graph *g, int *chain)
{
    const struct ir_node *mul = &g->nodes[chain[1]];
    int c = chain[0], s = mul->in[0] == g->nodes[c].out[0] ? mul->in[1] : mul->in[0];
    int p = g->tensors[s].producer;
    if (p < c)
        return 1;
    if (ir_node_scope(g, &g->nodes[p]))
        return 0;
    for (int k = 0; k < g->nodes[p].n_in; k++) {
        int t = g->nodes[p].in[k];
        if (t >= 0 && g->tensors[t].producer >= c)
            return 0;
    }
    struct ir_node tmp = g->nodes[c];
    g->nodes[c] = g->nodes[p];
    g->nodes[p] = tmp;
    for (int k = 0; k < g->nodes[c].n_out; k++)
        if (g->nodes[c].out[k] >= 0)
            g->tensors[g->nodes[c].out[k]].producer = c;
    for (int k = 0; k < g->nodes[p].n_out; k++)
        if (g->nodes[p].out[k] >= 0)
            g->tensors[g->nodes[p].out[k]].producer = p;
    chain[0] = p;
    return 1;
}

/* ConvInteger(x, w const int8, [xzp one value], [wzp 0]) -> Cast(float32) -> Mul(one scale or
 * one per channel) [-> Add(bias: one or one per channel)] [-> an activation], the tail dynamic
 * quantization writes per convolution, becomes that ConvInteger with inputs 4 and 5 the scale
 * and the bias (-1) and the activation as its post-op, writing the last node's output: oneDNN's
 * int8 convolution with a float32 dst and binary post-ops (ops/conv.c), which converts the
 * int32 sums to float32 as the Cast does and then multiplies and adds in float32 as the graph.
 * The classifier's MatMulInteger after global pooling (classifier_dq) becomes a 1x1 one with
 * the Mul fused, and the Mul the Flatten of its result (classifier_slots). Only where oneDNN sums these
 * weights exactly (our int8 kernel has no float32 dst). 0 or -ENOMEM. */
static int fuse_dyn_tail(struct ir_graph *g, int ci)
{
    struct ir_node *conv = &g->nodes[ci];
    int mm = strcmp(conv->op, "MatMulInteger") == 0, di = mm ? classifier_dq(g, conv) : -1;
    const struct ir_tensor *x = in_of(g, conv, 0), *w = in_of(g, conv, 1);
    const struct ir_tensor *xz = in_of(g, conv, 2), *wz = in_of(g, conv, 3);
    if (conv->n_in < 2 || conv->n_in > 4 || conv->n_out != 1 || conv->out[0] < 0 ||
        conv->n_post || ir_node_scope(g, conv) || !x || !w || (mm && di < 0) ||
        (x->dtype != ENGINE_U8 && x->dtype != ENGINE_I8) || w->dtype != ENGINE_I8 || !w->data ||
        x->shape.rank < (mm ? 2 : 3) || w->shape.rank != x->shape.rank || (xz && numel(xz) != 1) ||
        (wz && (!wz->data || wz->dtype != ENGINE_I8 || numel(wz) != 1)))
        return 0;
    if ((wz && ((const int8_t *)wz->data)[0] != 0) || !dnnl_int8_exact(w->data, numel(w), x->dtype))
        return 0;
    int r = x->shape.rank, t = conv->out[0], chain[4], n = 0, in4[2] = {-1, -1};
    int64_t m = w->shape.dims[mm ? 1 : 0];
    int cast = sole_reader(g, t);
    if (cast < 0 || strcmp(g->nodes[cast].op, "Cast") || g->nodes[cast].n_out != 1 ||
        g->nodes[cast].out[0] < 0 || g->tensors[g->nodes[cast].out[0]].dtype != ENGINE_F32)
        return 0;
    chain[n++] = cast;
    t = g->nodes[cast].out[0];
    for (int k = 0; k < 2 - mm; k++) { /* a classifier: the Mul only (see below) */
        int bi = sole_reader(g, t);
        if (bi < 0 || (in4[k] = channel_operand(g, bi, k ? "Add" : "Mul", t, m, r)) < 0)
            break;
        chain[n++] = bi;
        t = g->nodes[bi].out[0];
    }
    if (in4[0] < 0 || (mm && (numel(&g->tensors[in4[0]]) != 1 || !classifier_slots(g, chain))))
        return 0;
    struct ir_post_op post = {.kind = IR_POST_ACT, .tensor = -1};
    int ai = mm ? -1 : sole_reader(g, t), act = ai >= 0 && g->nodes[ai].n_out == 1 &&
                                      g->nodes[ai].out[0] >= 0 && g->nodes[ai].in[0] == t &&
                                      ir_node_act(g, &g->nodes[ai], &post.act, &post.alpha,
                                                  &post.beta);
    if (act) {
        chain[n++] = ai;
        t = g->nodes[ai].out[0];
    }
    /* the fused node runs where the last node of the tail ran (a classifier's: the one before,
     * the last becomes the Flatten), after its scale and bias */
    int last = chain[n - 1 - mm], fi = chain[n - 1], y = conv->out[0];
    for (int k = 0; k < 2; k++)
        if (in4[k] >= 0 && g->tensors[in4[k]].producer >= last)
            return 0;
    for (int k = 0; k < n; k++) {
        struct ir_node *c = &g->nodes[chain[k]];
        c->dead = 1;
        if (c->out[0] >= 0 && g->tensors[c->out[0]].producer == chain[k])
            g->tensors[c->out[0]].producer = -1;
    }
    int *nin = malloc(6 * sizeof(int)), w4 = conv->in[1], rc = nin ? 0 : -ENOMEM;
    if (!rc && mm && (rc = classifier_conv(g, ci, di, fi, &w4, &t)) < 0)
        free(nin);
    if (rc)
        return rc;
    conv = &g->nodes[ci];
    for (int k = 0; k < 4; k++)
        nin[k] = k == 1 ? w4 : k < conv->n_in ? conv->in[k] : -1;
    nin[4] = in4[0], nin[5] = in4[1];
    struct ir_node fused = *conv;
    g->nodes[ci] = g->nodes[last];
    g->nodes[last] = fused;
    conv = &g->nodes[last];
    free(conv->in);
    free(conv->op);
    conv->op = strdup("ConvInteger");
    conv->in = nin;
    conv->n_in = 6;
    conv->out[0] = t;
    if (act)
        conv->post[conv->n_post++] = post;
    g->tensors[t].producer = last;
    g->tensors[y].producer = -1;
    return conv->op ? 0 : -ENOMEM;
}

int ir_lower_qdq(struct ir_graph *g)
{
    for (int i = 0; i < g->n_nodes; i++) {
        int rc = g->nodes[i].dead || (strcmp(g->nodes[i].op, "ConvInteger") &&
                                      strcmp(g->nodes[i].op, "MatMulInteger"))
                     ? 0
                     : fuse_dyn_tail(g, i);
        if (rc < 0)
            return rc;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        int gemm = strcmp(g->nodes[i].op, "Gemm") == 0;
        if (g->nodes[i].dead || (strcmp(g->nodes[i].op, "Conv") && !gemm))
            continue;
        int rc = lower_qdq_conv(g, i, gemm);
        if (rc < 0)
            return rc;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        int rc = g->nodes[i].dead || strcmp(g->nodes[i].op, "DequantizeLinear")
                     ? 0
                     : fold_dq(g, &g->nodes[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}
