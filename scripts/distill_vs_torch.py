#!/usr/bin/env python3
"""Knowledge distillation against PyTorch: a half-width CNN student
(conv 1->16->32, fc 4608->64->10) learns from a frozen teacher, the
reference CNN (exported in eval mode) or the ResNet with BatchNorm
(exported in training mode, its running statistics then read in inference
form) of scripts/export_torch_models.py, seeded weights. trainopt compiles
the student with `--teacher=TEACHER.onnx` and

  - kl:       --distill=kl:T=4,alpha=0.7;
  - features: --distill=kl:T=2,alpha=0.5 and two --distill-feature pairs,
              the ReLU after conv2 (32 channels against the teacher's 64: a
              learned 1x1 convolution) and the ReLU after fc1 (64 features
              against 128: a learned linear map), --distill-feature-weight=0.5
              (CNN teacher only: the ResNet has other tensors);

PyTorch trains the same student from the same weights on the same batches
with SGD, the teacher in eval mode under no_grad, the loss
(1 - alpha) CE + alpha T^2 kl_div(log_softmax(s/T), softmax(t/T),
"batchmean") + weight * sum(mse(P(student feature), teacher feature)), the
projections P starting from trainopt's (read back after one step at learning
rate 1e-300, which changes no value). Every step's loss must agree within
the tolerance, and the teacher's parameters (BatchNorm statistics included)
must leave training bit for bit as they came.

Usage (a Python with torch and numpy, e.g. Debian's python3-torch):
    distill_vs_torch.py --bin build/bin [--steps 20] [--dtype f64|f32]
        [--teachers cnn,resnet] [--configs kl,features]
"""
import argparse
import os
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_runtime_torch import fashion_mnist, run_trainopt  # noqa: E402
from export_torch_models import CNN, ResNet, legacy_exporter  # noqa: E402

STUDENT_BATCH = 16
LR = 0.01
# The tensors --distill-feature compares, by their ONNX names (the same in
# both CNNs: torch.onnx names a node's output after its scope and op).
FEATURES = ["/Relu_1_output_0", "/Relu_2_output_0"]
CONFIGS = {
    "kl": (4.0, 0.7, 0.0),
    "features": (2.0, 0.5, 0.5),
}


class Student(nn.Module):
    """The CNN at half width."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 16, 3), nn.Conv2d(16, 32, 3)
        self.fc1, self.fc2 = nn.Linear(4608, 64), nn.Linear(64, 10)

    def forward(self, x):
        return cnn_features(self, x)[0]


def cnn_features(m, x):
    """A CNN's logits and the two tensors of FEATURES."""
    a = F.relu(m.conv2(F.relu(m.conv1(x))))
    h = F.relu(m.fc1(F.max_pool2d(a, 2).flatten(1)))
    return m.fc2(h), a, h


def export(module, x, path, training):
    torch.onnx.export(module, (x,), path, opset_version=17, do_constant_folding=False,
                      input_names=["x"], output_names=["logits"],
                      training=torch.onnx.TrainingMode.TRAINING if training
                      else torch.onnx.TrainingMode.EVAL, **legacy_exporter())


def trainopt(bin_dir, student, teacher, data, flags, steps, tag):
    """Losses per step and the final persistent values."""
    return run_trainopt(bin_dir, student, data, [
        f"--teacher={teacher}", f"--batch-size={STUDENT_BATCH}", "--optimizer=sgd",
        *flags], steps, tag)


def torch_distill(student, teacher, projections, config, x, y, steps, dtype):
    """PyTorch's loss at every step of the student learning from teacher."""
    T, alpha, weight = config
    teacher.eval()
    student.train()
    params = list(student.parameters()) + [p for m in projections for p in m.parameters()]
    opt = torch.optim.SGD(params, lr=LR)
    losses = []
    for k in range(steps):
        xb = torch.from_numpy(x[k * STUDENT_BATCH:(k + 1) * STUDENT_BATCH]).to(dtype)
        yb = torch.from_numpy(y[k * STUDENT_BATCH:(k + 1) * STUDENT_BATCH])
        with torch.no_grad():
            if weight:
                t_logits, *t_feats = cnn_features(teacher, xb)
            else:
                t_logits, t_feats = teacher(xb), []
        s_logits, *s_feats = cnn_features(student, xb)
        kl = F.kl_div(F.log_softmax(s_logits / T, 1), F.softmax(t_logits / T, 1),
                      reduction="batchmean")
        loss = (1 - alpha) * F.cross_entropy(s_logits, yb) + alpha * T * T * kl
        for p, s, t in zip(projections, s_feats, t_feats):
            loss = loss + weight * F.mse_loss(p(s), t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--dtype", default="f64", choices=["f64", "f32"])
    ap.add_argument("--tolerance", type=float, help="default 1e-9 (f64), 1e-4 (f32)")
    ap.add_argument("--teachers", default="cnn,resnet")
    ap.add_argument("--configs", default="kl,features")
    args = ap.parse_args()
    torch.set_num_threads(2)
    dtype = torch.float64 if args.dtype == "f64" else torch.float32
    np_dtype = np.float64 if args.dtype == "f64" else np.float32
    tol = args.tolerance or (1e-9 if args.dtype == "f64" else 1e-4)
    n = args.steps * STUDENT_BATCH
    real = fashion_mnist(n)
    if real is None:
        sys.exit("distill_vs_torch: Fashion-MNIST not found")
    x = real[0].reshape(n, 1, 28, 28).astype(np_dtype)
    y = real[1]
    failures, worst_all = 0, 0.0
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data.npz")
        np.savez(data, x=x, y=y)
        torch.manual_seed(0)
        student = Student().to(dtype)
        student_path = os.path.join(tmp, "student.onnx")
        export(student, torch.from_numpy(x[:STUDENT_BATCH]), student_path, True)
        for tname in args.teachers.split(","):
            torch.manual_seed(1)
            teacher = {"cnn": CNN, "resnet": ResNet}[tname]().to(dtype)
            if tname == "resnet":
                # Running statistics that are not the initial 0 and 1, so
                # that reading them matters.
                teacher.train()
                with torch.no_grad():
                    for k in range(4):
                        teacher(torch.from_numpy(x[k * 16:(k + 1) * 16]))
            teacher_path = os.path.join(tmp, f"{tname}.onnx")
            # The CNN exported in eval mode; the ResNet in training mode,
            # BatchNorm with its running statistics (an eval-mode export
            # would fold them into the convolutions), which the teacher's
            # import puts in inference form.
            export(teacher, torch.from_numpy(x[:STUDENT_BATCH]), teacher_path,
                   tname == "resnet")
            teacher.eval()
            for cname in args.configs.split(","):
                T, alpha, weight = CONFIGS[cname]
                if weight and tname != "cnn":
                    continue
                flags = [f"--distill=kl:T={T:g},alpha={alpha:g}"]
                if weight:
                    flags += [f"--distill-feature={f}:{f}" for f in FEATURES]
                    flags.append(f"--distill-feature-weight={weight:g}")
                tag = os.path.join(tmp, f"{tname}-{cname}")
                _, start = trainopt(args.bin, student_path, teacher_path, data,
                                    flags + ["--lr=1e-300"], 1, tag + "-start")
                projections = []
                if weight:
                    for f, (cs, ct, conv) in zip(FEATURES, [(32, 64, True), (64, 128, False)]):
                        p = (nn.Conv2d(cs, ct, 1, bias=False) if conv
                             else nn.Linear(cs, ct, bias=False)).to(dtype)
                        with torch.no_grad():
                            p.weight.copy_(torch.from_numpy(start["distill.proj." + f]))
                        projections.append(p)
                got, final = trainopt(args.bin, student_path, teacher_path, data,
                                      flags + [f"--lr={LR}"], args.steps, tag)
                model = Student().to(dtype)
                model.load_state_dict(student.state_dict())
                ref = torch_distill(model, teacher, projections, CONFIGS[cname], x, y,
                                    args.steps, dtype)
                worst = max(abs(g - r) / abs(r) for g, r in zip(got, ref))
                if os.environ.get("VERBOSE"):
                    for k, (g, r) in enumerate(zip(got, ref)):
                        print(k, g, r, abs(g - r) / abs(r))
                # Every teacher value (BatchNorm statistics included) as
                # it was before training.
                held = [k for k in start if k.startswith("teacher.")]
                frozen = all(np.array_equal(final[k], start[k]) for k in held)
                held = len(held)
                ok = len(got) == args.steps and worst <= tol and frozen and held > 0
                failures += not ok
                worst_all = max(worst_all, worst)
                print(f"{tname:7s} {cname:9s} {args.dtype} losses over {args.steps} steps: "
                      f"max rel err {worst:.2e} (first {got[0]:.5f}, last {got[-1]:.5f}); "
                      f"teacher {held} tensors {'unchanged' if frozen else 'CHANGED'} "
                      f"{'PASS' if ok else 'FAIL'}", flush=True)
    print(f"{failures} failures; max loss rel err {worst_all:.2e}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
