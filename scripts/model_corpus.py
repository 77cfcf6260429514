#!/usr/bin/env python3
"""The model corpus: the architectures people bring, built in PyTorch
(torchvision with weights=None, nothing downloaded), exported for training
(scripts/export_for_training.py), compiled for the CPU and trained for a few
steps from the same weights and batches as PyTorch, with dropout and
stochastic depth off.

Per model it reports: the ONNX op types of the export, whether it compiled
(and the compile time), and the loss of every step against PyTorch float64
(and, as the yardstick, PyTorch float32's own distance from float64).
Each model is exported and trained twice, in float64 and in float32.
Training from random initialization on random labels at batch 8 is chaotic
in the deep models: PyTorch float64 with its weights scaled by 1 + 1e-13
ends up to 4e-2 away from itself after 10 steps (ResNet-50, RegNet). Each
step is therefore held to the larger of 1e-4 (relative, against PyTorch
float64) and PyTorch's own spread by that step:
  - step 0's loss (a pure forward) within 1e-5, in both precisions;
  - float64: within max(1e-4, 100 x the distance of PyTorch float64 from
    its run with weights perturbed by 1e-13) -- plain 1e-4 while that
    spread is below 1e-6, which is every step of most models and the first
    steps of all (a wrong gradient shows at step 1);
  - float32: within max(1e-4, 10 x the larger of PyTorch float32's distance
    from float64 and PyTorch float64's spread under a 1e-7 perturbation).

--dropout-check MODEL trains MODEL with its dropout (and stochastic depth)
on: the loss must decrease on a small repeated dataset, and a run stopped
and resumed from a checkpoint must end bit-identical to a straight one.

Runs with a Python that has torch and torchvision (Debian's python3-torch
1.13 is enough; torch 2.x works too):
    /usr/bin/python3 scripts/model_corpus.py --bin build/bin [--models a,b | --ci]
        [--steps 10] [--markdown docs/model-coverage.md] [--dropout-check NAME]
The default list is every model (a few minutes each on 2 cores for the
largest); --ci is the small subset the lit test runs.
"""
import argparse
import collections
import copy
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_for_training import export_for_training  # noqa: E402


# ---------------------------------------------------------------------------
# Models that torchvision does not have.

class TransformerLM(nn.Module):
    """nn.TransformerEncoder as a causal language model."""

    def __init__(self, vocab=64, seq=16, dim=64, heads=4, layers=2):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, dim), nn.Parameter(torch.randn(seq, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers)
        self.head = nn.Linear(dim, vocab)
        self.register_buffer("mask", torch.triu(torch.full((seq, seq), float("-inf")), 1))

    def forward(self, ids):
        return self.head(self.encoder(self.tok(ids) + self.pos, mask=self.mask))


class AttentionClassifier(nn.Module):
    """nn.MultiheadAttention self-attention over a sequence of feature
    vectors, mean-pooled, then a linear classifier."""

    def __init__(self, dim=32, heads=4, classes=10):
        super().__init__()
        self.inp = nn.Linear(16, dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=0.1, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        h = self.inp(x)
        a, _ = self.attn(h, h, h, need_weights=False)
        return self.head(self.norm(h + a).mean(dim=1))


class RecurrentLM(nn.Module):
    """An embedding, a recurrent layer (LSTM, GRU), a linear head."""

    def __init__(self, cell, vocab=64, dim=32, hidden=48, layers=1, bidirectional=False):
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        self.rnn = cell(dim, hidden, num_layers=layers, batch_first=True,
                        bidirectional=bidirectional, dropout=0.1 if layers > 1 else 0.0)
        self.head = nn.Linear(hidden * (2 if bidirectional else 1), vocab)

    def forward(self, ids):
        y, _ = self.rnn(self.tok(ids))
        return self.head(y)


class UNet(nn.Module):
    """A two-level U-Net for segmentation: GroupNorm blocks, one ConvTranspose
    up-sampling and one bilinear (F.interpolate) up-sampling, skip
    concatenations, per-pixel class scores."""

    def __init__(self, cin=3, classes=4, w=8):
        super().__init__()

        def block(a, b):
            return nn.Sequential(nn.Conv2d(a, b, 3, padding=1), nn.GroupNorm(4, b), nn.ReLU(),
                                 nn.Conv2d(b, b, 3, padding=1), nn.GroupNorm(4, b), nn.ReLU())
        self.e1, self.e2, self.mid = block(cin, w), block(w, 2 * w), block(2 * w, 4 * w)
        self.up2 = nn.ConvTranspose2d(4 * w, 2 * w, 2, stride=2)
        self.d2 = block(4 * w, 2 * w)
        self.d1 = block(3 * w, w)
        self.out = nn.Conv2d(w, classes, 1)

    def forward(self, x):
        e1 = self.e1(x)
        e2 = self.e2(F.max_pool2d(e1, 2))
        m = self.mid(F.max_pool2d(e2, 2))
        d2 = self.d2(torch.cat([self.up2(m), e2], 1))
        up = F.interpolate(d2, scale_factor=2, mode="bilinear", align_corners=False)
        return self.out(self.d1(torch.cat([up, e1], 1)))


class Conv1dNet(nn.Module):
    """A 1-D convolutional classifier for signals: Conv1d, BatchNorm1d,
    ReLU, MaxPool1d, global average pooling."""

    def __init__(self, cin=4, classes=10):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(cin, 16, 5, padding=2), nn.BatchNorm1d(16), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(16, 32, 5, padding=2, dilation=1), nn.BatchNorm1d(32), nn.ReLU(),
            nn.MaxPool1d(2), nn.Conv1d(32, 32, 3, padding=2, dilation=2), nn.ReLU(),
            nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(32, classes))

    def forward(self, x):
        return self.body(x)


def tv(name, **kwargs):
    def make():
        import torchvision.models as models
        return getattr(models, name)(weights=None, **kwargs)
    return make


def vit_reduced():
    """ViT-B/16's widths (768 wide, 12 heads, MLP 3072) at depth 2 on 64x64."""
    from torchvision.models.vision_transformer import VisionTransformer
    return VisionTransformer(image_size=64, patch_size=16, num_layers=2, num_heads=12,
                             hidden_dim=768, mlp_dim=3072, num_classes=10)


def swin_reduced():
    """Swin-T's widths (96, heads 3-6-12-24, window 7) at depth 1 per stage."""
    from torchvision.models.swin_transformer import SwinTransformer
    return SwinTransformer(patch_size=[4, 4], embed_dim=96, depths=[1, 1, 1, 1],
                           num_heads=[3, 6, 12, 24], window_size=[7, 7],
                           stochastic_depth_prob=0.1, num_classes=10)


# name: (factory, input kind, batch, sample shape or (vocab, length), classes,
#        in the CI subset).
IMAGE = (3, 64, 64)
Spec = collections.namedtuple("Spec", "factory kind batch shape classes ci")
MODELS = {
    "resnet18": Spec(tv("resnet18", num_classes=10), "image", 8, IMAGE, 10, False),
    "resnet50": Spec(tv("resnet50", num_classes=10), "image", 8, IMAGE, 10, False),
    "mobilenet_v2": Spec(tv("mobilenet_v2", num_classes=10), "image", 8, IMAGE, 10, False),
    "mobilenet_v3_small": Spec(tv("mobilenet_v3_small", num_classes=10), "image", 8, IMAGE, 10,
                               True),
    "efficientnet_b0": Spec(tv("efficientnet_b0", num_classes=10), "image", 8, IMAGE, 10, False),
    "shufflenet_v2_x0_5": Spec(tv("shufflenet_v2_x0_5", num_classes=10), "image", 8, IMAGE, 10,
                               False),
    "mnasnet0_5": Spec(tv("mnasnet0_5", num_classes=10), "image", 8, IMAGE, 10, False),
    "regnet_x_400mf": Spec(tv("regnet_x_400mf", num_classes=10), "image", 8, IMAGE, 10, False),
    "densenet121": Spec(tv("densenet121", num_classes=10), "image", 8, IMAGE, 10, False),
    "googlenet": Spec(tv("googlenet", num_classes=10, aux_logits=False, init_weights=True),
                      "image", 8, IMAGE, 10, False),
    "convnext_tiny": Spec(tv("convnext_tiny", num_classes=10), "image", 8, IMAGE, 10, False),
    "vit_b_16_depth2": Spec(vit_reduced, "image", 8, IMAGE, 10, False),
    "swin_t_depth1": Spec(swin_reduced, "image", 8, IMAGE, 10, False),
    "squeezenet1_1": Spec(tv("squeezenet1_1", num_classes=10), "image", 8, IMAGE, 10, False),
    # VGG's adaptive pooling to 7x7 exports only from a multiple of 7.
    "vgg11": Spec(tv("vgg11", num_classes=10), "image", 2, (3, 224, 224), 10, False),
    "transformer_lm": Spec(TransformerLM, "tokens", 8, (64, 16), 64, True),
    "mha_classifier": Spec(AttentionClassifier, "sequence", 8, (12, 16), 10, True),
    "lstm_lm": Spec(lambda: RecurrentLM(nn.LSTM), "tokens", 8, (64, 12), 64, True),
    "gru_lm": Spec(lambda: RecurrentLM(nn.GRU, layers=2), "tokens", 8, (64, 12), 64, True),
    "bilstm_lm": Spec(lambda: RecurrentLM(nn.LSTM, bidirectional=True), "tokens", 8, (64, 12),
                      64, True),
    "unet": Spec(UNet, "segmentation", 4, (3, 32, 32), 4, True),
    "conv1d": Spec(Conv1dNet, "image", 8, (4, 64), 10, True),
}

LR, MOMENTUM = 1e-3, 0.9
# Relative weight perturbations that measure how far PyTorch float64 itself
# moves over the run from differences at float64 and at float32 rounding
# level.
PERTURB64, PERTURB32 = 1e-13, 1e-7


def without_dropout(model):
    """Dropout and stochastic depth off (p = 0), everything else as built."""
    for m in model.modules():
        if isinstance(m, nn.Dropout) or type(m).__name__ == "StochasticDepth":
            m.p = 0.0
        if isinstance(m, (nn.MultiheadAttention, nn.LSTM, nn.GRU, nn.RNN)):
            m.dropout = 0.0
        if isinstance(m, nn.TransformerEncoderLayer):
            m.dropout.p = m.dropout1.p = m.dropout2.p = 0.0
    return model


def batches(spec, steps, rng):
    """x (all samples), y and the compile flags for the model's loss."""
    n = spec.batch * steps
    if spec.kind == "tokens":
        vocab, length = spec.shape
        x = rng.integers(0, vocab, (n, length)).astype(np.int64)
        return x, rng.integers(0, vocab, (n, length)).astype(np.int64), ["--class-axis=-1"]
    x = rng.standard_normal((n, *spec.shape)).astype(np.float32)
    if spec.kind == "segmentation":
        return x, rng.integers(0, spec.classes, (n, *spec.shape[1:])).astype(np.int64), []
    return x, rng.integers(0, spec.classes, n).astype(np.int64), []


def torch_losses(model, x, y, spec, steps, dtype, perturb=0.0):
    """PyTorch's losses of `steps` SGD steps from `model`'s weights (each
    scaled by 1 + `perturb`)."""
    m = copy.deepcopy(model).to(dtype).train()
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(1 + perturb)
    opt = torch.optim.SGD(m.parameters(), lr=LR, momentum=MOMENTUM)
    losses = []
    for k in range(steps):
        xb = torch.from_numpy(x[k * spec.batch:(k + 1) * spec.batch])
        yb = torch.from_numpy(y[k * spec.batch:(k + 1) * spec.batch])
        if xb.is_floating_point():
            xb = xb.to(dtype)
        out = m(xb)
        if spec.kind == "tokens":
            out, yb = out.reshape(-1, out.shape[-1]), yb.reshape(-1)
        loss = F.cross_entropy(out, yb)
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return losses


def run(cmd, what="", timeout=1800):
    """Runs a tool: (stdout, seconds); a failure raises with its error
    lines (an import error lists its problems on the following lines)."""
    start = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    elapsed = time.perf_counter() - start
    if r.returncode != 0:
        lines = [l.strip() for l in (r.stderr or r.stdout).strip().splitlines()
                 if "warning" not in l]
        raise RuntimeError(f"{what}: " + " ".join(lines[:4]))
    return r.stdout, elapsed


def onnx_ops(path):
    """The op types and node count of an ONNX file, read with a minimal
    protobuf walk (the onnx package is not needed): ModelProto.graph (7),
    GraphProto.node (1), NodeProto.op_type (4)."""
    def fields(buf):
        i = 0
        while i < len(buf):
            key, i = varint(buf, i)
            number, wire = key >> 3, key & 7
            if wire == 0:
                _, i = varint(buf, i)
            elif wire == 1:
                i += 8
            elif wire == 5:
                i += 4
            elif wire == 2:
                size, i = varint(buf, i)
                yield number, buf[i:i + size]
                i += size
            else:
                return

    def varint(buf, i):
        value = shift = 0
        while True:
            b = buf[i]
            i += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return value, i

    with open(path, "rb") as f:
        model = f.read()
    types, nodes = set(), 0
    for number, graph in fields(model):
        if number != 7:
            continue
        for gnum, node in fields(graph):
            if gnum != 1:
                continue
            nodes += 1
            types.update(v.decode() for n, v in fields(node) if n == 4)
    return sorted(types), nodes


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-12)


def compile_and_train(name, spec, model, dtype, x, y, loss_flags, args, tmp):
    """Exports `model` in `dtype`, compiles it, trains args.steps steps:
    (losses, compile seconds, op types, node count)."""
    tag = "f64" if dtype == torch.float64 else "f32"
    onnx_path = os.path.join(tmp, f"{name}.{tag}.onnx")
    example = torch.from_numpy(x[:spec.batch])
    if example.is_floating_point():
        example = example.to(dtype)
    export_for_training(copy.deepcopy(model).to(dtype), (example,), onnx_path)
    ops, nodes = onnx_ops(onnx_path)
    art = os.path.join(tmp, f"{name}.{tag}.trainopt")
    flags = [f"--batch-size={spec.batch}", "--loss=cross_entropy", *loss_flags,
             "--optimizer=sgd", f"--lr={LR}", f"--momentum={MOMENTUM}"]
    _, compile_s = run([os.path.join(args.bin, "trainopt-compile"), onnx_path, *flags,
                        "-o", art], what="compile")
    data = os.path.join(tmp, f"{name}.npz")
    np.savez(data, x=x, y=y)
    metrics = os.path.join(tmp, f"{name}.{tag}.jsonl")
    run([os.path.join(args.bin, "trainopt-run"), art, f"--data={data}", "--no-shuffle",
         f"--steps={args.steps}", f"--metrics={metrics}", "--quiet", "--no-train-eval",
         "--scale=1", f"--threads={args.threads}"], what="train")
    losses = [json.loads(line)["loss"] for line in open(metrics) if '"summary"' not in line]
    return losses, compile_s, ops, nodes


def check_model(name, args, tmp):
    """Trains the model in float64 and float32 with trainopt and PyTorch.

    Training from random initialization on random labels at batch 8 is
    chaotic in the deep models: a 1e-13 relative change of the weights moves
    PyTorch float64's own loss by up to 1e-2 by step 10 (ResNet-50, RegNet).
    So each step is held to the larger of 1e-4 and what PyTorch itself does
    by then (running maxima over the steps so far): in float64, 100 x the
    distance of PyTorch float64 from its run with weights perturbed by
    PERTURB64 (while that is small, as in every step of most models and the
    first steps of all, this is the plain 1e-4); in float32, 10 x the larger
    of PyTorch float32's distance from float64 and PyTorch float64's
    distance from its run perturbed by PERTURB32 (float32 rounding level).
    A wrong gradient shows at step 1, where all of these are tiny."""
    spec = MODELS[name]
    torch.manual_seed(0)
    model = without_dropout(spec.factory()).train()
    rng = np.random.default_rng(0)
    x, y, loss_flags = batches(spec, args.steps, rng)
    row = dict(model=name, ops=[], nodes=0)
    try:
        o64, _, _, _ = compile_and_train(name, spec, model, torch.float64, x, y, loss_flags,
                                         args, tmp)
        o32, row["compile_s"], row["ops"], row["nodes"] = compile_and_train(
            name, spec, model, torch.float32, x, y, loss_flags, args, tmp)
    except RuntimeError as e:
        row["error"] = str(e)
        return row
    t64 = torch_losses(model, x, y, spec, args.steps, torch.float64)
    p64 = torch_losses(model, x, y, spec, args.steps, torch.float64, PERTURB64)
    p32 = torch_losses(model, x, y, spec, args.steps, torch.float64, PERTURB32)
    t32 = torch_losses(model, x, y, spec, args.steps, torch.float32)
    running_max = lambda v: [max(v[:k + 1]) for k in range(len(v))]
    spread64 = running_max([rel(a, b) for a, b in zip(p64, t64)])
    spread32 = running_max([max(rel(a, b), rel(c, b)) for a, b, c in zip(p32, t64, t32)])
    e64 = [rel(o, t) for o, t in zip(o64, t64)]
    e32 = [rel(o, t) for o, t in zip(o32, t64)]
    row["first32"], row["all64"], row["all32"] = e32[0], max(e64), max(e32)
    row["chaos"], row["t32"] = spread64[-1], spread32[-1]
    # Steps held to plain 1e-4 in float64 (PyTorch's own spread below 1e-6).
    row["clear"] = sum(100 * c <= 1e-4 for c in spread64)
    ok64 = all(e <= max(1e-4, 100 * c) for e, c in zip(e64, spread64))
    ok32 = all(e <= max(1e-4, 10 * c) for e, c in zip(e32, spread32))
    row["ok"] = e64[0] <= 1e-5 and e32[0] <= 1e-5 and ok64 and ok32
    return row


def dropout_check(name, args, tmp):
    """Dropout on: the loss decreases on a small repeated dataset, and
    resume is bit-identical."""
    spec = MODELS[name]
    torch.manual_seed(0)
    model = spec.factory().train()
    rng = np.random.default_rng(1)
    x, y, loss_flags = batches(spec, 4, rng)  # 4 batches, repeated
    onnx_path = os.path.join(tmp, f"{name}.dropout.onnx")
    export_for_training(model, (torch.from_numpy(x[:spec.batch]),), onnx_path)
    art = os.path.join(tmp, f"{name}.dropout.trainopt")
    tool = lambda t: os.path.join(args.bin, t)
    run([tool("trainopt-compile"), onnx_path, f"--batch-size={spec.batch}",
         "--loss=cross_entropy", *loss_flags, "--optimizer=adam", "--lr=1e-3", "-o", art])
    data = os.path.join(tmp, f"{name}.dropout.npz")
    np.savez(data, x=x, y=y)
    common = [art, f"--data={data}", "--seed=5", "--quiet", "--no-train-eval", "--scale=1",
              f"--threads={args.threads}"]
    metrics = os.path.join(tmp, f"{name}.dropout.jsonl")
    straight, resumed = os.path.join(tmp, "straight.npz"), os.path.join(tmp, "resumed.npz")
    ckpt = os.path.join(tmp, f"{name}.ckpt")
    run([tool("trainopt-run"), *common, "--steps=40", f"--metrics={metrics}",
         f"--save-params={straight}"])
    run([tool("trainopt-run"), *common, "--steps=20", f"--checkpoint-dir={ckpt}",
         "--checkpoint-every=10"])
    run([tool("trainopt-run"), *common, "--steps=40", f"--checkpoint-dir={ckpt}", "--resume",
         f"--save-params={resumed}"])
    losses = [json.loads(line)["loss"] for line in open(metrics) if '"summary"' not in line]
    a, b = np.load(straight), np.load(resumed)
    identical = sorted(a.files) == sorted(b.files) and all(
        np.array_equal(a[k], b[k]) for k in a.files)
    first, last = float(np.mean(losses[:4])), float(np.mean(losses[-4:]))
    ok = last < first and identical
    print(f"dropout check {name}: mean loss of the first 4 steps {first:.4f}, of the last 4 "
          f"{last:.4f}; resumed run bit-identical: {identical} {'PASS' if ok else 'FAIL'}",
          flush=True)
    return ok


def markdown(rows, steps):
    out = ["| model | ONNX op types (nodes) | compiled | compile time (f32) | trained | "
           f"f64: max over {steps} steps vs torch f64 | torch f64 spread at 1e-13 (steps "
           f"under 1e-6) | f32: step 0 | f32: max over {steps} steps | torch spread at float32 "
           "rounding | result |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        ops = f"{len(r['ops'])} ({r['nodes']})" if r["ops"] else ""
        if "error" in r:
            compiled = "no" if not r["error"].startswith("train") else "yes"
            out.append(f"| {r['model']} | {ops} | {compiled} | | no | | | | | | "
                       f"{r['error'].replace('|', '/')} |")
            continue
        out.append(f"| {r['model']} | {ops} | yes | {r['compile_s']:.1f} s | yes | "
                   f"{r['all64']:.1e} | {r['chaos']:.1e} ({r['clear']}/{steps}) | "
                   f"{r['first32']:.1e} | {r['all32']:.1e} | {r['t32']:.1e} | "
                   f"{'PASS' if r['ok'] else 'FAIL'} |")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--models", help="comma-separated subset (default: all)")
    ap.add_argument("--ci", action="store_true", help="the CI subset")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--markdown", help="write the table to this file")
    ap.add_argument("--dropout-check", help="also train this model with dropout on")
    args = ap.parse_args()
    names = (args.models.split(",") if args.models else
             [n for n, s in MODELS.items() if s.ci or not args.ci])
    for n in names:
        if n not in MODELS:
            sys.exit(f"unknown model '{n}'; known: {', '.join(MODELS)}")
    rows, failures = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            try:
                row = check_model(name, args, tmp)
            except Exception as e:  # an export failure is a row too
                row = dict(model=name, ops=[], nodes=0,
                           error=f"export: {str(e).splitlines()[0][:200]}")
            rows.append(row)
            failures += not row.get("ok", False)
            if "error" in row:
                print(f"{name}: FAIL {row['error']}", flush=True)
            else:
                print(f"{name}: {len(row['ops'])} op types, compiled in {row['compile_s']:.1f} s; "
                      f"f64 vs torch f64 max {row['all64']:.1e} (torch f64 spread "
                      f"{row['chaos']:.1e}, {row['clear']}/{args.steps} steps under 1e-6); "
                      f"f32 vs torch f64: step 0 "
                      f"{row['first32']:.1e}, max {row['all32']:.1e} (torch spread at float32 "
                      f"rounding {row['t32']:.1e}) {'PASS' if row['ok'] else 'FAIL'}", flush=True)
        if args.dropout_check:
            failures += not dropout_check(args.dropout_check, args, tmp)
    table = markdown(rows, args.steps)
    if args.markdown:
        # The prose above the table is written by hand: keep it.
        prose = ""
        if os.path.exists(args.markdown):
            text = open(args.markdown).read()
            start = text.find("| model |")
            prose = text[:start] if start > 0 else ""
        with open(args.markdown, "w") as f:
            f.write(prose + table)
    print(f"{len(rows)} models, {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
