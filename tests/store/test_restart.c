/*
 * Issue 3, criterion 2: kill -9 of a client drops its lease (stats show it within 1 s); kill -9
 * of the store, restart: every image re-adopted, zero recompiles, corrupt/foreign/temp files
 * discarded, and a client reconnects and keeps its mapping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "harness.h"

#include "client/client.h"
#include "common/common.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t holder(const struct store_env *e)
{
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct store_client *c;
        const struct store_image *a, *b;
        char err[1024];
        if (store_connect(e->sock, &c, err, sizeof(err)) < 0 ||
            store_attach(c, "gemm_a", 1, &a, err, sizeof(err)) < 0 ||
            store_attach(c, "cnn", 1, &b, err, sizeof(err)) < 0) {
            fprintf(stderr, "holder: %s\n", err);
            _exit(1);
        }
        if (write(ready[1], "r", 1) != 1)
            _exit(2);
        pause();
        _exit(0);
    }
    char r;
    close(ready[1]);
    assert_int_equal(read(ready[0], &r, 1), 1);
    close(ready[0]);
    return pid;
}

static void test_client_kill_drops_leases(void **state)
{
    struct store_env *e = *state;
    env_start(e, "1GiB", NULL);
    pid_t pid = holder(e);
    json_t *st = env_stats(e);
    assert_int_equal(stats_total(st, "leases"), 2);
    json_decref(st);

    int64_t t0 = now_ns();
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    int64_t leases = -1;
    while (now_ns() - t0 < 5000000000LL) {
        st = env_stats(e);
        leases = stats_total(st, "leases");
        json_decref(st);
        if (leases == 0)
            break;
    }
    double ms = (double)(now_ns() - t0) / 1e6;
    printf("criterion 2: leases of a SIGKILLed client gone from stats after %.1f ms\n", ms);
    assert_int_equal(leases, 0);
    assert_true(ms < 1000);
}

static void plant_junk(const struct store_env *e)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%064d.plan", e->dir, 0); /* a "foreign" image: not a plan */
    int fd = open(p, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "not a plan image at all", 23), 23);
    close(fd);
    snprintf(p, sizeof(p), "%s/.%064d.tmp", e->dir, 1); /* an interrupted write */
    fd = open(p, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    close(fd);
}

static void test_store_kill_readopts(void **state)
{
    struct store_env *e = *state;
    env_start(e, "1GiB", NULL);
    struct store_client *c;
    const struct store_image *a, *b;
    char err[1024];
    assert_int_equal(store_connect(e->sock, &c, err, sizeof(err)), 0);
    assert_int_equal(store_attach(c, "gemm_a", 1, &a, err, sizeof(err)), 0);
    assert_int_equal(store_attach(c, "cnn", 1, &b, err, sizeof(err)), 0);
    assert_int_equal(store_detach(c, b, err, sizeof(err)), 0);
    const void *addr = a->addr;
    uint8_t first = ((const uint8_t *)addr)[0];

    env_stop(e, SIGKILL);
    plant_junk(e);
    env_start(e, "1GiB", NULL);
    json_t *st = env_stats(e);
    printf("criterion 2: after kill -9 and restart: adopted %lld, discarded %lld, compiles %lld, "
           "resident %lld\n",
           (long long)stats_total(st, "adopted"), (long long)stats_total(st, "discarded"),
           (long long)stats_total(st, "compiles"), (long long)stats_total(st, "resident_models"));
    assert_int_equal(stats_total(st, "adopted"), 2);
    assert_int_equal(stats_total(st, "discarded"), 1);
    assert_int_equal(stats_total(st, "compiles"), 0);
    assert_int_equal(stats_total(st, "resident_models"), 2);
    assert_non_null(stats_model(st, "gemm_a")); /* names survive through the manifest */
    assert_non_null(stats_model(st, "cnn"));
    json_decref(st);
    uint64_t bytes;
    assert_int_equal(env_count_images(e, &bytes), 2);
    char p[256];
    snprintf(p, sizeof(p), "%s/.%064d.tmp", e->dir, 1);
    assert_int_equal(access(p, F_OK), -1);

    /* The client reconnects and re-takes its lease; its mapping stays the same. */
    assert_int_equal(store_reconnect(c, 5000, err, sizeof(err)), 0);
    assert_ptr_equal(a->addr, addr);
    assert_int_equal(((const uint8_t *)a->addr)[0], first);
    st = env_stats(e);
    assert_int_equal(stats_total(st, "leases"), 1);
    assert_int_equal(stats_total(st, "compiles"), 0);
    assert_int_equal(stats_total(st, "hits"), 1);
    json_decref(st);
    store_close(c);
}

/* The LRU order survives a restart (manifest): a store restarted with a budget that fits one of
 * two images keeps the more recently released one. */
static void test_restart_smaller_budget_keeps_lru_order(void **state)
{
    struct store_env *e = *state;
    env_start(e, "1GiB", (const char *[]){"--keep-images", NULL}); /* SIGTERM keeps them */
    struct store_client *c;
    const struct store_image *img;
    char err[1024];
    uint64_t size = 0;
    assert_int_equal(store_connect(e->sock, &c, err, sizeof(err)), 0);
    static const char *order[] = {"gemm_b", "gemm_a", "gemm_b"}; /* a is the LRU one */
    for (size_t i = 0; i < ARRAY_LEN(order); i++) {
        assert_int_equal(store_attach(c, order[i], 1, &img, err, sizeof(err)), 0);
        size = img->size + img->weights_size;
        assert_int_equal(store_detach(c, img, err, sizeof(err)), 0);
    }
    store_close(c);
    env_stop(e, SIGTERM);
    char budget[32];
    snprintf(budget, sizeof(budget), "%llu", (unsigned long long)(size + size / 2));
    env_start(e, budget, NULL);
    json_t *st = env_stats(e);
    assert_int_equal(stats_total(st, "adopted"), 2);
    assert_int_equal(stats_total(st, "evictions"), 1);
    assert_int_equal(stats_total(st, "resident_models"), 1);
    assert_non_null(stats_model(st, "gemm_b"));
    assert_null(stats_model(st, "gemm_a"));
    json_decref(st);
    uint64_t bytes;
    assert_int_equal(env_count_images(e, &bytes), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_client_kill_drops_leases, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_store_kill_readopts, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_restart_smaller_budget_keeps_lru_order, env_setup,
                                        env_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
