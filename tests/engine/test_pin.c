/*
 * test_pin.c — value-pinned inputs: a generated model whose Reshape takes its shape from a graph
 * input compiles only with that input pinned, runs right for the pinned value and refuses another
 * value; bad pins are refused at compile time; a hostile image whose pinned-input record is out
 * of bounds or inconsistent is refused at open.
 *   test-pin DIR   (DIR holds reshape_shape_input.onnx from gen_pin_model.py)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <errno.h>
#include <stdio.h>

#include "test_backend_util.h"

static const char *model_dir;

struct fixture {
    uint8_t *onnx;
    size_t onnx_len;
    void *img;
    size_t len;
    uint8_t *copy; /* 64-byte aligned scratch for hostile edits */
};

static const int64_t pin_value[3] = {2, 3, 4};

static struct engine_tensor shape_tensor(const int64_t *v, int n)
{
    struct engine_tensor t = {.name = "shape", .dtype = ENGINE_I64, .data = (void *)v};
    t.shape.rank = 1;
    t.shape.dims[0] = n;
    t.nbytes = (size_t)n * sizeof(int64_t);
    return t;
}

static int compile_with(struct fixture *f, const struct engine_tensor *pins, int n, void **img,
                        size_t *len, char *err, size_t errlen)
{
    struct engine_compile_opts o = {.threads = 1, .model_name = "pin", .pins = pins, .n_pins = n};
    return engine_compile(f->onnx, f->onnx_len, &o, img, len, err, errlen);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char path[4096], err[512];
    snprintf(path, sizeof(path), "%s/reshape_shape_input.onnx", model_dir);
    if (read_file(path, 1 << 20, &f->onnx, &f->onnx_len, err, sizeof(err))) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    struct engine_tensor pin = shape_tensor(pin_value, 3);
    if (compile_with(f, &pin, 1, &f->img, &f->len, err, sizeof(err))) {
        fprintf(stderr, "compile with a pin: %s\n", err);
        return -1;
    }
    f->copy = aligned_alloc(PLAN_ALIGN, (f->len + PLAN_ALIGN - 1) / PLAN_ALIGN * PLAN_ALIGN);
    *state = f;
    return f->copy ? 0 : -1;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    free(f->onnx);
    engine_image_free(f->img);
    free(f->copy);
    free(f);
    return 0;
}

static void test_unpinned_refused(void **state)
{
    struct fixture *f = *state;
    void *img = NULL;
    size_t len;
    char err[512] = "";
    assert_int_equal(compile_with(f, NULL, 0, &img, &len, err, sizeof(err)), -ENOTSUP);
    assert_non_null(strstr(err, "must be a constant"));
}

static int run_with(const void *img, size_t len, const int64_t *shape, struct engine_tensor *y,
                    float *ydata, char *err, size_t errlen)
{
    struct engine_model *m = NULL;
    struct engine_session *s = NULL;
    float x[24];
    for (int i = 0; i < 24; i++)
        x[i] = (float)i;
    struct engine_tensor in[2] = {
        {.name = "x", .dtype = ENGINE_F32, .shape = SHAPE(1, 24), .data = x, .nbytes = sizeof(x)},
        shape_tensor(shape, 3)};
    int rc = engine_model_open(img, len, &m, err, errlen);
    if (!rc)
        rc = engine_session_create(m, &s, err, errlen);
    if (!rc)
        rc = engine_session_run(s, in, 2, y, 1, err, errlen);
    if (!rc)
        memcpy(ydata, y->data, y->nbytes < 24 * sizeof(float) ? y->nbytes : 24 * sizeof(float));
    engine_session_destroy(s);
    engine_model_close(m);
    return rc;
}

static void test_pinned_runs(void **state)
{
    struct fixture *f = *state;
    struct engine_tensor y = {0};
    float got[24];
    char err[512] = "";
    assert_int_equal(run_with(f->img, f->len, pin_value, &y, got, err, sizeof(err)), 0);
    assert_int_equal(y.shape.rank, 3);
    assert_true(y.shape.dims[0] == 2 && y.shape.dims[1] == 3 && y.shape.dims[2] == 4);
    for (int i = 0; i < 24; i++)
        assert_true(got[i] == (float)i);
}

static void test_other_value_refused(void **state)
{
    struct fixture *f = *state;
    static const int64_t other[3] = {4, 3, 2};
    struct engine_tensor y = {0};
    float got[24];
    char err[512] = "";
    assert_int_equal(run_with(f->img, f->len, other, &y, got, err, sizeof(err)), -EINVAL);
    assert_string_equal(err,
                        "input 'shape' must be [2, 3, 4] (the plan was compiled for these values)");
}

static void test_introspection(void **state)
{
    struct fixture *f = *state;
    struct engine_model *m = NULL;
    char err[512];
    const void *data = NULL;
    size_t nbytes = 0;
    assert_int_equal(engine_model_open(f->img, f->len, &m, err, sizeof(err)), 0);
    assert_int_equal(engine_model_n_inputs(m), 2);
    assert_int_equal(engine_model_input_pinned(m, 0, &data, &nbytes), 0);
    assert_int_equal(engine_model_input_pinned(m, 1, &data, &nbytes), 1);
    assert_int_equal(nbytes, sizeof(pin_value));
    assert_memory_equal(data, pin_value, sizeof(pin_value));
    assert_int_equal(engine_model_input_pinned(m, 2, NULL, NULL), -EINVAL);
    engine_model_close(m);
}

static void expect_pin_refused(struct fixture *f, struct engine_tensor pin, const char *needle)
{
    void *img = NULL;
    size_t len;
    char err[512] = "";
    assert_int_equal(compile_with(f, &pin, 1, &img, &len, err, sizeof(err)), -EINVAL);
    if (!strstr(err, needle))
        fail_msg("error \"%s\" does not mention \"%s\"", err, needle);
}

static void test_bad_pins(void **state)
{
    struct fixture *f = *state;
    static const int64_t four[4] = {1, 2, 3, 4};
    static const int32_t narrow[3] = {2, 3, 4};
    static float floats[24];
    struct engine_tensor t = shape_tensor(pin_value, 3);
    t.name = "y";
    expect_pin_refused(f, t, "not an input of the model");
    expect_pin_refused(f, shape_tensor(four, 4), "the model has [3]");
    t = shape_tensor(pin_value, 3);
    t.dtype = ENGINE_I32;
    t.data = (void *)narrow;
    t.nbytes = sizeof(narrow);
    expect_pin_refused(f, t, "is int32, the input is int64");
    t.dtype = ENGINE_BOOL; /* bool may be pinned (Compress's condition), not as an int64 input */
    t.nbytes = 3;
    expect_pin_refused(f, t, "is bool, the input is int64");
    t = (struct engine_tensor){.name = "x",
                               .dtype = ENGINE_F32,
                               .shape = SHAPE(1, 24),
                               .data = floats,
                               .nbytes = sizeof(floats)};
    expect_pin_refused(f, t, "or float32 inputs of up to 16 may be pinned");
    t = shape_tensor(pin_value, 3);
    t.nbytes = 8;
    expect_pin_refused(f, t, "bytes of data");
}

/* ---- hostile images ---- */

static void reseal(uint8_t *img, size_t len)
{
    struct plan_header *h = (struct plan_header *)img;
    uint64_t wo = h->sec[PLAN_SEC_WEIGHTS].offset;
    sha256(img + PLAN_TABLES_HASHED_FROM, wo - PLAN_TABLES_HASHED_FROM, h->tables_sha256);
    sha256(img + PLAN_IMAGE_HASHED_FROM, len - PLAN_IMAGE_HASHED_FROM, h->image_sha256);
}

/* The fresh copy's plan tensor of graph input k. */
static struct plan_tensor *input_tensor(struct fixture *f, uint32_t k)
{
    memcpy(f->copy, f->img, f->len);
    struct plan_header *h = (struct plan_header *)f->copy;
    const int32_t *index = (const int32_t *)(f->copy + h->sec[PLAN_SEC_INDEX].offset);
    struct plan_tensor *t = (struct plan_tensor *)(f->copy + h->sec[PLAN_SEC_TENSORS].offset);
    return &t[index[h->inputs_first + k]];
}

static void expect_refused(struct fixture *f, const char *needle)
{
    char err[512] = "";
    struct engine_model *m = NULL;
    reseal(f->copy, f->len);
    if (engine_model_open(f->copy, f->len, &m, err, sizeof(err)) == 0) {
        engine_model_close(m);
        fail_msg("hostile image opened (expected an error containing \"%s\")", needle);
    }
    if (!strstr(err, needle))
        fail_msg("error \"%s\" does not mention \"%s\"", err, needle);
}

static void test_hostile_pinned_record(void **state)
{
    struct fixture *f = *state;
    struct plan_header *h = (struct plan_header *)f->copy;
    struct plan_tensor *t = input_tensor(f, 1);
    assert_true(t->flags & PLAN_TF_PINNED);
    assert_int_equal(t->storage, PLAN_ST_CONST);
    t->offset = h->sec[PLAN_SEC_WEIGHTS].size; /* its bytes past the weights */
    expect_refused(f, "outside its weights");
    t = input_tensor(f, 1);
    t->offset = UINT64_MAX - 63;
    expect_refused(f, "outside its weights");
    t = input_tensor(f, 1);
    t->nbytes = h->sec[PLAN_SEC_WEIGHTS].size + 64;
    expect_refused(f, "bytes for");
    t = input_tensor(f, 1);
    t->flags &= ~(uint32_t)PLAN_TF_PINNED; /* a constant input that is not pinned */
    expect_refused(f, "neither an activation nor a valid pinned input");
    t = input_tensor(f, 0);
    t->flags |= PLAN_TF_PINNED; /* an activation claiming to be pinned */
    expect_refused(f, "neither an activation nor a valid pinned input");
    t = input_tensor(f, 1);
    t->dtype = ENGINE_F64; /* same bytes, a dtype that may not be pinned */
    t->dims[0] = 3;
    expect_refused(f, "neither an activation nor a valid pinned input");
    t = input_tensor(f, 1);
    t->dtype = ENGINE_U8; /* same bytes, uint8 may not be pinned */
    t->dims[0] = 24;
    expect_refused(f, "neither an activation nor a valid pinned input");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test-pin DIR\n");
        return 2;
    }
    model_dir = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unpinned_refused),
        cmocka_unit_test(test_pinned_runs),
        cmocka_unit_test(test_other_value_refused),
        cmocka_unit_test(test_introspection),
        cmocka_unit_test(test_bad_pins),
        cmocka_unit_test(test_hostile_pinned_record),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
