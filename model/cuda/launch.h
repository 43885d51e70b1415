// launch.h — every kernel launch of model/cuda goes through KLAUNCH, so the same host code runs on a GPU
// (nvcc) and on the CPU emulator of dev/cuda/emu.h (g++ -DAVAT3R_EMU), where <<<...>>> does not parse.
// Conventions that keep a kernel emulable: 1-D grids and blocks, dynamic shared memory only, declared as
// `extern __shared__ float smem[];`, warp exchanges by full-warp __shfl_xor_sync.
#ifndef AVAT3R_LAUNCH_H
#define AVAT3R_LAUNCH_H
#include "cuda_check.h"

#ifdef AVAT3R_EMU
#define KLAUNCH(kernel, grid, block, smem_bytes, ...) \
    emu_launch((unsigned)(grid), (unsigned)(block), (size_t)(smem_bytes), [&] { kernel(__VA_ARGS__); })
#else
#define KLAUNCH(kernel, grid, block, smem_bytes, ...)                                   \
    do {                                                                                \
        kernel<<<(unsigned)(grid), (unsigned)(block), (size_t)(smem_bytes)>>>(__VA_ARGS__); \
        cudaCheck(cudaGetLastError());                                                  \
    } while (0)
#endif

static inline unsigned blocks_for(size_t n, int block) { return (unsigned)((n + (size_t)block - 1) / (size_t)block); }
#endif
