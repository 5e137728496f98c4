/*
 * The disk tier: compiled images kept on local disk (--disk-dir) under their own budget
 * (--disk-budget), so a RAM miss costs a read instead of a compile, and a reboot that empties
 * tmpfs does not empty the cache. The loop owns the index (a second catalog); the worker
 * functions here do the IO. A file is trusted for nothing: it is read into memory and verified
 * (engine_image_verify: the image's own SHA-256; image_check: its content is the identity its
 * name says) before the loop writes it into the RAM tier, where it is sealed like any image.
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

#define IMAGE_ALIGN 64 /* what engine_compile gives: engine_model_open expects it */

static int disk_name(const char *idhex, char *out, size_t len)
{
    return (size_t)snprintf(out, len, "%s.plan", idhex) >= len ? -ENAMETOOLONG : 0;
}

static void job_file_name(const struct job *job, char out[SHA256_HEX_LEN + 8])
{
    char hex[SHA256_HEX_LEN];
    sha256_hex(job->identity, hex);
    disk_name(hex, out, SHA256_HEX_LEN + 8);
}

int disk_unlink(int dir_fd, const char *idhex)
{
    char name[SHA256_HEX_LEN + 8];
    if (disk_name(idhex, name, sizeof(name)) < 0)
        return -ENAMETOOLONG;
    return unlinkat(dir_fd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
}

/* ---- worker side ---- */

/* A file of the tier into a 64-byte aligned buffer (*out, *got), checked against the size the
 * index says it has. */
static int read_at(int dir_fd, const char *name, uint64_t want, void **out, size_t *got_len,
                   char *err, size_t errlen)
{
    int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return seterr(err, errlen, -errno, "%s: %s", name, strerror(errno));
    int rc = fstat(fd, &st) < 0 ? -errno : 0;
    if (rc == 0 && (!S_ISREG(st.st_mode) || st.st_uid != geteuid()))
        rc = seterr(err, errlen, -EINVAL, "%s: not a regular file of the store's user", name);
    else if (rc == 0 && (uint64_t)st.st_size != want)
        rc = seterr(err, errlen, -EINVAL, "%s: %lld bytes, %llu when written (truncated or replaced)",
                    name, (long long)st.st_size, (unsigned long long)want);
    void *buf = NULL;
    if (rc == 0 && posix_memalign(&buf, IMAGE_ALIGN, st.st_size ? (size_t)st.st_size : 1) != 0)
        rc = seterr(err, errlen, -ENOMEM, "out of memory for %lld bytes", (long long)st.st_size);
    size_t got = 0;
    while (rc == 0 && got < (size_t)st.st_size) {
        ssize_t n = read(fd, (uint8_t *)buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            rc = seterr(err, errlen, n < 0 ? -errno : -EIO, "%s: read: %s", name,
                        n < 0 ? strerror(errno) : "file shrank while read");
        else
            got += (size_t)n;
    }
    close(fd);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    *got_len = got;
    return 0;
}

static int blob_file(const uint8_t sha[SHA256_LEN], char out[SHA256_HEX_LEN + 16])
{
    char hex[SHA256_HEX_LEN];
    sha256_hex(sha, hex);
    return (size_t)snprintf(out, SHA256_HEX_LEN + 16, "%s.weights", hex) >= SHA256_HEX_LEN + 16
               ? -ENAMETOOLONG
               : 0;
}

/* A plan part read back with its blob: the blob's bytes must have the SHA-256 the part records
 * (one pass), the part must be the bytes this store wrote (expect) or pass the verification and
 * identity check; the RAM tier takes both as they are (job->weights_buf). */
static int read_parts(struct job *job, struct model *tmpl, char *why, size_t len)
{
    char name[SHA256_HEX_LEN + 16];
    void *blob = NULL;
    size_t blob_len = 0;
    int rc = blob_file(job->weights_sha, name);
    if (rc == 0)
        rc = read_at(job->disk_fd, name, job->weights_len, &blob, &blob_len, why, len);
    if (rc == 0)
        rc = engine_weights_verify(job->image, job->image_len, blob, blob_len, why, len);
    if (rc == 0 && job->have_expect && memcmp(job->image_sha, job->expect_sha, SHA256_LEN))
        rc = seterr(why, len, -EBADMSG, "not the bytes the store wrote (SHA-256)");
    else if (rc == 0 && !job->have_expect)
        rc = image_check(job->image, job->image_len, blob, blob_len, job->identity, tmpl, why,
                         len);
    if (rc == 0) {
        job->weights_buf = blob;
        job->weights_buf_len = blob_len;
    } else {
        free(blob);
    }
    return rc;
}

void disk_read_job(struct job *job)
{
    int64_t t0 = now_ns();
    char why[PROTO_MAX_ERR / 2], name[SHA256_HEX_LEN + 8];
    struct model tmpl = {0};
    job_file_name(job, name);
    int rc = read_at(job->disk_fd, name, job->disk_len, &job->image, &job->image_len, why,
                     sizeof(why));
    if (rc == 0) /* the file's SHA-256: what a later read back must find (part or image) */
        sha256(job->image, job->image_len, job->image_sha);
    if (rc == 0 && job->weights_len > 0) {
        rc = read_parts(job, &tmpl, why, sizeof(why));
    } else if (rc == 0 && job->have_expect) { /* written by this store: the same bytes */
        if (memcmp(job->image_sha, job->expect_sha, SHA256_LEN) != 0)
            rc = seterr(why, sizeof(why), -EBADMSG, "not the bytes the store wrote (SHA-256)");
    } else if (rc == 0) {
        rc = image_check(job->image, job->image_len, NULL, 0, job->identity, &tmpl, why,
                         sizeof(why));
    }
    if (rc == 0 && !job->have_expect) {
        memcpy(job->source_sha, tmpl.source_sha, SHA256_LEN);
        job->threads = tmpl.threads;
    }
    job->seconds = (double)(now_ns() - t0) / 1e9;
    job->disk_rc = rc;
    if (rc == 0)
        return;
    free(job->image); /* never mapped by anyone */
    job->image = NULL;
    job->image_len = 0;
    snprintf(job->err, sizeof(job->err), "%s", why);
}

/* Writes len bytes of fd (a RAM tier file) as name; *sha (may be NULL) their SHA-256. */
static int write_from(struct job *job, int fd, size_t len, const char *name, uint8_t *sha)
{
    void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return seterr(job->err, sizeof(job->err), -errno, "mmap of the RAM image: %s",
                      strerror(errno));
    int rc = write_file_atomic_at(job->disk_fd, name, p, len, 0600, job->err, sizeof(job->err));
    if (rc == 0 && sha)
        sha256(p, len, sha); /* what a read back in this run must find */
    munmap(p, len);
    return rc;
}

void disk_write_job(struct job *job)
{
    int64_t t0 = now_ns();
    char name[SHA256_HEX_LEN + 16];
    /* the blob first (when this part brings it): a part on disk finds its blob there */
    job->rc = 0;
    if (job->weights_fd >= 0) {
        job->rc = blob_file(job->weights_sha, name);
        if (job->rc == 0)
            job->rc = write_from(job, job->weights_fd, (size_t)job->weights_len, name, NULL);
    }
    job_file_name(job, name);
    if (job->rc == 0)
        job->rc = write_from(job, job->image_fd, (size_t)job->disk_len, name, job->image_sha);
    close(job->image_fd);
    job->image_fd = -1;
    if (job->weights_fd >= 0)
        close(job->weights_fd);
    job->weights_fd = -1;
    job->seconds = (double)(now_ns() - t0) / 1e9;
}

void disk_remove(int dir_fd, const char *dir, struct catalog *c, struct model *dm, int evicted)
{
    int rc = disk_unlink(dir_fd, dm->idhex);
    if (rc < 0)
        log_warn("%s/%s.plan: unlink: %s", dir, dm->idhex, strerror(-rc));
    if (evicted)
        catalog_evict(c, dm);
    else
        catalog_remove(c, dm);
    image_reap_blobs(dir_fd, dir, c); /* its blob, when it was the last part on disk */
}

uint64_t disk_link_blob(struct catalog *c, struct model *dm, const struct blob *blob,
                        int *write_blob, uint64_t part_len)
{
    *write_blob = 0;
    if (!blob)
        return part_len;
    struct blob *have = catalog_blob_find(c, blob->sha);
    if (have && have->size == blob->size) {
        catalog_blob_link(dm, have);
        return part_len;
    }
    *write_blob = 1;
    return part_len + blob->size;
}

/* ---- the index at start ---- */

/* The weights record in the header of name (len bytes): the first bytes read, not the file. */
static int part_header(int dir_fd, const char *name, uint64_t len, struct engine_weights_ref *w,
                       char *err, size_t errlen)
{
    static _Alignas(64) uint8_t head[1024];
    int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    ssize_t got = fd >= 0 ? pread(fd, head, sizeof(head), 0) : -1;
    if (fd >= 0)
        close(fd);
    if (got < 0)
        return seterr(err, errlen, -errno, "%s", strerror(errno));
    /* engine_image_weights reads the header only: the section table is checked against len */
    if ((size_t)got < sizeof(head) && (uint64_t)got != len)
        return seterr(err, errlen, -EINVAL, "short read");
    return engine_image_weights(head, (size_t)len, w, err, errlen);
}

static void index_one(int dir_fd, const char *dir, const char *name,
                      const uint8_t identity[SHA256_LEN], struct catalog *c,
                      const struct manifest *man, struct store_counters *n)
{
    struct stat st;
    if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode) ||
        st.st_uid != geteuid() || st.st_size <= 0) {
        log_warn("%s/%s: discarded: not a regular, non-empty file of the store's user", dir, name);
        unlinkat(dir_fd, name, 0);
        n->disk_dropped++;
        return;
    }
    /* a plan part: its header names its blob, which must be there at its size (the content is
     * verified when read back) */
    struct engine_weights_ref w = {0};
    char why[256] = "", bname[SHA256_HEX_LEN + 16];
    struct stat bst;
    int rc = part_header(dir_fd, name, (uint64_t)st.st_size, &w, why, sizeof(why));
    if (rc == 0 && w.external && (blob_file(w.sha256, bname) < 0 ||
                                  fstatat(dir_fd, bname, &bst, AT_SYMLINK_NOFOLLOW) < 0 ||
                                  !S_ISREG(bst.st_mode) || (uint64_t)bst.st_size != w.size))
        rc = seterr(why, sizeof(why), -ENOENT, "its weights %s are missing or of another size",
                    bname);
    uint8_t zero[SHA256_LEN] = {0};
    struct model *m = rc == 0 ? catalog_add(c, identity, zero, 0, NULL) : NULL;
    struct blob *b = m && w.external ? catalog_blob_find(c, w.sha256) : NULL;
    if (m && w.external && !b)
        b = catalog_blob_add(c, w.sha256, w.size, -1);
    if (!m || (w.external && !b)) {
        if (m)
            catalog_remove(c, m);
        log_warn("%s/%s: discarded: %s", dir, name, rc < 0 ? why : "out of memory");
        unlinkat(dir_fd, name, 0);
        n->disk_dropped++;
        return;
    }
    if (b)
        catalog_blob_link(m, b);
    image_restore(c, m, man, (uint64_t)st.st_size);
    n->disk_adopted++;
}

int disk_adopt_dir(int dir_fd, const char *dir, struct catalog *c, struct store_counters *n,
                   char *err, size_t errlen)
{
    int rc = image_dir_walk(dir_fd, dir, "disk tier names and priorities", c, n, index_one,
                            &n->disk_evictions, err, errlen);
    if (rc == 0)
        image_sweep_blobs(dir_fd, dir, c);
    return rc;
}
