#!/usr/bin/env bash
# gpu_verify.sh — build and run the CUDA kernel tests on a GPU machine that has nvcc and gcc but none of
# our Debian libraries (docs/gpu-verification.md). OpenBLAS for the layers' CPU oracle comes from .deb
# files in .debs/ (apt-get download libopenblas0-openmp libopenblas-openmp-dev libgfortran5 libgomp1),
# unpacked into a private folder, never into /. The rasterizer needs no .deb (its oracle is
# render/raster.c with gcc's own OpenMP), nor does the optimizer and loss test (train/optim.c,
# train/loss_image.c).
# The training step also needs zlib's header (model/checkpoint.c): add zlib1g-dev to the download; the
# library itself is the machine's own libz.so.1.
# usage: bash tools/gpu_verify.sh [OUTDIR] [all|layers|raster|train|model|ssim|lpips|step|bench|lab]
#   all     layers + raster + train + model + ssim + lpips + step (default)
#   layers  model/cuda kernels vs model/layers.c, compute-sanitizer memcheck + racecheck
#   raster  render/cuda rasterizer vs render/raster.c, compute-sanitizer memcheck + racecheck + initcheck
#   train   train/cuda AdamW, gradient norm, L1 forward/backward vs train/optim.c and train/loss_image.c,
#           compute-sanitizer memcheck + racecheck (no .deb needed)
#   model   model/cuda (attention, cuBLAS matmuls, per-pixel layers, the whole network forward and
#           backward) vs model/layers.c and model/avat3r.c, then at configs/tiny.cfg and mid.cfg; compute-sanitizer
#           memcheck + racecheck (OpenBLAS from .debs, as layers)
#   ssim    train/cuda/ssim_cuda.cu vs train/loss_image.c, bit-identical expected; memcheck + racecheck
#   lpips   train/cuda/lpips_cuda.cu (VGG, AlexNet) vs train/lpips.c; memcheck + racecheck (.debs as step)
#   step    train/cuda/step_cuda.cu, the whole training step (network, rasterizer, L1 + SSIM, AdamW) vs
#           train/step.c: first step, then a 20-step loss curve; small config, configs/tiny.cfg and mid.cfg;
#           compute-sanitizer memcheck (OpenBLAS and zlib1g-dev from .debs)
#   bench   rasterizer at the paper's scale (1 M Gaussians -> 8 views of 512²): CPU check + forward and
#           backward ms
#   lab     dev/cuda/raster_forward.cu and dev/cuda/attention_forward.cu, versions 1 and 2
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/avat3r_gpu}
WHAT=${2:-all}
CUDA=${CUDA_HOME:-/usr/local/cuda}
ARCH=${GPU_ARCH:-90}
NVCC="$CUDA/bin/nvcc"
GENCODE="-gencode=arch=compute_$ARCH,code=sm_$ARCH"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$NVCC" --version | tail -1
CS=""
if command -v compute-sanitizer >/dev/null || [ -x "$CUDA/bin/compute-sanitizer" ]; then
  CS=$(command -v compute-sanitizer || echo "$CUDA/bin/compute-sanitizer")
fi

# OpenBLAS (the CPU oracle of the network's tests) from the .deb files, unpacked once into $OUT/debroot:
# sets INC (headers), BLASDIR (libopenblas) and LIB (the runtime path, with libgfortran and libgomp)
openblas() {
  local OB=$OUT/debroot
  if [ ! -d "$OB/usr" ]; then
    mkdir -p "$OB"
    for f in .debs/*.deb; do dpkg -x "$f" "$OB"; done
  fi
  INC=$OB/usr/include/x86_64-linux-gnu/openblas-openmp
  BLASDIR=$OB/usr/lib/x86_64-linux-gnu/openblas-openmp
  LIB=$BLASDIR:$OB/usr/lib/x86_64-linux-gnu
}

layers() {
  openblas
  for f in model/layers.c common/rng.c common/util.c common/log.c tests/cuda/test_layers_cuda.c; do
    gcc -std=c11 -O2 -fopenmp -D_GNU_SOURCE -fno-math-errno -I. -Icommon -Imodel -I"$INC" -I"$CUDA/include" \
        -c "$f" -o "$OUT/$(basename "$f").o"
  done
  "$NVCC" -O3 $GENCODE -c model/cuda/layers_cuda.cu -o "$OUT/layers_cuda.o"
  "$NVCC" $GENCODE "$OUT"/*.o -L"$BLASDIR" -lopenblas -lgomp -lm -o "$OUT/avat3r_cuda_tests"
  LD_LIBRARY_PATH=$LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} "$OUT/avat3r_cuda_tests"
  if [ -n "$CS" ]; then
    LD_LIBRARY_PATH=$LIB "$CS" --tool memcheck --leak-check full "$OUT/avat3r_cuda_tests" | tail -4
    LD_LIBRARY_PATH=$LIB "$CS" --tool racecheck "$OUT/avat3r_cuda_tests" | tail -3
  fi
}

# the rasterizer test: CPU oracle and scenes with gcc, the kernels with nvcc (--fmad=false, as in
# render/cuda/meson.build), linked by nvcc; objects in their own folder so the layers' *.o glob never
# picks them up
RT=$OUT/raster
raster_build() {
  mkdir -p "$RT"
  for f in render/raster.c tools/scene_random.c tools/batch_random.c common/atb.c common/rng.c common/util.c \
           common/log.c common/timer.c tests/cuda/test_raster_cuda.c; do
    gcc -std=c11 -O2 -fopenmp -D_GNU_SOURCE -fno-math-errno -I. -Icommon -Imodel -Irender -Itools \
        -I"$CUDA/include" -c "$f" -o "$RT/$(basename "$f").o"
  done
  "$NVCC" -O3 --fmad=false $GENCODE -I. -c render/cuda/raster_cuda.cu -o "$RT/raster_cuda.o"
  "$NVCC" $GENCODE "$RT"/*.o -lgomp -lm -o "$RT/avat3r_cuda_raster_tests"
}

# sanitize BIN DIR TOOL...: BIN under compute-sanitizer's tools (logs in DIR); 1 when one reports an error.
# initcheck is reported, not fatal: it may flag reads inside CUB's scratch that are not ours.
sanitize() {
  local bin=$1 dir=$2 st=0
  shift 2
  [ -n "$CS" ] || return 0
  for tool in "$@"; do
    local extra=""
    [ $tool = memcheck ] && extra="--leak-check full"
    echo "== compute-sanitizer $tool (full log: $dir/$tool.log)"
    "$CS" --tool $tool $extra --error-exitcode 3 "$bin" > "$dir/$tool.log" 2>&1 ||
      { echo "compute-sanitizer $tool: exit $? (see the log)"; [ $tool = initcheck ] || st=1; }
    grep -E "ERROR SUMMARY|RACECHECK SUMMARY|LEAK SUMMARY|checks passed" "$dir/$tool.log" || tail -5 "$dir/$tool.log"
  done
  return $st
}

raster() {
  raster_build
  local st=0
  "$RT/avat3r_cuda_raster_tests" || st=1
  sanitize "$RT/avat3r_cuda_raster_tests" "$RT" memcheck racecheck initcheck || st=1
  return $st
}

# the optimizer and L1 test: CPU oracle (train/optim.c, train/loss_image.c in float, model/params.c,
# model/model_config.c, common/) with gcc, the kernels with nvcc (--fmad=false, as in
# train/cuda/meson.build: AdamW and the L1 gradient must be bit-identical), linked by nvcc; own folder
TT=$OUT/train
train_build() {
  mkdir -p "$TT"
  for f in train/optim.c train/loss_image.c model/params.c model/model_config.c common/config.c common/rng.c \
           common/util.c common/log.c tests/cuda/test_train_cuda.c; do
    gcc -std=c11 -O2 -fopenmp -D_GNU_SOURCE -fno-math-errno -I. -Icommon -Imodel -Itrain \
        -I"$CUDA/include" -c "$f" -o "$TT/$(basename "$f").o"
  done
  for f in optim_cuda loss_cuda; do
    "$NVCC" -O3 --fmad=false $GENCODE -I. -c train/cuda/$f.cu -o "$TT/$f.o"
  done
  "$NVCC" $GENCODE "$TT"/*.o -lgomp -lm -o "$TT/avat3r_cuda_train_tests"
}

train() {
  train_build
  local st=0
  "$TT/avat3r_cuda_train_tests" || st=1
  sanitize "$TT/avat3r_cuda_train_tests" "$TT" memcheck racecheck || st=1
  return $st
}

# the network: CPU oracle with gcc and OpenBLAS from .debs (as layers), model/cuda with nvcc, cuBLAS
MT=$OUT/model
model() {
  blas_test "$MT" avat3r_cuda_model_tests "model/layers.c model/avat3r.c model/params.c model/model_config.c
    tools/batch_random.c $COMMON_C tests/cuda/test_model_cuda.c" "model/cuda/layers_cuda.cu
    model/cuda/attention_cuda.cu model/cuda/matmul_cuda.cu model/cuda/pixels_cuda.cu model/cuda/avat3r_cuda.cu" ""
  local st=0
  "$MT/avat3r_cuda_model_tests" configs/tiny.cfg || st=1
  "$MT/avat3r_cuda_model_tests" configs/mid.cfg || st=1   # paper.cfg's shape at 256², 4 layers
  sanitize "$MT/avat3r_cuda_model_tests" "$MT" memcheck racecheck || st=1
  return $st
}

# SSIM: CPU oracle train/loss_image.c (no .deb), the kernels with --fmad=false (bit-identical expected)
ST=$OUT/ssim
ssim() {
  mkdir -p "$ST"
  for f in train/loss_image.c common/rng.c common/util.c common/log.c tests/cuda/test_ssim_cuda.c; do
    gcc -std=c11 -O2 -fopenmp -D_GNU_SOURCE -fno-math-errno -I. -Icommon -Imodel -Itrain -I"$CUDA/include" \
        -c "$f" -o "$ST/$(basename "$f").o"
  done
  "$NVCC" -O3 --fmad=false $GENCODE -I. -c train/cuda/ssim_cuda.cu -o "$ST/ssim_cuda.o"
  "$NVCC" $GENCODE "$ST"/*.o -lgomp -lm -o "$ST/avat3r_cuda_ssim_tests"
  local st=0
  "$ST/avat3r_cuda_ssim_tests" || st=1
  sanitize "$ST/avat3r_cuda_ssim_tests" "$ST" memcheck racecheck || st=1
  return $st
}

# blas_test DIR NAME C_FILES CU_FILES CU_EXACT_FILES: a test whose CPU oracle needs OpenBLAS and zlib's
# header (from .debs; the machine's own libz.so.1): the C files with gcc, the .cu files with nvcc (CU_EXACT
# with --fmad=false, as meson builds them), linked with cuBLAS into DIR/NAME; LD_LIBRARY_PATH set to run it
blas_test() {
  local dir=$1 name=$2 I="-I. -Icommon -Imodel -Irender -Itrain -Itools" f
  openblas
  mkdir -p "$dir"
  for f in $3; do
    gcc -std=c11 -O2 -fopenmp -D_GNU_SOURCE -fno-math-errno $I -I"$INC" -I"$OUT/debroot/usr/include" \
        -I"$CUDA/include" -c "$f" -o "$dir/$(echo "$f" | tr / _).o"
  done
  for f in $4; do "$NVCC" -O3 $GENCODE $I -c "$f" -o "$dir/$(echo "$f" | tr / _).o"; done
  for f in $5; do "$NVCC" -O3 --fmad=false $GENCODE $I -c "$f" -o "$dir/$(echo "$f" | tr / _).o"; done
  "$NVCC" $GENCODE "$dir"/*.o -L"$BLASDIR" -lopenblas -l:libz.so.1 -lcublas -lgomp -lm -o "$dir/$name"
  export LD_LIBRARY_PATH=$LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
}
COMMON_C="common/config.c common/atb.c common/rng.c common/util.c common/log.c common/timer.c"

# LPIPS: the CPU oracle train/lpips.c (lpips_weights.c's CRC is in model/checkpoint.c), the kernels, and
# matmul_cuda for the convolutions
LT=$OUT/lpips
lpips() {
  blas_test "$LT" avat3r_cuda_lpips_tests "train/lpips.c train/lpips_weights.c model/checkpoint.c model/params.c
    model/model_config.c $COMMON_C tests/cuda/test_lpips_cuda.c" model/cuda/matmul_cuda.cu train/cuda/lpips_cuda.cu
  local st=0
  "$LT/avat3r_cuda_lpips_tests" || st=1
  sanitize "$LT/avat3r_cuda_lpips_tests" "$LT" memcheck racecheck || st=1
  return $st
}

# the training step: the CPU step and everything under it (train/step.c pulls in LPIPS), every CUDA source
# of the step
PT=$OUT/step
step() {
  blas_test "$PT" avat3r_cuda_step_tests "model/layers.c model/avat3r.c model/params.c model/model_config.c
    model/checkpoint.c render/raster.c train/loss_image.c train/lpips.c train/lpips_weights.c train/optim.c
    train/train_config.c train/step.c tools/batch_random.c $COMMON_C tests/cuda/test_step_cuda.c" \
    "model/cuda/layers_cuda.cu model/cuda/attention_cuda.cu model/cuda/matmul_cuda.cu model/cuda/pixels_cuda.cu
    model/cuda/avat3r_cuda.cu train/cuda/step_cuda.cu" \
    "render/cuda/raster_cuda.cu train/cuda/optim_cuda.cu train/cuda/loss_cuda.cu train/cuda/ssim_cuda.cu
    train/cuda/lpips_cuda.cu"
  local st=0
  "$PT/avat3r_cuda_step_tests" || st=1
  "$PT/avat3r_cuda_step_tests" configs/tiny.cfg || st=1
  "$PT/avat3r_cuda_step_tests" configs/mid.cfg || st=1   # paper.cfg's shape at 256², 4 layers
  sanitize "$PT/avat3r_cuda_step_tests" "$PT" memcheck || st=1
  return $st
}

bench() {
  raster_build
  "$RT/avat3r_cuda_raster_tests" --bench "${BENCH_REPS:-10}"
}

lab() {
  "$NVCC" -O3 --fmad=false $GENCODE dev/cuda/raster_forward.cu -o "$OUT/raster_forward"
  "$OUT/raster_forward" 1
  "$OUT/raster_forward" 2
  "$NVCC" -O3 --fmad=false $GENCODE dev/cuda/attention_forward.cu -o "$OUT/attention_forward"
  "$OUT/attention_forward" 1 1 12 4096 64 20   # the paper's self-attention (its CPU check takes ~1 min)
  "$OUT/attention_forward" 2 1 12 4096 64 20
}

case "$WHAT" in
  all) layers; raster; train; model; ssim; lpips; step ;;
  layers) layers ;;
  raster) raster ;;
  train) train ;;
  model) model ;;
  ssim) ssim ;;
  lpips) lpips ;;
  step) step ;;
  bench) bench ;;
  lab) lab ;;
  *) echo "usage: bash tools/gpu_verify.sh [OUTDIR] [all|layers|raster|train|model|ssim|lpips|step|bench|lab]" >&2; exit 2 ;;
esac
