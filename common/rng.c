// rng.c — Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011),
// bit-exact with Random123 and cuRAND. Every draw is a pure function of (seed, stream, index).
#include "rng.h"

#include <math.h>

#include "util.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u // golden ratio
#define PHILOX_W1 0xBB67AE85u // sqrt(3) - 1

static inline uint32_t mulhilo32(uint32_t a, uint32_t b, uint32_t *hi) {
    uint64_t p = (uint64_t)a * (uint64_t)b;
    *hi = (uint32_t)(p >> 32);
    return (uint32_t)p;
}

void philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        if (round > 0) { // the key is bumped between rounds, not before the first
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        uint32_t hi0, hi1;
        uint32_t lo0 = mulhilo32(PHILOX_M0, c0, &hi0);
        uint32_t lo1 = mulhilo32(PHILOX_M1, c2, &hi1);
        uint32_t n0 = hi1 ^ c1 ^ k0;
        uint32_t n2 = hi0 ^ c3 ^ k1;
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

Rng rng_make(uint64_t seed, uint64_t stream) {
    Rng r = {seed, stream, 0};
    return r;
}

// Draw i is the whole Philox block at counter (i, stream) under key = seed: one block per draw keeps
// the mapping trivial to reproduce elsewhere (e.g. in a CUDA kernel or a Python reference).
static void rng_block(const Rng *r, uint64_t i, uint32_t out[4]) {
    uint32_t key[2] = {(uint32_t)r->seed, (uint32_t)(r->seed >> 32)};
    uint32_t ctr[4] = {(uint32_t)i, (uint32_t)(i >> 32), (uint32_t)r->stream, (uint32_t)(r->stream >> 32)};
    philox4x32_10(ctr, key, out);
}

uint32_t rng_u32_at(const Rng *r, uint64_t i) {
    uint32_t out[4];
    rng_block(r, i, out);
    return out[0];
}

float rng_uniform_at(const Rng *r, uint64_t i) {
    // top 24 bits: exactly representable in a float, so the result is < 1
    return (float)(rng_u32_at(r, i) >> 8) * (1.0f / 16777216.0f);
}

// 53 random bits from two words, as an integer in [0, 2^53).
static uint64_t bits53(uint32_t a, uint32_t b) {
    return ((uint64_t)(a >> 5) << 26) | (uint64_t)(b >> 6); // 27 + 26 bits
}

double rng_uniform64_at(const Rng *r, uint64_t i) {
    uint32_t out[4];
    rng_block(r, i, out);
    return (double)bits53(out[0], out[1]) * (1.0 / 9007199254740992.0);
}

double rng_normal_at(const Rng *r, uint64_t i) {
    uint32_t out[4];
    rng_block(r, i, out);
    // u1 in (0, 1] so log(u1) is finite; u2 in [0, 1)
    double u1 = ((double)bits53(out[0], out[1]) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = (double)bits53(out[2], out[3]) * (1.0 / 9007199254740992.0);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

uint32_t rng_next_u32(Rng *r) { return rng_u32_at(r, r->counter++); }
float rng_next_uniform(Rng *r) { return rng_uniform_at(r, r->counter++); }
double rng_next_normal(Rng *r) { return rng_normal_at(r, r->counter++); }

uint32_t rng_next_below(Rng *r, uint32_t n) {
    if (n == 0) FATAL("rng_next_below: n must be > 0");
    // Lemire's multiply-shift with rejection: unbiased, and rarely draws more than once
    uint64_t m = (uint64_t)rng_next_u32(r) * n;
    uint32_t lo = (uint32_t)m;
    if (lo < n) {
        uint32_t threshold = (uint32_t)(-n) % n; // 2^32 mod n
        while (lo < threshold) {
            m = (uint64_t)rng_next_u32(r) * n;
            lo = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}
