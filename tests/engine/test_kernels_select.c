/*
 * test_kernels_select.c — the data-dependent selection kernels (kernels_select.c) on known
 * answers: NonMaxSuppression's order, ties, thresholds, both box formats, degenerate boxes and
 * its per-class limit; NonZero over dtypes (-0.0 and NaN included); the bounded-output count
 * mark at 0, at the bound and in between; and the session reporting a bounded output's actual
 * shape run after run, with a hostile bounded flag refused at open.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <errno.h>
#include <math.h>

#include "engine/kernels.h"
#include "test_backend_util.h"

/* ---- kernels called directly ---- */

static void test_bounded_count(void **state)
{
    int64_t d[6] = {0, 1, 2, 3, 4, 5};
    assert_int_equal(k_bounded_count(d, 6, 2), 2); /* full: the last element is data */
    d[5] = -1;
    assert_int_equal(k_bounded_count(d, 6, 2), 0);
    d[5] = -2;
    assert_int_equal(k_bounded_count(d, 6, 2), 1);
    d[5] = -100; /* a mark past the bound (never written by a kernel) is cut to it */
    assert_int_equal(k_bounded_count(d, 6, 2), 2);
    assert_int_equal(k_bounded_count(d, 0, 0), 0);
}

/* Five boxes in corner format [y1, x1, y2, x2] (two of them with flipped corners). */
static const float boxes5[20] = {
    0, 0,    1, 1,    /* 0 */
    0, 0.1f, 1, 1.1f, /* 1: IoU 0.818 with 0 */
    1, 1,    0, 0,    /* 2: box 0 with flipped corners */
    0, 10,   1, 11,   /* 3: far away */
    5, 5,    5, 6,    /* 4: zero area */
};

static void test_nms_order_and_iou(void **state)
{
    float scores[5] = {0.9f, 0.95f, 0.9f, 0.3f, 0.99f};
    struct k_nms p = {
        .batches = 1, .classes = 1, .boxes = 5, .max_per_class = 5, .has_iou = 1, .iou = 0.5f};
    int64_t sel[15];
    assert_int_equal(k_nms(&p, boxes5, scores, sel, 5), 0);
    /* 4 (0.99, zero area: never suppresses nor is suppressed), 1 (0.95), then 0 and 2 (0.9 each)
     * are suppressed by 1, 3 (0.3) stays */
    int64_t want[9] = {0, 0, 4, 0, 0, 1, 0, 0, 3};
    assert_memory_equal(sel, want, sizeof(want));
    assert_int_equal(k_bounded_count(sel, 15, 5), 3);
    /* equal scores: the lower index first; IoU exactly 1 between 0 and its flipped twin 2 */
    float tie[5] = {0.5f, 0.1f, 0.5f, 0.1f, 0.1f};
    p.iou = 0.99f;
    assert_int_equal(k_nms(&p, boxes5, tie, sel, 5), 0);
    assert_int_equal(k_bounded_count(sel, 15, 5), 4); /* 0, then 1 (IoU 0.818), 3, 4; 2 gone */
    int64_t kept[4] = {sel[2], sel[5], sel[8], sel[11]}, want_kept[4] = {0, 1, 3, 4};
    assert_memory_equal(kept, want_kept, sizeof(kept));
}

static void test_nms_thresholds_and_limit(void **state)
{
    float scores[10] = {0.9f, 0.8f, 0.7f, 0.6f, NAN, /* class 0 */
                        0.1f, 0.2f, 0.3f, 0.4f, 0.5f};
    struct k_nms p = {
        .batches = 1, .classes = 2, .boxes = 5, .max_per_class = 2, .has_score = 1, .score = 0.35f};
    int64_t sel[4 * 3];
    assert_int_equal(k_nms(&p, boxes5, scores, sel, 4), 0);
    /* class 0: 0 then 1 (IoU 0 threshold: 1 overlaps 0, dropped), 2 overlaps 0 too, 3 kept;
     * the limit of 2 per class stops there. class 1: 4 (0.5) then 3 (0.4); 0.3 is below 0.35 */
    int64_t want[12] = {0, 0, 0, 0, 0, 3, 0, 1, 4, 0, 1, 3};
    assert_memory_equal(sel, want, sizeof(want));
    assert_int_equal(k_bounded_count(sel, 12, 4), 4); /* full to the bound: no mark */
    p.score = 2.0f;                                   /* nothing passes */
    assert_int_equal(k_nms(&p, boxes5, scores, sel, 4), 0);
    assert_int_equal(k_bounded_count(sel, 12, 4), 0);
}

static void test_nms_center_format(void **state)
{
    /* [x, y, w, h]: boxes 0 and 1 overlap by 0.6 of their union, 2 is far */
    float boxes[12] = {0.5f, 0.5f, 1, 1, 0.75f, 0.5f, 1, 1, 9, 9, 1, 1};
    float scores[3] = {0.5f, 0.6f, 0.1f};
    struct k_nms p = {.batches = 1,
                      .classes = 1,
                      .boxes = 3,
                      .max_per_class = 3,
                      .center = 1,
                      .has_iou = 1,
                      .iou = 0.5f};
    int64_t sel[9];
    assert_int_equal(k_nms(&p, boxes, scores, sel, 3), 0);
    assert_int_equal(k_bounded_count(sel, 9, 3), 2);
    assert_int_equal(sel[2], 1);
    assert_int_equal(sel[5], 2);
    p.iou = 0.7f; /* 0.6 no longer suppresses */
    assert_int_equal(k_nms(&p, boxes, scores, sel, 3), 0);
    assert_int_equal(k_bounded_count(sel, 9, 3), 3);
}

static void test_nonzero(void **state)
{
    float f[6] = {0, -0.0f, 1, NAN, 0, -2};
    struct engine_shape s = SHAPE(2, 2, 3);
    int64_t out[2 * 6];
    assert_int_equal(k_nonzero(f, ENGINE_F32, &s, out), 3);
    int64_t want[6] = {0, 1, 1, 2, 0, 2}; /* rows [0,1,1] and columns [2,0,2], compact */
    assert_memory_equal(out, want, sizeof(want));
    assert_int_equal(k_bounded_count(out, 12, 6), 3);
    uint8_t b[4] = {1, 1, 1, 1};
    struct engine_shape s1 = SHAPE(1, 4);
    assert_int_equal(k_nonzero(b, ENGINE_BOOL, &s1, out), 4);
    assert_int_equal(k_bounded_count(out, 4, 4), 4);
    assert_int_equal(out[3], 3);
    int64_t z[3] = {0, 0, 0};
    struct engine_shape s3 = SHAPE(3, 1, 3, 1);
    assert_int_equal(k_nonzero(z, ENGINE_I64, &s3, out), 0);
    assert_int_equal(k_bounded_count(out, 9, 3), 0);
}

/* ---- through a session ---- */

/* x int32 [2, 3] → NonZero → y [2, 6] bounded along dim 1. */
static struct ir_graph *nonzero_net(void)
{
    struct ir_graph *g = tb_graph();
    int x = tb_act(g, "x", SHAPE(2, 2, 3));
    int y = tb_act(g, "y", SHAPE(2, 2, 6));
    g->tensors[x].dtype = ENGINE_I32;
    g->tensors[y].dtype = ENGINE_I64;
    g->tensors[y].flags |= IR_T_BOUND1;
    tb_input(g, x);
    int xi[1] = {x};
    tb_node(g, "NonZero", xi, 1, y);
    tb_output(g, y);
    return g;
}

static void test_session_reports_the_extent(void **state)
{
    char err[512];
    void *img;
    size_t len;
    if (tb_compile(nonzero_net(), 1, &img, &len, err, sizeof(err)))
        fail_msg("compile: %s", err);
    struct engine_model *m;
    struct engine_session *s;
    assert_int_equal(engine_model_open(img, len, &m, err, sizeof(err)), 0);
    assert_int_equal(engine_session_create(m, &s, err, sizeof(err)), 0);
    int32_t xs[3][6] = {{0, 7, 0, 0, 0, 9}, {1, 1, 1, 1, 1, 1}, {0}};
    int64_t counts[3] = {2, 6, 0};
    for (int run = 0; run < 6; run++) {
        struct engine_tensor in = {.name = "x",
                                   .dtype = ENGINE_I32,
                                   .shape = SHAPE(2, 2, 3),
                                   .data = xs[run % 3],
                                   .nbytes = sizeof(xs[0])};
        struct engine_tensor out[1];
        assert_int_equal(engine_session_run(s, &in, 1, out, 1, err, sizeof(err)), 0);
        assert_int_equal(out[0].shape.rank, 2);
        assert_int_equal(out[0].shape.dims[0], 2);
        assert_int_equal(out[0].shape.dims[1], counts[run % 3]);
        assert_int_equal(out[0].nbytes, (size_t)(2 * counts[run % 3]) * sizeof(int64_t));
        if (run % 3 == 0) {
            int64_t want[4] = {0, 1, 1, 2};
            assert_memory_equal(out[0].data, want, sizeof(want));
        }
    }
    engine_session_destroy(s);
    engine_model_close(m);
    /* the bounded flag on a float output, or on both axes, is refused at open */
    struct plan_view v;
    assert_int_equal(plan_view_init(&v, img, len, err, sizeof(err)), 0);
    uint8_t *copy = aligned_alloc(64, ALIGN_UP(len, 64));
    uint32_t t = (uint32_t)v.index[v.h->outputs_first];
    size_t off = (size_t)((const uint8_t *)&v.tensors[t] - (const uint8_t *)img);
    for (int edit = 0; edit < 2; edit++) {
        memcpy(copy, img, len);
        struct plan_tensor *pt = (struct plan_tensor *)(copy + off);
        if (edit == 0)
            pt->flags |= PLAN_TF_BOUND0;
        else
            pt->dtype = ENGINE_F64; /* same bytes per element */
        struct plan_header *h = (struct plan_header *)copy;
        sha256(copy + PLAN_TABLES_HASHED_FROM,
               h->sec[PLAN_SEC_WEIGHTS].offset - PLAN_TABLES_HASHED_FROM, h->tables_sha256);
        sha256(copy + PLAN_IMAGE_HASHED_FROM, len - PLAN_IMAGE_HASHED_FROM, h->image_sha256);
        assert_int_not_equal(engine_model_open(copy, len, &m, err, sizeof(err)), 0);
        if (!strstr(err, "bounded") && !strstr(err, "int64"))
            fail_msg("edit %d refused for another reason: %s", edit, err);
    }
    free(copy);
    engine_image_free(img);
}

/* boxes [1,5,4], scores [1,1,5] → NonMaxSuppression (at most 2 per class, IoU 0.5 given) →
 * sel [2, 3] bounded along dim 0. */
static struct ir_graph *nms_net(void)
{
    struct ir_graph *g = tb_graph();
    int b = tb_act(g, "boxes", SHAPE(3, 1, 5, 4));
    int sc = tb_act(g, "scores", SHAPE(3, 1, 1, 5));
    int64_t two = 2;
    float half = 0.5f;
    int64_t *mx = malloc(sizeof(two));
    float *iou = malloc(sizeof(half));
    *mx = two;
    *iou = half;
    struct engine_shape one = SHAPE(1, 1);
    int m = ir_add_const(g, "max", "", ENGINE_I64, &one, mx);
    int io = ir_add_const(g, "iou", "", ENGINE_F32, &one, iou);
    int y = tb_act(g, "sel", SHAPE(2, 2, 3));
    g->tensors[y].dtype = ENGINE_I64;
    g->tensors[y].flags |= IR_T_BOUND0;
    tb_input(g, b);
    tb_input(g, sc);
    int ins[4] = {b, sc, m, io};
    tb_node(g, "NonMaxSuppression", ins, 4, y);
    tb_output(g, y);
    return g;
}

static void reseal(uint8_t *img, size_t len)
{
    struct plan_header *h = (struct plan_header *)img;
    sha256(img + PLAN_TABLES_HASHED_FROM, h->sec[PLAN_SEC_WEIGHTS].offset - PLAN_TABLES_HASHED_FROM,
           h->tables_sha256);
    sha256(img + PLAN_IMAGE_HASHED_FROM, len - PLAN_IMAGE_HASHED_FROM, h->image_sha256);
}

static void test_nms_node_checked(void **state)
{
    char err[512];
    void *img;
    size_t len;
    if (tb_compile(nms_net(), 1, &img, &len, err, sizeof(err)))
        fail_msg("compile: %s", err);
    struct engine_model *m;
    struct engine_session *s;
    assert_int_equal(engine_model_open(img, len, &m, err, sizeof(err)), 0);
    assert_int_equal(engine_session_create(m, &s, err, sizeof(err)), 0);
    float scores[5] = {0.9f, 0.95f, 0.9f, 0.3f, 0.99f};
    struct engine_tensor in[2] = {{.name = "boxes",
                                   .dtype = ENGINE_F32,
                                   .shape = SHAPE(3, 1, 5, 4),
                                   .data = (void *)boxes5,
                                   .nbytes = sizeof(boxes5)},
                                  {.name = "scores",
                                   .dtype = ENGINE_F32,
                                   .shape = SHAPE(3, 1, 1, 5),
                                   .data = scores,
                                   .nbytes = sizeof(scores)}};
    struct engine_tensor out[1];
    assert_int_equal(engine_session_run(s, in, 2, out, 1, err, sizeof(err)), 0);
    assert_int_equal(out[0].shape.dims[0], 2); /* 4 then 1: the limit of 2 */
    int64_t want[6] = {0, 0, 4, 0, 0, 1};
    assert_memory_equal(out[0].data, want, sizeof(want));
    engine_session_destroy(s);
    engine_model_close(m);
    struct plan_view v;
    assert_int_equal(plan_view_init(&v, img, len, err, sizeof(err)), 0);
    int k = 0;
    while (k < (int)v.n_nodes && v.nodes[k].alg != PLAN_K_NMS)
        k++;
    assert_true(k < (int)v.n_nodes);
    size_t poff =
        (size_t)((const uint8_t *)&v.index[v.nodes[k].params_first] - (const uint8_t *)img);
    size_t noff = (size_t)((const uint8_t *)&v.nodes[k] - (const uint8_t *)img);
    uint8_t *copy = aligned_alloc(64, ALIGN_UP(len, 64));
    /* a limit above the bound the output was sized for, a bad flag, an input too few */
    const int32_t edits[3][2] = {{1, 3}, {0, 2}, {2, 0}};
    for (int e = 0; e < 4; e++) {
        memcpy(copy, img, len);
        if (e < 3)
            memcpy(copy + poff + (size_t)edits[e][0] * sizeof(int32_t), &edits[e][1],
                   sizeof(int32_t));
        else
            ((struct plan_node *)(copy + noff))->n_in = 2;
        reseal(copy, len);
        assert_int_not_equal(engine_model_open(copy, len, &m, err, sizeof(err)), 0);
        if (!strstr(err, "selection kernel") && !strstr(err, "NonMaxSuppression"))
            fail_msg("edit %d refused for another reason: %s", e, err);
    }
    free(copy);
    engine_image_free(img);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bounded_count),
        cmocka_unit_test(test_nms_order_and_iou),
        cmocka_unit_test(test_nms_thresholds_and_limit),
        cmocka_unit_test(test_nms_center_format),
        cmocka_unit_test(test_nonzero),
        cmocka_unit_test(test_session_reports_the_extent),
        cmocka_unit_test(test_nms_node_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
