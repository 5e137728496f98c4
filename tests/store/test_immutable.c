/*
 * Issue 12, shared images and root in a container: a client running as root with a container's
 * default capabilities (docker's set, a superset of podman's), so without CAP_SYS_ADMIN and
 * CAP_LINUX_IMMUTABLE, attaches an image and then tries every way to write it: reopening the fd
 * via /proc/self/fd, opening the file in the store's directory, writable mappings, write/pwrite,
 * truncate, fallocate, chmod/chown, rename/unlink/link, clearing the immutable flag, the store's
 * own fds via /proc/PID/fd. Every one fails and the image's bytes (SHA-256) are unchanged. The
 * image handed out has no holes and carries FS_IMMUTABLE_FL.
 */
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
#include <linux/capability.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* docker's default capabilities (podman's are these minus MKNOD, NET_RAW, AUDIT_WRITE). */
static const int container_caps[] = {
    CAP_CHOWN,   CAP_DAC_OVERRIDE, CAP_FOWNER,  CAP_FSETID,           CAP_KILL,
    CAP_SETGID,  CAP_SETUID,       CAP_SETPCAP, CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT,
    CAP_SETFCAP, CAP_MKNOD,        CAP_NET_RAW, CAP_AUDIT_WRITE,
};

static int in_container_set(int cap)
{
    for (size_t i = 0; i < ARRAY_LEN(container_caps); i++)
        if (container_caps[i] == cap)
            return 1;
    return 0;
}

/* Drops every capability outside the container set from the bounding, ambient, permitted,
 * effective and inheritable sets; 0 on success. */
static int become_container_root(void)
{
    int last = 40;
    FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "r");
    if (f) {
        if (fscanf(f, "%d", &last) != 1)
            last = 40;
        fclose(f);
    }
    for (int cap = 0; cap <= last; cap++)
        if (!in_container_set(cap) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
            return -1;
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    for (size_t i = 0; i < ARRAY_LEN(container_caps); i++) {
        int cap = container_caps[i];
        data[cap / 32].effective |= 1u << (cap % 32);
        data[cap / 32].permitted |= 1u << (cap % 32);
        data[cap / 32].inheritable |= 1u << (cap % 32);
    }
    if (syscall(SYS_capset, &hdr, data) < 0)
        return -1;
    /* check: no CAP_SYS_ADMIN, no CAP_LINUX_IMMUTABLE in the effective set */
    struct __user_cap_data_struct now[2];
    if (syscall(SYS_capget, &hdr, now) < 0)
        return -1;
    return (now[CAP_SYS_ADMIN / 32].effective & (1u << (CAP_SYS_ADMIN % 32))) ||
                   (now[CAP_LINUX_IMMUTABLE / 32].effective & (1u << (CAP_LINUX_IMMUTABLE % 32)))
               ? -1
               : 0;
}

/* ---- the attempts: each returns 0 when it failed to write (as it must) ---- */

struct target {
    const struct store_image *img;
    char path[300];  /* the image file in the store's directory */
    char moved[320]; /* a name to rename/link it to */
    pid_t store;
};

static int refused(int rc)
{
    return rc < 0 ? 0 : 1;
}

static int try_open(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC);
    if (fd >= 0) {
        close(fd);
        return 1;
    }
    return 0;
}

static int a_reopen_rdwr(struct target *t)
{
    char p[64];
    snprintf(p, sizeof(p), "/proc/self/fd/%d", t->img->fd);
    return try_open(p, O_RDWR);
}

static int a_reopen_wronly(struct target *t)
{
    char p[64];
    snprintf(p, sizeof(p), "/proc/self/fd/%d", t->img->fd);
    return try_open(p, O_WRONLY);
}

static int a_open_path_rdwr(struct target *t)
{
    return try_open(t->path, O_RDWR);
}

static int a_open_path_trunc(struct target *t)
{
    return try_open(t->path, O_WRONLY | O_TRUNC);
}

static int a_mprotect(struct target *t)
{
    return refused(mprotect((void *)t->img->addr, 4096, PROT_READ | PROT_WRITE));
}

static int a_mmap_shared_write(struct target *t)
{
    void *p = mmap(NULL, t->img->size, PROT_READ | PROT_WRITE, MAP_SHARED, t->img->fd, 0);
    if (p == MAP_FAILED)
        return 0;
    munmap(p, t->img->size);
    return 1;
}

static int a_write(struct target *t)
{
    return refused((int)write(t->img->fd, "x", 1));
}

static int a_pwrite(struct target *t)
{
    return refused((int)pwrite(t->img->fd, "x", 1, 0));
}

static int a_ftruncate(struct target *t)
{
    return refused(ftruncate(t->img->fd, 0));
}

static int a_truncate(struct target *t)
{
    return refused(truncate(t->path, 0));
}

static int a_fallocate_grow(struct target *t)
{
    return refused(fallocate(t->img->fd, 0, 0, (off_t)t->img->size * 2));
}

static int a_fallocate_punch(struct target *t)
{
    return refused(fallocate(t->img->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096));
}

static int a_fchmod(struct target *t)
{
    return refused(fchmod(t->img->fd, 0666));
}

static int a_chmod(struct target *t)
{
    return refused(chmod(t->path, 0666));
}

static int a_chown(struct target *t)
{
    return refused(chown(t->path, 65534, 65534));
}

static int a_fchown(struct target *t)
{
    return refused(fchown(t->img->fd, 65534, 65534));
}

static int a_rename(struct target *t)
{
    return refused(rename(t->path, t->moved));
}

static int a_unlink(struct target *t)
{
    return refused(unlink(t->path));
}

static int a_link(struct target *t)
{
    return refused(link(t->path, t->moved));
}

static int a_clear_immutable(struct target *t)
{
    int flags = 0;
    if (ioctl(t->img->fd, FS_IOC_GETFLAGS, &flags) < 0)
        return 1; /* the flag must be there to clear */
    flags &= ~FS_IMMUTABLE_FL;
    return refused(ioctl(t->img->fd, FS_IOC_SETFLAGS, &flags));
}

static int a_set_append(struct target *t)
{
    int flags = 0;
    if (ioctl(t->img->fd, FS_IOC_GETFLAGS, &flags) < 0)
        return 1;
    flags |= FS_APPEND_FL;
    flags &= ~FS_IMMUTABLE_FL;
    return refused(ioctl(t->img->fd, FS_IOC_SETFLAGS, &flags));
}

/* Every fd of the store process, reopened read-write through /proc/PID/fd. */
static int a_store_fds(struct target *t)
{
    char dir[64];
    snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)t->store);
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *de;
    int wrote = 0;
    while ((de = readdir(d)) && !wrote) {
        if (de->d_name[0] == '.')
            continue;
        char p[512];
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        wrote = try_open(p, O_RDWR | O_NONBLOCK);
    }
    closedir(d);
    return wrote;
}

static const struct attempt {
    const char *name;
    int (*fn)(struct target *t);
} attempts[] = {
    {"open /proc/self/fd/N O_RDWR", a_reopen_rdwr},
    {"open /proc/self/fd/N O_WRONLY", a_reopen_wronly},
    {"open the file O_RDWR", a_open_path_rdwr},
    {"open the file O_WRONLY|O_TRUNC", a_open_path_trunc},
    {"mprotect(PROT_WRITE)", a_mprotect},
    {"mmap(PROT_WRITE, MAP_SHARED)", a_mmap_shared_write},
    {"write", a_write},
    {"pwrite", a_pwrite},
    {"ftruncate", a_ftruncate},
    {"truncate", a_truncate},
    {"fallocate (grow)", a_fallocate_grow},
    {"fallocate (punch hole)", a_fallocate_punch},
    {"fchmod", a_fchmod},
    {"chmod", a_chmod},
    {"chown", a_chown},
    {"fchown", a_fchown},
    {"rename", a_rename},
    {"unlink", a_unlink},
    {"link", a_link},
    {"clear FS_IMMUTABLE_FL", a_clear_immutable},
    {"set FS_APPEND_FL", a_set_append},
    {"reopen the store's fds via /proc/PID/fd", a_store_fds},
};

static void image_file(const struct store_env *e, const struct store_image *img, char *out,
                       size_t len)
{
    char id[SHA256_HEX_LEN];
    sha256_hex(img->identity, id);
    snprintf(out, len, "%s/%s.plan", e->dir, id);
}

/* In a child as container root: attach, try everything; exit 0 when all failed and the bytes
 * are unchanged, else 1 + the index of the first attempt that succeeded. */
static int container_root_attacks(const struct store_env *e)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (become_container_root() < 0)
            _exit(100);
        struct store_client *c;
        struct target t = {.store = e->pid};
        char err[1024];
        if (store_connect(e->sock, &c, err, sizeof(err)) < 0 ||
            store_attach(c, "gemm_a", 1, &t.img, err, sizeof(err)) < 0) {
            fprintf(stderr, "container root: %s\n", err);
            _exit(101);
        }
        image_file(e, t.img, t.path, sizeof(t.path));
        snprintf(t.moved, sizeof(t.moved), "%s.moved", t.path);
        for (size_t i = 0; i < ARRAY_LEN(attempts); i++) {
            errno = 0;
            if (attempts[i].fn(&t)) {
                fprintf(stderr, "container root: %s SUCCEEDED\n", attempts[i].name);
                _exit(1 + (int)i);
            }
            printf("  %-42s refused (%s)\n", attempts[i].name, strerror(errno));
        }
        /* Control: the capabilities are real; an ordinary root-owned 0600 file next to the
         * image, which only DAC_OVERRIDE lets this process open, can be written. */
        char control[340];
        snprintf(control, sizeof(control), "%s.control", t.path);
        if (!try_open(control, O_RDWR))
            _exit(98);
        printf("  control: an unsealed 0600 file of the store's user in the same directory "
               "was opened for writing\n");
        uint8_t sha[SHA256_LEN];
        sha256(t.img->addr, t.img->size, sha);
        if (memcmp(sha, t.img->sha256, SHA256_LEN) != 0)
            _exit(99);
        fflush(stdout);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 200;
}

static void test_container_root_cannot_write(void **state)
{
    struct store_env *e = *state;
    if (geteuid() != 0)
        skip();
    env_start(e, "1GiB", NULL);
    struct store_client *c;
    const struct store_image *img;
    char err[1024], path[300];
    assert_int_equal(store_connect(e->sock, &c, err, sizeof(err)), 0);
    assert_int_equal(store_attach(c, "gemm_a", 1, &img, err, sizeof(err)), 0);
    image_file(e, img, path, sizeof(path));

    char control[340];
    snprintf(control, sizeof(control), "%s.control", path);
    int cfd = open(control, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    assert_true(cfd >= 0);
    close(cfd);
    printf("root with docker's default capabilities (no CAP_SYS_ADMIN, no CAP_LINUX_IMMUTABLE):\n");
    fflush(stdout);
    int rc = container_root_attacks(e);
    unlink(control);
    assert_int_equal(rc, 0);

    /* The file's bytes, read back by full root, are still the image the store sent. */
    uint8_t *bytes;
    size_t len;
    assert_int_equal(read_file(path, 1u << 30, &bytes, &len, err, sizeof(err)), 0);
    uint8_t sha[SHA256_LEN];
    sha256(bytes, len, sha);
    free(bytes);
    assert_int_equal(len, img->size);
    assert_memory_equal(sha, img->sha256, SHA256_LEN);
    char hex[SHA256_HEX_LEN];
    sha256_hex(sha, hex);
    printf("image %s unchanged (sha256 %.16s...)\n", path, hex);
    store_close(c);
}

static void test_image_sealed_without_holes(void **state)
{
    struct store_env *e = *state;
    if (geteuid() != 0) /* setting FS_IMMUTABLE_FL needs CAP_LINUX_IMMUTABLE */
        skip();
    env_start(e, "1GiB", NULL);
    struct store_client *c;
    const struct store_image *img;
    char err[1024];
    assert_int_equal(store_connect(e->sock, &c, err, sizeof(err)), 0);
    static const char *models[] = {"gemm_a", "cnn"};
    for (size_t i = 0; i < ARRAY_LEN(models); i++) {
        assert_int_equal(store_attach(c, models[i], 1, &img, err, sizeof(err)), 0);
        struct stat st;
        assert_int_equal(fstat(img->fd, &st), 0);
        int flags = 0;
        assert_int_equal(ioctl(img->fd, FS_IOC_GETFLAGS, &flags), 0);
        printf("%s: %lld bytes, %lld bytes allocated, flags 0x%x\n", models[i],
               (long long)st.st_size, (long long)st.st_blocks * 512, flags);
        assert_true((uint64_t)st.st_blocks * 512 >= (uint64_t)st.st_size); /* no holes */
        assert_true(flags & FS_IMMUTABLE_FL);
        assert_int_equal(st.st_mode & 07777, 0600);
    }
    json_t *st = env_stats(e);
    assert_int_equal(stats_total(st, "unsealed_images"), 0);
    json_decref(st);
    store_close(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_image_sealed_without_holes, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_container_root_cannot_write, env_setup, env_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
