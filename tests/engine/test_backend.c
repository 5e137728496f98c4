/*
 * test_backend.c — op-level numerics of the plan compiler and sessions against tiny reference
 * implementations written here: convolution (plain, strided, padded, dilated, grouped,
 * depthwise, with fused activations and residual sums in place or copied; 3x3 ones also as
 * Winograd F(4x4,3x3) with odd sizes, padding, batches and post-ops), pooling (max with
 * ceil_mode, average with and without padding, global), Gemm/MatMul, Concat, broadcasting binary
 * ops, Softmax, activations, and shape-only aliases.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <math.h>
#include <stdio.h>

#include "engine/winograd.h"
#include "test_backend_util.h"

/* ---- running a compiled graph ---- */

static int wino_mode = ENGINE_WINOGRAD_AUTO; /* how run_graph compiles */

struct run {
    void *img;
    size_t len;
    struct engine_model *m;
    struct engine_session *s;
    struct engine_tensor out[4];
};

static void run_graph(struct ir_graph *g, const float *const *inputs, struct run *r)
{
    char err[512] = "";
    int n_in = g->n_inputs;
    struct engine_tensor in[4];
    for (int i = 0; i < n_in; i++) {
        const struct ir_tensor *t = &g->tensors[g->inputs[i]];
        in[i] = (struct engine_tensor){.name = strdup(t->name),
                                       .dtype = ENGINE_F32,
                                       .shape = t->shape,
                                       .data = (void *)inputs[i],
                                       .nbytes = (size_t)engine_shape_numel(&t->shape) * 4};
    }
    int rc = tb_compile_wino(g, 1, wino_mode, &r->img, &r->len, err, sizeof(err));
    if (rc)
        fail_msg("compile: %s", err);
    rc = engine_model_open(r->img, r->len, &r->m, err, sizeof(err));
    if (rc)
        fail_msg("open: %s", err);
    rc = engine_session_create(r->m, &r->s, err, sizeof(err));
    if (rc)
        fail_msg("session: %s", err);
    rc = engine_session_run(r->s, in, n_in, r->out, 4, err, sizeof(err));
    if (rc)
        fail_msg("run: %s", err);
    for (int i = 0; i < n_in; i++)
        free((void *)in[i].name);
}

static void run_free(struct run *r)
{
    engine_session_destroy(r->s);
    engine_model_close(r->m);
    engine_image_free(r->img);
}

static void assert_close(const float *got, const float *want, size_t n)
{
    double maxref = 1e-6, maxdiff = 0;
    for (size_t i = 0; i < n; i++) {
        maxref = fmax(maxref, fabs(want[i]));
        maxdiff = fmax(maxdiff, fabs(got[i] - want[i]));
    }
    if (maxdiff > 1e-5 * maxref)
        fail_msg("max|diff| %g exceeds 1e-5 x max|ref| %g", maxdiff, maxref);
}

/* ---- reference kernels ---- */

struct conv_geom {
    int64_t n, c, h, w, oc, kh, kw, sh, sw, ph, pw, dh, dw, groups, oh, ow;
};

static void ref_conv(const struct conv_geom *q, const float *x, const float *wt, const float *b,
                     float *y)
{
    int64_t icg = q->c / q->groups, ocg = q->oc / q->groups;
    for (int64_t n = 0; n < q->n; n++)
        for (int64_t o = 0; o < q->oc; o++)
            for (int64_t i = 0; i < q->oh; i++)
                for (int64_t j = 0; j < q->ow; j++) {
                    double acc = b ? b[o] : 0;
                    int64_t g = o / ocg;
                    for (int64_t c = 0; c < icg; c++)
                        for (int64_t u = 0; u < q->kh; u++)
                            for (int64_t v = 0; v < q->kw; v++) {
                                int64_t hi = i * q->sh - q->ph + u * q->dh;
                                int64_t wi = j * q->sw - q->pw + v * q->dw;
                                if (hi < 0 || hi >= q->h || wi < 0 || wi >= q->w)
                                    continue;
                                acc += x[((n * q->c + g * icg + c) * q->h + hi) * q->w + wi] *
                                       wt[((o * icg + c) * q->kh + u) * q->kw + v];
                            }
                    y[((n * q->oc + o) * q->oh + i) * q->ow + j] = (float)acc;
                }
}

/* Max or average pooling; pads on the right may be larger (ceil_mode). */
static void ref_pool(int max, int include_pad, const int64_t *d, int64_t k, int64_t s, int64_t p,
                     int64_t oh, int64_t ow, const float *x, float *y)
{
    for (int64_t nc = 0; nc < d[0] * d[1]; nc++)
        for (int64_t i = 0; i < oh; i++)
            for (int64_t j = 0; j < ow; j++) {
                double acc = max ? -INFINITY : 0;
                int64_t cnt = 0, padded = 0;
                for (int64_t u = 0; u < k; u++)
                    for (int64_t v = 0; v < k; v++) {
                        int64_t hi = i * s - p + u, wi = j * s - p + v;
                        if (hi < d[2] + p && wi < d[3] + p)
                            padded++;
                        if (hi < 0 || hi >= d[2] || wi < 0 || wi >= d[3])
                            continue;
                        float val = x[(nc * d[2] + hi) * d[3] + wi];
                        acc = max ? fmax(acc, val) : acc + val;
                        cnt++;
                    }
                y[(nc * oh + i) * ow + j] =
                    (float)(max ? acc : acc / (double)(include_pad ? padded : cnt));
            }
}

static float relu(float v)
{
    return v > 0 ? v : 0;
}

/* ---- convolution ---- */

/* fuse_relu: 1 Relu, 2 Clip(-0.5, 0.5), as a fused post-op. Returns the image's Winograd node
 * count. */
static int conv_case(const struct conv_geom *q, int with_bias, int fuse_relu)
{
    struct ir_graph *g = tb_graph();
    int x = tb_act(g, "x", SHAPE(4, q->n, q->c, q->h, q->w));
    int w = tb_const(g, "w", SHAPE(4, q->oc, q->c / q->groups, q->kh, q->kw), NULL, 7);
    int b = with_bias ? tb_const(g, "b", SHAPE(1, q->oc), NULL, 9) : -1;
    int y = tb_act(g, "y", SHAPE(4, q->n, q->oc, q->oh, q->ow));
    const float *wv = g->tensors[w].data, *bv = with_bias ? g->tensors[b].data : NULL;
    size_t ny = (size_t)(q->n * q->oc * q->oh * q->ow);
    float *want = malloc(ny * sizeof(float));
    float *xin = tb_fill((size_t)(q->n * q->c * q->h * q->w), 3);
    ref_conv(q, xin, wv, bv, want);
    for (size_t i = 0; fuse_relu && i < ny; i++)
        want[i] = fuse_relu == 1 ? relu(want[i]) : fminf(fmaxf(want[i], -0.5f), 0.5f);
    int ins[3] = {x, w, b};
    tb_input(g, x);
    struct ir_node *n = tb_node(g, "Conv", ins, with_bias ? 3 : 2, y);
    tb_ints(n, "strides", 2, q->sh, q->sw);
    tb_ints(n, "pads", 4, q->ph, q->pw, q->ph, q->pw);
    tb_ints(n, "dilations", 2, q->dh, q->dw);
    ir_attr_set_int(n, "group", q->groups);
    if (fuse_relu == 1)
        n->post[n->n_post++] = (struct ir_post_op){.kind = IR_POST_ACT, .act = IR_ACT_RELU};
    if (fuse_relu == 2)
        n->post[n->n_post++] = (struct ir_post_op){
            .kind = IR_POST_ACT, .act = IR_ACT_CLIP, .alpha = -0.5f, .beta = 0.5f};
    tb_output(g, y);
    struct run r;
    const float *inputs[] = {xin};
    run_graph(g, inputs, &r);
    assert_int_equal(r.out[0].nbytes, ny * sizeof(float));
    assert_close(r.out[0].data, want, ny);
    int wino = tb_count_op(r.img, r.len, PLAN_OP_WINOGRAD);
    run_free(&r);
    free(want);
    free(xin);
    return wino;
}

static int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d)
{
    return (in + 2 * p - (k - 1) * d - 1) / s + 1;
}

static struct conv_geom geom(int64_t c, int64_t oc, int64_t hw, int64_t k, int64_t s, int64_t p,
                             int64_t d, int64_t groups)
{
    struct conv_geom q = {1, c, hw, hw + 1, oc, k, k, s, s, p, p, d, d, groups, 0, 0};
    q.oh = out_size(q.h, k, s, p, d);
    q.ow = out_size(q.w, k, s, p, d);
    return q;
}

static void test_conv_plain(void **state)
{
    struct conv_geom q = geom(3, 8, 9, 3, 1, 1, 1, 1);
    conv_case(&q, 1, 0);
    q = geom(4, 6, 10, 3, 2, 0, 1, 1);
    conv_case(&q, 0, 1);
    q = geom(5, 7, 11, 1, 1, 0, 1, 1);
    conv_case(&q, 1, 1);
}

static void test_conv_dilated_strided(void **state)
{
    struct conv_geom q = geom(4, 4, 12, 3, 2, 2, 2, 1);
    conv_case(&q, 1, 1);
}

static void test_conv_grouped_depthwise(void **state)
{
    struct conv_geom q = geom(4, 6, 8, 3, 1, 1, 1, 2);
    conv_case(&q, 1, 0);
    q = geom(16, 16, 10, 3, 2, 1, 1, 16);
    conv_case(&q, 1, 1);
}

/* Weights fed at run time (not constants) are read plain instead of pre-packed. */
static void test_conv_runtime_weights(void **state)
{
    struct conv_geom q = geom(4, 6, 7, 3, 1, 1, 1, 2);
    struct ir_graph *g = tb_graph();
    int x = tb_act(g, "x", SHAPE(4, q.n, q.c, q.h, q.w));
    int w = tb_act(g, "w", SHAPE(4, q.oc, q.c / q.groups, q.kh, q.kw));
    int y = tb_act(g, "y", SHAPE(4, q.n, q.oc, q.oh, q.ow));
    tb_input(g, x);
    tb_input(g, w);
    int ins[2] = {x, w};
    struct ir_node *n = tb_node(g, "Conv", ins, 2, y);
    tb_ints(n, "pads", 4, 1, 1, 1, 1);
    ir_attr_set_int(n, "group", q.groups);
    tb_output(g, y);
    size_t ny = (size_t)(q.oc * q.oh * q.ow);
    float *xv = tb_fill((size_t)(q.c * q.h * q.w), 51), *wv = tb_fill(6 * 2 * 9, 53);
    float *want = malloc(ny * sizeof(float));
    ref_conv(&q, xv, wv, NULL, want);
    struct run r;
    const float *inputs[] = {xv, wv};
    run_graph(g, inputs, &r);
    assert_close(r.out[0].data, want, ny);
    run_free(&r);
    free(xv);
    free(wv);
    free(want);
}

/* y = relu(conv(x0) + x), x = relu(x0), with the addend x either dying at the conv (summed in
 * place) or read again later (copied into y first). */
static void residual_case(int addend_reused)
{
    struct ir_graph *g = tb_graph();
    int x0 = tb_act(g, "x0", SHAPE(4, 1, 8, 6, 6));
    int x = tb_act(g, "x", SHAPE(4, 1, 8, 6, 6));
    int w = tb_const(g, "w", SHAPE(4, 8, 8, 3, 3), NULL, 11);
    int y = tb_act(g, "y", SHAPE(4, 1, 8, 6, 6));
    int z = tb_act(g, "z", SHAPE(4, 1, 8, 6, 6));
    tb_input(g, x0);
    int r1[1] = {x0};
    tb_node(g, "Relu", r1, 1, x); /* x is an activation owned by the arena, not an input */
    int ins[2] = {x0, w};
    struct ir_node *n = tb_node(g, "Conv", ins, 2, y);
    tb_ints(n, "pads", 4, 1, 1, 1, 1);
    n->post[n->n_post++] = (struct ir_post_op){.kind = IR_POST_SUM, .tensor = x};
    n->post[n->n_post++] = (struct ir_post_op){.kind = IR_POST_ACT, .act = IR_ACT_RELU};
    int add[2] = {y, x};
    if (addend_reused)
        tb_node(g, "Add", add, 2, z);
    tb_output(g, addend_reused ? z : y);
    float *xin = tb_fill(8 * 36, 5), want[8 * 36], xr[8 * 36];
    for (int i = 0; i < 8 * 36; i++)
        xr[i] = relu(xin[i]);
    struct conv_geom q = geom(8, 8, 6, 3, 1, 1, 1, 1);
    q.w = 6;
    q.ow = 6;
    ref_conv(&q, xin, g->tensors[w].data, NULL, want);
    for (int i = 0; i < 8 * 36; i++)
        want[i] = relu(want[i] + xr[i]) + (addend_reused ? xr[i] : 0);
    struct run r;
    const float *inputs[] = {xin};
    run_graph(g, inputs, &r);
    assert_close(r.out[0].data, want, 8 * 36);
    struct plan_view v;
    char err[256];
    assert_int_equal(plan_view_init(&v, r.img, r.len, err, sizeof(err)), 0);
    uint64_t off_x = 0, off_y = 1;
    for (uint32_t i = 0; i < v.n_nodes; i++) {
        if (v.nodes[i].op != PLAN_OP_CONV && v.nodes[i].op != PLAN_OP_WINOGRAD)
            continue;
        assert_int_not_equal(v.nodes[i].sum_tensor, PLAN_NONE);
        off_x = v.tensors[v.nodes[i].sum_tensor].offset;
        off_y = v.tensors[v.nodes[i].out].offset;
    }
    if (addend_reused)
        assert_true(off_x != off_y); /* x still needed: y got its own buffer, x copied in */
    else
        assert_true(off_x == off_y); /* x dies here: the sum accumulates into x's buffer */
    run_free(&r);
    free(xin);
}

static void test_conv_residual_sum(void **state)
{
    residual_case(0);
    residual_case(1);
}

/* How many Winograd nodes auto makes of x[1,8,hw,hw] → Conv 3x3 (+bias, relu) → Flatten → Gemm
 * to 16 features, whose weights outweigh the conv's. */
static int auto_winograd_count(int64_t hw)
{
    struct ir_graph *g = tb_graph();
    int x = tb_act(g, "x", SHAPE(4, 1, 8, hw, hw));
    int c = tb_act(g, "c", SHAPE(4, 1, 8, hw, hw));
    int f = tb_act(g, "f", SHAPE(2, 1, 8 * hw * hw));
    int gw = tb_const(g, "gw", SHAPE(2, 16, 8 * hw * hw), NULL, 3);
    int y = tb_act(g, "y", SHAPE(2, 1, 16));
    tb_input(g, x);
    tb_conv3x3_relu(g, x, c, 1);
    int fi[1] = {c}, gi[2] = {f, gw};
    tb_node(g, "Flatten", fi, 1, f);
    ir_attr_set_int(tb_node(g, "Gemm", gi, 2, y), "transB", 1);
    tb_output(g, y);
    void *img;
    size_t len;
    char err[512];
    if (tb_compile_wino(g, 1, ENGINE_WINOGRAD_AUTO, &img, &len, err, sizeof(err)))
        fail_msg("compile: %s", err);
    int count = tb_count_op(img, len, PLAN_OP_WINOGRAD);
    engine_image_free(img);
    return count;
}

/* 3x3 stride-1 convolutions compiled as Winograd F(4x4,3x3) match the reference: outputs that
 * are not multiples of the 4x4 tile, padding 0 to 2, a batch of 2, with and without bias, Relu
 * and Clip, residual sums in place and copied; other convolutions stay direct; the automatic rule
 * picks it only for large outputs. */
static void test_conv_winograd(void **state)
{
    int want = tb_winograd_here(); /* else every conv stays direct */
    wino_mode = ENGINE_WINOGRAD_ALL;
    struct conv_geom q = geom(8, 16, 9, 3, 1, 1, 1, 1); /* 9x10 */
    assert_int_equal(conv_case(&q, 1, 1), want);
    q = geom(16, 8, 13, 3, 1, 0, 1, 1); /* no padding: 11x12 */
    assert_int_equal(conv_case(&q, 0, 0), want);
    q = geom(8, 8, 5, 3, 1, 2, 1, 1); /* padding 2: 7x8 */
    assert_int_equal(conv_case(&q, 1, 2), want);
    q = geom(24, 8, 6, 3, 1, 1, 1, 1);
    q.n = 2;
    assert_int_equal(conv_case(&q, 1, 1), want);
    q = geom(3, 8, 9, 3, 1, 1, 1, 1); /* 3 input channels */
    assert_int_equal(conv_case(&q, 1, 0), 0);
    q = geom(8, 8, 9, 3, 2, 1, 1, 1); /* stride 2 */
    assert_int_equal(conv_case(&q, 1, 0), 0);
    residual_case(0);
    residual_case(1);
    wino_mode = ENGINE_WINOGRAD_AUTO;
    /* alone in its model, a conv's transformed weights would add more than half the model */
    q = geom(8, 8, 28, 3, 1, 1, 1, 1);
    assert_int_equal(conv_case(&q, 1, 1), 0);
    assert_int_equal(auto_winograd_count(28), want); /* beside a big Gemm it is picked */
    assert_int_equal(auto_winograd_count(12), 0);    /* 12x12: small output, stays direct */
    wino_mode = ENGINE_WINOGRAD_OFF;
    q = geom(8, 8, 28, 3, 1, 1, 1, 1);
    assert_int_equal(conv_case(&q, 1, 1), 0);
    wino_mode = ENGINE_WINOGRAD_AUTO;
}

/* ---- pooling ---- */

static void pool_case(const char *op, int include_pad, int ceil_mode, int64_t hw, int64_t k,
                      int64_t s, int64_t p)
{
    int max = strcmp(op, "MaxPool") == 0;
    int64_t span = hw + 2 * p - k;
    int64_t o = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    if (ceil_mode && (o - 1) * s >= hw + p)
        o--;
    int64_t d[4] = {1, 3, hw, hw};
    struct ir_graph *g = tb_graph();
    int x = tb_act(g, "x", SHAPE(4, d[0], d[1], d[2], d[3]));
    int y = tb_act(g, "y", SHAPE(4, d[0], d[1], o, o));
    tb_input(g, x);
    int ins[1] = {x};
    struct ir_node *n = tb_node(g, op, ins, 1, y);
    tb_ints(n, "kernel_shape", 2, k, k);
    tb_ints(n, "strides", 2, s, s);
    tb_ints(n, "pads", 4, p, p, p, p);
    ir_attr_set_int(n, "ceil_mode", ceil_mode);
    if (!max)
        ir_attr_set_int(n, "count_include_pad", include_pad);
    tb_output(g, y);
    float *xin = tb_fill((size_t)(3 * hw * hw), 13);
    float *want = malloc((size_t)(3 * o * o) * sizeof(float));
    ref_pool(max, include_pad, d, k, s, p, o, o, xin, want);
    struct run r;
    const float *inputs[] = {xin};
    run_graph(g, inputs, &r);
    assert_close(r.out[0].data, want, (size_t)(3 * o * o));
    run_free(&r);
    free(xin);
    free(want);
}

static void test_pool(void **state)
{
    pool_case("MaxPool", 0, 0, 8, 3, 2, 1);
    pool_case("MaxPool", 0, 1, 13, 3, 2, 0); /* squeezenet's ceil_mode pooling */
    pool_case("AveragePool", 0, 0, 7, 3, 2, 1);
    pool_case("AveragePool", 1, 0, 7, 3, 2, 1);
    pool_case("AveragePool", 0, 0, 7, 1, 1, 0);
}

static void test_global_pool(void **state)
{
    struct ir_graph *g = tb_graph();
    int x = tb_act(g, "x", SHAPE(4, 1, 5, 4, 3));
    int y = tb_act(g, "y", SHAPE(4, 1, 5, 1, 1));
    int f = tb_act(g, "f", SHAPE(2, 1, 5));
    tb_input(g, x);
    int ins[1] = {x}, fin[1] = {y};
    tb_node(g, "GlobalAveragePool", ins, 1, y);
    tb_node(g, "Flatten", fin, 1, f);
    tb_output(g, f);
    float *xin = tb_fill(60, 17), want[5] = {0};
    for (int c = 0; c < 5; c++) {
        for (int i = 0; i < 12; i++)
            want[c] += xin[c * 12 + i];
        want[c] /= 12;
    }
    struct run r;
    const float *inputs[] = {xin};
    run_graph(g, inputs, &r);
    assert_int_equal(r.out[0].shape.rank, 2);
    assert_int_equal(r.out[0].shape.dims[1], 5);
    assert_string_equal(r.out[0].name, "f");
    assert_close(r.out[0].data, want, 5);
    run_free(&r);
    free(xin);
}

/* ---- Gemm / MatMul ---- */

static void gemm_case(int trans_b, float alpha, float beta, int matmul)
{
    int64_t m = 3, k = 10, nn = 7;
    struct ir_graph *g = tb_graph();
    int a = tb_act(g, "a", SHAPE(2, m, k));
    int b = trans_b ? tb_const(g, "b", SHAPE(2, nn, k), NULL, 19)
                    : tb_const(g, "b", SHAPE(2, k, nn), NULL, 19);
    int c = tb_const(g, "c", SHAPE(1, nn), NULL, 23);
    int y = tb_act(g, "y", SHAPE(2, m, nn));
    tb_input(g, a);
    int ins[3] = {a, b, c};
    struct ir_node *n = tb_node(g, matmul ? "MatMul" : "Gemm", ins, matmul ? 2 : 3, y);
    if (!matmul) {
        ir_attr_set_int(n, "transB", trans_b);
        ir_attr_set_float(n, "alpha", alpha);
        ir_attr_set_float(n, "beta", beta);
    }
    tb_output(g, y);
    float *ain = tb_fill((size_t)(m * k), 29), want[21];
    const float *bv = g->tensors[b].data, *cv = g->tensors[c].data;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < nn; j++) {
            double acc = 0;
            for (int64_t q = 0; q < k; q++)
                acc += ain[i * k + q] * (trans_b ? bv[j * k + q] : bv[q * nn + j]);
            want[i * nn + j] = (float)(alpha * acc + (matmul ? 0 : beta * cv[j]));
        }
    struct run r;
    const float *inputs[] = {ain};
    run_graph(g, inputs, &r);
    assert_close(r.out[0].data, want, (size_t)(m * nn));
    run_free(&r);
    free(ain);
}

static void test_gemm(void **state)
{
    gemm_case(1, 1.0f, 1.0f, 0);
    gemm_case(0, 0.5f, 2.0f, 0);
    gemm_case(0, 1.0f, 0.0f, 1);
}

/* Gemm with A transposed, B fed at run time and a full [M,N] C (a constant, or fed at run time
 * and scaled by beta/alpha in the arena first) runs as a oneDNN matmul. */
static void gemm_general_case(int runtime_c)
{
    int64_t m = 3, k = 4, nn = 5;
    struct ir_graph *g = tb_graph();
    int a = tb_act(g, "a", SHAPE(2, k, m));
    int b = tb_act(g, "b", SHAPE(2, nn, k));
    float *cfill = tb_fill((size_t)(m * nn), 61);
    int c =
        runtime_c ? tb_act(g, "c", SHAPE(2, m, nn)) : tb_const(g, "c", SHAPE(2, m, nn), cfill, 0);
    int y = tb_act(g, "y", SHAPE(2, m, nn));
    tb_input(g, a);
    tb_input(g, b);
    if (runtime_c)
        tb_input(g, c);
    int ins[3] = {a, b, c};
    struct ir_node *n = tb_node(g, "Gemm", ins, 3, y);
    ir_attr_set_int(n, "transA", 1);
    ir_attr_set_int(n, "transB", 1);
    ir_attr_set_float(n, "alpha", 0.5f);
    ir_attr_set_float(n, "beta", 2.0f);
    tb_output(g, y);
    float *av = tb_fill((size_t)(k * m), 67), *bv = tb_fill((size_t)(nn * k), 71), want[15];
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < nn; j++) {
            double acc = 0;
            for (int64_t q = 0; q < k; q++)
                acc += av[q * m + i] * bv[j * k + q];
            want[i * nn + j] = (float)(0.5 * acc + 2.0 * cfill[i * nn + j]);
        }
    struct run r;
    const float *inputs[] = {av, bv, cfill};
    run_graph(g, inputs, &r);
    assert_close(r.out[0].data, want, (size_t)(m * nn));
    run_free(&r);
    free(av);
    free(bv);
    free(cfill);
}

static void test_gemm_general(void **state)
{
    gemm_general_case(0);
    gemm_general_case(1);
}

/* ---- Concat, binary, softmax, activations ---- */

static void test_concat(void **state)
{
    struct ir_graph *g = tb_graph();
    int a = tb_act(g, "a", SHAPE(4, 1, 2, 3, 3));
    int b = tb_act(g, "b", SHAPE(4, 1, 3, 3, 3));
    int ra = tb_act(g, "ra", SHAPE(4, 1, 2, 3, 3));
    int y = tb_act(g, "y", SHAPE(4, 1, 5, 3, 3));
    tb_input(g, a);
    tb_input(g, b);
    int r1[1] = {a}, ins[2] = {ra, b};
    tb_node(g, "Relu", r1, 1, ra);
    struct ir_node *n = tb_node(g, "Concat", ins, 2, y);
    ir_attr_set_int(n, "axis", 1);
    tb_output(g, y);
    float *av = tb_fill(18, 31), *bv = tb_fill(27, 37), want[45];
    for (int i = 0; i < 18; i++)
        want[i] = relu(av[i]);
    memcpy(want + 18, bv, 27 * sizeof(float));
    struct run r;
    const float *inputs[] = {av, bv};
    run_graph(g, inputs, &r);
    assert_close(r.out[0].data, want, 45);
    run_free(&r);
    free(av);
    free(bv);
}

/* a (op) b where b is [1,3,1,1] (broadcast); `swapped` puts the broadcast operand first. */
static void binary_case(const char *op, int swapped)
{
    struct ir_graph *g = tb_graph();
    int a = tb_act(g, "a", SHAPE(4, 1, 3, 2, 2));
    float bvals[3] = {0.5f, -2.0f, 4.0f};
    int b = tb_const(g, "b", SHAPE(4, 1, 3, 1, 1), bvals, 0);
    int y = tb_act(g, "y", SHAPE(4, 1, 3, 2, 2));
    tb_input(g, a);
    int ins[2] = {swapped ? b : a, swapped ? a : b};
    tb_node(g, op, ins, 2, y);
    tb_output(g, y);
    float *av = tb_fill(12, 41), want[12];
    for (int i = 0; i < 12; i++) {
        float p = swapped ? bvals[i / 4] : av[i], q = swapped ? av[i] : bvals[i / 4];
        want[i] = op[0] == 'A' ? p + q : op[0] == 'M' ? p * q : op[0] == 'S' ? p - q : p / q;
    }
    struct run r;
    const float *inputs[] = {av};
    run_graph(g, inputs, &r);
    assert_close(r.out[0].data, want, 12);
    run_free(&r);
    free(av);
}

static void test_binary_broadcast(void **state)
{
    static const char *const ops[] = {"Add", "Mul", "Sub", "Div"};
    for (int i = 0; i < 4; i++) {
        binary_case(ops[i], 0);
        binary_case(ops[i], 1);
    }
}

/* PRelu with a constant slope runs on oneDNN's prelu primitive, on a convolution's output in the
 * layout the convolution left it (blocked: no reorder around it); a one-value slope is a
 * LeakyRelu; negative, zero and > 1 slopes; its output matches x < 0 ? slope * x : x. */
static void prelu_case(int after_conv)
{
    enum { C = 12, HW = 25, N = C * HW };
    struct ir_graph *g = tb_graph();
    int x = tb_act(g, "x", SHAPE(4, 1, C, 5, 5)), c = tb_act(g, "c", SHAPE(4, 1, C, 5, 5));
    int y = tb_act(g, "y", SHAPE(4, 1, C, 5, 5));
    float slope[C];
    for (int i = 0; i < C; i++)
        slope[i] = (float)(i - 4) * 0.375f; /* -1.5 .. 2.625, 0 included */
    int s = after_conv ? tb_const(g, "s", SHAPE(3, C, 1, 1), slope, 0)
                       : tb_const(g, "s", SHAPE(1, 1), slope, 0);
    tb_input(g, x);
    if (after_conv) {
        int w = tb_const(g, "w", SHAPE(4, C, C, 3, 3), NULL, 5);
        int ci[2] = {x, w};
        tb_ints(tb_node(g, "Conv", ci, 2, c), "pads", 4, 1, 1, 1, 1);
        tb_output(g, c);
    }
    int pi[2] = {after_conv ? c : x, s};
    tb_node(g, "PRelu", pi, 2, y);
    tb_output(g, y);
    float *xv = tb_fill(N, 43), want[N];
    struct run r;
    const float *inputs[] = {xv};
    run_graph(g, inputs, &r);
    const float *src = after_conv ? r.out[0].data : xv;
    for (int i = 0; i < N; i++) {
        float k = after_conv ? slope[i / HW] : slope[0];
        want[i] = src[i] < 0 ? k * src[i] : src[i];
    }
    assert_close(r.out[after_conv].data, want, N);
    /* one slope: a LeakyRelu (eltwise); per channel: the prelu primitive; never the C kernel */
    assert_int_equal(tb_count_op(r.img, r.len, PLAN_OP_PRELU), after_conv);
    assert_int_equal(tb_count_op(r.img, r.len, PLAN_OP_ELTWISE), !after_conv);
    assert_int_equal(tb_count_op(r.img, r.len, PLAN_OP_KERNEL), 0);
    /* no reorder between the convolution and the PRelu: it reads the convolution's output */
    struct plan_view v;
    char err[256];
    assert_int_equal(plan_view_init(&v, r.img, r.len, err, sizeof(err)), 0);
    const struct plan_node *pr = &v.nodes[tb_first_op(r.img, r.len, PLAN_OP_PRELU)];
    if (after_conv)
        assert_int_equal(plan_input(&v, pr, 0),
                         v.nodes[tb_first_op(r.img, r.len, PLAN_OP_CONV)].out);
    run_free(&r);
    free(xv);
}

static void test_prelu(void **state)
{
    prelu_case(1);
    prelu_case(0);
}

/* ONNX Resize of one axis: where output i samples (half_pixel, pytorch_half_pixel,
 * align_corners or asymmetric), written from the operator's definition for the test. */
static double resize_ref_coord(const char *coord, int64_t i, int64_t in, int64_t out)
{
    double s = (double)out / (double)in;
    if (strcmp(coord, "asymmetric") == 0)
        return (double)i / s;
    if (strcmp(coord, "align_corners") == 0)
        return out == 1 ? 0 : (double)i * (double)(in - 1) / (double)(out - 1);
    if (strcmp(coord, "pytorch_half_pixel") == 0 && out == 1)
        return 0;
    return ((double)i + 0.5) / s - 0.5;
}

static int64_t resize_ref_clamp(double v, int64_t in)
{
    return v < 0 ? 0 : v > (double)(in - 1) ? in - 1 : (int64_t)v;
}

/* One plane's output element (oy, ox): nearest (with nearest_mode) or bilinear, edge-clamped. */
static float resize_ref(const float *x, int64_t ih, int64_t iw, int64_t oh, int64_t ow,
                        const char *mode, const char *coord, const char *nearest, int64_t oy,
                        int64_t ox)
{
    double cy = resize_ref_coord(coord, oy, ih, oh), cx = resize_ref_coord(coord, ox, iw, ow);
    if (strcmp(mode, "nearest") == 0) {
        double ry, rx;
        if (strcmp(nearest, "floor") == 0)
            ry = floor(cy), rx = floor(cx);
        else if (strcmp(nearest, "ceil") == 0)
            ry = ceil(cy), rx = ceil(cx);
        else /* round_prefer_floor */
            ry = ceil(cy - 0.5), rx = ceil(cx - 0.5);
        return x[resize_ref_clamp(ry, ih) * iw + resize_ref_clamp(rx, iw)];
    }
    double fy = floor(cy), fx = floor(cx), ty = cy - fy, tx = cx - fx, acc = 0;
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++) {
            int64_t y = resize_ref_clamp(fy + a, ih), xx = resize_ref_clamp(fx + b, iw);
            acc += (a ? ty : 1 - ty) * (b ? tx : 1 - tx) * x[y * iw + xx];
        }
    return (float)acc;
}

/* Resize after a convolution: the cases oneDNN's resampling samples exactly as ONNX does run on
 * it in the convolution's layout (no reorder, no C kernel); the others (nearest_mode ceil, a
 * non-integer nearest factor) on the C kernel; every output matches the definition. */
static void resize_case(const char *mode, const char *coord, const char *nearest, int64_t oh,
                        int64_t ow, int want_onednn)
{
    enum { C = 16, IH = 6, IW = 5 };
    struct ir_graph *g = tb_graph();
    int x = tb_act(g, "x", SHAPE(4, 1, C, IH, IW)), c = tb_act(g, "c", SHAPE(4, 1, C, IH, IW));
    int y = tb_act(g, "y", SHAPE(4, 1, C, oh, ow));
    float scales[4] = {1, 1, (float)oh / IH, (float)ow / IW};
    int sc = tb_const(g, "scales", SHAPE(1, 4), scales, 0);
    tb_input(g, x);
    int w = tb_const(g, "w", SHAPE(4, C, C, 3, 3), NULL, 7);
    int ci[2] = {x, w};
    tb_ints(tb_node(g, "Conv", ci, 2, c), "pads", 4, 1, 1, 1, 1);
    tb_output(g, c);
    int ri[3] = {c, -1, sc};
    struct ir_node *rn = tb_node(g, "Resize", ri, 3, y);
    tb_str(rn, "mode", mode);
    tb_str(rn, "coordinate_transformation_mode", coord);
    tb_str(rn, "nearest_mode", nearest);
    tb_output(g, y);
    char err[256];
    assert_int_equal(ir_infer_shapes(g, NULL, 0, err, sizeof(err)), 0); /* resolves the Resize */
    float *xv = tb_fill(C * IH * IW, 44), *want = malloc(sizeof(float) * C * oh * ow);
    struct run r;
    const float *inputs[] = {xv};
    run_graph(g, inputs, &r);
    const float *conv = r.out[0].data;
    for (int64_t ch = 0; ch < C; ch++)
        for (int64_t oy = 0; oy < oh; oy++)
            for (int64_t ox = 0; ox < ow; ox++)
                want[(ch * oh + oy) * ow + ox] =
                    resize_ref(conv + ch * IH * IW, IH, IW, oh, ow, mode, coord, nearest, oy, ox);
    assert_close(r.out[1].data, want, (size_t)(C * oh * ow));
    assert_int_equal(tb_count_op(r.img, r.len, PLAN_OP_RESAMPLE), want_onednn);
    assert_int_equal(tb_count_op(r.img, r.len, PLAN_OP_KERNEL), !want_onednn);
    if (want_onednn) {
        struct plan_view v;
        assert_int_equal(plan_view_init(&v, r.img, r.len, err, sizeof(err)), 0);
        const struct plan_node *rs = &v.nodes[tb_first_op(r.img, r.len, PLAN_OP_RESAMPLE)];
        assert_int_equal(plan_input(&v, rs, 0),
                         v.nodes[tb_first_op(r.img, r.len, PLAN_OP_CONV)].out);
    }
    run_free(&r);
    free(xv);
    free(want);
}

static void test_resize_onednn(void **state)
{
    (void)state;
    resize_case("linear", "half_pixel", "round_prefer_floor", 12, 10, 1);
    resize_case("linear", "pytorch_half_pixel", "round_prefer_floor", 3, 5, 1); /* down, keep */
    resize_case("nearest", "asymmetric", "floor", 12, 15, 1);
    resize_case("nearest", "half_pixel", "round_prefer_floor", 18, 10, 1);
    resize_case("nearest", "half_pixel", "ceil", 12, 10, 0); /* not rounding: C kernel */
    resize_case("nearest", "asymmetric", "floor", 9, 10, 0); /* x1.5: C kernel */
    resize_case("linear", "align_corners", "round_prefer_floor", 12, 10, 0);
}

/* A ReduceMean over every spatial axis with keepdims (a squeeze-excite's squeeze) runs as
 * oneDNN's global average pooling on the convolution's layout; over other axes, or without
 * keepdims, the C reduce kernel. Both match the mean. */
static void reduce_mean_case(int spatial)
{
    enum { C = 8, HW = 36 };
    struct ir_graph *g = tb_graph();
    int x = tb_act(g, "x", SHAPE(4, 1, C, 6, 6)), c = tb_act(g, "c", SHAPE(4, 1, C, 6, 6));
    int y = spatial ? tb_act(g, "y", SHAPE(4, 1, C, 1, 1)) : tb_act(g, "y", SHAPE(4, 1, 1, 6, 6));
    int w = tb_const(g, "w", SHAPE(4, C, C, 3, 3), NULL, 9);
    tb_input(g, x);
    int ci[2] = {x, w}, ri[1] = {c};
    tb_ints(tb_node(g, "Conv", ci, 2, c), "pads", 4, 1, 1, 1, 1);
    tb_output(g, c);
    struct ir_node *r = tb_node(g, "ReduceMean", ri, 1, y);
    if (spatial)
        tb_ints(r, "axes", 2, 2, 3);
    else
        tb_ints(r, "axes", 1, 1);
    tb_output(g, y);
    float *xv = tb_fill(C * HW, 47);
    struct run rr;
    const float *inputs[] = {xv};
    run_graph(g, inputs, &rr);
    const float *cv = rr.out[0].data;
    float want[HW];
    for (int i = 0; i < (spatial ? C : HW); i++) {
        double s = 0;
        for (int k = 0; k < (spatial ? HW : C); k++)
            s += spatial ? cv[i * HW + k] : cv[k * HW + i];
        want[i] = (float)(s / (spatial ? HW : C));
    }
    assert_close(rr.out[1].data, want, spatial ? C : HW);
    assert_int_equal(tb_count_op(rr.img, rr.len, PLAN_OP_POOL), spatial);
    run_free(&rr);
    free(xv);
}

static void test_reduce_mean_pool(void **state)
{
    reduce_mean_case(1);
    reduce_mean_case(0);
}

static void test_softmax(void **state)
{
    struct ir_graph *g = tb_graph();
    int x = tb_act(g, "x", SHAPE(2, 2, 5));
    int y = tb_act(g, "y", SHAPE(2, 2, 5));
    tb_input(g, x);
    int ins[1] = {x};
    struct ir_node *n = tb_node(g, "Softmax", ins, 1, y);
    ir_attr_set_int(n, "axis", 1);
    tb_output(g, y);
    float *xv = tb_fill(10, 43), want[10];
    for (int r0 = 0; r0 < 2; r0++) {
        double sum = 0;
        for (int i = 0; i < 5; i++)
            sum += exp(xv[r0 * 5 + i]);
        for (int i = 0; i < 5; i++)
            want[r0 * 5 + i] = (float)(exp(xv[r0 * 5 + i]) / sum);
    }
    struct run r;
    const float *inputs[] = {xv};
    run_graph(g, inputs, &r);
    assert_close(r.out[0].data, want, 10);
    run_free(&r);
    free(xv);
}

static void test_activations(void **state)
{
    struct ir_graph *g = tb_graph();
    int x = tb_act(g, "x", SHAPE(2, 4, 8));
    int lo = tb_const(g, "lo", SHAPE(0), (float[]){0.0f}, 0);
    int hi = tb_const(g, "hi", SHAPE(0), (float[]){0.5f}, 0);
    int c = tb_act(g, "c", SHAPE(2, 4, 8));
    int l = tb_act(g, "l", SHAPE(2, 4, 8));
    int h = tb_act(g, "h", SHAPE(2, 4, 8));
    tb_input(g, x);
    int clip[3] = {x, lo, hi}, li[1] = {x}, hin[1] = {x};
    tb_node(g, "Clip", clip, 3, c);
    struct ir_node *n = tb_node(g, "LeakyRelu", li, 1, l);
    ir_attr_set_float(n, "alpha", 0.1f);
    tb_node(g, "HardSigmoid", hin, 1, h);
    tb_output(g, c);
    tb_output(g, l);
    tb_output(g, h);
    float *xv = tb_fill(32, 47), wc[32], wl[32], wh[32];
    for (int i = 0; i < 32; i++) {
        wc[i] = fminf(fmaxf(xv[i], 0.0f), 0.5f);
        wl[i] = xv[i] > 0 ? xv[i] : 0.1f * xv[i];
        wh[i] = fminf(fmaxf(0.2f * xv[i] + 0.5f, 0.0f), 1.0f);
    }
    struct run r;
    const float *inputs[] = {xv};
    run_graph(g, inputs, &r);
    assert_close(r.out[0].data, wc, 32);
    assert_close(r.out[1].data, wl, 32);
    assert_close(r.out[2].data, wh, 32);
    run_free(&r);
    free(xv);
}

/* ---- memory plan ---- */

/* Two arena tensors whose bytes overlap are never live at the same time, unless they are the
 * same buffer (an alias or an in-place sum: same offset and size). Returns the sum of all
 * activation sizes. */
static uint64_t check_no_live_overlap(const struct plan_view *v)
{
    uint32_t nt = v->n_tensors;
    int64_t *def = malloc(nt * sizeof(int64_t)), *last = malloc(nt * sizeof(int64_t));
    uint64_t total = 0;
    for (uint32_t i = 0; i < nt; i++) {
        def[i] = v->tensors[i].flags & PLAN_TF_INPUT ? -1 : INT64_MAX;
        last[i] = v->tensors[i].flags & PLAN_TF_OUTPUT ? (int64_t)v->n_nodes : -2;
    }
    for (uint32_t k = 0; k < v->n_nodes; k++) {
        const struct plan_node *n = &v->nodes[k];
        def[n->out] = def[n->out] < (int64_t)k ? def[n->out] : (int64_t)k;
        last[n->out] = last[n->out] > (int64_t)k ? last[n->out] : (int64_t)k;
        for (uint32_t i = 0; i <= n->n_in; i++) {
            uint32_t t = n->sum_tensor;
            if (i < n->n_in)
                t = (uint32_t)plan_input(v, n, i);
            if (t != PLAN_NONE && last[t] < (int64_t)k)
                last[t] = k;
        }
    }
    for (uint32_t i = 0; i < nt; i++) {
        const struct plan_tensor *a = &v->tensors[i];
        if (a->storage != PLAN_ST_ARENA || def[i] == INT64_MAX)
            continue;
        total += a->nbytes;
        for (uint32_t j = i + 1; j < nt; j++) {
            const struct plan_tensor *b = &v->tensors[j];
            if (b->storage != PLAN_ST_ARENA || def[j] == INT64_MAX ||
                (a->offset == b->offset && a->nbytes == b->nbytes))
                continue;
            int bytes = a->offset < b->offset + b->nbytes && b->offset < a->offset + a->nbytes;
            int alive = def[i] <= last[j] && def[j] <= last[i];
            if (bytes && alive)
                fail_msg("tensors %s and %s share bytes while both live", plan_str(v, a->name),
                         plan_str(v, b->name));
        }
    }
    free(def);
    free(last);
    return total;
}

/* A chain with a branch, a concat and a residual: the plan reuses memory and never lets two
 * live tensors share bytes. */
static void test_memory_plan(void **state)
{
    struct ir_graph *g = tb_graph();
    int x = tb_act(g, "x", SHAPE(4, 1, 8, 16, 16));
    int prev = x;
    char name[16];
    for (int i = 0; i < 6; i++) {
        snprintf(name, sizeof(name), "w%d", i);
        int w = tb_const(g, name, SHAPE(4, 8, 8, 3, 3), NULL, (uint32_t)i + 100);
        snprintf(name, sizeof(name), "a%d", i);
        int a = tb_act(g, name, SHAPE(4, 1, 8, 16, 16));
        int ins[2] = {prev, w};
        struct ir_node *n = tb_node(g, "Conv", ins, 2, a);
        tb_ints(n, "pads", 4, 1, 1, 1, 1);
        if (i % 2)
            n->post[n->n_post++] = (struct ir_post_op){.kind = IR_POST_SUM, .tensor = prev};
        n->post[n->n_post++] = (struct ir_post_op){.kind = IR_POST_ACT, .act = IR_ACT_RELU};
        prev = a;
    }
    int br = tb_act(g, "br", SHAPE(4, 1, 8, 16, 16));
    int cat = tb_act(g, "cat", SHAPE(4, 1, 16, 16, 16));
    int gp = tb_act(g, "gp", SHAPE(4, 1, 16, 1, 1));
    int r1[1] = {x}, ci[2] = {prev, br}, gi[1] = {cat};
    tb_input(g, x);
    tb_node(g, "Relu", r1, 1, br);
    ir_attr_set_int(tb_node(g, "Concat", ci, 2, cat), "axis", 1);
    tb_node(g, "GlobalAveragePool", gi, 1, gp);
    tb_output(g, gp);
    void *img;
    size_t len;
    char err[256];
    if (tb_compile(g, 1, &img, &len, err, sizeof(err)))
        fail_msg("compile: %s", err);
    struct plan_view v;
    assert_int_equal(plan_view_init(&v, img, len, err, sizeof(err)), 0);
    uint64_t total = check_no_live_overlap(&v);
    print_message("arena %llu bytes for %llu bytes of activations\n",
                  (unsigned long long)v.h->arena_size, (unsigned long long)total);
    assert_true(v.h->arena_size * 2 <= total);
    engine_image_free(img);
}

/* The same property on the zoo's real networks, when `make zoo` has exported them. */
static void test_memory_plan_zoo(void **state)
{
    static const char *const models[] = {"resnet18", "mobilenet_v2", "squeezenet1_1"};
    const char *zoo = getenv("SHMFAAS_ZOO");
    for (size_t i = 0; zoo && i < ARRAY_LEN(models); i++) {
        char path[512], err[512];
        uint8_t *onnx;
        size_t olen, len;
        void *img;
        snprintf(path, sizeof(path), "%s/%s/model.onnx", zoo, models[i]);
        if (read_file(path, 1u << 30, &onnx, &olen, err, sizeof(err)))
            continue;
        struct engine_compile_opts o = {.threads = 1, .model_name = models[i]};
        if (engine_compile(onnx, olen, &o, &img, &len, err, sizeof(err)))
            fail_msg("%s", err);
        free(onnx);
        struct plan_view v;
        assert_int_equal(plan_view_init(&v, img, len, err, sizeof(err)), 0);
        uint64_t total = check_no_live_overlap(&v);
        print_message("%s: arena %.1f MiB for %.1f MiB of activations\n", models[i],
                      v.h->arena_size / 1048576.0, total / 1048576.0);
        engine_image_free(img);
    }
}

/* ---- data movement (plain-C kernels) ---- */

/* y = Gather(Slice(Transpose(x)), idx): x[2,3,4] → perm (2,0,1) → [4,2,3] → slice axis 0 from 3
 * down by -2 → [2,2,3] → gather axis 2 with [2,0] → [2,2,2]. */
static void test_kernels(void **state)
{
    struct ir_graph *g = tb_graph();
    int x = tb_act(g, "x", SHAPE(3, 2, 3, 4));
    int t = tb_act(g, "t", SHAPE(3, 4, 2, 3));
    int s = tb_act(g, "s", SHAPE(3, 2, 2, 3));
    int y = tb_act(g, "y", SHAPE(3, 2, 2, 2));
    int64_t st[1] = {-1}, en[1] = {-100}, ax[1] = {0}, sp[1] = {-2}, ix[2] = {2, 0};
    struct engine_shape one = SHAPE(1, 1), two = SHAPE(1, 2);
    int cst = ir_add_const(g, "st", "", ENGINE_I64, &one, memcpy(malloc(8), st, 8));
    int cen = ir_add_const(g, "en", "", ENGINE_I64, &one, memcpy(malloc(8), en, 8));
    int cax = ir_add_const(g, "ax", "", ENGINE_I64, &one, memcpy(malloc(8), ax, 8));
    int csp = ir_add_const(g, "sp", "", ENGINE_I64, &one, memcpy(malloc(8), sp, 8));
    int cix = ir_add_const(g, "ix", "", ENGINE_I64, &two, memcpy(malloc(16), ix, 16));
    tb_input(g, x);
    int ti[1] = {x}, si[5] = {t, cst, cen, cax, csp}, gi[2] = {s, cix};
    tb_ints(tb_node(g, "Transpose", ti, 1, t), "perm", 3, 2, 0, 1);
    tb_node(g, "Slice", si, 5, s);
    ir_attr_set_int(tb_node(g, "Gather", gi, 2, y), "axis", 2);
    tb_output(g, y);
    float xv[24], want[8];
    for (int i = 0; i < 24; i++)
        xv[i] = (float)i;
    /* t[a][b][c] = x[b][c][a]; s[i] = t[3 - 2i]; y[i][b][j] = s[i][b][ix[j]] */
    for (int i = 0; i < 2; i++)
        for (int b = 0; b < 2; b++)
            for (int j = 0; j < 2; j++)
                want[(i * 2 + b) * 2 + j] = xv[(b * 3 + (int)ix[j]) * 4 + (3 - 2 * i)];
    struct run r;
    const float *inputs[] = {xv};
    run_graph(g, inputs, &r);
    assert_int_equal(r.out[0].nbytes, sizeof(want));
    assert_memory_equal(r.out[0].data, want, sizeof(want));
    run_free(&r);
}

/* Binary ops oneDNN does not take (comparisons, Pow, both operands broadcast) and ReduceMean
 * run as C kernels. */
static void test_binary_and_reduce_kernels(void **state)
{
    struct ir_graph *g = tb_graph();
    int a = tb_act(g, "a", SHAPE(2, 2, 1));
    int b = tb_act(g, "b", SHAPE(2, 1, 3));
    int p = tb_act(g, "p", SHAPE(2, 2, 3));
    int e = tb_act(g, "e", SHAPE(2, 2, 3));
    int m = tb_act(g, "m", SHAPE(2, 1, 3));
    g->tensors[e].dtype = ENGINE_BOOL;
    tb_input(g, a);
    tb_input(g, b);
    int pin[2] = {a, b}, ein[2] = {p, p}, min[1] = {p};
    tb_node(g, "Pow", pin, 2, p);
    tb_node(g, "Equal", ein, 2, e);
    tb_ints(tb_node(g, "ReduceMean", min, 1, m), "axes", 1, 0);
    tb_output(g, p);
    tb_output(g, e);
    tb_output(g, m);
    float av[2] = {2.0f, 3.0f}, bv[3] = {0.0f, 1.0f, 2.0f};
    float wp[6] = {1, 2, 4, 1, 3, 9}, wm[3] = {1.0f, 2.5f, 6.5f};
    uint8_t we[6] = {1, 1, 1, 1, 1, 1};
    struct run r;
    const float *inputs[] = {av, bv};
    run_graph(g, inputs, &r);
    assert_close(r.out[0].data, wp, 6);
    assert_int_equal(r.out[1].dtype, ENGINE_BOOL);
    assert_memory_equal(r.out[1].data, we, 6);
    assert_close(r.out[2].data, wm, 3);
    run_free(&r);
}

/* Pad (constant and edge) and Cast run as C kernels. */
static void test_pad_and_cast(void **state)
{
    struct ir_graph *g = tb_graph();
    int x = tb_act(g, "x", SHAPE(3, 1, 2, 2));
    int p = tb_act(g, "p", SHAPE(3, 1, 3, 3));
    int e = tb_act(g, "e", SHAPE(3, 1, 2, 4));
    int c = tb_act(g, "c", SHAPE(3, 1, 2, 2));
    g->tensors[c].dtype = ENGINE_I64;
    tb_input(g, x);
    int ins[1] = {x};
    struct ir_node *n = tb_node(g, "Pad", ins, 1, p);
    tb_ints(n, "pads", 6, 0, 1, 0, 0, 0, 1);
    ir_attr_set_float(n, "value", 9.0f);
    n = tb_node(g, "Pad", ins, 1, e);
    tb_ints(n, "pads", 6, 0, 0, 1, 0, 0, 1);
    tb_str(n, "mode", "edge");
    tb_node(g, "Cast", ins, 1, c);
    tb_output(g, p);
    tb_output(g, e);
    tb_output(g, c);
    float xv[4] = {1.5f, 2.0f, -3.0f, 4.0f};
    float wp[9] = {9, 9, 9, 1.5f, 2, 9, -3, 4, 9};
    float we[8] = {1.5f, 1.5f, 2, 2, -3, -3, 4, 4};
    int64_t wc[4] = {1, 2, -3, 4};
    struct run r;
    const float *inputs[] = {xv};
    run_graph(g, inputs, &r);
    assert_close(r.out[0].data, wp, 9);
    assert_close(r.out[1].data, we, 8);
    assert_int_equal(r.out[2].dtype, ENGINE_I64);
    assert_memory_equal(r.out[2].data, wc, sizeof(wc));
    run_free(&r);
}

/* Where(a > b, a, b) with all three operands broadcast: a C select kernel (the elementwise max). */
static void test_where(void **state)
{
    struct ir_graph *g = tb_graph();
    int a = tb_act(g, "a", SHAPE(2, 2, 1));
    int b = tb_act(g, "b", SHAPE(2, 1, 3));
    int c = tb_act(g, "c", SHAPE(2, 2, 3));
    int y = tb_act(g, "y", SHAPE(2, 2, 3));
    g->tensors[c].dtype = ENGINE_BOOL;
    tb_input(g, a);
    tb_input(g, b);
    int cin[2] = {a, b}, win[3] = {c, a, b};
    tb_node(g, "Greater", cin, 2, c);
    tb_node(g, "Where", win, 3, y);
    tb_output(g, y);
    float av[2] = {1.0f, 5.0f}, bv[3] = {0.0f, 2.0f, 7.0f};
    float want[6] = {1, 2, 7, 5, 5, 7};
    struct run r;
    const float *inputs[] = {av, bv};
    run_graph(g, inputs, &r);
    assert_close(r.out[0].data, want, 6);
    run_free(&r);
}

/* LayerNormalization of x [2,3,4] over the last dim (with and without bias) and over the last
 * two dims, against a direct computation; a scale of the wrong size is refused. */
static struct ir_graph *layernorm_graph(int with_bias, int64_t axis, int64_t group, const float *sv,
                                        const float *bv)
{
    struct ir_graph *g = tb_graph();
    int x = tb_act(g, "x", SHAPE(3, 2, 3, 4));
    int y = tb_act(g, "y", SHAPE(3, 2, 3, 4));
    int sc = tb_const(g, "scale", SHAPE(1, group), sv, 0);
    int b = tb_const(g, "bias", SHAPE(1, group), bv, 0);
    tb_input(g, x);
    int ins[3] = {x, sc, b};
    struct ir_node *n = tb_node(g, "LayerNormalization", ins, with_bias ? 3 : 2, y);
    ir_attr_set_int(n, "axis", axis);
    ir_attr_set_float(n, "epsilon", 1e-3f);
    tb_output(g, y);
    return g;
}

static void layernorm_check(int with_bias, int64_t axis, int64_t group, const float *xv)
{
    float *sv = tb_fill((size_t)group, 5), *bv = tb_fill((size_t)group, 7), want[24];
    for (int64_t row = 0; row < 24 / group; row++) {
        const float *v = xv + row * group;
        double mean = 0, var = 0;
        for (int64_t i = 0; i < group; i++)
            mean += v[i] / (double)group;
        for (int64_t i = 0; i < group; i++)
            var += (v[i] - mean) * (v[i] - mean) / (double)group;
        for (int64_t i = 0; i < group; i++)
            want[row * group + i] =
                (float)((v[i] - mean) / sqrt(var + 1e-3) * sv[i] + (with_bias ? bv[i] : 0));
    }
    struct run r;
    const float *inputs[] = {xv};
    run_graph(layernorm_graph(with_bias, axis, group, sv, bv), inputs, &r);
    assert_int_equal(r.out[0].nbytes, sizeof(want));
    assert_close(r.out[0].data, want, 24);
    run_free(&r);
    free(sv);
    free(bv);
}

static void test_layernorm(void **state)
{
    float xv[24];
    for (int i = 0; i < 24; i++)
        xv[i] = (float)((i * 7) % 11) - 4.5f;
    layernorm_check(1, -1, 4, xv);
    layernorm_check(0, 2, 4, xv);
    layernorm_check(1, 1, 12, xv);
    layernorm_check(1, -3, 24, xv);
    char err[256];
    void *img;
    size_t len;
    float sv[4] = {1, 1, 1, 1};
    assert_true(tb_compile(layernorm_graph(1, 1, 4, sv, sv), 1, &img, &len, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "normalized shape"));
}

/* Folding leaves Conv/pooling of constants to the backend: the constant is copied into the
 * arena and convolved there. */
static void test_conv_of_constant(void **state)
{
    struct ir_graph *g = tb_graph();
    struct conv_geom q = geom(2, 3, 5, 3, 1, 1, 1, 1);
    int x = tb_act(g, "x", SHAPE(2, 1, 3));
    int k = tb_const(g, "k", SHAPE(4, 1, 2, 5, 6), NULL, 91);
    int w = tb_const(g, "w", SHAPE(4, 3, 2, 3, 3), NULL, 93);
    int c = tb_act(g, "c", SHAPE(4, 1, 3, 5, 6));
    int m = tb_act(g, "m", SHAPE(4, 1, 3, 1, 1));
    int y = tb_act(g, "y", SHAPE(2, 1, 3));
    tb_input(g, x);
    int ci[2] = {k, w}, mi[1] = {c};
    tb_ints(tb_node(g, "Conv", ci, 2, c), "pads", 4, 1, 1, 1, 1);
    tb_node(g, "GlobalMaxPool", mi, 1, m);
    int fi[1] = {m}, f = tb_act(g, "f", SHAPE(2, 1, 3)), ai[2] = {x, f};
    tb_node(g, "Flatten", fi, 1, f);
    tb_node(g, "Add", ai, 2, y);
    tb_output(g, y);
    float conv[90], want[3], xv[3] = {1, 2, 3};
    ref_conv(&q, g->tensors[k].data, g->tensors[w].data, NULL, conv);
    for (int o = 0; o < 3; o++) {
        want[o] = -INFINITY;
        for (int i = 0; i < 30; i++)
            want[o] = fmaxf(want[o], conv[o * 30 + i]);
        want[o] += xv[o];
    }
    struct run r;
    const float *inputs[] = {xv};
    run_graph(g, inputs, &r);
    assert_close(r.out[0].data, want, 3);
    run_free(&r);
}

/* A graph output that folding turned into a constant (e.g. a Shape) is still an output. */
static void test_constant_output(void **state)
{
    struct ir_graph *g = tb_graph();
    int x = tb_act(g, "x", SHAPE(2, 1, 3));
    int y = tb_act(g, "y", SHAPE(2, 1, 3));
    int64_t dims[2] = {1, 3};
    struct engine_shape two = SHAPE(1, 2);
    int c = ir_add_const(g, "shape", "", ENGINE_I64, &two, memcpy(malloc(16), dims, 16));
    tb_input(g, x);
    int ins[1] = {x};
    tb_node(g, "Relu", ins, 1, y);
    tb_output(g, y);
    tb_output(g, c);
    float xv[3] = {-1.0f, 0.5f, 2.0f}, want[3] = {0.0f, 0.5f, 2.0f};
    struct run r;
    const float *inputs[] = {xv};
    run_graph(g, inputs, &r);
    assert_close(r.out[0].data, want, 3);
    assert_string_equal(r.out[1].name, "shape");
    assert_int_equal(r.out[1].dtype, ENGINE_I64);
    assert_memory_equal(r.out[1].data, dims, sizeof(dims));
    run_free(&r);
}

/* dtype and shape helpers of engine.h. */
static void test_dtype_shape(void **state)
{
    char buf[64];
    assert_int_equal(engine_dtype_size(ENGINE_F32), 4);
    assert_int_equal(engine_dtype_size(ENGINE_I64), 8);
    assert_int_equal(engine_dtype_size(ENGINE_BOOL), 1);
    assert_int_equal(engine_dtype_size(42), 0);
    assert_string_equal(engine_dtype_name(ENGINE_I32), "int32");
    assert_string_equal(engine_dtype_name(42), "?");
    assert_int_equal(engine_dtype_parse("uint8"), ENGINE_U8);
    assert_int_equal(engine_dtype_parse("float"), ENGINE_F32);
    assert_int_equal(engine_dtype_parse("complex64"), -1);
    assert_int_equal(engine_dtype_parse(NULL), -1);
    struct engine_shape s = SHAPE(4, 1, 3, 224, 224), bad = SHAPE(2, 2, -1);
    assert_int_equal(engine_shape_numel(&s), 150528);
    assert_int_equal(engine_shape_numel(&bad), -1);
    struct engine_shape huge = SHAPE(3, INT64_MAX / 2, 4, 1);
    assert_int_equal(engine_shape_numel(&huge), -1);
    struct engine_shape empty = SHAPE(3, INT64_MAX / 2, 4, 0), empty_bad = SHAPE(2, 0, -1);
    assert_int_equal(engine_shape_numel(&empty), 0); /* no elements, whatever the other dims */
    assert_int_equal(engine_shape_numel(&empty_bad), -1);
    struct engine_shape scalar = {.rank = 0};
    assert_int_equal(engine_shape_numel(&scalar), 1);
    assert_string_equal(engine_shape_str(&s, buf, sizeof(buf)), "[1,3,224,224]");
    assert_string_equal(engine_shape_str(&scalar, buf, sizeof(buf)), "[]");
    assert_string_equal(engine_shape_str(&s, buf, 6), "[1,3,");
}

/* A BatchNormalization that was not folded into a convolution runs on its own; here after a
 * convolution, so it sees a blocked layout too. */
static void test_batchnorm(void **state)
{
    struct ir_graph *g = tb_graph();
    int x = tb_act(g, "x", SHAPE(4, 1, 8, 3, 3));
    int w = tb_const(g, "w", SHAPE(4, 8, 8, 1, 1), NULL, 81);
    int c = tb_act(g, "c", SHAPE(4, 1, 8, 3, 3));
    int sc = tb_const(g, "scale", SHAPE(1, 8), NULL, 83);
    int bb = tb_const(g, "bias", SHAPE(1, 8), NULL, 85);
    int mu = tb_const(g, "mean", SHAPE(1, 8), NULL, 87);
    float var[8] = {0.5f, 1, 2, 3, 0.25f, 1.5f, 4, 0.1f};
    int va = tb_const(g, "var", SHAPE(1, 8), var, 0);
    int y = tb_act(g, "y", SHAPE(4, 1, 8, 3, 3));
    tb_input(g, x);
    int ci[2] = {x, w}, bi[5] = {c, sc, bb, mu, va};
    tb_node(g, "Conv", ci, 2, c);
    ir_attr_set_float(tb_node(g, "BatchNormalization", bi, 5, y), "epsilon", 1e-3f);
    tb_output(g, y);
    float *xv = tb_fill(72, 89), want[72];
    const float *wv = g->tensors[w].data, *s = g->tensors[sc].data, *b = g->tensors[bb].data;
    const float *m = g->tensors[mu].data;
    struct conv_geom q = geom(8, 8, 3, 1, 1, 0, 1, 1);
    q.w = q.ow = 3;
    ref_conv(&q, xv, wv, NULL, want);
    for (int i = 0; i < 72; i++) {
        int ch = i / 9;
        want[i] = (float)((want[i] - m[ch]) / sqrt(var[ch] + 1e-3) * s[ch] + b[ch]);
    }
    struct run r;
    const float *inputs[] = {xv};
    run_graph(g, inputs, &r);
    assert_close(r.out[0].data, want, 72);
    run_free(&r);
    free(xv);
}

/* An op the backend cannot lower fails compile naming the model, node and op. */
static void test_unsupported_op(void **state)
{
    struct ir_graph *g = tb_graph();
    int x = tb_act(g, "x", SHAPE(2, 2, 3));
    int y = tb_act(g, "y", SHAPE(2, 2, 3));
    tb_input(g, x);
    int ins[1] = {x};
    tb_node(g, "Frobnicate", ins, 1, y);
    tb_output(g, y);
    char err[256];
    void *img;
    size_t len;
    assert_true(tb_compile(g, 1, &img, &len, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "test"));
    assert_non_null(strstr(err, "Frobnicate_0"));
    assert_non_null(strstr(err, "Frobnicate"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_plain),
        cmocka_unit_test(test_conv_dilated_strided),
        cmocka_unit_test(test_conv_grouped_depthwise),
        cmocka_unit_test(test_conv_residual_sum),
        cmocka_unit_test(test_conv_runtime_weights),
        cmocka_unit_test(test_conv_winograd),
        cmocka_unit_test(test_pool),
        cmocka_unit_test(test_global_pool),
        cmocka_unit_test(test_gemm),
        cmocka_unit_test(test_gemm_general),
        cmocka_unit_test(test_concat),
        cmocka_unit_test(test_binary_broadcast),
        cmocka_unit_test(test_prelu),
        cmocka_unit_test(test_resize_onednn),
        cmocka_unit_test(test_reduce_mean_pool),
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_activations),
        cmocka_unit_test(test_memory_plan),
        cmocka_unit_test(test_memory_plan_zoo),
        cmocka_unit_test(test_kernels),
        cmocka_unit_test(test_binary_and_reduce_kernels),
        cmocka_unit_test(test_pad_and_cast),
        cmocka_unit_test(test_where),
        cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_conv_of_constant),
        cmocka_unit_test(test_constant_output),
        cmocka_unit_test(test_batchnorm),
        cmocka_unit_test(test_dtype_shape),
        cmocka_unit_test(test_unsupported_op),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
