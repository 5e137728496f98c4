/*
 * Memory of 8 instances of one function (issue 4, acceptance 2), summed over every instance's and
 * the store's PSS (/proc/PID/smaps_rollup):
 *   - serving from the store:   total ≤ 1 copy of the weights + 8 × (arena + 16 MiB);
 *   - idle past idle_release:   total ≤ 1 copy of the weights + 8 × 8 MiB;
 *   - the same 8 with --private: total ≥ 8 copies of the weights.
 * The model is zoo/resnet18 (weights ≈ 45 MiB). The test prints the sums.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "client/client.h"
#include "engine/engine.h"
#include "harness.h"

#define N_INSTANCES 8
#define MIB         ((uint64_t)1 << 20)
#define RAW_LEN     (3 * 224 * 224 * 4)

struct world {
    struct harness h;
    char store_sock[300];
    pid_t store;
    pid_t fns[N_INSTANCES];
    char socks[N_INSTANCES][300];
    uint64_t weights, arena;
};

static int start_store(struct world *w)
{
    w->store = h_start_store_with(&w->h, "resnet18", w->store_sock, sizeof(w->store_sock));
    return w->store > 0 ? 0 : -1;
}

/* Weights and arena bytes of the store's image, read through a lease of our own. */
static int model_sizes(struct world *w)
{
    struct store_client *c = NULL;
    const struct store_image *img = NULL;
    struct engine_model *m = NULL;
    char err[512];
    int rc = store_connect(w->store_sock, &c, err, sizeof(err));
    if (rc == 0)
        rc = store_attach(c, "resnet18", 1, &img, err, sizeof(err));
    if (rc == 0)
        rc = engine_model_open_parts(img->addr, img->size, img->weights, img->weights_size, &m,
                                     err, sizeof(err));
    if (rc == 0) {
        w->weights = engine_model_weights_size(m);
        w->arena = engine_model_arena_size(m);
        engine_model_close(m);
    } else {
        fprintf(stderr, "model sizes: %s\n", err);
    }
    store_close(c);
    return rc;
}

static int setup(void **state)
{
    static struct world w;
    if (h_init(&w.h) < 0 || start_store(&w) < 0 || model_sizes(&w) < 0) {
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

/* Starts the 8 one after another (a --private start compiles; one at a time bounds the peak). */
static void start_instances(struct world *w, bool private)
{
    char bin[512], store_env[320], onnx[512];
    snprintf(store_env, sizeof(store_env), "store_socket=%s", w->store_sock);
    h_zoo("resnet18/model.onnx", onnx, sizeof(onnx));
    for (int i = 0; i < N_INSTANCES; i++) {
        char name[32], listen[320];
        snprintf(name, sizeof(name), "%s%d.sock", private ? "p" : "s", i);
        h_path(&w->h, name, w->socks[i], sizeof(w->socks[i]));
        snprintf(listen, sizeof(listen), "unix:%s", w->socks[i]);
        const char *env[] = {"model=resnet18", store_env,         "input=raw",
                             "output=topk",    "idle_release=1s", NULL};
        char *argv[] = {(char *)h_bin("src/fn/shmfaas-fn", bin, sizeof(bin)),
                        "--listen",
                        listen,
                        private ? "--private" : NULL,
                        onnx,
                        NULL};
        w->fns[i] = h_spawn(&w->h, argv, env);
        assert_true(h_wait_ready(w->socks[i], w->fns[i], 120000));
    }
}

static void one_request_each(struct world *w)
{
    uint8_t *raw = calloc(1, RAW_LEN);
    for (int i = 0; i < N_INSTANCES; i++) {
        struct h_reply r;
        h_http(w->socks[i], "POST", "/", raw, RAW_LEN, NULL, &r);
        assert_int_equal(r.status, 200);
        free(r.body);
    }
    free(raw);
}

static uint64_t pss_sum(struct world *w, bool with_store)
{
    uint64_t sum = 0;
    struct proc_mem m;
    for (int i = 0; i < N_INSTANCES; i++) {
        assert_int_equal(proc_mem_read(w->fns[i], &m), 0);
        sum += m.pss;
    }
    if (with_store) {
        assert_int_equal(proc_mem_read(w->store, &m), 0);
        sum += m.pss;
    }
    return sum;
}

static void stop_instances(struct world *w)
{
    for (int i = 0; i < N_INSTANCES; i++)
        h_kill(&w->h, w->fns[i]);
}

static void eight_instances_share_one_copy(void **state)
{
    struct world *w = *state;
    start_instances(w, false);
    one_request_each(w);
    uint64_t busy = pss_sum(w, true);
    uint64_t busy_limit = w->weights + N_INSTANCES * (w->arena + 16 * MIB);
    /* idle_release is 1 s; the worker releases within a few ms of it. */
    usleep(2500 * 1000);
    uint64_t idle = pss_sum(w, true);
    uint64_t idle_limit = w->weights + N_INSTANCES * 8 * MIB;
    printf("weights %.1f MiB, arena %.1f MiB\n", (double)w->weights / MIB, (double)w->arena / MIB);
    printf("8 instances + store, serving: PSS %.1f MiB (limit %.1f MiB)\n", (double)busy / MIB,
           (double)busy_limit / MIB);
    printf("8 instances + store, idle:    PSS %.1f MiB (limit %.1f MiB)\n", (double)idle / MIB,
           (double)idle_limit / MIB);
    stop_instances(w);
    assert_true(busy <= busy_limit);
    assert_true(idle <= idle_limit);
}

static void eight_private_instances_cost_eight_copies(void **state)
{
    struct world *w = *state;
    start_instances(w, true);
    one_request_each(w);
    uint64_t sum = pss_sum(w, false);
    printf("8 instances --private:        PSS %.1f MiB (at least %.1f MiB)\n", (double)sum / MIB,
           (double)(N_INSTANCES * w->weights) / MIB);
    stop_instances(w);
    assert_true(sum >= N_INSTANCES * w->weights);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(eight_instances_share_one_copy),
        cmocka_unit_test(eight_private_instances_cost_eight_copies),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
