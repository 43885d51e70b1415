// test_lpips_cuda.c — LPIPS on the GPU (train/cuda/lpips_cuda.cu) against train/lpips.c (float, 1 thread).
// Random weights (lpips_weights_random) for VGG16 and AlexNet; random predictions in [0, 1] and targets
// that are noisy copies of them, as in training. Sizes: the smallest each net takes (VGG 16×16, AlexNet
// 31×31) and non-square ones whose grids go odd after the pools (VGG 20×24, AlexNet 40×36) with 2 pairs,
// those two again with small im2col chunks (many chunks, straddling images). Checked: the mean and the
// per-pair distances, ∂/∂x from zero and accumulated (+=) onto a random gradient, bit-identical repeats
// (no atomics anywhere), LPIPS(x, x) = 0 exactly with a zero gradient, and that no kernel reads a buffer
// element nobody wrote (every internal buffer starts as NaN).
// Tolerance TOL 1e-4 of the largest magnitude (test_model_cuda.c's TOL_MODEL): the elementwise and head
// code is the CPU's in its order, but the conv GEMMs sum K (up to 4608) products in cuBLAS's order, not
// OpenBLAS's, through up to 13 layers. Without a CUDA device it says so and exits 0.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../train/cuda/lpips_cuda.h"
#include "../../train/lpips.h"
#include "cuda_test.h"

#define TOL 1e-4

static int pass, fail;
static void count(int ok) { ok ? pass++ : fail++; }

static void poison(void *d, size_t bytes) {
    if (d) CK(cudaMemset(d, 0xff, bytes));
}

// every activation and scratch buffer as NaN, so an element read before it is written shows up
static void poison_all(LpipsCuda *l) {
    size_t B = (size_t)l->B;
    for (int i = 0; i < l->n_conv; i++) {
        poison(l->act[i], 4 * B * l->oh[i] * l->ow[i] * l->conv[i].OC);
        poison(l->pool[i], 4 * B * l->ih[i] * l->iw[i] * l->conv[i].IC);
        poison(l->arg[i], B * l->ih[i] * l->iw[i] * l->conv[i].IC);
    }
    size_t max_hw = 1, rows = 0, max_e = (size_t)l->H * l->W * 3;
    for (int k = 0; k < LPIPS_TAPS; k++) {
        int i = l->tap_conv[k];
        size_t hw = (size_t)l->oh[i] * l->ow[i];
        max_hw = hw > max_hw ? hw : max_hw, rows += (size_t)l->N * l->oh[i];
        poison(l->norm[k], 4 * B * hw);
    }
    for (int i = 0; i < l->n_conv; i++) {
        size_t a = (size_t)l->oh[i] * l->ow[i] * l->conv[i].OC, p = (size_t)l->ih[i] * l->iw[i] * l->conv[i].IC;
        max_e = a > max_e ? a : max_e;
        if (l->pool[i]) max_e = p > max_e ? p : max_e;
    }
    poison(l->in, 4 * B * l->H * l->W * 3);
    poison(l->dist, 8 * l->N * max_hw), poison(l->rowsum, 8 * rows);
    poison(l->tap_d, 8 * LPIPS_TAPS * l->N), poison(l->pair_d, 8 * l->N), poison(l->total, 8);
    poison(l->cols, 4 * l->cols_cap), poison(l->g0, 4 * l->N * max_e), poison(l->g1, 4 * l->N * max_e);
}

static double get_total(const LpipsCuda *l) {
    double t;
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(&t, l->total, 8, cudaMemcpyDeviceToHost));
    return t;
}

// chunk > 0: im2col chunks of at most that many floats (at least a row), so convs and their backward run in
// many chunks that straddle images (the default chunk holds a whole layer at these sizes)
static void check_lpips(int net, int N, int H, int W, size_t chunk, uint64_t seed) {
    char tag[96];
    int len = snprintf(tag, sizeof tag, "%s N=%d %dx%d", lpips_net_name(net), N, H, W);
    if (chunk) snprintf(tag + len, sizeof tag - len, " chunk %zu", chunk);
    size_t n = (size_t)N * H * W * 3;
    LpipsWeights w;
    lpips_weights_random(&w, net, seed);
    float *x = (float *)mallocCheck(4 * n), *y = (float *)mallocCheck(4 * n);
    Rng r = rng_make(seed + 1, (uint64_t)n);
    for (size_t i = 0; i < n; i++) { // target: a noisy copy of the prediction, clamped to [0, 1]
        x[i] = rng_uniform_at(&r, 2 * i);
        y[i] = fminf(1.f, fmaxf(0.f, x[i] + 0.3f * (rng_uniform_at(&r, 2 * i + 1) - 0.5f)));
    }
    // CPU oracle
    Lpips cl;
    lpips_build(&cl, &w, N, H, W, 1);
    float *per = (float *)mallocCheck(4 * N), *dx0 = (float *)callocCheck(n, 4);
    double cpu = lpips_forward(&cl, x, y, per);
    lpips_backward(&cl, dx0, 0.7);
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(dx0[i]));
    float *dx1 = ct_rand(n, seed + 2); // a random gradient of the same size as the one added to it
    for (size_t i = 0; i < n; i++) dx1[i] *= (float)m;
    float *d_dx1 = ct_dev(dx1, n);
    lpips_backward(&cl, dx1, -0.3);
    // GPU
    LpipsCuda gl;
    lpips_cuda_build(&gl, &w, N, H, W);
    if (chunk) gl.cols_chunk = chunk;
    poison_all(&gl);
    float *d_x = ct_dev(x, n), *d_y = ct_dev(y, n), *d_per = ct_dev(NULL, N), *d_dx0 = ct_zero(n);
    lpips_forward_cuda(&gl, d_x, d_y, d_per);
    double gpu = get_total(&gl);
    int ok = fabs(gpu - cpu) <= TOL * fabs(cpu);
    printf("%s lpips %s forward mean: cpu %.9g gpu %.9g (rel %.2e)\n", ok ? "PASS" : "FAIL", tag, cpu, gpu,
           fabs(gpu - cpu) / fabs(cpu));
    count(ok);
    char name[160];
    snprintf(name, sizeof name, "lpips %s per-pair distances", tag);
    count(ct_compare(name, per, d_per, N, TOL));
    lpips_backward_cuda(&gl, d_dx0, 0.7);
    snprintf(name, sizeof name, "lpips %s dx (scale 0.7, from zero)", tag);
    count(ct_compare(name, dx0, d_dx0, n, TOL));
    lpips_backward_cuda(&gl, d_dx1, -0.3);
    snprintf(name, sizeof name, "lpips %s dx (scale -0.3, added to a random gradient)", tag);
    count(ct_compare(name, dx1, d_dx1, n, TOL));
    // determinism: a second forward and backward give the same bits
    float *h0 = (float *)mallocCheck(4 * n), *h1 = (float *)mallocCheck(4 * n);
    CK(cudaMemcpy(h0, d_dx0, 4 * n, cudaMemcpyDeviceToHost));
    CK(cudaMemset(d_dx0, 0, 4 * n));
    lpips_forward_cuda(&gl, d_x, d_y, NULL);
    double gpu2 = get_total(&gl);
    lpips_backward_cuda(&gl, d_dx0, 0.7);
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(h1, d_dx0, 4 * n, cudaMemcpyDeviceToHost));
    ok = memcmp(&gpu, &gpu2, 8) == 0 && memcmp(h0, h1, 4 * n) == 0;
    printf("%s lpips %s repeat: mean %.17g then %.17g, dx %s\n", ok ? "PASS" : "FAIL", tag, gpu, gpu2,
           memcmp(h0, h1, 4 * n) ? "differs" : "bit-identical");
    count(ok);
    // LPIPS(x, x) = 0 exactly, and so is its gradient
    CK(cudaMemset(d_dx0, 0, 4 * n));
    lpips_forward_cuda(&gl, d_x, d_x, d_per);
    double z = get_total(&gl);
    lpips_backward_cuda(&gl, d_dx0, 1.0);
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(h1, d_dx0, 4 * n, cudaMemcpyDeviceToHost));
    float hp[8];
    CK(cudaMemcpy(hp, d_per, 4 * (N < 8 ? N : 8), cudaMemcpyDeviceToHost));
    size_t nz = 0;
    for (size_t i = 0; i < n; i++) nz += h1[i] != 0;
    for (int i = 0; i < N && i < 8; i++) nz += hp[i] != 0;
    ok = z == 0 && nz == 0;
    printf("%s lpips %s x = y: mean %.3g, %zu non-zero per-pair/gradient values\n", ok ? "PASS" : "FAIL", tag, z, nz);
    count(ok);
    lpips_free(&cl);
    lpips_cuda_free(&gl);
    lpips_weights_free(&w);
    float *dp[] = {d_x, d_y, d_per, d_dx0, d_dx1};
    for (int i = 0; i < 5; i++) CK(cudaFree(dp[i]));
    free(x), free(y), free(per), free(dx0), free(dx1), free(h0), free(h1);
}

int main(void) {
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("SKIP no CUDA device: the CUDA LPIPS tests are skipped (run them on a GPU machine, see "
               "docs/gpu-verification.md)\n");
        return 0;
    }
    check_lpips(LPIPS_VGG, 1, 16, 16, 0, 11);
    check_lpips(LPIPS_VGG, 2, 20, 24, 0, 12);
    check_lpips(LPIPS_VGG, 2, 20, 24, 20000, 12);
    check_lpips(LPIPS_ALEX, 1, 31, 31, 0, 13);
    check_lpips(LPIPS_ALEX, 2, 40, 36, 0, 14);
    check_lpips(LPIPS_ALEX, 2, 40, 36, 20000, 14);
    printf("CUDA LPIPS tests: %d of %d checks passed\n", pass, pass + fail);
    return fail ? 1 : 0;
}
