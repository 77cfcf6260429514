#!/usr/bin/env python3
"""Compiled training against PyTorch: each reference model (MLP, CNN,
ResNet with BatchNorm, GPT decoder; scripts/export_torch_models.py) is
exported from PyTorch, compiled by `trainopt-compile --target=cpu` into an
artifact and trained by `trainopt-run` for N steps on fixed batches (file
order, no shuffling), while PyTorch trains the same module from the same
weights on the same batches with the same optimizer. The loss of every step (before
that step's update, as `--metrics` reports it) must agree within the
tolerance.

With --f64, PyTorch also trains in float64 from the same weights, and each
row adds how far trainopt and PyTorch's own float32 run are from it: where
PyTorch float32 is itself far from float64 the run is chaotic (a ReLU or
max-pool decision that float32 rounding flips, amplified by the optimizer),
and no float32 implementation can be held to the tolerance.

With --amp bf16, trainopt compiles with --amp=bf16 and PyTorch trains twice
from the same weights on the same batches, in float32 and under
torch.autocast("cpu", dtype=torch.bfloat16) (float32 parameters, gradients
and optimizer, as torch's recipe has it). No bf16 run can follow float32
closely, so trainopt's distance from PyTorch float32 is held to a multiple
(--amp-factor) of PyTorch's own bf16 distance from it, in every step's loss
and in each final parameter (compare_amp; test/Runtime/amp-vs-torch.test
gives the bound's reasons and the measured figures).

Usage (a Python with torch and numpy):
    compare_runtime_torch.py --bin build/bin [--steps 50] [--models mlp,cnn,resnet,gpt]
        [--f64 | --amp bf16]
"""
import argparse
import contextlib
import copy
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


def train_module(model, make_opt, x, y, batch, steps, dtype, amp=None, before_step=None):
    """The loss of every step of PyTorch training `model` (already in dtype)
    on x, y in batches, from a fresh optimizer; before_step(k), if given,
    runs before step k's forward (a schedule's changes to the model). With
    amp (torch.bfloat16), the forward pass and the loss run under
    torch.autocast("cpu", dtype=amp), as torch's recipe has it: parameters,
    gradients and the optimizer stay in dtype."""
    model.train()
    opt = make_opt(model.parameters())
    losses = []
    for k in range(steps):
        if before_step:
            before_step(k)
        xb = torch.from_numpy(x[k * batch:(k + 1) * batch])
        if xb.is_floating_point():
            xb = xb.to(dtype)
        yb = torch.from_numpy(y[k * batch:(k + 1) * batch])
        opt.zero_grad()
        with torch.autocast("cpu", dtype=amp) if amp else contextlib.nullcontext():
            logits = model(xb)
            # [B, T, V] token logits: classes on the last axis (--class-axis=-1).
            loss = F.cross_entropy(logits.transpose(1, 2) if logits.dim() == 3 else logits, yb)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def torch_train(cls, base, make_opt, x, y, batch, steps, dtype, amp=None):
    """The loss of every step of PyTorch training `base`'s copy in dtype,
    and its final parameters (train_module)."""
    model = cls()
    model.load_state_dict(base.state_dict())
    model = model.to(dtype)
    losses = train_module(model, make_opt, x, y, batch, steps, dtype, amp)
    return losses, {k: v.detach().numpy() for k, v in model.named_parameters()}


def as_float64(name, base, x, y, tmp):
    """The float64 copy of `base` exported to ONNX, and the data as float64."""
    _, batch, _ = MODELS[name]
    base64 = copy.deepcopy(base).double()
    x64 = x.astype(np.float64)
    onnx_path = os.path.join(tmp, f"{name}.f64.onnx")
    torch.onnx.export(base64, (torch.from_numpy(x64[:batch]),), onnx_path,
                      opset_version=17, do_constant_folding=False,
                      input_names=["x"], output_names=["logits"],
                      training=torch.onnx.TrainingMode.TRAINING, **legacy_exporter())
    data = os.path.join(tmp, f"{name}.f64.npz")
    np.savez(data, x=x64, y=y)
    return onnx_path, data


def reference_models(names, steps, tmp, dtype="f64"):
    """For each model name: (name, cls, batch, base, x, y, onnx_path, data,
    torch dtype), the module exported and its batches written for trainopt,
    in float64 copies when dtype is "f64" (the parity scripts' strict
    mode)."""
    for name in names.split(","):
        cls, batch, _ = MODELS[name]
        base, x, y, onnx_path, data = prepare(name, steps, tmp)
        if dtype == "f64":
            onnx_path, data = as_float64(name, base, x, y, tmp)
        yield (name, cls, batch, base, x, y, onnx_path, data,
               torch.float64 if dtype == "f64" else torch.float32)


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout


def prepare(name, steps, tmp):
    """Model `name`'s initial module (seeded), its steps batches of data (x, y)
    and their files: the module exported to ONNX and the data as .npz."""
    cls, batch, sample = MODELS[name]
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    base = cls().train()
    # Real data: on random labels training fits noise, a chaotic
    # regime where any float32 rounding difference grows every step.
    n = steps * batch
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
    return base, x, y, onnx_path, data


def trainopt_train(bin_dir, name, onnx_path, data, flags, steps, tag):
    """The loss of every step of trainopt compiling model `name` with flags
    and training it on data, and its final persistent values by name; its
    files are tag.*."""
    _, batch, sample = MODELS[name]
    return run_trainopt(bin_dir, onnx_path, data, [
        f"--batch-size={batch}", *flags.split(),
        *(["--class-axis=-1"] if sample == "tokens" else [])], steps, tag)


def run_trainopt(bin_dir, onnx_path, data, flags, steps, tag):
    """trainopt_train's compile (cross-entropy, CPU, the flags list) and
    run, for any model: the losses and the final persistent values."""
    run([os.path.join(bin_dir, "trainopt-compile"), onnx_path, "--target=cpu",
         "--loss=cross_entropy", *flags, "-o", f"{tag}.trainopt"])
    run([os.path.join(bin_dir, "trainopt-run"), f"{tag}.trainopt", f"--data={data}",
         "--no-shuffle", f"--steps={steps}", f"--metrics={tag}.jsonl", "--quiet",
         "--no-train-eval", f"--save-params={tag}.npz"])
    rows = [json.loads(line) for line in open(f"{tag}.jsonl")]
    return [r["loss"] for r in rows if not r.get("summary")], dict(np.load(f"{tag}.npz"))


def compare_f32(args, name, base, x, y, onnx_path, data, tmp):
    """Trains model `name` in trainopt and PyTorch float32 with each of
    args.optimizers and prints a row per optimizer; returns the failures and
    the largest relative loss error."""
    cls, batch, _ = MODELS[name]
    failures, worst_all = 0, 0.0
    for opt_name in args.optimizers.split(","):
        flags, make_opt = OPTIMIZERS[opt_name]
        got, _ = trainopt_train(args.bin, name, onnx_path, data, flags, args.steps,
                                os.path.join(tmp, f"{name}-{opt_name}"))
        ref, _ = torch_train(cls, base, make_opt, x, y, batch, args.steps, torch.float32)
        worst = max(abs(g - r) / abs(r) for g, r in zip(got, ref))
        if os.environ.get("VERBOSE"):
            for k, (g, r) in enumerate(zip(got, ref)):
                print(k, g, r, abs(g - r) / abs(r))
        extra = ""
        if args.f64:
            r64, _ = torch_train(cls, base, make_opt, x, y, batch, args.steps, torch.float64)
            rel = lambda a: max(abs(p - q) / abs(q) for p, q in zip(a, r64))
            extra = f"; vs float64: trainopt {rel(got):.1e}, PyTorch float32 {rel(ref):.1e}"
        ok = len(got) == args.steps and worst <= args.tolerance
        failures += not ok
        worst_all = max(worst_all, worst)
        print(f"{name:7s} {opt_name:13s} batch {batch:3d} losses over {args.steps} "
              f"steps: max rel err {worst:.2e} (first {got[0]:.5f}, last "
              f"{got[-1]:.5f}) {'PASS' if ok else 'FAIL'}{extra}")
    return failures, worst_all


def compare_amp(args, name, base, x, y, onnx_path, data, tmp):
    """Trains model `name` in trainopt with --amp=bf16 and in PyTorch twice,
    float32 and under CPU autocast (bf16), with each of args.optimizers, and
    holds our distance from PyTorch float32 to a multiple of PyTorch's own
    bf16 distance from it:
      loss: every step's |ours - f32| <= amp_factor * S + tolerance * |f32|,
            S the largest |torch bf16 - f32| over the steps;
      parameters: each parameter's final ||ours - f32||, over how far f32
            training moved it (||f32 - initial||), <= amp_factor * PyTorch
            bf16's same figure for that parameter + amp_param_floor.
    Why a multiple: PyTorch's bf16 distance is one sample of how far bf16
    rounding carries a run, not a ceiling; a run that rounds at other places
    (trainopt adds a bias after rounding the GEMM's output, where PyTorch's
    addmm rounds once) is another sample, as near or up to about 1.5 times
    as far. The floors keep a lucky small PyTorch figure from failing a run
    that agrees as well as float32 does: --tolerance is the float32 test's
    loss tolerance, and float32 trainopt ends up to 6e-3 of the update from
    PyTorch float32 (ResNet, Adam 1e-4), under amp_param_floor's 1e-2.
    Prints a row per optimizer; returns the failures and the largest ratio
    of a distance to its bound."""
    cls, batch, _ = MODELS[name]
    failures, worst_all = 0, 0.0
    init = {k: v.detach().numpy().copy() for k, v in base.named_parameters()}
    for opt_name in args.optimizers.split(","):
        flags, make_opt = OPTIMIZERS[opt_name]
        got, ours = trainopt_train(args.bin, name, onnx_path, data, f"{flags} --amp={args.amp}",
                                   args.steps, os.path.join(tmp, f"{name}-{opt_name}-{args.amp}"))
        ref, p32 = torch_train(cls, base, make_opt, x, y, batch, args.steps, torch.float32)
        low, plow = torch_train(cls, base, make_opt, x, y, batch, args.steps, torch.float32,
                                amp=torch.bfloat16)
        spread = max(abs(b - r) for b, r in zip(low, ref))
        loss_ratio = max(abs(g - r) / (args.amp_factor * spread + args.tolerance * abs(r))
                         for g, r in zip(got, ref))
        # Fifty small steps move a weight by a fraction of a percent of its
        # norm; the distance is measured against that movement instead.
        moved = lambda p, k: (np.linalg.norm(p[k] - p32[k]) /
                              max(np.linalg.norm(p32[k] - init[k]), 1e-30))
        params = {k: (moved(ours, k), moved(plow, k)) for k in p32}
        ratio = {k: d / (args.amp_factor * s + args.amp_param_floor)
                 for k, (d, s) in params.items()}
        worst_param = max(ratio, key=ratio.get)
        if os.environ.get("VERBOSE"):
            for k, (g, b, r) in enumerate(zip(got, low, ref)):
                print(f"  step {k + 1}: ours {g:.6f} torch bf16 {b:.6f} f32 {r:.6f}")
            for k, (d, s) in params.items():
                print(f"  {k:20s} ours {d:.3e} torch bf16 {s:.3e}")
        ok = len(got) == args.steps and loss_ratio <= 1 and ratio[worst_param] <= 1
        failures += not ok
        worst_all = max(worst_all, loss_ratio, ratio[worst_param])
        d, s = params[worst_param]
        print(f"{name:7s} {opt_name:13s} {args.amp} over {args.steps} steps: loss |ours - f32| "
              f"max {max(abs(g - r) for g, r in zip(got, ref)):.2e}, torch bf16 {spread:.2e}, "
              f"{loss_ratio:.2f} of bound; params worst {worst_param} {d:.2e}, torch bf16 "
              f"{s:.2e}, {ratio[worst_param]:.2f} of bound {'PASS' if ok else 'FAIL'}")
    return failures, worst_all


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("--models", default="mlp,cnn,resnet")
    ap.add_argument("--optimizers", default="adam-slow,sgd-slow")
    ap.add_argument("--f64", action="store_true",
                    help="also train PyTorch in float64 and report both runs against it")
    ap.add_argument("--amp", choices=["bf16"],
                    help="compile with --amp and compare against PyTorch CPU autocast; "
                         "--tolerance becomes the loss bound's floor")
    ap.add_argument("--amp-factor", type=float, default=2.0,
                    help="--amp: how many times PyTorch's bf16 distance from float32 ours may be")
    ap.add_argument("--amp-param-floor", type=float, default=1e-2,
                    help="--amp: slack of the parameter bound, a fraction of float32's update")
    args = ap.parse_args()
    if args.amp and args.f64:
        ap.error("--f64 and --amp are exclusive")
    torch.set_num_threads(2)
    compare = compare_amp if args.amp else compare_f32
    failures, worst_all = 0, 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            f, w = compare(args, name, *prepare(name, args.steps, tmp), tmp)
            failures, worst_all = failures + f, max(worst_all, w)
    what = "distance / bound" if args.amp else "loss rel err"
    print(f"{failures} failures; max {what} {worst_all:.2e}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
