// emu.h — a CPU emulator of the CUDA device and runtime, so kernels and their host code can be checked on
// a machine without a GPU: each CUDA thread of a block is a coroutine on one OS thread (x86-64 only),
// __syncthreads and the warp intrinsics are real barriers over the block's / warp's live threads,
// "device" memory is host memory, a launch runs its blocks one after the other, and cuBLAS sgemm is a
// double-accumulating loop that rejects bad shapes and leading dimensions as cuBLAS does.
//
// Include it ONCE, first, in one C++ translation unit (the functions are defined here), then the kernels:
// dev/cuda/raster_emu.cpp (the rasterizer, with a mirror of its host code) and dev/cuda/model_emu.cpp
// (model/cuda and train/cuda/ssim_cuda.cu, host code included unchanged: their launches go through
// KLAUNCH, model/cuda/launch.h). tools/cuda_emu.sh builds and runs both with their tests.
//
// What it does NOT check: real concurrency between blocks or threads (one runs at a time: a data race
// passes here, racecheck on a GPU finds it), memory limits, CUDA's math library (glibc's expf etc. are
// used), cuBLAS's own summation order, CUB, and speed. A check for machines without a GPU, not a
// substitute for one. Kernels must use 1-D grids, dynamic shared memory only (`extern __shared__ float
// smem[]`) and full-warp shuffles.
#ifndef AVAT3R_EMU_H
#define AVAT3R_EMU_H
#include <cuda_runtime_api.h> // types and declarations only; the functions are defined below
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <functional>
#include <vector>

#include <cublas_v2.h> // types and declarations only, as the runtime's
extern "C" {
#include "../../common/log.h"
#include "../../common/timer.h"
#include "../../common/util.h"
}

// ----------------------------------------------------------------------------------------------
// the CUDA device model: each CUDA thread of a block is a coroutine on one OS thread, resumed in turn by
// a scheduler. __syncthreads (and __syncthreads_count) is a real barrier over the block's live threads,
// the warp intrinsics one over the warp's live threads: a thread that arrives waits (yields) until the
// last one arrives; a thread that exits no longer counts. A round in which nobody can move is a
// deadlock and is reported.

struct EmuDim {
    unsigned x, y, z;
};
static EmuDim threadIdx, blockIdx, blockDim, gridDim;

#undef __global__
#undef __device__
#undef __shared__
#undef __launch_bounds__
#define __global__
#define __device__
#define __shared__
#define __launch_bounds__(n)
#undef __forceinline__
#define __forceinline__ inline
#undef __host__
#define __host__
#define BLOCK_EMU_WORDS (64 * 1024) // 256 KB: more than any kernel of ours asks for (the rasterizer's
                                    // backward at K = 64 needs 256·72 words)
alignas(16) float smem[BLOCK_EMU_WORDS]; // dynamic shared memory of the one block that runs at a time

// x86-64 System V context switch: save the callee-saved registers on the current stack, store its
// pointer in *from, continue on the stack `to` (whose top holds the same layout)
extern "C" void emu_switch(void **from, void *to);
__asm__(".text\n.globl emu_switch\n.type emu_switch,@function\nemu_switch:\n"
        "pushq %rbp\npushq %rbx\npushq %r12\npushq %r13\npushq %r14\npushq %r15\n"
        "movq %rsp, (%rdi)\nmovq %rsi, %rsp\n"
        "popq %r15\npopq %r14\npopq %r13\npopq %r12\npopq %rbx\npopq %rbp\nret\n"
        ".size emu_switch, .-emu_switch\n");

#define EMU_STACK (256 << 10)
struct EmuCo {
    void *sp;
    int done;
};
static std::vector<EmuCo> emu_co;
static char *emu_stacks;
static size_t emu_stacks_n;
static void *emu_sched_sp;
static unsigned emu_cur;
static const std::function<void()> *emu_fn;
// barrier state of the running block
static unsigned emu_live, emu_arrived, emu_gen, emu_pcount, emu_result;
static unsigned emu_wlive[32], emu_warrived[32], emu_wgen[32];
static unsigned long emu_spins; // yields while waiting since the last arrival or release

static void emu_yield() { emu_switch(&emu_co[emu_cur].sp, emu_sched_sp); }
static void emu_wait(const unsigned *gen, unsigned seen) {
    while (*gen == seen) {
        if (++emu_spins > 4ul * 1024 * 1024) FATAL("emu: barrier deadlock in block %u (thread %u)", blockIdx.x, threadIdx.x);
        emu_yield();
    }
}
static void emu_release_block() {
    emu_result = emu_pcount, emu_pcount = 0, emu_arrived = 0, emu_gen++, emu_spins = 0;
}
static void emu_release_warp(int w) { emu_warrived[w] = 0, emu_wgen[w]++, emu_spins = 0; }
static int emu_block_barrier(int p) {
    unsigned seen = emu_gen;
    emu_pcount += p != 0;
    emu_spins = 0;
    if (++emu_arrived == emu_live) emu_release_block();
    emu_wait(&emu_gen, seen);
    return (int)emu_result; // stable until every thread has arrived at the next barrier
}
static void emu_warp_barrier() {
    int w = threadIdx.x / 32;
    unsigned seen = emu_wgen[w];
    emu_spins = 0;
    if (++emu_warrived[w] == emu_wlive[w]) emu_release_warp(w);
    emu_wait(&emu_wgen[w], seen);
}
static void emu_entry() {
    (*emu_fn)();
    int w = threadIdx.x / 32; // an exited thread no longer counts at the barriers
    emu_live--, emu_wlive[w]--;
    if (emu_arrived && emu_arrived == emu_live) emu_release_block();
    if (emu_warrived[w] && emu_warrived[w] == emu_wlive[w]) emu_release_warp(w);
    emu_co[emu_cur].done = 1;
    emu_switch(&emu_co[emu_cur].sp, emu_sched_sp); // never resumed
    abort();
}

static float emu_warp_f[32][32];
static int emu_warp_i[32][32];

static void __syncthreads() { emu_block_barrier(0); }
static int __syncthreads_count(int p) { return emu_block_barrier(p); }
static float __shfl_xor_sync(unsigned mask, float v, int o) {
    if (mask != 0xffffffffu) FATAL("emu: only full-warp shuffles");
    int w = threadIdx.x / 32, l = threadIdx.x % 32;
    emu_warp_f[w][l] = v;
    emu_warp_barrier();
    float r = emu_warp_f[w][l ^ o];
    emu_warp_barrier(); // nobody overwrites the slots before everyone has read
    return r;
}
static int __any_sync(unsigned mask, int p) {
    if (mask != 0xffffffffu) FATAL("emu: only full-warp votes");
    int w = threadIdx.x / 32, l = threadIdx.x % 32, r = 0;
    emu_warp_i[w][l] = p != 0;
    emu_warp_barrier();
    for (int i = 0; i < 32; i++) r |= emu_warp_i[w][i];
    emu_warp_barrier();
    return r;
}
static float atomicAdd(float *a, float v) {
    float old = *a;
    *a = old + v;
    return old;
}
static unsigned long long atomicAdd(unsigned long long *a, unsigned long long v) {
    unsigned long long old = *a;
    *a = old + v;
    return old;
}
static int atomicMax(int *a, int v) {
    int old = *a;
    if (v > old) *a = v;
    return old;
}
static unsigned __float_as_uint(float f) {
    unsigned u;
    memcpy(&u, &f, 4);
    return u;
}

void emu_launch(unsigned grid, unsigned block, size_t smem_bytes, const std::function<void()> &fn) {
    if (grid == 0 || block == 0 || block > 1024 || (block > 32 && block % 32) || smem_bytes > sizeof smem)
        FATAL("emu_launch: bad configuration grid %u block %u smem %zu", grid, block, smem_bytes);
    if (emu_stacks_n < block) {
        free(emu_stacks);
        emu_stacks = (char *)mallocCheck((size_t)block * EMU_STACK);
        emu_stacks_n = block;
    }
    emu_co.assign(block, EmuCo{NULL, 0});
    blockDim = {block, 1, 1};
    gridDim = {grid, 1, 1};
    emu_fn = &fn;
    for (unsigned b = 0; b < grid; b++) {
        blockIdx = {b, 0, 0};
        memset(smem, 0xff, smem_bytes); // stale shared memory reads as NaN / -1
        emu_live = block, emu_arrived = emu_gen = emu_pcount = emu_result = 0, emu_spins = 0;
        for (unsigned w = 0; w < 32; w++)
            emu_wlive[w] = 32 * w < block ? std::min(32u, block - 32 * w) : 0, emu_warrived[w] = emu_wgen[w] = 0;
        for (unsigned t = 0; t < block; t++) { // fresh stack: 6 saved registers, then the entry as return address
            uintptr_t top = ((uintptr_t)(emu_stacks + (size_t)(t + 1) * EMU_STACK)) & ~(uintptr_t)15;
            void **sp = (void **)(top - 16);
            sp[0] = (void *)emu_entry; // after `ret`, rsp = top - 8: as right after a call
            sp -= 6;
            for (int i = 0; i < 6; i++) sp[i] = NULL;
            emu_co[t] = EmuCo{(void *)sp, 0};
        }
        unsigned live = block;
        while (live) // rounds
            for (unsigned t = 0; t < block; t++) {
                if (emu_co[t].done) continue;
                emu_cur = t;
                threadIdx = {t, 0, 0};
                emu_switch(&emu_sched_sp, emu_co[t].sp);
                if (emu_co[t].done) live--;
            }
    }
}

// ----------------------------------------------------------------------------------------------
// the CUDA runtime functions the test uses

// Streams other than the default one are LAZY: their work (cudaMemcpyAsync) is queued and runs only when
// somebody waits for it (cudaStreamWaitEvent on the default stream, cudaEventSynchronize,
// cudaStreamSynchronize, cudaDeviceSynchronize). Kernels and the default stream run at once, so this is
// the latest a real GPU could run the queued work: a kernel that reads an upload it did not wait for, or a
// host that refills a page-locked buffer before its upload ran, sees the wrong data here. Only
// cudaStreamNonBlocking streams exist (a blocking one would also wait for every default-stream call).
struct CUstream_st {
    std::vector<std::function<void()>> q; // queued work, in order
    size_t done;                          // how much of it has run
};
struct CUevent_st {
    double t;
    CUstream_st *s; // recorded on this stream (NULL: the default one, which is always done)
    size_t seq;     // ... after this many of its operations
};
static std::vector<CUstream_st *> emu_streams;
static void emu_stream_run(CUstream_st *s, size_t upto) {
    while (s->done < upto && s->done < s->q.size()) s->q[s->done++]();
}
static void emu_streams_run_all() {
    for (CUstream_st *s : emu_streams) emu_stream_run(s, s->q.size());
}
extern "C" {
cudaError_t cudaMalloc(void **p, size_t n) {
    *p = mallocCheck(n ? n : 4);
    memset(*p, 0xa5, n); // garbage, like fresh device memory
    return cudaSuccess;
}
cudaError_t cudaFree(void *p) {
    free(p);
    return cudaSuccess;
}
cudaError_t cudaHostAlloc(void **p, size_t n, unsigned flags) {
    (void)flags;
    return cudaMalloc(p, n);
}
cudaError_t cudaFreeHost(void *p) { return cudaFree(p); }
cudaError_t cudaMemcpy(void *d, const void *s, size_t n, enum cudaMemcpyKind k) {
    (void)k;
    memcpy(d, s, n);
    return cudaSuccess;
}
cudaError_t cudaMemset(void *d, int v, size_t n) {
    memset(d, v, n);
    return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags) {
    if (flags != cudaStreamNonBlocking) {
        fprintf(stderr, "emu: only cudaStreamNonBlocking streams are emulated\n");
        abort();
    }
    CUstream_st *st = new CUstream_st();
    st->done = 0;
    emu_streams.push_back(st);
    *s = st;
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
    if (s) emu_stream_run(s, s->q.size());
    return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
    cudaStreamSynchronize(s);
    emu_streams.erase(std::find(emu_streams.begin(), emu_streams.end(), s));
    delete s;
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *d, const void *src, size_t n, enum cudaMemcpyKind k, cudaStream_t s) {
    if (!s) return cudaMemcpy(d, src, n, k);
    s->q.push_back([d, src, n] { memcpy(d, src, n); }); // reads src when it runs, as the copy engine does
    return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize(void) {
    emu_streams_run_all();
    return cudaSuccess;
}
const char *cudaGetErrorString(cudaError_t e) { return e == cudaSuccess ? "no error" : "emulated error"; }
cudaError_t cudaGetDevice(int *d) {
    *d = 0;
    return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *p, int d) {
    (void)d;
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "CPU emulator (dev/cuda/emu.h)");
    return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t *e) {
    *e = (cudaEvent_t)calloc(1, sizeof(CUevent_st));
    return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags) {
    (void)flags;
    return cudaEventCreate(e);
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
    free(e);
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
    e->t = time_now_s();
    e->s = s, e->seq = s ? s->q.size() : 0;
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
    if (e->s) emu_stream_run(e->s, e->seq);
    return cudaSuccess;
}
// a stream waits for an event: the default stream (which runs at once) makes the event's work run now; a
// lazy stream queues that for its turn; an event of the default stream has always happened
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags) {
    (void)flags;
    CUstream_st *es = e->s;
    const size_t seq = e->seq;
    if (!es || es == s) return cudaSuccess;
    if (!s) emu_stream_run(es, seq);
    else s->q.push_back([es, seq] { emu_stream_run(es, seq); });
    return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
    *ms = (float)(1e3 * (b->t - a->t));
    return cudaSuccess;
}
}

// ----------------------------------------------------------------------------------------------
// further runtime functions and device helpers the model's code uses

static float rsqrtf(float x) { return 1.f / sqrtf(x); }
extern "C" {
cudaError_t cudaGetDeviceCount(int *n) {
    *n = 1;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : cudaErrorInvalidDevice; }
cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total_b) { // the emulator has no device memory of its own
    *free_b = *total_b = 0;
    return cudaSuccess;
}
cudaError_t cudaGetLastError(void) { return cudaSuccess; }
}

// ----------------------------------------------------------------------------------------------
// cuBLAS: column-major C = alpha·op(A)·op(B) + beta·C, each dot product in double; C is not read when
// beta = 0 (it may hold NaN poison). Shapes are checked as cuBLAS checks them. TF32 math mode rounds the
// sgemm inputs to TF32; GemmEx takes bf16 operands.

extern "C" {
cublasStatus_t cublasCreate_v2(cublasHandle_t *h) {
    *h = (cublasHandle_t)callocCheck(1, 16); // holds the math mode
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy_v2(cublasHandle_t h) {
    free(h);
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t m) {
    *(int *)h = (int)m;
    return CUBLAS_STATUS_SUCCESS;
}
}
// TF32 tensor-core inputs: 10 mantissa bits, round to nearest even (NaN and Inf unchanged)
static float emu_tf32(float x) {
    unsigned u;
    memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0xfffu + ((u >> 13) & 1u)) & ~0x1fffu;
    memcpy(&x, &u, 4);
    return x;
}
static float emu_bf16_to_float(uint16_t b) {
    unsigned u = (unsigned)b << 16;
    float x;
    memcpy(&x, &u, 4);
    return x;
}
// C = alpha·op(A)·op(B) + beta·C over element readers: each dot product in double, as cuBLAS checks shapes
template <class RA, class RB>
static cublasStatus_t emu_gemm(const char *who, cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                               int n, int k, float alpha, RA A, int lda, RB B, int ldb, float beta, float *C, int ldc) {
    int arows = ta == CUBLAS_OP_N ? m : k, brows = tb == CUBLAS_OP_N ? k : n;
    if (!h || m < 0 || n < 0 || k < 0 || lda < std::max(1, arows) || ldb < std::max(1, brows) || ldc < std::max(1, m)) {
        fprintf(stderr, "emu %s: invalid value (m %d n %d k %d lda %d ldb %d ldc %d)\n", who, m, n, k, lda, ldb, ldc);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double acc = 0;
            for (int p = 0; p < k; p++) {
                float a = ta == CUBLAS_OP_N ? A(i + (size_t)p * lda) : A(p + (size_t)i * lda);
                float b = tb == CUBLAS_OP_N ? B(p + (size_t)j * ldb) : B(j + (size_t)p * ldb);
                acc += (double)a * b;
            }
            float *c = C + i + (size_t)j * ldc;
            *c = (float)(alpha * acc + (beta == 0 ? 0.0 : (double)beta * *c));
        }
    return CUBLAS_STATUS_SUCCESS;
}
extern "C" {
cublasStatus_t cublasSgemm_v2(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                              const float *alpha, const float *A, int lda, const float *B, int ldb, const float *beta,
                              float *C, int ldc) {
    if (h && (*(int *)h & 0xf) == CUBLAS_TF32_TENSOR_OP_MATH) // TF32 mode: inputs rounded as the tensor cores do
        return emu_gemm("cublasSgemm", h, ta, tb, m, n, k, *alpha, [&](size_t i) { return emu_tf32(A[i]); }, lda,
                        [&](size_t i) { return emu_tf32(B[i]); }, ldb, *beta, C, ldc);
    return emu_gemm("cublasSgemm", h, ta, tb, m, n, k, *alpha, [&](size_t i) { return A[i]; }, lda,
                    [&](size_t i) { return B[i]; }, ldb, *beta, C, ldc);
}
// GemmEx for what matmul_cuda.cu asks: bf16 or fp32 A and B, fp32 C, fp32 compute
cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void *alpha, const void *A, cudaDataType Atype, int lda, const void *B,
                            cudaDataType Btype, int ldb, const void *beta, void *C, cudaDataType Ctype, int ldc,
                            cublasComputeType_t ct, cublasGemmAlgo_t algo) {
    (void)algo;
    if (Atype != CUDA_R_16BF || Btype != CUDA_R_16BF || Ctype != CUDA_R_32F || ct != CUBLAS_COMPUTE_32F) {
        fprintf(stderr, "emu cublasGemmEx: only bf16 x bf16 -> fp32 with fp32 compute is emulated\n");
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    const uint16_t *a = (const uint16_t *)A, *b = (const uint16_t *)B;
    return emu_gemm("cublasGemmEx", h, ta, tb, m, n, k, *(const float *)alpha,
                    [&](size_t i) { return emu_bf16_to_float(a[i]); }, lda,
                    [&](size_t i) { return emu_bf16_to_float(b[i]); }, ldb, *(const float *)beta, (float *)C, ldc);
}
}
#endif
