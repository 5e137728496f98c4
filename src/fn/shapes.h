/*
 * shapes.h — run-time shapes in an instance (issue 17; internal to src/fn).
 *
 * A function whose model has symbolic dims, deployed without input_shape, serves each request on
 * a plan for that request's input shapes: with the store, one image per request shape attached
 * by the model ref "MODEL?SHAPES" (so each shape's image is shared by every instance of every
 * function of that model), leased while cached here; with --private, the engine's specialising
 * model (engine_dynamic_*, which also resolves shape operands that arrive as inputs). Both caches
 * are LRU, bounded by FN_SHAPES_MAX plans and ENGINE_DYNAMIC_BYTES (--private: images and
 * arenas; store: arenas, the images being the store's budget); a dropped store plan's lease is
 * released. The first request of a new shape pays an attach (a compile in the store when no
 * instance asked for it before) or a private compile. A store-backed instance attaches at most
 * FN_SHAPES_NEW_PER_MIN new shapes a minute (-EAGAIN beyond): each makes the store compile an
 * image that takes budget from other functions' idle images.
 */
#ifndef SHMFAAS_FN_SHAPES_H
#define SHMFAAS_FN_SHAPES_H

#include "fn/fn.h"

#include <stdbool.h>

#define FN_SHAPES_MAX         8
#define FN_SHAPES_NEW_PER_MIN 60 /* new shapes a store-backed instance attaches per minute */

struct fn_shapes;

/* Whether err, from opening the model without input_shape, says it needs per-request shapes:
 * symbolic dims (store or --private), or, --private, a shape operand that is an input. */
bool fn_shapes_needed(const struct fn_config *c, const char *err);
int fn_shapes_open(const struct fn_config *c, struct fn_shapes **out, char *err, size_t errlen);
/* Runs one request on its shape's plan (attached or compiled on a miss). *n_outputs: how many of
 * the max_outputs slots the model filled. -EINVAL: the request's shapes or values do not fit the
 * model (the caller's fault); -EAGAIN: too many new shapes this minute. */
int fn_shapes_run(struct fn_shapes *s, const struct engine_tensor *in, int n_in,
                  struct engine_tensor *out, int max_outputs, int *n_outputs, char *err,
                  size_t errlen);
void fn_shapes_release_memory(struct fn_shapes *s);
/* "store, 3 shapes cached" for logs. */
const char *fn_shapes_describe(const struct fn_shapes *s, char *buf, size_t len);
void fn_shapes_close(struct fn_shapes *s); /* NULL is a no-op */

#endif
