/*
 * test_kernels_move.c — the data-movement kernels (kernels_move.c) on edge cases the ONNX
 * conformance data does not cover: negative and out-of-range indices, duplicate scatter targets
 * with each reduction, batch dims, extreme Trilu k, DepthToSpace undoing SpaceToDepth, empty
 * tiles; plan_kernel_check refusing hostile parameters and shapes; and an out-of-range index
 * refused by a running session with an error rather than read out of bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <errno.h>
#include <math.h>

#include "engine/kernel_params.h"
#include "engine/kernels.h"
#include "test_backend_util.h"

/* ---- kernels called directly ---- */

static void test_gather_elements_indices(void **state)
{
    struct engine_shape ds = SHAPE(2, 2, 3), is = SHAPE(2, 2, 2);
    float data[6] = {0, 1, 2, 3, 4, 5}, d[4];
    int64_t idx[4] = {2, -3, -1, 0};
    assert_int_equal(k_gather_elements(data, &ds, idx, ENGINE_I64, &is, 1, sizeof(float), d), 0);
    float want[4] = {2, 0, 5, 3};
    assert_memory_equal(d, want, sizeof(want));
    int32_t bad[4] = {0, 3, 0, 0}; /* one past the end of axis 1 */
    assert_int_equal(k_gather_elements(data, &ds, bad, ENGINE_I32, &is, 1, sizeof(float), d),
                     -EINVAL);
    int32_t low[4] = {0, -4, 0, 0};
    assert_int_equal(k_gather_elements(data, &ds, low, ENGINE_I32, &is, 1, sizeof(float), d),
                     -EINVAL);
}

static void test_scatter_reductions(void **state)
{
    struct engine_shape ds = SHAPE(1, 4), is = SHAPE(1, 3);
    int32_t data[4] = {1, 2, 3, 4}, upd[3] = {10, 20, -5}, d[4];
    int64_t idx[3] = {1, 1, -1};
    assert_int_equal(
        k_scatter_elements(data, &ds, idx, ENGINE_I64, &is, upd, 0, K_RED_ADD, ENGINE_I32, d), 0);
    int32_t want_add[4] = {1, 32, 3, -1};
    assert_memory_equal(d, want_add, sizeof(d));
    assert_int_equal(
        k_scatter_elements(data, &ds, idx, ENGINE_I64, &is, upd, 0, K_RED_MAX, ENGINE_I32, d), 0);
    int32_t want_max[4] = {1, 20, 3, 4};
    assert_memory_equal(d, want_max, sizeof(d));
    assert_int_equal(
        k_scatter_elements(data, &ds, idx, ENGINE_I64, &is, upd, 0, K_RED_NONE, ENGINE_I32, d), 0);
    int32_t want_none[4] = {1, 20, 3, -5}; /* the last write wins */
    assert_memory_equal(d, want_none, sizeof(d));
    int64_t bad[3] = {0, 4, 0};
    assert_int_equal(
        k_scatter_elements(data, &ds, bad, ENGINE_I64, &is, upd, 0, K_RED_NONE, ENGINE_I32, d),
        -EINVAL);
    assert_true(k_reduction_ok(K_RED_NONE, ENGINE_BOOL));
    assert_false(k_reduction_ok(K_RED_ADD, ENGINE_U8));
    assert_false(k_reduction_ok((enum k_scatter_red)7, ENGINE_F32));
}

static void test_nd_indices(void **state)
{
    /* GatherND with one batch dim: data [2, 3], indices [2, 1] pick one element per row */
    struct engine_shape ds = SHAPE(2, 2, 3), is = SHAPE(2, 2, 1);
    float data[6] = {0, 1, 2, 3, 4, 5}, d[2];
    int64_t idx[2] = {2, -3};
    assert_int_equal(k_gather_nd(data, &ds, idx, ENGINE_I64, &is, 1, sizeof(float), d), 0);
    assert_true(d[0] == 2 && d[1] == 3);
    int64_t bad[2] = {0, 3};
    assert_int_equal(k_gather_nd(data, &ds, bad, ENGINE_I64, &is, 1, sizeof(float), d), -EINVAL);
    /* ScatterND multiplies whole rows; a duplicate row multiplies twice */
    struct engine_shape rs = SHAPE(2, 2, 1);
    float upd[6] = {2, 2, 2, 3, 3, 3}, o[6];
    int64_t rows[2] = {1, 1};
    assert_int_equal(k_scatter_nd(data, &ds, rows, ENGINE_I64, &rs, upd, K_RED_MUL, ENGINE_F32, o),
                     0);
    float want[6] = {0, 1, 2, 18, 24, 30};
    assert_memory_equal(o, want, sizeof(want));
    int64_t far[2] = {1, -3};
    assert_int_equal(k_scatter_nd(data, &ds, far, ENGINE_I64, &rs, upd, K_RED_NONE, ENGINE_F32, o),
                     -EINVAL);
}

static void test_trilu_extremes(void **state)
{
    struct engine_shape s = SHAPE(2, 2, 3);
    int64_t x[6] = {1, 2, 3, 4, 5, 6}, d[6];
    k_trilu(x, &s, INT64_MAX, 1, sizeof(int64_t), d);
    int64_t zero[6] = {0};
    assert_memory_equal(d, zero, sizeof(d));
    k_trilu(x, &s, INT64_MIN, 1, sizeof(int64_t), d);
    assert_memory_equal(d, x, sizeof(d));
    k_trilu(x, &s, -1, 0, sizeof(int64_t), d);
    int64_t want[6] = {0, 0, 0, 4, 0, 0};
    assert_memory_equal(d, want, sizeof(d));
    struct engine_shape empty = SHAPE(3, 3, 0, 5);
    k_trilu(NULL, &empty, 0, 0, sizeof(int64_t), NULL); /* nothing to touch */
}

static void test_depth_space_round_trip(void **state)
{
    struct engine_shape s = SHAPE(4, 1, 2, 4, 6), depth = SHAPE(4, 1, 8, 2, 3);
    float x[48], mid[48], back[48];
    for (int i = 0; i < 48; i++)
        x[i] = (float)i;
    k_depth_space(x, &s, 2, K_SPACE_TO_DEPTH, sizeof(float), mid);
    k_depth_space(mid, &depth, 2, K_DEPTH_DCR, sizeof(float), back);
    assert_memory_equal(back, x, sizeof(x));
    assert_true(mid[1] == 2.0f); /* channel 0 of the block (0, 0): every other column */
    k_depth_space(mid, &depth, 2, K_DEPTH_CRD, sizeof(float), back);
    assert_memory_not_equal(back, x, sizeof(x));
}

static void test_conv_transpose_crops(void **state)
{
    /* x [1,1,2], w [1,1,3], stride 2, pad 1: full output 5 cropped to 3 from offset 1 */
    struct engine_shape xs = SHAPE(3, 1, 1, 2), ws = SHAPE(3, 1, 1, 3), ys = SHAPE(3, 1, 1, 3);
    float x[2] = {1, 10}, w[3] = {1, 2, 3}, bias[1] = {0.5f}, y[3];
    struct k_deconv p = {.sp = 1, .group = 1, .stride = {2}, .dil = {1}, .pad = {1}};
    k_conv_transpose(x, &xs, w, &ws, bias, &p, y, &ys);
    float want[3] = {2.5f, 13.5f, 20.5f}; /* full: 1 2 13 20 30 */
    assert_memory_equal(y, want, sizeof(want));
}

static void test_sequence_and_unpool(void **state)
{
    struct engine_shape s = SHAPE(2, 2, 3); /* batch axis 0, time axis 1 */
    int32_t x[6] = {1, 2, 3, 4, 5, 6}, d[6];
    int64_t lens[2] = {3, 2}, bad[2] = {4, 0};
    assert_int_equal(k_reverse_sequence(x, &s, lens, ENGINE_I64, 0, sizeof(int32_t), d), 0);
    int32_t want[6] = {3, 2, 1, 5, 4, 6};
    assert_memory_equal(d, want, sizeof(d));
    assert_int_equal(k_reverse_sequence(x, &s, bad, ENGINE_I64, 0, sizeof(int32_t), d), -EINVAL);
    float v[2] = {7, 8}, o[4];
    int64_t at[2] = {3, 0}, past[2] = {3, 4};
    assert_int_equal(k_max_unpool(v, at, 2, sizeof(float), o, 4), 0);
    float want_o[4] = {8, 0, 0, 7};
    assert_memory_equal(o, want_o, sizeof(o));
    assert_int_equal(k_max_unpool(v, past, 2, sizeof(float), o, 4), -EINVAL);
}

static void test_grid_sample_odd_coordinates(void **state)
{
    struct engine_shape xs = SHAPE(4, 1, 1, 2, 2), ys = SHAPE(4, 1, 1, 1, 3);
    float x[4] = {1, 2, 3, 4}, y[3];
    float grid[6] = {NAN, 0, 1e30f, -1e30f, -1, -1}; /* NaN, far outside, a corner */
    struct k_grid p = {K_GRID_BICUBIC, K_GRID_REFLECTION, 1};
    k_grid_sample(x, &xs, grid, &p, y, &ys);
    assert_true(isnan(y[0]));
    assert_true(y[2] == 1.0f);
    p.pad = K_GRID_ZEROS;
    p.mode = K_GRID_BILINEAR;
    k_grid_sample(x, &xs, grid, &p, y, &ys);
    assert_true(y[1] == 0.0f);
}

static void test_cast_wide(void **state)
{
    /* float16 rounds to nearest even in one step: ties, the largest half, subnormals */
    double d[8] = {65504.0,           65519.99, 65520.0,   1.0 + 0x1p-11,
                   1.0 + 3 * 0x1p-11, 0x1p-25,  0x1.8p-25, -0.0};
    uint16_t h[8];
    assert_int_equal(k_cast(d, ENGINE_F64, h, ENGINE_F16, 8), 0);
    uint16_t want[8] = {0x7bff, 0x7bff, 0x7c00, 0x3c00, 0x3c02, 0x0000, 0x0001, 0x8000};
    assert_memory_equal(h, want, sizeof(h));
    float back[8];
    assert_int_equal(k_cast(h, ENGINE_F16, back, ENGINE_F32, 8), 0);
    assert_true(back[0] == 65504.0f && isinf(back[2]) && back[6] == 0x1p-24f && signbit(back[7]));
    /* float64 to integers: NaN is 0, out of range saturates to int64 then wraps, no UB */
    double big[3] = {NAN, 1e300, -300.7};
    int8_t i8[3];
    int64_t i64[3];
    assert_int_equal(k_cast(big, ENGINE_F64, i8, ENGINE_I8, 3), 0);
    assert_int_equal(k_cast(big, ENGINE_F64, i64, ENGINE_I64, 3), 0);
    assert_int_equal(i8[0], 0);
    assert_int_equal(i64[1], INT64_MAX);
    assert_int_equal(i8[2], (int8_t)(uint8_t)-300);
    assert_true(k_dtype_wide(ENGINE_F16) && !k_dtype_wide(ENGINE_F32));
}

static void test_cumsum_modes(void **state)
{
    struct engine_shape s = SHAPE(2, 2, 3);
    int32_t x[6] = {1, 2, 3, INT32_MAX, 1, 0}, d[6];
    assert_int_equal(k_cumsum(x, &s, -1, 1, 1, ENGINE_I32, d), 0); /* exclusive, reversed */
    int32_t want[6] = {5, 3, 0, 1, 0, 0};
    assert_memory_equal(d, want, sizeof(d));
    assert_int_equal(k_cumsum(x, &s, 1, 0, 0, ENGINE_I32, d), 0);
    assert_int_equal(d[4], INT32_MIN); /* wraps, no signed overflow */
    assert_int_equal(k_cumsum(x, &s, 2, 0, 0, ENGINE_I32, d), -EINVAL);
    assert_int_equal(k_cumsum(x, &s, -3, 0, 0, ENGINE_I32, d), -EINVAL);
    assert_int_equal(k_cumsum(x, &s, 0, 0, 0, ENGINE_U8, d), -EINVAL);
}

static void test_rnn_lengths(void **state)
{
    /* one step, batch 2, input 1, hidden 1: h = tanh(x * w + h0 * r) */
    struct k_rnn p = {
        .kind = K_RNN_SIMPLE, .seq = 1, .batch = 2, .input = 1, .hidden = 1, .dirs = 1, .gates = 1};
    float x[2] = {1, 2}, w[1] = {0.5f}, r[1] = {0}, y[2];
    int32_t lens[2] = {1, 0}, bad[2] = {1, 2};
    struct k_rnn_io io = {.x = x, .w = w, .r = r, .lens = lens};
    assert_int_equal(k_rnn(&p, &io, 0, y), 0);
    assert_true(fabsf(y[0] - tanhf(0.5f)) < 1e-6f && y[1] == 0.0f); /* past its length: zero */
    io.lens = bad;
    assert_int_equal(k_rnn(&p, &io, 1, y), -EINVAL);
}

static void test_resize_edges(void **state)
{
    /* 1-D linear upsampling x2 (half_pixel): samples clamp at the edges */
    struct engine_shape xs = SHAPE(1, 2), ys = SHAPE(1, 4);
    float x[2] = {0, 4}, y[4];
    struct k_resize p = {.mode = K_RESIZE_LINEAR, .coord = K_RESIZE_HALF_PIXEL, .scale = {2}};
    k_resize(x, &xs, &p, y, &ys);
    float want[4] = {0, 1, 3, 4};
    assert_memory_equal(y, want, sizeof(y));
    /* tf_crop_and_resize outside the crop takes the extrapolation value */
    struct k_resize c = {.mode = K_RESIZE_NEAREST,
                         .coord = K_RESIZE_TF_CROP_AND_RESIZE,
                         .extrapolation = -7,
                         .scale = {2},
                         .roi_start = {-1},
                         .roi_end = {2}};
    k_resize(x, &xs, &c, y, &ys);
    assert_true(y[0] == -7.0f && y[3] == -7.0f);
}

/* One axis of half_pixel linear x2 upsampling: sample i of n2 from a row of n. */
static double lin2(const float *row, int64_t n, int64_t step, int64_t i)
{
    double c = (i + 0.5) / 2 - 0.5, f = floor(c), t = c - f;
    int64_t a = (int64_t)f < 0 ? 0 : (int64_t)f,
            b = (int64_t)f + 1 > n - 1 ? n - 1 : (int64_t)f + 1;
    return (1 - t) * row[a * step] + t * row[b * step];
}

/* The tap tables (last axis in chunks of 256, outer axes per row): 4-D bilinear x2 on H and W
 * with a last axis over two chunks matches the separable formula; an outer-axis crop outside
 * the input fills whole rows with the extrapolation; a 5-D cubic (more outer tap combinations
 * than the tables hold) keeps a constant constant. */
static void test_resize_tables(void **state)
{
    enum { C = 2, H = 3, W = 300 };
    struct engine_shape xs = SHAPE(4, 1, C, H, W), ys = SHAPE(4, 1, C, 2 * H, 2 * W);
    static float x[C * H * W], y[C * 4 * H * W];
    for (int i = 0; i < C * H * W; i++)
        x[i] = (float)((i * 37) % 101) / 7.0f;
    struct k_resize p = {
        .mode = K_RESIZE_LINEAR, .coord = K_RESIZE_HALF_PIXEL, .scale = {1, 1, 2, 2}};
    k_resize(x, &xs, &p, y, &ys);
    double worst = 0;
    for (int c = 0; c < C; c++)
        for (int i = 0; i < 2 * H; i++)
            for (int j = 0; j < 2 * W; j++) {
                double ci = (i + 0.5) / 2 - 0.5, f = floor(ci), t = ci - f;
                int64_t a = f < 0 ? 0 : (int64_t)f,
                        b = (int64_t)f + 1 > H - 1 ? H - 1 : (int64_t)f + 1;
                const float *plane = x + c * H * W;
                double want =
                    (1 - t) * lin2(plane + a * W, W, 1, j) + t * lin2(plane + b * W, W, 1, j);
                worst = fmax(worst, fabs(y[(c * 2 * H + i) * 2 * W + j] - want));
            }
    assert_true(worst < 1e-5);
    struct k_resize crop = {.mode = K_RESIZE_NEAREST,
                            .coord = K_RESIZE_TF_CROP_AND_RESIZE,
                            .extrapolation = -7,
                            .scale = {1, 1, 2, 2},
                            .roi_start = {0, 0, -1, 0},
                            .roi_end = {1, 1, 2, 1}};
    k_resize(x, &xs, &crop, y, &ys);
    /* rows 0 and 1 sample H at -2 and -0.8: outside; row 2 at 0.4 */
    assert_true(y[0] == -7.0f && y[4 * W - 1] == -7.0f && y[4 * W] != -7.0f);
    struct engine_shape s5 = SHAPE(5, 1, 2, 3, 3, 3), o5 = SHAPE(5, 1, 2, 6, 6, 6);
    float k5[54], q5[432];
    for (int i = 0; i < 54; i++)
        k5[i] = 2.5f;
    struct k_resize cubic = {.mode = K_RESIZE_CUBIC,
                             .coord = K_RESIZE_HALF_PIXEL,
                             .cubic_a = -0.75f,
                             .scale = {1, 1, 2, 2, 2}};
    k_resize(k5, &s5, &cubic, q5, &o5);
    for (int i = 0; i < 432; i++)
        assert_true(fabsf(q5[i] - 2.5f) < 1e-5f);
}

static void test_roi_align_refusals(void **state)
{
    struct engine_shape xs = SHAPE(4, 1, 1, 2, 2), ys = SHAPE(4, 1, 1, 1, 1);
    float x[4] = {1, 2, 3, 4}, y[1];
    float roi[4] = {0, 0, 1, 1}, nan_roi[4] = {NAN, 0, 1, 1}, huge[4] = {0, 0, 1e9f, 1e9f};
    int64_t b0[1] = {0}, b1[1] = {1};
    struct k_roi p = {.scale = 1, .sampling_ratio = 0, .half_pixel = 0};
    assert_int_equal(k_roi_align(x, &xs, roi, b0, &p, y, &ys), 0);
    assert_int_equal(k_roi_align(x, &xs, roi, b1, &p, y, &ys), -EINVAL);
    assert_int_equal(k_roi_align(x, &xs, nan_roi, b0, &p, y, &ys), -EINVAL);
    assert_int_equal(k_roi_align(x, &xs, huge, b0, &p, y, &ys), -EINVAL); /* adaptive grid */
}

static void test_onehot_indices(void **state)
{
    struct engine_shape is = SHAPE(1, 5);
    float idx[5] = {1.9f, -1, 3, NAN, -3.5f}; /* truncated; -1 counts from depth; 3 and NaN off */
    int64_t values[2] = {7, 9}, d[15];
    assert_int_equal(k_onehot(idx, ENGINE_F32, &is, 3, 1, values, sizeof(int64_t), d), 0);
    int64_t want[15] = {7, 9, 7, 7, 7, 9, 7, 7, 7, 7, 7, 7, 9, 7, 7};
    assert_memory_equal(d, want, sizeof(d));
}

static void test_tile_shapes(void **state)
{
    struct engine_shape s = SHAPE(2, 1, 2), o = SHAPE(2, 3, 4);
    uint8_t x[2] = {7, 9}, d[12];
    k_tile(x, &s, 1, d, &o);
    uint8_t want[12] = {7, 9, 7, 9, 7, 9, 7, 9, 7, 9, 7, 9};
    assert_memory_equal(d, want, sizeof(d));
    struct engine_shape none = SHAPE(2, 0, 4);
    k_tile(x, &s, 1, NULL, &none); /* zero repeats write nothing */
}

/* ---- plan_kernel_check on hand-built nodes ---- */

static int64_t tensor(struct plan_builder *b, int dtype, struct engine_shape s)
{
    struct plan_tensor t = {.dtype = (uint32_t)dtype,
                            .rank = (uint32_t)s.rank,
                            .storage = PLAN_ST_ARENA,
                            .name = (uint32_t)plan_add_string(b, "t")};
    memcpy(t.dims, s.dims, sizeof(t.dims));
    t.nbytes = (uint64_t)engine_shape_numel(&s) * engine_dtype_size(dtype);
    return plan_add_tensor(b, &t);
}

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
    int64_t x = tensor(&b, ENGINE_F32, SHAPE(2, 2, 3));
    int64_t y = tensor(&b, ENGINE_F32, SHAPE(2, 2, 3));
    int64_t wide = tensor(&b, ENGINE_F32, SHAPE(2, 3, 3));
    int64_t i2 = tensor(&b, ENGINE_I64, SHAPE(2, 2, 3));
    int64_t i3 = tensor(&b, ENGINE_I64, SHAPE(2, 3, 3));
    int64_t fidx = tensor(&b, ENGINE_F32, SHAPE(2, 2, 3));
    int64_t k = tensor(&b, ENGINE_I64, SHAPE(0));
    int64_t k2 = tensor(&b, ENGINE_I64, SHAPE(1, 2));
    int64_t nd = tensor(&b, ENGINE_I64, SHAPE(2, 2, 1));
    int64_t nd_deep = tensor(&b, ENGINE_I64, SHAPE(2, 2, 3));
    int64_t row = tensor(&b, ENGINE_F32, SHAPE(1, 2));
    int64_t img = tensor(&b, ENGINE_F32, SHAPE(4, 1, 8, 2, 3));
    int64_t img2 = tensor(&b, ENGINE_F32, SHAPE(4, 1, 2, 4, 6));
    int64_t ge[2] = {x, i2}, ge_wide[2] = {x, i3}, ge_f[2] = {x, fidx};
    int32_t none[1] = {K_RED_NONE}, bad_red[1] = {9}, add[1] = {K_RED_ADD};
    /* GatherElements / ScatterElements */
    assert_int_equal(check_node(PLAN_K_GATHER_ELEMENTS, ge, 2, y, NULL, 0, 1, &b), 0);
    assert_int_equal(check_node(PLAN_K_GATHER_ELEMENTS, ge, 2, y, NULL, 0, 2, &b), -EINVAL);
    assert_int_equal(check_node(PLAN_K_GATHER_ELEMENTS, ge_wide, 2, wide, NULL, 0, 1, &b),
                     -EINVAL); /* indices larger than data off the axis */
    assert_int_equal(check_node(PLAN_K_GATHER_ELEMENTS, ge_f, 2, y, NULL, 0, 1, &b), -EINVAL);
    int64_t se[3] = {x, i2, y}, se_short[2] = {x, i2};
    assert_int_equal(check_node(PLAN_K_SCATTER_ELEMENTS, se, 3, y, add, 1, 0, &b), 0);
    assert_int_equal(check_node(PLAN_K_SCATTER_ELEMENTS, se, 3, y, bad_red, 1, 0, &b), -EINVAL);
    assert_int_equal(check_node(PLAN_K_SCATTER_ELEMENTS, se, 3, wide, none, 1, 0, &b), -EINVAL);
    assert_int_equal(check_node(PLAN_K_SCATTER_ELEMENTS, se_short, 2, y, none, 1, 0, &b), -EINVAL);
    assert_int_equal(check_node(PLAN_K_SCATTER_ELEMENTS, se, 3, y, NULL, 0, 0, &b), -EINVAL);
    /* GatherND / ScatterND */
    int64_t gn[2] = {x, nd}, gn_deep[2] = {x, nd_deep};
    int32_t b0[1] = {0}, b1[1] = {1}, b2[1] = {2};
    assert_int_equal(check_node(PLAN_K_GATHER_ND, gn, 2, x, b0, 1, 0, &b), 0);
    assert_int_equal(check_node(PLAN_K_GATHER_ND, gn, 2, row, b1, 1, 0, &b), 0);
    assert_int_equal(check_node(PLAN_K_GATHER_ND, gn, 2, row, b2, 1, 0, &b), -EINVAL);
    assert_int_equal(check_node(PLAN_K_GATHER_ND, gn_deep, 2, row, b0, 1, 0, &b), -EINVAL);
    assert_int_equal(check_node(PLAN_K_GATHER_ND, gn, 2, y, b1, 1, 0, &b), -EINVAL);
    int64_t sn[3] = {x, nd, x}, sn_bad[3] = {x, nd, row};
    assert_int_equal(check_node(PLAN_K_SCATTER_ND, sn, 3, y, none, 1, 0, &b), 0);
    assert_int_equal(check_node(PLAN_K_SCATTER_ND, sn_bad, 3, y, none, 1, 0, &b), -EINVAL);
    assert_int_equal(check_node(PLAN_K_SCATTER_ND, sn, 3, y, bad_red, 1, 0, &b), -EINVAL);
    /* Trilu, DepthToSpace, Tile */
    int64_t tr[2] = {x, k}, tr_bad[2] = {x, k2};
    int32_t up[1] = {1}, up_bad[1] = {2};
    assert_int_equal(check_node(PLAN_K_TRILU, tr, 2, y, up, 1, 0, &b), 0);
    assert_int_equal(check_node(PLAN_K_TRILU, tr, 2, y, up_bad, 1, 0, &b), -EINVAL);
    assert_int_equal(check_node(PLAN_K_TRILU, tr_bad, 2, y, up, 1, 0, &b), -EINVAL);
    int64_t ds[1] = {img}, ss[1] = {img2};
    int32_t dcr[2] = {2, K_DEPTH_DCR}, s2d[2] = {2, K_SPACE_TO_DEPTH};
    int32_t b3[2] = {3, K_DEPTH_DCR}, mode9[2] = {2, 9}, b0p[2] = {0, K_DEPTH_DCR};
    assert_int_equal(check_node(PLAN_K_DEPTH_SPACE, ds, 1, img2, dcr, 2, 0, &b), 0);
    assert_int_equal(check_node(PLAN_K_DEPTH_SPACE, ss, 1, img, s2d, 2, 0, &b), 0);
    assert_int_equal(check_node(PLAN_K_DEPTH_SPACE, ds, 1, img2, b3, 2, 0, &b), -EINVAL);
    assert_int_equal(check_node(PLAN_K_DEPTH_SPACE, ds, 1, img2, mode9, 2, 0, &b), -EINVAL);
    assert_int_equal(check_node(PLAN_K_DEPTH_SPACE, ds, 1, img2, b0p, 2, 0, &b), -EINVAL);
    int64_t tl[1] = {x};
    assert_int_equal(check_node(PLAN_K_TILE, tl, 1, y, NULL, 0, 0, &b), 0);
    assert_int_equal(check_node(PLAN_K_TILE, tl, 1, wide, NULL, 0, 0, &b), -EINVAL);
    assert_int_equal(check_node(PLAN_K_TILE, tl, 1, row, NULL, 0, 0, &b), -EINVAL);
    assert_int_equal(check_node(99, tl, 1, y, NULL, 0, 0, &b), -EINVAL);
    /* ConvTranspose [1,8,2,3] * [8,1,2,2] with group 2 -> [1,2,4,6]; LRN */
    int64_t w = tensor(&b, ENGINE_F32, SHAPE(4, 8, 1, 2, 2));
    int64_t bias = tensor(&b, ENGINE_F32, SHAPE(1, 2)), bias3 = tensor(&b, ENGINE_F32, SHAPE(1, 3));
    int64_t dc[3] = {img, w, bias}, dc_bad[3] = {img, w, bias3};
    int32_t geo[8] = {2, 2, 2, 2, 1, 1, 0, 0}, geo_g3[8] = {3, 2, 2, 2, 1, 1, 0, 0};
    int32_t geo_s0[8] = {2, 2, 0, 2, 1, 1, 0, 0}, geo_sp[8] = {2, 3, 2, 2, 1, 1, 0, 0};
    assert_int_equal(check_node(PLAN_K_CONV_TRANSPOSE, dc, 3, img2, geo, 8, 0, &b), 0);
    assert_int_equal(check_node(PLAN_K_CONV_TRANSPOSE, dc, 2, img2, geo, 8, 0, &b), 0);
    assert_int_equal(check_node(PLAN_K_CONV_TRANSPOSE, dc_bad, 3, img2, geo, 8, 0, &b), -EINVAL);
    assert_int_equal(check_node(PLAN_K_CONV_TRANSPOSE, dc, 3, img2, geo_g3, 8, 0, &b), -EINVAL);
    assert_int_equal(check_node(PLAN_K_CONV_TRANSPOSE, dc, 3, img2, geo_s0, 8, 0, &b), -EINVAL);
    assert_int_equal(check_node(PLAN_K_CONV_TRANSPOSE, dc, 3, img2, geo_sp, 8, 0, &b), -EINVAL);
    assert_int_equal(check_node(PLAN_K_CONV_TRANSPOSE, dc, 3, img2, geo, 7, 0, &b), -EINVAL);
    int32_t lrn[2] = {3, 0}, lrn0[2] = {0, 0};
    assert_int_equal(check_node(PLAN_K_LRN, ds, 1, img, lrn, 2, 0, &b), 0);
    assert_int_equal(check_node(PLAN_K_LRN, ds, 1, img, lrn0, 2, 0, &b), -EINVAL);
    assert_int_equal(check_node(PLAN_K_LRN, ds, 1, img2, lrn, 2, 0, &b), -EINVAL);
    /* GridSample [1,8,2,3] at grid [1,2,3,2] -> [1,8,2,3]; ReverseSequence; MaxUnpool */
    int64_t grid = tensor(&b, ENGINE_F32, SHAPE(4, 1, 2, 3, 2));
    int64_t gs[2] = {img, grid};
    int32_t gp[3] = {K_GRID_BICUBIC, K_GRID_REFLECTION, 1}, gp_bad[3] = {3, 0, 0};
    int32_t gp_ac[3] = {0, 0, 2};
    assert_int_equal(check_node(PLAN_K_GRID_SAMPLE, gs, 2, img, gp, 3, 0, &b), 0);
    assert_int_equal(check_node(PLAN_K_GRID_SAMPLE, gs, 2, img, gp_bad, 3, 0, &b), -EINVAL);
    assert_int_equal(check_node(PLAN_K_GRID_SAMPLE, gs, 2, img, gp_ac, 3, 0, &b), -EINVAL);
    assert_int_equal(check_node(PLAN_K_GRID_SAMPLE, gs, 2, img2, gp, 3, 0, &b), -EINVAL);
    int64_t lens2 = tensor(&b, ENGINE_I64, SHAPE(1, 2)),
            lens3 = tensor(&b, ENGINE_I64, SHAPE(1, 3));
    int64_t rs[2] = {x, lens2}, rs3[2] = {x, lens3};
    int32_t b0a[1] = {0}, b1a[1] = {1};
    assert_int_equal(check_node(PLAN_K_REVERSE_SEQ, rs, 2, y, b0a, 1, 0, &b), 0);
    assert_int_equal(check_node(PLAN_K_REVERSE_SEQ, rs3, 2, y, b1a, 1, 0, &b), 0);
    assert_int_equal(check_node(PLAN_K_REVERSE_SEQ, rs, 2, y, b1a, 1, 0, &b), -EINVAL);
    int64_t mu[2] = {x, i2}, mu_bad[2] = {x, nd};
    assert_int_equal(check_node(PLAN_K_MAX_UNPOOL, mu, 2, wide, NULL, 0, 0, &b), 0);
    assert_int_equal(check_node(PLAN_K_MAX_UNPOOL, mu_bad, 2, wide, NULL, 0, 0, &b), -EINVAL);
    /* RNN: x [1,2,1] (seq, batch, input), w [1,1,1], r [1,1,1] -> Y [1,1,2,1] */
    int64_t rx = tensor(&b, ENGINE_F32, SHAPE(3, 1, 2, 1)),
            rw = tensor(&b, ENGINE_F32, SHAPE(3, 1, 1, 1));
    int64_t ry = tensor(&b, ENGINE_F32, SHAPE(4, 1, 1, 2, 1)),
            rl = tensor(&b, ENGINE_I32, SHAPE(1, 2));
    int64_t rnn_in[4] = {rx, rw, rw, rl};
    int32_t rp[7] = {K_RNN_SIMPLE, K_RNN_FORWARD, 0, 0, 1, 0, 2};
    assert_int_equal(check_node(PLAN_K_RNN, rnn_in, 4, ry, rp, 7, 0, &b), 0);
    assert_int_equal(check_node(PLAN_K_RNN, rnn_in, 3, ry, rp, 7, 0, &b), -EINVAL);
    rp[6] = 1; /* says a bias is there: the int32 lengths do not fit it */
    assert_int_equal(check_node(PLAN_K_RNN, rnn_in, 4, ry, rp, 7, 0, &b), -EINVAL);
    int32_t big[7] = {K_RNN_SIMPLE, K_RNN_FORWARD, 0, 0, K_RNN_MAX_HIDDEN + 1, 0, 0};
    assert_int_equal(check_node(PLAN_K_RNN, rnn_in, 3, ry, big, 7, 0, &b), -EINVAL);
    /* Resize [2,3] -> [2,3]: 6 + 3 * rank params; an empty input cannot feed a non-empty output */
    int32_t rz[12] = {K_RESIZE_CUBIC, K_RESIZE_ALIGN_CORNERS, K_NEAREST_CEIL, 1};
    assert_int_equal(check_node(PLAN_K_RESIZE, tl, 1, y, rz, 12, 0, &b), 0);
    assert_int_equal(check_node(PLAN_K_RESIZE, tl, 1, y, rz, 11, 0, &b), -EINVAL);
    rz[1] = 6;
    assert_int_equal(check_node(PLAN_K_RESIZE, tl, 1, y, rz, 12, 0, &b), -EINVAL);
    rz[1] = 0;
    int64_t zero_in = tensor(&b, ENGINE_F32, SHAPE(2, 0, 3)), zin[1] = {zero_in};
    assert_int_equal(check_node(PLAN_K_RESIZE, zin, 1, y, rz, 12, 0, &b), -EINVAL);
    /* MaxPool with Indices on [1,8,2,3]: Y float32, Indices int64; windows bounded */
    int64_t idx_out = tensor(&b, ENGINE_I64, SHAPE(4, 1, 8, 2, 3)), mp[1] = {img};
    int32_t mpy[11] = {0, 0, 2, 1, 1, 1, 1, 0, 0, 1, 1},
            mpi[11] = {1, 1, 2, 1, 1, 1, 1, 0, 0, 1, 1};
    int32_t mp_big[11] = {1, 0, 2, 1 << 20, 1 << 20, 1, 1, 0, 0, 1, 1};
    assert_int_equal(check_node(PLAN_K_MAXPOOL_IDX, mp, 1, img, mpy, 11, 0, &b), 0);
    assert_int_equal(check_node(PLAN_K_MAXPOOL_IDX, mp, 1, idx_out, mpi, 11, 0, &b), 0);
    assert_int_equal(check_node(PLAN_K_MAXPOOL_IDX, mp, 1, img, mpi, 11, 0, &b), -EINVAL);
    assert_int_equal(check_node(PLAN_K_MAXPOOL_IDX, mp, 1, idx_out, mp_big, 11, 0, &b), -EINVAL);
    plan_builder_free(&b);
}

/* ---- a session refuses an out-of-range index ---- */

static void test_run_index_out_of_range(void **state)
{
    struct ir_graph *g = tb_graph();
    int x = tb_act(g, "x", SHAPE(2, 2, 3));
    int y = tb_act(g, "y", SHAPE(2, 2, 1));
    struct engine_shape is = SHAPE(2, 2, 1);
    int64_t *iv = malloc(2 * sizeof(int64_t));
    iv[0] = -3;
    iv[1] = 3; /* one past the last column */
    int idx = ir_add_const(g, "idx", "", ENGINE_I64, &is, iv);
    tb_input(g, x);
    int ins[2] = {x, idx};
    ir_attr_set_int(tb_node(g, "GatherElements", ins, 2, y), "axis", 1);
    tb_output(g, y);
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

/* The parameter contracts (kernel_params.h): what the compiler encodes decodes back to the same
 * struct, and a wrong count or an out-of-range word is refused by the one decoder. */
static void test_param_contracts(void **state)
{
    (void)state;
    int64_t w[KP_MAX_PARAMS];
    int32_t p[KP_MAX_PARAMS];
    struct kp_onehot oh = {7, 2}, oh2;
    uint32_t n = kp_encode_onehot(&oh, w);
    for (uint32_t i = 0; i < n; i++)
        p[i] = (int32_t)w[i];
    assert_int_equal(kp_decode_onehot(p, n, &oh2), 0);
    assert_true(oh2.depth == 7 && oh2.axis == 2);
    assert_int_equal(kp_decode_onehot(p, n - 1, &oh2), -EINVAL);
    struct kp_reduce r = {.op = (enum k_redop)1, .mask = {1, 0, 1}}, r2;
    n = kp_encode_reduce(&r, 3, 1, w);
    for (uint32_t i = 0; i < n; i++)
        p[i] = (int32_t)w[i];
    assert_int_equal(kp_decode_reduce(p, n, 3, 1, &r2), 0);
    assert_true(r2.op == 1 && r2.mask[0] && !r2.mask[1] && r2.mask[2]);
    assert_int_equal(kp_decode_reduce(p, n, 2, 1, &r2), -EINVAL); /* count from another rank */
    p[0] = K_REDOP_COUNT_;
    assert_int_equal(kp_decode_reduce(p, n, 3, 1, &r2), -EINVAL);
    struct kp_op o;
    int32_t pow[1] = {K_POW}, neg[1] = {-1}, big[1] = {K_UNOP_COUNT_};
    assert_int_equal(kp_decode_op(PLAN_K_ARITH, pow, 1, &o), 0);
    assert_int_equal(kp_decode_op(PLAN_K_ARITH, neg, 1, &o), -EINVAL);
    assert_int_equal(kp_decode_op(PLAN_K_UNARY, big, 1, &o), -EINVAL);
    assert_int_equal(kp_decode_op(PLAN_K_TOPK, pow, 1, &o), -EINVAL); /* not an op-word kind */
    int32_t two[2] = {1, 2};
    struct kp_topk t;
    struct kp_stft st;
    struct kp_scatter sc;
    assert_int_equal(kp_decode_topk(two, 2, &t), -EINVAL); /* 2 is not a flag */
    assert_int_equal(kp_decode_stft(two, 2, &st), -EINVAL);
    assert_int_equal(kp_decode_scatter(neg, 1, &sc), -EINVAL);
}

/* k_scan_slice reads and writes slice i of the middle axis of [outer, len, inner]; the loop
 * kinds' parameter contracts round-trip and refuse what the validator relies on; k_slice_from
 * takes its window at a run-time start and refuses one that does not fit. */
static void test_scan_slice(void **state)
{
    (void)state;
    float full[2 * 3 * 2], slice[2 * 2];
    for (int i = 0; i < 12; i++)
        full[i] = (float)i;
    k_scan_slice(full, slice, 2, 3, 2 * sizeof(float), 1, 0); /* [o][1][:] */
    assert_true(slice[0] == 2 && slice[1] == 3 && slice[2] == 8 && slice[3] == 9);
    float row[4] = {-1, -2, -3, -4};
    k_scan_slice(full, row, 2, 3, 2 * sizeof(float), 2, 1);
    assert_true(full[4] == -1 && full[5] == -2 && full[10] == -3 && full[11] == -4);
    assert_true(full[3] == 3 && full[9] == 9); /* the other slices untouched */
    int64_t w[KP_MAX_PARAMS];
    int32_t p[KP_MAX_PARAMS];
    struct kp_scan_slice q = {3, 2, 3, 8, 1, 0}, q2;
    uint32_t n = kp_encode_scan_slice(&q, w);
    for (uint32_t i = 0; i < n; i++)
        p[i] = (int32_t)w[i];
    assert_int_equal(kp_decode_scan_slice(p, n, &q2), 0);
    assert_true(q2.begin == 3 && q2.outer == 2 && q2.len == 3 && q2.inner == 8 && q2.reverse);
    p[2] = 0; /* an empty axis is never a slice */
    assert_int_equal(kp_decode_scan_slice(p, n, &q2), -EINVAL);
    struct kp_loop l = {9, ENGINE_LOOP_MAX_ITER, 1, 0}, l2;
    n = kp_encode_loop(&l, w);
    for (uint32_t i = 0; i < n; i++)
        p[i] = (int32_t)w[i];
    assert_int_equal(kp_decode_loop(p, n, &l2), 0);
    assert_true(l2.end == 9 && l2.max == ENGINE_LOOP_MAX_ITER && l2.has_trip && !l2.has_cond);
    p[1] = ENGINE_LOOP_MAX_ITER + 1;
    assert_int_equal(kp_decode_loop(p, n, &l2), -EINVAL);
    struct kp_loop_end e;
    int32_t bad_end[2] = {4, 2};
    assert_int_equal(kp_decode_loop_end(bad_end, 2, &e), -EINVAL);
    /* SLICE_DYN: a window at a start read per run, refused past either end */
    struct engine_shape s6 = {.rank = 2, .dims = {2, 6}}, s2 = {.rank = 2, .dims = {2, 2}};
    float x[12], win[4];
    for (int i = 0; i < 12; i++)
        x[i] = (float)i;
    assert_int_equal(k_slice_from(x, &s6, 1, 4, &s2, sizeof(float), win), 0);
    assert_true(win[0] == 4 && win[1] == 5 && win[2] == 10 && win[3] == 11);
    assert_int_equal(k_slice_from(x, &s6, 1, 5, &s2, sizeof(float), win), -EINVAL);
    assert_int_equal(k_slice_from(x, &s6, 1, -1, &s2, sizeof(float), win), -EINVAL);
    assert_int_equal(k_slice_from(x, &s6, 1, INT64_MAX, &s2, sizeof(float), win), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gather_elements_indices),
        cmocka_unit_test(test_scatter_reductions),
        cmocka_unit_test(test_nd_indices),
        cmocka_unit_test(test_trilu_extremes),
        cmocka_unit_test(test_depth_space_round_trip),
        cmocka_unit_test(test_conv_transpose_crops),
        cmocka_unit_test(test_sequence_and_unpool),
        cmocka_unit_test(test_grid_sample_odd_coordinates),
        cmocka_unit_test(test_cast_wide),
        cmocka_unit_test(test_cumsum_modes),
        cmocka_unit_test(test_rnn_lengths),
        cmocka_unit_test(test_resize_edges),
        cmocka_unit_test(test_resize_tables),
        cmocka_unit_test(test_roi_align_refusals),
        cmocka_unit_test(test_onehot_indices),
        cmocka_unit_test(test_tile_shapes),
        cmocka_unit_test(test_hostile_params),
        cmocka_unit_test(test_param_contracts),
        cmocka_unit_test(test_run_index_out_of_range),
        cmocka_unit_test(test_scan_slice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
