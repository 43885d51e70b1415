// group_stats.h — per parameter group (param_group(): encoder, expression, blocks, final_norm, upsampler,
// head) the sizes that tell whether a part of the network learns: the RMS of its parameters, of the last
// step's gradients, and how much of AdamW's step it gets. AdamW divides by √v̂ + eps, so a group whose
// gradients are small against adam_eps moves at only √v̂/(√v̂ + eps) of the learning rate (the expression
// MLP early in the demo run: docs/training.md "Expression").
#ifndef AVAT3R_GROUP_STATS_H
#define AVAT3R_GROUP_STATS_H
#include <stddef.h>
#include <stdint.h>

#include "../model/params.h"

typedef struct {
    const char *name;  // param_group_names[] of its index
    size_t n;          // elements (0: the config has none, e.g. no Sapiens)
    double param_rms;  // sqrt(mean p²)
    double grad_rms;   // sqrt(mean g²) of the gradient as accumulated, before clipping
    double step_frac;  // mean of √v̂/(√v̂ + eps), v̂ = v/(1 − β2ᵗ): 1 = the full AdamW step, → 0 = eps-bound
} GroupStats;

// Fills out[NUM_PARAM_GROUPS] in the order above from the one parameter, gradient and AdamW second-moment
// buffers laid out by sizes; t is the number of AdamW steps taken (≥ 1).
void group_stats(const float *params, const float *grads, const float *adam_v, const size_t sizes[NUM_PARAM_TENSORS],
                 double beta2, double eps, uint64_t t, GroupStats out[NUM_PARAM_GROUPS]);

#endif
