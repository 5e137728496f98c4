/*
 * kernel_check.c — the contract of every plain-C kernel node (PLAN_OP_KERNEL): operand counts,
 * storage, dtypes, shapes and parameters checked against the node's tensors before a kernel
 * reads or writes them. Runs at compile time and at model open (plan_primitive_desc calls
 * plan_kernel_check), so a hostile image cannot make a kernel index past a tensor's bytes.
 */
#include "common/common.h"
#include "engine/kernel_params.h"
#include "engine/kernels.h"
#include "engine/plan.h"
#include "engine/plan_node.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- plain-C kernel nodes ---- */

static int plain_of_dtype(const struct plan_tensor *t, uint32_t dtype)
{
    return t->storage != PLAN_ST_PACKED && t->layout == PLAN_LAYOUT_PLAIN && t->dtype == dtype;
}

static int transpose_check(const struct node_ctx *c, const int32_t *p)
{
    const struct plan_tensor *src = operand(c, 0), *dst = dst_of(c);
    int seen[ENGINE_MAX_RANK] = {0};
    if (c->n->n_params != src->rank || dst->rank != src->rank)
        return node_err(c, -EINVAL, "transpose permutation does not fit the rank");
    for (uint32_t i = 0; i < src->rank; i++) {
        if (p[i] < 0 || (uint32_t)p[i] >= src->rank || seen[p[i]]++ ||
            dst->dims[i] != src->dims[p[i]])
            return node_err(c, -EINVAL, "transpose permutation does not fit the shapes");
    }
    return 0;
}

static int slice_check(const struct node_ctx *c, const int32_t *p)
{
    const struct plan_tensor *src = operand(c, 0), *dst = dst_of(c);
    if (c->n->n_params != 2 * src->rank || dst->rank != src->rank)
        return node_err(c, -EINVAL, "slice parameters do not fit the rank");
    for (uint32_t i = 0; i < src->rank; i++) {
        int64_t start = p[i], step = p[src->rank + i], n = dst->dims[i], dim = src->dims[i];
        if (n == 0)
            continue;
        /* the last element read, start + (n-1)*step, stays in [0, dim) (no overflow) */
        int ok = step != 0 && start >= 0 && start < dim &&
                 (step > 0 ? n - 1 <= (dim - 1 - start) / step : n - 1 <= start / -step);
        if (!ok)
            return node_err(c, -EINVAL, "slice reads outside its input");
    }
    return 0;
}

static int gather_check(const struct node_ctx *c)
{
    const struct plan_tensor *src = operand(c, 0), *idx = operand(c, 1), *dst = dst_of(c);
    int64_t axis = c->n->axis;
    if (!plain_of_dtype(idx, ENGINE_I64) || axis < 0 || axis >= src->rank || c->n->n_params ||
        dst->rank != src->rank - 1 + idx->rank)
        return node_err(c, -EINVAL, "gather axis, indices or output rank do not fit");
    for (uint32_t i = 0; i < dst->rank; i++) {
        int64_t want = i < axis               ? src->dims[i]
                       : i < axis + idx->rank ? idx->dims[i - axis]
                                              : src->dims[i - idx->rank + 1];
        if (dst->dims[i] != want)
            return node_err(c, -EINVAL, "gather output shape does not follow from its inputs");
    }
    return 0;
}

static void shape_of(const struct plan_tensor *t, struct engine_shape *s)
{
    s->rank = (int)t->rank;
    memcpy(s->dims, t->dims, sizeof(s->dims));
}

static int binary_kernel_check(const struct node_ctx *c, const int32_t *p)
{
    const struct plan_tensor *a = operand(c, 0), *b = operand(c, 1), *dst = dst_of(c);
    struct engine_shape as, bs, ds;
    shape_of(a, &as);
    shape_of(b, &bs);
    int cmp = p[0] >= K_EQUAL;
    if (c->n->n_params != 1 || p[0] < K_ADD || p[0] > K_GREATER || !plain_of_dtype(b, a->dtype) ||
        (a->dtype != ENGINE_F32 && a->dtype != ENGINE_I32 && a->dtype != ENGINE_I64 &&
         a->dtype != ENGINE_F64) ||
        dst->dtype != (cmp ? ENGINE_BOOL : a->dtype))
        return node_err(c, -EINVAL, "binary kernel op or dtypes do not fit");
    if (k_broadcast_shape(&as, &bs, &ds) || ds.rank != (int)dst->rank ||
        memcmp(ds.dims, dst->dims, dst->rank * sizeof(ds.dims[0])) != 0)
        return node_err(c, -EINVAL, "binary kernel output is not the operands' broadcast");
    return 0;
}

static int reduce_check(const struct node_ctx *c, const int32_t *p)
{
    const struct plan_tensor *src = operand(c, 0), *dst = dst_of(c);
    int64_t kept = 1;
    if (c->n->n_params != src->rank || src->dtype != ENGINE_F32)
        return node_err(c, -EINVAL, "reduce parameters do not fit the rank");
    for (uint32_t i = 0; i < src->rank; i++)
        kept *= p[i] ? 1 : src->dims[i];
    struct engine_shape ds;
    shape_of(dst, &ds);
    if (engine_shape_numel(&ds) != kept)
        return node_err(c, -EINVAL, "reduce output size does not follow from its input");
    return 0;
}

/* An element-wise kernel's src and dst: both plain, or both in one channels-last layout (no
 * padding: the kernel walks them as flat arrays) with the same dims. */
static int flat_pair_ok(const struct plan_tensor *src, const struct plan_tensor *dst)
{
    if (src->layout == PLAN_LAYOUT_PLAIN && dst->layout == PLAN_LAYOUT_PLAIN)
        return 1;
    return src->layout == dst->layout && plan_layout_channels_last(src->layout) &&
           src->rank == dst->rank &&
           memcmp(src->dims, dst->dims, src->rank * sizeof(src->dims[0])) == 0;
}

static int cast_check(const struct node_ctx *c)
{
    const struct plan_tensor *src = operand(c, 0), *dst = dst_of(c);
    size_t ss = engine_dtype_size((int)src->dtype), ds = engine_dtype_size((int)dst->dtype);
    if (c->n->n_params || !flat_pair_ok(src, dst) || src->storage == PLAN_ST_PACKED || !ss ||
        !ds || src->nbytes / ss != dst->nbytes / ds)
        return node_err(c, -EINVAL, "cast element counts or layouts differ");
    return 0;
}

/* The pad kernel maps every output element to an in-range source element or to the value, so
 * only counts, the mode and the value's size need checking. */
static int pad_check(const struct node_ctx *c, const int32_t *p)
{
    const struct plan_tensor *src = operand(c, 0), *val = operand(c, 1), *dst = dst_of(c);
    if (c->n->n_params != src->rank + 1 || dst->rank != src->rank ||
        !plain_of_dtype(val, src->dtype) || val->nbytes != engine_dtype_size((int)src->dtype) ||
        p[src->rank] < K_PAD_CONSTANT || p[src->rank] > K_PAD_EDGE)
        return node_err(c, -EINVAL, "pad parameters do not fit");
    return 0;
}

/* Every operand must broadcast to exactly dst's shape (k_where walks dst and maps back). */
static int where_check(const struct node_ctx *c)
{
    const struct plan_tensor *dst = dst_of(c);
    struct engine_shape ds, os, bs;
    shape_of(dst, &ds);
    if (c->n->n_params || dst->layout != PLAN_LAYOUT_PLAIN ||
        !plain_of_dtype(operand(c, 0), ENGINE_BOOL) || !plain_of_dtype(operand(c, 1), dst->dtype) ||
        !plain_of_dtype(operand(c, 2), dst->dtype))
        return node_err(c, -EINVAL,
                        "where needs a plain bool condition and operands of the output's dtype");
    for (uint32_t i = 0; i < 3; i++) {
        shape_of(operand(c, i), &os);
        if (k_broadcast_shape(&os, &ds, &bs) || bs.rank != ds.rank ||
            memcmp(bs.dims, ds.dims, (size_t)ds.rank * sizeof(ds.dims[0])) != 0)
            return node_err(c, -EINVAL, "where operands do not broadcast to the output");
    }
    return 0;
}

/* ---- math kernel nodes (kernels_math.c) ---- */

static int dims_equal(const struct plan_tensor *t, const struct engine_shape *s)
{
    return s->rank == (int)t->rank && memcmp(s->dims, t->dims, t->rank * sizeof(t->dims[0])) == 0;
}

static int64_t numel_of(const struct plan_tensor *t)
{
    struct engine_shape s;
    shape_of(t, &s);
    return engine_shape_numel(&s);
}

static int unary_check(const struct node_ctx *c, const int32_t *p)
{
    const struct plan_tensor *x = operand(c, 0), *dst = dst_of(c);
    struct engine_shape xs;
    shape_of(x, &xs);
    struct kp_op q;
    int out = kp_decode_op(PLAN_K_UNARY, p, c->n->n_params, &q) == 0
                  ? k_unary_dtype((enum k_unop)q.op, (int)x->dtype)
                  : 0;
    if (!out || !plain_of_dtype(x, x->dtype) || dst->dtype != (uint32_t)out ||
        !dims_equal(dst, &xs))
        return node_err(c, -EINVAL, "unary kernel op, dtypes or shapes do not fit");
    return 0;
}

static int math_reduce_check(const struct node_ctx *c, const int32_t *p)
{
    const struct plan_tensor *x = operand(c, 0), *dst = dst_of(c);
    int64_t kept = 1;
    struct kp_reduce q;
    if (kp_decode_reduce(p, c->n->n_params, (int)x->rank, 1, &q) ||
        !k_reduce_dtype_ok(q.op, (int)x->dtype) || !plain_of_dtype(x, dst->dtype))
        return node_err(c, -EINVAL, "reduce kernel op, dtypes or parameters do not fit");
    for (uint32_t i = 0; i < x->rank; i++)
        kept *= q.mask[i] ? 1 : x->dims[i];
    if (numel_of(dst) != kept)
        return node_err(c, -EINVAL, "reduce output size does not follow from its input");
    return 0;
}

static int argext_check(const struct node_ctx *c, const int32_t *p)
{
    const struct plan_tensor *x = operand(c, 0), *dst = dst_of(c);
    int64_t axis = c->n->axis, rest = 1;
    struct kp_argext q;
    if (kp_decode_argext(p, c->n->n_params, &q) || !plain_of_dtype(x, ENGINE_F32) ||
        dst->dtype != ENGINE_I64 || axis < 0 || axis >= x->rank || x->dims[axis] < 1)
        return node_err(c, -EINVAL, "arg-extremum axis, dtypes or parameters do not fit");
    for (uint32_t i = 0; i < x->rank; i++)
        rest *= i == axis ? 1 : x->dims[i];
    return numel_of(dst) == rest ? 0 : node_err(c, -EINVAL, "arg-extremum output size is wrong");
}

static int softmax_f_check(const struct node_ctx *c, const int32_t *p)
{
    const struct plan_tensor *x = operand(c, 0), *dst = dst_of(c);
    struct engine_shape xs;
    shape_of(x, &xs);
    struct kp_softmax q;
    if (kp_decode_softmax(p, c->n->n_params, &q) || !plain_of_dtype(x, ENGINE_F32) ||
        dst->dtype != ENGINE_F32 || !dims_equal(dst, &xs) || c->n->axis < 0 ||
        c->n->axis >= x->rank)
        return node_err(c, -EINVAL, "softmax-family axis, shapes or parameters do not fit");
    return 0;
}

/* Every input broadcasts to exactly dst's shape (the kernels walk dst and map back). */
static int broadcasts_to_dst(const struct node_ctx *c)
{
    struct engine_shape ds, os, bs;
    shape_of(dst_of(c), &ds);
    for (uint32_t i = 0; i < c->n->n_in; i++) {
        shape_of(operand(c, i), &os);
        if (k_broadcast_shape(&os, &ds, &bs) || !dims_equal(dst_of(c), &bs))
            return 0;
    }
    return 1;
}

static int logic_check(const struct node_ctx *c, const int32_t *p)
{
    const struct plan_tensor *a = operand(c, 0), *b = operand(c, 1), *dst = dst_of(c);
    struct engine_shape as, bs, ds;
    shape_of(a, &as);
    shape_of(b, &bs);
    struct kp_op q;
    int out = kp_decode_op(PLAN_K_LOGIC, p, c->n->n_params, &q) == 0
                  ? k_logic_dtype((enum k_logop)q.op, (int)a->dtype)
                  : 0;
    if (!out || !plain_of_dtype(a, a->dtype) || !plain_of_dtype(b, a->dtype) ||
        dst->dtype != (uint32_t)out)
        return node_err(c, -EINVAL, "logic kernel op or dtypes do not fit");
    if (k_broadcast_shape(&as, &bs, &ds) || !dims_equal(dst, &ds))
        return node_err(c, -EINVAL, "logic kernel output is not the operands' broadcast");
    return 0;
}

static int variadic_check(const struct node_ctx *c, const int32_t *p)
{
    const struct plan_tensor *dst = dst_of(c);
    struct kp_op q;
    if (kp_decode_op(PLAN_K_VARIADIC, p, c->n->n_params, &q) || c->n->n_in > 8 ||
        !k_variadic_dtype_ok((enum k_varop)q.op, (int)dst->dtype))
        return node_err(c, -EINVAL, "variadic kernel op, input count or dtype do not fit");
    for (uint32_t i = 0; i < c->n->n_in; i++)
        if (!plain_of_dtype(operand(c, i), dst->dtype))
            return node_err(c, -EINVAL, "variadic kernel inputs differ in dtype or layout");
    return broadcasts_to_dst(c)
               ? 0
               : node_err(c, -EINVAL, "variadic inputs do not broadcast to the output");
}

static int layernorm_k_check(const struct node_ctx *c, const int32_t *p)
{
    const struct plan_tensor *x = operand(c, 0), *dst = dst_of(c);
    int64_t axis = c->n->axis, outer = 1, inner = 1;
    struct kp_layernorm q;
    if (kp_decode_layernorm(p, c->n->n_params, &q) || axis < 0 || axis >= x->rank ||
        !plain_of_dtype(x, ENGINE_F32) || dst->dtype != ENGINE_F32)
        return node_err(c, -EINVAL, "layer-norm kernel axis, dtypes or parameters do not fit");
    for (uint32_t i = 0; i < x->rank; i++)
        *(i < axis ? &outer : &inner) *= x->dims[i];
    for (uint32_t i = 1; i < c->n->n_in; i++)
        if (!plain_of_dtype(operand(c, i), ENGINE_F32) || numel_of(operand(c, i)) != inner)
            return node_err(c, -EINVAL, "layer-norm scale or bias size differs from the row's");
    if (numel_of(dst) != (q.which ? outer : outer * inner))
        return node_err(c, -EINVAL, "layer-norm output size does not follow from its input");
    return 0;
}

static int nll_check(const struct node_ctx *c, const int32_t *p)
{
    const struct plan_tensor *x = operand(c, 0), *t = operand(c, 1), *dst = dst_of(c);
    struct kp_nll q;
    if (kp_decode_nll(p, c->n->n_params, &q) || !plain_of_dtype(x, ENGINE_F32) ||
        !plain_of_dtype(t, ENGINE_I64) || dst->dtype != ENGINE_F32 || x->rank < 2 ||
        t->rank != x->rank - 1 || t->dims[0] != x->dims[0] ||
        memcmp(t->dims + 1, x->dims + 2, (t->rank - 1) * sizeof(int64_t)))
        return node_err(c, -EINVAL, "loss kernel shapes, dtypes or parameters do not fit");
    if (c->n->n_in == 3 &&
        (!plain_of_dtype(operand(c, 2), ENGINE_F32) || numel_of(operand(c, 2)) != x->dims[1]))
        return node_err(c, -EINVAL, "loss weights must hold one float32 per class");
    if (numel_of(dst) != (q.red == K_LOSS_NONE ? numel_of(t) : 1))
        return node_err(c, -EINVAL, "loss output size does not follow from its inputs");
    return 0;
}

static int clip_check(const struct node_ctx *c, const int32_t *p)
{
    const struct plan_tensor *x = operand(c, 0), *dst = dst_of(c);
    struct engine_shape xs;
    shape_of(x, &xs);
    struct kp_clip q;
    if (kp_decode_clip(p, c->n->n_params, &q) ||
        c->n->n_in != 1u + (uint32_t)q.has_min + (uint32_t)q.has_max ||
        !k_clip_dtype_ok((int)x->dtype) || !plain_of_dtype(x, dst->dtype) || !dims_equal(dst, &xs))
        return node_err(c, -EINVAL, "clip kernel bounds, dtypes or shapes do not fit");
    for (uint32_t i = 1; i < c->n->n_in; i++)
        if (!plain_of_dtype(operand(c, i), x->dtype) || numel_of(operand(c, i)) != 1)
            return node_err(c, -EINVAL, "clip bounds must be one element of the input's dtype");
    return 0;
}

static int instnorm_check(const struct node_ctx *c)
{
    const struct plan_tensor *x = operand(c, 0), *dst = dst_of(c);
    struct engine_shape xs;
    shape_of(x, &xs);
    if (c->n->n_params || x->rank < 2 || !plain_of_dtype(x, ENGINE_F32) ||
        dst->dtype != ENGINE_F32 || !dims_equal(dst, &xs) ||
        !plain_of_dtype(operand(c, 1), ENGINE_F32) || numel_of(operand(c, 1)) != x->dims[1] ||
        !plain_of_dtype(operand(c, 2), ENGINE_F32) || numel_of(operand(c, 2)) != x->dims[1])
        return node_err(c, -EINVAL, "instance-norm shapes or dtypes do not fit");
    return 0;
}

static int arith_check(const struct node_ctx *c, const int32_t *p)
{
    const struct plan_tensor *a = operand(c, 0), *b = operand(c, 1), *dst = dst_of(c);
    struct engine_shape as, bs, ds;
    shape_of(a, &as);
    shape_of(b, &bs);
    struct kp_op q;
    if (kp_decode_op(PLAN_K_ARITH, p, c->n->n_params, &q) ||
        !k_arith_dtypes_ok((enum k_binop)q.op, (int)a->dtype, (int)b->dtype) ||
        !plain_of_dtype(a, dst->dtype) || !plain_of_dtype(b, b->dtype))
        return node_err(c, -EINVAL, "arithmetic kernel op or dtypes do not fit");
    if (k_broadcast_shape(&as, &bs, &ds) || !dims_equal(dst, &ds))
        return node_err(c, -EINVAL, "arithmetic kernel output is not the operands' broadcast");
    return 0;
}

static int topk_check(const struct node_ctx *c, const int32_t *p)
{
    const struct plan_tensor *x = operand(c, 0), *dst = dst_of(c);
    int64_t axis = c->n->axis;
    struct kp_topk q;
    if (kp_decode_topk(p, c->n->n_params, &q) || !plain_of_dtype(x, ENGINE_F32) ||
        dst->dtype != (q.indices ? ENGINE_I64 : ENGINE_F32) || axis < 0 || axis >= x->rank ||
        dst->rank != x->rank)
        return node_err(c, -EINVAL, "top-k axis, dtypes or parameters do not fit");
    for (uint32_t i = 0; i < x->rank; i++)
        if (i == axis ? dst->dims[i] > x->dims[i] : dst->dims[i] != x->dims[i])
            return node_err(c, -EINVAL, "top-k output shape does not follow from its input");
    return 0;
}

static int is_q8(uint32_t dtype)
{
    return dtype == ENGINE_U8 || dtype == ENGINE_I8;
}

/* Optional input i of the node: plain, of dtype, with 1 or `count` elements. */
static int small_operand_ok(const struct node_ctx *c, uint32_t i, uint32_t dtype, int64_t count)
{
    const struct plan_tensor *t = operand(c, i);
    int64_t k = numel_of(t);
    return plain_of_dtype(t, dtype) && t->rank <= 1 && (k == 1 || k == count);
}

static int quantize_check(const struct node_ctx *c, const int32_t *p)
{
    const struct plan_tensor *x = operand(c, 0), *scale = operand(c, 1), *dst = dst_of(c);
    struct engine_shape xs;
    shape_of(x, &xs);
    int64_t axis = c->n->axis, ns = numel_of(scale);
    int deq = c->n->n_params == 1 && p[0] == 1;
    uint32_t qdt = deq ? x->dtype : dst->dtype;
    int ok = c->n->n_params == 1 && (p[0] == 0 || p[0] == 1) && dims_equal(dst, &xs) &&
             (deq ? (is_q8(x->dtype) || x->dtype == ENGINE_I32) && dst->dtype == ENGINE_F32
                  : x->dtype == ENGINE_F32 && is_q8(dst->dtype)) &&
             x->storage != PLAN_ST_PACKED &&
             (ns == 1 ? flat_pair_ok(x, dst) /* per tensor: element-wise */
                      : plain_of_dtype(x, x->dtype) && dst->layout == PLAN_LAYOUT_PLAIN) &&
             (ns == 1 || (axis >= 0 && axis < x->rank && ns == x->dims[axis])) &&
             small_operand_ok(c, 1, ENGINE_F32, ns) &&
             (c->n->n_in < 3 || (small_operand_ok(c, 2, qdt, ns) && numel_of(operand(c, 2)) == ns));
    return ok ? 0 : node_err(c, -EINVAL, "quantize kernel shapes, dtypes or parameters do not fit");
}

static int dynquant_check(const struct node_ctx *c, const int32_t *p)
{
    const struct plan_tensor *x = operand(c, 0), *dst = dst_of(c);
    struct engine_shape xs;
    shape_of(x, &xs);
    /* y may share x's channels-last layout (element-wise); the scale and zero point are plain */
    int ok = c->n->n_params == 1 && p[0] >= 0 && p[0] <= 2 && x->dtype == ENGINE_F32 &&
             x->storage != PLAN_ST_PACKED &&
             (p[0] == 0 ? flat_pair_ok(x, dst)
                        : (x->layout == PLAN_LAYOUT_PLAIN || plan_layout_channels_last(x->layout)) &&
                              dst->layout == PLAN_LAYOUT_PLAIN) &&
             dst->dtype == (p[0] == 1 ? ENGINE_F32 : ENGINE_U8) &&
             (p[0] == 0 ? dims_equal(dst, &xs) : numel_of(dst) == 1);
    return ok ? 0 : node_err(c, -EINVAL, "dynamic-quantize output does not fit");
}

/* a [batch..., m, k] x b [k, n] or [batch..., k, n] -> dst [batch..., m, n]. */
static int qmatmul_shapes_ok(const struct plan_tensor *a, const struct plan_tensor *b,
                             const struct plan_tensor *dst)
{
    uint32_t r = a->rank;
    if (r < 2 || (b->rank != 2 && b->rank != r) || dst->rank != r ||
        b->dims[b->rank - 2] != a->dims[r - 1] || dst->dims[r - 2] != a->dims[r - 2] ||
        dst->dims[r - 1] != b->dims[b->rank - 1])
        return 0;
    for (uint32_t i = 0; i + 2 < r; i++)
        if (dst->dims[i] != a->dims[i] || (b->rank == r && b->dims[i] != a->dims[i]))
            return 0;
    return 1;
}

static int qmatmul_check(const struct node_ctx *c, const int32_t *p)
{
    if (c->n->n_params != 3 || (p[0] != 0 && p[0] != 1) || (p[1] != 0 && p[1] != 1) ||
        (p[2] != 0 && p[2] != 1) ||
        (p[0] ? c->n->n_in != 8u && c->n->n_in != 9u
              : c->n->n_in != 2u + (uint32_t)p[1] + (uint32_t)p[2]))
        return node_err(c, -EINVAL, "quantized matmul parameters do not fit");
    uint32_t ib = p[0] ? 3 : 1;
    const struct plan_tensor *a = operand(c, 0), *b = operand(c, ib), *dst = dst_of(c);
    int64_t m = a->rank >= 2 ? a->dims[a->rank - 2] : 0,
            n = b->rank >= 2 ? b->dims[b->rank - 1] : 0;
    int ok = is_q8(a->dtype) && is_q8(b->dtype) && plain_of_dtype(a, a->dtype) &&
             plain_of_dtype(b, b->dtype) && qmatmul_shapes_ok(a, b, dst);
    if (ok && !p[0])
        ok = dst->dtype == ENGINE_I32 && (!p[1] || small_operand_ok(c, 2, a->dtype, m)) &&
             (!p[2] || small_operand_ok(c, 2 + (uint32_t)p[1], b->dtype, n));
    else if (ok)
        ok = is_q8(dst->dtype) && small_operand_ok(c, 1, ENGINE_F32, 1) &&
             small_operand_ok(c, 2, a->dtype, 1) && small_operand_ok(c, 4, ENGINE_F32, 1) &&
             small_operand_ok(c, 5, b->dtype, 1) && small_operand_ok(c, 6, ENGINE_F32, 1) &&
             small_operand_ok(c, 7, dst->dtype, 1);
    return ok ? 0 : node_err(c, -EINVAL, "quantized matmul shapes or dtypes do not fit");
}

static int det_check(const struct node_ctx *c)
{
    const struct plan_tensor *x = operand(c, 0), *dst = dst_of(c);
    if (c->n->n_params || !plain_of_dtype(x, ENGINE_F32) || dst->dtype != ENGINE_F32 ||
        x->rank < 2 || x->dims[x->rank - 1] != x->dims[x->rank - 2] ||
        x->dims[x->rank - 1] > K_DET_MAX ||
        numel_of(dst) * x->dims[x->rank - 1] * x->dims[x->rank - 1] != numel_of(x))
        return node_err(c, -EINVAL, "determinant input or output shape does not fit");
    return 0;
}

static int mvn_check(const struct node_ctx *c, const int32_t *p)
{
    const struct plan_tensor *x = operand(c, 0), *dst = dst_of(c);
    struct engine_shape xs;
    struct kp_reduce q;
    shape_of(x, &xs);
    if (kp_decode_reduce(p, c->n->n_params, (int)x->rank, 0, &q) ||
        !plain_of_dtype(x, ENGINE_F32) || dst->dtype != ENGINE_F32 || !dims_equal(dst, &xs))
        return node_err(c, -EINVAL, "mean-variance normalization parameters do not fit");
    return 0;
}

static int dft_check(const struct node_ctx *c, const int32_t *p)
{
    const struct plan_tensor *x = operand(c, 0), *dst = dst_of(c);
    int64_t axis = c->n->axis, r = x->rank;
    struct kp_dft q;
    if (kp_decode_dft(p, c->n->n_params, &q) || !plain_of_dtype(x, ENGINE_F32) ||
        dst->dtype != ENGINE_F32 || r < 3 || dst->rank != r || axis < 1 || axis > r - 2 ||
        (x->dims[r - 1] != 1 && x->dims[r - 1] != 2) || dst->dims[r - 1] != 2)
        return node_err(c, -EINVAL, "DFT axis, dtypes or parameters do not fit");
    for (int64_t i = 0; i < r - 1; i++) {
        int64_t want = i != axis ? x->dims[i] : q.onesided ? x->dims[i] / 2 + 1 : x->dims[i];
        if (dst->dims[i] != want)
            return node_err(c, -EINVAL, "DFT output shape does not follow from its input");
    }
    return 0;
}

/* Geometry of a quantized convolution: taps are bounds-checked by the kernel, so the parameters
 * need only be sane and the tensors consistent. */
static int qconv_geometry_ok(const struct plan_tensor *x, const struct plan_tensor *w,
                             const struct plan_tensor *dst, const int32_t *p)
{
    int32_t group = p[3], sp = p[4];
    if (x->rank != (uint32_t)sp + 2 || w->rank != x->rank || dst->rank != x->rank || group < 1 ||
        x->dims[1] % group || w->dims[0] % group || w->dims[1] * group != x->dims[1] ||
        dst->dims[0] != x->dims[0] || dst->dims[1] != w->dims[0])
        return 0;
    for (int32_t i = 0; i < 3 * sp; i++)
        if (p[5 + i] < (i < 2 * sp ? 1 : 0) || p[5 + i] > (1 << 20))
            return 0;
    return 1;
}

static int qconv_check(const struct node_ctx *c, const int32_t *p)
{
    uint32_t np = c->n->n_params;
    if (np < 5 || p[4] < 1 || p[4] > 3 || np != 5u + 3u * (uint32_t)p[4] ||
        p[0] < 0 || p[0] > 2 || (p[1] != 0 && p[1] != 1) || (p[2] != 0 && p[2] != 1) ||
        (p[0] ? c->n->n_in != 8u && c->n->n_in != 9u
              : c->n->n_in != 2u + (uint32_t)p[1] + (uint32_t)p[2]))
        return node_err(c, -EINVAL, "quantized convolution parameters do not fit");
    const struct plan_tensor *x = operand(c, 0), *w = operand(c, p[0] ? 3 : 1), *dst = dst_of(c);
    int64_t m = w->rank ? w->dims[0] : 0;
    int ok = is_q8(x->dtype) && is_q8(w->dtype) && plain_of_dtype(x, x->dtype) &&
             plain_of_dtype(w, w->dtype) && qconv_geometry_ok(x, w, dst, p);
    if (ok && !p[0])
        ok = dst->dtype == ENGINE_I32 && (!p[1] || small_operand_ok(c, 2, x->dtype, 1)) &&
             (!p[2] || small_operand_ok(c, 2 + (uint32_t)p[1], w->dtype, m));
    else if (ok)
        ok = is_q8(dst->dtype) && small_operand_ok(c, 1, ENGINE_F32, 1) &&
             small_operand_ok(c, 2, x->dtype, 1) && small_operand_ok(c, 4, ENGINE_F32, m) &&
             small_operand_ok(c, 5, w->dtype, m) && small_operand_ok(c, 6, ENGINE_F32, 1) &&
             small_operand_ok(c, 7, dst->dtype, 1) &&
             (c->n->n_in == 8 || (small_operand_ok(c, 8, ENGINE_I32, m) &&
                                  numel_of(operand(c, 8)) == m)); /* B: one per channel */
    return ok ? 0 : node_err(c, -EINVAL, "quantized convolution shapes or dtypes do not fit");
}

static int einsum_check(const struct node_ctx *c, const int32_t *p)
{
    const struct plan_tensor *dst = dst_of(c);
    struct engine_shape shapes[K_EINSUM_MAX_IN], out;
    int ok = k_einsum_dtype_ok((int)dst->dtype) && c->n->n_in <= K_EINSUM_MAX_IN;
    for (uint32_t i = 0; ok && i < c->n->n_in; i++) {
        ok = plain_of_dtype(operand(c, i), dst->dtype);
        shape_of(operand(c, i), &shapes[i]);
    }
    if (!ok || k_einsum_check(p, (int)c->n->n_params, shapes, (int)c->n->n_in, &out) ||
        !dims_equal(dst, &out))
        return node_err(c, -EINVAL, "einsum spec, shapes or dtypes do not fit");
    return 0;
}

static int stft_check(const struct node_ctx *c, const int32_t *p)
{
    const struct plan_tensor *x = operand(c, 0), *dst = dst_of(c);
    struct kp_stft q;
    if (kp_decode_stft(p, c->n->n_params, &q) || x->rank != 3 || !plain_of_dtype(x, ENGINE_F32) ||
        (x->dims[2] != 1 && x->dims[2] != 2) || (q.onesided && x->dims[2] == 2) ||
        q.length > x->dims[1] || dst->dtype != ENGINE_F32 ||
        (c->n->n_in == 2 &&
         (!plain_of_dtype(operand(c, 1), ENGINE_F32) || numel_of(operand(c, 1)) != q.length)))
        return node_err(c, -EINVAL, "STFT signal, window or parameters do not fit");
    int64_t want[4] = {x->dims[0], (x->dims[1] - q.length) / q.step + 1,
                       q.onesided ? q.length / 2 + 1 : q.length, 2};
    struct engine_shape ws = {.rank = 4};
    memcpy(ws.dims, want, sizeof(want));
    return dims_equal(dst, &ws) ? 0 : node_err(c, -EINVAL, "STFT output shape is wrong");
}

static int math_kernel_check(const struct node_ctx *c)
{
    const struct plan_node *n = c->n;
    static const uint8_t min_in[] = {1, 1, 1, 1, 2, 1, 2, 2, 1, 3, 2,
                                     1, 2, 1, 2, 1, 1, 1, 2, 2, 1, 1},
                         max_in[] = {1, 1, 1, 1, 2, 8, 3, 3, 3, 3, 2,
                                     1, 3, 1, 8, 1, 1, 1, 9, 2, 8, 2};
    uint32_t k = n->alg - PLAN_K_UNARY;
    if (n->n_in < min_in[k] || n->n_in > max_in[k] || n->params_first > c->v->n_index ||
        n->n_params > c->v->n_index - n->params_first ||
        (n->n_params < 1 && n->alg != PLAN_K_INSTNORM && n->alg != PLAN_K_DET) || n->n_post ||
        n->sum_tensor != PLAN_NONE ||
        (dst_of(c)->layout != PLAN_LAYOUT_PLAIN && n->alg != PLAN_K_DYNQUANT &&
         n->alg != PLAN_K_QUANTIZE))
        return node_err(c, -EINVAL, "kernel inputs or parameters out of range");
    const int32_t *p = c->v->index + n->params_first;
    switch (n->alg) {
    case PLAN_K_UNARY:
        return unary_check(c, p);
    case PLAN_K_REDUCE:
        return math_reduce_check(c, p);
    case PLAN_K_ARGEXT:
        return argext_check(c, p);
    case PLAN_K_SOFTMAX_F:
        return softmax_f_check(c, p);
    case PLAN_K_LOGIC:
        return logic_check(c, p);
    case PLAN_K_VARIADIC:
        return variadic_check(c, p);
    case PLAN_K_LAYERNORM:
        return layernorm_k_check(c, p);
    case PLAN_K_CLIP:
        return clip_check(c, p);
    case PLAN_K_INSTNORM:
        return instnorm_check(c);
    case PLAN_K_ARITH:
        return arith_check(c, p);
    case PLAN_K_TOPK:
        return topk_check(c, p);
    case PLAN_K_QUANTIZE:
        return quantize_check(c, p);
    case PLAN_K_DYNQUANT:
        return dynquant_check(c, p);
    case PLAN_K_QMATMUL:
        return qmatmul_check(c, p);
    case PLAN_K_DET:
        return det_check(c);
    case PLAN_K_MVN:
        return mvn_check(c, p);
    case PLAN_K_DFT:
        return dft_check(c, p);
    case PLAN_K_QCONV:
        return qconv_check(c, p);
    case PLAN_K_EINSUM:
        return einsum_check(c, p);
    case PLAN_K_STFT:
        return stft_check(c, p);
    case PLAN_K_NLL:
        return nll_check(c, p);
    default:
        return node_err(c, -EINVAL, "unknown kernel");
    }
}

/* ---- data-movement kernels (kernels_move.c) ---- */

static int is_index(const struct plan_tensor *t)
{
    return plain_of_dtype(t, ENGINE_I32) || plain_of_dtype(t, ENGINE_I64);
}

static int same_tensor_dims(const struct plan_tensor *a, const struct plan_tensor *b)
{
    return a->rank == b->rank && memcmp(a->dims, b->dims, a->rank * sizeof(a->dims[0])) == 0;
}

/* GatherElements / ScatterElements: indices (and updates) share data's rank and fit inside
 * it off the axis; the kernel checks the index values along it. */
static int elements_check(const struct node_ctx *c, const int32_t *p, int scatter)
{
    const struct plan_tensor *data = operand(c, 0), *idx = operand(c, 1), *dst = dst_of(c);
    const struct plan_tensor *upd = scatter ? operand(c, 2) : NULL;
    int64_t axis = c->n->axis;
    struct kp_scatter q;
    int ok = is_index(idx) && idx->rank == data->rank && axis >= 0 && axis < data->rank &&
             same_tensor_dims(dst, scatter ? data : idx) &&
             (scatter ? kp_decode_scatter(p, c->n->n_params, &q) == 0 &&
                            plain_of_dtype(upd, dst->dtype) && same_tensor_dims(upd, idx) &&
                            k_reduction_ok(q.red, (int)dst->dtype)
                      : c->n->n_params == 0);
    for (uint32_t d = 0; ok && d < idx->rank; d++)
        ok = d == axis || idx->dims[d] <= data->dims[d];
    return ok ? 0 : node_err(c, -EINVAL, "element gather/scatter operands do not fit");
}

/* GatherND: dst = data[:b] + idx[b:-1] + data[b+k:]. */
static int gather_nd_check(const struct node_ctx *c, const int32_t *p)
{
    const struct plan_tensor *data = operand(c, 0), *idx = operand(c, 1), *dst = dst_of(c);
    struct kp_gather_nd q;
    int64_t b = kp_decode_gather_nd(p, c->n->n_params, &q) ? -1 : q.batch_dims;
    int64_t k = idx->rank ? idx->dims[idx->rank - 1] : 0;
    if (!is_index(idx) || b < 0 || b >= idx->rank || k < 1 || b + k > data->rank ||
        dst->rank != idx->rank - 1 + data->rank - b - k)
        return node_err(c, -EINVAL, "gather_nd operands do not fit");
    uint32_t o = 0;
    int ok = 1;
    for (int64_t d = 0; d < b; d++)
        ok &= idx->dims[d] == data->dims[d] && dst->dims[o++] == data->dims[d];
    for (int64_t d = b; d < idx->rank - 1; d++)
        ok &= dst->dims[o++] == idx->dims[d];
    for (int64_t d = b + k; d < data->rank; d++)
        ok &= dst->dims[o++] == data->dims[d];
    return ok ? 0 : node_err(c, -EINVAL, "gather_nd output shape does not follow from its inputs");
}

/* ScatterND: updates = idx[:-1] + data[k:], dst = data. */
static int scatter_nd_check(const struct node_ctx *c, const int32_t *p)
{
    const struct plan_tensor *data = operand(c, 0), *idx = operand(c, 1), *upd = operand(c, 2);
    const struct plan_tensor *dst = dst_of(c);
    int64_t k = idx->rank ? idx->dims[idx->rank - 1] : 0;
    struct kp_scatter q;
    int ok = is_index(idx) && kp_decode_scatter(p, c->n->n_params, &q) == 0 &&
             k_reduction_ok(q.red, (int)dst->dtype) && k >= 1 && k <= data->rank &&
             plain_of_dtype(upd, dst->dtype) && same_tensor_dims(dst, data) &&
             upd->rank == idx->rank - 1 + data->rank - k;
    uint32_t o = 0;
    for (uint32_t d = 0; ok && d + 1 < idx->rank; d++)
        ok = upd->dims[o++] == idx->dims[d];
    for (int64_t d = k; ok && d < data->rank; d++)
        ok = upd->dims[o++] == data->dims[d];
    return ok ? 0 : node_err(c, -EINVAL, "scatter_nd operands do not fit");
}

static int trilu_check(const struct node_ctx *c, const int32_t *p)
{
    const struct plan_tensor *src = operand(c, 0), *k = operand(c, 1), *dst = dst_of(c);
    struct kp_trilu t;
    if (src->rank < 2 || !same_tensor_dims(src, dst) || !plain_of_dtype(k, ENGINE_I64) ||
        k->nbytes != sizeof(int64_t) || kp_decode_trilu(p, c->n->n_params, &t))
        return node_err(c, -EINVAL, "trilu operands do not fit");
    return 0;
}

static int depth_space_check(const struct node_ctx *c, const int32_t *p)
{
    const struct plan_tensor *src = operand(c, 0), *dst = dst_of(c);
    struct kp_depth_space d;
    if (kp_decode_depth_space(p, c->n->n_params, &d) || src->rank != 4 || dst->rank != 4)
        return node_err(c, -EINVAL, "depth/space parameters do not fit");
    int64_t b = d.block, bb = b * b;
    const struct plan_tensor *depth = d.mode == K_SPACE_TO_DEPTH ? dst : src;
    const struct plan_tensor *space = d.mode == K_SPACE_TO_DEPTH ? src : dst;
    int ok = depth->dims[0] == space->dims[0] && depth->dims[1] == space->dims[1] * bb &&
             space->dims[2] == depth->dims[2] * b && space->dims[3] == depth->dims[3] * b;
    return ok ? 0 : node_err(c, -EINVAL, "depth/space shapes do not follow from the block size");
}

static int tile_check(const struct node_ctx *c)
{
    const struct plan_tensor *src = operand(c, 0), *dst = dst_of(c);
    int ok = src->rank == dst->rank && !c->n->n_params;
    for (uint32_t d = 0; ok && d < src->rank; d++)
        ok = src->dims[d] ? dst->dims[d] % src->dims[d] == 0 : dst->dims[d] == 0;
    return ok ? 0 : node_err(c, -EINVAL, "tile output is not a multiple of its input");
}

/* ConvTranspose: the kernel drops taps outside y, so only the operand shapes need to agree. */
static int conv_transpose_check(const struct node_ctx *c, const int32_t *p)
{
    const struct plan_tensor *x = operand(c, 0), *w = operand(c, 1), *y = dst_of(c);
    const struct plan_tensor *b = c->n->n_in > 2 ? operand(c, 2) : NULL;
    struct k_deconv d;
    uint32_t sp = x->rank - 2;
    int ok = kp_decode_deconv(p, c->n->n_params, &d) == 0 && x->rank >= 3 && x->rank <= 5 &&
             x->dtype == ENGINE_F32 && plain_of_dtype(w, ENGINE_F32) && w->rank == x->rank &&
             y->rank == x->rank && d.sp == (int)sp && x->dims[1] % d.group == 0 &&
             w->dims[0] == x->dims[1] && y->dims[0] == x->dims[0] &&
             y->dims[1] == w->dims[1] * d.group &&
             (!b || (plain_of_dtype(b, ENGINE_F32) && b->rank == 1 && b->dims[0] == y->dims[1]));
    for (uint32_t i = 0; ok && i < sp; i++)
        ok = x->dims[2 + i] <= INT32_MAX && w->dims[2 + i] <= INT32_MAX &&
             y->dims[2 + i] <= INT32_MAX;
    return ok ? 0 : node_err(c, -EINVAL, "conv-transpose operands or parameters do not fit");
}

static int lrn_check(const struct node_ctx *c, const int32_t *p)
{
    const struct plan_tensor *x = operand(c, 0), *y = dst_of(c);
    struct kp_lrn r;
    if (x->dtype != ENGINE_F32 || x->rank < 2 || !same_tensor_dims(x, y) ||
        kp_decode_lrn(p, c->n->n_params, &r))
        return node_err(c, -EINVAL, "lrn operands or parameters do not fit");
    return 0;
}

static int grid_sample_check(const struct node_ctx *c, const int32_t *p)
{
    const struct plan_tensor *x = operand(c, 0), *g = operand(c, 1), *y = dst_of(c);
    struct k_grid kp;
    int ok = kp_decode_grid(p, c->n->n_params, &kp) == 0 && x->dtype == ENGINE_F32 &&
             x->rank == 4 && plain_of_dtype(g, ENGINE_F32) && g->rank == 4 && y->rank == 4 &&
             g->dims[0] == x->dims[0] && g->dims[3] == 2 && y->dims[0] == x->dims[0] &&
             y->dims[1] == x->dims[1] && y->dims[2] == g->dims[1] && y->dims[3] == g->dims[2] &&
             (x->dims[2] > 0 || !y->dims[2] || !y->dims[3]) &&
             (x->dims[3] > 0 || !y->dims[2] || !y->dims[3]);
    return ok ? 0 : node_err(c, -EINVAL, "grid-sample operands or parameters do not fit");
}

static int reverse_seq_check(const struct node_ctx *c, const int32_t *p)
{
    const struct plan_tensor *x = operand(c, 0), *len = operand(c, 1), *y = dst_of(c);
    struct kp_reverse_seq q;
    int ok = x->rank >= 2 && same_tensor_dims(x, y) &&
             kp_decode_reverse_seq(p, c->n->n_params, &q) == 0 && is_index(len) && len->rank == 1 &&
             len->dims[0] == x->dims[q.batch_axis];
    return ok ? 0 : node_err(c, -EINVAL, "reverse-sequence operands do not fit");
}

static int max_unpool_check(const struct node_ctx *c)
{
    const struct plan_tensor *x = operand(c, 0), *idx = operand(c, 1);
    if (!plain_of_dtype(idx, ENGINE_I64) || !same_tensor_dims(x, idx) || c->n->n_params)
        return node_err(c, -EINVAL, "max-unpool operands do not fit");
    return 0;
}

static int cumsum_check(const struct node_ctx *c, const int32_t *p)
{
    const struct plan_tensor *x = operand(c, 0), *ax = operand(c, 1), *y = dst_of(c);
    struct kp_cumsum q;
    int ok = same_tensor_dims(x, y) && k_cumsum_ok((int)x->dtype) && is_index(ax) &&
             ax->nbytes == engine_dtype_size((int)ax->dtype) &&
             kp_decode_cumsum(p, c->n->n_params, &q) == 0;
    return ok ? 0 : node_err(c, -EINVAL, "cumsum operands or parameters do not fit");
}

static int dims_are(const struct plan_tensor *t, uint32_t rank, int64_t d0, int64_t d1, int64_t d2,
                    int64_t d3)
{
    int64_t d[4] = {d0, d1, d2, d3};
    if (t->rank != rank)
        return 0;
    for (uint32_t i = 0; i < rank; i++)
        if (t->dims[i] != d[i])
            return 0;
    return 1;
}

/* RNN/GRU/LSTM: every operand's shape follows from x, w and the parameters. */
static int rnn_check(const struct node_ctx *c, const int32_t *p)
{
    static const int gates[] = {1, 3, 4};
    const struct plan_tensor *x = operand(c, 0), *w = operand(c, 1), *r = operand(c, 2);
    const struct plan_tensor *y = dst_of(c);
    struct kp_rnn q;
    if (kp_decode_rnn(p, c->n->n_params, &q) || x->rank != 3 || x->dtype != ENGINE_F32 ||
        y->dtype != ENGINE_F32)
        return node_err(c, -EINVAL, "rnn parameters do not fit");
    int64_t g = gates[q.kind], h = q.hidden, dirs = q.direction == K_RNN_BIDIRECTIONAL ? 2 : 1;
    int64_t seq = x->dims[q.layout ? 1 : 0], batch = x->dims[q.layout ? 0 : 1], in = x->dims[2];
    int64_t sb0 = q.layout ? batch : dirs, sb1 = q.layout ? dirs : batch;
    int ok = plain_of_dtype(w, ENGINE_F32) && plain_of_dtype(r, ENGINE_F32) &&
             dims_are(w, 3, dirs, g * h, in, 0) && dims_are(r, 3, dirs, g * h, h, 0) &&
             (q.which    ? dims_are(y, 3, sb0, sb1, h, 0)
              : q.layout ? dims_are(y, 4, batch, seq, dirs, h)
                         : dims_are(y, 4, seq, dirs, batch, h));
    uint32_t k = 3;
    for (int bit = 0; ok && bit < 5; bit++) {
        if (!(q.present & (1 << bit)))
            continue;
        if (k >= c->n->n_in)
            return node_err(c, -EINVAL, "rnn inputs do not match the presence mask");
        const struct plan_tensor *t = operand(c, k++);
        ok = bit == 1 ? plain_of_dtype(t, ENGINE_I32) && dims_are(t, 1, batch, 0, 0, 0)
                      : plain_of_dtype(t, ENGINE_F32) &&
                            (bit == 0   ? dims_are(t, 2, dirs, 2 * g * h, 0, 0)
                             : bit == 4 ? dims_are(t, 2, dirs, 3 * h, 0, 0)
                                        : dims_are(t, 3, sb0, sb1, h, 0));
    }
    return ok && k == c->n->n_in ? 0 : node_err(c, -EINVAL, "rnn operands do not fit");
}

/* Every sample is clamped into the input, so shapes need only agree in rank and emptiness. */
static int resize_check(const struct node_ctx *c, const int32_t *p)
{
    const struct plan_tensor *x = operand(c, 0), *y = dst_of(c);
    struct k_resize z;
    int ok = x->dtype == ENGINE_F32 && y->rank == x->rank &&
             kp_decode_resize(p, c->n->n_params, (int)x->rank, &z) == 0;
    for (uint32_t d = 0; ok && d < x->rank; d++)
        ok = x->dims[d] > 0 || y->dims[d] == 0;
    return ok ? 0 : node_err(c, -EINVAL, "resize operands or parameters do not fit");
}

static int roi_align_check(const struct node_ctx *c, const int32_t *p)
{
    const struct plan_tensor *x = operand(c, 0), *r = operand(c, 1), *b = operand(c, 2);
    const struct plan_tensor *y = dst_of(c);
    struct k_roi kp;
    int ok = kp_decode_roi(p, c->n->n_params, c->n->alpha, &kp) == 0 && x->dtype == ENGINE_F32 &&
             x->rank == 4 && plain_of_dtype(r, ENGINE_F32) && dims_are(r, 2, y->dims[0], 4, 0, 0) &&
             plain_of_dtype(b, ENGINE_I64) && dims_are(b, 1, y->dims[0], 0, 0, 0) && y->rank == 4 &&
             y->dims[1] == x->dims[1] && y->dims[2] > 0 && y->dims[3] > 0 &&
             (y->dims[0] == 0 || (x->dims[2] > 0 && x->dims[3] > 0));
    return ok ? 0 : node_err(c, -EINVAL, "roi-align operands or parameters do not fit");
}

/* MaxPool with Indices: taps outside x are skipped, so only shapes and counts matter. */
static int maxpool_idx_check(const struct node_ctx *c, const int32_t *p)
{
    const struct plan_tensor *x = operand(c, 0), *y = dst_of(c);
    struct kp_maxpool_idx m;
    int ok = kp_decode_maxpool_idx(p, c->n->n_params, &m) == 0 && x->dtype == ENGINE_F32 &&
             x->rank >= 3 && x->rank <= 5 && y->rank == x->rank && m.pool.sp == (int)x->rank - 2 &&
             y->dtype == (m.which ? ENGINE_I64 : ENGINE_F32) && y->dims[0] == x->dims[0] &&
             y->dims[1] == x->dims[1];
    return ok ? 0 : node_err(c, -EINVAL, "maxpool-indices operands or parameters do not fit");
}

static int onehot_check(const struct node_ctx *c, const int32_t *p)
{
    const struct plan_tensor *idx = operand(c, 0), *val = operand(c, 1), *y = dst_of(c);
    struct kp_onehot q;
    int ok = kp_decode_onehot(p, c->n->n_params, &q) == 0 && (uint32_t)q.axis <= idx->rank &&
             y->rank == idx->rank + 1 && plain_of_dtype(val, y->dtype) &&
             val->nbytes == 2 * engine_dtype_size((int)y->dtype) &&
             (plain_of_dtype(idx, ENGINE_I32) || plain_of_dtype(idx, ENGINE_I64) ||
              plain_of_dtype(idx, ENGINE_F32));
    for (uint32_t d = 0, k = 0; ok && d < y->rank; d++)
        ok = d == (uint32_t)q.axis ? y->dims[d] == q.depth : y->dims[d] == idx->dims[k++];
    return ok ? 0 : node_err(c, -EINVAL, "one-hot operands or parameters do not fit");
}

static int move_kernel_check(const struct node_ctx *c)
{
    static const struct {
        uint32_t kind, n_in;
    } arity[] = {{PLAN_K_GATHER_ELEMENTS, 2},
                 {PLAN_K_SCATTER_ELEMENTS, 3},
                 {PLAN_K_GATHER_ND, 2},
                 {PLAN_K_SCATTER_ND, 3},
                 {PLAN_K_TRILU, 2},
                 {PLAN_K_DEPTH_SPACE, 1},
                 {PLAN_K_TILE, 1},
                 {PLAN_K_CONV_TRANSPOSE, 3},
                 {PLAN_K_LRN, 1},
                 {PLAN_K_GRID_SAMPLE, 2},
                 {PLAN_K_REVERSE_SEQ, 2},
                 {PLAN_K_MAX_UNPOOL, 2},
                 {PLAN_K_CUMSUM, 2},
                 {PLAN_K_RNN, 8},
                 {PLAN_K_RESIZE, 1},
                 {PLAN_K_ROI_ALIGN, 3},
                 {PLAN_K_MAXPOOL_IDX, 1},
                 {PLAN_K_ONEHOT, 2}};
    const struct plan_node *n = c->n;
    const struct plan_view *v = c->v;
    size_t i = 0;
    while (i < ARRAY_LEN(arity) && arity[i].kind != n->alg)
        i++;
    uint32_t min_in = n->alg == PLAN_K_CONV_TRANSPOSE ? 2
                      : n->alg == PLAN_K_RNN          ? 3
                                                      : arity[i < ARRAY_LEN(arity) ? i : 0].n_in;
    if (i == ARRAY_LEN(arity) || n->n_in < min_in || n->n_in > arity[i].n_in ||
        n->params_first > v->n_index || n->n_params > v->n_index - n->params_first || n->n_post ||
        n->sum_tensor != PLAN_NONE)
        return node_err(c, -EINVAL, "kernel inputs or parameters out of range");
    for (uint32_t k = 0; k < n->n_in; k++)
        if (plan_input(v, n, k) < 0)
            return node_err(c, -EINVAL, "kernel input missing");
    const struct plan_tensor *src = operand(c, 0), *dst = dst_of(c);
    if ((n->alg != PLAN_K_MAXPOOL_IDX && n->alg != PLAN_K_ONEHOT &&
         !plain_of_dtype(src, dst->dtype)) ||
        src->storage == PLAN_ST_PACKED || src->layout != PLAN_LAYOUT_PLAIN ||
        dst->layout != PLAN_LAYOUT_PLAIN)
        return node_err(c, -EINVAL, "kernel operands must be plain and of one dtype");
    const int32_t *p = v->index + n->params_first;
    switch (n->alg) {
    case PLAN_K_GATHER_ELEMENTS:
        return elements_check(c, p, 0);
    case PLAN_K_SCATTER_ELEMENTS:
        return elements_check(c, p, 1);
    case PLAN_K_GATHER_ND:
        return gather_nd_check(c, p);
    case PLAN_K_SCATTER_ND:
        return scatter_nd_check(c, p);
    case PLAN_K_TRILU:
        return trilu_check(c, p);
    case PLAN_K_DEPTH_SPACE:
        return depth_space_check(c, p);
    case PLAN_K_CONV_TRANSPOSE:
        return conv_transpose_check(c, p);
    case PLAN_K_LRN:
        return lrn_check(c, p);
    case PLAN_K_GRID_SAMPLE:
        return grid_sample_check(c, p);
    case PLAN_K_REVERSE_SEQ:
        return reverse_seq_check(c, p);
    case PLAN_K_MAX_UNPOOL:
        return max_unpool_check(c);
    case PLAN_K_CUMSUM:
        return cumsum_check(c, p);
    case PLAN_K_RNN:
        return rnn_check(c, p);
    case PLAN_K_RESIZE:
        return resize_check(c, p);
    case PLAN_K_ROI_ALIGN:
        return roi_align_check(c, p);
    case PLAN_K_MAXPOOL_IDX:
        return maxpool_idx_check(c, p);
    case PLAN_K_ONEHOT:
        return onehot_check(c, p);
    default:
        return tile_check(c);
    }
}

/* A BRANCH node (ops/control.c) reads one bool, writes nothing (out names the condition) and
 * jumps only forward, to a node of this plan or just past its last: a run always ends. */
static int branch_check(const struct node_ctx *c)
{
    const struct plan_view *v = c->v;
    const struct plan_node *n = c->n;
    if (n->n_in != 1 || n->n_params != 2 || n->params_first > v->n_index ||
        n->n_params > v->n_index - n->params_first || n->n_post || n->sum_tensor != PLAN_NONE ||
        plan_input(v, n, 0) < 0 || (uint32_t)plan_input(v, n, 0) != n->out)
        return node_err(c, -EINVAL, "branch operands or parameters out of range");
    const struct plan_tensor *cond = operand(c, 0);
    if (!plain_of_dtype(cond, ENGINE_BOOL) || cond->nbytes != 1)
        return node_err(c, -EINVAL, "a branch condition is one bool");
    const int32_t *p = v->index + n->params_first;
    if (n < v->nodes || n >= v->nodes + v->n_nodes)
        return node_err(c, -EINVAL, "branch node outside the node table");
    int64_t k = n - v->nodes;
    if (p[0] <= k || (int64_t)p[0] > (int64_t)v->n_nodes || (p[1] != 0 && p[1] != 1))
        return node_err(c, -EINVAL, "branch target must be a later node of the plan");
    return 0;
}

/* ---- loops (ops/loop.c): the node-local part; plan_loops_check the structure ---- */

/* One element of dtype, plain, not packed. */
static int one_of(const struct plan_tensor *t, uint32_t dtype)
{
    return plain_of_dtype(t, dtype) && t->nbytes == engine_dtype_size((int)dtype);
}

/* LOOP, LOOP_END and SCAN_SLICE: operands and parameters (the jumps are plan_loops_check's). */
static int loop_node_check(const struct node_ctx *c)
{
    const struct plan_view *v = c->v;
    const struct plan_node *n = c->n;
    if (n->params_first > v->n_index || n->n_params > v->n_index - n->params_first || n->n_post ||
        n->sum_tensor != PLAN_NONE || n < v->nodes || n >= v->nodes + v->n_nodes)
        return node_err(c, -EINVAL, "loop node operands or parameters out of range");
    const int32_t *p = v->index + n->params_first;
    int64_t k = n - v->nodes;
    for (uint32_t i = 0; i < n->n_in; i++)
        if (plan_input(v, n, i) < 0)
            return node_err(c, -EINVAL, "loop node input missing");
    const struct plan_tensor *dst = dst_of(c);
    if (n->alg == PLAN_K_SCAN_SLICE) {
        struct kp_scan_slice q;
        if (kp_decode_scan_slice(p, n->n_params, &q) || n->n_in != 1 || q.begin >= k)
            return node_err(c, -EINVAL, "scan slice parameters out of range");
        const struct plan_tensor *src = operand(c, 0);
        const struct plan_tensor *full = q.write ? dst : src, *slice = q.write ? src : dst;
        uint64_t part = (uint64_t)q.outer * (uint64_t)q.inner; /* < 2^62: no overflow */
        if (!plain_of_dtype(src, dst->dtype) || dst->storage != PLAN_ST_ARENA ||
            slice->nbytes != part || full->nbytes / (uint64_t)q.len != part ||
            full->nbytes % (uint64_t)q.len)
            return node_err(c, -EINVAL, "scan slice sizes do not fit its tensors");
        return 0;
    }
    int end = n->alg == PLAN_K_LOOP_END;
    struct kp_loop q = {0};
    struct kp_loop_end e = {0};
    if (end ? kp_decode_loop_end(p, n->n_params, &e) : kp_decode_loop(p, n->n_params, &q))
        return node_err(c, -EINVAL, "loop parameters out of range");
    uint32_t want = end ? 1u + (uint32_t)e.has_cond : 1u + (uint32_t)(q.has_trip + q.has_cond);
    if (n->n_in != want || (uint32_t)plan_input(v, n, 0) != n->out || !one_of(dst, ENGINE_I64) ||
        dst->storage != PLAN_ST_ARENA || (end ? e.begin >= k : q.end <= k))
        return node_err(c, -EINVAL, "loop operands out of range");
    if (!end && q.has_trip && !one_of(operand(c, 1), ENGINE_I64))
        return node_err(c, -EINVAL, "a loop trip count is one int64");
    if ((end ? e.has_cond : q.has_cond) && !one_of(operand(c, n->n_in - 1), ENGINE_BOOL))
        return node_err(c, -EINVAL, "a loop condition is one bool");
    return 0;
}

/* SLICE_DYN: dst is src with a shorter (or equal) axis; the start is checked per run. */
static int slice_dyn_check(const struct node_ctx *c)
{
    const struct plan_view *v = c->v;
    const struct plan_node *n = c->n;
    if (n->n_in != 2 || n->n_params || n->n_post || n->sum_tensor != PLAN_NONE ||
        plan_input(v, n, 0) < 0 || plan_input(v, n, 1) < 0)
        return node_err(c, -EINVAL, "dynamic slice operands out of range");
    const struct plan_tensor *src = operand(c, 0), *st = operand(c, 1), *dst = dst_of(c);
    int ok = plain_of_dtype(src, dst->dtype) && dst->layout == PLAN_LAYOUT_PLAIN &&
             (one_of(st, ENGINE_I64) || one_of(st, ENGINE_I32)) && n->axis >= 0 &&
             n->axis < src->rank && dst->rank == src->rank;
    for (uint32_t i = 0; ok && i < src->rank; i++)
        ok = i == (uint32_t)n->axis ? dst->dims[i] <= src->dims[i] : dst->dims[i] == src->dims[i];
    return ok ? 0 : node_err(c, -EINVAL, "dynamic slice shapes do not fit");
}

static int loop_err(char *err, size_t errlen, uint32_t k, const char *what)
{
    return seterr(err, errlen, -EINVAL, "plan image: node %u: %s", k, what);
}

static int is_kernel(const struct plan_node *n, uint32_t kind)
{
    return n->op == PLAN_OP_KERNEL && n->alg == kind;
}

/* The parameters of node k, a LOOP (LOOP_END) that passed plan_kernel_check. */
static void loop_params(const struct plan_view *v, uint32_t k, struct kp_loop *q)
{
    kp_decode_loop(v->index + v->nodes[k].params_first, v->nodes[k].n_params, q);
}

static void loop_end_params(const struct plan_view *v, uint32_t k, struct kp_loop_end *e)
{
    kp_decode_loop_end(v->index + v->nodes[k].params_first, v->nodes[k].n_params, e);
}

/* A bounded scan output (PLAN_TF_LOOP_BOUND) is written along dim 0 by one SCAN_SLICE. */
static int bound_output_check(const struct plan_view *v, char *err, size_t errlen)
{
    for (uint32_t t = 0; t < v->n_tensors; t++) {
        const struct plan_tensor *pt = &v->tensors[t];
        if (!(pt->flags & PLAN_TF_LOOP_BOUND))
            continue;
        int writers = 0;
        for (uint32_t k = 0; k < v->n_nodes; k++) {
            const struct plan_node *n = &v->nodes[k];
            struct kp_scan_slice q;
            if (!is_kernel(n, PLAN_K_SCAN_SLICE) || n->out != t)
                continue;
            kp_decode_scan_slice(v->index + n->params_first, n->n_params, &q);
            if (!q.write || q.outer != 1 || pt->rank < 1 || pt->dims[0] != q.len ||
                (pt->flags & PLAN_TF_INPUT) || ++writers > 1) {
                writers = -1;
                break;
            }
        }
        if (writers != 1)
            return seterr(err, errlen, -EINVAL,
                          "plan image: bounded scan output %s is not written along dim 0 by one "
                          "scan slice",
                          v->strings + pt->name);
    }
    return 0;
}

int plan_loops_check(const struct plan_view *v, char *err, size_t errlen)
{
    uint32_t nn = v->n_nodes;
    int32_t *reg = malloc(((size_t)nn + 1) * sizeof(*reg)); /* innermost loop: b < k <= end */
    int32_t *stack = malloc(((size_t)nn + 1) * sizeof(*stack));
    int rc = reg && stack ? 0 : seterr(err, errlen, -ENOMEM, "out of memory");
    uint32_t depth = 0;
    for (uint32_t k = 0; !rc && k < nn; k++) { /* every node passed plan_kernel_check */
        const struct plan_node *n = &v->nodes[k];
        struct kp_loop q, outer;
        struct kp_loop_end e;
        struct kp_scan_slice sl;
        reg[k] = depth ? stack[depth - 1] : -1;
        if (is_kernel(n, PLAN_K_LOOP)) {
            kp_decode_loop(v->index + n->params_first, n->n_params, &q);
            if (depth)
                loop_params(v, (uint32_t)stack[depth - 1], &outer);
            if ((uint32_t)q.end >= nn || !is_kernel(&v->nodes[q.end], PLAN_K_LOOP_END) ||
                (loop_end_params(v, (uint32_t)q.end, &e), e.begin != (int)k) ||
                (depth && q.end >= outer.end))
                rc = loop_err(err, errlen, k, "loop region not closed by its own, well nested end");
            stack[depth++] = (int32_t)k;
        } else if (is_kernel(n, PLAN_K_LOOP_END)) {
            loop_end_params(v, k, &e);
            if (!depth || stack[depth - 1] != e.begin)
                rc = loop_err(err, errlen, k, "loop end without its loop");
            depth--;
        } else if (is_kernel(n, PLAN_K_SCAN_SLICE)) {
            kp_decode_scan_slice(v->index + n->params_first, n->n_params, &sl);
            if (reg[k] != sl.begin || (loop_params(v, (uint32_t)sl.begin, &q), q.max > sl.len))
                rc = loop_err(err, errlen, k,
                              "scan slice outside its loop or shorter than its iterations");
        }
    }
    if (!rc && depth)
        rc = loop_err(err, errlen, nn, "loop region not closed");
    if (!rc)
        reg[nn] = -1;
    for (uint32_t k = 0; !rc && k < nn; k++) /* a branch stays inside its loop region */
        if (is_kernel(&v->nodes[k], PLAN_K_BRANCH) &&
            reg[v->index[v->nodes[k].params_first]] != reg[k]) /* target: branch_check's */
            rc = loop_err(err, errlen, k, "branch jumps into or out of a loop region");
    if (!rc)
        rc = bound_output_check(v, err, errlen);
    free(reg);
    free(stack);
    return rc;
}

/* The selection kernels (kernels_select.c): dst is the bound's int64 matrix they fill. */
static int select_check(const struct node_ctx *c)
{
    const struct plan_view *v = c->v;
    const struct plan_node *n = c->n;
    struct kp_nms q = {0};
    int nms = n->alg == PLAN_K_NMS;
    if (n->params_first > v->n_index || n->n_params > v->n_index - n->params_first ||
        (nms && kp_decode_nms(v->index + n->params_first, n->n_params, &q)) ||
        (!nms && n->n_params) || n->n_in != (nms ? 2u + (uint32_t)(q.has_iou + q.has_score) : 1u) ||
        n->n_post || n->sum_tensor != PLAN_NONE)
        return node_err(c, -EINVAL, "selection kernel inputs or parameters out of range");
    for (uint32_t k = 0; k < n->n_in; k++)
        if (plan_input(v, n, k) < 0 || operand(c, k)->layout != PLAN_LAYOUT_PLAIN ||
            operand(c, k)->storage == PLAN_ST_PACKED)
            return node_err(c, -EINVAL, "selection kernel input missing or not plain");
    const struct plan_tensor *x = operand(c, 0), *dst = dst_of(c);
    if (dst->dtype != ENGINE_I64 || dst->rank != 2 || dst->storage != PLAN_ST_ARENA)
        return node_err(c, -EINVAL, "a selection kernel writes an int64 matrix");
    if (!nms) {
        int64_t numel = 1;
        for (uint32_t d = 0; d < x->rank; d++)
            numel *= x->dims[d];
        return x->rank >= 1 && dst->dims[0] == x->rank && dst->dims[1] == numel
                   ? 0
                   : node_err(c, -EINVAL, "NonZero output is not [rank, numel]");
    }
    const struct plan_tensor *sc = operand(c, 1);
    int ok = x->dtype == ENGINE_F32 && sc->dtype == ENGINE_F32 && x->rank == 3 && x->dims[2] == 4 &&
             sc->rank == 3 && sc->dims[0] == x->dims[0] && sc->dims[2] == x->dims[1] &&
             q.max_per_class <= x->dims[1] && dst->dims[1] == 3 &&
             dst->dims[0] == x->dims[0] * sc->dims[1] * q.max_per_class;
    for (uint32_t k = 2; ok && k < n->n_in; k++)
        ok = operand(c, k)->dtype == ENGINE_F32 && operand(c, k)->nbytes == sizeof(float);
    return ok ? 0 : node_err(c, -EINVAL, "NonMaxSuppression operands do not fit");
}

int plan_kernel_check(const struct plan_view *v, const struct plan_node *n, char *err,
                      size_t errlen)
{
    struct node_ctx c = {v, n, err, errlen};
    if (n->alg == PLAN_K_BRANCH)
        return branch_check(&c);
    if (n->alg == PLAN_K_LOOP || n->alg == PLAN_K_LOOP_END || n->alg == PLAN_K_SCAN_SLICE)
        return loop_node_check(&c);
    if (n->alg == PLAN_K_SLICE_DYN)
        return slice_dyn_check(&c);
    if (n->alg == PLAN_K_NMS || n->alg == PLAN_K_NONZERO)
        return select_check(&c);
    if (n->alg >= PLAN_K_UNARY && n->alg <= PLAN_K_STFT)
        return math_kernel_check(&c);
    if (n->alg >= PLAN_K_GATHER_ELEMENTS)
        return move_kernel_check(&c);
    uint32_t want_in = n->alg == PLAN_K_WHERE ? 3
                       : n->alg == PLAN_K_GATHER || n->alg == PLAN_K_BINARY || n->alg == PLAN_K_PAD
                           ? 2
                           : 1;
    if (n->n_in != want_in || n->params_first > v->n_index ||
        n->n_params > v->n_index - n->params_first || n->n_post || n->sum_tensor != PLAN_NONE)
        return node_err(&c, -EINVAL, "kernel inputs or parameters out of range");
    const struct plan_tensor *src = operand(&c, 0), *dst = dst_of(&c);
    const int32_t *p = v->index + n->params_first;
    if (n->alg == PLAN_K_BINARY && plain_of_dtype(src, src->dtype) &&
        dst->layout == PLAN_LAYOUT_PLAIN)
        return binary_kernel_check(&c, p);
    if (n->alg == PLAN_K_CAST)
        return cast_check(&c);
    if (n->alg == PLAN_K_WHERE)
        return where_check(&c);
    if (!plain_of_dtype(src, dst->dtype) || dst->layout != PLAN_LAYOUT_PLAIN)
        return node_err(&c, -EINVAL, "kernel operands must be plain and of one dtype");
    switch (n->alg) {
    case PLAN_K_COPY:
        return src->nbytes == dst->nbytes && !n->n_params
                   ? 0
                   : node_err(&c, -EINVAL, "copy sizes or parameters differ");
    case PLAN_K_REDUCE_MEAN:
        return reduce_check(&c, p);
    case PLAN_K_PAD:
        return pad_check(&c, p);
    case PLAN_K_TRANSPOSE:
        return transpose_check(&c, p);
    case PLAN_K_SLICE:
        return slice_check(&c, p);
    case PLAN_K_GATHER:
        return gather_check(&c);
    default:
        return node_err(&c, -EINVAL, "unknown kernel");
    }
}
