/*
 * Image files in the store's tmpfs directory: written once (temp file, fsync-free rename — tmpfs
 * has nothing to sync), mode 0600, never modified; re-adopted after a restart only when the
 * engine verifies them and their content matches the identity in their name.
 */
#include "store/store.h"

#include "engine/engine.h"
#include "store/manifest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

void model_identity(const uint8_t source_sha[SHA256_LEN], const char *fingerprint, int threads,
                    const char *shapes, uint8_t out[SHA256_LEN])
{
    size_t flen = strlen(fingerprint), slen = shapes ? strlen(shapes) : 0;
    uint8_t buf[SHA256_LEN + 512 + 4 + 1 + REF_MAX_SHAPES];
    if (flen > 512)
        flen = 512;
    if (slen > REF_MAX_SHAPES)
        slen = REF_MAX_SHAPES;
    memcpy(buf, source_sha, SHA256_LEN);
    memcpy(buf + SHA256_LEN, fingerprint, flen);
    size_t n = SHA256_LEN + flen;
    for (int i = 0; i < 4; i++)
        buf[n++] = (uint8_t)((uint32_t)threads >> (8 * i));
    if (slen) {
        buf[n++] = '?';
        memcpy(buf + n, shapes, slen);
        n += slen;
    }
    sha256(buf, n, out);
}

/* The shapes text an image compiled for input shapes was asked with: all its inputs, named, in
 * order ("" when it does not fit); unnamed: a one-input image's shape without the name. */
static void image_shapes(const struct engine_model *em, char *out, size_t len, char *unnamed,
                         size_t unnamed_len)
{
    struct engine_input_shape s[16];
    struct engine_tensor_info info;
    int n = engine_model_n_inputs(em);

    out[0] = unnamed[0] = '\0';
    if (n < 1 || n > (int)ARRAY_LEN(s))
        return;
    for (int i = 0; i < n; i++) {
        if (engine_model_input(em, i, &info) < 0)
            return;
        s[i] = (struct engine_input_shape){info.name, info.shape};
    }
    if (engine_shapes_format(s, n, out, len) < 0)
        out[0] = '\0';
    s[0].name = NULL;
    if (n != 1 || engine_shapes_format(s, 1, unnamed, unnamed_len) < 0)
        unnamed[0] = '\0';
}

/* Whether identity is that of the image compiled without shapes or for one of its spellings. */
static int identity_matches(const struct model *tmpl, const char *const shapes[3],
                            const uint8_t identity[SHA256_LEN])
{
    uint8_t want[SHA256_LEN];

    for (int i = 0; i < 3; i++) {
        if (i > 0 && !shapes[i][0])
            continue;
        model_identity(tmpl->source_sha, engine_fingerprint(), tmpl->threads, shapes[i], want);
        if (memcmp(want, identity, SHA256_LEN) == 0)
            return 1;
    }
    return 0;
}

int image_path(const char *dir, const char *idhex, char *out, size_t len)
{
    if ((size_t)snprintf(out, len, "%s/%s.plan", dir, idhex) >= len)
        return -ENAMETOOLONG;
    return 0;
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int image_write(const char *dir, const char *idhex, const void *image, size_t len,
                uint8_t sha[SHA256_LEN], int *fd, char *err, size_t errlen)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    if (image_path(dir, idhex, path, sizeof(path)) < 0 ||
        (size_t)snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, idhex) >= sizeof(tmp))
        return seterr(err, errlen, -ENAMETOOLONG, "image directory %s: path too long", dir);
    int wfd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (wfd < 0)
        return seterr(err, errlen, -errno, "%s: %s", tmp, strerror(errno));
    int rc = fchmod(wfd, 0600) < 0 ? -errno : write_all(wfd, image, len);
    if (close(wfd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc < 0) {
        unlink(tmp);
        return seterr(err, errlen, rc, "%s: %s", path, strerror(-rc));
    }
    *fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (*fd < 0) {
        rc = -errno;
        unlink(path);
        return seterr(err, errlen, rc, "%s: %s", path, strerror(-rc));
    }
    sha256(image, len, sha);
    return 0;
}

/* ---- re-adoption ---- */

static int is_image_name(const char *name, uint8_t identity[SHA256_LEN])
{
    size_t n = strlen(name);
    if (n != 64 + 5 || strcmp(name + 64, ".plan") != 0)
        return 0;
    char hex[SHA256_HEX_LEN];
    memcpy(hex, name, 64);
    hex[64] = '\0';
    return sha256_parse_hex(hex, identity) == 0;
}

/* Verifies the mapped image and checks that it is what its name says. */
static int check_image(const void *p, size_t len, const uint8_t identity[SHA256_LEN],
                       struct model *tmpl, char *err, size_t errlen)
{
    int rc = engine_image_verify(p, len, err, errlen);
    if (rc < 0)
        return rc;
    struct engine_model *em;
    rc = engine_model_open(p, len, &em, err, errlen);
    if (rc < 0)
        return rc;
    memcpy(tmpl->source_sha, engine_model_source_sha256(em), SHA256_LEN);
    tmpl->threads = engine_model_threads(em);
    char named[REF_MAX_SHAPES + 1], unnamed[REF_MAX_SHAPES + 1];
    image_shapes(em, named, sizeof(named), unnamed, sizeof(unnamed));
    engine_model_close(em);
    const char *const spellings[3] = {"", named, unnamed};
    if (!identity_matches(tmpl, spellings, identity))
        return seterr(err, errlen, -EINVAL,
                      "image content does not match its name (built by "
                      "another engine, CPU or thread count)");
    sha256(p, len, tmpl->image_sha);
    return 0;
}

/* Opens, maps and checks one image; on success the model is added RESIDENT to c. */
static int adopt_one(const char *dir, const char *name, const uint8_t identity[SHA256_LEN],
                     struct catalog *c, const struct manifest *man, char *err, size_t errlen)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
        st.st_uid != geteuid()) {
        if (fd >= 0)
            close(fd);
        return seterr(err, errlen, -EINVAL, "not a regular, non-empty file of the store's user");
    }
    size_t len = (size_t)st.st_size;
    void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        close(fd);
        return seterr(err, errlen, -errno, "mmap: %s", strerror(errno));
    }
    struct model tmpl = {0};
    int rc = check_image(p, len, identity, &tmpl, err, errlen);
    munmap(p, len);
    struct model *m =
        rc == 0 ? catalog_add(c, identity, tmpl.source_sha, tmpl.threads, NULL) : NULL;
    if (!m) {
        close(fd);
        return rc < 0 ? rc : seterr(err, errlen, -ENOMEM, "out of memory");
    }
    memcpy(m->image_sha, tmpl.image_sha, SHA256_LEN);
    m->fd = fd;
    fchmod(fd, 0600);
    const struct manifest_entry *e = manifest_find(man, m->idhex);
    if (e) {
        snprintf(m->names, sizeof(m->names), "%s", e->names);
        m->last_use_ms = e->last_use_ms;
        m->release_seq = e->release_seq;
        m->compile_s = e->compile_s;
    }
    if (m->release_seq > c->seq)
        c->seq = m->release_seq;
    catalog_admit(c, m, len);
    return 0;
}

/* Evicts adopted images beyond the budget (a store restarted with a smaller one). */
static void trim_to_budget(const char *dir, struct catalog *c, struct store_counters *n)
{
    while (c->resident_bytes > c->budget) {
        struct model *victim = NULL;
        for (struct model *m = c->models; m; m = m->next)
            if (!victim || m->release_seq < victim->release_seq)
                victim = m;
        char path[PATH_MAX];
        image_path(dir, victim->idhex, path, sizeof(path));
        log_warn("image %s: over the budget after restart; evicted", path);
        unlink(path);
        close(victim->fd);
        catalog_remove(c, victim);
        n->evictions++;
    }
}

static void discard(const char *dir, const char *name, const char *why)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    log_warn("%s: discarded: %s", path, why);
    unlink(path);
}

int image_adopt_dir(const char *dir, struct catalog *c, struct store_counters *n, char *err,
                    size_t errlen)
{
    char mpath[PATH_MAX], merr[256];
    snprintf(mpath, sizeof(mpath), "%s/manifest.json", dir);
    struct manifest man;
    if (manifest_read(mpath, &man, merr, sizeof(merr)) < 0)
        log_warn("%s; model names and LRU order are lost", merr);
    DIR *d = opendir(dir);
    if (!d) {
        manifest_free(&man);
        return seterr(err, errlen, -errno, "image directory %s: %s", dir, strerror(errno));
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        uint8_t identity[SHA256_LEN];
        char why[512];
        if (strstr(de->d_name, ".tmp")) {
            discard(dir, de->d_name, "temporary file of an interrupted write");
            continue;
        }
        if (!is_image_name(de->d_name, identity))
            continue;
        if (adopt_one(dir, de->d_name, identity, c, &man, why, sizeof(why)) < 0) {
            discard(dir, de->d_name, why);
            n->discarded++;
            continue;
        }
        n->adopted++;
        log_info("%s/%s: adopted", dir, de->d_name);
    }
    closedir(d);
    manifest_free(&man);
    trim_to_budget(dir, c, n);
    return 0;
}
