/* The compile option "input shapes" as text: how shmfaas-run, shmfaas-fn and the store spell it. */
#include "engine/engine.h"

#include "common/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "1x3x224x224" → shape; p is NUL-terminated. */
static int parse_dims(const char *p, struct engine_shape *s, char *err, size_t errlen)
{
    const char *start = p;
    char *end;

    s->rank = 0;
    while (*p) {
        long long v;
        errno = 0;
        v = strtoll(p, &end, 10);
        if (errno || end == p || *p < '0' || *p > '9' || v < 1 || v > INT32_MAX ||
            (*end && *end != 'x') || s->rank == ENGINE_MAX_RANK || (*end == 'x' && !end[1]))
            return seterr(err, errlen, -EINVAL,
                          "shape \"%s\": want DxDx.. with 1 to %d dims of 1 to %d, e.g. "
                          "1x3x224x224",
                          start, ENGINE_MAX_RANK, INT32_MAX);
        s->dims[s->rank++] = v;
        p = *end ? end + 1 : end;
    }
    if (s->rank == 0)
        return seterr(err, errlen, -EINVAL, "empty shape: want [NAME=]DxDx.., e.g. 1x3x224x224");
    return 0;
}

/* One "[NAME=]DxDx.." item, cut out of buf in place. */
static int parse_item(char *item, struct engine_input_shape *out, char *err, size_t errlen)
{
    char *eq = strchr(item, '=');

    out->name = NULL;
    if (eq) {
        *eq = '\0';
        if (!*item)
            return seterr(err, errlen, -EINVAL, "shape \"=%s\": the input name before '=' is empty",
                          eq + 1);
        out->name = item;
    }
    return parse_dims(eq ? eq + 1 : item, &out->shape, err, errlen);
}

int engine_shapes_parse(const char *text, char *buf, size_t buflen,
                        struct engine_input_shape *shapes, int max, char *err, size_t errlen)
{
    size_t len = text ? strlen(text) : 0;
    char *item, *next;
    int n = 0, rc;

    if (len == 0)
        return seterr(err, errlen, -EINVAL, "no shape given: want [NAME=]DxDx..[;..]");
    if (len >= buflen)
        return seterr(err, errlen, -ENAMETOOLONG, "shapes \"%.40s...\" are over %zu bytes", text,
                      buflen - 1);
    memcpy(buf, text, len + 1);
    for (item = buf; item; item = next) {
        next = strchr(item, ';');
        if (next)
            *next++ = '\0';
        if (n == max)
            return seterr(err, errlen, -E2BIG, "more than %d shapes given", max);
        if ((rc = parse_item(item, &shapes[n], err, errlen)) < 0)
            return rc;
        if (shapes[n].name == NULL && (n > 0 || next))
            return seterr(err, errlen, -EINVAL,
                          "several shapes given: name each one (NAME=DxDx..;NAME=..)");
        n++;
    }
    return n;
}

int engine_shapes_format(const struct engine_input_shape *shapes, int n, char *out, size_t len)
{
    size_t used = 0;

    if (len == 0)
        return -ENAMETOOLONG;
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        int w = snprintf(out + used, len - used, "%s%s%s", i ? ";" : "",
                         shapes[i].name ? shapes[i].name : "", shapes[i].name ? "=" : "");
        for (int d = 0; w >= 0 && (size_t)w < len - used && d < shapes[i].shape.rank; d++) {
            used += (size_t)w;
            w = snprintf(out + used, len - used, "%s%lld", d ? "x" : "",
                         (long long)shapes[i].shape.dims[d]);
        }
        if (w < 0 || (size_t)w >= len - used)
            return -ENAMETOOLONG;
        used += (size_t)w;
    }
    return (int)used;
}
