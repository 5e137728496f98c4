#!/bin/sh
# Model-match test (issue 2, acceptance 2): one zoo model through shmfaas-run against the output
# PyTorch computed when tools/zoo exported it; max|diff| must stay within 1e-4 x max|ref|.
#   test_models.sh SHMFAAS_RUN MODEL
# Runs the .onnx directly, then compiles a .plan and runs that mapped image, so both the compile
# path and the zero-copy open path are checked. The CI models (resnet18, mobilenet_v2,
# squeezenet1_1) must be in $SHMFAAS_ZOO: missing is a failure. Other models are skipped (exit 77)
# when absent; `make zoo-all` exports them.
set -eu

run=$1
model=$2
zoo=${SHMFAAS_ZOO:-zoo}
dir=$zoo/$model

if [ ! -f "$dir/model.onnx" ] || [ ! -f "$dir/input.json" ] || [ ! -f "$dir/output.json" ]; then
    case "$model" in
    resnet18 | mobilenet_v2 | squeezenet1_1)
        echo "$model: missing in $zoo (run: make zoo)" >&2
        exit 1
        ;;
    *)
        echo "$model: not in $zoo, skipped (run: make zoo-all)"
        exit 77
        ;;
    esac
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/shmfaas-models.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

echo "$model: onnx:  $run $dir/model.onnx --input $dir/input.json --compare $dir/output.json"
"$run" "$dir/model.onnx" --input "$dir/input.json" --compare "$dir/output.json"

echo "$model: plan:  $run $dir/model.onnx --compile-only -o $tmp/$model.plan -v"
"$run" "$dir/model.onnx" --compile-only -o "$tmp/$model.plan" -v
"$run" "$tmp/$model.plan" --input "$dir/input.json" --compare "$dir/output.json" -v
echo "$model: ok"
