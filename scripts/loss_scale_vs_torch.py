#!/usr/bin/env python3
"""Dynamic loss scaling against torch.amp.GradScaler: the MLP of
scripts/export_torch_models.py, compiled with `trainopt-compile --amp=fp16`
and dynamic loss scaling, trains 30 steps on fixed batches chosen to
overflow fp16, and PyTorch trains the same weights on the same batches with
GradScaler's rule. The (loss scale, skipped) pair of every step must equal
PyTorch's exactly, and every persistent value but the step counter and the
scaler's own state must be bitwise unchanged across each skipped step (and
every parameter and momentum buffer must change across the others).

The batches overflow both ways. Forward: some batches are crafted so that
the first matmul's fp16 output overflows (each sample is 3e4 times the sign
pattern of one row of fc1's initial weight, fp16-finite, making that row's
output about 4e5). Backward: the initial scale (2^24) and a growth interval
of 3 let the scale grow until the scaled gradients overflow fp16, back off,
and grow again. A second configuration uses factors that are not powers of
two, where the scale's rounding (GradScaler multiplies in double and stores
float) shows.

References (--reference):
  emulated  (default; Debian's torch 1.13, which has no CPU fp16 autocast,
            half matmul or GradScaler kernels) the fp16 policy emulated in
            float32 autograd: every value the policy stores in fp16 (the
            matmul operands and results, the fp16 copies of the weights and
            biases, the bias adds and the ReLUs) is rounded to fp16 in the
            forward and its cotangent is rounded to fp16 in the backward;
            GradScaler's unscale, inf check and scale update are transcribed
            from PyTorch's CPU kernels.
  autocast  (a PyTorch with CPU fp16 autocast and torch.amp.GradScaler("cpu"),
            2.3 or later) the real torch.autocast("cpu", dtype=torch.float16)
            and torch.amp.GradScaler, the logits cast to float32 for the
            loss as our policy does.

Usage (a Python with torch and numpy):
    loss_scale_vs_torch.py --bin build/bin [--reference emulated|autocast]
"""
import argparse
import json
import os
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_runtime_torch import fashion_mnist, run  # noqa: E402
from export_torch_models import MLP, legacy_exporter  # noqa: E402

STEPS, BATCH, LR, MOMENTUM = 30, 16, 0.01, 0.9
# Steps (1-based) whose batch overflows fp16 in the first matmul. With
# these Fashion-MNIST batches every overflow decision is far from fp16's
# limit, beyond the rounding differences of the implementations: in the
# emulation, a step's largest finite |value| before rounding to fp16 is at
# most 0.92 of 65520 where nothing overflows, at least 1.12 where something
# does.
FORWARD_OVERFLOW = (5, 14, 15, 23)
# name: (initial scale, growth interval, growth factor, backoff factor)
CONFIGS = {
    "dyadic": (2.0 ** 24, 3, 2.0, 0.5),
    "non-dyadic": (3e6, 2, 1.7, 0.3),
}
# The scaler's own state, which a skipped step does update.
SCALER_STATE = ("step", "loss_scale", "loss_scale_growth_tracker")


class RoundF16(torch.autograd.Function):
    """A value the fp16 policy stores in fp16: rounded to fp16 in the
    forward, and its cotangent, which the compiled backward also holds in
    fp16, rounded to fp16 in the backward."""

    @staticmethod
    def forward(ctx, t):
        return t.half().float()

    @staticmethod
    def backward(ctx, g):
        return g.half().float()


def emulated_logits(model, x):
    """The MLP's logits with the fp16 policy emulated in float32: matmuls
    take and give fp16 (accumulating in float32), the bias add and ReLU
    follow their fp16 input, and the logits are cast to float32."""
    f16 = RoundF16.apply
    layers = [model.fc1, model.fc2, model.fc3]
    h = f16(x)
    for i, fc in enumerate(layers):
        h = f16(f16(h @ f16(fc.weight).t()) + f16(fc.bias))
        if i + 1 < len(layers):
            h = f16(F.relu(h))
    return h


def update_scale(scale, tracker, found_inf, growth_interval, growth_factor, backoff_factor):
    """Line by line, PyTorch's _amp_update_scale_cpu_kernel
    (aten/src/ATen/native/cpu/AmpGradScalerKernels.cpp; the CUDA kernel in
    aten/src/ATen/native/cuda/AmpKernels.cu is the same): the float scale is
    multiplied by a double factor and stored back as float."""
    with np.errstate(over="ignore"):
        if found_inf:
            scale = np.float32(float(scale) * backoff_factor)
            tracker = 0
        else:
            successful = tracker + 1
            if successful == growth_interval:
                new_scale = np.float32(float(scale) * growth_factor)
                if np.isfinite(new_scale):
                    scale = new_scale
                tracker = 0
            else:
                tracker = successful
    return scale, tracker


def emulated_steps(base, x, y, config):
    """Trains base's copy under the emulated policy and GradScaler's rule;
    returns, per step, (scale used, skipped, loss finite, scale and growth
    tracker after the step)."""
    init, growth_interval, growth_factor, backoff_factor = config
    model = MLP()
    model.load_state_dict(base.state_dict())
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    scale, tracker, rows = np.float32(init), 0, []
    for k in range(STEPS):
        xb = torch.from_numpy(x[k * BATCH:(k + 1) * BATCH])
        yb = torch.from_numpy(y[k * BATCH:(k + 1) * BATCH])
        opt.zero_grad()
        loss = F.cross_entropy(emulated_logits(model, xb), yb)
        (loss * torch.tensor(scale)).backward()
        # GradScaler.unscale_: the reciprocal in double, then float; the
        # inf check of _amp_foreach_non_finite_check_and_unscale_ looks at
        # every scaled gradient.
        inv_scale = torch.tensor(np.float32(1.0 / np.float64(scale)))
        grads = [p.grad for p in model.parameters()]
        found_inf = any(not bool(torch.isfinite(g).all()) for g in grads)
        for g in grads:
            g.mul_(inv_scale)
        if not found_inf:
            opt.step()
        used = scale
        scale, tracker = update_scale(scale, tracker, found_inf, growth_interval,
                                      growth_factor, backoff_factor)
        rows.append((used, found_inf, bool(torch.isfinite(loss)), scale, tracker))
    return rows


def autocast_steps(base, x, y, config):
    """The same with torch.autocast("cpu", dtype=torch.float16) and
    torch.amp.GradScaler("cpu"); a step is skipped when scaler.step leaves
    every parameter as it was."""
    init, growth_interval, growth_factor, backoff_factor = config
    model = MLP()
    model.load_state_dict(base.state_dict())
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    scaler = torch.amp.GradScaler("cpu", init_scale=init, growth_factor=growth_factor,
                                  backoff_factor=backoff_factor,
                                  growth_interval=growth_interval)
    rows = []
    for k in range(STEPS):
        xb = torch.from_numpy(x[k * BATCH:(k + 1) * BATCH])
        yb = torch.from_numpy(y[k * BATCH:(k + 1) * BATCH])
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.float16):
            logits = model(xb)
        loss = F.cross_entropy(logits.float(), yb)
        used = np.float32(scaler.get_scale())
        scaler.scale(loss).backward()
        before = [p.detach().clone() for p in model.parameters()]
        scaler.step(opt)
        skipped = all(torch.equal(b, p) for b, p in zip(before, model.parameters()))
        scaler.update()
        rows.append((used, skipped, bool(torch.isfinite(loss)),
                     np.float32(scaler.get_scale()), int(scaler._get_growth_tracker())))
    return rows


def prepare(tmp):
    """The MLP's initial module (seeded), the STEPS batches (x, y) with the
    FORWARD_OVERFLOW ones crafted, and their files: ONNX and .npz."""
    torch.manual_seed(0)
    base = MLP().train()
    n = STEPS * BATCH
    real = fashion_mnist(n)
    if real is not None:
        x, y = real[0].reshape(n, 784), real[1]
    else:
        print("Fashion-MNIST not found; random inputs")
        rng = np.random.default_rng(1)
        x = rng.random((n, 784)).astype(np.float32)
        y = rng.integers(0, 10, n).astype(np.int64)
    # |fc1.weight| averages 1/56, so a row's 784 products add to about 4e5.
    sign = np.sign(base.fc1.weight.detach().numpy()).astype(np.float32)
    for k in FORWARD_OVERFLOW:
        rows = slice((k - 1) * BATCH, k * BATCH)
        x[rows] = 3e4 * sign[:BATCH]
    onnx_path = os.path.join(tmp, "mlp.onnx")
    torch.onnx.export(base, (torch.from_numpy(x[:BATCH]),), onnx_path,
                      opset_version=17, do_constant_folding=False,
                      input_names=["x"], output_names=["logits"],
                      training=torch.onnx.TrainingMode.TRAINING,
                      **legacy_exporter())
    data = os.path.join(tmp, "mlp.npz")
    np.savez(data, x=x, y=y)
    return base, x, y, onnx_path, data


def trainopt_steps(bin_dir, onnx_path, data, name, config, tmp):
    """Compiles the MLP with --amp=fp16 and config's dynamic loss scaling,
    trains STEPS steps, and returns per step (scale, skipped, loss finite)
    from --metrics, and the persistent values after each of the steps k
    (a run of k steps each, as --save-params writes them)."""
    init, growth_interval, growth_factor, backoff_factor = config
    tag = os.path.join(tmp, name)
    run([os.path.join(bin_dir, "trainopt-compile"), onnx_path, "--target=cpu",
         f"--batch-size={BATCH}", "--loss=cross_entropy", "--optimizer=sgd", f"--lr={LR}",
         f"--momentum={MOMENTUM}", "--amp=fp16", "--loss-scale=dynamic",
         f"--loss-scale-init={init!r}", f"--loss-scale-growth-interval={growth_interval}",
         f"--loss-scale-growth-factor={growth_factor!r}",
         f"--loss-scale-backoff-factor={backoff_factor!r}", "-o", f"{tag}.trainopt"])
    saved = []
    for k in range(1, STEPS + 1):
        metrics = [f"--metrics={tag}.jsonl"] if k == STEPS else []
        run([os.path.join(bin_dir, "trainopt-run"), f"{tag}.trainopt", f"--data={data}",
             "--no-shuffle", f"--steps={k}", "--quiet", "--no-train-eval",
             f"--save-params={tag}-{k}.npz", *metrics])
        saved.append(dict(np.load(f"{tag}-{k}.npz")))
    rows = [json.loads(line) for line in open(f"{tag}.jsonl")]
    steps = [(np.float32(r["loss_scale"]), bool(r["skipped"]),
              r["loss"] is not None and bool(np.isfinite(r["loss"])))
             for r in rows if not r.get("summary")]
    return steps, saved


def check_persistent(base, saved, ref):
    """The problems of the persistent values after each step: the scaler
    state must be the reference's; across a skipped step every other value
    is bitwise unchanged, across an applied one every parameter and momentum
    buffer changes and optimizer_step counts it."""
    problems = []
    initial = {k: v.detach().numpy() for k, v in base.named_parameters()}
    for k, values in enumerate(saved):
        _, skipped, _, scale, tracker = ref[k]
        if values["loss_scale"] != scale or values["loss_scale_growth_tracker"] != tracker:
            problems.append(f"step {k + 1}: saved scale {values['loss_scale']} tracker "
                            f"{values['loss_scale_growth_tracker']}, torch {scale} {tracker}")
        before = saved[k - 1] if k else initial
        for name in sorted(before):
            if name in SCALER_STATE:
                continue
            same = (before[name].dtype == values[name].dtype and
                    before[name].tobytes() == values[name].tobytes())
            if skipped and not same:
                problems.append(f"step {k + 1} (skipped): {name} changed")
            if not skipped and name != "optimizer_step" and same:
                problems.append(f"step {k + 1} (applied): {name} unchanged")
        if k and values["optimizer_step"] != saved[k - 1]["optimizer_step"] + (not skipped):
            problems.append(f"step {k + 1}: optimizer_step {values['optimizer_step']} after "
                            f"{saved[k - 1]['optimizer_step']}")
    return problems


def exact(pair):
    """A (scale, skipped) pair, the scale to the last bit."""
    return f"({float(pair[0])!r}, {int(pair[1])})"


def show(seq):
    """A (scale, skipped) sequence, skipped steps starred."""
    return " ".join(f"{float(s):g}{'*' if sk else ''}" for s, sk in seq)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--reference", choices=["emulated", "autocast"], default="emulated")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    args = ap.parse_args()
    torch.set_num_threads(2)
    reference = emulated_steps if args.reference == "emulated" else autocast_steps
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        base, x, y, onnx_path, data = prepare(tmp)
        for name in args.configs.split(","):
            config = CONFIGS[name]
            ours, saved = trainopt_steps(args.bin, onnx_path, data, name, config, tmp)
            ref = reference(base, x, y, config)
            got, want = [(s, sk) for s, sk, _ in ours], [(r[0], r[1]) for r in ref]
            diff = [k for k in range(STEPS) if k >= len(got) or got[k] != want[k]]
            # Where the loss itself is not finite the forward overflowed.
            forward_ok = [r[2] for r in ours] == [r[2] for r in ref]
            problems = check_persistent(base, saved, ref)
            skips = [r for r in ref if r[1]]
            forward = sum(not r[2] for r in skips)
            growths = sum(b[3] > a[3] for a, b in zip([(0, 0, 0, config[0])] + ref, ref))
            # The batches must exercise what the test is about.
            covered = forward and len(skips) > forward and growths
            ok = not diff and forward_ok and not problems and covered
            failures += not ok
            init, interval, growth, backoff = config
            print(f"mlp {name:10s} {args.reference} init {init:g} interval {interval} "
                  f"x{growth:g} x{backoff:g}: {len(skips)} of {STEPS} steps skipped "
                  f"({forward} forward, {len(skips) - forward} backward overflows), "
                  f"{growths} growths; (scale, skipped) "
                  + (f"differ at {len(diff)} steps, first step {diff[0] + 1}: ours "
                     f"{exact(got[diff[0]]) if diff[0] < len(got) else None}, torch "
                     f"{exact(want[diff[0]])}" if diff else "equal")
                  + ("" if forward_ok else "; the forward overflows at other steps")
                  + f"; persistent values {len(problems)} problems"
                  + ("" if covered else "; the batches do not exercise skips and growths")
                  + f" {'PASS' if ok else 'FAIL'}")
            if diff or os.environ.get("VERBOSE"):
                print(f"  ours:  {show(got)}\n  torch: {show(want)}")
            for p in problems[:10]:
                print(f"  {p}")
    print(f"{failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
