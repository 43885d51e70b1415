// loss_image_decl.h — the image losses over `real` with names R_(...) (docs/losses.md).
// No include guard on purpose: loss_image.h includes it once per precision. Images are channel-last
// [N, H, W, C]; backward functions ACCUMULATE (+=) into the gradient they are given. Every sum runs
// in a fixed order (double partials per block or row, then in order), so results are bitwise the same
// for any OpenMP thread count.

// mean |pred − gt| over all n elements (accumulated in double)
double R_(l1_forward)(const real *pred, const real *gt, size_t n);
// dpred[n] += scale · sign(pred − gt) / n   (sign(0) = 0, as torch's abs backward)
void R_(l1_backward)(real *dpred, const real *pred, const real *gt, size_t n, double scale);

// Σ_i w[i / C]·|pred_i − gt_i| / (npx·C) over the npx·C elements: the L1 with a per-pixel weight w[npx]
// (channel-last images, C channels share their pixel's weight). w = 1 everywhere gives l1_forward's value.
double R_(l1_weighted_forward)(const real *pred, const real *gt, const real *w, size_t npx, int C);
// dpred[i] += scale · w[i / C] · sign(pred_i − gt_i) / (npx·C)
void R_(l1_weighted_backward)(real *dpred, const real *pred, const real *gt, const real *w, size_t npx, int C,
                              double scale);

// mean (a − b)² over n elements (double accumulation); PSNR = psnr_from_mse(mse) for [0, 1] images
double R_(mse)(const real *a, const real *b, size_t n);

typedef struct {
    int N, H, W, C;
    real g[SSIM_WIN]; // the 1-D window, normalised to sum 1 (in double, then rounded to real)
    real *map;        // [N, H, W, C] the SSIM map of the last forward
    real *dmap;       // [N, 3, H, W·C] ∂map/∂μx, ∂map/∂E[x²], ∂map/∂E[xy], saved by the forward
    int G;            // images per pass group (scratch bound, see loss_image.c); may be lowered after build
    real *hbuf;       // [G, 5, H + 10, W·C] horizontal-pass planes of a group of images, 5 zero rows
                      // above and below each (forward: 5 planes per image, backward: 3)
    double *rowsum;   // [N, H] per-row sums of the SSIM map
} R_(Ssim);

// Allocates everything for [N, H, W, C] images; forward/backward allocate nothing.
void R_(ssim_build)(R_(Ssim) *s, int N, int H, int W, int C);
void R_(ssim_free)(R_(Ssim) *s);
// Mean SSIM over all N·H·W·C map values; x[N,H,W,C] = prediction, y[N,H,W,C] = ground truth.
// per[N] (may be NULL): each image's mean. Saves what the backward needs.
double R_(ssim_forward)(R_(Ssim) *s, const real *x, const real *y, real *per);
// dx[N,H,W,C] += scale · d(mean SSIM)/dx with y fixed. Must follow ssim_forward on the same x, y.
void R_(ssim_backward)(R_(Ssim) *s, real *dx, const real *x, const real *y, double scale);
