#!/usr/bin/env bash
# Installs what trainopt needs on Debian 12 and builds it into build/.
# Idempotent: a second run only rebuilds what changed.
#   TRAINOPT_SKIP_APT=1   do not call apt-get (packages already present)
#   TRAINOPT_BUILD_DIR    build directory (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_DIR=${TRAINOPT_BUILD_DIR:-$ROOT/build}

APT_PACKAGES=(
  g++ cmake ninja-build ccache git libopenblas-dev
  llvm-22-dev libmlir-22-dev mlir-22-tools llvm-22-tools
  libonnx-dev libprotobuf-dev protobuf-compiler zlib1g-dev
  python3 python3-venv python3-torch python3-torchvision
  libgtest-dev dataset-fashion-mnist
  openmpi-bin libopenmpi-dev
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${TRAINOPT_SKIP_APT:-0}" != 1 ] && [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  # LLVM/MLIR 22 come from Debian's security suite (bookworm-security).
  if ! apt-cache show llvm-22-dev >/dev/null 2>&1; then
    echo "setup: error: apt cannot find llvm-22-dev; enable bookworm-security in /etc/apt/sources.list" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The PyPI packages the tests use live in a virtual environment, so the
# system Python stays untouched (Debian marks it externally managed).
VENV=$ROOT/.venv
if [ ! -x "$VENV/bin/python" ]; then
  /usr/bin/python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import onnx, numpy, onnxruntime" 2>/dev/null; then
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/scripts/requirements-test.txt"
fi

cmake -G Ninja -S "$ROOT" -B "$BUILD_DIR" \
  -DCMAKE_BUILD_TYPE=Release \
  -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir \
  -DTRAINOPT_TEST_PYTHON="$VENV/bin/python" >/dev/null
ninja -C "$BUILD_DIR" -j "${TRAINOPT_JOBS:-2}" trainopt-opt trainopt-compile trainopt-eval trainopt-run
