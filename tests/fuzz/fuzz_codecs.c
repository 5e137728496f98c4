/*
 * fuzz_codecs — drives shmfaas-fn's request codecs (image decode + preprocess, raw, labels + top-k,
 * output=boxes with its anchors setting) with arbitrary bytes. The first byte picks the codec, the
 * rest is the body.
 *
 * With clang it is a libFuzzer target (SHMFAAS_LIBFUZZER defined, -fsanitize=fuzzer):
 *     build-clang/tests/fuzz/fuzz-codecs -max_total_time=60
 * With gcc it is a standalone driver that replays files given on the command line, or, with no
 * arguments, a built-in corpus (small JPEG/PNG images of several kinds, every truncation of them,
 * and deterministic byte mutations): that run is the unit test.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fn/fn.h"
#include "../fn/images.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* fit: the selector byte's bits 2 and 3, letterbox and NHWC. */
static void fuzz_image(const uint8_t *data, size_t size, uint8_t fit)
{
    struct fn_image_opts o;
    fn_image_opts_default(&o);
    o.size = 16;
    o.letterbox = fit & 4;
    o.nhwc = fit & 8;
    o.max_pixels = 1 << 20;
    struct fn_tensor t;
    char err[256];
    if (fn_codec_image(data, size, &o, &t, err, sizeof(err)) == 0)
        fn_tensor_free(&t);
}

static void fuzz_raw(const uint8_t *data, size_t size)
{
    if (size < 2)
        return;
    struct engine_shape s = {.rank = 1 + data[0] % 4};
    for (int i = 0; i < s.rank; i++)
        s.dims[i] = (int64_t)(data[1] >> (2 * i) & 3) - 1; /* -1..2: includes bad dims */
    struct fn_tensor t;
    char err[256];
    if (fn_codec_raw(data + 2, size - 2, &s, &t, err, sizeof(err)) == 0)
        fn_tensor_free(&t);
}

/* Labels text, then a 0 byte, then float32 scores. */
static void fuzz_topk(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t text = nul ? (size_t)(nul - data) : size;
    struct fn_codec_config c = {.topk = 3, .softmax = FN_SOFTMAX_AUTO};
    char err[256];
    if (fn_labels_parse(data, text, &c.labels, err, sizeof(err)) < 0)
        return;
    size_t rest = nul ? size - text - 1 : 0, n = rest / sizeof(float);
    float *scores = malloc(n ? n * sizeof(float) : 1);
    if (scores && n)
        memcpy(scores, nul + 1, n * sizeof(float));
    char *json = NULL;
    if (scores && fn_codec_topk(scores, n, &c, &json, err, sizeof(err)) == 0)
        free(json);
    free(scores);
    fn_labels_free(&c.labels);
}

/* output=boxes: 4 setting bytes (format/nms/sigmoid/scale/geometry, max_boxes, regressor stride,
 * thresholds), an anchors setting up to a 0 byte, then float32 values: scores, then regressors,
 * split as if stride were right, so truncations give counts that match the anchors or not. */
static void fuzz_boxes(const uint8_t *data, size_t size)
{
    if (size < 4)
        return;
    struct fn_boxes_opts o;
    fn_boxes_opts_default(&o);
    o.format = data[0] & 1 ? FN_BOXES_CORNERS : FN_BOXES_SSD;
    o.nms = data[0] & 2 ? FN_NMS_WEIGHTED : FN_NMS_HARD;
    o.sigmoid = !(data[0] & 4);
    o.box_scale = data[0] & 8 ? 0 : (float)(data[0] >> 4);
    o.max_boxes = data[1] % 16; /* 0 is refused */
    size_t stride = data[2] % 20;
    o.score_threshold = (float)(data[3] & 15) / 15, o.iou_threshold = (float)(data[3] >> 4) / 15;
    const uint8_t *p = data + 4, *nul = memchr(p, 0, size - 4);
    size_t text = nul ? (size_t)(nul - p) : size - 4;
    char anchors[64], err[256];
    if (text < sizeof(anchors)) {
        memcpy(anchors, p, text);
        anchors[text] = '\0';
        fn_boxes_parse_anchors(anchors, &o, err, sizeof(err));
    }
    size_t rest = nul ? size - 4 - text - 1 : 0, n = rest / sizeof(float);
    float *v = malloc(n ? n * sizeof(float) : 1);
    if (!v)
        return;
    if (n)
        memcpy(v, nul + 1, n * sizeof(float));
    size_t ns = n / (1 + (stride ? stride : 1));
    struct fn_image_geom g = {
        .width = 640, .height = 480, .size = 64, .scale_x = 0.1, .scale_y = 0.1, .off_x = 8};
    char *json = NULL;
    if (fn_codec_boxes(v, ns, v + ns, n - ns, stride, 64, &o, data[0] & 16 ? &g : NULL, &json, err,
                       sizeof(err)) == 0)
        free(json);
    free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    switch (data[0] % 4) {
    case 3:
        fuzz_boxes(data + 1, size - 1);
        break;
    case 0:
        fuzz_image(data + 1, size - 1, data[0]);
        break;
    case 1:
        fuzz_raw(data + 1, size - 1);
        break;
    default:
        fuzz_topk(data + 1, size - 1);
        break;
    }
    return 0;
}

#ifndef SHMFAAS_LIBFUZZER

static int replay_file(const char *path)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    char err[256];
    if (read_file(path, 64 << 20, &buf, &len, err, sizeof(err)) < 0) {
        fprintf(stderr, "fuzz_codecs: %s\n", err);
        return 1;
    }
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    return 0;
}

/* Runs one input with the codec selector byte in front. */
static void run_with(uint8_t selector, const uint8_t *body, size_t len)
{
    uint8_t *in = malloc(len + 1);
    in[0] = selector;
    memcpy(in + 1, body, len);
    LLVMFuzzerTestOneInput(in, len + 1);
    free(in);
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Every prefix and 300 single-byte mutations of one valid input. */
static size_t mutate_all(uint8_t selector, const uint8_t *seed, size_t len, uint64_t *rng)
{
    size_t runs = 0;
    for (size_t n = 0; n <= len; n += 1 + len / 200, runs++)
        run_with(selector, seed, n);
    uint8_t *copy = malloc(len);
    for (int i = 0; i < 300; i++, runs++) {
        memcpy(copy, seed, len);
        copy[xorshift(rng) % len] = (uint8_t)xorshift(rng);
        run_with(selector, copy, len);
    }
    free(copy);
    return runs;
}

static size_t builtin_corpus(void)
{
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    size_t runs = 0, len = 0;
    uint8_t *rgb = test_rgb_solid(24, 16, 200, 100, 50);
    uint8_t *jpg = test_jpeg_encode(rgb, 24, 16, 80, &len);
    runs += mutate_all(0, jpg, len, &rng);
    free(jpg);
    uint8_t *png =
        test_png_encode(rgb, 24 * 16 * 3, 24, 16, SPNG_COLOR_TYPE_TRUECOLOR, 8, NULL, 0, &len);
    runs += mutate_all(0, png, len, &rng);
    runs += mutate_all(4 | 8, png, len, &rng); /* letterbox, NHWC */
    free(png);
    uint8_t idx[12] = {0, 1, 0, 1, 1, 0, 1, 0, 0, 0, 1, 1}, plte[6] = {1, 2, 3, 4, 5, 6};
    png = test_png_encode(idx, 12, 4, 3, SPNG_COLOR_TYPE_INDEXED, 8, plte, 2, &len);
    runs += mutate_all(0, png, len, &rng);
    free(png);
    free(rgb);
    uint8_t raw[2 + 16] = {1, 0x15};
    runs += mutate_all(1, raw, sizeof(raw), &rng);
    uint8_t topk[] = "a\nb\r\nc\0\0\0\x80?\0\0\0@\0\0\0\0";
    runs += mutate_all(2, topk, sizeof(topk) - 1, &rng);
    /* boxes: 2 scores + 2 x 4 regressors, as ssd on "2x1x1" (logits) and as corners */
    static const float vals[10] = {3, 0.9f, 0.5f, 0.1f, 2, 3, 0.2f, 0.3f, 0.4f, 0.5f};
    uint8_t boxes[4 + 6 + sizeof(vals)] = {16, 5, 4, 0x35, '2', 'x', '1', 'x', '1', 0};
    memcpy(boxes + 10, vals, sizeof(vals));
    runs += mutate_all(3, boxes, sizeof(boxes), &rng);
    boxes[0] = 1 | 2 | 4 | 16;
    runs += mutate_all(3, boxes, sizeof(boxes), &rng);
    return runs;
}

int main(int argc, char **argv)
{
    log_set_level(LOG_OFF);
    if (argc > 1) {
        int failed = 0;
        for (int i = 1; i < argc; i++)
            failed |= replay_file(argv[i]);
        return failed;
    }
    size_t runs = builtin_corpus();
    printf("fuzz_codecs: %zu inputs replayed without a crash\n", runs);
    return 0;
}

#endif
