// rng.h — counter-based random numbers (Philox4x32-10, Salmon et al. 2011, as in cuRAND and Random123).
// A draw is a pure function of (key, counter): any rank, step or thread can reproduce any draw without
// replaying a sequence, and the same function runs on the GPU.
#ifndef AVAT3R_RNG_H
#define AVAT3R_RNG_H

#include <stdint.h>

// The raw block function: 4 x u32 out from a 4 x u32 counter and a 2 x u32 key.
void philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

// A stream: key = (seed, stream id); draws are indexed by a 64-bit counter.
typedef struct {
    uint64_t seed;
    uint64_t stream;
    uint64_t counter; // next draw index for the sequential helpers below
} Rng;

Rng rng_make(uint64_t seed, uint64_t stream);
// Pure draws at an explicit index i (do not touch r->counter).
uint32_t rng_u32_at(const Rng *r, uint64_t i);
float rng_uniform_at(const Rng *r, uint64_t i);   // in [0, 1), 24-bit resolution
double rng_uniform64_at(const Rng *r, uint64_t i); // in [0, 1), 53-bit resolution
double rng_normal_at(const Rng *r, uint64_t i);    // standard normal (Box-Muller on draw i)
// Sequential helpers: use r->counter and advance it.
uint32_t rng_next_u32(Rng *r);
float rng_next_uniform(Rng *r);
double rng_next_normal(Rng *r);
uint32_t rng_next_below(Rng *r, uint32_t n); // uniform in [0, n), unbiased

#endif
