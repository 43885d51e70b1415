// train_config.h — the training keys (beside the model's and the data's keys in the same .cfg files).
// Every knob of the loop is one of these; docs/training.md lists them with their defaults.
#ifndef AVAT3R_TRAIN_CONFIG_H
#define AVAT3R_TRAIN_CONFIG_H
#include <stddef.h>

#include "../common/config.h"
#include "../common/util.h"

typedef struct {
    int steps;                  // optimizer steps of the run (the schedule's horizon)
    int micro_batch, grad_accum; // samples per micro-batch; micro-batches per step
    double lr, lr_min_ratio;    // peak learning rate; cosine floor as a fraction of lr
    char lr_schedule[CFG_STR_MAX]; // "cosine" or "constant" (after the warm-up)
    int warmup_steps;           // linear warm-up from 0
    double beta1, beta2, adam_eps, weight_decay; // AdamW (decoupled decay; none on norms/biases/embeddings)
    double grad_clip;           // global L2 norm; 0 = off
    double w_l1, w_ssim, w_lpips; // loss = w_l1·L1 + w_ssim·(1 − SSIM) + w_lpips·LPIPS + w_mouth·L1_mouth
    double w_mouth;             // L1_mouth: the L1 over the targets' mouth regions (docs/losses.md); 0 = off
    int lpips_start;            // first step with the LPIPS term; −1 = at 85% of `steps`
    char lpips_net[CFG_STR_MAX];     // "vgg" or "alex"
    char lpips_weights[CFG_STR_MAX]; // weights file (docs/lpips.md); "" = no LPIPS term
    char background[CFG_STR_MAX];    // "r,g,b" in [0,1]: the rasterizer's background (= the packer's)
    int ckpt_every, ckpt_keep;  // checkpoint period (steps) and how many to keep
    int log_every;              // progress line period (the JSONL log gets every step)
    int val_every, val_samples; // validation period and held-out samples per validation
    int max_bad_steps;          // stop after this many bad steps (non-finite, or a loss spike) in a row
    double loss_spike;          // a step whose loss passes this × the running mean is skipped (0 = off)
    double max_skip_rate;       // stop when samples skipped for damaged data pass this fraction of those drawn
    int skip_rate_after;        // ... counted over at least this many samples (a budget at the start)
    int seed;                   // model init and data order
    int threads;                // OpenMP threads of the step; 0 = all cores
    int loader_threads;         // prefetch workers
    double dist_timeout;        // data-parallel runs: seconds a rank may make no progress before the run stops
    char precision[CFG_STR_MAX]; // GPU matmuls: fp32, tf32 or bf16 (model/cuda/matmul_cuda.h); the CPU is fp32
} TrainConfig;

CfgTable train_config_table(TrainConfig *c);
// Cross-key checks and parsing of the string keys. 0, or −1 with "key 'k': ..." in err.
int train_config_validate(const TrainConfig *c, char *err, size_t errlen);
void train_config_background(const TrainConfig *c, float bg[3]);
// First step of the LPIPS term (resolves −1).
int train_lpips_start(const TrainConfig *c);
// precision as 0 fp32, 1 tf32, 2 bf16 (the values of MatmulPrecision, model/cuda/matmul_cuda.h); −1 unknown.
int train_precision(const TrainConfig *c);
// Learning rate of step s (0-based): linear warm-up over warmup_steps, then constant or cosine down to
// lr·lr_min_ratio at `steps`.
double train_lr(const TrainConfig *c, long step);

#endif
