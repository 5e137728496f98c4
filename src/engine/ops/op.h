/*
 * ops/op.h — what every op family file (src/engine/ops/) shares. Engine-internal.
 *
 * An ONNX op (or a family of ops sharing a kernel) lives in one file under src/engine/ops/: its
 * shape rule (infer: checks attributes, input dtypes and shapes, sets the outputs'), its
 * constant evaluation (eval, kernels.h; no_eval if it is never folded) and its lowering to plan
 * nodes (lower; no_lower if it is always folded away). ops.def lists every op once with the
 * lowest opset the engine accepts it at; this header declares every function a row names, so
 * adding an op is one row there plus its functions in its family file (docs/architecture.md,
 * "Adding an operator").
 *
 * The helpers below are the toolkit those functions use: shape-rule helpers (op_util.c) and the
 * lowering toolkit over struct lower (lower.c: plan tensors, layouts, emitting nodes).
 */
#ifndef SHMFAAS_ENGINE_OPS_OP_H
#define SHMFAAS_ENGINE_OPS_OP_H

#include "common/common.h"
#include "engine/ir.h"
#include "engine/kernel_params.h"
#include "engine/kernels.h"
#include "engine/plan.h"
#include "engine/winograd.h"

#include <assert.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the functions every row of ops.def names ---- */

#define OP(name_, since_, legacy_, infer_, eval_, lower_)                                          \
    int infer_(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen);                   \
    int eval_(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen);                    \
    int lower_(struct lower *l, const struct ir_node *n);
#include "engine/ops/ops.def"
#undef OP

/* Returns 1: the node cannot be evaluated at compile time and stays live (never folded). */
int no_eval(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen);
/* Refuses the node: its op is always folded to a constant and has no kernel. */
int no_lower(struct lower *l, const struct ir_node *n);
/* ops/sequence.c: makes n's output a copy of sequence (or optional) x and retires n (Identity of
 * a sequence). */
int seq_forward(struct ir_graph *g, struct ir_node *n, int x, char *err, size_t errlen);
/* 1 when op n takes sequence inputs (its shape rule resolves them); other ops refuse them. */
int seq_op(const struct ir_node *n);
/* ops/sequence.c: an If whose branches give sequences (of equal lengths) as an output gets one
 * output per element instead (then/else inputs likewise), its sequence output listing them;
 * called before infer_if. */
int seq_if(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen);

/* ---- shape-rule helpers (op_util.c) ---- */

#define MAX_INFERRED_BYTES ((uint64_t)16 << 30)

#define MAX_SPATIAL 3

struct window {
    int k; /* spatial rank */
    int64_t kernel[MAX_SPATIAL], stride[MAX_SPATIAL], dil[MAX_SPATIAL];
    int64_t pads[2 * MAX_SPATIAL]; /* begins, then ends */
};

/* Input i of n, or NULL when absent (optional input left out or past n_in). */
struct ir_tensor *in_t(struct ir_graph *g, const struct ir_node *n, int i);
/* "[1,3,224,224]" into buf (128 bytes), for messages. */
const char *shape_s(const struct engine_shape *s, char *buf);
/* Refuses n unless it has min_in to max_in inputs, each required one present. */
int arity(struct ir_graph *g, struct ir_node *n, int min_in, int max_in, char *err, size_t errlen);
/* Refuses input i (if present) of another dtype than dtype. */
int want_dtype(struct ir_graph *g, struct ir_node *n, int i, int dtype, char *err, size_t errlen);
/* Sets output i (if present) to dtype and shape s, refusing negative or oversized dims. */
int set_out(struct ir_graph *g, struct ir_node *n, int i, int dtype, const struct engine_shape *s,
            char *err, size_t errlen);
/* Axis in [-rank, rank) → [0, rank). */
int norm_axis(struct ir_graph *g, struct ir_node *n, int64_t axis, int rank, int *out, char *err,
              size_t errlen);
/* Reads an int64/int32 constant input as up to max int64 values. */
int const_ints(struct ir_graph *g, struct ir_node *n, int i, int64_t *v, int max, int *count,
               char *err, size_t errlen);
/* An INTS attribute of exactly `expect` values, or `def` everywhere when absent. */
int attr_ints(struct ir_graph *g, struct ir_node *n, const char *name, int64_t *v, int expect,
              int64_t def, char *err, size_t errlen);
/* A zeroed buffer for present output i's data (its shape set); NULL on failure. */
void *alloc_out(struct ir_graph *g, struct ir_node *n, int i);
/* Makes output i constant with data (ownership taken; freed for an absent output). */
int set_data(struct ir_graph *g, struct ir_node *n, int i, void *data);
/* The error for an allocation failure while folding. */
int oom(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen);
/* Reads kernel/strides/dilations/pads/auto_pad of a Conv or pool into w. */
int read_window(struct ir_graph *g, struct ir_node *n, struct window *w, char *err, size_t errlen);
/* Output spatial dims; resolves auto_pad into explicit pads. */
int window_out(struct ir_graph *g, struct ir_node *n, struct window *w, const int64_t *in,
               int ceil_mode, int64_t *out, char *err, size_t errlen);
/* Writes w back as explicit attributes (the backend reads only those). */
int write_window(struct ir_node *n, const struct window *w);
/* Refuses x unless it is [N, C, spatial...] with 1 to 3 spatial dims. */
int spatial_input(struct ir_graph *g, struct ir_node *n, struct ir_tensor *x, char *err,
                  size_t errlen);
/* Axes from the attribute (before opset 13) or the constant second input. */
int read_axes(struct ir_graph *g, struct ir_node *n, int64_t *v, int *k, char *err, size_t errlen);
/* The error naming x's dtype as unsupported by n's op. */
int unsupported_type(struct ir_graph *g, struct ir_node *n, const struct ir_tensor *x, char *err,
                     size_t errlen);
/* 1 for uint8 and int8. */
int is_q8(int dtype);
/* Refuses input i unless it is int32 or int64 (an index tensor). */
int index_input(struct ir_graph *g, struct ir_node *n, int i, char *err, size_t errlen);

/* ---- the lowering toolkit (lower.c) ---- */

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
    int winograd;       /* ENGINE_WINOGRAD_* */
    uint8_t *wino_pick; /* auto: 1 for each IR node picked for Winograd (pick_winograd) */
    /* Lowers one node by its op's row (compile.c): how an op that holds other nodes (If) lowers
     * them without its file and the op table referring to each other. */
    int (*lower_node)(struct lower *l, const struct ir_node *n);
    char *err;
    size_t errlen;
};

/* Pseudo layout of the relayout cache: a constant's copy in the arena. */
#define PLAN_LAYOUT_ARENA_COPY 0xfffffffeu

struct step {
    dnnl_alg_kind_t alg;
    float alpha, beta;
};

int lerr(struct lower *l, const struct ir_node *n, int code, const char *what);
int64_t add_plan_tensor(struct lower *l, const struct ir_tensor *it, uint32_t storage);
/* The plan tensor for IR tensor t as an operand: constants become CONST on first use. */
int64_t operand_of(struct lower *l, const struct ir_node *n, int t);
int64_t output_of(struct lower *l, const struct ir_node *n, int k);
/* Gives arena tensor pt a layout; its size becomes that layout's (padded) size. */
int set_layout(struct lower *l, int64_t pt, uint32_t layout);
/* Activation pt in the given layout: itself, or the output of a (shared) reorder node. */
int64_t in_layout(struct lower *l, const struct ir_node *n, int64_t pt, uint32_t layout);
/* IR tensor t as an activation operand: a constant (ops that folding leaves alone, e.g. a Conv
 * of constants) is copied into the arena by a copy node, once. */
int64_t act_operand(struct lower *l, const struct ir_node *n, int t);
/* IR tensor t as an operand that must be plain row-major. */
int64_t plain_operand(struct lower *l, const struct ir_node *n, int t);
/* An activation operand in plain row-major. */
int64_t plain_act_operand(struct lower *l, const struct ir_node *n, int t);
uint32_t layout_of(const struct lower *l, int64_t pt);
const struct ir_tensor *ir_in(const struct lower *l, const struct ir_node *n, int i);
/* Up to two steps for one activation; returns the count or -EINVAL. */
int act_steps(enum ir_act act, float alpha, float beta, struct step s[2]);
int push_post(struct plan_node *pn, uint32_t kind, const struct step *s);
/* Copies the IR node's fused post-ops; a SUM names its addend (only CONV/INNER take one). */
int lower_posts(struct lower *l, const struct ir_node *n, struct plan_node *pn);
/* Emits a primitive node without packed weights: output out, inputs ins, the node's post-ops. */
int emit_with_posts(struct lower *l, const struct ir_node *n, struct plan_node *pn, int64_t out,
                    const int64_t *ins, uint32_t n_in);
struct plan_node node_init(struct lower *l, const struct ir_node *n, uint32_t op);
int set_inputs(struct lower *l, struct plan_node *pn, const int64_t *ts, uint32_t count);
/* Adds pn, resolves its primitive (packing weights when wt is a PACKED tensor) and records the
 * implementation name. */
int emit(struct lower *l, const struct ir_node *n, const struct plan_node *pn, int64_t wt,
         const void *plain_weights);
int64_t emit_copy(struct lower *l, const struct ir_node *n, int64_t from, int64_t to);
/* A PACKED tensor for weights with the given logical dims (bytes filled by pack_weights). */
int64_t packed_tensor(struct lower *l, const struct ir_tensor *w, int rank, const int64_t *dims);
int get_ints(const struct ir_node *n, const char *name, int64_t *out, int count, int64_t def);
/* kernel/strides/dilations/pads of a window op; right pads follow from the output shape so
 * ceil_mode needs no special case. */
int node_window(struct lower *l, const struct ir_node *n, const struct ir_tensor *x,
                const struct ir_tensor *y, const int64_t *kernel, struct plan_node *pn);
/* Appends int32 kernel parameters to the index section. */
int set_params(struct lower *l, struct plan_node *pn, const int64_t *vals, uint32_t count);
int emit_kernel(struct lower *l, const struct ir_node *n, uint32_t kind, const int64_t *ins,
                uint32_t n_in, const int64_t *params, uint32_t n_params, int64_t axis);
/* Emits a math kernel from plain operands ins into plan tensor out. */
int emit_math_to(struct lower *l, const struct ir_node *n, int64_t out, uint32_t kind,
                 const int64_t *ins, uint32_t n_in, const int64_t *params, uint32_t n_params,
                 int64_t axis, float alpha, float beta);
/* The same, writing output k of n. */
int emit_math(struct lower *l, const struct ir_node *n, int k, uint32_t kind, const int64_t *ins,
              uint32_t n_in, const int64_t *params, uint32_t n_params, int64_t axis, float alpha,
              float beta);
/* Plain operands of n's first inputs, up to count or the first absent one; returns how many. */
int math_operands(struct lower *l, const struct ir_node *n, int count, int64_t *ins);
/* Integer values of an optional constant input (int32 or int64); count them in *n. */
int const_input_ints(struct lower *l, const struct ir_node *n, int i, int64_t *out, int *count);
/* Plain operands for inputs 0..count-1 of n. */
int plain_inputs(struct lower *l, const struct ir_node *n, int count, int64_t *ins);

/* ---- family helpers the driver uses ---- */

/* ops/loop.c: gives the vars of the Loop/Scan body `scope` and of every body enclosing it their
 * dtypes and shapes, from the node's inputs (shape.c, before the body's first node). */
int loop_enter(struct ir_graph *g, int scope, char *err, size_t errlen);

/* ops/conv.c: marks in l->wino_pick the convolutions ENGINE_WINOGRAD_AUTO runs as Winograd. */
int pick_winograd(struct lower *l);

#endif
