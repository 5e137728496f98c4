/*
 * test_frontend.c — the engine frontend: ONNX import, shape inference, constant folding,
 * graph optimisation and the plain-C kernels, on small models that gen_frontend_models.py
 * writes at build time (argv[1] is that directory), plus garbage, truncated and hostile input.
 */
#include "common/common.h"
#include "engine/ir.h"
#include "engine/kernels.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static const char *models_dir;

struct model {
    uint8_t *bytes;
    size_t len;
};

static struct model load(const char *name)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s.onnx", models_dir, name);
    struct model m = {0};
    char err[256];
    int rc = read_file(path, 1 << 26, &m.bytes, &m.len, err, sizeof(err));
    if (rc)
        fail_msg("%s", err);
    return m;
}

/* import + infer (+ fold + optimize when `passes` >= 3, 4). */
static int run_passes(const void *bytes, size_t len, const char *base_dir, int passes,
                      const struct engine_input_shape *shapes, int n_shapes, struct ir_graph **out,
                      char *err, size_t errlen)
{
    struct ir_graph *g = NULL;
    int rc = ir_import_onnx(bytes, len, base_dir, "test.onnx", &g, err, errlen);
    if (rc == 0 && passes >= 2)
        rc = ir_widen_fp16(g, err, errlen);
    if (rc == 0 && passes >= 2)
        rc = ir_infer_shapes(g, shapes, n_shapes, err, errlen);
    if (rc == 0 && passes >= 3)
        rc = ir_fold_constants(g, err, errlen);
    if (rc == 0 && passes >= 4)
        rc = ir_optimize(g, err, errlen);
    if (rc) {
        ir_free(g);
        g = NULL;
    }
    *out = g;
    return rc;
}

static struct ir_graph *graph_of(const char *name, int passes)
{
    struct model m = load(name);
    struct ir_graph *g;
    char err[512] = "";
    int rc = run_passes(m.bytes, m.len, models_dir, passes, NULL, 0, &g, err, sizeof(err));
    free(m.bytes);
    if (rc)
        fail_msg("%s: %s", name, err);
    return g;
}

static const struct ir_tensor *tensor(const struct ir_graph *g, const char *name)
{
    int t = ir_find_tensor(g, name);
    if (t < 0)
        fail_msg("no tensor %s", name);
    return &g->tensors[t];
}

static void assert_dims(const struct ir_graph *g, const char *name, int rank, ...)
{
    const struct ir_tensor *t = tensor(g, name);
    char s[128];
    if (!t->shape_known || t->shape.rank != rank)
        fail_msg("%s: rank %d (%s), want %d", name, t->shape.rank,
                 engine_shape_str(&t->shape, s, sizeof(s)), rank);
    va_list ap;
    va_start(ap, rank);
    for (int i = 0; i < rank; i++) {
        int64_t want = va_arg(ap, int);
        if (t->shape.dims[i] != want)
            fail_msg("%s: shape %s, dim %d should be %lld", name,
                     engine_shape_str(&t->shape, s, sizeof(s)), i, (long long)want);
    }
    va_end(ap);
}

static int live_nodes(const struct ir_graph *g)
{
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++)
        n += !g->nodes[i].dead;
    return n;
}

static const struct ir_node *producer(const struct ir_graph *g, const char *tensor_name)
{
    int p = tensor(g, tensor_name)->producer;
    assert_true(p >= 0);
    return &g->nodes[p];
}

/* ---- shape inference ---- */

static void test_shapes_torchvision_ops(void **state)
{
    struct ir_graph *g = graph_of("shapes", 2);
    assert_dims(g, "c1", 4, 1, 8, 112, 112);
    assert_dims(g, "c2", 4, 1, 8, 112, 112);
    assert_dims(g, "c3", 4, 1, 8, 112, 112);
    assert_dims(g, "c4", 4, 1, 4, 220, 220);
    assert_dims(g, "c5", 4, 1, 4, 224, 224);
    assert_dims(g, "mp", 4, 1, 8, 56, 56);
    assert_dims(g, "mp2", 4, 1, 3, 3, 3); /* ceil_mode: the last window would start in padding */
    assert_dims(g, "ap", 4, 1, 8, 56, 56);
    assert_dims(g, "gap", 4, 1, 8, 1, 1);
    assert_dims(g, "fl", 2, 1, 8);
    assert_dims(g, "gm", 2, 1, 10);
    assert_dims(g, "mm", 2, 1, 6);
    assert_dims(g, "sm", 2, 1, 10);
    assert_dims(g, "cat", 4, 1, 16, 112, 112);
    assert_dims(g, "bn", 4, 1, 8, 112, 112);
    assert_dims(g, "add", 4, 1, 8, 112, 112);
    assert_dims(g, "tr", 2, 10, 1);
    assert_dims(g, "tr2", 4, 112, 112, 8, 1); /* no perm: axes reversed */
    assert_dims(g, "pad", 4, 1, 3, 228, 230);
    assert_dims(g, "rm", 2, 1, 8);
    assert_dims(g, "us", 3, 1, 1, 8);
    assert_dims(g, "sq", 2, 1, 8);
    const char *same[] = {"hs", "cl", "lr", "hsg", "sg", "th"};
    for (size_t i = 0; i < ARRAY_LEN(same); i++)
        assert_dims(g, same[i], 4, 1, 8, 112, 112);

    assert_dims(g, "sz", 0);
    assert_int_equal(*(int64_t *)tensor(g, "sz")->data, 3 * 224 * 224);
    assert_dims(g, "rg", 1, 4);
    const int64_t range[] = {10, 7, 4, 1};
    assert_memory_equal(tensor(g, "rg")->data, range, sizeof(range));

    /* auto_pad resolved into explicit pads (begins, then ends) */
    const struct ir_attr *p = ir_attr_get(producer(g, "c2"), "pads");
    assert_non_null(p);
    int64_t upper[] = {0, 0, 1, 1}, lower[] = {1, 1, 0, 0};
    assert_memory_equal(p->ints, upper, sizeof(upper));
    p = ir_attr_get(producer(g, "c5"), "pads");
    assert_memory_equal(p->ints, lower, sizeof(lower));
    assert_string_equal(ir_attr_str(producer(g, "c2"), "auto_pad", "NOTSET"), "NOTSET");
    ir_free(g);
}

static void test_symbolic_input_needs_shape(void **state)
{
    struct model m = load("symbolic");
    struct ir_graph *g;
    char err[512];
    int rc = run_passes(m.bytes, m.len, NULL, 2, NULL, 0, &g, err, sizeof(err));
    assert_int_equal(rc, -EINVAL);
    assert_non_null(strstr(err, "input 'X' has symbolic dim 0"));

    struct engine_input_shape ok = {"X", {4, {2, 3, 4, 4}}};
    rc = run_passes(m.bytes, m.len, NULL, 2, &ok, 1, &g, err, sizeof(err));
    assert_int_equal(rc, 0);
    assert_dims(g, "Y", 4, 2, 3, 4, 4);
    ir_free(g);

    struct engine_input_shape clash = {"X", {4, {2, 5, 4, 4}}};
    rc = run_passes(m.bytes, m.len, NULL, 2, &clash, 1, &g, err, sizeof(err));
    assert_int_equal(rc, -EINVAL);
    assert_non_null(strstr(err, "the model fixes"));

    struct engine_input_shape stranger = {"Z", {1, {1}}};
    rc = run_passes(m.bytes, m.len, NULL, 2, &stranger, 1, &g, err, sizeof(err));
    assert_int_equal(rc, -EINVAL);
    assert_non_null(strstr(err, "not an input"));
    free(m.bytes);
}

/* ---- folding ---- */

static void test_fold_shape_subgraph(void **state)
{
    struct ir_graph *g = graph_of("reshape_subgraph", 3);
    assert_int_equal(live_nodes(g), 1);
    const struct ir_node *r = producer(g, "Y");
    assert_string_equal(r->op, "Reshape");
    const struct ir_tensor *s = &g->tensors[r->in[1]];
    assert_non_null(s->data);
    assert_int_equal(s->dtype, ENGINE_I64);
    assert_int_equal(engine_shape_numel(&s->shape), 2);
    assert_int_equal(((int64_t *)s->data)[0], 2);
    assert_int_equal(((int64_t *)s->data)[1], -1);
    assert_dims(g, "Y", 2, 2, 60);
    ir_free(g);
}

/* ---- optimisation ---- */

/* Plain NCHW convolution, stride 1, symmetric padding `pad`, batch 1. */
static void ref_conv(const float *x, int c, int h, int w, const float *wt, const float *b, int m,
                     int k, int pad, float *y)
{
    for (int o = 0; o < m; o++)
        for (int i = 0; i < h; i++)
            for (int j = 0; j < w; j++) {
                double acc = b ? b[o] : 0;
                for (int ci = 0; ci < c; ci++)
                    for (int u = 0; u < k; u++)
                        for (int v = 0; v < k; v++) {
                            int ii = i + u - pad, jj = j + v - pad;
                            if (ii >= 0 && ii < h && jj >= 0 && jj < w)
                                acc += (double)x[(ci * h + ii) * w + jj] *
                                       wt[((o * c + ci) * k + u) * k + v];
                        }
                y[(o * h + i) * w + j] = (float)acc;
            }
}

static float *copy_floats(const struct ir_graph *g, const char *name)
{
    const struct ir_tensor *t = tensor(g, name);
    float *p = malloc(t->nbytes);
    memcpy(p, t->data, t->nbytes);
    return p;
}

static void test_bn_folding_keeps_numerics(void **state)
{
    struct ir_graph *g = graph_of("conv_bn_relu", 3);
    float *w = copy_floats(g, "W"), *b = copy_floats(g, "B"), *s = copy_floats(g, "s");
    float *bb = copy_floats(g, "b"), *mu = copy_floats(g, "m"), *var = copy_floats(g, "v");
    char err[256];
    assert_int_equal(ir_optimize(g, err, sizeof(err)), 0);
    assert_int_equal(live_nodes(g), 1);
    const struct ir_node *conv = producer(g, "Y");
    assert_string_equal(conv->op, "Conv");
    assert_int_equal(conv->n_post, 1);
    assert_int_equal(conv->post[0].kind, IR_POST_ACT);
    assert_int_equal(conv->post[0].act, IR_ACT_RELU);
    assert_int_equal(conv->n_in, 3);

    float x[3 * 6 * 6], y0[4 * 36], y1[4 * 36];
    for (size_t i = 0; i < ARRAY_LEN(x); i++)
        x[i] = (float)sin((double)i * 0.37) * 2.0f;
    ref_conv(x, 3, 6, 6, w, b, 4, 3, 1, y0);
    for (int o = 0; o < 4; o++)
        for (int i = 0; i < 36; i++) {
            float v = (y0[o * 36 + i] - mu[o]) / sqrtf(var[o] + 1e-3f) * s[o] + bb[o];
            y0[o * 36 + i] = v > 0 ? v : 0;
        }
    ref_conv(x, 3, 6, 6, g->tensors[conv->in[1]].data, g->tensors[conv->in[2]].data, 4, 3, 1, y1);
    float maxref = 0, maxdiff = 0;
    for (int i = 0; i < 4 * 36; i++) {
        float v = k_act1(conv->post[0].act, conv->post[0].alpha, conv->post[0].beta, y1[i]);
        maxref = fmaxf(maxref, fabsf(y0[i]));
        maxdiff = fmaxf(maxdiff, fabsf(v - y0[i]));
    }
    assert_true(maxref > 0.1f);
    if (maxdiff > 1e-5f * maxref)
        fail_msg("folded conv differs by %g (max |ref| %g)", maxdiff, maxref);
    /* the original weights are untouched: another node might share them */
    assert_memory_equal(tensor(g, "W")->data, w, tensor(g, "W")->nbytes);
    free(w), free(b), free(s), free(bb), free(mu), free(var);
    ir_free(g);
}

static void test_residual_and_passthrough_fusion(void **state)
{
    struct ir_graph *g = graph_of("residual", 4);
    assert_int_equal(live_nodes(g), 2);
    const struct ir_node *c2 = producer(g, "Y");
    assert_string_equal(c2->op, "Conv");
    assert_int_equal(c2->n_post, 2);
    assert_int_equal(c2->post[0].kind, IR_POST_SUM);
    assert_int_equal(c2->post[0].tensor, ir_find_tensor(g, "X"));
    assert_int_equal(c2->post[1].kind, IR_POST_ACT);
    assert_int_equal(c2->post[1].act, IR_ACT_RELU);
    const struct ir_node *c1 = &g->nodes[g->tensors[c2->in[0]].producer];
    assert_string_equal(c1->op, "Conv");
    assert_int_equal(c1->n_post, 1);
    assert_int_equal(tensor(g, "X")->flags & IR_T_INPUT, IR_T_INPUT);
    assert_int_equal(ir_consumers(g, ir_find_tensor(g, "X")), 2);
    ir_free(g);
}

static void test_hardswish_pattern_and_noops(void **state)
{
    struct ir_graph *g = graph_of("conv_hardswish", 4);
    assert_int_equal(live_nodes(g), 1);
    const struct ir_node *c = producer(g, "Y");
    assert_string_equal(c->op, "Conv");
    assert_int_equal(c->n_post, 1);
    assert_int_equal(c->post[0].act, IR_ACT_HARDSWISH);
    ir_free(g);
}

/* ---- external data ---- */

static void test_external_data(void **state)
{
    struct model m = load("external_ok");
    struct ir_graph *g;
    char err[512];
    int rc = run_passes(m.bytes, m.len, models_dir, 2, NULL, 0, &g, err, sizeof(err));
    assert_int_equal(rc, 0);
    const float *w = tensor(g, "W")->data;
    for (int i = 0; i < 8; i++)
        assert_true(w[i] == (float)i);
    ir_free(g);
    rc = run_passes(m.bytes, m.len, NULL, 2, NULL, 0, &g, err, sizeof(err));
    assert_int_equal(rc, -EINVAL);
    assert_non_null(strstr(err, "no base directory"));
    free(m.bytes);
}

static void test_typed_initializers_and_constants(void **state)
{
    struct ir_graph *g = graph_of("typed_initializers", 3);
    const float wf[] = {1.5f, -2.0f, 3.25f, 0.0f};
    const int64_t wi64[] = {1, -2, (int64_t)1 << 40, 7};
    const int32_t wi32[] = {-5, 0, 1 << 30};
    const uint8_t wu8[] = {0, 200, 255}, wb[] = {1, 0};
    const int8_t wi8[] = {-128, 127};
    assert_memory_equal(tensor(g, "Wf")->data, wf, sizeof(wf));
    assert_memory_equal(tensor(g, "Wi64")->data, wi64, sizeof(wi64));
    assert_memory_equal(tensor(g, "Wi32")->data, wi32, sizeof(wi32));
    assert_memory_equal(tensor(g, "Wu8")->data, wu8, sizeof(wu8));
    assert_memory_equal(tensor(g, "Wi8")->data, wi8, sizeof(wi8));
    assert_memory_equal(tensor(g, "Wb")->data, wb, sizeof(wb));
    assert_int_equal(tensor(g, "Wb")->dtype, ENGINE_BOOL);
    assert_dims(g, "Wi64", 2, 2, 2);
    assert_dims(g, "cf", 0);
    assert_true(*(float *)tensor(g, "cf")->data == 0.5f);
    assert_dims(g, "cfs", 1, 2);
    assert_true(((float *)tensor(g, "cfs")->data)[1] == 2.0f);
    assert_int_equal(tensor(g, "ci")->dtype, ENGINE_I64);
    assert_int_equal(*(int64_t *)tensor(g, "ci")->data, -3);
    assert_dims(g, "Y", 1, 4);
    ir_free(g);
}

/* k_transpose and k_slice copy in runs (trailing in-place axes, a step-1 last axis) with an
 * odometer: every permutation of a [2,3,4,5] tensor and slices with steps of both signs on
 * every axis match the element-by-element definition. */
static void test_kernels_runs(void **state)
{
    enum { N = 2 * 3 * 4 * 5 };
    const struct engine_shape s = {4, {2, 3, 4, 5}};
    const int64_t st[4] = {60, 20, 5, 1};
    float a[N], t[N];
    for (int i = 0; i < N; i++)
        a[i] = (float)i;
    int perm[4];
    for (int p = 0; p < 256; p++) {
        int used = 0;
        for (int d = 0; d < 4; d++) {
            perm[d] = (p >> (2 * d)) & 3;
            used |= 1 << perm[d];
        }
        if (used != 15)
            continue;
        k_transpose(a, &s, perm, sizeof(float), t);
        int64_t o[4];
        for (int i = 0; i < N; i++) {
            int64_t rem = i, off = 0;
            for (int d = 3; d >= 0; d--) {
                o[d] = rem % s.dims[perm[d]];
                rem /= s.dims[perm[d]];
                off += o[d] * st[perm[d]];
            }
            if (t[i] != a[off])
                fail_msg("perm %d%d%d%d: element %d", perm[0], perm[1], perm[2], perm[3], i);
        }
    }
    const int64_t starts[3][4] = {{0, 0, 0, 0}, {1, 2, 3, 4}, {0, 1, 1, 2}};
    const int64_t steps[3][4] = {{1, 1, 1, 1}, {-1, -2, -1, -2}, {2, 1, 2, 1}};
    const struct engine_shape outs[3] = {{4, {2, 3, 4, 5}}, {4, {2, 2, 4, 3}}, {4, {1, 2, 2, 3}}};
    for (int c = 0; c < 3; c++) {
        k_slice(a, &s, starts[c], steps[c], &outs[c], sizeof(float), t);
        int64_t n = engine_shape_numel(&outs[c]);
        for (int64_t i = 0; i < n; i++) {
            int64_t rem = i, off = 0;
            for (int d = 3; d >= 0; d--) {
                off += (starts[c][d] + rem % outs[c].dims[d] * steps[c][d]) * st[d];
                rem /= outs[c].dims[d];
            }
            if (t[i] != a[off])
                fail_msg("slice %d: element %lld", c, (long long)i);
        }
    }
}

/* A float16 model computes in float32: its constants widened (a constant graph output keeps its
 * float16 bytes, its readers get a float32 copy), a Cast from the float16 input first, a Cast to
 * the float16 output last; the interface stays float16. */
static void test_fp16_widened(void **state)
{
    struct ir_graph *g = graph_of("fp16", 2);
    const float b[] = {0.5f, -0.25f, 1.0f}, w00 = 1.5f;
    assert_int_equal(tensor(g, "X")->dtype, ENGINE_F16);
    assert_int_equal(tensor(g, "X/f32")->dtype, ENGINE_F32);
    assert_int_equal(tensor(g, "Y")->dtype, ENGINE_F16);
    assert_int_equal(tensor(g, "Y/f32")->dtype, ENGINE_F32);
    assert_int_equal(tensor(g, "Xs")->dtype, ENGINE_F32);
    assert_int_equal(tensor(g, "B")->dtype, ENGINE_F32);
    assert_memory_equal(tensor(g, "B")->data, b, sizeof(b));
    assert_int_equal(tensor(g, "W")->dtype, ENGINE_F16);
    assert_int_equal(tensor(g, "W")->nbytes, 12 * 2);
    assert_int_equal(tensor(g, "W/f32")->dtype, ENGINE_F32);
    assert_true(((float *)tensor(g, "W/f32")->data)[0] == w00);
    const struct ir_node *last = producer(g, "Y"), *first = producer(g, "X/f32");
    assert_string_equal(last->op, "Cast");
    assert_int_equal(ir_attr_int(last, "to", 0), ENGINE_F16);
    assert_string_equal(first->op, "Cast");
    assert_int_equal(first - g->nodes, 0);
    assert_dims(g, "Y", 2, 2, 3);
    ir_free(g);
    ir_free(graph_of("fp16", 4)); /* the optimiser's rewrites keep it sound */
}

/* ---- hostile input ---- */

static void expect_error(const char *name, const char *base_dir, const char *want)
{
    struct model m = load(name);
    struct ir_graph *g;
    char err[512] = "";
    int rc = run_passes(m.bytes, m.len, base_dir, 4, NULL, 0, &g, err, sizeof(err));
    free(m.bytes);
    if (rc >= 0 || !strstr(err, want))
        fail_msg("%s: rc %d, message '%s' lacks '%s'", name, rc, err, want);
    if (!strstr(err, "test.onnx"))
        fail_msg("%s: message '%s' does not name the model", name, err);
}

static void test_hostile_models(void **state)
{
    expect_error("bad_raw_len", NULL, "initializer W: raw_data has 10 bytes, dims need 16");
    expect_error("bad_huge_dims", NULL, "initializer W: dims too large");
    expect_error("bad_negative_dim", NULL, "negative dim -4");
    expect_error("bad_typed_count", NULL, "3 data elements for 4 elements");
    expect_error("bad_u8_range", NULL, "value 256 out of range for uint8");
    expect_error("bad_raw_and_typed", NULL, "more than one of raw_data");
    expect_error("bad_opset", NULL, "opset 19 is not supported");
    expect_error("bad_legacy_bcast", NULL,
                 "node add0::aligned_B (Unsqueeze): at opset 6: broadcast axis 2 does not fit");
    expect_error("bad_legacy_dropout", NULL,
                 "node drop0 (Dropout): at opset 6: attribute is_test=0");
    expect_error("bad_cycle", NULL, "cycle");
    expect_error("bad_missing_init", NULL, "node conv0 (Conv): input 'W' is not defined");
    expect_error("bad_unsupported_op", NULL, "node e0 (StringNormalizer): unsupported op");
    expect_error("bad_auto_pad", NULL, "node conv0 (Conv): unsupported attribute auto_pad=FOO");
    expect_error("bad_domain", NULL, "unsupported op domain 'com.microsoft'");
    expect_error("bad_duplicate", NULL, "node Sigmoid_1 (Sigmoid): output 'Y' is already defined");
    expect_error("bad_reshape", NULL, "node r0 (Reshape): cannot reshape [2,3] to [4,-1,5]");
    expect_error("bad_ext_dotdot", models_dir, "contains '..'");
    expect_error("bad_ext_absolute", models_dir, "is absolute");
    expect_error("bad_ext_range", models_dir, "exceeds");
}

/* If: a constant condition drops the other branch before its shapes are inferred and inlines
 * the taken one; a run-time If needs branches of equal shapes; hostile branches are refused. */
static void test_if(void **state)
{
    struct ir_graph *g = graph_of("if_const", 4);
    assert_int_equal(live_nodes(g), 1);
    assert_string_equal(producer(g, "Y")->name, "if0/then_branch/relu");
    assert_dims(g, "Y", 2, 2, 3);
    ir_free(g);
    expect_error("bad_if_shapes", NULL,
                 "node if0 (If): output 0: then_branch gives float32 [2,3], else_branch float32 "
                 "[3,2]; branches of different shapes or types are not supported");
    expect_error("bad_if_no_else", NULL, "node if0 (If): no else_branch");
    expect_error("bad_if_undefined", NULL,
                 "node if0/else_branch/lost (Relu): input 'nowhere' is not defined");
    expect_error("bad_if_cycle", NULL, "cycle");
    expect_error("bad_graph_attr", NULL, "node r0 (Relu): graph attribute body is not supported");
    expect_error("bad_if_outputs", NULL, "node if0 (If): then_branch has 2 outputs, the node 1");
    expect_error("bad_if_deep", NULL, "subgraphs nested more than 16 deep");
}

/* A selection of constants folds to its exact shape; one computed at run time has a bounded
 * size that no node may read, and NonMaxSuppression needs a constant per-class limit. */
static void test_selections(void **state)
{
    struct ir_graph *g = graph_of("nonzero_const", 4);
    assert_int_equal(live_nodes(g), 0);
    assert_dims(g, "Y", 2, 2, 3);
    const int64_t *y = tensor(g, "Y")->data, want[6] = {0, 1, 2, 1, 0, 1};
    assert_memory_equal(y, want, sizeof(want));
    ir_free(g);
    expect_error("bad_bounded_consumer", NULL,
                 "node t0 (Transpose): input 'idx' has a data-dependent size (at most 6 along dim "
                 "1, known only at run time): it can only be a graph output");
    expect_error("bad_nms_max", NULL, "node nms0 (NonMaxSuppression): input 2 must be a constant");
}

/* Each op of the table refuses a node without its inputs instead of reading past them. */
static void test_every_op_checks_its_inputs(void **state)
{
    char path[1024], op[64], name[128], want[128];
    snprintf(path, sizeof(path), "%s/table_ops.txt", models_dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int count = 0;
    while (fscanf(f, "%63s", op) == 1) {
        assert_non_null(ir_op_find(op));
        /* ops whose every input is optional: none is a valid node (ops/sequence.c) */
        if (strcmp(op, "SequenceEmpty") == 0 || strcmp(op, "Optional") == 0 ||
            strcmp(op, "OptionalHasElement") == 0)
            continue;
        snprintf(want, sizeof(want), "node bad0 (%s): ", op);
        snprintf(name, sizeof(name), "bad_noin_%s", op);
        expect_error(name, NULL, want);
        snprintf(name, sizeof(name), "bad_emptyin_%s", op);
        expect_error(name, NULL, want);
        count++;
    }
    fclose(f);
    assert_true(count > 40);
}

static void test_external_symlink_escape(void **state)
{
    char dir[] = "/tmp/shmfaas-frontend-XXXXXX", link[64], err[512] = "";
    assert_non_null(mkdtemp(dir));
    snprintf(link, sizeof(link), "%s/escape.bin", dir);
    int linked = symlink("/etc/passwd", link);
    struct model m = load("bad_ext_symlink");
    struct ir_graph *g = NULL;
    int rc = run_passes(m.bytes, m.len, dir, 4, NULL, 0, &g, err, sizeof(err));
    free(m.bytes);
    ir_free(g);
    unlink(link); /* clean up before asserting */
    rmdir(dir);
    assert_int_equal(linked, 0);
    assert_int_equal(rc, -EPERM);
    assert_non_null(strstr(err, "resolves outside"));
}

static void test_garbage_never_crashes(void **state)
{
    struct ir_graph *g;
    char err[512];
    assert_int_equal(run_passes("", 0, NULL, 4, NULL, 0, &g, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "empty"));
    const char junk[] = "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff";
    assert_true(run_passes(junk, sizeof(junk), NULL, 4, NULL, 0, &g, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "not a valid ONNX model"));
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    uint8_t buf[512];
    for (int iter = 0; iter < 2000; iter++) {
        size_t len = 1 + (size_t)(iter % (int)sizeof(buf));
        for (size_t i = 0; i < len; i++) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            buf[i] = (uint8_t)(seed >> 56);
        }
        if (run_passes(buf, len, NULL, 4, NULL, 0, &g, err, sizeof(err)) == 0)
            ir_free(g);
    }
}

static void test_truncated_and_flipped_never_crash(void **state)
{
    const char *names[] = {"conv_bn_relu", "reshape_subgraph", "residual"};
    for (size_t k = 0; k < ARRAY_LEN(names); k++) {
        struct model m = load(names[k]);
        struct ir_graph *g;
        char err[512];
        for (size_t len = 0; len < m.len; len++)
            if (run_passes(m.bytes, len, models_dir, 4, NULL, 0, &g, err, sizeof(err)) == 0)
                ir_free(g);
        assert_true(run_passes(m.bytes, m.len / 2, NULL, 4, NULL, 0, &g, err, sizeof(err)) < 0);
        for (size_t i = 0; i < m.len; i++) {
            uint8_t *c = malloc(m.len);
            memcpy(c, m.bytes, m.len);
            c[i] ^= (uint8_t)(0x5a + i);
            if (run_passes(c, m.len, models_dir, 4, NULL, 0, &g, err, sizeof(err)) == 0)
                ir_free(g);
            free(c);
        }
        free(m.bytes);
    }
}

/* ---- kernels ---- */

static void test_kernels(void **state)
{
    struct engine_shape as = {2, {2, 3}}, bs = {1, {3}}, os;
    float a[6] = {1, 2, 3, 4, 5, 6}, b[3] = {10, 20, 30}, o[6];
    assert_int_equal(k_broadcast_shape(&as, &bs, &os), 0);
    assert_int_equal(k_binary(K_SUB, ENGINE_F32, a, &as, b, &bs, o, &os), 0);
    assert_true(o[4] == 5 - 20);
    struct engine_shape bad = {1, {2}};
    assert_int_equal(k_broadcast_shape(&as, &bad, &os), -EINVAL);

    int64_t ia[2] = {7, 8}, zero[1] = {0}, io[2];
    struct engine_shape is = {1, {2}}, zs = {1, {1}};
    assert_int_equal(k_binary(K_DIV, ENGINE_I64, ia, &is, zero, &zs, io, &is), -EDOM);
    /* integers wrap as numpy's do (no signed overflow, which UBSan would flag) */
    int32_t big[2] = {INT32_MAX, INT32_MIN}, two[1] = {2}, minus1[1] = {-1}, wo[2];
    assert_int_equal(k_binary(K_MUL, ENGINE_I32, big, &is, two, &zs, wo, &is), 0);
    assert_int_equal(wo[0], -2);
    assert_int_equal(wo[1], 0);
    assert_int_equal(k_binary(K_ADD, ENGINE_I32, big, &is, two, &zs, wo, &is), 0);
    assert_int_equal(wo[0], INT32_MIN + 1);
    assert_int_equal(k_binary(K_DIV, ENGINE_I32, big, &is, minus1, &zs, wo, &is), 0);
    assert_int_equal(wo[0], -INT32_MAX);
    assert_int_equal(wo[1], INT32_MIN);
    int64_t lbig[2] = {INT64_MAX, 3}, lthree[1] = {3}, lo[2];
    assert_int_equal(k_binary(K_POW, ENGINE_I64, lbig, &is, lthree, &zs, lo, &is), 0);
    assert_true(lo[0] == INT64_MAX); /* (2^63 - 1)^3 mod 2^64 */
    assert_true(lo[1] == 27);

    float t[6];
    int perm[2] = {1, 0};
    k_transpose(a, &as, perm, sizeof(float), t);
    float want_t[6] = {1, 4, 2, 5, 3, 6};
    assert_memory_equal(t, want_t, sizeof(t));

    int64_t idx[2] = {-1, 0};
    float gth[4];
    assert_int_equal(k_gather(a, &as, 1, idx, 2, sizeof(float), gth), 0);
    float want_g[4] = {3, 1, 6, 4};
    assert_memory_equal(gth, want_g, sizeof(gth));
    int64_t oob[1] = {3};
    assert_int_equal(k_gather(a, &as, 1, oob, 1, sizeof(float), gth), -EINVAL);

    int64_t starts[2] = {1, 2}, steps[2] = {1, -2};
    struct engine_shape ss = {2, {1, 2}};
    float sl[2];
    k_slice(a, &as, starts, steps, &ss, sizeof(float), sl);
    assert_true(sl[0] == 6 && sl[1] == 4);

    float row[3] = {1, 2, 3}, padded[7], zerof = 0;
    struct engine_shape rs = {1, {3}}, ps = {1, {7}};
    int64_t pb[1] = {2};
    k_pad(row, &rs, pb, K_PAD_REFLECT, &zerof, sizeof(float), padded, &ps);
    float want_p[7] = {3, 2, 1, 2, 3, 2, 1};
    assert_memory_equal(padded, want_p, sizeof(padded));

    const void *srcs[2] = {a, b};
    struct engine_shape cs[2] = {{1, {6}}, {1, {3}}};
    float cat[9];
    k_concat(srcs, cs, 2, 0, sizeof(float), cat);
    assert_true(cat[5] == 6 && cat[6] == 10);

    int reduce[2] = {0, 1};
    float mean[2];
    k_reduce_mean(a, &as, reduce, mean);
    assert_true(mean[0] == 2 && mean[1] == 5);

    float f[3] = {-1.5f, 2.7f, 300.0f};
    int64_t fi[3];
    assert_int_equal(k_cast(f, ENGINE_F32, fi, ENGINE_I64, 3), 0);
    assert_true(fi[0] == -1 && fi[1] == 2 && fi[2] == 300);
    assert_true(k_act1(IR_ACT_HARDSWISH, 0, 0, 1.0f) == 1.0f * (1.0f / 6 + 0.5f));
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODELS_DIR (written by gen_frontend_models.py)\n", argv[0]);
        return 2;
    }
    models_dir = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes_torchvision_ops),
        cmocka_unit_test(test_symbolic_input_needs_shape),
        cmocka_unit_test(test_fold_shape_subgraph),
        cmocka_unit_test(test_bn_folding_keeps_numerics),
        cmocka_unit_test(test_residual_and_passthrough_fusion),
        cmocka_unit_test(test_hardswish_pattern_and_noops),
        cmocka_unit_test(test_external_data),
        cmocka_unit_test(test_typed_initializers_and_constants),
        cmocka_unit_test(test_fp16_widened),
        cmocka_unit_test(test_kernels_runs),
        cmocka_unit_test(test_hostile_models),
        cmocka_unit_test(test_if),
        cmocka_unit_test(test_selections),
        cmocka_unit_test(test_every_op_checks_its_inputs),
        cmocka_unit_test(test_external_symlink_escape),
        cmocka_unit_test(test_garbage_never_crashes),
        cmocka_unit_test(test_truncated_and_flipped_never_crash),
        cmocka_unit_test(test_kernels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
