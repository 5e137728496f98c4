/*
 * store.h — the shmfaas-store daemon's pieces and how they fit (internal).
 *
 * Threads: the event loop (daemon.c) owns every piece of state below; the three workers
 * (worker.c: one reads and hashes model files and reads images back from the disk tier, one
 * compiles, one writes images to the disk tier) see only the jobs handed to them; the metrics
 * server (metrics_server.c) sees only a text snapshot the loop publishes under a mutex. Nothing else is
 * shared, so nothing else is locked.
 *
 * Guarantees the daemon keeps: image files are mode 0600, owned by the store's user, fully
 * written and sealed (immutable, no writer open) before any fd of them leaves the store; every fd
 * handed to a client is O_RDONLY; the resident total never exceeds the budget (an image is
 * admitted only after room is made for it); leases die with their connection; a connection from
 * a uid that may not use the store, or past its cap, is closed at accept; a refused model is not
 * compiled again within its backoff window; a clean stop leaves no image behind (unless
 * --keep-images), a crash leaves them for re-adoption. The disk tier (--disk-dir) never exceeds
 * --disk-budget; an image read back from it is verified (engine_image_verify + identity) before
 * it is written into the RAM tier, and one that fails is deleted and compiled again; a disk
 * write runs after the attach it follows was answered, on its own thread.
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

#define STORE_MAX_ALLOW   32
#define STORE_MAX_THREADS 32           /* entries of --threads-allowed */
#define STORE_MAX_ONNX    (4ull << 30) /* largest ONNX file the store reads */

/* An inclusive uid range of --allow-uid ("1000" is 1000-1000). */
struct uid_range {
    uid_t first, last;
};

enum huge_pages { HUGE_PAGES_AUTO, HUGE_PAGES_ON, HUGE_PAGES_OFF }; /* --huge-pages */

struct store_config {
    const char *socket_path;
    const char *dir;
    const char *models;
    const char *metrics; /* "HOST:PORT" or NULL */
    uint64_t budget;
    const char *disk_dir;       /* the disk tier, or NULL: none */
    uint64_t disk_budget;       /* its bytes */
    enum catalog_policy policy; /* both tiers */
    int threads;                /* compile thread count when a client says 0 */
    int no_warm_cache;          /* evict an image as soon as its last lease is released */
    int keep_images;            /* a clean stop leaves images and manifest for the next start */
    enum huge_pages huge_pages; /* the image dir as a huge=within_size tmpfs (image_dir_huge) */
    struct uid_range allow[STORE_MAX_ALLOW];
    int n_allow;
    int max_conns_per_uid;                  /* connections one uid may hold at once */
    int threads_allowed[STORE_MAX_THREADS]; /* thread counts an ATTACH may ask for; */
    int n_threads_allowed;                  /* 0: any of 1..max_threads */
    int max_threads;                        /* nproc at start */
    int64_t refusal_backoff_ms;             /* first window a refusal is remembered for */
    int64_t refusal_backoff_max_ms;         /* the doubling stops here */
};

/* Whether an ATTACH may ask for this thread count (the budget holds one image per count). */
int store_threads_allowed(const struct store_config *cfg, int threads);

/* Counters since start; with the catalog they are the whole of STATS. refused: attaches refused
 * for lack of budget; refusals: every refusal answered (fresh or remembered); refusals_remembered:
 * those answered from memory without a compile. */
struct store_counters {
    uint64_t hits, misses, compiles, evictions, refused, adopted, discarded;
    uint64_t compiles_started; /* compile jobs begun, successful or not */
    uint64_t refusals, refusals_remembered, rejected_conns;
    uint64_t unsealed; /* images handed out without the immutable flag (flag unavailable) */
    double compile_s;
    uint64_t prepares; /* PREPARE requests (compile ahead) */
    /* disk tier: hits = RAM misses served by a disk read (no compile); reads = reads begun;
     * dropped = files that failed verification (deleted, compiled again) */
    uint64_t disk_hits, disk_reads, disk_writes, disk_write_failures, disk_evictions, disk_dropped;
    uint64_t disk_adopted;
    double disk_read_s, disk_write_s;
};

/* ---- rate-limited logging of bad clients (daemon.c) ---- */

/* One line per key (a uid and a kind of complaint) per second; the lines in between are counted
 * and the count is reported with the next line let through, so a flood cannot fill the log. */
#define LOGLIMIT_SLOTS 64

struct loglimit {
    struct {
        uint32_t key;
        int kind;
        int64_t last_ms;
        uint64_t suppressed;
    } slot[LOGLIMIT_SLOTS];
};

/* Returns 1 (and *suppressed: lines dropped since the last one) when a line may be logged now. */
int loglimit_pass(struct loglimit *l, uint32_t key, int kind, int64_t now_ms, uint64_t *suppressed);

/* ---- remembered refusals (refusal.c) ---- */

/* An ATTACH refused because the budget cannot hold the image or the model does not compile is
 * remembered per model identity: attaches within the backoff window get the same answer without
 * a compile. A budget refusal is re-checked against the room there is now (the image's size is
 * known), so freeing room ends it early; a repeat after the window doubles the window. */
enum refusal_kind { REFUSAL_BUDGET, REFUSAL_COMPILE };

struct refusal {
    uint8_t identity[SHA256_LEN];
    char idhex[SHA256_HEX_LEN];
    char names[CATALOG_NAMES_LEN];
    enum refusal_kind kind;
    int code;      /* the ERROR code it is answered with: -ENOSPC or -ENOEXEC */
    uint64_t need; /* REFUSAL_BUDGET: image bytes */
    char reason[PROTO_MAX_ERR];
    int64_t until_ms;  /* monotonic: remembered until then */
    int64_t window_ms; /* the window it was last given */
    int64_t forget_ms; /* monotonic: dropped entirely after this (window reset) */
    uint64_t answered; /* attaches answered from memory */
    struct refusal *next;
};

struct refusals {
    struct refusal *list;
    size_t n;
};

#define REFUSALS_MAX 256

/* The refusal of identity still in its window at now_ms, or NULL. */
struct refusal *refusal_active(struct refusals *r, const uint8_t identity[SHA256_LEN],
                               int64_t now_ms);
/* Records (or renews, doubling the window up to max) a refusal; returns it (NULL: no memory). */
struct refusal *refusal_record(struct refusals *r, const uint8_t identity[SHA256_LEN],
                               const char *name, enum refusal_kind kind, int code, uint64_t need,
                               const char *reason, int64_t now_ms, int64_t first_ms,
                               int64_t max_ms);
/* Forgets the refusal of identity (the model was admitted after all). */
void refusal_forget(struct refusals *r, const uint8_t identity[SHA256_LEN]);
void refusals_free(struct refusals *r);

/* ---- background work (worker.c) ---- */

/* Anything that takes long enough to stall the loop runs on a worker thread: reading and hashing
 * a model file or reading an image back from the disk tier (one worker), compiling (another, so
 * a compile never delays a hash), writing an image to the disk tier (a third, so a write never
 * delays an attach). */
enum job_kind { JOB_HASH, JOB_COMPILE, JOB_DISK_READ, JOB_DISK_WRITE };

struct job {
    enum job_kind kind;
    /* set by the loop */
    char path[PATH_MAX]; /* the model file */
    uint64_t conn_id;    /* HASH: the attach waiting for it */
    uint32_t seq;
    int prepare; /* HASH: a PREPARE (answered OK, no lease) rather than an ATTACH */
    int threads;
    char shapes[REF_MAX_SHAPES + 1]; /* input shapes to compile for, canonical text; "" none */
    char name[PROTO_MAX_NAME + 1];
    bool pinned;                    /* HASH: the ref pinned the file's SHA-256 (@sha256:) ... */
    uint8_t pin[SHA256_LEN];        /* ... to this */
    char base_dir[PATH_MAX];        /* COMPILE: where external data files are */
    uint8_t identity[SHA256_LEN];   /* COMPILE, DISK_* */
    int disk_fd;                    /* DISK_*: the disk tier's directory */
    int image_fd;                   /* DISK_WRITE: O_RDONLY fd of the RAM image (the job owns it) */
    int weights_fd;                 /* DISK_WRITE: ... and of its weights blob, or -1 (owned) */
    uint64_t part_len, weights_len; /* DISK_*: the part's and its blob's sizes */
    uint8_t weights_sha[SHA256_LEN]; /* DISK_*: the blob's SHA-256 (weights_len > 0) */
    uint64_t disk_len;              /* DISK_*: the file's size (a plan part's, or the image's) */
    int have_expect;                /* DISK_READ: the store wrote this file in this run ... */
    uint8_t expect_sha[SHA256_LEN]; /* ... and these are the bytes' SHA-256 it wrote */
    /* set by the worker */
    uint8_t *onnx; /* HASH: the bytes read, kept for the compile */
    size_t onnx_len;
    struct stat st;                 /* HASH: the file as it was read */
    uint8_t source_sha[SHA256_LEN]; /* HASH */
    int rc;
    void *image; /* COMPILE, DISK_READ (a plan part read back: its blob in weights_buf) */
    size_t image_len;
    void *weights_buf; /* DISK_READ: the part's weights blob, read and verified, or NULL */
    size_t weights_buf_len;
    int disk_rc; /* DISK_READ: < 0 when the file failed (then HASH fields are filled: compile) */
    uint8_t image_sha[SHA256_LEN]; /* DISK_READ: of the bytes read back; DISK_WRITE: written */
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

/* Every file operation is relative to dir_fd, the store's own directory (opened O_NOFOLLOW and
 * checked: a directory of the store's euid, not group/other-writable).
 *
 * An image is sealed before its fd leaves the store: every byte written (no holes, so no page is
 * charged to whoever touches it first), FS_IMMUTABLE_FL set (nobody without CAP_LINUX_IMMUTABLE,
 * root in a container included, can write, truncate, chmod, rename or unlink it), and then a read
 * lease taken and dropped, which the kernel grants only when no writable open file of it exists
 * anywhere, so no writer opened before the flag survives. Where the flag is unavailable (kernel
 * before 6.0 on tmpfs, no CAP_LINUX_IMMUTABLE) this is logged once and mode 0600, O_RDONLY fds
 * and the store's uid are what protect the image. */

/* Verifies an image in memory (engine_image_verify) and that its content is what identity says;
 * fills tmpl's source_sha and threads (not image_sha: the caller hashes the bytes if needed). */
int image_check(const void *p, size_t len, const void *weights, size_t weights_len,
                const uint8_t identity[SHA256_LEN], struct model *tmpl, char *err, size_t errlen);
/* Evicts (policy order) what exceeds c's budget, unlinking the files; counts in *evictions. */
int image_trim(int dir_fd, const char *dir, struct catalog *c, uint64_t *evictions);

/* Writes <idhex>.plan in dir_fd (temp file O_EXCL|O_NOFOLLOW + renameat, mode 0600), seals it,
 * checks that the sealed file holds exactly image's bytes, and returns an O_RDONLY fd of it;
 * sha = SHA-256 of the bytes (known_sha when the caller hashed them already, else computed). */
int image_write(int dir_fd, const char *idhex, const void *image, size_t len,
                const uint8_t *known_sha, uint8_t sha[SHA256_LEN], int *fd,
                struct store_counters *n, char *err, size_t errlen);
/* Writes the weights blob <hex>.weights the same way (its SHA-256 is its name: the caller knows
 * it from the plan it came with); *fd O_RDONLY. */
int blob_write(int dir_fd, const char *hex, const void *weights, size_t len, int *fd,
               struct store_counters *n, char *err, size_t errlen);
/* A whole image about to enter the RAM tier, as the files it becomes: a plan part plus its
 * weights blob (unless it has no weights: then the image itself). */
struct image_parts {
    const void *image; /* the whole image (the caller's) */
    size_t len;
    void *part; /* the plan part (engine_image_split), or NULL: the image is written whole */
    size_t part_len;
    int part_given; /* part is the caller's (image_parts_given) */
    const void *weights; /* into image */
    size_t weights_len;
    uint8_t weights_sha[SHA256_LEN];
    uint64_t need; /* bytes the tier grows by: the part, and the blob unless c has it */
};
/* Splits image and links m to the blob c already holds for its weights, if any (so that making
 * room cannot free it); p->need is what to make room for. */
int image_parts_prepare(struct catalog *c, struct model *m, const void *image, size_t len,
                        struct image_parts *p, char *err, size_t errlen);
/* The same for a plan part and its blob given apart (read back from the disk tier, verified):
 * p->part is the caller's (image_parts_free leaves it). */
int image_parts_given(struct catalog *c, struct model *m, const void *part, size_t part_len,
                      const void *weights, size_t weights_len, struct image_parts *p, char *err,
                      size_t errlen);
/* Writes the blob (when c lacks it: added to c, linked to m) and the plan part (or the whole
 * image) as m's file: m->fd, m->image_sha. known_sha: the whole image's SHA-256 when the
 * caller has it (used only when the image is written whole). */
int image_parts_write(int dir_fd, struct catalog *c, struct model *m, struct image_parts *p,
                      const uint8_t *known_sha, struct store_counters *n, char *err,
                      size_t errlen);
void image_parts_free(struct image_parts *p);
/* Removes every blob no model of c refers to any more: file, fd, entry. dir is for messages. */
void image_reap_blobs(int dir_fd, const char *dir, struct catalog *c);
/* After a start's walk: reaps, then removes every <hex>.weights file of dir_fd c has no blob
 * for. */
void image_sweep_blobs(int dir_fd, const char *dir, struct catalog *c);
/* Clears the immutable flag of name in dir_fd and unlinks it; ENOENT is success. */
int image_unlink(int dir_fd, const char *name);
/* Re-adopts the images in dir_fd into c (verify + open + identity check + seal), deleting
 * corrupt, foreign and temp files; names and LRU order come from the manifest. Evicts what
 * exceeds the budget. Counts adopted/discarded. dir is for messages. */
int image_adopt_dir(int dir_fd, const char *dir, struct catalog *c, struct store_counters *n,
                    char *err, size_t errlen);
/* One <identity>.plan of an image directory, handed over by image_dir_walk. */
struct manifest;
typedef void image_dir_fn(int dir_fd, const char *dir, const char *name,
                          const uint8_t identity[SHA256_LEN], struct catalog *c,
                          const struct manifest *man, struct store_counters *n);
/* Reads dir_fd's manifest (lost: what is lost without it, for the log), removes temp files of an
 * interrupted write, calls one() for every image file, then trims c to its budget (counting in
 * *evictions). The walk both tiers use at start. */
int image_dir_walk(int dir_fd, const char *dir, const char *lost, struct catalog *c,
                   struct store_counters *n, image_dir_fn *one, uint64_t *evictions, char *err,
                   size_t errlen);
/* Takes what the manifest kept of m (names, LRU order, costs, GDSF state) and admits m to c with
 * bytes. */
void image_restore(struct catalog *c, struct model *m, const struct manifest *man, uint64_t bytes);
/* Removes every image, temp file and the manifest from dir_fd (a clean stop, or `purge`). */
void image_remove_all(int dir_fd, const char *dir);
/* Opens (creating 0700 if missing) an image directory and checks it; flag names it in errors. */
int image_dir_open(const char *dir, const char *flag, char *err, size_t errlen);

/* Huge pages for images (issue 15): the image directory becomes the root of a tmpfs of the
 * store's own, mounted with huge=within_size, so images sit in 2 MiB pages (fewer page-table pages
 * in every instance, fewer TLB misses) whatever the host's shmem_enabled says, short of "deny".
 * Needs CAP_SYS_ADMIN; the mount stays across a crash (the next store adopts it, `purge` unmounts
 * it) and a clean stop unmounts it. A marker file in its root tells it from any other mount. */
int huge_pages_parse(const char *s, enum huge_pages *out);
/* *dir_fd: the open, checked, locked image directory. Mounts the tmpfs there (an empty directory
 * only: files from before stay visible) unless it is one already; *dir_fd then becomes the
 * checked, locked root of the mount. Returns 1 when images get huge pages, 0 when not (auto: one
 * log line says why), negative errno when mode is on and they cannot (err says why). size bounds
 * the mount. */
int image_dir_huge(int *dir_fd, const char *dir, enum huge_pages mode, uint64_t size, char *err,
                   size_t errlen);
/* Whether dir_fd is the root of such a mount. */
int image_dir_is_huge(int dir_fd);
/* Removes the marker and unmounts it (lazily: instances still mapping an image keep its pages
 * until they unmap them); dir is for messages. 0 or negative errno. */
int image_dir_unmount(int dir_fd, const char *dir);

/* ---- the disk tier (disk.c) ---- */

/* <disk-dir>/<idhex>.plan and <sha256>.weights: the same plan parts and blobs as the RAM tier's
 * (a blob counted once, removed with its last part), not sealed (never handed out),
 * written with write_file_atomic_at (O_EXCL|O_NOFOLLOW temp, fsync, renameat, fsync of the
 * directory) and read back with read() into memory, where it is verified before anything maps
 * it; plus <disk-dir>/manifest.json. */

/* Indexes the files of the disk tier into c (by name and size; the content is verified when it
 * is read back), deleting temp files and anything that is not a regular file of the store's
 * user; names, frequencies and priorities from its manifest. Trims to c's budget. */
int disk_adopt_dir(int dir_fd, const char *dir, struct catalog *c, struct store_counters *n,
                   char *err, size_t errlen);
/* Worker side: reads job->identity's file (DISK_READ) into job->image and verifies it: against
 * expect_sha when the store wrote the file in this run (one hash: the bytes must be the very bytes
 * it wrote), else engine_image_verify + the identity check (then source_sha and threads are filled
 * from the image). On failure disk_rc < 0, the buffer is freed (never mapped) and the worker reads
 * and hashes job->path instead, for the compile. */
void disk_read_job(struct job *job);
/* Worker side: writes the image behind job->image_fd to the disk tier (DISK_WRITE). */
void disk_write_job(struct job *job);
/* Unlinks <idhex>.plan of the disk tier. */
int disk_unlink(int dir_fd, const char *idhex);
/* Removes dm from the disk tier: its file, its entry (evicted: catalog_evict, the GDSF clock
 * rises), and its blob's file and entry when it was the last part referring to it. */
void disk_remove(int dir_fd, const char *dir, struct catalog *c, struct model *dm, int evicted);
/* Links the new disk entry dm to the disk tier's copy of blob (a RAM blob, or NULL for a whole
 * image) if the tier has it; else *write_blob = 1 (the write brings it: catalog_blob_add_link
 * once room is made). Returns the bytes the tier grows by: part_len, plus the blob's if new. */
uint64_t disk_link_blob(struct catalog *c, struct model *dm, const struct blob *blob,
                        int *write_blob, uint64_t part_len);

/* Identity = SHA-256(source sha ‖ engine fingerprint ‖ threads as u32 LE [‖ '?' ‖ shapes]):
 * shapes (canonical engine_shapes_format text) only when the image was compiled for given input
 * shapes, so every image compiled without them keeps its identity. */
void model_identity(const uint8_t source_sha[SHA256_LEN], const char *fingerprint, int threads,
                    const char *shapes, uint8_t out[SHA256_LEN]);

/* ---- stats (stats.c) ---- */

/* The STATS (with_totals: also totals, refusals and the disk tier) or LS JSON; malloc'd. disk is
 * NULL without a disk tier. */
char *stats_json(const struct catalog *c, const struct catalog *disk,
                 const struct store_counters *n, const struct refusals *r, int64_t now_ms,
                 int with_totals);
/* Prometheus text exposition; malloc'd. */
char *stats_prometheus(const struct catalog *c, const struct catalog *disk,
                       const struct store_counters *n);

/* ---- metrics server (metrics_server.c) ---- */

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

/* ls, stats, evict MODEL, attach MODEL, prepare MODEL (compile ahead: returns when resident). */
int store_cmd(const char *cmd, const char *socket_path, const char *model, int threads);
/* `shmfaas-store purge`: removes the images (unsealed), temp files and manifest a stopped or
 * crashed store left in dir, and the directory when empty; refused while a store uses dir (it
 * holds an flock on the directory while it runs). */
int store_purge(const char *dir);

#endif
