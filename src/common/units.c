/* Sizes and durations as users write them: Kubernetes quantities and Go durations. */
#include "common/common.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct unit {
    const char *suffix;
    double factor;
};

/* The number s starts with: unsigned (no sign written), finite, not negative; *end past it. */
static int leading_number(const char *s, double *v, char **end)
{
    if (!s || !*s || *s == '-' || *s == '+')
        return -EINVAL;
    errno = 0;
    *v = strtod(s, end);
    return *end == s || errno || !isfinite(*v) || *v < 0 ? -EINVAL : 0;
}

int parse_size(const char *s, uint64_t *out)
{
    static const struct unit units[] = {
        {"", 1},
        {"k", 1e3},
        {"K", 1e3},
        {"M", 1e6},
        {"G", 1e9},
        {"T", 1e12},
        {"Ki", 1024.0},
        {"Mi", 1048576.0},
        {"Gi", 1073741824.0},
        {"Ti", 1099511627776.0},
        {"KiB", 1024.0},
        {"MiB", 1048576.0},
        {"GiB", 1073741824.0},
        {"TiB", 1099511627776.0},
        {"B", 1},
        {"KB", 1e3},
        {"MB", 1e6},
        {"GB", 1e9},
    };
    char *end;
    double v;
    if (leading_number(s, &v, &end))
        return -EINVAL;
    for (size_t i = 0; i < ARRAY_LEN(units); i++) {
        if (strcmp(end, units[i].suffix) == 0) {
            double bytes = v * units[i].factor;
            if (bytes >= 18446744073709551615.0)
                return -ERANGE;
            *out = (uint64_t)llround(bytes);
            return 0;
        }
    }
    return -EINVAL;
}

int parse_duration_ms(const char *s, int64_t *out_ms)
{
    static const struct unit units[] = {
        {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"us", 0.001}, {"ns", 1e-6},
    };
    char *end;
    double v;
    if (leading_number(s, &v, &end))
        return -EINVAL;
    if (*end == '\0') { /* bare number: seconds */
        if (v * 1000 > 9e15)
            return -ERANGE;
        *out_ms = (int64_t)llround(v * 1000);
        return 0;
    }
    double total = 0;
    const char *p = s;
    while (*p) {
        v = strtod(p, &end);
        if (end == p || !isfinite(v) || v < 0)
            return -EINVAL;
        p = end;
        size_t best = 0;
        double factor = 0;
        for (size_t i = 0; i < ARRAY_LEN(units); i++) {
            size_t n = strlen(units[i].suffix);
            if (n > best && strncmp(p, units[i].suffix, n) == 0) {
                best = n;
                factor = units[i].factor;
            }
        }
        if (!best)
            return -EINVAL;
        p += best;
        total += v * factor;
    }
    if (total > 9e15)
        return -ERANGE;
    *out_ms = (int64_t)llround(total);
    return 0;
}

const char *format_size(uint64_t bytes, char *buf, size_t len)
{
    static const char *names[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    size_t i = 0;
    while (v >= 1024 && i + 1 < ARRAY_LEN(names)) {
        v /= 1024;
        i++;
    }
    if (i == 0)
        snprintf(buf, len, "%llu B", (unsigned long long)bytes);
    else
        snprintf(buf, len, "%.1f %s", v, names[i]);
    return buf;
}
