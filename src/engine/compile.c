/*
 * compile.c — the plan compiler: ONNX bytes → IR passes → plan tables → image.
 *
 * This file is the driver: graph inputs and outputs, the header, the walk over the nodes. Each
 * op's lowering is the `lower` of its row in ops/ops.def (its family file under ops/), written
 * with the toolkit of lower.c.
 *
 * Lowering walks the live IR nodes in topological order and emits one plan node per oneDNN
 * primitive. Shape-only ops (Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout) emit no
 * node: their output is an alias of their input's activation buffer. Weights of convolutions and
 * inner products are reordered once, here, into the layout oneDNN picks for this CPU and thread
 * count (format `any`), and stored with that layout's memory desc and the implementation name.
 *
 * Layouts: each convolution picks its preferred src/dst layouts (format `any`, typically nChw8c
 * on AVX2); pooling, eltwise, batch norm, same-shape binary ops and channel concats keep their
 * input's layout; a reorder node is inserted only where an op needs plain row-major data (inner
 * product, matmul, softmax, broadcasting binary ops, shape-only aliases, graph outputs) or a
 * convolution wants another layout. memplan.c then gives every activation buffer an offset in
 * one arena.
 */
#include "config.h"
#include "engine/ops/op.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

static int lower_node(struct lower *l, const struct ir_node *n)
{
    const struct ir_op_def *d = ir_op_find(n->op);
    return d ? d->lower(l, n) : no_lower(l, n);
}

static int map_inputs(struct lower *l)
{
    for (int i = 0; i < l->g->n_inputs; i++) {
        int t = l->g->inputs[i];
        const struct ir_tensor *it = &l->g->tensors[t];
        if (!it->shape_known)
            return seterr(l->err, l->errlen, -EINVAL, "model %s: input %s has no concrete shape",
                          l->model, it->name);
        /* a pinned input is a constant that runs must match: its values sit in the weights */
        int64_t pt = add_plan_tensor(l, it, it->data ? PLAN_ST_CONST : PLAN_ST_ARENA);
        if (pt < 0)
            return seterr(l->err, l->errlen, (int)pt, "model %s: input %s: bad shape", l->model,
                          it->name);
        l->b.tensors[pt].flags |= PLAN_TF_INPUT | (it->data ? PLAN_TF_PINNED : 0);
        l->tmap[t] = (int32_t)pt;
    }
    return 0;
}

/* The plain arena tensor that holds graph output t: its own, a reordered copy, or for an output
 * that folding made constant, a copy of the constant made on every run. */
static int64_t output_buffer(struct lower *l, int t)
{
    int64_t pt = l->tmap[t];
    const struct ir_tensor *it = &l->g->tensors[t];
    if (it->data && (pt < 0 || l->b.tensors[pt].storage != PLAN_ST_ARENA)) {
        int64_t src = pt >= 0 ? pt : add_plan_tensor(l, it, PLAN_ST_CONST);
        int64_t dst = add_plan_tensor(l, it, PLAN_ST_ARENA);
        if (src < 0 || dst < 0)
            return -ENOMEM;
        return emit_copy(l, NULL, src, dst) ? -EINVAL : dst;
    }
    return in_layout(l, NULL, pt, PLAN_LAYOUT_PLAIN);
}

static int list_io(struct lower *l)
{
    struct plan_header *h = &l->b.h;
    int64_t *outs = calloc((size_t)l->g->n_outputs + 1, sizeof(*outs));
    if (!outs)
        return -ENOMEM;
    /* outputs are made plain first: a reorder node appends to the index too */
    int rc = 0;
    for (int i = 0; i < l->g->n_outputs && !rc; i++) {
        int t = l->g->outputs[i];
        outs[i] = t >= 0 && t < l->g->n_tensors ? output_buffer(l, t) : -1;
        if (outs[i] < 0 || l->b.tensors[outs[i]].storage != PLAN_ST_ARENA)
            rc = seterr(l->err, l->errlen, -EINVAL,
                        "model %s: output %s is a constant or never computed", l->model,
                        t >= 0 && t < l->g->n_tensors ? l->g->tensors[t].name : "?");
    }
    h->inputs_first = l->b.n_index;
    h->n_inputs = (uint32_t)l->g->n_inputs;
    for (int i = 0; i < l->g->n_inputs && !rc; i++)
        if (plan_add_index(&l->b, l->tmap[l->g->inputs[i]]) < 0)
            rc = -ENOMEM;
    h->outputs_first = l->b.n_index;
    h->n_outputs = (uint32_t)l->g->n_outputs;
    for (int i = 0; i < l->g->n_outputs && !rc; i++) {
        l->b.tensors[outs[i]].flags |= PLAN_TF_OUTPUT;
        if (plan_add_index(&l->b, (int32_t)outs[i]) < 0)
            rc = -ENOMEM;
    }
    free(outs);
    return rc;
}

static int fill_header(struct lower *l, const struct plan_compile_opts *opts)
{
    struct plan_header *h = &l->b.h;
    snprintf(h->engine_version, sizeof(h->engine_version), "%s", SHMFAAS_VERSION);
    cpu_dnnl_version(h->dnnl_version, sizeof(h->dnnl_version));
    snprintf(h->isa, sizeof(h->isa), "%s", cpu_isa_name());
    h->threads = (uint32_t)opts->threads;
    if (opts->source_sha256)
        memcpy(h->source_sha256, opts->source_sha256, SHA256_LEN);
    int64_t name = plan_add_string(&l->b, l->model);
    if (name < 0)
        return -ENOMEM;
    h->model_name = (uint32_t)name;
    return 0;
}

static int lower_graph(struct lower *l, const struct plan_compile_opts *opts)
{
    int rc = fill_header(l, opts);
    if (!rc)
        rc = map_inputs(l);
    for (int i = 0; !rc && i < l->g->n_nodes; i++) /* an If lowers its branches' nodes */
        if (!l->g->nodes[i].dead && ir_node_scope(l->g, &l->g->nodes[i]) == 0)
            rc = lower_node(l, &l->g->nodes[i]);
    if (!rc)
        rc = list_io(l);
    if (!rc && plan_memory(&l->b) < 0)
        rc = seterr(l->err, l->errlen, -ENOMEM, "model %s: out of memory planning the arena",
                    l->model);
    return rc;
}

int plan_compile(const struct ir_graph *g, const struct plan_compile_opts *opts, void **image,
                 size_t *image_len, char *err, size_t errlen)
{
    struct lower l = {.g = g,
                      .model = opts->model_name ? opts->model_name : "model",
                      .winograd = opts->winograd,
                      .lower_node = lower_node,
                      .err = err,
                      .errlen = errlen};
    if (err && errlen)
        err[0] = '\0';
    plan_builder_init(&l.b);
    l.tmap = malloc(((size_t)g->n_tensors + 1) * sizeof(*l.tmap));
    if (!l.tmap)
        return seterr(err, errlen, -ENOMEM, "out of memory");
    for (int i = 0; i < g->n_tensors; i++)
        l.tmap[i] = -1;
    uint64_t weights = 0;
    for (int i = 0; i < g->n_tensors; i++)
        if (g->tensors[i].data)
            weights += ALIGN_UP(g->tensors[i].nbytes, PLAN_ALIGN);
    plan_reserve_weights(&l.b, weights + weights / 16); /* packing pads some layouts */
    cpu_set_threads(opts->threads);
    int rc = dnnl_engine_create(&l.eng, dnnl_cpu, 0) == dnnl_success &&
                     dnnl_stream_create(&l.stream, l.eng, dnnl_stream_default_flags) == dnnl_success
                 ? 0
                 : seterr(err, errlen, -EIO, "cannot create a oneDNN CPU engine");
    if (!rc)
        rc = pick_winograd(&l);
    if (!rc)
        rc = lower_graph(&l, opts);
    if (!rc)
        rc = plan_builder_finish(&l.b, image, image_len, err, errlen);
    if (l.stream)
        dnnl_stream_destroy(l.stream);
    if (l.eng)
        dnnl_engine_destroy(l.eng);
    plan_builder_free(&l.b);
    free(l.tmap);
    free(l.relayouts);
    free(l.wino_pick);
    return rc;
}

int engine_compile(const void *onnx, size_t len, const struct engine_compile_opts *opts,
                   void **image, size_t *image_len, char *err, size_t errlen)
{
    struct engine_compile_opts none = {0};
    if (!opts)
        opts = &none;
    const char *model = opts->model_name ? opts->model_name : "model";
    if (opts->threads < 0 || opts->threads > 1024)
        return seterr(err, errlen, -EINVAL, "model %s: thread count %d out of range", model,
                      opts->threads);
    if (opts->winograd < ENGINE_WINOGRAD_AUTO || opts->winograd > ENGINE_WINOGRAD_ALL)
        return seterr(err, errlen, -EINVAL, "model %s: Winograd setting %d out of range", model,
                      opts->winograd);
    uint8_t sha[SHA256_LEN];
    sha256(onnx, len, sha);
    struct ir_graph *g = NULL;
    int rc = ir_import_onnx(onnx, len, opts->base_dir, model, &g, err, errlen);
    if (!rc)
        rc = ir_seq_inputs(g, opts->shapes, opts->n_shapes, err, errlen);
    if (!rc)
        rc = ir_widen_fp16(g, err, errlen);
    if (!rc)
        rc = ir_pin_inputs(g, opts->pins, opts->n_pins, err, errlen);
    if (!rc)
        rc = ir_infer_shapes(g, opts->shapes, opts->n_shapes, err, errlen);
    if (!rc)
        rc = ir_fold_constants(g, err, errlen);
    if (!rc)
        rc = ir_optimize(g, err, errlen);
    if (!rc) {
        struct plan_compile_opts po = {.threads = opts->threads ? opts->threads : 1,
                                       .winograd = opts->winograd,
                                       .model_name = model,
                                       .source_sha256 = sha};
        rc = plan_compile(g, &po, image, image_len, err, errlen);
    }
    ir_free(g);
#ifdef __GLIBC__
    /* A compile frees up to hundreds of MiB of graph, weights and packing buffers: give the free
     * pages of the malloc arenas back (a process that compiles and then serves, as shmfaas-fn
     * --private does, would otherwise keep them; the store also fixes its mmap threshold). */
    malloc_trim(0);
#endif
    return rc;
}
