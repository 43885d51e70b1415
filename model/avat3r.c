// avat3r.c — the Avat3r network assembled from layers.c: build, init, forward, backward.
// Compiled twice (float, and double with -DAVAT3R_F64). The backward is the forward read in reverse.
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rng.h"
#include "../common/util.h"
#include "../common/wide.h"
#include "avat3r.h"
#include "layers.h"
#include "../common/real.h"

_Static_assert(sizeof(R_(ActTensors)) / sizeof(real *) == NUM_ACT_TENSORS, "mc_act_sizes is out of sync");

#define ATT_KEEP_MAX ((size_t)1 << 24) // reals of kept attention probabilities at most

// one layer's attention probabilities [B, NH, N, nk]
static size_t att_p_size(const ModelConfig *c, int B, int nk) { return (size_t)B * c->heads * mc_tokens(c) * nk; }

// Tensors the backward never writes a gradient into: the inputs' rays, pixels and patches, the Sapiens
// features, the saved statistics (mean, rstd, lse), the Gaussians (their gradient comes in as dgauss),
// up_tmp (written, not accumulated, by the upsampler's fused shuffle + GELU backward) and up_pre (that
// backward goes from up_act's gradient straight to up_tmp's). A third of the buffer, left alone by the clear.
static int act_gets_grad(int i) {
    static const char *const none[] = {"plucker", "cam_o", "pix_in", "unfold", "sap_rs", "gauss", "up_tmp", "up_pre"};
    const char *name = act_tensor_names[i];
    size_t n = strlen(name);
    if (n > 4 && (!strcmp(name + n - 4, "_lse") || !strcmp(name + n - 5, "_mean") || !strcmp(name + n - 5, "_rstd")))
        return 0;
    for (size_t k = 0; k < sizeof none / sizeof none[0]; k++)
        if (!strcmp(name, none[k])) return 0;
    return 1;
}

// Carves named tensors out of one buffer (llm.c's pointer walk over a struct of pointers).
static void point_tensors(real **ptrs, real *base, const size_t *sizes, int n) {
    for (int i = 0; i < n; i++) {
        ptrs[i] = sizes[i] ? base : NULL;
        base += sizes[i];
    }
}

void R_(avat3r_build)(R_(Avat3r) *m, const ModelConfig *cfg, int B) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->B = B;
    m->n_params = param_sizes(cfg, m->param_sizes);
    m->params = (real *)mallocCheck(sizeof(real) * m->n_params);
    m->grads = (real *)callocCheck(m->n_params, sizeof(real));
    point_tensors((real **)&m->p, m->params, m->param_sizes, NUM_PARAM_TENSORS);
    point_tensors((real **)&m->g, m->grads, m->param_sizes, NUM_PARAM_TENSORS);
    size_t *as = m->act_sizes;
    mc_act_sizes(cfg, B, as);
    m->n_acts = 0;
    for (int i = 0; i < NUM_ACT_TENSORS; i++) m->n_acts += as[i];
    m->acts = (real *)callocCheck(m->n_acts, sizeof(real));
    m->dacts = (real *)callocCheck(m->n_acts, sizeof(real));
    point_tensors((real **)&m->a, m->acts, as, NUM_ACT_TENSORS);
    point_tensors((real **)&m->da, m->dacts, as, NUM_ACT_TENSORS);
    for (int i = 0; i < NUM_ACT_TENSORS; i++) m->dact_clear[i] = act_gets_grad(i) ? as[i] : 0;
    m->att_chunk = 128;
    m->nthreads = omp_get_max_threads();
    int nk = mc_tokens(cfg) > cfg->expr_tokens ? mc_tokens(cfg) : cfg->expr_tokens;
    m->att_scratch = (real *)mallocCheck(sizeof(real) * R_(attention_scratch_size)(nk, m->att_chunk, m->nthreads));
    // the attention probabilities of every layer, kept for the backward when they are small (the tiny config:
    // 4 MB); the paper config's would be gigabytes, so its backward recomputes them
    size_t self_p = (size_t)cfg->layers * att_p_size(cfg, B, mc_tokens(cfg));
    size_t np = self_p + (size_t)cfg->layers * att_p_size(cfg, B, cfg->expr_tokens);
    if (np <= ATT_KEEP_MAX) {
        m->att_p = (real *)mallocCheck(sizeof(real) * np);
        m->catt_p = m->att_p + self_p;
    }
}

void R_(avat3r_free)(R_(Avat3r) *m) {
    free(m->params);
    free(m->grads);
    free(m->acts);
    free(m->dacts);
    free(m->att_scratch);
    free(m->att_p);
    memset(m, 0, sizeof *m);
}

void R_(params_init)(real *params, const ModelConfig *cfg, uint64_t seed) {
    size_t sizes[NUM_PARAM_TENSORS];
    param_sizes(cfg, sizes);
    double std = cfg->init_std, std_r = std / sqrt(2.0 * (cfg->layers > 0 ? cfg->layers : 1));
    for (int j = 0; j < NUM_PARAM_TENSORS; j++) {
        Rng r = rng_make(seed, (uint64_t)j);
        ParamInit rule = param_init_rule(j);
        for (size_t i = 0; i < sizes[j]; i++) {
            double v = rule == INIT_ONE ? 1 : rule == INIT_ZERO ? 0 : rng_normal_at(&r, i);
            if (rule == INIT_NORMAL) v *= std;
            if (rule == INIT_NORMAL_RESID) v *= std_r;
            params[i] = (real)v;
        }
        params += sizes[j];
    }
}

void R_(avat3r_init_params)(R_(Avat3r) *m, uint64_t seed) { R_(params_init)(m->params, &m->cfg, seed); }

void R_(avat3r_zero_dacts)(R_(Avat3r) *m) {
    // one region, each thread clearing its slice of every tensor that gets a gradient (the buffer is larger
    // than the caches, so two cores clear it faster than one)
#pragma omp parallel
    {
        real *t = m->dacts;
        for (int i = 0; i < NUM_ACT_TENSORS; t += m->act_sizes[i], i++) {
            size_t lo, hi;
            thread_span(m->dact_clear[i], &lo, &hi);
            if (hi > lo) memset(t + lo, 0, sizeof(real) * (hi - lo));
        }
    }
}

void R_(avat3r_zero_grad)(R_(Avat3r) *m) {
    memset(m->grads, 0, sizeof(real) * m->n_params);
    R_(avat3r_zero_dacts)(m);
}

R_(GaussAct) R_(gauss_act)(const ModelConfig *c) {
    R_(GaussAct) ga = {c->pos_offset_max, c->depth_near, c->depth_far, c->scale_bias, log(c->scale_min),
                       log(c->scale_max)};
    return ga;
}

// layer l's kept attention probabilities, or NULL (then the backward recomputes them)
static real *R_(att_p)(const R_(Avat3r) *m, int l) {
    return m->att_p ? m->att_p + l * att_p_size(&m->cfg, m->B, mc_tokens(&m->cfg)) : NULL;
}
static real *R_(catt_p)(const R_(Avat3r) *m, int l) {
    return m->catt_p ? m->catt_p + l * att_p_size(&m->cfg, m->B, m->cfg.expr_tokens) : NULL;
}

void R_(avat3r_forward)(R_(Avat3r) *m, const R_(Avat3rBatch) *in) {
    const ModelConfig *c = &m->cfg;
    R_(ParamTensors) *p = &m->p;
    R_(ActTensors) *a = &m->a;
    int B = m->B, V = c->views_in, BV = B * V, H = c->img_h, W = c->img_w, P = c->patch, Cin = mc_cin(c);
    int Hp = mc_hp(c), Wp = mc_wp(c), N = mc_tokens(c), BN = B * N, D = c->width, NH = c->heads, hd = D / NH;
    int L = c->layers, M = c->mlp_ratio * D, S = c->expr_tokens, Hx = c->expr_hidden, E = c->expr_dim;
    int CS = c->sapiens_ch, use_d = c->use_dust3r, use_s = c->use_sapiens;
    size_t HW = (size_t)H * W;

    // 1-2. Plücker rays and the per-pixel input [rgb | pos | plücker]
    R_(plucker_forward)(a->plucker, a->cam_o, in->w2c, in->K, BV, H, W);
#pragma omp parallel for
    for (size_t i = 0; i < (size_t)BV * HW; i++) {
        real *x = a->pix_in + i * Cin;
        for (int k = 0; k < 3; k++) x[k] = in->rgb[i * 3 + k];
        if (use_d)
            for (int k = 0; k < 3; k++) x[3 + k] = in->pos[i * 3 + k];
        for (int k = 0; k < 6; k++) x[Cin - 6 + k] = a->plucker[i * 6 + k];
    }
    // 3. patchify = unfold + matmul
    R_(unfold_forward)(a->unfold, a->pix_in, BV, H, W, Cin, P);
    R_(matmul_forward)(a->tok, a->unfold, p->patch_w, p->patch_b, BN, P * P * Cin, D);
    // 4. Sapiens features: resample to the token grid, concatenate, project back to D
    const real *tk = a->tok;
    if (use_s) {
        R_(resample_bilinear_forward)(a->sap_rs, in->sap, BV, c->sapiens_h, c->sapiens_w, Hp, Wp, CS);
#pragma omp parallel for
        for (int t = 0; t < BN; t++) {
            memcpy(a->sap_cat + (size_t)t * (D + CS), a->tok + (size_t)t * D, sizeof(real) * D);
            memcpy(a->sap_cat + (size_t)t * (D + CS) + D, a->sap_rs + (size_t)t * CS, sizeof(real) * CS);
        }
        R_(matmul_forward)(a->tok2, a->sap_cat, p->sap_w, p->sap_b, BN, D + CS, D);
        tk = a->tok2;
    }
    // 5. position embedding, shared by all views
#pragma omp parallel for
    for (int t = 0; t < BN; t++) {
        const real *pe = p->pos_emb + (size_t)(t % (Hp * Wp)) * D;
        for (int k = 0; k < D; k++) a->x0[(size_t)t * D + k] = tk[(size_t)t * D + k] + pe[k];
    }
    // 6. expression code -> S tokens
    R_(matmul_forward)(a->e1, in->expr, p->expr1_w, p->expr1_b, B, E, Hx);
    R_(relu_forward)(a->e1r, a->e1, (size_t)B * Hx);
    R_(matmul_forward)(a->e2, a->e1r, p->expr2_w, p->expr2_b, B, Hx, Hx);
    R_(relu_forward)(a->e2r, a->e2, (size_t)B * Hx);
    R_(matmul_forward)(a->etok, a->e2r, p->expr3_w, p->expr3_b, B, Hx, S * D);
    // expr_norm (off by default; docs/model.md step 6): the tokens at unit scale before every cross-attention
    const real *ekv = a->etok;
    if (c->expr_norm) {
        R_(layernorm_forward)(a->etokn, a->lne_mean, a->lne_rstd, a->etok, p->lne_w, p->lne_b, B * S, D, c->ln_eps);
        ekv = a->etokn;
    }
    // 7. transformer blocks
    size_t bnd = (size_t)BN * D;
    for (int l = 0; l < L; l++) {
        const real *x = l == 0 ? a->x0 : a->x3 + (l - 1) * bnd;
        real *ln1 = a->ln1 + l * bnd, *qkv = a->qkv + l * 3 * bnd, *att = a->att + l * bnd, *x1 = a->x1 + l * bnd;
        real *ln2 = a->ln2 + l * bnd, *cq = a->cq + l * bnd, *catt = a->catt + l * bnd, *x2 = a->x2 + l * bnd;
        real *ckv = a->ckv + (size_t)l * B * S * 2 * D;
        real *ln3 = a->ln3 + l * bnd, *fc = a->fc + l * (size_t)BN * M, *fcg = a->fcg + l * (size_t)BN * M;
        real *x3 = a->x3 + l * bnd;
        // self-attention over all views' tokens of a sample
        R_(layernorm_forward)(ln1, a->ln1_mean + (size_t)l * BN, a->ln1_rstd + (size_t)l * BN, x, p->ln1_w + l * D,
                              p->ln1_b + l * D, BN, D, c->ln_eps);
        R_(matmul_forward)(qkv, ln1, p->qkv_w + (size_t)l * 3 * D * D, p->qkv_b + l * 3 * D, BN, D, 3 * D);
        R_(attention_forward)(att, D, a->att_lse + (size_t)l * B * NH * N, R_(att_p)(m, l), qkv, 3 * D, qkv + D, 3 * D,
                              qkv + 2 * D, 3 * D, B, N, N, NH, hd, m->att_scratch, m->att_chunk, m->nthreads);
        R_(matmul_residual_forward)(x1, x, att, p->attproj_w + (size_t)l * D * D, p->attproj_b + l * D, BN, D, D);
        // cross-attention to the expression tokens
        R_(layernorm_forward)(ln2, a->ln2_mean + (size_t)l * BN, a->ln2_rstd + (size_t)l * BN, x1, p->ln2_w + l * D,
                              p->ln2_b + l * D, BN, D, c->ln_eps);
        R_(matmul_forward)(cq, ln2, p->cq_w + (size_t)l * D * D, p->cq_b + l * D, BN, D, D);
        R_(matmul_forward)(ckv, ekv, p->ckv_w + (size_t)l * 2 * D * D, p->ckv_b + l * 2 * D, B * S, D, 2 * D);
        R_(attention_forward)(catt, D, a->catt_lse + (size_t)l * B * NH * N, R_(catt_p)(m, l), cq, D, ckv, 2 * D, ckv + D,
                              2 * D, B, N, S, NH, hd, m->att_scratch, m->att_chunk, m->nthreads);
        R_(matmul_residual_forward)(x2, x1, catt, p->cproj_w + (size_t)l * D * D, p->cproj_b + l * D, BN, D, D);
        // MLP
        R_(layernorm_forward)(ln3, a->ln3_mean + (size_t)l * BN, a->ln3_rstd + (size_t)l * BN, x2, p->ln3_w + l * D,
                              p->ln3_b + l * D, BN, D, c->ln_eps);
        R_(matmul_forward)(fc, ln3, p->fc_w + (size_t)l * M * D, p->fc_b + l * M, BN, D, M);
        R_(gelu_forward)(fcg, fc, (size_t)BN * M);
        R_(matmul_residual_forward)(x3, x2, fcg, p->fcproj_w + (size_t)l * D * M, p->fcproj_b + l * D, BN, M, D);
    }
    // 8. final LayerNorm: [BN, D] = [BV, Hp, Wp, D]
    const real *xL = L == 0 ? a->x0 : a->x3 + (L - 1) * bnd;
    R_(layernorm_forward)(a->lnf, a->lnf_mean, a->lnf_rstd, xL, p->lnf_w, p->lnf_b, BN, D, c->ln_eps);
    // 9. upsampler: Linear(C_k -> 4 C_{k+1}), PixelShuffle(2), GELU
    int U = mc_up_stages(c);
    const real *uin = a->lnf;
    for (int k = 0; k < U; k++) {
        int ci = mc_up_channels(c, k), co = mc_up_channels(c, k + 1), h = Hp << k, w = Wp << k;
        size_t boff, woff = mc_up_w_offset(c, k, &boff), ooff = mc_up_out_offset(c, BV, k), rows = mc_up_rows(c, BV, k);
        R_(matmul_forward)(a->up_tmp, uin, p->up_w + woff, p->up_b + boff, (int)rows, ci, 4 * co);
        R_(shuffle_gelu_forward)(a->up_act + ooff, a->up_pre + ooff, a->up_tmp, BV, h, w, co);
        uin = a->up_act + ooff;
    }
    // 10-11. per-pixel head and Gaussian activations
    int cu = mc_up_channels(c, U);
    R_(matmul_forward)(a->raw, uin, p->head_w, p->head_b, (int)(BV * HW), cu, 14);
    R_(GaussAct) ga = R_(gauss_act)(c);
    R_(gaussians_forward)(a->gauss, a->raw, in->rgb, use_d ? in->pos : NULL, use_d ? in->conf : NULL, a->plucker,
                          a->cam_o, &ga, BV, (int)HW);
}

void R_(avat3r_backward)(R_(Avat3r) *m, const R_(Avat3rBatch) *in, const real *dgauss) {
    const ModelConfig *c = &m->cfg;
    R_(ParamTensors) *p = &m->p, *g = &m->g;
    R_(ActTensors) *a = &m->a, *da = &m->da;
    int B = m->B, V = c->views_in, BV = B * V, H = c->img_h, W = c->img_w, P = c->patch, Cin = mc_cin(c);
    int Hp = mc_hp(c), Wp = mc_wp(c), N = mc_tokens(c), BN = B * N, D = c->width, NH = c->heads, hd = D / NH;
    int L = c->layers, M = c->mlp_ratio * D, S = c->expr_tokens, Hx = c->expr_hidden, E = c->expr_dim;
    int CS = c->sapiens_ch, use_d = c->use_dust3r, use_s = c->use_sapiens;
    size_t HW = (size_t)H * W, bnd = (size_t)BN * D;
    const real *ekv = c->expr_norm ? a->etokn : a->etok; // the tokens every cross-attention reads
    real *dekv = c->expr_norm ? da->etokn : da->etok;

    // 11-10. Gaussian activations, head
    R_(GaussAct) ga = R_(gauss_act)(c);
    R_(gaussians_backward)(da->raw, dgauss, a->raw, use_d ? in->pos : NULL, use_d ? in->conf : NULL, a->plucker, &ga,
                           BV, (int)HW);
    int U = mc_up_stages(c), cu = mc_up_channels(c, U);
    const real *ulast = U == 0 ? a->lnf : a->up_act + mc_up_out_offset(c, BV, U - 1);
    real *dulast = U == 0 ? da->lnf : da->up_act + mc_up_out_offset(c, BV, U - 1);
    R_(matmul_backward)(dulast, g->head_w, g->head_b, da->raw, ulast, p->head_w, (int)(BV * HW), cu, 14);
    // 9. upsampler, last stage first
    for (int k = U - 1; k >= 0; k--) {
        int ci = mc_up_channels(c, k), co = mc_up_channels(c, k + 1), h = Hp << k, w = Wp << k;
        size_t boff, woff = mc_up_w_offset(c, k, &boff), ooff = mc_up_out_offset(c, BV, k), rows = mc_up_rows(c, BV, k);
        const real *uin = k == 0 ? a->lnf : a->up_act + mc_up_out_offset(c, BV, k - 1);
        real *duin = k == 0 ? da->lnf : da->up_act + mc_up_out_offset(c, BV, k - 1);
        R_(shuffle_gelu_backward)(da->up_tmp, a->up_pre + ooff, da->up_act + ooff, BV, h, w, co); // writes up_tmp
        R_(matmul_backward)(duin, g->up_w + woff, g->up_b + boff, da->up_tmp, uin, p->up_w + woff, (int)rows, ci,
                            4 * co);
    }
    // 8. final LayerNorm
    const real *xL = L == 0 ? a->x0 : a->x3 + (L - 1) * bnd;
    real *dxL = L == 0 ? da->x0 : da->x3 + (L - 1) * bnd;
    R_(layernorm_backward)(dxL, g->lnf_w, g->lnf_b, da->lnf, xL, p->lnf_w, a->lnf_mean, a->lnf_rstd, BN, D);
    // 7. blocks in reverse
    for (int l = L - 1; l >= 0; l--) {
        const real *x = l == 0 ? a->x0 : a->x3 + (l - 1) * bnd;
        real *dx = l == 0 ? da->x0 : da->x3 + (l - 1) * bnd;
        size_t o = l * bnd, om = l * (size_t)BN * M, okv = (size_t)l * B * S * 2 * D, ost = (size_t)l * BN;
        size_t olse = (size_t)l * B * NH * N;
        real *dx1 = da->x1 + o, *dx2 = da->x2 + o, *dx3 = da->x3 + o;
        // MLP: x3 = x2 + fcproj(gelu(fc(ln3(x2))))
        R_(add_inplace)(dx2, dx3, bnd);
        R_(matmul_backward)(da->fcg + om, g->fcproj_w + (size_t)l * D * M, g->fcproj_b + l * D, dx3, a->fcg + om,
                            p->fcproj_w + (size_t)l * D * M, BN, M, D);
        R_(gelu_backward)(da->fc + om, a->fc + om, da->fcg + om, (size_t)BN * M);
        R_(matmul_backward)(da->ln3 + o, g->fc_w + (size_t)l * M * D, g->fc_b + l * M, da->fc + om, a->ln3 + o,
                            p->fc_w + (size_t)l * M * D, BN, D, M);
        R_(layernorm_backward)(dx2, g->ln3_w + l * D, g->ln3_b + l * D, da->ln3 + o, a->x2 + o, p->ln3_w + l * D,
                               a->ln3_mean + ost, a->ln3_rstd + ost, BN, D);
        // cross-attention: x2 = x1 + cproj(attn(cq(ln2(x1)), ckv(etok)))
        R_(add_inplace)(dx1, dx2, bnd);
        R_(matmul_backward)(da->catt + o, g->cproj_w + (size_t)l * D * D, g->cproj_b + l * D, dx2, a->catt + o,
                            p->cproj_w + (size_t)l * D * D, BN, D, D);
        R_(attention_backward)(da->cq + o, da->ckv + okv, da->ckv + okv + D, da->catt + o, a->catt + o, D,
                               a->catt_lse + olse, R_(catt_p)(m, l), a->cq + o, D, a->ckv + okv, 2 * D, a->ckv + okv + D,
                               2 * D, B, N, S, NH, hd, m->att_scratch, m->att_chunk, m->nthreads);
        R_(matmul_backward)(dekv, g->ckv_w + (size_t)l * 2 * D * D, g->ckv_b + l * 2 * D, da->ckv + okv, ekv,
                            p->ckv_w + (size_t)l * 2 * D * D, B * S, D, 2 * D);
        R_(matmul_backward)(da->ln2 + o, g->cq_w + (size_t)l * D * D, g->cq_b + l * D, da->cq + o, a->ln2 + o,
                            p->cq_w + (size_t)l * D * D, BN, D, D);
        R_(layernorm_backward)(dx1, g->ln2_w + l * D, g->ln2_b + l * D, da->ln2 + o, a->x1 + o, p->ln2_w + l * D,
                               a->ln2_mean + ost, a->ln2_rstd + ost, BN, D);
        // self-attention: x1 = x + attproj(attn(qkv(ln1(x))))
        R_(add_inplace)(dx, dx1, bnd);
        R_(matmul_backward)(da->att + o, g->attproj_w + (size_t)l * D * D, g->attproj_b + l * D, dx1, a->att + o,
                            p->attproj_w + (size_t)l * D * D, BN, D, D);
        real *dqkv = da->qkv + 3 * o;
        const real *qkv = a->qkv + 3 * o;
        R_(attention_backward)(dqkv, dqkv + D, dqkv + 2 * D, da->att + o, a->att + o, D, a->att_lse + olse, R_(att_p)(m, l),
                               qkv, 3 * D, qkv + D, 3 * D, qkv + 2 * D, 3 * D, B, N, N, NH, hd, m->att_scratch,
                               m->att_chunk, m->nthreads);
        R_(matmul_backward)(da->ln1 + o, g->qkv_w + (size_t)l * 3 * D * D, g->qkv_b + l * 3 * D, dqkv, a->ln1 + o,
                            p->qkv_w + (size_t)l * 3 * D * D, BN, D, 3 * D);
        R_(layernorm_backward)(dx, g->ln1_w + l * D, g->ln1_b + l * D, da->ln1 + o, x, p->ln1_w + l * D,
                               a->ln1_mean + ost, a->ln1_rstd + ost, BN, D);
    }
    // 6. expression-token LayerNorm, then the MLP (the code itself gets no gradient)
    if (c->expr_norm)
        R_(layernorm_backward)(da->etok, g->lne_w, g->lne_b, da->etokn, a->etok, p->lne_w, a->lne_mean, a->lne_rstd,
                               B * S, D);
    R_(matmul_backward)(da->e2r, g->expr3_w, g->expr3_b, da->etok, a->e2r, p->expr3_w, B, Hx, S * D);
    R_(relu_backward)(da->e2, a->e2, da->e2r, (size_t)B * Hx);
    R_(matmul_backward)(da->e1r, g->expr2_w, g->expr2_b, da->e2, a->e1r, p->expr2_w, B, Hx, Hx);
    R_(relu_backward)(da->e1, a->e1, da->e1r, (size_t)B * Hx);
    R_(matmul_backward)(NULL, g->expr1_w, g->expr1_b, da->e1, in->expr, p->expr1_w, B, E, Hx);
    // 5. position embedding: sum over samples and views, in a fixed order per table row
    int hwp = Hp * Wp;
#pragma omp parallel for
    for (int t = 0; t < hwp; t++)
        for (int r = 0; r < BV; r++)
            for (int k = 0; k < D; k++) g->pos_emb[(size_t)t * D + k] += da->x0[((size_t)r * hwp + t) * D + k];
    real *dtk = use_s ? da->tok2 : da->tok;
    R_(add_inplace)(dtk, da->x0, bnd);
    // 4. Sapiens projection: the token half of the concatenation flows back, the features do not
    if (use_s) {
        R_(matmul_backward)(da->sap_cat, g->sap_w, g->sap_b, da->tok2, a->sap_cat, p->sap_w, BN, D + CS, D);
#pragma omp parallel for
        for (int t = 0; t < BN; t++)
            for (int k = 0; k < D; k++) da->tok[(size_t)t * D + k] += da->sap_cat[(size_t)t * (D + CS) + k];
    }
    // 3. patch embedding (the inputs get no gradient)
    R_(matmul_backward)(NULL, g->patch_w, g->patch_b, da->tok, a->unfold, p->patch_w, BN, P * P * Cin, D);
}
