/*
 * The plan image of an instance. --private FILE is the baseline every memory benchmark compares
 * against, so its image lives in anonymous memory of this process only (never a file mapping,
 * whose clean pages the kernel would share between instances).
 */
#include "fn/source.h"
#include "fn/store_source.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

enum source_kind { SOURCE_COMPILED, SOURCE_PLAN_COPY, SOURCE_STORE, SOURCE_TEMPLATE };

struct fn_source {
    enum source_kind kind;
    void *image;
    size_t len;
    const void *weights; /* a plan part's weights blob (store, template), or NULL */
    size_t weights_len;
    struct fn_store_source *store;
    /* SOURCE_TEMPLATE: our own mapping of the image, its fd (-1 once closed) and identity; the
     * lease (store) is taken only in a forked instance */
    int fd;
    struct fn_image_id id;
};

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* A .plan file read into anonymous, page-aligned private memory. */
static int read_plan(struct fn_source *s, const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return seterr(err, errlen, -e, "--private %s: %s", path, strerror(e));
    }
    s->len = (size_t)st.st_size;
    s->image =
        mmap(NULL, s->len ? s->len : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (s->image == MAP_FAILED) {
        close(fd);
        s->image = NULL;
        return seterr(err, errlen, -ENOMEM, "--private %s: cannot allocate %zu bytes", path,
                      s->len);
    }
    size_t got = 0;
    while (got < s->len) {
        ssize_t n = read(fd, (uint8_t *)s->image + got, s->len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            close(fd);
            return seterr(err, errlen, -EIO, "--private %s: short read", path);
        }
        got += (size_t)n;
    }
    close(fd);
    s->kind = SOURCE_PLAN_COPY;
    return 0;
}

static int compile_onnx(struct fn_source *s, const struct fn_config *c, char *err, size_t errlen)
{
    uint8_t *onnx = NULL;
    size_t len = 0;
    int rc = read_file(c->private_path, SIZE_MAX / 2, &onnx, &len, err, errlen);
    if (rc < 0)
        return rc;
    char *dir_copy = strdup(c->private_path);
    if (!dir_copy) {
        free(onnx);
        return seterr(err, errlen, -ENOMEM, "--private: out of memory");
    }
    struct engine_compile_opts opts = {.threads = c->threads,
                                       .base_dir = dirname(dir_copy),
                                       .model_name = c->private_path,
                                       .shapes = c->shapes,
                                       .n_shapes = c->n_shapes};
    rc = engine_compile(onnx, len, &opts, &s->image, &s->len, err, errlen);
    free(onnx);
    free(dir_copy);
    s->kind = SOURCE_COMPILED;
    return rc;
}

/* The store compiles a symbolic-dim model for the shapes after '?' in its ref. */
static int store_ref(const struct fn_config *c, char *ref, size_t len, char *err, size_t errlen)
{
    if ((size_t)snprintf(ref, len, "%s%s%s", c->model_ref, c->input_shape ? "?" : "",
                         c->input_shape ? c->input_shape : "") >= len)
        return seterr(err, errlen, -ENAMETOOLONG, "model %.80s: ref with input_shape too long",
                      c->model_ref);
    return 0;
}

#define REF_MAX 4352

static int open_store(struct fn_source *s, const struct fn_config *c, char *err, size_t errlen)
{
    char ref[REF_MAX];
    int rc = store_ref(c, ref, sizeof ref, err, errlen);
    s->kind = SOURCE_STORE;
    return rc < 0 ? rc
                  : fn_store_source_open(c->store_path, ref, c->threads, &s->store, &s->image,
                                         &s->len, &s->weights, &s->weights_len, err, errlen);
}

int fn_source_open(const struct fn_config *c, struct fn_source **out, char *err, size_t errlen)
{
    struct fn_source *s = calloc(1, sizeof(*s));
    if (!s)
        return seterr(err, errlen, -ENOMEM, "out of memory");
    s->fd = -1;
    int rc;
    if (c->private_path && has_suffix(c->private_path, ".plan"))
        rc = read_plan(s, c->private_path, err, errlen);
    else if (c->private_path)
        rc = compile_onnx(s, c, err, errlen);
    else
        rc = open_store(s, c, err, errlen);
    if (rc < 0) {
        fn_source_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

int fn_source_open_template(const struct fn_config *c, struct fn_source **out, char *err,
                            size_t errlen)
{
    char ref[REF_MAX];
    if (c->private_path)
        return seterr(err, errlen, -EINVAL, "--template: a --private model has no template");
    struct fn_source *s = calloc(1, sizeof(*s));
    if (!s)
        return seterr(err, errlen, -ENOMEM, "out of memory");
    s->kind = SOURCE_TEMPLATE;
    s->fd = -1;
    int rc = store_ref(c, ref, sizeof ref, err, errlen);
    void *weights = NULL;
    if (rc == 0)
        rc = fn_store_map_unleased(c->store_path, ref, c->threads, &s->image, &s->len, &weights,
                                   &s->weights_len, &s->fd, &s->id, err, errlen);
    s->weights = weights;
    if (rc < 0) {
        fn_source_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

int fn_source_fd(const struct fn_source *s)
{
    return s->fd;
}

int fn_source_take_lease(struct fn_source *s, const struct fn_config *c, char *err, size_t errlen)
{
    char ref[REF_MAX];
    void *image;
    size_t len, wlen;
    const void *weights;
    struct fn_image_id id;
    if (s->kind != SOURCE_TEMPLATE || s->store)
        return seterr(err, errlen, -EINVAL, "not a template's image");
    s->fd = -1; /* the forked instance closed it before taking its fds (source.h) */
    int rc = store_ref(c, ref, sizeof ref, err, errlen);
    if (rc == 0)
        rc = fn_store_source_open(c->store_path, ref, c->threads, &s->store, &image, &len,
                                  &weights, &wlen, err, errlen);
    if (rc == 0 && (rc = fn_store_source_id(s->store, &id)) < 0)
        seterr(err, errlen, rc, "image of %s: fstat: %s", ref, strerror(-rc));
    if (rc == 0 && (id.dev != s->id.dev || id.ino != s->id.ino || id.size != s->id.size ||
                    memcmp(id.sha256, s->id.sha256, sizeof id.sha256) != 0))
        rc = seterr(err, errlen, -ESTALE,
                    "the store now hands another image of %s than the template mapped (evicted "
                    "and made again since)",
                    ref);
    /* The session keeps using the template's mapping (same file): the lease's own mapping is
     * never touched, so it costs a VMA and no page. (fork() copied no page table of that shared
     * mapping: the first request faults them in, one fault-around block at a time; filling them
     * here with MADV_POPULATE_READ only moved that time in front of readiness.) */
    return rc;
}

const void *fn_source_image(const struct fn_source *s)
{
    return s->image;
}

size_t fn_source_len(const struct fn_source *s)
{
    return s->len;
}

const void *fn_source_weights(const struct fn_source *s, size_t *len)
{
    *len = s->weights_len;
    return s->weights;
}

const char *fn_source_kind(const struct fn_source *s)
{
    return s->kind == SOURCE_STORE ? "store" : s->kind == SOURCE_TEMPLATE ? "template" : "private";
}

void fn_source_close(struct fn_source *s)
{
    if (!s)
        return;
    switch (s->kind) {
    case SOURCE_COMPILED:
        engine_image_free(s->image);
        break;
    case SOURCE_PLAN_COPY:
        if (s->image)
            munmap(s->image, s->len ? s->len : 1);
        break;
    case SOURCE_STORE:
        fn_store_source_close(s->store);
        break;
    case SOURCE_TEMPLATE:
        if (s->image)
            munmap(s->image, s->len);
        if (s->weights)
            munmap((void *)s->weights, s->weights_len);
        if (s->fd >= 0)
            close(s->fd);
        fn_store_source_close(s->store);
        break;
    }
    free(s);
}
