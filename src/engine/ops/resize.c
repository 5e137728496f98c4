/*
 * ops/resize.c — resampling: Resize, Upsample, GridSample, RoiAlign (kernels_move.c).
 *
 * Ops (shape rule, constant evaluation, lowering):
 *   Resize      infer_resize, lower_resize
 *   Upsample    infer_upsample, lower_resize
 *   GridSample  infer_grid_sample, lower_grid_sample
 *   RoiAlign    infer_roi_align, lower_roi_align
 */
#include "engine/ops/op.h"

/* ---- Resize ---- */

/* A constant float input as up to `max` floats; 0 values when absent or empty. */
static int const_floats(struct ir_tensor *t, float *v, int max)
{
    if (!t)
        return 0;
    int64_t k = engine_shape_numel(&t->shape);
    if (!t->data || t->dtype != ENGINE_F32 || t->shape.rank > 1 || k > max)
        return -1;
    memcpy(v, t->data, (size_t)k * sizeof(float));
    return (int)k;
}

/* Resize (opset 11 on) with constant scales or sizes; kept as "resize_params" (kp_encode_resize).
 */
static int resize_enum(const char *v, const char *const *names, int count)
{
    for (int i = 0; i < count; i++)
        if (strcmp(v, names[i]) == 0)
            return i;
    return -1;
}

static int resize_modes(struct ir_graph *g, struct ir_node *n, struct k_resize *z, char *err,
                        size_t errlen)
{
    static const char *modes[] = {"nearest", "linear", "cubic"};
    static const char *coords[] = {"half_pixel", "pytorch_half_pixel",   "align_corners",
                                   "asymmetric", "tf_half_pixel_for_nn", "tf_crop_and_resize"};
    static const char *nearest[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
    const char *m = ir_attr_str(n, "mode", "nearest");
    const char *c = ir_attr_str(n, "coordinate_transformation_mode", "half_pixel");
    const char *nm = ir_attr_str(n, "nearest_mode", "round_prefer_floor");
    int mode = resize_enum(m, modes, 3), coord = resize_enum(c, coords, 6),
        near = resize_enum(nm, nearest, 4);
    int64_t excl = ir_attr_int(n, "exclude_outside", 0);
    if (mode < 0 || coord < 0 || near < 0 || (excl != 0 && excl != 1) || g->opset < 11 ||
        ir_attr_int(n, "antialias", 0) != 0 || ir_attr_get(n, "axes") ||
        strcmp(ir_attr_str(n, "keep_aspect_ratio_policy", "stretch"), "stretch") != 0)
        return ir_node_err(
            g, n, err, errlen, -ENOTSUP,
            "unsupported mode=%s, coordinate_transformation_mode=%s, nearest_mode=%s, "
            "antialias, axes or keep_aspect_ratio_policy (or opset < 11)",
            m, c, nm);
    *z = (struct k_resize){.mode = (enum k_resize_mode)mode,
                           .coord = (enum k_resize_coord)coord,
                           .nearest = (enum k_resize_nearest)near,
                           .exclude_outside = (int)excl,
                           .cubic_a = ir_attr_float(n, "cubic_coeff_a", -0.75f),
                           .extrapolation = ir_attr_float(n, "extrapolation_value", 0)};
    return 0;
}

int infer_resize(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 4, err, errlen), k = 0;
    if (rc || (rc = want_dtype(g, n, 0, ENGINE_F32, err, errlen)))
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    int r = x->shape.rank;
    int64_t p[KP_MAX_PARAMS], sizes[ENGINE_MAX_RANK];
    float scales[ENGINE_MAX_RANK], roi[2 * ENGINE_MAX_RANK] = {0};
    struct k_resize z;
    if ((rc = resize_modes(g, n, &z, err, errlen)))
        return rc;
    int ns = const_floats(in_t(g, n, 2), scales, ENGINE_MAX_RANK);
    int nr = const_floats(in_t(g, n, 1), roi, 2 * ENGINE_MAX_RANK);
    if (in_t(g, n, 3) && (rc = const_ints(g, n, 3, sizes, ENGINE_MAX_RANK, &k, err, errlen)))
        return rc;
    if (ns < 0 || nr < 0 || (ns != 0) == (k != 0) || (ns && ns != r) || (k && k != r) ||
        (z.coord == K_RESIZE_TF_CROP_AND_RESIZE && nr != 2 * r))
        return ir_node_err(g, n, err, errlen, -ENOTSUP,
                           "needs constant scales or sizes (one of them, %d values) and for "
                           "tf_crop_and_resize a constant roi",
                           r);
    struct engine_shape o = x->shape;
    for (int d = 0; d < r; d++) {
        double sc = ns                 ? scales[d]
                    : x->shape.dims[d] ? (double)sizes[d] / (double)x->shape.dims[d]
                                       : 0;
        double out = ns ? floor((double)x->shape.dims[d] * sc) : (double)sizes[d];
        if (!(sc > 0) || !(out >= 0) || out > (double)(1 << 30) ||
            (x->shape.dims[d] == 0 && out > 0))
            return ir_node_err(g, n, err, errlen, -EINVAL, "scale or size out of range on axis %d",
                               d);
        o.dims[d] = (int64_t)out;
        z.scale[d] = (float)sc;
        z.roi_start[d] = roi[d];
        z.roi_end[d] = roi[r + d];
    }
    if (ir_attr_set_ints(n, "resize_params", p, kp_encode_resize(&z, r, p)))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, ENGINE_F32, &o, err, errlen);
}

/* The oneDNN resampling algorithm that samples exactly where this Resize does, or 0. oneDNN
 * keeps N and C and samples spatial output i at (i + 0.5) * in / out - 0.5 with factors out / in:
 * ONNX's half_pixel (pytorch_half_pixel when every output axis is longer than 1) when the scale
 * is exactly out / in; its nearest rounds that position half away from zero, which for an
 * integer upscale factor k never meets a tie (the fraction is (r + 0.5) / k - 0.5 + an integer)
 * and picks floor(i / k): both round_prefer modes then agree, and so do asymmetric coordinates
 * with nearest_mode floor. */
static dnnl_alg_kind_t resample_alg(const struct k_resize *z, const struct engine_shape *xs,
                                    const struct engine_shape *ys)
{
    int r = xs->rank, nearest = z->mode == K_RESIZE_NEAREST, upscale = 1, longer = 1;
    if (r < 3 || r > 5 || z->exclude_outside || z->mode == K_RESIZE_CUBIC)
        return (dnnl_alg_kind_t)0;
    for (int d = 0; d < r; d++) {
        int64_t in = xs->dims[d], out = ys->dims[d];
        if (in < 1 || (double)in * (double)z->scale[d] != (double)out || (d < 2 && out != in))
            return (dnnl_alg_kind_t)0;
        upscale &= out % in == 0;
        longer &= d < 2 || out > 1;
    }
    int half =
        z->coord == K_RESIZE_HALF_PIXEL || (z->coord == K_RESIZE_PYTORCH_HALF_PIXEL && longer);
    if (!nearest)
        return half ? dnnl_resampling_linear : (dnnl_alg_kind_t)0;
    int rounds =
        z->nearest == K_NEAREST_ROUND_PREFER_FLOOR || z->nearest == K_NEAREST_ROUND_PREFER_CEIL;
    if (upscale &&
        ((half && rounds) || (z->coord == K_RESIZE_ASYMMETRIC && z->nearest == K_NEAREST_FLOOR)))
        return dnnl_resampling_nearest;
    return (dnnl_alg_kind_t)0;
}

/* oneDNN's resampling in the input's own layout when it has a kernel better than its reference
 * one for it (no reorders around the resize); 1 when it does not apply. */
static int lower_resample(struct lower *l, const struct ir_node *n, const int64_t *params,
                          uint32_t np)
{
    const struct ir_tensor *x = ir_in(l, n, 0), *y = &l->g->tensors[n->out[0]];
    int32_t p32[KP_MAX_PARAMS];
    struct k_resize z;
    if (!x || x->dtype != ENGINE_F32 || np > KP_MAX_PARAMS || n->n_post)
        return 1;
    for (uint32_t i = 0; i < np; i++)
        p32[i] = (int32_t)params[i];
    if (kp_decode_resize(p32, np, x->shape.rank, &z))
        return 1;
    dnnl_alg_kind_t alg = resample_alg(&z, &x->shape, &y->shape);
    int64_t src = alg ? act_operand(l, n, n->in[0]) : -1;
    if (src < 0)
        return 1;
    struct plan_tensor d = l->b.tensors[src];
    dnnl_memory_desc_t smd, dmd;
    dnnl_resampling_desc_t rd;
    dnnl_primitive_desc_t pd = NULL;
    const char *impl = NULL;
    memcpy(d.dims, y->shape.dims, sizeof(d.dims));
    int ref = plan_tensor_md(&l->b.tensors[src], 0, 0, &smd) || plan_tensor_md(&d, 0, 0, &dmd) ||
              dnnl_resampling_forward_desc_init(&rd, dnnl_forward_inference, alg, NULL, &smd,
                                                &dmd) != dnnl_success ||
              dnnl_primitive_desc_create(&pd, &rd, NULL, l->eng, NULL) != dnnl_success ||
              dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success ||
              !impl || strncmp(impl, "ref", 3) == 0;
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (ref)
        return 1;
    struct plan_node pn = node_init(l, n, PLAN_OP_RESAMPLE);
    pn.alg = (uint32_t)alg;
    int64_t out = output_of(l, n, 0);
    if (out < 0 || set_layout(l, out, layout_of(l, src)))
        return -EINVAL;
    return emit_with_posts(l, n, &pn, out, &src, 1);
}

int lower_resize(struct lower *l, const struct ir_node *n)
{
    const struct ir_attr *a = ir_attr_get(n, "resize_params");
    int64_t ins[1];
    if (!a || a->type != IR_ATTR_INTS)
        return lerr(l, n, -EINVAL, "resize was not resolved by shape inference");
    int rc = lower_resample(l, n, a->ints, (uint32_t)a->n);
    if (rc != 1)
        return rc;
    rc = plain_inputs(l, n, 1, ins);
    return rc ? rc : emit_kernel(l, n, PLAN_K_RESIZE, ins, 1, a->ints, (uint32_t)a->n, 0);
}

/* ---- Upsample ---- */

/* Upsample (opsets 7-9): asymmetric coordinates, floor for nearest; scales as an attribute
 * (before 9) or a constant input. */
int infer_upsample(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 2, err, errlen);
    if (rc || (rc = want_dtype(g, n, 0, ENGINE_F32, err, errlen)))
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    const char *m = ir_attr_str(n, "mode", "nearest");
    const struct ir_attr *sa = ir_attr_get(n, "scales");
    float scales[ENGINE_MAX_RANK];
    int r = x->shape.rank, ns = -1;
    if (g->opset < 9 && sa && sa->type == IR_ATTR_FLOATS && sa->n == (size_t)r) {
        memcpy(scales, sa->floats, (size_t)r * sizeof(float));
        ns = r;
    } else if (g->opset >= 9) {
        ns = const_floats(in_t(g, n, 1), scales, ENGINE_MAX_RANK);
    }
    int mode = strcmp(m, "nearest") == 0  ? K_RESIZE_NEAREST
               : strcmp(m, "linear") == 0 ? K_RESIZE_LINEAR
                                          : -1;
    if (ns != r || mode < 0)
        return ir_node_err(g, n, err, errlen, -ENOTSUP,
                           "needs mode nearest or linear and %d constant scales", r);
    int64_t p[KP_MAX_PARAMS];
    struct k_resize z = {
        .mode = (enum k_resize_mode)mode, .coord = K_RESIZE_ASYMMETRIC, .nearest = K_NEAREST_FLOOR};
    struct engine_shape o = x->shape;
    for (int d = 0; d < r; d++) {
        double out = floor((double)x->shape.dims[d] * scales[d]);
        if (!(scales[d] > 0) || out > (double)(1 << 30) || (x->shape.dims[d] == 0 && out > 0))
            return ir_node_err(g, n, err, errlen, -EINVAL, "scale out of range on axis %d", d);
        o.dims[d] = (int64_t)out;
        z.scale[d] = scales[d]; /* roi unused (zero) */
    }
    if (ir_attr_set_ints(n, "resize_params", p, kp_encode_resize(&z, r, p)))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, ENGINE_F32, &o, err, errlen);
}

/* ---- GridSample ---- */

/* GridSample (4-D): mode and padding_mode kept as "grid_mode" and "grid_pad". */
int infer_grid_sample(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    static const char *modes[] = {"bilinear", "nearest", "bicubic"};
    static const char *pads[] = {"zeros", "border", "reflection"};
    int rc = arity(g, n, 2, 2, err, errlen);
    if (rc || (rc = want_dtype(g, n, 0, ENGINE_F32, err, errlen)) ||
        (rc = want_dtype(g, n, 1, ENGINE_F32, err, errlen)))
        return rc;
    struct ir_tensor *x = in_t(g, n, 0), *gr = in_t(g, n, 1);
    const char *m = ir_attr_str(n, "mode", "bilinear"),
               *pm = ir_attr_str(n, "padding_mode", "zeros");
    int64_t mi = 0, pi = 0, ac = ir_attr_int(n, "align_corners", 0);
    while (mi < 3 && strcmp(modes[mi], m))
        mi++;
    while (pi < 3 && strcmp(pads[pi], pm))
        pi++;
    if (mi == 3 || pi == 3 || (ac != 0 && ac != 1))
        return ir_node_err(g, n, err, errlen, -ENOTSUP,
                           "unsupported mode=%s, padding_mode=%s or align_corners=%lld", m, pm,
                           (long long)ac);
    if (x->shape.rank != 4 || gr->shape.rank != 4 || gr->shape.dims[0] != x->shape.dims[0] ||
        gr->shape.dims[3] != 2)
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "needs X [N,C,H,W] and grid [N,Ho,Wo,2]");
    if ((x->shape.dims[2] == 0 || x->shape.dims[3] == 0) && engine_shape_numel(&gr->shape))
        return ir_node_err(g, n, err, errlen, -EINVAL, "cannot sample an empty image");
    struct engine_shape o = {
        4, {x->shape.dims[0], x->shape.dims[1], gr->shape.dims[1], gr->shape.dims[2]}};
    if (ir_attr_set_int(n, "grid_mode", mi) || ir_attr_set_int(n, "grid_pad", pi))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, ENGINE_F32, &o, err, errlen);
}

int lower_grid_sample(struct lower *l, const struct ir_node *n)
{
    struct k_grid g = {(enum k_grid_mode)ir_attr_int(n, "grid_mode", 0),
                       (enum k_grid_pad)ir_attr_int(n, "grid_pad", 0),
                       (int)ir_attr_int(n, "align_corners", 0)};
    int64_t ins[2], p[KP_MAX_PARAMS];
    uint32_t np = kp_encode_grid(&g, p);
    int rc = plain_inputs(l, n, 2, ins);
    return rc ? rc : emit_kernel(l, n, PLAN_K_GRID_SAMPLE, ins, 2, p, np, 0);
}

/* ---- RoiAlign ---- */

/* RoiAlign (average mode); the batch indices are checked at run time. */
int infer_roi_align(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 3, 3, err, errlen);
    if (rc || (rc = want_dtype(g, n, 0, ENGINE_F32, err, errlen)) ||
        (rc = want_dtype(g, n, 1, ENGINE_F32, err, errlen)) ||
        (rc = want_dtype(g, n, 2, ENGINE_I64, err, errlen)))
        return rc;
    struct ir_tensor *x = in_t(g, n, 0), *r = in_t(g, n, 1), *b = in_t(g, n, 2);
    const char *mode = ir_attr_str(n, "mode", "avg");
    const char *ct = ir_attr_str(n, "coordinate_transformation_mode",
                                 g->opset >= 16 ? "half_pixel" : "output_half_pixel");
    int64_t oh = ir_attr_int(n, "output_height", 1), ow = ir_attr_int(n, "output_width", 1);
    int64_t sr = ir_attr_int(n, "sampling_ratio", 0);
    int half = strcmp(ct, "half_pixel") == 0;
    if (strcmp(mode, "avg") || (!half && strcmp(ct, "output_half_pixel")))
        return ir_node_err(g, n, err, errlen, -ENOTSUP,
                           "unsupported mode=%s or coordinate_transformation_mode=%s", mode, ct);
    if (x->shape.rank != 4 || r->shape.rank != 2 || r->shape.dims[1] != 4 || b->shape.rank != 1 ||
        b->shape.dims[0] != r->shape.dims[0] || oh < 1 || ow < 1 || oh > (1 << 20) ||
        ow > (1 << 20) || sr < 0 || sr > 1024 ||
        (r->shape.dims[0] && (x->shape.dims[2] == 0 || x->shape.dims[3] == 0)))
        return ir_node_err(g, n, err, errlen, -EINVAL,
                           "needs X [N,C,H,W], rois [R,4], batch_indices [R] and positive sizes");
    struct engine_shape o = {4, {r->shape.dims[0], x->shape.dims[1], oh, ow}};
    if (ir_attr_set_int(n, "roi_half_pixel", half))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, ENGINE_F32, &o, err, errlen);
}

int lower_roi_align(struct lower *l, const struct ir_node *n)
{
    struct k_roi r = {.sampling_ratio = (int)ir_attr_int(n, "sampling_ratio", 0),
                      .half_pixel = (int)ir_attr_int(n, "roi_half_pixel", 1)};
    int64_t ins[3], p[KP_MAX_PARAMS];
    uint32_t np = kp_encode_roi(&r, p);
    int rc = plain_inputs(l, n, 3, ins);
    return rc ? rc
              : emit_math(l, n, 0, PLAN_K_ROI_ALIGN, ins, 3, p, np, 0,
                          ir_attr_float(n, "spatial_scale", 1.0f), 0);
}
