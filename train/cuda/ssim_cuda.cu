// ssim_cuda.cu — SSIM forward and backward as separable blurs: a horizontal pass into planes, then a
// vertical pass that reads them. One thread per element of the [N, H, W·C] image for each pass; taps
// outside the image are skipped (the CPU adds zeros there or skips them: the same value). The formulas
// are train/loss_image.c's own (train/ssim_math.h), so with --fmad=false every element matches it bitwise.
#include <math.h>
#include <string.h>

#include "../../model/cuda/launch.h"
#include "ssim_cuda.h"

#define real float
#define R_(name) name
#define SSIM_FN __host__ __device__ static inline
#include "../ssim_math.h" // the window and the map formula: the CPU's code
#undef R_
#undef real

enum { R = SSIM_RADIUS, WIN = SSIM_WIN };
struct Win {
    float g[WIN];
};

// h[(n·5 + q)·plane + r·L + i] = Σ_k g[k]·m_q(x, y)[r, i + (k − R)·C] for the moments x, y, x², y², xy
__global__ void ssim_hpass5_kernel(float *h, const float *x, const float *y, Win w, int H, int W, int C, size_t n) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n) return;
    int L = W * C, i = (int)(e % L), px = i / C;
    size_t row = e / L, img = row / H, plane = (size_t)H * L;
    const float *xr = x + row * L, *yr = y + row * L;
    int k0 = px < R ? R - px : 0, k1 = W - 1 - px + R < WIN - 1 ? W - 1 - px + R : WIN - 1;
    float a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0;
    for (int k = k0; k <= k1; k++) {
        float xv = xr[i + (k - R) * C], yv = yr[i + (k - R) * C];
        a0 += w.g[k] * xv, a1 += w.g[k] * yv;
        a2 += w.g[k] * (xv * xv), a3 += w.g[k] * (yv * yv), a4 += w.g[k] * (xv * yv);
    }
    float *o = h + img * 5 * plane + (row % H) * L + i;
    o[0] = a0, o[plane] = a1, o[2 * plane] = a2, o[3 * plane] = a3, o[4 * plane] = a4;
}

// vertical pass: the moments, the map and its three partial derivatives (loss_image.c ssim_forward)
__global__ void ssim_vpass_kernel(float *map, float *dmap, const float *h, Win w, int H, int L, size_t n) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n) return;
    int i = (int)(e % L), r = (int)(e / L % H);
    size_t img = e / L / H, plane = (size_t)H * L;
    const float *h0 = h + img * 5 * plane + i;
    float mx = 0, my = 0, exx = 0, eyy = 0, exy = 0;
    for (int k = 0; k < WIN; k++) {
        int rr = r + k - R;
        if (rr < 0 || rr >= H) continue; // zero padding
        const float *hp = h0 + (size_t)rr * L;
        mx += w.g[k] * hp[0], my += w.g[k] * hp[plane], exx += w.g[k] * hp[2 * plane];
        eyy += w.g[k] * hp[3 * plane], exy += w.g[k] * hp[4 * plane];
    }
    float *d = dmap + img * 3 * plane + (size_t)r * L + i;
    map[e] = ssim_map_terms(mx, my, exx, eyy, exy, d, d + plane, d + 2 * plane);
}

// rowsum[row] = Σ_i map[row, i] in index order, in double (as the CPU)
__global__ void ssim_rowsum_kernel(double *rowsum, const float *map, int L, size_t rows) {
    size_t r = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    double acc = 0;
    for (int i = 0; i < L; i++) acc += map[r * L + i];
    rowsum[r] = acc;
}

// one thread: per-image means and the total, rows and images in order (as the CPU)
__global__ void ssim_total_kernel(double *total, float *per, const double *rowsum, int N, int H, double plane) {
    if (threadIdx.x != 0 || blockIdx.x != 0) return;
    double t = 0;
    for (int n = 0; n < N; n++) {
        double acc = 0;
        for (int r = 0; r < H; r++) acc += rowsum[(size_t)n * H + r];
        if (per) per[n] = (float)(acc / plane);
        t += acc;
    }
    *total = t / (plane * N);
}

// backward, horizontal pass over the three derivative planes
__global__ void ssim_hpass3_kernel(float *h, const float *dmap, Win w, int H, int W, int C, size_t n) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n) return;
    int L = W * C, i = (int)(e % L), px = i / C;
    size_t row = e / L, img = row / H, plane = (size_t)H * L;
    const float *in = dmap + img * 3 * plane + (row % H) * L;
    int k0 = px < R ? R - px : 0, k1 = W - 1 - px + R < WIN - 1 ? W - 1 - px + R : WIN - 1;
    float a0 = 0, a1 = 0, a2 = 0;
    for (int k = k0; k <= k1; k++) {
        int j = i + (k - R) * C;
        a0 += w.g[k] * in[j], a1 += w.g[k] * in[plane + j], a2 += w.g[k] * in[2 * plane + j];
    }
    float *o = h + img * 5 * plane + (row % H) * L + i;
    o[0] = a0, o[plane] = a1, o[2 * plane] = a2;
}

// backward, vertical pass: dx += k·(g⊛∂μx + 2x·g⊛∂Exx + y·g⊛∂Exy) (the window is symmetric)
__global__ void ssim_vpass3_kernel(float *dx, const float *x, const float *y, const float *h, Win w, float kscale,
                                   int H, int L, size_t n) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n) return;
    int i = (int)(e % L), r = (int)(e / L % H);
    size_t img = e / L / H, plane = (size_t)H * L;
    const float *h0 = h + img * 5 * plane + i;
    float b0 = 0, b1 = 0, b2 = 0;
    for (int k = 0; k < WIN; k++) {
        int rr = r + k - R;
        if (rr < 0 || rr >= H) continue;
        const float *hp = h0 + (size_t)rr * L;
        b0 += w.g[k] * hp[0], b1 += w.g[k] * hp[plane], b2 += w.g[k] * hp[2 * plane];
    }
    dx[e] += kscale * (b0 + 2 * x[e] * b1 + y[e] * b2);
}

extern "C" void ssim_cuda_build(SsimCuda *s, int N, int H, int W, int C) {
    if (N <= 0 || H <= 0 || W <= 0 || C <= 0) {
        fprintf(stderr, "FATAL %s:%d: ssim_cuda_build: bad image shape [%d, %d, %d, %d]\n", __FILE__, __LINE__, N, H,
                W, C);
        exit(1);
    }
    memset(s, 0, sizeof *s);
    s->N = N, s->H = H, s->W = W, s->C = C;
    ssim_window(s->g);
    size_t img = (size_t)H * W * C;
    cudaCheck(cudaMalloc((void **)&s->map, sizeof(float) * N * img));
    cudaCheck(cudaMalloc((void **)&s->dmap, sizeof(float) * 3 * N * img));
    cudaCheck(cudaMalloc((void **)&s->hbuf, sizeof(float) * 5 * N * img));
    cudaCheck(cudaMalloc((void **)&s->rowsum, sizeof(double) * N * H));
    cudaCheck(cudaMalloc((void **)&s->total, sizeof(double)));
}

extern "C" void ssim_cuda_free(SsimCuda *s) {
    void *p[] = {s->map, s->dmap, s->hbuf, s->rowsum, s->total};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
        if (p[i]) cudaCheck(cudaFree(p[i]));
    memset(s, 0, sizeof *s);
}

static Win window(const SsimCuda *s) {
    Win w;
    memcpy(w.g, s->g, sizeof w.g);
    return w;
}

extern "C" void ssim_forward_cuda(SsimCuda *s, const float *x, const float *y, float *per) {
    int L = s->W * s->C;
    size_t n = (size_t)s->N * s->H * L, rows = (size_t)s->N * s->H;
    Win w = window(s);
    KLAUNCH(ssim_hpass5_kernel, blocks_for(n, 256), 256, 0, s->hbuf, x, y, w, s->H, s->W, s->C, n);
    KLAUNCH(ssim_vpass_kernel, blocks_for(n, 256), 256, 0, s->map, s->dmap, s->hbuf, w, s->H, L, n);
    KLAUNCH(ssim_rowsum_kernel, blocks_for(rows, 128), 128, 0, s->rowsum, s->map, L, rows);
    KLAUNCH(ssim_total_kernel, 1, 32, 0, s->total, per, s->rowsum, s->N, s->H, (double)s->H * L);
}

extern "C" void ssim_backward_cuda(SsimCuda *s, float *dx, const float *x, const float *y, double scale) {
    int L = s->W * s->C;
    size_t n = (size_t)s->N * s->H * L;
    float kscale = (float)(scale / ((double)s->H * L * s->N)); // as ssim_backward
    Win w = window(s);
    KLAUNCH(ssim_hpass3_kernel, blocks_for(n, 256), 256, 0, s->hbuf, s->dmap, w, s->H, s->W, s->C, n);
    KLAUNCH(ssim_vpass3_kernel, blocks_for(n, 256), 256, 0, dx, x, y, s->hbuf, w, kscale, s->H, L, n);
}
