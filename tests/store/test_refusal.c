/*
 * Issue 12, refusals remembered: a model the budget can never hold is compiled at most once per
 * backoff window; every attach in the window gets the same reason without a compile, STATS lists
 * the refusal with retry_in_ms, and after the window one compile is tried again (and the window
 * doubles). A model that does not compile is remembered the same way. A budget refusal caused by
 * pinned images ends as soon as room is made. shmfaas-fn exits 75 (EX_TEMPFAIL) on a refusal.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "harness.h"

#include "client/client.h"
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WINDOW_MS 5000

static int attach_once(const struct store_env *e, const char *model, char *err, size_t errlen)
{
    struct store_client *c;
    const struct store_image *img;
    assert_int_equal(store_connect(e->sock, &c, err, errlen), 0);
    int rc = store_attach(c, model, 1, &img, err, errlen);
    store_close(c);
    return rc;
}

static json_t *refusal_of(json_t *stats, const char *name)
{
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(stats, "refusals"), i, r)
    {
        const char *names = json_string_value(json_object_get(r, "names"));
        if (names && strstr(names, name))
            return r;
    }
    return NULL;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void test_over_budget_compiled_once_per_window(void **state)
{
    struct store_env *e = *state;
    env_start(e, "1Mi", (const char *[]){"--refusal-backoff", "5s", NULL});
    char err[1200], first[1200];
    int64_t t0 = now_ns();
    assert_int_equal(attach_once(e, "gemm_a", first, sizeof(first)), -ENOSPC);
    assert_non_null(strstr(first, "budget exhausted: gemm_a needs"));
    for (int i = 0; i < 9; i++) {
        assert_int_equal(attach_once(e, "gemm_a", err, sizeof(err)), -ENOSPC);
        assert_non_null(strstr(err, "budget exhausted: gemm_a needs"));
    }
    double elapsed_ms = (double)(now_ns() - t0) / 1e6;
    printf("refusal: %s\n", err);
    json_t *st = env_stats(e);
    int64_t compiles = stats_total(st, "compiles_started");
    printf("refusal: 10 attaches in %.0f ms, %lld compile(s), %lld refusals, %lld remembered\n",
           elapsed_ms, (long long)compiles, (long long)stats_total(st, "refusals"),
           (long long)stats_total(st, "refusals_remembered"));
    /* at most one compile per window that the attaches spanned */
    assert_true(compiles >= 1 && compiles <= 1 + (int64_t)(elapsed_ms / WINDOW_MS));
    assert_int_equal(stats_total(st, "refusals"), 10);
    assert_int_equal(stats_total(st, "refusals_remembered"), 10 - compiles);
    assert_int_equal(stats_total(st, "compiles"), 0);
    json_t *r = refusal_of(st, "gemm_a");
    assert_non_null(r);
    assert_string_equal(json_string_value(json_object_get(r, "kind")), "budget");
    assert_non_null(strstr(json_string_value(json_object_get(r, "reason")), "budget exhausted"));
    int64_t retry = json_integer_value(json_object_get(r, "retry_in_ms"));
    assert_true(retry > 0 && retry <= WINDOW_MS);
    assert_int_equal(strlen(json_string_value(json_object_get(r, "identity"))), 64);
    json_decref(st);

    /* After the window: one compile again, refused again, now for twice the window. */
    sleep_ms(retry + 200);
    assert_int_equal(attach_once(e, "gemm_a", err, sizeof(err)), -ENOSPC);
    st = env_stats(e);
    assert_int_equal(stats_total(st, "compiles_started"), compiles + 1);
    r = refusal_of(st, "gemm_a");
    assert_non_null(r);
    retry = json_integer_value(json_object_get(r, "retry_in_ms"));
    printf("refusal: after the window one more compile; now retried after %lld ms\n",
           (long long)retry);
    assert_true(retry > WINDOW_MS && retry <= 2 * WINDOW_MS);
    json_decref(st);
}

static void test_compile_failure_remembered(void **state)
{
    struct store_env *e = *state;
    char err[1200], path[256];
    snprintf(path, sizeof(path), "%s/broken.onnx", e->models);
    assert_int_equal(write_file_atomic(path, "not onnx", 8, 0644, NULL, 0), 0);
    env_start(e, "1GiB", NULL);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(attach_once(e, "broken", err, sizeof(err)), -ENOEXEC);
        assert_non_null(strstr(err, "model broken: compile failed"));
    }
    json_t *st = env_stats(e);
    assert_true(stats_total(st, "compiles_started") <= 2); /* 30 s window: one, unless very slow */
    json_t *r = refusal_of(st, "broken");
    assert_non_null(r);
    assert_string_equal(json_string_value(json_object_get(r, "kind")), "compile");
    json_decref(st);
    /* Other models are not affected. */
    assert_int_equal(attach_once(e, "cnn", err, sizeof(err)), 0);
}

static void test_pinned_refusal_ends_when_room_is_made(void **state)
{
    struct store_env *e = *state;
    env_start(e, "6Mi", NULL); /* one gemm image (4 MiB) fits, two do not */
    struct store_client *c;
    const struct store_image *a, *b;
    char err[1200];
    assert_int_equal(store_connect(e->sock, &c, err, sizeof(err)), 0);
    assert_int_equal(store_attach(c, "gemm_a", 1, &a, err, sizeof(err)), 0);
    assert_int_equal(attach_once(e, "gemm_b", err, sizeof(err)), -ENOSPC);
    assert_non_null(strstr(err, "pinned by 1 lease"));
    assert_int_equal(attach_once(e, "gemm_b", err, sizeof(err)), -ENOSPC);
    json_t *st = env_stats(e);
    assert_int_equal(stats_total(st, "compiles_started"), 2);
    json_decref(st);
    assert_int_equal(store_detach(c, a, err, sizeof(err)), 0);
    assert_int_equal(store_attach(c, "gemm_b", 1, &b, err, sizeof(err)), 0);
    st = env_stats(e);
    assert_int_equal(stats_total(st, "compiles_started"), 3);
    assert_null(refusal_of(st, "gemm_b"));
    json_decref(st);
    store_close(c);
}

static void test_fn_exits_tempfail(void **state)
{
    struct store_env *e = *state;
    env_start(e, "1Mi", NULL);
    char bin[512], listen[200], log[200];
    env_binary("src/fn/shmfaas-fn", bin, sizeof(bin));
    snprintf(listen, sizeof(listen), "unix:%s/fn.sock", e->root);
    snprintf(log, sizeof(log), "%s/fn.log", e->root);
    for (int round = 0; round < 2; round++) { /* fresh refusal, then a remembered one */
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
            if (fd < 0 || dup2(fd, 2) < 0)
                _exit(126);
            execl(bin, bin, "--model", "gemm_a", "--store", e->sock, "--listen", listen,
                  (char *)NULL);
            _exit(127);
        }
        int status;
        waitpid(pid, &status, 0);
        uint8_t *text;
        size_t len;
        assert_int_equal(read_file(log, 1 << 20, &text, &len, NULL, 0), 0);
        printf("fn: exit %d: %s", WIFEXITED(status) ? WEXITSTATUS(status) : -1, (char *)text);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 75);
        assert_non_null(strstr((char *)text, "budget exhausted"));
        free(text);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_over_budget_compiled_once_per_window, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(test_compile_failure_remembered, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_pinned_refusal_ends_when_room_is_made, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(test_fn_exits_tempfail, env_setup, env_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
