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
  g++ cmake ninja-build ccache git libopenblas-dev libdnnl-dev
  llvm-22-dev libmlir-22-dev mlir-22-tools llvm-22-tools
  libonnx-dev libprotobuf-dev protobuf-compiler zlib1g-dev
  python3 python3-venv python3-torch python3-torchvision
  libgtest-dev dataset-fashion-mnist
  openmpi-bin libopenmpi-dev
  clang libclang-rt-14-dev
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
if ! "$VENV/bin/python" -c "import onnx, numpy, onnxruntime, pytest, tqdm" 2>/dev/null; then
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/scripts/requirements-test.txt"
fi

cmake -G Ninja -S "$ROOT" -B "$BUILD_DIR" \
  -DCMAKE_BUILD_TYPE=Release \
  -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir \
  -DTRAINOPT_TEST_PYTHON="$VENV/bin/python" >/dev/null
ninja -C "$BUILD_DIR" -j "${TRAINOPT_JOBS:-2}" trainopt-opt trainopt-compile trainopt-eval trainopt-run trainopt

# The Python package (python-frontend/, docs/python.md), installed into the
# venv from this build: it carries a copy of libtrainopt.so, so it is
# reinstalled after every build.
TRAINOPT_BUILD_DIR="$BUILD_DIR" "$VENV/bin/pip" install -q --disable-pip-version-check \
  --force-reinstall --no-deps "$ROOT/python-frontend"
# PyTorch users: a second venv that sees Debian's python3-torch (PyPI's
# wheel is gigabytes), with the package installed the same way. The
# from_torch tests run there.
TORCH_VENV=$ROOT/.venv-torch
if [ ! -x "$TORCH_VENV/bin/python" ]; then
  /usr/bin/python3 -m venv --system-site-packages "$TORCH_VENV"
fi
if ! "$TORCH_VENV/bin/python" -c "import google.protobuf, pytest" 2>/dev/null; then
  "$TORCH_VENV/bin/pip" install -q --disable-pip-version-check "protobuf>=4.21" pytest
fi
TRAINOPT_BUILD_DIR="$BUILD_DIR" "$TORCH_VENV/bin/pip" install -q --disable-pip-version-check \
  --force-reinstall --no-deps "$ROOT/python-frontend"
