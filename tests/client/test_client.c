/*
 * The store client library (src/client/client.h) against the real shmfaas-store: the ways to
 * name a model, identity sharing, thread counts, detach, errors a user can act on, and reconnect
 * after a store restart.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "harness.h"

#include "client/client.h"
#include "common/common.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct store_client *connect_to(const struct store_env *e)
{
    struct store_client *c;
    char err[512];
    if (store_connect(e->sock, &c, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    return c;
}

static const struct store_image *attach(struct store_client *c, const char *ref, int threads)
{
    const struct store_image *img;
    char err[1024];
    if (store_attach(c, ref, threads, &img, err, sizeof(err)) < 0)
        fail_msg("attach %s: %s", ref, err);
    return img;
}

static void hex_ref(const uint8_t digest[32], char *out, size_t len)
{
    char hex[SHA256_HEX_LEN];
    sha256_hex(digest, hex);
    snprintf(out, len, "sha256:%s", hex);
}

static void test_refs_share_one_image(void **state)
{
    struct store_env *e = *state;
    char from[256], to[256], ref[128];
    snprintf(from, sizeof(from), "%s/gemm_a.onnx", e->models);
    snprintf(to, sizeof(to), "%s/alias.onnx", e->models);
    uint8_t *bytes;
    size_t len;
    assert_int_equal(read_file(from, 1u << 30, &bytes, &len, NULL, 0), 0);
    assert_int_equal(write_file_atomic(to, bytes, len, 0644, NULL, 0), 0);
    uint8_t source[32];
    sha256(bytes, len, source);
    free(bytes);
    env_start(e, "1GiB", NULL);
    struct store_client *c = connect_to(e);

    const struct store_image *a = attach(c, "gemm_a", 1);
    const struct store_image *by_path = attach(c, from, 1);
    const struct store_image *alias = attach(c, "alias", 1);
    hex_ref(a->identity, ref, sizeof(ref));
    const struct store_image *by_id = attach(c, ref, 1);
    hex_ref(source, ref, sizeof(ref));
    const struct store_image *by_src = attach(c, ref, 1);
    const struct store_image *list[] = {by_path, alias, by_id, by_src};
    for (size_t i = 0; i < ARRAY_LEN(list); i++) {
        assert_memory_equal(list[i]->identity, a->identity, 32);
        assert_memory_equal(list[i]->sha256, a->sha256, 32);
        assert_true(list[i]->size == a->size);
        assert_memory_equal(list[i]->addr, a->addr, 64);
    }
    /* Another thread count is another image. */
    const struct store_image *two = attach(c, "gemm_a", 2);
    assert_int_equal(two->threads, 2);
    assert_memory_not_equal(two->identity, a->identity, 32);

    json_t *st = env_stats(e);
    assert_int_equal(stats_total(st, "compiles"), 2);
    assert_int_equal(stats_total(st, "leases"), 6);
    json_t *m = stats_model(st, "alias");
    assert_non_null(m);
    assert_non_null(strstr(json_string_value(json_object_get(m, "names")), "gemm_a"));
    json_decref(st);

    char err[512];
    assert_int_equal(store_detach(c, two, err, sizeof(err)), 0);
    assert_int_equal(store_detach(c, two, err, sizeof(err)), -ENOENT);
    st = env_stats(e);
    assert_int_equal(stats_total(st, "leases"), 5);
    json_decref(st);
    /* Evict refuses while leased, then drops both thread-count images of the bytes. */
    assert_int_equal(store_evict_model(c, "gemm_a", err, sizeof(err)), -EBUSY);
    store_close(c);
    st = env_stats(e);
    assert_int_equal(stats_total(st, "leases"), 0);
    json_decref(st);
    c = connect_to(e);
    assert_int_equal(store_evict_model(c, "alias", err, sizeof(err)), 0);
    assert_int_equal(store_evict_model(c, "alias", err, sizeof(err)), -ENOENT);
    store_close(c);
    st = env_stats(e);
    assert_int_equal(stats_total(st, "resident_models"), 0);
    assert_int_equal(stats_total(st, "evictions"), 2);
    json_decref(st);
}

static void test_errors_say_what_is_wrong(void **state)
{
    struct store_env *e = *state;
    char err[1024], path[256];
    snprintf(path, sizeof(path), "%s/broken.onnx", e->models);
    assert_int_equal(write_file_atomic(path, "not onnx", 8, 0644, NULL, 0), 0);
    env_start(e, "1GiB", NULL);
    struct store_client *c = connect_to(e);
    const struct store_image *img;

    assert_int_equal(store_attach(c, "nosuch", 1, &img, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "model nosuch"));
    assert_int_equal(store_attach(c, "broken", 1, &img, err, sizeof(err)) < 0, 1);
    assert_non_null(strstr(err, "model broken: compile failed"));
    assert_int_equal(store_attach(c, "sha256:0000", 1, &img, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "64 hex digits"));
    assert_int_equal(store_attach(c, "../gemm_a", 1, &img, err, sizeof(err)), -EINVAL);
    /* The connection survives every refused request. */
    attach(c, "cnn", 1);
    store_close(c);

    env_stop(e, SIGTERM);
    assert_int_equal(store_connect(e->sock, &c, err, sizeof(err)) < 0, 1);
    printf("client: %s\n", err);
    assert_non_null(strstr(err, e->sock));
    assert_non_null(strstr(err, "is shmfaas-store running?"));
}

static void test_reconnect_after_restart(void **state)
{
    struct store_env *e = *state;
    env_start(e, "1GiB", (const char *[]){"--keep-images", NULL});
    struct store_client *c = connect_to(e);
    const struct store_image *img = attach(c, "cnn", 1);
    const void *addr = img->addr;
    char err[512];

    env_stop(e, SIGTERM); /* clean stop with --keep-images: images and manifest stay */
    assert_true(store_reconnect(c, 100, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "is shmfaas-store running?"));

    env_start(e, "1GiB", NULL);
    assert_int_equal(store_reconnect(c, 5000, err, sizeof(err)), 0);
    assert_ptr_equal(img->addr, addr);
    json_t *st = env_stats(e);
    assert_int_equal(stats_total(st, "leases"), 1);
    assert_int_equal(stats_total(st, "compiles"), 0);
    assert_int_equal(stats_total(st, "adopted"), 1);
    json_decref(st);
    assert_int_equal(store_detach(c, img, err, sizeof(err)), 0);
    store_close(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_refs_share_one_image, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_errors_say_what_is_wrong, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_after_restart, env_setup, env_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
