// step.h — one training step on the CPU: network forward → Gaussians → render the target views → loss
// (L1, SSIM, LPIPS) → backward through the renderer and the network → clip → AdamW. Everything is
// allocated in trainer_build; the step itself allocates nothing (the rasterizer's intersection pool
// grows, with a log line, only if a batch ever needs more than it was sized for).
#ifndef AVAT3R_STEP_H
#define AVAT3R_STEP_H
#include "avat3r.h"
#include "loss_image.h"
#include "lpips.h"
#include "raster.h"
#include "train_config.h"

typedef struct {              // one micro-batch (pointers into a loader batch or a validation copy)
    Avat3rBatch in;           // model inputs (docs/model.md)
    const float *tgt_rgb;     // [B, Vt, H, W, 3] ground truth in [0,1]
    const float *tgt_w2c;     // [B, Vt, 3, 4] target cameras (head frame)
    const float *tgt_K;       // [B, Vt, 3, 3]
    const float *tgt_mouth;   // [B, Vt, H, W] 1 inside each target's mouth region, else 0; NULL = none
} TrainBatch;

typedef struct {
    double loss, l1, ssim, lpips; // ssim is the mean SSIM (the loss term is 1 − ssim); lpips NaN when off
    double l1_mouth;              // the mouth-region L1 (w_mouth's term); NaN when w_mouth = 0
} LossTerms;

typedef struct {
    ModelConfig mc;
    TrainConfig tc;
    int B, V, Vt, H, W;
    size_t G;                 // Gaussians per sample = V·H·W
    Avat3r m;
    Raster r;
    Ssim ssim;
    int have_lpips;           // weights loaded (the term is used from train_lpips_start on)
    LpipsWeights lw;
    Lpips lp;
    float bg[3];
    float *adam_m, *adam_v;   // [n_params] AdamW moments
    // the Gaussians split into the rasterizer's arrays, and their gradients
    float *means, *quats, *scales, *opac, *colors;      // [B, G, 3 | 4 | 3 | 1 | 3]
    float *dmeans, *dquats, *dscales, *dopac, *dcolors; // same shapes
    float *dimage;            // [B, Vt, H, W, 3] dLoss/dimage
    float *dgauss;            // [B·G, 14] dLoss/dGaussians (also the baseline's raw scratch)
    // seconds spent in each phase since trainer_build (or the caller's reset): the benchmark's breakdown
    double t_net_fwd, t_render_fwd, t_loss, t_render_bwd, t_net_bwd, t_opt;
    int fault_inf_act;        // test hook (train/loop.h): the output Gaussians' colours become +Inf
    long n_nonfinite_gauss;   // Gaussians with a NaN or Inf in the last micro-step (its loss is then NaN)
} Trainer;

// lw may be NULL (no LPIPS term); B = micro-batch size. Parameters are left uninitialised.
void trainer_build(Trainer *t, const ModelConfig *mc, const TrainConfig *tc, const LpipsWeights *lw);
void trainer_free(Trainer *t);
void trainer_zero_grad(Trainer *t); // parameter gradients (call once per optimizer step)
// Forward, render, loss, backward for one micro-batch. Parameter gradients accumulate, multiplied by
// grad_scale (1/grad_accum). The LPIPS term is included when with_lpips and weights are loaded.
LossTerms trainer_micro_step(Trainer *t, const TrainBatch *b, double grad_scale, int with_lpips);
// Global gradient norm, clipping, AdamW for step `step` (0-based; Adam's t = step + 1). A non-finite
// norm changes nothing and is returned as is (the caller counts a skipped step).
double trainer_update(Trainer *t, long step, double *lr_out);
// Forward and render only: the target views end up in t->r.image [B, Vt, H, W, 3].
void trainer_render(Trainer *t, const TrainBatch *b);
// The trivial baseline: one Gaussian per input pixel at the input position (DUSt3R point, or the mid-depth
// along the ray without DUSt3R) with the input colour, opacity 0.99 (times the DUSt3R confidence, as the
// network's own Gaussians), scale exp(scale_bias); rendered into t->r.image.
void trainer_render_baseline(Trainer *t, const TrainBatch *b);

#endif
