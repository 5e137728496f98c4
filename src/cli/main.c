/*
 * shmfaas — command-line client of shmfaasd (and of any OpenFaaS gateway for the common verbs).
 *
 *   shmfaas [--gateway URL] COMMAND ...      (URL also from OPENFAAS_URL; default 127.0.0.1:8080)
 *
 * Commands: login, deploy, list, describe, invoke, remove, scale, logs, model push|ls|rm, stats.
 * Basic auth (on by default in shmfaasd): see "credentials" below. Exit status: 0 ok, 1 the
 * gateway refused (its message is printed), 2 usage.
 */
#include "cli/cli.h"

#include "common/common.h"
#include "common/modelref.h"

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define BODY_MAX ((size_t)1 << 30)

struct cli {
    char gateway[512];
    const char *user, *password;
    char user_buf[256], pass_buf[256]; /* found credentials (find_credentials) */
};

struct reply {
    long status;
    char call_id[128]; /* the X-Call-Id header of the reply, "" when none */
    struct buf body;
};

/* ---- HTTP ---- */

static size_t on_data(char *data, size_t size, size_t n, void *user)
{
    struct reply *r = user;
    size_t len = size * n;
    return buf_append(&r->body, data, len) == 0 ? len : 0;
}

/* Keeps X-Call-Id (what an async invoke answers with). */
static size_t on_header(char *data, size_t size, size_t n, void *user)
{
    struct reply *r = user;
    size_t len = size * n;
    static const char key[] = "x-call-id:";
    if (len > sizeof key - 1 && strncasecmp(data, key, sizeof key - 1) == 0) {
        const char *v = data + sizeof key - 1;
        size_t vlen = len - (sizeof key - 1);
        while (vlen && (*v == ' ' || *v == '\t'))
            v++, vlen--;
        while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
            vlen--;
        if (vlen < sizeof r->call_id) {
            memcpy(r->call_id, v, vlen);
            r->call_id[vlen] = '\0';
        }
    }
    return len;
}

static int http_headers(const struct cli *c, const char *method, const char *path, const void *body,
                        size_t len, struct curl_slist *extra, struct reply *r);

static int http(const struct cli *c, const char *method, const char *path, const void *body,
                size_t len, const char *content_type, struct reply *r)
{
    char ct[256];
    struct curl_slist *hdrs = NULL;
    if (content_type) {
        snprintf(ct, sizeof ct, "Content-Type: %s", content_type);
        hdrs = curl_slist_append(hdrs, ct);
    }
    int rc = http_headers(c, method, path, body, len, hdrs, r);
    curl_slist_free_all(hdrs);
    return rc;
}

/* One request with the headers in extra (the caller's to free) and "Expect:" off. */
static int http_headers(const struct cli *c, const char *method, const char *path, const void *body,
                        size_t len, struct curl_slist *extra, struct reply *r)
{
    char url[2048];
    memset(r, 0, sizeof *r);
    snprintf(url, sizeof url, "%s%s", c->gateway, path);
    CURL *h = curl_easy_init();
    if (!h)
        return -ENOMEM;
    struct curl_slist *hdrs = NULL;
    for (const struct curl_slist *e = extra; e; e = e->next)
        hdrs = curl_slist_append(hdrs, e->data);
    hdrs = curl_slist_append(hdrs, "Expect:");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    if (c->user && c->password) {
        curl_easy_setopt(h, CURLOPT_USERNAME, c->user);
        curl_easy_setopt(h, CURLOPT_PASSWORD, c->password);
    }
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    if (rc != CURLE_OK) {
        fprintf(stderr, "shmfaas: %s %s: %s (is shmfaasd running? set --gateway or OPENFAAS_URL)\n",
                method, url, curl_easy_strerror(rc));
        return -EIO;
    }
    return 0;
}

static void reply_free(struct reply *r)
{
    free(r->body.data);
}

/* Prints the gateway's error ({"error": "..."} or plain text) and returns 1. */
static int report(const char *what, struct reply *r)
{
    json_t *j = r->body.data ? json_loads(r->body.data, 0, NULL) : NULL;
    const char *msg = json_string_value(json_object_get(j, "error"));
    fprintf(stderr, "shmfaas: %s: HTTP %ld: %s\n", what, r->status,
            msg            ? msg
            : r->body.data ? r->body.data
                           : "");
    json_decref(j);
    reply_free(r);
    return 1;
}

/* GET a JSON document; NULL (after printing why) on failure. */
static json_t *get_json(const struct cli *c, const char *path)
{
    struct reply r;
    if (http(c, "GET", path, NULL, 0, NULL, &r))
        return NULL;
    if (r.status != 200) {
        report(path, &r);
        return NULL;
    }
    json_t *j = json_loads(r.body.data ? r.body.data : "", 0, NULL);
    if (!j)
        fprintf(stderr, "shmfaas: %s: the gateway did not answer JSON\n", path);
    reply_free(&r);
    return j;
}

/* ---- deploy ---- */

static int deploy_one(const struct cli *c, const char *name, json_t *dep)
{
    char *body = json_dumps(dep, JSON_COMPACT);
    struct reply r;
    if (!body)
        return 1;
    /* as faas-cli: update first, create when the gateway says it does not exist */
    int rc = http(c, "PUT", "/system/functions", body, strlen(body), "application/json", &r);
    if (!rc && r.status == 404) {
        reply_free(&r);
        rc = http(c, "POST", "/system/functions", body, strlen(body), "application/json", &r);
    }
    free(body);
    if (rc)
        return 1;
    if (r.status < 200 || r.status > 202)
        return report(name, &r);
    printf("Deployed %s (HTTP %ld).\nURL: %s/function/%s\n", name, r.status, c->gateway, name);
    reply_free(&r);
    return 0;
}

static int add_kv(json_t *obj, const char *kv, const char *flag)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv) {
        fprintf(stderr, "shmfaas: %s wants KEY=VALUE, got \"%s\"\n", flag, kv);
        return -1;
    }
    char key[256];
    snprintf(key, sizeof key, "%.*s", (int)(eq - kv), kv);
    json_object_set_new(obj, key, json_string(eq + 1));
    return 0;
}

static const char *env_lookup_fn(const char *name, void *user)
{
    (void)user;
    return getenv(name);
}

static int remove_one(struct cli *c, const char *name, const char *ns);

/* deploy -f / remove -f: the stack file's functions that --filter or --regex select, each
 * deployed (PUT, then POST on 404) or removed; the provider's gateway unless one was given. */
static int each_in_stack(struct cli *c, const char *file, const char *filter, const char *regex,
                         bool gw_set, bool remove)
{
    uint8_t *text;
    size_t len;
    char err[512];
    struct stack st;
    if (read_file(file, 16u << 20, &text, &len, err, sizeof err)) {
        fprintf(stderr, "shmfaas: %s\n", err);
        return 1;
    }
    int rc = stack_parse((const char *)text, len, env_lookup_fn, NULL, &st, err, sizeof err);
    free(text);
    if (!rc && (rc = stack_select(&st, filter, regex, err, sizeof err)))
        stack_free(&st);
    if (rc) {
        fprintf(stderr, "shmfaas: %s: %s\n", file, err);
        return 1;
    }
    if (!gw_set && st.gateway[0])
        snprintf(c->gateway, sizeof c->gateway, "%s", st.gateway);
    const char *name;
    json_t *dep;
    int failed = 0;
    json_object_foreach(st.deployments, name, dep)
    {
        const char *ns = json_string_value(json_object_get(dep, "namespace"));
        failed |= remove ? remove_one(c, name, ns) : deploy_one(c, name, dep);
    }
    stack_free(&st);
    return failed;
}

static int cmd_deploy(struct cli *c, int argc, char **argv, bool gw_set)
{
    static const struct option opts[] = {
        {"yaml", required_argument, NULL, 'f'},  {"name", required_argument, NULL, 'n'},
        {"image", required_argument, NULL, 'i'}, {"env", required_argument, NULL, 'e'},
        {"label", required_argument, NULL, 'l'}, {"memory", required_argument, NULL, 'm'},
        {"private", no_argument, NULL, 'p'},     {"filter", required_argument, NULL, 'F'},
        {"regex", required_argument, NULL, 'R'}, {NULL, 0, NULL, 0}};
    const char *file = NULL, *name = NULL, *image = NULL, *memory = NULL, *filter = NULL,
               *regex = NULL;
    json_t *env = json_object(), *labels = json_object();
    int o, bad = 0;
    optind = 1;
    while ((o = getopt_long(argc, argv, "f:n:i:e:l:m:p", opts, NULL)) != -1) {
        switch (o) {
        case 'f':
            file = optarg;
            break;
        case 'n':
            name = optarg;
            break;
        case 'i':
            image = optarg;
            break;
        case 'e':
            bad |= add_kv(env, optarg, "--env");
            break;
        case 'l':
            bad |= add_kv(labels, optarg, "--label");
            break;
        case 'm':
            memory = optarg;
            break;
        case 'p':
            json_object_set_new(labels, "com.shmfaas.private", json_string("true"));
            break;
        case 'F':
            filter = optarg;
            break;
        case 'R':
            regex = optarg;
            break;
        default:
            bad = 1;
        }
    }
    if (!bad && file) {
        json_decref(env);
        json_decref(labels);
        return each_in_stack(c, file, filter, regex, gw_set, false);
    }
    if (bad || !name || !image) {
        fprintf(stderr, "usage: shmfaas deploy -f stack.yml [--filter GLOB | --regex RE]\n"
                        "       shmfaas deploy --name NAME --image MODEL [--env K=V]... "
                        "[--label K=V]... [--memory 256Mi] [--private]\n");
        json_decref(env);
        json_decref(labels);
        return 2;
    }
    json_t *dep =
        json_pack("{sssssoso}", "service", name, "image", image, "envVars", env, "labels", labels);
    json_object_set_new(dep, "annotations", json_object());
    if (memory)
        json_object_set_new(dep, "limits", json_pack("{ss}", "memory", memory));
    int rc = deploy_one(c, name, dep);
    json_decref(dep);
    return rc;
}

/* ---- list, describe, remove, scale ---- */

static int cmd_list(struct cli *c, int argc, char **argv)
{
    json_t *arr = get_json(c, "/system/functions");
    if (!arr)
        return 1;
    printf("%-24s %-12s %-9s %-9s %s\n", "Function", "Invocations", "Replicas", "Ready", "Model");
    size_t i;
    json_t *f;
    json_array_foreach(arr, i, f)
    {
        printf("%-24s %-12.0f %-9lld %-9lld %s\n", json_string_value(json_object_get(f, "name")),
               json_number_value(json_object_get(f, "invocationCount")),
               (long long)json_integer_value(json_object_get(f, "replicas")),
               (long long)json_integer_value(json_object_get(f, "availableReplicas")),
               json_string_value(json_object_get(f, "image")));
    }
    json_decref(arr);
    return 0;
}

static int need_name(int argc, char **argv, const char *usage)
{
    if (argc < 2) {
        fprintf(stderr, "usage: shmfaas %s\n", usage);
        return 0;
    }
    return 1;
}

static int cmd_describe(struct cli *c, int argc, char **argv)
{
    char path[512], size[32];
    if (!need_name(argc, argv, "describe NAME"))
        return 2;
    snprintf(path, sizeof path, "/system/function/%s?usage=1", argv[1]);
    json_t *f = get_json(c, path);
    if (!f)
        return 1;
    json_t *usage = json_object_get(f, "usage");
    long long avail = (long long)json_integer_value(json_object_get(f, "availableReplicas"));
    printf("Name:        %s\n", json_string_value(json_object_get(f, "name")));
    printf("Status:      %s\n", avail > 0 ? "Ready" : "Not Ready");
    const char *image = json_string_value(json_object_get(f, "imageStatus"));
    if (image) /* "compiling" while the store compiles its image ahead of the first request */
        printf("Image:       %s\n", image);
    printf("Replicas:    %lld (%lld ready)\n",
           (long long)json_integer_value(json_object_get(f, "replicas")), avail);
    printf("Model:       %s\n", json_string_value(json_object_get(f, "image")));
    printf("Invocations: %.0f\n", json_number_value(json_object_get(f, "invocationCount")));
    printf("URL:         %s/function/%s\n", c->gateway, argv[1]);
    printf("Memory:      %s (PSS of all instances)\n",
           format_size((uint64_t)json_integer_value(json_object_get(usage, "totalMemoryBytes")),
                       size, sizeof size));
    char *labels = json_dumps(json_object_get(f, "labels"), JSON_COMPACT);
    char *env = json_dumps(json_object_get(f, "envVars"), JSON_COMPACT);
    printf("Labels:      %s\nEnvironment: %s\n", labels ? labels : "{}", env ? env : "{}");
    free(labels);
    free(env);
    json_decref(f);
    return 0;
}

static int simple(struct cli *c, const char *method, const char *path, json_t *body,
                  const char *what, const char *done)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    struct reply r;
    int rc = http(c, method, path, text, text ? strlen(text) : 0, "application/json", &r);
    free(text);
    if (rc)
        return 1;
    if (r.status < 200 || r.status > 202)
        return report(what, &r);
    printf("%s\n", done);
    reply_free(&r);
    return 0;
}

static int remove_one(struct cli *c, const char *name, const char *ns)
{
    printf("Deleting: %s.\n", name);
    return simple(c, "DELETE", "/system/functions",
                  json_pack("{ssss}", "functionName", name, "namespace", ns ? ns : "openfaas-fn"),
                  name, "Removed.");
}

/* remove NAME... | remove -f stack.yml [--filter GLOB | --regex RE] */
static int cmd_remove(struct cli *c, int argc, char **argv, bool gw_set)
{
    static const struct option opts[] = {{"yaml", required_argument, NULL, 'f'},
                                         {"filter", required_argument, NULL, 'F'},
                                         {"regex", required_argument, NULL, 'R'},
                                         {NULL, 0, NULL, 0}};
    const char *file = NULL, *filter = NULL, *regex = NULL;
    int o, failed = 0;
    optind = 1;
    while ((o = getopt_long(argc, argv, "f:", opts, NULL)) != -1) {
        if (o == 'f')
            file = optarg;
        else if (o == 'F')
            filter = optarg;
        else if (o == 'R')
            regex = optarg;
        else
            return 2;
    }
    if (file)
        return each_in_stack(c, file, filter, regex, gw_set, true);
    if (optind >= argc) {
        fprintf(stderr, "usage: shmfaas remove NAME... | remove -f stack.yml [--filter GLOB | "
                        "--regex RE]\n");
        return 2;
    }
    for (int i = optind; i < argc; i++)
        failed |= remove_one(c, argv[i], NULL);
    return failed;
}

static int cmd_scale(struct cli *c, int argc, char **argv)
{
    char path[512];
    const char *n = argc >= 3 ? argv[2] : NULL;
    if (argc >= 4 && strcmp(argv[2], "--replicas") == 0)
        n = argv[3];
    char *end;
    long replicas = n ? strtol(n, &end, 10) : -1;
    if (argc < 3 || !n || *end || replicas < 0) {
        fprintf(stderr, "usage: shmfaas scale NAME [--replicas] N\n");
        return 2;
    }
    snprintf(path, sizeof path, "/system/scale-function/%s", argv[1]);
    return simple(c, "POST", path,
                  json_pack("{sssIss}", "serviceName", argv[1], "replicas", (json_int_t)replicas,
                            "namespace", "openfaas-fn"),
                  argv[1], "Scaled.");
}

/* ---- invoke, logs ---- */

static int read_stdin(char **out, size_t *len)
{
    struct buf b = {0};
    ssize_t r = 0;
    while (b.len <= BODY_MAX && buf_reserve(&b, 65536) == 0 &&
           (r = read(0, b.data + b.len, b.cap - b.len - 1)) > 0)
        b.len += (size_t)r;
    if (b.failed || b.len > BODY_MAX) {
        buf_free(&b);
        return -ENOMEM;
    }
    *out = b.data;
    *len = b.len;
    return 0;
}

/* invoke NAME [--content-type T] [--header K=V]... [--async [--callback-url URL]] < body:
 * POST /function/NAME (the reply body to stdout) or /async-function/NAME (202: the call id). */
static int cmd_invoke(struct cli *c, int argc, char **argv)
{
    static const struct option opts[] = {{"content-type", required_argument, NULL, 't'},
                                         {"header", required_argument, NULL, 'H'},
                                         {"async", no_argument, NULL, 'a'},
                                         {"callback-url", required_argument, NULL, 'c'},
                                         {NULL, 0, NULL, 0}};
    char path[512], line[1024];
    const char *ct = "application/octet-stream", *callback = NULL;
    bool async = false;
    struct curl_slist *hdrs = NULL;
    int o, bad = 0;
    optind = 1;
    while ((o = getopt_long(argc, argv, "H:a", opts, NULL)) != -1) {
        const char *eq = o == 'H' ? strchr(optarg, '=') : NULL;
        if (o == 't')
            ct = optarg;
        else if (o == 'a')
            async = true;
        else if (o == 'c')
            callback = optarg;
        else if (o == 'H' && eq && eq != optarg && strpbrk(optarg, "\r\n") == NULL) {
            snprintf(line, sizeof line, "%.*s: %s", (int)(eq - optarg), optarg, eq + 1);
            hdrs = curl_slist_append(hdrs, line);
        } else
            bad = 1;
    }
    if (bad || optind + 1 != argc || (callback && !async) ||
        (callback && strpbrk(callback, "\r\n"))) {
        fprintf(stderr, "usage: shmfaas invoke NAME [--content-type TYPE] [--header K=V]... "
                        "[--async [--callback-url URL]] < body\n");
        curl_slist_free_all(hdrs);
        return 2;
    }
    const char *name = argv[optind];
    snprintf(line, sizeof line, "Content-Type: %s", ct);
    hdrs = curl_slist_append(hdrs, line);
    if (callback) {
        snprintf(line, sizeof line, "X-Callback-Url: %s", callback);
        hdrs = curl_slist_append(hdrs, line);
    }
    char *body;
    size_t len;
    if (read_stdin(&body, &len)) {
        fprintf(stderr, "shmfaas: cannot read the request body from stdin\n");
        curl_slist_free_all(hdrs);
        return 1;
    }
    snprintf(path, sizeof path, "/%s/%s", async ? "async-function" : "function", name);
    struct reply r;
    int rc = http_headers(c, "POST", path, body, len, hdrs, &r);
    free(body);
    curl_slist_free_all(hdrs);
    if (rc)
        return 1;
    if (r.status >= 400)
        return report(name, &r);
    if (async)
        printf("Function queued for asynchronous processing (HTTP %ld).\nX-Call-Id: %s\n", r.status,
               r.call_id);
    else if (r.body.len)
        fwrite(r.body.data, 1, r.body.len, stdout);
    reply_free(&r);
    return 0;
}

static int cmd_logs(struct cli *c, int argc, char **argv)
{
    char path[512];
    if (!need_name(argc, argv, "logs NAME [--tail N]"))
        return 2;
    long tail = argc >= 4 && strcmp(argv[2], "--tail") == 0 ? strtol(argv[3], NULL, 10) : -1;
    snprintf(path, sizeof path, "/system/logs?name=%s&tail=%ld", argv[1], tail);
    struct reply r;
    if (http(c, "GET", path, NULL, 0, NULL, &r))
        return 1;
    if (r.status != 200)
        return report(argv[1], &r);
    for (char *line = r.body.data, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        json_t *j = json_loads(line, 0, NULL);
        printf("%s %s %s\n", json_string_value(json_object_get(j, "timestamp")),
               json_string_value(json_object_get(j, "instance")),
               json_string_value(json_object_get(j, "text")));
        json_decref(j);
    }
    reply_free(&r);
    return 0;
}

/* ---- models ---- */

static int model_push(struct cli *c, int argc, char **argv)
{
    char path[512], err[512];
    uint8_t *data;
    size_t len;
    if (argc < 4) {
        fprintf(stderr, "usage: shmfaas model push NAME[:TAG] FILE.onnx\n");
        return 2;
    }
    if (read_file(argv[3], BODY_MAX, &data, &len, err, sizeof err)) {
        fprintf(stderr, "shmfaas: %s\n", err);
        return 1;
    }
    snprintf(path, sizeof path, "/system/models/%s", argv[2]);
    struct reply r;
    int rc = http(c, "POST", path, data, len, "application/octet-stream", &r);
    free(data);
    if (rc)
        return 1;
    if (r.status < 200 || r.status > 202)
        return report(argv[2], &r);
    json_t *j = json_loads(r.body.data ? r.body.data : "", 0, NULL);
    const char *digest = json_string_value(json_object_get(j, "digest"));
    const char *name = json_string_value(json_object_get(j, "name"));
    printf("Pushed model %s (%zu bytes).\n", name ? name : argv[2], len);
    if (digest) /* what a deployment pins the exact bytes with */
        printf("Digest: %s (deploy %s@%s to pin these bytes)\n", digest, name ? name : argv[2],
               digest);
    json_decref(j);
    reply_free(&r);
    return 0;
}

static int model_ls(struct cli *c)
{
    char size[32];
    json_t *j = get_json(c, "/system/models");
    if (!j)
        return 1;
    printf("%-36s %-12s %s\n", "Model", "ONNX size", "Functions");
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(j, "models"), i, m)
    {
        char *fns = json_dumps(json_object_get(m, "functions"), JSON_COMPACT);
        printf("%-36s %-12s %s\n", json_string_value(json_object_get(m, "name")),
               format_size((uint64_t)json_integer_value(json_object_get(m, "bytes")), size,
                           sizeof size),
               fns ? fns : "[]");
        free(fns);
    }
    json_decref(j);
    return 0;
}

static int cmd_model(struct cli *c, int argc, char **argv)
{
    char path[512];
    if (argc >= 2 && strcmp(argv[1], "push") == 0)
        return model_push(c, argc, argv);
    if (argc >= 2 && strcmp(argv[1], "ls") == 0)
        return model_ls(c);
    if (argc >= 3 && strcmp(argv[1], "rm") == 0) {
        snprintf(path, sizeof path, "/system/models/%s", argv[2]);
        return simple(c, "DELETE", path, NULL, argv[2], "Removed.");
    }
    fprintf(stderr, "usage: shmfaas model push NAME[:TAG] FILE | ls | rm NAME[:TAG]\n");
    return 2;
}

/* ---- stats: what sharing saves ---- */

/* The image size the store reports for a model name, else the ONNX file size. */
static uint64_t image_bytes(const json_t *models, const char *name, int *from_store)
{
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(json_object_get(models, "store"), "models"), i, m)
    {
        const char *names = json_string_value(json_object_get(m, "names"));
        size_t n = strlen(name);
        for (const char *p = names; p && (p = strstr(p, name)); p += n) {
            bool start = p == names || p[-1] == ',' || p[-1] == ' ';
            bool end = p[n] == '\0' || p[n] == ',' || p[n] == ' ';
            if (start && end) {
                *from_store = 1;
                return (uint64_t)json_integer_value(json_object_get(m, "bytes"));
            }
        }
    }
    json_array_foreach(json_object_get(models, "models"), i, m)
    {
        if (strcmp(json_string_value(json_object_get(m, "name")), name) == 0)
            return (uint64_t)json_integer_value(json_object_get(m, "bytes"));
    }
    return 0;
}

struct totals {
    uint64_t shared, private_copies;
    int functions, instances;
    bool onnx_sizes; /* some image size was not known to the store */
};

static void stats_row(const struct cli *c, const json_t *f, const json_t *models, json_t *seen,
                      struct totals *t)
{
    char path[512], a[32], b[32], d[32];
    const char *name = json_string_value(json_object_get(f, "name"));
    const char *model = json_string_value(json_object_get(f, "image"));
    snprintf(path, sizeof path, "/system/function/%s?usage=1", name);
    json_t *st = get_json(c, path);
    json_t *u = json_object_get(st, "usage");
    int n = (int)json_integer_value(json_object_get(st, "replicas"));
    uint64_t pss = (uint64_t)json_integer_value(json_object_get(u, "totalMemoryBytes"));
    uint64_t uss = (uint64_t)json_integer_value(json_object_get(u, "ussBytes"));
    int from_store = 0;
    char listed[MODEL_REF_CANON_MAX + 1]; /* "name:latest" is listed as "name" */
    if (model)
        model = model_ref_listed(model, listed, sizeof listed);
    uint64_t img = model ? image_bytes(models, model, &from_store) : 0;
    printf("%-20s %-20s %9d %12s %12s %12s%s\n", name, model, n, format_size(pss, a, sizeof a),
           format_size(uss, b, sizeof b), format_size(img, d, sizeof d), from_store ? "" : "*");
    t->functions++;
    t->instances += n;
    t->onnx_sizes |= !from_store;
    t->private_copies += uss + (uint64_t)n * img;
    t->shared += uss;
    if (n > 0 && !json_object_get(seen, model)) {
        json_object_set_new(seen, model, json_true());
        t->shared += img;
    }
    json_decref(st);
}

static int cmd_stats(struct cli *c)
{
    char a[32], b[32], d[32];
    json_t *fns = get_json(c, "/system/functions");
    json_t *models = fns ? get_json(c, "/system/models") : NULL;
    if (!models) {
        json_decref(fns);
        return 1;
    }
    struct totals t = {0};
    json_t *seen = json_object();
    printf("%-20s %-20s %9s %12s %12s %12s\n", "FUNCTION", "MODEL", "INSTANCES", "PSS", "USS",
           "IMAGE");
    size_t i;
    json_t *f;
    json_array_foreach(fns, i, f) stats_row(c, f, models, seen, &t);
    printf("\n%d functions, %d instances, %zu models in use.\n", t.functions, t.instances,
           json_object_size(seen));
    printf("memory, shared images (one per model + private memory): %s\n",
           format_size(t.shared, a, sizeof a));
    printf("memory, if every instance had a private copy:          %s\n",
           format_size(t.private_copies, b, sizeof b));
    printf("saved by sharing:                                        %s\n",
           format_size(t.private_copies > t.shared ? t.private_copies - t.shared : 0, d, sizeof d));
    if (t.onnx_sizes)
        printf("(* image not resident in the store: ONNX file size shown)\n");
    json_decref(seen);
    json_decref(fns);
    json_decref(models);
    return 0;
}

/* ---- credentials ----
 *
 * Every verb sends basic auth, found in this order: OPENFAAS_USER/OPENFAAS_PASSWORD; what
 * `shmfaas login` saved for this gateway (~/.shmfaas/credentials, 0600, or $SHMFAAS_CONFIG/
 * credentials); as root, the password shmfaasd generated (STATE/secrets, STATE from --state,
 * SHMFAAS_STATE or /var/lib/shmfaas). */

static int config_dir(char *out, size_t len)
{
    const char *d = getenv("SHMFAAS_CONFIG");
    const char *home = getenv("HOME");
    int n = d && *d         ? snprintf(out, len, "%s", d)
            : home && *home ? snprintf(out, len, "%s/.shmfaas", home)
                            : -1;
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* The saved credentials file as JSON {"GATEWAY": {"user": U, "password": P}, ...}; an empty
 * object when there is none. */
static json_t *credentials_load(void)
{
    char dir[1024], path[1100], err[256];
    uint8_t *data = NULL;
    size_t n = 0;
    json_t *j = NULL;
    if (config_dir(dir, sizeof dir) == 0) {
        snprintf(path, sizeof path, "%s/credentials", dir);
        if (read_file(path, 1 << 20, &data, &n, err, sizeof err) == 0)
            j = json_loadb((const char *)data, n, 0, NULL);
        free(data);
    }
    if (!json_is_object(j)) {
        json_decref(j);
        j = json_object();
    }
    return j;
}

/* One line of a secret file, without its newline. */
static int read_secret_line(const char *path, char *out, size_t len)
{
    char err[256];
    uint8_t *data;
    size_t n;
    if (read_file(path, len - 1, &data, &n, err, sizeof err))
        return -1;
    while (n && (data[n - 1] == '\n' || data[n - 1] == '\r'))
        n--;
    memcpy(out, data, n);
    out[n] = '\0';
    free(data);
    return n && !memchr(out, '\0', n) ? 0 : -1;
}

static void find_credentials(struct cli *c, const char *state)
{
    if (c->user && c->password)
        return;
    json_t *all = credentials_load();
    json_t *mine = json_object_get(all, c->gateway);
    const char *u = json_string_value(json_object_get(mine, "user"));
    const char *p = json_string_value(json_object_get(mine, "password"));
    if (u && p && strlen(u) < sizeof c->user_buf && strlen(p) < sizeof c->pass_buf) {
        snprintf(c->user_buf, sizeof c->user_buf, "%s", u);
        snprintf(c->pass_buf, sizeof c->pass_buf, "%s", p);
        c->user = c->user_buf;
        c->password = c->pass_buf;
    }
    json_decref(all);
    if (c->user && c->password)
        return;
    char path[1100];
    snprintf(path, sizeof path, "%s/secrets/basic-auth-password", state);
    if (read_secret_line(path, c->pass_buf, sizeof c->pass_buf) == 0) { /* root, or its owner */
        snprintf(path, sizeof path, "%s/secrets/basic-auth-user", state);
        if (read_secret_line(path, c->user_buf, sizeof c->user_buf) != 0)
            snprintf(c->user_buf, sizeof c->user_buf, "admin");
        c->user = c->user_buf;
        c->password = c->pass_buf;
    }
}

/* shmfaas login [--username U] --password-stdin: checks the credentials with GET
 * /system/functions (as faas-cli login does), then saves them for this gateway. */
static int cmd_login(struct cli *c, int argc, char **argv)
{
    static const struct option opts[] = {{"username", required_argument, NULL, 'u'},
                                         {"password-stdin", no_argument, NULL, 's'},
                                         {"gateway", required_argument, NULL, 'g'},
                                         {NULL, 0, NULL, 0}};
    const char *user = "admin";
    bool from_stdin = false;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "u:sg:", opts, NULL)) != -1) {
        if (o == 'u') {
            user = optarg;
        } else if (o == 's') {
            from_stdin = true;
        } else if (o == 'g' && strlen(optarg) < sizeof c->gateway) {
            snprintf(c->gateway, sizeof c->gateway, "%s", optarg);
            size_t gl = strlen(c->gateway);
            if (gl && c->gateway[gl - 1] == '/')
                c->gateway[gl - 1] = '\0';
        } else {
            return 2;
        }
    }
    if (!from_stdin || optind < argc || !*user || strchr(user, ':')) {
        fprintf(stderr, "usage: shmfaas login [--gateway URL] [--username U] --password-stdin "
                        "(user without ':')\n");
        return 2;
    }
    char *pass = NULL;
    size_t n = 0;
    if (read_stdin(&pass, &n))
        return 1;
    while (n && (pass[n - 1] == '\n' || pass[n - 1] == '\r'))
        n--;
    pass[n] = '\0';
    if (!n || n >= sizeof c->pass_buf || memchr(pass, '\0', n)) {
        fprintf(stderr, "shmfaas login: the password on stdin is empty, too long or not text\n");
        free(pass);
        return 1;
    }
    c->user = user;
    c->password = pass;
    struct reply r;
    int rc = http(c, "GET", "/system/functions", NULL, 0, NULL, &r);
    if (!rc && r.status != 200) {
        rc = report("login", &r);
    } else if (!rc) {
        reply_free(&r);
        char dir[1024], path[1100], err[512];
        json_t *all = credentials_load();
        json_object_set_new(all, c->gateway, json_pack("{ssss}", "user", user, "password", pass));
        char *text = json_dumps(all, JSON_INDENT(2));
        json_decref(all);
        rc = config_dir(dir, sizeof dir);
        if (!rc && (mkdir_p(dir, 0700) != 0 || chmod(dir, 0700) != 0))
            rc = -errno;
        snprintf(path, sizeof path, "%s/credentials", dir);
        if (!rc && text && write_file_atomic(path, text, strlen(text), 0600, err, sizeof err)) {
            fprintf(stderr, "shmfaas login: %s\n", err);
            rc = 1;
        } else if (rc || !text) {
            fprintf(stderr, "shmfaas login: cannot save credentials in %s: %s\n", dir,
                    strerror(rc ? -rc : ENOMEM));
            rc = 1;
        } else {
            printf("credentials for %s saved in %s\n", c->gateway, path);
        }
        free(text);
    } else {
        rc = 1;
    }
    explicit_bzero(pass, n);
    free(pass);
    return rc;
}

/* ---- main ---- */

static void usage(void)
{
    fprintf(
        stderr,
        "usage: shmfaas [--gateway URL] [--state DIR] COMMAND\n"
        "  login [--gateway URL] [--username admin] --password-stdin\n"
        "  deploy -f stack.yml [--filter GLOB | --regex RE]\n"
        "  deploy --name N --image MODEL[:TAG][@sha256:HEX] [--env K=V] [--label K=V]\n"
        "         [--memory 256Mi] [--private]\n"
        "  list | describe NAME | scale NAME N | logs NAME [--tail N]\n"
        "  invoke NAME [--content-type T] [--header K=V] [--async [--callback-url URL]] < body\n"
        "  remove NAME... | remove -f stack.yml [--filter GLOB | --regex RE]\n"
        "  model push NAME[:TAG] FILE | model ls | model rm NAME[:TAG] | stats\n"
        "The gateway URL also comes from OPENFAAS_URL (default http://127.0.0.1:8080).\n"
        "Credentials: OPENFAAS_USER/OPENFAAS_PASSWORD, else what 'login' saved, else (as root)\n"
        "STATE/secrets of shmfaasd (STATE: --state, SHMFAAS_STATE or /var/lib/shmfaas).\n");
}

int main(int argc, char **argv)
{
    struct cli c = {.user = getenv("OPENFAAS_USER"), .password = getenv("OPENFAAS_PASSWORD")};
    const char *url = getenv("OPENFAAS_URL");
    bool gw_set = url && *url;
    const char *state = getenv("SHMFAAS_STATE");
    int i = 1;
    while (i + 1 < argc) {
        if (strcmp(argv[i], "--gateway") == 0 || strcmp(argv[i], "-g") == 0) {
            url = argv[i + 1];
            gw_set = true;
        } else if (strcmp(argv[i], "--state") == 0) {
            state = argv[i + 1];
        } else {
            break;
        }
        i += 2;
    }
    snprintf(c.gateway, sizeof c.gateway, "%s", url && *url ? url : "http://127.0.0.1:8080");
    size_t n = strlen(c.gateway);
    if (n && c.gateway[n - 1] == '/')
        c.gateway[n - 1] = '\0';
    if (i >= argc) {
        usage();
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const char *cmd = argv[i];
    int sub_argc = argc - i;
    char **sub_argv = argv + i;
    int rc;
    if (strcmp(cmd, "login") != 0)
        find_credentials(&c, state && *state ? state : "/var/lib/shmfaas");
    if (strcmp(cmd, "login") == 0)
        rc = cmd_login(&c, sub_argc, sub_argv);
    else if (strcmp(cmd, "deploy") == 0)
        rc = cmd_deploy(&c, sub_argc, sub_argv, gw_set);
    else if (strcmp(cmd, "list") == 0 || strcmp(cmd, "ls") == 0)
        rc = cmd_list(&c, sub_argc, sub_argv);
    else if (strcmp(cmd, "describe") == 0)
        rc = cmd_describe(&c, sub_argc, sub_argv);
    else if (strcmp(cmd, "invoke") == 0)
        rc = cmd_invoke(&c, sub_argc, sub_argv);
    else if (strcmp(cmd, "remove") == 0 || strcmp(cmd, "rm") == 0)
        rc = cmd_remove(&c, sub_argc, sub_argv, gw_set);
    else if (strcmp(cmd, "scale") == 0)
        rc = cmd_scale(&c, sub_argc, sub_argv);
    else if (strcmp(cmd, "logs") == 0)
        rc = cmd_logs(&c, sub_argc, sub_argv);
    else if (strcmp(cmd, "model") == 0)
        rc = cmd_model(&c, sub_argc, sub_argv);
    else if (strcmp(cmd, "stats") == 0)
        rc = cmd_stats(&c);
    else {
        usage();
        rc = 2;
    }
    curl_global_cleanup();
    return rc;
}
