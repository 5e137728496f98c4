/*
 * Run-time shapes in an instance (shapes.h): a plan per request shape, from the store or, with
 * --private, from the engine's specialising model.
 */
#include "fn/shapes.h"
#include "fn/store_source.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INPUTS 16
#define REF_MAX    4352
#define MINUTE_NS  (INT64_C(60) * 1000000000)

/* One request shape's image from the store, under its own lease. */
struct shape_plan {
    char *ref; /* MODEL?SHAPES: the key */
    struct fn_store_source *src;
    struct engine_model *model;
    struct engine_session *session;
    uint64_t arena; /* activation bytes of its session */
    uint64_t used;  /* LRU clock */
};

struct fn_shapes {
    const struct fn_config *cfg;
    struct engine_dynamic *dyn; /* --private */
    struct shape_plan plans[FN_SHAPES_MAX];
    int n_plans;
    uint64_t clock, attaches, evictions;
    uint64_t arenas;   /* of the cached plans: at most ENGINE_DYNAMIC_BYTES */
    int64_t window_ns; /* start of the current minute of new shapes ... */
    int new_in_window; /* ... and how many it attached (FN_SHAPES_NEW_PER_MIN) */
};

bool fn_shapes_needed(const struct fn_config *c, const char *err)
{
    if (c->input_shape || (c->private_path && strstr(c->private_path, ".plan")))
        return false;
    /* --private: shape operands ("must be a constant", ...) and sequence lengths are resolved
     * per request by the engine's specialising model */
    return strstr(err, "symbolic dim") ||
           (c->private_path && (strstr(err, "constant") || strstr(err, "is a sequence")));
}

static int open_private(struct fn_shapes *s, const struct fn_config *c, char *err, size_t errlen)
{
    uint8_t *onnx = NULL;
    size_t len = 0;
    int rc = read_file(c->private_path, SIZE_MAX / 2, &onnx, &len, err, errlen);
    char *dir = rc == 0 ? strdup(c->private_path) : NULL;
    if (rc == 0 && !dir)
        rc = seterr(err, errlen, -ENOMEM, "--private: out of memory");
    if (rc == 0) {
        struct engine_dynamic_opts o = {.compile = {.threads = c->threads,
                                                    .base_dir = dirname(dir),
                                                    .model_name = c->private_path},
                                        .max_plans = FN_SHAPES_MAX};
        rc = engine_dynamic_open(onnx, len, &o, &s->dyn, err, errlen);
    }
    free(dir);
    free(onnx);
    return rc;
}

int fn_shapes_open(const struct fn_config *c, struct fn_shapes **out, char *err, size_t errlen)
{
    struct fn_shapes *s = calloc(1, sizeof(*s));
    if (!s)
        return seterr(err, errlen, -ENOMEM, "out of memory");
    s->cfg = c;
    if (c->codec.input != FN_IN_JSON || c->codec.output != FN_OUT_JSON) {
        free(s);
        return seterr(err, errlen, -EINVAL,
                      "the model's input shapes vary per request: input=json and output=json "
                      "serve it; for other codecs set input_shape");
    }
    int rc = c->private_path ? open_private(s, c, err, errlen) : 0;
    if (rc < 0) {
        fn_shapes_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

static void drop_plan(struct fn_shapes *s, int i)
{
    struct shape_plan *p = &s->plans[i];
    engine_session_destroy(p->session);
    engine_model_close(p->model);
    fn_store_source_close(p->src); /* the lease goes with the connection */
    free(p->ref);
    s->arenas -= p->arena;
    s->plans[i] = s->plans[--s->n_plans];
}

void fn_shapes_close(struct fn_shapes *s)
{
    if (!s)
        return;
    while (s->n_plans > 0)
        drop_plan(s, s->n_plans - 1);
    engine_dynamic_close(s->dyn);
    free(s);
}

void fn_shapes_release_memory(struct fn_shapes *s)
{
    if (s->dyn)
        engine_dynamic_release_memory(s->dyn);
    for (int i = 0; i < s->n_plans; i++)
        engine_session_release_memory(s->plans[i].session);
}

const char *fn_shapes_describe(const struct fn_shapes *s, char *buf, size_t len)
{
    snprintf(buf, len, "%s, shapes per request (at most %d cached)", s->dyn ? "private" : "store",
             FN_SHAPES_MAX);
    return buf;
}

/* "MODEL?name=DxD;name=DxD" for the request's inputs, sorted by name (one ref per shape). */
static int shape_ref(const struct fn_shapes *s, const struct engine_tensor *in, int n, char *ref,
                     size_t len, char *err, size_t errlen)
{
    struct engine_input_shape shapes[MAX_INPUTS];
    if (n < 1 || n > MAX_INPUTS)
        return seterr(err, errlen, -EINVAL, "%d inputs given; 1 to %d served", n, MAX_INPUTS);
    for (int i = 0; i < n; i++) {
        if (!in[i].name)
            return seterr(err, errlen, -EINVAL, "input %d has no name", i);
        int k = i;
        while (k > 0 && strcmp(shapes[k - 1].name, in[i].name) > 0) {
            shapes[k] = shapes[k - 1];
            k--;
        }
        shapes[k] = (struct engine_input_shape){in[i].name, in[i].shape};
    }
    int used = snprintf(ref, len, "%s?", s->cfg->model_ref);
    if (used < 0 || (size_t)used >= len ||
        engine_shapes_format(shapes, n, ref + used, len - (size_t)used) < 0)
        return seterr(err, errlen, -EINVAL, "the request's input names and shapes are too long");
    return 0;
}

/* A new shape makes the store compile an image that takes budget other functions' idle images
 * had: a requester may ask for at most FN_SHAPES_NEW_PER_MIN new shapes a minute. */
static int admit_new_shape(struct fn_shapes *s, char *err, size_t errlen)
{
    int64_t now = now_ns();
    if (now - s->window_ns >= MINUTE_NS) {
        s->window_ns = now;
        s->new_in_window = 0;
    }
    if (s->new_in_window >= FN_SHAPES_NEW_PER_MIN)
        return seterr(err, errlen, -EAGAIN,
                      "more than %d new input shapes in a minute: retry later, or reuse a shape",
                      FN_SHAPES_NEW_PER_MIN);
    s->new_in_window++;
    return 0;
}

static int attach_shape(struct fn_shapes *s, char *ref, struct shape_plan **out, char *err,
                        size_t errlen)
{
    struct shape_plan p = {0};
    void *image;
    const void *weights;
    size_t len, wlen;
    int rc = admit_new_shape(s, err, errlen);
    if (rc)
        return rc;
    rc = fn_store_source_open(s->cfg->store_path, ref, s->cfg->threads, &p.src, &image, &len,
                              &weights, &wlen, err, errlen);
    if (rc == FN_STORE_REFUSED_COMPILE)
        rc = -EINVAL; /* these shapes do not fit the model: the request's fault */
    if (rc == 0)
        rc = engine_model_open_parts(image, len, weights, wlen, &p.model, err, errlen);
    if (rc == 0 && (p.arena = engine_model_arena_size(p.model)) > ENGINE_DYNAMIC_BYTES) {
        char a[32], b[32];
        rc = seterr(
            err, errlen, -EINVAL, "these input shapes need %s of activations, over the bound of %s",
            format_size(p.arena, a, sizeof(a)), format_size(ENGINE_DYNAMIC_BYTES, b, sizeof(b)));
    }
    while (rc == 0 && s->n_plans > 0 &&
           (s->n_plans == FN_SHAPES_MAX || s->arenas + p.arena > ENGINE_DYNAMIC_BYTES)) {
        int old = 0;
        for (int i = 1; i < s->n_plans; i++)
            if (s->plans[i].used < s->plans[old].used)
                old = i;
        drop_plan(s, old);
        s->evictions++;
    }
    if (rc == 0)
        rc = engine_session_create(p.model, &p.session, err, errlen);
    if (rc == 0 && !(p.ref = strdup(ref)))
        rc = seterr(err, errlen, -ENOMEM, "out of memory");
    if (rc) {
        engine_session_destroy(p.session);
        engine_model_close(p.model);
        fn_store_source_close(p.src);
        return rc;
    }
    s->attaches++;
    s->arenas += p.arena;
    s->plans[s->n_plans] = p;
    *out = &s->plans[s->n_plans++];
    log_info("attached %s (%d shape(s) cached, %llu evicted)", ref, s->n_plans,
             (unsigned long long)s->evictions);
    return 0;
}

int fn_shapes_run(struct fn_shapes *s, const struct engine_tensor *in, int n_in,
                  struct engine_tensor *out, int max_outputs, int *n_outputs, char *err,
                  size_t errlen)
{
    if (s->dyn) { /* a sequence output fills one slot per element: offer every slot */
        int declared = engine_dynamic_n_outputs(s->dyn);
        if (declared > max_outputs)
            return seterr(err, errlen, -EINVAL, "the model has %d outputs; at most %d served",
                          declared, max_outputs);
        int rc = engine_dynamic_run(s->dyn, in, n_in, out, max_outputs, err, errlen);
        struct engine_dynamic_stats st;
        engine_dynamic_stats(s->dyn, &st);
        *n_outputs = rc ? 0 : st.outputs;
        return rc && st.last_refused ? -EINVAL : rc;
    }
    char ref[REF_MAX];
    int rc = shape_ref(s, in, n_in, ref, sizeof(ref), err, errlen);
    if (rc)
        return rc;
    struct shape_plan *p = NULL;
    for (int i = 0; i < s->n_plans && !p; i++)
        if (strcmp(s->plans[i].ref, ref) == 0)
            p = &s->plans[i];
    if (!p && (rc = attach_shape(s, ref, &p, err, errlen)) < 0)
        return rc;
    p->used = ++s->clock;
    *n_outputs = engine_model_n_outputs(p->model);
    if (*n_outputs > max_outputs)
        return seterr(err, errlen, -EINVAL, "the model has %d outputs; at most %d served",
                      *n_outputs, max_outputs);
    return engine_session_run(p->session, in, n_in, out, *n_outputs, err, errlen);
}
