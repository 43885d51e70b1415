// ssim_cuda.h — SSIM (11-tap Gaussian window, σ 1.5, zero padding; docs/losses.md) on the GPU, with
// train/loss_image.c (float) as the oracle (tests/cuda/test_train_cuda.c). Every map value is computed
// with the CPU's operations in the CPU's order (taps ascending, the same formulas, --fmad=false), and the
// mean is summed in the CPU's order (rows in index order in double, then rows, then images), so the result
// is expected to be bit-identical to ssim_forward / ssim_backward. Pointers are DEVICE pointers.
#ifndef AVAT3R_SSIM_CUDA_H
#define AVAT3R_SSIM_CUDA_H
#include "../loss_image.h" // SSIM_* constants
#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int N, H, W, C;
    float g[SSIM_WIN]; // the 1-D window, as ssim_build computes it
    float *map;        // [N, H, W·C] SSIM map of the last forward
    float *dmap;       // [N, 3, H, W·C] ∂map/∂μx, ∂map/∂E[x²], ∂map/∂E[xy]
    float *hbuf;       // [N, 5, H, W·C] horizontal-pass planes (the backward uses 3)
    double *rowsum;    // [N, H] row sums of the map
    double *total;     // [1] mean SSIM of the last forward
} SsimCuda;

// Allocates everything for [N, H, W, C] images; forward/backward allocate nothing.
void ssim_cuda_build(SsimCuda *s, int N, int H, int W, int C);
void ssim_cuda_free(SsimCuda *s);
// Queues the forward on the default stream: *s->total = mean SSIM; per[N] (device, may be NULL) each
// image's mean. x = prediction, y = ground truth, [N, H, W, C].
void ssim_forward_cuda(SsimCuda *s, const float *x, const float *y, float *per);
// dx[N,H,W,C] += scale · d(mean SSIM)/dx. Must follow ssim_forward_cuda on the same x, y.
void ssim_backward_cuda(SsimCuda *s, float *dx, const float *x, const float *y, double scale);

#ifdef __cplusplus
}
#endif
#endif
