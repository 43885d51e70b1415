// layers_cuda.h — the network's row-wise and elementwise kernels (LayerNorm, GELU, ReLU, residuals), each
// with the CPU function in model/layers.c as its oracle. Pointers are device pointers; shapes as on the CPU.
#ifndef AVAT3R_LAYERS_CUDA_H
#define AVAT3R_LAYERS_CUDA_H
#include <stddef.h>
#ifdef __cplusplus
extern "C" {
#endif
int cuda_device_count(void); // 0 when no usable device (never fails)
void layernorm_forward_cuda(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                            int N, int C, float eps);
void layernorm_backward_cuda(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                             const float *mean, const float *rstd, int N, int C);
void gelu_forward_cuda(float *out, const float *inp, size_t n);
void gelu_backward_cuda(float *dinp, const float *inp, const float *dout, size_t n);
// the upsampler's PixelShuffle(2) + GELU backward: WRITES din[BV,h,w,4C] = shuffleᵀ(gelu'(pre)·dact), as the CPU's
// shuffle_gelu_backward (pre, dact [BV,2h,2w,C])
void shuffle_gelu_backward_cuda(float *din, const float *pre, const float *dact, int BV, int h, int w, int C);
void add_inplace_cuda(float *dst, const float *src, size_t n); // dst += src
void relu_forward_cuda(float *out, const float *inp, size_t n);
void relu_backward_cuda(float *dinp, const float *inp, const float *dout, size_t n); // dinp += [inp > 0]·dout
#ifdef __cplusplus
}
#endif
#endif
