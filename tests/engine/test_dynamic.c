/*
 * test_dynamic.c — run-time shapes (issue 17): the specialising model (engine_dynamic_*) runs a
 * model whose Reshape takes its shape from a graph input for any shape value, and one whose dims
 * are symbolic for any input shape, compiling a plan per request signature and reusing it on the
 * next request of that signature; the shape operand is found once (the first compile); the plan
 * cache stays within its count and byte bounds under a stream of ever-new shapes (it evicts);
 * a request that does not fit the model is refused before any compile; plans at other shapes
 * share one copy of identical weights, past the eviction of the plan that brought them;
 * engine_compile_pinning keeps only the pins the model needs; a sequence input and output
 * (ops/sequence.c) are fed and filled as their elements, their length part of the key.
 *   test-dynamic PIN_DIR SYMBOLIC_DIR SEQ_DIR   (gen_pin_model.py, gen_symbolic_model.py,
 *                                                gen_seq_model.py)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "engine/engine.h"

static const char *pin_dir, *sym_dir, *seq_dir;

static uint8_t *load(const char *dir, const char *name, size_t *len)
{
    char path[4096], err[256];
    uint8_t *buf = NULL;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (read_file(path, 1 << 24, &buf, len, err, sizeof(err)))
        fail_msg("%s", err);
    return buf;
}

static struct engine_dynamic *open_dyn(const char *dir, const char *name, int max_plans,
                                       uint64_t max_bytes)
{
    size_t len;
    uint8_t *onnx = load(dir, name, &len);
    struct engine_dynamic_opts o = {.compile = {.threads = 1, .model_name = name},
                                    .max_plans = max_plans,
                                    .max_bytes = max_bytes};
    struct engine_dynamic *d = NULL;
    char err[512];
    int rc = engine_dynamic_open(onnx, len, &o, &d, err, sizeof(err));
    free(onnx);
    if (rc)
        fail_msg("open: %s", err);
    return d;
}

/* Reshape(x = 0..23, shape) for one shape value; checks the output's shape and data. */
static void reshape(struct engine_dynamic *d, const int64_t *dims, int rank)
{
    float x[24];
    for (int i = 0; i < 24; i++)
        x[i] = (float)i;
    struct engine_tensor in[2] = {
        {.name = "x", .dtype = ENGINE_F32, .shape = {1, {24}}, .data = x, .nbytes = sizeof(x)},
        {.name = "shape",
         .dtype = ENGINE_I64,
         .shape = {1, {rank}},
         .data = (void *)dims,
         .nbytes = (size_t)rank * sizeof(int64_t)},
    };
    struct engine_tensor out[1] = {{0}};
    char err[512];
    int rc = engine_dynamic_run(d, in, 2, out, 1, err, sizeof(err));
    if (rc)
        fail_msg("run: %s", err);
    assert_int_equal(out[0].shape.rank, rank);
    for (int i = 0; i < rank; i++)
        assert_int_equal(out[0].shape.dims[i], dims[i]);
    for (int i = 0; i < 24; i++)
        assert_true(((float *)out[0].data)[i] == (float)i);
}

static void test_shape_operand(void **state)
{
    (void)state;
    struct engine_dynamic *d = open_dyn(pin_dir, "reshape_shape_input.onnx", 0, 0);
    struct engine_dynamic_stats st;
    engine_dynamic_stats(d, &st);
    assert_int_equal(st.pinned_inputs, -1); /* not known before the first compile */
    static const int64_t a[3] = {2, 3, 4}, b[3] = {4, 3, 2}, c[3] = {6, 4, 1};
    reshape(d, a, 3);
    engine_dynamic_stats(d, &st);
    assert_int_equal(st.pinned_inputs, 1); /* "shape"; x stays a plain input */
    uint64_t first = st.compiles;
    assert_int_equal(first, 1);
    reshape(d, b, 3);
    reshape(d, c, 3);
    reshape(d, a, 3); /* cached */
    engine_dynamic_stats(d, &st);
    assert_int_equal(st.compiles, first + 2); /* one compile per new value after the first */
    assert_int_equal(st.misses, 3);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.plans, 3);
    engine_dynamic_close(d);
}

static void test_bounds_evict(void **state)
{
    (void)state;
    struct engine_dynamic *d = open_dyn(pin_dir, "reshape_shape_input.onnx", 2, 0);
    static const int64_t shapes[6][3] = {{1, 1, 24}, {1, 2, 12}, {1, 3, 8},
                                         {1, 4, 6},  {1, 6, 4},  {1, 8, 3}};
    struct engine_dynamic_stats st;
    for (int i = 0; i < 6; i++) {
        reshape(d, shapes[i], 3);
        engine_dynamic_stats(d, &st);
        assert_true(st.plans <= 2);
    }
    assert_int_equal(st.evictions, 4);
    reshape(d, shapes[5], 3); /* the most recent one is still there */
    engine_dynamic_stats(d, &st);
    assert_int_equal(st.hits, 1);
    reshape(d, shapes[0], 3); /* evicted long ago: compiled again */
    engine_dynamic_stats(d, &st);
    assert_int_equal(st.misses, 7);
    engine_dynamic_close(d);

    /* a byte bound below one plan: refused, nothing cached */
    d = open_dyn(pin_dir, "reshape_shape_input.onnx", 0, 64);
    float x[24] = {0};
    static const int64_t s[3] = {2, 3, 4};
    struct engine_tensor in[2] = {
        {.name = "x", .dtype = ENGINE_F32, .shape = {1, {24}}, .data = x, .nbytes = sizeof(x)},
        {.name = "shape", .dtype = ENGINE_I64, .shape = {1, {3}}, .data = (void *)s, .nbytes = 24},
    };
    struct engine_tensor out[1];
    char err[512];
    assert_int_equal(engine_dynamic_run(d, in, 2, out, 1, err, sizeof(err)), -E2BIG);
    assert_non_null(strstr(err, "over the bound"));
    engine_dynamic_stats(d, &st);
    assert_int_equal(st.plans, 0);
    assert_int_equal(st.bytes, 0);
    engine_dynamic_close(d);
}

/* The symbolic CNN of gen_symbolic_model.py on a batch x 3 x h x w of ones. */
static int run_cnn(struct engine_dynamic *d, int64_t n, int64_t c, int64_t h, int64_t w,
                   struct engine_tensor *out, char *err, size_t errlen)
{
    size_t numel = (size_t)(n * c * h * w);
    float *x = malloc(numel * sizeof(float));
    for (size_t i = 0; i < numel; i++)
        x[i] = 1.0f;
    struct engine_tensor in = {.name = NULL,
                               .dtype = ENGINE_F32,
                               .shape = {4, {n, c, h, w}},
                               .data = x,
                               .nbytes = numel * sizeof(float)};
    int rc = engine_dynamic_run(d, &in, 1, out, 1, err, errlen);
    free(x);
    return rc;
}

static void test_symbolic_dims(void **state)
{
    (void)state;
    struct engine_dynamic *d = open_dyn(sym_dir, "symbolic_cnn.onnx", 0, 0);
    struct engine_tensor_info info;
    assert_int_equal(engine_dynamic_n_inputs(d), 1);
    assert_int_equal(engine_dynamic_input(d, 0, &info), 0);
    assert_int_equal(info.shape.rank, 4);
    assert_true(info.shape.dims[0] < 0 && info.shape.dims[1] == 3);
    struct engine_tensor out[1];
    char err[512];
    static const int64_t sh[3][3] = {{1, 8, 8}, {2, 16, 12}, {3, 5, 7}};
    for (int i = 0; i < 3; i++) {
        if (run_cnn(d, sh[i][0], 3, sh[i][1], sh[i][2], out, err, sizeof(err)))
            fail_msg("run: %s", err);
        assert_int_equal(out[0].shape.rank, 2);
        assert_int_equal(out[0].shape.dims[0], sh[i][0]);
        assert_int_equal(out[0].shape.dims[1], 4);
    }
    struct engine_dynamic_stats st;
    engine_dynamic_stats(d, &st);
    assert_int_equal(st.pinned_inputs, 0);
    assert_int_equal(st.compiles, 3); /* no shape operand: one compile per shape */
    /* the model fixes 3 channels: refused before any compile */
    assert_int_equal(run_cnn(d, 1, 4, 8, 8, out, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "has shape [1,4,8,8]"));
    engine_dynamic_stats(d, &st);
    assert_int_equal(st.compiles, 3);
    assert_int_equal(st.last_refused, 0);
    engine_dynamic_close(d);
}

/* Plans of one model at other shapes run on one copy of the weights when the packing is the same,
 * also after the plan that brought them is evicted, and compute what a plan with its own does. */
static void test_shared_weights(void **state)
{
    (void)state;
    struct engine_dynamic *d = open_dyn(sym_dir, "symbolic_cnn.onnx", 2, 0);
    static const int64_t sh[3][3] = {{1, 8, 8}, {2, 16, 12}, {3, 5, 7}};
    struct engine_tensor out[1];
    char err[512];
    float *got[3];
    size_t got_len[3];
    for (int i = 0; i < 3; i++) { /* the third evicts the first, whose image holds the weights */
        if (run_cnn(d, sh[i][0], 3, sh[i][1], sh[i][2], out, err, sizeof(err)))
            fail_msg("run: %s", err);
        got_len[i] = out[0].nbytes;
        got[i] = malloc(got_len[i]);
        memcpy(got[i], out[0].data, got_len[i]);
    }
    struct engine_dynamic_stats st;
    engine_dynamic_stats(d, &st);
    assert_int_equal(st.weights_shared, 2);
    assert_int_equal(st.evictions, 1);
    if (run_cnn(d, sh[1][0], 3, sh[1][1], sh[1][2], out, err, sizeof(err))) /* a hit */
        fail_msg("run: %s", err);
    assert_memory_equal(out[0].data, got[1], got_len[1]);
    engine_dynamic_close(d);
    for (int i = 0; i < 3; i++) { /* each shape alone: its own weights, the same answer */
        d = open_dyn(sym_dir, "symbolic_cnn.onnx", 0, 0);
        if (run_cnn(d, sh[i][0], 3, sh[i][1], sh[i][2], out, err, sizeof(err)))
            fail_msg("run: %s", err);
        assert_int_equal(out[0].nbytes, got_len[i]);
        assert_memory_equal(out[0].data, got[i], got_len[i]);
        engine_dynamic_stats(d, &st);
        assert_int_equal(st.weights_shared, 0);
        engine_dynamic_close(d);
        free(got[i]);
    }
}

static void test_compile_pinning(void **state)
{
    (void)state;
    size_t len;
    uint8_t *onnx = load(pin_dir, "range_inputs.onnx", &len);
    static const int64_t v[3] = {10, 6, -3};
    struct engine_tensor vals[3];
    const char *names[3] = {"start", "limit", "delta"};
    for (int i = 0; i < 3; i++)
        vals[i] = (struct engine_tensor){
            .name = names[i], .dtype = ENGINE_I64, .data = (void *)&v[i], .nbytes = 8};
    struct engine_compile_opts o = {.threads = 1, .model_name = "range"};
    int pinned[3];
    void *img;
    size_t img_len;
    char err[512];
    if (engine_compile_pinning(onnx, len, &o, vals, 3, pinned, &img, &img_len, err, sizeof(err)))
        fail_msg("compile: %s", err);
    for (int i = 0; i < 3; i++)
        assert_int_equal(pinned[i], 1);
    engine_image_free(img);
    /* nothing to pin with: the compiler's own reason */
    assert_true(engine_compile_pinning(onnx, len, &o, vals, 0, pinned, &img, &img_len, err,
                                       sizeof(err)) < 0);
    assert_non_null(strstr(err, "constant"));
    free(onnx);
}

/* Runs seq_io.onnx on a sequence of n [k+1, 3] tensors (k = 0..n-1, values counting up) with
 * pos 0; checks the output sequence ys (extra first, then the elements) and cat. */
static void seq_run(struct engine_dynamic *d, int n)
{
    float data[4][12];
    char names[4][16];
    int64_t pos = 0;
    struct engine_tensor in[5] = {
        {.name = "pos", .dtype = ENGINE_I64, .shape = {0, {0}}, .data = &pos, .nbytes = 8}};
    for (int k = 0; k < n; k++) {
        for (int i = 0; i < 12; i++)
            data[k][i] = (float)(10 * k + i);
        snprintf(names[k], sizeof(names[k]), "xs[%d]", k);
        in[1 + k] = (struct engine_tensor){.name = names[k],
                                           .dtype = ENGINE_F32,
                                           .shape = {2, {k + 1, 3}},
                                           .data = data[k],
                                           .nbytes = (size_t)(k + 1) * 3 * sizeof(float)};
    }
    struct engine_tensor out[8];
    char err[512];
    if (engine_dynamic_run(d, in, 1 + n, out, 8, err, sizeof(err)))
        fail_msg("run: %s", err);
    struct engine_dynamic_stats st;
    engine_dynamic_stats(d, &st);
    assert_int_equal(st.outputs, n + 2); /* ys[0..n], cat */
    assert_string_equal(out[0].name, "ys[0]");
    assert_true(((float *)out[0].data)[0] == 9.0f && out[0].shape.dims[0] == 1);
    int64_t rows = 0;
    for (int k = 0; k < n; k++) {
        char want[16];
        snprintf(want, sizeof(want), "ys[%d]", k + 1);
        assert_string_equal(out[1 + k].name, want);
        assert_int_equal(out[1 + k].shape.dims[0], k + 1);
        assert_true(((float *)out[1 + k].data)[2] == (float)(10 * k + 2));
        rows += k + 1;
    }
    assert_string_equal(out[n + 1].name, "cat");
    assert_int_equal(out[n + 1].shape.dims[0], rows);
    assert_null(out[n + 2].data); /* slots past the plan's outputs are zeroed */
}

/* A sequence input is fed as its elements "xs[0]", "xs[1]", ...: its length and their shapes
 * are the key (two lengths: two plans, the same again: a hit); a sequence output fills one slot
 * per element; a gap in the elements or too few output slots is refused. */
static void test_sequences(void **state)
{
    (void)state;
    struct engine_dynamic *d = open_dyn(seq_dir, "seq_io.onnx", 0, 0);
    struct engine_tensor_info info;
    assert_int_equal(engine_dynamic_input(d, 0, &info), 0);
    assert_string_equal(info.name, "xs");
    assert_int_equal(info.seq, 1);
    assert_int_equal(info.dtype, ENGINE_F32);
    assert_int_equal(engine_dynamic_output(d, 0, &info), 0);
    assert_int_equal(info.seq, 1);
    seq_run(d, 2);
    seq_run(d, 3);
    seq_run(d, 2);
    struct engine_dynamic_stats st;
    engine_dynamic_stats(d, &st);
    assert_int_equal(st.misses, 2);
    assert_int_equal(st.hits, 1);
    float x[3] = {0};
    int64_t pos = 0;
    struct engine_tensor in[2] = {
        {.name = "pos", .dtype = ENGINE_I64, .shape = {0, {0}}, .data = &pos, .nbytes = 8},
        {.name = "xs[1]", .dtype = ENGINE_F32, .shape = {2, {1, 3}}, .data = x, .nbytes = 12}};
    struct engine_tensor out[8];
    char err[512];
    assert_int_equal(engine_dynamic_run(d, in, 2, out, 8, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "a sequence input NAME is fed as NAME[0], NAME[1]"));
    in[1].name = "xs[0]";
    assert_true(engine_dynamic_run(d, in, 2, out, 2, err, sizeof(err)) < 0); /* 3 outputs */
    /* 1025 elements: over ENGINE_MAX_SEQ, refused before any compile */
    enum { N = ENGINE_MAX_SEQ + 1 };
    struct engine_tensor *many = calloc(N + 1, sizeof(*many));
    char(*names)[16] = calloc(N, sizeof(*names));
    assert_non_null(many);
    assert_non_null(names);
    many[N] = in[0];
    for (int k = 0; k < N; k++) {
        snprintf(names[k], sizeof(names[k]), "xs[%d]", k);
        many[k] = in[1];
        many[k].name = names[k];
    }
    engine_dynamic_stats(d, &st);
    uint64_t compiles = st.compiles;
    assert_int_equal(engine_dynamic_run(d, many, N + 1, out, 8, err, sizeof(err)), -E2BIG);
    assert_non_null(strstr(err, "input 'xs' has more than 1024 elements"));
    engine_dynamic_stats(d, &st);
    assert_int_equal(st.compiles, compiles);
    free(many);
    free(names);
    engine_dynamic_close(d);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: test-dynamic PIN_DIR SYMBOLIC_DIR SEQ_DIR\n");
        return 2;
    }
    pin_dir = argv[1];
    sym_dir = argv[2];
    seq_dir = argv[3];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shape_operand),   cmocka_unit_test(test_bounds_evict),
        cmocka_unit_test(test_symbolic_dims),   cmocka_unit_test(test_shared_weights),
        cmocka_unit_test(test_compile_pinning), cmocka_unit_test(test_sequences),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
