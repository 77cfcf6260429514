#!/usr/bin/env python3
"""The differential tester: the compiled training step against the reference
evaluator (and both against PyTorch float64), per parameter, after one SGD
step (lr=1, cross-entropy) from the same weights and batch, over a corpus
made by scripts/gen_difftest_corpus.py.

For every model, mode and batch it
  - compiles the model (trainopt-compile --target=T) and runs one step
    (trainopt-run --steps 1 --save-params);
  - runs the same @train_step in the evaluator (trainopt-eval);
  - reports, per parameter (and BatchNorm running statistic), the measure
    |update_compiled - update_reference| / |update_reference| (L2 norms;
    parameters whose reference update is below 1e-3 of the largest are
    ignored), its maximum over parameters, and the same for evaluator vs
    PyTorch and compiled vs PyTorch;
  - compiles the step again with --probe-values (every intermediate value
    of the step becomes an output) and compares both sides value by value:
    it counts the branch decisions that differ (comparisons: relu, clip,
    max/min, abs, where and their VJPs; max-pool window argmaxes; floor,
    ceil and fake_quant's rounding), with each flipped element's distance to its kink, and names the
    first value that differs beyond tolerance and whether it sits at a kink
    or is computed from a flipped decision.

Modes:
  f64  the strict oracle: float64 models and data; compiled vs evaluator and
       evaluator vs PyTorch within --tol-f64 (1e-12 for the small models,
       --tol-f64-small), and every probed value within --probe-tol-f64.
  f32  kink-aware: float32 models; a batch passes when compiled vs
       evaluator is within --tol-f32 (1e-4) (PASS), or when the first
       differing value is a branch flip or computed from one (FLIP: the
       deviation is attributed to the named flips), or, without flips and with every probed value
       within tolerance, when it is within --floor-factor of PyTorch
       float32's own distance from float64 on that batch (NOISE: float32
       rounding amplified by the model, e.g. BatchNorm over 8 elements).
       Anything else is a bug and fails.
  bf16, fp16  mixed precision (trainopt-compile --amp=MODE, fp16 with its
       dynamic loss scaling) on the float32 models: the evaluator runs the
       same step, rounding every value to its type (bf16/fp16 where the
       precision policy put it), while the compiled kernels and library
       calls accumulate sums in f32 in another order; a result then rounds
       to a neighbouring bf16 or fp16 value now and then, and the step
       propagates it. A batch passes within --tol-bf16 / --tol-fp16 (PASS),
       or when the first probed value that differs beyond --probe-tol-bf16
       / --probe-tol-fp16 is a branch flip or computed from one (FLIP).
       "compiled vs torch" is against PyTorch float32.
  int8, int4  quantization-aware training (trainopt-compile --quantize=MODE)
       on the float64 models, with the f64 tolerances, kink-aware as f32 is
       (quantized values tie often, so a max-pool window's argmax may flip
       on the last bit of a sum); PyTorch is not compared here
       (scripts/qat_vs_torch.py is the PyTorch parity test).
  prune  pruning (trainopt-compile --prune=magnitude:0.5: half of every
       conv and matmul weight masked at step 0 by trainopt.kth_smallest
       thresholds) on the float64 models, held to the f64 verdict: the
       masks, the masked forward and the masked gradient must agree;
       PyTorch is not compared here (scripts/prune_vs_torch.py is the
       PyTorch parity test).
  lowrank, kmeans, log  the same for --low-rank=rank:4 (factors from the
       SVD), --quantize=kmeans:8 (weights shared among 8 centroids) and
       --quantize=log:4 (power-of-two weights, straight-through); the
       compared parameters are the model's own that remain (a factored
       weight is gone; a shared one is state holding the shared values).
  distill  the same for knowledge distillation (--distill=kl:T=2,alpha=0.5)
       from a teacher that is the model with perturbed weights
       (perturbed_teacher), so the KL term's gradient is not zero: the
       teacher's frozen forward and the mixed loss's gradient must agree.
       ONNX classifiers only.

Usage (the repo's .venv python: numpy, onnx):
    difftest.py --bin build/bin CORPUS [--models a,b] [--modes f64,f32]
        [--batches N] [--target cpu|cuda] [--work DIR] [--json OUT]
Exit status 1 when any batch fails. The dumps of both sides (compiled.npz,
evaluator.npz: every probe) of each batch stay in --work; without it they
go to a temporary directory that is removed unless a batch failed.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

SMALL = {"linear", "tanh_mlp", "mlp", "conv_bn_relu"}


class _NoReference:
    files = ()


NO_REF = _NoReference()
COMPARE_OPS = {"greater", "greater_equal", "less", "less_equal", "equal"}
ROUNDING_OPS = {"floor", "ceil"}


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout


def initializers(model_path):
    """The initial value of every float parameter: the ONNX initializers, or
    for an MLIR model the `.init.npz` written beside it."""
    if model_path.endswith(".mlir"):
        init = np.load(model_path[:-len(".mlir")] + ".init.npz")
        return {n: init[n].astype(np.float64) for n in init.files}
    import onnx
    from onnx import numpy_helper
    model = onnx.load(model_path)
    return {t.name: numpy_helper.to_array(t).astype(np.float64)
            for t in model.graph.initializer
            if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE)}


def perturbed_teacher(model_path, out):
    """A distillation teacher for difftest's distill mode: the model with
    every float initializer scaled by 1 + 0.3 N(0, 1) (seeded), so its
    logits differ from the student's and the KL term has a gradient."""
    import onnx
    from onnx import numpy_helper
    model = onnx.load(model_path)
    rng = np.random.default_rng(0)
    for t in model.graph.initializer:
        if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE):
            w = numpy_helper.to_array(t)
            w = (w * (1 + 0.3 * rng.standard_normal(w.shape))).astype(w.dtype)
            t.CopyFrom(numpy_helper.from_array(w, t.name))
    onnx.save(model, out)
    return out


def per_parameter(have, want):
    """{name: relative L2 error} of update `have` against `want`, over the
    parameters whose update is at least 1e-3 of the largest."""
    norms = {n: float(np.linalg.norm(want[n])) for n in want if n in have}
    if not norms:
        return {}
    big = max(norms.values())
    return {n: float(np.linalg.norm(have[n] - want[n])) / norms[n]
            for n in norms if norms[n] > 0 and norms[n] >= 1e-3 * big}


def worst(errors):
    if not errors:
        return 0.0, "-"
    name = max(errors, key=errors.get)
    return errors[name], name


class Probe:
    PATTERN = re.compile(r"probe\.(\d+):([^:\[]+)(\[[^\]]*\])?:([^:]*):(.*)")

    def __init__(self, key):
        m = self.PATTERN.fullmatch(key)
        if not m:
            raise ValueError(f"not a probe name: {key}")
        self.key, self.index, self.op = key, int(m.group(1)), m.group(2)
        self.window = {}
        if m.group(3):
            for part in m.group(3)[1:-1].split(";"):
                k, v = part.split("=")
                self.window[k] = [int(d) for d in v.split("x")]
        self.refs = m.group(4).split(",") if m.group(4) else []
        self.node = m.group(5) or "(training step)"

    def describe(self):
        return f"{self.op} at {self.node} (probe {self.index})"


def operand(ref, values):
    """The value of a probe operand reference, or None."""
    if ref.startswith("="):
        return np.float64(float(ref[1:]))
    if ref.isdigit():
        return values.get(int(ref))
    return None


def window_argmax(x, w):
    """The first maximum of every max-pool window, in window order (NCHW,
    padding is -inf), and the gap between the best and second best value."""
    k, s, d = w["k"], w["s"], w["d"]
    p = w["p"]
    nsp = len(k)
    pad = [(0, 0), (0, 0)] + [(p[i], p[i + nsp]) for i in range(nsp)]
    xp = np.pad(x, pad, constant_values=-np.inf)
    span = [d[i] * (k[i] - 1) + 1 for i in range(nsp)]
    win = np.lib.stride_tricks.sliding_window_view(xp, span, axis=tuple(range(2, 2 + nsp)))
    for i in range(nsp):
        win = np.take(win, range(0, win.shape[2 + i], s[i]), axis=2 + i)
        win = np.take(win, range(0, span[i], d[i]), axis=2 + nsp + i)
    flat = win.reshape(*win.shape[:2 + nsp], -1)
    arg = np.argmax(flat, axis=-1)
    top2 = np.sort(flat, axis=-1)[..., -2:] if flat.shape[-1] > 1 else np.concatenate(
        [flat, flat], axis=-1)
    return arg, top2[..., 1] - top2[..., 0]


# Ops whose result is (a rearrangement or selection of) their operands, and
# products: their rounding error scales with their operands' magnitudes,
# which they inherit; a value that cancels (a BatchNorm mean of a
# zero-mean input, a gradient that is analytically 0) keeps the scale of
# what it was computed from, so its rounding noise is not a "difference".
INHERIT = {"add", "sub", "neg", "broadcast_to", "reshape", "transpose", "slice", "concat",
           "pad", "where", "max", "min", "relu", "clip", "cast", "reduce_max", "reduce_min",
           "max_pool", "max_pool_grad", "avg_pool", "avg_pool_grad", "gather", "scatter_add",
           "split"}
PRODUCTS = {"mul", "matmul", "conv", "conv_grad_input", "conv_grad_filter"}


def value_scale(p, values, scales, r):
    """The magnitude the rounding error of probe `p` (value `r`) scales
    with: its own largest element, or more where its operands cancel."""
    finite = np.abs(r[np.isfinite(r)])
    own = float(finite.max()) if finite.size else 0.0
    ins = []
    for x in p.refs:
        if x.isdigit() and int(x) in scales:
            ins.append(scales[int(x)])
        elif x.startswith("="):
            ins.append(abs(float(x[1:])))
    if p.op in ("reduce_sum", "reduce_mean") and p.refs and p.refs[0].isdigit() \
            and int(p.refs[0]) in values:
        x = np.abs(values[int(p.refs[0])])
        mass = float(np.nansum(x)) / max(r.size, 1)
        mass = mass if p.op == "reduce_sum" else mass * r.size / max(x.size, 1)
        return max([own, mass] + ins[:1])
    if p.op in INHERIT and ins:
        return max([own] + ins)
    if p.op in PRODUCTS and len(ins) > 1:
        return max(own, ins[0] * ins[1])
    return own


def analyse_probes(comp, ref, tol):
    """Branch flips and the first value that differs beyond `tol`."""
    probes = sorted((Probe(k) for k in ref.files if k.startswith("probe.")),
                    key=lambda p: p.index)
    cvals = {p.index: comp[p.key].astype(np.float64) for p in probes if p.key in comp.files}
    rvals = {p.index: ref[p.key].astype(np.float64) for p in probes}
    flips, first, scales, margin = [], None, {}, float("inf")
    # Probes computed from a flipped decision, directly or through others.
    downstream = set()
    for p in probes:
        if p.index not in cvals:
            continue
        c, r = cvals[p.index], rvals[p.index]
        flipped, distance = 0, None
        if p.op in COMPARE_OPS:
            mask = c != r
            flipped = int(mask.sum())
            a, b = (operand(x, rvals) for x in p.refs[:2])
            if a is not None and b is not None:
                a, b = np.broadcast_to(a, r.shape), np.broadcast_to(b, r.shape)
                scale = max(float(np.max(np.abs(a))), float(np.max(np.abs(b))), 1e-300)
                gap = np.abs(a - b) / scale
                if flipped:
                    distance = float(np.max(gap[mask]))
                # Exact ties (relu of an exact 0) are decided alike on both
                # sides; the margin is the nearest inexact approach.
                inexact = gap[gap > 0]
                if inexact.size:
                    margin = min(margin, float(inexact.min()))
        elif p.op in ROUNDING_OPS:
            mask = c != r
            flipped = int(mask.sum())
            x = operand(p.refs[0], rvals)
            if flipped and x is not None:
                distance = float(np.max(np.abs(x - np.round(x))[mask]))
        elif p.op == "fake_quant":
            # A rounding decision: an element flips when the two sides
            # land a whole step apart (x * (1/s) near a half).
            x, s = (operand(v, rvals) for v in p.refs[:2])
            if x is not None and s is not None:
                s = np.broadcast_to(s, r.shape)
                mask = np.abs(c - r) > 0.5 * s
                flipped = int(mask.sum())
                if flipped:
                    v = x / s
                    distance = float(np.max(np.abs(np.abs(v - np.floor(v)) - 0.5)[mask]))
        elif p.op == "max_pool_grad" and p.refs and p.refs[0].isdigit():
            xi = int(p.refs[0])
            if xi in cvals and xi in rvals:
                ac, _ = window_argmax(cvals[xi], p.window)
                ar, gap = window_argmax(rvals[xi], p.window)
                mask = ac != ar
                flipped = int(mask.sum())
                if flipped:
                    scale = max(float(np.max(np.abs(rvals[xi]))), 1e-300)
                    distance = float(np.max(gap[mask])) / scale
        if flipped:
            flips.append({"probe": p.describe(), "elements": flipped,
                          "max_distance": distance})
        if flipped or any(x.isdigit() and int(x) in downstream for x in p.refs):
            downstream.add(p.index)
        if r.size == 0:
            continue
        # Equal values (infinities of a mask included) and NaN on both sides
        # do not differ.
        with np.errstate(invalid="ignore"):
            diff = np.where((c == r) | (np.isnan(c) & np.isnan(r)), 0.0, np.abs(c - r))
        scales[p.index] = value_scale(p, rvals, scales, r)
        scale = max(scales[p.index], 1e-300)
        err = float(np.max(diff)) / scale if not np.isnan(diff).any() else float("inf")
        if first is None and err > tol:
            first = {"probe": p.describe(), "rel_err": err, "at_kink": bool(flipped),
                     "after_flip": p.index in downstream}
    return flips, first, margin


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("corpus")
    ap.add_argument("--models", help="comma-separated (default: the whole manifest)")
    ap.add_argument("--modes", default="f64,f32")
    ap.add_argument("--batches", type=int, help="batches per model (default: all)")
    ap.add_argument("--target", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--tol-f64", type=float, default=1e-9)
    ap.add_argument("--tol-f64-small", type=float, default=1e-12)
    ap.add_argument("--tol-f32", type=float, default=1e-4)
    ap.add_argument("--probe-tol-f32", type=float, default=1e-3,
                    help="a probed value differs when its max abs error exceeds this "
                         "fraction of its max abs value")
    ap.add_argument("--probe-tol-f64", type=float, default=1e-9)
    ap.add_argument("--tol-bf16", type=float, default=3e-2)
    ap.add_argument("--tol-fp16", type=float, default=5e-3)
    ap.add_argument("--probe-tol-bf16", type=float, default=2 ** -7,
                    help="two bf16 ulps (8 significant bits) of the value's largest element")
    ap.add_argument("--probe-tol-fp16", type=float, default=2 ** -10,
                    help="two fp16 ulps (11 significant bits) of the value's largest element")
    ap.add_argument("--floor-factor", type=float, default=2.0,
                    help="f32: a flip-free deviation above --tol-f32 passes (NOISE) when it is "
                         "within this factor of PyTorch float32's own distance from float64")
    ap.add_argument("--work", help="keep every file here (default: a temporary directory)")
    ap.add_argument("--json", help="write every row here")
    ap.add_argument("--coverage", help="write {op: [models]} here: the ops whose values "
                    "were compared on a batch that did not fail")
    args = ap.parse_args()
    tool = lambda name: os.path.join(args.bin, name)
    with open(os.path.join(args.corpus, "manifest.json")) as f:
        manifest = json.load(f)
    models = manifest["models"]
    if args.models:
        wanted = args.models.split(",")
        unknown = set(wanted) - {m["name"] for m in models}
        if unknown:
            sys.exit(f"difftest: not in {args.corpus}/manifest.json: {', '.join(sorted(unknown))}")
        models = [m for m in models if m["name"] in wanted]
    work = args.work or tempfile.mkdtemp(prefix="difftest.")
    rows, failures = [], 0
    for model in models:
        for mode in args.modes.split(","):
            name = model["name"]
            # An ONNX model exported from PyTorch, or an MLIR module (the
            # single-op corpus of scripts/gen_op_corpus.py).
            amp = mode in ("bf16", "fp16")
            qat = mode in ("int8", "int4")
            # Compression rewrites held to the f64 verdict: pruning (masks
            # chosen at step 0), low-rank factors, shared weights.
            extra = {"prune": ["--prune=magnitude:0.5"], "lowrank": ["--low-rank=rank:4"],
                     "kmeans": ["--quantize=kmeans:8"], "log": ["--quantize=log:4"],
                     "distill": ["--distill=kl:T=2,alpha=0.5"]}.get(mode)
            prune = extra is not None
            # Float64 data and tolerances; quantization-aware training is
            # kink-aware (its rounding makes ties, as in a max-pool window).
            f64_like = mode == "f64" or qat or prune
            # Mixed precision starts from the float32 model.
            model_path = os.path.join(args.corpus, f"{name}.{'f32' if amp else 'f64' if qat or prune else mode}."
                                      f"{model.get('format', 'onnx')}")
            d = os.path.join(work, f"{name}.{mode}")
            os.makedirs(d, exist_ok=True)
            if mode == "distill":
                if model.get("format", "onnx") != "onnx" or model.get("loss") == "mse":
                    continue  # a teacher is an ONNX classifier here
                extra = extra + [f"--teacher={perturbed_teacher(model_path, os.path.join(d, 'teacher.onnx'))}"]
            flags = [model_path, *([f"--batch-size={model['batch']}"]
                                   if model.get("format", "onnx") == "onnx" else []),
                     *([f"--loss={model.get('loss', 'cross_entropy')}"]
                       if model.get("loss", "cross_entropy") else []),
                     "--optimizer=sgd", "--lr=1", *model.get("flags", []),
                     *([f"--amp={mode}"] if amp else []),
                     *([f"--quantize={mode}"] if qat else []),
                     *(extra or []),
                     f"--target={args.target}"]
            art, probed, mlir = (os.path.join(d, f) for f in
                                 ("step.trainopt", "probed.trainopt", "probed.mlir"))
            try:
                run([tool("trainopt-compile"), *flags, "-o", art])
                run([tool("trainopt-compile"), *flags, "--probe-values", "-o", probed])
                run([tool("trainopt-compile"), *flags[:-1], "--probe-values",
                     "--emit=train-mlir", "-o", mlir])
            except RuntimeError as e:
                print(f"FAIL {name} {mode}: {e}")
                failures += 1
                continue
            init = initializers(model_path)
            small = name in SMALL or model.get("small", False)
            tol = (args.tol_f64_small if small else args.tol_f64) \
                if f64_like else getattr(args, f"tol_{mode}")
            probe_tol = getattr(args, f"probe_tol_{'f64' if qat or prune else mode}")
            for stem in model["batches"][:args.batches]:
                batch = np.load(os.path.join(args.corpus, stem + ".npz"))
                ref_path = os.path.join(args.corpus, stem + ".torch.npz")
                # Models not from PyTorch have no PyTorch reference.
                torch_ref = np.load(ref_path) if os.path.exists(ref_path) else NO_REF
                x = batch["x64"] if f64_like else batch["x32"]
                b = os.path.join(d, stem.split(".")[-1])
                os.makedirs(b, exist_ok=True)
                data, inputs = os.path.join(b, "data.npz"), os.path.join(b, "inputs.npz")
                np.savez(data, x=x, y=batch["y"])
                np.savez(inputs, x=x, labels=batch["y"])
                files = {k: os.path.join(b, k + ".npz") for k in
                         ("compiled", "compiled_params", "probed_params", "evaluator")}
                common = [f"--data={data}", "--steps=1", "--no-shuffle", "--quiet",
                          "--no-train-eval", "--scale=1"]
                try:
                    run([tool("trainopt-run"), art, *common,
                         f"--save-params={files['compiled_params']}"])
                    run([tool("trainopt-run"), probed, *common,
                         f"--save-params={files['probed_params']}",
                         f"--dump-step={files['compiled']}"])
                    run([tool("trainopt-eval"), mlir, "--function=train_step",
                         "--inputs", inputs, "-o", files["evaluator"]])
                except RuntimeError as e:
                    print(f"FAIL {name} {mode} {stem}: {e}")
                    failures += 1
                    continue
                cp = np.load(files["compiled_params"])
                pp = np.load(files["probed_params"])
                ev = np.load(files["evaluator"])
                upd = lambda src, key: src[key].astype(np.float64)
                # A log-quantized weight's trained value is its latent
                # (W.latent); W holds the levels the step read.
                trained = {n: n + ".latent" if n + ".latent" in cp.files else n for n in init}
                comp = {n: upd(cp, trained[n]) - init[n] for n in init
                        if trained[n] in cp.files}
                evalu = {n: upd(ev, "final." + trained[n]) - init[n] for n in init
                         if "final." + trained[n] in ev.files}
                torch_mode = "f32" if amp else mode
                torch_upd = {n: torch_ref[f"{torch_mode}.{n}"] for n in init
                             if f"{torch_mode}.{n}" in torch_ref.files}
                vs_eval = per_parameter(comp, evalu)
                e_ce, p_ce = worst(vs_eval)
                e_et, p_et = worst(per_parameter(evalu, torch_upd)) \
                    if not (amp or qat or prune) else (0.0, "-")
                e_ct, _ = worst(per_parameter(comp, torch_upd))
                # PyTorch float32 against float64 on the same data: how far
                # float32 rounding alone moves this update (the noise floor).
                floor, _ = worst(per_parameter(
                    {n: torch_ref[f"t32.{n}"] for n in init if f"t32.{n}" in torch_ref.files},
                    torch_upd)) if mode == "f32" else (0.0, "-")
                probe_drift = max((float(np.max(np.abs(pp[n].astype(np.float64) - cp[n])))
                                   for n in cp.files if n in pp.files), default=0.0)
                dump = np.load(files["compiled"])
                flips, first, margin = analyse_probes(dump, ev, probe_tol)
                # The ops whose every value was compared (probe.K:OP...).
                ops = sorted({k.split(":")[1].split("[")[0] for k in dump.files
                              if k.startswith("probe.")})
                params = len(vs_eval)
                if mode == "f64" or prune:
                    ok = (e_ce <= tol and e_et <= tol and first is None
                          and len(comp) == len(evalu) > 0)
                    verdict = "PASS" if ok else "FAIL"
                else:
                    # Attributed when the first value that differs is a
                    # flipped decision or computed from one: nothing before
                    # the flips differs beyond tolerance.
                    explained = bool(flips) and first is not None and first["after_flip"]
                    # Without a flip, a deviation above tol is accepted only
                    # at the float32 noise floor and when no probed value
                    # differs beyond its tolerance.
                    noise = (not amp and not qat and not flips and first is None
                             and e_ce <= args.floor_factor * floor)
                    ok = len(comp) == len(evalu) > 0 and (e_ce <= tol or explained or noise)
                    verdict = ("PASS" if e_ce <= tol else "FLIP" if explained else "NOISE") \
                        if ok else "FAIL"
                failures += not ok
                row = {"model": name, "mode": mode, "batch": stem, "params": params,
                       "compiled_vs_evaluator": e_ce, "worst_param": p_ce,
                       "above_1e-3": sum(v > 1e-3 for v in vs_eval.values()),
                       "evaluator_vs_torch": e_et, "compiled_vs_torch": e_ct,
                       "probed_vs_plain": probe_drift, "torch_f32_vs_f64": floor,
                       "kink_margin": margin, "flips": flips,
                       "first_difference": first, "verdict": verdict, "ops": ops,
                       "covers": model.get("covers", [])}
                rows.append(row)
                flip_text = (f"kink margin {margin:.1e}, " if margin < float("inf") else "") + (
                             "no flips" if not flips else
                             f"{sum(f['elements'] for f in flips)} flipped decisions in "
                             f"{len(flips)} ops")
                print(f"{verdict} {name} {mode} {stem.split('.')[-1]}: compiled vs evaluator "
                      f"{e_ce:.2e} ({p_ce}; {row['above_1e-3']}/{params} params above 1e-3), "
                      + (f"evaluator vs torch {e_et:.2e}, compiled vs torch {e_ct:.2e}"
                         if torch_upd else "no PyTorch reference")
                      + (f", torch f32 vs f64 {floor:.2e}; " if mode == "f32" and torch_upd else "; ") +
                      f"{flip_text}", flush=True)
                if flips or first or not ok:
                    for fl in flips[:8]:
                        dist = ("?" if fl["max_distance"] is None
                                else f"{fl['max_distance']:.1e}")
                        print(f"    flip: {fl['probe']}: {fl['elements']} elements, "
                              f"distance to the kink <= {dist} (relative)")
                    if len(flips) > 8:
                        print(f"    ... {len(flips) - 8} more flipped ops")
                    if first:
                        print(f"    first difference: {first['probe']}, rel err "
                              f"{first['rel_err']:.2e}, "
                              + ("a branch flip" if first["at_kink"] else
                                 "downstream of a branch flip" if first["after_flip"] else
                                 "NOT at a kink and not downstream of one"))
                    if args.work:
                        print(f"    dumps: {files['compiled']} {files['evaluator']}")
                # A deep model's dumps take hundreds of MB per batch: keep
                # them only for failures, or everything with --work.
                if verdict != "FAIL" and not args.work:
                    shutil.rmtree(b, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    if args.coverage:
        cover = {}
        for r in rows:
            if r["verdict"] != "FAIL":
                for op in r["ops"] + r.get("covers", []):
                    cover.setdefault(op, set()).add(r["model"])
        with open(args.coverage, "w") as f:
            json.dump({op: sorted(m) for op, m in sorted(cover.items())}, f, indent=1)
    print(f"{len(rows)} batches, {failures} failures")
    if not args.work:
        if failures:
            print(f"the dumps of both sides are in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
