#!/usr/bin/env python3
"""Pruning against torch.nn.utils.prune: each reference model
(scripts/export_torch_models.py) is exported from PyTorch, compiled by
`trainopt-compile --prune=...` and trained by `trainopt-run` for N steps on
fixed batches, while PyTorch trains the same module from the same weights on
the same batches, its Conv2d and Linear weights pruned by torch.nn.utils.prune
at the steps trainopt-prune's schedule names (docs/compression.md):

  - magnitude:S, per layer: prune.l1_unstructured(amount=S) before step 0;
  - magnitude:S, global: prune.global_unstructured(L1Unstructured, amount=S);
  - channel:l1:F: prune.ln_structured(amount=F, n=1, dim=0), on every layer
    but the last (the classes stay);
  - 2:4: in every group of 4 consecutive weights along the input axis the 2
    of largest magnitude stay (no PyTorch function: the mask is built here
    and applied with prune.custom_from_mask);
  - gradual:START,END,EVERY: at each scheduled step t, the weights pruned so
    far plus prune.l1_unstructured(amount=K) more of the remaining, K making
    round(S (1 - (1 - (t - START)/(END - START))^3) n) in all (Zhu-Gupta),
    ranked by the weights as they are at step t (importance_scores: PyTorch's
    default ranks the `weight` its last forward computed, before the last
    optimizer step, which trainopt does not copy).

Both sides train in float64 (--dtype f64) by default. Every step's loss must
agree within the tolerance (relative), and trainopt's final masks must equal
PyTorch's weight_mask buffers exactly (--save-params holds them as
W.prune_mask).

Usage (a Python with torch and numpy, e.g. Debian's python3-torch):
    prune_vs_torch.py --bin build/bin [--steps 20] [--models mlp,cnn,resnet]
        [--configs magnitude,global,channel,2:4,gradual] [--dtype f64|f32]
"""
import argparse
import os
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.utils.prune as prune

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_runtime_torch import reference_models, train_module, trainopt_train  # noqa: E402
from qat_vs_torch import MAX_POOL, OPTIMIZER  # noqa: E402

# name: (trainopt flags, how PyTorch prunes)
GRADUAL = (0, 12, 4)  # START, END, EVERY: steps 0, 4, 8, 12
ITERATIVE = (0, 12, 3)  # START, END, ROUNDS: steps 0, 6, 12
CONFIGS = {
    "magnitude": "--prune=magnitude:0.6",
    "global": "--prune=magnitude:0.7 --prune-scope=global",
    "channel": "--prune=channel:l1:0.5",
    "2:4": "--prune=2:4 --prune-exclude=conv1.weight,stem.0.weight",
    "gradual": "--prune=magnitude:0.8 --prune-schedule=gradual:%d,%d,%d" % GRADUAL,
    # Three prune-retrain rounds over steps 0..12: at 0, 6 and 12.
    "iterative": "--prune=magnitude:0.8 --prune-schedule=gradual:%d,%d --prune-iterative=%d"
                 % ITERATIVE,
}


def prunable(model, exclude=()):
    """The (name, module) of every Conv2d and Linear, weight names as the
    ONNX export gives them."""
    return [(f"{n}.weight", m) for n, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear)) and f"{n}.weight" not in exclude]


def n_of_m_mask(w, n, m):
    """Keeps the n largest |w| of each m consecutive weights along the input
    axes (ties: the first)."""
    flat = w.detach().abs().reshape(w.shape[0], -1, m)
    order = torch.argsort(-flat, dim=-1, stable=True)
    keep = torch.zeros_like(flat)
    keep.scatter_(-1, order[..., :n], 1.0)
    return keep.reshape(w.shape)


def gradual_target(step, sparsity, n):
    start, end, _ = GRADUAL
    frac = min(max((step - start) / (end - start), 0.0), 1.0)
    left = 1.0 - frac
    return round((1.0 - left * left * left) * sparsity * n)


def iterative_target(step, sparsity, n):
    """The weights of n pruned after the round at `step`: round r leaves
    (1 - sparsity)^((r + 1) / R) of them."""
    start, end, rounds = ITERATIVE
    r = rounds - 1 if step == end else (step - start) // ((end - start) // (rounds - 1))
    return round((1.0 - (1.0 - sparsity) ** ((r + 1) / rounds)) * n)


def prune_more(m, target):
    """Prunes module m's weight to `target` zeros in all, ranking the
    weights as they are now (masked): PyTorch ranks a pruned module's
    `weight` attribute, set by the last forward, so before the last
    optimizer step, by default."""
    pruned = hasattr(m, "weight_mask")
    done = int((m.weight_mask == 0).sum()) if pruned else 0
    now = m.weight_orig.detach() * m.weight_mask if pruned else None
    prune.l1_unstructured(m, "weight", amount=max(target - done, 0),
                          importance_scores=now)


def prune_at(model, config, step):
    """Applies config's pruning for `step` to model (before its forward)."""
    start, end, every = GRADUAL
    istart, iend, rounds = ITERATIVE
    if config == "magnitude" and step == 0:
        for _, m in prunable(model):
            prune.l1_unstructured(m, "weight", amount=0.6)
    elif config == "global" and step == 0:
        prune.global_unstructured([(m, "weight") for _, m in prunable(model)],
                                  pruning_method=prune.L1Unstructured, amount=0.7)
    elif config == "channel" and step == 0:
        # trainopt-prune leaves the output layer (the classes) dense.
        for _, m in prunable(model)[:-1]:
            prune.ln_structured(m, "weight", amount=0.5, n=1, dim=0)
    elif config == "2:4" and step == 0:
        # The first convolutions have 9 weights per output channel.
        for _, m in prunable(model, exclude=("conv1.weight", "stem.0.weight")):
            prune.custom_from_mask(m, "weight", n_of_m_mask(m.weight, 2, 4))
    elif config == "gradual" and start <= step <= end and (
            (step - start) % every == 0 or step == end):
        for _, m in prunable(model):
            prune_more(m, gradual_target(step, 0.8, m.weight.numel()))
    elif config == "iterative" and istart <= step <= iend and (
            (step - istart) % ((iend - istart) // (rounds - 1)) == 0 or step == iend):
        for _, m in prunable(model):
            prune_more(m, iterative_target(step, 0.8, m.weight.numel()))


def torch_prune(cls, base, config, x, y, batch, steps, dtype):
    model = cls()
    model.load_state_dict(base.state_dict())
    model = model.train().to(dtype)
    # Pruning renames `weight` to `weight_orig`, the same Parameter: the
    # optimizer made before it keeps updating it.
    losses = train_module(model, OPTIMIZER[1], x, y, batch, steps, dtype,
                          before_step=lambda k: prune_at(model, config, k))
    masks = {n: m.weight_mask.detach().numpy() for n, m in prunable(model)
             if hasattr(m, "weight_mask")}
    return losses, masks


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--tolerance", type=float, default=1e-9,
                    help="--dtype f64: the largest relative loss difference")
    ap.add_argument("--tolerance-max-pool", type=float, default=1e-9,
                    help="--dtype f64, models with a max-pool")
    ap.add_argument("--tolerance-f32", type=float, default=1e-4,
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
            tolerance = (args.tolerance_f32 if args.dtype == "f32" else
                         args.tolerance_max_pool if name in MAX_POOL else args.tolerance)
            for config in args.configs.split(","):
                tag = os.path.join(tmp, f"{name}-{config.replace(':', '_')}")
                got, params = trainopt_train(args.bin, name, onnx_path, data,
                                             CONFIGS[config] + " " + OPTIMIZER[0],
                                             args.steps, tag)
                ref, masks = torch_prune(cls, base, config, x, y, batch, args.steps, dtype)
                worst = max(abs(g - r) / abs(r) for g, r in zip(got, ref))
                differ = [n for n, mask in masks.items()
                          if not np.array_equal(params.get(n + ".prune_mask"), mask)]
                extra = [k for k in params if k.endswith(".prune_mask")
                         and k[:-len(".prune_mask")] not in masks]
                zeros = sum(int((mk == 0).sum()) for mk in masks.values())
                total = sum(mk.size for mk in masks.values())
                ok = len(got) == args.steps and worst <= tolerance and not differ \
                    and not extra and masks
                failures += not ok
                worst_all = max(worst_all, worst)
                print(f"{name:7s} {config:10s} {args.dtype} losses over {args.steps} steps: "
                      f"max rel err {worst:.2e}; masks equal {len(masks) - len(differ)}/"
                      f"{len(masks)}{' extra ' + ','.join(extra) if extra else ''}, "
                      f"sparsity {zeros / max(total, 1):.3f} "
                      f"{'PASS' if ok else 'FAIL'}", flush=True)
    print(f"{failures} failures; max loss rel err {worst_all:.2e}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
