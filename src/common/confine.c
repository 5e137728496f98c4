/*
 * Confined opens: a path someone else named → an fd of a regular file inside a directory, or a
 * refusal saying how the path would have left it (rules and the two implementations: confine.h).
 */
#include "common/confine.h"

#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define WALK_DEPTH 64 /* directories below dir a walk may hold open */
#define WALK_LINKS 40 /* symlinks per lookup, as the kernel's limit */

/* What both resolvers start from. */
struct target {
    int dirfd;               /* O_PATH of dir's realpath */
    char dir_real[PATH_MAX]; /* realpath(dir) */
    const char *rel;         /* the path to resolve beneath dir, no leading '/' */
    const char *what;        /* "models" */
    char q[128];             /* the caller's path, printable, for messages */
};

static const char *kind_of(mode_t m)
{
    return S_ISDIR(m)    ? "a directory"
           : S_ISFIFO(m) ? "a FIFO"
           : S_ISCHR(m)  ? "a character device"
           : S_ISBLK(m)  ? "a block device"
           : S_ISSOCK(m) ? "a socket"
                         : "not a regular file";
}

/* The rest of p after prefix (a directory path) and the '/'s that follow it, or NULL when p is not
 * under prefix. A prefix of "/" takes everything. */
static const char *under(const char *p, const char *prefix)
{
    size_t n = strlen(prefix);
    while (n > 1 && prefix[n - 1] == '/')
        n--;
    if (n == 1 && prefix[0] == '/')
        n = 0;
    else if (strncmp(p, prefix, n) != 0 || (p[n] != '/' && p[n] != '\0'))
        return NULL;
    p += n;
    while (*p == '/')
        p++;
    return p;
}

static int prepare(const char *dir, const char *what, const char *path, int flags, struct target *t,
                   char *err, size_t errlen)
{
    t->dirfd = -1;
    t->what = what;
    str_printable(path ? path : "", path ? strlen(path) : 0, t->q, sizeof(t->q));
    if (flags & ~(O_ACCMODE | O_CLOEXEC))
        return seterr(err, errlen, -EINVAL, "confine_open: only an access mode may be given");
    if (!path || !*path)
        return seterr(err, errlen, -EINVAL, "empty path: name a file in the %s directory", what);
    if (!realpath(dir, t->dir_real))
        return seterr(err, errlen, -errno, "the %s directory %s: %s", what, dir, strerror(errno));
    t->rel = path;
    if (path[0] == '/') {
        t->rel = under(path, t->dir_real);
        if (!t->rel && dir[0] == '/')
            t->rel = under(path, dir);
        if (!t->rel)
            return seterr(err, errlen, -EPERM, "%s is outside the %s directory %s", t->q, what,
                          t->dir_real);
        if (!*t->rel)
            return seterr(err, errlen, -EPERM,
                          "%s names the %s directory itself, not a file inside it", t->q, what);
    }
    t->dirfd = open(t->dir_real, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (t->dirfd < 0)
        return seterr(err, errlen, -errno, "the %s directory %s: %s", what, t->dir_real,
                      strerror(errno));
    return 0;
}

/* fd (O_PATH) is the resolved file: refuse anything but a regular file, then open it for real
 * through reopen() (non-blocking: a FIFO swapped in cannot hang us) and check that it is still the
 * same inode. */
static int finish(const struct target *t, int fd, int flags, int (*reopen)(const void *, int),
                  const void *arg, char *err, size_t errlen)
{
    struct stat st, st2;
    if (fstat(fd, &st) < 0)
        return seterr(err, errlen, -errno, "%s: %s", t->q, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return seterr(err, errlen, -EINVAL, "%s in the %s directory is %s, not a regular file",
                      t->q, t->what, kind_of(st.st_mode));
    int f = reopen(arg, flags | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (f < 0)
        return seterr(err, errlen, -errno, "%s: %s", t->q, strerror(errno));
    if (fstat(f, &st2) < 0 || st2.st_dev != st.st_dev || st2.st_ino != st.st_ino) {
        close(f);
        return seterr(err, errlen, -EAGAIN, "%s changed while it was being opened", t->q);
    }
    int fl = fcntl(f, F_GETFL);
    if (fl >= 0)
        fcntl(f, F_SETFL, fl & ~O_NONBLOCK);
    return f;
}

/* ---- the user-space walk ---- */

struct walk {
    const struct target *t;
    int fd[WALK_DEPTH + 1]; /* fd[0] = t->dirfd, fd[i] = the i-th directory below it */
    size_t off[WALK_DEPTH + 1];
    int depth;
    char rel[PATH_MAX]; /* "/a/b": the canonical path below dir reached so far */
    size_t rlen;
};

static void walk_pop_to(struct walk *w, int depth)
{
    while (w->depth > depth) {
        close(w->fd[w->depth]);
        w->rlen = w->off[w->depth--];
    }
    w->rel[w->rlen] = '\0';
}

static int walk_append(struct walk *w, const char *comp)
{
    size_t n = strlen(comp);
    if (w->rlen + 1 + n >= sizeof(w->rel))
        return -ENAMETOOLONG;
    w->rel[w->rlen++] = '/';
    memcpy(w->rel + w->rlen, comp, n + 1);
    w->rlen += n;
    return 0;
}

/* Replaces the lookup's remaining text (rest, inside todo) by link + "/" + rest. An absolute link
 * restarts at dir, if it names a place under dir's realpath. */
static int walk_expand(struct walk *w, const char *comp, const char *link, char *todo,
                       size_t todolen, const char **rest, char *err, size_t errlen)
{
    char tmp[2 * PATH_MAX], ql[128], qc[64];
    const char *from = link;
    if (link[0] == '/') {
        from = under(link, w->t->dir_real);
        if (!from)
            return seterr(err, errlen, -EPERM,
                          "%s resolves outside the %s directory %s: symlink %s -> %s", w->t->q,
                          w->t->what, w->t->dir_real, str_printable(comp, strlen(comp), qc, 64),
                          str_printable(link, strlen(link), ql, sizeof(ql)));
        walk_pop_to(w, 0);
    }
    const char *r = *rest;
    bool slash = *r || r[-1] == '/'; /* more to come, or the link was named with a trailing '/' */
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s%s%s", from, slash ? "/" : "", r) >= todolen)
        return seterr(err, errlen, -ENAMETOOLONG, "%s: path too long after symlinks", w->t->q);
    memcpy(todo, tmp, strlen(tmp) + 1);
    *rest = todo;
    return 0;
}

/* The next component of *p into comp; *p moves past it and its '/'s. 0 when there is none. */
static int next_component(const char **p, char comp[NAME_MAX + 1])
{
    const char *s = *p;
    while (*s == '/')
        s++;
    if (!*s)
        return 0;
    const char *e = strchrnul(s, '/');
    if ((size_t)(e - s) > NAME_MAX)
        return -ENAMETOOLONG;
    memcpy(comp, s, (size_t)(e - s));
    comp[e - s] = '\0';
    while (*e == '/')
        e++;
    *p = e;
    return 1;
}

struct reopen_at {
    int dirfd;
    const char *name;
};

static int reopen_at(const void *arg, int flags)
{
    const struct reopen_at *r = arg;
    return openat(r->dirfd, r->name, flags | O_NOFOLLOW); /* the walk expanded every link */
}

/* One component: a directory to enter, a symlink to expand, or the final file (returned fd). */
static int walk_step(struct walk *w, const char *comp, bool last, int flags, char *todo,
                     size_t todolen, const char **rest, int *links, char *err, size_t errlen)
{
    const struct target *t = w->t;
    if (strcmp(comp, ".") == 0)
        return 0;
    if (strcmp(comp, "..") == 0) {
        if (w->depth == 0)
            return seterr(err, errlen, -EPERM, "%s: '..' leads outside the %s directory %s", t->q,
                          t->what, t->dir_real);
        walk_pop_to(w, w->depth - 1);
        return 0;
    }
    int fd = openat(w->fd[w->depth], comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return seterr(err, errlen, e == ENOTDIR ? -ENOENT : -e, "%s: %s in the %s directory %s",
                      t->q, strerror(e), t->what, t->dir_real);
    }
    if (S_ISLNK(st.st_mode)) {
        char link[PATH_MAX];
        ssize_t n = readlinkat(fd, "", link, sizeof(link) - 1);
        int e = errno;
        close(fd);
        if (n < 0)
            return seterr(err, errlen, -e, "%s: readlink: %s", t->q, strerror(e));
        if (++*links > WALK_LINKS)
            return seterr(err, errlen, -ELOOP, "%s: more than %d symlinks", t->q, WALK_LINKS);
        link[n] = '\0';
        return walk_expand(w, comp, link, todo, todolen, rest, err, errlen);
    }
    if (S_ISDIR(st.st_mode) && !last) {
        if (w->depth == WALK_DEPTH || walk_append(w, comp) < 0) {
            close(fd);
            return seterr(err, errlen, -ENAMETOOLONG, "%s: too deep", t->q);
        }
        w->off[w->depth + 1] = w->rlen - strlen(comp) - 1;
        w->fd[++w->depth] = fd;
        return 0;
    }
    if (!last) {
        close(fd);
        return seterr(err, errlen, -ENOENT, "%s: %s is not a directory", t->q, comp);
    }
    struct reopen_at r = {w->fd[w->depth], comp};
    int f = finish(t, fd, flags, reopen_at, &r, err, errlen);
    close(fd);
    if (f >= 0 && walk_append(w, comp) < 0) {
        close(f);
        return seterr(err, errlen, -ENAMETOOLONG, "%s: path too long", t->q);
    }
    return f < 0 ? f : f + 1; /* > 0: done (fd + 1, so that fd 0 is not "go on") */
}

static int walk(const struct target *t, int flags, char *real, size_t reallen, char *err,
                size_t errlen)
{
    struct walk w = {.t = t, .fd = {t->dirfd}};
    char todo[2 * PATH_MAX], comp[NAME_MAX + 1];
    const char *rest = todo;
    int links = 0, rc;

    if ((size_t)snprintf(todo, sizeof(todo), "%s", t->rel) >= sizeof(todo))
        return seterr(err, errlen, -ENAMETOOLONG, "%s: path too long", t->q);
    for (;;) {
        rc = next_component(&rest, comp);
        if (rc == 0) { /* nothing left: the path named a directory */
            rc = w.depth == 0 ? seterr(err, errlen, -EPERM,
                                       "%s names the %s directory itself, not a file inside it",
                                       t->q, t->what)
                              : seterr(err, errlen, -EINVAL,
                                       "%s in the %s directory is a directory, not a regular file",
                                       t->q, t->what);
            break;
        }
        if (rc < 0) {
            rc = seterr(err, errlen, rc, "%s: a component is longer than %d bytes", t->q, NAME_MAX);
            break;
        }
        bool last = !*rest && rest[-1] != '/'; /* "x/" names a directory, as in the kernel */
        rc = walk_step(&w, comp, last, flags, todo, sizeof(todo), &rest, &links, err, errlen);
        if (rc != 0)
            break;
    }
    if (rc > 0 && real &&
        (size_t)snprintf(real, reallen, "%s%s", strcmp(t->dir_real, "/") ? t->dir_real : "",
                         w.rel) >= reallen) {
        close(rc - 1);
        rc = seterr(err, errlen, -ENAMETOOLONG, "%s: path too long", t->q);
    }
    walk_pop_to(&w, 0);
    return rc > 0 ? rc - 1 : rc;
}

/* ---- openat2 ---- */

struct reopen2 {
    int dirfd;
    const char *rel;
};

static int openat2_beneath(int dirfd, const char *rel, int flags)
{
    struct open_how how = {.flags = (uint64_t)flags,
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
    return (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
}

static int reopen2(const void *arg, int flags)
{
    const struct reopen2 *r = arg;
    return openat2_beneath(r->dirfd, r->rel, flags);
}

/* The canonical path of fd from /proc, if it lies under dir_real; -1 otherwise. */
static int proc_path(int fd, const char *dir_real, char *real, size_t reallen)
{
    char link[64], buf[PATH_MAX];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, buf, sizeof(buf) - 1);
    if (n <= 0 || (size_t)n >= reallen)
        return -1;
    buf[n] = '\0';
    const char *rest = under(buf, dir_real);
    if (!rest || !*rest)
        return -1;
    memcpy(real, buf, (size_t)n + 1);
    return 0;
}

/* 1 when openat2 cannot give the answer and the walk must: no openat2, a flag it does not know,
 * an absolute symlink or an escape (the walk says which), a rename race. */
static int needs_walk(int e)
{
    return e == ENOSYS || e == EINVAL || e == E2BIG || e == EXDEV || e == EAGAIN;
}

static int open_beneath(const struct target *t, int flags, char *real, size_t reallen, char *err,
                        size_t errlen)
{
    int fd = openat2_beneath(t->dirfd, t->rel, O_PATH | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (needs_walk(e))
            return walk(t, flags, real, reallen, err, errlen);
        if (e == ELOOP)
            return seterr(err, errlen, -ELOOP, "%s: too many symlinks, or a /proc magic link",
                          t->q);
        return seterr(err, errlen, e == ENOTDIR ? -ENOENT : -e, "%s: %s in the %s directory %s",
                      t->q, strerror(e), t->what, t->dir_real);
    }
    struct reopen2 r = {t->dirfd, t->rel};
    int f = finish(t, fd, flags, reopen2, &r, err, errlen);
    close(fd);
    if (f >= 0 && real && proc_path(f, t->dir_real, real, reallen) < 0) {
        close(f); /* no /proc: the walk knows the path it took */
        return walk(t, flags, real, reallen, err, errlen);
    }
    return f;
}

int confine_open(const char *dir, const char *what, const char *path, int flags, char *real,
                 size_t reallen, char *err, size_t errlen)
{
    struct target t;
    int rc = prepare(dir, what, path, flags, &t, err, errlen);
    if (rc == 0)
        rc = open_beneath(&t, flags, real, reallen, err, errlen);
    if (t.dirfd >= 0)
        close(t.dirfd);
    return rc;
}

int confine_walk_open(const char *dir, const char *what, const char *path, int flags, char *real,
                      size_t reallen, char *err, size_t errlen)
{
    struct target t;
    int rc = prepare(dir, what, path, flags, &t, err, errlen);
    if (rc == 0)
        rc = walk(&t, flags, real, reallen, err, errlen);
    if (t.dirfd >= 0)
        close(t.dirfd);
    return rc;
}

int confine_read_file(const char *dir, const char *what, const char *path, size_t max_len,
                      uint8_t **out, size_t *out_len, char *err, size_t errlen)
{
    struct stat st;
    int fd = confine_open(dir, what, path, O_RDONLY, NULL, 0, err, errlen);
    if (fd < 0)
        return fd;
    int rc = 0;
    uint8_t *buf = NULL;
    size_t len = 0;
    if (fstat(fd, &st) < 0)
        rc = seterr(err, errlen, -errno, "%s: %s", path, strerror(errno));
    else if ((uint64_t)st.st_size > max_len)
        rc = seterr(err, errlen, -EFBIG, "%s: %lld bytes, more than %zu", path,
                    (long long)st.st_size, max_len);
    else if (!(buf = malloc((size_t)st.st_size + 1)))
        rc = seterr(err, errlen, -ENOMEM, "%s: out of memory", path);
    while (rc == 0 && len < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = seterr(err, errlen, n < 0 ? -errno : -EIO, "%s: %s", path,
                        n < 0 ? strerror(errno) : "shorter than it was");
            break;
        }
        len += (size_t)n;
    }
    close(fd);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return 0;
}
