// avat3r_cuda.cu — the Avat3r network on the GPU: model/avat3r.c step by step with the kernels of
// model/cuda (fp32). Same buffers and layouts as the CPU model, so every activation and gradient can be
// compared with it tensor by tensor. The backward is the forward read in reverse.
#include <string.h>

#include "attention_cuda.h"
#include "avat3r_cuda.h"
#include "launch.h"
#include "layers_cuda.h"
#include "matmul_cuda.h"
#include "pixels_cuda.h"

// ----------------------------------------------------------------------------------------------
// glue kernels of the assembly (token concatenation, position embedding)

// cat[t, :] = [tok[t, :D] | sap[t, :CS]]
__global__ void concat_kernel(float *cat, const float *tok, const float *sap, int D, int CS, size_t n) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n) return;
    size_t t = e / (D + CS);
    int k = (int)(e % (D + CS));
    cat[e] = k < D ? tok[t * D + k] : sap[t * CS + k - D];
}

// dtok[t, k] += dcat[t, k] for k < D (the feature half gets no gradient)
__global__ void concat_backward_kernel(float *dtok, const float *dcat, int D, int CS, size_t n) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n) return;
    dtok[e] += dcat[e / D * (D + CS) + e % D];
}

// x0[t, k] = tok[t, k] + pos_emb[t mod hwp, k]
__global__ void pos_emb_kernel(float *x0, const float *tok, const float *pe, int hwp, int D, size_t n) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n) return;
    x0[e] = tok[e] + pe[(e / D % hwp) * D + e % D];
}

// dpe[t, k] += Σ_r dx0[r·hwp + t, k], rows r in order (the CPU's order): one thread per table element
__global__ void pos_emb_backward_kernel(float *dpe, const float *dx0, int hwp, int D, int BV) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)hwp * D) return;
    float s = dpe[e];
    for (int r = 0; r < BV; r++) s += dx0[(size_t)r * hwp * D + e];
    dpe[e] = s;
}

// ----------------------------------------------------------------------------------------------

static void point_tensors(float **ptrs, float *base, const size_t *sizes, int n) {
    for (int i = 0; i < n; i++) {
        ptrs[i] = sizes[i] ? base : NULL;
        base += sizes[i];
    }
}

extern "C" void avat3r_cuda_build(Avat3rCuda *m, const ModelConfig *cfg, int B) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->B = B;
    m->n_params = param_sizes(cfg, m->param_sizes);
    cudaCheck(cudaMalloc((void **)&m->params, sizeof(float) * m->n_params));
    cudaCheck(cudaMalloc((void **)&m->grads, sizeof(float) * m->n_params));
    cudaCheck(cudaMemset(m->grads, 0, sizeof(float) * m->n_params));
    point_tensors((float **)&m->p, m->params, m->param_sizes, NUM_PARAM_TENSORS);
    point_tensors((float **)&m->g, m->grads, m->param_sizes, NUM_PARAM_TENSORS);
    size_t as[NUM_ACT_TENSORS];
    mc_act_sizes(cfg, B, as);
    for (int i = 0; i < NUM_ACT_TENSORS; i++) m->n_acts += as[i];
    // every matmul operand is (part of) an activation, its gradient, a parameter tensor or the expression
    // code [B, E]
    m->max_operand = (size_t)B * cfg->expr_dim;
    for (int i = 0; i < NUM_ACT_TENSORS; i++) m->max_operand = as[i] > m->max_operand ? as[i] : m->max_operand;
    for (int i = 0; i < NUM_PARAM_TENSORS; i++)
        m->max_operand = m->param_sizes[i] > m->max_operand ? m->param_sizes[i] : m->max_operand;
    cudaCheck(cudaMalloc((void **)&m->acts, sizeof(float) * m->n_acts));
    cudaCheck(cudaMalloc((void **)&m->dacts, sizeof(float) * m->n_acts));
    cudaCheck(cudaMemset(m->acts, 0, sizeof(float) * m->n_acts));
    cudaCheck(cudaMemset(m->dacts, 0, sizeof(float) * m->n_acts));
    point_tensors((float **)&m->a, m->acts, as, NUM_ACT_TENSORS);
    point_tensors((float **)&m->da, m->dacts, as, NUM_ACT_TENSORS);
    cudaCheck(cudaMalloc((void **)&m->att_delta, sizeof(float) * B * cfg->heads * mc_tokens(cfg)));
    // the most rows any matmul's bias gradient sums over: the head's B·V·H·W pixels (tokens and the
    // upsampler's positions are fewer)
    matmul_cuda_setup((size_t)B * cfg->views_in * cfg->img_h * cfg->img_w);
}

extern "C" void avat3r_cuda_free(Avat3rCuda *m) {
    float *p[] = {m->params, m->grads, m->acts, m->dacts, m->att_delta};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
        if (p[i]) cudaCheck(cudaFree(p[i]));
    memset(m, 0, sizeof *m);
}

extern "C" void avat3r_cuda_set_params(Avat3rCuda *m, const float *host_params) {
    cudaCheck(cudaMemcpy(m->params, host_params, sizeof(float) * m->n_params, cudaMemcpyHostToDevice));
}

extern "C" void avat3r_cuda_get_params(const Avat3rCuda *m, float *host_params) {
    cudaCheck(cudaMemcpy(host_params, m->params, sizeof(float) * m->n_params, cudaMemcpyDeviceToHost));
}

extern "C" void avat3r_cuda_zero_grad(Avat3rCuda *m) {
    cudaCheck(cudaMemset(m->grads, 0, sizeof(float) * m->n_params));
    cudaCheck(cudaMemset(m->dacts, 0, sizeof(float) * m->n_acts));
}

extern "C" void avat3r_cuda_forward(Avat3rCuda *m, const Avat3rBatch *in) {
    const ModelConfig *c = &m->cfg;
    ParamTensors *p = &m->p;
    ActTensors *a = &m->a;
    int B = m->B, V = c->views_in, BV = B * V, H = c->img_h, W = c->img_w, P = c->patch, Cin = mc_cin(c);
    int Hp = mc_hp(c), Wp = mc_wp(c), N = mc_tokens(c), BN = B * N, D = c->width, NH = c->heads, hd = D / NH;
    int L = c->layers, M = c->mlp_ratio * D, S = c->expr_tokens, Hx = c->expr_hidden, E = c->expr_dim;
    int CS = c->sapiens_ch, use_d = c->use_dust3r, use_s = c->use_sapiens;
    size_t HW = (size_t)H * W, bnd = (size_t)BN * D;
    float eps = (float)c->ln_eps;

    // 1-2. Plücker rays and the per-pixel input [rgb | pos | plücker]
    plucker_forward_cuda(a->plucker, a->cam_o, in->w2c, in->K, BV, H, W);
    pix_in_forward_cuda(a->pix_in, in->rgb, use_d ? in->pos : NULL, a->plucker, (size_t)BV * HW, Cin);
    // 3. patchify = unfold + matmul
    unfold_forward_cuda(a->unfold, a->pix_in, BV, H, W, Cin, P);
    matmul_forward_cuda(a->tok, a->unfold, p->patch_w, p->patch_b, BN, P * P * Cin, D);
    // 4. Sapiens features: resample to the token grid, concatenate, project back to D
    const float *tk = a->tok;
    if (use_s) {
        resample_bilinear_forward_cuda(a->sap_rs, in->sap, BV, c->sapiens_h, c->sapiens_w, Hp, Wp, CS);
        size_t n = (size_t)BN * (D + CS);
        KLAUNCH(concat_kernel, blocks_for(n, 256), 256, 0, a->sap_cat, a->tok, a->sap_rs, D, CS, n);
        matmul_forward_cuda(a->tok2, a->sap_cat, p->sap_w, p->sap_b, BN, D + CS, D);
        tk = a->tok2;
    }
    // 5. position embedding, shared by all views
    KLAUNCH(pos_emb_kernel, blocks_for(bnd, 256), 256, 0, a->x0, tk, p->pos_emb, Hp * Wp, D, bnd);
    // 6. expression code -> S tokens
    matmul_forward_cuda(a->e1, in->expr, p->expr1_w, p->expr1_b, B, E, Hx);
    relu_forward_cuda(a->e1r, a->e1, (size_t)B * Hx);
    matmul_forward_cuda(a->e2, a->e1r, p->expr2_w, p->expr2_b, B, Hx, Hx);
    relu_forward_cuda(a->e2r, a->e2, (size_t)B * Hx);
    matmul_forward_cuda(a->etok, a->e2r, p->expr3_w, p->expr3_b, B, Hx, S * D);
    const float *ekv = a->etok;
    if (c->expr_norm) {
        layernorm_forward_cuda(a->etokn, a->lne_mean, a->lne_rstd, a->etok, p->lne_w, p->lne_b, B * S, D, eps);
        ekv = a->etokn;
    }
    // 7. transformer blocks
    for (int l = 0; l < L; l++) {
        const float *x = l == 0 ? a->x0 : a->x3 + (l - 1) * bnd;
        float *ln1 = a->ln1 + l * bnd, *qkv = a->qkv + l * 3 * bnd, *att = a->att + l * bnd, *x1 = a->x1 + l * bnd;
        float *ln2 = a->ln2 + l * bnd, *cq = a->cq + l * bnd, *catt = a->catt + l * bnd, *x2 = a->x2 + l * bnd;
        float *ckv = a->ckv + (size_t)l * B * S * 2 * D;
        float *ln3 = a->ln3 + l * bnd, *fc = a->fc + l * (size_t)BN * M, *fcg = a->fcg + l * (size_t)BN * M;
        float *x3 = a->x3 + l * bnd;
        size_t ost = (size_t)l * BN, olse = (size_t)l * B * NH * N;
        // self-attention over all views' tokens of a sample
        layernorm_forward_cuda(ln1, a->ln1_mean + ost, a->ln1_rstd + ost, x, p->ln1_w + l * D, p->ln1_b + l * D, BN,
                               D, eps);
        matmul_forward_cuda(qkv, ln1, p->qkv_w + (size_t)l * 3 * D * D, p->qkv_b + l * 3 * D, BN, D, 3 * D);
        attention_forward_cuda(att, D, a->att_lse + olse, qkv, 3 * D, qkv + D, 3 * D, qkv + 2 * D, 3 * D, B, N, N, NH,
                               hd);
        matmul_residual_forward_cuda(x1, x, att, p->attproj_w + (size_t)l * D * D, p->attproj_b + l * D, BN, D, D);
        // cross-attention to the expression tokens
        layernorm_forward_cuda(ln2, a->ln2_mean + ost, a->ln2_rstd + ost, x1, p->ln2_w + l * D, p->ln2_b + l * D, BN,
                               D, eps);
        matmul_forward_cuda(cq, ln2, p->cq_w + (size_t)l * D * D, p->cq_b + l * D, BN, D, D);
        matmul_forward_cuda(ckv, ekv, p->ckv_w + (size_t)l * 2 * D * D, p->ckv_b + l * 2 * D, B * S, D, 2 * D);
        attention_forward_cuda(catt, D, a->catt_lse + olse, cq, D, ckv, 2 * D, ckv + D, 2 * D, B, N, S, NH, hd);
        matmul_residual_forward_cuda(x2, x1, catt, p->cproj_w + (size_t)l * D * D, p->cproj_b + l * D, BN, D, D);
        // MLP
        layernorm_forward_cuda(ln3, a->ln3_mean + ost, a->ln3_rstd + ost, x2, p->ln3_w + l * D, p->ln3_b + l * D, BN,
                               D, eps);
        matmul_forward_cuda(fc, ln3, p->fc_w + (size_t)l * M * D, p->fc_b + l * M, BN, D, M);
        gelu_forward_cuda(fcg, fc, (size_t)BN * M);
        matmul_residual_forward_cuda(x3, x2, fcg, p->fcproj_w + (size_t)l * D * M, p->fcproj_b + l * D, BN, M, D);
    }
    // 8. final LayerNorm
    const float *xL = L == 0 ? a->x0 : a->x3 + (L - 1) * bnd;
    layernorm_forward_cuda(a->lnf, a->lnf_mean, a->lnf_rstd, xL, p->lnf_w, p->lnf_b, BN, D, eps);
    // 9. upsampler: Linear(C_k -> 4 C_{k+1}), PixelShuffle(2), GELU
    int U = mc_up_stages(c);
    const float *uin = a->lnf;
    for (int k = 0; k < U; k++) {
        int ci = mc_up_channels(c, k), co = mc_up_channels(c, k + 1), h = Hp << k, w = Wp << k;
        size_t boff, woff = mc_up_w_offset(c, k, &boff), ooff = mc_up_out_offset(c, BV, k), rows = mc_up_rows(c, BV, k);
        matmul_forward_cuda(a->up_tmp, uin, p->up_w + woff, p->up_b + boff, (int)rows, ci, 4 * co);
        pixel_shuffle_forward_cuda(a->up_pre + ooff, a->up_tmp, BV, h, w, co);
        gelu_forward_cuda(a->up_act + ooff, a->up_pre + ooff, rows * 4 * co);
        uin = a->up_act + ooff;
    }
    // 10-11. per-pixel head and Gaussian activations
    int cu = mc_up_channels(c, U);
    matmul_forward_cuda(a->raw, uin, p->head_w, p->head_b, (int)(BV * HW), cu, 14);
    GaussAct ga = gauss_act(c);
    gaussians_forward_cuda(a->gauss, a->raw, in->rgb, use_d ? in->pos : NULL, use_d ? in->conf : NULL, a->plucker,
                           a->cam_o, &ga, BV, (int)HW);
}

extern "C" void avat3r_cuda_backward(Avat3rCuda *m, const Avat3rBatch *in, const float *dgauss) {
    const ModelConfig *c = &m->cfg;
    ParamTensors *p = &m->p, *g = &m->g;
    ActTensors *a = &m->a, *da = &m->da;
    int B = m->B, V = c->views_in, BV = B * V, H = c->img_h, W = c->img_w, P = c->patch, Cin = mc_cin(c);
    int Hp = mc_hp(c), Wp = mc_wp(c), N = mc_tokens(c), BN = B * N, D = c->width, NH = c->heads, hd = D / NH;
    int L = c->layers, M = c->mlp_ratio * D, S = c->expr_tokens, Hx = c->expr_hidden, E = c->expr_dim;
    int CS = c->sapiens_ch, use_d = c->use_dust3r, use_s = c->use_sapiens;
    size_t HW = (size_t)H * W, bnd = (size_t)BN * D;
    const float *ekv = c->expr_norm ? a->etokn : a->etok; // the tokens every cross-attention reads
    float *dekv = c->expr_norm ? da->etokn : da->etok;

    // 11-10. Gaussian activations, head
    GaussAct ga = gauss_act(c);
    gaussians_backward_cuda(da->raw, dgauss, a->raw, use_d ? in->pos : NULL, use_d ? in->conf : NULL, a->plucker, &ga,
                            BV, (int)HW);
    int U = mc_up_stages(c), cu = mc_up_channels(c, U);
    const float *ulast = U == 0 ? a->lnf : a->up_act + mc_up_out_offset(c, BV, U - 1);
    float *dulast = U == 0 ? da->lnf : da->up_act + mc_up_out_offset(c, BV, U - 1);
    matmul_backward_cuda(dulast, g->head_w, g->head_b, da->raw, ulast, p->head_w, (int)(BV * HW), cu, 14);
    // 9. upsampler, last stage first
    for (int k = U - 1; k >= 0; k--) {
        int ci = mc_up_channels(c, k), co = mc_up_channels(c, k + 1), h = Hp << k, w = Wp << k;
        size_t boff, woff = mc_up_w_offset(c, k, &boff), ooff = mc_up_out_offset(c, BV, k), rows = mc_up_rows(c, BV, k);
        const float *uin = k == 0 ? a->lnf : a->up_act + mc_up_out_offset(c, BV, k - 1);
        float *duin = k == 0 ? da->lnf : da->up_act + mc_up_out_offset(c, BV, k - 1);
        shuffle_gelu_backward_cuda(da->up_tmp, a->up_pre + ooff, da->up_act + ooff, BV, h, w, co); // writes up_tmp
        matmul_backward_cuda(duin, g->up_w + woff, g->up_b + boff, da->up_tmp, uin, p->up_w + woff, (int)rows, ci,
                             4 * co);
    }
    // 8. final LayerNorm
    const float *xL = L == 0 ? a->x0 : a->x3 + (L - 1) * bnd;
    float *dxL = L == 0 ? da->x0 : da->x3 + (L - 1) * bnd;
    layernorm_backward_cuda(dxL, g->lnf_w, g->lnf_b, da->lnf, xL, p->lnf_w, a->lnf_mean, a->lnf_rstd, BN, D);
    if (m->grads_ready) m->grads_ready(m->grads_ready_ctx, 0); // head, upsampler, final norm
    // 7. blocks in reverse
    for (int l = L - 1; l >= 0; l--) {
        const float *x = l == 0 ? a->x0 : a->x3 + (l - 1) * bnd;
        float *dx = l == 0 ? da->x0 : da->x3 + (l - 1) * bnd;
        size_t o = l * bnd, om = l * (size_t)BN * M, okv = (size_t)l * B * S * 2 * D, ost = (size_t)l * BN;
        size_t olse = (size_t)l * B * NH * N;
        float *dx1 = da->x1 + o, *dx2 = da->x2 + o, *dx3 = da->x3 + o;
        // MLP: x3 = x2 + fcproj(gelu(fc(ln3(x2))))
        add_inplace_cuda(dx2, dx3, bnd);
        matmul_backward_cuda(da->fcg + om, g->fcproj_w + (size_t)l * D * M, g->fcproj_b + l * D, dx3, a->fcg + om,
                             p->fcproj_w + (size_t)l * D * M, BN, M, D);
        gelu_backward_cuda(da->fc + om, a->fc + om, da->fcg + om, (size_t)BN * M);
        matmul_backward_cuda(da->ln3 + o, g->fc_w + (size_t)l * M * D, g->fc_b + l * M, da->fc + om, a->ln3 + o,
                             p->fc_w + (size_t)l * M * D, BN, D, M);
        layernorm_backward_cuda(dx2, g->ln3_w + l * D, g->ln3_b + l * D, da->ln3 + o, a->x2 + o, p->ln3_w + l * D,
                                a->ln3_mean + ost, a->ln3_rstd + ost, BN, D);
        // cross-attention: x2 = x1 + cproj(attn(cq(ln2(x1)), ckv(etok)))
        add_inplace_cuda(dx1, dx2, bnd);
        matmul_backward_cuda(da->catt + o, g->cproj_w + (size_t)l * D * D, g->cproj_b + l * D, dx2, a->catt + o,
                             p->cproj_w + (size_t)l * D * D, BN, D, D);
        attention_backward_cuda(da->cq + o, da->ckv + okv, da->ckv + okv + D, da->catt + o, a->catt + o, D,
                                a->catt_lse + olse, a->cq + o, D, a->ckv + okv, 2 * D, a->ckv + okv + D, 2 * D, B, N,
                                S, NH, hd, m->att_delta);
        matmul_backward_cuda(dekv, g->ckv_w + (size_t)l * 2 * D * D, g->ckv_b + l * 2 * D, da->ckv + okv, ekv,
                             p->ckv_w + (size_t)l * 2 * D * D, B * S, D, 2 * D);
        matmul_backward_cuda(da->ln2 + o, g->cq_w + (size_t)l * D * D, g->cq_b + l * D, da->cq + o, a->ln2 + o,
                             p->cq_w + (size_t)l * D * D, BN, D, D);
        layernorm_backward_cuda(dx1, g->ln2_w + l * D, g->ln2_b + l * D, da->ln2 + o, a->x1 + o, p->ln2_w + l * D,
                                a->ln2_mean + ost, a->ln2_rstd + ost, BN, D);
        // self-attention: x1 = x + attproj(attn(qkv(ln1(x))))
        add_inplace_cuda(dx, dx1, bnd);
        matmul_backward_cuda(da->att + o, g->attproj_w + (size_t)l * D * D, g->attproj_b + l * D, dx1, a->att + o,
                             p->attproj_w + (size_t)l * D * D, BN, D, D);
        float *dqkv = da->qkv + 3 * o;
        const float *qkv = a->qkv + 3 * o;
        attention_backward_cuda(dqkv, dqkv + D, dqkv + 2 * D, da->att + o, a->att + o, D, a->att_lse + olse, qkv,
                                3 * D, qkv + D, 3 * D, qkv + 2 * D, 3 * D, B, N, N, NH, hd, m->att_delta);
        matmul_backward_cuda(da->ln1 + o, g->qkv_w + (size_t)l * 3 * D * D, g->qkv_b + l * 3 * D, dqkv, a->ln1 + o,
                             p->qkv_w + (size_t)l * 3 * D * D, BN, D, 3 * D);
        layernorm_backward_cuda(dx, g->ln1_w + l * D, g->ln1_b + l * D, da->ln1 + o, x, p->ln1_w + l * D,
                                a->ln1_mean + ost, a->ln1_rstd + ost, BN, D);
        if (m->grads_ready) m->grads_ready(m->grads_ready_ctx, 1 + (L - 1 - l)); // block l
    }
    // 6. expression-token LayerNorm, then the MLP (the code itself gets no gradient)
    if (c->expr_norm)
        layernorm_backward_cuda(da->etok, g->lne_w, g->lne_b, da->etokn, a->etok, p->lne_w, a->lne_mean, a->lne_rstd,
                                B * S, D);
    matmul_backward_cuda(da->e2r, g->expr3_w, g->expr3_b, da->etok, a->e2r, p->expr3_w, B, Hx, S * D);
    relu_backward_cuda(da->e2, a->e2, da->e2r, (size_t)B * Hx);
    matmul_backward_cuda(da->e1r, g->expr2_w, g->expr2_b, da->e2, a->e1r, p->expr2_w, B, Hx, Hx);
    relu_backward_cuda(da->e1, a->e1, da->e1r, (size_t)B * Hx);
    matmul_backward_cuda(NULL, g->expr1_w, g->expr1_b, da->e1, in->expr, p->expr1_w, B, E, Hx);
    // 5. position embedding: sum over samples and views, in a fixed order per table row
    int hwp = Hp * Wp;
    KLAUNCH(pos_emb_backward_kernel, blocks_for((size_t)hwp * D, 256), 256, 0, g->pos_emb, da->x0, hwp, D, BV);
    float *dtk = use_s ? da->tok2 : da->tok;
    add_inplace_cuda(dtk, da->x0, bnd);
    // 4. Sapiens projection: the token half of the concatenation flows back, the features do not
    if (use_s) {
        matmul_backward_cuda(da->sap_cat, g->sap_w, g->sap_b, da->tok2, a->sap_cat, p->sap_w, BN, D + CS, D);
        KLAUNCH(concat_backward_kernel, blocks_for(bnd, 256), 256, 0, da->tok, da->sap_cat, D, CS, bnd);
    }
    // 3. patch embedding (the inputs get no gradient)
    matmul_backward_cuda(NULL, g->patch_w, g->patch_b, da->tok, a->unfold, p->patch_w, BN, P * P * Cin, D);
    if (m->grads_ready) m->grads_ready(m->grads_ready_ctx, L + 1); // expression MLP, embeddings
}
