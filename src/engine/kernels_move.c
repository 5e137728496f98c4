/*
 * kernels_move.c — plain-C data-movement kernels: GatherElements, ScatterElements, GatherND,
 * ScatterND, Trilu, DepthToSpace/SpaceToDepth, Tile.
 *
 * They move elements by size and never look at their values, except the reductions of the
 * scatters (float32, int32, int64). The caller (plan_kernel_check at model open, shape inference
 * at compile time) guarantees that the shapes fit each other; the kernels check every index
 * they read from a tensor and return -EINVAL for one out of range, before writing through it.
 */
#include "engine/kernels.h"

#include <errno.h>
#include <math.h>
#include <string.h>

/* ---- helpers ---- */

/* Advances a multi-index over shape s (last axis fastest). */
static void next_index(const struct engine_shape *s, int64_t *ix)
{
    for (int d = s->rank - 1; d >= 0; d--) {
        if (++ix[d] < s->dims[d])
            return;
        ix[d] = 0;
    }
}

/* Index element i of an int32 or int64 tensor, normalised against dim (negative counts from the
 * end); -1 when out of range. */
static int64_t index_at(const void *idx, int idx_dtype, size_t i, int64_t dim)
{
    int64_t j = idx_dtype == ENGINE_I32 ? ((const int32_t *)idx)[i] : ((const int64_t *)idx)[i];
    if (j < 0)
        j += dim;
    return j >= 0 && j < dim ? j : -1;
}

/* dst op= src for one element of dtype. */
static void reduce_one(enum k_scatter_red r, int dtype, void *dst, const void *src, size_t esize)
{
#define REDUCE(T)                                                                                  \
    do {                                                                                           \
        T a = *(T *)dst, b = *(const T *)src;                                                      \
        *(T *)dst = r == K_RED_ADD   ? a + b                                                       \
                    : r == K_RED_MUL ? a * b                                                       \
                    : r == K_RED_MAX ? (a > b ? a : b)                                             \
                                     : (a < b ? a : b);                                            \
    } while (0)
    if (r == K_RED_NONE)
        memcpy(dst, src, esize);
    else if (dtype == ENGINE_F32)
        REDUCE(float);
    else if (dtype == ENGINE_I32)
        REDUCE(int32_t);
    else
        REDUCE(int64_t);
#undef REDUCE
}

int k_reduction_ok(enum k_scatter_red r, int dtype)
{
    return r == K_RED_NONE || (r > K_RED_NONE && r <= K_RED_MIN &&
                               (dtype == ENGINE_F32 || dtype == ENGINE_I32 || dtype == ENGINE_I64));
}

/* ---- GatherElements / ScatterElements ---- */

/* GatherElements/ScatterElements: the offset in data (strides st) of element i of the indices
 * (at position ix of shape is), its index replacing the coordinate at axis; -1 if out of range. */
static int64_t element_offset(const void *idx, int idx_dtype, int64_t i,
                              const struct engine_shape *ds, const struct engine_shape *is,
                              int axis, const int64_t *ix, const int64_t *st)
{
    int64_t j = index_at(idx, idx_dtype, (size_t)i, ds->dims[axis]);
    if (j < 0)
        return -1;
    int64_t off = 0;
    for (int d = 0; d < is->rank; d++)
        off += (d == axis ? j : ix[d]) * st[d];
    return off;
}

int k_gather_elements(const void *data, const struct engine_shape *ds, const void *idx,
                      int idx_dtype, const struct engine_shape *is, int axis, size_t esize,
                      void *dst)
{
    int64_t st[ENGINE_MAX_RANK], ix[ENGINE_MAX_RANK] = {0};
    k_strides(ds, st);
    int64_t n = engine_shape_numel(is);
    for (int64_t i = 0; i < n; i++, next_index(is, ix)) {
        int64_t off = element_offset(idx, idx_dtype, i, ds, is, axis, ix, st);
        if (off < 0)
            return -EINVAL;
        memcpy((char *)dst + (size_t)i * esize, (const char *)data + (size_t)off * esize, esize);
    }
    return 0;
}

int k_scatter_elements(const void *data, const struct engine_shape *ds, const void *idx,
                       int idx_dtype, const struct engine_shape *is, const void *updates, int axis,
                       enum k_scatter_red r, int dtype, void *dst)
{
    size_t esize = engine_dtype_size(dtype);
    int64_t st[ENGINE_MAX_RANK], ix[ENGINE_MAX_RANK] = {0};
    k_strides(ds, st);
    if (dst != data)
        memcpy(dst, data, (size_t)engine_shape_numel(ds) * esize);
    int64_t n = engine_shape_numel(is);
    for (int64_t i = 0; i < n; i++, next_index(is, ix)) {
        int64_t off = element_offset(idx, idx_dtype, i, ds, is, axis, ix, st);
        if (off < 0)
            return -EINVAL;
        reduce_one(r, dtype, (char *)dst + (size_t)off * esize,
                   (const char *)updates + (size_t)i * esize, esize);
    }
    return 0;
}

/* ---- GatherND / ScatterND ---- */

/* Element offset in data of the slice that index tuple t (k values from dim `first` on) names,
 * or -1 if a value is out of range. */
static int64_t tuple_offset(const void *idx, int idx_dtype, size_t t, int k,
                            const struct engine_shape *ds, const int64_t *st, int first)
{
    int64_t off = 0;
    for (int j = 0; j < k; j++) {
        int64_t v = index_at(idx, idx_dtype, t * (size_t)k + (size_t)j, ds->dims[first + j]);
        if (v < 0)
            return -1;
        off += v * st[first + j];
    }
    return off;
}

int k_gather_nd(const void *data, const struct engine_shape *ds, const void *idx, int idx_dtype,
                const struct engine_shape *is, int batch_dims, size_t esize, void *dst)
{
    int k = (int)is->dims[is->rank - 1];
    int64_t st[ENGINE_MAX_RANK];
    k_strides(ds, st);
    int64_t batches = k_dims_product(ds, 0, batch_dims);
    int64_t per_batch = k_dims_product(is, batch_dims, is->rank - 1);
    int64_t slice = k_dims_product(ds, batch_dims + k, ds->rank);
    int64_t batch_stride = batch_dims ? st[batch_dims - 1] : 0;
    char *out = dst;
    for (int64_t b = 0; b < batches; b++) {
        for (int64_t t = 0; t < per_batch; t++) {
            int64_t off =
                tuple_offset(idx, idx_dtype, (size_t)(b * per_batch + t), k, ds, st, batch_dims);
            if (off < 0)
                return -EINVAL;
            memcpy(out, (const char *)data + (size_t)(b * batch_stride + off) * esize,
                   (size_t)slice * esize);
            out += (size_t)slice * esize;
        }
    }
    return 0;
}

int k_scatter_nd(const void *data, const struct engine_shape *ds, const void *idx, int idx_dtype,
                 const struct engine_shape *is, const void *updates, enum k_scatter_red r,
                 int dtype, void *dst)
{
    size_t esize = engine_dtype_size(dtype);
    int k = (int)is->dims[is->rank - 1];
    int64_t st[ENGINE_MAX_RANK];
    k_strides(ds, st);
    int64_t tuples = k_dims_product(is, 0, is->rank - 1), slice = k_dims_product(ds, k, ds->rank);
    if (dst != data)
        memcpy(dst, data, (size_t)engine_shape_numel(ds) * esize);
    for (int64_t t = 0; t < tuples; t++) {
        int64_t off = tuple_offset(idx, idx_dtype, (size_t)t, k, ds, st, 0);
        if (off < 0)
            return -EINVAL;
        for (int64_t e = 0; e < slice; e++)
            reduce_one(r, dtype, (char *)dst + (size_t)(off + e) * esize,
                       (const char *)updates + (size_t)(t * slice + e) * esize, esize);
    }
    return 0;
}

/* ---- Trilu, DepthToSpace / SpaceToDepth, Tile ---- */

void k_trilu(const void *src, const struct engine_shape *s, int64_t k, int upper, size_t esize,
             void *dst)
{
    int64_t rows = s->dims[s->rank - 2], cols = s->dims[s->rank - 1];
    int64_t mats = rows && cols ? engine_shape_numel(s) / (rows * cols) : 0;
    const char *in = src;
    char *out = dst;
    for (int64_t m = 0; m < mats; m++)
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < cols; j++, in += esize, out += esize) {
                /* j - i never overflows; k may be any int64 */
                int keep = upper ? j - i >= k : j - i <= k;
                if (keep)
                    memcpy(out, in, esize);
                else
                    memset(out, 0, esize);
            }
}

void k_depth_space(const void *src, const struct engine_shape *s, int64_t b, enum k_depth_mode mode,
                   size_t esize, void *dst)
{
    /* walk the "space" side [N, C, H*b, W*b] with its "depth" twin [N, C*b*b, H, W] */
    int64_t n = s->dims[0], c, h, w;
    if (mode == K_SPACE_TO_DEPTH) {
        c = s->dims[1], h = s->dims[2] / b, w = s->dims[3] / b;
    } else {
        c = s->dims[1] / (b * b), h = s->dims[2], w = s->dims[3];
    }
    for (int64_t in = 0; in < n; in++)
        for (int64_t ic = 0; ic < c; ic++)
            for (int64_t y = 0; y < h * b; y++)
                for (int64_t x = 0; x < w * b; x++) {
                    int64_t i = y % b, j = x % b;
                    int64_t dc =
                        mode == K_DEPTH_CRD ? ic * b * b + i * b + j : (i * b + j) * c + ic;
                    int64_t space = ((in * c + ic) * h * b + y) * w * b + x;
                    int64_t depth = ((in * c * b * b + dc) * h + y / b) * w + x / b;
                    const char *from = (const char *)src +
                                       (size_t)(mode == K_SPACE_TO_DEPTH ? space : depth) * esize;
                    char *to =
                        (char *)dst + (size_t)(mode == K_SPACE_TO_DEPTH ? depth : space) * esize;
                    memcpy(to, from, esize);
                }
}

int k_slice_from(const void *src, const struct engine_shape *s, int axis, int64_t start,
                 const struct engine_shape *out, size_t esize, void *dst)
{
    if (start < 0 || start > s->dims[axis] - out->dims[axis])
        return -EINVAL;
    int64_t starts[ENGINE_MAX_RANK] = {0}, steps[ENGINE_MAX_RANK];
    for (int i = 0; i < ENGINE_MAX_RANK; i++)
        steps[i] = 1;
    starts[axis] = start;
    k_slice(src, s, starts, steps, out, esize, dst);
    return 0;
}

void k_scan_slice(void *full, void *slice, size_t outer, size_t len, size_t inner, size_t index,
                  int write)
{
    for (size_t o = 0; o < outer; o++) {
        uint8_t *f = (uint8_t *)full + (o * len + index) * inner;
        uint8_t *x = (uint8_t *)slice + o * inner;
        memmove(write ? f : x, write ? x : f, inner);
    }
}

void k_tile(const void *src, const struct engine_shape *s, size_t esize, void *dst,
            const struct engine_shape *o)
{
    int64_t st[ENGINE_MAX_RANK], ix[ENGINE_MAX_RANK] = {0};
    k_strides(s, st);
    int64_t n = engine_shape_numel(o);
    for (int64_t i = 0; i < n; i++, next_index(o, ix)) {
        int64_t off = 0;
        for (int d = 0; d < o->rank; d++)
            off += ix[d] % s->dims[d] * st[d];
        memcpy((char *)dst + (size_t)i * esize, (const char *)src + (size_t)off * esize, esize);
    }
}

/* ---- ConvTranspose and LRN (float32) ---- */

/* Flat offset of multi-index ix in spatial dims d[0..sp). */
static int64_t flat(const int64_t *ix, const int64_t *d, int sp)
{
    int64_t off = 0;
    for (int i = 0; i < sp; i++)
        off = off * d[i] + ix[i];
    return off;
}

/* Output spatial offset of input position ip and kernel tap kp, or -1 outside the output. */
static int64_t deconv_target(const int64_t *ip, const int64_t *kp, const struct k_deconv *p,
                             const int64_t *od)
{
    int64_t o[3];
    for (int i = 0; i < p->sp; i++) {
        o[i] = ip[i] * p->stride[i] - p->pad[i] + kp[i] * p->dil[i];
        if (o[i] < 0 || o[i] >= od[i])
            return -1;
    }
    return flat(o, od, p->sp);
}

void k_conv_transpose(const float *x, const struct engine_shape *xs, const float *w,
                      const struct engine_shape *ws, const float *bias, const struct k_deconv *p,
                      float *y, const struct engine_shape *ys)
{
    int sp = p->sp;
    struct engine_shape is = {.rank = sp}, ks = {.rank = sp};
    memcpy(is.dims, xs->dims + 2, (size_t)sp * sizeof(int64_t));
    memcpy(ks.dims, ws->dims + 2, (size_t)sp * sizeof(int64_t));
    const int64_t *od = ys->dims + 2;
    int64_t n_img = xs->dims[0], cg = xs->dims[1] / p->group, mg = ws->dims[1];
    int64_t in_sp = engine_shape_numel(&is), k_sp = engine_shape_numel(&ks), out_sp = 1;
    for (int i = 0; i < sp; i++)
        out_sp *= od[i];
    for (int64_t c = 0; c < n_img * ys->dims[1]; c++)
        for (int64_t o = 0; o < out_sp; o++)
            y[c * out_sp + o] = bias ? bias[c % ys->dims[1]] : 0.0f;
    for (int64_t n = 0; n < n_img; n++)
        for (int64_t ci = 0; ci < xs->dims[1]; ci++) {
            int64_t g = ci / cg, ip[3] = {0};
            const float *xc = x + (n * xs->dims[1] + ci) * in_sp;
            for (int64_t i = 0; i < in_sp; i++, next_index(&is, ip)) {
                int64_t kp[3] = {0};
                for (int64_t k = 0; k < k_sp; k++, next_index(&ks, kp)) {
                    int64_t t = deconv_target(ip, kp, p, od);
                    if (t < 0)
                        continue;
                    for (int64_t m = 0; m < mg; m++)
                        y[(n * ys->dims[1] + g * mg + m) * out_sp + t] +=
                            xc[i] * w[(ci * mg + m) * k_sp + k];
                }
            }
        }
}

void k_lrn(const float *x, const struct engine_shape *s, int64_t size, float alpha, float beta,
           float bias, float *y)
{
    if (engine_shape_numel(s) == 0)
        return;
    int64_t n = s->dims[0], c = s->dims[1], inner = 1;
    for (int d = 2; d < s->rank; d++)
        inner *= s->dims[d];
    int64_t lo = (size - 1) / 2, hi = size / 2; /* floor and ceil of (size - 1) / 2 */
    for (int64_t b = 0; b < n; b++)
        for (int64_t ch = 0; ch < c; ch++)
            for (int64_t i = 0; i < inner; i++) {
                double sq = 0;
                for (int64_t k = ch - lo; k <= ch + hi; k++) {
                    if (k < 0 || k >= c)
                        continue;
                    double v = x[(b * c + k) * inner + i];
                    sq += v * v;
                }
                int64_t at = (b * c + ch) * inner + i;
                y[at] = (float)(x[at] / pow(bias + alpha / (double)size * sq, beta));
            }
}

/* ---- GridSample (float32, 4-D) ---- */

/* Folds x into [lo, hi] by mirroring at the borders (as many times as needed). */
static double reflect(double x, double lo, double hi)
{
    double rng = hi - lo;
    if (rng <= 0)
        return lo;
    if (x >= lo && x <= hi)
        return x;
    double dx = x < lo ? lo - x : x - hi, n = floor(dx / rng), r = dx - n * rng;
    int even = fmod(n, 2.0) == 0.0;
    if (x < lo)
        return even ? lo + r : hi - r;
    return even ? hi - r : lo + r;
}

struct grid_img {
    const float *p; /* one [H, W] plane */
    int64_t h, w;
    double lo[2], hi[2]; /* reflection borders for x, y */
    enum k_grid_pad pad;
};

static int64_t clamp_i(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* The pixel at integer (r, c) under the padding mode; c and r are small (coordinates were
 * bounded before). */
static double pixel(const struct grid_img *g, int64_t r, int64_t c)
{
    if (g->pad == K_GRID_ZEROS)
        return r >= 0 && r < g->h && c >= 0 && c < g->w ? g->p[r * g->w + c] : 0.0;
    if (g->pad == K_GRID_REFLECTION) {
        c = (int64_t)reflect((double)c, g->lo[0], g->hi[0]);
        r = (int64_t)reflect((double)r, g->lo[1], g->hi[1]);
    }
    return g->p[clamp_i(r, 0, g->h - 1) * g->w + clamp_i(c, 0, g->w - 1)];
}

static void cubic_coeffs(double t, double c[4])
{
    const double a = -0.75;
    double x0 = t + 1, x1 = t, x2 = 1 - t, x3 = 2 - t;
    c[0] = ((a * x0 - 5 * a) * x0 + 8 * a) * x0 - 4 * a;
    c[1] = ((a + 2) * x1 - (a + 3)) * x1 * x1 + 1;
    c[2] = ((a + 2) * x2 - (a + 3)) * x2 * x2 + 1;
    c[3] = ((a * x3 - 5 * a) * x3 + 8 * a) * x3 - 4 * a;
}

static double grid_value(const struct grid_img *g, double x, double y, enum k_grid_mode mode)
{
    if (mode == K_GRID_NEAREST)
        return pixel(g, (int64_t)y, (int64_t)x);
    double fx = floor(x), fy = floor(y);
    int64_t x1 = (int64_t)fx, y1 = (int64_t)fy;
    if (mode == K_GRID_BILINEAR) {
        double dx = x - fx, dy = y - fy;
        return (1 - dy) * ((1 - dx) * pixel(g, y1, x1) + dx * pixel(g, y1, x1 + 1)) +
               dy * ((1 - dx) * pixel(g, y1 + 1, x1) + dx * pixel(g, y1 + 1, x1 + 1));
    }
    double cx[4], cy[4], v = 0;
    cubic_coeffs(x - fx, cx);
    cubic_coeffs(y - fy, cy);
    for (int i = 0; i < 4; i++) {
        double row = 0;
        for (int j = 0; j < 4; j++)
            row += cx[j] * pixel(g, y1 - 1 + i, x1 - 1 + j);
        v += cy[i] * row;
    }
    return v;
}

/* Denormalised, rounded (nearest) and padded coordinate along one axis of size len. */
static double grid_coord(double n, int64_t len, const struct k_grid *p, double lo, double hi)
{
    double x = p->align_corners ? (n + 1) / 2 * (double)(len - 1) : ((n + 1) * (double)len - 1) / 2;
    if (p->mode == K_GRID_NEAREST)
        x = nearbyint(x);
    if (x < lo || x > hi) {
        if (p->pad == K_GRID_BORDER)
            x = x < 0 ? 0 : x > (double)(len - 1) ? (double)(len - 1) : x;
        else if (p->pad == K_GRID_REFLECTION)
            x = reflect(x, lo, hi);
    }
    /* far outside, every tap reads padding zeros: keep integer conversions in range */
    return x < -4 ? -4 : x > (double)len + 4 ? (double)len + 4 : x;
}

void k_grid_sample(const float *x, const struct engine_shape *xs, const float *grid,
                   const struct k_grid *p, float *y, const struct engine_shape *ys)
{
    int64_t n_img = xs->dims[0], ch = xs->dims[1], ho = ys->dims[2], wo = ys->dims[3];
    struct grid_img g = {.h = xs->dims[2], .w = xs->dims[3], .pad = p->pad};
    for (int a = 0; a < 2; a++) {
        int64_t len = a ? g.h : g.w;
        g.lo[a] = p->align_corners ? 0.0 : -0.5;
        g.hi[a] = p->align_corners ? (double)(len - 1) : (double)len - 0.5;
    }
    for (int64_t n = 0; n < n_img; n++)
        for (int64_t i = 0; i < ho * wo; i++) {
            const float *gp = grid + (n * ho * wo + i) * 2;
            int bad = isnan(gp[0]) || isnan(gp[1]);
            double cx = bad ? 0 : grid_coord(gp[0], g.w, p, g.lo[0], g.hi[0]);
            double cy = bad ? 0 : grid_coord(gp[1], g.h, p, g.lo[1], g.hi[1]);
            for (int64_t c = 0; c < ch; c++) {
                g.p = x + (n * ch + c) * g.h * g.w;
                y[(n * ch + c) * ho * wo + i] = bad ? NAN : (float)grid_value(&g, cx, cy, p->mode);
            }
        }
}

/* ---- ReverseSequence, MaxUnpool ---- */

int k_reverse_sequence(const void *src, const struct engine_shape *s, const void *lens,
                       int lens_dtype, int batch_axis, size_t esize, void *dst)
{
    if (engine_shape_numel(s) == 0)
        return 0;
    int64_t tn = s->dims[1 - batch_axis], bn = s->dims[batch_axis], inner = 1;
    for (int d = 2; d < s->rank; d++)
        inner *= s->dims[d];
    size_t block = (size_t)inner * esize;
    for (int64_t b = 0; b < bn; b++) {
        int64_t len =
            lens_dtype == ENGINE_I32 ? ((const int32_t *)lens)[b] : ((const int64_t *)lens)[b];
        if (len < 0 || len > tn)
            return -EINVAL;
        for (int64_t t = 0; t < tn; t++) {
            int64_t from = t < len ? len - 1 - t : t;
            int64_t o = batch_axis ? t * bn + b : b * tn + t;
            int64_t i = batch_axis ? from * bn + b : b * tn + from;
            memcpy((char *)dst + (size_t)o * block, (const char *)src + (size_t)i * block, block);
        }
    }
    return 0;
}

int k_max_unpool(const void *src, const int64_t *idx, size_t n, size_t esize, void *dst,
                 size_t n_dst)
{
    memset(dst, 0, n_dst * esize);
    for (size_t i = 0; i < n; i++) {
        if (idx[i] < 0 || (uint64_t)idx[i] >= n_dst)
            return -EINVAL;
        memcpy((char *)dst + (size_t)idx[i] * esize, (const char *)src + i * esize, esize);
    }
    return 0;
}

/* ---- CumSum ---- */

int k_cumsum_ok(int dtype)
{
    return dtype == ENGINE_F32 || dtype == ENGINE_F64 || dtype == ENGINE_I32 || dtype == ENGINE_I64;
}

#define CUMSUM_LOOP(T)                                                                             \
    do {                                                                                           \
        const T *in = src;                                                                         \
        T *out = dst;                                                                              \
        for (int64_t o = 0; o < outer; o++)                                                        \
            for (int64_t i = 0; i < inner; i++) {                                                  \
                T acc = 0;                                                                         \
                for (int64_t k = 0; k < len; k++) {                                                \
                    int64_t j = reverse ? len - 1 - k : k;                                         \
                    size_t at = (size_t)((o * len + j) * inner + i);                               \
                    T v = in[at];                                                                  \
                    if (!exclusive)                                                                \
                        acc += v;                                                                  \
                    out[at] = acc;                                                                 \
                    if (exclusive)                                                                 \
                        acc += v;                                                                  \
                }                                                                                  \
            }                                                                                      \
    } while (0)

int k_cumsum(const void *src, const struct engine_shape *s, int64_t axis, int exclusive,
             int reverse, int dtype, void *dst)
{
    if (axis < -s->rank || axis >= s->rank || !k_cumsum_ok(dtype))
        return -EINVAL;
    int a = (int)(axis < 0 ? axis + s->rank : axis);
    if (engine_shape_numel(s) == 0)
        return 0;
    int64_t outer = 1, inner = 1, len = s->dims[a];
    for (int d = 0; d < a; d++)
        outer *= s->dims[d];
    for (int d = a + 1; d < s->rank; d++)
        inner *= s->dims[d];
    /* integers wrap as numpy's do: accumulate unsigned */
    if (dtype == ENGINE_F32)
        CUMSUM_LOOP(float);
    else if (dtype == ENGINE_F64)
        CUMSUM_LOOP(double);
    else if (dtype == ENGINE_I32)
        CUMSUM_LOOP(uint32_t);
    else
        CUMSUM_LOOP(uint64_t);
    return 0;
}
#undef CUMSUM_LOOP

/* ---- RNN, GRU, LSTM (float32, default activations) ---- */

/* e^x in float32 without a libm call, so that the activation loops below vectorise: x = n·ln 2
 * + r with |r| <= ln 2 / 2 (n rounded by the 1.5 * 2^23 trick), e^r by its Taylor polynomial to
 * r^6 (relative error under 2e-7), 2^n from the exponent bits. x is clamped to [-87, 88], where
 * 2^n stays a normal float (NaN becomes -87: the callers restore it). */
__attribute__((always_inline)) static inline float rnn_exp(float x)
{
    float xc = x > 88.0f ? 88.0f : x;
    xc = xc > -87.0f ? xc : -87.0f;
    float n = (xc * 1.44269504f + 12582912.0f) - 12582912.0f;
    float r = (xc - n * 0.693145752f) - n * 1.42860677e-6f;
    float e =
        1.0f +
        r * (1.0f +
             r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720))))));
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof(scale));
    return e * scale;
}

/* v = sigmoid(v) and v = tanh(v) over n floats (tanh as 1 - 2 / (e^2x + 1): absolute error
 * about 1e-7); NaN stays NaN. */
K_VECTOR_SELECTS static void rnn_sigmoid(float *restrict v, int64_t n)
{
    for (int64_t j = 0; j < n; j++) {
        float x = v[j], y = 1.0f / (1.0f + rnn_exp(-x));
        v[j] = x != x ? x : y;
    }
}

K_VECTOR_SELECTS static void rnn_tanh(float *restrict v, int64_t n)
{
    for (int64_t j = 0; j < n; j++) {
        float x = v[j], y = 1.0f - 2.0f / (rnn_exp(2.0f * x) + 1.0f);
        v[j] = x != x ? x : y;
    }
}

/* a·b over n floats in eight running sums (vectorised; not the sequential order) */
K_VECTOR static float rnn_dot(const float *restrict a, const float *restrict b, int64_t n)
{
    float s[8] = {0}, t = 0;
    int64_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int i = 0; i < 8; i++)
            s[i] += a[k + i] * b[k + i];
    for (; k < n; k++)
        t += a[k] * b[k];
    return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7])) + t;
}

/* gates[g*H + j] = x·W[g*H + j] + h·R[g*H + j] + Wb + Rb for every gate row (GRU's h gate is
 * finished by the caller, which needs R's part separately). */
static void rnn_gates(const struct k_rnn *p, const float *x, const float *h, const float *w,
                      const float *r, const float *b, float *xw, float *hr)
{
    int64_t rows = p->gates * p->hidden;
    for (int64_t g = 0; g < rows; g++) {
        xw[g] = (b ? b[g] : 0.0f) + rnn_dot(x, w + g * p->input, p->input);
        hr[g] = (b ? b[rows + g] : 0.0f) + rnn_dot(h, r + g * p->hidden, p->hidden);
    }
}

/* One step for one batch entry: h (and c) updated in place; each gate's pre-activations first,
 * then the activations over whole rows (vectorised). */
static void rnn_cell(const struct k_rnn *p, const float *xw, const float *hr, const float *peep,
                     float *h, float *c)
{
    int64_t H = p->hidden;
    float a[K_RNN_MAX_HIDDEN], b[K_RNN_MAX_HIDDEN], g[K_RNN_MAX_HIDDEN], o[K_RNN_MAX_HIDDEN];
    if (p->kind == K_RNN_SIMPLE) {
        for (int64_t j = 0; j < H; j++)
            h[j] = xw[j] + hr[j];
        rnn_tanh(h, H);
    } else if (p->kind == K_RNN_GRU) { /* z, r, h */
        for (int64_t j = 0; j < H; j++)
            a[j] = xw[j] + hr[j], b[j] = xw[H + j] + hr[H + j];
        rnn_sigmoid(a, H);
        rnn_sigmoid(b, H);
        for (int64_t j = 0; j < H; j++)
            g[j] = xw[2 * H + j] + b[j] * hr[2 * H + j];
        rnn_tanh(g, H);
        for (int64_t j = 0; j < H; j++)
            h[j] = (1 - a[j]) * g[j] + a[j] * h[j];
    } else { /* i, o, f, c; peepholes i, o, f */
        for (int64_t j = 0; j < H; j++) {
            float pi = peep ? peep[j] : 0, pf = peep ? peep[2 * H + j] : 0;
            a[j] = xw[j] + hr[j] + pi * c[j];
            b[j] = xw[2 * H + j] + hr[2 * H + j] + pf * c[j];
            g[j] = xw[3 * H + j] + hr[3 * H + j];
        }
        rnn_sigmoid(a, H);
        rnn_sigmoid(b, H);
        rnn_tanh(g, H);
        for (int64_t j = 0; j < H; j++) {
            c[j] = b[j] * c[j] + a[j] * g[j];
            o[j] = xw[H + j] + hr[H + j] + (peep ? peep[H + j] : 0) * c[j];
            h[j] = c[j];
        }
        rnn_sigmoid(o, H);
        rnn_tanh(h, H);
        for (int64_t j = 0; j < H; j++)
            h[j] *= o[j];
    }
}

/* GRU with linear_before_reset = 0 applies the reset gate before R: recompute that gate's h·R. */
static void gru_reset_before(const struct k_rnn *p, const float *h, const float *r, const float *b,
                             float *xw, float *hr)
{
    int64_t H = p->hidden, rows = 3 * H;
    float rh[K_RNN_MAX_HIDDEN];
    for (int64_t j = 0; j < H; j++)
        rh[j] = xw[H + j] + hr[H + j];
    rnn_sigmoid(rh, H);
    for (int64_t j = 0; j < H; j++)
        rh[j] *= h[j];
    for (int64_t j = 0; j < H; j++) {
        float s = b ? b[rows + 2 * H + j] : 0.0f;
        for (int64_t k = 0; k < H; k++)
            s += rh[k] * r[(2 * H + j) * H + k];
        /* rnn_cell computes tanh(xw + r * hr); with r folded in already, pass r = 1 */
        xw[2 * H + j] += s;
        hr[2 * H + j] = 0;
    }
}

int k_rnn(const struct k_rnn *p, const struct k_rnn_io *io, int which, float *dst)
{
    int64_t S = p->seq, B = p->batch, H = p->hidden, D = p->dirs;
    float h[K_RNN_MAX_HIDDEN], c[K_RNN_MAX_HIDDEN];
    float xw[4 * K_RNN_MAX_HIDDEN], hr[4 * K_RNN_MAX_HIDDEN];
    for (int64_t d = 0; d < D; d++) {
        const float *w = io->w + d * p->gates * H * p->input, *r = io->r + d * p->gates * H * H;
        const float *b = io->b ? io->b + d * 2 * p->gates * H : NULL;
        const float *peep = io->p ? io->p + d * 3 * H : NULL;
        int reverse = p->direction == K_RNN_REVERSE || d == 1;
        for (int64_t n = 0; n < B; n++) {
            int64_t len = io->lens ? io->lens[n] : S;
            if (len < 0 || len > S)
                return -EINVAL;
            for (int64_t j = 0; j < H; j++) {
                int64_t at = p->layout ? (n * D + d) * H + j : (d * B + n) * H + j;
                h[j] = io->h0 ? io->h0[at] : 0.0f;
                c[j] = io->c0 ? io->c0[at] : 0.0f;
            }
            for (int64_t k = 0; k < S; k++) {
                int64_t t = reverse ? S - 1 - k : k;
                int64_t yat = p->layout ? ((n * S + t) * D + d) * H : ((t * D + d) * B + n) * H;
                if (t >= len) { /* past this entry's length: Y is zero, the state holds */
                    if (which == 0)
                        memset(dst + yat, 0, (size_t)H * sizeof(float));
                    continue;
                }
                const float *x = io->x + (p->layout ? (n * S + t) : (t * B + n)) * p->input;
                rnn_gates(p, x, h, w, r, b, xw, hr);
                if (p->kind == K_RNN_GRU && !p->linear_before_reset)
                    gru_reset_before(p, h, r, b, xw, hr);
                rnn_cell(p, xw, hr, peep, h, c);
                if (which == 0)
                    memcpy(dst + yat, h, (size_t)H * sizeof(float));
            }
            int64_t at = p->layout ? (n * D + d) * H : (d * B + n) * H;
            if (which == 1)
                memcpy(dst + at, h, (size_t)H * sizeof(float));
            if (which == 2)
                memcpy(dst + at, c, (size_t)H * sizeof(float));
        }
    }
    return 0;
}

/* ---- Resize (float32, any rank) ---- */

/* Where output index x of one axis samples the input (ONNX coordinate_transformation_mode). */
static double resize_coord(const struct k_resize *p, int d, int64_t x, int64_t in, int64_t out)
{
    double s = p->scale[d], xr = (double)x;
    switch (p->coord) {
    case K_RESIZE_HALF_PIXEL:
        return (xr + 0.5) / s - 0.5;
    case K_RESIZE_PYTORCH_HALF_PIXEL:
        return out > 1 ? (xr + 0.5) / s - 0.5 : 0.0;
    case K_RESIZE_ALIGN_CORNERS: { /* the unrounded resized length, as the reference takes it */
        double len = (double)in * s;
        return out == 1 || len == 1 ? 0.0 : xr * (double)(in - 1) / (len - 1);
    }
    case K_RESIZE_ASYMMETRIC:
        return xr / s;
    case K_RESIZE_TF_HALF_PIXEL_FOR_NN:
        return (xr + 0.5) / s;
    default: /* tf_crop_and_resize */
        return out > 1
                   ? p->roi_start[d] * (double)(in - 1) + xr * (p->roi_end[d] - p->roi_start[d]) *
                                                              (double)(in - 1) / (double)(out - 1)
                   : 0.5 * (p->roi_start[d] + p->roi_end[d]) * (double)(in - 1);
    }
}

static int64_t nearest_index(enum k_resize_nearest m, double x)
{
    double r = m == K_NEAREST_FLOOR               ? floor(x)
               : m == K_NEAREST_CEIL              ? ceil(x)
               : m == K_NEAREST_ROUND_PREFER_CEIL ? floor(x + 0.5)
                                                  : ceil(x - 0.5);
    return r < -1.0 ? -1 : r > 4e18 ? (int64_t)4e18 : (int64_t)r;
}

static void cubic_weights(double t, double a, double w[4])
{
    double x[4] = {1 + t, t, 1 - t, 2 - t};
    for (int i = 0; i < 4; i++) {
        double v = x[i];
        w[i] = v <= 1 ? ((a + 2) * v - (a + 3)) * v * v + 1
                      : ((a * v - 5 * a) * v + 8 * a) * v - 4 * a;
    }
}

/* The taps (input indices and weights) output index x of axis d reads; returns their count, or
 * -1 when the sample lies outside the input (tf_crop_and_resize extrapolates). */
static int resize_taps(const struct k_resize *p, int d, int64_t x, int64_t in, int64_t out,
                       int64_t idx[4], double w[4])
{
    double c = resize_coord(p, d, x, in, out);
    if (p->coord == K_RESIZE_TF_CROP_AND_RESIZE && (c < 0 || c > (double)(in - 1)))
        return -1;
    if (!(c > -1e9 && c < 1e18)) /* NaN or absurd: clamp far outside, one edge tap */
        c = c < 0 ? -1e9 : 1e18;
    if (p->mode == K_RESIZE_NEAREST) {
        idx[0] = clamp_i(nearest_index(p->nearest, c), 0, in - 1);
        w[0] = 1;
        return 1;
    }
    double f = floor(c), t = c - f;
    int64_t i0 = (int64_t)f;
    int n = p->mode == K_RESIZE_LINEAR ? 2 : 4;
    if (n == 2) {
        w[0] = 1 - t, w[1] = t;
    } else {
        cubic_weights(t, p->cubic_a, w);
        i0 -= 1;
    }
    double sum = 0;
    for (int k = 0; k < n; k++) {
        int64_t at = i0 + k;
        if (p->exclude_outside && (at < 0 || at >= in))
            w[k] = 0;
        sum += w[k];
        idx[k] = clamp_i(at, 0, in - 1);
    }
    for (int k = 0; p->exclude_outside && sum != 0 && k < n; k++)
        w[k] /= sum;
    return n;
}

/* Every output element's taps found on its own: rank 0, or when the tap tables cannot be had. */
static void resize_each(const float *x, const struct engine_shape *xs, const struct k_resize *p,
                        float *y, const struct engine_shape *ys)
{
    int r = xs->rank;
    int64_t st[ENGINE_MAX_RANK], ox[ENGINE_MAX_RANK] = {0}, n = engine_shape_numel(ys);
    k_strides(xs, st);
    for (int64_t i = 0; i < n; i++, next_index(ys, ox)) {
        int64_t idx[ENGINE_MAX_RANK][4], cnt[ENGINE_MAX_RANK], tap[ENGINE_MAX_RANK] = {0};
        double w[ENGINE_MAX_RANK][4];
        int outside = 0;
        for (int d = 0; d < r; d++) {
            int k = resize_taps(p, d, ox[d], xs->dims[d], ys->dims[d], idx[d], w[d]);
            outside |= k < 0;
            cnt[d] = k < 0 ? 1 : k;
        }
        if (outside) {
            y[i] = p->extrapolation;
            continue;
        }
        double acc = 0;
        for (;;) {
            double wt = 1;
            int64_t off = 0;
            for (int d = 0; d < r; d++) {
                wt *= w[d][tap[d]];
                off += idx[d][tap[d]] * st[d];
            }
            if (wt != 0)
                acc += wt * x[off];
            int d = r - 1;
            while (d >= 0 && ++tap[d] == cnt[d])
                tap[d--] = 0;
            if (d < 0)
                break;
        }
        y[i] = (float)acc;
    }
}

#define RESIZE_CHUNK  256 /* last-axis outputs whose taps are found at a time (on the stack) */
#define RESIZE_COMBOS 64  /* outer-axis tap combinations per row: 3 cubic axes */

/* The taps of the last axis found once per chunk of its outputs, those of the outer axes once
 * per row, instead of every axis' for every element; no allocation. The sums run in
 * resize_each's order with its weights, so the results are the same bits. */
void k_resize(const float *x, const struct engine_shape *xs, const struct k_resize *p, float *y,
              const struct engine_shape *ys)
{
    int r = xs->rank, last = r - 1,
        per = p->mode == K_RESIZE_CUBIC    ? 4
              : p->mode == K_RESIZE_LINEAR ? 2
                                           : 1;
    int64_t combos = 1, st[ENGINE_MAX_RANK], n = engine_shape_numel(ys);
    for (int d = 0; d < last && combos <= RESIZE_COMBOS; d++)
        combos *= per;
    if (r == 0 || combos > RESIZE_COMBOS) {
        resize_each(x, xs, p, y, ys);
        return;
    }
    if (n == 0)
        return;
    k_strides(xs, st);
    int64_t ow = ys->dims[last], rows = n / ow;
    for (int64_t x0 = 0; x0 < ow; x0 += RESIZE_CHUNK) {
        int64_t nx = ow - x0 < RESIZE_CHUNK ? ow - x0 : RESIZE_CHUNK;
        int64_t li[RESIZE_CHUNK][4], ox[ENGINE_MAX_RANK] = {0};
        double lw[RESIZE_CHUNK][4];
        int lc[RESIZE_CHUNK];
        int unit = 1; /* every output of the chunk copies one input element (nearest) */
        for (int64_t i = 0; i < nx; i++) {
            lc[i] = resize_taps(p, last, x0 + i, xs->dims[last], ow, li[i], lw[i]);
            unit &= lc[i] == 1 && lw[i][0] == 1;
        }
        for (int64_t row = 0; row < rows; row++) {
            float *yr = y + row * ow + x0;
            int64_t idx[ENGINE_MAX_RANK][4], coff[RESIZE_COMBOS], nc = 0;
            double w[ENGINE_MAX_RANK][4], cw[RESIZE_COMBOS];
            int cnt[ENGINE_MAX_RANK], tap[ENGINE_MAX_RANK] = {0}, outside = 0;
            for (int d = 0; d < last; d++) {
                cnt[d] = resize_taps(p, d, ox[d], xs->dims[d], ys->dims[d], idx[d], w[d]);
                outside |= cnt[d] < 0;
            }
            while (!outside) { /* outer tap combinations, innermost fastest (<= combos) */
                double wt = 1;
                int64_t off = 0;
                for (int d = 0; d < last; d++) {
                    wt *= w[d][tap[d]];
                    off += idx[d][tap[d]] * st[d];
                }
                if (wt != 0) /* its terms would all be skipped */
                    coff[nc] = off, cw[nc++] = wt;
                int d = last - 1;
                while (d >= 0 && ++tap[d] == cnt[d])
                    tap[d--] = 0;
                if (d < 0)
                    break;
            }
            if (!outside && unit && nc == 1 && cw[0] == 1) {
                for (int64_t i = 0; i < nx; i++) /* + 0: -0 becomes +0, as the sum makes it */
                    yr[i] = x[coff[0] + li[i][0] * st[last]] + 0.0f;
                goto next_row;
            }
            for (int64_t i = 0; i < nx; i++) {
                if (outside || lc[i] < 0) {
                    yr[i] = p->extrapolation;
                    continue;
                }
                double acc = 0;
                for (int64_t c = 0; c < nc; c++)
                    for (int t = 0; t < lc[i]; t++) {
                        double wt = cw[c] * lw[i][t];
                        if (wt != 0)
                            acc += wt * x[coff[c] + li[i][t] * st[last]];
                    }
                yr[i] = (float)acc;
            }
        next_row:
            for (int d = last - 1; d >= 0 && ++ox[d] == ys->dims[d]; d--)
                ox[d] = 0;
        }
    }
}

/* ---- RoiAlign (float32, average) ---- */

#define ROI_MAX_GRID 1024 /* adaptive samples per bin axis; beyond: -EINVAL, not a slow run */

static double roi_sample(const float *img, int64_t h, int64_t w, double y, double x)
{
    if (!(y >= -1.0 && y <= (double)h && x >= -1.0 && x <= (double)w))
        return 0;
    y = y < 0 ? 0 : y, x = x < 0 ? 0 : x;
    int64_t y0 = (int64_t)y, x0 = (int64_t)x, y1 = y0 + 1, x1 = x0 + 1;
    if (y0 >= h - 1)
        y0 = y1 = h - 1, y = (double)y0;
    if (x0 >= w - 1)
        x0 = x1 = w - 1, x = (double)x0;
    double ly = y - (double)y0, lx = x - (double)x0, hy = 1 - ly, hx = 1 - lx;
    return hy * hx * img[y0 * w + x0] + hy * lx * img[y0 * w + x1] + ly * hx * img[y1 * w + x0] +
           ly * lx * img[y1 * w + x1];
}

int k_roi_align(const float *x, const struct engine_shape *xs, const float *rois,
                const int64_t *batch, const struct k_roi *p, float *y,
                const struct engine_shape *ys)
{
    int64_t n_rois = ys->dims[0], c = xs->dims[1], h = xs->dims[2], w = xs->dims[3];
    int64_t oh = ys->dims[2], ow = ys->dims[3];
    double off = p->half_pixel ? 0.5 : 0.0;
    for (int64_t r = 0; r < n_rois; r++) {
        const float *b = rois + r * 4;
        if (batch[r] < 0 || batch[r] >= xs->dims[0])
            return -EINVAL;
        double sx = b[0] * p->scale - off, sy = b[1] * p->scale - off;
        double rw = b[2] * p->scale - off - sx, rh = b[3] * p->scale - off - sy;
        if (!p->half_pixel)
            rw = rw > 1 ? rw : 1, rh = rh > 1 ? rh : 1;
        if (!isfinite(sx) || !isfinite(sy) || !isfinite(rw) || !isfinite(rh))
            return -EINVAL;
        double bh = rh / (double)oh, bw = rw / (double)ow;
        double gh = p->sampling_ratio > 0 ? p->sampling_ratio : ceil(bh);
        double gw = p->sampling_ratio > 0 ? p->sampling_ratio : ceil(bw);
        if (gh > ROI_MAX_GRID || gw > ROI_MAX_GRID)
            return -EINVAL;
        int64_t ngh = gh < 1 ? 0 : (int64_t)gh, ngw = gw < 1 ? 0 : (int64_t)gw;
        double count = ngh * ngw > 1 ? (double)(ngh * ngw) : 1.0;
        for (int64_t ch = 0; ch < c; ch++) {
            const float *img = x + (batch[r] * c + ch) * h * w;
            for (int64_t py = 0; py < oh; py++)
                for (int64_t px = 0; px < ow; px++) {
                    double acc = 0;
                    for (int64_t iy = 0; iy < ngh; iy++)
                        for (int64_t ix = 0; ix < ngw; ix++)
                            acc += roi_sample(img, h, w,
                                              sy + (double)py * bh + ((double)iy + 0.5) * bh / gh,
                                              sx + (double)px * bw + ((double)ix + 0.5) * bw / gw);
                    y[((r * c + ch) * oh + py) * ow + px] = (float)(acc / count);
                }
        }
    }
    return 0;
}

/* ---- MaxPool with Indices (float32) ---- */

void k_maxpool_idx(const float *x, const struct engine_shape *xs, const struct k_pool *p, int which,
                   void *dst, const struct engine_shape *ys)
{
    int sp = p->sp;
    struct engine_shape is = {.rank = sp}, os = {.rank = sp}, ks = {.rank = sp};
    memcpy(is.dims, xs->dims + 2, (size_t)sp * sizeof(int64_t));
    memcpy(os.dims, ys->dims + 2, (size_t)sp * sizeof(int64_t));
    memcpy(ks.dims, p->kernel, (size_t)sp * sizeof(int64_t));
    int64_t in_sp = engine_shape_numel(&is), out_sp = engine_shape_numel(&os);
    int64_t k_sp = engine_shape_numel(&ks), planes = xs->dims[0] * xs->dims[1];
    for (int64_t pl = 0; pl < planes; pl++) {
        int64_t op[3] = {0};
        for (int64_t o = 0; o < out_sp; o++, next_index(&os, op)) {
            float best = -INFINITY;
            int64_t at = -1, kp[3] = {0};
            for (int64_t k = 0; k < k_sp; k++, next_index(&ks, kp)) {
                int64_t c[3], row = 0, col = 0, inside = 1;
                for (int d = 0; d < sp; d++) {
                    c[d] = op[d] * p->stride[d] - p->pad[d] + kp[d] * p->dil[d];
                    inside &= c[d] >= 0 && c[d] < is.dims[d];
                }
                if (!inside)
                    continue;
                int64_t mul = 1;
                for (int d = 0; d < sp; d++) {
                    row = row * is.dims[d] + c[d];
                    col += c[d] * mul;
                    mul *= is.dims[d];
                }
                float v = x[pl * in_sp + row];
                if (at < 0 || v > best)
                    best = v, at = pl * in_sp + (p->storage_order ? col : row);
            }
            if (which)
                ((int64_t *)dst)[pl * out_sp + o] = at;
            else
                ((float *)dst)[pl * out_sp + o] = best;
        }
    }
}

/* ---- OneHot ---- */

int k_onehot(const void *idx, int idx_dtype, const struct engine_shape *is, int64_t depth, int axis,
             const void *values, size_t esize, void *dst)
{
    int64_t outer = 1, inner = 1, n = engine_shape_numel(is);
    for (int d = 0; d < axis; d++)
        outer *= is->dims[d];
    for (int d = axis; d < is->rank; d++)
        inner *= is->dims[d];
    for (int64_t i = 0; i < outer * depth * inner; i++)
        memcpy((char *)dst + (size_t)i * esize, values, esize);
    for (int64_t i = 0; i < n; i++) {
        double v = idx_dtype == ENGINE_F32   ? ((const float *)idx)[i]
                   : idx_dtype == ENGINE_I32 ? ((const int32_t *)idx)[i]
                                             : (double)((const int64_t *)idx)[i];
        if (!(v > -(double)depth - 1 && v < (double)depth)) /* NaN too: all off */
            continue;
        int64_t j = (int64_t)v; /* truncates toward zero, as a Cast to int64 would */
        if (j < 0)
            j += depth;
        if (j < 0 || j >= depth)
            continue;
        int64_t o = i / inner, in = i % inner;
        memcpy((char *)dst + (size_t)((o * depth + j) * inner + in) * esize,
               (const char *)values + esize, esize);
    }
    return 0;
}
