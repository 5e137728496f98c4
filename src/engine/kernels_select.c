/*
 * kernels_select.c — plain-C kernels whose output size depends on the data: NonMaxSuppression and
 * NonZero (ops/detect.c).
 *
 * Their output buffer is sized for the most the data can select (the bound, fixed at compile
 * time); the kernel writes the selected part compactly, row-major for the shape it actually has,
 * from the start of the buffer, and marks how much that is: when fewer than the bound were
 * selected the buffer's last int64 holds -(count + 1) (never a valid index, and never inside the
 * compact data, which then ends before it). k_bounded_count reads it back, so finding the
 * extent needs no other state and reading it twice gives the same answer.
 */
#include "engine/kernels.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int64_t k_bounded_count(const int64_t *data, size_t n, int64_t bound)
{
    if (n == 0 || bound <= 0)
        return 0;
    int64_t last = data[n - 1];
    if (last >= 0)
        return bound;
    int64_t count = -(last + 1);
    return count < bound ? count : bound;
}

static void bounded_mark(int64_t *data, size_t n, int64_t count, int64_t bound)
{
    if (count < bound && n > 0)
        data[n - 1] = -(count + 1);
}

/* ---- NonMaxSuppression ---- */

struct nms_cand {
    float score;
    int32_t box;
};

/* Highest score first, the lower box index first among equal scores (ONNX Runtime's order). */
static int by_score(const void *pa, const void *pb)
{
    const struct nms_cand *a = pa, *b = pb;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return (a->box > b->box) - (a->box < b->box);
}

struct nms_box {
    float x0, y0, x1, y1; /* min and max corners */
};

static struct nms_box nms_corners(const float *b, int center)
{
    if (center) /* [x_center, y_center, width, height] */
        return (struct nms_box){b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2};
    /* [y1, x1, y2, x2], either diagonal */
    return (struct nms_box){fminf(b[1], b[3]), fminf(b[0], b[2]), fmaxf(b[1], b[3]),
                            fmaxf(b[0], b[2])};
}

/* 1 when box b overlaps box a by more than the IoU threshold (degenerate boxes never do). */
static int suppresses(struct nms_box a, struct nms_box b, float iou)
{
    float ix0 = fmaxf(a.x0, b.x0), ix1 = fminf(a.x1, b.x1);
    float iy0 = fmaxf(a.y0, b.y0), iy1 = fminf(a.y1, b.y1);
    if (ix1 <= ix0 || iy1 <= iy0)
        return 0;
    float inter = (ix1 - ix0) * (iy1 - iy0);
    float area_a = (a.x1 - a.x0) * (a.y1 - a.y0), area_b = (b.x1 - b.x0) * (b.y1 - b.y0);
    float uni = area_a + area_b - inter;
    if (inter <= 0 || area_a <= 0 || area_b <= 0 || uni <= 0)
        return 0;
    return inter / uni > iou;
}

int k_nms(const struct k_nms *p, const float *boxes, const float *scores, int64_t *sel,
          int64_t bound)
{
    size_t n = (size_t)p->boxes;
    struct nms_cand *cand = malloc((n ? n : 1) * sizeof(*cand));
    int32_t *kept = malloc((n ? n : 1) * sizeof(*kept));
    if (!cand || !kept) {
        free(cand);
        free(kept);
        return -ENOMEM;
    }
    int64_t count = 0;
    for (int64_t b = 0; b < p->batches; b++) {
        const float *bx = boxes + (size_t)b * n * 4;
        for (int64_t c = 0; c < p->classes; c++) {
            const float *sc = scores + ((size_t)b * (size_t)p->classes + (size_t)c) * n;
            size_t m = 0, k = 0;
            for (size_t i = 0; i < n; i++) /* NaN scores are never candidates */
                if (!isnan(sc[i]) && (!p->has_score || sc[i] > p->score))
                    cand[m++] = (struct nms_cand){sc[i], (int32_t)i};
            qsort(cand, m, sizeof(*cand), by_score);
            for (size_t i = 0; i < m && (int64_t)k < p->max_per_class && count < bound; i++) {
                struct nms_box bi = nms_corners(bx + (size_t)cand[i].box * 4, p->center);
                int keep = 1;
                for (size_t j = 0; j < k && keep; j++)
                    keep = !suppresses(nms_corners(bx + (size_t)kept[j] * 4, p->center), bi,
                                       p->has_iou ? p->iou : 0.0f);
                if (!keep)
                    continue;
                kept[k++] = cand[i].box;
                sel[count * 3] = b;
                sel[count * 3 + 1] = c;
                sel[count * 3 + 2] = cand[i].box;
                count++;
            }
        }
    }
    free(cand);
    free(kept);
    bounded_mark(sel, (size_t)bound * 3, count, bound);
    return 0;
}

/* ---- NonZero ---- */

static int is_nonzero(const uint8_t *x, int dtype, size_t esize)
{
    float f;
    double d;
    uint16_t h;
    switch (dtype) {
    case ENGINE_F32:
        memcpy(&f, x, sizeof(f));
        return f != 0.0f;
    case ENGINE_F64:
        memcpy(&d, x, sizeof(d));
        return d != 0.0;
    case ENGINE_F16:
        memcpy(&h, x, sizeof(h));
        return (h & 0x7fff) != 0;
    default: /* integers and bool: any bit set */
        for (size_t i = 0; i < esize; i++)
            if (x[i])
                return 1;
        return 0;
    }
}

int64_t k_nonzero(const void *x, int dtype, const struct engine_shape *s, int64_t *out)
{
    size_t esize = engine_dtype_size(dtype);
    int64_t numel = engine_shape_numel(s), count = 0;
    const uint8_t *p = x;
    for (int64_t i = 0; i < numel; i++)
        count += is_nonzero(p + (size_t)i * esize, dtype, esize);
    int64_t at = 0;
    for (int64_t i = 0; i < numel; i++) {
        if (!is_nonzero(p + (size_t)i * esize, dtype, esize))
            continue;
        for (int64_t d = s->rank - 1, rest = i; d >= 0; d--) {
            out[d * count + at] = rest % s->dims[d];
            rest /= s->dims[d];
        }
        at++;
    }
    bounded_mark(out, (size_t)(s->rank * numel), count, numel);
    return count;
}
