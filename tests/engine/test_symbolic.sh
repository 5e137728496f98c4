#!/bin/sh
# Symbolic input dims (issue 6): a model with input [batch, 3, height, width] compiles for the
# shapes of the input JSON or of --shape (the engine's compile option), matches numpy's reference
# at two different shapes, records the shapes in the plan, and a run with other shapes fails with
# an error naming the shapes the plan expects.
#   test_symbolic.sh SHMFAAS_RUN FIXTURE_DIR   (gen_symbolic_model.py writes FIXTURE_DIR)
set -u

run=$1
fx=$2
model=$fx/symbolic_cnn.onnx
TEST_NAME=symbolic-test
. "$(dirname "$0")/lib.sh"

# ---- without concrete shapes the compile is refused, naming the dim and how to give it
expect 1 "input 'input' has symbolic dim 0 in \[-1,3,-1,-1\].*--shape" -- \
    "$model" --compile-only -o "$tmp/none.plan"
[ ! -e "$tmp/none.plan" ] || fail "a refused compile left $tmp/none.plan"

# ---- shapes from the input JSON: two different shapes, both match the reference
expect 0 "rel " -- "$model" --input "$fx/a_input.json" --compare "$fx/a_output.json"
expect 0 "rel " -- "$model" --input "$fx/b_input.json" --compare "$fx/b_output.json"

# ---- a plan compiled from the JSON's shapes records them and refuses others
expect 0 "" -- "$model" --input "$fx/a_input.json" --compile-only -o "$tmp/a.plan"
expect 0 "input input float32 \[1,3,8,8\]" -- "$tmp/a.plan" --input "$fx/a_input.json" \
    --compare "$fx/a_output.json" -v
expect 1 "input input: shape \[2,3,16,12\], the plan expects \[1,3,8,8\]" -- \
    "$tmp/a.plan" --input "$fx/b_input.json"

# ---- shapes from the compile option (--shape), with and without the input's name
expect 0 "" -- "$model" --shape input=2x3x16x12 --compile-only -o "$tmp/b.plan"
expect 0 "input input float32 \[2,3,16,12\]" -- "$tmp/b.plan" --input "$fx/b_input.json" \
    --compare "$fx/b_output.json" -v
expect 1 "input input: shape \[1,3,8,8\], the plan expects \[2,3,16,12\]" -- \
    "$tmp/b.plan" --input "$fx/a_input.json"
expect 0 "rel " -- "$model" --shape 1x3x8x8 --input "$fx/a_input.json" --compare "$fx/a_output.json"
# --shape decides over the JSON: the run then fails, naming the compiled shape
expect 1 "shape \[1,3,8,8\], the plan expects \[1,3,9,8\]" -- \
    "$model" --shape input=1x3x9x8 --input "$fx/a_input.json"
# the plan's zeros run needs no --input: its shapes are concrete now
expect 0 "" -- "$tmp/b.plan" --output "$tmp/zeros.json"
grep -q '"shape": \[2,4\]' "$tmp/zeros.json" || fail "zeros run output: $(head -c 200 "$tmp/zeros.json")"

# ---- wrong shapes: a dim the model fixes, an unknown input, malformed --shape, --shape on a plan
expect 1 "shape \[1,4,8,8\] given, but the model fixes \[-1,3,-1,-1\]" -- \
    "$model" --shape input=1x4x8x8 --compile-only -o "$tmp/c.plan"
expect 1 "rank|shape \[1,3,8\] given, model has" -- "$model" --shape input=1x3x8 \
    --compile-only -o "$tmp/c.plan"
expect 1 "'nosuch', which is not an input of the model" -- \
    "$model" --shape nosuch=1x3x8x8 --compile-only -o "$tmp/c.plan"
for bad in "input=" "1x" "x1" "1x0" "1x-3" "=1x3" "1,3" "1x2x3x4x5x6x7x8x9" "99999999999"; do
    expect 2 "--shape .*(want|empty|name)" -- "$model" --shape "$bad" --compile-only -o "$tmp/c.plan"
done
expect 2 "--shape is a compile option" -- "$tmp/b.plan" --shape 1x3x8x8

[ "$failed" = 0 ] && echo "symbolic: ok"
exit $failed
