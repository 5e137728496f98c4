/*
 * ops/movement.c — data movement: Concat (oneDNN), Split, Slice, Transpose, Gather, Pad and the
 * plain-C movers of kernels_move.c (gathers, scatters, Trilu, depth/space, Tile, ReverseSequence,
 * OneHot, Compress).
 *
 * Ops (shape rule, constant evaluation, lowering):
 *   Concat           infer_concat, eval_concat, lower_concat
 *   Split            infer_split, eval_split, lower_split
 *   Slice            infer_slice, eval_slice, lower_slice (a start computed at run time with
 *                    ends = starts + c: SLICE_DYN)
 *   Transpose        infer_transpose, eval_transpose, lower_transpose
 *   Gather           infer_gather, eval_gather, lower_gather
 *   Pad              infer_pad, eval_pad, lower_pad
 *   Tile             infer_tile, eval_tile, lower_tile
 *   GatherElements   infer_gather_elements, eval_gather_elements, lower_gather_elements
 *   ScatterElements  infer_scatter_elements, eval_scatter_elements, lower_scatter_elements
 *   Scatter          infer_scatter_elements, eval_scatter_elements, lower_scatter_elements
 *   GatherND         infer_gather_nd, eval_gather_nd, lower_gather_nd
 *   ScatterND        infer_scatter_nd, eval_scatter_nd, lower_scatter_nd
 *   Trilu            infer_trilu, eval_trilu, lower_trilu
 *   DepthToSpace     infer_depth_space, eval_depth_space, lower_depth_space
 *   SpaceToDepth     infer_depth_space, eval_depth_space, lower_depth_space
 *   ReverseSequence  infer_reverse_sequence, lower_reverse_sequence
 *   OneHot           infer_onehot, lower_onehot
 *   Compress         infer_compress, lower_compress
 */
#include "engine/ops/op.h"

/* ---- Concat ---- */

int infer_concat(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 1 << 16, err, errlen), axis;
    if (rc)
        return rc;
    struct ir_tensor *x0 = in_t(g, n, 0);
    if (!ir_attr_get(n, "axis"))
        return ir_node_err(g, n, err, errlen, -EINVAL, "attribute axis is required");
    if ((rc = norm_axis(g, n, ir_attr_int(n, "axis", 0), x0->shape.rank, &axis, err, errlen)))
        return rc;
    struct engine_shape o = x0->shape;
    o.dims[axis] = 0;
    char s1[128], s2[128];
    for (int i = 0; i < n->n_in; i++) {
        struct ir_tensor *x = in_t(g, n, i);
        if (!x)
            return ir_node_err(g, n, err, errlen, -EINVAL, "input %d is missing", i);
        int ok = x->dtype == x0->dtype && x->shape.rank == x0->shape.rank;
        for (int d = 0; ok && d < o.rank; d++)
            ok = d == axis || x->shape.dims[d] == x0->shape.dims[d];
        if (!ok)
            return ir_node_err(g, n, err, errlen, -EINVAL,
                               "input %d %s %s does not match input 0 %s %s off axis %d", i,
                               engine_dtype_name(x->dtype), shape_s(&x->shape, s1),
                               engine_dtype_name(x0->dtype), shape_s(&x0->shape, s2), axis);
        o.dims[axis] += x->shape.dims[axis];
    }
    if (ir_attr_set_int(n, "axis", axis))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, x0->dtype, &o, err, errlen);
}

int eval_concat(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    const void **srcs = calloc((size_t)n->n_in, sizeof(void *));
    struct engine_shape *shapes = calloc((size_t)n->n_in, sizeof(*shapes));
    void *d = alloc_out(g, n, 0);
    if (!srcs || !shapes || !d) {
        free(srcs), free(shapes), free(d);
        return oom(g, n, err, errlen);
    }
    for (int i = 0; i < n->n_in; i++) {
        srcs[i] = in_t(g, n, i)->data;
        shapes[i] = in_t(g, n, i)->shape;
    }
    k_concat(srcs, shapes, n->n_in, (int)ir_attr_int(n, "axis", 0),
             engine_dtype_size(in_t(g, n, 0)->dtype), d);
    free(srcs);
    free(shapes);
    return set_data(g, n, 0, d);
}

int lower_concat(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *y = &l->g->tensors[n->out[0]];
    int64_t axis = ir_attr_int(n, "axis", 0);
    if (axis < 0)
        axis += y->shape.rank;
    if (n->n_in < 1 || n->n_in > 64)
        return lerr(l, n, -EINVAL, "Concat takes 1 to 64 inputs here");
    struct plan_node pn = node_init(l, n, PLAN_OP_CONCAT);
    pn.axis = axis;
    int64_t ts[64];
    uint32_t layout = PLAN_LAYOUT_PLAIN;
    for (int i = 0; i < n->n_in; i++) {
        ts[i] = act_operand(l, n, n->in[i]);
        if (ts[i] < 0)
            return (int)ts[i];
        layout = i == 0 ? layout_of(l, ts[0]) : layout;
        /* blocked along channels only when every input fills whole blocks */
        int blk = plan_layout_block(layout);
        if (blk > 1 && (axis != 1 || l->b.tensors[ts[i]].dims[1] % blk))
            layout = PLAN_LAYOUT_PLAIN;
    }
    for (int i = 0; i < n->n_in; i++)
        if ((ts[i] = in_layout(l, n, ts[i], layout)) < 0)
            return (int)ts[i];
    int64_t out = output_of(l, n, 0);
    if (out < 0 || set_layout(l, out, layout))
        return lerr(l, n, -EINVAL, "cannot lay out the output");
    pn.out = (uint32_t)out;
    int rc = set_inputs(l, &pn, ts, (uint32_t)n->n_in);
    if (!rc)
        rc = lower_posts(l, n, &pn);
    return rc ? rc : emit(l, n, &pn, -1, NULL);
}

/* ---- Split ---- */

/* Split: sizes from the split attribute (before opset 13) or constant input, num_outputs (opset
 * 18) or equal parts; kept as an explicit "split" and a non-negative "axis". */
static int split_sizes(struct ir_graph *g, struct ir_node *n, int64_t dim, int64_t *sz, char *err,
                       size_t errlen)
{
    int k = 0, rc;
    const struct ir_attr *a = ir_attr_get(n, "split");
    if (g->opset < 13 && a) {
        if (a->type != IR_ATTR_INTS || a->n != (size_t)n->n_out)
            return ir_node_err(g, n, err, errlen, -EINVAL, "split needs %d values", n->n_out);
        memcpy(sz, a->ints, a->n * sizeof(int64_t));
        k = n->n_out;
    } else if (g->opset >= 13 && in_t(g, n, 1)) {
        if ((rc = const_ints(g, n, 1, sz, n->n_out, &k, err, errlen)))
            return rc;
    } else {
        int64_t parts = n->n_out, each = parts ? (dim + parts - 1) / parts : 0;
        if (g->opset < 18 && dim % parts)
            return ir_node_err(g, n, err, errlen, -EINVAL, "%lld does not split into %d parts",
                               (long long)dim, n->n_out);
        for (int i = 0; i < n->n_out; i++)
            sz[i] = dim - each * i < each ? (dim - each * i > 0 ? dim - each * i : 0) : each;
        k = n->n_out;
    }
    int64_t sum = 0;
    for (int i = 0; i < k; i++)
        sum += sz[i] >= 0 && sz[i] <= dim ? sz[i] : dim + 1;
    if (k != n->n_out || sum != dim)
        return ir_node_err(g, n, err, errlen, -EINVAL,
                           "split sizes do not add up to %lld over %d outputs", (long long)dim,
                           n->n_out);
    return 0;
}

#define MAX_SPLIT 1024

int infer_split(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 2, err, errlen), axis;
    if (rc)
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    if (n->n_out > MAX_SPLIT)
        return ir_node_err(g, n, err, errlen, -EINVAL, "more than %d outputs", MAX_SPLIT);
    if ((rc = norm_axis(g, n, ir_attr_int(n, "axis", 0), x->shape.rank, &axis, err, errlen)))
        return rc;
    int64_t sz[MAX_SPLIT];
    if ((rc = split_sizes(g, n, x->shape.dims[axis], sz, err, errlen)))
        return rc;
    for (int i = 0; i < n->n_out; i++) {
        struct engine_shape o = x->shape;
        o.dims[axis] = sz[i];
        if ((rc = set_out(g, n, i, x->dtype, &o, err, errlen)))
            return rc;
    }
    if (ir_attr_set_int(n, "axis", axis) || ir_attr_set_ints(n, "split", sz, (size_t)n->n_out))
        return oom(g, n, err, errlen);
    return 0;
}

int eval_split(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *x = in_t(g, n, 0);
    int axis = (int)ir_attr_int(n, "axis", 0);
    const struct ir_attr *a = ir_attr_get(n, "split");
    int64_t starts[ENGINE_MAX_RANK] = {0}, steps[ENGINE_MAX_RANK];
    for (int d = 0; d < ENGINE_MAX_RANK; d++)
        steps[d] = 1;
    for (int i = 0; i < n->n_out; i++) {
        if (n->out[i] >= 0) {
            void *d = alloc_out(g, n, i);
            if (!d)
                return oom(g, n, err, errlen);
            k_slice(x->data, &x->shape, starts, steps, &g->tensors[n->out[i]].shape,
                    engine_dtype_size(x->dtype), d);
            set_data(g, n, i, d);
        }
        starts[axis] += a->ints[i];
    }
    return 0;
}

/* Split: one slice kernel per output. */
int lower_split(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *x = ir_in(l, n, 0);
    const struct ir_attr *a = ir_attr_get(n, "split");
    int64_t axis = ir_attr_int(n, "axis", 0), ins[1], params[2 * ENGINE_MAX_RANK];
    if (!x || !a || a->n != (size_t)n->n_out || axis < 0 || axis >= x->shape.rank)
        return lerr(l, n, -EINVAL, "split was not resolved by shape inference");
    int r = x->shape.rank, rc = plain_inputs(l, n, 1, ins);
    for (int i = 0; i < r; i++)
        params[i] = 0, params[r + i] = 1;
    for (int k = 0; k < n->n_out && !rc; k++) {
        if (n->out[k] >= 0) {
            struct plan_node pn = node_init(l, n, PLAN_OP_KERNEL);
            pn.alg = PLAN_K_SLICE;
            int64_t out = output_of(l, n, k);
            if (out < 0)
                return (int)out;
            pn.out = (uint32_t)out;
            if (set_inputs(l, &pn, ins, 1) || set_params(l, &pn, params, (uint32_t)(2 * r)))
                return lerr(l, n, -EINVAL, "kernel parameters out of range");
            rc = emit(l, n, &pn, -1, NULL);
        }
        params[axis] += a->ints[k];
    }
    return rc;
}

/* ---- Slice ---- */

/* Clamps ONNX Slice parameters for one axis into start/step/count. */
static int64_t slice_axis(int64_t dim, int64_t start, int64_t end, int64_t step, int64_t *s0)
{
    if (start < 0)
        start += dim;
    if (end < 0)
        end += dim;
    if (step > 0) {
        start = start < 0 ? 0 : start > dim ? dim : start;
        end = end < 0 ? 0 : end > dim ? dim : end;
        *s0 = start;
        return end > start ? (end - start - 1) / step + 1 : 0;
    }
    start = start < 0 ? -1 : start > dim - 1 ? dim - 1 : start;
    end = end < -1 ? -1 : end > dim - 1 ? dim - 1 : end;
    *s0 = start;
    return start > end ? (start - end - 1) / (-step) + 1 : 0;
}

static int slice_params(struct ir_graph *g, struct ir_node *n, int64_t *st, int64_t *e, int64_t *ax,
                        int64_t *sp, int *k, char *err, size_t errlen)
{
    int rc, k2 = 0, k3, k4;
    if (g->opset < 10) {
        const struct ir_attr *as = ir_attr_get(n, "starts"), *ae = ir_attr_get(n, "ends");
        if (!as || !ae || as->type != IR_ATTR_INTS || ae->type != IR_ATTR_INTS || as->n != ae->n ||
            as->n > ENGINE_MAX_RANK)
            return ir_node_err(g, n, err, errlen, -EINVAL, "starts/ends attributes invalid");
        *k = (int)as->n;
        if (*k) {
            memcpy(st, as->ints, as->n * 8);
            memcpy(e, ae->ints, ae->n * 8);
        }
        for (int i = 0; i < *k; i++)
            ax[i] = i, sp[i] = 1;
        const struct ir_attr *aa = ir_attr_get(n, "axes");
        if (aa && (aa->type != IR_ATTR_INTS || aa->n != as->n))
            return ir_node_err(g, n, err, errlen, -EINVAL, "axes attribute invalid");
        if (aa && aa->n)
            memcpy(ax, aa->ints, aa->n * 8);
        return 0;
    }
    if ((rc = arity(g, n, 3, 5, err, errlen)) ||
        (rc = const_ints(g, n, 1, st, ENGINE_MAX_RANK, k, err, errlen)) ||
        (rc = const_ints(g, n, 2, e, ENGINE_MAX_RANK, &k2, err, errlen)))
        return rc;
    k3 = k4 = *k;
    for (int i = 0; i < *k; i++)
        ax[i] = i, sp[i] = 1;
    if (in_t(g, n, 3) && (rc = const_ints(g, n, 3, ax, ENGINE_MAX_RANK, &k3, err, errlen)))
        return rc;
    if (in_t(g, n, 4) && (rc = const_ints(g, n, 4, sp, ENGINE_MAX_RANK, &k4, err, errlen)))
        return rc;
    if (k2 != *k || k3 != *k || k4 != *k)
        return ir_node_err(g, n, err, errlen, -EINVAL, "starts/ends/axes/steps lengths differ");
    return 0;
}

/* Tensor t as base + off: a one-element integer computed from base through Identity, Cast,
 * Reshape, Unsqueeze, Squeeze, Flatten and Add/Sub of one-element integer constants (base -1: t
 * is the constant off). */
static void affine_of(const struct ir_graph *g, int t, int *base, int64_t *off)
{
    static const char *const same[] = {"Identity",  "Cast",    "Reshape",
                                       "Unsqueeze", "Squeeze", "Flatten"};
    *off = 0;
    for (int steps = 0; steps < 64; steps++) {
        const struct ir_tensor *x = &g->tensors[t];
        int64_t c;
        if (engine_shape_numel(&x->shape) != 1 ||
            (x->dtype != ENGINE_I64 && x->dtype != ENGINE_I32))
            break;
        if (x->data) {
            *base = -1;
            *off += x->dtype == ENGINE_I64 ? *(const int64_t *)x->data : *(const int32_t *)x->data;
            return;
        }
        const struct ir_node *p = x->producer >= 0 ? &g->nodes[x->producer] : NULL;
        int known = 0;
        for (size_t i = 0; p && i < ARRAY_LEN(same); i++)
            known |= strcmp(p->op, same[i]) == 0;
        if (known && p->n_in >= 1 && p->in[0] >= 0) {
            t = p->in[0];
            continue;
        }
        int add = p && strcmp(p->op, "Add") == 0, sub = p && strcmp(p->op, "Sub") == 0;
        if (!(add || sub) || p->n_in != 2 || p->in[0] < 0 || p->in[1] < 0)
            break;
        const struct ir_tensor *b = &g->tensors[p->in[1]], *a = &g->tensors[p->in[0]];
        int const_b = b->data != NULL, const_a = add && a->data != NULL;
        if (!(const_b || const_a) || (const_a && const_b))
            break;
        const struct ir_tensor *k = const_b ? b : a;
        if (engine_shape_numel(&k->shape) != 1 ||
            (k->dtype != ENGINE_I64 && k->dtype != ENGINE_I32))
            break;
        c = k->dtype == ENGINE_I64 ? *(const int64_t *)k->data : *(const int32_t *)k->data;
        *off += sub ? -c : c;
        t = const_b ? p->in[0] : p->in[1];
    }
    *base = t;
}

/* A Slice (opset 10 on) of one axis, step 1, whose start is computed at run time and whose end
 * is that start plus a constant (x[i:i+c] in a loop body): the output's extent is c, the kernel
 * reads the start per run and refuses one that does not fit (SLICE_DYN). Returns 1 when n is one
 * (the dyn_axis attribute set), 0 when not, or -errno. */
static int dynamic_slice(struct ir_graph *g, struct ir_node *n, struct engine_shape *o, char *err,
                         size_t errlen)
{
    const struct ir_tensor *x = in_t(g, n, 0), *st = in_t(g, n, 1), *en = in_t(g, n, 2);
    const struct ir_tensor *ax = in_t(g, n, 3), *sp = in_t(g, n, 4);
    if (g->opset < 10 || !st || !en || (st->data && en->data) || (ax && !ax->data) ||
        (sp && !sp->data) || engine_shape_numel(&st->shape) != 1 ||
        engine_shape_numel(&en->shape) != 1)
        return 0;
    int64_t axis = 0, step = 1, off_s, off_e;
    int k, base_s, base_e, a;
    if ((ax && const_ints(g, n, 3, &axis, 1, &k, err, errlen)) ||
        (sp && const_ints(g, n, 4, &step, 1, &k, err, errlen)) || step != 1)
        return 0;
    affine_of(g, n->in[1], &base_s, &off_s);
    affine_of(g, n->in[2], &base_e, &off_e);
    if (base_s < 0 || base_s != base_e || (st->dtype != ENGINE_I64 && st->dtype != ENGINE_I32))
        return 0;
    int rc = norm_axis(g, n, axis, x->shape.rank, &a, err, errlen);
    if (rc)
        return rc;
    if (off_e - off_s < 0 || off_e - off_s > x->shape.dims[a])
        return ir_node_err(g, n, err, errlen, -EINVAL,
                           "ends is starts + %lld, outside axis %d of %lld",
                           (long long)(off_e - off_s), a, (long long)x->shape.dims[a]);
    *o = x->shape;
    o->dims[a] = off_e - off_s;
    return ir_attr_set_int(n, "dyn_axis", a) ? oom(g, n, err, errlen) : 1;
}

int infer_slice(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int64_t st[ENGINE_MAX_RANK], e[ENGINE_MAX_RANK], ax[ENGINE_MAX_RANK], sp[ENGINE_MAX_RANK];
    int k, rc = arity(g, n, 1, 5, err, errlen), axis, seen[ENGINE_MAX_RANK] = {0};
    struct engine_shape dyn;
    int d = rc ? 0 : dynamic_slice(g, n, &dyn, err, errlen);
    if (d)
        return d < 0 ? d : set_out(g, n, 0, in_t(g, n, 0)->dtype, &dyn, err, errlen);
    if (rc || (rc = slice_params(g, n, st, e, ax, sp, &k, err, errlen)))
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    struct engine_shape o = x->shape;
    int64_t starts[ENGINE_MAX_RANK] = {0}, steps[ENGINE_MAX_RANK];
    for (int i = 0; i < ENGINE_MAX_RANK; i++)
        steps[i] = 1;
    for (int i = 0; i < k; i++) {
        if ((rc = norm_axis(g, n, ax[i], x->shape.rank, &axis, err, errlen)))
            return rc;
        if (sp[i] == 0 || sp[i] == INT64_MIN || seen[axis]++)
            return ir_node_err(g, n, err, errlen, -EINVAL, "invalid step or repeated axis");
        o.dims[axis] = slice_axis(x->shape.dims[axis], st[i], e[i], sp[i], &starts[axis]);
        steps[axis] = sp[i];
    }
    /* normalised for the backend: one start and step per input axis */
    if (ir_attr_set_ints(n, "norm_starts", starts, (size_t)x->shape.rank) ||
        ir_attr_set_ints(n, "norm_steps", steps, (size_t)x->shape.rank))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, x->dtype, &o, err, errlen);
}

int eval_slice(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *x = in_t(g, n, 0);
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    k_slice(x->data, &x->shape, ir_attr_get(n, "norm_starts")->ints,
            ir_attr_get(n, "norm_steps")->ints, &g->tensors[n->out[0]].shape,
            engine_dtype_size(x->dtype), d);
    return set_data(g, n, 0, d);
}

/* Slice before opset 10 (starts/ends/axes attributes): the per-axis starts and steps shape
 * inference normalised, as constant folding uses them. */
static int lower_slice_attrs(struct lower *l, const struct ir_node *n, const struct ir_tensor *x)
{
    const struct ir_attr *st = ir_attr_get(n, "norm_starts"), *sp = ir_attr_get(n, "norm_steps");
    int r = x->shape.rank;
    int64_t params[2 * ENGINE_MAX_RANK], in[1];
    if (!st || !sp || st->type != IR_ATTR_INTS || sp->type != IR_ATTR_INTS || st->n != (size_t)r ||
        sp->n != (size_t)r)
        return lerr(l, n, -EINVAL, "slice was not resolved by shape inference");
    memcpy(params, st->ints, (size_t)r * sizeof(int64_t));
    memcpy(params + r, sp->ints, (size_t)r * sizeof(int64_t));
    if ((in[0] = plain_operand(l, n, n->in[0])) < 0)
        return (int)in[0];
    return emit_kernel(l, n, PLAN_K_SLICE, in, 1, params, (uint32_t)(2 * r), 0);
}

int lower_slice(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *x = ir_in(l, n, 0);
    if (!x)
        return lerr(l, n, -EINVAL, "missing input");
    if (l->g->opset < 10)
        return lower_slice_attrs(l, n, x);
    if (ir_attr_get(n, "dyn_axis")) { /* the start read per run: dynamic_slice */
        int64_t in[2] = {plain_operand(l, n, n->in[0]), plain_operand(l, n, n->in[1])};
        if (in[0] < 0 || in[1] < 0)
            return (int)(in[0] < 0 ? in[0] : in[1]);
        return emit_kernel(l, n, PLAN_K_SLICE_DYN, in, 2, NULL, 0, ir_attr_int(n, "dyn_axis", 0));
    }
    int r = x->shape.rank, ns, ne, na, nst;
    int64_t starts[ENGINE_MAX_RANK], ends[ENGINE_MAX_RANK], axes[ENGINE_MAX_RANK];
    int64_t steps[ENGINE_MAX_RANK], params[2 * ENGINE_MAX_RANK];
    if (const_input_ints(l, n, 1, starts, &ns) || const_input_ints(l, n, 2, ends, &ne) ||
        const_input_ints(l, n, 3, axes, &na) || const_input_ints(l, n, 4, steps, &nst))
        return -EINVAL;
    if (ns != ne || (na && na != ns) || (nst && nst != ns))
        return lerr(l, n, -EINVAL, "starts, ends, axes and steps differ in length");
    for (int i = 0; i < r; i++) {
        params[i] = 0;
        params[r + i] = 1;
    }
    for (int j = 0; j < ns; j++) {
        int64_t a = na ? axes[j] : j, step = nst ? steps[j] : 1;
        a = a < 0 ? a + r : a;
        if (a < 0 || a >= r || step == 0)
            return lerr(l, n, -EINVAL, "slice axis or step out of range");
        int64_t dim = x->shape.dims[a], st = starts[j] < 0 ? starts[j] + dim : starts[j];
        st = st < 0 ? 0 : st;
        st = step > 0 ? (st > dim ? dim : st) : (st > dim - 1 ? dim - 1 : st);
        params[a] = st;
        params[r + a] = step;
    }
    int64_t in[1] = {plain_operand(l, n, n->in[0])};
    if (in[0] < 0)
        return (int)in[0];
    return emit_kernel(l, n, PLAN_K_SLICE, in, 1, params, (uint32_t)(2 * r), 0);
}

/* ---- Transpose ---- */

int infer_transpose(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 1, err, errlen);
    if (rc)
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    int r = x->shape.rank, seen[ENGINE_MAX_RANK] = {0};
    int64_t perm[ENGINE_MAX_RANK];
    for (int i = 0; i < r; i++)
        perm[i] = r - 1 - i;
    if (ir_attr_get(n, "perm") && (rc = attr_ints(g, n, "perm", perm, r, 0, err, errlen)))
        return rc;
    struct engine_shape o = {.rank = r};
    for (int i = 0; i < r; i++) {
        if (perm[i] < 0 || perm[i] >= r || seen[perm[i]]++)
            return ir_node_err(g, n, err, errlen, -EINVAL, "perm is not a permutation");
        o.dims[i] = x->shape.dims[perm[i]];
    }
    if (ir_attr_set_ints(n, "perm", perm, (size_t)r))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, x->dtype, &o, err, errlen);
}

int eval_transpose(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *x = in_t(g, n, 0);
    const struct ir_attr *a = ir_attr_get(n, "perm");
    int perm[ENGINE_MAX_RANK];
    for (int i = 0; i < x->shape.rank; i++)
        perm[i] = (int)a->ints[i];
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    k_transpose(x->data, &x->shape, perm, engine_dtype_size(x->dtype), d);
    return set_data(g, n, 0, d);
}

int lower_transpose(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *x = ir_in(l, n, 0);
    if (!x)
        return lerr(l, n, -EINVAL, "missing input");
    int r = x->shape.rank;
    int64_t perm[ENGINE_MAX_RANK];
    for (int i = 0; i < r; i++)
        perm[i] = r - 1 - i;
    if (ir_attr_get(n, "perm") && get_ints(n, "perm", perm, r, 0))
        return lerr(l, n, -EINVAL, "perm does not match the input rank");
    int64_t in[1] = {plain_operand(l, n, n->in[0])};
    if (in[0] < 0)
        return (int)in[0];
    return emit_kernel(l, n, PLAN_K_TRANSPOSE, in, 1, perm, (uint32_t)r, 0);
}

/* ---- Gather ---- */

int infer_gather(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 2, 2, err, errlen), axis;
    if (rc)
        return rc;
    struct ir_tensor *x = in_t(g, n, 0), *idx = in_t(g, n, 1);
    if (idx->dtype != ENGINE_I64 && idx->dtype != ENGINE_I32)
        return ir_node_err(g, n, err, errlen, -EINVAL, "indices must be int64 or int32");
    if ((rc = norm_axis(g, n, ir_attr_int(n, "axis", 0), x->shape.rank, &axis, err, errlen)))
        return rc;
    int r = x->shape.rank - 1 + idx->shape.rank;
    if (r > ENGINE_MAX_RANK)
        return ir_node_err(g, n, err, errlen, -EINVAL, "result rank too large");
    struct engine_shape o = {.rank = 0};
    for (int i = 0; i < axis; i++)
        o.dims[o.rank++] = x->shape.dims[i];
    for (int i = 0; i < idx->shape.rank; i++)
        o.dims[o.rank++] = idx->shape.dims[i];
    for (int i = axis + 1; i < x->shape.rank; i++)
        o.dims[o.rank++] = x->shape.dims[i];
    if (ir_attr_set_int(n, "axis", axis))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, x->dtype, &o, err, errlen);
}

int eval_gather(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *x = in_t(g, n, 0), *idx = in_t(g, n, 1);
    size_t ni = (size_t)engine_shape_numel(&idx->shape);
    int64_t *iv = malloc((ni ? ni : 1) * sizeof(int64_t));
    void *d = alloc_out(g, n, 0);
    if (!iv || !d) {
        free(iv), free(d);
        return oom(g, n, err, errlen);
    }
    k_cast(idx->data, idx->dtype, iv, ENGINE_I64, ni);
    int rc = k_gather(x->data, &x->shape, (int)ir_attr_int(n, "axis", 0), iv, ni,
                      engine_dtype_size(x->dtype), d);
    free(iv);
    if (rc) {
        free(d);
        return ir_node_err(g, n, err, errlen, -EINVAL, "constant index out of range");
    }
    return set_data(g, n, 0, d);
}

int lower_gather(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *x = ir_in(l, n, 0), *idx = ir_in(l, n, 1);
    if (!x || !idx)
        return lerr(l, n, -EINVAL, "missing input");
    int64_t axis = ir_attr_int(n, "axis", 0);
    axis = axis < 0 ? axis + x->shape.rank : axis;
    int64_t ins[2] = {plain_operand(l, n, n->in[0]), 0};
    if (ins[0] < 0)
        return (int)ins[0];
    if (idx->data && idx->dtype == ENGINE_I32) {
        int64_t k = engine_shape_numel(&idx->shape);
        struct ir_tensor wide = *idx;
        wide.dtype = ENGINE_I64;
        wide.data = malloc((size_t)k * sizeof(int64_t) + 1);
        for (int64_t j = 0; wide.data && j < k; j++)
            ((int64_t *)wide.data)[j] = ((const int32_t *)idx->data)[j];
        ins[1] = wide.data ? add_plan_tensor(l, &wide, PLAN_ST_CONST) : -ENOMEM;
        free(wide.data);
    } else if (idx->dtype == ENGINE_I64) {
        ins[1] = plain_operand(l, n, n->in[1]);
    } else {
        return lerr(l, n, -EINVAL, "indices must be int32 constants or int64");
    }
    if (ins[1] < 0)
        return lerr(l, n, (int)ins[1], "cannot store the indices");
    return emit_kernel(l, n, PLAN_K_GATHER, ins, 2, NULL, 0, axis);
}

/* ---- Pad ---- */

#define MAX_PAD ((int64_t)1 << 40)

int infer_pad(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 3, err, errlen), k = 0;
    if (rc)
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    int r = x->shape.rank;
    int64_t p[2 * ENGINE_MAX_RANK];
    const char *mode = ir_attr_str(n, "mode", "constant");
    if (strcmp(mode, "constant") && strcmp(mode, "reflect") && strcmp(mode, "edge"))
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "unsupported attribute mode=%s", mode);
    if (g->opset < 11) {
        if ((rc = attr_ints(g, n, "pads", p, 2 * r, 0, err, errlen)))
            return rc;
        k = 2 * r;
    } else if ((rc = const_ints(g, n, 1, p, 2 * ENGINE_MAX_RANK, &k, err, errlen)))
        return rc;
    struct ir_tensor *cv = in_t(g, n, 2);
    if (k != 2 * r || (cv && (!cv->data || cv->dtype != x->dtype)))
        return ir_node_err(g, n, err, errlen, -EINVAL,
                           "pads needs %d values and constant_value a constant of the input type",
                           2 * r);
    struct engine_shape o = x->shape;
    for (int i = 0; i < r; i++) {
        if (p[i] < -MAX_PAD || p[i] > MAX_PAD || p[r + i] < -MAX_PAD || p[r + i] > MAX_PAD)
            return ir_node_err(g, n, err, errlen, -EINVAL, "pads out of range on axis %d", i);
        o.dims[i] += p[i] + p[r + i];
        if (o.dims[i] < 0 || (strcmp(mode, "reflect") == 0 &&
                              (p[i] >= x->shape.dims[i] || p[r + i] >= x->shape.dims[i])))
            return ir_node_err(g, n, err, errlen, -EINVAL, "pads do not fit axis %d", i);
    }
    if (ir_attr_set_ints(n, "pads", p, (size_t)k) ||
        ir_attr_set_float(n, "value",
                          cv && cv->dtype == ENGINE_F32 ? *(float *)cv->data
                                                        : ir_attr_float(n, "value", 0)))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, x->dtype, &o, err, errlen);
}

int eval_pad(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *x = in_t(g, n, 0), *cv = in_t(g, n, 2);
    const char *mode = ir_attr_str(n, "mode", "constant");
    enum k_pad_mode m = strcmp(mode, "edge") == 0      ? K_PAD_EDGE
                        : strcmp(mode, "reflect") == 0 ? K_PAD_REFLECT
                                                       : K_PAD_CONSTANT;
    char zero[8] = {0};
    float fv = ir_attr_float(n, "value", 0);
    const void *value = cv ? cv->data : x->dtype == ENGINE_F32 ? (void *)&fv : (void *)zero;
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    k_pad(x->data, &x->shape, ir_attr_get(n, "pads")->ints, m, value, engine_dtype_size(x->dtype),
          d, &g->tensors[n->out[0]].shape);
    return set_data(g, n, 0, d);
}

/* Pad after shape inference: explicit "pads" (begin..., end...), "value" and "mode". */
int lower_pad(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *x = ir_in(l, n, 0);
    if (!x)
        return lerr(l, n, -EINVAL, "missing input");
    int r = x->shape.rank;
    int64_t pads[2 * ENGINE_MAX_RANK], params[ENGINE_MAX_RANK + 1];
    if (get_ints(n, "pads", pads, 2 * r, 0))
        return lerr(l, n, -EINVAL, "pads were not resolved by shape inference");
    const char *mode = ir_attr_str(n, "mode", "constant");
    memcpy(params, pads, (size_t)r * sizeof(int64_t));
    params[r] = strcmp(mode, "reflect") == 0 ? K_PAD_REFLECT
                : strcmp(mode, "edge") == 0  ? K_PAD_EDGE
                                             : K_PAD_CONSTANT;
    float value = ir_attr_float(n, "value", 0.0f);
    struct ir_tensor vt = {.name = "pad_value",
                           .dtype = x->dtype,
                           .shape = {0, {0}},
                           .shape_known = 1,
                           .data = calloc(1, 8)};
    if (!vt.data || k_cast(&value, ENGINE_F32, vt.data, x->dtype, 1)) {
        free(vt.data);
        return lerr(l, n, -EINVAL, "unsupported pad value type");
    }
    int64_t ins[2] = {plain_operand(l, n, n->in[0]), add_plan_tensor(l, &vt, PLAN_ST_CONST)};
    free(vt.data);
    if (ins[0] < 0 || ins[1] < 0)
        return lerr(l, n, -EINVAL, "bad operands");
    return emit_kernel(l, n, PLAN_K_PAD, ins, 2, params, (uint32_t)r + 1, 0);
}

/* ---- Tile ---- */

int infer_tile(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 2, 2, err, errlen), k;
    int64_t rep[ENGINE_MAX_RANK];
    if (rc || (rc = const_ints(g, n, 1, rep, ENGINE_MAX_RANK, &k, err, errlen)))
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    if (k != x->shape.rank)
        return ir_node_err(g, n, err, errlen, -EINVAL, "repeats needs %d values", x->shape.rank);
    struct engine_shape o = x->shape;
    for (int d = 0; d < k; d++) {
        if (rep[d] < 0 || (o.dims[d] && rep[d] > INT64_MAX / o.dims[d]))
            return ir_node_err(g, n, err, errlen, -EINVAL, "repeats out of range on axis %d", d);
        o.dims[d] *= rep[d];
    }
    return set_out(g, n, 0, x->dtype, &o, err, errlen);
}

int eval_tile(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *x = in_t(g, n, 0);
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    k_tile(x->data, &x->shape, engine_dtype_size(x->dtype), d, &g->tensors[n->out[0]].shape);
    return set_data(g, n, 0, d);
}

int lower_tile(struct lower *l, const struct ir_node *n)
{
    int64_t ins[1];
    int rc = plain_inputs(l, n, 1, ins);
    return rc ? rc : emit_kernel(l, n, PLAN_K_TILE, ins, 1, NULL, 0, 0);
}

/* ---- GatherElements ---- */

/* The reduction attribute of ScatterElements/ScatterND, kept as "reduction_code". */
static int read_reduction(struct ir_graph *g, struct ir_node *n, int dtype, char *err,
                          size_t errlen)
{
    static const char *names[] = {"none", "add", "mul", "max", "min"};
    const char *r = ir_attr_str(n, "reduction", "none");
    size_t k = 0;
    while (k < ARRAY_LEN(names) && strcmp(names[k], r) != 0)
        k++;
    if (k == ARRAY_LEN(names) || !k_reduction_ok((enum k_scatter_red)k, dtype))
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "unsupported attribute reduction=%s for %s",
                           r, engine_dtype_name(dtype));
    return ir_attr_set_int(n, "reduction_code", (int64_t)k) ? oom(g, n, err, errlen) : 0;
}

/* GatherElements, and ScatterElements/Scatter (scatter = 1): indices (and updates) of data's
 * rank, no larger than data off the axis. */
static int elements_common(struct ir_graph *g, struct ir_node *n, int scatter, char *err,
                           size_t errlen)
{
    int rc = arity(g, n, 2 + scatter, 2 + scatter, err, errlen), axis;
    if (rc || (rc = index_input(g, n, 1, err, errlen)))
        return rc;
    struct ir_tensor *x = in_t(g, n, 0), *idx = in_t(g, n, 1), *u = in_t(g, n, 2);
    if ((rc = norm_axis(g, n, ir_attr_int(n, "axis", 0), x->shape.rank, &axis, err, errlen)))
        return rc;
    int ok = idx->shape.rank == x->shape.rank;
    for (int d = 0; ok && d < x->shape.rank; d++)
        ok = d == axis || idx->shape.dims[d] <= x->shape.dims[d];
    if (ok && scatter)
        ok = u->dtype == x->dtype && u->shape.rank == idx->shape.rank &&
             !memcmp(u->shape.dims, idx->shape.dims, (size_t)u->shape.rank * sizeof(int64_t));
    char s1[128], s2[128];
    if (!ok)
        return ir_node_err(g, n, err, errlen, -EINVAL, "indices %s do not fit data %s",
                           shape_s(&idx->shape, s1), shape_s(&x->shape, s2));
    if (scatter && (rc = read_reduction(g, n, x->dtype, err, errlen)))
        return rc;
    if (ir_attr_set_int(n, "axis", axis))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, x->dtype, scatter ? &x->shape : &idx->shape, err, errlen);
}

int infer_gather_elements(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    return elements_common(g, n, 0, err, errlen);
}

static int index_err(struct ir_graph *g, struct ir_node *n, void *d, char *err, size_t errlen)
{
    free(d);
    return ir_node_err(g, n, err, errlen, -EINVAL, "constant index out of range");
}

int eval_gather_elements(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *x = in_t(g, n, 0), *idx = in_t(g, n, 1);
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    if (k_gather_elements(x->data, &x->shape, idx->data, idx->dtype, &idx->shape,
                          (int)ir_attr_int(n, "axis", 0), engine_dtype_size(x->dtype), d))
        return index_err(g, n, d, err, errlen);
    return set_data(g, n, 0, d);
}

int lower_gather_elements(struct lower *l, const struct ir_node *n)
{
    int64_t ins[2];
    int rc = plain_inputs(l, n, 2, ins);
    return rc ? rc
              : emit_kernel(l, n, PLAN_K_GATHER_ELEMENTS, ins, 2, NULL, 0,
                            ir_attr_int(n, "axis", 0));
}

/* ---- ScatterElements, Scatter ---- */

int infer_scatter_elements(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    return elements_common(g, n, 1, err, errlen);
}

int eval_scatter_elements(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *x = in_t(g, n, 0), *idx = in_t(g, n, 1), *u = in_t(g, n, 2);
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    if (k_scatter_elements(x->data, &x->shape, idx->data, idx->dtype, &idx->shape, u->data,
                           (int)ir_attr_int(n, "axis", 0),
                           (enum k_scatter_red)ir_attr_int(n, "reduction_code", 0), x->dtype, d))
        return index_err(g, n, d, err, errlen);
    return set_data(g, n, 0, d);
}

/* ScatterElements', ScatterND's kernel parameters: the reduction the shape rule resolved. */
static uint32_t scatter_params(const struct ir_node *n, int64_t *p)
{
    struct kp_scatter q = {(enum k_scatter_red)ir_attr_int(n, "reduction_code", 0)};
    return kp_encode_scatter(&q, p);
}

int lower_scatter_elements(struct lower *l, const struct ir_node *n)
{
    int64_t ins[3], p[1];
    uint32_t np = scatter_params(n, p);
    int rc = plain_inputs(l, n, 3, ins);
    return rc ? rc
              : emit_kernel(l, n, PLAN_K_SCATTER_ELEMENTS, ins, 3, p, np,
                            ir_attr_int(n, "axis", 0));
}

/* ---- GatherND ---- */

/* GatherND (scatter = 0) and ScatterND: tuples of k indices in the last dim of indices. */
static int nd_common(struct ir_graph *g, struct ir_node *n, int scatter, char *err, size_t errlen)
{
    int rc = arity(g, n, 2 + scatter, 2 + scatter, err, errlen);
    if (rc || (rc = index_input(g, n, 1, err, errlen)))
        return rc;
    struct ir_tensor *x = in_t(g, n, 0), *idx = in_t(g, n, 1), *u = in_t(g, n, 2);
    int64_t b = scatter ? 0 : ir_attr_int(n, "batch_dims", 0);
    int64_t k = idx->shape.rank ? idx->shape.dims[idx->shape.rank - 1] : 0;
    int r = x->shape.rank, q = idx->shape.rank;
    if (b < 0 || b >= q || b >= r || k < 1 || b + k > r || q - 1 + r - b - k > ENGINE_MAX_RANK)
        return ir_node_err(g, n, err, errlen, -EINVAL,
                           "batch_dims %lld and index depth %lld do not fit ranks %d and %d",
                           (long long)b, (long long)k, r, q);
    struct engine_shape o = {.rank = 0};
    for (int64_t d = 0; d < b; d++) {
        if (idx->shape.dims[d] != x->shape.dims[d])
            return ir_node_err(g, n, err, errlen, -EINVAL, "batch dims of data and indices differ");
        o.dims[o.rank++] = x->shape.dims[d];
    }
    for (int64_t d = b; d < q - 1; d++)
        o.dims[o.rank++] = idx->shape.dims[d];
    for (int64_t d = b + k; d < r; d++)
        o.dims[o.rank++] = x->shape.dims[d];
    if (!scatter)
        return set_out(g, n, 0, x->dtype, &o, err, errlen);
    if (u->dtype != x->dtype || u->shape.rank != o.rank ||
        memcmp(u->shape.dims, o.dims, (size_t)o.rank * sizeof(int64_t)))
        return ir_node_err(g, n, err, errlen, -EINVAL, "updates do not fit indices and data");
    if ((rc = read_reduction(g, n, x->dtype, err, errlen)))
        return rc;
    return set_out(g, n, 0, x->dtype, &x->shape, err, errlen);
}

int infer_gather_nd(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    return nd_common(g, n, 0, err, errlen);
}

int eval_gather_nd(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *x = in_t(g, n, 0), *idx = in_t(g, n, 1);
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    if (k_gather_nd(x->data, &x->shape, idx->data, idx->dtype, &idx->shape,
                    (int)ir_attr_int(n, "batch_dims", 0), engine_dtype_size(x->dtype), d))
        return index_err(g, n, d, err, errlen);
    return set_data(g, n, 0, d);
}

int lower_gather_nd(struct lower *l, const struct ir_node *n)
{
    int64_t ins[2], p[1];
    uint32_t np =
        kp_encode_gather_nd(&(struct kp_gather_nd){(int)ir_attr_int(n, "batch_dims", 0)}, p);
    int rc = plain_inputs(l, n, 2, ins);
    return rc ? rc : emit_kernel(l, n, PLAN_K_GATHER_ND, ins, 2, p, np, 0);
}

/* ---- ScatterND ---- */

int infer_scatter_nd(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    return nd_common(g, n, 1, err, errlen);
}

int eval_scatter_nd(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *x = in_t(g, n, 0), *idx = in_t(g, n, 1), *u = in_t(g, n, 2);
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    if (k_scatter_nd(x->data, &x->shape, idx->data, idx->dtype, &idx->shape, u->data,
                     (enum k_scatter_red)ir_attr_int(n, "reduction_code", 0), x->dtype, d))
        return index_err(g, n, d, err, errlen);
    return set_data(g, n, 0, d);
}

int lower_scatter_nd(struct lower *l, const struct ir_node *n)
{
    int64_t ins[3], p[1];
    uint32_t np = scatter_params(n, p);
    int rc = plain_inputs(l, n, 3, ins);
    return rc ? rc : emit_kernel(l, n, PLAN_K_SCATTER_ND, ins, 3, p, np, 0);
}

/* ---- Trilu ---- */

int infer_trilu(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 2, err, errlen);
    if (rc)
        return rc;
    struct ir_tensor *x = in_t(g, n, 0), *k = in_t(g, n, 1);
    if (x->shape.rank < 2)
        return ir_node_err(g, n, err, errlen, -EINVAL, "input must have rank >= 2");
    if (k && (k->dtype != ENGINE_I64 || engine_shape_numel(&k->shape) != 1))
        return ir_node_err(g, n, err, errlen, -EINVAL, "k must be one int64");
    int64_t upper = ir_attr_int(n, "upper", 1);
    if (upper != 0 && upper != 1)
        return ir_node_err(g, n, err, errlen, -EINVAL, "attribute upper must be 0 or 1");
    return set_out(g, n, 0, x->dtype, &x->shape, err, errlen);
}

int eval_trilu(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *x = in_t(g, n, 0), *k = in_t(g, n, 1);
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    k_trilu(x->data, &x->shape, k ? *(int64_t *)k->data : 0, (int)ir_attr_int(n, "upper", 1),
            engine_dtype_size(x->dtype), d);
    return set_data(g, n, 0, d);
}

/* Trilu: k is an operand (a constant 0 when absent), so a run-time k works too. */
int lower_trilu(struct lower *l, const struct ir_node *n)
{
    int64_t ins[2], p[1];
    uint32_t np = kp_encode_trilu(&(struct kp_trilu){(int)ir_attr_int(n, "upper", 1)}, p);
    int rc = plain_inputs(l, n, 1, ins);
    if (rc)
        return rc;
    if (n->n_in > 1 && n->in[1] >= 0) {
        ins[1] = plain_operand(l, n, n->in[1]);
    } else {
        int64_t zero = 0;
        struct ir_tensor kt = {.name = "trilu_k",
                               .dtype = ENGINE_I64,
                               .shape = {0, {0}},
                               .shape_known = 1,
                               .data = &zero};
        ins[1] = add_plan_tensor(l, &kt, PLAN_ST_CONST);
    }
    if (ins[1] < 0)
        return lerr(l, n, -EINVAL, "cannot store k");
    return emit_kernel(l, n, PLAN_K_TRILU, ins, 2, p, np, 0);
}

/* ---- DepthToSpace, SpaceToDepth ---- */

/* DepthToSpace (DCR, CRD) and SpaceToDepth; the mode is kept as "depth_mode". */
int infer_depth_space(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 1, err, errlen);
    if (rc)
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    int64_t b = ir_attr_int(n, "blocksize", 0), mode = K_SPACE_TO_DEPTH;
    if (strcmp(n->op, "DepthToSpace") == 0) {
        const char *m = ir_attr_str(n, "mode", "DCR");
        mode = strcmp(m, "DCR") == 0 ? K_DEPTH_DCR : strcmp(m, "CRD") == 0 ? K_DEPTH_CRD : -1;
        if (mode < 0)
            return ir_node_err(g, n, err, errlen, -ENOTSUP, "unsupported attribute mode=%s", m);
    }
    if (x->shape.rank != 4 || b < 1 || b > (1 << 15))
        return ir_node_err(g, n, err, errlen, -EINVAL, "needs a 4-D input and a blocksize >= 1");
    struct engine_shape o = x->shape;
    const int64_t *s = x->shape.dims;
    int fits = mode == K_SPACE_TO_DEPTH ? s[2] % b == 0 && s[3] % b == 0 : s[1] % (b * b) == 0;
    if (!fits)
        return ir_node_err(g, n, err, errlen, -EINVAL, "blocksize %lld does not divide the input",
                           (long long)b);
    if (mode == K_SPACE_TO_DEPTH) {
        o.dims[1] = s[1] * b * b, o.dims[2] = s[2] / b, o.dims[3] = s[3] / b;
    } else {
        o.dims[1] = s[1] / (b * b), o.dims[2] = s[2] * b, o.dims[3] = s[3] * b;
    }
    if (ir_attr_set_int(n, "depth_mode", mode))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, x->dtype, &o, err, errlen);
}

int eval_depth_space(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *x = in_t(g, n, 0);
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    k_depth_space(x->data, &x->shape, ir_attr_int(n, "blocksize", 1),
                  (enum k_depth_mode)ir_attr_int(n, "depth_mode", 0), engine_dtype_size(x->dtype),
                  d);
    return set_data(g, n, 0, d);
}

int lower_depth_space(struct lower *l, const struct ir_node *n)
{
    int64_t ins[1], p[2];
    struct kp_depth_space d = {ir_attr_int(n, "blocksize", 1),
                               (enum k_depth_mode)ir_attr_int(n, "depth_mode", 0)};
    uint32_t np = kp_encode_depth_space(&d, p);
    int rc = plain_inputs(l, n, 1, ins);
    return rc ? rc : emit_kernel(l, n, PLAN_K_DEPTH_SPACE, ins, 1, p, np, 0);
}

/* ---- ReverseSequence ---- */

int infer_reverse_sequence(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 2, 2, err, errlen);
    if (rc || (rc = index_input(g, n, 1, err, errlen)))
        return rc;
    struct ir_tensor *x = in_t(g, n, 0), *len = in_t(g, n, 1);
    int64_t b = ir_attr_int(n, "batch_axis", 1), t = ir_attr_int(n, "time_axis", 0);
    if (x->shape.rank < 2 || (b != 0 && b != 1) || t != 1 - b)
        return ir_node_err(g, n, err, errlen, -EINVAL,
                           "batch_axis and time_axis must be 0 and 1 of a rank >= 2 input");
    if (len->shape.rank != 1 || len->shape.dims[0] != x->shape.dims[b])
        return ir_node_err(g, n, err, errlen, -EINVAL, "sequence_lens needs one value per batch");
    if (ir_attr_set_int(n, "batch_axis", b))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, x->dtype, &x->shape, err, errlen);
}

int lower_reverse_sequence(struct lower *l, const struct ir_node *n)
{
    int64_t ins[2], p[1];
    struct kp_reverse_seq q = {(int)ir_attr_int(n, "batch_axis", 1)};
    uint32_t np = kp_encode_reverse_seq(&q, p);
    int rc = plain_inputs(l, n, 2, ins);
    return rc ? rc : emit_kernel(l, n, PLAN_K_REVERSE_SEQ, ins, 2, p, np, 0);
}

/* ---- OneHot ---- */

/* OneHot with a constant depth; indices and values may be computed. */
int infer_onehot(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 3, 3, err, errlen), axis;
    if (rc)
        return rc;
    struct ir_tensor *idx = in_t(g, n, 0), *dep = in_t(g, n, 1), *val = in_t(g, n, 2);
    if (idx->dtype != ENGINE_I32 && idx->dtype != ENGINE_I64 && idx->dtype != ENGINE_F32)
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "indices of type %s are unsupported",
                           engine_dtype_name(idx->dtype));
    if (!dep->data || engine_shape_numel(&dep->shape) != 1 || dep->shape.rank > 1)
        return ir_node_err(g, n, err, errlen, -ENOTSUP,
                           "depth must be a constant scalar (computed at run time is unsupported)");
    double depth = 0;
    if (k_cast(dep->data, dep->dtype, &depth, ENGINE_F64, 1) || !(depth >= 1) ||
        depth > (double)(1 << 24))
        return ir_node_err(g, n, err, errlen, -EINVAL, "depth must be in [1, %d]", 1 << 24);
    if (engine_shape_numel(&val->shape) != 2 || val->shape.rank != 1 ||
        idx->shape.rank >= ENGINE_MAX_RANK)
        return ir_node_err(g, n, err, errlen, -EINVAL, "values must hold [off, on]");
    if ((rc = norm_axis(g, n, ir_attr_int(n, "axis", -1), idx->shape.rank + 1, &axis, err, errlen)))
        return rc;
    struct engine_shape o = {.rank = idx->shape.rank + 1};
    for (int d = 0, k = 0; d < o.rank; d++)
        o.dims[d] = d == axis ? (int64_t)depth : idx->shape.dims[k++];
    if (ir_attr_set_int(n, "axis", axis) || ir_attr_set_int(n, "onehot_depth", (int64_t)depth))
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, val->dtype, &o, err, errlen);
}

int lower_onehot(struct lower *l, const struct ir_node *n)
{
    int64_t ins[2], p[2];
    struct kp_onehot q = {ir_attr_int(n, "onehot_depth", 1), (int)ir_attr_int(n, "axis", 0)};
    uint32_t np = kp_encode_onehot(&q, p);
    if (n->n_in != 3 || n->in[0] < 0 || n->in[2] < 0)
        return lerr(l, n, -EINVAL, "missing input");
    ins[0] = plain_operand(l, n, n->in[0]);
    ins[1] = plain_operand(l, n, n->in[2]);
    if (ins[0] < 0 || ins[1] < 0)
        return lerr(l, n, -EINVAL, "unusable input");
    return emit_kernel(l, n, PLAN_K_ONEHOT, ins, 2, p, np, 0);
}

/* ---- Compress ---- */

/* Compress with a constant condition: the selected positions (along axis, or of the flattened
 * input) are kept as "compress_idx" for the backend's gather. */
int infer_compress(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 2, 2, err, errlen), axis = -1;
    if (rc)
        return rc;
    struct ir_tensor *x = in_t(g, n, 0), *c = in_t(g, n, 1);
    if (!c->data || c->dtype != ENGINE_BOOL || c->shape.rank != 1)
        return ir_node_err(g, n, err, errlen, -ENOTSUP,
                           "condition must be a constant 1-D bool (computed at run time is "
                           "unsupported: it decides the output shape)");
    int has_axis = ir_attr_get(n, "axis") != NULL;
    if (has_axis &&
        (rc = norm_axis(g, n, ir_attr_int(n, "axis", 0), x->shape.rank, &axis, err, errlen)))
        return rc;
    int64_t len = has_axis ? x->shape.dims[axis] : engine_shape_numel(&x->shape);
    int64_t m = c->shape.dims[0] < len ? c->shape.dims[0] : len, count = 0;
    int64_t *sel = malloc((size_t)(m > 0 ? m : 1) * sizeof(int64_t));
    if (!sel)
        return oom(g, n, err, errlen);
    for (int64_t j = 0; j < m; j++)
        if (((const uint8_t *)c->data)[j])
            sel[count++] = j;
    struct engine_shape o = has_axis ? x->shape : (struct engine_shape){.rank = 1};
    o.dims[has_axis ? axis : 0] = count;
    rc = ir_attr_set_ints(n, "compress_idx", sel, (size_t)count) ||
         ir_attr_set_int(n, "compress_axis", axis);
    free(sel);
    if (rc)
        return oom(g, n, err, errlen);
    return set_out(g, n, 0, x->dtype, &o, err, errlen);
}

/* Compress: a gather with constant indices along the axis, or a GatherND of index tuples over
 * the flattened input. */
int lower_compress(struct lower *l, const struct ir_node *n)
{
    const struct ir_tensor *x = ir_in(l, n, 0);
    const struct ir_attr *a = ir_attr_get(n, "compress_idx");
    int64_t axis = ir_attr_int(n, "compress_axis", -1);
    if (!x || !a || a->type != IR_ATTR_INTS)
        return lerr(l, n, -EINVAL, "compress was not resolved by shape inference");
    int64_t count = (int64_t)a->n;
    int r = axis >= 0 ? 1 : x->shape.rank;
    struct ir_tensor it = {.name = "compress_indices", .dtype = ENGINE_I64, .shape_known = 1};
    it.shape = axis >= 0 ? (struct engine_shape){1, {count}} : (struct engine_shape){2, {count, r}};
    int64_t *v = malloc((size_t)(count * r + 1) * sizeof(int64_t));
    if (!v)
        return lerr(l, n, -ENOMEM, "out of memory");
    for (int64_t i = 0; i < count; i++) {
        int64_t flat = a->ints[i]; /* a flat position becomes the input's multi-index */
        for (int d = r - 1; d >= 0; d--) {
            int64_t dim = axis >= 0 ? INT64_MAX : x->shape.dims[d];
            v[i * r + d] = dim ? flat % dim : 0;
            flat = dim ? flat / dim : 0;
        }
    }
    it.data = v;
    int64_t ins[2] = {plain_operand(l, n, n->in[0]), add_plan_tensor(l, &it, PLAN_ST_CONST)};
    free(v);
    if (ins[0] < 0 || ins[1] < 0)
        return lerr(l, n, -EINVAL, "unusable input");
    if (axis >= 0)
        return emit_kernel(l, n, PLAN_K_GATHER, ins, 2, NULL, 0, axis);
    int64_t p[1];
    uint32_t np = kp_encode_gather_nd(&(struct kp_gather_nd){0}, p);
    return emit_kernel(l, n, PLAN_K_GATHER_ND, ins, 2, p, np, 0);
}
