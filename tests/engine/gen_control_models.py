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
Loops (ops/loop.c), run as a LOOP region of the plan, never unrolled:
  loop_while  a while loop: the body computes the condition (halve y until max(y) <= t, at most
              64 times), carries y and a counter, and scans y: a different iteration count per
              request, reported as the scan output's length (loop_zero: the same with a trip
              count of 0, no iteration at all; loop_forever: M = INT64_MAX and no scan output, as
              PyTorch exports a while loop);
  loop_scan   the trip count n an input (the specialising model pins it per value), scan outputs
              of the carried sum and of a table row gathered at the iteration number;
  loop_outer  the body reads outer tensors (an input, a tensor computed before the Loop), nests
              an If on a condition computed from the iteration number and an inner Loop, and
              swaps two carried values (a parallel assignment);
  scan_rnn    a simple RNN cell h = tanh(W x_t + U h) written as a Scan over the sequence axis,
              and a reversed cumulative sum along axis 1 (scan_input_axes, directions);
  loop_slice  the body slices x[i:i+2] of an outer tensor at the iteration number (the start read
              per run), the trip count fed per request; one request runs past x's end: refused;
  loop_append an RNN loop as torch.jit.script exports a Python list append: a carried sequence
              that starts empty (SequenceEmpty), one SequenceInsert per iteration, stacked after
              the loop by ConcatFromSequence(axis 0, new_axis 1): run as a scan output;
  loop_big    a constant trip count over ENGINE_LOOP_MAX_ITER with a scan output: refused;
  loop_bound  a trip count fed at run time over ENGINE_LOOP_MAX_ITER: refused at run time;
  loop_nested 4096 x 32768 iterations of nested loops, each under ENGINE_LOOP_MAX_ITER, together
              over ENGINE_LOOP_MAX_RUN: refused at run time.
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


def body(name, inputs, nodes, outputs, inits=()):
    """A Loop/Scan body: inputs [(name, dtype, shape)], outputs names."""
    return helper.make_graph(nodes, name, [vi(n, sh, dt) for n, dt, sh in inputs],
                             [vi(o, None) for o in outputs], list(inits))


def loop_while(outdir):
    b = body("while", [("i", I64, []), ("c", B, []), ("y", F, [3]), ("k", F, [1])],
             [N("Mul", ["y", "half"], ["y2"]), N("Add", ["k", "one"], ["k2"]),
              N("ReduceMax", ["y2"], ["m"], keepdims=0), N("Greater", ["m", "t"], ["c2"]),
              N("Identity", ["y2"], ["trace"])],
             ["c2", "y2", "k2", "trace"],
             [arr(np.array([0.5], np.float32), "half"), arr(np.array([1], np.float32), "one")])
    nodes = [N("Loop", ["M", "", "x", "k0"], ["y", "k", "trace"], name="loop0", body=b)]
    reqs = []
    for x, t in ((np.array([1, 2, 3], np.float32), 0.5), (np.array([0.1, 0.2, 0.3], np.float32),
                                                          1.0), (np.array([40, 8, 3], np.float32), 0.01)):
        y, k, trace = x.copy(), np.zeros(1, np.float32), []
        for _ in range(64):
            y = y * np.float32(0.5)
            k = k + 1
            trace.append(y)
            if not y.max() > t:
                break
        reqs.append(({"x": x, "t": np.array([t], np.float32)},
                     {"y": y, "k": k, "trace": np.array(trace, np.float32).reshape(-1, 3)}))
    save(outdir, "loop_while", nodes, [vi("x", [3]), vi("t", [1])],
         [vi("y", [3]), vi("k", [1]), vi("trace", None)],
         [arr(np.array(64, np.int64), "M"), arr(np.zeros(1, np.float32), "k0")], reqs)
    # the same with a trip count of 0: no iteration, the initial values out, an empty scan output
    zero = [({"x": f["x"], "t": f["t"]}, {"y": f["x"], "k": np.zeros(1, np.float32),
                                          "trace": np.zeros((0, 3), np.float32)}) for f, _ in reqs]
    save(outdir, "loop_zero", nodes, [vi("x", [3]), vi("t", [1])],
         [vi("y", [3]), vi("k", [1]), vi("trace", None)],
         [arr(np.array(0, np.int64), "M"), arr(np.zeros(1, np.float32), "k0")], zero)
    # as PyTorch exports a while loop: M = INT64_MAX, no scan output, the condition decides
    b2 = body("while", [("i", I64, []), ("c", B, []), ("y", F, [3]), ("k", F, [1])],
              [N("Mul", ["y", "half"], ["y2"]), N("Add", ["k", "one"], ["k2"]),
               N("ReduceMax", ["y2"], ["m"], keepdims=0), N("Greater", ["m", "t"], ["c2"])],
              ["c2", "y2", "k2"],
              [arr(np.array([0.5], np.float32), "half"), arr(np.array([1], np.float32), "one")])
    forever = [(f, {"y": o["y"], "k": o["k"]}) for f, o in reqs]
    save(outdir, "loop_forever", [N("Loop", ["M", "", "x", "k0"], ["y", "k"], name="loop0", body=b2)],
         [vi("x", [3]), vi("t", [1])], [vi("y", [3]), vi("k", [1])],
         [arr(np.array(2**63 - 1, np.int64), "M"), arr(np.zeros(1, np.float32), "k0")], forever)


def loop_scan(outdir):
    table = rng.standard_normal((8, 2)).astype(np.float32)
    b = body("scanbody", [("i", I64, []), ("c", B, []), ("s", F, [2])],
             [N("Cast", ["i"], ["fi"], to=F), N("Mul", ["x", "fi"], ["xi"]),
              N("Add", ["s", "xi"], ["s2"]), N("Gather", ["table", "i"], ["row"], axis=0),
              N("Identity", ["c"], ["c2"])],
             ["c2", "s2", "s2", "row"])
    nodes = [N("Loop", ["n", "go", "s0"], ["s", "sums", "rows"], name="loop0", body=b)]
    reqs = []
    for n in (3, 5, 3, 8):
        x = rng.standard_normal(2).astype(np.float32)
        s, sums = np.zeros(2, np.float32), []
        for i in range(n):
            s = s + x * np.float32(i)
            sums.append(s)
        reqs.append(({"x": x, "n": np.array(n, np.int64)},
                     {"s": s, "sums": np.array(sums), "rows": table[:n]}))
    save(outdir, "loop_scan", nodes, [vi("x", [2]), vi("n", [], I64)],
         [vi("s", [2]), vi("sums", None), vi("rows", None)],
         [arr(table, "table"), arr(np.array(True), "go"), arr(np.zeros(2, np.float32), "s0")],
         reqs)


def loop_outer(outdir):
    inner = body("inner", [("j", I64, []), ("ci", B, []), ("z", F, [2, 2])],
                 [N("Mul", ["sq", "tenth"], ["d"]), N("Add", ["z", "d"], ["z2"]),
                  N("Identity", ["ci"], ["ci2"])], ["ci2", "z2"],
                 [arr(np.array([0.1], np.float32), "tenth")])
    then = branch("even", [N("Add", ["a", "sq"], ["a_then"])], ["a_then"])
    els = branch("odd", [N("Mul", ["a", "half"], ["a_else"])], ["a_else"],
                 [arr(np.array([0.5], np.float32), "half")])
    b = body("outer", [("i", I64, []), ("c", B, []), ("a", F, [2, 2]), ("b", F, [2, 2])],
             [N("Mod", ["i", "two"], ["r"]), N("Equal", ["r", "zero"], ["even"]),
              N("If", ["even"], ["a1"], name="if0", then_branch=then, else_branch=els),
              N("Loop", ["two", "", "a1"], ["a2"], name="inner0", body=inner),
              N("Add", ["a2", "x"], ["a3"]), N("Identity", ["c"], ["c2"])],
             ["c2", "b", "a3"],
             [arr(np.array(2, np.int64), "two"), arr(np.array(0, np.int64), "zero")])
    nodes = [N("Mul", ["x", "x"], ["sq"]),
             N("Loop", ["M", "", "x", "w"], ["p", "q"], name="loop0", body=b)]
    w = rng.standard_normal((2, 2)).astype(np.float32)
    reqs = []
    for _ in range(3):
        x = rng.standard_normal((2, 2)).astype(np.float32)
        sq = x * x
        a, bb = x.copy(), w.copy()
        for i in range(5):
            a1 = a + sq if i % 2 == 0 else a * np.float32(0.5)
            for _j in range(2):
                a1 = a1 + sq * np.float32(0.1)
            a, bb = bb, a1 + x  # the body returns (b, a3): the carried values swap
        reqs.append(({"x": x}, {"p": a, "q": bb}))
    save(outdir, "loop_outer", nodes, [vi("x", [2, 2])], [vi("p", [2, 2]), vi("q", [2, 2])],
         [arr(np.array(5, np.int64), "M"), arr(w, "w")], reqs)


def scan_rnn(outdir):
    W = (rng.standard_normal((4, 3)) * 0.5).astype(np.float32)
    U = (rng.standard_normal((3, 3)) * 0.5).astype(np.float32)
    cell = body("cell", [("h", F, [1, 3]), ("xt", F, [1, 4])],
                [N("MatMul", ["xt", "W"], ["wx"]), N("MatMul", ["h", "U"], ["uh"]),
                 N("Add", ["wx", "uh"], ["pre"]), N("Tanh", ["pre"], ["h2"]),
                 N("Identity", ["h2"], ["hs"])], ["h2", "hs"])
    cum = body("cum", [("acc", F, [2]), ("col", F, [2])],
               [N("Add", ["acc", "col"], ["acc2"])], ["acc2", "acc2"])
    nodes = [N("Scan", ["h0", "x"], ["h", "hs"], name="rnn", body=cell, num_scan_inputs=1),
             N("Scan", ["z", "m"], ["tot", "cums"], name="cum", body=cum, num_scan_inputs=1,
               scan_input_axes=[1], scan_input_directions=[1], scan_output_axes=[1])]
    reqs = []
    for _ in range(3):
        x = rng.standard_normal((5, 1, 4)).astype(np.float32)
        m = rng.standard_normal((2, 6)).astype(np.float32)
        h, hs = np.zeros((1, 3), np.float32), []
        for t in range(5):
            h = np.tanh(x[t] @ W + h @ U).astype(np.float32)
            hs.append(h)
        acc, cums = np.zeros(2, np.float32), []
        for t in reversed(range(6)):
            acc = acc + m[:, t]
            cums.append(acc)
        reqs.append(({"x": x, "m": m}, {"h": h, "hs": np.array(hs), "tot": acc,
                                        "cums": np.array(cums).T}))
    save(outdir, "scan_rnn", nodes, [vi("x", [5, 1, 4]), vi("m", [2, 6])],
         [vi("h", [1, 3]), vi("hs", [5, 1, 3]), vi("tot", [2]), vi("cums", [2, 6])],
         [arr(W, "W"), arr(U, "U"), arr(np.zeros((1, 3), np.float32), "h0"),
          arr(np.zeros(2, np.float32), "z")], reqs)


def loop_slice(outdir):
    b = body("window", [("i", I64, []), ("c", B, []), ("acc", F, [2])],
             [N("Add", ["i", "two"], ["e"]), N("Unsqueeze", ["i", "ax"], ["s0"]),
              N("Unsqueeze", ["e", "ax"], ["e0"]), N("Slice", ["x", "s0", "e0"], ["w"]),
              N("Add", ["acc", "w"], ["acc2"]), N("Identity", ["c"], ["c2"])], ["c2", "acc2"],
             [arr(np.array(2, np.int64), "two"), arr(np.array([0], np.int64), "ax")])
    nodes = [N("Loop", ["n", "", "z"], ["acc"], name="loop0", body=b)]
    reqs = []
    for n in (3, 5, 6):
        x = rng.standard_normal(6).astype(np.float32)
        acc = np.zeros(2, np.float32)
        for i in range(n):
            acc = acc + x[i:i + 2] if i + 2 <= 6 else None
        reqs.append(({"x": x, "n": np.array(n, np.int64)}, {"acc": acc} if n < 6 else {}))
    save(outdir, "loop_slice", nodes, [vi("x", [6]), vi("n", [], I64)], [vi("acc", [2])],
         [arr(np.zeros(2, np.float32), "z")], reqs)


def loop_append(outdir):
    W = (rng.standard_normal((3, 4)) * 0.5).astype(np.float32)
    U = (rng.standard_normal((3, 3)) * 0.5).astype(np.float32)
    b = body("step", [("t", I64, []), ("c", B, []), ("h", F, [1, 3]),
                      ("outs", B, None)],
             [N("Gather", ["x", "t"], ["xt"], axis=0),
              N("Gemm", ["xt", "W"], ["wx"], transB=1), N("Gemm", ["h", "U"], ["uh"], transB=1),
              N("Add", ["wx", "uh"], ["pre"]), N("Tanh", ["pre"], ["h2"]),
              N("SequenceInsert", ["outs", "h2"], ["outs2"]), N("Identity", ["yes"], ["c2"])],
             ["c2", "h2", "outs2"])
    b.input[3].CopyFrom(helper.make_tensor_sequence_value_info("outs", F, None))
    b.output[2].CopyFrom(helper.make_tensor_sequence_value_info("outs2", F, None))
    nodes = [N("SequenceEmpty", [], ["empty"], dtype=F),
             N("Loop", ["T", "yes", "h0", "empty"], ["h", "seq"], name="loop0", body=b),
             N("ConcatFromSequence", ["seq"], ["hs"], axis=0, new_axis=1)]
    reqs = []
    for _ in range(3):
        x = rng.standard_normal((5, 1, 4)).astype(np.float32)
        h, hs = np.zeros((1, 3), np.float32), []
        for t in range(5):
            h = np.tanh(x[t] @ W.T + h @ U.T).astype(np.float32)
            hs.append(h)
        reqs.append(({"x": x}, {"h": h, "hs": np.array(hs)}))
    save(outdir, "loop_append", nodes, [vi("x", [5, 1, 4])], [vi("h", [1, 3]), vi("hs", [5, 1, 3])],
         [arr(W, "W"), arr(U, "U"), arr(np.zeros((1, 3), np.float32), "h0"),
          arr(np.array(5, np.int64), "T"), arr(np.array(True), "yes")], reqs)


def loop_limits(outdir):
    b = body("count", [("i", I64, []), ("c", B, []), ("s", F, [1])],
             [N("Add", ["s", "one"], ["s2"]), N("Identity", ["c"], ["c2"])], ["c2", "s2", "s2"],
             [arr(np.array([1], np.float32), "one")])
    nodes = [N("Loop", ["M", "", "s0"], ["s", "trace"], name="loop0", body=b)]
    big = 1 << 21
    save(outdir, "loop_big", nodes, [vi("s0", [1])], [vi("s", [1]), vi("trace", None)],
         [arr(np.array(big, np.int64), "M")], [({"s0": np.zeros(1, np.float32)}, {})])
    b2 = body("count", [("i", I64, []), ("c", B, []), ("s", F, [1])],
              [N("Add", ["s", "one"], ["s2"]), N("Identity", ["c"], ["c2"])], ["c2", "s2"],
              [arr(np.array([1], np.float32), "one")])
    nodes = [N("Loop", ["M", "", "s0"], ["s"], name="loop0", body=b2)]
    save(outdir, "loop_bound", nodes, [vi("s0", [1]), vi("M", [], I64)], [vi("s", [1])], [],
         [({"s0": np.zeros(1, np.float32), "M": np.array(big, np.int64)}, {}),
          ({"s0": np.zeros(1, np.float32), "M": np.array(1000, np.int64)},
           {"s": np.array([1000], np.float32)})])


def loop_nested(outdir):
    inner = body("inner", [("j", I64, []), ("c", B, []), ("z", F, [1])],
                 [N("Identity", ["c"], ["c2"]), N("Identity", ["z"], ["z2"])], ["c2", "z2"])
    outer = body("outer", [("i", I64, []), ("c", B, []), ("y", F, [1])],
                 [N("Loop", ["Mi", "", "y"], ["y2"], name="inner0", body=inner),
                  N("Identity", ["c"], ["c2"])], ["c2", "y2"])
    save(outdir, "loop_nested", [N("Loop", ["Mo", "", "x"], ["y"], name="outer0", body=outer)],
         [vi("x", [1])], [vi("y", [1])],
         [arr(np.array(4096, np.int64), "Mo"), arr(np.array(32768, np.int64), "Mi")],
         [({"x": np.ones(1, np.float32)}, {})])


def main():
    outdir, stamp = sys.argv[1], sys.argv[2]
    os.makedirs(outdir, exist_ok=True)
    if_outer(outdir)
    if_nested(outdir)
    if_layout(outdir)
    select(outdir)
    loop_while(outdir)
    loop_scan(outdir)
    loop_outer(outdir)
    scan_rnn(outdir)
    loop_slice(outdir)
    loop_append(outdir)
    loop_limits(outdir)
    loop_nested(outdir)
    with open(stamp, "w") as f:
        f.write("ok\n")


if __name__ == "__main__":
    main()
