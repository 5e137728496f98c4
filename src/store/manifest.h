/*
 * manifest.h — <dir>/manifest.json: what the store knew about its images (internal).
 *
 * Owns: the manifest's JSON form. The image files are the truth (a restarted store adopts what
 * verifies); the manifest only carries what a file cannot: the names a model was attached by, its
 * last use (the LRU order survives a restart), its compile and disk-read times, its use count
 * and GDSF priority with the catalog's clock (the GDSF order survives too). The disk tier keeps
 * one of its own in its directory. Written atomically after every change, so a SIGKILL leaves
 * either the old or the new one.
 */
#ifndef SHMFAAS_STORE_MANIFEST_H
#define SHMFAAS_STORE_MANIFEST_H

#include "store/catalog.h"

struct manifest_entry {
    char idhex[SHA256_HEX_LEN];
    char names[CATALOG_NAMES_LEN];
    int64_t last_use_ms;
    uint64_t release_seq;
    double compile_s;
    double read_s;
    uint64_t freq;
    double priority;
};

struct manifest {
    struct manifest_entry *e;
    size_t n;
    double clock; /* the catalog's GDSF clock */
};

#define MANIFEST_NAME "manifest.json"

/* Writes every RESIDENT model of c to name in the directory dir_fd (write_file_atomic_at). */
int manifest_write(int dir_fd, const char *name, const struct catalog *c, const char *fingerprint,
                   char *err, size_t errlen);
/* Reads name in dir_fd (O_NOFOLLOW, a regular file); a missing file is an empty manifest.
 * Malformed entries are skipped with a warning. */
int manifest_read(int dir_fd, const char *name, struct manifest *out, char *err, size_t errlen);
const struct manifest_entry *manifest_find(const struct manifest *m, const char *idhex);
void manifest_free(struct manifest *m);

#endif
