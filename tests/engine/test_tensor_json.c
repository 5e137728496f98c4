/* Unit tests for the JSON tensor schema (src/engine/tensor_json.c): round trips of every dtype,
 * flat and nested data, sequences and optionals, and every error the reader reports on bad or
 * hostile JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "engine/engine.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- helpers */

static int parse(const char *json, struct engine_tensor_set *set, char *err, size_t errlen)
{
    return engine_tensors_from_json(json, strlen(json), "inputs", set, err, errlen);
}

/* Parses json, expects failure, and checks that the message contains want. */
static void expect_error(const char *json, const char *want)
{
    struct engine_tensor_set set = {0};
    char err[512] = "";
    int rc = parse(json, &set, err, sizeof err);
    if (rc == 0 || strstr(err, want) == NULL)
        fail_msg("json %.80s: rc %d, error \"%s\", expected one containing \"%s\"", json, rc, err,
                 want);
    assert_null(set.t);
    assert_int_equal(set.n, 0);
}

static struct engine_tensor_set parse_ok(const char *json)
{
    struct engine_tensor_set set = {0};
    char err[512] = "";
    if (parse(json, &set, err, sizeof err) != 0)
        fail_msg("json %.80s: %s", json, err);
    return set;
}

/* ---------------------------------------------------------------- reading */

static void test_flat_float(void **state)
{
    (void)state;
    struct engine_tensor_set set =
        parse_ok("{\"inputs\": {\"x\": {\"shape\": [2,3], \"data\": [1,2.5,-3,0,1e-7,4]}}}");
    assert_int_equal(set.n, 1);
    assert_string_equal(set.t[0].name, "x");
    assert_int_equal(set.t[0].dtype, ENGINE_F32);
    assert_int_equal(set.t[0].shape.rank, 2);
    assert_int_equal(set.t[0].shape.dims[0], 2);
    assert_int_equal(set.t[0].shape.dims[1], 3);
    assert_int_equal(set.t[0].nbytes, 6 * sizeof(float));
    const float *f = set.t[0].data;
    assert_true(f[0] == 1.0f && f[1] == 2.5f && f[2] == -3.0f && f[4] == 1e-7f && f[5] == 4.0f);
    engine_tensor_set_free(&set);
    assert_null(set.t);
}

static void test_nested_equals_flat(void **state)
{
    (void)state;
    struct engine_tensor_set a = parse_ok(
        "{\"inputs\": {\"x\": {\"shape\": [2,2,2], \"data\": [[[1,2],[3,4]],[[5,6],[7,8]]]}}}");
    struct engine_tensor_set b =
        parse_ok("{\"inputs\": {\"x\": {\"shape\": [2,2,2], \"data\": [1,2,3,4,5,6,7,8]}}}");
    assert_int_equal(a.t[0].nbytes, b.t[0].nbytes);
    assert_memory_equal(a.t[0].data, b.t[0].data, a.t[0].nbytes);
    engine_tensor_set_free(&a);
    engine_tensor_set_free(&b);
}

static void test_dtypes(void **state)
{
    (void)state;
    struct engine_tensor_set set =
        parse_ok("{\"inputs\": {"
                 "\"a\": {\"shape\": [2], \"dtype\": \"int64\", \"data\": [-9223372036854775808, "
                 "9223372036854775807]},"
                 "\"b\": {\"shape\": [2], \"dtype\": \"int32\", \"data\": [-2147483648, 3.0]},"
                 "\"c\": {\"shape\": [2], \"dtype\": \"uint8\", \"data\": [0, 255]},"
                 "\"d\": {\"shape\": [2], \"dtype\": \"int8\", \"data\": [-128, 127]},"
                 "\"e\": {\"shape\": [3], \"dtype\": \"bool\", \"data\": [true, false, 1]}}}");
    assert_int_equal(set.n, 5);
    assert_int_equal(set.t[0].dtype, ENGINE_I64);
    assert_true(((int64_t *)set.t[0].data)[0] == INT64_MIN);
    assert_true(((int64_t *)set.t[0].data)[1] == INT64_MAX);
    assert_int_equal(((int32_t *)set.t[1].data)[0], INT32_MIN);
    assert_int_equal(((int32_t *)set.t[1].data)[1], 3);
    assert_int_equal(((uint8_t *)set.t[2].data)[1], 255);
    assert_int_equal(((int8_t *)set.t[3].data)[0], -128);
    assert_int_equal(set.t[4].dtype, ENGINE_BOOL);
    assert_int_equal(((uint8_t *)set.t[4].data)[0], 1);
    assert_int_equal(((uint8_t *)set.t[4].data)[1], 0);
    assert_int_equal(((uint8_t *)set.t[4].data)[2], 1);
    assert_int_equal(set.t[4].nbytes, 3);
    engine_tensor_set_free(&set);
}

/* float16: read as numbers rounded to nearest even once, written back exactly (every float16
 * bit pattern that is finite, -0 included, round-trips); beyond 65504 (rounding) is an error. */
static void test_float16(void **state)
{
    (void)state;
    struct engine_tensor_set set =
        parse_ok("{\"inputs\": {\"h\": {\"shape\": [6], \"dtype\": \"float16\", \"data\": "
                 "[1.5, 65504, 65519.9, 1e-8, -0.0, 0.1]}}}");
    const uint16_t want[] = {0x3e00, 0x7bff, 0x7bff, 0x0000, 0x8000, 0x2e66};
    assert_int_equal(set.t[0].dtype, ENGINE_F16);
    assert_int_equal(set.t[0].nbytes, sizeof want);
    assert_memory_equal(set.t[0].data, want, sizeof want);
    engine_tensor_set_free(&set);
    expect_error("{\"inputs\": {\"h\": {\"shape\": [1], \"dtype\": \"float16\", \"data\": "
                 "[65520]}}}",
                 "does not fit float16");
    enum { N = 0x7c00 }; /* every finite positive pattern, and its negative */
    static uint16_t bits[2 * N];
    for (int i = 0; i < N; i++)
        bits[i] = (uint16_t)i, bits[N + i] = (uint16_t)(0x8000 | i);
    struct engine_tensor t = {.name = "y",
                              .dtype = ENGINE_F16,
                              .shape = {.rank = 1, .dims = {2 * N}},
                              .data = bits,
                              .nbytes = sizeof bits};
    char *json = engine_tensors_to_json(&t, 1, "outputs");
    assert_non_null(json);
    char err[256];
    assert_int_equal(engine_tensors_from_json(json, strlen(json), "outputs", &set, err, sizeof err),
                     0);
    assert_memory_equal(set.t[0].data, bits, sizeof bits);
    engine_tensor_set_free(&set);
    free(json);
}

static void test_scalar_and_empty(void **state)
{
    (void)state;
    struct engine_tensor_set set = parse_ok("{\"inputs\": {\"s\": {\"shape\": [], \"data\": 7},"
                                            "\"t\": {\"shape\": [], \"data\": [8]},"
                                            "\"e\": {\"shape\": [0,3], \"data\": []}}}");
    assert_int_equal(set.n, 3);
    assert_int_equal(set.t[0].shape.rank, 0);
    assert_true(*(float *)set.t[0].data == 7.0f);
    assert_true(*(float *)set.t[1].data == 8.0f);
    assert_int_equal(set.t[2].nbytes, 0);
    engine_tensor_set_free(&set);
}

static void test_outputs_key(void **state)
{
    (void)state;
    const char *j = "{\"outputs\": {\"y\": {\"shape\": [1], \"data\": [1]}}}";
    struct engine_tensor_set set = {0};
    char err[256];
    assert_int_equal(engine_tensors_from_json(j, strlen(j), "outputs", &set, err, sizeof err), 0);
    assert_int_equal(set.n, 1);
    engine_tensor_set_free(&set);
    assert_int_not_equal(engine_tensors_from_json(j, strlen(j), "inputs", &set, err, sizeof err),
                         0);
    assert_non_null(strstr(err, "\"inputs\""));
}

/* ---------------------------------------------------------------- errors */

static void test_count_mismatch(void **state)
{
    (void)state;
    expect_error("{\"inputs\": {\"x\": {\"shape\": [1,3], \"data\": [1,2]}}}",
                 "input 'x': shape [1,3] has 3 elements, data has 2");
    expect_error("{\"inputs\": {\"x\": {\"shape\": [1,3], \"data\": [1,2,3,4]}}}",
                 "has 3 elements, data has 4");
    expect_error("{\"inputs\": {\"x\": {\"shape\": [2,2], \"data\": [[1,2,3],[4]]}}}",
                 "nested data has 3 entries at depth 1");
    expect_error("{\"inputs\": {\"x\": {\"shape\": [4], \"data\": [[1,2],[3,4]]}}}",
                 "nested data has 2 entries at depth 0, shape says 4");
    expect_error("{\"inputs\": {\"x\": {\"shape\": [2,1], \"data\": [[1],[[2]]]}}}",
                 "data element 1 is not a number");
    expect_error("{\"inputs\": {\"x\": {\"shape\": [2,2,1], \"data\": [[[1],[2]],[3,4]]}}}",
                 "needs an array");
    expect_error("{\"inputs\": {\"x\": {\"shape\": [2,2], \"data\": [[1,2],3,4]}}}", "'x'");
    expect_error("{\"inputs\": {\"x\": {\"shape\": [3], \"data\": [1,[2],3]}}}",
                 "mixes numbers and arrays");
}

static void test_bad_shape(void **state)
{
    (void)state;
    expect_error("{\"inputs\": {\"x\": {\"shape\": [1,-3], \"data\": []}}}",
                 "shape entry 1 must be a non-negative integer");
    expect_error("{\"inputs\": {\"x\": {\"shape\": [1.5], \"data\": [1]}}}",
                 "shape entry 0 must be a non-negative integer");
    expect_error("{\"inputs\": {\"x\": {\"shape\": \"1x3\", \"data\": [1]}}}",
                 "\"shape\" must be an array");
    expect_error("{\"inputs\": {\"x\": {\"shape\": [1,1,1,1,1,1,1,1,1], \"data\": [1]}}}",
                 "rank 9");
    expect_error("{\"inputs\": {\"x\": {\"shape\": [1000000, 1000000, 1000000], \"data\": [1]}}}",
                 "more than");
    expect_error("{\"inputs\": {\"x\": {\"shape\": [9223372036854775807, 2], \"data\": [1]}}}",
                 "more than");
    expect_error("{\"inputs\": {\"x\": {\"data\": [1]}}}", "missing \"shape\"");
}

static void test_bad_values(void **state)
{
    (void)state;
    expect_error("{\"inputs\": {\"x\": {\"shape\": [2], \"data\": [1, \"a\"]}}}",
                 "data element 1 is not a number");
    expect_error("{\"inputs\": {\"x\": {\"shape\": [1], \"data\": [1e39]}}}",
                 "data element 0 does not fit float32");
    expect_error("{\"inputs\": {\"x\": {\"shape\": [2], \"data\": [1, -3.4028236e38]}}}",
                 "data element 1 does not fit float32");
    expect_error("{\"inputs\": {\"x\": {\"shape\": [1], \"data\": [null]}}}", "not a number");
    expect_error("{\"inputs\": {\"x\": {\"shape\": [1], \"dtype\": \"uint8\", \"data\": [256]}}}",
                 "does not fit uint8");
    expect_error("{\"inputs\": {\"x\": {\"shape\": [1], \"dtype\": \"int8\", \"data\": [-129]}}}",
                 "does not fit int8");
    expect_error("{\"inputs\": {\"x\": {\"shape\": [1], \"dtype\": \"int32\", \"data\": [1.5]}}}",
                 "does not fit int32");
    expect_error("{\"inputs\": {\"x\": {\"shape\": [1], \"dtype\": \"int64\", \"data\": [1e19]}}}",
                 "does not fit int64");
    expect_error("{\"inputs\": {\"x\": {\"shape\": [1], \"dtype\": \"bool\", \"data\": [2]}}}",
                 "does not fit bool");
    expect_error(
        "{\"inputs\": {\"x\": {\"shape\": [1], \"dtype\": \"float32\", \"data\": [true]}}}",
        "not a number");
    expect_error("{\"inputs\": {\"x\": {\"shape\": [1], \"dtype\": \"complex\", \"data\": [1]}}}",
                 "unknown dtype \"complex\"");
    expect_error("{\"inputs\": {\"x\": {\"shape\": [1], \"dtype\": 1, \"data\": [1]}}}",
                 "\"dtype\" must be a string");
    expect_error("{\"inputs\": {\"x\": {\"shape\": [1], \"data\": [NaN]}}}", "invalid JSON");
    expect_error("{\"inputs\": {\"x\": {\"shape\": [1], \"data\": [Infinity]}}}", "invalid JSON");
    expect_error("{\"inputs\": {\"x\": {\"shape\": [1], \"data\": [1e999]}}}", "overflow");
    expect_error("{\"inputs\": {\"x\": {\"shape\": [2], \"data\": 5}}}", "must be an array");
    expect_error("{\"inputs\": {\"x\": {\"shape\": [2]}}}", "missing \"data\"");
    expect_error("{\"inputs\": {\"x\": {\"shape\": [1], \"data\": [1], \"dt\": 1}}}",
                 "unknown field \"dt\"");
}

static void test_bad_documents(void **state)
{
    (void)state;
    expect_error("", "invalid JSON");
    expect_error("{\"inputs\": {\"x\": {\"shape\": [1], \"data\": [1", "invalid JSON");
    expect_error("garbage", "invalid JSON");
    expect_error("[1,2,3]", "expected a JSON object");
    expect_error("{\"inputs\": [1]}", "expected a JSON object");
    expect_error("{\"inputs\": {\"x\": 3}}", "'x': must be an object");
    expect_error("{\"inputs\": {\"\": {\"shape\": [1], \"data\": [1]}}}", "tensor name");
    expect_error("{\"inputs\": {\"x\": {\"shape\": [1], \"data\": [1]}, "
                 "\"x\": {\"shape\": [1], \"data\": [1]}}}",
                 "invalid JSON");
    /* The second tensor fails after the first was allocated: nothing leaks (ASan checks). */
    expect_error("{\"inputs\": {\"a\": {\"shape\": [1], \"data\": [1]}, "
                 "\"b\": {\"shape\": [1], \"data\": [\"x\"]}}}",
                 "input 'b'");
}

/* {"sequence": [...]} and {"optional": ...}: the elements "NAME[0]", "NAME[1]", ... (what the
 * engine compiles a sequence input into); the writer groups such outputs back into a sequence;
 * every bound and malformation refused naming the input. */
static void test_sequences(void **state)
{
    (void)state;
    struct engine_tensor_set set = parse_ok(
        "{\"inputs\": {\"xs\": {\"sequence\": [{\"shape\": [1], \"data\": [1]}, "
        "{\"shape\": [2], \"data\": [2, 3], \"dtype\": \"int64\"}]}, "
        "\"none\": {\"optional\": null}, \"some\": {\"optional\": {\"shape\": [], \"data\": [4]}},"
        " \"empty\": {\"sequence\": []}}}");
    assert_int_equal(set.n, 3);
    assert_string_equal(set.t[0].name, "xs[0]");
    assert_string_equal(set.t[1].name, "xs[1]");
    assert_int_equal(set.t[1].dtype, ENGINE_I64);
    assert_int_equal(((int64_t *)set.t[1].data)[1], 3);
    assert_string_equal(set.t[2].name, "some[0]");
    char *json = engine_tensors_to_json(set.t, set.n, "outputs");
    assert_non_null(json);
    assert_non_null(strstr(json, "\"xs\": {\"sequence\": [{\"shape\": [1], \"dtype\": "
                                 "\"float32\", \"data\": [1]}, {\"shape\": [2]"));
    assert_non_null(strstr(json, "\"some\": {\"sequence\": [{\"shape\": []"));
    free(json);
    /* a tensor named like the sequence's base: names kept as they are */
    free((char *)set.t[2].name);
    set.t[2].name = strdup("xs");
    json = engine_tensors_to_json(set.t, set.n, "outputs");
    assert_non_null(strstr(json, "\"xs[0]\": {"));
    free(json);
    engine_tensor_set_free(&set);

    expect_error("{\"inputs\": {\"xs\": {\"sequence\": {\"shape\": [1], \"data\": [1]}}}}",
                 "input 'xs': \"sequence\" must be an array of tensors");
    expect_error("{\"inputs\": {\"xs\": {\"sequence\": [], \"data\": [1]}}}",
                 "input 'xs': a sequence or optional has only the field \"sequence\"");
    expect_error("{\"inputs\": {\"xs\": {\"sequence\": [3]}}}", "input 'xs[0]': must be an object");
    expect_error("{\"inputs\": {\"xs\": {\"sequence\": [{\"shape\": [1], \"data\": [1]}]}, "
                 "\"xs[0]\": {\"shape\": [1], \"data\": [1]}}}",
                 "'xs': element 0 would be named 'xs[0]', which is also given");
    /* 1025 elements: over ENGINE_MAX_SEQ; 5 x 1000: over the 4096 tensors of a set */
    size_t cap = 6 * 1100 * 40 + 256, len = 0;
    char *big = malloc(cap);
    assert_non_null(big);
    len += (size_t)snprintf(big + len, cap - len, "{\"inputs\": {\"xs\": {\"sequence\": [");
    for (int i = 0; i < 1025; i++)
        len += (size_t)snprintf(big + len, cap - len, "%s{\"shape\": [], \"data\": [0]}",
                                i ? "," : "");
    snprintf(big + len, cap - len, "]}}}");
    expect_error(big, "input 'xs': a sequence of 1025 tensors, at most 1024");
    len = (size_t)snprintf(big, cap, "{\"inputs\": {");
    for (int s = 0; s < 5; s++) {
        len +=
            (size_t)snprintf(big + len, cap - len, "%s\"s%d\": {\"sequence\": [", s ? "," : "", s);
        for (int i = 0; i < 1000; i++)
            len += (size_t)snprintf(big + len, cap - len, "%s{\"shape\": [], \"data\": [0]}",
                                    i ? "," : "");
        len += (size_t)snprintf(big + len, cap - len, "]}");
    }
    snprintf(big + len, cap - len, "}}");
    expect_error(big, "inputs: 5000 tensors with the sequences' elements, at most 4096");
    free(big);
}

static void test_deep_nesting(void **state)
{
    (void)state;
    char json[8192];
    size_t n = 0;
    n += (size_t)snprintf(json + n, sizeof json - n, "{\"inputs\": {\"x\": {\"shape\": [1], ");
    n += (size_t)snprintf(json + n, sizeof json - n, "\"data\": ");
    for (int i = 0; i < 3000; i++)
        json[n++] = '[';
    json[n] = '\0';
    expect_error(json, "invalid JSON");
}

static void test_truncations_never_crash(void **state)
{
    (void)state;
    const char *j = "{\"inputs\": {\"x\": {\"shape\": [2,2], \"dtype\": \"int32\", "
                    "\"data\": [[1,2],[3,4]]}}}";
    size_t len = strlen(j);
    for (size_t cut = 0; cut < len; cut++) {
        struct engine_tensor_set set = {0};
        char err[256];
        char *copy = malloc(cut ? cut : 1);
        memcpy(copy, j, cut);
        assert_int_not_equal(engine_tensors_from_json(copy, cut, "inputs", &set, err, sizeof err),
                             0);
        assert_null(set.t);
        free(copy);
    }
}

/* ---------------------------------------------------------------- writing */

static void test_round_trip_floats(void **state)
{
    (void)state;
    float v[] = {0.0f, -0.0f, 1.0f / 3.0f, FLT_MAX, -FLT_MIN, 1e-45f, 123456789.0f, 3.14159274f};
    struct engine_tensor t = {.name = "y",
                              .dtype = ENGINE_F32,
                              .shape = {.rank = 2, .dims = {2, 4}},
                              .data = v,
                              .nbytes = sizeof v};
    char *json = engine_tensors_to_json(&t, 1, "outputs");
    assert_non_null(json);
    struct engine_tensor_set set = {0};
    char err[256];
    assert_int_equal(engine_tensors_from_json(json, strlen(json), "outputs", &set, err, sizeof err),
                     0);
    assert_int_equal(set.n, 1);
    assert_string_equal(set.t[0].name, "y");
    assert_int_equal(set.t[0].shape.rank, 2);
    assert_int_equal(set.t[0].shape.dims[1], 4);
    assert_memory_equal(set.t[0].data, v, sizeof v); /* bit-exact, -0 included */
    engine_tensor_set_free(&set);
    free(json);
}

/* Random bit patterns over every exponent, denormals included: %.9g must round-trip each. */
static void test_round_trip_random_floats(void **state)
{
    (void)state;
    enum { N = 20000 };
    float *v = malloc(N * sizeof(float));
    uint32_t x = 2463534242u;
    int n = 0;
    while (n < N) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5; /* xorshift32 */
        float f;
        memcpy(&f, &x, sizeof f);
        if (isfinite(f))
            v[n++] = f;
    }
    struct engine_tensor t = {.name = "r",
                              .dtype = ENGINE_F32,
                              .shape = {1, {N}},
                              .data = v,
                              .nbytes = N * sizeof(float)};
    char *json = engine_tensors_to_json(&t, 1, "outputs");
    assert_non_null(json);
    struct engine_tensor_set set = {0};
    char err[256];
    assert_int_equal(engine_tensors_from_json(json, strlen(json), "outputs", &set, err, sizeof err),
                     0);
    assert_memory_equal(set.t[0].data, v, N * sizeof(float));
    engine_tensor_set_free(&set);
    free(json);
    free(v);
}

static void test_round_trip_integers(void **state)
{
    (void)state;
    int64_t a[] = {INT64_MIN, -1, 0, INT64_MAX};
    uint8_t b[] = {0, 1, 0};
    int8_t c[] = {-128, 127};
    struct engine_tensor t[] = {
        {.name = "a", .dtype = ENGINE_I64, .shape = {1, {4}}, .data = a, .nbytes = sizeof a},
        {.name = "b", .dtype = ENGINE_BOOL, .shape = {1, {3}}, .data = b, .nbytes = sizeof b},
        {.name = "q\"\\\n", .dtype = ENGINE_I8, .shape = {1, {2}}, .data = c, .nbytes = sizeof c},
    };
    char *json = engine_tensors_to_json(t, 3, "outputs");
    assert_non_null(json);
    assert_non_null(strstr(json, "true"));
    struct engine_tensor_set set = {0};
    char err[256];
    assert_int_equal(engine_tensors_from_json(json, strlen(json), "outputs", &set, err, sizeof err),
                     0);
    assert_int_equal(set.n, 3);
    assert_memory_equal(set.t[0].data, a, sizeof a);
    assert_int_equal(set.t[1].dtype, ENGINE_BOOL);
    assert_memory_equal(set.t[1].data, b, sizeof b);
    assert_string_equal(set.t[2].name, "q\"\\\n");
    assert_memory_equal(set.t[2].data, c, sizeof c);
    engine_tensor_set_free(&set);
    free(json);
}

static void test_writer_refuses_bad_tensors(void **state)
{
    (void)state;
    float v[2] = {1, 2};
    struct engine_tensor t = {
        .name = "y", .dtype = ENGINE_F32, .shape = {1, {3}}, .data = v, .nbytes = sizeof v};
    assert_null(engine_tensors_to_json(&t, 1, "outputs")); /* 3 elements, 2 floats of data */
    t.shape.dims[0] = 2;
    t.dtype = 42;
    assert_null(engine_tensors_to_json(&t, 1, "outputs"));
    char *empty = engine_tensors_to_json(NULL, 0, "outputs");
    assert_non_null(empty);
    assert_non_null(strstr(empty, "\"outputs\": {}"));
    free(empty);
}

static void test_writer_nan_is_null(void **state)
{
    (void)state;
    float v[2] = {NAN, INFINITY};
    struct engine_tensor t = {
        .name = "y", .dtype = ENGINE_F32, .shape = {1, {2}}, .data = v, .nbytes = sizeof v};
    char *json = engine_tensors_to_json(&t, 1, "outputs");
    assert_non_null(json);
    assert_non_null(strstr(json, "[null,null]"));
    free(json);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flat_float),
        cmocka_unit_test(test_nested_equals_flat),
        cmocka_unit_test(test_dtypes),
        cmocka_unit_test(test_float16),
        cmocka_unit_test(test_scalar_and_empty),
        cmocka_unit_test(test_outputs_key),
        cmocka_unit_test(test_count_mismatch),
        cmocka_unit_test(test_bad_shape),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_bad_documents),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_sequences),
        cmocka_unit_test(test_truncations_never_crash),
        cmocka_unit_test(test_round_trip_floats),
        cmocka_unit_test(test_round_trip_random_floats),
        cmocka_unit_test(test_round_trip_integers),
        cmocka_unit_test(test_writer_refuses_bad_tensors),
        cmocka_unit_test(test_writer_nan_is_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
