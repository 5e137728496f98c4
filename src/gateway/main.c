/*
 * shmfaasd — the single-node OpenFaaS-compatible gateway and provider (DESIGN.md
 * "Gateway/provider").
 *
 *   shmfaasd --state DIR [--listen 127.0.0.1:8080] [--models DIR] [--budget SIZE]
 *            [--basic-auth DIR | --no-auth] [--store SOCKET] [--fn-bin PATH] [--store-bin PATH]
 *
 * Process table: this daemon (HTTP threads, one supervisor thread, one log reader per instance),
 * its shmfaas-store child (unless --store names a running store) and one shmfaas-fn per instance.
 * Order at start: flags → directories → reap what an earlier daemon left → probe isolation (forks)
 * → store → restore functions → threads. SIGINT/SIGTERM stop everything in reverse.
 */
#include "gateway/gateway.h"

#include "common/common.h"
#include "config.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(
        f, "usage: shmfaasd [options]\n"
           "  --listen ADDR         host:port or unix:PATH (default 127.0.0.1:8080; port 0 = any)\n"
           "  --state DIR           specs, instance sockets, logs (default /var/lib/shmfaas)\n"
           "  --models DIR          where model names resolve (default STATE/models)\n"
           "  --budget SIZE         the store's memory budget, e.g. 2GiB\n"
           "  --basic-auth DIR      basic auth from these files (basic-auth-user, -password);\n"
           "                        default: generated into STATE/secrets at the first start\n"
           "  --no-auth             no basic auth: /system/* open to anyone reaching --listen\n"
           "  --auth-functions      basic auth on /function/* too (default open, as OpenFaaS)\n"
           "  --header-timeout DUR  a request's whole header block must arrive within (10s)\n"
           "  --max-connections N   requests served at once (1024; beyond: 503)\n"
           "  --max-conns-per-addr N  open connections per client address (256; 0 = no cap)\n"
           "  --max-body-inflight SIZE  request-body bytes buffered at once (1GiB; beyond: 503)\n"
           "  --store PATH          use a running shmfaas-store on this socket\n"
           "  --store-dir DIR       image directory of our own store (default /dev/shm/shmfaas-*)\n"
           "  --fn-bin PATH         shmfaas-fn binary (default: next to shmfaasd, then PATH)\n"
           "  --store-bin PATH      shmfaas-store binary (default: next to shmfaasd, then PATH)\n"
           "  --hold DURATION       how long a request waits for an instance (default 30s)\n"
           "  --down-delay DURATION pace of scaling down, one instance per (default 5s)\n"
           "  --ready-timeout DUR   an instance not ready by then is killed (default 60s)\n"
           "  --max-body SIZE       largest request body (default 256Mi)\n"
           "  --run-as-root         do not drop instances to their function's uid when root\n"
           "  --uid-range FIRST-LAST  one uid (= gid) per function when root (default "
           "200000-265535)\n"
           "  --keep-images         our store keeps its images at a clean stop (default: removed)\n"
           "  --no-templates        start every instance by exec, never forked from a warm\n"
           "                        template of its function (default: templates on)\n"
           "  --disk-budget SIZE    our store's disk tier in STATE/images: compiled images kept on\n"
           "                        disk, read back instead of recompiled (default 4 x --budget;\n"
           "                        0 = none)\n"
           "  --async-workers N     threads running queued async calls (default 4, at most 64)\n"
           "  --async-retries N     more attempts for a failed run or callback (default 5)\n"
           "  --async-max-queue N   unfinished async calls at most (default 10000; then 429)\n"
           "  --async-max-bytes SIZE  bytes of queued calls at most (default 1GiB; then 429)\n"
           "  --callback-allow LIST hosts, addresses or ranges callbacks may go to, besides\n"
           "                        loopback (127.0.0.0/8, ::1, localhost): e.g. h.lan,10.0.0.0/8\n"
           "  --log-level LEVEL     debug|info|warn|error (default info)\n");
}

/* ---- finding our siblings ---- */

static bool executable(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* Next to this binary, in the build tree's ../<sub>/, or on PATH. */
static int find_program(const char *name, const char *sub, char *out, size_t len)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = '\0';
            if (snprintf(out, len, "%s/%s", self, name) < (int)len && executable(out))
                return 0;
            if (snprintf(out, len, "%s/../%s/%s", self, sub, name) < (int)len && executable(out))
                return 0;
        }
    }
    const char *path = getenv("PATH");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path ? path : "/usr/local/bin:/usr/bin:/bin");
    for (char *save, *dir = strtok_r(buf, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        if (snprintf(out, len, "%s/%s", dir, name) < (int)len && executable(out))
            return 0;
    }
    return -ENOENT;
}

/* ---- configuration ---- */

static int set_str(char *dst, size_t len, const char *v, const char *flag)
{
    if (strlen(v) >= len) {
        fprintf(stderr, "shmfaasd: %s: value too long\n", flag);
        return -1;
    }
    snprintf(dst, len, "%s", v);
    return 0;
}

static int set_duration(int64_t *dst, const char *v, const char *flag)
{
    if (parse_duration_ms(v, dst)) {
        fprintf(stderr, "shmfaasd: %s: \"%s\" is not a duration (e.g. 30s, 500ms)\n", flag, v);
        return -1;
    }
    return 0;
}

enum {
    O_STORE_DIR = 256,
    O_FN_BIN,
    O_STORE_BIN,
    O_HOLD,
    O_DOWN,
    O_READY,
    O_MAXBODY,
    O_ROOT,
    O_LOG,
    O_UIDS,
    O_KEEP,
    O_DISK_BUDGET
};

/* "FIRST-LAST": uids that no account of the host should use; neither end may be 0 or 65534. */
static int set_uid_range(struct gateway *g, const char *v)
{
    unsigned long a, b;
    char *end;
    errno = 0;
    a = strtoul(v, &end, 10);
    if (*end == '-')
        b = strtoul(end + 1, &end, 10);
    else
        b = (unsigned long)-1;
    if (errno || *end || a == 0 || b < a || b >= 0x7fffffffUL || (a <= 65534 && b >= 65534)) {
        fprintf(stderr, "shmfaasd: --uid-range: \"%s\" must be FIRST-LAST, 0 < FIRST <= LAST < "
                        "2^31-1, not including 65534 (nobody)\n", v);
        return -1;
    }
    g->uid_first = (uid_t)a;
    g->uid_last = (uid_t)b;
    return 0;
}

/* The flags of async invocations (issue 14). */
enum { O_AWORKERS = 768, O_ARETRIES, O_AQUEUE, O_ABYTES, O_CBALLOW };
/* Instances forked from templates (issue 15). */
enum { O_NOTEMPLATES = 1024 };

static int set_int(int *dst, const char *v, int lo, int hi, const char *flag)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || !*v || *end || n < lo || n > hi) {
        fprintf(stderr, "shmfaasd: %s: \"%s\" must be a number from %d to %d\n", flag, v, lo, hi);
        return -1;
    }
    *dst = (int)n;
    return 0;
}

static int parse_async_flag(struct gateway *g, int c, const char *v)
{
    int n;
    uint64_t size;
    switch (c) {
    case O_AWORKERS:
        return set_int(&g->async_workers, v, 1, ASYNC_MAX_WORKERS, "--async-workers");
    case O_ARETRIES:
        return set_int(&g->async_retries, v, 0, 100, "--async-retries");
    case O_AQUEUE:
        if (set_int(&n, v, 1, 10000000, "--async-max-queue"))
            return -1;
        g->async_max_queue = (uint64_t)n;
        return 0;
    case O_ABYTES:
        if (parse_size(v, &size) || size < ((uint64_t)1 << 20)) {
            fprintf(stderr, "shmfaasd: --async-max-bytes: \"%s\" must be a size from 1MiB\n", v);
            return -1;
        }
        g->async_max_bytes = size;
        return 0;
    case O_CBALLOW:
        return set_str(g->callback_allow, sizeof g->callback_allow, v, "--callback-allow");
    default:
        return -1;
    }
}

/* The flags of auth and HTTP bounds (issue 12). */
enum { O_NOAUTH = 512, O_AUTHFN, O_HDRTIMEOUT, O_MAXCONN, O_PERADDR, O_INFLIGHT };

static int set_count(unsigned *dst, const char *v, unsigned lo, const char *flag)
{
    char *end;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (errno || !*v || *end || n < lo || n > 1000000) {
        fprintf(stderr, "shmfaasd: %s: \"%s\" must be a number from %u to 1000000\n", flag, v, lo);
        return -1;
    }
    *dst = (unsigned)n;
    return 0;
}

static int parse_bound_flag(struct gateway *g, int c, const char *v)
{
    uint64_t size;
    switch (c) {
    case O_NOAUTH:
        g->no_auth = true;
        return 0;
    case O_AUTHFN:
        g->auth_functions = true;
        return 0;
    case O_HDRTIMEOUT:
        if (set_duration(&g->header_timeout_ms, v, "--header-timeout"))
            return -1;
        if (g->header_timeout_ms < 100) {
            fprintf(stderr, "shmfaasd: --header-timeout: at least 100ms\n");
            return -1;
        }
        return 0;
    case O_MAXCONN:
        return set_count(&g->max_connections, v, 1, "--max-connections");
    case O_PERADDR:
        return set_count(&g->max_per_addr, v, 0, "--max-conns-per-addr");
    case O_INFLIGHT:
        if (parse_size(v, &size) || size < ((uint64_t)1 << 20) || size > ((uint64_t)1 << 40)) {
            fprintf(stderr, "shmfaasd: --max-body-inflight: \"%s\" must be a size from 1MiB\n", v);
            return -1;
        }
        g->max_body_inflight = (size_t)size;
        return 0;
    default:
        return -1;
    }
}

static int parse_flag(struct gateway *g, int c, const char *v)
{
    if (c == O_NOTEMPLATES) {
        g->no_templates = true;
        return 0;
    }
    if (c >= O_AWORKERS)
        return parse_async_flag(g, c, v);
    if (c >= O_NOAUTH)
        return parse_bound_flag(g, c, v);

    uint64_t size;
    enum log_level lvl;
    switch (c) {
    case 'l':
        return set_str(g->listen, sizeof g->listen, v, "--listen");
    case 's':
        return set_str(g->state, sizeof g->state, v, "--state");
    case 'm':
        return set_str(g->models, sizeof g->models, v, "--models");
    case 'b':
        if (parse_size(v, &size)) {
            fprintf(stderr, "shmfaasd: --budget: \"%s\" is not a size (e.g. 2GiB)\n", v);
            return -1;
        }
        return set_str(g->budget, sizeof g->budget, v, "--budget");
    case 'a':
        return set_str(g->auth_dir, sizeof g->auth_dir, v, "--basic-auth");
    case 'S':
        return set_str(g->store_sock, sizeof g->store_sock, v, "--store");
    case O_STORE_DIR:
        return set_str(g->store_dir, sizeof g->store_dir, v, "--store-dir");
    case O_FN_BIN:
        return set_str(g->fn_bin, sizeof g->fn_bin, v, "--fn-bin");
    case O_STORE_BIN:
        return set_str(g->store_bin, sizeof g->store_bin, v, "--store-bin");
    case O_HOLD:
        return set_duration(&g->hold_ms, v, "--hold");
    case O_DOWN:
        return set_duration(&g->down_delay_ms, v, "--down-delay");
    case O_READY:
        return set_duration(&g->ready_timeout_ms, v, "--ready-timeout");
    case O_MAXBODY:
        if (parse_size(v, &size) || size == 0 || size > (4ull << 30)) {
            fprintf(stderr, "shmfaasd: --max-body: \"%s\" must be a size up to 4GiB\n", v);
            return -1;
        }
        g->max_body = (size_t)size;
        return 0;
    case O_ROOT:
        g->as_root = true;
        return 0;
    case O_UIDS:
        return set_uid_range(g, v);
    case O_KEEP:
        g->keep_images = true;
        return 0;
    case O_DISK_BUDGET:
        if (strcmp(v, "0") != 0 && (parse_size(v, &size) || size == 0)) {
            fprintf(stderr, "shmfaasd: --disk-budget: \"%s\" is not a size (e.g. 8GiB; 0 = no "
                            "disk tier)\n",
                    v);
            return -1;
        }
        return set_str(g->disk_budget, sizeof g->disk_budget, v, "--disk-budget");
    case O_LOG:
        if (log_parse_level(v, &lvl)) {
            fprintf(stderr, "shmfaasd: --log-level: use debug, info, warn or error\n");
            return -1;
        }
        log_set_level(lvl);
        return 0;
    default:
        return -1;
    }
}

static int parse_flags(struct gateway *g, int argc, char **argv)
{
    static const struct option opts[] = {{"listen", required_argument, NULL, 'l'},
                                         {"state", required_argument, NULL, 's'},
                                         {"models", required_argument, NULL, 'm'},
                                         {"budget", required_argument, NULL, 'b'},
                                         {"basic-auth", required_argument, NULL, 'a'},
                                         {"no-auth", no_argument, NULL, O_NOAUTH},
                                         {"auth-functions", no_argument, NULL, O_AUTHFN},
                                         {"header-timeout", required_argument, NULL, O_HDRTIMEOUT},
                                         {"max-connections", required_argument, NULL, O_MAXCONN},
                                         {"max-conns-per-addr", required_argument, NULL, O_PERADDR},
                                         {"max-body-inflight", required_argument, NULL, O_INFLIGHT},
                                         {"store", required_argument, NULL, 'S'},
                                         {"store-dir", required_argument, NULL, O_STORE_DIR},
                                         {"fn-bin", required_argument, NULL, O_FN_BIN},
                                         {"store-bin", required_argument, NULL, O_STORE_BIN},
                                         {"hold", required_argument, NULL, O_HOLD},
                                         {"down-delay", required_argument, NULL, O_DOWN},
                                         {"ready-timeout", required_argument, NULL, O_READY},
                                         {"max-body", required_argument, NULL, O_MAXBODY},
                                         {"run-as-root", no_argument, NULL, O_ROOT},
                                         {"uid-range", required_argument, NULL, O_UIDS},
                                         {"keep-images", no_argument, NULL, O_KEEP},
                                         {"disk-budget", required_argument, NULL, O_DISK_BUDGET},
                                         {"log-level", required_argument, NULL, O_LOG},
                                         {"async-workers", required_argument, NULL, O_AWORKERS},
                                         {"async-retries", required_argument, NULL, O_ARETRIES},
                                         {"async-max-queue", required_argument, NULL, O_AQUEUE},
                                         {"async-max-bytes", required_argument, NULL, O_ABYTES},
                                         {"callback-allow", required_argument, NULL, O_CBALLOW},
                                         {"no-templates", no_argument, NULL, O_NOTEMPLATES},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            exit(0);
        }
        if (c == '?' || parse_flag(g, c, optarg)) {
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "shmfaasd: unexpected argument \"%s\"\n", argv[optind]);
        return -1;
    }
    return 0;
}

static void set_defaults(struct gateway *g)
{
    snprintf(g->listen, sizeof g->listen, "127.0.0.1:8080");
    snprintf(g->state, sizeof g->state, "/var/lib/shmfaas");
    g->hold_ms = 30000;
    g->down_delay_ms = 5000;
    g->ready_timeout_ms = 60000;
    g->max_body = (size_t)256 << 20;
    g->header_timeout_ms = 10000;
    g->max_connections = 1024;
    g->max_per_addr = 256;
    g->max_body_inflight = (size_t)1 << 30;
    g->uid_first = 200000; /* above useradd's first subordinate range (100000-165535) */
    g->uid_last = 265535;
    g->state_fd = g->pids_fd = g->run_fd = -1;
    g->async_workers = 4;
    g->async_retries = 5;
    g->async_max_queue = 10000;
    g->async_max_bytes = (uint64_t)1 << 30;
}

/* ---- directories, auth, programs ---- */

static int make_dir(char *path, size_t len, mode_t mode, char *err, size_t errlen)
{
    char real[PATH_MAX];
    if (mkdir_p(path, mode) != 0)
        return seterr(err, errlen, -errno, "cannot create %s: %s", path, strerror(errno));
    if (!realpath(path, real) || strlen(real) >= len)
        return seterr(err, errlen, -EINVAL, "cannot resolve %s", path);
    snprintf(path, len, "%s", real);
    return 0;
}

/* Empties a directory whose contents may have been planted by someone else: every entry is
 * unlinked (a symlink itself, never its target), subdirectories through O_NOFOLLOW fds. */
static void wipe_dir(int dfd, int depth)
{
    int fd = dup(dfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (unlinkat(dfd, e->d_name, 0) == 0 || errno != EISDIR || depth >= 8)
            continue;
        int sub = openat(dfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub >= 0) {
            wipe_dir(sub, depth + 1);
            close(sub);
        }
        unlinkat(dfd, e->d_name, AT_REMOVEDIR);
    }
    closedir(d);
}

/* What a directory that is not safe (someone else owns it or may write in it) gets at start. */
enum dir_policy {
    DIR_REFUSE, /* specs, logs: the operator must look at what is in it */
    DIR_WIPE,   /* sockets, pidfiles: taken back and emptied (what is in it is untrusted) */
};

static bool dir_safe(const struct stat *st)
{
    return S_ISDIR(st->st_mode) && st->st_uid == geteuid() && !(st->st_mode & 022);
}

/* Opens NAME under dirfd (created with mode if missing) as a directory of ours that nobody else
 * can write. Returns the O_DIRECTORY fd or -errno with err set. */
static int open_own_dir(int dirfd, const char *parent, const char *name, mode_t mode,
                        enum dir_policy policy, char *err, size_t errlen)
{
    const int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    struct stat st;
    if (mkdirat(dirfd, name, mode) != 0 && errno != EEXIST)
        return seterr(err, errlen, -errno, "cannot create %s/%s: %s", parent, name,
                      strerror(errno));
    int fd = openat(dirfd, name, flags);
    if (fd < 0 && policy == DIR_WIPE && (errno == ELOOP || errno == ENOTDIR) &&
        unlinkat(dirfd, name, 0) == 0 && mkdirat(dirfd, name, mode) == 0)
        fd = openat(dirfd, name, flags);
    if (fd < 0)
        return seterr(err, errlen, -errno, "%s/%s: %s (it must be a directory, not a symlink)",
                      parent, name, strerror(errno));
    if (fstat(fd, &st) == 0 && dir_safe(&st)) {
        if ((st.st_mode & 07777) != mode)
            fchmod(fd, mode);
        return fd;
    }
    if (policy == DIR_REFUSE) {
        close(fd);
        return seterr(err, errlen, -EPERM,
                      "%s/%s is owned by uid %d with mode %04o: it must belong to uid %d and be "
                      "writable by no one else; check what is in it, then chown/chmod it",
                      parent, name, (int)st.st_uid, (unsigned)(st.st_mode & 07777),
                      (int)geteuid());
    }
    log_warn("%s/%s was owned by uid %d with mode %04o: taking it back and emptying it", parent,
             name, (int)st.st_uid, (unsigned)(st.st_mode & 07777));
    if (fchown(fd, geteuid(), getegid()) != 0 || fchmod(fd, mode) != 0) {
        int e = errno;
        close(fd);
        return seterr(err, errlen, -e, "%s/%s: cannot take it back: %s", parent, name,
                      strerror(e));
    }
    wipe_dir(fd, 0);
    return fd;
}

/* The state directory and its subdirectories, all ours alone (issue 12): STATE 0711 (instances
 * pass through to the store's socket), functions/ logs/ pids/ run/ 0700. run/ holds only sockets
 * of the instances of this daemon's lifetime, so it is emptied at every start. */
static int prepare_dirs(struct gateway *g, char *err, size_t errlen)
{
    struct stat st;
    int rc = make_dir(g->state, sizeof g->state, 0711, err, errlen);
    if (rc)
        return rc;
    g->state_fd = open(g->state, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (g->state_fd < 0 || fstat(g->state_fd, &st) != 0)
        return seterr(err, errlen, -errno, "%s: %s", g->state, strerror(errno));
    if (st.st_uid != geteuid())
        return seterr(err, errlen, -EPERM,
                      "state directory %s belongs to uid %d, not to us (uid %d): refusing it",
                      g->state, (int)st.st_uid, (int)geteuid());
    if ((st.st_mode & 07777) != 0711) {
        if (st.st_mode & 022)
            log_warn("state directory %s was writable by others (mode %04o): now 0711", g->state,
                     (unsigned)(st.st_mode & 07777));
        fchmod(g->state_fd, 0711); /* instances (other uids) pass through to the store's socket */
    }
    if (!g->models[0] &&
        snprintf(g->models, sizeof g->models, "%s/models", g->state) >= (int)sizeof g->models)
        return seterr(err, errlen, -ENAMETOOLONG, "state path %s is too long", g->state);
    if ((rc = make_dir(g->models, sizeof g->models, 0755, err, errlen)))
        return rc;
    int fd = open_own_dir(g->state_fd, g->state, "functions", 0700, DIR_REFUSE, err, errlen);
    if (fd < 0)
        return fd;
    close(fd);
    if ((fd = open_own_dir(g->state_fd, g->state, "logs", 0700, DIR_REFUSE, err, errlen)) < 0)
        return fd;
    close(fd);
    g->pids_fd = open_own_dir(g->state_fd, g->state, "pids", 0700, DIR_WIPE, err, errlen);
    if (g->pids_fd < 0)
        return g->pids_fd;
    g->run_fd = open_own_dir(g->state_fd, g->state, "run", 0700, DIR_WIPE, err, errlen);
    if (g->run_fd < 0)
        return g->run_fd;
    wipe_dir(g->run_fd, 0); /* sockets of an earlier daemon (and, before issue 12, its pidfiles) */
    return 0;
}

/* The HTTP gate holds up to 4096 connections still sending their heads plus --max-connections
 * being served, each an fd: raise the soft limit towards that (within the hard limit). */
static void raise_fd_limit(const struct gateway *g)
{
    struct rlimit rl;
    rlim_t want = 4096 + (rlim_t)g->max_connections * 3 + 256; /* client, upstream, log/spare */
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < want)
        log_warn("open files limited to %llu (want %llu for the HTTP bounds): slow clients are "
                 "dropped sooner",
                 (unsigned long long)rl.rlim_cur, (unsigned long long)want);
}

/* ---- basic auth: on by default, as in OpenFaaS ---- */

#define AUTH_SECRETS "secrets"
#define AUTH_USER    "admin"

static int read_secret(const char *dir, const char *name, char *out, size_t len, char *err,
                       size_t errlen)
{
    char path[1024];
    uint8_t *data;
    size_t n;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int rc = read_file(path, len - 1, &data, &n, err, errlen);
    if (rc)
        return rc;
    while (n > 0 && (data[n - 1] == '\n' || data[n - 1] == '\r'))
        n--;
    bool nul = memchr(data, '\0', n) != NULL;
    memcpy(out, data, n);
    out[n] = '\0';
    free(data);
    if (n == 0 || nul)
        return seterr(err, errlen, -EINVAL, "%s is %s", path, nul ? "not text" : "empty");
    return 0;
}

/* Writes NAME in the secrets dir once: temp file O_EXCL|O_NOFOLLOW 0600, then renamed, so a
 * half-written secret is never read. -EEXIST when it already exists. */
static int create_secret(int dfd, const char *name, const char *text, char *err, size_t errlen)
{
    char tmp[64];
    snprintf(tmp, sizeof tmp, ".%s.tmp", name);
    unlinkat(dfd, tmp, 0);
    int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return seterr(err, errlen, -errno, "secrets/%s: %s", tmp, strerror(errno));
    size_t n = strlen(text);
    bool ok = write(fd, text, n) == (ssize_t)n && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    int e = errno;
    close(fd);
    if (ok && renameat2(dfd, tmp, dfd, name, RENAME_NOREPLACE) == 0)
        return 0;
    e = ok ? errno : e;
    unlinkat(dfd, tmp, 0);
    if (e == EEXIST)
        return -EEXIST;
    return seterr(err, errlen, -e, "secrets/%s: %s", name, strerror(e));
}

/* Reads NAME from the secrets dir: a regular file of ours, readable by us alone. */
static int load_secret(int dfd, const char *dir, const char *name, char *out, size_t len, char *err,
                       size_t errlen)
{
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd < 0)
        return errno == ENOENT
                   ? -ENOENT
                   : seterr(err, errlen, -errno, "%s/%s: %s", dir, name, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
        (st.st_mode & 077)) {
        close(fd);
        return seterr(err, errlen, -EPERM,
                      "%s/%s must be a regular file of uid %d with mode 0600: check it, then fix "
                      "or remove it",
                      dir, name, (int)geteuid());
    }
    ssize_t n = read(fd, out, len - 1);
    close(fd);
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
        n--;
    if (n <= 0 || memchr(out, '\0', (size_t)n))
        return seterr(err, errlen, -EINVAL, "%s/%s is empty or not text", dir, name);
    out[n] = '\0';
    return 0;
}

/* 32 characters of [A-Za-z0-9_-] from the kernel's CSPRNG (192 bits). */
static int random_password(char *out, size_t len)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t r[32];
    if (len < sizeof r + 1 || getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        return -EIO;
    for (size_t i = 0; i < sizeof r; i++)
        out[i] = abc[r[i] & 63];
    out[sizeof r] = '\0';
    return 0;
}

/* STATE/secrets/basic-auth-{user,password}: generated at the first start, read afterwards. */
static int load_generated_auth(struct gateway *g, char *err, size_t errlen)
{
    char dir[1024], pass[64];
    snprintf(dir, sizeof dir, "%s/" AUTH_SECRETS, g->state);
    int dfd = open_own_dir(g->state_fd, g->state, AUTH_SECRETS, 0700, DIR_REFUSE, err, errlen);
    if (dfd < 0)
        return dfd;
    int rc = create_secret(dfd, "basic-auth-user", AUTH_USER, err, errlen);
    if (rc == 0 || rc == -EEXIST)
        rc = random_password(pass, sizeof pass) ? seterr(err, errlen, -EIO, "getrandom failed") : 0;
    bool made = false;
    if (rc == 0) {
        rc = create_secret(dfd, "basic-auth-password", pass, err, errlen);
        made = rc == 0;
        if (rc == -EEXIST)
            rc = 0;
    }
    explicit_bzero(pass, sizeof pass);
    if (!rc)
        rc = load_secret(dfd, dir, "basic-auth-user", g->auth_user, sizeof g->auth_user, err,
                         errlen);
    if (!rc)
        rc = load_secret(dfd, dir, "basic-auth-password", g->auth_pass, sizeof g->auth_pass, err,
                         errlen);
    close(dfd);
    if (!rc)
        log_info("basic auth on: user %s, password %s %s/basic-auth-password (readable by uid %d "
                 "only; 'shmfaas login' or --no-auth)",
                 g->auth_user, made ? "generated into" : "in", dir, (int)geteuid());
    return rc;
}

static int load_auth(struct gateway *g, char *err, size_t errlen)
{
    int rc = 0;
    if (g->no_auth && g->auth_dir[0])
        return seterr(err, errlen, -EINVAL, "--no-auth and --basic-auth exclude each other");
    if (g->no_auth) {
        log_warn("--no-auth: every /system route (deploy, delete, logs, models) is open to anyone "
                 "who can reach %s",
                 g->listen);
        return 0;
    }
    if (g->auth_dir[0]) {
        rc = read_secret(g->auth_dir, "basic-auth-user", g->auth_user, sizeof g->auth_user, err,
                         errlen);
        if (!rc)
            rc = read_secret(g->auth_dir, "basic-auth-password", g->auth_pass, sizeof g->auth_pass,
                             err, errlen);
    } else {
        rc = load_generated_auth(g, err, errlen);
    }
    g->auth = rc == 0;
    return rc;
}

static int find_programs(struct gateway *g, char *err, size_t errlen)
{
    if (!g->fn_bin[0] && find_program("shmfaas-fn", "fn", g->fn_bin, sizeof g->fn_bin))
        return seterr(err, errlen, -ENOENT,
                      "shmfaas-fn not found next to shmfaasd or on PATH: use --fn-bin");
    if (g->store_sock[0])
        return 0;
    if (!g->store_bin[0] &&
        find_program("shmfaas-store", "store", g->store_bin, sizeof g->store_bin))
        return seterr(err, errlen, -ENOENT,
                      "shmfaas-store not found next to shmfaasd or on PATH: use --store-bin "
                      "or --store");
    if (snprintf(g->store_sock, sizeof g->store_sock, "%s/store.sock", g->state) >= 108)
        return seterr(err, errlen, -ENAMETOOLONG,
                      "%s/store.sock is too long for a unix socket: use a shorter --state",
                      g->state);
    if (!g->store_dir[0]) {
        uint8_t d[SHA256_LEN];
        char hex[SHA256_HEX_LEN];
        sha256(g->state, strlen(g->state), d);
        sha256_hex(d, hex);
        snprintf(g->store_dir, sizeof g->store_dir, "/dev/shm/shmfaas-%.12s", hex);
    }
    return 0;
}

/* ---- run ---- */

static int wait_for_signal(void)
{
    sigset_t set;
    int sig = 0;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigwait(&set, &sig);
    return sig;
}

static void write_listen_file(struct gateway *g)
{
    char path[1024], text[300], err[256];
    snprintf(path, sizeof path, "%s/listen", g->state);
    int n = g->port ? snprintf(text, sizeof text, "http://127.0.0.1:%d\n", g->port)
                    : snprintf(text, sizeof text, "%s\n", g->listen);
    if (write_file_atomic(path, text, (size_t)n, 0644, err, sizeof err))
        log_warn("%s", err);
}

/* Instances run as another uid: every directory above the state dir must let them through. */
static void check_reachable(const char *dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", dir);
    for (char *slash = strrchr(path, '/'); slash && slash != path; slash = strrchr(path, '/')) {
        *slash = '\0';
        struct stat st;
        if (stat(path, &st) == 0 && !(st.st_mode & S_IXOTH))
            log_warn("%s is not searchable by other users: instances (their own uids) cannot reach "
                     "the store's socket; chmod o+x it or use --run-as-root",
                     path);
    }
}

static int start(struct gateway *g, pthread_t *sup, char *err, size_t errlen)
{
    int rc;
    if ((rc = prepare_dirs(g, err, errlen)) || (rc = load_auth(g, err, errlen)) ||
        (rc = find_programs(g, err, errlen)))
        return rc;
    isolation_probe(g); /* before reaping: the reaper checks our cgroups */
    reap_orphans(g);
    if (g->iso.drop_uid)
        check_reachable(g->state);
    if (g->store_bin[0] && (rc = store_start(g, err, errlen)))
        return rc;
    registry_load(g);
    raise_fd_limit(g);
    if ((rc = async_start(g, err, errlen)) || (rc = httpd_start(g, err, errlen)))
        return rc;
    write_listen_file(g);
    if (pthread_create(sup, NULL, supervisor_main, g) != 0)
        return seterr(err, errlen, -EAGAIN, "cannot start the supervisor thread");
    return 0;
}

int main(int argc, char **argv)
{
    struct gateway g = {0};
    char err[1024];
    pthread_t sup;
    set_defaults(&g);
    if (parse_flags(&g, argc, argv))
        return 2;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_mutex_init(&g.lock, NULL);
    pthread_condattr_t ca; /* deadlines are CLOCK_MONOTONIC (now_ns) */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g.kick, &ca);
    pthread_cond_init(&g.changed, &ca);
    g.started_ms = now_ms();
    int rc = start(&g, &sup, err, sizeof err);
    if (rc) {
        log_error("%s", err);
        store_stop(&g);
        return 1;
    }
    log_info("shmfaasd %s listening on %s (port %d; state %s, models %s%s)", SHMFAAS_VERSION,
             g.listen, g.port, g.state, g.models, g.auth ? ", basic auth" : "");
    int sig = wait_for_signal();
    log_info("signal %d: stopping", sig);
    pthread_mutex_lock(&g.lock);
    g.stopping = true;
    pthread_cond_broadcast(&g.kick);
    pthread_cond_broadcast(&g.changed);
    pthread_mutex_unlock(&g.lock);
    async_stop(&g); /* a call a worker holds stays queued for the next start */
    pthread_join(sup, NULL);
    httpd_stop(&g);
    instances_shutdown(&g);
    async_join(&g);
    store_stop(&g);
    for (struct function *fn = g.functions, *next; fn; fn = next) {
        next = fn->next;
        while (fn->instances) {
            struct instance *in = fn->instances;
            fn->instances = in->next;
            instance_free(in);
        }
        spec_free(&fn->spec);
        free(fn);
    }
    curl_global_cleanup();
    return 0;
}
