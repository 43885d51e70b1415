// lpips_decl.h — the LPIPS network over `real` with names R_(...) (docs/lpips.md).
// No include guard on purpose: lpips.h includes it once per precision.
// Layout: channel-last [image, y, x, c]. The trunk runs on 2N images at once: x (the prediction) as
// images 0..N−1, y (the target) as images N..2N−1; the backward goes through the x half only.

typedef struct {
    int net, n_conv;
    int N, H, W, B;                 // pairs, image size, B = 2N images through the trunk
    int nthreads;                   // OpenMP threads of the loops here (OpenBLAS keeps its own)
    LpipsConv conv[LPIPS_MAX_CONV]; // shapes, pools, taps (the float pointers are not used here)
    int tap_ch[LPIPS_TAPS];
    // per conv i: the input grid (after its pool, if any), the pre-pool grid and the output grid
    int ih[LPIPS_MAX_CONV], iw[LPIPS_MAX_CONV], ph[LPIPS_MAX_CONV], pw[LPIPS_MAX_CONV];
    int oh[LPIPS_MAX_CONV], ow[LPIPS_MAX_CONV];
    int tap_conv[LPIPS_TAPS]; // which conv's ReLU output each tap is
    // weights, copied to `real`
    real *wbuf;               // one buffer for all below
    real *cw[LPIPS_MAX_CONV]; // [OC, kh, kw, IC] (permuted from PyTorch's [OC, IC, kh, kw] for im2col)
    real *cb[LPIPS_MAX_CONV]; // [OC]
    real *lin[LPIPS_TAPS];    // [tap_ch]
    // activations of the last forward
    real *in;                     // [B, H, W, 3] after 2x−1 and the ScalingLayer
    real *act[LPIPS_MAX_CONV];    // [B, oh, ow, OC] after the ReLU
    real *pool[LPIPS_MAX_CONV];   // [B, ih, iw, IC] pooled input of conv i (NULL without a pool)
    uint8_t *arg[LPIPS_MAX_CONV]; // [B, ih, iw, IC] argmax of each pool window, ky·k + kx (NULL without)
    real *norm[LPIPS_TAPS];       // [B, h, w] sqrt(Σ_c f²) of each tap position
    double *dist;                 // [N, h, w] scratch: per-position distance of one tap
    double *rowsum;               // [N·h] scratch: row sums of dist (fixed-order spatial sums)
    double *tap_d[LPIPS_TAPS];    // [N] each tap's spatial mean per pair (of the last forward)
    double *pair_d;               // [N] LPIPS per pair (sum over taps)
    // scratch
    real *cols; // im2col chunk [cols_cap]: rows of (ky, kx, c) patches, or their gradient
    size_t cols_cap;
    real *g0, *g1; // backward ping-pong [N · largest activation]
    int have_forward;
} R_(Lpips);

// Allocates everything for N pairs of H×W images and copies the weights (FATAL when the images are
// smaller than lpips_min_size: use lpips_check_size first for a recoverable error).
// nthreads ≤ 0: omp_get_max_threads(). Results do not depend on nthreads.
void R_(lpips_build)(R_(Lpips) *l, const LpipsWeights *w, int N, int H, int W, int nthreads);
void R_(lpips_free)(R_(Lpips) *l);
// x, y: [N, H, W, 3] RGB in [0, 1] (the lpips package's normalize=True: maps to 2x−1, then the ScalingLayer).
// Returns the mean over the N pairs; per[N] (may be NULL) receives each pair's distance.
double R_(lpips_forward)(R_(Lpips) *l, const real *x, const real *y, real *per);
// dx[N, H, W, 3] += scale · d(mean over pairs)/dx, y held fixed. Must follow lpips_forward on the same x, y.
void R_(lpips_backward)(R_(Lpips) *l, real *dx, double scale);
