#!/bin/sh
# Symbolic input dims on the function path (issue 6): a shmfaas-fn instance with input_shape set
# gets the symbolic-dim model compiled by the store for those shapes ("MODEL?SHAPES" ref), serves
# requests of that shape with numpy's answer, refuses others naming the shape the plan expects;
# one model at two shapes is two images; they survive a store restart; --private does the same;
# without input_shape one instance serves every shape (a plan per request shape, issue 17); with
# a malformed one the instance fails at start saying why.
#   test_symbolic_fn.sh BUILD_DIR FIXTURE_DIR   (gen_symbolic_model.py writes FIXTURE_DIR)
set -u

build=$1
fx=$2
store_bin=$build/src/store/shmfaas-store
fn_bin=$build/src/fn/shmfaas-fn
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shmfaas-symfn-test.XXXXXX")
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    "$store_bin" purge --dir "$tmp/images" >/dev/null 2>&1 # a killed store's images are sealed
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
failed=0
mkdir "$tmp/models" "$tmp/images"
cp "$fx/symbolic_cnn.onnx" "$tmp/models/"

fail() {
    echo "FAIL: $*"
    failed=1
}

# start_store [--keep-images]: the first store keeps its images at its clean stop, so that the
# restart below re-adopts them (a clean stop removes them otherwise).
start_store() {
    "$store_bin" --socket "$tmp/store.sock" --dir "$tmp/images" --models "$tmp/models" \
        --budget 64Mi "$@" >>"$tmp/store.log" 2>&1 &
    store_pid=$!
    pids="$pids $store_pid"
    for _ in $(seq 100); do [ -S "$tmp/store.sock" ] && return 0; sleep 0.1; done
    fail "store did not start: $(tail -n 5 "$tmp/store.log")"
    exit 1
}

stop_store() {
    kill "$store_pid" && wait "$store_pid"
}

# start_fn NAME ENV... -- FLAGS...: an instance on $tmp/NAME.sock; waits until /_/ready is 200.
start_fn() {
    name=$1
    shift
    env_args=""
    while [ "$1" != "--" ]; do env_args="$env_args $1"; shift; done
    shift
    # shellcheck disable=SC2086
    env store_socket="$tmp/store.sock" idle_release=0 $env_args \
        "$fn_bin" --listen "unix:$tmp/$name.sock" "$@" >"$tmp/$name.log" 2>&1 &
    fn_pid=$!
    pids="$pids $fn_pid"
    for _ in $(seq 300); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$tmp/$name.sock" \
            http://fn/_/ready 2>/dev/null)
        [ "$code" = 200 ] && return 0
        kill -0 "$fn_pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# post NAME CASE: POST CASE's input to instance NAME; body in $tmp/reply, status in $code.
post() {
    code=$(curl -s -o "$tmp/reply" -w '%{http_code}' --unix-socket "$tmp/$1.sock" \
        -H 'Content-Type: application/json' --data-binary "@$fx/$2_input.json" http://fn/)
}

# matches CASE: the reply is numpy's output for CASE within 1e-4 x max|ref|.
matches() {
    /usr/bin/python3 - "$tmp/reply" "$fx/$1_output.json" <<'PY'
import json, sys
out = json.load(open(sys.argv[1]))["outputs"]["output"]
ref = json.load(open(sys.argv[2]))["outputs"]["output"]
assert out["shape"] == ref["shape"], (out["shape"], ref["shape"])
diff = max(abs(a - b) for a, b in zip(out["data"], ref["data"]))
peak = max(abs(b) for b in ref["data"])
assert diff <= 1e-4 * peak, (diff, peak)
PY
}

start_store --keep-images

# ---- two instances of one model at two shapes: two images, each serves its own shape
start_fn b input_shape=input=2x3x16x12 model=symbolic_cnn -- || fail "b did not start: $(cat "$tmp/b.log")"
start_fn a input_shape=1x3x8x8 model=symbolic_cnn -- || fail "a did not start: $(cat "$tmp/a.log")"
post b b
[ "$code" = 200 ] && matches b && echo "ok: 2x3x16x12 served" || fail "b: $code $(head -c 300 "$tmp/reply")"
post a a
[ "$code" = 200 ] && matches a && echo "ok: 1x3x8x8 served" || fail "a: $code $(head -c 300 "$tmp/reply")"
post b a
[ "$code" = 400 ] && grep -q 'shape \[1,3,8,8\], the plan expects \[2,3,16,12\]' "$tmp/reply" &&
    echo "ok: other shape refused" || fail "b given 1x3x8x8: $code $(head -c 300 "$tmp/reply")"
[ "$("$store_bin" ls --socket "$tmp/store.sock" | grep -c symbolic_cnn)" = 2 ] ||
    fail "not two images: $("$store_bin" ls --socket "$tmp/store.sock")"
grep -q "input shapes input=2x3x16x12" "$tmp/store.log" || fail "store log lacks the shapes"
"$store_bin" ls --socket "$tmp/store.sock" >"$tmp/ls"
grep -q '^symbolic_cnn?input=2x3x16x12 ' "$tmp/ls" && grep -q '^symbolic_cnn?1x3x8x8 ' "$tmp/ls" ||
    fail "ls does not tell the images apart: $(cat "$tmp/ls")"

# ---- the images survive a store restart (adopted, not discarded)
for p in $pids; do [ "$p" = "$store_pid" ] || { kill "$p" && wait "$p"; }; done
pids=$store_pid
stop_store
start_store
[ "$("$store_bin" ls --socket "$tmp/store.sock" | grep -c 'symbolic_cnn?')" = 2 ] ||
    fail "after restart: $("$store_bin" ls --socket "$tmp/store.sock"; grep discard "$tmp/store.log")"
grep -q discarded "$tmp/store.log" && fail "restart discarded: $(grep discard "$tmp/store.log")"

# ---- --private compiles in the instance for input_shape
start_fn p input_shape=input=1x3x8x8 -- --private "$tmp/models/symbolic_cnn.onnx" ||
    fail "private did not start: $(cat "$tmp/p.log")"
post p a
[ "$code" = 200 ] && matches a && echo "ok: --private served" || fail "p: $code $(head -c 300 "$tmp/reply")"

# ---- no input_shape (issue 17): one instance serves every request shape, attaching the store's
# image of each shape (MODEL?SHAPES) on its first request; a shape the model does not take is a
# 400; at most 8 shapes stay attached (LRU): the leases of dropped ones are released; at most 60
# new shapes a minute
start_fn n model=symbolic_cnn -- || fail "no input_shape: did not start: $(cat "$tmp/n.log")"
n_pid=$fn_pid
post n a
[ "$code" = 200 ] && matches a && echo "ok: per-request shape a" || fail "n a: $code $(head -c 300 "$tmp/reply")"
post n b
[ "$code" = 200 ] && matches b && echo "ok: per-request shape b" || fail "n b: $code $(head -c 300 "$tmp/reply")"
post n a
[ "$code" = 200 ] && matches a || fail "n a again: $code $(head -c 300 "$tmp/reply")"
"$store_bin" ls --socket "$tmp/store.sock" >"$tmp/ls"
grep -q '^symbolic_cnn?input=1x3x8x8 ' "$tmp/ls" && grep -q '^symbolic_cnn?input=2x3x16x12 ' "$tmp/ls" ||
    fail "per-shape images not in the store: $(cat "$tmp/ls")"
/usr/bin/python3 -c 'import json; print(json.dumps({"inputs": {"input": {"shape": [1, 4, 8, 8], "data": [1.0] * 256}}}))' >"$tmp/c_input.json"
code=$(curl -s -o "$tmp/reply" -w '%{http_code}' --unix-socket "$tmp/n.sock" \
    -H 'Content-Type: application/json' --data-binary "@$tmp/c_input.json" http://fn/)
[ "$code" = 400 ] && echo "ok: a shape the model does not take is a 400" || fail "n 1x4x8x8: $code $(head -c 300 "$tmp/reply")"
for w in 1 2 3 4 5 6 7 8 9; do
    /usr/bin/python3 -c "import json; print(json.dumps({'inputs': {'input': {'shape': [1, 3, 4, $w], 'data': [1.0] * (12 * $w)}}}))" >"$tmp/w_input.json"
    code=$(curl -s -o "$tmp/reply" -w '%{http_code}' --unix-socket "$tmp/n.sock" \
        -H 'Content-Type: application/json' --data-binary "@$tmp/w_input.json" http://fn/)
    [ "$code" = 200 ] || fail "n 1x3x4x$w: $code $(head -c 300 "$tmp/reply")"
done
leases=$("$store_bin" ls --socket "$tmp/store.sock" | awk '$1 ~ /^symbolic_cnn\?input=/ {n += $5} END {print n + 0}')
[ "$leases" -le 8 ] && echo "ok: $leases shape leases held after 11 shapes" || fail "$leases leases held: $("$store_bin" ls --socket "$tmp/store.sock")"
# issue 17: the shapes' plan parts share one weights blob, which the instance maps once
blobs=$("$store_bin" stats --socket "$tmp/store.sock" |
    /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["totals"]["blobs"])')
maps=$(grep -c '\.weights$' "/proc/$n_pid/maps")
[ "$blobs" = 1 ] && [ "$maps" = 1 ] && echo "ok: $leases shapes held, 1 weights blob in the store, mapped once by the instance" ||
    fail "weights blobs: $blobs in the store, $maps mapping(s) in the instance: $(grep weights "/proc/$n_pid/maps")"
# at most 60 new shapes a minute (each makes the store compile an image): then 429; no timing
# assumed: 130 new shapes cannot all fit in the windows they span
got429=0
for w in $(seq 10 139); do
    /usr/bin/python3 -c "import json; print(json.dumps({'inputs': {'input': {'shape': [1, 3, 2, $w], 'data': [1.0] * (6 * $w)}}}))" >"$tmp/w_input.json"
    code=$(curl -s -o "$tmp/reply" -w '%{http_code}' --unix-socket "$tmp/n.sock" \
        -H 'Content-Type: application/json' --data-binary "@$tmp/w_input.json" http://fn/)
    if [ "$code" = 429 ]; then got429=1; break; fi
    [ "$code" = 200 ] || { fail "n 1x3x2x$w: $code $(head -c 300 "$tmp/reply")"; break; }
done
[ "$got429" = 1 ] && grep -q "new input shapes in a minute" "$tmp/reply" &&
    echo "ok: new shapes per minute bounded (429 at 1x3x2x$w)" || fail "no 429 after 130 new shapes"
w=$((w - 1)) # the last shape attached is still cached: served
/usr/bin/python3 -c "import json; print(json.dumps({'inputs': {'input': {'shape': [1, 3, 2, $w], 'data': [1.0] * (6 * $w)}}}))" >"$tmp/w_input.json"
code=$(curl -s -o "$tmp/reply" -w '%{http_code}' --unix-socket "$tmp/n.sock" \
    -H 'Content-Type: application/json' --data-binary "@$tmp/w_input.json" http://fn/)
[ "$code" = 200 ] || fail "a cached shape after the 429: $code $(head -c 300 "$tmp/reply")"
kill "$fn_pid" && wait "$fn_pid"

# ---- --private without input_shape: the engine's specialising model, a plan per shape
start_fn pn -- --private "$tmp/models/symbolic_cnn.onnx" || fail "private, no input_shape: $(cat "$tmp/pn.log")"
post pn a
[ "$code" = 200 ] && matches a || fail "pn a: $code $(head -c 300 "$tmp/reply")"
post pn b
[ "$code" = 200 ] && matches b && echo "ok: --private per-request shapes" || fail "pn b: $code $(head -c 300 "$tmp/reply")"
kill "$fn_pid" && wait "$fn_pid"

# ---- --private, a shape operand that is an input (Reshape's shape): resolved per request
pin_fx=$(dirname "$fx")/pin-model
start_fn pr -- --private "$pin_fx/reshape_shape_input.onnx" || fail "private reshape: $(cat "$tmp/pr.log")"
for v in pin_input:2,3,4 pin_other:4,3,2; do
    code=$(curl -s -o "$tmp/reply" -w '%{http_code}' --unix-socket "$tmp/pr.sock" \
        -H 'Content-Type: application/json' --data-binary "@$pin_fx/${v%%:*}.json" http://fn/)
    [ "$code" = 200 ] && grep -q "\"shape\": \[${v#*:}\]" "$tmp/reply" ||
        fail "private reshape ${v#*:}: $code $(head -c 300 "$tmp/reply")"
done
[ "$failed" = 0 ] && echo "ok: --private resolves a shape operand per request"
kill "$fn_pid" && wait "$fn_pid"

# ---- a malformed input_shape, one on a compiled plan: the instance exits saying why
start_fn m input_shape=1x3xbad model=symbolic_cnn -- && fail "started with a malformed input_shape"
grep -q "input_shape=1x3xbad" "$tmp/m.log" || fail "error does not name input_shape: $(cat "$tmp/m.log")"
touch "$tmp/x.plan"
start_fn q input_shape=1x3x8x8 -- --private "$tmp/x.plan" && fail "input_shape accepted for a plan"
grep -q "compiled plan" "$tmp/q.log" || fail "plan error: $(cat "$tmp/q.log")"

[ "$failed" = 0 ] && echo "symbolic fn: ok"
exit $failed
