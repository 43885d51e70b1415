// cuda_test.h — what the CUDA kernel tests share: CK(call) is the project's cudaCheck (file:line, the CUDA
// error and a hint on stderr, exit 1).
#ifndef AVAT3R_CUDA_TEST_H
#define AVAT3R_CUDA_TEST_H
#include "../../model/cuda/cuda_check.h"

#define CK(x) cudaCheck(x)

#endif
