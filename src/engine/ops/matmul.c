/*
 * ops/matmul.c — matrix products: Gemm and MatMul (oneDNN inner product or matmul), the integer and
 * quantised matmuls, Einsum, Det (kernels_math.c).
 *
 * Ops (shape rule, constant evaluation, lowering):
 *   Gemm           infer_gemm, lower_gemm
 *   MatMul         infer_matmul, lower_matmul
 *   MatMulInteger  infer_qmatmul, lower_qmatmul
 *   QLinearMatMul  infer_qmatmul, lower_qmatmul
 *   Einsum         infer_einsum, lower_einsum
 *   Det            infer_det, lower_det
 */
#include "engine/ops/op.h"

/* ---- Gemm ---- */

int infer_gemm(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 2, 3, err, errlen);
    for (int i = 0; i < 3 && rc == 0; i++)
        rc = want_dtype(g, n, i, ENGINE_F32, err, errlen);
    if (rc)
        return rc;
    struct ir_tensor *a = in_t(g, n, 0), *b = in_t(g, n, 1), *c = in_t(g, n, 2);
    int64_t ta = ir_attr_int(n, "transA", 0), tb = ir_attr_int(n, "transB", 0);
    char s1[128], s2[128];
    if (a->shape.rank != 2 || b->shape.rank != 2)
        return ir_node_err(g, n, err, errlen, -EINVAL, "A %s and B %s must be 2-D",
                           shape_s(&a->shape, s1), shape_s(&b->shape, s2));
    int64_t m = a->shape.dims[ta ? 1 : 0], k = a->shape.dims[ta ? 0 : 1];
    int64_t kb = b->shape.dims[tb ? 1 : 0], nn = b->shape.dims[tb ? 0 : 1];
    if (k != kb)
        return ir_node_err(g, n, err, errlen, -EINVAL, "A %s and B %s disagree on K",
                           shape_s(&a->shape, s1), shape_s(&b->shape, s2));
    struct engine_shape o = {.rank = 2, .dims = {m, nn}}, t;
    if (c && (k_broadcast_shape(&c->shape, &o, &t) || t.dims[0] != m || t.dims[1] != nn))
        return ir_node_err(g, n, err, errlen, -EINVAL, "C %s does not broadcast to [%lld,%lld]",
                           shape_s(&c->shape, s1), (long long)m, (long long)nn);
    if ((rc = ir_attr_set_int(n, "transA", ta)) || (rc = ir_attr_set_int(n, "transB", tb)) ||
        (rc = ir_attr_set_float(n, "alpha", ir_attr_float(n, "alpha", 1.0f))) ||
        (rc = ir_attr_set_float(n, "beta", ir_attr_float(n, "beta", 1.0f))))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, ENGINE_F32, &o, err, errlen);
}

/* out[N,K] = in[K,N] transposed, scaled. */
static float *transpose_scaled(const float *in, int64_t k, int64_t nn, float scale)
{
    float *out = malloc((size_t)(k * nn) * sizeof(float) + 1);
    if (!out)
        return NULL;
    for (int64_t i = 0; i < k; i++)
        for (int64_t j = 0; j < nn; j++)
            out[j * k + i] = in[i * nn + j] * scale;
    return out;
}

/* Inner product with weights w ([N,K], or [K,N] when transposed) and an optional bias. */
static int lower_inner(struct lower *l, const struct ir_node *n, int transposed, float alpha,
                       const struct ir_tensor *bias, float beta)
{
    const struct ir_tensor *x = ir_in(l, n, 0), *w = ir_in(l, n, 1);
    int64_t nn = transposed ? w->shape.dims[1] : w->shape.dims[0];
    int64_t k = transposed ? w->shape.dims[0] : w->shape.dims[1];
    struct plan_node pn = node_init(l, n, PLAN_OP_INNER);
    pn.collapse = (uint32_t)x->shape.rank - 1;
    /* [N,K] weights with alpha 1 are packed straight from the graph; others get a scaled copy */
    int as_is = !transposed && alpha == 1.0f;
    float *wbuf = as_is        ? w->data
                  : transposed ? transpose_scaled(w->data, k, nn, alpha)
                               : transpose_scaled(w->data, 1, nn * k, alpha);
    float *bbuf = malloc((size_t)nn * sizeof(float) + 1);
    int64_t dims[2] = {nn, k}, ts[3];
    int rc = wbuf && bbuf ? 0 : lerr(l, n, -ENOMEM, "out of memory");
    int64_t bn = bias ? engine_shape_numel(&bias->shape) : 0;
    if (!rc && bias && bn != nn && bn != 1)
        rc = lerr(l, n, -EINVAL, "bias C must hold one value per output feature");
    for (int64_t i = 0; !rc && bias && i < nn; i++)
        bbuf[i] = beta * ((const float *)bias->data)[bn == 1 ? 0 : i];
    if (!rc) {
        ts[0] = plain_act_operand(l, n, n->in[0]);
        ts[1] = packed_tensor(l, w, 2, dims);
        struct ir_tensor bt = {.name = bias ? bias->name : NULL,
                               .dtype = ENGINE_F32,
                               .shape = {1, {nn}},
                               .shape_known = 1,
                               .data = bbuf};
        ts[2] = bias ? add_plan_tensor(l, &bt, PLAN_ST_CONST) : 0;
        int64_t out = output_of(l, n, 0);
        rc = ts[0] < 0 || ts[1] < 0 || ts[2] < 0 || out < 0 ? -EINVAL : 0;
        pn.out = (uint32_t)out;
        if (!rc)
            rc = set_inputs(l, &pn, ts, bias ? 3 : 2);
        if (!rc)
            rc = lower_posts(l, n, &pn);
        if (!rc)
            rc = emit(l, n, &pn, ts[1], wbuf);
    }
    if (!as_is)
        free(wbuf);
    free(bbuf);
    return rc;
}

/* A plain arena copy of plan tensor `from` multiplied by `scale` (an eltwise linear node). */
static int64_t scaled_copy(struct lower *l, const struct ir_node *n, int64_t from, float scale)
{
    if (from < 0)
        return from;
    struct plan_tensor t = l->b.tensors[from];
    t.storage = PLAN_ST_ARENA;
    t.offset = 0;
    int64_t to = plan_add_tensor(&l->b, &t);
    if (to < 0)
        return lerr(l, n, (int)to, "cannot add a scaled copy");
    struct plan_node pn = node_init(l, n, PLAN_OP_ELTWISE);
    pn.alg = (uint32_t)dnnl_eltwise_linear;
    pn.alpha = scale;
    pn.beta = 0.0f;
    pn.out = (uint32_t)to;
    if (set_inputs(l, &pn, &from, 1) || emit(l, n, &pn, -1, NULL) < 0)
        return lerr(l, n, -EINVAL, "cannot scale an operand");
    return to;
}

/* Gemm in general: a matmul reading A/B transposed in place, alpha as a post-op and beta*C/alpha
 * as its broadcast bias. */
static int lower_gemm_matmul(struct lower *l, const struct ir_node *n, float alpha, float beta)
{
    const struct ir_tensor *c = ir_in(l, n, 2);
    struct plan_node pn = node_init(l, n, PLAN_OP_MATMUL);
    pn.groups = (ir_attr_int(n, "transA", 0) ? 1 : 0) | (ir_attr_int(n, "transB", 0) ? 2 : 0);
    int64_t ts[3] = {plain_operand(l, n, n->in[0]), plain_operand(l, n, n->in[1]), 0};
    if (c && c->data && c->dtype == ENGINE_F32 && alpha != 0.0f) {
        struct ir_tensor sc = *c;
        int64_t k = engine_shape_numel(&c->shape);
        sc.data = malloc((size_t)k * sizeof(float) + 1);
        for (int64_t i = 0; sc.data && i < k; i++)
            ((float *)sc.data)[i] = ((const float *)c->data)[i] * beta / alpha;
        ts[2] = sc.data ? add_plan_tensor(l, &sc, PLAN_ST_CONST) : -ENOMEM;
        free(sc.data);
    } else if (c && beta == alpha) {
        ts[2] = plain_operand(l, n, n->in[2]);
    } else if (c && beta != 0.0f && alpha != 0.0f) {
        ts[2] = scaled_copy(l, n, plain_operand(l, n, n->in[2]), beta / alpha);
    } else if (c && beta != 0.0f) {
        return lerr(l, n, -EINVAL, "C computed at run time needs alpha != 0");
    }
    struct step scale = {dnnl_eltwise_linear, alpha, 0.0f};
    if (alpha != 1.0f)
        push_post(&pn, PLAN_POST_ELTWISE, &scale);
    int64_t out = output_of(l, n, 0);
    if (ts[0] < 0 || ts[1] < 0 || ts[2] < 0 || out < 0)
        return lerr(l, n, -EINVAL, "bad operands");
    pn.out = (uint32_t)out;
    int rc = set_inputs(l, &pn, ts, c && ts[2] ? 3 : 2);
    if (!rc)
        rc = lower_posts(l, n, &pn);
    return rc ? rc : emit(l, n, &pn, -1, NULL);
}

int lower_gemm(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *a = ir_in(l, n, 0), *w = ir_in(l, n, 1), *c = ir_in(l, n, 2);
    if (!a || !w || a->shape.rank != 2 || w->shape.rank != 2 || a->dtype != ENGINE_F32 ||
        w->dtype != ENGINE_F32 || (c && c->dtype != ENGINE_F32))
        return lerr(l, n, -EINVAL, "Gemm needs 2-D float32 A and B");
    float alpha = ir_attr_float(n, "alpha", 1.0f), beta = ir_attr_float(n, "beta", 1.0f);
    /* the common case (a Linear layer): pre-packed inner product */
    if (!ir_attr_int(n, "transA", 0) && w->data && (!c || c->data) &&
        (!c || c->shape.rank < 2 || c->shape.dims[0] == 1))
        return lower_inner(l, n, !ir_attr_int(n, "transB", 0), alpha, c, beta);
    return lower_gemm_matmul(l, n, alpha, beta);
}

/* ---- MatMul ---- */

int infer_matmul(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 2, 2, err, errlen);
    if (rc || (rc = want_dtype(g, n, 0, ENGINE_F32, err, errlen)) ||
        (rc = want_dtype(g, n, 1, ENGINE_F32, err, errlen)))
        return rc;
    struct engine_shape a = in_t(g, n, 0)->shape, b = in_t(g, n, 1)->shape, ab, bb, o;
    char s1[128], s2[128];
    if (a.rank < 1 || b.rank < 1)
        return ir_node_err(g, n, err, errlen, -EINVAL, "inputs must have rank >= 1");
    int a1 = a.rank == 1, b1 = b.rank == 1;
    if (a1)
        a = (struct engine_shape){.rank = 2, .dims = {1, a.dims[0]}};
    if (b1)
        b = (struct engine_shape){.rank = 2, .dims = {b.dims[0], 1}};
    if (a.dims[a.rank - 1] != b.dims[b.rank - 2])
        return ir_node_err(g, n, err, errlen, -EINVAL, "shapes %s and %s disagree on K",
                           shape_s(&in_t(g, n, 0)->shape, s1), shape_s(&in_t(g, n, 1)->shape, s2));
    ab = a, bb = b;
    ab.rank -= 2, bb.rank -= 2;
    if (k_broadcast_shape(&ab, &bb, &o) || o.rank + 2 > ENGINE_MAX_RANK)
        return ir_node_err(g, n, err, errlen, -EINVAL, "batch dims do not broadcast");
    if (!a1)
        o.dims[o.rank++] = a.dims[a.rank - 2];
    if (!b1)
        o.dims[o.rank++] = b.dims[b.rank - 1];
    return set_out(g, n, 0, ENGINE_F32, &o, err, errlen);
}

static int lower_plain_matmul(struct lower *l, const struct ir_node *n)
{
    struct plan_node pn = node_init(l, n, PLAN_OP_MATMUL);
    int64_t ts[2] = {plain_operand(l, n, n->in[0]), plain_operand(l, n, n->in[1])};
    int64_t out = output_of(l, n, 0);
    if (ts[0] < 0 || ts[1] < 0 || out < 0)
        return -EINVAL;
    return emit_with_posts(l, n, &pn, out, ts, 2);
}

int lower_matmul(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *a = ir_in(l, n, 0), *w = ir_in(l, n, 1);
    if (!a || !w)
        return lerr(l, n, -EINVAL, "missing input");
    if (w->data && w->dtype == ENGINE_F32 && w->shape.rank == 2 && a->shape.rank >= 2)
        return lower_inner(l, n, 1, 1.0f, NULL, 0.0f);
    return lower_plain_matmul(l, n);
}

/* ---- MatMulInteger, QLinearMatMul ---- */

/* a [batch..., m, k] x b [k, n] or [batch..., k, n]: the output shape, or -EINVAL. */
static int qmatmul_shape(const struct ir_tensor *a, const struct ir_tensor *b,
                         struct engine_shape *o)
{
    int r = a->shape.rank;
    if (r < 2 || (b->shape.rank != 2 && b->shape.rank != r) ||
        b->shape.dims[b->shape.rank - 2] != a->shape.dims[r - 1] ||
        (b->shape.rank == r &&
         memcmp(a->shape.dims, b->shape.dims, (size_t)(r - 2) * sizeof(int64_t))))
        return -EINVAL;
    *o = a->shape;
    o->dims[r - 1] = b->shape.dims[b->shape.rank - 1];
    return 0;
}

/* MatMulInteger (A, B, [a_zero_point], [b_zero_point]) and QLinearMatMul (8 inputs). */
int infer_qmatmul(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int ql = strcmp(n->op, "QLinearMatMul") == 0;
    int rc = arity(g, n, ql ? 8 : 2, ql ? 8 : 4, err, errlen);
    if (rc)
        return rc;
    struct ir_tensor *a = in_t(g, n, 0), *b = in_t(g, n, ql ? 3 : 1);
    struct engine_shape o;
    if (!is_q8(a->dtype) || !is_q8(b->dtype) || qmatmul_shape(a, b, &o))
        return ir_node_err(g, n, err, errlen, -ENOTSUP,
                           "needs uint8/int8 A [..., M, K] and B [K, N] or [..., K, N]");
    int64_t m = a->shape.dims[a->shape.rank - 2], nn = o.dims[o.rank - 1];
    for (int i = 2; i < n->n_in; i++) {
        struct ir_tensor *t = ql && i == 3 ? NULL : in_t(g, n, i); /* 3 is B itself */
        int64_t k = t ? engine_shape_numel(&t->shape) : 1;
        int want = ql       ? (i == 4 || i == 6 ? ENGINE_F32
                               : i == 5         ? b->dtype
                               : i == 7         ? -1
                                                : a->dtype)
                   : i == 2 ? a->dtype
                            : b->dtype;
        int64_t per = ql ? 1 : i == 2 ? m : nn;
        if (t && ((want >= 0 && t->dtype != want) || (want < 0 && !is_q8(t->dtype)) ||
                  t->shape.rank > 1 || (k != 1 && k != per)))
            return ir_node_err(g, n, err, errlen, -ENOTSUP,
                               "scales and zero points must be per tensor (or per row/column)");
    }
    if (ql &&
        (in_t(g, n, 1)->dtype != ENGINE_F32 || engine_shape_numel(&in_t(g, n, 1)->shape) != 1))
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "a_scale must be one float32");
    return set_out(g, n, 0, ql ? in_t(g, n, 7)->dtype : ENGINE_I32, &o, err, errlen);
}

/* MatMulInteger: A, B and the zero points present; QLinearMatMul: its eight inputs. */
int lower_qmatmul(struct lower *l, const struct ir_node *n)
{
    int64_t ins[8], params[3] = {strcmp(n->op, "QLinearMatMul") == 0, 0, 0};
    uint32_t cnt = 0;
    for (int i = 0; i < n->n_in && i < 8; i++) {
        if (n->in[i] < 0)
            continue;
        if ((ins[cnt++] = plain_operand(l, n, n->in[i])) < 0)
            return (int)ins[cnt - 1];
        if (!params[0] && i >= 2)
            params[i - 1] = 1;
    }
    return emit_math(l, n, 0, PLAN_K_QMATMUL, ins, cnt, params, 3, 0, 0, 0);
}

/* ---- Einsum ---- */

/* Einsum: the equation becomes the normalised attribute einsum_spec (kernels.h). */
int infer_einsum(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, K_EINSUM_MAX_IN, err, errlen), ranks[K_EINSUM_MAX_IN];
    if (rc)
        return rc;
    struct engine_shape shapes[K_EINSUM_MAX_IN], o;
    for (int i = 0; i < n->n_in; i++) {
        struct ir_tensor *t = in_t(g, n, i);
        if (!t || t->dtype != in_t(g, n, 0)->dtype || !k_einsum_dtype_ok(t->dtype))
            return ir_node_err(g, n, err, errlen, -ENOTSUP,
                               "inputs must share one type of float32, float64, int32, int64");
        ranks[i] = t->shape.rank;
        shapes[i] = t->shape;
    }
    int32_t spec[2 + ENGINE_MAX_RANK + K_EINSUM_MAX_IN * (1 + ENGINE_MAX_RANK)];
    int64_t wide[sizeof(spec) / sizeof(spec[0])];
    const char *eq = ir_attr_str(n, "equation", "");
    int len = k_einsum_parse(eq, n->n_in, ranks, spec, (int)(sizeof(spec) / sizeof(spec[0])));
    if (len < 0 || k_einsum_check(spec, len, shapes, n->n_in, &o))
        return ir_node_err(g, n, err, errlen, -ENOTSUP,
                           "equation '%s' is unsupported for these shapes (labels must agree in "
                           "size, one ellipsis length)",
                           eq);
    for (int i = 0; i < len; i++)
        wide[i] = spec[i];
    if (ir_attr_set_ints(n, "einsum_spec", wide, (size_t)len))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, in_t(g, n, 0)->dtype, &o, err, errlen);
}

int lower_einsum(struct lower *l, const struct ir_node *n)
{
    const struct ir_attr *a = ir_attr_get(n, "einsum_spec");
    int64_t ins[K_EINSUM_MAX_IN];
    if (!a || a->type != IR_ATTR_INTS)
        return lerr(l, n, -EINVAL, "the equation was not resolved by shape inference");
    int cnt = math_operands(l, n, K_EINSUM_MAX_IN, ins);
    if (cnt >= 0 && cnt != n->n_in)
        return lerr(l, n, -EINVAL, "an input is missing");
    return cnt < 0 ? cnt
                   : emit_math(l, n, 0, PLAN_K_EINSUM, ins, (uint32_t)cnt, a->ints, (uint32_t)a->n,
                               0, 0, 0);
}

/* ---- Det ---- */

int infer_det(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 1, err, errlen);
    if (rc || (rc = want_dtype(g, n, 0, ENGINE_F32, err, errlen)))
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    int r = x->shape.rank;
    if (r < 2 || x->shape.dims[r - 1] != x->shape.dims[r - 2] || x->shape.dims[r - 1] > K_DET_MAX)
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "needs square matrices of at most %d rows",
                           K_DET_MAX);
    struct engine_shape o = x->shape;
    o.rank -= 2;
    return set_out(g, n, 0, ENGINE_F32, &o, err, errlen);
}

int lower_det(struct lower *l, const struct ir_node *n)
{
    int64_t ins[1];
    int rc = math_operands(l, n, 1, ins);
    return rc < 0 ? rc : emit_math(l, n, 0, PLAN_K_DET, ins, 1, NULL, 0, 0, 0, 0);
}
