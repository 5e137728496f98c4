#!/bin/sh
# Sequences through shmfaas-run (ops/sequence.c, tensor_json.c): a model with a sequence input
# and a sequence output runs on JSON {"sequence": [...]} inputs (the length and each element's
# shape decide the plan; the SequenceInsert position is pinned from --input) and writes the
# sequence output back as one {"sequence": [...]}; other lengths compile other plans; a
# sequence of 1025 tensors, a malformed sequence and a plan fed too few elements are refused
# with errors naming the input. Then the same model as a function (shmfaas-fn --private, the
# engine's specialising model): the JSON reply carries the sequence output, and the hostile
# sequence is a 400 naming the input.
#   test_seq_run.sh SHMFAAS_RUN FIXTURE_DIR [SHMFAAS_FN]   (gen_seq_model.py writes FIXTURE_DIR)
set -u

run=$1
fx=$2
fn_bin=${3:-}
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

# ---- the function path: one instance, two sequence lengths, the hostile body refused
if [ -n "$fn_bin" ]; then
    idle_release=0 "$fn_bin" --listen "unix:$tmp/fn.sock" --private "$model" >"$tmp/fn.log" 2>&1 &
    fn_pid=$!
    ready=""
    for _ in $(seq 300); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$tmp/fn.sock" \
            http://fn/_/ready 2>/dev/null)
        [ "$code" = 200 ] && { ready=1; break; }
        kill -0 "$fn_pid" 2>/dev/null || break
        sleep 0.1
    done
    # post BODY-FILE STATUS PATTERN WHAT: the reply must have STATUS and match PATTERN (grep)
    post() {
        code=$(curl -s -o "$tmp/reply" -w '%{http_code}' --unix-socket "$tmp/fn.sock" \
            -H 'Content-Type: application/json' --data-binary "@$1" http://fn/)
        if [ "$code" = "$2" ] && grep -q "$3" "$tmp/reply"; then
            echo "ok: function $4"
        else
            echo "FAIL: function $4: $code $(head -c 300 "$tmp/reply")"
            failed=$((failed + 1))
        fi
    }
    if [ -z "$ready" ]; then
        echo "FAIL: shmfaas-fn did not become ready: $(tail -n 5 "$tmp/fn.log")"
        failed=$((failed + 1))
    else
        post "$fx/seq_input.json" 200 "\"ys\": {\"sequence\": \[${t}\[0,1,2\]}, ${t}\[9,9,9\]}" \
            "replies with the sequence output"
        post "$tmp/one.json" 200 "\"ys\": {\"sequence\": \[${t}\[9,9,9\]}, {\"shape\": \[2,3\]" \
            "serves another sequence length"
        post "$fx/seq_hostile.json" 400 "a sequence of 1025 tensors, at most 1024" \
            "refuses 1025 elements with a 400"
    fi
    kill "$fn_pid" 2>/dev/null
    wait "$fn_pid" 2>/dev/null
fi

[ "$failed" = 0 ] && echo "seq_run: all passed"
exit "$failed"
