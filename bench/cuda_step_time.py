#!/usr/bin/env python3
"""Training on one GPU: trainopt against PyTorch eager, torch.compile and
torch.compile(mode="reduce-overhead"), measured in the same run on the same
GPU with the same model, batch, optimizer and batches, and the same initial
weights where this PyTorch draws what the exporting one drew (checked:
`same_initial_weights`)
(DESIGN.md section 6). Runs on the GPU machine over a bundle made on the
build machine by bench/cuda_prepare.sh:

    python3 bench/cuda_step_time.py --bundle .bench-small [--steps 200]

Prints one table per figure of the CUDA issue and writes them as JSON
(--out):
- step time: trainopt's steady-state time per step against each PyTorch
  mode, and the ratio (trainopt / PyTorch; below 1 is faster);
- correctness: the largest relative difference between trainopt's GPU
  losses and its CPU target's (computed by cuda_prepare.sh on the same
  batches) over the first steps;
- peak device memory: trainopt's arena plus library workspace against
  PyTorch eager's torch.cuda.max_memory_allocated;
- compile time: trainopt-compile's cold compile (from the bundle) against
  torch.compile's first step.

What a step is, on both sides: the batch (uint8, in pinned host memory)
copied to the GPU and scaled by 1/255, forward, cross-entropy loss,
backward, optimizer update. trainopt's step time is the slope of its
`t_ms` over the timed steps of `trainopt-run --metrics` (which also
reads the loss back every step; PyTorch's loop does not, which favours
it); PyTorch's is wall time over the timed steps between two
torch.cuda.synchronize(). TF32 is allowed on both sides (PyTorch:
allow_tf32 for matmuls and cuDNN; trainopt: its default).

Mixed precision: a bundle prepared with TRAINOPT_AMP=bf16 (its `amp` file)
holds --amp=bf16 artifacts and CPU references; PyTorch then runs forward
and loss under torch.autocast("cuda", dtype=torch.bfloat16), with fp32
parameters and optimizer, in every mode.
"""
import contextlib
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cuda_models import CASES, SAMPLES, build, fingerprint, synthetic  # noqa: E402


def run_trainopt(bundle, name, data, steps, extra=()):
    metrics = os.path.join(data, f"{name}-trainopt.jsonl")
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.path.join(bundle, "lib") + ":" + env.get("LD_LIBRARY_PATH", "")
    cmd = [os.path.join(bundle, "bin", "trainopt-run"), os.path.join(bundle, f"{name}-cuda.trainopt"),
           f"--data={data}/{name}-x.npy,{data}/{name}-y.npy", "--steps", str(steps),
           "--no-shuffle", "--quiet", "--no-train-eval", f"--metrics={metrics}", *extra]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    records = [json.loads(line) for line in open(metrics)]
    return [r for r in records if not r.get("summary")], records[-1]


def trainopt_step_ms(records, warmup):
    t = [r["t_ms"] for r in records]
    return (t[-1] - t[warmup - 1]) / (len(t) - warmup)


def torch_run(name, x_host, y_host, mode, steps, warmup, amp=None):
    """Returns (ms per step, first-step seconds, peak bytes, losses); under
    torch.autocast("cuda", dtype=amp) when given."""
    _, _, _, batch, _, make_opt, _ = CASES[name]
    torch._dynamo.reset() if hasattr(torch, "_dynamo") else None
    model = build(name).cuda()
    opt = make_opt(model.parameters())

    def step(xb, yb):
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=amp) if amp else contextlib.nullcontext():
            loss = F.cross_entropy(model(xb.float() / 255.0), yb)
        loss.backward()
        opt.step()
        return loss.detach()

    fn = step if mode == "eager" else torch.compile(step, mode=mode)
    n = x_host.shape[0] // batch
    losses = []
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    first = None
    start = None
    for i in range(warmup + steps):
        if i == warmup:
            torch.cuda.synchronize()
            start = time.perf_counter()
        j = i % n
        xb = x_host[j * batch:(j + 1) * batch].cuda(non_blocking=True)
        yb = y_host[j * batch:(j + 1) * batch].cuda(non_blocking=True)
        t0 = time.perf_counter() if i == 0 else None
        loss = fn(xb, yb)
        if i == 0:
            torch.cuda.synchronize()
            first = time.perf_counter() - t0
        if i < 50:
            losses.append(loss)
    torch.cuda.synchronize()
    ms = (time.perf_counter() - start) * 1e3 / steps
    peak = torch.cuda.max_memory_allocated()
    return ms, first, peak, [float(v) for v in losses]


def rel_diff(a, b):
    return max(abs(x - y) / max(abs(y), 1e-12) for x, y in zip(a, b))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--modes", default="eager,default,reduce-overhead")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    bundle = os.path.abspath(args.bundle)
    data = os.path.join("/tmp", "trainopt-bench-data")
    os.makedirs(data, exist_ok=True)
    compile_s = json.load(open(os.path.join(bundle, "compile.json")))
    amp_path = os.path.join(bundle, "amp")
    amp_name = open(amp_path).read().strip() if os.path.exists(amp_path) else ""
    amp = {"bf16": torch.bfloat16, "fp16": torch.float16, "": None}[amp_name]
    names = [n for n in CASES if os.path.exists(os.path.join(bundle, f"{n}-cuda.trainopt"))]
    results = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
               "amp": amp_name or "off", "models": {}}
    for name in names:
        x, y = synthetic(name)
        np.save(os.path.join(data, f"{name}-x.npy"), x)
        np.save(os.path.join(data, f"{name}-y.npy"), y)
        steps = args.steps if name != "resnet18" else max(20, args.steps // 4)
        r = {"batch": CASES[name][3]}
        # trainopt: the timed run, then the first losses against the CPU target's.
        records, summary = run_trainopt(bundle, name, data, args.warmup + steps)
        r["trainopt_ms"] = trainopt_step_ms(records, args.warmup)
        r["trainopt_device_bytes"] = summary.get("device_bytes")
        r["trainopt_device"] = summary.get("device")
        ref = [json.loads(l) for l in open(os.path.join(bundle, f"{name}-cpu.jsonl"))]
        ref = [l["loss"] for l in ref if not l.get("summary")]
        r["loss_steps"] = len(ref)
        r["loss_rel_diff_vs_cpu"] = rel_diff([l["loss"] for l in records[:len(ref)]], ref)
        nograph, _ = run_trainopt(bundle, name, data, args.warmup + steps, ["--no-cuda-graph"])
        r["trainopt_nograph_ms"] = trainopt_step_ms(nograph, args.warmup)
        # PyTorch, on the same batches from pinned memory.
        xt = torch.from_numpy(x).pin_memory()
        yt = torch.from_numpy(y).pin_memory()
        for mode in args.modes.split(","):
            if mode == "reduce-overhead" and name == "resnet18":
                continue
            ms, first, peak, losses = torch_run(name, xt, yt, mode, steps, args.warmup, amp)
            r[f"torch_{mode}_ms"] = ms
            r[f"torch_{mode}_first_s"] = first
            r[f"torch_{mode}_peak_bytes"] = peak
            r[f"torch_{mode}_loss_rel_diff_vs_trainopt_cpu"] = rel_diff(losses[:len(ref)], ref)
        r["trainopt_compile_s"] = compile_s.get(name)
        # The PyTorch loss columns compare like with like only when this
        # PyTorch draws the exported initial weights.
        ref_w = json.load(open(os.path.join(bundle, f"{name}-weights.json")))
        mine = fingerprint(build(name))
        r["same_initial_weights"] = len(mine) == len(ref_w) and all(
            abs(a - b) <= 1e-9 * max(1.0, abs(b))
            for x, y in zip(mine, ref_w) for a, b in zip(x, y))
        results["models"][name] = r
        print(json.dumps({name: r}), flush=True)

    print(f"\n{results['device']}, PyTorch {results['torch']}, AMP {results['amp']}; "
          f"ms per training step (ratio = trainopt / PyTorch)")
    print("| model | batch | trainopt | (no graph) | eager | ratio | compile | ratio "
          "| reduce-overhead | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results["models"].items():
        row = [name, str(r["batch"]), f"{r['trainopt_ms']:.3f}", f"{r['trainopt_nograph_ms']:.3f}"]
        for mode in ("eager", "default", "reduce-overhead"):
            t = r.get(f"torch_{mode}_ms")
            row += [f"{t:.3f}", f"{r['trainopt_ms'] / t:.2f}"] if t else ["-", "-"]
        print("| " + " | ".join(row) + " |")
    print("\n| model | loss rel. diff vs CPU target (steps) | trainopt device MiB "
          "| eager peak MiB | ratio | trainopt compile s | torch.compile first step s | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results["models"].items():
        mine = (r["trainopt_device_bytes"] or 0) / 2**20
        peak = r.get("torch_eager_peak_bytes", 0) / 2**20
        first = r.get("torch_default_first_s")
        comp = r.get("trainopt_compile_s")
        print(f"| {name} | {r['loss_rel_diff_vs_cpu']:.2e} ({r['loss_steps']}) | {mine:.0f} "
              f"| {peak:.0f} | {mine / peak:.2f} | {comp:.1f} | "
              + (f"{first:.1f} | {comp / first:.2f} |" if first and comp else "- | - |"))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
