// raster_cuda.cu — the differentiable Gaussian rasterizer on the GPU (docs/render.md, "CUDA").
//
// Stages (all B·Cm images of a batch in one launch each, dense mode):
//   1. project_kernel     one thread per (image, Gaussian): validity, EWA projection, conic, tile rectangle,
//                         tiles-touched count; block counts of invalid / culled Gaussians
//   2. CUB InclusiveSum   per-(image, Gaussian) write offsets; one host read of the total
//   3. emit_kernel        one 64-bit key per (image, Gaussian, tile): (image·tiles + tile) << 32 | bits(z)
//   4. CUB SortPairs      radix sort of the keys (stable, so equal depths keep Gaussian order: the CPU's
//                         (image, tile, z, id) order exactly)
//   5. tile_off_kernel    offsets of each (image, tile) run in the sorted list
//   6. render_fwd_kernel  one 16×16 block per (image, tile), one thread per pixel, Gaussians front to back
//                         in shared-memory batches of 256, early stop as the CPU
// Backward:
//   7. render_bwd_kernel  per tile, back to front, alpha recomputed, T recovered by dividing by 1 − α;
//                         per-Gaussian 2D gradients summed over each warp, then atomicAdd by lane 0
//   8. project_bwd_kernel one thread per (scene, Gaussian), cameras in order: 2D → 3D gradients
//   9. bg_tile_kernel + bg_sum_kernel: background gradient, per tile then over tiles in order
//
// The kernels are in raster_kernels.cuh; this file has the host side. It is compiled with --fmad=false
// (render/cuda/meson.build, tools/gpu_verify.sh): every float expression of the kernels is written in
// the same order as render/raster.c, so without FMA contraction the projection (means, conics, depths,
// radii, tile rectangles) and therefore the sorted intersection lists are bit-identical to the CPU's.
// What still differs: expf (CUDA's is within 2 ulp, glibc's within 1) and the summation order of the
// atomics in stage 7.
#include <cub/cub.cuh>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "../../model/cuda/cuda_check.h"
#include "raster_cuda.h"
extern "C" {
#include "../../common/log.h"
#include "../../common/util.h"
}

#include "raster_kernels.cuh"

#define LAUNCH_CHECK() cudaCheck(cudaGetLastError())

extern "C" int raster_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError(); // clear the sticky "no device" error
        return 0;
    }
    return n;
}

// ----------------------------------------------------------------------------------------------
// host side

static unsigned blocks_for(long long n, int bs) { return (unsigned)((n + bs - 1) / bs); }

static void *dmalloc(size_t bytes) {
    void *p = NULL;
    cudaCheck(cudaMalloc(&p, bytes ? bytes : 4));
    return p;
}

static size_t fwd_smem(int K) { return (size_t)BLOCK * (7 + K) * sizeof(float); }
static size_t bwd_smem(int K) { return (size_t)BLOCK * (8 + K) * sizeof(float) + sizeof(int); }

static size_t sort_tmp_bytes(size_t n, int end_bit) {
    size_t bytes = 0;
    cudaCheck(cub::DeviceRadixSort::SortPairs(NULL, bytes, (const uint64_t *)NULL, (uint64_t *)NULL,
                                              (const int32_t *)NULL, (int32_t *)NULL, (int)n, 0, end_bit));
    return bytes;
}

static int key_end_bit(const RasterCuda *r) {
    uint64_t ntot = (uint64_t)r->n_img * r->tiles_x * r->tiles_y;
    int bits = 0;
    while (bits < 32 && (1ull << bits) < ntot) bits++;
    return 32 + bits;
}

static void alloc_pool(RasterCuda *r) {
    r->keys_unsorted = (uint64_t *)dmalloc(r->isect_cap * sizeof(uint64_t));
    r->keys = (uint64_t *)dmalloc(r->isect_cap * sizeof(uint64_t));
    r->vals_unsorted = (int32_t *)dmalloc(r->isect_cap * sizeof(int32_t));
    r->isect = (int32_t *)dmalloc(r->isect_cap * sizeof(int32_t));
}

static void free_pool(RasterCuda *r) {
    void *p[] = {r->keys_unsorted, r->keys, r->vals_unsorted, r->isect};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) cudaCheck(cudaFree(p[i]));
    r->keys_unsorted = r->keys = NULL, r->vals_unsorted = r->isect = NULL;
}

// CUB scratch big enough for the scan over n_img·G and the sort over the current pool
static void ensure_cub_tmp(RasterCuda *r) {
    size_t need = sort_tmp_bytes(r->isect_cap, key_end_bit(r)), nig = (size_t)r->n_img * r->d.G;
    if (nig > 0) {
        size_t scan = 0;
        cudaCheck(cub::DeviceScan::InclusiveSum(NULL, scan, (const int64_t *)NULL, (int64_t *)NULL, (int)nig));
        if (scan > need) need = scan;
    }
    if (need > r->cub_tmp_bytes || !r->cub_tmp) {
        if (r->cub_tmp) cudaCheck(cudaFree(r->cub_tmp));
        r->cub_tmp = dmalloc(need);
        r->cub_tmp_bytes = need;
    }
}

template <int KC> static void set_smem_limits(int K) {
    cudaCheck(cudaFuncSetAttribute(render_fwd_kernel<KC>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)fwd_smem(K)));
    cudaCheck(cudaFuncSetAttribute(render_bwd_kernel<KC>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bwd_smem(K)));
}

extern "C" void raster_cuda_build(RasterCuda *r, RasterDims d, double isect_per_gaussian) {
    memset(r, 0, sizeof *r);
    if (d.B < 1 || d.G < 0 || d.Cm < 1 || d.W < 0 || d.H < 0 || d.K < 1 || d.K > RASTER_MAX_K)
        FATAL("raster_cuda_build: bad dimensions B=%d G=%d Cm=%d W=%d H=%d K=%d", d.B, d.G, d.Cm, d.W, d.H, d.K);
    r->d = d;
    r->tiles_x = (d.W + TILE - 1) / TILE;
    r->tiles_y = (d.H + TILE - 1) / TILE;
    r->n_img = d.B * d.Cm;
    size_t ni = r->n_img, G = d.G, px = ni * d.W * d.H, nt = ni * r->tiles_x * r->tiles_y;
    // index limits: int32 tile offsets and intersection counts, 32-bit image·tile field of the key
    if (ni * G > (size_t)INT_MAX || nt >= (size_t)INT_MAX || (size_t)d.B * G > (size_t)INT_MAX)
        FATAL("raster_cuda_build: %zu (image, Gaussian) pairs or %zu tiles exceed the int32 indexing", ni * G, nt);
    r->image = (float *)dmalloc(px * d.K * sizeof(float));
    r->alpha = (float *)dmalloc(px * sizeof(float));
    r->depth = (float *)dmalloc(px * sizeof(float));
    r->T_final = (float *)dmalloc(px * sizeof(float));
    r->n_contrib = (int32_t *)dmalloc(px * sizeof(int32_t));
    r->mean2d = (float *)dmalloc(ni * G * 2 * sizeof(float));
    r->conic = (float *)dmalloc(ni * G * 3 * sizeof(float));
    r->zcam = (float *)dmalloc(ni * G * sizeof(float));
    r->rect = (int32_t *)dmalloc(ni * G * 4 * sizeof(int32_t));
    r->valid = (uint8_t *)dmalloc((size_t)d.B * G);
    r->isect_cnt = (int64_t *)dmalloc(ni * G * sizeof(int64_t));
    r->isect_off = (int64_t *)dmalloc((ni * G + 1) * sizeof(int64_t));
    r->tile_off = (int32_t *)dmalloc((nt + 1) * sizeof(int32_t));
    r->grad2d = (float *)dmalloc(ni * G * GSTRIDE(d.K) * sizeof(float));
    r->bg_tile = (float *)dmalloc(nt * d.K * sizeof(float));
    r->counters = (unsigned long long *)dmalloc(2 * sizeof(unsigned long long));
    double cap = (double)ni * G * (isect_per_gaussian > 0 ? isect_per_gaussian : 1) + 1;
    r->isect_cap = cap < (double)INT_MAX ? (size_t)cap : (size_t)INT_MAX;
    alloc_pool(r);
    ensure_cub_tmp(r);
    if (d.K == 3) set_smem_limits<3>(d.K);
    else set_smem_limits<0>(d.K);
}

extern "C" void raster_cuda_free(RasterCuda *r) {
    if (r->keys) free_pool(r);
    void *p[] = {r->image, r->alpha, r->depth, r->T_final, r->n_contrib, r->mean2d, r->conic, r->zcam, r->rect,
                 r->valid, r->isect_cnt, r->isect_off, r->tile_off, r->grad2d, r->bg_tile, r->counters, r->cub_tmp};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
        if (p[i]) cudaCheck(cudaFree(p[i]));
    memset(r, 0, sizeof *r);
}

template <int KC>
static void launch_fwd(RasterCuda *r, const RasterIn *in, int nt) {
    RasterDims d = r->d;
    render_fwd_kernel<KC><<<(unsigned)(r->n_img * nt), BLOCK, fwd_smem(d.K)>>>(
        r->tile_off, r->isect, r->mean2d, r->conic, r->zcam, in->opacities, in->colors, in->background, d.G, d.Cm, d.W,
        d.H, d.K, r->tiles_x, nt, r->image, r->alpha, r->depth, r->T_final, r->n_contrib);
    LAUNCH_CHECK();
}

extern "C" void raster_cuda_forward(RasterCuda *r, const RasterIn *in) {
    RasterDims d = r->d;
    int nt = r->tiles_x * r->tiles_y, ntot = r->n_img * nt;
    long long nig = (long long)r->n_img * d.G;
    // 1. projection
    cudaCheck(cudaMemsetAsync(r->counters, 0, 2 * sizeof(unsigned long long)));
    cudaCheck(cudaMemsetAsync(r->isect_off, 0, sizeof(int64_t)));
    if (nig > 0) {
        project_kernel<<<blocks_for(nig, 256), 256>>>(in->means, in->quats, in->scales, in->opacities, in->colors, in->w2c,
                                                      in->K, d.G, d.Cm, d.W, d.H, d.K, r->tiles_x, r->tiles_y, nig,
                                                      r->mean2d, r->conic, r->zcam, r->rect, r->valid, r->isect_cnt,
                                                      r->counters);
        LAUNCH_CHECK();
        // 2. offsets: isect_off[1..n] = inclusive prefix sum of the counts
        size_t bytes = r->cub_tmp_bytes;
        cudaCheck(cub::DeviceScan::InclusiveSum(r->cub_tmp, bytes, r->isect_cnt, r->isect_off + 1, (int)nig));
    }
    int64_t total = 0;
    unsigned long long cnt[2] = {0, 0};
    cudaCheck(cudaMemcpy(&total, r->isect_off + nig, sizeof total, cudaMemcpyDeviceToHost));
    cudaCheck(cudaMemcpy(cnt, r->counters, sizeof cnt, cudaMemcpyDeviceToHost));
    r->n_invalid = (long)cnt[0];
    r->n_culled = (long)cnt[1];
    if (total > (int64_t)INT_MAX)
        FATAL("raster_cuda_forward: %lld tile intersections exceed the int32 indexing", (long long)total);
    r->n_isect = (size_t)total;
    if (r->n_isect > r->isect_cap) { // the pool was sized for typical scenes; grow once, loudly
        LOG_W("raster_cuda: %zu tile intersections exceed the pool (%zu); growing it", r->n_isect, r->isect_cap);
        free_pool(r);
        size_t cap = r->n_isect + r->n_isect / 4;
        r->isect_cap = cap < (size_t)INT_MAX ? cap : (size_t)INT_MAX;
        alloc_pool(r);
        ensure_cub_tmp(r);
    }
    int n = (int)r->n_isect;
    if (n > 0) {
        // 3. keys and values
        emit_kernel<<<blocks_for(nig, 256), 256>>>(r->rect, r->zcam, r->isect_off, d.G, r->tiles_x, nt, nig,
                                                   r->keys_unsorted, r->vals_unsorted);
        LAUNCH_CHECK();
        // 4. sort by (image, tile, depth); stable, so ties stay in Gaussian order. The scratch was sized
        //    for the whole pool; should CUB ever want more for fewer items, grow it (loudly) rather than fail
        size_t bytes = sort_tmp_bytes((size_t)n, key_end_bit(r));
        if (bytes > r->cub_tmp_bytes) {
            LOG_W("raster_cuda: the sort needs %zu bytes of scratch, more than the %zu sized at build; growing it",
                  bytes, r->cub_tmp_bytes);
            cudaCheck(cudaFree(r->cub_tmp));
            r->cub_tmp = dmalloc(bytes);
            r->cub_tmp_bytes = bytes;
        }
        bytes = r->cub_tmp_bytes;
        cudaCheck(cub::DeviceRadixSort::SortPairs(r->cub_tmp, bytes, r->keys_unsorted, r->keys, r->vals_unsorted,
                                                  r->isect, n, 0, key_end_bit(r)));
        // 5. tile offsets
        tile_off_kernel<<<blocks_for(n, 256), 256>>>(r->keys, n, ntot, r->tile_off);
        LAUNCH_CHECK();
    } else {
        cudaCheck(cudaMemsetAsync(r->tile_off, 0, ((size_t)ntot + 1) * sizeof(int32_t)));
    }
    // 6. compositing
    if (ntot > 0) {
        if (d.K == 3) launch_fwd<3>(r, in, nt);
        else launch_fwd<0>(r, in, nt);
    }
}

template <int KC>
static void launch_bwd(RasterCuda *r, const RasterIn *in, int nt, const float *dimage, const float *dalpha,
                       const float *ddepth) {
    RasterDims d = r->d;
    render_bwd_kernel<KC><<<(unsigned)(r->n_img * nt), BLOCK, bwd_smem(d.K)>>>(
        r->tile_off, r->isect, r->mean2d, r->conic, r->zcam, in->opacities, in->colors, in->background, d.G, d.Cm, d.W,
        d.H, d.K, r->tiles_x, nt, r->T_final, r->n_contrib, dimage, dalpha, ddepth, r->grad2d);
    LAUNCH_CHECK();
}

extern "C" void raster_cuda_backward(RasterCuda *r, const RasterIn *in, const float *dimage, const float *dalpha,
                                     const float *ddepth, RasterGrad *g) {
    RasterDims d = r->d;
    int nt = r->tiles_x * r->tiles_y, ntot = r->n_img * nt;
    long long nig = (long long)r->n_img * d.G, nbg = (long long)d.B * d.G;
    if (nig > 0) cudaCheck(cudaMemsetAsync(r->grad2d, 0, (size_t)nig * GSTRIDE(d.K) * sizeof(float)));
    // 7. per tile, back to front
    if (ntot > 0 && r->n_isect > 0) {
        if (d.K == 3) launch_bwd<3>(r, in, nt, dimage, dalpha, ddepth);
        else launch_bwd<0>(r, in, nt, dimage, dalpha, ddepth);
    }
    // 8. 2D -> 3D, per (scene, Gaussian)
    if (nbg > 0 && (g->means || g->quats || g->scales || g->opacities || g->colors)) {
        project_bwd_kernel<<<blocks_for(nbg, 128), 128>>>(in->means, in->quats, in->scales, in->w2c, in->K, r->rect,
                                                          r->grad2d, d.B, d.G, d.Cm, d.W, d.H, d.K, r->tiles_x,
                                                          r->tiles_y, g->means, g->quats, g->scales, g->opacities,
                                                          g->colors);
        LAUNCH_CHECK();
    }
    // 9. background
    if (g->background && dimage && ntot > 0) {
        long long n = (long long)ntot * d.K;
        bg_tile_kernel<<<blocks_for(n, 256), 256>>>(r->T_final, dimage, d.W, d.H, d.K, r->tiles_x, nt, n, r->bg_tile);
        LAUNCH_CHECK();
        bg_sum_kernel<<<1, RASTER_MAX_K>>>(r->bg_tile, ntot, d.K, g->background);
        LAUNCH_CHECK();
    }
}
