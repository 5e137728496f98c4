/*
 * ops/conv.c — convolutions: Conv (oneDNN, or Winograd F(4x4,3x3) in winograd.c, chosen here),
 * ConvTranspose (kernels_move.c), ConvInteger and QLinearConv (kernels_math.c).
 *
 * Ops (shape rule, constant evaluation, lowering):
 *   Conv           infer_conv, lower_conv
 *   ConvTranspose  infer_conv_transpose, lower_conv_transpose
 *   ConvInteger    infer_qconv, lower_qconv
 *   QLinearConv    infer_qconv, lower_qconv
 */
#include "engine/ops/op.h"

/* ---- Conv ---- */

#define MAX_GROUP ((int64_t)1 << 24)

/* Conv, ConvTranspose (transpose 1): float32 x (with spatial dims), w, optional bias; the group
 * and the weights' shape checked against x, the window's kernel taken from the weights. */
static int conv_operands(struct ir_graph *g, struct ir_node *n, int transpose, struct ir_tensor **x,
                         struct ir_tensor **w, struct ir_tensor **b, struct window *win,
                         int64_t *group, char *err, size_t errlen)
{
    int rc = arity(g, n, 2, 3, err, errlen);
    if (rc || (rc = want_dtype(g, n, 0, ENGINE_F32, err, errlen)) ||
        (rc = want_dtype(g, n, 1, ENGINE_F32, err, errlen)) ||
        (rc = want_dtype(g, n, 2, ENGINE_F32, err, errlen)))
        return rc;
    *x = in_t(g, n, 0);
    *w = in_t(g, n, 1);
    *b = in_t(g, n, 2);
    *win = (struct window){.k = (*x)->shape.rank - 2};
    if ((rc = spatial_input(g, n, *x, err, errlen)))
        return rc;
    const struct engine_shape *xs = &(*x)->shape, *ws = &(*w)->shape;
    int64_t gr = *group = ir_attr_int(n, "group", 1);
    char s1[128], s2[128];
    if (ws->rank != xs->rank || gr < 1 || gr > MAX_GROUP ||
        (transpose ? xs->dims[1] % gr != 0 || ws->dims[0] != xs->dims[1]
                   : ws->dims[0] % gr != 0 || xs->dims[1] != ws->dims[1] * gr))
        return ir_node_err(g, n, err, errlen, -EINVAL,
                           "weights %s do not fit input %s with group=%lld", shape_s(ws, s1),
                           shape_s(xs, s2), (long long)gr);
    if ((rc = attr_ints(g, n, "kernel_shape", win->kernel, win->k, 0, err, errlen)))
        return rc;
    for (int i = 0; i < win->k; i++) {
        if (ir_attr_get(n, "kernel_shape") && win->kernel[i] != ws->dims[2 + i])
            return ir_node_err(g, n, err, errlen, -EINVAL, "kernel_shape disagrees with weights %s",
                               shape_s(ws, s1));
        win->kernel[i] = ws->dims[2 + i];
    }
    return 0;
}

int infer_conv(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *x, *w, *b;
    struct window win;
    int64_t group;
    int rc = conv_operands(g, n, 0, &x, &w, &b, &win, &group, err, errlen);
    if (rc)
        return rc;
    char s1[128];
    if (b && (b->shape.rank != 1 || b->shape.dims[0] != w->shape.dims[0]))
        return ir_node_err(g, n, err, errlen, -EINVAL, "bias %s must be [%lld]",
                           shape_s(&b->shape, s1), (long long)w->shape.dims[0]);
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

#define QCONV_IN 6 /* the most inputs of a convolution plan node (PLAN_OP_QCONV's) */

/* The activation part of a post-op, for layout trials (a sum needs its addend placed first). */
static void lower_posts_act_only(struct plan_node *pn, const struct ir_post_op *p)
{
    struct step s[2];
    int k = act_steps(p->act, p->alpha, p->beta, s);
    for (int j = 0; j < k; j++)
        push_post(pn, PLAN_POST_ELTWISE, &s[j]);
}

/* Asks oneDNN which src/dst layouts it prefers for this convolution (format `any`), using
 * throw-away tensors that are rolled back afterwards; 1 if it has a kernel better than its
 * reference one for them. */
static int conv_layouts(struct lower *l, const struct ir_node *n, const struct plan_node *pn,
                         const int64_t *ts, uint32_t n_in, uint32_t *src_layout,
                         uint32_t *dst_layout)
{
    struct plan_builder *b = &l->b;
    const struct ir_tensor *y = &l->g->tensors[n->out[0]];
    uint32_t nt = b->n_tensors, ni = b->n_index;
    struct plan_tensor s = b->tensors[ts[0]], d = s;
    s.layout = d.layout = PLAN_LAYOUT_ANY;
    d.rank = (uint32_t)y->shape.rank;
    d.dtype = (uint32_t)y->dtype;
    memcpy(d.dims, y->shape.dims, sizeof(d.dims));
    int64_t ins[QCONV_IN];
    memcpy(ins, ts, n_in * sizeof(ins[0]));
    ins[0] = plan_add_tensor(b, &s);
    int64_t out = plan_add_tensor(b, &d);
    struct plan_node trial = *pn; /* fused activations count; a sum needs its addend placed */
    for (int i = 0; i < n->n_post; i++)
        if (n->post[i].kind == IR_POST_ACT)
            lower_posts_act_only(&trial, &n->post[i]);
    *src_layout = *dst_layout = PLAN_LAYOUT_PLAIN;
    int fast = 0;
    if (ins[0] >= 0 && out >= 0 && set_inputs(l, &trial, ins, n_in) == 0) {
        trial.out = (uint32_t)out;
        struct plan_view v;
        dnnl_primitive_desc_t pd;
        char scratch[8];
        plan_builder_view(b, &v);
        if (plan_primitive_desc(&v, &trial, l->eng, &pd, scratch, sizeof(scratch)) == 0) {
            *src_layout = plan_layout_of(dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0));
            *dst_layout = plan_layout_of(dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0));
            const char *impl = NULL;
            fast = dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) ==
                       dnnl_success &&
                   impl && strncmp(impl, "ref", 3) != 0;
            dnnl_primitive_desc_destroy(pd);
        }
    }
    b->n_tensors = nt;
    b->n_index = ni;
    return fast;
}

/* Whether convolution n, lowered into pn with constant weights w, runs as Winograd F(4x4,3x3):
 * a kernel, stride, dilation, group, channel count, layout (nChw8c, nChw16c or nhwc) and
 * post-ops it runs, and
 * picked by pick_winograd unless asked for everywhere. */
static int use_winograd(const struct lower *l, const struct ir_node *n, const struct plan_node *pn,
                        const struct ir_tensor *w, uint32_t src_layout, uint32_t dst_layout)
{
    struct wino_post post;
    int64_t blk = wino_layout_block(src_layout);
    if (l->winograd == ENGINE_WINOGRAD_OFF || !w->data || w->shape.rank != 4 || pn->groups != 1 ||
        blk < 0 || dst_layout != src_layout || !wino_supported())
        return 0;
    for (int i = 0; i < 2; i++)
        if (pn->kernel[i] != 3 || pn->strides[i] != 1 || pn->dilations[i] != 0)
            return 0;
    if (w->shape.dims[0] % (blk ? blk : 8) || w->shape.dims[1] % (blk ? blk : 8) ||
        plan_wino_post(pn, &post))
        return 0;
    return l->winograd == ENGINE_WINOGRAD_ALL || l->wino_pick[n - l->g->nodes];
}

/* Turns conv node pn into a WINOGRAD node: the weights tensor wt (made for packing) becomes the
 * constant transformed weights [36, K16/16, C, 16] its kernels read. */
static int emit_winograd(struct lower *l, const struct ir_node *n, struct plan_node *pn, int64_t wt,
                         const struct ir_tensor *w, const struct ir_tensor *y)
{
    int64_t k = w->shape.dims[0], c = w->shape.dims[1];
    int64_t tiles = y->shape.dims[0] * ((y->shape.dims[2] + WINO_TILE - 1) / WINO_TILE) *
                    ((y->shape.dims[3] + WINO_TILE - 1) / WINO_TILE);
    uint64_t bytes = wino_u_bytes(c, k);
    int64_t off = plan_add_weights(&l->b, bytes);
    if (off < 0)
        return lerr(l, n, -ENOMEM, "out of memory for weights");
    wino_weights(w->data, k, c, (float *)(l->b.weights + off));
    struct plan_tensor *t = &l->b.tensors[wt];
    t->storage = PLAN_ST_CONST;
    t->rank = 4;
    t->dims[0] = WINO_POINTS;
    t->dims[1] = (k + WINO_COLS - 1) / WINO_COLS;
    t->dims[2] = c;
    t->dims[3] = WINO_COLS;
    t->offset = (uint64_t)off;
    t->nbytes = bytes;
    pn->op = PLAN_OP_WINOGRAD;
    pn->axis = wino_block_for(c, k, tiles);
    return emit(l, n, pn, -1, NULL);
}

int lower_conv(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *x = ir_in(l, n, 0), *w = ir_in(l, n, 1), *b = ir_in(l, n, 2);
    if (!x || !w || w->dtype != ENGINE_F32 || w->shape.rank != x->shape.rank ||
        (b && b->dtype != ENGINE_F32))
        return lerr(l, n, -EINVAL, "weights (and bias) must be float32 of the input's rank");
    const struct ir_tensor *y = &l->g->tensors[n->out[0]];
    struct plan_node pn = node_init(l, n, PLAN_OP_CONV); /* post-ops: added once placed */
    pn.groups = ir_attr_int(n, "group", 1);
    int64_t ts[3];
    uint32_t n_in = b ? 3 : 2, src_layout, dst_layout;
    int rc = node_window(l, n, x, y, w->shape.dims + 2, &pn);
    if (rc)
        return rc;
    ts[0] = act_operand(l, n, n->in[0]);
    /* constant weights are pre-packed into the image; computed ones are read plain */
    ts[1] =
        w->data ? packed_tensor(l, w, w->shape.rank, w->shape.dims) : plain_operand(l, n, n->in[1]);
    ts[2] = b ? plain_operand(l, n, n->in[2]) : 0;
    if (ts[0] < 0 || ts[1] < 0 || ts[2] < 0)
        return lerr(l, n, -EINVAL, "bad operands");
    (void)conv_layouts(l, n, &pn, ts, n_in, &src_layout, &dst_layout);
    ts[0] = in_layout(l, n, ts[0], src_layout);
    int64_t out = output_of(l, n, 0);
    if (ts[0] < 0 || out < 0 || set_layout(l, out, dst_layout))
        return lerr(l, n, -EINVAL, "bad operands");
    pn.out = (uint32_t)out;
    rc = set_inputs(l, &pn, ts, n_in);
    if (!rc)
        rc = lower_posts(l, n, &pn);
    if (!rc && use_winograd(l, n, &pn, w, src_layout, dst_layout))
        return emit_winograd(l, n, &pn, ts[1], w, y);
    return rc ? rc : emit(l, n, &pn, w->data ? ts[1] : -1, w->data);
}

/* ---- ConvTranspose ---- */

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

int infer_conv_transpose(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *x, *w, *b;
    struct window win;
    int64_t group, outpad[MAX_SPATIAL];
    int rc = conv_operands(g, n, 1, &x, &w, &b, &win, &group, err, errlen);
    if (rc)
        return rc;
    char s1[128];
    struct engine_shape o = {.rank = x->shape.rank};
    o.dims[0] = x->shape.dims[0];
    o.dims[1] = w->shape.dims[1] * group;
    if (b && (b->shape.rank != 1 || b->shape.dims[0] != o.dims[1]))
        return ir_node_err(g, n, err, errlen, -EINVAL, "bias %s must be [%lld]",
                           shape_s(&b->shape, s1), (long long)o.dims[1]);
    if ((rc = attr_ints(g, n, "output_padding", outpad, win.k, 0, err, errlen)) ||
        (rc = read_window(g, n, &win, err, errlen)))
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

/* ConvTranspose as a plain-C kernel; weights may be constant or computed. */
int lower_conv_transpose(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *x = ir_in(l, n, 0);
    int has_bias = n->n_in > 2 && n->in[2] >= 0, sp = x ? x->shape.rank - 2 : 0;
    int64_t ins[3], p[KP_MAX_PARAMS], pads[2 * PLAN_MAX_SPATIAL];
    struct k_deconv d = {.sp = sp, .group = ir_attr_int(n, "group", 1)};
    if (!x || sp < 1 || sp > PLAN_MAX_SPATIAL || get_ints(n, "strides", d.stride, sp, 1) ||
        get_ints(n, "dilations", d.dil, sp, 1) || get_ints(n, "pads", pads, 2 * sp, 0))
        return lerr(l, n, -EINVAL, "window was not resolved by shape inference");
    memcpy(d.pad, pads, (size_t)sp * sizeof(int64_t));
    uint32_t np = kp_encode_deconv(&d, p);
    int rc = plain_inputs(l, n, 2 + has_bias, ins);
    return rc ? rc
              : emit_kernel(l, n, PLAN_K_CONV_TRANSPOSE, ins, (uint32_t)(2 + has_bias), p, np, 0);
}

/* ---- ConvInteger, QLinearConv ---- */

/* ConvInteger (x, w, [x_zero_point], [w_zero_point]) and QLinearConv without a bias: the window
 * as Conv's, normalised the same way. */
int infer_qconv(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int ql = strcmp(n->op, "QLinearConv") == 0;
    int rc = arity(g, n, ql ? 8 : 2, ql ? 9 : 4, err, errlen);
    if (rc)
        return rc;
    struct ir_tensor *bias = ql ? in_t(g, n, 8) : NULL;
    if (bias && (bias->dtype != ENGINE_I32 || bias->shape.rank != 1 ||
                 bias->shape.dims[0] != in_t(g, n, 3)->shape.dims[0]))
        return ir_node_err(g, n, err, errlen, -EINVAL, "B must be int32, one per output channel");
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

/* ---- ConvInteger, QLinearConv on oneDNN's int8 convolution ---- */

/* Value i of a constant uint8/int8/int32 tensor of one or more values (one: every i). */
static int64_t const_int(const struct ir_tensor *t, int64_t i)
{
    size_t k = engine_shape_numel(&t->shape) == 1 ? 0 : (size_t)i;
    return t->dtype == ENGINE_U8   ? ((const uint8_t *)t->data)[k]
           : t->dtype == ENGINE_I8 ? ((const int8_t *)t->data)[k]
                                   : ((const int32_t *)t->data)[k];
}

/* A constant plan tensor of the given dtype holding count values (rank 1, or 0 for one). */
static int64_t const_vector(struct lower *l, const char *name, int dtype, int64_t count,
                            const void *vals)
{
    struct plan_tensor t = {.dtype = (uint32_t)dtype,
                            .rank = count == 1 ? 0 : 1,
                            .storage = PLAN_ST_CONST,
                            .dims = {count},
                            .nbytes = (uint64_t)count * engine_dtype_size(dtype)};
    int64_t nm = plan_add_string(&l->b, name), off = plan_add_weights(&l->b, t.nbytes);
    if (nm < 0 || off < 0)
        return -ENOMEM;
    memcpy(l->b.weights + off, vals, t.nbytes);
    t.name = (uint32_t)nm;
    t.offset = (uint64_t)off;
    return plan_add_tensor(&l->b, &t);
}

/* Whether oneDNN's int8 kernels sum u8 x s8 products exactly on this CPU: with VNNI each
 * product goes into int32; without (AVX2, AVX-512 core), vpmaddubsw adds two products in int16,
 * saturating, unless every weight is within +-64 (2 * 255 * 64 <= 32767); only uint8 x there. */
int dnnl_int8_exact(const int8_t *w, int64_t count, int xdt)
{
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    if (isa == dnnl_cpu_isa_avx2_vnni || isa == dnnl_cpu_isa_avx512_core_vnni ||
        isa == dnnl_cpu_isa_avx512_core_bf16 || isa == dnnl_cpu_isa_avx512_core_amx)
        return 1;
    if (xdt != ENGINE_U8) /* int8 x with a zero point came out wrong at AVX2 (oneDNN 2.6) */
        return 0;
    for (int64_t i = 0; i < count; i++)
        if (w[i] < -64 || w[i] > 64)
            return 0;
    return 1;
}

/* The weights as int8 with zero point 0, when that is exact: int8 weights with zero point 0, or
 * uint8 ones with zero point 128 (w - 128). NULL otherwise (our kernel runs them). */
static int8_t *qconv_weights(const struct ir_tensor *w, const struct ir_tensor *wzp, int xdt)
{
    int64_t count = engine_shape_numel(&w->shape), m = w->shape.dims[0];
    int64_t want = w->dtype == ENGINE_U8 ? 128 : 0;
    if (!w->data || (wzp && !wzp->data) || (!wzp && want))
        return NULL;
    for (int64_t i = 0; wzp && i < m; i++)
        if (const_int(wzp, i) != want)
            return NULL;
    int8_t *q = malloc((size_t)count + 1);
    for (int64_t i = 0; q && i < count; i++)
        q[i] = (int8_t)(w->dtype == ENGINE_U8 ? ((const uint8_t *)w->data)[i] - 128
                                              : ((const int8_t *)w->data)[i]);
    if (q && !dnnl_int8_exact(q, count, xdt)) {
        free(q);
        return NULL;
    }
    return q;
}

/* The int8 convolution's constant inputs: bias (QLinearConv's B or zeros), output scales
 * x_scale * w_scale / y_scale and the y zero point; ts[2], ts[4], ts[5]. */
static int qconv_consts(struct lower *l, const struct ir_node *n, int ql, int64_t m, int64_t *ts)
{
    const struct ir_tensor *b = ql ? ir_in(l, n, 8) : NULL;
    int32_t *bias = calloc((size_t)m, sizeof(*bias));
    float *sc = calloc((size_t)m, sizeof(*sc));
    int rc = bias && sc ? 0 : -ENOMEM;
    for (int64_t i = 0; !rc && b && i < m; i++)
        bias[i] = ((const int32_t *)b->data)[i];
    if (!rc && (ts[2] = const_vector(l, "qconv.bias", ENGINE_I32, m, bias)) < 0)
        rc = (int)ts[2];
    if (!rc && ql) {
        const struct ir_tensor *xs = ir_in(l, n, 1), *ws = ir_in(l, n, 4), *ys = ir_in(l, n, 6);
        int64_t nw = engine_shape_numel(&ws->shape);
        const float *wv = ws->data;
        for (int64_t i = 0; i < m; i++)
            sc[i] = *(const float *)xs->data * wv[nw == 1 ? 0 : i] / *(const float *)ys->data;
        int32_t yz = ir_in(l, n, 7) ? (int32_t)const_int(ir_in(l, n, 7), 0) : 0;
        if ((ts[4] = const_vector(l, "qconv.scales", ENGINE_F32, m, sc)) < 0 ||
            (ts[5] = const_vector(l, "qconv.y_zero_point", ENGINE_I32, 1, &yz)) < 0)
            rc = -ENOMEM;
    }
    free(bias);
    free(sc);
    return rc;
}

/* The x zero point as int32 (ts[3]): a constant, or a fresh arena tensor that qconv_cast_xzp
 * fills from the one computed (DynamicQuantizeLinear's). */
static int qconv_xzp(struct lower *l, const struct ir_node *n, int64_t *ts)
{
    const struct ir_tensor *z = ir_in(l, n, 2);
    int32_t v = z && z->data ? (int32_t)const_int(z, 0) : 0;
    struct plan_tensor t = {.dtype = ENGINE_I32, .storage = PLAN_ST_ARENA, .nbytes = 4};
    if (!z || z->data)
        ts[3] = const_vector(l, "qconv.x_zero_point", ENGINE_I32, 1, &v);
    else if ((ts[3] = plan_add_string(&l->b, z->name)) >= 0) {
        t.name = (uint32_t)ts[3];
        ts[3] = plan_add_tensor(&l->b, &t);
    }
    return ts[3] < 0 ? (int)ts[3] : 0;
}

/* A computed x zero point cast into int32 arena tensor zp by a kernel node. */
static int qconv_cast_xzp(struct lower *l, const struct ir_node *n, int64_t zp)
{
    const struct ir_tensor *z = ir_in(l, n, 2);
    if (!z || z->data)
        return 0;
    int64_t from = plain_operand(l, n, n->in[2]);
    struct ir_node plain = *n; /* the convolution's post-ops are not the cast's */
    plain.n_post = 0;
    return from < 0 ? (int)from
                    : emit_math_to(l, &plain, zp, PLAN_K_CAST, &from, 1, NULL, 0, 0, 0, 0);
}

/* oneDNN's int8 convolution takes its int32 sums through float32 before writing an int32 dst,
 * so ConvInteger's exact int32 output comes out of it only while every sum is within 2^24:
 * each output channel's sum of |w| times 255 (the most |x - x_zero_point|) is, or the output's
 * one reader is a Cast to float32, which rounds it that way anyway. */
static int qconv_int32_exact(const struct lower *l, const struct ir_node *n, const int8_t *w,
                             int64_t m, int64_t per)
{
    int y = n->out[0], reader = -1;
    const struct ir_graph *g = l->g;
    if (!(g->tensors[y].flags & IR_T_OUTPUT) && ir_consumers(g, y) == 1)
        for (int i = 0; i < g->n_nodes && reader < 0; i++)
            for (int k = 0; !g->nodes[i].dead && k < g->nodes[i].n_in; k++)
                if (g->nodes[i].in[k] == y)
                    reader = i;
    if (reader >= 0 && strcmp(g->nodes[reader].op, "Cast") == 0 &&
        g->tensors[g->nodes[reader].out[0]].dtype == ENGINE_F32)
        return 1;
    for (int64_t o = 0; o < m; o++) {
        int64_t sum = 0;
        for (int64_t i = 0; i < per; i++)
            sum += w[o * per + i] < 0 ? -w[o * per + i] : w[o * per + i];
        if (sum * 255 > (1 << 24))
            return 0;
    }
    return 1;
}

/* The fused dequantising tail of a dynamic ConvInteger (qdq.c: inputs 4 and 5 the scale and
 * the bias or -1): binary posts multiplying by input 4 and adding input 5, as ts[4], ts[5]. */
static int qconv_tail(struct lower *l, const struct ir_node *n, struct plan_node *pn, int64_t *ts,
                      uint32_t *n_in)
{
    static const uint32_t alg[2] = {dnnl_binary_mul, dnnl_binary_add};
    for (int k = 0; k < 2 && n->in[4 + k] >= 0; k++) {
        if ((ts[4 + k] = plain_operand(l, n, n->in[4 + k])) < 0)
            return (int)ts[4 + k];
        pn->post[pn->n_post++] = (struct plan_post){PLAN_POST_BINARY, alg[k], 0, 0};
        (*n_in)++;
    }
    return 0;
}

/* Whether n runs as PLAN_OP_QCONV: constant weights oneDNN takes exactly (qconv_weights), an x
 * zero point of one value, QLinearConv's scales and y zero point constant, B constant. */
static int qconv_dnnl_fits(const struct lower *l, const struct ir_node *n, int ql)
{
    const struct ir_tensor *x = ir_in(l, n, 0), *z = ir_in(l, n, 2);
    if (!x || x->shape.rank < 3 || l->tmap[n->in[0]] < 0 ||
        (z && engine_shape_numel(&z->shape) != 1))
        return 0;
    for (int i = 4; ql && i < 9; i++)
        if (i != 5 && ir_in(l, n, i) && !ir_in(l, n, i)->data)
            return 0;
    return !ql || (ir_in(l, n, 1)->data && ir_in(l, n, 6) && ir_in(l, n, 6)->data);
}

/* ConvInteger / QLinearConv as a oneDNN int8 convolution; 1 if it does not fit (nothing
 * emitted), 0 once emitted, or an error. */
static int lower_qconv_dnnl(struct lower *l, const struct ir_node *n)
{
    int ql = strcmp(n->op, "QLinearConv") == 0;
    const struct ir_tensor *x = ir_in(l, n, 0), *w = ir_in(l, n, ql ? 3 : 1);
    const struct ir_tensor *y = &l->g->tensors[n->out[0]];
    if (!qconv_dnnl_fits(l, n, ql))
        return 1;
    int8_t *wq = qconv_weights(w, ir_in(l, n, ql ? 5 : 3), x->dtype);
    int64_t m = w->shape.dims[0];
    int tail = !ql && n->n_in == 6; /* the dequantising tail fused (qdq.c): a float32 dst */
    if (wq && !ql && !tail && !qconv_int32_exact(l, n, wq, m, engine_shape_numel(&w->shape) / m)) {
        free(wq);
        wq = NULL;
    }
    if (!wq)
        return tail ? lerr(l, n, -EINVAL, "fused int8 convolution that oneDNN cannot run") : 1;
    struct plan_node pn = node_init(l, n, PLAN_OP_QCONV);
    pn.groups = ir_attr_int(n, "group", 1);
    int64_t ts[QCONV_IN] = {l->tmap[n->in[0]]};
    uint32_t n_in = ql ? 6 : 4, src_layout, dst_layout;
    uint32_t nt = l->b.n_tensors, ni = l->b.n_index;
    uint64_t nw = l->b.weights_size;
    int rc = node_window(l, n, x, y, w->shape.dims + 2, &pn);
    if (!rc && tail)
        rc = qconv_tail(l, n, &pn, ts, &n_in);
    if (!rc && (ts[1] = packed_tensor(l, w, w->shape.rank, w->shape.dims)) < 0)
        rc = (int)ts[1];
    if (!rc) {
        l->b.tensors[ts[1]].dtype = ENGINE_I8;
        rc = qconv_consts(l, n, ql, w->shape.dims[0], ts);
    }
    if (!rc)
        rc = qconv_xzp(l, n, ts);
    int fast = !rc && conv_layouts(l, n, &pn, ts, n_in, &src_layout, &dst_layout);
    if (!rc && !fast && tail)
        rc = lerr(l, n, -EINVAL, "oneDNN has no int8 convolution for the fused dequantisation");
    else if (!rc && !fast) {
        l->b.n_tensors = nt; /* no fast int8 kernel: forget its operands, run ours */
        l->b.n_index = ni;
        memset(l->b.weights + nw, 0, (size_t)(l->b.weights_size - nw));
        l->b.weights_size = nw;
        free(wq);
        return 1;
    }
    int64_t out = -1;
    if (!rc)
        rc = qconv_cast_xzp(l, n, ts[3]);
    if (!rc && ((ts[0] = in_layout(l, n, ts[0], src_layout)) < 0 ||
                (out = output_of(l, n, 0)) < 0 || set_layout(l, out, dst_layout)))
        rc = lerr(l, n, -EINVAL, "bad operands");
    pn.out = (uint32_t)out;
    if (!rc)
        rc = set_inputs(l, &pn, ts, n_in);
    if (!rc)
        rc = lower_posts(l, n, &pn);
    if (!rc)
        rc = emit(l, n, &pn, ts[1], wq);
    free(wq);
    return rc;
}

/* ConvInteger / QLinearConv: oneDNN's int8 convolution where it is exact, else our kernel (the
 * window shape inference normalised, inputs as present). */
int lower_qconv(struct lower *l, const struct ir_node *n)
{
    int drc = lower_qconv_dnnl(l, n);
    if (drc <= 0)
        return drc;
    const struct ir_tensor *x = ir_in(l, n, 0);
    int ql = strcmp(n->op, "QLinearConv") == 0;
    int sp = x ? x->shape.rank - 2 : 0;
    if (!ql && n->n_in > 4)
        return lerr(l, n, -EINVAL, "ConvInteger takes at most 4 inputs");
    int64_t ins[9], params[5 + 3 * PLAN_MAX_SPATIAL] = {ql, 0, 0, ir_attr_int(n, "group", 1), sp};
    uint32_t cnt = 0;
    if (sp < 1 || sp > PLAN_MAX_SPATIAL || get_ints(n, "strides", params + 5, sp, 1) ||
        get_ints(n, "dilations", params + 5 + sp, sp, 1))
        return lerr(l, n, -EINVAL, "the window was not resolved by shape inference");
    int64_t pads[2 * PLAN_MAX_SPATIAL];
    if (get_ints(n, "pads", pads, 2 * sp, 0))
        return lerr(l, n, -EINVAL, "pads were not resolved by shape inference");
    memcpy(params + 5 + 2 * sp, pads, (size_t)sp * sizeof(int64_t));
    for (int i = 0; i < n->n_in && i < 9; i++) {
        if (n->in[i] < 0)
            continue;
        if ((ins[cnt++] = plain_operand(l, n, n->in[i])) < 0)
            return (int)ins[cnt - 1];
        if (!ql && i >= 2)
            params[i - 1] = 1;
    }
    /* a fused ReLU (QDQ lowering, qdq.c) is the kernel's qlinear 2 */
    struct ir_node plain = *n;
    if (ql && n->n_post == 1 && n->post[0].kind == IR_POST_ACT && n->post[0].act == IR_ACT_RELU &&
        n->post[0].alpha == 0) {
        params[0] = 2;
        plain.n_post = 0;
    }
    return emit_math(l, &plain, 0, PLAN_K_QCONV, ins, cnt, params, 5 + 3 * (uint32_t)sp, 0, 0, 0);
}

/* ---- which convolutions run as Winograd (ENGINE_WINOGRAD_AUTO) ---- */

/* A convolution auto may make Winograd: 3x3, stride 1, dense, ungrouped, constant float32 weights
 * of 8-multiple channels, and an output of at least 28x28, or 14x14 with at most 256x256 channels
 * (VGG-16's 512-channel 14x14 layers would add 85 MB for no measurable gain; 7x7 maps are slower:
 * a 4x4 tile wastes a quarter of an 8x8 cover). Its output area, or 0. */
static int64_t wino_candidate(const struct ir_graph *g, const struct ir_node *n)
{
    int64_t st[2], dil[2];
    if (strcmp(n->op, "Conv") || n->n_in < 2 || n->in[1] < 0 || n->n_out < 1 ||
        ir_attr_int(n, "group", 1) != 1 || get_ints(n, "strides", st, 2, 1) ||
        get_ints(n, "dilations", dil, 2, 1) || st[0] != 1 || st[1] != 1 || dil[0] != 1 ||
        dil[1] != 1)
        return 0;
    const struct ir_tensor *w = &g->tensors[n->in[1]], *y = &g->tensors[n->out[0]];
    if (!w->data || w->dtype != ENGINE_F32 || w->shape.rank != 4 || w->shape.dims[2] != 3 ||
        w->shape.dims[3] != 3 || w->shape.dims[0] % 8 || w->shape.dims[1] % 8 || y->shape.rank != 4)
        return 0;
    int64_t hw = y->shape.dims[2] * y->shape.dims[3], ck = w->shape.dims[0] * w->shape.dims[1];
    return hw >= 28 * 28 || (hw >= 14 * 14 && ck <= 256 * 256) ? hw : 0;
}

/* Which candidates auto compiles as Winograd: the largest outputs first (the time saved per byte
 * of transformed weights grows with the output area), while the transformed weights add at most
 * half the model's constant bytes. Measured on an AVX2 core (docs/bench/engine.md): such layers
 * run 1.5-3x faster for 4x their weight bytes; ResNet-50 -17 % time for +41 % image, VGG-16
 * -40 % for +17 %, and GoogLeNet, whose weights are mostly such layers, keeps to +50 %. */
int pick_winograd(struct lower *l)
{
    const struct ir_graph *g = l->g;
    l->wino_pick = calloc((size_t)g->n_nodes + 1, 1);
    int *cand = malloc(((size_t)g->n_nodes + 1) * sizeof(*cand));
    int64_t *area = malloc(((size_t)g->n_nodes + 1) * sizeof(*area));
    uint8_t *seen = calloc((size_t)g->n_tensors + 1, 1);
    int rc = l->wino_pick && cand && area && seen ? 0 : lerr(l, NULL, -ENOMEM, "out of memory");
    uint64_t total = 0, extra = 0; /* bytes of the constants live nodes read, once each */
    int nc = 0;
    for (int i = 0; !rc && i < g->n_nodes; i++)
        for (int j = 0; !g->nodes[i].dead && j < g->nodes[i].n_in; j++) {
            int t = g->nodes[i].in[j];
            if (t >= 0 && g->tensors[t].data && !seen[t]) {
                seen[t] = 1;
                total += g->tensors[t].nbytes;
            }
        }
    free(seen);
    for (int i = 0; !rc && l->winograd == ENGINE_WINOGRAD_AUTO && i < g->n_nodes; i++) {
        int64_t a = g->nodes[i].dead ? 0 : wino_candidate(g, &g->nodes[i]);
        int j = nc++;
        for (; j > 0 && area[j - 1] < a; j--) { /* insertion: by area, descending, stable */
            cand[j] = cand[j - 1];
            area[j] = area[j - 1];
        }
        cand[j] = i;
        area[j] = a;
        nc -= a == 0; /* not a candidate: it sorted last, drop it */
    }
    for (int j = 0; !rc && j < nc; j++) {
        const struct ir_tensor *w = &g->tensors[g->nodes[cand[j]].in[1]];
        uint64_t add = wino_u_bytes(w->shape.dims[1], w->shape.dims[0]) - w->nbytes;
        if (extra + add <= total / 2) {
            extra += add;
            l->wino_pick[cand[j]] = 1;
        }
    }
    free(cand);
    free(area);
    return rc;
}
