/*
 * fuzz_plan — drives the plan-image loader (engine_model_open) with hostile images and, when one
 * is accepted, a session run on zero inputs (so a bound the loader forgot shows up in the backend).
 *
 * Input: byte 0 selects the mode, the rest is the body.
 *   bit 0 clear: the body is an image, opened as is (64-byte aligned copy);
 *   bit 0 set:   the body is a list of 5-byte patches (little-endian u32 offset, modulo the image
 *                length, then a byte XORed there) applied to an image compiled at start-up from
 *                corpus/onnx/conv_relu_pool.onnx, so the image carries this CPU's fingerprint and
 *                mutations get past the version/ISA checks;
 *   bit 1 set:   an accepted image is also run once;
 *   bit 3 set:   the patched image is compiled instead from corpus/onnx/winograd_conv.onnx with
 *                every 3x3 convolution as Winograd (needs AVX2, else its convolutions are
 *                direct), so mutations reach the Winograd node's checks and kernels;
 *   bit 4 set:   (over bit 3) it is compiled from corpus/onnx/if_branch.onnx, an If on a run-time
 *                condition, so mutations reach the BRANCH nodes' checks and jumps;
 *   bit 5 set:   (over bits 3 and 4) it is compiled from corpus/onnx/loop_scan.onnx, a while
 *                Loop with a bounded scan output and a window sliced at the iteration number,
 *                and a Scan, so mutations reach the LOOP, LOOP_END, SCAN_SLICE and SLICE_DYN
 *                checks, the back jumps and the slice offsets;
 *   bit 6 set:   (over bits 3 to 5) it is compiled from corpus/onnx/qconv_qdq.onnx, a QDQ
 *                convolution (QDQ-lowered to oneDNN's int8 convolution), a ConvInteger on
 *                DynamicQuantizeLinear's output and one with its dequantising tail (Cast, Mul,
 *                Add, Relu) fused (a float32 dst, binary post-ops), so mutations reach the int8
 *                convolution's checks (scales, zero points, int8 layouts, the zero point cast,
 *                the binary posts' src1);
 *   bit 7 set:   plan parts (format 3): patched, the seed is split into a plan part and its
 *                weights blob (engine_image_split), the patches apply to the part, and the part
 *                is opened over the blob (engine_model_open_parts); raw, the body is a u32 LE
 *                part length, the part, then the blob;
 *   bit 2 clear: the tables checksum in the header is recomputed after the patches or on the raw
 *                body (it detects corruption, it is no secret: a hostile image carries a valid
 *                one), so mutations reach the section and node checks behind it.
 *
 * libFuzzer (clang): tests/fuzz/run-fuzz plan SECONDS. Replay (gcc): fuzz-plan-replay [FILE...];
 * with no file it replays tests/fuzz/corpus/plan (see fuzz_replay.h).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "engine/engine.h"
#include "engine/plan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RUN_ARENA_MAX (64u << 20)

struct fresh_image {
    void *image;
    size_t len;
};

/* The image patches apply to: 0 from FUZZ_SEED_ONNX, 1 from FUZZ_SEED_WINO_ONNX (Winograd),
 * 2 from FUZZ_SEED_IF_ONNX (If), 3 from FUZZ_SEED_LOOP_ONNX (Loop, Scan), 4 from
 * FUZZ_SEED_QCONV_ONNX (int8). */
static const struct fresh_image *fresh_image(int which)
{
    static const char *const seeds[5] = {FUZZ_SEED_ONNX, FUZZ_SEED_WINO_ONNX, FUZZ_SEED_IF_ONNX,
                                         FUZZ_SEED_LOOP_ONNX, FUZZ_SEED_QCONV_ONNX};
    static struct fresh_image fresh[5];
    struct fresh_image *f = &fresh[which];
    if (f->image)
        return f;
    uint8_t *onnx = NULL;
    size_t len = 0;
    char err[512];
    struct engine_compile_opts opts = {.threads = 1,
                                       .model_name = "fuzz-seed",
                                       .winograd =
                                           which == 1 ? ENGINE_WINOGRAD_ALL : ENGINE_WINOGRAD_AUTO};
    if (read_file(seeds[which], 1u << 20, &onnx, &len, err, sizeof(err)) < 0 ||
        engine_compile(onnx, len, &opts, &f->image, &f->len, err, sizeof(err)) < 0) {
        fprintf(stderr, "fuzz_plan: cannot build the seed image: %s\n", err);
        abort();
    }
    free(onnx);
    return f;
}

static void run_zero_inputs(struct engine_model *m)
{
    int n_in = engine_model_n_inputs(m), n_out = engine_model_n_outputs(m);
    if (engine_model_arena_size(m) > RUN_ARENA_MAX || n_in < 0 || n_in > 8 || n_out < 0 ||
        n_out > 64)
        return;
    struct engine_tensor in[8] = {0}, out[64];
    void *bufs[8] = {0};
    int ok = 1;
    char err[512];
    for (int i = 0; i < n_in && ok; i++) {
        struct engine_tensor_info info;
        if (engine_model_input(m, i, &info) < 0) {
            ok = 0;
            break;
        }
        int64_t numel = engine_shape_numel(&info.shape);
        size_t es = engine_dtype_size(info.dtype);
        ok = numel >= 0 && es && (uint64_t)numel <= RUN_ARENA_MAX / es;
        bufs[i] = ok ? calloc((size_t)numel ? (size_t)numel : 1, es) : NULL;
        ok = ok && bufs[i];
        in[i] = (struct engine_tensor){.name = info.name,
                                       .dtype = info.dtype,
                                       .shape = info.shape,
                                       .data = bufs[i],
                                       .nbytes = (size_t)numel * es};
    }
    struct engine_session *s = NULL;
    if (ok && engine_session_create(m, &s, err, sizeof(err)) == 0) {
        engine_session_run(s, in, n_in, out, n_out, err, sizeof(err));
        engine_session_destroy(s);
    }
    for (int i = 0; i < n_in; i++)
        free(bufs[i]);
}

/* Rewrites tables_sha256 over [PLAN_TABLES_HASHED_FROM, weights offset) when both ends lie in
 * the image; otherwise leaves the image for the loader to refuse. */
static void rehash_tables(uint8_t *img, size_t len)
{
    if (len < sizeof(struct plan_header))
        return;
    struct plan_header *h = (struct plan_header *)img;
    uint64_t end = h->sec[PLAN_SEC_WEIGHTS].offset;
    if (end < PLAN_TABLES_HASHED_FROM || end > len)
        return;
    sha256(img + PLAN_TABLES_HASHED_FROM, end - PLAN_TABLES_HASHED_FROM, h->tables_sha256);
}

/* A 64-byte aligned copy of len bytes (NULL when out of memory). */
static void *aligned_copy(const uint8_t *p, size_t len)
{
    size_t cap = (len + 63) / 64 * 64;
    void *copy = aligned_alloc(64, cap ? cap : 64);
    if (copy)
        memcpy(copy, p, len);
    return copy;
}

/* Opens image (or, weights non-NULL, the plan part image over that blob). */
static void open_image_weights(const uint8_t *body, size_t len, const uint8_t *weights,
                               size_t wlen, int run, int rehash)
{
    void *image = aligned_copy(body, len), *blob = weights ? aligned_copy(weights, wlen) : NULL;
    if (!image || (weights && !blob)) {
        free(image);
        free(blob);
        return;
    }
    if (rehash)
        rehash_tables(image, len);
    struct engine_model *m = NULL;
    char err[512];
    if (engine_model_open_parts(image, len, blob, wlen, &m, err, sizeof(err)) == 0) {
        if (run)
            run_zero_inputs(m);
        engine_model_close(m);
    }
    free(image);
    free(blob);
}

static void open_image(const uint8_t *body, size_t len, int run, int rehash)
{
    open_image_weights(body, len, NULL, 0, run, rehash);
}

/* Raw bit-5 body: u32 LE part length, the part, the blob. */
static void open_raw_parts(const uint8_t *body, size_t len, int run, int rehash)
{
    if (len < 4)
        return;
    size_t part = (size_t)body[0] | (size_t)body[1] << 8 | (size_t)body[2] << 16 |
                  (size_t)body[3] << 24;
    if (part > len - 4)
        return;
    open_image_weights(body + 4, part, body + 4 + part, len - 4 - part, run, rehash);
}

static void patch(uint8_t *copy, size_t len, const uint8_t *patches, size_t n)
{
    for (size_t i = 0; i + 5 <= n; i += 5) {
        uint32_t off = (uint32_t)patches[i] | (uint32_t)patches[i + 1] << 8 |
                       (uint32_t)patches[i + 2] << 16 | (uint32_t)patches[i + 3] << 24;
        copy[off % len] ^= patches[i + 4];
    }
}

/* The seed split into a plan part (patched) and its blob, opened together. */
static void open_patched_parts(int which, const uint8_t *patches, size_t n, int run, int rehash)
{
    const struct fresh_image *f = fresh_image(which);
    struct engine_weights_ref w;
    void *part = NULL;
    size_t part_len = 0;
    char err[512];
    if (engine_image_weights(f->image, f->len, &w, err, sizeof(err)) < 0 ||
        engine_image_split(f->image, f->len, &part, &part_len, err, sizeof(err)) < 0) {
        fprintf(stderr, "fuzz_plan: cannot split the seed image: %s\n", err);
        abort();
    }
    patch(part, part_len, patches, n);
    open_image_weights(part, part_len, (const uint8_t *)f->image + w.offset, w.size, run, rehash);
    engine_image_free(part);
}

static void open_patched(int which, const uint8_t *patches, size_t n, int run, int rehash)
{
    const struct fresh_image *f = fresh_image(which);
    uint8_t *copy = malloc(f->len);
    if (!copy)
        return;
    memcpy(copy, f->image, f->len);
    patch(copy, f->len, patches, n);
    open_image(copy, f->len, run, rehash);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int run = data[0] >> 1 & 1, rehash = !(data[0] >> 2 & 1);
    int which = data[0] >> 6 & 1   ? 4
                : data[0] >> 5 & 1 ? 3
                : data[0] >> 4 & 1 ? 2
                                   : data[0] >> 3 & 1;
    if (data[0] & 0x80) {
        if (data[0] & 1)
            open_patched_parts(which, data + 1, size - 1, run, rehash);
        else
            open_raw_parts(data + 1, size - 1, run, rehash);
    } else if (data[0] & 1)
        open_patched(which, data + 1, size - 1, run, rehash);
    else
        open_image(data + 1, size - 1, run, rehash);
    return 0;
}

#include "fuzz_replay.h"
