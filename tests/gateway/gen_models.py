#!/usr/bin/python3
"""Tiny ONNX models for the gateway tests: fast to compile and to run.

usage: gen_models.py OUTDIR   → OUTDIR/{tiny_a,tiny_b,wide}.onnx, OUTDIR/{input,input_wide}.json

tiny_a: Conv(3→4, 3x3) → Relu → MaxPool 2x2 → GlobalAveragePool → Flatten → Gemm(4→3)
tiny_b: Conv(3→4, 1x1) → Relu → Add(skip of itself) → GlobalAveragePool → Flatten → Gemm(4→2)
Both take input "x" of shape [1, 3, 8, 8] float32; weights are fixed (seeded), so answers are stable.
wide: Conv(3→64, 3x3, pad 1) → Relu on [1, 3, 64, 64]: a ~3 MB JSON reply, to see it streamed.
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


def wide(rng):
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["y"])]
    inits = [init("w1", rng.standard_normal((64, 3, 3, 3))), init("b1", rng.standard_normal(64))]
    return graph("wide", nodes, inits, None, [1, 3, 64, 64], [1, 64, 64, 64])


def graph(name, nodes, inits, n_out, in_shape=(1, 3, 8, 8), out_shape=None):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape or [1, n_out])
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
    onnx.save(wide(rng), os.path.join(out, "wide.onnx"))
    for fname, shape in (("input.json", [1, 3, 8, 8]), ("input_wide.json", [1, 3, 64, 64])):
        x = np.linspace(-1, 1, int(np.prod(shape)), dtype=np.float32)
        with open(os.path.join(out, fname), "w") as f:
            json.dump({"inputs": {"x": {"shape": shape, "data": x.tolist()}}}, f)


if __name__ == "__main__":
    main()
