/*
 * The proxy hop: one HTTP request to an instance over its unix socket with libcurl. Each instance
 * keeps a small pool of easy handles; a handle keeps its connection alive between requests
 * (curl_easy_reset() keeps live connections), so the steady state costs no connect.
 */
#include "gateway/gateway.h"

#include "common/common.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void proxy_handle_free(void *handle)
{
    curl_easy_cleanup(handle);
}

static CURL *handle_take(struct gateway *g, struct instance *in)
{
    CURL *h = NULL;
    pthread_mutex_lock(&g->lock);
    if (in->curl_nidle > 0)
        h = in->curl_idle[--in->curl_nidle];
    pthread_mutex_unlock(&g->lock);
    if (h)
        curl_easy_reset(h);
    else
        h = curl_easy_init();
    return h;
}

static void handle_give(struct gateway *g, struct instance *in, CURL *h, bool keep)
{
    pthread_mutex_lock(&g->lock);
    if (keep && in->state != INST_DEAD && in->curl_nidle == in->curl_cap) {
        int cap = in->curl_cap ? in->curl_cap * 2 : 4;
        void **p = realloc(in->curl_idle, (size_t)cap * sizeof *p);
        if (p) {
            in->curl_idle = p;
            in->curl_cap = cap;
        }
    }
    if (keep && in->state != INST_DEAD && in->curl_nidle < in->curl_cap) {
        in->curl_idle[in->curl_nidle++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&g->lock);
    if (h)
        curl_easy_cleanup(h);
}

static size_t on_body(char *data, size_t size, size_t n, void *user)
{
    struct proxy_resp *rs = user;
    size_t len = size * n;
    rs->got_bytes = true;
    if (rs->body.cap - rs->body.len < len + 1) {
        size_t cap = rs->body.cap ? rs->body.cap : 4096;
        while (cap - rs->body.len < len + 1)
            cap *= 2;
        char *p = realloc(rs->body.data, cap);
        if (!p)
            return 0;
        rs->body.data = p;
        rs->body.cap = cap;
    }
    memcpy(rs->body.data + rs->body.len, data, len);
    rs->body.len += len;
    rs->body.data[rs->body.len] = '\0';
    return len;
}

static const char *const hop_headers[] = {
    "connection", "keep-alive", "transfer-encoding", "content-length", "date",
    "server",     "te",         "trailer",           "upgrade"};

static bool is_hop(const char *name, size_t len)
{
    for (size_t i = 0; i < ARRAY_LEN(hop_headers); i++)
        if (strlen(hop_headers[i]) == len && strncasecmp(hop_headers[i], name, len) == 0)
            return true;
    return false;
}

static size_t on_header(char *data, size_t size, size_t n, void *user)
{
    struct proxy_resp *rs = user;
    size_t len = size * n;
    rs->got_bytes = true;
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) { /* a new status line: forget earlier ones */
        curl_slist_free_all(rs->headers);
        rs->headers = NULL;
        rs->content_type[0] = '\0';
        return len;
    }
    const char *colon = memchr(data, ':', len);
    if (!colon)
        return len;
    size_t nlen = (size_t)(colon - data);
    const char *v = colon + 1;
    size_t vlen = len - nlen - 1;
    while (vlen && (*v == ' ' || *v == '\t'))
        v++, vlen--;
    while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
        vlen--;
    if (nlen == 12 && strncasecmp(data, "content-type", 12) == 0) {
        snprintf(rs->content_type, sizeof rs->content_type, "%.*s", (int)vlen, v);
        return len;
    }
    if (is_hop(data, nlen) || nlen + vlen > 4000)
        return len;
    char line[4096];
    snprintf(line, sizeof line, "%.*s: %.*s", (int)nlen, data, (int)vlen, v);
    struct curl_slist *l = curl_slist_append(rs->headers, line);
    if (l)
        rs->headers = l;
    return len;
}

static void set_request(CURL *h, const char *sock, const struct proxy_req *rq, int64_t timeout_ms)
{
    char url[8192];
    snprintf(url, sizeof url, "http://localhost%s", rq->path_query);
    curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, sock);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    if (strcmp(rq->method, "GET") == 0 && rq->body_len == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(rq->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
        if (strcmp(rq->method, "POST") != 0)
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, rq->headers);
}

void proxy_send(struct gateway *g, struct instance *in, const struct proxy_req *rq,
                struct proxy_resp *rs, int64_t timeout_ms)
{
    memset(rs, 0, sizeof *rs);
    CURL *h = handle_take(g, in);
    if (!h) {
        rs->conn_failed = true;
        snprintf(rs->err, sizeof rs->err, "out of memory");
        return;
    }
    set_request(h, in->sock, rq, timeout_ms);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, rs);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, rs);
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    rs->status = (int)status;
    if (rc != CURLE_OK) {
        rs->timed_out = rc == CURLE_OPERATION_TIMEDOUT;
        rs->conn_failed = !rs->timed_out;
        snprintf(rs->err, sizeof rs->err, "instance %s-%d: %s", in->fn->spec.name, in->id,
                 curl_easy_strerror(rc));
    }
    handle_give(g, in, h, rc == CURLE_OK);
}

void proxy_resp_free(struct proxy_resp *rs)
{
    curl_slist_free_all(rs->headers);
    rs->headers = NULL;
    gw_buf_free(&rs->body);
}

static size_t discard(char *data, size_t size, size_t n, void *user)
{
    (void)data;
    (void)user;
    return size * n;
}

int probe_ready(const char *sock, int64_t timeout_ms)
{
    CURL *h = curl_easy_init();
    if (!h)
        return -1;
    curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, sock);
    curl_easy_setopt(h, CURLOPT_URL, "http://localhost/_/ready");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    if (rc != CURLE_OK)
        return -1;
    return status == 200 ? 1 : 0;
}
