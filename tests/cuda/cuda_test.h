// cuda_test.h — what the CUDA kernel tests share: CK(call) prints the CUDA error with file:line and exits 1.
#ifndef AVAT3R_CUDA_TEST_H
#define AVAT3R_CUDA_TEST_H
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>

#define CK(x)                                                                                          \
    do {                                                                                               \
        cudaError_t e_ = (x);                                                                          \
        if (e_ != cudaSuccess) {                                                                       \
            printf("CUDA error %s at %s:%d\n", cudaGetErrorString(e_), __FILE__, __LINE__);            \
            exit(1);                                                                                   \
        }                                                                                              \
    } while (0)

#endif
