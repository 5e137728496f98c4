/*
 * Image files in the store's tmpfs directory: written once (temp file, fsync-free rename — tmpfs
 * has nothing to sync), mode 0600, sealed immutable before any fd leaves the store (store.h says
 * how), never modified; re-adopted after a restart only when the engine verifies them and their
 * content matches the identity in their name.
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
#include <linux/fs.h>
#include <linux/magic.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
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

static int image_name(const char *idhex, char *out, size_t len)
{
    if ((size_t)snprintf(out, len, "%s.plan", idhex) >= len)
        return -ENAMETOOLONG;
    return 0;
}

/* ---- sealing ---- */

static int set_immutable(int fd, int on)
{
    int flags;
    if (ioctl(fd, FS_IOC_GETFLAGS, &flags) < 0)
        return -errno;
    int want = on ? flags | FS_IMMUTABLE_FL : flags & ~FS_IMMUTABLE_FL;
    if (want != flags && ioctl(fd, FS_IOC_SETFLAGS, &want) < 0)
        return -errno;
    return 0;
}

/* 0 when no writable open file of fd's inode exists anywhere (a read lease is granted only
 * then; a writable shared mapping holds its file open), -EBUSY when one does. Where leases are
 * unavailable (fs.leases-enable = 0) there is nothing to ask; that is logged. */
static int no_writers(int fd)
{
    if (fcntl(fd, F_SETLEASE, F_RDLCK) < 0) {
        if (errno == EAGAIN)
            return -EBUSY;
        log_debug("read lease: %s; cannot check for writers opened before the seal",
                  strerror(errno));
        return 0;
    }
    fcntl(fd, F_SETLEASE, F_UNLCK);
    return 0;
}

/* No holes: every page is in the file, charged to the store that wrote it. */
static int fully_written(const struct stat *st)
{
    return (uint64_t)st->st_blocks * 512 >= (uint64_t)st->st_size;
}

/* Seals an image file (fd O_RDONLY): immutable, then no writer left. Returns 0 sealed, 1 when
 * the flag is unavailable here (counted in n->unsealed, logged the first time), or -EBUSY. */
static int seal(int fd, const char *what, struct store_counters *n)
{
    int rc = set_immutable(fd, 1);
    if (rc < 0) {
        if (n->unsealed++ == 0)
            log_warn("%s: cannot set the immutable flag (%s): images are protected only by mode "
                     "0600, O_RDONLY fds and the store's uid; root with CAP_DAC_OVERRIDE can write "
                     "them (needs Linux >= 6.0 for tmpfs and CAP_LINUX_IMMUTABLE)",
                     what, strerror(-rc));
    }
    int busy = no_writers(fd);
    return busy < 0 ? busy : rc < 0 ? 1 : 0;
}

int image_unlink(int dir_fd, const char *name)
{
    int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) {
        set_immutable(fd, 0);
        close(fd);
    }
    if (unlinkat(dir_fd, name, 0) < 0 && errno != ENOENT)
        return -errno;
    return 0;
}

/* Writes name (through the temp file tmp), seals it, checks the sealed bytes; *fd O_RDONLY. */
static int write_sealed(int dir_fd, const char *name, const char *tmp, const void *image,
                        size_t len, int *fd, struct store_counters *n, char *err, size_t errlen)
{
    struct stat wst, rst;
    image_unlink(dir_fd, tmp); /* an interrupted write of the same image */
    int wfd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (wfd < 0)
        return seterr(err, errlen, -errno, "image %s: %s", tmp, strerror(errno));
    int rc = fchmod(wfd, 0600) < 0 ? -errno : fd_write_all(wfd, image, len);
    if (rc == 0 && fstat(wfd, &wst) < 0)
        rc = -errno;
    if (rc == 0 && !fully_written(&wst))
        rc = -EIO;
    if (close(wfd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && renameat(dir_fd, tmp, dir_fd, name) < 0)
        rc = -errno;
    if (rc < 0) {
        unlinkat(dir_fd, tmp, 0);
        return seterr(err, errlen, rc, "image %s: %s", name,
                      rc == -EIO ? "file has holes after writing every byte" : strerror(-rc));
    }
    *fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    rc = *fd < 0 ? -errno : fstat(*fd, &rst) < 0 ? -errno : 0;
    if (rc == 0 && (rst.st_dev != wst.st_dev || rst.st_ino != wst.st_ino))
        rc = -ESTALE; /* someone else put a file under the name */
    if (rc == 0)
        rc = seal(*fd, name, n);
    if (rc >= 0) {
        /* The bytes the file holds once sealed are what clients map: they must be ours (a
         * compare, not a second hash: the same answer at memory speed). */
        void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, *fd, 0);
        if (p == MAP_FAILED) {
            rc = -errno;
        } else {
            rc = memcmp(p, image, len) ? -ESTALE : 0;
            munmap(p, len);
        }
    }
    if (rc < 0) {
        if (*fd >= 0)
            close(*fd);
        *fd = -1;
        image_unlink(dir_fd, name);
        return seterr(err, errlen, rc, "image %s: %s", name,
                      rc == -EBUSY    ? "another process opened it for writing before the seal"
                      : rc == -ESTALE ? "replaced or modified by another process while written"
                                      : strerror(-rc));
    }
    return 0;
}

int image_write(int dir_fd, const char *idhex, const void *image, size_t len,
                const uint8_t *known_sha, uint8_t sha[SHA256_LEN], int *fd,
                struct store_counters *n, char *err, size_t errlen)
{
    char name[SHA256_HEX_LEN + 8], tmp[SHA256_HEX_LEN + 8];
    if (image_name(idhex, name, sizeof(name)) < 0 ||
        (size_t)snprintf(tmp, sizeof(tmp), ".%s.tmp", idhex) >= sizeof(tmp))
        return seterr(err, errlen, -ENAMETOOLONG, "image %s: name too long", idhex);
    int rc = write_sealed(dir_fd, name, tmp, image, len, fd, n, err, errlen);
    if (rc == 0 && known_sha)
        memcpy(sha, known_sha, SHA256_LEN);
    else if (rc == 0)
        sha256(image, len, sha);
    return rc;
}

static int blob_name(const char *hex, char *out, size_t len)
{
    return (size_t)snprintf(out, len, "%s.weights", hex) >= len ? -ENAMETOOLONG : 0;
}

int blob_write(int dir_fd, const char *hex, const void *weights, size_t len, int *fd,
               struct store_counters *n, char *err, size_t errlen)
{
    char name[SHA256_HEX_LEN + 16], tmp[SHA256_HEX_LEN + 20];
    if (blob_name(hex, name, sizeof(name)) < 0 ||
        (size_t)snprintf(tmp, sizeof(tmp), ".%s.tmp", name) >= sizeof(tmp))
        return seterr(err, errlen, -ENAMETOOLONG, "weights %s: name too long", hex);
    return write_sealed(dir_fd, name, tmp, weights, len, fd, n, err, errlen);
}

void image_reap_blobs(int dir_fd, const char *dir, struct catalog *c)
{
    for (struct blob *b; (b = catalog_blob_orphan(c));) {
        char name[SHA256_HEX_LEN + 16];
        blob_name(b->hex, name, sizeof(name));
        int rc = image_unlink(dir_fd, name);
        if (rc < 0)
            log_warn("%s/%s: unlink: %s", dir, name, strerror(-rc));
        log_info("weights %s freed (%llu bytes): no image refers to them any more", b->hex,
                 (unsigned long long)b->size);
        if (b->fd >= 0)
            close(b->fd);
        catalog_blob_drop(c, b);
    }
}

int image_parts_prepare(struct catalog *c, struct model *m, const void *image, size_t len,
                        struct image_parts *out, char *err, size_t errlen)
{
    struct engine_weights_ref w;
    memset(out, 0, sizeof(*out));
    out->image = image;
    out->len = len;
    int rc = engine_image_weights(image, len, &w, err, errlen);
    if (rc < 0)
        return rc;
    if (w.external)
        return seterr(err, errlen, -EINVAL, "a plan part where a whole image was expected");
    if (w.size == 0) { /* nothing to share: one file as before */
        out->need = len;
        return 0;
    }
    rc = engine_image_split(image, len, &out->part, &out->part_len, err, errlen);
    if (rc < 0)
        return rc;
    out->weights = (const uint8_t *)image + w.offset;
    out->weights_len = w.size;
    memcpy(out->weights_sha, w.sha256, SHA256_LEN);
    struct blob *b = catalog_blob_find(c, w.sha256);
    if (b && b->size == w.size)
        catalog_blob_link(m, b); /* referred to from now on: no eviction frees it meanwhile */
    out->need = out->part_len + (m->blob ? 0 : w.size);
    return 0;
}

int image_parts_write(int dir_fd, struct catalog *c, struct model *m, struct image_parts *p,
                      const uint8_t *known_sha, struct store_counters *n, char *err,
                      size_t errlen)
{
    if (!p->part)
        return image_write(dir_fd, m->idhex, p->image, p->len, known_sha, m->image_sha, &m->fd,
                           n, err, errlen);
    if (!m->blob) {
        char hex[SHA256_HEX_LEN];
        int fd = -1;
        sha256_hex(p->weights_sha, hex);
        int rc = blob_write(dir_fd, hex, p->weights, p->weights_len, &fd, n, err, errlen);
        struct blob *b = rc == 0 ? catalog_blob_add(c, p->weights_sha, p->weights_len, fd) : NULL;
        if (!b) {
            if (fd >= 0)
                close(fd);
            return rc < 0 ? rc : seterr(err, errlen, -ENOMEM, "store out of memory");
        }
        catalog_blob_link(m, b);
    }
    return image_write(dir_fd, m->idhex, p->part, p->part_len, NULL, m->image_sha, &m->fd, n,
                       err, errlen);
}

int image_parts_given(struct catalog *c, struct model *m, const void *part, size_t part_len,
                      const void *weights, size_t weights_len, struct image_parts *p, char *err,
                      size_t errlen)
{
    struct engine_weights_ref w;
    memset(p, 0, sizeof(*p));
    int rc = engine_image_weights(part, part_len, &w, err, errlen);
    if (rc < 0)
        return rc;
    if (!w.external || w.size != weights_len)
        return seterr(err, errlen, -EINVAL, "a plan part and a blob that do not belong together");
    p->image = part;
    p->len = part_len;
    p->part = (void *)part;
    p->part_len = part_len;
    p->part_given = 1;
    p->weights = weights;
    p->weights_len = weights_len;
    memcpy(p->weights_sha, w.sha256, SHA256_LEN);
    struct blob *b = catalog_blob_find(c, w.sha256);
    if (b && b->size == w.size)
        catalog_blob_link(m, b);
    p->need = part_len + (m->blob ? 0 : w.size);
    return 0;
}

void image_parts_free(struct image_parts *p)
{
    if (!p->part_given)
        engine_image_free(p->part);
    p->part = NULL;
}

int image_dir_open(const char *dir, const char *flag, char *err, size_t errlen)
{
    int rc = mkdir_p(dir, 0700);
    if (rc < 0)
        return seterr(err, errlen, rc, "%s %s: cannot create it: %s", flag, dir, strerror(-rc));
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return seterr(err, errlen, -errno, "%s %s: %s", flag, dir,
                      errno == ELOOP || errno == ENOTDIR ? "a symlink or not a directory; refused"
                                                         : strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
        (st.st_mode & 022)) {
        close(fd);
        return seterr(err, errlen, -EPERM,
                      "%s %s: not a directory of uid %u that only it can write (owner %u, mode "
                      "%04o); refused: another user could plant or swap files in it",
                      flag, dir, (unsigned)geteuid(), (unsigned)st.st_uid,
                      (unsigned)(st.st_mode & 07777));
    }
    return fd;
}

/* ---- huge pages: the image directory as a tmpfs of its own (store.h) ---- */

#define HUGE_MARKER "._shmfaas-huge-tmpfs" /* in the mount's root: it is ours */
#define HUGE_SOURCE "shmfaas-images"       /* the mount's source, for /proc/mounts readers */

int huge_pages_parse(const char *s, enum huge_pages *out)
{
    static const char *const names[] = {"auto", "on", "off"};
    for (size_t i = 0; i < ARRAY_LEN(names); i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (enum huge_pages)i;
            return 0;
        }
    return -EINVAL;
}

/* Whether dir_fd is the root of a tmpfs mount (its parent is on another device). */
static int is_tmpfs_root(int dir_fd)
{
    struct statfs sf;
    struct stat st, up;
    return fstatfs(dir_fd, &sf) == 0 && sf.f_type == TMPFS_MAGIC && fstat(dir_fd, &st) == 0 &&
           fstatat(dir_fd, "..", &up, 0) == 0 && st.st_dev != up.st_dev;
}

int image_dir_is_huge(int dir_fd)
{
    struct stat m;
    return is_tmpfs_root(dir_fd) && fstatat(dir_fd, HUGE_MARKER, &m, AT_SYMLINK_NOFOLLOW) == 0 &&
           S_ISREG(m.st_mode) && m.st_uid == geteuid();
}

static int dir_is_empty(int dir_fd)
{
    int dfd = dup(dir_fd);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!d) {
        if (dfd >= 0)
            close(dfd);
        return 0;
    }
    rewinddir(d);
    int empty = 1;
    for (struct dirent *de; empty && (de = readdir(d));)
        empty = strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0;
    closedir(d);
    return empty;
}

/* Why shmem huge pages cannot be had here, or NULL: the host denies them to every tmpfs. */
static const char *shmem_denied(void)
{
    char buf[128];
    int fd = open("/sys/kernel/mm/transparent_hugepage/shmem_enabled", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return "the kernel has no transparent huge pages";
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return strstr(buf, "[deny]") ? "shmem_enabled is deny" : NULL;
}

/* Mounts the tmpfs on the directory dir_fd is (through /proc/self/fd: the directory that was
 * checked, never a path an attacker could swap for a symlink), opens its root and marks it. */
static int huge_mount(int dir_fd, const char *dir, uint64_t size, int *root_fd, char *why,
                      size_t len)
{
    char target[64], opts[128];
    snprintf(target, sizeof(target), "/proc/self/fd/%d", dir_fd);
    snprintf(opts, sizeof(opts), "huge=within_size,mode=0700,uid=%u,gid=%u,size=%llu",
             (unsigned)geteuid(), (unsigned)getegid(), (unsigned long long)size);
    if (mount(HUGE_SOURCE, target, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) < 0)
        return seterr(why, len, -errno, "mount tmpfs huge=within_size: %s", strerror(errno));
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int rc = fd < 0 ? -errno : is_tmpfs_root(fd) ? 0 : -ESTALE;
    if (rc == 0) {
        int m = openat(fd, HUGE_MARKER, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        rc = m < 0 ? -errno : 0;
        if (m >= 0)
            close(m);
    }
    if (rc < 0) {
        if (fd >= 0)
            close(fd);
        umount2(target, MNT_DETACH);
        return seterr(why, len, rc, "the new mount: %s", strerror(-rc));
    }
    *root_fd = fd;
    return 0;
}

int image_dir_huge(int *dir_fd, const char *dir, enum huge_pages mode, uint64_t size, char *err,
                   size_t errlen)
{
    char why[256] = "";
    int root = -1, rc = 0;
    if (image_dir_is_huge(*dir_fd))
        return 1; /* left by the store before this one (even with off now): adopt it as is */
    if (mode == HUGE_PAGES_OFF)
        return 0;
    const char *denied = shmem_denied();
    if (denied)
        rc = seterr(why, sizeof(why), -EOPNOTSUPP, "%s", denied);
    else if (geteuid() != 0)
        rc = seterr(why, sizeof(why), -EPERM, "not root");
    else if (!dir_is_empty(*dir_fd))
        rc = seterr(why, sizeof(why), -ENOTEMPTY, "it holds files from before (purge it)");
    else
        rc = huge_mount(*dir_fd, dir, size, &root, why, sizeof(why));
    if (rc == 0 && flock(root, LOCK_EX | LOCK_NB) < 0)
        rc = seterr(why, sizeof(why), -errno, "lock: %s", strerror(errno));
    if (rc < 0) {
        if (root >= 0) {
            image_dir_unmount(root, dir);
            close(root);
        }
        if (mode == HUGE_PAGES_ON)
            return seterr(err, errlen, rc, "--huge-pages on: %s: %s", dir, why);
        log_info("%s: images in small pages (%s)", dir, why);
        return 0;
    }
    close(*dir_fd); /* the directory under the mount; its lock goes, the root's holds */
    *dir_fd = root;
    log_info("%s: images in huge pages (tmpfs huge=within_size mounted there)", dir);
    return 1;
}

int image_dir_unmount(int dir_fd, const char *dir)
{
    char target[64];
    if (unlinkat(dir_fd, HUGE_MARKER, 0) < 0 && errno != ENOENT)
        log_warn("%s/%s: %s", dir, HUGE_MARKER, strerror(errno));
    snprintf(target, sizeof(target), "/proc/self/fd/%d", dir_fd);
    if (umount2(target, MNT_DETACH) < 0) {
        int e = errno;
        log_warn("%s: umount: %s", dir, strerror(e));
        return -e;
    }
    return 0;
}

/* Names the store writes in its directory: images, their temp files, the manifest. */
static int is_store_file(const char *name)
{
    size_t n = strlen(name);
    return (n > 5 && strcmp(name + n - 5, ".plan") == 0) ||
           (n > 8 && strcmp(name + n - 8, ".weights") == 0) ||
           (name[0] == '.' && n > 4 && strcmp(name + n - 4, ".tmp") == 0) ||
           strcmp(name, "manifest.json") == 0 || strncmp(name, ".manifest.json", 14) == 0;
}

void image_remove_all(int dir_fd, const char *dir)
{
    int dfd = dup(dir_fd);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!d) {
        if (dfd >= 0)
            close(dfd);
        log_warn("%s: %s; images left behind", dir, strerror(errno));
        return;
    }
    rewinddir(d); /* the dup shares the offset of every earlier listing */
    int removed = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (is_store_file(de->d_name)) {
            int rc = image_unlink(dir_fd, de->d_name);
            if (rc < 0)
                log_warn("%s/%s: %s", dir, de->d_name, strerror(-rc));
            removed += rc == 0;
        }
    closedir(d);
    log_info("%s: %d file(s) removed", dir, removed);
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

int image_check(const void *p, size_t len, const void *weights, size_t weights_len,
                const uint8_t identity[SHA256_LEN], struct model *tmpl, char *err, size_t errlen)
{
    int rc = engine_image_verify(p, len, err, errlen);
    if (rc < 0)
        return rc;
    struct engine_model *em;
    rc = engine_model_open_parts(p, len, weights, weights_len, &em, err, errlen);
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
    return 0;
}

void image_restore(struct catalog *c, struct model *m, const struct manifest *man, uint64_t bytes)
{
    const struct manifest_entry *e = manifest_find(man, m->idhex);
    if (e) {
        snprintf(m->names, sizeof(m->names), "%s", e->names);
        m->last_use_ms = e->last_use_ms;
        m->release_seq = e->release_seq;
        m->compile_s = e->compile_s;
        m->read_s = e->read_s;
        m->freq = e->freq;
        m->priority = e->priority;
    }
    m->cost_s = m->compile_s; /* what a miss costs until a disk copy is measured */
    if (m->release_seq > c->seq)
        c->seq = m->release_seq;
    catalog_admit(c, m, bytes);
}

/* Opens name read-only and seals it: a regular, non-empty, hole-free file of the store's user
 * that nobody holds open for writing. The fd, or a negative errno with err saying why. */
static int open_sealed(int dir_fd, const char *name, struct stat *st, struct store_counters *n,
                       char *err, size_t errlen)
{
    int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0 || fstat(fd, st) < 0 || !S_ISREG(st->st_mode) || st->st_size <= 0 ||
        st->st_uid != geteuid()) {
        if (fd >= 0)
            close(fd);
        return seterr(err, errlen, -EINVAL, "not a regular, non-empty file of the store's user");
    }
    if (!fully_written(st)) {
        close(fd);
        return seterr(err, errlen, -EINVAL, "has holes (not written by a store)");
    }
    if (seal(fd, name, n) < 0) {
        close(fd);
        return seterr(err, errlen, -EBUSY, "another process holds it open for writing");
    }
    return fd;
}

/* The blob a re-adopted plan part refers to: already adopted, or <hex>.weights opened, sealed
 * and hashed now (its bytes must have the SHA-256 and size the part records). A blob that fails
 * is deleted (counted discarded) and the part with it. */
static struct blob *adopt_blob(int dir_fd, const struct engine_weights_ref *w, struct catalog *c,
                               struct store_counters *n, char *err, size_t errlen)
{
    struct blob *b = catalog_blob_find(c, w->sha256);
    if (b)
        return b;
    char hex[SHA256_HEX_LEN], name[SHA256_HEX_LEN + 16], why[256];
    sha256_hex(w->sha256, hex);
    blob_name(hex, name, sizeof(name));
    struct stat st;
    int fd = open_sealed(dir_fd, name, &st, n, why, sizeof(why));
    if (fd == -ENOENT || (fd < 0 && faccessat(dir_fd, name, F_OK, AT_SYMLINK_NOFOLLOW) < 0)) {
        seterr(err, errlen, -ENOENT, "its weights %s are missing", name);
        return NULL;
    }
    int rc = fd < 0 ? fd : (uint64_t)st.st_size != w->size ? -EINVAL : 0;
    if (rc == 0) {
        void *p = mmap(NULL, w->size, PROT_READ, MAP_SHARED, fd, 0);
        uint8_t digest[SHA256_LEN];
        if (p == MAP_FAILED) {
            rc = -errno;
        } else {
            sha256(p, w->size, digest);
            munmap(p, w->size);
            rc = memcmp(digest, w->sha256, SHA256_LEN) ? -EBADMSG : 0;
        }
        snprintf(why, sizeof(why), "%s", rc == -EBADMSG ? "fails its SHA-256 (tampered with)"
                                         : rc < 0       ? strerror(-rc)
                                                        : "");
    } else if (rc == -EINVAL) {
        snprintf(why, sizeof(why), "%lld bytes, its plan parts need %llu", (long long)st.st_size,
                 (unsigned long long)w->size);
    }
    b = rc == 0 ? catalog_blob_add(c, w->sha256, w->size, fd) : NULL;
    if (!b) {
        if (fd >= 0)
            close(fd);
        log_warn("%s: discarded: %s", name, rc < 0 ? why : "out of memory");
        image_unlink(dir_fd, name);
        n->discarded++;
        seterr(err, errlen, rc < 0 ? rc : -ENOMEM, "its weights %s %s", name,
               rc < 0 ? why : "could not be adopted (out of memory)");
    }
    return b;
}

/* Opens, seals, maps and checks one image (a plan part: over its blob, adopted first); on
 * success the model is added RESIDENT to c. */
static int adopt_one(int dir_fd, const char *name, const uint8_t identity[SHA256_LEN],
                     struct catalog *c, const struct manifest *man, struct store_counters *n,
                     char *err, size_t errlen)
{
    struct stat st;
    int fd = open_sealed(dir_fd, name, &st, n, err, errlen);
    if (fd < 0)
        return fd;
    size_t len = (size_t)st.st_size;
    void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        close(fd);
        return seterr(err, errlen, -errno, "mmap: %s", strerror(errno));
    }
    struct model tmpl = {0};
    struct engine_weights_ref w;
    struct blob *b = NULL;
    void *wp = NULL;
    int rc = engine_image_weights(p, len, &w, err, errlen);
    if (rc == 0 && w.external) {
        b = adopt_blob(dir_fd, &w, c, n, err, errlen);
        wp = b ? mmap(NULL, b->size, PROT_READ, MAP_SHARED, b->fd, 0) : MAP_FAILED;
        rc = !b ? -ENOENT : wp == MAP_FAILED ? seterr(err, errlen, -errno, "mmap: %s", strerror(errno)) : 0;
    }
    if (rc == 0)
        rc = image_check(p, len, b ? wp : NULL, b ? b->size : 0, identity, &tmpl, err, errlen);
    if (rc == 0)
        sha256(p, len, tmpl.image_sha);
    munmap(p, len);
    if (b && wp != MAP_FAILED)
        munmap(wp, b->size);
    struct model *m =
        rc == 0 ? catalog_add(c, identity, tmpl.source_sha, tmpl.threads, NULL) : NULL;
    if (!m) {
        close(fd);
        return rc < 0 ? rc : seterr(err, errlen, -ENOMEM, "out of memory");
    }
    memcpy(m->image_sha, tmpl.image_sha, SHA256_LEN);
    m->fd = fd;
    if (b)
        catalog_blob_link(m, b);
    image_restore(c, m, man, len);
    return 0;
}

int image_trim(int dir_fd, const char *dir, struct catalog *c, uint64_t *evictions)
{
    size_t cap = catalog_count(c, MODEL_RESIDENT) + 1, n = 0;
    struct model **victims = calloc(cap, sizeof(*victims));
    if (!victims)
        return -ENOMEM;
    catalog_plan_room(c, 0, NULL, victims, cap, &n, NULL, 0); /* nothing is leased yet */
    for (size_t i = 0; i < n; i++) {
        char name[SHA256_HEX_LEN + 8];
        image_name(victims[i]->idhex, name, sizeof(name));
        log_warn("image %s/%s: over the budget after restart; evicted", dir, name);
        image_unlink(dir_fd, name);
        if (victims[i]->fd >= 0)
            close(victims[i]->fd);
        catalog_evict(c, victims[i]);
        (*evictions)++;
    }
    free(victims);
    image_reap_blobs(dir_fd, dir, c);
    return 0;
}

static void discard(int dir_fd, const char *dir, const char *name, const char *why)
{
    log_warn("%s/%s: discarded: %s", dir, name, why);
    image_unlink(dir_fd, name);
}

int image_dir_walk(int dir_fd, const char *dir, const char *lost, struct catalog *c,
                   struct store_counters *n, image_dir_fn *one, uint64_t *evictions, char *err,
                   size_t errlen)
{
    char merr[256];
    struct manifest man;
    if (manifest_read(dir_fd, MANIFEST_NAME, &man, merr, sizeof(merr)) < 0)
        log_warn("%s; %s are lost", merr, lost);
    c->clock = man.clock;
    int dfd = dup(dir_fd);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!d) {
        int e = errno;
        if (dfd >= 0)
            close(dfd);
        manifest_free(&man);
        return seterr(err, errlen, -e, "image directory %s: %s", dir, strerror(e));
    }
    rewinddir(d);
    struct dirent *de;
    while ((de = readdir(d))) {
        uint8_t identity[SHA256_LEN];
        if (de->d_name[0] == '.' && strstr(de->d_name, ".tmp")) {
            log_warn("%s/%s: discarded: temporary file of an interrupted write", dir, de->d_name);
            image_unlink(dir_fd, de->d_name);
        } else if (is_image_name(de->d_name, identity)) {
            one(dir_fd, dir, de->d_name, identity, c, &man, n);
        }
    }
    closedir(d);
    manifest_free(&man);
    return image_trim(dir_fd, dir, c, evictions);
}

/* image_dir_fn of the RAM tier: adopt, or discard with the reason. */
static void adopt_entry(int dir_fd, const char *dir, const char *name,
                        const uint8_t identity[SHA256_LEN], struct catalog *c,
                        const struct manifest *man, struct store_counters *n)
{
    char why[512];
    if (adopt_one(dir_fd, name, identity, c, man, n, why, sizeof(why)) < 0) {
        discard(dir_fd, dir, name, why);
        n->discarded++;
        return;
    }
    n->adopted++;
    log_info("%s/%s: adopted", dir, name);
}

/* After the walk: a .weights file no adopted part refers to is removed (not counted: the part
 * that failed was; a blob that failed its own check was counted by adopt_blob). */
void image_sweep_blobs(int dir_fd, const char *dir, struct catalog *c)
{
    image_reap_blobs(dir_fd, dir, c);
    int dfd = dup(dir_fd);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!d) {
        if (dfd >= 0)
            close(dfd);
        return;
    }
    rewinddir(d);
    for (struct dirent *de; (de = readdir(d));) {
        size_t len = strlen(de->d_name);
        uint8_t sha[SHA256_LEN];
        char hex[SHA256_HEX_LEN];
        if (len != 64 + 8 || strcmp(de->d_name + 64, ".weights") != 0)
            continue;
        memcpy(hex, de->d_name, 64);
        hex[64] = '\0';
        if (sha256_parse_hex(hex, sha) == 0 && catalog_blob_find(c, sha))
            continue;
        discard(dir_fd, dir, de->d_name, "weights no adopted image refers to");
    }
    closedir(d);
}

int image_adopt_dir(int dir_fd, const char *dir, struct catalog *c, struct store_counters *n,
                    char *err, size_t errlen)
{
    int rc = image_dir_walk(dir_fd, dir, "model names and LRU order", c, n, adopt_entry,
                            &n->evictions, err, errlen);
    if (rc == 0)
        image_sweep_blobs(dir_fd, dir, c);
    return rc;
}
