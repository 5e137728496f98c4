/* Unit tests for the growable buffer (common.h) and the Prometheus text writer (prom.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "common/common.h"
#include "common/prom.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

static void buf_grows(void **state)
{
    (void)state;
    struct buf b = {0};
    for (int i = 0; i < 10000; i++)
        assert_int_equal(buf_printf(&b, "%d,", i), 0);
    assert_false(b.failed);
    assert_int_equal(strlen(b.data), b.len);
    assert_true(b.cap > b.len);
    assert_memory_equal(b.data, "0,1,2,", 6);
    assert_memory_equal(b.data + b.len - 5, "9999,", 5);
    buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
}

static void buf_appends_bytes(void **state)
{
    (void)state;
    struct buf b = {0};
    assert_int_equal(buf_append(&b, "", 0), 0);
    assert_non_null(b.data); /* NUL-terminated even when empty */
    assert_string_equal(b.data, "");
    static const char bin[] = {'a', '\0', 'b'};
    assert_int_equal(buf_append(&b, bin, 3), 0);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, bin, 3);
    assert_int_equal(b.data[3], '\0');
    char big[5000];
    memset(big, 'x', sizeof big);
    assert_int_equal(buf_append(&b, big, sizeof big), 0);
    assert_int_equal(b.len, 3 + sizeof big);
    assert_int_equal(b.data[b.len], '\0');
    assert_int_equal(buf_reserve(&b, 100), 0);
    assert_true(b.cap - b.len > 100);
    buf_free(&b);
}

static void buf_failure_sticks(void **state)
{
    (void)state;
    struct buf b = {0};
    assert_int_equal(buf_printf(&b, "%s", "kept"), 0);
    assert_int_equal(buf_reserve(&b, SIZE_MAX - 8), -ENOMEM); /* can never fit */
    assert_true(b.failed);
    assert_int_equal(buf_append(&b, "more", 4), -ENOMEM);
    assert_int_equal(buf_printf(&b, "%d", 1), -ENOMEM);
    assert_string_equal(b.data, "kept");
    buf_free(&b);
    assert_false(b.failed);
}

static void str_fmt_says_when_cut(void **state)
{
    (void)state;
    char p[8];
    assert_int_equal(str_fmt(p, sizeof p, "%s", "1234567"), 0);
    assert_string_equal(p, "1234567");
    assert_int_equal(str_fmt(p, sizeof p, "%s", "12345678"), -ENAMETOOLONG);
    assert_string_equal(p, "1234567");
}

static void prom_text_format(void **state)
{
    (void)state;
    struct buf b = {0};
    struct prom_hist h = {0};
    prom_hist_observe(&h, 0.003);
    prom_hist_observe(&h, 0.2);
    prom_hist_observe(&h, 99);
    prom_header(&b, "m_total", "counter", "Things.");
    prom_sample2(&b, "m_total", "function_name", "a\"b\\c\nd", "code", "200", 3);
    prom_header(&b, "lat_seconds", "histogram", "Latency.");
    prom_write_hist(&b, "lat_seconds", "function_name", "f", &h);
    assert_false(b.failed);
    assert_non_null(strstr(b.data, "# HELP m_total Things.\n# TYPE m_total counter\n"));
    assert_non_null(strstr(b.data, "m_total{function_name=\"a\\\"b\\\\c\\nd\",code=\"200\"} 3\n"));
    assert_non_null(strstr(b.data, "lat_seconds_bucket{function_name=\"f\",le=\"0.005\"} 1\n"));
    assert_non_null(strstr(b.data, "lat_seconds_bucket{function_name=\"f\",le=\"0.25\"} 2\n"));
    assert_non_null(strstr(b.data, "lat_seconds_bucket{function_name=\"f\",le=\"10\"} 2\n"));
    assert_non_null(strstr(b.data, "lat_seconds_bucket{function_name=\"f\",le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(b.data, "lat_seconds_sum{function_name=\"f\"} 99.203"));
    assert_non_null(strstr(b.data, "lat_seconds_count{function_name=\"f\"} 3\n"));
    /* +Inf is the last bucket, then _sum, then _count */
    assert_true(strstr(b.data, "le=\"+Inf\"") < strstr(b.data, "lat_seconds_sum"));
    assert_true(strstr(b.data, "lat_seconds_sum") < strstr(b.data, "lat_seconds_count"));
    buf_free(&b);
}

static void prom_escapes_help_and_values(void **state)
{
    (void)state;
    struct buf b = {0};
    /* HELP escapes backslash and newline but not the double quote (format 0.0.4) */
    prom_metric(&b, "g", "gauge", "a \"q\" \\ b\nc", 1.5);
    prom_sample(&b, "inf", NULL, NULL, INFINITY);
    prom_sample(&b, "ninf", NULL, NULL, -INFINITY);
    prom_sample(&b, "nan", NULL, NULL, NAN);
    prom_sample(&b, "big", "l", "", 9007199254740993.0);
    prom_sample(&b, "small", "l", "x", 0.1);
    assert_false(b.failed);
    assert_string_equal(b.data, "# HELP g a \"q\" \\\\ b\\nc\n"
                                "# TYPE g gauge\n"
                                "g 1.5\n"
                                "inf +Inf\n"
                                "ninf -Inf\n"
                                "nan NaN\n"
                                "big{l=\"\"} 9007199254740992\n"
                                "small{l=\"x\"} 0.10000000000000001\n");
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(buf_grows),          cmocka_unit_test(buf_appends_bytes),
        cmocka_unit_test(buf_failure_sticks), cmocka_unit_test(str_fmt_says_when_cut),
        cmocka_unit_test(prom_text_format),   cmocka_unit_test(prom_escapes_help_and_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
