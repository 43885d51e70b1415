// raster_emu.cpp — runs the CUDA rasterizer's kernels (render/cuda/raster_kernels.cuh) on the CPU emulator
// of dev/cuda/emu.h (included by cuda_emu.cpp), in place of raster_cuda.cu, whose host code is mirrored
// below by hand (same stages, CUB replaced by a host
// prefix sum and std::stable_sort; raster_cuda.cu launches with <<<>>>, which g++ cannot parse).
// Besides what emu.h leaves out, this does NOT check that host code itself. With glibc's expf on both
// sides the forward is expected to be bit-identical to render/raster.c.
//
// Build and run: bash tools/cuda_emu.sh raster   (or step: the training step renders through it)
#include "emu.h"

#include <limits.h>

#include "../../model/cuda/launch.h" // blocks_for
#include "../../render/cuda/raster_cuda.h"
#include "../../render/cuda/raster_kernels.cuh"


// ----------------------------------------------------------------------------------------------
// raster_cuda.h on the emulator: a mirror of raster_cuda.cu's host code

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
