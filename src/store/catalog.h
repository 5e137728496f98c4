/*
 * catalog.h — the store's models, their leases, a budget and the eviction order (internal).
 *
 * Owns: a list of models (compiling or resident) and the budget arithmetic of one tier. The store
 * keeps two catalogs: the RAM tier (images in tmpfs) and, with --disk-dir, the disk tier (the
 * same images on local disk). Pure bookkeeping: no files, no sockets, so it is unit-tested on
 * its own. Invariants:
 *   - resident_bytes is the sum of the sizes of RESIDENT models plus the sizes of the weights
 *     blobs they share (each blob counted once, however many models refer to it) and never
 *     exceeds budget; a blob lives while a model refers to it (refs), and evicting the last
 *     model that refers to it frees its bytes too (catalog_plan_room counts them);
 *   - a model with leases > 0 is never chosen for eviction (the disk tier pins an image while
 *     it is written or read back the same way);
 *   - eviction order: CATALOG_LRU ascending release_seq (least recently released or adopted
 *     first); CATALOG_GDSF ascending priority, ties by release_seq. Greedy-Dual-Size-Frequency:
 *     on each use priority = clock + frequency × reload cost / size; an eviction sets the clock
 *     to the victim's priority, so what stays idle ages against what is used, and an image that
 *     is cheap to reload per byte goes before one that is expensive.
 */
#ifndef SHMFAAS_STORE_CATALOG_H
#define SHMFAAS_STORE_CATALOG_H

#include "common/common.h"

#include <stddef.h>
#include <stdint.h>

#define CATALOG_NAMES_LEN 256

enum model_state { MODEL_COMPILING, MODEL_RESIDENT };

enum catalog_policy { CATALOG_GDSF, CATALOG_LRU };

/* A weights blob (issue 17): one copy of a packed weights section, shared by every plan part
 * whose weights are those bytes (the shape variants of one model). */
struct blob {
    uint8_t sha[SHA256_LEN];  /* of its bytes: its name */
    char hex[SHA256_HEX_LEN]; /* file name stem: <dir>/<hex>.weights */
    uint64_t size;            /* bytes */
    int refs;                 /* models linked to it, in any state */
    int fd;                   /* O_RDONLY fd of the file, or -1 (the owner closes it) */
    struct blob *next;
};

struct model {
    uint8_t identity[SHA256_LEN];
    char idhex[SHA256_HEX_LEN];     /* file name stem: <dir>/<idhex>.plan */
    uint8_t source_sha[SHA256_LEN]; /* of the ONNX bytes */
    uint8_t image_sha[SHA256_LEN];  /* of the image file */
    int threads;                    /* the image was compiled for this many threads */
    char names[CATALOG_NAMES_LEN];  /* "resnet18,rn18": every name it was attached by */
    enum model_state state;
    uint64_t size;        /* image bytes (RESIDENT) */
    int leases;           /* live leases on it */
    uint64_t release_seq; /* LRU key: bigger = released more recently */
    int64_t last_use_ms;  /* wall clock of the last attach or release */
    double compile_s;     /* seconds its compile took */
    double read_s;        /* seconds its last read back from the disk tier took; 0 never */
    uint64_t freq;        /* GDSF: uses (attaches, reads back) */
    double cost_s;        /* GDSF: reload cost, seconds (compile, or disk read when on disk) */
    double priority;      /* GDSF: clock + freq × cost_s / size at the last use */
    int writing;          /* disk tier: the file is being written (pinned, not readable yet) */
    int fd;               /* O_RDONLY fd of the image file (RESIDENT), else -1 */
    struct blob *blob;    /* the plan part's weights blob, or NULL (a whole image) */
    struct model *next;
};

struct catalog {
    struct model *models;
    struct blob *blobs;
    uint64_t budget;
    uint64_t resident_bytes;
    uint64_t seq; /* source of release_seq values */
    enum catalog_policy policy;
    double clock; /* GDSF: the priority of the last victim */
};

/* policy CATALOG_GDSF (0) after init; set c->policy to change it. */
void catalog_init(struct catalog *c, uint64_t budget);
/* "gdsf" or "lru" → policy; -EINVAL otherwise. */
int catalog_policy_parse(const char *s, enum catalog_policy *out);
const char *catalog_policy_name(enum catalog_policy p);
/* Frees every model and blob (does not close fds: the owner does). */
void catalog_free(struct catalog *c);

/* A new COMPILING model, linked in; NULL when out of memory. */
struct model *catalog_add(struct catalog *c, const uint8_t identity[SHA256_LEN],
                          const uint8_t source_sha[SHA256_LEN], int threads, const char *name);
/* Unlinks and frees m (subtracting its size if it was resident); its blob loses a ref but stays
 * (catalog_blob_orphan finds it when that was the last). */
void catalog_remove(struct catalog *c, struct model *m);

struct model *catalog_find(const struct catalog *c, const uint8_t identity[SHA256_LEN]);
/* A model by its identity or by (source sha, threads). */
struct model *catalog_find_hash(const struct catalog *c, const uint8_t sha[SHA256_LEN],
                                int threads);
/* Adds name to m's names unless present or there is no room; sha256: refs are not names. */
void catalog_add_name(struct model *m, const char *name);
/* The same on any "a,b,c" list of len bytes. */
void catalog_names_add(char *names, size_t len, const char *name);

/* Marks m RESIDENT with its size; the caller has made room first (catalog_plan_room). */
void catalog_admit(struct catalog *c, struct model *m, uint64_t size);
/* A lease is a use: catalog_touch() too. */
void catalog_lease(struct catalog *c, struct model *m, int64_t now_ms);
void catalog_release(struct catalog *c, struct model *m, int64_t now_ms);
/* One more use of m: frequency + 1, priority = clock + frequency × cost_s / size. */
void catalog_touch(struct catalog *c, struct model *m);
/* A new reload cost for m (e.g. a disk copy now exists): its priority keeps its base clock. */
void catalog_set_cost(struct catalog *c, struct model *m, double cost_s);
/* Unlinks and frees a victim catalog_plan_room chose; GDSF: the clock rises to its priority. */
void catalog_evict(struct catalog *c, struct model *m);

/* Chooses the lease-free resident models to evict, in policy order, so that `need` more bytes fit
 * the budget. Fills victims (cap entries) and *n_victims. When they cannot, returns -ENOSPC with
 * "budget exhausted: need X, budget Y, Z pinned by N leases on M models (a: ..., 3 leases; ...)".
 * `name` is the model being admitted, for the message. */
int catalog_plan_room(const struct catalog *c, uint64_t need, const char *name,
                      struct model **victims, size_t cap, size_t *n_victims, char *err,
                      size_t errlen);

/* ---- weights blobs ---- */
struct blob *catalog_blob_find(const struct catalog *c, const uint8_t sha[SHA256_LEN]);
/* A new blob of size bytes (counted in resident_bytes now: room was made for it), no refs;
 * NULL when out of memory. */
struct blob *catalog_blob_add(struct catalog *c, const uint8_t sha[SHA256_LEN], uint64_t size,
                              int fd);
/* A blob of this catalog like `like` (another tier's: same SHA-256 and size, no fd), linked to
 * m; NULL when out of memory. */
struct blob *catalog_blob_add_link(struct catalog *c, struct model *m, const struct blob *like);
/* m refers to b from now on (b->refs + 1). */
void catalog_blob_link(struct model *m, struct blob *b);
/* A blob no model refers to any more, or NULL; the caller closes its fd, removes its file and
 * drops it. */
struct blob *catalog_blob_orphan(const struct catalog *c);
/* Unlinks and frees b, subtracting its size. */
void catalog_blob_drop(struct catalog *c, struct blob *b);
size_t catalog_blob_count(const struct catalog *c);
/* m's bytes with its whole blob: what a miss of m costs to load again (GDSF's size). */
uint64_t catalog_model_bytes(const struct model *m);

size_t catalog_count(const struct catalog *c, enum model_state state);
int catalog_total_leases(const struct catalog *c);

#endif
