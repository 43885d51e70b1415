// reduce_cuda.h — the deterministic sum in double behind grad_norm_sq_cuda (optim_cuda.cu) and
// l1_forward_cuda (loss_cuda.cu). C callers see only TRAIN_CUDA_PARTIALS (the scratch they allocate);
// the kernels are compiled under nvcc only.
//
// Two passes, both in double, whose shape depends on n alone (never on the device, the stream or timing):
//   1. nb = min(TRAIN_CUDA_PARTIALS, ceil(n / REDUCE_THREADS)) blocks of REDUCE_THREADS threads; thread t
//      of block b adds term(i) for i = b·REDUCE_THREADS + t + j·nb·REDUCE_THREADS, j = 0, 1, … in order,
//      then the block adds its threads' sums by a fixed shared-memory tree; partial[b] = that sum.
//   2. one block: thread t adds partial[t], partial[t + REDUCE_THREADS], … in order, the same tree, and
//      thread 0 writes sum / divisor.
// No atomics, so the result is bitwise the same from run to run. It is NOT bitwise the CPU's sum
// (train/optim.c and train/loss_image.c add sequentially within fixed blocks, then the blocks in order):
// for n non-negative terms each order is within γ(n−1)·S of the exact sum S, γ(k) = k·u/(1 − k·u),
// u = 2⁻⁵³, so the two differ by at most 2·γ(n−1)·S (tests/cuda/test_train_cuda.c checks this bound).
#ifndef AVAT3R_REDUCE_CUDA_H
#define AVAT3R_REDUCE_CUDA_H

#define TRAIN_CUDA_PARTIALS 1024 // doubles of device scratch one reduction needs (the most pass-1 blocks)

#if defined(__CUDACC__) || defined(AVAT3R_EMU)
#include <stddef.h>

#include "../../model/cuda/launch.h"

#define REDUCE_THREADS 256

// the fixed tree over the block's REDUCE_THREADS values in s[]; every thread must call it
__device__ static inline double block_sum(double *s, double acc) {
    int t = threadIdx.x;
    s[t] = acc;
    __syncthreads();
    for (int stride = REDUCE_THREADS / 2; stride > 0; stride /= 2) {
        if (t < stride) s[t] += s[t + stride];
        __syncthreads();
    }
    return s[0];
}

// pass 1: Term is a functor with `__device__ double operator()(size_t i) const`
template <class Term> __global__ void reduce_partial_kernel(double *partial, size_t n, Term term) {
    extern __shared__ float smem[]; // REDUCE_THREADS doubles (launch.h: dynamic shared memory only)
    double *s = (double *)smem;
    const size_t stride = (size_t)gridDim.x * REDUCE_THREADS;
    double acc = 0;
    for (size_t i = (size_t)blockIdx.x * REDUCE_THREADS + threadIdx.x; i < n; i += stride) acc += term(i);
    double sum = block_sum(s, acc);
    if (threadIdx.x == 0) partial[blockIdx.x] = sum;
}

// pass 2: one block
__global__ static void reduce_final_kernel(double *out, const double *partial, int nb, double divisor) {
    extern __shared__ float smem[]; // REDUCE_THREADS doubles
    double *s = (double *)smem;
    double acc = 0;
    for (int b = threadIdx.x; b < nb; b += REDUCE_THREADS) acc += partial[b];
    double sum = block_sum(s, acc);
    if (threadIdx.x == 0) *out = sum / divisor;
}

// *d_out = (Σ_{i<n} term(i)) / divisor, queued on the default stream; d_partial holds TRAIN_CUDA_PARTIALS
// doubles. n = 0 gives 0.
template <class Term> static void reduce_sum_cuda(double *d_out, size_t n, Term term, double divisor, double *d_partial) {
    size_t nb = (n + REDUCE_THREADS - 1) / REDUCE_THREADS;
    if (nb > TRAIN_CUDA_PARTIALS) nb = TRAIN_CUDA_PARTIALS;
    if (nb == 0) nb = 1; // n = 0: one block writes partial[0] = 0
    const size_t smem_bytes = REDUCE_THREADS * sizeof(double);
    KLAUNCH(reduce_partial_kernel<Term>, nb, REDUCE_THREADS, smem_bytes, d_partial, n, term);
    KLAUNCH(reduce_final_kernel, 1, REDUCE_THREADS, smem_bytes, d_out, d_partial, (int)nb, divisor);
}
#endif

#endif
