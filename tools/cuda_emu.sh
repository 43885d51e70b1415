#!/usr/bin/env bash
# cuda_emu.sh — the CUDA tests on the CPU emulator (dev/cuda/emu.h), for machines without a GPU: gcc/g++
# only, the CUDA toolkit's headers for the runtime's and cuBLAS's types. What the emulator does and does
# not check: dev/cuda/README.md. On a GPU machine run tools/gpu_verify.sh instead.
#   bash tools/cuda_emu.sh [layers|model|ssim|train|lpips|raster|step|all] [OUTDIR]   (default: all, /tmp/avat3r_emu)
#   layers  model/cuda/layers_cuda.cu (LayerNorm, GELU) vs model/layers.c
#   model   model/cuda (kernels, cuBLAS calls, the whole network) vs model/layers.c and model/avat3r.c
#   ssim    train/cuda/ssim_cuda.cu vs train/loss_image.c (bit-identical expected)
#   train   train/cuda/optim_cuda.cu, loss_cuda.cu (AdamW, gradient norm, L1) vs train/optim.c, train/loss_image.c
#   lpips   train/cuda/lpips_cuda.cu (VGG and AlexNet trunks, forward and backward) vs train/lpips.c
#   raster  render/cuda kernels (host code mirrored in dev/cuda/raster_emu.cpp) vs render/raster.c
#   step    train/cuda/step_cuda.cu (the whole training step, a 20-step run) vs train/step.c
# Every CUDA source goes into one emulator unit (dev/cuda/cuda_emu.cpp) and every CPU oracle into one
# library, compiled once and linked with each test.
set -euo pipefail
cd "$(dirname "$0")/.."
WHAT=${1:-all}
OUT=${2:-/tmp/avat3r_emu}
CUDA_INC=${CUDA_HOME:-/usr/local/cuda}/include
[ -f "$CUDA_INC/cuda_runtime_api.h" ] || { echo "cuda_emu.sh: no CUDA headers in $CUDA_INC (set CUDA_HOME)" >&2; exit 1; }
[ "$(uname -m)" = x86_64 ] || { echo "cuda_emu.sh: the emulator's context switch is x86-64 only" >&2; exit 1; }
CFLAGS="-std=c11 -O2 -fopenmp -D_GNU_SOURCE -fno-math-errno -I. -Icommon -Imodel -Irender -Itrain -Itools -I$CUDA_INC $(pkg-config --cflags openblas)"
CXXFLAGS="-std=c++17 -O2 -D_GNU_SOURCE -DAVAT3R_EMU -I. -Icommon -Imodel -Irender -Itrain -Itools -I$CUDA_INC"

# every .cu file must be in the emulator unit, and the emulator has no static __shared__ arrays
for f in model/cuda/*.cu train/cuda/*.cu; do
  grep -q "#include \"../../$f\"" dev/cuda/cuda_emu.cpp ||
    { echo "cuda_emu.sh: $f is not included in dev/cuda/cuda_emu.cpp" >&2; exit 1; }
done
if grep -n "^[^/]*__shared__" model/cuda/*.cu model/cuda/*.h train/cuda/*.cu train/cuda/*.h render/cuda/*.cuh |
   grep -v "extern __shared__ float smem\[\]"; then
  echo "cuda_emu.sh: only 'extern __shared__ float smem[];' runs on the emulator (model/cuda/launch.h)" >&2; exit 1
fi

CPU_SRC="model/layers.c model/avat3r.c model/params.c model/model_config.c model/checkpoint.c render/raster.c train/loss_image.c
  train/optim.c train/step.c train/lpips.c train/lpips_weights.c train/train_config.c tools/batch_random.c
  tools/scene_random.c common/rng.c common/util.c common/log.c common/timer.c common/config.c common/atb.c"
LIB=$OUT/lib
BUILT=0
build_lib() {
  [ $BUILT = 1 ] && return 0
  rm -rf "$LIB" && mkdir -p "$LIB"
  for f in $CPU_SRC; do gcc $CFLAGS -c "$f" -o "$LIB/$(echo "$f" | tr / _).o"; done
  g++ $CXXFLAGS -c dev/cuda/cuda_emu.cpp -o "$LIB/cuda_emu.o"
  BUILT=1
}
# run TEST_C [ARGS...]: that test linked with the library, run with one OpenMP thread (the CPU oracles'
# threads would only compete with the emulator for the cores)
run() {
  build_lib
  local t=$1 bin=$OUT/$(basename "$1" .c)
  shift
  gcc $CFLAGS -c "$t" -o "$bin.o"
  g++ "$LIB"/*.o "$bin.o" -fopenmp $(pkg-config --libs openblas) -lz -lm -o "$bin"
  OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} "$bin" "$@"
}
run_layers() { echo "== layers (model/cuda/layers_cuda.cu kernels on the emulator)"; run tests/cuda/test_layers_cuda.c; }
run_model() { echo "== model (model/cuda on the emulator)"; run tests/cuda/test_model_cuda.c; }
run_ssim() { echo "== ssim (train/cuda/ssim_cuda.cu on the emulator)"; run tests/cuda/test_ssim_cuda.c; }
run_train() { echo "== train (train/cuda/optim_cuda.cu, loss_cuda.cu on the emulator)"; run tests/cuda/test_train_cuda.c; }
run_lpips() { echo "== lpips (train/cuda/lpips_cuda.cu on the emulator)"; run tests/cuda/test_lpips_cuda.c; }
run_raster() { echo "== raster (render/cuda kernels on the emulator; about 90 s on 2 cores)"; run tests/cuda/test_raster_cuda.c; }
run_step() { echo "== step (train/cuda/step_cuda.cu on the emulator: the training step vs train/step.c)"; run tests/cuda/test_step_cuda.c; }
case $WHAT in
  layers) run_layers ;;
  model) run_model ;;
  ssim) run_ssim ;;
  train) run_train ;;
  lpips) run_lpips ;;
  raster) run_raster ;;
  step) run_step ;;
  all) run_layers; run_model; run_ssim; run_train; run_lpips; run_step; run_raster ;;
  *) echo "usage: bash tools/cuda_emu.sh [layers|model|ssim|train|lpips|raster|step|all] [OUTDIR]" >&2; exit 2 ;;
esac
