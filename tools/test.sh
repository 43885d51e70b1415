#!/usr/bin/env bash
# test.sh — the README's test command: install dependencies, build with AddressSanitizer and UBSan,
# compile the CUDA targets when nvcc exists, and run every test. Ends with "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
[ -d /usr/local/cuda/bin ] && export PATH="/usr/local/cuda/bin:$PATH"
BUILD=${AVAT3R_TEST_BUILD:-build-asan}
if [ ! -f "$BUILD/build.ninja" ]; then
  meson setup "$BUILD" -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized -Dcuda=auto
fi
ninja -C "$BUILD"
# ASan: leaks are errors; UBSan: stop at the first report. OpenMP's runtime keeps thread pools
# alive at exit, which LeakSanitizer does not count as leaks.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export AVAT3R_SOURCE_ROOT="$PWD"
# OpenMP threads that spin while waiting make a test 10x slower when anything else holds a core
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
status=0
if [ -x "$BUILD/model/cuda/avat3r_cuda_tests" ]; then
  echo "== CUDA kernel tests (skip without a GPU)"
  "$BUILD/model/cuda/avat3r_cuda_tests" || status=1
fi
[ -x "$BUILD/render/cuda/avat3r_cuda_raster_tests" ] && { "$BUILD/render/cuda/avat3r_cuda_raster_tests" || status=1; }
[ -x "$BUILD/train/cuda/avat3r_cuda_train_tests" ] && { "$BUILD/train/cuda/avat3r_cuda_train_tests" || status=1; }
[ -x "$BUILD/train/cuda/avat3r_cuda_ssim_tests" ] && { "$BUILD/train/cuda/avat3r_cuda_ssim_tests" || status=1; }
[ -x "$BUILD/model/cuda/avat3r_cuda_model_tests" ] && { "$BUILD/model/cuda/avat3r_cuda_model_tests" || status=1; }
[ -x "$BUILD/train/cuda/avat3r_cuda_lpips_tests" ] && { "$BUILD/train/cuda/avat3r_cuda_lpips_tests" || status=1; }
[ -x "$BUILD/train/cuda/avat3r_cuda_step_tests" ] && { "$BUILD/train/cuda/avat3r_cuda_step_tests" || status=1; }
# Without a GPU the CUDA code still runs: kernels and host code on the CPU emulator (dev/cuda/emu.h),
# against the same CPU oracles (about 3 minutes)
if [ -f "${CUDA_HOME:-/usr/local/cuda}/include/cuda_runtime_api.h" ] && [ "$(uname -m)" = x86_64 ]; then
  echo "== CUDA code on the CPU emulator"
  mkdir -p "$BUILD/cuda_emu"
  emu_st=0
  bash tools/cuda_emu.sh all "$BUILD/cuda_emu" > "$BUILD/cuda_emu/log" 2>&1 || emu_st=1
  grep -E "^FAIL|of [0-9]+ (checks )?passed|^==|FATAL|rror" "$BUILD/cuda_emu/log" || true
  [ $emu_st = 0 ] || { echo "CUDA emulator run failed: $BUILD/cuda_emu/log"; status=1; }
fi
bash tools/fuzz.sh --smoke || status=1  # the fuzz harnesses over their seeds and tests/fuzz/regress/ (skips without clang + libFuzzer)
command -v npm > /dev/null && (cd tools/viewer && npm ci --no-audit --no-fund --loglevel=error) || echo "note: no npm, or npm ci failed in tools/viewer: the viewer end-to-end test will skip"
echo "== test suite"
"$BUILD/avat3r_tests" "$@" || status=1
exit $status
