/* The store manifest as JSON (jansson), written with write_file_atomic_at() and read with
 * O_NOFOLLOW, both relative to the store's checked directory fd. */
#include "store/manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MANIFEST_MAX_BYTES (16u << 20)

static json_t *model_json(const struct model *m)
{
    char src[SHA256_HEX_LEN], img[SHA256_HEX_LEN];
    sha256_hex(m->source_sha, src);
    sha256_hex(m->image_sha, img);
    json_t *j =
        json_pack("{s:s, s:s, s:s, s:s, s:i, s:I, s:I, s:I, s:f}", "identity", m->idhex, "names",
                  m->names, "source_sha256", src, "image_sha256", img, "threads", m->threads,
                  "size", (json_int_t)m->size, "last_use_ms", (json_int_t)m->last_use_ms,
                  "release_seq", (json_int_t)m->release_seq, "compile_seconds", m->compile_s);
    if (j)
        json_object_update_new(j,
                               json_pack("{s:f, s:I, s:f}", "read_seconds", m->read_s, "frequency",
                                         (json_int_t)m->freq, "priority", m->priority));
    return j;
}

int manifest_write(int dir_fd, const char *name, const struct catalog *c, const char *fingerprint,
                   char *err, size_t errlen)
{
    json_t *models = json_array();
    for (const struct model *m = c->models; m; m = m->next)
        if (m->state == MODEL_RESIDENT)
            json_array_append_new(models, model_json(m));
    json_t *root = json_pack("{s:i, s:s, s:f, s:o}", "version", 1, "fingerprint", fingerprint,
                             "clock", c->clock, "models", models);
    char *text = root ? json_dumps(root, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;
    json_decref(root);
    if (!text)
        return seterr(err, errlen, -ENOMEM, "manifest %s: out of memory", name);
    int rc = write_file_atomic_at(dir_fd, name, text, strlen(text), 0600, err, errlen);
    free(text);
    return rc;
}

static int entry_from_json(json_t *j, struct manifest_entry *e)
{
    const char *id = NULL, *names = "";
    json_int_t last = 0, seq = 0, freq = 0;
    double compile_s = 0, read_s = 0, priority = 0;
    if (json_unpack(j, "{s:s, s?s, s?I, s?I, s?F, s?F, s?I, s?F}", "identity", &id, "names", &names,
                    "last_use_ms", &last, "release_seq", &seq, "compile_seconds", &compile_s,
                    "read_seconds", &read_s, "frequency", &freq, "priority", &priority) < 0)
        return -1;
    uint8_t digest[SHA256_LEN];
    if (strlen(id) != 64 || sha256_parse_hex(id, digest) < 0 || strlen(names) >= sizeof(e->names))
        return -1;
    memset(e, 0, sizeof(*e));
    sha256_hex(digest, e->idhex);
    snprintf(e->names, sizeof(e->names), "%s", names);
    e->last_use_ms = last;
    e->release_seq = seq > 0 ? (uint64_t)seq : 0;
    e->compile_s = compile_s >= 0 && compile_s < 1e9 ? compile_s : 0;
    e->read_s = read_s >= 0 && read_s < 1e9 ? read_s : 0;
    e->freq = freq > 0 ? (uint64_t)freq : 0;
    e->priority = priority >= 0 && priority < 1e300 ? priority : 0;
    return 0;
}

/* The whole of name in dir_fd, a regular file of at most MANIFEST_MAX_BYTES; malloc'd. */
static int read_at(int dir_fd, const char *name, char **out, size_t *len, char *err, size_t errlen)
{
    int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return errno == ENOENT
                   ? -ENOENT
                   : seterr(err, errlen, -errno, "manifest %s: %s", name, strerror(errno));
    int rc = fstat(fd, &st) < 0 ? -errno : 0;
    if (rc == 0 && (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > MANIFEST_MAX_BYTES))
        rc = -EINVAL;
    char *text = rc == 0 ? malloc((size_t)st.st_size + 1) : NULL;
    size_t got = 0;
    if (rc == 0 && !text)
        rc = -ENOMEM;
    while (rc == 0 && got < (size_t)st.st_size) {
        ssize_t n = read(fd, text + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            rc = n < 0 ? -errno : -EIO;
        else
            got += (size_t)n;
    }
    close(fd);
    if (rc < 0) {
        free(text);
        return seterr(err, errlen, rc, "manifest %s: %s", name,
                      rc == -EINVAL ? "not a regular file of at most 16 MiB" : strerror(-rc));
    }
    text[got] = '\0';
    *out = text;
    *len = got;
    return 0;
}

int manifest_read(int dir_fd, const char *name, struct manifest *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    const char *path = name; /* for messages */
    char *text = NULL;
    size_t len = 0;
    int rc = read_at(dir_fd, name, &text, &len, err, errlen);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rc;
    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    free(text);
    json_t *models = root ? json_object_get(root, "models") : NULL;
    json_t *clock = root ? json_object_get(root, "clock") : NULL;
    if (json_is_number(clock) && json_number_value(clock) >= 0 && json_number_value(clock) < 1e300)
        out->clock = json_number_value(clock);
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
