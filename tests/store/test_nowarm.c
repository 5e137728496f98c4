/*
 * shmfaas-store --no-warm-cache: an image is evicted when its last lease is released (DETACH or
 * the connection closing), not while another lease holds it; without the flag it stays warm.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "harness.h"

#include "client/client.h"

#include <stdio.h>
#include <unistd.h>

static const char *const no_warm[] = {"--no-warm-cache", NULL};

static struct store_client *attach(const struct store_env *e, const char *model,
                                   const struct store_image **img)
{
    struct store_client *c;
    char err[1024];
    assert_int_equal(store_connect(e->sock, &c, err, sizeof(err)), 0);
    if (store_attach(c, model, 1, img, err, sizeof(err)) < 0)
        fail_msg("attach %s: %s", model, err);
    return c;
}

static int images(const struct store_env *e)
{
    uint64_t bytes;
    return env_count_images(e, &bytes);
}

static int64_t resident_models(const struct store_env *e)
{
    json_t *st = env_stats(e);
    int64_t n = stats_total(st, "resident_models");
    json_decref(st);
    return n;
}

/* The store sees a closed connection a moment after the client closed it. */
static int64_t resident_models_settled(const struct store_env *e, int64_t want)
{
    int64_t n = resident_models(e);
    for (int i = 0; i < 500 && n != want; i++) {
        usleep(2000);
        n = resident_models(e);
    }
    return n;
}

static void test_last_detach_evicts(void **state)
{
    struct store_env *e = *state;
    env_start(e, "64Mi", no_warm);
    const struct store_image *a, *b;
    struct store_client *ca = attach(e, "gemm_a", &a);
    struct store_client *cb = attach(e, "gemm_a", &b);
    char err[1024];
    assert_int_equal(store_detach(ca, a, err, sizeof(err)), 0);
    assert_int_equal(resident_models(e), 1); /* the second lease still holds it */
    assert_int_equal(images(e), 1);
    assert_int_equal(store_detach(cb, b, err, sizeof(err)), 0);
    json_t *st = env_stats(e);
    assert_int_equal(stats_total(st, "resident_models"), 0);
    assert_int_equal(stats_total(st, "evictions"), 1);
    json_decref(st);
    assert_int_equal(images(e), 0);
    store_close(ca);
    store_close(cb);
}

static void test_closed_connection_evicts(void **state)
{
    struct store_env *e = *state;
    env_start(e, "64Mi", no_warm);
    const struct store_image *img;
    store_close(attach(e, "gemm_b", &img));
    assert_int_equal(resident_models_settled(e, 0), 0);
    assert_int_equal(images(e), 0);
    /* The next attach compiles again: nothing was kept. */
    struct store_client *c = attach(e, "gemm_b", &img);
    json_t *st = env_stats(e);
    assert_int_equal(stats_total(st, "compiles"), 2);
    json_decref(st);
    store_close(c);
}

static void test_default_keeps_warm(void **state)
{
    struct store_env *e = *state;
    env_start(e, "64Mi", NULL);
    const struct store_image *img;
    struct store_client *c = attach(e, "gemm_a", &img);
    char err[1024];
    assert_int_equal(store_detach(c, img, err, sizeof(err)), 0);
    store_close(c);
    assert_int_equal(resident_models(e), 1);
    assert_int_equal(images(e), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_last_detach_evicts, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_closed_connection_evicts, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_default_keeps_warm, env_setup, env_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
