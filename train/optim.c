// optim.c — AdamW and the gradient norm (see optim.h). The per-element AdamW arithmetic is in
// optim_math.h, shared with the GPU (train/cuda/optim_cuda.cu).
#include "optim.h"
#include "optim_math.h"
#include "../common/wide.h"

#include <math.h>
#include <string.h>

int param_decays(int i) {
    const char *n = param_names[i];
    size_t l = strlen(n);
    return l > 2 && !strcmp(n + l - 2, "_w") && strncmp(n, "ln", 2) != 0;
}

// The AdamW and norm loops run in WIDE copies (common/wide.h): the same bits in either, since vector division
// and sqrt round correctly and nothing is contracted into FMA.
WIDE static void adamw_span(float *p, float *m, float *v, const float *g, long lo, long hi, float wd, AdamWConst c) {
#pragma omp simd
    for (long i = lo; i < hi; i++) adamw_elem(&p[i], &m[i], &v[i], g[i], wd, c);
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
#pragma omp parallel if (n >= 16384)
        {
            size_t lo, hi;
            thread_span((size_t)n, &lo, &hi);
            adamw_span(p, mk, vk, g, (long)lo, (long)hi, wd, c);
        }
        off += sizes[k];
    }
}

#define NORM_BLOCK 65536 // the sum's shape depends only on n, never on the thread count

// Σ g² over [lo, hi) in double: element i goes to lane i mod 8, the lanes are added in order at the end
// (a fixed shape, so the vector width of the CPU does not change the result)
WIDE static double block_sumsq(const float *g, size_t lo, size_t hi) {
    double lane[8] = {0};
    size_t i = lo;
    for (; i + 8 <= hi; i += 8)
#pragma omp simd
        for (int k = 0; k < 8; k++) lane[k] += (double)g[i + k] * g[i + k];
    for (int k = 0; i < hi; i++, k++) lane[k] += (double)g[i] * g[i];
    double s = 0;
    for (int k = 0; k < 8; k++) s += lane[k];
    return s;
}

double grad_global_norm(const float *grads, size_t n) {
    size_t nb = (n + NORM_BLOCK - 1) / NORM_BLOCK;
    double total = 0;
#pragma omp parallel
    {
        // each block's partial is computed by one thread in index order; blocks are then added in order
#pragma omp for ordered schedule(static)
        for (size_t b = 0; b < nb; b++) {
            size_t lo = b * NORM_BLOCK, hi = lo + NORM_BLOCK < n ? lo + NORM_BLOCK : n;
            double s = block_sumsq(grads, lo, hi);
#pragma omp ordered
            total += s;
        }
    }
    return sqrt(total);
}
