#!/usr/bin/env python3
"""Writes deliberately broken or hostile ONNX models for the importer's
error tests: make_bad_models.py CASE OUTDIR writes OUTDIR/model.onnx (and any
side files the case needs). Cases are listed by --help."""
import argparse
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def small_model(nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def relu_model():
    return small_model(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])])


def external_model(location, offset=0, length=None, shape=(4,)):
    """A model whose initializer 'w' lives in external data at `location`."""
    w = TensorProto()
    w.name = "w"
    w.data_type = TensorProto.FLOAT
    w.dims.extend(shape)
    w.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", str(offset)),
                       ("length", None if length is None else str(length))):
        if value is not None:
            entry = w.external_data.add()
            entry.key, entry.value = key, value
    return small_model(
        [helper.make_node("Add", ["x", "w"], ["y"], name="add")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))],
        [w])


def write(model, out):
    with open(os.path.join(out, "model.onnx"), "wb") as f:
        f.write(model.SerializeToString())


def case_truncated(out):
    data = relu_model().SerializeToString()
    big = small_model(
        [helper.make_node("Add", ["x", "w"], ["y"], name="add")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [64])],
        [numpy_helper.from_array(np.ones(64, np.float32), "w")])
    data = big.SerializeToString()
    with open(os.path.join(out, "model.onnx"), "wb") as f:
        f.write(data[: len(data) // 2])


def case_unsupported(out):
    write(small_model(
        [helper.make_node("Relu", ["x"], ["a"], name="relu"),
         helper.make_node("Unique", ["a"], ["b"], name="unique1"),
         helper.make_node("FusedGemm", ["b"], ["c"], name="fused", domain="com.microsoft"),
         helper.make_node("Det", ["c"], ["y"], name="det")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
         helper.make_tensor_value_info("w", TensorProto.FLOAT, [1, 12, 3]),
         helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, 12, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])]), out)


def case_ext_dotdot(out):
    with open(os.path.join(out, "..", "secret.bin"), "wb") as f:
        f.write(np.ones(4, np.float32).tobytes())
    write(external_model("../secret.bin"), out)


def case_ext_absolute(out):
    write(external_model("/etc/passwd"), out)


def linked_outside(out, name, link):
    """External data 'weights.bin' made by `link(target, path)` to the file
    `name` outside the model's directory."""
    outside = os.path.join(out, "..", name)
    with open(outside, "wb") as f:
        f.write(np.ones(4, np.float32).tobytes())
    path = os.path.join(out, "weights.bin")
    if os.path.lexists(path):
        os.remove(path)
    link(os.path.abspath(outside), path)
    write(external_model("weights.bin"), out)


def case_ext_symlink(out):
    linked_outside(out, "outside.bin", os.symlink)


def case_ext_range(out):
    with open(os.path.join(out, "weights.bin"), "wb") as f:
        f.write(np.ones(4, np.float32).tobytes())
    write(external_model("weights.bin", offset=8, length=16), out)


def case_ext_ok(out):
    with open(os.path.join(out, "weights.bin"), "wb") as f:
        f.write(b"\0" * 8 + np.arange(4, dtype=np.float32).tobytes())
    write(external_model("weights.bin", offset=8, length=16), out)


def case_overflow(out):
    w = TensorProto()
    w.name = "w"
    w.data_type = TensorProto.FLOAT
    w.dims.extend([2**32, 2**32, 4])
    w.raw_data = b"\0" * 16
    model = small_model(
        [helper.make_node("Add", ["x", "w"], ["y"], name="add")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], [w])
    write(model, out)


def case_raw_length(out):
    w = TensorProto()
    w.name = "w"
    w.data_type = TensorProto.FLOAT
    w.dims.extend([3, 4])
    w.raw_data = b"\0" * 20
    model = small_model(
        [helper.make_node("Add", ["x", "w"], ["y"], name="add")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4])], [w])
    write(model, out)


def case_symbolic(out):
    write(small_model(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3]),
         helper.make_tensor_value_info("t", TensorProto.FLOAT, [2, "seq"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])]), out)


def case_opset(out):
    model = relu_model()
    model.opset_import[0].version = 11
    write(model, out)


def case_semantic(out):
    """Several node-level problems: all are reported together."""
    write(small_model(
        [helper.make_node("Add", ["x", "v"], ["a"], name="bad_add"),
         helper.make_node("Reshape", ["x", "s"], ["b"], name="dyn_reshape"),
         helper.make_node("Conv", ["x4", "w4"], ["c"], name="bad_conv", strides=[1.0, 1.0]),
         helper.make_node("Relu", ["a"], ["d"], name="after_bad_add"),
         helper.make_node("Relu", ["undefined"], ["e"], name="dangling")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
         helper.make_tensor_value_info("v", TensorProto.FLOAT, [4]),
         helper.make_tensor_value_info("s", TensorProto.INT64, [2]),
         helper.make_tensor_value_info("x4", TensorProto.FLOAT, [1, 1, 4, 4]),
         helper.make_tensor_value_info("w4", TensorProto.FLOAT, [1, 1, 3, 3])],
        [helper.make_tensor_value_info("d", TensorProto.FLOAT, [2, 3]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, [3, 2]),
         helper.make_tensor_value_info("c", TensorProto.FLOAT, [1, 1, 2, 2]),
         helper.make_tensor_value_info("e", TensorProto.FLOAT, [2, 3])]), out)


def case_dtype(out):
    write(small_model(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        [helper.make_tensor_value_info("x", TensorProto.UINT16, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.UINT16, [2, 3])]), out)


def case_hostile(out):
    """Sizes chosen to overflow, exhaust memory or crash a careless importer;
    each must be one clean problem in the single error."""
    big = TensorProto()
    big.name = "big"
    big.data_type = TensorProto.FLOAT
    big.dims.extend([1 << 40])  # 4 TiB declared, no data
    ext = TensorProto()
    ext.data_type = TensorProto.FLOAT
    ext.dims.extend([1])
    ext.data_location = TensorProto.EXTERNAL
    entry = ext.external_data.add()
    entry.key, entry.value = "location", "model.onnx"
    c = lambda name, vals, dtype=TensorProto.INT64: helper.make_node(
        "Constant", [], [name], name=name, value=helper.make_tensor(name, dtype, [len(vals)], vals))
    nodes = [
        helper.make_node("Add", ["v16", "big"], ["o_big"], name="uses_big"),
        c("shape_huge", [1152921504606846977, 16]),
        helper.make_node("Reshape", ["v16", "shape_huge"], ["o_reshape"], name="reshape_overflow"),
        helper.make_node("Conv", ["x10", "w5"], ["o_conv"], name="conv_dilation", dilations=[2**62]),
        c("axes0", [0]),
        helper.make_node("Squeeze", ["scalar", "axes0"], ["o_squeeze"], name="squeeze_scalar"),
        helper.make_node("Split", ["v16"], ["o_split"], name="split_many", num_outputs=10**12),
        helper.make_node("Constant", [], ["start"], name="start", value=helper.make_tensor("s", TensorProto.FLOAT, [], [0.0])),
        helper.make_node("Constant", [], ["limit"], name="limit", value=helper.make_tensor("l", TensorProto.FLOAT, [], [float("inf")])),
        helper.make_node("Constant", [], ["delta"], name="delta", value=helper.make_tensor("d", TensorProto.FLOAT, [], [1.0])),
        helper.make_node("Range", ["start", "limit", "delta"], ["o_range"], name="range_inf"),
        c("dims", [2]),
        helper.make_node("ConstantOfShape", ["dims"], ["o_cos"], name="cos_external", value=ext),
        c("neg", [-5]),
        helper.make_node("Expand", ["v16", "neg"], ["o_expand"], name="expand_negative"),
    ]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("v16", TensorProto.FLOAT, [16]),
         helper.make_tensor_value_info("x10", TensorProto.FLOAT, [1, 1, 10]),
         helper.make_tensor_value_info("w5", TensorProto.FLOAT, [1, 1, 5]),
         helper.make_tensor_value_info("scalar", TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None)
         for o in ("o_big", "o_reshape", "o_conv", "o_squeeze", "o_split", "o_range", "o_cos", "o_expand")],
        [big])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    write(model, out)


def case_eval_export(out):
    """What torch.onnx.export's defaults write for Conv-BatchNorm-ReLU: the
    BatchNorm folded into the Conv, whose weight gets a generated name; and
    a BatchNormalization left in inference form."""
    w = numpy_helper.from_array(np.full((4, 3, 3, 3), 0.1, np.float32), "onnx::Conv_7")
    b = numpy_helper.from_array(np.zeros(4, np.float32), "onnx::Conv_8")
    stats = [numpy_helper.from_array(np.full(4, v, np.float32), n)
             for n, v in (("bn.weight", 1.0), ("bn.bias", 0.0), ("bn.running_mean", 0.0),
                          ("bn.running_var", 1.0))]
    write(small_model(
        [helper.make_node("Conv", ["x", "onnx::Conv_7", "onnx::Conv_8"], ["c"], name="/conv1/Conv",
                          pads=[1, 1, 1, 1]),
         helper.make_node("BatchNormalization", ["c", "bn.weight", "bn.bias", "bn.running_mean",
                                                 "bn.running_var"], ["n"], name="/bn/BatchNorm"),
         helper.make_node("Relu", ["n"], ["y"], name="/relu/Relu")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4, 8, 8])],
        [w, b] + stats), out)


def case_ssa(out):
    """Names assigned twice, which the ONNX checker refuses: two nodes
    writing one name, a node output shadowing a graph input, an output
    listed twice."""
    write(small_model(
        [helper.make_node("Relu", ["x"], ["a"], name="first"),
         helper.make_node("Neg", ["x"], ["a"], name="second"),
         helper.make_node("Abs", ["a"], ["x"], name="shadow")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3]),
         helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3])]), out)


def case_ext_hardlink(out):
    """External data through a hard link to a file outside the model's
    directory (issue 18's defect 8)."""
    linked_outside(out, "outside-hard.bin", os.link)


def case_unknown_attr(out):
    """Attributes the op's ONNX schema does not define (issue 18's defect
    9): a Relu carrying 1 MB of junk, a Conv with a misspelt 'pad'."""
    junk = helper.make_attribute("junk", b"\0" * (1 << 20))
    relu = helper.make_node("Relu", ["x"], ["r"], name="relu")
    relu.attribute.append(junk)
    conv = helper.make_node("Conv", ["img", "w"], ["c"], name="conv", kernel_shape=[3, 3],
                            pad=[1, 1, 1, 1])
    w = numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "w")
    write(small_model(
        [relu, conv],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
         helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, 1, 5, 5])],
        [helper.make_tensor_value_info("r", TensorProto.FLOAT, [2, 3]),
         helper.make_tensor_value_info("c", TensorProto.FLOAT, [1, 2, 3, 3])], [w]), out)


def case_neg_dim(out):
    """A negative input dim (issue 18): not a symbolic batch dim."""
    write(small_model([helper.make_node("Relu", ["x"], ["y"], name="relu")],
                      [helper.make_tensor_value_info("x", TensorProto.FLOAT, [-5, 3])],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, [-5, 3])]), out)


def case_recurrent_shapes(out):
    """Recurrent layers with optional operands of the wrong shape (found by
    fuzz_onnx: a bias of 1 element made the importer read past its shape):
    an RNN's B, a GRU's initial_h, an LSTM's initial_c and peepholes."""
    T, B, I, H = 2, 3, 3, 5
    def f(name, shape):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)
    nodes, inputs, outputs = [], [], []
    for op, gates, bad in (("RNN", 1, {"B": [1]}), ("GRU", 3, {"initial_h": [1, 2, H]}),
                           ("LSTM", 4, {"initial_c": [1, B, 4], "P": [1, 3 * H + 1]})):
        names = [op + "_" + n if n else "" for n in ("X", "W", "R", "B", "", "initial_h")]
        shapes = {"X": [T, B, I], "W": [1, gates * H, I], "R": [1, gates * H, H],
                  "B": [1, 2 * gates * H], "initial_h": [1, B, H]}
        if op == "LSTM":
            names += [op + "_initial_c", op + "_P"]
            shapes.update({"initial_c": [1, B, H], "P": [1, 3 * H]})
        shapes.update(bad)
        for n in names:
            if n:
                inputs.append(f(n, shapes[n[len(op) + 1:]]))
        nodes.append(helper.make_node(op, names, ["", op + "_Y_h"], name=op.lower(),
                                      hidden_size=H))
        outputs.append(f(op + "_Y_h", [1, B, H]))
    write(small_model(nodes, inputs, outputs, opset=14), out)


def case_nan_seed(out):
    """A random node whose float seed is NaN (found by fuzz_onnx: converting
    it to an integer was undefined behaviour)."""
    write(small_model([helper.make_node("Bernoulli", ["x"], ["y"], name="coin",
                                        seed=float("nan"))],
                      [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
                      opset=15), out)


def case_deep_if(out, depth=60):
    """If nested 60 deep (issue 18): well-formed, but deeper than protobuf
    reads. Encoded by hand: Python's protobuf refuses to build it."""
    def varint(n):
        b = bytearray()
        while True:
            low, n = n & 0x7F, n >> 7
            b.append(low | (0x80 if n else 0))
            if not n:
                return bytes(b)

    def field(num, payload):
        if isinstance(payload, int):
            return varint(num << 3) + varint(payload)
        return varint((num << 3) | 2) + varint(len(payload)) + payload

    def text(num, s):
        return field(num, s.encode())

    def value_info(name, elem=1, dims=(2,)):
        shape = b"".join(field(1, field(1, d)) for d in dims)
        return text(1, name) + field(2, field(1, field(1, elem) + field(2, shape)))

    def graph(nodes, name, inputs, outputs):
        return (b"".join(field(1, n) for n in nodes) + text(2, name) +
                b"".join(field(11, i) for i in inputs) + b"".join(field(12, o) for o in outputs))

    def if_node(then):
        branch = lambda name, g: field(5, text(1, name) + field(6, g) + field(20, 5))
        return text(1, "c") + text(2, "o") + text(4, "If") + branch("then_branch", then) + \
            branch("else_branch", leaf)

    leaf = graph([text(1, "x") + text(2, "o") + text(4, "Identity")], "leaf", [],
                 [value_info("o")])
    g = leaf
    for d in range(depth - 1):
        g = graph([if_node(g)], f"b{d}", [], [value_info("o")])
    top = graph([if_node(g)], "g", [value_info("x"), value_info("c", elem=9, dims=())],
                [value_info("o")])
    with open(os.path.join(out, "model.onnx"), "wb") as f:
        f.write(field(1, 8) + field(7, top) + field(8, text(1, "") + field(2, 17)))


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("case", choices=sorted(CASES))
    ap.add_argument("outdir")
    args = ap.parse_args()
    os.makedirs(args.outdir, exist_ok=True)
    CASES[args.case](args.outdir)


if __name__ == "__main__":
    sys.exit(main())
