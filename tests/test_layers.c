// test_layers.c — every layer's backward against central finite differences in double, forward
// oracles (naive matmul, naive attention, direct indexing), and float-vs-double agreement.
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rng.h"
#include "layers.h"
#include "test.h"

#define FD_H 1e-5
#define FD_TOL 1e-6 // double-precision central differences: error ~h² + eps/h ≈ 1e-10 relative

// Every buffer of these helpers is kept in `kept` until the test's process ends (one forked child per
// test), so LeakSanitizer sees them as reachable, not lost.
static void *volatile kept[4096]; // volatile: the stores must not be optimised away
static int n_kept;
static void *keep(void *p) {
    if (n_kept < (int)(sizeof kept / sizeof kept[0])) kept[n_kept++] = p;
    return p;
}

static double *rnd(size_t n, uint64_t stream, double sd) {
    double *x = (double *)keep(malloc(sizeof(double) * (n ? n : 1)));
    Rng r = rng_make(1234, stream);
    for (size_t i = 0; i < n; i++) x[i] = sd * rng_normal_at(&r, i);
    return x;
}
static double *zeros(size_t n) { return (double *)keep(calloc(n ? n : 1, sizeof(double))); }
static float *to32(const double *x, size_t n) {
    float *y = (float *)keep(malloc(sizeof(float) * (n ? n : 1)));
    for (size_t i = 0; i < n; i++) y[i] = (float)x[i];
    return y;
}
static double dot(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}
// max |a-b| / max(|b|) over a tensor (a float result against its double twin)
static double rel_err32(const float *a, const double *b, size_t n) {
    double m = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        m = fmax(m, fabs(a[i] - b[i]));
        s = fmax(s, fabs(b[i]));
    }
    return m / (s + 1e-30);
}

// A layer under test: forward() recomputes the output from the current inputs; loss = Σ w·out.
typedef struct {
    void (*forward)(void *ctx);
    void *ctx;
    const double *out, *w;
    size_t nout;
} Probe;

// Compares grad (analytic) with central differences on x (all elements, or 48 spread ones).
static double fd_worst(const char *name, Probe *p, double *x, size_t n, const double *grad) {
    // Central differences carry an absolute error (h² terms, rounding of the loss / h): a gradient
    // far below the tensor's largest one is compared against 1e-3 of that largest gradient instead of
    // itself, so noise on saturated elements is not reported as relative error.
    double worst = 0, gmax = 0;
    for (size_t i = 0; i < n; i++) gmax = fmax(gmax, fabs(grad[i]));
    size_t step = n > 48 ? n / 48 : 1;
    for (size_t i = 0; i < n; i += step) {
        double keep = x[i];
        x[i] = keep + FD_H;
        p->forward(p->ctx);
        double lp = dot(p->out, p->w, p->nout);
        x[i] = keep - FD_H;
        p->forward(p->ctx);
        double lm = dot(p->out, p->w, p->nout);
        x[i] = keep;
        double fd = (lp - lm) / (2 * FD_H);
        double e = fabs(fd - grad[i]) / fmax(fabs(fd) + fabs(grad[i]), 1e-3 * gmax + 1e-12);
        worst = fmax(worst, e);
    }
    p->forward(p->ctx);
    printf("    %-22s worst rel err %.2e over %zu elements\n", name, worst, (n + step - 1) / step);
    return worst;
}

// ---- matmul ----
typedef struct { double *out, *inp, *w, *b; int N, C, OC; } MM;
static void mm_fwd(void *c) { MM *m = c; matmul_forward_f64(m->out, m->inp, m->w, m->b, m->N, m->C, m->OC); }

static int test_matmul(void) {
    MM m = {0, 0, 0, 0, 37, 19, 23};
    size_t ni = (size_t)m.N * m.C, nw = (size_t)m.OC * m.C, no = (size_t)m.N * m.OC;
    m.inp = rnd(ni, 1, 1), m.w = rnd(nw, 2, 1), m.b = rnd(m.OC, 3, 1), m.out = zeros(no);
    double *w = rnd(no, 4, 1), *di = zeros(ni), *dw = zeros(nw), *db = zeros(m.OC), *ref = zeros(no);
    mm_fwd(&m);
    matmul_forward_naive_f64(ref, m.inp, m.w, m.b, m.N, m.C, m.OC);
    double e = 0;
    for (size_t i = 0; i < no; i++) e = fmax(e, fabs(ref[i] - m.out[i]));
    CHECK(e < 1e-12, "blas vs naive matmul differ by %g", e);
    matmul_backward_f64(di, dw, db, w, m.inp, m.w, m.N, m.C, m.OC);
    Probe p = {mm_fwd, &m, m.out, w, no};
    CHECK(fd_worst("matmul dinp", &p, m.inp, ni, di) < FD_TOL, "dinp");
    CHECK(fd_worst("matmul dw", &p, m.w, nw, dw) < FD_TOL, "dw");
    CHECK(fd_worst("matmul dbias", &p, m.b, m.OC, db) < FD_TOL, "dbias");
    // accumulation: a second backward doubles the gradients (the += contract)
    double g0 = dw[5];
    matmul_backward_f64(NULL, dw, NULL, w, m.inp, m.w, m.N, m.C, m.OC);
    CHECK(fabs(dw[5] - 2 * g0) < 1e-12 * (1 + fabs(g0)), "backward must accumulate");
    // float path against double, and against its naive oracle
    float *i32 = to32(m.inp, ni), *w32 = to32(m.w, nw), *b32 = to32(m.b, m.OC), *o32 = (float *)keep(malloc(4 * no));
    float *n32 = (float *)keep(malloc(4 * no));
    matmul_forward(o32, i32, w32, b32, m.N, m.C, m.OC);
    matmul_forward_naive(n32, i32, w32, b32, m.N, m.C, m.OC);
    mm_fwd(&m);
    CHECK(rel_err32(o32, m.out, no) < 1e-5, "float matmul vs double: %g", rel_err32(o32, m.out, no));
    CHECK(rel_err32(n32, m.out, no) < 1e-5, "float naive vs double");
    // the residual form: out = res + inp·wᵀ (+ bias), into a separate buffer and in place (out == res)
    double *res = rnd(no, 5, 1), *o2 = zeros(no), *o3 = zeros(no);
    for (int with_bias = 0; with_bias < 2; with_bias++) {
        const double *b = with_bias ? m.b : NULL;
        matmul_forward_naive_f64(ref, m.inp, m.w, b, m.N, m.C, m.OC);
        matmul_residual_forward_f64(o2, res, m.inp, m.w, b, m.N, m.C, m.OC);
        memcpy(o3, res, sizeof(double) * no);
        matmul_residual_forward_f64(o3, o3, m.inp, m.w, b, m.N, m.C, m.OC);
        double er = 0, ei = 0;
        for (size_t i = 0; i < no; i++) {
            er = fmax(er, fabs(res[i] + ref[i] - o2[i]));
            ei = fmax(ei, fabs(o3[i] - o2[i]));
        }
        CHECK(er < 1e-12, "residual matmul (bias %d) vs res + naive: %g", with_bias, er);
        CHECK(ei == 0, "in-place residual matmul (bias %d) differs by %g", with_bias, ei);
    }
    float *r32 = to32(res, no), *q32 = (float *)keep(malloc(4 * no));
    matmul_residual_forward(q32, r32, i32, w32, b32, m.N, m.C, m.OC);
    matmul_forward_naive_f64(ref, m.inp, m.w, m.b, m.N, m.C, m.OC);
    for (size_t i = 0; i < no; i++) ref[i] += res[i];
    CHECK(rel_err32(q32, ref, no) < 1e-5, "float residual matmul vs double: %g", rel_err32(q32, ref, no));
    return 0;
}

// The matmul's three routes on the shapes that take them: the narrow row loop (the per-pixel head: few outputs,
// many rows; C not a multiple of 16 too), OpenBLAS on row slices (large products), and plain OpenBLAS; float
// forward (plain and residual) and backward (accumulating onto non-zero gradients) against double sums, and
// bit-identical results on 1 and 2 threads.
static int test_matmul_paths(void) {
    // N, C, OC, and whether the shape takes the narrow route
    const int shapes[][4] = {{2048, 16, 14, 1}, {1100, 40, 9, 1}, {300, 96, 200, 0}, {37, 19, 23, 0}};
    for (int si = 0; si < 4; si++) {
        int N = shapes[si][0], C = shapes[si][1], OC = shapes[si][2];
        size_t ni = (size_t)N * C, nw = (size_t)OC * C, no = (size_t)N * OC;
        double *x = rnd(ni, 40, 1), *w = rnd(nw, 41, 1), *b = rnd(OC, 42, 1), *res = rnd(no, 43, 1);
        double *dout = rnd(no, 44, 1), *g0i = rnd(ni, 45, 1), *g0w = rnd(nw, 46, 1), *g0b = rnd(OC, 47, 1);
        float *x32 = to32(x, ni), *w32 = to32(w, nw), *b32 = to32(b, OC), *r32 = to32(res, no), *d32 = to32(dout, no);
        // double oracles: out = res + b + x·wᵀ, dinp = g0 + dout·w, dw = g0 + doutᵀ·x, db = g0 + Σ_n dout
        double *ref = zeros(no), *rdi = zeros(ni), *rdw = zeros(nw), *rdb = zeros(OC);
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++) {
                double acc = 0;
                for (int c = 0; c < C; c++) acc += x[(size_t)n * C + c] * w[(size_t)o * C + c];
                ref[(size_t)n * OC + o] = acc;
            }
        for (size_t i = 0; i < ni; i++) rdi[i] = g0i[i];
        for (size_t i = 0; i < nw; i++) rdw[i] = g0w[i];
        for (int o = 0; o < OC; o++) rdb[o] = g0b[o];
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++) {
                double d = dout[(size_t)n * OC + o];
                for (int c = 0; c < C; c++) {
                    rdi[(size_t)n * C + c] += d * w[(size_t)o * C + c];
                    rdw[(size_t)o * C + c] += d * x[(size_t)n * C + c];
                }
                rdb[o] += d;
            }
        double *full = zeros(no);
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++) full[(size_t)n * OC + o] = res[(size_t)n * OC + o] + b[o] + ref[(size_t)n * OC + o];
        float *out[3], *outr[3], *di[3], *dw[3], *db[3];
        for (int t = 0; t < 3; t++) { // 1 thread, 2 threads, 2 threads again
            omp_set_num_threads(t ? 2 : 1);
            out[t] = (float *)keep(malloc(4 * no)), outr[t] = (float *)keep(malloc(4 * no));
            di[t] = to32(g0i, ni), dw[t] = to32(g0w, nw), db[t] = to32(g0b, OC);
            matmul_forward(out[t], x32, w32, NULL, N, C, OC);
            matmul_residual_forward(outr[t], r32, x32, w32, b32, N, C, OC);
            matmul_backward(di[t], dw[t], db[t], d32, x32, w32, N, C, OC);
        }
        omp_set_num_threads(2);
        printf("    %5d x %3d -> %3d: out %.1e, residual %.1e, dinp %.1e, dw %.1e, db %.1e\n", N, C, OC,
               rel_err32(out[1], ref, no), rel_err32(outr[1], full, no), rel_err32(di[1], rdi, ni),
               rel_err32(dw[1], rdw, nw), rel_err32(db[1], rdb, OC));
        CHECK(rel_err32(out[1], ref, no) < 1e-5 && rel_err32(outr[1], full, no) < 1e-5, "forward (%d,%d,%d)", N, C, OC);
        CHECK(rel_err32(di[1], rdi, ni) < 1e-5 && rel_err32(dw[1], rdw, nw) < 1e-5 && rel_err32(db[1], rdb, OC) < 1e-5,
              "backward (%d,%d,%d)", N, C, OC);
        // same bits on a second run; the narrow route (our loop) also on another thread count (OpenBLAS's
        // kernels may block a product differently on 1 and 2 threads)
        int narrow = shapes[si][3];
        for (int t = 2 - narrow; t < 3; t++) {
            int u = t == 2 ? 1 : 0; // t 1: 2 threads vs 1 thread; t 2: 2 threads twice
            float *o2 = t == 2 ? out[2] : out[1], *q2 = t == 2 ? outr[2] : outr[1];
            float *i2 = t == 2 ? di[2] : di[1], *w2 = t == 2 ? dw[2] : dw[1], *b2 = t == 2 ? db[2] : db[1];
            CHECK(!memcmp(out[u], o2, 4 * no) && !memcmp(outr[u], q2, 4 * no) && !memcmp(di[u], i2, 4 * ni) &&
                      !memcmp(dw[u], w2, 4 * nw) && !memcmp(db[u], b2, 4 * OC),
                  "(%d,%d,%d) %s", N, C, OC, t == 2 ? "differs between two runs" : "depends on the thread count");
        }
    }
    return 0;
}

// ---- layernorm ----
typedef struct { double *out, *mean, *rstd, *inp, *w, *b; int N, C; } LN;
static void ln_fwd(void *c) { LN *l = c; layernorm_forward_f64(l->out, l->mean, l->rstd, l->inp, l->w, l->b, l->N, l->C, 1e-5); }

static int test_layernorm(void) {
    LN l = {0};
    l.N = 13, l.C = 24;
    size_t n = (size_t)l.N * l.C;
    l.inp = rnd(n, 5, 2), l.w = rnd(l.C, 6, 1), l.b = rnd(l.C, 7, 1), l.out = zeros(n), l.mean = zeros(l.N),
    l.rstd = zeros(l.N);
    double *w = rnd(n, 8, 1), *di = zeros(n), *dw = zeros(l.C), *db = zeros(l.C);
    ln_fwd(&l);
    // forward oracle: each row of (out - b)/w has mean 0 and variance ~1
    double m = 0, v = 0;
    for (int c = 0; c < l.C; c++) m += (l.out[c] - l.b[c]) / l.w[c];
    for (int c = 0; c < l.C; c++) v += pow((l.out[c] - l.b[c]) / l.w[c] - m / l.C, 2);
    CHECK(fabs(m / l.C) < 1e-12 && fabs(v / l.C - 1) < 1e-3, "normalised row: mean %g var %g", m / l.C, v / l.C);
    layernorm_backward_f64(di, dw, db, w, l.inp, l.w, l.mean, l.rstd, l.N, l.C);
    Probe p = {ln_fwd, &l, l.out, w, n};
    CHECK(fd_worst("layernorm dinp", &p, l.inp, n, di) < FD_TOL, "dinp");
    CHECK(fd_worst("layernorm dw", &p, l.w, l.C, dw) < FD_TOL, "dw");
    CHECK(fd_worst("layernorm db", &p, l.b, l.C, db) < FD_TOL, "db");
    float *i32 = to32(l.inp, n), *w32 = to32(l.w, l.C), *b32 = to32(l.b, l.C), *o32 = (float *)keep(malloc(4 * n));
    float mu[13], rs[13];
    layernorm_forward(o32, mu, rs, i32, w32, b32, l.N, l.C, 1e-5);
    CHECK(rel_err32(o32, l.out, n) < 1e-5, "float vs double layernorm");
    return 0;
}

// ---- elementwise ----
typedef struct { double *out, *inp; size_t n; int relu; } EW;
static void ew_fwd(void *c) {
    EW *e = c;
    if (e->relu) relu_forward_f64(e->out, e->inp, e->n);
    else gelu_forward_f64(e->out, e->inp, e->n);
}

static int test_elementwise(void) {
    for (int relu = 0; relu < 2; relu++) {
        EW e = {0, 0, 200, relu};
        e.inp = rnd(e.n, 9, 2), e.out = zeros(e.n);
        for (size_t i = 0; i < e.n; i++)
            if (fabs(e.inp[i]) < 1e-3) e.inp[i] = 0.5; // keep ReLU's kink out of the differences
        double *w = rnd(e.n, 10, 1), *d = zeros(e.n);
        ew_fwd(&e);
        if (relu) relu_backward_f64(d, e.inp, w, e.n);
        else gelu_backward_f64(d, e.inp, w, e.n);
        Probe p = {ew_fwd, &e, e.out, w, e.n};
        CHECK(fd_worst(relu ? "relu" : "gelu", &p, e.inp, e.n, d) < FD_TOL, "elementwise");
        if (!relu) { // GELU(1) with the tanh approximation (torch approximate='tanh'): 0.8411919906
            double x = 1, y;
            gelu_forward_f64(&y, &x, 1);
            CHECK(fabs(y - 0.8411919906082768) < 1e-12, "gelu(1) = %.12f", y);
        }
    }
    return 0;
}

// ---- attention ----
typedef struct {
    double *out, *lse, *P, *q, *k, *v, *scratch;
    int B, Nq, Nk, NH, hd, ldq, ldk, ldv, chunk;
} AT;
static void at_fwd(void *c) {
    AT *a = c;
    attention_forward_f64(a->out, a->NH * a->hd, a->lse, a->P, a->q, a->ldq, a->k, a->ldk, a->v, a->ldv, a->B, a->Nq, a->Nk,
                          a->NH, a->hd, a->scratch, a->chunk, 4);
}

// q/k/v interleaved in one buffer like the model's qkv (self) or separate (cross); keep: the forward leaves
// the probabilities in a buffer and the backward reads them
static int attention_case(int B, int Nq, int Nk, int NH, int hd, int chunk, int fused, int keep_p) {
    AT a = {0};
    int D = NH * hd;
    printf("    %s attention, %s probabilities\n", fused ? "self" : "cross", keep_p ? "kept" : "recomputed");
    a.B = B, a.Nq = Nq, a.Nk = Nk, a.NH = NH, a.hd = hd, a.chunk = chunk;
    double *qkv = NULL, *dqkv = NULL, *dq, *dk, *dv;
    size_t nq, nk;
    if (fused) { // self-attention: [B, N, 3D]
        qkv = rnd((size_t)B * Nq * 3 * D, 11, 1);
        dqkv = zeros((size_t)B * Nq * 3 * D);
        a.q = qkv, a.k = qkv + D, a.v = qkv + 2 * D, a.ldq = a.ldk = a.ldv = 3 * D;
        dq = dqkv, dk = dqkv + D, dv = dqkv + 2 * D;
        nq = nk = (size_t)B * Nq * 3 * D;
    } else { // cross-attention: q [B,Nq,D], kv [B,Nk,2D]
        a.q = rnd((size_t)B * Nq * D, 12, 1);
        double *kv = rnd((size_t)B * Nk * 2 * D, 13, 1);
        a.k = kv, a.v = kv + D, a.ldq = D, a.ldk = a.ldv = 2 * D;
        dq = zeros((size_t)B * Nq * D);
        double *dkv = zeros((size_t)B * Nk * 2 * D);
        dk = dkv, dv = dkv + D;
        nq = (size_t)B * Nq * D, nk = (size_t)B * Nk * 2 * D;
    }
    size_t no = (size_t)B * Nq * D;
    a.out = zeros(no), a.lse = zeros((size_t)B * NH * Nq);
    a.scratch = zeros(attention_scratch_size_f64(Nk, chunk, 4));
    a.P = keep_p ? zeros((size_t)B * NH * Nq * Nk) : NULL;
    double *w = rnd(no, 14, 1);
    at_fwd(&a);
    // forward oracle: naive softmax attention
    double worst = 0;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int i = 0; i < Nq; i++) {
                double s[512], mx = -1e300, sum = 0;
                for (int j = 0; j < Nk; j++) {
                    double d = 0;
                    for (int c = 0; c < hd; c++)
                        d += a.q[((size_t)b * Nq + i) * a.ldq + h * hd + c] * a.k[((size_t)b * Nk + j) * a.ldk + h * hd + c];
                    s[j] = d / sqrt((double)hd);
                    mx = fmax(mx, s[j]);
                }
                for (int j = 0; j < Nk; j++) sum += (s[j] = exp(s[j] - mx));
                for (int c = 0; c < hd; c++) {
                    double o = 0;
                    for (int j = 0; j < Nk; j++) o += s[j] / sum * a.v[((size_t)b * Nk + j) * a.ldv + h * hd + c];
                    worst = fmax(worst, fabs(o - a.out[((size_t)b * Nq + i) * D + h * hd + c]));
                }
            }
    CHECK(worst < 1e-12, "attention vs naive: %g", worst);
    attention_backward_f64(dq, dk, dv, w, a.out, D, a.lse, a.P, a.q, a.ldq, a.k, a.ldk, a.v, a.ldv, B, Nq, Nk, NH, hd,
                           a.scratch, chunk, 4);
    Probe p = {at_fwd, &a, a.out, w, no};
    if (fused) {
        CHECK(fd_worst("self-attention dqkv", &p, qkv, nq, dqkv) < FD_TOL, "dqkv");
    } else {
        CHECK(fd_worst("cross-attention dq", &p, (double *)a.q, nq, dq) < FD_TOL, "dq");
        CHECK(fd_worst("cross-attention dkv", &p, (double *)a.k, nk, dk) < FD_TOL, "dkv");
    }
    // the float path agrees with the double one
    float *q32 = to32(fused ? qkv : a.q, fused ? nq : (size_t)B * Nq * D), *kv32 = fused ? NULL : to32(a.k, nk);
    float *o32 = (float *)keep(malloc(4 * no)), *l32 = (float *)keep(malloc(4 * (size_t)B * NH * Nq));
    float *s32 = (float *)keep(malloc(4 * attention_scratch_size(Nk, chunk, 4)));
    float *p32 = keep_p ? (float *)keep(malloc(4 * (size_t)B * NH * Nq * Nk)) : NULL;
    if (fused)
        attention_forward(o32, D, l32, p32, q32, 3 * D, q32 + D, 3 * D, q32 + 2 * D, 3 * D, B, Nq, Nk, NH, hd, s32,
                          chunk, 4);
    else attention_forward(o32, D, l32, p32, q32, D, kv32, 2 * D, kv32 + D, 2 * D, B, Nq, Nk, NH, hd, s32, chunk, 4);
    CHECK(rel_err32(o32, a.out, no) < 1e-5, "float vs double attention: %g", rel_err32(o32, a.out, no));
    return 0;
}

static int test_attention(void) {
    // chunk smaller than Nq and not dividing it, so the chunk edges are exercised
    for (int keep_p = 0; keep_p < 2; keep_p++) {
        if (attention_case(2, 23, 23, 3, 4, 8, 1, keep_p)) return 1;
        if (attention_case(2, 19, 4, 2, 5, 7, 0, keep_p)) return 1;
    }
    return 0;
}

// ---- pixel shuffle ----
typedef struct { double *out, *inp; int BV, h, w, C; } PS;
static void ps_fwd(void *c) { PS *p = c; pixel_shuffle_forward_f64(p->out, p->inp, p->BV, p->h, p->w, p->C); }

static int test_pixel_shuffle(void) {
    PS s = {0, 0, 2, 3, 4, 5};
    size_t n = (size_t)s.BV * s.h * s.w * 4 * s.C;
    s.inp = rnd(n, 15, 1), s.out = zeros(n);
    ps_fwd(&s);
    // torch.nn.PixelShuffle: out[c, 2y+i, 2x+j] = in[4c + 2i + j, y, x] (channel-last here)
    int bv = 1, y = 2, x = 3, c = 4, i = 1, j = 0;
    double want = s.inp[(((size_t)bv * s.h + y) * s.w + x) * 4 * s.C + 4 * c + 2 * i + j];
    double got = s.out[(((size_t)bv * 2 * s.h + 2 * y + i) * 2 * s.w + 2 * x + j) * s.C + c];
    CHECK(want == got, "pixel shuffle index mapping");
    double *w = rnd(n, 16, 1), *d = zeros(n);
    pixel_shuffle_backward_f64(d, w, s.BV, s.h, s.w, s.C);
    Probe p = {ps_fwd, &s, s.out, w, n};
    CHECK(fd_worst("pixel shuffle", &p, s.inp, n, d) < FD_TOL, "shuffle");
    return 0;
}

// ---- the upsampler's fused PixelShuffle(2) + GELU ----
typedef struct { double *act, *pre, *inp; int BV, h, w, C; } SG;
static void sg_fwd(void *c) { SG *p = c; shuffle_gelu_forward_f64(p->act, p->pre, p->inp, p->BV, p->h, p->w, p->C); }

static int test_shuffle_gelu(void) {
    // C = 70 > 64 exercises the backward's channel blocks; h·w odd so the two threads' row spans differ
    int shapes[2][4] = {{2, 3, 5, 6}, {1, 3, 3, 70}};
    for (int t = 0; t < 2; t++) {
        SG s = {0, 0, 0, shapes[t][0], shapes[t][1], shapes[t][2], shapes[t][3]};
        size_t n = (size_t)s.BV * s.h * s.w * 4 * s.C;
        s.inp = rnd(n, 40 + t, 1.5), s.act = zeros(n), s.pre = zeros(n);
        sg_fwd(&s);
        // the same values as the two layers it replaces, bit for bit
        double *pre2 = zeros(n), *act2 = zeros(n);
        pixel_shuffle_forward_f64(pre2, s.inp, s.BV, s.h, s.w, s.C);
        gelu_forward_f64(act2, pre2, n);
        CHECK(!memcmp(pre2, s.pre, 8 * n) && !memcmp(act2, s.act, 8 * n), "forward = pixel_shuffle then gelu");
        // the backward writes: start from garbage, which must not survive
        double *w = rnd(n, 50 + t, 1), *d = rnd(n, 60 + t, 100), *dpre = zeros(n), *d2 = zeros(n);
        shuffle_gelu_backward_f64(d, s.pre, w, s.BV, s.h, s.w, s.C);
        gelu_backward_f64(dpre, s.pre, w, n);
        pixel_shuffle_backward_f64(d2, dpre, s.BV, s.h, s.w, s.C);
        CHECK(!memcmp(d, d2, 8 * n), "backward = gelu_backward then pixel_shuffle_backward (%d)", t);
        Probe p = {sg_fwd, &s, s.act, w, n};
        CHECK(fd_worst("shuffle+gelu", &p, s.inp, n, d) < FD_TOL, "shuffle+gelu");
        // float against double
        float *i32 = to32(s.inp, n), *w32 = to32(w, n), *a32 = (float *)keep(malloc(4 * n));
        float *p32 = (float *)keep(malloc(4 * n)), *d32 = (float *)keep(malloc(4 * n));
        shuffle_gelu_forward(a32, p32, i32, s.BV, s.h, s.w, s.C);
        shuffle_gelu_backward(d32, p32, w32, s.BV, s.h, s.w, s.C);
        CHECK(rel_err32(a32, s.act, n) < 1e-6 && rel_err32(d32, d, n) < 1e-5, "float vs double shuffle+gelu");
    }
    return 0;
}

// ---- unfold, resample, Plücker: forward-only (their inputs are data, not trained) ----
static int test_inputs(void) {
    int BV = 2, H = 8, W = 12, C = 3, p = 4;
    size_t n = (size_t)BV * H * W * C;
    double *img = rnd(n, 17, 1), *u = zeros(n);
    unfold_forward_f64(u, img, BV, H, W, C, p);
    // token (bv=1, ty=1, tx=2), element (dy=3, dx=1, c=2)
    size_t tok = ((size_t)1 * (H / p) + 1) * (W / p) + 2;
    CHECK(u[tok * p * p * C + (3 * p + 1) * C + 2] == img[(((size_t)1 * H + 1 * p + 3) * W + 2 * p + 1) * C + 2],
          "unfold ordering (py, px, c)");
    // bilinear: constant stays constant; a linear ramp is reproduced in the interior
    int hi = 4, wi = 4, ho = 8, wo = 8;
    double in[16], out[64];
    for (int y = 0; y < hi; y++)
        for (int x = 0; x < wi; x++) in[y * wi + x] = x;
    resample_bilinear_forward_f64(out, in, 1, hi, wi, ho, wo, 1);
    // output x=3 samples source 0.5·(3+0.5)−0.5 = 1.25; x=0 clamps to 0
    CHECK(fabs(out[3] - 1.25) < 1e-12 && out[0] == 0 && fabs(out[7] - 3) < 1e-12, "bilinear %g %g %g", out[0], out[3],
          out[7]);
    // Plücker: a camera at c looking down +z; the centre pixel's ray is the optical axis
    double w2c[12] = {1, 0, 0, -0.1, 0, 1, 0, 0.2, 0, 0, 1, 1.0}, K[9] = {50, 0, 8, 0, 50, 6, 0, 0, 1};
    double pl[16 * 12 * 6], co[3];
    plucker_forward_f64(pl, co, w2c, K, 1, 12, 16);
    CHECK(fabs(co[0] - 0.1) < 1e-12 && fabs(co[1] + 0.2) < 1e-12 && fabs(co[2] + 1) < 1e-12, "camera centre");
    // pixel (7,5) has centre (7.5, 5.5): direction ∝ (−0.5/50, −0.5/50, 1)
    const double *r = pl + ((size_t)5 * 16 + 7) * 6;
    double dn = sqrt(0.01 * 0.01 * 2 + 1);
    CHECK(fabs(r[3] + 0.01 / dn) < 1e-12 && fabs(r[5] - 1 / dn) < 1e-12, "ray direction");
    double m0 = co[1] * r[5] - co[2] * r[4];
    CHECK(fabs(r[0] - m0) < 1e-12, "moment = o x d");
    CHECK(fabs(r[0] * r[3] + r[1] * r[4] + r[2] * r[5]) < 1e-12, "moment orthogonal to direction");
    return 0;
}

// ---- Gaussian activations ----
typedef struct { double *gauss, *raw, *rgb, *pos, *conf, *rays, *cam_o; GaussAct_f64 ga; int BV, HW; } GS;
static void gs_fwd(void *c) {
    GS *g = c;
    gaussians_forward_f64(g->gauss, g->raw, g->rgb, g->pos, g->conf, g->rays, g->cam_o, &g->ga, g->BV, g->HW);
}

static int test_gaussians(void) {
    for (int use_d = 0; use_d < 2; use_d++) {
        GS g = {0};
        g.BV = 2, g.HW = 100; // 200 pixels: whole tiles of the vectorised loop and a remainder
        size_t n = (size_t)g.BV * g.HW;
        g.ga = (GaussAct_f64){0.05, 0.5, 1.5, -5, log(1e-4), log(0.05)};
        g.raw = rnd(n * 14, 18, 1.5), g.rgb = rnd(n * 3, 19, 1), g.gauss = zeros(n * 14);
        g.pos = use_d ? rnd(n * 3, 20, 0.1) : NULL;
        g.conf = use_d ? rnd(n, 21, 0.3) : NULL;
        g.rays = rnd(n * 6, 22, 1), g.cam_o = rnd(g.BV * 3, 23, 1);
        // keep raw scales away from the clamp edges (ln 1e-4 + 5 = -4.21, ln 0.05 + 5 = 2.0)
        // except two entries that sit clamped, where the gradient must be exactly zero
        for (size_t i = 0; i < n; i++)
            for (int c = 6; c < 9; c++) {
                double *x = &g.raw[i * 14 + c];
                if (fabs(*x + 4.21) < 0.05 || fabs(*x - 2.0) < 0.05) *x += 0.2;
            }
        g.raw[6] = 5.0;  // clamped at scale_max
        g.raw[14 + 7] = -9; // clamped at scale_min
        gs_fwd(&g);
        CHECK(fabs(g.gauss[6] - 0.05) < 1e-15, "scale clamp");
        for (size_t i = 0; i < n; i++) {
            double q2 = 0;
            for (int c = 9; c < 13; c++) q2 += g.gauss[i * 14 + c] * g.gauss[i * 14 + c];
            CHECK(fabs(q2 - 1) < 1e-12, "unit quaternion");
        }
        // every value against its formula written out (docs/model.md step 11)
        double worst = 0;
        for (size_t i = 0; i < n; i++) {
            const double *r = g.raw + i * 14, *G = g.gauss + i * 14;
            double e[14];
            if (use_d) {
                for (int c = 0; c < 3; c++) e[c] = g.pos[i * 3 + c] + g.ga.pos_offset_max * tanh(r[c]);
            } else {
                double depth = g.ga.depth_near + (g.ga.depth_far - g.ga.depth_near) / (1 + exp(-r[0]));
                for (int c = 0; c < 3; c++) e[c] = g.cam_o[(i / g.HW) * 3 + c] + g.rays[i * 6 + 3 + c] * depth;
            }
            for (int c = 0; c < 3; c++) e[3 + c] = g.rgb[i * 3 + c] + r[3 + c];
            for (int c = 0; c < 3; c++) e[6 + c] = exp(fmin(fmax(r[6 + c] + g.ga.scale_bias, g.ga.log_scale_min),
                                                             g.ga.log_scale_max));
            double q0 = r[9] + 1, nq = sqrt(q0 * q0 + r[10] * r[10] + r[11] * r[11] + r[12] * r[12]);
            e[9] = q0 / nq, e[10] = r[10] / nq, e[11] = r[11] / nq, e[12] = r[12] / nq;
            e[13] = (use_d ? g.conf[i] : 1) / (1 + exp(-r[13]));
            for (int c = 0; c < 14; c++) worst = fmax(worst, fabs(G[c] - e[c]) / (1e-3 + fabs(e[c])));
        }
        CHECK(worst < 1e-12, "activations differ from their formulas by %g", worst); // double rounding: ~1e-14
        double *w = rnd(n * 14, 24, 1), *d = zeros(n * 14);
        gaussians_backward_f64(d, w, g.raw, g.pos, g.conf, g.rays, &g.ga, g.BV, g.HW);
        // float (the AVX2 copy's vector tanh and exp) against double
        float *g32 = (float *)keep(malloc(4 * n * 14)), *d32 = to32(zeros(n * 14), n * 14);
        GaussAct ga32 = {g.ga.pos_offset_max, g.ga.depth_near, g.ga.depth_far, g.ga.scale_bias, g.ga.log_scale_min,
                         g.ga.log_scale_max};
        float *raw32 = to32(g.raw, n * 14), *pos32 = use_d ? to32(g.pos, n * 3) : NULL;
        float *conf32 = use_d ? to32(g.conf, n) : NULL, *rays32 = to32(g.rays, n * 6);
        gaussians_forward(g32, raw32, to32(g.rgb, n * 3), pos32, conf32, rays32, to32(g.cam_o, g.BV * 3), &ga32, g.BV,
                          g.HW);
        gaussians_backward(d32, to32(w, n * 14), raw32, pos32, conf32, rays32, &ga32, g.BV, g.HW);
        CHECK(rel_err32(g32, g.gauss, n * 14) < 1e-6, "float activations vs double: %g", rel_err32(g32, g.gauss, n * 14));
        CHECK(rel_err32(d32, d, n * 14) < 1e-5, "float backward vs double: %g", rel_err32(d32, d, n * 14));
        CHECK(d[6] == 0 && d[14 + 7] == 0, "no gradient through an active clamp");
        if (!use_d) CHECK(d[1] == 0 && d[2] == 0, "unused offsets get no gradient without DUSt3R");
        Probe p = {gs_fwd, &g, g.gauss, w, n * 14};
        CHECK(fd_worst(use_d ? "gaussians (DUSt3R)" : "gaussians (depth)", &p, g.raw, n * 14, d) < FD_TOL, "raw");
    }
    return 0;
}

const TestCase layer_tests[] = {
    {"layers/matmul", test_matmul},
    {"layers/matmul_paths", test_matmul_paths},
    {"layers/layernorm", test_layernorm},
    {"layers/gelu_relu", test_elementwise},
    {"layers/attention", test_attention},
    {"layers/pixel_shuffle", test_pixel_shuffle},
    {"layers/shuffle_gelu", test_shuffle_gelu},
    {"layers/inputs_unfold_resample_plucker", test_inputs},
    {"layers/gaussian_activations", test_gaussians},
    {NULL, NULL},
};
