/*
 * kernel_params.c — encoding and decoding of the kernel parameter contracts (kernel_params.h).
 *
 * Decoding trusts nothing: counts, enums, flags and window sizes are checked here; what ties the
 * values to the node's tensors is checked by kernel_check.c with the decoded struct.
 */
#include "engine/kernel_params.h"
#include "engine/plan_image.h"

#include <errno.h>
#include <string.h>

static int flag(int32_t v)
{
    return v == 0 || v == 1;
}

/* sp from p[at] with the count n it implies (fixed + per * sp); -1 if they disagree. */
static int spatial(const int32_t *p, uint32_t n, uint32_t at, uint32_t fixed, uint32_t per)
{
    if (n <= at || p[at] < 1 || p[at] > 3 || n != fixed + per * (uint32_t)p[at])
        return -1;
    return p[at];
}

static int32_t float_bits(float f)
{
    int32_t b;
    memcpy(&b, &f, sizeof(b));
    return b;
}

static float bits_float(int32_t b)
{
    float f;
    memcpy(&f, &b, sizeof(f));
    return f;
}

uint32_t kp_encode_deconv(const struct k_deconv *d, int64_t *out)
{
    out[0] = d->group;
    out[1] = d->sp;
    for (int i = 0; i < d->sp; i++) {
        out[2 + i] = d->stride[i];
        out[2 + d->sp + i] = d->dil[i];
        out[2 + 2 * d->sp + i] = d->pad[i];
    }
    return (uint32_t)(2 + 3 * d->sp);
}

int kp_decode_deconv(const int32_t *p, uint32_t n, struct k_deconv *d)
{
    int sp = spatial(p, n, 1, 2, 3);
    if (sp < 0 || p[0] < 1)
        return -EINVAL;
    *d = (struct k_deconv){.sp = sp, .group = p[0]};
    for (int i = 0; i < sp; i++) {
        d->stride[i] = p[2 + i];
        d->dil[i] = p[2 + sp + i];
        d->pad[i] = p[2 + 2 * sp + i];
        if (d->stride[i] < 1 || d->dil[i] < 1)
            return -EINVAL;
    }
    return 0;
}

uint32_t kp_encode_maxpool_idx(const struct kp_maxpool_idx *m, int64_t *out)
{
    const struct k_pool *q = &m->pool;
    out[0] = m->which;
    out[1] = q->storage_order;
    out[2] = q->sp;
    for (int d = 0; d < q->sp; d++) {
        out[3 + d] = q->kernel[d];
        out[3 + q->sp + d] = q->stride[d];
        out[3 + 2 * q->sp + d] = q->pad[d];
        out[3 + 3 * q->sp + d] = q->dil[d];
    }
    return (uint32_t)(3 + 4 * q->sp);
}

int kp_decode_maxpool_idx(const int32_t *p, uint32_t n, struct kp_maxpool_idx *m)
{
    int sp = spatial(p, n, 2, 3, 4);
    if (sp < 0 || !flag(p[0]) || !flag(p[1]))
        return -EINVAL;
    *m = (struct kp_maxpool_idx){.which = p[0], .pool = {.sp = sp, .storage_order = p[1]}};
    int64_t taps = 1; /* bounded, so a hostile window cannot stall a run */
    for (int d = 0; d < sp; d++) {
        struct k_pool *q = &m->pool;
        q->kernel[d] = p[3 + d];
        q->stride[d] = p[3 + sp + d];
        q->pad[d] = p[3 + 2 * sp + d];
        q->dil[d] = p[3 + 3 * sp + d];
        if (q->kernel[d] < 1 || q->kernel[d] > (1 << 20) || q->stride[d] < 1 || q->dil[d] < 1)
            return -EINVAL;
        taps *= q->kernel[d];
    }
    return taps > (1 << 24) ? -EINVAL : 0;
}

uint32_t kp_encode_grid(const struct k_grid *g, int64_t *out)
{
    out[0] = g->mode;
    out[1] = g->pad;
    out[2] = g->align_corners;
    return 3;
}

int kp_decode_grid(const int32_t *p, uint32_t n, struct k_grid *g)
{
    if (n != 3 || p[0] < K_GRID_BILINEAR || p[0] > K_GRID_BICUBIC || p[1] < K_GRID_ZEROS ||
        p[1] > K_GRID_REFLECTION || !flag(p[2]))
        return -EINVAL;
    *g = (struct k_grid){(enum k_grid_mode)p[0], (enum k_grid_pad)p[1], p[2]};
    return 0;
}

uint32_t kp_encode_lrn(const struct kp_lrn *r, int64_t *out)
{
    out[0] = r->size;
    out[1] = float_bits(r->bias);
    return 2;
}

int kp_decode_lrn(const int32_t *p, uint32_t n, struct kp_lrn *r)
{
    if (n != 2 || p[0] < 1)
        return -EINVAL;
    r->size = p[0];
    r->bias = bits_float(p[1]);
    return 0;
}

uint32_t kp_encode_resize(const struct k_resize *z, int rank, int64_t *out)
{
    out[0] = z->mode;
    out[1] = z->coord;
    out[2] = z->nearest;
    out[3] = z->exclude_outside;
    out[4] = float_bits(z->cubic_a);
    out[5] = float_bits(z->extrapolation);
    for (int d = 0; d < rank; d++) {
        out[6 + d] = float_bits(z->scale[d]);
        out[6 + rank + d] = float_bits(z->roi_start[d]);
        out[6 + 2 * rank + d] = float_bits(z->roi_end[d]);
    }
    return (uint32_t)(6 + 3 * rank);
}

int kp_decode_resize(const int32_t *p, uint32_t n, int rank, struct k_resize *z)
{
    if (rank < 0 || rank > ENGINE_MAX_RANK || n != (uint32_t)(6 + 3 * rank) ||
        p[0] < K_RESIZE_NEAREST || p[0] > K_RESIZE_CUBIC || p[1] < K_RESIZE_HALF_PIXEL ||
        p[1] > K_RESIZE_TF_CROP_AND_RESIZE || p[2] < K_NEAREST_ROUND_PREFER_FLOOR ||
        p[2] > K_NEAREST_CEIL || !flag(p[3]))
        return -EINVAL;
    *z = (struct k_resize){.mode = (enum k_resize_mode)p[0],
                           .coord = (enum k_resize_coord)p[1],
                           .nearest = (enum k_resize_nearest)p[2],
                           .exclude_outside = p[3],
                           .cubic_a = bits_float(p[4]),
                           .extrapolation = bits_float(p[5])};
    for (int d = 0; d < rank; d++) {
        z->scale[d] = bits_float(p[6 + d]);
        z->roi_start[d] = bits_float(p[6 + rank + d]);
        z->roi_end[d] = bits_float(p[6 + 2 * rank + d]);
    }
    return 0;
}

uint32_t kp_encode_rnn(const struct kp_rnn *r, int64_t *out)
{
    out[0] = r->kind;
    out[1] = r->direction;
    out[2] = r->layout;
    out[3] = r->linear_before_reset;
    out[4] = r->hidden;
    out[5] = r->which;
    out[6] = r->present;
    return 7;
}

int kp_decode_rnn(const int32_t *p, uint32_t n, struct kp_rnn *r)
{
    if (n != 7 || p[0] < K_RNN_SIMPLE || p[0] > K_RNN_LSTM || p[1] < K_RNN_FORWARD ||
        p[1] > K_RNN_BIDIRECTIONAL || !flag(p[2]) || !flag(p[3]) || p[4] < 1 ||
        p[4] > K_RNN_MAX_HIDDEN || p[5] < 0 || p[5] > (p[0] == K_RNN_LSTM ? 2 : 1) || p[6] < 0 ||
        p[6] > 31 || (p[0] != K_RNN_LSTM && (p[6] & 24)))
        return -EINVAL;
    *r = (struct kp_rnn){(enum k_rnn_kind)p[0], (enum k_rnn_dir)p[1], p[2], p[3], p[4], p[5], p[6]};
    return 0;
}

uint32_t kp_encode_roi(const struct k_roi *r, int64_t *out)
{
    out[0] = r->sampling_ratio;
    out[1] = r->half_pixel;
    return 2;
}

int kp_decode_roi(const int32_t *p, uint32_t n, float scale, struct k_roi *r)
{
    if (n != 2 || p[0] < 0 || p[0] > 1024 || !flag(p[1]))
        return -EINVAL;
    *r = (struct k_roi){.scale = scale, .sampling_ratio = p[0], .half_pixel = p[1]};
    return 0;
}

uint32_t kp_encode_nms(const struct kp_nms *q, int64_t *out)
{
    out[0] = q->center;
    out[1] = q->max_per_class;
    out[2] = q->has_iou;
    out[3] = q->has_score;
    return 4;
}

int kp_decode_nms(const int32_t *p, uint32_t n, struct kp_nms *q)
{
    if (n != 4 || !flag(p[0]) || p[1] < 0 || !flag(p[2]) || !flag(p[3]))
        return -EINVAL;
    *q = (struct kp_nms){.center = p[0], .max_per_class = p[1], .has_iou = p[2], .has_score = p[3]};
    return 0;
}

uint32_t kp_encode_trilu(const struct kp_trilu *t, int64_t *out)
{
    out[0] = t->upper;
    return 1;
}

int kp_decode_trilu(const int32_t *p, uint32_t n, struct kp_trilu *t)
{
    if (n != 1 || !flag(p[0]))
        return -EINVAL;
    t->upper = p[0];
    return 0;
}

uint32_t kp_encode_depth_space(const struct kp_depth_space *d, int64_t *out)
{
    out[0] = d->block;
    out[1] = d->mode;
    return 2;
}

int kp_decode_depth_space(const int32_t *p, uint32_t n, struct kp_depth_space *d)
{
    if (n != 2 || p[0] < 1 || p[1] < K_DEPTH_DCR || p[1] > K_SPACE_TO_DEPTH)
        return -EINVAL;
    *d = (struct kp_depth_space){p[0], (enum k_depth_mode)p[1]};
    return 0;
}

uint32_t kp_encode_cumsum(const struct kp_cumsum *q, int64_t *out)
{
    out[0] = q->exclusive;
    out[1] = q->reverse;
    return 2;
}

int kp_decode_cumsum(const int32_t *p, uint32_t n, struct kp_cumsum *q)
{
    if (n != 2 || !flag(p[0]) || !flag(p[1]))
        return -EINVAL;
    *q = (struct kp_cumsum){p[0], p[1]};
    return 0;
}

uint32_t kp_encode_loop(const struct kp_loop *q, int64_t *out)
{
    out[0] = q->end;
    out[1] = q->max;
    out[2] = q->has_trip;
    out[3] = q->has_cond;
    return 4;
}

int kp_decode_loop(const int32_t *p, uint32_t n, struct kp_loop *q)
{
    if (n != 4 || p[0] < 0 || p[1] < 0 || p[1] > ENGINE_LOOP_MAX_ITER || !flag(p[2]) || !flag(p[3]))
        return -EINVAL;
    *q = (struct kp_loop){p[0], p[1], p[2], p[3]};
    return 0;
}

uint32_t kp_encode_loop_end(const struct kp_loop_end *q, int64_t *out)
{
    out[0] = q->begin;
    out[1] = q->has_cond;
    return 2;
}

int kp_decode_loop_end(const int32_t *p, uint32_t n, struct kp_loop_end *q)
{
    if (n != 2 || p[0] < 0 || !flag(p[1]))
        return -EINVAL;
    *q = (struct kp_loop_end){p[0], p[1]};
    return 0;
}

uint32_t kp_encode_scan_slice(const struct kp_scan_slice *q, int64_t *out)
{
    out[0] = q->begin;
    out[1] = q->outer;
    out[2] = q->len;
    out[3] = q->inner;
    out[4] = q->reverse;
    out[5] = q->write;
    return 6;
}

int kp_decode_scan_slice(const int32_t *p, uint32_t n, struct kp_scan_slice *q)
{
    if (n != 6 || p[0] < 0 || p[1] < 1 || p[2] < 1 || p[3] < 1 || !flag(p[4]) || !flag(p[5]))
        return -EINVAL;
    *q = (struct kp_scan_slice){p[0], p[1], p[2], p[3], p[4], p[5]};
    return 0;
}

uint32_t kp_encode_gather_nd(const struct kp_gather_nd *q, int64_t *out)
{
    out[0] = q->batch_dims;
    return 1;
}

int kp_decode_gather_nd(const int32_t *p, uint32_t n, struct kp_gather_nd *q)
{
    if (n != 1 || p[0] < 0 || p[0] >= ENGINE_MAX_RANK)
        return -EINVAL;
    q->batch_dims = p[0];
    return 0;
}

uint32_t kp_encode_scatter(const struct kp_scatter *q, int64_t *out)
{
    out[0] = q->red;
    return 1;
}

int kp_decode_scatter(const int32_t *p, uint32_t n, struct kp_scatter *q)
{
    if (n != 1 || p[0] < K_RED_NONE || p[0] > K_RED_MIN)
        return -EINVAL;
    q->red = (enum k_scatter_red)p[0];
    return 0;
}

uint32_t kp_encode_reverse_seq(const struct kp_reverse_seq *q, int64_t *out)
{
    out[0] = q->batch_axis;
    return 1;
}

int kp_decode_reverse_seq(const int32_t *p, uint32_t n, struct kp_reverse_seq *q)
{
    if (n != 1 || !flag(p[0]))
        return -EINVAL;
    q->batch_axis = p[0];
    return 0;
}

uint32_t kp_encode_onehot(const struct kp_onehot *q, int64_t *out)
{
    out[0] = q->depth;
    out[1] = q->axis;
    return 2;
}

int kp_decode_onehot(const int32_t *p, uint32_t n, struct kp_onehot *q)
{
    if (n != 2 || p[0] < 0 || p[1] < 0 || p[1] > ENGINE_MAX_RANK)
        return -EINVAL;
    *q = (struct kp_onehot){p[0], p[1]};
    return 0;
}

uint32_t kp_encode_dft(const struct kp_dft *q, int64_t *out)
{
    out[0] = q->inverse;
    out[1] = q->onesided;
    return 2;
}

int kp_decode_dft(const int32_t *p, uint32_t n, struct kp_dft *q)
{
    if (n != 2 || !flag(p[0]) || !flag(p[1]))
        return -EINVAL;
    *q = (struct kp_dft){p[0], p[1]};
    return 0;
}

uint32_t kp_encode_stft(const struct kp_stft *q, int64_t *out)
{
    out[0] = q->step;
    out[1] = q->length;
    out[2] = q->onesided;
    return 3;
}

int kp_decode_stft(const int32_t *p, uint32_t n, struct kp_stft *q)
{
    if (n != 3 || p[0] < 1 || p[1] < 1 || !flag(p[2]))
        return -EINVAL;
    *q = (struct kp_stft){p[0], p[1], p[2]};
    return 0;
}

/* The kinds whose two parameters are flags. */
static uint32_t encode_flags2(int a, int b, int64_t *out)
{
    out[0] = a;
    out[1] = b;
    return 2;
}

static int decode_flags2(const int32_t *p, uint32_t n, int *a, int *b)
{
    if (n != 2 || !flag(p[0]) || !flag(p[1]))
        return -EINVAL;
    *a = p[0];
    *b = p[1];
    return 0;
}

uint32_t kp_encode_argext(const struct kp_argext *q, int64_t *out)
{
    return encode_flags2(q->is_min, q->select_last, out);
}

int kp_decode_argext(const int32_t *p, uint32_t n, struct kp_argext *q)
{
    return decode_flags2(p, n, &q->is_min, &q->select_last);
}

uint32_t kp_encode_topk(const struct kp_topk *q, int64_t *out)
{
    return encode_flags2(q->largest, q->indices, out);
}

int kp_decode_topk(const int32_t *p, uint32_t n, struct kp_topk *q)
{
    return decode_flags2(p, n, &q->largest, &q->indices);
}

uint32_t kp_encode_clip(const struct kp_clip *q, int64_t *out)
{
    return encode_flags2(q->has_min, q->has_max, out);
}

int kp_decode_clip(const int32_t *p, uint32_t n, struct kp_clip *q)
{
    return decode_flags2(p, n, &q->has_min, &q->has_max);
}

uint32_t kp_encode_softmax(const struct kp_softmax *q, int64_t *out)
{
    return encode_flags2(q->op, q->coerce, out);
}

int kp_decode_softmax(const int32_t *p, uint32_t n, struct kp_softmax *q)
{
    if (n != 2 || p[0] < 0 || p[0] >= K_SMOP_COUNT_ || !flag(p[1]))
        return -EINVAL;
    *q = (struct kp_softmax){(enum k_smop)p[0], p[1]};
    return 0;
}

uint32_t kp_encode_layernorm(const struct kp_layernorm *q, int64_t *out)
{
    out[0] = q->which;
    return 1;
}

int kp_decode_layernorm(const int32_t *p, uint32_t n, struct kp_layernorm *q)
{
    if (n != 1 || p[0] < 0 || p[0] > 2)
        return -EINVAL;
    q->which = p[0];
    return 0;
}

uint32_t kp_encode_nll(const struct kp_nll *q, int64_t *out)
{
    out[0] = q->red;
    out[1] = q->has_ignore;
    out[2] = q->ignore_index;
    return 3;
}

int kp_decode_nll(const int32_t *p, uint32_t n, struct kp_nll *q)
{
    if (n != 3 || p[0] < K_LOSS_NONE || p[0] > K_LOSS_MEAN || !flag(p[1]))
        return -EINVAL;
    *q = (struct kp_nll){(enum k_reduction)p[0], p[1], p[2]};
    return 0;
}

uint32_t kp_encode_op(const struct kp_op *q, int64_t *out)
{
    out[0] = q->op;
    return 1;
}

int kp_decode_op(uint32_t kind, const int32_t *p, uint32_t n, struct kp_op *q)
{
    int lo = 0, hi = kind == PLAN_K_UNARY      ? K_UNOP_COUNT_ - 1
                     : kind == PLAN_K_LOGIC    ? K_LOGOP_COUNT_ - 1
                     : kind == PLAN_K_VARIADIC ? K_VAROP_COUNT_ - 1
                                               : K_POW;
    if (kind == PLAN_K_ARITH)
        lo = K_ADD;
    else if (kind != PLAN_K_UNARY && kind != PLAN_K_LOGIC && kind != PLAN_K_VARIADIC)
        return -EINVAL;
    if (n != 1 || p[0] < lo || p[0] > hi)
        return -EINVAL;
    q->op = p[0];
    return 0;
}

uint32_t kp_encode_reduce(const struct kp_reduce *q, int rank, int with_op, int64_t *out)
{
    if (with_op)
        out[0] = q->op;
    for (int d = 0; d < rank; d++)
        out[with_op + d] = q->mask[d];
    return (uint32_t)(with_op + rank);
}

int kp_decode_reduce(const int32_t *p, uint32_t n, int rank, int with_op, struct kp_reduce *q)
{
    if (rank < 0 || rank > ENGINE_MAX_RANK || n != (uint32_t)(with_op + rank) ||
        (with_op && (p[0] < 0 || p[0] >= K_REDOP_COUNT_)))
        return -EINVAL;
    *q = (struct kp_reduce){.op = with_op ? (enum k_redop)p[0] : (enum k_redop)0};
    for (int d = 0; d < rank; d++)
        q->mask[d] = p[with_op + d] != 0;
    return 0;
}
