/*
 * ops/control.c — control flow: If.
 *
 * Ops (shape rule, constant evaluation, lowering):
 *   If  infer_if, eval_if, lower_if
 *
 * The importer flattens both branches into the graph (struct ir_scope, ir.h): the If node reads
 * [cond, then outputs..., else outputs...] and every branch node comes before it. With a constant
 * condition (an initializer, a folded subgraph or a pinned input) the other branch's nodes are
 * dropped before their shapes are inferred (shape.c), the taken branch is inlined (its nodes run
 * as the enclosing scope's) and the If itself folds away (eval_if) or is bypassed (optimize.c).
 * A condition known only at run time lowers both branches into the plan between two BRANCH
 * kernel nodes (plan_image.h):
 *
 *   BRANCH(cond, jump if false → E) | then nodes, copies to the outputs | BRANCH(cond, jump if
 *   true → X) | E: else nodes, copies to the outputs | X: ...
 *
 * Jumps only go forward, so the node order stays an order in which every tensor is written
 * before it is read on the path taken, and memplan.c's liveness over that order (first to last
 * touch) keeps every tensor either path reads alive. Both branches must give each output the
 * same dtype and shape: the plan has one static shape per tensor.
 */
#include "engine/ops/op.h"

static int branch_scope(const struct ir_node *n, const char *which)
{
    const struct ir_attr *a = ir_attr_get(n, which);
    return a && a->type == IR_ATTR_GRAPH ? (int)a->i : -1;
}

/* The first input of the outputs branch `then` gives (1: then_branch, 0: else_branch). */
static int branch_base(const struct ir_node *n, int then)
{
    return then ? 1 : 1 + n->n_out;
}

/* 1 / 0: the constant condition's value; -1 when it is known only at run time. */
static int const_cond(const struct ir_graph *g, const struct ir_node *n)
{
    const struct ir_tensor *c = &g->tensors[n->in[0]];
    return c->data ? *(const uint8_t *)c->data != 0 : -1;
}

int infer_if(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int st = branch_scope(n, "then_branch"), se = branch_scope(n, "else_branch");
    if (st <= 0 || se <= 0 || n->n_in != 1 + 2 * n->n_out)
        return ir_node_err(g, n, err, errlen, -EINVAL, "needs then_branch and else_branch");
    const struct ir_tensor *c = in_t(g, n, 0);
    if (!c->shape_known || c->dtype != ENGINE_BOOL || engine_shape_numel(&c->shape) != 1)
        return ir_node_err(g, n, err, errlen, -EINVAL, "the condition must be one bool");
    int taken = const_cond(g, n);
    if (taken >= 0)
        g->scopes[taken ? st : se].inlined = 1;
    for (int k = 0; k < n->n_out; k++) {
        const struct ir_tensor *a = in_t(g, n, branch_base(n, 1) + k);
        const struct ir_tensor *b = in_t(g, n, branch_base(n, 0) + k);
        const struct ir_tensor *y = taken == 0 ? b : a;
        if (!y->shape_known)
            return ir_node_err(g, n, err, errlen, -EINVAL, "output %d of the %s has no shape", k,
                               taken == 0 ? "else_branch" : "then_branch");
        char s1[128], s2[128];
        if (taken < 0 &&
            (!a->shape_known || !b->shape_known || a->dtype != b->dtype ||
             a->shape.rank != b->shape.rank ||
             memcmp(a->shape.dims, b->shape.dims, (size_t)a->shape.rank * sizeof(int64_t)) != 0))
            return ir_node_err(g, n, err, errlen, -ENOTSUP,
                               "output %d: then_branch gives %s %s, else_branch %s %s; branches of "
                               "different shapes or types are not supported with a condition "
                               "known only at run time (the plan has one static shape per tensor)",
                               k, engine_dtype_name(a->dtype), shape_s(&a->shape, s1),
                               engine_dtype_name(b->dtype), shape_s(&b->shape, s2));
        int rc = set_out(g, n, k, y->dtype, &y->shape, err, errlen);
        if (rc)
            return rc;
    }
    return 0;
}

/* A constant condition whose taken branch gives constants: the outputs are those constants. */
int eval_if(struct ir_graph *g, struct ir_node *n, char *err, size_t errlen)
{
    int taken = const_cond(g, n);
    if (taken < 0)
        return 1;
    for (int k = 0; k < n->n_out; k++)
        if (!g->tensors[n->in[branch_base(n, taken) + k]].data)
            return 1;
    for (int k = 0; k < n->n_out; k++) {
        const struct ir_tensor *x = &g->tensors[n->in[branch_base(n, taken) + k]];
        if (n->out[k] < 0)
            continue;
        void *d = alloc_out(g, n, k);
        if (!d)
            return oom(g, n, err, errlen);
        memcpy(d, x->data, x->nbytes);
        set_data(g, n, k, d);
    }
    return 0;
}

/* A BRANCH node on plain tensor cond, jumping forward when cond is `when`; its target is
 * patched once the jumped-over nodes exist (patch_branch). Returns the node's index. */
static int64_t emit_branch(struct lower *l, const struct ir_node *n, int64_t cond, int when)
{
    struct plan_node pn = node_init(l, n, PLAN_OP_KERNEL);
    int64_t params[2] = {(int64_t)l->b.n_nodes + 1, when}; /* the next node, for now */
    pn.alg = PLAN_K_BRANCH;
    pn.out = (uint32_t)cond;
    if (set_inputs(l, &pn, &cond, 1) || set_params(l, &pn, params, 2))
        return lerr(l, n, -ENOMEM, "out of memory");
    int rc = emit(l, n, &pn, -1, NULL);
    return rc ? rc : (int64_t)l->b.n_nodes - 1;
}

static void patch_branch(struct lower *l, int64_t node)
{
    l->b.index[l->b.nodes[node].params_first] = (int32_t)l->b.n_nodes;
}

/* The taken branch's tensors copied to the If's outputs (absent ones skipped). */
static int copy_outputs(struct lower *l, const struct ir_node *n, int then)
{
    for (int k = 0; k < n->n_out; k++) {
        if (n->out[k] < 0)
            continue;
        int64_t from = plain_operand(l, n, n->in[branch_base(n, then) + k]);
        int64_t to = from < 0                  ? from
                     : l->tmap[n->out[k]] >= 0 ? l->tmap[n->out[k]] /* the other branch's */
                                               : output_of(l, n, k);
        if (to < 0)
            return (int)to;
        struct plan_node pn = node_init(l, n, PLAN_OP_KERNEL);
        pn.alg = PLAN_K_COPY;
        pn.out = (uint32_t)to;
        if (set_inputs(l, &pn, &from, 1))
            return lerr(l, n, -ENOMEM, "out of memory");
        int rc = emit(l, n, &pn, -1, NULL);
        if (rc)
            return rc;
    }
    return 0;
}

/* The live nodes of one branch, in order, then the copies of its outputs. Layout copies made
 * inside the branch exist only when it runs: forgotten afterwards. */
static int lower_branch(struct lower *l, const struct ir_node *n, int then)
{
    int scope = branch_scope(n, then ? "then_branch" : "else_branch");
    size_t relayouts = l->n_relayouts;
    int rc = 0;
    for (int i = 0; !rc && i < l->g->n_nodes; i++) {
        const struct ir_node *b = &l->g->nodes[i];
        if (!b->dead && ir_node_scope(l->g, b) == scope)
            rc = l->lower_node(l, b);
    }
    if (!rc)
        rc = copy_outputs(l, n, then);
    l->n_relayouts = relayouts;
    return rc;
}

int lower_if(struct lower *l, const struct ir_node *n)
{
    int taken = const_cond(l->g, n);
    if (taken >= 0) /* the taken branch was inlined: only outputs it could not hand on */
        return copy_outputs(l, n, taken);
    int64_t cond = plain_operand(l, n, n->in[0]);
    if (cond < 0)
        return (int)cond;
    int64_t to_else = emit_branch(l, n, cond, 0);
    if (to_else < 0)
        return (int)to_else;
    int rc = lower_branch(l, n, 1);
    int64_t to_end = rc ? rc : emit_branch(l, n, cond, 1);
    if (to_end < 0)
        return (int)to_end;
    patch_branch(l, to_else);
    rc = lower_branch(l, n, 0);
    if (!rc)
        patch_branch(l, to_end);
    return rc;
}
