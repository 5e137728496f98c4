/*
 * kernels.c — plain-C kernels over row-major buffers (see kernels.h).
 *
 * Indexing is done by decomposing flat output indices into coordinates: simple and obviously
 * right, and fast enough for shape subgraphs and the small data-movement ops the backend runs.
 */
#include "engine/kernels.h"

#include <errno.h>
#include <math.h>
#include <string.h>

/* ---- broadcasting ---- */

int k_broadcast_shape(const struct engine_shape *a, const struct engine_shape *b,
                      struct engine_shape *out)
{
    int r = a->rank > b->rank ? a->rank : b->rank;
    out->rank = r;
    for (int i = 0; i < r; i++) {
        int ia = i - (r - a->rank), ib = i - (r - b->rank);
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return -EINVAL;
        out->dims[i] = da == 1 ? db : da;
    }
    return 0;
}

/* Row-major element strides of s. Unsigned products: a shape with a zero dim may have other dims
 * whose product overflows; its strides are never used (no elements), and for any shape with
 * elements every product fits. */
void k_strides(const struct engine_shape *s, int64_t *st)
{
    uint64_t acc = 1;
    for (int d = s->rank - 1; d >= 0; d--) {
        st[d] = (int64_t)acc;
        acc *= (uint64_t)s->dims[d];
    }
}

/* The product of dims [from, to) of s, unsigned for the same reason as k_strides. */
int64_t k_dims_product(const struct engine_shape *s, int from, int to)
{
    uint64_t p = 1;
    for (int d = from; d < to; d++)
        p *= (uint64_t)s->dims[d];
    return (int64_t)p;
}

/* Element strides of s as seen from out's coordinates: 0 on broadcast axes. */
void bcast_strides(const struct engine_shape *s, const struct engine_shape *out, int64_t *st)
{
    int off = out->rank - s->rank;
    uint64_t acc = 1; /* unsigned, as in k_strides */
    for (int i = out->rank - 1; i >= 0; i--) {
        int j = i - off;
        if (j < 0) {
            st[i] = 0;
            continue;
        }
        st[i] = s->dims[j] == 1 ? 0 : (int64_t)acc;
        acc *= (uint64_t)s->dims[j];
    }
}

/* Source offset of flat output index i. */
size_t bcast_offset(size_t i, const struct engine_shape *out, const int64_t *st)
{
    size_t off = 0;
    for (int d = out->rank - 1; d >= 0; d--) {
        size_t dim = (size_t)out->dims[d];
        off += (i % dim) * (size_t)st[d];
        i /= dim;
    }
    return off;
}

#define BINARY_LOOP(T, OUT_T, EXPR)                                                                \
    do {                                                                                           \
        const T *pa = a, *pb = b;                                                                  \
        OUT_T *pd = dst;                                                                           \
        for (size_t i = 0; i < n; i++) {                                                           \
            T x = pa[bcast_offset(i, ds, sa)], y = pb[bcast_offset(i, ds, sb)];                    \
            pd[i] = (OUT_T)(EXPR);                                                                 \
        }                                                                                          \
    } while (0)

/* U is the type the sum, difference and product are taken in: T for floats, the unsigned type of
 * T's width for integers, which wrap (as numpy's do) instead of overflowing. */
#define BINARY_OPS(T, U, DIV_EXPR, POW_EXPR)                                                       \
    switch (op) {                                                                                  \
    case K_ADD:                                                                                    \
        BINARY_LOOP(T, T, (U)x + (U)y);                                                            \
        break;                                                                                     \
    case K_SUB:                                                                                    \
        BINARY_LOOP(T, T, (U)x - (U)y);                                                            \
        break;                                                                                     \
    case K_MUL:                                                                                    \
        BINARY_LOOP(T, T, (U)x *(U)y);                                                             \
        break;                                                                                     \
    case K_DIV:                                                                                    \
        BINARY_LOOP(T, T, DIV_EXPR);                                                               \
        break;                                                                                     \
    case K_POW:                                                                                    \
        BINARY_LOOP(T, T, POW_EXPR);                                                               \
        break;                                                                                     \
    case K_MAX:                                                                                    \
        BINARY_LOOP(T, T, x > y ? x : y);                                                          \
        break;                                                                                     \
    case K_MIN:                                                                                    \
        BINARY_LOOP(T, T, x < y ? x : y);                                                          \
        break;                                                                                     \
    case K_EQUAL:                                                                                  \
        BINARY_LOOP(T, uint8_t, x == y);                                                           \
        break;                                                                                     \
    case K_LESS:                                                                                   \
        BINARY_LOOP(T, uint8_t, x < y);                                                            \
        break;                                                                                     \
    case K_GREATER:                                                                                \
        BINARY_LOOP(T, uint8_t, x > y);                                                            \
        break;                                                                                     \
    }

static int has_int_zero(int dtype, const void *b, const struct engine_shape *bs)
{
    size_t n = (size_t)engine_shape_numel(bs);
    for (size_t i = 0; i < n; i++)
        if (dtype == ENGINE_I64 ? ((const int64_t *)b)[i] == 0 : ((const int32_t *)b)[i] == 0)
            return 1;
    return 0;
}

/* Integer Pow by repeated multiplication, wrapping; negative exponents give 0 (as numpy's int
 * would error). */
static int64_t ipow(int64_t x, int64_t y)
{
    uint64_t r = 1;
    for (int64_t k = 0; k < y && k < 64; k++)
        r *= (uint64_t)x;
    return y < 0 ? 0 : (int64_t)r;
}

int k_binary(enum k_binop op, int dtype, const void *a, const struct engine_shape *as,
             const void *b, const struct engine_shape *bs, void *dst, const struct engine_shape *ds)
{
    int64_t sa[ENGINE_MAX_RANK], sb[ENGINE_MAX_RANK];
    bcast_strides(as, ds, sa);
    bcast_strides(bs, ds, sb);
    size_t n = (size_t)engine_shape_numel(ds);
    switch (dtype) {
    case ENGINE_F32:
        BINARY_OPS(float, float, x / y, powf(x, y));
        return 0;
    case ENGINE_F64:
        BINARY_OPS(double, double, x / y, pow(x, y));
        return 0;
    case ENGINE_I64:
        if (op == K_DIV && has_int_zero(dtype, b, bs))
            return -EDOM;
        BINARY_OPS(int64_t, uint64_t, y == -1 ? 0 - (uint64_t)x : (uint64_t)(x / y), ipow(x, y));
        return 0;
    case ENGINE_I32:
        if (op == K_DIV && has_int_zero(dtype, b, bs))
            return -EDOM;
        BINARY_OPS(int32_t, uint32_t, y == -1 ? 0 - (uint32_t)x : (uint32_t)(x / y), ipow(x, y));
        return 0;
    }
    return -ENOTSUP;
}

void k_where(const uint8_t *cond, const struct engine_shape *cs, const void *a,
             const struct engine_shape *as, const void *b, const struct engine_shape *bs,
             size_t esize, void *dst, const struct engine_shape *ds)
{
    int64_t sc[ENGINE_MAX_RANK], sa[ENGINE_MAX_RANK], sb[ENGINE_MAX_RANK];
    bcast_strides(cs, ds, sc);
    bcast_strides(as, ds, sa);
    bcast_strides(bs, ds, sb);
    size_t n = (size_t)engine_shape_numel(ds);
    for (size_t i = 0; i < n; i++) {
        int c = cond[bcast_offset(i, ds, sc)] != 0;
        const char *src = c ? (const char *)a + bcast_offset(i, ds, sa) * esize
                            : (const char *)b + bcast_offset(i, ds, sb) * esize;
        memcpy((char *)dst + i * esize, src, esize);
    }
}

void k_expand(const void *src, const struct engine_shape *ss, size_t esize, void *dst,
              const struct engine_shape *ds)
{
    int64_t st[ENGINE_MAX_RANK];
    bcast_strides(ss, ds, st);
    size_t n = (size_t)engine_shape_numel(ds);
    for (size_t i = 0; i < n; i++)
        memcpy((char *)dst + i * esize, (const char *)src + bcast_offset(i, ds, st) * esize, esize);
}

/* ---- element-wise ---- */

float k_act1(enum ir_act act, float alpha, float beta, float x)
{
    switch (act) {
    case IR_ACT_NONE:
        return x;
    case IR_ACT_RELU:
        return x > 0 ? x : x * alpha;
    case IR_ACT_CLIP:
        return x < alpha ? alpha : x > beta ? beta : x;
    case IR_ACT_SIGMOID:
        return 1.0f / (1.0f + expf(-x));
    case IR_ACT_TANH:
        return tanhf(x);
    case IR_ACT_HARDSIGMOID: {
        float y = alpha * x + beta;
        return y < 0 ? 0 : y > 1 ? 1 : y;
    }
    case IR_ACT_HARDSWISH: {
        float y = x / 6.0f + 0.5f;
        return x * (y < 0 ? 0 : y > 1 ? 1 : y);
    }
    case IR_ACT_ELU:
        return x > 0 ? x : alpha * (expf(x) - 1.0f);
    case IR_ACT_GELU_ERF:
        return 0.5f * x * (1.0f + erff(x * 0.70710678f));
    case IR_ACT_EXP:
        return expf(x);
    case IR_ACT_SQRT:
        return sqrtf(x);
    case IR_ACT_ABS:
        return fabsf(x);
    }
    return x;
}

void k_act(enum ir_act act, float alpha, float beta, const float *src, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = k_act1(act, alpha, beta, src[i]);
}

static double load_elem(const void *p, int dt, size_t i)
{
    switch (dt) {
    case ENGINE_F32:
        return ((const float *)p)[i];
    case ENGINE_U8:
    case ENGINE_BOOL:
        return ((const uint8_t *)p)[i];
    case ENGINE_I8:
        return ((const int8_t *)p)[i];
    case ENGINE_I32:
        return ((const int32_t *)p)[i];
    }
    return 0;
}

static void store_elem(void *p, int dt, size_t i, double v)
{
    switch (dt) {
    case ENGINE_F32:
        ((float *)p)[i] = (float)v;
        break;
    case ENGINE_U8:
        ((uint8_t *)p)[i] = (uint8_t)(int64_t)v;
        break;
    case ENGINE_BOOL:
        ((uint8_t *)p)[i] = v != 0;
        break;
    case ENGINE_I8:
        ((int8_t *)p)[i] = (int8_t)(int64_t)v;
        break;
    case ENGINE_I32:
        ((int32_t *)p)[i] = (int32_t)(int64_t)v;
        break;
    }
}

int64_t k_saturate_i64(double v)
{
    if (isnan(v))
        return 0;
    if (v >= 9.2233720368547758e18)
        return INT64_MAX;
    if (v <= -9.2233720368547758e18)
        return INT64_MIN;
    return (int64_t)v;
}

static void store_i64(void *p, int dt, size_t i, int64_t v)
{
    switch (dt) {
    case ENGINE_I64:
        ((int64_t *)p)[i] = v;
        break;
    case ENGINE_F32:
        ((float *)p)[i] = (float)v;
        break;
    case ENGINE_BOOL:
        ((uint8_t *)p)[i] = v != 0;
        break;
    case ENGINE_I32:
        ((int32_t *)p)[i] = (int32_t)v;
        break;
    case ENGINE_I8:
        ((int8_t *)p)[i] = (int8_t)v;
        break;
    case ENGINE_U8:
        ((uint8_t *)p)[i] = (uint8_t)v;
        break;
    }
}

/* ---- Cast to and from float64 and float16 ---- */

int k_dtype_wide(int dtype)
{
    return dtype == ENGINE_F64 || dtype == ENGINE_F16;
}

static double half_to_double(uint16_t h)
{
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(m | 0x400, e - 25);
    return h & 0x8000 ? -v : v;
}

/* Round to nearest even in one step from double (so float32 sources round once, too). */
static uint16_t double_to_half(double d)
{
    uint16_t sign = signbit(d) ? 0x8000 : 0;
    double a = fabs(d);
    if (isnan(d))
        return sign | 0x7e00;
    if (a >= 65520.0) /* halfway past the largest half, 65504: rounds to infinity */
        return sign | 0x7c00;
    int e;
    frexp(a, &e); /* a = f * 2^e, f in [0.5, 1) */
    if (a == 0 || e - 1 < -14) {
        double q = nearbyint(ldexp(a, 24)); /* subnormal steps of 2^-24; 1024 is the min normal */
        return sign | (uint16_t)q;
    }
    double q = nearbyint(ldexp(a, 11 - e)); /* in [1024, 2048] */
    if (q == 2048)
        q = 1024, e++;
    return sign | (uint16_t)((e - 1 + 15) << 10 | ((int)q - 1024));
}

static double wide_load(const void *p, int dt, size_t i)
{
    switch (dt) {
    case ENGINE_F64:
        return ((const double *)p)[i];
    case ENGINE_F16:
        return half_to_double(((const uint16_t *)p)[i]);
    case ENGINE_F32:
        return ((const float *)p)[i];
    case ENGINE_I64:
        return (double)((const int64_t *)p)[i];
    case ENGINE_I32:
        return ((const int32_t *)p)[i];
    case ENGINE_I8:
        return ((const int8_t *)p)[i];
    default: /* uint8, bool */
        return ((const uint8_t *)p)[i];
    }
}

static void wide_store(void *p, int dt, size_t i, double v)
{
    switch (dt) {
    case ENGINE_F64:
        ((double *)p)[i] = v;
        break;
    case ENGINE_F16:
        ((uint16_t *)p)[i] = double_to_half(v);
        break;
    case ENGINE_F32:
        ((float *)p)[i] = (float)v;
        break;
    case ENGINE_I64:
        ((int64_t *)p)[i] = k_saturate_i64(v);
        break;
    case ENGINE_I32:
        ((int32_t *)p)[i] = (int32_t)(uint32_t)k_saturate_i64(v);
        break;
    case ENGINE_I8:
        ((int8_t *)p)[i] = (int8_t)(uint8_t)k_saturate_i64(v);
        break;
    case ENGINE_BOOL:
        ((uint8_t *)p)[i] = v != 0;
        break;
    default: /* uint8 */
        ((uint8_t *)p)[i] = (uint8_t)k_saturate_i64(v);
        break;
    }
}

/* Cast where either side is a wide type: float to integer truncates, NaN gives 0, out-of-range
 * values saturate to int64 then wrap; float16 rounds to nearest even. */
static int k_cast_wide(const void *src, int sdtype, void *dst, int ddtype, size_t n)
{
    if (sdtype == ddtype) {
        memcpy(dst, src, n * engine_dtype_size(sdtype));
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        wide_store(dst, ddtype, i, wide_load(src, sdtype, i));
    return 0;
}

/* int32/uint8/int8 to float32, vectorised (an int32 above 2^24 rounds to nearest even, as
 * through double); 0 when it did, -1 for other dtypes. */
K_VECTOR static int cast_to_f32(const void *restrict src, int sdtype, float *restrict dst,
                                size_t n)
{
    if (sdtype == ENGINE_I32)
        for (size_t i = 0; i < n; i++)
            dst[i] = (float)((const int32_t *)src)[i];
    else if (sdtype == ENGINE_U8)
        for (size_t i = 0; i < n; i++)
            dst[i] = (float)((const uint8_t *)src)[i];
    else if (sdtype == ENGINE_I8)
        for (size_t i = 0; i < n; i++)
            dst[i] = (float)((const int8_t *)src)[i];
    else
        return -1;
    return 0;
}

int k_cast(const void *src, int sdtype, void *dst, int ddtype, size_t n)
{
    if (!engine_dtype_size(sdtype) || !engine_dtype_size(ddtype))
        return -ENOTSUP;
    if (ddtype == ENGINE_F32 && cast_to_f32(src, sdtype, dst, n) == 0)
        return 0;
    if (k_dtype_wide(sdtype) || k_dtype_wide(ddtype))
        return k_cast_wide(src, sdtype, dst, ddtype, n);
    for (size_t i = 0; i < n; i++) {
        if (sdtype == ENGINE_I64)
            store_i64(dst, ddtype, i, ((const int64_t *)src)[i]);
        else if (ddtype == ENGINE_I64)
            ((int64_t *)dst)[i] = k_saturate_i64(load_elem(src, sdtype, i));
        else
            store_elem(dst, ddtype, i, load_elem(src, sdtype, i));
    }
    return 0;
}

/* ---- data movement ---- */

/* Transpose in runs: the trailing axes perm keeps in place (and, inside them, whole) are one
 * contiguous block in both tensors, copied at once; the outer output index advances as an
 * odometer, its source offset updated by strides (no division per element). */
void k_transpose(const void *src, const struct engine_shape *s, const int *perm, size_t esize,
                 void *dst)
{
    int r = s->rank, k = r;
    int64_t sst[ENGINE_MAX_RANK], pst[ENGINE_MAX_RANK], odims[ENGINE_MAX_RANK];
    k_strides(s, sst);
    size_t block = esize;
    while (k > 0 && perm[k - 1] == k - 1) /* trailing identity axes: contiguous on both sides */
        block *= (size_t)s->dims[--k];
    for (int i = 0; i < k; i++) {
        pst[i] = sst[perm[i]];
        odims[i] = s->dims[perm[i]];
    }
    size_t n = (size_t)engine_shape_numel(s);
    if (n == 0)
        return;
    int64_t ix[ENGINE_MAX_RANK] = {0}, off = 0;
    size_t blocks = n * esize / block;
    char *o = dst;
    for (size_t i = 0; i < blocks; i++, o += block) {
        memcpy(o, (const char *)src + (size_t)off * esize, block);
        for (int d = k - 1; d >= 0; d--) {
            off += pst[d];
            if (++ix[d] < odims[d])
                break;
            off -= pst[d] * odims[d];
            ix[d] = 0;
        }
    }
}

void k_concat(const void *const *srcs, const struct engine_shape *shapes, int n, int axis,
              size_t esize, void *dst)
{
    size_t outer = 1, inner = 1;
    for (int d = 0; d < axis; d++)
        outer *= (size_t)shapes[0].dims[d];
    for (int d = axis + 1; d < shapes[0].rank; d++)
        inner *= (size_t)shapes[0].dims[d];
    char *o = dst;
    for (size_t i = 0; i < outer; i++)
        for (int k = 0; k < n; k++) {
            size_t chunk = (size_t)shapes[k].dims[axis] * inner * esize;
            memcpy(o, (const char *)srcs[k] + i * chunk, chunk);
            o += chunk;
        }
}

/* Slice in runs: with step 1 on the last axis its selected elements are one contiguous run,
 * copied at once; the outer index advances as an odometer (no division per element). */
void k_slice(const void *src, const struct engine_shape *s, const int64_t *starts,
             const int64_t *steps, const struct engine_shape *out, size_t esize, void *dst)
{
    int64_t sst[ENGINE_MAX_RANK], ix[ENGINE_MAX_RANK] = {0}, off = 0;
    int r = out->rank;
    k_strides(s, sst);
    size_t n = (size_t)engine_shape_numel(out);
    if (n == 0)
        return;
    for (int d = 0; d < r; d++)
        off += starts[d] * sst[d];
    int k = r > 0 && steps[r - 1] == 1 ? r - 1 : r; /* axes walked by the odometer */
    size_t run = k < r ? (size_t)out->dims[r - 1] : 1;
    char *o = dst;
    for (size_t i = 0; i < n; i += run, o += run * esize) {
        memcpy(o, (const char *)src + (size_t)off * esize, run * esize);
        for (int d = k - 1; d >= 0; d--) {
            off += steps[d] * sst[d];
            if (++ix[d] < out->dims[d])
                break;
            off -= steps[d] * sst[d] * out->dims[d];
            ix[d] = 0;
        }
    }
}

int k_gather(const void *data, const struct engine_shape *s, int axis, const int64_t *idx,
             size_t n_idx, size_t esize, void *dst)
{
    size_t outer = 1, inner = 1, len = (size_t)s->dims[axis];
    for (int d = 0; d < axis; d++)
        outer *= (size_t)s->dims[d];
    for (int d = axis + 1; d < s->rank; d++)
        inner *= (size_t)s->dims[d];
    for (size_t k = 0; k < n_idx; k++)
        if (idx[k] < -(int64_t)len || idx[k] >= (int64_t)len)
            return -EINVAL;
    char *o = dst;
    size_t chunk = inner * esize;
    for (size_t i = 0; i < outer; i++)
        for (size_t k = 0; k < n_idx; k++) {
            int64_t j = idx[k] < 0 ? idx[k] + (int64_t)len : idx[k];
            memcpy(o, (const char *)data + (i * len + (size_t)j) * chunk, chunk);
            o += chunk;
        }
    return 0;
}

/* Maps an output coordinate to a source coordinate for reflect/edge padding; -1: use value. */
static int64_t pad_source(int64_t c, int64_t len, enum k_pad_mode mode)
{
    if (c >= 0 && c < len)
        return c;
    if (mode == K_PAD_CONSTANT)
        return -1;
    if (mode == K_PAD_EDGE || len == 1)
        return c < 0 ? 0 : len - 1;
    int64_t period = 2 * (len - 1);
    int64_t m = ((c % period) + period) % period;
    return m < len ? m : period - m;
}

void k_pad(const void *src, const struct engine_shape *s, const int64_t *pads_begin,
           enum k_pad_mode mode, const void *value, size_t esize, void *dst,
           const struct engine_shape *out)
{
    int64_t sst[ENGINE_MAX_RANK];
    k_strides(s, sst);
    size_t n = (size_t)engine_shape_numel(out);
    for (size_t i = 0; i < n; i++) {
        size_t rem = i;
        int64_t off = 0;
        int outside = 0;
        for (int d = out->rank - 1; d >= 0; d--) {
            int64_t c = (int64_t)(rem % (size_t)out->dims[d]) - pads_begin[d];
            rem /= (size_t)out->dims[d];
            int64_t sc = pad_source(c, s->dims[d], mode);
            if (sc < 0)
                outside = 1;
            else
                off += sc * sst[d];
        }
        const void *from = outside ? value : (const char *)src + (size_t)off * esize;
        memcpy((char *)dst + i * esize, from, esize);
    }
}

void k_reduce_mean(const float *src, const struct engine_shape *s, const int *reduce, float *dst)
{
    struct engine_shape o = {.rank = s->rank};
    size_t count = 1;
    for (int d = 0; d < s->rank; d++) {
        o.dims[d] = reduce[d] ? 1 : s->dims[d];
        count *= reduce[d] ? (size_t)s->dims[d] : 1;
    }
    size_t on = (size_t)engine_shape_numel(&o), n = (size_t)engine_shape_numel(s);
    for (size_t j = 0; j < on; j++)
        dst[j] = 0;
    int64_t ost[ENGINE_MAX_RANK];
    uint64_t acc = 1; /* unsigned, as in k_strides */
    for (int d = s->rank - 1; d >= 0; d--) {
        ost[d] = reduce[d] ? 0 : (int64_t)acc;
        acc *= (uint64_t)o.dims[d];
    }
    for (size_t i = 0; i < n; i++)
        dst[bcast_offset(i, s, ost)] += src[i];
    for (size_t j = 0; j < on; j++)
        dst[j] = count ? dst[j] / (float)count : NAN;
}

void k_softmax(const float *src, float *dst, size_t outer, size_t len, size_t inner)
{
    for (size_t o = 0; o < outer; o++)
        for (size_t i = 0; i < inner; i++) {
            const float *x = src + o * len * inner + i;
            float *y = dst + o * len * inner + i;
            float mx = -INFINITY;
            for (size_t k = 0; k < len; k++)
                mx = x[k * inner] > mx ? x[k * inner] : mx;
            double sum = 0;
            for (size_t k = 0; k < len; k++) {
                y[k * inner] = expf(x[k * inner] - mx);
                sum += y[k * inner];
            }
            for (size_t k = 0; k < len; k++)
                y[k * inner] = (float)(y[k * inner] / sum);
        }
}
