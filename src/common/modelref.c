/* Model refs: text → struct model_ref, every rule in one place (see modelref.h). */
#include "common/modelref.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int is_name_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '_' || ch == '-';
}

/* [A-Za-z0-9_][A-Za-z0-9._-]* without "..", 1..MODEL_REF_NAME_MAX bytes. */
static int parse_name(const char *s, size_t n, const char *q, struct model_ref *out, char *err,
                      size_t errlen)
{
    if (n == 0 || n > MODEL_REF_NAME_MAX || s[0] == '.' || s[0] == '-')
        goto bad;
    for (size_t i = 0; i < n; i++)
        if (!is_name_char(s[i]) || (s[i] == '.' && i + 1 < n && s[i + 1] == '.'))
            goto bad;
    memcpy(out->name, s, n);
    out->name[n] = '\0';
    return 0;
bad:
    return seterr(err, errlen, -EINVAL,
                  "model ref \"%s\": a model name is 1-%d characters of [A-Za-z0-9._-], not "
                  "starting with '.' or '-' and without \"..\" (or give sha256:<hex> or an "
                  "absolute path inside the models directory)",
                  q, MODEL_REF_NAME_MAX);
}

/* [A-Za-z0-9_][A-Za-z0-9._-]{0,127}: OCI's tag grammar. */
static int parse_tag(const char *s, size_t n, const char *q, struct model_ref *out, char *err,
                     size_t errlen)
{
    if (n == 0 || n > MODEL_REF_TAG_MAX || s[0] == '.' || s[0] == '-')
        goto bad;
    for (size_t i = 0; i < n; i++)
        if (!is_name_char(s[i]))
            goto bad;
    memcpy(out->tag, s, n);
    out->tag[n] = '\0';
    return 0;
bad:
    return seterr(err, errlen, -EINVAL,
                  "model ref \"%s\": a tag is 1-%d characters of [A-Za-z0-9._-], not starting "
                  "with '.' or '-'",
                  q, MODEL_REF_TAG_MAX);
}

/* "sha256:<64 hex>" into hash; what both the hash-only form and a digest after '@' spell. */
static int parse_sha256(const char *s, size_t n, const char *q, const char *what,
                        uint8_t hash[SHA256_LEN], char *err, size_t errlen)
{
    char hex[SHA256_HEX_LEN];
    if (n < 7 || memcmp(s, "sha256:", 7) != 0)
        return seterr(err, errlen, -EINVAL,
                      "model ref \"%s\": %s must be sha256:<64 hex digits> (no other algorithm)", q,
                      what);
    if (n != 7 + 64)
        goto bad;
    memcpy(hex, s + 7, 64);
    hex[64] = '\0';
    if (sha256_parse_hex(hex, hash) == 0)
        return 0;
bad:
    return seterr(err, errlen, -EINVAL, "model ref \"%s\": %s needs 64 hex digits after sha256:", q,
                  what);
}

/* The registry/path part before the name, accepted and ignored: components of the name rule, the
 * first of which may carry a ":PORT" (a registry host). */
static int check_prefix(const char *s, size_t n, const char *q, char *err, size_t errlen)
{
    struct model_ref scratch;
    for (size_t i = 0, c = 0; i <= n; i++) {
        if (i < n && s[i] != '/')
            continue;
        size_t k = i - c;
        const char *colon = c == 0 ? memchr(s, ':', k) : NULL;
        size_t port = colon ? k - (size_t)(colon - s) - 1 : 0;
        if (colon) {
            k = (size_t)(colon - s);
            for (size_t j = 0; j < port; j++)
                if (colon[1 + j] < '0' || colon[1 + j] > '9')
                    port = 0;
        }
        if ((colon && (port == 0 || port > 5)) ||
            parse_name(s + c, k, q, &scratch, err, errlen) < 0)
            return seterr(err, errlen, -EINVAL,
                          "model ref \"%s\": the registry/path before the model name must be "
                          "'/'-separated names (a registry host may add :PORT)",
                          q);
        c = i + 1;
    }
    return 0;
}

/* [REGISTRY/PATH/]NAME[:TAG][@sha256:<hex>] */
static int parse_named(const char *s, size_t n, const char *q, struct model_ref *out, char *err,
                       size_t errlen)
{
    const char *at = memchr(s, '@', n);
    if (at) {
        size_t dlen = n - (size_t)(at - s) - 1;
        int rc = parse_sha256(at + 1, dlen, q, "a digest after '@'", out->digest, err, errlen);
        if (rc < 0)
            return rc;
        out->pinned = true;
        n = (size_t)(at - s);
    }
    const char *slash = memrchr(s, '/', n);
    if (slash) {
        int rc = check_prefix(s, (size_t)(slash - s), q, err, errlen);
        if (rc < 0)
            return rc;
        n -= (size_t)(slash - s) + 1;
        s = slash + 1;
    }
    const char *colon = memchr(s, ':', n);
    size_t nlen = colon ? (size_t)(colon - s) : n;
    int rc = parse_name(s, nlen, q, out, err, errlen);
    if (rc < 0 || !colon)
        return rc;
    if (strcmp(out->name, "sha256") == 0) /* "sha256:..." is the hash form, whatever precedes it */
        return seterr(err, errlen, -EINVAL,
                      "model ref \"%s\": a model named sha256 cannot carry a tag (sha256:<hex> "
                      "is a hash)",
                      q);
    return parse_tag(colon + 1, n - nlen - 1, q, out, err, errlen);
}

int model_ref_parse(const char *text, size_t len, struct model_ref *out, char *err, size_t errlen)
{
    char q[96]; /* the ref as messages quote it */

    memset(out, 0, sizeof(*out));
    if (errlen)
        err[0] = '\0';
    str_printable(text, len, q, sizeof(q));
    if (len == 0)
        return seterr(err, errlen, -EINVAL,
                      "empty model ref: give a model name, sha256:<hex> or an absolute path");
    if (len > MODEL_REF_MAX)
        return seterr(err, errlen, -ENAMETOOLONG, "model ref of %zu bytes is longer than %d", len,
                      MODEL_REF_MAX);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f)
            return seterr(err, errlen, -EINVAL,
                          "model ref \"%s\": control byte 0x%02x at offset %zu", q,
                          (unsigned char)text[i], i);
    const char *qm = memchr(text, '?', len);
    size_t n = qm ? (size_t)(qm - text) : len;
    if (qm) {
        size_t slen = len - n - 1;
        if (slen == 0 || slen > MODEL_REF_SHAPES_MAX)
            return seterr(err, errlen, -EINVAL,
                          "model ref \"%s\": the input shapes after '?' must be 1-%d bytes, e.g. "
                          "?input=1x3x224x224",
                          q, MODEL_REF_SHAPES_MAX);
        memcpy(out->shapes, qm + 1, slen);
        out->shapes[slen] = '\0';
    }
    if (n == 0)
        return seterr(err, errlen, -EINVAL, "model ref \"%s\": nothing before '?'", q);
    if (n >= 7 && memcmp(text, "sha256:", 7) == 0) {
        out->kind = MODEL_REF_HASH;
        return parse_sha256(text, n, q, "sha256:", out->hash, err, errlen);
    }
    if (text[0] == '/') { /* where it leads is confine_open's to judge, ".." included */
        out->kind = MODEL_REF_PATH;
        memcpy(out->path, text, n);
        out->path[n] = '\0';
        return 0;
    }
    out->kind = MODEL_REF_NAME;
    return parse_named(text, n, q, out, err, errlen);
}

int model_ref_file(const struct model_ref *r, char *out, size_t len)
{
    int n;
    switch (r->kind) {
    case MODEL_REF_NAME:
        if (model_ref_is_latest(r))
            n = snprintf(out, len, "%s.onnx", r->name);
        else
            n = snprintf(out, len, "%s/%s.onnx", r->name, r->tag);
        break;
    case MODEL_REF_PATH:
        n = snprintf(out, len, "%s", r->path);
        break;
    default:
        return -EINVAL;
    }
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

bool model_ref_is_latest(const struct model_ref *r)
{
    return r->tag[0] == '\0' || strcmp(r->tag, "latest") == 0;
}

int model_ref_canonical(const struct model_ref *r, char *out, size_t len)
{
    int n;
    if (r->kind != MODEL_REF_NAME)
        return -EINVAL;
    if (model_ref_is_latest(r))
        n = snprintf(out, len, "%s", r->name);
    else
        n = snprintf(out, len, "%s:%s", r->name, r->tag);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

const char *model_ref_listed(const char *image, char *buf, size_t len)
{
    struct model_ref r;
    char err[8];
    if (model_ref_parse(image, strlen(image), &r, err, sizeof(err)) == 0 &&
        model_ref_canonical(&r, buf, len) == 0)
        return buf;
    return image;
}

int model_ref_check_digest(const char *name, const uint8_t *pin, const uint8_t sha[SHA256_LEN],
                           char *err, size_t errlen)
{
    char want[SHA256_HEX_LEN], got[SHA256_HEX_LEN];
    if (!pin || memcmp(pin, sha, SHA256_LEN) == 0)
        return 0;
    sha256_hex(pin, want);
    sha256_hex(sha, got);
    return seterr(err, errlen, -EBADMSG,
                  "model %s: the file's sha256 is %s, not the pinned @sha256:%s (push the pinned "
                  "bytes, or deploy with the file's digest)",
                  name, got, want);
}
