// raster_emu.cpp — runs the CUDA rasterizer's kernels (render/cuda/raster_kernels.cuh) on the CPU, one
// coroutine per CUDA thread (x86-64 only), so their index math, barriers and warp reductions can be
// checked on a machine without a GPU. Linked with the unchanged tests/cuda/test_raster_cuda.c in place of
// the CUDA runtime and of raster_cuda.cu: "device" memory is host memory, a launch runs its blocks one
// after the other, __syncthreads and the warp intrinsics are rounds of the block's coroutines.
//
// What it does NOT check: the host code of raster_cuda.cu (mirrored below by hand: same stages, CUB
// replaced by a host prefix sum and std::stable_sort), real concurrency between blocks, memory limits,
// CUDA's expf (glibc's is used, so the forward is expected to be bit-identical to the CPU's), data races
// (one thread runs at a time: racecheck on a GPU does that), and speed. A check for machines without a
// GPU, not a substitute for one.
//
// Build and run from the repository root (gcc/g++ only; the CUDA headers for the runtime's types):
//   mkdir -p /tmp/emu
//   for f in render/raster.c tools/scene_random.c tools/batch_random.c common/atb.c common/rng.c
//            common/util.c common/log.c common/timer.c tests/cuda/test_raster_cuda.c; do
//     gcc -std=c11 -O2 -fopenmp -D_GNU_SOURCE -fno-math-errno -I. -Icommon -Imodel -Irender -Itools
//         -I/usr/local/cuda/include -c $f -o /tmp/emu/$(basename $f).o; done
//   g++ -std=c++17 -O2 -D_GNU_SOURCE -I. -I/usr/local/cuda/include -c dev/cuda/raster_emu.cpp -o /tmp/emu/emu.o
//   g++ /tmp/emu/*.o -fopenmp -lm -o /tmp/emu/raster_emu_tests && /tmp/emu/raster_emu_tests
// (the for loop and the gcc line are one shell command each: join the continuation lines)
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

#include "../../render/cuda/raster_cuda.h"
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
#define BLOCK_EMU_WORDS (256 * (8 + 64) + 16) // the backward's need at K = RASTER_MAX_K = 64, and more
float smem[BLOCK_EMU_WORDS]; // dynamic shared memory of the one block that runs at a time

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

#include "../../render/cuda/raster_kernels.cuh"

static void emu_launch(unsigned grid, unsigned block, size_t smem_bytes, const std::function<void()> &fn) {
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

struct CUevent_st {
    double t;
};
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
cudaError_t cudaMemcpy(void *d, const void *s, size_t n, enum cudaMemcpyKind k) {
    (void)k;
    memcpy(d, s, n);
    return cudaSuccess;
}
cudaError_t cudaMemset(void *d, int v, size_t n) {
    memset(d, v, n);
    return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }
const char *cudaGetErrorString(cudaError_t e) { return e == cudaSuccess ? "no error" : "emulated error"; }
cudaError_t cudaGetDevice(int *d) {
    *d = 0;
    return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *p, int d) {
    (void)d;
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "CPU emulator (dev/cuda/raster_emu.cpp)");
    return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t *e) {
    *e = (cudaEvent_t)calloc(1, sizeof(CUevent_st));
    return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
    free(e);
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
    (void)s;
    e->t = time_now_s();
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
    (void)e;
    return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
    *ms = (float)(1e3 * (b->t - a->t));
    return cudaSuccess;
}
}

// ----------------------------------------------------------------------------------------------
// raster_cuda.h on the emulator: a mirror of raster_cuda.cu's host code

static unsigned blocks_for(long long n, int bs) { return (unsigned)((n + bs - 1) / bs); }
static void *dmalloc(size_t bytes) {
    void *p;
    cudaMalloc(&p, bytes);
    return p;
}
static size_t fwd_smem(int K) { return (size_t)BLOCK * (7 + K) * sizeof(float); }
static size_t bwd_smem(int K) { return (size_t)BLOCK * (8 + K) * sizeof(float) + sizeof(int); }

extern "C" int raster_cuda_device_count(void) { return 1; }

static void alloc_pool(RasterCuda *r) {
    r->keys_unsorted = (uint64_t *)dmalloc(r->isect_cap * sizeof(uint64_t));
    r->keys = (uint64_t *)dmalloc(r->isect_cap * sizeof(uint64_t));
    r->vals_unsorted = (int32_t *)dmalloc(r->isect_cap * sizeof(int32_t));
    r->isect = (int32_t *)dmalloc(r->isect_cap * sizeof(int32_t));
}
static void free_pool(RasterCuda *r) {
    free(r->keys_unsorted), free(r->keys), free(r->vals_unsorted), free(r->isect);
    r->keys_unsorted = r->keys = NULL, r->vals_unsorted = r->isect = NULL;
}

extern "C" void raster_cuda_build(RasterCuda *r, RasterDims d, double isect_per_gaussian) {
    memset(r, 0, sizeof *r);
    if (d.B < 1 || d.G < 0 || d.Cm < 1 || d.W < 0 || d.H < 0 || d.K < 1 || d.K > RASTER_MAX_K)
        FATAL("raster_cuda_build: bad dimensions");
    r->d = d;
    r->tiles_x = (d.W + TILE - 1) / TILE;
    r->tiles_y = (d.H + TILE - 1) / TILE;
    r->n_img = d.B * d.Cm;
    size_t ni = r->n_img, G = d.G, px = ni * d.W * d.H, nt = ni * r->tiles_x * r->tiles_y;
    r->image = (float *)dmalloc(px * d.K * 4), r->alpha = (float *)dmalloc(px * 4), r->depth = (float *)dmalloc(px * 4);
    r->T_final = (float *)dmalloc(px * 4), r->n_contrib = (int32_t *)dmalloc(px * 4);
    r->mean2d = (float *)dmalloc(ni * G * 8), r->conic = (float *)dmalloc(ni * G * 12), r->zcam = (float *)dmalloc(ni * G * 4);
    r->rect = (int32_t *)dmalloc(ni * G * 16), r->valid = (uint8_t *)dmalloc((size_t)d.B * G);
    r->isect_cnt = (int64_t *)dmalloc(ni * G * 8), r->isect_off = (int64_t *)dmalloc((ni * G + 1) * 8);
    r->tile_off = (int32_t *)dmalloc((nt + 1) * 4);
    r->grad2d = (float *)dmalloc(ni * G * GSTRIDE(d.K) * 4), r->bg_tile = (float *)dmalloc(nt * d.K * 4);
    r->counters = (unsigned long long *)dmalloc(16);
    double cap = (double)ni * G * (isect_per_gaussian > 0 ? isect_per_gaussian : 1) + 1;
    r->isect_cap = cap < (double)INT_MAX ? (size_t)cap : (size_t)INT_MAX;
    alloc_pool(r);
}

extern "C" void raster_cuda_free(RasterCuda *r) {
    free_pool(r);
    void *p[] = {r->image, r->alpha, r->depth, r->T_final, r->n_contrib, r->mean2d, r->conic, r->zcam, r->rect,
                 r->valid, r->isect_cnt, r->isect_off, r->tile_off, r->grad2d, r->bg_tile, r->counters};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) free(p[i]);
    memset(r, 0, sizeof *r);
}

extern "C" void raster_cuda_forward(RasterCuda *r, const RasterIn *in) {
    RasterDims d = r->d;
    int nt = r->tiles_x * r->tiles_y, ntot = r->n_img * nt;
    long long nig = (long long)r->n_img * d.G;
    memset(r->counters, 0, 16);
    r->isect_off[0] = 0;
    if (nig > 0) {
        emu_launch(blocks_for(nig, 256), 256, 0, [&] {
            project_kernel(in->means, in->quats, in->scales, in->opacities, in->colors, in->w2c, in->K, d.G, d.Cm, d.W,
                           d.H, d.K, r->tiles_x, r->tiles_y, nig, r->mean2d, r->conic, r->zcam, r->rect, r->valid,
                           r->isect_cnt, r->counters);
        });
        for (long long i = 0; i < nig; i++) r->isect_off[i + 1] = r->isect_off[i] + r->isect_cnt[i]; // CUB scan
    }
    int64_t total = r->isect_off[nig];
    r->n_invalid = (long)r->counters[0];
    r->n_culled = (long)r->counters[1];
    if (total > (int64_t)INT_MAX) FATAL("too many intersections");
    r->n_isect = (size_t)total;
    if (r->n_isect > r->isect_cap) {
        LOG_W("raster_cuda (emulated): %zu tile intersections exceed the pool (%zu); growing it", r->n_isect,
              r->isect_cap);
        free_pool(r);
        size_t cap = r->n_isect + r->n_isect / 4;
        r->isect_cap = cap < (size_t)INT_MAX ? cap : (size_t)INT_MAX;
        alloc_pool(r);
    }
    int n = (int)r->n_isect;
    if (n > 0) {
        emu_launch(blocks_for(nig, 256), 256, 0, [&] {
            emit_kernel(r->rect, r->zcam, r->isect_off, d.G, r->tiles_x, nt, nig, r->keys_unsorted, r->vals_unsorted);
        });
        // CUB SortPairs (stable radix sort on the key bits in use)
        std::vector<int> ord(n);
        for (int i = 0; i < n; i++) ord[i] = i;
        std::stable_sort(ord.begin(), ord.end(), [&](int a, int b) { return r->keys_unsorted[a] < r->keys_unsorted[b]; });
        for (int i = 0; i < n; i++) r->keys[i] = r->keys_unsorted[ord[i]], r->isect[i] = r->vals_unsorted[ord[i]];
        emu_launch(blocks_for(n, 256), 256, 0, [&] { tile_off_kernel(r->keys, n, ntot, r->tile_off); });
    } else {
        memset(r->tile_off, 0, ((size_t)ntot + 1) * 4);
    }
    if (ntot > 0) {
        emu_launch((unsigned)ntot, BLOCK, fwd_smem(d.K), [&] {
            if (d.K == 3)
                render_fwd_kernel<3>(r->tile_off, r->isect, r->mean2d, r->conic, r->zcam, in->opacities, in->colors,
                                     in->background, d.G, d.Cm, d.W, d.H, d.K, r->tiles_x, nt, r->image, r->alpha,
                                     r->depth, r->T_final, r->n_contrib);
            else
                render_fwd_kernel<0>(r->tile_off, r->isect, r->mean2d, r->conic, r->zcam, in->opacities, in->colors,
                                     in->background, d.G, d.Cm, d.W, d.H, d.K, r->tiles_x, nt, r->image, r->alpha,
                                     r->depth, r->T_final, r->n_contrib);
        });
    }
}

extern "C" void raster_cuda_backward(RasterCuda *r, const RasterIn *in, const float *dimage, const float *dalpha,
                                     const float *ddepth, RasterGrad *g) {
    RasterDims d = r->d;
    int nt = r->tiles_x * r->tiles_y, ntot = r->n_img * nt;
    long long nig = (long long)r->n_img * d.G, nbg = (long long)d.B * d.G;
    if (nig > 0) memset(r->grad2d, 0, (size_t)nig * GSTRIDE(d.K) * 4);
    if (ntot > 0 && r->n_isect > 0) {
        emu_launch((unsigned)ntot, BLOCK, bwd_smem(d.K), [&] {
            if (d.K == 3)
                render_bwd_kernel<3>(r->tile_off, r->isect, r->mean2d, r->conic, r->zcam, in->opacities, in->colors,
                                     in->background, d.G, d.Cm, d.W, d.H, d.K, r->tiles_x, nt, r->T_final,
                                     r->n_contrib, dimage, dalpha, ddepth, r->grad2d);
            else
                render_bwd_kernel<0>(r->tile_off, r->isect, r->mean2d, r->conic, r->zcam, in->opacities, in->colors,
                                     in->background, d.G, d.Cm, d.W, d.H, d.K, r->tiles_x, nt, r->T_final,
                                     r->n_contrib, dimage, dalpha, ddepth, r->grad2d);
        });
    }
    if (nbg > 0 && (g->means || g->quats || g->scales || g->opacities || g->colors))
        emu_launch(blocks_for(nbg, 128), 128, 0, [&] {
            project_bwd_kernel(in->means, in->quats, in->scales, in->w2c, in->K, r->rect, r->grad2d, d.B, d.G, d.Cm,
                               d.W, d.H, d.K, r->tiles_x, r->tiles_y, g->means, g->quats, g->scales, g->opacities,
                               g->colors);
        });
    if (g->background && dimage && ntot > 0) {
        long long n = (long long)ntot * d.K;
        emu_launch(blocks_for(n, 256), 256, 0,
                   [&] { bg_tile_kernel(r->T_final, dimage, d.W, d.H, d.K, r->tiles_x, nt, n, r->bg_tile); });
        emu_launch(1, RASTER_MAX_K, 0, [&] { bg_sum_kernel(r->bg_tile, ntot, d.K, g->background); });
    }
}
