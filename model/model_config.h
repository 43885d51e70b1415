// model_config.h — the model configuration: every number of the network is a key (docs/model.md).
#ifndef AVAT3R_MODEL_CONFIG_H
#define AVAT3R_MODEL_CONFIG_H

#include <stddef.h>
#include "../common/config.h"

typedef struct {
    int views_in, views_target; // V inputs, targets rendered per sample
    int img_h, img_w;           // input image size
    int patch;                  // p, power of two
    int width, heads, layers;   // D, NH, L
    int mlp_ratio;              // MLP hidden = mlp_ratio * D
    int expr_dim, expr_tokens;  // E, S
    int expr_hidden;            // Hx
    int expr_norm;              // LayerNorm on the expression tokens (lne_w, lne_b)
    int sapiens_ch, sapiens_h, sapiens_w; // CS, hs, ws
    int use_sapiens, use_dust3r, random_timesteps;
    double ln_eps, init_std;
    double pos_offset_max;             // r (metres)
    double depth_near, depth_far;      // without DUSt3R (metres)
    double scale_bias, scale_min, scale_max;
    double conf_threshold;
} ModelConfig;

// The model's key table, for cfg_* (common/config.h).
CfgTable model_config_table(ModelConfig *c);
// Defaults (the tiny config), then a config file. Checks cross-key constraints. 0 or -1 + err.
int model_config_load(ModelConfig *c, const char *path, char *err, size_t errlen);
// The same file read with further key tables (data, training, ...) beside the model's: a key must
// belong to one of them. The extra tables get their defaults first.
int model_config_load_with(ModelConfig *c, const char *path, const CfgTable *extra, int n_extra, char *err,
                           size_t errlen);
// Parses canonical text (from a checkpoint); `name` is used in messages.
int model_config_from_text(ModelConfig *c, const char *text, const char *name, char *err, size_t errlen);
// Cross-key checks (divisibility, ranges that involve two keys). 0 or -1 + err.
int model_config_validate(const ModelConfig *c, char *err, size_t errlen);

// Derived sizes.
static inline int mc_cin(const ModelConfig *c) { return c->use_dust3r ? 12 : 9; }
static inline int mc_hp(const ModelConfig *c) { return c->img_h / c->patch; }
static inline int mc_wp(const ModelConfig *c) { return c->img_w / c->patch; }
static inline int mc_tokens(const ModelConfig *c) { return c->views_in * mc_hp(c) * mc_wp(c); }
static inline int mc_up_stages(const ModelConfig *c) {
    int u = 0;
    while ((1 << u) < c->patch) u++;
    return u;
}
static inline int mc_up_channels(const ModelConfig *c, int k) { return c->width >> k; } // C_k
#define GAUSS_DIM 14 // pos 3, rgb 3, scale 3, rot 4, opacity 1
// where each attribute starts in a Gaussian's GAUSS_DIM floats
#define GAUSS_OFF_POS 0
#define GAUSS_OFF_RGB 3
#define GAUSS_OFF_SCALE 6
#define GAUSS_OFF_ROT 9
#define GAUSS_OFF_OPAC 13

// Upsampler stage k (docs/model.md step 9): input positions BV·(Hp·2^k)·(Wp·2^k) with C_k channels; its
// matmul writes that many rows × 4·C_{k+1}, which the shuffle turns into 4× the positions × C_{k+1}.
size_t mc_up_rows(const ModelConfig *c, int BV, int k);
size_t mc_up_out_offset(const ModelConfig *c, int BV, int k);   // stage k's output in up_pre / up_act
size_t mc_up_w_offset(const ModelConfig *c, int k, size_t *b_off); // stage k's weights in up_w (bias: *b_off)

// The activation tensors of the model for batch size B, in the order of ActTensors (model/avat3r_decl.h):
// element counts, shared by the CPU model and the CUDA model (model/cuda/avat3r_cuda.cu), so both carve
// the same layout out of one buffer.
#define NUM_ACT_TENSORS 46
extern const char *const act_tensor_names[NUM_ACT_TENSORS]; // the ActTensors field names, for messages
void mc_act_sizes(const ModelConfig *c, int B, size_t sizes[NUM_ACT_TENSORS]);
// Floats of each input of a batch of B (Avat3rBatch's order: rgb, pos, conf, sap, w2c, K, expr); 0 for an
// input the config does not use (pos and conf without DUSt3R, sap without Sapiens).
#define NUM_INPUTS 7
void mc_input_sizes(const ModelConfig *c, int B, size_t sizes[NUM_INPUTS]);

#endif
