// group_stats.c — per-group parameter, gradient and AdamW step sizes (see group_stats.h).
#include "group_stats.h"

#include <math.h>

void group_stats(const float *params, const float *grads, const float *adam_v, const size_t sizes[NUM_PARAM_TENSORS],
                 double beta2, double eps, uint64_t t, GroupStats out[NUM_PARAM_GROUPS]) {
    double pp[NUM_PARAM_GROUPS] = {0}, gg[NUM_PARAM_GROUPS] = {0}, ff[NUM_PARAM_GROUPS] = {0};
    size_t nn[NUM_PARAM_GROUPS] = {0}, off = 0;
    const double vscale = 1.0 / (1.0 - pow(beta2, (double)(t ? t : 1))); // AdamW's bias correction
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        const int k = param_group_index(i);
        const long n = (long)sizes[i];
        double p2 = 0, g2 = 0, fr = 0;
#pragma omp parallel for reduction(+ : p2, g2, fr) schedule(static)
        for (long j = 0; j < n; j++) {
            size_t e = off + (size_t)j;
            double sv = sqrt(adam_v[e] * vscale);
            p2 += (double)params[e] * params[e];
            g2 += (double)grads[e] * grads[e];
            fr += sv / (sv + eps);
        }
        pp[k] += p2, gg[k] += g2, ff[k] += fr, nn[k] += (size_t)n;
        off += sizes[i];
    }
    for (int k = 0; k < NUM_PARAM_GROUPS; k++) {
        double d = nn[k] ? (double)nn[k] : 1;
        out[k] = (GroupStats){param_group_names[k], nn[k], sqrt(pp[k] / d), sqrt(gg[k] / d), nn[k] ? ff[k] / d : NAN};
    }
}
