/*
 * fuzz_admission — drives admission_review (webhook/admission.h: shmfaas-webhook's one entry for
 * AdmissionReview bodies) with arbitrary bytes. Whatever the bytes, the answer must be valid JSON
 * with status 200 (an AdmissionReview whose response has a uid and an allowed boolean, and, when
 * allowed with a patch, a base64 JSON Patch array of add/replace operations on /spec or /metadata)
 * or 400 ({"error": "..."}); anything else aborts, so the fuzzer reports it.
 *
 * libFuzzer (clang): tests/fuzz/run-fuzz admission SECONDS. Replay (gcc): fuzz-admission-replay
 * [FILE...]; with no file it replays tests/fuzz/corpus/admission (see fuzz_replay.h).
 */
#include <jansson.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "webhook/admission.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct admission_opts opts = {.socket_dir = "/run/shmfaas",
                                           .mount_path = "/run/shmfaas",
                                           .selector = "com.shmfaas.model",
                                           .run_as_user = 12000};

static void check_patch(const char *b64)
{
    size_t n = strlen(b64);
    unsigned char *raw = malloc(n + 1);
    if (!raw)
        abort();
    int len = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)n);
    while (len > 0 && raw[len - 1] == '\0')
        len--;
    json_t *p = len > 0 ? json_loadb((const char *)raw, (size_t)len, 0, NULL) : NULL;
    free(raw);
    if (!json_is_array(p) || !json_array_size(p))
        abort();
    size_t i;
    json_t *op;
    json_array_foreach(p, i, op) {
        const char *kind = json_string_value(json_object_get(op, "op"));
        const char *path = json_string_value(json_object_get(op, "path"));
        if (!kind || !path || (strcmp(kind, "add") && strcmp(kind, "replace")) ||
            !json_object_get(op, "value") ||
            (strncmp(path, "/spec/", 6) && strncmp(path, "/metadata/", 10)))
            abort();
    }
    json_decref(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned status = 0;
    char *out = NULL, err[256];
    if (admission_review(&opts, data, size, &status, &out, err, sizeof(err)) < 0)
        return 0; /* out of memory */
    json_t *j = json_loads(out, 0, NULL);
    free(out);
    if (!json_is_object(j))
        abort();
    if (status == 400) {
        if (!json_is_string(json_object_get(j, "error")))
            abort();
    } else if (status == 200) {
        json_t *resp = json_object_get(j, "response");
        json_t *allowed = json_object_get(resp, "allowed");
        if (!json_is_string(json_object_get(resp, "uid")) || !json_is_boolean(allowed))
            abort();
        const char *patch = json_string_value(json_object_get(resp, "patch"));
        if (patch && !json_is_true(allowed))
            abort();
        if (!json_is_true(allowed) &&
            !json_is_string(json_object_get(json_object_get(resp, "status"), "message")))
            abort();
        if (patch)
            check_patch(patch);
    } else {
        abort();
    }
    json_decref(j);
    return 0;
}

#include "fuzz_replay.h"
