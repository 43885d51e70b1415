// lpips_cuda.cu — LPIPS forward and backward to the input on the GPU, train/lpips.c's algorithm step by
// step: convs as im2col + cuBLAS GEMM (matmul_cuda) over chunks of output rows that never straddle the x/y
// halves, bias + ReLU, max-pool with a uint8 argmax, then the head (channel norms, weighted distances,
// fixed-order row sums in double). The backward is gathers only: col2im and the max-pool backward let each
// input element sum its own contributions in the CPU's order, so there are no atomics and the result does
// not depend on scheduling. Elementwise formulas are the CPU's own, in its order (--fmad=false): only the
// GEMMs sum in another order than OpenBLAS.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../model/cuda/launch.h"
#include "../../model/cuda/matmul_cuda.h"
#include "lpips_cuda.h"

// im2col chunk: at most this many floats (32 MB), but at least one output row; the CPU's COLS_CHUNK, so
// a large image never needs a whole layer's im2col. l->cols_chunk starts as this.
#define LPIPS_CUDA_COLS_CHUNK ((size_t)1 << 23)
#define LPIPS_BLOCK 256

static void lpips_cols_fit(const LpipsCuda *l, size_t n) {
    if (n > l->cols_cap) {
        fprintf(stderr, "FATAL %s:%d: lpips_cuda: an im2col chunk of %zu floats, the buffer holds %zu\n"
                "  hint: cols_chunk may only be lowered after lpips_cuda_build\n", __FILE__, __LINE__, n, l->cols_cap);
        exit(1);
    }
}


// ----------------------------------------------------------------------------------------------
// trunk kernels

// in[2·npx, 3] = ((2v − 1) − shift) / scale for v from x (pixels 0..npx−1) then y, in float like the CPU
__global__ void lpips_scale_kernel(float *in, const float *x, const float *y, size_t npx, size_t n) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n) return;
    int c = (int)(e % 3);
    float v = e < 3 * npx ? x[e] : y[e - 3 * npx];
    float sh = c == 0 ? (float)LPIPS_SHIFT_R : c == 1 ? (float)LPIPS_SHIFT_G : (float)LPIPS_SHIFT_B;
    float sc = c == 0 ? (float)LPIPS_SCALE_R : c == 1 ? (float)LPIPS_SCALE_G : (float)LPIPS_SCALE_B;
    in[e] = ((2 * v - 1) - sh) / sc;
}

// cols[m, (ky, kx, c)] for output pixels m of rows [r0, r0 + M/Wo) (row = image·Ho + oy); zero padding
__global__ void lpips_im2col_kernel(float *cols, const float *in, int r0, int H, int W, int C, int Ho, int Wo, int k,
                                    int s, int p, size_t K, size_t n) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n) return;
    size_t m = e / K;
    int j = (int)(e % K), kc = k * C;
    int ky = j / kc, kx = j % kc / C, c = j % C;
    int r = r0 + (int)(m / Wo), ox = (int)(m % Wo);
    int b = r / Ho, oy = r % Ho, iy = oy * s - p + ky, ix = ox * s - p + kx;
    cols[e] = iy < 0 || iy >= H || ix < 0 || ix >= W ? 0.f : in[(((size_t)b * H + iy) * W + ix) * C + c];
}

// o[M, OC] = ReLU(o + bias), after the GEMM as on the CPU
__global__ void lpips_bias_relu_kernel(float *o, const float *bias, int OC, size_t n) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n) return;
    float v = o[e] + bias[e % OC];
    o[e] = v > 0 ? v : 0;
}

// max-pool (floor mode, no padding) of in[B, H, W, C] into out[B, Ho, Wo, C]; arg = the first maximum in
// scan order (ky, then kx), like PyTorch
__global__ void lpips_pool_kernel(float *out, uint8_t *arg, const float *in, int H, int W, int C, int Ho, int Wo,
                                  int k, int s, size_t n) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n) return;
    int q = (int)(e % C);
    size_t t = e / C;
    int ox = (int)(t % Wo), oy = (int)(t / Wo % Ho);
    size_t b = t / Wo / Ho;
    float best = 0;
    int bi = -1;
    for (int ky = 0; ky < k; ky++)
        for (int kx = 0; kx < k; kx++) {
            float v = in[((b * H + oy * s + ky) * W + ox * s + kx) * C + q];
            if (bi < 0 || v > best) best = v, bi = ky * k + kx;
        }
    out[e] = best;
    arg[e] = (uint8_t)bi;
}

// ----------------------------------------------------------------------------------------------
// head kernels

// nrm[q] = sqrt(Σ_c f[q, c]²) per position q of all B images, the sum in double in channel order
__global__ void lpips_norm_kernel(float *nrm, const float *f, int C, size_t n) {
    size_t q = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (q >= n) return;
    const float *v = f + q * C;
    double s2 = 0;
    for (int c = 0; c < C; c++) s2 += (double)v[c] * v[c];
    nrm[q] = (float)sqrt(s2);
}

// dist[q] = Σ_c lin_c (f̂x_c − f̂y_c)² per position q of the x half (nhw = N·h·w); y is q + nhw
__global__ void lpips_dist_kernel(double *dist, const float *f, const float *nrm, const float *lin, int C, size_t nhw) {
    size_t q = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (q >= nhw) return;
    const float *fx = f + q * C, *fy = f + (q + nhw) * C;
    float sx = nrm[q] + (float)LPIPS_EPS, sy = nrm[q + nhw] + (float)LPIPS_EPS;
    double d = 0;
    for (int c = 0; c < C; c++) {
        float e = fx[c] / sx - fy[c] / sy;
        d += (double)lin[c] * e * e;
    }
    dist[q] = d;
}

// rowsum[r] = Σ_x dist[r, x] in index order (double)
__global__ void lpips_rowsum_kernel(double *rowsum, const double *dist, int w, size_t rows) {
    size_t r = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    double s = 0;
    for (int x = 0; x < w; x++) s += dist[r * w + x];
    rowsum[r] = s;
}

struct LpipsTapGrid { // per tap: rows h, positions h·w, offset of its row sums
    int h[LPIPS_TAPS], off[LPIPS_TAPS];
    double hw[LPIPS_TAPS];
};

// one thread: per-tap spatial means, per-pair sums over taps, the mean over pairs (the CPU's order)
__global__ void lpips_total_kernel(double *total, double *tap_d, double *pair_d, float *per, const double *rowsum,
                                   LpipsTapGrid g, int N) {
    if (threadIdx.x != 0 || blockIdx.x != 0) return;
    for (int n = 0; n < N; n++) pair_d[n] = 0;
    for (int k = 0; k < LPIPS_TAPS; k++)
        for (int n = 0; n < N; n++) {
            double s = 0;
            for (int yy = 0; yy < g.h[k]; yy++) s += rowsum[g.off[k] + n * g.h[k] + yy];
            tap_d[k * N + n] = s / g.hw[k];
            pair_d[n] += tap_d[k * N + n];
        }
    double mean = 0;
    for (int n = 0; n < N; n++) {
        mean += pair_d[n];
        if (per) per[n] = (float)pair_d[n];
    }
    *total = mean / N;
}

// ----------------------------------------------------------------------------------------------
// backward kernels

// g[q, :] += ∂(kk-scaled distance)/∂fx at position q of the x half (train/lpips.c head_backward)
__global__ void lpips_head_bwd_kernel(float *g, const float *f, const float *nrm, const float *lin, float kk, int C,
                                      size_t nhw) {
    size_t q = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (q >= nhw) return;
    const float *fx = f + q * C, *fy = f + (q + nhw) * C;
    float nx = nrm[q], sx = nx + (float)LPIPS_EPS, sy = nrm[q + nhw] + (float)LPIPS_EPS;
    float *gq = g + q * C;
    double dot = 0;
    for (int c = 0; c < C; c++) dot += (double)fx[c] * (kk * lin[c] * (fx[c] / sx - fy[c] / sy));
    // at |f| = 0 only ĝ/s remains (docs/lpips.md)
    float t = nx > 0 ? (float)(dot / ((double)nx * sx * sx)) : 0;
    for (int c = 0; c < C; c++) {
        float gh = kk * lin[c] * (fx[c] / sx - fy[c] / sy);
        gq[c] += gh / sx - fx[c] * t;
    }
}

// g = g where the ReLU output a (x half) is positive, else 0
__global__ void lpips_relu_bwd_kernel(float *g, const float *a, size_t n) {
    size_t j = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (j < n) g[j] = a[j] > 0 ? g[j] : 0;
}

// col2im as a gather for the chunk of output rows [r0, r1): each element (b, iy, ix, c) of images b0.. adds
// the chunk's dcols terms that came from it, ky then kx, onto its running value (chunks run in order)
__global__ void lpips_col2im_kernel(float *din, const float *dcols, int r0, int r1, int b0, int H, int W, int C,
                                    int Ho, int Wo, int k, int s, int p, size_t K, size_t n) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n) return;
    int q = (int)(e % C), ix = (int)(e / C % W), iy = (int)(e / C / W % H), b = b0 + (int)(e / C / W / H);
    int oa = b * Ho < r0 ? r0 - b * Ho : 0, ob = (b + 1) * Ho > r1 ? r1 - b * Ho - 1 : Ho - 1;
    if (iy < oa * s - p || iy > ob * s - p + k - 1) return; // this chunk does not reach the row
    float *d = din + (((size_t)b * H + iy) * W + ix) * C + q;
    float acc = *d;
    for (int ky = 0; ky < k; ky++) {
        int ty = iy + p - ky; // = oy·s
        if (ty < 0 || ty % s) continue;
        int oy = ty / s;
        if (oy < oa || oy > ob) continue;
        const float *crow = dcols + ((size_t)(b * Ho + oy - r0) * Wo) * K + (size_t)ky * k * C + q;
        for (int kx = 0; kx < k; kx++) {
            int tx = ix + p - kx;
            if (tx < 0 || tx % s) continue;
            int ox = tx / s;
            if (ox >= Wo) continue;
            acc += crow[(size_t)ox * K + (size_t)kx * C];
        }
    }
    *d = acc;
}

// max-pool backward as a gather: din[N, H, W, C] (overwritten) sums dout over the windows (oy, ox in order)
// whose argmax it is
__global__ void lpips_pool_bwd_kernel(float *din, const float *dout, const uint8_t *arg, int H, int W, int C, int Ho,
                                      int Wo, int k, int s, size_t n) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n) return;
    int q = (int)(e % C), ix = (int)(e / C % W), iy = (int)(e / C / W % H);
    size_t b = e / C / W / H;
    int oy0 = iy - k + 1 > 0 ? (iy - k + 1 + s - 1) / s : 0, oy1 = iy / s < Ho - 1 ? iy / s : Ho - 1;
    int ox0 = ix - k + 1 > 0 ? (ix - k + 1 + s - 1) / s : 0, ox1 = ix / s < Wo - 1 ? ix / s : Wo - 1;
    float d = 0;
    for (int oy = oy0; oy <= oy1; oy++)
        for (int ox = ox0; ox <= ox1; ox++) {
            size_t o = ((b * Ho + oy) * Wo + ox) * C + q;
            if (arg[o] == (uint8_t)((iy - oy * s) * k + ix - ox * s)) d += dout[o];
        }
    din[e] = d;
}

// dx[npx, 3] += g · 2 / scale_c (∂x'/∂x of the ScalingLayer)
__global__ void lpips_dx_kernel(float *dx, const float *g, size_t n) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n) return;
    int c = (int)(e % 3);
    float f = c == 0   ? (float)(2.0 / LPIPS_SCALE_R)
              : c == 1 ? (float)(2.0 / LPIPS_SCALE_G)
                       : (float)(2.0 / LPIPS_SCALE_B);
    dx[e] += g[e] * f;
}

// ----------------------------------------------------------------------------------------------
// build / free

static void *lpips_dev_alloc(size_t bytes) {
    void *p;
    cudaCheck(cudaMalloc(&p, bytes ? bytes : 4));
    return p;
}

extern "C" void lpips_cuda_build(LpipsCuda *l, const LpipsWeights *w, int N, int H, int W) {
    memset(l, 0, sizeof *l);
    char err[256];
    if (lpips_check_size(w->net, H, W, err, sizeof err)) {
        fprintf(stderr, "FATAL %s:%d: lpips_cuda_build: %s\n", __FILE__, __LINE__, err);
        exit(1);
    }
    if (N < 1 || !w->data) {
        fprintf(stderr, "FATAL %s:%d: lpips_cuda_build: %s\n", __FILE__, __LINE__,
                N < 1 ? "need at least 1 pair" : "the LPIPS weights are not loaded");
        exit(1);
    }
    l->net = w->net, l->n_conv = w->n_conv;
    l->N = N, l->H = H, l->W = W, l->B = 2 * N;
    memcpy(l->conv, w->conv, sizeof l->conv);
    for (int i = 0; i < l->n_conv; i++) l->conv[i].w = l->conv[i].b = NULL; // the device copies are used
    memcpy(l->tap_ch, w->tap_ch, sizeof l->tap_ch);
    // grids and buffer sizes (shared with lpips_build)
    LpipsPlan pl;
    lpips_plan(w, N, H, W, LPIPS_CUDA_COLS_CHUNK, &pl);
    memcpy(l->ih, pl.ih, sizeof l->ih), memcpy(l->iw, pl.iw, sizeof l->iw);
    memcpy(l->ph, pl.ph, sizeof l->ph), memcpy(l->pw, pl.pw, sizeof l->pw);
    memcpy(l->oh, pl.oh, sizeof l->oh), memcpy(l->ow, pl.ow, sizeof l->ow);
    memcpy(l->tap_conv, pl.tap_conv, sizeof l->tap_conv);
    const size_t n_w = pl.n_w, max_elems = pl.max_elems, cols = pl.cols, max_m = pl.max_m;
    // weights: PyTorch [OC, IC, kh, kw] -> [OC, kh, kw, IC] on the host, then one copy
    float *hw = (float *)malloc(sizeof(float) * n_w);
    if (!hw) {
        fprintf(stderr, "FATAL %s:%d: lpips_cuda_build: out of host memory\n", __FILE__, __LINE__);
        exit(1);
    }
    l->wbuf = (float *)lpips_dev_alloc(sizeof(float) * n_w);
    size_t off = 0;
    for (int i = 0; i < l->n_conv; i++) {
        const LpipsConv *c = &w->conv[i];
        int IC = c->IC, kk = c->kh * c->kw;
        float *cw = hw + off;
        l->cw[i] = l->wbuf + off, off += (size_t)c->OC * kk * IC;
        for (int o = 0; o < c->OC; o++)
            for (int ic = 0; ic < IC; ic++)
                for (int q = 0; q < kk; q++) cw[((size_t)o * kk + q) * IC + ic] = c->w[((size_t)o * IC + ic) * kk + q];
        memcpy(hw + off, c->b, sizeof(float) * c->OC);
        l->cb[i] = l->wbuf + off, off += c->OC;
    }
    for (int k = 0; k < LPIPS_TAPS; k++) {
        memcpy(hw + off, w->lin[k], sizeof(float) * l->tap_ch[k]);
        l->lin[k] = l->wbuf + off, off += l->tap_ch[k];
    }
    cudaCheck(cudaMemcpy(l->wbuf, hw, sizeof(float) * n_w, cudaMemcpyHostToDevice));
    free(hw);
    // activations
    size_t B = (size_t)l->B;
    l->in = (float *)lpips_dev_alloc(sizeof(float) * B * H * W * 3);
    for (int i = 0; i < l->n_conv; i++) {
        const LpipsConv *c = &l->conv[i];
        l->act[i] = (float *)lpips_dev_alloc(sizeof(float) * B * l->oh[i] * l->ow[i] * c->OC);
        if (c->pool_k) {
            size_t n = B * l->ih[i] * l->iw[i] * c->IC;
            l->pool[i] = (float *)lpips_dev_alloc(sizeof(float) * n);
            l->arg[i] = (uint8_t *)lpips_dev_alloc(n);
        }
    }
    size_t max_hw = 1, rows = 0;
    for (int k = 0; k < LPIPS_TAPS; k++) {
        int i = l->tap_conv[k];
        size_t hwk = (size_t)l->oh[i] * l->ow[i];
        if (hwk > max_hw) max_hw = hwk;
        l->norm[k] = (float *)lpips_dev_alloc(sizeof(float) * B * hwk);
        l->rows_off[k] = (int)rows, rows += (size_t)N * l->oh[i];
    }
    l->dist = (double *)lpips_dev_alloc(sizeof(double) * N * max_hw);
    l->rowsum = (double *)lpips_dev_alloc(sizeof(double) * rows);
    l->tap_d = (double *)lpips_dev_alloc(sizeof(double) * LPIPS_TAPS * N);
    l->pair_d = (double *)lpips_dev_alloc(sizeof(double) * N);
    l->total = (double *)lpips_dev_alloc(sizeof(double));
    l->cols_cap = cols, l->cols_chunk = LPIPS_CUDA_COLS_CHUNK;
    l->max_operand = cols > 2 * (size_t)N * max_elems ? cols : 2 * (size_t)N * max_elems;
    for (int i = 0; i < l->n_conv; i++) {
        size_t nw = (size_t)l->conv[i].OC * l->conv[i].kh * l->conv[i].kw * l->conv[i].IC;
        if (nw > l->max_operand) l->max_operand = nw;
    }
    l->cols = (float *)lpips_dev_alloc(sizeof(float) * cols);
    l->g0 = (float *)lpips_dev_alloc(sizeof(float) * N * max_elems);
    l->g1 = (float *)lpips_dev_alloc(sizeof(float) * N * max_elems);
    matmul_cuda_setup(max_m);
}

extern "C" void lpips_cuda_free(LpipsCuda *l) {
    void *p[] = {l->wbuf, l->in, l->dist, l->rowsum, l->tap_d, l->pair_d, l->total, l->cols, l->g0, l->g1};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
        if (p[i]) cudaCheck(cudaFree(p[i]));
    for (int i = 0; i < l->n_conv; i++) {
        if (l->act[i]) cudaCheck(cudaFree(l->act[i]));
        if (l->pool[i]) cudaCheck(cudaFree(l->pool[i]));
        if (l->arg[i]) cudaCheck(cudaFree(l->arg[i]));
    }
    for (int k = 0; k < LPIPS_TAPS; k++)
        if (l->norm[k]) cudaCheck(cudaFree(l->norm[k]));
    memset(l, 0, sizeof *l);
}

// ----------------------------------------------------------------------------------------------
// forward

// out[B, Ho, Wo, OC] = ReLU(conv(in[B, H, W, IC])). Both halves are chunked alike (an image gets the same
// GEMM row positions whether it is x or y), so LPIPS(x, x) is exactly 0.
static void lpips_conv_relu_forward(LpipsCuda *l, int i, float *out, const float *in) {
    const LpipsConv *c = &l->conv[i];
    int H = l->ih[i], W = l->iw[i], Ho = l->oh[i], Wo = l->ow[i], C = c->IC, OC = c->OC, k = c->kh;
    size_t K = (size_t)k * k * C;
    int Rh = l->N * Ho, cr = lpips_chunk_rows(l->cols_chunk, K, Wo);
    for (int half = 0; half < 2; half++)
        for (int r0 = half * Rh; r0 < (half + 1) * Rh; r0 += cr) {
            int r1 = r0 + cr < (half + 1) * Rh ? r0 + cr : (half + 1) * Rh, M = (r1 - r0) * Wo;
            size_t n = (size_t)M * K, no = (size_t)M * OC;
            lpips_cols_fit(l, n);
            KLAUNCH(lpips_im2col_kernel, blocks_for(n, LPIPS_BLOCK), LPIPS_BLOCK, 0, l->cols, in, r0, H, W, C, Ho,
                    Wo, k, c->stride, c->pad, K, n);
            float *o = out + (size_t)r0 * Wo * OC;
            matmul_forward_cuda(o, l->cols, l->cw[i], NULL, M, (int)K, OC);
            KLAUNCH(lpips_bias_relu_kernel, blocks_for(no, LPIPS_BLOCK), LPIPS_BLOCK, 0, o, l->cb[i], OC, no);
        }
}

extern "C" void lpips_forward_cuda(LpipsCuda *l, const float *x, const float *y, float *per) {
    int N = l->N;
    size_t npx = (size_t)N * l->H * l->W, n_in = 6 * npx;
    KLAUNCH(lpips_scale_kernel, blocks_for(n_in, LPIPS_BLOCK), LPIPS_BLOCK, 0, l->in, x, y, npx, n_in);
    for (int i = 0; i < l->n_conv; i++) {
        const LpipsConv *c = &l->conv[i];
        const float *src = i == 0 ? l->in : l->act[i - 1];
        if (c->pool_k) {
            size_t n = (size_t)l->B * l->ih[i] * l->iw[i] * c->IC;
            KLAUNCH(lpips_pool_kernel, blocks_for(n, LPIPS_BLOCK), LPIPS_BLOCK, 0, l->pool[i], l->arg[i], src,
                    l->ph[i], l->pw[i], c->IC, l->ih[i], l->iw[i], c->pool_k, c->pool_s, n);
            src = l->pool[i];
        }
        lpips_conv_relu_forward(l, i, l->act[i], src);
    }
    // head: per tap, norms of all 2N images, distances of the N pairs, row sums; then one thread sums
    LpipsTapGrid g;
    for (int k = 0; k < LPIPS_TAPS; k++) {
        int i = l->tap_conv[k], h = l->oh[i], w = l->ow[i], C = l->tap_ch[k];
        size_t nhw = (size_t)N * h * w, rows = (size_t)N * h;
        g.h[k] = h, g.off[k] = l->rows_off[k], g.hw[k] = (double)h * w;
        KLAUNCH(lpips_norm_kernel, blocks_for(2 * nhw, LPIPS_BLOCK), LPIPS_BLOCK, 0, l->norm[k], l->act[i], C,
                2 * nhw);
        KLAUNCH(lpips_dist_kernel, blocks_for(nhw, LPIPS_BLOCK), LPIPS_BLOCK, 0, l->dist, l->act[i], l->norm[k],
                l->lin[k], C, nhw);
        KLAUNCH(lpips_rowsum_kernel, blocks_for(rows, 128), 128, 0, l->rowsum + l->rows_off[k], l->dist, w, rows);
    }
    KLAUNCH(lpips_total_kernel, 1, 32, 0, l->total, l->tap_d, l->pair_d, per, l->rowsum, g, N);
    l->have_forward = 1;
}

// ----------------------------------------------------------------------------------------------
// backward

// din[N, H, W, IC] = conv backward-data of dout[N, Ho, Wo, OC] (overwritten). Per chunk of output rows:
// dcols = dout · W (cuBLAS, into zeroed cols: matmul_backward_cuda accumulates), then the gather.
static void lpips_conv_backward_data(LpipsCuda *l, int i, float *din, const float *dout) {
    const LpipsConv *c = &l->conv[i];
    int N = l->N, H = l->ih[i], W = l->iw[i], Ho = l->oh[i], Wo = l->ow[i], C = c->IC, OC = c->OC, k = c->kh;
    size_t K = (size_t)k * k * C;
    cudaCheck(cudaMemset(din, 0, sizeof(float) * N * H * W * C));
    int R = N * Ho, cr = lpips_chunk_rows(l->cols_chunk, K, Wo);
    for (int r0 = 0; r0 < R; r0 += cr) {
        int r1 = r0 + cr < R ? r0 + cr : R, M = (r1 - r0) * Wo;
        lpips_cols_fit(l, (size_t)M * K);
        cudaCheck(cudaMemset(l->cols, 0, sizeof(float) * M * K));
        matmul_backward_cuda(l->cols, NULL, NULL, dout + (size_t)r0 * Wo * OC, NULL, l->cw[i], M, (int)K, OC);
        int b0 = r0 / Ho, b1 = (r1 - 1) / Ho;
        size_t n = (size_t)(b1 - b0 + 1) * H * W * C;
        KLAUNCH(lpips_col2im_kernel, blocks_for(n, LPIPS_BLOCK), LPIPS_BLOCK, 0, din, l->cols, r0, r1, b0, H, W, C,
                Ho, Wo, k, c->stride, c->pad, K, n);
    }
}

extern "C" void lpips_backward_cuda(LpipsCuda *l, float *dx, double scale) {
    if (!l->have_forward) {
        fprintf(stderr, "FATAL %s:%d: lpips_backward_cuda called before lpips_forward_cuda\n", __FILE__, __LINE__);
        exit(1);
    }
    int N = l->N, last = l->n_conv - 1;
    float *g = l->g0, *o = l->g1; // g: gradient w.r.t. the current conv's ReLU output; o: the other buffer
    cudaCheck(cudaMemset(g, 0, sizeof(float) * N * l->oh[last] * l->ow[last] * l->conv[last].OC));
    for (int i = last; i >= 0; i--) {
        const LpipsConv *c = &l->conv[i];
        size_t nhw = (size_t)N * l->oh[i] * l->ow[i], n = nhw * c->OC;
        if (c->tap >= 0) {
            float kk = (float)(scale * 2.0 / ((double)l->oh[i] * l->ow[i] * N)); // as head_backward
            KLAUNCH(lpips_head_bwd_kernel, blocks_for(nhw, LPIPS_BLOCK), LPIPS_BLOCK, 0, g, l->act[i], l->norm[c->tap],
                    l->lin[c->tap], kk, c->OC, nhw);
        }
        KLAUNCH(lpips_relu_bwd_kernel, blocks_for(n, LPIPS_BLOCK), LPIPS_BLOCK, 0, g, l->act[i], n); // x half: first n
        lpips_conv_backward_data(l, i, o, g);
        float *t = g;
        g = o, o = t;
        if (c->pool_k) { // g holds d/d(pooled input); route to the pre-pool grid
            size_t np = (size_t)N * l->ph[i] * l->pw[i] * c->IC;
            KLAUNCH(lpips_pool_bwd_kernel, blocks_for(np, LPIPS_BLOCK), LPIPS_BLOCK, 0, o, g, l->arg[i], l->ph[i],
                    l->pw[i], c->IC, l->ih[i], l->iw[i], c->pool_k, c->pool_s, np);
            t = g, g = o, o = t;
        }
    }
    size_t n = (size_t)N * l->H * l->W * 3;
    KLAUNCH(lpips_dx_kernel, blocks_for(n, LPIPS_BLOCK), LPIPS_BLOCK, 0, dx, g, n);
}
