#!/usr/bin/env python3
"""Compression compiled into training, on the Fashion-MNIST CNN
(scripts/gen_models.py's `cnn`), in one run: for each configuration,
trainopt-compile it, train it with trainopt-run, and measure

  - test accuracy (trainopt's eval step on the 10,000 test images);
  - parameters and training FLOPs per step (trainopt-compile --report);
  - our training step time (median `step_ms` of --metrics);
  - the exported ONNX file's size, and ONNX Runtime's CPU inference latency
    (median of repeated runs of one batch of 64, the compiled batch size the
    export keeps, 2 threads), and its test accuracy;
  - for a quantized model: how often ONNX Runtime's top-1 prediction on the
    QDQ export agrees with trainopt's fake-quant eval step, over the whole
    test set (trainopt-run --dump-eval-batches=0).

Configurations: the fp32 baseline; int8 QAT (per-channel symmetric
weights, observers frozen after the first epoch's steps; with output
quantization points, so ONNX Runtime runs QLinearConv and QGemm), int8-rr
(the same with 7-bit weights, --quantize-reduce-range, exported as int8 for
ONNX Runtime's u8s8 kernels), int4 QAT (the
CNN at opset 21, where ONNX has 4-bit QDQ tensors, so its export is INT4
weights and UINT4 activations) and 4-bit logarithmic weights (--quantize=log:4,
per output channel: sign and 7 powers of two or 0; exported as float
weights at those levels), all from scratch. Then, each starting from the
fp32 row's trained model (its export) and trained again for --epochs, as
compression is applied to a trained model: 90% unstructured magnitude
pruning on a gradual ramp over the first 60% of the steps (Zhu-Gupta, every
50 steps); 50% channel pruning (filters and neurons by L1 norm; the
classifier stays dense) on the same ramp; channel50c, the same 50% chosen
once from the trained weights and removed before training
(--prune-schedule=oneshot --prune-compact), so its training step computes
the smaller CNN; 2:4 at the first step (the first
convolution left dense: its 9 weights per filter do not divide into groups
of 4); weight sharing with 16 centroids per layer (--quantize=kmeans:16);
low-rank factorization at energy 0.9; and fp32-again, the trained model
trained again without compression, the baseline these rows compare with
("drop" is against it for them). Pruned models export with the masks
folded in ("nonzero" counts the exported weights that are not zero); the
channel-pruned one is exported with --compact (its pruned filters and
neurons removed), the others stay dense files. Distillation: "student" is
the CNN at half width (scripts/gen_models.py's `cnn_half`) trained alone
from scratch, "distilled" the same student from the same weights trained as
long with the fp32 row's trained model as its frozen teacher
(--distill=kl:T=4,alpha=0.7); "drop" is against the fp32 teacher for both.
The 2:4 GPU row belongs to the GPU-run issue.

Usage (the repo's .venv: numpy, onnx, onnxruntime):
    .venv/bin/python bench/compression.py --bin build/bin [--epochs 2]
        [--configs fp32,int8,int4] [--json OUT.json]
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DATA = "/usr/share/datasets/fashion-mnist"
BATCH = 64
STEPS_PER_EPOCH = 60000 // BATCH



def configs(epochs, teacher=None):
    """Each configuration's trainopt-compile flags, and whether it starts
    from the fp32 row's trained model (compressing a trained model, then
    training it again for as many epochs) rather than from scratch; the
    students start from cnn_half (STUDENTS)."""
    ramp = f"gradual:0,{int(0.6 * epochs * STEPS_PER_EPOCH)},50"
    return {
        "fp32": ([], False),
        "int8": (["--quantize=int8", f"--observer-freeze-step={STEPS_PER_EPOCH}"], False),
        "int8-rr": (["--quantize=int8", "--quantize-reduce-range",
                     f"--observer-freeze-step={STEPS_PER_EPOCH}"], False),
        "int4": (["--quantize=int4", f"--observer-freeze-step={STEPS_PER_EPOCH}"], False),
        "log4": (["--quantize=log:4"], False),
        # The fair baseline of the rows below: the same extra epochs, uncompressed.
        "fp32-again": ([], True),
        "prune90": (["--prune=magnitude:0.9", f"--prune-schedule={ramp}"], True),
        "channel50": (["--prune=channel:l1:0.5", f"--prune-schedule={ramp}"], True),
        # The same filters chosen once from the trained weights and removed
        # before training (--prune-compact): the step trains the smaller CNN.
        "channel50c": (["--prune=channel:l1:0.5", "--prune-schedule=oneshot",
                        "--prune-compact"], True),
        "2:4": (["--prune=2:4", "--prune-exclude=conv1.weight"], True),
        "kmeans16": (["--quantize=kmeans:16"], True),
        "lowrank": (["--low-rank=energy:0.9"], True),
        "student": ([], False),
        "distilled": ([f"--teacher={teacher}", "--distill=kl:T=4,alpha=0.7"], False),
    }


STUDENTS = {"student", "distilled"}
# trainopt-run flags beyond the common ones: channel pruning's export is
# compacted (the pruned filters and neurons removed).
RUN_FLAGS = {"channel50": ["--compact"]}


EXPORTS = {"fp32", "int8", "int8-rr", "int4", "log4", "fp32-again", "prune90", "channel50",
           "channel50c", "2:4", "kmeans16", "lowrank", "student", "distilled"}


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout + r.stderr


def ort_session(path, threads=2):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def latency_ms(session, x, repeats):
    """Median wall time of one session.run on x, after warm-up."""
    name = session.get_inputs()[0].name
    for _ in range(5):
        session.run(None, {name: x})
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        session.run(None, {name: x})
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def predict(session, x, batch):
    """Top-1 predictions over x, `batch` rows at a time (the export keeps the
    compiled batch size)."""
    name = session.get_inputs()[0].name
    rows = len(x) // batch * batch
    return np.concatenate([session.run(None, {name: x[i:i + batch]})[0].argmax(-1)
                           for i in range(0, rows, batch)])


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--configs",
                    default="fp32,int8,int8-rr,int4,log4,fp32-again,prune90,channel50,"
                            "channel50c,2:4,kmeans16,lowrank,student,distilled")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--json")
    args = ap.parse_args()
    tool = lambda name: os.path.join(args.bin, name)  # noqa: E731
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in ("cnn", "cnn_half"):
            run([sys.executable, os.path.join(ROOT, "scripts", "gen_models.py"), tmp,
                 "--only", model])
        onnx_path = os.path.join(tmp, "cnn.onnx")
        # The same CNN at opset 21 (its ops mean the same there), where ONNX
        # has 4-bit QuantizeLinear/DequantizeLinear: the int4 row's export.
        m21 = onnx.load(onnx_path)
        m21.opset_import[0].version = 21
        m21.ir_version = 10
        onnx.save(m21, os.path.join(tmp, "cnn21.onnx"))
        trained = os.path.join(tmp, "fp32.onnx")
        for name in args.configs.split(","):
            flags, from_trained = configs(args.epochs, trained)[name]
            art = os.path.join(tmp, f"{name.replace(':', '_')}.trainopt")
            stem = os.path.join(tmp, name.replace(":", "_"))
            report = stem + ".report.json"
            start = trained if from_trained else \
                os.path.join(tmp, "cnn_half.onnx") if name in STUDENTS else \
                os.path.join(tmp, "cnn21.onnx") if name == "int4" else onnx_path
            if (from_trained or name == "distilled") and not os.path.exists(trained):
                sys.exit(f"{name} needs the fp32 row's trained model: run fp32 first")
            run([tool("trainopt-compile"), start, f"--batch-size={BATCH}",
                 "--loss=cross_entropy", "--optimizer=adam", "--lr=1e-3", *flags,
                 f"--report={report}", "-o", art])
            rep = json.load(open(report))
            exported = stem + ".onnx" if name in EXPORTS else None
            dump = stem + ".eval.npz"
            metrics = stem + ".jsonl"
            out = run([tool("trainopt-run"), art, f"--data={DATA}", f"--eval-data={DATA}",
                       f"--epochs={args.epochs}", f"--threads={args.threads}", "--quiet",
                       "--no-train-eval", f"--metrics={metrics}", f"--dump-eval={dump}",
                       "--dump-eval-batches=0",
                       *([f"--export-onnx={exported}"] if exported else []),
                       *RUN_FLAGS.get(name, [])])
            accuracy = float(re.search(r"accuracy ([0-9.]+)%", out).group(1))
            steps = [json.loads(line) for line in open(metrics)]
            step_ms = statistics.median(s["step_ms"] for s in steps
                                        if "step_ms" in s and not s.get("summary"))
            summary = steps[-1] if steps and steps[-1].get("summary") else {}
            row = {"config": name, "accuracy": accuracy, "from_trained": from_trained,
                   "parameters": rep.get("parameters"),
                   "sparsity": summary.get("sparsity"),
                   "train_gflops_per_step": rep.get("flops_per_step", 0) / 1e9,
                   "step_ms": step_ms}
            if exported:
                evals = np.load(dump)
                x, ours = evals["x"], evals["logits"].argmax(-1)
                labels = evals["labels"]
                session = ort_session(exported, args.threads)
                theirs = predict(session, x, BATCH)
                weights = [numpy_helper.to_array(t) for t in onnx.load(exported).graph.initializer
                           if t.data_type == onnx.TensorProto.FLOAT]
                row.update({
                    "nonzero_weights": int(sum(np.count_nonzero(w) for w in weights)),
                    "file_bytes": os.path.getsize(exported),
                    "ort_accuracy": 100.0 * float(np.mean(theirs == labels[:len(theirs)])),
                    "ort_agreement": 100.0 * float(np.mean(theirs == ours[:len(theirs)])),
                    "ort_ms_batch64": latency_ms(session, x[:BATCH], args.repeats),
                })
            rows.append(row)
            print(json.dumps(row), flush=True)
    base = next((r for r in rows if r["config"] == "fp32"), None)
    print()
    print("| config | test acc. | drop | params | sparsity | nonzero | train GFLOP/step | step ms "
          "| ONNX bytes | ORT acc. | ORT agrees | ORT ms (64) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        again = next((x for x in rows if x["config"] == "fp32-again"), None)
        ref = again if r.get("from_trained") and again else base
        drop = f"{ref['accuracy'] - r['accuracy']:+.2f}" if ref else "-"
        fmt = lambda k, f: (f.format(r[k]) if r.get(k) is not None else "-")  # noqa: E731
        print(f"| {r['config']} | {r['accuracy']:.2f}% | {drop} | {fmt('parameters', '{:,}')} "
              f"| {fmt('sparsity', '{:.3f}')} | {fmt('nonzero_weights', '{:,}')} "
              f"| {fmt('train_gflops_per_step', '{:.3f}')} | {r['step_ms']:.2f} "
              f"| {fmt('file_bytes', '{:,}')} | {fmt('ort_accuracy', '{:.2f}%')} "
              f"| {fmt('ort_agreement', '{:.2f}%')} | {fmt('ort_ms_batch64', '{:.3f}')} |")
    if args.json:
        json.dump(rows, open(args.json, "w"), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
