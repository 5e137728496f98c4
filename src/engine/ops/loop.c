/*
 * ops/loop.c — control flow: Loop and Scan.
 *
 * Ops (shape rule, lowering; neither is ever folded):
 *   Loop  infer_loop, no_eval, lower_loop
 *   Scan  infer_loop, no_eval, lower_loop   (opset 9 on; opset 8 with a batch of 1)
 *
 * The importer flattens the body into the graph as a scope (struct ir_scope, ir.h): its graph
 * inputs are the scope's vars (Loop: iteration number, condition, carried values; Scan: state
 * values, then one slice of each scan input), tensors without a producer whose dtypes and shapes
 * loop_enter sets from the node's own inputs before the first body node's shape rule runs. The
 * node reads [its own inputs..., the body's outputs...]. Outer-scope tensors the body reads are
 * plain inputs of its nodes, a nested If, Loop or Scan is a scope inside the body's scope.
 *
 * The plan runs the body in a LOOP region (plan_image.h, docs/plan-format.md), not unrolled: the
 * image does not grow with the trip count and a condition computed by the body (a while loop)
 * works. The region is:
 *
 *   COPY init → each carried var | COPY cond → cond var | LOOP(trip, cond) → iter |
 *   [Scan: SCAN_SLICE read of each input's slice i] | body nodes |
 *   SCAN_SLICE write of each scan output slice at i | COPY each carried output → its var
 *   (through a temporary when it is another var: the copies are a parallel assignment) |
 *   COPY cond out → cond var | LOOP_END(cond out) | COPY each carried var → the node's output
 *
 * LOOP_END jumps back to the node after LOOP while the session's iteration count is under the
 * trip count and the condition holds; LOOP skips the region when none runs. The count and the
 * trip count live in the session, so a hostile image cannot stretch a run: every loop runs at
 * most its recorded max (<= ENGINE_LOOP_MAX_ITER) iterations per entry, a larger trip count
 * given at run time is refused ("Loop: trip count N over the bound of M"). memplan.c keeps every
 * buffer a region touches that also lives outside it alive for the whole region (carried vars,
 * outer tensors read in the body, scan inputs and outputs).
 *
 * Every carried value keeps its dtype and shape across iterations (the plan has one static shape
 * per tensor); a Loop's scan outputs need a constant trip count (their length; the specialising
 * model pins a trip count given as an input); with a condition computed by the body their length
 * is data-dependent: a graph output then reports the iterations actually run
 * (PLAN_TF_LOOP_BOUND), any other use is refused.
 */
#include "engine/ops/op.h"

/* The node's layout of inputs, body vars and body outputs, checked against the body. */
struct loop_desc {
    int scope;
    int scan;       /* 1: Scan, 0: Loop */
    int batch;      /* Scan at opset 8: a batch axis 0 of 1, dropped in the body */
    int n_state;    /* carried values (Loop) / state values (Scan) */
    int n_scan_in;  /* Scan inputs */
    int n_scan_out; /* scan outputs */
    int state_in;   /* node input of the first initial value */
    int state_var;  /* body var of the first carried value */
    int body_out;   /* node input of the first body output */
    int state_out;  /* body output of the first carried value */
};

static int body_scope(const struct ir_node *n)
{
    const struct ir_attr *a = ir_attr_get(n, "body");
    return a && a->type == IR_ATTR_GRAPH ? (int)a->i : -1;
}

static int describe(struct ir_graph *g, const struct ir_node *n, struct loop_desc *d, char *err,
                    size_t errlen)
{
    memset(d, 0, sizeof(*d));
    d->scope = body_scope(n);
    if (d->scope <= 0 || d->scope >= g->n_scopes || !g->scopes[d->scope].body)
        return ir_node_err(g, n, err, errlen, -EINVAL, "needs a body");
    const struct ir_scope *sc = &g->scopes[d->scope];
    int own = sc->n_deps, n_body_out = n->n_in - own;
    d->scan = strcmp(n->op, "Scan") == 0;
    d->body_out = own;
    if (!d->scan) {
        d->n_state = own - 2;
        d->state_in = 2;
        d->state_var = 2;
        d->state_out = 1;
        d->n_scan_out = n_body_out - 1 - d->n_state;
        if (own < 2 || sc->n_vars != own || d->n_scan_out < 0 ||
            n->n_out != d->n_state + d->n_scan_out)
            return ir_node_err(g, n, err, errlen, -EINVAL,
                               "the body takes %d inputs and gives %d outputs; with %d inputs "
                               "and %d outputs it must take 2 + N and give 1 + N + K",
                               sc->n_vars, n_body_out, own, n->n_out);
        return 0;
    }
    d->batch = g->opset < 9;
    d->state_in = d->batch;
    d->n_scan_in = (int)ir_attr_int(n, "num_scan_inputs", -1);
    d->n_state = own - d->batch - d->n_scan_in;
    d->n_scan_out = n->n_out - d->n_state;
    if (d->n_scan_in < 1 || d->n_state < 0 || d->n_scan_out < 0 || n_body_out != n->n_out ||
        sc->n_vars != d->n_state + d->n_scan_in)
        return ir_node_err(g, n, err, errlen, -EINVAL,
                           "num_scan_inputs %d does not fit %d inputs, %d outputs and a body of "
                           "%d inputs and %d outputs",
                           d->n_scan_in, own, n->n_out, sc->n_vars, n_body_out);
    if (d->batch && n->in[0] >= 0)
        return ir_node_err(g, n, err, errlen, -ENOTSUP,
                           "sequence_lens is not supported (every sequence runs the full length)");
    return 0;
}

/* Scan's axis attribute `name` (scan_input_axes / scan_output_axes), entry i, normalised for
 * rank; opset 8 scans axis 1 (after the batch). */
static int scan_axis(struct ir_graph *g, const struct ir_node *n, const struct loop_desc *d,
                     const char *name, int i, int rank, int *axis, char *err, size_t errlen)
{
    if (d->batch) {
        *axis = 1;
        return rank >= 2 ? 0 : ir_node_err(g, n, err, errlen, -EINVAL, "a scan input has rank < 2");
    }
    const struct ir_attr *a = ir_attr_get(n, name);
    int64_t v = a && a->type == IR_ATTR_INTS && (size_t)i < a->n ? a->ints[i] : 0;
    if (a && (a->type != IR_ATTR_INTS ||
              a->n != (size_t)(name[5] == 'i' ? d->n_scan_in : d->n_scan_out)))
        return ir_node_err(g, n, err, errlen, -EINVAL, "%s needs one value per scan %s", name,
                           name[5] == 'i' ? "input" : "output");
    return norm_axis(g, (struct ir_node *)n, v, rank, axis, err, errlen);
}

static int scan_direction(const struct ir_graph *g, const struct ir_node *n,
                          const struct loop_desc *d, int output, int i)
{
    const struct ir_attr *a = ir_attr_get(n, d->batch ? "directions"
                                             : output ? "scan_output_directions"
                                                      : "scan_input_directions");
    if (d->batch && output)
        return 0;
    (void)g;
    return a && a->type == IR_ATTR_INTS && (size_t)i < a->n ? (int)a->ints[i] : 0;
}

static void set_var(struct ir_graph *g, int t, int dtype, const struct engine_shape *s)
{
    g->tensors[t].dtype = dtype;
    g->tensors[t].shape = *s;
    g->tensors[t].shape_known = 1;
}

/* The Scan's trip count: the scan inputs' common length along their axes. */
static int scan_trips(struct ir_graph *g, const struct ir_node *n, const struct loop_desc *d,
                      int64_t *trips, char *err, size_t errlen)
{
    *trips = -1;
    for (int k = 0; k < d->n_scan_in; k++) {
        const struct ir_tensor *x = in_t(g, n, d->state_in + d->n_state + k);
        int axis;
        if (!x || !x->shape_known)
            return ir_node_err(g, n, err, errlen, -EINVAL, "scan input %d missing", k);
        int rc = scan_axis(g, n, d, "scan_input_axes", k, x->shape.rank, &axis, err, errlen);
        if (rc)
            return rc;
        if (d->batch && x->shape.dims[0] != 1)
            return ir_node_err(g, n, err, errlen, -ENOTSUP,
                               "a batch of %lld: only a batch of 1 is supported at opset 8",
                               (long long)x->shape.dims[0]);
        if (*trips >= 0 && x->shape.dims[axis] != *trips)
            return ir_node_err(g, n, err, errlen, -EINVAL,
                               "scan inputs of different lengths (%lld and %lld)",
                               (long long)*trips, (long long)x->shape.dims[axis]);
        *trips = x->shape.dims[axis];
    }
    if (*trips > ENGINE_LOOP_MAX_ITER)
        return ir_node_err(g, n, err, errlen, -ENOTSUP,
                           "Scan: trip count %lld over the bound of %d (ENGINE_LOOP_MAX_ITER)",
                           (long long)*trips, ENGINE_LOOP_MAX_ITER);
    return 0;
}

/* An engine_shape without axis `axis`. */
static struct engine_shape drop_axis(const struct engine_shape *s, int axis)
{
    struct engine_shape r = {.rank = s->rank - 1};
    for (int i = 0, j = 0; i < s->rank; i++)
        if (i != axis)
            r.dims[j++] = s->dims[i];
    return r;
}

/* Removes entry i of the n-element array a. */
static void drop_at(int *a, int *n, int i)
{
    memmove(a + i, a + i + 1, (size_t)(*n - i - 1) * sizeof(int));
    (*n)--;
}

/* The one live node reading tensor t, or NULL. */
static struct ir_node *sole_reader(struct ir_graph *g, int t)
{
    struct ir_node *r = NULL;
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; !g->nodes[i].dead && k < g->nodes[i].n_in; k++)
            if (g->nodes[i].in[k] == t) {
                if (r)
                    return NULL;
                r = &g->nodes[i];
            }
    return r;
}

/* Loop-carried value k is a sequence (PyTorch's list append in a scripted loop): it starts
 * empty, the body appends one tensor (SequenceInsert without a position) and the loop's final
 * sequence is stacked by ConcatFromSequence(axis=0, new_axis=1). That is a scan output: the
 * carried value goes, the appended tensor becomes a scan output and the stacked tensor the
 * Loop's output (the SequenceInsert and the ConcatFromSequence die). Anything else is refused:
 * the sequence's length would depend on the iterations. */
static int appended_to_scan(struct ir_graph *g, struct ir_node *n, const struct loop_desc *d, int k,
                            char *err, size_t errlen)
{
    struct ir_scope *sc = &g->scopes[d->scope];
    int var = sc->vars[d->state_var + k], init = n->in[d->state_in + k];
    int out = n->in[d->body_out + d->state_out + k], fin = n->out[k];
    struct ir_node *ins =
        out >= 0 && g->tensors[out].producer >= 0 ? &g->nodes[g->tensors[out].producer] : NULL;
    struct ir_node *cat = fin >= 0 ? sole_reader(g, fin) : NULL;
    if (init < 0 || !(g->tensors[init].flags & IR_T_SEQ) || g->tensors[init].seq_len != 0 || !ins ||
        strcmp(ins->op, "SequenceInsert") || (ins->n_in > 2 && ins->in[2] >= 0) ||
        ins->in[0] != var || sole_reader(g, var) != ins || sole_reader(g, out) != n || !cat ||
        strcmp(cat->op, "ConcatFromSequence") || ir_attr_int(cat, "axis", 0) != 0 ||
        ir_attr_int(cat, "new_axis", 0) != 1 || (g->tensors[fin].flags & IR_T_OUTPUT) ||
        cat->n_out != 1 || cat->out[0] < 0)
        return ir_node_err(g, n, err, errlen, -ENOTSUP,
                           "loop-carried value %d is a sequence: only one that starts empty, is "
                           "appended to once per iteration (SequenceInsert) and is stacked after "
                           "the loop (ConcatFromSequence axis 0, new_axis 1) is supported, as a "
                           "scan output (a sequence's length is fixed when the plan is compiled)",
                           k);
    int elem = ins->in[1], stacked = cat->out[0], nn = n - g->nodes;
    ins->dead = cat->dead = 1;
    g->tensors[out].producer = -1;
    g->tensors[fin].producer = -1;
    drop_at(n->in, &n->n_in, d->body_out + d->state_out + k); /* the body's output for k */
    n->in[n->n_in++] = elem;                                  /* now a scan output */
    drop_at(n->in, &n->n_in, d->state_in + k);                /* the initial value */
    drop_at(sc->deps, &sc->n_deps, d->state_in + k);
    drop_at(sc->vars, &sc->n_vars, d->state_var + k);
    drop_at(n->out, &n->n_out, k);
    n->out[n->n_out++] = stacked;
    g->tensors[stacked].producer = nn;
    return 0;
}

/* Gives the body vars of the Loop/Scan node n their dtypes and shapes (once). */
static int enter_node(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct loop_desc d;
    int rc = describe(g, n, &d, err, errlen);
    for (int k = d.n_state - 1; !rc && !d.scan && k >= 0; k--)
        if (g->tensors[g->scopes[d.scope].vars[d.state_var + k]].flags & IR_T_SEQ) {
            rc = appended_to_scan(g, n, &d, k, err, errlen);
            if (!rc)
                rc = describe(g, n, &d, err, errlen);
        }
    if (rc)
        return rc;
    struct ir_scope *sc = &g->scopes[d.scope];
    if (sc->entered)
        return 0;
    struct engine_shape scalar = {.rank = 0};
    if (!d.scan) {
        set_var(g, sc->vars[0], ENGINE_I64, &scalar);
        set_var(g, sc->vars[1], ENGINE_BOOL, &scalar);
    }
    for (int k = 0; k < d.n_state; k++) {
        const struct ir_tensor *x = in_t(g, n, d.state_in + k);
        if (!x || !x->shape_known)
            return ir_node_err(g, n, err, errlen, -EINVAL, "initial value %d missing", k);
        struct engine_shape s = d.batch ? drop_axis(&x->shape, 0) : x->shape;
        if (d.batch && (x->shape.rank < 1 || x->shape.dims[0] != 1))
            return ir_node_err(g, n, err, errlen, -ENOTSUP,
                               "only a batch of 1 is supported at opset 8");
        set_var(g, sc->vars[d.state_var + k], x->dtype, &s);
    }
    int64_t trips;
    if (d.scan && (rc = scan_trips(g, n, &d, &trips, err, errlen)))
        return rc;
    for (int k = 0; d.scan && k < d.n_scan_in; k++) {
        const struct ir_tensor *x = in_t(g, n, d.state_in + d.n_state + k);
        int axis;
        scan_axis(g, n, &d, "scan_input_axes", k, x->shape.rank, &axis, err, errlen);
        struct engine_shape s = drop_axis(&x->shape, axis);
        if (d.batch)
            s = drop_axis(&s, 0);
        set_var(g, sc->vars[d.n_state + k], x->dtype, &s);
    }
    sc->entered = 1;
    return 0;
}

int loop_enter(struct ir_graph *g, int scope, char *err, size_t errlen)
{
    if (scope <= 0 || !g->scopes[scope].body || g->scopes[scope].entered)
        return scope > 0 ? loop_enter(g, g->scopes[scope].parent, err, errlen) : 0;
    int rc = loop_enter(g, g->scopes[scope].parent, err, errlen);
    for (int i = 0; !rc && i < g->n_nodes; i++)
        if (!g->nodes[i].dead && body_scope(&g->nodes[i]) == scope)
            return enter_node(g, &g->nodes[i], err, errlen);
    return rc ? rc
              : seterr(err, errlen, -EINVAL, "model %s: a loop body without its node", g->name);
}

/* 1 when tensor t is the constant true. */
static int const_true(const struct ir_graph *g, int t)
{
    return t >= 0 && g->tensors[t].data && *(const uint8_t *)g->tensors[t].data != 0;
}

/* 1 when the Loop's condition is computed by its body (a while loop): the iteration count is
 * known only at run time. Identity and the cond var itself hand the entry condition on. */
static int cond_computed(const struct ir_graph *g, const struct ir_node *n,
                         const struct loop_desc *d)
{
    int t = n->in[d->body_out], var = g->scopes[d->scope].vars[1];
    while (t >= 0 && t != var && g->tensors[t].producer >= 0 &&
           strcmp(g->nodes[g->tensors[t].producer].op, "Identity") == 0)
        t = g->nodes[g->tensors[t].producer].in[0];
    return !(t == var ? n->in[1] < 0 || const_true(g, n->in[1]) : const_true(g, t));
}

static int same_type(const struct ir_tensor *a, const struct ir_tensor *b)
{
    return a->shape_known && b->shape_known && a->dtype == b->dtype &&
           a->shape.rank == b->shape.rank &&
           memcmp(a->shape.dims, b->shape.dims, (size_t)a->shape.rank * sizeof(int64_t)) == 0;
}

/* The Loop's trip count bound for its scan outputs: the constant M (0 when the entry condition is
 * the constant false). A constant M over ENGINE_LOOP_MAX_ITER is refused only as scan outputs'
 * length: a while loop exported with M = INT64_MAX (PyTorch) runs until its condition stops it
 * or the run reaches the bound. */
static int loop_trips(struct ir_graph *g, const struct ir_node *n, const struct loop_desc *d,
                      int64_t *trips, char *err, size_t errlen)
{
    const struct ir_tensor *m = in_t(g, n, 0), *c = in_t(g, n, 1);
    if (m && (m->dtype != ENGINE_I64 || engine_shape_numel(&m->shape) != 1))
        return ir_node_err(g, n, err, errlen, -EINVAL, "the trip count M must be one int64");
    if (c && (c->dtype != ENGINE_BOOL || engine_shape_numel(&c->shape) != 1))
        return ir_node_err(g, n, err, errlen, -EINVAL, "the condition must be one bool");
    *trips = m && m->data ? *(const int64_t *)m->data : -1;
    if (*trips > ENGINE_LOOP_MAX_ITER && d->n_scan_out > 0)
        return ir_node_err(g, n, err, errlen, -ENOTSUP,
                           "Loop: trip count %lld over the bound of %d (ENGINE_LOOP_MAX_ITER)",
                           (long long)*trips, ENGINE_LOOP_MAX_ITER);
    if (*trips < 0 && m && m->data)
        *trips = 0;
    if (c && c->data && !*(const uint8_t *)c->data)
        *trips = 0;
    if (*trips < 0 && d->n_scan_out > 0)
        return ir_node_err(g, n, err, errlen, -EINVAL,
                           "the trip count M must be a constant when the Loop has scan outputs "
                           "(it is their length)");
    return 0;
}

int infer_loop(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct loop_desc d;
    int rc = describe(g, n, &d, err, errlen);
    if (!rc)
        rc = loop_enter(g, d.scope, err, errlen);
    if (rc)
        return rc;
    const struct ir_scope *sc = &g->scopes[d.scope];
    int64_t trips;
    rc = d.scan ? scan_trips(g, n, &d, &trips, err, errlen)
                : loop_trips(g, n, &d, &trips, err, errlen);
    if (rc)
        return rc;
    if (!d.scan) {
        const struct ir_tensor *c = in_t(g, n, d.body_out);
        if (c->dtype != ENGINE_BOOL || engine_shape_numel(&c->shape) != 1)
            return ir_node_err(g, n, err, errlen, -EINVAL, "the body's condition must be one bool");
    }
    for (int k = 0; k < d.n_state; k++) {
        const struct ir_tensor *v = &g->tensors[sc->vars[d.state_var + k]];
        const struct ir_tensor *y = in_t(g, n, d.body_out + d.state_out + k);
        char s1[128], s2[128];
        if (!same_type(v, y))
            return ir_node_err(g, n, err, errlen, -ENOTSUP,
                               "loop-carried value %d enters as %s %s and leaves the body as %s "
                               "%s: a carried value must keep its dtype and shape across "
                               "iterations (the plan has one static shape per tensor)",
                               k, engine_dtype_name(v->dtype), shape_s(&v->shape, s1),
                               engine_dtype_name(y->dtype), shape_s(&y->shape, s2));
        struct engine_shape s = y->shape;
        if (d.batch) { /* [1, ...] outside the body */
            memmove(s.dims + 1, s.dims, (size_t)s.rank * sizeof(int64_t));
            s.dims[0] = 1;
            s.rank++;
        }
        if ((rc = set_out(g, n, k, y->dtype, &s, err, errlen)))
            return rc;
    }
    int bounded = !d.scan && cond_computed(g, n, &d);
    for (int k = 0; k < d.n_scan_out; k++) {
        const struct ir_tensor *y = in_t(g, n, d.body_out + d.state_out + d.n_state + k);
        int axis = 0;
        if (y->shape.rank + 1 + d.batch > ENGINE_MAX_RANK)
            return ir_node_err(g, n, err, errlen, -ENOTSUP, "scan output %d: rank too high", k);
        if (d.scan && (rc = scan_axis(g, n, &d, "scan_output_axes", k, y->shape.rank + 1 + d.batch,
                                      &axis, err, errlen)))
            return rc;
        struct engine_shape s = {.rank = y->shape.rank + 1 + d.batch};
        for (int i = 0, j = 0; i < s.rank; i++)
            s.dims[i] = d.batch && i == 0 ? 1 : i == axis ? trips : y->shape.dims[j++];
        if ((rc = set_out(g, n, d.n_state + k, y->dtype, &s, err, errlen)))
            return rc;
        if (bounded && n->out[d.n_state + k] >= 0)
            g->tensors[n->out[d.n_state + k]].flags |= IR_T_BOUND0;
    }
    return 0;
}

/* ---- lowering ---- */

/* The buffer plan tensor pt lives in (shape-only aliases share their root's). */
static int64_t root_of(const struct lower *l, int64_t pt)
{
    while (pt >= 0 && l->b.tensors[pt].storage == PLAN_ST_ARENA &&
           (l->b.tensors[pt].flags & PLAN_TF_ALIAS))
        pt = (int64_t)l->b.tensors[pt].offset;
    return pt;
}

/* A plan tensor for a body var (plain, in the arena). */
static int64_t var_tensor(struct lower *l, const struct ir_node *n, int t)
{
    if (l->tmap[t] >= 0)
        return l->tmap[t];
    int64_t pt = add_plan_tensor(l, &l->g->tensors[t], PLAN_ST_ARENA);
    if (pt < 0)
        return lerr(l, n, (int)pt, "cannot add a loop variable");
    l->tmap[t] = (int32_t)pt;
    return pt;
}

/* A kernel node of n with inputs ins, output out and parameters p; returns its index. */
static int64_t control_node(struct lower *l, const struct ir_node *n, uint32_t kind,
                            const int64_t *ins, uint32_t n_in, int64_t out, const int64_t *p,
                            uint32_t n_params)
{
    struct plan_node pn = node_init(l, n, PLAN_OP_KERNEL);
    pn.alg = kind;
    pn.out = (uint32_t)out;
    if (set_inputs(l, &pn, ins, n_in) || set_params(l, &pn, p, n_params))
        return lerr(l, n, -ENOMEM, "out of memory");
    int rc = emit(l, n, &pn, -1, NULL);
    return rc ? rc : (int64_t)l->b.n_nodes - 1;
}

static int copy_to(struct lower *l, const struct ir_node *n, int64_t from, int64_t to)
{
    int64_t k = control_node(l, n, PLAN_K_COPY, &from, 1, to, NULL, 0);
    return k < 0 ? (int)k : 0;
}

/* One SCAN_SLICE node between the whole tensor `full` (its axis `axis` scanned) and `slice`. */
static int scan_slice(struct lower *l, const struct ir_node *n, int64_t begin, int64_t full,
                      int axis, int reverse, int64_t slice, int write)
{
    const struct plan_tensor *f = &l->b.tensors[full];
    uint64_t outer = 1, inner = engine_dtype_size((int)f->dtype);
    for (int i = 0; i < (int)f->rank; i++)
        if (i < axis)
            outer *= (uint64_t)f->dims[i];
        else if (i > axis)
            inner *= (uint64_t)f->dims[i];
    if (outer > INT32_MAX || inner > INT32_MAX || f->dims[axis] > INT32_MAX)
        return lerr(l, n, -ENOTSUP, "a scanned tensor too large for a scan slice");
    if (!outer || !inner || !f->dims[axis])
        return 0; /* nothing to copy */
    struct kp_scan_slice q = {(int)begin, (int)outer, (int)f->dims[axis],
                              (int)inner, reverse,    write};
    int64_t p[6];
    uint32_t np = kp_encode_scan_slice(&q, p);
    int64_t k = control_node(l, n, PLAN_K_SCAN_SLICE, write ? &slice : &full, 1,
                             write ? full : slice, p, np);
    return k < 0 ? (int)k : 0;
}

/* The carried outputs copied into their vars at the end of an iteration, a parallel assignment:
 * an output that is (an alias of) another var goes through a temporary first. */
static int carry(struct lower *l, const struct ir_node *n, const struct loop_desc *d)
{
    const struct ir_scope *sc = &l->g->scopes[d->scope];
    int64_t from[ENGINE_MAX_RANK * 4];
    int64_t *src = d->n_state <= (int)(sizeof(from) / sizeof(from[0]))
                       ? from
                       : calloc((size_t)d->n_state, sizeof(int64_t));
    if (!src)
        return lerr(l, n, -ENOMEM, "out of memory");
    int rc = 0;
    for (int k = 0; !rc && k < d->n_state; k++) {
        int t = n->in[d->body_out + d->state_out + k];
        src[k] = plain_operand(l, n, t);
        rc = src[k] < 0 ? (int)src[k] : 0;
        for (int j = 0; !rc && j < d->n_state; j++) {
            int64_t var = l->tmap[sc->vars[d->state_var + j]];
            if (j == k || root_of(l, src[k]) != root_of(l, var))
                continue;
            int64_t tmp = add_plan_tensor(l, &l->g->tensors[t], PLAN_ST_ARENA);
            rc = tmp < 0 ? lerr(l, n, (int)tmp, "cannot add a temporary")
                         : copy_to(l, n, src[k], tmp);
            src[k] = tmp;
            break;
        }
    }
    for (int k = 0; !rc && k < d->n_state; k++) {
        int64_t var = l->tmap[sc->vars[d->state_var + k]];
        if (root_of(l, src[k]) != root_of(l, var))
            rc = copy_to(l, n, src[k], var);
    }
    if (src != from)
        free(src);
    return rc;
}

/* The body's nodes, then its scan outputs and carried values written back. */
static int lower_body(struct lower *l, const struct ir_node *n, const struct loop_desc *d,
                      int64_t begin)
{
    const struct ir_scope *sc = &l->g->scopes[d->scope];
    int rc = 0;
    for (int k = 0; !rc && k < d->n_scan_in; k++) {
        int t = n->in[d->state_in + d->n_state + k], axis;
        int64_t x = plain_operand(l, n, t);
        int64_t v = x < 0 ? x : var_tensor(l, n, sc->vars[d->n_state + k]);
        if (v < 0)
            return (int)v;
        scan_axis((struct ir_graph *)l->g, n, d, "scan_input_axes", k, l->g->tensors[t].shape.rank,
                  &axis, l->err, l->errlen);
        rc = scan_slice(l, n, begin, x, axis, scan_direction(l->g, n, d, 0, k), v, 0);
    }
    for (int i = 0; !rc && i < l->g->n_nodes; i++) {
        const struct ir_node *b = &l->g->nodes[i];
        if (!b->dead && ir_node_scope(l->g, b) == d->scope)
            rc = l->lower_node(l, b);
    }
    for (int k = 0; !rc && k < d->n_scan_out; k++) {
        int o = d->n_state + k, axis = 0;
        if (n->out[o] < 0)
            continue;
        int64_t y = plain_operand(l, n, n->in[d->body_out + d->state_out + o]);
        int64_t full = y < 0 ? y : l->tmap[n->out[o]];
        if (full < 0)
            return (int)full;
        if (d->scan)
            scan_axis((struct ir_graph *)l->g, n, d, "scan_output_axes", k,
                      (int)l->b.tensors[full].rank, &axis, l->err, l->errlen);
        rc = scan_slice(l, n, begin, full, axis, scan_direction(l->g, n, d, 1, k), y, 1);
    }
    return rc ? rc : carry(l, n, d);
}

int lower_loop(struct lower *l, const struct ir_node *n)
{
    struct loop_desc d;
    int rc = describe((struct ir_graph *)l->g, n, &d, l->err, l->errlen);
    if (rc)
        return rc;
    const struct ir_scope *sc = &l->g->scopes[d.scope];
    int64_t trips = -1;
    if (d.scan)
        rc = scan_trips((struct ir_graph *)l->g, n, &d, &trips, l->err, l->errlen);
    for (int k = 0; !rc && k < d.n_state; k++) { /* the initial values into the vars */
        int64_t from = plain_operand(l, n, n->in[d.state_in + k]);
        int64_t to = from < 0 ? from : var_tensor(l, n, sc->vars[d.state_var + k]);
        rc = to < 0 ? (int)to : copy_to(l, n, from, to);
    }
    int64_t ins[3] = {-1}; /* the iteration number (the node's output), [trip], [cond] */
    uint32_t n_in = 1;
    struct kp_loop q = {.max = ENGINE_LOOP_MAX_ITER};
    int64_t cond_var = -1;
    if (!rc && d.scan) { /* the scan length: a constant trip count */
        q.max = (int)trips;
        q.has_trip = 1;
        struct ir_tensor it = {.name = n->name, .dtype = ENGINE_I64, .shape_known = 1};
        ins[0] = add_plan_tensor(l, &it, PLAN_ST_ARENA);
        it.data = &trips;
        it.nbytes = sizeof(trips);
        ins[n_in++] = add_plan_tensor(l, &it, PLAN_ST_CONST);
        rc = ins[0] < 0 || ins[1] < 0 ? lerr(l, n, -ENOMEM, "out of memory") : 0;
    } else if (!rc) {
        const struct ir_tensor *m = ir_in(l, n, 0);
        int64_t mv = m && m->data ? *(const int64_t *)m->data : ENGINE_LOOP_MAX_ITER;
        q.max = (int)(mv < 0 ? 0 : mv > ENGINE_LOOP_MAX_ITER ? ENGINE_LOOP_MAX_ITER : mv);
        if ((q.has_trip = m != NULL))
            ins[n_in++] = plain_operand(l, n, n->in[0]);
        if ((q.has_cond = n->in[1] >= 0))
            ins[n_in++] = plain_operand(l, n, n->in[1]);
        ins[0] = var_tensor(l, n, sc->vars[0]);
        cond_var = var_tensor(l, n, sc->vars[1]);
        for (uint32_t i = 0; i < n_in; i++)
            if (ins[i] < 0)
                return (int)ins[i];
        rc = cond_var < 0 ? (int)cond_var : 0;
        if (!rc && q.has_cond)
            rc = copy_to(l, n, ins[n_in - 1], cond_var);
        else if (!rc) { /* no entry condition: the body sees true */
            uint8_t yes = 1;
            struct ir_tensor t = {
                .name = n->name, .dtype = ENGINE_BOOL, .shape_known = 1, .data = &yes, .nbytes = 1};
            int64_t c = add_plan_tensor(l, &t, PLAN_ST_CONST);
            rc = c < 0 ? lerr(l, n, (int)c, "out of memory") : copy_to(l, n, c, cond_var);
        }
    }
    if (rc)
        return rc;
    int64_t p[4];
    q.end = (int)l->b.n_nodes + 1; /* the LOOP node's successor until LOOP_END exists */
    uint32_t np = kp_encode_loop(&q, p);
    int64_t iter = ins[0];
    int64_t begin = control_node(l, n, PLAN_K_LOOP, ins, n_in, iter, p, np);
    if (begin < 0)
        return (int)begin;
    size_t relayouts = l->n_relayouts;     /* layout copies made in the body: gone after it */
    for (int k = 0; k < d.n_scan_out; k++) /* the whole scan outputs, written slice by slice */
        if (n->out[d.n_state + k] >= 0) {
            int64_t y = output_of(l, n, d.n_state + k);
            if (y < 0)
                return (int)y;
            /* an empty one has no SCAN_SLICE writing it and nothing to report */
            if ((l->g->tensors[n->out[d.n_state + k]].flags & IR_T_BOUND0) &&
                l->b.tensors[y].nbytes > 0)
                l->b.tensors[y].flags |= PLAN_TF_LOOP_BOUND;
        }
    rc = lower_body(l, n, &d, begin);
    int64_t cond_out = -1;
    if (!rc && !d.scan) {
        cond_out = plain_operand(l, n, n->in[d.body_out]);
        if (cond_out >= 0 && root_of(l, cond_out) != root_of(l, cond_var))
            rc = copy_to(l, n, cond_out, cond_var);
        rc = cond_out < 0 ? (int)cond_out : rc;
    }
    l->n_relayouts = relayouts;
    if (rc)
        return rc;
    struct kp_loop_end e = {(int)begin, !d.scan};
    np = kp_encode_loop_end(&e, p);
    int64_t end_in[2] = {iter, cond_var};
    int64_t end = control_node(l, n, PLAN_K_LOOP_END, end_in, d.scan ? 1 : 2, iter, p, np);
    if (end < 0)
        return (int)end;
    l->b.index[l->b.nodes[begin].params_first] = (int32_t)end;
    for (int k = 0; !rc && k < d.n_state; k++) { /* the last values out */
        if (n->out[k] < 0)
            continue;
        int64_t to = output_of(l, n, k);
        rc = to < 0 ? (int)to : copy_to(l, n, l->tmap[sc->vars[d.state_var + k]], to);
    }
    return rc;
}
