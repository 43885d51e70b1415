#!/usr/bin/env bash
# cuda_emu.sh — the CUDA tests on the CPU emulator (dev/cuda/emu.h), for machines without a GPU: gcc/g++
# only, the CUDA toolkit's headers for the runtime's and cuBLAS's types. What the emulator does and does
# not check: dev/cuda/README.md. On a GPU machine run tools/gpu_verify.sh instead.
#   bash tools/cuda_emu.sh [raster|layers|model|ssim|all] [OUTDIR]     (default: all, /tmp/avat3r_emu)
#   raster  render/cuda kernels (host code mirrored in dev/cuda/raster_emu.cpp) vs render/raster.c
#   layers  model/cuda/layers_cuda.cu (LayerNorm, GELU) vs model/layers.c
#   model   model/cuda (kernels, cuBLAS calls, the whole network) vs model/layers.c and model/avat3r.c
#   ssim    train/cuda/ssim_cuda.cu vs train/loss_image.c (bit-identical expected)
set -euo pipefail
cd "$(dirname "$0")/.."
WHAT=${1:-all}
OUT=${2:-/tmp/avat3r_emu}
CUDA_INC=${CUDA_HOME:-/usr/local/cuda}/include
[ -f "$CUDA_INC/cuda_runtime_api.h" ] || { echo "cuda_emu.sh: no CUDA headers in $CUDA_INC (set CUDA_HOME)" >&2; exit 1; }
[ "$(uname -m)" = x86_64 ] || { echo "cuda_emu.sh: the emulator's context switch is x86-64 only" >&2; exit 1; }
CFLAGS="-std=c11 -O2 -fopenmp -D_GNU_SOURCE -fno-math-errno -I. -Icommon -Imodel -Irender -Itrain -Itools -I$CUDA_INC"
CXXFLAGS="-std=c++17 -O2 -D_GNU_SOURCE -DAVAT3R_EMU -I. -I$CUDA_INC"

# objs NAME EMU_CPP C_FILES...: the emulator translation unit and the C files into $OUT/NAME/lib
objs() {
  local dir=$OUT/$1/lib emu=$2
  shift 2
  rm -rf "$dir" && mkdir -p "$dir"
  for f in "$@"; do gcc $CFLAGS $(pkg-config --cflags openblas) -c "$f" -o "$dir/$(basename "$f").o"; done
  g++ $CXXFLAGS -c "$emu" -o "$dir/emu.o"
}
# tests NAME TEST_C: that test linked with $OUT/NAME/lib into $OUT/NAME/<test name>; prints the path
tests() {
  local dir=$OUT/$1 bin=$OUT/$1/$(basename "$2" .c)
  gcc $CFLAGS $(pkg-config --cflags openblas) -c "$2" -o "$bin.o"
  g++ "$dir"/lib/*.o "$bin.o" -fopenmp $(pkg-config --libs openblas) -lm -o "$bin"
  echo "$bin"
}

COMMON="common/rng.c common/util.c common/log.c common/timer.c common/config.c common/atb.c"
run_raster() {
  echo "== raster (render/cuda kernels on the emulator; about 90 s on 2 cores)"
  objs raster dev/cuda/raster_emu.cpp render/raster.c tools/scene_random.c tools/batch_random.c model/params.c \
    model/model_config.c $COMMON
  "$(tests raster tests/cuda/test_raster_cuda.c)"
}
# model/cuda and train/cuda/ssim_cuda.cu with their CPU oracles: built once, shared by three tests
MODEL_BUILT=0
model_objs() {
  [ $MODEL_BUILT = 1 ] && return 0
  objs model dev/cuda/model_emu.cpp model/layers.c model/avat3r.c model/params.c model/model_config.c \
    train/loss_image.c tools/batch_random.c $COMMON
  MODEL_BUILT=1
}
run_layers() {
  echo "== layers (model/cuda/layers_cuda.cu kernels on the emulator)"
  model_objs
  OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} "$(tests model tests/cuda/test_layers_cuda.c)"
}
run_model() {
  echo "== model (model/cuda on the emulator)"
  model_objs
  OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} "$(tests model tests/cuda/test_model_cuda.c)"
}
run_ssim() {
  echo "== ssim (train/cuda/ssim_cuda.cu on the emulator)"
  model_objs
  "$(tests model tests/cuda/test_ssim_cuda.c)"
}
case $WHAT in
  raster) run_raster ;;
  model) run_model ;;
  ssim) run_ssim ;;
  layers) run_layers ;;
  all) run_layers; run_model; run_ssim; run_raster ;;
  *) echo "usage: bash tools/cuda_emu.sh [raster|layers|model|ssim|all] [OUTDIR]" >&2; exit 2 ;;
esac
