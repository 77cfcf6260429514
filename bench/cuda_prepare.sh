#!/usr/bin/env bash
# Prepares a CUDA benchmark bundle on the build machine (which has the
# compiler; the GPU machine has none): the models exported from PyTorch
# (bench/cuda_models.py), their cuda artifacts and cold compile times, the
# CPU target's losses on the same synthetic batches (the correctness
# reference), and trainopt-run with the non-system libraries it needs.
#
#   bench/cuda_prepare.sh BUILD_DIR OUT MODEL...      MODEL: mlp1024 cnn resnet18
#
# OUT must travel to the GPU machine under 64 MiB: the ResNet-18 artifact
# alone is about 51 MB, so bundle it apart from the two small models, e.g.
#   bench/cuda_prepare.sh build .bench-small mlp1024 cnn
#   bench/cuda_prepare.sh build .bench-resnet resnet18
# then, there: python3 bench/cuda_step_time.py --bundle .bench-small
#
# With TRAINOPT_AMP=bf16 (or fp16) every artifact, and the CPU reference, is
# compiled with --amp=bf16, and the bundle says so (OUT/amp): the GPU side
# then runs PyTorch under torch.autocast("cuda", dtype=torch.bfloat16), e.g.
#   TRAINOPT_AMP=bf16 bench/cuda_prepare.sh build .bench-resnet-bf16 resnet18
set -euo pipefail
build=$(realpath "$1"); out=$2; shift 2
[ $# -gt 0 ] || { echo "usage: $0 BUILD_DIR OUT MODEL..." >&2; exit 2; }
here=$(dirname "$(realpath "$0")")
python=${TRAINOPT_TORCH_PYTHON:-/usr/bin/python3}
rm -rf "$out"; mkdir -p "$out/bin" "$out/lib" "$out/work"
declare -A batch=([mlp1024]=256 [cnn]=128 [resnet18]=128)
declare -A flags=([mlp1024]="--optimizer=sgd --lr=0.05 --momentum=0.9"
                  [cnn]="--optimizer=adam --lr=1e-3"
                  [resnet18]="--optimizer=sgd --lr=0.1 --momentum=0.9 --weight-decay=1e-4")
# CPU reference steps (ResNet-18 at batch 128 takes seconds a step here).
declare -A refsteps=([mlp1024]=50 [cnn]=50 [resnet18]=5)
echo "{" > "$out/compile.json"
first=1
for m in "$@"; do
  [ -n "${batch[$m]:-}" ] || { echo "unknown model '$m'" >&2; exit 2; }
  "$python" "$here/cuda_models.py" "$out/work" --only "$m"
  cp "$out/work/$m-weights.json" "$out/"
  "$python" "$here/cuda_models.py" --data "$out/work" --only "$m"
  common=(--batch-size "${batch[$m]}" --loss=cross_entropy ${flags[$m]}
          ${TRAINOPT_AMP:+--amp=$TRAINOPT_AMP})
  start=$(date +%s.%N)
  "$build/bin/trainopt-compile" "$out/work/$m.onnx" --target=cuda "${common[@]}" \
    -o "$out/$m-cuda.trainopt" --report="$out/$m-cuda-report.json"
  end=$(date +%s.%N)
  "$build/bin/trainopt-compile" "$out/work/$m.onnx" --target=cpu "${common[@]}" \
    -o "$out/work/$m-cpu.trainopt"
  [ $first = 1 ] || echo "," >> "$out/compile.json"; first=0
  awk -v m="$m" -v s="$start" -v e="$end" 'BEGIN{printf "\"%s\": %.3f", m, e - s}' >> "$out/compile.json"
  "$build/bin/trainopt-run" "$out/work/$m-cpu.trainopt" \
    --data="$out/work/$m-x.npy,$out/work/$m-y.npy" --steps "${refsteps[$m]}" \
    --no-shuffle --quiet --no-train-eval --metrics="$out/$m-cpu.jsonl"
done
echo "}" >> "$out/compile.json"
[ -z "${TRAINOPT_AMP:-}" ] || echo "$TRAINOPT_AMP" > "$out/amp"
cp "$build/bin/trainopt-run" "$out/bin/"
# Every library trainopt-run loads that is not part of glibc or the C++
# runtime (the GPU machine has its own of those).
ldd "$build/bin/trainopt-run" | awk '/=> \//{print $3}' | while read -r lib; do
  case $(basename "$lib") in
    libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|libstdc++.so*|libgcc_s.so*|ld-linux*) ;;
    *) cp -L "$lib" "$out/lib/" ;;
  esac
done
rm -rf "$out/work"
du -sh "$out"; ls -la "$out" "$out/lib"
