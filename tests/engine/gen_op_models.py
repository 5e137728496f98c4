#!/usr/bin/python3
"""Writes the backend's generated test models (run at build time by meson).

big_weights.onnx: ~73 MiB of weights in one Conv and one Gemm, for the zero-copy test:
  x[1,256,8,8] -> Conv 3x3 (256->1024, pad 1, bias) -> Relu -> Flatten -> Gemm (65536->256)
  -> Relu -> y[1,256]
Usage: gen_op_models.py OUT_DIR STAMP
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def big_weights(path):
    rng = np.random.default_rng(7)
    w = (rng.standard_normal((1024, 256, 3, 3), dtype=np.float32) * 0.02).astype(np.float32)
    b = (rng.standard_normal(1024, dtype=np.float32) * 0.1).astype(np.float32)
    gw = (rng.standard_normal((256, 65536), dtype=np.float32) * 0.004).astype(np.float32)
    gb = (rng.standard_normal(256, dtype=np.float32) * 0.1).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["f"], axis=1, name="flatten"),
        helper.make_node("Gemm", ["f", "gw", "gb"], ["g"], transB=1, name="fc"),
        helper.make_node("Relu", ["g"], ["y"], name="relu_out"),
    ]
    graph = helper.make_graph(
        nodes, "big_weights",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 256, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 256])],
        [numpy_helper.from_array(a, n) for a, n in ((w, "w"), (b, "b"), (gw, "gw"), (gb, "gb"))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, path)


def main():
    out, stamp = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    big_weights(os.path.join(out, "big_weights.onnx"))
    with open(stamp, "w") as f:
        f.write("ok\n")


if __name__ == "__main__":
    main()
