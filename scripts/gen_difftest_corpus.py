#!/usr/bin/env python3
"""Writes the differential tester's model corpus (scripts/difftest.py): each
model built in PyTorch from a seed (torchvision models with weights=None,
nothing downloaded), exported twice with torch.onnx.export (float32 and
float64, training mode so BatchNorm uses batch statistics, opset 17, no
constant folding, Dropout at p=0), with random batches and, per batch,
PyTorch float64's one-step SGD update (lr=1, cross-entropy) of every
parameter and BatchNorm running statistic as the independent reference.

Each batch exists twice: float64 data drawn in float64 (values float32
cannot hold, so a float64 program that receives them through float32 is
caught) for the float64 models, and the same data rounded to float32 for
the float32 models; PyTorch's reference is computed for each.

Runs with any Python that has torch and torchvision (Debian's
python3-torch and python3-torchvision are enough):
    /usr/bin/python3 scripts/gen_difftest_corpus.py OUTDIR [--models a,b] [--batches 5]
Writes OUTDIR/manifest.json, MODEL.f32.onnx, MODEL.f64.onnx,
MODEL.bK.npz (x64, x32, y) and MODEL.bK.torch.npz (f64.NAME, f32.NAME:
PyTorch float64 on the float64 and float32 data; t32.NAME: PyTorch float32).
"""
import argparse
import copy
import json
import os
import sys
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_torch_models import CNN, GPT, MLP, MobileNetBlock, ResNet, legacy_exporter  # noqa: E402


class Linear(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(20, 10)

    def forward(self, x):
        return self.fc(x)


class TanhMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(20, 32), nn.Linear(32, 10)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)))


class ConvBNReLU(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(torch.flatten(F.relu(self.bn(self.conv(x))), 1))


class PadConv(nn.Module):
    """Constant padding (ONNX Pad) before a convolution."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4 * 7 * 9, 10)

    def forward(self, x):
        return self.fc(torch.flatten(torch.tanh(self.conv(F.pad(x, (1, 2, 0, 1)))), 1))


def torchvision_model(name):
    import torchvision.models as tv
    makers = {
        "mobilenet_v2": lambda: tv.mobilenet_v2(weights=None, width_mult=0.5),
        "mnasnet0_5": lambda: tv.mnasnet0_5(weights=None),
        "googlenet": lambda: tv.googlenet(weights=None, aux_logits=False, init_weights=True),
        "shufflenet_v2": lambda: tv.shufflenet_v2_x0_5(weights=None),
        "regnet_y_400mf": lambda: tv.regnet_y_400mf(weights=None),
        "densenet": lambda: tv.DenseNet(growth_rate=12, block_config=(2, 2, 2, 2),
                                        num_init_features=16, bn_size=2),
        "resnet18": lambda: tv.resnet18(weights=None),
    }
    return makers[name]


# name: (factory, batch, sample shape, classes). The torchvision models get
# 3x64x64 images and batch 8. The compiled-vs-reference issue used batch 2:
# there the last stages' BatchNorms normalize over 2x2x2 = 8 elements, each
# amplifies float32 rounding by about 1.18x, and PyTorch's own float32
# update is 1e-4 to 4e-4 off its float64 one (docs/difftest.md); batch 8
# keeps the comparison above that floor (`--batch-size 2` reproduces it).
MODELS = {
    "linear": (Linear, 4, (20,), 10),
    "tanh_mlp": (TanhMLP, 4, (20,), 10),
    "conv_bn_relu": (ConvBNReLU, 4, (3, 8, 8), 10),
    "mlp": (MLP, 8, (784,), 10),
    "cnn": (CNN, 2, (1, 28, 28), 10),
    "resnet": (ResNet, 4, (1, 28, 28), 10),
    "mobilenet_block": (MobileNetBlock, 2, (16, 14, 14), 10),
    "pad_conv": (PadConv, 4, (3, 8, 8), 10),
    # int64 token ids (vocabulary 96, 16 per sample), next-token labels:
    # gather, layer_norm, gelu (erf and tanh), softmax, the causal mask,
    # concat and split.
    "gpt": (GPT, 4, "tokens", 96),
}
TOKENS = 16
# Compile flags a model needs beyond the loss and optimizer.
FLAGS = {"gpt": ["--class-axis=-1"]}
for _name in ["mobilenet_v2", "mnasnet0_5", "googlenet", "shufflenet_v2", "regnet_y_400mf",
              "densenet", "resnet18"]:
    MODELS[_name] = (None, 8, (3, 64, 64), 1000)


def build(name, seed):
    torch.manual_seed(seed)
    factory = MODELS[name][0] or torchvision_model(name)
    model = factory()
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    return model.train()


def export(model, path, example):
    """Exports a copy of `model` and returns it: tracing in training mode
    runs the forward once, which moves the BatchNorm running statistics, and
    the exported initializers are the copy's state after that."""
    model = copy.deepcopy(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), path, opset_version=17,
                          do_constant_folding=False,
                          training=torch.onnx.TrainingMode.TRAINING,
                          input_names=["x"], output_names=["logits"],
                          **legacy_exporter())
    return model


def sgd_update(model, x, y, dtype=torch.float64):
    """PyTorch in `dtype`: the change of every parameter and float buffer
    after one SGD step with lr=1 on cross-entropy (batch statistics in BN)."""
    m = copy.deepcopy(model).to(dtype).train()
    before = {k: v.detach().clone() for k, v in m.state_dict().items()
              if v.is_floating_point()}
    opt = torch.optim.SGD(m.parameters(), lr=1.0)
    opt.zero_grad()
    logits = m(torch.from_numpy(x))
    # [B, T, V] token logits: classes on the last axis.
    if logits.dim() == 3:
        logits = logits.transpose(1, 2)
    F.cross_entropy(logits, torch.from_numpy(y)).backward()
    opt.step()
    after = m.state_dict()
    return {k: (after[k] - before[k]).double().numpy() for k in before}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("outdir")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--batches", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=0,
                    help="override every model's batch (0: each model's own)")
    args = ap.parse_args()
    os.makedirs(args.outdir, exist_ok=True)
    manifest = {"models": []}
    for name in args.models.split(","):
        if name not in MODELS:
            sys.exit(f"unknown model '{name}'; known: {', '.join(MODELS)}")
        _, batch, shape, classes = MODELS[name]
        batch = args.batch_size or batch
        tokens = shape == "tokens"
        model = build(name, args.seed)
        example = (torch.randint(0, classes, (batch, TOKENS)) if tokens
                   else torch.randn(batch, *shape))
        m32 = export(model, os.path.join(args.outdir, f"{name}.f32.onnx"), example)
        m64 = export(copy.deepcopy(model).double(), os.path.join(args.outdir, f"{name}.f64.onnx"),
                     example if tokens else example.double())
        rng = np.random.default_rng(args.seed)
        batches = []
        for k in range(args.batches):
            if tokens:
                x64 = x32 = rng.integers(0, classes, (batch, TOKENS)).astype(np.int64)
                y = rng.integers(0, classes, (batch, TOKENS)).astype(np.int64)
            else:
                x64 = rng.standard_normal((batch, *shape))
                x32 = x64.astype(np.float32)
                y = rng.integers(0, classes, batch).astype(np.int64)
            stem = f"{name}.b{k}"
            np.savez(os.path.join(args.outdir, stem + ".npz"), x64=x64, x32=x32, y=y)
            ref = {f"f64.{n}": v for n, v in sgd_update(m64, x64, y).items()}
            ref.update({f"f32.{n}": v for n, v in
                        sgd_update(m32, x32 if tokens else x32.astype(np.float64), y).items()})
            # PyTorch's own float32 step: how far float32 rounding alone moves
            # this update on this model and batch (the noise floor).
            ref.update({f"t32.{n}": v for n, v in
                        sgd_update(m32, x32, y, torch.float32).items()})
            np.savez(os.path.join(args.outdir, stem + ".torch.npz"), **ref)
            batches.append(stem)
        manifest["models"].append({"name": name, "batch": batch,
                                   "input_shape": [TOKENS] if tokens else list(shape),
                                   "classes": classes, "batches": batches,
                                   "flags": FLAGS.get(name, [])})
        print(f"{name}: {sum(p.numel() for p in model.parameters())} parameters, "
              f"{len(batches)} batches", flush=True)
    with open(os.path.join(args.outdir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
