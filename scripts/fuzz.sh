#!/usr/bin/env bash
# The libFuzzer targets (fuzz/, docs/reliability.md): the data readers
# (IDX, .npy, .npz), the checkpoint reader, the artifact reader, the
# artifact's plan checks (Program::check) and the ONNX importer. Builds them
# in the sanitizer build (scripts/asan-build.sh: clang,
# -fsanitize=fuzzer,address,undefined), seeds their corpora from small real
# files (the ONNX importer's from ONNX's own operator test models), and
# runs each for SECONDS (default 60; CI runs the default; longer runs grow
# the corpora under build-fuzz/corpus/ for the next). Prints each target's
# executions; exits non-zero when a target finds a crash (libFuzzer leaves
# the input as build-fuzz/crash-*). With --runs N each target runs N
# inputs instead, however long that takes. Several fuzz.sh may run at once
# on different targets (one per core), once the first has built and seeded.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#   scripts/fuzz.sh --runs N [TARGET...]
#   targets: data checkpoint artifact program onnx
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=""
if [ "${1:-}" = --runs ]; then
  [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: --runs expects a positive count" >&2; exit 2; }
  RUNS=$2
  shift 2
  LIMIT=(-runs="$RUNS")
else
  SECONDS_EACH=${1:-60}
  [[ "$SECONDS_EACH" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: SECONDS must be a positive count, got '$SECONDS_EACH'" >&2; exit 2; }
  shift || true
  LIMIT=(-max_total_time="$SECONDS_EACH")
fi
ALL=(data checkpoint artifact program onnx)
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL[@]}")
for t in "${TARGETS[@]}"; do
  [[ " ${ALL[*]} " == *" $t "* ]] || { echo "fuzz.sh: no target '$t' (${ALL[*]})" >&2; exit 2; }
done
BUILD=${TRAINOPT_BUILD_DIR:-$ROOT/build}
ASAN=${TRAINOPT_ASAN_DIR:-$ROOT/build-asan}
OUT=$ROOT/build-fuzz
mkdir -p "$OUT"
"$ROOT/scripts/asan-build.sh" "${TARGETS[@]/#/fuzz_}"

# Seeds: what the readers read in the tests, small.
seeds() {
  local dir=$OUT/seeds
  [ -d "$dir/onnx" ] && return
  rm -rf "$dir" && mkdir -p "$dir"/{data,checkpoint,artifact,program,onnx,work}
  "$ROOT/.venv/bin/python" - "$dir" <<'PY'
import gzip, io, os, sys
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
d = sys.argv[1]
r = np.random.default_rng(0)
def put(name, data):
    open(os.path.join(d, "data", name), "wb").write(data)
buf = io.BytesIO(); np.save(buf, r.random((3, 4)).astype(np.float32)); put("a.npy", buf.getvalue())
buf = io.BytesIO(); np.savez(buf, x=r.random((4, 2)), y=np.arange(4)); put("b.npz", buf.getvalue())
buf = io.BytesIO(); np.savez_compressed(buf, x=r.integers(0, 9, (5, 3)).astype(np.uint8)); put("c.npz", buf.getvalue())
idx = bytes([0, 0, 8, 3]) + b"".join(int(v).to_bytes(4, "big") for v in (2, 3, 3)) + bytes(range(18))
put("d.idx", idx)
put("e.idx.gz", gzip.compress(idx))
# A small model for the artifact and checkpoint seeds.
w = numpy_helper.from_array(r.random((5, 4)).astype(np.float32), "w")
g = helper.make_graph([helper.make_node("Gemm", ["x", "w"], ["logits"], transB=1)], "tiny",
                      [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
                      [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 5])], [w])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]); m.ir_version = 8
onnx.save(m, os.path.join(d, "work", "tiny.onnx"))
onnx.save(m, os.path.join(d, "onnx", "tiny.onnx"))
# ONNX's operator test models (onnx/backend/test/data/node), the small ones.
import glob
tests = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "node")
for i, path in enumerate(sorted(glob.glob(os.path.join(tests, "*", "model.onnx")))):
    if os.path.getsize(path) <= 65536:
        open(os.path.join(d, "onnx", "%04d.onnx" % i), "wb").write(open(path, "rb").read())
np.savez(os.path.join(d, "work", "tiny.npz"), x=r.random((8, 4)).astype(np.float32),
         y=r.integers(0, 5, 8))
PY
  "$BUILD/bin/trainopt-compile" "$dir/work/tiny.onnx" --batch-size 4 --loss=cross_entropy \
    --optimizer=adam -o "$dir/work/tiny.trainopt"
  "$BUILD/bin/trainopt-run" "$dir/work/tiny.trainopt" --data="$dir/work/tiny.npz" --steps 2 \
    --quiet --no-train-eval --checkpoint-dir="$dir/work/ckpt" --checkpoint-every=1
  # Mode 0: the file as it is; mode 1: its payload, behind a valid header.
  for pair in "artifact:$dir/work/tiny.trainopt" "checkpoint:$(ls "$dir"/work/ckpt/*.ckpt | tail -1)"; do
    local target=${pair%%:*} file=${pair#*:}
    { printf '\0'; cat "$file"; } > "$dir/$target/raw"
    { printf '\1'; tail -c +25 "$file"; } > "$dir/$target/payload"
  done
  cp "$dir"/artifact/* "$dir/program/"
}

seeds
status=0
for t in "${TARGETS[@]}"; do
  bin=$ASAN/fuzz/fuzz_$t
  corpus=$OUT/corpus/$t
  mkdir -p "$corpus"
  log=$OUT/$t.log
  # Inputs that once crashed a target stay in its corpus (fuzz/regressions).
  regressions=""
  [ -d "$ROOT/fuzz/regressions/$t" ] && regressions=$ROOT/fuzz/regressions/$t
  set +e
  # allow_user_poisoning=0: see scripts/sanitize.sh.
  start=$(date +%s)
  (cd "$OUT" && ASAN_OPTIONS=allocator_may_return_null=1:detect_leaks=0:allow_user_poisoning=0 \
     exec "$bin" "$corpus" "$OUT/seeds/$t" $regressions "${LIMIT[@]}" -rss_limit_mb=4096 \
     -max_len=65536 -print_final_stats=1 > "$log" 2>&1) &
  pid=$!
  wait $pid
  rc=$?
  set -e
  # The target's own files only: another fuzz.sh may be running.
  rm -rf "/dev/shm/trainopt-fuzz-$pid" "/dev/shm/trainopt-fuzz-onnx-$pid"
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  if [ $rc -eq 0 ]; then
    echo "fuzz $t: $runs executions in $(($(date +%s) - start)) s ($speed/s), no crash"
  else
    echo "fuzz $t: CRASH after $runs executions (exit $rc); see $log and $OUT/crash-*"
    tail -30 "$log"
    status=1
  fi
done
exit $status
