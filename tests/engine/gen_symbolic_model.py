#!/usr/bin/python3
"""Writes the symbolic-dims fixture (run at build time by meson; issue 6).

symbolic_cnn.onnx: input "input" [batch, 3, height, width] (all three dims symbolic)
  -> Conv 3x3 (3->4, pad 1, bias) -> Relu -> GlobalAveragePool -> Flatten -> output [batch, 4]
and, computed here with numpy in float64, two cases of different shapes:
  a_input.json / a_output.json   1x3x8x8
  b_input.json / b_output.json   2x3x16x12
in the JSON tensor schema of shmfaas-run. The model fixes the channel dim (3), so 1x4x8x8 is wrong.
Usage: gen_symbolic_model.py OUT_DIR STAMP
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CASES = {"a": (1, 3, 8, 8), "b": (2, 3, 16, 12)}


def weights(rng):
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    return w, b


def model(w, b):
    nodes = [
        helper.make_node("Conv", ["input", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["output"], axis=1, name="flatten"),
    ]
    graph = helper.make_graph(
        nodes, "symbolic_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                       ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 4])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def reference(x, w, b):
    """Conv 3x3 pad 1 + bias, Relu, mean over H and W, in float64."""
    n, _, h, wd = x.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    y = np.zeros((n, w.shape[0], h, wd))
    for i in range(3):
        for j in range(3):
            patch = xp[:, :, i:i + h, j:j + wd]
            y += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j].astype(np.float64))
    y += b.astype(np.float64)[None, :, None, None]
    return np.maximum(y, 0).mean(axis=(2, 3))


def tensor_json(key, name, t):
    data = ",".join("%.9g" % v for v in t.reshape(-1))
    shape = ",".join(str(s) for s in t.shape)
    return '{"%s": {"%s": {"shape": [%s], "dtype": "float32", "data": [%s]}}}\n' % (
        key, name, shape, data)


def main(outdir, stamp):
    os.makedirs(outdir, exist_ok=True)
    rng = np.random.default_rng(6)
    w, b = weights(rng)
    onnx.save(model(w, b), os.path.join(outdir, "symbolic_cnn.onnx"))
    for case, shape in CASES.items():
        x = rng.standard_normal(shape).astype(np.float32)
        y = reference(x, w, b).astype(np.float32)
        with open(os.path.join(outdir, case + "_input.json"), "w") as f:
            f.write(tensor_json("inputs", "input", x))
        with open(os.path.join(outdir, case + "_output.json"), "w") as f:
            f.write(tensor_json("outputs", "output", y))
    with open(stamp, "w") as f:
        f.write("ok\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
