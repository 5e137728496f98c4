#!/bin/sh
# shmfaas-run --pin: a model whose Reshape takes its shape from a graph input runs on --input's
# values without a pin (the engine pins the shape operand for the run: -v says so), but a
# --compile-only is refused without a pin, with advice naming the --pin that would compile it
# (no plan file is pinned silently; a Range needing three pins at once gets all three named);
# --pin shape compiles it for --input's value, -v says the input is pinned, and a plan compiled
# that way refuses a run with another shape value, naming the pinned value.
#   test_pin_run.sh SHMFAAS_RUN FIXTURE_DIR   (gen_pin_model.py writes FIXTURE_DIR)
set -u

run=$1
fx=$2
model=$fx/reshape_shape_input.onnx
TEST_NAME=pin-test
. "$(dirname "$0")/lib.sh"

expect 1 "input 1 must be a constant.*add --pin shape" -- \
    "$model" --input "$fx/pin_input.json" --compile-only -o "$tmp/none.plan"
[ ! -e "$tmp/none.plan" ] || fail "a refused compile left $tmp/none.plan"
expect 0 '"shape": \[2,3,4\].*"data": \[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23\]' -- \
    "$model" --input "$fx/pin_input.json" --pin shape
expect 0 "input shape int64 \[3\] pinned" -- "$model" --input "$fx/pin_input.json" --pin shape -v
expect 0 "" -- "$model" --input "$fx/pin_input.json" --pin shape --compile-only -o "$tmp/r.plan"
expect 1 "input 'shape' must be \[2, 3, 4\] \(the plan was compiled for these values\)" -- \
    "$tmp/r.plan" --input "$fx/pin_other.json"
expect 0 '"shape": \[2,3,4\]' -- "$tmp/r.plan" --input "$fx/pin_input.json"
# a run resolves the shape operand from --input by itself
expect 0 '"shape": \[4,3,2\]' -- "$model" --input "$fx/pin_other.json"
expect 0 "input shape int64 \[3\] pinned" -- "$model" --input "$fx/pin_other.json" -v
expect 0 '"y": \{"shape": \[2\], "dtype": "int64", "data": \[10,7\]' -- "$fx/range_inputs.onnx" \
    --input "$fx/range_input.json"
# a Range whose three bounds all are inputs: no single pin compiles it, the three together do
expect 1 "add --pin start --pin limit --pin delta" -- \
    "$fx/range_inputs.onnx" --input "$fx/range_input.json" --compile-only -o "$tmp/range.plan"
expect 0 '"y": \{"shape": \[2\], "dtype": "int64", "data": \[10,7\]' -- "$fx/range_inputs.onnx" \
    --input "$fx/range_input.json" --pin start --pin limit --pin delta
expect 1 "has no input named nope" -- "$model" --input "$fx/pin_input.json" --pin nope
expect 2 "needs an .onnx model and --input" -- "$model" --pin shape
expect 1 "cannot pin 'x'.*only int32/int64/bool.*or float32 inputs of up to 16" -- "$model" --input "$fx/pin_input.json" --pin x

[ "$failed" = 0 ] && echo "pin_run: all passed"
exit "$failed"
