#!/bin/sh
# Model-match test (issue 2 acceptance 2, issue 6 acceptance 1): zoo models through shmfaas-run
# against the output PyTorch computed when tools/zoo exported them; max|diff| must stay within
# 1e-4 x max|ref|.
#   test_models.sh SHMFAAS_RUN MODEL...
# For each model it runs the .onnx directly (compile in process, --bench for p50), then compiles a
# .plan and runs that mapped image, so both the compile path and the zero-copy open path are
# checked; at the end it prints one table row per model:
#   model, opset, nodes, compile ms, p50 ms, max|diff|/max|ref|
# A model must be in $SHMFAAS_ZOO when it is a CI model (resnet18, mobilenet_v2, squeezenet1_1) or
# listed in $ZOO_MODELS (the Makefile exports its quick set): missing is then a failure. Other
# models are skipped when absent (`make zoo-all` exports them). Exit 77 when every model skipped.
# BENCH_RUNS (default 5) sets the timed runs behind p50.
set -u

run=$1
shift
zoo=${SHMFAAS_ZOO:-zoo}
runs=${BENCH_RUNS:-5}
required=",resnet18,mobilenet_v2,squeezenet1_1,${ZOO_MODELS:-},"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/shmfaas-models.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

failed=0
ran=0
printf '%-26s %5s %6s %11s %9s %18s  %s\n' model opset nodes "compile ms" "p50 ms" \
    "max|diff|/max|ref|" result >"$tmp/table"

row() { # model opset nodes compile p50 rel result
    printf '%-26s %5s %6s %11s %9s %18s  %s\n' "$@" >>"$tmp/table"
}

nodes() {
    /usr/bin/python3 -c 'import onnx, sys
print(len(onnx.load(sys.argv[1], load_external_data=False).graph.node))' "$1" 2>/dev/null || echo "?"
}

# Field after a label in a log line: field LOG "compile" -> the number after "compile ".
field() {
    sed -n "s/.*$2 \([0-9.e+-]*\).*/\1/p" "$1" | head -n 1
}

check_model() {
    model=$1
    dir=$zoo/$model
    log=$tmp/$model.log
    if [ ! -f "$dir/model.onnx" ] || [ ! -f "$dir/input.json" ] || [ ! -f "$dir/output.json" ]; then
        case "$required" in
        *",$model,"*)
            echo "$model: missing in $zoo (run: make zoo)" >&2
            row "$model" - - - - - "MISSING (make zoo)"
            failed=1
            ;;
        *)
            echo "$model: not in $zoo, skipped (run: make zoo-all)"
            row "$model" - - - - - "skipped (make zoo-all)"
            ;;
        esac
        return
    fi
    ran=1
    opset=$(sed -n 's/.*"opset": *\([0-9]*\).*/\1/p' "$dir/meta.json" 2>/dev/null)
    echo "$model: onnx:  $run $dir/model.onnx --input $dir/input.json --compare $dir/output.json --bench $runs -v"
    if ! "$run" "$dir/model.onnx" --input "$dir/input.json" --compare "$dir/output.json" \
        --bench "$runs" -v >"$log" 2>&1; then
        cat "$log"
        row "$model" "${opset:-?}" "$(nodes "$dir/model.onnx")" - - "$(field "$log" rel)" FAIL
        failed=1
        return
    fi
    cat "$log"
    echo "$model: plan:  $run $dir/model.onnx --compile-only -o $tmp/$model.plan"
    if ! "$run" "$dir/model.onnx" --compile-only -o "$tmp/$model.plan" ||
        ! "$run" "$tmp/$model.plan" --input "$dir/input.json" --compare "$dir/output.json"; then
        row "$model" "${opset:-?}" "$(nodes "$dir/model.onnx")" "$(field "$log" compile)" \
            "$(field "$log" p50)" "$(field "$log" rel)" "FAIL (plan)"
        failed=1
        rm -f "$tmp/$model.plan"
        return
    fi
    rm -f "$tmp/$model.plan"
    row "$model" "${opset:-?}" "$(nodes "$dir/model.onnx")" "$(field "$log" compile)" \
        "$(field "$log" p50)" "$(field "$log" rel)" ok
    echo "$model: ok"
}

for m in "$@"; do
    check_model "$m"
done
echo
cat "$tmp/table"
[ "$failed" = 0 ] || exit 1
[ "$ran" = 1 ] || exit 77
exit 0
