#!/usr/bin/python3
"""Tiny ONNX models for the gateway tests: fast to compile and to run.

usage: gen_models.py OUTDIR   → OUTDIR/tiny_a.onnx, OUTDIR/tiny_b.onnx, OUTDIR/input.json

tiny_a: Conv(3→4, 3x3) → Relu → MaxPool 2x2 → GlobalAveragePool → Flatten → Gemm(4→3)
tiny_b: Conv(3→4, 1x1) → Relu → Add(skip of itself) → GlobalAveragePool → Flatten → Gemm(4→2)
Both take input "x" of shape [1, 3, 8, 8] float32; weights are fixed (seeded), so answers are stable.
"""
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def init(name, arr):
    return numpy_helper.from_array(arr.astype(np.float32), name)


def tiny_a(rng):
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["p1"], ["g1"]),
        helper.make_node("Flatten", ["g1"], ["f1"], axis=1),
        helper.make_node("Gemm", ["f1", "w2", "b2"], ["y"], transB=1),
    ]
    inits = [init("w1", rng.standard_normal((4, 3, 3, 3)) * 0.5), init("b1", rng.standard_normal(4)),
             init("w2", rng.standard_normal((3, 4))), init("b2", rng.standard_normal(3))]
    return graph("tiny_a", nodes, inits, 3)


def tiny_b(rng):
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Add", ["r1", "r1"], ["a1"]),
        helper.make_node("GlobalAveragePool", ["a1"], ["g1"]),
        helper.make_node("Flatten", ["g1"], ["f1"], axis=1),
        helper.make_node("Gemm", ["f1", "w2", "b2"], ["y"], transB=1),
    ]
    inits = [init("w1", rng.standard_normal((4, 3, 1, 1))), init("b1", rng.standard_normal(4)),
             init("w2", rng.standard_normal((2, 4))), init("b2", rng.standard_normal(2))]
    return graph("tiny_b", nodes, inits, 2)


def graph(name, nodes, inits, n_out):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n_out])
    g = helper.make_graph(nodes, name, [x], [y], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="shmfaas-tests")
    m.ir_version = 7
    onnx.checker.check_model(m)
    return m


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(5)
    onnx.save(tiny_a(rng), os.path.join(out, "tiny_a.onnx"))
    onnx.save(tiny_b(rng), os.path.join(out, "tiny_b.onnx"))
    x = np.linspace(-1, 1, 3 * 8 * 8, dtype=np.float32).reshape(1, 3, 8, 8)
    with open(os.path.join(out, "input.json"), "w") as f:
        json.dump({"inputs": {"x": {"shape": [1, 3, 8, 8], "data": x.flatten().tolist()}}}, f)


if __name__ == "__main__":
    main()
