#!/usr/bin/env python3
"""Piecewise ops at their kinks against PyTorch's autograd: each case is a
tiny float64 model whose parameter sits exactly on the op's boundaries
(ReLU at 0, ReLU6 and Hardtanh at their bounds, LeakyReLU at 0, Max/Min and
amax ties, MaxPool ties, Abs at 0, Where, and the activations the importer
decomposes: HardSigmoid and HardSwish at +-3, ELU, CELU, SELU, Softplus,
Softsign, Sign and PReLU at 0), and the composite ops the importer
decomposes (ConvTranspose, Resize, CumSum, Einsum, GatherElements,
ScatterElements, TopK, ReduceProd, Tile, DepthToSpace, LSTM, GRU, RNN,
Mod), exported with torch.onnx.export,
trained one SGD step (lr=1, cross-entropy) by the compiled program
(trainopt-compile, trainopt-run) and by the reference evaluator
(trainopt-eval), and compared with PyTorch's step from the same weights.
A boundary rule that differs from PyTorch moves some element by O(0.1).

Usage (a Python with torch and numpy, e.g. Debian's python3-torch):
    boundary_vs_torch.py --bin build/bin [--cases relu,clip6,...]
Prints one line per case; exits non-zero if any differs by more than 1e-12.
"""
import argparse
import copy
import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_torch_models import legacy_exporter  # noqa: E402

BATCH = 3
# Values on and around the kinks of every case below.
EDGE = [-2.0, -1.0, -0.5, 0.0, 0.0, 0.5, 1.0, 6.0, 6.0, 7.0]


# HardSigmoid and HardSwish bend at -3 and 3; the exponential units,
# Softplus, Softsign and Sign at 0.
HARD = [-4.0, -3.0, -3.0, -1.0, 0.0, 1.0, 3.0, 3.0, 4.0, 2.5]
SMOOTH = [-2.0, -1.0, -0.5, 0.0, 0.0, 0.5, 1.0, 2.0, 8.0, -8.0]
# Per-case tolerance where the exported graph itself is not float64: ONNX
# float attributes are float32 (HardSigmoid's alpha = 1/6 becomes
# 0.16666667163), CELU runs in float32. A boundary rule that differs from
# PyTorch's moves an element by O(0.1), far above these.
TOLERANCE = {"hardsigmoid": 1e-8, "celu": 1e-6}


class Elementwise(nn.Module):
    """logits = f(p) + x, with p a [1, 10] parameter on the kinks."""

    def __init__(self, f, values=EDGE):
        super().__init__()
        self.f = f
        self.p = nn.Parameter(torch.tensor([values], dtype=torch.float64))

    def forward(self, x):
        return self.f(self.p) + x


class Pair(nn.Module):
    """logits = f(p, q) + x: ties where p == q."""

    def __init__(self, f):
        super().__init__()
        self.f = f
        self.p = nn.Parameter(torch.tensor([EDGE], dtype=torch.float64))
        self.q = nn.Parameter(torch.tensor([[0.0, -1.0, 1.0, 0.0, 2.0, 0.5, 1.0, 5.0, 6.0, 8.0]],
                                           dtype=torch.float64))

    def forward(self, x):
        return self.f(self.p, self.q) + x


class Pool(nn.Module):
    """A 2x2 max-pool over a 4x5 parameter with ties inside windows
    (PyTorch routes a tie to the first maximum in window order)."""

    def __init__(self):
        super().__init__()
        self.p = nn.Parameter(torch.tensor([[[[1.0, 1.0, 0.0, 2.0, 3.0],
                                              [1.0, 0.5, 2.0, 2.0, 3.0],
                                              [0.0, 0.0, 4.0, 1.0, 1.0],
                                              [0.0, 0.0, 1.0, 4.0, 1.0]]]], dtype=torch.float64))

    def forward(self, x):
        # 3x3 windows, stride 1, padding 1: every element is in several
        # windows, ties inside and across windows.
        return torch.flatten(F.max_pool2d(self.p, 3, stride=1, padding=1), 1)[:, :10] + x


class Amax(nn.Module):
    """amax over a row with ties: PyTorch shares the gradient evenly."""

    def __init__(self):
        super().__init__()
        self.p = nn.Parameter(torch.tensor([[1.0, 3.0, 3.0, 2.0], [5.0, 5.0, 5.0, 0.0]] * 5,
                                           dtype=torch.float64))

    def forward(self, x):
        return torch.amax(self.p, dim=1, keepdim=False).unsqueeze(0) + x


class PRelu(nn.Module):
    """nn.PReLU with a slope per channel over a [1, 2, 5] parameter with
    zeros: the slope's gradient is x on the negative side, 0 at 0."""

    def __init__(self):
        super().__init__()
        self.act = nn.PReLU(2, init=0.3).double()
        self.p = nn.Parameter(torch.tensor([[[-2.0, -1.0, 0.0, 0.0, 1.0],
                                             [0.0, -0.5, 2.0, -3.0, 0.0]]],
                                           dtype=torch.float64))

    def forward(self, x):
        return torch.flatten(self.act(self.p), 1) + x


class Norm(nn.Module):
    """A normalization over a [1, 4, 5] parameter (GroupNorm and
    InstanceNorm export as ONNX InstanceNormalization; affine parameters
    trained too), the first 10 outputs as logits."""

    def __init__(self, norm):
        super().__init__()
        self.norm = norm.double()
        self.p = nn.Parameter(torch.tensor(
            [[[0.5, -1.0, 2.0, 0.0, 1.5], [1.0, 1.0, -2.0, 0.25, 3.0],
              [-0.5, 0.0, 0.0, 4.0, -3.0], [2.0, -2.0, 1.0, -1.0, 0.5]]],
            dtype=torch.float64))
        with torch.no_grad():
            if getattr(self.norm, "weight", None) is not None:
                self.norm.weight.copy_(torch.tensor([0.5, 1.5, -1.0, 2.0]))
                self.norm.bias.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))

    def forward(self, x):
        return torch.flatten(self.norm(self.p), 1)[:, :10] + x


class Shaped(nn.Module):
    """logits = flatten(f(p, *extra)) @ M: a parameter p of `shape` (values
    from a fixed generator, or `values`), the composite op f, and a fixed
    random projection M onto 10 logits so every output element reaches the
    loss. `modules` (trained too) are the op's own layers."""

    def __init__(self, f, shape, values=None, modules=None, seed=1):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.f = f
        self.layers = nn.ModuleList(modules or [])
        init = torch.randn(shape, generator=g, dtype=torch.float64)
        if values is not None:
            init = torch.tensor(values, dtype=torch.float64).reshape(shape)
        self.p = nn.Parameter(init)
        with torch.no_grad():
            out = f(self, init).reshape(1, -1)
        self.register_buffer("m", torch.randn(out.shape[1], 10, generator=g,
                                              dtype=torch.float64) / out.shape[1] ** 0.5)

    def forward(self, x):
        return self.f(self, self.p).reshape(1, -1) @ self.m + x


def rnn_output(layer):
    """The sequence output and final states of a recurrent layer."""
    def f(m, p):
        y, state = m.layers[0](p)
        states = state if isinstance(state, tuple) else (state,)
        return torch.cat([y.reshape(-1)] + [s.reshape(-1) for s in states])
    return lambda: Shaped(f, (1, 4, 3), modules=[layer.double()])


INDEX = torch.tensor([[2, 0, 1], [1, 1, 3], [0, 3, 3]])


CASES = {
    "relu": lambda: Elementwise(F.relu),
    "relu6": lambda: Elementwise(F.relu6),
    "hardtanh": lambda: Elementwise(lambda p: F.hardtanh(p, -1.0, 1.0)),
    "leaky_relu": lambda: Elementwise(lambda p: F.leaky_relu(p, 0.1)),
    "abs": lambda: Elementwise(torch.abs),
    "where": lambda: Elementwise(lambda p: torch.where(p > 0, p * 3.0, p * -2.0)),
    "maximum": lambda: Pair(torch.maximum),
    "minimum": lambda: Pair(torch.minimum),
    "max_pool": Pool,
    "amax": Amax,
    # Activations the importer decomposes (MathHandlers.cpp), at their
    # kinks and around them.
    "hardsigmoid": lambda: Elementwise(F.hardsigmoid, HARD),
    "hardswish": lambda: Elementwise(F.hardswish, HARD),
    "elu": lambda: Elementwise(lambda p: F.elu(p, 0.7), SMOOTH),
    # PyTorch exports CELU through float32 (ONNX Celu is float only).
    "celu": lambda: Elementwise(lambda p: F.celu(p.float(), 1.5).double(), SMOOTH),
    "selu": lambda: Elementwise(F.selu, SMOOTH),
    "softplus": lambda: Elementwise(F.softplus, SMOOTH),
    "softsign": lambda: Elementwise(F.softsign, SMOOTH),
    "sign": lambda: Elementwise(lambda p: torch.sign(p) * p, SMOOTH),
    "prelu": lambda: PRelu(),
    "hardshrink": lambda: Elementwise(lambda p: F.hardshrink(p, 0.5), SMOOTH),
    "softshrink": lambda: Elementwise(lambda p: F.softshrink(p, 1.0), SMOOTH),
    # Normalizations and reductions the importer decomposes (smooth: these
    # check the decompositions' values and gradients, not kinks).
    "group_norm": lambda: Norm(nn.GroupNorm(2, 4)),
    "instance_norm": lambda: Norm(nn.InstanceNorm1d(4, affine=True)),
    "normalize": lambda: Elementwise(lambda p: F.normalize(p, dim=1), SMOOTH),
    "logsumexp": lambda: Elementwise(
        lambda p: p - torch.logsumexp(p, dim=1, keepdim=True), SMOOTH),
    # Ops the importer decomposes into gathers, scatters, pads, matmuls and
    # conv_grad_input (values and gradients; kinks only where noted).
    "conv_transpose": lambda: Shaped(lambda m, p: m.layers[0](p), (1, 2, 3, 3), modules=[
        nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1).double()]),
    "conv_transpose_1d": lambda: Shaped(lambda m, p: m.layers[0](p), (1, 4, 5), modules=[
        nn.ConvTranspose1d(4, 4, 3, stride=2, groups=2, dilation=2).double()]),
    "upsample_bilinear": lambda: Shaped(lambda m, p: F.interpolate(
        p, scale_factor=2, mode="bilinear", align_corners=False), (1, 2, 3, 4)),
    "upsample_bilinear_ac": lambda: Shaped(lambda m, p: F.interpolate(
        p, size=(5, 7), mode="bilinear", align_corners=True), (1, 2, 3, 4)),
    "upsample_nearest": lambda: Shaped(lambda m, p: F.interpolate(
        p, scale_factor=2, mode="nearest"), (1, 2, 3, 4)),
    "cumsum": lambda: Shaped(lambda m, p: torch.cumsum(p, dim=1), (3, 5)),
    "einsum": lambda: Shaped(lambda m, p: torch.einsum(
        "bij,bjk->bik", p[:, :, :3], p[:, :3, :]), (2, 3, 4)),
    # A subscript summed out before the contraction, and an ellipsis.
    "einsum_sum": lambda: Shaped(lambda m, p: torch.einsum(
        "...ij,...kj->...k", p, p[:, 1:, :] * 2.0), (2, 3, 4)),
    # A diagonal (a subscript repeated in one term) and a trace.
    "einsum_diagonal": lambda: Shaped(lambda m, p: torch.einsum("bii->bi", p) + torch.einsum(
        "bjj->b", p).unsqueeze(1), (2, 3, 3)),
    "gather_elements": lambda: Shaped(lambda m, p: torch.gather(p, 1, INDEX), (3, 4)),
    # Distinct indices per row: with repeats, ONNX leaves ScatterElements
    # undefined (trainopt adds the updates, torch keeps one).
    "scatter_elements": lambda: Shaped(lambda m, p: p[:, :4].scatter(
        1, torch.tensor([[2, 0], [1, 3], [0, 3]]), p[:, 4:6]), (3, 6)),
    # torch.topk's order among ties is unspecified (trainopt takes the lowest
    # index first), so the values here are distinct.
    "topk": lambda: Shaped(lambda m, p: torch.topk(p, 3, dim=1).values, (2, 5)),
    "topk_smallest": lambda: Shaped(
        lambda m, p: torch.topk(p, 2, dim=0, largest=False).values, (4, 3)),
    # Zeros in the product: the gradient there is the product of the rest.
    "prod": lambda: Shaped(lambda m, p: torch.prod(p, dim=1), (3, 4),
                           values=[1.5, 0.0, 2.0, -1.0, 0.0, 0.0, 3.0, 1.0, 0.5, -2.0, 1.5, 2.0]),
    "tile": lambda: Shaped(lambda m, p: p.repeat(2, 3), (2, 2)),
    "pixel_shuffle": lambda: Shaped(lambda m, p: F.pixel_shuffle(p, 2), (1, 8, 2, 2)),
    "lstm": rnn_output(nn.LSTM(3, 5, batch_first=True)),
    "gru_bidirectional": rnn_output(nn.GRU(3, 4, bidirectional=True, batch_first=True)),
    "rnn_relu": rnn_output(nn.RNN(3, 4, nonlinearity="relu", batch_first=True)),
    "fmod": lambda: Shaped(lambda m, p: torch.fmod(p, 0.7), (2, 5)),
}


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--tolerance", type=float, default=1e-12)
    args = ap.parse_args()
    tool = lambda name: os.path.join(args.bin, name)
    rng = np.random.default_rng(0)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases.split(","):
            model = CASES[name]().double().train()
            x = np.zeros((BATCH, 10))
            y = rng.integers(0, 10, BATCH).astype(np.int64)
            onnx_path = os.path.join(tmp, f"{name}.onnx")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(copy.deepcopy(model), (torch.from_numpy(x),), onnx_path,
                                  opset_version=17, do_constant_folding=False,
                                  training=torch.onnx.TrainingMode.TRAINING,
                                  input_names=["x"], output_names=["logits"],
                                  **legacy_exporter())
            before = {k: v.detach().clone() for k, v in model.named_parameters()}
            opt = torch.optim.SGD(model.parameters(), lr=1.0)
            F.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y)).backward()
            opt.step()
            want = {k: (v.detach() - before[k]).numpy() for k, v in model.named_parameters()}

            flags = [onnx_path, f"--batch-size={BATCH}", "--loss=cross_entropy",
                     "--optimizer=sgd", "--lr=1"]
            art, mlir = os.path.join(tmp, f"{name}.trainopt"), os.path.join(tmp, f"{name}.mlir")
            data, inputs = os.path.join(tmp, f"{name}.data.npz"), os.path.join(tmp, f"{name}.in.npz")
            params, evaluated = os.path.join(tmp, f"{name}.p.npz"), os.path.join(tmp, f"{name}.e.npz")
            np.savez(data, x=x, y=y)
            np.savez(inputs, x=x, labels=y)
            run([tool("trainopt-compile"), *flags, "-o", art])
            run([tool("trainopt-compile"), *flags, "--emit=train-mlir", "-o", mlir])
            run([tool("trainopt-run"), art, f"--data={data}", "--steps=1", "--no-shuffle",
                 "--quiet", "--no-train-eval", "--scale=1", f"--save-params={params}"])
            run([tool("trainopt-eval"), mlir, "--function=train_step", "--inputs", inputs,
                 "-o", evaluated])
            compiled, ev = np.load(params), np.load(evaluated)
            errs = {}
            for k, w in want.items():
                start = before[k].numpy()
                errs["compiled"] = max(errs.get("compiled", 0.0),
                                       float(np.max(np.abs(compiled[k] - start - w))))
                errs["evaluator"] = max(errs.get("evaluator", 0.0),
                                        float(np.max(np.abs(ev["final." + k] - start - w))))
            tol = max(args.tolerance, TOLERANCE.get(name, 0.0))
            ok = all(e <= tol for e in errs.values())
            failures += not ok
            print(f"{name}: compiled vs torch {errs['compiled']:.1e}, evaluator vs torch "
                  f"{errs['evaluator']:.1e} {'PASS' if ok else 'FAIL'}", flush=True)
    print(f"{failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
