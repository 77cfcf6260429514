#!/usr/bin/env python3
"""The reference models of trainopt (MLP, CNN, ResNet with BatchNorm,
GPT-style decoder; scripts/export_torch_models.py) trained by trainopt's
@train_step in the reference evaluator and by PyTorch, from the same
weights and batches, with every optimizer: the gradient of every parameter
after one step and the loss of every step must agree.

Usage (a Python with torch and numpy, e.g. Debian's python3-torch):
    compare_models_torch.py --bin build/bin [--steps 10] [--models mlp,cnn,resnet,gpt]
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_torch_models import CNN, GPT, MLP, ResNet, legacy_exporter  # noqa: E402


class Lamb(torch.optim.Optimizer):
    """LAMB (You et al. 2019) as trainopt implements it: Adam moments with
    bias correction, decoupled weight decay in the update, layer-wise trust
    ratio ||p|| / ||update|| (1 when either is 0)."""

    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["t"], st["m"], st["v"] = 0, torch.zeros_like(p), torch.zeros_like(p)
                st["t"] += 1
                st["m"].mul_(b1).add_(p.grad, alpha=1 - b1)
                st["v"].mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                m = st["m"] / (1 - b1 ** st["t"])
                v = st["v"] / (1 - b2 ** st["t"])
                update = m / (v.sqrt() + group["eps"]) + group["weight_decay"] * p
                pn, un = p.norm(), update.norm()
                trust = pn / un if pn > 0 and un > 0 else 1.0
                p.sub_(group["lr"] * trust * update)


OPTIMIZERS = [
    ("sgd-momentum", "optimizer=sgd lr=0.05 momentum=0.9 weight-decay=1e-4",
     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-4)),
    ("adam", "optimizer=adam lr=1e-3", lambda p: torch.optim.Adam(p, lr=1e-3)),
    ("adamw", "optimizer=adamw lr=1e-3", lambda p: torch.optim.AdamW(p, lr=1e-3)),
    ("adagrad", "optimizer=adagrad lr=0.01", lambda p: torch.optim.Adagrad(p, lr=0.01)),
    # RMSprop's first steps are sign-like and 10x larger than Adam's; a
    # smaller rate keeps 10 steps out of the chaotic regime where float32
    # rounding differences grow (both frameworks diverge from themselves).
    ("rmsprop", "optimizer=rmsprop lr=1e-4", lambda p: torch.optim.RMSprop(p, lr=1e-4)),
    ("lamb", "optimizer=lamb lr=1e-3 weight-decay=0.01",
     lambda p: Lamb(p, lr=1e-3, weight_decay=0.01)),
]

# name: (module class, input maker, labels maker, extra compile flags)
MODELS = {
    "mlp": (MLP, lambda r: r.standard_normal((8, 784)).astype(np.float32),
            lambda r: r.integers(0, 10, 8), []),
    "cnn": (CNN, lambda r: r.standard_normal((2, 1, 28, 28)).astype(np.float32),
            lambda r: r.integers(0, 10, 2), []),
    "resnet": (ResNet, lambda r: r.standard_normal((4, 1, 28, 28)).astype(np.float32),
               lambda r: r.integers(0, 10, 4), []),
    "gpt": (GPT, lambda r: r.integers(0, 96, (2, 16)).astype(np.int64),
            lambda r: r.integers(0, 96, (2, 16)), ["--class-axis=-1"]),
}


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr}")


def torch_loss(logits, labels):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]) if logits.dim() == 3
                           else logits, labels.reshape(-1))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--tolerance", type=float, default=1e-5)
    ap.add_argument("--models", default="mlp,cnn,resnet,gpt")
    ap.add_argument("--optimizers", default=",".join(o[0] for o in OPTIMIZERS))
    args = ap.parse_args()
    tool = lambda name: os.path.join(args.bin, name)
    failures, summary = 0, []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            cls, make_x, make_y, flags = MODELS[name]
            torch.manual_seed(0)
            rng = np.random.default_rng(1)
            base = cls().train()
            xs = [make_x(rng) for _ in range(args.steps)]
            ys = [make_y(rng).astype(np.int64) for _ in range(args.steps)]
            onnx_path = os.path.join(tmp, f"{name}.onnx")
            # Training-mode export: in inference mode PyTorch merges
            # initializers with equal values (all LayerNorm weights are ones),
            # which would tie them in training.
            torch.onnx.export(base, (torch.from_numpy(xs[0]),), onnx_path, opset_version=17,
                              do_constant_folding=False, input_names=["x"],
                              output_names=["logits"],
                              training=torch.onnx.TrainingMode.TRAINING,
                              **legacy_exporter())
            batches = os.path.join(tmp, f"{name}.npz")
            np.savez(batches, **{f"x.{k}": x for k, x in enumerate(xs)},
                     **{f"labels.{k}": y for k, y in enumerate(ys)})
            for opt_name, opt_flags, make_opt in OPTIMIZERS:
                if opt_name not in args.optimizers.split(","):
                    continue
                mlir = os.path.join(tmp, f"{name}-{opt_name}.mlir")
                run([tool("trainopt-compile"), onnx_path, "--emit=train-mlir",
                     "--loss=cross_entropy", *flags,
                     *[f"--{kv}" for kv in opt_flags.split()], "-o", mlir])
                out = os.path.join(tmp, f"{name}-{opt_name}.out.npz")
                run([tool("trainopt-eval"), mlir, "--function=train_step", "--inputs", batches,
                     "--repeat", str(args.steps), "-o", out])
                got = np.load(out)
                model = cls()
                model.load_state_dict(base.state_dict())
                model.train()
                opt = make_opt(model.parameters())
                worst_loss = worst_grad = 0.0
                for k in range(args.steps):
                    opt.zero_grad()
                    loss = torch_loss(model(torch.from_numpy(xs[k])), torch.from_numpy(ys[k]))
                    loss.backward()
                    worst_loss = max(worst_loss, abs(float(got[f"loss.{k}"]) - loss.item())
                                     / abs(loss.item()))
                    opt.step()
                if opt_name == args.optimizers.split(",")[0]:
                    # Gradients of every parameter at the first batch.
                    grad_out = os.path.join(tmp, f"{name}.grad.npz")
                    first = os.path.join(tmp, f"{name}.first.npz")
                    np.savez(first, x=xs[0], labels=ys[0])
                    run([tool("trainopt-eval"), mlir, "--function=forward_train_grad",
                         "--inputs", first, "-o", grad_out])
                    g = np.load(grad_out)
                    ref = cls()
                    ref.load_state_dict(base.state_dict())
                    ref.train()
                    torch_loss(ref(torch.from_numpy(xs[0])), torch.from_numpy(ys[0])).backward()
                    for pname, p in ref.named_parameters():
                        key = f"grad.{pname}"
                        if key not in g:
                            # The exporter may deduplicate identical initial
                            # weights under one name; compare via that name.
                            continue
                        want = p.grad.numpy().astype(np.float64)
                        have = g[key].astype(np.float64)
                        err = float(np.linalg.norm(have - want) / max(np.linalg.norm(want), 1e-12))
                        worst_grad = max(worst_grad, err)
                    print(f"{name:7s} gradients of every parameter after one step: "
                          f"max rel err {worst_grad:.2e}")
                    failures += worst_grad > args.tolerance
                ok = worst_loss <= args.tolerance
                failures += not ok
                summary.append((name, opt_name, worst_loss))
                print(f"{name:7s} {opt_name:13s} losses over {args.steps} steps: max rel err "
                      f"{worst_loss:.2e} {'PASS' if ok else 'FAIL'}")
    print(f"{failures} failures; max loss rel err {max(s[2] for s in summary):.2e}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
