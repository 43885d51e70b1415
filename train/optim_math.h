// optim_math.h — the AdamW arithmetic, written once for the CPU (train/optim.c) and the GPU
// (train/cuda/optim_cuda.cu), so that both paths run the same float operations in the same order.
// With nvcc's --fmad=false (no contraction into FMA; gcc's -std=c11 does not contract either) and CUDA's
// default IEEE division and square root (-prec-div=true, -prec-sqrt=true, no -ftz), an element updated
// on the GPU is bit-identical to the same element updated by adamw_step (tests/cuda/test_train_cuda.c).
//
// OPT_FN is `__host__ __device__ static inline` under nvcc and `static inline` in C; an includer may
// define it first.
#ifndef AVAT3R_OPTIM_MATH_H
#define AVAT3R_OPTIM_MATH_H
#include <math.h>
#include <stdint.h>

#ifndef OPT_FN
#ifdef __CUDACC__
#define OPT_FN __host__ __device__ static inline
#else
#define OPT_FN static inline
#endif
#endif

// The per-step constants of one AdamW step, rounded to float once.
typedef struct {
    float lr, b1, b2, eps, gs; // learning rate, β1, β2, ε, gradient scale (clipping, accumulation averaging)
    float c1, c2;              // bias corrections 1/(1−β1ᵗ), 1/(1−β2ᵗ)
} AdamWConst;

// Host only on both paths (the GPU gets the floats): the bias corrections in double — 1 − β2ᵗ loses
// digits in float for small t — with the C library's pow, so the CPU and the GPU use the same values.
static inline AdamWConst adamw_const(double lr, double beta1, double beta2, double eps, double grad_scale,
                                     uint64_t t) {
    AdamWConst k;
    k.lr = (float)lr, k.b1 = (float)beta1, k.b2 = (float)beta2, k.eps = (float)eps, k.gs = (float)grad_scale;
    k.c1 = (float)(1.0 / (1.0 - pow(beta1, (double)t)));
    k.c2 = (float)(1.0 / (1.0 - pow(beta2, (double)t)));
    return k;
}

// One element (wd = the tensor's weight decay, 0 where it does not decay):
//   g ← g·gs ;  m ← β1·m + (1−β1)·g ;  v ← β2·v + (1−β2)·g·g ;  p ← p − lr·(m·c1 / (sqrt(v·c2) + ε) + wd·p)
OPT_FN void adamw_elem(float *p, float *m, float *v, float g, float wd, AdamWConst k) {
    float gi = g * k.gs;
    float mi = k.b1 * *m + (1 - k.b1) * gi;
    float vi = k.b2 * *v + (1 - k.b2) * gi * gi;
    *m = mi, *v = vi;
    *p -= k.lr * (mi * k.c1 / (sqrtf(vi * k.c2) + k.eps) + wd * *p);
}

#endif
