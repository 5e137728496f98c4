/*
 * test_admission — shmfaas-webhook's decision (webhook/admission.h) on AdmissionReview bodies:
 * pods shaped as faas-netes and Knative make them, a pod already injected (idempotent), root pods
 * refused, pods without the label, and malformed and hostile bodies. Each returned JSON Patch is
 * applied here (a small RFC 6902 applier: add and replace, the only operations the webhook emits)
 * and the patched pod is checked, then reviewed again: a second pass must patch nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "webhook/admission.h"

static const struct admission_opts opts = {.socket_dir = "/run/shmfaas",
                                           .mount_path = "/run/shmfaas",
                                           .selector = "com.shmfaas.model",
                                           .run_as_user = 12000};

/* ---- a JSON Patch applier (add, replace) ---- */

/* Next RFC 6901 token of *p into tok (unescaped); 0 at the end. */
static int next_token(const char **p, char *tok, size_t size)
{
    if (**p != '/')
        return 0;
    size_t n = 0;
    for ((*p)++; **p && **p != '/'; (*p)++) {
        char c = **p;
        if (c == '~') {
            (*p)++;
            assert_true(**p == '0' || **p == '1');
            c = **p == '0' ? '~' : '/';
        }
        assert_true(n + 1 < size);
        tok[n++] = c;
    }
    tok[n] = '\0';
    return 1;
}

static void apply_op(json_t *doc, json_t *op)
{
    const char *kind = json_string_value(json_object_get(op, "op"));
    const char *p = json_string_value(json_object_get(op, "path"));
    json_t *value = json_object_get(op, "value");
    assert_non_null(kind);
    assert_non_null(p);
    assert_non_null(value);
    bool add = !strcmp(kind, "add");
    assert_true(add || !strcmp(kind, "replace"));
    char tok[256];
    json_t *parent = doc;
    assert_int_equal(next_token(&p, tok, sizeof(tok)), 1);
    while (*p == '/') { /* tok names an intermediate member */
        parent = json_is_array(parent) ? json_array_get(parent, strtoul(tok, NULL, 10))
                                       : json_object_get(parent, tok);
        assert_non_null(parent);
        next_token(&p, tok, sizeof(tok));
    }
    if (json_is_object(parent)) {
        assert_true(add || json_object_get(parent, tok));
        json_object_set(parent, tok, value);
    } else {
        assert_true(json_is_array(parent));
        if (!strcmp(tok, "-")) {
            assert_true(add);
            json_array_append(parent, value);
        } else {
            size_t i = strtoul(tok, NULL, 10);
            assert_true(i < json_array_size(parent) + add);
            assert_int_equal(add ? json_array_insert(parent, i, value)
                                 : json_array_set(parent, i, value),
                             0);
        }
    }
}

/* ---- reviews ---- */

static char *review_text(const char *uid, const char *op, const char *kind, const char *pod)
{
    size_t n = strlen(pod) + 512;
    char *s = malloc(n);
    assert_non_null(s);
    snprintf(s, n,
             "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":"
             "{\"uid\":\"%s\",\"kind\":{\"group\":\"\",\"version\":\"v1\",\"kind\":\"%s\"},"
             "\"operation\":\"%s\",\"namespace\":\"openfaas-fn\",\"object\":%s}}",
             uid, kind, op, pod);
    return s;
}

/* Runs one body; returns the parsed answer and the HTTP status. */
static json_t *run(const char *body, size_t len, unsigned *status)
{
    char *out = NULL, err[256];
    assert_int_equal(admission_review(&opts, (const uint8_t *)body, len, status, &out, err,
                                      sizeof(err)),
                     0);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    assert_non_null(j);
    free(out);
    return j;
}

/* Reviews pod (CREATE Pod); checks the envelope; returns the response object (owned by *ans). */
static json_t *review(const char *pod, json_t **ans)
{
    char *body = review_text("7f0c-uid", "CREATE", "Pod", pod);
    unsigned status;
    *ans = run(body, strlen(body), &status);
    free(body);
    assert_int_equal(status, 200);
    assert_string_equal(json_string_value(json_object_get(*ans, "apiVersion")),
                        "admission.k8s.io/v1");
    assert_string_equal(json_string_value(json_object_get(*ans, "kind")), "AdmissionReview");
    json_t *resp = json_object_get(*ans, "response");
    assert_string_equal(json_string_value(json_object_get(resp, "uid")), "7f0c-uid");
    return resp;
}

/* The decoded patch of a response, or NULL when there is none. */
static json_t *patch_of(json_t *resp)
{
    const char *b64 = json_string_value(json_object_get(resp, "patch"));
    if (!b64)
        return NULL;
    assert_string_equal(json_string_value(json_object_get(resp, "patchType")), "JSONPatch");
    size_t n = strlen(b64);
    unsigned char *raw = malloc(n + 1);
    int len = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)n);
    assert_true(len >= 0);
    while (len > 0 && raw[len - 1] == '\0') /* DecodeBlock counts the padding */
        len--;
    json_error_t je;
    json_t *p = json_loadb((const char *)raw, (size_t)len, 0, &je);
    free(raw);
    assert_true(json_is_array(p));
    return p;
}

/* Allowed, patched, patch applied to pod; then the patched pod reviewed again gets no patch.
 * Returns the patched pod. */
static json_t *mutate(const char *pod_text)
{
    json_t *ans, *resp = review(pod_text, &ans);
    assert_true(json_is_true(json_object_get(resp, "allowed")));
    json_t *patch = patch_of(resp);
    json_error_t je;
    json_t *pod = json_loads(pod_text, 0, &je);
    assert_non_null(pod);
    size_t i;
    json_t *op;
    json_array_foreach(patch, i, op)
        apply_op(pod, op);
    json_decref(patch);
    json_decref(ans);
    char *again = json_dumps(pod, JSON_COMPACT);
    resp = review(again, &ans);
    assert_true(json_is_true(json_object_get(resp, "allowed")));
    assert_null(json_object_get(resp, "patch"));
    json_decref(ans);
    free(again);
    return pod;
}

static json_t *find_named(json_t *arr, const char *name)
{
    size_t i;
    json_t *e, *hit = NULL;
    json_array_foreach(arr, i, e)
        if (!strcmp(json_string_value(json_object_get(e, "name")), name)) {
            assert_null(hit); /* never twice */
            hit = e;
        }
    return hit;
}

/* Every container mounts volname read-only at mount and has store_socket. */
static void assert_injected(json_t *pod, const char *volname, const char *mount)
{
    json_t *spec = json_object_get(pod, "spec");
    json_t *vol = find_named(json_object_get(spec, "volumes"), volname);
    assert_non_null(vol);
    const char *path = json_string_value(json_object_get(json_object_get(vol, "hostPath"), "path"));
    assert_true(!strcmp(path, "/run/shmfaas") || !strcmp(path, "/run/shmfaas/"));
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(spec, "containers"), i, c) {
        json_t *m = find_named(json_object_get(c, "volumeMounts"), volname);
        assert_non_null(m);
        assert_string_equal(json_string_value(json_object_get(m, "mountPath")), mount);
        assert_true(json_is_true(json_object_get(m, "readOnly")));
        json_t *e = find_named(json_object_get(c, "env"), "store_socket");
        assert_non_null(e);
    }
    json_t *sc = json_object_get(spec, "securityContext");
    assert_true(json_is_true(json_object_get(sc, "runAsNonRoot")));
}

/* ---- pods ---- */

/* The pod of a Deployment as faas-netes makes it from a stack.yml with the model label. */
static const char faas_netes_pod[] =
    "{\"metadata\":{\"generateName\":\"resnet50-6d9f7c-\",\"labels\":{\"faas_function\":"
    "\"resnet50\",\"com.shmfaas.model\":\"resnet50\",\"pod-template-hash\":\"6d9f7c\"},"
    "\"annotations\":{\"prometheus.io.scrape\":\"false\"}},\"spec\":{\"containers\":[{\"name\":"
    "\"resnet50\",\"image\":\"localhost/shmfaas:latest\",\"ports\":[{\"containerPort\":8080,"
    "\"name\":\"http\",\"protocol\":\"TCP\"}],\"env\":[{\"name\":\"model\",\"value\":\"resnet50\"}],"
    "\"resources\":{\"limits\":{\"memory\":\"64Mi\"}},\"livenessProbe\":{\"httpGet\":{\"path\":"
    "\"/_/health\",\"port\":8080},\"initialDelaySeconds\":2,\"periodSeconds\":2,"
    "\"timeoutSeconds\":1,\"failureThreshold\":3},\"readinessProbe\":{\"httpGet\":{\"path\":"
    "\"/_/health\",\"port\":8080},\"initialDelaySeconds\":2,\"periodSeconds\":2,"
    "\"timeoutSeconds\":1,\"failureThreshold\":3},\"imagePullPolicy\":\"Never\","
    "\"securityContext\":{\"readOnlyRootFilesystem\":false}}],\"restartPolicy\":\"Always\","
    "\"dnsPolicy\":\"ClusterFirst\"}}";

static void faas_netes(void **state)
{
    json_t *pod = mutate(faas_netes_pod);
    assert_injected(pod, ADMISSION_VOLUME, "/run/shmfaas");
    json_t *spec = json_object_get(pod, "spec");
    json_t *sc = json_object_get(spec, "securityContext");
    assert_int_equal(json_integer_value(json_object_get(sc, "runAsUser")), 12000);
    json_t *c = json_array_get(json_object_get(spec, "containers"), 0);
    assert_int_equal(json_array_size(json_object_get(c, "env")), 2); /* model kept, one added */
    assert_string_equal(json_string_value(json_object_get(
                            find_named(json_object_get(c, "env"), "store_socket"), "value")),
                        "/run/shmfaas/store.sock");
    /* the mark's key holds a '/': the patch path escaped it as ~1 */
    json_t *ann = json_object_get(json_object_get(pod, "metadata"), "annotations");
    assert_string_equal(json_string_value(json_object_get(ann, ADMISSION_MARK)), "true");
    assert_string_equal(json_string_value(json_object_get(ann, "prometheus.io.scrape")), "false");
    json_decref(pod);
}

/* A Knative revision's pod: annotation instead of label, the queue-proxy sidecar (its own
 * non-root securityContext), user-container with env already. */
static const char knative_pod[] =
    "{\"metadata\":{\"labels\":{\"serving.knative.dev/service\":\"resnet50\"},\"annotations\":{"
    "\"com.shmfaas.model\":\"resnet50\",\"autoscaling.knative.dev/min-scale\":\"1\"}},\"spec\":{"
    "\"containers\":[{\"name\":\"user-container\",\"image\":\"localhost/shmfaas:latest\","
    "\"ports\":[{\"containerPort\":8080,\"name\":\"user-port\"}],\"env\":[{\"name\":\"PORT\","
    "\"value\":\"8080\"},{\"name\":\"K_SERVICE\",\"value\":\"resnet50\"}]},{\"name\":"
    "\"queue-proxy\",\"image\":\"gcr.io/knative-releases/queue\",\"securityContext\":{"
    "\"allowPrivilegeEscalation\":false,\"readOnlyRootFilesystem\":true,\"runAsNonRoot\":true,"
    "\"capabilities\":{\"drop\":[\"ALL\"]}}}],\"enableServiceLinks\":false}}";

static void knative(void **state)
{
    json_t *pod = mutate(knative_pod);
    assert_injected(pod, ADMISSION_VOLUME, "/run/shmfaas");
    json_t *c = json_array_get(json_object_get(json_object_get(pod, "spec"), "containers"), 0);
    assert_int_equal(json_array_size(json_object_get(c, "env")), 3);
    json_t *sc = json_object_get(json_object_get(pod, "spec"), "securityContext");
    assert_int_equal(json_integer_value(json_object_get(sc, "runAsUser")), 12000);
    json_decref(pod);
}

/* A manifest that mounts the socket itself (examples/kubernetes): its volume name is reused, nothing
 * duplicated; every container sets its own non-root uid, so no pod-level uid is added. */
static void already_injected(void **state)
{
    const char *pod_text =
        "{\"metadata\":{\"labels\":{\"com.shmfaas.model\":\"resnet50\"}},\"spec\":{"
        "\"volumes\":[{\"name\":\"store\",\"hostPath\":{\"path\":\"/run/shmfaas/\"}}],"
        "\"containers\":[{\"name\":\"fn\",\"image\":\"x\",\"securityContext\":{\"runAsUser\":"
        "12001},\"volumeMounts\":[{\"name\":\"store\",\"mountPath\":\"/sock\"}],\"env\":[{"
        "\"name\":\"store_socket\",\"value\":\"/sock/store.sock\"}]}]}}";
    json_t *pod = mutate(pod_text);
    assert_injected(pod, "store", "/sock");
    json_t *spec = json_object_get(pod, "spec");
    assert_int_equal(json_array_size(json_object_get(spec, "volumes")), 1);
    json_t *c = json_array_get(json_object_get(spec, "containers"), 0);
    assert_int_equal(json_array_size(json_object_get(c, "volumeMounts")), 1);
    assert_int_equal(json_array_size(json_object_get(c, "env")), 1); /* the deployer's path */
    assert_null(json_object_get(json_object_get(spec, "securityContext"), "runAsUser"));
    json_decref(pod);

    /* mounted elsewhere without store_socket: the env names the socket where it is mounted */
    pod = mutate("{\"metadata\":{\"labels\":{\"com.shmfaas.model\":\"m\"}},\"spec\":{"
                 "\"volumes\":[{\"name\":\"s\",\"hostPath\":{\"path\":\"/run/shmfaas\"}}],"
                 "\"containers\":[{\"name\":\"a\",\"volumeMounts\":[{\"name\":\"s\","
                 "\"mountPath\":\"/sock\",\"readOnly\":false}]}]}}");
    assert_injected(pod, "s", "/sock");
    c = json_array_get(json_object_get(json_object_get(pod, "spec"), "containers"), 0);
    assert_string_equal(json_string_value(json_object_get(
                            find_named(json_object_get(c, "env"), "store_socket"), "value")),
                        "/sock/store.sock");
    json_decref(pod);

    /* runAsNonRoot false at pod level: fixed to true, the uid kept */
    pod = mutate("{\"metadata\":{\"labels\":{\"com.shmfaas.model\":\"m\"}},\"spec\":{"
                 "\"securityContext\":{\"runAsNonRoot\":false,\"runAsUser\":4242},"
                 "\"containers\":[{\"name\":\"a\"}]}}");
    json_t *sc = json_object_get(json_object_get(pod, "spec"), "securityContext");
    assert_true(json_is_true(json_object_get(sc, "runAsNonRoot")));
    assert_int_equal(json_integer_value(json_object_get(sc, "runAsUser")), 4242);
    json_decref(pod);
}

/* Pods without the selector, other kinds and other operations: allowed, no patch. */
static void unselected(void **state)
{
    json_t *ans, *resp = review("{\"metadata\":{\"labels\":{\"app\":\"web\"}},\"spec\":{"
                                "\"containers\":[{\"name\":\"a\",\"securityContext\":{"
                                "\"privileged\":true}}]}}",
                                &ans);
    assert_true(json_is_true(json_object_get(resp, "allowed")));
    assert_null(json_object_get(resp, "patch"));
    json_decref(ans);
    const char *variants[][2] = {{"UPDATE", "Pod"}, {"DELETE", "Pod"}, {"CREATE", "Deployment"}};
    for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
        char *body = review_text("u", variants[i][0], variants[i][1], faas_netes_pod);
        unsigned status;
        ans = run(body, strlen(body), &status);
        assert_int_equal(status, 200);
        resp = json_object_get(ans, "response");
        assert_true(json_is_true(json_object_get(resp, "allowed")));
        assert_null(json_object_get(resp, "patch"));
        json_decref(ans);
        free(body);
    }
}

/* Refused pods: allowed false, the status code, a message naming the field. */
static void refused(void **state)
{
    static const struct {
        const char *spec; /* the pod's spec */
        int code;
        const char *says;
    } cases[] = {
        {"{\"securityContext\":{\"runAsUser\":0},\"containers\":[{\"name\":\"a\"}]}", 403,
         "spec.securityContext.runAsUser is 0"},
        {"{\"containers\":[{\"name\":\"a\",\"securityContext\":{\"runAsUser\":0}}]}", 403,
         "spec.containers[0].securityContext.runAsUser"},
        {"{\"containers\":[{\"name\":\"a\"},{\"name\":\"b\",\"securityContext\":{\"privileged\":"
         "true}}]}", 403, "spec.containers[1].securityContext.privileged"},
        {"{\"containers\":[{\"name\":\"a\",\"securityContext\":{\"allowPrivilegeEscalation\":"
         "true}}]}", 403, "allowPrivilegeEscalation"},
        {"{\"initContainers\":[{\"name\":\"i\",\"securityContext\":{\"privileged\":true}}],"
         "\"containers\":[{\"name\":\"a\"}]}", 403, "spec.initContainers[0]"},
        {"{\"ephemeralContainers\":[{\"name\":\"e\",\"securityContext\":{\"runAsUser\":0}}],"
         "\"containers\":[{\"name\":\"a\"}]}", 403, "spec.ephemeralContainers[0]"},
        {"{\"securityContext\":{\"runAsUser\":-1},\"containers\":[{\"name\":\"a\"}]}", 403,
         "runAsUser is -1"},
        /* malformed pods (the uid is readable: a review with allowed false) */
        {"{}", 400, "no spec.containers"},
        {"{\"containers\":[]}", 400, "no spec.containers"},
        {"{\"containers\":{\"name\":\"a\"}}", 400, "spec.containers has the wrong type"},
        {"{\"containers\":[\"a\"]}", 400, "spec.containers[0] is not an object"},
        {"{\"securityContext\":{\"runAsUser\":\"0\"},\"containers\":[{\"name\":\"a\"}]}", 400,
         "runAsUser has the wrong type"},
        {"{\"containers\":[{\"name\":\"a\",\"securityContext\":{\"privileged\":1}}]}", 400,
         "privileged has the wrong type"},
        {"{\"volumes\":{},\"containers\":[{\"name\":\"a\"}]}", 400, "spec.volumes has the wrong"},
        {"{\"volumes\":[{\"name\":\"shmfaas-socket\",\"hostPath\":{\"path\":\"/\"}}],"
         "\"containers\":[{\"name\":\"a\"}]}", 400, "is not hostPath /run/shmfaas"},
        {"{\"volumes\":[{\"name\":\"x\",\"hostPath\":{}}],\"containers\":[{\"name\":\"a\"}]}", 400,
         "hostPath has no path"},
        {"{\"volumes\":[{\"name\":\"x\",\"emptyDir\":{}}],\"containers\":[{\"name\":\"a\","
         "\"volumeMounts\":[{\"name\":\"x\",\"mountPath\":\"/run/shmfaas\"}]}]}", 400,
         "mounts volume x at /run/shmfaas"},
        {"{\"containers\":[{\"name\":\"a\",\"env\":[{\"value\":\"v\"}]}]}", 400, "env[0] has no name"},
        {"{\"containers\":[{\"name\":\"a\",\"volumeMounts\":[7]}]}", 400, "has no name or mountPath"},
        {"{\"containers\":[{\"name\":\"a\",\"securityContext\":[]}]}", 400,
         "securityContext has the wrong type"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char pod[1024];
        snprintf(pod, sizeof(pod), "{\"metadata\":{\"labels\":{\"com.shmfaas.model\":\"m\"}},"
                                   "\"spec\":%s}", cases[i].spec);
        json_t *ans, *resp = review(pod, &ans);
        json_t *st = json_object_get(resp, "status");
        const char *msg = json_string_value(json_object_get(st, "message"));
        if (!msg || !strstr(msg, cases[i].says))
            fail_msg("case %zu: message %s, expected %s", i, msg ? msg : "(none)", cases[i].says);
        assert_false(json_is_true(json_object_get(resp, "allowed")));
        assert_int_equal(json_integer_value(json_object_get(st, "code")), cases[i].code);
        assert_null(json_object_get(resp, "patch"));
        json_decref(ans);
    }
}

/* Bodies the webhook cannot read: HTTP 400 with {"error": ...} naming the problem. */
static void malformed(void **state)
{
    static const struct {
        const char *body;
        const char *says;
    } cases[] = {
        {"", "not JSON"},
        {"nope", "not JSON"},
        {"[]", "apiVersion"},
        {"{}", "apiVersion"},
        {"{\"apiVersion\":\"admission.k8s.io/v1beta1\",\"kind\":\"AdmissionReview\"}", "apiVersion"},
        {"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"Pod\"}", "kind"},
        {"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\"}", "no request"},
        {"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":[]}",
         "no request"},
        {"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{}}",
         "uid"},
        {"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":"
         "{\"uid\":7}}", "uid"},
        {"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":"
         "{\"uid\":\"\"}}", "uid"},
        {"{\"apiVersion\":\"admission.k8s.io/v1\",\"apiVersion\":\"admission.k8s.io/v1\"}",
         "not JSON"}, /* duplicate keys */
        {"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":"
         "{\"uid\":\"a\\u0000b\"}}", "not JSON"},
        {"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionRev", "not JSON"},
        {"{\"apiVersion\":\"admission.k8s.io/v1\"} trailing", "not JSON"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        unsigned status;
        json_t *ans = run(cases[i].body, strlen(cases[i].body), &status);
        const char *msg = json_string_value(json_object_get(ans, "error"));
        if (status != 400 || !msg || !strstr(msg, cases[i].says))
            fail_msg("case %zu: status %u error %s, expected %s", i, status, msg ? msg : "(none)",
                     cases[i].says);
        json_decref(ans);
    }
}

/* Hostile sizes: a long uid, deep nesting, too many values, a body over the limit, a NUL byte, invalid UTF-8 in a
 * quoted field (the message stays valid JSON). */
static void hostile(void **state)
{
    unsigned status;
    char uid[200];
    memset(uid, 'u', sizeof(uid) - 1);
    uid[sizeof(uid) - 1] = '\0';
    char *body = review_text(uid, "CREATE", "Pod", faas_netes_pod);
    json_t *ans = run(body, strlen(body), &status);
    assert_int_equal(status, 400);
    json_decref(ans);
    free(body);

    size_t depth = 100000;
    char *deep = malloc(2 * depth + 1);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    deep[2 * depth] = '\0';
    body = review_text("u", "CREATE", "Pod", deep);
    ans = run(body, strlen(body), &status);
    assert_int_equal(status, 400);
    assert_non_null(strstr(json_string_value(json_object_get(ans, "error")), "deeper"));
    json_decref(ans);
    free(body);
    free(deep);

    size_t big = ADMISSION_MAX_BODY + 1;
    char *huge = malloc(big);
    memset(huge, ' ', big);
    ans = run(huge, big, &status);
    assert_int_equal(status, 400);
    assert_non_null(strstr(json_string_value(json_object_get(ans, "error")), "limit"));
    json_decref(ans);
    free(huge);

    size_t many = ADMISSION_MAX_VALUES + 1;
    char *wide = malloc(2 * many + 2);
    wide[0] = '[';
    for (size_t i = 0; i < many; i++)
        memcpy(wide + 1 + 2 * i, "0,", 2);
    wide[2 * many] = ']';
    wide[2 * many + 1] = '\0';
    body = review_text("u", "CREATE", "Pod", wide);
    ans = run(body, strlen(body), &status);
    assert_int_equal(status, 400);
    assert_non_null(strstr(json_string_value(json_object_get(ans, "error")), "values"));
    json_decref(ans);
    free(body);
    free(wide);

    const char nul[] = "{\"apiVersion\":\"admission.k8s.io/v1\"\0}";
    ans = run(nul, sizeof(nul) - 1, &status);
    assert_int_equal(status, 400);
    json_decref(ans);

    const char bad_utf8[] = "{\"apiVersion\":\"\xff\xfe\"}";
    ans = run(bad_utf8, strlen(bad_utf8), &status);
    assert_int_equal(status, 400);
    json_decref(ans);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(faas_netes), cmocka_unit_test(knative),
        cmocka_unit_test(already_injected), cmocka_unit_test(unselected),
        cmocka_unit_test(refused), cmocka_unit_test(malformed),
        cmocka_unit_test(hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
