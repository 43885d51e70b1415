// optim_cuda.h — AdamW and the gradient norm on the GPU (issue #7), with train/optim.c as the oracle
// (tests/cuda/test_train_cuda.c). Every float pointer is a DEVICE pointer over the one parameter buffer
// laid out as on the CPU (tensors of sizes[] back to back). Kernels are queued on the default stream;
// nothing here synchronises with the host or allocates.
#ifndef AVAT3R_OPTIM_CUDA_H
#define AVAT3R_OPTIM_CUDA_H
#include <stddef.h>
#include <stdint.h>
#include "reduce_cuda.h" // TRAIN_CUDA_PARTIALS
#ifdef __cplusplus
extern "C" {
#endif
#include "../optim.h"

// adamw_step on the GPU: the same arguments, the same per-element arithmetic (train/optim_math.h) and
// the same decay rule (param_decays, so the caller links train/optim.c). Built with --fmad=false, each
// element is bitwise the CPU's for the same inputs.
void adamw_update_cuda(float *params, const float *grads, float *m, float *v, const size_t sizes[NUM_PARAM_TENSORS],
                       const AdamWHyper *h, double grad_scale, uint64_t t);

// *d_out (device double) = Σ grads[i]² over n floats; the norm is sqrt(*d_out). NaN/Inf when any gradient
// is. d_partial: TRAIN_CUDA_PARTIALS device doubles of scratch. Reproducible bit for bit run to run; not
// bitwise grad_global_norm's order (reduce_cuda.h gives the bound).
void grad_norm_sq_cuda(double *d_out, const float *grads, size_t n, double *d_partial);

#ifdef __cplusplus
}
#endif
#endif
