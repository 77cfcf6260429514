#!/usr/bin/env bash
# The main job: set up, build, then compile the bundled example (the CNN of
# the foundation issue, written by scripts/gen_models.py) and print its MLIR.
# Extra arguments go to trainopt-compile (e.g. --batch-size 128).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh >&2
mkdir -p build/example
.venv/bin/python scripts/gen_models.py build/example --only cnn
exec build/bin/trainopt-compile build/example/cnn.onnx --batch-size 64 \
  --emit=mlir --elide-weights -o - "$@"
