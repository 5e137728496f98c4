/*
 * client.h — the store client library: how shmfaas-fn and shmfaasd talk to shmfaas-store.
 *
 * Owns: one connection to the store and the leases taken over it. Guarantees:
 *   - an attached image is mapped PROT_READ | MAP_SHARED from the O_RDONLY fd the store sent; the
 *     library never asks for write access, and the kernel would refuse it;
 *   - a lease lives until store_detach(), store_close() or the process dies (the store sees the
 *     connection close) — nothing can leak a lease in the store;
 *   - a plan part's weights blob (the store sends its fd beside the part's) is mapped once per
 *     process however many attached images share it, over any number of connections (the shape
 *     variants of one model): each image's `weights` points at that one mapping, unmapped with
 *     the last image using it;
 *   - after the store restarts, store_reconnect() re-attaches every lease the client held and
 *     keeps the existing mappings when the image is the same (same SHA-256), so a running
 *     instance keeps serving through the restart.
 * Not thread-safe: one connection per thread, or a lock around it.
 */
#ifndef SHMFAAS_CLIENT_H
#define SHMFAAS_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#define STORE_DEFAULT_SOCKET "/run/shmfaas/store.sock"

struct store_client;

/* An attached model image. Owned by the client; valid until store_detach()/store_close(). */
struct store_image {
    int fd;               /* O_RDONLY fd of the image file */
    uint64_t size;        /* image bytes */
    uint8_t sha256[32];   /* of the image bytes */
    uint8_t identity[32]; /* model identity (ONNX sha + engine fingerprint + threads) */
    const void *addr;     /* PROT_READ mapping of the whole image */
    int threads;          /* thread count the image was compiled for */
    const void *weights;  /* a plan part's weights blob (PROT_READ, one mapping shared by
                             every image of this process with the same blob), or NULL: a whole
                             image */
    int weights_fd;       /* O_RDONLY fd of the blob (the shared mapping's), or -1 */
    uint64_t weights_size;
    uint8_t weights_sha256[32];
    uint64_t lease;       /* lease id in the store */
    char name[256];       /* the name the store knows it by */
    char ref[4097];       /* the ref it was attached with (re-attached on reconnect) */
};

/* path NULL: STORE_DEFAULT_SOCKET. Errors say where and what to check. */
int store_connect(const char *path, struct store_client **out, char *err, size_t errlen);

/* Attaches ref (a model name, an absolute path inside the store's --models, or sha256:<hex>) for
 * `threads` intra-op threads (0: the store's default). Blocks while the store compiles. */
int store_attach(struct store_client *c, const char *ref, int threads,
                 const struct store_image **out, char *err, size_t errlen);

/* Drops the lease and unmaps the image. */
int store_detach(struct store_client *c, const struct store_image *img, char *err, size_t errlen);

/* The store's figures as JSON text ({"totals": {...}, "models": [...]}); free() it. */
int store_stats(struct store_client *c, char **json, char *err, size_t errlen);

/* Evicts every resident image of ref (any thread count) that no instance holds; refused while one
 * is leased, and for anyone but root and the store's own user. */
int store_evict_model(struct store_client *c, const char *ref, char *err, size_t errlen);

/* Has the store make ref's image resident for `threads` (compile it, or read it back from its
 * disk tier) without taking a lease: compile ahead of the first attach. Blocks until it is. */
int store_prepare(struct store_client *c, const char *ref, int threads, char *err, size_t errlen);

/* Reconnects (retrying for up to timeout_ms while the store restarts) and re-attaches every held
 * lease. An image whose bytes changed gets a new mapping; pointers into the old one stay valid
 * until store_detach/store_close. */
int store_reconnect(struct store_client *c, int timeout_ms, char *err, size_t errlen);

/* The connection's fd, for poll(): readable (EOF) when the store went away. */
int store_fd(const struct store_client *c);

/* Closes the connection (the store releases every lease) and unmaps every image. */
void store_close(struct store_client *c);

#endif
