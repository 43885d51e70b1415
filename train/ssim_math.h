// ssim_math.h — SSIM's window and its per-element map formula, written once over `real` for the CPU
// (train/loss_image.c, float and double; real and R_ from common/real.h) and the GPU
// (train/cuda/ssim_cuda.cu: real = float, R_(x) = x, SSIM_FN = __host__ __device__ static inline), so both
// compute every map value and derivative with the same operations. Needs train/loss_image.h's SSIM_*
// constants first. No include guard, like loss_math.h: each precision of loss_image.c includes it once.
#ifndef SSIM_FN
#define SSIM_FN static inline
#endif

// The 1-D window g[k] ∝ exp(−(k − R)²/(2σ²)), normalised to sum 1 in double, then rounded to real.
SSIM_FN void R_(ssim_window)(real *g) {
    double w[SSIM_WIN], sum = 0;
    for (int i = 0; i < SSIM_WIN; i++)
        w[i] = exp(-(double)((i - SSIM_RADIUS) * (i - SSIM_RADIUS)) / (2 * SSIM_SIGMA * SSIM_SIGMA));
    for (int i = 0; i < SSIM_WIN; i++) sum += w[i];
    for (int i = 0; i < SSIM_WIN; i++) g[i] = (real)(w[i] / sum);
}

// One map value from the blurred moments μx, μy, E[x²], E[y²], E[xy]:
//   map = A1·A2 / (B1·B2), A1 = 2μxμy + C1, A2 = 2σxy + C2, B1 = μx² + μy² + C1, B2 = σx² + σy² + C2,
// and its partial derivatives w.r.t. μx, E[x²], E[xy] (μy, E[y²] fixed: y is constant); one reciprocal
// for the three (1/B2 = B1/den).
SSIM_FN real R_(ssim_map_terms)(real mx, real my, real exx, real eyy, real exy, real *dmu, real *dxx, real *dxy) {
    const real c1 = (real)SSIM_C1, c2 = (real)SSIM_C2;
    real sxx = exx - mx * mx, syy = eyy - my * my, sxy = exy - mx * my;
    real a1 = 2 * mx * my + c1, a2 = 2 * sxy + c2, b1 = mx * mx + my * my + c1, b2 = sxx + syy + c2;
    real den = b1 * b2, m = (a1 * a2) / den, inv = 1 / den;
    *dmu = (2 * my * (a2 - a1) - 2 * mx * m * (b2 - b1)) * inv;
    *dxx = -m * b1 * inv;
    *dxy = 2 * a1 * inv;
    return m;
}
