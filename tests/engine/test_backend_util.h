/*
 * test_backend_util.h — building small post-optimisation IR graphs by hand for the backend tests,
 * and compiling/opening/running them. Header-only test helpers (static functions).
 */
#ifndef SHMFAAS_TESTS_BACKEND_UTIL_H
#define SHMFAAS_TESTS_BACKEND_UTIL_H

#include "common/common.h"
#include "engine/ir.h"
#include "engine/plan.h"
#include "engine/winograd.h"

#include <dnnl.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* SHAPE(rank, dims...): the values become an int64_t array first, so plain int literals are
 * read at their real width. */
static inline struct engine_shape tb_shape(const int64_t *v)
{
    struct engine_shape s = {.rank = (int)v[0]};
    for (int i = 0; i < s.rank; i++)
        s.dims[i] = v[1 + i];
    return s;
}

#define SHAPE(...) tb_shape((const int64_t[]){__VA_ARGS__})

static inline struct ir_graph *tb_graph(void)
{
    struct ir_graph *g = calloc(1, sizeof(*g));
    g->name = strdup("test");
    g->opset = 13;
    return g;
}

/* Deterministic values in [-1, 1). */
static inline float tb_rand(uint32_t *state)
{
    *state = *state * 1664525u + 1013904223u;
    return (float)((*state >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static inline float *tb_fill(size_t n, uint32_t seed)
{
    float *p = malloc(n * sizeof(float) + 1);
    for (size_t i = 0; i < n; i++)
        p[i] = tb_rand(&seed);
    return p;
}

/* An activation tensor with a known shape. */
static inline int tb_act(struct ir_graph *g, const char *name, struct engine_shape s)
{
    int t = ir_add_tensor(g, name);
    g->tensors[t].dtype = ENGINE_F32;
    g->tensors[t].shape = s;
    g->tensors[t].shape_known = 1;
    return t;
}

/* A float constant with random (or given, copied) values. */
static inline int tb_const(struct ir_graph *g, const char *name, struct engine_shape s,
                           const float *values, uint32_t seed)
{
    size_t n = (size_t)engine_shape_numel(&s);
    float *d = values ? malloc(n * sizeof(float) + 1) : tb_fill(n, seed);
    if (values)
        memcpy(d, values, n * sizeof(float));
    return ir_add_const(g, name, "", ENGINE_F32, &s, d);
}

static inline void tb_input(struct ir_graph *g, int t)
{
    g->inputs = realloc(g->inputs, (size_t)(g->n_inputs + 1) * sizeof(int));
    g->inputs[g->n_inputs++] = t;
    g->tensors[t].flags |= IR_T_INPUT;
}

static inline void tb_output(struct ir_graph *g, int t)
{
    g->outputs = realloc(g->outputs, (size_t)(g->n_outputs + 1) * sizeof(int));
    g->outputs[g->n_outputs++] = t;
    g->tensors[t].flags |= IR_T_OUTPUT;
}

/* Appends a node; ins/outs end at the first -2. */
static inline struct ir_node *tb_node(struct ir_graph *g, const char *op, const int *ins, int n_in,
                                      int out)
{
    g->nodes = realloc(g->nodes, (size_t)(g->n_nodes + 1) * sizeof(*g->nodes));
    struct ir_node *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof(*n));
    char name[64];
    snprintf(name, sizeof(name), "%s_%d", op, g->n_nodes);
    n->name = strdup(name);
    n->op = strdup(op);
    n->in = malloc((size_t)n_in * sizeof(int) + 1);
    memcpy(n->in, ins, (size_t)n_in * sizeof(int));
    n->n_in = n_in;
    n->out = malloc(sizeof(int));
    n->out[0] = out;
    n->n_out = 1;
    g->tensors[out].producer = g->n_nodes;
    g->n_nodes++;
    return n;
}

static inline void tb_ints_array(struct ir_node *n, const char *name, int count, const int64_t *v)
{
    ir_attr_set_ints(n, name, v, (size_t)count);
}

#define tb_ints(n, name, count, ...) tb_ints_array(n, name, count, (const int64_t[]){__VA_ARGS__})

/* Adds a string attribute (ir.h has setters for numbers only). */
static inline void tb_str(struct ir_node *n, const char *name, const char *value)
{
    n->attrs = realloc(n->attrs, (size_t)(n->n_attrs + 1) * sizeof(*n->attrs));
    struct ir_attr *a = &n->attrs[n->n_attrs++];
    memset(a, 0, sizeof(*a));
    a->name = strdup(name);
    a->type = IR_ATTR_STRING;
    a->s = strdup(value);
    a->tensor = -1;
}

/* Compiles g (then frees it); returns 0 and the image, or the error code with err filled. */
/* y = relu(Conv 3x3, pad 1, of x + bias) with random weights "w" (seed) and bias "b" (seed + 1),
 * channels from the shapes of x and y. */
static inline struct ir_node *tb_conv3x3_relu(struct ir_graph *g, int x, int y, uint32_t seed)
{
    int64_t c = g->tensors[x].shape.dims[1], k = g->tensors[y].shape.dims[1];
    int w = tb_const(g, "w", SHAPE(4, k, c, 3, 3), NULL, seed);
    int b = tb_const(g, "b", SHAPE(1, k), NULL, seed + 1);
    int ins[3] = {x, w, b};
    struct ir_node *n = tb_node(g, "Conv", ins, 3, y);
    tb_ints(n, "pads", 4, 1, 1, 1, 1);
    n->post[n->n_post++] = (struct ir_post_op){.kind = IR_POST_ACT, .act = IR_ACT_RELU};
    return n;
}

/* Compiles (and frees) g; winograd is an ENGINE_WINOGRAD_* setting. */
static inline int tb_compile_wino(struct ir_graph *g, int threads, int winograd, void **img,
                                  size_t *len, char *err, size_t errlen)
{
    struct plan_compile_opts o = {.threads = threads, .winograd = winograd, .model_name = "test"};
    int rc = plan_compile(g, &o, img, len, err, errlen);
    ir_free(g);
    return rc;
}

static inline int tb_compile(struct ir_graph *g, int threads, void **img, size_t *len, char *err,
                             size_t errlen)
{
    return tb_compile_wino(g, threads, ENGINE_WINOGRAD_AUTO, img, len, err, errlen);
}

/* How many nodes of plan op `op` the image holds. */
static inline int tb_count_op(const void *img, size_t len, uint32_t op)
{
    struct plan_view v;
    char err[256];
    int count = 0;
    if (plan_view_init(&v, img, len, err, sizeof(err)))
        return -1;
    for (uint32_t i = 0; i < v.n_nodes; i++)
        count += v.nodes[i].op == op;
    return count;
}

/* Index of the first node running op in img (-1 when there is none). */
static inline int tb_first_op(const void *img, size_t len, uint32_t op)
{
    struct plan_view v;
    char err[256];
    if (plan_view_init(&v, img, len, err, sizeof(err)))
        return -1;
    for (uint32_t i = 0; i < v.n_nodes; i++)
        if (v.nodes[i].op == op)
            return (int)i;
    return -1;
}

/* Whether the compiler can lower a 3x3 conv to Winograd here: our kernels need AVX2+FMA (they
 * run on the nChw8c, nChw16c or nhwc layout oneDNN picks for the conv stack). */
static inline int tb_winograd_here(void)
{
    return wino_supported();
}

#endif
