/*
 * Async invocations as OpenFaaS does them: POST /async-function/NAME[.NS][/path] answers 202 with
 * X-Call-Id once the call (method, path and query, headers, body, callback URL) is durable in the
 * queue (queue.c); --async-workers threads run queued calls through the normal invoke path
 * (invoke_run: hold for an instance with room, scale from zero, the function's concurrency cap)
 * and POST each result to the call's X-Callback-Url with X-Call-Id, X-Function-Status,
 * X-Function-Name and X-Duration-Seconds.
 *
 * Delivery is at-least-once: a call is deleted only after its callback was answered (or given
 * up), so a crash between the run and the delete runs or calls back again. Retries, with a
 * backoff doubling from 500 ms up to 60 s, for at most --async-retries more attempts:
 * a run the gateway itself could not place (502/503/504: no instance, instance died), and a
 * callback answered 5xx or 429 or not reached. Other callback answers (2xx-4xx) end the call.
 *
 * Callbacks go only to the hosts of the allow-list (loopback and --callback-allow; the rules in
 * callback.c), checked at enqueue (400) and again before each attempt; a name is resolved once
 * per attempt and curl pinned to those addresses (CURLOPT_RESOLVE), so DNS cannot move it
 * between the check and the connect; no redirects, no proxy, bounded time.
 */
#include "gateway/gateway.h"

#include "common/common.h"
#include "common/http.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define CALLBACK_TIMEOUT_MS 10000
#define BACKOFF_FIRST_MS    500
#define BACKOFF_MAX_MS      60000
#define LOOPBACK_ALLOW      "127.0.0.0/8,::1,localhost"

static const struct http_header internal_hdr[] = {{"X-OpenFaaS-Internal", "gateway"}};

struct async {
    struct gateway *g;
    struct queue *q;
    struct callback_allow allow;
    pthread_mutex_t mu; /* the queue and the counters */
    pthread_cond_t wake;
    bool stop;
    pthread_t workers[ASYNC_MAX_WORKERS];
    int nworkers;
    uint64_t enqueued, refused_full, refused_callback, runs, run_retries, delivered,
        callback_retries, callback_failures;
};

/* ---- enqueue: POST /async-function/NAME[.NS][/path] ---- */

/* The headers worth keeping, as "Name: value" lines: all but Authorization (the gateway's own
 * credentials are never written to the queue). */
static char *headers_text(struct curl_slist *list)
{
    struct buf b = {0};
    for (struct curl_slist *l = list; l; l = l->next)
        if (strncasecmp(l->data, "authorization:", 14) != 0)
            buf_printf(&b, "%s%s", b.len ? "\n" : "", l->data);
    buf_printf(&b, "%s", "");
    if (b.failed) {
        buf_free(&b);
        return NULL;
    }
    return b.data;
}

static int reply_refusal(struct http_request *rq, unsigned status, const char *err)
{
    const struct http_header h[] = {internal_hdr[0], {"Retry-After", "5"}};
    return http_reply_error(rq->conn, status, err, h, status == 429 ? 2 : 1);
}

static bool function_exists(struct gateway *g, const char *name)
{
    pthread_mutex_lock(&g->lock);
    bool ok = registry_find(g, name) != NULL;
    pthread_mutex_unlock(&g->lock);
    return ok;
}

int route_async(struct gateway *g, struct http_request *rq, const char *arg)
{
    struct async *a = g->async;
    char name[GW_NAME_MAX], err[512];
    const char *rest;
    struct callback_target t;
    int status = invoke_target(arg, name, &rest, err, sizeof err);
    if (status)
        return reply_refusal(rq, (unsigned)status, err);
    if (!function_exists(g, name)) {
        snprintf(err, sizeof err, "function %s not found", name);
        return reply_refusal(rq, 404, err);
    }
    const char *callback = http_request_header(rq, "X-Callback-Url");
    if (callback && callback_check(&a->allow, callback, &t, err, sizeof err)) {
        pthread_mutex_lock(&a->mu);
        a->refused_callback++;
        pthread_mutex_unlock(&a->mu);
        return reply_refusal(rq, 400, err);
    }
    struct queue_call c = {.body = (uint8_t *)rq->body,
                           .body_len = rq->body_len,
                           .callback = (char *)callback,
                           .method = (char *)rq->method,
                           .enqueued_ms = wall_ms()};
    struct buf path = {0};
    struct curl_slist *hdrs = invoke_headers(rq, c.call_id);
    invoke_path(rq, rest, &path);
    snprintf(c.function, sizeof c.function, "%s", name);
    c.headers = headers_text(hdrs);
    c.path = path.data;
    curl_slist_free_all(hdrs);
    int rc =
        c.headers && c.path && !path.failed ? 0 : seterr(err, sizeof err, -ENOMEM, "out of memory");
    if (rc == 0) {
        pthread_mutex_lock(&a->mu);
        rc = queue_put(a->q, &c, err, sizeof err);
        if (rc == 0)
            a->enqueued++;
        else if (rc == -ENOSPC)
            a->refused_full++;
        pthread_cond_signal(&a->wake);
        pthread_mutex_unlock(&a->mu);
    }
    free(c.headers);
    buf_free(&path);
    if (rc)
        return reply_refusal(rq, rc == -ENOSPC ? 429 : rc == -E2BIG ? 413 : 500, err);
    const struct http_header h[] = {internal_hdr[0], {"X-Call-Id", c.call_id}};
    return http_reply(rq->conn, 202, "text/plain", "", 0, h, 2);
}

/* ---- running a call ---- */

static struct curl_slist *lines_to_list(const char *text, struct curl_slist *list)
{
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        char *line = strndup(p, n);
        struct curl_slist *l = line && n ? curl_slist_append(list, line) : list;
        if (l)
            list = l;
        free(line);
        p += n + (nl ? 1 : 0);
    }
    return list;
}

static int64_t backoff_ms(int attempts)
{
    int64_t d = BACKOFF_FIRST_MS;
    for (int i = 0; i < attempts && d < BACKOFF_MAX_MS; i++)
        d *= 2;
    return d < BACKOFF_MAX_MS ? d : BACKOFF_MAX_MS;
}

static bool is_own_header(const char *line)
{
    static const char *const own[] = {"x-call-id:", "x-function-status:", "x-function-name:",
                                      "x-duration-seconds:", "content-length:"};
    for (size_t i = 0; i < ARRAY_LEN(own); i++)
        if (strncasecmp(line, own[i], strlen(own[i])) == 0)
            return true;
    return false;
}

/* The result a callback carries: the function's reply, or the gateway's own error. */
static void take_result(struct queue_call *c, int status, struct proxy_resp *rs, const char *err)
{
    struct buf h = {0};
    c->status = status;
    if (rs->status) {
        if (rs->content_type[0])
            buf_printf(&h, "Content-Type: %s", rs->content_type);
        for (struct curl_slist *l = rs->headers; l; l = l->next)
            if (!is_own_header(l->data))
                buf_printf(&h, "%s%s", h.len ? "\n" : "", l->data);
        c->result = (uint8_t *)rs->body.data;
        c->result_len = rs->body.len;
        rs->body = (struct buf){0};
    } else {
        json_t *j = json_pack("{s:s}", "error", err);
        char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        buf_printf(&h, "Content-Type: application/json");
        c->result = (uint8_t *)s;
        c->result_len = s ? strlen(s) : 0;
    }
    buf_printf(&h, "%s", "");
    c->result_headers = h.data;
    c->has_result = true;
}

static bool gateway_stopping(struct gateway *g)
{
    pthread_mutex_lock(&g->lock);
    bool s = g->stopping;
    pthread_mutex_unlock(&g->lock);
    return s;
}

static void run_call(struct async *a, struct queue_call *c)
{
    struct gateway *g = a->g;
    char err[512] = "";
    struct proxy_resp rs;
    struct curl_slist *hdrs = lines_to_list(c->headers, NULL);
    struct proxy_req prq = {.method = c->method,
                            .path_query = c->path,
                            .body = (const char *)c->body,
                            .body_len = c->body_len,
                            .headers = hdrs};
    int64_t t0 = now_ns();
    size_t max_reply = g->max_body < QUEUE_BLOB_MAX ? g->max_body : QUEUE_BLOB_MAX;
    int status = invoke_run(g, c->function, &prq, &rs, max_reply, err, sizeof err);
    c->duration_s = (double)(now_ns() - t0) / 1e9;
    curl_slist_free_all(hdrs);
    bool placed = rs.status != 0; /* an instance answered */
    bool retry = !placed && (status == 502 || status == 503 || status == 504);
    if (!placed)
        log_warn("async call %s to %s: %d %s", c->call_id, c->function, status, err);
    bool stopping = gateway_stopping(g);
    pthread_mutex_lock(&a->mu);
    if (retry && stopping) {
        queue_release(a->q, c->row); /* run again after the restart */
    } else if (retry && c->attempts < g->async_retries) {
        a->run_retries++;
        queue_retry(a->q, c->row, c->attempts + 1, wall_ms() + backoff_ms(c->attempts));
    } else if (!c->callback) {
        a->runs++;
        queue_done(a->q, c);
    } else {
        take_result(c, status, &rs, err);
        if (queue_set_result(a->q, c, wall_ms()) == 0) {
            a->runs++;
            pthread_cond_signal(&a->wake);
        } else if (c->attempts < g->async_retries) {
            log_warn("async call %s: cannot store its result; it runs again", c->call_id);
            a->run_retries++;
            queue_retry(a->q, c->row, c->attempts + 1, wall_ms() + backoff_ms(c->attempts));
        } else {
            log_warn("async call %s: cannot store its result; given up", c->call_id);
            a->callback_failures++;
            c->result_len = 0; /* never counted in the queue's bytes */
            free(c->result_headers);
            c->result_headers = NULL;
            queue_done(a->q, c);
        }
    }
    pthread_mutex_unlock(&a->mu);
    proxy_resp_free(&rs);
}

/* ---- calling back ---- */

static size_t discard(char *data, size_t size, size_t n, void *user)
{
    (void)data;
    (void)user;
    return size * n;
}

/* CURLOPT_RESOLVE "host:port:addr[,addr...]" for a name: resolved here, once per attempt, so
 * curl connects to the addresses looked up now and never asks DNS itself; an IP literal needs
 * none. */
static int pin_target(const struct callback_target *t, struct curl_slist **pin, char *err,
                      size_t errlen)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    struct buf line = {0};
    if (t->literal)
        return 0;
    int e = getaddrinfo(t->host, NULL, &hints, &res);
    if (e || !res)
        return seterr(err, errlen, -EHOSTUNREACH, "cannot resolve %s: %s", t->host,
                      gai_strerror(e));
    buf_printf(&line, "%s:%ld:", t->host, t->port);
    int n = 0;
    for (struct addrinfo *ai = res; ai && n < 8; ai = ai->ai_next) {
        char addr[INET6_ADDRSTRLEN];
        const void *src = ai->ai_family == AF_INET6
                              ? (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr
                              : (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr;
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            !inet_ntop(ai->ai_family, src, addr, sizeof addr))
            continue;
        buf_printf(&line, ai->ai_family == AF_INET6 ? "%s[%s]" : "%s%s", n ? "," : "", addr);
        n++;
    }
    freeaddrinfo(res);
    *pin = n && !line.failed ? curl_slist_append(NULL, line.data) : NULL;
    buf_free(&line);
    return *pin ? 0 : seterr(err, errlen, -EHOSTUNREACH, "cannot resolve %s", t->host);
}

/* 0 delivered (or answered with a final refusal: *final_code), 1 to retry, <0 never deliverable. */
static int post_callback(struct async *a, const struct queue_call *c, long *code, char *err,
                         size_t errlen)
{
    struct callback_target t;
    struct curl_slist *pin = NULL, *hdrs = NULL;
    char line[256];
    *code = 0;
    int rc = callback_check(&a->allow, c->callback, &t, err, errlen);
    if (rc == 0)
        rc = pin_target(&t, &pin, err, errlen) == 0 ? 0 : 1;
    if (rc)
        return rc < 0 ? rc : 1;
    hdrs = lines_to_list(c->result_headers, NULL);
    snprintf(line, sizeof line, "X-Call-Id: %s", c->call_id);
    hdrs = curl_slist_append(hdrs, line);
    snprintf(line, sizeof line, "X-Function-Status: %d", c->status);
    hdrs = hdrs ? curl_slist_append(hdrs, line) : NULL;
    snprintf(line, sizeof line, "X-Function-Name: %s", c->function);
    hdrs = hdrs ? curl_slist_append(hdrs, line) : NULL;
    snprintf(line, sizeof line, "X-Duration-Seconds: %.6f", c->duration_s);
    hdrs = hdrs ? curl_slist_append(hdrs, line) : NULL;
    hdrs = hdrs ? curl_slist_append(hdrs, "Expect:") : NULL;
    CURL *h = hdrs ? curl_easy_init() : NULL;
    if (!h) {
        curl_slist_free_all(hdrs);
        curl_slist_free_all(pin);
        seterr(err, errlen, 0, "out of memory");
        return 1;
    }
    curl_easy_setopt(h, CURLOPT_URL, c->callback);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_RESOLVE, pin);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)CALLBACK_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->result_len ? (const char *)c->result : "");
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->result_len);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    CURLcode cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, code);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    curl_slist_free_all(pin);
    if (cc != CURLE_OK) {
        seterr(err, errlen, 0, "%s", curl_easy_strerror(cc));
        return 1;
    }
    if (*code >= 500 || *code == 429) {
        seterr(err, errlen, 0, "answered %ld", *code);
        return 1;
    }
    return 0;
}

static void deliver_call(struct async *a, struct queue_call *c)
{
    char err[512] = "";
    long code;
    int rc = post_callback(a, c, &code, err, sizeof err);
    bool stopping = gateway_stopping(a->g);
    pthread_mutex_lock(&a->mu);
    if (rc == 0) {
        a->delivered++;
        queue_done(a->q, c);
    } else if (rc == 1 && stopping) {
        queue_release(a->q, c->row);
    } else if (rc == 1 && c->attempts < a->g->async_retries) {
        a->callback_retries++;
        queue_retry(a->q, c->row, c->attempts + 1, wall_ms() + backoff_ms(c->attempts));
    } else {
        a->callback_failures++;
        log_warn("async call %s: callback to %s given up after %d attempts: %s", c->call_id,
                 c->callback, c->attempts + 1, err);
        queue_done(a->q, c);
    }
    pthread_mutex_unlock(&a->mu);
}

/* ---- the workers ---- */

static void *worker_main(void *arg)
{
    struct async *a = arg;
    pthread_mutex_lock(&a->mu);
    while (!a->stop) {
        struct queue_call c;
        int64_t next;
        int rc = queue_claim(a->q, wall_ms(), &c, &next);
        if (rc == 1) {
            pthread_mutex_unlock(&a->mu);
            if (c.has_result)
                deliver_call(a, &c);
            else
                run_call(a, &c);
            queue_call_free(&c);
            pthread_mutex_lock(&a->mu);
            continue;
        }
        int64_t wait = next < 0 ? 1000 : next - wall_ms();
        wait = wait < 5 ? 5 : wait > 1000 ? 1000 : wait;
        struct timespec ts = mono_timespec((now_ms() + wait) * 1000000);
        pthread_cond_timedwait(&a->wake, &a->mu, &ts);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

int async_start(struct gateway *g, char *err, size_t errlen)
{
    struct async *a = calloc(1, sizeof *a);
    if (!a)
        return seterr(err, errlen, -ENOMEM, "out of memory");
    a->g = g;
    int rc = callback_allow_parse(&a->allow, LOOPBACK_ALLOW, err, errlen);
    if (!rc)
        rc = callback_allow_parse(&a->allow, g->callback_allow, err, errlen);
    if (!rc)
        rc = queue_open(g->state_fd, g->state, g->async_max_queue, g->async_max_bytes, &a->q, err,
                        errlen);
    if (rc) {
        free(a);
        return rc;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a->wake, &ca);
    pthread_mutex_init(&a->mu, NULL);
    g->async = a;
    struct queue_stats qs;
    queue_stats(a->q, &qs);
    if (qs.calls)
        log_info("async queue: %llu call(s) from before the restart", (unsigned long long)qs.calls);
    for (int i = 0; i < g->async_workers && i < ASYNC_MAX_WORKERS; i++) {
        if (pthread_create(&a->workers[i], NULL, worker_main, a) != 0)
            return seterr(err, errlen, -EAGAIN, "cannot start the async workers");
        a->nworkers++;
    }
    return 0;
}

void async_stop(struct gateway *g)
{
    struct async *a = g->async;
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    a->stop = true;
    pthread_cond_broadcast(&a->wake);
    pthread_mutex_unlock(&a->mu);
}

void async_join(struct gateway *g)
{
    struct async *a = g->async;
    if (!a)
        return;
    async_stop(g);
    for (int i = 0; i < a->nworkers; i++)
        pthread_join(a->workers[i], NULL);
    queue_close(a->q);
    pthread_cond_destroy(&a->wake);
    pthread_mutex_destroy(&a->mu);
    free(a);
    g->async = NULL;
}

/* ---- /metrics ---- */

void async_metrics(struct gateway *g, struct buf *b)
{
    struct async *a = g->async;
    if (!a)
        return;
    struct queue_stats qs;
    pthread_mutex_lock(&a->mu);
    queue_stats(a->q, &qs);
    const struct {
        const char *name, *type, *help;
        double v;
    } m[] = {
        {"gateway_async_queue_length", "gauge",
         "Accepted async calls not finished (queued, running or calling back).", (double)qs.calls},
        {"gateway_async_queue_running", "gauge", "Async calls a worker holds now.",
         (double)qs.running},
        {"gateway_async_queue_bytes", "gauge", "Bytes of the queued calls and their results.",
         (double)qs.bytes},
        {"gateway_async_queue_oldest_age_seconds", "gauge",
         "Age of the oldest unfinished async call (0 when none).",
         qs.oldest_ms < 0 ? 0 : (double)(wall_ms() - qs.oldest_ms) / 1000.0},
        {"gateway_async_enqueued_total", "counter", "Async calls accepted (202).",
         (double)a->enqueued},
        {"gateway_async_rejected_full_total", "counter", "Async calls refused: queue full (429).",
         (double)a->refused_full},
        {"gateway_async_rejected_callback_total", "counter",
         "Async calls refused: callback URL not allowed (400).", (double)a->refused_callback},
        {"gateway_async_invocations_total", "counter", "Async calls run to a result.",
         (double)a->runs},
        {"gateway_async_invocation_retries_total", "counter",
         "Async runs retried (no instance could take them).", (double)a->run_retries},
        {"gateway_async_callbacks_delivered_total", "counter",
         "Callbacks answered by the receiver.", (double)a->delivered},
        {"gateway_async_callback_retries_total", "counter",
         "Callbacks retried (5xx, 429 or not reached).", (double)a->callback_retries},
        {"gateway_async_callback_failures_total", "counter",
         "Callbacks given up (retries exhausted, refused).", (double)a->callback_failures},
    };
    pthread_mutex_unlock(&a->mu);
    for (size_t i = 0; i < ARRAY_LEN(m); i++) {
        prom_header(b, m[i].name, m[i].type, m[i].help);
        prom_sample(b, m[i].name, NULL, NULL, m[i].v);
    }
}
