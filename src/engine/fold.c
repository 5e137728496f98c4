/*
 * fold.c — constant folding: every live node that can be evaluated at compile time (all inputs
 * constant, or a Shape of a known shape) is evaluated with its op's eval function (kernels.h),
 * its outputs become constants and the node dies. Shape inference already evaluated most of them
 * on the way (a Reshape needs its target shape); this pass finishes the job and marks them dead.
 */
#include "engine/ir.h"

#include "common/common.h"

#include <errno.h>

/* 1 if every output the node has is already a constant. */
static int outputs_constant(const struct ir_graph *g, const struct ir_node *n)
{
    for (int k = 0; k < n->n_out; k++)
        if (n->out[k] >= 0 && !g->tensors[n->out[k]].data)
            return 0;
    return 1;
}

static void kill_node(struct ir_graph *g, struct ir_node *n)
{
    n->dead = 1;
    for (int k = 0; k < n->n_out; k++)
        if (n->out[k] >= 0)
            g->tensors[n->out[k]].producer = -1;
}

int ir_fold_constants(struct ir_graph *g, char *err, size_t errlen)
{
    for (int i = 0; i < g->n_nodes; i++) {
        struct ir_node *n = &g->nodes[i];
        if (n->dead || !ir_node_foldable(g, n))
            continue;
        if (!outputs_constant(g, n)) {
            int rc = ir_op_find(n->op)->eval(g, n, err, errlen);
            if (rc < 0)
                return rc;
            if (rc > 0)
                continue;
        }
        kill_node(g, n);
    }
    return 0;
}
