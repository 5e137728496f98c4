/*
 * ops/sequence.c — ONNX sequence and optional values, resolved at compile time.
 *
 * Ops (shape rule only: every one vanishes before the plan, eval no_eval, lower no_lower):
 *   SequenceEmpty, SequenceConstruct, SequenceInsert, SequenceErase   infer_seq_list
 *   SequenceAt                                                        infer_seq_at
 *   SequenceLength                                                    infer_seq_length
 *   SplitToSequence                                                   infer_split_to_seq
 *   ConcatFromSequence                                                infer_concat_from_seq
 *   Optional, OptionalHasElement, OptionalGetElement                  infer_optional
 *
 * A plan has one static shape per tensor, so a sequence is a compile-time list of tensors: its
 * IR tensor carries IR_T_SEQ and the indices of its elements (ir.h), whose dtypes and shapes are
 * known like any tensor's. The list ops (Empty, Construct, Insert, Erase) only make new lists
 * and die; SequenceAt becomes an Identity of the element; SequenceLength a constant;
 * SplitToSequence a Split (followed by one Reshape per element for keepdims=0); and
 * ConcatFromSequence a Concat (new_axis=1: followed by a Reshape, and a Transpose when the new
 * axis is the last). An optional is a list of at most one element (IR_T_OPTIONAL). Positions
 * must be constants (an initializer, a folded subgraph, or a pinned input: the specialising
 * model pins them per request value, dynamic.c); a position known only at run time is refused
 * with "must be a constant". Graph inputs and outputs of sequence type are expanded into their
 * element tensors (shape.c, ir_seq_inputs / ir_seq_outputs); an If whose branches give
 * sequences of one length gets one output per element (seq_if). A sequence whose length depends on
 * the data (built inside a Loop body) is out of reach of this model and refused by the op that
 * would need it.
 */
#include "engine/ops/op.h"

/* The sequence input i of n (refused when absent or a tensor). */
static int seq_in(struct ir_graph *g, struct ir_node *n, int i, struct ir_tensor **s, char *err,
                  size_t errlen)
{
    *s = in_t(g, n, i);
    if (!*s || !((*s)->flags & IR_T_SEQ) || ((*s)->flags & IR_T_OPTIONAL))
        return ir_node_err(g, n, err, errlen, -EINVAL, "input %d must be a sequence", i);
    return 0;
}

/* Makes tensor t (an output of n; -1: absent) the sequence of the given elements (copied),
 * produced by no node. */
static int set_seq(struct ir_graph *g, struct ir_node *n, int t, int dtype, const int *elems,
                   int len, unsigned extra, char *err, size_t errlen)
{
    if (len > ENGINE_MAX_SEQ)
        return ir_node_err(g, n, err, errlen, -E2BIG,
                           "the sequence would have %d elements, over the bound of %d", len,
                           ENGINE_MAX_SEQ);
    if (t < 0)
        return 0;
    struct ir_tensor *y = &g->tensors[t];
    int *copy = len ? malloc((size_t)len * sizeof(int)) : NULL;
    if (len && !copy)
        return oom(g, n, err, errlen);
    if (len)
        memcpy(copy, elems, (size_t)len * sizeof(int));
    free(y->seq);
    y->seq = copy;
    y->seq_len = len;
    y->dtype = dtype;
    y->flags |= IR_T_SEQ | extra;
    y->shape = (struct engine_shape){0};
    y->shape_known = 1;
    y->producer = -1;
    return 0;
}

/* The node's work is done at compile time: nothing of it reaches the plan. */
static void retire(struct ir_graph *g, struct ir_node *n)
{
    n->dead = 1;
    for (int k = 0; k < n->n_out; k++)
        if (n->out[k] >= 0 && g->tensors[n->out[k]].producer == n - g->nodes)
            g->tensors[n->out[k]].producer = -1;
}

/* A constant scalar position, in [-len, len + extra) made non-negative. */
static int position(struct ir_graph *g, struct ir_node *n, int i, int len, int extra, int *pos,
                    char *err, size_t errlen)
{
    struct ir_tensor *p = in_t(g, n, i);
    int64_t v;
    int count;
    if (!p->data)
        return ir_node_err(g, n, err, errlen, -ENOTSUP,
                           "position '%s' must be a constant (sequences are resolved at compile "
                           "time)",
                           p->name);
    if (engine_shape_numel(&p->shape) != 1 || p->shape.rank > 1)
        return ir_node_err(g, n, err, errlen, -EINVAL, "position '%s' must be a scalar", p->name);
    int rc = const_ints(g, n, i, &v, 1, &count, err, errlen);
    if (rc)
        return rc;
    if (v < -(int64_t)len || v >= (int64_t)len + extra)
        return ir_node_err(g, n, err, errlen, -EINVAL,
                           "position %lld is out of range for a sequence of %d", (long long)v, len);
    *pos = (int)(v < 0 ? v + len : v);
    return 0;
}

/* The element dtype a list op's output has. */
static int list_dtype(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen, int *dt)
{
    if (strcmp(n->op, "SequenceEmpty") == 0) {
        *dt = (int)ir_attr_int(n, "dtype", ENGINE_F32);
        if (!engine_dtype_size(*dt))
            return ir_node_err(g, n, err, errlen, -ENOTSUP, "unsupported dtype %d", *dt);
        return 0;
    }
    struct ir_tensor *x0 = in_t(g, n, 0);
    *dt = x0->dtype;
    for (int i = 0; i < n->n_in; i++) {
        struct ir_tensor *x = in_t(g, n, i);
        if (x && (x->flags & IR_T_SEQ) && i > 0)
            return ir_node_err(g, n, err, errlen, -ENOTSUP,
                               "input %d is a sequence: sequences of sequences are not supported",
                               i);
        int elem = strcmp(n->op, "SequenceConstruct") == 0 ||
                   (i == 1 && strcmp(n->op, "SequenceInsert") == 0);
        if (x && elem && x->dtype != *dt && !(x0->flags & IR_T_SEQ && x0->seq_len == 0 && i == 1))
            return ir_node_err(g, n, err, errlen, -EINVAL,
                               "input %d ('%s') is %s, the sequence holds %s", i, x->name,
                               engine_dtype_name(x->dtype), engine_dtype_name(*dt));
    }
    if (strcmp(n->op, "SequenceInsert") == 0 && x0->seq_len == 0)
        *dt = in_t(g, n, 1)->dtype;
    return 0;
}

/* SequenceEmpty, SequenceConstruct, SequenceInsert, SequenceErase: a new list. */
int infer_seq_list(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int construct = strcmp(n->op, "SequenceConstruct") == 0;
    int insert = strcmp(n->op, "SequenceInsert") == 0, erase = strcmp(n->op, "SequenceErase") == 0;
    int rc = construct ? arity(g, n, 1, ENGINE_MAX_SEQ, err, errlen)
             : insert  ? arity(g, n, 2, 3, err, errlen)
             : erase   ? arity(g, n, 1, 2, err, errlen)
                       : arity(g, n, 0, 0, err, errlen);
    struct ir_tensor *s = NULL;
    if (rc || ((insert || erase) && (rc = seq_in(g, n, 0, &s, err, errlen))))
        return rc;
    for (int i = construct ? 0 : 1; i < n->n_in && insert; i++)
        if (in_t(g, n, i) && (in_t(g, n, i)->flags & IR_T_SEQ) && i == 1)
            return ir_node_err(g, n, err, errlen, -ENOTSUP,
                               "sequences of sequences are not supported");
    int dt = 0, len = s ? s->seq_len : 0, pos = len;
    if ((rc = list_dtype(g, n, err, errlen, &dt)))
        return rc;
    if (construct) {
        for (int i = 0; i < n->n_in; i++)
            if (g->tensors[n->in[i]].flags & IR_T_SEQ)
                return ir_node_err(g, n, err, errlen, -ENOTSUP,
                                   "input %d is a sequence: sequences of sequences are not "
                                   "supported",
                                   i);
        return (rc = set_seq(g, n, n->out[0], dt, n->in, n->n_in, 0, err, errlen))
                   ? rc
                   : (retire(g, n), 0);
    }
    if (!insert && !erase)
        return (rc = set_seq(g, n, n->out[0], dt, NULL, 0, 0, err, errlen)) ? rc
                                                                            : (retire(g, n), 0);
    if (erase && len == 0)
        return ir_node_err(g, n, err, errlen, -EINVAL, "the sequence is empty");
    if (erase)
        pos = len - 1;
    if (in_t(g, n, insert ? 2 : 1) &&
        (rc = position(g, n, insert ? 2 : 1, len, insert, &pos, err, errlen)))
        return rc;
    int *elems = malloc((size_t)(len + 1) * sizeof(int));
    if (!elems)
        return oom(g, n, err, errlen);
    int k = 0;
    for (int i = 0; i <= len; i++) {
        if (insert && i == pos)
            elems[k++] = n->in[1];
        if (i < len && !(erase && i == pos))
            elems[k++] = s->seq[i];
    }
    rc = set_seq(g, n, n->out[0], dt, elems, k, 0, err, errlen);
    free(elems);
    if (!rc)
        retire(g, n);
    return rc;
}

/* Rewrites n in place into a one-input Identity of tensor x. */
static int become_identity(struct ir_graph *g, struct ir_node *n, int x, char *err, size_t errlen)
{
    char *op = strdup("Identity");
    if (!op)
        return oom(g, n, err, errlen);
    free(n->op);
    n->op = op;
    n->in[0] = x;
    n->n_in = 1;
    return set_out(g, n, 0, g->tensors[x].dtype, &g->tensors[x].shape, err, errlen);
}

int infer_seq_at(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *s;
    int rc = arity(g, n, 2, 2, err, errlen), pos;
    if (rc || (rc = seq_in(g, n, 0, &s, err, errlen)))
        return rc;
    if (s->seq_len == 0)
        return ir_node_err(g, n, err, errlen, -EINVAL, "the sequence is empty");
    if ((rc = position(g, n, 1, s->seq_len, 0, &pos, err, errlen)))
        return rc;
    return become_identity(g, n, s->seq[pos], err, errlen);
}

/* Makes n's output the scalar constant v (int64 or bool) and retires n. */
static int const_scalar(struct ir_graph *g, struct ir_node *n, int dtype, int64_t v, char *err,
                        size_t errlen)
{
    struct engine_shape scalar = {0};
    int rc = set_out(g, n, 0, dtype, &scalar, err, errlen);
    if (rc)
        return rc;
    void *d = alloc_out(g, n, 0);
    if (!d)
        return oom(g, n, err, errlen);
    if (dtype == ENGINE_BOOL)
        *(uint8_t *)d = v != 0;
    else
        *(int64_t *)d = v;
    if ((rc = set_data(g, n, 0, d)))
        return rc;
    retire(g, n);
    return 0;
}

int infer_seq_length(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *s;
    int rc = arity(g, n, 1, 1, err, errlen);
    if (rc || (rc = seq_in(g, n, 0, &s, err, errlen)))
        return rc;
    return const_scalar(g, n, ENGINE_I64, s->seq_len, err, errlen);
}

/* ---- nodes a rewrite adds ---- */

/* A new tensor named "<base><suffix>"; its index or a negative errno. */
static int new_tensor(struct ir_graph *g, const char *base, const char *suffix, int k)
{
    char name[512];
    if (k >= 0)
        snprintf(name, sizeof(name), "%s%s%d]", base, suffix, k);
    else
        snprintf(name, sizeof(name), "%s%s", base, suffix);
    if (ir_find_tensor(g, name) >= 0)
        snprintf(name + strlen(name), sizeof(name) - strlen(name), "#%d", g->n_tensors);
    return ir_add_tensor(g, name);
}

/* Fills the (inserted, zeroed) node at index at: op with inputs in[0..n_in) writing out, in the
 * scope of the node it follows. */
static int fill_node(struct ir_graph *g, int at, const char *op, const int *in, int n_in, int out,
                     int scope)
{
    struct ir_node *m = &g->nodes[at];
    char name[512];
    snprintf(name, sizeof(name), "%s/%s", g->tensors[out].name, op);
    m->name = strdup(name);
    m->op = strdup(op);
    m->in = malloc((size_t)n_in * sizeof(int));
    m->out = malloc(sizeof(int));
    if (!m->name || !m->op || !m->in || !m->out)
        return -ENOMEM;
    memcpy(m->in, in, (size_t)n_in * sizeof(int));
    m->n_in = n_in;
    m->out[0] = out;
    m->n_out = 1;
    m->scope = scope;
    g->tensors[out].producer = at;
    return 0;
}

/* Adds a Reshape of x to shape s, writing y, at node index at (inserted). */
static int add_reshape(struct ir_graph *g, int at, int x, const struct engine_shape *s, int y,
                       int scope)
{
    struct engine_shape ss = {.rank = 1, .dims = {s->rank}};
    int64_t *v = malloc((size_t)(s->rank ? s->rank : 1) * sizeof(int64_t));
    if (!v)
        return -ENOMEM;
    memcpy(v, s->dims, (size_t)s->rank * sizeof(int64_t));
    int c = ir_add_const(g, g->tensors[y].name, "/shape", ENGINE_I64, &ss, v);
    if (c < 0)
        return c;
    int in[2] = {x, c};
    return fill_node(g, at, "Reshape", in, 2, y, scope);
}

/* Rewrites node i into op (keeping its inputs), with its outputs replaced by n_out new tensors
 * (their indices into outs, named "<first output>/<op><k>]") and count nodes inserted after it.
 */
static int rewrite(struct ir_graph *g, int i, const char *op, int n_out, int *outs, int count)
{
    struct ir_node *n = &g->nodes[i];
    char *o = strdup(op);
    int *out = malloc((size_t)n_out * sizeof(int));
    if (!o || !out) {
        free(o);
        free(out);
        return -ENOMEM;
    }
    const char *base = g->tensors[n->out[0]].name;
    char suffix[64];
    snprintf(suffix, sizeof(suffix), "/%s[", op);
    for (int k = 0; k < n_out; k++) {
        int t = new_tensor(g, base, suffix, k);
        if (t < 0) {
            free(o);
            free(out);
            return t;
        }
        base = g->tensors[g->nodes[i].out[0]].name; /* tensors may have moved */
        outs[k] = out[k] = t;
        g->tensors[t].producer = i;
    }
    n = &g->nodes[i];
    free(n->op);
    n->op = o;
    free(n->out);
    n->out = out;
    n->n_out = n_out;
    return ir_insert_nodes(g, i + 1, count);
}

/* ---- SplitToSequence ---- */

int infer_split_to_seq(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 1, 2, err, errlen), axis, i = (int)(n - g->nodes);
    if (rc)
        return rc;
    struct ir_tensor *x = in_t(g, n, 0), *sp = in_t(g, n, 1);
    if (x->flags & IR_T_SEQ)
        return ir_node_err(g, n, err, errlen, -EINVAL, "input 0 must be a tensor");
    if ((rc = norm_axis(g, n, ir_attr_int(n, "axis", 0), x->shape.rank, &axis, err, errlen)))
        return rc;
    int64_t dim = x->shape.dims[axis], sz[ENGINE_MAX_SEQ];
    int len = 0, keep = ir_attr_int(n, "keepdims", 1) != 0 || sp;
    if (!sp) {
        if (dim > ENGINE_MAX_SEQ)
            return ir_node_err(g, n, err, errlen, -E2BIG,
                               "%lld elements, over the bound of %d sequence elements",
                               (long long)dim, ENGINE_MAX_SEQ);
        for (; len < dim; len++)
            sz[len] = 1;
    } else {
        if (!sp->data)
            return ir_node_err(g, n, err, errlen, -ENOTSUP,
                               "split '%s' must be a constant (sequences are resolved at compile "
                               "time)",
                               sp->name);
        int count;
        if ((rc = const_ints(g, n, 1, sz, ENGINE_MAX_SEQ, &count, err, errlen)))
            return rc;
        if (sp->shape.rank == 0) {
            int64_t each = sz[0];
            if (each <= 0)
                return ir_node_err(g, n, err, errlen, -EINVAL, "split %lld must be positive",
                                   (long long)each);
            if ((dim + each - 1) / each > ENGINE_MAX_SEQ)
                return ir_node_err(g, n, err, errlen, -E2BIG,
                                   "over the bound of %d sequence elements", ENGINE_MAX_SEQ);
            for (int64_t at = 0; at < dim; at += each)
                sz[len++] = dim - at < each ? dim - at : each;
        } else {
            len = count;
        }
    }
    if (len == 0)
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "an empty split is not supported");
    int seq = n->out[0], elems[ENGINE_MAX_SEQ], parts[ENGINE_MAX_SEQ];
    int scope = n->scope, dt = x->dtype;
    struct engine_shape es = x->shape;
    for (int d = axis; d + 1 < es.rank; d++)
        es.dims[d] = es.dims[d + 1];
    es.rank--;
    if ((rc = ir_attr_set_int(n, "axis", axis)) ||
        (g->opset < 13 && (rc = ir_attr_set_ints(n, "split", sz, (size_t)len))))
        return oom(g, n, err, errlen);
    if (g->opset >= 13) {
        struct engine_shape ss = {.rank = 1, .dims = {len}};
        int64_t *v = malloc((size_t)len * sizeof(int64_t));
        if (!v)
            return oom(g, n, err, errlen);
        memcpy(v, sz, (size_t)len * sizeof(int64_t));
        int c = ir_add_const(g, g->tensors[seq].name, "/split", ENGINE_I64, &ss, v);
        if (c < 0)
            return oom(g, n, err, errlen);
        if (n->n_in < 2) {
            int *in = realloc(n->in, 2 * sizeof(int));
            if (!in)
                return oom(g, n, err, errlen);
            n->in = in;
            n->n_in = 2;
        }
        n->in[1] = c;
    } else if (n->n_in > 1) {
        n->n_in = 1;
    }
    if ((rc = rewrite(g, i, "Split", len, parts, keep ? 0 : len)))
        return oom(g, &g->nodes[i], err, errlen);
    for (int k = 0; k < len; k++) {
        elems[k] = parts[k];
        if (keep)
            continue;
        int y = new_tensor(g, g->tensors[seq].name, "[", k);
        if (y < 0 || add_reshape(g, i + 1 + k, parts[k], &es, y, scope))
            return oom(g, &g->nodes[i], err, errlen);
        elems[k] = y;
    }
    g->tensors[seq].producer = -1;
    n = &g->nodes[i];
    rc = infer_split(g, n, err, errlen);
    return rc ? rc : set_seq(g, n, seq, dt, elems, len, 0, err, errlen);
}

/* ---- ConcatFromSequence ---- */

int infer_concat_from_seq(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    struct ir_tensor *s;
    int rc = arity(g, n, 1, 1, err, errlen), i = (int)(n - g->nodes), axis;
    if (rc || (rc = seq_in(g, n, 0, &s, err, errlen)))
        return rc;
    int len = s->seq_len, stack = ir_attr_int(n, "new_axis", 0) != 0, y = n->out[0];
    if (len == 0)
        return ir_node_err(g, n, err, errlen, -EINVAL, "the sequence is empty");
    if (!ir_attr_get(n, "axis"))
        return ir_node_err(g, n, err, errlen, -EINVAL, "attribute axis is required");
    struct engine_shape es = g->tensors[s->seq[0]].shape;
    if ((rc = norm_axis(g, n, ir_attr_int(n, "axis", 0), es.rank + stack, &axis, err, errlen)))
        return rc;
    for (int k = 1; stack && k < len; k++) {
        const struct engine_shape *o = &g->tensors[s->seq[k]].shape;
        char s1[128], s2[128];
        if (o->rank != es.rank || memcmp(o->dims, es.dims, (size_t)es.rank * sizeof(int64_t)))
            return ir_node_err(g, n, err, errlen, -EINVAL,
                               "new_axis=1 needs elements of one shape: %s and %s",
                               shape_s(&es, s1), shape_s(o, s2));
    }
    if (stack && es.rank == 0)
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "stacking scalars is not supported");
    int *in = malloc((size_t)len * sizeof(int)), dt = g->tensors[s->seq[0]].dtype;
    char *op = strdup("Concat");
    if (!in || !op) {
        free(in);
        free(op);
        return oom(g, n, err, errlen);
    }
    memcpy(in, s->seq, (size_t)len * sizeof(int));
    free(n->in);
    free(n->op);
    n->in = in;
    n->n_in = len;
    n->op = op;
    int last = stack && axis == es.rank; /* concat along 0, reshape to [L, S...], transpose */
    if (ir_attr_set_int(n, "axis", last ? 0 : axis))
        return oom(g, n, err, errlen);
    if (!stack)
        return infer_concat(g, n, err, errlen);
    int scope = n->scope, tmp = new_tensor(g, g->tensors[y].name, "/concat", -1);
    int mid = last ? new_tensor(g, g->tensors[y].name, "/stacked", -1) : y;
    if (tmp < 0 || mid < 0 || ir_insert_nodes(g, i + 1, 1 + last))
        return oom(g, &g->nodes[i], err, errlen);
    n = &g->nodes[i];
    n->out[0] = tmp;
    g->tensors[tmp].producer = i;
    struct engine_shape rs = {.rank = es.rank + 1};
    for (int d = 0, k = 0; d <= es.rank; d++)
        rs.dims[d] = d == (last ? 0 : axis) ? len : es.dims[k++];
    if (add_reshape(g, i + 1, tmp, &rs, mid, scope))
        return oom(g, &g->nodes[i], err, errlen);
    if (last) {
        int64_t perm[ENGINE_MAX_RANK];
        for (int d = 0; d < es.rank; d++)
            perm[d] = d + 1;
        perm[es.rank] = 0;
        if (fill_node(g, i + 2, "Transpose", &mid, 1, y, scope) ||
            ir_attr_set_ints(&g->nodes[i + 2], "perm", perm, (size_t)es.rank + 1))
            return oom(g, &g->nodes[i], err, errlen);
    }
    (void)dt;
    return infer_concat(g, &g->nodes[i], err, errlen);
}

/* ---- Identity of a sequence, optionals ---- */

int seq_forward(struct ir_graph *g, struct ir_node *n, int x, char *err, size_t errlen)
{
    const struct ir_tensor *s = &g->tensors[x];
    int rc = set_seq(g, n, n->out[0], s->dtype, s->seq, s->seq_len, s->flags & IR_T_OPTIONAL, err,
                     errlen);
    if (!rc)
        retire(g, n);
    return rc;
}

int infer_optional(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int rc = arity(g, n, 0, 1, err, errlen);
    if (rc)
        return rc;
    struct ir_tensor *x = in_t(g, n, 0);
    int opt = x && (x->flags & IR_T_OPTIONAL);
    if (strcmp(n->op, "Optional") == 0) {
        if (x && opt)
            return ir_node_err(g, n, err, errlen, -ENOTSUP, "optionals of optionals");
        int e = x ? n->in[0] : -1;
        rc = set_seq(g, n, n->out[0], x ? x->dtype : 0, &e, x ? 1 : 0, IR_T_OPTIONAL, err, errlen);
        return rc ? rc : (retire(g, n), 0);
    }
    if (strcmp(n->op, "OptionalHasElement") == 0)
        return const_scalar(g, n, ENGINE_BOOL, x && (!opt || x->seq_len > 0), err, errlen);
    if (!x)
        return ir_node_err(g, n, err, errlen, -EINVAL, "required input 0 is missing");
    if (opt && x->seq_len == 0)
        return ir_node_err(g, n, err, errlen, -EINVAL, "the optional '%s' is empty", x->name);
    int e = opt ? x->seq[0] : n->in[0];
    if (g->tensors[e].flags & IR_T_SEQ)
        return seq_forward(g, n, e, err, errlen);
    return become_identity(g, n, e, err, errlen);
}

int seq_op(const struct ir_node *n)
{
    /* the rows of ops.def naming this file's functions, and Identity (seq_forward) */
    static const char *const ops[] = {
        "SequenceEmpty",      "SequenceConstruct", "SequenceInsert",
        "SequenceErase",      "SequenceAt",        "SequenceLength",
        "ConcatFromSequence", "Optional",          "OptionalHasElement",
        "OptionalGetElement", "Identity"};
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (strcmp(n->op, ops[i]) == 0)
            return 1;
    return 0;
}

/* ---- graph outputs ---- */

/* Appends an Identity from x to a new graph output named name; its tensor index or -errno. */
static int add_output_copy(struct ir_graph *g, int x, const char *name, char *err, size_t errlen)
{
    if (ir_find_tensor(g, name) >= 0)
        return seterr(err, errlen, -EINVAL,
                      "model %s: a sequence output's element would be named '%s', which the "
                      "model already uses",
                      g->name, name);
    int y = ir_add_tensor(g, name);
    if (y < 0 || ir_insert_nodes(g, g->n_nodes, 1) ||
        fill_node(g, g->n_nodes - 1, "Identity", &x, 1, y, 0))
        return seterr(err, errlen, -ENOMEM, "out of memory");
    g->tensors[y].flags |= IR_T_OUTPUT;
    int rc = set_out(g, &g->nodes[g->n_nodes - 1], 0, g->tensors[x].dtype, &g->tensors[x].shape,
                     err, errlen);
    return rc ? rc : y;
}

/* The list a sequence graph output returns: its own, or for an optional holding a sequence that
 * sequence's (t itself when it holds a tensor). */
static int output_list(const struct ir_graph *g, int t)
{
    const struct ir_tensor *x = &g->tensors[t];
    if ((x->flags & IR_T_OPTIONAL) && x->seq_len == 1 && (g->tensors[x->seq[0]].flags & IR_T_SEQ))
        return x->seq[0];
    return t;
}

int ir_seq_outputs(struct ir_graph *g, char *err, size_t errlen)
{
    int total = 0, any = 0;
    for (int i = 0; i < g->n_outputs; i++) {
        const struct ir_tensor *t = &g->tensors[output_list(g, g->outputs[i])];
        if (!(t->flags & IR_T_SEQ)) {
            total++;
            continue;
        }
        any = 1;
        if (t->seq_len == 0)
            return seterr(err, errlen, -ENOTSUP,
                          "model %s: graph output '%s' is an empty %s: a plan cannot return one",
                          g->name, t->name, t->flags & IR_T_OPTIONAL ? "optional" : "sequence");
        for (int k = 0; k < t->seq_len; k++)
            if (g->tensors[t->seq[k]].flags & IR_T_SEQ)
                return seterr(err, errlen, -ENOTSUP,
                              "model %s: graph output '%s' holds a sequence: nested sequences "
                              "are not supported",
                              g->name, t->name);
        total += t->seq_len;
    }
    if (!any)
        return 0;
    int *outs = calloc((size_t)total, sizeof(int)), *dts = calloc((size_t)total, sizeof(int));
    if (!outs || !dts) {
        free(outs);
        free(dts);
        return seterr(err, errlen, -ENOMEM, "out of memory");
    }
    int k = 0, rc = 0;
    for (int i = 0; i < g->n_outputs && !rc; i++) {
        int s = g->outputs[i];
        if (!(g->tensors[s].flags & IR_T_SEQ)) {
            dts[k] = g->output_dtypes ? g->output_dtypes[i] : 0;
            outs[k++] = s;
            continue;
        }
        g->tensors[s].flags &= ~(unsigned)IR_T_OUTPUT;
        char base[400], name[512];
        snprintf(base, sizeof(base), "%s", g->tensors[s].name); /* tensors move as outputs grow */
        s = output_list(g, s);
        for (int e = 0; e < g->tensors[s].seq_len && !rc; e++) {
            /* "NAME[e]": the API reports consecutive outputs so named as one sequence */
            snprintf(name, sizeof(name), "%s[%d]", base, e);
            int y = add_output_copy(g, g->tensors[s].seq[e], name, err, errlen);
            rc = y < 0 ? y : 0;
            outs[k++] = y;
        }
    }
    if (rc) {
        free(outs);
        free(dts);
        return rc;
    }
    free(g->outputs);
    free(g->output_dtypes);
    free(g->output_seq);
    g->output_seq = NULL;
    g->outputs = outs;
    g->output_dtypes = dts;
    g->n_outputs = total;
    return 0;
}

/* ---- graph inputs ---- */

/* The length given for sequence input t (a shape "NAME=L": rank 1; else the number of shapes
 * "NAME[k]" given), or -errno. */
static int seq_length(const struct ir_graph *g, int t, const struct engine_input_shape *shapes,
                      int n_shapes, char *err, size_t errlen)
{
    const struct ir_tensor *x = &g->tensors[t];
    int max = x->flags & IR_T_OPTIONAL ? 1 : ENGINE_MAX_SEQ;
    for (int i = 0; i < n_shapes; i++) {
        if (!shapes[i].name || strcmp(shapes[i].name, x->name) != 0)
            continue;
        if (shapes[i].shape.rank != 1 || shapes[i].shape.dims[0] < 0 ||
            shapes[i].shape.dims[0] > max)
            return seterr(err, errlen, -EINVAL,
                          "model %s: input '%s' is a%s: its length must be one number from 0 to "
                          "%d",
                          g->name, x->name, max == 1 ? "n optional" : " sequence", max);
        return (int)shapes[i].shape.dims[0];
    }
    int len = 0; /* no "NAME=L": as many as shapes "NAME[0]", "NAME[1]", ... are given */
    for (int found = 1; found && len <= max;) {
        char name[512];
        snprintf(name, sizeof(name), "%s[%d]", x->name, len);
        found = 0;
        for (int i = 0; i < n_shapes && !found; i++)
            found = shapes[i].name && strcmp(shapes[i].name, name) == 0;
        len += found;
    }
    if (len > max)
        return seterr(err, errlen, -E2BIG, "model %s: input '%s' has more than %d elements",
                      g->name, x->name, max);
    if (len > 0)
        return len;
    return seterr(err, errlen, -EINVAL,
                  "model %s: input '%s' is a%s: give its length as a shape '%s=L' (elements are "
                  "inputs '%s[0]' ... '%s[L-1]')",
                  g->name, x->name, max == 1 ? "n optional" : " sequence", x->name, x->name,
                  x->name);
}

int ir_seq_inputs(struct ir_graph *g, const struct engine_input_shape *shapes, int n_shapes,
                  char *err, size_t errlen)
{
    int total = 0, lens[64], n_seq = 0;
    for (int i = 0; i < g->n_inputs; i++) {
        int t = g->inputs[i];
        if (!(g->tensors[t].flags & IR_T_SEQ)) {
            total++;
            continue;
        }
        if (n_seq == (int)(sizeof(lens) / sizeof(lens[0])))
            return seterr(err, errlen, -E2BIG, "model %s: more than %d sequence inputs", g->name,
                          n_seq);
        int len = seq_length(g, t, shapes, n_shapes, err, errlen);
        if (len < 0)
            return len;
        lens[n_seq++] = len;
        total += len;
    }
    if (n_seq == 0)
        return 0;
    if (total > ENGINE_MAX_SEQ * 4)
        return seterr(err, errlen, -E2BIG, "model %s: %d inputs after expanding sequences", g->name,
                      total);
    int *ins = calloc((size_t)total + 1, sizeof(int)), k = 0, q = 0;
    if (!ins)
        return seterr(err, errlen, -ENOMEM, "out of memory");
    for (int i = 0; i < g->n_inputs; i++) {
        int s = g->inputs[i];
        if (!(g->tensors[s].flags & IR_T_SEQ)) {
            ins[k++] = s;
            continue;
        }
        int len = lens[q++], *elems = len ? malloc((size_t)len * sizeof(int)) : NULL;
        if (len && !elems) {
            free(ins);
            return seterr(err, errlen, -ENOMEM, "out of memory");
        }
        for (int e = 0; e < len; e++) {
            char name[512];
            snprintf(name, sizeof(name), "%s[%d]", g->tensors[s].name, e);
            int y = ir_find_tensor(g, name) >= 0 ? -EEXIST : ir_add_tensor(g, name);
            if (y < 0) {
                free(elems);
                free(ins);
                return seterr(err, errlen, y, "model %s: cannot add input '%s'%s", g->name, name,
                              y == -EEXIST ? ": the model already has a tensor of that name" : "");
            }
            struct ir_tensor *x = &g->tensors[s], *t = &g->tensors[y];
            t->dtype = x->dtype;
            t->shape = x->shape;
            t->shape_known = x->shape_known;
            t->flags = IR_T_INPUT;
            ins[k++] = elems[e] = y;
        }
        int holder = s; /* an optional of a sequence: that sequence, the optional holding it */
        int inner =
            g->tensors[s].flags & IR_T_OPTSEQ ? new_tensor(g, g->tensors[s].name, "/seq", -1) : s;
        if (inner < 0) {
            free(elems);
            free(ins);
            return seterr(err, errlen, -ENOMEM, "out of memory");
        }
        struct ir_tensor *x = &g->tensors[inner];
        x->dtype = g->tensors[s].dtype;
        free(x->seq);
        x->seq = elems;
        x->seq_len = len;
        x->flags = (g->tensors[s].flags & ~(unsigned)(IR_T_INPUT | IR_T_OPTSEQ)) | IR_T_SEQ;
        x->shape = (struct engine_shape){0};
        x->shape_known = 1;
        if (inner != holder) {
            struct ir_tensor *o = &g->tensors[holder];
            o->seq = malloc(sizeof(int));
            if (!o->seq) {
                free(ins);
                return seterr(err, errlen, -ENOMEM, "out of memory");
            }
            o->seq[0] = inner;
            o->seq_len = 1;
            o->flags =
                (o->flags & ~(unsigned)(IR_T_INPUT | IR_T_OPTSEQ)) | IR_T_SEQ | IR_T_OPTIONAL;
            o->shape = (struct engine_shape){0};
            o->shape_known = 1;
        }
    }
    free(g->inputs);
    g->inputs = ins;
    g->n_inputs = total;
    return 0;
}

/* ---- If with sequence outputs ---- */

/* The input of If n giving its output k in branch `then` (1) or else (0); with a constant
 * condition the taken branch's for both (the other is dropped, its tensors never inferred). */
static int if_input(const struct ir_graph *g, const struct ir_node *n, int k, int then)
{
    const struct ir_tensor *c = &g->tensors[n->in[0]];
    if (c->data)
        then = *(const uint8_t *)c->data != 0;
    return n->in[1 + (then ? 0 : n->n_out) + k];
}

/* The If's output k as then/else tensors: 1 when both branches give sequences (their lengths
 * into *len, refused when they differ), 0 when both give tensors. */
static int if_pair(struct ir_graph *g, struct ir_node *n, int k, int *len, char *err, size_t errlen)
{
    const struct ir_tensor *a = &g->tensors[if_input(g, n, k, 1)];
    const struct ir_tensor *b = &g->tensors[if_input(g, n, k, 0)];
    int sa = (a->flags & IR_T_SEQ) != 0, sb = (b->flags & IR_T_SEQ) != 0;
    if (sa != sb || (a->flags & IR_T_OPTIONAL) != (b->flags & IR_T_OPTIONAL))
        return ir_node_err(g, n, err, errlen, -ENOTSUP,
                           "output %d: one branch gives a sequence or optional, the other not", k);
    if (sa && a->seq_len != b->seq_len)
        return ir_node_err(g, n, err, errlen, -ENOTSUP,
                           "output %d: then_branch gives a sequence of %d, else_branch of %d "
                           "(sequences are resolved at compile time: their lengths must agree)",
                           k, a->seq_len, b->seq_len);
    *len = sa ? a->seq_len : 1;
    return sa;
}

int seq_if(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int n_out = n->n_out, total = 0, len, rc;
    if (n->n_in != 1 + 2 * n_out)
        return 0; /* infer_if refuses it */
    for (int k = 0; k < n_out; k++) {
        if ((rc = if_pair(g, n, k, &len, err, errlen)) < 0)
            return rc;
        total += len;
    }
    if (total > ENGINE_MAX_SEQ)
        return ir_node_err(g, n, err, errlen, -E2BIG, "%d outputs", total);
    int *in = malloc((size_t)(1 + 2 * total) * sizeof(int)),
        *out = malloc((size_t)total * sizeof(int));
    if (!in || !out) {
        free(in);
        free(out);
        return oom(g, n, err, errlen);
    }
    in[0] = n->in[0];
    int q = 0, i = (int)(n - g->nodes);
    rc = 0;
    for (int k = 0; k < n_out; k++) {
        int ta = if_input(g, &g->nodes[i], k, 1), tb = if_input(g, &g->nodes[i], k, 0);
        int y = g->nodes[i].out[k], seq = if_pair(g, &g->nodes[i], k, &len, err, errlen);
        for (int e = 0; e < len; e++) {
            in[1 + q + e] = seq ? g->tensors[ta].seq[e] : g->nodes[i].in[1 + k];
            in[1 + total + q + e] = seq ? g->tensors[tb].seq[e] : g->nodes[i].in[1 + n_out + k];
            int t = y < 0 || !seq ? y : new_tensor(g, g->tensors[y].name, "/if[", e);
            if (t < -1) {
                free(in);
                free(out);
                return oom(g, &g->nodes[i], err, errlen);
            }
            out[q + e] = t;
            if (t >= 0)
                g->tensors[t].producer = i;
        }
        if (seq && y >= 0)
            rc = set_seq(g, &g->nodes[i], y, g->tensors[ta].dtype, out + q, len,
                         g->tensors[ta].flags & IR_T_OPTIONAL, err, errlen);
        if (rc) {
            free(in);
            free(out);
            return rc;
        }
        q += len;
    }
    n = &g->nodes[i];
    free(n->in);
    free(n->out);
    n->in = in;
    n->n_in = 1 + 2 * total;
    n->out = out;
    n->n_out = total;
    return 0;
}
