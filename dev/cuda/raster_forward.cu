// raster_forward.cu — kernel lab for the rasterizer's forward compositing (llm.c dev/cuda style).
// Random screen-space Gaussians are binned into 16×16 tiles and depth-sorted on the CPU; a CPU
// reference composites every pixel front to back with the constants of docs/render.md; each kernel
// version is checked against it and timed.
//
// Build and run from the repository root (nvcc only, no other dependency):
//   nvcc -O3 --fmad=false -gencode=arch=compute_90,code=sm_90 dev/cuda/raster_forward.cu -o /tmp/raster_forward
//   /tmp/raster_forward 2            # version 2; optional: W H N reps, e.g. /tmp/raster_forward 1 512 512 200000 50
//
// version 1: one thread per pixel, one 16×16 block per tile, every Gaussian read from global memory
// version 2: as render/cuda/raster_cuda.cu: the block stages 256 Gaussians at a time in shared memory
//            and stops as soon as every pixel of the tile is done (__syncthreads_count)
// On the CPU emulator (dev/cuda/emu.h; correctness only, the times mean nothing): bash tools/cuda_emu.sh lab
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../model/cuda/launch.h" // KLAUNCH: the same launches on a GPU and on the emulator
#include "../../render/raster.h"      // the constants only

#define TILE RASTER_TILE
#define BLOCK (TILE * TILE)
#define CK(x)                                                                                          \
    do {                                                                                               \
        cudaError_t e_ = (x);                                                                          \
        if (e_ != cudaSuccess) {                                                                       \
            fprintf(stderr, "CUDA error %s at %s:%d\n", cudaGetErrorString(e_), __FILE__, __LINE__);   \
            exit(1);                                                                                   \
        }                                                                                              \
    } while (0)

typedef struct { // Gaussian in screen space, as the forward kernel reads it
    float u, v, A, B, C, o, z, col[3];
} G2;

static uint64_t rng_state = 88172645463325252ull;
static float frand(void) { // xorshift64, uniform in [0, 1)
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / 16777216.0));
}

static const G2 *sort_base;
static int cmp_depth(const void *pa, const void *pb) {
    int a = *(const int *)pa, b = *(const int *)pb;
    float za = sort_base[a].z, zb = sort_base[b].z;
    return za < zb ? -1 : za > zb ? 1 : (a > b) - (a < b);
}

// ---------------------------------------------------------------------------------------------
// CPU reference: per pixel, the tile's list front to back (docs/render.md "Compositing")

static void composite_cpu(float *img, const G2 *g, const int *off, const int *list, int W, int H, int tx_n) {
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int t = (y / TILE) * tx_n + x / TILE;
            float T = 1, c[3] = {0, 0, 0}, px = x + 0.5f, py = y + 0.5f;
            for (int i = off[t]; i < off[t + 1]; i++) {
                const G2 *q = g + list[i];
                float dx = px - q->u, dy = py - q->v;
                float sig = 0.5f * (q->A * dx * dx + q->C * dy * dy) + q->B * dx * dy;
                if (sig < 0) continue;
                float al = q->o * expf(-sig);
                if (al > (float)RASTER_ALPHA_MAX) al = (float)RASTER_ALPHA_MAX;
                if (al < (float)RASTER_ALPHA_MIN) continue;
                float Tn = T * (1 - al);
                if (Tn <= (float)RASTER_T_MIN) break;
                for (int k = 0; k < 3; k++) c[k] += q->col[k] * al * T;
                T = Tn;
            }
            for (int k = 0; k < 3; k++) img[(y * W + x) * 3 + k] = c[k] + T; // white background
        }
}

// ---------------------------------------------------------------------------------------------
// version 1: global memory only

__global__ void raster_forward_kernel1(float *img, const G2 *g, const int *off, const int *list, int W, int H, int tx_n) {
    int t = blockIdx.x, x = (t % tx_n) * TILE + threadIdx.x % TILE, y = (t / tx_n) * TILE + threadIdx.x / TILE;
    if (x >= W || y >= H) return; // no barrier in this version
    float T = 1, c[3] = {0, 0, 0}, px = x + 0.5f, py = y + 0.5f;
    for (int i = off[t]; i < off[t + 1]; i++) {
        G2 q = g[list[i]];
        float dx = px - q.u, dy = py - q.v;
        float sig = 0.5f * (q.A * dx * dx + q.C * dy * dy) + q.B * dx * dy;
        if (sig < 0) continue;
        float al = q.o * expf(-sig);
        if (al > (float)RASTER_ALPHA_MAX) al = (float)RASTER_ALPHA_MAX;
        if (al < (float)RASTER_ALPHA_MIN) continue;
        float Tn = T * (1 - al);
        if (Tn <= (float)RASTER_T_MIN) break;
        for (int k = 0; k < 3; k++) c[k] += q.col[k] * al * T;
        T = Tn;
    }
    for (int k = 0; k < 3; k++) img[(y * W + x) * 3 + k] = c[k] + T;
}

// version 2: shared-memory batches, whole-tile early exit

__global__ void __launch_bounds__(BLOCK)
    raster_forward_kernel2(float *img, const G2 *g, const int *off, const int *list, int W, int H, int tx_n) {
    extern __shared__ float smem[];
    G2 *s_g = (G2 *)smem; // [BLOCK]
    int t = blockIdx.x, tid = threadIdx.x;
    int x = (t % tx_n) * TILE + tid % TILE, y = (t / tx_n) * TILE + tid / TILE;
    int inside = x < W && y < H, done = !inside;
    float T = 1, c[3] = {0, 0, 0}, px = x + 0.5f, py = y + 0.5f;
    int s = off[t], e = off[t + 1];
    for (int b0 = s; b0 < e; b0 += BLOCK) {
        if (__syncthreads_count(done) == BLOCK) break; // also the barrier before refilling s_g
        if (b0 + tid < e) s_g[tid] = g[list[b0 + tid]];
        __syncthreads();
        int nb = e - b0 < BLOCK ? e - b0 : BLOCK;
        for (int j = 0; j < nb && !done; j++) {
            const G2 *q = s_g + j;
            float dx = px - q->u, dy = py - q->v;
            float sig = 0.5f * (q->A * dx * dx + q->C * dy * dy) + q->B * dx * dy;
            if (sig < 0) continue;
            float al = q->o * expf(-sig);
            if (al > (float)RASTER_ALPHA_MAX) al = (float)RASTER_ALPHA_MAX;
            if (al < (float)RASTER_ALPHA_MIN) continue;
            float Tn = T * (1 - al);
            if (Tn <= (float)RASTER_T_MIN) {
                done = 1;
                break;
            }
            for (int k = 0; k < 3; k++) c[k] += q->col[k] * al * T;
            T = Tn;
        }
    }
    if (inside)
        for (int k = 0; k < 3; k++) img[(y * W + x) * 3 + k] = c[k] + T;
}

static void launch(int version, float *img, const G2 *g, const int *off, const int *list, int W, int H, int tx_n, int nt) {
    if (version == 1) KLAUNCH(raster_forward_kernel1, nt, BLOCK, 0, img, g, off, list, W, H, tx_n);
    else KLAUNCH(raster_forward_kernel2, nt, BLOCK, sizeof(G2) * BLOCK, img, g, off, list, W, H, tx_n);
}

int main(int argc, char **argv) {
    int version = argc > 1 ? atoi(argv[1]) : 2;
    int W = argc > 3 ? atoi(argv[2]) : 512, H = argc > 3 ? atoi(argv[3]) : 512;
    int N = argc > 4 ? atoi(argv[4]) : 200000, reps = argc > 5 ? atoi(argv[5]) : 100;
    if (version < 1 || version > 2 || W < 1 || H < 1 || N < 1 || reps < 1) {
        fprintf(stderr, "usage: %s [version 1|2] [W H] [N] [reps]\n", argv[0]);
        return 1;
    }
    int tx_n = (W + TILE - 1) / TILE, ty_n = (H + TILE - 1) / TILE, nt = tx_n * ty_n;
    // random Gaussians: standard deviations 0.4–3 px, random orientation, +0.3 px² blur
    G2 *g = (G2 *)malloc(sizeof(G2) * N);
    int *rect = (int *)malloc(sizeof(int) * 4 * N);
    for (int i = 0; i < N; i++) {
        float sx = 0.4f + 2.6f * frand(), sy = 0.4f + 2.6f * frand(), th = 6.2831853f * frand();
        float cs = cosf(th), sn = sinf(th);
        float a = cs * cs * sx * sx + sn * sn * sy * sy + (float)RASTER_BLUR;
        float b = cs * sn * (sx * sx - sy * sy);
        float c = sn * sn * sx * sx + cs * cs * sy * sy + (float)RASTER_BLUR;
        float det = a * c - b * b;
        G2 q = {W * frand(), H * frand(), c / det, -b / det, a / det, 0.05f + 0.94f * frand(), 0.5f + 1.5f * frand(),
                {frand(), frand(), frand()}};
        g[i] = q;
        float mid = 0.5f * (a + c), r = ceilf(3 * sqrtf(mid + sqrtf(fmaxf(0.1f, mid * mid - det))));
        rect[4 * i] = (int)fminf(fmaxf(floorf((q.u - r) / TILE), 0), tx_n);
        rect[4 * i + 1] = (int)fminf(fmaxf(floorf((q.u + r + TILE - 1) / TILE), 0), tx_n);
        rect[4 * i + 2] = (int)fminf(fmaxf(floorf((q.v - r) / TILE), 0), ty_n);
        rect[4 * i + 3] = (int)fminf(fmaxf(floorf((q.v + r + TILE - 1) / TILE), 0), ty_n);
    }
    // bin: count, prefix sum, fill in Gaussian order, sort each tile by (depth, index)
    int *off = (int *)calloc(nt + 1, sizeof(int));
    for (int i = 0; i < N; i++)
        for (int ty = rect[4 * i + 2]; ty < rect[4 * i + 3]; ty++)
            for (int tx = rect[4 * i]; tx < rect[4 * i + 1]; tx++) off[ty * tx_n + tx + 1]++;
    for (int t = 0; t < nt; t++) off[t + 1] += off[t];
    int n_isect = off[nt], *cur = (int *)malloc(sizeof(int) * nt), *list = (int *)malloc(sizeof(int) * (n_isect + 1));
    memcpy(cur, off, sizeof(int) * nt);
    for (int i = 0; i < N; i++)
        for (int ty = rect[4 * i + 2]; ty < rect[4 * i + 3]; ty++)
            for (int tx = rect[4 * i]; tx < rect[4 * i + 1]; tx++) list[cur[ty * tx_n + tx]++] = i;
    sort_base = g;
    for (int t = 0; t < nt; t++) qsort(list + off[t], off[t + 1] - off[t], sizeof(int), cmp_depth);
    float *ref = (float *)malloc(sizeof(float) * 3 * W * H), *out = (float *)malloc(sizeof(float) * 3 * W * H);
    composite_cpu(ref, g, off, list, W, H, tx_n);
    // device
    G2 *d_g;
    int *d_off, *d_list;
    float *d_img;
    CK(cudaMalloc((void **)&d_g, sizeof(G2) * N));
    CK(cudaMalloc((void **)&d_off, sizeof(int) * (nt + 1)));
    CK(cudaMalloc((void **)&d_list, sizeof(int) * (n_isect + 1)));
    CK(cudaMalloc((void **)&d_img, sizeof(float) * 3 * W * H));
    CK(cudaMemcpy(d_g, g, sizeof(G2) * N, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(d_off, off, sizeof(int) * (nt + 1), cudaMemcpyHostToDevice));
    CK(cudaMemcpy(d_list, list, sizeof(int) * (n_isect + 1), cudaMemcpyHostToDevice));
    CK(cudaMemset(d_img, 0xff, sizeof(float) * 3 * W * H)); // NaN: an unwritten pixel fails
    launch(version, d_img, d_g, d_off, d_list, W, H, tx_n, nt);
    CK(cudaMemcpy(out, d_img, sizeof(float) * 3 * W * H, cudaMemcpyDeviceToHost));
    double maxerr = 0;
    long bad = 0;
    for (long i = 0; i < 3L * W * H; i++) {
        double e = fabs((double)out[i] - ref[i]);
        if (!(e <= 1e-5)) bad++; // NaN counts as bad
        if (e > maxerr) maxerr = e;
    }
    printf("version %d, %dx%d, %d Gaussians, %d intersections: max abs err %.3e, %ld of %ld beyond 1e-5\n", version, W,
           H, N, n_isect, maxerr, bad, 3L * W * H);
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    launch(version, d_img, d_g, d_off, d_list, W, H, tx_n, nt); // warm-up
    CK(cudaEventRecord(e0, 0));
    for (int r = 0; r < reps; r++) launch(version, d_img, d_g, d_off, d_list, W, H, tx_n, nt);
    CK(cudaEventRecord(e1, 0));
    CK(cudaEventSynchronize(e1));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    printf("time: %.4f ms per launch (mean of %d)\n", ms / reps, reps);
    CK(cudaEventDestroy(e0));
    CK(cudaEventDestroy(e1));
    CK(cudaFree(d_g));
    CK(cudaFree(d_off));
    CK(cudaFree(d_list));
    CK(cudaFree(d_img));
    free(g), free(rect), free(off), free(cur), free(list), free(ref), free(out);
    return bad > (long)(1e-4 * 3L * W * H) ? 1 : 0;
}
