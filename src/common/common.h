/*
 * common.h — the small pieces every shmfaas program shares.
 *
 * Owns: logging, the error convention, the growable byte buffer, SHA-256 (OpenSSL), parsing of
 * sizes and durations as users write them (Kubernetes quantities, Go durations), whole-file IO with
 * atomic replace, monotonic and wall time, and per-process memory figures from
 * /proc/PID/smaps_rollup.
 *
 * Error convention (DESIGN.md): functions return 0 or a negative errno-style code and, where a
 * human will read it, fill a caller-provided message buffer. seterr() does both in one line:
 *     return seterr(err, errlen, -EINVAL, "node %s: unsupported op %s", name, op);
 */
#ifndef SHMFAAS_COMMON_H
#define SHMFAAS_COMMON_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define ARRAY_LEN(a)   (sizeof(a) / sizeof((a)[0]))
#define ALIGN_UP(x, a) (((x) + ((a)-1)) & ~((uint64_t)(a)-1))

/* ---- logging: one line per event on stderr, "level func: message" ---- */
enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "debug|info|warn|error|off"; returns -EINVAL on anything else. */
int log_parse_level(const char *s, enum log_level *out);
void log_msg(enum log_level level, const char *func, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(...) log_msg(LOG_DEBUG, __func__, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __func__, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __func__, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __func__, __VA_ARGS__)

/* ---- errors ---- */
/* Formats a message into err (if err != NULL and errlen > 0) and returns code. */
int seterr(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Untrusted bytes for a message (a JSON error body must be valid UTF-8): s[0..n) into buf with
 * printable ASCII kept and every other byte as '?', cut with "..." to fit buflen; returns buf. */
const char *str_printable(const char *s, size_t n, char *buf, size_t buflen);

/* snprintf that says whether it fit: 0, or -ENAMETOOLONG when out was too short (out is then
 * truncated, still NUL-terminated) or the format failed. */
int str_fmt(char *out, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- the growable byte buffer ----
 * data[0..len) is what was appended, always followed by a NUL once anything was (text can be used
 * as a C string). Capacity doubles. On an allocation failure the buffer is marked failed, keeps
 * what it had, and every later append returns -ENOMEM and does nothing: a writer of many pieces
 * checks `failed` once at the end. A zeroed struct is an empty buffer; buf_free() makes it one
 * again. Bounds are the caller's: check len before appending what an outsider sends. */
struct buf {
    char *data;
    size_t len, cap;
    bool failed;
};
/* Room for n more bytes plus the NUL: 0 or -ENOMEM. */
int buf_reserve(struct buf *b, size_t n);
int buf_append(struct buf *b, const void *data, size_t n);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_free(struct buf *b);

/* ---- SHA-256 ---- */
#define SHA256_LEN     32
#define SHA256_HEX_LEN 65 /* 64 hex digits + NUL */

void sha256(const void *data, size_t len, uint8_t out[SHA256_LEN]);
/* The SHA-256 of what fd reads from its offset to the end, in 1 MiB chunks: 0 or -errno. */
int sha256_fd(int fd, uint8_t out[SHA256_LEN]);
void sha256_hex(const uint8_t digest[SHA256_LEN], char out[SHA256_HEX_LEN]);
/* Parses 64 hex digits; returns -EINVAL otherwise. */
int sha256_parse_hex(const char *hex, uint8_t out[SHA256_LEN]);

/* ---- sizes and durations ---- */
/* Kubernetes quantities and friends: "512Mi", "1G", "250M", "2GiB", "1.5Gi", "4096", "64k".
 * Decimal suffixes k/K, M, G, T (x1000); binary Ki, Mi, Gi, Ti (also KiB, MiB, GiB, TiB). */
int parse_size(const char *s, uint64_t *out);
/* Go durations ("30s", "5m", "1m30s", "250ms", "1h") or a bare number of seconds ("30", "0.5"). */
int parse_duration_ms(const char *s, int64_t *out_ms);
/* "98.0 MiB" style, for messages and tables. */
const char *format_size(uint64_t bytes, char *buf, size_t len);

/* ---- files ---- */
/* Reads a whole regular file of at most max_len bytes into a malloc'd buffer (NUL-terminated
 * one byte past len, for text). */
int read_file(const char *path, size_t max_len, uint8_t **out, size_t *out_len, char *err,
              size_t errlen);
/* Writes a whole file without ever replacing or following what path names, by what path's last
 * component is now (lstat):
 *  - missing or a regular file: a new temp file ".NAME.tmp.<random>" is created beside it,
 *    relative to an fd of its directory, O_CREAT|O_EXCL|O_NOFOLLOW with mode (less the umask),
 *    written, fsync'd and renamed over NAME; the directory is fsync'd. A reader sees the old file
 *    or the new one, never part of one; the new file has mode, not the old file's.
 *  - a character device or FIFO (/dev/null, a pipe): written in place, opened O_WRONLY|O_NOFOLLOW
 *    without O_CREAT or O_TRUNC; it stays what it was; mode is unused. A FIFO blocks until a
 *    reader opens it, as a shell redirect does.
 *  - a symlink: -ELOOP naming its target; neither the link nor its target is touched (the
 *    caller names the file itself; "-" for stdout is the caller's business, e.g. shmfaas-run).
 *  - a directory (-EISDIR), a block device or a socket (-EINVAL): refused, nothing written.
 * Directories on the way to the last component are resolved as open(2) does: callers writing
 * where others can write use write_file_atomic_at() with a directory fd they checked. */
int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode, char *err,
                      size_t errlen);
/* The same, for NAME (one component, no '/') in the directory open as dirfd (O_RDONLY, so that
 * it can be fsync'd). */
int write_file_atomic_at(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
                         char *err, size_t errlen);
/* write(2) until all of data is written; 0 or -errno. */
int fd_write_all(int fd, const void *data, size_t len);
/* Like mkdir -p with the given mode for directories it creates. */
int mkdir_p(const char *path, mode_t mode);
/* Sends len bytes of buf on a unix socket with nfds (0..SEND_MAX_FDS) descriptors as SCM_RIGHTS,
 * in one sendmsg (retried on EINTR, MSG_NOSIGNAL): the bytes sent, or -errno (-EINVAL for an
 * fd count out of range). */
#define SEND_MAX_FDS 8
ssize_t send_with_fds(int sock, const void *buf, size_t len, const int *fds, int nfds);

/* ---- signals ---- */
/* The daemons' stop signals: fills set with SIGTERM and SIGINT and blocks them in the calling
 * thread (call before starting threads: they inherit the mask, so sigwait/signalfd get them),
 * and ignores SIGPIPE (a peer that went away is an error return, not a death). */
void signals_block_stop(sigset_t *set);

/* ---- time ---- */
/* Durations and deadlines use the monotonic clock (CLOCK_MONOTONIC, any origin); only times
 * that are stored or shown use the wall clock. */
int64_t now_ns(void);  /* CLOCK_MONOTONIC, ns */
int64_t now_ms(void);  /* CLOCK_MONOTONIC, ms */
double now_s(void);    /* CLOCK_MONOTONIC, s */
int64_t wall_ms(void); /* CLOCK_REALTIME, ms since the epoch */
/* The CLOCK_MONOTONIC instant at_ns (a now_ns() value) as the absolute timespec that
 * pthread_cond_timedwait wants of a cond made with pthread_condattr_setclock(CLOCK_MONOTONIC). */
struct timespec mono_timespec(int64_t at_ns);

/* ---- memory figures of a process (bytes), from /proc/PID/smaps_rollup ---- */
struct proc_mem {
    uint64_t rss;
    uint64_t pss;
    uint64_t shared_clean, shared_dirty;
    uint64_t private_clean, private_dirty;
    uint64_t anonymous;
};
int proc_mem_read(pid_t pid, struct proc_mem *out);
/* Private_Clean + Private_Dirty: what this process alone costs. */
static inline uint64_t proc_mem_uss(const struct proc_mem *m)
{
    return m->private_clean + m->private_dirty;
}

#endif
