/*
 * fuzz_onnx — drives the ONNX importer and the whole compiler (import, passes, plan) with arbitrary
 * bytes through engine_compile; an image it produces is then opened with engine_model_open, so a
 * compiler that writes an image its own loader refuses or crashes on is found as well (abort).
 *
 * libFuzzer (clang): tests/fuzz/run-fuzz onnx SECONDS. Replay (gcc): fuzz-onnx-replay [FILE...];
 * with no file it replays tests/fuzz/corpus/onnx (see fuzz_replay.h).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine/engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct engine_input_shape shapes[] = {
        {.name = "x", .shape = {.rank = 2, .dims = {1, 4}}},
    };
    /* an odd-sized input compiles every eligible 3x3 convolution as Winograd, whatever its size */
    struct engine_compile_opts opts = {.threads = 1,
                                       .model_name = "fuzz",
                                       .shapes = shapes,
                                       .n_shapes = 1,
                                       .winograd = (size & 1) ? ENGINE_WINOGRAD_ALL
                                                              : ENGINE_WINOGRAD_AUTO};
    void *image = NULL;
    size_t len = 0;
    char err[512];
    if (engine_compile(data, size, &opts, &image, &len, err, sizeof(err)) < 0)
        return 0;
    struct engine_model *m = NULL;
    if (engine_model_open(image, len, &m, err, sizeof(err)) < 0) {
        fprintf(stderr, "fuzz_onnx: the loader refused a freshly compiled image: %s\n", err);
        abort();
    }
    engine_model_close(m);
    engine_image_free(image);
    return 0;
}

#include "fuzz_replay.h"
