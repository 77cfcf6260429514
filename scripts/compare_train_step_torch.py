#!/usr/bin/env python3
"""Trains the same small model with trainopt's @train_step (run in the
reference evaluator) and with PyTorch, from the same weights and batches, for
every optimizer and learning-rate schedule, and compares the losses of every
step and the final parameters.

The model (Linear, BatchNorm1d, ReLU, Linear) is exported by PyTorch in
inference mode, imported by trainopt-compile, given a cross-entropy loss by
trainopt-attach-loss, and turned into @train_step by the training
pipeline (trainopt-training-pipeline: BatchNorm in training mode, PyTorch
momentum, gradient transforms, schedule, optimizer). Lion, which torch does
not have, is checked against a NumPy implementation of its published rule.

Usage (any Python with torch and numpy, e.g. Debian's python3-torch):
    compare_train_step_torch.py --bin build/bin [--steps 10] [--tolerance 1e-5]
Prints one line per configuration; exits non-zero if any differs.
"""
import argparse
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_torch_models import legacy_exporter  # noqa: E402

BATCH, IN, HIDDEN, CLASSES = 6, 8, 16, 4


class LionReference(torch.optim.Optimizer):
    """Lion as published (Chen et al. 2023, "Symbolic Discovery of
    Optimization Algorithms", Program 1), in NumPy float32:
        c = beta1 * m + (1 - beta1) * g
        p = p * (1 - lr * wd) - lr * sign(c)
        m = beta2 * m + (1 - beta2) * g
    torch has no Lion; this is the reference for trainopt's."""

    def __init__(self, params, lr, betas=(0.9, 0.99), weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        f = np.float32
        for group in self.param_groups:
            (b1, b2), lr, wd = group["betas"], group["lr"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                m = self.state[p].get("exp_avg", np.zeros(p.shape, np.float32))
                g, w = p.grad.numpy(), p.numpy()
                c = f(b1) * m + f(1 - b1) * g
                w = w * f(1 - lr * wd) - f(lr) * np.sign(c)
                self.state[p]["exp_avg"] = f(b2) * m + f(1 - b2) * g
                p.copy_(torch.from_numpy(w.astype(np.float32)))

# (name, trainopt flags, torch optimizer factory, torch scheduler factory)
CONFIGS = [
    ("sgd", "optimizer=sgd lr=0.1", lambda p: torch.optim.SGD(p, lr=0.1), None),
    ("sgd-momentum-wd", "optimizer=sgd lr=0.05 momentum=0.9 dampening=0.1 weight-decay=0.01",
     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01), None),
    ("sgd-nesterov", "optimizer=sgd lr=0.05 momentum=0.9 nesterov=true",
     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True), None),
    ("adam", "optimizer=adam lr=0.01", lambda p: torch.optim.Adam(p, lr=0.01), None),
    ("adam-wd", "optimizer=adam lr=0.01 weight-decay=0.1 beta1=0.8 beta2=0.99 eps=1e-6",
     lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.1, betas=(0.8, 0.99), eps=1e-6), None),
    ("adamw", "optimizer=adamw lr=0.01", lambda p: torch.optim.AdamW(p, lr=0.01), None),
    ("adagrad", "optimizer=adagrad lr=0.1 lr-decay=0.01 weight-decay=0.01",
     lambda p: torch.optim.Adagrad(p, lr=0.1, lr_decay=0.01, weight_decay=0.01), None),
    ("rmsprop", "optimizer=rmsprop lr=0.01", lambda p: torch.optim.RMSprop(p, lr=0.01), None),
    ("rmsprop-momentum", "optimizer=rmsprop lr=0.01 momentum=0.9 alpha=0.9 weight-decay=0.01",
     lambda p: torch.optim.RMSprop(p, lr=0.01, momentum=0.9, alpha=0.9, weight_decay=0.01), None),
    ("sgd-step", "optimizer=sgd lr=0.1 lr-schedule=step step-size=3 gamma=0.5",
     lambda p: torch.optim.SGD(p, lr=0.1),
     lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5)),
    ("sgd-multistep", "optimizer=sgd lr=0.1 lr-schedule=multistep milestones=2,5 gamma=0.3",
     lambda p: torch.optim.SGD(p, lr=0.1),
     lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones=[2, 5], gamma=0.3)),
    ("adam-exponential", "optimizer=adam lr=0.01 lr-schedule=exponential gamma=0.8",
     lambda p: torch.optim.Adam(p, lr=0.01),
     lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.8)),
    ("adam-cosine", "optimizer=adam lr=0.01 lr-schedule=cosine total-steps=10 min-lr=0.001",
     lambda p: torch.optim.Adam(p, lr=0.01),
     lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10, eta_min=0.001)),
    ("adamw-warmup-cosine", "optimizer=adamw lr=0.01 lr-schedule=cosine warmup-steps=3 total-steps=10",
     lambda p: torch.optim.AdamW(p, lr=0.01),
     lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda s: (s + 1) / 3 if s < 3 else
                                                 0.5 * (1 + math.cos(math.pi * min(s - 3, 7) / 7)))),
    ("sgd-linear-warmup", "optimizer=sgd lr=0.1 lr-schedule=linear-warmup warmup-steps=4",
     lambda p: torch.optim.SGD(p, lr=0.1),
     lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda s: min(1.0, (s + 1) / 4))),
    ("sgd-one-cycle", "optimizer=sgd lr=0.1 lr-schedule=one-cycle total-steps=10",
     lambda p: torch.optim.SGD(p, lr=0.1),
     lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=10,
                                                   cycle_momentum=False)),
    ("sgd-clip-norm", "optimizer=sgd lr=0.1 clip-grad-norm=0.5",
     lambda p: torch.optim.SGD(p, lr=0.1), None),
    ("sgd-clip-value", "optimizer=sgd lr=0.1 clip-grad-value=0.05",
     lambda p: torch.optim.SGD(p, lr=0.1), None),
    ("lion", "optimizer=lion lr=0.01", lambda p: LionReference(p, lr=0.01), None),
    ("lion-betas-wd", "optimizer=lion lr=0.005 beta1=0.95 beta2=0.98 weight-decay=0.1",
     lambda p: LionReference(p, lr=0.005, betas=(0.95, 0.98), weight_decay=0.1), None),
    ("lion-cosine-accum2", "optimizer=lion lr=0.01 grad-accum=2 lr-schedule=cosine total-steps=5",
     lambda p: LionReference(p, lr=0.01),
     lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=5)),
    ("sgd-momentum-accum2", "optimizer=sgd lr=0.1 momentum=0.9 grad-accum=2",
     lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), None),
    ("adam-cosine-accum3", "optimizer=adam lr=0.01 grad-accum=3 lr-schedule=cosine total-steps=4",
     lambda p: torch.optim.Adam(p, lr=0.01),
     lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=4)),
]


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        # No bias before BatchNorm: its gradient is zero up to rounding, and
        # adaptive optimizers would amplify that noise differently.
        self.fc1 = nn.Linear(IN, HIDDEN, bias=False)
        self.bn = nn.BatchNorm1d(HIDDEN)
        self.fc2 = nn.Linear(HIDDEN, CLASSES)

    def forward(self, x):
        return self.fc2(F.relu(self.bn(self.fc1(x))))


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr}")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", required=True, help="directory of the trainopt tools")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--tolerance", type=float, default=1e-5)
    args = ap.parse_args()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    base = Model()
    with torch.no_grad():  # non-trivial BatchNorm affine parameters
        base.bn.weight.uniform_(0.5, 1.5)
        base.bn.bias.uniform_(-0.5, 0.5)
    xs = [rng.standard_normal((BATCH, IN)).astype(np.float32) for _ in range(args.steps)]
    ys = [rng.integers(0, CLASSES, BATCH).astype(np.int64) for _ in range(args.steps)]
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = os.path.join(tmp, "model.onnx")
        base.eval()
        torch.onnx.export(base, (torch.from_numpy(xs[0]),), onnx_path, opset_version=17,
                          do_constant_folding=False, input_names=["x"], output_names=["logits"],
                          **legacy_exporter())
        mlir = os.path.join(tmp, "model.mlir")
        run([os.path.join(args.bin, "trainopt-compile"), onnx_path, "-o", mlir])
        inputs = os.path.join(tmp, "batches.npz")
        np.savez(inputs, **{f"x.{k}": x for k, x in enumerate(xs)},
                 **{f"labels.{k}": y for k, y in enumerate(ys)})
        # Gradients of every parameter after one step (the first batch),
        # from @forward_train_grad of any of the generated modules.
        results = []
        grad_mlir = os.path.join(tmp, "grad.mlir")
        run([os.path.join(args.bin, "trainopt-opt"), mlir,
             "-trainopt-attach-loss=loss=cross_entropy",
             "-trainopt-build-train-step", "-o", grad_mlir])
        first = os.path.join(tmp, "first.npz")
        np.savez(first, x=xs[0], labels=ys[0])
        grads_out = os.path.join(tmp, "grads.npz")
        run([os.path.join(args.bin, "trainopt-eval"), grad_mlir,
             "--function=forward_train_grad", "--inputs", first, "-o", grads_out])
        got = np.load(grads_out)
        model = Model()
        model.load_state_dict(base.state_dict())
        model.train()
        F.cross_entropy(model(torch.from_numpy(xs[0])), torch.from_numpy(ys[0])).backward()
        worst_grad = 0.0
        for pname, p in model.named_parameters():
            want = p.grad.numpy().astype(np.float64)
            have = got[f"grad.{pname}"].astype(np.float64)
            err = float(np.linalg.norm(have - want) / max(np.linalg.norm(want), 1e-12))
            worst_grad = max(worst_grad, err)
            print(f"gradient {pname:14s} rel err {err:.2e}")
        failed += worst_grad > args.tolerance
        for name, flags, make_opt, make_sched in CONFIGS:
            step_mlir = os.path.join(tmp, f"{name}.mlir")
            run([os.path.join(args.bin, "trainopt-opt"), mlir,
                 f"-trainopt-training-pipeline=loss=cross_entropy {flags}", "-o", step_mlir])
            out = os.path.join(tmp, f"{name}.npz")
            run([os.path.join(args.bin, "trainopt-eval"), step_mlir, "--function=train_step",
                 "--inputs", inputs, "--repeat", str(args.steps), "-o", out])
            got = np.load(out)
            # PyTorch, from the same weights.
            model = Model()
            model.load_state_dict(base.state_dict())
            model.train()
            opt = make_opt(model.parameters())
            sched = make_sched(opt) if make_sched else None
            worst_loss = 0.0
            accum = int(flags.split("grad-accum=")[1].split()[0]) if "grad-accum=" in flags else 1
            opt.zero_grad()
            for k in range(args.steps):
                loss = F.cross_entropy(model(torch.from_numpy(xs[k])), torch.from_numpy(ys[k]))
                (loss / accum).backward()
                if (k + 1) % accum:
                    ours = float(got[f"loss.{k}"])
                    worst_loss = max(worst_loss, abs(ours - loss.item()) / max(abs(loss.item()), 1e-12))
                    continue
                if "clip-grad-norm" in flags:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
                if "clip-grad-value" in flags:
                    torch.nn.utils.clip_grad_value_(model.parameters(), 0.05)
                opt.step()
                opt.zero_grad()
                if sched:
                    sched.step()
                ours = float(got[f"loss.{k}"])
                worst_loss = max(worst_loss, abs(ours - loss.item()) / max(abs(loss.item()), 1e-12))
            # Final parameters and statistics: relative error of each tensor
            # (norm of the difference over the norm of PyTorch's).
            worst_param = 0.0
            for pname, value in model.state_dict().items():
                key = f"final.{pname}"
                if key not in got:
                    continue  # num_batches_tracked: not modelled
                want = value.detach().numpy().astype(np.float64)
                have = got[key].astype(np.float64)
                err = float(np.linalg.norm(have - want) / max(np.linalg.norm(want), 1e-12))
                if os.environ.get("VERBOSE"):
                    print(f"    {pname}: {err:.2e}")
                worst_param = max(worst_param, err)
            ok = worst_loss <= args.tolerance and worst_param <= 10 * args.tolerance
            failed += not ok
            results.append((name, worst_loss, worst_param))
            print(f"{name:22s} loss rel err {worst_loss:.2e}  param rel err {worst_param:.2e}  "
                  f"{'PASS' if ok else 'FAIL'}")
    print(f"max gradient rel err {worst_grad:.2e}; max loss rel err over {args.steps} steps "
          f"{max(r[1] for r in results):.2e}; max final-parameter rel err "
          f"{max(r[2] for r in results):.2e}; {failed} failures")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
