/*
 * What a deployer may name: the model-ref parser (common/modelref.h), the confined-path resolver
 * (common/confine.h, both its openat2 path and its user-space walk, on the same tree) and the
 * envVars allow-list (common/fnenv.h). The resolver runs on a real temporary tree with symlinks
 * in and out, "..", a FIFO, a character device (we are root in the test setup; skipped if not) and
 * a symlink loop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/common.h"
#include "common/confine.h"
#include "common/fnenv.h"
#include "common/modelref.h"

/* ---- model refs ---- */

static int parse(const char *s, struct model_ref *r)
{
    char err[512];
    return model_ref_parse(s, strlen(s), r, err, sizeof(err));
}

static void refs_good(void **state)
{
    struct model_ref r;
    assert_int_equal(parse("resnet50", &r), 0);
    assert_int_equal(r.kind, MODEL_REF_NAME);
    assert_string_equal(r.name, "resnet50");
    assert_string_equal(r.tag, "");
    assert_int_equal(parse("resnet50.v2_x-1", &r), 0);
    assert_int_equal(parse("_x", &r), 0);
    /* faas-cli appends :latest: the same model */
    assert_int_equal(parse("resnet50:latest", &r), 0);
    assert_string_equal(r.name, "resnet50");
    assert_string_equal(r.tag, "latest");
    char file[256];
    assert_int_equal(model_ref_file(&r, file, sizeof(file)), 0);
    assert_string_equal(file, "resnet50.onnx");
    assert_int_equal(parse("resnet50?input=1x3x320x320", &r), 0);
    assert_string_equal(r.name, "resnet50");
    assert_string_equal(r.shapes, "input=1x3x320x320");
    assert_int_equal(parse("/srv/models/x.onnx", &r), 0);
    assert_int_equal(r.kind, MODEL_REF_PATH);
    assert_string_equal(r.path, "/srv/models/x.onnx");
    assert_int_equal(model_ref_file(&r, file, sizeof(file)), 0);
    assert_string_equal(file, "/srv/models/x.onnx");
    /* ".." in a path is the resolver's to judge (it may stay inside) */
    assert_int_equal(parse("/srv/models/a/../x.onnx?x=1", &r), 0);
    assert_string_equal(r.shapes, "x=1");
    char h[96] = "sha256:";
    memset(h + 7, 'a', 64);
    h[71] = '\0';
    assert_int_equal(parse(h, &r), 0);
    assert_int_equal(r.kind, MODEL_REF_HASH);
    assert_int_equal(r.hash[0], 0xaa);
    assert_int_equal(model_ref_file(&r, file, sizeof(file)), -EINVAL);
    strcat(h, "?input=1x3");
    assert_int_equal(parse(h, &r), 0);
    assert_string_equal(r.shapes, "input=1x3");
}

#define HEXAB "abababababababababababababababababababababababababababababababab"

/* The OCI image-reference forms faas-cli and users write (issue 14). */
static void refs_oci(void **state)
{
    struct model_ref r;
    char file[512], canon[MODEL_REF_CANON_MAX + 1], err[512];
    static const struct {
        const char *ref, *name, *tag, *file, *canon;
        bool pinned;
    } good[] = {
        {"squeezenet1_1", "squeezenet1_1", "", "squeezenet1_1.onnx", "squeezenet1_1", false},
        {"squeezenet1_1:latest", "squeezenet1_1", "latest", "squeezenet1_1.onnx", "squeezenet1_1",
         false},
        {"resnet18:v2", "resnet18", "v2", "resnet18/v2.onnx", "resnet18:v2", false},
        {"resnet18:V2.1_rc-3", "resnet18", "V2.1_rc-3", "resnet18/V2.1_rc-3.onnx",
         "resnet18:V2.1_rc-3", false},
        {"x:_", "x", "_", "x/_.onnx", "x:_", false},
        {"ghcr.io/team/resnet18:v2", "resnet18", "v2", "resnet18/v2.onnx", "resnet18:v2", false},
        {"localhost:5000/resnet18", "resnet18", "", "resnet18.onnx", "resnet18", false},
        {"reg/a/b/c/resnet18:latest", "resnet18", "latest", "resnet18.onnx", "resnet18", false},
        {"resnet18@sha256:abababababababababababababababababababababababababababababababab",
         "resnet18", "", "resnet18.onnx", "resnet18", true},
        {"resnet18:v2@sha256:ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB"
         "?input=1x3x8x8",
         "resnet18", "v2", "resnet18/v2.onnx", "resnet18:v2", true},
        {"r/resnet18:v2@sha256:abababababababababababababababababababababababababababababababab",
         "resnet18", "v2", "resnet18/v2.onnx", "resnet18:v2", true},
    };
    for (size_t i = 0; i < ARRAY_LEN(good); i++) {
        if (model_ref_parse(good[i].ref, strlen(good[i].ref), &r, err, sizeof(err)) != 0)
            fail_msg("ref \"%s\": %s", good[i].ref, err);
        assert_int_equal(r.kind, MODEL_REF_NAME);
        assert_string_equal(r.name, good[i].name);
        assert_string_equal(r.tag, good[i].tag);
        assert_int_equal(model_ref_file(&r, file, sizeof(file)), 0);
        assert_string_equal(file, good[i].file);
        assert_int_equal(model_ref_canonical(&r, canon, sizeof(canon)), 0);
        assert_string_equal(canon, good[i].canon);
        assert_int_equal(r.pinned, good[i].pinned);
        if (r.pinned)
            assert_int_equal(r.digest[0], 0xab);
    }
    /* how deployed images are listed: named refs by name[:tag], anything else as it is */
    assert_string_equal(model_ref_listed("ghcr.io/t/m:latest@sha256:" HEXAB, canon, sizeof(canon)),
                        "m");
    assert_string_equal(model_ref_listed("m:v2?input=1x3", canon, sizeof(canon)), "m:v2");
    assert_string_equal(model_ref_listed("/srv/m.onnx", canon, sizeof(canon)), "/srv/m.onnx");
    assert_string_equal(model_ref_listed("m:", canon, sizeof(canon)), "m:");
    /* a tag of 128 bytes is OCI's limit */
    char buf[300] = "m:";
    memset(buf + 2, 't', MODEL_REF_TAG_MAX + 1);
    assert_int_equal(model_ref_parse(buf, 2 + MODEL_REF_TAG_MAX, &r, err, sizeof(err)), 0);
    assert_int_equal(model_ref_parse(buf, 3 + MODEL_REF_TAG_MAX, &r, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "a tag is 1-128"));
    /* the digest check names the model and both hashes */
    uint8_t sha[SHA256_LEN];
    memset(sha, 0xab, sizeof(sha));
    assert_int_equal(parse(good[9].ref, &r), 0);
    assert_int_equal(model_ref_check_digest("resnet18:v2", r.digest, sha, err, sizeof(err)), 0);
    assert_int_equal(model_ref_check_digest("resnet18:v2", NULL, sha, err, sizeof(err)), 0);
    sha[31] = 0;
    assert_int_equal(model_ref_check_digest("resnet18:v2", r.digest, sha, err, sizeof(err)),
                     -EBADMSG);
    assert_non_null(strstr(err, "resnet18:v2"));
    assert_non_null(strstr(err, "pinned @sha256:abab"));
    assert_non_null(strstr(err, "is abab"));
}

/* Each malformed OCI form is refused with a message naming the rule it broke. */
static void refs_oci_malformed(void **state)
{
#define HEX64 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    static const struct {
        const char *ref, *why;
    } bad[] = {
        {"x:", "a tag is"},
        {"x:.v1", "a tag is"},
        {"x:-v1", "a tag is"},
        {"x:v/1", "registry/path"},
        {"x:v 1", "a tag is"},
        {"x:a:b", "a tag is"},
        {"x::v1", "a tag is"},
        {":latest", "a model name"},
        {"reg/:v1", "a model name"},
        {"reg//x", "registry/path"},
        {"../x:v1", "registry/path"},
        {"reg/../x", "registry/path"},
        {"reg:abc/x", "registry/path"},
        {"reg:123456/x", "registry/path"},
        {"a/reg:5000/x", "registry/path"},
        {"x@sha256:aa", "64 hex digits"},
        {"x@sha512:aa", "no other algorithm"},
        {"x@", "no other algorithm"},
        {"x@sha256:zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
         "64 hex digits"},
        {"x@sha256:" HEX64 "@sha256:" HEX64, "64 hex digits"},
        {"@sha256:" HEX64, "a model name"},
        {"x:@sha256:" HEX64, "a tag is"},
        {"x@sha256:" HEX64 ":v1", "64 hex digits"},
        {"reg/sha256:v1", "cannot carry a tag"},
    };
#undef HEX64
    struct model_ref r;
    char err[512];
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        int rc = model_ref_parse(bad[i].ref, strlen(bad[i].ref), &r, err, sizeof(err));
        if (rc != -EINVAL || !strstr(err, bad[i].why))
            fail_msg("ref \"%s\": %d \"%s\", expected -EINVAL naming \"%s\"", bad[i].ref, rc, err,
                     bad[i].why);
    }
}

static void refs_malformed(void **state)
{
    static const char *bad[] = {"",     "..",     "../secret",   "a/",      ".hidden",    "-x",
                                "a b",  "a\\b",   "a..b",        "x:v:2",   "x:",         ":latest",
                                "x:-v", "reg/x:", "x@sha256:aa", "sha256:", "sha256:xyz", "?x",
                                "a?",   "a\n",    "a\tb",        "\x7f",    "é"};
    struct model_ref r;
    char err[512];
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        int rc = model_ref_parse(bad[i], strlen(bad[i]), &r, err, sizeof(err));
        if (rc != -EINVAL)
            fail_msg("ref \"%s\": %d, expected -EINVAL", bad[i], rc);
        for (const char *p = err; *p; p++) /* messages are printable: they end up in JSON */
            assert_true(*p >= 0x20 && *p < 0x7f);
    }
    assert_non_null(strstr((model_ref_parse("x:v:2", 5, &r, err, sizeof(err)), err), "a tag is"));
    /* a NUL inside the length is a control byte, not the end */
    assert_int_equal(model_ref_parse("fr\0xyz", 6, &r, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "control byte"));
    /* the parser reads len bytes, not up to a NUL */
    assert_int_equal(model_ref_parse("abcdef", 3, &r, err, sizeof(err)), 0);
    assert_string_equal(r.name, "abc");
}

static void refs_limits(void **state)
{
    char buf[MODEL_REF_MAX + 2];
    struct model_ref r;
    char err[512];
    memset(buf, 'a', sizeof(buf));
    assert_int_equal(model_ref_parse(buf, MODEL_REF_NAME_MAX, &r, err, sizeof(err)), 0);
    assert_int_equal(strlen(r.name), MODEL_REF_NAME_MAX);
    assert_int_equal(model_ref_parse(buf, MODEL_REF_NAME_MAX + 1, &r, err, sizeof(err)), -EINVAL);
    buf[0] = '/';
    assert_int_equal(model_ref_parse(buf, MODEL_REF_MAX, &r, err, sizeof(err)), 0);
    assert_int_equal(strlen(r.path), MODEL_REF_MAX);
    assert_int_equal(model_ref_parse(buf, MODEL_REF_MAX + 1, &r, err, sizeof(err)), -ENAMETOOLONG);
    /* shapes: 1..255 bytes */
    memcpy(buf, "m?", 2);
    memset(buf + 2, 'x', MODEL_REF_SHAPES_MAX + 1);
    assert_int_equal(model_ref_parse(buf, 2 + MODEL_REF_SHAPES_MAX, &r, err, sizeof(err)), 0);
    assert_int_equal(strlen(r.shapes), MODEL_REF_SHAPES_MAX);
    assert_int_equal(model_ref_parse(buf, 3 + MODEL_REF_SHAPES_MAX, &r, err, sizeof(err)), -EINVAL);
}

/* ---- the confined resolver ---- */

static char root[64], models[128], models_real[200];
static int have_dev;

static void put(const char *rel, const char *text)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", root, rel);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void link_at(const char *target, const char *rel)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", root, rel);
    assert_int_equal(symlink(target, p), 0);
}

static int setup_tree(void **state)
{
    char p[256], q[512];
    strcpy(root, "/tmp/shmfaas-confine-XXXXXX");
    assert_non_null(mkdtemp(root));
    snprintf(models, sizeof(models), "%s/models", root);
    mkdir(models, 0755);
    snprintf(p, sizeof(p), "%s/models/sub", root);
    mkdir(p, 0755);
    assert_non_null(realpath(models, models_real));
    put("models/a.onnx", "A");
    put("models/sub/b.onnx", "B");
    put("secret", "S");
    link_at("a.onnx", "models/rel");            /* relative, stays inside: followed */
    link_at("sub/../a.onnx", "models/reldots"); /* .. inside the tree: fine */
    snprintf(q, sizeof(q), "%s/a.onnx", models_real);
    link_at(q, "models/absin"); /* absolute, back inside: followed (by the walk) */
    link_at("../secret", "models/out");
    snprintf(q, sizeof(q), "%s/secret", root);
    link_at(q, "models/absout");
    link_at("sub", "models/dirlink");
    link_at("..", "models/dirout");
    link_at("../../secret", "models/sub/up2");
    link_at("/proc/self/root/etc/passwd", "models/magic");
    link_at("loop", "models/loop");
    snprintf(p, sizeof(p), "%s/models/fifo", root);
    assert_int_equal(mkfifo(p, 0644), 0);
    snprintf(p, sizeof(p), "%s/models/null", root);
    have_dev = mknod(p, S_IFCHR | 0666, makedev(1, 3)) == 0;
    return 0;
}

static int teardown_tree(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
    return system(cmd);
}

typedef int (*open_fn)(const char *, const char *, const char *, int, char *, size_t, char *,
                       size_t);

static void expect_ok(open_fn f, const char *path, const char *real_rel, const char *content)
{
    char real[PATH_MAX], want[PATH_MAX], err[512], c[8] = "";
    int fd = f(models, "models", path, O_RDONLY, real, sizeof(real), err, sizeof(err));
    if (fd < 0)
        fail_msg("%s: %d %s", path, fd, err);
    assert_int_equal(read(fd, c, sizeof(c) - 1), 1);
    assert_string_equal(c, content);
    assert_true((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
    assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
    close(fd);
    snprintf(want, sizeof(want), "%s/%s", models_real, real_rel);
    assert_string_equal(real, want);
}

static void expect_refused(open_fn f, const char *path, int code, const char *needle)
{
    char err[512] = "";
    int fd = f(models, "models", path, O_RDONLY, NULL, 0, err, sizeof(err));
    if (fd >= 0)
        close(fd);
    if (fd != code)
        fail_msg("%s: %d (%s), expected %d", path, fd, err, code);
    if (needle && !strstr(err, needle))
        fail_msg("%s: \"%s\" does not say \"%s\"", path, err, needle);
}

static void confine_rules(open_fn f)
{
    char p[PATH_MAX];
    expect_ok(f, "a.onnx", "a.onnx", "A");
    expect_ok(f, "sub/b.onnx", "sub/b.onnx", "B");
    expect_ok(f, "sub/../a.onnx", "a.onnx", "A");
    expect_ok(f, "./sub//b.onnx", "sub/b.onnx", "B");
    expect_ok(f, "rel", "a.onnx", "A");
    expect_ok(f, "reldots", "a.onnx", "A");
    expect_ok(f, "absin", "a.onnx", "A");
    expect_ok(f, "dirlink/b.onnx", "sub/b.onnx", "B");
    snprintf(p, sizeof(p), "%s/sub/b.onnx", models_real);
    expect_ok(f, p, "sub/b.onnx", "B");
    snprintf(p, sizeof(p), "%s/a.onnx", models); /* as configured, not only its realpath */
    expect_ok(f, p, "a.onnx", "A");
    /* out of the directory, every way: -EPERM saying so */
    expect_refused(f, "out", -EPERM, "outside the models directory");
    expect_refused(f, "absout", -EPERM, "outside the models directory");
    expect_refused(f, "../secret", -EPERM, "outside the models directory");
    expect_refused(f, "sub/../../secret", -EPERM, "outside");
    expect_refused(f, "dirout/secret", -EPERM, "outside");
    expect_refused(f, "sub/up2", -EPERM, "outside");
    expect_refused(f, "magic", -EPERM, "outside");
    expect_refused(f, "/etc/passwd", -EPERM, "outside the models directory");
    snprintf(p, sizeof(p), "%s/secret", root);
    expect_refused(f, p, -EPERM, "outside");
    snprintf(p, sizeof(p), "%s/../secret", models_real);
    expect_refused(f, p, -EPERM, "outside");
    snprintf(p, sizeof(p), "%sx/a.onnx", models_real); /* a sibling sharing the prefix */
    expect_refused(f, p, -EPERM, "outside");
    expect_refused(f, models_real, -EPERM, "directory itself");
    /* not regular files, missing, loops */
    expect_refused(f, "sub", -EINVAL, "directory");
    expect_refused(f, "dirlink", -EINVAL, "directory");
    expect_refused(f, "fifo", -EINVAL, "FIFO"); /* and it did not block */
    if (have_dev)
        expect_refused(f, "null", -EINVAL, "character device");
    expect_refused(f, "missing", -ENOENT, NULL);
    expect_refused(f, "a.onnx/x", -ENOENT, NULL);
    expect_refused(f, "a.onnx/", -ENOENT, NULL); /* a trailing '/' asks for a directory */
    expect_refused(f, "rel/", -ENOENT, NULL);
    expect_refused(f, "sub/", -EINVAL, "directory");
    expect_refused(f, "loop", -ELOOP, NULL);
    expect_refused(f, "", -EINVAL, NULL);
}

static void confine_openat2(void **state)
{
    confine_rules(confine_open);
}

static void confine_walk(void **state)
{
    confine_rules(confine_walk_open);
}

static void confine_misc(void **state)
{
    char err[512];
    uint8_t *buf;
    size_t len;
    assert_int_equal(
        confine_read_file(models, "models", "sub/b.onnx", 16, &buf, &len, err, sizeof(err)), 0);
    assert_int_equal(len, 1);
    assert_string_equal((char *)buf, "B");
    free(buf);
    assert_int_equal(confine_read_file(models, "labels", "out", 16, &buf, &len, err, sizeof(err)),
                     -EPERM);
    assert_non_null(strstr(err, "outside the labels directory"));
    assert_int_equal(
        confine_open(models, "models", "a.onnx", O_RDWR | O_CREAT, NULL, 0, err, sizeof(err)),
        -EINVAL);
    assert_true(
        confine_open("/nonexistent-dir", "models", "a", O_RDONLY, NULL, 0, err, sizeof(err)) < 0);
    /* untrusted bytes come back printable */
    assert_int_equal(
        confine_open(models, "models", "\x01\xff", O_RDONLY, NULL, 0, err, sizeof(err)), -ENOENT);
    for (const char *p = err; *p; p++)
        assert_true(*p >= 0x20 && *p < 0x7f);
}

/* ---- envVars ---- */

static void env_allow_list(void **state)
{
    static const char *ok[] = {"input",     "output",       "topk",         "labels",
                               "threads",   "max_inflight", "exec_timeout", "input_shape",
                               "log_level", "max_body"};
    static const char *no[] = {"LD_PRELOAD",
                               "LD_LIBRARY_PATH",
                               "LD_AUDIT",
                               "PATH",
                               "GCONV_PATH",
                               "MALLOC_ARENA_MAX",
                               "OMP_NUM_THREADS",
                               "DNNL_VERBOSE",
                               "HOME",
                               "model",
                               "store_socket",
                               "PORT",
                               "",
                               "input=",
                               "Input"};
    for (size_t i = 0; i < ARRAY_LEN(ok); i++)
        assert_true(fn_env_key_allowed(ok[i]));
    for (size_t i = 0; i < ARRAY_LEN(no); i++)
        if (fn_env_key_allowed(no[i]))
            fail_msg("%s allowed", no[i]);
    assert_true(fn_env_key_known("model") && fn_env_key_known("PORT"));
    assert_false(fn_env_key_known("LD_PRELOAD"));
    char list[512];
    fn_env_keys_list(list, sizeof(list));
    assert_non_null(strstr(list, "input, output"));
    assert_null(strstr(list, "store_socket"));
    fn_env_keys_list(list, 12); /* cut at a whole key */
    assert_string_equal(list, "input");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(refs_good),
        cmocka_unit_test(refs_malformed),
        cmocka_unit_test(refs_oci),
        cmocka_unit_test(refs_oci_malformed),
        cmocka_unit_test(refs_limits),
        cmocka_unit_test_setup_teardown(confine_openat2, setup_tree, teardown_tree),
        cmocka_unit_test_setup_teardown(confine_walk, setup_tree, teardown_tree),
        cmocka_unit_test_setup_teardown(confine_misc, setup_tree, teardown_tree),
        cmocka_unit_test(env_allow_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
