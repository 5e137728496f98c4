/*
 * winograd.c — the transforms of Winograd F(4x4, 3x3) (see winograd.h).
 *
 * Y = A^T [ (G g G^T) . (B^T d B) ] A over 6x6 input patches d and 4x4 output tiles, with the
 * points 0, 1, -1, 2, -1/2 (and infinity): Lavin & Gray's construction ("Fast Algorithms for
 * Convolutional Neural Networks", 2016) at the points Barabasz et al. found better conditioned
 * than the usual 0, +-1, +-2 ("Error analysis and improving the accuracy of Winograd
 * convolution", 2020): about half the fp32 error (issue 17, docs/bench/accuracy.md). The
 * transforms are vectorised over 8 channels (an nChw8c block, or half of an nChw16c one) with
 * the compiler's vector extension; the elementwise product summed over input channels is 36 matrix
 * products, done by a 6x16 register-blocked FMA kernel over weights packed in 16-channel panels.
 */
#include "engine/winograd.h"

#include <oneapi/dnnl/dnnl_types.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define WINO_TARGET __attribute__((target("avx2,fma")))
#else
#define WINO_TARGET
#endif

typedef float v8 __attribute__((vector_size(32)));

int wino_supported(void)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

int wino_shape_init(struct wino_shape *s, const int64_t in[4], const int64_t out[4], int64_t pad_t,
                    int64_t pad_l, int64_t block, int64_t blk)
{
    const int64_t big = (int64_t)1 << 24;
    for (int i = 0; i < 4; i++)
        if (in[i] < 1 || in[i] > big || out[i] < 1 || out[i] > big)
            return -1;
    int64_t cm = blk ? blk : 8; /* channels come in groups of 8, whole blocks of blk */
    if ((blk != 8 && blk != 16 && blk != 0) || in[0] != out[0] || in[1] % cm || out[1] % cm ||
        pad_t < 0 || pad_l < 0 || pad_t > big || pad_l > big || block < WINO_ROWS ||
        block > WINO_MAX_BLOCK || block % WINO_ROWS)
        return -1;
    /* 3x3 at stride 1: out = in + pad_before + pad_after - 2, with pad_after >= 0 */
    if (out[2] < in[2] + pad_t - 2 || out[3] < in[3] + pad_l - 2 || out[2] > in[2] + 2 * big ||
        out[3] > in[3] + 2 * big)
        return -1;
    *s = (struct wino_shape){.blk = blk,
                             .n = in[0],
                             .c = in[1],
                             .h = in[2],
                             .w = in[3],
                             .k = out[1],
                             .oh = out[2],
                             .ow = out[3],
                             .pad_t = pad_t,
                             .pad_l = pad_l,
                             .block = block};
    s->k16 = (s->k + WINO_COLS - 1) / WINO_COLS * WINO_COLS;
    s->tiles_h = (s->oh + WINO_TILE - 1) / WINO_TILE;
    s->tiles_w = (s->ow + WINO_TILE - 1) / WINO_TILE;
    s->tiles = s->n * s->tiles_h * s->tiles_w;
    return 0;
}

int64_t wino_block_for(int64_t c, int64_t k, int64_t tiles)
{
    int64_t per_tile = WINO_POINTS * (c + k) * (int64_t)sizeof(float);
    int64_t b = ((int64_t)2 << 20) / (per_tile > 0 ? per_tile : 1);
    b = b < 12 ? 12 : b > 64 ? 64 : b;
    if (tiles < b)
        b = tiles < 1 ? 1 : tiles;
    return (b + WINO_ROWS - 1) / WINO_ROWS * WINO_ROWS;
}

uint64_t wino_u_bytes(int64_t c, int64_t k)
{
    uint64_t k16 = (uint64_t)(k + WINO_COLS - 1) / WINO_COLS * WINO_COLS;
    return (uint64_t)WINO_POINTS * (uint64_t)c * k16 * sizeof(float);
}

uint64_t wino_v_bytes(const struct wino_shape *s)
{
    return (uint64_t)WINO_POINTS * (uint64_t)s->block * (uint64_t)s->c * sizeof(float);
}

uint64_t wino_m_bytes(const struct wino_shape *s)
{
    return (uint64_t)WINO_POINTS * (uint64_t)s->block * (uint64_t)s->k16 * sizeof(float);
}

void wino_weights(const float *w, int64_t k, int64_t c, float *u)
{
    static const double g[WINO_ALPHA][3] = {{1, 0, 0},
                                            {-1.0 / 3, -1.0 / 3, -1.0 / 3},
                                            {1.0 / 3, -1.0 / 3, 1.0 / 3},
                                            {1.0 / 15, 2.0 / 15, 4.0 / 15},
                                            {-16.0 / 15, 8.0 / 15, -4.0 / 15},
                                            {0, 0, 1}};
    size_t k16 = (size_t)(k + WINO_COLS - 1) / WINO_COLS * WINO_COLS;
    memset(u, 0, wino_u_bytes(c, k));
    /* output channels innermost: each 16-channel panel row of u is then written in order */
    for (int64_t ci = 0; ci < c; ci++)
        for (int64_t ko = 0; ko < k; ko++) {
            const float *f = w + ((size_t)ko * (size_t)c + (size_t)ci) * 9;
            double t[WINO_ALPHA][3];
            for (int i = 0; i < WINO_ALPHA; i++)
                for (int j = 0; j < 3; j++)
                    t[i][j] = g[i][0] * f[j] + g[i][1] * f[3 + j] + g[i][2] * f[6 + j];
            for (int i = 0; i < WINO_ALPHA; i++)
                for (int j = 0; j < WINO_ALPHA; j++) {
                    double x = t[i][0] * g[j][0] + t[i][1] * g[j][1] + t[i][2] * g[j][2];
                    size_t panel =
                        (size_t)(i * WINO_ALPHA + j) * (k16 / WINO_COLS) + (size_t)ko / WINO_COLS;
                    u[(panel * (size_t)c + (size_t)ci) * WINO_COLS + (size_t)ko % WINO_COLS] =
                        (float)x;
                }
        }
}

WINO_TARGET static inline v8 ld(const float *p)
{
    v8 v;
    memcpy(&v, p, sizeof(v));
    return v;
}

WINO_TARGET static inline void st(float *p, v8 v)
{
    memcpy(p, &v, sizeof(v));
}

WINO_TARGET static inline v8 splat(float f)
{
    return (v8){f, f, f, f, f, f, f, f};
}

WINO_TARGET static inline v8 vmax(v8 a, v8 b)
{
#if defined(__x86_64__)
    return (v8)_mm256_max_ps((__m256)a, (__m256)b);
#else
    for (int i = 0; i < 8; i++)
        a[i] = a[i] > b[i] ? a[i] : b[i];
    return a;
#endif
}

WINO_TARGET static inline v8 vmin(v8 a, v8 b)
{
#if defined(__x86_64__)
    return (v8)_mm256_min_ps((__m256)a, (__m256)b);
#else
    for (int i = 0; i < 8; i++)
        a[i] = a[i] < b[i] ? a[i] : b[i];
    return a;
#endif
}

/* r = B^T d for 6 values of d spaced s apart, written spaced rs apart. */
WINO_TARGET static inline void input_1d(const v8 *d, int s, v8 *r, int rs)
{
    v8 d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s], d4 = d[4 * s], d5 = d[5 * s];
    r[0] = d0 + d4 + 1.5f * (d1 - d3) - 2 * d2;
    r[rs] = d4 - d1 - 2.5f * d2 - 0.5f * d3;
    r[2 * rs] = d1 + d4 + 0.5f * d2 - 2.5f * d3;
    r[3 * rs] = d4 - d2 + 0.5f * (d3 - d1);
    r[4 * rs] = d4 - d2 + 2 * (d1 - d3);
    r[5 * rs] = d1 + d5 + 1.5f * (d2 - d4) - 2 * d3;
}

/* o = A^T m for 6 values of m spaced s apart, 4 written spaced os apart. */
WINO_TARGET static inline void output_1d(const v8 *m, int s, v8 *o, int os)
{
    v8 a = m[s] + m[2 * s], b = m[s] - m[2 * s], m3 = m[3 * s], m4 = m[4 * s];
    o[0] = m[0] + a + m3 + m4;
    o[os] = b + 2 * m3 - 0.5f * m4;
    o[2 * os] = a + 4 * m3 + 0.25f * m4;
    o[3 * os] = b + 8 * m3 - 0.125f * m4 + m[5 * s];
}

int64_t wino_layout_block(uint32_t layout)
{
    return layout == dnnl_aBcd8b ? 8 : layout == dnnl_aBcd16b ? 16 : layout == dnnl_acdb ? 0 : -1;
}

/* Floats between two neighbouring pixels' values of one channel in a tensor of `ch` channels. */
static inline size_t pixel_stride(const struct wino_shape *s, int64_t ch)
{
    return (size_t)(s->blk ? s->blk : ch);
}

/* Where channels 8 cb .. 8 cb + 7 of image img start in a tensor of `ch` channels and `plane`
 * pixels: in block 8 cb / blk, at 8 cb % blk within it (nhwc: one block of all channels). */
static inline size_t group_at(const struct wino_shape *s, int64_t img, int64_t ch, size_t plane,
                              int64_t cb)
{
    int64_t blk = s->blk ? s->blk : ch, lb = cb * 8 / blk, at = cb * 8 % blk;
    return ((size_t)img * (size_t)(ch / blk) + (size_t)lb) * plane * (size_t)blk + (size_t)at;
}

/* The input transform of channel group cb, 8 channels (the OpenMP loops call these per group:
 * an outlined parallel region does not inherit the AVX2 target, so vectors never cross into
 * it). */
WINO_TARGET static void input_block(const struct wino_shape *s, const float *x, int64_t t0,
                                    float *v, int64_t cb)
{
    const int64_t per_img = s->tiles_h * s->tiles_w;
    const size_t px = pixel_stride(s, s->c);
    const size_t plane = (size_t)s->h * (size_t)s->w, point = (size_t)s->block * (size_t)s->c;
    for (int64_t tt = 0; tt < s->block; tt++) {
        float *out = v + (size_t)tt * (size_t)s->c + (size_t)cb * 8;
        int64_t t = t0 + tt;
        v8 d[WINO_POINTS], tmp[WINO_POINTS];
        if (t >= s->tiles) {
            for (int i = 0; i < WINO_POINTS; i++)
                st(out + i * point, splat(0));
            continue;
        }
        int64_t img = t / per_img, r = t % per_img;
        int64_t h0 = (r / s->tiles_w) * WINO_TILE - s->pad_t;
        int64_t w0 = (r % s->tiles_w) * WINO_TILE - s->pad_l;
        const float *xc = x + group_at(s, img, s->c, plane, cb);
        for (int i = 0; i < WINO_ALPHA; i++) {
            int64_t h = h0 + i;
            for (int j = 0; j < WINO_ALPHA; j++) {
                int64_t w = w0 + j;
                int inside = h >= 0 && h < s->h && w >= 0 && w < s->w;
                d[i * WINO_ALPHA + j] =
                    inside ? ld(xc + ((size_t)h * (size_t)s->w + (size_t)w) * px) : splat(0);
            }
        }
        for (int j = 0; j < WINO_ALPHA; j++)
            input_1d(d + j, WINO_ALPHA, tmp + j, WINO_ALPHA);
        for (int i = 0; i < WINO_ALPHA; i++)
            input_1d(tmp + i * WINO_ALPHA, 1, d + i * WINO_ALPHA, 1);
        for (int i = 0; i < WINO_POINTS; i++)
            st(out + i * point, d[i]);
    }
}

#if defined(__x86_64__)
/* m[6][16] (row stride ldm) = v[6][n] (row stride ldv) x the panel p [n][16], or += when add.
 * The loops over the 6 rows have constant bounds: the compiler unrolls them and keeps the 12
 * sums in registers. */
WINO_TARGET static void kernel_6x16(const float *v, size_t ldv, int64_t n, const float *p, float *m,
                                    size_t ldm, int add)
{
    __m256 acc[WINO_ROWS][2];
#pragma GCC unroll 6
    for (int r = 0; r < WINO_ROWS; r++)
        acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i++, p += WINO_COLS) {
        __m256 b0 = _mm256_loadu_ps(p), b1 = _mm256_loadu_ps(p + 8);
#pragma GCC unroll 6
        for (int r = 0; r < WINO_ROWS; r++) {
            __m256 x = _mm256_broadcast_ss(v + r * ldv + i);
            acc[r][0] = _mm256_fmadd_ps(x, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(x, b1, acc[r][1]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < WINO_ROWS; r++) {
        if (add) {
            acc[r][0] = _mm256_add_ps(acc[r][0], _mm256_loadu_ps(m + r * ldm));
            acc[r][1] = _mm256_add_ps(acc[r][1], _mm256_loadu_ps(m + r * ldm + 8));
        }
        _mm256_storeu_ps(m + r * ldm, acc[r][0]);
        _mm256_storeu_ps(m + r * ldm + 8, acc[r][1]);
    }
}
#else
static void kernel_6x16(const float *v, size_t ldv, int64_t n, const float *p, float *m, size_t ldm,
                        int add)
{
    for (int r = 0; r < WINO_ROWS; r++)
        for (int j = 0; j < WINO_COLS; j++) {
            float acc = 0;
            for (int64_t i = 0; i < n; i++)
                acc += v[r * ldv + i] * p[i * WINO_COLS + j];
            m[r * ldm + j] = add ? m[r * ldm + j] + acc : acc;
        }
}
#endif

/* The product of one point: panel by panel, each against every 6-tile row group of the block
 * (the panel, c x 16 floats, stays in cache while the block's rows stream past). The sum over
 * input channels runs in chunks of WINO_SUM_CHUNK, each from zero in registers, then added to m:
 * a rounding error then grows with the chunk's partial sums, not the whole running sum (issue
 * 17: 2-4x less fp32 error on C >= 256 layers, docs/bench/accuracy.md), for one load and add of
 * the 12 sums per chunk. */
#define WINO_SUM_CHUNK 32
static void gemm_point(const struct wino_shape *s, const float *v, const float *u, float *m)
{
    for (int64_t kp = 0; kp < s->k16 / WINO_COLS; kp++) {
        const float *panel = u + (size_t)kp * (size_t)s->c * WINO_COLS;
        for (int64_t r = 0; r < s->block; r += WINO_ROWS)
            for (int64_t c0 = 0; c0 < s->c; c0 += WINO_SUM_CHUNK) {
                int64_t n = s->c - c0 < WINO_SUM_CHUNK ? s->c - c0 : WINO_SUM_CHUNK;
                kernel_6x16(v + (size_t)r * (size_t)s->c + (size_t)c0, (size_t)s->c, n,
                            panel + (size_t)c0 * WINO_COLS,
                            m + (size_t)r * (size_t)s->k16 + (size_t)kp * WINO_COLS, (size_t)s->k16,
                            c0 > 0);
            }
    }
}

void wino_gemm(const struct wino_shape *s, const float *v, const float *u, float *m)
{
    size_t vp = (size_t)s->block * (size_t)s->c, mp = (size_t)s->block * (size_t)s->k16;
    size_t up = (size_t)s->c * (size_t)s->k16;
#pragma omp parallel for schedule(static)
    for (int p = 0; p < WINO_POINTS; p++)
        gemm_point(s, v + p * vp, u + p * up, m + p * mp);
}

void wino_input(const struct wino_shape *s, const float *x, int64_t t0, float *v)
{
#pragma omp parallel for schedule(static)
    for (int64_t cb = 0; cb < s->c / 8; cb++)
        input_block(s, x, t0, v, cb);
}

WINO_TARGET static inline v8 post_ops(v8 x, const struct wino_post *p, const float *old)
{
    for (int i = 0; i < p->n; i++) {
        float a = p->step[i].a, b = p->step[i].b;
        switch (p->step[i].kind) {
        case WINO_RELU:
            x = vmax(x, splat(0)) + splat(a) * vmin(x, splat(0));
            break;
        case WINO_CLIP:
            x = vmin(vmax(x, splat(a)), splat(b));
            break;
        case WINO_LINEAR:
            x = splat(a) * x + splat(b);
            break;
        case WINO_SUM:
            x += ld(old);
            break;
        }
    }
    return x;
}

WINO_TARGET static void output_block(const struct wino_shape *s, const float *m, int64_t t0,
                                     const float *bias, const struct wino_post *post, float *y,
                                     int64_t kb)
{
    const int64_t per_img = s->tiles_h * s->tiles_w;
    const size_t plane = (size_t)s->oh * (size_t)s->ow, point = (size_t)s->block * (size_t)s->k16;
    const size_t px = pixel_stride(s, s->k);
    {
        v8 b = bias ? ld(bias + kb * 8) : splat(0);
        for (int64_t tt = 0; tt < s->block && t0 + tt < s->tiles; tt++) {
            const float *in = m + (size_t)tt * (size_t)s->k16 + (size_t)kb * 8;
            v8 mm[WINO_POINTS], tmp[WINO_TILE * WINO_ALPHA], o[WINO_TILE * WINO_TILE];
            for (int i = 0; i < WINO_POINTS; i++)
                mm[i] = ld(in + i * point);
            for (int j = 0; j < WINO_ALPHA; j++)
                output_1d(mm + j, WINO_ALPHA, tmp + j, WINO_ALPHA);
            for (int i = 0; i < WINO_TILE; i++)
                output_1d(tmp + i * WINO_ALPHA, 1, o + i * WINO_TILE, 1);
            int64_t t = t0 + tt, img = t / per_img, r = t % per_img;
            int64_t oh0 = (r / s->tiles_w) * WINO_TILE, ow0 = (r % s->tiles_w) * WINO_TILE;
            float *yc = y + group_at(s, img, s->k, plane, kb);
            for (int i = 0; i < WINO_TILE && oh0 + i < s->oh; i++)
                for (int j = 0; j < WINO_TILE && ow0 + j < s->ow; j++) {
                    float *p = yc + ((size_t)(oh0 + i) * (size_t)s->ow + (size_t)(ow0 + j)) * px;
                    st(p, post_ops(o[i * WINO_TILE + j] + b, post, p));
                }
        }
    }
}

void wino_output(const struct wino_shape *s, const float *m, int64_t t0, const float *bias,
                 const struct wino_post *post, float *y)
{
#pragma omp parallel for schedule(static)
    for (int64_t kb = 0; kb < s->k / 8; kb++)
        output_block(s, m, t0, bias, post, y, kb);
}
