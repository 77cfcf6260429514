#!/usr/bin/env bash
# Packs everything the GPU checks need into one folder (under 64 MiB) that
# runs on a machine with the NVIDIA driver and CUDA 13 libraries but no
# compiler, MLIR or network (the device machine of the CUDA issue):
#
#   scripts/gpu_bundle.sh BUILD_DIR OUT        (here: compiles, runs the CPU references)
#   OUT/run.sh [RESULTS_DIR]                   (there: every GPU check, a summary)
#
# The checks are those of test/Runtime/CUDA/train-vs-cpu.test and
# test/Unit/cuda-unittests.test, which need lit and trainopt-compile:
# the GPU library against the CPU library's cases; the MLP and the CNN
# (batch 128, Adam) for 50 steps on Fashion-MNIST batches against the CPU
# target's losses (1e-3 relative with TF32, 1e-4 without); CUDA-graph
# replay against plain launches (identical); two runs (identical
# parameters); resume from a checkpoint (identical parameters); and a
# per-command GPU profile of each model; and the same models in mixed
# precision (--amp=bf16, --amp=fp16 with dynamic loss scaling: cuBLASLt
# bf16/f16 GEMMs and cuDNN convolutions with f32 accumulation) against the
# CPU target's AMP losses (3e-2 relative; both round to bf16/fp16, in
# different summation orders) and loss scales (identical).
set -euo pipefail
build=$(realpath "$1"); out=$2
src=$(dirname "$(dirname "$(realpath "$0")")")
rm -rf "$out"; mkdir -p "$out/bin" "$out/lib" "$out/work"
out=$(realpath "$out")
cp "$build/bin/trainopt-run" "$build/unittests/TrainoptCUDALibraryTests" "$out/bin/"
for exe in "$out/bin/"*; do
  ldd "$exe" | awk '/=> \//{print $3}'
done | sort -u | while read -r lib; do
  case $(basename "$lib") in
    libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|libstdc++.so*|libgcc_s.so*|ld-linux*) ;;
    *) cp -L "$lib" "$out/lib/" ;;
  esac
done
cp "$src/scripts/compare_metrics.py" "$src/test/Runtime/Inputs/same_npz.py" "$out/"
# 6400 Fashion-MNIST training samples (50 batches of 128) as .npy.
/usr/bin/python3 - "$out" <<'PY'
import gzip, sys
import numpy as np
root = "/usr/share/datasets/fashion-mnist"
with gzip.open(f"{root}/train-images-idx3-ubyte.gz") as f:
    x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)[:6400]
with gzip.open(f"{root}/train-labels-idx1-ubyte.gz") as f:
    y = np.frombuffer(f.read(), np.uint8, offset=8)[:6400].astype(np.int64)
np.save(f"{sys.argv[1]}/x.npy", x)
np.save(f"{sys.argv[1]}/y.npy", y)
PY
python3 "$src/scripts/gen_models.py" "$out/work" --only mlp > /dev/null
python3 "$src/scripts/gen_models.py" "$out/work" --only cnn > /dev/null
for m in mlp cnn; do
  flags=(--batch-size 128 --loss=cross_entropy --optimizer=adam --lr=1e-3)
  "$build/bin/trainopt-compile" "$out/work/$m.onnx" --target=cuda "${flags[@]}" -o "$out/$m-cuda.trainopt"
  "$build/bin/trainopt-compile" "$out/work/$m.onnx" --target=cpu "${flags[@]}" -o "$out/work/$m-cpu.trainopt"
  "$build/bin/trainopt-run" "$out/work/$m-cpu.trainopt" --data="$out/x.npy,$out/y.npy" --steps 50 \
    --seed 2 --quiet --no-train-eval --metrics="$out/$m-cpu.jsonl"
  for amp in bf16 fp16; do
    "$build/bin/trainopt-compile" "$out/work/$m.onnx" --target=cuda "${flags[@]}" --amp=$amp \
      -o "$out/$m-$amp-cuda.trainopt"
    "$build/bin/trainopt-compile" "$out/work/$m.onnx" --target=cpu "${flags[@]}" --amp=$amp \
      -o "$out/work/$m-$amp-cpu.trainopt"
    "$build/bin/trainopt-run" "$out/work/$m-$amp-cpu.trainopt" --data="$out/x.npy,$out/y.npy" \
      --steps 50 --seed 2 --quiet --no-train-eval --metrics="$out/$m-$amp-cpu.jsonl"
  done
done
rm -rf "$out/work"
cat > "$out/run.sh" <<'RUN'
#!/usr/bin/env bash
# The GPU checks (scripts/gpu_bundle.sh). Exit status: the number of failed checks.
B=$(dirname "$(realpath "$0")")
R=${1:-$B/results}; mkdir -p "$R"
export LD_LIBRARY_PATH=$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
failed=0
check() { # name, command...
  local name=$1; shift
  if "$@" > "$R/$name.log" 2>&1; then echo "PASS $name"; else echo "FAIL $name (see $name.log)"; tail -5 "$R/$name.log"; failed=$((failed + 1)); fi
}
run() { "$B/bin/trainopt-run" "$@" --data="$B/x.npy,$B/y.npy" --seed 2 --quiet --no-train-eval; }
check cuda-info "$B/bin/trainopt-run" --cuda-info
cat "$R/cuda-info.log"
# Every case must run (a skipped one means no GPU was found).
check library-tests sh -c "'$B/bin/TrainoptCUDALibraryTests' --gtest_brief=1 && ! '$B/bin/TrainoptCUDALibraryTests' --gtest_brief=1 2>&1 | grep -q SKIPPED"
for m in mlp cnn; do
  A=$B/$m-cuda.trainopt
  check $m-train run "$A" --steps 50 --metrics="$R/$m-cuda.jsonl" --save-params="$R/$m-cuda.npz"
  check $m-again run "$A" --steps 50 --metrics="$R/$m-again.jsonl" --save-params="$R/$m-again.npz"
  check $m-nograph run "$A" --steps 50 --metrics="$R/$m-nograph.jsonl" --no-cuda-graph
  check $m-fp32 run "$A" --steps 50 --metrics="$R/$m-fp32.jsonl" --no-tf32
  check $m-vs-cpu-tf32 python3 "$B/compare_metrics.py" "$R/$m-cuda.jsonl" "$B/$m-cpu.jsonl" --rtol 1e-3
  check $m-vs-cpu-fp32 python3 "$B/compare_metrics.py" "$R/$m-fp32.jsonl" "$B/$m-cpu.jsonl" --rtol 1e-4
  check $m-graph-equals-plain python3 "$B/compare_metrics.py" "$R/$m-nograph.jsonl" "$R/$m-cuda.jsonl" --identical
  check $m-deterministic sh -c "python3 '$B/same_npz.py' '$R/$m-cuda.npz' '$R/$m-again.npz' | grep -q '^identical'"
  rm -rf "$R/ckpt-$m"
  check $m-checkpoint run "$A" --steps 20 --checkpoint-dir="$R/ckpt-$m"
  check $m-resume run "$A" --steps 50 --checkpoint-dir="$R/ckpt-$m" --resume --save-params="$R/$m-resumed.npz"
  check $m-resume-equals sh -c "python3 '$B/same_npz.py' '$R/$m-resumed.npz' '$R/$m-cuda.npz' | grep -q '^identical'"
  check $m-profile run "$A" --steps 20 --profile
  for f in "$R/$m-vs-cpu-tf32.log" "$R/$m-vs-cpu-fp32.log"; do echo "$(basename "$f" .log): $(head -1 "$f")"; done
  for amp in bf16 fp16; do
    check $m-$amp-train run "$B/$m-$amp-cuda.trainopt" --steps 50 --metrics="$R/$m-$amp-cuda.jsonl"
    check $m-$amp-vs-cpu python3 "$B/compare_metrics.py" "$R/$m-$amp-cuda.jsonl" "$B/$m-$amp-cpu.jsonl" --rtol 3e-2
    echo "$m-$amp-vs-cpu: $(head -1 "$R/$m-$amp-vs-cpu.log")"
  done
  check $m-fp16-scales sh -c "grep -o '\"loss_scale\": [0-9.e+]*, \"skipped\": [01]' '$R/$m-fp16-cuda.jsonl' > '$R/$m-fp16-scales.cuda' && grep -o '\"loss_scale\": [0-9.e+]*, \"skipped\": [01]' '$B/$m-fp16-cpu.jsonl' | cmp - '$R/$m-fp16-scales.cuda'"
done
echo "$failed failed"
exit $failed
RUN
chmod +x "$out/run.sh"
du -sh "$out"; ls "$out" "$out/lib"
