// layers.c — the network's layers on the CPU: forward/backward pairs over `real` (real.h).
// Compiled twice (float, and double with -DAVAT3R_F64). OpenMP over independent rows or columns;
// every reduction runs in a fixed order, so results do not depend on the thread count.
#include <math.h>
#include <omp.h>
#include <string.h>

#include <cblas.h>

#include "layers.h"
#include "../common/wide.h" // WIDE (AVX2 copies of the exp- and row-bound loops), thread_span
#include "../common/real.h"
#include "plucker_math.h" // the per-pixel ray, shared with model/cuda/pixels_cuda.cu
#include "gauss_math.h"   // the Gaussian activations of one pixel, shared likewise

#ifdef AVAT3R_F64
#define GEMM cblas_dgemm
#else
#define GEMM cblas_sgemm
#endif

// glibc's libmvec has vector exp/expf, but math.h declares them only under -ffast-math. Declaring the
// SIMD variants here lets `#pragma omp simd` loops call them (4 floats per call on SSE) while the
// rest of the code keeps IEEE semantics. GELU and softmax were a quarter of a tiny step in scalar expf.
__attribute__((simd("notinbranch"))) float expf(float);
__attribute__((simd("notinbranch"))) double(exp)(double); // (exp): tgmath.h makes exp a macro
__attribute__((simd("notinbranch"))) float tanhf(float);   // (glibc 2.35+, as Debian 12)
__attribute__((simd("notinbranch"))) double(tanh)(double);

#define SMALL_N 8192 // elementwise work below this many elements stays on one thread

// ----------------------------------------------------------------------------------------------
// matmul (PyTorch Linear)

// Large GEMMs run inside one OpenMP region whose threads each take a slice of C's rows and call the
// single-threaded kernel (OpenBLAS runs one thread inside a parallel region): on 2 cores this is at least
// as fast as OpenBLAS's own split, and the region also takes the work around the product (the residual and
// bias fill, the other gradients of a backward) instead of one region each. For a given thread count the
// slices, and so the bits, are always the same (OpenBLAS may round a row differently in another slicing).
#define SPLIT_FLOPS 2000000.0
static int gemm_split(int M, int N, int K) {
    return omp_get_max_threads() > 1 && !omp_in_parallel() && 2.0 * M * N * K >= SPLIT_FLOPS && M >= 32;
}

// rows [lo, hi) of C = alpha·op(A)·op(B) + beta·C
static void R_(gemm_slice)(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, size_t lo, size_t hi, int N, int K, real alpha,
                           const real *A, int lda, const real *Bm, int ldb, real beta, real *C, int ldc) {
    if (hi <= lo) return;
    const real *a = ta == CblasNoTrans ? A + lo * (size_t)lda : A + lo;
    GEMM(CblasRowMajor, ta, tb, (int)(hi - lo), N, K, alpha, a, lda, Bm, ldb, beta, C + lo * (size_t)ldc, ldc);
}

// rows [lo, hi) of out = res + bias (either may be NULL, not both)
static void R_(fill_rows)(real *out, const real *res, const real *bias, size_t lo, size_t hi, int OC) {
    for (size_t n = lo; n < hi; n++) {
        real *o = out + n * OC;
        const real *r = res ? res + n * OC : NULL;
        if (r && bias)
            for (int k = 0; k < OC; k++) o[k] = r[k] + bias[k];
        else if (r)
            memcpy(o, r, sizeof(real) * OC);
        else
            memcpy(o, bias, sizeof(real) * OC);
    }
}

// Narrow matmuls, the per-pixel head's shape (16 channels -> 14 values, 16 384 rows): OpenBLAS runs these at
// a fifth of its speed (packing and edge kernels dominate), a row loop over a 16-wide weight table does not.
#define NARROW_OC 16
#define NARROW_C 64
static int narrow_shape(int N, int C, int OC) { return OC <= NARROW_OC && C <= NARROW_C && N >= 1024; }

// rows [n0, n1): out[n, ·] = res[n, ·] + bias + inp[n, ·] · wᵀ (res, bias may be NULL; res may be out), in one
// pass; wt = wᵀ padded to [C, 16]
WIDE static void R_(narrow_forward_rows)(real *out, const real *res, const real *bias, const real *inp, const real *wt,
                                         size_t n0, size_t n1, int C, int OC) {
    for (size_t n = n0; n < n1; n++) {
        const real *x = inp + n * C;
        real acc[NARROW_OC] = {0};
        for (int c = 0; c < C; c++) {
            real xc = x[c];
#pragma omp simd
            for (int o = 0; o < NARROW_OC; o++) acc[o] += xc * wt[c * NARROW_OC + o];
        }
        real *y = out + n * OC;
        const real *rr = res ? res + n * OC : NULL;
        for (int o = 0; o < OC; o++) y[o] = ((rr ? rr[o] : 0) + (bias ? bias[o] : 0)) + acc[o];
    }
}

// w [OC, C] copied into a zero-padded table: element (o, c) at o·so + c·sc
static void R_(narrow_table)(real *t, const real *w, int OC, int C, int so, int sc) {
    memset(t, 0, sizeof(real) * NARROW_OC * NARROW_C);
    for (int o = 0; o < OC; o++)
        for (int c = 0; c < C; c++) t[o * so + c * sc] = w[(size_t)o * C + c];
}

static void R_(narrow_forward)(real *out, const real *res, const real *bias, const real *inp, const real *w, int N,
                               int C, int OC) {
    real wt[NARROW_C * NARROW_OC];
    R_(narrow_table)(wt, w, OC, C, 1, NARROW_OC); // wᵀ, [C, 16]
#pragma omp parallel
    {
        size_t lo, hi;
        thread_span((size_t)N, &lo, &hi);
        R_(narrow_forward_rows)(out, res, bias, inp, wt, lo, hi, C, OC);
    }
}

// rows [n0, n1): dinp[n, ·] += dout[n, ·] · w, wp = w with its rows padded to CP (a multiple of 16) columns
WIDE static void R_(narrow_dinp_rows)(real *dinp, const real *dout, const real *wp, size_t n0, size_t n1, int C,
                                      int CP, int OC) {
    for (size_t n = n0; n < n1; n++) {
        const real *d = dout + n * OC;
        real *di = dinp + n * C;
        for (int c0 = 0; c0 < CP; c0 += 16) {
            real acc[16] = {0};
            for (int o = 0; o < OC; o++) {
                real dv = d[o];
#pragma omp simd
                for (int k = 0; k < 16; k++) acc[k] += dv * wp[o * CP + c0 + k];
            }
            int nc = C - c0 < 16 ? C - c0 : 16;
            for (int k = 0; k < nc; k++) di[c0 + k] += acc[k];
        }
    }
}

// outputs [o0, o1): dw[o, ·] += Σ_n dout[n, o] inp[n, ·], the rows summed in blocks of 256 and the blocks in
// order, so the sums do not depend on how the outputs are shared among threads
WIDE static void R_(narrow_dw_outputs)(real *dw, const real *dout, const real *inp, int N, int C, int OC, int o0,
                                       int o1) {
    real tot[NARROW_OC * NARROW_C] = {0}, blk[NARROW_OC * NARROW_C];
    int no = o1 - o0;
    for (int n0 = 0; n0 < N; n0 += 256) {
        int n1 = N - n0 < 256 ? N : n0 + 256;
        memset(blk, 0, sizeof(real) * no * C);
        for (int n = n0; n < n1; n++) {
            const real *x = inp + (size_t)n * C, *d = dout + (size_t)n * OC + o0;
            for (int o = 0; o < no; o++) {
                real dv = d[o];
#pragma omp simd
                for (int c = 0; c < C; c++) blk[o * C + c] += dv * x[c];
            }
        }
        for (int i = 0; i < no * C; i++) tot[i] += blk[i];
    }
    for (int i = 0; i < no * C; i++) dw[(size_t)o0 * C + i] += tot[i];
}

void R_(matmul_forward)(real *out, const real *inp, const real *w, const real *bias, int N, int C, int OC) {
    // out[N,OC] = inp[N,C] · w[OC,C]ᵀ (+ bias)
    R_(matmul_residual_forward)(out, NULL, inp, w, bias, N, C, OC);
}

void R_(matmul_residual_forward)(real *out, const real *res, const real *inp, const real *w, const real *bias, int N,
                                 int C, int OC) {
    // out[N,OC] = res[N,OC] + bias + inp[N,C] · w[OC,C]ᵀ: the rows are filled with res + bias first and the GEMM
    // adds into them (beta 1), one pass instead of GEMM's zeroing (beta 0) plus a bias and a residual pass
    if (narrow_shape(N, C, OC)) {
        R_(narrow_forward)(out, res, bias, inp, w, N, C, OC);
        return;
    }
    int fill = bias || (res && res != out); // (in place without a bias the rows already hold res)
    real beta = res || bias ? 1 : 0;
    if (gemm_split(N, OC, C)) {
#pragma omp parallel
        {
            size_t lo, hi;
            thread_span((size_t)N, &lo, &hi);
            if (fill) R_(fill_rows)(out, res, bias, lo, hi, OC);
            R_(gemm_slice)(CblasNoTrans, CblasTrans, lo, hi, OC, C, 1, inp, C, w, C, beta, out, OC);
        }
        return;
    }
    if (fill) {
#pragma omp parallel if ((size_t)N * OC >= SMALL_N)
        {
            size_t lo, hi;
            thread_span((size_t)N, &lo, &hi);
            R_(fill_rows)(out, res, bias, lo, hi, OC);
        }
    }
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1, inp, C, w, C, beta, out, OC);
}

void R_(matmul_forward_naive)(real *out, const real *inp, const real *w, const real *bias, int N, int C, int OC) {
#pragma omp parallel for
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double acc = bias ? bias[o] : 0;
            for (int c = 0; c < C; c++) acc += (double)inp[(size_t)n * C + c] * w[(size_t)o * C + c];
            out[(size_t)n * OC + o] = (real)acc;
        }
}

// dbias[o0, o0+64) += Σ_n dout[n, ·]: rows in order inside the block (contiguous reads, deterministic sums)
WIDE static void R_(bias_grad_block)(real *dbias, const real *dout, int N, int OC, int o0) {
    int oc = OC - o0 < 64 ? OC - o0 : 64;
    real acc[64] = {0};
    for (int n = 0; n < N; n++) {
        const real *d = dout + (size_t)n * OC + o0;
#pragma omp simd
        for (int o = 0; o < oc; o++) acc[o] += d[o];
    }
    for (int o = 0; o < oc; o++) dbias[o0 + o] += acc[o];
}

void R_(matmul_backward)(real *dinp, real *dw, real *dbias, const real *dout, const real *inp, const real *w, int N,
                         int C, int OC) {
    int narrow = narrow_shape(N, C, OC);
    if (narrow || ((!dinp || gemm_split(N, C, OC)) && (!dw || gemm_split(OC, C, N)))) {
        // one region: each thread its rows of dinp, its share of dw and its blocks of dbias
        int CP = (C + 15) & ~15;
        real wp[NARROW_OC * NARROW_C];
        if (narrow) R_(narrow_table)(wp, w, OC, C, CP, 1); // w, rows padded to CP
#pragma omp parallel
        {
            size_t lo, hi;
            thread_span((size_t)N, &lo, &hi);
            if (dinp && narrow) R_(narrow_dinp_rows)(dinp, dout, wp, lo, hi, C, CP, OC);
            else if (dinp) R_(gemm_slice)(CblasNoTrans, CblasNoTrans, lo, hi, C, OC, 1, dout, OC, w, C, 1, dinp, C);
            int nt = omp_get_num_threads(), t = omp_get_thread_num();
            if (dw && narrow) R_(narrow_dw_outputs)(dw, dout, inp, N, C, OC, OC * t / nt, OC * (t + 1) / nt);
            thread_span((size_t)OC, &lo, &hi);
            if (dw && !narrow) R_(gemm_slice)(CblasTrans, CblasNoTrans, lo, hi, C, N, 1, dout, OC, inp, C, 1, dw, C);
            if (dbias) {
#pragma omp for schedule(static) nowait
                for (int o0 = 0; o0 < OC; o0 += 64) R_(bias_grad_block)(dbias, dout, N, OC, o0);
            }
        }
        return;
    }
    // dinp[N,C] += dout[N,OC] · w[OC,C] ; dw[OC,C] += doutᵀ · inp (OpenBLAS's own threads)
    if (dinp) GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1, dout, OC, w, C, 1, dinp, C);
    if (dw) GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1, dout, OC, inp, C, 1, dw, C);
    if (dbias) {
#pragma omp parallel for if ((size_t)N * OC >= SMALL_N)
        for (int o0 = 0; o0 < OC; o0 += 64) R_(bias_grad_block)(dbias, dout, N, OC, o0);
    }
}

// ----------------------------------------------------------------------------------------------
// LayerNorm

// one row of LayerNorm: two passes (mean, then the biased variance, as torch)
WIDE static void R_(layernorm_rows)(real *out, real *mean, real *rstd, const real *inp, const real *w, const real *b,
                                    int n0, int n1, int C, double eps) {
    for (int n = n0; n < n1; n++) {
        const real *x = inp + (size_t)n * C;
        real m = 0;
#pragma omp simd reduction(+ : m)
        for (int c = 0; c < C; c++) m += x[c];
        m /= C;
        real v = 0;
#pragma omp simd reduction(+ : v)
        for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
        v /= C;
        real s = 1 / sqrt(v + (real)eps);
        real *o = out + (size_t)n * C;
#pragma omp simd
        for (int c = 0; c < C; c++) o[c] = (x[c] - m) * s * w[c] + b[c];
        mean[n] = m;
        rstd[n] = s;
    }
}

void R_(layernorm_forward)(real *out, real *mean, real *rstd, const real *inp, const real *w, const real *b, int N,
                           int C, double eps) {
#pragma omp parallel if ((size_t)N * C >= SMALL_N)
    {
        size_t lo, hi;
        thread_span((size_t)N, &lo, &hi);
        R_(layernorm_rows)(out, mean, rstd, inp, w, b, (int)lo, (int)hi, C, eps);
    }
}

// dx = s · (g − mean(g) − x̂·mean(g·x̂)), with g = dy·w, for rows [n0, n1)
WIDE static void R_(layernorm_dx_rows)(real *dinp, const real *dout, const real *inp, const real *w, const real *mean,
                                       const real *rstd, int n0, int n1, int C) {
    for (int n = n0; n < n1; n++) {
        const real *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
        real m = mean[n], s = rstd[n];
        real gm = 0, gxm = 0;
#pragma omp simd reduction(+ : gm, gxm)
        for (int c = 0; c < C; c++) {
            real g = dy[c] * w[c];
            gm += g;
            gxm += g * (x[c] - m) * s;
        }
        gm /= C;
        gxm /= C;
        real *dx = dinp + (size_t)n * C;
#pragma omp simd
        for (int c = 0; c < C; c++) {
            real xh = (x[c] - m) * s;
            dx[c] += s * (dy[c] * w[c] - gm - xh * gxm);
        }
    }
}

// dw[c] += Σ_n dy·x̂, db[c] += Σ_n dy for columns [c0, c1), rows in order (deterministic), columns in vectors
WIDE static void R_(layernorm_dwb_cols)(real *dw, real *db, const real *dout, const real *inp, const real *mean,
                                        const real *rstd, int N, int C, int c0, int c1) {
    enum { CB = 64 };
    for (int cb = c0; cb < c1; cb += CB) {
        int nc = c1 - cb < CB ? c1 - cb : CB;
        real aw[CB] = {0}, ab[CB] = {0};
        for (int n = 0; n < N; n++) {
            const real *dy = dout + (size_t)n * C + cb, *x = inp + (size_t)n * C + cb;
            real m = mean[n], s = rstd[n];
#pragma omp simd
            for (int k = 0; k < nc; k++) {
                aw[k] += dy[k] * ((x[k] - m) * s);
                ab[k] += dy[k];
            }
        }
        for (int k = 0; k < nc; k++) {
            if (dw) dw[cb + k] += aw[k];
            if (db) db[cb + k] += ab[k];
        }
    }
}

void R_(layernorm_backward)(real *dinp, real *dw, real *db, const real *dout, const real *inp, const real *w,
                            const real *mean, const real *rstd, int N, int C) {
#pragma omp parallel if ((size_t)N * C >= SMALL_N)
    {
        size_t lo, hi;
        if (dinp) {
            thread_span((size_t)N, &lo, &hi);
            R_(layernorm_dx_rows)(dinp, dout, inp, w, mean, rstd, (int)lo, (int)hi, C);
        }
        if (dw || db) {
            // columns in blocks of 64 per thread (no barrier needed: the two parts write different arrays)
            int nt = omp_get_num_threads(), t = omp_get_thread_num(), nb = (C + 63) / 64;
            int b0 = (int)((long)nb * t / nt), b1 = (int)((long)nb * (t + 1) / nt);
            int c0 = b0 * 64, c1 = b1 * 64 < C ? b1 * 64 : C;
            if (c0 < c1) R_(layernorm_dwb_cols)(dw, db, dout, inp, mean, rstd, N, C, c0, c1);
        }
    }
}

// ----------------------------------------------------------------------------------------------
// elementwise

#define GELU_K 0.7978845608028654 // sqrt(2/pi)

// GELU_tanh(x) = 0.5·x·(1 + tanh(u)) = x·σ(2u), u = √(2/π)(x + 0.044715x³): one exp instead of a tanh
// (glibc's tanhf was a quarter of the step), and the loop vectorises with libmvec's exp.
static inline __attribute__((always_inline)) real R_(gelu_of)(real x) {
    real u = (real)GELU_K * (x + (real)0.044715 * x * x * x);
    return x / (1 + exp(-2 * u));
}
// d/dx x·σ(2u) = s + 2·x·s·(1−s)·u', s = σ(2u)
static inline __attribute__((always_inline)) real R_(gelu_slope)(real x) {
    real u = (real)GELU_K * (x + (real)0.044715 * x * x * x);
    real s = 1 / (1 + exp(-2 * u));
    real du = (real)GELU_K * (1 + (real)(3 * 0.044715) * x * x);
    return s + 2 * x * s * (1 - s) * du;
}

WIDE static void R_(gelu_span)(real *out, const real *inp, size_t lo, size_t hi) {
#pragma omp simd
    for (size_t i = lo; i < hi; i++) out[i] = R_(gelu_of)(inp[i]);
}

void R_(gelu_forward)(real *out, const real *inp, size_t n) {
#pragma omp parallel if (n >= SMALL_N)
    {
        size_t lo, hi;
        thread_span(n, &lo, &hi);
        R_(gelu_span)(out, inp, lo, hi);
    }
}

WIDE static void R_(gelu_backward_span)(real *dinp, const real *inp, const real *dout, size_t lo, size_t hi) {
#pragma omp simd
    for (size_t i = lo; i < hi; i++) dinp[i] += R_(gelu_slope)(inp[i]) * dout[i];
}

void R_(gelu_backward)(real *dinp, const real *inp, const real *dout, size_t n) {
#pragma omp parallel if (n >= SMALL_N)
    {
        size_t lo, hi;
        thread_span(n, &lo, &hi);
        R_(gelu_backward_span)(dinp, inp, dout, lo, hi);
    }
}

void R_(relu_forward)(real *out, const real *inp, size_t n) {
#pragma omp parallel for if (n >= SMALL_N)
    for (size_t i = 0; i < n; i++) out[i] = inp[i] > 0 ? inp[i] : 0;
}

void R_(relu_backward)(real *dinp, const real *inp, const real *dout, size_t n) {
#pragma omp parallel for if (n >= SMALL_N)
    for (size_t i = 0; i < n; i++)
        if (inp[i] > 0) dinp[i] += dout[i];
}

void R_(add_inplace)(real *dst, const real *src, size_t n) {
#pragma omp parallel for if (n >= SMALL_N)
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
}

// ----------------------------------------------------------------------------------------------
// attention, chunked over queries (flash-attention's recomputation on the CPU)

// rows [0, qc) of S [qc, Nk]: softmax in place, lse[i] = log Σ_j exp(S_ij)
WIDE static void R_(softmax_rows)(real *S, real *lse, int qc, int Nk) {
    for (int i = 0; i < qc; i++) {
        real *s = S + (size_t)i * Nk;
        real mx = s[0];
#pragma omp simd reduction(max : mx)
        for (int j = 1; j < Nk; j++) mx = s[j] > mx ? s[j] : mx;
        real sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < Nk; j++) {
            s[j] = exp(s[j] - mx);
            sum += s[j];
        }
        real inv = 1 / sum;
#pragma omp simd
        for (int j = 0; j < Nk; j++) s[j] *= inv;
        lse[i] = mx + log(sum);
    }
}

// rows [0, qc): dP (= dO Vᵀ on entry) becomes dS = P·(dP − Δ), Δ_i = Σ_j P_ij dP_ij = dO_i · O_i. With S (the
// scores) given, P = exp(S − lse) is recomputed into S first; without, P holds the forward's probabilities.
WIDE static void R_(softmax_backward_rows)(real *S, const real *P, real *dP, const real *lse, const real *dout,
                                           const real *out, int ldo, int qc, int Nk, int hd) {
    for (int i = 0; i < qc; i++) {
        const real *p = P + (size_t)i * Nk;
        real *dp = dP + (size_t)i * Nk;
        real delta = 0;
        for (int c = 0; c < hd; c++) delta += dout[(size_t)i * ldo + c] * out[(size_t)i * ldo + c];
        if (S) {
            real *s = S + (size_t)i * Nk, l = lse[i];
#pragma omp simd
            for (int j = 0; j < Nk; j++) s[j] = exp(s[j] - l);
        }
#pragma omp simd
        for (int j = 0; j < Nk; j++) dp[j] = p[j] * (dp[j] - delta);
    }
}

size_t R_(attention_scratch_size)(int Nk, int chunk, int nthreads) {
    return (size_t)nthreads * 2 * (size_t)chunk * (size_t)Nk;
}

void R_(attention_forward)(real *out, int ldo, real *lse, real *P, const real *q, int ldq, const real *k, int ldk,
                           const real *v, int ldv, int B, int Nq, int Nk, int NH, int hd, real *scratch, int chunk,
                           int nthreads) {
    real scale = 1 / sqrt((real)hd);
    // one task per (sample, head): tasks write disjoint columns, so no races
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH;
        real *S = scratch + (size_t)omp_get_thread_num() * 2 * chunk * Nk; // [chunk, Nk]
        const real *qb = q + (size_t)b * Nq * ldq + h * hd;
        const real *kb = k + (size_t)b * Nk * ldk + h * hd;
        const real *vb = v + (size_t)b * Nk * ldv + h * hd;
        real *ob = out + (size_t)b * Nq * ldo + h * hd;
        real *lb = lse + (size_t)bh * Nq;
        for (int i0 = 0; i0 < Nq; i0 += chunk) {
            int qc = Nq - i0 < chunk ? Nq - i0 : chunk;
            if (P) S = P + ((size_t)bh * Nq + i0) * Nk; // the probabilities stay for the backward
            // S = scale · Q_c Kᵀ
            GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, qc, Nk, hd, scale, qb + (size_t)i0 * ldq, ldq, kb, ldk, 0, S,
                 Nk);
            R_(softmax_rows)(S, lb + i0, qc, Nk);
            // O_c = P V
            GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, qc, hd, Nk, 1, S, Nk, vb, ldv, 0, ob + (size_t)i0 * ldo,
                 ldo);
        }
    }
}

void R_(attention_backward)(real *dq, real *dk, real *dv, const real *dout, const real *out, int ldo,
                            const real *lse, const real *P, const real *q, int ldq, const real *k, int ldk,
                            const real *v, int ldv, int B, int Nq, int Nk, int NH, int hd, real *scratch, int chunk,
                            int nthreads) {
    real scale = 1 / sqrt((real)hd);
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH;
        real *Pc = scratch + (size_t)omp_get_thread_num() * 2 * chunk * Nk; // [chunk, Nk]
        real *dP = Pc + (size_t)chunk * Nk;                                   // [chunk, Nk]
        size_t qoff = (size_t)b * Nq * ldq + h * hd, koff = (size_t)b * Nk * ldk + h * hd;
        size_t voff = (size_t)b * Nk * ldv + h * hd, ooff = (size_t)b * Nq * ldo + h * hd;
        const real *lb = lse + (size_t)bh * Nq;
        for (int i0 = 0; i0 < Nq; i0 += chunk) {
            int qc = Nq - i0 < chunk ? Nq - i0 : chunk;
            const real *qc_ = q + qoff + (size_t)i0 * ldq;
            const real *doc = dout + ooff + (size_t)i0 * ldo;
            const real *oc = out + ooff + (size_t)i0 * ldo;
            // dP = dO Vᵀ
            GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, qc, Nk, hd, 1, doc, ldo, v + voff, ldv, 0, dP, Nk);
            const real *Pu = Pc;
            if (P) { // the forward's probabilities
                Pu = P + ((size_t)bh * Nq + i0) * Nk;
                R_(softmax_backward_rows)(NULL, Pu, dP, lb + i0, doc, oc, ldo, qc, Nk, hd);
            } else { // recompute P = exp(scale · Q Kᵀ − lse)
                GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, qc, Nk, hd, scale, qc_, ldq, k + koff, ldk, 0, Pc, Nk);
                R_(softmax_backward_rows)(Pc, Pc, dP, lb + i0, doc, oc, ldo, qc, Nk, hd);
            }
            // dQ += scale · dS K ; dK += scale · dSᵀ Q ; dV += Pᵀ dO
            GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, qc, hd, Nk, scale, dP, Nk, k + koff, ldk, 1,
                 dq + qoff + (size_t)i0 * ldq, ldq);
            GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, Nk, hd, qc, scale, dP, Nk, qc_, ldq, 1, dk + koff, ldk);
            GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, Nk, hd, qc, 1, Pu, Nk, doc, ldo, 1, dv + voff, ldv);
        }
    }
}

// ----------------------------------------------------------------------------------------------
// inputs: rays, patches, feature resampling

void R_(plucker_forward)(real *out, real *cam_o, const real *w2c, const real *K, int BV, int H, int W) {
#pragma omp parallel for
    for (int i = 0; i < BV; i++) {
        PluckerCam cam;
        R_(plucker_cam)(&cam, w2c + (size_t)i * 12, K + (size_t)i * 9);
        for (int c = 0; c < 3; c++) cam_o[(size_t)i * 3 + c] = (real)cam.o[c];
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) R_(plucker_ray)(out + (((size_t)i * H + y) * W + x) * 6, &cam, x, y);
    }
}

void R_(unfold_forward)(real *out, const real *img, int BV, int H, int W, int Cin, int p) {
    int Hp = H / p, Wp = W / p, row = p * p * Cin;
#pragma omp parallel for
    for (int i = 0; i < BV * Hp; i++) {
        int bv = i / Hp, ty = i % Hp;
        for (int tx = 0; tx < Wp; tx++) {
            real *o = out + ((size_t)i * Wp + tx) * row;
            for (int dy = 0; dy < p; dy++) {
                const real *src = img + (((size_t)bv * H + ty * p + dy) * W + tx * p) * Cin;
                memcpy(o + (size_t)dy * p * Cin, src, sizeof(real) * p * Cin); // (dx, c) contiguous
            }
        }
    }
}

// torch's source index for align_corners=False: max(scale·(dst+0.5) − 0.5, 0)
static void R_(bilinear_coord)(int dst, int nin, int nout, int *i0, int *i1, real *l) {
    double s = (double)nin / nout * (dst + 0.5) - 0.5;
    if (s < 0) s = 0;
    int a = (int)s;
    if (a > nin - 1) a = nin - 1;
    *i0 = a;
    *i1 = a < nin - 1 ? a + 1 : a;
    *l = (real)(s - a);
}

void R_(resample_bilinear_forward)(real *out, const real *in, int BV, int hi, int wi, int ho, int wo, int C) {
#pragma omp parallel for
    for (int i = 0; i < BV * ho; i++) {
        int bv = i / ho, y = i % ho, y0, y1;
        real ly;
        R_(bilinear_coord)(y, hi, ho, &y0, &y1, &ly);
        for (int x = 0; x < wo; x++) {
            int x0, x1;
            real lx;
            R_(bilinear_coord)(x, wi, wo, &x0, &x1, &lx);
            const real *base = in + (size_t)bv * hi * wi * C;
            const real *p00 = base + ((size_t)y0 * wi + x0) * C, *p01 = base + ((size_t)y0 * wi + x1) * C;
            const real *p10 = base + ((size_t)y1 * wi + x0) * C, *p11 = base + ((size_t)y1 * wi + x1) * C;
            real *o = out + ((size_t)i * wo + x) * C;
            for (int c = 0; c < C; c++)
                o[c] = (1 - ly) * ((1 - lx) * p00[c] + lx * p01[c]) + ly * ((1 - lx) * p10[c] + lx * p11[c]);
        }
    }
}

void R_(pixel_shuffle_forward)(real *out, const real *in, int BV, int h, int w, int C) {
#pragma omp parallel for
    for (int r = 0; r < BV * h; r++) {
        int bv = r / h, y = r % h;
        for (int x = 0; x < w; x++) {
            const real *src = in + ((size_t)r * w + x) * 4 * C;
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 2; j++) {
                    real *dst = out + (((size_t)bv * 2 * h + 2 * y + i) * 2 * w + 2 * x + j) * C;
                    for (int c = 0; c < C; c++) dst[c] = src[4 * c + 2 * i + j];
                }
        }
    }
}

void R_(pixel_shuffle_backward)(real *din, const real *dout, int BV, int h, int w, int C) {
#pragma omp parallel for
    for (int r = 0; r < BV * h; r++) {
        int bv = r / h, y = r % h;
        for (int x = 0; x < w; x++) {
            real *d = din + ((size_t)r * w + x) * 4 * C;
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 2; j++) {
                    const real *g = dout + (((size_t)bv * 2 * h + 2 * y + i) * 2 * w + 2 * x + j) * C;
                    for (int c = 0; c < C; c++) d[4 * c + 2 * i + j] += g[c];
                }
        }
    }
}

// The upsampler's PixelShuffle(2) + GELU as one pass each way. Input rows r = (bv, y) of [BV, h, w, 4C] map to
// output rows 2y and 2y+1 of [BV, 2h, 2w, C]: the shuffle gathers them, the GELU runs over them while they are
// in cache (the same arithmetic as gelu_forward, element by element).
WIDE static void R_(shuffle_gelu_rows)(real *act, real *pre, const real *in, int lo, int hi, int h, int w, int C) {
    size_t orow = (size_t)2 * w * C; // one output row
    for (int r = lo; r < hi; r++) {
        int bv = r / h, y = r % h;
        real *pr = pre + ((size_t)bv * 2 * h + 2 * y) * orow, *ar = act + ((size_t)bv * 2 * h + 2 * y) * orow;
        for (int x = 0; x < w; x++) {
            const real *src = in + ((size_t)r * w + x) * 4 * C;
            real *d0 = pr + (size_t)2 * x * C, *d1 = d0 + C, *d2 = d0 + orow, *d3 = d2 + C; // (i, j) = 00 01 10 11
            for (int c = 0; c < C; c++) {
                d0[c] = src[4 * c], d1[c] = src[4 * c + 1];
                d2[c] = src[4 * c + 2], d3[c] = src[4 * c + 3];
            }
        }
#pragma omp simd
        for (size_t k = 0; k < 2 * orow; k++) ar[k] = R_(gelu_of)(pr[k]);
    }
}

void R_(shuffle_gelu_forward)(real *act, real *pre, const real *in, int BV, int h, int w, int C) {
#pragma omp parallel if ((size_t)BV * h * w * 4 * C >= SMALL_N)
    {
        size_t lo, hi;
        thread_span((size_t)BV * h, &lo, &hi);
        R_(shuffle_gelu_rows)(act, pre, in, (int)lo, (int)hi, h, w, C);
    }
}

// din = shuffleᵀ(gelu'(pre) · dact), written: the shuffle is a permutation, so every element of din gets
// exactly one term and no cleared buffer is needed. Same arithmetic per element as gelu_backward.
WIDE static void R_(shuffle_gelu_backward_rows)(real *din, const real *pre, const real *dact, int lo, int hi, int h,
                                                int w, int C) {
    size_t orow = (size_t)2 * w * C;
    real g[4][64]; // g[2i+j][c]: the four output pixels of one input pixel, 64 channels at a time
    for (int r = lo; r < hi; r++) {
        int bv = r / h, y = r % h;
        size_t o0 = ((size_t)bv * 2 * h + 2 * y) * orow;
        for (int x = 0; x < w; x++) {
            real *d = din + ((size_t)r * w + x) * 4 * C;
            for (int c0 = 0; c0 < C; c0 += 64) {
                int cn = C - c0 < 64 ? C - c0 : 64;
                for (int k = 0; k < 4; k++) {
                    size_t o = o0 + (k >> 1) * orow + (size_t)(2 * x + (k & 1)) * C + c0;
#pragma omp simd
                    for (int c = 0; c < cn; c++) g[k][c] = R_(gelu_slope)(pre[o + c]) * dact[o + c];
                }
                for (int c = 0; c < cn; c++)
                    for (int k = 0; k < 4; k++) d[4 * (c0 + c) + k] = g[k][c];
            }
        }
    }
}

void R_(shuffle_gelu_backward)(real *din, const real *pre, const real *dact, int BV, int h, int w, int C) {
#pragma omp parallel if ((size_t)BV * h * w * 4 * C >= SMALL_N)
    {
        size_t lo, hi;
        thread_span((size_t)BV * h, &lo, &hi);
        R_(shuffle_gelu_backward_rows)(din, pre, dact, (int)lo, (int)hi, h, w, C);
    }
}

// ----------------------------------------------------------------------------------------------
// Gaussian activations: one pixel's math in gauss_math.h, shared with model/cuda/pixels_cuda.cu

// gauss_math.h's per-pixel functions with the transcendentals (gauss_fns) of a tile of pixels computed first in
// `omp simd` loops: libmvec's tanh and exp, 8 floats per call in the AVX2 copy, where one scalar call per value
// was ~4 % of a tiny step. The GPU runs gaussian_act / gaussian_act_backward per pixel.
#define GT 64 // pixels per tile

// gauss_fns for the tile's m pixels (raw values r [m, 14]), into columns: f[c][i], e[c][i], s[i]
WIDE static void R_(gauss_tile_fns)(real f[3][GT], real e[3][GT], real s[GT], const real *r, int m, int has_pos,
                                    const R_(GaussAct) *ga) {
    if (has_pos) {
        for (int c = 0; c < 3; c++) {
#pragma omp simd
            for (int i = 0; i < m; i++) f[c][i] = tanh(r[i * 14 + c]);
        }
    } else {
#pragma omp simd
        for (int i = 0; i < m; i++) f[0][i] = R_(sigmoid)(r[i * 14]);
    }
    for (int c = 0; c < 3; c++) {
#pragma omp simd
        for (int i = 0; i < m; i++) e[c][i] = R_(gauss_scale)(r[i * 14 + 6 + c], ga);
    }
#pragma omp simd
    for (int i = 0; i < m; i++) s[i] = R_(sigmoid)(r[i * 14 + 13]);
}

// pixels [n0, n1): the activations into out (dgauss NULL), or their backward added into out (dgauss given)
static void R_(gaussians_tiles)(real *out, const real *dgauss, const real *raw, const real *rgb, const real *pos,
                                const real *conf, const real *rays, const real *cam_o, const R_(GaussAct) *ga,
                                size_t n0, size_t n1, size_t HW) {
    real f[3][GT] = {{0}}, e[3][GT], s[GT]; // (f[1], f[2] stay unused without DUSt3R)
    for (size_t t0 = n0; t0 < n1; t0 += GT) {
        int m = n1 - t0 < GT ? (int)(n1 - t0) : GT;
        R_(gauss_tile_fns)(f, e, s, raw + t0 * 14, m, pos != NULL, ga);
        for (int i = 0; i < m; i++) {
            size_t n = t0 + i;
            real fi[3] = {f[0][i], f[1][i], f[2][i]}, ei[3] = {e[0][i], e[1][i], e[2][i]};
            const real *r = raw + n * 14, *d = pos ? NULL : rays + n * 6 + 3;
            real cf = conf ? conf[n] : 1;
            if (dgauss)
                R_(gaussian_act_backward_from)(out + n * 14, dgauss + n * 14, r, pos != NULL, cf, d, ga, fi, ei, s[i]);
            else
                R_(gaussian_act_from)(out + n * 14, r, rgb + n * 3, pos ? pos + n * 3 : NULL, cf,
                                      pos ? NULL : cam_o + (n / HW) * 3, d, ga, fi, ei, s[i]);
        }
    }
}

void R_(gaussians_forward)(real *gauss, const real *raw, const real *rgb, const real *pos, const real *conf,
                           const real *rays, const real *cam_o, const R_(GaussAct) *ga, int BV, int HW) {
#pragma omp parallel
    {
        size_t lo, hi;
        thread_span((size_t)BV * HW, &lo, &hi);
        R_(gaussians_tiles)(gauss, NULL, raw, rgb, pos, conf, rays, cam_o, ga, lo, hi, (size_t)HW);
    }
}

void R_(gaussians_backward)(real *draw, const real *dgauss, const real *raw, const real *pos, const real *conf,
                            const real *rays, const R_(GaussAct) *ga, int BV, int HW) {
#pragma omp parallel
    {
        size_t lo, hi;
        thread_span((size_t)BV * HW, &lo, &hi);
        R_(gaussians_tiles)(draw, dgauss, raw, NULL, pos, conf, rays, NULL, ga, lo, hi, (size_t)HW);
    }
}
