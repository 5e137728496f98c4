/*
 * The HTTP API of shmfaasd (OPENFAAS.md): a table of routes, each a short handler. The /system
 * routes sit behind basic auth when enabled; /function, /healthz and /metrics stay open. Every
 * error reply is {"error": "..."} with X-OpenFaaS-Internal: gateway, and a rejected request changes
 * nothing.
 */
#include "gateway/gateway.h"

#include "common/common.h"
#include "common/http.h"
#include "config.h"

#include <ctype.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#define LOG_MAX_BYTES (8u << 20)

static const struct http_header internal_hdr[] = {{"X-OpenFaaS-Internal", "gateway"}};

static int reply_err(struct MHD_Connection *c, unsigned status, const char *msg)
{
    return http_reply_error(c, status, msg, internal_hdr, 1);
}

static unsigned status_of(int rc)
{
    switch (rc) {
    case -EINVAL:
        return 400;
    case -ENOENT:
        return 404;
    case -EEXIST:
        return 409;
    default:
        return 500;
    }
}

static int reply_json_take(struct MHD_Connection *c, unsigned status, json_t *v)
{
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(v);
    if (!s)
        return reply_err(c, 500, "out of memory");
    return http_reply_take(c, status, "application/json", s, strlen(s), NULL, 0);
}

/* ---- auth ---- */

/* Equal bytes and length; the time depends on the lengths only, never on where they differ. */
static bool ct_equal(const char *a, size_t la, const char *b, size_t lb)
{
    size_t n = la > lb ? la : lb;
    unsigned diff = la != lb;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(i < la ? a[i] : 0) ^ (unsigned char)(i < lb ? b[i] : 0);
    return diff == 0;
}

static bool b64_strict(const char *s, size_t n)
{
    size_t pad = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '=') {
            pad++;
        } else if (pad || !(isalnum(c) || c == '+' || c == '/')) {
            return false; /* data after padding, or not base64 */
        }
    }
    return n > 0 && n % 4 == 0 && pad <= 2;
}

/* "Authorization: Basic base64(user:password)", decoded strictly: a NUL anywhere, bad base64 or
 * a different user or password fails. */
static bool auth_ok(struct gateway *g, struct http_request *rq)
{
    const char *h = http_request_header(rq, "Authorization");
    if (!h || strncasecmp(h, "Basic ", 6) != 0)
        return false;
    const char *b64 = h + 6;
    size_t n = strlen(b64);
    if (n > 1024 || !b64_strict(b64, n))
        return false;
    unsigned char dec[800];
    int len = EVP_DecodeBlock(dec, (const unsigned char *)b64, (int)n);
    if (len < 0)
        return false;
    while (len > 0 && n > 0 && b64[--n] == '=')
        len--;
    const char *colon = memchr(dec, ':', (size_t)len);
    if (!colon || memchr(dec, '\0', (size_t)len))
        return false;
    size_t ul = (size_t)(colon - (const char *)dec), pl = (size_t)len - ul - 1;
    bool user = ct_equal((const char *)dec, ul, g->auth_user, strlen(g->auth_user));
    bool pass = ct_equal(colon + 1, pl, g->auth_pass, strlen(g->auth_pass));
    explicit_bzero(dec, sizeof dec);
    return user & pass;
}

static int reply_unauthorized(struct MHD_Connection *c)
{
    static const struct http_header h[] = {{"WWW-Authenticate", "Basic realm=\"Restricted\""},
                                           {"X-OpenFaaS-Internal", "gateway"}};
    return http_reply_error(c, 401,
                            "invalid or missing credentials: 'shmfaas login' or 'faas-cli login' "
                            "(the password is in STATE/secrets/basic-auth-password)",
                            h, 2);
}

/* ---- small routes ---- */

static int route_healthz(struct gateway *g, struct http_request *rq, const char *arg)
{
    return http_reply(rq->conn, 200, "text/plain", "OK", 2, NULL, 0);
}

static int route_info(struct gateway *g, struct http_request *rq, const char *arg)
{
    struct utsname u;
    uname(&u);
    json_t *ver = json_pack("{ssss}", "sha", "", "release", SHMFAAS_VERSION);
    json_t *o = json_pack("{s{sssssO}sOss}", "provider", "provider", "shmfaasd", "orchestration",
                          "process", "version", ver, "version", ver, "arch", u.machine);
    json_decref(ver);
    return reply_json_take(rq->conn, 200, o);
}

static int route_namespaces(struct gateway *g, struct http_request *rq, const char *arg)
{
    return http_reply_json(rq->conn, 200, "[\"" GW_NAMESPACE "\"]", NULL, 0);
}

static int route_metrics(struct gateway *g, struct http_request *rq, const char *arg)
{
    struct buf b = {0};
    metrics_render(g, &b);
    if (b.failed) {
        buf_free(&b);
        return reply_err(rq->conn, 500, "out of memory");
    }
    return http_reply_take(rq->conn, 200, PROM_CONTENT_TYPE "; charset=utf-8", b.data, b.len,
                           NULL, 0);
}

/* ---- /system/functions ---- */

static int check_query_ns(struct http_request *rq)
{
    char err[256];
    if (gw_check_namespace(http_request_query(rq, "namespace"), err, sizeof err))
        return reply_err(rq->conn, 400, err);
    return 1;
}

static int route_list(struct gateway *g, struct http_request *rq, const char *arg)
{
    int rc = check_query_ns(rq);
    if (rc != 1)
        return rc;
    json_t *arr = json_array();
    pthread_mutex_lock(&g->lock);
    for (struct function *fn = g->functions; fn; fn = fn->next)
        if (!fn->deleted)
            json_array_append_new(arr, function_status(g, fn, false));
    pthread_mutex_unlock(&g->lock);
    return reply_json_take(rq->conn, 200, arr);
}

static int deploy(struct gateway *g, struct http_request *rq, bool create)
{
    char err[768];
    struct fn_spec spec;
    int rc = spec_parse((const char *)rq->body, rq->body_len, &spec, err, sizeof err);
    if (rc)
        return reply_err(rq->conn, status_of(rc), err);
    char name[GW_NAME_MAX], image[GW_REF_MAX];
    snprintf(name, sizeof name, "%s", spec.name);
    snprintf(image, sizeof image, "%s", spec.image);
    pthread_mutex_lock(&g->lock);
    bool exists = registry_find(g, spec.name) != NULL;
    pthread_mutex_unlock(&g->lock);
    if (!create && !exists) {
        snprintf(err, sizeof err, "function %s not found: deploy it with POST", spec.name);
        rc = -ENOENT;
    } else {
        rc = registry_check_model(g, &spec, err, sizeof err);
        if (rc == -ENOENT)
            rc = -EINVAL; /* an unknown model is a bad request, not a missing route */
    }
    if (!rc) {
        pthread_mutex_lock(&g->lock);
        rc = registry_put(g, &spec, create, err, sizeof err);
        pthread_mutex_unlock(&g->lock);
    }
    spec_free(&spec);
    if (rc)
        return reply_err(rq->conn, status_of(rc), err);
    log_info("%s function %s (model %s)", create ? "deployed" : "updated", name, image);
    store_prepare_async(g, name); /* compile ahead: the first request does not pay for it */
    return http_reply(rq->conn, 202, "text/plain", "", 0, NULL, 0);
}

static int route_deploy(struct gateway *g, struct http_request *rq, const char *arg)
{
    return deploy(g, rq, true);
}

static int route_update(struct gateway *g, struct http_request *rq, const char *arg)
{
    return deploy(g, rq, false);
}

/* Parses a JSON object body; replies 400 itself and returns NULL when it is not one. */
static json_t *body_object(struct http_request *rq, int *replied)
{
    json_error_t je;
    json_t *v = json_loadb((const char *)rq->body, rq->body_len, 0, &je);
    if (json_is_object(v))
        return v;
    json_decref(v);
    char msg[300];
    snprintf(msg, sizeof msg, "invalid JSON body: %s", v ? "expected an object" : je.text);
    *replied = reply_err(rq->conn, 400, msg);
    return NULL;
}

static int route_delete(struct gateway *g, struct http_request *rq, const char *arg)
{
    int replied = 0;
    char err[300];
    json_t *o = body_object(rq, &replied);
    if (!o)
        return replied;
    const char *name = json_string_value(json_object_get(o, "functionName"));
    const char *ns = json_string_value(json_object_get(o, "namespace"));
    int rc = !name || !*name ? seterr(err, sizeof err, -EINVAL, "functionName is required")
                             : gw_check_namespace(ns ? ns : http_request_query(rq, "namespace"),
                                                  err, sizeof err);
    if (!rc) {
        pthread_mutex_lock(&g->lock);
        struct function *fn = registry_find(g, name);
        rc = registry_remove(g, name, err, sizeof err);
        for (struct instance *in = rc ? NULL : fn->instances; in; in = in->next)
            if (in->state == INST_STARTING || in->state == INST_READY)
                instance_stop(g, in); /* a removed function's instances all stop at once */
        pthread_mutex_unlock(&g->lock);
    }
    json_decref(o);
    if (rc)
        return reply_err(rq->conn, status_of(rc), err);
    return http_reply(rq->conn, 202, "text/plain", "", 0, NULL, 0);
}

static int route_describe(struct gateway *g, struct http_request *rq, const char *arg)
{
    char name[GW_NAME_MAX], err[300];
    int rc = check_query_ns(rq);
    if (rc != 1)
        return rc;
    if (gw_name_refusal(arg, err, sizeof err))
        return reply_err(rq->conn, 400, err);
    if (gw_split_name(arg, name, err, sizeof err))
        return reply_err(rq->conn, 404, err);
    const char *u = http_request_query(rq, "usage");
    bool usage = u && (strcmp(u, "1") == 0 || strcmp(u, "true") == 0);
    pthread_mutex_lock(&g->lock);
    struct function *fn = registry_find(g, name);
    json_t *st = fn ? function_status(g, fn, usage) : NULL;
    pthread_mutex_unlock(&g->lock);
    if (!st) {
        snprintf(err, sizeof err, "function %s not found", name);
        return reply_err(rq->conn, 404, err);
    }
    return reply_json_take(rq->conn, 200, st);
}

static int route_scale(struct gateway *g, struct http_request *rq, const char *arg)
{
    char name[GW_NAME_MAX], err[300];
    int replied = 0;
    if (gw_name_refusal(arg, err, sizeof err))
        return reply_err(rq->conn, 400, err);
    if (gw_split_name(arg, name, err, sizeof err))
        return reply_err(rq->conn, 404, err);
    json_t *o = body_object(rq, &replied);
    if (!o)
        return replied;
    json_t *r = json_object_get(o, "replicas");
    int rc =
        gw_check_namespace(json_string_value(json_object_get(o, "namespace")), err, sizeof err);
    if (!rc && (!json_is_integer(r) || json_integer_value(r) < 0 ||
                json_integer_value(r) > GW_MAX_REPLICAS))
        rc = seterr(err, sizeof err, -EINVAL, "replicas must be a whole number from 0 to %d",
                    GW_MAX_REPLICAS);
    if (!rc) {
        pthread_mutex_lock(&g->lock);
        struct function *fn = registry_find(g, name);
        if (!fn) {
            rc = seterr(err, sizeof err, -ENOENT, "function %s not found", name);
        } else {
            int old = fn->floor;
            fn->floor = (int)json_integer_value(r);
            rc = registry_save(g, fn, err, sizeof err);
            if (rc)
                fn->floor = old;
            pthread_cond_broadcast(&g->kick);
        }
        pthread_mutex_unlock(&g->lock);
    }
    json_decref(o);
    if (rc)
        return reply_err(rq->conn, status_of(rc), err);
    return http_reply(rq->conn, 202, "text/plain", "", 0, NULL, 0);
}

/* ---- /system/logs ---- */

/* Keeps the last `tail` lines at or after `since` (ISO timestamps compare as strings). */
static char *select_lines(char *text, size_t len, long tail, const char *since, size_t *out_len)
{
    size_t nlines = 0;
    for (size_t i = 0; i < len; i++)
        nlines += text[i] == '\n';
    char *out = malloc(len + 1);
    if (!out)
        return NULL;
    size_t o = 0, line = 0;
    char *p = text;
    while (p < text + len) {
        char *nl = memchr(p, '\n', (size_t)(text + len - p));
        size_t l = nl ? (size_t)(nl - p) + 1 : (size_t)(text + len - p);
        bool keep = tail < 0 || line + (size_t)tail >= nlines;
        if (keep && since && *since) {
            const char *ts = strstr(p, "\"timestamp\":\"");
            keep = ts && ts < p + l && strncmp(ts + 13, since, 19) >= 0;
        }
        if (keep) {
            memcpy(out + o, p, l);
            o += l;
        }
        p += l;
        line++;
    }
    *out_len = o;
    return out;
}

/* follow=true: the selected lines, then whatever the instances write, until the function goes,
 * the daemon stops or the client hangs up. */
struct log_follow {
    struct gateway *g;
    char name[GW_NAME_MAX];
    char *head;
    size_t head_len, head_off;
    int fd;
    off_t off;
};

static bool follow_over(struct log_follow *f)
{
    pthread_mutex_lock(&f->g->lock);
    bool over = f->g->stopping || !registry_find(f->g, f->name);
    pthread_mutex_unlock(&f->g->lock);
    return over;
}

static ssize_t follow_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct log_follow *f = cls;
    if (f->head_off < f->head_len) {
        size_t n = f->head_len - f->head_off < max ? f->head_len - f->head_off : max;
        memcpy(buf, f->head + f->head_off, n);
        f->head_off += n;
        return (ssize_t)n;
    }
    for (int i = 0; i < 50; i++) { /* 5 s, then an empty chunk lets MHD notice a gone client */
        ssize_t n = f->fd >= 0 ? pread(f->fd, buf, max, f->off) : 0;
        if (n > 0) {
            f->off += n;
            return n;
        }
        if (follow_over(f))
            return MHD_CONTENT_READER_END_OF_STREAM;
        usleep(100000);
    }
    return 0;
}

static void follow_free(void *cls)
{
    struct log_follow *f = cls;
    if (f->fd >= 0)
        close(f->fd);
    free(f->head);
    free(f);
}

static int reply_follow(struct gateway *g, struct http_request *rq, const char *name,
                        const char *path, char *head, size_t head_len, off_t off)
{
    struct log_follow *f = calloc(1, sizeof *f);
    if (!f) {
        free(head);
        return reply_err(rq->conn, 500, "out of memory");
    }
    *f = (struct log_follow){.g = g, .head = head, .head_len = head_len, .off = off};
    snprintf(f->name, sizeof f->name, "%s", name);
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, follow_read, f, follow_free);
    if (!r) {
        follow_free(f);
        return -1;
    }
    MHD_add_response_header(r, "Content-Type", "application/x-ndjson");
    enum MHD_Result ok = MHD_queue_response(rq->conn, 200, r);
    MHD_destroy_response(r);
    return ok == MHD_YES ? 0 : -1;
}

/* The last LOG_MAX_BYTES of a log file; *end = its size. A missing file is empty. */
static int read_log_tail(const char *path, uint8_t **out, size_t *len, off_t *end)
{
    struct stat st;
    *out = NULL;
    *len = 0;
    *end = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0)
            close(fd);
        return -ENOENT;
    }
    size_t n = st.st_size > (off_t)LOG_MAX_BYTES ? LOG_MAX_BYTES : (size_t)st.st_size;
    uint8_t *buf = malloc(n + 1);
    ssize_t r = buf ? pread(fd, buf, n, st.st_size - (off_t)n) : -1;
    close(fd);
    if (r < 0) {
        free(buf);
        return -EIO;
    }
    *out = buf;
    *len = (size_t)r;
    *end = st.st_size - (off_t)n + r;
    return 0;
}

static int route_logs(struct gateway *g, struct http_request *rq, const char *arg)
{
    char name[GW_NAME_MAX], err[600], path[1024];
    const char *q = http_request_query(rq, "name");
    if (!q || gw_split_name(q, name, err, sizeof err))
        return reply_err(rq->conn, 400, "name is required: /system/logs?name=FUNCTION");
    pthread_mutex_lock(&g->lock);
    bool exists = registry_find(g, name) != NULL;
    pthread_mutex_unlock(&g->lock);
    if (!exists) {
        snprintf(err, sizeof err, "function %s not found", name);
        return reply_err(rq->conn, 404, err);
    }
    const char *t = http_request_query(rq, "tail");
    long tail = t && *t ? strtol(t, NULL, 10) : -1;
    function_log_path(g, name, path, sizeof path);
    uint8_t *data = NULL;
    size_t len = 0, out_len = 0;
    const char *fl = http_request_query(rq, "follow");
    bool follow = fl && (strcmp(fl, "true") == 0 || strcmp(fl, "1") == 0);
    off_t end = 0;
    size_t skip = 0;
    if (read_log_tail(path, &data, &len, &end) == 0 && end > (off_t)len) {
        char *nl = memchr(data, '\n', len); /* started mid-file: drop the partial first line */
        skip = nl ? (size_t)(nl - (char *)data) + 1 : len;
    }
    char *out = select_lines(data ? (char *)data + skip : "", len - skip, tail,
                             http_request_query(rq, "since"), &out_len);
    free(data);
    if (!out)
        return reply_err(rq->conn, 500, "out of memory");
    if (follow)
        return reply_follow(g, rq, name, path, out, out_len, end);
    return http_reply_take(rq->conn, 200, "application/x-ndjson", out, out_len, NULL, 0);
}

/* ---- /system/models ---- */

/* NAME[:TAG] of a model route ("NAME.onnx" is NAME): parsed by the one model-ref parser; a
 * registry path, a digest or input shapes have no meaning here. canon gets "name" (latest) or
 * "name:tag", file the path below the models directory. */
static int model_arg(const char *arg, struct model_ref *r, char *canon, size_t canon_len,
                     char *file, size_t file_len, char *err, size_t errlen)
{
    size_t n = strlen(arg);
    char q[96];
    if (n > 5 && strcmp(arg + n - 5, ".onnx") == 0)
        n -= 5;
    str_printable(arg, n, q, sizeof q);
    if (n == 0 || n > MODEL_REF_CANON_MAX)
        return seterr(err, errlen, -EINVAL, "model name is empty or too long: give NAME[:TAG]");
    if (model_ref_parse(arg, n, r, err, errlen) < 0)
        return -EINVAL;
    if (r->kind != MODEL_REF_NAME || r->pinned || r->shapes[0] || memchr(arg, '/', n))
        return seterr(err, errlen, -EINVAL,
                      "model name \"%s\": a model route takes NAME[:TAG] (letters, digits, '.', "
                      "'-' and '_'), without a registry path, digest or '?'",
                      q);
    if (model_ref_canonical(r, canon, canon_len) < 0 || model_ref_file(r, file, file_len) < 0)
        return seterr(err, errlen, -EINVAL, "model name \"%s\" is too long", q);
    return 0;
}

/* Writes a pushed model: <models>/name.onnx, or <models>/name/tag.onnx (the directory created
 * 0755 when missing, opened O_NOFOLLOW: a tag is written into a real directory, never through a
 * link). path gets the file's path, for the reply. */
static int model_write(struct gateway *g, const struct model_ref *r, const char *file,
                       const void *data, size_t len, char *path, size_t path_len, char *err,
                       size_t errlen)
{
    char dir[1024];
    snprintf(path, path_len, "%s/%s", g->models, file);
    if (model_ref_is_latest(r))
        return write_file_atomic(path, data, len, 0644, err, errlen);
    snprintf(dir, sizeof dir, "%s/%s", g->models, r->name);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return seterr(err, errlen, -errno, "model %s: cannot create %s: %s", r->name, dir,
                      strerror(errno));
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return seterr(err, errlen, -errno, "model %s: %s is not a directory of tags: %s", r->name,
                      dir, strerror(errno));
    char name[MODEL_REF_TAG_MAX + 8];
    snprintf(name, sizeof name, "%s.onnx", r->tag);
    int rc = write_file_atomic_at(dfd, name, data, len, 0644, err, errlen);
    close(dfd);
    return rc;
}

static int route_model_push(struct gateway *g, struct http_request *rq, const char *arg)
{
    char canon[MODEL_REF_CANON_MAX + 1], file[MODEL_REF_CANON_MAX + 8], err[600], path[1200];
    char hex[SHA256_HEX_LEN], digest[SHA256_HEX_LEN + 8];
    uint8_t sha[SHA256_LEN];
    struct model_ref r;
    if (model_arg(arg, &r, canon, sizeof canon, file, sizeof file, err, sizeof err))
        return reply_err(rq->conn, 400, err);
    if (rq->body_len == 0)
        return reply_err(rq->conn, 400, "empty body: send the ONNX file as the request body");
    int rc = model_write(g, &r, file, rq->body, rq->body_len, path, sizeof path, err, sizeof err);
    if (rc) /* a link or a non-directory where the tags go is the request's problem */
        return reply_err(rq->conn, rc == -ELOOP || rc == -ENOTDIR ? 400 : 500, err);
    sha256(rq->body, rq->body_len, sha);
    sha256_hex(sha, hex);
    snprintf(digest, sizeof digest, "sha256:%s", hex);
    log_info("model %s: %zu bytes stored in %s (%s)", canon, rq->body_len, path, digest);
    json_t *o = json_pack("{sssssssIssss}", "name", canon, "model", r.name, "tag",
                          model_ref_is_latest(&r) ? "latest" : r.tag, "bytes",
                          (json_int_t)rq->body_len, "path", path, "digest", digest);
    return reply_json_take(rq->conn, 201, o);
}

/* The functions whose image names the model canon ("name" or "name:tag"), whatever registry
 * path or digest their ref carries. */
static json_t *model_users(struct gateway *g, const char *canon)
{
    json_t *arr = json_array();
    char c[MODEL_REF_CANON_MAX + 1];
    for (struct function *fn = g->functions; fn; fn = fn->next)
        if (!fn->deleted && strcmp(model_ref_listed(fn->spec.image, c, sizeof c), canon) == 0)
            json_array_append_new(arr, json_string(fn->spec.name));
    return arr;
}

/* Adds the entry of dir/entry (NAME.onnx in dfd) when it is a regular file and NAME[:TAG] is a
 * ref the parser accepts. */
static void model_list_add(struct gateway *g, json_t *arr, int dfd, const char *entry,
                           const char *model)
{
    char text[MODEL_REF_CANON_MAX + 2], canon[MODEL_REF_CANON_MAX + 1], err[256];
    struct model_ref r;
    struct stat st;
    size_t n = strlen(entry);
    if (n <= 5 || strcmp(entry + n - 5, ".onnx") != 0)
        return;
    int len = model ? snprintf(text, sizeof text, "%s:%.*s", model, (int)(n - 5), entry)
                    : snprintf(text, sizeof text, "%.*s", (int)(n - 5), entry);
    if (len < 0 || (size_t)len >= sizeof text ||
        model_ref_parse(text, (size_t)len, &r, err, sizeof err) < 0 || r.kind != MODEL_REF_NAME ||
        strchr(text, '/') || model_ref_canonical(&r, canon, sizeof canon) < 0 ||
        fstatat(dfd, entry, &st, 0) != 0 || !S_ISREG(st.st_mode))
        return;
    if (model && model_ref_is_latest(&r))
        return; /* name/latest.onnx is not what name:latest means */
    pthread_mutex_lock(&g->lock);
    json_t *users = model_users(g, canon);
    pthread_mutex_unlock(&g->lock);
    json_array_append_new(arr, json_pack("{sssssssIsIso}", "name", canon, "model", r.name, "tag",
                                         model_ref_is_latest(&r) ? "latest" : r.tag, "bytes",
                                         (json_int_t)st.st_size, "modified",
                                         (json_int_t)st.st_mtime, "functions", users));
}

/* <models>/NAME.onnx is NAME:latest; <models>/NAME/TAG.onnx is NAME:TAG. */
static int route_model_list(struct gateway *g, struct http_request *rq, const char *arg)
{
    json_t *arr = json_array();
    int mfd = open(g->models, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = mfd >= 0 ? fdopendir(mfd) : NULL;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        struct stat st;
        if (e->d_name[0] == '.')
            continue;
        if (fstatat(mfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
            int tfd = openat(mfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            DIR *td = tfd >= 0 ? fdopendir(tfd) : NULL;
            struct dirent *t;
            while (td && (t = readdir(td)))
                if (t->d_name[0] != '.')
                    model_list_add(g, arr, tfd, t->d_name, e->d_name);
            if (td)
                closedir(td);
            else if (tfd >= 0)
                close(tfd);
        } else {
            model_list_add(g, arr, mfd, e->d_name, NULL);
        }
    }
    if (d)
        closedir(d);
    else if (mfd >= 0)
        close(mfd);
    json_t *store = store_stats_json(g);
    json_t *o = json_pack("{soso}", "models", arr, "store", store ? store : json_null());
    return reply_json_take(rq->conn, 200, o);
}

static int route_model_delete(struct gateway *g, struct http_request *rq, const char *arg)
{
    char canon[MODEL_REF_CANON_MAX + 1], file[MODEL_REF_CANON_MAX + 8], err[600], path[1200];
    struct model_ref r;
    if (model_arg(arg, &r, canon, sizeof canon, file, sizeof file, err, sizeof err))
        return reply_err(rq->conn, 400, err);
    pthread_mutex_lock(&g->lock);
    json_t *users = model_users(g, canon);
    pthread_mutex_unlock(&g->lock);
    size_t n = json_array_size(users);
    json_decref(users);
    if (n > 0) {
        snprintf(err, sizeof err, "model %s is used by %zu function(s): remove them first", canon,
                 n);
        return reply_err(rq->conn, 409, err);
    }
    snprintf(path, sizeof path, "%s/%s", g->models, file);
    if (access(path, F_OK) == 0)
        store_evict(g, canon);
    if (unlink(path) != 0) {
        snprintf(err, sizeof err, "model %s: %s", canon,
                 errno == ENOENT ? "not found" : strerror(errno));
        return reply_err(rq->conn, errno == ENOENT ? 404 : 500, err);
    }
    if (!model_ref_is_latest(&r)) { /* the last tag takes its directory along */
        snprintf(path, sizeof path, "%s/%s", g->models, r.name);
        rmdir(path);
    }
    return http_reply(rq->conn, 200, "text/plain", "", 0, NULL, 0);
}

/* ---- the route table ---- */

typedef int (*route_fn)(struct gateway *g, struct http_request *rq, const char *arg);

struct route {
    const char *method; /* NULL = any */
    const char *path;   /* exact, or a prefix when it ends in '/' (the rest is arg) */
    bool auth;
    route_fn fn;
};

static const struct route routes[] = {
    {"GET", "/healthz", false, route_healthz},
    {"GET", "/metrics", false, route_metrics},
    {"GET", "/system/info", true, route_info},
    {"GET", "/system/namespaces", true, route_namespaces},
    {"GET", "/system/functions", true, route_list},
    {"POST", "/system/functions", true, route_deploy},
    {"PUT", "/system/functions", true, route_update},
    {"DELETE", "/system/functions", true, route_delete},
    {"GET", "/system/function/", true, route_describe},
    {"POST", "/system/scale-function/", true, route_scale},
    {"GET", "/system/logs", true, route_logs},
    {"GET", "/system/models", true, route_model_list},
    {"POST", "/system/models/", true, route_model_push},
    {"PUT", "/system/models/", true, route_model_push},
    {"DELETE", "/system/models/", true, route_model_delete},
    {NULL, "/function/", false, route_invoke},
    {"POST", "/async-function/", false, route_async},
};

/* Matches url against a route path; *arg gets the rest for prefix routes (non-empty). */
static bool path_match(const char *pattern, const char *url, const char **arg)
{
    size_t n = strlen(pattern);
    if (pattern[n - 1] != '/')
        return strcmp(pattern, url) == 0 ||
               (strncmp(pattern, url, n) == 0 && url[n] == '/' && url[n + 1] == '\0');
    if (strncmp(pattern, url, n) != 0 || url[n] == '\0')
        return false;
    *arg = url + n;
    return true;
}

static int handle(struct http_request *rq, void *user)
{
    struct gateway *g = user;
    bool path_known = false;
    for (size_t i = 0; i < ARRAY_LEN(routes); i++) {
        const struct route *r = &routes[i];
        const char *arg = "";
        if (!path_match(r->path, rq->url, &arg))
            continue;
        bool protect =
            r->auth || (g->auth_functions && (r->fn == route_invoke || r->fn == route_async));
        if (protect && g->auth && !auth_ok(g, rq))
            return reply_unauthorized(rq->conn);
        path_known = true;
        if (r->method && strcmp(r->method, rq->method) != 0)
            continue;
        return r->fn(g, rq, arg);
    }
    if (path_known)
        return reply_err(rq->conn, 405, "method not allowed on this route");
    return reply_err(rq->conn, 404, "no such route");
}

int httpd_start(struct gateway *g, char *err, size_t errlen)
{
    struct http_server_opts o = {
        .listen = g->listen,
        .max_body = g->max_body,
        .conn_timeout_s = 300,
        .max_connections = g->max_connections, /* one thread each: bounded */
        .header_timeout_ms = g->header_timeout_ms,
        .max_per_addr = g->max_per_addr,
        .max_body_inflight = g->max_body_inflight,
        .error_headers = internal_hdr,
        .n_error_headers = 1,
        .handler = handle,
        .user = g,
    };
    struct http_server *s;
    int rc = http_server_start(&o, &s, err, errlen);
    if (rc)
        return rc;
    g->httpd = s;
    g->port = http_server_port(s);
    return 0;
}

void httpd_stop(struct gateway *g)
{
    http_server_stop(g->httpd);
    g->httpd = NULL;
}
