// loss_image.c — the image losses on the CPU: L1, SSIM (forward and analytic backward) and MSE, over
// `real` (real.h), compiled twice (float, and double with -DAVAT3R_F64). docs/losses.md has the exact
// definitions. OpenMP over rows; every element is computed by the same operations in the same order
// whatever thread computes it, and every sum runs over fixed blocks in double, then in block order,
// so results are bitwise identical for any thread count.
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "loss_image.h"
#include "../common/util.h"
#include "../common/real.h"
#include "loss_math.h" // the elementwise L1 formulas, shared with train/cuda/loss_cuda.cu
#include "ssim_math.h" // the SSIM window and map formula, shared with train/cuda/ssim_cuda.cu

// ----------------------------------------------------------------------------------------------
// L1 and MSE: elementwise, summed over a fixed partition of [0, n)

// The partition depends on n only (never on the thread count): NBLK contiguous blocks, each summed in
// order, then the block sums in order. Small inputs stay on one thread.
#define NBLK 256
#define PAR_MIN 32768

// Σ |a − b| (squared = 0) or Σ (a − b)² (squared = 1) over that partition, in double; with a per-pixel
// weight w (C elements a pixel; squared = 0 only), Σ w·|a − b|.
static double R_(diff_sum)(const real *a, const real *b, const real *w, int C, size_t n, int squared) {
    double part[NBLK];
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int blk = 0; blk < NBLK; blk++) {
        size_t i0 = n * blk / NBLK, i1 = n * (blk + 1) / NBLK;
        double acc = 0;
        if (squared)
            for (size_t i = i0; i < i1; i++) {
                double d = (double)a[i] - (double)b[i];
                acc += d * d;
            }
        else if (w)
            for (size_t i = i0; i < i1; i++) acc += R_(l1w_term)(a[i], b[i], w[i / C]); // loss_math.h
        else
            for (size_t i = i0; i < i1; i++) acc += R_(l1_term)(a[i], b[i]); // loss_math.h
        part[blk] = acc;
    }
    double sum = 0;
    for (int blk = 0; blk < NBLK; blk++) sum += part[blk];
    return sum;
}

double R_(l1_forward)(const real *pred, const real *gt, size_t n) {
    return n ? R_(diff_sum)(pred, gt, NULL, 1, n, 0) / (double)n : 0;
}

void R_(l1_backward)(real *dpred, const real *pred, const real *gt, size_t n, double scale) {
    if (n == 0) return;
    const real k = R_(l1_grad_k)(scale, n);
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) dpred[i] += R_(l1_grad)(pred[i], gt[i], k); // loss_math.h
}

double R_(l1_weighted_forward)(const real *pred, const real *gt, const real *w, size_t npx, int C) {
    size_t n = npx * (size_t)C;
    return n ? R_(diff_sum)(pred, gt, w, C, n, 0) / (double)n : 0;
}

void R_(l1_weighted_backward)(real *dpred, const real *pred, const real *gt, const real *w, size_t npx, int C,
                              double scale) {
    size_t n = npx * (size_t)C;
    if (n == 0) return;
    const real k = R_(l1_grad_k)(scale, n);
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) dpred[i] += R_(l1w_grad)(pred[i], gt[i], w[i / C], k); // loss_math.h
}

double R_(mse)(const real *a, const real *b, size_t n) { return n ? R_(diff_sum)(a, b, NULL, 1, n, 1) / (double)n : 0; }

// ----------------------------------------------------------------------------------------------
// SSIM. Notation (per pixel and channel): μx = g*x, μy = g*y, Exx = g*x², Eyy = g*y², Exy = g*xy with
// g the 11×11 window (zero padding), σx² = Exx − μx², σy² = Eyy − μy², σxy = Exy − μxμy and
//   map = A1·A2 / (B1·B2),  A1 = 2μxμy + C1, A2 = 2σxy + C2, B1 = μx² + μy² + C1, B2 = σx² + σy² + C2.
// The 2-D window is the outer product g1⊗g1, so each blur is a horizontal then a vertical 1-D pass.
// In channel-last rows [W·C], a horizontal tap k reads the element (k − R)·C away.

enum { R = SSIM_RADIUS, WIN = SSIM_WIN };
#define SSIM_HBUF_BUDGET ((size_t)1 << 22) // reals of horizontal-pass scratch (16 MB in float)

void R_(ssim_build)(R_(Ssim) *s, int N, int H, int W, int C) {
    if (N <= 0 || H <= 0 || W <= 0 || C <= 0) FATAL("ssim_build: bad image shape [%d, %d, %d, %d]", N, H, W, C);
    memset(s, 0, sizeof *s);
    s->N = N, s->H = H, s->W = W, s->C = C;
    R_(ssim_window)(s->g);
    size_t img = (size_t)H * W * C, hslot = 5 * (size_t)(H + 2 * R) * W * C;
    s->map = mallocCheck(sizeof(real) * N * img);
    s->dmap = mallocCheck(sizeof(real) * 3 * N * img);
    // Images go through the passes in groups of G: one parallel loop over the group's (image, row) pairs
    // per pass, so a batch of small images costs 4 barriers, not 4 per image (on a loaded machine each
    // barrier can cost a scheduler time slice). G is bounded by SSIM_HBUF_BUDGET reals of scratch.
    s->G = (int)(SSIM_HBUF_BUDGET / hslot);
    s->G = s->G < 1 ? 1 : (s->G > N ? N : s->G);
    // R zero rows above and below each plane: the vertical pass then always runs all 11 taps (a fixed
    // trip count the compiler unrolls and vectorises); the padding rows are never written.
    s->hbuf = callocCheck(s->G * hslot, sizeof(real));
    s->rowsum = mallocCheck(sizeof(double) * N * H);
}

void R_(ssim_free)(R_(Ssim) *s) {
    free(s->map);
    free(s->dmap);
    free(s->hbuf);
    free(s->rowsum);
    memset(s, 0, sizeof *s);
}

// Horizontal pass of one row for the forward: the five moments' row sums h[q·plane + i] of x, y, x², y²,
// xy. Taps that fall outside [0, W) are zero padding and are skipped; taps always run in ascending k.
static void hpass_moments(real *restrict h, size_t plane, const real *restrict xr, const real *restrict yr,
                          const real *restrict g, int W, int C) {
    for (int px = 0; px < W; px++) {
        if (px >= R && px < W - R) { // interior: all taps inside, vectorised over the flat index
            int i0 = px * C, i1 = (W - R) * C;
#pragma omp simd
            for (int i = i0; i < i1; i++) {
                real a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0;
                for (int k = 0; k < WIN; k++) {
                    real xv = xr[i + (k - R) * C], yv = yr[i + (k - R) * C];
                    a0 += g[k] * xv, a1 += g[k] * yv;
                    a2 += g[k] * (xv * xv), a3 += g[k] * (yv * yv), a4 += g[k] * (xv * yv);
                }
                h[i] = a0, h[plane + i] = a1, h[2 * plane + i] = a2, h[3 * plane + i] = a3, h[4 * plane + i] = a4;
            }
            px = W - R - 1;
            continue;
        }
        int k0 = px < R ? R - px : 0, k1 = W - 1 - px + R < WIN - 1 ? W - 1 - px + R : WIN - 1; // taps [k0, k1]
        for (int c = 0; c < C; c++) {
            int i = px * C + c;
            real a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0;
            for (int k = k0; k <= k1; k++) {
                real xv = xr[i + (k - R) * C], yv = yr[i + (k - R) * C];
                a0 += g[k] * xv, a1 += g[k] * yv;
                a2 += g[k] * (xv * xv), a3 += g[k] * (yv * yv), a4 += g[k] * (xv * yv);
            }
            h[i] = a0, h[plane + i] = a1, h[2 * plane + i] = a2, h[3 * plane + i] = a3, h[4 * plane + i] = a4;
        }
    }
}

// Horizontal pass of one row of three planes for the backward: h[q·plane + i] = Σ_k g[k] in[q·plane + i + (k−R)·C].
static void hpass3(real *restrict h, const real *restrict in, size_t hplane, size_t iplane, const real *restrict g,
                   int W, int C) {
    for (int px = 0; px < W; px++) {
        if (px >= R && px < W - R) {
            int i0 = px * C, i1 = (W - R) * C;
#pragma omp simd
            for (int i = i0; i < i1; i++) {
                real a0 = 0, a1 = 0, a2 = 0;
                for (int k = 0; k < WIN; k++) {
                    int j = i + (k - R) * C;
                    a0 += g[k] * in[j], a1 += g[k] * in[iplane + j], a2 += g[k] * in[2 * iplane + j];
                }
                h[i] = a0, h[hplane + i] = a1, h[2 * hplane + i] = a2;
            }
            px = W - R - 1;
            continue;
        }
        int k0 = px < R ? R - px : 0, k1 = W - 1 - px + R < WIN - 1 ? W - 1 - px + R : WIN - 1;
        for (int c = 0; c < C; c++) {
            int i = px * C + c;
            real a0 = 0, a1 = 0, a2 = 0;
            for (int k = k0; k <= k1; k++) {
                int j = i + (k - R) * C;
                a0 += g[k] * in[j], a1 += g[k] * in[iplane + j], a2 += g[k] * in[2 * iplane + j];
            }
            h[i] = a0, h[hplane + i] = a1, h[2 * hplane + i] = a2;
        }
    }
}

double R_(ssim_forward)(R_(Ssim) *s, const real *x, const real *y, real *per) {
    const int N = s->N, H = s->H, W = s->W, C = s->C, L = W * C, G = s->G;
    const size_t plane = (size_t)H * L, hplane = (size_t)(H + 2 * R) * L;
    const real *g = s->g;
    // group slot j, plane q, row r (in [−R, H + R)) at hbuf + (5j + q)·hplane + (r + R)·L
    real *hb = s->hbuf + (size_t)R * L;
#pragma omp parallel
    for (int n0 = 0; n0 < N; n0 += G) {
        const int rows = (N - n0 < G ? N - n0 : G) * H; // (image, row) pairs of this group
#pragma omp for schedule(static)
        for (int t = 0; t < rows; t++) {
            int j = t / H, r = t % H;
            size_t o = (size_t)(n0 + j) * plane + (size_t)r * L;
            hpass_moments(hb + 5 * j * hplane + (size_t)r * L, hplane, x + o, y + o, g, W, C);
        }
        // (implicit barrier: the vertical pass reads neighbouring rows)
#pragma omp for schedule(static)
        for (int t = 0; t < rows; t++) {
            int j = t / H, r = t % H, n = n0 + j;
            const real *h0 = hb + 5 * j * hplane + ((ptrdiff_t)r - R) * L; // tap k: row r + k − R (zero outside)
            real *map = s->map + n * plane + (size_t)r * L;
            real *dmu = s->dmap + 3 * n * plane + (size_t)r * L, *dxx = dmu + plane, *dxy = dmu + 2 * plane;
#pragma omp simd
            for (int i = 0; i < L; i++) {
                real mx = 0, my = 0, exx = 0, eyy = 0, exy = 0;
#pragma GCC unroll 11
                for (int k = 0; k < WIN; k++) {
                    const real *h = h0 + (size_t)k * L + i;
                    mx += g[k] * h[0], my += g[k] * h[hplane], exx += g[k] * h[2 * hplane];
                    eyy += g[k] * h[3 * hplane], exy += g[k] * h[4 * hplane];
                }
                map[i] = R_(ssim_map_terms)(mx, my, exx, eyy, exy, dmu + i, dxx + i, dxy + i); // ssim_math.h
            }
            double acc = 0; // row sum in double, in index order
            for (int i = 0; i < L; i++) acc += map[i];
            s->rowsum[(size_t)n * H + r] = acc;
        }
        // (implicit barrier: the next group overwrites the scratch)
    }
    double total = 0;
    for (int n = 0; n < N; n++) {
        double acc = 0;
        for (int r = 0; r < H; r++) acc += s->rowsum[(size_t)n * H + r];
        if (per) per[n] = (real)(acc / (double)plane);
        total += acc;
    }
    return total / ((double)plane * N);
}

// dL/dx = (scale / (N·H·W·C)) · (g ⊛ ∂map/∂μx + 2x · g ⊛ ∂map/∂Exx + y · g ⊛ ∂map/∂Exy), where ⊛ is the
// adjoint of the zero-padded blur; the window is symmetric, so the adjoint is the same blur.
void R_(ssim_backward)(R_(Ssim) *s, real *dx, const real *x, const real *y, double scale) {
    const int N = s->N, H = s->H, W = s->W, C = s->C, L = W * C, G = s->G;
    const size_t plane = (size_t)H * L, hplane = (size_t)(H + 2 * R) * L;
    const real *g = s->g, kscale = (real)(scale / ((double)plane * N));
    real *hb = s->hbuf + (size_t)R * L; // as in the forward; 3 of each slot's 5 planes are used
#pragma omp parallel
    for (int n0 = 0; n0 < N; n0 += G) {
        const int rows = (N - n0 < G ? N - n0 : G) * H;
#pragma omp for schedule(static)
        for (int t = 0; t < rows; t++) {
            int j = t / H, r = t % H;
            const real *dm = s->dmap + 3 * (size_t)(n0 + j) * plane + (size_t)r * L;
            hpass3(hb + 5 * j * hplane + (size_t)r * L, dm, hplane, plane, g, W, C);
        }
#pragma omp for schedule(static)
        for (int t = 0; t < rows; t++) {
            int j = t / H, r = t % H;
            const real *h0 = hb + 5 * j * hplane + ((ptrdiff_t)r - R) * L;
            size_t o = (size_t)(n0 + j) * plane + (size_t)r * L;
            const real *xr = x + o, *yr = y + o;
            real *dr = dx + o;
#pragma omp simd
            for (int i = 0; i < L; i++) {
                real b0 = 0, b1 = 0, b2 = 0;
                for (int k = 0; k < WIN; k++) {
                    const real *h = h0 + (size_t)k * L + i;
                    b0 += g[k] * h[0], b1 += g[k] * h[hplane], b2 += g[k] * h[2 * hplane];
                }
                dr[i] += kscale * (b0 + 2 * xr[i] * b1 + yr[i] * b2);
            }
        }
    }
}
