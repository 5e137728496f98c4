/*
 * The shmfaas-store event loop: one poll() over the signalfd, the listening socket, the three
 * workers' pipes and every client connection. Message handlers are a table by type. A handler
 * either replies at once or hands the work to a worker: an ATTACH whose file hash is not cached
 * goes to the hasher, and one of a model that is not in RAM parks a waiter that the load answers:
 * a read back from the disk tier when it holds the image (verified; a file that fails is deleted
 * and the model compiled instead), else a compile. Once the waiters have their answer, a compiled
 * image is written to the disk tier on the writer thread. A PREPARE loads the same way and is
 * answered OK, holding no lease (compile ahead). A client that sends anything malformed, or does
 * not read its replies, loses its connection and with it its leases; nobody else notices.
 *
 * Admission happens at accept: a uid that is not allowed, one past its connection cap, or any
 * client beyond the total cap gets one ERROR datagram (seq 0) and is closed at once, holding no
 * slot. Every complaint about a client goes through a rate limiter (one line per uid and kind per
 * second, with the count of the lines dropped), so a flood cannot fill the log.
 */
#include "store/store.h"

#include "engine/engine.h"
#include "store/manifest.h"
#include "store/ref.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_CONNS     4096
#define SRC_CACHE_MAX 256

/* Kinds of rate-limited log line (the key is the uid). */
enum complaint { LOG_REFUSED_CONN, LOG_BAD_MSG, LOG_REPLY_ERROR, LOG_SEND_FAILED };

struct lease {
    uint64_t id;
    struct model *model;
};

struct conn {
    int fd;
    uint64_t id;
    uid_t uid;
    pid_t pid;
    struct lease *leases;
    size_t n_leases, cap_leases;
    int broken;           /* a reply could not be sent: closed at the end of this loop turn */
    struct loglimit *log; /* the daemon's, for complaints about this client */
};

/* A client waiting for a compile to finish. */
struct waiter {
    uint64_t conn_id;
    uint32_t seq;
    int prepare; /* answered OK, without a lease */
    char name[PROTO_MAX_NAME + 1];
    struct waiter *next;
};

struct pending {
    struct model *model;
    struct waiter *waiters;
    struct pending *next;
};

/* (file, stat) → SHA-256 of its bytes, so a resident model's attach costs a stat, not a hash. */
struct src_cache {
    char path[PATH_MAX];
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
    uint8_t sha[SHA256_LEN];
    struct src_cache *next;
};

struct daemon {
    const struct store_config *cfg;
    int dir_fd; /* the image directory, checked at start; every file operation is relative */
    int huge;   /* dir_fd is the root of our huge=within_size tmpfs (image_dir_huge) */
    char models_real[PATH_MAX];
    const char *fingerprint;
    struct catalog cat;
    int disk_fd;         /* the disk tier's directory, -1 without one */
    struct catalog disk; /* the disk tier's index (no fds; leases = pins while written/read) */
    double disk_rate;    /* bytes/s of the last read back, to price images never read yet */
    struct store_counters n;
    struct worker hasher, compiler, writer;
    struct metrics *metrics;
    int listen_fd, sig_fd;
    struct conn **conns;
    size_t n_conns;
    uint64_t next_conn_id, next_lease_id;
    struct pending *pending;
    struct src_cache *cache;
    size_t n_cache;
    struct refusals refusals;
    struct loglimit log;
    uint8_t buf[PROTO_MAX_REQ];
    int manifest_dirty, disk_manifest_dirty, stats_dirty, stop;
};

/* ---- replies ---- */

/* A complaint about a client, through the rate limiter. */
static void complain(struct loglimit *l, enum log_level level, uid_t uid, enum complaint kind,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void complain(struct loglimit *l, enum log_level level, uid_t uid, enum complaint kind,
                     const char *fmt, ...)
{
    uint64_t dropped = 0;
    if (level < log_get_level() || !loglimit_pass(l, (uint32_t)uid, (int)kind, now_ms(), &dropped))
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (dropped)
        log_msg(level, "store", "%s (%llu more like it from uid %u in the last second(s))", line,
                (unsigned long long)dropped, (unsigned)uid);
    else
        log_msg(level, "store", "%s", line);
}

static int send_msg(struct conn *c, struct proto_msg *m, int fd, int fd2)
{
    char err[256];
    int fds[2] = {fd, fd2};
    int rc = proto_send_fds(c->fd, m, fds, fd < 0 ? 0 : fd2 < 0 ? 1 : 2, err, sizeof(err));
    c->broken |= rc < 0;
    if (rc < 0)
        complain(c->log, LOG_WARN, c->uid, LOG_SEND_FAILED,
                 "client pid %d uid %u: %s; dropping the connection", (int)c->pid, (unsigned)c->uid,
                 err);
    return rc;
}

static int reply_error(struct conn *c, uint32_t seq, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int reply_error(struct conn *c, uint32_t seq, int code, const char *fmt, ...)
{
    struct proto_msg m = {.type = PROTO_ERROR, .seq = seq};
    m.u.error.code = code < 0 && code > -4096 ? code : -EIO;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m.u.error.msg, sizeof(m.u.error.msg), fmt, ap);
    va_end(ap);
    complain(c->log, LOG_INFO, c->uid, LOG_REPLY_ERROR, "client pid %d uid %u: %s", (int)c->pid,
             (unsigned)c->uid, m.u.error.msg);
    return send_msg(c, &m, -1, -1);
}

static int reply_ok(struct conn *c, uint32_t seq)
{
    struct proto_msg m = {.type = PROTO_OK, .seq = seq};
    return send_msg(c, &m, -1, -1);
}

static struct conn *conn_by_id(struct daemon *d, uint64_t id)
{
    for (size_t i = 0; i < d->n_conns; i++)
        if (d->conns[i]->id == id)
            return d->conns[i];
    return NULL;
}

/* ---- the disk tier ---- */

/* The copy of identity the disk tier can read back now (written, not being written), or NULL. */
static struct model *disk_ready(struct daemon *d, const uint8_t identity[SHA256_LEN])
{
    struct model *dm = d->disk_fd >= 0 ? catalog_find(&d->disk, identity) : NULL;
    return dm && !dm->writing ? dm : NULL;
}

/* GDSF's reload cost of a RAM image: a read back when the disk tier has it (measured, or priced
 * at the last read's rate until it is), else its compile. */
static double ram_cost(struct daemon *d, const struct model *m)
{
    const struct model *dm = d->disk_fd >= 0 ? catalog_find(&d->disk, m->identity) : NULL;
    if (!dm)
        return m->compile_s;
    if (dm->read_s > 0)
        return dm->read_s;
    return d->disk_rate > 0 ? (double)catalog_model_bytes(m) / d->disk_rate : m->compile_s;
}

static void disk_evict(struct daemon *d, struct model *dm)
{
    log_info("disk tier: evicted %s (%s, %llu bytes)", dm->names, dm->idhex,
             (unsigned long long)dm->size);
    disk_remove(d->disk_fd, d->cfg->disk_dir, &d->disk, dm, 1);
    d->n.disk_evictions++;
    d->disk_manifest_dirty = d->stats_dirty = 1;
}

/* Queues the write of resident image m to the disk tier (room made there first, by the same
 * policy), unless it is there already or cannot fit. Called after m's waiters were answered. */
static void disk_store(struct daemon *d, struct model *m)
{
    if (d->disk_fd < 0 || catalog_find(&d->disk, m->identity))
        return;
    size_t cap = catalog_count(&d->disk, MODEL_RESIDENT) + 1, n = 0;
    struct model **victims = calloc(cap, sizeof(*victims));
    struct job *job = calloc(1, sizeof(*job));
    char err[512];
    /* the entry first: linked to a blob the disk tier has, it keeps that blob through the
     * evictions that make room (a part and, unless the tier has it, its blob) */
    struct model *dm = victims && job ? catalog_add(&d->disk, m->identity, m->source_sha,
                                                    m->threads, NULL)
                                      : NULL;
    int write_blob = 0;
    uint64_t need = dm ? disk_link_blob(&d->disk, dm, m->blob, &write_blob, m->size) : 0;
    int rc = dm ? catalog_plan_room(&d->disk, need, m->names, victims, cap, &n, err, sizeof(err))
                : seterr(err, sizeof(err), -ENOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && i < n; i++)
        disk_evict(d, victims[i]);
    free(victims);
    if (rc == 0 && write_blob && !catalog_blob_add_link(&d->disk, dm, m->blob))
        rc = seterr(err, sizeof(err), -ENOMEM, "out of memory");
    int fd = rc == 0 ? fcntl(m->fd, F_DUPFD_CLOEXEC, 0) : -1;
    int wfd = fd >= 0 && m->blob ? fcntl(m->blob->fd, F_DUPFD_CLOEXEC, 0) : -1;
    if (fd >= 0 && m->blob && wfd < 0) {
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        log_info("disk tier: %s not written: %s", m->names[0] ? m->names : m->idhex,
                 rc < 0 ? err : strerror(errno));
        if (dm)
            disk_remove(d->disk_fd, d->cfg->disk_dir, &d->disk, dm, 0);
        free(job);
        return;
    }
    snprintf(dm->names, sizeof(dm->names), "%s", m->names);
    /* the SHA-256 of the bytes written (a read must match) comes back with the written job */
    dm->compile_s = dm->cost_s = m->compile_s;       /* a miss in this tier costs a compile */
    dm->freq = m->freq ? m->freq - 1 : 0;
    catalog_admit(&d->disk, dm, m->size); /* reserved now: the budget holds while written */
    catalog_touch(&d->disk, dm);
    dm->writing = 1;
    dm->leases = 1; /* pinned until written */
    job->kind = JOB_DISK_WRITE;
    memcpy(job->identity, m->identity, SHA256_LEN);
    snprintf(job->name, sizeof(job->name), "%s", m->names);
    job->disk_fd = d->disk_fd;
    job->image_fd = fd;
    job->weights_fd = write_blob ? wfd : -1; /* the blob goes with the first part needing it */
    if (!write_blob && wfd >= 0)
        close(wfd);
    job->part_len = m->size;
    job->weights_len = m->blob ? m->blob->size : 0;
    if (m->blob)
        memcpy(job->weights_sha, m->blob->sha, SHA256_LEN);
    job->disk_len = m->size;
    worker_submit(&d->writer, job);
    catalog_set_cost(&d->cat, m, ram_cost(d, m));
    d->disk_manifest_dirty = d->stats_dirty = 1;
}

static void finish_disk_write(struct daemon *d, struct job *job)
{
    struct model *dm = catalog_find(&d->disk, job->identity);
    if (!dm)
        return;
    dm->writing = 0;
    dm->leases = 0;
    if (job->rc < 0) {
        log_warn("disk tier %s: %s not written: %s", d->cfg->disk_dir, dm->idhex, job->err);
        d->n.disk_write_failures++;
        disk_remove(d->disk_fd, d->cfg->disk_dir, &d->disk, dm, 0);
    } else {
        d->n.disk_writes++;
        d->n.disk_write_s += job->seconds;
        memcpy(dm->image_sha, job->image_sha, SHA256_LEN); /* the bytes written */
        log_debug("disk tier: %s written in %.3f s", dm->idhex, job->seconds);
    }
    d->disk_manifest_dirty = d->stats_dirty = 1;
}

/* Gives c a lease on resident model m and sends it the image fd. */
static int grant(struct daemon *d, struct conn *c, struct model *m, uint32_t seq, const char *name)
{
    if (c->n_leases == c->cap_leases) {
        size_t cap = c->cap_leases ? c->cap_leases * 2 : 4;
        struct lease *l = realloc(c->leases, cap * sizeof(*l));
        if (!l)
            return reply_error(c, seq, -ENOMEM, "store out of memory");
        c->leases = l;
        c->cap_leases = cap;
    }
    struct proto_msg r = {.type = PROTO_ATTACHED, .seq = seq};
    struct proto_attached *a = &r.u.attached;
    a->lease = ++d->next_lease_id;
    a->size = m->size;
    memcpy(a->sha256, m->image_sha, SHA256_LEN);
    memcpy(a->identity, m->identity, SHA256_LEN);
    a->threads = (uint32_t)m->threads;
    snprintf(a->name, sizeof(a->name), "%s", name);
    if (m->blob) {
        a->weights_size = m->blob->size;
        memcpy(a->weights_sha256, m->blob->sha, SHA256_LEN);
    }
    c->leases[c->n_leases++] = (struct lease){a->lease, m};
    catalog_set_cost(&d->cat, m, ram_cost(d, m));
    catalog_lease(&d->cat, m, wall_ms());
    d->stats_dirty = 1;
    return send_msg(c, &r, m->fd, m->blob ? m->blob->fd : -1);
}

/* ---- model lifecycle ---- */

static void evict(struct daemon *d, struct model *m)
{
    char name[SHA256_HEX_LEN + 8];
    snprintf(name, sizeof(name), "%s.plan", m->idhex);
    int rc = image_unlink(d->dir_fd, name);
    if (rc < 0)
        log_warn("%s/%s: unlink: %s", d->cfg->dir, name, strerror(-rc));
    log_info("evicted %s (%s, %llu bytes)", m->names, m->idhex, (unsigned long long)m->size);
    close(m->fd);
    catalog_evict(&d->cat, m);
    image_reap_blobs(d->dir_fd, d->cfg->dir, &d->cat); /* its blob, when it was the last */
    d->n.evictions++;
    d->manifest_dirty = d->stats_dirty = 1;
}

/* Drops one lease; with --no-warm-cache an image nobody holds any more is evicted at once. */
static void release(struct daemon *d, struct model *m)
{
    catalog_release(&d->cat, m, wall_ms());
    if (d->cfg->no_warm_cache && m->leases == 0 && m->state == MODEL_RESIDENT)
        evict(d, m);
}

/* Source SHA-256 of a model file: from the cache when the file is unchanged. */
static int cached_source_sha(struct daemon *d, const char *path, const struct stat *st,
                             uint8_t sha[SHA256_LEN])
{
    for (struct src_cache *e = d->cache; e; e = e->next) {
        if (strcmp(e->path, path) != 0)
            continue;
        if (e->dev == st->st_dev && e->ino == st->st_ino && e->size == st->st_size &&
            e->mtime.tv_sec == st->st_mtim.tv_sec && e->mtime.tv_nsec == st->st_mtim.tv_nsec &&
            e->ctime.tv_sec == st->st_ctim.tv_sec && e->ctime.tv_nsec == st->st_ctim.tv_nsec) {
            memcpy(sha, e->sha, SHA256_LEN);
            return 0;
        }
    }
    return -ENOENT;
}

static void cache_entry_set(struct src_cache *e, const struct stat *st,
                            const uint8_t sha[SHA256_LEN])
{
    e->dev = st->st_dev;
    e->ino = st->st_ino;
    e->size = st->st_size;
    e->mtime = st->st_mtim;
    e->ctime = st->st_ctim;
    memcpy(e->sha, sha, SHA256_LEN);
}

static void cache_source_sha(struct daemon *d, const char *path, const struct stat *st,
                             const uint8_t sha[SHA256_LEN])
{
    for (struct src_cache *e = d->cache; e; e = e->next) {
        if (strcmp(e->path, path) == 0) { /* the file changed: this entry was stale */
            cache_entry_set(e, st, sha);
            return;
        }
    }
    if (d->n_cache >= SRC_CACHE_MAX) {
        while (d->cache) {
            struct src_cache *next = d->cache->next;
            free(d->cache);
            d->cache = next;
        }
        d->n_cache = 0;
    }
    struct src_cache *e = calloc(1, sizeof(*e));
    if (!e)
        return;
    snprintf(e->path, sizeof(e->path), "%s", path);
    cache_entry_set(e, st, sha);
    e->next = d->cache;
    d->cache = e;
    d->n_cache++;
}

/* ---- remembered refusals ---- */

/* Whether an image of need bytes could be admitted now (evicting lease-free images). */
static int fits_now(struct daemon *d, uint64_t need)
{
    size_t cap = catalog_count(&d->cat, MODEL_RESIDENT) + 1, n = 0;
    struct model **victims = calloc(cap, sizeof(*victims));
    int rc = victims ? catalog_plan_room(&d->cat, need, NULL, victims, cap, &n, NULL, 0) : -ENOMEM;
    free(victims);
    return rc == 0;
}

/* Answers an attach of identity from a remembered refusal; returns 1 when it did. A budget
 * refusal whose image would fit now lets the compile go ahead instead. */
static int answer_refused(struct daemon *d, struct conn *c, uint32_t seq,
                          const uint8_t identity[SHA256_LEN], const char *name)
{
    int64_t now = now_ms();
    struct refusal *f = refusal_active(&d->refusals, identity, now);
    if (!f || (f->kind == REFUSAL_BUDGET && fits_now(d, f->need)))
        return 0;
    catalog_names_add(f->names, sizeof(f->names), name);
    f->answered++;
    d->n.refusals++;
    d->n.refusals_remembered++;
    d->stats_dirty = 1;
    reply_error(c, seq, f->code,
                "%s (refused %llu time(s) without a new compile; retried after "
                "%lld ms)",
                f->reason, (unsigned long long)f->answered, (long long)(f->until_ms - now));
    return 1;
}

static void remember_refusal(struct daemon *d, const struct model *m, const char *name,
                             enum refusal_kind kind, uint64_t need, const char *reason)
{
    struct refusal *f = refusal_record(
        &d->refusals, m->identity, name, kind, kind == REFUSAL_BUDGET ? -ENOSPC : -ENOEXEC, need,
        reason, now_ms(), d->cfg->refusal_backoff_ms, d->cfg->refusal_backoff_max_ms);
    if (f)
        log_info("model %s (%s): refusal remembered for %lld ms", name, m->idhex,
                 (long long)f->window_ms);
}

static struct pending *pending_of(struct daemon *d, const struct model *m)
{
    for (struct pending *p = d->pending; p; p = p->next)
        if (p->model == m)
            return p;
    return NULL;
}

static int add_waiter(struct daemon *d, struct conn *c, struct model *m, uint32_t seq,
                      const char *name, int prepare)
{
    struct pending *p = pending_of(d, m);
    struct waiter *w = calloc(1, sizeof(*w));
    if (!p || !w) {
        free(w);
        return reply_error(c, seq, -ENOMEM, "store out of memory");
    }
    w->conn_id = c->id;
    w->seq = seq;
    w->prepare = prepare;
    snprintf(w->name, sizeof(w->name), "%s", name);
    w->next = p->waiters;
    p->waiters = w;
    return 0;
}

/* A resident model answers at once; one being loaded takes another waiter. A PREPARE is no use
 * of the image: no lease, no hit or miss. */
static int serve_known(struct daemon *d, struct conn *c, struct model *m, uint32_t seq,
                       const char *name, int prepare)
{
    if (m->state == MODEL_RESIDENT && prepare)
        return reply_ok(c, seq);
    if (m->state == MODEL_RESIDENT) {
        d->n.hits++;
        return grant(d, c, m, seq, name);
    }
    if (!prepare)
        d->n.misses++;
    return add_waiter(d, c, m, seq, name, prepare);
}

/* The name an image is listed by: "resnet50", or "resnet50?input=1x3x320x320" when it was
 * compiled for given shapes, so `ls` tells one model's images apart. */
static void shaped_name(const struct ref *ref, char *out, size_t len)
{
    snprintf(out, len, "%.*s%s%.*s", REF_MAX_NAME, ref->name, ref->shapes[0] ? "?" : "",
             PROTO_MAX_NAME - REF_MAX_NAME - 1, ref->shapes);
}

/* A job for c's request of ref (an ATTACH, or a PREPARE), or NULL (answered: no memory). */
static struct job *new_job(struct conn *c, uint32_t seq, const struct ref *ref, int threads,
                           int prepare)
{
    struct job *job = calloc(1, sizeof(*job));
    if (!job) {
        reply_error(c, seq, -ENOMEM, "store out of memory");
        return NULL;
    }
    snprintf(job->path, sizeof(job->path), "%s", ref->path);
    shaped_name(ref, job->name, sizeof(job->name));
    job->conn_id = c->id;
    job->seq = seq;
    job->prepare = prepare;
    job->threads = threads;
    snprintf(job->shapes, sizeof(job->shapes), "%s", ref->shapes);
    job->pinned = ref->pinned;
    memcpy(job->pin, ref->pin, SHA256_LEN);
    return job;
}

/* Queues the read + hash of a model file whose SHA-256 is not cached; finish_hash() goes on. */
static int start_hash(struct daemon *d, struct conn *c, uint32_t seq, const struct ref *ref,
                      int threads, int prepare)
{
    struct job *job = new_job(c, seq, ref, threads, prepare);
    if (job) {
        job->kind = JOB_HASH;
        worker_submit(&d->hasher, job);
    }
    return 0;
}

/* A new RAM model for job->identity, being loaded, with c's request waiting for it; NULL (the
 * request answered, the job freed) when out of memory. */
static struct model *start_load(struct daemon *d, struct conn *c, struct job *job)
{
    struct pending *p = calloc(1, sizeof(*p));
    struct model *m =
        p ? catalog_add(&d->cat, job->identity, job->source_sha, job->threads, job->name) : NULL;
    if (!m) {
        reply_error(c, job->seq, -ENOMEM, "store out of memory");
        free(p);
        job_free(job);
        return NULL;
    }
    p->model = m;
    p->next = d->pending;
    d->pending = p;
    if (!job->prepare)
        d->n.misses++;
    d->stats_dirty = 1;
    add_waiter(d, c, m, job->seq, job->name, job->prepare);
    return m;
}

/* Hands a load job (its model's bytes read) to the compiler. */
static void start_compile(struct daemon *d, struct job *job)
{
    char idhex[SHA256_HEX_LEN];
    sha256_hex(job->identity, idhex);
    d->n.compiles_started++;
    d->stats_dirty = 1;
    log_info("model %s: compiling for %d thread(s)%s%s (%s)", job->name, job->threads,
             job->shapes[0] ? ", input shapes " : "", job->shapes, idhex);
    job->kind = JOB_COMPILE;
    snprintf(job->base_dir, sizeof(job->base_dir), "%s", d->models_real);
    worker_submit(&d->compiler, job); /* the worker owns it now */
}

/* Hands a load job to the hasher thread to read the image back from the disk tier (dm, pinned
 * meanwhile). */
static void start_disk_read(struct daemon *d, struct job *job, struct model *dm)
{
    dm->leases++;
    d->n.disk_reads++;
    d->stats_dirty = 1;
    log_debug("model %s: reading its image back from the disk tier (%s)", job->name, dm->idhex);
    job->kind = JOB_DISK_READ;
    job->disk_fd = d->disk_fd;
    job->disk_len = dm->size;
    job->weights_len = dm->blob ? dm->blob->size : 0;
    if (dm->blob)
        memcpy(job->weights_sha, dm->blob->sha, SHA256_LEN);
    /* Only this process sets a disk entry's image_sha: the SHA-256 of the bytes it wrote or
     * verified (entries indexed at start have none, so their files get the full verification). */
    job->have_expect = memcmp(dm->image_sha, (uint8_t[SHA256_LEN]){0}, SHA256_LEN) != 0;
    memcpy(job->expect_sha, dm->image_sha, SHA256_LEN);
    worker_submit(&d->hasher, job);
}

/* A model not in RAM: read back from the disk tier when it has the image, else compiled. */
static void start_miss(struct daemon *d, struct conn *c, struct job *job)
{
    if (!start_load(d, c, job))
        return;
    struct model *dm = disk_ready(d, job->identity);
    if (dm)
        start_disk_read(d, job, dm);
    else
        start_compile(d, job);
}

static void finish_hash(struct daemon *d, struct job *job)
{
    struct conn *c = conn_by_id(d, job->conn_id);
    if (job->rc == 0)
        cache_source_sha(d, job->path, &job->st, job->source_sha);
    if (c && job->rc == 0) /* a pinned ref whose file changed is refused, not compiled */
        job->rc = model_ref_check_digest(job->name, job->pinned ? job->pin : NULL, job->source_sha,
                                         job->err, sizeof(job->err));
    if (!c || job->rc < 0) { /* nobody waits any more, or the file could not be read */
        if (c)
            reply_error(c, job->seq, job->rc, "%s", job->err);
        job_free(job);
        return;
    }
    model_identity(job->source_sha, d->fingerprint, job->threads, job->shapes, job->identity);
    struct model *m = catalog_find(&d->cat, job->identity);
    if (!m && answer_refused(d, c, job->seq, job->identity, job->name)) {
        job_free(job);
        return;
    }
    if (!m) {
        start_miss(d, c, job);
        return;
    }
    catalog_add_name(m, job->name); /* another name for known bytes */
    serve_known(d, c, m, job->seq, job->name, job->prepare);
    job_free(job);
}

/* ---- handlers ---- */

static int resolve(struct daemon *d, struct conn *c, const struct proto_msg *msg, struct ref *ref)
{
    char err[PROTO_MAX_ERR];
    int rc = ref_resolve(d->models_real, msg->u.ref.ref, ref, err, sizeof(err));
    if (rc < 0) {
        reply_error(c, msg->seq, rc, "%s", err);
        return rc;
    }
    return 0;
}

/* ref->shapes in the engine's canonical spelling, so one set of shapes is one identity. */
static int canonical_shapes(struct ref *ref, char *err, size_t errlen)
{
    struct engine_input_shape s[16];
    char text[REF_MAX_SHAPES + 1], why[256];
    int n;

    if (!ref->shapes[0])
        return 0;
    n = engine_shapes_parse(ref->shapes, text, sizeof(text), s, (int)ARRAY_LEN(s), why,
                            sizeof(why));
    if (n < 0 || (n = engine_shapes_format(s, n, ref->shapes, sizeof(ref->shapes))) < 0)
        return seterr(err, errlen, n, "input shapes after '?': %s",
                      n == -ENAMETOOLONG ? "too long" : why);
    return 0;
}

/* A sha256: ref: a resident model by identity or by (source sha, threads[, shapes]). */
static struct model *find_by_hash(struct daemon *d, const struct ref *ref, int threads)
{
    uint8_t identity[SHA256_LEN];

    if (!ref->shapes[0])
        return catalog_find_hash(&d->cat, ref->hash, threads);
    model_identity(ref->hash, d->fingerprint, threads, ref->shapes, identity);
    return catalog_find(&d->cat, identity);
}

/* ATTACH, or PREPARE (prepare = 1): the same resolution and load, a different answer. */
static int attach_or_prepare(struct daemon *d, struct conn *c, const struct proto_msg *msg,
                             int prepare)
{
    int threads = msg->u.ref.threads ? (int)msg->u.ref.threads : d->cfg->threads;
    char err[PROTO_MAX_ERR - 128];
    struct ref ref;
    if (!store_threads_allowed(d->cfg, threads)) {
        if (d->cfg->n_threads_allowed)
            return reply_error(c, msg->seq, -ERANGE,
                               "model %.80s: %d threads is not one of this store's thread counts "
                               "(--threads-allowed)",
                               msg->u.ref.ref, threads);
        return reply_error(c, msg->seq, -ERANGE,
                           "model %.80s: %d threads is outside 1..%d (this node's CPUs); each "
                           "thread count is another image",
                           msg->u.ref.ref, threads, d->cfg->max_threads);
    }
    if (resolve(d, c, msg, &ref) < 0)
        return 0;
    if (canonical_shapes(&ref, err, sizeof(err)) < 0)
        return reply_error(c, msg->seq, -EINVAL, "model %.80s: %s", msg->u.ref.ref, err);
    if (ref.kind == REF_HASH) {
        struct model *m = find_by_hash(d, &ref, threads);
        if (!m)
            return reply_error(c, msg->seq, -ENOENT,
                               "model %s: no resident model has this hash; attach it by name "
                               "first",
                               msg->u.ref.ref);
        return serve_known(d, c, m, msg->seq, m->names[0] ? m->names : m->idhex, prepare);
    }
    struct stat st;
    uint8_t src[SHA256_LEN], identity[SHA256_LEN];
    struct model *m = NULL;
    char name[PROTO_MAX_NAME + 1];
    shaped_name(&ref, name, sizeof(name));
    if (stat(ref.path, &st) == 0 && cached_source_sha(d, ref.path, &st, src) == 0) {
        int rc = model_ref_check_digest(name, ref.pinned ? ref.pin : NULL, src, err, sizeof(err));
        if (rc < 0)
            return reply_error(c, msg->seq, rc, "%s", err);
        model_identity(src, d->fingerprint, threads, ref.shapes, identity);
        m = catalog_find(&d->cat, identity);
        if (!m && answer_refused(d, c, msg->seq, identity, name))
            return 0;
        if (!m && disk_ready(d, identity)) { /* no need to read the model file at all */
            struct job *job = new_job(c, msg->seq, &ref, threads, prepare);
            if (job) {
                memcpy(job->source_sha, src, SHA256_LEN);
                memcpy(job->identity, identity, SHA256_LEN);
                start_miss(d, c, job);
            }
            return 0;
        }
    }
    if (!m)
        return start_hash(d, c, msg->seq, &ref, threads, prepare);
    catalog_add_name(m, name);
    return serve_known(d, c, m, msg->seq, name, prepare);
}

static int on_attach(struct daemon *d, struct conn *c, const struct proto_msg *msg)
{
    return attach_or_prepare(d, c, msg, 0);
}

static int on_prepare(struct daemon *d, struct conn *c, const struct proto_msg *msg)
{
    d->n.prepares++;
    return attach_or_prepare(d, c, msg, 1);
}

static int on_detach(struct daemon *d, struct conn *c, const struct proto_msg *msg)
{
    for (size_t i = 0; i < c->n_leases; i++) {
        if (c->leases[i].id != msg->u.lease)
            continue;
        release(d, c->leases[i].model);
        c->leases[i] = c->leases[--c->n_leases];
        d->manifest_dirty = d->stats_dirty = 1;
        return reply_ok(c, msg->seq);
    }
    return reply_error(c, msg->seq, -ENOENT, "lease %llu is not held by this connection",
                       (unsigned long long)msg->u.lease);
}

static int send_json(struct conn *c, uint32_t seq, char *text)
{
    if (!text)
        return reply_error(c, seq, -ENOMEM, "store out of memory");
    struct proto_msg m = {.type = PROTO_JSON, .seq = seq};
    m.u.json.text = text;
    m.u.json.len = strlen(text);
    int rc;
    if (m.u.json.len > PROTO_MAX_MSG - PROTO_HDR_LEN - 4)
        rc = reply_error(c, seq, -EMSGSIZE, "stats of %zu bytes exceed one message", m.u.json.len);
    else
        rc = send_msg(c, &m, -1, -1);
    free(text);
    return rc;
}

static int on_stats(struct daemon *d, struct conn *c, const struct proto_msg *msg)
{
    return send_json(
        c, msg->seq,
        stats_json(&d->cat, d->disk_fd >= 0 ? &d->disk : NULL, &d->n, &d->refusals, now_ms(), 1));
}

static int on_ls(struct daemon *d, struct conn *c, const struct proto_msg *msg)
{
    return send_json(
        c, msg->seq,
        stats_json(&d->cat, d->disk_fd >= 0 ? &d->disk : NULL, &d->n, &d->refusals, now_ms(), 0));
}

/* Whether m is an image of the model whose ONNX (or image identity) hash is sha. */
static int image_of(const struct model *m, const uint8_t sha[SHA256_LEN])
{
    return !memcmp(m->identity, sha, SHA256_LEN) || !memcmp(m->source_sha, sha, SHA256_LEN);
}

/* Evicts every resident image of the model (any thread count) unless one is leased, and its
 * copies in the disk tier (a removed model's image has no use left). */
static int on_evict(struct daemon *d, struct conn *c, const struct proto_msg *msg)
{
    struct ref ref;
    if (resolve(d, c, msg, &ref) < 0)
        return 0;
    uint8_t sha[SHA256_LEN];
    if (ref.kind == REF_HASH) {
        memcpy(sha, ref.hash, SHA256_LEN);
    } else {
        struct stat st;
        if (stat(ref.path, &st) < 0 || cached_source_sha(d, ref.path, &st, sha) < 0)
            return reply_error(c, msg->seq, -ENOENT, "model %s is not resident", ref.name);
    }
    int found = 0;
    for (struct model *m = d->cat.models; m; m = m->next) {
        int match = image_of(m, sha);
        if (match && m->state == MODEL_RESIDENT && m->leases > 0)
            return reply_error(c, msg->seq, -EBUSY, "model %s: %d lease(s) held; not evicted",
                               msg->u.ref.ref, m->leases);
        found += match && m->state == MODEL_RESIDENT;
    }
    for (struct model *m = d->disk_fd >= 0 ? d->disk.models : NULL; m; m = m->next)
        found += image_of(m, sha) && m->leases == 0;
    if (!found)
        return reply_error(c, msg->seq, -ENOENT, "model %s is not resident", msg->u.ref.ref);
    for (struct model *m = d->cat.models, *next; m; m = next) {
        next = m->next;
        if (m->state == MODEL_RESIDENT && image_of(m, sha))
            evict(d, m);
    }
    for (struct model *m = d->disk_fd >= 0 ? d->disk.models : NULL, *next; m; m = next) {
        next = m->next;
        if (m->leases == 0 && image_of(m, sha)) /* one being written or read stays */
            disk_evict(d, m);
    }
    return reply_ok(c, msg->seq);
}

enum access { ACCESS_CLIENT, ACCESS_ADMIN };

static const struct handler {
    int type;
    enum access access;
    int (*fn)(struct daemon *d, struct conn *c, const struct proto_msg *msg);
} handlers[] = {
    {PROTO_ATTACH, ACCESS_CLIENT, on_attach}, {PROTO_DETACH, ACCESS_CLIENT, on_detach},
    {PROTO_STATS, ACCESS_CLIENT, on_stats},   {PROTO_LS, ACCESS_CLIENT, on_ls},
    {PROTO_EVICT, ACCESS_ADMIN, on_evict},    {PROTO_PREPARE, ACCESS_CLIENT, on_prepare},
};

static int allowed(const struct daemon *d, uid_t uid, enum access access)
{
    if (uid == 0 || uid == geteuid())
        return 1;
    if (access == ACCESS_ADMIN)
        return 0;
    for (int i = 0; i < d->cfg->n_allow; i++)
        if (uid >= d->cfg->allow[i].first && uid <= d->cfg->allow[i].last)
            return 1;
    return 0;
}

/* Returns < 0 when the connection must close. */
static int dispatch(struct daemon *d, struct conn *c, const struct proto_msg *msg)
{
    for (size_t i = 0; i < ARRAY_LEN(handlers); i++) {
        const struct handler *h = &handlers[i];
        if (h->type != msg->type)
            continue;
        if (!allowed(d, c->uid, h->access))
            return reply_error(c, msg->seq, -EACCES, "uid %u may not %s on this store (%s)",
                               (unsigned)c->uid, proto_type_name(msg->type),
                               h->access == ACCESS_ADMIN ? "root or the store's user only"
                                                         : "see --allow-uid");
        d->stats_dirty = 1;
        return h->fn(d, c, msg);
    }
    complain(c->log, LOG_WARN, c->uid, LOG_BAD_MSG,
             "client pid %d uid %u: %s is not a request; dropping the connection", (int)c->pid,
             (unsigned)c->uid, proto_type_name(msg->type));
    return -EBADMSG;
}

/* ---- compile completion ---- */

static uint64_t pending_count(const struct pending *p)
{
    uint64_t n = 0;
    for (const struct waiter *w = p->waiters; w; w = w->next)
        n++;
    return n;
}

static void answer_waiters(struct daemon *d, struct pending *p, int rc, const char *err)
{
    for (struct waiter *w = p->waiters, *next; w; w = next) {
        next = w->next;
        struct conn *c = conn_by_id(d, w->conn_id);
        if (c && rc == 0 && w->prepare)
            reply_ok(c, w->seq);
        else if (c && rc == 0)
            grant(d, c, p->model, w->seq, w->name);
        else if (c)
            reply_error(c, w->seq, rc, "%s", err);
        free(w);
    }
    p->waiters = NULL;
}

/* Makes room, writes the image file, and admits the model; or says why not. */
static int admit(struct daemon *d, struct model *m, struct job *job, char *err, size_t errlen)
{
    size_t cap = catalog_count(&d->cat, MODEL_RESIDENT) + 1, n_victims = 0;
    struct model **victims = calloc(cap, sizeof(*victims));
    struct image_parts parts;
    if (!victims)
        return seterr(err, errlen, -ENOMEM, "store out of memory");
    int rc = job->weights_buf ? image_parts_given(&d->cat, m, job->image, job->image_len,
                                                  job->weights_buf, job->weights_buf_len, &parts,
                                                  err, errlen)
                              : image_parts_prepare(&d->cat, m, job->image, job->image_len,
                                                    &parts, err, errlen);
    if (rc == 0)
        rc = catalog_plan_room(&d->cat, parts.need, job->name, victims, cap, &n_victims, err,
                               errlen);
    if (rc == 0)
        for (size_t i = 0; i < n_victims; i++)
            evict(d, victims[i]);
    free(victims);
    if (rc == -ENOSPC) {
        d->n.refused++;
        remember_refusal(d, m, job->name, REFUSAL_BUDGET, parts.need, err);
    }
    if (rc == 0)
        rc = image_parts_write(d->dir_fd, &d->cat, m, &parts,
                               job->kind == JOB_DISK_READ ? job->image_sha : NULL, &d->n, err,
                               errlen);
    uint64_t bytes = parts.part ? parts.part_len : job->image_len;
    size_t loaded = job->image_len + job->weights_buf_len; /* part (or image) + blob */
    image_parts_free(&parts);
    if (rc < 0)
        return rc; /* finish_load removes m, and with it its hold on a blob */
    refusal_forget(&d->refusals, m->identity);
    catalog_admit(&d->cat, m, bytes);
    d->manifest_dirty = d->stats_dirty = 1;
    if (job->kind == JOB_DISK_READ) {
        struct model *dm = catalog_find(&d->disk, m->identity);
        m->compile_s = dm ? dm->compile_s : 0;
        m->read_s = job->seconds;
        d->n.disk_hits++;
        d->n.disk_read_s += job->seconds;
        if (job->seconds > 0)
            d->disk_rate = (double)loaded / job->seconds;
        if (dm) {
            dm->read_s = job->seconds;
            /* verified: the next read back only has to match these bytes */
            memcpy(dm->image_sha, job->image_sha, SHA256_LEN);
            catalog_touch(&d->disk, dm);
        }
        log_info("model %s: read back from the disk tier in %.3f s, %zu bytes (its compile took "
                 "%.2f s)",
                 job->name, job->seconds, loaded, m->compile_s);
        return 0;
    }
    m->compile_s = job->seconds;
    d->n.compiles++;
    d->n.compile_s += job->seconds;
    log_info("model %s: compiled in %.2f s, %zu bytes%s", job->name, job->seconds, job->image_len,
             m->blob ? " (a plan part and its weights blob)" : "");
    return 0;
}

/* A read back that failed verification (or found the file gone): the file is deleted and the
 * model compiled from the bytes the worker read instead. Returns 1 when the job went on to the
 * compiler, 0 when the load fails with job->rc. */
static int disk_read_failed(struct daemon *d, struct job *job)
{
    struct model *dm = catalog_find(&d->disk, job->identity);
    char idhex[SHA256_HEX_LEN];
    sha256_hex(job->identity, idhex);
    log_warn("disk tier %s/%s.plan (%s): dropped: %s; compiling instead", d->cfg->disk_dir, idhex,
             job->name, job->err);
    d->n.disk_dropped++;
    if (dm && dm->leases == 0) {
        disk_remove(d->disk_fd, d->cfg->disk_dir, &d->disk, dm, 0);
        d->disk_manifest_dirty = 1;
    }
    if (job->rc < 0) /* the model file could not be read either: job->err says why */
        return 0;
    uint8_t identity[SHA256_LEN];
    model_identity(job->source_sha, d->fingerprint, job->threads, job->shapes, identity);
    if (memcmp(identity, job->identity, SHA256_LEN) != 0) {
        job->rc = seterr(job->err, sizeof(job->err), -ESTALE,
                         "model %s: its file changed while its image was read back; attach again",
                         job->name);
        return 0;
    }
    start_compile(d, job);
    return 1;
}

/* A compile or a read back finished: admit the image and answer the waiters, then (a compile)
 * write it to the disk tier. Returns 1 when the job lives on (handed to the compiler). */
static int finish_load(struct daemon *d, struct job *job)
{
    if (job->kind == JOB_DISK_READ) {
        struct model *dm = catalog_find(&d->disk, job->identity);
        if (dm && dm->leases > 0)
            dm->leases--; /* the pin of the read */
        if (job->disk_rc < 0 && disk_read_failed(d, job))
            return 1;
    }
    struct model *m = catalog_find(&d->cat, job->identity);
    struct pending **pp = &d->pending;
    while (*pp && (*pp)->model != m)
        pp = &(*pp)->next;
    struct pending *p = *pp;
    if (!m || !p) {
        log_error("load of %s finished for a model the store forgot", job->name);
        return 0;
    }
    *pp = p->next;
    char err[PROTO_MAX_ERR + PROTO_MAX_NAME + 64];
    int rc = job->rc;
    if (rc < 0 && job->kind == JOB_DISK_READ) {
        snprintf(err, sizeof(err), "%s", job->err);
    } else if (rc < 0) {
        snprintf(err, sizeof(err), "model %s: compile failed: %s", job->name, job->err);
        rc = -ENOEXEC; /* the refusal code: this model does not become an image */
        remember_refusal(d, m, job->name, REFUSAL_COMPILE, 0, err);
    } else {
        rc = admit(d, m, job, err, sizeof(err));
    }
    if (rc < 0)
        log_warn("%s", err);
    if (rc == -ENOSPC || rc == -ENOEXEC)
        d->n.refusals += pending_count(p);
    answer_waiters(d, p, rc, err);
    if (rc < 0) {
        catalog_remove(&d->cat, m);
        image_reap_blobs(d->dir_fd, d->cfg->dir, &d->cat);
    }
    else if (job->kind == JOB_COMPILE)
        disk_store(d, m); /* after the answers: a disk write never delays an attach */
    free(p);
    d->stats_dirty = 1;
    return 0;
}

/* ---- connections ---- */

static void conn_close(struct daemon *d, size_t i)
{
    struct conn *c = d->conns[i];
    for (size_t k = 0; k < c->n_leases; k++)
        release(d, c->leases[k].model);
    if (c->n_leases)
        d->manifest_dirty = 1;
    d->stats_dirty = 1;
    log_debug("client pid %d: closed, %zu lease(s) released", (int)c->pid, c->n_leases);
    close(c->fd);
    free(c->leases);
    free(c);
    d->conns[i] = d->conns[--d->n_conns];
}

static int conns_of(const struct daemon *d, uid_t uid)
{
    int n = 0;
    for (size_t i = 0; i < d->n_conns; i++)
        n += d->conns[i]->uid == uid;
    return n;
}

/* Why a connection from uid may not be served, or NULL when it may. */
static const char *admission(const struct daemon *d, uid_t uid, char *why, size_t len)
{
    if (!allowed(d, uid, ACCESS_CLIENT))
        snprintf(why, len, "uid %u may not use this store (see --allow-uid)", (unsigned)uid);
    else if (d->n_conns >= MAX_CONNS)
        snprintf(why, len, "store has %d clients, its maximum", MAX_CONNS);
    else if (conns_of(d, uid) >= d->cfg->max_conns_per_uid)
        snprintf(why, len, "uid %u holds %d connections, its maximum (--max-conns-per-uid)",
                 (unsigned)uid, d->cfg->max_conns_per_uid);
    else
        return NULL;
    return why;
}

/* Closes a connection at accept, telling the client why in one ERROR datagram (seq 0) that it
 * reads as the answer to its first request; a client that never reads it costs nothing. */
static void refuse(struct daemon *d, int fd, const struct ucred *cred, const char *why)
{
    struct proto_msg m = {.type = PROTO_ERROR, .seq = 0};
    m.u.error.code = -EACCES;
    snprintf(m.u.error.msg, sizeof(m.u.error.msg), "%s", why);
    uint8_t buf[PROTO_HDR_LEN + 8 + PROTO_MAX_ERR];
    int len = proto_encode(&m, buf, sizeof(buf), NULL, 0);
    if (len > 0 && send(fd, buf, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
        log_debug("refusal to pid %d: %s", (int)cred->pid, strerror(errno));
    /* Closing with unread requests would reset the client ahead of the refusal: drop them. */
    for (int i = 0; i < 8 && recv(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC) >= 0; i++)
        ;
    close(fd);
    d->n.rejected_conns++;
    d->stats_dirty = 1;
    complain(&d->log, LOG_WARN, cred->uid, LOG_REFUSED_CONN, "connection from pid %d refused: %s",
             (int)cred->pid, why);
}

static void accept_all(struct daemon *d)
{
    for (;;) {
        int fd = accept4(d->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                complain(&d->log, LOG_WARN, 0, LOG_REFUSED_CONN, "accept: %s", strerror(errno));
            else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                log_warn("accept: %s", strerror(errno));
            return;
        }
        struct ucred cred;
        socklen_t len = sizeof(cred);
        char why[256];
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
            log_warn("refusing a connection: SO_PEERCRED: %s", strerror(errno));
            close(fd);
            continue;
        }
        const char *no = admission(d, cred.uid, why, sizeof(why));
        struct conn *c = no ? NULL : calloc(1, sizeof(*c));
        if (!c) {
            refuse(d, fd, &cred, no ? no : "store out of memory");
            continue;
        }
        c->fd = fd;
        c->id = ++d->next_conn_id;
        c->uid = cred.uid;
        c->pid = cred.pid;
        c->log = &d->log;
        d->conns[d->n_conns++] = c;
    }
}

/* Reads one message; returns < 0 when the connection must close. */
static int conn_read(struct daemon *d, struct conn *c)
{
    struct proto_msg msg;
    char err[256];
    int rc = proto_recv(c->fd, d->buf, sizeof(d->buf), &msg, NULL, err, sizeof(err));
    if (rc == -EAGAIN)
        return 0;
    if (rc == -ECONNRESET)
        return rc;
    if (rc < 0) {
        complain(c->log, LOG_WARN, c->uid, LOG_BAD_MSG,
                 "client pid %d uid %u: %s; dropping the connection", (int)c->pid, (unsigned)c->uid,
                 err);
        return rc;
    }
    return dispatch(d, c, &msg);
}

/* ---- setup and the loop ---- */

static int listen_on(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return seterr(err, errlen, -ENAMETOOLONG, "--socket %s: longer than %zu bytes", path,
                      sizeof(sa.sun_path) - 1);
    strcpy(sa.sun_path, path);
    char parent[sizeof(sa.sun_path)];
    strcpy(parent, path);
    char *slash = strrchr(parent, '/');
    if (slash) { /* e.g. /run/shmfaas on a fresh boot */
        slash[slash == parent] = '\0';
        if (mkdir_p(parent, 0755) < 0)
            return seterr(err, errlen, -errno, "--socket %s: cannot create %s: %s", path, parent,
                          strerror(errno));
    } else {
        strcpy(parent, ".");
    }
    /* Whoever can write the socket's directory can replace the socket and answer our clients. */
    struct stat dst;
    if (stat(parent, &dst) < 0)
        return seterr(err, errlen, -errno, "--socket %s: %s: %s", path, parent, strerror(errno));
    if (!S_ISDIR(dst.st_mode) || (dst.st_uid != geteuid() && dst.st_uid != 0) ||
        (dst.st_mode & 022))
        return seterr(err, errlen, -EPERM,
                      "--socket %s: directory %s (owner %u, mode %04o) is not owned by root or "
                      "uid %u, or others can write it: they could replace the socket; refused",
                      path, parent, (unsigned)dst.st_uid, (unsigned)(dst.st_mode & 07777),
                      (unsigned)geteuid());
    int probe = proto_connect(path, NULL, 0);
    if (probe >= 0) {
        close(probe);
        return seterr(err, errlen, -EADDRINUSE, "--socket %s: another store is serving it", path);
    }
    unlink(path);
    int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s < 0)
        return seterr(err, errlen, -errno, "socket: %s", strerror(errno));
    if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0666) < 0 ||
        listen(s, 512) < 0) {
        int e = errno;
        close(s);
        return seterr(err, errlen, -e, "--socket %s: %s", path, strerror(e));
    }
    return s;
}

static int open_signals(char *err, size_t errlen)
{
    sigset_t set;
    signals_block_stop(&set);
    int fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (fd < 0)
        return seterr(err, errlen, -errno, "signalfd: %s", strerror(errno));
    return fd;
}

static int prepare_dirs(struct daemon *d, char *err, size_t errlen)
{
    const struct store_config *cfg = d->cfg;
    if (!realpath(cfg->models, d->models_real))
        return seterr(err, errlen, -errno, "--models %s: %s", cfg->models, strerror(errno));
    d->dir_fd = image_dir_open(cfg->dir, "--dir", err, errlen);
    if (d->dir_fd < 0)
        return d->dir_fd;
    /* Held while the store runs (the kernel drops it if the store dies): two stores on one
     * directory would adopt, evict and remove each other's images. */
    if (flock(d->dir_fd, LOCK_EX | LOCK_NB) < 0)
        return seterr(err, errlen, -errno, "--dir %s: %s", cfg->dir,
                      errno == EWOULDBLOCK ? "another store is using it" : strerror(errno));
    /* Twice the budget: what is resident plus an image being written, with room to spare. */
    uint64_t size = cfg->budget > UINT64_MAX / 4 ? UINT64_MAX / 2 : 2 * cfg->budget + (64 << 20);
    int rc = image_dir_huge(&d->dir_fd, cfg->dir, cfg->huge_pages, size, err, errlen);
    if (rc < 0)
        return rc;
    d->huge = rc;
    return 0;
}

/* The disk tier's directory, checked and locked like --dir, and its index. */
static int open_disk(struct daemon *d, char *err, size_t errlen)
{
    const struct store_config *cfg = d->cfg;
    catalog_init(&d->disk, cfg->disk_budget);
    d->disk.policy = cfg->policy;
    if (!cfg->disk_dir)
        return 0;
    int fd = image_dir_open(cfg->disk_dir, "--disk-dir", err, errlen);
    if (fd < 0)
        return fd;
    d->disk_fd = fd;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0)
        return seterr(err, errlen, -errno, "--disk-dir %s: %s", cfg->disk_dir,
                      errno == EWOULDBLOCK ? "another store (or this one's --dir) is using it"
                                           : strerror(errno));
    return disk_adopt_dir(fd, cfg->disk_dir, &d->disk, &d->n, err, errlen);
}

/* Enough fds for MAX_CONNS clients, within the hard limit. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    rlim_t want = MAX_CONNS + 256;
    if (rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        log_warn("RLIMIT_NOFILE: %s", strerror(errno));
}

static int daemon_open(struct daemon *d, const struct store_config *cfg, char *err, size_t errlen)
{
    d->cfg = cfg;
    d->listen_fd = d->sig_fd = d->dir_fd = d->disk_fd = -1;
    raise_fd_limit();
    d->fingerprint = engine_fingerprint();
    catalog_init(&d->cat, cfg->budget);
    d->cat.policy = cfg->policy;
    d->conns = calloc(MAX_CONNS, sizeof(*d->conns));
    if (!d->conns)
        return seterr(err, errlen, -ENOMEM, "out of memory");
    int rc = prepare_dirs(d, err, errlen);
    if (rc == 0)
        rc = d->sig_fd = open_signals(err, errlen);
    if (rc >= 0)
        rc = image_adopt_dir(d->dir_fd, cfg->dir, &d->cat, &d->n, err, errlen);
    if (rc >= 0)
        rc = open_disk(d, err, errlen);
    if (rc >= 0)
        rc = worker_start(&d->hasher, err, errlen);
    if (rc >= 0)
        rc = worker_start(&d->compiler, err, errlen);
    if (rc >= 0)
        rc = worker_start(&d->writer, err, errlen);
    for (struct model *m = d->cat.models; rc >= 0 && m; m = m->next)
        disk_store(d, m); /* adopted images the disk tier lacks */
    if (rc >= 0 && cfg->metrics)
        rc = metrics_start(cfg->metrics, &d->metrics, err, errlen);
    if (rc >= 0)
        rc = d->listen_fd = listen_on(cfg->socket_path, err, errlen);
    d->manifest_dirty = d->stats_dirty = 1;
    return rc < 0 ? rc : 0;
}

static void publish(struct daemon *d)
{
    char err[512];
    if (d->manifest_dirty) {
        if (manifest_write(d->dir_fd, MANIFEST_NAME, &d->cat, d->fingerprint, err, sizeof(err)) < 0)
            log_error("%s", err);
        d->manifest_dirty = 0;
    }
    /* Only when images come or go (and at stop): uses alone would fsync it on every read back. */
    if (d->disk_manifest_dirty && d->disk_fd >= 0) {
        if (manifest_write(d->disk_fd, MANIFEST_NAME, &d->disk, d->fingerprint, err, sizeof(err)) <
            0)
            log_error("--disk-dir %s: %s", d->cfg->disk_dir, err);
        d->disk_manifest_dirty = 0;
    }
    if (d->stats_dirty && d->metrics)
        metrics_publish(d->metrics,
                        stats_prometheus(&d->cat, d->disk_fd >= 0 ? &d->disk : NULL, &d->n));
    d->stats_dirty = 0;
}

static void handle_signal(struct daemon *d)
{
    struct signalfd_siginfo si;
    while (read(d->sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        log_info("signal %u: stopping", si.ssi_signo);
        d->stop = 1;
    }
}

#define POLL_FIXED 5 /* signalfd, listening socket, hasher, compiler and writer pipes */

static void take_finished(struct daemon *d, struct worker *w)
{
    for (struct job *job = worker_take_done(w), *next; job; job = next) {
        next = job->next;
        switch (job->kind) {
        case JOB_HASH:
            finish_hash(d, job); /* frees it or hands it on */
            break;
        case JOB_DISK_WRITE:
            finish_disk_write(d, job);
            job_free(job);
            break;
        case JOB_COMPILE:
        case JOB_DISK_READ:
            if (!finish_load(d, job))
                job_free(job);
            break;
        }
    }
}

static void loop_once(struct daemon *d, struct pollfd *pfd)
{
    size_t n = d->n_conns;
    pfd[0] = (struct pollfd){.fd = d->sig_fd, .events = POLLIN};
    pfd[1] = (struct pollfd){.fd = d->listen_fd, .events = POLLIN};
    pfd[2] = (struct pollfd){.fd = d->hasher.notify[0], .events = POLLIN};
    pfd[3] = (struct pollfd){.fd = d->compiler.notify[0], .events = POLLIN};
    pfd[4] = (struct pollfd){.fd = d->writer.notify[0], .events = POLLIN};
    for (size_t i = 0; i < n; i++)
        pfd[POLL_FIXED + i] = (struct pollfd){.fd = d->conns[i]->fd, .events = POLLIN};
    if (poll(pfd, n + POLL_FIXED, -1) < 0) {
        if (errno != EINTR)
            log_error("poll: %s", strerror(errno));
        return;
    }
    if (pfd[0].revents)
        handle_signal(d);
    /* Walk backwards: conn_close moves the last connection into the freed slot. */
    for (size_t i = n; i-- > 0;) {
        short ev = pfd[POLL_FIXED + i].revents;
        if (ev && ((ev & POLLIN) ? conn_read(d, d->conns[i]) < 0 : 1))
            conn_close(d, i);
    }
    if (pfd[2].revents)
        take_finished(d, &d->hasher);
    if (pfd[3].revents)
        take_finished(d, &d->compiler);
    if (pfd[4].revents)
        take_finished(d, &d->writer);
    for (size_t i = d->n_conns; i-- > 0;)
        if (d->conns[i]->broken)
            conn_close(d, i);
    if (pfd[1].revents)
        accept_all(d);
    publish(d);
}

static void daemon_close(struct daemon *d)
{
    worker_stop(&d->hasher);
    worker_stop(&d->compiler);
    worker_stop(&d->writer);
    metrics_stop(d->metrics);
    while (d->n_conns)
        conn_close(d, d->n_conns - 1);
    int served = d->listen_fd >= 0; /* only a store that served may touch its socket and files */
    if (served) {
        close(d->listen_fd);
        unlink(d->cfg->socket_path);
        if (d->cfg->keep_images)
            publish(d);
        d->disk_manifest_dirty = 1; /* the disk tier always stays: its uses and priorities too */
        publish(d);
    }
    for (struct pending *p = d->pending, *next; p; p = next) {
        next = p->next;
        answer_waiters(d, p, -ESHUTDOWN, "store stopping");
        free(p);
    }
    for (struct model *m = d->cat.models; m; m = m->next)
        if (m->fd >= 0)
            close(m->fd);
    for (struct blob *b = d->cat.blobs; b; b = b->next)
        if (b->fd >= 0)
            close(b->fd);
    if (served && !d->cfg->keep_images) { /* a clean stop gives the memory back */
        image_remove_all(d->dir_fd, d->cfg->dir);
        if (d->huge)
            image_dir_unmount(d->dir_fd, d->cfg->dir);
        if (rmdir(d->cfg->dir) < 0 && errno != ENOTEMPTY && errno != EEXIST)
            log_warn("%s: rmdir: %s", d->cfg->dir, strerror(errno));
    }
    if (d->dir_fd >= 0)
        close(d->dir_fd);
    if (d->disk_fd >= 0)
        close(d->disk_fd);
    catalog_free(&d->cat);
    catalog_free(&d->disk);
    refusals_free(&d->refusals);
    while (d->cache) {
        struct src_cache *next = d->cache->next;
        free(d->cache);
        d->cache = next;
    }
    if (d->sig_fd >= 0)
        close(d->sig_fd);
    free(d->conns);
}

int store_run(const struct store_config *cfg)
{
    struct daemon *d = calloc(1, sizeof(*d));
    struct pollfd *pfd = calloc(MAX_CONNS + POLL_FIXED, sizeof(*pfd));
    char err[1024];
    int rc = d && pfd ? daemon_open(d, cfg, err, sizeof(err)) : -ENOMEM;
    if (rc < 0) {
        log_error("%s", d && pfd ? err : "out of memory");
    } else {
        char used[32], budget[32];
        log_info("serving %s: %zu model(s) adopted, %s of %s budget used, images in %s",
                 cfg->socket_path, catalog_count(&d->cat, MODEL_RESIDENT),
                 format_size(d->cat.resident_bytes, used, sizeof(used)),
                 format_size(d->cat.budget, budget, sizeof(budget)), cfg->dir);
        while (!d->stop)
            loop_once(d, pfd);
    }
    if (d)
        daemon_close(d);
    free(d);
    free(pfd);
    return rc < 0 ? 1 : 0;
}
