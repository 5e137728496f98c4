/*
 * test_kernels_math.c — the math kernels (kernels_math.c) on edge cases the ONNX conformance data
 * does not cover: rounding half to even, integer wrap-around and modulo signs, empty reductions,
 * ties in ArgMax, ignored and out-of-range loss targets; plan_kernel_check refusing hostile
 * parameters and shapes; and an out-of-range loss target refused by a running session with an
 * error rather than read out of bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <errno.h>
#include <math.h>

#include "engine/kernels.h"
#include "test_backend_util.h"

/* ---- kernels called directly ---- */

static void test_unary_edges(void **state)
{
    float x[6] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, NAN}, y[6];
    float want_round[6] = {0.0f, 2.0f, 2.0f, -0.0f, -2.0f, NAN};
    k_unary(K_ROUND, ENGINE_F32, 0, 0, x, y, 6);
    for (int i = 0; i < 5; i++)
        assert_true(y[i] == want_round[i]);
    assert_true(isnan(y[5]));
    int32_t xi[3] = {INT32_MIN, -7, 0}, yi[3];
    k_unary(K_NEG, ENGINE_I32, 0, 0, xi, yi, 3);
    assert_int_equal(yi[0], INT32_MIN); /* wraps as numpy does, no signed overflow */
    assert_int_equal(yi[1], 7);
    k_unary(K_SIGN, ENGINE_I32, 0, 0, xi, yi, 3);
    assert_int_equal(yi[0], -1);
    assert_int_equal(yi[2], 0);
    float inf[3] = {INFINITY, -INFINITY, 1.0f};
    uint8_t b[3];
    k_unary(K_ISINF, ENGINE_F32, 0.0f, 1.0f, inf, b, 3); /* negative infinity only */
    assert_int_equal(b[0], 0);
    assert_int_equal(b[1], 1);
    assert_int_equal(b[2], 0);
    assert_int_equal(k_unary_dtype(K_COS, ENGINE_I64), 0);
    assert_int_equal(k_unary_dtype(K_NOT, ENGINE_F32), 0);
    assert_int_equal(k_unary_dtype((enum k_unop)99, ENGINE_F32), 0);
}

static void test_mod_signs(void **state)
{
    struct engine_shape s = SHAPE(1, 4), one = SHAPE(1, 1);
    int64_t a[4] = {7, -7, 7, INT64_MIN}, b[4] = {-3, 3, 3, -1}, d[4];
    assert_int_equal(k_logic(K_MOD, ENGINE_I64, a, &s, b, &s, d, &s), 0);
    int64_t want_mod[4] = {-2, 2, 1, 0}; /* sign of the divisor; INT64_MIN % -1 does not trap */
    assert_memory_equal(d, want_mod, sizeof(d));
    assert_int_equal(k_logic(K_FMOD, ENGINE_I64, a, &s, b, &s, d, &s), 0);
    int64_t want_fmod[4] = {1, -1, 1, 0};
    assert_memory_equal(d, want_fmod, sizeof(d));
    int64_t zero = 0;
    assert_int_equal(k_logic(K_MOD, ENGINE_I64, a, &s, &zero, &one, d, &s), -EDOM);
    float fa[2] = {-4.0f, 4.0f}, fb[1] = {3.0f}, fd[2];
    struct engine_shape s2 = SHAPE(1, 2);
    k_logic(K_MOD, ENGINE_F32, fa, &s2, fb, &one, fd, &s2);
    assert_true(fd[0] == 2.0f && fd[1] == 1.0f);
}

static void test_reduce_edges(void **state)
{
    struct engine_shape s = SHAPE(2, 2, 0);
    int32_t mask[2] = {0, 1};
    float d[2];
    k_reduce(K_RSUM, ENGINE_F32, NULL, &s, mask, d);
    assert_true(d[0] == 0.0f && d[1] == 0.0f);
    k_reduce(K_RMAX, ENGINE_F32, NULL, &s, mask, d);
    assert_true(isinf(d[0]) && d[0] < 0);
    k_reduce(K_RPROD, ENGINE_F32, NULL, &s, mask, d);
    assert_true(d[0] == 1.0f);
    int64_t di[2];
    k_reduce(K_RMEAN, ENGINE_I64, NULL, &s, mask, di); /* no division by an empty count */
    assert_int_equal(di[0], 0);
    float x[4] = {-INFINITY, -INFINITY, 1000.0f, 1000.0f};
    struct engine_shape s4 = SHAPE(2, 2, 2);
    k_reduce(K_RLOGSUMEXP, ENGINE_F32, x, &s4, mask, d);
    assert_true(isinf(d[0]) && d[0] < 0);
    assert_true(fabsf(d[1] - (1000.0f + logf(2.0f))) < 1e-3f);
    assert_false(k_reduce_dtype_ok(K_RL2, ENGINE_I32));
}

static void test_argext_ties(void **state)
{
    float x[6] = {1, 3, 3, 2, 2, 0};
    struct engine_shape s = SHAPE(2, 2, 3);
    int64_t d[2];
    k_argext(0, 0, x, &s, 1, d);
    assert_int_equal(d[0], 1);
    k_argext(0, 1, x, &s, 1, d);
    assert_int_equal(d[0], 2);
    k_argext(1, 1, x, &s, 1, d);
    assert_int_equal(d[1], 2);
}

static void test_nll_targets(void **state)
{
    float logp[6] = {-1, -2, -3, -4, -5, -6}, w[3] = {1, 2, 3}, d[2];
    int64_t t[2] = {2, -100};
    assert_int_equal(k_nll(logp, t, w, 2, 3, 1, K_LOSS_NONE, 1, -100, d), 0);
    assert_true(d[0] == 9.0f && d[1] == 0.0f);
    assert_int_equal(k_nll(logp, t, w, 2, 3, 1, K_LOSS_MEAN, 1, -100, d), 0);
    assert_true(d[0] == 3.0f);
    int64_t bad[2] = {3, 0};
    assert_int_equal(k_nll(logp, bad, NULL, 2, 3, 1, K_LOSS_SUM, 0, 0, d), -EINVAL);
    assert_int_equal(k_nll(logp, t, NULL, 2, 3, 1, K_LOSS_SUM, 0, 0, d), -EINVAL);
}

static void test_arith_wrap(void **state)
{
    struct engine_shape s = SHAPE(1, 3);
    uint8_t a[3] = {250, 3, 7}, b[3] = {10, 5, 2}, d[3];
    assert_int_equal(k_arith(K_ADD, ENGINE_U8, a, &s, ENGINE_U8, b, &s, d, &s), 0);
    uint8_t want_add[3] = {4, 8, 9}; /* wraps modulo 256 */
    assert_memory_equal(d, want_add, sizeof(d));
    assert_int_equal(k_arith(K_SUB, ENGINE_U8, b, &s, ENGINE_U8, a, &s, d, &s), 0);
    assert_int_equal(d[0], 16);
    uint8_t zero[3] = {1, 0, 1};
    assert_int_equal(k_arith(K_DIV, ENGINE_U8, a, &s, ENGINE_U8, zero, &s, d, &s), -EDOM);
    int64_t base[3] = {INT64_MIN, 3, -2}, e[3] = {1, 40, -1}, o[3];
    float fe[3] = {0.5f, 1e30f, NAN};
    assert_int_equal(k_arith(K_POW, ENGINE_I64, base, &s, ENGINE_I64, e, &s, o, &s), 0);
    assert_int_equal(o[0], INT64_MIN);
    assert_int_equal(o[2], 0); /* negative integer exponent */
    /* float exponents: results outside int64 saturate instead of converting with UB */
    assert_int_equal(k_arith(K_POW, ENGINE_I64, base, &s, ENGINE_F32, fe, &s, o, &s), 0);
    assert_int_equal(o[1], INT64_MAX);
    assert_int_equal(o[2], 0);
    assert_false(k_arith_dtypes_ok(K_ADD, ENGINE_I32, ENGINE_I32));
    assert_false(k_arith_dtypes_ok(K_POW, ENGINE_U8, ENGINE_F32));
}

static void test_topk_ties_and_nan(void **state)
{
    float x[5] = {1.0f, NAN, 3.0f, 1.0f, NAN}, v[5];
    int64_t idx[5];
    k_topk(x, 1, 5, 1, 5, 1, v, idx); /* every slot written: NaN first, ties by index */
    int64_t want[5] = {1, 4, 2, 0, 3};
    assert_memory_equal(idx, want, sizeof(want));
    k_topk(x, 1, 5, 1, 2, 0, v, NULL);
    assert_true(v[0] == 1.0f && v[1] == 1.0f);
    k_topk(x, 1, 5, 1, 0, 1, v, idx); /* k = 0 writes nothing */
}

static void test_quantize_edges(void **state)
{
    float x[5] = {-1000.0f, 0.5f, 1.5f, 2.5f, 1000.0f}, scale = 1.0f;
    uint8_t zp = 10, q[5];
    k_quantize(x, &scale, &zp, 1, 1, 1, ENGINE_U8, q, 5);
    uint8_t want[5] = {0, 10, 12, 12, 255}; /* saturating, ties to even */
    assert_memory_equal(q, want, sizeof(want));
    int8_t qi[5];
    k_quantize(x, &scale, NULL, 1, 1, 1, ENGINE_I8, qi, 5);
    assert_int_equal(qi[0], -128);
    assert_int_equal(qi[4], 127);
    /* NaN quantizes to 0; negative ties to even; magnitudes past 2^22 saturate */
    float x2[5] = {NAN, -0.5f, -1.5f, 5000000.5f, -2.5f};
    uint8_t z2 = 128, q2[5], want2[5] = {0, 128, 126, 255, 126};
    k_quantize(x2, &scale, &z2, 1, 1, 1, ENGINE_U8, q2, 5);
    assert_memory_equal(q2, want2, sizeof(want2));
    /* the same values 8 at a time (the AVX2 bulk, kernels_int8.c) and the tail after it */
    float x3[21];
    uint8_t q3[21], want3[21], want128[5] = {0, 128, 130, 130, 255}; /* x with zero point 128 */
    int8_t q3i[21];
    for (int i = 0; i < 21; i++) {
        x3[i] = i % 10 < 5 ? x[i % 5] : x2[i % 5];
        want3[i] = i % 10 < 5 ? want128[i % 5] : want2[i % 5];
    }
    k_quantize(x3, &scale, &z2, 1, 1, 1, ENGINE_U8, q3, 21);
    assert_memory_equal(q3, want3, sizeof(want3));
    k_quantize(x3, &scale, NULL, 1, 1, 1, ENGINE_I8, q3i, 21);
    for (int i = 0; i < 21; i++) {
        int8_t one;
        k_quantize(&x3[i], &scale, NULL, 1, 1, 1, ENGINE_I8, &one, 1); /* scalar */
        assert_int_equal(q3i[i], one);
    }
    float back[5];
    k_dequantize(q, ENGINE_U8, &scale, &zp, 1, 1, 1, back, 5);
    assert_true(back[0] == -10.0f && back[4] == 245.0f);
    float zeros[3] = {0}, s;
    uint8_t y[3] = {7, 7, 7}, z = 7;
    k_dynquant(zeros, 3, y, &s, &z); /* no division by a zero scale */
    assert_true(s == 0.0f && z == 0 && y[0] == 0);
    float m[8] = {2, 0, 0, 3, 0, 1, 1, 0}, d[2];
    k_det(m, 2, 2, d);
    assert_true(d[0] == 6.0f && d[1] == -1.0f);
}

static void test_qconv_padding(void **state)
{
    /* 1x1x2x2 input, 1x1x2x2 weights, pads 1: every tap outside the input is skipped */
    uint8_t x[4] = {1, 2, 3, 4}, w[4] = {1, 1, 1, 1}, xz = 1;
    int32_t y[9];
    struct k_qconv q = {.xdt = ENGINE_U8,
                        .wdt = ENGINE_U8,
                        .n = 1,
                        .c = 1,
                        .m = 1,
                        .group = 1,
                        .in = {2, 2, 1},
                        .k = {2, 2, 1},
                        .out = {3, 3, 1},
                        .stride = {1, 1, 1},
                        .dil = {1, 1, 1},
                        .pad = {1, 1, 0},
                        .xzp = &xz};
    k_qconv(&q, x, w, y);
    int32_t want[9] = {0, 1, 1, 2, 6, 4, 2, 5, 3};
    assert_memory_equal(y, want, sizeof(want));
}

/* The integer sum of one output by the definition (the row-wise kernel must agree exactly). */
static int64_t qconv_ref(const struct k_qconv *q, const uint8_t *xu, const int8_t *xi,
                         const int8_t *w, const int8_t *wz, int64_t b, int64_t mo, const int64_t *o)
{
    int64_t cg = q->c / q->group, g = mo / (q->m / q->group), acc = 0, xz = 3;
    for (int64_t ci = 0; ci < cg; ci++)
        for (int64_t t = 0; t < q->k[0] * q->k[1] * q->k[2]; t++) {
            int64_t kk[3] = {t / (q->k[1] * q->k[2]), t / q->k[2] % q->k[1], t % q->k[2]};
            int64_t at = b * q->c + g * cg + ci;
            int inside = 1;
            for (int d = 0; d < 3; d++) {
                int64_t p = o[d] * q->stride[d] - q->pad[d] + kk[d] * q->dil[d];
                inside &= p >= 0 && p < q->in[d];
                at = at * q->in[d] + p;
            }
            if (inside)
                acc += ((xu ? xu[at] : xi[at]) - xz) *
                       (w[((mo * cg + ci) * q->k[0] + kk[0]) * q->k[1] * q->k[2] + kk[1] * q->k[2] +
                          kk[2]] -
                        wz[mo]);
        }
    return acc;
}

/* ConvInteger's row-wise path (rows along the last real axis, unit axes moved first; a patch of
 * taps x outputs per row, then every output channel's sums): 1-D, 2-D and 3-D windows, strides
 * 1-3, dilations, pads, groups, uint8 and int8 inputs, per-channel weight zero points, and a row
 * too long for the patch, each on k_qdot's AVX2 and portable paths (qconv_gemm, which runs
 * first); every sum equals the definition's. */
static void test_qconv_rows(void **state)
{
    static const struct {
        int sp, c, m, group, in, k, stride, dil, pad, u8;
    } cases[] = {{2, 3, 4, 1, 9, 3, 1, 1, 1, 1},  {2, 4, 6, 2, 8, 3, 2, 1, 1, 0},
                 {1, 2, 3, 1, 17, 5, 3, 2, 4, 1}, {3, 2, 2, 2, 5, 2, 1, 2, 1, 0},
                 {2, 1, 2, 1, 7, 1, 1, 1, 0, 1},  {1, 1, 2, 1, 5000, 3, 1, 1, 1, 1},
                 {1, 3, 5, 1, 2100, 3, 1, 1, 1, 1}};
    for (size_t c = 0; c < 2 * sizeof(cases) / sizeof(cases[0]); c++) {
        int plain = c >= sizeof(cases) / sizeof(cases[0]); /* each case on k_qdot's two paths */
        k_qdot_force_plain(plain);
        if (plain)
            c -= sizeof(cases) / sizeof(cases[0]);
        struct k_qconv q = {.xdt = cases[c].u8 ? ENGINE_U8 : ENGINE_I8,
                            .wdt = ENGINE_I8,
                            .n = 2,
                            .c = cases[c].c,
                            .m = cases[c].m,
                            .group = cases[c].group};
        int64_t nx = q.n * q.c, no = q.n * q.m, nw = q.m * (q.c / q.group);
        for (int d = 0; d < 3; d++) {
            int on = d < cases[c].sp;
            q.in[d] = on ? cases[c].in + d : 1;
            q.k[d] = on ? cases[c].k : 1;
            q.stride[d] = on ? cases[c].stride : 1;
            q.dil[d] = on ? cases[c].dil : 1;
            q.pad[d] = on ? cases[c].pad : 0;
            q.out[d] = (q.in[d] + 2 * q.pad[d] - (q.k[d] - 1) * q.dil[d] - 1) / q.stride[d] + 1;
            nx *= q.in[d], no *= q.out[d], nw *= q.k[d];
        }
        uint8_t xz = 3, *xu = malloc((size_t)nx);
        int8_t *xi = malloc((size_t)nx), *w = malloc((size_t)nw), wz[8];
        int32_t *y = malloc((size_t)no * sizeof(int32_t));
        uint32_t seed = 17 + (uint32_t)c;
        for (int64_t i = 0; i < nx; i++)
            xu[i] = (uint8_t)(tb_rand(&seed) * 127 + 128), xi[i] = (int8_t)(xu[i] - 128);
        for (int64_t i = 0; i < nw; i++)
            w[i] = (int8_t)(tb_rand(&seed) * 127);
        for (int i = 0; i < 8; i++)
            wz[i] = (int8_t)(i - 3);
        q.xzp = &xz;
        q.wzp = wz;
        q.n_wzp = q.m;
        int8_t xz8 = 3;
        if (!cases[c].u8)
            q.xzp = &xz8;
        k_qconv(&q, cases[c].u8 ? (const void *)xu : (const void *)xi, w, y);
        int64_t i = 0;
        for (int64_t b = 0; b < q.n; b++)
            for (int64_t mo = 0; mo < q.m; mo++)
                for (int64_t t = 0; t < q.out[0] * q.out[1] * q.out[2]; t++, i++) {
                    int64_t o[3] = {t / (q.out[1] * q.out[2]), t / q.out[2] % q.out[1],
                                    t % q.out[2]};
                    int64_t want = qconv_ref(&q, cases[c].u8 ? xu : NULL, cases[c].u8 ? NULL : xi,
                                             w, wz, b, mo, o);
                    if (y[i] != (int32_t)want)
                        fail_msg("case %zu: output %lld is %d, want %lld", c, (long long)i, y[i],
                                 (long long)want);
                }
        free(xu), free(xi), free(w), free(y);
        if (plain)
            c += sizeof(cases) / sizeof(cases[0]);
    }
    k_qdot_force_plain(0);
}

/* The extremes: every product -255 * 255 over a sum longer than K_QDOT_MAX_K wraps in int32
 * exactly as ConvInteger's int32 output does (the definition modulo 2^32), on both paths. */
static void test_qconv_wrap(void **state)
{
    enum { C = 4000, K = C * 9 };
    uint8_t *x = malloc(K), xz = 0;
    int8_t *w = malloc(K), wz = 127;
    memset(x, 255, K);
    memset(w, 0x80, K); /* -128 - 127 = -255 */
    struct k_qconv q = {.xdt = ENGINE_U8,
                        .wdt = ENGINE_I8,
                        .n = 1,
                        .c = C,
                        .m = 1,
                        .group = 1,
                        .in = {3, 3, 1},
                        .k = {3, 3, 1},
                        .out = {1, 1, 1},
                        .stride = {1, 1, 1},
                        .dil = {1, 1, 1},
                        .xzp = &xz,
                        .wzp = &wz,
                        .n_wzp = 1};
    int32_t want = (int32_t)(uint32_t)(uint64_t)((int64_t)K * -255 * 255);
    for (int plain = 0; plain < 2; plain++) {
        int32_t y = 0;
        k_qdot_force_plain(plain);
        k_qconv(&q, x, w, &y);
        assert_int_equal(y, want);
    }
    k_qdot_force_plain(0);
    free(x), free(w);
}

/* MatMulInteger (int32 sums) and QLinearMatMul (requantised) against the definition: batched
 * B, a zero point per row of A and per column of B, k not a multiple of 16. */
static void test_qmatmul_gemm(void **state)
{
    enum { BT = 2, M = 5, KK = 37, N = 7 };
    uint8_t a[BT * M * KK], azp[M], yz = 9, y8[BT * M * N];
    int8_t b[BT * KK * N], bzp[N];
    int32_t y[BT * M * N];
    uint32_t seed = 5;
    for (int i = 0; i < BT * M * KK; i++)
        a[i] = (uint8_t)(tb_rand(&seed) * 127 + 128);
    for (int i = 0; i < BT * KK * N; i++)
        b[i] = (int8_t)(tb_rand(&seed) * 127);
    for (int i = 0; i < M; i++)
        azp[i] = (uint8_t)(100 + i);
    for (int i = 0; i < N; i++)
        bzp[i] = (int8_t)(i - 3);
    float mult = 0.001f;
    for (int plain = 0; plain < 2; plain++) {
        k_qdot_force_plain(plain);
        struct k_qmm q = {.adt = ENGINE_U8, .bdt = ENGINE_I8, .ydt = ENGINE_I32, .batch = BT,
                          .m = M, .k = KK, .n = N, .b_batched = 1, .azp = azp, .bzp = bzp,
                          .n_azp = M, .n_bzp = N};
        k_qmatmul(&q, a, b, y);
        q.ydt = ENGINE_U8, q.multiplier = &mult, q.yzp = &yz;
        k_qmatmul(&q, a, b, y8);
        for (int t = 0; t < BT; t++)
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    int64_t acc = 0;
                    for (int p = 0; p < KK; p++)
                        acc += (int64_t)(a[(t * M + i) * KK + p] - azp[i]) *
                               (b[(t * KK + p) * N + j] - bzp[j]);
                    double r = rint((double)acc * mult) + yz;
                    int o = (t * M + i) * N + j;
                    assert_int_equal(y[o], (int32_t)acc);
                    assert_int_equal(y8[o], r < 0 ? 0 : r > 255 ? 255 : (int)r);
                }
    }
    k_qdot_force_plain(0);
}

static void test_einsum_spec(void **state)
{
    int32_t spec[64];
    int ranks[2] = {2, 2};
    struct engine_shape sh[2] = {SHAPE(2, 2, 3), SHAPE(2, 3, 4)}, out;
    int n = k_einsum_parse("ij,jk", 2, ranks, spec, 64); /* implicit output: ik */
    assert_true(n > 0);
    assert_int_equal(k_einsum_check(spec, n, sh, 2, &out), 0);
    assert_int_equal(out.rank, 2);
    assert_true(out.dims[0] == 2 && out.dims[1] == 4);
    float a[6] = {1, 2, 3, 4, 5, 6}, b[12] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0}, c[8];
    const void *srcs[2] = {a, b};
    k_einsum(ENGINE_F32, srcs, sh, spec, c, &out);
    float want[8] = {1, 2, 3, 0, 4, 5, 6, 0};
    assert_memory_equal(c, want, sizeof(want));
    assert_true(k_einsum_parse("ij,jk->iz", 2, ranks, spec, 64) < 0); /* z is no input's */
    assert_true(k_einsum_parse("ijk,jk", 2, ranks, spec, 64) < 0);    /* rank 3 vs 2 */
    struct engine_shape bad[2] = {SHAPE(2, 2, 3), SHAPE(2, 4, 4)};
    n = k_einsum_parse("ij,jk", 2, ranks, spec, 64);
    assert_int_equal(k_einsum_check(spec, n, bad, 2, &out), -EINVAL); /* j: 3 vs 4 */
    spec[n - 1] = 99;                                                 /* a label out of range */
    assert_int_equal(k_einsum_check(spec, n, sh, 2, &out), -EINVAL);
}

static void test_float16_max_mod(void **state)
{
    double a[3] = {-4.0, 0.5, 65504.0}, b[3] = {3.0, 0.25, -1.0}, got[3];
    uint16_t ha[3], hb[3], hd[3];
    struct engine_shape s = SHAPE(1, 3);
    k_cast(a, ENGINE_F64, ha, ENGINE_F16, 3);
    k_cast(b, ENGINE_F64, hb, ENGINE_F16, 3);
    const void *srcs[2] = {ha, hb};
    struct engine_shape shapes[2] = {s, s};
    k_variadic(K_VMAX, ENGINE_F16, srcs, shapes, 2, hd, &s);
    k_cast(hd, ENGINE_F16, got, ENGINE_F64, 3);
    assert_true(got[0] == 3.0 && got[1] == 0.5 && got[2] == 65504.0);
    assert_int_equal(k_logic(K_MOD, ENGINE_F16, ha, &s, hb, &s, hd, &s), 0);
    k_cast(hd, ENGINE_F16, got, ENGINE_F64, 3);
    assert_true(got[0] == 2.0 && got[1] == 0.0 && got[2] == 0.0);
    assert_false(k_variadic_dtype_ok(K_VSUM, ENGINE_F16)); /* a float16 sum would round */
}

static void test_clip_bounds(void **state)
{
    int8_t x[4] = {-128, -5, 5, 127}, lo = -10, hi = 10, d[4];
    k_clip(ENGINE_I8, x, &lo, &hi, d, 4);
    int8_t want[4] = {-10, -5, 5, 10};
    assert_memory_equal(d, want, sizeof(d));
    k_clip(ENGINE_I8, x, NULL, &lo, d, 4); /* only a max */
    assert_int_equal(d[0], -128);
    assert_int_equal(d[3], -10);
    float f[2] = {NAN, 3.0f}, flo = 5.0f, fhi = 1.0f, fd[2];
    k_clip(ENGINE_F32, f, &flo, &fhi, fd, 2); /* min > max gives max, as numpy */
    assert_true(isnan(fd[0]));
    assert_true(fd[1] == 1.0f);
}

/* ---- plan_kernel_check on hand-built nodes ---- */

static int64_t hostile_tensor(struct plan_builder *b, int dtype, struct engine_shape s)
{
    struct plan_tensor t = {.dtype = (uint32_t)dtype,
                            .rank = (uint32_t)s.rank,
                            .storage = PLAN_ST_ARENA,
                            .name = (uint32_t)plan_add_string(b, "t")};
    memcpy(t.dims, s.dims, sizeof(t.dims));
    t.nbytes = (uint64_t)engine_shape_numel(&s) * engine_dtype_size(dtype);
    return plan_add_tensor(b, &t);
}

/* Runs plan_kernel_check on one kernel node; 0 or the error. */
static int check_node(uint32_t kind, const int64_t *ins, uint32_t n_in, int64_t out,
                      const int32_t *params, uint32_t n_params, int64_t axis,
                      struct plan_builder *b)
{
    struct plan_node n = {.op = PLAN_OP_KERNEL,
                          .alg = kind,
                          .out = (uint32_t)out,
                          .sum_tensor = PLAN_NONE,
                          .wmd = PLAN_NONE,
                          .impl = PLAN_NONE,
                          .axis = axis,
                          .in_first = b->n_index,
                          .n_in = n_in};
    for (uint32_t i = 0; i < n_in; i++)
        plan_add_index(b, (int32_t)ins[i]);
    n.params_first = b->n_index;
    n.n_params = n_params;
    for (uint32_t i = 0; i < n_params; i++)
        plan_add_index(b, params[i]);
    plan_add_node(b, &n);
    struct plan_view v;
    plan_builder_view(b, &v);
    char err[256];
    return plan_kernel_check(&v, &v.nodes[v.n_nodes - 1], err, sizeof(err));
}

static void test_hostile_params(void **state)
{
    struct plan_builder b;
    plan_builder_init(&b);
    plan_add_string(&b, "model");
    int64_t x = hostile_tensor(&b, ENGINE_F32, SHAPE(2, 2, 3));
    int64_t y = hostile_tensor(&b, ENGINE_F32, SHAPE(2, 2, 3));
    int64_t r = hostile_tensor(&b, ENGINE_F32, SHAPE(1, 2));
    int64_t i64 = hostile_tensor(&b, ENGINE_I64, SHAPE(1, 2));
    int64_t big = hostile_tensor(&b, ENGINE_I64, SHAPE(1, 5));
    int64_t empty = hostile_tensor(&b, ENGINE_F32, SHAPE(2, 2, 0));
    int64_t scalar = hostile_tensor(&b, ENGINE_F32, SHAPE(0));
    int64_t in1[1] = {x};
    /* the well-formed nodes pass */
    int32_t neg[1] = {K_NEG}, red[3] = {K_RSUM, 0, 1}, arg[2] = {0, 0}, sm[2] = {K_SM_HARDMAX, 0};
    assert_int_equal(check_node(PLAN_K_UNARY, in1, 1, y, neg, 1, 0, &b), 0);
    assert_int_equal(check_node(PLAN_K_REDUCE, in1, 1, r, red, 3, 0, &b), 0);
    assert_int_equal(check_node(PLAN_K_ARGEXT, in1, 1, i64, arg, 2, 1, &b), 0);
    assert_int_equal(check_node(PLAN_K_SOFTMAX_F, in1, 1, y, sm, 2, 1, &b), 0);
    /* hostile ones do not */
    int32_t bad_op[1] = {99}, bad_red[2] = {K_RSUM, 0}, bad_sm[2] = {K_SM_HARDMAX, 2};
    assert_int_equal(check_node(PLAN_K_UNARY, in1, 1, y, bad_op, 1, 0, &b), -EINVAL);
    assert_int_equal(check_node(PLAN_K_UNARY, in1, 1, r, neg, 1, 0, &b), -EINVAL);
    assert_int_equal(check_node(PLAN_K_REDUCE, in1, 1, r, bad_red, 2, 0, &b), -EINVAL);
    assert_int_equal(check_node(PLAN_K_REDUCE, in1, 1, y, red, 3, 0, &b), -EINVAL);
    assert_int_equal(check_node(PLAN_K_ARGEXT, in1, 1, i64, arg, 2, 2, &b), -EINVAL);
    assert_int_equal(check_node(PLAN_K_ARGEXT, in1, 1, big, arg, 2, 1, &b), -EINVAL);
    int64_t ine[1] = {empty};
    assert_int_equal(check_node(PLAN_K_ARGEXT, ine, 1, i64, arg, 2, 1, &b), -EINVAL);
    assert_int_equal(check_node(PLAN_K_SOFTMAX_F, in1, 1, y, bad_sm, 2, 1, &b), -EINVAL);
    assert_int_equal(check_node(PLAN_K_SOFTMAX_F, in1, 1, y, sm, 2, -1, &b), -EINVAL);
    int64_t nine[9] = {x, x, x, x, x, x, x, x, x};
    int32_t vsum[1] = {K_VSUM}, ln[1] = {3}, nll[3] = {K_LOSS_NONE, 0, 0};
    assert_int_equal(check_node(PLAN_K_VARIADIC, nine, 8, y, vsum, 1, 0, &b), 0);
    assert_int_equal(check_node(PLAN_K_VARIADIC, nine, 9, y, vsum, 1, 0, &b), -EINVAL);
    int64_t ln_in[2] = {x, r};
    assert_int_equal(check_node(PLAN_K_LAYERNORM, ln_in, 2, y, ln, 1, 1, &b), -EINVAL);
    ln[0] = 0;
    assert_int_equal(check_node(PLAN_K_LAYERNORM, ln_in, 2, y, ln, 1, 0, &b), -EINVAL);
    int64_t nll_in[2] = {x, i64}, nll_big[2] = {x, big};
    assert_int_equal(check_node(PLAN_K_NLL, nll_in, 2, r, nll, 3, 0, &b), 0);
    nll[0] = K_LOSS_SUM;
    assert_int_equal(check_node(PLAN_K_NLL, nll_in, 2, scalar, nll, 3, 0, &b), 0);
    assert_int_equal(check_node(PLAN_K_NLL, nll_in, 2, r, nll, 3, 0, &b), -EINVAL);
    assert_int_equal(check_node(PLAN_K_NLL, nll_big, 2, scalar, nll, 3, 0, &b), -EINVAL);
    nll[1] = 2;
    assert_int_equal(check_node(PLAN_K_NLL, nll_in, 2, scalar, nll, 3, 0, &b), -EINVAL);
    int32_t clip[2] = {1, 0}, clip_bad[2] = {1, 1};
    int64_t clip_in[2] = {x, scalar};
    assert_int_equal(check_node(PLAN_K_CLIP, clip_in, 2, y, clip, 2, 0, &b), 0);
    assert_int_equal(check_node(PLAN_K_CLIP, clip_in, 2, y, clip_bad, 2, 0, &b), -EINVAL);
    clip_in[1] = r; /* a bound of two elements */
    assert_int_equal(check_node(PLAN_K_CLIP, clip_in, 2, y, clip, 2, 0, &b), -EINVAL);
    int32_t topk[2] = {1, 1};
    int64_t k2 = hostile_tensor(&b, ENGINE_I64, SHAPE(2, 2, 2)),
            k4 = hostile_tensor(&b, ENGINE_I64, SHAPE(2, 2, 4));
    assert_int_equal(check_node(PLAN_K_TOPK, in1, 1, k2, topk, 2, 1, &b), 0);
    assert_int_equal(check_node(PLAN_K_TOPK, in1, 1, k4, topk, 2, 1, &b), -EINVAL);
    topk[1] = 0; /* values must be float32 */
    assert_int_equal(check_node(PLAN_K_TOPK, in1, 1, k2, topk, 2, 1, &b), -EINVAL);
    int64_t u8 = hostile_tensor(&b, ENGINE_U8, SHAPE(2, 2, 3)),
            sc3 = hostile_tensor(&b, ENGINE_F32, SHAPE(1, 3));
    int32_t quant[1] = {0};
    int64_t q_in[2] = {x, sc3};
    assert_int_equal(check_node(PLAN_K_QUANTIZE, q_in, 2, u8, quant, 1, 1, &b), 0);
    assert_int_equal(check_node(PLAN_K_QUANTIZE, q_in, 2, u8, quant, 1, 0, &b), -EINVAL);
    assert_int_equal(check_node(PLAN_K_QUANTIZE, q_in, 2, y, quant, 1, 1, &b), -EINVAL);
    int64_t sq = hostile_tensor(&b, ENGINE_F32, SHAPE(2, 3, 3)), det_in[1] = {sq};
    assert_int_equal(check_node(PLAN_K_DET, det_in, 1, scalar, NULL, 0, 0, &b), 0);
    assert_int_equal(check_node(PLAN_K_DET, det_in, 1, r, NULL, 0, 0, &b), -EINVAL);
    assert_int_equal(check_node(PLAN_K_DET, in1, 1, r, NULL, 0, 0, &b), -EINVAL); /* 2x3 */
    int32_t mm[3] = {0, 0, 0};
    int64_t mm_in[2] = {u8, u8};
    assert_int_equal(check_node(PLAN_K_QMATMUL, mm_in, 2, y, mm, 3, 0, &b), -EINVAL);
    int64_t xq = hostile_tensor(&b, ENGINE_U8, SHAPE(4, 1, 2, 3, 3)),
            wq = hostile_tensor(&b, ENGINE_U8, SHAPE(4, 4, 1, 2, 2)),
            yq = hostile_tensor(&b, ENGINE_I32, SHAPE(4, 1, 4, 2, 2));
    int64_t qc_in[2] = {xq, wq};
    int32_t qc[11] = {0, 0, 0, 2, 2, 1, 1, 1, 1, 0, 0};
    assert_int_equal(check_node(PLAN_K_QCONV, qc_in, 2, yq, qc, 11, 0, &b), 0);
    qc[3] = 3; /* a group that divides neither channel count */
    assert_int_equal(check_node(PLAN_K_QCONV, qc_in, 2, yq, qc, 11, 0, &b), -EINVAL);
    qc[3] = 2;
    qc[5] = 0; /* stride 0 */
    assert_int_equal(check_node(PLAN_K_QCONV, qc_in, 2, yq, qc, 11, 0, &b), -EINVAL);
    plan_builder_free(&b);
}

/* ---- a session refuses an out-of-range loss target ---- */

static void test_run_target_out_of_range(void **state)
{
    struct ir_graph *g = tb_graph();
    int x = tb_act(g, "x", SHAPE(2, 2, 3));
    int loss = tb_act(g, "loss", SHAPE(0));
    struct engine_shape ts = SHAPE(1, 2);
    int64_t *tv = malloc(2 * sizeof(int64_t));
    tv[0] = 1;
    tv[1] = 3; /* one past the last class */
    int t = ir_add_const(g, "target", "", ENGINE_I64, &ts, tv);
    tb_input(g, x);
    int ins[2] = {x, t};
    tb_str(tb_node(g, "NegativeLogLikelihoodLoss", ins, 2, loss), "reduction", "sum");
    tb_output(g, loss);
    char err[512] = "";
    void *img;
    size_t len;
    struct engine_model *m;
    struct engine_session *s;
    assert_int_equal(tb_compile(g, 1, &img, &len, err, sizeof(err)), 0);
    assert_int_equal(engine_model_open(img, len, &m, err, sizeof(err)), 0);
    assert_int_equal(engine_session_create(m, &s, err, sizeof(err)), 0);
    float xv[6] = {0};
    struct engine_tensor in = {.name = "x",
                               .dtype = ENGINE_F32,
                               .shape = SHAPE(2, 2, 3),
                               .data = xv,
                               .nbytes = sizeof(xv)};
    struct engine_tensor out[1];
    assert_int_equal(engine_session_run(s, &in, 1, out, 1, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "out of range"));
    engine_session_destroy(s);
    engine_model_close(m);
    engine_image_free(img);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unary_edges),
        cmocka_unit_test(test_mod_signs),
        cmocka_unit_test(test_reduce_edges),
        cmocka_unit_test(test_argext_ties),
        cmocka_unit_test(test_nll_targets),
        cmocka_unit_test(test_clip_bounds),
        cmocka_unit_test(test_float16_max_mod),
        cmocka_unit_test(test_einsum_spec),
        cmocka_unit_test(test_qconv_padding),
        cmocka_unit_test(test_qconv_rows),
        cmocka_unit_test(test_qconv_wrap),
        cmocka_unit_test(test_qmatmul_gemm),
        cmocka_unit_test(test_quantize_edges),
        cmocka_unit_test(test_topk_ties_and_nan),
        cmocka_unit_test(test_arith_wrap),
        cmocka_unit_test(test_hostile_params),
        cmocka_unit_test(test_run_target_out_of_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
