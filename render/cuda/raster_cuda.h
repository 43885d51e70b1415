// raster_cuda.h — the Gaussian rasterizer on the GPU (docs/render.md, section "CUDA"): float32, the same
// math and the same intersection order as the CPU rasterizer in render/raster.c, which is its oracle
// (tests/cuda/test_raster_cuda.c). gsplat-style pipeline, dense mode: all B·Cm target images of a batch
// in one launch per stage.
//
// Every pointer in RasterIn / RasterGrad and the dimage/dalpha/ddepth arguments is a DEVICE pointer;
// every buffer below is device memory, allocated once by raster_cuda_build. The forward and the
// backward never allocate, except that a forward needing more tile intersections than the pool holds
// grows the pool once and logs a warning (as the CPU rasterizer does).
//
// Synchronisation: raster_cuda_forward synchronises once (it reads the intersection count back to the
// host to size the sort); everything else is queued on the default stream without a host wait.
#ifndef AVAT3R_RASTER_CUDA_H
#define AVAT3R_RASTER_CUDA_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
#include "../raster.h"

typedef struct {
    RasterDims d;
    int tiles_x, tiles_y, n_img;    // n_img = B·Cm; tiles per image = tiles_x·tiles_y
    // outputs
    float *image;                   // [B, Cm, H, W, K]
    float *alpha;                   // [B, Cm, H, W]
    float *depth;                   // [B, Cm, H, W] accumulated depth
    // saved by the forward for the backward (same meaning as in raster_decl.h)
    float *mean2d;                  // [n_img, G, 2]   (0 where culled)
    float *conic;                   // [n_img, G, 3]   (0 where culled)
    float *zcam;                    // [n_img, G]      (0 where culled)
    int32_t *rect;                  // [n_img, G, 4]   tiles x0, x1, y0, y1 (empty when culled)
    uint8_t *valid;                 // [B, G]
    float *T_final;                 // [n_img, H, W]
    int32_t *n_contrib;             // [n_img, H, W]   list positions used (last contributor + 1)
    int64_t *isect_cnt;             // [n_img·G]       tiles touched per (image, Gaussian)
    int64_t *isect_off;             // [n_img·G + 1]   inclusive prefix sum, isect_off[0] = 0
    int32_t *tile_off;              // [n_img·tiles + 1] offsets into isect (like the CPU's tile_off)
    uint64_t *keys_unsorted, *keys; // [isect_cap] (image·tiles + tile) << 32 | float bits of z
    int32_t *vals_unsorted, *isect; // [isect_cap] Gaussian ids; isect is sorted by (image, tile, z, id)
    size_t isect_cap, n_isect;
    void *cub_tmp;                  // CUB scan / radix-sort scratch
    size_t cub_tmp_bytes;
    // backward scratch
    float *grad2d;                  // [n_img, G, 7 + K]: du dv dA dB dC dopacity dz dcolor[K]
    float *bg_tile;                 // [n_img·tiles, K] per-tile background gradient
    unsigned long long *counters;   // [2] invalid, culled (device)
    // counters of the last forward (host copies)
    long n_invalid, n_culled;
} RasterCuda;

int raster_cuda_device_count(void); // 0 when no usable device (never fails)
// Allocates everything for these dimensions (same rules and isect_per_gaussian meaning as raster_build).
void raster_cuda_build(RasterCuda *r, RasterDims d, double isect_per_gaussian);
void raster_cuda_free(RasterCuda *r);
void raster_cuda_forward(RasterCuda *r, const RasterIn *in);
// Gradients are ACCUMULATED (+=) into g's non-NULL entries; dimage, dalpha, ddepth may be NULL (= zero).
// Must follow raster_cuda_forward on the same inputs.
void raster_cuda_backward(RasterCuda *r, const RasterIn *in, const float *dimage, const float *dalpha,
                          const float *ddepth, RasterGrad *g);

#ifdef __cplusplus
}
#endif
#endif
