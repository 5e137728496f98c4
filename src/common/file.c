/* Whole-file IO with atomic replace (never through a symlink; in place for a device or FIFO),
 * mkdir -p, monotonic time, smaps_rollup figures. */
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int read_file(const char *path, size_t max_len, uint8_t **out, size_t *out_len, char *err,
              size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return seterr(err, errlen, -errno, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return seterr(err, errlen, -EINVAL, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_len) {
        close(fd);
        return seterr(err, errlen, -EFBIG, "%s: %lld bytes, more than the limit of %zu", path,
                      (long long)st.st_size, max_len);
    }
    size_t len = (size_t)st.st_size;
    uint8_t *buf = malloc(len + 1);
    if (!buf) {
        close(fd);
        return seterr(err, errlen, -ENOMEM, "%s: out of memory", path);
    }
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            free(buf);
            close(fd);
            return seterr(err, errlen, -e, "%s: read: %s", path, strerror(e));
        }
        got += (size_t)n;
    }
    close(fd);
    buf[len] = 0;
    *out = buf;
    *out_len = len;
    return 0;
}

int fd_write_all(int fd, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EIO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* ---- write_file_atomic: replace a regular file, write a device or FIFO in place, refuse others */

/* A device or FIFO (/dev/null, a pipe someone reads): opened without O_CREAT or O_TRUNC, so
 * nothing is created or replaced, and checked again once open in case the name changed. */
static int write_in_place(int dfd, const char *name, const char *shown, const void *data,
                          size_t len, char *err, size_t errlen)
{
    int fd = openat(dfd, name, O_WRONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return seterr(err, errlen, -errno, "%s: %s", shown, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || !(S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode))) {
        close(fd);
        return seterr(err, errlen, -EAGAIN, "%s: replaced while being opened; nothing written",
                      shown);
    }
    int rc = fd_write_all(fd, data, len);
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc < 0)
        return seterr(err, errlen, rc, "%s: write: %s", shown, strerror(-rc));
    return 0;
}

/* A fresh temp file next to name that nobody else can have opened: O_EXCL|O_NOFOLLOW with an
 * unguessable suffix, so a planted file or symlink under that name is never opened. */
static int create_temp(int dfd, const char *name, mode_t mode, char *tmp, size_t tmplen)
{
    for (int tries = 0; tries < 16; tries++) {
        uint64_t r;
        if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
            return errno ? -errno : -EIO;
        /* Fits NAME_MAX whatever the name's length: ".%.200s" + ".tmp." + 16 hex digits. */
        snprintf(tmp, tmplen, ".%.200s.tmp.%016llx", name, (unsigned long long)r);
        int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        if (fd >= 0 || errno != EEXIST)
            return fd >= 0 ? fd : -errno;
    }
    return -EEXIST;
}

static int replace_regular(int dfd, const char *name, const char *shown, const void *data,
                           size_t len, mode_t mode, char *err, size_t errlen)
{
    char tmp[NAME_MAX + 1];
    int fd = create_temp(dfd, name, mode, tmp, sizeof tmp);
    if (fd < 0)
        return seterr(err, errlen, fd, "%s: cannot create a temporary file beside it: %s", shown,
                      strerror(-fd));
    int rc = fd_write_all(fd, data, len);
    const char *step = "write";
    if (rc == 0 && fsync(fd) < 0) {
        rc = -errno;
        step = "fsync";
    }
    if (close(fd) < 0 && rc == 0) {
        rc = -errno;
        step = "close";
    }
    /* renameat replaces whatever name is now, a symlink included, never what it points to. */
    if (rc == 0 && renameat(dfd, tmp, dfd, name) < 0) {
        rc = -errno;
        step = "rename";
    }
    if (rc < 0) {
        unlinkat(dfd, tmp, 0);
        return seterr(err, errlen, rc, "%s: %s: %s", shown, step, strerror(-rc));
    }
    fsync(dfd); /* make the rename itself durable */
    return 0;
}

static int write_at(int dfd, const char *name, const char *shown, const void *data, size_t len,
                    mode_t mode, char *err, size_t errlen)
{
    if (name[0] == '\0' || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
        return seterr(err, errlen, -EINVAL, "%s: not a file name", shown);
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno != ENOENT)
            return seterr(err, errlen, -errno, "%s: %s", shown, strerror(errno));
        return replace_regular(dfd, name, shown, data, len, mode, err, errlen);
    }
    if (S_ISREG(st.st_mode))
        return replace_regular(dfd, name, shown, data, len, mode, err, errlen);
    if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode))
        return write_in_place(dfd, name, shown, data, len, err, errlen);
    if (S_ISLNK(st.st_mode)) {
        char to[PATH_MAX];
        ssize_t n = readlinkat(dfd, name, to, sizeof to - 1);
        to[n > 0 ? n : 0] = '\0';
        return seterr(err, errlen, -ELOOP,
                      "%s: a symlink (to %s); files are never written through a symlink: name "
                      "the file itself",
                      shown, n > 0 ? to : "?");
    }
    return seterr(err, errlen, S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL,
                  "%s: a %s; only a regular file, a character device or a FIFO is written", shown,
                  S_ISDIR(st.st_mode)    ? "directory"
                  : S_ISBLK(st.st_mode)  ? "block device"
                  : S_ISSOCK(st.st_mode) ? "socket"
                                         : "special file");
}

int write_file_atomic_at(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
                         char *err, size_t errlen)
{
    return write_at(dirfd, name, name, data, len, mode, err, errlen);
}

int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode, char *err,
                      size_t errlen)
{
    char dir[PATH_MAX];
    if ((size_t)snprintf(dir, sizeof dir, "%s", path) >= sizeof dir)
        return seterr(err, errlen, -ENAMETOOLONG, "%s: path too long", path);
    char *slash = strrchr(dir, '/');
    const char *name = path;
    if (slash) {
        name = path + (slash - dir) + 1;
        slash[slash == dir ? 1 : 0] = '\0';
    } else {
        snprintf(dir, sizeof dir, ".");
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return seterr(err, errlen, -errno, "%s: directory %s: %s", path, dir, strerror(errno));
    int rc = write_at(dfd, name, path, data, len, mode, err, errlen);
    close(dfd);
    return rc;
}

int mkdir_p(const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    if ((size_t)snprintf(buf, sizeof(buf), "%s", path) >= sizeof(buf))
        return -ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, mode) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

void signals_block_stop(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t now_ms(void)
{
    return now_ns() / 1000000;
}

struct timespec mono_timespec(int64_t at_ns)
{
    return (struct timespec){.tv_sec = (time_t)(at_ns / 1000000000LL),
                             .tv_nsec = (long)(at_ns % 1000000000LL)};
}

double now_s(void)
{
    return (double)now_ns() / 1e9;
}

int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

int proc_mem_read(pid_t pid, struct proc_mem *out)
{
    static const struct {
        const char *key;
        size_t offset;
    } fields[] = {
        {"Rss:", offsetof(struct proc_mem, rss)},
        {"Pss:", offsetof(struct proc_mem, pss)},
        {"Shared_Clean:", offsetof(struct proc_mem, shared_clean)},
        {"Shared_Dirty:", offsetof(struct proc_mem, shared_dirty)},
        {"Private_Clean:", offsetof(struct proc_mem, private_clean)},
        {"Private_Dirty:", offsetof(struct proc_mem, private_dirty)},
        {"Anonymous:", offsetof(struct proc_mem, anonymous)},
    };
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    memset(out, 0, sizeof(*out));
    char line[256];
    while (fgets(line, sizeof(line), f)) {
        for (size_t i = 0; i < ARRAY_LEN(fields); i++) {
            size_t n = strlen(fields[i].key);
            if (strncmp(line, fields[i].key, n) == 0) {
                unsigned long long kb = strtoull(line + n, NULL, 10);
                *(uint64_t *)((char *)out + fields[i].offset) = kb * 1024;
            }
        }
    }
    fclose(f);
    return 0;
}

ssize_t send_with_fds(int sock, const void *buf, size_t len, const int *fds, int nfds)
{
    union {
        char space[CMSG_SPACE(SEND_MAX_FDS * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds < 0 || nfds > SEND_MAX_FDS)
        return -EINVAL;
    if (nfds > 0) {
        memset(&ctl, 0, sizeof(ctl));
        mh.msg_control = ctl.space;
        mh.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
    }
    ssize_t n;
    do
        n = sendmsg(sock, &mh, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}
