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

/* dst (shape ds = broadcast of as and bs) = a op b, for dtype float32, int32 or int64.
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

/* c[M,N] = a[M,K] × b[K,N], plain loops (folding and reference checks only). */
void k_matmul(const float *a, const float *b, float *c, size_t m, size_t k, size_t n);

#endif
