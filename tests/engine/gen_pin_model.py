#!/usr/bin/python3
"""Writes the value-pinned-input fixture (run at build time by meson).

reshape_shape_input.onnx: inputs "x" float32 [24] and "shape" int64 [3] -> Reshape(x, shape) ->
  "y" float32 with a shape only known from the value of "shape": without a pin the engine
  refuses it ("must be a constant"); pinned to [2, 3, 4] it compiles.
pin_input.json: x = 0..23, shape = [2, 3, 4];  pin_other.json: the same x, shape = [4, 3, 2].
range_inputs.onnx: Range(start, limit, delta), three int64 scalar inputs that all must be pinned
  together; range_input.json: 10, 6, -3 (output [10, 7]).
Usage: gen_pin_model.py OUT_DIR STAMP
"""
import json
import os
import sys

import onnx
from onnx import TensorProto, helper


def model():
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape")],
        "reshape_shape_input",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [24]),
         helper.make_tensor_value_info("shape", TensorProto.INT64, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["a", "b", "c"])])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def range_model():
    scalar = [helper.make_tensor_value_info(n, TensorProto.INT64, []) for n in
              ("start", "limit", "delta")]
    graph = helper.make_graph(
        [helper.make_node("Range", ["start", "limit", "delta"], ["y"], name="range")],
        "range_inputs", scalar, [helper.make_tensor_value_info("y", TensorProto.INT64, ["n"])])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def scalars(**values):
    return {"inputs": {k: {"shape": [], "dtype": "int64", "data": [v]} for k, v in values.items()}}


def inputs(shape):
    return {"inputs": {
        "x": {"shape": [24], "dtype": "float32", "data": [float(i) for i in range(24)]},
        "shape": {"shape": [3], "dtype": "int64", "data": shape}}}


def main():
    out, stamp = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    onnx.save(model(), os.path.join(out, "reshape_shape_input.onnx"))
    for name, shape in (("pin_input.json", [2, 3, 4]), ("pin_other.json", [4, 3, 2])):
        with open(os.path.join(out, name), "w") as f:
            json.dump(inputs(shape), f)
    onnx.save(range_model(), os.path.join(out, "range_inputs.onnx"))
    with open(os.path.join(out, "range_input.json"), "w") as f:
        json.dump(scalars(start=10, limit=6, delta=-3), f)
    with open(stamp, "w") as f:
        f.write("ok\n")


if __name__ == "__main__":
    main()
