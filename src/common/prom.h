/*
 * prom.h — the Prometheus text exposition format, version 0.0.4, written into a struct buf
 * (common.h). The gateway's and the store's /metrics pages are written with it.
 *
 * What the format asks and this guarantees: a family is one "# HELP name text" line (text with
 * backslash and newline escaped) and one "# TYPE name type" line before its samples; a sample is
 * "name{label="value",...} number\n" with label values escaped (backslash, double quote, newline);
 * numbers in full precision ("%.17g"), infinities and NaN as "+Inf", "-Inf", "NaN". Names are the
 * caller's constants ([a-zA-Z_:][a-zA-Z0-9_:]*) and are not checked. A histogram writes its
 * cumulative _bucket{le=...} series, "+Inf" last, then _sum and _count.
 * Content-Type of such a page: PROM_CONTENT_TYPE.
 */
#ifndef SHMFAAS_PROM_H
#define SHMFAAS_PROM_H

#include "common/common.h"

#include <stdint.h>

#define PROM_CONTENT_TYPE "text/plain; version=0.0.4"

/* "# HELP" and "# TYPE" of a family; type is "counter", "gauge", "histogram", ... */
void prom_header(struct buf *b, const char *name, const char *type, const char *help);
/* One sample: no labels when label is NULL, else label="value". */
void prom_sample(struct buf *b, const char *name, const char *label, const char *value, double v);
/* One sample with two labels. */
void prom_sample2(struct buf *b, const char *name, const char *l1, const char *v1, const char *l2,
                  const char *v2, double v);
/* prom_header then one unlabelled sample: a family of one figure. */
void prom_metric(struct buf *b, const char *name, const char *type, const char *help, double v);

/* A latency histogram in seconds with fixed bounds (5 ms .. 10 s). */
#define PROM_HIST_BUCKETS 11
extern const double prom_hist_bounds[PROM_HIST_BUCKETS];

struct prom_hist {
    uint64_t buckets[PROM_HIST_BUCKETS]; /* non-cumulative counts per bucket */
    uint64_t count;
    double sum;
};

void prom_hist_observe(struct prom_hist *h, double seconds);
/* The histogram's samples (its header is the caller's, with type "histogram"), each labelled
 * label="value" besides le. */
void prom_write_hist(struct buf *b, const char *name, const char *label, const char *value,
                     const struct prom_hist *h);

#endif
