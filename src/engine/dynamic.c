/*
 * dynamic.c — run-time shapes: a model whose dims vary per request, or whose shape operands
 * (Reshape's shape, Slice's starts, Resize's sizes, Range's bounds, TopK's k, ...) arrive as
 * inputs, runs on a plan specialised to each request.
 *
 * Plans are compiled for concrete shapes, and an operand that decides a shape must be a constant
 * when the plan is compiled. So a request's key is its inputs' dtypes and shapes plus the values
 * of the inputs that decide a shape; a miss compiles the model with those shapes and those
 * inputs pinned (engine_compile_opts.shapes and .pins), opens the image and creates a session.
 * Which inputs decide a shape is found once per model, on its first successful compile
 * (engine_compile_pinning: pin every candidate, then drop each the model compiles without), and
 * kept: later misses compile once. The cache is an LRU bounded by count and by bytes (image +
 * arena), so a stream of ever-new shapes evicts instead of growing; a key whose plan alone is
 * over the byte bound is refused. Weights: a new plan whose weights section is byte for byte a
 * cached plan's (the common case: the same layouts at another shape) keeps only its tables and
 * runs on that one copy (model_open_weights), refcounted past the eviction of the plan that
 * brought it; a plan whose packing differs (another layout, Winograd at a larger size, folded
 * shape-dependent constants) holds its own.
 */
#include "common/common.h"
#include "engine/ir.h"
#include "engine/plan.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- compile with the shape operands pinned ---- */

static bool pinnable(const struct engine_tensor *t)
{
    int64_t k = engine_shape_numel(&t->shape);
    bool integer = t->dtype == ENGINE_I32 || t->dtype == ENGINE_I64 || t->dtype == ENGINE_BOOL;
    return t->name && t->data && k >= 0 &&
           (integer ? k <= ENGINE_MAX_PIN_ELEMS
                    : t->dtype == ENGINE_F32 && k <= ENGINE_MAX_PIN_FLOATS);
}

static bool pinned_by(const struct engine_compile_opts *o, const char *name)
{
    for (int i = 0; i < o->n_pins; i++)
        if (o->pins[i].name && strcmp(o->pins[i].name, name) == 0)
            return true;
    return false;
}

int engine_compile_pinning(const void *onnx, size_t len, const struct engine_compile_opts *opts,
                           const struct engine_tensor *values, int n_values, int *pinned,
                           void **image, size_t *image_len, char *err, size_t errlen)
{
    for (int i = 0; i < n_values; i++)
        pinned[i] = 0;
    int rc = engine_compile(onnx, len, opts, image, image_len, err, errlen);
    /* "input N must be a constant", "needs constant scales or sizes", ...: the compiler's
     * refusals of an operand computed at run time all say "constant" */
    if (rc == 0 || n_values <= 0 || !err || !strstr(err, "constant"))
        return rc;
    int base = opts->n_pins, n = base;
    struct engine_tensor *pins = calloc((size_t)(base + n_values), sizeof(*pins));
    int *which = calloc((size_t)(base + n_values), sizeof(*which));
    if (!pins || !which) {
        free(pins);
        free(which);
        return rc;
    }
    for (int i = 0; i < base; i++)
        pins[i] = opts->pins[i];
    for (int i = 0; i < n_values; i++)
        if (pinnable(&values[i]) && !pinned_by(opts, values[i].name)) {
            which[n] = i;
            pins[n++] = values[i];
        }
    struct engine_compile_opts o = *opts;
    o.pins = pins;
    o.n_pins = n;
    char tmp[512];
    if (n == base || engine_compile(onnx, len, &o, image, image_len, tmp, sizeof(tmp)) != 0)
        goto out; /* pinning does not help: the first reason stands */
    rc = 0;
    /* drop each pin the model compiles without (swap it out of the list, keep the smaller image) */
    for (int i = base; i < o.n_pins;) {
        struct engine_tensor keep = pins[i];
        int keep_which = which[i];
        void *fewer;
        size_t fewer_len;
        o.n_pins--;
        pins[i] = pins[o.n_pins];
        which[i] = which[o.n_pins];
        if (engine_compile(onnx, len, &o, &fewer, &fewer_len, tmp, sizeof(tmp)) == 0) {
            engine_image_free(*image);
            *image = fewer;
            *image_len = fewer_len;
            continue;
        }
        pins[o.n_pins] = pins[i];
        which[o.n_pins] = which[i];
        o.n_pins++;
        pins[i] = keep;
        which[i] = keep_which;
        i++;
    }
    for (int i = base; i < o.n_pins; i++)
        pinned[which[i]] = 1;
out:
    free(pins);
    free(which);
    return rc;
}

/* ---- the specialising model ---- */

/* A compiled image whose weights section one or more plans run on. */
struct dyn_weights {
    void *image; /* engine_image_free */
    size_t len;
    int refs;
};

struct dyn_plan {
    uint8_t *key;
    size_t key_len;
    struct dyn_weights *w; /* its weights (and, without tables, its whole image) */
    void *tables;          /* its own tables when it shares another image's weights, else NULL */
    size_t image_len;
    struct engine_model *model;
    struct engine_session *session;
    uint64_t bytes; /* arena + own tables (the weights' image is counted once, by itself) */
    uint64_t used;  /* LRU clock of its last run */
};

struct dyn_io {
    char *name;
    int dtype;
    struct engine_shape shape; /* rank -1: not declared; a sequence's: its elements' */
    int seq;                   /* a sequence (2: an optional) input: fed as NAME[0], NAME[1], ... */
};

struct engine_dynamic {
    uint8_t *onnx;
    size_t len;
    struct engine_compile_opts copts;
    char *base_dir, *model_name;
    struct dyn_io *in, *out;
    int n_in, n_out;
    int *pinned;        /* per input: its values are part of the key */
    bool decided;       /* pinned is known (after the first successful compile) */
    int n_req, cap_req; /* the request's tensors: one per input, one per sequence element */
    int *req_of;        /* the model input each request tensor feeds */
    int *seq_len;       /* per input: the request's sequence length (0 for a tensor) */
    const struct engine_tensor **slots; /* ENGINE_MAX_SEQ + 1: a request's elements by index */
    struct dyn_plan *plans;
    int n_plans, max_plans;
    uint64_t max_bytes, clock;
    struct engine_tensor *req; /* n_req: the request's inputs in model order, named */
    struct engine_input_shape *shapes;
    struct engine_tensor *pins;
    int *pin_flags;
    struct engine_dynamic_stats st;
};

static int copy_io(const struct ir_graph *g, const int *idx, int n, struct dyn_io **out)
{
    *out = calloc((size_t)n + 1, sizeof(**out));
    if (!*out)
        return -ENOMEM;
    for (int i = 0; i < n; i++) {
        const struct ir_tensor *t = &g->tensors[idx[i]];
        (*out)[i].name = strdup(t->name ? t->name : "");
        (*out)[i].dtype = t->dtype;
        (*out)[i].shape = t->shape;
        (*out)[i].seq = t->flags & IR_T_SEQ ? (t->flags & IR_T_OPTIONAL ? 2 : 1) : 0;
        if (!(*out)[i].name)
            return -ENOMEM;
    }
    return 0;
}

static void weights_unref(struct engine_dynamic *d, struct dyn_weights *w);

static void free_plan(struct engine_dynamic *d, struct dyn_plan *p)
{
    engine_session_destroy(p->session);
    engine_model_close(p->model);
    free(p->tables);
    weights_unref(d, p->w);
    free(p->key);
}

void engine_dynamic_close(struct engine_dynamic *d)
{
    if (!d)
        return;
    for (int i = 0; i < d->n_plans; i++)
        free_plan(d, &d->plans[i]);
    for (int i = 0; d->in && i < d->n_in; i++)
        free(d->in[i].name);
    for (int i = 0; d->out && i < d->n_out; i++)
        free(d->out[i].name);
    free(d->in);
    free(d->out);
    free(d->plans);
    free(d->pinned);
    free(d->req);
    free(d->req_of);
    free(d->seq_len);
    free(d->slots);
    free(d->shapes);
    free(d->pins);
    free(d->pin_flags);
    free(d->onnx);
    free(d->base_dir);
    free(d->model_name);
    free(d);
}

int engine_dynamic_open(const void *onnx, size_t len, const struct engine_dynamic_opts *opts,
                        struct engine_dynamic **out, char *err, size_t errlen)
{
    *out = NULL;
    const struct engine_compile_opts *co = &opts->compile;
    const char *model = co->model_name ? co->model_name : "model";
    if (co->n_shapes || co->n_pins)
        return seterr(err, errlen, -EINVAL,
                      "model %s: a dynamic model takes its shapes and pins from each request",
                      model);
    if (opts->max_plans < 0 || opts->max_plans > ENGINE_DYNAMIC_MAX_PLANS)
        return seterr(err, errlen, -EINVAL, "model %s: plan cache of %d out of range (0..%d)",
                      model, opts->max_plans, ENGINE_DYNAMIC_MAX_PLANS);
    struct engine_dynamic *d = calloc(1, sizeof(*d));
    if (!d)
        return seterr(err, errlen, -ENOMEM, "out of memory");
    d->copts = *co;
    d->max_plans = opts->max_plans ? opts->max_plans : ENGINE_DYNAMIC_PLANS;
    /* default: a model's own images fit however large its weights (each a copy of them) */
    d->max_bytes = opts->max_bytes ? opts->max_bytes : ENGINE_DYNAMIC_BYTES + 4 * (uint64_t)len;
    d->st.pinned_inputs = -1;
    d->onnx = malloc(len ? len : 1);
    d->model_name = strdup(model);
    d->base_dir = co->base_dir ? strdup(co->base_dir) : NULL;
    d->plans = calloc((size_t)d->max_plans, sizeof(*d->plans));
    int rc = d->onnx && d->model_name && d->plans && (d->base_dir || !co->base_dir)
                 ? 0
                 : seterr(err, errlen, -ENOMEM, "out of memory");
    struct ir_graph *g = NULL;
    if (!rc) {
        memcpy(d->onnx, onnx, len);
        d->len = len;
        d->copts.model_name = d->model_name;
        d->copts.base_dir = d->base_dir;
        rc = ir_import_onnx(onnx, len, d->base_dir, d->model_name, &g, err, errlen);
    }
    if (!rc) {
        d->n_in = g->n_inputs;
        d->n_out = g->n_outputs;
        if (copy_io(g, g->inputs, g->n_inputs, &d->in) ||
            copy_io(g, g->outputs, g->n_outputs, &d->out))
            rc = seterr(err, errlen, -ENOMEM, "out of memory");
        for (int i = 0; !rc && g->output_seq && i < d->n_out; i++)
            d->out[i].seq = g->output_seq[i]; /* declared: an op makes it a sequence later */
    }
    ir_free(g);
    size_t n = (size_t)d->n_in + 1;
    if (!rc && (!(d->pinned = calloc(n, sizeof(int))) || !(d->seq_len = calloc(n, sizeof(int)))))
        rc = seterr(err, errlen, -ENOMEM, "out of memory");
    if (rc) {
        engine_dynamic_close(d);
        return rc;
    }
    *out = d;
    return 0;
}

int engine_dynamic_n_inputs(const struct engine_dynamic *d)
{
    return d->n_in;
}

int engine_dynamic_n_outputs(const struct engine_dynamic *d)
{
    return d->n_out;
}

static int io_info(const struct dyn_io *io, int n, int i, struct engine_tensor_info *out)
{
    if (i < 0 || i >= n)
        return -EINVAL;
    *out = (struct engine_tensor_info){
        .name = io[i].name, .dtype = io[i].dtype, .shape = io[i].shape, .seq = io[i].seq};
    return 0;
}

int engine_dynamic_input(const struct engine_dynamic *d, int i, struct engine_tensor_info *out)
{
    return io_info(d->in, d->n_in, i, out);
}

int engine_dynamic_output(const struct engine_dynamic *d, int i, struct engine_tensor_info *out)
{
    return io_info(d->out, d->n_out, i, out);
}

void engine_dynamic_stats(const struct engine_dynamic *d, struct engine_dynamic_stats *out)
{
    *out = d->st;
}

void engine_dynamic_release_memory(struct engine_dynamic *d)
{
    for (int i = 0; i < d->n_plans; i++)
        engine_session_release_memory(d->plans[i].session);
}

/* Room for n request tensors (and the shapes: one more per sequence input). */
static int req_room(struct engine_dynamic *d, int n)
{
    if (d->req && n <= d->cap_req)
        return 0;
    int cap = n + 8;
    size_t m = (size_t)cap + (size_t)d->n_in + 1;
    struct engine_tensor *req = realloc(d->req, m * sizeof(*req)), *pins;
    if (req)
        d->req = req;
    struct engine_input_shape *sh = realloc(d->shapes, m * sizeof(*sh));
    if (sh)
        d->shapes = sh;
    int *of = realloc(d->req_of, m * sizeof(int)), *fl;
    if (of)
        d->req_of = of;
    if (!req || !sh || !of || !(pins = realloc(d->pins, m * sizeof(*pins))))
        return -ENOMEM;
    d->pins = pins;
    if (!(fl = realloc(d->pin_flags, m * sizeof(int))))
        return -ENOMEM;
    d->pin_flags = fl;
    d->cap_req = cap;
    return 0;
}

/* The request tensor named name (NULL: the only one, when the model has one plain input). */
static const struct engine_tensor *
find_named(const struct engine_dynamic *d, const struct engine_tensor *in, int n, const char *name)
{
    for (int k = 0; k < n; k++)
        if ((in[k].name && strcmp(in[k].name, name) == 0) ||
            (!in[k].name && n == 1 && d->n_in == 1 && !d->in[0].seq))
            return &in[k];
    return NULL;
}

/* Checks request tensor t against what the model declares for io (dtype, rank, fixed dims, byte
 * count); what names it in messages. */
static int check_input(const struct engine_dynamic *d, const struct dyn_io *io,
                       const struct engine_tensor *t, const char *what, char *err, size_t errlen)
{
    char s1[128], s2[128];
    int64_t numel = engine_shape_numel(&t->shape);
    bool fits = t->shape.rank >= 0 && t->shape.rank <= ENGINE_MAX_RANK &&
                (io->shape.rank < 0 || io->shape.rank == t->shape.rank);
    for (int k = 0; fits && io->shape.rank >= 0 && k < io->shape.rank; k++)
        fits = t->shape.dims[k] >= 0 &&
               (io->shape.dims[k] < 0 || io->shape.dims[k] == t->shape.dims[k]);
    if (!fits)
        return seterr(err, errlen, -EINVAL, "model %s: input '%s' has shape %s, the model %s",
                      d->model_name, what, engine_shape_str(&t->shape, s1, sizeof(s1)),
                      engine_shape_str(&io->shape, s2, sizeof(s2)));
    if (t->dtype != io->dtype)
        return seterr(err, errlen, -EINVAL, "model %s: input '%s' is %s, the model wants %s",
                      d->model_name, what, engine_dtype_name(t->dtype),
                      engine_dtype_name(io->dtype));
    if (numel < 0 || !t->data || t->nbytes != (size_t)numel * engine_dtype_size(t->dtype))
        return seterr(err, errlen, -EINVAL, "model %s: input '%s': %zu bytes for %s", d->model_name,
                      what, t->nbytes, engine_shape_str(&t->shape, s1, sizeof(s1)));
    return 0;
}

/* k when name is "<base>[k]" (k in 0..ENGINE_MAX_SEQ, decimal, no sign or leading zero), else
 * -1. */
static int elem_index(const char *name, const char *base)
{
    size_t len = strlen(base);
    if (!name || strncmp(name, base, len) != 0 || name[len] != '[')
        return -1;
    const char *p = name + len + 1;
    int k = 0, digits = 0;
    for (; *p >= '0' && *p <= '9' && digits < 5; p++, digits++)
        k = k * 10 + (*p - '0');
    if (digits == 0 || (digits > 1 && name[len + 1] == '0') || strcmp(p, "]") != 0 ||
        k > ENGINE_MAX_SEQ)
        return -1;
    return k;
}

/* Sequence input io's elements among the request's tensors, by index, into d->slots; returns
 * the length (the elements 0, 1, ... present without a gap; a later or repeated one stays
 * unmatched) or -errno. */
static int find_elems(struct engine_dynamic *d, const struct dyn_io *io,
                      const struct engine_tensor *in, int n, char *err, size_t errlen)
{
    int max = io->seq == 2 ? 1 : ENGINE_MAX_SEQ;
    if (!d->slots && !(d->slots = malloc((ENGINE_MAX_SEQ + 1) * sizeof(*d->slots))))
        return seterr(err, errlen, -ENOMEM, "out of memory");
    memset(d->slots, 0, (size_t)(max + 1) * sizeof(*d->slots));
    for (int j = 0; j < n; j++) {
        int k = elem_index(in[j].name, io->name);
        if (k >= 0 && k <= max && !d->slots[k])
            d->slots[k] = &in[j];
    }
    int len = 0;
    while (len <= max && d->slots[len])
        len++;
    if (len > max)
        return seterr(err, errlen, -E2BIG, "model %s: input '%s' has more than %d elements",
                      d->model_name, io->name, max);
    return len;
}

/* The request's inputs in model order (d->req, named as the model names them, a sequence input
 * by its elements "NAME[0]", "NAME[1]", ... up to ENGINE_MAX_SEQ), each checked against what
 * the model declares. */
static int match_inputs(struct engine_dynamic *d, const struct engine_tensor *in, int n, char *err,
                        size_t errlen)
{
    if (n < 0 || n > ENGINE_MAX_SEQ * 4 || (n && !in))
        return seterr(err, errlen, -EINVAL, "model %s: %d inputs given", d->model_name, n);
    if (req_room(d, n) != 0)
        return seterr(err, errlen, -ENOMEM, "out of memory");
    int m = 0;
    for (int i = 0; i < d->n_in; i++) {
        const struct dyn_io *io = &d->in[i];
        d->seq_len[i] = 0;
        if (!io->seq) {
            const struct engine_tensor *t = find_named(d, in, n, io->name);
            if (!t)
                return seterr(err, errlen, -EINVAL, "model %s: input '%s' missing", d->model_name,
                              io->name);
            int rc = check_input(d, io, t, io->name, err, errlen);
            if (rc)
                return rc;
            d->req_of[m] = i;
            d->req[m] = *t;
            d->req[m++].name = io->name;
            continue;
        }
        int len = find_elems(d, io, in, n, err, errlen);
        if (len < 0)
            return len;
        for (int k = 0; k < len && m < n; k++) {
            const struct engine_tensor *t = d->slots[k];
            int rc = check_input(d, io, t, t->name, err, errlen);
            if (rc)
                return rc;
            d->req_of[m] = i;
            d->req[m++] = *t; /* named "NAME[k]" by the caller, valid through the run */
            d->seq_len[i]++;
        }
    }
    if (m != n)
        return seterr(err, errlen, -EINVAL,
                      "model %s: %d inputs given, the model takes %d of them (a sequence input "
                      "NAME is fed as NAME[0], NAME[1], ...; the others are not its inputs)",
                      d->model_name, n, m);
    d->n_req = m;
    return 0;
}

/* dtype, rank and dims of every input, and the values of the pinned ones. */
static uint8_t *make_key(const struct engine_dynamic *d, size_t *len)
{
    size_t n = (size_t)d->n_in * sizeof(int32_t);
    for (int i = 0; i < d->n_req; i++)
        n += 2 * sizeof(int32_t) + (size_t)d->req[i].shape.rank * sizeof(int64_t) +
             (d->pinned[d->req_of[i]] ? sizeof(uint64_t) + d->req[i].nbytes : 0);
    uint8_t *k = malloc(n ? n : 1), *p = k;
    if (!k)
        return NULL;
    for (int i = 0; i < d->n_in; i++) { /* sequence lengths: the flat list alone is ambiguous */
        int32_t sl = d->seq_len[i];
        memcpy(p, &sl, sizeof(sl));
        p += sizeof(sl);
    }
    for (int i = 0; i < d->n_req; i++) {
        const struct engine_tensor *t = &d->req[i];
        int32_t head[2] = {t->dtype, t->shape.rank};
        memcpy(p, head, sizeof(head));
        p += sizeof(head);
        memcpy(p, t->shape.dims, (size_t)t->shape.rank * sizeof(int64_t));
        p += (size_t)t->shape.rank * sizeof(int64_t);
        if (d->pinned[d->req_of[i]]) {
            uint64_t nb = t->nbytes;
            memcpy(p, &nb, sizeof(nb));
            memcpy(p + sizeof(nb), t->data, t->nbytes);
            p += sizeof(nb) + t->nbytes;
        }
    }
    *len = n;
    return k;
}

static void weights_unref(struct engine_dynamic *d, struct dyn_weights *w)
{
    if (!w || --w->refs > 0)
        return;
    d->st.bytes -= w->len;
    engine_image_free(w->image);
    free(w);
}

static const struct plan_section *weights_section(const void *image)
{
    return &((const struct plan_header *)image)->sec[PLAN_SEC_WEIGHTS];
}

/* A cached plan's weights equal to those of image (len bytes), or NULL. */
static struct dyn_weights *same_weights(const struct engine_dynamic *d, const void *image)
{
    const struct plan_section *ws = weights_section(image);
    for (int i = 0; i < d->n_plans; i++) {
        struct dyn_weights *w = d->plans[i].w;
        const struct plan_section *cs = weights_section(w->image);
        if (cs->size == ws->size && ws->size > 0 &&
            memcmp((const uint8_t *)w->image + cs->offset, (const uint8_t *)image + ws->offset,
                   ws->size) == 0)
            return w;
    }
    return NULL;
}

/* Opens a freshly compiled image as p: on a cached plan's weights when they are the same (the
 * image is then cut to its tables), else on its own. Takes the image over. */
static int open_plan(struct engine_dynamic *d, struct dyn_plan *p, void *image, size_t len,
                     char *err, size_t errlen)
{
    p->image_len = len;
    struct dyn_weights *w = len >= sizeof(struct plan_header) ? same_weights(d, image) : NULL;
    if (w) {
        size_t tables = weights_section(image)->offset;
        p->tables = aligned_alloc(PLAN_ALIGN, ALIGN_UP(tables, PLAN_ALIGN));
        if (p->tables) {
            memcpy(p->tables, image, tables);
            engine_image_free(image);
            w->refs++;
            p->w = w;
            d->st.weights_shared++;
            const struct plan_section *cs = weights_section(w->image);
            return model_open_weights(p->tables, len, (const uint8_t *)w->image + cs->offset,
                                      &p->model, err, errlen);
        }
    }
    if (!(p->w = calloc(1, sizeof(*p->w)))) {
        engine_image_free(image);
        return seterr(err, errlen, -ENOMEM, "out of memory");
    }
    *p->w = (struct dyn_weights){.image = image, .len = len, .refs = 1};
    d->st.bytes += len;
    return engine_model_open(image, len, &p->model, err, errlen);
}

static void evict(struct engine_dynamic *d, int i)
{
    d->st.bytes -= d->plans[i].bytes;
    free_plan(d, &d->plans[i]);
    d->plans[i] = d->plans[--d->n_plans];
    d->st.plans = d->n_plans;
    d->st.evictions++;
}

static int lru(const struct engine_dynamic *d)
{
    int best = 0;
    for (int i = 1; i < d->n_plans; i++)
        if (d->plans[i].used < d->plans[best].used)
            best = i;
    return best;
}

/* Compiles, opens and caches the plan of the current request (key is taken over). */
static int specialise(struct engine_dynamic *d, uint8_t *key, size_t key_len, struct dyn_plan **out,
                      char *err, size_t errlen)
{
    struct dyn_plan p = {.key = key, .key_len = key_len};
    void *image = NULL;
    size_t image_len = 0;
    struct engine_compile_opts o = d->copts;
    int n_pins = 0, n_shapes = 0;
    for (int i = 0; i < d->n_req; i++) {
        d->shapes[n_shapes++] = (struct engine_input_shape){d->req[i].name, d->req[i].shape};
        if (d->decided && d->pinned[d->req_of[i]])
            d->pins[n_pins++] = d->req[i];
    }
    for (int i = 0; i < d->n_in; i++) /* a sequence's length: a shape "NAME=[L]" */
        if (d->in[i].seq)
            d->shapes[n_shapes++] =
                (struct engine_input_shape){d->in[i].name, {.rank = 1, .dims = {d->seq_len[i]}}};
    o.shapes = d->shapes;
    o.n_shapes = n_shapes;
    o.pins = d->pins;
    o.n_pins = n_pins;
    int64_t t0 = now_ns();
    int rc;
    if (d->decided) {
        rc = engine_compile(d->onnx, d->len, &o, &image, &image_len, err, errlen);
    } else {
        rc = engine_compile_pinning(d->onnx, d->len, &o, d->req, d->n_req, d->pin_flags, &image,
                                    &image_len, err, errlen);
        if (rc == 0) {
            int k = 0;
            for (int i = 0; i < d->n_req; i++)
                d->pinned[d->req_of[i]] |= d->pin_flags[i];
            for (int i = 0; i < d->n_in; i++)
                k += d->pinned[i];
            d->decided = true;
            d->st.pinned_inputs = k;
            /* the key was made before the pinned set was known: remake it */
            free(p.key);
            if (!(p.key = make_key(d, &p.key_len))) {
                engine_image_free(image);
                rc = seterr(err, errlen, -ENOMEM, "out of memory");
            }
        }
    }
    d->st.compiles++;
    if (rc) {
        d->st.refused++;
        d->st.last_refused = 1;
        free_plan(d, &p);
        return rc;
    }
    rc = open_plan(d, &p, image, image_len, err, errlen);
    if (!rc) {
        p.bytes =
            engine_model_arena_size(p.model) + (p.tables ? weights_section(p.tables)->offset : 0);
        if (p.bytes + (p.w->refs == 1 ? p.w->len : 0) > d->max_bytes) {
            char a[32], b[32];
            rc = seterr(err, errlen, -E2BIG,
                        "model %s: the plan for these input shapes needs %s, over the bound of %s",
                        d->model_name,
                        format_size(p.bytes + (p.w->refs == 1 ? p.w->len : 0), a, sizeof(a)),
                        format_size(d->max_bytes, b, sizeof(b)));
            d->st.last_refused = 1;
        }
    }
    while (!rc && d->n_plans > 0 &&
           (d->n_plans >= d->max_plans || d->st.bytes + p.bytes > d->max_bytes))
        evict(d, lru(d));
    if (!rc)
        rc = engine_session_create(p.model, &p.session, err, errlen);
    if (rc) {
        free_plan(d, &p);
        return rc;
    }
    d->st.last_compile_ms = (double)(now_ns() - t0) / 1e6;
    d->st.bytes += p.bytes;
    d->plans[d->n_plans] = p;
    *out = &d->plans[d->n_plans++];
    d->st.plans = d->n_plans;
    return 0;
}

int engine_dynamic_run(struct engine_dynamic *d, const struct engine_tensor *inputs, int n_inputs,
                       struct engine_tensor *outputs, int n_outputs, char *err, size_t errlen)
{
    d->st.runs++;
    d->st.last_refused = 0;
    int rc = match_inputs(d, inputs, n_inputs, err, errlen);
    if (rc)
        return rc;
    size_t key_len;
    uint8_t *key = make_key(d, &key_len);
    if (!key)
        return seterr(err, errlen, -ENOMEM, "out of memory");
    struct dyn_plan *p = NULL;
    for (int i = 0; i < d->n_plans && !p; i++)
        if (d->plans[i].key_len == key_len && memcmp(d->plans[i].key, key, key_len) == 0)
            p = &d->plans[i];
    if (p) {
        d->st.hits++;
        free(key);
    } else {
        d->st.misses++;
        rc = specialise(d, key, key_len, &p, err, errlen);
        if (rc)
            return rc;
    }
    p->used = ++d->clock;
    rc = engine_session_run(p->session, d->req, d->n_req, outputs, n_outputs, err, errlen);
    d->st.outputs = rc ? 0 : engine_model_n_outputs(p->model);
    for (int i = d->st.outputs; rc == 0 && i < n_outputs; i++)
        outputs[i] = (struct engine_tensor){0};
    return rc;
}
