// attention_cuda.cu — fused multi-head attention, forward and backward (fp32), flash-attention style:
// the [Nq, Nk] score matrix is never stored. Same interface and math as attention_forward/backward in
// model/layers.c (strided q/k/v/out rows, head h = columns [h·hd, h·hd+hd), lse kept for the backward).
//
// Version 1 (correctness first, see dev/cuda/README.md for the lab): one thread owns one row. Forward and
// dQ: a thread per query row, q/o/dq in registers, K and V streamed through shared memory in tiles of
// ATT_TILE rows that every thread of the block reads (broadcast). dK/dV: a thread per key row, Q and dO
// streamed instead. No atomics anywhere: results are deterministic, and the += into dq/dk/dv is safe
// because every row has exactly one owner.
#include <math.h>

#include "attention_cuda.h"
#include "launch.h"

#define ATT_ROWS 64 // threads (rows) per block
#define ATT_TILE 32 // rows of the streamed operand per shared-memory tile
#define ATT_MAX_HD 128 // head dims other than 16/32/64/128 take the generic <0> kernels, up to this

// rows [r0, r0 + n) of two strided operands into shared tiles [n, hd]; the whole block calls it. The first
// barrier: nobody still reads the previous tile; the second: the new one is complete.
__device__ static void load_tiles(float *as, float *bs, const float *a, int lda, const float *b, int ldb, int r0, int n,
                                  int hd) {
    __syncthreads();
    for (int e = threadIdx.x; e < n * hd; e += blockDim.x) {
        int r = e / hd, c = e % hd;
        as[e] = a[(size_t)(r0 + r) * lda + c];
        bs[e] = b[(size_t)(r0 + r) * ldb + c];
    }
    __syncthreads();
}

// out = softmax(scale · Q Kᵀ) V, online over key tiles; lse = max + log Σ exp(s − max)
template <int HD>
__global__ void __launch_bounds__(ATT_ROWS) attention_forward_kernel(float *out, int ldo, float *lse, const float *q,
        int ldq, const float *k, int ldk, const float *v, int ldv, int Nq, int Nk, int NH, int hd_rt, int qblocks, float scale) {
    extern __shared__ float smem[];
    constexpr int CAP = HD ? HD : ATT_MAX_HD; // registers per row vector
    const int hd = HD ? HD : hd_rt;
    float *ks = smem, *vs = smem + ATT_TILE * hd; // [ATT_TILE, hd] each
    int bh = blockIdx.x / qblocks, b = bh / NH, h = bh % NH;
    int i = (blockIdx.x % qblocks) * ATT_ROWS + threadIdx.x;
    int active = i < Nq;
    const float *kb = k + (size_t)b * Nk * ldk + h * hd, *vb = v + (size_t)b * Nk * ldv + h * hd;
    float qr[CAP], o[CAP], m = -INFINITY, l = 0;
    for (int c = 0; c < hd; c++) {
        qr[c] = active ? q[((size_t)b * Nq + i) * ldq + h * hd + c] : 0;
        o[c] = 0;
    }
    for (int j0 = 0; j0 < Nk; j0 += ATT_TILE) {
        int nk = Nk - j0 < ATT_TILE ? Nk - j0 : ATT_TILE;
        load_tiles(ks, vs, kb, ldk, vb, ldv, j0, nk, hd);
        if (!active) continue;
        float s[ATT_TILE], mt = m;
#pragma unroll
        for (int j = 0; j < ATT_TILE; j++) {
            if (j < nk) {
                float d = 0;
                for (int c = 0; c < hd; c++) d += qr[c] * ks[j * hd + c];
                s[j] = scale * d;
                mt = fmaxf(mt, s[j]);
            }
        }
        float corr = expf(m - mt); // 0 on the first tile (m = -inf)
        l *= corr;
        for (int c = 0; c < hd; c++) o[c] *= corr;
#pragma unroll
        for (int j = 0; j < ATT_TILE; j++) {
            if (j < nk) {
                float p = expf(s[j] - mt);
                l += p;
                for (int c = 0; c < hd; c++) o[c] += p * vs[j * hd + c];
            }
        }
        m = mt;
    }
    if (!active) return;
    float inv = 1 / l;
    for (int c = 0; c < hd; c++) out[((size_t)b * Nq + i) * ldo + h * hd + c] = o[c] * inv;
    lse[(size_t)bh * Nq + i] = m + logf(l);
}

// delta[b,h,i] = dO_i · O_i (= Σ_j P_ij dP_ij), one thread per (b, h, i)
__global__ void attention_delta_kernel(float *delta, const float *dout, const float *out, int ldo, int Nq, int NH,
                                       int hd, size_t n) {
    size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    size_t bh = t / Nq, i = t % Nq, b = bh / NH, h = bh % NH;
    const float *d = dout + (b * Nq + i) * ldo + h * hd, *o = out + (b * Nq + i) * ldo + h * hd;
    float s = 0;
    for (int c = 0; c < hd; c++) s += d[c] * o[c];
    delta[t] = s;
}

// dQ_i += scale · Σ_j dS_ij K_j with dS_ij = P_ij (dO_i·V_j − delta_i), P recomputed from lse
template <int HD>
__global__ void __launch_bounds__(ATT_ROWS) attention_dq_kernel(float *dq, const float *dout, int ldo,
        const float *lse, const float *delta, const float *q, int ldq, const float *k, int ldk, const float *v,
        int ldv, int Nq, int Nk, int NH, int hd_rt, int qblocks, float scale) {
    extern __shared__ float smem[];
    constexpr int CAP = HD ? HD : ATT_MAX_HD; // registers per row vector
    const int hd = HD ? HD : hd_rt;
    float *ks = smem, *vs = smem + ATT_TILE * hd;
    int bh = blockIdx.x / qblocks, b = bh / NH, h = bh % NH;
    int i = (blockIdx.x % qblocks) * ATT_ROWS + threadIdx.x;
    int active = i < Nq;
    const float *kb = k + (size_t)b * Nk * ldk + h * hd, *vb = v + (size_t)b * Nk * ldv + h * hd;
    float qr[CAP], dor[CAP], acc[CAP], li = 0, di = 0;
    for (int c = 0; c < hd; c++) {
        qr[c] = active ? q[((size_t)b * Nq + i) * ldq + h * hd + c] : 0;
        dor[c] = active ? dout[((size_t)b * Nq + i) * ldo + h * hd + c] : 0;
        acc[c] = 0;
    }
    if (active) li = lse[(size_t)bh * Nq + i], di = delta[(size_t)bh * Nq + i];
    for (int j0 = 0; j0 < Nk; j0 += ATT_TILE) {
        int nk = Nk - j0 < ATT_TILE ? Nk - j0 : ATT_TILE;
        load_tiles(ks, vs, kb, ldk, vb, ldv, j0, nk, hd);
        if (!active) continue;
        for (int j = 0; j < nk; j++) {
            float s = 0, dp = 0;
            for (int c = 0; c < hd; c++) {
                s += qr[c] * ks[j * hd + c];
                dp += dor[c] * vs[j * hd + c];
            }
            float p = expf(scale * s - li), ds = p * (dp - di);
            for (int c = 0; c < hd; c++) acc[c] += ds * ks[j * hd + c];
        }
    }
    if (!active) return;
    float *d = dq + ((size_t)b * Nq + i) * ldq + h * hd;
    for (int c = 0; c < hd; c++) d[c] += scale * acc[c];
}

// dV_j += Σ_i P_ij dO_i ; dK_j += scale · Σ_i dS_ij Q_i — a thread per key row, Q/dO/lse/delta tiles shared
template <int HD>
__global__ void __launch_bounds__(ATT_ROWS) attention_dkdv_kernel(float *dk, float *dv, const float *dout, int ldo,
        const float *lse, const float *delta, const float *q, int ldq, const float *k, int ldk, const float *v,
        int ldv, int Nq, int Nk, int NH, int hd_rt, int kblocks, float scale) {
    extern __shared__ float smem[];
    constexpr int CAP = HD ? HD : ATT_MAX_HD; // registers per row vector
    const int hd = HD ? HD : hd_rt;
    float *qs = smem, *ds_ = smem + ATT_TILE * hd, *ls = smem + 2 * ATT_TILE * hd, *dl = ls + ATT_TILE;
    int bh = blockIdx.x / kblocks, b = bh / NH, h = bh % NH;
    int j = (blockIdx.x % kblocks) * ATT_ROWS + threadIdx.x;
    int active = j < Nk;
    const float *qb = q + (size_t)b * Nq * ldq + h * hd, *db = dout + (size_t)b * Nq * ldo + h * hd;
    float kr[CAP], vr[CAP], dka[CAP], dva[CAP];
    for (int c = 0; c < hd; c++) {
        kr[c] = active ? k[((size_t)b * Nk + j) * ldk + h * hd + c] : 0;
        vr[c] = active ? v[((size_t)b * Nk + j) * ldv + h * hd + c] : 0;
        dka[c] = dva[c] = 0;
    }
    for (int i0 = 0; i0 < Nq; i0 += ATT_TILE) {
        int nq = Nq - i0 < ATT_TILE ? Nq - i0 : ATT_TILE;
        load_tiles(qs, ds_, qb, ldq, db, ldo, i0, nq, hd); // lse and delta rows: after its first barrier, own barrier
        for (int r = threadIdx.x; r < nq; r += blockDim.x) {
            ls[r] = lse[(size_t)bh * Nq + i0 + r];
            dl[r] = delta[(size_t)bh * Nq + i0 + r];
        }
        __syncthreads();
        if (!active) continue;
        for (int i = 0; i < nq; i++) {
            float s = 0, dp = 0;
            for (int c = 0; c < hd; c++) {
                s += qs[i * hd + c] * kr[c];
                dp += ds_[i * hd + c] * vr[c];
            }
            float p = expf(scale * s - ls[i]), dsc = p * (dp - dl[i]);
            for (int c = 0; c < hd; c++) {
                dva[c] += p * ds_[i * hd + c];
                dka[c] += dsc * qs[i * hd + c];
            }
        }
    }
    if (!active) return;
    float *dkr = dk + ((size_t)b * Nk + j) * ldk + h * hd, *dvr = dv + ((size_t)b * Nk + j) * ldv + h * hd;
    for (int c = 0; c < hd; c++) {
        dkr[c] += scale * dka[c];
        dvr[c] += dva[c];
    }
}

static void check_hd(int hd, const char *who) {
    if (hd < 1 || hd > ATT_MAX_HD) {
        fprintf(stderr, "FATAL %s:%d: %s: head dim %d is outside 1..%d\n  hint: width / heads must be at most %d\n",
                __FILE__, __LINE__, who, hd, ATT_MAX_HD, ATT_MAX_HD);
        exit(1);
    }
}

// one switch over the head sizes compiled with constant trip counts, the rest through the generic <0>;
// KERNEL is a template name, smem_bytes computed from hd
#define ATT_DISPATCH(hd, KERNEL, grid, smem_bytes, ...)                               \
    switch (hd) {                                                                     \
    case 16: KLAUNCH(KERNEL<16>, grid, ATT_ROWS, smem_bytes, __VA_ARGS__); break;     \
    case 32: KLAUNCH(KERNEL<32>, grid, ATT_ROWS, smem_bytes, __VA_ARGS__); break;     \
    case 64: KLAUNCH(KERNEL<64>, grid, ATT_ROWS, smem_bytes, __VA_ARGS__); break;     \
    case 128: KLAUNCH(KERNEL<128>, grid, ATT_ROWS, smem_bytes, __VA_ARGS__); break;   \
    default: KLAUNCH(KERNEL<0>, grid, ATT_ROWS, smem_bytes, __VA_ARGS__); break;      \
    }

extern "C" void attention_forward_cuda(float *out, int ldo, float *lse, const float *q, int ldq, const float *k,
                                       int ldk, const float *v, int ldv, int B, int Nq, int Nk, int NH, int hd) {
    check_hd(hd, "attention_forward_cuda");
    if (B <= 0 || Nq <= 0 || Nk <= 0) return;
    int qblocks = (Nq + ATT_ROWS - 1) / ATT_ROWS;
    float scale = 1 / sqrtf((float)hd);
    size_t sm = 2 * ATT_TILE * (size_t)hd * sizeof(float); // K and V tiles
    ATT_DISPATCH(hd, attention_forward_kernel, (size_t)B * NH * qblocks, sm, out, ldo, lse,
                 q, ldq, k, ldk, v, ldv, Nq, Nk, NH, hd, qblocks, scale);
}

extern "C" void attention_backward_cuda(float *dq, float *dk, float *dv, const float *dout, const float *out, int ldo,
                                        const float *lse, const float *q, int ldq, const float *k, int ldk,
                                        const float *v, int ldv, int B, int Nq, int Nk, int NH, int hd, float *delta) {
    check_hd(hd, "attention_backward_cuda");
    if (B <= 0 || Nq <= 0 || Nk <= 0) return;
    size_t n = (size_t)B * NH * Nq;
    KLAUNCH(attention_delta_kernel, blocks_for(n, 256), 256, 0, delta, dout, out, ldo, Nq, NH, hd, n);
    int qblocks = (Nq + ATT_ROWS - 1) / ATT_ROWS, kblocks = (Nk + ATT_ROWS - 1) / ATT_ROWS;
    float scale = 1 / sqrtf((float)hd);
    size_t sm = 2 * ATT_TILE * (size_t)hd * sizeof(float);
    ATT_DISPATCH(hd, attention_dq_kernel, (size_t)B * NH * qblocks, sm, dq, dout, ldo, lse,
                 delta, q, ldq, k, ldk, v, ldv, Nq, Nk, NH, hd, qblocks, scale);
    sm = (2 * ATT_TILE * (size_t)hd + 2 * ATT_TILE) * sizeof(float); // Q, dO tiles; lse, delta
    ATT_DISPATCH(hd, attention_dkdv_kernel, (size_t)B * NH * kblocks, sm, dk, dv, dout, ldo, lse, delta, q, ldq, k,
                 ldk, v, ldv, Nq, Nk, NH, hd, kblocks, scale);
}
