#!/usr/bin/env bash
# Every test suite: set up, build, then run the lit suite (check-trainopt).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# The setup installed the datasets; tests that read them must not skip.
export TRAINOPT_REQUIRE_DATASETS=1
ninja -C "${TRAINOPT_BUILD_DIR:-build}" -j "${TRAINOPT_JOBS:-2}" check-trainopt
