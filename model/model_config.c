// model_config.c — the model key table and the checks that involve more than one key.
#include "model_config.h"

#include <stdio.h>

#define K_INT(name, lo, hi, def, help) {#name, CFG_INT, offsetof(ModelConfig, name), lo, hi, def, help}
#define K_BOOL(name, def, help) {#name, CFG_BOOL, offsetof(ModelConfig, name), 0, 1, def, help}
#define K_FLT(name, lo, hi, def, help) {#name, CFG_FLOAT, offsetof(ModelConfig, name), lo, hi, def, help}

// Order matters: it is the canonical order written into checkpoints (docs/formats.md).
static const CfgKey model_keys[] = {
    K_INT(views_in, 1, 64, "4", "input views V"),
    K_INT(views_target, 1, 64, "4", "target views rendered per sample"),
    K_INT(img_h, 1, 4096, "64", "input image height (multiple of patch)"),
    K_INT(img_w, 1, 4096, "64", "input image width (multiple of patch)"),
    K_INT(patch, 1, 64, "8", "patch size p (power of two)"),
    K_INT(width, 1, 8192, "128", "transformer width D"),
    K_INT(heads, 1, 256, "4", "attention heads"),
    K_INT(layers, 0, 128, "4", "transformer blocks L"),
    K_INT(mlp_ratio, 1, 16, "4", "MLP hidden = mlp_ratio * D"),
    K_INT(expr_dim, 1, 4096, "256", "expression code size E"),
    K_INT(expr_tokens, 1, 256, "4", "expression tokens S"),
    K_INT(expr_hidden, 1, 8192, "256", "expression MLP hidden size"),
    K_BOOL(expr_norm, "false", "LayerNorm on the expression tokens before cross-attention"),
    K_INT(sapiens_ch, 1, 4096, "16", "Sapiens feature channels"),
    K_INT(sapiens_h, 1, 1024, "16", "Sapiens feature grid height"),
    K_INT(sapiens_w, 1, 1024, "16", "Sapiens feature grid width"),
    K_BOOL(use_sapiens, "true", "S: Sapiens features into the tokens"),
    K_BOOL(use_dust3r, "true", "D: DUSt3R position maps (input and position skip)"),
    K_BOOL(random_timesteps, "true", "T: inputs from random different frames (sampler)"),
    K_FLT(ln_eps, 1e-12, 1e-2, "1e-5", "LayerNorm epsilon"),
    K_FLT(init_std, 0, 1, "0.02", "initialisation std"),
    K_FLT(pos_offset_max, 0, 10, "0.05", "max position offset from the DUSt3R point (m)"),
    K_FLT(depth_near, 0, 100, "0.5", "depth range start without DUSt3R (m)"),
    K_FLT(depth_far, 0, 100, "1.5", "depth range end without DUSt3R (m)"),
    K_FLT(scale_bias, -20, 5, "-5", "added to the raw log-scale"),
    K_FLT(scale_min, 1e-8, 10, "1e-4", "smallest Gaussian scale (m)"),
    K_FLT(scale_max, 1e-8, 10, "0.05", "largest Gaussian scale (m)"),
    K_FLT(conf_threshold, 0, 1, "0.5", "confidence below which export drops a Gaussian"),
};

CfgTable model_config_table(ModelConfig *c) {
    CfgTable t = {model_keys, (int)(sizeof model_keys / sizeof model_keys[0]), c};
    return t;
}

int model_config_validate(const ModelConfig *c, char *err, size_t errlen) {
#define BAD(...) do { snprintf(err, errlen, __VA_ARGS__); return -1; } while (0)
    if (c->patch & (c->patch - 1)) BAD("key 'patch': %d is not a power of two", c->patch);
    if (c->img_h % c->patch || c->img_w % c->patch)
        BAD("keys 'img_h'/'img_w': %dx%d is not a multiple of patch %d", c->img_h, c->img_w, c->patch);
    if (c->width % c->heads) BAD("key 'heads': width %d is not divisible by heads %d", c->width, c->heads);
    int u = mc_up_stages(c);
    if (c->width % (1 << u))
        BAD("key 'width': %d must be divisible by 2^%d (the upsampler halves the channels log2(patch) times)",
            c->width, u);
    if (c->depth_far <= c->depth_near) BAD("key 'depth_far': %g must exceed depth_near %g", c->depth_far, c->depth_near);
    if (c->scale_max <= c->scale_min) BAD("key 'scale_max': %g must exceed scale_min %g", c->scale_max, c->scale_min);
    return 0;
#undef BAD
}

int model_config_load(ModelConfig *c, const char *path, char *err, size_t errlen) {
    return model_config_load_with(c, path, NULL, 0, err, errlen);
}

int model_config_load_with(ModelConfig *c, const char *path, const CfgTable *extra, int n_extra, char *err,
                           size_t errlen) {
    CfgTable t[8];
    if (n_extra > 7) n_extra = 7;
    t[0] = model_config_table(c);
    for (int i = 0; i < n_extra; i++) t[1 + i] = extra[i];
    if (cfg_defaults(t, 1 + n_extra, err, errlen)) return -1;
    if (cfg_load_file(path, t, 1 + n_extra, err, errlen)) return -1;
    if (model_config_validate(c, err, errlen)) {
        // prefix the file so the user knows where to fix it
        char tmp[1024];
        snprintf(tmp, sizeof tmp, "%s: %s", path, err);
        snprintf(err, errlen, "%s", tmp);
        return -1;
    }
    return 0;
}

int model_config_from_text(ModelConfig *c, const char *text, const char *name, char *err, size_t errlen) {
    CfgTable t = model_config_table(c);
    if (cfg_defaults(&t, 1, err, errlen)) return -1;
    if (cfg_load_text(text, name, &t, 1, err, errlen)) return -1;
    return model_config_validate(c, err, errlen);
}

size_t mc_up_rows(const ModelConfig *c, int BV, int k) { return (size_t)BV * mc_hp(c) * mc_wp(c) << (2 * k); }

size_t mc_up_out_offset(const ModelConfig *c, int BV, int k) {
    size_t off = 0;
    for (int j = 0; j < k; j++) off += mc_up_rows(c, BV, j) * 4 * mc_up_channels(c, j + 1);
    return off;
}

size_t mc_up_w_offset(const ModelConfig *c, int k, size_t *b_off) {
    size_t w = 0, b = 0;
    for (int j = 0; j < k; j++) {
        w += (size_t)4 * mc_up_channels(c, j + 1) * mc_up_channels(c, j);
        b += (size_t)4 * mc_up_channels(c, j + 1);
    }
    *b_off = b;
    return w;
}

const char *const act_tensor_names[NUM_ACT_TENSORS] = {
    "plucker", "cam_o", "pix_in", "unfold", "tok", "sap_rs", "sap_cat", "tok2", "x0", "e1", "e1r", "e2", "e2r",
    "etok", "etokn", "lne_mean", "lne_rstd", "ln1", "ln1_mean", "ln1_rstd", "qkv", "att", "att_lse", "x1", "ln2",
    "ln2_mean", "ln2_rstd", "cq", "ckv", "catt", "catt_lse", "x2", "ln3", "ln3_mean", "ln3_rstd", "fc", "fcg", "x3",
    "lnf", "lnf_mean", "lnf_rstd", "up_tmp", "up_pre", "up_act", "raw", "gauss"};

void mc_input_sizes(const ModelConfig *c, int B, size_t s[NUM_INPUTS]) {
    size_t BV = (size_t)B * c->views_in, HW = (size_t)c->img_h * c->img_w;
    s[0] = BV * HW * 3;
    s[1] = c->use_dust3r ? BV * HW * 3 : 0;
    s[2] = c->use_dust3r ? BV * HW : 0;
    s[3] = c->use_sapiens ? BV * c->sapiens_h * c->sapiens_w * c->sapiens_ch : 0;
    s[4] = BV * 12, s[5] = BV * 9, s[6] = (size_t)B * c->expr_dim;
}

void mc_act_sizes(const ModelConfig *c, int B, size_t s[NUM_ACT_TENSORS]) {
    size_t BV = (size_t)B * c->views_in, HW = (size_t)c->img_h * c->img_w, N = mc_tokens(c), BN = B * N;
    size_t D = c->width, L = c->layers, M = (size_t)c->mlp_ratio * D, NH = c->heads, S = c->expr_tokens;
    size_t Hx = c->expr_hidden, CS = c->use_sapiens ? c->sapiens_ch : 0, pp = (size_t)c->patch * c->patch;
    int U = mc_up_stages(c);
    size_t up_total = mc_up_out_offset(c, (int)BV, U), up_max = 0;
    for (int k = 0; k < U; k++) {
        size_t sz = mc_up_rows(c, (int)BV, k) * 4 * mc_up_channels(c, k + 1);
        up_max = sz > up_max ? sz : up_max;
    }
    size_t v[] = {BV * HW * 6, BV * 3, BV * HW * mc_cin(c), BN * pp * mc_cin(c), BN * D,
                  BN * CS, CS ? BN * (D + CS) : 0, CS ? BN * D : 0, BN * D,
                  B * Hx, B * Hx, B * Hx, B * Hx, B * S * D,
                  c->expr_norm ? B * S * D : 0, c->expr_norm ? B * S : 0, c->expr_norm ? B * S : 0,
                  L * BN * D, L * BN, L * BN, L * BN * 3 * D, L * BN * D, L * B * NH * N, L * BN * D,
                  L * BN * D, L * BN, L * BN, L * BN * D, L * B * S * 2 * D, L * BN * D, L * B * NH * N, L * BN * D,
                  L * BN * D, L * BN, L * BN, L * BN * M, L * BN * M, L * BN * D,
                  BN * D, BN, BN, up_max, up_total, up_total, BV * HW * 14, BV * HW * 14};
    _Static_assert(sizeof v / sizeof v[0] == NUM_ACT_TENSORS, "act table out of sync with NUM_ACT_TENSORS");
    for (int i = 0; i < NUM_ACT_TENSORS; i++) s[i] = v[i];
}
