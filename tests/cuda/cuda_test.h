// cuda_test.h — what the CUDA kernel tests share: CK(call) is the project's cudaCheck (file:line, the CUDA
// error and a hint on stderr, exit 1); random host data, device copies that start as NaN, and the
// comparison of a device tensor with its CPU oracle.
#ifndef AVAT3R_CUDA_TEST_H
#define AVAT3R_CUDA_TEST_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "../../common/rng.h"
#include "../../common/util.h"
#include "../../model/cuda/cuda_check.h"

#define CK(x) cudaCheck(x)

// n standard normal floats, stream s of the Philox key `key` (malloc'd); ct_rand: the tests' usual key
static inline float *ct_rand_keyed(size_t n, uint64_t key, uint64_t s) {
    float *x = (float *)mallocCheck(4 * (n ? n : 1));
    Rng r = rng_make(key, s);
    for (size_t i = 0; i < n; i++) x[i] = (float)rng_normal_at(&r, i);
    return x;
}
static inline float *ct_rand(size_t n, uint64_t s) { return ct_rand_keyed(n, 77, s); }

// a device copy of h[n]; without h, device memory poisoned with NaN (0xffffffff), so an element a
// kernel forgets to write fails the comparison
static inline float *ct_dev(const float *h, size_t n) {
    float *d;
    CK(cudaMalloc((void **)&d, 4 * (n ? n : 1)));
    if (h) CK(cudaMemcpy(d, h, 4 * n, cudaMemcpyHostToDevice));
    else CK(cudaMemset(d, 0xff, 4 * n));
    return d;
}

static inline float *ct_zero(size_t n) { // device zeros
    float *d = ct_dev(NULL, n);
    CK(cudaMemset(d, 0, 4 * n));
    return d;
}

// max |device − cpu| against tol · max |cpu|; any NaN fails. Prints one PASS/FAIL line; 1 when it passes.
static inline int ct_compare(const char *name, const float *cpu, const float *d, size_t n, double tol) {
    float *h = (float *)mallocCheck(4 * (n ? n : 1));
    CK(cudaMemcpy(h, d, 4 * n, cudaMemcpyDeviceToHost));
    double m = 0, s = 0;
    size_t nan = 0;
    for (size_t i = 0; i < n; i++) {
        if (h[i] != h[i] || cpu[i] != cpu[i]) nan++;
        else m = fmax(m, fabs((double)h[i] - cpu[i]));
        s = fmax(s, fabs(cpu[i]));
    }
    free(h);
    int ok = !nan && m <= tol * (s + 1e-30);
    printf("%s %s: max abs %.3e (rel %.2e of max %.2e), NaN %zu\n", ok ? "PASS" : "FAIL", name, m, m / (s + 1e-30), s,
           nan);
    return ok;
}

#endif
