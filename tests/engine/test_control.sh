#!/bin/sh
# Control flow and data-dependent outputs through shmfaas-run (ops/control.c, ops/detect.c):
# every request of the models gen_control_models.py wrote matches its numpy reference with the
# If conditions fed at run time (both branches in the plan, a BRANCH node picks one) and with them
# pinned (the taken branch inlined, the other dropped); a pinned plan refuses a request whose
# condition differs; NonZero and NonMaxSuppression outputs come back with each request's count.
#   test_control.sh SHMFAAS_RUN MODELS_DIR
set -u

run=$1
dir=$2
TEST_NAME=control-test
. "$(dirname "$0")/lib.sh"

for model in if_outer if_nested if_layout select; do
    pins=--pin\ c
    [ "$model" = if_nested ] && pins="--pin c --pin d"
    k=0
    while [ -f "$dir/${model}_in$k.json" ]; do
        modes="run-time pinned"
        [ "$model" = select ] && modes=run-time
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

# a plan compiled with c pinned to true runs only that branch: c = false is refused, by name
expect 0 "" -- "$dir/if_outer.onnx" --input "$dir/if_outer_in0.json" --pin c --compile-only \
    -o "$tmp/pinned.plan"
expect 1 "input 'c' must be \[true\]" -- "$tmp/pinned.plan" --input "$dir/if_outer_in1.json"
exit $failed
