/*
 * ops/shape_ops.c — ops that only change or describe a shape: Reshape, Flatten, Squeeze,
 * Unsqueeze, Identity, Dropout (aliases of their input, no plan node), and Shape, Size, Range,
 * ConstantOfShape, EyeLike, Expand (always folded to constants).
 *
 * Ops (shape rule, constant evaluation, lowering):
 *   Flatten          infer_flatten, eval_copy, lower_alias
 *   Reshape          infer_reshape, eval_copy, lower_alias
 *   Squeeze          infer_squeeze, eval_copy, lower_alias
 *   Unsqueeze        infer_unsqueeze, eval_copy, lower_alias
 *   Identity         infer_identity, eval_copy, lower_alias
 *   Dropout          infer_dropout, eval_copy, lower_alias
 *   Shape            infer_shape, eval_shape
 *   Size             infer_size, eval_size
 *   Range            infer_range, eval_range
 *   ConstantOfShape  infer_constant_of_shape, eval_constant_of_shape
 *   EyeLike          infer_eyelike, eval_eyelike
 *   Expand           infer_expand, eval_expand
 */
#include "engine/ops/op.h"

/* ---- Flatten ---- */

int infer_flatten(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 1, err, errlen), axis;
    if (rc)
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    int64_t a = ir_attr_int(n, "axis", 1);
    if (a == x->shape.rank)
        axis = (int)a;
    else if ((rc = norm_axis(g, n, a, x->shape.rank, &axis, err, errlen)))
        return rc;
    /* each side's product: 0 if it has a 0 dim, else refused once it would overflow (a 0 on the
     * other side keeps the input empty however large these dims are) */
    struct engine_shape o = {.rank = 2, .dims = {1, 1}};
    for (int i = 0; i < x->shape.rank; i++)
        if (x->shape.dims[i] == 0)
            o.dims[i < axis ? 0 : 1] = 0;
    for (int i = 0; i < x->shape.rank; i++) {
        int64_t *d = &o.dims[i < axis ? 0 : 1];
        if (*d && __builtin_mul_overflow(*d, x->shape.dims[i], d))
            return ir_node_err(g, n, err, errlen, -EFBIG, "output dims overflow");
    }
    if (ir_attr_set_int(n, "axis", axis))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, x->dtype, &o, err, errlen);
}

/* Output 0 = input 0's bytes (Identity, Reshape, Squeeze, Unsqueeze, Flatten, Dropout: its
 * mask, if any, became a constant in infer_dropout). */
int eval_copy(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *x = in_t(g, n, 0);
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    memcpy(d, x->data, x->nbytes);
    return set_data(g, n, 0, d);
}

/* Shape-only ops: the output shares the input's buffer (or is a constant of the same bytes). */
int lower_alias(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *x = ir_in(l, n, 0);
    if (!x || n->n_post)
        return lerr(l, n, -EINVAL, "missing input");
    for (int k = 1; k < n->n_out; k++)
        if (n->out[k] >= 0 && ir_tensor_used(l->g, n->out[k]))
            return lerr(l, n, -EINVAL, "only the first output is supported");
    const struct ir_tensor *y = &l->g->tensors[n->out[0]];
    if (engine_shape_numel(&x->shape) != engine_shape_numel(&y->shape) || x->dtype != y->dtype)
        return lerr(l, n, -EINVAL, "output size differs from the input's");
    int64_t src = plain_operand(l, n, n->in[0]);
    if (src < 0)
        return (int)src;
    if (l->b.tensors[src].storage == PLAN_ST_CONST) {
        struct ir_tensor c = *y;
        size_t nb = (size_t)l->b.tensors[src].nbytes;
        c.data = malloc(nb + 1); /* the weights buffer may move while the copy is added */
        if (c.data)
            memcpy(c.data, l->b.weights + l->b.tensors[src].offset, nb);
        int64_t t = c.data ? add_plan_tensor(l, &c, PLAN_ST_CONST) : -ENOMEM;
        free(c.data);
        if (t < 0)
            return lerr(l, n, (int)t, "cannot store constant");
        l->tmap[n->out[0]] = (int32_t)t;
        return 0;
    }
    int64_t out = output_of(l, n, 0);
    if (out < 0)
        return (int)out;
    l->b.tensors[out].offset = (uint64_t)src; /* alias root, resolved by the memory plan */
    l->b.tensors[out].flags |= PLAN_TF_ALIAS;
    return 0;
}

/* ---- Reshape ---- */

int infer_reshape(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 2, 2, err, errlen), k;
    int64_t v[ENGINE_MAX_RANK + 1];
    if (rc || (rc = const_ints(g, n, 1, v, ENGINE_MAX_RANK, &k, err, errlen)))
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    int allowzero = ir_attr_int(n, "allowzero", 0) != 0, infer = -1;
    struct engine_shape o = {.rank = k};
    int64_t known = 1;
    for (int i = 0; i < k; i++) {
        o.dims[i] = v[i];
        if (v[i] == 0 && !allowzero) {
            if (i >= x->shape.rank)
                return ir_node_err(g, n, err, errlen, -EINVAL, "dim %d is 0 beyond input rank", i);
            o.dims[i] = x->shape.dims[i];
        } else if (v[i] == -1) {
            if (infer >= 0)
                return ir_node_err(g, n, err, errlen, -EINVAL, "more than one -1 in shape");
            infer = i;
            continue;
        } else if (v[i] < -1)
            return ir_node_err(g, n, err, errlen, -EINVAL, "invalid dim %lld in shape",
                               (long long)v[i]);
        if (o.dims[i] > 0 && known > INT64_MAX / o.dims[i])
            return ir_node_err(g, n, err, errlen, -EINVAL, "shape too large");
        known *= o.dims[i];
    }
    int64_t total = engine_shape_numel(&x->shape);
    char s1[128], s2[128];
    if (infer >= 0)
        o.dims[infer] = known ? total / known : 0;
    if (engine_shape_numel(&o) != total || (infer >= 0 && known == 0)) {
        struct engine_shape req = {.rank = k};
        memcpy(req.dims, v, (size_t)k * sizeof(int64_t));
        return ir_node_err(g, n, err, errlen, -EINVAL, "cannot reshape %s to %s",
                           shape_s(&x->shape, s1), shape_s(&req, s2));
    }
    return set_out(g, n, 0, x->dtype, &o, err, errlen);
}

/* ---- Squeeze ---- */

int infer_squeeze(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 2, err, errlen), k, axis;
    int64_t v[ENGINE_MAX_RANK];
    if (rc || (rc = read_axes(g, n, v, &k, err, errlen)) < 0)
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    int mark[ENGINE_MAX_RANK] = {0};
    for (int i = 0; i < x->shape.rank && rc == 0; i++)
        mark[i] = x->shape.dims[i] == 1;
    if (rc == 1) {
        memset(mark, 0, sizeof(mark));
        for (int i = 0; i < k; i++) {
            if ((rc = norm_axis(g, n, v[i], x->shape.rank, &axis, err, errlen)))
                return rc;
            if (x->shape.dims[axis] != 1)
                return ir_node_err(g, n, err, errlen, -EINVAL, "axis %d has size %lld, not 1", axis,
                                   (long long)x->shape.dims[axis]);
            mark[axis] = 1;
        }
    }
    struct engine_shape o = {.rank = 0};
    for (int i = 0; i < x->shape.rank; i++)
        if (!mark[i])
            o.dims[o.rank++] = x->shape.dims[i];
    return set_out(g, n, 0, x->dtype, &o, err, errlen);
}

/* ---- Unsqueeze ---- */

int infer_unsqueeze(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 2, err, errlen), k;
    int64_t v[ENGINE_MAX_RANK];
    if (rc || (rc = read_axes(g, n, v, &k, err, errlen)) < 0)
        return rc;
    if (rc == 0)
        return ir_node_err(g, n, err, errlen, -EINVAL, "axes are required");
    struct ir_tensor *x = in_t(g, n, 0);
    int r = x->shape.rank + k, mark[ENGINE_MAX_RANK] = {0}, axis;
    if (r > ENGINE_MAX_RANK)
        return ir_node_err(g, n, err, errlen, -EINVAL, "result rank %d exceeds %d", r,
                           ENGINE_MAX_RANK);
    for (int i = 0; i < k; i++) {
        if ((rc = norm_axis(g, n, v[i], r, &axis, err, errlen)))
            return rc;
        if (mark[axis]++)
            return ir_node_err(g, n, err, errlen, -EINVAL, "axis %d repeated", axis);
    }
    struct engine_shape o = {.rank = r};
    for (int i = 0, j = 0; i < r; i++)
        o.dims[i] = mark[i] ? 1 : x->shape.dims[j++];
    return set_out(g, n, 0, x->dtype, &o, err, errlen);
}

/* ---- Identity ---- */

int infer_identity(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 1, err, errlen);
    if (rc)
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    if (x->flags & IR_T_SEQ)
        return seq_forward(g, n, n->in[0], err, errlen);
    return set_out(g, n, 0, x->dtype, &x->shape, err, errlen);
}

/* ---- Dropout ---- */

int infer_dropout(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 3, err, errlen);
    if (rc)
        return rc;
    struct ir_tensor *tm = in_t(g, n, 2);
    if (ir_attr_int(n, "is_test", 1) == 0 ||
        (tm && (!tm->data || tm->dtype != ENGINE_BOOL || *(uint8_t *)tm->data)))
        return ir_node_err(g, n, err, errlen, -ENOTSUP,
                           "unsupported attribute training_mode (only inference)");
    struct ir_tensor *x = in_t(g, n, 0);
    if ((rc = set_out(g, n, 0, x->dtype, &x->shape, err, errlen)) ||
        (rc = set_out(g, n, 1, ENGINE_BOOL, &x->shape, err, errlen)))
        return rc;
    if (n->n_out < 2 || n->out[1] < 0)
        return 0;
    /* in inference the mask is all true whatever the input: a constant, not an output */
    void *mask = alloc_out(g, n, 1);
    if (!mask)
        return oom(g, n, err, errlen);
    memset(mask, 1, (size_t)engine_shape_numel(&x->shape));
    set_data(g, n, 1, mask);
    g->tensors[n->out[1]].producer = -1;
    n->out[1] = -1;
    return 0;
}

/* ---- Shape ---- */

int infer_shape(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 1, err, errlen), r;
    if (rc)
        return rc;
    r = in_t(g, n, 0)->shape.rank;
    int64_t start = ir_attr_int(n, "start", 0), end = ir_attr_int(n, "end", r);
    start = start < 0 ? start + r : start;
    end = end < 0 ? end + r : end;
    start = start < 0 ? 0 : start > r ? r : start;
    end = end < 0 ? 0 : end > r ? r : end;
    if ((rc = ir_attr_set_int(n, "start", start)) || (rc = ir_attr_set_int(n, "end", end)))
        return oom(g, n, err, errlen);
    struct engine_shape o = {.rank = 1, .dims = {end > start ? end - start : 0}};
    return set_out(g, n, 0, ENGINE_I64, &o, err, errlen);
}

int eval_shape(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *x = in_t(g, n, 0);
    int64_t start = ir_attr_int(n, "start", 0), cnt = g->tensors[n->out[0]].shape.dims[0];
    int64_t *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    for (int64_t i = 0; i < cnt; i++)
        d[i] = x->shape.dims[start + i];
    return set_data(g, n, 0, d);
}

/* ---- Size ---- */

int infer_size(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 1, err, errlen);
    struct engine_shape o = {.rank = 0};
    return rc ? rc : set_out(g, n, 0, ENGINE_I64, &o, err, errlen);
}

int eval_size(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int64_t *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    *d = engine_shape_numel(&in_t(g, n, 0)->shape);
    return set_data(g, n, 0, d);
}

/* ---- Range ---- */

/* Range's three scalar inputs as doubles (they decide the output's length, so constant). */
static int range_params(struct ir_graph *g, struct ir_node *n, double *v, char *err, size_t errlen)
{
    for (int i = 0; i < 3; i++) {
        struct ir_tensor *x = in_t(g, n, i);
        int dt = x->dtype;
        if (!x->data || engine_shape_numel(&x->shape) != 1 || x->shape.rank > 1 ||
            (dt != ENGINE_F32 && dt != ENGINE_I32 && dt != ENGINE_I64) ||
            dt != in_t(g, n, 0)->dtype)
            return ir_node_err(g, n, err, errlen, -ENOTSUP,
                               "start, limit and delta must be constant scalars of one type");
        v[i] = dt == ENGINE_F32   ? *(float *)x->data
               : dt == ENGINE_I32 ? *(int32_t *)x->data
                                  : (double)*(int64_t *)x->data;
    }
    if (v[2] == 0 || isnan(v[0]) || isnan(v[1]) || isnan(v[2]))
        return ir_node_err(g, n, err, errlen, -EINVAL, "delta is 0 or a value is NaN");
    return 0;
}

int infer_range(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 3, 3, err, errlen);
    double v[3];
    if (rc || (rc = range_params(g, n, v, err, errlen)))
        return rc;
    double count = ceil((v[1] - v[0]) / v[2]);
    if (count > (double)(1 << 30))
        return ir_node_err(g, n, err, errlen, -EFBIG, "range of %.0f elements is too long", count);
    struct engine_shape o = {.rank = 1, .dims = {count > 0 ? (int64_t)count : 0}};
    return set_out(g, n, 0, in_t(g, n, 0)->dtype, &o, err, errlen);
}

int eval_range(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *s = in_t(g, n, 0), *dl = in_t(g, n, 2), *o = &g->tensors[n->out[0]];
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    for (int64_t i = 0; i < o->shape.dims[0]; i++) {
        if (o->dtype == ENGINE_F32)
            ((float *)d)[i] = *(float *)s->data + (float)i * *(float *)dl->data;
        else if (o->dtype == ENGINE_I32)
            ((int32_t *)d)[i] = (int32_t)(*(int32_t *)s->data + i * *(int32_t *)dl->data);
        else
            ((int64_t *)d)[i] = (int64_t)((uint64_t) * (int64_t *)s->data +
                                          (uint64_t)i * (uint64_t) * (int64_t *)dl->data);
    }
    return set_data(g, n, 0, d);
}

/* ---- ConstantOfShape ---- */

int infer_constant_of_shape(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 1, err, errlen), k;
    int64_t v[ENGINE_MAX_RANK];
    if (rc || (rc = const_ints(g, n, 0, v, ENGINE_MAX_RANK, &k, err, errlen)))
        return rc;
    const struct ir_attr *a = ir_attr_get(n, "value");
    int dtype = ENGINE_F32;
    if (a) {
        if (a->type != IR_ATTR_TENSOR || a->tensor < 0 ||
            engine_shape_numel(&g->tensors[a->tensor].shape) != 1)
            return ir_node_err(g, n, err, errlen, -EINVAL, "value must be a one-element tensor");
        dtype = g->tensors[a->tensor].dtype;
    }
    struct engine_shape o = {.rank = k};
    memcpy(o.dims, v, (size_t)k * sizeof(int64_t));
    return set_out(g, n, 0, dtype, &o, err, errlen);
}

int eval_constant_of_shape(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    const struct ir_attr *a = ir_attr_get(n, "value");
    struct ir_tensor *o = &g->tensors[n->out[0]];
    size_t es = engine_dtype_size(o->dtype), cnt = (size_t)engine_shape_numel(&o->shape);
    char *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    if (a)
        for (size_t i = 0; i < cnt; i++)
            memcpy(d + i * es, g->tensors[a->tensor].data, es);
    return set_data(g, n, 0, d);
}

/* ---- EyeLike ---- */

/* EyeLike depends only on its input's shape: always folded to a constant. */
int infer_eyelike(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 1, err, errlen);
    if (rc)
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    int64_t dt = ir_attr_int(n, "dtype", x->dtype);
    if (dt <= 0 || dt > 100 || !engine_dtype_size((int)dt) || dt == ENGINE_BOOL)
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "unsupported attribute dtype=%lld",
                           (long long)dt);
    if (x->shape.rank != 2)
        return ir_node_err(g, n, err, errlen, -EINVAL, "input must be 2-D");
    return set_out(g, n, 0, (int)dt, &x->shape, err, errlen);
}

int eval_eyelike(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *o = &g->tensors[n->out[0]];
    int64_t k = ir_attr_int(n, "k", 0), rows = o->shape.dims[0], cols = o->shape.dims[1];
    uint8_t *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    float one = 1.0f;
    size_t es = engine_dtype_size(o->dtype);
    for (int64_t i = 0; i < rows; i++)
        if (k >= -i && k < cols - i) /* column i + k inside the matrix */
            k_cast(&one, ENGINE_F32, d + (size_t)(i * cols + i + k) * es, o->dtype, 1);
    return set_data(g, n, 0, d);
}

/* ---- Expand ---- */

int infer_expand(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 2, 2, err, errlen), k;
    int64_t v[ENGINE_MAX_RANK];
    if (rc || (rc = const_ints(g, n, 1, v, ENGINE_MAX_RANK, &k, err, errlen)))
        return rc;
    struct engine_shape s = {.rank = k}, o;
    memcpy(s.dims, v, (size_t)k * sizeof(int64_t));
    struct ir_tensor *x = in_t(g, n, 0);
    if (k_broadcast_shape(&x->shape, &s, &o))
        return ir_node_err(g, n, err, errlen, -EINVAL, "shape does not broadcast");
    return set_out(g, n, 0, x->dtype, &o, err, errlen);
}

int eval_expand(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *x = in_t(g, n, 0);
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    k_expand(x->data, &x->shape, engine_dtype_size(x->dtype), d, &g->tensors[n->out[0]].shape);
    return set_data(g, n, 0, d);
}
