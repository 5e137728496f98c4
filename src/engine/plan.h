/*
 * plan.h — the backend's internal interfaces over the plan image format (plan_image.h).
 * Engine-internal.
 *
 * Owns: the one function that turns a plan node into a oneDNN primitive descriptor (plan.c) —
 * used by the compiler to choose and pre-pack weight layouts and by model open to re-resolve
 * every primitive and refuse an image this process would run differently —, the checks of the
 * plain-C kernel nodes (kernel_check.c), the memory plan, the compiler's entry and the open
 * model shared with sessions.
 */
#ifndef SHMFAAS_ENGINE_PLAN_H
#define SHMFAAS_ENGINE_PLAN_H

#include "engine/plan_image.h"

/* ---- oneDNN lowering shared by the compiler and model open ---- */

/* Checks a KERNEL node's operands and parameters against its tensors (model open and compile). */
int plan_kernel_check(const struct plan_view *v, const struct plan_node *n, char *err,
                      size_t errlen);

/* The loop structure of a plan whose nodes passed plan_kernel_check (model open): every LOOP
 * region closed by its own LOOP_END and well nested, every SCAN_SLICE inside its loop's region
 * and at least as long as the loop's max, every BRANCH jumping within its loop region (so a run
 * ends: each loop region runs at most its max iterations per entry), every bounded scan output
 * written along dim 0 by one SCAN_SLICE. */
int plan_loops_check(const struct plan_view *v, char *err, size_t errlen);

/* Creates the primitive descriptor a plan node describes (NULL for a KERNEL node, after
 * plan_kernel_check). Packed weights are requested in
 * format `any` so the caller sees which layout this process would pick. The descriptor uses a
 * user-managed scratchpad. Errors name the node. */
int plan_primitive_desc(const struct plan_view *v, const struct plan_node *n, dnnl_engine_t eng,
                        dnnl_primitive_desc_t *pd, char *err, size_t errlen);
/* A WINOGRAD node's geometry and post-ops (winograd.h); -EINVAL if it has none the kernels run. */
struct wino_shape;
struct wino_post;
int plan_wino_shape(const struct plan_view *v, const struct plan_node *n, struct wino_shape *s);
int plan_wino_post(const struct plan_node *n, struct wino_post *p);
/* Session scratchpad bytes of a Winograd node: [transformed input | products], the second
 * 64-byte aligned. */
size_t plan_wino_scratch(const struct wino_shape *s);
/* The DNNL_ARG_* that input position i of an op binds to; -1 if none. */
int plan_input_arg(const struct plan_node *n, uint32_t i);

/* Assigns every ARENA tensor its offset and sets the header's arena_size (memplan.c). Tensors
 * flagged PLAN_TF_ALIAS share the buffer of the tensor their offset names; the flag is cleared. */
int plan_memory(struct plan_builder *b);

/* ---- compile, one level below engine_compile ---- */

struct plan_compile_opts {
    int threads;
    int winograd; /* ENGINE_WINOGRAD_* */
    const char *model_name;
    const uint8_t *source_sha256; /* 32 bytes, or NULL for zeros */
};

/* An optimised, shape-inferred IR graph → plan image. */
int plan_compile(const struct ir_graph *g, const struct plan_compile_opts *opts, void **image,
                 size_t *image_len, char *err, size_t errlen);

/* ---- an open model (model.c), shared with sessions (session.c) ---- */

struct engine_model {
    struct plan_view v;
    dnnl_engine_t eng;
    dnnl_primitive_desc_t *pds; /* one per node */
    size_t scratch_size;        /* max over the nodes' scratchpads */
    int threads;
};

/* engine_model_open with the weights section elsewhere (plan_view_init_weights); NULL: in the
 * image. */
int model_open_weights(const void *image, size_t len, const void *weights,
                       struct engine_model **out, char *err, size_t errlen);

/* ---- CPU / build identity ---- */
const char *cpu_isa_name(void);               /* oneDNN's effective ISA, "avx2" */
void cpu_dnnl_version(char *buf, size_t len); /* runtime oneDNN version, "2.6.3" */
void cpu_set_threads(int threads);            /* omp_set_num_threads for this thread (omp.c) */

#endif
