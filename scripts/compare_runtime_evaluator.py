#!/usr/bin/env python3
"""The compiled CPU program against the reference evaluator: the same
@train_step, compiled by `trainopt-compile --target=cpu` and run by
`trainopt-run`, and interpreted by `trainopt-eval --repeat`, on the same
batches. Losses, gradient norms and the final value of every persistent
value (parameters, optimizer and model state) must agree.

Usage (the repo's .venv python: numpy):
    compare_runtime_evaluator.py --bin build/bin MODEL.onnx --batch N --steps K
        [--input-shape 1,28,28 | --tokens VOCAB,LEN] [--rtol 1e-4] [-- COMPILE FLAGS]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", required=True)
    ap.add_argument("model")
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--input-shape", default="784")
    ap.add_argument("--tokens", help="VOCAB,LEN: integer token inputs")
    ap.add_argument("--input-name", default="x")
    ap.add_argument("--rtol", type=float, default=1e-4)
    ap.add_argument("--final-rtol", type=float,
                    help="tolerance of the final values (default: --rtol). Adam-like "
                         "optimizers move a weight by about lr * sign(g) when |g| is "
                         "tiny, so a float32 gradient that cancels to +-1e-12 where "
                         "float64 gives -+1e-12 moves it the other way")
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args = ap.parse_args(argv[:split])
    args.flags = argv[split + 1:]
    tool = lambda name: os.path.join(args.bin, name)
    rng = np.random.default_rng(0)
    n = args.batch * args.steps
    if args.tokens:
        vocab, length = map(int, args.tokens.split(","))
        x = rng.integers(0, vocab, (n, length)).astype(np.int64)
        y = rng.integers(0, vocab, (n, length)).astype(np.int64)
    else:
        shape = tuple(int(d) for d in args.input_shape.split(","))
        x = rng.random((n, *shape)).astype(np.float32)
        y = rng.integers(0, 10, n).astype(np.int64)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        common = [args.model, f"--batch-size={args.batch}", *args.flags]
        artifact = os.path.join(tmp, "m.trainopt")
        mlir = os.path.join(tmp, "m.mlir")
        run([tool("trainopt-compile"), *common, "-o", artifact])
        run([tool("trainopt-compile"), *common, "--emit=train-mlir", "-o", mlir])
        data = os.path.join(tmp, "data.npz")
        np.savez(data, x=x, y=y)
        metrics = os.path.join(tmp, "m.jsonl")
        params = os.path.join(tmp, "params.npz")
        run([tool("trainopt-run"), artifact, f"--data={data}", "--no-shuffle",
             f"--steps={args.steps}", f"--metrics={metrics}", f"--save-params={params}",
             "--quiet", "--no-train-eval", "--scale=1"])
        steps = [json.loads(line) for line in open(metrics) if '"summary"' not in line]
        batches = os.path.join(tmp, "batches.npz")
        np.savez(batches, **{f"{args.input_name}.{k}": x[k * args.batch:(k + 1) * args.batch]
                             for k in range(args.steps)},
                 **{f"labels.{k}": y[k * args.batch:(k + 1) * args.batch]
                    for k in range(args.steps)})
        out = os.path.join(tmp, "eval.npz")
        run([tool("trainopt-eval"), mlir, "--function=train_step", "--inputs", batches,
             "--repeat", str(args.steps), "-o", out])
        ref = np.load(out)
        worst = {}

        def check(what, have, want, rtol=args.rtol):
            nonlocal failures
            have = np.asarray(have, np.float64)
            want = np.asarray(want, np.float64)
            err = float(np.max(np.abs(have - want)) / max(np.max(np.abs(want)), 1e-30))
            worst[what] = max(worst.get(what, 0.0), err)
            if not err <= rtol:
                failures += 1
                print(f"FAIL {what}: rel err {err:.2e}")

        for k, s in enumerate(steps):
            check("loss", s["loss"], ref[f"loss.{k}"])
            check("grad_norm", s["grad_norm"], ref[f"grad_norm.{k}"])
        trained = np.load(params)
        compared = 0
        for key in ref.files:
            if key.startswith("final."):
                name = key[len("final."):]
                if name in trained.files:
                    check("final values", trained[name], ref[key],
                          args.final_rtol or args.rtol)
                    if os.environ.get("VERBOSE"):
                        w = ref[key].astype(np.float64); h = trained[name].astype(np.float64)
                        print(name, float(np.max(np.abs(h - w)) / max(np.max(np.abs(w)), 1e-30)))
                    compared += 1
        if len(steps) != args.steps or compared == 0:
            failures += 1
            print(f"FAIL: {len(steps)} steps, {compared} final values compared")
        print(f"{os.path.basename(args.model)}: {args.steps} steps, {compared} final values; "
              + ", ".join(f"{k} max rel err {v:.2e}" for k, v in worst.items())
              + (" PASS" if not failures else " FAIL"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
