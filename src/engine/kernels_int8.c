/*
 * kernels_int8.c — the integer GEMM under ConvInteger, QLinearConv, MatMulInteger and
 * QLinearMatMul (kernels_math.c): operands less their zero points as int16 rows (a uint8/int8
 * value less a uint8/int8 zero point lies in [-255, 255]), dot products of rows in int32.
 *
 * Exactness: a product is at most 255 * 255 in magnitude and vpmaddwd adds two of them
 * (<= 130050, no saturation), so each int32 lane holds the exact partial sum modulo 2^32 and so
 * does the total: ConvInteger's int32 output bit for bit. Callers that requantise use this path
 * only while k * 255 * 255 fits int32 (K_QDOT_MAX_K), where the sum is exact.
 *
 * Also the AVX2 bulk of per-tensor QuantizeLinear (k_quantize_bulk): the scalar loop's bits.
 */
#include "engine/kernels.h"
#include <string.h>

static int qdot_isa = -1; /* 1: AVX2, 0: plain; chosen once (a race writes the same value) */

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

__attribute__((target("avx2"))) static inline int32_t hsum8(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

#define LD(p) _mm256_loadu_si256((const __m256i *)(const void *)(p))
#define MAC(c, a, t) c = _mm256_add_epi32(c, _mm256_madd_epi16(a, t))

/* Rows of a in blocks of 4 against rows of t in pairs: 8 sums in registers, each a and t load
 * used twice or four times. */
__attribute__((target("avx2"))) static void qdot_avx2(const int16_t *a, int64_t nj,
                                                      const int16_t *t, int64_t np, int64_t kp,
                                                      int32_t *c, int64_t ldc)
{
    int64_t j = 0;
    for (; j + 4 <= nj; j += 4) {
        const int16_t *a0 = a + j * kp, *a1 = a0 + kp, *a2 = a1 + kp, *a3 = a2 + kp;
        int64_t p = 0;
        for (; p + 2 <= np; p += 2) {
            const int16_t *t0 = t + p * kp, *t1 = t0 + kp;
            __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00,
                    c21 = c00, c30 = c00, c31 = c00;
            for (int64_t k = 0; k < kp; k += 16) {
                __m256i v0 = LD(t0 + k), v1 = LD(t1 + k), w = LD(a0 + k);
                MAC(c00, w, v0), MAC(c01, w, v1);
                w = LD(a1 + k), MAC(c10, w, v0), MAC(c11, w, v1);
                w = LD(a2 + k), MAC(c20, w, v0), MAC(c21, w, v1);
                w = LD(a3 + k), MAC(c30, w, v0), MAC(c31, w, v1);
            }
            int32_t *o = c + j * ldc + p;
            o[0] = hsum8(c00), o[1] = hsum8(c01);
            o[ldc] = hsum8(c10), o[ldc + 1] = hsum8(c11);
            o[2 * ldc] = hsum8(c20), o[2 * ldc + 1] = hsum8(c21);
            o[3 * ldc] = hsum8(c30), o[3 * ldc + 1] = hsum8(c31);
        }
        for (; p < np; p++) {
            const int16_t *t0 = t + p * kp;
            __m256i c0 = _mm256_setzero_si256(), c1 = c0, c2 = c0, c3 = c0;
            for (int64_t k = 0; k < kp; k += 16) {
                __m256i v0 = LD(t0 + k);
                MAC(c0, LD(a0 + k), v0), MAC(c1, LD(a1 + k), v0);
                MAC(c2, LD(a2 + k), v0), MAC(c3, LD(a3 + k), v0);
            }
            int32_t *o = c + j * ldc + p;
            o[0] = hsum8(c0), o[ldc] = hsum8(c1), o[2 * ldc] = hsum8(c2), o[3 * ldc] = hsum8(c3);
        }
    }
    for (; j < nj; j++)
        for (int64_t p = 0; p < np; p++) {
            __m256i c0 = _mm256_setzero_si256();
            for (int64_t k = 0; k < kp; k += 16)
                MAC(c0, LD(a + j * kp + k), LD(t + p * kp + k));
            c[j * ldc + p] = hsum8(c0);
        }
}
#undef LD
#undef MAC
#define HAVE_QDOT_AVX2 1

/* Per-tensor quantization of the first n - n % 8 values, 8 at a time: x / s rounded to nearest
 * even (vroundps, as rintf), + z, clamped to the type's range, NaN to 0; the bits of the scalar
 * loop's (quantize_tensor). Returns how many it did. */
__attribute__((target("avx2"))) static size_t quantize_avx2(const float *src, float s, float z,
                                                            int is_u8, void *dst, size_t n)
{
    __m256 vs = _mm256_set1_ps(s), vz = _mm256_set1_ps(z), zero = _mm256_setzero_ps();
    __m256 lo = _mm256_set1_ps(is_u8 ? 0.0f : -128.0f), hi = _mm256_set1_ps(is_u8 ? 255.0f : 127.0f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_div_ps(_mm256_loadu_ps(src + i), vs);
        __m256 nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
        v = _mm256_add_ps(_mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), vz);
        v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
        __m256i q = _mm256_cvtps_epi32(_mm256_blendv_ps(v, zero, nan));
        __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
        w = is_u8 ? _mm_packus_epi16(w, w) : _mm_packs_epi16(w, w);
        _mm_storel_epi64((__m128i *)(void *)((uint8_t *)dst + i), w);
    }
    return i;
}

/* min and max of the first n - n % 8 values, folded into *lo and *hi; a NaN is never chosen
 * (vminps/vmaxps keep the other operand), as in the scalar loop. */
__attribute__((target("avx2"))) static size_t minmax_avx2(const float *x, size_t n, float *lo,
                                                          float *hi)
{
    __m256 l = _mm256_set1_ps(*lo), h = _mm256_set1_ps(*hi);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        l = _mm256_min_ps(v, l);
        h = _mm256_max_ps(v, h);
    }
    float ls[8], hs[8];
    _mm256_storeu_ps(ls, l);
    _mm256_storeu_ps(hs, h);
    for (int k = 0; k < 8; k++) {
        *lo = ls[k] < *lo ? ls[k] : *lo;
        *hi = hs[k] > *hi ? hs[k] : *hi;
    }
    return i;
}
#endif

size_t k_minmax_bulk(const float *x, size_t n, float *lo, float *hi)
{
#ifdef HAVE_QDOT_AVX2
    if (qdot_isa < 0)
        qdot_isa = __builtin_cpu_supports("avx2") ? 1 : 0;
    if (qdot_isa == 1)
        return minmax_avx2(x, n, lo, hi);
#endif
    (void)x, (void)n, (void)lo, (void)hi;
    return 0;
}

size_t k_quantize_bulk(const float *src, float s, float z, int is_u8, void *dst, size_t n)
{
#ifdef HAVE_QDOT_AVX2
    if (qdot_isa < 0)
        qdot_isa = __builtin_cpu_supports("avx2") ? 1 : 0;
    if (qdot_isa == 1)
        return quantize_avx2(src, s, z, is_u8, dst, n);
#endif
    (void)src, (void)s, (void)z, (void)is_u8, (void)dst, (void)n;
    return 0;
}

/* The portable path: the same sums in uint32 (wrapping, as the vector lanes do). */
static void qdot_plain(const int16_t *a, int64_t nj, const int16_t *t, int64_t np, int64_t kp,
                       int32_t *c, int64_t ldc)
{
    for (int64_t j = 0; j < nj; j++)
        for (int64_t p = 0; p < np; p++) {
            uint32_t s = 0;
            for (int64_t k = 0; k < kp; k++)
                s += (uint32_t)((int32_t)a[j * kp + k] * t[p * kp + k]);
            c[j * ldc + p] = (int32_t)s;
        }
}


void k_qdot_force_plain(int plain)
{
    qdot_isa = plain ? 0 : -1;
}

void k_qdot(const int16_t *a, int64_t nj, const int16_t *t, int64_t np, int64_t kp, int32_t *c,
            int64_t ldc)
{
#ifdef HAVE_QDOT_AVX2
    if (qdot_isa < 0)
        qdot_isa = __builtin_cpu_supports("avx2") ? 1 : 0;
    if (qdot_isa == 1) {
        qdot_avx2(a, nj, t, np, kp, c, ldc);
        return;
    }
#endif
    qdot_plain(a, nj, t, np, kp, c, ldc);
}

/* One uint8/int8 value as an int. */
static inline int32_t q8_at(const void *p, int dt, size_t i)
{
    return dt == ENGINE_U8 ? ((const uint8_t *)p)[i] : ((const int8_t *)p)[i];
}

#define QPACK_ROWS 8 /* rows packed together from a source whose rows are its columns */
#define QPACK_COLS 64 /* and the columns of one tile */

/* The rows of a source laid out column by column (row_stride 1: MatMul's B, k by rows): in
 * tiles of QPACK_ROWS x QPACK_COLS whose source lines stay in L1 while each output row of the
 * tile is written in one run (B [1280, 1000]: 1.64 -> 0.75 ms per pack). */
static void qpack_columns(const void *src, int dt, const void *zp, int64_t n_zp, int64_t rows,
                          int64_t k, int64_t col_stride, int64_t kp, int16_t *dst)
{
    for (int64_t r0 = 0; r0 < rows; r0 += QPACK_ROWS) {
        int64_t nr = rows - r0 < QPACK_ROWS ? rows - r0 : QPACK_ROWS;
        int32_t z[QPACK_ROWS];
        for (int64_t j = 0; j < nr; j++)
            z[j] = zp ? q8_at(zp, dt, n_zp == 1 ? 0 : (size_t)(r0 + j)) : 0;
        for (int64_t i0 = 0; i0 < k; i0 += QPACK_COLS) {
            int64_t ni = k - i0 < QPACK_COLS ? k - i0 : QPACK_COLS;
            for (int64_t j = 0; j < nr; j++) { /* the tile's source lines stay in L1 */
                int16_t *o = dst + (r0 + j) * kp;
                const size_t at = (size_t)(i0 * col_stride + r0 + j), cs = (size_t)col_stride;
                if (dt == ENGINE_U8)
                    for (int64_t i = 0; i < ni; i++)
                        o[i0 + i] = (int16_t)(((const uint8_t *)src)[at + (size_t)i * cs] - z[j]);
                else
                    for (int64_t i = 0; i < ni; i++)
                        o[i0 + i] = (int16_t)(((const int8_t *)src)[at + (size_t)i * cs] - z[j]);
            }
        }
        for (int64_t j = 0; j < nr; j++)
            memset(dst + (r0 + j) * kp + k, 0, (size_t)(kp - k) * sizeof(*dst));
    }
}

void k_qpack_rows(const void *src, int dt, const void *zp, int64_t n_zp, int64_t rows, int64_t k,
                  int64_t row_stride, int64_t col_stride, int64_t kp, int16_t *dst)
{
    if (row_stride == 1 && col_stride != 1) {
        qpack_columns(src, dt, zp, n_zp, rows, k, col_stride, kp, dst);
        return;
    }
    for (int64_t r = 0; r < rows; r++) {
        int32_t z = zp ? q8_at(zp, dt, n_zp == 1 ? 0 : (size_t)r) : 0;
        int16_t *o = dst + r * kp;
        if (col_stride == 1 && dt == ENGINE_U8) {
            const uint8_t *s = (const uint8_t *)src + r * row_stride;
            for (int64_t i = 0; i < k; i++)
                o[i] = (int16_t)(s[i] - z);
        } else if (col_stride == 1) {
            const int8_t *s = (const int8_t *)src + r * row_stride;
            for (int64_t i = 0; i < k; i++)
                o[i] = (int16_t)(s[i] - z);
        } else
            for (int64_t i = 0; i < k; i++)
                o[i] = (int16_t)(q8_at(src, dt, (size_t)(r * row_stride + i * col_stride)) - z);
        memset(o + k, 0, (size_t)(kp - k) * sizeof(*o));
    }
}

int64_t k_qconv_extent(const struct k_qconv *q, int64_t ext[3])
{
    for (int d = 0; d < 3; d++) {
        int64_t need = (q->out[d] - 1) * q->stride[d] + (q->k[d] - 1) * q->dil[d] + 1;
        ext[d] = q->in[d] + q->pad[d] > need ? q->in[d] + q->pad[d] : need;
    }
    return ext[0] * ext[1] * ext[2];
}

void k_qconv_pad(const struct k_qconv *q, const void *x, int64_t b, int64_t g,
                 const int64_t ext[3], int16_t *xp)
{
    int64_t cg = q->c / q->group, plane = ext[0] * ext[1] * ext[2];
    int32_t xz = q->xzp ? q8_at(q->xzp, q->xdt, 0) : 0;
    memset(xp, 0, (size_t)(cg * plane) * sizeof(*xp));
    for (int64_t ci = 0; ci < cg; ci++)
        for (int64_t i0 = 0; i0 < q->in[0]; i0++)
            for (int64_t i1 = 0; i1 < q->in[1]; i1++) {
                size_t at = (size_t)((((b * q->c + g * cg + ci) * q->in[0] + i0) * q->in[1] + i1) *
                                     q->in[2]);
                int16_t *o = xp + ci * plane +
                             ((i0 + q->pad[0]) * ext[1] + i1 + q->pad[1]) * ext[2] + q->pad[2];
                if (q->xdt == ENGINE_U8)
                    for (int64_t i2 = 0; i2 < q->in[2]; i2++)
                        o[i2] = (int16_t)(((const uint8_t *)x)[at + (size_t)i2] - xz);
                else
                    for (int64_t i2 = 0; i2 < q->in[2]; i2++)
                        o[i2] = (int16_t)(((const int8_t *)x)[at + (size_t)i2] - xz);
            }
}

void k_qconv_im2row(const struct k_qconv *q, const int16_t *xp, const int64_t ext[3], int64_t p0,
                    int64_t np, int64_t kp, int16_t *t)
{
    int64_t cg = q->c / q->group, kk = q->k[0] * q->k[1] * q->k[2];
    int64_t plane = ext[0] * ext[1] * ext[2], k2n = q->k[2], d2 = q->dil[2];
    for (int64_t p = p0; p < p0 + np; p++) {
        int64_t o2 = p % q->out[2], o1 = p / q->out[2] % q->out[1],
                o0 = p / (q->out[2] * q->out[1]);
        int16_t *r = t + (p - p0) * kp;
        for (int64_t ci = 0; ci < cg; ci++)
            for (int64_t k0 = 0; k0 < q->k[0]; k0++) {
                int64_t r0 = o0 * q->stride[0] + k0 * q->dil[0];
                for (int64_t k1 = 0; k1 < q->k[1]; k1++) {
                    int64_t r1 = o1 * q->stride[1] + k1 * q->dil[1];
                    const int16_t *src =
                        xp + ci * plane + (r0 * ext[1] + r1) * ext[2] + o2 * q->stride[2];
                    if (k2n == 3 && d2 == 1) /* the common 3-tap row: no call, no loop */
                        r[0] = src[0], r[1] = src[1], r[2] = src[2];
                    else
                        for (int64_t k2 = 0; k2 < k2n; k2++)
                            r[k2] = src[k2 * d2];
                    r += k2n;
                }
            }
        memset(r, 0, (size_t)(kp - cg * kk) * sizeof(*r));
    }
}
