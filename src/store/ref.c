/* Model refs → files inside --models or hashes; everything else refused with a reason. */
#include "store/ref.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > REF_MAX_NAME || s[0] == '.' || s[0] == '-')
        return 0;
    for (const char *p = s; *p; p++) {
        char ch = *p;
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '.' || ch == '_' || ch == '-';
        if (!ok)
            return 0;
    }
    return 1;
}

/* realpath() of path, which must be a regular file strictly inside models_real. */
static int resolve_inside(const char *models_real, const char *ref, const char *path,
                          struct ref *out, char *err, size_t errlen)
{
    char real[PATH_MAX];
    if (!realpath(path, real))
        return seterr(err, errlen, -errno, "model %s: %s: %s", ref, path, strerror(errno));
    size_t n = strlen(models_real);
    int root = n == 1; /* models_real is "/" */
    if (strncmp(real, models_real, n) != 0 || (!root && real[n] != '/') || !real[n + !root])
        return seterr(err, errlen, -EPERM,
                      "model %s: resolves to %s, outside the models "
                      "directory %s",
                      ref, real, models_real);
    struct stat st;
    if (stat(real, &st) < 0 || !S_ISREG(st.st_mode))
        return seterr(err, errlen, -EINVAL, "model %s: %s is not a regular file", ref, real);
    snprintf(out->path, sizeof(out->path), "%s", real);
    const char *base = strrchr(real, '/') + 1;
    size_t blen = strlen(base);
    if (blen > 5 && strcmp(base + blen - 5, ".onnx") == 0)
        blen -= 5;
    if (blen > REF_MAX_NAME)
        blen = REF_MAX_NAME;
    memcpy(out->name, base, blen);
    out->name[blen] = '\0';
    return 0;
}

/* Cuts "?SHAPES" off ref into out->shapes; the rest goes to base (PATH_MAX bytes). */
static int split_shapes(const char *ref, char *base, struct ref *out, char *err, size_t errlen)
{
    const char *q = strchr(ref, '?');
    size_t n = q ? (size_t)(q - ref) : strlen(ref);

    if (n >= PATH_MAX)
        return seterr(err, errlen, -ENAMETOOLONG, "model ref of %zu bytes is too long", n);
    memcpy(base, ref, n);
    base[n] = '\0';
    if (!q)
        return 0;
    if (!q[1] || strlen(q + 1) > REF_MAX_SHAPES)
        return seterr(err, errlen, -EINVAL,
                      "model %.80s: the input shapes after '?' must be 1-%d bytes, e.g. "
                      "?input=1x3x224x224",
                      ref, REF_MAX_SHAPES);
    snprintf(out->shapes, sizeof(out->shapes), "%s", q + 1);
    return 0;
}

int ref_resolve(const char *models_real, const char *full_ref, struct ref *out, char *err,
                size_t errlen)
{
    char ref[PATH_MAX];

    memset(out, 0, sizeof(*out));
    int rc = full_ref ? split_shapes(full_ref, ref, out, err, errlen) : 0;
    if (rc < 0)
        return rc;
    if (!full_ref || !*ref)
        return seterr(err, errlen, -EINVAL,
                      "empty model ref: give a name, an absolute path or "
                      "sha256:<hex>");
    if (strncmp(ref, "sha256:", 7) == 0) {
        out->kind = REF_HASH;
        if (strlen(ref + 7) != 64 || sha256_parse_hex(ref + 7, out->hash) < 0)
            return seterr(err, errlen, -EINVAL, "model %.80s: sha256: needs 64 hex digits", ref);
        return 0;
    }
    out->kind = REF_PATH;
    if (ref[0] == '/')
        return resolve_inside(models_real, ref, ref, out, err, errlen);
    if (!valid_name(ref))
        return seterr(err, errlen, -EINVAL,
                      "model %.80s: a name is 1-%d characters of "
                      "[A-Za-z0-9._-], not starting with '.' or '-'",
                      ref, REF_MAX_NAME);
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof(path), "%s/%s.onnx", models_real, ref) >= sizeof(path))
        return seterr(err, errlen, -ENAMETOOLONG, "model %s: path too long", ref);
    rc = resolve_inside(models_real, ref, path, out, err, errlen);
    if (rc == 0) /* a name ref keeps the name it was asked by, even through a symlink */
        snprintf(out->name, sizeof(out->name), "%.*s", REF_MAX_NAME, ref);
    return rc;
}
