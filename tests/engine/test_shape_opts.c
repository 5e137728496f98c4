/* Unit tests for compile-option shapes as text (src/engine/shape_opts.c): what parses, the
 * canonical spelling, every refusal, and buffers that are too small. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "engine/engine.h"

#include <errno.h>
#include <string.h>

#define MAX 4

static int parse(const char *text, char *buf, size_t buflen, struct engine_input_shape *s,
                 char *err, size_t errlen)
{
    return engine_shapes_parse(text, buf, buflen, s, MAX, err, errlen);
}

/* text parses to n shapes whose canonical text is want. */
static void expect_ok(const char *text, int n, const char *want)
{
    struct engine_input_shape s[MAX];
    char buf[256], out[256], err[256] = "";
    int rc = parse(text, buf, sizeof buf, s, err, sizeof err);

    if (rc != n)
        fail_msg("\"%s\": %d shapes (%s), expected %d", text, rc, err, n);
    assert_int_equal(engine_shapes_format(s, n, out, sizeof out), (int)strlen(want));
    assert_string_equal(out, want);
}

static void expect_error(const char *text, int code, const char *want)
{
    struct engine_input_shape s[MAX];
    char buf[256], err[256] = "";
    int rc = parse(text, buf, sizeof buf, s, err, sizeof err);

    if (rc != code || strstr(err, want) == NULL)
        fail_msg("\"%s\": rc %d, error \"%s\", expected %d and one containing \"%s\"", text, rc,
                 err, code, want);
}

static void test_parses(void **state)
{
    (void)state;
    expect_ok("1x3x224x224", 1, "1x3x224x224");
    expect_ok("input=1x3x320x320", 1, "input=1x3x320x320");
    expect_ok("a=1;b=2x3", 2, "a=1;b=2x3");
    expect_ok("x=1x2x3x4x5x6x7x8", 1, "x=1x2x3x4x5x6x7x8");
    expect_ok("n.a:m/e=2147483647", 1, "n.a:m/e=2147483647");
    expect_ok("007x1", 1, "7x1"); /* canonical: one spelling, one store identity */
}

static void test_names_point_into_buf(void **state)
{
    struct engine_input_shape s[MAX];
    char buf[64], err[128];
    (void)state;
    assert_int_equal(parse("img=1x3;mask=1x9", buf, sizeof buf, s, err, sizeof err), 2);
    assert_string_equal(s[0].name, "img");
    assert_string_equal(s[1].name, "mask");
    assert_true(s[0].name >= buf && s[1].name < buf + sizeof buf);
    assert_int_equal(s[1].shape.rank, 2);
    assert_int_equal(s[1].shape.dims[1], 9);
}

static void test_refusals(void **state)
{
    (void)state;
    expect_error("", -EINVAL, "no shape given");
    expect_error("input=", -EINVAL, "empty shape");
    expect_error("=1x3", -EINVAL, "input name before '=' is empty");
    expect_error("1x", -EINVAL, "want DxDx..");
    expect_error("x1", -EINVAL, "want DxDx..");
    expect_error("1xx2", -EINVAL, "want DxDx..");
    expect_error("1x0", -EINVAL, "want DxDx..");
    expect_error("1x-3", -EINVAL, "want DxDx..");
    expect_error("1x+3", -EINVAL, "want DxDx..");
    expect_error("1x 3", -EINVAL, "want DxDx..");
    expect_error("1x\t3", -EINVAL, "want DxDx..");
    expect_error("1,3", -EINVAL, "want DxDx..");
    expect_error("2147483648", -EINVAL, "want DxDx..");
    expect_error("99999999999999999999999", -EINVAL, "want DxDx..");
    expect_error("1x2x3x4x5x6x7x8x9", -EINVAL, "1 to 8 dims");
    expect_error("a=1;", -EINVAL, "empty shape");
    expect_error("1x3;b=2", -EINVAL, "name each one");
    expect_error("a=1x3;2", -EINVAL, "name each one");
    expect_error("a=1;b=1;c=1;d=1;e=1", -E2BIG, "more than 4 shapes");
}

static void test_small_buffers(void **state)
{
    struct engine_input_shape s[MAX];
    char buf[8], out[8], err[128];
    (void)state;
    assert_int_equal(engine_shapes_parse("input=1x3x8x8", buf, sizeof buf, s, MAX, err, sizeof err),
                     -ENAMETOOLONG);
    assert_int_equal(engine_shapes_parse(NULL, buf, sizeof buf, s, MAX, err, sizeof err), -EINVAL);
    assert_int_equal(engine_shapes_parse("a=1x3", buf, sizeof buf, s, MAX, err, sizeof err), 1);
    assert_int_equal(engine_shapes_format(s, 1, out, 5), -ENAMETOOLONG); /* "a=1x3" + NUL: 6 */
    assert_int_equal(engine_shapes_format(s, 1, out, 6), 5);
    assert_int_equal(engine_shapes_format(s, 1, out, 0), -ENAMETOOLONG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parses),
        cmocka_unit_test(test_names_point_into_buf),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_small_buffers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
