#!/usr/bin/python3
"""Writes the small ONNX models the engine frontend tests load (tests/engine/test_frontend.c).

Usage: gen_frontend_models.py OUTDIR STAMP
Good models exercise shape inference, folding and fusion; hostile ones are built by hand (no
onnx.checker) so that each breaks exactly one rule the importer must enforce.
"""
import os
import re
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

F = TensorProto.FLOAT
I64 = TensorProto.INT64
rng = np.random.default_rng(7)


def init(name, shape, lo=-1.0, hi=1.0):
    return numpy_helper.from_array(rng.uniform(lo, hi, shape).astype(np.float32), name)


def ints(name, values):
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def save(outdir, name, nodes, inputs, outputs, inits=(), opset=13):
    graph = helper.make_graph(nodes, name, inputs, outputs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.save(model, os.path.join(outdir, name + ".onnx"))


def vi(name, shape, dtype=F):
    return helper.make_tensor_value_info(name, dtype, shape)


def shapes_model(outdir):
    """One input, many branches: every output's shape is asserted by name."""
    N = helper.make_node
    nodes = [
        N("Conv", ["X", "W1"], ["c1"], strides=[2, 2], pads=[1, 1, 1, 1]),
        N("Conv", ["X", "W2"], ["c2"], strides=[2, 2], auto_pad="SAME_UPPER"),
        N("Conv", ["c1", "W3"], ["c3"], group=8, dilations=[2, 2], pads=[2, 2, 2, 2]),
        N("Conv", ["X", "W4"], ["c4"], auto_pad="VALID"),
        N("Conv", ["X", "W5"], ["c5"], auto_pad="SAME_LOWER"),
        N("MaxPool", ["c1"], ["mp"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
        N("Slice", ["X", "s_starts", "s_ends", "s_axes"], ["x5"]),
        N("MaxPool", ["x5"], ["mp2"], kernel_shape=[2, 2], strides=[2, 2], pads=[1, 1, 1, 1],
          ceil_mode=1),
        N("AveragePool", ["c1"], ["ap"], kernel_shape=[3, 3], strides=[2, 2],
          pads=[1, 1, 1, 1], count_include_pad=1),
        N("GlobalAveragePool", ["c1"], ["gap"]),
        N("Flatten", ["gap"], ["fl"]),
        N("Gemm", ["fl", "Wg", "Bg"], ["gm"], transB=1),
        N("MatMul", ["fl", "Wm"], ["mm"]),
        N("Softmax", ["gm"], ["sm"]),
        N("Concat", ["c1", "c2"], ["cat"], axis=1),
        N("BatchNormalization", ["c1", "bn_s", "bn_b", "bn_m", "bn_v"], ["bn"]),
        N("Add", ["c1", "Bb"], ["add"]),
        N("Transpose", ["gm"], ["tr"], perm=[1, 0]),
        N("Transpose", ["c1"], ["tr2"]),
        N("Pad", ["X", "pads"], ["pad"]),
        N("ReduceMean", ["c1"], ["rm"], axes=[2, 3], keepdims=0),
        N("Unsqueeze", ["fl", "ax0"], ["us"]),
        N("Squeeze", ["gap", "ax23"], ["sq"]),
        N("HardSwish", ["c1"], ["hs"]),
        N("Clip", ["c1", "cmin", "cmax"], ["cl"]),
        N("LeakyRelu", ["c1"], ["lr"], alpha=0.1),
        N("HardSigmoid", ["c1"], ["hsg"]),
        N("Sigmoid", ["c1"], ["sg"]),
        N("Tanh", ["c1"], ["th"]),
        N("Size", ["X"], ["sz"]),
        N("Range", ["r_start", "r_limit", "r_delta"], ["rg"]),
    ]
    inits = [
        init("W1", [8, 3, 3, 3]), init("W2", [8, 3, 3, 3]), init("W3", [8, 1, 3, 3]),
        init("W4", [4, 3, 5, 5]), init("W5", [4, 3, 2, 2]), init("Wg", [10, 8]),
        init("Bg", [10]), init("Wm", [8, 6]), init("bn_s", [8]), init("bn_b", [8]),
        init("bn_m", [8]), init("bn_v", [8], 0.5, 1.5), init("Bb", [8, 1, 1]),
        ints("s_starts", [0, 0]), ints("s_ends", [5, 5]), ints("s_axes", [2, 3]),
        ints("pads", [0, 0, 1, 2, 0, 0, 3, 4]), ints("ax0", [0]), ints("ax23", [2, 3]),
        numpy_helper.from_array(np.array(0.0, np.float32), "cmin"),
        numpy_helper.from_array(np.array(6.0, np.float32), "cmax"),
        numpy_helper.from_array(np.array(10, np.int64), "r_start"),
        numpy_helper.from_array(np.array(-1, np.int64), "r_limit"),
        numpy_helper.from_array(np.array(-3, np.int64), "r_delta"),
    ]
    outs = ["c1", "c2", "c3", "c4", "c5", "mp", "mp2", "ap", "gap", "fl", "gm", "mm", "sm",
            "cat", "bn", "add", "tr", "tr2", "pad", "rm", "us", "sq", "hs", "cl", "lr", "hsg", "sg",
            "th", "sz", "rg"]
    save(outdir, "shapes", nodes, [vi("X", [1, 3, 224, 224])], [vi(o, None) for o in outs],
         inits)


def reshape_subgraph(outdir):
    """Shape -> Gather -> Unsqueeze -> Concat -> Reshape, with a Constant node, listed out of
    order (the importer must sort)."""
    N = helper.make_node
    nodes = [
        N("Reshape", ["X", "shape"], ["Y"]),
        N("Concat", ["n1", "minus1"], ["shape"], axis=0),
        N("Unsqueeze", ["n0", "ax0"], ["n1"]),
        N("Gather", ["s", "zero"], ["n0"], axis=0),
        N("Shape", ["X"], ["s"]),
        N("Constant", [], ["minus1"], value_ints=[-1]),
        N("Constant", [], ["zero"], value=numpy_helper.from_array(np.array(0, np.int64))),
    ]
    save(outdir, "reshape_subgraph", nodes, [vi("X", [2, 3, 4, 5])], [vi("Y", None)],
         [ints("ax0", [0])])


def conv_bn_relu(outdir):
    N = helper.make_node
    nodes = [
        N("Conv", ["X", "W", "B"], ["c"], pads=[1, 1, 1, 1]),
        N("BatchNormalization", ["c", "s", "b", "m", "v"], ["bn"], epsilon=1e-3),
        N("Relu", ["bn"], ["Y"]),
    ]
    inits = [init("W", [4, 3, 3, 3]), init("B", [4]), init("s", [4], 0.5, 2.0),
             init("b", [4]), init("m", [4]), init("v", [4], 0.2, 2.0)]
    save(outdir, "conv_bn_relu", nodes, [vi("X", [1, 3, 6, 6])], [vi("Y", None)], inits)


def residual(outdir):
    """conv -> relu -> conv -> (+X) -> relu, with an Identity and a Dropout in the way and a
    branch nothing reads."""
    N = helper.make_node
    nodes = [
        N("Conv", ["X", "W1"], ["c1"], pads=[1, 1, 1, 1]),
        N("Relu", ["c1"], ["r1"]),
        N("Identity", ["r1"], ["r1i"]),
        N("Conv", ["r1i", "W2"], ["c2"], pads=[1, 1, 1, 1]),
        N("Dropout", ["c2"], ["c2d"]),
        N("Add", ["c2d", "X"], ["sum"]),
        N("Relu", ["sum"], ["r2"]),
        N("Identity", ["r2"], ["Y"]),
        N("Sigmoid", ["r1"], ["unused1"]),
        N("Tanh", ["unused1"], ["unused2"]),
    ]
    save(outdir, "residual", nodes, [vi("X", [1, 4, 5, 5])], [vi("Y", None)],
         [init("W1", [4, 4, 3, 3]), init("W2", [4, 4, 3, 3])])


def conv_hardswish(outdir):
    """PyTorch's opset-13 hardswish (x * HardSigmoid(x)) after a Conv, a no-op Pad and Cast."""
    N = helper.make_node
    nodes = [
        N("Conv", ["X", "W"], ["c"]),
        N("Pad", ["c", "zero_pads"], ["p"]),
        N("Cast", ["p"], ["q"], to=F),
        N("HardSigmoid", ["q"], ["h"], alpha=1.0 / 6, beta=0.5),
        N("Mul", ["q", "h"], ["Y"]),
    ]
    save(outdir, "conv_hardswish", nodes, [vi("X", [1, 2, 4, 4])], [vi("Y", None)],
         [init("W", [3, 2, 1, 1]), ints("zero_pads", [0] * 8)])


def symbolic(outdir):
    save(outdir, "symbolic", [helper.make_node("Relu", ["X"], ["Y"])],
         [vi("X", ["N", 3, 4, 4])], [vi("Y", None)])


def external_ok(outdir):
    w = np.arange(8, dtype=np.float32)
    with open(os.path.join(outdir, "ext_ok.bin"), "wb") as f:
        f.write(b"\0" * 16 + w.tobytes())
    save_external(outdir, "external_ok", "ext_ok.bin", 16, 32)


def save_external(outdir, name, location, offset=0, length=32):
    t = TensorProto()
    t.name = "W"
    t.data_type = F
    t.dims.extend([8])
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", str(offset)), ("length", str(length))):
        e = t.external_data.add()
        e.key, e.value = k, v
    save(outdir, name, [helper.make_node("Add", ["X", "W"], ["Y"])], [vi("X", [8])],
         [vi("Y", None)], [t])


def typed_tensor(name, dtype, dims, field, values):
    t = TensorProto()
    t.name, t.data_type = name, dtype
    t.dims.extend(dims)
    getattr(t, field).extend(values)
    return t


def typed_initializers(outdir):
    """Initializers in the typed fields instead of raw_data, and Constant's scalar forms."""
    N = helper.make_node
    inits = [
        typed_tensor("Wf", F, [4], "float_data", [1.5, -2.0, 3.25, 0.0]),
        typed_tensor("Wi64", I64, [2, 2], "int64_data", [1, -2, 1 << 40, 7]),
        typed_tensor("Wi32", TensorProto.INT32, [3], "int32_data", [-5, 0, 1 << 30]),
        typed_tensor("Wu8", TensorProto.UINT8, [3], "int32_data", [0, 200, 255]),
        typed_tensor("Wi8", TensorProto.INT8, [2], "int32_data", [-128, 127]),
        typed_tensor("Wb", TensorProto.BOOL, [2], "int32_data", [1, 0]),
    ]
    nodes = [N("Add", ["X", "Wf"], ["Y"]),
             N("Constant", [], ["cf"], value_float=0.5),
             N("Constant", [], ["cfs"], value_floats=[1.0, 2.0]),
             N("Constant", [], ["ci"], value_int=-3)]
    outs = [vi("Y", None)] + [vi(t.name, None) for t in inits] + [vi(c, None)
                                                                  for c in ("cf", "cfs", "ci")]
    save(outdir, "typed_initializers", nodes, [vi("X", [4])], outs, inits)
    add_model(outdir, "bad_u8_range",
              typed_tensor("W", TensorProto.UINT8, [4], "int32_data", [0, 1, 256, 3]))


def fp16_model(outdir):
    """float16 in, float16 out, float16 weights (ir_widen_fp16): Y = Relu(X @ W + B), Xs = X as
    float32, and W itself as a (float16 constant) output."""
    N = helper.make_node
    H = TensorProto.FLOAT16
    w = numpy_helper.from_array(np.array([[1.5, -2.0, 0.25], [0.5, 1.0, -1.0],
                                          [2.0, 0.0, 1.0], [-0.5, 3.0, 0.125]], np.float16), "W")
    b = numpy_helper.from_array(np.array([0.5, -0.25, 1.0], np.float16), "B")
    nodes = [N("MatMul", ["X", "W"], ["mm"]), N("Add", ["mm", "B"], ["add"]),
             N("Relu", ["add"], ["Y"]), N("Cast", ["X"], ["Xs"], to=F)]
    save(outdir, "fp16", nodes, [vi("X", [2, 4], H)],
         [vi("Y", [2, 3], H), vi("Xs", [2, 4], F), vi("W", [4, 3], H)], [w, b])


def raw_tensor(name, dims, raw, dtype=F):
    t = TensorProto()
    t.name = name
    t.data_type = dtype
    t.dims.extend(dims)
    t.raw_data = raw
    return t


def add_model(outdir, name, w, opset=13):
    save(outdir, name, [helper.make_node("Add", ["X", "W"], ["Y"])], [vi("X", [4])],
         [vi("Y", None)], [w], opset)


def hostile(outdir):
    N = helper.make_node
    add_model(outdir, "bad_raw_len", raw_tensor("W", [4], b"\0" * 10))
    add_model(outdir, "bad_huge_dims", raw_tensor("W", [1 << 40, 1 << 40], b"\0" * 16))
    add_model(outdir, "bad_negative_dim", raw_tensor("W", [-4], b"\0" * 16))
    t = TensorProto()
    t.name, t.data_type = "W", F
    t.dims.extend([4])
    t.float_data.extend([1.0, 2.0, 3.0])
    add_model(outdir, "bad_typed_count", t)
    t2 = raw_tensor("W", [4], b"\0" * 16)
    t2.float_data.extend([1.0, 2.0, 3.0, 4.0])
    add_model(outdir, "bad_raw_and_typed", t2)
    add_model(outdir, "bad_opset", init("W", [4]), opset=19)
    save(outdir, "bad_legacy_bcast", [N("Add", ["X", "W"], ["Y"], name="add0", broadcast=1,
                                        axis=2)],
         [vi("X", [2, 3])], [vi("Y", None)], [init("W", [3])], 6)
    save(outdir, "bad_legacy_dropout", [N("Dropout", ["X"], ["Y"], name="drop0")],
         [vi("X", [4])], [vi("Y", None)], [], 6)
    save(outdir, "bad_cycle",
         [N("Relu", ["b"], ["a"], name="first"), N("Relu", ["a"], ["b"], name="second"),
          N("Relu", ["X"], ["Y"])], [vi("X", [4])], [vi("Y", None), vi("a", None)])
    save(outdir, "bad_missing_init", [N("Conv", ["X", "W"], ["Y"], name="conv0")],
         [vi("X", [1, 3, 4, 4])], [vi("Y", None)])
    save(outdir, "bad_unsupported_op", [N("StringNormalizer", ["X"], ["Y"], name="e0")],
         [vi("X", [4, 4])], [vi("Y", None)])
    save(outdir, "bad_auto_pad", [N("Conv", ["X", "W"], ["Y"], name="conv0", auto_pad="FOO")],
         [vi("X", [1, 3, 4, 4])], [vi("Y", None)], [init("W", [2, 3, 3, 3])])
    save(outdir, "bad_domain", [N("Gelu", ["X"], ["Y"], name="g0", domain="com.microsoft")],
         [vi("X", [4])], [vi("Y", None)])
    save(outdir, "bad_duplicate", [N("Relu", ["X"], ["Y"]), N("Sigmoid", ["X"], ["Y"])],
         [vi("X", [4])], [vi("Y", None)])
    save(outdir, "bad_reshape", [N("Reshape", ["X", "s"], ["Y"], name="r0")],
         [vi("X", [2, 3])], [vi("Y", None)], [ints("s", [4, -1, 5])])
    save_external(outdir, "bad_ext_dotdot", "../secret.bin")
    save_external(outdir, "bad_ext_absolute", "/etc/passwd")
    save_external(outdir, "bad_ext_symlink", "escape.bin")
    save_external(outdir, "bad_ext_range", "ext_ok.bin", 16, 64)


def ifs(outdir):
    """If (ops/control.c): a constant condition drops a branch unseen; hostile branches."""
    N = helper.make_node
    B = TensorProto.BOOL

    def br(name, nodes, outs, inits=()):
        return helper.make_graph(nodes, name, [], [vi(o, None) for o in outs], list(inits))

    def model(name, node, inputs=(vi("X", [2, 3]), vi("c", [1], B)), inits=()):
        save(outdir, name, [node], list(inputs), [vi("Y", None)], inits)

    relu = br("then", [N("Relu", ["X"], ["t"], name="relu")], ["t"])
    # the else branch could not even be shape-inferred: a constant condition drops it unseen
    never = br("else", [N("Reshape", ["X", "s"], ["e"], name="never")], ["e"], [ints("s", [7, -1])])
    model("if_const", N("If", ["c"], ["Y"], name="if0", then_branch=relu, else_branch=never),
          [vi("X", [2, 3])], [numpy_helper.from_array(np.array([True]), "c")])
    transpose = br("else", [N("Transpose", ["X"], ["e"])], ["e"])
    model("bad_if_shapes", N("If", ["c"], ["Y"], name="if0", then_branch=relu,
                             else_branch=transpose))
    model("bad_if_no_else", N("If", ["c"], ["Y"], name="if0", then_branch=relu))
    lost = br("else", [N("Relu", ["nowhere"], ["e"], name="lost")], ["e"])
    model("bad_if_undefined", N("If", ["c"], ["Y"], name="if0", then_branch=relu,
                                else_branch=lost))
    loop = br("else", [N("Relu", ["Y"], ["e"])], ["e"])  # reads the If's own output
    model("bad_if_cycle", N("If", ["c"], ["Y"], name="if0", then_branch=relu, else_branch=loop))
    model("bad_graph_attr", N("Relu", ["X"], ["Y"], name="r0", body=relu))
    two = br("then", [N("Relu", ["X"], ["t"])], ["t", "X"])
    model("bad_if_outputs", N("If", ["c"], ["Y"], name="if0", then_branch=two, else_branch=relu))
    deep = relu
    for i in range(17):
        deep = br("level%d" % i, [N("If", ["c"], ["t"], then_branch=deep, else_branch=relu)],
                  ["t"])
    model("bad_if_deep", N("If", ["c"], ["Y"], name="if0", then_branch=deep, else_branch=relu))


def selections(outdir):
    """NonZero / NonMaxSuppression (ops/detect.c): constant inputs fold to the exact shape; a
    node reading a run-time (bounded) output is refused."""
    N = helper.make_node
    nz = numpy_helper.from_array(np.array([[0, 3], [4, 0], [0, 5]], np.int64), "C")
    save(outdir, "nonzero_const", [N("NonZero", ["C"], ["Y"], name="nz0")], [], [vi("Y", None)],
         [nz])
    save(outdir, "bad_bounded_consumer",
         [N("NonZero", ["X"], ["idx"], name="nz0"), N("Transpose", ["idx"], ["Y"], name="t0")],
         [vi("X", [2, 3])], [vi("Y", None)])
    save(outdir, "bad_nms_max", [N("NonMaxSuppression", ["B", "S", "M"], ["Y"], name="nms0")],
         [vi("B", [1, 4, 4]), vi("S", [1, 1, 4]), vi("M", [1], I64)], [vi("Y", None)])


# Every op of the engine's table (src/engine/shape.c), each fed no inputs and then one empty one.
def selections(outdir):
    """NonZero / NonMaxSuppression (ops/detect.c): constant inputs fold to the exact shape; a
    node reading a run-time (bounded) output is refused."""
    N = helper.make_node
    nz = numpy_helper.from_array(np.array([[0, 3], [4, 0], [0, 5]], np.int64), "C")
    save(outdir, "nonzero_const", [N("NonZero", ["C"], ["Y"], name="nz0")], [], [vi("Y", None)],
         [nz])
    save(outdir, "bad_bounded_consumer",
         [N("NonZero", ["X"], ["idx"], name="nz0"), N("Transpose", ["idx"], ["Y"], name="t0")],
         [vi("X", [2, 3])], [vi("Y", None)])
    save(outdir, "bad_nms_max", [N("NonMaxSuppression", ["B", "S", "M"], ["Y"], name="nms0")],
         [vi("B", [1, 4, 4]), vi("S", [1, 1, 4]), vi("M", [1], I64)], [vi("Y", None)])


# Every op of the engine's table (src/engine/ops/ops.def), so a new row is tested too.
OPS_DEF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "engine",
                       "ops", "ops.def")
with open(OPS_DEF) as f:
    TABLE_OPS = re.findall(r"^OP\((\w+),", f.read(), re.M)


def missing_inputs(outdir):
    for op in TABLE_OPS:
        for tag, inputs in (("noin", []), ("emptyin", [""])):
            save(outdir, "bad_%s_%s" % (tag, op),
                 [helper.make_node(op, inputs, ["Y"], name="bad0")], [vi("X", [4])],
                 [vi("Y", None)])
    with open(os.path.join(outdir, "table_ops.txt"), "w") as f:
        f.write("\n".join(TABLE_OPS) + "\n")


def main():
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    shapes_model(outdir)
    reshape_subgraph(outdir)
    conv_bn_relu(outdir)
    residual(outdir)
    conv_hardswish(outdir)
    symbolic(outdir)
    external_ok(outdir)
    typed_initializers(outdir)
    fp16_model(outdir)
    hostile(outdir)
    ifs(outdir)
    selections(outdir)
    missing_inputs(outdir)
    with open(sys.argv[2], "w") as f:
        f.write("ok\n")


if __name__ == "__main__":
    main()
