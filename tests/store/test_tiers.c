/*
 * Issue 18: the store's disk tier, compile ahead and GDSF eviction, against the real store.
 *   - a RAM miss the disk tier holds is read back, no compile counted;
 *   - a corrupt (same size, one byte changed) or truncated disk image is dropped and recompiled;
 *   - the disk budget is never exceeded (evictions in the disk tier);
 *   - a "reboot" (clean stop: the RAM dir is removed; the disk dir is kept) restores without
 *     compiling;
 *   - PREPARE compiles ahead without a lease; the attach after it is a hit;
 *   - GDSF evicts by priority (often used beats recently used) where LRU evicts the other one;
 *   - a disk dir others can write, or a symlink, is refused at start; a uid the store does not
 *     admit cannot PREPARE (closed at accept, as for ATTACH);
 *   - with the zoo's resnet50: the read back of its evicted image vs its compile (printed).
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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char disk_dir[192];

static void start(struct store_env *e, const char *budget, const char *disk_budget,
                  const char *policy)
{
    snprintf(disk_dir, sizeof(disk_dir), "%s/disk", e->root);
    const char *extra[] = {"--disk-dir", disk_dir, "--disk-budget", disk_budget, "--policy",
                           policy,       NULL};
    env_start(e, budget, disk_budget ? extra : extra + 4);
}

static struct store_client *client(const struct store_env *e)
{
    struct store_client *c;
    char err[1024];
    if (store_connect(e->sock, &c, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    return c;
}

/* Attaches and detaches name; returns the image's size and (if sha) its SHA-256. */
static uint64_t use(struct store_client *c, const char *name, uint8_t sha[32])
{
    const struct store_image *img;
    char err[1024];
    if (store_attach(c, name, 1, &img, err, sizeof(err)) < 0)
        fail_msg("attach %s: %s", name, err);
    uint64_t size = img->size + img->weights_size; /* plan part + weights blob */
    if (sha)
        memcpy(sha, img->sha256, 32);
    assert_int_equal(store_detach(c, img, err, sizeof(err)), 0);
    return size;
}

static int64_t total(const struct store_env *e, const char *key)
{
    json_t *st = env_stats(e);
    int64_t v = stats_total(st, key);
    json_decref(st);
    return v;
}

/* Disk writes happen after the attach was answered: wait (bounded) until n are done. */
static void wait_disk_writes(const struct store_env *e, int64_t n)
{
    for (int i = 0; i < 1000; i++) {
        if (total(e, "disk_writes") >= n)
            return;
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    }
    fail_msg("disk tier: %lld writes after 10 s, expected %lld", (long long)total(e, "disk_writes"),
             (long long)n);
}

/* The disk tier file of the model named name (from STATS "disk"). */
static void disk_file(const struct store_env *e, const char *name, char *out, size_t len)
{
    json_t *st = env_stats(e);
    size_t i;
    json_t *m;
    out[0] = '\0';
    json_array_foreach(json_object_get(st, "disk"), i, m)
    {
        if (strcmp(json_string_value(json_object_get(m, "names")), name) == 0)
            snprintf(out, len, "%s/%s.plan", disk_dir,
                     json_string_value(json_object_get(m, "identity")));
    }
    json_decref(st);
    if (!out[0])
        fail_msg("model %s is not in the disk tier", name);
}

/* The disk tier's weights blob of the model named name (its weights_sha256 in STATS). */
static void disk_blob_file(const struct store_env *e, const char *name, char *out, size_t len)
{
    json_t *st = env_stats(e), *m;
    size_t i;
    out[0] = '\0';
    json_array_foreach(json_object_get(st, "disk"), i, m)
    {
        const char *w = json_string_value(json_object_get(m, "weights_sha256"));
        if (w && strcmp(json_string_value(json_object_get(m, "names")), name) == 0)
            snprintf(out, len, "%s/%s.weights", disk_dir, w);
    }
    json_decref(st);
    if (!out[0])
        fail_msg("model %s has no weights blob in the disk tier", name);
}

static int count_plans(const char *dir, uint64_t *bytes)
{
    DIR *d = opendir(dir);
    int n = 0;
    *bytes = 0;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        size_t len = strlen(de->d_name);
        char p[512];
        struct stat st;
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        if (len > 5 && !strcmp(de->d_name + len - 5, ".plan") && stat(p, &st) == 0) {
            n++;
            *bytes += (uint64_t)st.st_size;
        }
    }
    if (d)
        closedir(d);
    return n;
}

/* One image (4 MiB gemm) fits RAM at a time; the disk tier holds them all. */
static void test_disk_hit_instead_of_compile(void **state)
{
    struct store_env *e = *state;
    start(e, "6MiB", "64MiB", "gdsf");
    struct store_client *c = client(e);
    uint8_t sha1[32], sha2[32];
    use(c, "gemm_a", sha1);
    wait_disk_writes(e, 1);
    use(c, "gemm_b", NULL); /* evicts gemm_a from RAM; the disk tier keeps it */
    wait_disk_writes(e, 2);
    assert_int_equal(total(e, "compiles"), 2);
    int64_t t0 = now_ns();
    use(c, "gemm_a", sha2); /* a RAM miss, a disk hit */
    double ms = (double)(now_ns() - t0) / 1e6;
    json_t *st = env_stats(e);
    printf("disk hit: gemm_a re-attached from the disk tier in %.1f ms; compiles %lld, disk hits "
           "%lld, disk reads %lld, misses %lld\n",
           ms, (long long)stats_total(st, "compiles"), (long long)stats_total(st, "disk_hits"),
           (long long)stats_total(st, "disk_reads"), (long long)stats_total(st, "misses"));
    assert_int_equal(stats_total(st, "compiles"), 2);
    assert_int_equal(stats_total(st, "compiles_started"), 2);
    assert_int_equal(stats_total(st, "disk_hits"), 1);
    assert_int_equal(stats_total(st, "disk_dropped"), 0);
    assert_int_equal(stats_total(st, "misses"), 3);
    assert_memory_equal(sha1, sha2, 32); /* the same image bytes */
    json_decref(st);
    /* A read-back image is not written again. */
    assert_int_equal(total(e, "disk_writes"), 2);
    store_close(c);
}

static void flip_byte(const char *path, off_t at)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, at), 1);
    b ^= 0x5a;
    assert_int_equal(pwrite(fd, &b, 1, at), 1);
    close(fd);
}

static void test_corrupt_and_truncated_dropped(void **state)
{
    struct store_env *e = *state;
    start(e, "6MiB", "64MiB", "gdsf");
    struct store_client *c = client(e);
    uint8_t good_a[32], good_b[32], sha[32];
    uint64_t size = use(c, "gemm_a", good_a);
    use(c, "gemm_b", good_b);
    wait_disk_writes(e, 2);
    char path[512];
    (void)size;
    disk_blob_file(e, "gemm_a", path, sizeof(path));
    struct stat bst;
    assert_int_equal(stat(path, &bst), 0);
    flip_byte(path, bst.st_size / 2); /* tampered: same size, one weight byte changed */
    use(c, "gemm_a", sha);              /* dropped, compiled again */
    assert_memory_equal(sha, good_a, 32);
    assert_int_equal(total(e, "disk_dropped"), 1);
    assert_int_equal(total(e, "compiles"), 3);
    assert_int_equal(total(e, "disk_hits"), 0);
    wait_disk_writes(e, 3); /* the recompiled image is written again */

    disk_file(e, "gemm_b", path, sizeof(path));
    assert_int_equal(stat(path, &bst), 0);
    assert_int_equal(truncate(path, bst.st_size / 3), 0); /* torn plan part */
    use(c, "gemm_b", sha);
    assert_memory_equal(sha, good_b, 32);
    json_t *st = env_stats(e);
    printf("corrupt + truncated disk images: dropped %lld, compiles %lld, disk hits %lld\n",
           (long long)stats_total(st, "disk_dropped"), (long long)stats_total(st, "compiles"),
           (long long)stats_total(st, "disk_hits"));
    assert_int_equal(stats_total(st, "disk_dropped"), 2);
    assert_int_equal(stats_total(st, "compiles"), 4);
    assert_int_equal(stats_total(st, "disk_hits"), 0);
    json_decref(st);
    wait_disk_writes(e, 4);
    use(c, "gemm_a", sha); /* the rewritten file of a is good: read back */
    assert_int_equal(total(e, "disk_hits"), 1);
    assert_int_equal(total(e, "compiles"), 4);
    store_close(c);
}

static void test_disk_budget_respected(void **state)
{
    struct store_env *e = *state;
    start(e, "64MiB", "6MiB", "gdsf"); /* the disk tier holds one gemm image */
    struct store_client *c = client(e);
    static const char *names[] = {"gemm_a", "gemm_b", "gemm_c"};
    uint64_t bytes;
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        use(c, names[i], NULL);
        wait_disk_writes(e, (int64_t)i + 1);
        assert_true(count_plans(disk_dir, &bytes) <= 1);
        assert_true(bytes <= 6u << 20);
        assert_true(total(e, "disk_bytes") <= 6 << 20);
    }
    json_t *st = env_stats(e);
    printf("disk budget 6 MiB, 3 images of 4 MiB written: disk evictions %lld, disk bytes %lld, "
           "files %d\n",
           (long long)stats_total(st, "disk_evictions"), (long long)stats_total(st, "disk_bytes"),
           count_plans(disk_dir, &bytes));
    assert_int_equal(stats_total(st, "disk_evictions"), 2);
    assert_int_equal(stats_total(st, "disk_models"), 1);
    json_decref(st);
    store_close(c);
}

static void test_reboot_restores_without_compiling(void **state)
{
    struct store_env *e = *state;
    start(e, "64MiB", "64MiB", "gdsf");
    struct store_client *c = client(e);
    uint8_t before[32], after[32];
    use(c, "gemm_a", before);
    use(c, "cnn", NULL);
    wait_disk_writes(e, 2);
    store_close(c);
    env_stop(e, SIGTERM); /* a clean stop removes the RAM tier, as a reboot empties tmpfs */
    uint64_t bytes;
    assert_int_equal(access(e->dir, F_OK), -1);
    assert_int_equal(count_plans(disk_dir, &bytes), 2);

    start(e, "64MiB", "64MiB", "gdsf");
    c = client(e);
    use(c, "gemm_a", after);
    use(c, "cnn", NULL);
    json_t *st = env_stats(e);
    printf("reboot: RAM tier emptied, disk kept: disk adopted %lld, disk hits %lld, compiles "
           "%lld\n",
           (long long)stats_total(st, "disk_adopted"), (long long)stats_total(st, "disk_hits"),
           (long long)stats_total(st, "compiles"));
    assert_int_equal(stats_total(st, "disk_adopted"), 2);
    assert_int_equal(stats_total(st, "disk_hits"), 2);
    assert_int_equal(stats_total(st, "compiles"), 0);
    assert_int_equal(stats_total(st, "compiles_started"), 0);
    assert_non_null(stats_model(st, "gemm_a"));
    json_decref(st);
    assert_memory_equal(before, after, 32);
    store_close(c);
}

static void test_prepare_compiles_ahead(void **state)
{
    struct store_env *e = *state;
    start(e, "64MiB", NULL, "gdsf");
    struct store_client *c = client(e);
    char err[1024];
    assert_int_equal(store_prepare(c, "gemm_a", 1, err, sizeof(err)), 0);
    json_t *st = env_stats(e);
    assert_int_equal(stats_total(st, "compiles"), 1);
    assert_int_equal(stats_total(st, "leases"), 0);
    assert_int_equal(stats_total(st, "prepares"), 1);
    assert_int_equal(stats_total(st, "misses"), 0);
    json_t *m = stats_model(st, "gemm_a");
    assert_non_null(m);
    assert_string_equal(json_string_value(json_object_get(m, "state")), "resident");
    json_decref(st);
    assert_int_equal(store_prepare(c, "gemm_a", 1, err, sizeof(err)), 0); /* resident: OK */
    use(c, "gemm_a", NULL);
    assert_int_equal(total(e, "hits"), 1);
    assert_int_equal(total(e, "compiles"), 1);
    assert_true(store_prepare(c, "no_such_model", 1, err, sizeof(err)) < 0);
    store_close(c);
    /* The operator command. */
    char bin[512], cmd[1200];
    env_binary("src/store/shmfaas-store", bin, sizeof(bin));
    snprintf(cmd, sizeof(cmd), "%s prepare gemm_b --socket %s >/dev/null", bin, e->sock);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(total(e, "compiles"), 2);
}

static void test_disk_dir_checked_and_prepare_admitted(void **state)
{
    struct store_env *e = *state;
    char open_dir[256], link[256];
    snprintf(open_dir, sizeof(open_dir), "%s/open", e->root);
    snprintf(link, sizeof(link), "%s/link", e->root);
    assert_int_equal(mkdir(open_dir, 0777), 0);
    assert_int_equal(chmod(open_dir, 0777), 0); /* others could plant or swap images in it */
    assert_int_equal(symlink(open_dir, link), 0);
    const char *bad[] = {open_dir, link, e->dir};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        const char *extra[] = {"--disk-dir", bad[i], NULL};
        int rc = env_start_refused(e, e->dir, extra);
        printf("--disk-dir %s: store exit status %d\n", bad[i], rc);
        assert_true(rc > 0); /* refused at start, not served */
    }
    /* An uid outside --allow-uid may not even PREPARE (compile ahead costs the node a compile). */
    start(e, "64MiB", "64MiB", "gdsf");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct store_client *c;
        char err[1024];
        if (setgid(65534) < 0 || setuid(65534) < 0)
            _exit(3);
        int rc = store_connect(e->sock, &c, err, sizeof(err));
        if (rc == 0)
            rc = store_prepare(c, "gemm_a", 1, err, sizeof(err));
        printf("uid 65534 PREPARE: %s\n", rc ? err : "accepted");
        _exit(rc == -EACCES ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(total(e, "compiles_started"), 0);
}

/* gemm_a used 10 times, then gemm_b once; gemm_c needs the room of one. LRU evicts gemm_a (the
 * least recently released), GDSF gemm_b (10 uses × its compile time vs 1 × about the same). */
static const char *evicted_for_c(struct store_env *e, const char *policy)
{
    start(e, "10MiB", NULL, policy);
    struct store_client *c = client(e);
    for (int i = 0; i < 10; i++)
        use(c, "gemm_a", NULL);
    use(c, "gemm_b", NULL);
    json_t *st = env_stats(e);
    double pa = json_real_value(json_object_get(stats_model(st, "gemm_a"), "priority"));
    double pb = json_real_value(json_object_get(stats_model(st, "gemm_b"), "priority"));
    printf("%s: priorities before gemm_c: gemm_a %.3g, gemm_b %.3g\n", policy, pa, pb);
    if (!strcmp(policy, "gdsf"))
        assert_true(pa > pb);
    json_decref(st);
    use(c, "gemm_c", NULL);
    st = env_stats(e);
    assert_int_equal(stats_total(st, "evictions"), 1);
    const char *gone = !stats_model(st, "gemm_a")   ? "gemm_a"
                       : !stats_model(st, "gemm_b") ? "gemm_b"
                                                    : "none";
    json_decref(st);
    store_close(c);
    env_stop(e, SIGTERM);
    return gone;
}

static void test_gdsf_evicts_by_priority(void **state)
{
    struct store_env *e = *state;
    const char *lru = evicted_for_c(e, "lru");
    const char *gdsf = evicted_for_c(e, "gdsf");
    printf("gemm_a used 10 times, then gemm_b once, then gemm_c: LRU evicts %s, GDSF evicts %s\n",
           lru, gdsf);
    assert_string_equal(lru, "gemm_a");
    assert_string_equal(gdsf, "gemm_b");
}

/* The goal of issue 18: a re-attach of an evicted ResNet-50 from the disk tier ≤ 10 % of its
 * compile. A figure, printed; skipped without the zoo. */
static void test_resnet50_disk_vs_compile(void **state)
{
    struct store_env *e = *state;
    const char *zoo = getenv("SHMFAAS_ZOO");
    char from[512], to[256], err[1024];
    snprintf(from, sizeof(from), "%s/resnet50/model.onnx", zoo ? zoo : "zoo");
    if (access(from, R_OK) != 0) {
        printf("resnet50: %s not found; figure skipped\n", from);
        skip();
    }
    uint8_t *data;
    size_t len;
    assert_int_equal(read_file(from, 1u << 30, &data, &len, err, sizeof(err)), 0);
    snprintf(to, sizeof(to), "%s/resnet50.onnx", e->models);
    assert_int_equal(write_file_atomic(to, data, len, 0644, err, sizeof(err)), 0);
    free(data);
    start(e, "1GiB", "1GiB", "gdsf");
    struct store_client *c = client(e);
    int64_t t0 = now_ns();
    uint64_t size = use(c, "resnet50", NULL);
    double compile_ms = (double)(now_ns() - t0) / 1e6;
    wait_disk_writes(e, 1);
    store_close(c);
    env_stop(e, SIGTERM);
    /* Room for resnet50 and nothing else: gemm_a evicts it from RAM (not from the disk). */
    char budget[32];
    snprintf(budget, sizeof(budget), "%llu", (unsigned long long)(size + (2u << 20)));
    start(e, budget, "1GiB", "gdsf");
    c = client(e);
    t0 = now_ns();
    use(c, "resnet50", NULL); /* after the "reboot": the model file is hashed once more */
    double reboot_ms = (double)(now_ns() - t0) / 1e6;
    use(c, "gemm_a", NULL);
    assert_int_equal(total(e, "evictions"), 1);
    t0 = now_ns();
    use(c, "resnet50", NULL);
    double disk_ms = (double)(now_ns() - t0) / 1e6;
    json_t *st = env_stats(e);
    printf(
        "resnet50 (%.1f MiB image): cold attach with compile %.0f ms; after a restart (model "
        "file hashed + read back) %.0f ms; re-attach after eviction, from the disk tier %.0f ms "
        "= %.1f %% of the compile (goal <= 10 %%); disk read %.0f ms\n",
        (double)size / (1 << 20), compile_ms, reboot_ms, disk_ms, 100 * disk_ms / compile_ms,
        1000 *
            json_real_value(json_object_get(json_object_get(st, "totals"), "disk_read_seconds")) /
            2);
    assert_int_equal(stats_total(st, "compiles"), 1); /* gemm_a's */
    assert_int_equal(stats_total(st, "disk_hits"), 2);
    json_decref(st);
    store_close(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_disk_hit_instead_of_compile, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_and_truncated_dropped, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(test_disk_budget_respected, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_reboot_restores_without_compiling, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(test_prepare_compiles_ahead, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_gdsf_evicts_by_priority, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_disk_dir_checked_and_prepare_admitted, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(test_resnet50_disk_vs_compile, env_setup, env_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
