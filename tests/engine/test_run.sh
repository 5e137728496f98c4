#!/bin/sh
# shmfaas-run's command line: exit codes, error messages, outputs file, --bench line, --compare
# verdicts, plan files and the thread-count check, on the zoo's tiny known-answer model.
#   test_run.sh SHMFAAS_RUN
set -u

run=$1
zoo=${SHMFAAS_ZOO:-zoo}
source_root=${SHMFAAS_SOURCE:-.}
TEST_NAME=run-test
. "$(dirname "$0")/lib.sh"

# The known-answer model: from the zoo, else exported here (a second, no weights to speak of).
ka=$zoo/known_answer
if [ ! -f "$ka/model.onnx" ]; then
    /usr/bin/python3 "$source_root/tools/zoo" --out "$tmp/zoo" --models known_answer || exit 1
    ka=$tmp/zoo/known_answer
fi

# ---- usage errors: exit 2
expect 2 "no model given" --
expect 2 "one model" -- a.onnx b.onnx
expect 2 "--bench wants an integer" -- --bench 0 "$ka/model.onnx"
expect 2 "--threads wants an integer" -- --threads x "$ka/model.onnx"
expect 2 "needs -o" -- --compile-only "$ka/model.onnx"
expect 2 "-o is the image file" -- -o "$tmp/x.plan" "$ka/model.onnx"
expect 2 "usage" -- --no-such-option "$ka/model.onnx"

# ---- errors: exit 1 with a message, never a crash
expect 1 "missing.onnx" -- "$tmp/missing.onnx"
printf 'garbage, not protobuf' >"$tmp/garbage.onnx"
expect 1 "shmfaas-run: " -- "$tmp/garbage.onnx"
printf 'garbage, not a plan image at all, and quite short' >"$tmp/garbage.plan"
expect 1 "shmfaas-run: " -- "$tmp/garbage.plan"
printf '{"inputs": {"input": {"shape": [1,3], "data": [1,2]}}}' >"$tmp/bad.json"
expect 1 "input 'input': shape \[1,3\] has 3 elements, data has 2" -- "$ka/model.onnx" --input "$tmp/bad.json"
printf '{"inputs": ' >"$tmp/truncated.json"
expect 1 "invalid JSON" -- "$ka/model.onnx" --input "$tmp/truncated.json"

# ---- running: outputs file, zeros without --input, bench line, compare verdicts
expect 0 "" -- "$ka/model.onnx" --input "$ka/input.json" --output "$tmp/out.json"
grep -q '"outputs": {"output": {"shape": \[1,10\]' "$tmp/out.json" || fail "out.json: $(head -c 200 "$tmp/out.json")"
expect 0 '"outputs"' -- "$ka/model.onnx"
expect 0 "^p50 [0-9.]+ ms  p99 [0-9.]+ ms$" -- "$ka/model.onnx" --bench 3
expect 0 "max\|diff\| " -- "$ka/model.onnx" --input "$ka/input.json" --compare "$ka/output.json"
sed 's/"data": \[/"data": [5,/; s/,[^,]*\]}}}/]}}}/' "$ka/output.json" >"$tmp/wrong.json"
expect 3 "outputs differ from" -- "$ka/model.onnx" --input "$ka/input.json" --compare "$tmp/wrong.json"

# ---- plan files: compile once, map and run; refused for another thread count
expect 0 "compile [0-9.]+ ms  image" -- "$ka/model.onnx" --compile-only -o "$tmp/ka.plan" -v
[ -f "$tmp/ka.plan" ] || fail "no plan written"
expect 2 "compiles an ONNX model" -- "$tmp/ka.plan" --compile-only -o "$tmp/again.plan"
[ -f "$tmp/again.plan" ] && fail "--compile-only on a plan wrote a file"
expect 0 "arena .* weights" -- "$tmp/ka.plan" --input "$ka/input.json" --compare "$ka/output.json" -v
expect 1 "compiled for 1 thread" -- "$tmp/ka.plan" --threads 2

# The known answer itself: a solid red image makes class 2 ("red") win.
"$run" "$tmp/ka.plan" --input "$ka/input.json" --output "$tmp/red.json" >/dev/null 2>&1
/usr/bin/python3 - "$tmp/red.json" <<'PY' || fail "red image: class red does not win"
import json, sys
data = json.load(open(sys.argv[1]))["outputs"]["output"]["data"]
sys.exit(0 if max(range(len(data)), key=data.__getitem__) == 2 else 1)
PY

exit $failed
