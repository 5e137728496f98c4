/* Unit tests of the async callback allow-list (src/gateway/callback.c): which X-Callback-Url
 * shmfaasd may POST a result to, judged on the host libcurl's URL parser finds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "gateway/gateway.h"

static struct callback_allow allow_of(const char *list)
{
    struct callback_allow a = {0};
    char err[256];
    assert_int_equal(callback_allow_parse(&a, "127.0.0.0/8,::1,localhost", err, sizeof err), 0);
    if (list)
        assert_int_equal(callback_allow_parse(&a, list, err, sizeof err), 0);
    return a;
}

static int check(const struct callback_allow *a, const char *url, struct callback_target *t,
                 char *err, size_t errlen)
{
    err[0] = '\0';
    return callback_check(a, url, t, err, errlen);
}

static void loopback_allowed(void **state)
{
    struct callback_allow a = allow_of(NULL);
    struct callback_target t;
    char err[256];
    assert_int_equal(check(&a, "http://127.0.0.1:9000/cb", &t, err, sizeof err), 0);
    assert_string_equal(t.host, "127.0.0.1");
    assert_int_equal(t.port, 9000);
    assert_true(t.literal);
    assert_int_equal(check(&a, "https://127.200.3.4/x?y=1", &t, err, sizeof err), 0);
    assert_int_equal(t.port, 443);
    assert_int_equal(check(&a, "http://[::1]:8/", &t, err, sizeof err), 0);
    assert_string_equal(t.host, "::1");
    assert_true(t.literal);
    assert_int_equal(check(&a, "http://LocalHost:80/", &t, err, sizeof err), 0);
    assert_false(t.literal);
    assert_int_equal(t.port, 80);
}

static void others_refused(void **state)
{
    struct callback_allow a = allow_of(NULL);
    struct callback_target t;
    char err[256];
    static const char *const perm[] = {
        "http://10.1.2.3/",           "http://128.0.0.1/",        "http://example.com/",
        "http://localhost./",         "http://127.0.0.1.nip.io/", "http://[::2]/",
        "http://[::ffff:10.0.0.1]/",  "http://127.0.0.1@10.0.0.1/", "http://[fe80::1]/",
        "http://0x7f000001.example/", "http://localhost.evil/"};
    for (size_t i = 0; i < sizeof perm / sizeof *perm; i++) {
        assert_int_equal(check(&a, perm[i], &t, err, sizeof err), -EPERM);
        assert_non_null(strstr(err, "not allowed"));
    }
    assert_int_equal(check(&a, "http://10.1.2.3/", &t, err, sizeof err), -EPERM);
    assert_non_null(strstr(err, "\"10.1.2.3\""));
    static const char *const inval[] = {"ftp://127.0.0.1/", "file:///etc/passwd", "not a url",
                                        "http://", "127.0.0.1:80", "gopher://localhost/", ""};
    for (size_t i = 0; i < sizeof inval / sizeof *inval; i++)
        assert_int_equal(check(&a, inval[i], &t, err, sizeof err), -EINVAL);
    char longurl[CALLBACK_URL_MAX + 32];
    memset(longurl, 'a', sizeof longurl - 1);
    memcpy(longurl, "http://127.0.0.1/", 17);
    longurl[sizeof longurl - 1] = '\0';
    assert_int_equal(check(&a, longurl, &t, err, sizeof err), -EINVAL);
}

static void operator_list(void **state)
{
    struct callback_allow a = allow_of("hooks.lan, 10.9.0.0/16,fd00::/8,192.0.2.7");
    struct callback_target t;
    char err[256];
    assert_int_equal(check(&a, "http://HOOKS.lan:81/", &t, err, sizeof err), 0);
    assert_int_equal(check(&a, "http://10.9.255.1/", &t, err, sizeof err), 0);
    assert_int_equal(check(&a, "http://10.10.0.1/", &t, err, sizeof err), -EPERM);
    assert_int_equal(check(&a, "http://[fd12::3]/", &t, err, sizeof err), 0);
    assert_int_equal(check(&a, "http://[fe00::3]/", &t, err, sizeof err), -EPERM);
    assert_int_equal(check(&a, "http://192.0.2.7/", &t, err, sizeof err), 0);
    assert_int_equal(check(&a, "http://192.0.2.8/", &t, err, sizeof err), -EPERM);
    assert_int_equal(check(&a, "http://x.hooks.lan/", &t, err, sizeof err), -EPERM);
}

static void bad_lists(void **state)
{
    static const char *const bad[] = {"10.0.0.0/33", "::1/129", "a_b", "host/8", "1.2.3.4/",
                                      "1.2.3.4/x", "h\"x", ",,"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct callback_allow a = {0};
        char err[256];
        int rc = callback_allow_parse(&a, bad[i], err, sizeof err);
        if (strcmp(bad[i], ",,") == 0)
            assert_int_equal(rc, 0); /* empty entries are skipped */
        else
            assert_int_equal(rc, -EINVAL);
    }
    struct callback_allow a = {0};
    char err[256], many[CALLBACK_ALLOW_MAX * 4 + 8] = "";
    for (int i = 0; i <= CALLBACK_ALLOW_MAX; i++)
        strcat(many, "h,");
    assert_int_equal(callback_allow_parse(&a, many, err, sizeof err), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(loopback_allowed),
        cmocka_unit_test(others_refused),
        cmocka_unit_test(operator_list),
        cmocka_unit_test(bad_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
