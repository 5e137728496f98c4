/*
 * fuzz_tensor_json — drives engine_tensors_from_json (the JSON tensor schema of shmfaas-run and
 * shmfaas-fn) with arbitrary bytes, under both keys, sequences and optionals included (their
 * elements "NAME[k]" are grouped back into a sequence by the writer). A set that parses is written
 * back with engine_tensors_to_json and must parse again into the same names, dtypes, shapes and
 * bytes (abort otherwise, so the fuzzer reports it).
 *
 * libFuzzer (clang): tests/fuzz/run-fuzz tensor_json SECONDS. Replay (gcc): fuzz-tensor-json-replay
 * [FILE...]; with no file it replays tests/fuzz/corpus/tensor_json (see fuzz_replay.h).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int tensor_equal(const struct engine_tensor *a, const struct engine_tensor *b)
{
    if (strcmp(a->name, b->name) || a->dtype != b->dtype || a->shape.rank != b->shape.rank ||
        a->nbytes != b->nbytes)
        return 0;
    for (int d = 0; d < a->shape.rank; d++)
        if (a->shape.dims[d] != b->shape.dims[d])
            return 0;
    return a->nbytes == 0 || memcmp(a->data, b->data, a->nbytes) == 0;
}

static void check_round_trip(const struct engine_tensor_set *set, const char *key)
{
    char *json = engine_tensors_to_json(set->t, set->n, key);
    if (!json)
        return;
    struct engine_tensor_set again = {0};
    char err[256];
    if (engine_tensors_from_json(json, strlen(json), key, &again, err, sizeof(err)) < 0)
        abort();
    if (again.n != set->n)
        abort();
    for (int i = 0; i < set->n; i++)
        if (!tensor_equal(&set->t[i], &again.t[i]))
            abort();
    engine_tensor_set_free(&again);
    free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const keys[] = {"inputs", "outputs"};
    for (int k = 0; k < 2; k++) {
        struct engine_tensor_set set = {0};
        char err[256];
        if (engine_tensors_from_json((const char *)data, size, keys[k], &set, err, sizeof(err)) < 0)
            continue;
        check_round_trip(&set, keys[k]);
        engine_tensor_set_free(&set);
    }
    return 0;
}

#include "fuzz_replay.h"
