/*
 * Issue 17 (store): one copy of a model's weights shared by every shape's plan part.
 *
 * dyn_cnn (symbolic N, H, W; 0.8 MiB of weights) attached at three shapes: one weights blob, three
 * plan parts, the blob counted once in resident_bytes, the answers those of whole images compiled
 * here; one mapping of the blob in this process however many shapes it holds (over one
 * connection per shape, as shmfaas-fn's shapes.c does); evicting two shapes keeps the blob,
 * evicting the last frees it; a restart re-adopts parts and blob; a tampered or missing blob is
 * discarded with its parts at re-adoption.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "harness.h"

#include "client/client.h"
#include "common/common.h"
#include "engine/engine.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define N_SHAPES 3
static const char *const shapes[N_SHAPES] = {"1x3x12x12", "2x3x12x12", "1x3x10x10"};

static const struct store_image *attach(struct store_client *c, int i)
{
    char ref[64], err[1024];
    const struct store_image *img;
    snprintf(ref, sizeof(ref), "dyn_cnn?x=%s", shapes[i]);
    if (store_attach(c, ref, 1, &img, err, sizeof(err)) < 0)
        fail_msg("attach %s: %s", ref, err);
    return img;
}

/* Runs model on x (the shape's numel floats, a fixed pattern) into y (1024 per batch row). */
static void run(struct engine_model *m, int i, float *y, size_t ylen)
{
    struct engine_tensor_info info;
    assert_int_equal(engine_model_input(m, 0, &info), 0);
    size_t n = (size_t)engine_shape_numel(&info.shape);
    float *x = calloc(n, sizeof(float));
    for (size_t k = 0; k < n; k++)
        x[k] = (float)((k * 7 + (size_t)i) % 13) / 13.0f - 0.5f;
    struct engine_session *s;
    struct engine_tensor in = {.name = info.name,
                               .dtype = ENGINE_F32,
                               .shape = info.shape,
                               .data = x,
                               .nbytes = n * sizeof(float)},
                         out[2];
    char err[512];
    if (engine_session_create(m, &s, err, sizeof(err)) < 0 ||
        engine_session_run(s, &in, 1, out, 2, err, sizeof(err)) < 0)
        fail_msg("run: %s", err);
    assert_true(out[0].nbytes <= ylen);
    memcpy(y, out[0].data, out[0].nbytes);
    engine_session_destroy(s);
    free(x);
}

/* The answer of shape i from the attached plan part equals that of a whole image compiled here. */
static void check_answer(const struct store_image *img, int i)
{
    char path[512], err[512], text[64];
    uint8_t *onnx;
    size_t len;
    model_source("dyn_cnn", path, sizeof(path));
    assert_int_equal(read_file(path, 1u << 26, &onnx, &len, err, sizeof(err)), 0);
    struct engine_input_shape shape;
    char buf[64];
    snprintf(text, sizeof(text), "x=%s", shapes[i]);
    assert_int_equal(engine_shapes_parse(text, buf, sizeof(buf), &shape, 1, err, sizeof(err)), 1);
    struct engine_compile_opts opts = {.threads = 1, .shapes = &shape, .n_shapes = 1};
    void *whole;
    size_t whole_len;
    if (engine_compile(onnx, len, &opts, &whole, &whole_len, err, sizeof(err)) < 0)
        fail_msg("compile: %s", err);
    free(onnx);
    struct engine_model *a, *b;
    if (engine_model_open_parts(img->addr, img->size, img->weights, img->weights_size, &a, err,
                                sizeof(err)) < 0)
        fail_msg("open the plan part: %s", err);
    assert_int_equal(engine_model_open(whole, whole_len, &b, err, sizeof(err)), 0);
    static float ya[2 * 1024], yb[2 * 1024];
    run(a, i, ya, sizeof(ya));
    run(b, i, yb, sizeof(yb));
    assert_memory_equal(ya, yb, sizeof(ya));
    engine_model_close(a);
    engine_model_close(b);
    engine_image_free(whole);
}

/* Mappings of *.weights files in this process (/proc/self/maps lines). */
static int weights_mappings(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[1024];
    int n = 0;
    while (f && fgets(line, sizeof(line), f))
        n += strstr(line, ".weights\n") != NULL;
    if (f)
        fclose(f);
    return n;
}

static json_t *blob_entry(json_t *st)
{
    json_t *blobs = json_object_get(st, "blobs");
    return json_array_size(blobs) == 1 ? json_array_get(blobs, 0) : NULL;
}

static void evict_identity(struct store_client *c, const uint8_t identity[32])
{
    char ref[80], hex[SHA256_HEX_LEN], err[1024];
    sha256_hex(identity, hex);
    snprintf(ref, sizeof(ref), "sha256:%s", hex);
    if (store_evict_model(c, ref, err, sizeof(err)) < 0)
        fail_msg("evict %s: %s", ref, err);
}

static void test_three_shapes_one_blob(void **state)
{
    struct store_env *e = *state;
    env_start(e, "1GiB", NULL);
    struct store_client *c[N_SHAPES];
    const struct store_image *img[N_SHAPES];
    int64_t resident[N_SHAPES];
    char err[1024];
    for (int i = 0; i < N_SHAPES; i++) {
        /* one connection per shape, as an instance holds them (fn/shapes.c) */
        assert_int_equal(store_connect(e->sock, &c[i], err, sizeof(err)), 0);
        img[i] = attach(c[i], i);
        json_t *st = env_stats(e);
        resident[i] = stats_total(st, "resident_bytes");
        json_decref(st);
        assert_non_null(img[i]->weights);
        assert_true(img[i]->weights_size > 0);
    }
    uint64_t blob = img[0]->weights_size;
    printf("issue 17: dyn_cnn at 3 shapes: resident %lld -> %lld -> %lld bytes (blob %llu, "
           "parts %llu, %llu, %llu)\n",
           (long long)resident[0], (long long)resident[1], (long long)resident[2],
           (unsigned long long)blob, (unsigned long long)img[0]->size,
           (unsigned long long)img[1]->size, (unsigned long long)img[2]->size);
    /* the first shape brings part + blob, the next ones their parts only */
    assert_int_equal(resident[0], (int64_t)(img[0]->size + blob));
    assert_int_equal(resident[1] - resident[0], (int64_t)img[1]->size);
    assert_int_equal(resident[2] - resident[1], (int64_t)img[2]->size);
    for (int i = 1; i < N_SHAPES; i++) {
        assert_memory_equal(img[i]->weights_sha256, img[0]->weights_sha256, 32);
        assert_ptr_equal(img[i]->weights, img[0]->weights); /* one mapping in this process */
        assert_true(img[i]->size * 16 < blob);              /* parts are small */
    }
    assert_int_equal(weights_mappings(), 1);
    json_t *st = env_stats(e);
    assert_int_equal(stats_total(st, "resident_models"), N_SHAPES);
    assert_int_equal(stats_total(st, "blobs"), 1);
    assert_int_equal(stats_total(st, "blob_bytes"), (int64_t)blob);
    json_t *b = blob_entry(st);
    assert_non_null(b);
    assert_int_equal(json_integer_value(json_object_get(b, "refs")), N_SHAPES);
    assert_int_equal(json_array_size(json_object_get(b, "models")), N_SHAPES);
    /* each model's "bytes" is its whole image (what an instance maps): its part and the blob */
    size_t mi;
    json_t *m;
    assert_int_equal(json_array_size(json_object_get(st, "models")), N_SHAPES);
    json_array_foreach(json_object_get(st, "models"), mi, m)
    {
        json_int_t part = json_integer_value(json_object_get(m, "plan_bytes"));
        assert_true(part > 0 && (uint64_t)part * 16 < blob);
        assert_int_equal(json_integer_value(json_object_get(m, "weights_bytes")), (int64_t)blob);
        assert_int_equal(json_integer_value(json_object_get(m, "bytes")), part + (int64_t)blob);
    }
    json_decref(st);
    int nblobs;
    uint64_t bytes;
    assert_int_equal(env_count_images(e, &bytes), N_SHAPES);
    assert_int_equal(env_blob_bytes(e, &nblobs), blob);
    assert_int_equal(nblobs, 1);
    assert_int_equal((int64_t)bytes, resident[2]);
    for (int i = 0; i < N_SHAPES; i++)
        check_answer(img[i], i);

    /* evicting two shapes keeps the blob; evicting the last frees it */
    uint8_t id[N_SHAPES][32];
    uint64_t last_part = img[2]->size;
    for (int i = 0; i < N_SHAPES; i++) {
        memcpy(id[i], img[i]->identity, 32);
        assert_int_equal(store_detach(c[i], img[i], err, sizeof(err)), 0);
    }
    assert_int_equal(weights_mappings(), 0); /* unmapped with the last image using it */
    evict_identity(c[0], id[0]);
    evict_identity(c[0], id[1]);
    st = env_stats(e);
    assert_int_equal(stats_total(st, "resident_models"), 1);
    assert_int_equal(stats_total(st, "blobs"), 1);
    assert_int_equal(stats_total(st, "resident_bytes"), (int64_t)(last_part + blob));
    json_decref(st);
    assert_int_equal(env_blob_bytes(e, &nblobs), blob);
    evict_identity(c[0], id[2]);
    st = env_stats(e);
    assert_int_equal(stats_total(st, "resident_models"), 0);
    assert_int_equal(stats_total(st, "blobs"), 0);
    assert_int_equal(stats_total(st, "resident_bytes"), 0);
    json_decref(st);
    assert_int_equal(env_blob_bytes(e, &nblobs), 0);
    assert_int_equal(nblobs, 0);
    for (int i = 0; i < N_SHAPES; i++)
        store_close(c[i]);
}

/* Attaches every shape once (compiling them) and drops the leases; the blob's size. */
static uint64_t make_shapes(const struct store_env *e)
{
    struct store_client *c;
    char err[1024];
    assert_int_equal(store_connect(e->sock, &c, err, sizeof(err)), 0);
    uint64_t blob = 0;
    for (int i = 0; i < N_SHAPES; i++)
        blob = attach(c, i)->weights_size;
    store_close(c);
    return blob;
}

static void flip_blob_byte(const char *path, void *ctx)
{
    (void)ctx;
    int fd = open(path, O_RDONLY | O_CLOEXEC), flags = 0;
    assert_true(fd >= 0);
    assert_int_equal(ioctl(fd, FS_IOC_GETFLAGS, &flags), 0);
    flags &= ~FS_IMMUTABLE_FL;
    ioctl(fd, FS_IOC_SETFLAGS, &flags); /* may fail where sealing is unavailable: then unsealed */
    close(fd);
    fd = open(path, O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    uint8_t byte;
    assert_int_equal(pread(fd, &byte, 1, 4096), 1);
    byte ^= 0x5a;
    assert_int_equal(pwrite(fd, &byte, 1, 4096), 1);
    close(fd);
}

static void remove_blob(const char *path, void *ctx)
{
    (void)ctx;
    int fd = open(path, O_RDONLY | O_CLOEXEC), flags = 0;
    assert_true(fd >= 0);
    if (ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0) {
        flags &= ~FS_IMMUTABLE_FL;
        ioctl(fd, FS_IOC_SETFLAGS, &flags);
    }
    close(fd);
    assert_int_equal(unlink(path), 0);
}

/* Calls fn for each *.weights file of the image directory. */
static int each_blob(const struct store_env *e, void (*fn)(const char *path, void *ctx))
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "ls %s/*.weights 2>/dev/null", e->dir);
    FILE *p = popen(cmd, "r");
    char line[512];
    int n = 0;
    while (p && fgets(line, sizeof(line), p)) {
        line[strcspn(line, "\n")] = '\0';
        fn(line, NULL);
        n++;
    }
    if (p)
        pclose(p);
    return n;
}

static void test_restart_readopts_and_tamper(void **state)
{
    struct store_env *e = *state;
    env_start(e, "1GiB", NULL);
    uint64_t blob = make_shapes(e);
    env_stop(e, SIGKILL);
    env_start(e, "1GiB", NULL);
    json_t *st = env_stats(e);
    printf("issue 17: after kill -9 and restart: adopted %lld, discarded %lld, blobs %lld, "
           "compiles %lld\n",
           (long long)stats_total(st, "adopted"), (long long)stats_total(st, "discarded"),
           (long long)stats_total(st, "blobs"), (long long)stats_total(st, "compiles"));
    assert_int_equal(stats_total(st, "adopted"), N_SHAPES);
    assert_int_equal(stats_total(st, "discarded"), 0);
    assert_int_equal(stats_total(st, "compiles"), 0);
    assert_int_equal(stats_total(st, "blobs"), 1);
    assert_int_equal(stats_total(st, "blob_bytes"), (int64_t)blob);
    json_decref(st);
    struct store_client *c;
    char err[1024];
    assert_int_equal(store_connect(e->sock, &c, err, sizeof(err)), 0);
    check_answer(attach(c, 1), 1); /* the re-adopted pair answers as a whole image */
    store_close(c);

    /* a tampered blob (its bytes no longer have the SHA-256 its parts record): discarded at
     * re-adoption with every part that refers to it; the next attach compiles again */
    env_stop(e, SIGKILL);
    assert_int_equal(each_blob(e, flip_blob_byte), 1);
    env_start(e, "1GiB", NULL);
    st = env_stats(e);
    printf("issue 17: tampered blob: adopted %lld, discarded %lld, blobs %lld\n",
           (long long)stats_total(st, "adopted"), (long long)stats_total(st, "discarded"),
           (long long)stats_total(st, "blobs"));
    assert_int_equal(stats_total(st, "adopted"), 0);
    assert_int_equal(stats_total(st, "discarded"), N_SHAPES + 1); /* the blob and 3 parts */
    assert_int_equal(stats_total(st, "blobs"), 0);
    assert_int_equal(stats_total(st, "resident_bytes"), 0);
    json_decref(st);
    uint64_t bytes;
    assert_int_equal(env_count_images(e, &bytes), 0);
    assert_int_equal(bytes, 0);
    assert_int_equal(store_connect(e->sock, &c, err, sizeof(err)), 0);
    check_answer(attach(c, 0), 0);
    store_close(c);
    st = env_stats(e);
    assert_int_equal(stats_total(st, "compiles"), 1);
    json_decref(st);

    /* a missing blob: every part that refers to it is discarded */
    make_shapes(e);
    env_stop(e, SIGKILL);
    assert_int_equal(each_blob(e, remove_blob), 1);
    env_start(e, "1GiB", NULL);
    st = env_stats(e);
    printf("issue 17: missing blob: adopted %lld, discarded %lld\n",
           (long long)stats_total(st, "adopted"), (long long)stats_total(st, "discarded"));
    assert_int_equal(stats_total(st, "adopted"), 0);
    assert_int_equal(stats_total(st, "discarded"), N_SHAPES);
    assert_int_equal(stats_total(st, "resident_bytes"), 0);
    json_decref(st);
    assert_int_equal(env_count_images(e, &bytes), 0);
}

/* With a disk tier: the three parts go to disk with one blob; after a clean stop (the RAM tier
 * removed) the three shapes are read back, not compiled, and share one blob in RAM again. */
static void test_disk_tier_one_blob(void **state)
{
    struct store_env *e = *state;
    char disk[256];
    snprintf(disk, sizeof(disk), "%s/disk", e->root);
    const char *extra[] = {"--disk-dir", disk, NULL};
    env_start(e, "1GiB", extra);
    uint64_t blob = make_shapes(e);
    json_t *st = NULL;
    for (int i = 0; i < 1000; i++) {
        json_decref(st);
        st = env_stats(e);
        if (stats_total(st, "disk_writes") >= N_SHAPES)
            break;
        usleep(10000);
    }
    assert_int_equal(stats_total(st, "disk_writes"), N_SHAPES);
    assert_int_equal(stats_total(st, "disk_blobs"), 1);
    int64_t disk_bytes = stats_total(st, "disk_bytes");
    json_decref(st);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "test $(ls %s/*.weights | wc -l) = 1 && test $(ls %s/*.plan | wc -l) = 3", disk, disk);
    assert_int_equal(system(cmd), 0);
    env_stop(e, SIGTERM);
    env_start(e, "1GiB", extra);
    st = env_stats(e);
    assert_int_equal(stats_total(st, "disk_blobs"), 1);
    assert_int_equal(stats_total(st, "disk_bytes"), disk_bytes);
    json_decref(st);
    struct store_client *c;
    char err[1024];
    assert_int_equal(store_connect(e->sock, &c, err, sizeof(err)), 0);
    for (int i = 0; i < N_SHAPES; i++)
        check_answer(attach(c, i), i);
    st = env_stats(e);
    printf("issue 17: disk tier: %lld bytes for 3 shapes (blob %llu once), after a restart: "
           "disk hits %lld, compiles %lld, RAM blobs %lld\n",
           (long long)disk_bytes, (unsigned long long)blob, (long long)stats_total(st, "disk_hits"),
           (long long)stats_total(st, "compiles"), (long long)stats_total(st, "blobs"));
    assert_int_equal(stats_total(st, "disk_hits"), N_SHAPES);
    assert_int_equal(stats_total(st, "compiles"), 0);
    assert_int_equal(stats_total(st, "blobs"), 1);
    assert_true((uint64_t)disk_bytes < blob + N_SHAPES * (blob / 16));
    json_decref(st);
    store_close(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_three_shapes_one_blob, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_restart_readopts_and_tamper, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_disk_tier_one_blob, env_setup, env_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
