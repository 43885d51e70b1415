// raster_kernels.cuh — the device code of the CUDA rasterizer (stages in raster_cuda.cu's header):
// included by raster_cuda.cu only. Plain CUDA C++ with no host-side dependency, so the kernels can also
// be compiled for the CPU by a thread-per-CUDA-thread emulator (dev/cuda/raster_emu.cpp) for checking
// their index math on machines without a GPU. Dynamic shared memory only (no static __shared__).
#ifndef AVAT3R_RASTER_KERNELS_CUH
#define AVAT3R_RASTER_KERNELS_CUH
#include <math.h>
#include <stdint.h>

#include "../raster.h"

#define TILE RASTER_TILE         // 16
#define BLOCK (TILE * TILE)      // 256 threads, one per pixel of a tile; also the Gaussian batch size
#define GSTRIDE(K) (7 + (K))     // per-(image, Gaussian) 2D gradient: du dv dA dB dC dopacity dz dcolor[K]
#define KMAX(KC) ((KC) > 0 ? (KC) : RASTER_MAX_K)

// the constants of docs/render.md as float, exactly as the CPU casts them ((real)RASTER_...)
#define D_ALPHA_MAX ((float)RASTER_ALPHA_MAX)
#define D_ALPHA_MIN ((float)RASTER_ALPHA_MIN)
#define D_T_MIN ((float)RASTER_T_MIN)
#define D_OMA_MIN ((float)RASTER_ONE_MINUS_ALPHA_MIN)

// ----------------------------------------------------------------------------------------------
// projection of one Gaussian into one camera and its backward: render/raster_project.h, the CPU's own code

#define real float
#define R_(name) name
#define RASTER_FN __device__ static
#include "../raster_project.h"
#undef RASTER_FN
#undef R_
#undef real

__device__ static inline float clamp01(float o) { return o < 0 ? 0 : (o > 1 ? 1 : o); }

__device__ static int finite_all(const float *x, int n) {
    for (int i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

// ----------------------------------------------------------------------------------------------
// 1. projection, one thread per (image, Gaussian); ig = img·G + g, img = b·Cm + c

__global__ void project_kernel(const float *means, const float *quats, const float *scales, const float *opac,
                               const float *colors, const float *w2c, const float *Kmat, int G, int Cm, int W, int H,
                               int K, int tiles_x, int tiles_y, long long n, float *mean2d, float *conic, float *zcam,
                               int32_t *rect, uint8_t *valid, int64_t *isect_cnt, unsigned long long *counters) {
    long long ig = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    int invalid = 0, culled = 0;
    if (ig < n) {
        int img = (int)(ig / G), g = (int)(ig % G), b = img / Cm, c = img % Cm;
        size_t bg = (size_t)b * G + g;
        const float *q = quats + bg * 4, *s = scales + bg * 3;
        int ok = finite_all(means + bg * 3, 3) && finite_all(q, 4) && finite_all(s, 3) && finite_all(opac + bg, 1) &&
                 finite_all(colors + bg * K, K);
        ok = ok && s[0] > 0 && s[1] > 0 && s[2] > 0 &&
             (double)sqrtf(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]) >= 1e-12;
        if (c == 0) { // one camera writes the per-scene flag and counts it once
            valid[bg] = (uint8_t)ok;
            invalid = !ok;
        }
        Proj P;
        int drawn = ok && project(&P, means + bg * 3, q, s, w2c + (size_t)img * 12, Kmat + (size_t)img * 9, W, H,
                                  tiles_x, tiles_y);
        culled = ok && !drawn;
        int32_t *rc = rect + ig * 4;
        if (drawn) {
            mean2d[ig * 2] = P.u, mean2d[ig * 2 + 1] = P.v;
            conic[ig * 3] = P.A, conic[ig * 3 + 1] = P.B, conic[ig * 3 + 2] = P.C;
            zcam[ig] = P.p[2];
            rc[0] = P.x0, rc[1] = P.x1, rc[2] = P.y0, rc[3] = P.y1;
            isect_cnt[ig] = (int64_t)(P.x1 - P.x0) * (P.y1 - P.y0);
        } else {
            mean2d[ig * 2] = 0, mean2d[ig * 2 + 1] = 0;
            conic[ig * 3] = 0, conic[ig * 3 + 1] = 0, conic[ig * 3 + 2] = 0;
            zcam[ig] = 0;
            rc[0] = rc[1] = rc[2] = rc[3] = 0;
            isect_cnt[ig] = 0;
        }
    }
    // every thread of the block reaches these (no early return above)
    int n_inv = __syncthreads_count(invalid), n_cul = __syncthreads_count(culled);
    if (threadIdx.x == 0) {
        if (n_inv) atomicAdd(&counters[0], (unsigned long long)n_inv);
        if (n_cul) atomicAdd(&counters[1], (unsigned long long)n_cul);
    }
}

// 3. one key/value per (image, Gaussian, touched tile), written at the Gaussian's prefix-sum offset in
//    (image, Gaussian) order: the stable sort then breaks depth ties by Gaussian index
__global__ void emit_kernel(const int32_t *rect, const float *zcam, const int64_t *isect_off, int G, int tiles_x,
                            int nt, long long n, uint64_t *keys, int32_t *vals) {
    long long ig = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (ig >= n) return;
    const int32_t *rc = rect + ig * 4;
    if (rc[1] <= rc[0] || rc[3] <= rc[2]) return;
    int img = (int)(ig / G), g = (int)(ig % G);
    int64_t o = isect_off[ig];
    uint64_t zbits = (uint64_t)__float_as_uint(zcam[ig]); // z ≥ NEAR > 0: the bits sort like the float
    for (int ty = rc[2]; ty < rc[3]; ty++)
        for (int tx = rc[0]; tx < rc[1]; tx++) {
            uint64_t tile = (uint64_t)img * nt + (uint64_t)(ty * tiles_x + tx);
            keys[o] = (tile << 32) | zbits;
            vals[o] = g;
            o++;
        }
}

// 5. tile_off[t] = first sorted position whose tile id is ≥ t, for t in [0, ntot]; each entry is written
//    by exactly one thread (the one at the boundary), so tile_off needs no initialisation when n > 0
__global__ void tile_off_kernel(const uint64_t *keys, int n, int ntot, int32_t *tile_off) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    int t = (int)(keys[i] >> 32);
    int tprev = i == 0 ? -1 : (int)(keys[i - 1] >> 32);
    for (int u = tprev + 1; u <= t; u++) tile_off[u] = i;
    if (i == n - 1)
        for (int u = t + 1; u <= ntot; u++) tile_off[u] = n;
}

// ----------------------------------------------------------------------------------------------
// 6. forward compositing: block = (image, tile), thread = pixel. KC = K at compile time (3), or 0 for
//    any K ≤ RASTER_MAX_K read at run time. Dynamic shared memory: BLOCK·(7 + K) floats.

template <int KC>
__global__ void __launch_bounds__(BLOCK)
    render_fwd_kernel(const int32_t *tile_off, const int32_t *isect, const float *mean2d, const float *conic,
                      const float *zcam, const float *opac, const float *colors, const float *background, int G, int Cm,
                      int W, int H, int Kdyn, int tiles_x, int nt, float *image, float *alpha, float *depth,
                      float *T_final, int32_t *n_contrib) {
    const int K = KC > 0 ? KC : Kdyn;
    extern __shared__ float smem[];
    float *s_xy = smem, *s_cn = s_xy + 2 * BLOCK, *s_op = s_cn + 3 * BLOCK, *s_z = s_op + BLOCK,
          *s_col = s_z + BLOCK; // s_col: [BLOCK, K]
    int t = blockIdx.x, img = t / nt, tile = t % nt, tx = tile % tiles_x, ty = tile / tiles_x, b = img / Cm;
    int tid = threadIdx.x, x = tx * TILE + tid % TILE, y = ty * TILE + tid / TILE;
    int inside = x < W && y < H;
    float px = (float)x + 0.5f, py = (float)y + 0.5f; // exact, like (real)(xx + 0.5) on the CPU
    const float *m2 = mean2d + (size_t)img * G * 2, *cn = conic + (size_t)img * G * 3, *zc = zcam + (size_t)img * G;
    int s = tile_off[t], e = tile_off[t + 1];
    float T = 1, D = 0, acc[KMAX(KC)];
    for (int k = 0; k < K; k++) acc[k] = 0;
    int last = 0, done = !inside;
    for (int b0 = s; b0 < e; b0 += BLOCK) {
        // all threads arrive here: barrier before refilling shared memory, and the whole tile may stop
        if (__syncthreads_count(done) == BLOCK) break;
        int i = b0 + tid;
        if (i < e) {
            int g = isect[i];
            size_t bg = (size_t)b * G + g;
            s_xy[2 * tid] = m2[2 * g], s_xy[2 * tid + 1] = m2[2 * g + 1];
            s_cn[3 * tid] = cn[3 * g], s_cn[3 * tid + 1] = cn[3 * g + 1], s_cn[3 * tid + 2] = cn[3 * g + 2];
            s_op[tid] = clamp01(opac[bg]);
            s_z[tid] = zc[g];
            for (int k = 0; k < K; k++) s_col[tid * K + k] = colors[bg * K + k];
        }
        __syncthreads();
        int nb = e - b0 < BLOCK ? e - b0 : BLOCK;
        for (int jj = 0; jj < nb && !done; jj++) {
            float dx = px - s_xy[2 * jj], dy = py - s_xy[2 * jj + 1];
            float A = s_cn[3 * jj], B = s_cn[3 * jj + 1], C = s_cn[3 * jj + 2];
            float sig = 0.5f * (A * dx * dx + C * dy * dy) + B * dx * dy;
            if (sig < 0) continue;
            float al = s_op[jj] * expf(-sig);
            if (al > D_ALPHA_MAX) al = D_ALPHA_MAX;
            if (al < D_ALPHA_MIN) continue;
            float Tn = T * (1 - al);
            if (Tn <= D_T_MIN) {
                done = 1;
                break;
            }
            for (int k = 0; k < K; k++) acc[k] += s_col[jj * K + k] * al * T;
            D += s_z[jj] * al * T;
            T = Tn;
            last = b0 - s + jj + 1;
        }
    }
    if (!inside) return; // no barrier follows
    size_t pix = ((size_t)img * H + y) * W + x;
    for (int k = 0; k < K; k++) image[pix * K + k] = acc[k] + T * background[k];
    alpha[pix] = 1 - T;
    depth[pix] = D;
    T_final[pix] = T;
    n_contrib[pix] = last;
}

// ----------------------------------------------------------------------------------------------
// 7. backward compositing: block = (image, tile), thread = pixel, the tile's list back to front from the
//    largest n_contrib of the tile. Dynamic shared memory: BLOCK·(8 + K) words + one int.

__device__ static inline float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

template <int KC>
__global__ void __launch_bounds__(BLOCK)
    render_bwd_kernel(const int32_t *tile_off, const int32_t *isect, const float *mean2d, const float *conic,
                      const float *zcam, const float *opac, const float *colors, const float *background, int G, int Cm,
                      int W, int H, int Kdyn, int tiles_x, int nt, const float *T_final, const int32_t *n_contrib,
                      const float *dimage, const float *dalpha, const float *ddepth, float *grad2d) {
    const int K = KC > 0 ? KC : Kdyn, S = GSTRIDE(K);
    extern __shared__ float smem[];
    int *s_id = (int *)smem;
    float *s_xy = smem + BLOCK, *s_cn = s_xy + 2 * BLOCK, *s_op = s_cn + 3 * BLOCK, *s_z = s_op + BLOCK,
          *s_col = s_z + BLOCK; // s_col: [BLOCK, K]
    int *s_maxc = (int *)(s_col + BLOCK * K); // one int after the batch
    int t = blockIdx.x, img = t / nt, tile = t % nt, tx = tile % tiles_x, ty = tile / tiles_x, b = img / Cm;
    int tid = threadIdx.x, lane = tid % 32, x = tx * TILE + tid % TILE, y = ty * TILE + tid / TILE;
    int inside = x < W && y < H;
    float px = (float)x + 0.5f, py = (float)y + 0.5f;
    const float *m2 = mean2d + (size_t)img * G * 2, *cn = conic + (size_t)img * G * 3, *zc = zcam + (size_t)img * G;
    int s = tile_off[t], len = tile_off[t + 1] - s;
    const int has_img = dimage != NULL;
    // per pixel: transmittance in front of the current Gaussian (T), colour (Sk) and depth (Sd) behind it
    float Tf = 0, dAl = 0, dD = 0, dI[KMAX(KC)], Sk[KMAX(KC)];
    int nc = 0;
    if (inside) {
        size_t pix = ((size_t)img * H + y) * W + x;
        Tf = T_final[pix];
        nc = n_contrib[pix];
        dAl = dalpha ? dalpha[pix] : 0;
        dD = ddepth ? ddepth[pix] : 0;
        for (int k = 0; k < K; k++) {
            dI[k] = has_img ? dimage[pix * K + k] : 0;
            Sk[k] = Tf * background[k];
        }
    } else {
        for (int k = 0; k < K; k++) dI[k] = 0, Sk[k] = 0;
    }
    float T = Tf, Sd = 0;
    if (tid == 0) *s_maxc = 0;
    __syncthreads();
    if (nc > 0) atomicMax(s_maxc, nc);
    __syncthreads();
    int maxc = *s_maxc < len ? *s_maxc : len; // n_contrib counts positions in this tile's list: ≤ len
    float gl[GSTRIDE(KMAX(KC))];
    for (int bend = maxc; bend > 0; bend -= BLOCK) {
        int bstart = bend > BLOCK ? bend - BLOCK : 0;
        __syncthreads(); // everyone is done with the previous batch
        int i = bstart + tid;
        if (i < bend) {
            int g = isect[s + i];
            size_t bg = (size_t)b * G + g;
            s_id[tid] = g;
            s_xy[2 * tid] = m2[2 * g], s_xy[2 * tid + 1] = m2[2 * g + 1];
            s_cn[3 * tid] = cn[3 * g], s_cn[3 * tid + 1] = cn[3 * g + 1], s_cn[3 * tid + 2] = cn[3 * g + 2];
            s_op[tid] = opac[bg]; // raw: the clamp and its gradient gate are applied below
            s_z[tid] = zc[g];
            for (int k = 0; k < K; k++) s_col[tid * K + k] = colors[bg * K + k];
        }
        __syncthreads();
        for (int j = bend - 1; j >= bstart; j--) { // uniform bounds: every lane of every warp runs each j
            int jj = j - bstart, contrib = 0;
            for (int q = 0; q < S; q++) gl[q] = 0;
            if (j < nc) {
                float dx = px - s_xy[2 * jj], dy = py - s_xy[2 * jj + 1];
                float A = s_cn[3 * jj], B = s_cn[3 * jj + 1], C = s_cn[3 * jj + 2];
                float sig = 0.5f * (A * dx * dx + C * dy * dy) + B * dx * dy;
                float o_in = s_op[jj], o = clamp01(o_in);
                float Gv = expf(-sig), al = o * Gv;
                int capped = al > D_ALPHA_MAX;
                if (capped) al = D_ALPHA_MAX;
                if (!(sig < 0) && !(al < D_ALPHA_MIN)) { // the CPU's two `continue`s, NaN included
                    contrib = 1;
                    const float *col = s_col + jj * K;
                    float zg = s_z[jj];
                    float oma = 1 - al;
                    if (oma < D_OMA_MIN) oma = D_OMA_MIN;
                    float ra = 1 / oma;
                    T *= ra;
                    float Tp = T;
                    float dal = dAl * Tf * ra + dD * (zg * Tp - Sd * ra);
                    for (int k = 0; k < K; k++) {
                        if (has_img) {
                            dal += dI[k] * (col[k] * Tp - Sk[k] * ra);
                            gl[7 + k] = al * Tp * dI[k];
                        }
                        Sk[k] += col[k] * al * Tp;
                    }
                    gl[6] = al * Tp * dD;
                    Sd += zg * al * Tp;
                    if (!capped) {
                        float dsig = -dal * o * Gv;
                        if (o_in >= 0 && o_in <= 1) gl[5] = dal * Gv;
                        gl[2] = 0.5f * dx * dx * dsig;
                        gl[3] = dx * dy * dsig;
                        gl[4] = 0.5f * dy * dy * dsig;
                        gl[0] = -(A * dx + B * dy) * dsig;
                        gl[1] = -(C * dy + B * dx) * dsig;
                    }
                }
            }
            if (__any_sync(0xffffffffu, contrib)) {
                float *dst = grad2d + ((size_t)img * G + s_id[jj]) * S;
                for (int q = 0; q < S; q++) {
                    float v = warp_sum(gl[q]);
                    if (lane == 0 && v != 0) atomicAdd(dst + q, v);
                }
            }
        }
    }
}

// ----------------------------------------------------------------------------------------------
// 8. projection backward, one thread per (scene, Gaussian), cameras in order; += into the outputs in
//    the same order as the CPU (per image: colours, opacity, then means, scales, quats)

__global__ void project_bwd_kernel(const float *means, const float *quats, const float *scales, const float *w2c,
                                   const float *Kmat, const int32_t *rect, const float *grad2d, int B, int G, int Cm,
                                   int W, int H, int K, int tiles_x, int tiles_y, float *gmeans, float *gquats,
                                   float *gscales, float *gopac, float *gcolors) {
    long long bgl = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (bgl >= (long long)B * G) return;
    size_t bg = (size_t)bgl;
    int b = (int)(bgl / G), g = (int)(bgl % G), S = GSTRIDE(K);
    for (int c = 0; c < Cm; c++) {
        int img = b * Cm + c;
        size_t ig = (size_t)img * G + g;
        const int32_t *rc = rect + ig * 4;
        if (rc[1] <= rc[0] || rc[3] <= rc[2]) continue; // culled or invalid: no gradient
        const float *acc = grad2d + ig * S;
        if (gcolors)
            for (int k = 0; k < K; k++) gcolors[bg * K + k] += acc[7 + k];
        if (gopac) gopac[bg] += acc[5];
        Proj P;
        project(&P, means + bg * 3, quats + bg * 4, scales + bg * 3, w2c + (size_t)img * 12, Kmat + (size_t)img * 9, W, H,
                tiles_x, tiles_y);
        float dm[3] = {0, 0, 0}, dq[4] = {0, 0, 0, 0}, ds[3] = {0, 0, 0};
        project_backward(&P, w2c + (size_t)img * 12, Kmat + (size_t)img * 9, scales + bg * 3, acc, dm, dq, ds);
        for (int k = 0; k < 3; k++) {
            if (gmeans) gmeans[bg * 3 + k] += dm[k];
            if (gscales) gscales[bg * 3 + k] += ds[k];
        }
        if (gquats)
            for (int k = 0; k < 4; k++) gquats[bg * 4 + k] += dq[k];
    }
}

// 9. background: per (tile, channel) over the tile's pixels in row order, then over tiles in order —
//    the CPU's order exactly
__global__ void bg_tile_kernel(const float *T_final, const float *dimage, int W, int H, int K, int tiles_x, int nt,
                               long long n, float *bg_tile) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    int k = (int)(i % K);
    long long t = i / K;
    int img = (int)(t / nt), tile = (int)(t % nt), tx = tile % tiles_x, ty = tile / tiles_x;
    int px0 = tx * TILE, py0 = ty * TILE;
    int tw = W - px0 < TILE ? W - px0 : TILE, th = H - py0 < TILE ? H - py0 : TILE;
    float acc = 0;
    for (int p = 0; p < tw * th; p++) {
        size_t pix = ((size_t)img * H + py0 + p / tw) * W + px0 + p % tw;
        acc += T_final[pix] * dimage[pix * K + k];
    }
    bg_tile[i] = acc;
}

__global__ void bg_sum_kernel(const float *bg_tile, long long ntiles, int K, float *gbg) {
    int k = threadIdx.x;
    if (k >= K) return;
    float v = gbg[k];
    for (long long t = 0; t < ntiles; t++) v += bg_tile[t * K + k];
    gbg[k] = v;
}

#endif
