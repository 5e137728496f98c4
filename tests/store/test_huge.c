/*
 * Issue 15, huge pages for images: the store mounts a tmpfs of its own with huge=within_size at
 * --dir (root only), so an instance that maps an image maps it with 2 MiB pages (ShmemPmdMapped in
 * its smaps) whatever the host's shmem_enabled says; the mount survives a crash for re-adoption,
 * `purge` unmounts it, a clean stop unmounts it; off means no mount; auto falls back with one log
 * line where it cannot mount (here: a directory that is not empty), on refuses to start there.
 * Sealing, restart and purge with the mount in place are also covered by every other store test
 * (auto is the default).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "harness.h"

#include "client/client.h"
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Whether dir is a mount point (its parent is on another device). */
static int is_mount_point(const char *dir)
{
    char up[256];
    struct stat st, pst;
    snprintf(up, sizeof(up), "%s/..", dir);
    return stat(dir, &st) == 0 && stat(up, &pst) == 0 && st.st_dev != pst.st_dev;
}

/* kB of key in this process's smaps entry for the mapping at addr. */
static long smaps_kb(const void *addr, const char *key)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    assert_non_null(f);
    char line[512];
    int in = 0;
    long kb = -1;
    size_t klen = strlen(key);
    while (fgets(line, sizeof(line), f)) {
        unsigned long lo, hi;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3) { /* a mapping's first line */
            in = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
            continue;
        }
        if (in && strncmp(line, key, klen) == 0 && line[klen] == ':')
            kb = strtol(line + klen + 1, NULL, 10);
    }
    fclose(f);
    return kb;
}

/* Attaches gemm_a (4 MiB of weights), touches every page, returns ShmemPmdMapped kB. */
static long attach_pmd_kb(const struct store_env *e)
{
    struct store_client *c;
    const struct store_image *img;
    char err[512];
    if (store_connect(e->sock, &c, err, sizeof(err)) < 0 ||
        store_attach(c, "gemm_a", 1, &img, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    /* the 4 MiB are the plan part's weights blob: a mapping of their own */
    const void *addr = img->weights ? img->weights : img->addr;
    uint64_t size = img->weights ? img->weights_size : img->size;
    volatile unsigned sum = 0;
    for (uint64_t off = 0; off < size; off += 4096)
        sum += ((const unsigned char *)addr)[off];
    (void)sum;
    int flags = 0;
    assert_int_equal(ioctl(img->fd, FS_IOC_GETFLAGS, &flags), 0);
    assert_true(flags & FS_IMMUTABLE_FL); /* still sealed on the huge tmpfs */
    long kb = smaps_kb(addr, "ShmemPmdMapped");
    long file_kb = smaps_kb(addr, "FilePmdMapped");
    print_message("weights %llu bytes: ShmemPmdMapped %ld kB, FilePmdMapped %ld kB\n",
                  (unsigned long long)size, kb, file_kb);
    store_close(c);
    return kb > 0 ? kb : file_kb;
}

static void test_mapped_with_huge_pages(void **state)
{
    struct store_env *e = *state;
    env_start(e, "256MiB", (const char *[]){"--huge-pages", "on", NULL});
    assert_true(is_mount_point(e->dir));
    assert_true(attach_pmd_kb(e) >= 2048);
    env_stop(e, SIGTERM); /* a clean stop unmounts it and removes the directory */
    assert_false(is_mount_point(e->dir));
    assert_int_equal(access(e->dir, F_OK), -1);
}

static void test_crash_adopt_purge(void **state)
{
    struct store_env *e = *state;
    env_log_to_file(e);
    env_start(e, "256MiB", NULL); /* auto */
    assert_true(attach_pmd_kb(e) >= 2048);
    env_stop(e, SIGKILL);
    assert_true(is_mount_point(e->dir)); /* kept for the next store */
    env_start(e, "256MiB", (const char *[]){"--huge-pages", "off", NULL});
    json_t *st = env_stats(e);
    assert_int_equal(stats_total(st, "adopted"), 1);
    json_decref(st);
    assert_true(attach_pmd_kb(e) >= 2048); /* adopted, still in huge pages */
    env_stop(e, SIGKILL);

    char store[512];
    env_binary("src/store/shmfaas-store", store, sizeof(store));
    pid_t pid = fork();
    if (pid == 0) {
        execl(store, store, "purge", "--dir", e->dir, (char *)NULL);
        _exit(127);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_false(is_mount_point(e->dir));
    assert_int_equal(access(e->dir, F_OK), -1);
    assert_int_equal(env_log_count(e, "images in huge pages"), 1);
}

static void test_off_and_fallback(void **state)
{
    struct store_env *e = *state;
    env_log_to_file(e);
    env_start(e, "256MiB", (const char *[]){"--huge-pages", "off", NULL});
    assert_false(is_mount_point(e->dir));
    assert_int_equal(attach_pmd_kb(e), 0);
    env_stop(e, SIGTERM);

    /* A directory with files from before is never mounted over: auto says so once, on refuses. */
    char junk[256];
    assert_int_equal(mkdir(e->dir, 0700), 0);
    snprintf(junk, sizeof(junk), "%s/left-by-someone", e->dir);
    int fd = open(junk, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_not_equal(env_start_refused(e, e->dir, (const char *[]){"--huge-pages", "on", NULL}),
                         0);
    assert_int_equal(env_log_count(e, "--huge-pages on"), 1);
    env_start(e, "256MiB", NULL);
    assert_false(is_mount_point(e->dir));
    assert_int_equal(env_log_count(e, "images in small pages (it holds files from before"), 1);
    assert_int_equal(attach_pmd_kb(e), 0);
    env_stop(e, SIGTERM);
    unlink(junk);
}

int main(void)
{
    if (geteuid() != 0) {
        print_message("skipped: mounting the tmpfs needs root\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mapped_with_huge_pages, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_crash_adopt_purge, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_off_and_fallback, env_setup, env_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
