// raster.h — the differentiable Gaussian rasterizer (docs/render.md), float and double (_f64).
#ifndef AVAT3R_RASTER_H
#define AVAT3R_RASTER_H
#include <stddef.h>
#include <stdint.h>

#define RASTER_NEAR 0.01
#define RASTER_BLUR 0.3
#define RASTER_TILE 16
#define RASTER_ALPHA_MAX 0.99
#define RASTER_ALPHA_MIN (1.0 / 255.0)
#define RASTER_T_MIN 1e-4
#define RASTER_CLAMP_FOV 1.3
#define RASTER_ONE_MINUS_ALPHA_MIN 1e-6
#define RASTER_MAX_K 64 // colour channels per Gaussian

typedef struct {
    int B, G, Cm, W, H, K; // scenes, Gaussians per scene, cameras per scene, image size, channels
} RasterDims;

#define REAL_DECL "../render/raster_decl.h" // relative to common/, where it is included
#include "../common/real_decl.h"

#endif
