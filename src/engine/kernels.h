/*
 * kernels.h — plain-C kernels over plain row-major buffers: the data-movement and shape ops the
 * backend runs itself, and everything constant folding evaluates at compile time.
 *
 * Engine-internal. Every kernel takes raw pointers plus engine_shapes and an element size (or an
 * engine_dtype), allocates nothing and keeps no state, so it is safe from any session thread.
 * Callers guarantee that the buffers hold the elements their shapes say; kernels that index with
 * run-time values (gather) check those values themselves and return -EINVAL when out of range.
 */
#ifndef SHMFAAS_ENGINE_KERNELS_H
#define SHMFAAS_ENGINE_KERNELS_H

#include "engine/engine.h"
#include "engine/ir.h"

#include <stddef.h>
#include <stdint.h>

/* numpy broadcasting of two shapes; -EINVAL if incompatible. */
int k_broadcast_shape(const struct engine_shape *a, const struct engine_shape *b,
                      struct engine_shape *out);
/* Row-major element strides of s (defined even when a zero dim leaves the others' product
 * beyond int64). */
void k_strides(const struct engine_shape *s, int64_t *st);
/* The product of dims [from, to) of s, defined likewise. */
int64_t k_dims_product(const struct engine_shape *s, int from, int to);
/* Element strides of s seen from out's coordinates (0 on broadcast axes), and the offset in s
 * of out's flat index i under those strides. */
void bcast_strides(const struct engine_shape *s, const struct engine_shape *out, int64_t *st);
size_t bcast_offset(size_t i, const struct engine_shape *out, const int64_t *st);

enum k_binop {
    K_ADD,
    K_SUB,
    K_MUL,
    K_DIV,
    K_POW,
    K_MAX,
    K_MIN,
    K_EQUAL, /* comparisons write bool (uint8 0/1) */
    K_LESS,
    K_GREATER,
};

/* dst (shape ds = broadcast of as and bs) = a op b, for dtype float32, float64, int32 or int64.
 * Integer division by zero returns -EDOM; an unsupported dtype -ENOTSUP. */
int k_binary(enum k_binop op, int dtype, const void *a, const struct engine_shape *as,
             const void *b, const struct engine_shape *bs, void *dst,
             const struct engine_shape *ds);

/* dst = cond ? a : b with broadcasting of all three to ds; cond is bool. */
void k_where(const uint8_t *cond, const struct engine_shape *cs, const void *a,
             const struct engine_shape *as, const void *b, const struct engine_shape *bs,
             size_t esize, void *dst, const struct engine_shape *ds);

/* Copies src broadcast to ds (Expand, and materialising broadcast constants). */
void k_expand(const void *src, const struct engine_shape *ss, size_t esize, void *dst,
              const struct engine_shape *ds);

/* Element-wise activation, the same math the plan compiler's oneDNN eltwise uses. */
void k_act(enum ir_act act, float alpha, float beta, const float *src, float *dst, size_t n);
float k_act1(enum ir_act act, float alpha, float beta, float x);

/* Element conversion between any two engine dtypes; float → int truncates toward zero. */
int k_cast(const void *src, int sdtype, void *dst, int ddtype, size_t n);

/* A double as int64, truncated toward zero; NaN becomes 0 and the int64 range saturates, so that
 * narrower integer types wrap from there and no float-to-int conversion is undefined. */
int64_t k_saturate_i64(double v);

/* dst = src with axes permuted: dst dim i = src dim perm[i]. */
void k_transpose(const void *src, const struct engine_shape *s, const int *perm, size_t esize,
                 void *dst);

/* Concatenates n tensors (same rank, equal dims except axis) along axis. */
void k_concat(const void *const *srcs, const struct engine_shape *shapes, int n, int axis,
              size_t esize, void *dst);

/* dst[o] = src[starts + o * steps] per axis; starts/steps have s->rank entries (normalised,
 * in range), out is the result shape. */
void k_slice(const void *src, const struct engine_shape *s, const int64_t *starts,
             const int64_t *steps, const struct engine_shape *out, size_t esize, void *dst);

/* Gather along axis with indices (negative ones count from the end): out shape is
 * s[:axis] + indices shape + s[axis+1:]. Returns -EINVAL on an out-of-range index. */
int k_gather(const void *data, const struct engine_shape *s, int axis, const int64_t *idx,
             size_t n_idx, size_t esize, void *dst);

enum k_pad_mode { K_PAD_CONSTANT, K_PAD_REFLECT, K_PAD_EDGE };

/* Pads (or crops, for negative pads) by pads_begin per axis into out; value: one element. */
void k_pad(const void *src, const struct engine_shape *s, const int64_t *pads_begin,
           enum k_pad_mode mode, const void *value, size_t esize, void *dst,
           const struct engine_shape *out);

/* Mean over the axes with reduce[axis] != 0 (float). dst has the kept dims in order. */
void k_reduce_mean(const float *src, const struct engine_shape *s, const int *reduce, float *dst);

/* Softmax over one axis: src viewed as [outer, len, inner]. */
void k_softmax(const float *src, float *dst, size_t outer, size_t len, size_t inner);

/* ---- kernels_math.c: math operators (unary, reductions, arg-extrema, softmax family, logic and
 * variadic element-wise ops, layer-norm statistics, losses); kernels_quant.c: the quantisation
 * kernels declared below (k_quantize, k_dequantize, k_dynquant, k_qmatmul, k_qconv) ---- */

enum k_unop {
    K_NEG,
    K_RECIPROCAL,
    K_COS,
    K_SIN,
    K_TAN,
    K_SINH,
    K_COSH,
    K_ASIN,
    K_ACOS,
    K_ATAN,
    K_ASINH,
    K_ACOSH,
    K_ATANH,
    K_CEIL,
    K_FLOOR,
    K_ROUND, /* half to even */
    K_SIGN,
    K_ERF,
    K_LOG,
    K_ISINF,            /* alpha: detect_positive, beta: detect_negative (0 or 1); writes bool */
    K_ISNAN,            /* writes bool */
    K_THRESHOLDED_RELU, /* alpha */
    K_SHRINK,           /* alpha: lambd, beta: bias */
    K_CELU,             /* alpha */
    K_SOFTSIGN,
    K_SOFTPLUS,
    K_NOT,  /* bool */
    K_SELU, /* alpha, beta: gamma */
    K_UNOP_COUNT_
};

/* The unary op an ONNX op name maps to, or -1. */
int k_unop_find(const char *onnx_op);
/* The alpha and beta k_unary takes for node n (its attributes, ONNX defaults). */
void k_unary_attrs(const struct ir_node *n, float *alpha, float *beta);
/* The dtype op writes for a dtype input, or 0 when the kernel does not implement that pair. */
int k_unary_dtype(enum k_unop op, int dtype);
void k_unary(enum k_unop op, int dtype, float alpha, float beta, const void *src, void *dst,
             size_t n);

enum k_redop {
    K_RSUM,
    K_RMEAN,
    K_RMAX,
    K_RMIN,
    K_RPROD,
    K_RL1,
    K_RL2,
    K_RSUMSQ,
    K_RLOGSUM,
    K_RLOGSUMEXP,
    K_REDOP_COUNT_
};

int k_redop_find(const char *onnx_op);
/* 1 if the reduction runs on dtype (float32 all; int32/int64 sum, mean, max, min, prod). */
int k_reduce_dtype_ok(enum k_redop op, int dtype);
/* Reduces the axes with mask[axis] != 0; dst holds the kept dims in order (of src's dtype). */
void k_reduce(enum k_redop op, int dtype, const void *src, const struct engine_shape *s,
              const int32_t *mask, void *dst);

/* Index of the largest (smallest) element along axis, first or last of equals; dims[axis] >= 1. */
void k_argext(int is_min, int select_last, const float *src, const struct engine_shape *s, int axis,
              int64_t *dst);

/* The k largest (or smallest) of src viewed as [outer, len, inner] along len, best first; equal
 * values keep their order and NaN ranks above every number. values/indices may be NULL. */
void k_topk(const float *src, size_t outer, size_t len, size_t inner, size_t k, int largest,
            float *values, int64_t *indices);

enum k_smop { K_SM_SOFTMAX, K_SM_LOGSOFTMAX, K_SM_HARDMAX, K_SMOP_COUNT_ };

/* Softmax, log-softmax or hardmax over src viewed as [outer, len, inner]. */
void k_softmax_family(enum k_smop op, const float *src, float *dst, size_t outer, size_t len,
                      size_t inner);

enum k_logop {
    K_AND, /* bool */
    K_OR,
    K_XOR,
    K_MOD,  /* sign of the divisor (fmod=0) */
    K_FMOD, /* sign of the dividend (fmod=1) */
    K_LESS_EQUAL,
    K_GREATER_EQUAL,
    K_PRELU,       /* a < 0 ? a * b : a */
    K_SHIFT_LEFT,  /* uint8 */
    K_SHIFT_RIGHT, /* uint8 */
    K_LOGOP_COUNT_
};

/* The op of an And/Or/Xor/Mod/LessOrEqual/GreaterOrEqual/PRelu/BitShift node (its fmod or
 * direction attribute included), or -1. */
int k_logop_of(const struct ir_node *n);
/* The dtype op writes for operands of dtype, or 0 when not implemented. */
int k_logic_dtype(enum k_logop op, int dtype);
/* dst (shape ds, the broadcast of as and bs) = a op b; -EDOM on an integer modulo by zero. */
int k_logic(enum k_logop op, int dtype, const void *a, const struct engine_shape *as, const void *b,
            const struct engine_shape *bs, void *dst, const struct engine_shape *ds);

enum k_varop { K_VSUM, K_VMEAN, K_VMAX, K_VMIN, K_VAROP_COUNT_ };

int k_varop_find(const char *onnx_op);
/* 1 if the variadic op runs on dtype (float32, float64; integers except for mean; float16 for
 * Max and Min). */
int k_variadic_dtype_ok(enum k_varop op, int dtype);
/* dst (shape ds) = srcs[0] op srcs[1] op ..., every source broadcast to ds; n >= 1. */
void k_variadic(enum k_varop op, int dtype, const void *const *srcs,
                const struct engine_shape *shapes, int n, void *dst, const struct engine_shape *ds);

/* Layer normalisation of x viewed as [outer, inner]; y, mean and inv_std may each be NULL. */
void k_layernorm(const float *x, const float *scale, const float *bias, size_t outer, size_t inner,
                 float eps, float *y, float *mean, float *inv_std);

/* 1 if k_arith runs op (K_ADD..K_POW) on these operand dtypes: int8/uint8 arithmetic of one
 * dtype, and Pow with an exponent of another dtype (float32, int32, int64 each side). */
int k_arith_dtypes_ok(enum k_binop op, int adtype, int bdtype);
/* dst (a's dtype, shape ds) = a op b with numpy broadcasting; integers wrap through int64, a
 * float result stored as an integer truncates toward zero. -EDOM on integer division by 0. */
int k_arith(enum k_binop op, int adtype, const void *a, const struct engine_shape *as, int bdtype,
            const void *b, const struct engine_shape *bs, void *dst, const struct engine_shape *ds);

/* Instance normalisation of x viewed as [n, c, inner] with per-channel scale and bias. */
void k_instancenorm(const float *x, const float *scale, const float *bias, size_t n, size_t c,
                    size_t inner, float eps, float *y);

/* 1 if Clip runs on dtype as a C kernel (float32 and the integers). */
int k_clip_dtype_ok(int dtype);
/* dst = min(max(x, *lo), *hi) of n elements; lo/hi: one element of dtype, or NULL (unbounded). */
void k_clip(int dtype, const void *x, const void *lo, const void *hi, void *dst, size_t n);

/* Quantisation. A scale/zero point applies per channel c = (i / inner) % len of element i, or to
 * every element when nscale is 1; zp may be NULL (0). Quantize: float32 src to dtype (uint8 or
 * int8), saturating, ties to even. Dequantize: uint8/int8/int32 src to float32. */
void k_quantize(const float *src, const float *scale, const void *zp, size_t nscale, size_t len,
                size_t inner, int dtype, void *dst, size_t n);
void k_dequantize(const void *src, int dtype, const float *scale, const void *zp, size_t nscale,
                  size_t len, size_t inner, float *dst, size_t n);
/* DynamicQuantizeLinear to uint8: y, its scale and zero point (each may be NULL). */
void k_dynquant(const float *x, size_t n, uint8_t *y, float *scale, uint8_t *zp);

/* Integer matmul of uint8/int8 a [batch?, m, k] and b [batch or 1, k, n] less their zero points
 * (one each, or azp per row of a / bzp per column of b when n_azp == m / n_bzp == n). With
 * requant NULL the int32 sums go to dst; else requant[0] is the multiplier and dst gets
 * saturate(rint(sum * multiplier) + requant_zp) in ydtype. */
struct k_qmm {
    int adt, bdt, ydt;
    size_t batch, m, k, n;
    int b_batched;
    const void *azp, *bzp;
    size_t n_azp, n_bzp;
    const float *multiplier; /* NULL: int32 output */
    const void *yzp;         /* requantised output's zero point (ydt), or NULL */
};
void k_qmatmul(const struct k_qmm *q, const void *a, const void *b, void *dst);

/* Element i of an int64/int32/int8/uint8 buffer as int64 (kernels_math.c, kernels_quant.c). */
static inline int64_t k_load_int(const void *p, int dtype, size_t i)
{
    switch (dtype) {
    case ENGINE_I64:
        return ((const int64_t *)p)[i];
    case ENGINE_I32:
        return ((const int32_t *)p)[i];
    case ENGINE_I8:
        return ((const int8_t *)p)[i];
    default:
        return ((const uint8_t *)p)[i];
    }
}

/* Stores v wrapped to the dtype's width (two's complement, as numpy does). */
static inline void k_store_int(void *p, int dtype, size_t i, int64_t v)
{
    switch (dtype) {
    case ENGINE_I64:
        ((int64_t *)p)[i] = v;
        break;
    case ENGINE_I32:
        ((int32_t *)p)[i] = (int32_t)(uint32_t)(uint64_t)v;
        break;
    case ENGINE_I8:
        ((int8_t *)p)[i] = (int8_t)(uint8_t)(uint64_t)v;
        break;
    default:
        ((uint8_t *)p)[i] = (uint8_t)(uint64_t)v;
        break;
    }
}

/* A kernel loop GCC vectorises in an AVX2 clone picked at load time (target_clones; -O2 leaves
 * such loops scalar); a plain function elsewhere. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define K_VECTOR __attribute__((target_clones("avx2", "default"), optimize("O3")))
/* The same for loops whose float comparisons (clamps, selects) must become blends: that needs
 * comparisons that may not trap, as none do here (no floating-point exception is ever unmasked).
 * One optimize attribute: a second one would drop the clone's vector types. */
#define K_VECTOR_SELECTS                                                                           \
    __attribute__((target_clones("avx2", "default"), optimize("O3", "no-trapping-math")))
#else
#define K_VECTOR
#define K_VECTOR_SELECTS
#endif

/* Integer convolution of uint8/int8 x [n, c, in...] with w [m, c / group, k...] (1-3 spatial
 * dims, unused ones 1) less their zero points, padded with the zero point. With xs NULL the
 * int32 sums go to dst [n, m, out...] (ConvInteger); else dst (ydt) gets saturate(rint((sum +
 * bias[m]) * xs * ws[m or 0] / ys) + yzp) (QLinearConv). Taps outside x are skipped. */
struct k_qconv {
    int xdt, wdt, ydt;
    int64_t n, c, m, group;
    int64_t in[3], k[3], out[3], stride[3], dil[3], pad[3];
    const void *xzp, *wzp; /* one element, or wzp one per output channel when n_wzp == m */
    int64_t n_wzp;
    const int32_t *bias;       /* or NULL */
    const float *xs, *ws, *ys; /* requantisation scales (ws: 1 or m values), or xs NULL */
    int64_t n_ws;
    const void *yzp;
    int relu; /* QLinearConv with a fused ReLU: outputs below the y zero point become it */
};
void k_qconv(const struct k_qconv *q, const void *x, const void *w, void *dst);

/* The integer GEMM under both (kernels_int8.c): c[j * ldc + p] = the int32 (wrapping) sum over
 * kp of a[j * kp + i] * t[p * kp + i], operands in [-255, 255], kp a multiple of 16; AVX2
 * vpmaddwd where the CPU has it. K_QDOT_MAX_K: the longest sum that cannot wrap. */
#define K_QDOT_MAX_K 33025
void k_qdot(const int16_t *a, int64_t nj, const int16_t *t, int64_t np, int64_t kp, int32_t *c,
            int64_t ldc);
void k_qdot_force_plain(int plain); /* tests: the portable path (1) or the CPU's (0) */
/* Per-tensor quantization (QuantizeLinear's, scale s, zero point z, to uint8 or int8) of a
 * leading part of src, 8 values at a time where the CPU has AVX2; returns how many it wrote
 * (the caller does the rest). */
size_t k_quantize_bulk(const float *src, float s, float z, int is_u8, void *dst, size_t n);
/* The same for DynamicQuantizeLinear's range: folds the min and max of a leading part of x into
 * *lo and *hi (NaN never chosen); returns how many values it read. */
size_t k_minmax_bulk(const float *x, size_t n, float *lo, float *hi);
/* rows x k uint8/int8 values (element (r, i) at r * row_stride + i * col_stride) less their zero
 * point (zp NULL, one, or one per row when n_zp == rows) into int16 rows of kp (zero filled). */
void k_qpack_rows(const void *src, int dt, const void *zp, int64_t n_zp, int64_t rows, int64_t k,
                  int64_t row_stride, int64_t col_stride, int64_t kp, int16_t *dst);
/* im2row in two steps: k_qconv_pad copies the input channels of batch b, group g less the zero
 * point into int16 planes of ext (k_qconv_extent: every tap's reach; returns the plane size)
 * with 0 around them; k_qconv_im2row writes output positions p0 .. p0 + np - 1 as rows of kp:
 * the taps (ci, k0, k1, k2) in the weights' order, zero filled to kp. */
int64_t k_qconv_extent(const struct k_qconv *q, int64_t ext[3]);
void k_qconv_pad(const struct k_qconv *q, const void *x, int64_t b, int64_t g, const int64_t ext[3],
                 int16_t *xp);
void k_qconv_im2row(const struct k_qconv *q, const int16_t *xp, const int64_t ext[3], int64_t p0,
                    int64_t np, int64_t kp, int16_t *t);

/* Einsum. A spec names every dim by a label id: [n_in, out_rank, out ids..., then per input its
 * rank and ids...]; letters are ids 0-51, the dims an ellipsis covers 52 on. */
#define K_EINSUM_LABELS 60
#define K_EINSUM_MAX_IN 8
/* Parses equation for inputs of these ranks into spec (cap values); the spec's length or
 * -EINVAL. */
int k_einsum_parse(const char *equation, int n_in, const int *ranks, int32_t *spec, int cap);
/* 0 if spec (n values) fits the input shapes, every label has one extent, and out is the
 * shape the output labels give; -EINVAL otherwise. */
int k_einsum_check(const int32_t *spec, int n, const struct engine_shape *shapes, int n_in,
                   struct engine_shape *out);
/* 1 if Einsum runs on dtype (float32, float64, int32, int64). */
int k_einsum_dtype_ok(int dtype);
/* dst = the einsum of srcs (one dtype: float32, float64, int32 or int64) under a checked spec. */
void k_einsum(int dtype, const void *const *srcs, const struct engine_shape *shapes,
              const int32_t *spec, void *dst, const struct engine_shape *ds);

enum k_window { K_WIN_HANN, K_WIN_HAMMING, K_WIN_BLACKMAN, K_WINDOW_COUNT_ };

/* The window an ONNX op name maps to, or -1. */
int k_window_find(const char *onnx_op);
/* n values of a window (float32 or float64), periodic or symmetric (then n >= 2). */
void k_window(enum k_window w, int64_t n, int periodic, int dtype, void *dst);

/* MelWeightMatrix [dft_length / 2 + 1, bins] (float32 or float64) of triangular filters on the
 * mel scale; -EINVAL when a filter edge falls outside the spectrogram bins. */
int k_mel_weights(int64_t bins, int64_t dft_length, int64_t sample_rate, double lo_hz, double hi_hz,
                  int dtype, void *dst);

/* Determinant of each [m, m] matrix of x (LU with partial pivoting in double); m <= K_DET_MAX. */
#define K_DET_MAX 64
void k_det(const float *x, size_t batch, size_t m, float *dst);

/* DFT of x viewed as [outer, n, inner, c] (c = 1 real or 2 complex) along n, into dst [outer,
 * m, inner, 2] with m = n, or n / 2 + 1 when onesided; the inverse is scaled by 1 / n. */
void k_dft(const float *x, size_t outer, size_t n, size_t inner, size_t c, int inverse,
           int onesided, float *dst);

/* STFT of x [batch, len, c] (c = 1 real or 2 complex) in frames of fl samples every step,
 * times window (fl values, or NULL), into dst [batch, frames, bins, 2] with frames =
 * (len - fl) / step + 1 and bins = fl, or fl / 2 + 1 when onesided. */
void k_stft(const float *x, size_t batch, size_t len, size_t c, const float *window, size_t step,
            size_t fl, int onesided, float *dst);

/* MeanVarianceNormalization over the axes with mask[axis] != 0: (x - mean) / (std + 1e-9). */
void k_mvn(const float *x, const struct engine_shape *s, const int32_t *mask, float *dst);

enum k_reduction { K_LOSS_NONE, K_LOSS_SUM, K_LOSS_MEAN };

/* Negative log-likelihood of logp viewed as [n, c, inner] at target [n, inner] with optional
 * class weights; dst has n*inner values (none) or one. Returns -EINVAL when a target that is
 * not ignore_index lies outside [0, c). */
int k_nll(const float *logp, const int64_t *target, const float *weight, size_t n, size_t c,
          size_t inner, enum k_reduction red, int has_ignore, int64_t ignore_index, float *dst);
/* ---- kernels_move.c: data movement by element size (indices checked, -EINVAL if out of range)
 * ---- */

enum k_scatter_red { K_RED_NONE, K_RED_ADD, K_RED_MUL, K_RED_MAX, K_RED_MIN };

/* 1 if reduction r is defined for dtype (none: any; the others: float32, int32, int64). */
int k_reduction_ok(enum k_scatter_red r, int dtype);

/* dst (shape is) [.., i_axis, ..] = data[.., idx[..], ..]; idx int32 or int64, same rank as data,
 * is[d] <= ds[d] off axis. */
int k_gather_elements(const void *data, const struct engine_shape *ds, const void *idx,
                      int idx_dtype, const struct engine_shape *is, int axis, size_t esize,
                      void *dst);
/* dst = data, then dst[.., idx[..], ..] (op)= updates[..] (updates shaped like idx). */
int k_scatter_elements(const void *data, const struct engine_shape *ds, const void *idx,
                       int idx_dtype, const struct engine_shape *is, const void *updates, int axis,
                       enum k_scatter_red r, int dtype, void *dst);
/* GatherND: idx [..., k] tuples index dims batch_dims.. batch_dims+k-1 of data; dst is
 * ds[:b] + is[b:-1] + ds[b+k:]. */
int k_gather_nd(const void *data, const struct engine_shape *ds, const void *idx, int idx_dtype,
                const struct engine_shape *is, int batch_dims, size_t esize, void *dst);
/* ScatterND: dst = data, then the slice each idx tuple names (op)= its updates slice. */
int k_scatter_nd(const void *data, const struct engine_shape *ds, const void *idx, int idx_dtype,
                 const struct engine_shape *is, const void *updates, enum k_scatter_red r,
                 int dtype, void *dst);
/* Keeps the upper (j - i >= k) or lower (j - i <= k) triangle of each trailing matrix. */
void k_trilu(const void *src, const struct engine_shape *s, int64_t k, int upper, size_t esize,
             void *dst);

enum k_depth_mode { K_DEPTH_DCR, K_DEPTH_CRD, K_SPACE_TO_DEPTH };

/* DepthToSpace (DCR, CRD) or SpaceToDepth of an NCHW tensor s with block b. */
void k_depth_space(const void *src, const struct engine_shape *s, int64_t b, enum k_depth_mode mode,
                   size_t esize, void *dst);
/* dst (shape o, each dim a multiple of s's) repeats src. */
/* Slice of src (shape s) along axis from start, out's extent there (step 1): -EINVAL unless
 * 0 <= start and start + out dims[axis] <= s dims[axis]. */
int k_slice_from(const void *src, const struct engine_shape *s, int axis, int64_t start,
                 const struct engine_shape *out, size_t esize, void *dst);
/* Slice `index` of the middle axis of a [outer, len, inner bytes] tensor (Scan, Loop scan
 * outputs): write 0 copies it from full into slice, write 1 from slice into full. */
void k_scan_slice(void *full, void *slice, size_t outer, size_t len, size_t inner, size_t index,
                  int write);
void k_tile(const void *src, const struct engine_shape *s, size_t esize, void *dst,
            const struct engine_shape *o);

/* ConvTranspose geometry: x [N, C, in...], w [C, M/group, k...], y [N, M, out...]. */
struct k_deconv {
    int sp; /* spatial dims, 1 to 3 */
    int64_t group;
    int64_t stride[3], dil[3], pad[3]; /* pad: at the beginning (may be negative) */
};

/* y = ConvTranspose(x, w) + bias (bias may be NULL); taps outside y are dropped. */
void k_conv_transpose(const float *x, const struct engine_shape *xs, const float *w,
                      const struct engine_shape *ws, const float *bias, const struct k_deconv *p,
                      float *y, const struct engine_shape *ys);
enum k_grid_mode { K_GRID_BILINEAR, K_GRID_NEAREST, K_GRID_BICUBIC };
enum k_grid_pad { K_GRID_ZEROS, K_GRID_BORDER, K_GRID_REFLECTION };

struct k_grid {
    enum k_grid_mode mode;
    enum k_grid_pad pad;
    int align_corners;
};

/* GridSample of x [N, C, H, W] at grid [N, Ho, Wo, 2] (normalised x, y) into y [N, C, Ho, Wo];
 * a NaN coordinate gives NaN. */
void k_grid_sample(const float *x, const struct engine_shape *xs, const float *grid,
                   const struct k_grid *p, float *y, const struct engine_shape *ys);
/* Reverses the first lens[b] steps of each batch entry; time and batch are axes 0 and 1 (in
 * either order). -EINVAL when a length is outside [0, time steps]. */
int k_reverse_sequence(const void *src, const struct engine_shape *s, const void *lens,
                       int lens_dtype, int batch_axis, size_t esize, void *dst);
/* dst (n_dst elements) = 0, then dst[idx[i]] = src[i]; -EINVAL for an index outside dst. */
int k_max_unpool(const void *src, const int64_t *idx, size_t n, size_t esize, void *dst,
                 size_t n_dst);
/* 1 for float64 and float16: element types only Cast and data movement handle. */
int k_dtype_wide(int dtype);
/* 1 if CumSum runs on dtype (float32, float64, int32, int64). */
int k_cumsum_ok(int dtype);
/* Running sum along axis (negative counts from the end; -EINVAL when out of range), inclusive or
 * exclusive, forward or reversed; integers wrap. */
int k_cumsum(const void *src, const struct engine_shape *s, int64_t axis, int exclusive,
             int reverse, int dtype, void *dst);
enum k_rnn_kind { K_RNN_SIMPLE, K_RNN_GRU, K_RNN_LSTM };
enum k_rnn_dir { K_RNN_FORWARD, K_RNN_REVERSE, K_RNN_BIDIRECTIONAL };
#define K_RNN_MAX_HIDDEN 1024 /* the state lives on the stack */

/* RNN/GRU/LSTM geometry (ONNX layouts; gates zrh for GRU, iofc for LSTM, peepholes iof). */
struct k_rnn {
    enum k_rnn_kind kind;
    enum k_rnn_dir direction;
    int layout;              /* 0: [seq, batch, ...], 1: [batch, seq, ...] */
    int linear_before_reset; /* GRU */
    int64_t seq, batch, input, hidden, dirs, gates;
};

struct k_rnn_io {
    const float *x, *w, *r;
    const float *b, *h0, *c0, *p; /* optional: NULL */
    const int32_t *lens;          /* optional: NULL */
};

/* Runs the recurrence with tanh/sigmoid activations and writes output `which` (0 Y, 1 Y_h,
 * 2 Y_c) to dst; -EINVAL for a sequence length outside [0, seq]. */
int k_rnn(const struct k_rnn *p, const struct k_rnn_io *io, int which, float *dst);
enum k_resize_mode { K_RESIZE_NEAREST, K_RESIZE_LINEAR, K_RESIZE_CUBIC };
enum k_resize_coord {
    K_RESIZE_HALF_PIXEL,
    K_RESIZE_PYTORCH_HALF_PIXEL,
    K_RESIZE_ALIGN_CORNERS,
    K_RESIZE_ASYMMETRIC,
    K_RESIZE_TF_HALF_PIXEL_FOR_NN,
    K_RESIZE_TF_CROP_AND_RESIZE,
};
enum k_resize_nearest {
    K_NEAREST_ROUND_PREFER_FLOOR,
    K_NEAREST_ROUND_PREFER_CEIL,
    K_NEAREST_FLOOR,
    K_NEAREST_CEIL,
};

struct k_resize {
    enum k_resize_mode mode;
    enum k_resize_coord coord;
    enum k_resize_nearest nearest;
    int exclude_outside;
    float cubic_a, extrapolation;
    float scale[ENGINE_MAX_RANK];                               /* per axis */
    float roi_start[ENGINE_MAX_RANK], roi_end[ENGINE_MAX_RANK]; /* tf_crop_and_resize */
};

/* Resize x (any rank; every axis by its own scale) into y; samples are clamped to the input
 * (edge padding), or take `extrapolation` outside the crop (tf_crop_and_resize). Axes with an
 * empty input must have an empty output (the caller checks). */
void k_resize(const float *x, const struct engine_shape *xs, const struct k_resize *p, float *y,
              const struct engine_shape *ys);
struct k_roi {
    float scale;        /* spatial_scale */
    int sampling_ratio; /* 0: adaptive, ceil(bin size) */
    int half_pixel;     /* coordinate_transformation_mode half_pixel (else output_half_pixel) */
};

/* RoiAlign (average) of x [N,C,H,W] over rois [R,4] (x1,y1,x2,y2) of images batch[R] into
 * y [R,C,oh,ow]; -EINVAL for a batch index outside N, a non-finite roi or an adaptive sampling
 * grid over 1024 per axis. */
int k_roi_align(const float *x, const struct engine_shape *xs, const float *rois,
                const int64_t *batch, const struct k_roi *p, float *y,
                const struct engine_shape *ys);
/* MaxPool geometry for the Indices kernel (1-3 spatial dims). */
struct k_pool {
    int sp, storage_order; /* storage_order 1: indices count the spatial dims column-major */
    int64_t kernel[3], stride[3], pad[3], dil[3];
};

/* MaxPool of x [N, C, in...] into y [N, C, out...]: which 0 writes the maxima (float32), 1 their
 * flat indices into x (int64; the first maximum wins; -1 for a window that misses the input). */
void k_maxpool_idx(const float *x, const struct engine_shape *xs, const struct k_pool *p, int which,
                   void *dst, const struct engine_shape *ys);
/* OneHot: dst (is with depth inserted at axis) = values[0], and values[1] where an index (int32,
 * int64 or float32, truncated; negative ones count from depth) selects; others stay off. */
int k_onehot(const void *idx, int idx_dtype, const struct engine_shape *is, int64_t depth, int axis,
             const void *values, size_t esize, void *dst);
/* Local response normalisation across channels (axis 1) of s, ONNX's window and formula. */
void k_lrn(const float *x, const struct engine_shape *s, int64_t size, float alpha, float beta,
           float bias, float *y);

/* ---- data-dependent selections (kernels_select.c): an output sized for the most the data can
 * select, filled compactly from its start; when fewer were selected its last int64 holds
 * -(count + 1) ---- */

/* The extent along the bounded axis of such an output of n int64 elements (bound at most). */
int64_t k_bounded_count(const int64_t *data, size_t n, int64_t bound);

struct k_nms {
    int64_t batches, classes, boxes; /* boxes [B, boxes, 4], scores [B, classes, boxes] */
    int64_t max_per_class;           /* selected boxes per batch and class, at most */
    int center;                      /* center_point_box: [x, y, w, h]; else [y1, x1, y2, x2] */
    int has_iou, has_score;          /* thresholds given (else IoU 0, no score threshold) */
    float iou, score;
};

/* NonMaxSuppression as ONNX Runtime computes it (candidates by score, then the lower box index;
 * a box is dropped when its IoU with a kept one exceeds iou; only scores above `score` are
 * candidates; NaN scores never): sel [bound, 3] int64 rows (batch, class, box). -ENOMEM. */
int k_nms(const struct k_nms *p, const float *boxes, const float *scores, int64_t *sel,
          int64_t bound);
/* NonZero: the indices of x's non-zero elements (row-major order) into out [rank, numel(x)] as a
 * compact [rank, count]; returns count. */
int64_t k_nonzero(const void *x, int dtype, const struct engine_shape *s, int64_t *out);

#endif
