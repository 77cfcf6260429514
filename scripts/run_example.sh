#!/usr/bin/env bash
# The main job: set up, build, compile the example CNN (the foundation
# issue's, written by scripts/gen_models.py) for the CPU and train it on
# Fashion-MNIST (Debian's dataset-fashion-mnist), printing the accuracy.
# Extra arguments go to trainopt-run (e.g. --epochs 1, --threads 2).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh >&2
OUT=build/example
DATA=/usr/share/datasets/fashion-mnist
mkdir -p "$OUT"
.venv/bin/python scripts/gen_models.py "$OUT" --only cnn
build/bin/trainopt-compile "$OUT/cnn.onnx" --target=cpu --batch-size 64 \
  --loss=cross_entropy --optimizer=adam --lr=1e-3 -o "$OUT/cnn.trainopt" --report
exec build/bin/trainopt-run "$OUT/cnn.trainopt" --data="$DATA" --eval-data="$DATA" \
  --epochs 2 --metrics="$OUT/metrics.jsonl" --checkpoint-dir="$OUT/checkpoints" \
  --checkpoint-every=500 --export-onnx="$OUT/cnn-trained.onnx" "$@"
