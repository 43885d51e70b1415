// lpips_cuda.h — LPIPS v0.1 (VGG16 or AlexNet trunk; docs/lpips.md) forward and backward to the input image
// on the GPU, with train/lpips.c (float) as the oracle (tests/cuda/test_lpips_cuda.c). Same layout and
// algorithm as the CPU: channel-last [image, y, x, c], x and y through the trunk together as 2N images,
// convs as im2col + cuBLAS GEMM in chunks of output rows, max-pool with argmax, gathers (no atomics) for
// col2im and the max-pool backward, the head's sums in double in a fixed order. Deterministic; equal to
// the CPU up to the GEMMs' summation order. Pointers are DEVICE pointers unless said otherwise.
#ifndef AVAT3R_LPIPS_CUDA_H
#define AVAT3R_LPIPS_CUDA_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
#include "../lpips.h"

typedef struct {
    int net, n_conv;
    int N, H, W, B;                 // pairs, image size, B = 2N images through the trunk
    LpipsConv conv[LPIPS_MAX_CONV]; // shapes, pools, taps (the float pointers are not used here)
    int tap_ch[LPIPS_TAPS];
    // per conv i: the input grid (after its pool, if any), the pre-pool grid and the output grid
    int ih[LPIPS_MAX_CONV], iw[LPIPS_MAX_CONV], ph[LPIPS_MAX_CONV], pw[LPIPS_MAX_CONV];
    int oh[LPIPS_MAX_CONV], ow[LPIPS_MAX_CONV];
    int tap_conv[LPIPS_TAPS]; // which conv's ReLU output each tap is
    int rows_off[LPIPS_TAPS]; // offset of tap k's row sums in rowsum
    // weights (device)
    float *wbuf;               // one buffer for all below
    float *cw[LPIPS_MAX_CONV]; // [OC, kh, kw, IC] (permuted from PyTorch's [OC, IC, kh, kw] for im2col)
    float *cb[LPIPS_MAX_CONV]; // [OC]
    float *lin[LPIPS_TAPS];    // [tap_ch]
    // activations of the last forward
    float *in;                    // [B, H, W, 3] after 2x−1 and the ScalingLayer
    float *act[LPIPS_MAX_CONV];   // [B, oh, ow, OC] after the ReLU
    float *pool[LPIPS_MAX_CONV];  // [B, ih, iw, IC] pooled input of conv i (NULL without a pool)
    uint8_t *arg[LPIPS_MAX_CONV]; // [B, ih, iw, IC] argmax of each pool window, ky·k + kx (NULL without)
    float *norm[LPIPS_TAPS];      // [B, h, w] sqrt(Σ_c f²) of each tap position
    double *dist;                 // [N, max h·w] scratch: per-position distance of one tap
    double *rowsum;               // [Σ_k N·h_k] row sums of dist, every tap (rows_off)
    double *tap_d;                // [LPIPS_TAPS, N] each tap's spatial mean per pair
    double *pair_d;               // [N] LPIPS per pair (sum over taps)
    double *total;                // [1] mean over pairs of the last forward
    // scratch
    float *cols; // im2col chunk [cols_cap]: rows of (ky, kx, c) patches, or their gradient
    size_t cols_cap;
    size_t cols_chunk; // floats per im2col chunk (at least one output row): LPIPS_CUDA_COLS_CHUNK from the
                       // build; a test may lower it (never raise it) to force many chunks
    float *g0, *g1; // backward ping-pong [N · largest activation]
    size_t max_operand; // floats of the largest GEMM operand: an im2col chunk, a conv's weights, or an activation
    int have_forward;
} LpipsCuda;

// Allocates everything for N pairs of H×W images and copies w (host) to the device; FATAL with
// lpips_check_size's message when the images are too small. Sets up the cuBLAS handle (matmul_cuda_setup).
void lpips_cuda_build(LpipsCuda *l, const LpipsWeights *w, int N, int H, int W);
void lpips_cuda_free(LpipsCuda *l);
// x, y: [N, H, W, 3] RGB in [0, 1]. Queues the forward on the default stream: *l->total = mean LPIPS over
// the pairs; per[N] (may be NULL) each pair's distance.
void lpips_forward_cuda(LpipsCuda *l, const float *x, const float *y, float *per);
// dx[N, H, W, 3] += scale · d(mean over pairs)/dx, y held fixed. Must follow lpips_forward_cuda on the same
// x, y (it reads the activations kept by the forward).
void lpips_backward_cuda(LpipsCuda *l, float *dx, double scale);

#ifdef __cplusplus
}
#endif
#endif
