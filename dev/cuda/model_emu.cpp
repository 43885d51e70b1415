// model_emu.cpp — the network's CUDA code (model/cuda/*.cu) and the SSIM loss (train/cuda/ssim_cuda.cu),
// host code and kernels unchanged, on the CPU emulator of dev/cuda/emu.h: one translation unit, linked
// with tests/cuda/test_model_cuda.c or tests/cuda/test_ssim_cuda.c and their CPU oracles.
// Build and run: bash tools/cuda_emu.sh model   (or ssim)
#include "emu.h"

#include "../../model/cuda/attention_cuda.cu"
#include "../../model/cuda/avat3r_cuda.cu"
#include "../../model/cuda/layers_cuda.cu"
#include "../../model/cuda/matmul_cuda.cu"
#include "../../model/cuda/pixels_cuda.cu"
#include "../../train/cuda/ssim_cuda.cu"
