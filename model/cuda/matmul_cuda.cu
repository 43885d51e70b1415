// matmul_cuda.cu — Linear through cuBLAS sgemm (fp32, no TF32: the CPU path is the oracle). Row-major
// A[r,c] is column-major Aᵀ with leading dimension c, so every product is written transposed:
// out[N,OC] = inp·wᵀ  <=>  outᵀ[OC,N] = w_cm[C,OC]ᵀ · inp_cm[C,N]. The bias gradient is one more gemm
// against a vector of ones (cuBLAS's order is fixed, so it is deterministic; no atomics).
#include <cublas_v2.h>

#include "launch.h"
#include "matmul_cuda.h"

static void cublas_check(cublasStatus_t s, const char *file, int line) {
    if (s != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "FATAL %s:%d: cuBLAS error %d\n  hint: a wrong shape or leading dimension, or out of memory\n",
                file, line, (int)s);
        exit(1);
    }
}
#define cublasCheck(x) cublas_check((x), __FILE__, __LINE__)

static cublasHandle_t handle;
static float *ones;     // [ones_n] device vector of 1.0f
static size_t ones_n;

__global__ void fill_kernel(float *x, float v, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] = v;
}

// out[n, o] += bias[o]
__global__ void add_bias_kernel(float *out, const float *bias, int OC, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] += bias[i % OC];
}

extern "C" void matmul_cuda_setup(size_t max_rows) {
    if (!handle) {
        cublasCheck(cublasCreate(&handle));
        cublasCheck(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH)); // plain fp32: TF32 is opt-in
    }
    if (max_rows <= ones_n) return;
    if (ones) cudaCheck(cudaFree(ones));
    cudaCheck(cudaMalloc((void **)&ones, max_rows * sizeof(float)));
    ones_n = max_rows;
    KLAUNCH(fill_kernel, blocks_for(max_rows, 256), 256, 0, ones, 1.0f, max_rows);
}

extern "C" void matmul_cuda_teardown(void) {
    if (ones) cudaCheck(cudaFree(ones));
    if (handle) cublasCheck(cublasDestroy(handle));
    ones = NULL, ones_n = 0, handle = NULL;
}

static void need_setup(size_t rows) {
    if (!handle || rows > ones_n) {
        fprintf(stderr, "FATAL %s:%d: matmul_cuda_setup(%zu) was not called (have %zu rows)\n"
                "  hint: the model's build sets it up for its largest matmul\n", __FILE__, __LINE__, rows, ones_n);
        exit(1);
    }
}

extern "C" void matmul_forward_cuda(float *out, const float *inp, const float *w, const float *bias, int N, int C,
                                    int OC) {
    need_setup(0);
    const float one = 1, zero = 0;
    cublasCheck(cublasSgemm(handle, CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, &one, w, C, inp, C, &zero, out, OC));
    size_t n = (size_t)N * OC;
    if (bias && n) KLAUNCH(add_bias_kernel, blocks_for(n, 256), 256, 0, out, bias, OC, n);
}

extern "C" void matmul_backward_cuda(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                                     const float *w, int N, int C, int OC) {
    const float one = 1;
    need_setup(dbias ? (size_t)N : 0);
    // dinpᵀ[C,N] += w_cm[C,OC] · doutᵀ[OC,N]
    if (dinp) cublasCheck(cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, C, N, OC, &one, w, C, dout, OC, &one, dinp, C));
    // dwᵀ[C,OC] += inp_cm[C,N] · dout_cmᵀ[N,OC]
    if (dw) cublasCheck(cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_T, C, OC, N, &one, inp, C, dout, OC, &one, dw, C));
    // dbias[OC,1] += dout_cm[OC,N] · ones[N,1]
    if (dbias) cublasCheck(cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, OC, 1, N, &one, dout, OC, ones, N, &one, dbias, OC));
}
