/* Unit tests for src/common: sizes, durations, SHA-256, atomic files, smaps_rollup. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "common/common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

static void test_parse_size(void **state)
{
    uint64_t v;
    assert_int_equal(parse_size("512Mi", &v), 0);
    assert_true(v == 512ull << 20);
    assert_int_equal(parse_size("1G", &v), 0);
    assert_true(v == 1000000000ull);
    assert_int_equal(parse_size("250M", &v), 0);
    assert_true(v == 250000000ull);
    assert_int_equal(parse_size("2GiB", &v), 0);
    assert_true(v == 2ull << 30);
    assert_int_equal(parse_size("1.5Gi", &v), 0);
    assert_true(v == 3ull << 29);
    assert_int_equal(parse_size("4096", &v), 0);
    assert_true(v == 4096);
    assert_int_equal(parse_size("", &v), -EINVAL);
    assert_int_equal(parse_size("-1Mi", &v), -EINVAL);
    assert_int_equal(parse_size("12Qi", &v), -EINVAL);
    assert_int_equal(parse_size("Mi", &v), -EINVAL);
    assert_int_equal(parse_size("1e30Ti", &v), -ERANGE);
}

static void test_parse_duration(void **state)
{
    int64_t ms;
    assert_int_equal(parse_duration_ms("30s", &ms), 0);
    assert_int_equal(ms, 30000);
    assert_int_equal(parse_duration_ms("5m", &ms), 0);
    assert_int_equal(ms, 300000);
    assert_int_equal(parse_duration_ms("1m30s", &ms), 0);
    assert_int_equal(ms, 90000);
    assert_int_equal(parse_duration_ms("250ms", &ms), 0);
    assert_int_equal(ms, 250);
    assert_int_equal(parse_duration_ms("2", &ms), 0);
    assert_int_equal(ms, 2000);
    assert_int_equal(parse_duration_ms("1h", &ms), 0);
    assert_int_equal(ms, 3600000);
    assert_int_equal(parse_duration_ms("x", &ms), -EINVAL);
    assert_int_equal(parse_duration_ms("10parsecs", &ms), -EINVAL);
    assert_int_equal(parse_duration_ms("-3s", &ms), -EINVAL);
}

static void test_sha256(void **state)
{
    uint8_t d[SHA256_LEN], back[SHA256_LEN];
    char hex[SHA256_HEX_LEN];
    sha256("abc", 3, d);
    sha256_hex(d, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(sha256_parse_hex(hex, back), 0);
    assert_memory_equal(d, back, SHA256_LEN);
    assert_int_equal(sha256_parse_hex("zz", back), -EINVAL);
}

static void test_atomic_file(void **state)
{
    char dir[] = "/tmp/shmfaas-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], err[256];
    snprintf(path, sizeof(path), "%s/a/b/c.json", dir);
    char sub[256];
    snprintf(sub, sizeof(sub), "%s/a/b", dir);
    assert_int_equal(mkdir_p(sub, 0700), 0);
    assert_int_equal(write_file_atomic(path, "hello", 5, 0600, err, sizeof(err)), 0);
    uint8_t *buf;
    size_t len;
    assert_int_equal(read_file(path, 100, &buf, &len, err, sizeof(err)), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(buf, "hello", 5);
    free(buf);
    assert_int_equal(read_file(path, 3, &buf, &len, err, sizeof(err)), -EFBIG);
    assert_non_null(strstr(err, "limit"));
    assert_true(read_file("/nonexistent/x", 3, &buf, &len, err, sizeof(err)) < 0);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* ---- write_file_atomic: what it replaces, what it writes in place, what it refuses ---- */

struct tmpdir {
    char path[64];
};

static void tmpdir_make(struct tmpdir *d)
{
    snprintf(d->path, sizeof d->path, "/tmp/shmfaas-test-XXXXXX");
    assert_non_null(mkdtemp(d->path));
}

static void tmpdir_remove(struct tmpdir *d)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->path);
    assert_int_equal(system(cmd), 0);
}

static void expect_contents(const char *path, const char *want)
{
    uint8_t *buf;
    size_t len;
    char err[256];
    assert_int_equal(read_file(path, 1 << 20, &buf, &len, err, sizeof err), 0);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(buf, want, len);
    free(buf);
}

/* Entries in dir other than the ones named: a temp file left behind shows up here. */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

static void test_atomic_replaces_regular(void **state)
{
    struct tmpdir d;
    tmpdir_make(&d);
    char path[128], other[128], err[256];
    snprintf(path, sizeof path, "%s/out.json", d.path);
    snprintf(other, sizeof other, "%s/other-link", d.path);
    assert_int_equal(write_file_atomic(path, "old", 3, 0644, err, sizeof err), 0);
    assert_int_equal(link(path, other), 0);
    struct stat before, after;
    assert_int_equal(stat(path, &before), 0);

    /* A new inode renamed over the name: the other link keeps the old bytes. */
    mode_t old_umask = umask(022);
    assert_int_equal(write_file_atomic(path, "new bytes", 9, 0600, err, sizeof err), 0);
    umask(old_umask);
    assert_int_equal(stat(path, &after), 0);
    assert_true(before.st_ino != after.st_ino);
    assert_int_equal(after.st_mode & 07777, 0600);
    expect_contents(path, "new bytes");
    expect_contents(other, "old");
    assert_int_equal(count_entries(d.path), 2);

    /* The directory-fd form, and its refusal of anything but one name. */
    int dfd = open(d.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(dfd >= 0);
    assert_int_equal(write_file_atomic_at(dfd, "out.json", "at", 2, 0644, err, sizeof err), 0);
    expect_contents(path, "at");
    assert_int_equal(write_file_atomic_at(dfd, "a/b", "x", 1, 0644, err, sizeof err), -EINVAL);
    assert_int_equal(write_file_atomic_at(dfd, "..", "x", 1, 0644, err, sizeof err), -EINVAL);
    close(dfd);
    assert_int_equal(count_entries(d.path), 2);
    tmpdir_remove(&d);
}

static void test_atomic_char_device_in_place(void **state)
{
    struct tmpdir d;
    tmpdir_make(&d);
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/null", d.path);
    if (mknod(path, S_IFCHR | 0666, makedev(1, 3)) < 0) {
        tmpdir_remove(&d);
        skip(); /* needs CAP_MKNOD: the suite runs as root */
    }
    struct stat made, st;
    assert_int_equal(lstat(path, &made), 0);
    assert_int_equal(write_file_atomic(path, "gone", 4, 0600, err, sizeof err), 0);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISCHR(st.st_mode));
    assert_true(st.st_rdev == makedev(1, 3));
    assert_int_equal(st.st_mode, made.st_mode);
    assert_true(st.st_ino == made.st_ino);
    assert_int_equal(count_entries(d.path), 1);
    tmpdir_remove(&d);
}

struct fifo_reader {
    const char *path;
    char got[64];
    size_t len;
};

static void *read_fifo(void *arg)
{
    struct fifo_reader *r = arg;
    int fd = open(r->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    for (ssize_t n;
         r->len < sizeof r->got && (n = read(fd, r->got + r->len, sizeof r->got - r->len)) != 0;)
        if (n > 0)
            r->len += (size_t)n;
        else if (errno != EINTR)
            break;
    close(fd);
    return NULL;
}

static void test_atomic_fifo_in_place(void **state)
{
    struct tmpdir d;
    tmpdir_make(&d);
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/pipe", d.path);
    assert_int_equal(mkfifo(path, 0600), 0);
    struct fifo_reader r = {.path = path};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, read_fifo, &r), 0);
    assert_int_equal(write_file_atomic(path, "through the pipe", 16, 0644, err, sizeof err), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(r.len, 16);
    assert_memory_equal(r.got, "through the pipe", 16);
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISFIFO(st.st_mode));
    assert_int_equal(count_entries(d.path), 1);
    tmpdir_remove(&d);
}

static void test_atomic_refusals(void **state)
{
    struct tmpdir d;
    tmpdir_make(&d);
    char victim[128], link_path[128], dangling[128], missing[128], path[256], err[256];
    snprintf(victim, sizeof victim, "%s/victim", d.path);
    snprintf(link_path, sizeof link_path, "%s/out.json", d.path);
    snprintf(dangling, sizeof dangling, "%s/dangling", d.path);
    assert_int_equal(write_file_atomic(victim, "keep me", 7, 0644, err, sizeof err), 0);

    /* A symlink: refused, naming its target; neither the link nor the target changes. */
    assert_int_equal(symlink(victim, link_path), 0);
    assert_int_equal(write_file_atomic(link_path, "evil", 4, 0644, err, sizeof err), -ELOOP);
    assert_non_null(strstr(err, "symlink"));
    assert_non_null(strstr(err, victim));
    struct stat st;
    assert_int_equal(lstat(link_path, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    expect_contents(victim, "keep me");

    /* A dangling symlink: its target is not created. */
    snprintf(path, sizeof path, "%s/created", d.path);
    assert_int_equal(symlink(path, dangling), 0);
    assert_int_equal(write_file_atomic(dangling, "evil", 4, 0644, err, sizeof err), -ELOOP);
    assert_int_equal(access(path, F_OK), -1);

    /* A directory, a socket: refused by kind. */
    assert_int_equal(write_file_atomic(d.path, "x", 1, 0644, err, sizeof err), -EISDIR);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s/sock", d.path);
    snprintf(path, sizeof path, "%s", sa.sun_path);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(write_file_atomic(path, "x", 1, 0644, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "socket"));
    close(s);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));

    /* A missing directory: a clear error naming it, nothing created. */
    snprintf(missing, sizeof missing, "%s/no/such/dir", d.path);
    snprintf(path, sizeof path, "%s/out.json", missing);
    assert_int_equal(write_file_atomic(path, "x", 1, 0644, err, sizeof err), -ENOENT);
    assert_non_null(strstr(err, missing));
    assert_int_equal(write_file_atomic("", "x", 1, 0644, err, sizeof err), -EINVAL);

    assert_int_equal(count_entries(d.path), 4); /* victim, out.json, dangling, sock */
    tmpdir_remove(&d);
}

static void test_proc_mem(void **state)
{
    struct proc_mem m;
    assert_int_equal(proc_mem_read(getpid(), &m), 0);
    assert_true(m.rss > 0);
    assert_true(m.pss > 0 && m.pss <= m.rss);
    assert_true(proc_mem_read(-5, &m) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_size),  cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_sha256),      cmocka_unit_test(test_atomic_file),
        cmocka_unit_test(test_atomic_replaces_regular),
        cmocka_unit_test(test_atomic_char_device_in_place),
        cmocka_unit_test(test_atomic_fifo_in_place),
        cmocka_unit_test(test_atomic_refusals),
        cmocka_unit_test(test_proc_mem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
