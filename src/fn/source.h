/*
 * source.h — where an instance's plan image comes from (internal to src/fn).
 *
 * Owns the image bytes for the life of the instance: a PROT_READ mapping of the store's image
 * (under a lease, re-taken in the background after a store restart) or, with --private, the
 * instance's own copy (compiled from ONNX here, or read from a .plan file).
 */
#ifndef SHMFAAS_FN_SOURCE_H
#define SHMFAAS_FN_SOURCE_H

#include "fn/fn.h"

struct fn_source;

int fn_source_open(const struct fn_config *c, struct fn_source **out, char *err, size_t errlen);
const void *fn_source_image(const struct fn_source *s);
size_t fn_source_len(const struct fn_source *s);
/* "store" or "private", for logs. */
const char *fn_source_kind(const struct fn_source *s);
void fn_source_close(struct fn_source *s);

#endif
