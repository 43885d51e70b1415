// step_cuda.h — one training step on one GPU (issue #7), the counterpart of train/step.h: upload the
// micro-batch → network forward (model/cuda) → split the Gaussians → rasterize the target views
// (render/cuda) → L1 + SSIM + LPIPS (train/cuda) → backward through the renderer and the network → global norm,
// clip, AdamW (train/cuda/optim_cuda). The CPU Trainer (train/step.c) is its oracle
// (tests/cuda/test_step_cuda.c: the same 20-step run on both, loss by loss).
//
// Everything lives on the device and is allocated in trainer_cuda_build; a step allocates nothing (the
// rasterizer's intersection pool grows, with a log line, only if a batch needs more than it was sized
// for). Host reads per micro-step: the intersection count (inside raster_cuda_forward) and the loss
// scalars; per update: the gradient norm (for the clip). Parameters and AdamW moments are copied in
// and out in the CPU layout, so checkpoints are the CPU's.
#ifndef AVAT3R_STEP_CUDA_H
#define AVAT3R_STEP_CUDA_H
#ifdef __cplusplus
extern "C" {
#endif
#include "../../model/cuda/avat3r_cuda.h"
#include "../../render/cuda/raster_cuda.h"
#include "../step.h" // TrainBatch, LossTerms
#include "lpips_cuda.h"
#include "ssim_cuda.h"

typedef struct {
    ModelConfig mc;
    TrainConfig tc;
    int B, V, Vt, H, W;
    size_t G;                 // Gaussians per sample = V·H·W
    Avat3rCuda m;
    RasterCuda r;
    SsimCuda ssim;
    int have_lpips;           // LPIPS weights given (the term is used when a micro-step asks for it)
    LpipsCuda lp;
    float *adam_m, *adam_v;   // [n_params] AdamW moments
    // the micro-batch on the device (shapes of TrainBatch; NULL where the model does not use a feature)
    Avat3rBatch in;           // points into inbuf
    float *inbuf;             // all inputs and targets in one buffer
    float *tgt_rgb, *tgt_w2c, *tgt_K; // [B, Vt, H, W, 3], [B, Vt, 12], [B, Vt, 9]
    float *bg;                // [3] background
    // the Gaussians split into the rasterizer's arrays, and their gradients
    float *means, *quats, *scales, *opac, *colors;      // [B·G, 3 | 4 | 3 | 1 | 3]
    float *dmeans, *dquats, *dscales, *dopac, *dcolors; // same shapes
    float *dimage;            // [B, Vt, H, W, 3] dLoss/dimage
    float *dgauss;            // [B·G, 14] dLoss/dGaussians
    double *scal;             // [2] L1 of the last micro-step, Σg² of the last update
    double *partial;          // [TRAIN_CUDA_PARTIALS] reduction scratch
    unsigned long long *n_bad; // [1] Gaussians with a NaN or Inf in the last micro-step
    long n_nonfinite_gauss;   // its host copy (the loss is then NaN, as on the CPU)
    int fault_inf_act;        // test hook (train/loop.h), as Trainer's: the output Gaussians' colours become +Inf
    // seconds per phase since build (device-synchronised at phase ends only when `timed`)
    int timed;
    double t_upload, t_net_fwd, t_render_fwd, t_loss, t_render_bwd, t_net_bwd, t_opt;
} TrainerCuda;

// Allocates everything on the current device (B = tc->micro_batch). lw may be NULL (no LPIPS term); the
// weights are copied to the device.
void trainer_cuda_build(TrainerCuda *t, const ModelConfig *mc, const TrainConfig *tc, const LpipsWeights *lw);
void trainer_cuda_free(TrainerCuda *t);
// host buffers [n_params] in the CPU layout; adam_m / adam_v may be NULL (= zero moments on set, skipped on get)
void trainer_cuda_set_state(TrainerCuda *t, const float *params, const float *adam_m, const float *adam_v);
void trainer_cuda_get_state(const TrainerCuda *t, float *params, float *adam_m, float *adam_v);
void trainer_cuda_zero_grad(TrainerCuda *t); // parameter gradients (once per optimizer step)
// b: HOST pointers, as for trainer_micro_step. Gradients accumulate × grad_scale. The LPIPS term is
// included when with_lpips and weights were given (else lpips is NaN), as on the CPU.
LossTerms trainer_cuda_micro_step(TrainerCuda *t, const TrainBatch *b, double grad_scale, int with_lpips);
// As trainer_update: global norm, clip, AdamW for step `step` (0-based); a non-finite norm changes nothing.
double trainer_cuda_update(TrainerCuda *t, long step, double *lr_out);
// Forward and render only: the target views end up in t->r.image (device) [B, Vt, H, W, 3].
void trainer_cuda_render(TrainerCuda *t, const TrainBatch *b);

// The network alone, for inference (avat3r animate --device cuda): the parameters copied in once, the
// inputs uploaded at every forward (in: HOST pointers, as Avat3rBatch; the Gaussians [B·V·H·W, 14] are
// copied back to gauss_host). Matmuls in fp32.
typedef struct {
    Avat3rCuda m;
    Avat3rBatch in; // device pointers into inbuf
    float *inbuf;
} NetCuda;
void net_cuda_build(NetCuda *n, const ModelConfig *mc, int B, const float *host_params);
void net_cuda_free(NetCuda *n);
void net_cuda_forward(NetCuda *n, const Avat3rBatch *in, float *gauss_host);

#ifdef __cplusplus
}
#endif
#endif
