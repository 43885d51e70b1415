// test_layers_cuda.c — CUDA kernels against the CPU layers (model/layers.c) on random inputs.
// Output buffers are poisoned with NaN before each run, so an element a kernel forgets fails.
// Without a GPU it says so and counts every test as skipped (exit 0).
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/rng.h"
#include "../../model/cuda/layers_cuda.h"
#include "../../model/layers.h"

#include "cuda_test.h"

static float *rnd(size_t n, uint64_t s) {
    float *x = malloc(4 * n);
    Rng r = rng_make(77, s);
    for (size_t i = 0; i < n; i++) x[i] = (float)rng_normal_at(&r, i);
    return x;
}
static float *dev(const float *h, size_t n) { // device copy (NaN-poisoned when h is NULL)
    float *d;
    CK(cudaMalloc((void **)&d, 4 * n));
    if (h) CK(cudaMemcpy(d, h, 4 * n, cudaMemcpyHostToDevice));
    else CK(cudaMemset(d, 0xff, 4 * n)); // 0xffffffff is a NaN
    return d;
}
static float *zdev(size_t n) {
    float *d = dev(NULL, n);
    CK(cudaMemset(d, 0, 4 * n));
    return d;
}
static int compare(const char *name, const float *cpu, const float *d, size_t n, double tol) {
    float *h = malloc(4 * n);
    CK(cudaMemcpy(h, d, 4 * n, cudaMemcpyDeviceToHost));
    double m = 0, s = 0;
    int nan = 0;
    for (size_t i = 0; i < n; i++) {
        if (h[i] != h[i]) nan++;
        m = fmax(m, fabs(h[i] - cpu[i]));
        s = fmax(s, fabs(cpu[i]));
    }
    free(h);
    int ok = !nan && m <= tol * (s + 1e-30);
    printf("%s %s: max abs %.3e (rel %.2e), NaN %d\n", ok ? "PASS" : "FAIL", name, m, m / (s + 1e-30), nan);
    return ok;
}

int main(void) {
    if (cuda_device_count() == 0) {
        printf("no CUDA device: the 5 CUDA kernel tests are skipped (run them on a GPU machine, see "
               "docs/gpu-verification.md)\n");
        return 0;
    }
    int pass = 0, fail = 0, N = 1031, C = 384;
    size_t n = (size_t)N * C;
    float *x = rnd(n, 1), *w = rnd(C, 2), *b = rnd(C, 3), *dy = rnd(n, 4);
    float *out = malloc(4 * n), *mean = malloc(4 * N), *rstd = malloc(4 * N);
    float *dx = calloc(n, 4), *dw = calloc(C, 4), *db = calloc(C, 4);
    layernorm_forward(out, mean, rstd, x, w, b, N, C, 1e-5);
    layernorm_backward(dx, dw, db, dy, x, w, mean, rstd, N, C);
    float *d_x = dev(x, n), *d_w = dev(w, C), *d_b = dev(b, C), *d_dy = dev(dy, n);
    float *d_out = dev(NULL, n), *d_mean = dev(NULL, N), *d_rstd = dev(NULL, N);
    float *d_dx = zdev(n), *d_dw = zdev(C), *d_db = zdev(C);
    layernorm_forward_cuda(d_out, d_mean, d_rstd, d_x, d_w, d_b, N, C, 1e-5f);
    layernorm_backward_cuda(d_dx, d_dw, d_db, d_dy, d_x, d_w, d_mean, d_rstd, N, C);
    CK(cudaDeviceSynchronize());
    compare("layernorm_forward", out, d_out, n, 1e-5) ? pass++ : fail++;
    compare("layernorm_backward dinp", dx, d_dx, n, 1e-5) ? pass++ : fail++;
    compare("layernorm_backward dw+db", dw, d_dw, C, 1e-4) && compare("layernorm_backward db", db, d_db, C, 1e-4)
        ? pass++ : fail++;
    float *g = malloc(4 * n), *dg = calloc(n, 4), *d_g = dev(NULL, n), *d_dg = zdev(n);
    gelu_forward(g, x, n);
    gelu_backward(dg, x, dy, n);
    gelu_forward_cuda(d_g, d_x, n);
    gelu_backward_cuda(d_dg, d_x, d_dy, n);
    CK(cudaDeviceSynchronize());
    compare("gelu forward", g, d_g, n, 1e-5) ? pass++ : fail++;
    compare("gelu backward", dg, d_dg, n, 1e-5) ? pass++ : fail++;
    printf("CUDA kernel tests: %d of %d passed\n", pass, pass + fail);
    float *dev_bufs[] = {d_x, d_w, d_b, d_dy, d_out, d_mean, d_rstd, d_dx, d_dw, d_db, d_g, d_dg};
    for (size_t i = 0; i < sizeof dev_bufs / sizeof dev_bufs[0]; i++) CK(cudaFree(dev_bufs[i]));
    free(x), free(w), free(b), free(dy), free(out), free(mean), free(rstd), free(dx), free(dw), free(db), free(g), free(dg);
    return fail ? 1 : 0;
}
