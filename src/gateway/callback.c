/*
 * The allow-list of async callbacks (issue 14): which hosts shmfaasd may POST a result to, and
 * the check of an X-Callback-Url against it. Pure (no I/O): libcurl's URL parser reads the URL,
 * so the host judged here is the host curl connects to. The rules:
 *   - http and https only, a host, at most CALLBACK_URL_MAX bytes;
 *   - an IP literal (IPv4, or IPv6 in brackets) must fall in a listed ADDRESS[/BITS];
 *   - a name must be listed as it is (case-insensitive): "localhost." is not "localhost", and a
 *     name that resolves to an allowed address is not allowed for that;
 *   - list entries are names ([A-Za-z0-9.-]), addresses or ADDRESS/BITS ranges, comma-separated.
 * Error messages are printable ASCII (they become JSON).
 */
#include "gateway/gateway.h"

#include "common/common.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

static int allow_add(struct callback_allow *a, const char *entry, char *err, size_t errlen)
{
    char buf[256], item[96];
    str_printable(entry, strlen(entry), item, sizeof item);
    if (a->n >= CALLBACK_ALLOW_MAX)
        return seterr(err, errlen, -EINVAL, "--callback-allow: more than %d entries",
                      CALLBACK_ALLOW_MAX);
    if (strlen(entry) >= sizeof buf || !*entry)
        return seterr(err, errlen, -EINVAL, "--callback-allow: \"%s\" is not a host", item);
    snprintf(buf, sizeof buf, "%s", entry);
    struct callback_allow_entry *e = &a->e[a->n];
    memset(e, 0, sizeof *e);
    char *slash = strchr(buf, '/');
    if (slash)
        *slash = '\0';
    if (inet_pton(AF_INET, buf, e->addr) == 1)
        e->family = AF_INET;
    else if (inet_pton(AF_INET6, buf, e->addr) == 1)
        e->family = AF_INET6;
    int bits = e->family == AF_INET ? 32 : 128;
    e->prefix = bits;
    if (slash) {
        char *end;
        long p = strtol(slash + 1, &end, 10);
        if (!e->family || *end || end == slash + 1 || p < 0 || p > bits)
            return seterr(err, errlen, -EINVAL, "--callback-allow: \"%s\" is not ADDRESS/BITS",
                          item);
        e->prefix = (int)p;
    }
    if (!e->family) {
        for (const char *p = buf; *p; p++)
            if (!isalnum((unsigned char)*p) && !strchr("-.", *p))
                return seterr(err, errlen, -EINVAL,
                              "--callback-allow: \"%s\" is not a host name, address or range",
                              item);
        for (size_t i = 0; buf[i]; i++)
            e->name[i] = (char)tolower((unsigned char)buf[i]);
    }
    a->n++;
    return 0;
}

int callback_allow_parse(struct callback_allow *a, const char *list, char *err, size_t errlen)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ')
            t++;
        int rc = allow_add(a, t, err, errlen);
        if (rc)
            return rc;
    }
    return 0;
}

static bool in_range(const struct callback_allow_entry *e, int family, const uint8_t *addr)
{
    if (e->family != family)
        return false;
    int full = e->prefix / 8, rest = e->prefix % 8;
    if (memcmp(e->addr, addr, (size_t)full) != 0)
        return false;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return rest == 0 || (e->addr[full] & mask) == (addr[full] & mask);
}

int callback_check(const struct callback_allow *a, const char *url, struct callback_target *t,
                   char *err, size_t errlen)
{
    char shown[128];
    str_printable(url, strlen(url), shown, sizeof shown);
    if (strlen(url) > CALLBACK_URL_MAX)
        return seterr(err, errlen, -EINVAL, "X-Callback-Url is longer than %d bytes",
                      CALLBACK_URL_MAX);
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL;
    int rc = 0;
    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        rc = seterr(err, errlen, -EINVAL, "X-Callback-Url \"%s\" is not a URL", shown);
        goto out;
    }
    if (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0) {
        rc = seterr(err, errlen, -EINVAL, "X-Callback-Url \"%s\": only http and https", shown);
        goto out;
    }
    size_t n = strlen(host);
    const char *h = host;
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']')
        h = host + 1, n -= 2;
    if (n == 0 || n >= sizeof t->host) {
        rc = seterr(err, errlen, -EINVAL, "X-Callback-Url \"%s\": no host", shown);
        goto out;
    }
    memset(t, 0, sizeof *t);
    memcpy(t->host, h, n);
    t->port = strtol(port, NULL, 10);
    if (t->port < 1 || t->port > 65535) {
        rc = seterr(err, errlen, -EINVAL, "X-Callback-Url \"%s\": no port 1-65535", shown);
        goto out;
    }
    uint8_t addr[16];
    int family = inet_pton(AF_INET, t->host, addr) == 1    ? AF_INET
                 : inet_pton(AF_INET6, t->host, addr) == 1 ? AF_INET6
                                                           : 0;
    t->literal = family != 0;
    for (int i = 0; i < a->n; i++)
        if (family ? in_range(&a->e[i], family, addr)
                   : !a->e[i].family && strcasecmp(a->e[i].name, t->host) == 0)
            goto out;
    rc = seterr(err, errlen, -EPERM,
                "X-Callback-Url host \"%.100s\" is not allowed: callbacks go to loopback and the "
                "hosts of --callback-allow only",
                str_printable(t->host, strlen(t->host), shown, sizeof shown));
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return rc;
}
