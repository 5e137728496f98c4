#!/bin/sh
# ConvInteger's int32 output stays exact where oneDNN's int8 convolution would round it through
# float32 (sums past 2^24: the engine keeps such a ConvInteger on its own kernel), and a
# ConvInteger read only by a Cast to float32 (which rounds the same way) may use oneDNN: both
# against numpy's exact sums, at AVX2 and at the host's ISA (issue 17).
#   test_int8_exact.sh SHMFAAS_RUN
set -u
run=$1
TEST_NAME=int8-exact
. "$(dirname "$0")/lib.sh"
/usr/bin/python3 - "$tmp" <<'PY' || exit 1
import json, sys
import numpy as np, onnx
from onnx import TensorProto as T, helper as h, numpy_helper as nh
out = sys.argv[1]
c = 256
w = np.full((8, c, 3, 3), 127, np.int8)
w[0, 0, 0, 0] = 126  # sum 2304 * 255 * 127 - 255: odd, above 2^24
for name, cast in (("int32", False), ("float", True)):
    nodes = [h.make_node("Cast", ["xf"], ["x"], to=T.UINT8),
             h.make_node("ConvInteger", ["x", "w"], ["yi" if cast else "y"], kernel_shape=[3, 3])]
    if cast:
        nodes.append(h.make_node("Cast", ["yi"], ["y"], to=T.FLOAT))
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("xf", T.FLOAT, [1, c, 3, 3])],
                     [h.make_tensor_value_info("y", T.FLOAT if cast else T.INT32, [1, 8, 1, 1])],
                     [nh.from_array(w, "w")])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    m.ir_version = 7
    onnx.save(m, f"{out}/{name}.onnx")
    sums = [int((w[k].astype(np.int64) * 255).sum()) for k in range(8)]
    ref = [float(np.float32(s)) for s in sums] if cast else sums
    json.dump({"outputs": {"y": {"shape": [1, 8, 1, 1], "dtype": "float32" if cast else "int32",
                                 "data": ref}}}, open(f"{out}/{name}_ref.json", "w"))
json.dump({"inputs": {"xf": {"shape": [1, c, 3, 3], "dtype": "float32",
                             "data": [255.0] * (c * 9)}}}, open(f"{out}/in.json", "w"))
PY
for isa in AVX2 ""; do
    for name in int32 float; do
        if [ -n "$isa" ]; then
            ONEDNN_MAX_CPU_ISA=$isa "$run" "$tmp/$name.onnx" --input "$tmp/in.json" \
                --output "$tmp/out.json" >"$tmp/log" 2>&1
        else
            "$run" "$tmp/$name.onnx" --input "$tmp/in.json" --output "$tmp/out.json" >"$tmp/log" 2>&1
        fi || { fail "$name ${isa:-native}: $(cat "$tmp/log")"; continue; }
        /usr/bin/python3 -c "
import json, sys
a = json.load(open(sys.argv[1]))['outputs']['y']['data']
b = json.load(open(sys.argv[2]))['outputs']['y']['data']
sys.exit(0 if a == b else 1)" "$tmp/out.json" "$tmp/${name}_ref.json" &&
            echo "ok: $name ${isa:-native}" || fail "$name ${isa:-native}: $(cat "$tmp/out.json")"
    done
done
exit $failed
