/* The store manifest as JSON (jansson), written with write_file_atomic(). */
#include "store/manifest.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MANIFEST_MAX_BYTES (16u << 20)

static json_t *model_json(const struct model *m)
{
    char src[SHA256_HEX_LEN], img[SHA256_HEX_LEN];
    sha256_hex(m->source_sha, src);
    sha256_hex(m->image_sha, img);
    return json_pack("{s:s, s:s, s:s, s:s, s:i, s:I, s:I, s:I, s:f}", "identity", m->idhex, "names",
                     m->names, "source_sha256", src, "image_sha256", img, "threads", m->threads,
                     "size", (json_int_t)m->size, "last_use_ms", (json_int_t)m->last_use_ms,
                     "release_seq", (json_int_t)m->release_seq, "compile_seconds", m->compile_s);
}

int manifest_write(const char *path, const struct catalog *c, const char *fingerprint, char *err,
                   size_t errlen)
{
    json_t *models = json_array();
    for (const struct model *m = c->models; m; m = m->next)
        if (m->state == MODEL_RESIDENT)
            json_array_append_new(models, model_json(m));
    json_t *root =
        json_pack("{s:i, s:s, s:o}", "version", 1, "fingerprint", fingerprint, "models", models);
    char *text = root ? json_dumps(root, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;
    json_decref(root);
    if (!text)
        return seterr(err, errlen, -ENOMEM, "manifest %s: out of memory", path);
    int rc = write_file_atomic(path, text, strlen(text), 0600, err, errlen);
    free(text);
    return rc;
}

static int entry_from_json(json_t *j, struct manifest_entry *e)
{
    const char *id = NULL, *names = "";
    json_int_t last = 0, seq = 0;
    double compile_s = 0;
    if (json_unpack(j, "{s:s, s?s, s?I, s?I, s?F}", "identity", &id, "names", &names, "last_use_ms",
                    &last, "release_seq", &seq, "compile_seconds", &compile_s) < 0)
        return -1;
    uint8_t digest[SHA256_LEN];
    if (strlen(id) != 64 || sha256_parse_hex(id, digest) < 0 || strlen(names) >= sizeof(e->names))
        return -1;
    memset(e, 0, sizeof(*e));
    sha256_hex(digest, e->idhex);
    snprintf(e->names, sizeof(e->names), "%s", names);
    e->last_use_ms = last;
    e->release_seq = seq > 0 ? (uint64_t)seq : 0;
    e->compile_s = compile_s;
    return 0;
}

int manifest_read(const char *path, struct manifest *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    uint8_t *text;
    size_t len;
    int rc = read_file(path, MANIFEST_MAX_BYTES, &text, &len, err, errlen);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rc;
    json_error_t jerr;
    json_t *root = json_loadb((const char *)text, len, 0, &jerr);
    free(text);
    json_t *models = root ? json_object_get(root, "models") : NULL;
    if (!json_is_array(models)) {
        json_decref(root);
        return seterr(err, errlen, -EINVAL, "manifest %s: not a store manifest (%s)", path,
                      root ? "no models array" : jerr.text);
    }
    out->e = calloc(json_array_size(models) + 1, sizeof(*out->e));
    if (!out->e) {
        json_decref(root);
        return seterr(err, errlen, -ENOMEM, "manifest %s: out of memory", path);
    }
    size_t i;
    json_t *j;
    json_array_foreach(models, i, j)
    {
        if (entry_from_json(j, &out->e[out->n]) == 0)
            out->n++;
        else
            log_warn("manifest %s: entry %zu is malformed; skipped", path, i);
    }
    json_decref(root);
    return 0;
}

const struct manifest_entry *manifest_find(const struct manifest *m, const char *idhex)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->e[i].idhex, idhex) == 0)
            return &m->e[i];
    return NULL;
}

void manifest_free(struct manifest *m)
{
    free(m->e);
    m->e = NULL;
    m->n = 0;
}
