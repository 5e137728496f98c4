/*
 * The template: `shmfaas-fn --template`, started by shmfaasd (as root, in a cgroup and network
 * namespace of its own, no_new_privs) with a SOCK_SEQPACKET socketpair as fd 3. It maps the
 * image (without a lease), opens the model, creates the session, warms up (threads = 1) and
 * releases the arena, then answers shmfaasd's fork requests (common/tmplproto.h) until shmfaasd
 * closes the socket, a stop signal, or the store evicts the image (its link count drops to 0).
 *
 * Each request double-forks: the middle process exits at once, so the instance is re-parented
 * to shmfaasd (PR_SET_CHILD_SUBREAPER), which waits for it, kills it and reaps it exactly as an
 * exec'd one. The instance then takes its identity before it reads anything from anyone: its
 * cgroup (joined while still root), a new network namespace, its function's uid = gid, no
 * supplementary groups, no_new_privs, the fds shmfaasd sent as 1/2 (log), 3 (listener) and 4
 * (readiness) and nothing else; then its own lease on the same image (fn_source_take_lease).
 *
 * Why the template can fork at all: it is single-threaded (checked before it says ready: no
 * HTTP server, no store watcher, no OpenMP team has run), so the child has every lock it needs.
 * The template parses nothing but shmfaasd's fixed-size messages (tmpl_msg_check) and is not
 * dumpable, so an instance (another uid) can neither ptrace nor signal it, and never holds its
 * control socket (fd 3 is replaced by the listener before the instance runs any of its code).
 */
#include "fn/fn.h"
#include "common/tmplproto.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define CTL_FD         3
#define EVICT_CHECK_MS 500 /* how often the template looks whether its image was evicted */
#define HIGH_FD        64  /* received fds are moved above the numbers the instance gets */

/* Threads of this process, from /proc/self/stat (field 20); -1 when unknown. */
static int thread_count(void)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "re");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    for (int field = 2; p && field < 20; field++)
        p = strchr(p + 1, ' ');
    return p ? atoi(p + 1) : -1;
}

static void send_failed(int err_code, const char *why)
{
    struct tmpl_msg m;
    tmpl_msg_init(&m, TMPL_FAILED);
    m.err = err_code;
    snprintf(m.text, sizeof m.text, "%.220s", why);
    if (tmpl_send(CTL_FD, &m, NULL, 0) < 0)
        log_debug("template: cannot tell shmfaasd: %s", why);
}

static bool image_evicted(int fd)
{
    struct stat st;
    return fd >= 0 && fstat(fd, &st) == 0 && st.st_nlink == 0;
}

/* ---- the forked instance's identity ---- */

/* Moves fd above HIGH_FD (close-on-exec): dup2 onto 0-4 can then not clobber it. */
static int move_high(int fd)
{
    int n = fcntl(fd, F_DUPFD_CLOEXEC, HIGH_FD);
    close(fd);
    return n;
}

static void child_fail(const char *what)
{
    char msg[256];
    int n =
        snprintf(msg, sizeof msg, "shmfaas-fn: template instance: %s: %s\n", what, strerror(errno));
    if (write(2, msg, (size_t)(n > 0 ? n : 0)) < 0)
        _exit(126);
    _exit(126);
}

/* The cgroup (joined while root) and a new netns: the slow part of an identity (a cgroup v1
 * migration waits for an RCU grace period, ms), which a spare does ahead of its request. */
static void join_isolation(uint32_t flags, int cgroup_fd)
{
    if ((flags & TMPL_F_CGROUP) && write(cgroup_fd, "0", 1) != 1)
        log_warn("isolation: could not join cgroup: %s", strerror(errno));
    if ((flags & TMPL_F_NETNS) && unshare(CLONE_NEWNET) != 0)
        log_warn("isolation: unshare(CLONE_NEWNET) failed: %s", strerror(errno));
}

/* Runs first in the forked instance, in the order the exec path (gateway/instance.c) uses:
 * cgroup while root, netns (both done already in a spare: joined), uid, no_new_privs, then the
 * fds. A step the host does not allow is reported on the log and skipped, as there; failing to
 * drop the uid is fatal. */
static void take_identity(const struct tmpl_msg *m, int fds[TMPL_MAX_FDS], int image_fd, int sig_fd,
                          bool joined)
{
    if (image_fd >= 0)
        close(image_fd);
    close(sig_fd);
    for (int i = 0; i < TMPL_MAX_FDS; i++)
        if (fds[i] >= 0 && (fds[i] = move_high(fds[i])) < 0)
            child_fail("fcntl");
    setpgid(0, 0);
    if (dup2(fds[TMPL_FD_LOG], 1) < 0 || dup2(fds[TMPL_FD_LOG], 2) < 0)
        _exit(126);
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull >= 0 && dup2(devnull, 0) < 0)
        child_fail("dup2 stdin");
    if (!joined)
        join_isolation(m->flags, fds[TMPL_FD_CGROUP]);
    if (m->flags & TMPL_F_DROP) {
        if (setgroups(0, NULL) || setgid((gid_t)m->gid) || setuid((uid_t)m->uid))
            child_fail("could not drop to the unprivileged user");
        /* dumpable was 0 (the template's) and a uid change resets it to suid_dumpable: make
         * the instance's /proc entries its own uid's, as an exec'd instance's are */
        prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        log_warn("isolation: PR_SET_NO_NEW_PRIVS failed: %s", strerror(errno));
    if (dup2(fds[TMPL_FD_LISTEN], 3) != 3 || dup2(fds[TMPL_FD_READY], 4) != 4)
        child_fail("dup2");
    syscall(SYS_close_range, 5U, ~0U, 0U);
}

/* ---- fork requests ---- */

/* Double fork: returns the instance's pid in the template, 0 in the instance, < 0 on error. */
static pid_t double_fork(char *err, size_t errlen)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return seterr(err, errlen, -errno, "pipe: %s", strerror(errno));
    pid_t mid = fork();
    if (mid == 0) {
        pid_t pid = fork();
        if (pid == 0) {
            close(p[0]);
            close(p[1]);
            return 0;
        }
        ssize_t n = write(p[1], &pid, sizeof pid);
        _exit(pid > 0 && n == (ssize_t)sizeof pid ? 0 : 1);
    }
    close(p[1]);
    pid_t pid = -1;
    int rc = 0;
    if (mid < 0)
        rc = seterr(err, errlen, -errno, "fork: %s", strerror(errno));
    else {
        ssize_t n = read(p[0], &pid, sizeof pid);
        int st;
        while (waitpid(mid, &st, 0) < 0 && errno == EINTR)
            ;
        if (n != (ssize_t)sizeof pid || pid <= 0)
            rc = seterr(err, errlen, -EAGAIN, "fork of the instance failed");
    }
    close(p[0]);
    return rc < 0 ? rc : pid;
}

/* ---- the spare: the next instance, forked ahead into its cgroup and netns ---- */

/* A spare is forked (double) on TMPL_PREPARE: the middle process stays its parent until the
 * hand-over, so a spare that dies early is the middle's to reap, never a pid shmfaasd could
 * mistake; both die with the template (PR_SET_PDEATHSIG). On the TMPL_FORK for its cgroup the
 * template sends it the request and the instance's fds, the spare answers with its pid, the
 * middle exits and the spare, re-parented to shmfaasd, takes the rest of its identity. */
struct spare {
    pid_t mid;               /* 0: no spare */
    int sock;                /* socketpair with the spare */
    int go;                  /* the middle's pipe: a byte = exit (hand over); EOF = kill it */
    uint64_t cg_dev, cg_ino; /* the cgroup.procs file it joined */
};

static void spare_discard(struct spare *sp)
{
    if (!sp->mid)
        return;
    close(sp->go); /* EOF: the middle kills the spare and exits */
    close(sp->sock);
    int st;
    while (waitpid(sp->mid, &st, 0) < 0 && errno == EINTR)
        ;
    *sp = (struct spare){0};
}

/* In a forked instance (a spare handed its request, or a fresh fork): its own identity, then
 * it serves. Returns 1 (serving) or exits. */
static int become_instance(struct fn_instance *in, struct fn_config *c, const struct tmpl_msg *m,
                           int fds[TMPL_MAX_FDS], int sig_fd, bool joined, int64_t t0)
{
    char err[512];
    take_identity(m, fds, fn_instance_image_fd(in), sig_fd, joined);
    c->ready_fd = 4;
    int rc = fn_instance_start_forked(in, t0, err, sizeof err);
    if (rc < 0) {
        log_error("%s", err);
        _exit(rc == -ESTALE ? FN_EXIT_TEMPLATE_STALE : 1);
    }
    return 1;
}

/* In the spare: joins, then waits for its request; returns 1 handed over, serving. */
static int spare_main(struct fn_instance *in, struct fn_config *c, int sock, uint32_t flags,
                      int cgroup_fd, int sig_fd)
{
    close(CTL_FD);
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    join_isolation(flags, cgroup_fd);
    close(cgroup_fd);
    struct tmpl_msg m, a;
    int fds[TMPL_MAX_FDS];
    char err[512];
    if (tmpl_recv(sock, &m, fds, 1u << TMPL_FORK, -1, err, sizeof err) < 0)
        _exit(0); /* discarded */
    int64_t t0 = now_ns();
    prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0); /* its parent, the middle, exits now */
    tmpl_msg_init(&a, TMPL_FORKED);
    a.pid = getpid();
    if (tmpl_send(sock, &a, NULL, 0) < 0)
        _exit(1);
    close(sock);
    return become_instance(in, c, &m, fds, sig_fd, true, t0);
}

/* TMPL_PREPARE: a new spare in cgroup_fd's cgroup (the old one discarded). Returns 1 in the
 * spare once handed over, 0 in the template. */
static int spare_prepare(struct spare *sp, struct fn_instance *in, struct fn_config *c,
                         const struct tmpl_msg *m, int cgroup_fd, int sig_fd)
{
    spare_discard(sp);
    struct stat st;
    int so[2] = {-1, -1}, go[2] = {-1, -1};
    if (cgroup_fd < 0 || fstat(cgroup_fd, &st) < 0 ||
        socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, so) < 0 || pipe2(go, O_CLOEXEC) < 0) {
        log_warn("template: no spare: %s", strerror(errno));
        for (int i = 0; i < 2; i++) {
            if (so[i] >= 0)
                close(so[i]);
            if (go[i] >= 0)
                close(go[i]);
        }
        return 0;
    }
    pid_t mid = fork();
    if (mid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        close(so[0]);
        close(go[1]);
        pid_t pid = fork();
        if (pid == 0) {
            close(go[0]);
            return spare_main(in, c, so[1], m->flags, cgroup_fd, sig_fd);
        }
        close(so[1]);
        char b;
        int status;
        ssize_t n = read(go[0], &b, 1);
        if (n == 1 && pid > 0 && waitpid(pid, &status, WNOHANG) == 0)
            _exit(0); /* handed over: the spare goes to shmfaasd */
        if (pid > 0)
            kill(pid, SIGKILL);
        _exit(1);
    }
    close(so[1]);
    close(go[0]);
    if (mid < 0) {
        log_warn("template: no spare: fork: %s", strerror(errno));
        close(so[0]);
        close(go[1]);
        return 0;
    }
    *sp = (struct spare){
        .mid = mid, .sock = so[0], .go = go[1], .cg_dev = st.st_dev, .cg_ino = st.st_ino};
    return 0;
}

/* Is the spare the one prepared for this request's cgroup? */
static bool spare_fits(const struct spare *sp, const struct tmpl_msg *m, int fds[TMPL_MAX_FDS])
{
    struct stat st;
    return sp->mid && (m->flags & TMPL_F_CGROUP) && fstat(fds[TMPL_FD_CGROUP], &st) == 0 &&
           st.st_dev == sp->cg_dev && st.st_ino == sp->cg_ino;
}

/* Hands the request to the spare: its pid, or < 0 (the spare is gone either way). */
static pid_t spare_hand_over(struct spare *sp, const struct tmpl_msg *m, int fds[TMPL_MAX_FDS],
                             char *err, size_t errlen)
{
    struct tmpl_msg h = *m, a;
    h.flags &= ~TMPL_F_CGROUP; /* joined already */
    int send[3] = {fds[TMPL_FD_LISTEN], fds[TMPL_FD_READY], fds[TMPL_FD_LOG]}, got[TMPL_MAX_FDS];
    int rc = tmpl_send(sp->sock, &h, send, 3);
    if (rc < 0)
        seterr(err, errlen, rc, "spare: send: %s", strerror(-rc));
    else
        rc = tmpl_recv(sp->sock, &a, got, 1u << TMPL_FORKED, 2000, err, errlen);
    int st = 0;
    if (rc == 0 && write(sp->go, "G", 1) != 1)
        rc = seterr(err, errlen, -errno, "spare: %s", strerror(errno));
    if (rc == 0) {
        while (waitpid(sp->mid, &st, 0) < 0 && errno == EINTR)
            ;
        sp->mid = 0;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || a.pid <= 1)
            rc = seterr(err, errlen, -ECHILD, "the spare died before its hand-over");
    }
    if (sp->mid)
        spare_discard(sp);
    else {
        close(sp->go);
        close(sp->sock);
        *sp = (struct spare){0};
    }
    return rc < 0 ? rc : a.pid;
}

/* One fork request. Returns 1 in the forked instance (serving), 0 in the template. */
static int serve_fork(struct fn_instance *in, struct fn_config *c, struct spare *sp,
                      const struct tmpl_msg *m, int fds[TMPL_MAX_FDS], int sig_fd)
{
    char err[512];
    /* A spare that took the request's fds and then failed is not retried by a fork of its own:
     * shmfaasd aborts that instance (killing whatever joined its cgroup) and tries again. */
    pid_t pid = spare_fits(sp, m, fds) ? spare_hand_over(sp, m, fds, err, sizeof err)
                                       : double_fork(err, sizeof err);
    if (pid == 0)
        return become_instance(in, c, m, fds, sig_fd, false, now_ns());
    for (int i = 0; i < TMPL_MAX_FDS; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    struct tmpl_msg r;
    tmpl_msg_init(&r, pid > 0 ? TMPL_FORKED : TMPL_FAILED);
    r.pid = pid > 0 ? pid : 0;
    r.err = pid > 0 ? 0 : pid;
    if (pid < 0)
        snprintf(r.text, sizeof r.text, "%.200s", err);
    if (tmpl_send(CTL_FD, &r, NULL, 0) < 0)
        log_warn("template: cannot answer shmfaasd: %s", strerror(errno));
    return 0;
}

/* Why the template may not start, before anything is loaded. */
static int refuse_early(const struct fn_config *c, char *err, size_t errlen)
{
    struct stat st;
    if (fstat(CTL_FD, &st) < 0 || !S_ISSOCK(st.st_mode))
        return seterr(err, errlen, -EBADF, "--template: fd 3 is not shmfaasd's control socket");
    /* Test-only knob (tests/gateway/test_template.py): shmfaasd passes it from its own
     * environment to templates alone, never from a deployer's envVars. */
    const char *knob = getenv("SHMFAAS_TEST_TEMPLATE_FAIL");
    if (knob && *knob)
        return seterr(err, errlen, -EPERM,
                      "SHMFAAS_TEST_TEMPLATE_FAIL is set: refusing to become a template");
    if (c->private_path)
        return seterr(err, errlen, -EINVAL, "a --private model has no template");
    return 0;
}

static int stop_signals_fd(void)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGTERM);
    sigaddset(&s, SIGINT);
    return signalfd(-1, &s, SFD_CLOEXEC | SFD_NONBLOCK);
}

int fn_template_run(struct fn_config *c, struct fn_instance **out, char *err, size_t errlen)
{
    *out = NULL;
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    struct fn_instance *in = NULL;
    int rc = refuse_early(c, err, errlen);
    if (rc == 0)
        rc = fn_instance_prepare(c, &in, err, errlen);
    int threads = rc == 0 ? thread_count() : 1;
    if (rc == 0 && threads != 1)
        rc = seterr(err, errlen, -EDEADLK,
                    "the template runs %d threads; a fork would keep only one of them", threads);
    int sig_fd = rc == 0 ? stop_signals_fd() : -1;
    if (rc == 0 && sig_fd < 0)
        rc = seterr(err, errlen, -errno, "signalfd: %s", strerror(errno));
    if (rc < 0) {
        send_failed(rc, err);
        if (in)
            fn_instance_free_prepared(in);
        return rc;
    }
    struct tmpl_msg m;
    tmpl_msg_init(&m, TMPL_READY);
    m.pid = getpid();
    if (tmpl_send(CTL_FD, &m, NULL, 0) < 0)
        log_warn("template: shmfaasd is gone");
    log_info("template pid %d ready: model %s, %d thread(s)", (int)getpid(), c->model_ref,
             c->threads);
    struct spare sp = {0};
    for (;;) {
        struct pollfd p[2] = {{.fd = CTL_FD, .events = POLLIN}, {.fd = sig_fd, .events = POLLIN}};
        int n = poll(p, 2, EVICT_CHECK_MS);
        if (n < 0 && errno != EINTR)
            break;
        if (p[1].revents) {
            log_info("template: stop signal");
            break;
        }
        if (image_evicted(fn_instance_image_fd(in))) {
            log_info("template: the store evicted model %s; retiring", c->model_ref);
            break;
        }
        if (n <= 0 || !p[0].revents)
            continue;
        int fds[TMPL_MAX_FDS];
        char why[256];
        rc = tmpl_recv(CTL_FD, &m, fds, 1u << TMPL_FORK | 1u << TMPL_PREPARE, 0, why, sizeof why);
        if (rc == -EPIPE)
            break; /* shmfaasd closed the socket: retired */
        if (rc < 0) {
            log_warn("template: %s", why);
            if (rc != -ETIMEDOUT && rc != -EPROTO)
                break;
            continue;
        }
        int child = m.type == TMPL_PREPARE ? spare_prepare(&sp, in, c, &m, fds[0], sig_fd)
                                           : serve_fork(in, c, &sp, &m, fds, sig_fd);
        if (child == 1) {
            *out = in;
            return 1;
        }
        if (m.type == TMPL_PREPARE && fds[0] >= 0)
            close(fds[0]);
    }
    spare_discard(&sp);
    close(sig_fd);
    fn_instance_free_prepared(in);
    return 0;
}
