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
/* The image's weights blob when it is a plan part (*len its bytes), else NULL. */
const void *fn_source_weights(const struct fn_source *s, size_t *len);
/* "store" or "private", for logs. */
const char *fn_source_kind(const struct fn_source *s);
void fn_source_close(struct fn_source *s);

/* A template's image: mapped without a lease (fn_store_map_unleased). */
int fn_source_open_template(const struct fn_config *c, struct fn_source **out, char *err,
                            size_t errlen);
/* The template's image fd (st_nlink 0: the store evicted the image), or -1. */
int fn_source_fd(const struct fn_source *s);
/* In an instance forked from a template, which has closed the inherited image fd (fn_source_fd)
 * before anything else: takes a lease of
 * the instance's own (its own connection, re-taken after a store restart like any instance's).
 * -ESTALE when the store now hands another image than the one the template mapped (evicted and
 * made again since): the instance must not serve from a mapping the store no longer counts. */
int fn_source_take_lease(struct fn_source *s, const struct fn_config *c, char *err, size_t errlen);

#endif
