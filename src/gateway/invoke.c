/*
 * ANY /function/NAME[.NAMESPACE][/path]: hold the request until an instance of NAME has room
 * (bounded by --hold; scale-from-zero happens here, the supervisor sees the held count), proxy it
 * with the OpenFaaS headers added, and retry once on another instance when the chosen one died
 * before sending a single response byte (inference is idempotent). Otherwise: 502, 503 or 504.
 */
#include "gateway/gateway.h"

#include "common/common.h"
#include "common/http.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <arpa/inet.h>

#define UPSTREAM_TIMEOUT_MS 60000

static const struct http_header internal_hdr[] = {{"X-OpenFaaS-Internal", "gateway"}};

/* ---- choosing an instance ---- */

/* The least loaded ready instance with room; instances of an older spec only when no current
 * one is ready (a rolling update). */
static struct instance *pick(struct function *fn, pid_t avoid)
{
    struct instance *best = NULL;
    int64_t now = now_ms();
    bool current_ready = function_ready_count(fn) > 0;
    for (struct instance *in = fn->instances; in; in = in->next) {
        if (in->state != INST_READY || in->inflight >= fn->spec.instance_cap || in->pid == avoid ||
            now < in->suspect_until_ms || (in->stale && current_ready))
            continue;
        if (!best || in->inflight < best->inflight)
            best = in;
    }
    return best;
}

/* Under the lock: waits for an instance with room until deadline (CLOCK_MONOTONIC ms).
 * Returns it with its in-flight count taken, or NULL (timed out or function deleted). */
static struct instance *acquire(struct gateway *g, struct function *fn, pid_t avoid,
                                int64_t deadline_ms)
{
    struct instance *in;
    bool counted = false;
    while (!(in = pick(fn, avoid))) {
        bool refused = fn->refused && function_live_count(fn) == 0; /* none will come */
        if (fn->deleted || g->stopping || refused || now_ms() >= deadline_ms)
            break;
        if (!counted) {
            fn->queued++;
            counted = true;
            pthread_cond_broadcast(&g->kick);
        }
        struct timespec ts = mono_timespec(deadline_ms * 1000000);
        pthread_cond_timedwait(&g->changed, &g->lock, &ts);
    }
    if (counted)
        fn->queued--;
    if (in) {
        in->inflight++;
        fn->inflight++;
        fn->last_active_ms = now_ms();
    }
    return in;
}

/* ---- request headers ---- */

struct hdr_ctx {
    struct curl_slist *list;
    const char *host;
    const char *xff;
    const char *call_id;
};

static const char *const skip_headers[] = {"host",
                                           "content-length",
                                           "connection",
                                           "keep-alive",
                                           "transfer-encoding",
                                           "expect",
                                           "te",
                                           "upgrade",
                                           "x-forwarded-for",
                                           "x-forwarded-host",
                                           "x-call-id",
                                           "x-start-time"};

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    struct hdr_ctx *h = cls;
    char line[8192];
    if (strcasecmp(key, "host") == 0)
        h->host = value;
    else if (strcasecmp(key, "x-forwarded-for") == 0)
        h->xff = value;
    else if (strcasecmp(key, "x-call-id") == 0)
        h->call_id = value;
    for (size_t i = 0; i < ARRAY_LEN(skip_headers); i++)
        if (strcasecmp(key, skip_headers[i]) == 0)
            return MHD_YES;
    if (snprintf(line, sizeof line, "%s: %s", key, value ? value : "") < (int)sizeof line) {
        struct curl_slist *l = curl_slist_append(h->list, line);
        if (l)
            h->list = l;
    }
    return MHD_YES;
}

static void client_ip(struct MHD_Connection *c, char *out, size_t len)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(out, len, "unknown");
    if (!ci || !ci->client_addr)
        return;
    if (ci->client_addr->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ci->client_addr)->sin_addr, out, len);
    else if (ci->client_addr->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ci->client_addr)->sin6_addr, out, len);
    else if (ci->client_addr->sa_family == AF_UNIX)
        snprintf(out, len, "unix");
}

static void add(struct curl_slist **list, const char *fmt, const char *a, const char *b)
{
    char line[8192];
    snprintf(line, sizeof line, fmt, a, b);
    struct curl_slist *l = curl_slist_append(*list, line);
    if (l)
        *list = l;
}

/* OpenFaaS call ids are UUIDs; any caller's id of 1-64 [A-Za-z0-9._-] is kept. */
bool gw_valid_call_id(const char *id)
{
    size_t n = 0;
    for (const char *p = id; *p; p++, n++)
        if (n >= GW_CALL_ID_MAX - 1 || !(isalnum((unsigned char)*p) || strchr("._-", *p)))
            return false;
    return n > 0;
}

struct curl_slist *invoke_headers(struct http_request *rq, char id[GW_CALL_ID_MAX])
{
    struct hdr_ctx h = {0};
    char ip[64], start[32];
    MHD_get_connection_values(rq->conn, MHD_HEADER_KIND, collect_header, &h);
    client_ip(rq->conn, ip, sizeof ip);
    if (h.call_id && gw_valid_call_id(h.call_id)) {
        snprintf(id, GW_CALL_ID_MAX, "%s", h.call_id);
    } else {
        uint8_t r[16] = {0};
        if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
            memset(r, 0, sizeof r);
        snprintf(id, GW_CALL_ID_MAX,
                 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0], r[1],
                 r[2], r[3], r[4], r[5], (r[6] & 0x0f) | 0x40, r[7], (r[8] & 0x3f) | 0x80, r[9],
                 r[10], r[11], r[12], r[13], r[14], r[15]);
    }
    snprintf(start, sizeof start, "%lld", (long long)wall_ms() * 1000000LL);
    add(&h.list, "X-Call-Id: %s%s", id, "");
    add(&h.list, "X-Start-Time: %s%s", start, "");
    if (h.xff && *h.xff)
        add(&h.list, "X-Forwarded-For: %s, %s", h.xff, ip);
    else
        add(&h.list, "X-Forwarded-For: %s%s", ip, "");
    add(&h.list, "X-Forwarded-Host: %s%s", h.host ? h.host : "", "");
    add(&h.list, "Expect:%s%s", "", "");
    return h.list;
}

/* ---- the query string, rebuilt from MHD's parsed arguments ---- */

static void put_escaped(struct buf *b, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~", *p))
            buf_printf(b, "%c", *p);
        else
            buf_printf(b, "%%%02X", *p);
    }
}

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    struct buf *b = cls;
    buf_printf(b, "%c", b->len && strchr(b->data, '?') ? '&' : '?');
    put_escaped(b, key);
    if (value) {
        buf_printf(b, "=");
        put_escaped(b, value);
    }
    return MHD_YES;
}

void invoke_path(struct http_request *rq, const char *rest, struct buf *b)
{
    buf_printf(b, "%s", rest && *rest ? rest : "/");
    MHD_get_connection_values(rq->conn, MHD_GET_ARGUMENT_KIND, collect_arg, b);
}

/* ---- one invocation, from choosing an instance to the last byte of the reply ---- */

struct invocation {
    struct gateway *g;
    struct function *fn;
    struct instance *in; /* held (in flight) while the reply streams */
    struct proxy_stream *stream;
    struct proxy_resp rs;
    struct proxy_req prq;
    struct buf path;
    int64_t t0;
    int code;
    int retry_s; /* > 0: a 503 for a refused model, with Retry-After */
};

/* Lets go of the instance the request used; a failed connection marks it suspect. */
static void drop_instance(struct invocation *iv, bool failed)
{
    struct gateway *g = iv->g;
    proxy_close(iv->stream);
    iv->stream = NULL;
    pthread_mutex_lock(&g->lock);
    iv->fn->inflight--;
    iv->fn->last_active_ms = now_ms();
    if (failed) {
        /* most likely dead: keep others off it until the supervisor has reaped it */
        iv->in->suspect_until_ms = now_ms() + 1000;
        pthread_cond_broadcast(&g->kick);
    }
    instance_release(g, iv->in);
    pthread_mutex_unlock(&g->lock);
    iv->in = NULL;
}

/* Chooses an instance and starts the request, retrying once on another instance when the first
 * failed before any response byte. Returns the upstream status with iv->stream open, or the
 * gateway's error status (iv->stream NULL) with err filled. */
static int forward(struct invocation *iv, char *err, size_t errlen)
{
    struct gateway *g = iv->g;
    struct proxy_resp *rs = &iv->rs;
    int64_t deadline = now_ms() + g->hold_ms;
    pid_t avoid = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        pthread_mutex_lock(&g->lock);
        iv->in = acquire(g, iv->fn, avoid, deadline);
        bool deleted = iv->fn->deleted;
        /* the store refused the model: no instance will come before its retry, say why now */
        bool refused =
            !iv->in && !deleted && function_refusal(iv->fn, now_ms(), err, errlen, &iv->retry_s);
        pthread_mutex_unlock(&g->lock);
        if (refused)
            return 503;
        if (!iv->in) {
            seterr(err, errlen, 0, "no instance of %s became ready within %lld ms",
                   iv->fn->spec.name, (long long)g->hold_ms);
            return deleted ? 404 : 503;
        }
        avoid = iv->in->pid;
        iv->stream = proxy_open(g, iv->in, &iv->prq, rs, UPSTREAM_TIMEOUT_MS);
        if (!rs->conn_failed && !rs->timed_out)
            return rs->status;
        drop_instance(iv, rs->conn_failed && !rs->got_bytes);
        if (rs->timed_out) {
            seterr(err, errlen, 0, "%s: no answer within %d ms", rs->err, UPSTREAM_TIMEOUT_MS);
            return 504;
        }
        if (rs->got_bytes || attempt == 1)
            break;
        log_warn("%s; retrying on another instance", rs->err);
        proxy_resp_free(rs);
    }
    seterr(err, errlen, 0, "%s", rs->err);
    return 502;
}

/* Counts the invocation and frees it; runs when the reply is fully sent (or given up). */
static void invocation_end(void *cls)
{
    struct invocation *iv = cls;
    struct gateway *g = iv->g;
    if (iv->in)
        drop_instance(iv, false);
    pthread_mutex_lock(&g->lock);
    function_count_code(iv->fn, iv->code, (double)(now_ns() - iv->t0) / 1e9);
    function_put_ref(g, iv->fn);
    pthread_mutex_unlock(&g->lock);
    proxy_resp_free(&iv->rs);
    curl_slist_free_all(iv->prq.headers);
    buf_free(&iv->path);
    free(iv);
}

static ssize_t stream_body(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct invocation *iv = cls;
    ssize_t n = proxy_read(iv->stream, buf, max);
    if (n < 0) {
        log_warn("%s: failed after its reply started; the client sees a cut reply", iv->rs.err);
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    return n == 0 ? MHD_CONTENT_READER_END_OF_STREAM : n;
}

/* The function's reply: whole when it already arrived (small inference replies), else streamed. */
static int reply_upstream(struct http_request *rq, struct invocation *iv)
{
    struct proxy_resp *rs = &iv->rs;
    struct MHD_Response *r;
    bool whole = proxy_complete(iv->stream);
    if (whole)
        r = MHD_create_response_from_buffer(rs->body.len, rs->body.len ? rs->body.data : "",
                                            MHD_RESPMEM_MUST_COPY);
    else
        r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, stream_body, iv,
                                              invocation_end);
    if (!r) {
        invocation_end(iv);
        return -1;
    }
    for (struct curl_slist *l = rs->headers; l; l = l->next) {
        char *colon = strchr(l->data, ':');
        if (!colon)
            continue;
        *colon = '\0';
        MHD_add_response_header(r, l->data, colon + 2);
        *colon = ':';
    }
    if (rs->content_type[0])
        MHD_add_response_header(r, "Content-Type", rs->content_type);
    enum MHD_Result ok = MHD_queue_response(rq->conn, (unsigned)rs->status, r);
    MHD_destroy_response(r); /* a streamed reply's invocation_end runs when MHD is done with it */
    if (whole)
        invocation_end(iv);
    return ok == MHD_YES ? 0 : -1;
}

static struct invocation *invocation_new(struct gateway *g, struct function *fn,
                                         struct http_request *rq, const char *rest, int64_t t0)
{
    struct invocation *iv = calloc(1, sizeof *iv);
    if (!iv)
        return NULL;
    iv->g = g;
    iv->fn = fn;
    iv->t0 = t0;
    char call_id[GW_CALL_ID_MAX];
    invoke_path(rq, rest, &iv->path);
    iv->prq = (struct proxy_req){.method = rq->method,
                                 .path_query = iv->path.data ? iv->path.data : "/",
                                 .body = (const char *)rq->body,
                                 .body_len = rq->body_len,
                                 .headers = invoke_headers(rq, call_id)};
    return iv;
}

int invoke_target(const char *arg, char name[GW_NAME_MAX], const char **rest, char *err,
                  size_t errlen)
{
    char full[GW_NAME_MAX + 1];
    const char *slash = strchr(arg, '/');
    size_t n = slash ? (size_t)(slash - arg) : strlen(arg);
    *rest = slash;
    snprintf(full, sizeof full, "%.*s", (int)(n < GW_NAME_MAX ? n : GW_NAME_MAX), arg);
    if (gw_name_refusal(full, err, errlen))
        return 400;
    if (n >= GW_NAME_MAX || gw_split_name(full, name, err, errlen)) {
        seterr(err, errlen, 0, "function not found");
        return 404;
    }
    return 0;
}

/* Takes a reference on NAME (put it back with function_put_ref), NULL when there is none. */
static struct function *function_get(struct gateway *g, const char *name, int64_t t0)
{
    pthread_mutex_lock(&g->lock);
    struct function *fn = registry_find(g, name);
    if (fn) {
        fn->refs++;
        fn->last_active_ms = t0 / 1000000;
    }
    pthread_mutex_unlock(&g->lock);
    return fn;
}

int route_invoke(struct gateway *g, struct http_request *rq, const char *arg)
{
    char name[GW_NAME_MAX], err[512];
    const char *slash;
    int status = invoke_target(arg, name, &slash, err, sizeof err);
    if (status)
        return http_reply_error(rq->conn, (unsigned)status, err, internal_hdr, 1);
    int64_t t0 = now_ns();
    struct function *fn = function_get(g, name, t0);
    if (!fn) {
        snprintf(err, sizeof err, "function %s not found", name);
        return http_reply_error(rq->conn, 404, err, internal_hdr, 1);
    }
    struct invocation *iv = invocation_new(g, fn, rq, slash, t0);
    if (!iv) {
        pthread_mutex_lock(&g->lock);
        function_put_ref(g, fn);
        pthread_mutex_unlock(&g->lock);
        return http_reply_error(rq->conn, 500, "out of memory", internal_hdr, 1);
    }
    iv->code = forward(iv, err, sizeof err);
    if (iv->stream)
        return reply_upstream(rq, iv);
    char retry[16];
    snprintf(retry, sizeof retry, "%d", iv->retry_s);
    const struct http_header refused_hdr[] = {internal_hdr[0], {"Retry-After", retry}};
    int rc = http_reply_error(rq->conn, (unsigned)iv->code, err, refused_hdr,
                              iv->retry_s > 0 ? 2 : 1);
    invocation_end(iv);
    return rc;
}

/* ---- a whole invocation for the async workers ---- */

/* The rest of a streamed reply into rs->body, at most max bytes; -1 when cut or too long. */
static int read_rest(struct invocation *iv, size_t max)
{
    struct buf all = {0};
    char buf[65536];
    ssize_t n;
    while ((n = proxy_read(iv->stream, buf, sizeof buf)) > 0)
        if (all.len + (size_t)n > max || buf_append(&all, buf, (size_t)n) < 0)
            break;
    bool ok = n == 0;
    buf_free(&iv->rs.body);
    iv->rs.body = all;
    return ok ? 0 : -1;
}

int invoke_run(struct gateway *g, const char *name, const struct proxy_req *prq,
               struct proxy_resp *rs, size_t max_reply, char *err, size_t errlen)
{
    int64_t t0 = now_ns();
    memset(rs, 0, sizeof *rs);
    struct function *fn = function_get(g, name, t0);
    if (!fn) {
        seterr(err, errlen, 0, "function %s not found", name);
        return 404;
    }
    struct invocation *iv = calloc(1, sizeof *iv);
    if (!iv) {
        pthread_mutex_lock(&g->lock);
        function_put_ref(g, fn);
        pthread_mutex_unlock(&g->lock);
        seterr(err, errlen, 0, "out of memory");
        return 500;
    }
    *iv = (struct invocation){.g = g, .fn = fn, .t0 = t0, .prq = *prq};
    iv->code = forward(iv, err, errlen);
    if (iv->stream && read_rest(iv, max_reply) != 0) {
        seterr(err, errlen, 0, "%s: the reply was cut or longer than %zu bytes",
               iv->rs.err[0] ? iv->rs.err : name, max_reply);
        iv->code = 502;
        drop_instance(iv, false);
    }
    int code = iv->code;
    if (iv->stream) {
        *rs = iv->rs;
        memset(&iv->rs, 0, sizeof iv->rs);
    }
    iv->prq.headers = NULL; /* the caller's: invocation_end must not free them */
    invocation_end(iv);
    return code;
}
