/*
 * ref.h — how a model ref from a client becomes a file or a hash (internal to the store).
 *
 * Owns: the rules for model refs. Guarantees: a REF_PATH result is a realpath()ed regular file
 * strictly inside the models directory (no "..", no symlink out, no NUL, not empty, not too long);
 * anything else is refused with a message saying which rule it broke.
 *   "resnet18"                 → <models>/resnet18.onnx
 *   "/srv/models/resnet18.onnx" → itself, if it resolves inside <models>
 *   "sha256:<64 hex>"          → a resident model's identity or source hash
 * Any of them may end in "?SHAPES": the input shapes to compile a symbolic-dim model for
 * ("resnet50?input=1x3x320x320", the engine's [NAME=]DxDx..;.. text), returned raw in `shapes`
 * (the daemon parses it with the engine); one model compiled for other shapes is another image.
 */
#ifndef SHMFAAS_STORE_REF_H
#define SHMFAAS_STORE_REF_H

#include "common/common.h"

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#define REF_MAX_NAME   128
#define REF_MAX_SHAPES 255 /* bytes of the "?SHAPES" suffix */

enum ref_kind { REF_PATH, REF_HASH };

struct ref {
    enum ref_kind kind;
    char path[PATH_MAX];             /* REF_PATH: resolved file */
    char name[REF_MAX_NAME + 1];     /* REF_PATH: file name without ".onnx" */
    uint8_t hash[SHA256_LEN];        /* REF_HASH */
    char shapes[REF_MAX_SHAPES + 1]; /* after '?'; "" when none */
};

/* models_real is the realpath() of --models. */
int ref_resolve(const char *models_real, const char *ref, struct ref *out, char *err,
                size_t errlen);

#endif
