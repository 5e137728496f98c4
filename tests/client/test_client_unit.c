/* Unit tests of the store client library that need no store: errors and argument checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "client/client.h"

#include <errno.h>
#include <string.h>

static void test_connect_refused_is_explained(void **state)
{
    struct store_client *c = NULL;
    char err[512];
    assert_int_equal(store_connect("/nonexistent/shmfaas/store.sock", &c, err, sizeof(err)),
                     -ENOENT);
    assert_null(c);
    assert_non_null(strstr(err, "store at /nonexistent/shmfaas/store.sock"));
    assert_non_null(strstr(err, "is shmfaas-store running?"));
}

static void test_socket_path_too_long(void **state)
{
    struct store_client *c = NULL;
    char path[300], err[512];
    memset(path, 'a', sizeof(path) - 1);
    path[sizeof(path) - 1] = '\0';
    assert_int_equal(store_connect(path, &c, err, sizeof(err)), -ENAMETOOLONG);
    assert_non_null(strstr(err, "too long"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_refused_is_explained),
        cmocka_unit_test(test_socket_path_too_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
