/*
 * ops/unique.c — Unique: the distinct elements, or slices along an axis, of a constant tensor.
 *
 * Its outputs' shapes are its input's values, so the engine computes it only at compile time:
 * the input must be a constant (an initializer, a folded subgraph or a pinned input), and the
 * node always folds to four constants.
 *
 * Ops (shape rule, constant evaluation, lowering):
 *   Unique  infer_unique, eval_unique
 */
#include "engine/ops/op.h"

/* x viewed as [outer, len, inner]: the slices compared are the len positions of the middle axis
 * (without an axis attribute: every element, outer = inner = 1). */
struct uniq {
    const struct ir_tensor *x;
    int64_t outer, len, inner;
};

/* The grouping of x's slices: n groups, k-th in output order. */
struct uniq_groups {
    int64_t n;
    int64_t *first;   /* [len]: first index of group k (k < n) */
    int64_t *counts;  /* [len]: slices in group k */
    int64_t *inverse; /* [len]: the group of slice j */
};

static int elem_cmp(int dtype, const void *base, int64_t a, int64_t b)
{
    switch (dtype) {
    case ENGINE_F32: {
        float x = ((const float *)base)[a], y = ((const float *)base)[b];
        return (x > y) - (x < y);
    }
    case ENGINE_F64: {
        double x = ((const double *)base)[a], y = ((const double *)base)[b];
        return (x > y) - (x < y);
    }
    case ENGINE_I64: {
        int64_t x = ((const int64_t *)base)[a], y = ((const int64_t *)base)[b];
        return (x > y) - (x < y);
    }
    case ENGINE_I32: {
        int32_t x = ((const int32_t *)base)[a], y = ((const int32_t *)base)[b];
        return (x > y) - (x < y);
    }
    case ENGINE_I8: {
        int8_t x = ((const int8_t *)base)[a], y = ((const int8_t *)base)[b];
        return (x > y) - (x < y);
    }
    default: { /* uint8, bool */
        uint8_t x = ((const uint8_t *)base)[a], y = ((const uint8_t *)base)[b];
        return (x > y) - (x < y);
    }
    }
}

/* Slices i and j compared element by element in row-major order. */
static int slice_cmp(const struct uniq *u, int64_t i, int64_t j)
{
    for (int64_t o = 0; o < u->outer; o++)
        for (int64_t k = 0; k < u->inner; k++) {
            int64_t row = o * u->len;
            int c = elem_cmp(u->x->dtype, u->x->data, (row + i) * u->inner + k,
                             (row + j) * u->inner + k);
            if (c)
                return c;
        }
    return 0;
}

/* qsort_r order: by slice, equal slices by index (so a group's first element is its first). */
static int by_slice(const void *a, const void *b, void *ctx)
{
    int64_t i = *(const int64_t *)a, j = *(const int64_t *)b;
    int c = slice_cmp(ctx, i, j);
    return c ? c : (i > j) - (i < j);
}

/* qsort_r order of group numbers by their first index (ctx: first[]). */
static int by_first(const void *a, const void *b, void *ctx)
{
    const int64_t *first = ctx;
    int64_t i = first[*(const int64_t *)a], j = first[*(const int64_t *)b];
    return (i > j) - (i < j);
}

static void groups_free(struct uniq_groups *r)
{
    free(r->first);
    free(r->counts);
    free(r->inverse);
}

/* Groups the slices; with sorted = 0 the groups come in order of first occurrence. 0 or
 * -ENOMEM. */
static int unique_groups(const struct uniq *u, int sorted, struct uniq_groups *r)
{
    size_t len = (size_t)u->len, sz = (len ? len : 1) * sizeof(int64_t);
    int64_t *idx = malloc(sz), *group = malloc(sz), *rank = malloc(sz);
    *r = (struct uniq_groups){.first = malloc(sz), .counts = calloc(1, sz), .inverse = malloc(sz)};
    int rc = idx && group && rank && r->first && r->counts && r->inverse ? 0 : -ENOMEM;
    if (rc) {
        groups_free(r);
        goto out;
    }
    for (size_t j = 0; j < len; j++)
        idx[j] = (int64_t)j;
    qsort_r(idx, len, sizeof(int64_t), by_slice, (void *)u);
    for (size_t p = 0; p < len; p++) {
        if (p == 0 || slice_cmp(u, idx[p], idx[p - 1]) != 0)
            r->first[r->n++] = idx[p];
        group[idx[p]] = r->n - 1; /* in sorted order */
    }
    /* idx[k]: the group at output position k; rank[g]: the position of group g */
    for (int64_t g = 0; g < r->n; g++)
        idx[g] = g;
    if (!sorted)
        qsort_r(idx, (size_t)r->n, sizeof(int64_t), by_first, r->first);
    for (int64_t k = 0; k < r->n; k++)
        rank[idx[k]] = k;
    for (int64_t k = 0; k < r->n; k++)
        idx[k] = r->first[idx[k]];
    memcpy(r->first, idx, (size_t)r->n * sizeof(int64_t));
    for (size_t j = 0; j < len; j++) {
        r->inverse[j] = rank[group[j]];
        r->counts[r->inverse[j]]++;
    }
out:
    free(idx);
    free(group);
    free(rank);
    return rc;
}

/* Reads the attributes and views x; 0 or an error naming what is refused. */
static int unique_view(struct ir_graph *g, struct ir_node *n, struct uniq *u, int *axis, char *err,
                       size_t errlen)
{
    int rc = arity(g, n, 1, 1, err, errlen);
    if (rc)
        return rc;
    const struct ir_tensor *x = in_t(g, n, 0);
    int dt = x->dtype;
    if (dt != ENGINE_F32 && dt != ENGINE_F64 && dt != ENGINE_I64 && dt != ENGINE_I32 &&
        dt != ENGINE_I8 && dt != ENGINE_U8 && dt != ENGINE_BOOL)
        return unsupported_type(g, n, x, err, errlen);
    if (!x->data)
        return ir_node_err(g, n, err, errlen, -ENOTSUP,
                           "input X must be a constant (the output shapes are its values)");
    *u = (struct uniq){.x = x, .outer = 1, .len = engine_shape_numel(&x->shape), .inner = 1};
    *axis = -1;
    if (ir_attr_get(n, "axis")) {
        if (x->shape.rank == 0)
            return ir_node_err(g, n, err, errlen, -EINVAL, "axis given for a scalar");
        if ((rc = norm_axis(g, n, ir_attr_int(n, "axis", 0), x->shape.rank, axis, err, errlen)))
            return rc;
        u->outer = u->inner = 1;
        for (int d = 0; d < x->shape.rank; d++)
            if (d < *axis)
                u->outer *= x->shape.dims[d];
            else if (d > *axis)
                u->inner *= x->shape.dims[d];
        u->len = x->shape.dims[*axis];
    }
    return 0;
}

int infer_unique(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct uniq u;
    struct uniq_groups r;
    int axis, rc = unique_view(g, n, &u, &axis, err, errlen);
    if (rc)
        return rc;
    if (unique_groups(&u, ir_attr_int(n, "sorted", 1) != 0, &r))
        return oom(g, n, err, errlen);
    struct engine_shape y = u.x->shape, k = {.rank = 1, .dims = {r.n}}, j = {.rank = 1};
    j.dims[0] = u.len;
    if (axis >= 0)
        y.dims[axis] = r.n;
    else
        y = k;
    groups_free(&r);
    if ((rc = set_out(g, n, 0, u.x->dtype, &y, err, errlen)) ||
        (rc = set_out(g, n, 1, ENGINE_I64, &k, err, errlen)) ||
        (rc = set_out(g, n, 2, ENGINE_I64, &j, err, errlen)))
        return rc;
    return set_out(g, n, 3, ENGINE_I64, &k, err, errlen);
}

/* Output i's buffer, or NULL for an absent output (*fail set on allocation failure). */
static void *output_buffer_of(struct ir_graph *g, struct ir_node *n, int i, int *fail)
{
    if (i >= n->n_out || n->out[i] < 0)
        return NULL;
    void *p = alloc_out(g, n, i);
    *fail |= !p;
    return p;
}

int eval_unique(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct uniq u;
    struct uniq_groups r;
    int axis, fail = 0, rc = unique_view(g, n, &u, &axis, err, errlen);
    if (rc)
        return rc;
    if (unique_groups(&u, ir_attr_int(n, "sorted", 1) != 0, &r))
        return oom(g, n, err, errlen);
    void *out[4];
    for (int i = 0; i < 4; i++)
        out[i] = output_buffer_of(g, n, i, &fail);
    if (fail) {
        for (int i = 0; i < 4; i++)
            free(out[i]);
        groups_free(&r);
        return oom(g, n, err, errlen);
    }
    size_t esize = engine_dtype_size(u.x->dtype), row = (size_t)u.inner * esize;
    for (int64_t o = 0; out[0] && o < u.outer; o++)
        for (int64_t k = 0; k < r.n; k++)
            memcpy((char *)out[0] + (size_t)(o * r.n + k) * row,
                   (const char *)u.x->data + (size_t)(o * u.len + r.first[k]) * row, row);
    if (out[1])
        memcpy(out[1], r.first, (size_t)r.n * sizeof(int64_t));
    if (out[2])
        memcpy(out[2], r.inverse, (size_t)u.len * sizeof(int64_t));
    if (out[3])
        memcpy(out[3], r.counts, (size_t)r.n * sizeof(int64_t));
    groups_free(&r);
    for (int i = 0; i < 4; i++)
        set_data(g, n, i, out[i]);
    return 0;
}
