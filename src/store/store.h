/*
 * store.h — the shmfaas-store daemon's pieces and how they fit (internal).
 *
 * Threads: the event loop (daemon.c) owns every piece of state below; the two workers (worker.c:
 * one reads and hashes model files, one compiles) see only the jobs handed to them; the metrics
 * server (metrics.c) sees only a text snapshot the loop publishes under a mutex. Nothing else is
 * shared, so nothing else is locked.
 *
 * Guarantees the daemon keeps: image files are mode 0600 and owned by the store's user; every fd
 * handed to a client is O_RDONLY; the resident total never exceeds the budget (an image is
 * admitted only after room is made for it); leases die with their connection.
 */
#ifndef SHMFAAS_STORE_STORE_H
#define SHMFAAS_STORE_STORE_H

#include "store/catalog.h"
#include "store/proto.h"
#include "store/ref.h"

#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#define STORE_MAX_ALLOW 32
#define STORE_MAX_ONNX  (4ull << 30) /* largest ONNX file the store reads */

struct store_config {
    const char *socket_path;
    const char *dir;
    const char *models;
    const char *metrics; /* "HOST:PORT" or NULL */
    uint64_t budget;
    int threads;       /* compile thread count when a client says 0 */
    int no_warm_cache; /* evict an image as soon as its last lease is released */
    uid_t allow[STORE_MAX_ALLOW];
    int n_allow;
};

/* Counters since start; with the catalog they are the whole of STATS. */
struct store_counters {
    uint64_t hits, misses, compiles, evictions, refused, adopted, discarded;
    double compile_s;
};

/* ---- background work (worker.c) ---- */

/* Anything that takes long enough to stall the loop runs on a worker thread: reading and hashing
 * a model file (one worker), compiling it (another, so a compile never delays a hash). */
enum job_kind { JOB_HASH, JOB_COMPILE };

struct job {
    enum job_kind kind;
    /* set by the loop */
    char path[PATH_MAX]; /* the model file */
    uint64_t conn_id;    /* HASH: the attach waiting for it */
    uint32_t seq;
    int threads;
    char shapes[REF_MAX_SHAPES + 1]; /* input shapes to compile for, canonical text; "" none */
    char name[PROTO_MAX_NAME + 1];
    char base_dir[PATH_MAX];      /* COMPILE: where external data files are */
    uint8_t identity[SHA256_LEN]; /* COMPILE */
    /* set by the worker */
    uint8_t *onnx; /* HASH: the bytes read, kept for the compile */
    size_t onnx_len;
    struct stat st;                 /* HASH: the file as it was read */
    uint8_t source_sha[SHA256_LEN]; /* HASH */
    int rc;
    void *image; /* COMPILE */
    size_t image_len;
    double seconds;
    char err[PROTO_MAX_ERR];
    struct job *next;
};

struct worker {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct job *todo, *done;
    int stop;
    int notify[2]; /* pipe: the worker writes a byte per finished job */
    int started;
};

int worker_start(struct worker *w, char *err, size_t errlen);
void worker_submit(struct worker *w, struct job *job);
/* Takes the finished jobs (oldest first); drains the notify pipe. */
struct job *worker_take_done(struct worker *w);
/* Finishes the job in progress, then stops; frees queued jobs. */
void worker_stop(struct worker *w);
void job_free(struct job *job);

/* ---- image files (images.c) ---- */

/* Writes <dir>/<idhex>.plan (temp file + rename, mode 0600), hashes it, and returns an O_RDONLY
 * fd of it. */
int image_write(const char *dir, const char *idhex, const void *image, size_t len,
                uint8_t sha[SHA256_LEN], int *fd, char *err, size_t errlen);
int image_path(const char *dir, const char *idhex, char *out, size_t len);
/* Re-adopts the images in dir into c (verify + open + identity check), deleting corrupt,
 * foreign and temp files; names and LRU order come from the manifest. Evicts what exceeds the
 * budget. Counts adopted/discarded. */
int image_adopt_dir(const char *dir, struct catalog *c, struct store_counters *n, char *err,
                    size_t errlen);

/* Identity = SHA-256(source sha ‖ engine fingerprint ‖ threads as u32 LE [‖ '?' ‖ shapes]):
 * shapes (canonical engine_shapes_format text) only when the image was compiled for given input
 * shapes, so every image compiled without them keeps its identity. */
void model_identity(const uint8_t source_sha[SHA256_LEN], const char *fingerprint, int threads,
                    const char *shapes, uint8_t out[SHA256_LEN]);

/* ---- stats (stats.c) ---- */

/* The STATS (with_totals) or LS JSON; malloc'd. */
char *stats_json(const struct catalog *c, const struct store_counters *n, int with_totals);
/* Prometheus text exposition; malloc'd. */
char *stats_prometheus(const struct catalog *c, const struct store_counters *n);

/* ---- metrics server (metrics.c) ---- */

struct metrics;
/* Serves GET /metrics on addr ("127.0.0.1:9101", ":9101" = loopback, "0.0.0.0:9101"). */
int metrics_start(const char *addr, struct metrics **out, char *err, size_t errlen);
/* Replaces the text served (takes ownership of text). */
void metrics_publish(struct metrics *m, char *text);
void metrics_stop(struct metrics *m);

/* ---- the daemon (daemon.c) ---- */

/* Runs until SIGTERM/SIGINT; returns 0 on a clean stop. */
int store_run(const struct store_config *cfg);

/* ---- operator subcommands (cmd.c) ---- */

int store_cmd(const char *cmd, const char *socket_path, const char *model, int threads);

#endif
