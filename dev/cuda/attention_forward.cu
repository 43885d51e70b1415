// attention_forward.cu — kernel lab for the fused attention forward (model/cuda/attention_cuda.cu), in the
// style of llm.c's dev/cuda: numbered versions, a CPU reference, a timing loop.
//   version 1  the production kernel, attention_forward_cuda: one thread owns a query row (q and the output
//              accumulator in registers, hd floats each), K/V tiles of ATT_TILE rows in shared memory
//   version 2  a query row split over G = 4 neighbouring lanes: each lane holds hd/4 of q and of the
//              accumulator and the dot products finish with two xor shuffles inside the group. A quarter of
//              the registers per thread, so more warps stay resident to hide the shared-memory latency;
//              the same K/V tile traffic. (Next: tensor-core tiles, a block of query rows against a tile of
//              keys per mma, the flash-attention layout.)
// Every version is checked against a double-precision CPU softmax(QKᵀ/√hd)V on every row (out and lse,
// outputs NaN-poisoned before the run) and then timed.
//
// On a GPU (from the repository root; the numbers go to docs/benchmarks.md with the device and commit):
//   nvcc -O3 --fmad=false -gencode=arch=compute_90,code=sm_90 dev/cuda/attention_forward.cu -o /tmp/attention_forward
//   /tmp/attention_forward VERSION [B NH N HD REPS]       (default 2  1 12 4096 64 20: the paper config's
//                                                          self-attention, 4096 tokens, 12 heads of 64)
// On the CPU emulator (dev/cuda/emu.h; correctness only, the times mean nothing): bash tools/cuda_emu.sh lab
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../model/cuda/attention_cuda.cu" // version 1, and ATT_TILE / load_tiles

#define V2_G 4     // lanes per query row
#define V2_ROWS 32 // query rows per block (V2_G · V2_ROWS = 128 threads)

// version 2: lane `part` of a row's group owns columns [part·HD/G, (part + 1)·HD/G)
template <int HD>
__global__ void __launch_bounds__(V2_G * V2_ROWS) attention_forward_v2(float *out, int ldo, float *lse,
        const float *q, int ldq, const float *k, int ldk, const float *v, int ldv, int Nq, int Nk, int NH,
        int qblocks, float scale) {
    extern __shared__ float smem[];
    constexpr int PER = HD / V2_G;
    float *ks = smem, *vs = smem + ATT_TILE * HD; // [ATT_TILE, HD] each
    int bh = blockIdx.x / qblocks, b = bh / NH, h = bh % NH;
    int part = threadIdx.x % V2_G, i = (blockIdx.x % qblocks) * V2_ROWS + threadIdx.x / V2_G;
    int active = i < Nq, c0 = part * PER;
    const float *kb = k + (size_t)b * Nk * ldk + h * HD, *vb = v + (size_t)b * Nk * ldv + h * HD;
    float qr[PER], o[PER], m = -INFINITY, l = 0;
    for (int c = 0; c < PER; c++) {
        qr[c] = active ? q[((size_t)b * Nq + i) * ldq + h * HD + c0 + c] : 0; // an idle row computes on zeros
        o[c] = 0;
    }
    for (int j0 = 0; j0 < Nk; j0 += ATT_TILE) {
        int nk = Nk - j0 < ATT_TILE ? Nk - j0 : ATT_TILE; // the same for the whole block: shuffles stay full-warp
        load_tiles(ks, vs, kb, ldk, vb, ldv, j0, nk, HD);
        float s[ATT_TILE], mt = m;
#pragma unroll
        for (int j = 0; j < ATT_TILE; j++) {
            if (j < nk) {
                float d = 0;
                for (int c = 0; c < PER; c++) d += qr[c] * ks[j * HD + c0 + c];
                d += __shfl_xor_sync(0xffffffffu, d, 1);
                d += __shfl_xor_sync(0xffffffffu, d, 2);
                s[j] = scale * d;
                mt = fmaxf(mt, s[j]);
            }
        }
        float corr = expf(m - mt); // 0 on the first tile (m = -inf)
        l *= corr;
        for (int c = 0; c < PER; c++) o[c] *= corr;
#pragma unroll
        for (int j = 0; j < ATT_TILE; j++) {
            if (j < nk) {
                float p = expf(s[j] - mt);
                l += p;
                for (int c = 0; c < PER; c++) o[c] += p * vs[j * HD + c0 + c];
            }
        }
        m = mt;
    }
    if (!active) return;
    float inv = 1 / l;
    for (int c = 0; c < PER; c++) out[((size_t)b * Nq + i) * ldo + h * HD + c0 + c] = o[c] * inv;
    if (part == 0) lse[(size_t)bh * Nq + i] = m + logf(l);
}

// q, k, v, out: [B, N, NH·hd] (row stride NH·hd), lse [B, NH, N]
static void run(int version, float *out, float *lse, const float *q, const float *k, const float *v, int B, int N,
                int NH, int hd) {
    const int ld = NH * hd;
    if (version == 1) {
        attention_forward_cuda(out, ld, lse, q, ld, k, ld, v, ld, B, N, N, NH, hd);
        return;
    }
    int qblocks = (N + V2_ROWS - 1) / V2_ROWS;
    unsigned grid = (unsigned)((size_t)B * NH * qblocks);
    size_t sm = 2 * ATT_TILE * (size_t)hd * sizeof(float);
    float scale = 1 / sqrtf((float)hd);
    switch (hd) {
    case 16: KLAUNCH(attention_forward_v2<16>, grid, V2_G * V2_ROWS, sm, out, ld, lse, q, ld, k, ld, v, ld, N, N, NH, qblocks, scale); break;
    case 32: KLAUNCH(attention_forward_v2<32>, grid, V2_G * V2_ROWS, sm, out, ld, lse, q, ld, k, ld, v, ld, N, N, NH, qblocks, scale); break;
    case 64: KLAUNCH(attention_forward_v2<64>, grid, V2_G * V2_ROWS, sm, out, ld, lse, q, ld, k, ld, v, ld, N, N, NH, qblocks, scale); break;
    case 128: KLAUNCH(attention_forward_v2<128>, grid, V2_G * V2_ROWS, sm, out, ld, lse, q, ld, k, ld, v, ld, N, N, NH, qblocks, scale); break;
    default: fprintf(stderr, "version 2 takes hd = 16, 32, 64 or 128, not %d\n", hd); exit(2);
    }
}

static float urand(unsigned long long *s) { // splitmix64 → [-1, 1)
    unsigned long long z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)((z >> 40) * (1.0 / 16777216.0) * 2 - 1);
}

int main(int argc, char **argv) {
    int version = argc > 1 ? atoi(argv[1]) : 2;
    int B = argc > 2 ? atoi(argv[2]) : 1, NH = argc > 3 ? atoi(argv[3]) : 12, N = argc > 4 ? atoi(argv[4]) : 4096;
    int hd = argc > 5 ? atoi(argv[5]) : 64, reps = argc > 6 ? atoi(argv[6]) : 20;
    if (version < 1 || version > 2 || B < 1 || NH < 1 || N < 1 || hd < 1 || reps < 0) {
        fprintf(stderr, "usage: attention_forward VERSION(1|2) [B NH N HD REPS]\n");
        return 2;
    }
    const int ld = NH * hd;
    const size_t n = (size_t)B * N * ld, nl = (size_t)B * NH * N;
    float *hq = (float *)malloc(4 * n), *hk = (float *)malloc(4 * n), *hv = (float *)malloc(4 * n);
    float *ho = (float *)malloc(4 * n), *hl = (float *)malloc(4 * nl);
    unsigned long long seed = 42;
    for (size_t e = 0; e < n; e++) hq[e] = 2 * urand(&seed), hk[e] = 2 * urand(&seed), hv[e] = urand(&seed);
    float *q, *k, *v, *o, *l;
    cudaCheck(cudaMalloc((void **)&q, 4 * n));
    cudaCheck(cudaMalloc((void **)&k, 4 * n));
    cudaCheck(cudaMalloc((void **)&v, 4 * n));
    cudaCheck(cudaMalloc((void **)&o, 4 * n));
    cudaCheck(cudaMalloc((void **)&l, 4 * nl));
    cudaCheck(cudaMemcpy(q, hq, 4 * n, cudaMemcpyHostToDevice));
    cudaCheck(cudaMemcpy(k, hk, 4 * n, cudaMemcpyHostToDevice));
    cudaCheck(cudaMemcpy(v, hv, 4 * n, cudaMemcpyHostToDevice));
    cudaCheck(cudaMemset(o, 0xff, 4 * n)); // NaN: an output the kernel never writes fails the check
    cudaCheck(cudaMemset(l, 0xff, 4 * nl));
    run(version, o, l, q, k, v, B, N, NH, hd);
    cudaCheck(cudaDeviceSynchronize());
    cudaCheck(cudaMemcpy(ho, o, 4 * n, cudaMemcpyDeviceToHost));
    cudaCheck(cudaMemcpy(hl, l, 4 * nl, cudaMemcpyDeviceToHost));
    // the reference in double, every row: out = Σ_j softmax_j(q·k_j/√hd) v_j, lse = log Σ_j exp(q·k_j/√hd)
    double worst_o = 0, worst_l = 0, big = 0;
    size_t bad = 0;
    double *s = (double *)malloc(sizeof(double) * N), *acc = (double *)malloc(sizeof(double) * hd);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int i = 0; i < N; i++) {
                const float *qi = hq + ((size_t)b * N + i) * ld + h * hd;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < N; j++) {
                    const float *kj = hk + ((size_t)b * N + j) * ld + h * hd;
                    double d = 0;
                    for (int c = 0; c < hd; c++) d += (double)qi[c] * kj[c];
                    s[j] = d / sqrt((double)hd);
                    mx = fmax(mx, s[j]);
                }
                for (int c = 0; c < hd; c++) acc[c] = 0;
                for (int j = 0; j < N; j++) {
                    double p = exp(s[j] - mx);
                    sum += p;
                    for (int c = 0; c < hd; c++) acc[c] += p * hv[((size_t)b * N + j) * ld + h * hd + c];
                }
                for (int c = 0; c < hd; c++) {
                    double want = acc[c] / sum, got = ho[((size_t)b * N + i) * ld + h * hd + c];
                    if (got != got) bad++;
                    else worst_o = fmax(worst_o, fabs(got - want));
                    big = fmax(big, fabs(want));
                }
                double got_l = hl[((size_t)b * NH + h) * N + i], want_l = mx + log(sum);
                if (got_l != got_l) bad++;
                else worst_l = fmax(worst_l, fabs(got_l - want_l) / fmax(1, fabs(want_l)));
            }
    // float against double: 1e-5 of the largest output for a tile's worth of keys, growing with log2 N for
    // the float sums over N keys (1.3e-4 at N = 4096, about 2000 ulps); a wrong index or a missed rescale
    // is off by O(1)
    const double tol = 1e-5 * (1 + log2((double)N));
    int ok = !bad && worst_o <= tol * big && worst_l <= tol;
    printf("%s version %d (B %d, NH %d, N %d, hd %d): out max abs err %.2e (%.2e of max %.2e), lse rel err %.2e, "
           "NaN %zu (tolerance %.1e)\n", ok ? "PASS" : "FAIL", version, B, NH, N, hd, worst_o, worst_o / big, big,
           worst_l, bad, tol);
    if (ok && reps > 0) {
        cudaEvent_t e0, e1;
        cudaCheck(cudaEventCreate(&e0));
        cudaCheck(cudaEventCreate(&e1));
        cudaCheck(cudaEventRecord(e0, 0));
        for (int r = 0; r < reps; r++) run(version, o, l, q, k, v, B, N, NH, hd);
        cudaCheck(cudaEventRecord(e1, 0));
        cudaCheck(cudaEventSynchronize(e1));
        float ms = 0;
        cudaCheck(cudaEventElapsedTime(&ms, e0, e1));
        double flops = 4.0 * B * NH * (double)N * N * hd; // QKᵀ and PV, 2 per multiply-add
        printf("version %d: %.3f ms per call (mean of %d), %.2f TFLOP/s\n", version, ms / reps, reps,
               flops / (ms / reps * 1e-3) / 1e12);
        cudaCheck(cudaEventDestroy(e0));
        cudaCheck(cudaEventDestroy(e1));
    }
    float *bufs[5] = {q, k, v, o, l};
    for (int e = 0; e < 5; e++) cudaCheck(cudaFree(bufs[e]));
    free(hq), free(hk), free(hv), free(ho), free(hl), free(s), free(acc);
    return ok ? 0 : 1;
}
