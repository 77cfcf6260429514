#!/usr/bin/env python3
"""Training step time on the CPU: trainopt against PyTorch eager, measured
in the same run on the same machine, same model, batch, optimizer and
thread count (DESIGN.md section 6). Prints a table with the median step
time of each and their ratio (trainopt / PyTorch; below 1 is faster).

Run it with a Python that has the PyPI torch wheel (MKL/oneDNN), numpy and
onnx, e.g.:
    python -m venv /tmp/tv && /tmp/tv/bin/pip install torch numpy onnx==1.16.2
    /tmp/tv/bin/python bench/cpu_step_time.py --bin build/bin [--threads 2]

trainopt's step time is `step_ms` of `trainopt-run --metrics` (one
train_step: the compiled program, inputs already in the arena); PyTorch's
is zero_grad + forward + loss + backward + optimizer step on tensors
already in memory. Both exclude data loading. The first steps of each are
warm-up and not counted.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from export_torch_models import CNN, MLP, legacy_exporter  # noqa: E402

CASES = [
    # name, module, batch, sample shape, trainopt flags, torch optimizer
    ("mlp", MLP, 64, (784,), "--optimizer=sgd --lr=0.05 --momentum=0.9",
     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
    ("mlp", MLP, 256, (784,), "--optimizer=adam --lr=1e-3",
     lambda p: torch.optim.Adam(p, lr=1e-3)),
    ("cnn", CNN, 64, (1, 28, 28), "--optimizer=adam --lr=1e-3",
     lambda p: torch.optim.Adam(p, lr=1e-3)),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--cases", default="")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tool = lambda name: os.path.join(args.bin, name)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, cls, batch, sample, flags, make_opt in CASES:
            tag = f"{name}-b{batch}-{flags.split()[0].split('=')[1]}"
            if args.cases and tag not in args.cases.split(","):
                continue
            torch.manual_seed(0)
            model = cls().train()
            rng = np.random.default_rng(0)
            n = batch * (args.steps + args.warmup)
            x = rng.random((n, *sample)).astype(np.float32)
            y = rng.integers(0, 10, n).astype(np.int64)
            onnx_path = os.path.join(tmp, f"{tag}.onnx")
            torch.onnx.export(model, (torch.from_numpy(x[:batch]),), onnx_path,
                              opset_version=17, do_constant_folding=False,
                              input_names=["x"], output_names=["logits"],
                              training=torch.onnx.TrainingMode.TRAINING, **legacy_exporter())
            artifact = os.path.join(tmp, f"{tag}.trainopt")
            t0 = time.perf_counter()
            subprocess.run([tool("trainopt-compile"), onnx_path, "--target=cpu",
                            f"--batch-size={batch}", "--loss=cross_entropy", *flags.split(),
                            "-o", artifact], check=True)
            compile_s = time.perf_counter() - t0
            data = os.path.join(tmp, f"{tag}.npz")
            np.savez(data, x=x, y=y)
            metrics = os.path.join(tmp, f"{tag}.jsonl")
            subprocess.run([tool("trainopt-run"), artifact, f"--data={data}", "--no-shuffle",
                            f"--steps={args.steps + args.warmup}", f"--threads={args.threads}",
                            f"--metrics={metrics}", "--quiet", "--no-train-eval", "--scale=1"],
                           check=True, stdout=subprocess.DEVNULL)
            lines = [json.loads(l) for l in open(metrics)]
            ours = statistics.median(l["step_ms"] for l in lines
                                     if not l.get("summary") and l["step"] > args.warmup)
            opt = make_opt(model.parameters())
            xt, yt = torch.from_numpy(x), torch.from_numpy(y)
            times = []
            for k in range(args.steps + args.warmup):
                xb, yb = xt[k * batch:(k + 1) * batch], yt[k * batch:(k + 1) * batch]
                t0 = time.perf_counter()
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(xb), yb)
                loss.backward()
                opt.step()
                times.append((time.perf_counter() - t0) * 1e3)
            theirs = statistics.median(times[args.warmup:])
            rows.append((tag, ours, theirs, compile_s))
    print(f"threads={args.threads} torch={torch.__version__} steps={args.steps} "
          f"(median after {args.warmup} warm-up steps)")
    print(f"{'case':24s} {'trainopt ms':>12s} {'PyTorch ms':>11s} {'ratio':>7s} {'compile s':>10s}")
    for tag, ours, theirs, compile_s in rows:
        print(f"{tag:24s} {ours:12.3f} {theirs:11.3f} {ours / theirs:7.2f} {compile_s:10.2f}")


if __name__ == "__main__":
    main()
