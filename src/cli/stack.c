/* stack.yml: substitution, YAML → JSON, and function entries → FunctionDeployments (cli.h). */
#include "cli/cli.h"

#include "common/common.h"

#include <errno.h>
#include <fnmatch.h>
#include <regex.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define VAR_MAX        256
#define YAML_MAX_DEPTH 64

/* ---- ${VAR} substitution ---- */

/* Expands one "${...}" whose body is body[0..n). */
static int expand_var(struct buf *b, const char *body, size_t n, env_lookup lookup, void *user,
                      char *err, size_t errlen)
{
    char name[VAR_MAX];
    const char *def = NULL;
    size_t def_len = 0, name_len = n;
    const char *sep = NULL;
    for (size_t i = 0; i + 1 < n; i++) {
        if (body[i] == ':' && body[i + 1] == '-') {
            sep = body + i;
            break;
        }
    }
    if (sep) {
        name_len = (size_t)(sep - body);
        def = sep + 2;
        def_len = n - name_len - 2;
    }
    if (name_len == 0 || name_len >= VAR_MAX)
        return seterr(err, errlen, -EINVAL, "empty or too long variable name in ${...}");
    memcpy(name, body, name_len);
    name[name_len] = '\0';
    const char *v = lookup(name, user);
    if (v && *v)
        return buf_append(b, v, strlen(v));
    if (def)
        return buf_append(b, def, def_len);
    if (v)
        return 0;
    return seterr(err, errlen, -EINVAL, "variable %s is not set (use ${%s:-default})", name, name);
}

int stack_substitute(const char *text, size_t len, env_lookup lookup, void *user, char **out,
                     char *err, size_t errlen)
{
    struct buf b = {0};
    size_t i = 0;
    int rc = buf_append(&b, "", 0);
    while (!rc && i < len) {
        const char *dollar = memchr(text + i, '$', len - i);
        size_t upto = dollar ? (size_t)(dollar - text) : len;
        rc = buf_append(&b, text + i, upto - i);
        i = upto;
        if (rc || i >= len)
            break;
        if (i + 1 < len && text[i + 1] == '$') {
            rc = buf_append(&b, "$", 1);
            i += 2;
        } else if (i + 1 < len && text[i + 1] == '{') {
            const char *close = memchr(text + i + 2, '}', len - i - 2);
            if (!close) {
                rc = seterr(err, errlen, -EINVAL, "unterminated ${ at byte %zu", i);
                break;
            }
            rc = expand_var(&b, text + i + 2, (size_t)(close - text) - i - 2, lookup, user, err,
                            errlen);
            i = (size_t)(close - text) + 1;
        } else {
            rc = buf_append(&b, "$", 1);
            i++;
        }
    }
    if (rc) {
        free(b.data);
        if (rc == -ENOMEM)
            seterr(err, errlen, rc, "out of memory");
        return rc;
    }
    *out = b.data;
    return 0;
}

/* ---- YAML → JSON ---- */

/* Attaches v to the container on top of the stack (or makes it the root). Takes v. */
static int attach(json_t **stack, char **keys, int depth, json_t **root, json_t *v)
{
    if (depth == 0) {
        *root = v;
        return 0;
    }
    json_t *top = stack[depth - 1];
    if (json_is_array(top))
        return json_array_append_new(top, v);
    if (!keys[depth - 1]) {
        /* v is the key: only scalars may be keys */
        if (!json_is_string(v)) {
            json_decref(v);
            return -1;
        }
        keys[depth - 1] = strdup(json_string_value(v));
        json_decref(v);
        return keys[depth - 1] ? 0 : -1;
    }
    int rc = json_object_set_new(top, keys[depth - 1], v);
    free(keys[depth - 1]);
    keys[depth - 1] = NULL;
    return rc;
}

struct ystate {
    json_t *stack[YAML_MAX_DEPTH];
    char *keys[YAML_MAX_DEPTH];
    int depth;
    json_t *root;
};

static int on_event(struct ystate *y, const yaml_event_t *ev, char *err, size_t errlen)
{
    json_t *v;
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        v = json_stringn((const char *)ev->data.scalar.value, ev->data.scalar.length);
        if (!v || attach(y->stack, y->keys, y->depth, &y->root, v))
            return seterr(err, errlen, -EINVAL, "line %zu: bad scalar or key",
                          ev->start_mark.line + 1);
        return 0;
    case YAML_MAPPING_START_EVENT:
    case YAML_SEQUENCE_START_EVENT:
        if (y->depth >= YAML_MAX_DEPTH)
            return seterr(err, errlen, -EINVAL, "nested deeper than %d levels", YAML_MAX_DEPTH);
        v = ev->type == YAML_MAPPING_START_EVENT ? json_object() : json_array();
        if (!v)
            return seterr(err, errlen, -ENOMEM, "out of memory");
        y->stack[y->depth] = v;
        y->keys[y->depth] = NULL;
        y->depth++;
        return 0;
    case YAML_MAPPING_END_EVENT:
    case YAML_SEQUENCE_END_EVENT:
        y->depth--;
        free(y->keys[y->depth]);
        y->keys[y->depth] = NULL;
        if (attach(y->stack, y->keys, y->depth, &y->root, y->stack[y->depth]))
            return seterr(err, errlen, -EINVAL, "line %zu: a mapping or list cannot be a key",
                          ev->start_mark.line + 1);
        return 0;
    case YAML_ALIAS_EVENT:
        return seterr(err, errlen, -EINVAL, "line %zu: YAML aliases are not supported",
                      ev->start_mark.line + 1);
    default:
        return 0;
    }
}

static void ystate_free(struct ystate *y)
{
    for (int i = 0; i < y->depth; i++) {
        free(y->keys[i]);
        json_decref(y->stack[i]);
    }
    json_decref(y->root);
}

int yaml_to_json(const char *text, size_t len, json_t **out, char *err, size_t errlen)
{
    yaml_parser_t p;
    struct ystate y = {0};
    int rc = 0;
    bool done = false;
    if (!yaml_parser_initialize(&p))
        return seterr(err, errlen, -ENOMEM, "out of memory");
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    while (!rc && !done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            rc = seterr(err, errlen, -EINVAL, "YAML line %zu: %s", p.problem_mark.line + 1,
                        p.problem ? p.problem : "syntax error");
            break;
        }
        done = ev.type == YAML_STREAM_END_EVENT || ev.type == YAML_DOCUMENT_END_EVENT;
        rc = on_event(&y, &ev, err, errlen);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    if (!rc && !y.root)
        rc = seterr(err, errlen, -EINVAL, "empty YAML document");
    if (rc) {
        ystate_free(&y);
        return rc;
    }
    *out = y.root;
    return 0;
}

/* ---- stack.yml → FunctionDeployments ---- */

/* A map of strings copied as is; anything else is refused with its key. */
static int copy_string_map(json_t *dep, const char *to, const json_t *from, const char *fn,
                           const char *what, char *err, size_t errlen)
{
    if (!from)
        return 0;
    if (!json_is_object(from))
        return seterr(err, errlen, -EINVAL, "function %s: %s must be a mapping", fn, what);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)from, k, v)
    {
        if (!json_is_string(v))
            return seterr(err, errlen, -EINVAL, "function %s: %s.%s must be a plain value", fn,
                          what, k);
    }
    json_object_set(dep, to, (json_t *)from);
    return 0;
}

static int resources(json_t *dep, const char *key, const json_t *from, const char *fn, char *err,
                     size_t errlen)
{
    if (!from)
        return 0;
    if (!json_is_object(from))
        return seterr(err, errlen, -EINVAL, "function %s: %s must be a mapping", fn, key);
    json_t *r = json_object();
    json_t *m = json_object_get(from, "memory"), *c = json_object_get(from, "cpu");
    if (json_is_string(m))
        json_object_set(r, "memory", m);
    if (json_is_string(c))
        json_object_set(r, "cpu", c);
    json_object_set_new(dep, key, r);
    return 0;
}

static int function_deployment(const char *name, const json_t *f, json_t **out, char *err,
                               size_t errlen)
{
    if (!json_is_object(f))
        return seterr(err, errlen, -EINVAL, "function %s must be a mapping", name);
    const char *image = json_string_value(json_object_get(f, "image"));
    if (!image || !*image)
        return seterr(err, errlen, -EINVAL, "function %s: image (the model) is required", name);
    json_t *dep =
        json_pack("{sssss{}s{}}", "service", name, "image", image, "labels", "annotations");
    int rc = copy_string_map(dep, "envVars", json_object_get(f, "environment"), name, "environment",
                             err, errlen);
    if (!rc)
        rc = copy_string_map(dep, "labels", json_object_get(f, "labels"), name, "labels", err,
                             errlen);
    if (!rc)
        rc = copy_string_map(dep, "annotations", json_object_get(f, "annotations"), name,
                             "annotations", err, errlen);
    if (!rc)
        rc = resources(dep, "limits", json_object_get(f, "limits"), name, err, errlen);
    if (!rc)
        rc = resources(dep, "requests", json_object_get(f, "requests"), name, err, errlen);
    const char *ns = json_string_value(json_object_get(f, "namespace"));
    if (!rc && ns)
        json_object_set_new(dep, "namespace", json_string(ns));
    if (rc) {
        json_decref(dep);
        return rc;
    }
    *out = dep;
    return 0;
}

int stack_parse(const char *text, size_t len, env_lookup lookup, void *user, struct stack *out,
                char *err, size_t errlen)
{
    char *subst;
    json_t *doc;
    memset(out, 0, sizeof *out);
    int rc = stack_substitute(text, len, lookup, user, &subst, err, errlen);
    if (rc)
        return rc;
    rc = yaml_to_json(subst, strlen(subst), &doc, err, errlen);
    free(subst);
    if (rc)
        return rc;
    json_t *fns = json_object_get(doc, "functions");
    if (!json_is_object(fns) || json_object_size(fns) == 0) {
        json_decref(doc);
        return seterr(err, errlen, -EINVAL, "stack file has no functions: mapping");
    }
    const char *gw =
        json_string_value(json_object_get(json_object_get(doc, "provider"), "gateway"));
    snprintf(out->gateway, sizeof out->gateway, "%s", gw ? gw : "");
    out->deployments = json_object();
    const char *name;
    json_t *f;
    json_object_foreach(fns, name, f)
    {
        json_t *dep = NULL;
        if ((rc = function_deployment(name, f, &dep, err, errlen)))
            break;
        json_object_set_new(out->deployments, name, dep);
    }
    json_decref(doc);
    if (rc)
        stack_free(out);
    return rc;
}

int stack_select(struct stack *s, const char *filter, const char *regex, char *err, size_t errlen)
{
    regex_t re;
    char why[256];
    if (filter && regex)
        return seterr(err, errlen, -EINVAL, "give --filter or --regex, not both");
    if (!filter && !regex)
        return 0;
    if (regex) {
        int rc = regcomp(&re, regex, REG_EXTENDED | REG_NOSUB);
        if (rc) {
            regerror(rc, &re, why, sizeof why);
            return seterr(err, errlen, -EINVAL, "--regex \"%s\": %s", regex, why);
        }
    }
    const char *name;
    json_t *dep;
    void *tmp;
    json_object_foreach_safe(s->deployments, tmp, name, dep)
    {
        bool keep = regex ? regexec(&re, name, 0, NULL, 0) == 0 : fnmatch(filter, name, 0) == 0;
        if (!keep)
            json_object_del(s->deployments, name);
    }
    if (regex)
        regfree(&re);
    if (json_object_size(s->deployments) == 0)
        return seterr(err, errlen, -ENOENT, "no function in the stack file matches %s \"%s\"",
                      regex ? "--regex" : "--filter", regex ? regex : filter);
    return 0;
}

void stack_free(struct stack *s)
{
    json_decref(s->deployments);
    s->deployments = NULL;
}
