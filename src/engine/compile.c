/*
 * compile.c — the plan compiler: ONNX bytes → IR passes → plan tables → image.
 *
 * Lowering walks the live IR nodes in topological order and emits one plan node per oneDNN
 * primitive. Shape-only ops (Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout) emit no
 * node: their output is an alias of their input's activation buffer. Weights of convolutions and
 * inner products are reordered once, here, into the layout oneDNN picks for this CPU and thread
 * count (format `any`), and stored with that layout's memory desc and the implementation name.
 *
 * Layouts: each convolution picks its preferred src/dst layouts (format `any`, typically nChw8c
 * on AVX2); pooling, eltwise, batch norm, same-shape binary ops and channel concats keep their
 * input's layout; a reorder node is inserted only where an op needs plain row-major data (inner
 * product, matmul, softmax, broadcasting binary ops, shape-only aliases, graph outputs) or a
 * convolution wants another layout. memplan.c then gives every activation buffer an offset in
 * one arena.
 */
#include "common/common.h"
#include "config.h"
#include "engine/kernels.h"
#include "engine/plan.h"
#include "engine/winograd.h"

#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct relayout {
    int64_t from;
    uint32_t layout;
    int64_t to;
};

struct lower {
    const struct ir_graph *g;
    struct plan_builder b;
    int32_t *tmap;              /* IR tensor → plan tensor, -1 */
    struct relayout *relayouts; /* activations already reordered into another layout */
    size_t n_relayouts, cap_relayouts;
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    const char *model;
    int winograd;      /* ENGINE_WINOGRAD_* */
    uint8_t *wino_pick; /* auto: 1 for each IR node picked for Winograd (pick_winograd) */
    char *err;
    size_t errlen;
};

static int lerr(struct lower *l, const struct ir_node *n, int code, const char *what)
{
    if (!n)
        return seterr(l->err, l->errlen, code, "model %s: %s", l->model, what);
    return seterr(l->err, l->errlen, code, "model %s: node %s (%s): %s", l->model, n->name, n->op,
                  what);
}

/* ---- tensors ---- */

static int64_t add_plan_tensor(struct lower *l, const struct ir_tensor *it, uint32_t storage)
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
static int64_t operand_of(struct lower *l, const struct ir_node *n, int t)
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

static int64_t output_of(struct lower *l, const struct ir_node *n, int k)
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
static int set_layout(struct lower *l, int64_t pt, uint32_t layout)
{
    struct plan_tensor *t = &l->b.tensors[pt];
    dnnl_memory_desc_t md;
    t->layout = layout;
    if (plan_tensor_md(t, 0, 0, &md))
        return -EINVAL;
    t->nbytes = dnnl_memory_desc_get_size(&md);
    return 0;
}

static int64_t emit_reorder(struct lower *l, const struct ir_node *n, int64_t from, int64_t to);

/* Pseudo layout of the relayout cache: a constant's copy in the arena. */
#define PLAN_LAYOUT_ARENA_COPY 0xfffffffeu

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

/* Activation pt in the given layout: itself, or the output of a (shared) reorder node. */
static int64_t in_layout(struct lower *l, const struct ir_node *n, int64_t pt, uint32_t layout)
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

static int64_t emit_copy(struct lower *l, const struct ir_node *n, int64_t from, int64_t to);

/* IR tensor t as an activation operand: a constant (ops that folding leaves alone, e.g. a Conv
 * of constants) is copied into the arena by a copy node, once. */
static int64_t act_operand(struct lower *l, const struct ir_node *n, int t)
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
static int64_t plain_operand(struct lower *l, const struct ir_node *n, int t)
{
    return in_layout(l, n, operand_of(l, n, t), PLAN_LAYOUT_PLAIN);
}

/* An activation operand in plain row-major. */
static int64_t plain_act_operand(struct lower *l, const struct ir_node *n, int t)
{
    return in_layout(l, n, act_operand(l, n, t), PLAN_LAYOUT_PLAIN);
}

static uint32_t layout_of(const struct lower *l, int64_t pt)
{
    return pt >= 0 ? l->b.tensors[pt].layout : PLAN_LAYOUT_PLAIN;
}

static const struct ir_tensor *ir_in(const struct lower *l, const struct ir_node *n, int i)
{
    if (i >= n->n_in || n->in[i] < 0 || n->in[i] >= l->g->n_tensors)
        return NULL;
    return &l->g->tensors[n->in[i]];
}

/* ---- activations → oneDNN eltwise steps ---- */

struct step {
    dnnl_alg_kind_t alg;
    float alpha, beta;
};

/* Up to two steps for one activation; returns the count or -EINVAL. */
static int act_steps(enum ir_act act, float alpha, float beta, struct step s[2])
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

static int push_post(struct plan_node *pn, uint32_t kind, const struct step *s)
{
    if (pn->n_post >= PLAN_MAX_POST)
        return -E2BIG;
    pn->post[pn->n_post++] =
        (struct plan_post){kind, s ? (uint32_t)s->alg : 0, s ? s->alpha : 0, s ? s->beta : 0};
    return 0;
}

/* The activation part of a post-op, for layout trials (a sum needs its addend placed first). */
static void lower_posts_act_only(struct plan_node *pn, const struct ir_post_op *p)
{
    struct step s[2];
    int k = act_steps(p->act, p->alpha, p->beta, s);
    for (int j = 0; j < k; j++)
        push_post(pn, PLAN_POST_ELTWISE, &s[j]);
}

/* Copies the IR node's fused post-ops; a SUM names its addend (only CONV/INNER take one). */
static int lower_posts(struct lower *l, const struct ir_node *n, struct plan_node *pn)
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

/* ---- emitting nodes ---- */

static struct plan_node node_init(struct lower *l, const struct ir_node *n, uint32_t op)
{
    struct plan_node pn = {.op = op, .sum_tensor = PLAN_NONE, .wmd = PLAN_NONE, .impl = PLAN_NONE};
    int64_t name = plan_add_string(&l->b, n->name);
    int64_t onnx_op = plan_add_string(&l->b, n->op);
    pn.name = name < 0 ? 0 : (uint32_t)name;
    pn.onnx_op = onnx_op < 0 ? 0 : (uint32_t)onnx_op;
    return pn;
}

static int set_inputs(struct lower *l, struct plan_node *pn, const int64_t *ts, uint32_t count)
{
    pn->in_first = l->b.n_index;
    pn->n_in = count;
    for (uint32_t i = 0; i < count; i++)
        if (plan_add_index(&l->b, (int32_t)ts[i]) < 0)
            return -ENOMEM;
    return 0;
}

/* Reorders plain f32 weights (dims as the pd's weights md) into the chosen layout in the image. */
static int pack_weights(struct lower *l, const struct ir_node *n, dnnl_primitive_desc_t pd,
                        uint32_t wt, const void *plain)
{
    const dnnl_memory_desc_t *want = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    dnnl_memory_desc_t src_md;
    if (!want || dnnl_memory_desc_init_by_strides(&src_md, want->ndims, want->dims, dnnl_f32,
                                                  NULL) != dnnl_success)
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
static int emit(struct lower *l, const struct ir_node *n, const struct plan_node *pn, int64_t wt,
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

static int64_t emit_copy(struct lower *l, const struct ir_node *n, int64_t from, int64_t to)
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
static int64_t packed_tensor(struct lower *l, const struct ir_tensor *w, int rank,
                             const int64_t *dims)
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

/* ---- per-op lowering ---- */

static int get_ints(const struct ir_node *n, const char *name, int64_t *out, int count, int64_t def)
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
static int window(struct lower *l, const struct ir_node *n, const struct ir_tensor *x,
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

/* Asks oneDNN which src/dst layouts it prefers for this convolution (format `any`), using
 * throw-away tensors that are rolled back afterwards. */
static void conv_layouts(struct lower *l, const struct ir_node *n, const struct plan_node *pn,
                         const int64_t *ts, uint32_t n_in, uint32_t *src_layout,
                         uint32_t *dst_layout)
{
    struct plan_builder *b = &l->b;
    const struct ir_tensor *y = &l->g->tensors[n->out[0]];
    uint32_t nt = b->n_tensors, ni = b->n_index;
    struct plan_tensor s = b->tensors[ts[0]], d = s;
    s.layout = d.layout = PLAN_LAYOUT_ANY;
    d.rank = (uint32_t)y->shape.rank;
    memcpy(d.dims, y->shape.dims, sizeof(d.dims));
    int64_t ins[3] = {plan_add_tensor(b, &s), ts[1], ts[2]};
    int64_t out = plan_add_tensor(b, &d);
    struct plan_node trial = *pn; /* fused activations count; a sum needs its addend placed */
    for (int i = 0; i < n->n_post; i++)
        if (n->post[i].kind == IR_POST_ACT)
            lower_posts_act_only(&trial, &n->post[i]);
    *src_layout = *dst_layout = PLAN_LAYOUT_PLAIN;
    if (ins[0] >= 0 && out >= 0 && set_inputs(l, &trial, ins, n_in) == 0) {
        trial.out = (uint32_t)out;
        struct plan_view v;
        dnnl_primitive_desc_t pd;
        char scratch[8];
        plan_builder_view(b, &v);
        if (plan_primitive_desc(&v, &trial, l->eng, &pd, scratch, sizeof(scratch)) == 0) {
            *src_layout = plan_layout_of(dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0));
            *dst_layout = plan_layout_of(dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0));
            dnnl_primitive_desc_destroy(pd);
        }
    }
    b->n_tensors = nt;
    b->n_index = ni;
}

/* A convolution auto may make Winograd: 3x3, stride 1, dense, ungrouped, constant float32 weights
 * of 8-multiple channels, and an output of at least 28x28, or 14x14 with at most 256x256 channels
 * (VGG-16's 512-channel 14x14 layers would add 85 MB for no measurable gain; 7x7 maps are slower:
 * a 4x4 tile wastes a quarter of an 8x8 cover). Its output area, or 0. */
static int64_t wino_candidate(const struct ir_graph *g, const struct ir_node *n)
{
    int64_t st[2], dil[2];
    if (strcmp(n->op, "Conv") || n->n_in < 2 || n->in[1] < 0 || n->n_out < 1 ||
        ir_attr_int(n, "group", 1) != 1 || get_ints(n, "strides", st, 2, 1) ||
        get_ints(n, "dilations", dil, 2, 1) || st[0] != 1 || st[1] != 1 || dil[0] != 1 ||
        dil[1] != 1)
        return 0;
    const struct ir_tensor *w = &g->tensors[n->in[1]], *y = &g->tensors[n->out[0]];
    if (!w->data || w->dtype != ENGINE_F32 || w->shape.rank != 4 || w->shape.dims[2] != 3 ||
        w->shape.dims[3] != 3 || w->shape.dims[0] % 8 || w->shape.dims[1] % 8 ||
        y->shape.rank != 4)
        return 0;
    int64_t hw = y->shape.dims[2] * y->shape.dims[3], ck = w->shape.dims[0] * w->shape.dims[1];
    return hw >= 28 * 28 || (hw >= 14 * 14 && ck <= 256 * 256) ? hw : 0;
}

/* Which candidates auto compiles as Winograd: the largest outputs first (the time saved per byte
 * of transformed weights grows with the output area), while the transformed weights add at most
 * half the model's constant bytes. Measured on an AVX2 core (docs/bench/engine.md): such layers
 * run 1.5-3x faster for 4x their weight bytes; ResNet-50 -17 % time for +41 % image, VGG-16
 * -40 % for +17 %, and GoogLeNet, whose weights are mostly such layers, keeps to +50 %. */
static int pick_winograd(struct lower *l)
{
    const struct ir_graph *g = l->g;
    l->wino_pick = calloc((size_t)g->n_nodes + 1, 1);
    int *cand = malloc(((size_t)g->n_nodes + 1) * sizeof(*cand));
    int64_t *area = malloc(((size_t)g->n_nodes + 1) * sizeof(*area));
    uint8_t *seen = calloc((size_t)g->n_tensors + 1, 1);
    int rc = l->wino_pick && cand && area && seen ? 0 : lerr(l, NULL, -ENOMEM, "out of memory");
    uint64_t total = 0, extra = 0; /* bytes of the constants live nodes read, once each */
    int nc = 0;
    for (int i = 0; !rc && i < g->n_nodes; i++)
        for (int j = 0; !g->nodes[i].dead && j < g->nodes[i].n_in; j++) {
            int t = g->nodes[i].in[j];
            if (t >= 0 && g->tensors[t].data && !seen[t]) {
                seen[t] = 1;
                total += g->tensors[t].nbytes;
            }
        }
    free(seen);
    for (int i = 0; !rc && l->winograd == ENGINE_WINOGRAD_AUTO && i < g->n_nodes; i++) {
        int64_t a = g->nodes[i].dead ? 0 : wino_candidate(g, &g->nodes[i]);
        int j = nc++;
        for (; j > 0 && area[j - 1] < a; j--) { /* insertion: by area, descending, stable */
            cand[j] = cand[j - 1];
            area[j] = area[j - 1];
        }
        cand[j] = i;
        area[j] = a;
        nc -= a == 0; /* not a candidate: it sorted last, drop it */
    }
    for (int j = 0; !rc && j < nc; j++) {
        const struct ir_tensor *w = &g->tensors[g->nodes[cand[j]].in[1]];
        uint64_t add = wino_u_bytes(w->shape.dims[1], w->shape.dims[0]) - w->nbytes;
        if (extra + add <= total / 2) {
            extra += add;
            l->wino_pick[cand[j]] = 1;
        }
    }
    free(cand);
    free(area);
    return rc;
}

/* Whether convolution n, lowered into pn with constant weights w, runs as Winograd F(4x4,3x3):
 * a kernel, stride, dilation, group, channel count, layout (nChw8c) and post-ops it runs, and
 * picked by pick_winograd unless asked for everywhere. */
static int use_winograd(const struct lower *l, const struct ir_node *n, const struct plan_node *pn,
                        const struct ir_tensor *w, uint32_t src_layout, uint32_t dst_layout)
{
    struct wino_post post;
    if (l->winograd == ENGINE_WINOGRAD_OFF || !w->data || w->shape.rank != 4 || pn->groups != 1 ||
        src_layout != dnnl_aBcd8b || dst_layout != dnnl_aBcd8b || !wino_supported())
        return 0;
    for (int i = 0; i < 2; i++)
        if (pn->kernel[i] != 3 || pn->strides[i] != 1 || pn->dilations[i] != 0)
            return 0;
    if (w->shape.dims[0] % 8 || w->shape.dims[1] % 8 || plan_wino_post(pn, &post))
        return 0;
    return l->winograd == ENGINE_WINOGRAD_ALL || l->wino_pick[n - l->g->nodes];
}

/* Turns conv node pn into a WINOGRAD node: the weights tensor wt (made for packing) becomes the
 * constant transformed weights [36, K16/16, C, 16] its kernels read. */
static int emit_winograd(struct lower *l, const struct ir_node *n, struct plan_node *pn,
                         int64_t wt, const struct ir_tensor *w, const struct ir_tensor *y)
{
    int64_t k = w->shape.dims[0], c = w->shape.dims[1];
    int64_t tiles = y->shape.dims[0] * ((y->shape.dims[2] + WINO_TILE - 1) / WINO_TILE) *
                    ((y->shape.dims[3] + WINO_TILE - 1) / WINO_TILE);
    uint64_t bytes = wino_u_bytes(c, k);
    int64_t off = plan_add_weights(&l->b, bytes);
    if (off < 0)
        return lerr(l, n, -ENOMEM, "out of memory for weights");
    wino_weights(w->data, k, c, (float *)(l->b.weights + off));
    struct plan_tensor *t = &l->b.tensors[wt];
    t->storage = PLAN_ST_CONST;
    t->rank = 4;
    t->dims[0] = WINO_POINTS;
    t->dims[1] = (k + WINO_COLS - 1) / WINO_COLS;
    t->dims[2] = c;
    t->dims[3] = WINO_COLS;
    t->offset = (uint64_t)off;
    t->nbytes = bytes;
    pn->op = PLAN_OP_WINOGRAD;
    pn->axis = wino_block_for(c, k, tiles);
    return emit(l, n, pn, -1, NULL);
}

static int lower_conv(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *x = ir_in(l, n, 0), *w = ir_in(l, n, 1), *b = ir_in(l, n, 2);
    if (!x || !w || w->dtype != ENGINE_F32 || w->shape.rank != x->shape.rank ||
        (b && b->dtype != ENGINE_F32))
        return lerr(l, n, -EINVAL, "weights (and bias) must be float32 of the input's rank");
    const struct ir_tensor *y = &l->g->tensors[n->out[0]];
    struct plan_node pn = node_init(l, n, PLAN_OP_CONV); /* post-ops: added once placed */
    pn.groups = ir_attr_int(n, "group", 1);
    int64_t ts[3];
    uint32_t n_in = b ? 3 : 2, src_layout, dst_layout;
    int rc = window(l, n, x, y, w->shape.dims + 2, &pn);
    if (rc)
        return rc;
    ts[0] = act_operand(l, n, n->in[0]);
    /* constant weights are pre-packed into the image; computed ones are read plain */
    ts[1] =
        w->data ? packed_tensor(l, w, w->shape.rank, w->shape.dims) : plain_operand(l, n, n->in[1]);
    ts[2] = b ? plain_operand(l, n, n->in[2]) : 0;
    if (ts[0] < 0 || ts[1] < 0 || ts[2] < 0)
        return lerr(l, n, -EINVAL, "bad operands");
    conv_layouts(l, n, &pn, ts, n_in, &src_layout, &dst_layout);
    ts[0] = in_layout(l, n, ts[0], src_layout);
    int64_t out = output_of(l, n, 0);
    if (ts[0] < 0 || out < 0 || set_layout(l, out, dst_layout))
        return lerr(l, n, -EINVAL, "bad operands");
    pn.out = (uint32_t)out;
    rc = set_inputs(l, &pn, ts, n_in);
    if (!rc)
        rc = lower_posts(l, n, &pn);
    if (!rc && use_winograd(l, n, &pn, w, src_layout, dst_layout))
        return emit_winograd(l, n, &pn, ts[1], w, y);
    return rc ? rc : emit(l, n, &pn, w->data ? ts[1] : -1, w->data);
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

static int lower_plain_matmul(struct lower *l, const struct ir_node *n)
{
    struct plan_node pn = node_init(l, n, PLAN_OP_MATMUL);
    int64_t ts[2] = {plain_operand(l, n, n->in[0]), plain_operand(l, n, n->in[1])};
    int64_t out = output_of(l, n, 0);
    if (ts[0] < 0 || ts[1] < 0 || out < 0)
        return -EINVAL;
    pn.out = (uint32_t)out;
    int rc = set_inputs(l, &pn, ts, 2);
    if (!rc)
        rc = lower_posts(l, n, &pn);
    return rc ? rc : emit(l, n, &pn, -1, NULL);
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

static int lower_gemm(struct lower *l, const struct ir_node *n)
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

static int lower_matmul(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *a = ir_in(l, n, 0), *w = ir_in(l, n, 1);
    if (!a || !w)
        return lerr(l, n, -EINVAL, "missing input");
    if (w->data && w->dtype == ENGINE_F32 && w->shape.rank == 2 && a->shape.rank >= 2)
        return lower_inner(l, n, 1, 1.0f, NULL, 0.0f);
    return lower_plain_matmul(l, n);
}

static int lower_maxpool_idx(struct lower *l, const struct ir_node *n);

static int lower_pool(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *x = ir_in(l, n, 0);
    const struct ir_tensor *y = n->n_out > 0 && n->out[0] >= 0 ? &l->g->tensors[n->out[0]] : NULL;
    if (!x || !y || x->dtype != ENGINE_F32)
        return lerr(l, n, -EINVAL, "pooling needs a float32 input");
    if (n->n_out > 1 && n->out[1] >= 0)
        return lower_maxpool_idx(l, n);
    struct plan_node pn = node_init(l, n, PLAN_OP_POOL);
    int sp = x->shape.rank - 2;
    int64_t kernel[PLAN_MAX_SPATIAL];
    int global = strncmp(n->op, "Global", 6) == 0;
    if (sp < 1 || sp > PLAN_MAX_SPATIAL)
        return lerr(l, n, -EINVAL, "only 1-3 spatial dims are supported");
    if (global) {
        for (int i = 0; i < sp; i++) {
            pn.kernel[i] = x->shape.dims[2 + i];
            pn.strides[i] = 1;
        }
    } else {
        if (get_ints(n, "kernel_shape", kernel, sp, 0))
            return lerr(l, n, -EINVAL, "kernel_shape has the wrong length");
        int rc = window(l, n, x, y, kernel, &pn);
        if (rc)
            return rc;
    }
    int is_max = strstr(n->op, "Max") != NULL;
    pn.alg = is_max                                   ? dnnl_pooling_max
             : ir_attr_int(n, "count_include_pad", 0) ? dnnl_pooling_avg_include_padding
                                                      : dnnl_pooling_avg_exclude_padding;
    if (ir_attr_int(n, "storage_order", 0))
        return lerr(l, n, -EINVAL, "unsupported attribute storage_order=1");
    int64_t ts[1] = {act_operand(l, n, n->in[0])};
    int64_t out = output_of(l, n, 0);
    if (ts[0] < 0 || out < 0 || set_layout(l, out, layout_of(l, ts[0])))
        return -EINVAL;
    pn.out = (uint32_t)out;
    int rc = set_inputs(l, &pn, ts, 1);
    if (!rc)
        rc = lower_posts(l, n, &pn);
    return rc ? rc : emit(l, n, &pn, -1, NULL);
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

static int lower_eltwise(struct lower *l, const struct ir_node *n)
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
    pn.out = (uint32_t)out;
    int rc = set_inputs(l, &pn, ts, 1);
    if (!rc)
        rc = lower_posts(l, n, &pn);
    return rc ? rc : emit(l, n, &pn, -1, NULL);
}

static int same_shape(const struct engine_shape *a, const struct engine_shape *b)
{
    return a->rank == b->rank && memcmp(a->dims, b->dims, (size_t)a->rank * sizeof(int64_t)) == 0;
}

static int lower_binary_kernel(struct lower *l, const struct ir_node *n);

static int lower_binary(struct lower *l, const struct ir_node *n)
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
     * reference kernel for a blocked src0 with a plain broadcast src1). */
    uint32_t layout = same_shape(&a->shape, &b->shape) ? layout_of(l, ts[0]) : PLAN_LAYOUT_PLAIN;
    ts[0] = in_layout(l, n, ts[0], layout);
    ts[1] = in_layout(l, n, ts[1], layout);
    if (ts[0] < 0 || ts[1] < 0 || set_layout(l, out, layout))
        return -EINVAL;
    pn.out = (uint32_t)out;
    int rc = set_inputs(l, &pn, ts, 2);
    if (!rc)
        rc = lower_posts(l, n, &pn);
    return rc ? rc : emit(l, n, &pn, -1, NULL);
}

static int lower_softmax(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *x = ir_in(l, n, 0);
    int64_t axis = ir_attr_int(n, "axis", l->g->opset >= 13 ? -1 : 1);
    if (!x)
        return lerr(l, n, -EINVAL, "missing input");
    if (axis < 0)
        axis += x->shape.rank;
    if (axis < 0 || axis >= (x->shape.rank ? x->shape.rank : 1))
        return lerr(l, n, -EINVAL, "axis out of range");
    struct plan_node pn = node_init(l, n, PLAN_OP_SOFTMAX);
    pn.axis = axis;
    if (l->g->opset < 13 && axis > 0) {
        pn.collapse = (uint32_t)axis; /* opset < 13 softmax is over the flattened tail */
        pn.axis = 1;
    }
    if (l->g->opset < 13 && axis == 0)
        return lerr(l, n, -EINVAL, "unsupported attribute axis=0 before opset 13");
    int64_t ts[1] = {plain_act_operand(l, n, n->in[0])};
    int64_t out = output_of(l, n, 0);
    if (ts[0] < 0 || out < 0)
        return -EINVAL;
    pn.out = (uint32_t)out;
    int rc = set_inputs(l, &pn, ts, 1);
    if (!rc)
        rc = lower_posts(l, n, &pn);
    return rc ? rc : emit(l, n, &pn, -1, NULL);
}

static int lower_concat(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *y = &l->g->tensors[n->out[0]];
    int64_t axis = ir_attr_int(n, "axis", 0);
    if (axis < 0)
        axis += y->shape.rank;
    if (n->n_in < 1 || n->n_in > 64)
        return lerr(l, n, -EINVAL, "Concat takes 1 to 64 inputs here");
    struct plan_node pn = node_init(l, n, PLAN_OP_CONCAT);
    pn.axis = axis;
    int64_t ts[64];
    uint32_t layout = PLAN_LAYOUT_PLAIN;
    for (int i = 0; i < n->n_in; i++) {
        ts[i] = act_operand(l, n, n->in[i]);
        if (ts[i] < 0)
            return (int)ts[i];
        layout = i == 0 ? layout_of(l, ts[0]) : layout;
        /* blocked along channels only when every input fills whole blocks */
        int blk = plan_layout_block(layout);
        if (blk > 1 && (axis != 1 || l->b.tensors[ts[i]].dims[1] % blk))
            layout = PLAN_LAYOUT_PLAIN;
    }
    for (int i = 0; i < n->n_in; i++)
        if ((ts[i] = in_layout(l, n, ts[i], layout)) < 0)
            return (int)ts[i];
    int64_t out = output_of(l, n, 0);
    if (out < 0 || set_layout(l, out, layout))
        return lerr(l, n, -EINVAL, "cannot lay out the output");
    pn.out = (uint32_t)out;
    int rc = set_inputs(l, &pn, ts, (uint32_t)n->n_in);
    if (!rc)
        rc = lower_posts(l, n, &pn);
    return rc ? rc : emit(l, n, &pn, -1, NULL);
}

static int lower_batchnorm(struct lower *l, const struct ir_node *n)
{
    if (n->n_in != 5 || (n->n_out > 1 && n->out[1] >= 0))
        return lerr(l, n, -EINVAL, "only inference-mode BatchNormalization is supported");
    struct plan_node pn = node_init(l, n, PLAN_OP_BATCHNORM);
    pn.alpha = ir_attr_float(n, "epsilon", 1e-5f);
    static const int order[5] = {0, 3, 4, 1, 2}; /* X, mean, var, scale, B */
    int64_t ts[5];
    for (int i = 0; i < 5; i++) {
        ts[i] = i == 0 ? act_operand(l, n, n->in[0]) : operand_of(l, n, n->in[order[i]]);
        if (ts[i] < 0)
            return (int)ts[i];
    }
    int64_t out = output_of(l, n, 0);
    if (out < 0 || set_layout(l, out, layout_of(l, ts[0])))
        return lerr(l, n, -EINVAL, "cannot lay out the output");
    pn.out = (uint32_t)out;
    int rc = set_inputs(l, &pn, ts, 5);
    if (!rc)
        rc = lower_posts(l, n, &pn);
    return rc ? rc : emit(l, n, &pn, -1, NULL);
}

static int lower_layernorm_c(struct lower *l, const struct ir_node *n);

/* LayerNormalization (opset 17): oneDNN layer_normalization on a plain src seen as 2-D [dims
 * before axis, dims from axis on]. The Mean and InvStdDev outputs (training only) must be unused.
 */
static int lower_layernorm(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *x = ir_in(l, n, 0);
    if (!x || n->n_in < 2 || x->dtype != ENGINE_F32 || x->shape.rank < 1)
        return lerr(l, n, -EINVAL, "LayerNormalization needs a float32 input of rank 1 or more");
    int64_t axis = ir_attr_int(n, "axis", -1), inner = 1;
    axis += axis < 0 ? x->shape.rank : 0;
    if (axis < 0 || axis >= x->shape.rank)
        return lerr(l, n, -EINVAL, "axis is out of range for the input's rank");
    for (int i = (int)axis; i < x->shape.rank; i++)
        inner *= x->shape.dims[i];
    for (int k = 1; k < n->n_out; k++)
        if (n->out[k] >= 0 && ir_tensor_used(l->g, n->out[k]))
            return lower_layernorm_c(l, n);
    int n_in = n->n_in > 2 && n->in[2] >= 0 ? 3 : 2;
    for (int i = 1; i < n_in; i++) {
        const struct ir_tensor *p = ir_in(l, n, i);
        if (!p || p->dtype != ENGINE_F32 || engine_shape_numel(&p->shape) != inner)
            return lerr(l, n, -ENOTSUP, "scale and bias must be float32 of the normalized shape");
    }
    struct plan_node pn = node_init(l, n, PLAN_OP_LAYERNORM);
    pn.alpha = ir_attr_float(n, "epsilon", 1e-5f);
    pn.axis = axis;
    int64_t ts[3];
    for (int i = 0; i < n_in; i++)
        if ((ts[i] = plain_operand(l, n, n->in[i])) < 0)
            return (int)ts[i];
    int64_t out = output_of(l, n, 0);
    if (out < 0 || set_layout(l, out, PLAN_LAYOUT_PLAIN))
        return lerr(l, n, -EINVAL, "cannot lay out the output");
    pn.out = (uint32_t)out;
    int rc = set_inputs(l, &pn, ts, (uint32_t)n_in);
    if (!rc)
        rc = lower_posts(l, n, &pn);
    return rc ? rc : emit(l, n, &pn, -1, NULL);
}

/* Shape-only ops: the output shares the input's buffer (or is a constant of the same bytes). */
static int lower_alias(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *x = ir_in(l, n, 0);
    if (!x || n->n_post)
        return lerr(l, n, -EINVAL, "missing input");
    for (int k = 1; k < n->n_out; k++)
        if (n->out[k] >= 0 && ir_tensor_used(l->g, n->out[k]))
            return lerr(l, n, -EINVAL, "only the first output is supported");
    const struct ir_tensor *y = &l->g->tensors[n->out[0]];
    if (engine_shape_numel(&x->shape) != engine_shape_numel(&y->shape) || x->dtype != y->dtype)
        return lerr(l, n, -EINVAL, "output size differs from the input's");
    int64_t src = plain_operand(l, n, n->in[0]);
    if (src < 0)
        return (int)src;
    if (l->b.tensors[src].storage == PLAN_ST_CONST) {
        struct ir_tensor c = *y;
        size_t nb = (size_t)l->b.tensors[src].nbytes;
        c.data = malloc(nb + 1); /* the weights buffer may move while the copy is added */
        if (c.data)
            memcpy(c.data, l->b.weights + l->b.tensors[src].offset, nb);
        int64_t t = c.data ? add_plan_tensor(l, &c, PLAN_ST_CONST) : -ENOMEM;
        free(c.data);
        if (t < 0)
            return lerr(l, n, (int)t, "cannot store constant");
        l->tmap[n->out[0]] = (int32_t)t;
        return 0;
    }
    int64_t out = output_of(l, n, 0);
    if (out < 0)
        return (int)out;
    l->b.tensors[out].offset = (uint64_t)src; /* alias root, resolved by the memory plan */
    l->b.tensors[out].flags |= PLAN_TF_ALIAS;
    return 0;
}

/* ---- plain-C kernel nodes ---- */

/* Appends int32 kernel parameters to the index section. */
static int set_params(struct lower *l, struct plan_node *pn, const int64_t *vals, uint32_t count)
{
    pn->params_first = l->b.n_index;
    pn->n_params = count;
    for (uint32_t i = 0; i < count; i++)
        if (vals[i] < INT32_MIN || vals[i] > INT32_MAX ||
            plan_add_index(&l->b, (int32_t)vals[i]) < 0)
            return -EINVAL;
    return 0;
}

static int emit_kernel(struct lower *l, const struct ir_node *n, uint32_t kind, const int64_t *ins,
                       uint32_t n_in, const int64_t *params, uint32_t n_params, int64_t axis)
{
    struct plan_node pn = node_init(l, n, PLAN_OP_KERNEL);
    pn.alg = kind;
    pn.axis = axis;
    int64_t out = output_of(l, n, 0);
    if (out < 0)
        return (int)out;
    pn.out = (uint32_t)out;
    if (set_inputs(l, &pn, ins, n_in) || set_params(l, &pn, params, n_params))
        return lerr(l, n, -EINVAL, "kernel parameters out of range");
    if (n->n_post)
        return lerr(l, n, -EINVAL, "fused post-ops on a data-movement op");
    return emit(l, n, &pn, -1, NULL);
}

/* ---- math kernels (kernels_math.c) ---- */

static int const_ints(struct lower *l, const struct ir_node *n, int i, int64_t *out, int *count);

/* Emits a math kernel from plain operands ins into plan tensor out. */
static int emit_math_to(struct lower *l, const struct ir_node *n, int64_t out, uint32_t kind,
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
        return lerr(l, n, -EINVAL, "fused post-ops on a math kernel");
    if (set_inputs(l, &pn, ins, n_in) || set_params(l, &pn, params, n_params))
        return lerr(l, n, -EINVAL, "kernel parameters out of range");
    return emit(l, n, &pn, -1, NULL);
}

/* The same, writing output k of n. */
static int emit_math(struct lower *l, const struct ir_node *n, int k, uint32_t kind,
                     const int64_t *ins, uint32_t n_in, const int64_t *params, uint32_t n_params,
                     int64_t axis, float alpha, float beta)
{
    int64_t out = output_of(l, n, k);
    if (out < 0)
        return (int)out;
    return emit_math_to(l, n, out, kind, ins, n_in, params, n_params, axis, alpha, beta);
}

/* Plain operands of n's first inputs, up to count or the first absent one; returns how many. */
static int math_operands(struct lower *l, const struct ir_node *n, int count, int64_t *ins)
{
    int k = 0;
    for (; k < count && k < n->n_in && n->in[k] >= 0; k++)
        if ((ins[k] = plain_operand(l, n, n->in[k])) < 0)
            return (int)ins[k];
    return k ? k : lerr(l, n, -EINVAL, "missing input");
}

static int lower_unary_math(struct lower *l, const struct ir_node *n)
{
    int64_t op = k_unop_find(n->op), ins[1];
    float alpha, beta;
    k_unary_attrs(n, &alpha, &beta);
    int rc = math_operands(l, n, 1, ins);
    return rc < 0 ? rc : emit_math(l, n, 0, PLAN_K_UNARY, ins, 1, &op, 1, 0, alpha, beta);
}

/* The reduce flag per axis: shape inference's reduce_mask, or for graphs that skipped it, the
 * axes attribute or constant input (none: every axis unless noop_with_empty_axes). */
static int reduce_flags(struct lower *l, const struct ir_node *n, int r, int64_t *flags)
{
    const struct ir_attr *a = ir_attr_get(n, "reduce_mask");
    int64_t axes[ENGINE_MAX_RANK];
    int na = 0;
    if (a && a->type == IR_ATTR_INTS && a->n == (size_t)r) {
        memcpy(flags, a->ints, a->n * sizeof(int64_t));
        return 0;
    }
    a = ir_attr_get(n, "axes");
    if (a && (a->type != IR_ATTR_INTS || a->n > ENGINE_MAX_RANK))
        return lerr(l, n, -EINVAL, "bad axes");
    if (a) {
        na = (int)a->n;
        memcpy(axes, a->ints, a->n * sizeof(int64_t));
    } else if (const_ints(l, n, 1, axes, &na)) {
        return -EINVAL;
    }
    for (int i = 0; i < r; i++)
        flags[i] = na == 0 && !ir_attr_int(n, "noop_with_empty_axes", 0);
    for (int j = 0; j < na; j++) {
        int64_t ax = axes[j] < 0 ? axes[j] + r : axes[j];
        if (ax < 0 || ax >= r)
            return lerr(l, n, -EINVAL, "axis out of range");
        flags[ax] = 1;
    }
    return 0;
}

static int lower_reduce(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *x = ir_in(l, n, 0);
    int64_t params[ENGINE_MAX_RANK + 1], ins[1];
    if (!x)
        return lerr(l, n, -EINVAL, "missing input");
    params[0] = k_redop_find(n->op);
    int rc = reduce_flags(l, n, x->shape.rank, params + 1);
    if (!rc)
        rc = math_operands(l, n, 1, ins);
    return rc < 0 ? rc
                  : emit_math(l, n, 0, PLAN_K_REDUCE, ins, 1, params, (uint32_t)x->shape.rank + 1,
                              0, 0, 0);
}

static int lower_argext(struct lower *l, const struct ir_node *n)
{
    int64_t params[2] = {strcmp(n->op, "ArgMin") == 0, ir_attr_int(n, "select_last_index", 0) != 0};
    int64_t ins[1];
    int rc = math_operands(l, n, 1, ins);
    return rc < 0 ? rc
                  : emit_math(l, n, 0, PLAN_K_ARGEXT, ins, 1, params, 2, ir_attr_int(n, "axis", 0),
                              0, 0);
}

static int lower_softmax_f(struct lower *l, const struct ir_node *n)
{
    int64_t params[2] = {strcmp(n->op, "Hardmax") == 0 ? K_SM_HARDMAX : K_SM_LOGSOFTMAX,
                         l->g->opset < 13};
    int64_t ins[1];
    int rc = math_operands(l, n, 1, ins);
    return rc < 0 ? rc
                  : emit_math(l, n, 0, PLAN_K_SOFTMAX_F, ins, 1, params, 2,
                              ir_attr_int(n, "axis", 0), 0, 0);
}

static int lower_logic(struct lower *l, const struct ir_node *n)
{
    int64_t op = k_logop_of(n), ins[2];
    int rc = math_operands(l, n, 2, ins);
    if (rc >= 0 && rc != 2)
        return lerr(l, n, -EINVAL, "needs two inputs");
    return rc < 0 ? rc : emit_math(l, n, 0, PLAN_K_LOGIC, ins, 2, &op, 1, 0, 0, 0);
}

static int lower_binary(struct lower *l, const struct ir_node *n);

/* Sum, Mean, Max, Min over 1 to 8 inputs; two-input Max/Min stay binary (oneDNN when it can). */
static int lower_variadic(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *a = ir_in(l, n, 0);
    if (n->n_in == 2 && (strcmp(n->op, "Max") == 0 || strcmp(n->op, "Min") == 0) && a &&
        (a->dtype == ENGINE_F32 || a->dtype == ENGINE_I32 || a->dtype == ENGINE_I64))
        return lower_binary(l, n);
    int64_t op = k_varop_find(n->op), ins[8];
    if (n->n_in < 1 || n->n_in > 8)
        return lerr(l, n, -EINVAL, "takes 1 to 8 inputs here");
    int rc = math_operands(l, n, n->n_in, ins);
    if (rc >= 0 && rc != n->n_in)
        return lerr(l, n, -EINVAL, "an input is missing");
    return rc < 0 ? rc : emit_math(l, n, 0, PLAN_K_VARIADIC, ins, (uint32_t)rc, &op, 1, 0, 0, 0);
}

/* LayerNormalization with its Mean/InvStdDev outputs used: one C kernel per output. */
static int lower_layernorm_c(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *x = ir_in(l, n, 0);
    int64_t ins[3], axis = ir_attr_int(n, "axis", -1);
    axis += axis < 0 ? x->shape.rank : 0;
    if (ir_attr_int(n, "stash_type", 1) != 1)
        return lerr(l, n, -ENOTSUP, "unsupported attribute stash_type (only float)");
    int cnt = math_operands(l, n, 3, ins);
    for (int64_t k = 0; cnt > 0 && k < 3 && k < n->n_out; k++) {
        if (n->out[k] < 0 || (k > 0 && !ir_tensor_used(l->g, n->out[k])))
            continue;
        int rc = emit_math(l, n, (int)k, PLAN_K_LAYERNORM, ins, (uint32_t)cnt, &k, 1, axis,
                           ir_attr_float(n, "epsilon", 1e-5f), 0);
        if (rc)
            return rc;
    }
    return cnt < 0 ? cnt : 0;
}

/* Add, Sub, Mul, Div, Pow: int8/uint8 operands or a Pow exponent of another type than its base
 * run on the arithmetic kernel, everything else as before. */
static int lower_arith(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *a = ir_in(l, n, 0), *b = ir_in(l, n, 1);
    if (n->n_in != 2 || !a || !b ||
        (a->dtype == b->dtype && a->dtype != ENGINE_I8 && a->dtype != ENGINE_U8))
        return lower_binary(l, n);
    static const char *const ops[] = {
        [K_ADD] = "Add", [K_SUB] = "Sub", [K_MUL] = "Mul", [K_DIV] = "Div", [K_POW] = "Pow"};
    int64_t op = K_ADD, ins[2];
    while (op < K_POW && strcmp(ops[op], n->op) != 0)
        op++;
    int rc = math_operands(l, n, 2, ins);
    return rc < 0 ? rc : emit_math(l, n, 0, PLAN_K_ARITH, ins, 2, &op, 1, 0, 0, 0);
}

/* TopK: one kernel per output present (values, indices); k is the outputs' size along axis. */
static int lower_topk(struct lower *l, const struct ir_node *n)
{
    int64_t ins[1], axis = ir_attr_int(n, "axis", -1);
    if (!ir_in(l, n, 0) || axis < 0)
        return lerr(l, n, -EINVAL, "axis was not resolved by shape inference");
    int rc = math_operands(l, n, 1, ins);
    for (int64_t k = 0; rc >= 0 && k < 2 && k < n->n_out; k++) {
        int64_t params[2] = {ir_attr_int(n, "largest", 1) != 0, k};
        if (n->out[k] >= 0)
            rc = emit_math(l, n, (int)k, PLAN_K_TOPK, ins, 1, params, 2, axis, 0, 0);
    }
    return rc < 0 ? rc : 0;
}

static int lower_quant(struct lower *l, const struct ir_node *n)
{
    int64_t ins[3], deq = strcmp(n->op, "DequantizeLinear") == 0;
    int cnt = math_operands(l, n, 3, ins);
    return cnt < 0 ? cnt
                   : emit_math(l, n, 0, PLAN_K_QUANTIZE, ins, (uint32_t)cnt, &deq, 1,
                               ir_attr_int(n, "axis", 0), 0, 0);
}

/* DynamicQuantizeLinear: one kernel per output present. */
static int lower_dynquant(struct lower *l, const struct ir_node *n)
{
    int64_t ins[1];
    int rc = math_operands(l, n, 1, ins);
    for (int64_t k = 0; rc >= 0 && k < 3 && k < n->n_out; k++)
        if (n->out[k] >= 0)
            rc = emit_math(l, n, (int)k, PLAN_K_DYNQUANT, ins, 1, &k, 1, 0, 0, 0);
    return rc < 0 ? rc : 0;
}

/* MatMulInteger: A, B and the zero points present; QLinearMatMul: its eight inputs. */
static int lower_qmatmul(struct lower *l, const struct ir_node *n)
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

/* ConvInteger / QLinearConv: the window shape inference normalised, inputs as present. */
static int lower_qconv(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *x = ir_in(l, n, 0);
    int ql = strcmp(n->op, "QLinearConv") == 0;
    int sp = x ? x->shape.rank - 2 : 0;
    int64_t ins[8], params[5 + 3 * PLAN_MAX_SPATIAL] = {ql, 0, 0, ir_attr_int(n, "group", 1), sp};
    uint32_t cnt = 0;
    if (sp < 1 || sp > PLAN_MAX_SPATIAL || get_ints(n, "strides", params + 5, sp, 1) ||
        get_ints(n, "dilations", params + 5 + sp, sp, 1))
        return lerr(l, n, -EINVAL, "the window was not resolved by shape inference");
    int64_t pads[2 * PLAN_MAX_SPATIAL];
    if (get_ints(n, "pads", pads, 2 * sp, 0))
        return lerr(l, n, -EINVAL, "pads were not resolved by shape inference");
    memcpy(params + 5 + 2 * sp, pads, (size_t)sp * sizeof(int64_t));
    for (int i = 0; i < n->n_in && i < 8; i++) {
        if (n->in[i] < 0)
            continue;
        if ((ins[cnt++] = plain_operand(l, n, n->in[i])) < 0)
            return (int)ins[cnt - 1];
        if (!ql && i >= 2)
            params[i - 1] = 1;
    }
    return emit_math(l, n, 0, PLAN_K_QCONV, ins, cnt, params, 5 + 3 * (uint32_t)sp, 0, 0, 0);
}

static int lower_einsum(struct lower *l, const struct ir_node *n)
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

/* STFT: the signal and the window, if any (the step and length were resolved as attributes). */
static int lower_stft(struct lower *l, const struct ir_node *n)
{
    int64_t ins[2], params[3] = {ir_attr_int(n, "frame_step", 0), ir_attr_int(n, "frame_length", 0),
                                 ir_attr_int(n, "onesided", 1) != 0};
    uint32_t cnt = 1;
    if ((ins[0] = plain_operand(l, n, n->in[0])) < 0)
        return (int)ins[0];
    if (n->n_in > 2 && n->in[2] >= 0 && (ins[cnt++] = plain_operand(l, n, n->in[2])) < 0)
        return (int)ins[1];
    return emit_math(l, n, 0, PLAN_K_STFT, ins, cnt, params, 3, 0, 0, 0);
}

static int lower_det(struct lower *l, const struct ir_node *n)
{
    int64_t ins[1];
    int rc = math_operands(l, n, 1, ins);
    return rc < 0 ? rc : emit_math(l, n, 0, PLAN_K_DET, ins, 1, NULL, 0, 0, 0, 0);
}

static int lower_dft(struct lower *l, const struct ir_node *n)
{
    int64_t ins[1],
        params[2] = {ir_attr_int(n, "inverse", 0) != 0, ir_attr_int(n, "onesided", 0) != 0};
    int rc = math_operands(l, n, 1, ins);
    return rc < 0
               ? rc
               : emit_math(l, n, 0, PLAN_K_DFT, ins, 1, params, 2, ir_attr_int(n, "axis", 1), 0, 0);
}

static int lower_mvn(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *x = ir_in(l, n, 0);
    const struct ir_attr *a = ir_attr_get(n, "reduce_mask");
    int64_t ins[1];
    if (!x || !a || a->type != IR_ATTR_INTS || a->n != (size_t)x->shape.rank)
        return lerr(l, n, -EINVAL, "axes were not resolved by shape inference");
    int rc = math_operands(l, n, 1, ins);
    return rc < 0 ? rc : emit_math(l, n, 0, PLAN_K_MVN, ins, 1, a->ints, (uint32_t)a->n, 0, 0, 0);
}

/* Clip: oneDNN eltwise when float32 with constant bounds, else a C kernel reading the bounds
 * that are present (possibly computed at run time). */
static int lower_clip(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *x = ir_in(l, n, 0);
    enum ir_act act;
    float a, b;
    if (x && x->dtype == ENGINE_F32 && ir_node_act(l->g, n, &act, &a, &b))
        return lower_eltwise(l, n);
    int64_t ins[3], params[2] = {0, 0};
    uint32_t cnt = 1;
    if (!x || (ins[0] = plain_operand(l, n, n->in[0])) < 0)
        return lerr(l, n, -EINVAL, "missing input");
    for (int i = 1; i <= 2; i++) {
        if (i >= n->n_in || n->in[i] < 0)
            continue;
        if ((ins[cnt++] = plain_operand(l, n, n->in[i])) < 0)
            return (int)ins[cnt - 1];
        params[i - 1] = 1;
    }
    return emit_math(l, n, 0, PLAN_K_CLIP, ins, cnt, params, 2, 0, 0, 0);
}

static int lower_instnorm(struct lower *l, const struct ir_node *n)
{
    int64_t ins[3];
    int cnt = math_operands(l, n, 3, ins);
    if (cnt >= 0 && cnt != 3)
        return lerr(l, n, -EINVAL, "needs input, scale and B");
    return cnt < 0 ? cnt
                   : emit_math(l, n, 0, PLAN_K_INSTNORM, ins, 3, NULL, 0, 0,
                               ir_attr_float(n, "epsilon", 1e-5f), 0);
}

/* reduction, has_ignore, ignore_index of a loss op. */
static void loss_params(const struct ir_node *n, int64_t *params)
{
    const char *red = ir_attr_str(n, "reduction", "mean");
    params[0] = strcmp(red, "none") == 0  ? K_LOSS_NONE
                : strcmp(red, "sum") == 0 ? K_LOSS_SUM
                                          : K_LOSS_MEAN;
    params[1] = ir_attr_get(n, "ignore_index") != NULL;
    params[2] = ir_attr_int(n, "ignore_index", 0);
}

static int lower_nll(struct lower *l, const struct ir_node *n)
{
    int64_t params[3], ins[3];
    loss_params(n, params);
    int cnt = math_operands(l, n, 3, ins);
    return cnt < 0 ? cnt : emit_math(l, n, 0, PLAN_K_NLL, ins, (uint32_t)cnt, params, 3, 0, 0, 0);
}

/* SoftmaxCrossEntropyLoss = NegativeLogLikelihoodLoss of LogSoftmax over axis 1; the
 * log-probabilities go to the log_prob output when there is one, else to a scratch tensor. */
static int lower_sce(struct lower *l, const struct ir_node *n)
{
    int64_t params[3], ins[3], sm[2] = {K_SM_LOGSOFTMAX, 0};
    loss_params(n, params);
    int cnt = math_operands(l, n, 3, ins);
    if (cnt < 2)
        return cnt < 0 ? cnt : lerr(l, n, -EINVAL, "needs scores and labels");
    int64_t logp;
    if (n->n_out > 1 && n->out[1] >= 0) {
        logp = output_of(l, n, 1);
    } else {
        struct plan_tensor t = l->b.tensors[ins[0]];
        t.storage = PLAN_ST_ARENA;
        t.offset = 0;
        t.flags = 0;
        logp = plan_add_tensor(&l->b, &t);
    }
    if (logp < 0)
        return lerr(l, n, (int)logp, "cannot add the log-probabilities");
    int rc = emit_math_to(l, n, logp, PLAN_K_SOFTMAX_F, ins, 1, sm, 2, 1, 0, 0);
    ins[0] = logp;
    return rc ? rc : emit_math(l, n, 0, PLAN_K_NLL, ins, (uint32_t)cnt, params, 3, 0, 0, 0);
}

static int lower_transpose(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *x = ir_in(l, n, 0);
    if (!x)
        return lerr(l, n, -EINVAL, "missing input");
    int r = x->shape.rank;
    int64_t perm[ENGINE_MAX_RANK];
    for (int i = 0; i < r; i++)
        perm[i] = r - 1 - i;
    if (ir_attr_get(n, "perm") && get_ints(n, "perm", perm, r, 0))
        return lerr(l, n, -EINVAL, "perm does not match the input rank");
    int64_t in[1] = {plain_operand(l, n, n->in[0])};
    if (in[0] < 0)
        return (int)in[0];
    return emit_kernel(l, n, PLAN_K_TRANSPOSE, in, 1, perm, (uint32_t)r, 0);
}

/* Integer values of an optional constant input (int32 or int64); count them in *n. */
static int const_ints(struct lower *l, const struct ir_node *n, int i, int64_t *out, int *count)
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

/* Slice before opset 10 (starts/ends/axes attributes): the per-axis starts and steps shape
 * inference normalised, as constant folding uses them. */
static int lower_slice_attrs(struct lower *l, const struct ir_node *n, const struct ir_tensor *x)
{
    const struct ir_attr *st = ir_attr_get(n, "norm_starts"), *sp = ir_attr_get(n, "norm_steps");
    int r = x->shape.rank;
    int64_t params[2 * ENGINE_MAX_RANK], in[1];
    if (!st || !sp || st->type != IR_ATTR_INTS || sp->type != IR_ATTR_INTS || st->n != (size_t)r ||
        sp->n != (size_t)r)
        return lerr(l, n, -EINVAL, "slice was not resolved by shape inference");
    memcpy(params, st->ints, (size_t)r * sizeof(int64_t));
    memcpy(params + r, sp->ints, (size_t)r * sizeof(int64_t));
    if ((in[0] = plain_operand(l, n, n->in[0])) < 0)
        return (int)in[0];
    return emit_kernel(l, n, PLAN_K_SLICE, in, 1, params, (uint32_t)(2 * r), 0);
}

static int lower_slice(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *x = ir_in(l, n, 0);
    if (!x)
        return lerr(l, n, -EINVAL, "missing input");
    if (l->g->opset < 10)
        return lower_slice_attrs(l, n, x);
    int r = x->shape.rank, ns, ne, na, nst;
    int64_t starts[ENGINE_MAX_RANK], ends[ENGINE_MAX_RANK], axes[ENGINE_MAX_RANK];
    int64_t steps[ENGINE_MAX_RANK], params[2 * ENGINE_MAX_RANK];
    if (const_ints(l, n, 1, starts, &ns) || const_ints(l, n, 2, ends, &ne) ||
        const_ints(l, n, 3, axes, &na) || const_ints(l, n, 4, steps, &nst))
        return -EINVAL;
    if (ns != ne || (na && na != ns) || (nst && nst != ns))
        return lerr(l, n, -EINVAL, "starts, ends, axes and steps differ in length");
    for (int i = 0; i < r; i++) {
        params[i] = 0;
        params[r + i] = 1;
    }
    for (int j = 0; j < ns; j++) {
        int64_t a = na ? axes[j] : j, step = nst ? steps[j] : 1;
        a = a < 0 ? a + r : a;
        if (a < 0 || a >= r || step == 0)
            return lerr(l, n, -EINVAL, "slice axis or step out of range");
        int64_t dim = x->shape.dims[a], st = starts[j] < 0 ? starts[j] + dim : starts[j];
        st = st < 0 ? 0 : st;
        st = step > 0 ? (st > dim ? dim : st) : (st > dim - 1 ? dim - 1 : st);
        params[a] = st;
        params[r + a] = step;
    }
    int64_t in[1] = {plain_operand(l, n, n->in[0])};
    if (in[0] < 0)
        return (int)in[0];
    return emit_kernel(l, n, PLAN_K_SLICE, in, 1, params, (uint32_t)(2 * r), 0);
}

static int lower_gather(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *x = ir_in(l, n, 0), *idx = ir_in(l, n, 1);
    if (!x || !idx)
        return lerr(l, n, -EINVAL, "missing input");
    int64_t axis = ir_attr_int(n, "axis", 0);
    axis = axis < 0 ? axis + x->shape.rank : axis;
    int64_t ins[2] = {plain_operand(l, n, n->in[0]), 0};
    if (ins[0] < 0)
        return (int)ins[0];
    if (idx->data && idx->dtype == ENGINE_I32) {
        int64_t k = engine_shape_numel(&idx->shape);
        struct ir_tensor wide = *idx;
        wide.dtype = ENGINE_I64;
        wide.data = malloc((size_t)k * sizeof(int64_t) + 1);
        for (int64_t j = 0; wide.data && j < k; j++)
            ((int64_t *)wide.data)[j] = ((const int32_t *)idx->data)[j];
        ins[1] = wide.data ? add_plan_tensor(l, &wide, PLAN_ST_CONST) : -ENOMEM;
        free(wide.data);
    } else if (idx->dtype == ENGINE_I64) {
        ins[1] = plain_operand(l, n, n->in[1]);
    } else {
        return lerr(l, n, -EINVAL, "indices must be int32 constants or int64");
    }
    if (ins[1] < 0)
        return lerr(l, n, (int)ins[1], "cannot store the indices");
    return emit_kernel(l, n, PLAN_K_GATHER, ins, 2, NULL, 0, axis);
}

static int lower_binary_kernel(struct lower *l, const struct ir_node *n)
{
    static const struct {
        const char *op;
        enum k_binop k;
    } map[] = {{"Add", K_ADD},   {"Sub", K_SUB},        {"Mul", K_MUL}, {"Div", K_DIV},
               {"Pow", K_POW},   {"Max", K_MAX},        {"Min", K_MIN}, {"Equal", K_EQUAL},
               {"Less", K_LESS}, {"Greater", K_GREATER}};
    size_t i = 0;
    while (i < ARRAY_LEN(map) && strcmp(map[i].op, n->op) != 0)
        i++;
    const struct ir_tensor *a = ir_in(l, n, 0), *b = ir_in(l, n, 1);
    if (i == ARRAY_LEN(map) || !a || !b || a->dtype != b->dtype || n->n_post)
        return lerr(l, n, -EINVAL, "unsupported operand types for a C binary kernel");
    int64_t ins[2] = {plain_operand(l, n, n->in[0]), plain_operand(l, n, n->in[1])};
    int64_t op = map[i].k;
    if (ins[0] < 0 || ins[1] < 0)
        return -EINVAL;
    return emit_kernel(l, n, PLAN_K_BINARY, ins, 2, &op, 1, 0);
}

static int lower_cast(struct lower *l, const struct ir_node *n)
{
    int64_t in[1] = {plain_operand(l, n, n->in[0])};
    if (in[0] < 0)
        return (int)in[0];
    return emit_kernel(l, n, PLAN_K_CAST, in, 1, NULL, 0, 0);
}

/* Where(cond, a, b): a plain-C select with numpy broadcasting. */
static int lower_where(struct lower *l, const struct ir_node *n)
{
    int64_t in[3];
    for (int i = 0; i < 3; i++) {
        in[i] = i < n->n_in ? plain_operand(l, n, n->in[i]) : -EINVAL;
        if (in[i] < 0)
            return lerr(l, n, -EINVAL, "Where needs three inputs");
    }
    return emit_kernel(l, n, PLAN_K_WHERE, in, 3, NULL, 0, 0);
}

/* Pad after shape inference: explicit "pads" (begin..., end...), "value" and "mode". */
static int lower_pad(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *x = ir_in(l, n, 0);
    if (!x)
        return lerr(l, n, -EINVAL, "missing input");
    int r = x->shape.rank;
    int64_t pads[2 * ENGINE_MAX_RANK], params[ENGINE_MAX_RANK + 1];
    if (get_ints(n, "pads", pads, 2 * r, 0))
        return lerr(l, n, -EINVAL, "pads were not resolved by shape inference");
    const char *mode = ir_attr_str(n, "mode", "constant");
    memcpy(params, pads, (size_t)r * sizeof(int64_t));
    params[r] = strcmp(mode, "reflect") == 0 ? K_PAD_REFLECT
                : strcmp(mode, "edge") == 0  ? K_PAD_EDGE
                                             : K_PAD_CONSTANT;
    float value = ir_attr_float(n, "value", 0.0f);
    struct ir_tensor vt = {.name = "pad_value",
                           .dtype = x->dtype,
                           .shape = {0, {0}},
                           .shape_known = 1,
                           .data = calloc(1, 8)};
    if (!vt.data || k_cast(&value, ENGINE_F32, vt.data, x->dtype, 1)) {
        free(vt.data);
        return lerr(l, n, -EINVAL, "unsupported pad value type");
    }
    int64_t ins[2] = {plain_operand(l, n, n->in[0]), add_plan_tensor(l, &vt, PLAN_ST_CONST)};
    free(vt.data);
    if (ins[0] < 0 || ins[1] < 0)
        return lerr(l, n, -EINVAL, "bad operands");
    return emit_kernel(l, n, PLAN_K_PAD, ins, 2, params, (uint32_t)r + 1, 0);
}

/* ---- data movement (kernels_move.c) ---- */

/* Plain operands for inputs 0..count-1 of n. */
static int plain_inputs(struct lower *l, const struct ir_node *n, int count, int64_t *ins)
{
    for (int i = 0; i < count; i++) {
        ins[i] = i < n->n_in && n->in[i] >= 0 ? plain_operand(l, n, n->in[i]) : -EINVAL;
        if (ins[i] < 0)
            return lerr(l, n, -EINVAL, "missing or unusable input");
    }
    return 0;
}

static int lower_gather_elements(struct lower *l, const struct ir_node *n)
{
    int64_t ins[2];
    int rc = plain_inputs(l, n, 2, ins);
    return rc ? rc
              : emit_kernel(l, n, PLAN_K_GATHER_ELEMENTS, ins, 2, NULL, 0,
                            ir_attr_int(n, "axis", 0));
}

static int lower_scatter_elements(struct lower *l, const struct ir_node *n)
{
    int64_t ins[3], red = ir_attr_int(n, "reduction_code", 0);
    int rc = plain_inputs(l, n, 3, ins);
    return rc ? rc
              : emit_kernel(l, n, PLAN_K_SCATTER_ELEMENTS, ins, 3, &red, 1,
                            ir_attr_int(n, "axis", 0));
}

static int lower_gather_nd(struct lower *l, const struct ir_node *n)
{
    int64_t ins[2], b = ir_attr_int(n, "batch_dims", 0);
    int rc = plain_inputs(l, n, 2, ins);
    return rc ? rc : emit_kernel(l, n, PLAN_K_GATHER_ND, ins, 2, &b, 1, 0);
}

static int lower_scatter_nd(struct lower *l, const struct ir_node *n)
{
    int64_t ins[3], red = ir_attr_int(n, "reduction_code", 0);
    int rc = plain_inputs(l, n, 3, ins);
    return rc ? rc : emit_kernel(l, n, PLAN_K_SCATTER_ND, ins, 3, &red, 1, 0);
}

/* Trilu: k is an operand (a constant 0 when absent), so a run-time k works too. */
static int lower_trilu(struct lower *l, const struct ir_node *n)
{
    int64_t ins[2], upper = ir_attr_int(n, "upper", 1);
    int rc = plain_inputs(l, n, 1, ins);
    if (rc)
        return rc;
    if (n->n_in > 1 && n->in[1] >= 0) {
        ins[1] = plain_operand(l, n, n->in[1]);
    } else {
        int64_t zero = 0;
        struct ir_tensor kt = {.name = "trilu_k",
                               .dtype = ENGINE_I64,
                               .shape = {0, {0}},
                               .shape_known = 1,
                               .data = &zero};
        ins[1] = add_plan_tensor(l, &kt, PLAN_ST_CONST);
    }
    if (ins[1] < 0)
        return lerr(l, n, -EINVAL, "cannot store k");
    return emit_kernel(l, n, PLAN_K_TRILU, ins, 2, &upper, 1, 0);
}

static int lower_depth_space(struct lower *l, const struct ir_node *n)
{
    int64_t ins[1], p[2] = {ir_attr_int(n, "blocksize", 1), ir_attr_int(n, "depth_mode", 0)};
    int rc = plain_inputs(l, n, 1, ins);
    return rc ? rc : emit_kernel(l, n, PLAN_K_DEPTH_SPACE, ins, 1, p, 2, 0);
}

static int lower_tile(struct lower *l, const struct ir_node *n)
{
    int64_t ins[1];
    int rc = plain_inputs(l, n, 1, ins);
    return rc ? rc : emit_kernel(l, n, PLAN_K_TILE, ins, 1, NULL, 0, 0);
}

/* Split: one slice kernel per output. */
static int lower_split(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *x = ir_in(l, n, 0);
    const struct ir_attr *a = ir_attr_get(n, "split");
    int64_t axis = ir_attr_int(n, "axis", 0), ins[1], params[2 * ENGINE_MAX_RANK];
    if (!x || !a || a->n != (size_t)n->n_out || axis < 0 || axis >= x->shape.rank)
        return lerr(l, n, -EINVAL, "split was not resolved by shape inference");
    int r = x->shape.rank, rc = plain_inputs(l, n, 1, ins);
    for (int i = 0; i < r; i++)
        params[i] = 0, params[r + i] = 1;
    for (int k = 0; k < n->n_out && !rc; k++) {
        if (n->out[k] >= 0) {
            struct plan_node pn = node_init(l, n, PLAN_OP_KERNEL);
            pn.alg = PLAN_K_SLICE;
            int64_t out = output_of(l, n, k);
            if (out < 0)
                return (int)out;
            pn.out = (uint32_t)out;
            if (set_inputs(l, &pn, ins, 1) || set_params(l, &pn, params, (uint32_t)(2 * r)))
                return lerr(l, n, -EINVAL, "kernel parameters out of range");
            rc = emit(l, n, &pn, -1, NULL);
        }
        params[axis] += a->ints[k];
    }
    return rc;
}

/* ConvTranspose as a plain-C kernel; weights may be constant or computed. */
static int lower_conv_transpose(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *x = ir_in(l, n, 0);
    int has_bias = n->n_in > 2 && n->in[2] >= 0, sp = x ? x->shape.rank - 2 : 0;
    int64_t ins[3], p[2 + 3 * PLAN_MAX_SPATIAL], pads[2 * PLAN_MAX_SPATIAL];
    if (!x || sp < 1 || sp > PLAN_MAX_SPATIAL || get_ints(n, "strides", p + 2, sp, 1) ||
        get_ints(n, "dilations", p + 2 + sp, sp, 1) || get_ints(n, "pads", pads, 2 * sp, 0))
        return lerr(l, n, -EINVAL, "window was not resolved by shape inference");
    p[0] = ir_attr_int(n, "group", 1);
    p[1] = sp;
    memcpy(p + 2 + 2 * sp, pads, (size_t)sp * sizeof(int64_t));
    int rc = plain_inputs(l, n, 2 + has_bias, ins);
    return rc ? rc
              : emit_kernel(l, n, PLAN_K_CONV_TRANSPOSE, ins, (uint32_t)(2 + has_bias), p,
                            (uint32_t)(2 + 3 * sp), 0);
}

static int lower_grid_sample(struct lower *l, const struct ir_node *n)
{
    int64_t ins[2], p[3] = {ir_attr_int(n, "grid_mode", 0), ir_attr_int(n, "grid_pad", 0),
                            ir_attr_int(n, "align_corners", 0)};
    int rc = plain_inputs(l, n, 2, ins);
    return rc ? rc : emit_kernel(l, n, PLAN_K_GRID_SAMPLE, ins, 2, p, 3, 0);
}

static int lower_reverse_sequence(struct lower *l, const struct ir_node *n)
{
    int64_t ins[2], b = ir_attr_int(n, "batch_axis", 1);
    int rc = plain_inputs(l, n, 2, ins);
    return rc ? rc : emit_kernel(l, n, PLAN_K_REVERSE_SEQ, ins, 2, &b, 1, 0);
}

static int lower_max_unpool(struct lower *l, const struct ir_node *n)
{
    int64_t ins[2];
    int rc = plain_inputs(l, n, 2, ins);
    return rc ? rc : emit_kernel(l, n, PLAN_K_MAX_UNPOOL, ins, 2, NULL, 0, 0);
}

static int lower_cumsum(struct lower *l, const struct ir_node *n)
{
    int64_t ins[2], p[2] = {ir_attr_int(n, "exclusive", 0), ir_attr_int(n, "reverse", 0)};
    int rc = plain_inputs(l, n, 2, ins);
    return rc ? rc : emit_kernel(l, n, PLAN_K_CUMSUM, ins, 2, p, 2, 0);
}

/* RNN/GRU/LSTM: one kernel node per present output (each runs the recurrence). */
static int lower_rnn(struct lower *l, const struct ir_node *n)
{
    int64_t ins[8], p[7] = {ir_attr_int(n, "rnn_kind", 0),
                            ir_attr_int(n, "rnn_dir", 0),
                            ir_attr_int(n, "layout", 0),
                            ir_attr_int(n, "linear_before_reset", 0),
                            ir_attr_int(n, "hidden_size", 1),
                            0,
                            0};
    int rc = plain_inputs(l, n, 3, ins), k = 3;
    for (int i = 3; !rc && i < n->n_in && i < 8; i++) {
        if (n->in[i] < 0)
            continue;
        p[6] |= 1 << (i - 3);
        ins[k] = plain_operand(l, n, n->in[i]);
        if (ins[k++] < 0)
            rc = lerr(l, n, -EINVAL, "unusable input");
    }
    for (int o = 0; !rc && o < n->n_out && o < 3; o++) {
        if (n->out[o] < 0)
            continue;
        p[5] = o;
        struct plan_node pn = node_init(l, n, PLAN_OP_KERNEL);
        pn.alg = PLAN_K_RNN;
        int64_t out = output_of(l, n, o);
        if (out < 0)
            return (int)out;
        pn.out = (uint32_t)out;
        if (set_inputs(l, &pn, ins, (uint32_t)k) || set_params(l, &pn, p, 7))
            return lerr(l, n, -EINVAL, "kernel parameters out of range");
        rc = emit(l, n, &pn, -1, NULL);
    }
    return rc;
}

static int lower_resize(struct lower *l, const struct ir_node *n)
{
    const struct ir_attr *a = ir_attr_get(n, "resize_params");
    int64_t ins[1];
    if (!a || a->type != IR_ATTR_INTS)
        return lerr(l, n, -EINVAL, "resize was not resolved by shape inference");
    int rc = plain_inputs(l, n, 1, ins);
    return rc ? rc : emit_kernel(l, n, PLAN_K_RESIZE, ins, 1, a->ints, (uint32_t)a->n, 0);
}

static int lower_roi_align(struct lower *l, const struct ir_node *n)
{
    int64_t ins[3],
        p[2] = {ir_attr_int(n, "sampling_ratio", 0), ir_attr_int(n, "roi_half_pixel", 1)};
    int rc = plain_inputs(l, n, 3, ins);
    if (rc)
        return rc;
    struct plan_node pn = node_init(l, n, PLAN_OP_KERNEL);
    pn.alg = PLAN_K_ROI_ALIGN;
    pn.alpha = ir_attr_float(n, "spatial_scale", 1.0f);
    int64_t out = output_of(l, n, 0);
    if (out < 0)
        return (int)out;
    pn.out = (uint32_t)out;
    if (set_inputs(l, &pn, ins, 3) || set_params(l, &pn, p, 2))
        return lerr(l, n, -EINVAL, "kernel parameters out of range");
    return emit(l, n, &pn, -1, NULL);
}

/* MaxPool with its Indices output: the plain-C kernel, one node per output. */
static int lower_maxpool_idx(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *x = ir_in(l, n, 0);
    int sp = x ? x->shape.rank - 2 : 0;
    int64_t p[3 + 4 * PLAN_MAX_SPATIAL], pads[2 * PLAN_MAX_SPATIAL], in[1];
    if (!x || sp < 1 || sp > PLAN_MAX_SPATIAL || get_ints(n, "kernel_shape", p + 3, sp, 1) ||
        get_ints(n, "strides", p + 3 + sp, sp, 1) || get_ints(n, "pads", pads, 2 * sp, 0) ||
        get_ints(n, "dilations", p + 3 + 3 * sp, sp, 1))
        return lerr(l, n, -EINVAL, "window was not resolved by shape inference");
    memcpy(p + 3 + 2 * sp, pads, (size_t)sp * sizeof(int64_t));
    p[1] = ir_attr_int(n, "storage_order", 0), p[2] = sp;
    if ((in[0] = plain_operand(l, n, n->in[0])) < 0)
        return (int)in[0];
    for (int o = 0; o < 2 && o < n->n_out; o++) {
        if (n->out[o] < 0)
            continue;
        p[0] = o;
        struct plan_node pn = node_init(l, n, PLAN_OP_KERNEL);
        pn.alg = PLAN_K_MAXPOOL_IDX;
        int64_t out = output_of(l, n, o);
        if (out < 0)
            return (int)out;
        pn.out = (uint32_t)out;
        if (set_inputs(l, &pn, in, 1) || set_params(l, &pn, p, (uint32_t)(3 + 4 * sp)))
            return lerr(l, n, -EINVAL, "kernel parameters out of range");
        int rc = emit(l, n, &pn, -1, NULL);
        if (rc)
            return rc;
    }
    return 0;
}

static int lower_onehot(struct lower *l, const struct ir_node *n)
{
    int64_t ins[2], p[2] = {ir_attr_int(n, "onehot_depth", 1), ir_attr_int(n, "axis", 0)};
    if (n->n_in != 3 || n->in[0] < 0 || n->in[2] < 0)
        return lerr(l, n, -EINVAL, "missing input");
    ins[0] = plain_operand(l, n, n->in[0]);
    ins[1] = plain_operand(l, n, n->in[2]);
    if (ins[0] < 0 || ins[1] < 0)
        return lerr(l, n, -EINVAL, "unusable input");
    return emit_kernel(l, n, PLAN_K_ONEHOT, ins, 2, p, 2, 0);
}

/* Compress: a gather with constant indices along the axis, or a GatherND of index tuples over
 * the flattened input. */
static int lower_compress(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *x = ir_in(l, n, 0);
    const struct ir_attr *a = ir_attr_get(n, "compress_idx");
    int64_t axis = ir_attr_int(n, "compress_axis", -1);
    if (!x || !a || a->type != IR_ATTR_INTS)
        return lerr(l, n, -EINVAL, "compress was not resolved by shape inference");
    int64_t count = (int64_t)a->n;
    int r = axis >= 0 ? 1 : x->shape.rank;
    struct ir_tensor it = {.name = "compress_indices", .dtype = ENGINE_I64, .shape_known = 1};
    it.shape = axis >= 0 ? (struct engine_shape){1, {count}} : (struct engine_shape){2, {count, r}};
    int64_t *v = malloc((size_t)(count * r + 1) * sizeof(int64_t));
    if (!v)
        return lerr(l, n, -ENOMEM, "out of memory");
    for (int64_t i = 0; i < count; i++) {
        int64_t flat = a->ints[i]; /* a flat position becomes the input's multi-index */
        for (int d = r - 1; d >= 0; d--) {
            int64_t dim = axis >= 0 ? INT64_MAX : x->shape.dims[d];
            v[i * r + d] = dim ? flat % dim : 0;
            flat = dim ? flat / dim : 0;
        }
    }
    it.data = v;
    int64_t ins[2] = {plain_operand(l, n, n->in[0]), add_plan_tensor(l, &it, PLAN_ST_CONST)};
    free(v);
    if (ins[0] < 0 || ins[1] < 0)
        return lerr(l, n, -EINVAL, "unusable input");
    if (axis >= 0)
        return emit_kernel(l, n, PLAN_K_GATHER, ins, 2, NULL, 0, axis);
    int64_t batch = 0;
    return emit_kernel(l, n, PLAN_K_GATHER_ND, ins, 2, &batch, 1, 0);
}

static int lower_lrn(struct lower *l, const struct ir_node *n)
{
    float bias = ir_attr_float(n, "bias", 1.0f);
    int32_t bits;
    memcpy(&bits, &bias, sizeof(bits));
    int64_t ins[1], p[2] = {ir_attr_int(n, "size", 1), bits};
    int rc = plain_inputs(l, n, 1, ins);
    if (rc)
        return rc;
    struct plan_node pn = node_init(l, n, PLAN_OP_KERNEL);
    pn.alg = PLAN_K_LRN;
    pn.alpha = ir_attr_float(n, "alpha", 0.0001f);
    pn.beta = ir_attr_float(n, "beta", 0.75f);
    int64_t out = output_of(l, n, 0);
    if (out < 0)
        return (int)out;
    pn.out = (uint32_t)out;
    if (set_inputs(l, &pn, ins, 1) || set_params(l, &pn, p, 2))
        return lerr(l, n, -EINVAL, "kernel parameters out of range");
    return emit(l, n, &pn, -1, NULL);
}

typedef int (*lower_fn)(struct lower *, const struct ir_node *);

static const struct {
    const char *op;
    lower_fn fn;
} lowerings[] = {
    {"Neg", lower_unary_math},
    {"Reciprocal", lower_unary_math},
    {"Cos", lower_unary_math},
    {"Sin", lower_unary_math},
    {"Tan", lower_unary_math},
    {"Sinh", lower_unary_math},
    {"Cosh", lower_unary_math},
    {"Asin", lower_unary_math},
    {"Acos", lower_unary_math},
    {"Atan", lower_unary_math},
    {"Asinh", lower_unary_math},
    {"Acosh", lower_unary_math},
    {"Atanh", lower_unary_math},
    {"Ceil", lower_unary_math},
    {"Floor", lower_unary_math},
    {"Round", lower_unary_math},
    {"Sign", lower_unary_math},
    {"Erf", lower_unary_math},
    {"Log", lower_unary_math},
    {"IsInf", lower_unary_math},
    {"IsNaN", lower_unary_math},
    {"ThresholdedRelu", lower_unary_math},
    {"Shrink", lower_unary_math},
    {"Celu", lower_unary_math},
    {"Softsign", lower_unary_math},
    {"Softplus", lower_unary_math},
    {"Not", lower_unary_math},
    {"Selu", lower_unary_math},
    {"ReduceSum", lower_reduce},
    {"ReduceMean", lower_reduce},
    {"ReduceMax", lower_reduce},
    {"ReduceMin", lower_reduce},
    {"ReduceProd", lower_reduce},
    {"ReduceL1", lower_reduce},
    {"ReduceL2", lower_reduce},
    {"ReduceSumSquare", lower_reduce},
    {"ReduceLogSum", lower_reduce},
    {"ReduceLogSumExp", lower_reduce},
    {"ArgMax", lower_argext},
    {"ArgMin", lower_argext},
    {"LogSoftmax", lower_softmax_f},
    {"Hardmax", lower_softmax_f},
    {"And", lower_logic},
    {"Or", lower_logic},
    {"Xor", lower_logic},
    {"Mod", lower_logic},
    {"LessOrEqual", lower_logic},
    {"GreaterOrEqual", lower_logic},
    {"PRelu", lower_logic},
    {"BitShift", lower_logic},
    {"Sum", lower_variadic},
    {"Mean", lower_variadic},
    {"NegativeLogLikelihoodLoss", lower_nll},
    {"SoftmaxCrossEntropyLoss", lower_sce},
    {"InstanceNormalization", lower_instnorm},
    {"TopK", lower_topk},
    {"QuantizeLinear", lower_quant},
    {"DequantizeLinear", lower_quant},
    {"DynamicQuantizeLinear", lower_dynquant},
    {"MatMulInteger", lower_qmatmul},
    {"QLinearMatMul", lower_qmatmul},
    {"Det", lower_det},
    {"MeanVarianceNormalization", lower_mvn},
    {"DFT", lower_dft},
    {"Einsum", lower_einsum},
    {"STFT", lower_stft},
    {"ConvInteger", lower_qconv},
    {"QLinearConv", lower_qconv},
    {"Conv", lower_conv},
    {"Gemm", lower_gemm},
    {"MatMul", lower_matmul},
    {"MaxPool", lower_pool},
    {"AveragePool", lower_pool},
    {"GlobalAveragePool", lower_pool},
    {"GlobalMaxPool", lower_pool},
    {"Relu", lower_eltwise},
    {"LeakyRelu", lower_eltwise},
    {"Clip", lower_clip},
    {"Sigmoid", lower_eltwise},
    {"Tanh", lower_eltwise},
    {"HardSigmoid", lower_eltwise},
    {"HardSwish", lower_eltwise},
    {"Elu", lower_eltwise},
    {"Exp", lower_eltwise},
    {"Sqrt", lower_eltwise},
    {"Abs", lower_eltwise},
    {"Add", lower_arith},
    {"Mul", lower_arith},
    {"Sub", lower_arith},
    {"Div", lower_arith},
    {"Max", lower_variadic},
    {"Min", lower_variadic},
    {"Softmax", lower_softmax},
    {"Concat", lower_concat},
    {"BatchNormalization", lower_batchnorm},
    {"LayerNormalization", lower_layernorm},
    {"Flatten", lower_alias},
    {"Reshape", lower_alias},
    {"Squeeze", lower_alias},
    {"Unsqueeze", lower_alias},
    {"Identity", lower_alias},
    {"Dropout", lower_alias},
    {"Transpose", lower_transpose},
    {"Slice", lower_slice},
    {"Gather", lower_gather},
    {"Pow", lower_arith},
    {"Equal", lower_binary},
    {"Less", lower_binary},
    {"Greater", lower_binary},
    {"Cast", lower_cast},
    {"Pad", lower_pad},
    {"Where", lower_where},
    {"GatherElements", lower_gather_elements},
    {"ScatterElements", lower_scatter_elements},
    {"Scatter", lower_scatter_elements},
    {"GatherND", lower_gather_nd},
    {"ScatterND", lower_scatter_nd},
    {"Trilu", lower_trilu},
    {"DepthToSpace", lower_depth_space},
    {"SpaceToDepth", lower_depth_space},
    {"Tile", lower_tile},
    {"Split", lower_split},
    {"ConvTranspose", lower_conv_transpose},
    {"LRN", lower_lrn},
    {"GridSample", lower_grid_sample},
    {"ReverseSequence", lower_reverse_sequence},
    {"MaxUnpool", lower_max_unpool},
    {"CastLike", lower_cast},
    {"CumSum", lower_cumsum},
    {"RNN", lower_rnn},
    {"Resize", lower_resize},
    {"OneHot", lower_onehot},
    {"Compress", lower_compress},
    {"RoiAlign", lower_roi_align},
    {"Upsample", lower_resize},
    {"GRU", lower_rnn},
    {"LSTM", lower_rnn},
};

static int lower_node(struct lower *l, const struct ir_node *n)
{
    for (size_t i = 0; i < ARRAY_LEN(lowerings); i++)
        if (strcmp(lowerings[i].op, n->op) == 0)
            return lowerings[i].fn(l, n);
    return lerr(l, n, -ENOTSUP, "unsupported op for the oneDNN backend");
}

/* ---- graph inputs/outputs, header ---- */

static int map_inputs(struct lower *l)
{
    for (int i = 0; i < l->g->n_inputs; i++) {
        int t = l->g->inputs[i];
        const struct ir_tensor *it = &l->g->tensors[t];
        if (!it->shape_known)
            return seterr(l->err, l->errlen, -EINVAL, "model %s: input %s has no concrete shape",
                          l->model, it->name);
        /* a pinned input is a constant that runs must match: its values sit in the weights */
        int64_t pt = add_plan_tensor(l, it, it->data ? PLAN_ST_CONST : PLAN_ST_ARENA);
        if (pt < 0)
            return seterr(l->err, l->errlen, (int)pt, "model %s: input %s: bad shape", l->model,
                          it->name);
        l->b.tensors[pt].flags |= PLAN_TF_INPUT | (it->data ? PLAN_TF_PINNED : 0);
        l->tmap[t] = (int32_t)pt;
    }
    return 0;
}

/* The plain arena tensor that holds graph output t: its own, a reordered copy, or for an output
 * that folding made constant, a copy of the constant made on every run. */
static int64_t output_buffer(struct lower *l, int t)
{
    int64_t pt = l->tmap[t];
    const struct ir_tensor *it = &l->g->tensors[t];
    if (it->data && (pt < 0 || l->b.tensors[pt].storage != PLAN_ST_ARENA)) {
        int64_t src = pt >= 0 ? pt : add_plan_tensor(l, it, PLAN_ST_CONST);
        int64_t dst = add_plan_tensor(l, it, PLAN_ST_ARENA);
        if (src < 0 || dst < 0)
            return -ENOMEM;
        return emit_copy(l, NULL, src, dst) ? -EINVAL : dst;
    }
    return in_layout(l, NULL, pt, PLAN_LAYOUT_PLAIN);
}

static int list_io(struct lower *l)
{
    struct plan_header *h = &l->b.h;
    int64_t *outs = calloc((size_t)l->g->n_outputs + 1, sizeof(*outs));
    if (!outs)
        return -ENOMEM;
    /* outputs are made plain first: a reorder node appends to the index too */
    int rc = 0;
    for (int i = 0; i < l->g->n_outputs && !rc; i++) {
        int t = l->g->outputs[i];
        outs[i] = t >= 0 && t < l->g->n_tensors ? output_buffer(l, t) : -1;
        if (outs[i] < 0 || l->b.tensors[outs[i]].storage != PLAN_ST_ARENA)
            rc = seterr(l->err, l->errlen, -EINVAL,
                        "model %s: output %s is a constant or never computed", l->model,
                        t >= 0 && t < l->g->n_tensors ? l->g->tensors[t].name : "?");
    }
    h->inputs_first = l->b.n_index;
    h->n_inputs = (uint32_t)l->g->n_inputs;
    for (int i = 0; i < l->g->n_inputs && !rc; i++)
        if (plan_add_index(&l->b, l->tmap[l->g->inputs[i]]) < 0)
            rc = -ENOMEM;
    h->outputs_first = l->b.n_index;
    h->n_outputs = (uint32_t)l->g->n_outputs;
    for (int i = 0; i < l->g->n_outputs && !rc; i++) {
        l->b.tensors[outs[i]].flags |= PLAN_TF_OUTPUT;
        if (plan_add_index(&l->b, (int32_t)outs[i]) < 0)
            rc = -ENOMEM;
    }
    free(outs);
    return rc;
}

static int fill_header(struct lower *l, const struct plan_compile_opts *opts)
{
    struct plan_header *h = &l->b.h;
    snprintf(h->engine_version, sizeof(h->engine_version), "%s", SHMFAAS_VERSION);
    cpu_dnnl_version(h->dnnl_version, sizeof(h->dnnl_version));
    snprintf(h->isa, sizeof(h->isa), "%s", cpu_isa_name());
    h->threads = (uint32_t)opts->threads;
    if (opts->source_sha256)
        memcpy(h->source_sha256, opts->source_sha256, SHA256_LEN);
    int64_t name = plan_add_string(&l->b, l->model);
    if (name < 0)
        return -ENOMEM;
    h->model_name = (uint32_t)name;
    return 0;
}

static int lower_graph(struct lower *l, const struct plan_compile_opts *opts)
{
    int rc = fill_header(l, opts);
    if (!rc)
        rc = map_inputs(l);
    for (int i = 0; !rc && i < l->g->n_nodes; i++)
        if (!l->g->nodes[i].dead)
            rc = lower_node(l, &l->g->nodes[i]);
    if (!rc)
        rc = list_io(l);
    if (!rc && plan_memory(&l->b) < 0)
        rc = seterr(l->err, l->errlen, -ENOMEM, "model %s: out of memory planning the arena",
                    l->model);
    return rc;
}

int plan_compile(const struct ir_graph *g, const struct plan_compile_opts *opts, void **image,
                 size_t *image_len, char *err, size_t errlen)
{
    struct lower l = {.g = g,
                      .model = opts->model_name ? opts->model_name : "model",
                      .winograd = opts->winograd,
                      .err = err,
                      .errlen = errlen};
    if (err && errlen)
        err[0] = '\0';
    plan_builder_init(&l.b);
    l.tmap = malloc(((size_t)g->n_tensors + 1) * sizeof(*l.tmap));
    if (!l.tmap)
        return seterr(err, errlen, -ENOMEM, "out of memory");
    for (int i = 0; i < g->n_tensors; i++)
        l.tmap[i] = -1;
    uint64_t weights = 0;
    for (int i = 0; i < g->n_tensors; i++)
        if (g->tensors[i].data)
            weights += ALIGN_UP(g->tensors[i].nbytes, PLAN_ALIGN);
    plan_reserve_weights(&l.b, weights + weights / 16); /* packing pads some layouts */
    cpu_set_threads(opts->threads);
    int rc = dnnl_engine_create(&l.eng, dnnl_cpu, 0) == dnnl_success &&
                     dnnl_stream_create(&l.stream, l.eng, dnnl_stream_default_flags) == dnnl_success
                 ? 0
                 : seterr(err, errlen, -EIO, "cannot create a oneDNN CPU engine");
    if (!rc)
        rc = pick_winograd(&l);
    if (!rc)
        rc = lower_graph(&l, opts);
    if (!rc)
        rc = plan_builder_finish(&l.b, image, image_len, err, errlen);
    if (l.stream)
        dnnl_stream_destroy(l.stream);
    if (l.eng)
        dnnl_engine_destroy(l.eng);
    plan_builder_free(&l.b);
    free(l.tmap);
    free(l.relayouts);
    free(l.wino_pick);
    return rc;
}

/* ---- engine_compile ---- */

int engine_compile(const void *onnx, size_t len, const struct engine_compile_opts *opts,
                   void **image, size_t *image_len, char *err, size_t errlen)
{
    struct engine_compile_opts none = {0};
    if (!opts)
        opts = &none;
    const char *model = opts->model_name ? opts->model_name : "model";
    if (opts->threads < 0 || opts->threads > 1024)
        return seterr(err, errlen, -EINVAL, "model %s: thread count %d out of range", model,
                      opts->threads);
    if (opts->winograd < ENGINE_WINOGRAD_AUTO || opts->winograd > ENGINE_WINOGRAD_ALL)
        return seterr(err, errlen, -EINVAL, "model %s: Winograd setting %d out of range", model,
                      opts->winograd);
    uint8_t sha[SHA256_LEN];
    sha256(onnx, len, sha);
    struct ir_graph *g = NULL;
    int rc = ir_import_onnx(onnx, len, opts->base_dir, model, &g, err, errlen);
    if (!rc)
        rc = ir_pin_inputs(g, opts->pins, opts->n_pins, err, errlen);
    if (!rc)
        rc = ir_infer_shapes(g, opts->shapes, opts->n_shapes, err, errlen);
    if (!rc)
        rc = ir_fold_constants(g, err, errlen);
    if (!rc)
        rc = ir_optimize(g, err, errlen);
    if (!rc) {
        struct plan_compile_opts po = {.threads = opts->threads ? opts->threads : 1,
                                       .winograd = opts->winograd,
                                       .model_name = model,
                                       .source_sha256 = sha};
        rc = plan_compile(g, &po, image, image_len, err, errlen);
    }
    ir_free(g);
#ifdef __GLIBC__
    /* A compile frees up to hundreds of MiB of graph, weights and packing buffers: give the free
     * pages of the malloc arenas back (a process that compiles and then serves, as shmfaas-fn
     * --private does, would otherwise keep them; the store also fixes its mmap threshold). */
    malloc_trim(0);
#endif
    return rc;
}
