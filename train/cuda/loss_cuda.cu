// loss_cuda.cu — L1 forward (reduce_cuda.h) and backward (elementwise). Every term and every gradient
// element is train/loss_math.h, the CPU's own code, compiled here with real = float.
#include <math.h>

#include "../../model/cuda/launch.h"
#include "loss_cuda.h"

#define real float
#define R_(name) name
#include "../loss_math.h"
#undef R_
#undef real

struct L1Term {
    const float *pred, *gt;
    __device__ double operator()(size_t i) const { return l1_term(pred[i], gt[i]); }
};

extern "C" void l1_forward_cuda(double *d_out, const float *pred, const float *gt, size_t n, double *d_partial) {
    reduce_sum_cuda(d_out, n, L1Term{pred, gt}, n ? (double)n : 1.0, d_partial); // sum / n, as l1_forward
}

__global__ static void l1_backward_kernel(float *dpred, const float *pred, const float *gt, size_t n, float k) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        dpred[i] += l1_grad(pred[i], gt[i], k);
}

extern "C" void l1_backward_cuda(float *dpred, const float *pred, const float *gt, size_t n, double scale) {
    if (n == 0) return;
    const float k = l1_grad_k(scale, n); // on the host, as l1_backward
    const int bs = 256;
    size_t nb = (n + bs - 1) / bs;
    if (nb > 8192) nb = 8192;
    KLAUNCH(l1_backward_kernel, nb, bs, 0, dpred, pred, gt, n, k);
}

struct L1WTerm {
    const float *pred, *gt, *w;
    int C;
    __device__ double operator()(size_t i) const { return l1w_term(pred[i], gt[i], w[i / C]); }
};

extern "C" void l1_weighted_forward_cuda(double *d_out, const float *pred, const float *gt, const float *w, size_t npx,
                                         int C, double *d_partial) {
    const size_t n = npx * (size_t)C;
    reduce_sum_cuda(d_out, n, L1WTerm{pred, gt, w, C}, n ? (double)n : 1.0, d_partial);
}

__global__ static void l1w_backward_kernel(float *dpred, const float *pred, const float *gt, const float *w, int C,
                                           size_t n, float k) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        dpred[i] += l1w_grad(pred[i], gt[i], w[i / C], k);
}

extern "C" void l1_weighted_backward_cuda(float *dpred, const float *pred, const float *gt, const float *w, size_t npx,
                                          int C, double scale) {
    const size_t n = npx * (size_t)C;
    if (n == 0) return;
    const float k = l1_grad_k(scale, n);
    const int bs = 256;
    size_t nb = (n + bs - 1) / bs;
    if (nb > 8192) nb = 8192;
    KLAUNCH(l1w_backward_kernel, nb, bs, 0, dpred, pred, gt, w, C, n, k);
}
