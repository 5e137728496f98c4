/*
 * Isolation of instances: what the host allows (a cgroup root of ours with the memory
 * controller, network namespaces), one cgroup per instance or template, and the pidfiles in
 * <state>/pids (ours alone) that let a daemon restarted after SIGKILL reap what its predecessor
 * left behind, killing only what it proves to be its own (start time, executable, cgroup, pidfd).
 */
#include "gateway/gateway.h"

#include "common/common.h"
#include "common/fnenv.h"
#include "common/tmplproto.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_ENV       128
#define STOP_GRACE_MS 10000

/* shmfaas-fn's exit statuses (fn/fn.h: FN_EXIT_*). */
#define FN_EXIT_REFUSED        75 /* the store refused the model */
#define FN_EXIT_TEMPLATE_STALE 76 /* forked, it found the store hands another image */

/* ---- pidfiles ---- */

static unsigned long long proc_starttime(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ' || p[2] == 'Z')
        return 0; /* gone, or a zombie: nothing to kill */
    unsigned long long v = 0;
    p += 2;
    for (int field = 3; field < 22 && p; field++)
        p = strchr(p + 1, ' ');
    if (!p || sscanf(p + 1, "%llu", &v) != 1)
        return 0;
    return v;
}

/* "<pid> <starttime>\n" as NAME in <state>/pids (ours alone): a temp file created there
 * O_EXCL|O_NOFOLLOW, renamed over NAME. No fsync: a pidfile only matters while the machine is up
 * (its processes die with it), and an fsync per instance start would slow scale-from-zero. */
void write_pidfile(struct gateway *g, const char *name, pid_t pid)
{
    char buf[64], tmp[GW_NAME_MAX + 32];
    int n = snprintf(buf, sizeof buf, "%d %llu\n", (int)pid, proc_starttime(pid));
    snprintf(tmp, sizeof tmp, ".%s.tmp", name);
    unlinkat(g->pids_fd, tmp, 0); /* a leftover of a crash between create and rename */
    int fd = openat(g->pids_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && write(fd, buf, (size_t)n) == n;
    if (fd >= 0)
        close(fd);
    if (!ok || renameat(g->pids_fd, tmp, g->pids_fd, name) != 0) {
        log_warn("pidfile %s/pids/%s: %s", g->state, name, strerror(errno));
        unlinkat(g->pids_fd, tmp, 0);
    }
}

void remove_pidfile(struct gateway *g, const char *name)
{
    if (unlinkat(g->pids_fd, name, 0) != 0 && errno != ENOENT)
        log_warn("pidfile %s/pids/%s: %s", g->state, name, strerror(errno));
}

/* Is /proc/PID/exe the program at path (or that file, replaced since: "(deleted)")? */
static bool proc_runs(pid_t pid, const char *path)
{
    char link[64], exe[PATH_MAX], want[PATH_MAX];
    snprintf(link, sizeof link, "/proc/%d/exe", (int)pid);
    ssize_t n = readlink(link, exe, sizeof exe - 1);
    if (n <= 0 || !path[0] || !realpath(path, want))
        return false;
    exe[n] = '\0';
    size_t w = strlen(want);
    return strncmp(exe, want, w) == 0 && (exe[w] == '\0' || strcmp(exe + w, " (deleted)") == 0);
}

/* Is the process in cgroup rel (as /proc/PID/cgroup names it, v2 or the v1 memory hierarchy)? */
static bool proc_in_cgroup(const struct isolation *iso, pid_t pid, const char *rel)
{
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/cgroup", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool in = false;
    while (!in && fgets(line, sizeof line, f)) {
        char *a = strchr(line, ':');
        char *b = a ? strchr(a + 1, ':') : NULL;
        if (!b)
            continue;
        *b = '\0';
        b[strcspn(b + 1, "\n") + 1] = '\0';
        bool hier = iso->cgroup_v2 ? a[1] == '\0' : strstr(a + 1, "memory") != NULL;
        in = hier && strcmp(b + 1, rel) == 0;
    }
    fclose(f);
    return in;
}

/* SIGKILL through a pidfd taken before the checks, so a pid reused after them is never hit. */
static int pidfd_open_pid(pid_t pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

static void kill_pidfd(int pidfd, pid_t pid)
{
#ifdef SYS_pidfd_send_signal
    if (pidfd >= 0 && syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0) == 0)
        return;
#endif
    if (pidfd < 0) /* no pidfds (Linux < 5.3): the start-time check is what we have */
        kill(pid, SIGKILL);
}

/* Kills the process pidfile NAME names if it provably is the instance (or store) an earlier
 * daemon started: same start time, our program, and (for an instance, with cgroups) our cgroup
 * for it. Anything else is left alone and logged. The pidfile goes either way. */
static void reap_pidfile(struct gateway *g, const char *name)
{
    char buf[128], cg[600] = "";
    int pid, fd = openat(g->pids_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    unsigned long long start;
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0)
        close(fd);
    bool store = strcmp(name, "store.pid") == 0;
    if (n > 0) {
        buf[n] = '\0';
        size_t len = strlen(name) - 4; /* "<function>-<id>" */
        if (!store && (g->iso.cgroup_v2 || g->iso.cgroup_v1))
            snprintf(cg, sizeof cg, "%s/%.*s", g->iso.cgroup_rel, (int)len, name);
    }
    if (n > 0 && sscanf(buf, "%d %llu", &pid, &start) == 2 && pid > 1 && start) {
        int pidfd = pidfd_open_pid(pid);
        const char *prog = store ? g->store_bin : g->fn_bin;
        if (proc_starttime(pid) != start)
            ; /* gone, or the pid was reused: nothing of ours */
        else if (!proc_runs(pid, prog) || (cg[0] && !proc_in_cgroup(&g->iso, pid, cg)))
            log_warn("pidfile %s names pid %d, which is not our %s%s: left alone", name, pid,
                     prog[0] ? prog : "store", cg[0] ? " in our cgroup" : "");
        else {
            log_info("reaping orphan pid %d of an earlier shmfaasd (%s)", pid, name);
            kill_pidfd(pidfd, pid);
            for (int i = 0; i < 200 && proc_starttime(pid) == start; i++)
                usleep(10000);
        }
        if (pidfd >= 0)
            close(pidfd);
    }
    remove_pidfile(g, name);
}

void reap_orphans(struct gateway *g)
{
    int dfd = dup(g->pids_fd);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!d) {
        if (dfd >= 0)
            close(dfd);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (e->d_name[0] == '.') {
            if (n > 4 && strcmp(e->d_name + n - 4, ".tmp") == 0)
                unlinkat(g->pids_fd, e->d_name, 0);
            continue;
        }
        if (n > 4 && strcmp(e->d_name + n - 4, ".pid") == 0)
            reap_pidfile(g, e->d_name);
    }
    closedir(d);
    cgroups_sweep(g);
}

/* ---- isolation ---- */

/* Forks a child that tries unshare(CLONE_NEWNET): the only sure way to know it is allowed. */
static bool probe_netns(void)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(unshare(CLONE_NEWNET) == 0 ? 0 : 1);
    int st;
    return pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static bool writable_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode) && access(path, W_OK) == 0;
}

/* Our own cgroup path from /proc/self/cgroup ("0::/x" for v2, "N:memory:/x" for v1). */
static int own_cgroup(const char *controller, char *out, size_t len)
{
    char line[1024];
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f)
        return -errno;
    int rc = -ENOENT;
    while (fgets(line, sizeof line, f)) {
        char *a = strchr(line, ':');
        char *b = a ? strchr(a + 1, ':') : NULL;
        if (!b)
            continue;
        *b = '\0';
        b[strcspn(b + 1, "\n") + 1] = '\0';
        if (strcmp(a + 1, controller) == 0) {
            snprintf(out, len, "%s", strcmp(b + 1, "/") == 0 ? "" : b + 1);
            rc = 0;
            break;
        }
    }
    fclose(f);
    return rc;
}

/* Enables the memory controller for the children of a v2 cgroup (best effort: without it the
 * instance cgroups still group and kill, but memory.max is missing and a warning says so). */
static void enable_memory(const char *cgroup)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/cgroup.subtree_control", cgroup);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd >= 0 && write(fd, "+memory", 7) != 7)
        log_debug("%s: +memory: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
}

/* <own cgroup>/shmfaas/<daemon>: one subtree per state dir, so that daemons side by side never
 * touch each other's instance cgroups and a restarted daemon finds its predecessor's. */
static bool make_cgroup_root(struct isolation *iso, const char *mount, const char *own,
                             const char *daemon)
{
    char path[1024];
    snprintf(path, sizeof path, "%s%s/shmfaas", mount, own);
    if ((mkdir(path, 0755) != 0 && errno != EEXIST) || !writable_dir(path))
        return false;
    if (iso->cgroup_v2)
        enable_memory(path);
    snprintf(path, sizeof path, "%s%s/shmfaas/%s", mount, own, daemon);
    if ((mkdir(path, 0755) != 0 && errno != EEXIST) || !writable_dir(path))
        return false;
    if (iso->cgroup_v2)
        enable_memory(path);
    str_fmt(iso->cgroup_root, sizeof iso->cgroup_root, "%s", path);
    str_fmt(iso->cgroup_rel, sizeof iso->cgroup_rel, "%s/shmfaas/%s", own, daemon);
    return true;
}

static void probe_cgroup(struct gateway *g)
{
    struct isolation *iso = &g->iso;
    char own[512], daemon[16];
    uint8_t d[SHA256_LEN];
    char hex[SHA256_HEX_LEN];
    sha256(g->state, strlen(g->state), d);
    sha256_hex(d, hex);
    snprintf(daemon, sizeof daemon, "%.12s", hex);
    struct stat st;
    if (stat("/sys/fs/cgroup/cgroup.controllers", &st) == 0 &&
        own_cgroup("", own, sizeof own) == 0) {
        iso->cgroup_v2 = true;
        if (make_cgroup_root(iso, "/sys/fs/cgroup", own, daemon))
            return;
        iso->cgroup_v2 = false;
    }
    if (own_cgroup("memory", own, sizeof own) == 0) {
        iso->cgroup_v1 = true;
        if (make_cgroup_root(iso, "/sys/fs/cgroup/memory", own, daemon))
            return;
        iso->cgroup_v1 = false;
    }
}

void isolation_probe(struct gateway *g)
{
    struct isolation *iso = &g->iso;
    /* Instances forked by a template are re-parented to us when its middle process exits. */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
        log_warn("PR_SET_CHILD_SUBREAPER: %s; templates off", strerror(errno));
        g->no_templates = true;
    }
    probe_cgroup(g);
    if (iso->cgroup_v2 || iso->cgroup_v1)
        log_info("isolation: cgroup %s under %s", iso->cgroup_v2 ? "v2" : "v1 memory",
                 iso->cgroup_root);
    else
        log_warn("isolation: no writable cgroup (v2 or v1 memory): memory limits not enforced");
    iso->netns = probe_netns();
    if (!iso->netns)
        log_warn("isolation: cannot create network namespaces: instances share the host network");
    if (geteuid() == 0 && !g->as_root) {
        iso->drop_uid = true;
        log_info("isolation: each function's instances run as its own uid from %u-%u",
                 (unsigned)g->uid_first, (unsigned)g->uid_last);
    } else if (geteuid() != 0) {
        log_info("isolation: not root: instances run as uid %d (one uid per function needs root)",
                 (int)geteuid());
    } else {
        log_warn("isolation: --run-as-root: instances run as root");
    }
}

/* Kills every process in an instance cgroup (each checked to be in it through a pidfd), then
 * removes the cgroup. -EBUSY while some are still dying: the sweep tries again. */
int cgroup_remove(const struct isolation *iso, const char *path)
{
    if (rmdir(path) == 0 || errno == ENOENT)
        return 0;
    if (errno != EBUSY)
        return -errno;
    char procs[1100], rel[1100];
    snprintf(procs, sizeof procs, "%s/cgroup.procs", path);
    snprintf(rel, sizeof rel, "%s%s", iso->cgroup_rel, path + strlen(iso->cgroup_root));
    FILE *f = fopen(procs, "re");
    int pid;
    while (f && fscanf(f, "%d", &pid) == 1) {
        int pidfd = pidfd_open_pid(pid);
        if (pid > 1 && proc_in_cgroup(iso, pid, rel))
            kill_pidfd(pidfd, pid);
        if (pidfd >= 0)
            close(pidfd);
    }
    if (f)
        fclose(f);
    return rmdir(path) == 0 || errno == ENOENT ? 0 : -errno;
}

static bool cgroup_in_use(struct gateway *g, const char *path)
{
    for (struct function *fn = g->functions; fn; fn = fn->next) {
        if (fn->tmpl &&
            (strcmp(fn->tmpl->cgroup, path) == 0 || strcmp(fn->tmpl->spare_cgroup, path) == 0))
            return true;
        for (struct instance *in = fn->instances; in; in = in->next)
            if (in->state != INST_DEAD && strcmp(in->cgroup, path) == 0)
                return true;
    }
    return false;
}

void cgroups_sweep(struct gateway *g)
{
    if (!g->iso.cgroup_v2 && !g->iso.cgroup_v1)
        return;
    DIR *d = opendir(g->iso.cgroup_root);
    if (!d)
        return;
    struct dirent *e;
    char path[1100];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || e->d_type != DT_DIR)
            continue;
        snprintf(path, sizeof path, "%s/%s", g->iso.cgroup_root, e->d_name);
        if (!cgroup_in_use(g, path) && cgroup_remove(&g->iso, path) == 0)
            log_debug("cgroup %s removed", path);
    }
    closedir(d);
}

/* ---- cgroup of one instance ---- */

/* <cgroup root>/<name> with memory limit `limit` (0: none), its path in path; returns an fd of
 * its cgroup.procs to join (-1: none, path ""). */
int cgroup_create_named(struct gateway *g, const char *name, uint64_t limit, char *path_out,
                        size_t len)
{
    const struct isolation *iso = &g->iso;
    path_out[0] = '\0';
    if (!iso->cgroup_v2 && !iso->cgroup_v1)
        return -1;
    str_fmt(path_out, len, "%s/%s", iso->cgroup_root, name);
    if (mkdir(path_out, 0755) != 0 && errno != EEXIST) {
        log_warn("%s: cgroup %s: %s", name, path_out, strerror(errno));
        path_out[0] = '\0';
        return -1;
    }
    char path[600], val[32];
    if (limit) {
        snprintf(path, sizeof path, "%s/%s", path_out,
                 iso->cgroup_v2 ? "memory.max" : "memory.limit_in_bytes");
        int n = snprintf(val, sizeof val, "%llu", (unsigned long long)limit);
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, val, (size_t)n) != n)
            log_warn("%s: cannot set memory limit in %s: %s", name, path, strerror(errno));
        if (fd >= 0)
            close(fd);
    }
    snprintf(path, sizeof path, "%s/cgroup.procs", path_out);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        log_warn("%s: %s: %s", name, path, strerror(errno));
    return fd;
}

int cgroup_create(struct gateway *g, struct instance *in, uint64_t limit)
{
    char name[GW_NAME_MAX + 16];
    snprintf(name, sizeof name, "%s-%d", in->fn->spec.name, in->id);
    return cgroup_create_named(g, name, limit, in->cgroup, sizeof in->cgroup);
}
