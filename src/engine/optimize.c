/*
 * optimize.c — rewrites that keep what the graph computes and make the plan smaller.
 *
 *  1. Identity, inference Dropout and other nodes that change nothing (a Pad without padding,
 *     a Cast to the same type, a Reshape to the same shape...) disappear: their consumers read
 *     the input instead, and x·HardSigmoid(x) becomes one HardSwish. When
 *     the output is a graph output the producer is renamed to write it directly; only when that
 *     is impossible (the input is a graph input, a constant or another graph output) the node
 *     stays and the backend copies.
 *  2. Along each Conv/Gemm/MatMul, while its output has exactly one consumer and is not a graph
 *     output: a BatchNormalization is folded into Conv/Gemm weights and bias (new constant
 *     tensors, so shared weights stay intact), an activation becomes an IR_POST_ACT, and a
 *     residual Add of an equal-shaped operand that is already computed becomes an IR_POST_SUM
 *     on a Conv. The fused node takes over the last node's output tensor.
 *     An If with a constant condition is inlined the same way (inline_if).
 *  3. QDQ lowering (qdq.c): a Conv between DequantizeLinear and QuantizeLinear becomes a
 *     QLinearConv.
 *  4. Nodes whose outputs nobody reads (and that are no graph output) die, last to first.
 */
#include "engine/ir.h"

#include "common/common.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void kill_node(struct ir_graph *g, struct ir_node *n)
{
    n->dead = 1;
    for (int k = 0; k < n->n_out; k++)
        if (n->out[k] >= 0 && g->tensors[n->out[k]].producer == n - g->nodes)
            g->tensors[n->out[k]].producer = -1;
}

static void replace_uses(struct ir_graph *g, int from, int to)
{
    for (int i = 0; i < g->n_nodes; i++) {
        struct ir_node *n = &g->nodes[i];
        if (n->dead)
            continue;
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] == from)
                n->in[k] = to;
        for (int k = 0; k < n->n_post; k++)
            if (n->post[k].kind == IR_POST_SUM && n->post[k].tensor == from)
                n->post[k].tensor = to;
    }
}

/* The one live node reading t exactly once, or -1 (also when t is a graph output). */
static int sole_consumer(const struct ir_graph *g, int t)
{
    if (t < 0 || g->tensors[t].flags & IR_T_OUTPUT || ir_consumers(g, t) != 1)
        return -1;
    for (int i = 0; i < g->n_nodes; i++) {
        const struct ir_node *n = &g->nodes[i];
        if (n->dead)
            continue;
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] == t)
                return i;
    }
    return -1; /* read only by a post-op */
}

static int same_shape(const struct ir_tensor *a, const struct ir_tensor *b)
{
    if (a->shape.rank != b->shape.rank || a->dtype != b->dtype)
        return 0;
    for (int i = 0; i < a->shape.rank; i++)
        if (a->shape.dims[i] != b->shape.dims[i])
            return 0;
    return 1;
}

/* ---- 1. pass-through nodes and the HardSwish pattern ---- */

/* 1 if n hands its first input on unchanged: Identity, inference Dropout, and a Pad without
 * padding, a Cast to the same type, a Reshape/Flatten/Squeeze/Unsqueeze to the same shape. */
static int is_passthrough(const struct ir_graph *g, const struct ir_node *n)
{
    static const char *const maybe[] = {"Pad",     "Cast",    "Reshape",
                                        "Flatten", "Squeeze", "Unsqueeze"};
    if (strcmp(n->op, "Identity") == 0 || strcmp(n->op, "Dropout") == 0)
        return 1;
    int candidate = 0;
    for (size_t i = 0; i < ARRAY_LEN(maybe); i++)
        candidate |= strcmp(n->op, maybe[i]) == 0;
    if (!candidate || n->n_in < 1 || n->in[0] < 0 || n->n_out < 1 || n->out[0] < 0 ||
        !same_shape(&g->tensors[n->in[0]], &g->tensors[n->out[0]]))
        return 0;
    const struct ir_attr *pads = ir_attr_get(n, "pads");
    for (size_t i = 0; strcmp(n->op, "Pad") == 0 && pads && i < pads->n; i++)
        if (pads->ints[i] != 0)
            return 0;
    return strcmp(n->op, "Pad") != 0 || pads;
}

/* x · HardSigmoid(x; alpha 1/6, beta 1/2) is HardSwish(x): PyTorch exports hardswish so before
 * opset 14. The Mul becomes a HardSwish of x, so it can fuse into the Conv producing x. */
static int fuse_hardswish(struct ir_graph *g, int mi)
{
    struct ir_node *m = &g->nodes[mi];
    if (strcmp(m->op, "Mul") != 0 || m->n_in != 2 || m->in[0] < 0 || m->in[1] < 0)
        return 0;
    for (int k = 0; k < 2; k++) {
        int h = m->in[k], x = m->in[1 - k], hp = g->tensors[h].producer;
        if (hp < 0)
            continue;
        struct ir_node *hs = &g->nodes[hp];
        if (hs->dead || strcmp(hs->op, "HardSigmoid") != 0 || hs->in[0] != x ||
            ir_attr_float(hs, "alpha", 0.2f) != 1.0f / 6.0f ||
            ir_attr_float(hs, "beta", 0.5f) != 0.5f ||
            !same_shape(&g->tensors[x], &g->tensors[m->out[0]]) ||
            g->tensors[h].flags & IR_T_OUTPUT || ir_consumers(g, h) != 1)
            continue;
        char *op = strdup("HardSwish");
        if (!op)
            return -ENOMEM;
        free(m->op);
        m->op = op;
        m->in[0] = x;
        m->n_in = 1;
        kill_node(g, hs);
        return 1;
    }
    return 0;
}

static int drop_passthrough(struct ir_graph *g, int i)
{
    struct ir_node *n = &g->nodes[i];
    if (n->n_out > 1 && n->out[1] >= 0 &&
        (ir_consumers(g, n->out[1]) > 0 || g->tensors[n->out[1]].flags & IR_T_OUTPUT))
        return 0; /* Dropout's mask is used */
    int x = n->in[0], y = n->out[0];
    if (y < 0) {
        kill_node(g, n);
        return 0;
    }
    if (!(g->tensors[y].flags & IR_T_OUTPUT)) {
        kill_node(g, n);
        replace_uses(g, y, x);
        return 0;
    }
    int p = g->tensors[x].producer;
    if (p < 0 || g->tensors[x].flags & (IR_T_OUTPUT | IR_T_INPUT))
        return 0;
    kill_node(g, n);
    struct ir_node *pn = &g->nodes[p];
    for (int k = 0; k < pn->n_out; k++)
        if (pn->out[k] == x)
            pn->out[k] = y;
    g->tensors[y].producer = p;
    g->tensors[x].producer = -1;
    replace_uses(g, x, y);
    return 0;
}

/* An If whose condition is constant (its taken branch's nodes already run as the enclosing
 * scope's): a consumer of an output reads the taken branch's tensor instead, and a graph output
 * is written by that tensor's producer directly. Only an output that cannot be (the taken tensor
 * is a graph input, a constant or another graph output) keeps the If, which then copies. */
static void inline_if(struct ir_graph *g, int i)
{
    struct ir_node *n = &g->nodes[i];
    int base = *(const uint8_t *)g->tensors[n->in[0]].data ? 1 : 1 + n->n_out, live = 0;
    for (int k = 0; k < n->n_out; k++) {
        int x = n->in[base + k], y = n->out[k];
        if (y < 0)
            continue;
        int p = g->tensors[x].producer;
        if (g->tensors[y].flags & IR_T_OUTPUT &&
            (p < 0 || g->tensors[x].flags & (IR_T_OUTPUT | IR_T_INPUT))) {
            live = 1;
            continue;
        }
        n->out[k] = -1;
        g->tensors[y].producer = -1;
        if (!(g->tensors[y].flags & IR_T_OUTPUT)) {
            replace_uses(g, y, x);
            continue;
        }
        struct ir_node *pn = &g->nodes[p];
        for (int j = 0; j < pn->n_out; j++)
            if (pn->out[j] == x)
                pn->out[j] = y;
        g->tensors[y].producer = p;
        g->tensors[x].producer = -1;
        replace_uses(g, x, y);
    }
    if (!live)
        kill_node(g, n);
}

/* ---- 2a. BatchNormalization folding ---- */

struct bn {
    const float *scale, *bias, *mean, *var;
    double eps;
    int64_t c;
};

static int read_bn(const struct ir_graph *g, const struct ir_node *q, struct bn *bn)
{
    const float *p[4];
    for (int k = 0; k < 4; k++) {
        const struct ir_tensor *t = &g->tensors[q->in[1 + k]];
        if (!t->data || t->dtype != ENGINE_F32)
            return 0;
        p[k] = t->data;
    }
    bn->scale = p[0], bn->bias = p[1], bn->mean = p[2], bn->var = p[3];
    bn->eps = ir_attr_float(q, "epsilon", 1e-5f);
    bn->c = g->tensors[q->in[1]].shape.dims[0];
    return bn->c > 0;
}

static double bn_factor(const struct bn *bn, int64_t c)
{
    return bn->scale[c] / sqrt((double)bn->var[c] + bn->eps);
}

/* Gives p a third input slot (bias) if it has none. */
static int ensure_bias_slot(struct ir_node *p)
{
    if (p->n_in >= 3)
        return 0;
    int *in = realloc(p->in, 3 * sizeof(int));
    if (!in)
        return -ENOMEM;
    for (int k = p->n_in; k < 3; k++)
        in[k] = -1;
    p->in = in;
    p->n_in = 3;
    return 0;
}

/* W'[m,...] = W[m,...]·s[m]; b'[m] = (b[m] − mean[m])·s[m] + β[m]. */
static int fold_bn_conv(struct ir_graph *g, int pi, const struct bn *bn)
{
    struct ir_node *p = &g->nodes[pi];
    const struct ir_tensor *w = &g->tensors[p->in[1]];
    const struct ir_tensor *b = p->n_in > 2 && p->in[2] >= 0 ? &g->tensors[p->in[2]] : NULL;
    if (!w->data || w->dtype != ENGINE_F32 || w->shape.dims[0] != bn->c || bn->c <= 0 ||
        (b && !b->data))
        return 0;
    size_t per = (size_t)(engine_shape_numel(&w->shape) / bn->c);
    float *nw = malloc(w->nbytes ? w->nbytes : 1), *nb = malloc((size_t)bn->c * sizeof(float));
    if (!nw || !nb) {
        free(nw), free(nb);
        return -ENOMEM;
    }
    for (int64_t m = 0; m < bn->c; m++) {
        double s = bn_factor(bn, m), b0 = b ? ((const float *)b->data)[m] : 0.0;
        for (size_t j = 0; j < per; j++)
            nw[(size_t)m * per + j] = (float)(((const float *)w->data)[(size_t)m * per + j] * s);
        nb[m] = (float)((b0 - bn->mean[m]) * s + bn->bias[m]);
    }
    struct engine_shape ws = w->shape, bs = {.rank = 1, .dims = {bn->c}};
    char wname[256];
    snprintf(wname, sizeof(wname), "%s", w->name);
    int tw = ir_add_const(g, wname, "::bn", ENGINE_F32, &ws, nw);
    int tb = ir_add_const(g, wname, "::bn_bias", ENGINE_F32, &bs, nb);
    if (tw < 0 || tb < 0 || ensure_bias_slot(&g->nodes[pi]))
        return -ENOMEM;
    g->nodes[pi].in[1] = tw;
    g->nodes[pi].in[2] = tb;
    return 1;
}

/* Y = α·A·B + β·C, then BN over N: scale B's n-th column (row if transB), bias
 * c'[n] = (β·C[n] − mean[n])·s[n] + bias[n] with β := 1. */
static int fold_bn_gemm(struct ir_graph *g, int pi, const struct bn *bn)
{
    struct ir_node *p = &g->nodes[pi];
    const struct ir_tensor *w = &g->tensors[p->in[1]];
    const struct ir_tensor *c = p->n_in > 2 && p->in[2] >= 0 ? &g->tensors[p->in[2]] : NULL;
    int tb = (int)ir_attr_int(p, "transB", 0);
    int64_t rows = w->shape.dims[0], cols = w->shape.dims[1];
    int64_t cn = c ? engine_shape_numel(&c->shape) : 0;
    if (!w->data || w->dtype != ENGINE_F32 || (tb ? rows : cols) != bn->c ||
        (c &&
         (!c->data || (cn != 1 && cn != bn->c) || (c->shape.rank == 2 && c->shape.dims[0] != 1))))
        return 0;
    float beta = ir_attr_float(p, "beta", 1.0f);
    float *nw = malloc(w->nbytes ? w->nbytes : 1), *nb = malloc((size_t)bn->c * sizeof(float));
    if (!nw || !nb) {
        free(nw), free(nb);
        return -ENOMEM;
    }
    for (int64_t r = 0; r < rows; r++)
        for (int64_t k = 0; k < cols; k++)
            nw[r * cols + k] =
                (float)(((const float *)w->data)[r * cols + k] * bn_factor(bn, tb ? r : k));
    for (int64_t n = 0; n < bn->c; n++) {
        double c0 = c ? (double)beta * ((const float *)c->data)[cn == 1 ? 0 : n] : 0.0;
        nb[n] = (float)((c0 - bn->mean[n]) * bn_factor(bn, n) + bn->bias[n]);
    }
    struct engine_shape ws = w->shape, bs = {.rank = 1, .dims = {bn->c}};
    char wname[256];
    snprintf(wname, sizeof(wname), "%s", w->name);
    int twi = ir_add_const(g, wname, "::bn", ENGINE_F32, &ws, nw);
    int tbi = ir_add_const(g, wname, "::bn_bias", ENGINE_F32, &bs, nb);
    if (twi < 0 || tbi < 0 || ensure_bias_slot(&g->nodes[pi]) ||
        ir_attr_set_float(&g->nodes[pi], "beta", 1.0f))
        return -ENOMEM;
    g->nodes[pi].in[1] = twi;
    g->nodes[pi].in[2] = tbi;
    return 1;
}

static int fold_bn(struct ir_graph *g, int pi, int qi)
{
    struct ir_node *p = &g->nodes[pi], *q = &g->nodes[qi];
    struct bn bn;
    if (p->n_post > 0 || q->in[0] != p->out[0] || !read_bn(g, q, &bn))
        return 0;
    if (strcmp(p->op, "Conv") == 0)
        return fold_bn_conv(g, pi, &bn);
    if (strcmp(p->op, "Gemm") == 0)
        return fold_bn_gemm(g, pi, &bn);
    return 0;
}

/* ---- 2b. activations and residual sums as post-ops ---- */

static int fuse_act(struct ir_graph *g, int pi, int qi)
{
    struct ir_node *p = &g->nodes[pi], *q = &g->nodes[qi];
    enum ir_act act;
    float a, b;
    if (p->n_post >= IR_MAX_POST || q->in[0] != p->out[0] || !ir_node_act(g, q, &act, &a, &b))
        return 0;
    p->post[p->n_post++] =
        (struct ir_post_op){.kind = IR_POST_ACT, .act = act, .alpha = a, .beta = b, .tensor = -1};
    return 1;
}

static int fuse_sum(struct ir_graph *g, int pi, int qi)
{
    struct ir_node *p = &g->nodes[pi], *q = &g->nodes[qi];
    if (strcmp(p->op, "Conv") != 0 || strcmp(q->op, "Add") != 0 || p->n_post != 0)
        return 0;
    int y = p->out[0], other = q->in[0] == y ? q->in[1] : q->in[0];
    const struct ir_tensor *yt = &g->tensors[y], *ot = &g->tensors[other];
    if (!same_shape(yt, ot) || !same_shape(yt, &g->tensors[q->out[0]]) || yt->dtype != ENGINE_F32)
        return 0;
    /* the addend is an activation (not a constant) that already exists when p runs */
    if (ot->data || ot->producer >= pi)
        return 0;
    p->post[p->n_post++] =
        (struct ir_post_op){.kind = IR_POST_SUM, .act = IR_ACT_NONE, .tensor = other};
    return 1;
}

/* q's output becomes p's; q dies. */
static void absorb(struct ir_graph *g, int pi, int qi)
{
    struct ir_node *p = &g->nodes[pi], *q = &g->nodes[qi];
    int y = p->out[0], z = q->out[0];
    kill_node(g, q);
    p->out[0] = z;
    g->tensors[z].producer = pi;
    g->tensors[y].producer = -1;
}

static int fuse_chain(struct ir_graph *g, int pi)
{
    for (;;) {
        int qi = sole_consumer(g, g->nodes[pi].out[0]);
        if (qi < 0)
            return 0;
        const char *op = g->nodes[qi].op;
        if (g->nodes[qi].out[0] < 0) /* an absent output ("") has no tensor to take over */
            return 0;
        /* a node of an If branch runs only when its branch is taken: never fused across */
        if (ir_node_scope(g, &g->nodes[qi]) != ir_node_scope(g, &g->nodes[pi]))
            return 0;
        int rc = 0;
        if (strcmp(op, "BatchNormalization") == 0)
            rc = fold_bn(g, pi, qi);
        else if (strcmp(op, "Add") == 0)
            rc = fuse_sum(g, pi, qi);
        else
            rc = fuse_act(g, pi, qi);
        if (rc <= 0)
            return rc;
        absorb(g, pi, qi);
    }
}

/* ---- 3. dead nodes: nothing reads their outputs and none is a graph output ---- */

/* Counts readers once, then walks backwards so a whole dead branch goes in one pass. */
static int drop_dead(struct ir_graph *g)
{
    int *readers = calloc((size_t)g->n_tensors + 1, sizeof(int));
    if (!readers)
        return -ENOMEM;
    for (int i = 0; i < g->n_nodes; i++) {
        const struct ir_node *n = &g->nodes[i];
        for (int k = 0; !n->dead && k < n->n_in; k++)
            readers[n->in[k] >= 0 ? n->in[k] : g->n_tensors]++;
        for (int k = 0; !n->dead && k < n->n_post; k++)
            if (n->post[k].kind == IR_POST_SUM)
                readers[n->post[k].tensor]++;
    }
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        struct ir_node *n = &g->nodes[i];
        int used = 0;
        for (int k = 0; k < n->n_out; k++)
            used |= n->out[k] >= 0 &&
                    (readers[n->out[k]] > 0 || g->tensors[n->out[k]].flags & IR_T_OUTPUT);
        if (n->dead || used)
            continue;
        kill_node(g, n);
        for (int k = 0; k < n->n_in; k++)
            readers[n->in[k] >= 0 ? n->in[k] : g->n_tensors]--;
        for (int k = 0; k < n->n_post; k++)
            if (n->post[k].kind == IR_POST_SUM)
                readers[n->post[k].tensor]--;
    }
    free(readers);
    return 0;
}

int ir_optimize(struct ir_graph *g, char *err, size_t errlen)
{
    for (int i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].dead)
            continue;
        if (is_passthrough(g, &g->nodes[i]))
            drop_passthrough(g, i);
        else if (strcmp(g->nodes[i].op, "If") == 0 && g->tensors[g->nodes[i].in[0]].data)
            inline_if(g, i);
        else if (fuse_hardswish(g, i) < 0)
            return ir_node_err(g, &g->nodes[i], err, errlen, -ENOMEM, "out of memory");
    }
    for (int i = 0; i < g->n_nodes; i++) {
        const char *op = g->nodes[i].op;
        if (g->nodes[i].dead || g->nodes[i].n_out < 1 || g->nodes[i].out[0] < 0 ||
            (strcmp(op, "Conv") && strcmp(op, "Gemm") && strcmp(op, "MatMul")))
            continue;
        int rc = fuse_chain(g, i);
        if (rc < 0)
            return ir_node_err(g, &g->nodes[i], err, errlen, rc, "out of memory while fusing");
    }
    if (ir_lower_qdq(g) || drop_dead(g))
        return seterr(err, errlen, -ENOMEM, "model %s: out of memory", g->name);
    return 0;
}
