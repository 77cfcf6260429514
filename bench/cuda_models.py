#!/usr/bin/env python3
"""The models of the CUDA benchmark (bench/cuda_step_time.py), defined once
in PyTorch and exported to ONNX with their weights, so trainopt and PyTorch
train the same network from initial values drawn from the same seed (the
export writes a fingerprint of them, NAME-weights.json, and the benchmark
checks that its own PyTorch draws the same values before comparing losses):

- mlp1024: MLP 784-1024-1024-10 (ReLU), batch 256, SGD momentum 0.9;
- cnn: the foundation issue's CNN (scripts/export_torch_models.py), batch
  128, Adam;
- resnet18: ResNet-18 in the ImageNet shape (3x224x224, 1000 classes,
  BatchNorm in training mode), batch 128, SGD momentum 0.9 + weight decay.

    /usr/bin/python3 bench/cuda_models.py OUTDIR   (any torch >= 1.13)
    /usr/bin/python3 bench/cuda_models.py --data OUTDIR

The training data is synthetic (uint8 images, int64 labels) from a seeded
numpy generator whose stream is the same on every machine, so the CPU
reference run here and the GPU runs on the GPU machine see the same batches:
OUTDIR/NAME-x.npy and OUTDIR/NAME-y.npy.
"""
import argparse
import json
import os
import sys

import numpy as np

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from export_torch_models import CNN, BasicBlock, legacy_exporter  # noqa: E402

# Samples of synthetic data per model: enough for the benchmark's steps
# (trainopt-run cycles through them).
SAMPLES = {"mlp1024": 4096, "cnn": 4096, "resnet18": 512}


def synthetic(name, seed=0):
    """(x uint8 [N, *shape], y int64 [N]) for model `name`."""
    shape, classes = SHAPES[name]
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(SAMPLES[name],) + shape, dtype=np.uint8)
    y = rng.integers(0, classes, size=(SAMPLES[name],), dtype=np.int64)
    return x, y


def write_data(outdir, names):
    os.makedirs(outdir, exist_ok=True)
    for name in names:
        x, y = synthetic(name)
        np.save(os.path.join(outdir, f"{name}-x.npy"), x)
        np.save(os.path.join(outdir, f"{name}-y.npy"), y)


SHAPES = {"mlp1024": ((784,), 10), "cnn": ((1, 28, 28), 10), "resnet18": ((3, 224, 224), 1000)}


class MLP1024(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(784, 1024), nn.Linear(1024, 1024), nn.Linear(1024, 10)

    def forward(self, x):
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class ResNet18(nn.Module):
    """torchvision's resnet18 layout: 7x7/2 stem, 3x3/2 max pool, four
    stages of two basic blocks (64, 128, 256, 512), global average pool, fc."""

    def __init__(self, classes=1000):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64),
                                  nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        blocks, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(512, classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# name: (module, sample shape, classes, batch, trainopt optimizer flags,
#        torch optimizer factory, BatchNorm in training mode)
CASES = {
    "mlp1024": (MLP1024, (784,), 10, 256, "--optimizer=sgd --lr=0.05 --momentum=0.9",
                lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9), False),
    "cnn": (CNN, (1, 28, 28), 10, 128, "--optimizer=adam --lr=1e-3",
            lambda p: torch.optim.Adam(p, lr=1e-3), False),
    "resnet18": (ResNet18, (3, 224, 224), 1000, 128,
                 "--optimizer=sgd --lr=0.1 --momentum=0.9 --weight-decay=1e-4",
                 lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-4), True),
}


def build(name, seed=0):
    torch.manual_seed(seed)
    cls, _, _, _, _, _, train = CASES[name]
    return cls().train(train)


def fingerprint(model):
    """Per parameter (in order): its sum and sum of squares, in float64."""
    return [[float(p.detach().double().sum()), float(p.detach().double().square().sum())]
            for p in model.parameters()]


def export(name, path):
    cls, shape, _, _, _, _, train = CASES[name]
    model = build(name)
    mode = torch.onnx.TrainingMode.TRAINING if train else torch.onnx.TrainingMode.EVAL
    torch.onnx.export(model, (torch.randn(2, *shape),), path, opset_version=17,
                      do_constant_folding=False, training=mode, input_names=["x"],
                      output_names=["logits"],
                      dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
                      **legacy_exporter())


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir")
    ap.add_argument("--only", choices=sorted(SHAPES))
    ap.add_argument("--data", action="store_true", help="write the synthetic data instead")
    args = ap.parse_args()
    names = [args.only] if args.only else sorted(SHAPES)
    if args.data:
        write_data(args.outdir, names)
        return 0
    os.makedirs(args.outdir, exist_ok=True)
    for name in CASES:
        if not args.only or name == args.only:
            export(name, os.path.join(args.outdir, f"{name}.onnx"))
            with open(os.path.join(args.outdir, f"{name}-weights.json"), "w") as f:
                json.dump(fingerprint(build(name)), f)


if __name__ == "__main__":
    sys.exit(main())
