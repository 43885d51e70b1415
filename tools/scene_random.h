// scene_random.h — Gaussian scenes for rasterizer tests and benchmarks: random clouds around the
// origin, and pixel-aligned scenes like the model produces (one Gaussian per input pixel).
#ifndef AVAT3R_SCENE_RANDOM_H
#define AVAT3R_SCENE_RANDOM_H
#include <stdint.h>
#include "raster.h"

typedef struct {
    RasterDims d;
    // float64 masters and float32 copies (scene_sync32 refreshes the copies)
    double *means, *quats, *scales, *opac, *colors, *w2c, *K, *bg;
    float *means32, *quats32, *scales32, *opac32, *colors32, *w2c32, *K32, *bg32;
} Scene;

// Gaussians in a 0.3 m cube, scales 0.01–0.08 m, some nearly opaque; cameras ~1 m away.
void scene_random(Scene *s, RasterDims d, uint64_t seed);
// One Gaussian per pixel of V input cameras of vw×vh pixels, ~1 m along the pixel's ray, scale ≈ the
// pixel footprint; rendered into d.Cm target cameras of d.W×d.H. d.G is set to V·vw·vh.
void scene_aligned(Scene *s, RasterDims d, int V, int vw, int vh, uint64_t seed);
void scene_sync32(Scene *s);
void scene_free(Scene *s);
RasterIn scene_in32(const Scene *s);
RasterIn_f64 scene_in64(const Scene *s);
// Writes the scene and loss weights (wI [B,Cm,H,W,K], wA and wD [B,Cm,H,W]; NULL = zeros) as the
// tensor bundle tools/reference/raster_ref.py reads (docs/render.md), float64.
void scene_write(const Scene *s, const char *path, const double *wI, const double *wA, const double *wD);

#endif
