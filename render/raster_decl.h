// raster_decl.h — the CPU Gaussian rasterizer over `real` with names R_(...) (docs/render.md).
// No include guard on purpose: raster.h includes it once per precision.

typedef struct { // inputs of one call; shapes in docs/render.md
    const real *means;      // [B, G, 3]
    const real *quats;      // [B, G, 4] (w, x, y, z), normalised inside
    const real *scales;     // [B, G, 3]
    const real *opacities;  // [B, G]
    const real *colors;     // [B, G, K]
    const real *w2c;        // [B, Cm, 3, 4]
    const real *K;          // [B, Cm, 3, 3]
    const real *background; // [K]
} R_(RasterIn);

typedef struct { // gradients, ACCUMULATED (+=); NULL entries are skipped
    real *means, *quats, *scales, *opacities, *colors, *background;
} R_(RasterGrad);

typedef struct {
    RasterDims d;
    int tiles_x, tiles_y, n_img;   // n_img = B·Cm
    // outputs
    real *image;                   // [B, Cm, H, W, K]
    real *alpha;                   // [B, Cm, H, W]
    real *depth;                   // [B, Cm, H, W] accumulated depth (expected depth = depth/alpha)
    // saved by the forward for the backward
    real *mean2d;                  // [n_img, G, 2]
    real *conic;                   // [n_img, G, 3]
    real *zcam;                    // [n_img, G]
    real *halfw;                   // [n_img, G, 2] support box half-widths in pixels (−1: none, +∞: whole tile)
    int32_t *rect;                 // [n_img, G, 4] tiles x0, x1, y0, y1 (empty when culled)
    uint8_t *valid;                // [B, G]
    real *T_final;                 // [n_img, H, W]
    int32_t *n_contrib;            // [n_img, H, W] list positions used (last contributor + 1)
    int64_t *tile_off;             // [n_img · tiles + 1] offsets into isect
    int64_t *tile_cur;             // [n_img · tiles] fill cursors (binning scratch)
    int32_t *isect;                // [capacity] Gaussian ids, sorted by (image, tile, z, id)
    size_t isect_cap, n_isect;
    int32_t *sort_ids;             // [capacity] the per-tile radix sort's second id buffer
    void *sort_keys;               // [2 · capacity] its depth keys (uint32 for float, uint64 for double)
    // backward scratch
    real *isect_grad;              // [capacity, 7 + K]: du dv dA dB dC dopacity dz dcolor[K]
    real *g_acc;                   // [G, 7 + K] one image's per-Gaussian sums
    real *bg_tile;                 // [n_img · tiles, K] per-tile background gradient
    // counters of the last forward: Gaussians left out (n_nonfinite of them for a NaN or Inf; the others
    // for a zero scale or rotation), and (image, Gaussian) pairs culled by the projection
    long n_invalid, n_nonfinite, n_culled;
} R_(Raster);

// Allocates everything for these dimensions. isect_per_gaussian sizes the intersection pool
// (capacity = n_img · G · isect_per_gaussian); the forward grows it (and logs) only if a call needs more.
void R_(raster_build)(R_(Raster) *r, RasterDims d, double isect_per_gaussian);
void R_(raster_free)(R_(Raster) *r);
void R_(raster_forward)(R_(Raster) *r, const R_(RasterIn) *in);
// dimage [B,Cm,H,W,K], dalpha and ddepth [B,Cm,H,W] (either may be NULL = zero). Must follow
// raster_forward on the same inputs.
void R_(raster_backward)(R_(Raster) *r, const R_(RasterIn) *in, const real *dimage, const real *dalpha,
                         const real *ddepth, R_(RasterGrad) *g);
// One tile's depth sort: ids[0, n) (ascending on entry) reordered by (z[id], id) ascending, as a stable LSD
// radix sort on z's bits. ids2: n ids of scratch; keys: 2n keys of scratch, each as wide as `real`.
void R_(raster_sort_by_depth)(int32_t *ids, int32_t *ids2, void *keys, int n, const real *z);
