/* The Prometheus text exposition format 0.0.4 (prom.h). */
#include "common/prom.h"

#include <math.h>
#include <stdio.h>

const double prom_hist_bounds[PROM_HIST_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                    0.5,   1,    2.5,   5,    10};

void prom_hist_observe(struct prom_hist *h, double seconds)
{
    for (int i = 0; i < PROM_HIST_BUCKETS; i++) {
        if (seconds <= prom_hist_bounds[i]) {
            h->buckets[i]++;
            break;
        }
    }
    h->count++;
    h->sum += seconds;
}

/* s with backslash and newline escaped, and double quote too when quote (label values). */
static void put_escaped(struct buf *b, const char *s, bool quote)
{
    const char *run = s;
    for (const char *p = s;; p++) {
        if (*p && *p != '\\' && *p != '\n' && !(quote && *p == '"'))
            continue;
        buf_append(b, run, (size_t)(p - run));
        if (!*p)
            return;
        buf_append(b, *p == '\n' ? "\\n" : *p == '"' ? "\\\"" : "\\\\", 2);
        run = p + 1;
    }
}

static void put_label(struct buf *b, const char *label, const char *value)
{
    buf_printf(b, "%s=\"", label);
    put_escaped(b, value ? value : "", true);
    buf_append(b, "\"", 1);
}

static void put_value(struct buf *b, double v)
{
    if (isnan(v))
        buf_printf(b, " NaN\n");
    else if (isinf(v))
        buf_printf(b, " %cInf\n", v > 0 ? '+' : '-');
    else
        buf_printf(b, " %.17g\n", v);
}

void prom_header(struct buf *b, const char *name, const char *type, const char *help)
{
    buf_printf(b, "# HELP %s ", name);
    put_escaped(b, help, false);
    buf_printf(b, "\n# TYPE %s %s\n", name, type);
}

void prom_sample(struct buf *b, const char *name, const char *label, const char *value, double v)
{
    buf_printf(b, "%s", name);
    if (label) {
        buf_append(b, "{", 1);
        put_label(b, label, value);
        buf_append(b, "}", 1);
    }
    put_value(b, v);
}

void prom_sample2(struct buf *b, const char *name, const char *l1, const char *v1, const char *l2,
                  const char *v2, double v)
{
    buf_printf(b, "%s{", name);
    put_label(b, l1, v1);
    buf_append(b, ",", 1);
    put_label(b, l2, v2);
    buf_append(b, "}", 1);
    put_value(b, v);
}

void prom_metric(struct buf *b, const char *name, const char *type, const char *help, double v)
{
    prom_header(b, name, type, help);
    prom_sample(b, name, NULL, NULL, v);
}

void prom_write_hist(struct buf *b, const char *name, const char *label, const char *value,
                     const struct prom_hist *h)
{
    uint64_t cum = 0;
    char le[32], series[256];
    snprintf(series, sizeof series, "%s_bucket", name);
    for (int i = 0; i < PROM_HIST_BUCKETS; i++) {
        cum += h->buckets[i];
        snprintf(le, sizeof le, "%g", prom_hist_bounds[i]);
        prom_sample2(b, series, label, value, "le", le, (double)cum);
    }
    prom_sample2(b, series, label, value, "le", "+Inf", (double)h->count);
    snprintf(series, sizeof series, "%s_sum", name);
    prom_sample(b, series, label, value, h->sum);
    snprintf(series, sizeof series, "%s_count", name);
    prom_sample(b, series, label, value, (double)h->count);
}
