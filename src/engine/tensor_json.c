/*
 * tensor_json.c — the JSON tensor schema of shmfaas-run files and shmfaas-fn's json codec.
 *
 *   {"inputs":  {"NAME": {"shape": [1,3], "data": [[1,2,3]], "dtype": "float32"}}}
 *   {"outputs": {"NAME": {"shape": [1,3], "dtype": "float32", "data": [1,2,3]}}}
 *
 *   {"inputs":  {"NAME": {"sequence": [tensor, ...]}, "OPT": {"optional": tensor | null}}}
 *
 * A sequence (or optional) value is read as the tensors "NAME[0]", "NAME[1]", ... that the
 * engine compiles a sequence input into (engine.h), and the writer groups consecutive tensors so
 * named (a sequence output's elements) back into one {"sequence": [...]}; an optional output is
 * written as a sequence of one.
 * The reader is an entry point for untrusted bytes (HTTP bodies): it bounds the number of tensors
 * (JSON_MAX_TENSORS names, ENGINE_MAX_SEQ per sequence, JSON_MAX_SLOTS in all) and elements,
 * accepts "data" flat or nested exactly as "shape" says, and checks that every number fits the
 * dtype before it converts anything. Every error names the tensor. The writer prints floats with
 * %.9g, enough digits for any float32 to round-trip, and integers exactly; float16 elements are
 * read and written as numbers too (rounded to nearest even once, on reading).
 */
#include "engine/engine.h"
#include "engine/kernels.h"

#include "common/common.h"

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_TENSORS  256
#define JSON_MAX_ELEMENTS (INT64_C(1) << 28) /* 1 GiB of float32: far beyond any input we take */
#define JSON_NAME_MAX     256
#define JSON_MAX_SLOTS    4096 /* tensors after expanding sequences (each at most ENGINE_MAX_SEQ) */

/* What the reader needs to know about one tensor while it fills it. */
struct tensor_reader {
    const char *name;
    struct engine_tensor *t;
    int64_t numel;
    int64_t filled;
};

/* ================================================================ numbers → dtype */

static int integer_range(int dtype, int64_t *lo, int64_t *hi)
{
    switch (dtype) {
    case ENGINE_U8:
        *lo = 0, *hi = UINT8_MAX;
        return 0;
    case ENGINE_I8:
        *lo = INT8_MIN, *hi = INT8_MAX;
        return 0;
    case ENGINE_I32:
        *lo = INT32_MIN, *hi = INT32_MAX;
        return 0;
    case ENGINE_I64:
        *lo = INT64_MIN, *hi = INT64_MAX;
        return 0;
    case ENGINE_BOOL:
        *lo = 0, *hi = 1;
        return 0;
    default:
        return -EINVAL;
    }
}

/* A JSON number (or boolean) as an integer of the tensor's dtype; reals must be integral. */
static int json_to_integer(const json_t *v, int dtype, int64_t *out)
{
    int64_t lo, hi;
    if (integer_range(dtype, &lo, &hi) < 0)
        return -EINVAL;
    if (json_is_boolean(v)) {
        *out = json_is_true(v) ? 1 : 0;
        return 0;
    }
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < lo || i > hi)
            return -ERANGE;
        *out = (int64_t)i;
        return 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        /* 2^63 as a double; comparing against it avoids the rounding of (double)INT64_MAX. */
        if (!isfinite(d) || d != floor(d) || d < (double)lo || d >= 9223372036854775808.0 ||
            d > (double)hi)
            return -ERANGE;
        *out = (int64_t)d;
        return 0;
    }
    return -EINVAL;
}

static int json_to_float(const json_t *v, float *out)
{
    double d;
    if (json_is_integer(v))
        d = (double)json_integer_value(v);
    else if (json_is_real(v))
        d = json_real_value(v);
    else
        return -EINVAL;
    /* FLT_MAX + half an ulp: the smallest magnitude that rounds to infinity. */
    if (!isfinite(d) || fabs(d) >= 0x1.ffffffp+127)
        return -ERANGE;
    *out = (float)d;
    return 0;
}

static void store_integer(struct engine_tensor *t, int64_t i, int64_t v)
{
    switch (t->dtype) {
    case ENGINE_U8:
        ((uint8_t *)t->data)[i] = (uint8_t)v;
        break;
    case ENGINE_I8:
        ((int8_t *)t->data)[i] = (int8_t)v;
        break;
    case ENGINE_I32:
        ((int32_t *)t->data)[i] = (int32_t)v;
        break;
    case ENGINE_I64:
        ((int64_t *)t->data)[i] = v;
        break;
    case ENGINE_BOOL:
        ((uint8_t *)t->data)[i] = (uint8_t)v;
        break;
    default:
        abort(); /* dtype was validated when the tensor was allocated */
    }
}

/* Converts one JSON value into element r->filled of the tensor. */
static int read_element(struct tensor_reader *r, const json_t *v, char *err, size_t errlen)
{
    int64_t i = r->filled;
    const char *dn = engine_dtype_name(r->t->dtype);
    int rc;

    if (i >= r->numel)
        return seterr(err, errlen, -EINVAL,
                      "'%s': data has more than the %" PRId64 " elements its shape holds", r->name,
                      r->numel);
    if (r->t->dtype == ENGINE_F32) {
        rc = json_to_float(v, &((float *)r->t->data)[i]);
    } else if (r->t->dtype == ENGINE_F16) {
        float f = 0;
        rc = json_to_float(v, &f);
        double d = json_is_real(v) ? json_real_value(v) : f; /* round once, from the number */
        if (rc == 0 && fabs(d) >= 65520.0)                   /* rounds to infinity */
            rc = -ERANGE;
        if (rc == 0)
            k_cast(&d, ENGINE_F64, (uint16_t *)r->t->data + i, ENGINE_F16, 1);
    } else {
        int64_t x = 0;
        rc = json_to_integer(v, r->t->dtype, &x);
        if (rc == 0)
            store_integer(r->t, i, x);
    }
    if (rc == -ERANGE)
        return seterr(err, errlen, -ERANGE, "'%s': data element %" PRId64 " does not fit %s",
                      r->name, i, dn);
    if (rc < 0)
        return seterr(err, errlen, -EINVAL, "'%s': data element %" PRId64 " is not a number",
                      r->name, i);
    r->filled++;
    return 0;
}

/* ================================================================ shape and data */

static int parse_shape(const char *name, const json_t *js, struct engine_shape *shape,
                       int64_t *numel, char *err, size_t errlen)
{
    size_t i;
    const json_t *d;
    int64_t n = 1;

    if (!json_is_array(js))
        return seterr(err, errlen, -EINVAL, "'%s': \"shape\" must be an array of integers", name);
    if (json_array_size(js) > ENGINE_MAX_RANK)
        return seterr(err, errlen, -EINVAL, "'%s': shape has rank %zu, at most %d supported", name,
                      json_array_size(js), ENGINE_MAX_RANK);
    shape->rank = (int)json_array_size(js);
    json_array_foreach(js, i, d)
    {
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return seterr(err, errlen, -EINVAL,
                          "'%s': shape entry %zu must be a non-negative integer", name, i);
        shape->dims[i] = (int64_t)json_integer_value(d);
        if (shape->dims[i] > JSON_MAX_ELEMENTS ||
            (shape->dims[i] && n > JSON_MAX_ELEMENTS / shape->dims[i]))
            return seterr(err, errlen, -E2BIG, "'%s': shape has more than %" PRId64 " elements",
                          name, JSON_MAX_ELEMENTS);
        n *= shape->dims[i];
    }
    *numel = n;
    return 0;
}

/* Nested data: every array at depth d holds exactly dims[d] entries, numbers only at the bottom. */
static int read_nested(struct tensor_reader *r, const json_t *v, int depth, char *err,
                       size_t errlen)
{
    const struct engine_shape *s = &r->t->shape;
    size_t i;
    const json_t *e;
    int rc;

    if (depth == s->rank)
        return read_element(r, v, err, errlen);
    if (!json_is_array(v))
        return seterr(err, errlen, -EINVAL,
                      "'%s': nested data has a number at depth %d where shape %s needs an array",
                      r->name, depth, engine_shape_str(s, (char[96]){0}, 96));
    if ((int64_t)json_array_size(v) != s->dims[depth])
        return seterr(err, errlen, -EINVAL,
                      "'%s': nested data has %zu entries at depth %d, shape says %" PRId64, r->name,
                      json_array_size(v), depth, s->dims[depth]);
    json_array_foreach(v, i, e)
    {
        rc = read_nested(r, e, depth + 1, err, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int read_flat(struct tensor_reader *r, const json_t *data, char *err, size_t errlen)
{
    size_t i;
    const json_t *e;
    int rc;

    json_array_foreach(data, i, e)
    {
        if (json_is_array(e))
            return seterr(err, errlen, -EINVAL, "'%s': data mixes numbers and arrays (element %zu)",
                          r->name, i);
        rc = read_element(r, e, err, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Numbers in data however it is nested; jansson bounds the nesting depth, so recursion is safe. */
static int64_t count_elements(const json_t *v)
{
    size_t i;
    const json_t *e;
    int64_t n = 0;

    if (!json_is_array(v))
        return 1;
    json_array_foreach(v, i, e) n += count_elements(e);
    return n;
}

/* Before anything is allocated: the data holds as many numbers as the shape says. */
static int check_count(const char *name, const struct engine_shape *s, int64_t numel,
                       const json_t *data, char *err, size_t errlen)
{
    char sb[96];
    int64_t n;

    if (data == NULL)
        return seterr(err, errlen, -EINVAL, "'%s': missing \"data\"", name);
    if (!json_is_array(data) && s->rank != 0)
        return seterr(err, errlen, -EINVAL, "'%s': \"data\" must be an array", name);
    n = count_elements(data);
    if (n != numel)
        return seterr(err, errlen, -EINVAL,
                      "'%s': shape %s has %" PRId64 " elements, data has %" PRId64, name,
                      engine_shape_str(s, sb, sizeof sb), numel, n);
    return 0;
}

static int read_data(struct tensor_reader *r, const json_t *data, char *err, size_t errlen)
{
    if (!json_is_array(data))
        return read_element(r, data, err, errlen);
    if (json_array_size(data) > 0 && json_is_array(json_array_get(data, 0)))
        return read_nested(r, data, 0, err, errlen);
    return read_flat(r, data, err, errlen);
}

/* ================================================================ one tensor */

static int parse_dtype(const char *name, const json_t *jd, int *dtype, char *err, size_t errlen)
{
    if (jd == NULL) {
        *dtype = ENGINE_F32;
        return 0;
    }
    if (!json_is_string(jd))
        return seterr(err, errlen, -EINVAL, "'%s': \"dtype\" must be a string", name);
    *dtype = engine_dtype_parse(json_string_value(jd));
    if (*dtype < 0 || engine_dtype_size(*dtype) == 0)
        return seterr(
            err, errlen, -EINVAL,
            "'%s': unknown dtype \"%.32s\" (float32, float16, int64, int32, uint8, int8, bool)",
            name, json_string_value(jd));
    return 0;
}

static int check_keys(const char *name, const json_t *obj, char *err, size_t errlen)
{
    const char *k;
    const json_t *v;

    json_object_foreach((json_t *)obj, k, v)
    {
        if (strcmp(k, "shape") && strcmp(k, "data") && strcmp(k, "dtype"))
            return seterr(err, errlen, -EINVAL,
                          "'%s': unknown field \"%.32s\" (shape, data, dtype)", name, k);
    }
    return 0;
}

static int parse_tensor(const char *name, const json_t *obj, struct engine_tensor *t, char *err,
                        size_t errlen)
{
    struct tensor_reader r = {.name = name, .t = t};
    size_t esize;
    int rc;

    if (strlen(name) == 0 || strlen(name) > JSON_NAME_MAX + 8) /* + "[1023]" of an element */
        return seterr(err, errlen, -EINVAL, "tensor name must be 1 to %d bytes", JSON_NAME_MAX);
    if (!json_is_object(obj))
        return seterr(err, errlen, -EINVAL, "'%s': must be an object with shape and data", name);
    if ((rc = check_keys(name, obj, err, errlen)) < 0 ||
        (rc = parse_dtype(name, json_object_get(obj, "dtype"), &t->dtype, err, errlen)) < 0)
        return rc;
    if (json_object_get(obj, "shape") == NULL)
        return seterr(err, errlen, -EINVAL, "'%s': missing \"shape\"", name);
    rc = parse_shape(name, json_object_get(obj, "shape"), &t->shape, &r.numel, err, errlen);
    if (rc < 0 ||
        (rc = check_count(name, &t->shape, r.numel, json_object_get(obj, "data"), err, errlen)) < 0)
        return rc;
    esize = engine_dtype_size(t->dtype);
    t->nbytes = (size_t)r.numel * esize;
    t->data = calloc(r.numel ? (size_t)r.numel : 1, esize);
    t->name = strdup(name);
    if (t->data == NULL || t->name == NULL)
        return seterr(err, errlen, -ENOMEM, "'%s': out of memory for %" PRId64 " elements", name,
                      r.numel);
    return read_data(&r, json_object_get(obj, "data"), err, errlen);
}

/* ================================================================ the set */

/* "inputs" → "input", so that errors read "input 'x': ..." */
static int singular_len(const char *key)
{
    size_t n = strlen(key);
    if (n > 64)
        n = 64;
    return (int)(n > 1 && key[n - 1] == 's' ? n - 1 : n);
}

/* A sequence {"sequence": [tensor, ...]} or optional {"optional": tensor | null}: the number of
 * tensors it holds (*elems: its array, or the optional's value), 1 for a tensor, or -errno. */
static int value_count(const char *name, const json_t *v, const json_t **elems, char *err,
                       size_t errlen)
{
    const json_t *seq = json_is_object(v) ? json_object_get(v, "sequence") : NULL;
    const json_t *opt = json_is_object(v) ? json_object_get(v, "optional") : NULL;
    *elems = NULL;
    if (!seq && !opt)
        return 1;
    if (json_object_size(v) != 1)
        return seterr(err, errlen, -EINVAL,
                      "'%s': a sequence or optional has only the field \"%s\"", name,
                      seq ? "sequence" : "optional");
    if (opt) {
        *elems = opt;
        return json_is_null(opt) ? 0 : 1;
    }
    if (!json_is_array(seq))
        return seterr(err, errlen, -EINVAL, "'%s': \"sequence\" must be an array of tensors", name);
    if (json_array_size(seq) > ENGINE_MAX_SEQ)
        return seterr(err, errlen, -E2BIG, "'%s': a sequence of %zu tensors, at most %d", name,
                      json_array_size(seq), ENGINE_MAX_SEQ);
    *elems = seq;
    return (int)json_array_size(seq);
}

/* Parses one named value into out's next slots: a tensor, or a sequence's / optional's elements
 * as "NAME[0]", "NAME[1]", ... (what the engine compiles a sequence input into). */
static int parse_value(const json_t *set, const char *name, const json_t *v, int count,
                       const json_t *elems, struct engine_tensor_set *out, char *err, size_t errlen)
{
    if (!elems)
        return parse_tensor(name, v, &out->t[out->n++], err, errlen);
    if (strlen(name) == 0 || strlen(name) > JSON_NAME_MAX)
        return seterr(err, errlen, -EINVAL, "tensor name must be 1 to %d bytes", JSON_NAME_MAX);
    for (int k = 0; k < count; k++) {
        char elem[JSON_NAME_MAX + 16];
        snprintf(elem, sizeof(elem), "%s[%d]", name, k);
        if (json_object_get(set, elem))
            return seterr(err, errlen, -EINVAL,
                          "'%s': element %d would be named '%s', which is also given", name, k,
                          elem);
        /* Count the slot first so that free releases whatever parse_tensor allocated. */
        int rc = parse_tensor(elem, json_is_array(elems) ? json_array_get(elems, (size_t)k) : elems,
                              &out->t[out->n++], err, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int parse_set(const json_t *root, const char *key, struct engine_tensor_set *out, char *err,
                     size_t errlen)
{
    const json_t *set = json_is_object(root) ? json_object_get(root, key) : NULL;
    const char *name;
    const json_t *v, *elems;
    char e[512];
    int rc, total = 0;

    if (set == NULL || !json_is_object(set))
        return seterr(err, errlen, -EINVAL, "expected a JSON object {\"%s\": {NAME: tensor, ...}}",
                      key);
    if (json_object_size(set) > JSON_MAX_TENSORS)
        return seterr(err, errlen, -E2BIG, "%s: %zu tensors, at most %d", key,
                      json_object_size(set), JSON_MAX_TENSORS);
    json_object_foreach((json_t *)set, name, v)
    {
        rc = value_count(name, v, &elems, e, sizeof e);
        if (rc < 0)
            return seterr(err, errlen, rc, "%.*s %s", singular_len(key), key, e);
        total += rc;
    }
    if (total > JSON_MAX_SLOTS)
        return seterr(err, errlen, -E2BIG,
                      "%s: %d tensors with the sequences' elements, at most %d", key, total,
                      JSON_MAX_SLOTS);
    out->t = calloc(total ? (size_t)total : 1, sizeof(*out->t));
    if (out->t == NULL)
        return seterr(err, errlen, -ENOMEM, "%s: out of memory", key);
    json_object_foreach((json_t *)set, name, v)
    {
        int count = value_count(name, v, &elems, e, sizeof e);
        rc = parse_value(set, name, v, count, elems, out, e, sizeof e);
        if (rc < 0)
            return seterr(err, errlen, rc, "%.*s %s", singular_len(key), key, e);
    }
    return 0;
}

int engine_tensors_from_json(const char *json, size_t len, const char *key,
                             struct engine_tensor_set *out, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root;
    int rc;

    out->t = NULL;
    out->n = 0;
    if (json == NULL || key == NULL || key[0] == '\0')
        return seterr(err, errlen, -EINVAL, "no JSON given");
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return seterr(err, errlen, -EINVAL, "invalid JSON at line %d column %d: %s", jerr.line,
                      jerr.column, jerr.text);
    rc = parse_set(root, key, out, err, errlen);
    json_decref(root);
    if (rc < 0)
        engine_tensor_set_free(out);
    return rc;
}

void engine_tensor_set_free(struct engine_tensor_set *set)
{
    if (set == NULL)
        return;
    for (int i = 0; i < set->n; i++) {
        free((char *)set->t[i].name);
        free(set->t[i].data);
    }
    free(set->t);
    set->t = NULL;
    set->n = 0;
}

/* ================================================================ writer */

/* A JSON string literal; bytes below 0x20, '"' and '\\' escaped, the rest copied. */
static void sb_string(struct buf *b, const char *s)
{
    buf_printf(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            buf_printf(b, "\\%c", c);
        else if (c < 0x20)
            buf_printf(b, "\\u%04x", c);
        else
            buf_printf(b, "%c", c);
    }
    buf_printf(b, "\"");
}

/* One element as JSON text into out (32 bytes); returns its length, or -1 for an unknown dtype.
 * float32 with %.9g (round-trips); NaN and infinities, which JSON cannot hold, as null. */
static int format_element(char *out, const struct engine_tensor *t, size_t i)
{
    const size_t n = 32;

    switch (t->dtype) {
    case ENGINE_F32:
    case ENGINE_F16: {
        float f;
        if (t->dtype == ENGINE_F16)
            k_cast((const uint16_t *)t->data + i, ENGINE_F16, &f, ENGINE_F32, 1);
        else
            f = ((const float *)t->data)[i];
        if (f == 0.0f && signbit(f))
            return snprintf(out, n, "-0.0"); /* "-0" would read back as the integer 0 */
        if (!isfinite(f))
            return snprintf(out, n, "null");
        return snprintf(out, n, "%.9g", (double)f);
    }
    case ENGINE_U8:
        return snprintf(out, n, "%u", (unsigned)((const uint8_t *)t->data)[i]);
    case ENGINE_I8:
        return snprintf(out, n, "%d", (int)((const int8_t *)t->data)[i]);
    case ENGINE_I32:
        return snprintf(out, n, "%" PRId32, ((const int32_t *)t->data)[i]);
    case ENGINE_I64:
        return snprintf(out, n, "%" PRId64, ((const int64_t *)t->data)[i]);
    case ENGINE_BOOL:
        return snprintf(out, n, "%s", ((const uint8_t *)t->data)[i] ? "true" : "false");
    default:
        return -1;
    }
}

static bool tensor_writable(const struct engine_tensor *t)
{
    int64_t numel;
    size_t esize = engine_dtype_size(t->dtype);

    if (esize == 0 || t->shape.rank < 0 || t->shape.rank > ENGINE_MAX_RANK)
        return false;
    numel = engine_shape_numel(&t->shape);
    if (numel < 0 || (numel > 0 && t->data == NULL))
        return false;
    return t->nbytes >= (size_t)numel * esize;
}

/* The tensor's object {"shape": .., "dtype": .., "data": ..}. */
static void sb_tensor(struct buf *b, const struct engine_tensor *t)
{
    int64_t numel = engine_shape_numel(&t->shape);

    buf_printf(b, "{\"shape\": [");
    for (int d = 0; d < t->shape.rank; d++)
        buf_printf(b, "%s%" PRId64, d ? "," : "", t->shape.dims[d]);
    buf_printf(b, "], \"dtype\": \"%s\", \"data\": [", engine_dtype_name(t->dtype));
    for (int64_t i = 0; i < numel && !b->failed; i++) {
        char num[33] = ",";
        int len = format_element(num + 1, t, (size_t)i);
        if (len < 0) {
            b->failed = true;
            break;
        }
        buf_append(b, i ? num : num + 1, (size_t)len + (i ? 1 : 0));
    }
    buf_printf(b, "]}");
}

/* How many tensors from t[i] on are named "X[0]", "X[1]", ...: a sequence the engine expanded
 * (0 when t[i] is not "X[0]"). */
static int seq_run(const struct engine_tensor *t, int n, int i)
{
    const char *name = t[i].name;
    size_t len = name ? strlen(name) : 0;
    if (len < 4 || strcmp(name + len - 3, "[0]") != 0)
        return 0;
    for (int j = 0; j < n; j++) /* a tensor named X too: keep the names as they are */
        if (t[j].name && strlen(t[j].name) == len - 3 && strncmp(t[j].name, name, len - 3) == 0)
            return 0;
    int k = 1;
    for (; i + k < n && k < ENGINE_MAX_SEQ; k++) {
        const char *o = t[i + k].name;
        char idx[16];
        int w = snprintf(idx, sizeof idx, "[%d]", k);
        if (!o || strlen(o) != len - 3 + (size_t)w || strncmp(o, name, len - 3) != 0 ||
            strcmp(o + len - 3, idx) != 0)
            break;
    }
    return k;
}

char *engine_tensors_to_json(const struct engine_tensor *t, int n, const char *key)
{
    struct buf b = {0};

    if (key == NULL || n < 0 || (n > 0 && t == NULL))
        return NULL;
    for (int i = 0; i < n; i++)
        if (!tensor_writable(&t[i]))
            return NULL;
    buf_printf(&b, "{");
    sb_string(&b, key);
    buf_printf(&b, ": {");
    for (int i = 0; i < n;) {
        char fallback[32];
        if (i)
            buf_printf(&b, ", ");
        int len = seq_run(t, n, i);
        if (len) {
            char *base = strndup(t[i].name, strlen(t[i].name) - 3);
            if (!base)
                b.failed = true;
            else
                sb_string(&b, base);
            free(base);
            buf_printf(&b, ": {\"sequence\": [");
            for (int k = 0; k < len; k++) {
                buf_printf(&b, k ? ", " : "");
                sb_tensor(&b, &t[i + k]);
            }
            buf_printf(&b, "]}");
            i += len;
            continue;
        }
        snprintf(fallback, sizeof fallback, "output%d", i);
        sb_string(&b, t[i].name ? t[i].name : fallback);
        buf_printf(&b, ": ");
        sb_tensor(&b, &t[i++]);
    }
    buf_printf(&b, "}}\n");
    if (b.failed) {
        buf_free(&b);
        return NULL;
    }
    return b.data;
}
