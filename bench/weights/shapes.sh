#!/bin/sh
# bench/weights/shapes.sh STORE_BIN MODEL.onnx INPUT SHAPE... — issue 17: the store's resident
# bytes as one model is prepared at each shape in turn (MODEL?INPUT=SHAPE), one line per shape,
# then the STATS blob figures. Run it with the store before and after the weights split to
# compare (docs/models.md "Memory: weights per shape").
set -eu
store=$1 model=$2 input=$3
shift 3
tmp=$(mktemp -d /dev/shm/shmfaas-bench-weights-XXXXXX)
mkdir "$tmp/models"
cp "$model" "$tmp/models/m.onnx"
"$store" --socket "$tmp/s.sock" --dir "$tmp/images" --models "$tmp/models" --budget 1GiB \
    --huge-pages off --log-level warn &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do [ -S "$tmp/s.sock" ] && break; sleep 0.05; done
total() { "$store" stats --socket "$tmp/s.sock" | /usr/bin/python3 -c "import json,sys; t=json.load(sys.stdin)['totals']; print(t['$1'] if '$1' in t else 0)"; }
for shape in "$@"; do
    "$store" prepare "m?$input=$shape" --socket "$tmp/s.sock" >/dev/null
    echo "$shape resident_bytes $(total resident_bytes) models $(total resident_models) blobs $(total blobs) blob_bytes $(total blob_bytes)"
done
