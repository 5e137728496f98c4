/*
 * admission.c — the AdmissionReview decision of shmfaas-webhook (see admission.h).
 *
 * The review is parsed by jansson after a depth pre-scan (jansson recurses per nesting level),
 * with duplicate keys refused so no two readers of the same bytes can disagree. Every field read
 * from the pod is type-checked where it is read: a wrong type is a refusal naming the field, never
 * a guess. The patch only ever adds or replaces; paths are built with ptr_push (RFC 6901).
 */
#include "webhook/admission.h"
#include "common/common.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UID_MAX 128
#define MSG_MAX 256

/* What one review decides: code 0 allowed (with patch, maybe empty), 403 refused by policy, 400
 * malformed object; msg says why. */
struct verdict {
    json_t *patch; /* array of operations */
    int code;
    char msg[MSG_MAX];
};

static int refuse(struct verdict *v, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int refuse(struct verdict *v, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->msg, sizeof(v->msg), fmt, ap);
    va_end(ap);
    v->code = code;
    return -1;
}

/* ---- reading ---- */

/* Bounds the parse before jansson runs: nesting (it recurses per level) and the number of
 * values (each costs it ~100 bytes: 2 MiB of "[]," would be ~90 MB of tree). Counts [ { and ,
 * outside strings, a bound on the values; a message in msg when over. */
static bool scan_ok(const uint8_t *p, size_t n, char *msg, size_t msglen)
{
    int depth = 0;
    size_t values = 1;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        if (in_str) {
            if (p[i] == '\\')
                i++;
            else if (p[i] == '"')
                in_str = false;
        } else if (p[i] == '"') {
            in_str = true;
        } else if (p[i] == '[' || p[i] == '{') {
            if (++depth > ADMISSION_MAX_DEPTH) {
                snprintf(msg, msglen, "review nested deeper than %d levels", ADMISSION_MAX_DEPTH);
                return false;
            }
            values++;
        } else if (p[i] == ']' || p[i] == '}') {
            depth--;
        } else if (p[i] == ',' && ++values > ADMISSION_MAX_VALUES) {
            snprintf(msg, msglen, "review holds more than %d values", ADMISSION_MAX_VALUES);
            return false;
        }
    }
    return true;
}

/* An optional field of an object (type JSON_TRUE stands for either boolean): 0 absent (or null), 1 present with the type, -1 wrong type
 * (refused in v, naming where.key). */
static int opt_field(json_t *obj, const char *key, json_type type, const char *where,
                     struct verdict *v, json_t **out)
{
    json_t *f = json_object_get(obj, key);
    *out = f;
    if (!f || json_is_null(f))
        return *out = NULL, 0;
    bool ok = json_typeof(f) == type || (type == JSON_TRUE && json_is_boolean(f));
    if (!ok)
        return refuse(v, 400, "%s.%s has the wrong type", where, key);
    return 1;
}

/* ---- the patch ---- */

/* Appends "/" and token to a JSON Pointer, escaping '~' as ~0 and '/' as ~1 (RFC 6901). */
static int ptr_push(char *buf, size_t size, const char *token)
{
    size_t n = strlen(buf);
    if (n + 1 >= size)
        return -ENAMETOOLONG;
    buf[n++] = '/';
    for (const char *t = token; *t; t++) {
        const char *rep = *t == '~' ? "~0" : *t == '/' ? "~1" : NULL;
        size_t k = rep ? 2 : 1;
        if (n + k >= size)
            return -ENAMETOOLONG;
        memcpy(buf + n, rep ? rep : t, k);
        n += k;
    }
    buf[n] = '\0';
    return 0;
}

/* One operation; takes value. */
static void patch_op(struct verdict *v, const char *op, const char *path, json_t *value)
{
    json_array_append_new(v->patch, json_pack("{s:s,s:s,s:o}", "op", op, "path", path, "value",
                                              value));
}

/* path = prefix + each token (escaped), into buf. */
static const char *ptr(char *buf, size_t size, const char *prefix, const char *const *tokens,
                       int n)
{
    snprintf(buf, size, "%s", prefix);
    for (int i = 0; i < n; i++)
        if (ptr_push(buf, size, tokens[i]) < 0)
            return NULL;
    return buf;
}

/* ---- policy ---- */

/* A securityContext that would let a process run as root. */
static int check_root(json_t *sc, const char *where, struct verdict *v, bool *nonroot_uid)
{
    json_t *f;
    int rc;
    if ((rc = opt_field(sc, "runAsUser", JSON_INTEGER, where, v, &f)) < 0)
        return -1;
    if (rc && json_integer_value(f) <= 0)
        return refuse(v, 403, "%s.runAsUser is %lld: pods that map shmfaas images never run as root",
                      where, (long long)json_integer_value(f));
    if (nonroot_uid)
        *nonroot_uid = rc == 1;
    if ((rc = opt_field(sc, "privileged", JSON_TRUE, where, v, &f)) < 0)
        return -1;
    if (rc && json_is_true(f))
        return refuse(v, 403, "%s.privileged is true: pods that map shmfaas images are never "
                              "privileged", where);
    if ((rc = opt_field(sc, "allowPrivilegeEscalation", JSON_TRUE, where, v, &f)) < 0)
        return -1;
    if (rc && json_is_true(f))
        return refuse(v, 403, "%s.allowPrivilegeEscalation is true: refused for pods that map "
                              "shmfaas images", where);
    return 0;
}

/* Every container of one list (containers, initContainers, ephemeralContainers) passes
 * check_root; *all_nonroot stays true only if each sets its own non-root runAsUser. */
static int check_containers(json_t *spec, const char *list, struct verdict *v, bool *all_nonroot)
{
    json_t *arr, *c, *sc;
    if (opt_field(spec, list, JSON_ARRAY, "spec", v, &arr) < 0)
        return -1;
    size_t i;
    json_array_foreach(arr, i, c) {
        char where[64];
        snprintf(where, sizeof(where), "spec.%s[%zu]", list, i);
        if (!json_is_object(c))
            return refuse(v, 400, "%s is not an object", where);
        int rc = opt_field(c, "securityContext", JSON_OBJECT, where, v, &sc);
        if (rc < 0)
            return -1;
        bool nonroot = false;
        snprintf(where + strlen(where), sizeof(where) - strlen(where), ".securityContext");
        if (rc && check_root(sc, where, v, &nonroot) < 0)
            return -1;
        *all_nonroot = *all_nonroot && nonroot;
    }
    return 0;
}

/* The name of the pod's volume for the socket directory: an existing hostPath of socket_dir (a
 * manifest that mounts it already), or ADMISSION_VOLUME, added here. */
static int socket_volume(json_t *spec, const struct admission_opts *o, struct verdict *v,
                         const char **name)
{
    json_t *vols, *vol, *hp, *f;
    if (opt_field(spec, "volumes", JSON_ARRAY, "spec", v, &vols) < 0)
        return -1;
    size_t i;
    json_array_foreach(vols, i, vol) {
        if (!json_is_object(vol) || !json_is_string(json_object_get(vol, "name")))
            return refuse(v, 400, "spec.volumes[%zu] is not an object with a name", i);
        const char *vname = json_string_value(json_object_get(vol, "name"));
        if (opt_field(vol, "hostPath", JSON_OBJECT, "spec.volumes[]", v, &hp) < 0)
            return -1;
        bool ours = false;
        if (hp) {
            if (opt_field(hp, "path", JSON_STRING, "spec.volumes[].hostPath", v, &f) <= 0)
                return v->code ? -1 : refuse(v, 400, "spec.volumes[%zu].hostPath has no path", i);
            const char *p = json_string_value(f);
            size_t n = strlen(o->socket_dir);
            ours = !strncmp(p, o->socket_dir, n) && (!p[n] || !strcmp(p + n, "/"));
        }
        if (ours) {
            *name = vname;
            return 0;
        }
        if (!strcmp(vname, ADMISSION_VOLUME))
            return refuse(v, 400, "spec.volumes[%zu] is named %s but is not hostPath %s", i,
                          ADMISSION_VOLUME, o->socket_dir);
    }
    json_t *add = json_pack("{s:s,s:{s:s,s:s}}", "name", ADMISSION_VOLUME, "hostPath", "path",
                            o->socket_dir, "type", "DirectoryOrCreate");
    if (vols)
        patch_op(v, "add", "/spec/volumes/-", add);
    else
        patch_op(v, "add", "/spec/volumes", json_pack("[o]", add));
    *name = ADMISSION_VOLUME;
    return 0;
}

/* The read-only socket mount and store_socket in container i. */
static int inject_container(json_t *c, size_t i, const char *volname,
                            const struct admission_opts *o, struct verdict *v)
{
    char where[64], path[128], idx[24];
    snprintf(where, sizeof(where), "spec.containers[%zu]", i);
    snprintf(idx, sizeof(idx), "%zu", i);
    json_t *mounts, *m, *env, *e, *f;
    if (opt_field(c, "volumeMounts", JSON_ARRAY, where, v, &mounts) < 0 ||
        opt_field(c, "env", JSON_ARRAY, where, v, &env) < 0)
        return -1;
    const char *at = NULL; /* where this container sees the socket directory */
    size_t k;
    json_array_foreach(mounts, k, m) {
        const char *mname = json_string_value(json_object_get(m, "name"));
        const char *mpath = json_string_value(json_object_get(m, "mountPath"));
        if (!mname || !mpath)
            return refuse(v, 400, "%s.volumeMounts[%zu] has no name or mountPath", where, k);
        if (!strcmp(mname, volname)) {
            if (opt_field(m, "readOnly", JSON_TRUE, where, v, &f) < 0)
                return -1;
            if (!json_is_true(f)) { /* the socket directory is never writable from a function */
                char n[24];
                snprintf(n, sizeof(n), "%zu", k);
                const char *t[] = {idx, "volumeMounts", n, "readOnly"};
                patch_op(v, f ? "replace" : "add", ptr(path, sizeof(path), "/spec/containers", t, 4),
                         json_true());
            }
            at = mpath;
        } else if (!strcmp(mpath, o->mount_path)) {
            return refuse(v, 400, "%s mounts volume %s at %s, where the store's socket goes",
                          where, mname, o->mount_path);
        }
    }
    if (!at) {
        at = o->mount_path;
        json_t *add = json_pack("{s:s,s:s,s:b}", "name", volname, "mountPath", o->mount_path,
                                "readOnly", 1);
        const char *t[] = {idx, "volumeMounts", "-"};
        if (mounts)
            patch_op(v, "add", ptr(path, sizeof(path), "/spec/containers", t, 3), add);
        else
            patch_op(v, "add", ptr(path, sizeof(path), "/spec/containers", t, 2),
                     json_pack("[o]", add));
    }
    json_array_foreach(env, k, e) {
        const char *ename = json_string_value(json_object_get(e, "name"));
        if (!ename)
            return refuse(v, 400, "%s.env[%zu] has no name", where, k);
        if (!strcmp(ename, "store_socket"))
            return 0; /* the deployer's choice stands */
    }
    char sock[512];
    if (snprintf(sock, sizeof(sock), "%s/store.sock", at) >= (int)sizeof(sock))
        return refuse(v, 400, "mount path too long");
    json_t *add = json_pack("{s:s,s:s}", "name", "store_socket", "value", sock);
    const char *t[] = {idx, "env", "-"};
    if (env)
        patch_op(v, "add", ptr(path, sizeof(path), "/spec/containers", t, 3), add);
    else
        patch_op(v, "add", ptr(path, sizeof(path), "/spec/containers", t, 2), json_pack("[o]", add));
    return 0;
}

/* Pod-level runAsNonRoot true and, unless every container has its own non-root uid, runAsUser. */
static int inject_security(json_t *spec, bool all_nonroot, const struct admission_opts *o,
                           struct verdict *v)
{
    json_t *sc, *f;
    int rc = opt_field(spec, "securityContext", JSON_OBJECT, "spec", v, &sc);
    if (rc < 0 || (rc && check_root(sc, "spec.securityContext", v, NULL) < 0))
        return -1;
    if (!sc) {
        json_t *add = json_pack("{s:b}", "runAsNonRoot", 1);
        if (!all_nonroot)
            json_object_set_new(add, "runAsUser", json_integer(o->run_as_user));
        patch_op(v, "add", "/spec/securityContext", add);
        return 0;
    }
    if (opt_field(sc, "runAsNonRoot", JSON_TRUE, "spec.securityContext", v, &f) < 0)
        return -1;
    if (!json_is_true(f))
        patch_op(v, f ? "replace" : "add", "/spec/securityContext/runAsNonRoot", json_true());
    if (!all_nonroot && !json_object_get(sc, "runAsUser"))
        patch_op(v, "add", "/spec/securityContext/runAsUser", json_integer(o->run_as_user));
    return 0;
}

/* Does the pod name a model (label or annotation)? */
static int selected(json_t *pod, const char *selector, struct verdict *v, bool *yes)
{
    json_t *meta, *labels, *ann;
    *yes = false;
    if (opt_field(pod, "metadata", JSON_OBJECT, "object", v, &meta) < 0 ||
        opt_field(meta, "labels", JSON_OBJECT, "metadata", v, &labels) < 0 ||
        opt_field(meta, "annotations", JSON_OBJECT, "metadata", v, &ann) < 0)
        return -1;
    *yes = json_object_get(labels, selector) || json_object_get(ann, selector);
    return 0;
}

static void mark(json_t *pod, struct verdict *v)
{
    char path[128];
    json_t *ann = json_object_get(json_object_get(pod, "metadata"), "annotations");
    if (!ann) { /* a selected pod has metadata */
        patch_op(v, "add", "/metadata/annotations", json_pack("{s:s}", ADMISSION_MARK, "true"));
    } else if (!json_object_get(ann, ADMISSION_MARK)) {
        const char *t[] = {ADMISSION_MARK};
        patch_op(v, "add", ptr(path, sizeof(path), "/metadata/annotations", t, 1),
                 json_string("true"));
    }
}

static int decide(json_t *req, const struct admission_opts *o, struct verdict *v)
{
    json_t *kind, *op, *pod, *spec, *containers, *c;
    if (opt_field(req, "kind", JSON_OBJECT, "request", v, &kind) < 0 ||
        opt_field(req, "operation", JSON_STRING, "request", v, &op) < 0)
        return -1;
    const char *k = json_string_value(json_object_get(kind, "kind"));
    if ((k && strcmp(k, "Pod")) || (op && strcmp(json_string_value(op), "CREATE")))
        return 0; /* only new pods get a socket */
    if (opt_field(req, "object", JSON_OBJECT, "request", v, &pod) <= 0)
        return v->code ? -1 : refuse(v, 400, "request.object is missing");
    bool yes;
    if (selected(pod, o->selector, v, &yes) < 0)
        return -1;
    if (!yes)
        return 0;
    if (opt_field(pod, "spec", JSON_OBJECT, "object", v, &spec) <= 0 ||
        opt_field(spec, "containers", JSON_ARRAY, "spec", v, &containers) <= 0 ||
        !json_array_size(containers))
        return v->code ? -1 : refuse(v, 400, "the pod has no spec.containers");
    bool all_nonroot = true;
    if (check_containers(spec, "containers", v, &all_nonroot) < 0 ||
        check_containers(spec, "initContainers", v, &all_nonroot) < 0 ||
        check_containers(spec, "ephemeralContainers", v, &all_nonroot) < 0)
        return -1;
    const char *volname = NULL;
    if (socket_volume(spec, o, v, &volname) < 0)
        return -1;
    size_t i;
    json_array_foreach(containers, i, c)
        if (inject_container(c, i, volname, o, v) < 0)
            return -1;
    if (inject_security(spec, all_nonroot, o, v) < 0)
        return -1;
    if (json_array_size(v->patch))
        mark(pod, v);
    return 0;
}

/* ---- the answer ---- */

static char *base64(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    if (out)
        EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n);
    return out;
}

/* Messages quote bytes from the review: printable ASCII only, so they are valid JSON strings. */
static char *http_error(const char *msg)
{
    char q[MSG_MAX];
    json_t *j = json_pack("{s:s}", "error", str_printable(msg, strlen(msg), q, sizeof(q)));
    char *out = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return out;
}

static char *answer(const char *uid, struct verdict *v)
{
    json_t *resp = json_pack("{s:s,s:b}", "uid", uid, "allowed", v->code == 0);
    if (!resp)
        return NULL;
    if (v->code) {
        char q[MSG_MAX];
        json_object_set_new(resp, "status",
                            json_pack("{s:i,s:s}", "code", v->code, "message",
                                      str_printable(v->msg, strlen(v->msg), q, sizeof(q))));
    } else if (json_array_size(v->patch)) {
        char *p = json_dumps(v->patch, JSON_COMPACT);
        char *b = p ? base64(p) : NULL;
        free(p);
        if (!b) {
            json_decref(resp);
            return NULL;
        }
        json_object_set_new(resp, "patchType", json_string("JSONPatch"));
        json_object_set_new(resp, "patch", json_string(b));
        free(b);
    }
    json_t *review = json_pack("{s:s,s:s,s:o}", "apiVersion", "admission.k8s.io/v1", "kind",
                               "AdmissionReview", "response", resp);
    char *out = review ? json_dumps(review, JSON_COMPACT) : NULL;
    json_decref(review);
    return out;
}

int admission_review(const struct admission_opts *o, const uint8_t *body, size_t len,
                     unsigned *status, char **out, char *err, size_t errlen)
{
    char msg[MSG_MAX] = "";
    json_t *root = NULL, *req, *uid;
    *out = NULL;
    *status = 400;
    if (len > ADMISSION_MAX_BODY)
        snprintf(msg, sizeof(msg), "review of %zu bytes: over the %zu-byte limit", len,
                 ADMISSION_MAX_BODY);
    else
        scan_ok(body, len, msg, sizeof(msg)); /* sets msg when over a bound */
    if (!msg[0]) {
        json_error_t je;
        root = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &je);
        if (!root)
            snprintf(msg, sizeof(msg), "review is not JSON: line %d: %s", je.line, je.text);
    }
    const char *api = json_string_value(json_object_get(root, "apiVersion"));
    const char *kind = json_string_value(json_object_get(root, "kind"));
    req = json_object_get(root, "request");
    uid = json_object_get(req, "uid");
    if (msg[0])
        ;
    else if (!json_is_object(root) || !api || strcmp(api, "admission.k8s.io/v1"))
        snprintf(msg, sizeof(msg), "not an admission.k8s.io/v1 review (apiVersion)");
    else if (!kind || strcmp(kind, "AdmissionReview"))
        snprintf(msg, sizeof(msg), "kind is not AdmissionReview");
    else if (!json_is_object(req))
        snprintf(msg, sizeof(msg), "review has no request object");
    else if (!json_is_string(uid) || !json_string_length(uid) || json_string_length(uid) > UID_MAX)
        snprintf(msg, sizeof(msg), "request.uid is missing or not a string of 1-%d bytes", UID_MAX);
    if (msg[0]) {
        json_decref(root);
        *out = http_error(msg);
        return *out ? 0 : seterr(err, errlen, -ENOMEM, "admission: out of memory");
    }
    struct verdict v = {.patch = json_array()};
    if (v.patch)
        decide(req, o, &v);
    *out = v.patch ? answer(json_string_value(uid), &v) : NULL;
    json_decref(v.patch);
    json_decref(root);
    if (!*out)
        return seterr(err, errlen, -ENOMEM, "admission: out of memory");
    *status = 200;
    return 0;
}
