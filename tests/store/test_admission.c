/*
 * Issue 12, store admission: peer credentials are checked at accept. A flood of 5000 connections
 * held open by a uid that is not allowed costs the store no slot and only a few log lines, while
 * allowed clients keep attaching; an allowed uid past its --max-conns-per-uid is refused while
 * another allowed uid still attaches; thread counts outside 1..nproc (or --threads-allowed) are
 * refused, so an allowed uid cannot fill the budget with variants of one model.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "harness.h"

#include "client/client.h"
#include "common/common.h"
#include "store/proto.h"

#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define FLOOD          5000
#define DISALLOWED_UID 65531
#define ALLOWED_UID    65534
#define ALLOWED_UID2   65532

static void become(uid_t uid)
{
    if (setgroups(0, NULL) < 0 || setgid(uid) < 0 || setuid(uid) < 0)
        _exit(100);
}

/* STATS on socket s; returns the proto_call code and fills err. */
static int stats_call(int s, char *err, size_t errlen)
{
    static uint8_t buf[PROTO_MAX_MSG];
    struct proto_msg req = {.type = PROTO_STATS, .seq = 1}, reply;
    return proto_call(s, &req, buf, &reply, NULL, err, errlen);
}

/* As DISALLOWED_UID: opens FLOOD connections and holds them; reports on `done` how many it
 * opened, then whether the first one read the store's refusal; waits to be killed. */
static pid_t flood(const struct store_env *e, int done)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid != 0)
        return pid;
    struct rlimit rl = {FLOOD + 64, FLOOD + 64};
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        _exit(101);
    become(DISALLOWED_UID);
    static int fds[FLOOD];
    int n = 0;
    for (int i = 0; i < FLOOD; i++) {
        fds[i] = proto_connect(e->sock, NULL, 0);
        n += fds[i] >= 0;
    }
    char err[1200];
    int rc = fds[0] >= 0 ? stats_call(fds[0], err, sizeof(err)) : -EBADF;
    int refused = rc == -EACCES && strstr(err, "may not use this store") != NULL;
    if (write(done, &n, sizeof(n)) != sizeof(n) || write(done, &refused, sizeof(refused)) < 0)
        _exit(102);
    pause();
    _exit(0);
}

/* As uid: attach model and detach; exit 0 on success. */
static int attach_as(const struct store_env *e, uid_t uid, const char *model)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        become(uid);
        struct store_client *c;
        const struct store_image *img;
        char err[1200];
        if (store_connect(e->sock, &c, err, sizeof(err)) < 0 ||
            store_attach(c, model, 1, &img, err, sizeof(err)) < 0) {
            fprintf(stderr, "uid %u: %s\n", (unsigned)uid, err);
            _exit(1);
        }
        store_close(c);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
}

static void test_flood_from_disallowed_uid(void **state)
{
    struct store_env *e = *state;
    assert_int_equal(chmod(e->root, 0711), 0); /* the socket must be reachable by them */
    env_log_to_file(e);
    env_start(e, "1GiB", (const char *[]){"--allow-uid", "65532-65534", NULL});
    int fds_before = proc_fd_count(e->pid);

    int p[2];
    assert_int_equal(pipe(p), 0);
    int64_t t0 = now_ns();
    pid_t attacker = flood(e, p[1]);
    close(p[1]);
    /* Allowed clients attach throughout the flood. */
    int attaches = 0;
    struct store_client *c;
    char err[1200];
    assert_int_equal(store_connect(e->sock, &c, err, sizeof(err)), 0);
    for (int i = 0; i < 20; i++) {
        const struct store_image *img;
        assert_int_equal(store_attach(c, i % 2 ? "gemm_a" : "cnn", 1, &img, err, sizeof(err)), 0);
        assert_int_equal(store_detach(c, img, err, sizeof(err)), 0);
        attaches++;
    }
    int opened = 0, refused = 0;
    assert_int_equal(read(p[0], &opened, sizeof(opened)), sizeof(opened));
    assert_int_equal(read(p[0], &refused, sizeof(refused)), sizeof(refused));
    close(p[0]);
    double flood_s = (double)(now_ns() - t0) / 1e9;

    /* While the 5000 connections are still held open by the attacker: */
    int fds_during = proc_fd_count(e->pid);
    assert_int_equal(attach_as(e, ALLOWED_UID, "gemm_b"), 0);
    json_t *st = env_stats(e);
    int64_t rejected = stats_total(st, "rejected_connections");
    json_decref(st);
    kill(attacker, SIGKILL);
    waitpid(attacker, NULL, 0);
    store_close(c);

    int lines = env_log_count(e, "uid 65531 may not use this store");
    printf("admission: %d connections from uid %d held open in %.2f s, %lld rejected at accept, "
           "store fds %d before / %d during, %d allowed attaches meanwhile, %d log lines\n",
           opened, DISALLOWED_UID, flood_s, (long long)rejected, fds_before, fds_during, attaches,
           lines);
    assert_int_equal(opened, FLOOD);
    assert_true(refused); /* the client was told why */
    assert_true(rejected >= FLOOD);
    /* no slot held for any of them (the allowed attaches' image may add a plan part's fd and
     * its weights blob's) */
    assert_true(fds_during <= fds_before + 5);
    assert_true(lines >= 1);
    assert_true(lines <= (int)flood_s + 3); /* one line per second, not per connection */
    assert_true(env_log_count(e, "more like it from uid 65531") >= (flood_s >= 1.0 ? 1 : 0));
}

/* As ALLOWED_UID: holds `cap` connections (each answered), then checks that one more is refused
 * for the cap; reports on `held`, waits for a byte on `go`, then checks a new one works after
 * closing one. */
static pid_t hold_cap(const struct store_env *e, int cap, int held, int go)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid != 0)
        return pid;
    become(ALLOWED_UID);
    int s[16];
    char err[1200];
    for (int i = 0; i < cap; i++) {
        s[i] = proto_connect(e->sock, err, sizeof(err));
        if (s[i] < 0 || stats_call(s[i], err, sizeof(err)) < 0)
            _exit(11);
    }
    int extra = proto_connect(e->sock, err, sizeof(err));
    int rc = extra < 0 ? extra : stats_call(extra, err, sizeof(err));
    if (rc != -EACCES || !strstr(err, "--max-conns-per-uid"))
        _exit(12);
    close(extra);
    char b = 1;
    if (write(held, &b, 1) != 1 || read(go, &b, 1) != 1)
        _exit(13);
    close(s[0]);
    usleep(100 * 1000); /* the store sees the close before the next accept */
    extra = proto_connect(e->sock, err, sizeof(err));
    if (extra < 0 || stats_call(extra, err, sizeof(err)) < 0)
        _exit(14);
    _exit(0);
}

static void test_per_uid_cap(void **state)
{
    struct store_env *e = *state;
    assert_int_equal(chmod(e->root, 0711), 0);
    env_start(e, "1GiB",
              (const char *[]){"--allow-uid", "65532-65534", "--max-conns-per-uid", "4", NULL});
    int held[2], go[2];
    assert_int_equal(pipe(held), 0);
    assert_int_equal(pipe(go), 0);
    pid_t holder = hold_cap(e, 4, held[1], go[0]);
    char b;
    assert_int_equal(read(held[0], &b, 1), 1);
    /* uid 65534 is at its cap: uid 65532 (same range) still attaches, 65531 is not allowed. */
    assert_int_equal(attach_as(e, ALLOWED_UID2, "gemm_a"), 0);
    assert_int_not_equal(attach_as(e, DISALLOWED_UID, "gemm_a"), 0);
    assert_int_equal(write(go[1], "g", 1), 1);
    int status;
    waitpid(holder, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    printf("admission: uid %d refused past 4 connections (and served again after closing one), "
           "uid %d attached meanwhile, uid %d refused\n",
           ALLOWED_UID, ALLOWED_UID2, DISALLOWED_UID);
    for (int i = 0; i < 2; i++) {
        close(held[i]);
        close(go[i]);
    }
}

static int attach_threads(const struct store_env *e, int threads, char *err, size_t errlen)
{
    struct store_client *c;
    const struct store_image *img;
    assert_int_equal(store_connect(e->sock, &c, err, errlen), 0);
    int rc = store_attach(c, "gemm_a", threads, &img, err, errlen);
    store_close(c);
    return rc;
}

static void test_thread_counts(void **state)
{
    struct store_env *e = *state;
    long nproc = sysconf(_SC_NPROCESSORS_ONLN);
    char err[1200];
    env_start(e, "1GiB", NULL);
    assert_int_equal(attach_threads(e, 1, err, sizeof(err)), 0);
    assert_int_equal(attach_threads(e, (int)nproc, err, sizeof(err)), 0);
    assert_int_equal(attach_threads(e, (int)nproc + 1, err, sizeof(err)), -ERANGE);
    printf("threads: %s\n", err);
    assert_non_null(strstr(err, "outside 1.."));
    assert_int_equal(attach_threads(e, PROTO_MAX_THREADS, err, sizeof(err)), -ERANGE);
    json_t *st = env_stats(e);
    assert_int_equal(stats_total(st, "compiles_started"), nproc > 1 ? 2 : 1);
    json_decref(st);
    env_stop(e, SIGTERM);

    env_start(e, "1GiB", (const char *[]){"--threads-allowed", "1,2", NULL});
    assert_int_equal(attach_threads(e, 2, err, sizeof(err)), 0);
    assert_int_equal(attach_threads(e, 3, err, sizeof(err)), -ERANGE);
    assert_non_null(strstr(err, "--threads-allowed"));
    printf("threads: %s\n", err);

    /* An instance asking for a refused count exits 75, not 1: its supervisor backs off. */
    char bin[512], listen[200];
    env_binary("src/fn/shmfaas-fn", bin, sizeof(bin));
    snprintf(listen, sizeof(listen), "unix:%s/fn.sock", e->root);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("threads", "3", 1);
        execl(bin, bin, "--model", "gemm_a", "--store", e->sock, "--listen", listen,
              (char *)NULL);
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 75);
}

int main(void)
{
    if (geteuid() != 0) {
        printf("admission: not root, cannot switch uids; skipped\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_flood_from_disallowed_uid, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_per_uid_cap, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_thread_counts, env_setup, env_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
