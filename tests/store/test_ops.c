/*
 * The operator surface of shmfaas-store: the ls/stats/evict/attach subcommands against a running
 * store, and the Prometheus text on --metrics.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "harness.h"

#include "common/common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* Runs `shmfaas-store ARGS --socket SOCK`; returns its pid, its stdout on *out_fd. */
static pid_t spawn_cmd(const struct store_env *e, const char *cmd, const char *model, int *out_fd)
{
    char bin[512];
    snprintf(bin, sizeof(bin), "%s/src/store/shmfaas-store", getenv("SHMFAAS_BUILD"));
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        if (model)
            execl(bin, bin, cmd, model, "--socket", e->sock, (char *)NULL);
        else
            execl(bin, bin, cmd, "--socket", e->sock, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    *out_fd = p[0];
    return pid;
}

static int read_all(int fd, char *buf, size_t len)
{
    size_t got = 0;
    ssize_t n;
    while (got + 1 < len && (n = read(fd, buf + got, len - 1 - got)) > 0)
        got += (size_t)n;
    buf[got] = '\0';
    close(fd);
    return (int)got;
}

/* Runs a subcommand to completion; returns its exit status and output. */
static int run_cmd(const struct store_env *e, const char *cmd, const char *model, char *out,
                   size_t len)
{
    int fd;
    pid_t pid = spawn_cmd(e, cmd, model, &fd);
    read_all(fd, out, len);
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_subcommands(void **state)
{
    struct store_env *e = *state;
    env_start(e, "1GiB", NULL);
    char out[8192];

    /* attach holds a lease until SIGINT. */
    int fd;
    pid_t holder = spawn_cmd(e, "attach", "gemm_a", &fd);
    char line[1024];
    ssize_t n = read(fd, line, sizeof(line) - 1);
    assert_true(n > 0);
    line[n] = '\0';
    assert_non_null(strstr(line, "attached gemm_a"));
    json_t *st = env_stats(e);
    assert_int_equal(stats_total(st, "leases"), 1);
    json_decref(st);

    assert_int_equal(run_cmd(e, "ls", NULL, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "gemm_a"));
    assert_non_null(strstr(out, "resident"));
    assert_int_equal(run_cmd(e, "stats", NULL, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "\"resident_models\": 1"));
    /* A leased model is not evicted. */
    assert_int_equal(run_cmd(e, "evict", "gemm_a", out, sizeof(out)), 1);

    kill(holder, SIGINT);
    int status;
    waitpid(holder, &status, 0);
    close(fd);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    st = env_stats(e);
    assert_int_equal(stats_total(st, "leases"), 0);
    json_decref(st);

    assert_int_equal(run_cmd(e, "evict", "gemm_a", out, sizeof(out)), 0);
    assert_non_null(strstr(out, "evicted gemm_a"));
    st = env_stats(e);
    assert_int_equal(stats_total(st, "resident_models"), 0);
    assert_int_equal(stats_total(st, "evictions"), 1);
    json_decref(st);
    uint64_t bytes;
    assert_int_equal(env_count_images(e, &bytes), 0);
}

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&sa, &len), 0);
    close(s);
    return ntohs(sa.sin_port);
}

static void http_get(int port, const char *path, char *out, size_t len)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    char req[256];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: x\r\n\r\n", path);
    assert_int_equal(write(s, req, (size_t)n), n);
    read_all(s, out, len);
}

static void test_prometheus(void **state)
{
    struct store_env *e = *state;
    int port = free_port();
    char addr[32];
    snprintf(addr, sizeof(addr), ":%d", port); /* loopback by default */
    env_start(e, "1GiB", (const char *[]){"--metrics", addr, NULL});
    char out[16384];
    int fd;
    pid_t holder = spawn_cmd(e, "attach", "cnn", &fd);
    char line[1024];
    assert_true(read(fd, line, sizeof(line)) > 0);
    /* The snapshot is published right after the reply: poll briefly for it. */
    for (int i = 0; i < 100; i++) {
        http_get(port, "/metrics", out, sizeof(out));
        if (strstr(out, "shmfaas_store_leases 1\n"))
            break;
        usleep(20000);
    }
    kill(holder, SIGINT);
    waitpid(holder, NULL, 0);
    close(fd);
    assert_non_null(strstr(out, "200 OK"));
    static const char *want[] = {"shmfaas_store_resident_models 1\n",
                                 "shmfaas_store_budget_bytes 1073741824\n",
                                 "shmfaas_store_leases 1\n",
                                 "shmfaas_store_misses_total 1\n",
                                 "shmfaas_store_compiles_total 1\n",
                                 "shmfaas_store_hits_total 0\n",
                                 "shmfaas_store_evictions_total 0\n",
                                 "shmfaas_store_refused_total 0\n",
                                 "shmfaas_store_compile_seconds_total ",
                                 "shmfaas_store_resident_bytes ",
                                 "shmfaas_store_model_bytes{name=\"cnn\",hash=\"",
                                 "shmfaas_store_model_leases{name=\"cnn\""};
    for (size_t i = 0; i < ARRAY_LEN(want); i++)
        if (!strstr(out, want[i]))
            fail_msg("metrics lack %s:\n%s", want[i], out);
    http_get(port, "/other", out, sizeof(out));
    assert_non_null(strstr(out, "404"));
}

/* A compile runs on a worker thread: while a real zoo model compiles, STATS is answered and shows
 * it "compiling". */
static void test_serves_during_compile(void **state)
{
    struct store_env *e = *state;
    char from[512], to[256];
    const char *zoo = getenv("SHMFAAS_ZOO");
    snprintf(from, sizeof(from), "%s/resnet18/model.onnx", zoo ? zoo : "zoo");
    if (access(from, R_OK) != 0) {
        printf("no %s (make zoo); skipped\n", from);
        skip();
    }
    snprintf(to, sizeof(to), "%s/resnet18.onnx", e->models);
    assert_int_equal(symlink(from, to), 0); /* a symlink out of --models: must be refused */
    env_start(e, "1GiB", NULL);
    char out[256];
    assert_int_equal(run_cmd(e, "attach", "resnet18", out, sizeof(out)), 1);
    unlink(to);
    uint8_t *data;
    size_t len;
    assert_int_equal(read_file(from, 1u << 30, &data, &len, NULL, 0), 0);
    assert_int_equal(write_file_atomic(to, data, len, 0644, NULL, 0), 0);
    free(data);

    int fd;
    pid_t holder = spawn_cmd(e, "attach", "resnet18", &fd);
    int seen_compiling = 0, polls = 0;
    for (; polls < 2000 && !seen_compiling; polls++) {
        json_t *st = env_stats(e);
        json_t *m = stats_model(st, "resnet18");
        seen_compiling = m && !strcmp(json_string_value(json_object_get(m, "state")), "compiling");
        json_decref(st);
        usleep(2000);
    }
    char line[1024];
    ssize_t n = read(fd, line, sizeof(line) - 1);
    kill(holder, SIGINT);
    waitpid(holder, NULL, 0);
    close(fd);
    assert_true(n > 0);
    printf("store answered STATS during the resnet18 compile: %s\n", seen_compiling ? "yes" : "no");
    assert_true(seen_compiling);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_subcommands, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_prometheus, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_serves_during_compile, env_setup, env_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
