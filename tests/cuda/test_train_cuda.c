// test_train_cuda.c — the GPU optimizer and L1 loss (train/cuda/) against the CPU code they share their
// arithmetic with (train/optim.c, train/loss_image.c, float), on random data of several sizes: zero, one
// element, non-multiples and multiples of the 256-thread block, and enough for the grid-stride loops and
// all 1024 reduction partials to be used.
//
// What is expected, and why:
//   AdamW (adamw_update_cuda vs adamw_step): BIT-IDENTICAL parameters and moments after every step. Both
//     run train/optim_math.h with the same float constants (computed on the host by the same function);
//     the kernels are compiled with --fmad=false (no FMA contraction; the CPU build does not contract
//     either) and CUDA's defaults keep division and sqrtf correctly rounded and subnormals (no -ftz), as
//     on the CPU. The inputs include gradients whose squares are subnormal, exact zeros and 1e15.
//   L1 backward (l1_backward_cuda vs l1_backward): BIT-IDENTICAL (train/loss_math.h on both sides, the
//     same float k computed on the host), accumulated twice into a random gradient.
//   Gradient norm and L1 forward: deterministic on the GPU (checked bitwise over two runs) but summed in
//     another order than the CPU. Every term is the same double on both sides (g·g is exact in double;
//     |a − b| is the same correctly rounded double), and the terms are non-negative, so each side is
//     within γ(n−1)·S of the exact sum S, γ(k) = k·u/(1 − k·u), u = 2⁻⁵³. Hence:
//       norm = sqrt(S), one more rounding on each side: |gpu − cpu| ≤ (γ(n−1) + 2u)·norm to first order;
//         tolerance (γ(n) + 2u)·norm_cpu (the extra u·n covers the second-order terms, (n·u)² ≪ u here);
//       L1 = S / n, one more rounding: each within γ(n) of S/n, so |gpu − cpu| ≤ 2γ(n)/(1 − γ(n))·L1_cpu;
//         tolerance 2γ(n + 1)·L1_cpu (≥ that bound for n² u < 1).
//     These are worst-case bounds from the sum's magnitude, not fitted to measured differences; typical
//     differences are ~√n·u. n = 0 and n = 1 must agree exactly. A NaN / Inf gradient must give NaN / Inf.
//   The mouth term (l1_weighted_*_cuda vs l1_weighted_*): its terms w·|a − b| are the same double on both
//     sides (train/loss_math.h) and non-negative, so the forward has L1's bound; the backward is
//     bit-identical as L1's.
//
// Without a CUDA device it prints a SKIP line and exits 0.
#include <cuda_runtime.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/config.h"
#include "../../common/rng.h"
#include "../../model/model_config.h"
#include "../../model/params.h"
#include "../../train/cuda/loss_cuda.h"
#include "../../train/cuda/optim_cuda.h"
#include "../../train/loss_image.h"
#include "../../train/optim.h"

#include "cuda_test.h"

static int n_pass = 0, n_fail = 0;
static void check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(int ok, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("%s ", ok ? "PASS" : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    ok ? n_pass++ : n_fail++;
}

static void *dput(const void *h, size_t bytes) {
    void *d = NULL;
    CK(cudaMalloc(&d, bytes ? bytes : 8));
    if (h && bytes) CK(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
    return d;
}
static void dget(void *h, const void *d, size_t bytes) {
    if (bytes) CK(cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost));
}

static const double U = 0x1p-53; // unit roundoff of double
static double gamma_k(double k) { return k * U / (1 - k * U); }

// distance in float ulps (ordered integer representation); 0 when bitwise equal
static uint64_t ulp_dist(float a, float b) {
    int32_t ia, ib;
    memcpy(&ia, &a, 4), memcpy(&ib, &b, 4);
    int64_t oa = ia < 0 ? (int64_t)INT32_MIN - ia : ia, ob = ib < 0 ? (int64_t)INT32_MIN - ib : ib;
    return (uint64_t)(oa > ob ? oa - ob : ob - oa);
}
// number of elements that differ in their bits; *worst = the largest ulp distance
static size_t bit_diff(const float *a, const float *b, size_t n, uint64_t *worst) {
    size_t bad = 0;
    *worst = 0;
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], 4)) {
            bad++;
            uint64_t d = ulp_dist(a[i], b[i]);
            if (d > *worst) *worst = d;
        }
    return bad;
}

// ----------------------------------------------------------------------------------------------
// AdamW

static void test_adamw(const char *name, const size_t sizes[NUM_PARAM_TENSORS]) {
    size_t n = 0;
    for (int k = 0; k < NUM_PARAM_TENSORS; k++) n += sizes[k];
    size_t bytes = 4 * n;
    float *p = malloc(bytes + 4), *g = malloc(bytes + 4), *m = malloc(bytes + 4), *v = malloc(bytes + 4);
    float *hp = malloc(bytes + 4), *hm = malloc(bytes + 4), *hv = malloc(bytes + 4);
    Rng r = rng_make(707, n);
    for (size_t i = 0; i < n; i++) {
        p[i] = (float)rng_normal_at(&r, 4 * i);
        m[i] = (float)(0.01 * rng_normal_at(&r, 4 * i + 1)); // nonzero moments: a skipped element shows
        v[i] = (float)(1e-4 * fabs(rng_normal_at(&r, 4 * i + 2)) + 1e-12);
    }
    float *dp = dput(p, bytes), *dm = dput(m, bytes), *dv = dput(v, bytes), *dg = dput(NULL, bytes);
    // (lr, β1, β2, ε, wd), grad_scale and step t: decay on and off, clipping-like scales, a late step
    const AdamWHyper hy[4] = {{1e-3, 0.9, 0.95, 1e-8, 0.1}, {3e-4, 0.9, 0.999, 1e-6, 0.05},
                              {1e-2, 0.8, 0.9, 1e-4, 0}, {1e-3, 0.9, 0.95, 1e-8, 0.1}};
    const double gscale[4] = {1.0, 0.37, 1.0, 0.0625};
    const uint64_t steps[4] = {1, 2, 3, 1000};
    size_t bad_total = 0;
    uint64_t worst_total = 0;
    for (int s = 0; s < 4; s++) {
        Rng rg = rng_make(708, 16 * n + s);
        for (size_t i = 0; i < n; i++) {
            static const double mag[8] = {1, 1, 1, 1e-3, 1e-20, 1e15, 0, 1};
            g[i] = (float)(rng_normal_at(&rg, i) * mag[(i * 7 + s) % 8]); // 1e-20: g² subnormal in float
        }
        if (n) CK(cudaMemcpy(dg, g, bytes, cudaMemcpyHostToDevice));
        adamw_step(p, g, m, v, sizes, &hy[s], gscale[s], steps[s]);
        adamw_update_cuda(dp, dg, dm, dv, sizes, &hy[s], gscale[s], steps[s]);
        CK(cudaDeviceSynchronize());
        dget(hp, dp, bytes), dget(hm, dm, bytes), dget(hv, dv, bytes);
        uint64_t w1, w2, w3;
        size_t bad = bit_diff(p, hp, n, &w1) + bit_diff(m, hm, n, &w2) + bit_diff(v, hv, n, &w3);
        uint64_t w = w1 > w2 ? w1 : w2;
        w = w > w3 ? w : w3;
        bad_total += bad;
        if (w > worst_total) worst_total = w;
    }
    check(bad_total == 0, "adamw %s (n = %zu, 4 steps, t = 1, 2, 3, 1000): %zu of %zu values differ in their bits "
          "(max %llu ulp); expected bit-identical", name, n, bad_total, 3 * 4 * n, (unsigned long long)worst_total);
    CK(cudaFree(dp));
    CK(cudaFree(dm));
    CK(cudaFree(dv));
    CK(cudaFree(dg));
    free(p), free(g), free(m), free(v), free(hp), free(hm), free(hv);
}

// ----------------------------------------------------------------------------------------------
// gradient norm, L1 forward and backward

static float *rnd_grads(size_t n, uint64_t stream) {
    float *x = malloc(4 * n + 4);
    Rng r = rng_make(709, stream);
    for (size_t i = 0; i < n; i++) x[i] = (float)(rng_normal_at(&r, i) * (i % 5 == 0 ? 1e-3 : 1.0));
    return x;
}

static double gpu_norm(const float *dg, size_t n, double *d_out, double *d_partial) {
    double s;
    grad_norm_sq_cuda(d_out, dg, n, d_partial);
    CK(cudaMemcpy(&s, d_out, 8, cudaMemcpyDeviceToHost));
    return s;
}

static void test_norm(size_t n, double *d_out, double *d_partial) {
    float *g = rnd_grads(n, n);
    float *dg = dput(g, 4 * n);
    double cpu = grad_global_norm(g, n);
    double s1 = gpu_norm(dg, n, d_out, d_partial), s2 = gpu_norm(dg, n, d_out, d_partial);
    double gpu = sqrt(s1), tol = (gamma_k((double)n) + 2 * U) * cpu, diff = fabs(gpu - cpu);
    int repro = !memcmp(&s1, &s2, 8);
    int ok = repro && (n <= 1 ? gpu == cpu : diff <= tol);
    check(ok, "grad norm n = %zu: cpu %.17g gpu %.17g, |diff| %.2e (rel %.2e) <= tol %.2e (%s); two GPU runs %s", n,
          cpu, gpu, diff, cpu > 0 ? diff / cpu : 0.0, tol, n <= 1 ? "exact for n <= 1" : "(γ(n) + 2u)·norm",
          repro ? "bitwise equal" : "DIFFER");
    if (n >= 3) { // a NaN and an Inf gradient propagate
        float keep = g[n / 2];
        g[n / 2] = NAN;
        CK(cudaMemcpy(dg + n / 2, &g[n / 2], 4, cudaMemcpyHostToDevice));
        double cn = grad_global_norm(g, n), gn = sqrt(gpu_norm(dg, n, d_out, d_partial));
        g[n / 2] = INFINITY;
        CK(cudaMemcpy(dg + n / 2, &g[n / 2], 4, cudaMemcpyHostToDevice));
        double ci = grad_global_norm(g, n), gi = sqrt(gpu_norm(dg, n, d_out, d_partial));
        g[n / 2] = keep;
        check(isnan(cn) && isnan(gn) && isinf(ci) && isinf(gi),
              "grad norm n = %zu with a NaN / an Inf gradient: cpu %g / %g, gpu %g / %g", n, cn, ci, gn, gi);
    }
    CK(cudaFree(dg));
    free(g);
}

// The L1 forward and backward (w_l1's term), or with weighted the mouth term's (a per-pixel weight over
// C = 3 channels: a region of 0 / 1 with a few fractional weights; n rounded down to whole pixels).
static void test_l1(size_t n, int weighted, double *d_out, double *d_partial) {
    const int C = 3;
    const size_t npx = n / C;
    if (weighted) n = npx * C;
    const char *nm = weighted ? "weighted l1" : "l1";
    float *a = malloc(4 * n + 4), *b = malloc(4 * n + 4), *d = malloc(4 * n + 4), *hd = malloc(4 * n + 4);
    float *w = weighted ? malloc(4 * npx + 4) : NULL;
    Rng r = rng_make(710 + weighted, n);
    for (size_t i = 0; i < n; i++) {
        // predictions of varied magnitude (terms on no common grid, so the order of the sum matters),
        // targets in [0, 1), some exact ties (gradient 0)
        a[i] = (float)(rng_normal_at(&r, 3 * i) * (i % 3 == 1 ? 1e-3 : 1.0));
        b[i] = i % 5 == 3 ? a[i] : rng_uniform_at(&r, 3 * i + 1);
        d[i] = (float)rng_normal_at(&r, 3 * i + 2);               // backward accumulates into this
    }
    for (size_t p = 0; weighted && p < npx; p++) {
        double u = rng_uniform_at(&r, 3 * n + p);
        w[p] = u < 0.6 ? 0.0f : u < 0.9 ? 1.0f : (float)u;
    }
    float *da = dput(a, 4 * n), *db = dput(b, 4 * n), *dd = dput(d, 4 * n), *dw = weighted ? dput(w, 4 * npx) : NULL;
    // forward, twice on the GPU
    double cpu = weighted ? l1_weighted_forward(a, b, w, npx, C) : l1_forward(a, b, n), g[2];
    for (int k = 0; k < 2; k++) {
        if (weighted) l1_weighted_forward_cuda(d_out, da, db, dw, npx, C, d_partial);
        else l1_forward_cuda(d_out, da, db, n, d_partial);
        CK(cudaMemcpy(&g[k], d_out, 8, cudaMemcpyDeviceToHost));
    }
    double tol = 2 * gamma_k((double)n + 1) * cpu, diff = fabs(g[0] - cpu);
    int repro = !memcmp(&g[0], &g[1], 8);
    check(repro && (n <= 1 ? g[0] == cpu : diff <= tol),
          "%s forward n = %zu: cpu %.17g gpu %.17g, |diff| %.2e (rel %.2e) <= tol %.2e (%s); two GPU runs %s", nm, n,
          cpu, g[0], diff, cpu > 0 ? diff / cpu : 0.0, tol, n <= 1 ? "exact for n <= 1" : "2γ(n+1)·L1",
          repro ? "bitwise equal" : "DIFFER");
    // backward, twice (it accumulates)
    static const double scales[2] = {0.8, 1.0 / 3.0};
    for (int k = 0; k < 2; k++) {
        if (weighted) {
            l1_weighted_backward(d, a, b, w, npx, C, scales[k]);
            l1_weighted_backward_cuda(dd, da, db, dw, npx, C, scales[k]);
        } else {
            l1_backward(d, a, b, n, scales[k]);
            l1_backward_cuda(dd, da, db, n, scales[k]);
        }
    }
    CK(cudaDeviceSynchronize());
    dget(hd, dd, 4 * n);
    uint64_t ulp;
    size_t bad = bit_diff(d, hd, n, &ulp);
    check(bad == 0, "%s backward n = %zu (scale 0.8 then 1/3, accumulated): %zu of %zu differ in their bits "
          "(max %llu ulp); expected bit-identical", nm, n, bad, n, (unsigned long long)ulp);
    CK(cudaFree(da));
    CK(cudaFree(db));
    CK(cudaFree(dd));
    if (dw) CK(cudaFree(dw));
    free(a), free(b), free(d), free(hd), free(w);
}

int main(void) {
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("SKIP avat3r_cuda_train_tests: no CUDA device (AdamW, gradient norm, L1 forward/backward vs "
               "train/optim.c and train/loss_image.c not run; run them on a GPU machine, see "
               "docs/gpu-verification.md)\n");
        return 0;
    }
    // AdamW over the NUM_PARAM_TENSORS-tensor layout: the default (tiny) model's sizes, a mix of zero-size,
    // one-element and block-edge tensors, a single element, and nothing at all
    size_t sizes[NUM_PARAM_TENSORS];
    ModelConfig c;
    char err[256];
    CfgTable t = model_config_table(&c);
    if (cfg_defaults(&t, 1, err, sizeof err)) {
        printf("model defaults: %s\n", err);
        return 1;
    }
    param_sizes(&c, sizes);
    test_adamw("default model layout", sizes);
    static const size_t mix[13] = {0, 1, 255, 256, 257, 1000, 4097, 31, 65537, 0, 2, 12345, 300001};
    for (int k = 0; k < NUM_PARAM_TENSORS; k++) sizes[k] = mix[k % 13];
    test_adamw("mixed sizes", sizes);
    memset(sizes, 0, sizeof sizes);
    sizes[5] = 1;
    test_adamw("one element", sizes);
    sizes[5] = 0;
    test_adamw("empty", sizes);

    double *d_out = dput(NULL, 8), *d_partial = dput(NULL, 8 * TRAIN_CUDA_PARTIALS);
    static const size_t ns[] = {0, 1, 2, 255, 256, 257, 1000, 65536, 65537, 262145, 3000017};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) test_norm(ns[i], d_out, d_partial);
    for (int weighted = 0; weighted < 2; weighted++)
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) test_l1(ns[i], weighted, d_out, d_partial);
    CK(cudaFree(d_out));
    CK(cudaFree(d_partial));
    printf("CUDA training tests: %d of %d checks passed\n", n_pass, n_pass + n_fail);
    return n_fail ? 1 : 0;
}
