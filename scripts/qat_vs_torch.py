#!/usr/bin/env python3
"""Quantization-aware training against PyTorch's: each reference model
(scripts/export_torch_models.py) is exported from PyTorch, compiled by
`trainopt-compile --quantize=...` and trained by `trainopt-run` for N steps
on fixed batches, while PyTorch trains the same module from the same weights
on the same batches with `torch.ao.quantization.FakeQuantize` modules where
trainopt-quantize puts its fake_quant ops (docs/compression.md), placed
in the torch.fx graph of the module (quantize_modules):

  - every Conv2d and Linear weight: signed (int8 [-128, 127], int4 [-8, 7],
    [-64, 63] with --quantize-reduce-range),
    MovingAveragePerChannelMinMaxObserver on axis 0 (per-channel) or
    MovingAverageMinMaxObserver (per-tensor), symmetric or affine;
  - every Conv2d and Linear input: unsigned (uint8 [0, 255], uint4 [0, 15]),
    per-tensor affine, MovingAverageMinMaxObserver; and (output points,
    unless --quantize-outputs=false) each one's output after a ReLU only
    it feeds, unless a BatchNorm reads it or the model returns it; an input
    that comes from a quantized output through ReLU, max-pool or a reshape
    is not quantized again;

averaging constant 0.01; with a freeze step F, PyTorch calls
torch.ao.quantization.disable_observer after F steps. The loss of every step
must agree within the tolerance (relative).

Both sides train in float64 by default (--dtype f64: the model exported in
float64, PyTorch's observers in float64 too), the strict comparison.
PyTorch's fake-quantize kernels take float32 scales only, so in float64 the
FakeQuantize modules' forward is FakeQuantize64's: the same observer calls
and qparams, then the kernel's arithmetic (round half to even of
x * (1/s), plus the zero point, clamped; the gradient passes inside the
range) in torch float64 ops. A model with a max-pool (the CNN) is held to
--tolerance-max-pool instead: quantized operands make a window's largest
values equal up to the last bit of a convolution's sum, which each
implementation orders its own way, so a window's argmax (where its gradient
goes) flips now and then; the differential tester shows these as
max_pool_grad flips at a relative distance near 1e-16 even between trainopt
and its own reference evaluator. In float32 (--dtype f32) QAT is chaotic: a value whose
x * (1/s) lands within an ulp of a half rounds one way in one
implementation and the other way in the other (the differential tester
counts these as fake_quant flips), a whole quantization step apart, and the
optimizer carries the difference on; the float32 losses are reported, and
held to --tolerance-f32.

With kmeans16 (--quantize=kmeans:16, weight sharing) PyTorch trains
weight = codebook[codes] with a trainable codebook and the codes of the same
k-means, written here in NumPy; trainopt's codes must equal them exactly.

With log4 and log5-tensor (--quantize=log:BITS, power-of-two levels)
PyTorch trains each Conv2d and Linear weight W read as
q.detach() + (W - W.detach()), q = sign(W) 2^min(k, hi) where k >= hi -
(2^(BITS-1) - 2), else 0, with k = round(log(|W|) / ln 2) and hi that of
max |W| per output channel (or tensor); trainopt's weights (the levels
the last step used) must be such levels, and its latent weights W.latent
are the trained ones.

Usage (a Python with torch and numpy, e.g. Debian's python3-torch):
    qat_vs_torch.py --bin build/bin [--steps 20] [--models mlp,cnn,resnet]
        [--configs int8,int8-tensor-affine,int4,int8-freeze,kmeans16,log4,log5-tensor]
        [--dtype f64|f32]
"""
import argparse
import math
import os
import sys
import tempfile
import types

import numpy as np
import torch
import torch.ao.quantization as tq
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_runtime_torch import (reference_models, train_module,  # noqa: E402
                                   trainopt_train)

# name: (trainopt flags, bits, per-channel, symmetric, freeze step)
CONFIGS = {
    "int8": ("--quantize=int8", 8, True, True, 0),
    "int8-tensor-affine": ("--quantize=int8 --quantize-granularity=per-tensor "
                           "--quantize-weight-scheme=affine", 8, False, False, 0),
    "int4": ("--quantize=int4", 4, True, True, 0),
    "int8-freeze": ("--quantize=int8 --observer-freeze-step=10", 8, True, True, 10),
    "int8-no-outputs": ("--quantize=int8 --quantize-outputs=false", 8, True, True, 0),
    "int8-reduce-range": ("--quantize=int8 --quantize-reduce-range", 8, True, True, 0),
    # Weight sharing: (flags, clusters, None, None, None).
    "kmeans16": ("--quantize=kmeans:16", 16, None, None, None),
    # Power-of-two levels: (flags, bits, per-channel, None, None).
    "log4": ("--quantize=log:4", 4, True, None, None),
    "log5-tensor": ("--quantize=log:5 --quantize-granularity=per-tensor", 5, False, None, None),
}
# Models with a max-pool (near-ties in its windows; see above).
MAX_POOL = {"cnn"}
OPTIMIZER = ("--optimizer=sgd --lr=0.01", lambda p: torch.optim.SGD(p, lr=0.01))


class FakeQuantize64(tq.FakeQuantize):
    """FakeQuantize whose fake quantization runs in X's dtype (float64):
    torch.fake_quantize_per_*_affine, written in torch ops."""

    def forward(self, X):
        if self.observer_enabled[0] == 1:
            self.activation_post_process(X.detach())
            scale, zero_point = self.calculate_qparams()
            self.scale.resize_(scale.shape).copy_(scale)
            self.zero_point.resize_(zero_point.shape).copy_(zero_point)
        qmin = self.activation_post_process.quant_min
        qmax = self.activation_post_process.quant_max
        shape = [1] * X.dim()
        if self.qscheme in (torch.per_channel_symmetric, torch.per_channel_affine):
            shape[self.ch_axis] = -1
        s = self.scale.to(X.dtype).reshape(shape)
        z = self.zero_point.to(X.dtype).reshape(shape)
        v = torch.round(X * (1.0 / s)) + z
        fq = ((torch.clamp(v, qmin, qmax) - z) * s).detach()
        # The straight-through estimator, clipped: gradient 1 in range.
        return torch.where((v >= qmin) & (v <= qmax), X - X.detach() + fq, fq)


def fake_quantizers(bits, per_channel, symmetric, f64, weight_bits=None):
    """PyTorch's FakeQuantize for a weight (of weight_bits, or bits) and for
    an activation."""
    weight_bits = weight_bits or bits
    fake_quantize = FakeQuantize64 if f64 else tq.FakeQuantize
    if per_channel:
        observer = tq.MovingAveragePerChannelMinMaxObserver
        scheme = torch.per_channel_symmetric if symmetric else torch.per_channel_affine
        extra = dict(ch_axis=0)
    else:
        observer = tq.MovingAverageMinMaxObserver
        scheme = torch.per_tensor_symmetric if symmetric else torch.per_tensor_affine
        extra = {}
    weight = fake_quantize(observer=observer, quant_min=-(1 << (weight_bits - 1)),
                             quant_max=(1 << (weight_bits - 1)) - 1, dtype=torch.qint8,
                             qscheme=scheme, averaging_constant=0.01, **extra)
    act = fake_quantize(observer=tq.MovingAverageMinMaxObserver, quant_min=0,
                          quant_max=(1 << bits) - 1, dtype=torch.quint8,
                          qscheme=torch.per_tensor_affine, averaging_constant=0.01)
    return weight, act


def replace_forward(m, weight_and_input):
    """Makes the Conv2d or Linear m compute with (w, x) =
    weight_and_input(m, x) in place of its weight and input."""

    def forward(self, x):
        w, x = weight_and_input(self, x)
        if isinstance(self, nn.Linear):
            return F.linear(x, w, self.bias)
        return self._conv_forward(x, w, self.bias)

    m.forward = types.MethodType(forward, m)


def is_op(node, modules, functions, methods, module_types):
    """Whether the torch.fx node calls one of these."""
    return ((node.op == "call_function" and node.target in functions)
            or (node.op == "call_method" and node.target in methods)
            or (node.op == "call_module" and isinstance(modules[node.target], module_types)))


def quantize_modules(model, quantizers, outputs=True):
    """The model traced by torch.fx with FakeQuantize modules where
    trainopt-quantize puts its fake_quant ops (written here on their own,
    from the description in Passes.td): every Conv2d and Linear weight;
    its input, one FakeQuantize per input tensor, unless the input comes
    from a quantized output through ReLU, max-pool, view/reshape/flatten or
    transpose (which keep values on its grid); with `outputs`, its output
    after a ReLU only it feeds (Linear includes its bias), unless a
    BatchNorm reads it or the model returns it. `quantizers()` makes a
    weight's and an activation's FakeQuantize."""
    gm = torch.fx.symbolic_trace(model)
    modules = dict(gm.named_modules())
    graph = gm.graph

    def relu(n):
        return is_op(n, modules, {F.relu, torch.relu}, {"relu"}, nn.ReLU)

    def keeps_grid(n):
        return relu(n) or is_op(n, modules, {F.max_pool2d, torch.flatten, torch.reshape,
                                             torch.transpose},
                                {"view", "reshape", "flatten", "transpose"},
                                (nn.MaxPool2d, nn.Flatten))

    added = []

    def fake_quant(node, before):
        """A new activation FakeQuantize applied to node, inserted before
        `before` (or right after node)."""
        name = f"trainopt_fq{len(added)}"
        gm.add_submodule(name, quantizers()[1])
        added.append(name)
        with (graph.inserting_before(before) if before else graph.inserting_after(node)):
            return graph.call_module(name, (node,))

    on_grid, inputs = set(), {}
    for n in list(graph.nodes):
        if n.op != "call_module" or not isinstance(modules[n.target], (nn.Conv2d, nn.Linear)):
            continue
        m = modules[n.target]
        m.weight_fq = quantizers()[0]
        replace_forward(m, lambda self, x: (self.weight_fq(self.weight), x))
        x = source = n.args[0]
        while source not in on_grid and keeps_grid(source):
            source = source.args[0]
        if source not in on_grid:
            if x not in inputs:
                inputs[x] = fake_quant(x, n)
            n.replace_input_with(x, inputs[x])
        if not outputs:
            continue
        y = n
        if len(y.users) == 1 and relu(next(iter(y.users))):
            y = next(iter(y.users))
        if any(u.op == "output" or isinstance(modules.get(u.target), nn.BatchNorm2d)
               for u in y.users):
            continue
        readers = list(y.users)
        q = fake_quant(y, None)
        for r in readers:
            r.replace_input_with(y, q)
        on_grid.add(q)
    graph.lint()
    gm.recompile()
    return gm


def kmeans1d(values, k):
    """trainopt-quantize's k-means (Quantize.cpp kmeans1d), in NumPy: linear
    initialization over [min, max], Lloyd rounds until no assignment
    changes (at most 300), ties to the lower centroid, sums in index
    order (np.bincount), empty clusters kept, centroids kept sorted."""
    v = values.astype(np.float64).ravel()
    lo, hi = v.min(), v.max()
    centroids = np.array([lo + (hi - lo) * j / (k - 1) for j in range(k)])
    codes = np.full(v.shape, -1, dtype=np.int64)
    for rnd in range(301):
        j = np.searchsorted(centroids, v, side="left")
        lower = np.clip(j - 1, 0, k - 1)
        upper = np.clip(j, 0, k - 1)
        take_lower = (j == k) | ((j > 0) & (v - centroids[lower] <= centroids[upper] - v))
        new = np.where(take_lower, lower, upper)
        changed = not np.array_equal(new, codes)
        codes = new
        if not changed or rnd == 300:
            break
        sums = np.bincount(codes, weights=v, minlength=k)
        counts = np.bincount(codes, minlength=k)
        centroids = np.where(counts > 0, sums / np.maximum(counts, 1), centroids)
        centroids = np.sort(centroids)
    return centroids, codes.reshape(values.shape)


class SharedWeight(torch.autograd.Function):
    """codebook[codes], whose backward sums each centroid's gradients in
    the weights' order (index_add_), as trainopt's scatter_add does: the
    sums cancel heavily, so another order moves their last bits."""

    @staticmethod
    def forward(ctx, codebook, codes):
        ctx.save_for_backward(codes)
        ctx.clusters = codebook.numel()
        return codebook[codes]

    @staticmethod
    def backward(ctx, grad):
        (codes,) = ctx.saved_tensors
        book = torch.zeros(ctx.clusters, dtype=grad.dtype)
        return book.index_add_(0, codes.reshape(-1), grad.reshape(-1)), None


def share_weights(model, k, dtype):
    """Every Conv2d and Linear weight replaced by codebook[codes] (a
    trainable codebook, fixed codes); returns {weight name: codes}."""
    all_codes = {}
    for name, m in model.named_modules():
        if not isinstance(m, (nn.Conv2d, nn.Linear)):
            continue
        centroids, codes = kmeans1d(m.weight.detach().numpy(), k)
        all_codes[f"{name}.weight"] = codes
        del m.weight
        m.codebook = nn.Parameter(torch.from_numpy(centroids).to(dtype))
        m.register_buffer("codes", torch.from_numpy(codes))
        replace_forward(m, lambda self, x: (SharedWeight.apply(self.codebook, self.codes), x))
    return all_codes


def log_levels(w, bits, per_channel):
    """trainopt-quantize's log:BITS levels of w (Quantize.cpp logQuantize)."""
    a = w.abs()
    top = a.amax(dim=tuple(range(1, w.dim())), keepdim=True) if per_channel else a.max()
    inv_ln2 = 1.0 / math.log(2.0)
    hi = torch.round(torch.log(top) * inv_ln2)
    k = torch.round(torch.log(a) * inv_ln2)
    level = torch.sign(w) * torch.pow(torch.full_like(w, 2.0), torch.minimum(k, hi))
    return torch.where(k >= hi - (2 ** (bits - 1) - 2), level, torch.zeros_like(w))


def torch_log(cls, base, config, x, y, batch, steps, dtype):
    """PyTorch training with straight-through log:BITS weights; the losses
    and the model (its latent weights)."""
    _, bits, per_channel, _, _ = config
    model = cls()
    model.load_state_dict(base.state_dict())
    model = model.train().to(dtype)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            replace_forward(m, lambda self, x: (
                log_levels(self.weight, bits, per_channel).detach()
                + (self.weight - self.weight.detach()), x))
    return train_module(model, OPTIMIZER[1], x, y, batch, steps, dtype), model


def torch_shared(cls, base, config, x, y, batch, steps, dtype):
    """PyTorch training with the weights shared as --quantize=kmeans:K
    shares them; the losses and the codes."""
    model = cls()
    model.load_state_dict(base.state_dict())
    model = model.train().to(dtype)
    codes = share_weights(model, config[1], dtype)
    return train_module(model, OPTIMIZER[1], x, y, batch, steps, dtype), codes


def torch_qat(cls, base, config, x, y, batch, steps, dtype):
    flags, bits, per_channel, symmetric, freeze = config
    model = cls()
    model.load_state_dict(base.state_dict())
    weight_bits = bits - 1 if "--quantize-reduce-range" in flags else bits
    # Observers and FakeQuantize buffers in dtype too.
    model = quantize_modules(
        model.train(),
        lambda: fake_quantizers(bits, per_channel, symmetric, dtype == torch.float64,
                                weight_bits),
        outputs="--quantize-outputs=false" not in flags).to(dtype)

    def before_step(k):
        if freeze and k == freeze:
            model.apply(tq.disable_observer)

    return train_module(model, OPTIMIZER[1], x, y, batch, steps, dtype, before_step=before_step)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--tolerance", type=float, default=1e-9,
                    help="--dtype f64: the largest relative loss difference")
    ap.add_argument("--tolerance-max-pool", type=float, default=2e-3,
                    help="--dtype f64, models with a max-pool: the largest relative "
                         "loss difference")
    ap.add_argument("--tolerance-kmeans", type=float, default=1e-6,
                    help="--dtype f64, weight sharing: the largest relative loss "
                         "difference (each centroid's update sums thousands of "
                         "gradients; on the ResNet their last-bit differences grow "
                         "about threefold a step: 2e-16 at step 1, 3e-8 at step 20)")
    ap.add_argument("--tolerance-f32", type=float, default=1e-2,
                    help="--dtype f32: the largest relative loss difference")
    ap.add_argument("--dtype", choices=["f64", "f32"], default="f64")
    ap.add_argument("--models", default="mlp,cnn,resnet")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    args = ap.parse_args()
    torch.set_num_threads(2)
    failures, worst_all = 0, 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for name, cls, batch, base, x, y, onnx_path, data, dtype in reference_models(
                args.models, args.steps, tmp, args.dtype):
            model_tolerance = (args.tolerance_f32 if args.dtype == "f32" else
                               args.tolerance_max_pool if name in MAX_POOL
                               else args.tolerance)
            for config_name in args.configs.split(","):
                tolerance = model_tolerance
                config = CONFIGS[config_name]
                got, params = trainopt_train(args.bin, name, onnx_path, data,
                                             config[0] + " " + OPTIMIZER[0], args.steps,
                                             os.path.join(tmp, f"{name}-{config_name}"))
                codes_ok = True
                if config_name.startswith("log"):
                    ref, _ = torch_log(cls, base, config, x, y, batch, args.steps, dtype)
                    # The weights hold the levels of the latent weights
                    # the last step read: powers of two or zero.
                    levels = [v for k, v in params.items() if k + ".latent" in params]
                    codes_ok = bool(levels) and all(
                        np.all((v == 0) | (np.frexp(np.abs(v))[0] == 0.5)) for v in levels)
                elif config_name.startswith("kmeans"):
                    ref, codes = torch_shared(cls, base, config, x, y, batch, args.steps,
                                              dtype)
                    # The same k-means: every weight's codes equal.
                    codes_ok = bool(codes) and all(
                        np.array_equal(params.get(n + ".codes"), c) for n, c in codes.items())
                else:
                    ref = torch_qat(cls, base, config, x, y, batch, args.steps, dtype)
                if config_name.startswith("kmeans") and args.dtype == "f64":
                    tolerance = args.tolerance_kmeans
                worst = max(abs(g - r) / abs(r) for g, r in zip(got, ref))
                if os.environ.get("VERBOSE"):
                    for k, (g, r) in enumerate(zip(got, ref)):
                        print(k, g, r, abs(g - r) / abs(r))
                ok = len(got) == args.steps and worst <= tolerance and codes_ok
                failures += not ok
                worst_all = max(worst_all, worst)
                print(f"{name:7s} {config_name:19s} {args.dtype} losses over {args.steps} steps: "
                      f"max rel err {worst:.2e} (first {got[0]:.5f}, last {got[-1]:.5f})"
                      f"{'' if codes_ok else ' CODES DIFFER'} "
                      f"{'PASS' if ok else 'FAIL'}", flush=True)
    print(f"{failures} failures; max loss rel err {worst_all:.2e}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
