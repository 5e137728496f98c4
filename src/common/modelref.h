/*
 * modelref.h — the syntax of a model ref: one parser, shared by the gateway (a FunctionDeployment's
 * `image`, checked at deploy), the store (ATTACH/EVICT) and the instance (--private).
 *
 * Owns: what a model ref may look like and its limits. Guarantees: model_ref_parse reads at most
 * len bytes, allocates nothing, and either fills a struct model_ref whose strings are
 * NUL-terminated and within the limits below, or returns -EINVAL / -ENAMETOOLONG with a message
 * naming the rule that was broken. It never touches the file system: whether a name or a path
 * exists inside the models directory is confine_open's question (common/confine.h).
 *
 *   resnet18                     MODEL_REF_NAME  <models>/resnet18.onnx (the current model)
 *   resnet18:latest              the same (faas-cli appends ":latest" to an image without a tag)
 *   resnet18:v2                  <models>/resnet18/v2.onnx (a tagged version: no ':' in file names)
 *   reg.io:5000/team/resnet18:v2 the same: the registry/path before the name is checked and ignored
 *   resnet18@sha256:<64 hex>     <models>/resnet18.onnx, pinned: whoever reads the file (the
 *   resnet18:v2@sha256:<64 hex>  gateway at deploy, the store at attach) refuses it when its
 *                                SHA-256 differs (model_ref_check_digest)
 *   /srv/models/resnet18.onnx    MODEL_REF_PATH  must resolve inside <models> (confine_open)
 *   sha256:<64 hex>              MODEL_REF_HASH  a resident image's identity or source hash
 *
 * Each may end in "?SHAPES": the input shapes to compile a symbolic-dim model for
 * ("resnet50?input=1x3x320x320", the engine's [NAME=]DxDx..;.. text), returned raw in `shapes`; its
 * callers parse it with the engine. A name (and each registry/path component) is
 * [A-Za-z0-9_][A-Za-z0-9._-]* without ".."; a tag is OCI's [A-Za-z0-9_][A-Za-z0-9._-]{0,127}. No
 * ref holds a NUL or another control byte.
 */
#ifndef SHMFAAS_COMMON_MODELREF_H
#define SHMFAAS_COMMON_MODELREF_H

#include "common/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MODEL_REF_MAX        1024 /* bytes of a whole ref, "?SHAPES" included */
#define MODEL_REF_NAME_MAX   128  /* bytes of a name (without tag) */
#define MODEL_REF_TAG_MAX    128
#define MODEL_REF_SHAPES_MAX 255 /* bytes after '?' */
/* bytes of "name:tag" (model_ref_canonical) */
#define MODEL_REF_CANON_MAX (MODEL_REF_NAME_MAX + 1 + MODEL_REF_TAG_MAX)

enum model_ref_kind { MODEL_REF_NAME, MODEL_REF_PATH, MODEL_REF_HASH };

struct model_ref {
    enum model_ref_kind kind;
    char name[MODEL_REF_NAME_MAX + 1];     /* NAME: the model name, no tag */
    char tag[MODEL_REF_TAG_MAX + 1];       /* NAME: as written; "" when none */
    bool pinned;                           /* NAME: an @sha256: digest was given */
    uint8_t digest[SHA256_LEN];            /* NAME, when pinned: the ONNX file's SHA-256 */
    char path[MODEL_REF_MAX + 1];          /* PATH: the absolute path as written */
    uint8_t hash[SHA256_LEN];              /* HASH */
    char shapes[MODEL_REF_SHAPES_MAX + 1]; /* after '?', raw; "" when none */
};

/* Parses text[0..len) (no NUL needed). The fuzz entry point (tests/fuzz/fuzz_model_ref.c). */
int model_ref_parse(const char *text, size_t len, struct model_ref *out, char *err, size_t errlen);

/* The file a NAME or PATH ref names, relative to the models directory or absolute:
 * "<name>.onnx" (no tag or "latest"), "<name>/<tag>.onnx" or the path. -EINVAL for a HASH ref. */
int model_ref_file(const struct model_ref *r, char *out, size_t len);

/* No tag, or ":latest": the current model of that name. */
bool model_ref_is_latest(const struct model_ref *r);

/* A NAME ref as models are listed: "name" (latest) or "name:tag"; no registry, digest or shapes.
 * -EINVAL for other kinds, -ENAMETOOLONG when len is short (MODEL_REF_CANON_MAX + 1 suffices). */
int model_ref_canonical(const struct model_ref *r, char *out, size_t len);

/* How a deployed image is listed by the store and /system/models: model_ref_canonical of a NAME
 * ref ("name" or "name:tag", into buf), else image itself (a path, a hash, or text that is no
 * ref). */
const char *model_ref_listed(const char *image, char *buf, size_t len);

/* A pinned ref's check, for whoever hashed the file: 0 when pin is NULL (not pinned) or sha (the
 * file's SHA-256) equals it; else -EBADMSG with a message naming the model and both hashes. */
int model_ref_check_digest(const char *name, const uint8_t *pin, const uint8_t sha[SHA256_LEN],
                           char *err, size_t errlen);

#endif
