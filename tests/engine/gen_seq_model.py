#!/usr/bin/python3
"""Writes the sequence fixture (run at build time by meson).

seq_io.onnx: inputs "xs", a sequence of float32 [n, 3] tensors (n symbolic), and "pos" int64 []
  -> SequenceInsert(xs, extra = [[9, 9, 9]], pos) -> "ys", a sequence output; and
  ConcatFromSequence(xs, axis 0) -> "cat" float32 [m, 3].
seq_input.json: xs = [[[0,1,2]], [[3,4,5],[6,7,8]]], pos = 1;
seq_expected.json: ys = [xs[0], [[9,9,9]], xs[1]], cat = the rows of xs in order.
seq_hostile.json: xs with 1025 elements (over ENGINE_MAX_SEQ).
Usage: gen_seq_model.py OUT_DIR STAMP
"""
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def model():
    elem = helper.make_tensor_type_proto(TensorProto.FLOAT, ["n", 3])
    extra = numpy_helper.from_array(np.full((1, 3), 9, np.float32), "extra")
    graph = helper.make_graph(
        [helper.make_node("SequenceInsert", ["xs", "extra", "pos"], ["ys"], name="insert"),
         helper.make_node("ConcatFromSequence", ["xs"], ["cat"], name="concat", axis=0)],
        "seq_io",
        [helper.make_value_info("xs", helper.make_sequence_type_proto(elem)),
         helper.make_tensor_value_info("pos", TensorProto.INT64, [])],
        [helper.make_value_info("ys", helper.make_sequence_type_proto(elem)),
         helper.make_tensor_value_info("cat", TensorProto.FLOAT, ["m", 3])],
        [extra])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def tensor(rows):
    return {"shape": [len(rows), 3], "dtype": "float32", "data": rows}


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    onnx.save(model(), os.path.join(out, "seq_io.onnx"))
    xs = [[[0, 1, 2]], [[3, 4, 5], [6, 7, 8]]]
    with open(os.path.join(out, "seq_input.json"), "w") as f:
        json.dump({"inputs": {"xs": {"sequence": [tensor(x) for x in xs]},
                              "pos": {"shape": [], "dtype": "int64", "data": [1]}}}, f)
    with open(os.path.join(out, "seq_expected.json"), "w") as f:
        json.dump({"outputs": {
            "ys": {"sequence": [tensor(xs[0]), tensor([[9, 9, 9]]), tensor(xs[1])]},
            "cat": tensor([r for x in xs for r in x])}}, f)
    with open(os.path.join(out, "seq_hostile.json"), "w") as f:
        json.dump({"inputs": {"xs": {"sequence": [tensor([[0, 0, 0]])] * 1025},
                              "pos": {"shape": [], "dtype": "int64", "data": [0]}}}, f)
    with open(sys.argv[2], "w") as f:
        f.write("ok\n")


if __name__ == "__main__":
    main()
