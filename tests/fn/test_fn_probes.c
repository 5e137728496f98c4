/*
 * shmfaas-fn's probes as faas-netes and Knative use them (issue 13): real store, real instances.
 *   - while the model is still being attached (the store holds the ATTACH: here it is SIGSTOPped
 *     mid-request, as a long compile would), GET /_/health is 200 and GET /_/ready is 503; once
 *     the store answers, /_/ready turns 200 — liveness can never restart a compiling instance;
 *   - an instance started before its store (a node whose store pod is not up yet) stays up with
 *     /_/health 200 and /_/ready 503, and becomes ready when the store arrives;
 *   - SIGTERM while it waits for the store ends it promptly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "harness.h"

/* Generous bounds, never timing assertions: a loaded 2-core machine may compile slowly. */
#define READY_BOUND_MS 120000
#define PROBE_TRIES    20

struct world {
    struct harness h;
    char store_sock[300], dir[300], models[300];
};

static pid_t start_store(struct world *w)
{
    return h_start_store(&w->h, w->store_sock, w->dir, w->models);
}

/* Starts shmfaas-fn on known_answer without waiting for it; its socket path goes to sock. */
static pid_t spawn_fn(struct world *w, const char *name, char *sock, size_t socklen)
{
    char bin[512], listen[320], store_env[320];
    h_path(&w->h, name, sock, socklen);
    snprintf(listen, sizeof(listen), "unix:%s", sock);
    snprintf(store_env, sizeof(store_env), "store_socket=%s", w->store_sock);
    const char *env[] = {"model=known_answer", store_env, "input=json", "output=json", NULL};
    char *argv[] = {(char *)h_bin("src/fn/shmfaas-fn", bin, sizeof(bin)), "--listen", listen, NULL};
    return h_spawn(&w->h, argv, env);
}

/* /_/health answers 200 (HTTP is up) and /_/ready 503, several times, and the process lives. */
static void assert_alive_not_ready(const char *sock, pid_t pid)
{
    assert_true(h_wait_path(sock, 10000));
    for (int i = 0; i < PROBE_TRIES; i++) {
        assert_int_equal(h_status(sock, "GET", "/_/health"), 200);
        assert_int_equal(h_status(sock, "GET", "/_/ready"), 503);
        assert_int_equal(waitpid(pid, NULL, WNOHANG), 0);
        usleep(50000);
    }
}

static int setup(void **state)
{
    static struct world w;
    char src[512], dst[400];
    if (h_init(&w.h) < 0)
        return -1;
    h_path(&w.h, "store.sock", w.store_sock, sizeof(w.store_sock));
    h_path(&w.h, "images", w.dir, sizeof(w.dir));
    h_path(&w.h, "models", w.models, sizeof(w.models));
    mkdir(w.models, 0755);
    snprintf(dst, sizeof(dst), "%s/known_answer.onnx", w.models);
    if (h_copy(h_zoo("known_answer/model.onnx", src, sizeof(src)), dst) < 0) {
        h_cleanup(&w.h);
        return -1;
    }
    *state = &w;
    return 0;
}

static int teardown(void **state)
{
    struct world *w = *state;
    h_cleanup(&w->h);
    return 0;
}

static void health_while_attaching(void **state)
{
    struct world *w = *state;
    pid_t store = start_store(w);
    assert_true(store > 0);
    /* Stopped, the store still accepts connections (the kernel's backlog) but answers nothing:
     * the instance's ATTACH waits exactly as it would for a long compile. */
    assert_int_equal(kill(store, SIGSTOP), 0);
    char sock[300];
    pid_t fn = spawn_fn(w, "attaching.sock", sock, sizeof(sock));
    assert_true(fn > 0);
    assert_alive_not_ready(sock, fn);
    assert_int_equal(kill(store, SIGCONT), 0);
    assert_true(h_wait_ready(sock, fn, READY_BOUND_MS));
    assert_int_equal(h_status(sock, "GET", "/_/health"), 200);
    assert_int_equal(h_status(sock, "POST", "/_/health"), 405);
    h_kill(&w->h, fn);
    h_kill(&w->h, store);
}

static void ready_when_the_store_arrives(void **state)
{
    struct world *w = *state;
    unlink(w->store_sock);
    char sock[300];
    pid_t fn = spawn_fn(w, "late.sock", sock, sizeof(sock));
    assert_true(fn > 0);
    assert_alive_not_ready(sock, fn);
    pid_t store = start_store(w);
    assert_true(store > 0);
    assert_true(h_wait_ready(sock, fn, READY_BOUND_MS));
    /* It serves: the zoo's own input gets an answer. */
    char path[512];
    size_t cap = 1 << 20;
    char *body = malloc(cap);
    FILE *f = fopen(h_zoo("known_answer/input.json", path, sizeof(path)), "r");
    assert_true(body && f);
    size_t n = fread(body, 1, cap, f);
    fclose(f);
    assert_true(n > 0 && n < cap);
    struct h_reply r;
    h_http(sock, "POST", "/", body, n, NULL, &r);
    free(body);
    free(r.body);
    assert_int_equal(r.status, 200);
    h_kill(&w->h, fn);
    h_kill(&w->h, store);
}

static void sigterm_while_waiting_for_the_store(void **state)
{
    struct world *w = *state;
    unlink(w->store_sock);
    char sock[300];
    pid_t fn = spawn_fn(w, "term.sock", sock, sizeof(sock));
    assert_true(fn > 0);
    assert_alive_not_ready(sock, fn);
    assert_int_equal(kill(fn, SIGTERM), 0);
    int st = h_wait_exit(&w->h, fn, 10000);
    assert_true(st != -1 && WIFEXITED(st));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(health_while_attaching),
        cmocka_unit_test(ready_when_the_store_arrives),
        cmocka_unit_test(sigterm_while_waiting_for_the_store),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
