// test_ssim_cuda.c — SSIM on the GPU (train/cuda/ssim_cuda.cu) against train/loss_image.c (float).
// Expected: BIT-IDENTICAL map, mean, per-image means and gradient. Every element runs loss_image.c's
// operations in its order (taps ascending; a tap skipped outside the image is the CPU's added zero),
// compiled with --fmad=false, and the mean is summed in the CPU's order (each row in double in index
// order, then the rows, then the images), so no tolerance is needed. Images: one pixel, narrower than the
// window, one channel, and the demo's render size; the backward accumulates twice into a random gradient.
// Without a CUDA device it says so and exits 0.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../train/cuda/ssim_cuda.h"
#include "../../train/loss_image.h"
#include "cuda_test.h"

static int pass, fail;

static size_t bits_differ(const float *a, const float *b, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += memcmp(a + i, b + i, 4) != 0;
    return k;
}

static void check_ssim(int N, int H, int W, int C) {
    size_t n = (size_t)N * H * W * C;
    float *x = (float *)mallocCheck(4 * n), *y = (float *)mallocCheck(4 * n), *dx = ct_rand(n, 91);
    float *per = (float *)mallocCheck(4 * N), *h = (float *)mallocCheck(4 * n), *hper = (float *)mallocCheck(4 * N);
    Rng r = rng_make(90, (uint64_t)n);
    for (size_t i = 0; i < n; i++) { // ground truth: a noisy copy of the prediction, as in training
        x[i] = rng_uniform_at(&r, 2 * i);
        y[i] = fminf(1.f, fmaxf(0.f, x[i] + 0.2f * (rng_uniform_at(&r, 2 * i + 1) - 0.5f)));
    }
    Ssim cs;
    SsimCuda gs;
    ssim_build(&cs, N, H, W, C);
    ssim_cuda_build(&gs, N, H, W, C);
    float *d_x = ct_dev(x, n), *d_y = ct_dev(y, n), *d_dx = ct_dev(dx, n), *d_per = ct_dev(NULL, N);
    double cpu = ssim_forward(&cs, x, y, per), gpu;
    ssim_forward_cuda(&gs, d_x, d_y, d_per);
    ssim_backward(&cs, dx, x, y, -0.2), ssim_backward(&cs, dx, x, y, 1.0 / 3.0);
    ssim_backward_cuda(&gs, d_dx, d_x, d_y, -0.2), ssim_backward_cuda(&gs, d_dx, d_x, d_y, 1.0 / 3.0);
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(&gpu, gs.total, 8, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(hper, d_per, 4 * N, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(h, gs.map, 4 * n, cudaMemcpyDeviceToHost));
    size_t bad_map = bits_differ(cs.map, h, n), bad_per = bits_differ(per, hper, N);
    int ok = bad_map == 0 && bad_per == 0 && memcmp(&gpu, &cpu, 8) == 0;
    printf("%s ssim forward [%d,%d,%d,%d]: mean cpu %.17g gpu %.17g; map %zu of %zu differ in their bits, "
           "per-image %zu of %d\n", ok ? "PASS" : "FAIL", N, H, W, C, cpu, gpu, bad_map, n, bad_per, N);
    ok ? pass++ : fail++;
    CK(cudaMemcpy(h, d_dx, 4 * n, cudaMemcpyDeviceToHost));
    size_t bad = bits_differ(dx, h, n);
    printf("%s ssim backward [%d,%d,%d,%d] (scale -0.2 then 1/3, accumulated): %zu of %zu differ in their bits\n",
           bad ? "FAIL" : "PASS", N, H, W, C, bad, n);
    bad ? fail++ : pass++;
    ssim_free(&cs);
    ssim_cuda_free(&gs);
    float *dp[] = {d_x, d_y, d_dx, d_per};
    for (int i = 0; i < 4; i++) CK(cudaFree(dp[i]));
    free(x), free(y), free(dx), free(per), free(h), free(hper);
}

int main(void) {
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("no CUDA device: the CUDA SSIM tests are skipped (run them on a GPU machine, see "
               "docs/gpu-verification.md)\n");
        return 0;
    }
    check_ssim(1, 1, 1, 3);
    check_ssim(2, 7, 9, 3);
    check_ssim(3, 13, 12, 1);
    check_ssim(4, 64, 64, 3);
    printf("CUDA SSIM tests: %d of %d checks passed\n", pass, pass + fail);
    return fail ? 1 : 0;
}
