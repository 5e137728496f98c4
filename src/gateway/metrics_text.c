/* Prometheus text exposition format 0.0.4: histograms, escaped labels, a growable text buffer. */
#include "gateway/gateway.h"

#include "common/common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double gw_hist_bounds[GW_HIST_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                0.5,   1,    2.5,   5,    10};

void gw_hist_observe(struct gw_hist *h, double seconds)
{
    for (int i = 0; i < GW_HIST_BUCKETS; i++) {
        if (seconds <= gw_hist_bounds[i]) {
            h->buckets[i]++;
            break;
        }
    }
    h->count++;
    h->sum += seconds;
}

void gw_buf_printf(struct gw_buf *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->len;
        int n = vsnprintf(b->data ? b->data + b->len : NULL, b->data ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = true;
            return;
        }
        if (b->data && (size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap : 1024;
        while (cap - b->len <= (size_t)n)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->data = p;
        b->cap = cap;
    }
}

void gw_buf_free(struct gw_buf *b)
{
    free(b->data);
    *b = (struct gw_buf){0};
}

/* Label values: backslash, double quote and newline are escaped. */
static void put_label(struct gw_buf *b, const char *label, const char *value)
{
    gw_buf_printf(b, "%s=\"", label);
    for (const char *p = value; *p; p++) {
        if (*p == '\\' || *p == '"')
            gw_buf_printf(b, "\\%c", *p);
        else if (*p == '\n')
            gw_buf_printf(b, "\\n");
        else
            gw_buf_printf(b, "%c", *p);
    }
    gw_buf_printf(b, "\"");
}

static void put_value(struct gw_buf *b, double v)
{
    gw_buf_printf(b, " %.17g\n", v);
}

void prom_header(struct gw_buf *b, const char *name, const char *type, const char *help)
{
    gw_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void prom_sample(struct gw_buf *b, const char *name, const char *label, const char *value, double v)
{
    gw_buf_printf(b, "%s", name);
    if (label) {
        gw_buf_printf(b, "{");
        put_label(b, label, value);
        gw_buf_printf(b, "}");
    }
    put_value(b, v);
}

void prom_sample2(struct gw_buf *b, const char *name, const char *l1, const char *v1,
                  const char *l2, const char *v2, double v)
{
    gw_buf_printf(b, "%s{", name);
    put_label(b, l1, v1);
    gw_buf_printf(b, ",");
    put_label(b, l2, v2);
    gw_buf_printf(b, "}");
    put_value(b, v);
}

void prom_hist(struct gw_buf *b, const char *name, const char *label, const char *value,
               const struct gw_hist *h)
{
    uint64_t cum = 0;
    char le[32];
    for (int i = 0; i < GW_HIST_BUCKETS; i++) {
        cum += h->buckets[i];
        snprintf(le, sizeof le, "%g", gw_hist_bounds[i]);
        gw_buf_printf(b, "%s_bucket{", name);
        put_label(b, label, value);
        gw_buf_printf(b, ",");
        put_label(b, "le", le);
        gw_buf_printf(b, "}");
        put_value(b, (double)cum);
    }
    gw_buf_printf(b, "%s_bucket{", name);
    put_label(b, label, value);
    gw_buf_printf(b, ",le=\"+Inf\"}");
    put_value(b, (double)h->count);
    gw_buf_printf(b, "%s_sum{", name);
    put_label(b, label, value);
    gw_buf_printf(b, "}");
    put_value(b, h->sum);
    gw_buf_printf(b, "%s_count{", name);
    put_label(b, label, value);
    gw_buf_printf(b, "}");
    put_value(b, (double)h->count);
}

int gw_pathf(char *out, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, len, fmt, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}
