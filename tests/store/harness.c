/* Integration test harness: a real shmfaas-store on a temporary tmpfs directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "harness.h"

#include "client/client.h"
#include "common/common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *build_root(void)
{
    const char *b = getenv("SHMFAAS_BUILD");
    return b ? b : ".";
}

void model_source(const char *name, char *out, size_t len)
{
    snprintf(out, len, "%s/tests/store/%s.onnx", build_root(), name);
}

static void copy_file(const char *from, const char *to)
{
    uint8_t *data;
    size_t len;
    char err[512];
    int rc = read_file(from, 1u << 30, &data, &len, err, sizeof(err));
    if (rc < 0)
        fail_msg("%s (build the test models: ninja tests/store/models)", err);
    assert_int_equal(write_file_atomic(to, data, len, 0644, err, sizeof(err)), 0);
    free(data);
}

void env_create(struct store_env *e)
{
    memset(e, 0, sizeof(*e));
    strcpy(e->root, "/dev/shm/shmfaas-test-XXXXXX");
    assert_non_null(mkdtemp(e->root));
    snprintf(e->models, sizeof(e->models), "%s/models", e->root);
    snprintf(e->dir, sizeof(e->dir), "%s/images", e->root);
    snprintf(e->sock, sizeof(e->sock), "%s/store.sock", e->root);
    assert_int_equal(mkdir(e->models, 0755), 0);
    static const char *names[] = {"gemm_a", "gemm_b", "gemm_c", "cnn", "dyn_cnn"};
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        char from[512], to[256];
        model_source(names[i], from, sizeof(from));
        snprintf(to, sizeof(to), "%s/%s.onnx", e->models, names[i]);
        copy_file(from, to);
    }
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

void env_binary(const char *rel, char *out, size_t len)
{
    snprintf(out, len, "%s/%s", build_root(), rel);
}

void env_log_to_file(struct store_env *e)
{
    snprintf(e->log, sizeof(e->log), "%s/store.log", e->root);
}

int env_log_count(const struct store_env *e, const char *needle)
{
    FILE *f = fopen(e->log, "r");
    if (!f)
        return 0;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

static pid_t spawn_store(const struct store_env *e, const char *dir, const char *budget,
                         const char *const *extra)
{
    char bin[512];
    snprintf(bin, sizeof(bin), "%s/src/store/shmfaas-store", build_root());
    const char *argv[40] = {bin,        "--socket", e->sock,    "--dir", dir,
                            "--models", e->models,  "--budget", budget};
    int argc = 9;
    for (int i = 0; extra && extra[i] && argc < 38; i++)
        argv[argc++] = extra[i];
    argv[argc] = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (e->log[0]) {
            int fd = open(e->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
            if (fd < 0 || dup2(fd, 2) < 0)
                _exit(126);
        }
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

int env_start_refused(struct store_env *e, const char *dir, const char *const *extra)
{
    pid_t pid = spawn_store(e, dir, "1GiB", extra);
    for (int i = 0; i < 400; i++) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        sleep_ms(25);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

void env_start(struct store_env *e, const char *budget, const char *const *extra)
{
    pid_t pid = spawn_store(e, e->dir, budget, extra);
    e->pid = pid;
    for (int i = 0; i < 400; i++) {
        struct store_client *c;
        if (store_connect(e->sock, &c, NULL, 0) == 0) {
            store_close(c);
            return;
        }
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            e->pid = 0;
            fail_msg("shmfaas-store exited during start (status %d)", status);
        }
        sleep_ms(25);
    }
    fail_msg("shmfaas-store did not accept connections on %s within 10 s", e->sock);
}

void env_stop(struct store_env *e, int sig)
{
    if (e->pid <= 0)
        return;
    kill(e->pid, sig);
    int status;
    waitpid(e->pid, &status, 0);
    e->pid = 0;
    if (sig == SIGTERM)
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Store images left by a SIGKILLed store are immutable: clear the flag so they can go. */
static void clear_immutable(const char *path)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC), flags;
    if (fd < 0)
        return;
    if (ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 && (flags & FS_IMMUTABLE_FL)) {
        flags &= ~FS_IMMUTABLE_FL;
        ioctl(fd, FS_IOC_SETFLAGS, &flags);
    }
    close(fd);
}

static int rm_tree(const char *path)
{
    DIR *d = opendir(path);
    if (!d) {
        clear_immutable(path);
        return unlink(path);
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char p[512];
        snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
            rm_tree(p);
        } else {
            if (S_ISREG(st.st_mode))
                clear_immutable(p);
            unlink(p);
        }
    }
    closedir(d);
    int rc = rmdir(path);
    if (rc < 0 && errno == EBUSY) { /* the huge-page tmpfs of a killed store */
        umount2(path, MNT_DETACH);
        rc = rmdir(path);
    }
    return rc;
}

void env_destroy(struct store_env *e)
{
    if (e->pid > 0) {
        kill(e->pid, SIGKILL);
        waitpid(e->pid, NULL, 0);
        e->pid = 0;
    }
    if (e->root[0])
        rm_tree(e->root);
    e->root[0] = '\0';
}

json_t *env_stats(const struct store_env *e)
{
    struct store_client *c;
    char err[512], *text;
    if (store_connect(e->sock, &c, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    if (store_stats(c, &text, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    store_close(c);
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    free(text);
    assert_non_null(j);
    return j;
}

int64_t stats_total(json_t *stats, const char *key)
{
    json_t *v = json_object_get(json_object_get(stats, "totals"), key);
    if (!v)
        fail_msg("stats have no totals.%s", key);
    return json_is_real(v) ? (int64_t)json_real_value(v) : json_integer_value(v);
}

json_t *stats_model(json_t *stats, const char *name)
{
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(stats, "models"), i, m)
    {
        const char *names = json_string_value(json_object_get(m, "names"));
        char padded[300];
        snprintf(padded, sizeof(padded), ",%s,", names ? names : "");
        char want[200];
        snprintf(want, sizeof(want), ",%s,", name);
        if (strstr(padded, want))
            return m;
    }
    return NULL;
}

int env_each_image(const struct store_env *e, void (*fn)(const char *path, void *ctx), void *ctx)
{
    DIR *d = opendir(e->dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 5 || strcmp(de->d_name + len - 5, ".plan") != 0)
            continue;
        char p[512];
        snprintf(p, sizeof(p), "%s/%s", e->dir, de->d_name);
        if (fn)
            fn(p, ctx);
        n++;
    }
    closedir(d);
    return n;
}

static void add_size(const char *path, void *ctx)
{
    struct stat st;
    if (stat(path, &st) == 0)
        *(uint64_t *)ctx += (uint64_t)st.st_size;
}

int env_count_images(const struct store_env *e, uint64_t *bytes)
{
    *bytes = 0;
    int n = env_each_image(e, add_size, bytes);
    assert_true(n >= 0);
    *bytes += env_blob_bytes(e, NULL);
    return n;
}

uint64_t env_blob_bytes(const struct store_env *e, int *count)
{
    DIR *d = opendir(e->dir);
    uint64_t bytes = 0;
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 8 || strcmp(de->d_name + len - 8, ".weights") != 0)
            continue;
        char p[512];
        snprintf(p, sizeof(p), "%s/%s", e->dir, de->d_name);
        add_size(p, &bytes);
        n++;
    }
    if (d)
        closedir(d);
    if (count)
        *count = n;
    return bytes;
}

int proc_fd_count(pid_t pid)
{
    char p[64];
    snprintf(p, sizeof(p), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(p);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

int env_setup(void **state)
{
    static struct store_env e;
    env_create(&e);
    *state = &e;
    return 0;
}

int env_teardown(void **state)
{
    env_destroy(*state);
    return 0;
}
