/* Unit tests for src/common: sizes, durations, SHA-256, atomic files, smaps_rollup. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "common/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_parse_size(void **state)
{
    uint64_t v;
    assert_int_equal(parse_size("512Mi", &v), 0);
    assert_true(v == 512ull << 20);
    assert_int_equal(parse_size("1G", &v), 0);
    assert_true(v == 1000000000ull);
    assert_int_equal(parse_size("250M", &v), 0);
    assert_true(v == 250000000ull);
    assert_int_equal(parse_size("2GiB", &v), 0);
    assert_true(v == 2ull << 30);
    assert_int_equal(parse_size("1.5Gi", &v), 0);
    assert_true(v == 3ull << 29);
    assert_int_equal(parse_size("4096", &v), 0);
    assert_true(v == 4096);
    assert_int_equal(parse_size("", &v), -EINVAL);
    assert_int_equal(parse_size("-1Mi", &v), -EINVAL);
    assert_int_equal(parse_size("12Qi", &v), -EINVAL);
    assert_int_equal(parse_size("Mi", &v), -EINVAL);
    assert_int_equal(parse_size("1e30Ti", &v), -ERANGE);
}

static void test_parse_duration(void **state)
{
    int64_t ms;
    assert_int_equal(parse_duration_ms("30s", &ms), 0);
    assert_int_equal(ms, 30000);
    assert_int_equal(parse_duration_ms("5m", &ms), 0);
    assert_int_equal(ms, 300000);
    assert_int_equal(parse_duration_ms("1m30s", &ms), 0);
    assert_int_equal(ms, 90000);
    assert_int_equal(parse_duration_ms("250ms", &ms), 0);
    assert_int_equal(ms, 250);
    assert_int_equal(parse_duration_ms("2", &ms), 0);
    assert_int_equal(ms, 2000);
    assert_int_equal(parse_duration_ms("1h", &ms), 0);
    assert_int_equal(ms, 3600000);
    assert_int_equal(parse_duration_ms("x", &ms), -EINVAL);
    assert_int_equal(parse_duration_ms("10parsecs", &ms), -EINVAL);
    assert_int_equal(parse_duration_ms("-3s", &ms), -EINVAL);
}

static void test_sha256(void **state)
{
    uint8_t d[SHA256_LEN], back[SHA256_LEN];
    char hex[SHA256_HEX_LEN];
    sha256("abc", 3, d);
    sha256_hex(d, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(sha256_parse_hex(hex, back), 0);
    assert_memory_equal(d, back, SHA256_LEN);
    assert_int_equal(sha256_parse_hex("zz", back), -EINVAL);
}

static void test_atomic_file(void **state)
{
    char dir[] = "/tmp/shmfaas-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], err[256];
    snprintf(path, sizeof(path), "%s/a/b/c.json", dir);
    char sub[256];
    snprintf(sub, sizeof(sub), "%s/a/b", dir);
    assert_int_equal(mkdir_p(sub, 0700), 0);
    assert_int_equal(write_file_atomic(path, "hello", 5, 0600, err, sizeof(err)), 0);
    uint8_t *buf;
    size_t len;
    assert_int_equal(read_file(path, 100, &buf, &len, err, sizeof(err)), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(buf, "hello", 5);
    free(buf);
    assert_int_equal(read_file(path, 3, &buf, &len, err, sizeof(err)), -EFBIG);
    assert_non_null(strstr(err, "limit"));
    assert_true(read_file("/nonexistent/x", 3, &buf, &len, err, sizeof(err)) < 0);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_proc_mem(void **state)
{
    struct proc_mem m;
    assert_int_equal(proc_mem_read(getpid(), &m), 0);
    assert_true(m.rss > 0);
    assert_true(m.pss > 0 && m.pss <= m.rss);
    assert_true(proc_mem_read(-5, &m) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_size),  cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_sha256),      cmocka_unit_test(test_atomic_file),
        cmocka_unit_test(test_proc_mem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
