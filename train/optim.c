// optim.c — AdamW and the gradient norm (see optim.h). The per-element AdamW arithmetic is in
// optim_math.h, shared with the GPU (train/cuda/optim_cuda.cu).
#include "optim.h"
#include "optim_math.h"

#include <math.h>
#include <string.h>

int param_decays(int i) {
    const char *n = param_names[i];
    size_t l = strlen(n);
    return l > 2 && !strcmp(n + l - 2, "_w") && strncmp(n, "ln", 2) != 0;
}

void adamw_step(float *params, const float *grads, float *m, float *v, const size_t sizes[NUM_PARAM_TENSORS],
                const AdamWHyper *h, double grad_scale, uint64_t t) {
    const AdamWConst c = adamw_const(h->lr, h->beta1, h->beta2, h->eps, grad_scale, t); // optim_math.h
    size_t off = 0;
    for (int k = 0; k < NUM_PARAM_TENSORS; k++) {
        const float wd = param_decays(k) ? (float)h->weight_decay : 0.0f;
        float *p = params + off, *mk = m + off, *vk = v + off;
        const float *g = grads + off;
        const long n = (long)sizes[k];
#pragma omp parallel for simd schedule(static)
        for (long i = 0; i < n; i++) adamw_elem(&p[i], &mk[i], &vk[i], g[i], wd, c);
        off += sizes[k];
    }
}

#define NORM_BLOCK 65536 // the sum's shape depends only on n, never on the thread count

double grad_global_norm(const float *grads, size_t n) {
    size_t nb = (n + NORM_BLOCK - 1) / NORM_BLOCK;
    double total = 0;
#pragma omp parallel
    {
        // each block's partial is computed by one thread in index order; blocks are then added in order
#pragma omp for ordered schedule(static)
        for (size_t b = 0; b < nb; b++) {
            size_t lo = b * NORM_BLOCK, hi = lo + NORM_BLOCK < n ? lo + NORM_BLOCK : n;
            double s = 0;
            for (size_t i = lo; i < hi; i++) s += (double)grads[i] * grads[i];
#pragma omp ordered
            total += s;
        }
    }
    return sqrt(total);
}
