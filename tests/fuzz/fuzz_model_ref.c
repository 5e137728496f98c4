/*
 * fuzz_model_ref — drives model_ref_parse (common/modelref.h: the one model-ref syntax of the
 * gateway, the store and the instance) with arbitrary bytes. A ref that parses must hold only
 * what the rules allow (limits, charset, kind-specific fields; a NAME's file is "name.onnx" or
 * "name/tag.onnx", never above the models directory) and, spelled again from the struct (the
 * registry/path prefix is dropped: it means nothing), parse into the same struct (abort
 * otherwise, so the fuzzer reports it).
 *
 * libFuzzer (clang): tests/fuzz/run-fuzz model_ref SECONDS. Replay (gcc): fuzz-model-ref-replay
 * [FILE...]; with no file it replays tests/fuzz/corpus/model_ref (see fuzz_replay.h).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/modelref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_printable(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);
    if (n > max)
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            abort();
}

static void check_fields(const struct model_ref *r, size_t size)
{
    char file[MODEL_REF_CANON_MAX + 16];
    check_printable(r->shapes, MODEL_REF_SHAPES_MAX);
    check_printable(r->name, MODEL_REF_NAME_MAX);
    check_printable(r->path, MODEL_REF_MAX);
    if (strchr(r->shapes, '\0') != r->shapes + strlen(r->shapes) || size > MODEL_REF_MAX)
        abort();
    switch (r->kind) {
    case MODEL_REF_NAME:
        if (!r->name[0] || r->name[0] == '.' || r->name[0] == '-' || strstr(r->name, "..") ||
            strchr(r->name, '/') || strchr(r->name, ':'))
            abort();
        check_printable(r->tag, MODEL_REF_TAG_MAX);
        if (r->tag[0] == '.' || r->tag[0] == '-' || strpbrk(r->tag, "/:@?"))
            abort();
        if (model_ref_file(r, file, sizeof(file)) < 0 || file[0] == '.' || strstr(file, "/.") ||
            file[0] == '/' || strchr(file, '/') != strrchr(file, '/'))
            abort(); /* a file name, or one directory (the model's) and a file: never above */
        break;
    case MODEL_REF_PATH:
        if (r->path[0] != '/' || strchr(r->path, '?'))
            abort();
        break;
    case MODEL_REF_HASH:
        break;
    default:
        abort();
    }
}

/* The ref spelled from its fields, parsed again, must give the same fields. */
static void check_round_trip(const struct model_ref *r)
{
    char text[MODEL_REF_MAX + 1], hex[SHA256_HEX_LEN], err[256];
    int n = 0;
    switch (r->kind) {
    case MODEL_REF_NAME:
        n = snprintf(text, sizeof(text), "%s%s%s", r->name, r->tag[0] ? ":" : "", r->tag);
        if (r->pinned) {
            sha256_hex(r->digest, hex);
            n += snprintf(text + n, sizeof(text) - (size_t)n, "@sha256:%s", hex);
        }
        break;
    case MODEL_REF_PATH:
        n = snprintf(text, sizeof(text), "%s", r->path);
        break;
    case MODEL_REF_HASH:
        sha256_hex(r->hash, hex);
        n = snprintf(text, sizeof(text), "sha256:%s", hex);
        break;
    }
    if (r->shapes[0])
        n += snprintf(text + n, sizeof(text) - (size_t)n, "?%s", r->shapes);
    struct model_ref again;
    if (model_ref_parse(text, strlen(text), &again, err, sizeof(err)) < 0)
        abort();
    if (again.kind != r->kind || strcmp(again.name, r->name) || strcmp(again.tag, r->tag) ||
        strcmp(again.path, r->path) || strcmp(again.shapes, r->shapes) ||
        memcmp(again.hash, r->hash, SHA256_LEN) || again.pinned != r->pinned ||
        memcmp(again.digest, r->digest, SHA256_LEN))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct model_ref r;
    char err[256];
    int rc = model_ref_parse((const char *)data, size, &r, err, sizeof(err));
    if (strnlen(err, sizeof(err)) == sizeof(err))
        abort();
    for (const char *p = err; rc < 0 && *p; p++) /* messages end up in JSON: printable only */
        if ((unsigned char)*p < 0x20 || *p == 0x7f || (unsigned char)*p >= 0x80)
            abort();
    if (rc < 0)
        return 0;
    check_fields(&r, size);
    check_round_trip(&r);
    return 0;
}

#include "fuzz_replay.h"
