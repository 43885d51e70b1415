// test_model_cuda.c — the CUDA network (model/cuda) against the CPU network (model/avat3r.c, float):
// first its kernels one by one (fused attention, cuBLAS matmul, the per-pixel layers) on random inputs,
// then whole forward and backward passes on small configs that exercise every path, comparing every
// activation, activation gradient and parameter gradient tensor. Outputs start as NaN, so an element
// nobody writes fails. Gradients are accumulated on top of random values, so `=` instead of `+=` fails.
//   avat3r_cuda_model_tests [CONFIG.cfg]   (a config file adds a whole-model check at that size, B = 1)
// Without a GPU it says so and exits 0.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../model/avat3r.h"
#include "../../model/cuda/attention_cuda.h"
#include "../../model/cuda/avat3r_cuda.h"
#include "../../model/cuda/layers_cuda.h"
#include "../../model/cuda/matmul_cuda.h"
#include "../../model/cuda/pixels_cuda.h"
#include "../../model/layers.h"
#include "../../tools/batch_random.h"
#include "cuda_test.h"

#define TOL_KERNEL 1e-5 // one fp32 kernel: summation order and a few ulps of expf/tanhf
#define TOL_MODEL 1e-4  // a whole pass: the same, compounded over ~10 layers deep
// A whole pass with TF32 / bf16 matmuls against the fp32 CPU: each product's operands are rounded to
// u = 2^-11 / 2^-8 (check_matmul_reduced bounds one matmul exactly), and a pass compounds that through the
// LayerNorms, softmaxes and residuals of every layer, forward and backward. The small configs (init_std 0.3,
// so every branch matters) amplify it 20–30x on the emulator (worst 1.5e-2 TF32, 7.8e-2 bf16, 2026-11-24);
// 64·u leaves 2–3x for the GPU's own summation orders. A wrong layout or a missing conversion gives O(1).
#define TOL_TF32 (64 * 0x1p-11)
#define TOL_BF16 (64 * 0x1p-8)

static int pass, fail;
static void count(int ok) { ok ? pass++ : fail++; }

// ----------------------------------------------------------------------------------------------
// attention: packed self-attention (q, k, v interleaved in one [B·N, 3D] buffer, as the model) and
// cross-attention (Nk small), forward and backward

static void check_attention(int B, int Nq, int Nk, int NH, int hd, int packed, uint64_t seed) {
    int D = NH * hd, ldq = packed ? 3 * D : D, ldkv = packed ? 3 * D : 2 * D;
    size_t nq = (size_t)B * Nq * ldq, nkv = packed ? 0 : (size_t)B * Nk * ldkv, no = (size_t)B * Nq * D;
    size_t nl = (size_t)B * NH * Nq;
    float *qh = ct_rand(nq, seed), *kvh = packed ? qh : ct_rand(nkv, seed + 1);
    const float *q = qh, *k = packed ? qh + D : kvh, *v = packed ? qh + 2 * D : kvh + D;
    float *out = (float *)mallocCheck(4 * no), *lse = (float *)mallocCheck(4 * nl), *dout = ct_rand(no, seed + 2);
    float *dq = ct_rand(nq, seed + 3), *dkv = packed ? dq : ct_rand(nkv, seed + 4); // accumulated onto
    // device copies first: the CPU backward then accumulates into dq / dkv in place
    float *d_q = ct_dev(qh, nq), *d_kv = packed ? d_q : ct_dev(kvh, nkv), *d_out = ct_dev(NULL, no);
    float *d_lse = ct_dev(NULL, nl), *d_dout = ct_dev(dout, no), *d_dq = ct_dev(dq, nq);
    float *d_dkv = packed ? d_dq : ct_dev(dkv, nkv), *d_delta = ct_dev(NULL, nl);
    int chunk = 16, nt = 1;
    float *scratch = (float *)mallocCheck(4 * attention_scratch_size(Nk, chunk, nt));
    attention_forward(out, D, lse, NULL, q, ldq, k, ldkv, v, ldkv, B, Nq, Nk, NH, hd, scratch, chunk, nt);
    attention_backward(dq, packed ? dq + D : dkv, packed ? dq + 2 * D : dkv + D, dout, out, D, lse, NULL, q, ldq, k,
                       ldkv, v, ldkv, B, Nq, Nk, NH, hd, scratch, chunk, nt);
    const float *dk_ = packed ? d_q + D : d_kv, *dv_ = packed ? d_q + 2 * D : d_kv + D;
    attention_forward_cuda(d_out, D, d_lse, d_q, ldq, dk_, ldkv, dv_, ldkv, B, Nq, Nk, NH, hd);
    attention_backward_cuda(d_dq, packed ? d_dq + D : d_dkv, packed ? d_dq + 2 * D : d_dkv + D, d_dout, d_out, D,
                            d_lse, d_q, ldq, dk_, ldkv, dv_, ldkv, B, Nq, Nk, NH, hd, d_delta);
    CK(cudaDeviceSynchronize());
    char name[128];
    const char *kind = packed ? "self" : "cross";
    snprintf(name, sizeof name, "attention %s B%d Nq%d Nk%d NH%d hd%d out", kind, B, Nq, Nk, NH, hd);
    count(ct_compare(name, out, d_out, no, TOL_KERNEL));
    snprintf(name, sizeof name, "attention %s hd%d lse", kind, hd);
    count(ct_compare(name, lse, d_lse, nl, TOL_KERNEL));
    snprintf(name, sizeof name, "attention %s hd%d %s", kind, hd, packed ? "dqkv" : "dq");
    count(ct_compare(name, dq, d_dq, nq, TOL_KERNEL));
    if (!packed) {
        snprintf(name, sizeof name, "attention %s hd%d dkv", kind, hd);
        count(ct_compare(name, dkv, d_dkv, nkv, TOL_KERNEL));
    }
    float *dbufs[] = {d_q, d_out, d_lse, d_dout, d_dq, d_delta, packed ? NULL : d_kv, packed ? NULL : d_dkv};
    for (size_t i = 0; i < sizeof dbufs / sizeof dbufs[0]; i++)
        if (dbufs[i]) CK(cudaFree(dbufs[i]));
    free(qh), free(out), free(lse), free(dout), free(dq), free(scratch);
    if (!packed) free(kvh), free(dkv);
}

// ----------------------------------------------------------------------------------------------

static void check_matmul(int N, int C, int OC, int bias) {
    float *x = ct_rand((size_t)N * C, 10), *w = ct_rand((size_t)OC * C, 11), *b = bias ? ct_rand(OC, 12) : NULL;
    float *out = (float *)mallocCheck(4 * (size_t)N * OC), *dout = ct_rand((size_t)N * OC, 13);
    float *dx = ct_rand((size_t)N * C, 14), *dw = ct_rand((size_t)OC * C, 15), *db = ct_rand(OC, 16);
    float *d_x = ct_dev(x, (size_t)N * C), *d_w = ct_dev(w, (size_t)OC * C), *d_b = bias ? ct_dev(b, OC) : NULL;
    float *d_out = ct_dev(NULL, (size_t)N * OC), *d_dout = ct_dev(dout, (size_t)N * OC);
    float *d_dx = ct_dev(dx, (size_t)N * C), *d_dw = ct_dev(dw, (size_t)OC * C), *d_db = ct_dev(db, OC);
    matmul_forward(out, x, w, b, N, C, OC);
    matmul_backward(dx, dw, db, dout, x, w, N, C, OC);
    matmul_forward_cuda(d_out, d_x, d_w, d_b, N, C, OC);
    matmul_backward_cuda(d_dx, d_dw, d_db, d_dout, d_x, d_w, N, C, OC);
    CK(cudaDeviceSynchronize());
    char name[96];
    snprintf(name, sizeof name, "matmul N%d C%d OC%d bias %d: out", N, C, OC, bias);
    count(ct_compare(name, out, d_out, (size_t)N * OC, TOL_KERNEL));
    count(ct_compare("matmul dinp", dx, d_dx, (size_t)N * C, TOL_KERNEL));
    count(ct_compare("matmul dw", dw, d_dw, (size_t)OC * C, TOL_KERNEL));
    count(ct_compare("matmul dbias", db, d_db, OC, TOL_KERNEL));
    // the residual form in place (out = res; the blocks' projections write a new buffer, checked by the model)
    float *res = ct_rand((size_t)N * OC, 17), *d_res = ct_dev(res, (size_t)N * OC);
    matmul_residual_forward(res, res, x, w, b, N, C, OC);
    matmul_residual_forward_cuda(d_res, d_res, d_x, d_w, d_b, N, C, OC);
    CK(cudaDeviceSynchronize());
    snprintf(name, sizeof name, "matmul N%d C%d OC%d bias %d: res += out, in place", N, C, OC, bias);
    count(ct_compare(name, res, d_res, (size_t)N * OC, TOL_KERNEL));
    free(res);
    float *dbufs[] = {d_x, d_w, d_b, d_out, d_dout, d_dx, d_dw, d_db, d_res};
    for (size_t i = 0; i < sizeof dbufs / sizeof dbufs[0]; i++)
        if (dbufs[i]) CK(cudaFree(dbufs[i]));
    free(x), free(w), free(b), free(out), free(dout), free(dx), free(dw), free(db);
}

// TF32 / bf16 products against the exact ones (double), element by element: rounding both operands to
// p bits (u = 2^-p: 2^-11 for TF32, 2^-8 for bf16) moves each product a·b by at most (2u + u²)|a·b|, the
// fp32 accumulation of K terms adds at most γ_K = K·2^-24/(1 − K·2^-24) of Σ|a·b|, and the result's own
// rounding 2^-24 of it. So |gpu − exact| ≤ (2u + u² + γ_K)·Σ|a·b| + 2^-24·|exact| for every element; the
// check reports the worst ratio to that bound: ≤ 1 passes, and ≥ 0.01 shows the operands really were
// rounded (an fp32 product sits near 1e-5 of this bound). Output, dinp and dw from zero.
static void check_matmul_reduced(int N, int C, int OC, MatmulPrecision prec) {
    const double u = prec == MATMUL_BF16 ? 0x1p-8 : 0x1p-11;
    float *x = ct_rand((size_t)N * C, 20), *w = ct_rand((size_t)OC * C, 21), *dout = ct_rand((size_t)N * OC, 22);
    float *d_x = ct_dev(x, (size_t)N * C), *d_w = ct_dev(w, (size_t)OC * C), *d_dout = ct_dev(dout, (size_t)N * OC);
    float *d_out = ct_dev(NULL, (size_t)N * OC), *d_dx = ct_zero((size_t)N * C), *d_dw = ct_zero((size_t)OC * C);
    matmul_cuda_set_precision(prec);
    matmul_forward_cuda(d_out, d_x, d_w, NULL, N, C, OC);
    matmul_backward_cuda(d_dx, d_dw, NULL, d_dout, d_x, d_w, N, C, OC);
    matmul_cuda_set_precision(MATMUL_FP32);
    float *g[3] = {(float *)mallocCheck(4 * (size_t)N * OC), (float *)mallocCheck(4 * (size_t)N * C),
                   (float *)mallocCheck(4 * (size_t)OC * C)};
    CK(cudaMemcpy(g[0], d_out, 4 * (size_t)N * OC, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(g[1], d_dx, 4 * (size_t)N * C, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(g[2], d_dw, 4 * (size_t)OC * C, cudaMemcpyDeviceToHost));
    // out[n,o] = Σ_c x[n,c] w[o,c]; dx[n,c] = Σ_o dout[n,o] w[o,c]; dw[o,c] = Σ_n dout[n,o] x[n,c]
    const int rows[3] = {N, N, OC}, cols[3] = {OC, C, C}, K[3] = {C, OC, N};
    const char *names[3] = {"out", "dinp", "dw"};
    for (int t = 0; t < 3; t++) {
        double worst = 0, gk = K[t] * 0x1p-24 / (1 - K[t] * 0x1p-24);
        int nan = 0;
        for (int i = 0; i < rows[t]; i++)
            for (int j = 0; j < cols[t]; j++) {
                double e = 0, mag = 0;
                for (int k = 0; k < K[t]; k++) {
                    double a = t == 0 ? x[(size_t)i * C + k] : dout[t == 1 ? (size_t)i * OC + k : (size_t)k * OC + i];
                    double b = t == 0 ? w[(size_t)j * C + k] : t == 1 ? w[(size_t)k * C + j] : x[(size_t)k * C + j];
                    e += a * b, mag += fabs(a * b);
                }
                double v = g[t][(size_t)i * cols[t] + j], bound = (2 * u + u * u + gk) * mag + 0x1p-24 * fabs(e);
                if (v != v) nan++;
                else worst = fmax(worst, fabs(v - e) / bound);
            }
        int ok = !nan && worst <= 1 && worst >= 0.01;
        printf("%s matmul %s N%d C%d OC%d %s: worst |gpu - exact| / bound = %.3f, NaN %d\n", ok ? "PASS" : "FAIL",
               prec == MATMUL_BF16 ? "bf16" : "tf32", N, C, OC, names[t], worst, nan);
        count(ok);
    }
    float *dbufs[] = {d_x, d_w, d_dout, d_out, d_dx, d_dw};
    for (size_t i = 0; i < sizeof dbufs / sizeof dbufs[0]; i++) CK(cudaFree(dbufs[i]));
    free(x), free(w), free(dout), free(g[0]), free(g[1]), free(g[2]);
}

// ----------------------------------------------------------------------------------------------
// the per-pixel layers, on the inputs of a random batch

static void check_pixels(void) {
    ModelConfig c;
    CfgTable t = model_config_table(&c);
    char err[256];
    if (cfg_defaults(&t, 1, err, sizeof err)) FATAL("%s", err);
    int BV = 3, H = 12, W = 20, C = 5, h = 3, w = 4, hi = 7, wi = 9, ho = 12, wo = 5;
    c.views_in = BV, c.img_h = H, c.img_w = W;
    RandomBatch rb;
    random_batch_make(&rb, &c, 1, 5);
    size_t npx = (size_t)BV * H * W;
    float *pl = (float *)mallocCheck(4 * npx * 6), *co = (float *)mallocCheck(4 * BV * 3);
    float *d_w2c = ct_dev(rb.w2c32, BV * 12), *d_K = ct_dev(rb.K32, BV * 9), *d_pl = ct_dev(NULL, npx * 6);
    float *d_co = ct_dev(NULL, BV * 3);
    plucker_forward(pl, co, rb.w2c32, rb.K32, BV, H, W);
    plucker_forward_cuda(d_pl, d_co, d_w2c, d_K, BV, H, W);
    count(ct_compare("plucker rays", pl, d_pl, npx * 6, TOL_KERNEL));
    count(ct_compare("plucker cam_o", co, d_co, BV * 3, TOL_KERNEL));
    // unfold of a 12-channel image, patch 4
    int Cin = 12, p = 4;
    size_t nimg = npx * Cin;
    float *img = ct_rand(nimg, 20), *uf = (float *)mallocCheck(4 * nimg), *d_img = ct_dev(img, nimg);
    float *d_uf = ct_dev(NULL, nimg);
    unfold_forward(uf, img, BV, H, W, Cin, p);
    unfold_forward_cuda(d_uf, d_img, BV, H, W, Cin, p);
    count(ct_compare("unfold", uf, d_uf, nimg, TOL_KERNEL));
    // bilinear resampling, up in one axis and down in the other
    size_t nin = (size_t)BV * hi * wi * C, nout = (size_t)BV * ho * wo * C;
    float *rin = ct_rand(nin, 21), *rout = (float *)mallocCheck(4 * nout), *d_rin = ct_dev(rin, nin);
    float *d_rout = ct_dev(NULL, nout);
    resample_bilinear_forward(rout, rin, BV, hi, wi, ho, wo, C);
    resample_bilinear_forward_cuda(d_rout, d_rin, BV, hi, wi, ho, wo, C);
    count(ct_compare("resample_bilinear", rout, d_rout, nout, TOL_KERNEL));
    // pixel shuffle both ways
    size_t ns = (size_t)BV * h * w * 4 * C;
    float *sin_ = ct_rand(ns, 22), *sout = (float *)mallocCheck(4 * ns), *sg = ct_rand(ns, 23), *sd = ct_rand(ns, 24);
    float *d_sin = ct_dev(sin_, ns), *d_sout = ct_dev(NULL, ns), *d_sg = ct_dev(sg, ns), *d_sd = ct_dev(sd, ns);
    pixel_shuffle_forward(sout, sin_, BV, h, w, C);
    pixel_shuffle_backward(sd, sg, BV, h, w, C);
    pixel_shuffle_forward_cuda(d_sout, d_sin, BV, h, w, C);
    pixel_shuffle_backward_cuda(d_sd, d_sg, BV, h, w, C);
    count(ct_compare("pixel_shuffle forward", sout, d_sout, ns, TOL_KERNEL));
    count(ct_compare("pixel_shuffle backward", sd, d_sd, ns, TOL_KERNEL));
    // the upsampler's fused shuffle + GELU backward writes din: both sides start from other values
    float *gpre = ct_rand(ns, 27), *gd = ct_rand(ns, 28), *d_gpre = ct_dev(gpre, ns), *d_gd = ct_dev(sd, ns);
    shuffle_gelu_backward(gd, gpre, sg, BV, h, w, C);
    shuffle_gelu_backward_cuda(d_gd, d_gpre, d_sg, BV, h, w, C);
    count(ct_compare("shuffle_gelu backward", gd, d_gd, ns, TOL_KERNEL));
    // Gaussian activations with and without DUSt3R points; raw wide enough to hit the scale clamps
    GaussAct ga = gauss_act(&c);
    size_t ng = npx * 14;
    float *raw = ct_rand(ng, 25), *dg = ct_rand(ng, 26), *g = (float *)mallocCheck(4 * ng);
    for (size_t i = 0; i < ng; i++) raw[i] *= 3;
    float *d_raw = ct_dev(raw, ng), *d_dg = ct_dev(dg, ng), *d_g = ct_dev(NULL, ng), *d_rgb = ct_dev(rb.rgb32, npx * 3);
    float *d_pos = ct_dev(rb.pos32, npx * 3), *d_conf = ct_dev(rb.conf32, npx);
    for (int use_d = 0; use_d < 2; use_d++) {
        float *dr = ct_rand(ng, 27 + use_d), *d_dr = ct_dev(dr, ng);
        CK(cudaMemset(d_g, 0xff, 4 * ng));
        gaussians_forward(g, raw, rb.rgb32, use_d ? rb.pos32 : NULL, use_d ? rb.conf32 : NULL, pl, co, &ga, BV, H * W);
        gaussians_backward(dr, dg, raw, use_d ? rb.pos32 : NULL, use_d ? rb.conf32 : NULL, pl, &ga, BV, H * W);
        gaussians_forward_cuda(d_g, d_raw, d_rgb, use_d ? d_pos : NULL, use_d ? d_conf : NULL, d_pl, d_co, &ga, BV,
                               H * W);
        gaussians_backward_cuda(d_dr, d_dg, d_raw, use_d ? d_pos : NULL, use_d ? d_conf : NULL, d_pl, &ga, BV, H * W);
        CK(cudaDeviceSynchronize());
        count(ct_compare(use_d ? "gaussians forward (dust3r)" : "gaussians forward (rays)", g, d_g, ng, TOL_KERNEL));
        count(ct_compare(use_d ? "gaussians backward (dust3r)" : "gaussians backward (rays)", dr, d_dr, ng,
                         TOL_KERNEL));
        free(dr);
        CK(cudaFree(d_dr));
    }
    float *dbufs[] = {d_w2c, d_K, d_pl, d_co, d_img, d_uf, d_rin, d_rout, d_sin, d_sout, d_sg, d_sd,
                      d_raw, d_dg, d_g, d_rgb, d_pos, d_conf, d_gpre, d_gd};
    for (size_t i = 0; i < sizeof dbufs / sizeof dbufs[0]; i++) CK(cudaFree(dbufs[i]));
    free(pl), free(co), free(img), free(uf), free(rin), free(rout), free(sin_), free(sout), free(sg), free(sd);
    free(raw), free(dg), free(g), free(gpre), free(gd);
    random_batch_free(&rb);
}

// ----------------------------------------------------------------------------------------------
// the whole network

static ModelConfig small_config(int use_s, int use_d, int width, int heads) {
    ModelConfig c;
    CfgTable t = model_config_table(&c);
    char err[256];
    if (cfg_defaults(&t, 1, err, sizeof err)) FATAL("%s", err);
    c.views_in = 2, c.img_h = 16, c.img_w = 24, c.patch = 4, c.width = width, c.heads = heads, c.layers = 2;
    c.mlp_ratio = 2, c.expr_dim = 6, c.expr_tokens = 3, c.expr_hidden = 5, c.sapiens_ch = 3;
    c.sapiens_h = 3, c.sapiens_w = 5, c.use_sapiens = use_s, c.use_dust3r = use_d;
    c.expr_norm = use_s && use_d; // the full case also covers the expression-token LayerNorm
    c.init_std = 0.3;             // every branch moves the output measurably
    return c;
}

static float *dev_or_null(const float *h, size_t n) { return h && n ? ct_dev(h, n) : NULL; }

// every tensor of a device buffer laid out by sizes[] against the CPU's; returns the number that fail
static int compare_tensors(const char *what, const char *const *names, const size_t *sizes, int n, const float *cpu,
                           const float *dev, double tol) {
    int bad = 0;
    for (int i = 0; i < n; i++) {
        if (sizes[i]) {
            char name[96];
            snprintf(name, sizeof name, "%s %s", what, names[i]);
            bad += !ct_compare(name, cpu, dev, sizes[i], tol);
        }
        cpu += sizes[i], dev += sizes[i];
    }
    return bad;
}

// prec: the matmuls' precision; tol: the tolerance of every tensor against the fp32 CPU
static void check_model(const ModelConfig *c, int B, const char *label, MatmulPrecision prec, double tol) {
    const char *pn[3] = {"fp32", "tf32", "bf16"};
    printf("-- whole model: %s (B %d, width %d, heads %d, layers %d, %d tokens, sapiens %d, dust3r %d, matmuls %s, "
           "tol %.0e)\n", label, B, c->width, c->heads, c->layers, mc_tokens(c), c->use_sapiens, c->use_dust3r,
           pn[prec], tol);
    Avat3r cpu;
    Avat3rCuda gpu;
    avat3r_build(&cpu, c, B);
    avat3r_cuda_build(&gpu, c, B);
    matmul_cuda_reserve(gpu.max_operand);
    matmul_cuda_set_precision(prec);
    avat3r_init_params(&cpu, 7);
    Rng r = rng_make(99, 0); // LayerNorm weights and biases start at 1 and 0: make every tensor generic
    for (size_t i = 0; i < cpu.n_params; i++) cpu.params[i] += 0.1f * (float)rng_normal_at(&r, i);
    avat3r_cuda_set_params(&gpu, cpu.params);
    RandomBatch rb;
    random_batch_make(&rb, c, B, 11);
    Avat3rBatch in = random_batch_f32(&rb), din = {
        dev_or_null(in.rgb, rb.n_rgb), dev_or_null(in.pos, rb.n_pos), dev_or_null(in.conf, rb.n_conf),
        dev_or_null(in.sap, rb.n_sap), dev_or_null(in.w2c, rb.n_w2c), dev_or_null(in.K, rb.n_K),
        dev_or_null(in.expr, rb.n_expr)};
    // forward: every activation, from buffers that start as NaN
    CK(cudaMemset(gpu.acts, 0xff, sizeof(float) * gpu.n_acts));
    avat3r_forward(&cpu, &in);
    avat3r_cuda_forward(&gpu, &din);
    CK(cudaDeviceSynchronize());
    size_t as[NUM_ACT_TENSORS];
    mc_act_sizes(c, B, as);
    int bad = compare_tensors("forward", act_tensor_names, as, NUM_ACT_TENSORS, cpu.acts, gpu.acts, tol);
    // backward from random dL/dgauss onto random gradients (accumulation is part of the contract)
    float *dg = ct_rand(rb.n_w, 31), *d_dg = ct_dev(dg, rb.n_w);
    avat3r_zero_grad(&cpu);
    avat3r_cuda_zero_grad(&gpu);
    Rng rg = rng_make(98, 0);
    for (size_t i = 0; i < cpu.n_params; i++) cpu.grads[i] = 0.01f * (float)rng_normal_at(&rg, i);
    CK(cudaMemcpy(gpu.grads, cpu.grads, sizeof(float) * cpu.n_params, cudaMemcpyHostToDevice));
    avat3r_backward(&cpu, &in, dg);
    avat3r_cuda_backward(&gpu, &din, d_dg);
    CK(cudaDeviceSynchronize());
    bad += compare_tensors("grad", param_names, cpu.param_sizes, NUM_PARAM_TENSORS, cpu.grads, gpu.grads, tol);
    bad += compare_tensors("dact", act_tensor_names, as, NUM_ACT_TENSORS, cpu.dacts, gpu.dacts, tol);
    // the same forward again gives the same bits (no atomics, fixed reduction orders)
    float *g1 = (float *)mallocCheck(sizeof(float) * rb.n_w), *g2 = (float *)mallocCheck(sizeof(float) * rb.n_w);
    CK(cudaMemcpy(g1, gpu.a.gauss, sizeof(float) * rb.n_w, cudaMemcpyDeviceToHost));
    avat3r_cuda_forward(&gpu, &din);
    CK(cudaMemcpy(g2, gpu.a.gauss, sizeof(float) * rb.n_w, cudaMemcpyDeviceToHost));
    int same = memcmp(g1, g2, sizeof(float) * rb.n_w) == 0;
    printf("%s forward run twice: %s\n", same ? "PASS" : "FAIL", same ? "bit-identical" : "differs");
    bad += !same;
    printf("%s whole model %s: %d tensors differ\n", bad ? "FAIL" : "PASS", label, bad);
    count(bad == 0);
    const float *dp[] = {din.rgb, din.pos, din.conf, din.sap, din.w2c, din.K, din.expr, d_dg};
    for (size_t i = 0; i < sizeof dp / sizeof dp[0]; i++)
        if (dp[i]) CK(cudaFree((void *)dp[i]));
    free(dg), free(g1), free(g2);
    random_batch_free(&rb);
    avat3r_free(&cpu);
    avat3r_cuda_free(&gpu);
    matmul_cuda_set_precision(MATMUL_FP32);
}

int main(int argc, char **argv) {
    if (cuda_device_count() == 0) {
        printf("no CUDA device: the CUDA model tests are skipped (run them on a GPU machine, see "
               "docs/gpu-verification.md)\n");
        return 0;
    }
    matmul_cuda_setup(4096);
    // attention: every compiled head size and one generic (24); sequence lengths off the tile sizes
    int hds[] = {16, 32, 64, 128, 24};
    for (int i = 0; i < 5; i++) check_attention(2, 70, 70, 2, hds[i], 1, 100 + i);
    for (int i = 0; i < 5; i++) check_attention(2, 97, 3, 2, hds[i], 0, 200 + i);
    check_matmul(37, 29, 19, 1);
    check_matmul(300, 64, 14, 0);
    matmul_cuda_reserve(300 * 64);
    check_matmul_reduced(37, 29, 19, MATMUL_TF32);
    check_matmul_reduced(300, 64, 14, MATMUL_BF16);
    check_pixels();
    // whole model: all four feature combinations (hd 16), the generic attention (hd 12), then a config file
    for (int s = 1; s >= 0; s--)
        for (int d = 1; d >= 0; d--) {
            char label[64];
            snprintf(label, sizeof label, "small, sapiens %d dust3r %d", s, d);
            ModelConfig c = small_config(s, d, 32, 2);
            check_model(&c, 2, label, MATMUL_FP32, TOL_MODEL);
        }
    ModelConfig c12 = small_config(1, 1, 24, 2);
    check_model(&c12, 2, "small, head dim 12", MATMUL_FP32, TOL_MODEL);
    // the reduced-precision matmuls against the same fp32 CPU
    ModelConfig cf = small_config(1, 1, 32, 2);
    check_model(&cf, 2, "small, TF32 matmuls", MATMUL_TF32, TOL_TF32);
    check_model(&cf, 2, "small, bf16 matmuls", MATMUL_BF16, TOL_BF16);
    if (argc > 1) {
        ModelConfig c;
        char err[512];
        if (model_config_load(&c, argv[1], err, sizeof err)) FATAL("%s", err);
        check_model(&c, 1, argv[1], MATMUL_FP32, TOL_MODEL);
    }
    matmul_cuda_teardown();
    printf("CUDA model tests: %d of %d checks passed\n", pass, pass + fail);
    return fail ? 1 : 0;
}
