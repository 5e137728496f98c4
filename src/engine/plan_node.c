/*
 * plan_node.c — a plan node under check: its operands and errors that name it (plan_node.h).
 */
#include "common/common.h"
#include "engine/plan_node.h"

int node_err(const struct node_ctx *c, int code, const char *what)
{
    return seterr(c->err, c->errlen, code, "model %s: node %s (%s): %s",
                  plan_str(c->v, c->v->h->model_name), plan_str(c->v, c->n->name),
                  plan_str(c->v, c->n->onnx_op), what);
}

const struct plan_tensor *operand(const struct node_ctx *c, uint32_t i)
{
    return &c->v->tensors[plan_input(c->v, c->n, i)];
}

const struct plan_tensor *dst_of(const struct node_ctx *c)
{
    return &c->v->tensors[c->n->out];
}
