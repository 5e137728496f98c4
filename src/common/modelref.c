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

/* NAME[:TAG]; only the tag faas-cli adds by itself ("latest") means anything today. */
static int parse_named(const char *s, size_t n, const char *q, struct model_ref *out, char *err,
                       size_t errlen)
{
    const char *colon = memchr(s, ':', n);
    const char *at = memchr(s, '@', n);
    if (at)
        return seterr(err, errlen, -EINVAL,
                      "model ref \"%s\": digest refs (name@sha256:...) are not supported; use "
                      "sha256:<hex> alone",
                      q);
    if (memchr(s, '/', n))
        return seterr(err, errlen, -EINVAL,
                      "model ref \"%s\": a model name has no '/' (registry paths are not "
                      "supported); an absolute path must start with '/'",
                      q);
    size_t nlen = colon ? (size_t)(colon - s) : n;
    int rc = parse_name(s, nlen, q, out, err, errlen);
    if (rc < 0 || !colon)
        return rc;
    size_t tlen = n - nlen - 1;
    if (tlen != 6 || memcmp(colon + 1, "latest", 6) != 0)
        return seterr(err, errlen, -EINVAL,
                      "model ref \"%s\": the only tag a model name may carry is \":latest\"", q);
    memcpy(out->tag, "latest", 7);
    return 0;
}

static int parse_hash(const char *s, size_t n, const char *q, struct model_ref *out, char *err,
                      size_t errlen)
{
    char hex[SHA256_HEX_LEN];
    if (n != 7 + 64)
        return seterr(err, errlen, -EINVAL, "model ref \"%s\": sha256: needs 64 hex digits", q);
    memcpy(hex, s + 7, 64);
    hex[64] = '\0';
    if (sha256_parse_hex(hex, out->hash) < 0)
        return seterr(err, errlen, -EINVAL, "model ref \"%s\": sha256: needs 64 hex digits", q);
    return 0;
}

int model_ref_parse(const char *text, size_t len, struct model_ref *out, char *err, size_t errlen)
{
    char q[96]; /* the ref as messages quote it */

    memset(out, 0, sizeof(*out));
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
        return parse_hash(text, n, q, out, err, errlen);
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
        n = snprintf(out, len, "%s.onnx", r->name);
        break;
    case MODEL_REF_PATH:
        n = snprintf(out, len, "%s", r->path);
        break;
    default:
        return -EINVAL;
    }
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}
