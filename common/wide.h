// wide.h — CPU loops built twice, generic and AVX2 + FMA, and the per-thread span they run on.
// WIDE on a function makes GCC build a generic x86-64 copy and an x86-64-v3 copy (AVX2 + FMA, libmvec's
// 8-wide expf instead of SSE's 4) and pick one at load time by the CPU (target_clones); the release build
// itself stays generic. Other compilers and CPUs get the one generic copy. ISO C (-std=c11) does not
// contract into FMA, so arithmetic written out in a loop gives the same bits in either copy (a library call
// such as libmvec's expf may round differently in its SSE and AVX2 versions).
#ifndef AVAT3R_WIDE_H
#define AVAT3R_WIDE_H
#include <stddef.h>
#include <omp.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(AVAT3R_NO_CLONES)
#define WIDE __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define WIDE
#endif

// This thread's part of [0, n) inside a parallel region: contiguous, cut at multiples of 16 elements, so an
// element's arithmetic (vector body or remainder) does not depend on the thread count.
static inline void thread_span(size_t n, size_t *lo, size_t *hi) {
    size_t nt = (size_t)omp_get_num_threads(), t = (size_t)omp_get_thread_num();
    size_t per = ((n + nt - 1) / nt + 15) & ~(size_t)15;
    *lo = t * per < n ? t * per : n;
    *hi = *lo + per < n ? *lo + per : n;
}

#endif
