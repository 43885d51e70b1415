// layers_cuda.cu — LayerNorm, GELU, ReLU and residual kernels (fp32). Same math as model/layers.c; the
// reductions use a fixed order per row/column so results do not depend on scheduling.
#include "launch.h"
#include "layers_cuda.h"

#define GELU_K 0.7978845608028654f

extern "C" int cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;
    return n;
}

// one warp per row: mean and variance by warp shuffles
__global__ void layernorm_forward_kernel(float *out, float *mean, float *rstd, const float *inp, const float *w,
                                         const float *b, int N, int C, float eps) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    const float *x = inp + (size_t)row * C;
    float s = 0;
    for (int c = lane; c < C; c += 32) s += x[c];
    for (int o = 16; o > 0; o /= 2) s += __shfl_xor_sync(0xffffffff, s, o);
    float m = s / C, v = 0;
    for (int c = lane; c < C; c += 32) v += (x[c] - m) * (x[c] - m);
    for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffff, v, o);
    float r = rsqrtf(v / C + eps);
    for (int c = lane; c < C; c += 32) out[(size_t)row * C + c] = (x[c] - m) * r * w[c] + b[c];
    if (lane == 0) {
        mean[row] = m;
        rstd[row] = r;
    }
}

__global__ void layernorm_backward_dinp_kernel(float *dinp, const float *dout, const float *inp, const float *w,
                                               const float *mean, const float *rstd, int N, int C) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    const float *x = inp + (size_t)row * C, *dy = dout + (size_t)row * C;
    float m = mean[row], s = rstd[row], gm = 0, gxm = 0;
    for (int c = lane; c < C; c += 32) {
        float g = dy[c] * w[c];
        gm += g;
        gxm += g * (x[c] - m) * s;
    }
    for (int o = 16; o > 0; o /= 2) {
        gm += __shfl_xor_sync(0xffffffff, gm, o);
        gxm += __shfl_xor_sync(0xffffffff, gxm, o);
    }
    gm /= C;
    gxm /= C;
    for (int c = lane; c < C; c += 32)
        dinp[(size_t)row * C + c] += s * (dy[c] * w[c] - gm - (x[c] - m) * s * gxm);
}

// one thread per column, rows in order: deterministic
__global__ void layernorm_backward_dwdb_kernel(float *dw, float *db, const float *dout, const float *inp,
                                               const float *mean, const float *rstd, int N, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float aw = 0, ab = 0;
    for (int n = 0; n < N; n++) {
        float dy = dout[(size_t)n * C + c];
        aw += dy * (inp[(size_t)n * C + c] - mean[n]) * rstd[n];
        ab += dy;
    }
    if (dw) dw[c] += aw;
    if (db) db[c] += ab;
}

__global__ void gelu_forward_kernel(float *out, const float *inp, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float x = inp[i];
    out[i] = 0.5f * x * (1.f + tanhf(GELU_K * (x + 0.044715f * x * x * x)));
}

__device__ static inline float gelu_slope(float x) {
    float t = tanhf(GELU_K * (x + 0.044715f * x * x * x));
    return 0.5f * (1.f + t) + 0.5f * x * (1.f - t * t) * GELU_K * (1.f + 3.f * 0.044715f * x * x);
}

__global__ void gelu_backward_kernel(float *dinp, const float *inp, const float *dout, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dinp[i] += gelu_slope(inp[i]) * dout[i];
}

// din[bv, y, x, 4c+2i+j] = gelu'(pre) · dact at [bv, 2y+i, 2x+j, c]; one thread per din element (a bijection)
__global__ void shuffle_gelu_backward_kernel(float *din, const float *pre, const float *dact, int h, int w, int C,
                                             size_t n) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n) return;
    int k = (int)(e % (4 * C)), c = k / 4, i = k / 2 % 2, j = k % 2;
    int x = (int)(e / (4 * C) % w), y = (int)(e / (4 * C) / w % h);
    size_t bv = e / (4 * C) / w / h, o = ((bv * 2 * h + 2 * y + i) * 2 * w + 2 * x + j) * C + c;
    din[e] = gelu_slope(pre[o]) * dact[o];
}

__global__ void add_inplace_kernel(float *dst, const float *src, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dst[i] += src[i];
}

__global__ void relu_forward_kernel(float *out, const float *inp, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = inp[i] > 0 ? inp[i] : 0;
}

__global__ void relu_backward_kernel(float *dinp, const float *inp, const float *dout, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n && inp[i] > 0) dinp[i] += dout[i];
}

extern "C" void layernorm_forward_cuda(float *out, float *mean, float *rstd, const float *inp, const float *w,
                                       const float *b, int N, int C, float eps) {
    if (N > 0) KLAUNCH(layernorm_forward_kernel, blocks_for(N, 8), 256, 0, out, mean, rstd, inp, w, b, N, C, eps);
}

extern "C" void layernorm_backward_cuda(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                                        const float *w, const float *mean, const float *rstd, int N, int C) {
    if (N <= 0) return;
    if (dinp) KLAUNCH(layernorm_backward_dinp_kernel, blocks_for(N, 8), 256, 0, dinp, dout, inp, w, mean, rstd, N, C);
    if (dw || db) KLAUNCH(layernorm_backward_dwdb_kernel, blocks_for(C, 128), 128, 0, dw, db, dout, inp, mean, rstd, N, C);
}

extern "C" void gelu_forward_cuda(float *out, const float *inp, size_t n) {
    if (n) KLAUNCH(gelu_forward_kernel, blocks_for(n, 256), 256, 0, out, inp, n);
}

extern "C" void gelu_backward_cuda(float *dinp, const float *inp, const float *dout, size_t n) {
    if (n) KLAUNCH(gelu_backward_kernel, blocks_for(n, 256), 256, 0, dinp, inp, dout, n);
}

extern "C" void shuffle_gelu_backward_cuda(float *din, const float *pre, const float *dact, int BV, int h, int w,
                                           int C) {
    size_t n = (size_t)BV * 4 * h * w * C;
    if (n) KLAUNCH(shuffle_gelu_backward_kernel, blocks_for(n, 256), 256, 0, din, pre, dact, h, w, C, n);
}

extern "C" void add_inplace_cuda(float *dst, const float *src, size_t n) {
    if (n) KLAUNCH(add_inplace_kernel, blocks_for(n, 256), 256, 0, dst, src, n);
}

extern "C" void relu_forward_cuda(float *out, const float *inp, size_t n) {
    if (n) KLAUNCH(relu_forward_kernel, blocks_for(n, 256), 256, 0, out, inp, n);
}

extern "C" void relu_backward_cuda(float *dinp, const float *inp, const float *dout, size_t n) {
    if (n) KLAUNCH(relu_backward_kernel, blocks_for(n, 256), 256, 0, dinp, inp, dout, n);
}
