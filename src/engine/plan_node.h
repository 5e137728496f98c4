/*
 * plan_node.h — a plan node under check, for the two validators of plan nodes: plan.c (oneDNN
 * primitives) and kernel_check.c (plain-C kernels). Engine-internal.
 */
#ifndef SHMFAAS_ENGINE_PLAN_NODE_H
#define SHMFAAS_ENGINE_PLAN_NODE_H

#include "engine/plan_image.h"

struct node_ctx {
    const struct plan_view *v;
    const struct plan_node *n;
    char *err;
    size_t errlen;
};

/* Formats "model M: node N (Op): what" into err and returns code. */
int node_err(const struct node_ctx *c, int code, const char *what);
/* Input i of the node (plan_view_init checked the index). */
const struct plan_tensor *operand(const struct node_ctx *c, uint32_t i);
const struct plan_tensor *dst_of(const struct node_ctx *c);

#endif
