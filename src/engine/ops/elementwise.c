/*
 * ops/elementwise.c — element-wise ops: oneDNN eltwise activations (fused into the producer as
 * post-ops by optimize.c), unary math, broadcasting binary/arithmetic/logic/comparison ops,
 * variadic Sum/Mean/Max/Min, Clip, Where, Cast. Plain-C kernels: kernels.c, kernels_math.c.
 *
 * Ops (shape rule, constant evaluation, lowering):
 *   Neg              infer_unary_math, eval_unary_math, lower_unary_math
 *   Reciprocal       infer_unary_math, eval_unary_math, lower_unary_math
 *   Cos              infer_unary_math, eval_unary_math, lower_unary_math
 *   Sin              infer_unary_math, eval_unary_math, lower_unary_math
 *   Tan              infer_unary_math, eval_unary_math, lower_unary_math
 *   Sinh             infer_unary_math, eval_unary_math, lower_unary_math
 *   Cosh             infer_unary_math, eval_unary_math, lower_unary_math
 *   Asin             infer_unary_math, eval_unary_math, lower_unary_math
 *   Acos             infer_unary_math, eval_unary_math, lower_unary_math
 *   Atan             infer_unary_math, eval_unary_math, lower_unary_math
 *   Asinh            infer_unary_math, eval_unary_math, lower_unary_math
 *   Acosh            infer_unary_math, eval_unary_math, lower_unary_math
 *   Atanh            infer_unary_math, eval_unary_math, lower_unary_math
 *   Ceil             infer_unary_math, eval_unary_math, lower_unary_math
 *   Floor            infer_unary_math, eval_unary_math, lower_unary_math
 *   Round            infer_unary_math, eval_unary_math, lower_unary_math
 *   Sign             infer_unary_math, eval_unary_math, lower_unary_math
 *   Erf              infer_unary_math, eval_unary_math, lower_unary_math
 *   Log              infer_unary_math, eval_unary_math, lower_unary_math
 *   IsInf            infer_unary_math, eval_unary_math, lower_unary_math
 *   IsNaN            infer_unary_math, eval_unary_math, lower_unary_math
 *   ThresholdedRelu  infer_unary_math, eval_unary_math, lower_unary_math
 *   Shrink           infer_unary_math, eval_unary_math, lower_unary_math
 *   Celu             infer_unary_math, eval_unary_math, lower_unary_math
 *   Softsign         infer_unary_math, eval_unary_math, lower_unary_math
 *   Softplus         infer_unary_math, eval_unary_math, lower_unary_math
 *   Not              infer_unary_math, eval_unary_math, lower_unary_math
 *   Selu             infer_unary_math, eval_unary_math, lower_unary_math
 *   And              infer_logic, eval_logic, lower_logic
 *   Or               infer_logic, eval_logic, lower_logic
 *   Xor              infer_logic, eval_logic, lower_logic
 *   Mod              infer_logic, eval_logic, lower_logic
 *   LessOrEqual      infer_logic, eval_logic, lower_logic
 *   GreaterOrEqual   infer_logic, eval_logic, lower_logic
 *   PRelu            infer_logic, eval_logic, lower_logic
 *   BitShift         infer_logic, eval_logic, lower_logic
 *   Sum              infer_variadic, eval_variadic, lower_variadic
 *   Mean             infer_variadic, eval_variadic, lower_variadic
 *   Max              infer_variadic, eval_variadic, lower_variadic
 *   Min              infer_variadic, eval_variadic, lower_variadic
 *   Abs              infer_act, eval_act, lower_eltwise
 *   Add              infer_arith, eval_arith, lower_arith
 *   Sub              infer_arith, eval_arith, lower_arith
 *   Mul              infer_arith, eval_arith, lower_arith
 *   Div              infer_arith, eval_arith, lower_arith
 *   Pow              infer_arith, eval_arith, lower_arith
 *   Equal            infer_binary, eval_binary, lower_binary
 *   Greater          infer_binary, eval_binary, lower_binary
 *   Less             infer_binary, eval_binary, lower_binary
 *   Elu              infer_act, eval_act, lower_eltwise
 *   Exp              infer_act, eval_act, lower_eltwise
 *   HardSigmoid      infer_act, eval_act, lower_eltwise
 *   HardSwish        infer_act, eval_act, lower_eltwise
 *   LeakyRelu        infer_act, eval_act, lower_eltwise
 *   Relu             infer_act, eval_act, lower_eltwise
 *   Sigmoid          infer_act, eval_act, lower_eltwise
 *   Sqrt             infer_act, eval_act, lower_eltwise
 *   Tanh             infer_act, eval_act, lower_eltwise
 *   Clip             infer_clip, eval_clip, lower_clip
 *   Where            infer_where, eval_where, lower_where
 *   Cast             infer_cast, eval_cast, lower_cast
 *   CastLike         infer_castlike, eval_cast, lower_cast
 */
#include "engine/ops/op.h"

/* ---- Neg, Reciprocal, Cos, Sin, Tan, Sinh, Cosh, Asin, Acos, Atan, Asinh, Acosh, Atanh, Ceil,
 * Floor, Round, Sign, Erf, Log, IsInf, IsNaN, ThresholdedRelu, Shrink, Celu, Softsign, Softplus,
 * Not, Selu ---- */

int infer_unary_math(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 1, err, errlen);
    if (rc)
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    int out = k_unary_dtype((enum k_unop)k_unop_find(n->op), x->dtype);
    if (!out)
        return unsupported_type(g, n, x, err, errlen);
    return set_out(g, n, 0, out, &x->shape, err, errlen);
}

int eval_unary_math(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *x = in_t(g, n, 0);
    float alpha, beta;
    k_unary_attrs(n, &alpha, &beta);
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    k_unary((enum k_unop)k_unop_find(n->op), x->dtype, alpha, beta, x->data, d,
            (size_t)engine_shape_numel(&x->shape));
    return set_data(g, n, 0, d);
}

int lower_unary_math(struct lower *l, const struct ir_node *n)
{
    int64_t op = k_unop_find(n->op), ins[1], p[1];
    float alpha, beta;
    k_unary_attrs(n, &alpha, &beta);
    int rc = math_operands(l, n, 1, ins);
    return rc < 0 ? rc
                  : emit_math(l, n, 0, PLAN_K_UNARY, ins, 1, p,
                              kp_encode_op(&(struct kp_op){(int)op}, p), 0, alpha, beta);
}

/* ---- And, Or, Xor, Mod, LessOrEqual, GreaterOrEqual, PRelu, BitShift ---- */

/* And, Or, Xor, Mod, LessOrEqual, GreaterOrEqual, PRelu (slope broadcast to X only). */
int infer_logic(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 2, 2, err, errlen);
    if (rc)
        return rc;
    struct ir_tensor *a = in_t(g, n, 0), *b = in_t(g, n, 1);
    int op = k_logop_of(n);
    if (op < 0)
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "unsupported attribute direction=%s",
                           ir_attr_str(n, "direction", ""));
    int out = a->dtype == b->dtype ? k_logic_dtype((enum k_logop)op, a->dtype) : 0;
    if (!out)
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "input types %s and %s are unsupported",
                           engine_dtype_name(a->dtype), engine_dtype_name(b->dtype));
    struct engine_shape o;
    char s1[128], s2[128];
    if (k_broadcast_shape(&a->shape, &b->shape, &o) ||
        (op == K_PRELU && (o.rank != a->shape.rank ||
                           memcmp(o.dims, a->shape.dims, (size_t)o.rank * sizeof(int64_t)))))
        return ir_node_err(g, n, err, errlen, -EINVAL, "shapes %s and %s do not broadcast",
                           shape_s(&a->shape, s1), shape_s(&b->shape, s2));
    return set_out(g, n, 0, out, &o, err, errlen);
}

int eval_logic(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *a = in_t(g, n, 0), *b = in_t(g, n, 1), *o = &g->tensors[n->out[0]];
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    int rc = k_logic((enum k_logop)k_logop_of(n), a->dtype, a->data, &a->shape, b->data, &b->shape,
                     d, &o->shape);
    if (rc) {
        free(d);
        return ir_node_err(g, n, err, errlen, rc, "integer modulo by zero in constants");
    }
    return set_data(g, n, 0, d);
}

/* PRelu of float32 x with a constant slope on oneDNN's prelu primitive, x in the layout it has
 * (a convolution's blocked one: no reorders around it), the slope packed into the image in the
 * layout oneDNN picks for it. 0 when emitted, 1 when oneDNN has only a reference kernel for it
 * (the caller runs the C kernel), or -errno. */
static int lower_prelu(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *x = ir_in(l, n, 0), *s = ir_in(l, n, 1);
    if (!x || !s || !s->data || x->dtype != ENGINE_F32 || s->dtype != ENGINE_F32 || n->n_post ||
        s->shape.rank > x->shape.rank || x->shape.rank < 1)
        return 1;
    int64_t dims[ENGINE_MAX_RANK];
    int lead = x->shape.rank - s->shape.rank; /* numpy broadcasting: the slope right-aligned */
    for (int i = 0; i < x->shape.rank; i++)
        dims[i] = i < lead ? 1 : s->shape.dims[i - lead];
    int64_t ts[2] = {operand_of(l, n, n->in[0]), 0};
    if (ts[0] < 0 || l->b.tensors[ts[0]].storage != PLAN_ST_ARENA)
        return 1;
    uint32_t layout = layout_of(l, ts[0]);
    if (engine_shape_numel(&s->shape) == 1) { /* one slope: a LeakyRelu (oneDNN's prelu has
                                                 only a reference kernel for it) */
        struct plan_node pn = node_init(l, n, PLAN_OP_ELTWISE);
        pn.alg = dnnl_eltwise_relu;
        pn.alpha = *(const float *)s->data;
        int64_t out = output_of(l, n, 0);
        if (out < 0 || set_layout(l, out, layout))
            return -EINVAL;
        return emit_with_posts(l, n, &pn, out, ts, 1);
    }
    struct plan_builder *b = &l->b;
    uint32_t nt = b->n_tensors, ni = b->n_index;
    struct plan_node pn = node_init(l, n, PLAN_OP_PRELU);
    /* a trial on throw-away tensors first: a reference kernel would be refused at emit */
    struct plan_tensor d = b->tensors[ts[0]];
    int64_t wt = packed_tensor(l, s, x->shape.rank, dims), out = plan_add_tensor(b, &d);
    int ref = 1;
    ts[1] = wt;
    if (wt >= 0 && out >= 0 && set_inputs(l, &pn, ts, 2) == 0) {
        struct plan_view v;
        dnnl_primitive_desc_t pd;
        const char *impl = NULL;
        char scratch[8];
        pn.out = (uint32_t)out;
        plan_builder_view(b, &v);
        if (plan_primitive_desc(&v, &pn, l->eng, &pd, scratch, sizeof(scratch)) == 0) {
            ref =
                dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success ||
                !impl || strncmp(impl, "ref", 3) == 0;
            dnnl_primitive_desc_destroy(pd);
        }
    }
    b->n_tensors = nt;
    b->n_index = ni;
    if (ref)
        return 1;
    ts[1] = packed_tensor(l, s, x->shape.rank, dims);
    out = output_of(l, n, 0);
    if (ts[1] < 0 || out < 0 || set_layout(l, out, layout) || set_inputs(l, &pn, ts, 2))
        return lerr(l, n, -EINVAL, "bad operands");
    pn.out = (uint32_t)out;
    return emit(l, n, &pn, ts[1], s->data);
}

int lower_logic(struct lower *l, const struct ir_node *n)
{
    if (strcmp(n->op, "PRelu") == 0) {
        int rc = lower_prelu(l, n);
        if (rc <= 0)
            return rc;
    }
    int64_t op = k_logop_of(n), ins[2], p[1];
    int rc = math_operands(l, n, 2, ins);
    if (rc >= 0 && rc != 2)
        return lerr(l, n, -EINVAL, "needs two inputs");
    return rc < 0 ? rc
                  : emit_math(l, n, 0, PLAN_K_LOGIC, ins, 2, p,
                              kp_encode_op(&(struct kp_op){(int)op}, p), 0, 0, 0);
}

/* ---- Sum, Mean, Max, Min ---- */

static const struct {
    const char *op;
    enum k_binop k;
} binops[] = {
    {"Add", K_ADD}, {"Sub", K_SUB}, {"Mul", K_MUL},     {"Div", K_DIV},   {"Pow", K_POW},
    {"Max", K_MAX}, {"Min", K_MIN}, {"Equal", K_EQUAL}, {"Less", K_LESS}, {"Greater", K_GREATER},
};

/* The k_binop of a binary op's name, or -1 (every row routed to infer_binary/arith has one). */
static int binop_of(const char *op)
{
    for (size_t i = 0; i < ARRAY_LEN(binops); i++)
        if (strcmp(binops[i].op, op) == 0)
            return (int)binops[i].k;
    return -1;
}

int infer_binary(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 2, 2, err, errlen);
    if (rc)
        return rc;
    struct ir_tensor *a = in_t(g, n, 0), *b = in_t(g, n, 1);
    if (a->dtype != b->dtype)
        return ir_node_err(g, n, err, errlen, -EINVAL, "input types differ (%s vs %s)",
                           engine_dtype_name(a->dtype), engine_dtype_name(b->dtype));
    struct engine_shape o;
    char s1[128], s2[128];
    if (k_broadcast_shape(&a->shape, &b->shape, &o))
        return ir_node_err(g, n, err, errlen, -EINVAL, "shapes %s and %s do not broadcast",
                           shape_s(&a->shape, s1), shape_s(&b->shape, s2));
    int k = binop_of(n->op);
    assert(k >= 0); /* only ops with a k_binop route here (ops.def) */
    int cmp = k == K_EQUAL || k == K_LESS || k == K_GREATER;
    return set_out(g, n, 0, cmp ? ENGINE_BOOL : a->dtype, &o, err, errlen);
}

/* Two-input Max/Min of the dtypes the binary kernels take stay binary ops. */
static int variadic_binary(struct ir_graph *g, const struct ir_node *n)
{
    struct ir_tensor *a = in_t(g, n, 0);
    return n->n_in == 2 && (strcmp(n->op, "Max") == 0 || strcmp(n->op, "Min") == 0) && a &&
           (a->dtype == ENGINE_F32 || a->dtype == ENGINE_I32 || a->dtype == ENGINE_I64);
}

/* Sum, Mean, Max, Min of 1 to 8 inputs (two-input Max/Min stay binary ops). */
int infer_variadic(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    if (variadic_binary(g, n))
        return infer_binary(g, n, err, errlen);
    int rc = arity(g, n, 1, 8, err, errlen);
    if (rc)
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    struct engine_shape o = x->shape;
    for (int i = 0; i < n->n_in; i++) {
        struct ir_tensor *t = in_t(g, n, i);
        if (!t || t->dtype != x->dtype || k_broadcast_shape(&o, &t->shape, &o))
            return ir_node_err(g, n, err, errlen, -EINVAL,
                               "inputs are missing, differ in type or do not broadcast");
    }
    if (!k_variadic_dtype_ok((enum k_varop)k_varop_find(n->op), x->dtype))
        return unsupported_type(g, n, x, err, errlen);
    return set_out(g, n, 0, x->dtype, &o, err, errlen);
}

int eval_binary(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *a = in_t(g, n, 0), *b = in_t(g, n, 1);
    struct ir_tensor *o = &g->tensors[n->out[0]];
    if (a->dtype != ENGINE_F32 && a->dtype != ENGINE_I64 && a->dtype != ENGINE_I32 &&
        a->dtype != ENGINE_F64)
        return 1;
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    int rc =
        k_binary(binop_of(n->op), a->dtype, a->data, &a->shape, b->data, &b->shape, d, &o->shape);
    if (rc) {
        free(d);
        return ir_node_err(g, n, err, errlen, rc, "integer division by zero in constants");
    }
    return set_data(g, n, 0, d);
}

int eval_variadic(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    if (variadic_binary(g, n))
        return eval_binary(g, n, err, errlen);
    const void *srcs[8];
    struct engine_shape shapes[8];
    for (int i = 0; i < n->n_in; i++) {
        srcs[i] = in_t(g, n, i)->data;
        shapes[i] = in_t(g, n, i)->shape;
    }
    struct ir_tensor *o = &g->tensors[n->out[0]];
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    k_variadic((enum k_varop)k_varop_find(n->op), o->dtype, srcs, shapes, n->n_in, d, &o->shape);
    return set_data(g, n, 0, d);
}

static int same_shape(const struct engine_shape *a, const struct engine_shape *b)
{
    return a->rank == b->rank && memcmp(a->dims, b->dims, (size_t)a->rank * sizeof(int64_t)) == 0;
}

static int lower_binary_kernel(struct lower *l, const struct ir_node *n)
{
    int64_t op = binop_of(n->op);
    const struct ir_tensor *a = ir_in(l, n, 0), *b = ir_in(l, n, 1);
    if (op < 0 || !a || !b || a->dtype != b->dtype || n->n_post)
        return lerr(l, n, -EINVAL, "unsupported operand types for a C binary kernel");
    int64_t ins[2] = {plain_operand(l, n, n->in[0]), plain_operand(l, n, n->in[1])};
    if (ins[0] < 0 || ins[1] < 0)
        return -EINVAL;
    return emit_kernel(l, n, PLAN_K_BINARY, ins, 2, &op, 1, 0);
}

int lower_binary(struct lower *l, const struct ir_node *n)
{
    static const struct {
        const char *op;
        dnnl_alg_kind_t alg;
        int commutes;
    } map[] = {{"Add", dnnl_binary_add, 1}, {"Mul", dnnl_binary_mul, 1},
               {"Sub", dnnl_binary_sub, 0}, {"Div", dnnl_binary_div, 0},
               {"Max", dnnl_binary_max, 1}, {"Min", dnnl_binary_min, 1}};
    const struct ir_tensor *a = ir_in(l, n, 0), *b = ir_in(l, n, 1);
    if (!a || !b || n->n_in != 2)
        return lerr(l, n, -EINVAL, "needs exactly two inputs");
    const struct engine_shape *ys = &l->g->tensors[n->out[0]].shape;
    /* oneDNN takes float32 with at most the second operand broadcast; the rest runs in C */
    if (a->dtype != ENGINE_F32 || b->dtype != ENGINE_F32 ||
        (!same_shape(&a->shape, ys) && !same_shape(&b->shape, ys)) || strcmp(n->op, "Pow") == 0 ||
        strcmp(n->op, "Equal") == 0 || strcmp(n->op, "Less") == 0 || strcmp(n->op, "Greater") == 0)
        return lower_binary_kernel(l, n);
    struct plan_node pn = node_init(l, n, PLAN_OP_BINARY);
    size_t i = 0;
    while (i < ARRAY_LEN(map) && strcmp(map[i].op, n->op) != 0)
        i++;
    if (i == ARRAY_LEN(map))
        return lerr(l, n, -EINVAL, "unsupported binary op");
    pn.alg = (uint32_t)map[i].alg;
    int swap = !same_shape(&a->shape, ys);
    if (swap && !same_shape(&b->shape, ys))
        return lerr(l, n, -EINVAL, "broadcasting both operands is not supported");
    /* b - a and b / a, fixed up by a post-op: a - b = -(b - a), a / b = (b / a)^-1. */
    struct step neg = {dnnl_eltwise_linear, -1.0f, 0.0f}, inv = {dnnl_eltwise_pow, 1.0f, -1.0f};
    if (swap && !map[i].commutes)
        push_post(&pn, PLAN_POST_ELTWISE, map[i].alg == dnnl_binary_sub ? &neg : &inv);
    int64_t ts[2] = {operand_of(l, n, n->in[swap ? 1 : 0]), operand_of(l, n, n->in[swap ? 0 : 1])};
    int64_t out = output_of(l, n, 0);
    if (ts[0] < 0 || ts[1] < 0 || out < 0)
        return -EINVAL;
    /* Same-shape operands keep the first one's layout; a broadcast runs plain (oneDNN has only a
     * reference kernel for a blocked src0 with a plain broadcast src1), or channels last with
     * src1 plain (its jit kernel takes that). */
    int same = same_shape(&a->shape, &b->shape);
    uint32_t layout = same || plan_layout_channels_last(layout_of(l, ts[0])) ? layout_of(l, ts[0])
                                                                            : PLAN_LAYOUT_PLAIN;
    ts[0] = in_layout(l, n, ts[0], layout);
    ts[1] = in_layout(l, n, ts[1], same ? layout : PLAN_LAYOUT_PLAIN);
    if (ts[0] < 0 || ts[1] < 0 || set_layout(l, out, layout))
        return -EINVAL;
    return emit_with_posts(l, n, &pn, out, ts, 2);
}

/* Sum, Mean, Max, Min over 1 to 8 inputs; two-input Max/Min stay binary (oneDNN when it can). */
int lower_variadic(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *a = ir_in(l, n, 0);
    if (n->n_in == 2 && (strcmp(n->op, "Max") == 0 || strcmp(n->op, "Min") == 0) && a &&
        (a->dtype == ENGINE_F32 || a->dtype == ENGINE_I32 || a->dtype == ENGINE_I64))
        return lower_binary(l, n);
    int64_t op = k_varop_find(n->op), ins[8], p[1];
    if (n->n_in < 1 || n->n_in > 8)
        return lerr(l, n, -EINVAL, "takes 1 to 8 inputs here");
    int rc = math_operands(l, n, n->n_in, ins);
    if (rc >= 0 && rc != n->n_in)
        return lerr(l, n, -EINVAL, "an input is missing");
    return rc < 0 ? rc
                  : emit_math(l, n, 0, PLAN_K_VARIADIC, ins, (uint32_t)rc, p,
                              kp_encode_op(&(struct kp_op){(int)op}, p), 0, 0, 0);
}

/* ---- Abs, Elu, Exp, HardSigmoid, HardSwish, LeakyRelu, Relu, Sigmoid, Sqrt, Tanh ---- */

int ir_node_act(const struct ir_graph *g, const struct ir_node *n, enum ir_act *act, float *alpha,
                float *beta)
{
    static const struct {
        const char *op;
        enum ir_act act;
    } map[] = {
        {"Relu", IR_ACT_RELU},
        {"LeakyRelu", IR_ACT_RELU},
        {"Sigmoid", IR_ACT_SIGMOID},
        {"Tanh", IR_ACT_TANH},
        {"Clip", IR_ACT_CLIP},
        {"HardSigmoid", IR_ACT_HARDSIGMOID},
        {"HardSwish", IR_ACT_HARDSWISH},
        {"Elu", IR_ACT_ELU},
        {"Exp", IR_ACT_EXP},
        {"Sqrt", IR_ACT_SQRT},
        {"Abs", IR_ACT_ABS},
    };
    for (size_t i = 0; i < ARRAY_LEN(map); i++) {
        if (strcmp(n->op, map[i].op) != 0)
            continue;
        *act = map[i].act;
        *alpha = 0;
        *beta = 0;
        if (strcmp(n->op, "LeakyRelu") == 0)
            *alpha = ir_attr_float(n, "alpha", 0.01f);
        else if (*act == IR_ACT_HARDSIGMOID)
            *alpha = ir_attr_float(n, "alpha", 0.2f), *beta = ir_attr_float(n, "beta", 0.5f);
        else if (*act == IR_ACT_ELU)
            *alpha = ir_attr_float(n, "alpha", 1.0f);
        else if (*act == IR_ACT_CLIP) {
            *alpha = ir_attr_float(n, "min", -INFINITY);
            *beta = ir_attr_float(n, "max", INFINITY);
            for (int k = 1; k <= 2; k++) {
                const struct ir_tensor *b =
                    k < n->n_in && n->in[k] >= 0 ? &g->tensors[n->in[k]] : NULL;
                if (!b)
                    continue;
                if (!b->data || b->dtype != ENGINE_F32 || engine_shape_numel(&b->shape) != 1)
                    return 0;
                *(k == 1 ? alpha : beta) = *(const float *)b->data;
            }
        }
        return 1;
    }
    return 0;
}

int infer_act(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, strcmp(n->op, "Clip") == 0 ? 3 : 1, err, errlen);
    if (rc || (rc = want_dtype(g, n, 0, ENGINE_F32, err, errlen)))
        return rc;
    enum ir_act act;
    float a, b;
    if (!ir_node_act(g, n, &act, &a, &b))
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "min/max must be constant float scalars");
    struct ir_tensor *x = in_t(g, n, 0);
    return set_out(g, n, 0, x->dtype, &x->shape, err, errlen);
}

int eval_act(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    enum ir_act act;
    float a, b;
    ir_node_act(g, n, &act, &a, &b);
    struct ir_tensor *x = in_t(g, n, 0);
    float *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    k_act(act, a, b, x->data, d, (size_t)engine_shape_numel(&x->shape));
    return set_data(g, n, 0, d);
}

/* A float scalar from an optional constant input (Clip min/max at opset >= 11). */
static int scalar_input(struct lower *l, const struct ir_node *n, int i, float def, float *out)
{
    const struct ir_tensor *t = ir_in(l, n, i);
    *out = def;
    if (!t)
        return 0;
    if (!t->data || t->dtype != ENGINE_F32 || engine_shape_numel(&t->shape) != 1)
        return lerr(l, n, -EINVAL, "min/max must be float32 scalar constants");
    *out = *(const float *)t->data;
    return 0;
}

static int eltwise_of(struct lower *l, const struct ir_node *n, struct step s[2])
{
    static const struct {
        const char *op;
        enum ir_act act;
        float alpha, beta;
    } map[] = {
        {"Relu", IR_ACT_RELU, 0, 0},
        {"LeakyRelu", IR_ACT_RELU, 0.01f, 0},
        {"Sigmoid", IR_ACT_SIGMOID, 0, 0},
        {"Tanh", IR_ACT_TANH, 0, 0},
        {"HardSigmoid", IR_ACT_HARDSIGMOID, 0.2f, 0.5f},
        {"HardSwish", IR_ACT_HARDSWISH, 0, 0},
        {"Elu", IR_ACT_ELU, 1.0f, 0},
        {"Exp", IR_ACT_EXP, 0, 0},
        {"Sqrt", IR_ACT_SQRT, 0, 0},
        {"Abs", IR_ACT_ABS, 0, 0},
        {"Clip", IR_ACT_CLIP, -FLT_MAX, FLT_MAX},
    };
    for (size_t i = 0; i < ARRAY_LEN(map); i++) {
        if (strcmp(map[i].op, n->op) != 0)
            continue;
        float alpha = ir_attr_float(n, map[i].act == IR_ACT_CLIP ? "min" : "alpha", map[i].alpha);
        float beta = ir_attr_float(n, map[i].act == IR_ACT_CLIP ? "max" : "beta", map[i].beta);
        if (map[i].act == IR_ACT_CLIP &&
            (scalar_input(l, n, 1, alpha, &alpha) || scalar_input(l, n, 2, beta, &beta)))
            return -EINVAL;
        return act_steps(map[i].act, alpha, beta, s);
    }
    return lerr(l, n, -EINVAL, "unsupported activation");
}

int lower_eltwise(struct lower *l, const struct ir_node *n)
{
    struct step s[2];
    int k = eltwise_of(l, n, s);
    if (k < 0)
        return k;
    struct plan_node pn = node_init(l, n, PLAN_OP_ELTWISE);
    pn.alg = (uint32_t)s[0].alg;
    pn.alpha = s[0].alpha;
    pn.beta = s[0].beta;
    if (k > 1)
        push_post(&pn, PLAN_POST_ELTWISE, &s[1]);
    int64_t ts[1] = {act_operand(l, n, n->in[0])};
    int64_t out = output_of(l, n, 0);
    if (ts[0] < 0 || out < 0 || set_layout(l, out, layout_of(l, ts[0])))
        return -EINVAL;
    return emit_with_posts(l, n, &pn, out, ts, 1);
}

/* ---- Add, Sub, Mul, Div, Pow ---- */

/* Add, Sub, Mul, Div, Pow on int8/uint8, and Pow whose exponent has another type than its base:
 * the arithmetic kernel; every other case is an ordinary binary op. */
static int is_arith(struct ir_graph *g, struct ir_node *n)
{
    struct ir_tensor *a = in_t(g, n, 0), *b = in_t(g, n, 1);
    return n->n_in == 2 && a && b &&
           (a->dtype != b->dtype || a->dtype == ENGINE_I8 || a->dtype == ENGINE_U8);
}

int infer_arith(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    if (!is_arith(g, n))
        return infer_binary(g, n, err, errlen);
    struct ir_tensor *a = in_t(g, n, 0), *b = in_t(g, n, 1);
    struct engine_shape o;
    if (!k_arith_dtypes_ok(binop_of(n->op), a->dtype, b->dtype))
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "input types %s and %s are unsupported",
                           engine_dtype_name(a->dtype), engine_dtype_name(b->dtype));
    if (k_broadcast_shape(&a->shape, &b->shape, &o))
        return ir_node_err(g, n, err, errlen, -EINVAL, "input shapes do not broadcast");
    return set_out(g, n, 0, a->dtype, &o, err, errlen);
}

int eval_arith(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    if (!is_arith(g, n))
        return eval_binary(g, n, err, errlen);
    struct ir_tensor *a = in_t(g, n, 0), *b = in_t(g, n, 1), *o = &g->tensors[n->out[0]];
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    int rc = k_arith(binop_of(n->op), a->dtype, a->data, &a->shape, b->dtype, b->data, &b->shape, d,
                     &o->shape);
    if (rc) {
        free(d);
        return ir_node_err(g, n, err, errlen, rc, "integer division by zero in constants");
    }
    return set_data(g, n, 0, d);
}

/* Add, Sub, Mul, Div, Pow: int8/uint8 operands or a Pow exponent of another type than its base
 * run on the arithmetic kernel, everything else as before. */
int lower_arith(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *a = ir_in(l, n, 0), *b = ir_in(l, n, 1);
    if (n->n_in != 2 || !a || !b ||
        (a->dtype == b->dtype && a->dtype != ENGINE_I8 && a->dtype != ENGINE_U8))
        return lower_binary(l, n);
    int64_t op = binop_of(n->op), ins[2], p[1];
    int rc = math_operands(l, n, 2, ins);
    return rc < 0 ? rc
                  : emit_math(l, n, 0, PLAN_K_ARITH, ins, 2, p,
                              kp_encode_op(&(struct kp_op){(int)op}, p), 0, 0, 0);
}

/* ---- Equal, Greater, Less ---- */

/* ---- Clip ---- */

/* Clip: the activation when float32 with constant bounds, else a C kernel whose bounds (one
 * element of the input's type each) may be computed at run time. */
static int clip_is_act(struct ir_graph *g, struct ir_node *n)
{
    enum ir_act act;
    float a, b;
    struct ir_tensor *x = in_t(g, n, 0);
    return x && x->dtype == ENGINE_F32 && ir_node_act(g, n, &act, &a, &b);
}

int infer_clip(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    if (clip_is_act(g, n))
        return infer_act(g, n, err, errlen);
    int rc = arity(g, n, 1, 3, err, errlen);
    if (rc)
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    if (!k_clip_dtype_ok(x->dtype))
        return unsupported_type(g, n, x, err, errlen);
    for (int i = 1; i <= 2; i++) {
        struct ir_tensor *b = in_t(g, n, i);
        if (b && (b->dtype != x->dtype || engine_shape_numel(&b->shape) != 1))
            return ir_node_err(g, n, err, errlen, -EINVAL,
                               "min and max must be one element of the input's type");
    }
    return set_out(g, n, 0, x->dtype, &x->shape, err, errlen);
}

int eval_clip(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    if (clip_is_act(g, n))
        return eval_act(g, n, err, errlen);
    struct ir_tensor *x = in_t(g, n, 0), *lo = in_t(g, n, 1), *hi = in_t(g, n, 2);
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    k_clip(x->dtype, x->data, lo ? lo->data : NULL, hi ? hi->data : NULL, d,
           (size_t)engine_shape_numel(&x->shape));
    return set_data(g, n, 0, d);
}

/* Clip: oneDNN eltwise when float32 with constant bounds, else a C kernel reading the bounds
 * that are present (possibly computed at run time). */
int lower_clip(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *x = ir_in(l, n, 0);
    enum ir_act act;
    float a, b;
    if (x && x->dtype == ENGINE_F32 && ir_node_act(l->g, n, &act, &a, &b))
        return lower_eltwise(l, n);
    int64_t ins[3], params[2];
    int has[2] = {0, 0};
    uint32_t cnt = 1;
    if (!x || (ins[0] = plain_operand(l, n, n->in[0])) < 0)
        return lerr(l, n, -EINVAL, "missing input");
    for (int i = 1; i <= 2; i++) {
        if (i >= n->n_in || n->in[i] < 0)
            continue;
        if ((ins[cnt++] = plain_operand(l, n, n->in[i])) < 0)
            return (int)ins[cnt - 1];
        has[i - 1] = 1;
    }
    uint32_t np = kp_encode_clip(&(struct kp_clip){has[0], has[1]}, params);
    return emit_math(l, n, 0, PLAN_K_CLIP, ins, cnt, params, np, 0, 0, 0);
}

/* ---- Where ---- */

int infer_where(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 3, 3, err, errlen);
    if (rc || (rc = want_dtype(g, n, 0, ENGINE_BOOL, err, errlen)))
        return rc;
    struct ir_tensor *c = in_t(g, n, 0), *a = in_t(g, n, 1), *b = in_t(g, n, 2);
    struct engine_shape t, o;
    if (a->dtype != b->dtype)
        return ir_node_err(g, n, err, errlen, -EINVAL, "input types differ");
    if (k_broadcast_shape(&c->shape, &a->shape, &t) || k_broadcast_shape(&t, &b->shape, &o))
        return ir_node_err(g, n, err, errlen, -EINVAL, "input shapes do not broadcast");
    return set_out(g, n, 0, a->dtype, &o, err, errlen);
}

int eval_where(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *c = in_t(g, n, 0), *a = in_t(g, n, 1), *b = in_t(g, n, 2);
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    k_where(c->data, &c->shape, a->data, &a->shape, b->data, &b->shape, engine_dtype_size(a->dtype),
            d, &g->tensors[n->out[0]].shape);
    return set_data(g, n, 0, d);
}

/* Where(cond, a, b): a plain-C select with numpy broadcasting. */
int lower_where(struct lower *l, const struct ir_node *n)
{
    int64_t in[3];
    for (int i = 0; i < 3; i++) {
        in[i] = i < n->n_in ? plain_operand(l, n, n->in[i]) : -EINVAL;
        if (in[i] < 0)
            return lerr(l, n, -EINVAL, "Where needs three inputs");
    }
    return emit_kernel(l, n, PLAN_K_WHERE, in, 3, NULL, 0, 0);
}

/* ---- Cast ---- */

int infer_cast(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 1, err, errlen);
    if (rc)
        return rc;
    int64_t to = ir_attr_int(n, "to", 0);
    if (!engine_dtype_size((int)to) || to > 100)
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "unsupported attribute to=%lld",
                           (long long)to);
    return set_out(g, n, 0, (int)to, &in_t(g, n, 0)->shape, err, errlen);
}

int eval_cast(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *x = in_t(g, n, 0);
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    k_cast(x->data, x->dtype, d, g->tensors[n->out[0]].dtype,
           (size_t)engine_shape_numel(&x->shape));
    return set_data(g, n, 0, d);
}

/* Cast: element-wise, so a channels-last input (an int8 convolution's) is cast in place of
 * layout, the output in the same layout. */
int lower_cast(struct lower *l, const struct ir_node *n)
{
    int64_t in[1] = {operand_of(l, n, n->in[0])}, out;
    uint32_t layout = layout_of(l, in[0]);
    if (in[0] >= 0 && !plan_layout_channels_last(layout))
        in[0] = in_layout(l, n, in[0], layout = PLAN_LAYOUT_PLAIN);
    if (in[0] < 0 || (out = output_of(l, n, 0)) < 0 ||
        (layout != PLAN_LAYOUT_PLAIN && set_layout(l, out, layout)))
        return in[0] < 0 ? (int)in[0] : lerr(l, n, -EINVAL, "bad cast output");
    return emit_math_to(l, n, out, PLAN_K_CAST, in, 1, NULL, 0, 0, 0, 0);
}

/* ---- CastLike ---- */

/* CastLike: Cast to the second input's element type (kept as "to"; the second input is only
 * looked at here). */
int infer_castlike(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 2, 2, err, errlen);
    if (rc)
        return rc;
    if (ir_attr_set_int(n, "to", in_t(g, n, 1)->dtype))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, in_t(g, n, 1)->dtype, &in_t(g, n, 0)->shape, err, errlen);
}
