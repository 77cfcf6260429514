#!/usr/bin/env python3
"""Exports the five reference models of trainopt from PyTorch with
torch.onnx.export (opset 17, do_constant_folding=False, symbolic batch dim):
mlp, cnn, resnet and mobilenet (exported in training mode, so BatchNorm
computes batch statistics and returns running-stat updates) and gpt.

Runs with any Python that has torch (Debian's python3-torch is enough):
    /usr/bin/python3 scripts/export_torch_models.py OUTDIR [--only NAME]
"""
import argparse
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


def legacy_exporter():
    """torch.onnx.export arguments that select the TorchScript exporter on
    PyTorch 2.x (its default became the dynamo exporter, which needs the
    onnxscript package); PyTorch 1.x has only that one."""
    import inspect
    return {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}


def export_training(model, example, path):
    """Exports `model` for training (training mode, no constant folding,
    opset 17) with input "x" and output "logits"."""
    torch.onnx.export(model, (example,), path, opset_version=17, do_constant_folding=False,
                      input_names=["x"], output_names=["logits"],
                      training=torch.onnx.TrainingMode.TRAINING, **legacy_exporter())


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(784, 256), nn.Linear(256, 256), nn.Linear(256, 10)

    def forward(self, x):
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class CNN(nn.Module):
    """conv(1->32,3x3) relu conv(32->64,3x3) relu maxpool2 flatten fc(9216->128) relu fc(128->10)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 32, 3), nn.Conv2d(32, 64, 3)
        self.fc1, self.fc2 = nn.Linear(9216, 128), nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
        x = x.view(x.size(0), -1)
        return self.fc2(F.relu(self.fc1(x)))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (self.down(x) if self.down is not None else x))


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.layer1, self.layer2 = BasicBlock(16, 16, 1), BasicBlock(16, 32, 2)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class MobileNetBlock(nn.Module):
    """MobileNetV2 inverted residual: 1x1 expand, depthwise 3x3, ReLU6, linear 1x1."""

    def __init__(self, c=16, expand=6):
        super().__init__()
        h = c * expand
        self.expand = nn.Sequential(nn.Conv2d(c, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(h, h, 3, 1, 1, groups=h, bias=False), nn.BatchNorm2d(h), nn.ReLU6())
        self.project = nn.Sequential(nn.Conv2d(h, c, 1, bias=False), nn.BatchNorm2d(c))
        self.fc = nn.Linear(c, 10)

    def forward(self, x):
        y = x + self.project(self.dw(self.expand(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(y, 1), 1))


class GPT(nn.Module):
    """A GPT-2 style decoder block: embeddings, causal attention with a tril
    mask buffer, GELU (erf) MLP, tanh-GELU, LayerNorms, LM head."""

    def __init__(self, vocab=96, seq=16, dim=64, heads=4):
        super().__init__()
        self.heads, self.dim = heads, dim
        self.wte, self.wpe = nn.Embedding(vocab, dim), nn.Embedding(64, dim)
        self.ln1, self.ln2, self.ln_f = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.c_attn, self.c_proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc, self.fc_proj = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.head = nn.Linear(2 * dim, vocab, bias=False)
        self.register_buffer("mask", torch.tril(torch.ones(seq, seq)).view(1, 1, seq, seq))

    def forward(self, ids):
        b, t = ids.size()
        h = self.wte(ids) + self.wpe.weight[:t]
        q, k, v = self.c_attn(self.ln1(h)).split(self.dim, dim=2)
        hd = self.dim // self.heads
        q, k, v = (z.view(b, t, self.heads, hd).transpose(1, 2) for z in (q, k, v))
        s = (q @ k.transpose(-2, -1)) / math.sqrt(hd)
        s = s.masked_fill(self.mask[:, :, :t, :t] == 0, float("-inf"))
        o = (F.softmax(s, dim=-1) @ v).transpose(1, 2).contiguous().view(b, t, self.dim)
        h = h + self.c_proj(o)
        h = h + F.gelu(self.fc_proj(F.gelu(self.fc(self.ln2(h)))), approximate="tanh")
        return self.head(torch.cat([self.ln_f(h), h], dim=2))


MODELS = {
    "mlp": (MLP, lambda: torch.randn(4, 784), False),
    "cnn": (CNN, lambda: torch.randn(4, 1, 28, 28), False),
    "resnet": (ResNet, lambda: torch.randn(4, 1, 28, 28), True),
    "mobilenet": (MobileNetBlock, lambda: torch.randn(4, 16, 14, 14), True),
    "gpt": (GPT, lambda: torch.randint(0, 96, (4, 16)), False),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("outdir")
    ap.add_argument("--only", choices=sorted(MODELS))
    args = ap.parse_args()
    os.makedirs(args.outdir, exist_ok=True)
    torch.manual_seed(0)
    for name, (cls, example, train) in MODELS.items():
        if args.only and name != args.only:
            continue
        model = cls().train(train)
        mode = torch.onnx.TrainingMode.TRAINING if train else torch.onnx.TrainingMode.EVAL
        torch.onnx.export(model, (example(),), os.path.join(args.outdir, f"{name}.onnx"),
                          opset_version=17, do_constant_folding=False, training=mode,
                          input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
                          **legacy_exporter())


if __name__ == "__main__":
    sys.exit(main())
