/*
 * kernel_params.h — the parameters of a plain-C kernel node, one contract per kernel kind.
 * Engine-internal.
 *
 * A KERNEL node's parameters are int32 values in the image's index section (docs/plan-format.md).
 * For each kernel below, the struct its kernel takes (kernels.h) or one defined here is the
 * contract: the compiler writes it with kp_encode_<kind> (ops/), and kp_decode_<kind> reads it
 * back — range-checking every value that does not depend on the node's tensors — for both the
 * image validator (kernel_check.c, at compile time and model open) and the run (session.c), so
 * the layout of the values is written down once. Kinds not listed here still read their few
 * values positionally (their layout is in enum plan_kernel's comments, plan_image.h).
 */
#ifndef SHMFAAS_ENGINE_KERNEL_PARAMS_H
#define SHMFAAS_ENGINE_KERNEL_PARAMS_H

#include "engine/kernels.h"

#include <stdint.h>

#define KP_MAX_PARAMS (6 + 3 * ENGINE_MAX_RANK) /* the longest layout below: resize */

/* PLAN_K_CONV_TRANSPOSE: group, sp, strides[sp], dilations[sp], pads_begin[sp]. */
uint32_t kp_encode_deconv(const struct k_deconv *d, int64_t *out);
int kp_decode_deconv(const int32_t *p, uint32_t n, struct k_deconv *d);

/* PLAN_K_MAXPOOL_IDX: which, storage_order, sp, kernel[sp], strides[sp], pads_begin[sp],
 * dilations[sp]. which 0 writes the maxima, 1 their indices. */
struct kp_maxpool_idx {
    int which;
    struct k_pool pool;
};
uint32_t kp_encode_maxpool_idx(const struct kp_maxpool_idx *m, int64_t *out);
int kp_decode_maxpool_idx(const int32_t *p, uint32_t n, struct kp_maxpool_idx *m);

/* PLAN_K_GRID_SAMPLE: mode, padding mode, align_corners. */
uint32_t kp_encode_grid(const struct k_grid *g, int64_t *out);
int kp_decode_grid(const int32_t *p, uint32_t n, struct k_grid *g);

/* PLAN_K_LRN: size, bias (float bits); alpha and beta are the node's. */
struct kp_lrn {
    int size;
    float bias;
};
uint32_t kp_encode_lrn(const struct kp_lrn *r, int64_t *out);
int kp_decode_lrn(const int32_t *p, uint32_t n, struct kp_lrn *r);

/* PLAN_K_ROI_ALIGN: sampling_ratio, half_pixel; the scale is the node's alpha. */
uint32_t kp_encode_roi(const struct k_roi *r, int64_t *out);
int kp_decode_roi(const int32_t *p, uint32_t n, float scale, struct k_roi *r);

/* PLAN_K_RESIZE: mode, coordinate transformation, nearest mode, exclude_outside, cubic_a and
 * extrapolation (float bits), then per axis of x (rank values each): scale, roi start, roi end
 * (float bits). Written by the shape rule (attribute resize_params), which knows the scales. */
uint32_t kp_encode_resize(const struct k_resize *z, int rank, int64_t *out);
int kp_decode_resize(const int32_t *p, uint32_t n, int rank, struct k_resize *z);

/* PLAN_K_RNN: kind, direction, layout, linear_before_reset, hidden, which output (0 Y, 1 Y_h,
 * 2 Y_c), the presence mask of the optional inputs (1 b, 2 sequence_lens, 4 h0, 8 c0, 16 p). */
struct kp_rnn {
    enum k_rnn_kind kind;
    enum k_rnn_dir direction;
    int layout, linear_before_reset, hidden, which, present;
};
uint32_t kp_encode_rnn(const struct kp_rnn *r, int64_t *out);
int kp_decode_rnn(const int32_t *p, uint32_t n, struct kp_rnn *r);

/* PLAN_K_NMS: center_point_box, max_output_boxes_per_class, has_iou, has_score (the thresholds
 * are the node's inputs 2 and 3 when present, read at run time). */
struct kp_nms {
    int center, has_iou, has_score;
    int64_t max_per_class;
};
uint32_t kp_encode_nms(const struct kp_nms *q, int64_t *out);
int kp_decode_nms(const int32_t *p, uint32_t n, struct kp_nms *q);

/* PLAN_K_TRILU: upper (the diagonal offset k is the node's input 1). */
struct kp_trilu {
    int upper;
};
uint32_t kp_encode_trilu(const struct kp_trilu *t, int64_t *out);
int kp_decode_trilu(const int32_t *p, uint32_t n, struct kp_trilu *t);

/* PLAN_K_DEPTH_SPACE: blocksize, mode (enum k_depth_mode). */
struct kp_depth_space {
    int64_t block;
    enum k_depth_mode mode;
};
uint32_t kp_encode_depth_space(const struct kp_depth_space *d, int64_t *out);
int kp_decode_depth_space(const int32_t *p, uint32_t n, struct kp_depth_space *d);

/* PLAN_K_CUMSUM: exclusive, reverse (the axis is the node's input 1). */
struct kp_cumsum {
    int exclusive, reverse;
};
uint32_t kp_encode_cumsum(const struct kp_cumsum *q, int64_t *out);
int kp_decode_cumsum(const int32_t *p, uint32_t n, struct kp_cumsum *q);

/* PLAN_K_LOOP: end (the LOOP_END node), max (iterations, 0..ENGINE_LOOP_MAX_ITER), has_trip,
 * has_cond (which inputs the node has). */
struct kp_loop {
    int end, max, has_trip, has_cond;
};
uint32_t kp_encode_loop(const struct kp_loop *q, int64_t *out);
int kp_decode_loop(const int32_t *p, uint32_t n, struct kp_loop *q);

/* PLAN_K_LOOP_END: begin (the LOOP node), has_cond. */
struct kp_loop_end {
    int begin, has_cond;
};
uint32_t kp_encode_loop_end(const struct kp_loop_end *q, int64_t *out);
int kp_decode_loop_end(const int32_t *p, uint32_t n, struct kp_loop_end *q);

/* PLAN_K_SCAN_SLICE: begin (the LOOP node), outer, len, inner (bytes; all >= 1), reverse, write. */
struct kp_scan_slice {
    int begin, outer, len, inner, reverse, write;
};
uint32_t kp_encode_scan_slice(const struct kp_scan_slice *q, int64_t *out);
int kp_decode_scan_slice(const int32_t *p, uint32_t n, struct kp_scan_slice *q);

/* PLAN_K_GATHER_ND: batch_dims. */
struct kp_gather_nd {
    int batch_dims;
};
uint32_t kp_encode_gather_nd(const struct kp_gather_nd *q, int64_t *out);
int kp_decode_gather_nd(const int32_t *p, uint32_t n, struct kp_gather_nd *q);

/* PLAN_K_SCATTER_ELEMENTS, PLAN_K_SCATTER_ND: reduction (enum k_scatter_red; whether it is
 * defined for the data's dtype is the validator's check, k_reduction_ok). */
struct kp_scatter {
    enum k_scatter_red red;
};
uint32_t kp_encode_scatter(const struct kp_scatter *q, int64_t *out);
int kp_decode_scatter(const int32_t *p, uint32_t n, struct kp_scatter *q);

/* PLAN_K_REVERSE_SEQ: batch_axis (0 or 1; the time axis is the other). */
struct kp_reverse_seq {
    int batch_axis;
};
uint32_t kp_encode_reverse_seq(const struct kp_reverse_seq *q, int64_t *out);
int kp_decode_reverse_seq(const int32_t *p, uint32_t n, struct kp_reverse_seq *q);

/* PLAN_K_ONEHOT: depth, axis (non-negative; at most the indices' rank, the validator's check). */
struct kp_onehot {
    int64_t depth;
    int axis;
};
uint32_t kp_encode_onehot(const struct kp_onehot *q, int64_t *out);
int kp_decode_onehot(const int32_t *p, uint32_t n, struct kp_onehot *q);

/* PLAN_K_DFT: inverse, onesided (the axis is the node's). */
struct kp_dft {
    int inverse, onesided;
};
uint32_t kp_encode_dft(const struct kp_dft *q, int64_t *out);
int kp_decode_dft(const int32_t *p, uint32_t n, struct kp_dft *q);

/* PLAN_K_STFT: frame_step, frame_length (both >= 1), onesided. */
struct kp_stft {
    int64_t step, length;
    int onesided;
};
uint32_t kp_encode_stft(const struct kp_stft *q, int64_t *out);
int kp_decode_stft(const int32_t *p, uint32_t n, struct kp_stft *q);

/* PLAN_K_ARGEXT: is_min, select_last (the axis is the node's). */
struct kp_argext {
    int is_min, select_last;
};
uint32_t kp_encode_argext(const struct kp_argext *q, int64_t *out);
int kp_decode_argext(const int32_t *p, uint32_t n, struct kp_argext *q);

/* PLAN_K_TOPK: largest, indices (the output: 0 the values, 1 their int64 indices). */
struct kp_topk {
    int largest, indices;
};
uint32_t kp_encode_topk(const struct kp_topk *q, int64_t *out);
int kp_decode_topk(const int32_t *p, uint32_t n, struct kp_topk *q);

/* PLAN_K_CLIP: has_min, has_max (the bounds present follow x as the node's inputs). */
struct kp_clip {
    int has_min, has_max;
};
uint32_t kp_encode_clip(const struct kp_clip *q, int64_t *out);
int kp_decode_clip(const int32_t *p, uint32_t n, struct kp_clip *q);

/* PLAN_K_SOFTMAX_F: op (enum k_smop), coerce (1: over every dim from the node's axis on). */
struct kp_softmax {
    enum k_smop op;
    int coerce;
};
uint32_t kp_encode_softmax(const struct kp_softmax *q, int64_t *out);
int kp_decode_softmax(const int32_t *p, uint32_t n, struct kp_softmax *q);

/* PLAN_K_LAYERNORM: which output (0 Y, 1 Mean, 2 InvStdDev); axis and epsilon are the node's. */
struct kp_layernorm {
    int which;
};
uint32_t kp_encode_layernorm(const struct kp_layernorm *q, int64_t *out);
int kp_decode_layernorm(const int32_t *p, uint32_t n, struct kp_layernorm *q);

/* PLAN_K_NLL: reduction (enum k_reduction), has_ignore, ignore_index. */
struct kp_nll {
    enum k_reduction red;
    int has_ignore;
    int64_t ignore_index;
};
uint32_t kp_encode_nll(const struct kp_nll *q, int64_t *out);
int kp_decode_nll(const int32_t *p, uint32_t n, struct kp_nll *q);

/* PLAN_K_UNARY (enum k_unop), PLAN_K_LOGIC (enum k_logop), PLAN_K_VARIADIC (enum k_varop),
 * PLAN_K_ARITH (enum k_binop, Add..Pow): the family's op, range-checked for that kind (whether
 * it is defined for the operands' dtypes is the validator's check). */
struct kp_op {
    int op;
};
uint32_t kp_encode_op(const struct kp_op *q, int64_t *out);
int kp_decode_op(uint32_t kind, const int32_t *p, uint32_t n, struct kp_op *q);

/* PLAN_K_REDUCE: op (enum k_redop), then a reduce flag per axis of x (rank of them; any
 * non-zero word reduces). PLAN_K_MVN: the flags alone (op is unused, 0). */
struct kp_reduce {
    enum k_redop op;
    int32_t mask[ENGINE_MAX_RANK];
};
uint32_t kp_encode_reduce(const struct kp_reduce *q, int rank, int with_op, int64_t *out);
int kp_decode_reduce(const int32_t *p, uint32_t n, int rank, int with_op, struct kp_reduce *q);

#endif
