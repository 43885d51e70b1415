// train_config.c — the training key table, its checks, and the learning-rate schedule.
#include "train_config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define K_INT(name, lo, hi, def, help) {#name, CFG_INT, offsetof(TrainConfig, name), lo, hi, def, help}
#define K_FLT(name, lo, hi, def, help) {#name, CFG_FLOAT, offsetof(TrainConfig, name), lo, hi, def, help}
#define K_STR(name, def, help) {#name, CFG_STRING, offsetof(TrainConfig, name), 0, 0, def, help}

// Defaults follow shared/reference/avat3r_paper.md §5.5 where the paper states a value (loss weights,
// late LPIPS) and common practice for large reconstruction models where it does not (AdamW, warm-up,
// cosine, clip 1.0). Order is the canonical order written into training checkpoints.
static const CfgKey train_keys[] = {
    K_INT(steps, 1, 1e9, "1000", "optimizer steps (the schedule's horizon)"),
    K_INT(micro_batch, 1, 64, "1", "samples per micro-batch"),
    K_INT(grad_accum, 1, 4096, "1", "micro-batches accumulated per optimizer step"),
    K_FLT(lr, 0, 1, "3e-4", "peak learning rate"),
    K_FLT(lr_min_ratio, 0, 1, "0.1", "cosine floor as a fraction of lr"),
    K_STR(lr_schedule, "cosine", "after the warm-up: cosine or constant"),
    K_INT(warmup_steps, 0, 1e9, "100", "linear warm-up steps"),
    K_FLT(beta1, 0, 0.999999, "0.9", "AdamW beta1"),
    K_FLT(beta2, 0, 0.999999, "0.95", "AdamW beta2"),
    K_FLT(adam_eps, 1e-30, 1, "1e-8", "AdamW epsilon"),
    K_FLT(weight_decay, 0, 10, "0.05", "decoupled weight decay (matrices only)"),
    K_FLT(grad_clip, 0, 1e9, "1.0", "clip the global gradient norm to this (0 = off)"),
    K_FLT(w_l1, 0, 1e6, "0.8", "weight of the L1 term"),
    K_FLT(w_ssim, 0, 1e6, "0.2", "weight of the 1 - SSIM term"),
    K_FLT(w_lpips, 0, 1e6, "0.01", "weight of the LPIPS term"),
    K_FLT(w_mouth, 0, 1e6, "0", "weight of the mouth-region L1 term (needs part labels in the shards; 0 = off)"),
    K_INT(lpips_start, -1, 1e9, "-1", "first step with LPIPS (-1 = 85% of steps)"),
    K_STR(lpips_net, "vgg", "LPIPS backbone: vgg or alex"),
    K_STR(lpips_weights, "", "LPIPS weights file (tools/convert_lpips.py); empty = no LPIPS term"),
    K_STR(background, "1,1,1", "render background r,g,b in [0,1] (the packer's --background)"),
    K_INT(ckpt_every, 1, 1e9, "500", "checkpoint every N steps (and at the end)"),
    K_INT(ckpt_keep, 1, 1000, "3", "checkpoints kept in the run folder"),
    K_INT(log_every, 1, 1e9, "10", "progress line every N steps"),
    K_INT(val_every, 0, 1e9, "200", "validation every N steps (0 = only at the end)"),
    K_INT(val_samples, 0, 64, "4", "held-out samples per validation"),
    K_INT(max_bad_steps, 1, 1e6, "10", "stop after this many bad steps (non-finite, or loss spikes) in a row"),
    K_FLT(loss_spike, 0, 1e9, "0", "skip a step whose loss is above this x the running mean of good steps (0 = off)"),
    K_FLT(max_skip_rate, 0, 1, "0.01", "stop when samples skipped for damaged data pass this fraction of those drawn"),
    K_INT(skip_rate_after, 0, 1e9, "1000", "max_skip_rate counts over at least this many samples"),
    K_INT(seed, 0, 2147483647, "1", "model initialisation and data order"),
    K_INT(threads, 0, 1024, "0", "OpenMP threads (0 = all cores)"),
    K_INT(loader_threads, 1, 64, "2", "data prefetch threads"),
    K_FLT(dist_timeout, 1, 86400, "300", "several ranks: seconds without progress (connecting, a collective) before "
          "a rank counts as dead or hung and the run stops; must exceed rank 0's validation + checkpoint time"),
    K_STR(precision, "fp32", "GPU (--device cuda) matmuls: fp32, tf32 (tensor cores, 10-bit inputs) or bf16 (bf16 "
          "operands, fp32 accumulation, fp32 master weights); the CPU always computes in fp32"),
};

CfgTable train_config_table(TrainConfig *c) {
    CfgTable t = {train_keys, (int)(sizeof train_keys / sizeof train_keys[0]), c};
    return t;
}

static int parse_bg(const char *s, float bg[3]) {
    double v[3];
    char tail;
    if (sscanf(s, "%lf,%lf,%lf%c", &v[0], &v[1], &v[2], &tail) != 3) return -1;
    for (int k = 0; k < 3; k++) {
        if (!(v[k] >= 0 && v[k] <= 1)) return -1;
        bg[k] = (float)v[k];
    }
    return 0;
}

int train_config_validate(const TrainConfig *c, char *err, size_t errlen) {
    float bg[3];
    if (strcmp(c->lr_schedule, "cosine") && strcmp(c->lr_schedule, "constant"))
        return error_set(err, errlen, "key 'lr_schedule': '%s' is not cosine or constant", c->lr_schedule);
    if (strcmp(c->lpips_net, "vgg") && strcmp(c->lpips_net, "alex"))
        return error_set(err, errlen, "key 'lpips_net': '%s' is not vgg or alex", c->lpips_net);
    if (parse_bg(c->background, bg))
        return error_set(err, errlen, "key 'background': '%s' is not r,g,b with each in [0,1]", c->background);
    if (train_precision(c) < 0)
        return error_set(err, errlen, "key 'precision': '%s' is not fp32, tf32 or bf16", c->precision);
    return 0;
}

int train_precision(const TrainConfig *c) {
    const char *names[3] = {"fp32", "tf32", "bf16"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(c->precision, names[i])) return i;
    return -1;
}

void train_config_background(const TrainConfig *c, float bg[3]) {
    if (parse_bg(c->background, bg)) bg[0] = bg[1] = bg[2] = 1;
}

int train_lpips_start(const TrainConfig *c) {
    return c->lpips_start >= 0 ? c->lpips_start : (int)floor(0.85 * c->steps);
}

double train_lr(const TrainConfig *c, long step) {
    if (step < c->warmup_steps) return c->lr * (double)(step + 1) / c->warmup_steps;
    if (!strcmp(c->lr_schedule, "constant")) return c->lr;
    long span = c->steps - c->warmup_steps;
    double t = span > 1 ? (double)(step - c->warmup_steps) / (span - 1) : 1.0;
    if (t > 1) t = 1;
    double lo = c->lr * c->lr_min_ratio;
    return lo + 0.5 * (c->lr - lo) * (1 + cos(M_PI * t));
}
