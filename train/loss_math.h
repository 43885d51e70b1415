// loss_math.h — the elementwise L1 formulas, written once over `real` for the CPU (train/loss_image.c,
// float and double; real and R_ from common/real.h) and the GPU (train/cuda/loss_cuda.cu: real = float,
// R_(x) = x), so both paths compute every term and every gradient element with the same operations.
// No include guard, like render/raster_project.h: each precision of loss_image.c includes it once.
// LOSS_FN is `__host__ __device__ static inline` under nvcc and `static inline` in C unless defined first.
#include <math.h>
#include <stddef.h>

#ifndef LOSS_FN
#ifdef __CUDACC__
#define LOSS_FN __host__ __device__ static inline
#else
#define LOSS_FN static inline
#endif
#endif

// One term of Σ |pred − gt|, in double (for real = float the difference is exact in double unless the
// exponents are far apart, and correctly rounded in any case, so both paths get the same double).
LOSS_FN double R_(l1_term)(real pred, real gt) { return fabs((double)pred - (double)gt); }

// The factor of the L1 gradient: scale / n, rounded to real once (n > 0).
LOSS_FN real R_(l1_grad_k)(double scale, size_t n) { return (real)(scale / (double)n); }

// d|pred − gt| · k: ±k by the sign of the difference (the sign of the difference of two reals is
// exact), 0 where they are equal (as torch's abs backward).
LOSS_FN real R_(l1_grad)(real pred, real gt, real k) {
    real d = pred - gt;
    return d > 0 ? k : (d < 0 ? -k : 0);
}

// The region-weighted L1 (docs/losses.md "Mouth term"): one term w·|pred − gt| in double, w the pixel's
// weight (the mouth region's 0 or 1, or any non-negative float), and its gradient w·(±k).
LOSS_FN double R_(l1w_term)(real pred, real gt, real w) { return (double)w * fabs((double)pred - (double)gt); }
LOSS_FN real R_(l1w_grad)(real pred, real gt, real w, real k) { return w * R_(l1_grad)(pred, gt, k); }
