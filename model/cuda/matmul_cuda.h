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

// How the products run from the next call on (one setting for the process; the bias gradient, a product
// against a ones vector, never goes through bf16):
//   MATMUL_FP32  cuBLAS sgemm, no tensor cores: the CPU is the oracle within ~1e-5 (the default, tests)
//   MATMUL_TF32  sgemm on tensor cores: inputs rounded to 10 mantissa bits, fp32 accumulation
//   MATMUL_BF16  both operands rounded to bfloat16 into scratch copies, products accumulated in fp32 into
//                the fp32 outputs (cublasGemmEx): fp32 master weights, fp32 activations and gradients
//                between the GEMMs; needs matmul_cuda_reserve for the scratch first
typedef enum { MATMUL_FP32 = 0, MATMUL_TF32 = 1, MATMUL_BF16 = 2 } MatmulPrecision;
void matmul_cuda_set_precision(MatmulPrecision p);
MatmulPrecision matmul_cuda_precision(void);
// bf16 scratch for GEMM operands of up to max_elems floats each (two buffers); grows, never inside a step.
void matmul_cuda_reserve(size_t max_elems);
// Benchmarks only (it allocates): TFLOP/s of an n×n×n product in the current precision, the median of
// reps timed with CUDA events after one warm-up: the peak that MFU is reported against.
double matmul_cuda_peak_tflops(int n, int reps);

void matmul_cuda_teardown(void);
// out[N,OC] = inp[N,C] · w[OC,C]ᵀ + bias[OC] (bias may be NULL): matmul_residual_forward_cuda without res
void matmul_forward_cuda(float *out, const float *inp, const float *w, const float *bias, int N, int C, int OC);
// out[N,OC] = res + inp·wᵀ + bias (res and bias may be NULL; out may equal res): the rows are filled with
// res + bias and the GEMM adds into them, as model/layers.c's matmul_residual_forward
void matmul_residual_forward_cuda(float *out, const float *res, const float *inp, const float *w, const float *bias,
                                  int N, int C, int OC);
// dinp[N,C] += dout·w ; dw[OC,C] += doutᵀ·inp ; dbias[OC] += Σ_n dout (NULL gradients are skipped)
void matmul_backward_cuda(float *dinp, float *dw, float *dbias, const float *dout, const float *inp, const float *w,
                          int N, int C, int OC);
#ifdef __cplusplus
}
#endif
#endif
