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
 *   resnet18                     MODEL_REF_NAME  <models>/resnet18.onnx
 *   resnet18:latest              the same (faas-cli appends ":latest"); any other tag is refused
 *   /srv/models/resnet18.onnx    MODEL_REF_PATH  must resolve inside <models> (confine_open)
 *   sha256:<64 hex>              MODEL_REF_HASH  a resident image's identity or source hash
 *
 * Each may end in "?SHAPES": the input shapes to compile a symbolic-dim model for
 * ("resnet50?input=1x3x320x320", the engine's [NAME=]DxDx..;.. text), returned raw in `shapes`; its
 * callers parse it with the engine. A name is [A-Za-z0-9_][A-Za-z0-9._-]* without "..". No ref
 * holds a NUL or another control byte. The struct leaves room for OCI forms
 * (registry/path/name:tag, name@sha256:<hex>): they are refused today with a message saying so.
 */
#ifndef SHMFAAS_COMMON_MODELREF_H
#define SHMFAAS_COMMON_MODELREF_H

#include "common/common.h"

#include <stddef.h>
#include <stdint.h>

#define MODEL_REF_MAX        1024 /* bytes of a whole ref, "?SHAPES" included */
#define MODEL_REF_NAME_MAX   128  /* bytes of a name (without tag) */
#define MODEL_REF_TAG_MAX    128
#define MODEL_REF_SHAPES_MAX 255 /* bytes after '?' */

enum model_ref_kind { MODEL_REF_NAME, MODEL_REF_PATH, MODEL_REF_HASH };

struct model_ref {
    enum model_ref_kind kind;
    char name[MODEL_REF_NAME_MAX + 1];     /* NAME: the model name, no tag */
    char tag[MODEL_REF_TAG_MAX + 1];       /* NAME: "" or "latest" */
    char path[MODEL_REF_MAX + 1];          /* PATH: the absolute path as written */
    uint8_t hash[SHA256_LEN];              /* HASH */
    char shapes[MODEL_REF_SHAPES_MAX + 1]; /* after '?', raw; "" when none */
};

/* Parses text[0..len) (no NUL needed). The fuzz entry point (tests/fuzz/fuzz_model_ref.c). */
int model_ref_parse(const char *text, size_t len, struct model_ref *out, char *err, size_t errlen);

/* The file a NAME or PATH ref names, relative to the models directory or absolute:
 * "<name>.onnx" or the path. -EINVAL for a HASH ref (no file). */
int model_ref_file(const struct model_ref *r, char *out, size_t len);

#endif
