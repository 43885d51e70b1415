#!/usr/bin/env bash
# gpu_verify.sh — build and run the CUDA kernel tests on a GPU machine that has nvcc and gcc but none of
# our Debian libraries (docs/gpu-verification.md). OpenBLAS for the CPU oracle comes from .deb files in
# .debs/ (apt-get download libopenblas0-openmp libopenblas-openmp-dev libgfortran5 libgomp1), unpacked
# into a private folder, never into /.
# usage: bash tools/gpu_verify.sh [OUTDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/avat3r_gpu}
OB=$OUT/debroot
mkdir -p "$OUT" "$OB"
for f in .debs/*.deb; do dpkg -x "$f" "$OB"; done
INC=$OB/usr/include/x86_64-linux-gnu/openblas-openmp
LIB=$OB/usr/lib/x86_64-linux-gnu/openblas-openmp:$OB/usr/lib/x86_64-linux-gnu
CUDA=${CUDA_HOME:-/usr/local/cuda}
ARCH=${GPU_ARCH:-90}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$CUDA/bin/nvcc" --version | tail -1
for f in model/layers.c common/rng.c common/util.c common/log.c tests/cuda/test_layers_cuda.c; do
  gcc -std=c11 -O2 -fopenmp -D_GNU_SOURCE -fno-math-errno -I. -Icommon -Imodel -I"$INC" -I"$CUDA/include" \
      -c "$f" -o "$OUT/$(basename "$f").o"
done
"$CUDA/bin/nvcc" -O3 -gencode=arch=compute_$ARCH,code=sm_$ARCH -c model/cuda/layers_cuda.cu -o "$OUT/layers_cuda.o"
"$CUDA/bin/nvcc" -gencode=arch=compute_$ARCH,code=sm_$ARCH "$OUT"/*.o \
    -L"$OB/usr/lib/x86_64-linux-gnu/openblas-openmp" -lopenblas -lgomp -lm -o "$OUT/avat3r_cuda_tests"
LD_LIBRARY_PATH=$LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} "$OUT/avat3r_cuda_tests"
if command -v compute-sanitizer >/dev/null || [ -x "$CUDA/bin/compute-sanitizer" ]; then
  CS=$(command -v compute-sanitizer || echo "$CUDA/bin/compute-sanitizer")
  LD_LIBRARY_PATH=$LIB "$CS" --tool memcheck --leak-check full "$OUT/avat3r_cuda_tests" | tail -4
  LD_LIBRARY_PATH=$LIB "$CS" --tool racecheck "$OUT/avat3r_cuda_tests" | tail -3
fi
