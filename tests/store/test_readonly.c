/*
 * Issue 3, criterion 4: a client cannot write an image — its plan part nor its weights blob
 * (plan format 3 keeps the weights in their own file). The fds it receives are O_RDONLY, so a
 * writable shared mapping and mprotect(PROT_WRITE) both fail; the file is 0600 and owned by the
 * store's user, so another user can open it for writing neither by path nor via /proc/self/fd.
 * A uid not in --allow-uid cannot attach at all.
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
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define ALLOWED_UID 65534
#define OTHER_UID   65533

/* fd (its mapping at addr, size bytes) cannot be written through. */
static void check_readonly(int fd, const void *addr, uint64_t size)
{
    assert_int_equal(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDONLY);
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    assert_true(p == MAP_FAILED && errno == EACCES);
    assert_int_equal(mprotect((void *)addr, 4096, PROT_READ | PROT_WRITE), -1);
    assert_int_equal(errno, EACCES);
    assert_int_equal(write(fd, "x", 1), -1);
    assert_int_equal(errno, EBADF);
}

/* The plan part and its weights blob (plan format 3: the weights are their own file). */
static void check_fd_readonly(const struct store_image *img)
{
    check_readonly(img->fd, img->addr, img->size);
    assert_non_null(img->weights);
    check_readonly(img->weights_fd, img->weights, img->weights_size);
}

/* Neither the file of fd nor <dir>/<name> opens for writing as this process. */
static int cannot_write(int fd, const char *dir, const char *name)
{
    char self[64], path[512];
    snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
    if (open(self, O_RDWR) >= 0 || (errno != EACCES && errno != EPERM)) /* EPERM: sealed */
        return 0;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return open(path, O_WRONLY) < 0 && (errno == EACCES || errno == EPERM);
}

static void test_fd_is_read_only(void **state)
{
    struct store_env *e = *state;
    env_start(e, "1GiB", NULL);
    struct store_client *c;
    const struct store_image *img;
    char err[1024];
    assert_int_equal(store_connect(e->sock, &c, err, sizeof(err)), 0);
    assert_int_equal(store_attach(c, "cnn", 1, &img, err, sizeof(err)), 0);
    check_fd_readonly(img);
    struct stat st;
    assert_int_equal(fstat(img->fd, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(st.st_uid, geteuid());
    printf("criterion 4: image fd O_RDONLY, mode %04o, owner uid %u; PROT_WRITE mapping and "
           "mprotect refused (EACCES)\n",
           (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
    store_close(c);
}

/* EVICT is for root and the store's own user only: an allowed client still may not. */
static int evict_refused(const struct store_env *e)
{
    int s = proto_connect(e->sock, NULL, 0);
    struct proto_msg req = {.type = PROTO_EVICT, .seq = 1}, reply;
    strcpy(req.u.ref.ref, "cnn");
    static uint8_t buf[PROTO_MAX_MSG];
    char err[512];
    int rc = s < 0 ? s : proto_call(s, &req, buf, &reply, NULL, err, sizeof(err));
    if (s >= 0)
        close(s);
    return rc == -EACCES ? 0 : -1;
}

/* In a child running as uid: attach, then try every way to write. Exit 0 when all failed. */
static int other_user(const struct store_env *e, uid_t uid, int expect_attach)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (setgid(uid) < 0 || setuid(uid) < 0)
            _exit(10);
        struct store_client *c;
        const struct store_image *img;
        char err[1024];
        if (store_connect(e->sock, &c, err, sizeof(err)) < 0)
            _exit(11);
        int rc = store_attach(c, "cnn", 1, &img, err, sizeof(err));
        if (!expect_attach)
            _exit(rc == -EACCES && strstr(err, "--allow-uid") ? 0 : 12);
        if (rc < 0)
            _exit(13);
        if (fcntl(img->fd, F_GETFL) & O_ACCMODE || img->weights_fd < 0 ||
            fcntl(img->weights_fd, F_GETFL) & O_ACCMODE)
            _exit(14);
        char id[SHA256_HEX_LEN], name[SHA256_HEX_LEN + 16];
        sha256_hex(img->identity, id);
        snprintf(name, sizeof(name), "%s.plan", id);
        if (!cannot_write(img->fd, e->dir, name))
            _exit(15);
        sha256_hex(img->weights_sha256, id);
        snprintf(name, sizeof(name), "%s.weights", id);
        if (!cannot_write(img->weights_fd, e->dir, name))
            _exit(16);
        if (mmap(NULL, img->size, PROT_WRITE, MAP_SHARED, img->fd, 0) != MAP_FAILED ||
            mmap(NULL, img->weights_size, PROT_WRITE, MAP_SHARED, img->weights_fd, 0) != MAP_FAILED)
            _exit(17);
        if (evict_refused(e) != 0)
            _exit(18);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
}

static void test_other_users(void **state)
{
    struct store_env *e = *state;
    if (geteuid() != 0) {
        printf("criterion 4: not root, cannot switch users; the other-user checks are skipped\n");
        skip();
    }
    assert_int_equal(chmod(e->root, 0711), 0); /* the socket must be reachable by them */
    const char *extra[] = {"--allow-uid", "65534", NULL};
    env_start(e, "1GiB", extra);
    assert_int_equal(other_user(e, ALLOWED_UID, 1), 0);
    assert_int_equal(other_user(e, OTHER_UID, 0), 0);
    printf("criterion 4: uid %d (allowed) attached but could not open the plan part or its "
           "weights blob for writing by path or /proc/self/fd, nor evict it; uid %d (not "
           "allowed) was refused\n",
           ALLOWED_UID, OTHER_UID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fd_is_read_only, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_other_users, env_setup, env_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
