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
        const char *hint = e == cudaErrorMemoryAllocation
            ? "out of device memory: lower micro_batch (grad_accum keeps the samples per step), or free the GPU "
              "(nvidia-smi shows who holds it); `avat3r bench train --device cuda` prints what a config uses"
            : "check the GPU is visible (nvidia-smi, CUDA_VISIBLE_DEVICES) and the driver matches the toolkit";
        fprintf(stderr, "FATAL %s:%d: CUDA error: %s\n  hint: %s\n", file, line, cudaGetErrorString(e), hint);
        exit(1);
    }
}
#define cudaCheck(x) cuda_check((x), __FILE__, __LINE__)
#endif
