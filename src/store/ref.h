/*
 * ref.h — how a model ref from a client becomes a file or a hash (internal to the store).
 *
 * A thin user of the common code: the syntax is model_ref_parse's (common/modelref.h, the same
 * parser the gateway runs at deploy), the file lookup confine_open's (common/confine.h, the same
 * resolver the gateway and the instance use). Guarantees: a REF_PATH result is the canonical path
 * of a regular file reached inside the models directory without leaving it (no ".." above it, no
 * symlink out; symlinks that stay inside are followed); anything else is refused with a message
 * saying which rule it broke: -EINVAL syntax or not a regular file, -EPERM outside the models
 * directory, -ENOENT missing.
 *   "resnet18" (or "resnet18:latest")  → <models>/resnet18.onnx
 *   "resnet18:v2" (any registry/ before) → <models>/resnet18/v2.onnx, listed as "resnet18:v2"
 *   "resnet18[:v2]@sha256:<hex>"      → the same file, pinned: the attach is refused
 *                                       (-EBADMSG, model_ref_check_digest) when the file's
 *                                       SHA-256 is not <hex>
 *   "/srv/models/resnet18.onnx"       → itself, if it resolves inside <models>
 *   "sha256:<64 hex>"                 → a resident model's identity or source hash
 * Any of them may end in "?SHAPES", returned raw in `shapes` (the daemon parses it with the
 * engine); one model compiled for other shapes is another image.
 * The path is looked up again by the hash worker: the models directory is the operator's (and
 * the gateway's model push, which writes it with write_file_atomic), not a client's.
 */
#ifndef SHMFAAS_STORE_REF_H
#define SHMFAAS_STORE_REF_H

#include "common/common.h"
#include "common/modelref.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REF_MAX_NAME   MODEL_REF_NAME_MAX
#define REF_MAX_SHAPES MODEL_REF_SHAPES_MAX /* bytes of the "?SHAPES" suffix */

enum ref_kind { REF_PATH, REF_HASH };

struct ref {
    enum ref_kind kind;
    char path[PATH_MAX];             /* REF_PATH: resolved file */
    char name[REF_MAX_NAME + 1];     /* REF_PATH: the name asked by ("name" or "name:tag", cut
                                        to REF_MAX_NAME), or the file name without ".onnx" */
    bool pinned;                     /* REF_PATH: an @sha256: digest was given ... */
    uint8_t pin[SHA256_LEN];         /* ... the SHA-256 the file must have */
    uint8_t hash[SHA256_LEN];        /* REF_HASH */
    char shapes[REF_MAX_SHAPES + 1]; /* after '?'; "" when none */
};

/* models_real is the realpath() of --models. */
int ref_resolve(const char *models_real, const char *ref, struct ref *out, char *err,
                size_t errlen);

#endif
