/*
 * memplan.c — the activation memory plan: one arena per session, offsets fixed at compile time.
 *
 * Liveness over the node order: a buffer lives from the node that defines it (graph inputs:
 * before the first node) to its last reader (graph outputs: to the end, post-op addends
 * included), through the whole of a loop region it is touched in and outside of. Shape-only
 * aliases share their root's buffer. A residual sum's output joins its
 * addend's buffer when the addend dies at that node and the node reads it nowhere else, so the
 * convolution accumulates in place. Buffers are then placed largest first, each into the
 * smallest gap left between the already placed buffers whose lifetimes overlap it (best fit), or
 * at the end; offsets and sizes are multiples of 64.
 */
#include "common/common.h"
#include "engine/plan.h"

#include <errno.h>
#include <stdlib.h>

struct buffer {
    uint32_t root;
    uint64_t size;
    int64_t def, last; /* node positions; inputs are defined at -1, outputs live to the end */
    uint64_t offset;
    int pinned; /* graph input/output: never written in place */
};

static uint32_t find_root(const uint32_t *parent, uint32_t t)
{
    while (parent[t] != t)
        t = parent[t];
    return t;
}

static void touch(struct buffer *bufs, const uint32_t *parent, uint32_t t, int64_t pos)
{
    struct buffer *b = &bufs[find_root(parent, t)];
    if (pos > b->last)
        b->last = pos;
    if (pos < b->def)
        b->def = pos;
}

static void compute_lifetimes(struct plan_builder *b, const uint32_t *parent, struct buffer *bufs)
{
    int64_t end = b->n_nodes;
    for (uint32_t i = 0; i < b->n_tensors; i++) {
        struct buffer *r = &bufs[find_root(parent, i)];
        if (b->tensors[i].storage != PLAN_ST_ARENA)
            continue;
        uint64_t sz = ALIGN_UP(b->tensors[i].nbytes, PLAN_ALIGN);
        r->size = sz > r->size ? sz : r->size;
        if (b->tensors[i].flags & PLAN_TF_INPUT)
            touch(bufs, parent, i, -1);
        if (b->tensors[i].flags & PLAN_TF_OUTPUT)
            touch(bufs, parent, i, end);
        if (b->tensors[i].flags & (PLAN_TF_INPUT | PLAN_TF_OUTPUT))
            r->pinned = 1;
    }
    for (uint32_t k = 0; k < b->n_nodes; k++) {
        const struct plan_node *n = &b->nodes[k];
        touch(bufs, parent, n->out, k);
        for (uint32_t i = 0; i < n->n_in; i++)
            if (b->tensors[b->index[n->in_first + i]].storage == PLAN_ST_ARENA)
                touch(bufs, parent, (uint32_t)b->index[n->in_first + i], k);
        if (n->sum_tensor != PLAN_NONE)
            touch(bufs, parent, n->sum_tensor, k);
    }
}

/* A loop region (LOOP .. LOOP_END, ops/loop.c) runs again from its start: a buffer it touches
 * that also lives outside it (carried values, outer tensors the body reads, scan inputs and
 * outputs) lives through the whole region. One only the region touches is written before it is
 * read in every iteration, so the usual lifetime holds. Inner regions end first: an outer one
 * then sees their extended buffers. */
static void extend_loops(const struct plan_builder *b, const uint32_t *parent, struct buffer *bufs)
{
    for (uint32_t k = 0; k < b->n_nodes; k++) {
        const struct plan_node *n = &b->nodes[k];
        if (n->op != PLAN_OP_KERNEL || n->alg != PLAN_K_LOOP_END)
            continue;
        int64_t lo = b->index[n->params_first], hi = k;
        for (uint32_t i = 0; i < b->n_tensors; i++) {
            struct buffer *r = &bufs[i];
            if (find_root(parent, i) != i || r->def > hi || r->last < lo ||
                (r->def >= lo && r->last <= hi))
                continue;
            r->def = r->def < lo ? r->def : lo;
            r->last = r->last > hi ? r->last : hi;
        }
    }
}

/* A residual sum writes into its addend's buffer when the addend dies at that node. */
static void merge_sums(struct plan_builder *b, uint32_t *parent, struct buffer *bufs)
{
    for (uint32_t k = 0; k < b->n_nodes; k++) {
        const struct plan_node *n = &b->nodes[k];
        if (n->sum_tensor == PLAN_NONE)
            continue;
        uint32_t ra = find_root(parent, n->sum_tensor), rd = find_root(parent, n->out);
        int read_elsewhere = 0;
        for (uint32_t i = 0; i < n->n_in; i++)
            if (b->tensors[b->index[n->in_first + i]].storage == PLAN_ST_ARENA &&
                find_root(parent, (uint32_t)b->index[n->in_first + i]) == ra)
                read_elsewhere = 1;
        if (ra == rd || read_elsewhere || bufs[ra].last != (int64_t)k || bufs[ra].pinned ||
            bufs[ra].size != bufs[rd].size)
            continue;
        parent[rd] = ra;
        if (bufs[rd].last > bufs[ra].last)
            bufs[ra].last = bufs[rd].last;
    }
}

static int by_size_desc(const void *pa, const void *pb)
{
    const struct buffer *a = *(struct buffer *const *)pa, *b = *(struct buffer *const *)pb;
    if (a->size != b->size)
        return a->size < b->size ? 1 : -1;
    return a->def < b->def ? -1 : a->def > b->def;
}

static int by_offset(const void *pa, const void *pb)
{
    const struct buffer *a = *(struct buffer *const *)pa, *b = *(struct buffer *const *)pb;
    return a->offset < b->offset ? -1 : a->offset > b->offset;
}

/* Best-fit gap among the placed buffers whose lifetimes overlap b's; returns the arena end. */
static uint64_t place_one(struct buffer *b, struct buffer **placed, size_t n_placed,
                          struct buffer **live)
{
    size_t n_live = 0;
    for (size_t i = 0; i < n_placed; i++)
        if (placed[i]->def <= b->last && b->def <= placed[i]->last)
            live[n_live++] = placed[i];
    qsort(live, n_live, sizeof(*live), by_offset);
    uint64_t pos = 0, best = UINT64_MAX, best_gap = UINT64_MAX;
    for (size_t i = 0; i < n_live; i++) {
        if (live[i]->offset >= pos + b->size && live[i]->offset - pos < best_gap) {
            best_gap = live[i]->offset - pos;
            best = pos;
        }
        uint64_t end = live[i]->offset + live[i]->size;
        pos = end > pos ? end : pos;
    }
    b->offset = best != UINT64_MAX ? best : pos;
    return b->offset + b->size;
}

static int place_buffers(struct plan_builder *b, const uint32_t *parent, struct buffer *bufs)
{
    struct buffer **order = calloc(b->n_tensors + 1, sizeof(*order));
    struct buffer **placed = calloc(b->n_tensors + 1, sizeof(*placed));
    struct buffer **live = calloc(b->n_tensors + 1, sizeof(*live));
    size_t n = 0, n_placed = 0;
    uint64_t arena = 0;
    if (!order || !placed || !live) {
        free(order);
        free(placed);
        free(live);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < b->n_tensors; i++)
        if (b->tensors[i].storage == PLAN_ST_ARENA && find_root(parent, i) == i)
            order[n++] = &bufs[i];
    qsort(order, n, sizeof(*order), by_size_desc);
    for (size_t i = 0; i < n; i++) {
        uint64_t end = place_one(order[i], placed, n_placed, live);
        placed[n_placed++] = order[i];
        arena = end > arena ? end : arena;
    }
    for (uint32_t i = 0; i < b->n_tensors; i++)
        if (b->tensors[i].storage == PLAN_ST_ARENA)
            b->tensors[i].offset = bufs[find_root(parent, i)].offset;
    b->h.arena_size = arena;
    free(order);
    free(placed);
    free(live);
    return 0;
}

int plan_memory(struct plan_builder *b)
{
    uint32_t *parent = calloc(b->n_tensors + 1, sizeof(*parent));
    struct buffer *bufs = calloc(b->n_tensors + 1, sizeof(*bufs));
    int rc = parent && bufs ? 0 : -ENOMEM;
    for (uint32_t i = 0; !rc && i < b->n_tensors; i++) {
        struct plan_tensor *t = &b->tensors[i];
        parent[i] = i;
        if (t->storage == PLAN_ST_ARENA && (t->flags & PLAN_TF_ALIAS)) {
            parent[i] = (uint32_t)t->offset;
            t->flags &= ~PLAN_TF_ALIAS;
        }
        bufs[i] = (struct buffer){.root = i, .def = INT64_MAX, .last = INT64_MIN};
    }
    if (!rc) {
        compute_lifetimes(b, parent, bufs);
        extend_loops(b, parent, bufs);
        for (uint32_t i = 0; i < b->n_tensors; i++)
            if (bufs[i].def == INT64_MAX)
                bufs[i].def = bufs[i].last = 0;
        merge_sums(b, parent, bufs);
        rc = place_buffers(b, parent, bufs);
    }
    free(parent);
    free(bufs);
    return rc;
}
