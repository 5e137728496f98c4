/*
 * The instance: one model, one session, one worker thread that owns the session, and the HTTP
 * routes of the of-watchdog contract.
 *
 * Requests decode their body on their own connection thread, queue a job and wait for it until
 * their deadline (exec_timeout, shortened by X-Timeout). The worker runs jobs one at a time, skips
 * jobs whose requester gave up, and, after idle_release without a job, gives the session's arena
 * pages back to the kernel. All shared state is under one mutex.
 */
#include "fn/fn.h"
#include "fn/shapes.h"
#include "fn/source.h"
#include "common/http.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <malloc.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct job {
    struct job *next;
    int refs;       /* the requester and the queue/worker */
    bool abandoned; /* the requester timed out */
    bool done;
    /* in */
    struct engine_tensor_set json_in; /* input=json */
    struct fn_tensor tensor_in;       /* input=image|raw */
    struct engine_tensor single;      /* points into tensor_in */
    /* out */
    unsigned status;
    char *body; /* malloc'd reply body (JSON) */
};

struct fn_instance {
    const struct fn_config *cfg;
    struct fn_source *source;
    struct engine_model *model;
    struct engine_session *session;
    struct fn_shapes *shapes;           /* instead of model and session: a plan per request shape */
    struct engine_tensor_info in_info;  /* input 0 */
    struct engine_tensor_info out_info; /* output 0 */
    int n_outputs;
    struct http_server *http;

    pthread_mutex_t lock;
    pthread_cond_t work; /* worker: a job arrived or stop */
    pthread_cond_t done; /* requesters: a job finished; drain: inflight changed */
    pthread_t worker;
    bool worker_started;
    struct job *head, *tail;
    int inflight;
    bool ready, draining, stop, released;
    bool warmed; /* the warm-up run is done (a template with threads > 1 leaves it to the fork) */
    int64_t last_run_ns;
};

static const struct http_header error_headers[] = {{"X-OpenFaaS-Internal", "shmfaas-fn"}};

/* CLOCK_MONOTONIC time `ns` from now, for pthread_cond_timedwait on our conds. */
static struct timespec deadline_in(int64_t ns)
{
    return mono_timespec(now_ns() + ns);
}

/* ---- jobs ---- */

static void job_unref(struct job *j)
{
    if (--j->refs > 0)
        return;
    engine_tensor_set_free(&j->json_in);
    fn_tensor_free(&j->tensor_in);
    free(j->body);
    free(j);
}

/* {"error": msg}, malloc'd; a message that is not valid UTF-8 is replaced, not sent broken. */
static char *error_json(const char *msg)
{
    json_t *o = json_pack("{s:s}", "error", msg);
    if (!o)
        o = json_pack("{s:s}", "error", "request failed (message not valid UTF-8)");
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return text;
}

static void job_fail(struct job *j, unsigned status, const char *msg)
{
    j->status = status;
    free(j->body);
    j->body = error_json(msg);
}

/* ---- the worker ---- */

/* The side of a square image input, [1,3,S,S] or [1,S,S,3]: what output=boxes scales by. */
static int model_side(const struct fn_instance *in)
{
    const struct engine_shape *s = &in->in_info.shape;
    if (s->rank != 4)
        return 0;
    int64_t side = s->dims[1] == 3 ? s->dims[2] : s->dims[1];
    return side > 0 && side <= 8192 ? (int)side : 0;
}

static int encode_output(struct fn_instance *in, struct engine_tensor *outs, struct job *j)
{
    char err[512];
    if (in->cfg->codec.output == FN_OUT_JSON) {
        j->body = engine_tensors_to_json(outs, in->n_outputs, "outputs");
        if (!j->body) {
            job_fail(j, 500, "output=json: out of memory");
            return -ENOMEM;
        }
        j->status = 200;
        return 0;
    }
    int rc =
        in->cfg->codec.output == FN_OUT_BOXES
            ? fn_codec_boxes_outputs(outs, in->n_outputs, model_side(in), &in->cfg->codec.boxes,
                                     &j->tensor_in.geom, &j->body, err, sizeof(err))
            : fn_codec_topk(outs[0].data, outs[0].nbytes / sizeof(float), &in->cfg->codec, &j->body,
                            err, sizeof(err));
    if (rc < 0) {
        job_fail(j, 500, err);
        return rc;
    }
    j->status = 200;
    return 0;
}

static void run_job(struct fn_instance *in, struct job *j)
{
    struct engine_tensor outs[64];
    char err[512];
    const struct engine_tensor *ins = j->json_in.n ? j->json_in.t : &j->single;
    int n_ins = j->json_in.n ? j->json_in.n : 1;
    int rc = in->shapes ? fn_shapes_run(in->shapes, ins, n_ins, outs, (int)ARRAY_LEN(outs),
                                        &in->n_outputs, err, sizeof(err))
                        : engine_session_run(in->session, ins, n_ins, outs, in->n_outputs, err,
                                             sizeof(err));
    if (rc < 0) {
        /* The engine refuses inputs that do not match the plan with -EINVAL: the caller's fault;
         * -EAGAIN: too many new input shapes this minute (shapes.h). */
        job_fail(j, rc == -EINVAL ? 400 : rc == -EAGAIN ? 429 : 500, err);
        return;
    }
    encode_output(in, outs, j);
}

static void release_memory(struct fn_instance *in)
{
    if (in->shapes)
        fn_shapes_release_memory(in->shapes);
    else
        engine_session_release_memory(in->session);
}

static int64_t idle_deadline_ns(const struct fn_instance *in)
{
    return in->last_run_ns + in->cfg->idle_release_ms * 1000000;
}

/* Waits for a job; gives the arena back once idle_release has passed without one. */
static void wait_for_work(struct fn_instance *in)
{
    if (in->cfg->idle_release_ms <= 0 || in->released) {
        pthread_cond_wait(&in->work, &in->lock);
        return;
    }
    int64_t left = idle_deadline_ns(in) - now_ns();
    if (left <= 0) {
        release_memory(in);
        /* Freed request and reply buffers stay in malloc's arenas otherwise: a few MiB per
         * instance that an idle instance should not hold. */
        malloc_trim(0);
        in->released = true;
        log_debug("idle for %" PRId64 " ms: arena released", in->cfg->idle_release_ms);
        return;
    }
    struct timespec ts = deadline_in(left);
    pthread_cond_timedwait(&in->work, &in->lock, &ts);
}

static void *worker_main(void *arg)
{
    struct fn_instance *in = arg;
    pthread_mutex_lock(&in->lock);
    for (;;) {
        if (!in->head && in->stop)
            break;
        if (!in->head) {
            wait_for_work(in);
            continue;
        }
        struct job *j = in->head;
        in->head = j->next;
        if (!in->head)
            in->tail = NULL;
        if (!j->abandoned) {
            pthread_mutex_unlock(&in->lock);
            run_job(in, j);
            pthread_mutex_lock(&in->lock);
            in->last_run_ns = now_ns();
            in->released = false;
        }
        j->done = true;
        job_unref(j);
        pthread_cond_broadcast(&in->done);
    }
    pthread_mutex_unlock(&in->lock);
    return NULL;
}

/* ---- requests ---- */

/* Names the model's inputs, for an error about an unknown one. */
static int check_input_names(struct fn_instance *in, const struct engine_tensor_set *set, char *err,
                             size_t errlen)
{
    int n = engine_model_n_inputs(in->model);
    if (set->n == 0)
        return seterr(err, errlen, -EINVAL, "the request has no inputs; the model takes %d", n);
    for (int i = 0; i < set->n; i++) {
        bool known = false;
        struct engine_tensor_info ti;
        for (int k = 0; k < n && !known; k++)
            known = engine_model_input(in->model, k, &ti) == 0 && set->t[i].name &&
                    strcmp(set->t[i].name, ti.name) == 0;
        if (known)
            continue;
        char names[256] = "";
        for (int k = 0; k < n && engine_model_input(in->model, k, &ti) == 0; k++)
            snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s", k ? ", " : "",
                     ti.name);
        return seterr(err, errlen, -EINVAL, "unknown input '%s'; the model's inputs are: %s",
                      set->t[i].name ? set->t[i].name : "", names);
    }
    return 0;
}

static int decode_input(struct fn_instance *in, const struct http_request *req, struct job *j,
                        char *err, size_t errlen)
{
    const struct fn_codec_config *c = &in->cfg->codec;
    int rc;
    switch (c->input) {
    case FN_IN_JSON:
        rc = engine_tensors_from_json((const char *)req->body, req->body_len, "inputs", &j->json_in,
                                      err, errlen);
        if (rc < 0 || in->shapes) /* per request shape: the plan checks the names */
            return rc;
        return check_input_names(in, &j->json_in, err, errlen);
    case FN_IN_IMAGE:
        rc = fn_codec_image(req->body, req->body_len, &c->image, &j->tensor_in, err, errlen);
        break;
    case FN_IN_RAW:
        rc = fn_codec_raw(req->body, req->body_len, &in->in_info.shape, &j->tensor_in, err, errlen);
        break;
    default:
        return seterr(err, errlen, -EINVAL, "unknown input codec");
    }
    if (rc < 0)
        return rc;
    j->single = (struct engine_tensor){.name = in->in_info.name,
                                       .dtype = ENGINE_F32,
                                       .shape = j->tensor_in.shape,
                                       .data = j->tensor_in.data,
                                       .nbytes = j->tensor_in.nbytes};
    return 0;
}

static int64_t request_timeout_ms(const struct fn_instance *in, const struct http_request *req)
{
    int64_t t = in->cfg->exec_timeout_ms, h = 0;
    const char *x = http_request_header(req, "X-Timeout");
    if (x && parse_duration_ms(x, &h) == 0 && h > 0 && (t <= 0 || h < t))
        t = h;
    return t;
}

/* Queues j and waits until it is done or the deadline passes; true when done. */
static bool run_until(struct fn_instance *in, struct job *j, int64_t timeout_ms)
{
    struct timespec ts = deadline_in(timeout_ms * 1000000);
    pthread_mutex_lock(&in->lock);
    j->refs = 2;
    if (in->tail)
        in->tail->next = j;
    else
        in->head = j;
    in->tail = j;
    pthread_cond_signal(&in->work);
    int rc = 0;
    while (!j->done && rc != ETIMEDOUT)
        rc = timeout_ms > 0 ? pthread_cond_timedwait(&in->done, &in->lock, &ts)
                            : pthread_cond_wait(&in->done, &in->lock);
    bool done = j->done;
    j->abandoned = !done;
    pthread_mutex_unlock(&in->lock);
    return done;
}

static int reply(const struct http_request *req, unsigned status, char *body, int64_t t0)
{
    char dur[32];
    snprintf(dur, sizeof(dur), "%.6f", (double)(now_ns() - t0) / 1e9);
    struct http_header hdrs[] = {{"X-Duration-Seconds", dur}, error_headers[0]};
    int n = status < 400 ? 1 : 2;
    log_info("%s %s %u %ss", req->method, req->url, status, dur); /* off by default (warn) */
    if (!body)
        return http_reply_error(req->conn, 500, "out of memory", hdrs, n);
    return http_reply_take(req->conn, status, "application/json", body, strlen(body), hdrs, n);
}

static int reply_error(const struct http_request *req, unsigned status, const char *msg, int64_t t0)
{
    return reply(req, status, error_json(msg), t0);
}

/* Admission: max_inflight (0 = unlimited) and readiness. Returns 0 or the status to reply. */
static unsigned admit(struct fn_instance *in)
{
    unsigned status = 0;
    pthread_mutex_lock(&in->lock);
    if (in->draining || !in->ready)
        status = 503;
    else if (in->cfg->max_inflight > 0 && in->inflight >= in->cfg->max_inflight)
        status = 429;
    else
        in->inflight++;
    pthread_mutex_unlock(&in->lock);
    return status;
}

/* The request is done with its job (NULL: none) and leaves the in-flight count. */
static void leave(struct fn_instance *in, struct job *j)
{
    pthread_mutex_lock(&in->lock);
    if (j)
        job_unref(j);
    in->inflight--;
    pthread_cond_broadcast(&in->done);
    pthread_mutex_unlock(&in->lock);
}

static int serve_inference(struct fn_instance *in, struct http_request *req, int64_t t0)
{
    unsigned refused = admit(in);
    if (refused)
        return reply_error(req, refused,
                           refused == 429 ? "busy: max_inflight requests already in flight"
                                          : "not ready: the model is not loaded yet or the "
                                            "instance is shutting down",
                           t0);
    char err[512];
    struct job *j = calloc(1, sizeof(*j));
    int rc = j ? decode_input(in, req, j, err, sizeof(err)) : -ENOMEM;
    if (rc < 0) {
        if (j)
            j->refs = 1;
        leave(in, j);
        return reply_error(req, rc == -ENOMEM ? 500 : 400, j ? err : "out of memory", t0);
    }
    int64_t timeout = request_timeout_ms(in, req);
    if (!run_until(in, j, timeout)) {
        leave(in, j);
        snprintf(err, sizeof(err), "inference took longer than %" PRId64 " ms (exec_timeout)",
                 timeout);
        return reply_error(req, 504, err, t0);
    }
    unsigned status = j->status;
    char *body = j->body;
    j->body = NULL;
    leave(in, j);
    return reply(req, status, body, t0);
}

static int serve_probe(struct fn_instance *in, struct http_request *req, int64_t t0)
{
    bool health = strcmp(req->url, "/_/health") == 0;
    if (!health && strcmp(req->url, "/_/ready") != 0)
        return reply_error(req, 404, "unknown path: probes are /_/health and /_/ready", t0);
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0)
        return reply_error(req, 405, "probes accept GET only", t0);
    pthread_mutex_lock(&in->lock);
    bool serving = in->ready && !in->draining, draining = in->draining;
    bool full = in->cfg->max_inflight > 0 && in->inflight >= in->cfg->max_inflight;
    pthread_mutex_unlock(&in->lock);
    /* Liveness (/_/health) is 200 from the moment HTTP is served, while the model is still being
     * attached, compiled by the store or warmed up: a long first compile must not make a platform's
     * liveness probe (faas-netes: 3 failures 2 s apart) restart the instance in a loop. Readiness
     * (/_/ready) is 200 only once the model is attached and warm. */
    if (health && !draining)
        return reply(req, 200, strdup("{\"status\":\"ok\"}"), t0);
    if (!serving)
        return reply_error(req, 503, draining ? "shutting down" : "not ready", t0);
    if (full)
        return reply_error(req, 429, "busy: max_inflight requests in flight", t0);
    return reply(req, 200, strdup("{\"status\":\"ok\"}"), t0);
}

static int on_request(struct http_request *req, void *user)
{
    struct fn_instance *in = user;
    int64_t t0 = now_ns();
    if (strncmp(req->url, "/_/", 3) == 0)
        return serve_probe(in, req, t0);
    if (strcmp(req->method, "POST") != 0 && strcmp(req->method, "PUT") != 0)
        return reply_error(req, 405, "send the input with POST", t0);
    return serve_inference(in, req, t0);
}

/* ---- startup ---- */

static int check_codecs(struct fn_instance *in, char *err, size_t errlen)
{
    const struct fn_codec_config *c = &in->cfg->codec;
    int n_in = engine_model_n_inputs(in->model);
    char shape[128];
    if (c->input != FN_IN_JSON) {
        if (n_in != 1 || in->in_info.dtype != ENGINE_F32)
            return seterr(err, errlen, -EINVAL,
                          "input=%s needs a model with one float32 input; this one has %d "
                          "input(s), the first %s",
                          c->input == FN_IN_IMAGE ? "image" : "raw", n_in,
                          engine_dtype_name(in->in_info.dtype));
        const int64_t *d = in->in_info.shape.dims;
        int64_t s = c->image.size, want[4] = {1, 3, s, s};
        if (c->image.nhwc)
            want[1] = s, want[3] = 3;
        if (c->input == FN_IN_IMAGE &&
            (in->in_info.shape.rank != 4 || memcmp(d, want, sizeof(want)) != 0))
            return seterr(err, errlen, -EINVAL,
                          "input=image makes [%lld,%lld,%lld,%lld] tensors but the model input %s "
                          "is %s; set image_size (and image_layout=nhwc for [1,S,S,3])",
                          (long long)want[0], (long long)want[1], (long long)want[2],
                          (long long)want[3], in->in_info.name,
                          engine_shape_str(&in->in_info.shape, shape, sizeof(shape)));
    }
    if (c->output == FN_OUT_TOPK && in->out_info.dtype != ENGINE_F32)
        return seterr(err, errlen, -EINVAL, "output=topk needs a float32 output; %s is %s",
                      in->out_info.name, engine_dtype_name(in->out_info.dtype));
    if (in->n_outputs > 64)
        return seterr(err, errlen, -EINVAL, "the model has %d outputs; at most 64 supported",
                      in->n_outputs);
    return 0;
}

/* One run on zeros so that page faults and primitive set-up are paid before readiness. */
static int warm_up(struct fn_instance *in, char *err, size_t errlen)
{
    int n = engine_model_n_inputs(in->model);
    struct engine_tensor ins[16], outs[64];
    if (n > 16)
        return seterr(err, errlen, -EINVAL, "the model has %d inputs; at most 16 supported", n);
    int rc = 0;
    for (int i = 0; i < n; i++) {
        struct engine_tensor_info ti;
        engine_model_input(in->model, i, &ti);
        size_t nbytes = (size_t)engine_shape_numel(&ti.shape) * engine_dtype_size(ti.dtype);
        ins[i] = (struct engine_tensor){.name = ti.name,
                                        .dtype = ti.dtype,
                                        .shape = ti.shape,
                                        .data = calloc(1, nbytes ? nbytes : 1),
                                        .nbytes = nbytes};
        if (!ins[i].data)
            rc = seterr(err, errlen, -ENOMEM, "warm-up: out of memory");
    }
    if (rc == 0)
        rc = engine_session_run(in->session, ins, n, outs, in->n_outputs, err, errlen);
    /* output=boxes checks its settings (anchors against the outputs) on the warm-up outputs, so a
     * mismatch stops the instance at start instead of failing every request. */
    if (rc == 0 && in->cfg->codec.output == FN_OUT_BOXES) {
        char *json = NULL;
        rc = fn_codec_boxes_outputs(outs, in->n_outputs, model_side(in), &in->cfg->codec.boxes,
                                    NULL, &json, err, errlen);
        free(json);
    }
    for (int i = 0; i < n; i++)
        free(ins[i].data);
    return rc;
}

/* Milliseconds each startup step took, for the ready log line. */
struct startup {
    double source_ms, open_ms, session_ms, warmup_ms;
    double identity_ms, listen_ms; /* a forked instance: its identity, its HTTP server */
};

/* The model from its source (a template's: mapped without a lease), opened, its session, the
 * codecs checked and, with warm, one warm-up run. */
static int load_model(struct fn_instance *in, struct startup *st, bool template, bool warm,
                      char *err, size_t errlen)
{
    int64_t t = now_ns();
    int rc = template ? fn_source_open_template(in->cfg, &in->source, err, errlen)
                      : fn_source_open(in->cfg, &in->source, err, errlen);
    st->source_ms = (double)(now_ns() - t) / 1e6;
    if (rc < 0 && fn_shapes_needed(in->cfg, err)) {
        fn_source_close(in->source);
        in->source = NULL;
        log_info("model %s: its input shapes vary per request: a plan per request shape",
                 in->cfg->private_path ? in->cfg->private_path : in->cfg->model_ref);
        in->warmed = true; /* nothing to warm before the first request's shape is known */
        return fn_shapes_open(in->cfg, &in->shapes, err, errlen);
    }
    t = now_ns();
    if (rc == 0) {
        size_t wlen;
        const void *w = fn_source_weights(in->source, &wlen);
        rc = engine_model_open_parts(fn_source_image(in->source), fn_source_len(in->source), w,
                                     wlen, &in->model, err, errlen);
    }
    st->open_ms = (double)(now_ns() - t) / 1e6;
    t = now_ns();
    if (rc == 0)
        rc = engine_session_create(in->model, &in->session, err, errlen);
    st->session_ms = (double)(now_ns() - t) / 1e6;
    if (rc < 0)
        return rc;
    in->n_outputs = engine_model_n_outputs(in->model);
    engine_model_input(in->model, 0, &in->in_info);
    engine_model_output(in->model, 0, &in->out_info);
    rc = check_codecs(in, err, errlen);
    t = now_ns();
    if (rc == 0 && warm) {
        rc = warm_up(in, err, errlen);
        in->warmed = rc == 0;
    }
    st->warmup_ms = (double)(now_ns() - t) / 1e6;
    return rc;
}

static int start_http(struct fn_instance *in, char *err, size_t errlen)
{
    int64_t t = in->cfg->read_timeout_ms > in->cfg->write_timeout_ms ? in->cfg->read_timeout_ms
                                                                     : in->cfg->write_timeout_ms;
    struct http_server_opts o = {
        .listen = in->cfg->listen,
        .max_body = in->cfg->max_body,
        .conn_timeout_s = (unsigned)((t + 999) / 1000),
        .error_headers = error_headers,
        .n_error_headers = 1,
        .handler = on_request,
        .user = in,
    };
    return http_server_start(&o, &in->http, err, errlen);
}

static void instance_free(struct fn_instance *in)
{
    if (in->worker_started) {
        pthread_mutex_lock(&in->lock);
        in->stop = true;
        pthread_cond_signal(&in->work);
        pthread_mutex_unlock(&in->lock);
        pthread_join(in->worker, NULL);
    }
    http_server_stop(in->http);
    fn_shapes_close(in->shapes);
    engine_session_destroy(in->session);
    engine_model_close(in->model);
    fn_source_close(in->source);
    pthread_mutex_destroy(&in->lock);
    pthread_cond_destroy(&in->work);
    pthread_cond_destroy(&in->done);
    free(in);
}

static int init_sync(struct fn_instance *in)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_mutex_init(&in->lock, NULL);
    pthread_cond_init(&in->work, &attr);
    pthread_cond_init(&in->done, &attr);
    pthread_condattr_destroy(&attr);
    return 0;
}

static struct fn_instance *instance_alloc(const struct fn_config *c)
{
    struct fn_instance *in = calloc(1, sizeof(*in));
    if (!in)
        return NULL;
    in->cfg = c;
    init_sync(in);
    return in;
}

/* The model is loaded and warm, HTTP listening: start the worker, become ready, tell shmfaasd
 * (--ready-fd) and log how long each step took. On failure the caller frees in. */
static int instance_go(struct fn_instance *in, int64_t t0_ns, const struct startup *st, char *err,
                       size_t errlen)
{
    const struct fn_config *c = in->cfg;
    int rc = -pthread_create(&in->worker, NULL, worker_main, in);
    if (rc < 0)
        return seterr(err, errlen, rc, "worker thread: %s", strerror(-rc));
    in->worker_started = true;
    pthread_mutex_lock(&in->lock);
    in->last_run_ns = now_ns();
    in->ready = true;
    pthread_mutex_unlock(&in->lock);
    if (c->ready_fd >= 0) { /* pushed: no poll interval between ready and the first request */
        ssize_t n = write(c->ready_fd, "R", 1);
        if (n != 1)
            log_warn("--ready-fd %d: %s", c->ready_fd, strerror(errno));
        close(c->ready_fd);
    }
    char shapes[128];
    const char *kind = in->shapes ? fn_shapes_describe(in->shapes, shapes, sizeof(shapes))
                                  : fn_source_kind(in->source);
    size_t len = in->source ? fn_source_len(in->source) : 0;
    if (c->template_mode)
        log_info("ready in %.1f ms since the fork (identity %.1f ms, lease %.1f ms, listen %.1f "
                 "ms, warm-up %.1f ms): model %s (%s), %zu bytes of image, listening on %s",
                 (double)(now_ns() - t0_ns) / 1e6, st->identity_ms, st->source_ms, st->listen_ms,
                 st->warmup_ms, c->model_ref, kind, len, c->listen);
    else
        log_info("ready in %.1f ms since main() (%s %.1f ms, open %.1f ms, session %.1f ms, "
                 "warm-up %.1f ms): model %s, %zu bytes of image, listening on %s",
                 (double)(now_ns() - t0_ns) / 1e6, kind, st->source_ms, st->open_ms,
                 st->session_ms, st->warmup_ms, c->private_path ? c->private_path : c->model_ref,
                 len, c->listen);
    return 0;
}

int fn_instance_start(const struct fn_config *c, int64_t t0_ns, struct fn_instance **out, char *err,
                      size_t errlen)
{
    struct fn_instance *in = instance_alloc(c);
    if (!in)
        return seterr(err, errlen, -ENOMEM, "out of memory");
    /* Listen first, so a platform polling /_/ready gets 503 rather than a refused connection. */
    struct startup st = {0};
    int rc = start_http(in, err, errlen);
    if (rc == 0)
        rc = load_model(in, &st, false, true, err, errlen);
    if (rc == 0)
        rc = instance_go(in, t0_ns, &st, err, errlen);
    if (rc < 0) {
        instance_free(in);
        return rc;
    }
    *out = in;
    return 0;
}

/* libgomp does not survive fork once a parallel region ran with more than one thread (the
 * child waits for pool threads it does not have), so a template for threads > 1 never runs the
 * session: its instances run the warm-up themselves. With one thread every parallel region runs
 * inline in the calling thread and the warm-up is the template's. */
int fn_instance_prepare(const struct fn_config *c, struct fn_instance **out, char *err,
                        size_t errlen)
{
    struct fn_instance *in = instance_alloc(c);
    if (!in)
        return seterr(err, errlen, -ENOMEM, "out of memory");
    struct startup st = {0};
    int rc = load_model(in, &st, true, c->threads == 1, err, errlen);
    if (rc < 0) {
        instance_free(in);
        return rc;
    }
    /* The arena's pages are the instance's own: a fork would copy each on first write. */
    release_memory(in);
    in->released = true;
    log_info("template: model %s prepared (attach %.1f ms, open %.1f ms, session %.1f ms, "
             "warm-up %.1f ms%s)",
             c->model_ref, st.source_ms, st.open_ms, st.session_ms, st.warmup_ms,
             in->warmed ? "" : ", left to each instance: threads > 1");
    *out = in;
    return 0;
}

int fn_instance_start_forked(struct fn_instance *in, int64_t t0_ns, char *err, size_t errlen)
{
    struct startup st = {0};
    int64_t t = now_ns();
    st.identity_ms = (double)(t - t0_ns) / 1e6;
    int rc = in->shapes ? 0 : fn_source_take_lease(in->source, in->cfg, err, errlen);
    st.source_ms = (double)(now_ns() - t) / 1e6;
    t = now_ns();
    if (rc == 0)
        rc = start_http(in, err, errlen);
    st.listen_ms = (double)(now_ns() - t) / 1e6;
    t = now_ns();
    if (rc == 0 && !in->warmed) {
        rc = warm_up(in, err, errlen);
        in->warmed = rc == 0;
    }
    st.warmup_ms = (double)(now_ns() - t) / 1e6;
    if (rc == 0)
        rc = instance_go(in, t0_ns, &st, err, errlen);
    return rc;
}

int fn_instance_image_fd(const struct fn_instance *in)
{
    return in->source ? fn_source_fd(in->source) : -1;
}

void fn_instance_free_prepared(struct fn_instance *in)
{
    instance_free(in);
}

void fn_instance_drain_and_stop(struct fn_instance *in)
{
    pthread_mutex_lock(&in->lock);
    in->draining = true;
    pthread_mutex_unlock(&in->lock);
    http_server_quiesce(in->http);
    struct timespec ts = deadline_in(in->cfg->write_timeout_ms * 1000000);
    pthread_mutex_lock(&in->lock);
    int rc = 0;
    while (in->inflight > 0 && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&in->done, &in->lock, &ts);
    if (in->inflight > 0)
        log_warn("%d request(s) still in flight after write_timeout; closing them", in->inflight);
    pthread_mutex_unlock(&in->lock);
    /* A handler that finished has only queued its reply; let it reach the client. */
    if (rc != ETIMEDOUT && http_server_wait_idle(in->http, in->cfg->write_timeout_ms) < 0)
        log_warn("replies still being sent after write_timeout; closing them");
    instance_free(in);
}
