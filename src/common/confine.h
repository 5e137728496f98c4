/*
 * confine.h — opening a file that someone else named, only if it lies inside a directory the
 * operator configured (the models directory): one resolver for the gateway (deploy checks), the
 * store (model files) and the instance (--private models, labels files).
 *
 * Guarantees: confine_open returns an fd of a regular file (never a directory, FIFO, device or
 * socket, and a FIFO is never opened for real, so it cannot block) that was reached from dir
 * without leaving it:
 *   - a relative path is resolved beneath dir; an absolute one must start with dir (as given, or
 *     its realpath) and is then resolved beneath it the same way;
 *   - ".." never climbs above dir (it is refused when it would);
 *   - symlinks are followed only while they stay inside: a relative target is resolved from the
 *     link's directory, an absolute one must name a place under dir's realpath; /proc "magic"
 *     links are never followed; at most 40 links per lookup;
 *   - errors: -EPERM when the path leaves dir (or names dir itself), -ENOENT missing, -EINVAL
 *     not a regular file, -ELOOP too many links, -ENAMETOOLONG; the message says which, with
 *     untrusted bytes made printable.
 * How: openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) where the kernel has it (Linux 5.6 and
 * later), which does the whole lookup atomically. RESOLVE_BENEATH refuses every absolute symlink
 * (EXDEV), even one that points back inside, and an older kernel has no openat2 (ENOSYS); in both
 * cases confine_walk_open resolves the path in user space by the same rules: one component at a
 * time with openat(O_PATH | O_NOFOLLOW) relative to the directory fd reached so far, symlinks read
 * with readlinkat and expanded, ".." popping the walk's own stack of directory fds (it never opens
 * ".."), so a concurrent rename cannot move the walk out of dir. The final file is opened twice:
 * O_PATH to check it is a regular file, then the same lookup with the caller's flags | O_NONBLOCK
 * (so a FIFO swapped in meanwhile cannot block), and the two must be the same inode.
 */
#ifndef SHMFAAS_COMMON_CONFINE_H
#define SHMFAAS_COMMON_CONFINE_H

#include <stddef.h>
#include <stdint.h>

/* Opens path inside dir with flags (an access mode: O_RDONLY; O_CREAT/O_TRUNC are refused).
 * what names dir in messages ("models" → "outside the models directory DIR"). If real is not
 * NULL it receives the file's canonical absolute path (dir's realpath + the resolved rest).
 * Returns the fd (O_CLOEXEC, blocking) or a negative errno. */
int confine_open(const char *dir, const char *what, const char *path, int flags, char *real,
                 size_t reallen, char *err, size_t errlen);

/* The same resolution without trying openat2 first (the fallback; tests call it directly). */
int confine_walk_open(const char *dir, const char *what, const char *path, int flags, char *real,
                      size_t reallen, char *err, size_t errlen);

/* confine_open + read the whole file (at most max_len bytes) into a malloc'd buffer, NUL-terminated
 * one byte past len. */
int confine_read_file(const char *dir, const char *what, const char *path, size_t max_len,
                      uint8_t **out, size_t *out_len, char *err, size_t errlen);

#endif
