#!/usr/bin/env python3
"""Low-rank factorization against NumPy and PyTorch: each reference model
(scripts/export_torch_models.py) is exported from PyTorch and compiled by
`trainopt-compile --low-rank=...`, then

  - the factors trainopt starts from (read back after one SGD step at
    learning rate 1e-300, which leaves every float64 value as it is) are
    checked against NumPy's
    SVD of the same weights: the same rank by the same rule, and U V as
    close to W as the best rank-r approximation (Eckart-Young: the error
    is the norm of the dropped singular values), within 1e-9 relative;
  - PyTorch trains the same module with each factored Conv2d or Linear
    replaced by the two layers trainopt-low-rank makes of it (a k x k
    convolution to r channels and a 1 x 1 one; two linears), from those
    factors, on the same batches, and every step's loss must agree.

Both sides train in float64 (--dtype f64) by default.

Usage (a Python with torch and numpy, e.g. Debian's python3-torch):
    low_rank_vs_torch.py --bin build/bin [--steps 20] [--models mlp,cnn,resnet]
        [--configs energy:0.9,rank:8]
"""
import argparse
import copy
import os
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_runtime_torch import reference_models, train_module, trainopt_train  # noqa: E402
from qat_vs_torch import OPTIMIZER  # noqa: E402


def expected_rank(s, config):
    """trainopt-low-rank's rule on singular values s (decreasing)."""
    kind, value = config.split(":")
    if kind == "rank":
        return min(int(value), len(s))
    energy = np.cumsum(s * s)
    return int(np.searchsorted(energy, float(value) * energy[-1]) + 1)


def factored(model, params):
    """model with each Conv2d/Linear whose weight trainopt factored (params
    holds W.u and W.v) replaced by the two layers, from the factors."""
    for name, m in list(model.named_modules()):
        key = f"{name}.weight"
        if key + ".u" not in params:
            continue
        u = torch.from_numpy(params[key + ".u"])
        v = torch.from_numpy(params[key + ".v"])
        # In the factors' dtype, so that copying them in rounds nothing.
        kw = dict(dtype=u.dtype)
        if isinstance(m, nn.Conv2d):
            first = nn.Conv2d(m.in_channels, v.shape[0], m.kernel_size, m.stride,
                              m.padding, m.dilation, bias=False, **kw)
            second = nn.Conv2d(v.shape[0], m.out_channels, 1, bias=m.bias is not None, **kw)
        else:
            first = nn.Linear(m.in_features, v.shape[0], bias=False, **kw)
            second = nn.Linear(v.shape[0], m.out_features, bias=m.bias is not None, **kw)
        with torch.no_grad():
            # A Linear's weight [out, in] is read transposed: x W^T =
            # (x v^T) u^T, so the first layer's weight is v, the second's u.
            first.weight.copy_(v)
            second.weight.copy_(u)
            if m.bias is not None:
                second.bias.copy_(m.bias)
        parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
        setattr(parent, name.rsplit(".", 1)[-1], nn.Sequential(first, second))
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--tolerance", type=float, default=1e-9)
    ap.add_argument("--models", default="mlp,cnn,resnet")
    ap.add_argument("--configs", default="energy:0.9,rank:8")
    args = ap.parse_args()
    torch.set_num_threads(2)
    failures, worst_all = 0, 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for name, cls, batch, base, x, y, onnx_path, data, dtype in reference_models(
                args.models, args.steps, tmp):
            base64 = copy.deepcopy(base).double()
            weights = {k: v.numpy() for k, v in base64.state_dict().items()}
            for config in args.configs.split(","):
                tag = os.path.join(tmp, f"{name}-{config.replace(':', '_')}")
                flags = f"--low-rank={config} --optimizer=sgd"
                _, start = trainopt_train(args.bin, name, onnx_path, data,
                                          flags + " --lr=1e-300", 1, tag + "-start")
                # The factors against NumPy's SVD.
                checked, svd_err = 0, 0.0
                for key, w in weights.items():
                    if key + ".u" not in start:
                        continue
                    m = w.reshape(w.shape[0], -1)
                    s = np.linalg.svd(m, compute_uv=False)
                    r = start[key + ".u"].shape[1]
                    approx = start[key + ".u"].reshape(w.shape[0], r) @ \
                        start[key + ".v"].reshape(r, -1)
                    best = np.sqrt(np.sum(s[r:] ** 2))
                    err = abs(np.linalg.norm(m - approx) - best) / np.linalg.norm(m)
                    svd_err = max(svd_err, err)
                    checked += 1
                    if r != expected_rank(s, config):
                        svd_err = float("inf")
                got, _ = trainopt_train(args.bin, name, onnx_path, data,
                                        flags + " --lr=0.01", args.steps, tag)
                # The exported weights, the factored layers from trainopt's factors.
                model = factored(copy.deepcopy(base64), start).double()
                ref = train_module(model, OPTIMIZER[1], x, y, batch, args.steps, dtype)
                worst = max(abs(g - r) / abs(r) for g, r in zip(got, ref))
                if os.environ.get("VERBOSE"):
                    for k, (g, r) in enumerate(zip(got, ref)):
                        print(k, g, r, abs(g - r) / abs(r))
                ok = (len(got) == args.steps and worst <= args.tolerance and checked
                      and svd_err <= 1e-9)
                failures += not ok
                worst_all = max(worst_all, worst)
                print(f"{name:7s} {config:10s} f64 {checked} weights factored, "
                      f"SVD vs NumPy {svd_err:.2e}; losses over {args.steps} steps: "
                      f"max rel err {worst:.2e} {'PASS' if ok else 'FAIL'}", flush=True)
    print(f"{failures} failures; max loss rel err {worst_all:.2e}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
