/*
 * Spawning instances: shmfaas-fn processes (and our shmfaas-store child). Started with
 * fork+exec where the child makes only async-signal-safe calls (the daemon has threads by then,
 * and never runs the engine), or forked from their function's warm template; each with the
 * isolation the host allows: own cgroup with the memory limit, a new network namespace, its
 * function's own uid/gid when we are root, no_new_privs, no inherited fds but its listening
 * socket (fd 3), which we bind in <state>/run/<function>/, a directory only we can enter: no
 * other process, of any uid, can unlink or rebind it, and its readiness pipe (fd 4). Pidfiles,
 * cgroups and orphan reaping: isolation.c; the supervisor that decides when: supervise.c.
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

#define MAX_ENV 128

/* shmfaas-fn's exit statuses (fn/fn.h: FN_EXIT_*). */
#define FN_EXIT_REFUSED        75 /* the store refused the model */
#define FN_EXIT_TEMPLATE_STALE 76 /* forked, it found the store hands another image */

/* ---- logs: one reader thread per instance turns its output into NDJSON lines ---- */

struct log_reader {
    int fd;
    char name[GW_NAME_MAX];
    char instance[GW_NAME_MAX + 16];
    char path[1024];
};

static void log_line(const struct log_reader *lr, int out, const char *text, size_t len)
{
    char ts[64];
    int64_t ms = wall_ms();
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof ts - n, ".%03dZ", (int)(ms % 1000));
    json_t *o = json_pack("{ssssssssss%}", "name", lr->name, "namespace", GW_NAMESPACE, "instance",
                          lr->instance, "timestamp", ts, "text", text, len);
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(o);
    if (!s)
        return;
    size_t sl = strlen(s);
    s[sl] = '\n'; /* replaces the NUL: one write() of the whole line keeps O_APPEND lines whole */
    if (write(out, s, sl + 1) < 0)
        log_debug("log %s: %s", lr->path, strerror(errno));
    free(s);
}

static void *log_reader_main(void *arg)
{
    struct log_reader *lr = arg;
    char buf[8192];
    size_t have = 0;
    int out = open(lr->path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
    for (;;) {
        ssize_t r = read(lr->fd, buf + have, sizeof buf - have);
        if (r <= 0)
            break;
        have += (size_t)r;
        char *start = buf, *nl;
        while ((nl = memchr(start, '\n', have - (size_t)(start - buf)))) {
            if (out >= 0)
                log_line(lr, out, start, (size_t)(nl - start));
            start = nl + 1;
        }
        have -= (size_t)(start - buf);
        memmove(buf, start, have);
        if (have == sizeof buf) { /* a line longer than the buffer: emit it in pieces */
            if (out >= 0)
                log_line(lr, out, buf, have);
            have = 0;
        }
    }
    if (have && out >= 0)
        log_line(lr, out, buf, have);
    if (out >= 0)
        close(out);
    close(lr->fd);
    free(lr);
    return NULL;
}

/* label: the "instance" field of its lines ("<function>-<id>", or "<function>.t<id>" for a
 * template). */
static void start_log_reader(struct gateway *g, const char *fn_name, const char *label, int fd)
{
    struct log_reader *lr = calloc(1, sizeof *lr);
    pthread_t t;
    if (!lr) {
        close(fd);
        return;
    }
    lr->fd = fd;
    snprintf(lr->name, sizeof lr->name, "%s", fn_name);
    snprintf(lr->instance, sizeof lr->instance, "%s", label);
    function_log_path(g, fn_name, lr->path, sizeof lr->path);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, log_reader_main, lr) != 0) {
        close(fd);
        free(lr);
    }
    pthread_attr_destroy(&attr);
}

/* ---- spawning ---- */

struct spawn {
    const char *path;
    char *argv[20]; /* the store's: up to 17 with every option */
    char *envp[MAX_ENV + 1];
    int out_fd;    /* becomes stdout+stderr; -1 = keep ours */
    int cgroup_fd; /* cgroup.procs to join; -1 = none */
    int listen_fd; /* becomes fd 3 (shmfaas-fn --listen fd:3); -1 = none */
    int ready_fd;  /* becomes fd 4 (shmfaas-fn --ready-fd 4); -1 = none */
    bool netns, drop;
    uid_t uid;
    gid_t gid;
};

/* The child side: async-signal-safe calls only. Steps that fail are reported on its stderr. */
static void __attribute__((noreturn)) spawn_child(const struct spawn *sp)
{
    static const char no_cg[] = "shmfaasd: isolation: could not join cgroup\n";
    static const char no_ns[] = "shmfaasd: isolation: unshare(CLONE_NEWNET) failed\n";
    static const char no_id[] = "shmfaasd: isolation: could not drop to the unprivileged user\n";
    static const char no_nnp[] = "shmfaasd: isolation: PR_SET_NO_NEW_PRIVS failed\n";
    setpgid(0, 0);
    if (sp->out_fd >= 0) {
        dup2(sp->out_fd, 1);
        dup2(sp->out_fd, 2);
    }
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0)
        dup2(devnull, 0);
    if (sp->cgroup_fd >= 0 && write(sp->cgroup_fd, "0", 1) != 1 &&
        write(2, no_cg, sizeof no_cg - 1))
        (void)0;
    if (sp->netns && unshare(CLONE_NEWNET) != 0 && write(2, no_ns, sizeof no_ns - 1))
        (void)0;
    if (sp->drop && (setgroups(0, NULL) || setgid(sp->gid) || setuid(sp->uid))) {
        if (write(2, no_id, sizeof no_id - 1))
            _exit(126);
        _exit(126);
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 && write(2, no_nnp, sizeof no_nnp - 1))
        (void)0;
    /* Moved above 10 first, so that neither dup2 below can land on the other's fd (dup2 clears
     * close-on-exec on the copy). */
    int lfd = sp->listen_fd >= 0 ? fcntl(sp->listen_fd, F_DUPFD_CLOEXEC, 10) : -1;
    int rfd = sp->ready_fd >= 0 ? fcntl(sp->ready_fd, F_DUPFD_CLOEXEC, 10) : -1;
    if ((sp->listen_fd >= 0 && (lfd < 0 || dup2(lfd, 3) != 3)) ||
        (sp->ready_fd >= 0 && (rfd < 0 || dup2(rfd, 4) != 4)))
        _exit(126);
    syscall(SYS_close_range, sp->ready_fd >= 0 ? 5U : sp->listen_fd >= 0 ? 4U : 3U, ~0U, 0U);
    execve(sp->path, sp->argv, sp->envp);
    _exit(127);
}

static pid_t spawn_run(const struct spawn *sp)
{
    pid_t pid = fork();
    if (pid == 0)
        spawn_child(sp);
    return pid;
}

static const char *const passed_env[] = {"PATH",           "TMPDIR",        "LD_LIBRARY_PATH",
                                         "ASAN_OPTIONS",   "UBSAN_OPTIONS", "LSAN_OPTIONS",
                                         "OMP_WAIT_POLICY"};

/* The instance's environment: a few of ours, then the function's envVars. Strings are malloc'd. */
static int build_env(const struct fn_spec *spec, char **envp)
{
    int n = 0;
    for (size_t i = 0; i < ARRAY_LEN(passed_env); i++) {
        const char *v = getenv(passed_env[i]);
        if (v && asprintf(&envp[n], "%s=%s", passed_env[i], v) >= 0)
            n++;
    }
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(spec->deployment, "envVars"), k, v)
    {
        if (n >= MAX_ENV || !fn_env_key_allowed(k)) /* the allow-list, also for old specs */
            continue;
        if (asprintf(&envp[n], "%s=%s", k, json_string_value(v)) >= 0)
            n++;
    }
    envp[n] = NULL;
    return n;
}

static void free_strv(char **v)
{
    for (; *v; v++)
        free(*v);
}

/* argv[3...]: the model flags; returns the index of the NULL that ends them. */
static int model_args(struct gateway *g, const struct fn_spec *spec, char **argv)
{
    int a = 3;
    if (spec->private_model) { /* a ref: shmfaas-fn opens it confined to --models itself */
        argv[a++] = "--private";
        argv[a++] = (char *)spec->image;
    } else {
        argv[a++] = "--model";
        argv[a++] = (char *)spec->image;
        argv[a++] = "--store";
        argv[a++] = g->store_sock;
    }
    argv[a++] = "--models"; /* where --private and envVars.labels must resolve */
    argv[a++] = g->models;
    argv[a] = NULL;
    return a;
}

/* <state>/run/<function>/: the function's sockets, in a directory only we can enter (run/ is ours
 * alone, so whatever is found there is ours too). */
static int function_sock_dir(struct gateway *g, struct function *fn, char *err, size_t errlen)
{
    if (mkdirat(g->run_fd, fn->spec.name, 0700) != 0 && errno != EEXIST)
        return seterr(err, errlen, -errno, "cannot create %s/run/%s: %s", g->state, fn->spec.name,
                      strerror(errno));
    return 0;
}

/* A listening socket bound at path by us: the instance gets the fd, never the directory. */
static int bind_instance_socket(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 128) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        unlink(path);
        return seterr(err, errlen, -e, "cannot listen on %s: %s", path, strerror(e));
    }
    return fd;
}

/* id: the instance's number (a template's spare was made for it), 0 = the next one. */
static struct instance *instance_new(struct gateway *g, struct function *fn, int id, char *err,
                                     size_t errlen)
{
    struct instance *in = calloc(1, sizeof *in);
    if (!in) {
        seterr(err, errlen, -ENOMEM, "out of memory");
        return NULL;
    }
    in->fn = fn;
    in->id = id ? id : ++g->next_instance_id;
    int n =
        snprintf(in->sock, sizeof in->sock, "%s/run/%s/%d.sock", g->state, fn->spec.name, in->id);
    if (n < 0 || (size_t)n >= sizeof in->sock) {
        seterr(err, errlen, -ENAMETOOLONG, "socket path under %s/run is too long for a unix socket",
               g->state);
        free(in);
        return NULL;
    }
    snprintf(in->pidname, sizeof in->pidname, "%s-%d.pid", fn->spec.name, in->id);
    if (function_sock_dir(g, fn, err, errlen)) {
        free(in);
        return NULL;
    }
    return in;
}

/* ---- readiness, pushed ---- */

/* An instance starting with --ready-fd 4: one thread blocks on the pipe's read end until the
 * instance writes "R" (ready) or the pipe closes (it died; waitpid tells the rest). The instance
 * is found again by pid and id under the lock: it may be gone by then. */
struct ready_wait {
    struct gateway *g;
    int fd;
    pid_t pid;
    int id;
};

void mark_ready(struct gateway *g, struct instance *in, const char *how)
{
    in->state = INST_READY;
    in->fn->failures = 0;
    in->fn->refused = false;
    log_info("instance %s-%d: ready after %.1f ms (%s)", in->fn->spec.name, in->id,
             (double)(now_ns() - in->spawn_ns) / 1e6, how);
    pthread_cond_broadcast(&g->changed);
}

static void *ready_wait_main(void *arg)
{
    struct ready_wait *rw = arg;
    char b = 0;
    ssize_t n;
    do
        n = read(rw->fd, &b, 1);
    while (n < 0 && errno == EINTR);
    if (n == 1 && b == 'R') {
        pthread_mutex_lock(&rw->g->lock);
        struct instance *in = instance_by_pid(rw->g, rw->pid);
        if (in && in->id == rw->id && in->state == INST_STARTING)
            mark_ready(rw->g, in, in->templated ? "forked, pushed" : "pushed");
        pthread_mutex_unlock(&rw->g->lock);
    }
    close(rw->fd);
    free(rw);
    return NULL;
}

/* Takes fd (closed on failure: the instance is then probed over HTTP). */
static int ready_wait_start(struct gateway *g, struct instance *in, int fd)
{
    struct ready_wait *rw = malloc(sizeof *rw);
    pthread_t t;
    pthread_attr_t attr;
    int rc = rw ? 0 : -ENOMEM;
    if (rw) {
        *rw = (struct ready_wait){.g = g, .fd = fd, .pid = in->pid, .id = in->id};
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        rc = -pthread_create(&t, &attr, ready_wait_main, rw);
        pthread_attr_destroy(&attr);
    }
    if (rc < 0) {
        free(rw);
        close(fd);
    }
    return rc;
}

/* ---- templates ---- */

#define TEMPLATE_FORK_TIMEOUT_MS 2000  /* under g->lock: a fork takes ~1 ms */
#define TEMPLATE_RETRY_MS        60000 /* after a failed template: instances by exec meanwhile */
#define TEMPLATE_REDO_MS         1000  /* after a ready one died or failed a fork */

/* What a template is made for: the model ref and the envVars (codec settings, threads). */
static void template_key(const struct fn_spec *spec, char key[SHA256_HEX_LEN])
{
    json_t *o = json_pack("{sssOsb}", "image", spec->image, "envVars",
                          json_object_get(spec->deployment, "envVars") ?: json_null(), "private",
                          spec->private_model);
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    uint8_t d[SHA256_LEN];
    sha256(text ? text : "", text ? strlen(text) : 0, d);
    sha256_hex(d, key);
    free(text);
    json_decref(o);
}

static unsigned long long proc_ppid(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long long v = 0;
    return p && sscanf(p + 1, " %*c %llu", &v) == 1 ? v : 0;
}

static void template_free(struct gateway *g, struct template *t)
{
    if (t->ctl >= 0)
        close(t->ctl);
    remove_pidfile(g, t->pidname);
    if (t->cgroup[0] && cgroup_remove(&g->iso, t->cgroup) != 0)
        log_debug("cgroup %s: still busy; the sweep removes it", t->cgroup);
    if (t->spare_cgroup[0] && cgroup_remove(&g->iso, t->spare_cgroup) != 0) /* kills its spare */
        log_debug("cgroup %s: still busy; the sweep removes it", t->spare_cgroup);
    free(t);
}

/* Retires fn's template: SIGKILL, since it holds nothing worth a goodbye (no lease, no request;
 * its instances are not its children and have their own process groups and cgroups). Its exit
 * is then reaped like any child we no longer know; wait: at shutdown, reap it here. */
void template_retire(struct gateway *g, struct function *fn, const char *why, bool wait)
{
    struct template *t = fn->tmpl;
    if (!t)
        return;
    fn->tmpl = NULL;
    log_info("function %s: template pid %d retired: %s", fn->spec.name, (int)t->pid, why);
    kill(t->pid, SIGKILL);
    int st;
    if (wait)
        waitpid(t->pid, &st, 0);
    template_free(g, t);
}

void templates_retire_all(struct gateway *g, const char *why, bool wait)
{
    for (struct function *fn = g->functions; fn; fn = fn->next)
        template_retire(g, fn, why, wait);
}

/* A template that could not become one: exec for its function's instances until the retry. */
static void template_failed(struct gateway *g, struct function *fn, const char *why)
{
    log_warn("function %s: template pid %d failed: %s; its instances start by exec (next "
             "template in %d s)",
             fn->spec.name, (int)fn->tmpl->pid, why, TEMPLATE_RETRY_MS / 1000);
    fn->tmpl_retry_ms = now_ms() + TEMPLATE_RETRY_MS;
    template_retire(g, fn, "failed", false);
}

/* On fn's first scale-up (and after one was retired): start its template, exec'd like an
 * instance but as root (it must set its instances' uid), no_new_privs, in its own netns and
 * cgroup (the function's memory limit), with a socketpair as fd 3 instead of a listener. */
void template_start(struct gateway *g, struct function *fn)
{
    int64_t now = now_ms();
    if (g->no_templates || fn->spec.private_model || fn->tmpl || fn->deleted || g->stopping ||
        now < fn->tmpl_retry_ms)
        return;
    struct template *t = calloc(1, sizeof *t);
    int sv[2] = {-1, -1}, pipefd[2] = {-1, -1};
    if (!t || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        log_warn("function %s: no template: %s", fn->spec.name, strerror(t ? errno : ENOMEM));
        free(t);
        fn->tmpl_retry_ms = now + TEMPLATE_RETRY_MS;
        return;
    }
    t->ctl = sv[0];
    t->id = ++g->next_instance_id;
    template_key(&fn->spec, t->key);
    char label[GW_NAME_MAX + 16];
    snprintf(label, sizeof label, "%s.t%d", fn->spec.name, t->id);
    snprintf(t->pidname, sizeof t->pidname, "%s.t%d.pid", fn->spec.name, t->id);
    struct spawn sp = {
        .path = g->fn_bin, .netns = g->iso.netns, .listen_fd = sv[1], .ready_fd = -1};
    sp.argv[0] = g->fn_bin;
    sp.argv[1] = "--listen";
    sp.argv[2] = "fd:3";
    int a = model_args(g, &fn->spec, sp.argv);
    sp.argv[a++] = "--template";
    sp.argv[a] = NULL;
    int n = build_env(&fn->spec, sp.envp);
    /* test-only (tests/gateway/test_template.py): ours, passed to templates alone */
    const char *knob = getenv("SHMFAAS_TEST_TEMPLATE_FAIL");
    if (knob && n < MAX_ENV && asprintf(&sp.envp[n], "SHMFAAS_TEST_TEMPLATE_FAIL=%s", knob) >= 0)
        sp.envp[++n] = NULL;
    if (pipe2(pipefd, O_CLOEXEC) != 0)
        log_warn("function %s: template: no log pipe: %s", fn->spec.name, strerror(errno));
    sp.out_fd = pipefd[1];
    sp.cgroup_fd = cgroup_create_named(g, label, fn->spec.mem_limit, t->cgroup, sizeof t->cgroup);
    t->pid = spawn_run(&sp);
    int saved = errno;
    free_strv(sp.envp);
    close(sv[1]);
    if (sp.cgroup_fd >= 0)
        close(sp.cgroup_fd);
    if (pipefd[1] >= 0)
        close(pipefd[1]);
    if (t->pid < 0) {
        log_warn("function %s: template: fork: %s", fn->spec.name, strerror(saved));
        if (pipefd[0] >= 0)
            close(pipefd[0]);
        fn->tmpl_retry_ms = now + TEMPLATE_RETRY_MS;
        t->pidname[0] = '\0';
        template_free(g, t);
        return;
    }
    if (pipefd[0] >= 0)
        start_log_reader(g, fn->spec.name, label, pipefd[0]);
    write_pidfile(g, t->pidname, t->pid);
    t->state = TEMPLATE_STARTING;
    t->started_ms = now;
    fn->tmpl = t;
    log_info("function %s: template pid %d starting", fn->spec.name, (int)t->pid);
}

/* Has fn's ready template fork its next instance ahead (TMPL_PREPARE): into that instance's
 * cgroup, created now with its id, and a new netns, the slow steps of an identity (a cgroup v1
 * migration waits for an RCU grace period: several ms on a busy host). Without cgroups there is
 * nothing worth preparing. */
static void template_prepare(struct gateway *g, struct function *fn)
{
    struct template *t = fn->tmpl;
    if (!t || t->state != TEMPLATE_READY || t->spare_id || (!g->iso.cgroup_v2 && !g->iso.cgroup_v1))
        return;
    int id = ++g->next_instance_id;
    char name[GW_NAME_MAX + 16];
    snprintf(name, sizeof name, "%s-%d", fn->spec.name, id);
    int fd =
        cgroup_create_named(g, name, fn->spec.mem_limit, t->spare_cgroup, sizeof t->spare_cgroup);
    if (fd < 0)
        return;
    struct tmpl_msg m;
    tmpl_msg_init(&m, TMPL_PREPARE);
    m.flags = (g->iso.netns ? TMPL_F_NETNS : 0) | TMPL_F_CGROUP;
    int rc = tmpl_send(t->ctl, &m, &fd, 1);
    close(fd);
    if (rc < 0) {
        template_retire(g, fn, "its control socket failed", false);
        return;
    }
    t->spare_id = id;
}

/* A starting template's first word: ready, or why not. Under the lock, never blocking. */
void template_poll(struct gateway *g, struct function *fn)
{
    struct template *t = fn->tmpl;
    if (!t || t->state != TEMPLATE_STARTING)
        return;
    struct tmpl_msg m;
    int fds[TMPL_MAX_FDS];
    char why[256];
    int rc = tmpl_recv(t->ctl, &m, fds, 1u << TMPL_READY | 1u << TMPL_FAILED, 0, why, sizeof why);
    int64_t now = now_ms();
    if (rc == -ETIMEDOUT) {
        if (now - t->started_ms > g->ready_timeout_ms)
            template_failed(g, fn, "not ready within --ready-timeout");
        return;
    }
    if (rc == 0 && m.type == TMPL_READY) {
        t->state = TEMPLATE_READY;
        log_info("function %s: template pid %d ready after %lld ms", fn->spec.name, (int)t->pid,
                 (long long)(now - t->started_ms));
        template_prepare(g, fn);
        return;
    }
    template_failed(g, fn, rc == 0 ? m.text : why);
}

static struct function *template_by_pid(struct gateway *g, pid_t pid)
{
    for (struct function *fn = g->functions; fn; fn = fn->next)
        if (fn->tmpl && fn->tmpl->pid == pid)
            return fn;
    return NULL;
}

/* fn's template exited by itself: its model was evicted (it retires then), or it failed. */
static void template_exited(struct gateway *g, struct function *fn, int st)
{
    struct template *t = fn->tmpl;
    char why[300];
    if (t->state == TEMPLATE_STARTING) {
        struct tmpl_msg m;
        int fds[TMPL_MAX_FDS];
        char e[256];
        if (tmpl_recv(t->ctl, &m, fds, 1u << TMPL_FAILED, 0, e, sizeof e) == 0)
            snprintf(why, sizeof why, "%s", m.text);
        else
            snprintf(why, sizeof why, "exited with status %d before it was ready", st);
        template_failed(g, fn, why);
        return;
    }
    bool clean = WIFEXITED(st) && WEXITSTATUS(st) == 0; /* its model was evicted */
    log_info("function %s: template pid %d exited (status %d%s); the next scale-up makes a new "
             "one",
             fn->spec.name, (int)t->pid, st,
             clean ? ": its model was evicted, or a stop signal" : "");
    if (!clean) /* a template that keeps dying is not re-made more than once a second */
        fn->tmpl_retry_ms = now_ms() + TEMPLATE_REDO_MS;
    fn->tmpl = NULL;
    template_free(g, t);
}

/* Asks fn's ready template for an instance with sp's identity and fds. Returns its pid (our
 * child now: re-parented to us); 0 when there is no template to ask (the caller execs); -1 when
 * the request went out and failed, which retires the template: something may hold the fds and
 * sit in the instance's cgroup, so the caller gives up this instance (killing what is in its
 * cgroup) and the next one is exec'd. */
static pid_t template_fork(struct gateway *g, struct function *fn, const struct spawn *sp)
{
    struct template *t = fn->tmpl;
    if (!t || t->state != TEMPLATE_READY || sp->out_fd < 0 || sp->ready_fd < 0)
        return 0;
    char key[SHA256_HEX_LEN], why[300] = "";
    template_key(&fn->spec, key);
    if (strcmp(key, t->key) != 0) {
        template_retire(g, fn, "the function's model or settings changed", false);
        return 0;
    }
    struct tmpl_msg m;
    tmpl_msg_init(&m, TMPL_FORK);
    m.flags = (sp->netns ? TMPL_F_NETNS : 0) | (sp->drop ? TMPL_F_DROP : 0) |
              (sp->cgroup_fd >= 0 ? TMPL_F_CGROUP : 0);
    m.uid = sp->uid;
    m.gid = sp->gid;
    int fds[TMPL_MAX_FDS] = {sp->listen_fd, sp->ready_fd, sp->out_fd, sp->cgroup_fd},
        got[TMPL_MAX_FDS];
    int rc = tmpl_send(t->ctl, &m, fds, tmpl_fork_nfds(m.flags));
    bool sent = rc == 0;
    if (rc < 0)
        snprintf(why, sizeof why, "send: %s", strerror(-rc));
    else
        rc = tmpl_recv(t->ctl, &m, got, 1u << TMPL_FORKED | 1u << TMPL_FAILED,
                       TEMPLATE_FORK_TIMEOUT_MS, why, sizeof why);
    if (rc == 0 && m.type == TMPL_FAILED) {
        rc = -EIO;
        snprintf(why, sizeof why, "%s", m.text);
    }
    if (rc == 0 && (m.pid <= 1 || proc_ppid(m.pid) != (unsigned long long)getpid())) {
        rc = -EPROTO;
        snprintf(why, sizeof why, "it named pid %d, which is not our child", (int)m.pid);
    }
    if (rc < 0) {
        log_warn("function %s: template pid %d could not fork an instance: %s; starting it by "
                 "exec",
                 fn->spec.name, (int)t->pid, why);
        fn->tmpl_retry_ms = now_ms() + TEMPLATE_REDO_MS;
        template_retire(g, fn, "a fork failed", false);
        return sent ? -1 : 0;
    }
    return m.pid;
}

int instance_start(struct gateway *g, struct function *fn, char *err, size_t errlen)
{
    /* the instance the template's spare was forked ahead for, into this cgroup */
    int spare = fn->tmpl && fn->tmpl->state == TEMPLATE_READY ? fn->tmpl->spare_id : 0;
    if (spare) {
        fn->tmpl->spare_id = 0;
        fn->tmpl->spare_cgroup[0] = '\0';
    }
    struct instance *in = instance_new(g, fn, spare, err, errlen);
    if (!in)
        return -ENOMEM;
    struct spawn sp = {.path = g->fn_bin,
                       .netns = g->iso.netns,
                       .drop = g->iso.drop_uid,
                       .uid = fn->uid,
                       .gid = (gid_t)fn->uid};
    sp.listen_fd = bind_instance_socket(in->sock, err, errlen);
    if (sp.listen_fd < 0) {
        int rc = sp.listen_fd;
        free(in);
        return rc;
    }
    sp.argv[0] = g->fn_bin;
    sp.argv[1] = "--listen";
    sp.argv[2] = "fd:3";
    int a = model_args(g, &fn->spec, sp.argv);
    int pipefd[2] = {-1, -1}, ready[2] = {-1, -1};
    if (pipe2(pipefd, O_CLOEXEC) != 0)
        log_warn("instance %s-%d: no log pipe: %s", fn->spec.name, in->id, strerror(errno));
    if (pipe2(ready, O_CLOEXEC) != 0)
        log_warn("instance %s-%d: no readiness pipe (%s): probing /_/ready instead", fn->spec.name,
                 in->id, strerror(errno));
    sp.ready_fd = ready[1];
    if (ready[1] >= 0) {
        sp.argv[a++] = "--ready-fd";
        sp.argv[a++] = "4";
        sp.argv[a] = NULL;
    }
    sp.out_fd = pipefd[1];
    sp.cgroup_fd = cgroup_create(g, in, fn->spec.mem_limit);
    pid_t tmpl = fn->tmpl ? fn->tmpl->pid : 0;
    in->spawn_ns = now_ns();
    in->pid = template_fork(g, fn, &sp);
    in->templated = in->pid > 0;
    int saved = 0;
    if (in->pid == 0) {
        build_env(&fn->spec, sp.envp);
        in->pid = spawn_run(&sp);
        saved = errno;
        free_strv(sp.envp);
    }
    close(sp.listen_fd);
    if (sp.cgroup_fd >= 0)
        close(sp.cgroup_fd);
    if (pipefd[1] >= 0)
        close(pipefd[1]);
    if (ready[1] >= 0)
        close(ready[1]);
    if (in->pid < 0) {
        if (pipefd[0] >= 0)
            close(pipefd[0]);
        if (ready[0] >= 0)
            close(ready[0]);
        if (in->cgroup[0]) /* whatever took the fds (a failed template fork) dies with it */
            cgroup_remove(&g->iso, in->cgroup);
        unlink(in->sock);
        int id = in->id;
        free(in);
        if (!saved)
            return seterr(err, errlen, -EAGAIN,
                          "the template failed to fork instance %d; the next one is exec'd", id);
        return seterr(err, errlen, -saved, "fork: %s", strerror(saved));
    }
    if (pipefd[0] >= 0) {
        char label[GW_NAME_MAX + 16];
        snprintf(label, sizeof label, "%s-%d", fn->spec.name, in->id);
        start_log_reader(g, fn->spec.name, label, pipefd[0]);
    }
    write_pidfile(g, in->pidname, in->pid);
    in->state = INST_STARTING;
    in->started_ms = now_ms();
    in->next = fn->instances;
    fn->instances = in;
    if (ready[0] >= 0)
        in->pushed = ready_wait_start(g, in, ready[0]) == 0;
    if (in->templated) {
        log_info("instance %s-%d: forked pid %d from template pid %d%s (uid %d)", fn->spec.name,
                 in->id, (int)in->pid, (int)tmpl, spare ? ", its spare" : "",
                 g->iso.drop_uid ? (int)fn->uid : (int)geteuid());
    } else
        log_info("instance %s-%d: started pid %d (%s, uid %d)", fn->spec.name, in->id, (int)in->pid,
                 fn->spec.private_model ? "private model" : "shared model",
                 g->iso.drop_uid ? (int)fn->uid : (int)geteuid());
    /* the next spare (an unused one, whose cgroup this exec'd instance took, is replaced) */
    template_prepare(g, fn);
    return 0;
}

void instance_stop(struct gateway *g, struct instance *in)
{
    if (in->state == INST_STOPPING || in->state == INST_DEAD)
        return;
    kill(in->pid, SIGTERM);
    in->state = INST_STOPPING;
    in->stop_ms = now_ms();
    log_info("instance %s-%d: stopping pid %d", in->fn->spec.name, in->id, (int)in->pid);
}

void instance_free(struct instance *in)
{
    for (int i = 0; i < in->curl_nidle; i++)
        proxy_handle_free(in->curl_idle[i]);
    free(in->curl_idle);
    free(in);
}

static void unlink_instance(struct function *fn, struct instance *in)
{
    for (struct instance **p = &fn->instances; *p; p = &(*p)->next) {
        if (*p == in) {
            *p = in->next;
            return;
        }
    }
}

void instance_release(struct gateway *g, struct instance *in)
{
    in->inflight--;
    if (in->state == INST_DEAD && in->inflight == 0) {
        unlink_instance(in->fn, in);
        instance_free(in);
    }
    pthread_cond_broadcast(&g->changed);
}

/* Crash loops back off: 0.25 s doubling per failure up to 30 s. */
void function_backoff(struct function *fn)
{
    int64_t ms = 250LL << (fn->failures < 7 ? fn->failures : 7);
    fn->failures++;
    fn->backoff_until_ms = now_ms() + (ms < 30000 ? ms : 30000);
}

#define REFUSAL_RETRY_MS 30000 /* until the store's own retry_in_ms is known */

/* The store refused fn's model: no new instance (no crash loop) until it may say otherwise. */
static void function_refused(struct function *fn)
{
    if (!fn->refused)
        snprintf(fn->refusal, sizeof fn->refusal, "the store refused the model %.400s",
                 fn->spec.image);
    fn->refused = true;
    fn->refusal_pending = true;
    fn->backoff_until_ms = now_ms() + REFUSAL_RETRY_MS;
}

/* The process of `in` has exited (status st). */
static void instance_exited(struct gateway *g, struct instance *in, int st)
{
    struct function *fn = in->fn;
    bool expected = in->state == INST_STOPPING;
    if (!expected && in->templated && WIFEXITED(st) && WEXITSTATUS(st) == FN_EXIT_TEMPLATE_STALE) {
        log_warn("instance %s-%d: the store now hands another image of %s than its template "
                 "mapped; the next instance starts by exec",
                 fn->spec.name, in->id, fn->spec.image);
        template_retire(g, fn, "its image is no longer the store's", false);
    } else if (!expected && WIFEXITED(st) && WEXITSTATUS(st) == FN_EXIT_REFUSED) {
        log_warn("instance %s-%d: the store refused model %s; no new instance before a retry",
                 fn->spec.name, in->id, fn->spec.image);
        function_refused(fn);
    } else if (!expected) {
        if (WIFSIGNALED(st))
            log_warn("instance %s-%d: pid %d killed by signal %d; replacing it", fn->spec.name,
                     in->id, (int)in->pid, WTERMSIG(st));
        else
            log_warn("instance %s-%d: pid %d exited with status %d; replacing it", fn->spec.name,
                     in->id, (int)in->pid, WEXITSTATUS(st));
        if (in->state == INST_STARTING)
            function_backoff(fn);
    }
    in->state = INST_DEAD;
    unlink(in->sock);
    remove_pidfile(g, in->pidname);
    if (in->cgroup[0] && cgroup_remove(&g->iso, in->cgroup) != 0)
        log_debug("cgroup %s: still busy; the sweep removes it", in->cgroup);
    if (in->inflight == 0) {
        unlink_instance(fn, in);
        instance_free(in);
    }
    pthread_cond_broadcast(&g->changed);
}

struct instance *instance_by_pid(struct gateway *g, pid_t pid)
{
    for (struct function *fn = g->functions; fn; fn = fn->next)
        for (struct instance *in = fn->instances; in; in = in->next)
            if (in->pid == pid && in->state != INST_DEAD)
                return in;
    return NULL;
}

/* Under the lock: collect exited children. */
void reap_children(struct gateway *g)
{
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        if (pid == g->store_pid) {
            log_error("shmfaas-store (pid %d) exited with status %d; restarting it", (int)pid, st);
            g->store_pid = 0;
            templates_retire_all(g, "the store restarts", false); /* re-made at the next scale-up */
            continue;
        }
        struct function *tf = template_by_pid(g, pid);
        if (tf) {
            template_exited(g, tf, st);
            continue;
        }
        struct instance *in = instance_by_pid(g, pid);
        if (in)
            instance_exited(g, in, st);
    }
}

/* ---- the store child ---- */

static int sock_connectable(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (str_fmt(sa.sun_path, sizeof sa.sun_path, "%s", path))
        return -ENAMETOOLONG;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

int store_start(struct gateway *g, char *err, size_t errlen)
{
    char uid[32], disk_dir[600];
    struct spawn sp = {
        .path = g->store_bin, .out_fd = -1, .cgroup_fd = -1, .listen_fd = -1, .ready_fd = -1};
    int a = 0;
    sp.argv[a++] = g->store_bin;
    sp.argv[a++] = "--socket";
    sp.argv[a++] = g->store_sock;
    sp.argv[a++] = "--dir";
    sp.argv[a++] = g->store_dir;
    sp.argv[a++] = "--models";
    sp.argv[a++] = g->models;
    if (g->budget[0]) {
        sp.argv[a++] = "--budget";
        sp.argv[a++] = g->budget;
    }
    if (g->iso.drop_uid) {
        snprintf(uid, sizeof uid, "%u-%u", (unsigned)g->uid_first, (unsigned)g->uid_last);
        sp.argv[a++] = "--allow-uid";
        sp.argv[a++] = uid;
    }
    if (g->keep_images)
        sp.argv[a++] = "--keep-images";
    /* The disk tier: compiled images survive eviction and reboots in STATE/images. */
    if (strcmp(g->disk_budget, "0") != 0 &&
        str_fmt(disk_dir, sizeof disk_dir, "%s/images", g->state) == 0) {
        sp.argv[a++] = "--disk-dir";
        sp.argv[a++] = disk_dir;
        if (g->disk_budget[0]) {
            sp.argv[a++] = "--disk-budget";
            sp.argv[a++] = g->disk_budget;
        }
    }
    sp.argv[a] = NULL;
    build_env(&(struct fn_spec){0}, sp.envp);
    unlink(g->store_sock);
    g->store_pid = spawn_run(&sp);
    free_strv(sp.envp);
    if (g->store_pid < 0)
        return seterr(err, errlen, -errno, "cannot start %s: %s", g->store_bin, strerror(errno));
    write_pidfile(g, "store.pid", g->store_pid);
    for (int i = 0; i < 3000; i++) {
        int st;
        if (sock_connectable(g->store_sock) == 0) {
            log_info("shmfaas-store pid %d serving on %s (images in %s)", (int)g->store_pid,
                     g->store_sock, g->store_dir);
            return 0;
        }
        if (waitpid(g->store_pid, &st, WNOHANG) == g->store_pid) {
            g->store_pid = 0;
            return seterr(err, errlen, -EIO, "%s exited (status %d) before serving on %s",
                          g->store_bin, st, g->store_sock);
        }
        usleep(10000);
    }
    return seterr(err, errlen, -ETIMEDOUT, "%s did not open %s within 30 s", g->store_bin,
                  g->store_sock);
}

void store_stop(struct gateway *g)
{
    if (g->store_pid <= 0) {
        store_prepare_drain(g);
        return;
    }
    kill(g->store_pid, SIGTERM);
    int st;
    for (int i = 0; i < 500; i++) {
        if (waitpid(g->store_pid, &st, WNOHANG) == g->store_pid)
            break;
        if (i == 499) {
            kill(g->store_pid, SIGKILL);
            waitpid(g->store_pid, &st, 0);
        }
        usleep(10000);
    }
    remove_pidfile(g, "store.pid");
    g->store_pid = 0;
    store_prepare_drain(g); /* their PREPAREs ended with the store */
}
