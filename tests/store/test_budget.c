/*
 * Issue 3, criterion 3: with a budget that fits two of three models, attaching the third evicts
 * exactly the least recently released lease-free one; with everything pinned the attach is refused
 * with a message saying what is needed and what is pinned; the resident total never exceeds the
 * budget (checked after every step, in the stats and on disk).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "harness.h"

#include "client/client.h"
#include "common/common.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t budget;

static void check_budget(const struct store_env *e, const char *step)
{
    json_t *st = env_stats(e);
    uint64_t resident = (uint64_t)stats_total(st, "resident_bytes");
    uint64_t on_disk;
    int files = env_count_images(e, &on_disk);
    printf("criterion 3: after %-28s resident %llu bytes in %d image(s), budget %llu\n", step,
           (unsigned long long)resident, files, (unsigned long long)budget);
    assert_true(resident <= budget);
    assert_true(on_disk <= budget);
    assert_true(resident == on_disk);
    json_decref(st);
}

static int resident(const struct store_env *e, const char *name)
{
    json_t *st = env_stats(e);
    json_t *m = stats_model(st, name);
    int yes = m && !strcmp(json_string_value(json_object_get(m, "state")), "resident");
    json_decref(st);
    return yes;
}

static const struct store_image *attach(struct store_client *c, const char *name)
{
    const struct store_image *img;
    char err[1024];
    if (store_attach(c, name, 1, &img, err, sizeof(err)) < 0)
        fail_msg("attach %s: %s", name, err);
    return img;
}

static void use(struct store_client *c, const char *name)
{
    char err[1024];
    assert_int_equal(store_detach(c, attach(c, name), err, sizeof(err)), 0);
}

/* Image sizes of the three models, from a store with room for all. */
static uint64_t learn_sizes(struct store_env *e)
{
    env_start(e, "1GiB", NULL);
    struct store_client *c;
    assert_int_equal(store_connect(e->sock, &c, NULL, 0), 0);
    uint64_t max = 0;
    static const char *names[] = {"gemm_a", "gemm_b", "gemm_c"};
    for (int i = 0; i < 3; i++) {
        const struct store_image *img = attach(c, names[i]);
        uint64_t bytes = img->size + img->weights_size; /* plan part + weights */
        max = bytes > max ? bytes : max;
    }
    store_close(c);
    env_stop(e, SIGTERM);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", e->dir);
    assert_int_equal(system(cmd), 0);
    return max;
}

static void test_lru_eviction_and_refusal(void **state)
{
    struct store_env *e = *state;
    uint64_t size = learn_sizes(e);
    budget = size * 2 + size / 2; /* two fit, three do not */
    char b[32];
    snprintf(b, sizeof(b), "%llu", (unsigned long long)budget);
    env_start(e, b, (const char *[]){"--policy", "lru", NULL}); /* this pins LRU; GDSF: tiers */
    struct store_client *c;
    char err[1024];
    assert_int_equal(store_connect(e->sock, &c, err, sizeof(err)), 0);

    use(c, "gemm_a");
    check_budget(e, "a attached+released");
    use(c, "gemm_b");
    check_budget(e, "b attached+released");
    use(c, "gemm_a"); /* a is now the most recently released: b is the LRU one */
    check_budget(e, "a used again");

    const struct store_image *held_c = attach(c, "gemm_c");
    check_budget(e, "c attached");
    assert_true(resident(e, "gemm_a"));
    assert_false(resident(e, "gemm_b"));
    assert_true(resident(e, "gemm_c"));
    json_t *st = env_stats(e);
    assert_int_equal(stats_total(st, "evictions"), 1);
    json_decref(st);

    /* Pin both residents; the third cannot fit and nothing may be evicted. */
    const struct store_image *held_a = attach(c, "gemm_a");
    const struct store_image *img;
    int rc = store_attach(c, "gemm_b", 1, &img, err, sizeof(err));
    printf("criterion 3: refused: %s\n", err);
    assert_int_equal(rc, -ENOSPC);
    assert_non_null(strstr(err, "budget exhausted: gemm_b needs"));
    assert_non_null(strstr(err, "pinned by 2 leases on 2 models"));
    assert_non_null(strstr(err, "gemm_a: "));
    assert_non_null(strstr(err, "gemm_c: "));
    check_budget(e, "refused attach of b");
    st = env_stats(e);
    assert_int_equal(stats_total(st, "refused"), 1);
    assert_int_equal(stats_total(st, "evictions"), 1);
    json_decref(st);
    assert_true(resident(e, "gemm_a") && resident(e, "gemm_c"));

    /* Releasing one makes room again: c was released last, so a goes. */
    assert_int_equal(store_detach(c, held_a, err, sizeof(err)), 0);
    assert_int_equal(store_detach(c, held_c, err, sizeof(err)), 0);
    use(c, "gemm_b");
    check_budget(e, "b attached again");
    assert_false(resident(e, "gemm_a"));
    assert_true(resident(e, "gemm_c"));
    store_close(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lru_eviction_and_refusal, env_setup, env_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
