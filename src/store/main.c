/*
 * shmfaas-store — the per-node model store: compiles each ONNX model once into a plan image in
 * tmpfs and hands every function instance a read-only fd of it. See docs/store.md.
 *
 *   shmfaas-store [--socket PATH] [--dir DIR] [--models DIR] [--budget SIZE] [--threads N]
 *                 [--allow-uid UID[,UID...]] [--metrics HOST:PORT] [--log-level LEVEL]
 *                 [--no-warm-cache]
 *   shmfaas-store ls | stats | evict MODEL | attach MODEL   [--socket PATH] [--threads N]
 */
#include "store/store.h"

#include <errno.h>
#include <getopt.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_SOCKET "/run/shmfaas/store.sock"
#define DEFAULT_DIR    "/dev/shm/shmfaas"
#define DEFAULT_MODELS "/var/lib/shmfaas/models"
#define DEFAULT_BUDGET (1ull << 30)

static void usage(FILE *f)
{
    fprintf(f,
            "usage: shmfaas-store [options]                 run the store (foreground)\n"
            "       shmfaas-store ls|stats [--socket PATH]   list models / show figures\n"
            "       shmfaas-store evict MODEL [--socket PATH]\n"
            "       shmfaas-store attach MODEL [--socket PATH] [--threads N]  hold a lease until "
            "SIGINT\n"
            "options:\n"
            "  --socket PATH      unix socket (default " DEFAULT_SOCKET ")\n"
            "  --dir DIR          tmpfs directory for images (default " DEFAULT_DIR ")\n"
            "  --models DIR       where model names resolve (default " DEFAULT_MODELS ")\n"
            "  --budget SIZE      memory budget for images, e.g. 2GiB, 512Mi (default 1Gi)\n"
            "  --threads N        thread count to compile for when a client gives none (1)\n"
            "  --allow-uid LIST   comma-separated uids that may attach (own uid and root always)\n"
            "  --metrics ADDR     serve Prometheus text on HOST:PORT (e.g. 127.0.0.1:9101)\n"
            "  --log-level LEVEL  debug|info|warn|error|off (default info)\n"
            "  --no-warm-cache    evict an image when its last lease is released (no LRU cache;\n"
            "                     the baseline bench/eviction compares LRU against)\n");
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi)
        return -EINVAL;
    *out = v;
    return 0;
}

static int parse_allow(struct store_config *cfg, const char *list)
{
    char buf[1024];
    if (strlen(list) >= sizeof(buf))
        return -EINVAL;
    strcpy(buf, list);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        long uid;
        if (parse_int(tok, 0, 0x7fffffff, &uid) < 0 || cfg->n_allow >= STORE_MAX_ALLOW)
            return -EINVAL;
        cfg->allow[cfg->n_allow++] = (uid_t)uid;
    }
    return 0;
}

enum {
    OPT_SOCKET = 256,
    OPT_DIR,
    OPT_MODELS,
    OPT_BUDGET,
    OPT_THREADS,
    OPT_ALLOW,
    OPT_METRICS,
    OPT_LOG,
    OPT_NO_WARM
};

static int parse_opt(struct store_config *cfg, int opt, const char *arg)
{
    long v;
    enum log_level level;
    switch (opt) {
    case OPT_SOCKET:
        cfg->socket_path = arg;
        return 0;
    case OPT_DIR:
        cfg->dir = arg;
        return 0;
    case OPT_MODELS:
        cfg->models = arg;
        return 0;
    case OPT_METRICS:
        cfg->metrics = arg;
        return 0;
    case OPT_NO_WARM:
        cfg->no_warm_cache = 1;
        return 0;
    case OPT_BUDGET:
        if (parse_size(arg, &cfg->budget) < 0)
            return -EINVAL;
        return 0;
    case OPT_THREADS:
        if (parse_int(arg, 1, PROTO_MAX_THREADS, &v) < 0)
            return -EINVAL;
        cfg->threads = (int)v;
        return 0;
    case OPT_ALLOW:
        return parse_allow(cfg, arg);
    case OPT_LOG:
        if (log_parse_level(arg, &level) < 0)
            return -EINVAL;
        log_set_level(level);
        return 0;
    default:
        return -EINVAL;
    }
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, OPT_SOCKET},
        {"dir", required_argument, NULL, OPT_DIR},
        {"models", required_argument, NULL, OPT_MODELS},
        {"budget", required_argument, NULL, OPT_BUDGET},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"allow-uid", required_argument, NULL, OPT_ALLOW},
        {"metrics", required_argument, NULL, OPT_METRICS},
        {"log-level", required_argument, NULL, OPT_LOG},
        {"no-warm-cache", no_argument, NULL, OPT_NO_WARM},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct store_config cfg = {
        .socket_path = DEFAULT_SOCKET,
        .dir = DEFAULT_DIR,
        .models = DEFAULT_MODELS,
        .budget = DEFAULT_BUDGET,
        .threads = 0,
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (opt == 'h') {
            usage(stdout);
            return 0;
        }
        if (opt == '?' || parse_opt(&cfg, opt, optarg) < 0) {
            if (opt != '?')
                fprintf(stderr, "shmfaas-store: invalid value for --%s: %s\n",
                        opts[opt - OPT_SOCKET].name, optarg);
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        const char *cmd = argv[optind];
        const char *model = optind + 1 < argc ? argv[optind + 1] : NULL;
        int needs_model = !strcmp(cmd, "evict") || !strcmp(cmd, "attach");
        if (argc - optind != 1 + needs_model) {
            usage(stderr);
            return 2;
        }
        return store_cmd(cmd, cfg.socket_path, model, cfg.threads);
    }
    if (cfg.threads == 0)
        cfg.threads = 1;
#ifdef __GLIBC__
    /* Compiles (on the worker thread) allocate and free buffers of many MiB. With glibc's
     * default, the mmap threshold grows to their size, later ones come from the thread's arena,
     * and its top is never trimmed: the daemon would keep the largest compile's peak resident.
     * A fixed threshold sends them to mmap and back to the kernel at free. */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
#endif
    return store_run(&cfg);
}
