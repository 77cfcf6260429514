#!/usr/bin/env python3
"""Writes the five reference models of trainopt with the onnx helper API
(opset 17, random weights from a fixed seed): mlp, cnn, resnet (BatchNorm in
training mode), mobilenet (a MobileNetV2 inverted-residual block) and gpt (a
decoder block with a causal mask).

Usage: gen_models.py OUTDIR [--only NAME] [--batch N]
The batch dim is symbolic ('batch'), so trainopt-compile needs --batch-size.
"""
import argparse
import math
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(0)


class Builder:
    def __init__(self, name):
        self.name = name
        self.nodes, self.inits, self.inputs, self.outputs = [], [], [], []
        self.count = 0

    def fresh(self, hint):
        self.count += 1
        return f"{hint}_{self.count}"

    def param(self, name, shape, scale=None):
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
        scale = scale if scale is not None else 1.0 / math.sqrt(max(fan_in, 1))
        arr = (rng.standard_normal(shape) * scale).astype(np.float32)
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def const(self, value, dtype=np.int64):
        # Constant nodes, as exporters emit them: float initializers would be
        # trainable parameters.
        name = self.fresh("const")
        self.nodes.append(helper.make_node(
            "Constant", [], [name], name=self.fresh("Constant"),
            value=numpy_helper.from_array(np.array(value, dtype=dtype), name)))
        return name

    def op(self, op_type, inputs, n_out=1, **attrs):
        outs = [self.fresh(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs,
                                           name=self.fresh(op_type), **attrs))
        return outs[0] if n_out == 1 else outs

    def input(self, name, elem, shape):
        self.inputs.append(helper.make_tensor_value_info(name, elem, shape))
        return name

    def output(self, value, name, elem, shape):
        self.nodes.append(helper.make_node("Identity", [value], [name], name=f"out_{name}"))
        self.outputs.append(helper.make_tensor_value_info(name, elem, shape))

    def model(self):
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="trainopt gen_models.py")
        m.ir_version = 8
        onnx.checker.check_model(m)
        return m

    # Layers.
    def linear(self, x, fin, fout, prefix):
        w = self.param(f"{prefix}.weight", [fout, fin])
        b = self.param(f"{prefix}.bias", [fout], scale=0.01)
        return self.op("Gemm", [x, w, b], transB=1)

    def conv(self, x, cin, cout, k, prefix, stride=1, pad=0, group=1, bias=True):
        w = self.param(f"{prefix}.weight", [cout, cin // group, k, k])
        ins = [x, w] + ([self.param(f"{prefix}.bias", [cout], scale=0.01)] if bias else [])
        return self.op("Conv", ins, kernel_shape=[k, k], strides=[stride, stride],
                       pads=[pad] * 4, group=group)

    def bn_train(self, x, c, prefix):
        scale = self.param(f"{prefix}.weight", [c], scale=0.0)
        self.inits[-1] = numpy_helper.from_array(np.ones(c, np.float32), scale)
        bias = self.param(f"{prefix}.bias", [c], scale=0.0)
        mean = self.param(f"{prefix}.running_mean", [c], scale=0.0)
        var = self.param(f"{prefix}.running_var", [c], scale=0.0)
        self.inits[-1] = numpy_helper.from_array(np.ones(c, np.float32), var)
        y, rm, rv = self.op("BatchNormalization", [x, scale, bias, mean, var], n_out=3,
                            training_mode=1, momentum=0.9, epsilon=1e-5)
        self.output(rm, f"{prefix}.running_mean_out", TensorProto.FLOAT, [c])
        self.output(rv, f"{prefix}.running_var_out", TensorProto.FLOAT, [c])
        return y

    def layer_norm(self, x, d, prefix):
        g = self.param(f"{prefix}.weight", [d], scale=0.0)
        self.inits[-1] = numpy_helper.from_array(np.ones(d, np.float32), g)
        b = self.param(f"{prefix}.bias", [d], scale=0.0)
        return self.op("LayerNormalization", [x, g, b], axis=-1, epsilon=1e-5)


def mlp():
    b = Builder("mlp")
    x = b.input("x", TensorProto.FLOAT, ["batch", 784])
    h = b.op("Relu", [b.linear(x, 784, 256, "fc1")])
    h = b.op("Relu", [b.linear(h, 256, 256, "fc2")])
    b.output(b.linear(h, 256, 10, "fc3"), "logits", TensorProto.FLOAT, ["batch", 10])
    return b.model()


def cnn(width=1.0):
    c1, c2, f = int(32 * width), int(64 * width), int(128 * width)
    b = Builder("cnn")
    x = b.input("x", TensorProto.FLOAT, ["batch", 1, 28, 28])
    h = b.op("Relu", [b.conv(x, 1, c1, 3, "conv1")])
    h = b.op("Relu", [b.conv(h, c1, c2, 3, "conv2")])
    h = b.op("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2])
    h = b.op("Flatten", [h], axis=1)
    h = b.op("Relu", [b.linear(h, 144 * c2, f, "fc1")])
    b.output(b.linear(h, f, 10, "fc2"), "logits", TensorProto.FLOAT, ["batch", 10])
    return b.model()


def cnn_half():
    """The CNN at half width (16, 32 channels; 64 hidden): a distillation
    student (bench/compression.py)."""
    return cnn(0.5)


def resnet():
    """A small ResNet for 1x28x28 inputs: stem, two basic blocks (one
    downsampling with a projection shortcut), global pooling, classifier."""
    b = Builder("resnet")
    x = b.input("x", TensorProto.FLOAT, ["batch", 1, 28, 28])
    h = b.op("Relu", [b.bn_train(b.conv(x, 1, 16, 3, "stem", pad=1, bias=False), 16, "stem.bn")])

    def block(h, cin, cout, stride, prefix):
        y = b.op("Relu", [b.bn_train(b.conv(h, cin, cout, 3, f"{prefix}.conv1", stride, 1, bias=False),
                                     cout, f"{prefix}.bn1")])
        y = b.bn_train(b.conv(y, cout, cout, 3, f"{prefix}.conv2", 1, 1, bias=False), cout, f"{prefix}.bn2")
        if stride != 1 or cin != cout:
            h = b.bn_train(b.conv(h, cin, cout, 1, f"{prefix}.down", stride, 0, bias=False),
                           cout, f"{prefix}.down.bn")
        return b.op("Relu", [b.op("Add", [y, h])])

    h = block(h, 16, 16, 1, "layer1")
    h = block(h, 16, 32, 2, "layer2")
    h = b.op("Flatten", [b.op("GlobalAveragePool", [h])], axis=1)
    b.output(b.linear(h, 32, 10, "fc"), "logits", TensorProto.FLOAT, ["batch", 10])
    return b.model()


def mobilenet():
    """A MobileNetV2 inverted-residual block: 1x1 expand, 3x3 depthwise,
    ReLU6 (Clip), 1x1 linear projection, residual add."""
    b = Builder("mobilenet")
    x = b.input("x", TensorProto.FLOAT, ["batch", 16, 14, 14])
    lo, hi = b.const(0.0, np.float32), b.const(6.0, np.float32)
    h = b.op("Clip", [b.bn_train(b.conv(x, 16, 96, 1, "expand", bias=False), 96, "expand.bn"), lo, hi])
    h = b.op("Clip", [b.bn_train(b.conv(h, 96, 96, 3, "dw", pad=1, group=96, bias=False), 96, "dw.bn"), lo, hi])
    h = b.bn_train(b.conv(h, 96, 16, 1, "project", bias=False), 16, "project.bn")
    y = b.op("Add", [h, x])
    h = b.op("Flatten", [b.op("GlobalAveragePool", [y])], axis=1)
    b.output(b.linear(h, 16, 10, "fc"), "logits", TensorProto.FLOAT, ["batch", 10])
    return b.model()


def gpt(vocab=96, seq=16, dim=64, heads=4):
    """One GPT-2 style block with tied shapes: token + position embeddings,
    causal self-attention (Trilu mask + Where), GELU MLP (erf form, and the
    tanh form in the attention output path), final LayerNorm and LM head."""
    b = Builder("gpt")
    hd = dim // heads
    ids = b.input("ids", TensorProto.INT64, ["batch", seq])
    tok = b.op("Gather", [b.param("wte", [vocab, dim], 0.02), ids], axis=0)
    pos_table = b.param("wpe", [64, dim], 0.02)
    pos = b.op("Slice", [pos_table, b.const([0]), b.const([seq]), b.const([0])])
    h = b.op("Add", [tok, pos])
    a = b.layer_norm(h, dim, "ln1")
    qkv = b.op("Add", [b.op("MatMul", [a, b.param("attn.c_attn.weight", [dim, 3 * dim])]),
                       b.param("attn.c_attn.bias", [3 * dim], 0.01)])
    q, k, v = b.op("Split", [qkv, b.const([dim, dim, dim])], n_out=3, axis=2)

    def heads_of(t):
        t = b.op("Reshape", [t, b.const([0, seq, heads, hd])])
        return b.op("Transpose", [t], perm=[0, 2, 1, 3])

    q, k, v = heads_of(q), heads_of(k), heads_of(v)
    s = b.op("Div", [b.op("MatMul", [q, b.op("Transpose", [k], perm=[0, 1, 3, 2])]),
                     b.const(math.sqrt(hd), np.float32)])
    ones = b.op("ConstantOfShape", [b.const([seq, seq])],
                value=numpy_helper.from_array(np.ones(1, np.float32)))
    mask = b.op("Equal", [b.op("Trilu", [ones], upper=0), b.const(0.0, np.float32)])
    s = b.op("Where", [mask, b.const(-1e9, np.float32), s])
    p = b.op("Softmax", [s], axis=-1)
    o = b.op("Transpose", [b.op("MatMul", [p, v])], perm=[0, 2, 1, 3])
    o = b.op("Reshape", [o, b.const([0, seq, dim])])
    o = b.op("Add", [b.op("MatMul", [o, b.param("attn.c_proj.weight", [dim, dim])]),
                     b.param("attn.c_proj.bias", [dim], 0.01)])
    h = b.op("Add", [h, o])
    m = b.layer_norm(h, dim, "ln2")
    m = b.op("Add", [b.op("MatMul", [m, b.param("mlp.c_fc.weight", [dim, 4 * dim])]),
                     b.param("mlp.c_fc.bias", [4 * dim], 0.01)])
    # GELU, erf form: 0.5 * x * (1 + erf(x / sqrt(2))).
    e = b.op("Erf", [b.op("Div", [m, b.const(math.sqrt(2.0), np.float32)])])
    m = b.op("Mul", [b.op("Mul", [m, b.const(0.5, np.float32)]),
                     b.op("Add", [e, b.const(1.0, np.float32)])])
    m = b.op("Add", [b.op("MatMul", [m, b.param("mlp.c_proj.weight", [4 * dim, dim])]),
                     b.param("mlp.c_proj.bias", [dim], 0.01)])
    # GELU, tanh form, on the residual stream (as in GPT-2's new_gelu).
    c = b.op("Mul", [b.op("Add", [m, b.op("Mul", [b.op("Pow", [m, b.const(3.0, np.float32)]),
                                                 b.const(0.044715, np.float32)])]),
                     b.const(math.sqrt(2.0 / math.pi), np.float32)])
    m = b.op("Mul", [b.op("Mul", [m, b.const(0.5, np.float32)]),
                     b.op("Add", [b.op("Tanh", [c]), b.const(1.0, np.float32)])])
    h = b.op("Add", [h, m])
    # Concat of the last hidden state and the residual for a wider head.
    h = b.op("Concat", [b.layer_norm(h, dim, "ln_f"), h], axis=2)
    logits = b.op("MatMul", [h, b.param("lm_head.weight", [2 * dim, vocab], 0.02)])
    b.output(logits, "logits", TensorProto.FLOAT, ["batch", seq, vocab])
    return b.model()


def stochastic():
    """An MLP with every random op PyTorch exports: stochastic depth on a
    residual branch (RandomUniformLike, Less, Cast, as torchvision's
    StochasticDepth exports), Gaussian noise (RandomNormalLike) and a
    Bernoulli mask from data-dependent probabilities."""
    b = Builder("stochastic")
    x = b.input("x", TensorProto.FLOAT, ["batch", 784])
    h = b.op("Relu", [b.linear(x, 784, 64, "fc1")])
    row = b.op("ReduceMean", [h], axes=[1], keepdims=1)
    u = b.op("RandomUniformLike", [row])
    keep = b.op("Cast", [b.op("Less", [u, b.const(0.8, np.float32)])], to=TensorProto.FLOAT)
    branch = b.op("Relu", [b.linear(h, 64, 64, "fc2")])
    h = b.op("Add", [h, b.op("Div", [b.op("Mul", [branch, keep]), b.const(0.8, np.float32)])])
    h = b.op("Add", [h, b.op("RandomNormalLike", [h], scale=0.1)])
    gate = b.op("Sigmoid", [b.linear(h, 64, 64, "gate")])
    h = b.op("Mul", [h, b.op("Bernoulli", [gate])])
    b.output(b.linear(h, 64, 10, "fc3"), "logits", TensorProto.FLOAT, ["batch", 10])
    m = b.model()
    m.opset_import[0].version = 17
    return m


MODELS = {"mlp": mlp, "cnn": cnn, "resnet": resnet, "mobilenet": mobilenet, "gpt": gpt,
          "stochastic": stochastic, "cnn_half": cnn_half}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("outdir")
    ap.add_argument("--only", choices=sorted(MODELS))
    args = ap.parse_args()
    os.makedirs(args.outdir, exist_ok=True)
    for name, fn in MODELS.items():
        if args.only and name != args.only:
            continue
        onnx.save(fn(), os.path.join(args.outdir, f"{name}.onnx"))


if __name__ == "__main__":
    sys.exit(main())
