/*
 * gateway.h — shmfaasd, the single-node OpenFaaS gateway + provider (DESIGN.md "Gateway/provider").
 *
 * Owns: function specs (parsed from OpenFaaS FunctionDeployment JSON, validated, persisted
 * atomically under the state directory), the instance processes of every function (one shmfaas-fn
 * each, running as its function's own uid, serving on a unix socket that shmfaasd binds in
 * <state>/run/<function>/ and passes as fd 3, with a pidfile in <state>/pids so a restarted daemon
 * reaps orphans it can prove are its own),
 * the autoscaler, the request path (hold → pick an instance → proxy over keep-alive unix-socket
 * HTTP), and metrics.
 *
 * Guarantees:
 *  - a spec that reaches the registry has passed spec_parse(): name, namespace, model ref,
 * quantities and scaling labels are valid; a rejected request changes nothing;
 *  - the autoscaler (autoscale_decide) is a pure function of its inputs and its small state struct;
 *  - an instance whose process died is never handed a request; a request that got no response byte
 *    from a dying instance is retried once on another one, otherwise it is answered 502;
 *  - the daemon never forks after starting threads except to exec shmfaas-fn / shmfaas-store at
 * once (the child only makes async-signal-safe calls before execve); instances forked by a
 * template are re-parented to it (PR_SET_CHILD_SUBREAPER) and waited for like the others;
 *  - every directory the daemon writes in (state, functions, logs, pids, run, run/<function>) is
 *    owned by its euid and writable by nobody else: no instance uid can plant a symlink, a pidfile
 *    or a socket where the daemon creates, truncates or follows one.
 */
#ifndef SHMFAAS_GATEWAY_H
#define SHMFAAS_GATEWAY_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/common.h"
#include "common/modelref.h"
#include "common/prom.h"

#define GW_NAMESPACE    "openfaas-fn"
#define GW_NAME_MAX     64  /* function names: DNS label length */
#define GW_REF_MAX      (MODEL_REF_MAX + 1) /* model refs: common/modelref.h's limit */
#define GW_MAX_REPLICAS 64

/* ======================= function specs (spec.c) ======================= */

/* Scaling settings from the OpenFaaS labels com.openfaas.scale.*. */
struct fn_scale {
    int min;         /* com.openfaas.scale.min, default 1 */
    int max;         /* com.openfaas.scale.max, default 5 */
    int target;      /* in-flight requests per instance, default 1 */
    bool zero;       /* com.openfaas.scale.zero */
    int64_t zero_ms; /* com.openfaas.scale.zero-duration, default 5m */
};

struct fn_spec {
    char name[GW_NAME_MAX];
    char image[GW_REF_MAX]; /* the model ref */
    struct fn_scale scale;
    uint64_t mem_limit; /* limits.memory in bytes, 0 = none */
    bool private_model; /* label com.shmfaas.private = "true" */
    int instance_cap;   /* max in flight per instance (envVars max_inflight; 0 → unlimited) */
    json_t *deployment; /* the normalised FunctionDeployment (owned) */
};

/* Splits "name[.namespace]" at the last dot. Returns -EINVAL (with a message) when the name or
 * namespace is not acceptable; an absent namespace is GW_NAMESPACE. */
int gw_split_name(const char *full, char name[GW_NAME_MAX], char *err, size_t errlen);
/* [-a-zA-Z_0-9]+, at most GW_NAME_MAX-1 chars. */
bool gw_valid_name(const char *name);
/* Only GW_NAMESPACE exists; NULL and "" mean it. */
int gw_check_namespace(const char *ns, char *err, size_t errlen);
/* -EINVAL (err says why) when `full` (NAME[.NAMESPACE] from a URL) holds a byte no function name
 * can hold, e.g. invalid UTF-8: such a request is a 400, not a 404. */
int gw_name_refusal(const char *full, char *err, size_t errlen);
/* Parses and validates a FunctionDeployment body. On success *out owns a normalised copy. */
int spec_parse(const char *body, size_t len, struct fn_spec *out, char *err, size_t errlen);
/* Same, from an already parsed object (persisted state). */
int spec_from_json(const json_t *dep, struct fn_spec *out, char *err, size_t errlen);
void spec_free(struct fn_spec *spec);

/* ======================= autoscaler (autoscale.c) ======================= */

struct autoscale_in {
    struct fn_scale scale;
    int floor;    /* replicas asked for by scale-function, -1 = use scale.min */
    int current;  /* instances starting + ready */
    int inflight; /* requests being served */
    int queued;   /* requests held waiting for an instance */
    int64_t now_ms;
    int64_t last_active_ms; /* last time a request arrived or finished */
    int64_t down_delay_ms;  /* demand must stay below capacity this long before removing one */
};

struct autoscale_state {
    int64_t below_since_ms; /* 0 = demand not below current capacity */
};

/* Returns how many instances the function should have now. Up: at once to the demand (capped by
 * max). Down: one instance per down_delay_ms of lower demand, never below the floor. To zero: when
 * scale.zero is set, nothing is in flight or queued, and the function was idle for zero_ms. */
int autoscale_decide(const struct autoscale_in *in, struct autoscale_state *st);

/* ===== the daemon (main.c, registry.c, isolation.c, spawn.c, supervise.c, proxy.c, routes.c) =====
 */

enum instance_state { INST_STARTING, INST_READY, INST_STOPPING, INST_DEAD };

struct instance {
    struct instance *next;
    struct function *fn;
    int id;
    pid_t pid;
    enum instance_state state;
    int inflight; /* requests using it; a dead instance is freed when this reaches 0 */
    int64_t started_ms, stop_ms;
    int64_t suspect_until_ms; /* a connect/send failed: not picked before this (it likely died) */
    bool stale; /* runs an older spec: serves only until a current instance is ready */
    char sock[108];
    char cgroup[512]; /* "" when none */
    char pidname[GW_NAME_MAX + 16]; /* "<function>-<id>.pid" in <state>/pids */
    bool pushed;    /* tells its readiness over a pipe (--ready-fd): never probed */
    bool templated; /* forked from its function's template */
    int64_t spawn_ns; /* now_ns() before its fork (request): what "ready after" is counted from */
    void **curl_idle; /* keep-alive easy handles not in use */
    int curl_nidle, curl_cap;
};

/* A function's template (spawn.c): a warm `shmfaas-fn --template` that forks its instances
 * (docs/architecture.md "An instance start"). Root, no lease, its own cgroup "<function>.t<id>"
 * and pidfile "<function>.t<id>.pid" (a '.' no instance name has), retired with its model. */
enum template_state { TEMPLATE_STARTING, TEMPLATE_READY };
struct template {
    pid_t pid;
    int id;
    int ctl; /* our end of its control socketpair (common/tmplproto.h) */
    enum template_state state;
    int64_t started_ms;
    char key[65]; /* SHA-256 (hex) of the model ref and envVars it was made for */
    int spare_id; /* the next instance's id, forked ahead into spare_cgroup (TMPL_PREPARE); 0: none
                   */
    char spare_cgroup[512];
    char cgroup[512];
    char pidname[GW_NAME_MAX + 16];
};

#define GW_MAX_CODES 16
struct code_count {
    int code;
    uint64_t n;
};

struct function {
    struct function *next;
    struct fn_spec spec;
    int64_t created_ms;
    int floor; /* scale-function replicas, -1 = none */
    bool deleted;
    int refs; /* request threads holding it */
    struct instance *instances;
    int inflight, queued;
    int64_t last_active_ms;
    int64_t backoff_until_ms; /* no new instance before this (start failures, crash loops) */
    int failures;             /* instances in a row that died before ready; 0 once one is */
    uid_t uid;                /* its instances' uid = gid (from --uid-range), persisted */
    bool refused;             /* the store refused its model: no instance before backoff_until_ms */
    int compiling;            /* compile-ahead requests (store PREPARE) running for it */
    bool refusal_pending;     /* the reason is still to be fetched from the store's stats */
    char refusal[512];        /* why, as the store said it */
    struct template *tmpl;    /* NULL: none (yet, or --no-templates, or --private) */
    int64_t tmpl_retry_ms;    /* a template that failed: no new one before this */
    struct autoscale_state as;
    int desired;
    uint64_t invocations;
    struct code_count codes[GW_MAX_CODES];
    int ncodes;
    struct prom_hist hist;
};

/* The pid of fn's template (for the memory tables), 0 when it has none. */
static inline pid_t function_template_pid(const struct function *fn)
{
    return fn->tmpl ? fn->tmpl->pid : 0;
}

/* Isolation steps the host allows, probed once at start. */
struct isolation {
    bool cgroup_v2, cgroup_v1;
    char cgroup_root[512]; /* where instance cgroups are created: one per daemon (state dir) */
    char cgroup_rel[512];  /* the same path as /proc/PID/cgroup names it */
    bool netns;
    bool drop_uid; /* root: each function's instances run as the function's own uid */
};

struct gateway {
    /* configuration, from flags */
    char listen[256];
    char state[512];
    char models[512];
    char budget[32];
    char disk_budget[32]; /* --disk-budget: our store's disk tier (STATE/images); "0" = none */
    char auth_dir[512];
    char store_sock[512];
    char store_bin[512];
    char store_dir[512];
    char fn_bin[512];
    int64_t hold_ms;       /* how long a request waits for an instance */
    int64_t down_delay_ms; /* autoscaler scale-down pace */
    int64_t ready_timeout_ms;
    size_t max_body;
    /* HTTP bounds (http_server_opts): --header-timeout, --max-conns-per-addr,
     * --max-body-inflight, --max-connections */
    int64_t header_timeout_ms;
    unsigned max_per_addr, max_connections;
    size_t max_body_inflight;
    bool no_auth;        /* --no-auth: the /system routes open to anyone reaching --listen */
    bool auth_functions; /* --auth-functions: invokes (/function/NAME) behind basic auth too */
    int threads;
    bool as_root; /* keep instances as root (no uid drop) */
    uid_t uid_first, uid_last; /* --uid-range: one uid (= gid) per function */
    bool keep_images;          /* --keep-images: our store keeps its images at a clean stop */
    bool no_templates;         /* --no-templates: every instance by fork+exec */
    /* async invocations (async.c): --async-workers, --async-retries, --async-max-queue,
     * --async-max-bytes, --callback-allow */
    int async_workers, async_retries;
    uint64_t async_max_queue, async_max_bytes;
    char callback_allow[1024];

    /* runtime */
    char auth_user[256], auth_pass[256];
    bool auth;
    pid_t store_pid;        /* our store child, 0 when --store was given or it died */
    int64_t store_retry_ms; /* when our dead store may be restarted */
    int preparing;          /* compile-ahead threads running (store.c) */
    struct isolation iso;
    int state_fd, pids_fd, run_fd; /* O_DIRECTORY fds of the checked directories */
    pthread_mutex_t lock;
    pthread_cond_t changed; /* instance ready/free, function state changes */
    pthread_cond_t kick;    /* wakes the supervisor */
    struct function *functions;
    int next_instance_id; /* daemon-wide: a re-created function never reuses a stopping one's socket
                           */
    bool stopping;
    int64_t started_ms;
    void *httpd;
    int port;
    struct async *async; /* the async dispatcher, NULL until async_start */
};

/* registry.c — functions, persistence; call with g->lock held unless noted. */
struct function *registry_find(struct gateway *g, const char *name);
/* Adds (create) or replaces the spec of (update) a function and persists it. Takes spec. */
int registry_put(struct gateway *g, struct fn_spec *spec, bool create, char *err, size_t errlen);
/* Marks the function deleted and removes its spec and log files; its instances are the
 * caller's to stop (registry.c sits below spawn.c). */
int registry_remove(struct gateway *g, const char *name, char *err, size_t errlen);
int registry_save(struct gateway *g, struct function *fn, char *err, size_t errlen);
/* Without the lock, before threads start: every persisted function. */
int registry_load(struct gateway *g);
/* A refused function (fn->refused) with no instance to wait for: the reason and the seconds to
 * a retry, for a 503 with Retry-After at once. False when requests should wait as usual. */
bool function_refusal(const struct function *fn, int64_t now_ms, char *why, size_t len,
                      int *retry_s);
void function_put_ref(struct gateway *g, struct function *fn);
void function_count_code(struct function *fn, int code, double seconds);
/* The deploy-time checks of what a spec names on disk, by the rules the store and the instance
 * apply later (common/confine.h): the model (<models>/<name>.onnx, <name>/<tag>.onnx or the path)
 * and envVars.labels (relative to the models directory, or absolute inside it) must be regular
 * files reached inside the models directory without leaving it; a pinned ref's (@sha256:) file
 * must have that SHA-256. sha256: refs are the store's to judge, except that a private function
 * needs a file. -EINVAL (a 400) with the reason otherwise. */
int registry_check_model(struct gateway *g, const struct fn_spec *spec, char *err, size_t errlen);
/* FunctionStatus JSON. */
json_t *function_status(struct gateway *g, struct function *fn, bool usage);
int function_ready_count(const struct function *fn);
int function_live_count(const struct function *fn);
/* The NDJSON log file of a function. */
void function_log_path(struct gateway *g, const char *name, char *out, size_t len);

/* isolation.c: what the host allows, cgroups, pidfiles and orphans */
void isolation_probe(struct gateway *g);
/* "<pid> <starttime>" as NAME in <state>/pids; removed when the process is reaped. */
void write_pidfile(struct gateway *g, const char *name, pid_t pid);
void remove_pidfile(struct gateway *g, const char *name);
/* A cgroup NAME under ours with memory limit LIMIT (0 = none); its path in path_out. */
int cgroup_create_named(struct gateway *g, const char *name, uint64_t limit, char *path_out,
                        size_t len);
int cgroup_create(struct gateway *g, struct instance *in, uint64_t limit);
int cgroup_remove(const struct isolation *iso, const char *path);

/* spawn.c: instances (fork+exec, or forked from their function's template) and the store child */
#define STOP_GRACE_MS 10000 /* SIGTERM to SIGKILL */
int instance_start(struct gateway *g, struct function *fn, char *err, size_t errlen);
void instance_stop(struct gateway *g, struct instance *in);
/* Drops one reference (a finished request); frees the instance if dead and unused. */
void instance_release(struct gateway *g, struct instance *in);
void instance_free(struct instance *in);
struct instance *instance_by_pid(struct gateway *g, pid_t pid);
void mark_ready(struct gateway *g, struct instance *in, const char *how);
/* After a failed start: the function waits longer before the next (exponential, bounded). */
void function_backoff(struct function *fn);
/* waitpid for every exited instance, template and the store child. */
void reap_children(struct gateway *g);
void template_start(struct gateway *g, struct function *fn);
void template_poll(struct gateway *g, struct function *fn);
void template_retire(struct gateway *g, struct function *fn, const char *why, bool wait);
void templates_retire_all(struct gateway *g, const char *why, bool wait);
/* Kills instances and the store that an earlier daemon left behind: only processes named by a
 * pidfile in <state>/pids whose start time, executable and cgroup prove them ours. Then removes
 * the leftover sockets and the empty cgroups of that daemon. */
void reap_orphans(struct gateway *g);
/* Removes the cgroups under ours that no live instance uses (their processes killed first). */
void cgroups_sweep(struct gateway *g);
int store_start(struct gateway *g, char *err, size_t errlen);
void store_stop(struct gateway *g);

/* supervise.c */
/* Supervisor thread body: reaps children, checks readiness, applies the autoscaler. */
void *supervisor_main(void *arg);
/* At exit: SIGTERM every instance, wait (bounded), SIGKILL what is left. */
void instances_shutdown(struct gateway *g);

/* proxy.c */
struct proxy_req {
    const char *method;
    const char *path_query; /* "/path?query" sent to the instance */
    const char *body;
    size_t body_len;
    void *headers; /* struct curl_slist * of request headers (already with X-* added) */
};
struct proxy_resp {
    int status;
    char content_type[256];
    void *headers; /* struct curl_slist * of response headers to pass on */
    struct buf body;
    bool got_bytes;   /* any byte of a response arrived */
    bool conn_failed; /* the instance could not be reached or went away */
    bool timed_out;
    char err[256];
};
/* Sends one request to an instance over its unix socket (keep-alive handle from its pool) and
 * runs it until the response headers are in or it failed; rs (which must outlive the stream)
 * gets status, headers and the flags. Call without the lock; in->inflight holds the instance.
 * Returns NULL only when out of memory (rs->conn_failed is then set). */
struct proxy_stream;
struct proxy_stream *proxy_open(struct gateway *g, struct instance *in, const struct proxy_req *rq,
                                struct proxy_resp *rs, int64_t timeout_ms);
/* The whole response is in rs->body already. */
bool proxy_complete(const struct proxy_stream *st);
/* Next body bytes: > 0 bytes copied, 0 at the end, -1 when the instance failed mid-body. */
ssize_t proxy_read(struct proxy_stream *st, char *buf, size_t max);
/* Ends the transfer and returns the handle to the pool (kept only if it completed). NULL: no-op. */
void proxy_close(struct proxy_stream *st);
void proxy_resp_free(struct proxy_resp *rs);
void proxy_handle_free(void *handle);
/* GET /_/ready on a socket: 1 ready, 0 not yet, <0 unreachable. */
int probe_ready(const char *sock, int64_t timeout_ms);

/* routes.c */
int httpd_start(struct gateway *g, char *err, size_t errlen);
void httpd_stop(struct gateway *g);

/* metrics_page.c */
void metrics_render(struct gateway *g, struct buf *out);

/* invoke.c: ANY /function/NAME[.NS][/path] */
struct http_request;
int route_invoke(struct gateway *g, struct http_request *rq, const char *arg);

/* invoke.c, for async.c: the same path as /function/NAME for a request that is not an HTTP
 * connection's. invoke_target splits "NAME[.NS][/path]" (*rest: the "/path" or NULL) and returns
 * the HTTP status to refuse it with (400 bad bytes, 404 no such name) or 0. invoke_headers
 * builds the headers sent upstream (X-Call-Id: the caller's when gw_valid_call_id, else a new
 * one, written into call_id; X-Forwarded-*, X-Start-Time); invoke_path "/path?query".
 * invoke_run holds, scales from zero, proxies (retry once) and reads the whole reply (at most
 * max_reply bytes) into *rs: returns the function's status or the gateway's own with err. */
#define GW_CALL_ID_MAX 65
bool gw_valid_call_id(const char *id);
int invoke_target(const char *arg, char name[GW_NAME_MAX], const char **rest, char *err,
                  size_t errlen);
struct curl_slist *invoke_headers(struct http_request *rq, char call_id[GW_CALL_ID_MAX]);
void invoke_path(struct http_request *rq, const char *rest, struct buf *out);
int invoke_run(struct gateway *g, const char *name, const struct proxy_req *prq,
               struct proxy_resp *rs, size_t max_reply, char *err, size_t errlen);

/* ======================= async invocations (queue.c, async.c) =======================
 * POST /async-function/NAME[.NS][/path] → 202 + X-Call-Id once the call is durable in
 * STATE/queue.db; workers run it through invoke_run and POST the result to its X-Callback-Url
 * (only hosts of --callback-allow), retrying 5xx/429/connection failures with backoff.
 * At-least-once: a call interrupted by a crash is run (and called back) again after restart. */
#define ASYNC_MAX_WORKERS 64
#define QUEUE_BLOB_MAX    ((size_t)512 << 20) /* a body or result the queue stores (SQLite: 1e9) */

/* callback.c: the callback allow-list and the X-Callback-Url check (pure; the fuzz target
 * fuzz_callback_url drives it). callback_allow_parse appends "HOST|ADDR|ADDR/BITS[,...]";
 * callback_check fills *t (host without brackets, port, literal: an IP address) when url may be
 * called back: 0, -EINVAL (not an http(s) URL with a host), -EPERM (host not allowed). */
#define CALLBACK_ALLOW_MAX 64
#define CALLBACK_URL_MAX   2048
struct callback_allow_entry {
    int family; /* AF_INET, AF_INET6: addr/prefix; 0: name */
    uint8_t addr[16];
    int prefix;
    char name[256];
};
struct callback_allow {
    struct callback_allow_entry e[CALLBACK_ALLOW_MAX];
    int n;
};
struct callback_target {
    char host[256];
    long port;
    bool literal;
};
int callback_allow_parse(struct callback_allow *a, const char *list, char *err, size_t errlen);
int callback_check(const struct callback_allow *a, const char *url, struct callback_target *t,
                   char *err, size_t errlen);

struct queue_call {
    int64_t row;
    char call_id[GW_CALL_ID_MAX];
    char function[GW_NAME_MAX];
    char *method, *path, *headers; /* headers: "Name: value" lines joined by '\n' */
    uint8_t *body;
    size_t body_len;
    char *callback; /* NULL: none */
    int64_t enqueued_ms; /* wall clock */
    int attempts;        /* runs (before a result) or callbacks (after) that failed so far */
    bool has_result;     /* run: status, result_headers, result, duration_s are set */
    int status;
    char *result_headers;
    uint8_t *result;
    size_t result_len;
    double duration_s;
};

struct queue_stats {
    uint64_t calls, bytes, running;
    int64_t oldest_ms; /* wall clock enqueue time of the oldest call, -1 when empty */
};

/* queue.c; the caller serialises all calls. queue_put: -ENOSPC (err says which bound) when full.
 * queue_claim: 1 with *out filled (a due, unclaimed row), 0 when none is due (*next_ms: when
 * the next one is, -1 none). Every claimed row is handed back by set_result, retry, release
 * (left as it is) or done (deleted). */
struct queue;
int queue_open(int state_fd, const char *state, uint64_t max_calls, uint64_t max_bytes,
               struct queue **out, char *err, size_t errlen);
void queue_close(struct queue *q);
int queue_put(struct queue *q, const struct queue_call *c, char *err, size_t errlen);
int queue_claim(struct queue *q, int64_t now_ms, struct queue_call *out, int64_t *next_ms);
int queue_set_result(struct queue *q, const struct queue_call *c, int64_t now_ms);
int queue_retry(struct queue *q, int64_t row, int attempts, int64_t next_ms);
void queue_release(struct queue *q, int64_t row);
int queue_done(struct queue *q, const struct queue_call *c);
void queue_stats(struct queue *q, struct queue_stats *out);
void queue_call_free(struct queue_call *c);

/* async.c. async_start: opens the queue, parses --callback-allow, starts the workers.
 * async_stop asks them to stop (a call they hold stays queued); async_join waits and frees. */
int async_start(struct gateway *g, char *err, size_t errlen);
void async_stop(struct gateway *g);
void async_join(struct gateway *g);
int route_async(struct gateway *g, struct http_request *rq, const char *arg);
void async_metrics(struct gateway *g, struct buf *b);

/* store.c: the store's stats JSON ({"totals","models"}) or NULL when unreachable. */
json_t *store_stats_json(struct gateway *g);
void store_evict(struct gateway *g, const char *model);
/* Compile ahead: has the store make the image of function name's model resident now, on a thread
 * of its own (fn->compiling meanwhile: "imageStatus": "compiling"), so its first request does not
 * pay for the compile. Call without g->lock. */
void store_prepare_async(struct gateway *g, const char *name);
/* Waits (bounded) for the compile-ahead threads, once the store is stopped. */
void store_prepare_drain(struct gateway *g);
void store_metrics(const json_t *stats, struct buf *b);

#endif
