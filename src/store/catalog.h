/*
 * catalog.h — the store's models, their leases, the memory budget and the LRU order (internal).
 *
 * Owns: the in-memory list of models the store knows (compiling or resident) and the budget
 * arithmetic. Pure bookkeeping: no files, no sockets, so it is unit-tested on its own.
 * Invariants:
 *   - resident_bytes is the sum of the sizes of RESIDENT models and never exceeds budget;
 *   - a model with leases > 0 is never chosen for eviction;
 *   - eviction order is ascending release_seq: the least recently released (or adopted) first.
 */
#ifndef SHMFAAS_STORE_CATALOG_H
#define SHMFAAS_STORE_CATALOG_H

#include "common/common.h"

#include <stddef.h>
#include <stdint.h>

#define CATALOG_NAMES_LEN 256

enum model_state { MODEL_COMPILING, MODEL_RESIDENT };

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
    int fd;               /* O_RDONLY fd of the image file (RESIDENT), else -1 */
    struct model *next;
};

struct catalog {
    struct model *models;
    uint64_t budget;
    uint64_t resident_bytes;
    uint64_t seq; /* source of release_seq values */
};

void catalog_init(struct catalog *c, uint64_t budget);
/* Frees every model (does not close fds: the owner does). */
void catalog_free(struct catalog *c);

/* A new COMPILING model, linked in; NULL when out of memory. */
struct model *catalog_add(struct catalog *c, const uint8_t identity[SHA256_LEN],
                          const uint8_t source_sha[SHA256_LEN], int threads, const char *name);
/* Unlinks and frees m (subtracting its size if it was resident). */
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
void catalog_lease(struct catalog *c, struct model *m, int64_t now_ms);
void catalog_release(struct catalog *c, struct model *m, int64_t now_ms);

/* Chooses the lease-free resident models to evict, in LRU order, so that `need` more bytes fit
 * the budget. Fills victims (cap entries) and *n_victims. When they cannot, returns -ENOSPC with
 * "budget exhausted: need X, budget Y, Z pinned by N leases on M models (a: ..., 3 leases; ...)".
 * `name` is the model being admitted, for the message. */
int catalog_plan_room(const struct catalog *c, uint64_t need, const char *name,
                      struct model **victims, size_t cap, size_t *n_victims, char *err,
                      size_t errlen);

size_t catalog_count(const struct catalog *c, enum model_state state);
int catalog_total_leases(const struct catalog *c);

#endif
