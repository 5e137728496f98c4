/*
 * model.c — engine_model_open: wrap a (mapped, read-only) plan image without copying it.
 *
 * Open validates the tables (plan_image.c), then checks that this build and CPU are the ones the
 * image was compiled for, then re-resolves every primitive in this process with the image's thread
 * count. A primitive whose implementation or chosen weight layout differs from what the image
 * recorded would run, silently, on oneDNN's reference kernels — so such an image is refused and
 * the caller recompiles. The model keeps the primitive descriptors; sessions create primitives.
 */
#include "common/common.h"
#include "config.h"
#include "engine/plan.h"
#include "engine/winograd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int check_build(const struct plan_view *v, char *err, size_t errlen)
{
    const struct plan_header *h = v->h;
    char dnnl[16];
    cpu_dnnl_version(dnnl, sizeof(dnnl));
    const char *model = plan_str(v, h->model_name);
    if (strncmp(h->engine_version, SHMFAAS_VERSION, sizeof(h->engine_version)) != 0)
        return seterr(err, errlen, -EPROTO,
                      "model %s: image compiled by engine %.16s, this is %s; recompile", model,
                      h->engine_version, SHMFAAS_VERSION);
    if (strncmp(h->dnnl_version, dnnl, sizeof(h->dnnl_version)) != 0)
        return seterr(err, errlen, -EPROTO,
                      "model %s: image compiled for oneDNN %.16s, this process has %s; recompile",
                      model, h->dnnl_version, dnnl);
    if (strncmp(h->isa, cpu_isa_name(), sizeof(h->isa)) != 0)
        return seterr(err, errlen, -EPROTO,
                      "model %s: image compiled for CPU ISA %.24s, this CPU runs %s; recompile",
                      model, h->isa, cpu_isa_name());
    if (h->threads < 1 || h->threads > 1024)
        return seterr(err, errlen, -EINVAL, "model %s: image thread count %u out of range", model,
                      h->threads);
    return 0;
}

/* OMP_NUM_THREADS, when the environment sets it, is the thread count this process runs with. */
static int check_threads(const struct plan_view *v, char *err, size_t errlen)
{
    const char *env = getenv("OMP_NUM_THREADS");
    if (!env || !*env)
        return 0;
    char *end;
    long want = strtol(env, &end, 10);
    if (*end == ',' || *end == '\0') {
        if (want != (long)v->h->threads)
            return seterr(err, errlen, -EPROTO,
                          "model %s: image compiled for %u thread(s), this process runs "
                          "OMP_NUM_THREADS=%ld (ISA %s); recompile with --threads %ld",
                          plan_str(v, v->h->model_name), v->h->threads, want, cpu_isa_name(), want);
    }
    return 0;
}

static int md_sane(const dnnl_memory_desc_t *md)
{
    return md->ndims > 0 && md->ndims <= DNNL_MAX_NDIMS && md->format_kind == dnnl_blocked &&
           md->format_desc.blocking.inner_nblks >= 0 &&
           md->format_desc.blocking.inner_nblks <= DNNL_MAX_NDIMS;
}

static int refuse(const struct engine_model *m, const struct plan_node *n, const char *what,
                  const char *impl, char *err, size_t errlen)
{
    const struct plan_view *v = &m->v;
    return seterr(err, errlen, -EPROTO,
                  "model %s: node %s (%s): %s (compiled for %u thread(s) / ISA %.24s as %s, this "
                  "process resolves %s); recompile",
                  plan_str(v, v->h->model_name), plan_str(v, n->name), plan_str(v, n->onnx_op),
                  what, v->h->threads, v->h->isa, plan_str(v, n->impl), impl ? impl : "nothing");
}

/* The weights' layout this process picks must be the one packed in the image. */
static int check_weights(const struct engine_model *m, const struct plan_node *n,
                         dnnl_primitive_desc_t pd, const char *impl, char *err, size_t errlen)
{
    int packed = (n->op == PLAN_OP_CONV || n->op == PLAN_OP_INNER || n->op == PLAN_OP_PRELU ||
                  n->op == PLAN_OP_QCONV) &&
                 m->v.tensors[plan_input(&m->v, n, 1)].storage == PLAN_ST_PACKED;
    if (!packed)
        return n->wmd == PLAN_NONE ? 0
                                   : refuse(m, n, "unexpected weights layout", impl, err, errlen);
    if (n->wmd == PLAN_NONE)
        return refuse(m, n, "weights layout missing", impl, err, errlen);
    const dnnl_memory_desc_t *want = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *have = &m->v.mds[n->wmd];
    const struct plan_tensor *w = &m->v.tensors[plan_input(&m->v, n, 1)];
    if (!want || !md_sane(have) || !dnnl_memory_desc_equal(want, have) ||
        dnnl_memory_desc_get_size(want) != w->nbytes)
        return refuse(m, n, "weights are packed for another layout", impl, err, errlen);
    if (strncmp(impl, "ref", 3) == 0)
        return refuse(m, n, "would run on a reference kernel", impl, err, errlen);
    return 0;
}

static size_t md_size(dnnl_primitive_desc_t pd, int arg)
{
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, arg);
    return md ? dnnl_memory_desc_get_size(md) : 0;
}

/* A Winograd node (checked by plan_primitive_desc) runs our kernels: no oneDNN layout or
 * implementation; its src/dst hold their nChw8c bytes exactly (the transforms index them by the
 * dims); its transformed input and products live in the session scratchpad. */
static int check_wino_node(struct engine_model *m, const struct plan_node *n, char *err,
                           size_t errlen)
{
    const struct plan_view *v = &m->v;
    const struct plan_tensor *src = &v->tensors[plan_input(v, n, 0)], *dst = &v->tensors[n->out];
    struct wino_shape s;
    dnnl_memory_desc_t smd, dmd;
    if (n->wmd != PLAN_NONE || n->impl != PLAN_NONE)
        return refuse(m, n, "Winograd node carries a oneDNN layout", "our kernels", err, errlen);
    int ok = plan_wino_shape(v, n, &s) == 0 && plan_tensor_md(src, 0, 0, &smd) == 0 &&
             plan_tensor_md(dst, 0, 0, &dmd) == 0 &&
             dnnl_memory_desc_get_size(&smd) == src->nbytes &&
             dnnl_memory_desc_get_size(&dmd) == dst->nbytes;
    if (ok && n->sum_tensor != PLAN_NONE)
        ok = v->tensors[n->sum_tensor].nbytes == dst->nbytes;
    if (!ok)
        return seterr(err, errlen, -EINVAL, "model %s: node %s: operand sizes do not fit the plan",
                      plan_str(v, v->h->model_name), plan_str(v, n->name));
    size_t scratch = plan_wino_scratch(&s);
    if (scratch > m->scratch_size)
        m->scratch_size = scratch;
    return 0;
}

/* Every operand memory the primitive will touch fits the bytes the plan gives it. */
static int check_sizes(struct engine_model *m, const struct plan_node *n, dnnl_primitive_desc_t pd,
                       char *err, size_t errlen)
{
    const struct plan_view *v = &m->v;
    int ok = md_size(pd, DNNL_ARG_DST) == v->tensors[n->out].nbytes;
    for (uint32_t i = 0; i < n->n_in && ok; i++) {
        int arg = plan_input_arg(n, i);
        ok = arg >= 0 && md_size(pd, arg) <= v->tensors[plan_input(v, n, i)].nbytes;
    }
    if (ok && n->sum_tensor != PLAN_NONE)
        ok = v->tensors[n->sum_tensor].nbytes == v->tensors[n->out].nbytes;
    if (!ok)
        return seterr(err, errlen, -EINVAL, "model %s: node %s: operand sizes do not fit the plan",
                      plan_str(v, v->h->model_name), plan_str(v, n->name));
    size_t scratch = md_size(pd, DNNL_ARG_SCRATCHPAD);
    if (scratch > m->scratch_size)
        m->scratch_size = scratch;
    return 0;
}

/* A kernel node runs our own C code: nothing to resolve, no recorded implementation. */
static int check_kernel_node(const struct engine_model *m, const struct plan_node *n, char *err,
                             size_t errlen)
{
    if (n->wmd != PLAN_NONE || n->impl != PLAN_NONE)
        return refuse(m, n, "kernel node carries a oneDNN layout", "a C kernel", err, errlen);
    return 0;
}

static int resolve_node(struct engine_model *m, uint32_t k, char *err, size_t errlen)
{
    const struct plan_node *n = &m->v.nodes[k];
    int rc = plan_primitive_desc(&m->v, n, m->eng, &m->pds[k], err, errlen);
    if (rc || n->op == PLAN_OP_KERNEL)
        return rc ? rc : check_kernel_node(m, n, err, errlen);
    if (n->op == PLAN_OP_WINOGRAD)
        return check_wino_node(m, n, err, errlen);
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(m->pds[k], dnnl_query_impl_info_str, 0, &impl) != dnnl_success ||
        !impl)
        impl = "";
    if (strcmp(impl, plan_str(&m->v, n->impl)) != 0)
        return refuse(m, n, "primitive resolves to another implementation", impl, err, errlen);
    rc = check_weights(m, n, m->pds[k], impl, err, errlen);
    return rc ? rc : check_sizes(m, n, m->pds[k], err, errlen);
}

int engine_model_open(const void *image, size_t len, struct engine_model **out, char *err,
                      size_t errlen)
{
    return model_open_weights(image, len, NULL, out, err, errlen);
}

static int model_open_view(struct engine_model *m, int rc, struct engine_model **out, char *err,
                           size_t errlen);

int model_open_weights(const void *image, size_t len, const void *weights,
                       struct engine_model **out, char *err, size_t errlen)
{
    *out = NULL;
    struct engine_model *m = calloc(1, sizeof(*m));
    if (!m)
        return seterr(err, errlen, -ENOMEM, "out of memory");
    int rc = weights ? plan_view_init_weights(&m->v, image, len, weights, err, errlen)
                     : plan_view_init_parts(&m->v, image, len, NULL, 0, err, errlen);
    return model_open_view(m, rc, out, err, errlen);
}

int engine_model_open_parts(const void *part, size_t part_len, const void *weights,
                            size_t weights_len, struct engine_model **out, char *err,
                            size_t errlen)
{
    *out = NULL;
    struct engine_model *m = calloc(1, sizeof(*m));
    if (!m)
        return seterr(err, errlen, -ENOMEM, "out of memory");
    int rc = plan_view_init_parts(&m->v, part, part_len, weights, weights_len, err, errlen);
    return model_open_view(m, rc, out, err, errlen);
}

/* The checks after the view: build, threads, every primitive. Takes m (freed on failure). */
static int model_open_view(struct engine_model *m, int rc, struct engine_model **out, char *err,
                           size_t errlen)
{
    if (!rc)
        rc = check_build(&m->v, err, errlen);
    if (!rc)
        rc = check_threads(&m->v, err, errlen);
    if (!rc) {
        m->threads = (int)m->v.h->threads;
        m->pds = calloc(m->v.n_nodes + 1, sizeof(*m->pds));
        rc = m->pds ? 0 : seterr(err, errlen, -ENOMEM, "out of memory");
    }
    if (!rc && dnnl_engine_create(&m->eng, dnnl_cpu, 0) != dnnl_success)
        rc = seterr(err, errlen, -EIO, "cannot create a oneDNN CPU engine");
    if (!rc)
        cpu_set_threads(m->threads);
    for (uint32_t k = 0; !rc && k < m->v.n_nodes; k++)
        rc = resolve_node(m, k, err, errlen);
    if (!rc)
        rc = plan_loops_check(&m->v, err, errlen);
    if (rc) {
        engine_model_close(m);
        return rc;
    }
    *out = m;
    return 0;
}

void engine_model_close(struct engine_model *m)
{
    if (!m)
        return;
    for (uint32_t k = 0; m->pds && k < m->v.n_nodes; k++)
        if (m->pds[k])
            dnnl_primitive_desc_destroy(m->pds[k]);
    free(m->pds);
    if (m->eng)
        dnnl_engine_destroy(m->eng);
    free(m);
}

/* ---- introspection ---- */

int engine_model_n_inputs(const struct engine_model *m)
{
    return (int)m->v.h->n_inputs;
}

int engine_model_n_outputs(const struct engine_model *m)
{
    return (int)m->v.h->n_outputs;
}

static int tensor_info(const struct engine_model *m, int32_t t, struct engine_tensor_info *out)
{
    const struct plan_tensor *pt = &m->v.tensors[t];
    out->name = plan_str(&m->v, pt->name);
    out->dtype = (int)pt->dtype;
    out->shape.rank = (int)pt->rank;
    memcpy(out->shape.dims, pt->dims, sizeof(out->shape.dims));
    return 0;
}

int engine_model_input(const struct engine_model *m, int i, struct engine_tensor_info *out)
{
    if (i < 0 || (uint32_t)i >= m->v.h->n_inputs)
        return -EINVAL;
    return tensor_info(m, m->v.index[m->v.h->inputs_first + (uint32_t)i], out);
}

int engine_model_input_pinned(const struct engine_model *m, int i, const void **data,
                              size_t *nbytes)
{
    if (i < 0 || (uint32_t)i >= m->v.h->n_inputs)
        return -EINVAL;
    const struct plan_tensor *pt = &m->v.tensors[m->v.index[m->v.h->inputs_first + (uint32_t)i]];
    if (!(pt->flags & PLAN_TF_PINNED))
        return 0;
    if (data)
        *data = m->v.weights + pt->offset;
    if (nbytes)
        *nbytes = (size_t)pt->nbytes;
    return 1;
}

int engine_model_output(const struct engine_model *m, int i, struct engine_tensor_info *out)
{
    if (i < 0 || (uint32_t)i >= m->v.h->n_outputs)
        return -EINVAL;
    return tensor_info(m, m->v.index[m->v.h->outputs_first + (uint32_t)i], out);
}

size_t engine_model_arena_size(const struct engine_model *m)
{
    return (size_t)m->v.h->arena_size;
}

size_t engine_model_weights_size(const struct engine_model *m)
{
    return (size_t)m->v.weights_size;
}

int engine_model_threads(const struct engine_model *m)
{
    return m->threads;
}

const uint8_t *engine_model_source_sha256(const struct engine_model *m)
{
    return m->v.h->source_sha256;
}
