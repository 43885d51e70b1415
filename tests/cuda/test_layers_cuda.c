// test_layers_cuda.c — CUDA kernels against the CPU layers (model/layers.c) on random inputs.
// Output buffers are poisoned with NaN before each run, so an element a kernel forgets fails.
// Without a GPU it says so and counts every test as skipped (exit 0).
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../model/cuda/layers_cuda.h"
#include "../../model/layers.h"

#include "cuda_test.h"

int main(void) {
    if (cuda_device_count() == 0) {
        printf("no CUDA device: the 5 CUDA kernel tests are skipped (run them on a GPU machine, see "
               "docs/gpu-verification.md)\n");
        return 0;
    }
    int pass = 0, fail = 0, N = 1031, C = 384;
    size_t n = (size_t)N * C;
    float *x = ct_rand(n, 1), *w = ct_rand(C, 2), *b = ct_rand(C, 3), *dy = ct_rand(n, 4);
    float *out = malloc(4 * n), *mean = malloc(4 * N), *rstd = malloc(4 * N);
    float *dx = calloc(n, 4), *dw = calloc(C, 4), *db = calloc(C, 4);
    layernorm_forward(out, mean, rstd, x, w, b, N, C, 1e-5);
    layernorm_backward(dx, dw, db, dy, x, w, mean, rstd, N, C);
    float *d_x = ct_dev(x, n), *d_w = ct_dev(w, C), *d_b = ct_dev(b, C), *d_dy = ct_dev(dy, n);
    float *d_out = ct_dev(NULL, n), *d_mean = ct_dev(NULL, N), *d_rstd = ct_dev(NULL, N);
    float *d_dx = ct_zero(n), *d_dw = ct_zero(C), *d_db = ct_zero(C);
    layernorm_forward_cuda(d_out, d_mean, d_rstd, d_x, d_w, d_b, N, C, 1e-5f);
    layernorm_backward_cuda(d_dx, d_dw, d_db, d_dy, d_x, d_w, d_mean, d_rstd, N, C);
    CK(cudaDeviceSynchronize());
    ct_compare("layernorm_forward", out, d_out, n, 1e-5) ? pass++ : fail++;
    ct_compare("layernorm_backward dinp", dx, d_dx, n, 1e-5) ? pass++ : fail++;
    ct_compare("layernorm_backward dw+db", dw, d_dw, C, 1e-4) && ct_compare("layernorm_backward db", db, d_db, C, 1e-4)
        ? pass++ : fail++;
    float *g = malloc(4 * n), *dg = calloc(n, 4), *d_g = ct_dev(NULL, n), *d_dg = ct_zero(n);
    gelu_forward(g, x, n);
    gelu_backward(dg, x, dy, n);
    gelu_forward_cuda(d_g, d_x, n);
    gelu_backward_cuda(d_dg, d_x, d_dy, n);
    CK(cudaDeviceSynchronize());
    ct_compare("gelu forward", g, d_g, n, 1e-5) ? pass++ : fail++;
    ct_compare("gelu backward", dg, d_dg, n, 1e-5) ? pass++ : fail++;
    printf("CUDA kernel tests: %d of %d passed\n", pass, pass + fail);
    float *dev_bufs[] = {d_x, d_w, d_b, d_dy, d_out, d_mean, d_rstd, d_dx, d_dw, d_db, d_g, d_dg};
    for (size_t i = 0; i < sizeof dev_bufs / sizeof dev_bufs[0]; i++) CK(cudaFree(dev_bufs[i]));
    free(x), free(w), free(b), free(dy), free(out), free(mean), free(rstd), free(dx), free(dw), free(db), free(g), free(dg);
    return fail ? 1 : 0;
}
