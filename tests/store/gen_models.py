#!/usr/bin/python3
"""Small ONNX models for the store tests, written into OUTDIR.

gemm_a/b/c: y = Gemm(x[1,1024], W[1024,1024]) + Relu: 4 MiB of weights each, different
random bytes, so three distinct identities of about the same image size (the budget tests).
cnn: Conv -> Relu -> MaxPool -> GlobalAveragePool -> Flatten -> Gemm, a small CNN.
Only ops the engine supports. Deterministic: same bytes on every run.
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def save(model, path):
    onnx.checker.check_model(model)
    with open(path, "wb") as f:
        f.write(model.SerializeToString())


def gemm_model(seed, n=1024):
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.standard_normal((n, n)).astype(np.float32) * 0.01, "W")
    b = numpy_helper.from_array(rng.standard_normal(n).astype(np.float32), "B")
    nodes = [
        helper.make_node("Gemm", ["x", "W", "B"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, f"gemm{seed}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])],
        initializer=[w, b])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def cnn_model():
    rng = np.random.default_rng(7)
    conv_w = numpy_helper.from_array(rng.standard_normal((16, 3, 3, 3)).astype(np.float32), "cw")
    conv_b = numpy_helper.from_array(rng.standard_normal(16).astype(np.float32), "cb")
    fc_w = numpy_helper.from_array(rng.standard_normal((10, 16)).astype(np.float32), "fw")
    fc_b = numpy_helper.from_array(rng.standard_normal(10).astype(np.float32), "fb")
    nodes = [
        helper.make_node("Conv", ["x", "cw", "cb"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["p"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        initializer=[conv_w, conv_b, fc_w, fc_b])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def dyn_cnn_model():
    """A CNN with symbolic batch and spatial dims (issue 17: attached at several shapes, every
    shape's plan part shares one weights blob): about 1.2 MiB of weights."""
    rng = np.random.default_rng(17)
    w1 = numpy_helper.from_array(rng.standard_normal((64, 3, 3, 3)).astype(np.float32) * 0.1, "w1")
    b1 = numpy_helper.from_array(rng.standard_normal(64).astype(np.float32) * 0.1, "b1")
    w2 = numpy_helper.from_array(rng.standard_normal((128, 64, 3, 3)).astype(np.float32) * 0.05,
                                 "w2")
    b2 = numpy_helper.from_array(rng.standard_normal(128).astype(np.float32) * 0.1, "b2")
    fw = numpy_helper.from_array(rng.standard_normal((1024, 128)).astype(np.float32) * 0.05, "fw")
    fb = numpy_helper.from_array(rng.standard_normal(1024).astype(np.float32) * 0.1, "fb")
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "dyn_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1024])],
        initializer=[w1, b1, w2, b2, fw, fb])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def main():
    out = sys.argv[1]
    for i, name in enumerate(["gemm_a", "gemm_b", "gemm_c"]):
        save(gemm_model(i + 1), f"{out}/{name}.onnx")
    save(cnn_model(), f"{out}/cnn.onnx")
    save(dyn_cnn_model(), f"{out}/dyn_cnn.onnx")


if __name__ == "__main__":
    main()
