// cuda_emu.cpp — every CUDA source of the project on the CPU emulator of dev/cuda/emu.h, in one
// translation unit: the network (model/cuda/*.cu), the losses, the optimizer and the training step
// (train/cuda/*.cu), host code and kernels unchanged (their launches go through KLAUNCH,
// model/cuda/launch.h), and the rasterizer (its kernels, with its host code mirrored in raster_emu.cpp:
// raster_cuda.cu launches with <<<>>> and sorts with CUB). Linked with each test of tests/cuda and the CPU
// oracles. A new .cu file is added here (tools/cuda_emu.sh checks that none is missing).
// Build and run: bash tools/cuda_emu.sh
#include "emu.h"

#include "../../model/cuda/attention_cuda.cu"
#include "../../model/cuda/avat3r_cuda.cu"
#include "../../model/cuda/layers_cuda.cu"
#include "../../model/cuda/matmul_cuda.cu"
#include "../../model/cuda/pixels_cuda.cu"
#include "../../train/cuda/loss_cuda.cu"
#include "../../train/cuda/lpips_cuda.cu"
#include "../../train/cuda/optim_cuda.cu"
#include "../../train/cuda/ssim_cuda.cu"
#include "../../train/cuda/step_cuda.cu"

#include "raster_emu.cpp"
