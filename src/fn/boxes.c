/*
 * output=boxes: a detector's outputs → boxes on the photo the request sent.
 *
 * Two output layouts (boxes_format):
 *   ssd      one score (a logit unless sigmoid=false) and one regressor row per anchor; the anchors
 *            lie on grids (anchors=COLSxROWSxK,...) in output order, cell-major, K per cell, each
 *            centred on its cell with size 1 (MediaPipe's SSD anchors, fixed_anchor_size). A row
 *            starts dx, dy, w, h in pixels of a box_scale-sided input (default: the model
 *            input's side): centre = anchor + (dx, dy) / box_scale, size = (w, h) / box_scale.
 *            MediaPipe BlazeFace, whose remaining 12 values (6 key points) are ignored here.
 *   corners  one score and one row x1, y1, x2, y2 in [0,1] of the model input per box.
 * Then: drop scores under score_threshold, non-maximum suppression (hard: keep the best, drop
 * what overlaps it by more than iou_threshold; weighted: MediaPipe's blending, the kept box is
 * the score-weighted mean of the boxes it suppresses), at most max_boxes, and each box mapped
 * back through the image codec's resize and crop (fn_image_geom) into the photo's pixels,
 * clipped to the photo.
 * Every count is checked against the arrays received; NaN and infinite values drop their box.
 */
#include "fn/fn.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void fn_boxes_opts_default(struct fn_boxes_opts *o)
{
    *o = (struct fn_boxes_opts){
        .format = FN_BOXES_SSD,
        .score_threshold = 0.5f,
        .iou_threshold = 0.3f,
        .max_boxes = 100,
        .sigmoid = true,
        .nms = FN_NMS_HARD,
    };
}

/* ---- settings ---- */

static int parse_dim(const char **p, char sep, int *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(*p, &end, 10);
    if (end == *p || errno || v < 1 || v > 4096 || (*end != sep && !(sep == ',' && *end == '\0')))
        return -EINVAL;
    if (*end && end[1] == '\0') /* a separator must be followed by more */
        return -EINVAL;
    *out = (int)v;
    *p = *end ? end + 1 : end;
    return 0;
}

int fn_boxes_parse_anchors(const char *s, struct fn_boxes_opts *o, char *err, size_t errlen)
{
    const char *p = s;
    uint64_t total = 0;
    int n = 0;
    while (*p) {
        if (n == FN_BOXES_MAX_LAYERS)
            return seterr(err, errlen, -E2BIG, "anchors=%s: at most %d grids", s,
                          FN_BOXES_MAX_LAYERS);
        int c, r, k;
        if (parse_dim(&p, 'x', &c) < 0 || parse_dim(&p, 'x', &r) < 0 || parse_dim(&p, ',', &k) < 0)
            return seterr(err, errlen, -EINVAL,
                          "anchors=%s: expected COLSxROWSxPER_CELL[,...], each 1-4096 (BlazeFace: "
                          "16x16x2,8x8x6)",
                          s);
        total += (uint64_t)c * r * k;
        if (total > FN_BOXES_MAX_ANCHORS)
            return seterr(err, errlen, -E2BIG, "anchors=%s: more than %d anchors", s,
                          FN_BOXES_MAX_ANCHORS);
        o->layers[n].cols = c, o->layers[n].rows = r, o->layers[n].per_cell = k;
        n++;
    }
    if (n == 0)
        return seterr(err, errlen, -EINVAL, "anchors: empty");
    o->n_layers = n;
    return 0;
}

static int check_opts(const struct fn_boxes_opts *o, char *err, size_t errlen)
{
    if (o->max_boxes < 1 || o->max_boxes > FN_BOXES_MAX)
        return seterr(err, errlen, -EINVAL, "output=boxes: max_boxes %d: must be 1-%d",
                      o->max_boxes, FN_BOXES_MAX);
    if (!(o->score_threshold >= 0 && o->score_threshold <= 1) ||
        !(o->iou_threshold >= 0 && o->iou_threshold <= 1))
        return seterr(err, errlen, -EINVAL, "output=boxes: thresholds must be in [0,1]");
    if (!(o->box_scale >= 0 && o->box_scale <= 1e6))
        return seterr(err, errlen, -EINVAL, "output=boxes: box_scale must be in [0,1e6]");
    if (o->format == FN_BOXES_SSD && (o->n_layers < 1 || o->n_layers > FN_BOXES_MAX_LAYERS))
        return seterr(err, errlen, -EINVAL,
                      "output=boxes: boxes_format=ssd needs anchors (e.g. 16x16x2,8x8x6)");
    return 0;
}

/* ---- decoding ---- */

struct cand {
    double x1, y1, x2, y2; /* [0,1] of the model input */
    double score;
    size_t index; /* ties: the lower anchor first, so results do not depend on qsort */
};

static size_t ssd_anchors(const struct fn_boxes_opts *o)
{
    size_t n = 0;
    for (int l = 0; l < o->n_layers; l++)
        n += (size_t)o->layers[l].cols * o->layers[l].rows * o->layers[l].per_cell;
    return n;
}

/* The centre of anchor i, which the caller checked is < ssd_anchors(o). */
static void ssd_anchor(const struct fn_boxes_opts *o, size_t i, double *ax, double *ay)
{
    for (int l = 0; l < o->n_layers; l++) {
        size_t cols = (size_t)o->layers[l].cols, rows = (size_t)o->layers[l].rows;
        size_t k = (size_t)o->layers[l].per_cell, n = cols * rows * k;
        if (i < n) {
            size_t cell = i / k;
            *ax = ((double)(cell % cols) + 0.5) / (double)cols;
            *ay = ((double)(cell / cols) + 0.5) / (double)rows;
            return;
        }
        i -= n;
    }
    *ax = *ay = NAN;
}

static bool decode_one(const float *r, size_t i, int model_size, const struct fn_boxes_opts *o,
                       struct cand *c)
{
    if (o->format == FN_BOXES_CORNERS) {
        c->x1 = r[0], c->y1 = r[1], c->x2 = r[2], c->y2 = r[3];
    } else {
        double scale = o->box_scale > 0 ? o->box_scale : model_size, ax, ay;
        ssd_anchor(o, i, &ax, &ay);
        double cx = ax + r[0] / scale, cy = ay + r[1] / scale;
        double w = r[2] / scale, h = r[3] / scale;
        c->x1 = cx - w / 2, c->y1 = cy - h / 2, c->x2 = cx + w / 2, c->y2 = cy + h / 2;
    }
    return isfinite(c->x1) && isfinite(c->y1) && isfinite(c->x2) && isfinite(c->y2) &&
           c->x2 > c->x1 && c->y2 > c->y1;
}

static int by_score(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static double iou(const struct cand *a, const struct cand *b)
{
    double w = fmin(a->x2, b->x2) - fmax(a->x1, b->x1);
    double h = fmin(a->y2, b->y2) - fmax(a->y1, b->y1);
    if (w <= 0 || h <= 0)
        return 0;
    double inter = w * h;
    double uni = (a->x2 - a->x1) * (a->y2 - a->y1) + (b->x2 - b->x1) * (b->y2 - b->y1) - inter;
    return uni > 0 ? inter / uni : 0;
}

/* Non-maximum suppression over c[0..n) sorted best first: the kept boxes go to c[0..kept). A
 * suppressed candidate gets score -1. O(n * max_boxes). */
static size_t suppress(struct cand *c, size_t n, const struct fn_boxes_opts *o)
{
    size_t kept = 0;
    for (size_t i = 0; i < n && kept < (size_t)o->max_boxes; i++) {
        if (c[i].score < 0)
            continue;
        struct cand best = c[i];
        double sw = 0, x1 = 0, y1 = 0, x2 = 0, y2 = 0;
        for (size_t j = i; j < n; j++) {
            if (c[j].score < 0 || (j > i && iou(&best, &c[j]) <= o->iou_threshold))
                continue;
            sw += c[j].score;
            x1 += c[j].x1 * c[j].score, y1 += c[j].y1 * c[j].score;
            x2 += c[j].x2 * c[j].score, y2 += c[j].y2 * c[j].score;
            if (j > i)
                c[j].score = -1;
        }
        if (o->nms == FN_NMS_WEIGHTED && sw > 0)
            best.x1 = x1 / sw, best.y1 = y1 / sw, best.x2 = x2 / sw, best.y2 = y2 / sw;
        c[kept++] = best;
    }
    return kept;
}

/* ---- the answer ---- */

static json_t *box_json(const struct cand *c, int model_size, const struct fn_image_geom *g)
{
    double x1 = (c->x1 * model_size + g->off_x) / g->scale_x;
    double y1 = (c->y1 * model_size + g->off_y) / g->scale_y;
    double x2 = (c->x2 * model_size + g->off_x) / g->scale_x;
    double y2 = (c->y2 * model_size + g->off_y) / g->scale_y;
    x1 = fmax(0, fmin(x1, g->width)), x2 = fmax(0, fmin(x2, g->width));
    y1 = fmax(0, fmin(y1, g->height)), y2 = fmax(0, fmin(y2, g->height));
    if (!(x2 > x1 && y2 > y1))
        return NULL;
    return json_pack("{s:f,s:f,s:f,s:f,s:f}", "x", x1, "y", y1, "w", x2 - x1, "h", y2 - y1, "score",
                     c->score);
}

static char *answer(const struct cand *c, size_t n, int model_size, const struct fn_image_geom *g)
{
    json_t *boxes = json_array();
    for (size_t i = 0; boxes && i < n; i++) {
        json_t *b = box_json(&c[i], model_size, g);
        if (b && json_array_append_new(boxes, b) < 0) {
            json_decref(boxes);
            return NULL;
        }
    }
    json_t *root = json_pack("{s:o,s:{s:I,s:I}}", "boxes", boxes, "image", "width",
                             (json_int_t)g->width, "height", (json_int_t)g->height);
    char *s = root ? json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(root);
    return s;
}

int fn_codec_boxes(const float *scores, size_t n, const float *regs, size_t nregs, size_t stride,
                   int model_size, const struct fn_boxes_opts *o, const struct fn_image_geom *g,
                   char **json, char *err, size_t errlen)
{
    *json = NULL;
    int rc = check_opts(o, err, errlen);
    if (rc < 0)
        return rc;
    if (model_size < 1 || model_size > 8192)
        return seterr(err, errlen, -EINVAL, "output=boxes: model input side %d: must be 1-8192",
                      model_size);
    if (stride < 4 || n > SIZE_MAX / stride || nregs != n * stride)
        return seterr(err, errlen, -EINVAL,
                      "output=boxes: %zu scores but %zu regressor values (%zu per box, at least "
                      "4 needed)",
                      n, nregs, stride);
    if (o->format == FN_BOXES_SSD && ssd_anchors(o) != n)
        return seterr(err, errlen, -EINVAL,
                      "output=boxes: the model scores %zu anchors; the anchors setting has %zu", n,
                      ssd_anchors(o));
    /* Without an image (input=raw|json) boxes are in the model input's pixels. */
    struct fn_image_geom plain = {.width = (uint32_t)model_size,
                                  .height = (uint32_t)model_size,
                                  .size = model_size,
                                  .scale_x = 1,
                                  .scale_y = 1};
    if (!g || g->width == 0 || g->height == 0 || !(g->scale_x > 0) || !(g->scale_y > 0))
        g = &plain;
    struct cand *c = malloc((n ? n : 1) * sizeof(*c));
    if (!c)
        return seterr(err, errlen, -ENOMEM, "output=boxes: out of memory");
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        double s = scores[i];
        if (o->sigmoid)
            s = 1 / (1 + exp(-s));
        if (!isfinite(s) || !(s >= o->score_threshold))
            continue;
        c[m].score = s, c[m].index = i;
        if (decode_one(regs + i * stride, i, model_size, o, &c[m]))
            m++;
    }
    qsort(c, m, sizeof(*c), by_score);
    m = suppress(c, m, o);
    *json = answer(c, m, model_size, g);
    free(c);
    return *json ? 0 : seterr(err, errlen, -ENOMEM, "output=boxes: out of memory");
}

/* ---- a model's outputs ---- */

/* Appends t's floats to *buf (grown); false when out of memory or the sizes overflow. */
static bool append(float **buf, size_t *len, const struct engine_tensor *t)
{
    size_t k = t->nbytes / sizeof(float);
    if (k == 0)
        return true;
    if (k > SIZE_MAX / sizeof(float) - *len)
        return false;
    float *p = realloc(*buf, (*len + k) * sizeof(float));
    if (!p)
        return false;
    memcpy(p + *len, t->data, k * sizeof(float));
    *buf = p;
    *len += k;
    return true;
}

int fn_codec_boxes_outputs(const struct engine_tensor *outs, int n_outs, int model_size,
                           const struct fn_boxes_opts *o, const struct fn_image_geom *g,
                           char **json, char *err, size_t errlen)
{
    float *scores = NULL, *regs = NULL;
    size_t ns = 0, nr = 0, stride = 0;
    int rc = 0;
    *json = NULL;
    for (int i = 0; i < n_outs && rc == 0; i++) {
        const struct engine_tensor *t = &outs[i];
        int64_t last = t->shape.rank > 0 ? t->shape.dims[t->shape.rank - 1] : 1;
        if (t->dtype != ENGINE_F32 || t->nbytes % sizeof(float))
            rc = seterr(err, errlen, -EINVAL, "output=boxes: output %d is not float32", i);
        else if (last == 1)
            rc = append(&scores, &ns, t) ? 0 : -ENOMEM;
        else if (last < 4 || (stride && (size_t)last != stride))
            rc = seterr(err, errlen, -EINVAL,
                        "output=boxes: output %d has rows of %lld values; the regressor outputs "
                        "need one length, at least 4",
                        i, (long long)last);
        else if ((t->nbytes / sizeof(float)) % (size_t)last)
            rc = seterr(err, errlen, -EINVAL, "output=boxes: output %d is not whole rows", i);
        else {
            stride = (size_t)last;
            rc = append(&regs, &nr, t) ? 0 : -ENOMEM;
        }
    }
    if (rc == -ENOMEM)
        seterr(err, errlen, rc, "output=boxes: out of memory");
    else if (rc == 0 && (!ns || !stride))
        rc = seterr(err, errlen, -EINVAL,
                    "output=boxes: the model needs score outputs (last dimension 1) and box "
                    "outputs (last dimension >= 4)");
    if (rc == 0)
        rc = fn_codec_boxes(scores, ns, regs, nr, stride, model_size, o, g, json, err, errlen);
    free(scores);
    free(regs);
    return rc;
}
