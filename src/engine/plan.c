/*
 * plan.c — a plan node → its oneDNN primitive descriptor.
 *
 * The same code runs at compile time (to let oneDNN choose weight layouts, which the compiler then
 * packs into the image) and at model open (to re-resolve each primitive in this process and
 * compare the result with what the image recorded). Everything read from the plan is checked
 * here before oneDNN sees it: operand counts, storage classes, dtypes, ranks and the arithmetic
 * that ties output shapes to input shapes, so a hostile image cannot make a primitive read or
 * write past a tensor's bytes.
 */
#include "common/common.h"
#include "engine/kernels.h"
#include "engine/plan.h"
#include "engine/plan_node.h"
#include "engine/winograd.h"

#include <errno.h>
#include <string.h>

/* ---- operand checks ---- */

/* Every operand f32, count within [lo, hi], role storage as given ("A" arena, "C" const,
 * "P" packed, "*" arena or const, "?" any) by position; the last letter repeats. */
static int check_operands(const struct node_ctx *c, uint32_t lo, uint32_t hi, const char *roles)
{
    if (c->n->n_in < lo || c->n->n_in > hi)
        return node_err(c, -EINVAL, "wrong number of inputs in plan");
    size_t nr = strlen(roles);
    for (uint32_t i = 0; i < c->n->n_in; i++) {
        const struct plan_tensor *t = operand(c, i);
        char r = roles[i < nr ? i : nr - 1];
        int ok = (r == 'A' && t->storage == PLAN_ST_ARENA) ||
                 (r == 'C' && t->storage == PLAN_ST_CONST) ||
                 (r == 'P' && t->storage == PLAN_ST_PACKED) ||
                 (r == '*' && t->storage != PLAN_ST_PACKED) || r == '?';
        if (!ok || t->dtype != ENGINE_F32)
            return node_err(c, -EINVAL, "operand storage or dtype does not fit the op");
    }
    if (dst_of(c)->dtype != ENGINE_F32)
        return node_err(c, -EINVAL, "output is not float32");
    return 0;
}

static int same_dims(const struct plan_tensor *a, const struct plan_tensor *b)
{
    return a->rank == b->rank && memcmp(a->dims, b->dims, a->rank * sizeof(a->dims[0])) == 0;
}

/* Same dims and layout: one memory desc describes both. */
static int same_md(const struct plan_tensor *a, const struct plan_tensor *b)
{
    return same_dims(a, b) && a->layout == b->layout;
}

/* out == (in + pl + pr - ((k-1)*(d+1)+1)) / s + 1 for each spatial dim; dilation d is oneDNN's. */
static int check_window(const struct node_ctx *c, const struct plan_tensor *src,
                        const struct plan_tensor *dst)
{
    const struct plan_node *n = c->n;
    int sp = (int)src->rank - 2;
    if (sp < 1 || sp > PLAN_MAX_SPATIAL || dst->rank != src->rank || dst->dims[0] != src->dims[0])
        return node_err(c, -EINVAL, "input/output ranks do not fit a window op");
    for (int i = 0; i < sp; i++) {
        int64_t k = n->kernel[i], s = n->strides[i], d = n->dilations[i];
        int64_t pl = n->pad_l[i], pr = n->pad_r[i], in = src->dims[2 + i];
        if (k < 1 || k > 1 << 20 || s < 1 || s > 1 << 20 || d < 0 || d > 1 << 20 || pl < 0 ||
            pr < 0 || pl > 1 << 20 || pr > 1 << 20)
            return node_err(c, -EINVAL, "kernel, stride, dilation or padding out of range");
        int64_t ext = (k - 1) * (d + 1) + 1;
        if (in + pl + pr < ext || (in + pl + pr - ext) / s + 1 != dst->dims[2 + i])
            return node_err(c, -EINVAL, "output spatial size does not follow from the window");
    }
    return 0;
}

/* ---- attributes ---- */

/* The src1 of binary post-op i (PLAN_POST_BINARY): only PLAN_OP_QCONV with a float32 dst takes
 * them, as its leading posts, the i-th reading input 4 + i: one float32 (or one per output
 * channel, along the dst's axis 1), plain, in the arena or the image. */
static int binary_src1_md(const struct node_ctx *c, uint32_t i, dnnl_memory_desc_t *md)
{
    const struct plan_node *n = c->n;
    const struct plan_tensor *dst = dst_of(c);
    for (uint32_t k = 0; k < i; k++)
        if (n->post[k].kind != PLAN_POST_BINARY)
            return -EINVAL;
    if (n->op != PLAN_OP_QCONV || dst->dtype != ENGINE_F32 || 4 + i >= n->n_in ||
        dst->rank < 3 || dst->rank > DNNL_MAX_NDIMS || dst->dims[1] < 1 ||
        (n->post[i].alg != dnnl_binary_mul && n->post[i].alg != dnnl_binary_add))
        return -EINVAL;
    const struct plan_tensor *t = operand(c, 4 + i);
    int64_t k = 1;
    for (uint32_t d = 0; d < t->rank && k > 0; d++)
        k = t->dims[d] > 0 && t->dims[d] <= dst->dims[1] / k ? k * t->dims[d] : 0;
    if (t->dtype != ENGINE_F32 || t->layout != PLAN_LAYOUT_PLAIN || t->storage == PLAN_ST_PACKED ||
        (k != 1 && k != dst->dims[1]) || t->nbytes != (uint64_t)k * sizeof(float))
        return -EINVAL;
    dnnl_dims_t dims, strides;
    for (uint32_t d = 0; d < dst->rank; d++)
        dims[d] = d == 1 ? (dnnl_dim_t)k : 1;
    for (int d = (int)dst->rank - 1; d >= 0; d--)
        strides[d] = d == (int)dst->rank - 1 ? 1 : strides[d + 1] * dims[d + 1];
    return dnnl_memory_desc_init_by_strides(md, (int)dst->rank, dims, dnnl_f32, strides) ==
                   dnnl_success
               ? 0
               : -EINVAL;
}

static int make_attr(const struct node_ctx *c, dnnl_primitive_attr_t *attr, uint32_t first_post)
{
    const struct plan_node *n = c->n;
    dnnl_post_ops_t po = NULL;
    int sums = 0;
    *attr = NULL;
    if (dnnl_primitive_attr_create(attr) != dnnl_success)
        return node_err(c, -ENOMEM, "cannot create primitive attributes");
    if (dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user) != dnnl_success) {
        dnnl_primitive_attr_destroy(*attr);
        return node_err(c, -ENOMEM, "cannot set a user scratchpad");
    }
    if (n->n_post <= first_post)
        return 0;
    if (dnnl_post_ops_create(&po) != dnnl_success) {
        dnnl_primitive_attr_destroy(*attr);
        return node_err(c, -ENOMEM, "cannot create post-ops");
    }
    int rc = 0;
    for (uint32_t i = first_post; i < n->n_post && !rc; i++) {
        const struct plan_post *p = &n->post[i];
        dnnl_status_t st = dnnl_invalid_arguments;
        dnnl_memory_desc_t md;
        if (p->kind == PLAN_POST_ELTWISE)
            st = dnnl_post_ops_append_eltwise(po, 1.0f, (dnnl_alg_kind_t)p->alg, p->alpha, p->beta);
        else if (p->kind == PLAN_POST_SUM && n->sum_tensor != PLAN_NONE && !sums++)
            st = dnnl_post_ops_append_sum(po, 1.0f);
        else if (p->kind == PLAN_POST_BINARY && first_post == 0 && binary_src1_md(c, i, &md) == 0)
            st = dnnl_post_ops_append_binary(po, (dnnl_alg_kind_t)p->alg, &md);
        if (st != dnnl_success)
            rc = node_err(c, -EINVAL, "post-op not supported");
    }
    if (!rc && sums && !same_md(&c->v->tensors[n->sum_tensor], dst_of(c)))
        rc = node_err(c, -EINVAL, "sum post-op addend shape differs from the output");
    if (!rc && !sums && n->sum_tensor != PLAN_NONE)
        rc = node_err(c, -EINVAL, "sum addend without a sum post-op");
    if (!rc && dnnl_primitive_attr_set_post_ops(*attr, po) != dnnl_success)
        rc = node_err(c, -EINVAL, "post-ops rejected");
    dnnl_post_ops_destroy(po);
    if (rc) {
        dnnl_primitive_attr_destroy(*attr);
        *attr = NULL;
    }
    return rc;
}

static int finish_pd(const struct node_ctx *c, const void *desc, dnnl_primitive_attr_t attr,
                     dnnl_engine_t eng, dnnl_primitive_desc_t *pd)
{
    dnnl_status_t st = dnnl_primitive_desc_create(pd, desc, attr, eng, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success)
        return node_err(c, -EINVAL, "oneDNN has no implementation for these shapes/attributes");
    return 0;
}

/* ---- per-op descriptors ---- */

/* A window op's geometry as the dnnl_dims_t arrays oneDNN reads. */
struct geometry {
    dnnl_dims_t kernel, strides, dilations, pad_l, pad_r;
};

static void geometry_of(const struct plan_node *n, struct geometry *g)
{
    memset(g, 0, sizeof(*g));
    for (int i = 0; i < PLAN_MAX_SPATIAL; i++) {
        g->kernel[i] = n->kernel[i];
        g->strides[i] = n->strides[i];
        g->dilations[i] = n->dilations[i];
        g->pad_l[i] = n->pad_l[i];
        g->pad_r[i] = n->pad_r[i];
    }
}

static int conv_weights_md(const struct node_ctx *c, const struct plan_tensor *src,
                           const struct plan_tensor *w, const struct plan_tensor *dst,
                           dnnl_data_type_t dt, dnnl_memory_desc_t *md)
{
    int64_t g = c->n->groups;
    if (w->rank != src->rank || g < 1 || g > (1 << 24) || w->dims[1] > (1ll << 32) ||
        w->dims[0] % g || dst->dims[1] != w->dims[0] || src->dims[1] != w->dims[1] * g)
        return node_err(c, -EINVAL, "weights do not fit input/output channels and groups");
    for (uint32_t i = 2; i < w->rank; i++)
        if (w->dims[i] != c->n->kernel[i - 2])
            return node_err(c, -EINVAL, "weights do not match the kernel shape");
    dnnl_dims_t dims;
    int nd = 0;
    if (g > 1)
        dims[nd++] = g;
    dims[nd++] = w->dims[0] / g;
    for (uint32_t i = 1; i < w->rank; i++)
        dims[nd++] = w->dims[i];
    /* pre-packed weights: oneDNN's choice; weights computed at run time: plain (g)oihw */
    dnnl_status_t st =
        w->storage == PLAN_ST_PACKED
            ? dnnl_memory_desc_init_by_tag(md, nd, dims, dt, dnnl_format_tag_any)
            : dnnl_memory_desc_init_by_strides(md, nd, dims, dt, NULL);
    if (st != dnnl_success || w->layout != PLAN_LAYOUT_PLAIN)
        return node_err(c, -EINVAL, "bad weights dims");
    return 0;
}

static int bias_md(const struct node_ctx *c, uint32_t idx, int64_t channels, dnnl_memory_desc_t *md,
                   const dnnl_memory_desc_t **out)
{
    *out = NULL;
    if (c->n->n_in <= idx)
        return 0;
    const struct plan_tensor *b = operand(c, idx);
    if (b->rank != 1 || b->dims[0] != channels || plan_tensor_md(b, 1, 0, md))
        return node_err(c, -EINVAL, "bias is not one value per output channel");
    *out = md;
    return 0;
}

/* The forward convolution of src by weights md wmd (+ bias) into dst, the node's window. */
static int conv_desc(const struct node_ctx *c, const struct plan_tensor *src,
                     const dnnl_memory_desc_t *wmd, const dnnl_memory_desc_t *bp,
                     const struct plan_tensor *dst, dnnl_convolution_desc_t *d)
{
    dnnl_memory_desc_t smd, dmd;
    if (plan_tensor_md(src, 0, 0, &smd) || plan_tensor_md(dst, 0, 0, &dmd))
        return node_err(c, -EINVAL, "bad tensor dims");
    struct geometry g;
    geometry_of(c->n, &g);
    if (dnnl_dilated_convolution_forward_desc_init(d, dnnl_forward_inference,
                                                   dnnl_convolution_direct, &smd, wmd, bp, &dmd,
                                                   g.strides, g.dilations, g.pad_l,
                                                   g.pad_r) != dnnl_success)
        return node_err(c, -EINVAL, "oneDNN refuses the convolution's shapes");
    return 0;
}

static int conv_pd(const struct node_ctx *c, dnnl_engine_t eng, dnnl_primitive_desc_t *pd)
{
    int rc = check_operands(c, 2, 3, "A?*");
    if (rc)
        return rc;
    const struct plan_tensor *src = operand(c, 0), *w = operand(c, 1), *dst = dst_of(c);
    dnnl_memory_desc_t wmd, bmd;
    const dnnl_memory_desc_t *bp;
    rc = check_window(c, src, dst);
    if (!rc)
        rc = conv_weights_md(c, src, w, dst, dnnl_f32, &wmd);
    if (!rc)
        rc = bias_md(c, 2, w->dims[0], &bmd, &bp);
    if (rc)
        return rc;
    dnnl_convolution_desc_t d;
    rc = conv_desc(c, src, &wmd, bp, dst, &d);
    dnnl_primitive_attr_t attr;
    if (!rc)
        rc = make_attr(c, &attr, 0);
    return rc ? rc : finish_pd(c, &d, attr, eng, pd);
}

/* One value (a zero point) or one per channel (output scales) of the given dtype, plain. */
static int check_vector(const struct node_ctx *c, uint32_t i, uint32_t dtype, int64_t per,
                        int want_const)
{
    const struct plan_tensor *t = operand(c, i);
    int64_t k = t->rank == 0 ? 1 : t->rank == 1 ? t->dims[0] : -1;
    if (t->dtype != dtype || t->layout != PLAN_LAYOUT_PLAIN || (k != 1 && k != per) ||
        t->storage == PLAN_ST_PACKED || (want_const && t->storage != PLAN_ST_CONST))
        return node_err(c, -EINVAL, "scales, zero points or bias do not fit the int8 op");
    return 0;
}

/* The int8 convolution (PLAN_OP_QCONV): runtime zero points, the image's output scales. */
static int qconv_pd(const struct node_ctx *c, dnnl_engine_t eng, dnnl_primitive_desc_t *pd)
{
    const struct plan_node *n = c->n;
    if (n->n_in < 4 || n->n_in > 6)
        return node_err(c, -EINVAL, "wrong number of inputs in plan");
    const struct plan_tensor *src = operand(c, 0), *w = operand(c, 1), *dst = dst_of(c);
    int f32 = dst->dtype == ENGINE_F32, q8 = !f32 && dst->dtype != ENGINE_I32;
    uint32_t nb = 0; /* a float32 dst: the leading binary posts, one per input after the 4th */
    while (nb < n->n_post && n->post[nb].kind == PLAN_POST_BINARY)
        nb++;
    if ((src->dtype != ENGINE_U8 && src->dtype != ENGINE_I8) || src->storage != PLAN_ST_ARENA ||
        w->dtype != ENGINE_I8 || w->storage != PLAN_ST_PACKED ||
        (q8 && dst->dtype != ENGINE_U8 && dst->dtype != ENGINE_I8) ||
        n->n_in != (q8 ? 6 : f32 ? 4 + nb : 4) || (f32 && nb < 1) || n->sum_tensor != PLAN_NONE)
        return node_err(c, -EINVAL, "operand storage or dtype does not fit the op");
    int64_t oc = w->dims[0];
    dnnl_memory_desc_t wmd, bmd;
    const dnnl_memory_desc_t *bp;
    int rc = check_window(c, src, dst);
    if (!rc)
        rc = conv_weights_md(c, src, w, dst, dnnl_s8, &wmd);
    if (!rc)
        rc = check_vector(c, 2, ENGINE_I32, oc, 1);
    if (!rc)
        rc = bias_md(c, 2, oc, &bmd, &bp);
    if (!rc)
        rc = check_vector(c, 3, ENGINE_I32, 1, 0);
    if (!rc && q8)
        rc = operand(c, 4)->nbytes == (uint64_t)oc * sizeof(float)
                 ? check_vector(c, 4, ENGINE_F32, oc, 1)
                 : node_err(c, -EINVAL, "output scales must be one per channel");
    if (!rc && q8)
        rc = check_vector(c, 5, ENGINE_I32, 1, 1);
    if (rc)
        return rc;
    dnnl_convolution_desc_t d;
    dnnl_primitive_attr_t attr;
    if ((rc = conv_desc(c, src, &wmd, bp, dst, &d)) || (rc = make_attr(c, &attr, 0)))
        return rc;
    const int32_t zp_rt = DNNL_RUNTIME_S32_VAL;
    /* oneDNN 2.6's int8 convolutions take constant output scales only: the image's */
    const float *scales = q8 ? plan_weights_ptr(c->v, operand(c, 4)) : NULL;
    for (int64_t i = 0; scales && i < oc; i++)
        if (!(scales[i] > 0 && scales[i] < 1e30f)) {
            dnnl_primitive_attr_destroy(attr);
            return node_err(c, -EINVAL, "output scales must be positive and finite");
        }
    if (dnnl_primitive_attr_set_zero_points(attr, DNNL_ARG_SRC, 1, 0, &zp_rt) != dnnl_success ||
        (q8 && (dnnl_primitive_attr_set_zero_points(attr, DNNL_ARG_DST, 1, 0, &zp_rt) !=
                    dnnl_success ||
                dnnl_primitive_attr_set_output_scales(attr, oc, oc > 1 ? 2 : 0, scales) !=
                    dnnl_success))) {
        dnnl_primitive_attr_destroy(attr);
        return node_err(c, -EINVAL, "oneDNN refuses the int8 scales or zero points");
    }
    return finish_pd(c, &d, attr, eng, pd);
}

static int inner_pd(const struct node_ctx *c, dnnl_engine_t eng, dnnl_primitive_desc_t *pd)
{
    int rc = check_operands(c, 2, 3, "APC");
    if (rc)
        return rc;
    const struct plan_tensor *src = operand(c, 0), *w = operand(c, 1), *dst = dst_of(c);
    uint32_t k = c->n->collapse;
    if (k < 1 || k >= src->rank || k >= dst->rank || w->rank != 2)
        return node_err(c, -EINVAL, "inner product ranks do not fit");
    dnnl_memory_desc_t smd, wmd, bmd, dmd;
    const dnnl_memory_desc_t *bp;
    if (plan_tensor_md(src, 0, k, &smd) || plan_tensor_md(dst, 0, k, &dmd))
        return node_err(c, -EINVAL, "bad tensor dims");
    if (smd.dims[0] != dmd.dims[0] || smd.dims[1] != w->dims[1] || dmd.dims[1] != w->dims[0])
        return node_err(c, -EINVAL, "weights do not fit input/output features");
    dnnl_dims_t wd = {w->dims[0], w->dims[1]};
    if (dnnl_memory_desc_init_by_tag(&wmd, 2, wd, dnnl_f32, dnnl_format_tag_any) != dnnl_success)
        return node_err(c, -EINVAL, "bad weights dims");
    rc = bias_md(c, 2, w->dims[0], &bmd, &bp);
    if (rc)
        return rc;
    dnnl_inner_product_desc_t d;
    if (dnnl_inner_product_forward_desc_init(&d, dnnl_forward_inference, &smd, &wmd, bp, &dmd) !=
        dnnl_success)
        return node_err(c, -EINVAL, "oneDNN refuses the inner product's shapes");
    dnnl_primitive_attr_t attr;
    rc = make_attr(c, &attr, 0);
    return rc ? rc : finish_pd(c, &d, attr, eng, pd);
}

/* A plain 2+-D operand read with its last two dims swapped (Gemm transA/transB). */
static int transposed_md(const struct plan_tensor *t, int rank, dnnl_memory_desc_t *md)
{
    if (plan_tensor_md(t, rank, 0, md) || md->ndims < 2)
        return -EINVAL;
    dnnl_dims_t dims, strides;
    int nd = md->ndims;
    memcpy(dims, md->dims, sizeof(dims));
    memcpy(strides, md->format_desc.blocking.strides, sizeof(strides));
    int64_t d = dims[nd - 1], st = strides[nd - 1];
    dims[nd - 1] = dims[nd - 2];
    strides[nd - 1] = strides[nd - 2];
    dims[nd - 2] = d;
    strides[nd - 2] = st;
    return dnnl_memory_desc_init_by_strides(md, nd, dims, dnnl_f32, strides) == dnnl_success
               ? 0
               : -EINVAL;
}

/* groups bit 0 / bit 1: A / B read transposed; optional third input: bias (broadcast). */
static int matmul_pd(const struct node_ctx *c, dnnl_engine_t eng, dnnl_primitive_desc_t *pd)
{
    int rc = check_operands(c, 2, 3, "**");
    if (rc)
        return rc;
    const struct plan_tensor *a = operand(c, 0), *b = operand(c, 1), *dst = dst_of(c);
    int r = (int)dst->rank;
    int64_t t = c->n->groups;
    dnnl_memory_desc_t amd, bmd, cmd, dmd;
    const dnnl_memory_desc_t *bias = NULL;
    if (r < 2 || t < 0 || t > 3 || a->rank > dst->rank || b->rank > dst->rank || a->rank < 2 ||
        b->rank < 2 || ((t & 1) ? transposed_md(a, r, &amd) : plan_tensor_md(a, r, 0, &amd)) ||
        ((t & 2) ? transposed_md(b, r, &bmd) : plan_tensor_md(b, r, 0, &bmd)) ||
        plan_tensor_md(dst, r, 0, &dmd))
        return node_err(c, -EINVAL, "matmul ranks do not fit");
    if (c->n->n_in == 3) {
        if (operand(c, 2)->rank > dst->rank || plan_tensor_md(operand(c, 2), r, 0, &cmd))
            return node_err(c, -EINVAL, "matmul bias does not fit");
        bias = &cmd;
    }
    dnnl_matmul_desc_t d;
    if (dnnl_matmul_desc_init(&d, &amd, &bmd, bias, &dmd) != dnnl_success)
        return node_err(c, -EINVAL, "oneDNN refuses the matmul's shapes");
    dnnl_primitive_attr_t attr;
    rc = make_attr(c, &attr, 0);
    return rc ? rc : finish_pd(c, &d, attr, eng, pd);
}

static int pool_pd(const struct node_ctx *c, dnnl_engine_t eng, dnnl_primitive_desc_t *pd)
{
    int rc = check_operands(c, 1, 1, "A");
    if (rc)
        return rc;
    const struct plan_tensor *src = operand(c, 0), *dst = dst_of(c);
    rc = check_window(c, src, dst);
    if (rc)
        return rc;
    if (dst->dims[1] != src->dims[1])
        return node_err(c, -EINVAL, "pooling changes the channel count");
    dnnl_memory_desc_t smd, dmd;
    if (plan_tensor_md(src, 0, 0, &smd) || plan_tensor_md(dst, 0, 0, &dmd))
        return node_err(c, -EINVAL, "bad tensor dims");
    dnnl_pooling_v2_desc_t d;
    struct geometry g;
    geometry_of(c->n, &g);
    if (dnnl_pooling_v2_forward_desc_init(&d, dnnl_forward_inference, (dnnl_alg_kind_t)c->n->alg,
                                          &smd, &dmd, g.strides, g.kernel, g.dilations, g.pad_l,
                                          g.pad_r) != dnnl_success)
        return node_err(c, -EINVAL, "oneDNN refuses the pooling's shapes or algorithm");
    dnnl_primitive_attr_t attr;
    rc = make_attr(c, &attr, 0);
    return rc ? rc : finish_pd(c, &d, attr, eng, pd);
}

static int eltwise_pd(const struct node_ctx *c, dnnl_engine_t eng, dnnl_primitive_desc_t *pd)
{
    int rc = check_operands(c, 1, 1, "A");
    if (rc)
        return rc;
    const struct plan_tensor *src = operand(c, 0), *dst = dst_of(c);
    dnnl_memory_desc_t md;
    /* a 1-D view loses post-ops in oneDNN 2.6 (HardSigmoid's clip): run it as [1, n] */
    if (!same_md(src, dst) || plan_tensor_md(src, src->rank < 2 ? 2 : 0, 0, &md))
        return node_err(c, -EINVAL, "eltwise input and output shapes differ");
    dnnl_eltwise_desc_t d;
    if (dnnl_eltwise_forward_desc_init(&d, dnnl_forward_inference, (dnnl_alg_kind_t)c->n->alg, &md,
                                       c->n->alpha, c->n->beta) != dnnl_success)
        return node_err(c, -EINVAL, "oneDNN refuses the eltwise algorithm");
    dnnl_primitive_attr_t attr;
    rc = make_attr(c, &attr, 0);
    return rc ? rc : finish_pd(c, &d, attr, eng, pd);
}

static int binary_pd(const struct node_ctx *c, dnnl_engine_t eng, dnnl_primitive_desc_t *pd)
{
    int rc = check_operands(c, 2, 2, "**");
    if (rc)
        return rc;
    const struct plan_tensor *a = operand(c, 0), *b = operand(c, 1), *dst = dst_of(c);
    int r = (int)dst->rank;
    dnnl_memory_desc_t amd, bmd, dmd;
    if (!same_dims(a, dst) || b->rank > dst->rank || plan_tensor_md(a, r, 0, &amd) ||
        plan_tensor_md(b, r, 0, &bmd) || plan_tensor_md(dst, r, 0, &dmd))
        return node_err(c, -EINVAL, "binary operand shapes do not fit the output");
    for (int i = 0; i < dmd.ndims; i++)
        if (bmd.dims[i] != 1 && bmd.dims[i] != dmd.dims[i])
            return node_err(c, -EINVAL, "second operand does not broadcast to the output");
    dnnl_binary_desc_t d;
    if (dnnl_binary_desc_init(&d, (dnnl_alg_kind_t)c->n->alg, &amd, &bmd, &dmd) != dnnl_success)
        return node_err(c, -EINVAL, "oneDNN refuses the binary op");
    dnnl_primitive_attr_t attr;
    rc = make_attr(c, &attr, 0);
    return rc ? rc : finish_pd(c, &d, attr, eng, pd);
}

static int softmax_pd(const struct node_ctx *c, dnnl_engine_t eng, dnnl_primitive_desc_t *pd)
{
    int rc = check_operands(c, 1, 1, "A");
    if (rc)
        return rc;
    const struct plan_tensor *src = operand(c, 0), *dst = dst_of(c);
    dnnl_memory_desc_t md;
    if (!same_md(src, dst) || plan_tensor_md(src, 0, c->n->collapse, &md) || c->n->axis < 0 ||
        c->n->axis >= md.ndims)
        return node_err(c, -EINVAL, "softmax shapes or axis do not fit");
    dnnl_softmax_desc_t d;
    if (dnnl_softmax_forward_desc_init(&d, dnnl_forward_inference, &md, (int)c->n->axis) !=
        dnnl_success)
        return node_err(c, -EINVAL, "oneDNN refuses the softmax");
    dnnl_primitive_attr_t attr;
    rc = make_attr(c, &attr, 0);
    return rc ? rc : finish_pd(c, &d, attr, eng, pd);
}

#define CONCAT_MAX 64

static int concat_pd(const struct node_ctx *c, dnnl_engine_t eng, dnnl_primitive_desc_t *pd)
{
    int rc = check_operands(c, 1, CONCAT_MAX, "A");
    if (rc)
        return rc;
    const struct plan_tensor *dst = dst_of(c);
    dnnl_memory_desc_t src[CONCAT_MAX], dmd;
    int64_t axis = c->n->axis, sum = 0;
    if (axis < 0 || axis >= dst->rank || plan_tensor_md(dst, 0, 0, &dmd))
        return node_err(c, -EINVAL, "concat axis out of range");
    for (uint32_t i = 0; i < c->n->n_in; i++) {
        const struct plan_tensor *t = operand(c, i);
        if (t->rank != dst->rank || plan_tensor_md(t, 0, 0, &src[i]))
            return node_err(c, -EINVAL, "concat input rank differs from the output");
        for (uint32_t k = 0; k < t->rank; k++)
            if (k != axis && t->dims[k] != dst->dims[k])
                return node_err(c, -EINVAL, "concat inputs differ outside the axis");
        if (t->dims[axis] > dst->dims[axis] - sum)
            return node_err(c, -EINVAL, "concat inputs exceed the output");
        sum += t->dims[axis];
    }
    if (sum != dst->dims[axis])
        return node_err(c, -EINVAL, "concat inputs do not add up to the output");
    dnnl_primitive_attr_t attr;
    rc = make_attr(c, &attr, 0);
    if (rc)
        return rc;
    dnnl_status_t st =
        dnnl_concat_primitive_desc_create(pd, &dmd, (int)c->n->n_in, (int)axis, src, attr, eng);
    dnnl_primitive_attr_destroy(attr);
    return st == dnnl_success ? 0 : node_err(c, -EINVAL, "oneDNN refuses the concat");
}

static int batchnorm_pd(const struct node_ctx *c, dnnl_engine_t eng, dnnl_primitive_desc_t *pd)
{
    int rc = check_operands(c, 5, 5, "A*");
    if (rc)
        return rc;
    const struct plan_tensor *src = operand(c, 0), *dst = dst_of(c);
    dnnl_memory_desc_t md;
    if (!same_md(src, dst) || src->rank < 2 || plan_tensor_md(src, 0, 0, &md))
        return node_err(c, -EINVAL, "batch normalization shapes do not fit");
    for (uint32_t i = 1; i < 5; i++)
        if (operand(c, i)->rank != 1 || operand(c, i)->dims[0] != src->dims[1])
            return node_err(c, -EINVAL, "batch normalization parameters are not per channel");
    dnnl_batch_normalization_desc_t d;
    unsigned flags = dnnl_use_global_stats | dnnl_use_scale | dnnl_use_shift;
    if (dnnl_batch_normalization_forward_desc_init(&d, dnnl_forward_inference, &md, c->n->alpha,
                                                   flags) != dnnl_success)
        return node_err(c, -EINVAL, "oneDNN refuses the batch normalization");
    dnnl_primitive_attr_t attr;
    rc = make_attr(c, &attr, 0);
    return rc ? rc : finish_pd(c, &d, attr, eng, pd);
}

/* Layer normalization of a plain src over the dims from `axis` on, seen as 2-D [outer, inner];
 * scale and shift are plain with inner elements. */
static int layernorm_pd(const struct node_ctx *c, dnnl_engine_t eng, dnnl_primitive_desc_t *pd)
{
    int rc = check_operands(c, 2, 3, "A*");
    if (rc)
        return rc;
    const struct plan_tensor *src = operand(c, 0), *dst = dst_of(c);
    int64_t axis = c->n->axis;
    if (!same_md(src, dst) || src->layout != PLAN_LAYOUT_PLAIN || axis < 0 || axis >= src->rank)
        return node_err(c, -EINVAL, "layer normalization shapes or axis do not fit");
    dnnl_dims_t dims = {1, 1};
    for (uint32_t i = 0; i < src->rank; i++)
        dims[i < axis ? 0 : 1] *= src->dims[i];
    for (uint32_t i = 1; i < c->n->n_in; i++)
        if (operand(c, i)->layout != PLAN_LAYOUT_PLAIN ||
            operand(c, i)->nbytes != (uint64_t)dims[1] * sizeof(float))
            return node_err(c, -EINVAL, "layer normalization scale/shift size does not fit");
    dnnl_memory_desc_t md;
    if (dnnl_memory_desc_init_by_tag(&md, 2, dims, dnnl_f32, dnnl_ab) != dnnl_success)
        return node_err(c, -EINVAL, "layer normalization shapes do not fit");
    dnnl_layer_normalization_desc_t d;
    unsigned flags = dnnl_use_scale | (c->n->n_in == 3 ? dnnl_use_shift : 0);
    if (dnnl_layer_normalization_forward_desc_init(&d, dnnl_forward_inference, &md, NULL,
                                                   c->n->alpha, flags) != dnnl_success)
        return node_err(c, -EINVAL, "oneDNN refuses the layer normalization");
    dnnl_primitive_attr_t attr;
    rc = make_attr(c, &attr, 0);
    return rc ? rc : finish_pd(c, &d, attr, eng, pd);
}

/* A layout change of one activation: float32, or uint8/int8/int32 (int8 convolutions). */
static int reorder_pd(const struct node_ctx *c, dnnl_engine_t eng, dnnl_primitive_desc_t *pd)
{
    if (c->n->n_in != 1) /* before operand(c, 0) reads the index */
        return node_err(c, -EINVAL, "wrong number of inputs in plan");
    const struct plan_tensor *src = operand(c, 0), *dst = dst_of(c);
    int rc = src->dtype == ENGINE_F32 ? check_operands(c, 1, 1, "A") : 0;
    if (rc)
        return rc;
    if (src->storage != PLAN_ST_ARENA || src->dtype != dst->dtype)
        return node_err(c, -EINVAL, "operand storage or dtype does not fit the op");
    dnnl_memory_desc_t smd, dmd;
    if (!same_dims(src, dst) || plan_tensor_md(src, 0, 0, &smd) || plan_tensor_md(dst, 0, 0, &dmd))
        return node_err(c, -EINVAL, "reorder input and output shapes differ");
    dnnl_primitive_attr_t attr;
    rc = make_attr(c, &attr, 0);
    if (rc)
        return rc;
    dnnl_status_t st = dnnl_reorder_primitive_desc_create(pd, &smd, eng, &dmd, eng, attr);
    dnnl_primitive_attr_destroy(attr);
    return st == dnnl_success ? 0 : node_err(c, -EINVAL, "oneDNN refuses the reorder");
}

int plan_wino_post(const struct plan_node *n, struct wino_post *p)
{
    int sums = 0;
    p->n = 0;
    for (uint32_t i = 0; i < n->n_post; i++) {
        const struct plan_post *q = &n->post[i];
        enum wino_step kind;
        if (q->kind == PLAN_POST_SUM && n->sum_tensor != PLAN_NONE)
            kind = WINO_SUM;
        else if (q->kind != PLAN_POST_ELTWISE)
            return -EINVAL;
        else if (q->alg == dnnl_eltwise_relu)
            kind = WINO_RELU;
        else if (q->alg == dnnl_eltwise_clip || q->alg == dnnl_eltwise_clip_v2)
            kind = WINO_CLIP;
        else if (q->alg == dnnl_eltwise_linear)
            kind = WINO_LINEAR;
        else
            return -EINVAL;
        if (p->n >= WINO_MAX_POST || (kind == WINO_SUM && sums++))
            return -EINVAL;
        p->step[p->n].kind = kind;
        p->step[p->n].a = q->alpha;
        p->step[p->n].b = q->beta;
        p->n++;
    }
    return 0;
}

int plan_wino_shape(const struct plan_view *v, const struct plan_node *n, struct wino_shape *s)
{
    const struct plan_tensor *src = &v->tensors[plan_input(v, n, 0)], *dst = &v->tensors[n->out];
    int64_t blk = wino_layout_block(src->layout);
    if (src->rank != 4 || dst->rank != 4 || blk < 0 || dst->layout != src->layout)
        return -EINVAL;
    return wino_shape_init(s, src->dims, dst->dims, n->pad_l[0], n->pad_l[1], n->axis, blk)
               ? -EINVAL
               : 0;
}

size_t plan_wino_scratch(const struct wino_shape *s)
{
    return ALIGN_UP((size_t)wino_v_bytes(s), 64) + (size_t)wino_m_bytes(s);
}

/* A Winograd node runs our own kernels (no primitive): its geometry, layouts, weights and
 * post-ops are all checked here. */
static int wino_check(const struct node_ctx *c)
{
    int rc = check_operands(c, 2, 3, "AC*");
    if (rc)
        return rc;
    const struct plan_node *n = c->n;
    const struct plan_tensor *src = operand(c, 0), *w = operand(c, 1), *dst = dst_of(c);
    struct wino_shape s;
    struct wino_post post;
    if (!wino_supported())
        return node_err(c, -ENOTSUP, "Winograd convolution needs AVX2 and FMA");
    if (plan_wino_shape(c->v, n, &s) || check_window(c, src, dst) || n->kernel[0] != 3 ||
        n->kernel[1] != 3 || n->strides[0] != 1 || n->strides[1] != 1 || n->dilations[0] ||
        n->dilations[1] || n->groups != 1)
        return node_err(c, -EINVAL,
                        "not a 3x3 stride-1 convolution over nChw8c, nChw16c or nhwc tensors");
    if (plan_wino_scratch(&s) > ((size_t)1 << 30))
        return node_err(c, -EINVAL, "Winograd tile block too large");
    if (plan_wino_post(n, &post))
        return node_err(c, -EINVAL, "post-op not supported by the Winograd convolution");
    if (n->sum_tensor != PLAN_NONE && !same_md(&c->v->tensors[n->sum_tensor], dst))
        return node_err(c, -EINVAL, "sum post-op addend shape differs from the output");
    if (w->rank != 4 || w->dims[0] != WINO_POINTS || w->dims[1] != s.k16 / WINO_COLS ||
        w->dims[2] != s.c || w->dims[3] != WINO_COLS || w->layout != PLAN_LAYOUT_PLAIN ||
        w->nbytes != wino_u_bytes(s.c, s.k))
        return node_err(c, -EINVAL, "Winograd weights do not fit the channels");
    dnnl_memory_desc_t bmd;
    const dnnl_memory_desc_t *bp;
    return bias_md(c, 2, s.k, &bmd, &bp);
}

/* PRelu: the slope broadcast to src (oneDNN's prelu primitive); dst as src. */
static int prelu_pd(const struct node_ctx *c, dnnl_engine_t eng, dnnl_primitive_desc_t *pd)
{
    int rc = check_operands(c, 2, 2, "AP");
    if (rc)
        return rc;
    const struct plan_tensor *src = operand(c, 0), *w = operand(c, 1), *dst = dst_of(c);
    dnnl_memory_desc_t smd, wmd;
    if (!same_md(src, dst) || w->rank != src->rank || w->layout != PLAN_LAYOUT_PLAIN ||
        plan_tensor_md(src, 0, 0, &smd))
        return node_err(c, -EINVAL, "PRelu operands do not fit the output");
    dnnl_dims_t wd;
    for (uint32_t i = 0; i < w->rank; i++) {
        if (w->dims[i] != 1 && w->dims[i] != src->dims[i])
            return node_err(c, -EINVAL, "slope does not broadcast to the input");
        wd[i] = w->dims[i];
    }
    if (dnnl_memory_desc_init_by_tag(&wmd, (int)w->rank, wd, dnnl_f32, dnnl_format_tag_any) !=
        dnnl_success)
        return node_err(c, -EINVAL, "bad slope dims");
    dnnl_prelu_desc_t d;
    if (dnnl_prelu_forward_desc_init(&d, dnnl_forward_inference, &smd, &wmd) != dnnl_success)
        return node_err(c, -EINVAL, "oneDNN refuses the PRelu");
    dnnl_primitive_attr_t attr;
    rc = make_attr(c, &attr, 0);
    return rc ? rc : finish_pd(c, &d, attr, eng, pd);
}

/* Resize as oneDNN's resampling: src and dst of one layout, N and C kept, factors dst/src. */
static int resample_pd(const struct node_ctx *c, dnnl_engine_t eng, dnnl_primitive_desc_t *pd)
{
    int rc = check_operands(c, 1, 1, "A");
    if (rc)
        return rc;
    const struct plan_tensor *src = operand(c, 0), *dst = dst_of(c);
    dnnl_memory_desc_t smd, dmd;
    if (src->rank < 3 || src->rank > 5 || dst->rank != src->rank || dst->layout != src->layout ||
        dst->dims[0] != src->dims[0] || dst->dims[1] != src->dims[1] ||
        (c->n->alg != dnnl_resampling_nearest && c->n->alg != dnnl_resampling_linear) ||
        plan_tensor_md(src, 0, 0, &smd) || plan_tensor_md(dst, 0, 0, &dmd))
        return node_err(c, -EINVAL, "resampling operands do not fit");
    for (uint32_t i = 2; i < src->rank; i++)
        if (src->dims[i] < 1 || dst->dims[i] < 1)
            return node_err(c, -EINVAL, "resampling of an empty axis");
    dnnl_resampling_desc_t d;
    if (dnnl_resampling_forward_desc_init(&d, dnnl_forward_inference, (dnnl_alg_kind_t)c->n->alg,
                                          NULL, &smd, &dmd) != dnnl_success)
        return node_err(c, -EINVAL, "oneDNN refuses the resampling");
    dnnl_primitive_attr_t attr;
    rc = make_attr(c, &attr, 0);
    return rc ? rc : finish_pd(c, &d, attr, eng, pd);
}

int plan_primitive_desc(const struct plan_view *v, const struct plan_node *n, dnnl_engine_t eng,
                        dnnl_primitive_desc_t *pd, char *err, size_t errlen)
{
    struct node_ctx c = {v, n, err, errlen};
    *pd = NULL;
    switch (n->op) {
    case PLAN_OP_CONV:
        return conv_pd(&c, eng, pd);
    case PLAN_OP_INNER:
        return inner_pd(&c, eng, pd);
    case PLAN_OP_MATMUL:
        return matmul_pd(&c, eng, pd);
    case PLAN_OP_POOL:
        return pool_pd(&c, eng, pd);
    case PLAN_OP_ELTWISE:
        return eltwise_pd(&c, eng, pd);
    case PLAN_OP_BINARY:
        return binary_pd(&c, eng, pd);
    case PLAN_OP_SOFTMAX:
        return softmax_pd(&c, eng, pd);
    case PLAN_OP_CONCAT:
        return concat_pd(&c, eng, pd);
    case PLAN_OP_BATCHNORM:
        return batchnorm_pd(&c, eng, pd);
    case PLAN_OP_REORDER:
        return reorder_pd(&c, eng, pd);
    case PLAN_OP_LAYERNORM:
        return layernorm_pd(&c, eng, pd);
    case PLAN_OP_WINOGRAD:
        return wino_check(&c);
    case PLAN_OP_PRELU:
        return prelu_pd(&c, eng, pd);
    case PLAN_OP_RESAMPLE:
        return resample_pd(&c, eng, pd);
    case PLAN_OP_QCONV:
        return qconv_pd(&c, eng, pd);
    case PLAN_OP_KERNEL:
        return plan_kernel_check(v, n, err, errlen);
    default:
        return node_err(&c, -EINVAL, "unknown plan op");
    }
}

/* The execution argument each input position binds to. */
int plan_input_arg(const struct plan_node *n, uint32_t i)
{
    uint32_t op = n->op;
    static const int conv[] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_BIAS};
    static const int bin[] = {DNNL_ARG_SRC_0, DNNL_ARG_SRC_1};
    static const int bn[] = {DNNL_ARG_SRC, DNNL_ARG_MEAN, DNNL_ARG_VARIANCE, DNNL_ARG_SCALE,
                             DNNL_ARG_SHIFT};
    static const int qconv[] = {DNNL_ARG_SRC,
                                DNNL_ARG_WEIGHTS,
                                DNNL_ARG_BIAS,
                                DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC,
                                DNNL_ARG_ATTR_OUTPUT_SCALES,
                                DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_DST};
    switch (op) {
    case PLAN_OP_CONV:
    case PLAN_OP_INNER:
    case PLAN_OP_MATMUL:
        return i < 3 ? conv[i] : -1;
    case PLAN_OP_PRELU:
        return i < 2 ? conv[i] : -1;
    case PLAN_OP_QCONV: /* a float32 dst's inputs 4... are its binary posts' src1 */
        if (i >= 4 && n->n_post > i - 4 && n->post[i - 4].kind == PLAN_POST_BINARY)
            return DNNL_ARG_ATTR_MULTIPLE_POST_OP((int)i - 4) | DNNL_ARG_SRC_1;
        return i < 6 ? qconv[i] : -1;
    case PLAN_OP_BINARY:
        return i < 2 ? bin[i] : -1;
    case PLAN_OP_CONCAT:
        return DNNL_ARG_MULTIPLE_SRC + (int)i;
    case PLAN_OP_BATCHNORM:
        return i < 5 ? bn[i] : -1;
    case PLAN_OP_LAYERNORM:
        return i < 3 ? bn[i == 0 ? 0 : i + 2] : -1;
    default:
        return i == 0 ? DNNL_ARG_SRC : -1;
    }
}
