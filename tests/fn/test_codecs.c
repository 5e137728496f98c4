/* Unit tests of shmfaas-fn's codecs: image decode (JPEG, PNG of every colour type), resize/crop/
 * normalise numerics, raw float32, top-k and labels, and every bad input getting an error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <math.h>

#include "fn/fn.h"
#include "images.h"

static struct fn_image_opts plain_opts(int size)
{
    struct fn_image_opts o;
    fn_image_opts_default(&o);
    o.size = size;
    for (int c = 0; c < 3; c++) {
        o.mean[c] = 0;
        o.std[c] = 1;
    }
    return o;
}

/* ---- decode ---- */

static void jpeg_solid_decodes_to_rgb(void **state)
{
    uint8_t *rgb = test_rgb_solid(64, 48, 255, 0, 0);
    size_t len;
    uint8_t *jpg = test_jpeg_encode(rgb, 64, 48, 95, &len);
    struct fn_rgb img;
    char err[256];
    assert_int_equal(fn_image_decode(jpg, len, FN_DEFAULT_MAX_PIXELS, &img, err, sizeof(err)), 0);
    assert_int_equal(img.width, 64);
    assert_int_equal(img.height, 48);
    for (size_t i = 0; i < 64 * 48; i++) {
        assert_true(img.pixels[i * 3] >= 250);
        assert_true(img.pixels[i * 3 + 1] <= 5 && img.pixels[i * 3 + 2] <= 5);
    }
    fn_rgb_free(&img);
    free(jpg);
    free(rgb);
}

static void png_rgb_round_trips_exactly(void **state)
{
    uint8_t px[3 * 4 * 3];
    for (size_t i = 0; i < sizeof(px); i++)
        px[i] = (uint8_t)(i * 7);
    size_t len;
    uint8_t *png =
        test_png_encode(px, sizeof(px), 4, 3, SPNG_COLOR_TYPE_TRUECOLOR, 8, NULL, 0, &len);
    assert_non_null(png);
    struct fn_rgb img;
    char err[256];
    assert_int_equal(fn_image_decode(png, len, FN_DEFAULT_MAX_PIXELS, &img, err, sizeof(err)), 0);
    assert_int_equal(img.width, 4);
    assert_int_equal(img.height, 3);
    assert_memory_equal(img.pixels, px, sizeof(px));
    fn_rgb_free(&img);
    free(png);
}

static void png_gray_alpha_palette_become_rgb(void **state)
{
    char err[256];
    struct fn_rgb img;
    size_t len;
    uint8_t gray[4] = {0, 100, 200, 255};
    uint8_t *png = test_png_encode(gray, 4, 2, 2, SPNG_COLOR_TYPE_GRAYSCALE, 8, NULL, 0, &len);
    assert_int_equal(fn_image_decode(png, len, FN_DEFAULT_MAX_PIXELS, &img, err, sizeof(err)), 0);
    for (int i = 0; i < 4; i++)
        for (int c = 0; c < 3; c++)
            assert_int_equal(img.pixels[i * 3 + c], gray[i]);
    fn_rgb_free(&img);
    free(png);

    uint8_t rgba[8] = {10, 20, 30, 0, 40, 50, 60, 255};
    png = test_png_encode(rgba, 8, 2, 1, SPNG_COLOR_TYPE_TRUECOLOR_ALPHA, 8, NULL, 0, &len);
    assert_int_equal(fn_image_decode(png, len, FN_DEFAULT_MAX_PIXELS, &img, err, sizeof(err)), 0);
    uint8_t want[6] = {10, 20, 30, 40, 50, 60};
    assert_memory_equal(img.pixels, want, 6);
    fn_rgb_free(&img);
    free(png);

    uint8_t plte[6] = {255, 0, 0, 0, 0, 255}, idx[2] = {1, 0};
    png = test_png_encode(idx, 2, 2, 1, SPNG_COLOR_TYPE_INDEXED, 8, plte, 2, &len);
    assert_non_null(png);
    assert_int_equal(fn_image_decode(png, len, FN_DEFAULT_MAX_PIXELS, &img, err, sizeof(err)), 0);
    uint8_t want_p[6] = {0, 0, 255, 255, 0, 0};
    assert_memory_equal(img.pixels, want_p, 6);
    fn_rgb_free(&img);
    free(png);

    uint8_t gray16[4] = {0xff, 0xff, 0x00, 0x00}; /* big-endian 65535, 0 */
    png = test_png_encode(gray16, 4, 2, 1, SPNG_COLOR_TYPE_GRAYSCALE, 16, NULL, 0, &len);
    assert_int_equal(fn_image_decode(png, len, FN_DEFAULT_MAX_PIXELS, &img, err, sizeof(err)), 0);
    assert_int_equal(img.pixels[0], 255);
    assert_int_equal(img.pixels[3], 0);
    fn_rgb_free(&img);
    free(png);
}

/* ---- bad images ---- */

static void expect_decode_error(const uint8_t *buf, size_t len, uint64_t max_pixels,
                                const char *needle)
{
    struct fn_rgb img;
    char err[256] = "";
    assert_true(fn_image_decode(buf, len, max_pixels, &img, err, sizeof(err)) < 0);
    assert_null(img.pixels);
    if (!strstr(err, needle))
        fail_msg("error \"%s\" does not mention \"%s\"", err, needle);
}

static void bad_images_are_refused_with_a_reason(void **state)
{
    expect_decode_error((const uint8_t *)"hello", 5, FN_DEFAULT_MAX_PIXELS, "not an image");
    expect_decode_error((const uint8_t *)"", 0, FN_DEFAULT_MAX_PIXELS, "not an image");

    uint8_t *rgb = test_rgb_solid(64, 64, 1, 2, 3);
    size_t jlen, plen;
    uint8_t *jpg = test_jpeg_encode(rgb, 64, 64, 90, &jlen);
    uint8_t *png =
        test_png_encode(rgb, 64 * 64 * 3, 64, 64, SPNG_COLOR_TYPE_TRUECOLOR, 8, NULL, 0, &plen);
    expect_decode_error(jpg, jlen / 2, FN_DEFAULT_MAX_PIXELS, "JPEG");
    expect_decode_error(jpg, 3, FN_DEFAULT_MAX_PIXELS, "JPEG");
    expect_decode_error(png, plen - 20, FN_DEFAULT_MAX_PIXELS, "PNG");
    expect_decode_error(png, 8, FN_DEFAULT_MAX_PIXELS, "PNG");
    expect_decode_error(jpg, jlen, 1000, "limit of 1000 pixels");
    expect_decode_error(png, plen, 1000, "limit of 1000 pixels");
    /* A flipped bit in PNG image data breaks its CRC. */
    png[plen - 20] ^= 0x55;
    expect_decode_error(png, plen, FN_DEFAULT_MAX_PIXELS, "PNG");
    free(jpg);
    free(png);
    free(rgb);
}

/* ---- resize, crop, normalise ---- */

static void preprocess_centre_crops_without_resize(void **state)
{
    /* 4x2 image, size 2: the shorter side already is 2, so crop columns 1 and 2. */
    uint8_t px[4 * 2 * 3];
    for (int i = 0; i < 8; i++)
        px[i * 3] = px[i * 3 + 1] = px[i * 3 + 2] = (uint8_t)(i * 30);
    struct fn_rgb img = {.width = 4, .height = 2, .pixels = px};
    struct fn_image_opts o;
    fn_image_opts_default(&o);
    o.size = 2;
    struct fn_tensor t;
    char err[256];
    assert_int_equal(fn_image_preprocess(&img, &o, &t, err, sizeof(err)), 0);
    assert_int_equal(t.shape.rank, 4);
    assert_int_equal(t.shape.dims[1], 3);
    assert_int_equal(t.shape.dims[2], 2);
    assert_int_equal(t.nbytes, 3 * 4 * sizeof(float));
    int src[4] = {1, 2, 5, 6}; /* (x,y) = (1,0), (2,0), (1,1), (2,1) */
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 4; i++) {
            float want = ((float)(src[i] * 30) / 255.0f - o.mean[c]) / o.std[c];
            assert_float_equal(t.data[c * 4 + i], want, 1e-5);
        }
    fn_tensor_free(&t);
}

static void preprocess_bilinear_down_and_up(void **state)
{
    /* 4x4 → 2x2: each output samples at source 0.5 and 2.5, the mean of two neighbours per axis. */
    uint8_t px[4 * 4 * 3];
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++)
            for (int c = 0; c < 3; c++)
                px[(y * 4 + x) * 3 + c] = (uint8_t)(x * 40 + y * 10);
    struct fn_rgb img = {.width = 4, .height = 4, .pixels = px};
    struct fn_image_opts o = plain_opts(2);
    struct fn_tensor t;
    char err[256];
    assert_int_equal(fn_image_preprocess(&img, &o, &t, err, sizeof(err)), 0);
    float want[4] = {(20 + 5) / 255.0f, (100 + 5) / 255.0f, (20 + 25) / 255.0f,
                     (100 + 25) / 255.0f};
    for (int i = 0; i < 4; i++)
        assert_float_equal(t.data[i], want[i], 1e-5);
    fn_tensor_free(&t);

    /* 2x1 → size 2: height 1 → 2, width 2 → 4, crop columns 1..2 at source x 0.25, 0.75. */
    uint8_t px2[6] = {0, 0, 0, 200, 200, 200};
    struct fn_rgb img2 = {.width = 2, .height = 1, .pixels = px2};
    assert_int_equal(fn_image_preprocess(&img2, &o, &t, err, sizeof(err)), 0);
    assert_float_equal(t.data[0], 50 / 255.0f, 1e-5);
    assert_float_equal(t.data[1], 150 / 255.0f, 1e-5);
    assert_float_equal(t.data[2], 50 / 255.0f, 1e-5);
    fn_tensor_free(&t);
}

static void image_codec_normalises_a_solid_jpeg(void **state)
{
    uint8_t *rgb = test_rgb_solid(300, 200, 0, 255, 0);
    size_t len;
    uint8_t *jpg = test_jpeg_encode(rgb, 300, 200, 95, &len);
    struct fn_image_opts o;
    fn_image_opts_default(&o);
    struct fn_tensor t;
    char err[256];
    assert_int_equal(fn_codec_image(jpg, len, &o, &t, err, sizeof(err)), 0);
    assert_int_equal(t.shape.dims[2], 224);
    assert_int_equal(t.shape.dims[3], 224);
    size_t plane = 224 * 224;
    assert_float_equal(t.data[plane + 1000], (1.0f - 0.456f) / 0.224f, 0.05);
    assert_float_equal(t.data[1000], (0.0f - 0.485f) / 0.229f, 0.05);
    fn_tensor_free(&t);
    free(jpg);
    free(rgb);
}

static void preprocess_refuses_bad_options(void **state)
{
    uint8_t px[3] = {0};
    struct fn_rgb img = {.width = 1, .height = 1, .pixels = px};
    struct fn_image_opts o = plain_opts(0);
    struct fn_tensor t;
    char err[256];
    assert_int_equal(fn_image_preprocess(&img, &o, &t, err, sizeof(err)), -EINVAL);
    o = plain_opts(4);
    o.std[1] = 0;
    assert_int_equal(fn_image_preprocess(&img, &o, &t, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "std"));
}

/* ---- raw ---- */

static void raw_reads_little_endian_float32(void **state)
{
    struct engine_shape s = {.rank = 2, .dims = {1, 2}};
    uint8_t bytes[8] = {0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0}; /* 1.0, -2.0 */
    struct fn_tensor t;
    char err[256];
    assert_int_equal(fn_codec_raw(bytes, 8, &s, &t, err, sizeof(err)), 0);
    assert_float_equal(t.data[0], 1.0f, 0);
    assert_float_equal(t.data[1], -2.0f, 0);
    assert_int_equal(t.nbytes, 8);
    fn_tensor_free(&t);
    assert_int_equal(fn_codec_raw(bytes, 7, &s, &t, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "8 bytes"));
    assert_int_equal(fn_codec_raw(bytes, 0, &s, &t, err, sizeof(err)), -EINVAL);
    struct engine_shape dyn = {.rank = 2, .dims = {-1, 2}};
    assert_int_equal(fn_codec_raw(bytes, 8, &dyn, &t, err, sizeof(err)), -EINVAL);
}

/* ---- top-k and labels ---- */

static json_t *topk_json(const float *s, size_t n, struct fn_codec_config *c)
{
    char *text = NULL, err[256];
    assert_int_equal(fn_codec_topk(s, n, c, &text, err, sizeof(err)), 0);
    json_t *root = json_loads(text, 0, NULL);
    free(text);
    assert_non_null(root);
    return root;
}

static void topk_softmaxes_and_labels(void **state)
{
    struct fn_codec_config c = {.topk = 2, .softmax = FN_SOFTMAX_AUTO};
    const char *labels = "cat\r\ndog\nbird";
    assert_int_equal(fn_labels_parse((const uint8_t *)labels, strlen(labels), &c.labels, NULL, 0),
                     0);
    assert_int_equal(c.labels.n, 3);
    assert_string_equal(c.labels.names[0], "cat");
    float logits[3] = {1.0f, 3.0f, 2.0f};
    json_t *root = topk_json(logits, 3, &c);
    json_t *p = json_object_get(root, "predictions");
    assert_int_equal(json_array_size(p), 2);
    json_t *first = json_array_get(p, 0), *second = json_array_get(p, 1);
    assert_int_equal(json_integer_value(json_object_get(first, "index")), 1);
    assert_string_equal(json_string_value(json_object_get(first, "label")), "dog");
    assert_string_equal(json_string_value(json_object_get(second, "label")), "bird");
    double sum = exp(1.0) + exp(3.0) + exp(2.0);
    assert_float_equal(json_real_value(json_object_get(first, "score")), exp(3.0) / sum, 1e-6);
    json_decref(root);

    /* A distribution already: kept as is (auto); k larger than n gives all; no labels, no key. */
    fn_labels_free(&c.labels);
    c.topk = 10;
    float probs[2] = {0.25f, 0.75f};
    root = topk_json(probs, 2, &c);
    p = json_object_get(root, "predictions");
    assert_int_equal(json_array_size(p), 2);
    assert_float_equal(json_real_value(json_object_get(json_array_get(p, 0), "score")), 0.75, 1e-7);
    assert_null(json_object_get(json_array_get(p, 0), "label"));
    json_decref(root);
}

static void topk_refuses_non_finite_and_empty(void **state)
{
    struct fn_codec_config c = {.topk = 5};
    float bad[2] = {NAN, 1.0f};
    char *text = NULL, err[256];
    assert_int_equal(fn_codec_topk(bad, 2, &c, &text, err, sizeof(err)), -ERANGE);
    assert_int_equal(fn_codec_topk(bad, 0, &c, &text, err, sizeof(err)), -EINVAL);
    assert_null(text);
}

static void labels_edge_cases(void **state)
{
    struct fn_labels l;
    assert_int_equal(fn_labels_parse((const uint8_t *)"", 0, &l, NULL, 0), 0);
    assert_int_equal(l.n, 0);
    fn_labels_free(&l);
    assert_int_equal(fn_labels_parse((const uint8_t *)"a\n\nb\n", 5, &l, NULL, 0), 0);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.names[1], "");
    assert_string_equal(l.names[2], "b");
    fn_labels_free(&l);
    char err[128];
    assert_int_equal(fn_labels_parse((const uint8_t *)"a\0b", 3, &l, err, sizeof(err)), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(jpeg_solid_decodes_to_rgb),
        cmocka_unit_test(png_rgb_round_trips_exactly),
        cmocka_unit_test(png_gray_alpha_palette_become_rgb),
        cmocka_unit_test(bad_images_are_refused_with_a_reason),
        cmocka_unit_test(preprocess_centre_crops_without_resize),
        cmocka_unit_test(preprocess_bilinear_down_and_up),
        cmocka_unit_test(image_codec_normalises_a_solid_jpeg),
        cmocka_unit_test(preprocess_refuses_bad_options),
        cmocka_unit_test(raw_reads_little_endian_float32),
        cmocka_unit_test(topk_softmaxes_and_labels),
        cmocka_unit_test(topk_refuses_non_finite_and_empty),
        cmocka_unit_test(labels_edge_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
