/*
 * The function registry: the list of deployed functions, their persisted specs
 * (<state>/functions/<name>.json, written atomically) and their FunctionStatus view.
 * Every function here holds a spec that passed spec_parse(). All calls run under g->lock except
 * registry_load(), which runs before any thread starts.
 */
#include "gateway/gateway.h"

#include "common/common.h"
#include "common/confine.h"
#include "common/modelref.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SPEC_MAX_BYTES (1 << 20)

struct function *registry_find(struct gateway *g, const char *name)
{
    for (struct function *fn = g->functions; fn; fn = fn->next)
        if (!fn->deleted && strcmp(fn->spec.name, name) == 0)
            return fn;
    return NULL;
}

void function_log_path(struct gateway *g, const char *name, char *out, size_t len)
{
    snprintf(out, len, "%s/logs/%s.log", g->state, name);
}

static void spec_path(struct gateway *g, const char *name, char *out, size_t len)
{
    snprintf(out, len, "%s/functions/%s.json", g->state, name);
}

int registry_save(struct gateway *g, struct function *fn, char *err, size_t errlen)
{
    char path[1024];
    spec_path(g, fn->spec.name, path, sizeof path);
    json_t *doc = json_pack("{sOsIsisI}", "deployment", fn->spec.deployment, "createdAt",
                            (json_int_t)fn->created_ms, "replicas", fn->floor, "uid",
                            (json_int_t)fn->uid);
    char *text = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    json_decref(doc);
    if (!text)
        return seterr(err, errlen, -ENOMEM, "out of memory");
    int rc = write_file_atomic(path, text, strlen(text), 0600, err, errlen);
    free(text);
    return rc;
}

static struct function *function_new(struct fn_spec *spec, int64_t created_ms, int floor)
{
    struct function *fn = calloc(1, sizeof *fn);
    if (!fn)
        return NULL;
    fn->spec = *spec;
    *spec = (struct fn_spec){0};
    fn->created_ms = created_ms;
    fn->floor = floor;
    fn->last_active_ms = now_ms();
    return fn;
}

/* ---- one uid per function ---- */

/* Is uid inside a subordinate range of /etc/subuid or /etc/subgid ("name:first:count")? Those
 * belong to some user's containers. */
static bool subordinate(const char *file, uid_t uid)
{
    FILE *f = fopen(file, "re");
    char line[512];
    bool hit = false;
    while (f && !hit && fgets(line, sizeof line, f)) {
        unsigned long first, count;
        char *c = strchr(line, ':');
        if (c && sscanf(c + 1, "%lu:%lu", &first, &count) == 2)
            hit = uid >= first && uid - first < count;
    }
    if (f)
        fclose(f);
    return hit;
}

/* Nobody on this host uses uid as a uid or gid: no passwd or group entry, no subordinate range. */
static bool uid_unclaimed(uid_t uid)
{
    struct passwd pw, *pwp = NULL;
    struct group gr, *grp = NULL;
    char buf[4096];
    if (getpwuid_r(uid, &pw, buf, sizeof buf, &pwp) == 0 && pwp)
        return false;
    if (getgrgid_r((gid_t)uid, &gr, buf, sizeof buf, &grp) == 0 && grp)
        return false;
    return !subordinate("/etc/subuid", uid) && !subordinate("/etc/subgid", uid);
}

static bool uid_taken(struct gateway *g, const struct function *self, uid_t uid)
{
    for (struct function *fn = g->functions; fn; fn = fn->next)
        if (fn != self && fn->uid == uid)
            return true;
    return false;
}

/* Gives fn the lowest uid of --uid-range no other function holds and no passwd/group entry
 * names; -ENOSPC when the range is used up. A function deleted and deployed again may get another
 * one, and its successor the old one once every instance of it is gone (they leave g->functions
 * then). */
static int assign_uid(struct gateway *g, struct function *fn, char *err, size_t errlen)
{
    for (uid_t u = g->uid_first; u <= g->uid_last && u >= g->uid_first; u++) {
        if (!uid_taken(g, fn, u) && uid_unclaimed(u)) {
            fn->uid = u;
            return 0;
        }
    }
    return seterr(err, errlen, -ENOSPC,
                  "no free uid left in --uid-range %u-%u for function %s: widen the range",
                  (unsigned)g->uid_first, (unsigned)g->uid_last, fn->spec.name);
}

bool function_refusal(const struct function *fn, int64_t now_ms, char *why, size_t len,
                      int *retry_s)
{
    if (!fn->refused || function_live_count(fn) > 0)
        return false;
    snprintf(why, len, "function %s: %s", fn->spec.name, fn->refusal);
    int64_t wait = fn->backoff_until_ms - now_ms;
    *retry_s = wait > 0 ? (int)((wait + 999) / 1000) : 1;
    return true;
}

/* path (a model file or a labels file) must be a regular file inside the models directory; with
 * pin, a model file's SHA-256 must be the pinned digest (the file is read once: its size is the
 * operator's bound, as the store reads it whole anyway). */
static int check_confined(struct gateway *g, const char *what, const char *shown, const char *path,
                          const uint8_t *pin, char *err, size_t errlen)
{
    char why[512];
    uint8_t sha[SHA256_LEN];
    int fd = confine_open(g->models, "models", path, O_RDONLY, NULL, 0, why, sizeof why);
    if (fd >= 0) {
        int rc = pin ? sha256_fd(fd, sha) : 0;
        close(fd);
        if (rc < 0)
            return seterr(err, errlen, -EINVAL, "%s \"%s\": cannot read it: %s", what, shown,
                          strerror(-rc));
        if (pin && model_ref_check_digest(shown, pin, sha, err, errlen) < 0)
            return -EINVAL;
        return 0;
    }
    if (fd == -ENOENT && strcmp(what, "model") == 0)
        return seterr(err, errlen, -EINVAL,
                      "unknown model \"%s\": %s (push it with `shmfaas model push`)", shown, why);
    return seterr(err, errlen, -EINVAL, "%s \"%s\": %s", what, shown, why);
}

int registry_check_model(struct gateway *g, const struct fn_spec *spec, char *err, size_t errlen)
{
    struct model_ref r;
    char file[MODEL_REF_MAX + 8], q[160];
    int rc = model_ref_parse(spec->image, strlen(spec->image), &r, err, errlen);
    if (rc < 0)
        return -EINVAL;
    str_printable(spec->image, strlen(spec->image), q, sizeof q);
    if (spec->private_model && r.kind == MODEL_REF_HASH)
        return seterr(err, errlen, -EINVAL,
                      "model \"%s\": a private function (com.shmfaas.private) loads a file: name "
                      "the model, not its sha256",
                      q);
    if (spec->private_model && r.shapes[0])
        return seterr(err, errlen, -EINVAL,
                      "model \"%s\": a private function takes its input shapes from "
                      "envVars.input_shape, not from '?' in the model ref",
                      q);
    if (r.kind != MODEL_REF_HASH) {
        if (model_ref_file(&r, file, sizeof file) < 0)
            return seterr(err, errlen, -EINVAL, "model \"%s\": too long", q);
        if ((rc = check_confined(g, "model", q, file, r.pinned ? r.digest : NULL, err, errlen)) < 0)
            return rc;
    }
    const char *labels =
        json_string_value(json_object_get(json_object_get(spec->deployment, "envVars"), "labels"));
    if (labels && *labels)
        return check_confined(g, "envVars.labels",
                              str_printable(labels, strlen(labels), q, sizeof q), labels, NULL, err,
                              errlen);
    return 0;
}

int registry_put(struct gateway *g, struct fn_spec *spec, bool create, char *err, size_t errlen)
{
    struct function *fn = registry_find(g, spec->name);
    if (create && fn)
        return seterr(err, errlen, -EEXIST, "function %s already exists: update it with PUT",
                      spec->name);
    if (!create && !fn)
        return seterr(err, errlen, -ENOENT, "function %s not found", spec->name);
    if (fn) {
        struct fn_spec old = fn->spec;
        fn->spec = *spec;
        *spec = (struct fn_spec){0};
        int rc = registry_save(g, fn, err, errlen);
        if (rc) {
            *spec = fn->spec;
            fn->spec = old;
            return rc;
        }
        spec_free(&old);
        fn->floor = -1;
        fn->refused = false; /* a new spec gets a new try at once */
        fn->backoff_until_ms = 0;
        /* rolling: the old instances serve until new ones are ready (supervisor retires them) */
        for (struct instance *in = fn->instances; in; in = in->next)
            in->stale = true;
        pthread_cond_broadcast(&g->kick);
        return 0;
    }
    fn = function_new(spec, wall_ms(), -1);
    if (!fn)
        return seterr(err, errlen, -ENOMEM, "out of memory");
    int rc = assign_uid(g, fn, err, errlen);
    if (!rc)
        rc = registry_save(g, fn, err, errlen);
    if (rc) {
        *spec = fn->spec;
        free(fn);
        return rc;
    }
    fn->next = g->functions;
    g->functions = fn;
    pthread_cond_broadcast(&g->kick);
    return 0;
}

int registry_remove(struct gateway *g, const char *name, char *err, size_t errlen)
{
    struct function *fn = registry_find(g, name);
    if (!fn)
        return seterr(err, errlen, -ENOENT, "function %s not found", name);
    char path[1024];
    spec_path(g, name, path, sizeof path);
    if (unlink(path) != 0 && errno != ENOENT)
        return seterr(err, errlen, -errno, "cannot remove %s: %s", path, strerror(errno));
    function_log_path(g, name, path, sizeof path);
    unlink(path);
    fn->deleted = true;
    pthread_cond_broadcast(&g->changed);
    pthread_cond_broadcast(&g->kick);
    return 0;
}

void function_put_ref(struct gateway *g, struct function *fn)
{
    fn->refs--;
    if (fn->refs == 0 && fn->deleted)
        pthread_cond_broadcast(&g->kick);
}

void function_count_code(struct function *fn, int code, double seconds)
{
    fn->invocations++;
    prom_hist_observe(&fn->hist, seconds);
    for (int i = 0; i < fn->ncodes; i++) {
        if (fn->codes[i].code == code) {
            fn->codes[i].n++;
            return;
        }
    }
    if (fn->ncodes < GW_MAX_CODES)
        fn->codes[fn->ncodes++] = (struct code_count){code, 1};
}

static int load_one(struct gateway *g, const char *path)
{
    char err[512];
    uint8_t *data;
    size_t len;
    struct fn_spec spec;
    if (read_file(path, SPEC_MAX_BYTES, &data, &len, err, sizeof err)) {
        log_error("%s", err);
        return -EIO;
    }
    json_t *doc = json_loadb((const char *)data, len, 0, NULL);
    free(data);
    int rc = doc ? spec_from_json(json_object_get(doc, "deployment"), &spec, err, sizeof err)
                 : seterr(err, sizeof err, -EINVAL, "not JSON");
    if (rc) {
        log_error("%s: %s; function skipped", path, err);
        json_decref(doc);
        return rc;
    }
    json_t *r = json_object_get(doc, "replicas");
    int floor = json_is_integer(r) ? (int)json_integer_value(r) : -1;
    if (floor < -1 || floor > GW_MAX_REPLICAS)
        floor = -1;
    int64_t created = (int64_t)json_integer_value(json_object_get(doc, "createdAt"));
    json_int_t uid = json_integer_value(json_object_get(doc, "uid"));
    json_decref(doc);
    struct function *fn = function_new(&spec, created ? created : wall_ms(), floor);
    if (!fn) {
        spec_free(&spec);
        return -ENOMEM;
    }
    /* A uid outside today's range, held by another function or claimed by the host meanwhile
     * (or none: a spec from before issue 12) gets a new one, saved at once. */
    fn->uid = (uid_t)uid;
    if (uid < g->uid_first || uid > g->uid_last || uid_taken(g, fn, fn->uid) ||
        !uid_unclaimed(fn->uid)) {
        if (assign_uid(g, fn, err, sizeof err) || registry_save(g, fn, err, sizeof err)) {
            log_error("%s: %s; function skipped", path, err);
            spec_free(&fn->spec);
            free(fn);
            return -ENOSPC;
        }
    }
    fn->next = g->functions;
    g->functions = fn;
    log_info("restored function %s (model %s, uid %u)", fn->spec.name, fn->spec.image,
             (unsigned)fn->uid);
    return 0;
}

int registry_load(struct gateway *g)
{
    char dir[1024], path[1536];
    snprintf(dir, sizeof dir, "%s/functions", g->state);
    if (mkdir_p(dir, 0700))
        return -errno;
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".json") != 0 || e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        load_one(g, path);
    }
    closedir(d);
    return 0;
}

int function_ready_count(const struct function *fn)
{
    int n = 0;
    for (const struct instance *in = fn->instances; in; in = in->next)
        n += in->state == INST_READY && !in->stale;
    return n;
}

/* Instances on the current spec, starting or ready: what the autoscaler counts. */
int function_live_count(const struct function *fn)
{
    int n = 0;
    for (const struct instance *in = fn->instances; in; in = in->next)
        n += (in->state == INST_READY || in->state == INST_STARTING) && !in->stale;
    return n;
}

static json_t *rfc3339(int64_t ms)
{
    char buf[64];
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_string(buf);
}

static json_t *usage_of(const struct function *fn)
{
    uint64_t pss = 0, uss = 0, tmpl = 0;
    for (const struct instance *in = fn->instances; in; in = in->next) {
        struct proc_mem m;
        if (in->state != INST_DEAD && proc_mem_read(in->pid, &m) == 0) {
            pss += m.pss;
            uss += proc_mem_uss(&m);
        }
    }
    struct proc_mem m; /* the template's share counts too: its pages are its instances' */
    if (function_template_pid(fn) > 0 && proc_mem_read(function_template_pid(fn), &m) == 0) {
        tmpl = m.pss;
        pss += m.pss;
        uss += proc_mem_uss(&m);
    }
    /* totalMemoryBytes is OpenFaaS's field (PSS: shared pages split fairly); ussBytes and
     * templateMemoryBytes (the template's PSS, in the total) are ours */
    return json_pack("{sfsIsIsI}", "cpu", 0.0, "totalMemoryBytes", (json_int_t)pss, "ussBytes",
                     (json_int_t)uss, "templateMemoryBytes", (json_int_t)tmpl);
}

static json_t *field_or_null(const json_t *dep, const char *key)
{
    json_t *v = json_object_get(dep, key);
    return v ? json_incref(v) : json_null();
}

json_t *function_status(struct gateway *g, struct function *fn, bool usage)
{
    const json_t *dep = fn->spec.deployment;
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(fn->spec.name));
    json_object_set_new(o, "image", json_string(fn->spec.image));
    json_object_set_new(o, "namespace", json_string(GW_NAMESPACE));
    const char *ep = json_string_value(json_object_get(dep, "envProcess"));
    json_object_set_new(o, "envProcess", json_string(ep ? ep : ""));
    json_object_set_new(o, "envVars", field_or_null(dep, "envVars"));
    json_object_set_new(o, "labels", field_or_null(dep, "labels"));
    json_object_set_new(o, "annotations", field_or_null(dep, "annotations"));
    json_object_set_new(o, "constraints", field_or_null(dep, "constraints"));
    json_object_set_new(o, "secrets", field_or_null(dep, "secrets"));
    json_object_set_new(o, "limits", field_or_null(dep, "limits"));
    json_object_set_new(o, "requests", field_or_null(dep, "requests"));
    json_object_set_new(o, "readOnlyRootFilesystem",
                        json_boolean(json_is_true(json_object_get(dep, "readOnlyRootFilesystem"))));
    json_object_set_new(o, "invocationCount", json_real((double)fn->invocations));
    json_object_set_new(o, "replicas", json_integer(function_live_count(fn)));
    json_object_set_new(o, "availableReplicas", json_integer(function_ready_count(fn)));
    json_object_set_new(o, "createdAt", rfc3339(fn->created_ms));
    /* ours: "compiling" while the store compiles its image ahead of the first request */
    json_object_set_new(o, "imageStatus", json_string(fn->compiling ? "compiling" : "ready"));
    if (fn->refused) /* ours: why no instance runs (the store refused the model) */
        json_object_set_new(o, "refusal", json_string(fn->refusal));
    if (fn->tmpl) /* ours: the warm template its instances are forked from */
        json_object_set_new(o, "template",
                            json_pack("{sIss}", "pid", (json_int_t)fn->tmpl->pid, "state",
                                      fn->tmpl->state == TEMPLATE_READY ? "ready" : "starting"));
    if (usage)
        json_object_set_new(o, "usage", usage_of(fn));
    return o;
}
