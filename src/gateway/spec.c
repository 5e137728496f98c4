/* Function specs: OpenFaaS FunctionDeployment JSON → validated struct fn_spec (gateway.h). */
#include "gateway/gateway.h"

#include "common/common.h"
#include "common/fnenv.h"
#include "common/modelref.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX     5
#define DEFAULT_ZERO_MS (5 * 60 * 1000)

bool gw_valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= GW_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!isalnum(c) && c != '-' && c != '_')
            return false;
    }
    return true;
}

int gw_check_namespace(const char *ns, char *err, size_t errlen)
{
    if (!ns || !*ns || strcmp(ns, GW_NAMESPACE) == 0)
        return 0;
    return seterr(err, errlen, -EINVAL, "namespace \"%.64s\" is not available: use %s", ns,
                  GW_NAMESPACE);
}

int gw_name_refusal(const char *full, char *err, size_t errlen)
{
    for (const unsigned char *p = (const unsigned char *)full; *p; p++)
        if (!isalnum(*p) && !strchr("-_.", *p))
            return seterr(err, errlen, -EINVAL,
                          "function name \"%.80s\" is not valid: names are letters, digits, '-' "
                          "and '_', with an optional .NAMESPACE",
                          full);
    return 0;
}

int gw_split_name(const char *full, char name[GW_NAME_MAX], char *err, size_t errlen)
{
    const char *dot = strrchr(full, '.');
    size_t n = dot ? (size_t)(dot - full) : strlen(full);
    if (n == 0 || n >= GW_NAME_MAX)
        return seterr(err, errlen, -EINVAL, "function name \"%.80s\" is empty or too long", full);
    memcpy(name, full, n);
    name[n] = '\0';
    if (!gw_valid_name(name))
        return seterr(err, errlen, -EINVAL,
                      "function name \"%.80s\" may only contain letters, digits, '-' and '_'",
                      name);
    return dot ? gw_check_namespace(dot + 1, err, errlen) : 0;
}

/* ---- scaling labels ---- */

static int label_int(const json_t *labels, const char *key, int lo, int hi, int *out, char *err,
                     size_t errlen)
{
    const json_t *v = json_object_get(labels, key);
    if (!v)
        return 0;
    const char *s = json_string_value(v);
    char *end;
    errno = 0;
    long n = s ? strtol(s, &end, 10) : 0;
    if (!s || !*s || *end || errno || n < lo || n > hi)
        return seterr(err, errlen, -EINVAL, "label %s must be a whole number from %d to %d", key,
                      lo, hi);
    *out = (int)n;
    return 0;
}

static int label_bool(const json_t *labels, const char *key, bool *out, char *err, size_t errlen)
{
    const json_t *v = json_object_get(labels, key);
    if (!v)
        return 0;
    const char *s = json_string_value(v);
    if (s && (strcmp(s, "true") == 0 || strcmp(s, "1") == 0))
        *out = true;
    else if (s && (strcmp(s, "false") == 0 || strcmp(s, "0") == 0))
        *out = false;
    else
        return seterr(err, errlen, -EINVAL, "label %s must be \"true\" or \"false\"", key);
    return 0;
}

/* Scaling labels of a labels object (may be NULL). */
static int parse_scale(const json_t *labels, struct fn_scale *out, char *err, size_t errlen)
{
    *out = (struct fn_scale){.min = 1, .max = DEFAULT_MAX, .target = 1, .zero_ms = DEFAULT_ZERO_MS};
    if (!labels)
        return 0;
    int rc =
        label_int(labels, "com.openfaas.scale.min", 0, GW_MAX_REPLICAS, &out->min, err, errlen);
    if (!rc)
        rc =
            label_int(labels, "com.openfaas.scale.max", 1, GW_MAX_REPLICAS, &out->max, err, errlen);
    if (!rc)
        rc = label_int(labels, "com.openfaas.scale.target", 1, 10000, &out->target, err, errlen);
    if (!rc)
        rc = label_bool(labels, "com.openfaas.scale.zero", &out->zero, err, errlen);
    if (rc)
        return rc;
    const json_t *zd = json_object_get(labels, "com.openfaas.scale.zero-duration");
    if (zd && (!json_is_string(zd) || parse_duration_ms(json_string_value(zd), &out->zero_ms)))
        return seterr(err, errlen, -EINVAL,
                      "label com.openfaas.scale.zero-duration must be a duration such as \"5m\"");
    if (out->min > out->max)
        return seterr(err, errlen, -EINVAL, "com.openfaas.scale.min (%d) is above .max (%d)",
                      out->min, out->max);
    return 0;
}

/* ---- FunctionDeployment ---- */

/* A field that must be absent, null or an object whose values are all strings. */
static int check_string_map(json_t *dep, const char *key, char *err, size_t errlen)
{
    json_t *v = json_object_get(dep, key);
    if (!v || json_is_null(v)) {
        json_object_set_new(dep, key, json_object());
        return 0;
    }
    if (!json_is_object(v))
        return seterr(err, errlen, -EINVAL, "%s must be an object of strings", key);
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x)
    {
        if (!json_is_string(x))
            return seterr(err, errlen, -EINVAL, "%s.%.64s must be a string", key, k);
    }
    return 0;
}

static int check_string_array(json_t *dep, const char *key, char *err, size_t errlen)
{
    json_t *v = json_object_get(dep, key);
    if (!v || json_is_null(v))
        return 0;
    size_t i;
    json_t *x;
    if (!json_is_array(v))
        return seterr(err, errlen, -EINVAL, "%s must be an array of strings", key);
    json_array_foreach(v, i, x)
    {
        if (!json_is_string(x))
            return seterr(err, errlen, -EINVAL, "%s[%zu] must be a string", key, i);
    }
    return 0;
}

/* limits/requests: {memory, cpu}, memory a Kubernetes quantity. */
static int check_resources(json_t *dep, const char *key, uint64_t *mem, char *err, size_t errlen)
{
    json_t *v = json_object_get(dep, key);
    *mem = 0;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_object(v))
        return seterr(err, errlen, -EINVAL, "%s must be an object with memory and cpu", key);
    json_t *m = json_object_get(v, "memory");
    if (m && !json_is_null(m)) {
        const char *s = json_string_value(m);
        if (!s)
            return seterr(err, errlen, -EINVAL, "%s.memory must be a string such as \"256Mi\"",
                          key);
        if (*s && parse_size(s, mem))
            return seterr(err, errlen, -EINVAL,
                          "%s.memory \"%.32s\" is not a quantity: use e.g. 512Mi, 1G, 250M", key,
                          s);
    }
    json_t *c = json_object_get(v, "cpu");
    if (c && !json_is_null(c) && !json_is_string(c))
        return seterr(err, errlen, -EINVAL, "%s.cpu must be a string such as \"500m\"", key);
    return 0;
}

/* envVars may set only shmfaas-fn's own settings (common/fnenv.h): never LD_PRELOAD and friends. */
static int check_env_keys(const json_t *env, char *err, size_t errlen)
{
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)env, k, x)
    {
        if (fn_env_key_allowed(k))
            continue;
        char q[80], keys[512];
        str_printable(k, strlen(k), q, sizeof q);
        fn_env_keys_list(keys, sizeof keys);
        if (fn_env_key_known(k))
            return seterr(err, errlen, -EINVAL,
                          "envVars.%s is set by shmfaasd itself, not by a deployment", q);
        return seterr(err, errlen, -EINVAL,
                      "envVars.%s is not a setting of shmfaas-fn; envVars may set only %s", q,
                      keys);
    }
    return 0;
}

static int instance_cap_of(const json_t *env)
{
    const char *s = json_string_value(json_object_get(env, "max_inflight"));
    if (!s)
        return 1;
    long n = strtol(s, NULL, 10);
    if (n <= 0)
        return 1 << 20;
    return n > (1 << 20) ? 1 << 20 : (int)n;
}

static int check_fields(json_t *dep, struct fn_spec *out, char *err, size_t errlen)
{
    const char *svc = json_string_value(json_object_get(dep, "service"));
    const char *img = json_string_value(json_object_get(dep, "image"));
    if (!svc || !*svc)
        return seterr(err, errlen, -EINVAL, "service is required: the function's name");
    if (!gw_valid_name(svc))
        return seterr(err, errlen, -EINVAL,
                      "service \"%.80s\" must be 1-63 letters, digits, '-' or '_'", svc);
    if (!img || !*img)
        return seterr(err, errlen, -EINVAL, "image is required: the model to serve");
    struct model_ref ref;
    char why[400];
    if (model_ref_parse(img, strlen(img), &ref, why, sizeof why) < 0)
        return seterr(err, errlen, -EINVAL, "image: %s", why);
    json_t *ns = json_object_get(dep, "namespace");
    if (ns && !json_is_null(ns) && !json_is_string(ns))
        return seterr(err, errlen, -EINVAL, "namespace must be a string");
    int rc = gw_check_namespace(json_string_value(ns), err, errlen);
    if (rc)
        return rc;
    json_t *ep = json_object_get(dep, "envProcess");
    if (ep && !json_is_null(ep) && !json_is_string(ep))
        return seterr(err, errlen, -EINVAL, "envProcess must be a string");
    snprintf(out->name, sizeof out->name, "%s", svc);
    snprintf(out->image, sizeof out->image, "%s", img);
    return 0;
}

int spec_from_json(const json_t *src, struct fn_spec *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!json_is_object(src))
        return seterr(err, errlen, -EINVAL, "the body must be a JSON object (FunctionDeployment)");
    json_t *dep = json_deep_copy(src);
    if (!dep)
        return seterr(err, errlen, -ENOMEM, "out of memory");
    uint64_t req_mem;
    int rc = check_fields(dep, out, err, errlen);
    if (!rc)
        rc = check_string_map(dep, "envVars", err, errlen);
    if (!rc)
        rc = check_env_keys(json_object_get(dep, "envVars"), err, errlen);
    if (!rc)
        rc = check_string_map(dep, "labels", err, errlen);
    if (!rc)
        rc = check_string_map(dep, "annotations", err, errlen);
    if (!rc)
        rc = check_string_array(dep, "constraints", err, errlen);
    if (!rc)
        rc = check_string_array(dep, "secrets", err, errlen);
    if (!rc)
        rc = check_resources(dep, "limits", &out->mem_limit, err, errlen);
    if (!rc)
        rc = check_resources(dep, "requests", &req_mem, err, errlen);
    if (!rc)
        rc = parse_scale(json_object_get(dep, "labels"), &out->scale, err, errlen);
    if (rc) {
        json_decref(dep);
        return rc;
    }
    const char *priv =
        json_string_value(json_object_get(json_object_get(dep, "labels"), "com.shmfaas.private"));
    out->private_model = priv && strcmp(priv, "true") == 0;
    out->instance_cap = instance_cap_of(json_object_get(dep, "envVars"));
    json_object_set_new(dep, "namespace", json_string(GW_NAMESPACE));
    out->deployment = dep;
    return 0;
}

int spec_parse(const char *body, size_t len, struct fn_spec *out, char *err, size_t errlen)
{
    json_error_t je;
    memset(out, 0, sizeof *out);
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return seterr(err, errlen, -EINVAL, "invalid JSON at line %d column %d: %s", je.line,
                      je.column, je.text);
    int rc = spec_from_json(root, out, err, errlen);
    json_decref(root);
    return rc;
}

void spec_free(struct fn_spec *spec)
{
    json_decref(spec->deployment);
    spec->deployment = NULL;
}
