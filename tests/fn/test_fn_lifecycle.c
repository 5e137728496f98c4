/*
 * shmfaas-fn under pressure and change (issue 4, acceptance 4 and the limits): real store, real
 * instances, libcurl.
 *   - kill -9 of the store while a client keeps sending requests: no request fails, and after the
 *     store restarts the instances' leases are back (store stats);
 *   - max_inflight: a second request while one runs gets 429, and so does /_/ready;
 *   - X-Timeout shorter than an inference gets 504, and the instance keeps serving;
 *   - SIGTERM while a request runs: that request still gets its 200, the process exits 0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

#include "client/client.h"
#include "harness.h"

struct world {
    struct harness h;
    char store_sock[300], dir[300], models[300];
    pid_t store;
};

static pid_t start_store(struct world *w)
{
    return h_start_store(&w->h, w->store_sock, w->dir, w->models);
}

static int copy_model(struct world *w, const char *name)
{
    char src[512], dst[400], rel[64];
    snprintf(rel, sizeof(rel), "%s/model.onnx", name);
    snprintf(dst, sizeof(dst), "%s/%s.onnx", w->models, name);
    return h_copy(h_zoo(rel, src, sizeof(src)), dst);
}

static pid_t start_fn(struct world *w, const char *model, const char *name, char *sock,
                      size_t socklen, const char *extra)
{
    char bin[512], listen[320], store_env[320], model_env[64];
    h_path(&w->h, name, sock, socklen);
    snprintf(listen, sizeof(listen), "unix:%s", sock);
    snprintf(store_env, sizeof(store_env), "store_socket=%s", w->store_sock);
    snprintf(model_env, sizeof(model_env), "model=%s", model);
    const char *env[] = {model_env, store_env, "input=raw", "output=topk", extra, NULL};
    char *argv[] = {(char *)h_bin("src/fn/shmfaas-fn", bin, sizeof(bin)), "--listen", listen, NULL};
    pid_t pid = h_spawn(&w->h, argv, env);
    return h_wait_ready(sock, pid, 120000) ? pid : -1;
}

static int setup(void **state)
{
    static struct world w;
    if (h_init(&w.h) < 0)
        return -1;
    h_path(&w.h, "store.sock", w.store_sock, sizeof(w.store_sock));
    h_path(&w.h, "images", w.dir, sizeof(w.dir));
    h_path(&w.h, "models", w.models, sizeof(w.models));
    mkdir(w.models, 0755);
    if (copy_model(&w, "known_answer") < 0 || copy_model(&w, "resnet18") < 0 ||
        (w.store = start_store(&w)) < 0) {
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

#define RAW_LEN (3 * 224 * 224 * 4)

/* ---- a client that keeps sending requests ---- */

struct loop {
    const char *socks[2];
    atomic_bool stop;
    atomic_int ok, failed;
    long last_bad_status;
};

static void *client_loop(void *arg)
{
    struct loop *l = arg;
    uint8_t *raw = calloc(1, RAW_LEN);
    for (int i = 0; !atomic_load(&l->stop); i++) {
        struct h_reply r;
        h_http(l->socks[i % 2], "POST", "/", raw, RAW_LEN, NULL, &r);
        if (r.status == 200) {
            atomic_fetch_add(&l->ok, 1);
        } else {
            l->last_bad_status = r.status;
            atomic_fetch_add(&l->failed, 1);
        }
        free(r.body);
    }
    free(raw);
    return NULL;
}

static int wait_ok(struct loop *l, int more)
{
    int target = atomic_load(&l->ok) + more;
    for (int t = 0; t < 30000 && atomic_load(&l->ok) < target; t += 10)
        usleep(10000);
    return atomic_load(&l->ok) >= target ? 0 : -1;
}

/* Total leases the store reports, or -1 while it cannot be asked. */
static int store_leases(const char *sock)
{
    struct store_client *c = NULL;
    char *text = NULL;
    if (store_connect(sock, &c, NULL, 0) < 0)
        return -1;
    int leases = -1;
    if (store_stats(c, &text, NULL, 0) == 0) {
        json_t *j = json_loads(text, 0, NULL);
        json_t *n = json_object_get(json_object_get(j, "totals"), "leases");
        leases = n ? (int)json_integer_value(n) : -1;
        json_decref(j);
    }
    free(text);
    store_close(c);
    return leases;
}

static void store_kill9_loses_no_request(void **state)
{
    struct world *w = *state;
    char a[300], b[300];
    assert_true(start_fn(w, "known_answer", "a.sock", a, sizeof(a), NULL) > 0);
    assert_true(start_fn(w, "known_answer", "b.sock", b, sizeof(b), NULL) > 0);
    assert_int_equal(store_leases(w->store_sock), 2);
    struct loop l = {.socks = {a, b}};
    pthread_t t;
    pthread_create(&t, NULL, client_loop, &l);
    assert_int_equal(wait_ok(&l, 20), 0);

    h_kill(&w->h, w->store);
    assert_int_equal(wait_ok(&l, 20), 0); /* serving with no store at all */
    w->store = start_store(w);
    assert_true(w->store > 0);
    int leases = -1;
    for (int i = 0; i < 300 && leases != 2; i++, usleep(100000))
        leases = store_leases(w->store_sock);
    assert_int_equal(wait_ok(&l, 20), 0);
    atomic_store(&l.stop, true);
    pthread_join(t, NULL);
    printf("store kill -9: %d requests ok, %d failed (last bad status %ld), leases after restart "
           "%d\n",
           atomic_load(&l.ok), atomic_load(&l.failed), l.last_bad_status, leases);
    assert_int_equal(atomic_load(&l.failed), 0);
    assert_int_equal(leases, 2);
}

/* ---- limits ---- */

struct one_request {
    const char *sock;
    const char *header;
    long status;
};

static void *send_one(void *arg)
{
    struct one_request *o = arg;
    uint8_t *raw = calloc(1, RAW_LEN);
    struct h_reply r;
    h_http(o->sock, "POST", "/", raw, RAW_LEN, o->header, &r);
    o->status = r.status;
    free(r.body);
    free(raw);
    return NULL;
}

/* Waits until the instance reports itself busy (a request is in flight with max_inflight 1). */
static bool wait_busy(const char *sock, struct one_request *o)
{
    for (int i = 0; i < 3000 && o->status == 0; i++) {
        if (h_status(sock, "GET", "/_/ready") == 429)
            return true;
        usleep(1000);
    }
    return false;
}

static void max_inflight_and_exec_timeout(void **state)
{
    struct world *w = *state;
    char s[300];
    assert_true(start_fn(w, "resnet18", "r.sock", s, sizeof(s), "max_inflight=1") > 0);
    /* resnet18 takes far longer than 1 ms per inference on any CPU this runs on. */
    struct one_request quick = {.sock = s, .header = "X-Timeout: 1ms"};
    send_one(&quick);
    assert_int_equal(quick.status, 504);

    bool saw_429 = false;
    for (int round = 0; round < 20 && !saw_429; round++) {
        struct one_request slow = {.sock = s};
        pthread_t t;
        pthread_create(&t, NULL, send_one, &slow);
        if (wait_busy(s, &slow)) {
            struct one_request second = {.sock = s};
            send_one(&second);
            saw_429 = second.status == 429 || slow.status == 0;
            if (slow.status == 0)
                assert_int_equal(second.status, 429);
        }
        pthread_join(t, NULL);
        assert_int_equal(slow.status, 200);
    }
    assert_true(saw_429);
    struct one_request after = {.sock = s};
    send_one(&after);
    assert_int_equal(after.status, 200);
}

static void sigterm_drains_in_flight(void **state)
{
    struct world *w = *state;
    char s[300];
    pid_t pid = start_fn(w, "resnet18", "d.sock", s, sizeof(s), "max_inflight=1");
    assert_true(pid > 0);
    struct one_request slow = {.sock = s};
    pthread_t t;
    pthread_create(&t, NULL, send_one, &slow);
    assert_true(wait_busy(s, &slow));
    kill(pid, SIGTERM);
    pthread_join(t, NULL);
    assert_int_equal(slow.status, 200);
    int st = h_wait_exit(&w->h, pid, 30000);
    assert_true(st >= 0 && WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(access(s, F_OK), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(store_kill9_loses_no_request),
        cmocka_unit_test(max_inflight_and_exec_timeout),
        cmocka_unit_test(sigterm_drains_in_flight),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
