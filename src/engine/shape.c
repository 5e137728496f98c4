/*
 * shape.c — the ir_infer_shapes pass: every live node's shape rule, in topological order.
 *
 * Every supported op is one row of ops/ops.def; its infer function (in its family file under
 * ops/) checks attributes and input dtypes/shapes and sets the outputs' (refusing any attribute
 * value it does not implement, never guessing), and its eval function, if any, computes the
 * outputs from constant inputs with kernels.h. Shape inference evaluates constant nodes as it
 * goes, so a Reshape fed by a Shape→Gather→Concat subgraph sees a constant target shape. Infer
 * functions also write normalised attributes (explicit pads/strides/dilations, resolved
 * auto_pad, non-negative axes) so the backend never re-derives ONNX defaults.
 */
#include "engine/ops/op.h"

#define MAX_FOLD_BYTES ((uint64_t)1 << 30) /* largest constant folding may create */

int ir_node_foldable(const struct ir_graph *g, const struct ir_node *n)
{
    const struct ir_op_def *d = ir_op_find(n->op);
    if (!d || d->eval == no_eval)
        return 0;
    if (strcmp(n->op, "Shape") == 0 || strcmp(n->op, "Size") == 0 || strcmp(n->op, "EyeLike") == 0)
        return 1; /* need only the input's shape */
    if (strcmp(n->op, "If") == 0)
        return 1; /* needs only its condition and the taken branch's outputs: eval decides */
    for (int i = 0; i < n->n_in; i++)
        if (n->in[i] >= 0 && !g->tensors[n->in[i]].data)
            return 0;
    return 1;
}

static const struct engine_input_shape *find_override(const struct ir_graph *g, int t,
                                                      const struct engine_input_shape *shapes,
                                                      int n_shapes)
{
    for (int i = 0; i < n_shapes; i++)
        if (shapes[i].name ? strcmp(shapes[i].name, g->tensors[t].name) == 0 : g->n_inputs == 1)
            return &shapes[i];
    return NULL;
}

static int fix_input(struct ir_graph *g, int t, const struct engine_input_shape *ov, char *err,
                     size_t errlen)
{
    struct ir_tensor *x = &g->tensors[t];
    char s1[128], s2[128];
    if (ov) {
        if (ov->shape.rank < 0 || ov->shape.rank > ENGINE_MAX_RANK ||
            (x->shape.rank >= 0 && ov->shape.rank != x->shape.rank))
            return seterr(err, errlen, -EINVAL,
                          "model %s: input '%s': shape %s given, model has %s", g->name, x->name,
                          shape_s(&ov->shape, s1), shape_s(&x->shape, s2));
        for (int i = 0; i < ov->shape.rank; i++)
            if (ov->shape.dims[i] < 0 || (x->shape.rank >= 0 && x->shape.dims[i] >= 0 &&
                                          x->shape.dims[i] != ov->shape.dims[i]))
                return seterr(err, errlen, -EINVAL,
                              "model %s: input '%s': shape %s given, but the model fixes %s",
                              g->name, x->name, shape_s(&ov->shape, s1), shape_s(&x->shape, s2));
        x->shape = ov->shape;
    }
    if (x->shape.rank < 0)
        return seterr(err, errlen, -EINVAL,
                      "model %s: input '%s' has no shape in the model: give one", g->name, x->name);
    for (int i = 0; i < x->shape.rank; i++)
        if (x->shape.dims[i] < 0)
            return seterr(err, errlen, -EINVAL,
                          "model %s: input '%s' has symbolic dim %d in %s (shown as -1): give a "
                          "concrete shape for it",
                          g->name, x->name, i, shape_s(&x->shape, s1));
    if (!x->dtype)
        return seterr(err, errlen, -EINVAL, "model %s: input '%s' has no element type", g->name,
                      x->name);
    uint64_t numel = 1;
    for (int i = 0; i < x->shape.rank; i++) {
        if (x->shape.dims[i] > 0 && numel > MAX_INFERRED_BYTES / (uint64_t)x->shape.dims[i])
            return seterr(err, errlen, -EFBIG, "model %s: input '%s' shape %s is too large",
                          g->name, x->name, shape_s(&x->shape, s1));
        numel *= (uint64_t)x->shape.dims[i];
    }
    if (numel * engine_dtype_size(x->dtype) > MAX_INFERRED_BYTES)
        return seterr(err, errlen, -EFBIG, "model %s: input '%s' shape %s is too large", g->name,
                      x->name, shape_s(&x->shape, s1));
    x->shape_known = 1;
    return 0;
}

static int infer_node(struct ir_graph *g, int i, char *err, size_t errlen)
{
    struct ir_node *n = &g->nodes[i];
    const struct ir_op_def *d = ir_op_find(n->op);
    if (!d)
        return ir_node_err(g, n, err, errlen, -ENOTSUP, "unsupported op");
    /* an If checks its own: the branch a constant condition drops has no shapes */
    for (int k = 0; strcmp(n->op, "If") != 0 && k < n->n_in; k++)
        if (n->in[k] >= 0 && !g->tensors[n->in[k]].shape_known)
            return ir_node_err(g, n, err, errlen, -EINVAL, "input '%s' has no known shape",
                               g->tensors[n->in[k]].name);
    for (int k = 0; k < n->n_in; k++) {
        const struct ir_tensor *x = n->in[k] >= 0 ? &g->tensors[n->in[k]] : NULL;
        if (x && (x->flags & IR_T_SEQ) && !seq_op(n) && strcmp(n->op, "If") != 0)
            return ir_node_err(g, n, err, errlen, -ENOTSUP,
                               "input '%s' is a%s: this op takes tensors (sequences are "
                               "resolved at compile time, ops/sequence.c)",
                               x->name, x->flags & IR_T_OPTIONAL ? "n optional" : " sequence");
        if (x && !x->data && x->flags & (IR_T_BOUND0 | IR_T_BOUND1))
            return ir_node_err(g, n, err, errlen, -ENOTSUP,
                               "input '%s' has a data-dependent size (at most %lld along dim %d, "
                               "known only at run time): it can only be a graph output",
                               x->name, (long long)x->shape.dims[x->flags & IR_T_BOUND0 ? 0 : 1],
                               x->flags & IR_T_BOUND0 ? 0 : 1);
    }
    int rc = strcmp(n->op, "If") == 0 ? seq_if(g, n, err, errlen) : 0;
    n = &g->nodes[i];
    if (rc || (rc = ir_legacy_infer(g, n, err, errlen)) || (rc = d->infer(g, n, err, errlen)))
        return rc;
    n = &g->nodes[i];
    if (n->dead)
        return 0; /* resolved at compile time (a sequence op) */
    d = ir_op_find(n->op); /* a sequence op may have become another (ops/sequence.c) */
    if (!d)
        return ir_node_err(g, n, err, errlen, -EINVAL, "unsupported op");
    /* a node whose first output is absent ("") computes nothing anyone can read: never evaluated */
    if (n->n_out > 0 && n->out[0] >= 0 && ir_node_foldable(g, n)) {
        for (int k = 0; k < n->n_out; k++) {
            const struct ir_tensor *t = n->out[k] >= 0 ? &g->tensors[n->out[k]] : NULL;
            if (t && !t->data &&
                (uint64_t)engine_shape_numel(&t->shape) * engine_dtype_size(t->dtype) >
                    MAX_FOLD_BYTES)
                return ir_node_err(g, n, err, errlen, -EFBIG,
                                   "folding would create a constant over %llu bytes",
                                   (unsigned long long)MAX_FOLD_BYTES);
        }
        rc = d->eval(g, n, err, errlen);
        return rc > 0 ? 0 : rc;
    }
    return 0;
}

int ir_infer_shapes(struct ir_graph *g, const struct engine_input_shape *shapes, int n_shapes,
                    char *err, size_t errlen)
{
    for (int i = 0; i < n_shapes; i++) {
        int t = shapes[i].name ? ir_find_tensor(g, shapes[i].name) : -1;
        if (shapes[i].name && (t < 0 || !(g->tensors[t].flags & (IR_T_INPUT | IR_T_SEQ))))
            return seterr(err, errlen, -EINVAL,
                          "model %s: a shape is given for '%s', which "
                          "is not an input of the model",
                          g->name, shapes[i].name);
    }
    for (int i = 0; i < g->n_inputs; i++) {
        int rc = fix_input(g, g->inputs[i], find_override(g, g->inputs[i], shapes, n_shapes), err,
                           errlen);
        if (rc)
            return rc;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].dead)
            continue;
        if (ir_node_dropped(g, &g->nodes[i])) { /* a constant condition skips its branch */
            g->nodes[i].dead = 1;
            for (int k = 0; k < g->nodes[i].n_out; k++)
                if (g->nodes[i].out[k] >= 0)
                    g->tensors[g->nodes[i].out[k]].producer = -1;
            continue;
        }
        int rc = loop_enter(g, g->nodes[i].scope, err, errlen); /* a body's vars first */
        if (!rc)
            rc = infer_node(g, i, err, errlen);
        if (rc)
            return rc;
    }
    return ir_seq_outputs(g, err, errlen);
}

static int check_pin(const struct ir_graph *g, const struct engine_tensor *p, char *err,
                     size_t errlen)
{
    char s1[128], s2[128];
    int t = p->name ? ir_find_tensor(g, p->name) : -1;
    if (t < 0 || !(g->tensors[t].flags & IR_T_INPUT))
        return seterr(err, errlen, -EINVAL, "model %s: cannot pin '%s': not an input of the model",
                      g->name, p->name ? p->name : "(no name)");
    const struct ir_tensor *x = &g->tensors[t];
    int64_t numel = engine_shape_numel(&p->shape);
    int integer = p->dtype == ENGINE_I32 || p->dtype == ENGINE_I64 || p->dtype == ENGINE_BOOL;
    if (p->shape.rank < 0 || p->shape.rank > ENGINE_MAX_RANK || numel < 0 ||
        !(integer || (p->dtype == ENGINE_F32 && numel <= ENGINE_MAX_PIN_FLOATS)) ||
        numel > ENGINE_MAX_PIN_ELEMS)
        return seterr(err, errlen, -EINVAL,
                      "model %s: cannot pin '%s' (%s %s): only int32/int64/bool inputs of up to %d "
                      "elements or float32 inputs of up to %d may be pinned",
                      g->name, p->name, engine_dtype_name(p->dtype), shape_s(&p->shape, s1),
                      ENGINE_MAX_PIN_ELEMS, ENGINE_MAX_PIN_FLOATS);
    if (x->dtype != p->dtype)
        return seterr(err, errlen, -EINVAL, "model %s: pin '%s' is %s, the input is %s", g->name,
                      p->name, engine_dtype_name(p->dtype), engine_dtype_name(x->dtype));
    int fits = x->shape.rank < 0 || x->shape.rank == p->shape.rank;
    for (int i = 0; fits && x->shape.rank >= 0 && i < x->shape.rank; i++)
        fits = x->shape.dims[i] < 0 || x->shape.dims[i] == p->shape.dims[i];
    if (!fits)
        return seterr(err, errlen, -EINVAL, "model %s: pin '%s' has shape %s, the model has %s",
                      g->name, p->name, shape_s(&p->shape, s1), shape_s(&x->shape, s2));
    if (!p->data || p->nbytes != (size_t)numel * engine_dtype_size(p->dtype))
        return seterr(err, errlen, -EINVAL, "model %s: pin '%s': %zu bytes of data for %s %s",
                      g->name, p->name, p->nbytes, engine_dtype_name(p->dtype),
                      shape_s(&p->shape, s1));
    return t;
}

int ir_pin_inputs(struct ir_graph *g, const struct engine_tensor *pins, int n_pins, char *err,
                  size_t errlen)
{
    if (n_pins < 0 || (n_pins && !pins))
        return seterr(err, errlen, -EINVAL, "model %s: bad pinned input list", g->name);
    for (int i = 0; i < n_pins; i++) {
        int t = check_pin(g, &pins[i], err, errlen);
        if (t < 0)
            return t;
        void *copy = malloc(pins[i].nbytes ? pins[i].nbytes : 1);
        if (!copy)
            return seterr(err, errlen, -ENOMEM, "out of memory");
        memcpy(copy, pins[i].data, pins[i].nbytes);
        ir_set_const(g, t, pins[i].dtype, &pins[i].shape, copy);
    }
    return 0;
}
