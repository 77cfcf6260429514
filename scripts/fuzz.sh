#!/usr/bin/env bash
# libFuzzer targets of the runtime's readers (fuzz/, docs/reliability.md):
# builds them with clang (-fsanitize=fuzzer,address,undefined) into
# build-fuzz/, seeds their corpora from small real files, and runs each for
# SECONDS (default 60; CI runs the default, longer runs grow the corpora
# under build-fuzz/corpus/ for the next). Prints each target's executions;
# exits non-zero when a target finds a crash (libFuzzer leaves the input
# as build-fuzz/crash-*).
#   scripts/fuzz.sh [SECONDS] [TARGET...]   targets: data checkpoint artifact
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECONDS_EACH=${1:-60}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(data checkpoint artifact)
BUILD=${TRAINOPT_BUILD_DIR:-$ROOT/build}
OUT=$ROOT/build-fuzz
mkdir -p "$OUT"
CXX=${TRAINOPT_FUZZ_CXX:-clang++}
FLAGS=(-std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=undefined -I"$ROOT/include" -I"$BUILD/include")
declare -A SOURCES=(
  [data]="fuzz/fuzz_data.cpp lib/Runtime/Data/Data.cpp"
  [checkpoint]="fuzz/fuzz_checkpoint.cpp lib/Runtime/Checkpoint/Checkpoint.cpp lib/Runtime/Data/Data.cpp lib/Runtime/Data/Sharding.cpp"
  [artifact]="fuzz/fuzz_artifact.cpp lib/Runtime/Artifact/ArtifactFile.cpp $BUILD/include/trainopt/Artifact/artifact.pb.cc"
)
declare -A LIBS=([data]="-lz" [checkpoint]="-lz" [artifact]="-lz -lprotobuf")

# Seeds: what the readers read in the tests, small.
seeds() {
  local dir=$OUT/seeds
  [ -d "$dir/artifact" ] && return
  rm -rf "$dir" && mkdir -p "$dir"/{data,checkpoint,artifact,work}
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
}

seeds
status=0
for t in "${TARGETS[@]}"; do
  [ -n "${SOURCES[$t]:-}" ] || { echo "fuzz.sh: no target '$t' (data, checkpoint, artifact)" >&2; exit 2; }
  bin=$OUT/fuzz_$t
  # shellcheck disable=SC2086
  "$CXX" "${FLAGS[@]}" ${SOURCES[$t]} ${LIBS[$t]} -o "$bin"
  corpus=$OUT/corpus/$t
  mkdir -p "$corpus"
  log=$OUT/$t.log
  # Inputs that once crashed a target stay in its corpus (fuzz/regressions).
  regressions=""
  [ -d "$ROOT/fuzz/regressions/$t" ] && regressions=$ROOT/fuzz/regressions/$t
  set +e
  (cd "$OUT" && ASAN_OPTIONS=allocator_may_return_null=1:detect_leaks=0 \
     "$bin" "$corpus" "$OUT/seeds/$t" $regressions -max_total_time="$SECONDS_EACH" -rss_limit_mb=4096 \
     -max_len=65536 -print_final_stats=1 > "$log" 2>&1)
  rc=$?
  set -e
  rm -f /dev/shm/trainopt-fuzz-*
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  if [ $rc -eq 0 ]; then
    echo "fuzz $t: $runs executions in ${SECONDS_EACH} s ($speed/s), no crash"
  else
    echo "fuzz $t: CRASH after $runs executions (exit $rc); see $log and $OUT/crash-*"
    tail -30 "$log"
    status=1
  fi
done
exit $status
