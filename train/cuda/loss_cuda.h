// loss_cuda.h — the L1 loss on the GPU (issue #7), with train/loss_image.c (float) as the oracle
// (tests/cuda/test_train_cuda.c). Pointers are DEVICE pointers; images are any layout (elementwise over n).
// Kernels are queued on the default stream; nothing here synchronises with the host or allocates.
#ifndef AVAT3R_LOSS_CUDA_H
#define AVAT3R_LOSS_CUDA_H
#include <stddef.h>
#include "reduce_cuda.h" // TRAIN_CUDA_PARTIALS
#ifdef __cplusplus
extern "C" {
#endif

// *d_out (device double) = mean |pred − gt| over n elements (0 for n = 0), each term as l1_forward computes
// it (train/loss_math.h), summed by reduce_cuda.h: reproducible bit for bit, not bitwise the CPU's order.
// d_partial: TRAIN_CUDA_PARTIALS device doubles of scratch.
void l1_forward_cuda(double *d_out, const float *pred, const float *gt, size_t n, double *d_partial);

// dpred[n] += scale · sign(pred − gt) / n, bitwise as l1_backward (train/loss_math.h). n = 0: nothing.
void l1_backward_cuda(float *dpred, const float *pred, const float *gt, size_t n, double scale);

// The mouth term: *d_out = Σ w[i / C]·|pred_i − gt_i| / (npx·C) (l1_weighted_forward's terms, this file's
// order); w [npx] per pixel. dpred[i] += scale · w[i / C] · sign / (npx·C), bitwise as l1_weighted_backward.
void l1_weighted_forward_cuda(double *d_out, const float *pred, const float *gt, const float *w, size_t npx, int C,
                              double *d_partial);
void l1_weighted_backward_cuda(float *dpred, const float *pred, const float *gt, const float *w, size_t npx, int C,
                               double scale);

#ifdef __cplusplus
}
#endif
#endif
