#!/usr/bin/env python3
"""Training step time on the CPU: trainopt against PyTorch eager, measured
in the same run on the same machine, same model, batch, optimizer and
thread count (DESIGN.md section 6). Prints a table with the median step
time of each and their ratio (trainopt / PyTorch; below 1 is faster).

Run it with a Python that has the PyPI torch wheel (MKL/oneDNN), numpy and
onnx, e.g.:
    python -m venv /tmp/tv && /tmp/tv/bin/pip install torch torchvision numpy onnx==1.16.2
    /tmp/tv/bin/python bench/cpu_step_time.py --bin build/bin [--threads 2]

trainopt's step time is `step_ms` of `trainopt-run --metrics` (one
train_step: the compiled program, inputs already in the arena); PyTorch's
is zero_grad + forward + loss + backward + optimizer step on tensors
already in memory. Both exclude data loading. The first steps of each are
warm-up and not counted. With --rounds R every side runs R times, in
turn, and each median pools the steps of all rounds (this machine's speed
drifts over minutes; one run per side would compare different moments).

Rows for torchvision's ResNet-18, ResNet-50, MobileNetV2 and DenseNet-121
(weights=None, batch 16, 3x64x64, SGD with momentum) need torchvision;
they are the issue on CPU speed's models. Unless --no-compile, each row
also times torch.compile (inductor, CPU) in the same run and reports its
first step (compilation included) beside trainopt-compile's time:
    /tmp/tv/bin/python bench/cpu_step_time.py --bin build/bin \
        --cases resnet18-b16-sgd,resnet50-b16-sgd,mobilenet_v2-b16-sgd,densenet121-b16-sgd

With --amp bf16 each case also runs trainopt --amp=bf16 and PyTorch under
torch.autocast("cpu", dtype=torch.bfloat16), and prints a second table:
the bf16 step time, its speedup over our own fp32 step, the ratio to
PyTorch's autocast step, and the arena with AMP against without.
"""
import argparse
import contextlib
import copy
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
from export_torch_models import CNN, GPT, MLP, export_training  # noqa: E402

class WideMLP(torch.nn.Module):
    """The mixed-precision issue's MLP: 784-1024-1024-10."""

    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(784, 1024)
        self.fc2 = torch.nn.Linear(1024, 1024)
        self.fc3 = torch.nn.Linear(1024, 10)

    def forward(self, x):
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def bench_gpt():
    """A GPT-style decoder block sized for a step of tens of milliseconds:
    vocabulary 512, 64 tokens, width 256, 4 heads."""
    return GPT(vocab=512, seq=64, dim=256, heads=4)


def torchvision_model(name):
    """A torchvision classifier with random weights (1000 classes)."""
    def make():
        import torchvision
        return getattr(torchvision.models, name)(weights=None)
    return make


def sgd_momentum(p):
    return torch.optim.SGD(p, lr=0.01, momentum=0.9)


TORCHVISION_MODELS = ("resnet18", "resnet50", "mobilenet_v2", "densenet121")

CASES = [
    # name, module, batch, sample shape (or "tokens:VOCAB:LENGTH"), trainopt
    # flags, torch optimizer
    ("mlp", MLP, 64, (784,), "--optimizer=sgd --lr=0.05 --momentum=0.9",
     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
    ("mlp", MLP, 256, (784,), "--optimizer=adam --lr=1e-3",
     lambda p: torch.optim.Adam(p, lr=1e-3)),
    ("cnn", CNN, 64, (1, 28, 28), "--optimizer=adam --lr=1e-3",
     lambda p: torch.optim.Adam(p, lr=1e-3)),
    ("mlp1024", WideMLP, 256, (784,), "--optimizer=adam --lr=1e-3",
     lambda p: torch.optim.Adam(p, lr=1e-3)),
    ("gpt", bench_gpt, 16, "tokens:512:64", "--optimizer=adamw --lr=1e-3",
     lambda p: torch.optim.AdamW(p, lr=1e-3)),
] + [
    (name, torchvision_model(name), 16, (3, 64, 64), "--optimizer=sgd --lr=0.01 --momentum=0.9",
     sgd_momentum)
    for name in TORCHVISION_MODELS
]


def batches(sample, n, rng):
    """Inputs and labels: random floats and classes, or token ids and their
    next ids."""
    if isinstance(sample, str):
        _, vocab, length = sample.split(":")
        vocab, length = int(vocab), int(length)
        start = rng.integers(0, vocab, (n, 1))
        seq = (start + np.arange(length + 1)) % vocab
        return seq[:, :-1].astype(np.int64), seq[:, 1:].astype(np.int64), ["--class-axis=-1"]
    return (rng.random((n, *sample)).astype(np.float32),
            rng.integers(0, 10, n).astype(np.int64), [])


def compile_trainopt(tool, onnx_path, artifact, flags):
    """(compile s, arena bytes) of compiling a trainopt artifact."""
    t0 = time.perf_counter()
    report = artifact + ".json"
    subprocess.run([tool("trainopt-compile"), onnx_path, "--target=cpu", *flags,
                    "-o", artifact, f"--report={report}"], check=True)
    return time.perf_counter() - t0, json.load(open(report))["arena_bytes"]


def run_trainopt(tool, artifact, data, args):
    """The step ms of one trainopt-run after its warm-up steps."""
    metrics = artifact + ".jsonl"
    if os.path.exists(metrics):
        os.remove(metrics)
    subprocess.run([tool("trainopt-run"), artifact, f"--data={data}", "--no-shuffle",
                    f"--steps={args.steps + args.warmup}", f"--threads={args.threads}",
                    f"--metrics={metrics}", "--quiet", "--no-train-eval", "--scale=1"],
                   check=True, stdout=subprocess.DEVNULL)
    lines = [json.loads(l) for l in open(metrics)]
    return [l["step_ms"] for l in lines if not l.get("summary") and l["step"] > args.warmup]


class TorchRunner:
    """zero_grad + forward + loss + backward + step of a PyTorch model, under
    torch.autocast("cpu", dtype=amp) when given; with `compiled`, of
    torch.compile(model) (inductor), compiled on the first run, whose first
    step (compilation included) is kept in `first_s`."""

    def __init__(self, model, make_opt, x, y, batch, args, amp=None, compiled=False):
        self.opt = make_opt(model.parameters())
        if compiled:
            torch._dynamo.reset()
            model = torch.compile(model)
        self.model, self.amp, self.batch, self.args = model, amp, batch, args
        self.xt, self.yt = torch.from_numpy(x), torch.from_numpy(y)
        self.compiled, self.first_s = compiled, None

    def run(self):
        """The step ms of one run after its warm-up steps."""
        times, batch = [], self.batch
        for k in range(self.args.steps + self.args.warmup):
            xb = self.xt[k * batch:(k + 1) * batch]
            yb = self.yt[k * batch:(k + 1) * batch]
            t0 = time.perf_counter()
            self.opt.zero_grad(set_to_none=True)
            with (torch.autocast("cpu", dtype=self.amp) if self.amp
                  else contextlib.nullcontext()):
                logits = self.model(xb)
                loss = F.cross_entropy(logits.transpose(1, 2) if logits.dim() == 3 else logits,
                                       yb)
            loss.backward()
            self.opt.step()
            times.append((time.perf_counter() - t0) * 1e3)
        if self.compiled and self.first_s is None:
            self.first_s = times[0] / 1e3
        return times[self.args.warmup:]


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--cases", default="",
                    help="comma-separated tags (default: the rows without torchvision)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run each side this many times, in turn, and pool the steps")
    ap.add_argument("--no-compile", action="store_true",
                    help="do not time torch.compile")
    ap.add_argument("--amp", choices=["bf16"],
                    help="also time trainopt --amp=bf16 and PyTorch under "
                         "torch.autocast('cpu', dtype=torch.bfloat16), and report the arena "
                         "with and without AMP")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tool = lambda name: os.path.join(args.bin, name)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # A cold torch.compile, as a user's first: inductor would otherwise
        # reuse the kernels an earlier run of this script cached on disk.
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(tmp, "inductor")
        for name, cls, batch, sample, flags, make_opt in CASES:
            tag = f"{name}-b{batch}-{flags.split()[0].split('=')[1]}"
            if args.cases and tag not in args.cases.split(","):
                continue
            if not args.cases and name in TORCHVISION_MODELS:
                continue
            torch.manual_seed(0)
            model = cls().train()
            rng = np.random.default_rng(0)
            n = batch * (args.steps + args.warmup)
            x, y, extra = batches(sample, n, rng)
            onnx_path = os.path.join(tmp, f"{tag}.onnx")
            export_training(model, torch.from_numpy(x[:batch]), onnx_path)
            data = os.path.join(tmp, f"{tag}.npz")
            np.savez(data, x=x, y=y)
            common = [f"--batch-size={batch}", "--loss=cross_entropy", *extra, *flags.split()]
            artifact = os.path.join(tmp, f"{tag}.trainopt")
            compile_s, arena = compile_trainopt(tool, onnx_path, artifact, common)
            # Every side runs once per round, in turn, and the medians pool
            # all rounds: this machine's speed drifts by tens of percent over
            # minutes, so one run per side would compare different moments.
            runners = {"theirs": TorchRunner(copy.deepcopy(model), make_opt, x, y, batch, args)}
            sides = {"ours": lambda: run_trainopt(tool, artifact, data, args),
                     "theirs": runners["theirs"].run}
            if not args.no_compile:
                runners["inductor"] = TorchRunner(copy.deepcopy(model), make_opt, x, y, batch,
                                                  args, compiled=True)
                runners["inductor"].run()  # compiles; its steps are not counted
                sides["inductor"] = runners["inductor"].run
            if args.amp:
                amp_artifact = os.path.join(tmp, f"{tag}.amp.trainopt")
                _, arena_amp = compile_trainopt(tool, onnx_path, amp_artifact,
                                                common + [f"--amp={args.amp}"])
                runners["theirs_amp"] = TorchRunner(copy.deepcopy(model), make_opt, x, y, batch,
                                                    args, amp=torch.bfloat16)
                sides["ours_amp"] = lambda: run_trainopt(tool, amp_artifact, data, args)
                sides["theirs_amp"] = runners["theirs_amp"].run
            samples = {side: [] for side in sides}
            for _ in range(args.rounds):
                for side, run in sides.items():
                    samples[side] += run()
            row = {side: statistics.median(v) for side, v in samples.items()}
            row.update(tag=tag, compile_s=compile_s, arena=arena)
            if not args.no_compile:
                row["inductor_first_s"] = runners["inductor"].first_s
            if args.amp:
                row["arena_amp"] = arena_amp
            rows.append(row)
    print(f"threads={args.threads} torch={torch.__version__} steps={args.steps} "
          f"rounds={args.rounds} (median of the rounds' steps, each after {args.warmup} "
          f"warm-up steps)")
    print(f"{'case':24s} {'trainopt ms':>12s} {'PyTorch ms':>11s} {'ratio':>7s} {'compile s':>10s}"
          + ("" if args.no_compile else
             f" {'inductor ms':>12s} {'ratio':>7s} {'1st step s':>11s}"))
    for r in rows:
        print(f"{r['tag']:24s} {r['ours']:12.3f} {r['theirs']:11.3f} "
              f"{r['ours'] / r['theirs']:7.2f} {r['compile_s']:10.2f}"
              + ("" if args.no_compile else
                 f" {r['inductor']:12.3f} {r['ours'] / r['inductor']:7.2f}"
                 f" {r['inductor_first_s']:11.2f}"))
    if args.amp:
        print(f"\nmixed precision ({args.amp}; PyTorch: torch.autocast('cpu'))")
        print(f"{'case':24s} {'ours ms':>9s} {'vs our fp32':>12s} {'PyTorch ms':>11s} "
              f"{'ratio':>7s} {'arena MiB':>10s} {'vs fp32':>8s}")
        for r in rows:
            print(f"{r['tag']:24s} {r['ours_amp']:9.3f} {r['ours'] / r['ours_amp']:11.2f}x "
                  f"{r['theirs_amp']:11.3f} {r['ours_amp'] / r['theirs_amp']:7.2f} "
                  f"{r['arena_amp'] / 2**20:10.2f} {r['arena_amp'] / r['arena']:7.2f}x")


if __name__ == "__main__":
    main()
