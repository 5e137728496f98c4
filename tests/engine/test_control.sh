#!/bin/sh
# Control flow and data-dependent outputs through shmfaas-run (ops/control.c, ops/detect.c):
# every request of the models gen_control_models.py wrote matches its numpy reference with the
# If conditions fed at run time (both branches in the plan, a BRANCH node picks one) and with them
# pinned (the taken branch inlined, the other dropped); a pinned plan refuses a request whose
# condition differs; NonZero and NonMaxSuppression outputs come back with each request's count.
# Loops (ops/loop.c): a while loop whose scan output has each request's iteration count, a trip
# count fed per request, outer-scope reads with a nested If and Loop, Scans, a list appended to
# per iteration (PyTorch's export: a carried sequence, run as a scan output), a Slice at the
# iteration number (refused at run time past the end of its input); a constant trip count
# over ENGINE_LOOP_MAX_ITER is refused at compile time, one fed at run time when the run gets there.
#   test_control.sh SHMFAAS_RUN MODELS_DIR
set -u

run=$1
dir=$2
TEST_NAME=control-test
. "$(dirname "$0")/lib.sh"

for model in if_outer if_nested if_layout select loop_while loop_zero loop_forever loop_scan loop_outer scan_rnn loop_append; do
    pins=--pin\ c
    [ "$model" = if_nested ] && pins="--pin c --pin d"
    k=0
    while [ -f "$dir/${model}_in$k.json" ]; do
        modes="run-time pinned"
        case $model in select | loop* | scan*) modes=run-time ;; esac
        for mode in $modes; do
            set -- "$dir/$model.onnx" --input "$dir/${model}_in$k.json" \
                --compare "$dir/${model}_out$k.json"
            # shellcheck disable=SC2086 # $pins is two or four words on purpose
            [ $mode = pinned ] && set -- "$@" $pins
            expect 0 "max\|diff\|" -- "$@"
        done
        k=$((k + 1))
    done
    [ $k -ge 3 ] || fail "$model: only $k requests"
done

# a slice at the iteration number: within x for 5 iterations, past its end at the sixth
for k in 0 1; do
    expect 0 "max\|diff\|" -- "$dir/loop_slice.onnx" --input "$dir/loop_slice_in$k.json" \
        --compare "$dir/loop_slice_out$k.json"
done
expect 1 "Slice.*out of range" -- "$dir/loop_slice.onnx" --input "$dir/loop_slice_in2.json"

# a plan compiled with c pinned to true runs only that branch: c = false is refused, by name
expect 0 "" -- "$dir/if_outer.onnx" --input "$dir/if_outer_in0.json" --pin c --compile-only \
    -o "$tmp/pinned.plan"
expect 1 "input 'c' must be \[true\]" -- "$tmp/pinned.plan" --input "$dir/if_outer_in1.json"
# the while loop's scan output has as many rows as the request iterated (1 here)
expect 0 '"trace": \{"shape": \[1,3\]' -- "$dir/loop_while.onnx" --input "$dir/loop_while_in1.json"
expect 1 "Loop: trip count 2097152 over the bound of 1048576 \(ENGINE_LOOP_MAX_ITER\)" -- \
    "$dir/loop_big.onnx" --input "$dir/loop_big_in0.json"
expect 1 "Loop: trip count 2097152 over the bound of 1048576 iterations" -- \
    "$dir/loop_bound.onnx" --input "$dir/loop_bound_in0.json"
expect 0 "max\|diff\|" -- "$dir/loop_bound.onnx" --input "$dir/loop_bound_in1.json" \
    --compare "$dir/loop_bound_out1.json"
# nested loops multiply: one bound for all the iterations of a run
expect 1 "Loop: more than 67108864 loop iterations in one run" -- "$dir/loop_nested.onnx" \
    --input "$dir/loop_nested_in0.json"
exit $failed
