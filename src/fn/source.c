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

enum source_kind { SOURCE_COMPILED, SOURCE_PLAN_COPY, SOURCE_STORE };

struct fn_source {
    enum source_kind kind;
    void *image;
    size_t len;
    struct fn_store_source *store;
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
static int open_store(struct fn_source *s, const struct fn_config *c, char *err, size_t errlen)
{
    char ref[4352];

    if ((size_t)snprintf(ref, sizeof(ref), "%s%s%s", c->model_ref, c->input_shape ? "?" : "",
                         c->input_shape ? c->input_shape : "") >= sizeof(ref))
        return seterr(err, errlen, -ENAMETOOLONG, "model %.80s: ref with input_shape too long",
                      c->model_ref);
    s->kind = SOURCE_STORE;
    return fn_store_source_open(c->store_path, ref, c->threads, &s->store, &s->image, &s->len, err,
                                errlen);
}

int fn_source_open(const struct fn_config *c, struct fn_source **out, char *err, size_t errlen)
{
    struct fn_source *s = calloc(1, sizeof(*s));
    if (!s)
        return seterr(err, errlen, -ENOMEM, "out of memory");
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

const void *fn_source_image(const struct fn_source *s)
{
    return s->image;
}

size_t fn_source_len(const struct fn_source *s)
{
    return s->len;
}

const char *fn_source_kind(const struct fn_source *s)
{
    return s->kind == SOURCE_STORE ? "store" : "private";
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
    }
    free(s);
}
