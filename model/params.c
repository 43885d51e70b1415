// params.c — the parameter table (docs/model.md): the single source of truth for sizes and order.
#include "params.h"

#include <stdio.h>
#include <string.h>

#include "../common/util.h"

const char *const param_names[NUM_PARAM_TENSORS] = {
    "patch_w", "patch_b", "sap_w", "sap_b", "pos_emb",                              // encoder
    "expr1_w", "expr1_b", "expr2_w", "expr2_b", "expr3_w", "expr3_b", "lne_w", "lne_b", // expression
    "ln1_w", "ln1_b", "qkv_w", "qkv_b", "attproj_w", "attproj_b",                   // blocks: self-attention,
    "ln2_w", "ln2_b", "cq_w", "cq_b", "ckv_w", "ckv_b", "cproj_w", "cproj_b",       //   cross-attention,
    "ln3_w", "ln3_b", "fc_w", "fc_b", "fcproj_w", "fcproj_b",                       //   MLP
    "lnf_w", "lnf_b", "up_w", "up_b", "head_w", "head_b"};                          // final norm, upsampler, head

ParamInit param_init_rule(int i) {
    const char *n = param_names[i];
    if (!strcmp(n, "attproj_w") || !strcmp(n, "cproj_w") || !strcmp(n, "fcproj_w")) return INIT_NORMAL_RESID;
    if (!strcmp(n, "lne_w") || !strcmp(n, "ln1_w") || !strcmp(n, "ln2_w") || !strcmp(n, "ln3_w") ||
        !strcmp(n, "lnf_w"))
        return INIT_ONE;
    if (!strcmp(n, "pos_emb")) return INIT_NORMAL;
    size_t len = strlen(n);
    return n[len - 1] == 'b' && n[len - 2] == '_' ? INIT_ZERO : INIT_NORMAL;
}

// Index of a tensor in the table by name, so that nothing below hard-codes the table's order.
static int idx(const char *name) {
    for (int i = 0; i < NUM_PARAM_TENSORS; i++)
        if (!strcmp(param_names[i], name)) return i;
    FATAL("no parameter tensor named %s", name);
}

const char *const param_group_names[NUM_PARAM_GROUPS] = {"encoder",    "expression", "blocks",
                                                           "final_norm", "upsampler",  "head"};

int param_group_index(int i) {
    if (i < idx("expr1_w")) return 0;
    if (i < idx("ln1_w")) return 1;
    if (i < idx("lnf_w")) return 2;
    if (i < idx("up_w")) return 3;
    if (i < idx("head_w")) return 4;
    return 5;
}

const char *param_group(int i) { return param_group_names[param_group_index(i)]; }

int grad_bucket_slices(const ModelConfig *c, int bucket, size_t offset[NUM_PARAM_TENSORS],
                       size_t count[NUM_PARAM_TENSORS]) {
    const int L = c->layers;
    if (bucket < 0 || bucket >= GRAD_BUCKETS(c)) FATAL("grad_bucket_slices: bucket %d of %d", bucket, GRAD_BUCKETS(c));
    size_t sizes[NUM_PARAM_TENSORS], off = 0;
    param_sizes(c, sizes);
    int n = 0;
    for (int i = 0; i < NUM_PARAM_TENSORS; off += sizes[i], i++) {
        if (!sizes[i]) continue;
        const int g = param_group_index(i);
        if (g == 2) { // per-layer tensors are [L, ...]: block l owns the l-th slice
            if (bucket < 1 || bucket > L) continue;
            if (sizes[i] % L) FATAL("grad_bucket_slices: %s has %zu values, not a multiple of layers = %d", param_names[i], sizes[i], L);
            const size_t per = sizes[i] / L, l = (size_t)(L - bucket);
            offset[n] = off + l * per, count[n++] = per;
        } else if ((g >= 3 && bucket == 0) || (g <= 1 && bucket == L + 1)) {
            offset[n] = off, count[n++] = sizes[i];
        }
    }
    return n;
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
        Hx * E, Hx, Hx * Hx, Hx, S * D * Hx, S * D, c->expr_norm ? D : 0, c->expr_norm ? D : 0,
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

int param_export_max(const ModelConfig *c) { return 18 + 20 * c->layers + 2 * mc_up_stages(c); }

static void px_add(ParamExport *e, int *n, size_t *off, const char *name, int64_t d0, int64_t d1) {
    ParamExport *x = &e[(*n)++];
    snprintf(x->name, sizeof x->name, "%s", name);
    x->ndim = d1 ? 2 : 1;
    x->shape[0] = d0, x->shape[1] = d1;
    x->offset = *off;
    x->count = (size_t)d0 * (size_t)(d1 ? d1 : 1);
    *off += x->count;
}

int param_export_entries(const ModelConfig *c, ParamExport *e) {
    size_t sz[NUM_PARAM_TENSORS], start[NUM_PARAM_TENSORS + 1];
    param_sizes(c, sz);
    start[0] = 0;
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) start[i + 1] = start[i] + sz[i];
    const int64_t D = c->width, M = (int64_t)c->mlp_ratio * D, p = c->patch, Hx = c->expr_hidden;
    const int64_t E = c->expr_dim, S = c->expr_tokens, CS = c->sapiens_ch, hwp = (int64_t)mc_hp(c) * mc_wp(c);
    int n = 0;
    size_t off = 0;
    char nm[96];
    px_add(e, &n, &off, "encoder.patch_embed.weight", D, p * p * mc_cin(c));
    px_add(e, &n, &off, "encoder.patch_embed.bias", D, 0);
    if (c->use_sapiens) {
        px_add(e, &n, &off, "encoder.sapiens_proj.weight", D, D + CS);
        px_add(e, &n, &off, "encoder.sapiens_proj.bias", D, 0);
    }
    px_add(e, &n, &off, "encoder.pos_embed", hwp, D);
    px_add(e, &n, &off, "expr_mlp.0.weight", Hx, E);
    px_add(e, &n, &off, "expr_mlp.0.bias", Hx, 0);
    px_add(e, &n, &off, "expr_mlp.2.weight", Hx, Hx);
    px_add(e, &n, &off, "expr_mlp.2.bias", Hx, 0);
    px_add(e, &n, &off, "expr_mlp.4.weight", S * D, Hx);
    px_add(e, &n, &off, "expr_mlp.4.bias", S * D, 0);
    if (c->expr_norm) {
        px_add(e, &n, &off, "expr_norm.weight", D, 0);
        px_add(e, &n, &off, "expr_norm.bias", D, 0);
    }
    // the 20 tensors from ln1_w on are stacked [L, ...]: block l's slice of tensor i starts at start[i] + l·sz[i]/L
    static const char *const blk[20] = {"norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias",
                                        "attn.proj.weight", "attn.proj.bias", "norm2.weight", "norm2.bias",
                                        "cross_attn.q.weight", "cross_attn.q.bias", "cross_attn.kv.weight",
                                        "cross_attn.kv.bias", "cross_attn.proj.weight", "cross_attn.proj.bias",
                                        "norm3.weight", "norm3.bias", "mlp.fc1.weight", "mlp.fc1.bias",
                                        "mlp.fc2.weight", "mlp.fc2.bias"};
    const int64_t rows[20] = {D, D, 3 * D, 3 * D, D, D, D, D, D, D, 2 * D, 2 * D, D, D, D, D, M, M, D, D};
    const int64_t cols[20] = {0, 0, D, 0, D, 0, 0, 0, D, 0, D, 0, D, 0, 0, 0, D, 0, M, 0};
    for (int l = 0; l < c->layers; l++)
        for (int k = 0; k < 20; k++) {
            snprintf(nm, sizeof nm, "blocks.%d.%s", l, blk[k]);
            const int i = idx("ln1_w") + k;
            size_t o = start[i] + (size_t)l * (sz[i] / c->layers);
            px_add(e, &n, &o, nm, rows[k], cols[k]);
        }
    off = start[idx("lnf_w")];
    px_add(e, &n, &off, "norm.weight", D, 0);
    px_add(e, &n, &off, "norm.bias", D, 0);
    const int U = mc_up_stages(c);
    size_t ow = start[idx("up_w")], ob = start[idx("up_b")];
    for (int k = 0; k < U; k++) {
        int64_t ci = mc_up_channels(c, k), co = mc_up_channels(c, k + 1);
        snprintf(nm, sizeof nm, "upsampler.%d.weight", k);
        px_add(e, &n, &ow, nm, 4 * co, ci);
        snprintf(nm, sizeof nm, "upsampler.%d.bias", k);
        px_add(e, &n, &ob, nm, 4 * co, 0);
    }
    off = start[idx("head_w")];
    px_add(e, &n, &off, "head.weight", 14, mc_up_channels(c, U));
    px_add(e, &n, &off, "head.bias", 14, 0);
    return n;
}
