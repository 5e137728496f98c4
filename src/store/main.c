/*
 * shmfaas-store — the per-node model store: compiles each ONNX model once into a plan image in
 * tmpfs and hands every function instance a read-only fd of it. See docs/store.md.
 *
 *   shmfaas-store [--socket PATH] [--dir DIR] [--models DIR] [--budget SIZE] [--threads N]
 *                 [--allow-uid UID[-UID][,...]] [--max-conns-per-uid N] [--threads-allowed LIST]
 *                 [--refusal-backoff DUR] [--refusal-backoff-max DUR] [--keep-images]
 *                 [--metrics HOST:PORT] [--log-level LEVEL] [--no-warm-cache]
 *                 [--disk-dir DIR] [--disk-budget SIZE] [--policy gdsf|lru]
 *                 [--huge-pages auto|on|off]
 *   shmfaas-store ls | stats | evict MODEL | attach MODEL | prepare MODEL
 *                 [--socket PATH] [--threads N]
 *   shmfaas-store purge [--dir DIR]
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
#include <unistd.h>

#define DEFAULT_SOCKET        "/run/shmfaas/store.sock"
#define DEFAULT_DIR           "/dev/shm/shmfaas"
#define DEFAULT_MODELS        "/var/lib/shmfaas/models"
#define DEFAULT_BUDGET        (1ull << 30)
#define DEFAULT_CONNS_PER_UID 128 /* twice the gateway's replica cap: an instance holds one */
#define DEFAULT_BACKOFF_MS    30000
#define DEFAULT_BACKOFF_MAX   600000

static void usage(FILE *f)
{
    fprintf(f,
            "usage: shmfaas-store [options]                 run the store (foreground)\n"
            "       shmfaas-store ls|stats [--socket PATH]   list models / show figures\n"
            "       shmfaas-store evict MODEL [--socket PATH]\n"
            "       shmfaas-store attach MODEL [--socket PATH] [--threads N]  hold a lease until "
            "SIGINT\n"
            "       shmfaas-store prepare MODEL [--socket PATH] [--threads N]  compile ahead: "
            "returns\n"
            "                     once the image is resident, holding no lease\n"
            "       shmfaas-store purge [--dir DIR]   remove what a stopped or crashed store left\n"
            "options:\n"
            "  --socket PATH      unix socket (default " DEFAULT_SOCKET ")\n"
            "  --dir DIR          tmpfs directory for images (default " DEFAULT_DIR ")\n"
            "  --models DIR       where model names resolve (default " DEFAULT_MODELS ")\n"
            "  --budget SIZE      memory budget for images, e.g. 2GiB, 512Mi (default 1Gi)\n"
            "  --disk-dir DIR     disk tier: compiled images also kept here (local disk), so a\n"
            "                     miss in RAM reads the image back instead of compiling (off)\n"
            "  --disk-budget SIZE bytes of the disk tier (default 4 x --budget)\n"
            "  --policy P         eviction in both tiers: gdsf (Greedy-Dual-Size-Frequency:\n"
            "                     clock + uses x reload seconds / size, default) or lru\n"
            "  --threads N        thread count to compile for when a client gives none (1)\n"
            "  --threads-allowed LIST  thread counts a client may ask for (default 1..nproc)\n"
            "  --allow-uid LIST   uids and ranges that may attach, e.g. 1000,200000-265535\n"
            "                     (own uid and root always); others are closed at accept\n"
            "  --max-conns-per-uid N  connections one uid may hold (default 128)\n"
            "  --refusal-backoff DUR  how long a refused model is answered from memory (30s;\n"
            "                     doubles on each repeat up to --refusal-backoff-max, 10m)\n"
            "  --huge-pages MODE  auto|on|off: images in 2 MiB pages, on a tmpfs the store\n"
            "                     mounts at --dir with huge=within_size (root only; auto falls\n"
            "                     back to small pages, saying why once; default auto)\n"
            "  --keep-images      a clean stop leaves the images for the next start (default:\n"
            "                     removed; a crash always leaves them for re-adoption)\n"
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

/* "1000", "200000-265535", comma-separated; every range first <= last. */
static int parse_allow(struct store_config *cfg, const char *list)
{
    char buf[1024];
    if (strlen(list) >= sizeof(buf))
        return -EINVAL;
    strcpy(buf, list);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        long first, last;
        char *dash = strchr(tok, '-');
        if (dash)
            *dash = '\0';
        if (parse_int(tok, 0, 0x7fffffff, &first) < 0 ||
            parse_int(dash ? dash + 1 : tok, 0, 0x7fffffff, &last) < 0 || last < first ||
            cfg->n_allow >= STORE_MAX_ALLOW)
            return -EINVAL;
        cfg->allow[cfg->n_allow++] = (struct uid_range){(uid_t)first, (uid_t)last};
    }
    return 0;
}

/* "1,2,4": the thread counts an ATTACH may ask for, each 1..PROTO_MAX_THREADS. */
static int parse_threads_allowed(struct store_config *cfg, const char *list)
{
    char buf[256];
    if (strlen(list) >= sizeof(buf))
        return -EINVAL;
    strcpy(buf, list);
    char *save = NULL;
    cfg->n_threads_allowed = 0;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        long v;
        if (parse_int(tok, 1, PROTO_MAX_THREADS, &v) < 0 ||
            cfg->n_threads_allowed >= STORE_MAX_THREADS)
            return -EINVAL;
        cfg->threads_allowed[cfg->n_threads_allowed++] = (int)v;
    }
    return cfg->n_threads_allowed ? 0 : -EINVAL;
}

static int parse_backoff(const char *arg, int64_t *out)
{
    return parse_duration_ms(arg, out) < 0 || *out < 0 ? -EINVAL : 0;
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
    OPT_NO_WARM,
    OPT_CONNS_PER_UID,
    OPT_THREADS_ALLOWED,
    OPT_BACKOFF,
    OPT_BACKOFF_MAX,
    OPT_KEEP_IMAGES,
    OPT_DISK_DIR,
    OPT_DISK_BUDGET,
    OPT_POLICY,
    OPT_HUGE_PAGES
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
    case OPT_CONNS_PER_UID:
        if (parse_int(arg, 1, 4096, &v) < 0)
            return -EINVAL;
        cfg->max_conns_per_uid = (int)v;
        return 0;
    case OPT_THREADS_ALLOWED:
        return parse_threads_allowed(cfg, arg);
    case OPT_BACKOFF:
        return parse_backoff(arg, &cfg->refusal_backoff_ms);
    case OPT_BACKOFF_MAX:
        return parse_backoff(arg, &cfg->refusal_backoff_max_ms);
    case OPT_KEEP_IMAGES:
        cfg->keep_images = 1;
        return 0;
    case OPT_HUGE_PAGES:
        return huge_pages_parse(arg, &cfg->huge_pages);
    case OPT_DISK_DIR:
        cfg->disk_dir = arg;
        return 0;
    case OPT_DISK_BUDGET:
        return parse_size(arg, &cfg->disk_budget) < 0 || cfg->disk_budget == 0 ? -EINVAL : 0;
    case OPT_POLICY:
        return catalog_policy_parse(arg, &cfg->policy);
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
        {"max-conns-per-uid", required_argument, NULL, OPT_CONNS_PER_UID},
        {"threads-allowed", required_argument, NULL, OPT_THREADS_ALLOWED},
        {"refusal-backoff", required_argument, NULL, OPT_BACKOFF},
        {"refusal-backoff-max", required_argument, NULL, OPT_BACKOFF_MAX},
        {"keep-images", no_argument, NULL, OPT_KEEP_IMAGES},
        {"disk-dir", required_argument, NULL, OPT_DISK_DIR},
        {"disk-budget", required_argument, NULL, OPT_DISK_BUDGET},
        {"policy", required_argument, NULL, OPT_POLICY},
        {"huge-pages", required_argument, NULL, OPT_HUGE_PAGES},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct store_config cfg = {
        .socket_path = DEFAULT_SOCKET,
        .dir = DEFAULT_DIR,
        .models = DEFAULT_MODELS,
        .budget = DEFAULT_BUDGET,
        .threads = 0,
        .max_conns_per_uid = DEFAULT_CONNS_PER_UID,
        .refusal_backoff_ms = DEFAULT_BACKOFF_MS,
        .refusal_backoff_max_ms = DEFAULT_BACKOFF_MAX,
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
        int needs_model =
            !strcmp(cmd, "evict") || !strcmp(cmd, "attach") || !strcmp(cmd, "prepare");
        if (argc - optind != 1 + needs_model) {
            usage(stderr);
            return 2;
        }
        if (!strcmp(cmd, "purge"))
            return store_purge(cfg.dir);
        return store_cmd(cmd, cfg.socket_path, model, cfg.threads);
    }
    if (cfg.threads == 0)
        cfg.threads = 1;
    if (cfg.disk_budget == 0)
        cfg.disk_budget = cfg.budget > UINT64_MAX / 4 ? UINT64_MAX : cfg.budget * 4;
    long nproc = sysconf(_SC_NPROCESSORS_ONLN);
    cfg.max_threads = nproc < 1 ? 1 : nproc > PROTO_MAX_THREADS ? PROTO_MAX_THREADS : (int)nproc;
    if (cfg.refusal_backoff_max_ms < cfg.refusal_backoff_ms)
        cfg.refusal_backoff_max_ms = cfg.refusal_backoff_ms;
    if (!store_threads_allowed(&cfg, cfg.threads)) {
        fprintf(stderr, "shmfaas-store: --threads %d is not an allowed thread count (%s)\n",
                cfg.threads, cfg.n_threads_allowed ? "--threads-allowed" : "1..nproc");
        return 2;
    }
#ifdef __GLIBC__
    /* Compiles (on the worker thread) allocate and free buffers of many MiB. With glibc's
     * default, the mmap threshold grows to their size, later ones come from the thread's arena,
     * and its top is never trimmed: the daemon would keep the largest compile's peak resident.
     * A fixed threshold sends them to mmap and back to the kernel at free. */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
#endif
    return store_run(&cfg);
}
