/*
 * The small codecs: input=raw (little-endian float32 bytes), output=topk (softmax + best k with
 * labels), and the labels file. input=image lives in picture.c; JSON tensors are the engine's codec.
 */
#include "fn/fn.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int fn_codec_raw(const uint8_t *buf, size_t len, const struct engine_shape *shape,
                 struct fn_tensor *out, char *err, size_t errlen)
{
    uint64_t numel = 1;
    for (int i = 0; i < shape->rank; i++) {
        if (shape->dims[i] <= 0 || (uint64_t)shape->dims[i] > (SIZE_MAX / 4) / numel)
            return seterr(err, errlen, -EINVAL, "input=raw: the model input has no fixed size");
        numel *= (uint64_t)shape->dims[i];
    }
    if (len != numel * 4)
        return seterr(err, errlen, -EINVAL,
                      "input=raw: body has %zu bytes; the input takes %llu float32 values = %llu "
                      "bytes (little-endian)",
                      len, (unsigned long long)numel, (unsigned long long)(numel * 4));
    float *data = malloc(len ? len : 1);
    if (!data)
        return seterr(err, errlen, -ENOMEM, "input=raw: out of memory");
    for (uint64_t i = 0; i < numel; i++) {
        const uint8_t *p = buf + i * 4;
        uint32_t bits =
            (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        memcpy(&data[i], &bits, 4);
    }
    *out = (struct fn_tensor){.shape = *shape, .data = data, .nbytes = len};
    return 0;
}

/* ---- top-k ---- */

static bool is_distribution(const float *p, size_t n)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(p[i] >= 0.0f && p[i] <= 1.0f))
            return false;
        sum += p[i];
    }
    return fabs(sum - 1.0) <= 1e-3;
}

static void softmax(const float *in, double *out, size_t n)
{
    double max = -INFINITY, sum = 0;
    for (size_t i = 0; i < n; i++)
        if (in[i] > max)
            max = in[i];
    for (size_t i = 0; i < n; i++) {
        out[i] = exp(in[i] - max);
        sum += out[i];
    }
    for (size_t i = 0; i < n; i++)
        out[i] /= sum;
}

/* Indices of the k largest, best first; ties keep the lower index first. O(n k), k is small. */
static void top_indices(const double *p, size_t n, size_t *idx, size_t k)
{
    for (size_t j = 0; j < k; j++) {
        size_t best = SIZE_MAX;
        for (size_t i = 0; i < n; i++) {
            bool taken = false;
            for (size_t t = 0; t < j && !taken; t++)
                taken = idx[t] == i;
            if (!taken && (best == SIZE_MAX || p[i] > p[best]))
                best = i;
        }
        idx[j] = best;
    }
}

static json_t *predictions(const double *p, const size_t *idx, size_t k,
                           const struct fn_labels *labels)
{
    json_t *arr = json_array();
    for (size_t j = 0; arr && j < k; j++) {
        json_t *o = json_pack("{s:I,s:f}", "index", (json_int_t)idx[j], "score", p[idx[j]]);
        if (o && labels->n > 0 && idx[j] < (size_t)labels->n)
            json_object_set_new(o, "label", json_string(labels->names[idx[j]]));
        if (!o || json_array_append_new(arr, o) < 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

int fn_codec_topk(const float *scores, size_t n, const struct fn_codec_config *c, char **json,
                  char *err, size_t errlen)
{
    if (n == 0)
        return seterr(err, errlen, -EINVAL, "output=topk: the model output is empty");
    for (size_t i = 0; i < n; i++)
        if (!isfinite(scores[i]))
            return seterr(err, errlen, -ERANGE, "output=topk: score %zu is not finite", i);
    size_t k = c->topk > 0 && (size_t)c->topk < n ? (size_t)c->topk : n;
    double *p = malloc(n * sizeof(*p));
    size_t *idx = malloc(k * sizeof(*idx));
    if (!p || !idx) {
        free(p), free(idx);
        return seterr(err, errlen, -ENOMEM, "output=topk: out of memory");
    }
    bool apply = c->softmax == FN_SOFTMAX_ON ||
                 (c->softmax == FN_SOFTMAX_AUTO && !is_distribution(scores, n));
    if (apply)
        softmax(scores, p, n);
    else
        for (size_t i = 0; i < n; i++)
            p[i] = scores[i];
    top_indices(p, n, idx, k);
    json_t *root = json_pack("{s:o}", "predictions", predictions(p, idx, k, &c->labels));
    free(p);
    free(idx);
    *json = root ? json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(root);
    return *json ? 0 : seterr(err, errlen, -ENOMEM, "output=topk: out of memory");
}

/* ---- labels ---- */

void fn_labels_free(struct fn_labels *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->names[i]);
    free(l->names);
    *l = (struct fn_labels){0};
}

static size_t count_lines(const uint8_t *buf, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += buf[i] == '\n';
    return n + (len > 0 && buf[len - 1] != '\n');
}

int fn_labels_parse(const uint8_t *buf, size_t len, struct fn_labels *out, char *err, size_t errlen)
{
    *out = (struct fn_labels){0};
    size_t lines = count_lines(buf, len);
    if (lines > FN_MAX_LABELS)
        return seterr(err, errlen, -E2BIG, "labels: %zu lines, more than the limit of %d", lines,
                      FN_MAX_LABELS);
    out->names = calloc(lines ? lines : 1, sizeof(char *));
    if (!out->names)
        return seterr(err, errlen, -ENOMEM, "labels: out of memory");
    size_t start = 0;
    for (size_t i = 0; i <= len && (size_t)out->n < lines; i++) {
        if (i < len && buf[i] != '\n')
            continue;
        size_t end = i;
        if (end > start && buf[end - 1] == '\r')
            end--;
        if (memchr(buf + start, '\0', end - start)) {
            fn_labels_free(out);
            return seterr(err, errlen, -EINVAL, "labels: line %d contains a NUL byte", out->n + 1);
        }
        out->names[out->n] = strndup((const char *)buf + start, end - start);
        if (!out->names[out->n]) {
            fn_labels_free(out);
            return seterr(err, errlen, -ENOMEM, "labels: out of memory");
        }
        out->n++;
        start = i + 1;
    }
    return 0;
}
