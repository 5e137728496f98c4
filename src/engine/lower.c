/*
 * lower.c — the lowering toolkit every op's lower function (ops/) uses: plan tensors for IR
 * tensors, layouts and the reorders between them, oneDNN post-ops, emitting primitive and
 * plain-C kernel nodes with their packed weights.
 */
#include "engine/ops/op.h"

int lerr(struct lower *l, const struct ir_node *n, int code, const char *what)
{
    if (!n)
        return seterr(l->err, l->errlen, code, "model %s: %s", l->model, what);
    return seterr(l->err, l->errlen, code, "model %s: node %s (%s): %s", l->model, n->name, n->op,
                  what);
}

int64_t add_plan_tensor(struct lower *l, const struct ir_tensor *it, uint32_t storage)
{
    struct plan_tensor t = {.dtype = (uint32_t)it->dtype,
                            .rank = (uint32_t)it->shape.rank,
                            .storage = storage,
                            .layout = PLAN_LAYOUT_PLAIN};
    int64_t name = plan_add_string(&l->b, it->name);
    int64_t numel = engine_shape_numel(&it->shape);
    size_t es = engine_dtype_size(it->dtype);
    if (name < 0 || numel < 0 || !es || (uint64_t)numel > UINT64_MAX / 16 / es)
        return name < 0 ? name : -EINVAL;
    t.name = (uint32_t)name;
    memcpy(t.dims, it->shape.dims, sizeof(t.dims));
    t.nbytes = (uint64_t)numel * es;
    if (storage == PLAN_ST_CONST) {
        int64_t off = plan_add_weights(&l->b, t.nbytes);
        if (off < 0)
            return off;
        if (t.nbytes)
            memcpy(l->b.weights + off, it->data, t.nbytes);
        t.offset = (uint64_t)off;
    }
    return plan_add_tensor(&l->b, &t);
}

/* The plan tensor for IR tensor t as an operand: constants become CONST on first use. */
int64_t operand_of(struct lower *l, const struct ir_node *n, int t)
{
    if (t < 0 || t >= l->g->n_tensors)
        return lerr(l, n, -EINVAL, "missing input");
    if (l->tmap[t] >= 0)
        return l->tmap[t];
    const struct ir_tensor *it = &l->g->tensors[t];
    if (!it->data || !it->shape_known ||
        it->nbytes != (size_t)engine_shape_numel(&it->shape) * engine_dtype_size(it->dtype))
        return lerr(l, n, -EINVAL, "input is neither computed earlier nor a constant");
    int64_t pt = add_plan_tensor(l, it, PLAN_ST_CONST);
    if (pt < 0)
        return lerr(l, n, (int)pt, "cannot store constant input");
    l->tmap[t] = (int32_t)pt;
    return pt;
}

int64_t output_of(struct lower *l, const struct ir_node *n, int k)
{
    if (k >= n->n_out || n->out[k] < 0)
        return lerr(l, n, -EINVAL, "missing output");
    const struct ir_tensor *it = &l->g->tensors[n->out[k]];
    if (!it->shape_known || !it->dtype)
        return lerr(l, n, -EINVAL, "output shape unknown after shape inference");
    int64_t pt = add_plan_tensor(l, it, PLAN_ST_ARENA);
    if (pt < 0)
        return lerr(l, n, (int)pt, "cannot add output tensor");
    l->tmap[n->out[k]] = (int32_t)pt;
    return pt;
}

/* Gives arena tensor pt a layout; its size becomes that layout's (padded) size. */
int set_layout(struct lower *l, int64_t pt, uint32_t layout)
{
    struct plan_tensor *t = &l->b.tensors[pt];
    dnnl_memory_desc_t md;
    t->layout = layout;
    if (plan_tensor_md(t, 0, 0, &md))
        return -EINVAL;
    t->nbytes = dnnl_memory_desc_get_size(&md);
    return 0;
}

/* Records that `to` holds `from` in `layout`, so later consumers share it. */
static int remember(struct lower *l, int64_t from, uint32_t layout, int64_t to)
{
    if (l->n_relayouts == l->cap_relayouts) {
        size_t cap = l->cap_relayouts ? 2 * l->cap_relayouts : 16;
        struct relayout *r = realloc(l->relayouts, cap * sizeof(*r));
        if (!r)
            return -ENOMEM;
        l->relayouts = r;
        l->cap_relayouts = cap;
    }
    l->relayouts[l->n_relayouts++] = (struct relayout){from, layout, to};
    return 0;
}

static int64_t emit_reorder(struct lower *l, const struct ir_node *n, int64_t from, int64_t to);

/* Activation pt in the given layout: itself, or the output of a (shared) reorder node. */
int64_t in_layout(struct lower *l, const struct ir_node *n, int64_t pt, uint32_t layout)
{
    if (pt < 0 || l->b.tensors[pt].storage != PLAN_ST_ARENA || l->b.tensors[pt].layout == layout)
        return pt;
    for (size_t i = 0; i < l->n_relayouts; i++)
        if (l->relayouts[i].from == pt && l->relayouts[i].layout == layout)
            return l->relayouts[i].to;
    struct plan_tensor t = l->b.tensors[pt];
    t.flags = 0;
    int64_t to = plan_add_tensor(&l->b, &t);
    if (to < 0 || set_layout(l, to, layout) || emit_reorder(l, n, pt, to) < 0 ||
        remember(l, pt, layout, to))
        return lerr(l, n, -EINVAL, "cannot change an activation's layout");
    return to;
}

/* IR tensor t as an activation operand: a constant (ops that folding leaves alone, e.g. a Conv
 * of constants) is copied into the arena by a copy node, once. */
int64_t act_operand(struct lower *l, const struct ir_node *n, int t)
{
    int64_t pt = operand_of(l, n, t);
    if (pt < 0 || l->b.tensors[pt].storage == PLAN_ST_ARENA)
        return pt;
    for (size_t i = 0; i < l->n_relayouts; i++)
        if (l->relayouts[i].from == pt && l->relayouts[i].layout == PLAN_LAYOUT_ARENA_COPY)
            return l->relayouts[i].to;
    struct plan_tensor c = l->b.tensors[pt];
    c.storage = PLAN_ST_ARENA;
    c.offset = 0;
    int64_t to = plan_add_tensor(&l->b, &c);
    if (to < 0 || emit_copy(l, n, pt, to) < 0 || remember(l, pt, PLAN_LAYOUT_ARENA_COPY, to))
        return lerr(l, n, -EINVAL, "cannot copy a constant into the arena");
    return to;
}

/* IR tensor t as an operand that must be plain row-major. */
int64_t plain_operand(struct lower *l, const struct ir_node *n, int t)
{
    return in_layout(l, n, operand_of(l, n, t), PLAN_LAYOUT_PLAIN);
}

/* An activation operand in plain row-major. */
int64_t plain_act_operand(struct lower *l, const struct ir_node *n, int t)
{
    return in_layout(l, n, act_operand(l, n, t), PLAN_LAYOUT_PLAIN);
}

uint32_t layout_of(const struct lower *l, int64_t pt)
{
    return pt >= 0 ? l->b.tensors[pt].layout : PLAN_LAYOUT_PLAIN;
}

const struct ir_tensor *ir_in(const struct lower *l, const struct ir_node *n, int i)
{
    if (i >= n->n_in || n->in[i] < 0 || n->in[i] >= l->g->n_tensors)
        return NULL;
    return &l->g->tensors[n->in[i]];
}

/* Up to two steps for one activation; returns the count or -EINVAL. */
int act_steps(enum ir_act act, float alpha, float beta, struct step s[2])
{
    s[0] = (struct step){dnnl_alg_kind_undef, alpha, beta};
    switch (act) {
    case IR_ACT_RELU:
        s[0].alg = dnnl_eltwise_relu;
        s[0].beta = 0;
        return 1;
    case IR_ACT_CLIP:
        s[0].alg = dnnl_eltwise_clip;
        return 1;
    case IR_ACT_SIGMOID:
        s[0].alg = dnnl_eltwise_logistic;
        return 1;
    case IR_ACT_TANH:
        s[0].alg = dnnl_eltwise_tanh;
        return 1;
    case IR_ACT_ELU:
        s[0].alg = dnnl_eltwise_elu;
        return 1;
    case IR_ACT_GELU_ERF:
        s[0].alg = dnnl_eltwise_gelu_erf;
        return 1;
    case IR_ACT_EXP:
        s[0].alg = dnnl_eltwise_exp;
        return 1;
    case IR_ACT_SQRT:
        s[0].alg = dnnl_eltwise_sqrt;
        return 1;
    case IR_ACT_ABS:
        s[0].alg = dnnl_eltwise_abs;
        return 1;
    case IR_ACT_HARDSWISH:
        s[0].alg = dnnl_eltwise_hardswish;
        return 1;
    case IR_ACT_HARDSIGMOID:
        s[0].alg = dnnl_eltwise_linear;
        s[1] = (struct step){dnnl_eltwise_clip, 0.0f, 1.0f};
        return 2;
    default:
        return -EINVAL;
    }
}

int push_post(struct plan_node *pn, uint32_t kind, const struct step *s)
{
    if (pn->n_post >= PLAN_MAX_POST)
        return -E2BIG;
    pn->post[pn->n_post++] =
        (struct plan_post){kind, s ? (uint32_t)s->alg : 0, s ? s->alpha : 0, s ? s->beta : 0};
    return 0;
}

/* Copies the IR node's fused post-ops; a SUM names its addend (only CONV/INNER take one). */
int lower_posts(struct lower *l, const struct ir_node *n, struct plan_node *pn)
{
    for (int i = 0; i < n->n_post; i++) {
        const struct ir_post_op *p = &n->post[i];
        struct step s[2];
        int rc = 0;
        if (p->kind == IR_POST_SUM) {
            if ((pn->op != PLAN_OP_CONV && pn->op != PLAN_OP_INNER) || pn->sum_tensor != PLAN_NONE)
                return lerr(l, n, -EINVAL, "residual sum fused on an op that cannot take it");
            int64_t t = in_layout(l, n, operand_of(l, n, p->tensor), layout_of(l, pn->out));
            if (t < 0)
                return (int)t;
            if (l->b.tensors[t].storage != PLAN_ST_ARENA)
                return lerr(l, n, -EINVAL, "residual sum of a constant is not supported");
            pn->sum_tensor = (uint32_t)t;
            rc = push_post(pn, PLAN_POST_SUM, NULL);
        } else {
            int k = act_steps(p->act, p->alpha, p->beta, s);
            if (k < 0)
                return lerr(l, n, -EINVAL, "unsupported fused activation");
            for (int j = 0; j < k && !rc; j++)
                rc = push_post(pn, PLAN_POST_ELTWISE, &s[j]);
        }
        if (rc)
            return lerr(l, n, rc, "too many fused post-ops");
    }
    return 0;
}

struct plan_node node_init(struct lower *l, const struct ir_node *n, uint32_t op)
{
    struct plan_node pn = {.op = op, .sum_tensor = PLAN_NONE, .wmd = PLAN_NONE, .impl = PLAN_NONE};
    int64_t name = plan_add_string(&l->b, n->name);
    int64_t onnx_op = plan_add_string(&l->b, n->op);
    pn.name = name < 0 ? 0 : (uint32_t)name;
    pn.onnx_op = onnx_op < 0 ? 0 : (uint32_t)onnx_op;
    return pn;
}

int set_inputs(struct lower *l, struct plan_node *pn, const int64_t *ts, uint32_t count)
{
    pn->in_first = l->b.n_index;
    pn->n_in = count;
    for (uint32_t i = 0; i < count; i++)
        if (plan_add_index(&l->b, (int32_t)ts[i]) < 0)
            return -ENOMEM;
    return 0;
}

/* Reorders plain weights (float32, or int8; dims as the pd's weights md) into the chosen layout in the image. */
static int pack_weights(struct lower *l, const struct ir_node *n, dnnl_primitive_desc_t pd,
                        uint32_t wt, const void *plain)
{
    const dnnl_memory_desc_t *want = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    dnnl_memory_desc_t src_md;
    if (!want || dnnl_memory_desc_init_by_strides(&src_md, want->ndims, want->dims,
                                                  want->data_type, NULL) != dnnl_success)
        return lerr(l, n, -EINVAL, "cannot describe the weights");
    size_t size = dnnl_memory_desc_get_size(want);
    int64_t off = plan_add_weights(&l->b, size);
    int64_t md = off < 0 ? off : plan_add_md(&l->b, want);
    if (md < 0)
        return lerr(l, n, -ENOMEM, "out of memory for weights");
    dnnl_memory_t from = NULL, to = NULL;
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_primitive_t r = NULL;
    int ok = dnnl_memory_create(&from, &src_md, l->eng, (void *)plain) == dnnl_success &&
             dnnl_memory_create(&to, want, l->eng, l->b.weights + off) == dnnl_success &&
             dnnl_reorder_primitive_desc_create(&rpd, &src_md, l->eng, want, l->eng, NULL) ==
                 dnnl_success &&
             dnnl_primitive_create(&r, rpd) == dnnl_success;
    if (ok) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
        ok = dnnl_primitive_execute(r, l->stream, 2, args) == dnnl_success &&
             dnnl_stream_wait(l->stream) == dnnl_success;
    }
    dnnl_primitive_destroy(r);
    dnnl_primitive_desc_destroy(rpd);
    dnnl_memory_destroy(from);
    dnnl_memory_destroy(to);
    if (!ok)
        return lerr(l, n, -EINVAL, "oneDNN cannot reorder the weights");
    l->b.tensors[wt].offset = (uint64_t)off;
    l->b.tensors[wt].nbytes = size;
    l->b.nodes[l->b.n_nodes - 1].wmd = (uint32_t)md;
    return 0;
}

/* Adds pn, resolves its primitive (packing weights when wt is a PACKED tensor) and records the
 * implementation name. */
int emit(struct lower *l, const struct ir_node *n, const struct plan_node *pn, int64_t wt,
         const void *plain_weights)
{
    if (plan_add_node(&l->b, pn) < 0)
        return lerr(l, n, -ENOMEM, "out of memory");
    struct plan_view v;
    plan_builder_view(&l->b, &v);
    dnnl_primitive_desc_t pd;
    int rc = plan_primitive_desc(&v, &l->b.nodes[l->b.n_nodes - 1], l->eng, &pd, l->err, l->errlen);
    if (rc)
        return rc;
    if (wt >= 0)
        rc = pack_weights(l, n, pd, (uint32_t)wt, plain_weights);
    const char *impl = NULL;
    if (!rc && pd &&
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success && impl) {
        /* model open refuses packed weights for a reference kernel; say so at compile time */
        if (wt >= 0 && strncmp(impl, "ref", 3) == 0) {
            dnnl_primitive_desc_destroy(pd);
            return lerr(l, n, -ENOTSUP, "unsupported: oneDNN has only a reference kernel for it");
        }
        int64_t s = plan_add_string(&l->b, impl);
        rc = s < 0 ? lerr(l, n, -ENOMEM, "out of memory") : 0;
        if (!rc)
            l->b.nodes[l->b.n_nodes - 1].impl = (uint32_t)s;
    }
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    return rc;
}

static int64_t emit_reorder(struct lower *l, const struct ir_node *n, int64_t from, int64_t to)
{
    struct plan_node pn = {.op = PLAN_OP_REORDER,
                           .sum_tensor = PLAN_NONE,
                           .wmd = PLAN_NONE,
                           .impl = PLAN_NONE,
                           .out = (uint32_t)to};
    int64_t op = plan_add_string(&l->b, "Reorder");
    if (op < 0 || set_inputs(l, &pn, &from, 1))
        return -ENOMEM;
    pn.name = l->b.tensors[from].name; /* the node is named after the tensor it converts */
    pn.onnx_op = (uint32_t)op;
    return emit(l, n, &pn, -1, NULL);
}

int64_t emit_copy(struct lower *l, const struct ir_node *n, int64_t from, int64_t to)
{
    struct plan_node pn = {.op = PLAN_OP_KERNEL,
                           .alg = PLAN_K_COPY,
                           .sum_tensor = PLAN_NONE,
                           .wmd = PLAN_NONE,
                           .impl = PLAN_NONE,
                           .out = (uint32_t)to};
    int64_t op = plan_add_string(&l->b, "Constant");
    if (op < 0 || set_inputs(l, &pn, &from, 1))
        return -ENOMEM;
    pn.name = l->b.tensors[to].name;
    pn.onnx_op = (uint32_t)op;
    return emit(l, n, &pn, -1, NULL);
}

/* A PACKED tensor for weights with the given logical dims (bytes filled by pack_weights). */
int64_t packed_tensor(struct lower *l, const struct ir_tensor *w, int rank, const int64_t *dims)
{
    struct plan_tensor t = {.dtype = ENGINE_F32,
                            .rank = (uint32_t)rank,
                            .storage = PLAN_ST_PACKED,
                            .layout = PLAN_LAYOUT_PLAIN};
    int64_t name = plan_add_string(&l->b, w->name);
    if (name < 0)
        return name;
    t.name = (uint32_t)name;
    memcpy(t.dims, dims, (size_t)rank * sizeof(dims[0]));
    return plan_add_tensor(&l->b, &t);
}

int get_ints(const struct ir_node *n, const char *name, int64_t *out, int count, int64_t def)
{
    const struct ir_attr *a = ir_attr_get(n, name);
    for (int i = 0; i < count; i++)
        out[i] = def;
    if (!a)
        return 0;
    if (a->type != IR_ATTR_INTS || (int)a->n != count)
        return -EINVAL;
    memcpy(out, a->ints, (size_t)count * sizeof(int64_t));
    return 0;
}

/* kernel/strides/dilations/pads of a window op; right pads follow from the output shape so
 * ceil_mode needs no special case. */
int node_window(struct lower *l, const struct ir_node *n, const struct ir_tensor *x,
                const struct ir_tensor *y, const int64_t *kernel, struct plan_node *pn)
{
    int sp = x->shape.rank - 2;
    int64_t pads[2 * PLAN_MAX_SPATIAL], dil[PLAN_MAX_SPATIAL];
    if (sp < 1 || sp > PLAN_MAX_SPATIAL || y->shape.rank != x->shape.rank)
        return lerr(l, n, -EINVAL, "only 1-3 spatial dims are supported");
    if (get_ints(n, "strides", pn->strides, sp, 1) || get_ints(n, "dilations", dil, sp, 1) ||
        get_ints(n, "pads", pads, 2 * sp, 0))
        return lerr(l, n, -EINVAL, "strides, dilations or pads have the wrong length");
    const char *ap = ir_attr_str(n, "auto_pad", "NOTSET");
    if (strcmp(ap, "NOTSET") != 0 && strcmp(ap, "VALID") != 0)
        return lerr(l, n, -EINVAL, "auto_pad was not resolved by shape inference");
    for (int i = 0; i < sp; i++) {
        int64_t ext = (kernel[i] - 1) * dil[i] + 1, in = x->shape.dims[2 + i];
        int64_t out = y->shape.dims[2 + i];
        pn->kernel[i] = kernel[i];
        pn->dilations[i] = dil[i] - 1;
        pn->pad_l[i] = pads[i];
        pn->pad_r[i] = (out - 1) * pn->strides[i] + ext - in - pads[i];
        if (pn->pad_r[i] < 0)
            pn->pad_r[i] = 0;
    }
    return 0;
}

/* Appends int32 kernel parameters to the index section. */
int set_params(struct lower *l, struct plan_node *pn, const int64_t *vals, uint32_t count)
{
    pn->params_first = l->b.n_index;
    pn->n_params = count;
    for (uint32_t i = 0; i < count; i++)
        if (vals[i] < INT32_MIN || vals[i] > INT32_MAX ||
            plan_add_index(&l->b, (int32_t)vals[i]) < 0)
            return -EINVAL;
    return 0;
}

int emit_kernel(struct lower *l, const struct ir_node *n, uint32_t kind, const int64_t *ins,
                uint32_t n_in, const int64_t *params, uint32_t n_params, int64_t axis)
{
    return emit_math(l, n, 0, kind, ins, n_in, params, n_params, axis, 0, 0);
}

/* Emits a math kernel from plain operands ins into plan tensor out. */
int emit_math_to(struct lower *l, const struct ir_node *n, int64_t out, uint32_t kind,
                 const int64_t *ins, uint32_t n_in, const int64_t *params, uint32_t n_params,
                 int64_t axis, float alpha, float beta)
{
    struct plan_node pn = node_init(l, n, PLAN_OP_KERNEL);
    pn.alg = kind;
    pn.axis = axis;
    pn.alpha = alpha;
    pn.beta = beta;
    pn.out = (uint32_t)out;
    if (n->n_post)
        return lerr(l, n, -EINVAL, "fused post-ops on a plain-C kernel");
    if (set_inputs(l, &pn, ins, n_in) || set_params(l, &pn, params, n_params))
        return lerr(l, n, -EINVAL, "kernel parameters out of range");
    return emit(l, n, &pn, -1, NULL);
}

/* The same, writing output k of n. */
int emit_math(struct lower *l, const struct ir_node *n, int k, uint32_t kind, const int64_t *ins,
              uint32_t n_in, const int64_t *params, uint32_t n_params, int64_t axis, float alpha,
              float beta)
{
    int64_t out = output_of(l, n, k);
    if (out < 0)
        return (int)out;
    return emit_math_to(l, n, out, kind, ins, n_in, params, n_params, axis, alpha, beta);
}

/* Plain operands of n's first inputs, up to count or the first absent one; returns how many. */
int math_operands(struct lower *l, const struct ir_node *n, int count, int64_t *ins)
{
    int k = 0;
    for (; k < count && k < n->n_in && n->in[k] >= 0; k++)
        if ((ins[k] = plain_operand(l, n, n->in[k])) < 0)
            return (int)ins[k];
    return k ? k : lerr(l, n, -EINVAL, "missing input");
}

/* Integer values of an optional constant input (int32 or int64); count them in *n. */
int const_input_ints(struct lower *l, const struct ir_node *n, int i, int64_t *out, int *count)
{
    const struct ir_tensor *t = ir_in(l, n, i);
    *count = 0;
    if (!t)
        return 0;
    int64_t k = engine_shape_numel(&t->shape);
    if (!t->data || t->shape.rank > 1 || k < 0 || k > ENGINE_MAX_RANK ||
        (t->dtype != ENGINE_I64 && t->dtype != ENGINE_I32))
        return lerr(l, n, -EINVAL, "slice parameters must be small integer constants");
    for (int64_t j = 0; j < k; j++)
        out[j] =
            t->dtype == ENGINE_I64 ? ((const int64_t *)t->data)[j] : ((const int32_t *)t->data)[j];
    *count = (int)k;
    return 0;
}

/* Plain operands for inputs 0..count-1 of n. */
int plain_inputs(struct lower *l, const struct ir_node *n, int count, int64_t *ins)
{
    for (int i = 0; i < count; i++) {
        ins[i] = i < n->n_in && n->in[i] >= 0 ? plain_operand(l, n, n->in[i]) : -EINVAL;
        if (ins[i] < 0)
            return lerr(l, n, -EINVAL, "missing or unusable input");
    }
    return 0;
}

int emit_with_posts(struct lower *l, const struct ir_node *n, struct plan_node *pn, int64_t out,
                    const int64_t *ins, uint32_t n_in)
{
    pn->out = (uint32_t)out;
    int rc = set_inputs(l, pn, ins, n_in);
    if (!rc)
        rc = lower_posts(l, n, pn);
    return rc ? rc : emit(l, n, pn, -1, NULL);
}

int no_lower(struct lower *l, const struct ir_node *n)
{
    return lerr(l, n, -ENOTSUP, "unsupported op for the oneDNN backend");
}
