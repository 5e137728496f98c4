/*
 * kernels_quant.c — the quantisation kernels in plain C: QuantizeLinear, DequantizeLinear,
 * DynamicQuantizeLinear, ConvInteger/QLinearConv and MatMulInteger/QLinearMatMul where oneDNN's
 * int8 primitives do not run them exactly (see the "kernels_math.c" section of kernels.h). The
 * int16 GEMM under the convolutions and matmuls and the AVX2 bulk loops are kernels_int8.c's.
 * Integers through int64, float math in float (double where the reference rounds once); every
 * kernel trusts its shapes (kernel_check.c checks them against the buffers).
 */
#include "engine/kernels.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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
static void quantize_tensor(const float *restrict src, float s, float z, float lo, float hi,
                            int is_u8, void *restrict dst, size_t n)
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
        float z = zp ? (float)k_load_int(zp, dtype, 0) : 0;
        int u8 = dtype == ENGINE_U8;
        quantize_tensor(src, scale[0], z, u8 ? 0.0f : -128.0f, u8 ? 255.0f : 127.0f, u8, dst, n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        size_t c = channel_of(i, nscale, len, inner);
        int64_t z = zp ? k_load_int(zp, dtype, c) : 0;
        k_store_int(dst, dtype, i, saturate_q((double)rintf(src[i] / scale[c]) + (double)z, dtype));
    }
}

void k_dequantize(const void *src, int dtype, const float *scale, const void *zp, size_t nscale,
                  size_t len, size_t inner, float *dst, size_t n)
{
    if (nscale == 1 && (dtype == ENGINE_U8 || dtype == ENGINE_I8)) { /* per tensor: hoisted */
        int32_t z = zp ? (int32_t)k_load_int(zp, dtype, 0) : 0;
        dequantize_tensor(src, dtype == ENGINE_U8, z, scale[0], dst, n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        size_t c = channel_of(i, nscale, len, inner);
        int64_t z = zp ? k_load_int(zp, dtype, c) : 0;
        dst[i] = (float)(k_load_int(src, dtype, i) - z) * scale[c];
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
    if (!is_q8dt(q->adt) || !is_q8dt(q->bdt) || (q->multiplier && q->k > K_QDOT_MAX_K) || !q->m ||
        !q->n || !q->k)
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
            k_qpack_rows((const uint8_t *)b + (q->b_batched ? t * q->k * q->n : 0), q->bdt, q->bzp,
                         (int64_t)q->n_bzp, (int64_t)q->n, (int64_t)q->k, 1, (int64_t)q->n,
                         (int64_t)kp, pb);
        k_qdot(pa, (int64_t)q->m, pb, (int64_t)q->n, (int64_t)kp, out, (int64_t)q->n);
        if (!c)
            continue;
        int64_t yz = q->yzp ? k_load_int(q->yzp, q->ydt, 0) : 0;
        for (size_t i = 0; i < q->m * q->n; i++)
            k_store_int(dst, q->ydt, t * q->m * q->n + i,
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
                int64_t az = q->azp ? k_load_int(q->azp, q->adt, q->n_azp == 1 ? 0 : i) : 0;
                int64_t bz = q->bzp ? k_load_int(q->bzp, q->bdt, q->n_bzp == 1 ? 0 : j) : 0;
                size_t ab = t * q->m * q->k, bb = q->b_batched ? t * q->k * q->n : 0;
                int64_t acc = 0;
                for (size_t p = 0; p < q->k; p++)
                    acc += (k_load_int(a, q->adt, ab + i * q->k + p) - az) *
                           (k_load_int(b, q->bdt, bb + p * q->n + j) - bz);
                size_t o = (t * q->m + i) * q->n + j;
                if (!q->multiplier) {
                    ((int32_t *)dst)[o] = (int32_t)(uint32_t)(uint64_t)acc;
                    continue;
                }
                int64_t yz = q->yzp ? k_load_int(q->yzp, q->ydt, 0) : 0;
                k_store_int(dst, q->ydt, o,
                            saturate_q(rint((double)acc * *q->multiplier) + (double)yz, q->ydt));
            }
}

/* The integer sum of one output element of a quantized convolution. */
static int64_t qconv_sum(const struct k_qconv *q, const void *x, const void *w, int64_t b,
                         int64_t mo, const int64_t *o)
{
    int64_t cg = q->c / q->group, g = mo / (q->m / q->group), acc = 0;
    int64_t xz = q->xzp ? k_load_int(q->xzp, q->xdt, 0) : 0;
    int64_t wz = q->wzp ? k_load_int(q->wzp, q->wdt, q->n_wzp == 1 ? 0 : (size_t)mo) : 0;
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
                    acc +=
                        (k_load_int(x, q->xdt, (size_t)at) - xz) * (k_load_int(w, q->wdt, wi) - wz);
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
    int64_t yz = q->yzp ? k_load_int(q->yzp, q->ydt, 0) : 0;
    double v = rint((double)acc * mult);
    k_store_int(dst, q->ydt, i, saturate_q((q->relu && v < 0 ? 0 : v) + (double)yz, q->ydt));
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
    if (!is_q8dt(q->xdt) || !is_q8dt(q->wdt) || (q->xs && kk > K_QDOT_MAX_K) || kk < 1 || mg < 1 ||
        np < 1)
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
    int32_t xz = q->xzp ? (int32_t)k_load_int(q->xzp, q->xdt, 0) : 0;
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
        int32_t wz =
            q->wzp ? (int32_t)k_load_int(q->wzp, q->wdt, q->n_wzp == 1 ? 0 : (size_t)mo) : 0;
        int32_t *restrict ar = acc + j * n2;
        memset(ar, 0, (size_t)n2 * sizeof(*ar));
        for (int64_t t = 0; t < taps; t++) {
            int32_t wv = (int32_t)k_load_int(w, q->wdt, (size_t)(mo * taps + t)) - wz;
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
