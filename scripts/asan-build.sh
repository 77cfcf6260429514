#!/usr/bin/env bash
# The sanitizer build (docs/reliability.md) that scripts/sanitize.sh and
# scripts/fuzz.sh share: the whole project built with clang into
# build-asan/, with AddressSanitizer and UndefinedBehaviorSanitizer
# (undefined behaviour fatal) and libFuzzer's coverage instrumentation
# (-fsanitize=fuzzer-no-link, which tools run with unharmed), at -O1 with
# line tables only for stack traces. Without CUDA. Builds the targets named.
#   scripts/asan-build.sh TARGET...
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ASAN=${TRAINOPT_ASAN_DIR:-$ROOT/build-asan}
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -fsanitize=fuzzer-no-link"
# A tree configured otherwise (an older gcc build) is configured afresh.
grep -qs "TRAINOPT_FUZZERS:BOOL=ON" "$ASAN/CMakeCache.txt" || rm -rf "$ASAN"
cmake -G Ninja -S "$ROOT" -B "$ASAN" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" \
  -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir -DTRAINOPT_ENABLE_CUDA=OFF \
  -DTRAINOPT_FUZZERS=ON -DCMAKE_C_FLAGS="$SAN" -DCMAKE_CXX_FLAGS="$SAN" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DTRAINOPT_TEST_PYTHON="$ROOT/.venv/bin/python" >/dev/null
ninja -C "$ASAN" -j "${TRAINOPT_JOBS:-2}" "$@"
