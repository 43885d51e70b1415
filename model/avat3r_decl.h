// avat3r_decl.h — the Avat3r model over `real` with names R_(...). No include guard on purpose:
// avat3r.h includes it once per precision. See docs/model.md for the math and the layouts.

typedef struct { // the 39 parameter tensors, in the order of docs/model.md (one buffer)
    real *patch_w, *patch_b, *sap_w, *sap_b, *pos_emb;                   // encoder
    real *expr1_w, *expr1_b, *expr2_w, *expr2_b, *expr3_w, *expr3_b;     // expression MLP
    real *lne_w, *lne_b;                                                 // expression-token LayerNorm
    real *ln1_w, *ln1_b, *qkv_w, *qkv_b, *attproj_w, *attproj_b;         // blocks, stacked [L, ...]
    real *ln2_w, *ln2_b, *cq_w, *cq_b, *ckv_w, *ckv_b, *cproj_w, *cproj_b;
    real *ln3_w, *ln3_b, *fc_w, *fc_b, *fcproj_w, *fcproj_b;
    real *lnf_w, *lnf_b, *up_w, *up_b, *head_w, *head_b;
} R_(ParamTensors);

typedef struct { // activations for a batch of B samples (BN = B·N tokens, BV = B·V views)
    real *plucker;           // [BV, H, W, 6]
    real *cam_o;             // [BV, 3]
    real *pix_in;            // [BV, H, W, Cin]
    real *unfold;            // [BN, p·p·Cin]
    real *tok;               // [BN, D] patch embedding
    real *sap_rs;            // [BN, CS] Sapiens features on the token grid (S only)
    real *sap_cat;           // [BN, D+CS] (S only)
    real *tok2;              // [BN, D] after the Sapiens projection (S only)
    real *x0;                // [BN, D] tokens + position embedding
    real *e1, *e1r, *e2, *e2r; // [B, Hx] expression MLP
    real *etok;              // [B, S, D] expression tokens
    real *etokn, *lne_mean, *lne_rstd; // [B, S, D], [B·S], [B·S] after their LayerNorm (expr_norm only)
    real *ln1, *ln1_mean, *ln1_rstd; // [L, BN, D], [L, BN], [L, BN]
    real *qkv;               // [L, BN, 3D]
    real *att, *att_lse;     // [L, BN, D], [L, B, NH, N]
    real *x1;                // [L, BN, D] residual after self-attention
    real *ln2, *ln2_mean, *ln2_rstd;
    real *cq;                // [L, BN, D]
    real *ckv;               // [L, B, S, 2D]
    real *catt, *catt_lse;   // [L, BN, D], [L, B, NH, N]
    real *x2;                // [L, BN, D] residual after cross-attention
    real *ln3, *ln3_mean, *ln3_rstd;
    real *fc, *fcg;          // [L, BN, M] before and after GELU
    real *x3;                // [L, BN, D] block output
    real *lnf, *lnf_mean, *lnf_rstd; // [BN, D], [BN], [BN]
    real *up_tmp;            // [largest stage] matmul output before the pixel shuffle
    real *up_pre, *up_act;   // all stages: [BV, 2h, 2w, C_{k+1}] before / after GELU
    real *raw;               // [BV·H·W, 14] head output
    real *gauss;             // [BV·H·W, 14] activated Gaussians
} R_(ActTensors);

typedef struct { // one batch of inputs (docs/model.md "Inputs"); NULL where a feature is off
    const real *rgb;  // [B, V, H, W, 3]
    const real *pos;  // [B, V, H, W, 3]
    const real *conf; // [B, V, H, W]
    const real *sap;  // [B, V, hs, ws, CS]
    const real *w2c;  // [B, V, 3, 4]
    const real *K;    // [B, V, 3, 3]
    const real *expr; // [B, E]
} R_(Avat3rBatch);

typedef struct {
    ModelConfig cfg;
    int B;                                   // batch size the activations are sized for
    size_t param_sizes[NUM_PARAM_TENSORS];
    size_t n_params;
    real *params, *grads;                    // [n_params] each
    R_(ParamTensors) p, g;                   // named views into params / grads
    size_t act_sizes[NUM_ACT_TENSORS], n_acts;
    size_t dact_clear[NUM_ACT_TENSORS];      // per tensor: act_sizes[i] when it gets a gradient, else 0
    real *acts, *dacts;                      // [n_acts] each: activations and their gradients
    R_(ActTensors) a, da;
    real *att_scratch;                       // per-thread attention chunk scratch
    real *att_p, *catt_p;                    // [L, B, NH, N, N], [L, B, NH, N, S] attention probabilities, or NULL
    int att_chunk, nthreads;
} R_(Avat3r);

// Allocates parameters, gradients, activations and scratch for batch size B. Nothing else allocates.
void R_(avat3r_build)(R_(Avat3r) *m, const ModelConfig *cfg, int B);
void R_(avat3r_free)(R_(Avat3r) *m);
// Deterministic init (docs/model.md): element i of tensor j is Philox(seed, j) draw i.
void R_(avat3r_init_params)(R_(Avat3r) *m, uint64_t seed);
// The same into a bare parameter buffer laid out by param_sizes() (no model needed).
void R_(params_init)(real *params, const ModelConfig *cfg, uint64_t seed);
// The Gaussian activations' constants of a config (docs/model.md step 11), for gaussians_forward/backward.
R_(GaussAct) R_(gauss_act)(const ModelConfig *c);
// Forward pass; the Gaussians are in m->a.gauss [B·V·H·W, 14], the raw head output in m->a.raw.
void R_(avat3r_forward)(R_(Avat3r) *m, const R_(Avat3rBatch) *in);
// Zeroes parameter gradients and activation gradients.
void R_(avat3r_zero_grad)(R_(Avat3r) *m);
// Clears only the activation gradients (per micro-batch; the parameter gradients accumulate).
void R_(avat3r_zero_dacts)(R_(Avat3r) *m);
// Backward from dL/dgauss [B·V·H·W, 14]; parameter gradients ACCUMULATE into m->grads.
// Must follow avat3r_forward on the same batch.
void R_(avat3r_backward)(R_(Avat3r) *m, const R_(Avat3rBatch) *in, const real *dgauss);
