#!/usr/bin/env bash
# Every test suite: set up, build, then run the lit suite (check-trainopt)
# and the Python package's pytest suite.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# The setup installed the datasets; tests that read them must not skip.
export TRAINOPT_REQUIRE_DATASETS=1
ninja -C "${TRAINOPT_BUILD_DIR:-build}" -j "${TRAINOPT_JOBS:-2}" check-trainopt
# The Python package (installed by setup.sh): its pytest suite in the
# project's venv, and the from_torch tests in .venv-torch (Debian's PyTorch).
.venv/bin/python -m pytest -q python-frontend/tests \
  --ignore=python-frontend/tests/test_from_torch.py \
  --ignore=python-frontend/tests/test_modules_vs_torch.py
TRAINOPT_REQUIRE_TORCH=1 .venv-torch/bin/python -m pytest -q \
  python-frontend/tests/test_from_torch.py python-frontend/tests/test_modules_vs_torch.py
# The readers' libFuzzer targets (docs/reliability.md), 60 s each.
./scripts/fuzz.sh "${TRAINOPT_FUZZ_SECONDS:-60}"
# The runtime under ASan and UBSan: unit tests and trainopt-run scenarios.
./scripts/sanitize.sh
