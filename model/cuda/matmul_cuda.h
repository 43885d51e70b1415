// matmul_cuda.h — the Linear layer on the GPU through cuBLAS (fp32). Same arguments and layout as
// matmul_forward / matmul_backward in model/layers_decl.h; pointers are device pointers.
#ifndef AVAT3R_MATMUL_CUDA_H
#define AVAT3R_MATMUL_CUDA_H
#include <stddef.h>
#ifdef __cplusplus
extern "C" {
#endif
// Creates the cuBLAS handle and a ones vector for bias gradients of up to max_rows rows. Call once
// before the first matmul (again with a larger max_rows to grow it; never inside a step).
void matmul_cuda_setup(size_t max_rows);
void matmul_cuda_teardown(void);
// out[N,OC] = inp[N,C] · w[OC,C]ᵀ + bias[OC] (bias may be NULL)
void matmul_forward_cuda(float *out, const float *inp, const float *w, const float *bias, int N, int C, int OC);
// dinp[N,C] += dout·w ; dw[OC,C] += doutᵀ·inp ; dbias[OC] += Σ_n dout (NULL gradients are skipped)
void matmul_backward_cuda(float *dinp, float *dw, float *dbias, const float *dout, const float *inp, const float *w,
                          int N, int C, int OC);
#ifdef __cplusplus
}
#endif
#endif
