// cuda_check.h — every CUDA call checked, with file:line and a hint.
#ifndef AVAT3R_CUDA_CHECK_H
#define AVAT3R_CUDA_CHECK_H
#ifdef AVAT3R_EMU
#include <cuda_runtime_api.h> // the CPU emulator (dev/cuda/emu.h) defines the runtime's functions
#else
#include <cuda_runtime.h>
#endif
#include <stdio.h>
#include <stdlib.h>
static inline void cuda_check(cudaError_t e, const char *file, int line) {
    if (e != cudaSuccess) {
        fprintf(stderr, "FATAL %s:%d: CUDA error: %s\n  hint: check the GPU is visible (nvidia-smi) and has free memory\n",
                file, line, cudaGetErrorString(e));
        exit(1);
    }
}
#define cudaCheck(x) cuda_check((x), __FILE__, __LINE__)
#endif
