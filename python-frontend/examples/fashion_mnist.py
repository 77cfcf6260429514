"""Trains Fashion-MNIST two ways with trainopt: a model built in Python
with trainopt.nn, and (when PyTorch is installed) a torch.nn.Module through
trainopt.from_torch. Run from the repository root after scripts/setup.sh:

    .venv-torch/bin/python python-frontend/examples/fashion_mnist.py [--epochs N]

(.venv/bin/python runs the first half only: that venv has no PyTorch.)
"""
import argparse

import trainopt
from trainopt import nn

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist/")
parser.add_argument("--limit", type=int, default=None, help="training samples to use")
args = parser.parse_args()

d = args.data
train = trainopt.load_idx(d + "train-images-idx3-ubyte.gz", d + "train-labels-idx1-ubyte.gz",
                          limit=args.limit)
test = trainopt.load_idx(d + "t10k-images-idx3-ubyte.gz", d + "t10k-labels-idx1-ubyte.gz")

# 1. A model built in Python.
g = trainopt.Graph("cnn", seed=0)
net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                    nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 14 * 14, 128), nn.ReLU(),
                    nn.Linear(128, 10))
g.output("logits", net(g.input("x", [-1, 1, 28, 28])))
model = trainopt.compile(g, batch_size=64, loss="cross_entropy",
                         optimizer=trainopt.optim.AdamW(lr=1e-3))
model.fit(train, epochs=args.epochs, validation_data=test)
print(f"trainopt.nn model: test accuracy {model.evaluate(test)['accuracy']:.4f}")

# 2. The same kind of model as a torch.nn.Module.
try:
    import torch
except ImportError:
    print("PyTorch is not installed here: skipping from_torch (use .venv-torch/bin/python)")
else:
    torch.manual_seed(0)
    tnet = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(16 * 14 * 14, 128),
        torch.nn.ReLU(), torch.nn.Linear(128, 10))
    model = trainopt.compile(trainopt.from_torch(tnet, torch.zeros(64, 1, 28, 28)),
                             batch_size=64, loss="cross_entropy",
                             optimizer=trainopt.optim.AdamW(lr=1e-3))
    model.fit(train, epochs=args.epochs, validation_data=test)
    print(f"torch.nn.Module via from_torch: test accuracy "
          f"{model.evaluate(test)['accuracy']:.4f}")
