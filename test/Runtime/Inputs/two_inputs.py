"""multi-input-feed.test: a model with two float inputs (features `a` and an
image `b`) and labels, trained by trainopt-run from one .npz whose arrays
are named after the inputs, against PyTorch from the same weights."""
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, sys.argv[2])
from export_torch_models import legacy_exporter  # noqa: E402

STEPS, BATCH = 10, 8


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.fa = nn.Linear(12, 16)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.out = nn.Linear(16 + 4 * 4 * 4, 5)

    def forward(self, a, b):
        h = torch.cat([torch.tanh(self.fa(a)), torch.flatten(F.relu(self.conv(b)), 1)], 1)
        return self.out(h)


def main():
    bin_dir, tmp = sys.argv[1], sys.argv[3]
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n = STEPS * BATCH
    a = rng.standard_normal((n, 12)).astype(np.float32)
    b = rng.standard_normal((n, 3, 4, 4)).astype(np.float32)
    y = rng.integers(0, 5, n).astype(np.int64)
    model = TwoInputs()
    onnx_path = os.path.join(tmp, "two.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.from_numpy(a[:BATCH]), torch.from_numpy(b[:BATCH])),
                          onnx_path, opset_version=17, do_constant_folding=False,
                          input_names=["a", "b"], output_names=["logits"], **legacy_exporter())
    # The labels are found by role: the .npz names them after the input
    # (--labels=target), not y.
    data = os.path.join(tmp, "two.npz")
    np.savez(data, b=b, a=a, target=y)
    art, metrics = os.path.join(tmp, "two.trainopt"), os.path.join(tmp, "two.jsonl")
    subprocess.run([os.path.join(bin_dir, "trainopt-compile"), onnx_path, f"--batch-size={BATCH}",
                    "--loss=cross_entropy", "--labels=target", "--optimizer=sgd", "--lr=0.1",
                    "-o", art], check=True)
    subprocess.run([os.path.join(bin_dir, "trainopt-run"), art, f"--data={data}", "--no-shuffle",
                    f"--steps={STEPS}", "--quiet", "--no-train-eval", f"--metrics={metrics}"],
                   check=True)
    got = [json.loads(l)["loss"] for l in open(metrics) if "summary" not in l]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    want = []
    for k in range(STEPS):
        s = slice(k * BATCH, (k + 1) * BATCH)
        opt.zero_grad()
        loss = F.cross_entropy(model(torch.from_numpy(a[s]), torch.from_numpy(b[s])),
                               torch.from_numpy(y[s]))
        loss.backward()
        opt.step()
        want.append(loss.item())
    err = max(abs(g - w) / abs(w) for g, w in zip(got, want))
    print(f"steps {len(got)} max loss rel err vs torch {err:.1e} {'PASS' if err <= 1e-5 else 'FAIL'}")


if __name__ == "__main__":
    main()
