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
                                 : (double)k_load_int(p, dtype, i);
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
            int64_t v = k_load_int(src, dtype, i);
            k_store_int(dst, dtype, i,
                        op == K_NEG ? (int64_t)(0 - (uint64_t)v) : (v > 0) - (v < 0));
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
        int64_t v = k_load_int(x, dtype, base + walk_offset(r, w->rdim, w->rst, w->nr));
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
            k_store_int(dst, dtype, o, reduce_int(op, dtype, src, &w, base));
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
            if (k_load_int(b, dtype, i) == 0)
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
            int64_t v = logic_int(op, k_load_int(a, dtype, ia), k_load_int(b, dtype, ib));
            k_store_int(dst, out == ENGINE_BOOL ? ENGINE_U8 : dtype, i, v);
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
        if (k_load_int(b, bdtype, i) == 0)
            return -EDOM;
    for (size_t i = 0; i < n; i++) {
        size_t ia = bcast_offset(i, ds, sa), ib = bcast_offset(i, ds, sb);
        if (adtype == ENGINE_F32)
            ((float *)dst)[i] = (float)pow(load_real(a, adtype, ia), load_real(b, bdtype, ib));
        else if (bdtype == ENGINE_F32)
            k_store_int(dst, adtype, i,
                        k_saturate_i64(pow(load_real(a, adtype, ia), load_real(b, bdtype, ib))));
        else
            k_store_int(dst, adtype, i,
                        arith_int(op, k_load_int(a, adtype, ia), k_load_int(b, bdtype, ib)));
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
        int64_t v = k_load_int(x, dtype, bcast_offset(i, ds, st));
        int64_t d = first ? v : k_load_int(dst, dtype, i);
        k_store_int(dst, dtype, i,
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
            int64_t v = k_load_int(x, dtype, i);
            v = lo && v < k_load_int(lo, dtype, 0) ? k_load_int(lo, dtype, 0) : v;
            k_store_int(dst, dtype, i,
                        hi && v > k_load_int(hi, dtype, 0) ? k_load_int(hi, dtype, 0) : v);
        }
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
        is_real(dtype) ? store_real(dst, dtype, i, 0) : k_store_int(dst, dtype, i, 0);
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
                prod = wrap_mul(prod, k_load_int(srcs[k], dtype, off[k]));
            k_store_int(dst, dtype, off[n_in], wrap_add(k_load_int(dst, dtype, off[n_in]), prod));
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
