// params.c — the parameter table (docs/model.md): the single source of truth for sizes and order.
#include "params.h"

#include <string.h>

const char *const param_names[NUM_PARAM_TENSORS] = {
    "patch_w", "patch_b", "sap_w",   "sap_b",     "pos_emb",  "expr1_w",  "expr1_b",  "expr2_w",
    "expr2_b", "expr3_w", "expr3_b", "ln1_w",     "ln1_b",    "qkv_w",    "qkv_b",    "attproj_w",
    "attproj_b", "ln2_w", "ln2_b",   "cq_w",      "cq_b",     "ckv_w",    "ckv_b",    "cproj_w",
    "cproj_b", "ln3_w",   "ln3_b",   "fc_w",      "fc_b",     "fcproj_w", "fcproj_b", "lnf_w",
    "lnf_b",   "up_w",    "up_b",    "head_w",    "head_b"};

ParamInit param_init_rule(int i) {
    const char *n = param_names[i];
    if (!strcmp(n, "attproj_w") || !strcmp(n, "cproj_w") || !strcmp(n, "fcproj_w")) return INIT_NORMAL_RESID;
    if (!strcmp(n, "ln1_w") || !strcmp(n, "ln2_w") || !strcmp(n, "ln3_w") || !strcmp(n, "lnf_w")) return INIT_ONE;
    if (!strcmp(n, "pos_emb")) return INIT_NORMAL;
    size_t len = strlen(n);
    return n[len - 1] == 'b' && n[len - 2] == '_' ? INIT_ZERO : INIT_NORMAL;
}

const char *param_group(int i) {
    if (i <= 4) return "encoder";
    if (i <= 10) return "expression";
    if (i <= 30) return "blocks";
    if (i <= 32) return "final_norm";
    if (i <= 34) return "upsampler";
    return "head";
}

size_t param_sizes(const ModelConfig *c, size_t s[NUM_PARAM_TENSORS]) {
    size_t D = c->width, L = c->layers, M = (size_t)c->mlp_ratio * D, p = c->patch;
    size_t Hx = c->expr_hidden, E = c->expr_dim, S = c->expr_tokens, CS = c->sapiens_ch;
    size_t hwp = (size_t)mc_hp(c) * mc_wp(c);
    size_t upw = 0, upb = 0;
    int U = mc_up_stages(c);
    for (int k = 0; k < U; k++) {
        size_t ci = mc_up_channels(c, k), co = mc_up_channels(c, k + 1);
        upw += 4 * co * ci;
        upb += 4 * co;
    }
    size_t cu = mc_up_channels(c, U);
    size_t v[NUM_PARAM_TENSORS] = {
        D * p * p * mc_cin(c), D, c->use_sapiens ? D * (D + CS) : 0, c->use_sapiens ? D : 0, hwp * D,
        Hx * E, Hx, Hx * Hx, Hx, S * D * Hx, S * D,
        L * D, L * D, L * 3 * D * D, L * 3 * D, L * D * D, L * D,
        L * D, L * D, L * D * D, L * D, L * 2 * D * D, L * 2 * D, L * D * D, L * D,
        L * D, L * D, L * M * D, L * M, L * D * M, L * D,
        D, D, upw, upb, 14 * cu, 14};
    size_t total = 0;
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) total += (s[i] = v[i]);
    return total;
}

double model_forward_flops(const ModelConfig *c) {
    double D = c->width, L = c->layers, M = (double)c->mlp_ratio * D, N = mc_tokens(c), S = c->expr_tokens;
    double pp = (double)c->patch * c->patch;
    double f = 2 * N * pp * mc_cin(c) * D;                           // patch embedding
    if (c->use_sapiens) f += 2 * N * (D + c->sapiens_ch) * D;       // Sapiens projection
    f += 2 * ((double)c->expr_dim * c->expr_hidden + (double)c->expr_hidden * c->expr_hidden +
              (double)c->expr_hidden * S * D);                      // expression MLP
    double blk = 2 * N * D * 3 * D + 2 * N * D * D                   // qkv, out proj
                 + 4 * N * N * D                                      // QKᵀ and PV (all heads)
                 + 2 * N * D * D + 2 * S * D * 2 * D + 4 * N * S * D // cross-attention
                 + 2 * N * D * D                                      // cross out proj
                 + 4 * N * D * M;                                     // MLP
    f += L * blk;
    double tokens = N; // upsampler: stage k runs on N·4^k positions
    for (int k = 0; k < mc_up_stages(c); k++) {
        f += 2 * tokens * mc_up_channels(c, k) * 4 * mc_up_channels(c, k + 1);
        tokens *= 4;
    }
    f += 2 * tokens * mc_up_channels(c, mc_up_stages(c)) * 14; // head
    return f;
}
