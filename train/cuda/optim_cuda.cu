// optim_cuda.cu — AdamW (one grid-stride kernel over the whole parameter buffer) and the sum of squared
// gradients (reduce_cuda.h). The per-element update is train/optim_math.h, the CPU's own code; compile
// with --fmad=false (train/cuda/meson.build) so that nvcc does not contract it into FMAs.
#include "../../model/cuda/launch.h"
#include "optim_cuda.h"
#include "../optim_math.h"

// the tensor layout, passed by value (kernel parameter space): end[k] = one past tensor k's last element
typedef struct {
    unsigned long long end[NUM_PARAM_TENSORS];
    float wd[NUM_PARAM_TENSORS]; // weight decay of tensor k (0 where param_decays(k) is 0)
} AdamWTable;

__global__ static void adamw_kernel(float *p, const float *g, float *m, float *v, size_t n, AdamWTable tab,
                                    AdamWConst c) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    if (i >= n) return;
    int lo = 0, hi = NUM_PARAM_TENSORS - 1; // the first tensor that ends after i (zero-size ones never match)
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (tab.end[mid] > i) hi = mid;
        else lo = mid + 1;
    }
    for (int k = lo; i < n; i += stride) {
        while (tab.end[k] <= i) k++; // i < n = end[last], so k stays in range
        adamw_elem(&p[i], &m[i], &v[i], g[i], tab.wd[k], c);
    }
}

extern "C" void adamw_update_cuda(float *params, const float *grads, float *m, float *v,
                                  const size_t sizes[NUM_PARAM_TENSORS], const AdamWHyper *h, double grad_scale,
                                  uint64_t t) {
    AdamWTable tab;
    size_t n = 0;
    for (int k = 0; k < NUM_PARAM_TENSORS; k++) {
        n += sizes[k];
        tab.end[k] = n;
        tab.wd[k] = param_decays(k) ? (float)h->weight_decay : 0.0f; // as adamw_step
    }
    if (n == 0) return;
    const AdamWConst c = adamw_const(h->lr, h->beta1, h->beta2, h->eps, grad_scale, t); // host, as adamw_step
    const int bs = 256;
    size_t nb = (n + bs - 1) / bs;
    if (nb > 8192) nb = 8192; // grid-stride beyond that; the result does not depend on the grid
    KLAUNCH(adamw_kernel, nb, bs, 0, params, grads, m, v, n, tab, c);
}

// one term of grad_global_norm's sum: (double)g · g, exact in double (24 + 24 significant bits)
struct SqTerm {
    const float *g;
    __device__ double operator()(size_t i) const {
        double x = g[i];
        return x * x;
    }
};

extern "C" void grad_norm_sq_cuda(double *d_out, const float *grads, size_t n, double *d_partial) {
    reduce_sum_cuda(d_out, n, SqTerm{grads}, 1.0, d_partial);
}
