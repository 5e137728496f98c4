#!/usr/bin/python3
"""Copies ONNX node tests whose shape operands are graph inputs (Resize scales/sizes/roi,
Upsample scales) with those inputs baked in as initializers from test_data_set_0, so the
engine's constant-operand path can be checked against the same reference outputs:

    /usr/bin/python3 tests/engine/gen_const_inputs.py /tmp/const-tests test_resize_ test_upsample
    build/tests/engine/shmfaas-conformance --root /tmp/const-tests --verbose
"""
import glob
import os
import shutil
import sys

import onnx

DATA = "/usr/share/libonnx-testdata/data"


def bake(src, dst):
    model = onnx.load(os.path.join(src, "model.onnx"))
    os.makedirs(os.path.join(dst, "test_data_set_0"))
    kept = [model.graph.input[0]]
    for k, vi in enumerate(model.graph.input):
        pb = os.path.join(src, "test_data_set_0", "input_%d.pb" % k)
        if k == 0:
            shutil.copy(pb, os.path.join(dst, "test_data_set_0", "input_0.pb"))
            continue
        t = onnx.load_tensor(pb)
        t.name = vi.name
        model.graph.initializer.append(t)
    del model.graph.input[:]
    model.graph.input.extend(kept)
    onnx.save(model, os.path.join(dst, "model.onnx"))
    for out in glob.glob(os.path.join(src, "test_data_set_0", "output_*.pb")):
        shutil.copy(out, os.path.join(dst, "test_data_set_0"))


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    root = sys.argv[1]
    for suite in ("node", "pytorch-converted", "pytorch-operator", "simple"):
        os.makedirs(os.path.join(root, suite), exist_ok=True)
    for prefix in sys.argv[2:]:
        for src in sorted(glob.glob(os.path.join(DATA, "node", prefix + "*"))):
            bake(src, os.path.join(root, "node", os.path.basename(src)))


if __name__ == "__main__":
    main()
