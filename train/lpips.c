// lpips.c — LPIPS v0.1 forward and backward to the input image (docs/lpips.md), over `real` (real.h).
// Compiled twice (float, and double with -DAVAT3R_F64). Convs are im2col + GEMM in chunks of output rows;
// max-pool and col2im backward are gathers (each input element sums its contributions in a fixed order),
// the head's spatial sums are fixed-order row sums: results do not depend on the thread count.
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "../common/util.h"
#include "lpips.h"
#include "../common/real.h"

#ifdef AVAT3R_F64
#define GEMM cblas_dgemm
#else
#define GEMM cblas_sgemm
#endif

// im2col chunk: at most this many reals (32 MB in float), but at least one output row. A fixed number,
// not a function of the thread count, so the chunking (and the result) is the same on every machine.
#define COLS_CHUNK ((size_t)1 << 23)

// Threads for a loop touching `work` reals: one below 2^15 (tens of µs), where a parallel region's fork and
// barrier cost more than they save (and stall for a whole time slice when the cores are oversubscribed).
// Which elements a thread computes never changes a result, so this is free to vary.
static int nt_for(int nthreads, size_t work) { return work < ((size_t)1 << 15) ? 1 : nthreads; }

// Output rows (image, oy) per im2col chunk for a conv with K = kh·kw·IC and Wo output columns.
static int chunk_rows(size_t K, int Wo) { return lpips_chunk_rows(COLS_CHUNK, K, Wo); }

void R_(lpips_build)(R_(Lpips) *l, const LpipsWeights *w, int N, int H, int W, int nthreads) {
    memset(l, 0, sizeof *l);
    char err[256];
    if (lpips_check_size(w->net, H, W, err, sizeof err)) FATAL("lpips_build: %s", err);
    if (N < 1) FATAL("lpips_build: N = %d pairs (need at least 1)", N);
    if (!w->data) FATAL("lpips_build: the LPIPS weights are not loaded");
    l->net = w->net, l->n_conv = w->n_conv;
    l->N = N, l->H = H, l->W = W, l->B = 2 * N;
    l->nthreads = nthreads > 0 ? nthreads : omp_get_max_threads();
    memcpy(l->conv, w->conv, sizeof l->conv);
    for (int i = 0; i < l->n_conv; i++) l->conv[i].w = l->conv[i].b = NULL; // the copies below are used
    memcpy(l->tap_ch, w->tap_ch, sizeof l->tap_ch);
    // grids, buffer sizes
    LpipsPlan pl;
    lpips_plan(w, N, H, W, COLS_CHUNK, &pl);
    memcpy(l->ih, pl.ih, sizeof l->ih), memcpy(l->iw, pl.iw, sizeof l->iw);
    memcpy(l->ph, pl.ph, sizeof l->ph), memcpy(l->pw, pl.pw, sizeof l->pw);
    memcpy(l->oh, pl.oh, sizeof l->oh), memcpy(l->ow, pl.ow, sizeof l->ow);
    memcpy(l->tap_conv, pl.tap_conv, sizeof l->tap_conv);
    const size_t n_w = pl.n_w, max_elems = pl.max_elems, cols = pl.cols;
    // weights: PyTorch [OC, IC, kh, kw] -> [OC, kh, kw, IC], the (ky, kx, c) order of our im2col rows
    l->wbuf = (real *)mallocCheck(sizeof(real) * n_w);
    real *p = l->wbuf;
    for (int i = 0; i < l->n_conv; i++) {
        const LpipsConv *c = &w->conv[i];
        int IC = c->IC, kk = c->kh * c->kw;
        l->cw[i] = p, p += (size_t)c->OC * kk * IC;
        l->cb[i] = p, p += c->OC;
        for (int o = 0; o < c->OC; o++)
            for (int ic = 0; ic < IC; ic++)
                for (int q = 0; q < kk; q++)
                    l->cw[i][((size_t)o * kk + q) * IC + ic] = (real)c->w[((size_t)o * IC + ic) * kk + q];
        for (int o = 0; o < c->OC; o++) l->cb[i][o] = (real)c->b[o];
    }
    for (int k = 0; k < LPIPS_TAPS; k++) {
        l->lin[k] = p, p += l->tap_ch[k];
        for (int j = 0; j < l->tap_ch[k]; j++) l->lin[k][j] = (real)w->lin[k][j];
    }
    // activations
    size_t B = (size_t)l->B;
    l->in = (real *)mallocCheck(sizeof(real) * B * H * W * 3);
    for (int i = 0; i < l->n_conv; i++) {
        const LpipsConv *c = &l->conv[i];
        l->act[i] = (real *)mallocCheck(sizeof(real) * B * l->oh[i] * l->ow[i] * c->OC);
        if (c->pool_k) {
            size_t n = B * l->ih[i] * l->iw[i] * c->IC;
            l->pool[i] = (real *)mallocCheck(sizeof(real) * n);
            l->arg[i] = (uint8_t *)mallocCheck(n);
        }
    }
    size_t max_hw = 1;
    for (int k = 0; k < LPIPS_TAPS; k++) {
        int i = l->tap_conv[k];
        size_t hw = (size_t)l->oh[i] * l->ow[i];
        if (hw > max_hw) max_hw = hw;
        l->norm[k] = (real *)mallocCheck(sizeof(real) * B * hw);
        l->tap_d[k] = (double *)callocCheck((size_t)N, sizeof(double));
    }
    l->dist = (double *)mallocCheck(sizeof(double) * N * max_hw);
    l->rowsum = (double *)mallocCheck(sizeof(double) * N * max_hw); // ≥ N·h
    l->pair_d = (double *)callocCheck((size_t)N, sizeof(double));
    l->cols_cap = cols;
    l->cols = (real *)mallocCheck(sizeof(real) * cols);
    l->g0 = (real *)mallocCheck(sizeof(real) * N * max_elems);
    l->g1 = (real *)mallocCheck(sizeof(real) * N * max_elems);
}

void R_(lpips_free)(R_(Lpips) *l) {
    free(l->wbuf);
    free(l->in);
    for (int i = 0; i < l->n_conv; i++) free(l->act[i]), free(l->pool[i]), free(l->arg[i]);
    for (int k = 0; k < LPIPS_TAPS; k++) free(l->norm[k]), free(l->tap_d[k]);
    free(l->dist), free(l->rowsum), free(l->pair_d), free(l->cols), free(l->g0), free(l->g1);
    memset(l, 0, sizeof *l);
}

// ----------------------------------------------------------------------------------------------
// conv + ReLU (forward), conv backward-data

// cols[r, (ky, kx, c)] for output pixels of rows [r0, r1) (row = image·Ho + oy), zero outside the image.
static void im2col(real *cols, const real *in, int r0, int r1, int H, int W, int C, int Ho, int Wo, int k, int s, int p,
                   int nt) {
    size_t K = (size_t)k * k * C;
#pragma omp parallel for num_threads(nt)
    for (int r = r0; r < r1; r++) {
        int b = r / Ho, oy = r % Ho;
        for (int ox = 0; ox < Wo; ox++) {
            real *dst = cols + ((size_t)(r - r0) * Wo + ox) * K;
            for (int ky = 0; ky < k; ky++) {
                int iy = oy * s - p + ky;
                for (int kx = 0; kx < k; kx++, dst += C) {
                    int ix = ox * s - p + kx;
                    if (iy < 0 || iy >= H || ix < 0 || ix >= W) {
                        memset(dst, 0, sizeof(real) * C);
                    } else {
                        memcpy(dst, in + (((size_t)b * H + iy) * W + ix) * C, sizeof(real) * C);
                    }
                }
            }
        }
    }
}

// out[B, Ho, Wo, OC] = ReLU(conv(in[B, H, W, IC])) with weights cw[OC, kh, kw, IC], bias cb[OC]
static void conv_relu_forward(R_(Lpips) *l, int i, real *out, const real *in) {
    const LpipsConv *c = &l->conv[i];
    int H = l->ih[i], W = l->iw[i], Ho = l->oh[i], Wo = l->ow[i], C = c->IC, OC = c->OC, k = c->kh;
    size_t K = (size_t)k * k * C;
    // chunks never straddle the x and y halves, and both halves are chunked alike: an image gets the same
    // GEMM row positions whether it is x or y, so LPIPS(x, x) is exactly 0
    int Rh = l->N * Ho, cr = chunk_rows(K, Wo);
    for (int half = 0; half < 2; half++)
        for (int r0 = half * Rh; r0 < (half + 1) * Rh; r0 += cr) {
            int r1 = r0 + cr < (half + 1) * Rh ? r0 + cr : (half + 1) * Rh, M = (r1 - r0) * Wo;
            im2col(l->cols, in, r0, r1, H, W, C, Ho, Wo, k, c->stride, c->pad, nt_for(l->nthreads, (size_t)M * K));
            real *o = out + (size_t)r0 * Wo * OC;
            GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, M, OC, (int)K, 1, l->cols, (int)K, l->cw[i], (int)K, 0, o,
                 OC);
            const real *bias = l->cb[i];
#pragma omp parallel for num_threads(nt_for(l->nthreads, (size_t)M * OC))
            for (int m = 0; m < M; m++) {
                real *om = o + (size_t)m * OC;
                for (int q = 0; q < OC; q++) {
                    real v = om[q] + bias[q];
                    om[q] = v > 0 ? v : 0;
                }
            }
        }
}

// din[N, H, W, IC] = conv backward-data of dout[N, Ho, Wo, OC] (din is overwritten). Per chunk of
// output rows: dcols = dout · W, then every input row the chunk touches gathers its terms (ky, kx in
// order) from this chunk only; chunks run in order, so each element's sum has a fixed order.
static void conv_backward_data(R_(Lpips) *l, int i, real *din, const real *dout) {
    const LpipsConv *c = &l->conv[i];
    int N = l->N, H = l->ih[i], W = l->iw[i], Ho = l->oh[i], Wo = l->ow[i], C = c->IC, OC = c->OC, k = c->kh;
    int s = c->stride, p = c->pad;
    size_t K = (size_t)k * k * C;
    memset(din, 0, sizeof(real) * N * H * W * C);
    int R = N * Ho, cr = chunk_rows(K, Wo);
    for (int r0 = 0; r0 < R; r0 += cr) {
        int r1 = r0 + cr < R ? r0 + cr : R, M = (r1 - r0) * Wo;
        // dcols[M, K] = dout[M, OC] · w[OC, K]
        GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, (int)K, OC, 1, dout + (size_t)r0 * Wo * OC, OC, l->cw[i],
             (int)K, 0, l->cols, (int)K);
        // input rows touched: per image b in the chunk, rows of its output rows [oa, ob]
        int b0 = r0 / Ho, b1 = (r1 - 1) / Ho;
        int nrow = (b1 - b0 + 1) * H; // (b, iy) candidates; rows the chunk does not reach add nothing
#pragma omp parallel for num_threads(nt_for(l->nthreads, (size_t)M * K))
        for (int t = 0; t < nrow; t++) {
            int b = b0 + t / H, iy = t % H;
            int oa = b * Ho < r0 ? r0 - b * Ho : 0, ob = (b + 1) * Ho > r1 ? r1 - b * Ho - 1 : Ho - 1;
            if (iy < oa * s - p || iy > ob * s - p + k - 1) continue;
            real *drow = din + (((size_t)b * H + iy) * W) * C;
            for (int ky = 0; ky < k; ky++) {
                int ty = iy + p - ky; // = oy·s
                if (ty < 0 || ty % s) continue;
                int oy = ty / s;
                if (oy < oa || oy > ob) continue;
                const real *crow = l->cols + ((size_t)(b * Ho + oy - r0) * Wo) * K + (size_t)ky * k * C;
                for (int ix = 0; ix < W; ix++) {
                    real *d = drow + (size_t)ix * C;
                    for (int kx = 0; kx < k; kx++) {
                        int tx = ix + p - kx;
                        if (tx < 0 || tx % s) continue;
                        int ox = tx / s;
                        if (ox >= Wo) continue;
                        const real *src = crow + (size_t)ox * K + (size_t)kx * C;
#pragma omp simd
                        for (int q = 0; q < C; q++) d[q] += src[q];
                    }
                }
            }
        }
    }
}

// ----------------------------------------------------------------------------------------------
// max-pool (floor mode, no padding): the first maximum in scan order (ky, then kx) wins, like PyTorch

static void pool_forward(real *out, uint8_t *arg, const real *in, int B, int H, int W, int C, int Ho, int Wo, int k,
                         int s, int nt) {
#pragma omp parallel for num_threads(nt)
    for (int r = 0; r < B * Ho; r++) {
        int b = r / Ho, oy = r % Ho;
        for (int ox = 0; ox < Wo; ox++) {
            real *o = out + ((size_t)r * Wo + ox) * C;
            uint8_t *a = arg + ((size_t)r * Wo + ox) * C;
            for (int q = 0; q < C; q++) {
                real best = 0;
                int bi = -1;
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++) {
                        real v = in[(((size_t)b * H + oy * s + ky) * W + ox * s + kx) * C + q];
                        if (bi < 0 || v > best) best = v, bi = ky * k + kx;
                    }
                o[q] = best;
                a[q] = (uint8_t)bi;
            }
        }
    }
}

// din[N, H, W, C] = routing of dout[N, Ho, Wo, C] to each window's argmax (overwritten). A gather: each
// input pixel visits the (at most ⌈k/s⌉²) windows containing it in (oy, ox) order.
static void pool_backward(real *din, const real *dout, const uint8_t *arg, int N, int H, int W, int C, int Ho, int Wo,
                          int k, int s, int nt) {
#pragma omp parallel for num_threads(nt)
    for (int r = 0; r < N * H; r++) {
        int b = r / H, iy = r % H;
        int oy0 = iy - k + 1 > 0 ? (iy - k + 1 + s - 1) / s : 0, oy1 = iy / s < Ho - 1 ? iy / s : Ho - 1;
        for (int ix = 0; ix < W; ix++) {
            real *d = din + ((size_t)r * W + ix) * C;
            for (int q = 0; q < C; q++) d[q] = 0;
            int ox0 = ix - k + 1 > 0 ? (ix - k + 1 + s - 1) / s : 0, ox1 = ix / s < Wo - 1 ? ix / s : Wo - 1;
            for (int oy = oy0; oy <= oy1; oy++)
                for (int ox = ox0; ox <= ox1; ox++) {
                    size_t o = (((size_t)b * Ho + oy) * Wo + ox) * C;
                    uint8_t want = (uint8_t)((iy - oy * s) * k + ix - ox * s);
                    for (int q = 0; q < C; q++)
                        if (arg[o + q] == want) d[q] += dout[o + q];
                }
        }
    }
}

// ----------------------------------------------------------------------------------------------
// forward

double R_(lpips_forward)(R_(Lpips) *l, const real *x, const real *y, real *per) {
    int N = l->N, H = l->H, W = l->W;
    const double shift[3] = {LPIPS_SHIFT_R, LPIPS_SHIFT_G, LPIPS_SHIFT_B};
    const double scl[3] = {LPIPS_SCALE_R, LPIPS_SCALE_G, LPIPS_SCALE_B};
    const real sh[3] = {(real)shift[0], (real)shift[1], (real)shift[2]};
    const real sc[3] = {(real)scl[0], (real)scl[1], (real)scl[2]};
    size_t npx = (size_t)N * H * W;
    // [0,1] -> [-1,1] -> ScalingLayer, in the package's order: ((2x − 1) − shift) / scale
#pragma omp parallel for num_threads(nt_for(l->nthreads, 6 * npx))
    for (size_t i = 0; i < 2 * npx; i++) {
        const real *src = i < npx ? x + 3 * i : y + 3 * (i - npx);
        for (int c = 0; c < 3; c++) l->in[3 * i + c] = ((2 * src[c] - 1) - sh[c]) / sc[c];
    }
    // trunk on all 2N images
    for (int i = 0; i < l->n_conv; i++) {
        const LpipsConv *c = &l->conv[i];
        const real *src = i == 0 ? l->in : l->act[i - 1];
        if (c->pool_k) {
            size_t work = (size_t)l->B * l->ph[i] * l->pw[i] * c->IC;
            pool_forward(l->pool[i], l->arg[i], src, l->B, l->ph[i], l->pw[i], c->IC, l->ih[i], l->iw[i], c->pool_k,
                         c->pool_s, nt_for(l->nthreads, work));
            src = l->pool[i];
        }
        conv_relu_forward(l, i, l->act[i], src);
    }
    // head: unit-normalise along channels, weighted squared difference, spatial mean, sum over taps
    for (int n = 0; n < N; n++) l->pair_d[n] = 0;
    for (int k = 0; k < LPIPS_TAPS; k++) {
        int i = l->tap_conv[k], h = l->oh[i], w = l->ow[i], C = l->tap_ch[k];
        size_t hw = (size_t)h * w;
        const real *f = l->act[i], *lin = l->lin[k];
        real *nrm = l->norm[k];
        int nt = nt_for(l->nthreads, (size_t)l->B * hw * C);
#pragma omp parallel for num_threads(nt)
        for (size_t q = 0; q < (size_t)l->B * hw; q++) {
            const real *v = f + q * C;
            double s2 = 0;
            for (int c = 0; c < C; c++) s2 += (double)v[c] * v[c];
            nrm[q] = (real)sqrt(s2);
        }
#pragma omp parallel for num_threads(nt)
        for (size_t q = 0; q < (size_t)N * hw; q++) {
            const real *fx = f + q * C, *fy = f + (q + (size_t)N * hw) * C;
            real sx = nrm[q] + (real)LPIPS_EPS, sy = nrm[q + (size_t)N * hw] + (real)LPIPS_EPS;
            double d = 0;
            for (int c = 0; c < C; c++) {
                real e = fx[c] / sx - fy[c] / sy;
                d += (double)lin[c] * e * e;
            }
            l->dist[q] = d;
        }
        // spatial mean: row sums in parallel, then rows in order
#pragma omp parallel for num_threads(nt_for(l->nthreads, (size_t)N * hw))
        for (int r = 0; r < N * h; r++) {
            double s = 0;
            for (int xx = 0; xx < w; xx++) s += l->dist[(size_t)r * w + xx];
            l->rowsum[r] = s;
        }
        for (int n = 0; n < N; n++) {
            double s = 0;
            for (int yy = 0; yy < h; yy++) s += l->rowsum[n * h + yy];
            l->tap_d[k][n] = s / (double)hw;
            l->pair_d[n] += l->tap_d[k][n];
        }
    }
    double mean = 0;
    for (int n = 0; n < N; n++) {
        mean += l->pair_d[n];
        if (per) per[n] = (real)l->pair_d[n];
    }
    l->have_forward = 1;
    return mean / N;
}

// ----------------------------------------------------------------------------------------------
// backward

// g[N, h, w, C] += d(scale · mean over pairs)/d(tap k of the x images)
static void head_backward(R_(Lpips) *l, int k, real *g, double scale) {
    int N = l->N, i = l->tap_conv[k], C = l->tap_ch[k];
    size_t hw = (size_t)l->oh[i] * l->ow[i];
    const real *f = l->act[i], *nrm = l->norm[k], *lin = l->lin[k];
    // d = Σ_c w_c (f̂x − f̂y)², mean over hw positions and N pairs: ∂/∂f̂x_c = 2 w_c (f̂x − f̂y) / (hw·N)
    real kk = (real)(scale * 2.0 / ((double)hw * N));
#pragma omp parallel for num_threads(nt_for(l->nthreads, (size_t)N * hw * C))
    for (size_t q = 0; q < (size_t)N * hw; q++) {
        const real *fx = f + q * C, *fy = f + (q + (size_t)N * hw) * C;
        real n = nrm[q], sx = n + (real)LPIPS_EPS, sy = nrm[q + (size_t)N * hw] + (real)LPIPS_EPS;
        real *gq = g + q * C;
        // f̂ = f / s, s = |f| + eps:  ∂L/∂f = ĝ/s − f (f·ĝ) / (|f| s²). At |f| = 0 the second term is
        // 0·(0/0): f/s is then f/eps to first order, so the gradient is ĝ/s alone (PyTorch would give NaN).
        double dot = 0;
        for (int c = 0; c < C; c++) dot += (double)fx[c] * (kk * lin[c] * (fx[c] / sx - fy[c] / sy));
        real t = n > 0 ? (real)(dot / ((double)n * sx * sx)) : 0;
        for (int c = 0; c < C; c++) {
            real gh = kk * lin[c] * (fx[c] / sx - fy[c] / sy);
            gq[c] += gh / sx - fx[c] * t;
        }
    }
}

void R_(lpips_backward)(R_(Lpips) *l, real *dx, double scale) {
    if (!l->have_forward) FATAL("lpips_backward called before lpips_forward");
    int N = l->N;
    real *g = l->g0, *o = l->g1; // g: gradient w.r.t. the current conv's ReLU output; o: the other buffer
    int last = l->n_conv - 1;
    memset(g, 0, sizeof(real) * N * l->oh[last] * l->ow[last] * l->conv[last].OC);
    for (int i = last; i >= 0; i--) {
        const LpipsConv *c = &l->conv[i];
        size_t n = (size_t)N * l->oh[i] * l->ow[i] * c->OC;
        if (c->tap >= 0) head_backward(l, c->tap, g, scale);
        // ReLU: pass where the output is positive (the x half of act[i] is its first n elements)
        const real *a = l->act[i];
#pragma omp parallel for simd num_threads(nt_for(l->nthreads, n))
        for (size_t j = 0; j < n; j++) g[j] = a[j] > 0 ? g[j] : 0;
        conv_backward_data(l, i, o, g);
        real *t = g;
        g = o, o = t;
        if (c->pool_k) { // g holds d/d(pooled input); route to the pre-pool grid
            pool_backward(o, g, l->arg[i], N, l->ph[i], l->pw[i], c->IC, l->ih[i], l->iw[i], c->pool_k, c->pool_s,
                          nt_for(l->nthreads, (size_t)N * l->ph[i] * l->pw[i] * c->IC));
            t = g, g = o, o = t;
        }
    }
    // g: d/d(scaled input) [N, H, W, 3]; x' = (2x − 1 − shift) / scale  =>  ∂x'/∂x = 2 / scale
    const real f[3] = {(real)(2.0 / LPIPS_SCALE_R), (real)(2.0 / LPIPS_SCALE_G), (real)(2.0 / LPIPS_SCALE_B)};
    size_t npx = (size_t)N * l->H * l->W;
#pragma omp parallel for num_threads(nt_for(l->nthreads, 3 * npx))
    for (size_t q = 0; q < npx; q++)
        for (int c = 0; c < 3; c++) dx[3 * q + c] += g[3 * q + c] * f[c];
}
