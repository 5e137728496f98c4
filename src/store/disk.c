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

/* The whole file into a 64-byte aligned buffer, checked against what the index says. */
static int read_image(struct job *job, char *err, size_t errlen)
{
    char name[SHA256_HEX_LEN + 8];
    job_file_name(job, name);
    int fd = openat(job->disk_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return seterr(err, errlen, -errno, "%s", strerror(errno));
    int rc = fstat(fd, &st) < 0 ? -errno : 0;
    if (rc == 0 && (!S_ISREG(st.st_mode) || st.st_uid != geteuid()))
        rc = seterr(err, errlen, -EINVAL, "not a regular file of the store's user");
    else if (rc == 0 && (uint64_t)st.st_size != job->disk_len)
        rc = seterr(err, errlen, -EINVAL, "%lld bytes, %llu when written (truncated or replaced)",
                    (long long)st.st_size, (unsigned long long)job->disk_len);
    void *buf = NULL;
    if (rc == 0 && posix_memalign(&buf, IMAGE_ALIGN, (size_t)st.st_size) != 0)
        rc = seterr(err, errlen, -ENOMEM, "out of memory for %lld bytes", (long long)st.st_size);
    size_t got = 0;
    while (rc == 0 && got < (size_t)st.st_size) {
        ssize_t n = read(fd, (uint8_t *)buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            rc = seterr(err, errlen, n < 0 ? -errno : -EIO, "read: %s",
                        n < 0 ? strerror(errno) : "file shrank while read");
        else
            got += (size_t)n;
    }
    close(fd);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    job->image = buf;
    job->image_len = got;
    return 0;
}

/* The SHA-256 of the whole image (what clients are told), computed beside the verification's
 * own pass over it: two passes, one core each. */
static void *hash_thread(void *arg)
{
    struct job *job = arg;
    sha256(job->image, job->image_len, job->image_sha);
    return NULL;
}

void disk_read_job(struct job *job)
{
    int64_t t0 = now_ns();
    char why[PROTO_MAX_ERR / 2];
    struct model tmpl = {0};
    pthread_t t;
    int rc = read_image(job, why, sizeof(why));
    if (rc == 0 && job->have_expect) { /* written by this store: the same bytes or nothing */
        hash_thread(job);
        if (memcmp(job->image_sha, job->expect_sha, SHA256_LEN) != 0)
            rc = seterr(why, sizeof(why), -EBADMSG, "not the bytes the store wrote (SHA-256)");
        goto done;
    }
    int threaded = rc == 0 && pthread_create(&t, NULL, hash_thread, job) == 0;
    if (rc == 0)
        rc = image_check(job->image, job->image_len, NULL, 0, job->identity, &tmpl, why,
                         sizeof(why));
    if (threaded)
        pthread_join(t, NULL);
    else if (rc == 0)
        hash_thread(job);
    if (rc == 0) {
        memcpy(job->source_sha, tmpl.source_sha, SHA256_LEN);
        job->threads = tmpl.threads;
    }
done:
    job->seconds = (double)(now_ns() - t0) / 1e9;
    job->disk_rc = rc;
    if (rc == 0)
        return;
    free(job->image); /* never mapped by anyone */
    job->image = NULL;
    job->image_len = 0;
    snprintf(job->err, sizeof(job->err), "%s", why);
}

/* A plan part and its blob (RAM tier files) joined into the whole image the compiler made, in
 * anonymous memory mapped for it (unmapped after the write: a heap buffer this size would stay
 * in the writer thread's arena). */
static int join_parts(struct job *job, void **image)
{
    size_t plen = (size_t)job->part_len, wlen = (size_t)job->weights_len;
    size_t len = (size_t)job->disk_len;
    void *p = mmap(NULL, plen, PROT_READ, MAP_SHARED, job->image_fd, 0);
    void *w = mmap(NULL, wlen, PROT_READ, MAP_SHARED, job->weights_fd, 0);
    void *out = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int rc = p == MAP_FAILED || w == MAP_FAILED || out == MAP_FAILED
                 ? seterr(job->err, sizeof(job->err), -errno, "mmap of the RAM image: %s",
                          strerror(errno))
                 : engine_image_join_into(p, plen, w, wlen, out, len, job->err,
                                          sizeof(job->err));
    if (p != MAP_FAILED)
        munmap(p, plen);
    if (w != MAP_FAILED)
        munmap(w, wlen);
    if (rc < 0 && out != MAP_FAILED)
        munmap(out, len);
    *image = rc < 0 ? NULL : out;
    return rc;
}

void disk_write_job(struct job *job)
{
    int64_t t0 = now_ns();
    char name[SHA256_HEX_LEN + 8];
    job_file_name(job, name);
    size_t len = (size_t)job->disk_len;
    void *whole = NULL, *p = MAP_FAILED;
    if (job->weights_fd >= 0) {
        job->rc = join_parts(job, &whole);
    } else {
        p = mmap(NULL, len, PROT_READ, MAP_SHARED, job->image_fd, 0);
        job->rc = p == MAP_FAILED ? seterr(job->err, sizeof(job->err), -errno,
                                           "mmap of the RAM image: %s", strerror(errno))
                                  : 0;
    }
    const void *bytes = whole ? whole : p;
    if (job->rc == 0) {
        job->rc =
            write_file_atomic_at(job->disk_fd, name, bytes, len, 0600, job->err, sizeof(job->err));
        if (job->rc == 0)
            sha256(bytes, len, job->image_sha); /* what a read back in this run must find */
    }
    if (p != MAP_FAILED)
        munmap(p, len);
    if (whole)
        munmap(whole, len);
    close(job->image_fd);
    job->image_fd = -1;
    if (job->weights_fd >= 0)
        close(job->weights_fd);
    job->weights_fd = -1;
    job->seconds = (double)(now_ns() - t0) / 1e9;
}

/* ---- the index at start ---- */

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
    uint8_t zero[SHA256_LEN] = {0};
    struct model *m = catalog_add(c, identity, zero, 0, NULL);
    if (!m)
        return;
    image_restore(c, m, man, (uint64_t)st.st_size);
    n->disk_adopted++;
}

int disk_adopt_dir(int dir_fd, const char *dir, struct catalog *c, struct store_counters *n,
                   char *err, size_t errlen)
{
    return image_dir_walk(dir_fd, dir, "disk tier names and priorities", c, n, index_one,
                          &n->disk_evictions, err, errlen);
}
