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
