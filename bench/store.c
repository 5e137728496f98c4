/*
 * bench/store — attach latency of a resident model vs a cold compile, through the real
 * shmfaas-store and the client library (what a function instance pays at start).
 *
 *   build/bench/store [--model FILE.onnx] [--n N] [--cold K] [--threads T] [--store BIN]
 *
 * Starts a store on a fresh /dev/shm/shmfaas-bench-XXXXXX directory (removed at exit), measures
 * K cold attaches (compile + image write; the image is evicted between them) and N attach+detach
 * round trips of the resident image (attach timed: request, fd passing, mmap), and prints p50/p99
 * with the command that produced them. Goal (issue 3): resident attach p50 ≤ 1 ms.
 */
#include "config.h"

#include "client/client.h"
#include "common/common.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct bench {
    const char *model;
    const char *store_bin;
    int n, cold, threads;
    char root[64], models[128], dir[128], sock[128];
    pid_t store;
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(double *v, int n, double p)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    int i = (int)(p * (n - 1) + 0.5);
    return v[i];
}

static int setup_dirs(struct bench *b)
{
    strcpy(b->root, "/dev/shm/shmfaas-bench-XXXXXX");
    if (!mkdtemp(b->root))
        return -errno;
    snprintf(b->models, sizeof(b->models), "%s/models", b->root);
    snprintf(b->dir, sizeof(b->dir), "%s/images", b->root);
    snprintf(b->sock, sizeof(b->sock), "%s/store.sock", b->root);
    if (mkdir_p(b->models, 0755) < 0)
        return -errno;
    uint8_t *data;
    size_t len;
    char err[512], to[256];
    int rc = read_file(b->model, 8ull << 30, &data, &len, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "bench/store: %s\n", err);
        return rc;
    }
    snprintf(to, sizeof(to), "%s/bench.onnx", b->models);
    rc = write_file_atomic(to, data, len, 0644, err, sizeof(err));
    free(data);
    return rc;
}

static int start_store(struct bench *b)
{
    b->store = fork();
    if (b->store < 0)
        return -errno;
    if (b->store == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execl(b->store_bin, b->store_bin, "--socket", b->sock, "--dir", b->dir, "--models",
              b->models, "--budget", "64GiB", "--log-level", "warn", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 400; i++) {
        struct store_client *c;
        if (store_connect(b->sock, &c, NULL, 0) == 0) {
            store_close(c);
            return 0;
        }
        struct timespec ts = {0, 25000000};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "bench/store: %s did not start\n", b->store_bin);
    return -ETIMEDOUT;
}

static void cleanup(struct bench *b)
{
    if (b->store > 0) {
        kill(b->store, SIGTERM);
        waitpid(b->store, NULL, 0);
    }
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", b->root);
    if (b->root[0] && system(cmd) != 0)
        fprintf(stderr, "bench/store: could not remove %s\n", b->root);
}

static int timed_attach(struct store_client *c, int threads, double *ms)
{
    const struct store_image *img;
    char err[1024];
    int64_t t0 = now_ns();
    int rc = store_attach(c, "bench", threads, &img, err, sizeof(err));
    *ms = (double)(now_ns() - t0) / 1e6;
    if (rc < 0) {
        fprintf(stderr, "bench/store: attach: %s\n", err);
        return rc;
    }
    return store_detach(c, img, err, sizeof(err));
}

static int run(struct bench *b, double *cold, double *warm)
{
    struct store_client *c;
    char err[512];
    if (store_connect(b->sock, &c, err, sizeof(err)) < 0) {
        fprintf(stderr, "bench/store: %s\n", err);
        return 1;
    }
    int rc = 0;
    for (int i = 0; i < b->cold && rc == 0; i++) {
        rc = timed_attach(c, b->threads, &cold[i]);
        if (rc == 0 && (rc = store_evict_model(c, "bench", err, sizeof(err))) < 0)
            fprintf(stderr, "bench/store: evict: %s\n", err);
    }
    double ignore;
    if (rc == 0)
        rc = timed_attach(c, b->threads, &ignore); /* make it resident again */
    for (int i = 0; i < b->n && rc == 0; i++)
        rc = timed_attach(c, b->threads, &warm[i]);
    store_close(c);
    return rc < 0;
}

static void print_command(int argc, char **argv)
{
    printf("command:");
    for (int i = 0; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\n");
}

int main(int argc, char **argv)
{
    static char default_model[512], default_store[512];
    snprintf(default_model, sizeof(default_model), "%s/tests/store/gemm_a.onnx",
             SHMFAAS_BUILD_ROOT);
    snprintf(default_store, sizeof(default_store), "%s/src/store/shmfaas-store",
             SHMFAAS_BUILD_ROOT);
    struct bench b = {
        .model = default_model, .store_bin = default_store, .n = 1000, .cold = 3, .threads = 1};
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'}, {"n", required_argument, NULL, 'n'},
        {"cold", required_argument, NULL, 'c'},  {"threads", required_argument, NULL, 't'},
        {"store", required_argument, NULL, 's'}, {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'm':
            b.model = optarg;
            break;
        case 'n':
            b.n = atoi(optarg);
            break;
        case 'c':
            b.cold = atoi(optarg);
            break;
        case 't':
            b.threads = atoi(optarg);
            break;
        case 's':
            b.store_bin = optarg;
            break;
        default:
            fprintf(stderr,
                    "usage: %s [--model FILE.onnx] [--n N] [--cold K] [--threads T] "
                    "[--store BIN]\n",
                    argv[0]);
            return 2;
        }
    }
    if (b.n < 1 || b.cold < 1 || b.threads < 1 || b.n > 1000000 || b.cold > 100) {
        fprintf(stderr, "bench/store: --n, --cold and --threads must be positive\n");
        return 2;
    }
    double *cold = calloc((size_t)b.cold, sizeof(double));
    double *warm = calloc((size_t)b.n, sizeof(double));
    int status = !cold || !warm || setup_dirs(&b) < 0 || start_store(&b) < 0;
    if (!status)
        status = run(&b, cold, warm);
    cleanup(&b);
    if (!status) {
        print_command(argc, argv);
        printf("model %s, %d thread(s)\n", b.model, b.threads);
        printf("cold attach (compile + write image), %d runs: p50 %.2f ms, max %.2f ms\n", b.cold,
               pct(cold, b.cold, 0.5), pct(cold, b.cold, 1.0));
        printf("resident attach (request + fd + mmap), %d runs: p50 %.3f ms, p99 %.3f ms "
               "(goal: p50 <= 1 ms)\n",
               b.n, pct(warm, b.n, 0.5), pct(warm, b.n, 0.99));
    }
    free(cold);
    free(warm);
    return status;
}
