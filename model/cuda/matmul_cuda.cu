// matmul_cuda.cu — Linear through cuBLAS: sgemm (fp32 by default, the CPU path being the oracle; TF32 on
// request) or cublasGemmEx on bfloat16 copies of the operands with fp32 accumulation (bf16). Row-major
// A[r,c] is column-major Aᵀ with leading dimension c, so every product is written transposed:
// out[N,OC] = inp·wᵀ  <=>  outᵀ[OC,N] = w_cm[C,OC]ᵀ · inp_cm[C,N]. The bias gradient is one more gemm
// against a vector of ones (cuBLAS's order is fixed, so it is deterministic; no atomics).
#include <cublas_v2.h>
#include <stdint.h>

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
static MatmulPrecision precision = MATMUL_FP32;
static uint16_t *bf_a, *bf_b; // [bf_n] bf16 copies of the two operands of the current product
static size_t bf_n;

// float → bfloat16 bits, round to nearest even (NaN stays a quiet NaN): the cast cuda_bf16.h's
// __float2bfloat16 makes, written on the bits so the CPU emulator computes the same
__global__ void to_bf16_kernel(uint16_t *o, const float *x, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    unsigned u = __float_as_uint(x[i]);
    o[i] = (u & 0x7fffffffu) > 0x7f800000u ? (uint16_t)((u >> 16) | 0x40u) : (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
static const uint16_t *to_bf16(uint16_t *o, const float *x, size_t n) {
    if (n > bf_n) {
        fprintf(stderr, "FATAL %s:%d: bf16 matmul operand of %zu floats, scratch for %zu\n"
                "  hint: matmul_cuda_reserve is called by the model's and LPIPS's build with their largest "
                "operand\n", __FILE__, __LINE__, n, bf_n);
        exit(1);
    }
    if (n) KLAUNCH(to_bf16_kernel, blocks_for(n, 256), 256, 0, o, x, n);
    return o;
}

__global__ void fill_kernel(float *x, float v, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] = v;
}

// out[n, o] = res[n, o] + bias[o] (either may be NULL, not both): the rows a beta-1 GEMM then adds into
__global__ void residual_bias_fill_kernel(float *out, const float *res, const float *bias, int OC, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = (res ? res[i] : 0.0f) + (bias ? bias[i % OC] : 0.0f);
}

static void need_setup(size_t rows) {
    if (!handle || rows > ones_n) {
        fprintf(stderr, "FATAL %s:%d: matmul_cuda_setup(%zu) was not called (have %zu rows)\n"
                "  hint: the model's build sets it up for its largest matmul\n", __FILE__, __LINE__, rows, ones_n);
        exit(1);
    }
}

extern "C" void matmul_cuda_setup(size_t max_rows) {
    if (!handle) {
        cublasCheck(cublasCreate(&handle));
        cublasCheck(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH)); // plain fp32: TF32 is opt-in
        precision = MATMUL_FP32;
    }
    if (max_rows <= ones_n) return;
    if (ones) cudaCheck(cudaFree(ones));
    cudaCheck(cudaMalloc((void **)&ones, max_rows * sizeof(float)));
    ones_n = max_rows;
    KLAUNCH(fill_kernel, blocks_for(max_rows, 256), 256, 0, ones, 1.0f, max_rows);
}

extern "C" void matmul_cuda_teardown(void) {
    if (ones) cudaCheck(cudaFree(ones));
    if (bf_a) cudaCheck(cudaFree(bf_a)), cudaCheck(cudaFree(bf_b));
    if (handle) cublasCheck(cublasDestroy(handle));
    ones = NULL, ones_n = 0, handle = NULL, bf_a = bf_b = NULL, bf_n = 0, precision = MATMUL_FP32;
}

extern "C" void matmul_cuda_reserve(size_t max_elems) {
    if (max_elems <= bf_n) return;
    if (bf_a) cudaCheck(cudaFree(bf_a)), cudaCheck(cudaFree(bf_b));
    cudaCheck(cudaMalloc((void **)&bf_a, max_elems * sizeof(uint16_t)));
    cudaCheck(cudaMalloc((void **)&bf_b, max_elems * sizeof(uint16_t)));
    bf_n = max_elems;
}

extern "C" void matmul_cuda_set_precision(MatmulPrecision p) {
    need_setup(0);
    precision = p;
    cublasCheck(cublasSetMathMode(handle, p == MATMUL_TF32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
}

extern "C" MatmulPrecision matmul_cuda_precision(void) { return precision; }

// column-major C[m,n] = alpha·op(A)·op(B) + beta·C, A and B as floats: sgemm, or GemmEx on bf16 copies
static void gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const float *A, int lda,
                 size_t a_elems, const float *B, int ldb, size_t b_elems, float beta, float *C, int ldc) {
    const float one = 1;
    if (precision != MATMUL_BF16) {
        cublasCheck(cublasSgemm(handle, ta, tb, m, n, k, &one, A, lda, B, ldb, &beta, C, ldc));
        return;
    }
    const uint16_t *a16 = to_bf16(bf_a, A, a_elems), *b16 = to_bf16(bf_b, B, b_elems);
    cublasCheck(cublasGemmEx(handle, ta, tb, m, n, k, &one, a16, CUDA_R_16BF, lda, b16, CUDA_R_16BF, ldb, &beta, C,
                             CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

extern "C" double matmul_cuda_peak_tflops(int n, int reps) {
    need_setup(0);
    const size_t nn = (size_t)n * n;
    float *a, *b, *c;
    cudaCheck(cudaMalloc((void **)&a, nn * sizeof(float)));
    cudaCheck(cudaMalloc((void **)&b, nn * sizeof(float)));
    cudaCheck(cudaMalloc((void **)&c, nn * sizeof(float)));
    KLAUNCH(fill_kernel, blocks_for(nn, 256), 256, 0, a, 0.5f, nn);
    KLAUNCH(fill_kernel, blocks_for(nn, 256), 256, 0, b, 0.25f, nn);
    size_t keep = bf_n;
    uint16_t *ka = bf_a, *kb = bf_b;
    if (precision == MATMUL_BF16 && nn > bf_n) { // the operands' scratch at this size, for the benchmark only
        bf_a = bf_b = NULL, bf_n = 0;
        matmul_cuda_reserve(nn);
    }
    cudaEvent_t e0, e1;
    cudaCheck(cudaEventCreate(&e0));
    cudaCheck(cudaEventCreate(&e1));
    double ms_sorted[64];
    if (reps > 64) reps = 64;
    for (int r = -1; r < reps; r++) {
        cudaCheck(cudaEventRecord(e0, 0));
        gemm(CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, a, n, nn, b, n, nn, 0.0f, c, n); // bf16: the casts count too
        cudaCheck(cudaEventRecord(e1, 0));
        cudaCheck(cudaEventSynchronize(e1));
        float ms;
        cudaCheck(cudaEventElapsedTime(&ms, e0, e1));
        if (r >= 0) { // insertion into the sorted times
            int i = r;
            while (i > 0 && ms_sorted[i - 1] > ms) ms_sorted[i] = ms_sorted[i - 1], i--;
            ms_sorted[i] = ms;
        }
    }
    if (bf_n != keep) { // give the benchmark's scratch back
        cudaCheck(cudaFree(bf_a)), cudaCheck(cudaFree(bf_b));
        bf_a = ka, bf_b = kb, bf_n = keep;
    }
    cudaCheck(cudaEventDestroy(e0));
    cudaCheck(cudaEventDestroy(e1));
    cudaCheck(cudaFree(a)), cudaCheck(cudaFree(b)), cudaCheck(cudaFree(c));
    double ms = reps > 0 ? ms_sorted[reps / 2] : 0;
    return ms > 0 ? 2.0 * n * (double)n * n / (ms * 1e-3) / 1e12 : 0;
}

extern "C" void matmul_forward_cuda(float *out, const float *inp, const float *w, const float *bias, int N, int C,
                                    int OC) {
    matmul_residual_forward_cuda(out, NULL, inp, w, bias, N, C, OC); // as the CPU's matmul_forward
}

// the bias (and the residual) go into the rows first and the GEMM adds into them (beta 1); with neither, beta 0
extern "C" void matmul_residual_forward_cuda(float *out, const float *res, const float *inp, const float *w,
                                            const float *bias, int N, int C, int OC) {
    need_setup(0);
    const size_t nw = (size_t)OC * C, ni = (size_t)N * C, n = (size_t)N * OC;
    if (n && (bias || (res && res != out)))
        KLAUNCH(residual_bias_fill_kernel, blocks_for(n, 256), 256, 0, out, res, bias, OC, n);
    gemm(CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, w, C, nw, inp, C, ni, res || bias ? 1.0f : 0.0f, out, OC);
}

extern "C" void matmul_backward_cuda(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                                     const float *w, int N, int C, int OC) {
    const float one = 1;
    need_setup(dbias ? (size_t)N : 0);
    const size_t nw = (size_t)OC * C, ni = (size_t)N * C, no = (size_t)N * OC;
    // dinpᵀ[C,N] += w_cm[C,OC] · doutᵀ[OC,N]
    if (dinp) gemm(CUBLAS_OP_N, CUBLAS_OP_N, C, N, OC, w, C, nw, dout, OC, no, 1.0f, dinp, C);
    // dwᵀ[C,OC] += inp_cm[C,N] · dout_cmᵀ[N,OC]
    if (dw) gemm(CUBLAS_OP_N, CUBLAS_OP_T, C, OC, N, inp, C, ni, dout, OC, no, 1.0f, dw, C);
    // dbias[OC,1] += dout_cm[OC,N] · ones[N,1]
    if (dbias) cublasCheck(cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, OC, 1, N, &one, dout, OC, ones, N, &one, dbias, OC));
}
