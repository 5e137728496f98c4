/* Unit tests of output=boxes (src/fn/boxes.c): the anchors setting, SSD and corner decoding,
 * hard and weighted non-maximum suppression, the map back through the image codec's resize and
 * crop or letterbox (and its NHWC layout), and hostile outputs or settings refused or skipped,
 * never a crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fn/fn.h"

/* The answer's boxes (asserting its shape); the caller json_decref()s the root. */
static json_t *parse(const char *s, json_t **root)
{
    json_error_t e;
    *root = json_loads(s, 0, &e);
    assert_non_null(*root);
    json_t *boxes = json_object_get(*root, "boxes");
    assert_true(json_is_array(boxes));
    return boxes;
}

static double field(json_t *boxes, size_t i, const char *k)
{
    return json_real_value(json_object_get(json_array_get(boxes, i), k));
}

static struct fn_boxes_opts corners_opts(void)
{
    struct fn_boxes_opts o;
    fn_boxes_opts_default(&o);
    o.format = FN_BOXES_CORNERS;
    o.sigmoid = false;
    return o;
}

static void anchors_setting(void **state)
{
    struct fn_boxes_opts o;
    fn_boxes_opts_default(&o);
    char err[256];
    assert_int_equal(fn_boxes_parse_anchors("16x16x2,8x8x6", &o, err, sizeof(err)), 0);
    assert_int_equal(o.n_layers, 2);
    assert_int_equal(o.layers[1].cols, 8);
    assert_int_equal(o.layers[1].per_cell, 6);
    const char *bad[] = {"",
                         "16",
                         "16x16",
                         "16x16x",
                         "0x1x1",
                         "1x1x1,",
                         "1x1x1;2x2x2",
                         "-1x2x2",
                         "4097x1x1",
                         "1x1x1,1x1x1,1x1x1,1x1x1,1x1x1,1x1x1,1x1x1,1x1x1,1x1x1",
                         "1000x1000x2",
                         "16x16x2 "};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_true(fn_boxes_parse_anchors(bad[i], &o, err, sizeof(err)) < 0);
        assert_non_null(strstr(err, "anchors"));
    }
}

/* One 2x1 grid, one anchor per cell, in a 100-pixel model input: anchor centres (0.25, 0.5) and
 * (0.75, 0.5); the second anchor's logit is high and its box 20x10 pixels offset by (+10, -5). */
static void ssd_decodes_on_the_anchor_grid(void **state)
{
    struct fn_boxes_opts o;
    fn_boxes_opts_default(&o);
    char err[256], *json = NULL;
    assert_int_equal(fn_boxes_parse_anchors("2x1x1", &o, err, sizeof(err)), 0);
    float scores[2] = {-5, 3};
    float regs[2 * 6] = {0, 0, 10, 10, 9, 9, 10, -5, 20, 10, 9, 9};
    assert_int_equal(fn_codec_boxes(scores, 2, regs, 12, 6, 100, &o, NULL, &json, err, sizeof(err)),
                     0);
    json_t *root, *boxes = parse(json, &root);
    assert_int_equal(json_array_size(boxes), 1);
    assert_float_equal(field(boxes, 0, "x"), 75 + 10 - 10, 1e-6);
    assert_float_equal(field(boxes, 0, "y"), 50 - 5 - 5, 1e-6);
    assert_float_equal(field(boxes, 0, "w"), 20, 1e-6);
    assert_float_equal(field(boxes, 0, "h"), 10, 1e-6);
    assert_float_equal(field(boxes, 0, "score"), 1 / (1 + exp(-3.0)), 1e-6);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(root, "image"), "width")),
                     100);
    json_decref(root);
    free(json);
    /* box_scale: the regressors are in pixels of another side */
    o.box_scale = 200;
    assert_int_equal(fn_codec_boxes(scores, 2, regs, 12, 6, 100, &o, NULL, &json, err, sizeof(err)),
                     0);
    boxes = parse(json, &root);
    assert_float_equal(field(boxes, 0, "w"), 10, 1e-6);
    json_decref(root);
    free(json);
}

/* A 200x100 photo at image_size 50: resized to 100x50, crop x from 25; a box over the whole
 * model input covers x 50..150 of the photo, its full height. */
static void boxes_map_back_through_resize_and_crop(void **state)
{
    struct fn_rgb img = {.width = 200, .height = 100, .pixels = calloc(200 * 100, 3)};
    assert_non_null(img.pixels);
    struct fn_image_opts io;
    fn_image_opts_default(&io);
    io.size = 50;
    struct fn_tensor t;
    char err[256], *json = NULL;
    assert_int_equal(fn_image_preprocess(&img, &io, &t, err, sizeof(err)), 0);
    assert_int_equal(t.geom.width, 200);
    assert_float_equal(t.geom.scale_x, 0.5, 1e-12);
    assert_float_equal(t.geom.off_x, 25, 1e-12);
    struct fn_boxes_opts o = corners_opts();
    float scores[2] = {0.9f, 0.8f};
    float regs[8] = {0, 0, 1, 1, -1, -1, -0.5f, -0.5f}; /* the second lies outside: clipped away */
    assert_int_equal(
        fn_codec_boxes(scores, 2, regs, 8, 4, 50, &o, &t.geom, &json, err, sizeof(err)), 0);
    json_t *root, *boxes = parse(json, &root);
    assert_int_equal(json_array_size(boxes), 1);
    assert_float_equal(field(boxes, 0, "x"), 50, 1e-6);
    assert_float_equal(field(boxes, 0, "w"), 100, 1e-6);
    assert_float_equal(field(boxes, 0, "y"), 0, 1e-6);
    assert_float_equal(field(boxes, 0, "h"), 100, 1e-6);
    json_decref(root);
    free(json);
    fn_tensor_free(&t);
    fn_rgb_free(&img);
}

/* The same photo letterboxed: resized to 50x25, padded 12 rows above (black), 13 below; a box
 * over the image rows 12..37 of the model input covers the whole photo. */
static void boxes_map_back_through_letterbox(void **state)
{
    struct fn_rgb img = {.width = 200, .height = 100, .pixels = malloc(200 * 100 * 3)};
    assert_non_null(img.pixels);
    memset(img.pixels, 255, 200 * 100 * 3);
    struct fn_image_opts io;
    fn_image_opts_default(&io);
    io.size = 50;
    io.letterbox = true;
    io.mean[0] = io.mean[1] = io.mean[2] = 0;
    io.std[0] = io.std[1] = io.std[2] = 1;
    struct fn_tensor t;
    char err[256], *json = NULL;
    assert_int_equal(fn_image_preprocess(&img, &io, &t, err, sizeof(err)), 0);
    assert_float_equal(t.geom.scale_y, 0.25, 1e-12);
    assert_float_equal(t.geom.off_y, -12, 1e-12);
    assert_float_equal(t.data[0], 0, 0);              /* padding: black */
    assert_float_equal(t.data[12 * 50 + 7], 1, 1e-6); /* the photo: white */
    assert_float_equal(t.data[37 * 50 + 7], 0, 0);
    struct fn_boxes_opts o = corners_opts();
    float scores[1] = {0.9f}, regs[4] = {0, 0.24f, 1, 0.74f};
    assert_int_equal(
        fn_codec_boxes(scores, 1, regs, 4, 4, 50, &o, &t.geom, &json, err, sizeof(err)), 0);
    json_t *root, *boxes = parse(json, &root);
    assert_int_equal(json_array_size(boxes), 1);
    assert_float_equal(field(boxes, 0, "x"), 0, 1e-4);
    assert_float_equal(field(boxes, 0, "w"), 200, 1e-4);
    assert_float_equal(field(boxes, 0, "y"), 0, 1e-4);
    assert_float_equal(field(boxes, 0, "h"), 100, 1e-4);
    json_decref(root);
    free(json);
    fn_tensor_free(&t);
    fn_rgb_free(&img);
}

static void nhwc_layout_is_the_transpose(void **state)
{
    struct fn_rgb img = {.width = 4, .height = 4, .pixels = malloc(4 * 4 * 3)};
    assert_non_null(img.pixels);
    for (int i = 0; i < 4 * 4 * 3; i++)
        img.pixels[i] = (uint8_t)(i * 5);
    struct fn_image_opts io;
    fn_image_opts_default(&io);
    io.size = 4;
    struct fn_tensor a, b;
    char err[256];
    assert_int_equal(fn_image_preprocess(&img, &io, &a, err, sizeof(err)), 0);
    io.nhwc = true;
    assert_int_equal(fn_image_preprocess(&img, &io, &b, err, sizeof(err)), 0);
    assert_int_equal(b.shape.dims[1], 4);
    assert_int_equal(b.shape.dims[3], 3);
    for (int c = 0; c < 3; c++)
        for (int p = 0; p < 16; p++)
            assert_float_equal(a.data[c * 16 + p], b.data[p * 3 + c], 0);
    fn_tensor_free(&a);
    fn_tensor_free(&b);
    fn_rgb_free(&img);
}

/* Boxes A (0.9) and B (0.8) overlap by IoU 0.6, C (0.7) stands alone. */
static const float nms_scores[3] = {0.8f, 0.9f, 0.7f};
static const float nms_regs[12] = {0.1f, 0, 0.6f, 0.5f, 0, 0, 0.5f, 0.5f, 0.7f, 0.7f, 0.9f, 0.9f};

static void hard_nms_keeps_the_best_of_each_cluster(void **state)
{
    struct fn_boxes_opts o = corners_opts();
    char err[256], *json = NULL;
    assert_int_equal(
        fn_codec_boxes(nms_scores, 3, nms_regs, 12, 4, 100, &o, NULL, &json, err, sizeof(err)), 0);
    json_t *root, *boxes = parse(json, &root);
    assert_int_equal(json_array_size(boxes), 2);
    assert_float_equal(field(boxes, 0, "score"), 0.9, 1e-6);
    assert_float_equal(field(boxes, 0, "x"), 0, 1e-6);
    assert_float_equal(field(boxes, 1, "score"), 0.7, 1e-6);
    json_decref(root);
    free(json);
    o.max_boxes = 1;
    assert_int_equal(
        fn_codec_boxes(nms_scores, 3, nms_regs, 12, 4, 100, &o, NULL, &json, err, sizeof(err)), 0);
    boxes = parse(json, &root);
    assert_int_equal(json_array_size(boxes), 1);
    json_decref(root);
    free(json);
    o.max_boxes = 100;
    o.iou_threshold = 0.7f; /* A and B no longer overlap enough */
    o.score_threshold = 0.75f;
    assert_int_equal(
        fn_codec_boxes(nms_scores, 3, nms_regs, 12, 4, 100, &o, NULL, &json, err, sizeof(err)), 0);
    boxes = parse(json, &root);
    assert_int_equal(json_array_size(boxes), 2);
    assert_float_equal(field(boxes, 1, "score"), 0.8, 1e-6);
    json_decref(root);
    free(json);
}

static void weighted_nms_blends_the_cluster(void **state)
{
    struct fn_boxes_opts o = corners_opts();
    o.nms = FN_NMS_WEIGHTED;
    char err[256], *json = NULL;
    assert_int_equal(
        fn_codec_boxes(nms_scores, 3, nms_regs, 12, 4, 100, &o, NULL, &json, err, sizeof(err)), 0);
    json_t *root, *boxes = parse(json, &root);
    assert_int_equal(json_array_size(boxes), 2);
    /* x1 = (0.9 * 0 + 0.8 * 0.1) / 1.7, in 100-pixel units; the score stays the best one's */
    assert_float_equal(field(boxes, 0, "x"), 100 * 0.08 / 1.7, 1e-4);
    assert_float_equal(field(boxes, 0, "score"), 0.9, 1e-6);
    json_decref(root);
    free(json);
}

static void hostile_values_drop_their_box(void **state)
{
    struct fn_boxes_opts o = corners_opts();
    char err[256], *json = NULL;
    float scores[5] = {NAN, INFINITY, 0.9f, 0.9f, 0.9f};
    float regs[20] = {0, 0, 1,    1,    0,    0,    1, 1, NAN,      0,
                      1, 1, 0.5f, 0.5f, 0.4f, 0.6f, 0, 0, INFINITY, 1};
    assert_int_equal(fn_codec_boxes(scores, 5, regs, 20, 4, 100, &o, NULL, &json, err, sizeof(err)),
                     0);
    json_t *root, *boxes = parse(json, &root);
    assert_int_equal(json_array_size(boxes), 0);
    json_decref(root);
    free(json);
    o.sigmoid = true; /* huge logits saturate, they do not overflow */
    float big[1] = {1e30f}, box[4] = {0, 0, 1, 1};
    assert_int_equal(fn_codec_boxes(big, 1, box, 4, 4, 100, &o, NULL, &json, err, sizeof(err)), 0);
    boxes = parse(json, &root);
    assert_int_equal(json_array_size(boxes), 1);
    json_decref(root);
    free(json);
}

static void bad_counts_and_settings_are_refused(void **state)
{
    struct fn_boxes_opts o = corners_opts();
    char err[256], *json = NULL;
    float s[2] = {1, 1}, r[8] = {0};
    assert_int_equal(fn_codec_boxes(s, 2, r, 7, 4, 100, &o, NULL, &json, err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(fn_codec_boxes(s, 2, r, 6, 3, 100, &o, NULL, &json, err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(
        fn_codec_boxes(s, SIZE_MAX / 2, r, 8, 4, 100, &o, NULL, &json, err, sizeof(err)), -EINVAL);
    assert_int_equal(fn_codec_boxes(s, 2, r, 8, 4, 0, &o, NULL, &json, err, sizeof(err)), -EINVAL);
    o.max_boxes = 0;
    assert_int_equal(fn_codec_boxes(s, 2, r, 8, 4, 100, &o, NULL, &json, err, sizeof(err)),
                     -EINVAL);
    o = corners_opts();
    o.iou_threshold = NAN;
    assert_int_equal(fn_codec_boxes(s, 2, r, 8, 4, 100, &o, NULL, &json, err, sizeof(err)),
                     -EINVAL);
    fn_boxes_opts_default(&o); /* ssd without anchors, then anchors that do not match */
    assert_int_equal(fn_codec_boxes(s, 2, r, 8, 4, 100, &o, NULL, &json, err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(fn_boxes_parse_anchors("3x1x1", &o, err, sizeof(err)), 0);
    assert_int_equal(fn_codec_boxes(s, 2, r, 8, 4, 100, &o, NULL, &json, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "anchors"));
    assert_null(json);
}

static void model_outputs_split_by_last_dimension(void **state)
{
    struct fn_boxes_opts o;
    fn_boxes_opts_default(&o);
    char err[256], *json = NULL;
    assert_int_equal(fn_boxes_parse_anchors("1x1x1,1x1x1", &o, err, sizeof(err)), 0);
    float s1[1] = {-9}, s2[1] = {9}, r1[5] = {0}, r2[5] = {0, 0, 10, 10, 0};
    struct engine_tensor outs[4] = {
        {.dtype = ENGINE_F32, .shape = {3, {1, 1, 1}}, .data = s1, .nbytes = 4},
        {.dtype = ENGINE_F32, .shape = {3, {1, 1, 1}}, .data = s2, .nbytes = 4},
        {.dtype = ENGINE_F32, .shape = {3, {1, 1, 5}}, .data = r1, .nbytes = 20},
        {.dtype = ENGINE_F32, .shape = {3, {1, 1, 5}}, .data = r2, .nbytes = 20},
    };
    assert_int_equal(fn_codec_boxes_outputs(outs, 4, 20, &o, NULL, &json, err, sizeof(err)), 0);
    json_t *root, *boxes = parse(json, &root);
    assert_int_equal(json_array_size(boxes), 1);
    assert_float_equal(field(boxes, 0, "x"), 5, 1e-6); /* centre 10, width 10 */
    json_decref(root);
    free(json);
    outs[3].shape.dims[2] = 4; /* two regressor lengths */
    outs[3].nbytes = 16;
    assert_int_equal(fn_codec_boxes_outputs(outs, 4, 20, &o, NULL, &json, err, sizeof(err)),
                     -EINVAL);
    outs[3].shape.dims[2] = 5;
    outs[3].nbytes = 20;
    outs[0].dtype = ENGINE_I64;
    assert_int_equal(fn_codec_boxes_outputs(outs, 4, 20, &o, NULL, &json, err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(fn_codec_boxes_outputs(outs + 2, 2, 20, &o, NULL, &json, err, sizeof(err)),
                     -EINVAL); /* no scores */
    assert_null(json);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(anchors_setting),
        cmocka_unit_test(ssd_decodes_on_the_anchor_grid),
        cmocka_unit_test(boxes_map_back_through_resize_and_crop),
        cmocka_unit_test(boxes_map_back_through_letterbox),
        cmocka_unit_test(nhwc_layout_is_the_transpose),
        cmocka_unit_test(hard_nms_keeps_the_best_of_each_cluster),
        cmocka_unit_test(weighted_nms_blends_the_cluster),
        cmocka_unit_test(hostile_values_drop_their_box),
        cmocka_unit_test(bad_counts_and_settings_are_refused),
        cmocka_unit_test(model_outputs_split_by_last_dimension),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
