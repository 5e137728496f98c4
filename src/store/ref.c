/* Model refs → files inside --models or hashes (ref.h): model_ref_parse, then confine_open. */
#include "store/ref.h"

#include "common/confine.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The file's name without ".onnx": what a path ref is listed by. */
static void name_of_path(const char *real, char *name, size_t len)
{
    const char *base = strrchr(real, '/');
    base = base ? base + 1 : real;
    size_t n = strlen(base);
    if (n > 5 && strcmp(base + n - 5, ".onnx") == 0)
        n -= 5;
    if (n >= len)
        n = len - 1;
    memcpy(name, base, n);
    name[n] = '\0';
}

int ref_resolve(const char *models_real, const char *text, struct ref *out, char *err,
                size_t errlen)
{
    struct model_ref r;
    char file[MODEL_REF_MAX + 8], why[512], q[96];

    memset(out, 0, sizeof(*out));
    int rc = model_ref_parse(text ? text : "", text ? strlen(text) : 0, &r, err, errlen);
    if (rc < 0)
        return rc;
    memcpy(out->shapes, r.shapes, sizeof(out->shapes));
    if (r.kind == MODEL_REF_HASH) {
        out->kind = REF_HASH;
        memcpy(out->hash, r.hash, SHA256_LEN);
        return 0;
    }
    out->kind = REF_PATH;
    if ((rc = model_ref_file(&r, file, sizeof(file))) < 0)
        return seterr(err, errlen, rc, "model ref too long");
    int fd = confine_open(models_real, "models", file, O_RDONLY, out->path, sizeof(out->path), why,
                          sizeof(why));
    if (fd < 0)
        return seterr(err, errlen, fd, "model %s: %s", str_printable(text, strlen(text), q, 96),
                      why);
    close(fd);
    if (r.kind == MODEL_REF_NAME) { /* a name keeps the name it was asked by, even via a link */
        char canon[MODEL_REF_CANON_MAX + 1];
        model_ref_canonical(&r, canon, sizeof(canon));
        size_t n = strnlen(canon, REF_MAX_NAME);
        memcpy(out->name, canon, n);
        out->name[n] = '\0';
        out->pinned = r.pinned;
        memcpy(out->pin, r.digest, SHA256_LEN);
    } else
        name_of_path(out->path, out->name, sizeof(out->name));
    return 0;
}
