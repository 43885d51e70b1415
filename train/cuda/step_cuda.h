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
#include <cuda_runtime_api.h> // cudaStream_t, cudaEvent_t

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
    // the micro-batch on the device (shapes of TrainBatch; NULL where the model does not use a feature):
    // two slots, so that the next micro-batch's upload (copy_stream, from page-locked host memory) runs
    // while the kernels of this one run on the default stream
    Avat3rBatch in;           // points into the slot in use
    float *tgt_rgb, *tgt_w2c, *tgt_K; // [B, Vt, H, W, 3], [B, Vt, 12], [B, Vt, 9], same slot
    float *tgt_mouth;         // [B, Vt, H, W] (w_mouth > 0), same slot
    float *inbuf[2];          // device: all inputs and targets of a micro-batch, fields back to back
    float *pinned[2];         // host, page-locked: each slot's staging copy (same layout)
    size_t in_floats;         // floats per slot
    cudaStream_t copy_stream; // non-blocking: it waits for the default stream only where told to
    cudaEvent_t uploaded[2];  // on copy_stream, after a slot's upload
    cudaEvent_t released[2];  // on the default stream, after the last kernel that reads a slot's batch
    int staged;               // the slot of a staged micro-batch not yet launched (-1: none)
    int next_slot;            // the slot the next trainer_cuda_stage fills
    int launched;             // 1 between trainer_cuda_micro_launch and _finish
    int launched_lpips;       // that micro-step includes the LPIPS term
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
// = trainer_cuda_stage + trainer_cuda_micro_launch + trainer_cuda_micro_finish.
LossTerms trainer_cuda_micro_step(TrainerCuda *t, const TrainBatch *b, double grad_scale, int with_lpips);
// The same in three parts, so that the caller can fetch and stage the next micro-batch while the device
// works on this one (train/loop.c):
// stage: b (HOST) → the free slot's page-locked buffer (a host copy: b may be reused on return) → an
//   asynchronous upload on copy_stream. One staged micro-batch at a time.
// launch: queues the whole micro-step on the staged batch (after its upload); returns once the work is
//   queued (the host waits inside only for the rasterizer's intersection count).
// finish: waits for the device and returns the loss terms (sets n_nonfinite_gauss).
void trainer_cuda_stage(TrainerCuda *t, const TrainBatch *b);
void trainer_cuda_micro_launch(TrainerCuda *t, double grad_scale, int with_lpips);
LossTerms trainer_cuda_micro_finish(TrainerCuda *t);
// As trainer_update: global norm, clip, AdamW for step `step` (0-based); a non-finite norm changes nothing.
double trainer_cuda_update(TrainerCuda *t, long step, double *lr_out);
// Forward and render only: the target views end up in t->r.image (device) [B, Vt, H, W, 3]. A synchronous
// upload into the slot that holds no staged micro-batch, so a staged one survives it.
void trainer_cuda_render(TrainerCuda *t, const TrainBatch *b);

// The network alone, for inference (avat3r animate --device cuda): the parameters copied in once, the
// inputs uploaded at a forward (in: HOST pointers, as Avat3rBatch; the Gaussians [B·V·H·W, 14] are
// copied back to gauss_host) — all of them, or with expr_only just the expression code, when the caller
// knows the views are those of the last forward (an animation: ~155 MB per frame less at the paper
// config). Matmuls in fp32.
typedef struct {
    Avat3rCuda m;
    Avat3rBatch in; // device pointers into inbuf
    float *inbuf;
} NetCuda;
void net_cuda_build(NetCuda *n, const ModelConfig *mc, int B, const float *host_params);
void net_cuda_free(NetCuda *n);
void net_cuda_forward(NetCuda *n, const Avat3rBatch *in, float *gauss_host, int expr_only);

#ifdef __cplusplus
}
#endif
#endif
