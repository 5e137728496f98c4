/* The growable byte buffer (common.h): doubling capacity, always NUL-terminated, sticky failure. */
#include "common/common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUF_MIN_CAP 256

int buf_reserve(struct buf *b, size_t n)
{
    if (b->failed)
        return -ENOMEM;
    if (b->cap > b->len && b->cap - b->len > n)
        return 0;
    if (n > SIZE_MAX / 2 - b->len - 1) {
        b->failed = true;
        return -ENOMEM;
    }
    size_t cap = b->cap ? b->cap : BUF_MIN_CAP;
    while (cap - b->len <= n)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) {
        b->failed = true;
        return -ENOMEM;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

int buf_append(struct buf *b, const void *data, size_t n)
{
    int rc = buf_reserve(b, n);
    if (rc < 0)
        return rc;
    if (n)
        memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
    for (;;) {
        if (b->failed)
            return -ENOMEM;
        size_t room = b->cap - b->len;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->data ? b->data + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = true;
            return -EINVAL;
        }
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return 0;
        }
        if (buf_reserve(b, (size_t)n) < 0)
            return -ENOMEM;
    }
}

void buf_free(struct buf *b)
{
    free(b->data);
    *b = (struct buf){0};
}
