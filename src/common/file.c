/* Whole-file IO with atomic replace, mkdir -p, monotonic time, smaps_rollup figures. */
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode, char *err,
                      size_t errlen)
{
    char tmp[PATH_MAX];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= sizeof(tmp))
        return seterr(err, errlen, -ENAMETOOLONG, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return seterr(err, errlen, -errno, "%s: %s", tmp, strerror(errno));
    const uint8_t *p = data;
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, p + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return seterr(err, errlen, -e, "%s: write: %s", tmp, strerror(e));
        }
        off += (size_t)n;
    }
    if (fsync(fd) < 0 || close(fd) < 0) {
        int e = errno;
        unlink(tmp);
        return seterr(err, errlen, -e, "%s: fsync: %s", tmp, strerror(e));
    }
    if (rename(tmp, path) < 0) {
        int e = errno;
        unlink(tmp);
        return seterr(err, errlen, -e, "%s: rename: %s", path, strerror(e));
    }
    /* Make the rename itself durable. */
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof(dir), ".");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
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

int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
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
