/*
 * Issue 12, memory given back and the store's own directories: a clean stop (SIGTERM) removes
 * the images, the manifest and the directory unless --keep-images; a kill -9 leaves them sealed
 * for re-adoption, and the next store adopts them without a compile (re-sealing one whose flag
 * was cleared, discarding one that a process holds open for writing); `shmfaas-store purge` frees
 * what a crashed store left, and a second store on the same directory is refused. A --dir that is
 * a planted symlink, owned by another uid or group-writable is refused, as is a socket directory
 * others can write.
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
#include <linux/fs.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void use_models(const struct store_env *e)
{
    struct store_client *c;
    const struct store_image *img;
    char err[1024];
    assert_int_equal(store_connect(e->sock, &c, err, sizeof(err)), 0);
    assert_int_equal(store_attach(c, "gemm_a", 1, &img, err, sizeof(err)), 0);
    assert_int_equal(store_attach(c, "cnn", 1, &img, err, sizeof(err)), 0);
    store_close(c);
}

static int flags_of(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC), flags = 0;
    assert_true(fd >= 0);
    assert_int_equal(ioctl(fd, FS_IOC_GETFLAGS, &flags), 0);
    close(fd);
    return flags;
}

static void assert_sealed(const char *path, void *ctx)
{
    (void)ctx;
    assert_true(flags_of(path) & FS_IMMUTABLE_FL);
}

static void clear_seal(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC), flags = flags_of(path) & ~FS_IMMUTABLE_FL;
    assert_true(fd >= 0);
    assert_int_equal(ioctl(fd, FS_IOC_SETFLAGS, &flags), 0);
    close(fd);
}

static int cleared_one;

static void clear_first(const char *path, void *ctx)
{
    (void)ctx;
    if (!cleared_one++)
        clear_seal(path);
}

static void test_clean_stop_removes_images(void **state)
{
    struct store_env *e = *state;
    env_start(e, "1GiB", NULL);
    use_models(e);
    assert_int_equal(env_each_image(e, NULL, NULL), 2);
    env_stop(e, SIGTERM);
    printf("clean stop: %s %s\n", e->dir, access(e->dir, F_OK) == 0 ? "still there" : "removed");
    assert_int_equal(access(e->dir, F_OK), -1);
    assert_int_equal(errno, ENOENT);

    env_start(e, "1GiB", (const char *[]){"--keep-images", NULL});
    use_models(e);
    env_stop(e, SIGTERM);
    assert_int_equal(env_each_image(e, NULL, NULL), 2); /* --keep-images: kept for the next start */
}

static void test_kill9_keeps_sealed_images_for_readoption(void **state)
{
    struct store_env *e = *state;
    if (geteuid() != 0) /* sealing needs CAP_LINUX_IMMUTABLE */
        skip();
    env_start(e, "1GiB", NULL);
    use_models(e);
    env_stop(e, SIGKILL);
    assert_int_equal(env_each_image(e, assert_sealed, NULL), 2);
    cleared_one = 0;
    env_each_image(e, clear_first, NULL); /* as an older store would have left it */

    env_start(e, "1GiB", NULL);
    json_t *st = env_stats(e);
    printf("after kill -9: adopted %lld, compiles %lld\n", (long long)stats_total(st, "adopted"),
           (long long)stats_total(st, "compiles"));
    assert_int_equal(stats_total(st, "adopted"), 2);
    assert_int_equal(stats_total(st, "compiles"), 0);
    json_decref(st);
    assert_int_equal(env_each_image(e, assert_sealed, NULL), 2); /* re-sealed at adoption */
    use_models(e);
    st = env_stats(e);
    assert_int_equal(stats_total(st, "compiles_started"), 0);
    assert_int_equal(stats_total(st, "hits"), 2);
    json_decref(st);
    env_stop(e, SIGTERM);
    assert_int_equal(access(e->dir, F_OK), -1);
}

static char held_path[512];

static void remember_first(const char *path, void *ctx)
{
    (void)ctx;
    if (!held_path[0])
        snprintf(held_path, sizeof(held_path), "%s", path);
}

/* A writer that got in while an image was not sealed (here: root clears the flag and opens it
 * for writing) must not survive into a served image: adoption sees the writer and discards it. */
static void test_adoption_refuses_an_image_open_for_writing(void **state)
{
    struct store_env *e = *state;
    if (geteuid() != 0)
        skip();
    env_start(e, "1GiB", NULL);
    use_models(e);
    env_stop(e, SIGKILL);
    held_path[0] = '\0';
    env_each_image(e, remember_first, NULL);
    clear_seal(held_path);
    int wfd = open(held_path, O_RDWR | O_CLOEXEC);
    assert_true(wfd >= 0);
    env_log_to_file(e);
    env_start(e, "1GiB", NULL);
    json_t *st = env_stats(e);
    printf("adoption with a writer open: adopted %lld, discarded %lld\n",
           (long long)stats_total(st, "adopted"), (long long)stats_total(st, "discarded"));
    assert_int_equal(stats_total(st, "adopted"), 1);
    assert_int_equal(stats_total(st, "discarded"), 1);
    json_decref(st);
    assert_int_equal(env_log_count(e, "another process holds it open for writing"), 1);
    assert_int_equal(access(held_path, F_OK), -1); /* unlinked; our fd keeps only our copy */
    close(wfd);
}

static void test_purge_after_crash(void **state)
{
    struct store_env *e = *state;
    char bin[512], cmd[1400];
    env_binary("src/store/shmfaas-store", bin, sizeof(bin));
    env_start(e, "1GiB", NULL);
    use_models(e);
    snprintf(cmd, sizeof(cmd), "%s purge --dir %s", bin, e->dir);
    assert_int_not_equal(system(cmd), 0); /* refused while a store serves */
    assert_int_equal(env_each_image(e, NULL, NULL), 2);
    /* a second store on the same directory is refused too */
    char other[200];
    snprintf(other, sizeof(other), "%s/other.sock", e->root);
    env_log_to_file(e);
    assert_int_not_equal(env_start_refused(e, e->dir, (const char *[]){"--socket", other, NULL}),
                         0);
    assert_int_equal(env_log_count(e, "another store is using it"), 1);
    env_stop(e, SIGKILL);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(access(e->dir, F_OK), -1);
}

static void test_unsafe_dirs_refused(void **state)
{
    struct store_env *e = *state;
    char victim[200], link[200], foreign[200], gw[200], pub[200], sock[240];
    env_log_to_file(e);
    snprintf(victim, sizeof(victim), "%s/victim", e->root);
    snprintf(link, sizeof(link), "%s/link", e->root);
    snprintf(foreign, sizeof(foreign), "%s/foreign", e->root);
    snprintf(gw, sizeof(gw), "%s/groupw", e->root);
    snprintf(pub, sizeof(pub), "%s/pub", e->root);
    snprintf(sock, sizeof(sock), "%s/store.sock", pub);
    assert_int_equal(mkdir(victim, 0700), 0);
    assert_int_equal(symlink(victim, link), 0);
    assert_int_equal(mkdir(foreign, 0700), 0);
    int as_root = geteuid() == 0; /* only root can give a directory to another uid */
    if (as_root)
        assert_int_equal(chown(foreign, 65534, 65534), 0);
    assert_int_equal(mkdir(gw, 0700), 0);
    assert_int_equal(chmod(gw, 0770), 0);
    assert_int_equal(mkdir(pub, 0700), 0);
    assert_int_equal(chmod(pub, 01777), 0);

    assert_int_not_equal(env_start_refused(e, link, NULL), 0);
    assert_int_equal(env_log_count(e, "a symlink or not a directory; refused"), 1);
    if (as_root)
        assert_int_not_equal(env_start_refused(e, foreign, NULL), 0);
    assert_int_not_equal(env_start_refused(e, gw, NULL), 0);
    assert_int_equal(env_log_count(e, "that only it can write"), 1 + as_root);
    assert_int_not_equal(env_start_refused(e, e->dir, (const char *[]){"--socket", sock, NULL}), 0);
    assert_int_equal(env_log_count(e, "they could replace the socket; refused"), 1);
    /* nothing was created through the symlink, nor a socket in the public directory */
    DIR *d = opendir(victim);
    assert_non_null(d);
    int entries = 0;
    for (struct dirent *de; (de = readdir(d));)
        entries += de->d_name[0] != '.';
    closedir(d);
    assert_int_equal(entries, 0);
    assert_int_equal(access(sock, F_OK), -1);
    printf("refused: --dir through a symlink, owned by another uid, group-writable; --socket in a "
           "world-writable directory\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_clean_stop_removes_images, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_kill9_keeps_sealed_images_for_readoption, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(test_adoption_refuses_an_image_open_for_writing, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(test_purge_after_crash, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_unsafe_dirs_refused, env_setup, env_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
