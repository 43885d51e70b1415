// test_loss_image.c — the image losses (train/loss_image.c): L1 (plain and region-weighted) and SSIM backward against central
// differences in double, both C precisions against the PyTorch reference (tools/reference/loss_ref.py,
// conv2d + autograd), SSIM(x, x) = 1, and bitwise independence of the thread count.
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../common/atb.h"
#include "../common/rng.h"
#include "../common/timer.h"
#include "loss_image.h"
#include "test.h"

// Images in [0, 1], exactly representable in float (so the float code, the double code and PyTorch
// all see the same inputs). kind 0: uniform; 1: mostly saturated (0, 1 or within 1e-3 of them);
// 2: a noisy copy of `base` (high SSIM).
static void fill(double *v, size_t n, uint64_t stream, int kind, const double *base) {
    Rng r = rng_make(2024, stream);
    for (size_t i = 0; i < n; i++) {
        double u = rng_uniform64_at(&r, 2 * i), w = rng_uniform64_at(&r, 2 * i + 1), t;
        if (kind == 0) t = u;
        else if (kind == 1) t = u < 0.35 ? 0 : u < 0.7 ? 1 : u < 0.85 ? 1e-3 * w : 1 - 1e-3 * w;
        else t = fmin(1, fmax(0, base[i] + 0.05 * (u - 0.5)));
        v[i] = (double)(float)t;
    }
}

static float *to32(const double *v, size_t n) {
    float *o = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) o[i] = (float)v[i];
    return o;
}

// Relative error of an FD check, as tests/test_render.c: |fd − an| / max(|fd| + |an|, 1e-3·max|an|).
static double fd_rel(double fd, double an, double gmax) {
    return fabs(fd - an) / fmax(fabs(fd) + fabs(an), 1e-3 * gmax + 1e-300);
}

// ----------------------------------------------------------------------------------------------
// finite differences (double)

// L1 is piecewise linear: away from its kinks central differences are exact up to rounding. Every
// |pred − gt| ≥ 1e-3 here, far beyond h = 1e-6. Rounding: the mean (~0.3) carries ~1e-16 absolute
// error, so fd has ~1e-16/2e-6 = 5e-11 against |grad| = 1/n ≈ 7.5e-4: ~1e-7 relative. Tolerance 1e-5.
// The region-weighted L1 (the mouth term): FD as above with weights 0 (outside the region), 1 and
// fractions; weights of 1 give l1_forward's value and gradient bit for bit (same terms, same order).
static int test_l1_weighted(void) {
    const int N = 2, H = 9, W = 11, C = 3;
    size_t npx = (size_t)N * H * W, n = npx * C;
    double *p = malloc(8 * n), *t = malloc(8 * n), *g = calloc(n, 8), *w = malloc(8 * npx), *one = malloc(8 * npx);
    fill(p, n, 11, 0, NULL);
    fill(t, n, 12, 0, NULL);
    fill(w, npx, 13, 0, NULL);
    for (size_t i = 0; i < n; i++)
        if (fabs(p[i] - t[i]) < 1e-3) p[i] = t[i] + (p[i] < t[i] ? -2e-3 : 2e-3);
    for (size_t i = 0; i < npx; i++) w[i] = w[i] < 0.4 ? 0 : w[i] < 0.7 ? 1 : w[i], one[i] = 1;
    l1_weighted_backward_f64(g, p, t, w, npx, C, 2.0); // scale 2
    double worst = 0, gmax = 0;
    for (size_t i = 0; i < n; i++) g[i] /= 2, gmax = fmax(gmax, fabs(g[i]));
    for (size_t i = 0; i < n; i++) {
        double keep = p[i], h = 1e-6;
        p[i] = keep + h;
        double lp = l1_weighted_forward_f64(p, t, w, npx, C);
        p[i] = keep - h;
        double lm = l1_weighted_forward_f64(p, t, w, npx, C);
        p[i] = keep;
        worst = fmax(worst, fd_rel((lp - lm) / (2 * h), g[i], gmax));
    }
    // zero weight: zero gradient there; weights of 1: the plain L1, bitwise (float)
    int zero_ok = 1;
    for (size_t i = 0; i < n; i++) zero_ok &= w[i / C] != 0 || g[i] == 0;
    float *p32 = to32(p, n), *t32 = to32(t, n), *one32 = to32(one, npx), *ga = calloc(n, 4), *gb = calloc(n, 4);
    double la = l1_forward(p32, t32, n), lb = l1_weighted_forward(p32, t32, one32, npx, C);
    l1_backward(ga, p32, t32, n, 0.8), l1_weighted_backward(gb, p32, t32, one32, npx, C, 0.8);
    printf("    weighted l1 FD: worst rel err %.2e over %zu elements; w = 1: %.9f vs l1 %.9f\n", worst, n, lb, la);
    CHECK(worst < 1e-5, "weighted L1 gradient differs from finite differences: %.3e", worst);
    CHECK(zero_ok, "a pixel of weight 0 got a gradient");
    CHECK(la == lb && !memcmp(ga, gb, sizeof(float) * n), "weights of 1 must give the plain L1 bit for bit");
    free(p), free(t), free(g), free(w), free(one), free(p32), free(t32), free(one32), free(ga), free(gb);
    return 0;
}

static int test_l1_fd(void) {
    const int N = 2, H = 13, W = 17, C = 3;
    size_t n = (size_t)N * H * W * C;
    double *p = malloc(8 * n), *t = malloc(8 * n), *g = calloc(n, 8);
    fill(p, n, 1, 0, NULL);
    fill(t, n, 2, 0, NULL);
    for (size_t i = 0; i < n; i++)
        if (fabs(p[i] - t[i]) < 1e-3) p[i] = t[i] + (p[i] < t[i] ? -2e-3 : 2e-3);
    l1_backward_f64(g, p, t, n, 1.0);
    l1_backward_f64(g, p, t, n, 0.5); // accumulates: 1.5 · grad
    double worst = 0, gmax = 0;
    for (size_t i = 0; i < n; i++) g[i] /= 1.5, gmax = fmax(gmax, fabs(g[i]));
    for (size_t i = 0; i < n; i++) {
        double keep = p[i], h = 1e-6;
        p[i] = keep + h;
        double lp = l1_forward_f64(p, t, n);
        p[i] = keep - h;
        double lm = l1_forward_f64(p, t, n);
        p[i] = keep;
        worst = fmax(worst, fd_rel((lp - lm) / (2 * h), g[i], gmax));
    }
    // sign(0) = 0, and the MSE / PSNR helpers against their definitions
    double z = 0, dz = 0, zt = 0;
    l1_backward_f64(&dz, &z, &zt, 1, 1.0);
    double m = 0;
    for (size_t i = 0; i < n; i++) m += (p[i] - t[i]) * (p[i] - t[i]);
    m /= n;
    double mc = mse_f64(p, t, n);
    printf("    l1 FD: worst rel err %.2e over %zu elements (|grad| = 1/n = %.3e); mse rel diff %.1e\n", worst, n, gmax,
           fabs(mc - m) / m);
    CHECK(worst < 1e-5, "L1 gradient differs from finite differences: %.3e", worst);
    CHECK(dz == 0, "sign(0) must be 0, got %g", dz);
    CHECK(fabs(mc - m) <= 1e-14 * m, "mse %.17g vs %.17g", mc, m);
    CHECK(fabs(psnr_from_mse(0.01) - 20) < 1e-12 && isinf(psnr_from_mse(0)), "psnr_from_mse");
    free(p), free(t), free(g);
    return 0;
}

// SSIM backward against central differences over every element. The difference of the two means is
// taken as Σ (map₊ − map₋) / (n·2h) over the saved maps: terms outside the perturbed pixel's 11×11
// neighbourhood are bitwise equal and cancel exactly, so the FD noise is that of the ≤121·C terms it
// reaches (~1e-16 each) rather than the rounding of the whole mean (~1e-16 / 2h ≈ 5e-11 absolute,
// which alone gave 2e-5 relative at the smallest gradients). With h = 1e-6 the truncation error
// (~h²·|f'''|) is negligible; measured worst 4.5e-7 (docs/losses.md). Tolerance 1e-5, the rasterizer's
// FD tolerance; a wrong border, window or term gives O(1) errors.
static int fd_ssim(int N, int H, int W, int C, uint64_t seed) {
    size_t n = (size_t)N * H * W * C;
    double *x = malloc(8 * n), *y = malloc(8 * n), *g = calloc(n, 8), *mp = malloc(8 * n);
    fill(y, n, seed, 0, NULL);
    fill(x, n, seed + 1, 2, y);                                      // similar images (high SSIM)
    for (size_t i = 0; i < n / 2; i++) x[i] = 0.3 * x[i] + 0.7 * x[n - 1 - i]; // and dissimilar ones
    Ssim_f64 s;
    ssim_build_f64(&s, N, H, W, C);
    double v = ssim_forward_f64(&s, x, y, NULL);
    ssim_backward_f64(&s, g, x, y, 0.5);
    ssim_backward_f64(&s, g, x, y, 1.5); // accumulates: 2 · grad
    double worst = 0, gmax = 0, worst_abs = 0;
    for (size_t i = 0; i < n; i++) g[i] /= 2, gmax = fmax(gmax, fabs(g[i]));
    for (size_t i = 0; i < n; i++) {
        double keep = x[i], h = 1e-6;
        x[i] = keep + h;
        ssim_forward_f64(&s, x, y, NULL);
        memcpy(mp, s.map, 8 * n);
        x[i] = keep - h;
        ssim_forward_f64(&s, x, y, NULL);
        x[i] = keep;
        double d = 0;
        for (size_t j = 0; j < n; j++) d += mp[j] - s.map[j];
        double fd = d / ((double)n * 2 * h);
        worst = fmax(worst, fd_rel(fd, g[i], gmax));
        worst_abs = fmax(worst_abs, fabs(fd - g[i]));
    }
    printf("    ssim FD %dx%dx%dx%d: ssim %.6f, worst rel err %.2e, max abs err %.2e over %zu elements (max |grad| "
           "%.2e)\n",
           N, H, W, C, v, worst, worst_abs, n, gmax);
    ssim_free_f64(&s);
    free(x), free(y), free(g), free(mp);
    CHECK(worst < 1e-5, "SSIM gradient differs from finite differences: %.3e", worst);
    return 0;
}

static int test_ssim_fd(void) {
    // one thread: ~3000 forwards of tiny images, where a busy 2-core CI machine makes every OpenMP
    // barrier a scheduler round trip (thread independence is test_threads' job)
    omp_set_num_threads(1);
    // borders on every side, non-square; then an image smaller than the 11×11 window; then one channel
    return fd_ssim(2, 13, 17, 3, 10) || fd_ssim(1, 7, 9, 3, 20) || fd_ssim(1, 12, 5, 1, 30);
}

// ----------------------------------------------------------------------------------------------
// against the PyTorch reference

// max|c − ref| / max|ref| over a tensor (as tests/test_render_reference.c).
static int compare(const char *name, const float *c32, const double *c64, const double *ref, size_t n, double tol) {
    double m = 0, s = 0;
    for (size_t i = 0; i < n; i++) s = fmax(s, fabs(ref[i]));
    for (size_t i = 0; i < n; i++) {
        double e = fabs((c32 ? c32[i] : c64[i]) - ref[i]);
        m = fmax(m, e == e ? e : INFINITY);
    }
    double rel = m / (s + 1e-300);
    int bad = !(rel <= tol);
    printf("    %-10s %-4s max abs %.3e  max|ref| %.3e  rel %.2e  (tol %.0e) %s\n", name, c32 ? "f32" : "f64", m, s,
           rel, tol, bad ? "FAIL" : "ok");
    return bad;
}

// Tolerances. f64: both sides evaluate the same formula in double, in different summation orders
// (separable passes vs a 121-tap conv2d): measured ≤ 2e-16 (means), 1e-14 (map), 3e-15 (SSIM gradient)
// relative to max|ref|; tolerance 1e-12. f32: float blurs round at ~6e-8 per tap; σ² = E[x²] − μ²
// cancels where an image is flat, and the map divides by B2 ≥ C2 = 9e-4, so an absolute error ~1e-7 in
// σ² moves map and gradient by ~1e-4 of their scale at such pixels only. Measured (relative to max|ref|,
// saturated images included): means ≤ 4e-8, map 1.9e-6, SSIM gradient 6e-7; tolerance 1e-5 (values)
// and 2e-5 (gradients), as the rasterizer's.
static int test_reference(void) {
    const int N = 3, H = 32, W = 40, C = 3;
    size_t img = (size_t)H * W * C, n = N * img;
    double *x = malloc(8 * n), *y = malloc(8 * n);
    fill(y, img, 1, 0, NULL), fill(x, img, 2, 0, NULL);               // unrelated uniform images
    fill(y + img, img, 3, 1, NULL), fill(x + img, img, 4, 1, NULL);   // saturated: values at or near 0 / 1
    fill(y + 2 * img, img, 5, 0, NULL), fill(x + 2 * img, img, 6, 2, y + 2 * img); // a noisy copy
    for (size_t i = 0; i < 200; i++) x[img + 7 * i] = y[img + 7 * i]; // exact ties: sign(0) = 0 in L1
    // the mouth term's per-pixel weight: a 0/1 box in each image plus a few fractional weights
    double *wm = calloc((size_t)N * H * W, 8);
    for (int k = 0; k < N; k++)
        for (int r = 5 + k; r < 14 + k; r++)
            for (int q = 8; q < 21 + 3 * k; q++) wm[((size_t)k * H + r) * W + q] = 1;
    for (size_t i = 0; i < 50; i++) wm[(size_t)i * 31 % ((size_t)N * H * W)] = 0.25 + 0.01 * (double)i;
    char ip[1024], op[1024], cmd[8192], err[1024];
    snprintf(ip, sizeof ip, "%s/loss_in.atb", test_tmpdir());
    snprintf(op, sizeof op, "%s/loss_out.atb", test_tmpdir());
    AtbWriter w;
    uint64_t dims[4] = {N, H, W, C};
    atb_write_begin(&w, ip, 3);
    atb_write_tensor(&w, "x", ATB_F64, 4, dims, x);
    atb_write_tensor(&w, "y", ATB_F64, 4, dims, y);
    atb_write_tensor(&w, "w", ATB_F64, 3, dims, wm);
    atb_write_end(&w);
    const char *py = getenv("AVAT3R_PYTHON") ? getenv("AVAT3R_PYTHON") : "/usr/bin/python3";
    snprintf(cmd, sizeof cmd, "'%s' '%s/tools/reference/loss_ref.py' compare --in '%s' --out '%s' --dtype float64", py,
             test_source_root(), ip, op);
    CHECK(test_system(cmd) == 0, "tools/reference/loss_ref.py failed");
    Atb ref;
    CHECK(!atb_read(op, &ref, err, sizeof err), "%s", err);

    // C, both precisions; gradients scaled by 1 (the reference's are of the plain means)
    float *x32 = to32(x, n), *y32 = to32(y, n), *gl32 = calloc(n, 4), *gs32 = calloc(n, 4), per32[3];
    double *gl64 = calloc(n, 8), *gs64 = calloc(n, 8), per64[3];
    Ssim s32;
    Ssim_f64 s64;
    ssim_build(&s32, N, H, W, C);
    ssim_build_f64(&s64, N, H, W, C);
    double v32[5], v64[5]; // l1, ssim, mse, psnr, l1w
    float *wm32 = to32(wm, (size_t)N * H * W), *gw32 = calloc(n, 4);
    double *gw64 = calloc(n, 8);
    v32[4] = l1_weighted_forward(x32, y32, wm32, (size_t)N * H * W, C);
    v64[4] = l1_weighted_forward_f64(x, y, wm, (size_t)N * H * W, C);
    l1_weighted_backward(gw32, x32, y32, wm32, (size_t)N * H * W, C, 1.0);
    l1_weighted_backward_f64(gw64, x, y, wm, (size_t)N * H * W, C, 1.0);
    v32[0] = l1_forward(x32, y32, n), v64[0] = l1_forward_f64(x, y, n);
    v32[1] = ssim_forward(&s32, x32, y32, per32), v64[1] = ssim_forward_f64(&s64, x, y, per64);
    v32[2] = mse(x32, y32, n), v64[2] = mse_f64(x, y, n);
    v32[3] = psnr_from_mse(v32[2]), v64[3] = psnr_from_mse(v64[2]);
    l1_backward(gl32, x32, y32, n, 1.0), l1_backward_f64(gl64, x, y, n, 1.0);
    ssim_backward(&s32, gs32, x32, y32, 1.0), ssim_backward_f64(&s64, gs64, x, y, 1.0);
    float vf[5] = {(float)v32[0], (float)v32[1], (float)v32[2], (float)v32[3], (float)v32[4]};
    printf("    C f64: l1 %.9f  ssim %.9f (per image %.6f %.6f %.6f)  psnr %.4f dB\n", v64[0], v64[1], per64[0],
           per64[1], per64[2], v64[3]);
    struct { const char *name; const float *a32; const double *a64; size_t n; double tol32; } t[] = {
        {"l1", vf, v64, 1, 1e-5},
        {"ssim", vf + 1, v64 + 1, 1, 1e-5},
        {"mse", vf + 2, v64 + 2, 1, 1e-5},
        {"psnr", vf + 3, v64 + 3, 1, 1e-5},
        {"ssim_per", per32, per64, N, 1e-5},
        {"ssim_map", s32.map, s64.map, n, 1e-5},
        {"grad.l1", gl32, gl64, n, 1e-5},
        {"grad.ssim", gs32, gs64, n, 2e-5},
        {"l1w", vf + 4, v64 + 4, 1, 1e-5},
        {"grad.l1w", gw32, gw64, n, 1e-5},
    };
    int bad = 0;
    double *rv = malloc(8 * n);
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) {
        if (atb_get_f64(&ref, t[k].name, rv, t[k].n, err, sizeof err)) {
            printf("    %s\n", err);
            bad++;
            continue;
        }
        bad += compare(t[k].name, NULL, t[k].a64, rv, t[k].n, 1e-12);
        bad += compare(t[k].name, t[k].a32, NULL, rv, t[k].n, t[k].tol32);
    }
    free(rv);
    atb_free(&ref);
    ssim_free(&s32), ssim_free_f64(&s64);
    free(x), free(y), free(x32), free(y32), free(gl32), free(gs32), free(gl64), free(gs64);
    free(wm), free(wm32), free(gw32), free(gw64);
    CHECK(bad == 0, "%d comparisons with the PyTorch reference failed", bad);
    return 0;
}

// The reference's own checks (window, SSIM(x,x) = 1, conv2d against direct loops, gradcheck).
static int test_reference_selftest(void) {
    CHECK(test_python_script_args("tools/reference/loss_ref.py", "selftest") == 0, "tools/reference/loss_ref.py selftest failed");
    return 0;
}

// ----------------------------------------------------------------------------------------------
// invariants

// SSIM(x, x): with μx = μy, A1 = 2μ² + C1 and B1 = μ² + μ² + C1 are the same floating-point number
// (doubling is exact), likewise A2 = B2, so every map value is exactly 1; the backward's terms cancel
// exactly too (∂/∂μx = 0; 2x·g⊛(−1/B2) + x·g⊛(2/B2) = 0). Measured: exactly 1 and 0 in both precisions,
// including a flat region (σ = 0). Tolerances leave room for a compiler that contracts to FMA:
// f64 1e-14, f32 1e-6 (value); gradients 1e-12/n (f64) and 1e-4/n (f32), against 1/n for a typical pair.
static int test_identity(void) {
    const int N = 2, H = 20, W = 23, C = 3;
    size_t n = (size_t)N * H * W * C;
    double *x = malloc(8 * n), *g = calloc(n, 8);
    fill(x, n, 7, 0, NULL);
    for (size_t i = 0; i < n / 3; i++) x[i] = 0.25; // a flat region: σ = 0 there
    float *x32 = to32(x, n), *g32 = calloc(n, 4);
    Ssim_f64 s;
    Ssim s32;
    ssim_build_f64(&s, N, H, W, C);
    ssim_build(&s32, N, H, W, C);
    double per[2];
    float per32[2];
    double v = ssim_forward_f64(&s, x, x, per), v32 = ssim_forward(&s32, x32, x32, per32);
    ssim_backward_f64(&s, g, x, x, 1.0);
    ssim_backward(&s32, g32, x32, x32, 1.0);
    double gm = 0, gm32 = 0, mm = 0;
    for (size_t i = 0; i < n; i++)
        gm = fmax(gm, fabs(g[i])), gm32 = fmax(gm32, fabs(g32[i])), mm = fmax(mm, fabs(s.map[i] - 1));
    printf("    ssim(x,x): f64 1-ssim %.2e (max |map-1| %.2e, per image %.2e %.2e), max|grad| %.2e (1/n = %.2e); "
           "f32 1-ssim %.2e, max|grad| %.2e\n",
           1 - v, mm, 1 - per[0], 1 - per[1], gm, 1.0 / n, 1 - v32, gm32);
    CHECK(fabs(v - 1) < 1e-14 && mm < 1e-14 && fabs(per[0] - 1) < 1e-14, "f64 SSIM(x,x) = %.17g", v);
    CHECK(fabs(v32 - 1) < 1e-6, "f32 SSIM(x,x) = %.9g", v32);
    CHECK(gm < 1e-12 / n, "f64 gradient of SSIM(x,x) is %.3e", gm);
    CHECK(gm32 < 1e-4 / n, "f32 gradient of SSIM(x,x) is %.3e", gm32);
    ssim_free_f64(&s), ssim_free(&s32);
    free(x), free(g), free(x32), free(g32);
    return 0;
}

// Forward value, per-image means and gradients bitwise identical for 1, 2 and 3 threads, and with the
// images passed in groups of 3 (the last one short) and of 1, as large images are; both precisions
// (L1/MSE large enough to take their parallel path: n ≥ 32768).
static int test_threads(void) {
    enum { R = 5 }; // runs
    const int N = 4, H = 37, W = 64, C = 3;
    const int threads[R] = {1, 2, 3, 2, 3}, group[R] = {0, 0, 0, 3, 1}; // group 0: as built (all 4)
    size_t n = (size_t)N * H * W * C;
    double *x = malloc(8 * n), *y = malloc(8 * n);
    fill(y, n, 8, 0, NULL), fill(x, n, 9, 2, y);
    float *x32 = to32(x, n), *y32 = to32(y, n);
    double v64[R][3], *g64[R], v32[R][3], per64[R][4];
    float *g32[R], per32[R][4];
    for (int t = 0; t < R; t++) {
        omp_set_num_threads(threads[t]);
        Ssim s32;
        Ssim_f64 s64;
        ssim_build(&s32, N, H, W, C), ssim_build_f64(&s64, N, H, W, C);
        CHECK(s32.G == N && s64.G == N, "small images should pass in one group (G = %d, %d)", s32.G, s64.G);
        if (group[t]) s32.G = s64.G = group[t]; // smaller groups fit the scratch built for 4
        g32[t] = calloc(n, 4), g64[t] = calloc(n, 8);
        v32[t][0] = ssim_forward(&s32, x32, y32, per32[t]);
        ssim_backward(&s32, g32[t], x32, y32, 0.2);
        v32[t][1] = l1_forward(x32, y32, n), v32[t][2] = mse(x32, y32, n);
        l1_backward(g32[t], x32, y32, n, 0.8);
        v64[t][0] = ssim_forward_f64(&s64, x, y, per64[t]);
        ssim_backward_f64(&s64, g64[t], x, y, 0.2);
        v64[t][1] = l1_forward_f64(x, y, n), v64[t][2] = mse_f64(x, y, n);
        l1_backward_f64(g64[t], x, y, n, 0.8);
        ssim_free(&s32), ssim_free_f64(&s64);
    }
    for (int t = 1; t < R; t++) {
        CHECK(!memcmp(v32[t], v32[0], sizeof v32[0]) && !memcmp(v64[t], v64[0], sizeof v64[0]),
              "values differ with %d threads, group %d", threads[t], group[t]);
        CHECK(!memcmp(per32[t], per32[0], sizeof per32[0]) && !memcmp(per64[t], per64[0], sizeof per64[0]),
              "per-image SSIM differs with %d threads, group %d", threads[t], group[t]);
        CHECK(!memcmp(g32[t], g32[0], 4 * n) && !memcmp(g64[t], g64[0], 8 * n),
              "gradients differ with %d threads, group %d", threads[t], group[t]);
    }
    printf("    1, 2, 3 threads, groups of 4, 3, 1: bitwise identical (ssim f32 %.9f, f64 %.17f)\n", v32[0][0],
           v64[0][0]);
    for (int t = 0; t < R; t++) free(g32[t]), free(g64[t]);
    free(x), free(y), free(x32), free(y32);
    return 0;
}

const TestCase loss_image_tests[] = {
    {"loss_image/l1_fd", test_l1_fd},
    {"loss_image/l1_weighted", test_l1_weighted},
    {"loss_image/ssim_fd", test_ssim_fd},
    {"loss_image/reference_selftest", test_reference_selftest},
    {"loss_image/reference", test_reference},
    {"loss_image/ssim_identity", test_identity},
    {"loss_image/threads_bitwise", test_threads},
    {NULL, NULL},
};
