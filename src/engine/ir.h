/*
 * ir.h — the engine's in-memory graph, between ONNX import and the plan compiler.
 * Engine-internal: nothing outside src/engine includes it.
 *
 * Pipeline (engine_compile): ir_import_onnx → ir_infer_shapes → ir_fold_constants → ir_optimize
 * → plan compiler (compile.c, ops/) → image. After ir_import_onnx the node array is in
 * topological order and every node input names a tensor that exists; after ir_infer_shapes every
 * live tensor has a known dtype and concrete shape; after ir_fold_constants no live node has only
 * constant inputs (except ops the table gives no eval: Conv, Gemm, MatMul, pooling,
 * BatchNormalization); ir_optimize marks nodes dead, rewires their consumers (and graph outputs) to
 * the surviving tensors, gives BN-folded Conv/Gemm new weight/bias constants, turns
 * x·HardSigmoid(x) into a HardSwish node, and records fusions (post-ops) on the surviving nodes; it
 * never adds nodes.
 *
 * Ownership: the graph owns every string, array and tensor payload it points to (ir_free).
 */
#ifndef SHMFAAS_ENGINE_IR_H
#define SHMFAAS_ENGINE_IR_H

#include "engine/engine.h"

#include <stddef.h>
#include <stdint.h>

/* AttributeProto.AttributeType values. */
enum ir_attr_type {
    IR_ATTR_FLOAT = 1,
    IR_ATTR_INT = 2,
    IR_ATTR_STRING = 3,
    IR_ATTR_TENSOR = 4,
    IR_ATTR_GRAPH = 5, /* an If branch or a Loop/Scan body, flattened at import: i is its scope
                          (struct ir_scope) */
    IR_ATTR_FLOATS = 6,
    IR_ATTR_INTS = 7,
};

struct ir_attr {
    char *name;
    enum ir_attr_type type;
    int64_t i;
    float f;
    char *s; /* NUL-terminated copy */
    int64_t *ints;
    float *floats;
    size_t n;   /* length of ints / floats */
    int tensor; /* IR_ATTR_TENSOR: index into graph tensors (a constant) */
};

enum ir_tensor_flags {
    IR_T_INPUT = 1,  /* graph input fed at run time */
    IR_T_OUTPUT = 2, /* graph output */
    IR_T_BOUND0 = 4, /* dim 0 is an upper bound: how much of it a run fills depends on the data */
    IR_T_BOUND1 = 8, /* the same for dim 1 (ops/detect.c); only a graph output may be bounded */
    IR_T_SEQ = 16,   /* a sequence value, resolved at compile time (ops/sequence.c): seq[] lists
                        its element tensors; dtype is theirs, shape unused (a graph input's: the
                        declared element shape) */
    IR_T_OPTIONAL = 32, /* with IR_T_SEQ: an optional, at most one element (itself maybe a
                           sequence) */
    IR_T_OPTSEQ = 64,   /* a graph input or output declared an optional of a sequence: as an
                           input always present, its sequence's elements fed as NAME[k] */
};

struct ir_tensor {
    char *name;
    int dtype;                 /* enum engine_dtype; 0 = not yet known */
    struct engine_shape shape; /* valid when shape_known */
    int shape_known;
    void *data; /* constant payload (initializer, Constant, folded) in plain row-major, or NULL */
    size_t nbytes; /* of data */
    int producer;  /* producing live node, or -1 */
    unsigned flags;
    int *seq; /* IR_T_SEQ: the element tensors, seq_len of them (malloc'd; NULL when empty) */
    int seq_len;
};

/* Element-wise activations the plan compiler can run as oneDNN eltwise (alone or as post-op). */
enum ir_act {
    IR_ACT_NONE,
    IR_ACT_RELU, /* alpha: negative slope (LeakyRelu) */
    IR_ACT_CLIP, /* [alpha, beta] */
    IR_ACT_SIGMOID,
    IR_ACT_TANH,
    IR_ACT_HARDSIGMOID, /* alpha*x+beta clipped to [0,1] */
    IR_ACT_HARDSWISH,
    IR_ACT_ELU, /* alpha */
    IR_ACT_GELU_ERF,
    IR_ACT_EXP,
    IR_ACT_SQRT,
    IR_ACT_ABS,
};

enum ir_post_kind {
    IR_POST_ACT, /* dst = act(dst) */
    IR_POST_SUM, /* dst = dst + tensor (same shape): residual Add folded into Conv/Gemm */
};

#define IR_MAX_POST 4

struct ir_post_op {
    enum ir_post_kind kind;
    enum ir_act act; /* IR_POST_ACT */
    float alpha, beta;
    int tensor; /* IR_POST_SUM: the addend tensor index */
};

struct ir_node {
    char *name; /* the model's node name, or "<op>_<index>" if it had none */
    char *op;   /* op_type (default domain only) */
    int *in;    /* tensor indices; -1 for an omitted optional input */
    int n_in;
    int *out;
    int n_out;
    struct ir_attr *attrs;
    int n_attrs;
    struct ir_post_op post[IR_MAX_POST]; /* fused by ir_optimize, in application order */
    int n_post;
    int dead;  /* removed by folding/optimisation: skip */
    int scope; /* 0: the main graph; else the index of the If branch it belongs to (g->scopes) */
};

/* A branch (then_branch / else_branch subgraph) of an If, flattened into the graph at import:
 * its initializers and node outputs are tensors named "<prefix><name>", its nodes carry its index
 * as their scope and come before their If in the topological order, which also puts every node
 * after the conditions of all the branches it is in. The If node reads [cond, then outputs...,
 * else outputs...] (ops/control.c). scopes[0] is the main graph. */
struct ir_scope {
    int parent;   /* enclosing scope (0: the main graph) */
    int cond;     /* the If's condition tensor; -1 for a Loop/Scan body */
    int then;     /* 1: then_branch, 0: else_branch */
    int inlined;  /* the condition is constant and selects this branch: its nodes run
                     unconditionally, as members of the parent scope */
    char *prefix; /* of its tensors' names */
    /* A Loop or Scan body (ops/loop.c): its graph inputs are the tensors vars[] (no producer,
     * set by the loop each iteration); its nodes come after every input of the Loop/Scan node
     * (deps[], -1 for an absent one) and before the node, which reads [its own inputs...,
     * the body's outputs...]. n_deps is the count of its own inputs. */
    int body;    /* 1: a Loop/Scan body */
    int entered; /* the vars have their dtypes and shapes (shape.c, loop_enter) */
    int *vars, n_vars;
    int *deps, n_deps;
};

struct ir_graph {
    char *name;    /* model name for messages */
    int64_t opset; /* default-domain opset version */
    struct ir_tensor *tensors;
    int n_tensors, cap_tensors;
    struct ir_node *nodes; /* topological order */
    int n_nodes, cap_nodes;
    int *inputs; /* tensor indices of run-time inputs (initializers excluded) */
    int n_inputs;
    int *outputs;
    int n_outputs;
    struct ir_scope *scopes; /* NULL without If; else scopes[0] is the main graph */
    int n_scopes, cap_scopes;
    int *output_dtypes; /* each output's declared element type (0: not declared) */
    int *output_seq;    /* each output's declared kind: 0 tensor, 1 sequence, 2 optional (import);
                           ir_seq_outputs expands sequences, after which this is NULL */
};

/* ---- import & passes (each returns 0 or -errno with a message naming model/node/op) ---- */

/* Parses ONNX bytes with protobuf-c. base_dir: directory for external-data files (NULL: models
 * with external data are refused). Checks every count and length, resolves initializers (raw_data,
 * typed fields, external data), turns Constant nodes into constant tensors, sorts topologically
 * and refuses cycles, undefined inputs, duplicate outputs, non-default domains. */
int ir_import_onnx(const void *bytes, size_t len, const char *base_dir, const char *model_name,
                   struct ir_graph **out, char *err, size_t errlen);

/* Fixes input shapes (symbolic dims from `shapes`, else the model's; unknown dims are an error)
 * and infers dtype+shape of every tensor. Unsupported ops/attributes fail here. */
int ir_infer_shapes(struct ir_graph *g, const struct engine_input_shape *shapes, int n_shapes,
                    char *err, size_t errlen);

/* Expands each graph input of sequence (or optional) type into its elements, inputs named
 * "NAME[k]" (of the declared element type; their shapes are given like any input's): the
 * length comes from a shape entry named NAME of rank 1 ([L]; 0 or 1 for an optional), else from
 * the number of entries "NAME[0]", "NAME[1]", ... given; bounded by ENGINE_MAX_SEQ. Called before
 * ir_pin_inputs and ir_infer_shapes (ops/sequence.c). */
int ir_seq_inputs(struct ir_graph *g, const struct engine_input_shape *shapes, int n_shapes,
                  char *err, size_t errlen);
/* Expands each graph output of sequence (or optional) type into one output per element, named
 * "NAME[k]" (an Identity of the element each); an empty one is refused (ops/sequence.c). Called
 * at the end of ir_infer_shapes. */
int ir_seq_outputs(struct ir_graph *g, char *err, size_t errlen);

/* Value-pinned inputs (engine_compile_opts.pins): called before ir_infer_shapes; checks each pin
 * names a graph input of its dtype and a shape the model allows (int32/int64/bool up to
 * ENGINE_MAX_PIN_ELEMS elements, or float32 up to ENGINE_MAX_PIN_FLOATS) and makes that input a
 * constant with the pin's values. It keeps IR_T_INPUT: the plan compiler records it as a pinned
 * input. */
int ir_pin_inputs(struct ir_graph *g, const struct engine_tensor *pins, int n_pins, char *err,
                  size_t errlen);

/* Models below opset 7 (legacy.c): called by ir_infer_shapes before each node's inference;
 * checks legacy broadcasting against the now known shapes and completes rewrites that need them. */
int ir_legacy_infer(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen);
/* Below opset 7: rewrites each node into its opset-7 form or refuses it, naming op, opset and
 * reason (legacy.c; ops/ops.def's since and legacy columns say which op needs what). */
int ir_legacy_nodes(struct ir_graph *g, char *err, size_t errlen);
/* The ONNX name of an ONNX TensorProto data type ("float32", "bfloat16"), "unknown" (dtype.c). */
const char *onnx_dtype_name(int t);

/* Evaluates nodes whose inputs are all constant (shape subgraphs etc.) with kernels.h. */
int ir_fold_constants(struct ir_graph *g, char *err, size_t errlen);

/* Makes a float16 model compute in float32 (fp16.c): float16 constants become float32, Casts and
 * EyeLikes to float16 cast to float32, float16 graph inputs are cast to float32 first and graph
 * outputs declared float16 are cast from float32 last. Called before ir_infer_shapes; adds nodes.
 */
int ir_widen_fp16(struct ir_graph *g, char *err, size_t errlen);

/* Drops Identity/Dropout, folds BatchNormalization into the preceding Conv/Gemm weights, fuses
 * activations and residual Adds as post-ops. Never changes what the graph computes. */
int ir_optimize(struct ir_graph *g, char *err, size_t errlen);
/* QDQ lowering (qdq.c, run by ir_optimize after its fusions): DequantizeLinear → Conv [ReLU] →
 * QuantizeLinear with constant int8 weights becomes one QLinearConv. 0 or -ENOMEM. */
int ir_lower_qdq(struct ir_graph *g);
/* Whether oneDNN's int8 convolution sums x (ENGINE_U8/I8) times these int8 weights exactly on
 * this CPU (ops/conv.c; qdq.c fuses a dynamic ConvInteger's tail only where oneDNN runs it). */
int dnnl_int8_exact(const int8_t *w, int64_t count, int xdt);

void ir_free(struct ir_graph *g);

/* Makes room for count zeroed nodes at index at (the nodes from at on move up; tensor producers
 * follow). Node pointers into g->nodes are invalid afterwards. Returns 0 or -ENOMEM. */
int ir_insert_nodes(struct ir_graph *g, int at, int count);

/* ---- helpers ---- */
int ir_add_tensor(struct ir_graph *g, const char *name);        /* returns index or -ENOMEM */
int ir_find_tensor(const struct ir_graph *g, const char *name); /* index or -1 */
const struct ir_attr *ir_attr_get(const struct ir_node *n, const char *name);
int64_t ir_attr_int(const struct ir_node *n, const char *name, int64_t def);
float ir_attr_float(const struct ir_node *n, const char *name, float def);
const char *ir_attr_str(const struct ir_node *n, const char *name, const char *def);
/* The scope node n runs in: its own, or the nearest enclosing one that is not inlined. */
int ir_node_scope(const struct ir_graph *g, const struct ir_node *n);
/* 1 when a constant condition of a scope enclosing n selects the other branch: n never runs. */
int ir_node_dropped(const struct ir_graph *g, const struct ir_node *n);
/* Number of live nodes that read tensor t (post-op addends included). */
int ir_consumers(const struct ir_graph *g, int t);
/* 1 when t is read by a live node or is a graph output. */
int ir_tensor_used(const struct ir_graph *g, int t);

/* ---- frontend internals (additive; shared by shape.c, fold.c, optimize.c, usable by the backend)
 * ---- A tensor is a constant exactly when data != NULL (a zero-element constant still has a 1-byte
 * allocation). After ir_infer_shapes, Conv/MaxPool/AveragePool nodes carry explicit kernel_shape,
 * strides, pads (begin..., end...) and dilations with auto_pad resolved, Softmax an explicit
 * non-negative axis, Gemm explicit alpha/beta/transA/transB; an omitted optional OUTPUT is -1 in
 * out[]. */

/* What a node below opset 7 needs before it means what the engine's (opset-7 and later) version
 * of its op computes (legacy.c rewrites or refuses it). */
enum ir_legacy {
    IR_LEGACY_SAME,    /* nothing: unchanged from `since` to opset 7 */
    IR_LEGACY_BCAST,   /* binary op with the legacy broadcast/axis attributes */
    IR_LEGACY_TEST,    /* BatchNormalization, Dropout: only is_test=1 (inference) */
    IR_LEGACY_CAST,    /* opset 1-5: `to` is a type name */
    IR_LEGACY_CONCAT,  /* opset 1-3: axis defaults to 1 */
    IR_LEGACY_RESHAPE, /* opset 1-4: the target shape is an attribute */
    IR_LEGACY_PAD,     /* opset 1: pads are called paddings */
    IR_LEGACY_SPLIT,   /* opset 1: split may be a second input */
    IR_LEGACY_PRELU,   /* opset 1-6: slope broadcast per channel; only a one-element slope agrees */
};

struct lower; /* the compiler's lowering state (ops/op.h) */

/* The per-op table (ops/ops.def, expanded in ops/ops.c): one entry per supported ONNX op. */
struct ir_op_def {
    const char *op;
    int since;             /* lowest opset accepted (MAX_OPSET the highest, for every op) */
    enum ir_legacy legacy; /* the rewrite a node below opset 7 needs */
    /* Checks attributes and input dtypes/shapes, sets output dtypes/shapes. */
    int (*infer)(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen);
    /* Computes the outputs' data from constant inputs (kernels.h); no_eval: never folded.
     * Returns 0, -errno, or 1 when these inputs cannot be evaluated (the node stays live). */
    int (*eval)(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen);
    /* Emits the node's plan nodes (compile.c); no_lower: the op is always folded away. */
    int (*lower)(struct lower *l, const struct ir_node *n);
};
const struct ir_op_def *ir_op_find(const char *op); /* NULL if unsupported */
/* 1 if n can be evaluated now: it has an eval and all inputs are constant (Shape and Size:
 * always, they read only the input's shape). */
int ir_node_foldable(const struct ir_graph *g, const struct ir_node *n);
/* 1 if n is a pure activation (Relu, LeakyRelu, Clip with constant bounds, Sigmoid, Tanh,
 * HardSigmoid, HardSwish, Elu, Exp, Sqrt, Abs) and fills its ir_act with alpha/beta. */
int ir_node_act(const struct ir_graph *g, const struct ir_node *n, enum ir_act *act, float *alpha,
                float *beta);

/* Formats "model M: node N (Op): <fmt>" into err and returns code. */
int ir_node_err(const struct ir_graph *g, const struct ir_node *n, char *err, size_t errlen,
                int code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Makes t a constant: takes ownership of data (malloc'd, engine_shape_numel × dtype size). */
void ir_set_const(struct ir_graph *g, int t, int dtype, const struct engine_shape *shape,
                  void *data);
/* Adds a new constant tensor named "<base><suffix>" (made unique); returns index or -ENOMEM.
 * Takes ownership of data even on failure. */
int ir_add_const(struct ir_graph *g, const char *base, const char *suffix, int dtype,
                 const struct engine_shape *shape, void *data);
/* Adds or replaces an attribute; returns 0 or -ENOMEM. */
int ir_attr_set_int(struct ir_node *n, const char *name, int64_t v);
int ir_attr_set_float(struct ir_node *n, const char *name, float v);
int ir_attr_set_ints(struct ir_node *n, const char *name, const int64_t *v, size_t count);

/* Decodes one serialized TensorProto (an ONNX test-data input_N.pb / output_N.pb) into out;
 * out->name (may be NULL) and out->data are malloc'd: free both. */
int ir_decode_tensor_proto(const void *bytes, size_t len, struct engine_tensor *out, char *err,
                           size_t errlen);

#endif
