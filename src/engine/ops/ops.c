/*
 * ops/ops.c — the op table: one row per supported ONNX op, expanded from ops.def.
 *
 * Import asks it whether an op exists and from which opset (ir_op_find), shape inference and
 * folding call its infer and eval, the compiler its lower. Every other per-op table is derived
 * from ops.def, so a forgotten row is a build error, never a silent gap.
 */
#include "engine/ops/op.h"

enum ir_op_id {
#define OP(name, since, legacy, infer, eval, lower) IR_OP_##name,
#include "engine/ops/ops.def"
#undef OP
    IR_OP_COUNT
};

static const struct ir_op_def ops[] = {
#define OP(name, since_, legacy_, infer_, eval_, lower_)                                           \
    [IR_OP_##name] = {.op = #name,                                                                 \
                      .since = since_,                                                             \
                      .legacy = IR_LEGACY_##legacy_,                                               \
                      .infer = infer_,                                                             \
                      .eval = eval_,                                                               \
                      .lower = lower_},
#include "engine/ops/ops.def"
#undef OP
};

/* A row listed twice is a build error (its enumerator is redeclared); none is left out: */
_Static_assert(ARRAY_LEN(ops) == IR_OP_COUNT, "one table row per ops.def row");

const struct ir_op_def *ir_op_find(const char *op)
{
    for (size_t i = 0; i < ARRAY_LEN(ops); i++)
        if (strcmp(ops[i].op, op) == 0)
            return &ops[i];
    return NULL;
}
