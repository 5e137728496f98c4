/*
 * kernels_math.c — plain-C math operators (see the "kernels_math.c" section of kernels.h).
 *
 * These ops are rare in CNN inference, so the kernels favour exact ONNX semantics over speed:
 * float math in float (double accumulators for sums), integers through int64, broadcasting by
 * the same flat-index decomposition as kernels.c. Every kernel trusts its shapes (kernel_check.c
 * checks them against the buffers) and checks the run-time values it indexes with.
 */
#include "engine/kernels.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- name tables ---- */

static int find_name(const char *const *names, int count, const char *op)
{
    for (int i = 0; i < count; i++)
        if (names[i] && strcmp(names[i], op) == 0)
            return i;
    return -1;
}

int k_unop_find(const char *onnx_op)
{
    static const char *const names[K_UNOP_COUNT_] = {
        [K_NEG] = "Neg",           [K_RECIPROCAL] = "Reciprocal",
        [K_COS] = "Cos",           [K_SIN] = "Sin",
        [K_TAN] = "Tan",           [K_SINH] = "Sinh",
        [K_COSH] = "Cosh",         [K_ASIN] = "Asin",
        [K_ACOS] = "Acos",         [K_ATAN] = "Atan",
        [K_ASINH] = "Asinh",       [K_ACOSH] = "Acosh",
        [K_ATANH] = "Atanh",       [K_CEIL] = "Ceil",
        [K_FLOOR] = "Floor",       [K_ROUND] = "Round",
        [K_SIGN] = "Sign",         [K_ERF] = "Erf",
        [K_LOG] = "Log",           [K_ISINF] = "IsInf",
        [K_ISNAN] = "IsNaN",       [K_THRESHOLDED_RELU] = "ThresholdedRelu",
        [K_SHRINK] = "Shrink",     [K_CELU] = "Celu",
        [K_SOFTSIGN] = "Softsign", [K_SOFTPLUS] = "Softplus",
        [K_NOT] = "Not",           [K_SELU] = "Selu",
    };
    return find_name(names, K_UNOP_COUNT_, onnx_op);
}

void k_unary_attrs(const struct ir_node *n, float *alpha, float *beta)
{
    int op = k_unop_find(n->op);
    *alpha = *beta = 0.0f;
    if (op == K_ISINF) {
        *alpha = (float)ir_attr_int(n, "detect_positive", 1);
        *beta = (float)ir_attr_int(n, "detect_negative", 1);
    } else if (op == K_THRESHOLDED_RELU || op == K_CELU) {
        *alpha = ir_attr_float(n, "alpha", 1.0f);
    } else if (op == K_SHRINK) {
        *alpha = ir_attr_float(n, "lambd", 0.5f);
        *beta = ir_attr_float(n, "bias", 0.0f);
    } else if (op == K_SELU) {
        *alpha = ir_attr_float(n, "alpha", 1.67326319217681884765625f);
        *beta = ir_attr_float(n, "gamma", 1.05070102214813232421875f);
    }
}

int k_redop_find(const char *onnx_op)
{
    static const char *const names[K_REDOP_COUNT_] = {
        [K_RSUM] = "ReduceSum",       [K_RMEAN] = "ReduceMean",
        [K_RMAX] = "ReduceMax",       [K_RMIN] = "ReduceMin",
        [K_RPROD] = "ReduceProd",     [K_RL1] = "ReduceL1",
        [K_RL2] = "ReduceL2",         [K_RSUMSQ] = "ReduceSumSquare",
        [K_RLOGSUM] = "ReduceLogSum", [K_RLOGSUMEXP] = "ReduceLogSumExp",
    };
    return find_name(names, K_REDOP_COUNT_, onnx_op);
}

int k_logop_of(const struct ir_node *n)
{
    static const char *const names[K_LOGOP_COUNT_] = {
        [K_AND] = "And",
        [K_OR] = "Or",
        [K_XOR] = "Xor",
        [K_MOD] = "Mod",
        [K_LESS_EQUAL] = "LessOrEqual",
        [K_GREATER_EQUAL] = "GreaterOrEqual",
        [K_PRELU] = "PRelu",
        [K_SHIFT_LEFT] = "BitShift",
    };
    int op = find_name(names, K_LOGOP_COUNT_, n->op);
    if (op == K_MOD && ir_attr_int(n, "fmod", 0))
        return K_FMOD;
    if (op == K_SHIFT_LEFT) {
        const char *dir = ir_attr_str(n, "direction", "");
        return strcmp(dir, "LEFT") == 0    ? K_SHIFT_LEFT
               : strcmp(dir, "RIGHT") == 0 ? K_SHIFT_RIGHT
                                           : -1;
    }
    return op;
}

int k_varop_find(const char *onnx_op)
{
    static const char *const names[K_VAROP_COUNT_] = {
        [K_VSUM] = "Sum", [K_VMEAN] = "Mean", [K_VMAX] = "Max", [K_VMIN] = "Min"};
    return find_name(names, K_VAROP_COUNT_, onnx_op);
}

/* ---- integers through int64 ---- */

static int is_int(int dtype)
{
    return dtype == ENGINE_I32 || dtype == ENGINE_I64 || dtype == ENGINE_I8 || dtype == ENGINE_U8;
}

static int64_t load_int(const void *p, int dtype, size_t i)
{
    switch (dtype) {
    case ENGINE_I64:
        return ((const int64_t *)p)[i];
    case ENGINE_I32:
        return ((const int32_t *)p)[i];
    case ENGINE_I8:
        return ((const int8_t *)p)[i];
    default:
        return ((const uint8_t *)p)[i];
    }
}

/* Stores v wrapped to the dtype's width (two's complement, as numpy does). */
static void store_int(void *p, int dtype, size_t i, int64_t v)
{
    switch (dtype) {
    case ENGINE_I64:
        ((int64_t *)p)[i] = v;
        break;
    case ENGINE_I32:
        ((int32_t *)p)[i] = (int32_t)(uint32_t)(uint64_t)v;
        break;
    case ENGINE_I8:
        ((int8_t *)p)[i] = (int8_t)(uint8_t)(uint64_t)v;
        break;
    default:
        ((uint8_t *)p)[i] = (uint8_t)(uint64_t)v;
        break;
    }
}

/* Wrapping int64 arithmetic: overflow is defined (as numpy's) rather than UB. */
static int64_t wrap_add(int64_t a, int64_t b)
{
    return (int64_t)((uint64_t)a + (uint64_t)b);
}

static int64_t wrap_mul(int64_t a, int64_t b)
{
    return (int64_t)((uint64_t)a * (uint64_t)b);
}

/* ---- floats (float32, float64) through double ---- */

static int is_real(int dtype)
{
    return dtype == ENGINE_F32 || dtype == ENGINE_F64;
}

/* float16 too, for the ops whose result float16 represents exactly (Max, Min, Mod, compares). */
static int is_float(int dtype)
{
    return is_real(dtype) || dtype == ENGINE_F16;
}

static double load_real(const void *p, int dtype, size_t i)
{
    double d = 0;
    if (dtype == ENGINE_F16)
        k_cast((const uint16_t *)p + i, ENGINE_F16, &d, ENGINE_F64, 1);
    return dtype == ENGINE_F32   ? ((const float *)p)[i]
           : dtype == ENGINE_F64 ? ((const double *)p)[i]
           : dtype == ENGINE_F16 ? d
                                 : (double)load_int(p, dtype, i);
}

static void store_real(void *p, int dtype, size_t i, double v)
{
    if (dtype == ENGINE_F64)
        ((double *)p)[i] = v;
    else if (dtype == ENGINE_F16)
        k_cast(&v, ENGINE_F64, (uint16_t *)p + i, ENGINE_F16, 1); /* ties to even, once */
    else
        ((float *)p)[i] = (float)v;
}

/* ---- unary ---- */

int k_unary_dtype(enum k_unop op, int dtype)
{
    if ((unsigned)op >= K_UNOP_COUNT_)
        return 0;
    if (op == K_NOT)
        return dtype == ENGINE_BOOL ? ENGINE_BOOL : 0;
    if (op == K_ISINF || op == K_ISNAN)
        return dtype == ENGINE_F32 ? ENGINE_BOOL : 0;
    if (dtype == ENGINE_F32)
        return ENGINE_F32;
    return (op == K_NEG || op == K_SIGN) && is_int(dtype) && dtype != ENGINE_U8 ? dtype : 0;
}

static float softplus(float x)
{
    /* log(1 + e^x) without overflow for large x */
    return x > 0 ? x + log1pf(expf(-x)) : log1pf(expf(x));
}

static float unary_f32(enum k_unop op, float alpha, float beta, float x)
{
    switch (op) {
    case K_NEG:
        return -x;
    case K_RECIPROCAL:
        return 1.0f / x;
    case K_COS:
        return cosf(x);
    case K_SIN:
        return sinf(x);
    case K_TAN:
        return tanf(x);
    case K_SINH:
        return sinhf(x);
    case K_COSH:
        return coshf(x);
    case K_ASIN:
        return asinf(x);
    case K_ACOS:
        return acosf(x);
    case K_ATAN:
        return atanf(x);
    case K_ASINH:
        return asinhf(x);
    case K_ACOSH:
        return acoshf(x);
    case K_ATANH:
        return atanhf(x);
    case K_CEIL:
        return ceilf(x);
    case K_FLOOR:
        return floorf(x);
    case K_ROUND:
        return rintf(x); /* the default rounding mode rounds half to even */
    case K_SIGN:
        return x > 0 ? 1.0f : x < 0 ? -1.0f : x;
    case K_ERF:
        return erff(x);
    case K_LOG:
        return logf(x);
    case K_THRESHOLDED_RELU:
        return x > alpha ? x : 0.0f;
    case K_SHRINK:
        return x < -alpha ? x + beta : x > alpha ? x - beta : 0.0f;
    case K_CELU:
        return fmaxf(0.0f, x) + fminf(0.0f, alpha * expm1f(x / alpha));
    case K_SOFTSIGN:
        return x / (1.0f + fabsf(x));
    case K_SOFTPLUS:
        return softplus(x);
    case K_SELU:
        return beta * (x > 0 ? x : alpha * expm1f(x));
    default:
        return x;
    }
}

static uint8_t unary_bool(enum k_unop op, float alpha, float beta, float x)
{
    if (op == K_ISNAN)
        return isnan(x) != 0;
    return isinf(x) && ((x > 0 && alpha != 0.0f) || (x < 0 && beta != 0.0f));
}

void k_unary(enum k_unop op, int dtype, float alpha, float beta, const void *src, void *dst,
             size_t n)
{
    if (op == K_NOT) {
        for (size_t i = 0; i < n; i++)
            ((uint8_t *)dst)[i] = !((const uint8_t *)src)[i];
    } else if (op == K_ISINF || op == K_ISNAN) {
        for (size_t i = 0; i < n; i++)
            ((uint8_t *)dst)[i] = unary_bool(op, alpha, beta, ((const float *)src)[i]);
    } else if (dtype == ENGINE_F32) {
        for (size_t i = 0; i < n; i++)
            ((float *)dst)[i] = unary_f32(op, alpha, beta, ((const float *)src)[i]);
    } else {
        for (size_t i = 0; i < n; i++) {
            int64_t v = load_int(src, dtype, i);
            store_int(dst, dtype, i, op == K_NEG ? (int64_t)(0 - (uint64_t)v) : (v > 0) - (v < 0));
        }
    }
}

/* ---- reductions ---- */

int k_reduce_dtype_ok(enum k_redop op, int dtype)
{
    if ((unsigned)op >= K_REDOP_COUNT_)
        return 0;
    if (is_real(dtype))
        return 1;
    return (dtype == ENGINE_I32 || dtype == ENGINE_I64) && op <= K_RPROD;
}

/* The reduced axes' dims and strides, and the kept ones', of a shape under a mask. */
struct red_walk {
    int nk, nr;
    int64_t kdim[ENGINE_MAX_RANK], kst[ENGINE_MAX_RANK];
    int64_t rdim[ENGINE_MAX_RANK], rst[ENGINE_MAX_RANK];
    size_t kept, count;
};

static void red_walk_init(struct red_walk *w, const struct engine_shape *s, const int32_t *mask)
{
    uint64_t st = 1; /* unsigned, as in k_strides */
    w->nk = w->nr = 0;
    w->kept = w->count = 1;
    for (int d = s->rank - 1; d >= 0; d--) {
        if (mask[d]) {
            w->rdim[w->nr] = s->dims[d];
            w->rst[w->nr++] = (int64_t)st;
            w->count *= (size_t)s->dims[d];
        } else {
            w->kdim[w->nk] = s->dims[d];
            w->kst[w->nk++] = (int64_t)st;
            w->kept *= (size_t)s->dims[d];
        }
        st *= (uint64_t)s->dims[d];
    }
}

/* Offset of flat index i over dims listed innermost first. */
static size_t walk_offset(size_t i, const int64_t *dims, const int64_t *st, int n)
{
    size_t off = 0;
    for (int d = 0; d < n; d++) {
        off += (i % (size_t)dims[d]) * (size_t)st[d];
        i /= (size_t)dims[d];
    }
    return off;
}

static double reduce_real(enum k_redop op, int dtype, const void *x, const struct red_walk *w,
                          size_t base)
{
    double acc = op == K_RPROD ? 1.0 : op == K_RMAX ? -INFINITY : op == K_RMIN ? INFINITY : 0.0;
    double mx = -INFINITY;
    for (size_t r = 0; op == K_RLOGSUMEXP && r < w->count; r++) {
        double v = load_real(x, dtype, base + walk_offset(r, w->rdim, w->rst, w->nr));
        mx = v > mx || isnan(v) ? v : mx;
    }
    if (op == K_RLOGSUMEXP && (isinf(mx) || isnan(mx)))
        return mx; /* all -inf (or empty) stays -inf; +inf or nan propagate */
    for (size_t r = 0; r < w->count; r++) {
        double v = load_real(x, dtype, base + walk_offset(r, w->rdim, w->rst, w->nr));
        switch (op) {
        case K_RMAX:
            acc = v > acc || isnan(v) ? v : acc;
            break;
        case K_RMIN:
            acc = v < acc || isnan(v) ? v : acc;
            break;
        case K_RPROD:
            acc *= v;
            break;
        case K_RL1:
            acc += fabs(v);
            break;
        case K_RL2:
        case K_RSUMSQ:
            acc += v * v;
            break;
        case K_RLOGSUMEXP:
            acc += exp(v - mx);
            break;
        default:
            acc += v;
            break;
        }
    }
    switch (op) {
    case K_RMEAN:
        return acc / (double)w->count;
    case K_RL2:
        return sqrt(acc);
    case K_RLOGSUM:
        return log(acc);
    case K_RLOGSUMEXP:
        return mx + log(acc);
    default:
        return acc;
    }
}

static int64_t reduce_int(enum k_redop op, int dtype, const void *x, const struct red_walk *w,
                          size_t base)
{
    int64_t acc = op == K_RPROD ? 1 : op == K_RMAX ? INT64_MIN : op == K_RMIN ? INT64_MAX : 0;
    for (size_t r = 0; r < w->count; r++) {
        int64_t v = load_int(x, dtype, base + walk_offset(r, w->rdim, w->rst, w->nr));
        acc = op == K_RMAX    ? (v > acc ? v : acc)
              : op == K_RMIN  ? (v < acc ? v : acc)
              : op == K_RPROD ? wrap_mul(acc, v)
                              : wrap_add(acc, v);
    }
    if (op == K_RMEAN)
        return w->count ? acc / (int64_t)w->count : 0;
    return acc;
}

void k_reduce(enum k_redop op, int dtype, const void *src, const struct engine_shape *s,
              const int32_t *mask, void *dst)
{
    struct red_walk w;
    red_walk_init(&w, s, mask);
    for (size_t o = 0; o < w.kept; o++) {
        size_t base = walk_offset(o, w.kdim, w.kst, w.nk);
        if (is_real(dtype))
            store_real(dst, dtype, o, reduce_real(op, dtype, src, &w, base));
        else
            store_int(dst, dtype, o, reduce_int(op, dtype, src, &w, base));
    }
}

/* ---- arg-extrema and the softmax family ---- */

static void axis_split(const struct engine_shape *s, int axis, size_t *outer, size_t *len,
                       size_t *inner)
{
    *outer = *inner = 1;
    for (int d = 0; d < axis; d++)
        *outer *= (size_t)s->dims[d];
    for (int d = axis + 1; d < s->rank; d++)
        *inner *= (size_t)s->dims[d];
    *len = (size_t)s->dims[axis];
}

void k_argext(int is_min, int select_last, const float *src, const struct engine_shape *s, int axis,
              int64_t *dst)
{
    size_t outer, len, inner;
    axis_split(s, axis, &outer, &len, &inner);
    for (size_t o = 0; o < outer; o++)
        for (size_t i = 0; i < inner; i++) {
            const float *x = src + o * len * inner + i;
            size_t best = 0;
            for (size_t k = 1; k < len; k++) {
                float v = x[k * inner], b = x[best * inner];
                int better = is_min ? v < b : v > b;
                if (better || (select_last && v == b))
                    best = k;
            }
            dst[o * inner + i] = (int64_t)best;
        }
}

/* A strict total order for TopK: 1 if (a at ia) comes before (b at ib). */
static int topk_before(float a, size_t ia, float b, size_t ib, int largest)
{
    int na = isnan(a) != 0, nb = isnan(b) != 0;
    if (na || nb) {
        if (na != nb)
            return largest ? na : nb;
        return ia < ib;
    }
    if (a != b)
        return largest ? a > b : a < b;
    return ia < ib;
}

void k_topk(const float *src, size_t outer, size_t len, size_t inner, size_t k, int largest,
            float *values, int64_t *indices)
{
    /* each element's rank is how many come before it: a permutation, so all k slots are written */
    for (size_t o = 0; o < outer; o++)
        for (size_t i = 0; i < inner; i++) {
            const float *x = src + o * len * inner + i;
            for (size_t j = 0; j < len; j++) {
                size_t rank = 0;
                for (size_t m = 0; m < len && rank < k; m++)
                    rank += m != j && topk_before(x[m * inner], m, x[j * inner], j, largest);
                if (rank >= k)
                    continue;
                size_t at = (o * k + rank) * inner + i;
                if (values)
                    values[at] = x[j * inner];
                if (indices)
                    indices[at] = (int64_t)j;
            }
        }
}

static void softmax_row(enum k_smop op, const float *x, float *y, size_t len, size_t inner)
{
    float mx = -INFINITY;
    size_t arg = 0;
    for (size_t k = 0; k < len; k++)
        if (x[k * inner] > mx) {
            mx = x[k * inner];
            arg = k;
        }
    if (op == K_SM_HARDMAX) {
        for (size_t k = 0; k < len; k++)
            y[k * inner] = k == arg ? 1.0f : 0.0f;
        return;
    }
    double sum = 0;
    for (size_t k = 0; k < len; k++)
        sum += exp((double)x[k * inner] - mx);
    for (size_t k = 0; k < len; k++) {
        double d = (double)x[k * inner] - mx;
        y[k * inner] = (float)(op == K_SM_LOGSOFTMAX ? d - log(sum) : exp(d) / sum);
    }
}

void k_softmax_family(enum k_smop op, const float *src, float *dst, size_t outer, size_t len,
                      size_t inner)
{
    for (size_t o = 0; o < outer; o++)
        for (size_t i = 0; i < inner; i++)
            softmax_row(op, src + o * len * inner + i, dst + o * len * inner + i, len, inner);
}

/* ---- logic and other binary ops ---- */

int k_logic_dtype(enum k_logop op, int dtype)
{
    switch (op) {
    case K_AND:
    case K_OR:
    case K_XOR:
        return dtype == ENGINE_BOOL ? ENGINE_BOOL : 0;
    case K_LESS_EQUAL:
    case K_GREATER_EQUAL:
        return is_float(dtype) || is_int(dtype) ? ENGINE_BOOL : 0;
    case K_MOD:
    case K_FMOD:
        return is_float(dtype) || is_int(dtype) ? dtype : 0;
    case K_PRELU:
        return is_real(dtype) ? dtype : 0;
    case K_SHIFT_LEFT:
    case K_SHIFT_RIGHT:
        return dtype == ENGINE_U8 ? dtype : 0;
    default:
        return 0;
    }
}

/* Float ops in double: exact for fmod, and one rounding to float32 for the rest, as in float. */
static double logic_real(enum k_logop op, double x, double y)
{
    switch (op) {
    case K_MOD: {
        double r = fmod(x, y);
        return r != 0 && (r < 0) != (y < 0) ? r + y : r;
    }
    case K_FMOD:
        return fmod(x, y);
    case K_LESS_EQUAL:
        return x <= y;
    case K_GREATER_EQUAL:
        return x >= y;
    default: /* K_PRELU */
        return x < 0 ? x * y : x;
    }
}

/* Integer modulo; y != 0 is checked by the caller. INT64_MIN % -1 is 0, not a trap. */
static int64_t int_mod(int64_t x, int64_t y, int python)
{
    int64_t r = y == -1 ? 0 : x % y;
    return python && r != 0 && (r < 0) != (y < 0) ? r + y : r;
}

static int64_t logic_int(enum k_logop op, int64_t x, int64_t y)
{
    switch (op) {
    case K_AND:
        return x && y;
    case K_OR:
        return x || y;
    case K_XOR:
        return !x != !y;
    case K_MOD:
    case K_FMOD:
        return int_mod(x, y, op == K_MOD);
    case K_LESS_EQUAL:
        return x <= y;
    case K_SHIFT_LEFT: /* unsigned only: shifting every bit out gives 0 */
        return y < 0 || y >= 64 ? 0 : (int64_t)((uint64_t)x << y);
    case K_SHIFT_RIGHT:
        return y < 0 || y >= 64 ? 0 : (int64_t)((uint64_t)x >> y);
    default: /* K_GREATER_EQUAL */
        return x >= y;
    }
}

int k_logic(enum k_logop op, int dtype, const void *a, const struct engine_shape *as, const void *b,
            const struct engine_shape *bs, void *dst, const struct engine_shape *ds)
{
    int64_t sa[ENGINE_MAX_RANK], sb[ENGINE_MAX_RANK];
    bcast_strides(as, ds, sa);
    bcast_strides(bs, ds, sb);
    size_t n = (size_t)engine_shape_numel(ds), nb = (size_t)engine_shape_numel(bs);
    int out = k_logic_dtype(op, dtype);
    if ((op == K_MOD || op == K_FMOD) && !is_float(dtype))
        for (size_t i = 0; i < nb; i++)
            if (load_int(b, dtype, i) == 0)
                return -EDOM;
    for (size_t i = 0; i < n; i++) {
        size_t ia = bcast_offset(i, ds, sa), ib = bcast_offset(i, ds, sb);
        if (is_float(dtype)) {
            double v = logic_real(op, load_real(a, dtype, ia), load_real(b, dtype, ib));
            if (out == ENGINE_BOOL)
                ((uint8_t *)dst)[i] = v != 0;
            else
                store_real(dst, dtype, i, v);
        } else {
            int64_t v = logic_int(op, load_int(a, dtype, ia), load_int(b, dtype, ib));
            store_int(dst, out == ENGINE_BOOL ? ENGINE_U8 : dtype, i, v);
        }
    }
    return 0;
}

/* ---- arithmetic on the dtypes kernels.c does not take ---- */

int k_arith_dtypes_ok(enum k_binop op, int adtype, int bdtype)
{
    int wide_a = adtype == ENGINE_F32 || adtype == ENGINE_I32 || adtype == ENGINE_I64;
    int wide_b = bdtype == ENGINE_F32 || bdtype == ENGINE_I32 || bdtype == ENGINE_I64;
    if (op == K_POW)
        return wide_a && wide_b;
    return op >= K_ADD && op <= K_DIV && adtype == bdtype &&
           (adtype == ENGINE_I8 || adtype == ENGINE_U8);
}

/* Integer power by squaring, wrapping; a negative exponent gives 0 (numpy refuses it). */
static int64_t int_pow(int64_t x, int64_t y)
{
    int64_t r = 1;
    for (; y > 0; y >>= 1) {
        if (y & 1)
            r = wrap_mul(r, x);
        x = wrap_mul(x, x);
    }
    return y < 0 ? 0 : r;
}

static int64_t arith_int(enum k_binop op, int64_t x, int64_t y)
{
    switch (op) {
    case K_ADD:
        return wrap_add(x, y);
    case K_SUB:
        return (int64_t)((uint64_t)x - (uint64_t)y);
    case K_MUL:
        return wrap_mul(x, y);
    case K_DIV: /* y != 0 checked by the caller; INT64_MIN / -1 wraps */
        return y == -1 ? (int64_t)(0 - (uint64_t)x) : x / y;
    default:
        return int_pow(x, y);
    }
}

int k_arith(enum k_binop op, int adtype, const void *a, const struct engine_shape *as, int bdtype,
            const void *b, const struct engine_shape *bs, void *dst, const struct engine_shape *ds)
{
    int64_t sa[ENGINE_MAX_RANK], sb[ENGINE_MAX_RANK];
    bcast_strides(as, ds, sa);
    bcast_strides(bs, ds, sb);
    size_t n = (size_t)engine_shape_numel(ds), nb = (size_t)engine_shape_numel(bs);
    for (size_t i = 0; op == K_DIV && i < nb; i++)
        if (load_int(b, bdtype, i) == 0)
            return -EDOM;
    for (size_t i = 0; i < n; i++) {
        size_t ia = bcast_offset(i, ds, sa), ib = bcast_offset(i, ds, sb);
        if (adtype == ENGINE_F32)
            ((float *)dst)[i] = (float)pow(load_real(a, adtype, ia), load_real(b, bdtype, ib));
        else if (bdtype == ENGINE_F32)
            store_int(dst, adtype, i,
                      k_saturate_i64(pow(load_real(a, adtype, ia), load_real(b, bdtype, ib))));
        else
            store_int(dst, adtype, i,
                      arith_int(op, load_int(a, adtype, ia), load_int(b, bdtype, ib)));
    }
    return 0;
}

/* ---- variadic element-wise ---- */

int k_variadic_dtype_ok(enum k_varop op, int dtype)
{
    if ((unsigned)op >= K_VAROP_COUNT_)
        return 0;
    return is_real(dtype) || (op != K_VMEAN && is_int(dtype)) ||
           (dtype == ENGINE_F16 && (op == K_VMAX || op == K_VMIN));
}

static void variadic_real(enum k_varop op, int dtype, const void *x, const struct engine_shape *xs,
                          int first, void *dst, const struct engine_shape *ds)
{
    int64_t st[ENGINE_MAX_RANK];
    bcast_strides(xs, ds, st);
    size_t n = (size_t)engine_shape_numel(ds);
    for (size_t i = 0; i < n; i++) {
        double v = load_real(x, dtype, bcast_offset(i, ds, st)),
               d = first ? v : load_real(dst, dtype, i);
        store_real(dst, dtype, i,
                   first          ? v
                   : op == K_VMAX ? (v > d || isnan(v) ? v : d)
                   : op == K_VMIN ? (v < d || isnan(v) ? v : d)
                                  : d + v);
    }
}

static void variadic_int(enum k_varop op, int dtype, const void *x, const struct engine_shape *xs,
                         int first, void *dst, const struct engine_shape *ds)
{
    int64_t st[ENGINE_MAX_RANK];
    bcast_strides(xs, ds, st);
    size_t n = (size_t)engine_shape_numel(ds);
    for (size_t i = 0; i < n; i++) {
        int64_t v = load_int(x, dtype, bcast_offset(i, ds, st));
        int64_t d = first ? v : load_int(dst, dtype, i);
        store_int(dst, dtype, i,
                  first          ? v
                  : op == K_VMAX ? (v > d ? v : d)
                  : op == K_VMIN ? (v < d ? v : d)
                                 : wrap_add(d, v));
    }
}

void k_variadic(enum k_varop op, int dtype, const void *const *srcs,
                const struct engine_shape *shapes, int n, void *dst, const struct engine_shape *ds)
{
    for (int k = 0; k < n; k++) {
        if (is_float(dtype))
            variadic_real(op, dtype, srcs[k], &shapes[k], k == 0, dst, ds);
        else
            variadic_int(op, dtype, srcs[k], &shapes[k], k == 0, dst, ds);
    }
    if (op == K_VMEAN && is_real(dtype)) {
        size_t m = (size_t)engine_shape_numel(ds);
        for (size_t i = 0; i < m; i++)
            store_real(dst, dtype, i, load_real(dst, dtype, i) / (double)n);
    }
}

/* ---- layer and instance normalisation ---- */

/* Mean and 1/sqrt(variance + eps) of a row (population variance, as ONNX). */
static void row_stats(const float *row, size_t len, float eps, double *mu, double *inv)
{
    double sum = 0, sq = 0;
    for (size_t i = 0; i < len; i++)
        sum += row[i];
    *mu = len ? sum / (double)len : 0;
    for (size_t i = 0; i < len; i++)
        sq += (row[i] - *mu) * (row[i] - *mu);
    *inv = 1.0 / sqrt((len ? sq / (double)len : 0) + eps);
}

void k_layernorm(const float *x, const float *scale, const float *bias, size_t outer, size_t inner,
                 float eps, float *y, float *mean, float *inv_std)
{
    for (size_t o = 0; o < outer; o++) {
        const float *row = x + o * inner;
        double mu, inv;
        row_stats(row, inner, eps, &mu, &inv);
        if (mean)
            mean[o] = (float)mu;
        if (inv_std)
            inv_std[o] = (float)inv;
        for (size_t i = 0; y && i < inner; i++)
            y[o * inner + i] = (float)((row[i] - mu) * inv * scale[i] + (bias ? bias[i] : 0.0f));
    }
}

void k_instancenorm(const float *x, const float *scale, const float *bias, size_t n, size_t c,
                    size_t inner, float eps, float *y)
{
    for (size_t b = 0; b < n; b++)
        for (size_t ch = 0; ch < c; ch++) {
            size_t row = (b * c + ch) * inner;
            double mu, inv;
            row_stats(x + row, inner, eps, &mu, &inv);
            for (size_t i = 0; i < inner; i++)
                y[row + i] = (float)((x[row + i] - mu) * inv * scale[ch] + bias[ch]);
        }
}

/* ---- clip ---- */

int k_clip_dtype_ok(int dtype)
{
    return dtype == ENGINE_F32 || is_int(dtype);
}

void k_clip(int dtype, const void *x, const void *lo, const void *hi, void *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (dtype == ENGINE_F32) {
            float v = ((const float *)x)[i];
            v = lo && v < *(const float *)lo ? *(const float *)lo : v;
            ((float *)dst)[i] = hi && v > *(const float *)hi ? *(const float *)hi : v;
        } else {
            int64_t v = load_int(x, dtype, i);
            v = lo && v < load_int(lo, dtype, 0) ? load_int(lo, dtype, 0) : v;
            store_int(dst, dtype, i, hi && v > load_int(hi, dtype, 0) ? load_int(hi, dtype, 0) : v);
        }
    }
}

/* ---- quantisation ---- */

static int64_t saturate_q(double v, int dtype)
{
    int64_t lo = dtype == ENGINE_I8 ? -128 : 0, hi = dtype == ENGINE_I8 ? 127 : 255;
    return isnan(v) ? 0 : v < (double)lo ? lo : v > (double)hi ? hi : (int64_t)v;
}

static size_t channel_of(size_t i, size_t nscale, size_t len, size_t inner)
{
    return nscale == 1 ? 0 : (i / inner) % len;
}

/* Per-tensor quantization to [lo, hi] in float arithmetic, branch-free (vectorised): rintf by
 * the 1.5 * 2^23 trick (round half to even, no libm call) where |v| < 2^22, larger magnitudes
 * saturate either way; r + z is exact below that, so the result is saturate_q(rintf + z)'s. */
static inline float quantize_one(float x, float s, float z, float lo, float hi)
{
    float v = x / s;
    float t = (fabsf(v) < 0x1p22f ? (v + 0x1.8p23f) - 0x1.8p23f : v) + z;
    t = t < lo ? lo : t > hi ? hi : t;
    return t == t ? t : 0; /* NaN: 0 */
}

/* The AVX2 bulk (kernels_int8.c), then the scalar loop. */
static void quantize_tensor(const float *restrict src, float s, float z, float lo,
                                     float hi, int is_u8, void *restrict dst, size_t n)
{
    size_t i0 = k_quantize_bulk(src, s, z, is_u8, dst, n);
    if (is_u8) {
        uint8_t *restrict d = dst;
        for (size_t i = i0; i < n; i++)
            d[i] = (uint8_t)(int)quantize_one(src[i], s, z, lo, hi);
    } else {
        int8_t *restrict d = dst;
        for (size_t i = i0; i < n; i++)
            d[i] = (int8_t)(int)quantize_one(src[i], s, z, lo, hi);
    }
}

K_VECTOR static void dequantize_tensor(const void *restrict src, int is_u8, int32_t z, float s,
                                       float *restrict dst, size_t n)
{
    if (is_u8)
        for (size_t i = 0; i < n; i++)
            dst[i] = (float)(((const uint8_t *)src)[i] - z) * s;
    else
        for (size_t i = 0; i < n; i++)
            dst[i] = (float)(((const int8_t *)src)[i] - z) * s;
}

void k_quantize(const float *src, const float *scale, const void *zp, size_t nscale, size_t len,
                size_t inner, int dtype, void *dst, size_t n)
{
    if (nscale == 1 && (dtype == ENGINE_U8 || dtype == ENGINE_I8)) { /* per tensor: hoisted */
        float z = zp ? (float)load_int(zp, dtype, 0) : 0;
        int u8 = dtype == ENGINE_U8;
        quantize_tensor(src, scale[0], z, u8 ? 0.0f : -128.0f, u8 ? 255.0f : 127.0f, u8, dst, n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        size_t c = channel_of(i, nscale, len, inner);
        int64_t z = zp ? load_int(zp, dtype, c) : 0;
        store_int(dst, dtype, i, saturate_q((double)rintf(src[i] / scale[c]) + (double)z, dtype));
    }
}

void k_dequantize(const void *src, int dtype, const float *scale, const void *zp, size_t nscale,
                  size_t len, size_t inner, float *dst, size_t n)
{
    if (nscale == 1 && (dtype == ENGINE_U8 || dtype == ENGINE_I8)) { /* per tensor: hoisted */
        int32_t z = zp ? (int32_t)load_int(zp, dtype, 0) : 0;
        dequantize_tensor(src, dtype == ENGINE_U8, z, scale[0], dst, n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        size_t c = channel_of(i, nscale, len, inner);
        int64_t z = zp ? load_int(zp, dtype, c) : 0;
        dst[i] = (float)(load_int(src, dtype, i) - z) * scale[c];
    }
}

void k_dynquant(const float *x, size_t n, uint8_t *y, float *scale, uint8_t *zp)
{
    float lo = 0.0f, hi = 0.0f;
    for (size_t i = k_minmax_bulk(x, n, &lo, &hi); i < n; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    float s = (hi - lo) / 255.0f;
    uint8_t z = s > 0 ? (uint8_t)saturate_q(rintf(0.0f - lo / s), ENGINE_U8) : 0;
    if (scale)
        *scale = s;
    if (zp)
        *zp = z;
    if (y && s > 0)
        quantize_tensor(x, s, (float)z, 0.0f, 255.0f, 1, y, n); /* the same rounding */
    else if (y)
        memset(y, z, n);
}

static int is_q8dt(int dt)
{
    return dt == ENGINE_U8 || dt == ENGINE_I8;
}

/* MatMulInteger / QLinearMatMul on k_qdot: A and B (transposed) less their zero points as int16
 * rows, once per batch (B once if shared); requantised the reference's way. -1: not taken (a
 * type it does not cover, a sum that could wrap before requantising, no memory). */
static int qmatmul_gemm(const struct k_qmm *q, const void *a, const void *b, void *dst)
{
    if (!is_q8dt(q->adt) || !is_q8dt(q->bdt) || (q->multiplier && q->k > K_QDOT_MAX_K) ||
        !q->m || !q->n || !q->k)
        return -1;
    size_t kp = (q->k + 15) / 16 * 16;
    int16_t *pa = malloc(q->m * kp * sizeof(int16_t)), *pb = malloc(q->n * kp * sizeof(int16_t));
    int32_t *c = q->multiplier ? malloc(q->m * q->n * sizeof(int32_t)) : NULL;
    int rc = pa && pb && (c || !q->multiplier) ? 0 : -1;
    for (size_t t = 0; !rc && t < q->batch; t++) {
        int32_t *out = c ? c : (int32_t *)dst + t * q->m * q->n;
        k_qpack_rows((const uint8_t *)a + t * q->m * q->k, q->adt, q->azp, (int64_t)q->n_azp,
                     (int64_t)q->m, (int64_t)q->k, (int64_t)q->k, 1, (int64_t)kp, pa);
        if (t == 0 || q->b_batched)
            k_qpack_rows((const uint8_t *)b + (q->b_batched ? t * q->k * q->n : 0), q->bdt,
                         q->bzp, (int64_t)q->n_bzp, (int64_t)q->n, (int64_t)q->k, 1,
                         (int64_t)q->n, (int64_t)kp, pb);
        k_qdot(pa, (int64_t)q->m, pb, (int64_t)q->n, (int64_t)kp, out, (int64_t)q->n);
        if (!c)
            continue;
        int64_t yz = q->yzp ? load_int(q->yzp, q->ydt, 0) : 0;
        for (size_t i = 0; i < q->m * q->n; i++)
            store_int(dst, q->ydt, t * q->m * q->n + i,
                      saturate_q(rint((double)c[i] * *q->multiplier) + (double)yz, q->ydt));
    }
    free(pa), free(pb), free(c);
    return rc;
}

void k_qmatmul(const struct k_qmm *q, const void *a, const void *b, void *dst)
{
    if (qmatmul_gemm(q, a, b, dst) == 0)
        return;
    for (size_t t = 0; t < q->batch; t++)
        for (size_t i = 0; i < q->m; i++)
            for (size_t j = 0; j < q->n; j++) {
                int64_t az = q->azp ? load_int(q->azp, q->adt, q->n_azp == 1 ? 0 : i) : 0;
                int64_t bz = q->bzp ? load_int(q->bzp, q->bdt, q->n_bzp == 1 ? 0 : j) : 0;
                size_t ab = t * q->m * q->k, bb = q->b_batched ? t * q->k * q->n : 0;
                int64_t acc = 0;
                for (size_t p = 0; p < q->k; p++)
                    acc += (load_int(a, q->adt, ab + i * q->k + p) - az) *
                           (load_int(b, q->bdt, bb + p * q->n + j) - bz);
                size_t o = (t * q->m + i) * q->n + j;
                if (!q->multiplier) {
                    ((int32_t *)dst)[o] = (int32_t)(uint32_t)(uint64_t)acc;
                    continue;
                }
                int64_t yz = q->yzp ? load_int(q->yzp, q->ydt, 0) : 0;
                store_int(dst, q->ydt, o,
                          saturate_q(rint((double)acc * *q->multiplier) + (double)yz, q->ydt));
            }
}

/* The integer sum of one output element of a quantized convolution. */
static int64_t qconv_sum(const struct k_qconv *q, const void *x, const void *w, int64_t b,
                         int64_t mo, const int64_t *o)
{
    int64_t cg = q->c / q->group, g = mo / (q->m / q->group), acc = 0;
    int64_t xz = q->xzp ? load_int(q->xzp, q->xdt, 0) : 0;
    int64_t wz = q->wzp ? load_int(q->wzp, q->wdt, q->n_wzp == 1 ? 0 : (size_t)mo) : 0;
    for (int64_t ci = 0; ci < cg; ci++) {
        int64_t ch = g * cg + ci;
        for (int64_t k0 = 0; k0 < q->k[0]; k0++)
            for (int64_t k1 = 0; k1 < q->k[1]; k1++)
                for (int64_t k2 = 0; k2 < q->k[2]; k2++) {
                    int64_t kk[3] = {k0, k1, k2}, pos[3], at = b * q->c + ch;
                    int inside = 1;
                    for (int d = 0; d < 3; d++) {
                        pos[d] = o[d] * q->stride[d] - q->pad[d] + kk[d] * q->dil[d];
                        inside &= pos[d] >= 0 && pos[d] < q->in[d];
                    }
                    for (int d = 0; inside && d < 3; d++)
                        at = at * q->in[d] + pos[d];
                    if (!inside)
                        continue;
                    size_t wi =
                        (size_t)((((mo * cg + ci) * q->k[0] + k0) * q->k[1] + k1) * q->k[2] + k2);
                    acc += (load_int(x, q->xdt, (size_t)at) - xz) * (load_int(w, q->wdt, wi) - wz);
                }
    }
    return acc;
}

/* Output element i of the output channel mo from its integer sum (int32, or requantised). */
static void qconv_store(const struct k_qconv *q, int64_t mo, int64_t acc, void *dst, size_t i)
{
    if (!q->xs) {
        ((int32_t *)dst)[i] = (int32_t)(uint32_t)(uint64_t)acc;
        return;
    }
    acc += q->bias ? q->bias[mo] : 0;
    float mult = *q->xs * q->ws[q->n_ws == 1 ? 0 : mo] / *q->ys;
    int64_t yz = q->yzp ? load_int(q->yzp, q->ydt, 0) : 0;
    double v = rint((double)acc * mult);
    store_int(dst, q->ydt, i, saturate_q((q->relu && v < 0 ? 0 : v) + (double)yz, q->ydt));
}

#define QCONV_TILE 64 /* output positions per im2row tile of qconv_gemm */

/* ConvInteger / QLinearConv as im2row + k_qdot: the weights less their zero points packed once
 * per call, then per (batch, group, tile of QCONV_TILE output positions) the tile's taps and
 * the group's output channels against them. The same integer sums as qconv_sum. -1: not taken
 * (a type it does not cover, a requantised sum that could wrap, no memory). */
static int qconv_gemm(const struct k_qconv *q, const void *x, const void *w, void *dst)
{
    int64_t cg = q->c / q->group, mg = q->m / q->group, kk = cg * q->k[0] * q->k[1] * q->k[2];
    int64_t kp = (kk + 15) / 16 * 16, np = q->out[0] * q->out[1] * q->out[2];
    if (!is_q8dt(q->xdt) || !is_q8dt(q->wdt) || (q->xs && kk > K_QDOT_MAX_K) || kk < 1 ||
        mg < 1 || np < 1)
        return -1;
    int16_t *a = malloc((size_t)(q->m * kp) * sizeof(int16_t));
    int16_t *t = malloc((size_t)(QCONV_TILE * kp) * sizeof(int16_t));
    int32_t *c = malloc((size_t)(mg * QCONV_TILE) * sizeof(int32_t));
    int64_t ext[3], plane = k_qconv_extent(q, ext);
    int16_t *xp = malloc((size_t)(cg * plane) * sizeof(int16_t));
    int rc = a && t && c && xp ? 0 : -1;
    if (!rc)
        k_qpack_rows(w, q->wdt, q->wzp, q->n_wzp, q->m, kk, kk, 1, kp, a);
    for (int64_t b = 0; !rc && b < q->n; b++)
        for (int64_t g = 0; g < q->group; g++) {
            k_qconv_pad(q, x, b, g, ext, xp);
            for (int64_t p0 = 0; p0 < np; p0 += QCONV_TILE) {
                int64_t n = np - p0 < QCONV_TILE ? np - p0 : QCONV_TILE;
                k_qconv_im2row(q, xp, ext, p0, n, kp, t);
                k_qdot(a + g * mg * kp, mg, t, n, kp, c, QCONV_TILE);
                for (int64_t j = 0; j < mg; j++) {
                    int64_t mo = g * mg + j;
                    size_t at = (size_t)((b * q->m + mo) * np + p0);
                    for (int64_t p = 0; p < n; p++)
                        qconv_store(q, mo, c[j * QCONV_TILE + p], dst, at + (size_t)p);
                }
            }
        }
    free(a), free(t), free(c), free(xp);
    return rc;
}

#define QCONV_PATCH 8192 /* the row-wise path's stack patch: taps x outputs of one row */
#define QCONV_ACC   4096 /* and its sums: output channels of a group x the row */

/* The patch of one output row (fixed b, group g, o0, o1): for each tap t (the weights' order:
 * ci, k0, k1, k2) the input each output o2 of the row reads, less the zero point, or 0 where it
 * lies outside the input (the term qconv_sum skips). */
static void qconv_patch(const struct k_qconv *q, const void *x, int64_t b, int64_t g, int64_t o0,
                        int64_t o1, int32_t *pt)
{
    int64_t cg = q->c / q->group, n2 = q->out[2], in2 = q->in[2], s = q->stride[2];
    int32_t xz = q->xzp ? (int32_t)load_int(q->xzp, q->xdt, 0) : 0;
    for (int64_t ci = 0; ci < cg; ci++)
        for (int64_t k0 = 0; k0 < q->k[0]; k0++)
            for (int64_t k1 = 0; k1 < q->k[1]; k1++)
                for (int64_t k2 = 0; k2 < q->k[2]; k2++, pt += n2) {
                    int64_t p0 = o0 * q->stride[0] - q->pad[0] + k0 * q->dil[0];
                    int64_t p1 = o1 * q->stride[1] - q->pad[1] + k1 * q->dil[1];
                    int64_t off = k2 * q->dil[2] - q->pad[2];
                    memset(pt, 0, (size_t)n2 * sizeof(*pt));
                    if (p0 < 0 || p0 >= q->in[0] || p1 < 0 || p1 >= q->in[1])
                        continue;
                    /* the outputs o2 whose input o2 * s + off lies in [0, in2) */
                    int64_t lo = off >= 0 ? 0 : (-off + s - 1) / s;
                    int64_t hi = in2 - 1 - off < 0 ? -1 : (in2 - 1 - off) / s;
                    hi = hi > n2 - 1 ? n2 - 1 : hi;
                    size_t at =
                        (size_t)((((b * q->c + g * cg + ci) * q->in[0] + p0) * q->in[1] + p1) *
                                     in2 +
                                 off);
                    if (q->xdt == ENGINE_U8)
                        for (int64_t o2 = lo; o2 <= hi; o2++)
                            pt[o2] = ((const uint8_t *)x)[at + (size_t)(o2 * s)] - xz;
                    else
                        for (int64_t o2 = lo; o2 <= hi; o2++)
                            pt[o2] = ((const int8_t *)x)[at + (size_t)(o2 * s)] - xz;
                }
}

/* acc[j][o2] = sum over taps t of (w[mo][t] - wz[mo]) * patch[t][o2] for the output channels
 * mo = g * mg + j: the same integer terms as qconv_sum, so the same sums; int32 (the caller
 * bounds the taps so that no sum can overflow it), vectorised where the CPU has AVX2. */
K_VECTOR static void qconv_sums(const struct k_qconv *q, const void *w, int64_t g, int64_t taps,
                                const int32_t *restrict pt, int32_t *restrict acc)
{
    int64_t mg = q->m / q->group, n2 = q->out[2];
    for (int64_t j = 0; j < mg; j++) {
        int64_t mo = g * mg + j;
        int32_t wz = q->wzp ? (int32_t)load_int(q->wzp, q->wdt, q->n_wzp == 1 ? 0 : (size_t)mo) : 0;
        int32_t *restrict ar = acc + j * n2;
        memset(ar, 0, (size_t)n2 * sizeof(*ar));
        for (int64_t t = 0; t < taps; t++) {
            int32_t wv = (int32_t)load_int(w, q->wdt, (size_t)(mo * taps + t)) - wz;
            const int32_t *restrict pr = pt + t * n2;
            if (wv != 0)
                for (int64_t o2 = 0; o2 < n2; o2++)
                    ar[o2] += wv * pr[o2];
        }
    }
}

void k_qconv(const struct k_qconv *qa, const void *x, const void *w, void *dst)
{
    /* a unit last axis (a 1-D or 2-D convolution) moved to the front: the same element order,
     * and the rows run along a real axis */
    if (qconv_gemm(qa, x, w, dst) == 0)
        return;
    struct k_qconv r = *qa, *q = &r;
    for (int turn = 0; turn < 2 && q->in[2] == 1 && q->k[2] == 1 && q->out[2] == 1 && !q->pad[2];
         turn++) {
        int64_t *axes[] = {q->in, q->k, q->out, q->stride, q->dil, q->pad};
        for (size_t a = 0; a < sizeof(axes) / sizeof(axes[0]); a++) {
            int64_t v = axes[a][2];
            axes[a][2] = axes[a][1], axes[a][1] = axes[a][0], axes[a][0] = v;
        }
    }
    int64_t mg = q->m / q->group, taps = q->c / q->group * q->k[0] * q->k[1] * q->k[2];
    int64_t n2 = q->out[2];
    /* each term is at most 255 * 255 in magnitude: int32 sums while taps * 65025 fits */
    if (taps * n2 <= QCONV_PATCH && mg * n2 <= QCONV_ACC && taps <= INT32_MAX / 65025 &&
        (q->xdt == ENGINE_U8 || q->xdt == ENGINE_I8)) {
        int32_t acc[QCONV_ACC], pt[QCONV_PATCH];
        for (int64_t b = 0; b < q->n; b++)
            for (int64_t g = 0; g < q->group; g++)
                for (int64_t o0 = 0; o0 < q->out[0]; o0++)
                    for (int64_t o1 = 0; o1 < q->out[1]; o1++) {
                        qconv_patch(q, x, b, g, o0, o1, pt);
                        qconv_sums(q, w, g, taps, pt, acc);
                        for (int64_t j = 0; j < mg; j++) {
                            int64_t mo = g * mg + j;
                            size_t at =
                                (size_t)((((b * q->m + mo) * q->out[0] + o0) * q->out[1] + o1) *
                                         n2);
                            for (int64_t o2 = 0; o2 < n2; o2++)
                                qconv_store(q, mo, acc[j * n2 + o2], dst, at + (size_t)o2);
                        }
                    }
        return;
    }
    size_t i = 0;
    for (int64_t b = 0; b < q->n; b++)
        for (int64_t mo = 0; mo < q->m; mo++)
            for (int64_t o0 = 0; o0 < q->out[0]; o0++)
                for (int64_t o1 = 0; o1 < q->out[1]; o1++)
                    for (int64_t o2 = 0; o2 < q->out[2]; o2++, i++) {
                        int64_t o[3] = {o0, o1, o2};
                        qconv_store(q, mo, qconv_sum(q, x, w, b, mo, o), dst, i);
                    }
}

/* ---- einsum ---- */

int k_einsum_dtype_ok(int dtype)
{
    return is_real(dtype) || dtype == ENGINE_I32 || dtype == ENGINE_I64;
}

static int einsum_letter(char ch)
{
    return ch >= 'a' && ch <= 'z' ? ch - 'a' : ch >= 'A' && ch <= 'Z' ? 26 + ch - 'A' : -1;
}

/* One term ("b...ij"): its ids into spec; *ell gets the ellipsis length (must agree). */
static int einsum_term(const char **p, int rank, int32_t *ids, int *ell, int *count)
{
    int n = 0, letters = 0, has_ell = 0;
    for (const char *q = *p; *q && *q != ',' && *q != '-'; q++)
        letters += einsum_letter(*q) >= 0;
    for (; **p && **p != ',' && **p != '-'; (*p)++) {
        if (**p == ' ')
            continue;
        if (strncmp(*p, "...", 3) == 0 && !has_ell) {
            int e = rank - letters;
            if (e < 0 || (*ell >= 0 && *ell != e) || e > K_EINSUM_LABELS - 52)
                return -EINVAL;
            *ell = e;
            has_ell = 1;
            for (int j = 0; j < e; j++)
                ids[n++] = 52 + j;
            *p += 2;
            continue;
        }
        int id = einsum_letter(**p);
        if (id < 0)
            return -EINVAL;
        ids[n++] = id;
        count[id]++;
    }
    return n == rank ? 0 : -EINVAL;
}

/* The output term after "->", or the implicit one: the ellipsis, then letters seen once in
 * ASCII order. */
static int einsum_output(const char *p, int ell, const int *count, int32_t *ids)
{
    int n = 0, seen[K_EINSUM_LABELS] = {0};
    if (!p) {
        for (int j = 0; j < ell; j++)
            ids[n++] = 52 + j;
        for (int id = 26; id < 52; id++)
            if (count[id] == 1)
                ids[n++] = id;
        for (int id = 0; id < 26; id++)
            if (count[id] == 1)
                ids[n++] = id;
        return n;
    }
    for (; *p; p++) {
        if (*p == ' ')
            continue;
        if (strncmp(p, "...", 3) == 0) {
            for (int j = 0; j < (ell > 0 ? ell : 0); j++)
                ids[n++] = 52 + j;
            p += 2;
            continue;
        }
        int id = einsum_letter(*p);
        if (id < 0 || !count[id] || seen[id]++ || n >= ENGINE_MAX_RANK)
            return -EINVAL;
        ids[n++] = id;
    }
    return n;
}

int k_einsum_parse(const char *equation, int n_in, const int *ranks, int32_t *spec, int cap)
{
    int count[K_EINSUM_LABELS] = {0}, ell = -1, len = 2 + ENGINE_MAX_RANK;
    int32_t out[ENGINE_MAX_RANK + K_EINSUM_LABELS];
    const char *p = equation, *arrow = strstr(equation, "->");
    if (n_in < 1 || n_in > K_EINSUM_MAX_IN || cap < len + n_in * (1 + ENGINE_MAX_RANK))
        return -EINVAL;
    len = 2;
    int32_t *terms = spec + 2 + ENGINE_MAX_RANK; /* written after the output, moved down below */
    for (int k = 0; k < n_in; k++) {
        terms[len - 2] = ranks[k];
        if (ranks[k] > ENGINE_MAX_RANK || einsum_term(&p, ranks[k], terms + len - 1, &ell, count))
            return -EINVAL;
        len += 1 + ranks[k];
        if (*p == ',')
            p++;
        else if (k + 1 < n_in)
            return -EINVAL;
    }
    if (arrow ? p != arrow : *p != '\0')
        return -EINVAL;
    int out_rank = einsum_output(arrow ? arrow + 2 : NULL, ell, count, out);
    if (out_rank < 0 || out_rank > ENGINE_MAX_RANK)
        return -EINVAL;
    memmove(spec + 2 + out_rank, terms, (size_t)(len - 2) * sizeof(int32_t));
    spec[0] = n_in;
    spec[1] = out_rank;
    memcpy(spec + 2, out, (size_t)out_rank * sizeof(int32_t));
    return len + out_rank;
}

/* The extent of every label; -EINVAL when a label's dims differ or the spec is malformed. */
static int einsum_sizes(const int32_t *spec, int n, const struct engine_shape *shapes, int n_in,
                        int64_t *sizes)
{
    for (int l = 0; l < K_EINSUM_LABELS; l++)
        sizes[l] = -1;
    if (n < 2 || spec[0] != n_in || n_in < 1 || n_in > K_EINSUM_MAX_IN || spec[1] < 0 ||
        spec[1] > ENGINE_MAX_RANK)
        return -EINVAL;
    int at = 2 + spec[1];
    for (int k = 0; k < n_in; k++) {
        if (at >= n || spec[at] != shapes[k].rank || at + 1 + spec[at] > n)
            return -EINVAL;
        for (int d = 0; d < shapes[k].rank; d++) {
            int32_t id = spec[at + 1 + d];
            if (id < 0 || id >= K_EINSUM_LABELS ||
                (sizes[id] >= 0 && sizes[id] != shapes[k].dims[d]))
                return -EINVAL;
            sizes[id] = shapes[k].dims[d];
        }
        at += 1 + spec[at];
    }
    return at == n ? 0 : -EINVAL;
}

int k_einsum_check(const int32_t *spec, int n, const struct engine_shape *shapes, int n_in,
                   struct engine_shape *out)
{
    int64_t sizes[K_EINSUM_LABELS], work = 1;
    if (einsum_sizes(spec, n, shapes, n_in, sizes))
        return -EINVAL;
    for (int l = 0; l < K_EINSUM_LABELS; l++) {
        if (sizes[l] > 0 && work > ((int64_t)1 << 40) / sizes[l])
            return -EINVAL; /* the enumeration would not finish (or its count overflow) */
        work *= sizes[l] > 0 ? sizes[l] : 1;
    }
    out->rank = spec[1];
    for (int d = 0; d < spec[1]; d++) {
        int32_t id = spec[2 + d];
        if (id < 0 || id >= K_EINSUM_LABELS || sizes[id] < 0)
            return -EINVAL;
        out->dims[d] = sizes[id];
    }
    return 0;
}

/* Element strides per label of a tensor (a repeated label, a diagonal, adds its strides). */
static void einsum_strides(const int32_t *ids, const struct engine_shape *s, int64_t *lst)
{
    uint64_t st = 1; /* unsigned, as in k_strides */
    for (int l = 0; l < K_EINSUM_LABELS; l++)
        lst[l] = 0;
    for (int d = s->rank - 1; d >= 0; d--) {
        lst[ids[d]] = (int64_t)((uint64_t)lst[ids[d]] + st);
        st *= (uint64_t)s->dims[d];
    }
}

void k_einsum(int dtype, const void *const *srcs, const struct engine_shape *shapes,
              const int32_t *spec, void *dst, const struct engine_shape *ds)
{
    int n_in = spec[0], used[K_EINSUM_LABELS], n_used = 0;
    int64_t sizes[K_EINSUM_LABELS], lst[K_EINSUM_MAX_IN + 1][K_EINSUM_LABELS];
    int64_t val[K_EINSUM_LABELS] = {0}, total = 1;
    int at = 2 + spec[1];
    for (int k = 0; k < n_in; k++) {
        einsum_strides(spec + at + 1, &shapes[k], lst[k]);
        at += 1 + spec[at];
    }
    einsum_strides(spec + 2, ds, lst[n_in]);
    einsum_sizes(spec, at, shapes, n_in, sizes);
    for (int l = 0; l < K_EINSUM_LABELS; l++)
        if (sizes[l] >= 0) {
            used[n_used++] = l;
            total *= sizes[l];
        }
    size_t nd = (size_t)engine_shape_numel(ds);
    for (size_t i = 0; i < nd; i++)
        is_real(dtype) ? store_real(dst, dtype, i, 0) : store_int(dst, dtype, i, 0);
    for (int64_t t = 0; t < total; t++) {
        size_t off[K_EINSUM_MAX_IN + 1] = {0};
        for (int k = 0; k <= n_in; k++)
            for (int u = 0; u < n_used; u++)
                off[k] += (size_t)(val[used[u]] * lst[k][used[u]]);
        if (is_real(dtype)) {
            double prod = 1;
            for (int k = 0; k < n_in; k++)
                prod *= load_real(srcs[k], dtype, off[k]);
            store_real(dst, dtype, off[n_in], load_real(dst, dtype, off[n_in]) + prod);
        } else {
            int64_t prod = 1;
            for (int k = 0; k < n_in; k++)
                prod = wrap_mul(prod, load_int(srcs[k], dtype, off[k]));
            store_int(dst, dtype, off[n_in], wrap_add(load_int(dst, dtype, off[n_in]), prod));
        }
        for (int u = n_used - 1; u >= 0 && ++val[used[u]] == sizes[used[u]]; u--)
            val[used[u]] = 0; /* the odometer: innermost label first */
    }
}

/* ---- window functions ---- */

int k_window_find(const char *onnx_op)
{
    static const char *const names[K_WINDOW_COUNT_] = {[K_WIN_HANN] = "HannWindow",
                                                       [K_WIN_HAMMING] = "HammingWindow",
                                                       [K_WIN_BLACKMAN] = "BlackmanWindow"};
    return find_name(names, K_WINDOW_COUNT_, onnx_op);
}

void k_window(enum k_window w, int64_t n, int periodic, int dtype, void *dst)
{
    double len = (double)(periodic ? n : n - 1);
    for (int64_t i = 0; i < n; i++) {
        double a = 2.0 * M_PI * (double)i / len, v;
        if (w == K_WIN_HANN)
            v = 0.5 - 0.5 * cos(a);
        else if (w == K_WIN_HAMMING)
            v = 25.0 / 46.0 - (1.0 - 25.0 / 46.0) * cos(a);
        else
            v = 0.42 - 0.5 * cos(a) + 0.08 * cos(2.0 * a);
        store_real(dst, dtype, (size_t)i, v);
    }
}

/* Spectrogram bin of the i-th of bins + 2 points spaced evenly on the mel scale, or -1. */
static int64_t mel_point(int64_t i, int64_t bins, int64_t dft_length, int64_t sample_rate,
                         double lo_mel, double hi_mel)
{
    double mel = (double)i * (hi_mel - lo_mel) / (double)(bins + 2) + lo_mel;
    double hz = 700.0 * (pow(10.0, mel / 2595.0) - 1.0);
    double bin = floor((double)(dft_length + 1) * hz / (double)sample_rate);
    return bin >= 0 && bin <= 1e15 ? (int64_t)bin : -1; /* NaN and far-off edges: refused */
}

int k_mel_weights(int64_t bins, int64_t dft_length, int64_t sample_rate, double lo_hz, double hi_hz,
                  int dtype, void *dst)
{
    int64_t rows = dft_length / 2 + 1, pt[3];
    double lo_mel = 2595.0 * log10(1.0 + lo_hz / 700.0),
           hi_mel = 2595.0 * log10(1.0 + hi_hz / 700.0);
    for (int64_t k = 0; k < rows * bins; k++)
        store_real(dst, dtype, (size_t)k, 0.0);
    for (int64_t i = 0; i < bins; i++) {
        for (int k = 0; k < 3; k++) {
            pt[k] = mel_point(i + k, bins, dft_length, sample_rate, lo_mel, hi_mel);
            if (pt[k] < 0 || pt[k] > rows || (k == 1 && pt[k] == rows))
                return -EINVAL;
        }
        for (int64_t j = pt[0]; j <= pt[1]; j++) /* rising edge, peak 1 at the centre */
            store_real(dst, dtype, (size_t)(j * bins + i),
                       pt[1] == pt[0] ? 1.0 : (double)(j - pt[0]) / (double)(pt[1] - pt[0]));
        for (int64_t j = pt[1]; j < pt[2]; j++) /* falling edge */
            store_real(dst, dtype, (size_t)(j * bins + i),
                       (double)(pt[2] - j) / (double)(pt[2] - pt[1]));
    }
    return 0;
}

/* ---- determinant, mean-variance normalisation ---- */

static double det1(const float *x, size_t m, double *lu)
{
    for (size_t i = 0; i < m * m; i++)
        lu[i] = x[i];
    double det = 1.0;
    for (size_t c = 0; c < m; c++) {
        size_t piv = c;
        for (size_t r = c + 1; r < m; r++)
            piv = fabs(lu[r * m + c]) > fabs(lu[piv * m + c]) ? r : piv;
        if (lu[piv * m + c] == 0.0)
            return 0.0;
        if (piv != c) {
            det = -det;
            for (size_t k = 0; k < m; k++) {
                double t = lu[c * m + k];
                lu[c * m + k] = lu[piv * m + k];
                lu[piv * m + k] = t;
            }
        }
        det *= lu[c * m + c];
        for (size_t r = c + 1; r < m; r++) {
            double f = lu[r * m + c] / lu[c * m + c];
            for (size_t k = c; k < m; k++)
                lu[r * m + k] -= f * lu[c * m + k];
        }
    }
    return det;
}

void k_det(const float *x, size_t batch, size_t m, float *dst)
{
    double lu[K_DET_MAX * K_DET_MAX];
    for (size_t b = 0; b < batch; b++)
        dst[b] = (float)det1(x + b * m * m, m, lu);
}

void k_dft(const float *x, size_t outer, size_t n, size_t inner, size_t c, int inverse,
           int onesided, float *dst)
{
    size_t m = onesided ? n / 2 + 1 : n;
    double sign = inverse ? 1.0 : -1.0, scale = inverse && n ? 1.0 / (double)n : 1.0;
    for (size_t o = 0; o < outer; o++)
        for (size_t k = 0; k < m; k++)
            for (size_t i = 0; i < inner; i++) {
                double re = 0, im = 0;
                for (size_t t = 0; t < n; t++) {
                    const float *v = x + ((o * n + t) * inner + i) * c;
                    /* the angle's index product is reduced mod n so it stays exact */
                    double a = sign * 2.0 * M_PI * (double)((k * t) % n) / (double)n;
                    double xr = v[0], xi = c == 2 ? v[1] : 0.0;
                    re += xr * cos(a) - xi * sin(a);
                    im += xr * sin(a) + xi * cos(a);
                }
                float *y = dst + ((o * m + k) * inner + i) * 2;
                y[0] = (float)(re * scale);
                y[1] = (float)(im * scale);
            }
}

void k_stft(const float *x, size_t batch, size_t len, size_t c, const float *window, size_t step,
            size_t fl, int onesided, float *dst)
{
    size_t frames = (len - fl) / step + 1, bins = onesided ? fl / 2 + 1 : fl;
    for (size_t b = 0; b < batch; b++)
        for (size_t f = 0; f < frames; f++)
            for (size_t k = 0; k < bins; k++) {
                double re = 0, im = 0;
                for (size_t t = 0; t < fl; t++) {
                    const float *v = x + (b * len + f * step + t) * c;
                    double w = window ? window[t] : 1.0;
                    double a = -2.0 * M_PI * (double)((k * t) % fl) / (double)fl;
                    double xr = v[0] * w, xi = c == 2 ? v[1] * w : 0.0;
                    re += xr * cos(a) - xi * sin(a);
                    im += xr * sin(a) + xi * cos(a);
                }
                float *y = dst + ((b * frames + f) * bins + k) * 2;
                y[0] = (float)re;
                y[1] = (float)im;
            }
}

void k_mvn(const float *x, const struct engine_shape *s, const int32_t *mask, float *dst)
{
    struct red_walk w;
    red_walk_init(&w, s, mask);
    for (size_t o = 0; o < w.kept; o++) {
        size_t base = walk_offset(o, w.kdim, w.kst, w.nk);
        double sum = 0, sq = 0;
        for (size_t r = 0; r < w.count; r++) {
            double v = x[base + walk_offset(r, w.rdim, w.rst, w.nr)];
            sum += v;
            sq += v * v;
        }
        double mean = w.count ? sum / (double)w.count : 0;
        double var = w.count ? sq / (double)w.count - mean * mean : 0;
        double den = sqrt(var > 0 ? var : 0) + 1e-9;
        for (size_t r = 0; r < w.count; r++) {
            size_t at = base + walk_offset(r, w.rdim, w.rst, w.nr);
            dst[at] = (float)((x[at] - mean) / den);
        }
    }
}

/* ---- losses ---- */

int k_nll(const float *logp, const int64_t *target, const float *weight, size_t n, size_t c,
          size_t inner, enum k_reduction red, int has_ignore, int64_t ignore_index, float *dst)
{
    size_t m = n * inner;
    for (size_t j = 0; j < m; j++)
        if (!(has_ignore && target[j] == ignore_index) && (target[j] < 0 || (size_t)target[j] >= c))
            return -EINVAL;
    double sum = 0, wsum = 0;
    for (size_t j = 0; j < m; j++) {
        size_t b = j / inner, i = j % inner;
        int64_t t = target[j];
        int ignored = has_ignore && t == ignore_index;
        double w = ignored ? 0.0 : weight ? weight[t] : 1.0;
        double loss = ignored ? 0.0 : -w * logp[(b * c + (size_t)t) * inner + i];
        if (red == K_LOSS_NONE)
            dst[j] = (float)loss;
        sum += loss;
        wsum += w;
    }
    if (red == K_LOSS_SUM)
        dst[0] = (float)sum;
    else if (red == K_LOSS_MEAN)
        dst[0] = (float)(sum / wsum);
    return 0;
}
