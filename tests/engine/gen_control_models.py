#!/usr/bin/python3
"""Writes the control-flow test models (tests/engine/test_control.sh) with numpy references.

Usage: gen_control_models.py OUTDIR STAMP

For each model NAME: NAME.onnx, and per request K: NAME_inK.json / NAME_outK.json in shmfaas-run's
JSON tensor schema. Every model takes its If conditions as inputs ("c", "d"), so the engine runs
them as run-time branches, or folds them when the test pins them (--pin c).
  if_outer   branches read outer-scope tensors (an input, an initializer, a tensor computed before
             the If), have initializers and Constants of their own, and one output of each branch
             is an outer tensor or a constant handed on unchanged;
  if_nested  an If inside the then_branch, whose branches read the outermost scope and shadow an
             outer name with one of their own;
  select     NonZero and NonMaxSuppression on run-time inputs, a different count per request;
  if_layout  a convolution's blocked-layout output read in plain layout inside one branch and by a
             node after the If (the layout copy made inside a branch must not be reused after it:
             the node after the If reads it exactly when the branch did not run).
"""
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

F, B, I64 = TensorProto.FLOAT, TensorProto.BOOL, TensorProto.INT64
N = helper.make_node
rng = np.random.default_rng(1717)


def arr(a, name):
    return numpy_helper.from_array(np.asarray(a), name)


def vi(name, shape, dtype=F):
    return helper.make_tensor_value_info(name, dtype, shape)


def branch(name, nodes, outputs, inits=()):
    return helper.make_graph(nodes, name, [], [vi(o, None) for o in outputs], list(inits))


def tensor_json(a):
    a = np.asarray(a)
    dt = {np.float32: "float32", np.bool_: "bool", np.int64: "int64"}[a.dtype.type]
    data = [float(x) for x in a.reshape(-1)] if dt == "float32" else \
        [bool(x) if dt == "bool" else int(x) for x in a.reshape(-1)]
    return {"shape": list(a.shape), "dtype": dt, "data": data}


def save(outdir, name, nodes, inputs, outputs, inits, requests):
    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, os.path.join(outdir, name + ".onnx"))
    for k, (feeds, outs) in enumerate(requests):
        for suffix, key, tensors in (("in", "inputs", feeds), ("out", "outputs", outs)):
            with open(os.path.join(outdir, "%s_%s%d.json" % (name, suffix, k)), "w") as f:
                json.dump({key: {n: tensor_json(v) for n, v in tensors.items()}}, f)


def sigmoid(x):
    return (1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(np.float32)


def if_outer(outdir):
    w = rng.standard_normal((2, 3)).astype(np.float32)
    wi = rng.standard_normal((2, 3)).astype(np.float32)
    k = np.full((2, 3), 0.5, np.float32)
    then = branch("then", [N("Relu", ["x"], ["r"]), N("Mul", ["r", "w"], ["m"]),
                           N("Add", ["m", "wi"], ["y_then"])], ["y_then", "x"], [arr(wi, "wi")])
    els = branch("else", [N("Sigmoid", ["s"], ["g"]), N("Sub", ["g", "x"], ["y_else"]),
                          N("Constant", [], ["k"], value=arr(k, "kv"))], ["y_else", "k"])
    nodes = [N("Mul", ["x", "x"], ["s"]),
             N("If", ["c"], ["y", "z"], name="if0", then_branch=then, else_branch=els),
             N("Add", ["y", "s"], ["out"])]
    reqs = []
    for c in (True, False, True):
        x = rng.standard_normal((2, 3)).astype(np.float32)
        s = x * x
        y, z = (np.maximum(x, 0) * w + wi, x) if c else (sigmoid(s) - x, k)
        reqs.append(({"x": x, "c": np.array([c])}, {"out": y + s, "z": z}))
    save(outdir, "if_outer", nodes, [vi("x", [2, 3]), vi("c", [1], B)],
         [vi("out", [2, 3]), vi("z", [2, 3])], [arr(w, "w")], reqs)


def if_nested(outdir):
    inner_then = branch("inner_then", [N("Add", ["x", "t"], ["u"])], ["u"])
    inner_else = branch("inner_else", [N("Neg", ["x"], ["t"]), N("Mul", ["t", "x"], ["u2"])],
                        ["u2"])  # its own "t" shadows the then_branch's
    then = branch("then", [N("Abs", ["x"], ["t"]),
                           N("If", ["d"], ["v"], name="if1", then_branch=inner_then,
                             else_branch=inner_else)], ["v"])
    els = branch("else", [N("Exp", ["x"], ["e"])], ["e"])
    nodes = [N("If", ["c"], ["y"], name="if0", then_branch=then, else_branch=els)]
    reqs = []
    for c, d in ((True, True), (True, False), (False, True), (False, False)):
        x = rng.standard_normal((4,)).astype(np.float32)
        y = (x + np.abs(x) if d else -x * x) if c else np.exp(x)
        reqs.append(({"x": x, "c": np.array([c]), "d": np.array([d])}, {"y": y}))
    save(outdir, "if_nested", nodes, [vi("x", [4]), vi("c", [1], B), vi("d", [1], B)],
         [vi("y", [4])], [], reqs)


def conv3x3(x, w):
    n, c, h, wd = x.shape
    p = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    y = np.zeros((n, w.shape[0], h, wd), np.float64)
    for i in range(3):
        for j in range(3):
            y += np.einsum("nchw,kc->nkhw", p[:, :, i:i + h, j:j + wd], w[:, :, i, j])
    return y.astype(np.float32)


def if_layout(outdir):
    w1 = (rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32)
    w2 = (rng.standard_normal((8, 8, 3, 3)) * 0.2).astype(np.float32)
    then = branch("then", [N("Flatten", ["a"], ["f"]), N("Sigmoid", ["f"], ["g"]),
                           N("Reshape", ["g", "shape"], ["y_then"])], ["y_then"])
    els = branch("else", [N("Conv", ["a", "w2"], ["y_else"], pads=[1, 1, 1, 1])], ["y_else"],
                 [arr(w2, "w2")])
    nodes = [N("Conv", ["x", "w1"], ["cv"], pads=[1, 1, 1, 1]), N("Relu", ["cv"], ["a"]),
             N("If", ["c"], ["y"], name="if0", then_branch=then, else_branch=els),
             N("Not", ["c"], ["nc"]), N("Where", ["nc", "a", "y"], ["w"])]
    reqs = []
    for c in (False, True, False):
        x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
        a = np.maximum(conv3x3(x, w1), 0)
        y = sigmoid(a) if c else conv3x3(a, w2)
        reqs.append(({"x": x, "c": np.array([c])}, {"y": y, "w": y if c else a}))
    save(outdir, "if_layout", nodes, [vi("x", [1, 3, 8, 8]), vi("c", [1], B)],
         [vi("y", [1, 8, 8, 8]), vi("w", [1, 8, 8, 8])],
         [arr(w1, "w1"), arr(np.array([1, 8, 8, 8], np.int64), "shape")], reqs)


def nms_reference(boxes, scores, max_per_class, iou, score):
    """NonMaxSuppression of ONNX (corner boxes [y1, x1, y2, x2]) the way ONNX Runtime orders it."""
    def corners(b):
        return min(b[1], b[3]), min(b[0], b[2]), max(b[1], b[3]), max(b[0], b[2])

    def overlap(a, b):
        ax0, ay0, ax1, ay1 = corners(a)
        bx0, by0, bx1, by1 = corners(b)
        iw, ih = min(ax1, bx1) - max(ax0, bx0), min(ay1, by1) - max(ay0, by0)
        if iw <= 0 or ih <= 0:
            return False
        inter = iw * ih
        union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
        return union > 0 and inter / union > iou

    rows = []
    for b in range(scores.shape[0]):
        for c in range(scores.shape[1]):
            cand = sorted((i for i in range(scores.shape[2]) if scores[b, c, i] > score),
                          key=lambda i: (-scores[b, c, i], i))
            kept = []
            for i in cand:
                if len(kept) == max_per_class:
                    break
                if not any(overlap(boxes[b, j], boxes[b, i]) for j in kept):
                    kept.append(i)
                    rows.append([b, c, i])
    return np.array(rows, np.int64).reshape(-1, 3)


def select(outdir):
    """NonZero and NonMaxSuppression on run-time inputs: every request selects another count
    (none, some, all up to the bound), which the run reports as the outputs' shapes."""
    boxes = np.array([[[0, 0, 1, 1], [0, 0.1, 1, 1.1], [0, 5, 1, 6], [0, 5.5, 1, 6.5]]],
                     np.float32)
    nodes = [N("NonZero", ["x"], ["nz"]),
             N("NonMaxSuppression", ["boxes", "scores", "max", "iou", "st"], ["sel"])]
    reqs = []
    xs = [np.zeros((2, 3), np.float32), np.array([[0, 1, 0], [2, 0, 3]], np.float32),
          np.ones((2, 3), np.float32)]
    for k, st in enumerate((2.0, 0.6, 0.0)):
        scores = rng.uniform(0.1, 1.0, (1, 2, 4)).astype(np.float32)
        feeds = {"x": xs[k], "boxes": boxes, "scores": scores, "st": np.array([st], np.float32)}
        sel = nms_reference(boxes, scores, 3, 0.5, st)
        reqs.append((feeds, {"nz": np.array(np.nonzero(xs[k]), np.int64), "sel": sel}))
    save(outdir, "select", nodes,
         [vi("x", [2, 3]), vi("boxes", [1, 4, 4]), vi("scores", [1, 2, 4]), vi("st", [1])],
         [vi("nz", None, I64), vi("sel", None, I64)],
         [arr(np.array([3], np.int64), "max"), arr(np.array([0.5], np.float32), "iou")], reqs)


def main():
    outdir, stamp = sys.argv[1], sys.argv[2]
    os.makedirs(outdir, exist_ok=True)
    if_outer(outdir)
    if_nested(outdir)
    if_layout(outdir)
    select(outdir)
    with open(stamp, "w") as f:
        f.write("ok\n")


if __name__ == "__main__":
    main()
