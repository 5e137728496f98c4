#!/bin/sh
# Sequences through shmfaas-run (ops/sequence.c, tensor_json.c): a model with a sequence input
# and a sequence output runs on JSON {"sequence": [...]} inputs (the length and each element's
# shape decide the plan; the SequenceInsert position is pinned from --input) and writes the
# sequence output back as one {"sequence": [...]}; other lengths compile other plans; a
# sequence of 1025 tensors, a malformed sequence and a plan fed too few elements are refused
# with errors naming the input.
#   test_seq_run.sh SHMFAAS_RUN FIXTURE_DIR   (gen_seq_model.py writes FIXTURE_DIR)
set -u

run=$1
fx=$2
model=$fx/seq_io.onnx
TEST_NAME=seq-test
. "$(dirname "$0")/lib.sh"

t='{"shape": \[1,3\], "dtype": "float32", "data": '
expect 0 "\"ys\": \{\"sequence\": \[${t}\[0,1,2\]\}, ${t}\[9,9,9\]\}, \{\"shape\": \[2,3\]" -- \
    "$model" --input "$fx/seq_input.json"
expect 0 '"cat": \{"shape": \[3,3\], "dtype": "float32", "data": \[0,1,2,3,4,5,6,7,8\]' -- \
    "$model" --input "$fx/seq_input.json"
expect 0 "rel 0 " -- "$model" --input "$fx/seq_input.json" --compare "$fx/seq_expected.json"
cat >"$tmp/one.json" <<'JSON'
{"inputs": {"xs": {"sequence": [{"shape": [2, 3], "data": [1, 2, 3, 4, 5, 6]}]},
            "pos": {"shape": [], "dtype": "int64", "data": [0]}}}
JSON
expect 0 "\"ys\": \{\"sequence\": \[${t}\[9,9,9\]\}, \{\"shape\": \[2,3\], \"dtype\": \"float32\", \"data\": \[1,2,3,4,5,6\]\}\]\}" -- \
    "$model" --input "$tmp/one.json"
expect 1 "input 'xs': a sequence of 1025 tensors, at most 1024" -- \
    "$model" --input "$fx/seq_hostile.json"
cat >"$tmp/bad.json" <<'JSON'
{"inputs": {"xs": {"sequence": {"shape": [1, 3], "data": [1, 2, 3]}},
            "pos": {"shape": [], "dtype": "int64", "data": [0]}}}
JSON
expect 1 "input 'xs': \"sequence\" must be an array of tensors" -- "$model" --input "$tmp/bad.json"
cat >"$tmp/extra.json" <<'JSON'
{"inputs": {"xs": {"sequence": [], "shape": [1]}, "pos": {"shape": [], "dtype": "int64", "data": [0]}}}
JSON
expect 1 "input 'xs': a sequence or optional has only the field" -- "$model" --input "$tmp/extra.json"
# a plan compiled for two elements refuses a request of one
expect 0 "" -- "$model" --input "$fx/seq_input.json" --pin pos --compile-only -o "$tmp/two.plan"
expect 1 "input xs\[0\]: shape \[2,3\], the plan expects \[1,3\]" -- "$tmp/two.plan" \
    --input "$tmp/one.json"
# without a length the compile says how to give one
expect 1 "input 'xs' is a sequence: give its length as a shape 'xs=L'" -- "$model" --compile-only \
    -o "$tmp/none.plan"

[ "$failed" = 0 ] && echo "seq_run: all passed"
exit "$failed"
