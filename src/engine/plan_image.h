/*
 * plan_image.h — the plan image format: what the writer (the compiler's builder) and the
 * validator (model open) share. Engine-internal; plan_image.c implements it.
 *
 * Owns: the on-disk/in-memory layout of a plan image (docs/plan-format.md is its prose twice),
 * the image builder used by the compiler, structural validation used by model open, and the
 * activation layouts an image may name.
 *
 * Guarantees:
 *   - an image holds offsets only (no pointers); every section and every weight blob starts on a
 *     64-byte boundary; all integers are little-endian fixed-width;
 *   - plan_view_init() checks every offset, length, count, index and string of the tables against
 *     the image length before anything else reads them; code holding a plan_view may index the
 *     tables with the indices it finds in them.
 */
#ifndef SHMFAAS_ENGINE_PLAN_IMAGE_H
#define SHMFAAS_ENGINE_PLAN_IMAGE_H

#include "engine/engine.h"
#include "engine/ir.h" /* IR_MAX_POST */

#include <oneapi/dnnl/dnnl.h>
#include <stddef.h>
#include <stdint.h>

#define PLAN_MAGIC          "SHMFPLAN"
#define PLAN_FORMAT_VERSION 3u
#define PLAN_ALIGN          64u
#define PLAN_MAX_POST       IR_MAX_POST
#define PLAN_MAX_SPATIAL    3
#define PLAN_NONE           0xffffffffu /* absent string / md / tensor reference */
/* Sanity caps that keep a hostile image's counts from driving allocations. */
#define PLAN_MAX_TENSORS (1u << 20)
#define PLAN_MAX_NODES   (1u << 20)

/* ---- on-image structures ---- */

enum plan_section_id {
    PLAN_SEC_TENSORS, /* struct plan_tensor[count] */
    PLAN_SEC_NODES,   /* struct plan_node[count] */
    PLAN_SEC_INDEX,   /* int32_t[count]: node input lists, graph input and output lists */
    PLAN_SEC_STRINGS, /* NUL-terminated names, addressed by byte offset */
    PLAN_SEC_MDS,     /* dnnl_memory_desc_t[count]: chosen weight layouts, for comparison */
    PLAN_SEC_WEIGHTS, /* constant tensors, each 64-byte aligned */
    PLAN_SEC_COUNT
};

struct plan_section {
    uint64_t offset; /* from the start of the image, multiple of 64 */
    uint64_t size;   /* bytes */
    uint64_t count;  /* entries (tables) or 0 */
};

struct plan_header {
    char magic[8];                     /* PLAN_MAGIC */
    uint32_t format_version;           /* PLAN_FORMAT_VERSION */
    uint32_t header_size;              /* sizeof(struct plan_header) */
    uint8_t image_sha256[32];          /* of bytes [PLAN_IMAGE_HASHED_FROM, image_size) */
    uint8_t tables_sha256[32];         /* of bytes [PLAN_TABLES_HASHED_FROM, weights offset) */
    uint64_t image_size;               /* total bytes */
    char engine_version[16];           /* SHMFAAS_VERSION */
    char dnnl_version[16];             /* "2.6.3" */
    char isa[24];                      /* oneDNN effective ISA, "avx2" */
    uint32_t threads;                  /* intra-op threads the primitives were chosen for */
    uint32_t model_name;               /* string offset */
    uint8_t source_sha256[32];         /* of the ONNX bytes */
    uint64_t arena_size;               /* activation bytes per session */
    uint32_t inputs_first, n_inputs;   /* graph inputs: index-section slice of tensor ids */
    uint32_t outputs_first, n_outputs; /* graph outputs */
    struct plan_section sec[PLAN_SEC_COUNT];
    uint8_t weights_sha256[32]; /* of the weights section's bytes (format 3) */
    uint32_t flags;             /* PLAN_HF_* (format 3) */
    uint8_t reserved[28];
};

/* Header flags. A plan part (PLAN_HF_EXTERNAL_WEIGHTS) ends where its weights section begins:
 * sec[WEIGHTS] = {offset = image_size, size = the weights blob's bytes}, and the blob (exactly
 * the weights section's bytes, SHA-256 weights_sha256) is handed to open separately. */
enum plan_header_flags {
    PLAN_HF_EXTERNAL_WEIGHTS = 1,
};
#define PLAN_HF_KNOWN           PLAN_HF_EXTERNAL_WEIGHTS
#define PLAN_MAX_WEIGHTS_BYTES  (1ull << 40) /* an external weights section's bound */

#define PLAN_IMAGE_HASHED_FROM  ((uint64_t)offsetof(struct plan_header, tables_sha256))
#define PLAN_TABLES_HASHED_FROM ((uint64_t)offsetof(struct plan_header, image_size))

enum plan_storage {
    PLAN_ST_ARENA = 1,  /* activation: offset into the session arena */
    PLAN_ST_CONST = 2,  /* constant, plain row-major: offset into the weights section */
    PLAN_ST_PACKED = 3, /* weights in the layout its node's md names: offset into weights */
};

enum plan_tensor_flags {
    PLAN_TF_INPUT = 1,          /* graph input: the session copies it in */
    PLAN_TF_OUTPUT = 2,         /* graph output: the session hands out a pointer to it */
    PLAN_TF_PINNED = 4,         /* value-pinned input (format 2): CONST, the values to pass */
    PLAN_TF_BOUND0 = 8,         /* graph output whose dim 0 (BOUND1: dim 1) is an upper bound: */
    PLAN_TF_BOUND1 = 16,        /* int64, filled by a selection kernel (kernels.h); the run
                                   reports the extent k_bounded_count reads */
    PLAN_TF_LOOP_BOUND = 32,    /* graph output written by a SCAN_SLICE: dim 0 is an
                                   upper bound, the run reports as many as its loop iterated */
    PLAN_TF_ALIAS = 0x40000000, /* compiler-internal: `offset` holds the alias root's id */
};

/* An activation's layout: 0 = plain row-major, else the dnnl_format_tag_t of a blocked or
 * channels-last layout from plan_layouts (nChw8c = dnnl_aBcd8b, ...). PLAN_LAYOUT_ANY exists only
 * inside the compiler, to ask oneDNN for its preference. */
enum plan_layout {
    PLAN_LAYOUT_PLAIN = 0,
    PLAN_LAYOUT_ANY = dnnl_format_tag_any,
};

struct plan_tensor {
    uint32_t name;    /* string offset */
    uint32_t dtype;   /* enum engine_dtype */
    uint32_t rank;    /* <= ENGINE_MAX_RANK */
    uint32_t storage; /* enum plan_storage */
    uint32_t layout;  /* enum plan_layout / dnnl_format_tag_t */
    uint32_t flags;   /* PLAN_TF_* */
    int64_t dims[ENGINE_MAX_RANK];
    uint64_t offset; /* arena or weights-section offset, multiple of 64 for weights */
    uint64_t nbytes;
};

enum plan_op {
    PLAN_OP_CONV = 1,  /* in: src, weights (packed), [bias] */
    PLAN_OP_INNER,     /* inner product; in: src, weights (packed), [bias] */
    PLAN_OP_MATMUL,    /* in: a, b (plain) */
    PLAN_OP_POOL,      /* in: src; alg = dnnl pooling alg */
    PLAN_OP_ELTWISE,   /* in: src; alg/alpha/beta; more steps as post-ops */
    PLAN_OP_BINARY,    /* in: src0, src1 (broadcast); alg = dnnl binary alg */
    PLAN_OP_SOFTMAX,   /* in: src; axis (of the md built with the node's collapse rule) */
    PLAN_OP_CONCAT,    /* in: n sources; axis */
    PLAN_OP_BATCHNORM, /* in: src, mean, variance, scale, shift; alpha = epsilon */
    PLAN_OP_REORDER,   /* in: src; dst: same dims in another layout */
    PLAN_OP_KERNEL,    /* a plain-C kernel (kernels.h); alg = enum plan_kernel */
    PLAN_OP_LAYERNORM, /* in: src (plain), scale, [shift]; over dims axis..; alpha = epsilon */
    PLAN_OP_WINOGRAD,  /* 3x3 stride-1 conv as Winograd F(4x4,3x3) (winograd.h, no primitive);
                          in: src (nChw8c), weights (const [36, K16/16, C, 16]), [bias]; dst
                          nChw8c; axis = tiles per product; post-ops relu/clip/linear/sum */
    PLAN_OP_PRELU,     /* in: src (any layout), slope (packed, src's rank, each dim 1 or src's) */
    PLAN_OP_RESAMPLE,  /* in: src (any layout), rank 3-5; dst: same N and C and layout, the
                          spatial dims resampled; alg = dnnl resampling nearest/linear (the
                          factors are dst/src, oneDNN's half-pixel sample positions) */
    PLAN_OP_QCONV,     /* int8 convolution (oneDNN); in: src (uint8/int8), weights (packed int8,
                          zero point 0), bias (const int32 [OC]), src zero point (int32, one);
                          for a uint8/int8 dst also output scales (const float32 [OC], read
                          when the primitive is made; bound but unused at run time) and
                          the dst zero point (const int32, one); dst int32 or uint8/int8:
                          dst = sat(round(scale * (sum (src - zp) * w + bias) [post-ops]) + dst zp) */
    PLAN_OP_COUNT_
};

/* Plain-C data-movement kernels; their parameters are int32 values in the index section. */
enum plan_kernel {
    /* math kernels (kernels_math.c); params[0] is the op of the family unless noted */
    PLAN_K_UNARY = 20,     /* in: x; params: enum k_unop; alpha/beta as k_unary documents */
    PLAN_K_REDUCE = 21,    /* in: x; params: enum k_redop, then a reduce flag per axis */
    PLAN_K_ARGEXT = 22,    /* in: x (float32); params: is_min, select_last; axis; dst int64 */
    PLAN_K_SOFTMAX_F = 23, /* in: x (float32); params: enum k_smop, coerce (1: over dims axis..) */
    PLAN_K_LOGIC = 24,     /* in: a, b (numpy broadcast); params: enum k_logop */
    PLAN_K_VARIADIC = 25,  /* in: 1 to 8 sources (broadcast to dst); params: enum k_varop */
    PLAN_K_LAYERNORM = 26, /* in: x, scale, [bias]; params: output (0 Y, 1 Mean, 2 InvStdDev);
                              axis; alpha = epsilon */
    PLAN_K_NLL = 27,       /* in: log-probabilities [N,C,...], target int64, [weight]; params:
                              enum k_reduction, has_ignore, ignore_index */
    PLAN_K_CLIP = 28,      /* in: x, then the min and/or max present (1 element each); params:
                              has_min, has_max */
    PLAN_K_INSTNORM = 29,  /* in: x [N,C,...], scale [C], bias [C]; alpha = epsilon */
    PLAN_K_ARITH = 30,     /* in: a, b (numpy broadcast; int8/uint8, or Pow of mixed dtypes);
                              params: enum k_binop; dst has a's dtype */
    PLAN_K_TOPK = 31,      /* in: x (float32); params: largest, output (0 values, 1 int64
                              indices); axis; k = dst dims[axis] */
    PLAN_K_QUANTIZE = 32,  /* in: x, scale (1 or dims[axis] values), [zero point]; params:
                              dequantize (0: float32 to uint8/int8, 1: back); axis */
    PLAN_K_DYNQUANT = 33,  /* in: x (float32); params: output (0 y uint8, 1 scale, 2 zero point) */
    PLAN_K_QMATMUL = 34,   /* params: qlinear, has_azp, has_bzp. qlinear 0 (MatMulInteger): in a,
                              b, [azp], [bzp], dst int32; 1 (QLinearMatMul): in a, a_scale, a_zp,
                              b, b_scale, b_zp, y_scale, y_zp */
    PLAN_K_DET = 35,       /* in: x [..., m, m] (float32, m <= K_DET_MAX) */
    PLAN_K_MVN = 36,       /* in: x (float32); params: a normalise flag per axis */
    PLAN_K_DFT = 37,       /* in: x [.., n at axis, .., 1 or 2] (float32); params: inverse,
                              onesided; axis; dst [.., m, .., 2] */
    PLAN_K_QCONV = 38,     /* ConvInteger (x, w, [xzp], [wzp]; dst int32) or QLinearConv (x, xs,
                              xzp, w, ws, wzp, ys, yzp, [B int32]); params: qlinear (2: with a
                              fused ReLU), has_xzp, has_wzp,
                              group, sp, strides[sp], dilations[sp], pads_begin[sp] */
    /* 39 is unused */
    PLAN_K_EINSUM = 40,     /* in: 1 to 8 operands of dst's dtype; params: the k_einsum spec */
    PLAN_K_STFT = 41,       /* in: signal [B, L, 1 or 2] (float32), [window]; params: frame_step,
                               frame_length, onesided */
    PLAN_K_TRANSPOSE = 1,   /* in: src; params: perm[rank] */
    PLAN_K_SLICE = 2,       /* in: src; params: starts[rank], steps[rank] (normalised) */
    PLAN_K_GATHER = 3,      /* in: data, indices (int64); axis */
    PLAN_K_BINARY = 4,      /* in: a, b (numpy broadcast); params: enum k_binop */
    PLAN_K_REDUCE_MEAN = 5, /* in: src (float32); params: reduce flag per axis */
    PLAN_K_COPY = 6,        /* in: src (e.g. a constant graph output); same bytes */
    PLAN_K_CAST = 7,        /* in: src; element conversion to dst's dtype */
    PLAN_K_PAD = 8,         /* in: src, value (1 element); params: pads_begin[rank], mode */
    PLAN_K_WHERE = 9, /* in: cond (bool), a, b (numpy broadcast to dst; a, b of dst's dtype) */
    /* data movement (kernels_move.c); index inputs are int32 or int64 */
    PLAN_K_GATHER_ELEMENTS = 60,  /* in: data, indices; axis */
    PLAN_K_SCATTER_ELEMENTS = 61, /* in: data, indices, updates; axis; params: enum k_scatter_red */
    PLAN_K_GATHER_ND = 62,        /* in: data, indices; params: batch_dims */
    PLAN_K_SCATTER_ND = 63,       /* in: data, indices, updates; params: enum k_scatter_red */
    PLAN_K_TRILU = 64,            /* in: src, k (int64 scalar); params: upper */
    PLAN_K_DEPTH_SPACE = 65,      /* in: src (NCHW); params: blocksize, enum k_depth_mode */
    PLAN_K_TILE = 66,             /* in: src; dst dims are multiples of src's */
    PLAN_K_CONV_TRANSPOSE = 67,   /* in: x, w, [bias] (float32); params: group, sp, strides[sp],
                                     dilations[sp], pads_begin[sp] */
    PLAN_K_LRN = 68,              /* in: x (float32); params: size, bias (float bits); alpha,
                                     beta */
    PLAN_K_GRID_SAMPLE = 69,      /* in: x [N,C,H,W], grid [N,Ho,Wo,2] (float32); params: enum
                                     k_grid_mode, enum k_grid_pad, align_corners */
    PLAN_K_REVERSE_SEQ = 70,      /* in: x (rank >= 2), lengths (int32/int64); params: batch_axis
                                     (0 or 1; the time axis is the other) */
    PLAN_K_MAX_UNPOOL = 71,       /* in: x, indices (int64, x's shape, flat into dst) */
    PLAN_K_RNN = 73,              /* in: x, w, r, then the present ones of b, sequence_lens, h0,
                                     c0, p; params: kind, direction, layout, linear_before_reset,
                                     hidden, which output, presence mask (1 b, 2 lens, 4 h0, 8 c0,
                                     16 p) */
    PLAN_K_RESIZE = 75,           /* in: x (float32); params: enum k_resize_mode, k_resize_coord,
                                     k_resize_nearest, exclude_outside, cubic_a and extrapolation
                                     (float bits), then per axis scale, roi start, roi end (float
                                     bits) */
    PLAN_K_ROI_ALIGN = 76,        /* in: x [N,C,H,W], rois [R,4] (float32), batch_indices [R]
                                     (int64, checked at run time); params: sampling_ratio,
                                     half_pixel; alpha = spatial_scale */
    PLAN_K_MAXPOOL_IDX = 77,      /* in: x (float32, 1-3 spatial dims); params: which (0 Y, 1
                                     Indices), storage_order, sp, kernel[sp], strides[sp],
                                     pads_begin[sp], dilations[sp] */
    PLAN_K_ONEHOT = 78,           /* in: indices (int32/int64/float32), values (2 elements of
                                     dst's dtype); params: depth, axis (non-negative) */
    PLAN_K_CUMSUM = 72,           /* in: x, axis (one int32/int64, checked at run time); params:
                                     exclusive, reverse */
    /* control flow (ops/control.c) */
    PLAN_K_BRANCH = 80, /* in: cond (one bool); out: cond (nothing is written); params: target,
                           when: the run goes on at node `target` (> this node, <= the node
                           count: jumps only go forward) when cond is `when` (0 or 1) */
    /* data-dependent selections (kernels_select.c, ops/detect.c): dst is a bounded output */
    PLAN_K_NMS = 81,     /* in: boxes [B,N,4], scores [B,C,N] (float32), [iou], [score] (one
                            float32 each, per kp_nms's flags); dst [bound, 3] int64 */
    PLAN_K_NONZERO = 82, /* in: x (any dtype, rank >= 1); dst [rank, numel(x)] int64 */
    /* loops (ops/loop.c): a region LOOP .. LOOP_END, well nested, runs again from the
     * node after LOOP while the iteration count is under the trip count and the condition
     * holds; the count lives in the session, never in the arena (plan_loops_check) */
    PLAN_K_LOOP = 90,       /* in: the iteration number (= out: one int64, set to 0), [trip
                               count (one int64)], [cond (one bool)]; params: kp_loop (end:
                               the LOOP_END node; max: the most iterations, at most
                               ENGINE_LOOP_MAX_ITER); no iteration when the count or cond says so:
                               the run goes on after LOOP_END */
    PLAN_K_LOOP_END = 91,   /* in: the iteration number (= out, the LOOP's), [cond (one bool)];
                               params: kp_loop_end (begin: the LOOP node) */
    PLAN_K_SCAN_SLICE = 92, /* in: src; params: kp_scan_slice: slice i (the loop's iteration
                               number, or len-1-i reversed) along the middle axis of [outer, len,
                               inner bytes]: read copies it from src into dst, write from src
                               into dst; inside its loop's region, len >= the loop's max */
    /* a slice whose start is read per run (ops/movement.c): x[i:i+c] in a loop body */
    PLAN_K_SLICE_DYN = 93, /* in: src, start (one int32/int64, read per run; negative or
                              start + dst dims[axis] > src dims[axis] is a run-time error);
                              axis; dst: src's dims but dims[axis] (ops/movement.c) */
};

enum plan_post_kind {
    PLAN_POST_ELTWISE = 1, /* alg/alpha/beta */
    PLAN_POST_SUM = 2,     /* dst += node.sum_tensor (dst initialised from it) */
    PLAN_POST_BINARY = 3,  /* dst = dst alg src1 (alg dnnl_binary_mul/add); PLAN_OP_QCONV with a
                              float32 dst only, its leading posts: the k-th reads input 4 + k,
                              one float32 or one per output channel (plan.c make_attr) */
};

struct plan_post {
    uint32_t kind;
    uint32_t alg;
    float alpha, beta;
};

struct plan_node {
    uint32_t name;     /* string offset */
    uint32_t op;       /* enum plan_op */
    uint32_t onnx_op;  /* string offset: the ONNX op it came from, for messages */
    uint32_t alg;      /* dnnl_alg_kind_t */
    uint32_t in_first; /* index-section slice of input tensor ids */
    uint32_t n_in;
    uint32_t out;        /* output tensor id */
    uint32_t sum_tensor; /* addend of a SUM post-op, or PLAN_NONE */
    uint32_t n_post;
    uint32_t impl;     /* string offset: oneDNN implementation chosen at compile time */
    uint32_t wmd;      /* MDS index of the packed weights' md, or PLAN_NONE */
    uint32_t collapse; /* INNER/SOFTMAX: leading dims folded into one (see plan.c) */
    uint32_t params_first, n_params; /* KERNEL: index-section slice of int32 parameters */
    struct plan_post post[PLAN_MAX_POST];
    int64_t kernel[PLAN_MAX_SPATIAL];
    int64_t strides[PLAN_MAX_SPATIAL];
    int64_t dilations[PLAN_MAX_SPATIAL]; /* oneDNN convention: 0 = dense */
    int64_t pad_l[PLAN_MAX_SPATIAL];
    int64_t pad_r[PLAN_MAX_SPATIAL];
    int64_t groups;
    int64_t axis;
    float alpha, beta;
};

/* ---- a validated view over an image ---- */

struct plan_view {
    const uint8_t *base;
    size_t len;
    const struct plan_header *h;
    const struct plan_tensor *tensors;
    uint32_t n_tensors;
    const struct plan_node *nodes;
    uint32_t n_nodes;
    const int32_t *index;
    uint32_t n_index;
    const char *strings;
    uint64_t strings_size;
    const dnnl_memory_desc_t *mds;
    uint32_t n_mds;
    const uint8_t *weights;
    uint64_t weights_size;
};

/* Checks magic, versions, hashes of the tables, then every section, offset, index and string.
 * Does not look at CPU/threads or oneDNN (model.c does). */
int plan_view_init(struct plan_view *v, const void *image, size_t len, char *err, size_t errlen);
/* The same over an image whose weights section lies elsewhere: image holds at least the bytes
 * before its weights section, len is the whole image's length and weights points to bytes equal
 * to its weights section (another image's, byte for byte: dynamic.c shares one copy of the
 * weights between plans of one model it compiled itself). */
int plan_view_init_weights(struct plan_view *v, const void *image, size_t len, const void *weights,
                           char *err, size_t errlen);
/* The same over a plan part (PLAN_HF_EXTERNAL_WEIGHTS) and its weights blob (weights_len bytes,
 * which must be the section's size; the blob's SHA-256 is engine_weights_verify's business), or,
 * with weights NULL, over a whole image (a part without its blob is refused). */
int plan_view_init_parts(struct plan_view *v, const void *image, size_t len, const void *weights,
                         size_t weights_len, char *err, size_t errlen);
const char *plan_str(const struct plan_view *v, uint32_t off); /* "" for PLAN_NONE */
int32_t plan_input(const struct plan_view *v, const struct plan_node *n, uint32_t i);
/* Pointer into the image for a CONST/PACKED tensor. */
const void *plan_weights_ptr(const struct plan_view *v, const struct plan_tensor *t);

/* ---- activation layouts ---- */

/* The memory desc of tensor t as an operand, in its layout; plain tensors may be viewed with
 * leading dims collapsed (INNER, SOFTMAX) or rank left-padded with ones to `rank` (BINARY,
 * MATMUL). */
int plan_tensor_md(const struct plan_tensor *t, int rank, uint32_t collapse,
                   dnnl_memory_desc_t *md);
/* The oneDNN data type of an engine dtype oneDNN primitives take (float32, uint8, int8, int32;
 * blocked and channels-last layouts exist for these only), dnnl_data_type_undef otherwise. */
dnnl_data_type_t plan_dnnl_dtype(uint32_t dtype);
/* 1 for the channels-last layouts (acb, acdb, acdeb): no padding, so an element-wise kernel
 * may read and write them as flat arrays when its operands share the layout and dims. */
int plan_layout_channels_last(uint32_t layout);
/* Channel block of a blocked layout (8, 16), 1 otherwise. */
int plan_layout_block(uint32_t layout);
/* The allowed layout md equals for these dims, or PLAN_LAYOUT_PLAIN if none. */
uint32_t plan_layout_of(const dnnl_memory_desc_t *md);
/* ---- the image builder (compiler side) ---- */

struct plan_builder {
    struct plan_header h;
    struct plan_tensor *tensors;
    uint32_t n_tensors, cap_tensors;
    struct plan_node *nodes;
    uint32_t n_nodes, cap_nodes;
    int32_t *index;
    uint32_t n_index, cap_index;
    char *strings;
    uint64_t strings_size, cap_strings;
    dnnl_memory_desc_t *mds;
    uint32_t n_mds, cap_mds;
    uint8_t *weights;
    uint64_t weights_size, cap_weights;
};

void plan_builder_init(struct plan_builder *b);
void plan_builder_free(struct plan_builder *b);
/* Each returns the new entry's index/offset, or a negative errno. */
int64_t plan_add_string(struct plan_builder *b, const char *s);
int64_t plan_add_tensor(struct plan_builder *b, const struct plan_tensor *t);
int64_t plan_add_node(struct plan_builder *b, const struct plan_node *n);
int64_t plan_add_index(struct plan_builder *b, int32_t v);
int64_t plan_add_md(struct plan_builder *b, const dnnl_memory_desc_t *md);
/* Makes room for nbytes of weights up front (a model's weights are known before lowering). */
int plan_reserve_weights(struct plan_builder *b, uint64_t nbytes);
/* Reserves nbytes (zero-filled) at a 64-byte aligned offset of the weights section. */
int64_t plan_add_weights(struct plan_builder *b, uint64_t nbytes);
/* A view over the builder's tables as they stand (for plan_primitive_desc during compile). */
void plan_builder_view(const struct plan_builder *b, struct plan_view *v);
/* Lays out the sections, fills the header's section table and both hashes; returns the image
 * (aligned, free with engine_image_free). */
int plan_builder_finish(struct plan_builder *b, void **image, size_t *len, char *err,
                        size_t errlen);

#endif
