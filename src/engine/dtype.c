/*
 * dtype.c — element types and shapes: sizes, names, element counts, printing.
 */
#include "common/common.h"
#include "engine/engine.h"
#include "engine/ir.h"

#include <stdio.h>
#include <string.h>

struct dtype_def {
    int dtype;
    size_t size;
    const char *name;
};

static const struct dtype_def dtypes[] = {
    {ENGINE_F32, 4, "float32"}, {ENGINE_U8, 1, "uint8"},    {ENGINE_I8, 1, "int8"},
    {ENGINE_I32, 4, "int32"},   {ENGINE_I64, 8, "int64"},   {ENGINE_BOOL, 1, "bool"},
    {ENGINE_F16, 2, "float16"}, {ENGINE_F64, 8, "float64"},
};

static const struct dtype_def *dtype_find(int dtype)
{
    for (size_t i = 0; i < sizeof(dtypes) / sizeof(dtypes[0]); i++)
        if (dtypes[i].dtype == dtype)
            return &dtypes[i];
    return NULL;
}

size_t engine_dtype_size(int dtype)
{
    const struct dtype_def *d = dtype_find(dtype);
    return d ? d->size : 0;
}

const char *engine_dtype_name(int dtype)
{
    const struct dtype_def *d = dtype_find(dtype);
    return d ? d->name : "?";
}

int engine_dtype_parse(const char *name)
{
    if (!name)
        return -1;
    for (size_t i = 0; i < sizeof(dtypes) / sizeof(dtypes[0]); i++)
        if (strcmp(dtypes[i].name, name) == 0)
            return dtypes[i].dtype;
    if (strcmp(name, "float") == 0)
        return ENGINE_F32;
    return -1;
}

/* Product of the dims; -1 for a bad rank, a negative dim or an overflow past INT64_MAX. */
int64_t engine_shape_numel(const struct engine_shape *s)
{
    if (!s || s->rank < 0 || s->rank > ENGINE_MAX_RANK)
        return -1;
    int zero = 0; /* zero elements, however large the other dims */
    for (int i = 0; i < s->rank; i++) {
        if (s->dims[i] < 0)
            return -1;
        zero |= s->dims[i] == 0;
    }
    if (zero)
        return 0;
    int64_t n = 1;
    for (int i = 0; i < s->rank; i++) {
        if (n > INT64_MAX / s->dims[i])
            return -1;
        n *= s->dims[i];
    }
    return n;
}

const char *engine_shape_str(const struct engine_shape *s, char *buf, size_t len)
{
    if (!buf || len == 0)
        return "";
    size_t used = 0;
    buf[0] = '\0';
    int rank = s && s->rank >= 0 && s->rank <= ENGINE_MAX_RANK ? s->rank : 0;
    int n = snprintf(buf, len, "[");
    used = n > 0 ? (size_t)n : 0;
    for (int i = 0; i < rank && used < len; i++) {
        n = snprintf(buf + used, len - used, "%s%lld", i ? "," : "", (long long)s->dims[i]);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    if (used < len)
        snprintf(buf + used, len - used, "]");
    return buf;
}

const char *onnx_dtype_name(int t)
{
    static const char *names[] = {"undefined",  "float32", "uint8",  "int8",   "uint16",
                                  "int16",      "int32",   "int64",  "string", "bool",
                                  "float16",    "double",  "uint32", "uint64", "complex64",
                                  "complex128", "bfloat16"};
    return t >= 0 && (size_t)t < ARRAY_LEN(names) ? names[t] : "unknown";
}
