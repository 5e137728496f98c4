/*
 * test_backend_image.c — the plan image as untrusted bytes: round trip through a copy, run-time
 * input checks, truncation, every flipped table byte, targeted hostile fields (offsets, counts,
 * indices, strings, magic, version, ISA), random mutations with the checksum recomputed (must
 * error or run, never crash) also of a Winograd convolution's fields and of an If's branch
 * nodes, and an image compiled for another thread count.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>

#include "engine/winograd.h"
#include "test_backend_util.h"

/* x[1,3,8,8] → Conv 3x3 (+bias, relu) → MaxPool 2x2 → Flatten → Gemm → y[1,5] */
static struct ir_graph *small_net(void)
{
    struct ir_graph *g = tb_graph();
    int x = tb_act(g, "x", SHAPE(4, 1, 3, 8, 8));
    int c = tb_act(g, "c", SHAPE(4, 1, 4, 8, 8));
    int p = tb_act(g, "p", SHAPE(4, 1, 4, 4, 4));
    int f = tb_act(g, "f", SHAPE(2, 1, 64));
    int gw = tb_const(g, "gw", SHAPE(2, 5, 64), NULL, 3);
    int gb = tb_const(g, "gb", SHAPE(1, 5), NULL, 4);
    int y = tb_act(g, "y", SHAPE(2, 1, 5));
    tb_input(g, x);
    int pi[1] = {c}, fi[1] = {p}, gi[3] = {f, gw, gb};
    tb_conv3x3_relu(g, x, c, 1);
    struct ir_node *n = tb_node(g, "MaxPool", pi, 1, p);
    tb_ints(n, "kernel_shape", 2, 2, 2);
    tb_ints(n, "strides", 2, 2, 2);
    tb_node(g, "Flatten", fi, 1, f);
    n = tb_node(g, "Gemm", gi, 3, y);
    ir_attr_set_int(n, "transB", 1);
    tb_output(g, y);
    return g;
}

struct fixture {
    void *img;
    size_t len;
    uint8_t *copy; /* 64-byte aligned scratch of len bytes */
    float x[3 * 64];
    float y[5]; /* output of the pristine image */
};

/* Opens img, runs it once on x of the given shape (copying output 0 into y when it holds
 * y_bytes) and closes it; 0 if it ran. */
static int run_shaped(const void *img, size_t len, struct engine_shape shape, const float *x,
                      float *y, size_t y_bytes, char *err, size_t errlen)
{
    struct engine_model *m;
    struct engine_session *s;
    int rc = engine_model_open(img, len, &m, err, errlen);
    if (rc)
        return rc;
    rc = engine_session_create(m, &s, err, errlen);
    if (!rc) {
        struct engine_tensor in = {.name = NULL,
                                   .dtype = ENGINE_F32,
                                   .shape = shape,
                                   .data = (void *)x,
                                   .nbytes = (size_t)engine_shape_numel(&shape) * sizeof(float)};
        struct engine_tensor out[4];
        rc = engine_session_run(s, &in, 1, out, 4, err, errlen);
        if (!rc && y && out[0].nbytes == y_bytes)
            memcpy(y, out[0].data, y_bytes);
        engine_session_destroy(s);
    }
    engine_model_close(m);
    return rc;
}

static int run_image(const void *img, size_t len, const float *x, float *y, char *err,
                     size_t errlen)
{
    return run_shaped(img, len, SHAPE(4, 1, 3, 8, 8), x, y, 5 * sizeof(float), err, errlen);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char err[512];
    unsetenv("OMP_NUM_THREADS");
    if (tb_compile(small_net(), 1, &f->img, &f->len, err, sizeof(err)))
        fail_msg("compile: %s", err);
    f->copy = aligned_alloc(64, ALIGN_UP(f->len, 64));
    uint32_t seed = 99;
    for (int i = 0; i < 3 * 64; i++)
        f->x[i] = tb_rand(&seed);
    if (run_image(f->img, f->len, f->x, f->y, err, sizeof(err)))
        fail_msg("run: %s", err);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    engine_image_free(f->img);
    free(f->copy);
    free(f);
    return 0;
}

static struct plan_header *fresh_copy(struct fixture *f)
{
    memcpy(f->copy, f->img, f->len);
    return (struct plan_header *)f->copy;
}

/* Recomputes both hashes after a deliberate edit, as a forger would. */
static void reseal(uint8_t *img, size_t len)
{
    struct plan_header *h = (struct plan_header *)img;
    uint64_t wo = h->sec[PLAN_SEC_WEIGHTS].offset;
    if (wo < PLAN_TABLES_HASHED_FROM || wo > len)
        wo = len;
    sha256(img + PLAN_TABLES_HASHED_FROM, wo - PLAN_TABLES_HASHED_FROM, h->tables_sha256);
    sha256(img + PLAN_IMAGE_HASHED_FROM, len - PLAN_IMAGE_HASHED_FROM, h->image_sha256);
}

/* copy = img with `flips` random bits of its tables flipped, resealed. */
static void flip_table_bits(uint8_t *copy, const void *img, size_t len, int flips, uint32_t *seed)
{
    const struct plan_header *h = img;
    uint64_t lo = PLAN_TABLES_HASHED_FROM, hi = h->sec[PLAN_SEC_WEIGHTS].offset;
    memcpy(copy, img, len);
    for (int e = 0; e < flips; e++) {
        *seed = *seed * 1664525u + 1013904223u;
        copy[lo + (*seed >> 4) % (hi - lo)] ^= (uint8_t)(1u << (*seed >> 29));
    }
    reseal(copy, len);
}

static void expect_refused(struct fixture *f, size_t len, const char *needle)
{
    char err[512] = "";
    struct engine_model *m = NULL;
    int rc = engine_model_open(f->copy, len, &m, err, sizeof(err));
    if (rc == 0) {
        engine_model_close(m);
        fail_msg("hostile image opened (expected an error containing \"%s\")", needle);
    }
    if (needle && !strstr(err, needle))
        fail_msg("error \"%s\" does not mention \"%s\"", err, needle);
}

/* ---- round trip and introspection ---- */

static void test_round_trip(void **state)
{
    struct fixture *f = *state;
    char err[512];
    fresh_copy(f);
    assert_int_equal(engine_image_verify(f->copy, f->len, err, sizeof(err)), 0);
    struct engine_model *m;
    assert_int_equal(engine_model_open(f->copy, f->len, &m, err, sizeof(err)), 0);
    assert_int_equal(engine_model_n_inputs(m), 1);
    assert_int_equal(engine_model_n_outputs(m), 1);
    struct engine_tensor_info ti;
    assert_int_equal(engine_model_input(m, 0, &ti), 0);
    assert_string_equal(ti.name, "x");
    assert_int_equal(ti.dtype, ENGINE_F32);
    assert_int_equal(ti.shape.rank, 4);
    assert_int_equal(ti.shape.dims[1], 3);
    assert_int_equal(engine_model_output(m, 0, &ti), 0);
    assert_string_equal(ti.name, "y");
    assert_int_equal(ti.shape.dims[1], 5);
    assert_true(engine_model_input(m, 1, &ti) < 0);
    assert_int_equal(engine_model_threads(m), 1);
    assert_true(engine_model_arena_size(m) >= (3 + 4 + 4) * 64 * sizeof(float) / 4);
    assert_true(engine_model_weights_size(m) >= (4 * 27 + 4 + 5 * 64 + 5) * sizeof(float));
    engine_model_close(m);
    float y[5];
    assert_int_equal(run_image(f->copy, f->len, f->x, y, err, sizeof(err)), 0);
    assert_memory_equal(y, f->y, sizeof(y));
    const char *fp = engine_fingerprint();
    assert_non_null(strstr(fp, "onednn/"));
    assert_non_null(strstr(fp, "isa/"));
}

/* Two sessions of one model are independent; release_memory keeps a session usable. */
static void test_sessions(void **state)
{
    struct fixture *f = *state;
    char err[512];
    struct engine_model *m;
    struct engine_session *a, *b;
    assert_int_equal(engine_model_open(f->img, f->len, &m, err, sizeof(err)), 0);
    assert_int_equal(engine_session_create(m, &a, err, sizeof(err)), 0);
    assert_int_equal(engine_session_create(m, &b, err, sizeof(err)), 0);
    struct engine_tensor in = {
        .dtype = ENGINE_F32, .shape = SHAPE(4, 1, 3, 8, 8), .data = f->x, .nbytes = sizeof(f->x)};
    struct engine_tensor oa[1], ob[1];
    assert_int_equal(engine_session_run(a, &in, 1, oa, 1, err, sizeof(err)), 0);
    engine_session_release_memory(a);
    assert_int_equal(engine_session_run(b, &in, 1, ob, 1, err, sizeof(err)), 0);
    assert_int_equal(engine_session_run(a, &in, 1, oa, 1, err, sizeof(err)), 0);
    assert_true(oa[0].data != ob[0].data);
    assert_memory_equal(oa[0].data, f->y, sizeof(f->y));
    assert_memory_equal(ob[0].data, f->y, sizeof(f->y));
    engine_session_destroy(a);
    engine_session_destroy(b);
    engine_model_close(m);
}

static void test_input_checks(void **state)
{
    struct fixture *f = *state;
    char err[512];
    struct engine_model *m;
    struct engine_session *s;
    assert_int_equal(engine_model_open(f->img, f->len, &m, err, sizeof(err)), 0);
    assert_int_equal(engine_session_create(m, &s, err, sizeof(err)), 0);
    struct engine_tensor out[1];
    struct engine_tensor in = {.name = "x",
                               .dtype = ENGINE_F32,
                               .shape = SHAPE(4, 1, 3, 8, 7),
                               .data = f->x,
                               .nbytes = 3 * 56 * sizeof(float)};
    assert_int_equal(engine_session_run(s, &in, 1, out, 1, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "expects [1,3,8,8]"));
    in.shape = SHAPE(4, 1, 3, 8, 8);
    in.dtype = ENGINE_I32;
    assert_int_equal(engine_session_run(s, &in, 1, out, 1, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "float32"));
    in.dtype = ENGINE_F32;
    in.name = "nope";
    assert_int_equal(engine_session_run(s, &in, 1, out, 1, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "input x missing"));
    in.name = "x";
    in.nbytes = 12;
    assert_int_equal(engine_session_run(s, &in, 1, out, 1, err, sizeof(err)), -EINVAL);
    assert_int_equal(engine_session_run(s, &in, 1, out, 0, err, sizeof(err)), -EINVAL);
    engine_session_destroy(s);
    engine_model_close(m);
}

/* ---- hostile images ---- */

static void test_truncated(void **state)
{
    struct fixture *f = *state;
    size_t lens[] = {0,
                     7,
                     64,
                     sizeof(struct plan_header) - 1,
                     sizeof(struct plan_header),
                     f->len / 2,
                     f->len - 64,
                     f->len - 1};
    char err[512];
    for (size_t i = 0; i < ARRAY_LEN(lens); i++) {
        fresh_copy(f);
        expect_refused(f, lens[i], NULL);
        assert_true(engine_image_verify(f->copy, lens[i], err, sizeof(err)) < 0);
    }
    fresh_copy(f);
    expect_refused(f, lens[1], "shorter than a header");
    expect_refused(f, f->len - 64, "truncated");
}

/* Any flipped byte of the header or tables is refused by open; any flipped byte anywhere is
 * caught by engine_image_verify. */
static void test_flipped_bytes(void **state)
{
    struct fixture *f = *state;
    const struct plan_header *h = f->img;
    uint64_t tables_end = h->sec[PLAN_SEC_WEIGHTS].offset;
    char err[512];
    for (uint64_t pos = 0; pos < tables_end; pos++) {
        fresh_copy(f);
        f->copy[pos] ^= 0x5a;
        int in_image_hash = pos >= offsetof(struct plan_header, image_sha256) &&
                            pos < offsetof(struct plan_header, tables_sha256);
        if (in_image_hash) {
            struct engine_model *m;
            assert_int_equal(engine_model_open(f->copy, f->len, &m, err, sizeof(err)), 0);
            engine_model_close(m);
        } else {
            expect_refused(f, f->len, NULL);
        }
        assert_true(engine_image_verify(f->copy, f->len, err, sizeof(err)) < 0);
    }
    for (uint64_t pos = tables_end; pos < f->len; pos += 61) {
        fresh_copy(f);
        f->copy[pos] ^= 0x01;
        assert_int_equal(engine_image_verify(f->copy, f->len, err, sizeof(err)), -EBADMSG);
        assert_non_null(strstr(err, "SHA-256"));
    }
}

static void test_header_fields(void **state)
{
    struct fixture *f = *state;
    struct plan_header *h = fresh_copy(f);
    h->magic[1] = 'X';
    expect_refused(f, f->len, "bad magic");
    h = fresh_copy(f);
    h->format_version = 99;
    expect_refused(f, f->len, "format version 99");
    h = fresh_copy(f);
    snprintf(h->isa, sizeof(h->isa), "avx512_core_amx");
    expect_refused(f, f->len, "checksum");
    reseal(f->copy, f->len);
    expect_refused(f, f->len, "ISA avx512_core_amx");
    h = fresh_copy(f);
    snprintf(h->dnnl_version, sizeof(h->dnnl_version), "9.9.9");
    reseal(f->copy, f->len);
    expect_refused(f, f->len, "oneDNN 9.9.9");
    h = fresh_copy(f);
    snprintf(h->engine_version, sizeof(h->engine_version), "0.0.0-old");
    reseal(f->copy, f->len);
    expect_refused(f, f->len, "engine 0.0.0-old");
    h = fresh_copy(f);
    h->threads = 4;
    expect_refused(f, f->len, "checksum"); /* a tampered thread count never gets this far */
    h->threads = 0;
    reseal(f->copy, f->len);
    expect_refused(f, f->len, "thread count");
}

static void test_section_fields(void **state)
{
    struct fixture *f = *state;
    struct plan_header *h = fresh_copy(f);
    h->sec[PLAN_SEC_TENSORS].offset = f->len + 64;
    reseal(f->copy, f->len);
    expect_refused(f, f->len, "section tensors");
    h = fresh_copy(f);
    h->sec[PLAN_SEC_NODES].count = 1ull << 40;
    reseal(f->copy, f->len);
    expect_refused(f, f->len, "section nodes");
    h = fresh_copy(f);
    h->sec[PLAN_SEC_NODES].offset += 8;
    reseal(f->copy, f->len);
    expect_refused(f, f->len, "misaligned");
    h = fresh_copy(f);
    h->sec[PLAN_SEC_STRINGS].size = 0;
    reseal(f->copy, f->len);
    expect_refused(f, f->len, "string table");
    h = fresh_copy(f);
    h->n_inputs = 1u << 30;
    reseal(f->copy, f->len);
    expect_refused(f, f->len, "graph inputs");
}

static struct plan_tensor *tensor_at(struct fixture *f, uint32_t i)
{
    struct plan_header *h = (struct plan_header *)f->copy;
    return (struct plan_tensor *)(f->copy + h->sec[PLAN_SEC_TENSORS].offset) + i;
}

static struct plan_node *node_at(struct fixture *f, uint32_t i)
{
    struct plan_header *h = (struct plan_header *)f->copy;
    return (struct plan_node *)(f->copy + h->sec[PLAN_SEC_NODES].offset) + i;
}

static void test_table_fields(void **state)
{
    struct fixture *f = *state;
    fresh_copy(f);
    tensor_at(f, 0)->offset = 1ull << 62;
    reseal(f->copy, f->len);
    expect_refused(f, f->len, "outside its");
    fresh_copy(f);
    tensor_at(f, 0)->offset += 2; /* inside the arena, but floats would be misaligned */
    reseal(f->copy, f->len);
    expect_refused(f, f->len, "not a multiple of its 4-byte elements");
    fresh_copy(f);
    tensor_at(f, 1)->dims[0] = INT64_MAX / 2;
    reseal(f->copy, f->len);
    expect_refused(f, f->len, "tensor");
    fresh_copy(f);
    tensor_at(f, 0)->name = 1u << 31;
    reseal(f->copy, f->len);
    expect_refused(f, f->len, "outside the table");
    fresh_copy(f);
    tensor_at(f, 0)->layout = 12345; /* not a layout this engine knows */
    reseal(f->copy, f->len);
    expect_refused(f, f->len, "layout");
    fresh_copy(f);
    tensor_at(f, 0)->layout = dnnl_aBcd8b; /* blocked, but nbytes is the plain size */
    reseal(f->copy, f->len);
    expect_refused(f, f->len, "tensor x");
    fresh_copy(f);
    node_at(f, 0)->out = 1u << 20;
    reseal(f->copy, f->len);
    expect_refused(f, f->len, "refers to tensor");
    fresh_copy(f);
    node_at(f, 0)->in_first = UINT32_MAX - 1;
    reseal(f->copy, f->len);
    expect_refused(f, f->len, "outside the index");
    fresh_copy(f);
    node_at(f, 0)->op = 77;
    reseal(f->copy, f->len);
    expect_refused(f, f->len, "bad op");
    fresh_copy(f);
    /* node 0 is the conv on AVX2; on AVX-512 a reorder into nChw16c may come first */
    int conv = tb_first_op(f->img, f->len, PLAN_OP_CONV);
    assert_true(conv >= 0);
    node_at(f, (uint32_t)conv)->strides[0] = 3; /* output no longer follows from the window */
    reseal(f->copy, f->len);
    expect_refused(f, f->len, "output spatial size");
    fresh_copy(f);
    node_at(f, (uint32_t)conv)->impl =
        node_at(f, (uint32_t)conv)->name; /* implementation differs */
    reseal(f->copy, f->len);
    expect_refused(f, f->len, "recompile");
    fresh_copy(f);
    struct plan_header *h = (struct plan_header *)f->copy;
    dnnl_memory_desc_t *md = (dnnl_memory_desc_t *)(f->copy + h->sec[PLAN_SEC_MDS].offset);
    md->format_desc.blocking.inner_nblks = 1000; /* a weights layout nobody would pick */
    reseal(f->copy, f->len);
    expect_refused(f, f->len, "weights are packed for another layout");
}

/* Random edits with the checksum recomputed: each image errors cleanly or runs. */
static void test_resealed_mutations(void **state)
{
    struct fixture *f = *state;
    const struct plan_header *h = f->img;
    uint64_t lo = PLAN_TABLES_HASHED_FROM, hi = h->sec[PLAN_SEC_WEIGHTS].offset;
    uint32_t seed = 12345;
    float y[5];
    char err[512];
    int opened = 0;
    for (int iter = 0; iter < 400; iter++) {
        fresh_copy(f);
        int edits = 1 + iter % 4;
        for (int e = 0; e < edits; e++) {
            seed = seed * 1664525u + 1013904223u;
            uint64_t pos = lo + (seed >> 4) % (hi - lo);
            seed = seed * 1664525u + 1013904223u;
            f->copy[pos] =
                (iter & 1) ? (uint8_t)(seed >> 24) : f->copy[pos] ^ (uint8_t)(1u << (seed >> 29));
        }
        reseal(f->copy, f->len);
        if (run_image(f->copy, f->len, f->x, y, err, sizeof(err)) == 0)
            opened++;
    }
    print_message("%d of 400 resealed mutants opened and ran\n", opened);
}

/* x[2,3,4] → Transpose → Slice → Gather → Concat with a Relu of itself: every kind of node
 * that carries parameters in the index section. */
static struct ir_graph *kernel_net(void)
{
    struct ir_graph *g = tb_graph();
    int x = tb_act(g, "x", SHAPE(3, 2, 3, 4));
    int t = tb_act(g, "t", SHAPE(3, 4, 2, 3));
    int s = tb_act(g, "s", SHAPE(3, 2, 2, 3));
    int y = tb_act(g, "y", SHAPE(3, 2, 2, 2));
    int64_t st[1] = {3}, en[1] = {0}, sp[1] = {-2}, ix[2] = {2, 0};
    struct engine_shape one = SHAPE(1, 1), two = SHAPE(1, 2);
    int cst = ir_add_const(g, "st", "", ENGINE_I64, &one, memcpy(malloc(8), st, 8));
    int cen = ir_add_const(g, "en", "", ENGINE_I64, &one, memcpy(malloc(8), en, 8));
    int cax = ir_add_const(g, "ax", "", ENGINE_I64, &one, calloc(1, 8));
    int csp = ir_add_const(g, "sp", "", ENGINE_I64, &one, memcpy(malloc(8), sp, 8));
    int cix = ir_add_const(g, "ix", "", ENGINE_I64, &two, memcpy(malloc(16), ix, 16));
    tb_input(g, x);
    int ti[1] = {x}, si[5] = {t, cst, cen, cax, csp}, gi[2] = {s, cix};
    tb_ints(tb_node(g, "Transpose", ti, 1, t), "perm", 3, 2, 0, 1);
    tb_node(g, "Slice", si, 5, s);
    ir_attr_set_int(tb_node(g, "Gather", gi, 2, y), "axis", 2);
    tb_output(g, y);
    return g;
}

/* Resealed random edits of an image made of kernel nodes: errors or runs, never crashes. */
static void test_resealed_kernel_mutations(void **state)
{
    struct fixture *f = *state;
    char err[512];
    void *img;
    size_t len;
    if (tb_compile(kernel_net(), 1, &img, &len, err, sizeof(err)))
        fail_msg("compile: %s", err);
    uint8_t *copy = aligned_alloc(64, ALIGN_UP(len, 64));
    uint32_t seed = 777;
    float x[24], y[8];
    memcpy(x, f->x, sizeof(x));
    for (int iter = 0; iter < 400; iter++) {
        flip_table_bits(copy, img, len, 1 + iter % 3, &seed);
        struct engine_model *m;
        struct engine_session *s;
        if (engine_model_open(copy, len, &m, err, sizeof(err)))
            continue;
        if (engine_session_create(m, &s, err, sizeof(err)) == 0) {
            struct engine_tensor_info ti;
            engine_model_input(m, 0, &ti);
            struct engine_tensor in = {.name = ti.name,
                                       .dtype = ti.dtype,
                                       .shape = ti.shape,
                                       .data = x,
                                       .nbytes = sizeof(x)};
            struct engine_tensor out[4];
            if (engine_session_run(s, &in, 1, out, 4, err, sizeof(err)) == 0 &&
                out[0].nbytes <= sizeof(y))
                memcpy(y, out[0].data, out[0].nbytes);
            engine_session_destroy(s);
        }
        engine_model_close(m);
    }
    free(copy);
    engine_image_free(img);
}

/* x[1,8,9,10] → Conv 3x3 pad 1 (+bias, relu) compiled as Winograd → y[1,8,9,10] */
static struct ir_graph *wino_net(void)
{
    struct ir_graph *g = tb_graph();
    int x = tb_act(g, "x", SHAPE(4, 1, 8, 9, 10));
    int y = tb_act(g, "y", SHAPE(4, 1, 8, 9, 10));
    tb_input(g, x);
    tb_conv3x3_relu(g, x, y, 5);
    tb_output(g, y);
    return g;
}

/* Opens, runs on x and closes an image of wino_net; 0 if it ran. */
static int run_wino(const uint8_t *img, size_t len, const float *x, char *err, size_t errlen)
{
    return run_shaped(img, len, SHAPE(4, 1, 8, 9, 10), x, NULL, 0, err, errlen);
}

/* A Winograd node's geometry, block, layouts and post-ops are checked before they are trusted;
 * random resealed edits of its image error or run, never crash. */
static void test_winograd_fields(void **state)
{
    (void)state;
    if (!tb_winograd_here())
        skip(); /* no AVX2, or AVX-512's nChw16c: the compiler keeps every convolution direct */
    char err[512];
    void *img;
    size_t len;
    if (tb_compile_wino(wino_net(), 1, ENGINE_WINOGRAD_ALL, &img, &len, err, sizeof(err)))
        fail_msg("compile: %s", err);
    assert_int_equal(tb_count_op(img, len, PLAN_OP_WINOGRAD), 1);
    uint8_t *copy = aligned_alloc(64, ALIGN_UP(len, 64));
    const struct plan_header *h = img;
    float x[720];
    uint32_t seed = 4242;
    for (int i = 0; i < 720; i++)
        x[i] = tb_rand(&seed);
    assert_int_equal(run_wino(img, len, x, err, sizeof(err)), 0);
    struct plan_view v;
    assert_int_equal(plan_view_init(&v, img, len, err, sizeof(err)), 0);
    uint32_t k = 0;
    while (v.nodes[k].op != PLAN_OP_WINOGRAD)
        k++;
    uint32_t src = (uint32_t)plan_input(&v, &v.nodes[k], 0);
    struct plan_node *n = (struct plan_node *)(copy + h->sec[PLAN_SEC_NODES].offset) + k;
    struct plan_tensor *t = (struct plan_tensor *)(copy + h->sec[PLAN_SEC_TENSORS].offset) + src;
    for (int edit = 0; edit < 6; edit++) {
        memcpy(copy, img, len);
        switch (edit) {
        case 0:
            n->axis = 0;
            break; /* no tiles per matmul */
        case 1:
            n->axis = 1 << 20;
            break; /* a block past the limit */
        case 2:
            n->kernel[0] = 5;
            break; /* not 3x3 */
        case 3:
            n->strides[1] = 2;
            break; /* not stride 1 */
        case 4:
            n->post[0].alg = dnnl_eltwise_tanh;
            break; /* a post-op it cannot apply */
        case 5:
            t->layout = PLAN_LAYOUT_PLAIN;
            break; /* src not nChw8c */
        }
        reseal(copy, len);
        if (run_wino(copy, len, x, err, sizeof(err)) == 0)
            fail_msg("edit %d of the Winograd node opened and ran", edit);
    }
    for (int iter = 0; iter < 400; iter++) {
        flip_table_bits(copy, img, len, 1 + iter % 3, &seed);
        run_wino(copy, len, x, err, sizeof(err));
    }
    free(copy);
    engine_image_free(img);
}

/* x[1,16,4,5] → Conv 3x3 → Resize linear x2 (oneDNN's resampling on the blocked output). */
static struct ir_graph *resample_net(void)
{
    struct ir_graph *g = tb_graph();
    int x = tb_act(g, "x", SHAPE(4, 1, 16, 4, 5)), c = tb_act(g, "c", SHAPE(4, 1, 16, 4, 5));
    int y = tb_act(g, "y", SHAPE(4, 1, 16, 8, 10));
    float scales[4] = {1, 1, 2, 2};
    int sc = tb_const(g, "scales", SHAPE(1, 4), scales, 0);
    tb_input(g, x);
    tb_conv3x3_relu(g, x, c, 9);
    int ri[3] = {c, -1, sc};
    tb_str(tb_node(g, "Resize", ri, 3, y), "mode", "linear");
    tb_output(g, y);
    char err[256];
    assert_int_equal(ir_infer_shapes(g, NULL, 0, err, sizeof(err)), 0);
    return g;
}

/* A resampling node's algorithm, ranks, channels and layouts are checked before oneDNN sees
 * them; random resealed edits of its image error or run, never crash. */
static void test_resample_fields(void **state)
{
    (void)state;
    char err[512];
    void *img;
    size_t len;
    if (tb_compile(resample_net(), 1, &img, &len, err, sizeof(err)))
        fail_msg("compile: %s", err);
    if (tb_count_op(img, len, PLAN_OP_RESAMPLE) != 1) {
        engine_image_free(img);
        skip(); /* oneDNN has only a reference resampling here: the C kernel runs it */
    }
    uint8_t *copy = aligned_alloc(64, ALIGN_UP(len, 64));
    const struct plan_header *h = img;
    float x[320];
    uint32_t seed = 777;
    for (int i = 0; i < 320; i++)
        x[i] = tb_rand(&seed);
    const struct engine_shape xs = SHAPE(4, 1, 16, 4, 5);
    assert_int_equal(run_shaped(img, len, xs, x, NULL, 0, err, sizeof(err)), 0);
    struct plan_view v;
    assert_int_equal(plan_view_init(&v, img, len, err, sizeof(err)), 0);
    uint32_t k = (uint32_t)tb_first_op(img, len, PLAN_OP_RESAMPLE);
    uint32_t dst = v.nodes[k].out;
    struct plan_node *n = (struct plan_node *)(copy + h->sec[PLAN_SEC_NODES].offset) + k;
    struct plan_tensor *t = (struct plan_tensor *)(copy + h->sec[PLAN_SEC_TENSORS].offset) + dst;
    for (int edit = 0; edit < 4; edit++) {
        memcpy(copy, img, len);
        switch (edit) {
        case 0:
            n->alg = dnnl_pooling_max;
            break; /* not a resampling algorithm */
        case 1:
            t->dims[1] = 32;
            break; /* changes the channel count */
        case 2:
            t->layout = PLAN_LAYOUT_PLAIN;
            break; /* dst in another layout than src */
        case 3:
            n->n_in = 2;
            break; /* an operand too many */
        }
        reseal(copy, len);
        if (run_shaped(copy, len, xs, x, NULL, 0, err, sizeof(err)) == 0)
            fail_msg("edit %d of the resampling node opened and ran", edit);
    }
    for (int iter = 0; iter < 400; iter++) {
        flip_table_bits(copy, img, len, 1 + iter % 3, &seed);
        run_shaped(copy, len, xs, x, NULL, 0, err, sizeof(err));
    }
    free(copy);
    engine_image_free(img);
}

/* An image is compiled for a thread count; a process set to run another count refuses it. */
/* x[8], c bool[1] → If(c: Relu(x), else: Sigmoid(x)) → y[8]: a run-time condition, so the plan
 * holds both branches between two BRANCH nodes (ops/control.c). */
static struct ir_graph *if_net(void)
{
    struct ir_graph *g = tb_graph();
    int x = tb_act(g, "x", SHAPE(1, 8));
    int c = tb_act(g, "c", SHAPE(1, 1));
    int a = tb_act(g, "a", SHAPE(1, 8));
    int b = tb_act(g, "b", SHAPE(1, 8));
    int y = tb_act(g, "y", SHAPE(1, 8));
    g->tensors[c].dtype = ENGINE_BOOL;
    tb_input(g, x);
    tb_input(g, c);
    g->scopes = calloc(3, sizeof(*g->scopes));
    g->n_scopes = g->cap_scopes = 3;
    g->scopes[1] = (struct ir_scope){.parent = 0, .cond = c, .then = 1};
    g->scopes[2] = (struct ir_scope){.parent = 0, .cond = c, .then = 0};
    int xi[1] = {x}, ii[3] = {c, a, b};
    tb_node(g, "Relu", xi, 1, a)->scope = 1;
    tb_node(g, "Sigmoid", xi, 1, b)->scope = 2;
    struct ir_node *n = tb_node(g, "If", ii, 3, y);
    ir_attr_set_int(n, "then_branch", 1);
    ir_attr_set_int(n, "else_branch", 2);
    for (int i = 0; i < n->n_attrs; i++)
        n->attrs[i].type = IR_ATTR_GRAPH;
    tb_output(g, y);
    return g;
}

/* Runs an if_net image on x with condition c; 0 if it ran (y filled). */
/* Opens img, runs it once on in[0..n_in) and copies its two outputs into y0/y1 when they hold
 * n0/n1 bytes; 0 if it ran. */
static int open_run(const void *img, size_t len, const struct engine_tensor *in, int n_in, void *y0,
                    size_t n0, void *y1, size_t n1, char *err, size_t errlen)
{
    struct engine_model *m;
    struct engine_session *s;
    int rc = engine_model_open(img, len, &m, err, errlen);
    if (rc)
        return rc;
    rc = engine_session_create(m, &s, err, errlen);
    if (!rc) {
        struct engine_tensor out[2];
        rc = engine_session_run(s, in, n_in, out, 2, err, errlen);
        if (!rc && out[0].nbytes == n0 && (!y1 || out[1].nbytes == n1)) {
            memcpy(y0, out[0].data, n0);
            if (y1)
                memcpy(y1, out[1].data, n1);
        }
        engine_session_destroy(s);
    }
    engine_model_close(m);
    return rc;
}

static int run_if(const void *img, size_t len, const float *x, int c, float *y, char *err,
                  size_t errlen)
{
    uint8_t cv = (uint8_t)c;
    struct engine_tensor in[2] = {
        {.name = "x",
         .dtype = ENGINE_F32,
         .shape = SHAPE(1, 8),
         .data = (void *)x,
         .nbytes = 8 * sizeof(float)},
        {.name = "c", .dtype = ENGINE_BOOL, .shape = SHAPE(1, 1), .data = &cv, .nbytes = 1}};
    return open_run(img, len, in, 2, y, 8 * sizeof(float), NULL, 0, err, errlen);
}

/* The BRANCH nodes pick the branch the condition names; a branch target that jumps backwards,
 * onto itself or past the end, a bad `when` or a missing condition is refused at open, and
 * random resealed edits error or run, never crash or hang. */
static void test_branch_fields(void **state)
{
    (void)state;
    char err[512];
    void *img;
    size_t len;
    if (tb_compile(if_net(), 1, &img, &len, err, sizeof(err)))
        fail_msg("compile: %s", err);
    float x[8], y[8];
    for (int i = 0; i < 8; i++)
        x[i] = (float)i - 3.5f;
    for (int c = 0; c < 2; c++) {
        if (run_if(img, len, x, c, y, err, sizeof(err)))
            fail_msg("run: %s", err);
        for (int i = 0; i < 8; i++)
            assert_float_equal(y[i], c ? fmaxf(x[i], 0.0f) : 1.0f / (1.0f + expf(-x[i])), 1e-6);
    }
    struct plan_view v;
    assert_int_equal(plan_view_init(&v, img, len, err, sizeof(err)), 0);
    int branches[2], nb = 0;
    for (uint32_t k = 0; k < v.n_nodes; k++)
        if (v.nodes[k].op == PLAN_OP_KERNEL && v.nodes[k].alg == PLAN_K_BRANCH && nb < 2)
            branches[nb++] = (int)k;
    assert_int_equal(nb, 2);
    uint8_t *copy = aligned_alloc(64, ALIGN_UP(len, 64));
    struct fixture f = {.copy = copy};
    for (int b = 0; b < 2; b++) {
        int k = branches[b];
        size_t node_off = (size_t)((const uint8_t *)&v.nodes[k] - (const uint8_t *)img);
        size_t param_off =
            (size_t)((const uint8_t *)&v.index[v.nodes[k].params_first] - (const uint8_t *)img);
        const int32_t bad_targets[] = {k, k - 1, 0, (int32_t)v.n_nodes + 1, -1, INT32_MAX};
        for (size_t i = 0; i < ARRAY_LEN(bad_targets); i++) {
            memcpy(copy, img, len);
            memcpy(copy + param_off, &bad_targets[i], sizeof(int32_t));
            reseal(copy, len);
            expect_refused(&f, len, "branch target must be a later node");
        }
        memcpy(copy, img, len);
        int32_t when = 2;
        memcpy(copy + param_off + sizeof(int32_t), &when, sizeof(when));
        reseal(copy, len);
        expect_refused(&f, len, "branch");
        memcpy(copy, img, len);
        ((struct plan_node *)(copy + node_off))->n_in = 0;
        reseal(copy, len);
        expect_refused(&f, len, "branch operands");
        memcpy(copy, img, len);
        /* it names another tensor than its condition */
        ((struct plan_node *)(copy + node_off))->out = (uint32_t)v.index[v.h->outputs_first];
        reseal(copy, len);
        expect_refused(&f, len, "branch operands");
    }
    uint32_t seed = 1717;
    for (int iter = 0; iter < 300; iter++) {
        flip_table_bits(copy, img, len, 1 + iter % 3, &seed);
        (void)run_if(copy, len, x, iter & 1, y, err, sizeof(err));
    }
    free(copy);
    engine_image_free(img);
}

/* x[3,4], h0[1,4] → Scan(h = h + x_t) → h[1,4], ys[3,4] (a running sum): the plan holds the body
 * once between a LOOP and a LOOP_END node, with a SCAN_SLICE reading x_t and one writing ys
 * (ops/loop.c). */
static struct ir_graph *scan_net(void)
{
    struct ir_graph *g = tb_graph();
    int x = tb_act(g, "x", SHAPE(2, 3, 4));
    int h0 = tb_act(g, "h0", SHAPE(2, 1, 4));
    int hv = tb_act(g, "hv", SHAPE(2, 1, 4));
    int xt = tb_act(g, "xt", SHAPE(1, 4));
    int h2 = tb_act(g, "h2", SHAPE(2, 1, 4));
    int hf = tb_act(g, "hf", SHAPE(2, 1, 4));
    int ys = tb_act(g, "ys", SHAPE(3, 3, 1, 4));
    tb_input(g, x);
    tb_input(g, h0);
    g->scopes = calloc(2, sizeof(*g->scopes));
    g->n_scopes = g->cap_scopes = 2;
    int *vars = calloc(2, sizeof(int)), *deps = calloc(2, sizeof(int));
    vars[0] = hv;
    vars[1] = xt;
    deps[0] = h0;
    deps[1] = x;
    g->scopes[0].cond = -1;
    g->scopes[1] = (struct ir_scope){
        .cond = -1, .body = 1, .entered = 1, .vars = vars, .n_vars = 2, .deps = deps, .n_deps = 2};
    int ai[2] = {hv, xt}, si[4] = {h0, x, h2, h2};
    tb_node(g, "Add", ai, 2, h2)->scope = 1;
    struct ir_node *n = tb_node(g, "Scan", si, 4, hf);
    n->out = realloc(n->out, 2 * sizeof(int));
    n->out[1] = ys;
    n->n_out = 2;
    g->tensors[ys].producer = n - g->nodes;
    ir_attr_set_int(n, "body", 1);
    n->attrs[n->n_attrs - 1].type = IR_ATTR_GRAPH;
    ir_attr_set_int(n, "num_scan_inputs", 1);
    tb_output(g, hf);
    tb_output(g, ys);
    return g;
}

/* Runs a scan_net image; 0 if it ran (h and ys filled). */
static int run_scan(const void *img, size_t len, const float *x, float *h, float *ys, char *err,
                    size_t errlen)
{
    float h0[4] = {1, 2, 3, 4};
    struct engine_tensor in[2] = {{.name = "x",
                                   .dtype = ENGINE_F32,
                                   .shape = SHAPE(2, 3, 4),
                                   .data = (void *)x,
                                   .nbytes = 12 * sizeof(float)},
                                  {.name = "h0",
                                   .dtype = ENGINE_F32,
                                   .shape = SHAPE(2, 1, 4),
                                   .data = h0,
                                   .nbytes = sizeof(h0)}};
    return open_run(img, len, in, 2, h, 4 * sizeof(float), ys, 12 * sizeof(float), err, errlen);
}

/* Patches int32 parameter `i` of node k of the image (a copy of img) to v and reseals it. */
static void patch_param(uint8_t *copy, const void *img, size_t len, const struct plan_view *v,
                        int k, int i, int32_t val)
{
    size_t off = (size_t)((const uint8_t *)&v->index[v->nodes[k].params_first + (uint32_t)i] -
                          (const uint8_t *)img);
    memcpy(copy, img, len);
    memcpy(copy + off, &val, sizeof(val));
    reseal(copy, len);
}

/* The loop region runs the body once per scan step; a loop node whose end, begin, max, trip
 * flags or scan slice geometry is patched (a bad jump target, a region not closed by its own
 * end or overlapping another, more iterations than the scan output holds) is refused at open,
 * and random resealed edits error or run, never crash or hang. */
static void test_loop_fields(void **state)
{
    (void)state;
    char err[512];
    void *img;
    size_t len;
    if (tb_compile(scan_net(), 1, &img, &len, err, sizeof(err)))
        fail_msg("compile: %s", err);
    float x[12], h[4], ys[12];
    for (int i = 0; i < 12; i++)
        x[i] = (float)i * 0.5f - 2.0f;
    if (run_scan(img, len, x, h, ys, err, sizeof(err)))
        fail_msg("run: %s", err);
    for (int c = 0; c < 4; c++) {
        float acc = (float)(c + 1);
        for (int t = 0; t < 3; t++) {
            acc += x[t * 4 + c];
            assert_float_equal(ys[t * 4 + c], acc, 1e-6);
        }
        assert_float_equal(h[c], acc, 1e-6);
    }
    struct plan_view v;
    assert_int_equal(plan_view_init(&v, img, len, err, sizeof(err)), 0);
    int begin = -1, end = -1, slice[2], ns = 0;
    for (uint32_t k = 0; k < v.n_nodes; k++) {
        if (v.nodes[k].op != PLAN_OP_KERNEL)
            continue;
        if (v.nodes[k].alg == PLAN_K_LOOP)
            begin = (int)k;
        if (v.nodes[k].alg == PLAN_K_LOOP_END)
            end = (int)k;
        if (v.nodes[k].alg == PLAN_K_SCAN_SLICE && ns < 2)
            slice[ns++] = (int)k;
    }
    assert_true(begin >= 0 && end > begin && ns == 2);
    uint8_t *copy = aligned_alloc(64, ALIGN_UP(len, 64));
    struct fixture f = {.copy = copy};
    /* LOOP's end: itself, before it, past the plan, a node that is no LOOP_END */
    const int32_t bad_ends[] = {begin, begin - 1, (int32_t)v.n_nodes, end - 1, -1, INT32_MAX};
    for (size_t i = 0; i < ARRAY_LEN(bad_ends); i++) {
        patch_param(copy, img, len, &v, begin, 0, bad_ends[i]);
        expect_refused(&f, len, "loop");
    }
    /* LOOP's max: over ENGINE_LOOP_MAX_ITER, negative, more than the scan slices hold */
    const int32_t bad_max[] = {ENGINE_LOOP_MAX_ITER + 1, -1, 4};
    for (size_t i = 0; i < ARRAY_LEN(bad_max); i++) {
        patch_param(copy, img, len, &v, begin, 1, bad_max[i]);
        expect_refused(&f, len, i < 2 ? "loop parameters out of range" : "shorter than its");
    }
    patch_param(copy, img, len, &v, begin, 2, 0); /* no trip count, yet the input is there */
    expect_refused(&f, len, "loop operands");
    /* LOOP_END's begin: itself, after it, a node that is no LOOP */
    const int32_t bad_begins[] = {end, end + 1, begin + 1, -1};
    for (size_t i = 0; i < ARRAY_LEN(bad_begins); i++) {
        patch_param(copy, img, len, &v, end, 0, bad_begins[i]);
        expect_refused(&f, len, "loop");
    }
    /* a SCAN_SLICE: another loop, a longer or shorter axis, more bytes per slice */
    for (int s = 0; s < 2; s++) {
        const int32_t bad[][2] = {{0, begin + 1}, {2, 4}, {2, 2}, {3, 32}, {1, 2}, {4, 2}, {5, 3}};
        for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
            patch_param(copy, img, len, &v, slice[s], bad[i][0], bad[i][1]);
            expect_refused(&f, len, "scan slice");
        }
    }
    uint32_t seed = 1718;
    for (int iter = 0; iter < 300; iter++) {
        flip_table_bits(copy, img, len, 1 + iter % 3, &seed);
        (void)run_scan(copy, len, x, h, ys, err, sizeof(err));
    }
    free(copy);
    engine_image_free(img);
}

/* x[3,4], h0[1,4], c bool → Scan(h = h + (c ? Relu(x_t) : Neg(x_t))): an If on a run-time
 * condition inside the loop body, so the plan has BRANCH nodes inside the LOOP region. */
static struct ir_graph *scan_if_net(void)
{
    struct ir_graph *g = tb_graph();
    int x = tb_act(g, "x", SHAPE(2, 3, 4));
    int h0 = tb_act(g, "h0", SHAPE(2, 1, 4));
    int c = tb_act(g, "c", SHAPE(1, 1));
    int hv = tb_act(g, "hv", SHAPE(2, 1, 4));
    int xt = tb_act(g, "xt", SHAPE(1, 4));
    int a = tb_act(g, "a", SHAPE(1, 4));
    int b = tb_act(g, "b", SHAPE(1, 4));
    int y = tb_act(g, "y", SHAPE(1, 4));
    int h2 = tb_act(g, "h2", SHAPE(2, 1, 4));
    int hf = tb_act(g, "hf", SHAPE(2, 1, 4));
    int ys = tb_act(g, "ys", SHAPE(3, 3, 1, 4));
    g->tensors[c].dtype = ENGINE_BOOL;
    tb_input(g, x);
    tb_input(g, h0);
    tb_input(g, c);
    g->scopes = calloc(4, sizeof(*g->scopes));
    g->n_scopes = g->cap_scopes = 4;
    int *vars = calloc(2, sizeof(int)), *deps = calloc(2, sizeof(int));
    vars[0] = hv;
    vars[1] = xt;
    deps[0] = h0;
    deps[1] = x;
    g->scopes[0].cond = -1;
    g->scopes[1] = (struct ir_scope){
        .cond = -1, .body = 1, .entered = 1, .vars = vars, .n_vars = 2, .deps = deps, .n_deps = 2};
    g->scopes[2] = (struct ir_scope){.parent = 1, .cond = c, .then = 1};
    g->scopes[3] = (struct ir_scope){.parent = 1, .cond = c, .then = 0};
    int xi[1] = {xt}, ii[3] = {c, a, b}, ai[2] = {hv, y}, si[4] = {h0, x, h2, h2};
    tb_node(g, "Relu", xi, 1, a)->scope = 2;
    tb_node(g, "Neg", xi, 1, b)->scope = 3;
    struct ir_node *n = tb_node(g, "If", ii, 3, y);
    n->scope = 1;
    ir_attr_set_int(n, "then_branch", 2);
    ir_attr_set_int(n, "else_branch", 3);
    for (int i = 0; i < n->n_attrs; i++)
        n->attrs[i].type = IR_ATTR_GRAPH;
    tb_node(g, "Add", ai, 2, h2)->scope = 1;
    n = tb_node(g, "Scan", si, 4, hf);
    n->out = realloc(n->out, 2 * sizeof(int));
    n->out[1] = ys;
    n->n_out = 2;
    g->tensors[ys].producer = n - g->nodes;
    ir_attr_set_int(n, "body", 1);
    n->attrs[n->n_attrs - 1].type = IR_ATTR_GRAPH;
    ir_attr_set_int(n, "num_scan_inputs", 1);
    tb_output(g, hf);
    tb_output(g, ys);
    return g;
}

/* The branches inside a loop body pick their branch per run; a branch patched to jump out of
 * its loop region (past its LOOP_END, or to the end of the plan) is refused at open, one onto
 * its own LOOP_END stays inside and opens. */
static void test_loop_branch_fields(void **state)
{
    (void)state;
    char err[512];
    void *img;
    size_t len;
    if (tb_compile(scan_if_net(), 1, &img, &len, err, sizeof(err)))
        fail_msg("compile: %s", err);
    float x[12], h0[4] = {1, 2, 3, 4}, h[4], ys[12];
    for (int i = 0; i < 12; i++)
        x[i] = (float)i * 0.5f - 2.0f;
    for (int cv = 0; cv < 2; cv++) {
        uint8_t cb = (uint8_t)cv;
        struct engine_tensor in[3] = {
            {.name = "x",
             .dtype = ENGINE_F32,
             .shape = SHAPE(2, 3, 4),
             .data = x,
             .nbytes = sizeof(x)},
            {.name = "h0",
             .dtype = ENGINE_F32,
             .shape = SHAPE(2, 1, 4),
             .data = h0,
             .nbytes = sizeof(h0)},
            {.name = "c", .dtype = ENGINE_BOOL, .shape = SHAPE(1, 1), .data = &cb, .nbytes = 1}};
        if (open_run(img, len, in, 3, h, sizeof(h), ys, sizeof(ys), err, sizeof(err)))
            fail_msg("run: %s", err);
        for (int k = 0; k < 4; k++) {
            float acc = h0[k];
            for (int t = 0; t < 3; t++) {
                float v = x[t * 4 + k];
                acc += cv ? fmaxf(v, 0.0f) : -v;
                assert_float_equal(ys[t * 4 + k], acc, 1e-6);
            }
            assert_float_equal(h[k], acc, 1e-6);
        }
    }
    struct plan_view v;
    assert_int_equal(plan_view_init(&v, img, len, err, sizeof(err)), 0);
    int branch = -1, end = -1;
    for (uint32_t k = 0; k < v.n_nodes; k++) {
        if (v.nodes[k].op == PLAN_OP_KERNEL && v.nodes[k].alg == PLAN_K_BRANCH && branch < 0)
            branch = (int)k;
        if (v.nodes[k].op == PLAN_OP_KERNEL && v.nodes[k].alg == PLAN_K_LOOP_END)
            end = (int)k;
    }
    assert_true(branch >= 0 && end > branch);
    uint8_t *copy = aligned_alloc(64, ALIGN_UP(len, 64));
    struct fixture f = {.copy = copy};
    const int32_t out_of_region[] = {end + 1, (int32_t)v.n_nodes};
    for (size_t i = 0; i < ARRAY_LEN(out_of_region); i++) {
        if (out_of_region[i] > (int32_t)v.n_nodes)
            continue;
        patch_param(copy, img, len, &v, branch, 0, out_of_region[i]);
        expect_refused(&f, len, "branch jumps into or out of a loop region");
    }
    patch_param(copy, img, len, &v, branch, 0, end); /* onto its own LOOP_END: stays inside */
    struct engine_model *m = NULL;
    assert_int_equal(engine_model_open(copy, len, &m, err, sizeof(err)), 0);
    engine_model_close(m);
    free(copy);
    engine_image_free(img);
}

static void test_thread_count(void **state)
{
    struct fixture *f = *state;
    char err[512];
    void *img2;
    size_t len2;
    if (tb_compile(small_net(), 2, &img2, &len2, err, sizeof(err)))
        fail_msg("compile: %s", err);
    struct engine_model *m;
    setenv("OMP_NUM_THREADS", "1", 1);
    assert_int_equal(engine_model_open(img2, len2, &m, err, sizeof(err)), -EPROTO);
    assert_non_null(strstr(err, "compiled for 2 thread(s)"));
    assert_non_null(strstr(err, "recompile"));
    assert_int_equal(engine_model_open(f->img, f->len, &m, err, sizeof(err)), 0);
    engine_model_close(m);
    setenv("OMP_NUM_THREADS", "2", 1);
    assert_int_equal(engine_model_open(img2, len2, &m, err, sizeof(err)), 0);
    assert_int_equal(engine_model_threads(m), 2);
    engine_model_close(m);
    assert_int_equal(engine_model_open(f->img, f->len, &m, err, sizeof(err)), -EPROTO);
    assert_non_null(strstr(err, "compiled for 1 thread(s)"));
    unsetenv("OMP_NUM_THREADS");
    engine_image_free(img2);
}

/* ---- plan parts: the weights as a separate blob (format 3) ---- */

static void test_plan_parts(void **state)
{
    struct fixture *f = *state;
    char err[512];
    struct engine_weights_ref w;
    void *part, *whole;
    size_t part_len, whole_len;
    assert_int_equal(engine_image_weights(f->img, f->len, &w, err, sizeof(err)), 0);
    assert_false(w.external);
    assert_int_equal(engine_image_split(f->img, f->len, &part, &part_len, err, sizeof(err)), 0);
    assert_int_equal(part_len, w.offset);
    uint8_t *blob = aligned_alloc(64, ALIGN_UP(w.size, 64) + 64);
    memcpy(blob, (const uint8_t *)f->img + w.offset, w.size);
    /* split then join gives the compiler's bytes back */
    assert_int_equal(engine_image_join(part, part_len, blob, w.size, &whole, &whole_len, err,
                                       sizeof(err)),
                     0);
    assert_int_equal(whole_len, f->len);
    assert_memory_equal(whole, f->img, f->len);
    engine_image_free(whole);
    assert_int_equal(engine_image_verify(part, part_len, err, sizeof(err)), 0);
    assert_int_equal(engine_weights_verify(part, part_len, blob, w.size, err, sizeof(err)), 0);
    /* the pair runs as the whole image does */
    struct engine_model *m;
    assert_int_equal(engine_model_open_parts(part, part_len, blob, w.size, &m, err, sizeof(err)),
                     0);
    struct engine_session *s;
    assert_int_equal(engine_session_create(m, &s, err, sizeof(err)), 0);
    struct engine_tensor in = {.dtype = ENGINE_F32,
                               .shape = SHAPE(4, 1, 3, 8, 8),
                               .data = f->x,
                               .nbytes = sizeof(f->x)},
                         out[4];
    assert_int_equal(engine_session_run(s, &in, 1, out, 4, err, sizeof(err)), 0);
    assert_memory_equal(out[0].data, f->y, sizeof(f->y));
    engine_session_destroy(s);
    engine_model_close(m);
    /* refused: the part alone, a blob of another size or misaligned, a blob for a whole image */
    assert_int_equal(engine_model_open(part, part_len, &m, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "without its weights blob"));
    assert_int_not_equal(
        engine_model_open_parts(part, part_len, blob, w.size - 64, &m, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "weights blob of"));
    memmove(blob + 8, blob, w.size);
    assert_int_not_equal(
        engine_model_open_parts(part, part_len, blob + 8, w.size, &m, err, sizeof(err)), 0);
    memmove(blob, blob + 8, w.size);
    assert_int_not_equal(
        engine_model_open_parts(f->img, f->len, blob, w.size, &m, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "holds its own weights"));
    /* a flipped blob byte fails the recorded SHA-256 */
    blob[w.size / 2] ^= 1;
    assert_int_equal(engine_weights_verify(part, part_len, blob, w.size, err, sizeof(err)),
                     -EBADMSG);
    blob[w.size / 2] ^= 1;
    /* a forged part: a constant placed past the blob's end, resealed */
    uint8_t *forged = aligned_alloc(64, part_len);
    memcpy(forged, part, part_len);
    struct plan_header *h = (struct plan_header *)forged;
    struct plan_tensor *t = (struct plan_tensor *)(forged + h->sec[PLAN_SEC_TENSORS].offset);
    int found = 0;
    for (uint64_t i = 0; i < h->sec[PLAN_SEC_TENSORS].count && !found; i++)
        if (t[i].storage == PLAN_ST_CONST || t[i].storage == PLAN_ST_PACKED) {
            t[i].offset = w.size;
            found = 1;
        }
    assert_true(found);
    reseal(forged, part_len);
    assert_int_not_equal(
        engine_model_open_parts(forged, part_len, blob, w.size, &m, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "weights"));
    /* a part whose external section does not start at its end */
    memcpy(forged, part, part_len);
    h->sec[PLAN_SEC_WEIGHTS].offset -= 64;
    reseal(forged, part_len);
    assert_int_not_equal(
        engine_model_open_parts(forged, part_len, blob, w.size, &m, err, sizeof(err)), 0);
    free(forged);
    free(blob);
    engine_image_free(part);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),         cmocka_unit_test(test_sessions),
        cmocka_unit_test(test_input_checks),       cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_flipped_bytes),      cmocka_unit_test(test_header_fields),
        cmocka_unit_test(test_section_fields),     cmocka_unit_test(test_table_fields),
        cmocka_unit_test(test_resealed_mutations), cmocka_unit_test(test_resealed_kernel_mutations),
        cmocka_unit_test(test_thread_count),       cmocka_unit_test(test_winograd_fields),
        cmocka_unit_test(test_resample_fields),    cmocka_unit_test(test_branch_fields),
        cmocka_unit_test(test_loop_fields),        cmocka_unit_test(test_loop_branch_fields),
        cmocka_unit_test(test_plan_parts),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
