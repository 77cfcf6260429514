#!/usr/bin/env python3
"""Compiled training against PyTorch: each reference model (MLP, CNN,
ResNet with BatchNorm; scripts/export_torch_models.py) is exported from
PyTorch, compiled by `trainopt-compile --target=cpu` into an artifact and
trained by `trainopt-run` for N steps on fixed batches (file order, no
shuffling), while PyTorch trains the same module from the same weights on
the same batches with the same optimizer. The loss of every step (before
that step's update, as `--metrics` reports it) must agree within the
tolerance.

With --f64, PyTorch also trains in float64 from the same weights, and each
row adds how far trainopt and PyTorch's own float32 run are from it: where
PyTorch float32 is itself far from float64 the run is chaotic (a ReLU or
max-pool decision that float32 rounding flips, amplified by the optimizer),
and no float32 implementation can be held to the tolerance.

Usage (a Python with torch, numpy and onnx):
    compare_runtime_torch.py --bin build/bin [--steps 50] [--models mlp,cnn,resnet] [--f64]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_torch_models import CNN, GPT, MLP, ResNet, legacy_exporter  # noqa: E402

OPTIMIZERS = {
    "sgd-slow": ("--optimizer=sgd --lr=0.005 --momentum=0.9",
                 lambda p: torch.optim.SGD(p, lr=0.005, momentum=0.9)),
    "adam-slow": ("--optimizer=adam --lr=2e-4", lambda p: torch.optim.Adam(p, lr=2e-4)),
    "adam-1e-4": ("--optimizer=adam --lr=1e-4", lambda p: torch.optim.Adam(p, lr=1e-4)),
    "sgd-momentum": ("--optimizer=sgd --lr=0.02 --momentum=0.9 --weight-decay=1e-4",
                     lambda p: torch.optim.SGD(p, lr=0.02, momentum=0.9, weight_decay=1e-4)),
    "adam": ("--optimizer=adam --lr=1e-3", lambda p: torch.optim.Adam(p, lr=1e-3)),
}

# name: (module class, batch, sample shape); the GPT decoder takes int64
# token ids (vocabulary 96, 16 per sample) and predicts the next id of a
# learnable sequence.
MODELS = {
    "mlp": (MLP, 32, (784,)),
    "cnn": (CNN, 16, (1, 28, 28)),
    "resnet": (ResNet, 8, (1, 28, 28)),
    "gpt": (GPT, 4, "tokens"),
}


def token_data(n, rng, vocab=96, length=16):
    """Sequences that count up modulo the vocabulary from random starts,
    and their next ids."""
    start = rng.integers(0, vocab, (n, 1))
    seq = (start + np.arange(length + 1)) % vocab
    return seq[:, :-1].astype(np.int64), seq[:, 1:].astype(np.int64)


FASHION = "/usr/share/datasets/fashion-mnist"


def fashion_mnist(n):
    """The first n Fashion-MNIST training samples (x in [0, 1]), or None."""
    import gzip
    try:
        with gzip.open(os.path.join(FASHION, "train-images-idx3-ubyte.gz")) as f:
            x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
        with gzip.open(os.path.join(FASHION, "train-labels-idx1-ubyte.gz")) as f:
            y = np.frombuffer(f.read(), np.uint8, offset=8)
    except OSError:
        return None
    return (x[:n].astype(np.float32) / 255.0, y[:n].astype(np.int64))


def torch_losses(cls, base, make_opt, x, y, batch, steps, dtype):
    """The loss of every step of PyTorch training `base`'s copy in dtype."""
    model = cls()
    model.load_state_dict(base.state_dict())
    model = model.to(dtype).train()
    opt = make_opt(model.parameters())
    losses = []
    for k in range(steps):
        xb = torch.from_numpy(x[k * batch:(k + 1) * batch])
        if xb.is_floating_point():
            xb = xb.to(dtype)
        yb = torch.from_numpy(y[k * batch:(k + 1) * batch])
        opt.zero_grad()
        logits = model(xb)
        # [B, T, V] token logits: classes on the last axis (--class-axis=-1).
        loss = F.cross_entropy(logits.transpose(1, 2) if logits.dim() == 3 else logits, yb)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("--models", default="mlp,cnn,resnet")
    ap.add_argument("--optimizers", default="adam-slow,sgd-slow")
    ap.add_argument("--f64", action="store_true",
                    help="also train PyTorch in float64 and report both runs against it")
    args = ap.parse_args()
    torch.set_num_threads(2)
    tool = lambda name: os.path.join(args.bin, name)
    failures, worst_all = 0, 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            cls, batch, sample = MODELS[name]
            torch.manual_seed(0)
            rng = np.random.default_rng(1)
            base = cls().train()
            # Real data: on random labels training fits noise, a chaotic
            # regime where any float32 rounding difference grows every step.
            n = args.steps * batch
            real = fashion_mnist(n) if sample != "tokens" else None
            if sample == "tokens":
                x, y = token_data(n, rng)
            elif real is not None:
                x, y = real[0].reshape(n, *sample), real[1]
            else:
                print("Fashion-MNIST not found; random inputs (more chaotic)")
                x = rng.random((n, *sample)).astype(np.float32)
                y = rng.integers(0, 10, n).astype(np.int64)
            onnx_path = os.path.join(tmp, f"{name}.onnx")
            torch.onnx.export(base, (torch.from_numpy(x[:batch]),), onnx_path,
                              opset_version=17, do_constant_folding=False,
                              input_names=["x"], output_names=["logits"],
                              training=torch.onnx.TrainingMode.TRAINING,
                              **legacy_exporter())
            data = os.path.join(tmp, f"{name}.npz")
            np.savez(data, x=x, y=y)
            for opt_name in args.optimizers.split(","):
                flags, make_opt = OPTIMIZERS[opt_name]
                artifact = os.path.join(tmp, f"{name}-{opt_name}.trainopt")
                run([tool("trainopt-compile"), onnx_path, "--target=cpu",
                     f"--batch-size={batch}", "--loss=cross_entropy", *flags.split(),
                     *(["--class-axis=-1"] if sample == "tokens" else []),
                     "-o", artifact])
                metrics = os.path.join(tmp, f"{name}-{opt_name}.jsonl")
                run([tool("trainopt-run"), artifact, f"--data={data}", "--no-shuffle",
                     f"--steps={args.steps}", f"--metrics={metrics}", "--quiet",
                     "--no-train-eval"])
                steps = [json.loads(line) for line in open(metrics)]
                got = [s["loss"] for s in steps if not s.get("summary")]
                ref = torch_losses(cls, base, make_opt, x, y, batch, args.steps, torch.float32)
                worst = max(abs(g - r) / abs(r) for g, r in zip(got, ref))
                if os.environ.get("VERBOSE"):
                    for k, (g, r) in enumerate(zip(got, ref)):
                        print(k, g, r, abs(g - r) / abs(r))
                extra = ""
                if args.f64:
                    r64 = torch_losses(cls, base, make_opt, x, y, batch, args.steps, torch.float64)
                    rel = lambda a: max(abs(p - q) / abs(q) for p, q in zip(a, r64))
                    extra = f"; vs float64: trainopt {rel(got):.1e}, PyTorch float32 {rel(ref):.1e}"
                ok = len(got) == args.steps and worst <= args.tolerance
                failures += not ok
                worst_all = max(worst_all, worst)
                print(f"{name:7s} {opt_name:13s} batch {batch:3d} losses over {args.steps} "
                      f"steps: max rel err {worst:.2e} (first {got[0]:.5f}, last "
                      f"{got[-1]:.5f}) {'PASS' if ok else 'FAIL'}{extra}")
    print(f"{failures} failures; max loss rel err {worst_all:.2e}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
