/*
 * The proxy hop: one HTTP request to an instance over its unix socket with libcurl's multi
 * interface, driven from the caller's thread: proxy_open() runs it until the response headers are
 * in, proxy_read() until more body bytes are (so a reply streams through without being held whole).
 * Each instance keeps a small pool of handles whose connections stay alive between requests.
 */
#include "gateway/gateway.h"

#include "common/common.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A pooled keep-alive pair: in libcurl's multi interface the connection cache belongs to the
 * multi handle, so each easy handle keeps its own multi. */
struct pooled {
    CURL *h;
    CURLM *m;
};

struct proxy_stream {
    struct gateway *g;
    struct instance *in;
    struct pooled *p;
    struct proxy_resp *rs; /* rs->body holds received bytes not yet read */
    size_t off;            /* consumed prefix of rs->body */
    bool headers_done, done, added;
    CURLcode result;
};

void proxy_handle_free(void *handle)
{
    struct pooled *p = handle;
    curl_multi_cleanup(p->m);
    curl_easy_cleanup(p->h);
    free(p);
}

static struct pooled *handle_take(struct gateway *g, struct instance *in)
{
    struct pooled *p = NULL;
    pthread_mutex_lock(&g->lock);
    if (in->curl_nidle > 0)
        p = in->curl_idle[--in->curl_nidle];
    pthread_mutex_unlock(&g->lock);
    if (p) {
        curl_easy_reset(p->h);
        return p;
    }
    p = calloc(1, sizeof *p);
    if (p && (p->h = curl_easy_init()) && (p->m = curl_multi_init()))
        return p;
    if (p) {
        curl_easy_cleanup(p->h);
        free(p);
    }
    return NULL;
}

static void handle_give(struct gateway *g, struct instance *in, struct pooled *p, bool keep)
{
    pthread_mutex_lock(&g->lock);
    if (keep && in->state != INST_DEAD && in->curl_nidle == in->curl_cap) {
        int cap = in->curl_cap ? in->curl_cap * 2 : 4;
        void **v = realloc(in->curl_idle, (size_t)cap * sizeof *v);
        if (v) {
            in->curl_idle = v;
            in->curl_cap = cap;
        }
    }
    if (keep && in->state != INST_DEAD && in->curl_nidle < in->curl_cap) {
        in->curl_idle[in->curl_nidle++] = p;
        p = NULL;
    }
    pthread_mutex_unlock(&g->lock);
    if (p)
        proxy_handle_free(p);
}

static size_t on_body(char *data, size_t size, size_t n, void *user)
{
    struct proxy_stream *st = user;
    struct proxy_resp *rs = st->rs;
    size_t len = size * n;
    rs->got_bytes = true;
    if (st->off == rs->body.len)
        st->off = rs->body.len = 0; /* everything read: reuse the buffer from its start */
    return buf_append(&rs->body, data, len) == 0 ? len : 0;
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

/* The blank line after the headers: a final (non-1xx) status means the reply may start. */
static void headers_end(struct proxy_stream *st)
{
    long status = 0;
    curl_easy_getinfo(st->p->h, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200) {
        st->rs->status = (int)status;
        st->headers_done = true;
    }
}

static size_t on_header(char *data, size_t size, size_t n, void *user)
{
    struct proxy_stream *st = user;
    struct proxy_resp *rs = st->rs;
    size_t len = size * n;
    rs->got_bytes = true;
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) { /* a new status line: forget earlier ones */
        curl_slist_free_all(rs->headers);
        rs->headers = NULL;
        rs->content_type[0] = '\0';
        return len;
    }
    if (len <= 2 && (data[0] == '\r' || data[0] == '\n')) {
        headers_end(st);
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

static void finish(struct proxy_stream *st, CURLcode rc)
{
    struct proxy_resp *rs = st->rs;
    st->done = true;
    st->result = rc;
    if (rc == CURLE_OK) {
        if (!st->headers_done)
            headers_end(st);
        return;
    }
    rs->timed_out = rc == CURLE_OPERATION_TIMEDOUT;
    rs->conn_failed = !rs->timed_out;
    snprintf(rs->err, sizeof rs->err, "instance %s-%d: %s", st->in->fn->spec.name, st->in->id,
             curl_easy_strerror(rc));
}

static bool have_headers(const struct proxy_stream *st)
{
    return st->headers_done;
}

static bool have_body(const struct proxy_stream *st)
{
    return st->off < st->rs->body.len;
}

/* Runs the transfer until ready(st) or it ended. */
static void drive(struct proxy_stream *st, bool (*ready)(const struct proxy_stream *))
{
    while (!st->done && !ready(st)) {
        int running = 0, left;
        CURLMcode mc = curl_multi_perform(st->p->m, &running);
        CURLMsg *msg;
        while ((msg = curl_multi_info_read(st->p->m, &left)))
            if (msg->msg == CURLMSG_DONE)
                finish(st, msg->data.result);
        if (mc != CURLM_OK && !st->done)
            finish(st, CURLE_RECV_ERROR);
        if (st->done || ready(st))
            break;
        curl_multi_poll(st->p->m, NULL, 0, 100, NULL);
    }
}

struct proxy_stream *proxy_open(struct gateway *g, struct instance *in, const struct proxy_req *rq,
                                struct proxy_resp *rs, int64_t timeout_ms)
{
    memset(rs, 0, sizeof *rs);
    struct proxy_stream *st = calloc(1, sizeof *st);
    if (st)
        *st = (struct proxy_stream){.g = g, .in = in, .rs = rs, .p = handle_take(g, in)};
    if (!st || !st->p) {
        free(st);
        rs->conn_failed = true;
        snprintf(rs->err, sizeof rs->err, "out of memory");
        return NULL;
    }
    CURL *h = st->p->h;
    set_request(h, in->sock, rq, timeout_ms);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, st);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, st);
    if (curl_multi_add_handle(st->p->m, h) != CURLM_OK) {
        finish(st, CURLE_FAILED_INIT);
        return st;
    }
    st->added = true;
    drive(st, have_headers);
    return st;
}

bool proxy_complete(const struct proxy_stream *st)
{
    return st->done && st->result == CURLE_OK;
}

ssize_t proxy_read(struct proxy_stream *st, char *buf, size_t max)
{
    drive(st, have_body);
    struct proxy_resp *rs = st->rs;
    size_t n = rs->body.len - st->off;
    if (n == 0)
        return st->result == CURLE_OK ? 0 : -1;
    n = n < max ? n : max;
    memcpy(buf, rs->body.data + st->off, n);
    st->off += n;
    return (ssize_t)n;
}

void proxy_close(struct proxy_stream *st)
{
    if (!st)
        return;
    if (st->added)
        curl_multi_remove_handle(st->p->m, st->p->h);
    /* only a transfer that ended cleanly leaves a connection worth keeping */
    handle_give(st->g, st->in, st->p, st->done && st->result == CURLE_OK);
    free(st);
}

void proxy_resp_free(struct proxy_resp *rs)
{
    curl_slist_free_all(rs->headers);
    rs->headers = NULL;
    buf_free(&rs->body);
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
