/*
 * session.c — per-instance state over an open model, and running it.
 *
 * A session owns the activation arena (one anonymous mapping, so idle sessions can hand pages
 * back with MADV_DONTNEED), one scratchpad shared by all primitives (sized by the largest), the
 * oneDNN primitives and their memory objects. Weight memories point straight into the image:
 * nothing of the image is copied or written. Everything is created here; a run only copies the
 * inputs in and executes the primitives in order.
 */
#include "common/common.h"
#include "engine/kernel_params.h"
#include "engine/kernels.h"
#include "engine/plan.h"
#include "engine/winograd.h"

#include <assert.h>
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

/* A plain-C kernel node, its pointers and parameters resolved at session create. */
#define SESSION_KERNEL_MAX_IN 9 /* QLinearConv with B */

struct session_kernel {
    uint32_t kind;                /* enum plan_kernel; 0 for a oneDNN node */
    const void *src;              /* first input */
    const void *idx;              /* second input: gather indices, binary operand, pad value */
    const void *third;            /* where: the "else" operand */
    struct engine_shape ts;       /* its shape */
    void *dst;                    /* output */
    struct engine_shape s, bs, o; /* shapes of src, the second input and dst */
    int dtype, out_dtype;         /* of src and dst */
    int op;                       /* binary: enum k_binop; pad: enum k_pad_mode */
    int axis;                     /* gather */
    size_t esize;                 /* bytes per src element */
    size_t n_bytes;               /* copy, cast: bytes of src */
    size_t n_idx;                 /* gather: number of indices */
    int perm[ENGINE_MAX_RANK];    /* transpose: permutation; reduce: a flag per axis */
    int64_t starts[ENGINE_MAX_RANK], steps[ENGINE_MAX_RANK]; /* slice; pad: pads_begin */
    /* the generic view every kernel gets (new kernels use only these) */
    uint32_t n_in;                         /* inputs, at most SESSION_KERNEL_MAX_IN */
    const void *in[SESSION_KERNEL_MAX_IN]; /* input buffers (NULL: absent optional) */
    struct engine_shape in_s[SESSION_KERNEL_MAX_IN];
    int in_dtype[SESSION_KERNEL_MAX_IN];
    const int32_t *params; /* the node's int32 parameters (checked by plan_kernel_check) */
    uint32_t n_params;
    union { /* the parameters decoded (kernel_params.h), for the kinds that have a contract */
        struct k_deconv deconv;
        struct kp_maxpool_idx maxpool_idx;
        struct k_grid grid;
        struct kp_lrn lrn;
        struct k_roi roi;
        struct kp_rnn rnn;
        struct kp_nms nms;
        struct k_resize resize;
        struct kp_trilu trilu;
        struct kp_depth_space depth_space;
        struct kp_cumsum cumsum;
        struct kp_gather_nd gather_nd;
        struct kp_scatter scatter;
        struct kp_reverse_seq reverse_seq;
        struct kp_onehot onehot;
        struct kp_dft dft;
        struct kp_stft stft;
        struct kp_argext argext;
        struct kp_topk topk;
        struct kp_clip clip;
        struct kp_softmax softmax;
        struct kp_layernorm layernorm;
        struct kp_nll nll;
        struct kp_op op;
        struct kp_reduce reduce;
        struct kp_loop loop;
        struct kp_loop_end loop_end;
        struct kp_scan_slice scan;
    } kp;
    int64_t attr; /* the node's axis field */
    float alpha, beta;
};

/* A Winograd convolution: input transform, products, output transform, over scratchpad buffers. */
struct session_wino {
    struct wino_shape s;
    struct wino_post post;
    const float *x, *u, *bias; /* input, transformed weights (in the image), bias */
    float *y, *v, *m;          /* output; transformed input and products (in the scratchpad) */
};

struct session_node {
    struct session_kernel k;
    struct session_wino *wino;
    dnnl_primitive_t prim;
    dnnl_exec_arg_t *args; /* inputs, dst, scratchpad */
    int nargs;
    const uint8_t *sum_from; /* residual addend copied into dst first, or NULL */
    uint8_t *sum_to;
    size_t sum_bytes;
    int64_t loop_iter, loop_trip; /* a LOOP node: this entry's iteration number, trip count */
};

struct engine_session {
    struct engine_model *m;
    uint8_t *arena;
    size_t arena_len; /* mapped bytes */
    uint8_t *scratch;
    size_t scratch_len;
    dnnl_stream_t stream;
    struct session_node *nodes;
    dnnl_memory_t *mems; /* every memory object, for destruction */
    size_t n_mems;
};

static void *map_anon(size_t *len)
{
    size_t page = 4096;
    *len = ALIGN_UP(*len ? *len : 1, page);
    void *p = mmap(NULL, *len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* Address of tensor t's bytes: arena for activations, the image for constants. */
static void *tensor_ptr(struct engine_session *s, uint32_t t)
{
    const struct plan_tensor *pt = &s->m->v.tensors[t];
    if (pt->storage == PLAN_ST_ARENA)
        return s->arena + pt->offset;
    return (void *)plan_weights_ptr(&s->m->v, pt);
}

/* Binds arg to ptr; runtime scales and zero points (which oneDNN 2.6 has no md for) as the
 * plain vector plan tensor t holds. */
static int add_mem(struct engine_session *s, dnnl_primitive_desc_t pd, int arg,
                   const struct plan_tensor *t, void *ptr, dnnl_exec_arg_t *slot)
{
    dnnl_memory_desc_t vec;
    const dnnl_memory_desc_t *md =
        (arg & DNNL_ARG_ATTR_ZERO_POINTS) || arg == DNNL_ARG_ATTR_OUTPUT_SCALES
            ? (t && plan_tensor_md(t, 1, 0, &vec) == 0 ? &vec : NULL)
            : dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, arg);
    dnnl_memory_t mem;
    if (!md || dnnl_memory_create(&mem, md, s->m->eng, ptr) != dnnl_success)
        return -ENOMEM;
    s->mems[s->n_mems++] = mem;
    *slot = (dnnl_exec_arg_t){arg, mem};
    return 0;
}

static void shape_of(const struct plan_tensor *t, struct engine_shape *s)
{
    s->rank = (int)t->rank;
    memcpy(s->dims, t->dims, sizeof(s->dims));
}

/* The kernels with a parameter contract get it decoded once, here; model open ran the same
 * decoding (plan_kernel_check), so it cannot fail now. */
static void decode_params(const struct plan_node *n, struct session_kernel *k)
{
    int rc = 0;
    switch (n->alg) {
    case PLAN_K_CONV_TRANSPOSE:
        rc = kp_decode_deconv(k->params, k->n_params, &k->kp.deconv);
        break;
    case PLAN_K_MAXPOOL_IDX:
        rc = kp_decode_maxpool_idx(k->params, k->n_params, &k->kp.maxpool_idx);
        break;
    case PLAN_K_GRID_SAMPLE:
        rc = kp_decode_grid(k->params, k->n_params, &k->kp.grid);
        break;
    case PLAN_K_LRN:
        rc = kp_decode_lrn(k->params, k->n_params, &k->kp.lrn);
        break;
    case PLAN_K_RESIZE:
        rc = kp_decode_resize(k->params, k->n_params, k->in_s[0].rank, &k->kp.resize);
        break;
    case PLAN_K_RNN:
        rc = kp_decode_rnn(k->params, k->n_params, &k->kp.rnn);
        break;
    case PLAN_K_ROI_ALIGN:
        rc = kp_decode_roi(k->params, k->n_params, n->alpha, &k->kp.roi);
        break;
    case PLAN_K_NMS:
        rc = kp_decode_nms(k->params, k->n_params, &k->kp.nms);
        break;
    case PLAN_K_TRILU:
        rc = kp_decode_trilu(k->params, k->n_params, &k->kp.trilu);
        break;
    case PLAN_K_DEPTH_SPACE:
        rc = kp_decode_depth_space(k->params, k->n_params, &k->kp.depth_space);
        break;
    case PLAN_K_CUMSUM:
        rc = kp_decode_cumsum(k->params, k->n_params, &k->kp.cumsum);
        break;
    case PLAN_K_GATHER_ND:
        rc = kp_decode_gather_nd(k->params, k->n_params, &k->kp.gather_nd);
        break;
    case PLAN_K_LOOP:
        rc = kp_decode_loop(k->params, k->n_params, &k->kp.loop);
        break;
    case PLAN_K_LOOP_END:
        rc = kp_decode_loop_end(k->params, k->n_params, &k->kp.loop_end);
        break;
    case PLAN_K_SCAN_SLICE:
        rc = kp_decode_scan_slice(k->params, k->n_params, &k->kp.scan);
        break;
    case PLAN_K_SCATTER_ELEMENTS:
    case PLAN_K_SCATTER_ND:
        rc = kp_decode_scatter(k->params, k->n_params, &k->kp.scatter);
        break;
    case PLAN_K_REVERSE_SEQ:
        rc = kp_decode_reverse_seq(k->params, k->n_params, &k->kp.reverse_seq);
        break;
    case PLAN_K_ONEHOT:
        rc = kp_decode_onehot(k->params, k->n_params, &k->kp.onehot);
        break;
    case PLAN_K_DFT:
        rc = kp_decode_dft(k->params, k->n_params, &k->kp.dft);
        break;
    case PLAN_K_STFT:
        rc = kp_decode_stft(k->params, k->n_params, &k->kp.stft);
        break;
    case PLAN_K_ARGEXT:
        rc = kp_decode_argext(k->params, k->n_params, &k->kp.argext);
        break;
    case PLAN_K_TOPK:
        rc = kp_decode_topk(k->params, k->n_params, &k->kp.topk);
        break;
    case PLAN_K_CLIP:
        rc = kp_decode_clip(k->params, k->n_params, &k->kp.clip);
        break;
    case PLAN_K_SOFTMAX_F:
        rc = kp_decode_softmax(k->params, k->n_params, &k->kp.softmax);
        break;
    case PLAN_K_LAYERNORM:
        rc = kp_decode_layernorm(k->params, k->n_params, &k->kp.layernorm);
        break;
    case PLAN_K_NLL:
        rc = kp_decode_nll(k->params, k->n_params, &k->kp.nll);
        break;
    case PLAN_K_UNARY:
    case PLAN_K_LOGIC:
    case PLAN_K_VARIADIC:
    case PLAN_K_ARITH:
        rc = kp_decode_op(n->alg, k->params, k->n_params, &k->kp.op);
        break;
    case PLAN_K_REDUCE:
    case PLAN_K_MVN:
        rc = kp_decode_reduce(k->params, k->n_params, k->in_s[0].rank, n->alg == PLAN_K_REDUCE,
                              &k->kp.reduce);
        break;
    }
    assert(rc == 0);
    (void)rc;
}

static void setup_kernel(struct engine_session *s, const struct plan_node *n,
                         struct session_kernel *k)
{
    const struct plan_view *v = &s->m->v;
    const struct plan_tensor *src = &v->tensors[plan_input(v, n, 0)];
    const int32_t *p = v->index + n->params_first;
    k->kind = n->alg;
    k->n_in = n->n_in < SESSION_KERNEL_MAX_IN ? n->n_in : SESSION_KERNEL_MAX_IN;
    for (uint32_t i = 0; i < k->n_in; i++) {
        int32_t t = plan_input(v, n, i);
        k->in[i] = t < 0 ? NULL : tensor_ptr(s, (uint32_t)t);
        if (t >= 0) {
            shape_of(&v->tensors[t], &k->in_s[i]);
            k->in_dtype[i] = (int)v->tensors[t].dtype;
        }
    }
    k->params = p;
    k->n_params = n->n_params;
    decode_params(n, k);
    k->attr = n->axis;
    k->alpha = n->alpha;
    k->beta = n->beta;
    k->src = tensor_ptr(s, (uint32_t)plan_input(v, n, 0));
    k->dst = tensor_ptr(s, n->out);
    k->esize = engine_dtype_size((int)src->dtype);
    k->axis = (int)n->axis;
    shape_of(src, &k->s);
    shape_of(&v->tensors[n->out], &k->o);
    /* counts were checked by plan_kernel_check: rank (transpose, reduce) or 2 x rank (slice) */
    assert(n->alg != PLAN_K_SLICE || n->n_params == 2 * src->rank);
    assert(n->alg != PLAN_K_PAD || n->n_params == src->rank + 1);
    assert(n->alg != PLAN_K_TRANSPOSE || n->n_params == src->rank);
    for (uint32_t i = 0; i < n->n_params && i < ENGINE_MAX_RANK; i++)
        k->perm[i] = p[i];
    for (uint32_t i = 0; n->alg == PLAN_K_SLICE && i < src->rank && i < ENGINE_MAX_RANK; i++) {
        k->starts[i] = p[i];
        k->steps[i] = p[src->rank + i];
    }
    k->dtype = (int)src->dtype;
    k->n_bytes = (size_t)src->nbytes;
    k->op = n->n_params ? p[0] : 0;
    k->out_dtype = (int)v->tensors[n->out].dtype;
    for (uint32_t i = 0; n->alg == PLAN_K_PAD && i < src->rank && i < ENGINE_MAX_RANK; i++)
        k->starts[i] = p[i];
    if (n->alg == PLAN_K_PAD)
        k->op = p[src->rank]; /* the mode */
    if (n->alg == PLAN_K_BINARY || n->alg == PLAN_K_PAD) {
        k->idx = tensor_ptr(s, (uint32_t)plan_input(v, n, 1));
        shape_of(&v->tensors[plan_input(v, n, 1)], &k->bs);
    }
    if (n->alg == PLAN_K_WHERE) {
        k->idx = tensor_ptr(s, (uint32_t)plan_input(v, n, 1));
        shape_of(&v->tensors[plan_input(v, n, 1)], &k->bs);
        k->third = tensor_ptr(s, (uint32_t)plan_input(v, n, 2));
        shape_of(&v->tensors[plan_input(v, n, 2)], &k->ts);
        k->esize = engine_dtype_size(k->out_dtype);
    }
    if (n->alg == PLAN_K_GATHER) {
        const struct plan_tensor *idx = &v->tensors[plan_input(v, n, 1)];
        k->idx = tensor_ptr(s, (uint32_t)plan_input(v, n, 1));
        k->n_idx = (size_t)(idx->nbytes / sizeof(int64_t));
    }
}

/* Splits x at axis into [outer, len, inner]; with coerce, len spans every dim from axis on. */
static void split_at(const struct engine_shape *x, int64_t axis, int coerce, size_t *outer,
                     size_t *len, size_t *inner)
{
    *outer = *len = *inner = 1;
    for (int d = 0; d < x->rank; d++)
        *(d < axis ? outer : d == axis || coerce ? len : inner) *= (size_t)x->dims[d];
}

static int run_layernorm(const struct session_kernel *k)
{
    size_t outer, len, inner;
    split_at(&k->in_s[0], k->attr, 1, &outer, &len, &inner);
    int which = k->kp.layernorm.which;
    k_layernorm(k->in[0], k->in[1], k->n_in > 2 ? k->in[2] : NULL, outer, len, k->alpha,
                which == 0 ? k->dst : NULL, which == 1 ? k->dst : NULL, which == 2 ? k->dst : NULL);
    return 0;
}

static int run_nll(const struct session_kernel *k)
{
    size_t n, c, inner;
    split_at(&k->in_s[0], 1, 0, &n, &c, &inner);
    return k_nll(k->in[0], k->in[1], k->n_in > 2 ? k->in[2] : NULL, n, c, inner, k->kp.nll.red,
                 k->kp.nll.has_ignore, k->kp.nll.ignore_index, k->dst);
}

static void run_quantize(const struct session_kernel *k)
{
    size_t outer, len, inner, n = (size_t)engine_shape_numel(&k->in_s[0]);
    size_t ns = (size_t)engine_shape_numel(&k->in_s[1]);
    const void *zp = k->n_in > 2 ? k->in[2] : NULL;
    split_at(&k->in_s[0], ns == 1 ? 0 : k->attr, 0, &outer, &len, &inner);
    if (k->params[0])
        k_dequantize(k->in[0], k->in_dtype[0], k->in[1], zp, ns, len, inner, k->dst, n);
    else
        k_quantize(k->in[0], k->in[1], zp, ns, len, inner, k->out_dtype, k->dst, n);
}

static void run_dynquant(const struct session_kernel *k)
{
    int which = k->params[0];
    k_dynquant(k->in[0], (size_t)engine_shape_numel(&k->in_s[0]), which == 0 ? k->dst : NULL,
               which == 1 ? k->dst : NULL, which == 2 ? k->dst : NULL);
}

/* MatMulInteger (a, b, [azp], [bzp]) or QLinearMatMul (a, as, azp, b, bs, bzp, ys, yzp). */
static void run_qmatmul(const struct session_kernel *k)
{
    int ql = k->params[0];
    uint32_t ib = ql ? 3 : 1, iaz = 2, ibz = ql ? 5 : 2 + (uint32_t)k->params[1];
    const struct engine_shape *as = &k->in_s[0], *bs = &k->in_s[ib];
    struct k_qmm q = {.adt = k->in_dtype[0],
                      .bdt = k->in_dtype[ib],
                      .ydt = k->out_dtype,
                      .m = (size_t)as->dims[as->rank - 2],
                      .k = (size_t)as->dims[as->rank - 1],
                      .n = (size_t)bs->dims[bs->rank - 1],
                      .b_batched = bs->rank > 2,
                      .azp = ql || k->params[1] ? k->in[iaz] : NULL,
                      .bzp = ql || k->params[2] ? k->in[ibz] : NULL,
                      .yzp = ql ? k->in[7] : NULL};
    q.batch = 1;
    for (int d = 0; d + 2 < as->rank; d++)
        q.batch *= (size_t)as->dims[d];
    q.n_azp = q.azp ? (size_t)engine_shape_numel(&k->in_s[iaz]) : 0;
    q.n_bzp = q.bzp ? (size_t)engine_shape_numel(&k->in_s[ibz]) : 0;
    float mult = 0.0f;
    if (ql) {
        mult = *(const float *)k->in[1] * *(const float *)k->in[4] / *(const float *)k->in[6];
        q.multiplier = &mult;
    }
    k_qmatmul(&q, k->in[0], k->in[ib], k->dst);
}

/* ConvInteger (x, w, [xzp], [wzp]) or QLinearConv (x, xs, xzp, w, ws, wzp, ys, yzp). */
static void run_qconv(const struct session_kernel *k)
{
    const int32_t *p = k->params;
    int ql = p[0] != 0, sp = p[4];
    uint32_t iw = ql ? 3 : 1, iwz = ql ? 5 : 2 + (uint32_t)p[1];
    const struct engine_shape *xs = &k->in_s[0], *ws = &k->in_s[iw];
    struct k_qconv q = {.xdt = k->in_dtype[0],
                        .wdt = k->in_dtype[iw],
                        .ydt = k->out_dtype,
                        .n = xs->dims[0],
                        .c = xs->dims[1],
                        .m = ws->dims[0],
                        .group = p[3],
                        .xzp = ql || p[1] ? k->in[2] : NULL,
                        .wzp = ql || p[2] ? k->in[iwz] : NULL,
                        .xs = ql ? k->in[1] : NULL,
                        .ws = ql ? k->in[4] : NULL,
                        .ys = ql ? k->in[6] : NULL,
                        .yzp = ql ? k->in[7] : NULL,
                        .bias = ql && k->n_in > 8 ? k->in[8] : NULL,
                        .relu = p[0] == 2};
    q.n_wzp = q.wzp ? engine_shape_numel(&k->in_s[iwz]) : 0;
    q.n_ws = ql ? engine_shape_numel(&k->in_s[4]) : 0;
    for (int d = 0; d < 3; d++) {
        int on = d < sp;
        q.in[d] = on ? xs->dims[2 + d] : 1;
        q.k[d] = on ? ws->dims[2 + d] : 1;
        q.out[d] = on ? k->o.dims[2 + d] : 1;
        q.stride[d] = on ? p[5 + d] : 1;
        q.dil[d] = on ? p[5 + sp + d] : 1;
        q.pad[d] = on ? p[5 + 2 * sp + d] : 0;
    }
    k_qconv(&q, k->in[0], k->in[iw], k->dst);
}

static int run_math_kernel(const struct session_kernel *k)
{
    size_t outer, len, inner;
    switch (k->kind) {
    case PLAN_K_UNARY:
        k_unary((enum k_unop)k->kp.op.op, k->in_dtype[0], k->alpha, k->beta, k->in[0], k->dst,
                (size_t)engine_shape_numel(&k->in_s[0]));
        return 0;
    case PLAN_K_REDUCE:
        k_reduce(k->kp.reduce.op, k->in_dtype[0], k->in[0], &k->in_s[0], k->kp.reduce.mask, k->dst);
        return 0;
    case PLAN_K_ARGEXT:
        k_argext(k->kp.argext.is_min, k->kp.argext.select_last, k->in[0], &k->in_s[0], (int)k->attr,
                 k->dst);
        return 0;
    case PLAN_K_SOFTMAX_F:
        split_at(&k->in_s[0], k->attr, k->kp.softmax.coerce, &outer, &len, &inner);
        k_softmax_family(k->kp.softmax.op, k->in[0], k->dst, outer, len, inner);
        return 0;
    case PLAN_K_LOGIC:
        return k_logic((enum k_logop)k->kp.op.op, k->in_dtype[0], k->in[0], &k->in_s[0], k->in[1],
                       &k->in_s[1], k->dst, &k->o);
    case PLAN_K_VARIADIC:
        k_variadic((enum k_varop)k->kp.op.op, k->out_dtype, k->in, k->in_s, (int)k->n_in, k->dst,
                   &k->o);
        return 0;
    case PLAN_K_LAYERNORM:
        return run_layernorm(k);
    case PLAN_K_CLIP:
        k_clip(k->in_dtype[0], k->in[0], k->kp.clip.has_min ? k->in[1] : NULL,
               k->kp.clip.has_max ? k->in[1 + k->kp.clip.has_min] : NULL, k->dst,
               (size_t)engine_shape_numel(&k->in_s[0]));
        return 0;
    case PLAN_K_INSTNORM:
        split_at(&k->in_s[0], 1, 0, &outer, &len, &inner);
        k_instancenorm(k->in[0], k->in[1], k->in[2], outer, len, inner, k->alpha, k->dst);
        return 0;
    case PLAN_K_ARITH:
        return k_arith((enum k_binop)k->kp.op.op, k->in_dtype[0], k->in[0], &k->in_s[0],
                       k->in_dtype[1], k->in[1], &k->in_s[1], k->dst, &k->o);
    case PLAN_K_TOPK:
        split_at(&k->in_s[0], k->attr, 0, &outer, &len, &inner);
        k_topk(k->in[0], outer, len, inner, (size_t)k->o.dims[k->attr], k->kp.topk.largest,
               k->kp.topk.indices ? NULL : k->dst, k->kp.topk.indices ? k->dst : NULL);
        return 0;
    case PLAN_K_QUANTIZE:
        run_quantize(k);
        return 0;
    case PLAN_K_DYNQUANT:
        run_dynquant(k);
        return 0;
    case PLAN_K_QMATMUL:
        run_qmatmul(k);
        return 0;
    case PLAN_K_DET:
        len = (size_t)k->in_s[0].dims[k->in_s[0].rank - 1];
        k_det(k->in[0], (size_t)engine_shape_numel(&k->o), len, k->dst);
        return 0;
    case PLAN_K_MVN:
        k_mvn(k->in[0], &k->in_s[0], k->kp.reduce.mask, k->dst);
        return 0;
    case PLAN_K_DFT:
        split_at(&k->in_s[0], k->attr, 0, &outer, &len, &inner);
        k_dft(k->in[0], outer, len, inner / (size_t)k->in_s[0].dims[k->in_s[0].rank - 1],
              (size_t)k->in_s[0].dims[k->in_s[0].rank - 1], k->kp.dft.inverse, k->kp.dft.onesided,
              k->dst);
        return 0;
    case PLAN_K_QCONV:
        run_qconv(k);
        return 0;
    case PLAN_K_EINSUM:
        k_einsum(k->out_dtype, k->in, k->in_s, k->params, k->dst, &k->o);
        return 0;
    case PLAN_K_STFT:
        k_stft(k->in[0], (size_t)k->in_s[0].dims[0], (size_t)k->in_s[0].dims[1],
               (size_t)k->in_s[0].dims[2], k->n_in > 1 ? k->in[1] : NULL, (size_t)k->kp.stft.step,
               (size_t)k->kp.stft.length, k->kp.stft.onesided, k->dst);
        return 0;
    default:
        return run_nll(k);
    }
}

static int run_rnn(const struct session_kernel *k)
{
    const struct kp_rnn *q = &k->kp.rnn;
    const struct engine_shape *xs = &k->in_s[0];
    struct k_rnn r = {.kind = q->kind,
                      .direction = q->direction,
                      .layout = q->layout,
                      .linear_before_reset = q->linear_before_reset,
                      .hidden = q->hidden,
                      .seq = xs->dims[q->layout ? 1 : 0],
                      .batch = xs->dims[q->layout ? 0 : 1],
                      .input = xs->dims[2],
                      .dirs = q->direction == K_RNN_BIDIRECTIONAL ? 2 : 1,
                      .gates = q->kind == K_RNN_SIMPLE ? 1
                               : q->kind == K_RNN_GRU  ? 3
                                                       : 4};
    struct k_rnn_io io = {.x = k->in[0], .w = k->in[1], .r = k->in[2]};
    const void *opt[5] = {NULL};
    for (int bit = 0, at = 3; bit < 5; bit++)
        if (q->present & (1 << bit))
            opt[bit] = k->in[at++];
    io.b = opt[0], io.lens = opt[1], io.h0 = opt[2], io.c0 = opt[3], io.p = opt[4];
    return k_rnn(&r, &io, q->which, k->dst);
}

/* params: modes, cubic_a, extrapolation, then per axis scale, roi start, roi end (checked) */
/* NonMaxSuppression: the thresholds present are inputs 2 and 3, read now. */
static int run_nms(const struct session_kernel *k)
{
    const struct kp_nms *q = &k->kp.nms;
    const struct engine_shape *bs = &k->in_s[0];
    struct k_nms p = {.batches = bs->dims[0],
                      .classes = k->in_s[1].dims[1],
                      .boxes = bs->dims[1],
                      .max_per_class = q->max_per_class,
                      .center = q->center,
                      .has_iou = q->has_iou,
                      .has_score = q->has_score};
    uint32_t at = 2;
    if (q->has_iou)
        p.iou = *(const float *)k->in[at++];
    if (q->has_score)
        p.score = *(const float *)k->in[at];
    return k_nms(&p, k->in[0], k->in[1], k->dst, k->o.dims[0]);
}

static int run_kernel(const struct session_kernel *k)
{
    switch (k->kind) {
    case PLAN_K_UNARY:
    case PLAN_K_REDUCE:
    case PLAN_K_ARGEXT:
    case PLAN_K_SOFTMAX_F:
    case PLAN_K_LOGIC:
    case PLAN_K_VARIADIC:
    case PLAN_K_LAYERNORM:
    case PLAN_K_NLL:
    case PLAN_K_CLIP:
    case PLAN_K_INSTNORM:
    case PLAN_K_ARITH:
    case PLAN_K_TOPK:
    case PLAN_K_QUANTIZE:
    case PLAN_K_DYNQUANT:
    case PLAN_K_QMATMUL:
    case PLAN_K_DET:
    case PLAN_K_MVN:
    case PLAN_K_DFT:
    case PLAN_K_QCONV:
    case PLAN_K_EINSUM:
    case PLAN_K_STFT:
        return run_math_kernel(k);
    case PLAN_K_TRANSPOSE:
        k_transpose(k->src, &k->s, k->perm, k->esize, k->dst);
        return 0;
    case PLAN_K_SLICE:
        k_slice(k->src, &k->s, k->starts, k->steps, &k->o, k->esize, k->dst);
        return 0;
    case PLAN_K_GATHER:
        return k_gather(k->src, &k->s, k->axis, k->idx, k->n_idx, k->esize, k->dst);
    case PLAN_K_BINARY:
        return k_binary((enum k_binop)k->op, k->dtype, k->src, &k->s, k->idx, &k->bs, k->dst,
                        &k->o);
    case PLAN_K_REDUCE_MEAN:
        k_reduce_mean(k->src, &k->s, k->perm, k->dst);
        return 0;
    case PLAN_K_COPY: /* a hostile image may overlap the two: memmove, never undefined */
        memmove(k->dst, k->src, k->n_bytes);
        return 0;
    case PLAN_K_CAST:
        return k_cast(k->src, k->dtype, k->dst, k->out_dtype, k->n_bytes / k->esize);
    case PLAN_K_PAD:
        k_pad(k->src, &k->s, k->starts, (enum k_pad_mode)k->op, k->idx, k->esize, k->dst, &k->o);
        return 0;
    case PLAN_K_WHERE:
        k_where(k->src, &k->s, k->idx, &k->bs, k->third, &k->ts, k->esize, k->dst, &k->o);
        return 0;
    case PLAN_K_SLICE_DYN:
        return k_slice_from(k->in[0], &k->in_s[0], (int)k->attr,
                            k->in_dtype[1] == ENGINE_I32 ? *(const int32_t *)k->in[1]
                                                         : *(const int64_t *)k->in[1],
                            &k->o, k->esize, k->dst);
    case PLAN_K_GATHER_ELEMENTS:
        return k_gather_elements(k->in[0], &k->in_s[0], k->in[1], k->in_dtype[1], &k->in_s[1],
                                 (int)k->attr, k->esize, k->dst);
    case PLAN_K_SCATTER_ELEMENTS:
        return k_scatter_elements(k->in[0], &k->in_s[0], k->in[1], k->in_dtype[1], &k->in_s[1],
                                  k->in[2], (int)k->attr, k->kp.scatter.red, k->out_dtype, k->dst);
    case PLAN_K_GATHER_ND:
        return k_gather_nd(k->in[0], &k->in_s[0], k->in[1], k->in_dtype[1], &k->in_s[1],
                           k->kp.gather_nd.batch_dims, k->esize, k->dst);
    case PLAN_K_SCATTER_ND:
        return k_scatter_nd(k->in[0], &k->in_s[0], k->in[1], k->in_dtype[1], &k->in_s[1], k->in[2],
                            k->kp.scatter.red, k->out_dtype, k->dst);
    case PLAN_K_TRILU:
        k_trilu(k->in[0], &k->in_s[0], *(const int64_t *)k->in[1], k->kp.trilu.upper, k->esize,
                k->dst);
        return 0;
    case PLAN_K_DEPTH_SPACE:
        k_depth_space(k->in[0], &k->in_s[0], k->kp.depth_space.block, k->kp.depth_space.mode,
                      k->esize, k->dst);
        return 0;
    case PLAN_K_TILE:
        k_tile(k->in[0], &k->in_s[0], k->esize, k->dst, &k->o);
        return 0;
    case PLAN_K_CONV_TRANSPOSE:
        k_conv_transpose(k->in[0], &k->in_s[0], k->in[1], &k->in_s[1],
                         k->n_in > 2 ? k->in[2] : NULL, &k->kp.deconv, k->dst, &k->o);
        return 0;
    case PLAN_K_GRID_SAMPLE:
        k_grid_sample(k->in[0], &k->in_s[0], k->in[1], &k->kp.grid, k->dst, &k->o);
        return 0;
    case PLAN_K_REVERSE_SEQ:
        return k_reverse_sequence(k->in[0], &k->in_s[0], k->in[1], k->in_dtype[1],
                                  k->kp.reverse_seq.batch_axis, k->esize, k->dst);
    case PLAN_K_MAX_UNPOOL:
        return k_max_unpool(k->in[0], k->in[1], (size_t)engine_shape_numel(&k->in_s[0]), k->esize,
                            k->dst, (size_t)engine_shape_numel(&k->o));
    case PLAN_K_CUMSUM: {
        int64_t axis =
            k->in_dtype[1] == ENGINE_I32 ? *(const int32_t *)k->in[1] : *(const int64_t *)k->in[1];
        return k_cumsum(k->in[0], &k->in_s[0], axis, k->kp.cumsum.exclusive, k->kp.cumsum.reverse,
                        k->out_dtype, k->dst);
    }
    case PLAN_K_RNN:
        return run_rnn(k);
    case PLAN_K_RESIZE:
        k_resize(k->in[0], &k->in_s[0], &k->kp.resize, k->dst, &k->o);
        return 0;
    case PLAN_K_MAXPOOL_IDX:
        k_maxpool_idx(k->in[0], &k->in_s[0], &k->kp.maxpool_idx.pool, k->kp.maxpool_idx.which,
                      k->dst, &k->o);
        return 0;
    case PLAN_K_ONEHOT:
        return k_onehot(k->in[0], k->in_dtype[0], &k->in_s[0], k->kp.onehot.depth,
                        k->kp.onehot.axis, k->in[1], engine_dtype_size(k->out_dtype), k->dst);
    case PLAN_K_ROI_ALIGN:
        return k_roi_align(k->in[0], &k->in_s[0], k->in[1], k->in[2], &k->kp.roi, k->dst, &k->o);
    case PLAN_K_LRN:
        k_lrn(k->in[0], &k->in_s[0], k->kp.lrn.size, k->alpha, k->beta, k->kp.lrn.bias, k->dst);
        return 0;
    case PLAN_K_NMS:
        return run_nms(k);
    case PLAN_K_NONZERO:
        k_nonzero(k->in[0], k->in_dtype[0], &k->in_s[0], k->dst);
        return 0;
    default:
        return -EINVAL;
    }
}

/* A node whose sum post-op addend is not already in its output copies it there before it runs. */
static void set_sum(struct engine_session *s, struct session_node *sn, const struct plan_node *n)
{
    if (n->sum_tensor == PLAN_NONE || tensor_ptr(s, n->sum_tensor) == tensor_ptr(s, n->out))
        return;
    sn->sum_from = tensor_ptr(s, n->sum_tensor);
    sn->sum_to = tensor_ptr(s, n->out);
    sn->sum_bytes = (size_t)s->m->v.tensors[n->out].nbytes;
}

static int setup_wino(struct engine_session *s, uint32_t k)
{
    const struct plan_view *v = &s->m->v;
    const struct plan_node *n = &v->nodes[k];
    struct session_node *sn = &s->nodes[k];
    struct session_wino *w = calloc(1, sizeof(*w));
    sn->wino = w;
    if (!w || plan_wino_shape(v, n, &w->s) || plan_wino_post(n, &w->post))
        return -ENOMEM;
    w->v = (float *)s->scratch;
    w->m = (float *)(s->scratch + ALIGN_UP((size_t)wino_v_bytes(&w->s), 64));
    w->x = tensor_ptr(s, (uint32_t)plan_input(v, n, 0));
    w->u = tensor_ptr(s, (uint32_t)plan_input(v, n, 1));
    w->bias = n->n_in > 2 ? tensor_ptr(s, (uint32_t)plan_input(v, n, 2)) : NULL;
    w->y = tensor_ptr(s, n->out);
    set_sum(s, sn, n);
    return 0;
}

static void run_wino(const struct session_wino *w)
{
    for (int64_t t0 = 0; t0 < w->s.tiles; t0 += w->s.block) {
        wino_input(&w->s, w->x, t0, w->v);
        wino_gemm(&w->s, w->v, w->u, w->m);
        wino_output(&w->s, w->m, t0, w->bias, &w->post, w->y);
    }
}

static int setup_node(struct engine_session *s, uint32_t k)
{
    if (s->m->v.nodes[k].op == PLAN_OP_WINOGRAD)
        return setup_wino(s, k);
    if (s->m->v.nodes[k].op == PLAN_OP_KERNEL) {
        setup_kernel(s, &s->m->v.nodes[k], &s->nodes[k].k);
        return 0;
    }
    const struct plan_view *v = &s->m->v;
    const struct plan_node *n = &v->nodes[k];
    dnnl_primitive_desc_t pd = s->m->pds[k];
    struct session_node *sn = &s->nodes[k];
    sn->args = calloc(n->n_in + 2, sizeof(*sn->args));
    if (!sn->args || dnnl_primitive_create(&sn->prim, pd) != dnnl_success)
        return -ENOMEM;
    int rc = 0;
    for (uint32_t i = 0; i < n->n_in && !rc; i++) {
        uint32_t t = (uint32_t)plan_input(v, n, i);
        rc = add_mem(s, pd, plan_input_arg(n, i), &v->tensors[t], tensor_ptr(s, t),
                     &sn->args[sn->nargs++]);
    }
    if (!rc)
        rc = add_mem(s, pd, DNNL_ARG_DST, NULL, tensor_ptr(s, n->out), &sn->args[sn->nargs++]);
    if (!rc)
        rc = add_mem(s, pd, DNNL_ARG_SCRATCHPAD, NULL, s->scratch, &sn->args[sn->nargs++]);
    if (!rc)
        set_sum(s, sn, n);
    return rc;
}

int engine_session_create(struct engine_model *m, struct engine_session **out, char *err,
                          size_t errlen)
{
    *out = NULL;
    struct engine_session *s = calloc(1, sizeof(*s));
    if (!s)
        return seterr(err, errlen, -ENOMEM, "out of memory");
    s->m = m;
    s->arena_len = (size_t)m->v.h->arena_size;
    s->scratch_len = m->scratch_size;
    s->arena = map_anon(&s->arena_len);
    s->scratch = map_anon(&s->scratch_len);
    uint32_t n_nodes = m->v.n_nodes;
    s->nodes = calloc(n_nodes + 1, sizeof(*s->nodes));
    size_t n_mems = 0;
    for (uint32_t k = 0; k < n_nodes; k++)
        n_mems += m->v.nodes[k].n_in + 2;
    s->mems = calloc(n_mems + 1, sizeof(*s->mems));
    int rc = s->arena && s->scratch && s->nodes && s->mems ? 0 : -ENOMEM;
    cpu_set_threads(m->threads);
    if (!rc && dnnl_stream_create(&s->stream, m->eng, dnnl_stream_default_flags) != dnnl_success)
        rc = -ENOMEM;
    for (uint32_t k = 0; !rc && k < n_nodes; k++)
        rc = setup_node(s, k);
    if (rc) {
        engine_session_destroy(s);
        return seterr(err, errlen, rc,
                      "model %s: cannot create a session (arena %zu bytes, scratchpad %zu bytes)",
                      plan_str(&m->v, m->v.h->model_name), (size_t)m->v.h->arena_size,
                      m->scratch_size);
    }
    *out = s;
    return 0;
}

void engine_session_destroy(struct engine_session *s)
{
    if (!s)
        return;
    for (uint32_t k = 0; s->nodes && k < s->m->v.n_nodes; k++) {
        if (s->nodes[k].prim)
            dnnl_primitive_destroy(s->nodes[k].prim);
        free(s->nodes[k].args);
        free(s->nodes[k].wino);
    }
    for (size_t i = 0; i < s->n_mems; i++)
        dnnl_memory_destroy(s->mems[i]);
    if (s->stream)
        dnnl_stream_destroy(s->stream);
    if (s->arena)
        munmap(s->arena, s->arena_len);
    if (s->scratch)
        munmap(s->scratch, s->scratch_len);
    free(s->nodes);
    free(s->mems);
    free(s);
}

void engine_session_release_memory(struct engine_session *s)
{
    madvise(s->arena, s->arena_len, MADV_DONTNEED);
    madvise(s->scratch, s->scratch_len, MADV_DONTNEED);
#ifdef __GLIBC__
    /* what oneDNN and the request path freed stays resident in the malloc arenas until
     * trimmed (about 1 MiB of an idle ResNet-18 instance's heap) */
    malloc_trim(0);
#endif
}

/* ---- run ---- */

static const struct engine_tensor *find_input(const struct engine_tensor *in, int n,
                                              const char *name, int only)
{
    for (int i = 0; i < n; i++)
        if ((in[i].name && strcmp(in[i].name, name) == 0) || (!in[i].name && only && n == 1))
            return &in[i];
    return NULL;
}

/* One value of a pinned tensor (plan-checked: int32, int64, bool or float32) as text. */
static int pinned_value(const uint8_t *p, uint32_t dtype, char *buf, size_t len)
{
    int32_t i32;
    int64_t i64;
    float f;
    if (dtype == ENGINE_I64) {
        memcpy(&i64, p, sizeof(i64));
        return snprintf(buf, len, "%lld", (long long)i64);
    }
    if (dtype == ENGINE_I32) {
        memcpy(&i32, p, sizeof(i32));
        return snprintf(buf, len, "%d", i32);
    }
    if (dtype == ENGINE_BOOL)
        return snprintf(buf, len, "%s", *p ? "true" : "false");
    memcpy(&f, p, sizeof(f));
    return snprintf(buf, len, "%.9g", (double)f);
}

/* "[2, 3, 4]", cut short with "..." when it does not fit len (>= 64) bytes. */
static void pinned_values(const struct plan_view *v, const struct plan_tensor *pt, char *buf,
                          size_t len)
{
    const uint8_t *p = v->weights + pt->offset;
    size_t es = engine_dtype_size((int)pt->dtype), used = 1;
    uint64_t n = pt->nbytes / es;
    buf[0] = '[';
    for (uint64_t i = 0; i < n; i++) {
        char one[40];
        int w = pinned_value(p + i * es, pt->dtype, one, sizeof(one));
        if (used + (size_t)w + 8 >= len) {
            used += (size_t)snprintf(buf + used, len - used, "%s...", i ? ", " : "");
            break;
        }
        used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "", one);
    }
    snprintf(buf + used, len - used, "]");
}

static int check_pinned(const struct plan_view *v, const struct plan_tensor *pt, const void *data,
                        char *err, size_t errlen)
{
    char vals[256];
    if (memcmp(data, v->weights + pt->offset, pt->nbytes) == 0)
        return 0;
    pinned_values(v, pt, vals, sizeof(vals));
    return seterr(err, errlen, -EINVAL,
                  "input '%s' must be %s (the plan was compiled for these values)",
                  plan_str(v, pt->name), vals);
}

static int copy_input(struct engine_session *s, uint32_t t, const struct engine_tensor *inputs,
                      int n_inputs, char *err, size_t errlen)
{
    const struct plan_view *v = &s->m->v;
    const struct plan_tensor *pt = &v->tensors[t];
    const char *name = plan_str(v, pt->name);
    const struct engine_tensor *in = find_input(inputs, n_inputs, name, v->h->n_inputs == 1);
    struct engine_shape want = {.rank = (int)pt->rank};
    memcpy(want.dims, pt->dims, sizeof(want.dims));
    char ws[160], gs[160];
    if (!in)
        return seterr(err, errlen, -EINVAL, "model %s: input %s missing",
                      plan_str(v, v->h->model_name), name);
    if (in->dtype != (int)pt->dtype)
        return seterr(err, errlen, -EINVAL, "input %s: dtype %s, the plan expects %s", name,
                      engine_dtype_name(in->dtype), engine_dtype_name((int)pt->dtype));
    if (in->shape.rank != want.rank ||
        memcmp(in->shape.dims, want.dims, (size_t)want.rank * sizeof(int64_t)) != 0)
        return seterr(err, errlen, -EINVAL, "input %s: shape %s, the plan expects %s", name,
                      engine_shape_str(&in->shape, gs, sizeof(gs)),
                      engine_shape_str(&want, ws, sizeof(ws)));
    if (!in->data || in->nbytes != pt->nbytes)
        return seterr(err, errlen, -EINVAL, "input %s: %zu bytes of data, the plan expects %llu",
                      name, in->nbytes, (unsigned long long)pt->nbytes);
    if (pt->flags & PLAN_TF_PINNED)
        return check_pinned(v, pt, in->data, err, errlen);
    memcpy(s->arena + pt->offset, in->data, in->nbytes);
    return 0;
}

/* LOOP, LOOP_END, SCAN_SLICE (ops/loop.c): the count lives here, never in the arena, and
 * plan_loops_check made every region well nested, so each entry of a loop runs at most its max
 * iterations, and all of them together at most ENGINE_LOOP_MAX_RUN per run (*iters counts them).
 * *k becomes the node before the next to run. */
static int run_loop_node(struct engine_session *s, uint32_t *k, int64_t *iters, char *err,
                         size_t errlen)
{
    const struct plan_view *v = &s->m->v;
    struct session_node *sn = &s->nodes[*k];
    if (sn->k.kind == PLAN_K_SCAN_SLICE) {
        const struct kp_scan_slice *q = &sn->k.kp.scan;
        size_t i = (size_t)s->nodes[q->begin].loop_iter; /* < its max <= len: plan_loops_check */
        void *src = (void *)sn->k.in[0];
        k_scan_slice(q->write ? sn->k.dst : src, q->write ? src : sn->k.dst, (size_t)q->outer,
                     (size_t)q->len, (size_t)q->inner, q->reverse ? (size_t)q->len - 1 - i : i,
                     q->write);
        return 0;
    }
    int begin = sn->k.kind == PLAN_K_LOOP;
    struct session_node *b = begin ? sn : &s->nodes[sn->k.kp.loop_end.begin];
    const struct kp_loop *q = &b->k.kp.loop;
    int go;
    if (begin) {
        b->loop_iter = 0;
        b->loop_trip = q->has_trip ? *(const int64_t *)sn->k.in[1] : INT64_MAX;
        go = q->has_cond ? *(const uint8_t *)sn->k.in[sn->k.n_in - 1] != 0 : 1;
    } else {
        b->loop_iter++;
        go = sn->k.kp.loop_end.has_cond ? *(const uint8_t *)sn->k.in[1] != 0 : 1;
    }
    if (!go || b->loop_iter >= b->loop_trip) {
        if (begin)
            *k = (uint32_t)q->end; /* past LOOP_END */
        return 0;
    }
    if (b->loop_iter >= q->max) {
        char trip[32] = "unbounded";
        if (b->loop_trip != INT64_MAX)
            snprintf(trip, sizeof(trip), "%lld", (long long)b->loop_trip);
        return seterr(err, errlen, -ERANGE,
                      "model %s: node %s: Loop: trip count %s over the bound of %d iterations",
                      plan_str(v, v->h->model_name), plan_str(v, v->nodes[*k].name), trip, q->max);
    }
    if (++*iters > ENGINE_LOOP_MAX_RUN) /* nested loops multiply: one bound for the run */
        return seterr(err, errlen, -ERANGE,
                      "model %s: node %s: Loop: more than %d loop iterations in one run",
                      plan_str(v, v->h->model_name), plan_str(v, v->nodes[*k].name),
                      ENGINE_LOOP_MAX_RUN);
    *(int64_t *)sn->k.dst = b->loop_iter;
    if (!begin)
        *k = (uint32_t)sn->k.kp.loop_end.begin; /* the node after LOOP runs next */
    return 0;
}

/* The iterations a bounded scan output's loop ran (its one writer: plan_loops_check). */
static int64_t loop_count(const struct engine_session *s, uint32_t t)
{
    for (uint32_t k = 0; k < s->m->v.n_nodes; k++)
        if (s->nodes[k].k.kind == PLAN_K_SCAN_SLICE && s->m->v.nodes[k].out == t)
            return s->nodes[s->nodes[k].k.kp.scan.begin].loop_iter;
    return 0;
}

/* A bounded output (PLAN_TF_BOUND0/1, checked at open: int64, rank 2) reports the extent its
 * kernel filled this run; a bounded scan output (PLAN_TF_LOOP_BOUND) its loop's iterations. */
static void fill_output(struct engine_session *s, uint32_t t, struct engine_tensor *out)
{
    const struct plan_tensor *pt = &s->m->v.tensors[t];
    out->name = plan_str(&s->m->v, pt->name);
    out->dtype = (int)pt->dtype;
    out->shape.rank = (int)pt->rank;
    memcpy(out->shape.dims, pt->dims, sizeof(out->shape.dims));
    out->data = s->arena + pt->offset;
    out->nbytes = (size_t)pt->nbytes;
    if (pt->flags & (PLAN_TF_BOUND0 | PLAN_TF_BOUND1)) {
        int axis = pt->flags & PLAN_TF_BOUND0 ? 0 : 1;
        out->shape.dims[axis] =
            k_bounded_count(out->data, out->nbytes / sizeof(int64_t), pt->dims[axis]);
        out->nbytes = (size_t)engine_shape_numel(&out->shape) * sizeof(int64_t);
    }
    if ((pt->flags & PLAN_TF_LOOP_BOUND) && pt->dims[0] > 0) { /* dims[0] == len */
        size_t row = out->nbytes / (size_t)pt->dims[0];
        out->shape.dims[0] = loop_count(s, t);
        out->nbytes = (size_t)out->shape.dims[0] * row;
    }
}

int engine_session_run(struct engine_session *s, const struct engine_tensor *inputs, int n_inputs,
                       struct engine_tensor *outputs, int n_outputs, char *err, size_t errlen)
{
    const struct plan_view *v = &s->m->v;
    const struct plan_header *h = v->h;
    if (n_outputs < (int)h->n_outputs || n_inputs < 0 || (n_inputs && !inputs))
        return seterr(err, errlen, -EINVAL, "model %s: %d output slots for %u outputs",
                      plan_str(v, h->model_name), n_outputs, h->n_outputs);
    for (uint32_t i = 0; i < h->n_inputs; i++) {
        int rc =
            copy_input(s, (uint32_t)v->index[h->inputs_first + i], inputs, n_inputs, err, errlen);
        if (rc)
            return rc;
    }
    cpu_set_threads(s->m->threads);
    int64_t iters = 0; /* loop iterations this run */
    for (uint32_t k = 0; k < v->n_nodes; k++) {
        struct session_node *sn = &s->nodes[k];
        if (sn->sum_from)
            memmove(sn->sum_to, sn->sum_from, sn->sum_bytes);
        if (sn->wino) {
            run_wino(sn->wino);
            continue;
        }
        if (sn->k.kind == PLAN_K_LOOP || sn->k.kind == PLAN_K_LOOP_END ||
            sn->k.kind == PLAN_K_SCAN_SLICE) {
            int rc = run_loop_node(s, &k, &iters, err, errlen);
            if (rc)
                return rc;
            continue;
        }
        if (sn->k.kind == PLAN_K_BRANCH) { /* target > k, checked at open: runs always end */
            if ((*(const uint8_t *)sn->k.in[0] != 0) == sn->k.params[1])
                k = (uint32_t)sn->k.params[0] - 1;
            continue;
        }
        int rc = sn->k.kind ? run_kernel(&sn->k)
                 : dnnl_primitive_execute(sn->prim, s->stream, sn->nargs, sn->args) == dnnl_success
                     ? 0
                     : -EIO;
        if (rc == -EINVAL || rc == -EDOM)
            return seterr(err, errlen, rc, "model %s: node %s: %s", plan_str(v, h->model_name),
                          plan_str(v, v->nodes[k].name),
                          rc == -EDOM ? "integer division by zero"
                                      : "an index or axis given at run time is out of range");
        if (rc)
            return seterr(err, errlen, -EIO, "model %s: node %s failed to run",
                          plan_str(v, h->model_name), plan_str(v, v->nodes[k].name));
    }
    if (dnnl_stream_wait(s->stream) != dnnl_success)
        return seterr(err, errlen, -EIO, "model %s: run failed", plan_str(v, h->model_name));
    for (uint32_t i = 0; i < h->n_outputs; i++)
        fill_output(s, (uint32_t)v->index[h->outputs_first + i], &outputs[i]);
    return 0;
}
