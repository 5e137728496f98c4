/*
 * store_source.h — an instance's lease on a store image (internal to src/fn).
 *
 * Owns the store connection, the lease and the PROT_READ mapping. The mapping outlives the store:
 * if the store restarts, the instance keeps serving from it while a background thread reconnects
 * and re-takes the lease (client library reconnect), retrying with backoff until it succeeds or
 * the source is closed.
 */
#ifndef SHMFAAS_FN_STORE_SOURCE_H
#define SHMFAAS_FN_STORE_SOURCE_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

struct fn_store_source;

/* The codes fn_store_source_open returns when the store refused the model (store/proto.h): the
 * budget cannot hold the image, or the model does not compile (both remembered by the store for
 * a backoff window), or the store does not compile for the instance's thread count. Restarting
 * the instance at once cannot help. */
#define FN_STORE_REFUSED_BUDGET  (-ENOSPC)
#define FN_STORE_REFUSED_COMPILE (-ENOEXEC)
#define FN_STORE_REFUSED_THREADS (-ERANGE)

int fn_store_source_open(const char *socket_path, const char *ref, int threads,
                         struct fn_store_source **out, void **image, size_t *len,
                         const void **weights, size_t *weights_len, char *err, size_t errlen);
/* NULL is a no-op. */
void fn_store_source_close(struct fn_store_source *s);

/* What proves two mappings are of the same image: the file (device, inode) and its bytes. */
struct fn_image_id {
    uint64_t dev, ino, size;
    uint8_t sha256[32];
};

/* The leased image's identity. */
int fn_store_source_id(const struct fn_store_source *s, struct fn_image_id *id);

/* For a template: attaches ref, maps the image itself (PROT_READ, MAP_SHARED, from its own fd)
 * and drops the lease and the connection, so that a template never pins a model (the store may
 * evict it; its instances take leases of their own). *fd stays open: its link count falls to 0
 * when the store evicts the image. */
int fn_store_map_unleased(const char *socket_path, const char *ref, int threads, void **image,
                          size_t *len, void **weights, size_t *weights_len, int *fd,
                          struct fn_image_id *id, char *err, size_t errlen);

#endif
