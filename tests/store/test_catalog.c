/* Unit tests for the store's bookkeeping: budget + LRU and GDSF (catalog.h), model refs (ref.h),
 * the manifest (manifest.h), remembered refusals, the log rate limiter and the thread-count rule
 * (store.h). No daemon: these pin the rules the integration tests rely on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "store/catalog.h"
#include "store/manifest.h"
#include "store/ref.h"
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MiB (1ull << 20)

static struct model *add(struct catalog *c, int tag, const char *name, uint64_t size)
{
    uint8_t id[SHA256_LEN] = {0}, src[SHA256_LEN] = {0};
    id[0] = (uint8_t)tag;
    src[0] = (uint8_t)(tag + 100);
    struct model *m = catalog_add(c, id, src, 1, name);
    assert_non_null(m);
    catalog_admit(c, m, size);
    return m;
}

static void test_budget_evicts_least_recently_released(void **state)
{
    struct catalog c;
    catalog_init(&c, 10 * MiB);
    c.policy = CATALOG_LRU;
    struct model *a = add(&c, 1, "a", 4 * MiB), *b = add(&c, 2, "b", 4 * MiB);
    catalog_lease(&c, a, 1);
    catalog_lease(&c, b, 2);
    catalog_release(&c, b, 3); /* b released first ... */
    catalog_release(&c, a, 4); /* ... then a: b is the LRU one */
    struct model *victims[4];
    size_t n;
    char err[512];
    assert_int_equal(catalog_plan_room(&c, 4 * MiB, "c", victims, 4, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 1);
    assert_ptr_equal(victims[0], b);
    /* Room already there: nobody is evicted. */
    assert_int_equal(catalog_plan_room(&c, 2 * MiB, "c", victims, 4, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 0);
    catalog_free(&c);
}

/* A model used `uses` times (leased and released), with a reload cost of cost_s seconds. */
static void use(struct catalog *c, struct model *m, double cost_s, int uses)
{
    for (int i = 0; i < uses; i++) {
        catalog_set_cost(c, m, cost_s);
        catalog_lease(c, m, 1);
        catalog_release(c, m, 2);
    }
}

/* The victim plan_room picks to fit need bytes (exactly one expected). */
static struct model *victim(struct catalog *c, uint64_t need)
{
    struct model *v[4];
    size_t n;
    char err[512];
    assert_int_equal(catalog_plan_room(c, need, "new", v, 4, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 1);
    return v[0];
}

/* A constructed sequence where LRU and GDSF disagree: GDSF keeps what is expensive to reload
 * per byte, or often used, even when it was released longer ago; its clock then ages the rest. */
static void test_gdsf_evicts_by_priority_where_lru_would_not(void **state)
{
    struct catalog lru, gdsf;
    struct model *la, *lb, *ga, *gb;
    catalog_init(&lru, 10 * MiB);
    catalog_init(&gdsf, 10 * MiB);
    lru.policy = CATALOG_LRU;
    assert_int_equal(gdsf.policy, CATALOG_GDSF); /* the default */
    /* b: 4 MiB, 9 s to compile, used first; a: 4 MiB, 1 s, used after. */
    lb = add(&lru, 2, "b", 4 * MiB);
    la = add(&lru, 1, "a", 4 * MiB);
    gb = add(&gdsf, 2, "b", 4 * MiB);
    ga = add(&gdsf, 1, "a", 4 * MiB);
    use(&lru, lb, 9, 1);
    use(&lru, la, 1, 1);
    use(&gdsf, gb, 9, 1);
    use(&gdsf, ga, 1, 1);
    assert_ptr_equal(victim(&lru, 4 * MiB), lb);  /* least recently released */
    assert_ptr_equal(victim(&gdsf, 4 * MiB), ga); /* 1 s / 4 MiB < 9 s / 4 MiB */
    double pa = ga->priority;
    assert_true(pa > 0 && gb->priority > pa);
    catalog_evict(&gdsf, ga);
    assert_true(gdsf.clock == pa); /* the clock rises to the victim's priority */

    /* Frequency: c (1 s, used 5 times) outlives b (2 s, used once) of the same size, though b
     * is the one used last. A new use is priced from the new clock. */
    struct model *gc = add(&gdsf, 3, "c", 4 * MiB);
    use(&gdsf, gc, 1, 5);
    use(&gdsf, gb, 2, 1); /* b's second use, at 2 s: priority = clock + 2 × 2 s / 4 MiB */
    assert_true(gb->freq == 2 && gc->freq == 5);
    assert_true(gb->priority == pa + 2.0 * 2 / (4.0 * MiB));
    assert_ptr_equal(victim(&gdsf, 4 * MiB), gb);

    /* Size: per byte, a big cheap image goes before a small expensive one. */
    struct catalog s;
    catalog_init(&s, 700 * MiB);
    struct model *big = add(&s, 4, "big", 600 * MiB), *small = add(&s, 5, "small", 50 * MiB);
    use(&s, small, 1, 1); /* small released first: LRU would evict it */
    use(&s, big, 3, 1);   /* 3 s / 600 MiB < 1 s / 50 MiB */
    assert_ptr_equal(victim(&s, 100 * MiB), big);

    /* A lease still pins: the lowest priority is skipped while leased. */
    catalog_lease(&s, big, 3);
    assert_ptr_equal(victim(&s, 100 * MiB), small);
    catalog_release(&s, big, 4);

    /* A cheaper reload (a disk copy appeared) lowers the priority from the same base. */
    double before = small->priority;
    catalog_set_cost(&s, small, 0.5);
    assert_true(small->priority < before);
    assert_true(small->priority == before - 0.5 / (50.0 * MiB));
    catalog_free(&lru);
    catalog_free(&gdsf);
    catalog_free(&s);
}

static void test_policy_names(void **state)
{
    enum catalog_policy p;
    assert_int_equal(catalog_policy_parse("lru", &p), 0);
    assert_int_equal(p, CATALOG_LRU);
    assert_string_equal(catalog_policy_name(p), "lru");
    assert_int_equal(catalog_policy_parse("gdsf", &p), 0);
    assert_int_equal(p, CATALOG_GDSF);
    assert_string_equal(catalog_policy_name(p), "gdsf");
    assert_int_equal(catalog_policy_parse("LFU", &p), -EINVAL);
}

static void test_budget_refuses_with_pinned_details(void **state)
{
    struct catalog c;
    catalog_init(&c, 10 * MiB);
    struct model *a = add(&c, 1, "a", 4 * MiB), *b = add(&c, 2, "b", 4 * MiB);
    catalog_lease(&c, a, 1);
    catalog_lease(&c, a, 1);
    catalog_lease(&c, b, 1);
    struct model *victims[4];
    size_t n;
    char err[512];
    assert_int_equal(catalog_plan_room(&c, 4 * MiB, "c", victims, 4, &n, err, sizeof(err)),
                     -ENOSPC);
    assert_non_null(strstr(err, "budget exhausted: c needs 4.0 MiB, budget 10.0 MiB, 8.0 MiB "
                                "pinned by 3 leases on 2 models"));
    assert_non_null(strstr(err, "a: 4.0 MiB, 2 leases"));
    assert_non_null(strstr(err, "b: 4.0 MiB, 1 lease"));
    /* Bigger than the whole budget: refused even with nothing pinned. */
    catalog_release(&c, a, 2);
    catalog_release(&c, a, 2);
    catalog_release(&c, b, 2);
    assert_int_equal(catalog_plan_room(&c, 11 * MiB, "huge", victims, 4, &n, err, sizeof(err)),
                     -ENOSPC);
    assert_non_null(strstr(err, "huge needs 11.0 MiB, more than the whole budget of 10.0 MiB"));
    catalog_free(&c);
}

static void test_resident_bytes_follow_admit_and_remove(void **state)
{
    struct catalog c;
    catalog_init(&c, 100 * MiB);
    struct model *a = add(&c, 1, "a", 3 * MiB);
    add(&c, 2, "b", 5 * MiB);
    assert_true(c.resident_bytes == 8 * MiB);
    assert_int_equal(catalog_count(&c, MODEL_RESIDENT), 2);
    catalog_remove(&c, a);
    assert_true(c.resident_bytes == 5 * MiB);
    assert_int_equal(catalog_count(&c, MODEL_RESIDENT), 1);
    catalog_free(&c);
}

/* Issue 17: three plan parts share one blob; it is counted once, freed only with its last part,
 * and the room a victim frees includes the blob only when no part that stays refers to it. */
static void test_blob_counted_once_and_freed_with_last_part(void **state)
{
    struct catalog c;
    catalog_init(&c, 12 * MiB);
    catalog_policy_parse("lru", &c.policy);
    uint8_t sha[SHA256_LEN] = {7};
    struct blob *b = catalog_blob_add(&c, sha, 8 * MiB, -1);
    assert_non_null(b);
    assert_ptr_equal(catalog_blob_find(&c, sha), b);
    struct model *p[3];
    for (int i = 0; i < 3; i++) {
        p[i] = add(&c, 10 + i, "shape", 1 * MiB);
        catalog_blob_link(p[i], b);
    }
    assert_true(c.resident_bytes == 11 * MiB); /* 8 + 3 x 1, not 3 x 9 */
    assert_int_equal(b->refs, 3);
    assert_true(catalog_model_bytes(p[0]) == 9 * MiB);
    /* 5 MiB more: evicting two parts frees 2 MiB (the blob stays for the third): not enough;
     * all three free 11 MiB */
    struct model *victims[4];
    size_t n;
    char err[512];
    assert_int_equal(catalog_plan_room(&c, 5 * MiB, "new", victims, 4, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 3);
    /* 2 MiB more: two parts are enough (1 + 1 free 2 MiB, leaving 9 + 2 = 11 <= 12) */
    assert_int_equal(catalog_plan_room(&c, 2 * MiB, "new", victims, 4, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 1);
    /* a part being admitted that refers to the blob keeps it from being freed */
    struct model *incoming = catalog_add(&c, (uint8_t[SHA256_LEN]){99}, sha, 1, "incoming");
    catalog_blob_link(incoming, b);
    assert_int_equal(catalog_plan_room(&c, 5 * MiB, "new", victims, 4, &n, err, sizeof(err)),
                     -ENOSPC);
    catalog_remove(&c, incoming);
    catalog_evict(&c, p[0]);
    catalog_evict(&c, p[1]);
    assert_null(catalog_blob_orphan(&c));
    assert_true(c.resident_bytes == 9 * MiB);
    catalog_evict(&c, p[2]);
    assert_ptr_equal(catalog_blob_orphan(&c), b);
    catalog_blob_drop(&c, b);
    assert_true(c.resident_bytes == 0);
    assert_int_equal(catalog_blob_count(&c), 0);
    catalog_free(&c);
}

static void test_names_and_hash_lookup(void **state)
{
    struct catalog c;
    catalog_init(&c, 100 * MiB);
    struct model *a = add(&c, 1, "resnet18", MiB);
    catalog_add_name(a, "rn18");
    catalog_add_name(a, "resnet18");
    catalog_add_name(a, "sha256:00");
    assert_string_equal(a->names, "resnet18,rn18");
    uint8_t src[SHA256_LEN] = {101};
    assert_ptr_equal(catalog_find_hash(&c, src, 1), a);
    assert_null(catalog_find_hash(&c, src, 2));
    assert_ptr_equal(catalog_find_hash(&c, a->identity, 7), a);
    catalog_free(&c);
}

/* ---- refs ---- */

static char root[64];

static void put(const char *rel, const char *text)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", root, rel);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup_refs(void **state)
{
    strcpy(root, "/tmp/shmfaas-ref-XXXXXX");
    assert_non_null(mkdtemp(root));
    char p[256], q[256];
    snprintf(p, sizeof(p), "%s/models", root);
    mkdir(p, 0700);
    put("models/resnet18.onnx", "x");
    put("secret.onnx", "s");
    snprintf(p, sizeof(p), "%s/secret.onnx", root);
    snprintf(q, sizeof(q), "%s/models/escape.onnx", root);
    assert_int_equal(symlink(p, q), 0);
    snprintf(p, sizeof(p), "%s/models/resnet18.onnx", root);
    snprintf(q, sizeof(q), "%s/models/alias.onnx", root);
    assert_int_equal(symlink(p, q), 0);
    return 0;
}

static int teardown_refs(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
    return system(cmd);
}

static void test_refs(void **state)
{
    char models[128], err[512], p[256];
    snprintf(models, sizeof(models), "%s/models", root);
    struct ref r;
    assert_int_equal(ref_resolve(models, "resnet18", &r, err, sizeof(err)), 0);
    assert_int_equal(r.kind, REF_PATH);
    assert_string_equal(r.name, "resnet18");
    snprintf(p, sizeof(p), "%s/resnet18.onnx", models);
    assert_string_equal(r.path, p);
    /* An absolute path inside, and a symlink that stays inside, are fine. */
    assert_int_equal(ref_resolve(models, p, &r, err, sizeof(err)), 0);
    assert_int_equal(ref_resolve(models, "alias", &r, err, sizeof(err)), 0);
    assert_string_equal(r.name, "alias");
    assert_string_equal(r.path, p);
    /* Out of the directory: refused, whichever way. */
    assert_int_equal(ref_resolve(models, "escape", &r, err, sizeof(err)), -EPERM);
    assert_non_null(strstr(err, "outside the models directory"));
    snprintf(p, sizeof(p), "%s/../secret.onnx", models);
    assert_int_equal(ref_resolve(models, p, &r, err, sizeof(err)), -EPERM);
    snprintf(p, sizeof(p), "%s/secret.onnx", root);
    assert_int_equal(ref_resolve(models, p, &r, err, sizeof(err)), -EPERM);
    assert_int_equal(ref_resolve(models, "/etc/passwd", &r, err, sizeof(err)), -EPERM);
    assert_int_equal(ref_resolve(models, models, &r, err, sizeof(err)), -EPERM);
    static const char *bad[] = {"", "..", "../secret", ".hidden", "-x", "a b", "a\\b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(ref_resolve(models, bad[i], &r, err, sizeof(err)), -EINVAL);
    /* "registry/path/name" (an OCI image ref): the path is ignored, name "b" is looked up. */
    assert_int_equal(ref_resolve(models, "a/b", &r, err, sizeof(err)), -ENOENT);
    char longname[300];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(ref_resolve(models, longname, &r, err, sizeof(err)), -EINVAL);
    assert_int_equal(ref_resolve(models, "missing", &r, err, sizeof(err)), -ENOENT);
    /* Hashes. */
    char h[80] = "sha256:";
    memset(h + 7, 'a', 64);
    h[71] = '\0';
    assert_int_equal(ref_resolve(models, h, &r, err, sizeof(err)), 0);
    assert_int_equal(r.kind, REF_HASH);
    assert_int_equal(r.hash[0], 0xaa);
    h[70] = '\0';
    assert_int_equal(ref_resolve(models, h, &r, err, sizeof(err)), -EINVAL);
    h[70] = 'g';
    assert_int_equal(ref_resolve(models, h, &r, err, sizeof(err)), -EINVAL);
}

/* ---- manifest ---- */

static void test_manifest_roundtrip(void **state)
{
    struct catalog c;
    catalog_init(&c, 100 * MiB);
    struct model *a = add(&c, 1, "resnet18", 3 * MiB);
    a->last_use_ms = 1234;
    a->compile_s = 2.5;
    a->read_s = 0.125;
    a->freq = 7;
    a->priority = 3.5e-6;
    c.clock = 1.5e-6;
    struct model *compiling = catalog_add(&c, (uint8_t[SHA256_LEN]){9}, a->source_sha, 1, "x");
    assert_non_null(compiling);
    char err[512];
    int dir = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(dir >= 0);
    assert_int_equal(manifest_write(dir, "manifest.json", &c, "engine-test", err, sizeof(err)), 0);
    struct manifest m;
    assert_int_equal(manifest_read(dir, "manifest.json", &m, err, sizeof(err)), 0);
    assert_int_equal(m.n, 1); /* only resident models */
    const struct manifest_entry *e = manifest_find(&m, a->idhex);
    assert_non_null(e);
    assert_string_equal(e->names, "resnet18");
    assert_int_equal(e->last_use_ms, 1234);
    assert_true(e->release_seq == a->release_seq);
    assert_true(e->compile_s == 2.5 && e->read_s == 0.125); /* GDSF's inputs survive a restart */
    assert_true(e->freq == 7 && e->priority == 3.5e-6 && m.clock == 1.5e-6);
    manifest_free(&m);
    /* Missing: empty. Garbage: an error, not a crash. */
    assert_int_equal(manifest_read(dir, "none.json", &m, err, sizeof(err)), 0);
    assert_int_equal(m.n, 0);
    put("bad.json", "{\"models\": [1, {\"identity\": \"zz\"}, {}]");
    assert_int_equal(manifest_read(dir, "bad.json", &m, err, sizeof(err)), -EINVAL);
    put("bad.json", "{\"models\": [1, {\"identity\": \"zz\"}, {}]}");
    assert_int_equal(manifest_read(dir, "bad.json", &m, err, sizeof(err)), 0);
    assert_int_equal(m.n, 0);
    manifest_free(&m);
    /* A planted symlink is not followed. */
    assert_int_equal(symlinkat("bad.json", dir, "link.json"), 0);
    assert_true(manifest_read(dir, "link.json", &m, err, sizeof(err)) < 0);
    close(dir);
    catalog_free(&c);
}

static void test_refusals_window_doubles_and_forgets(void **state)
{
    struct refusals r = {0};
    uint8_t id[SHA256_LEN] = {1}, other[SHA256_LEN] = {2};
    struct refusal *f =
        refusal_record(&r, id, "big", REFUSAL_BUDGET, -ENOSPC, 100, "needs 100", 0, 1000, 4000);
    assert_non_null(f);
    assert_ptr_equal(refusal_active(&r, id, 999), f);
    assert_null(refusal_active(&r, id, 1000));
    assert_null(refusal_active(&r, other, 10));
    /* refused again after the window: twice as long, then capped */
    f = refusal_record(&r, id, "alias", REFUSAL_BUDGET, -ENOSPC, 100, "needs 100", 1000, 1000,
                       4000);
    assert_int_equal(f->window_ms, 2000);
    assert_string_equal(f->names, "big,alias");
    f = refusal_record(&r, id, "big", REFUSAL_BUDGET, -ENOSPC, 100, "x", 3000, 1000, 4000);
    assert_int_equal(f->window_ms, 4000);
    f = refusal_record(&r, id, "big", REFUSAL_BUDGET, -ENOSPC, 100, "x", 7000, 1000, 4000);
    assert_int_equal(f->window_ms, 4000);
    /* quiet for two windows after the last one: starts over */
    f = refusal_record(&r, id, "big", REFUSAL_COMPILE, -ENOEXEC, 0, "bad", 7000 + 3 * 4000, 1000,
                       4000);
    assert_int_equal(f->window_ms, 1000);
    assert_int_equal(f->code, -ENOEXEC);
    refusal_forget(&r, id);
    assert_null(refusal_active(&r, id, 0));
    assert_int_equal(r.n, 0);
    /* bounded: the oldest go first */
    for (int i = 0; i < REFUSALS_MAX + 10; i++) {
        uint8_t k[SHA256_LEN] = {0};
        k[0] = (uint8_t)i;
        k[1] = (uint8_t)(i >> 8);
        assert_non_null(
            refusal_record(&r, k, "m", REFUSAL_BUDGET, -ENOSPC, 1, "r", i, 100000, 100000));
    }
    assert_true(r.n <= REFUSALS_MAX);
    refusals_free(&r);
}

static void test_loglimit_one_line_per_second(void **state)
{
    static struct loglimit l;
    uint64_t dropped = 7;
    assert_true(loglimit_pass(&l, 1000, 0, 5000, &dropped));
    assert_int_equal(dropped, 0);
    for (int i = 0; i < 100; i++)
        assert_false(loglimit_pass(&l, 1000, 0, 5000 + i, &dropped));
    assert_true(loglimit_pass(&l, 1000, 1, 5100, &dropped)); /* another kind */
    assert_true(loglimit_pass(&l, 1001, 0, 5100, &dropped)); /* another uid */
    assert_true(loglimit_pass(&l, 1000, 0, 6000, &dropped));
    assert_int_equal(dropped, 100);
    /* a flood of distinct keys: at most one line per slot per second */
    int passed = 0;
    for (uint32_t k = 0; k < 10000; k++)
        passed += loglimit_pass(&l, 20000 + k, 0, 7000, &dropped);
    assert_true(passed <= LOGLIMIT_SLOTS);
}

static void test_thread_counts_allowed(void **state)
{
    struct store_config cfg = {.max_threads = 4};
    assert_false(store_threads_allowed(&cfg, 0));
    assert_true(store_threads_allowed(&cfg, 1));
    assert_true(store_threads_allowed(&cfg, 4));
    assert_false(store_threads_allowed(&cfg, 5));
    cfg.threads_allowed[0] = 1;
    cfg.threads_allowed[1] = 8;
    cfg.n_threads_allowed = 2;
    assert_true(store_threads_allowed(&cfg, 8));
    assert_false(store_threads_allowed(&cfg, 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refusals_window_doubles_and_forgets),
        cmocka_unit_test(test_loglimit_one_line_per_second),
        cmocka_unit_test(test_thread_counts_allowed),
        cmocka_unit_test(test_budget_evicts_least_recently_released),
        cmocka_unit_test(test_gdsf_evicts_by_priority_where_lru_would_not),
        cmocka_unit_test(test_policy_names),
        cmocka_unit_test(test_budget_refuses_with_pinned_details),
        cmocka_unit_test(test_resident_bytes_follow_admit_and_remove),
        cmocka_unit_test(test_blob_counted_once_and_freed_with_last_part),
        cmocka_unit_test(test_names_and_hash_lookup),
        cmocka_unit_test(test_refs),
        cmocka_unit_test(test_manifest_roundtrip),
    };
    log_set_level(LOG_OFF);
    return cmocka_run_group_tests(tests, setup_refs, teardown_refs);
}
