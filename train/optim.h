// optim.h — AdamW (Loshchilov & Hutter: decoupled weight decay) over the one parameter buffer, and the
// global gradient norm. Deterministic: the norm is summed in a fixed order whatever the thread count.
#ifndef AVAT3R_OPTIM_H
#define AVAT3R_OPTIM_H
#include <stddef.h>
#include <stdint.h>

#include "../model/params.h"

typedef struct {
    double lr, beta1, beta2, eps, weight_decay;
} AdamWHyper;

// Whether tensor i gets weight decay: weight matrices only — not LayerNorm gains, biases or the
// position embedding (the usual GPT/ViT rule).
int param_decays(int i);

// One AdamW step t (1-based) over all tensors: for each element
//   m = β1·m + (1−β1)·g ;  v = β2·v + (1−β2)·g²
//   p −= lr·( m/(1−β1ᵗ) / (sqrt(v/(1−β2ᵗ)) + eps) + wd·p )     (wd only where param_decays)
// g is scaled by grad_scale first (clipping and accumulation averaging). The per-element arithmetic is
// optim_math.h, shared with the GPU (adamw_update_cuda, train/cuda/optim_cuda.h).
void adamw_step(float *params, const float *grads, float *m, float *v, const size_t sizes[NUM_PARAM_TENSORS],
                const AdamWHyper *h, double grad_scale, uint64_t t);

// sqrt(Σ g²) in double; NaN/Inf when any gradient is. Fixed-order reduction over fixed-size blocks.
double grad_global_norm(const float *grads, size_t n);

#endif
