// test_raster_cuda.c — the CUDA rasterizer (render/cuda/raster_cuda.cu) against the CPU rasterizer
// (render/raster.c, float32) on random and pixel-aligned scenes: several images per batch, image sizes
// that are not multiples of the tile, partly culled and invalid Gaussians, K = 3 and a generic K, an
// empty scene, all Gaussians behind the cameras, a zero-size image, and an intersection pool too small
// (the growth path). Forward outputs and the saved state are poisoned with NaN (0xff bytes) before
// every run, so an element a kernel forgets to write fails; NaN is never accepted.
//
// Tolerances (relative to the largest |CPU value| of each tensor):
//   projection (mean2d, conic, depth, tile rectangles, sorted lists): expected bit-identical — the
//     kernels copy the CPU expressions in the same order and are compiled with --fmad=false; checked
//     at 1e-6 for the floats and exactly for the integers.
//   forward image / alpha / depth / T_final: 1e-5. The only difference left is expf (CUDA ≤ 2 ulp,
//     glibc ≤ 1 ulp), a few 1e-7 per term, accumulated over at most a few hundred terms per pixel.
//   gradients: 1e-4. The CPU sums each Gaussian's per-pixel terms in a fixed order (pixels in the tile,
//     then tiles in list order); the GPU sums 32 lanes in a warp, then adds the warps' sums with
//     atomicAdd in whatever order the blocks run. float32 sums of n terms in two different orders
//     differ by up to ~n·2^-24 of the sum of the |terms|; with up to ~10^3 terms per Gaussian and some
//     cancellation (means, conics) that is below 1e-4 of the tensor's largest element.
//   knife edges (docs/render.md): a threshold decision (α vs 1/255, T vs 1e-4, the 0.99 cap) can flip
//     where expf differs by an ulp; a flip changes one pixel by up to ~1e-2. A tensor passes with at
//     most 1e-4 (forward) / 1e-3 (gradients) of its elements beyond the tolerance; every such element
//     is counted in the output. With the small scenes here none is expected.
//
// Without a CUDA device it prints "skipped: no CUDA device" and exits 0.
// Timing at the paper's scale (4 input views of 512² = 1,048,576 Gaussians rendered into 8 views of
// 512²): `avat3r_cuda_raster_tests --bench [reps]` or AVAT3R_RASTER_BENCH=1; it also checks that scene
// against the CPU once.
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/rng.h"
#include "../../common/timer.h"
#include "../../render/cuda/raster_cuda.h"
#include "../../render/raster.h"
#include "../../tools/scene_random.h"

#include "cuda_test.h"

#define TOL_PROJ 1e-6
#define TOL_FWD 1e-5
#define TOL_BWD 1e-4
#define ALLOW_FWD 1e-4
#define ALLOW_BWD 1e-3

static int n_pass = 0, n_fail = 0;

static void *dput(const void *h, size_t bytes) {
    void *d = NULL;
    CK(cudaMalloc(&d, bytes ? bytes : 4));
    if (bytes) CK(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
    return d;
}
static void *dget(const void *d, size_t bytes) {
    void *h = malloc(bytes ? bytes : 4);
    if (bytes) CK(cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost));
    return h;
}
static void dpoison(void *d, size_t bytes) { // 0xffffffff is a NaN as float and -1 as int32
    if (bytes) CK(cudaMemset(d, 0xff, bytes));
}
static void tally(int ok) { ok ? n_pass++ : n_fail++; }

// float tensor: passes when nothing is NaN and at most allow_frac·n elements differ by more than
// tol·max|cpu|. scale2 multiplies the CPU values (2 for the accumulation check).
static int cmp_f(const char *name, const float *cpu, const float *dptr, size_t n, double tol, double allow_frac,
                 double scale2) {
    float *h = (float *)dget(dptr, 4 * n);
    double scale = 0, m = 0;
    size_t nan = 0, out = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(scale2 * cpu[i]));
    double lim = tol * scale;
    for (size_t i = 0; i < n; i++) {
        double ref = scale2 * cpu[i];
        if (h[i] != h[i] || ref != ref) {
            nan++;
            continue;
        }
        double e = fabs(h[i] - ref);
        m = fmax(m, e);
        out += e > lim;
    }
    free(h);
    size_t allow = (size_t)(allow_frac * n);
    int ok = nan == 0 && out <= allow;
    printf("    %s %-18s max abs %.3e (rel %.2e), beyond tol %zu of %zu (allowed %zu), NaN %zu\n", ok ? "PASS" : "FAIL",
           name, m, scale > 0 ? m / scale : m, out, n, allow, nan);
    tally(ok);
    return ok;
}

// int32 tensor against CPU values widened to int64: exact up to `allow` differing elements
static int cmp_i(const char *name, const int64_t *cpu, const int32_t *dptr, size_t n, size_t allow) {
    int32_t *h = (int32_t *)dget(dptr, 4 * n);
    size_t bad = 0, first = (size_t)-1;
    for (size_t i = 0; i < n; i++)
        if ((int64_t)h[i] != cpu[i]) {
            if (!bad) first = i;
            bad++;
        }
    int ok = bad <= allow;
    if (bad)
        printf("    %s %-18s %zu of %zu differ (allowed %zu); first at %zu: cpu %lld gpu %d\n", ok ? "PASS" : "FAIL",
               name, bad, n, allow, first, (long long)cpu[first], h[first]);
    else
        printf("    PASS %-18s identical (%zu)\n", name, n);
    free(h);
    tally(ok);
    return ok;
}

static int64_t *widen32(const int32_t *x, size_t n) {
    int64_t *y = (int64_t *)malloc(8 * (n ? n : 1));
    for (size_t i = 0; i < n; i++) y[i] = x[i];
    return y;
}

typedef struct {
    RasterIn in;
    void *p[8];
} DevIn;

static DevIn dev_in(const Scene *s) {
    RasterDims d = s->d;
    size_t BG = (size_t)d.B * d.G, BC = (size_t)d.B * d.Cm;
    DevIn r;
    r.p[0] = dput(s->means32, 4 * BG * 3);
    r.p[1] = dput(s->quats32, 4 * BG * 4);
    r.p[2] = dput(s->scales32, 4 * BG * 3);
    r.p[3] = dput(s->opac32, 4 * BG);
    r.p[4] = dput(s->colors32, 4 * BG * d.K);
    r.p[5] = dput(s->w2c32, 4 * BC * 12);
    r.p[6] = dput(s->K32, 4 * BC * 9);
    r.p[7] = dput(s->bg32, 4 * (size_t)d.K);
    RasterIn in = {(const float *)r.p[0], (const float *)r.p[1], (const float *)r.p[2], (const float *)r.p[3],
                   (const float *)r.p[4], (const float *)r.p[5], (const float *)r.p[6], (const float *)r.p[7]};
    r.in = in;
    return r;
}
static void dev_in_free(DevIn *r) {
    for (int i = 0; i < 8; i++) CK(cudaFree(r->p[i]));
}

typedef struct {
    double ipg;       // intersection pool per Gaussian
    int dalpha, ddepth; // use alpha / depth loss weights (else NULL)
    int no_quats;     // pass NULL for the quaternion gradient
    int reps;         // > 0: time forward and backward this many times (bench)
} CaseOpt;

// One scene through both rasterizers; returns 1 when every comparison passed.
static int run_case(const char *label, const Scene *s, CaseOpt o) {
    RasterDims d = s->d;
    size_t BG = (size_t)d.B * d.G, ni = (size_t)d.B * d.Cm, px = ni * d.W * d.H, nig = ni * d.G, K = d.K;
    int fail0 = n_fail;
    printf("  case %s: B=%d G=%d Cm=%d %dx%d K=%d\n", label, d.B, d.G, d.Cm, d.W, d.H, d.K);
    // CPU oracle
    Raster r;
    raster_build(&r, d, o.ipg);
    RasterIn in = scene_in32(s);
    double t0 = time_now_s();
    raster_forward(&r, &in);
    double t_cpu_fwd = time_now_s() - t0;
    float *wI = ct_rand_keyed(px * K, 4242, 1), *wA = o.dalpha ? ct_rand_keyed(px, 4242, 2) : NULL;
    float *wD = o.ddepth ? ct_rand_keyed(px, 4242, 3) : NULL;
    size_t gn[6] = {BG * 3, BG * 4, BG * 3, BG, BG * K, K};
    float *cg[6];
    for (int i = 0; i < 6; i++) cg[i] = (float *)calloc(gn[i] ? gn[i] : 1, 4);
    RasterGrad g = {cg[0], o.no_quats ? NULL : cg[1], cg[2], cg[3], cg[4], cg[5]};
    t0 = time_now_s();
    raster_backward(&r, &in, wI, wA, wD, &g);
    double t_cpu_bwd = time_now_s() - t0;
    // GPU
    DevIn din = dev_in(s);
    RasterCuda rc;
    raster_cuda_build(&rc, d, o.ipg);
    int nt = rc.tiles_x * rc.tiles_y;
    size_t ntot = ni * nt;
    dpoison(rc.image, 4 * px * K), dpoison(rc.alpha, 4 * px), dpoison(rc.depth, 4 * px);
    dpoison(rc.T_final, 4 * px), dpoison(rc.n_contrib, 4 * px);
    dpoison(rc.mean2d, 4 * nig * 2), dpoison(rc.conic, 4 * nig * 3), dpoison(rc.zcam, 4 * nig);
    dpoison(rc.rect, 4 * nig * 4), dpoison(rc.valid, BG), dpoison(rc.tile_off, 4 * (ntot + 1));
    dpoison(rc.isect, 4 * rc.isect_cap);
    raster_cuda_forward(&rc, &din.in);
    CK(cudaDeviceSynchronize());
    int ok = rc.n_invalid == r.n_invalid && rc.n_culled == r.n_culled && rc.n_isect == r.n_isect;
    printf("    %s counts: invalid %ld/%ld, culled %ld/%ld, intersections %zu/%zu (gpu/cpu)\n", ok ? "PASS" : "FAIL",
           rc.n_invalid, r.n_invalid, rc.n_culled, r.n_culled, rc.n_isect, r.n_isect);
    tally(ok);
    // saved state: projection and lists (expected bit-identical)
    int64_t *t64 = widen32(r.rect, nig * 4);
    cmp_i("rect", t64, rc.rect, nig * 4, 0);
    free(t64);
    uint8_t *hv = (uint8_t *)dget(rc.valid, BG);
    int vok = !memcmp(hv, r.valid, BG);
    printf("    %s valid\n", vok ? "PASS" : "FAIL");
    tally(vok);
    free(hv);
    cmp_f("mean2d", r.mean2d, rc.mean2d, nig * 2, TOL_PROJ, 0, 1);
    cmp_f("conic", r.conic, rc.conic, nig * 3, TOL_PROJ, 0, 1);
    cmp_f("zcam", r.zcam, rc.zcam, nig, TOL_PROJ, 0, 1);
    cmp_i("tile_off", r.tile_off, rc.tile_off, ntot + 1, 0);
    if (rc.n_isect == r.n_isect) {
        t64 = widen32(r.isect, r.n_isect);
        cmp_i("sorted lists", t64, rc.isect, r.n_isect, 0);
        free(t64);
    }
    // outputs
    cmp_f("image", r.image, rc.image, px * K, TOL_FWD, ALLOW_FWD, 1);
    cmp_f("alpha", r.alpha, rc.alpha, px, TOL_FWD, ALLOW_FWD, 1);
    cmp_f("depth", r.depth, rc.depth, px, TOL_FWD, ALLOW_FWD, 1);
    cmp_f("T_final", r.T_final, rc.T_final, px, TOL_FWD, ALLOW_FWD, 1);
    t64 = widen32(r.n_contrib, px);
    cmp_i("n_contrib", t64, rc.n_contrib, px, (size_t)(ALLOW_FWD * px));
    free(t64);
    // backward: gradients start at zero and accumulate; internal scratch poisoned
    float *dg[6];
    for (int i = 0; i < 6; i++) dg[i] = ct_zero(gn[i]);
    RasterGrad gg = {dg[0], o.no_quats ? NULL : dg[1], dg[2], dg[3], dg[4], dg[5]};
    float *dwI = (float *)dput(wI, 4 * px * K), *dwA = wA ? (float *)dput(wA, 4 * px) : NULL;
    float *dwD = wD ? (float *)dput(wD, 4 * px) : NULL;
    dpoison(rc.grad2d, 4 * nig * (7 + K)), dpoison(rc.bg_tile, 4 * ntot * K);
    raster_cuda_backward(&rc, &din.in, dwI, dwA, dwD, &gg);
    CK(cudaDeviceSynchronize());
    const char *gname[6] = {"d means", "d quats", "d scales", "d opacities", "d colors", "d background"};
    for (int i = 0; i < 6; i++)
        if (!(i == 1 && o.no_quats)) cmp_f(gname[i], cg[i], dg[i], gn[i], TOL_BWD, ALLOW_BWD, 1);
    if (o.no_quats) { // a NULL gradient is not written
        float *h = (float *)dget(dg[1], 4 * gn[1]);
        int z = 1;
        for (size_t i = 0; i < gn[1]; i++) z &= h[i] == 0;
        printf("    %s NULL quats gradient left alone\n", z ? "PASS" : "FAIL");
        tally(z);
        free(h);
    }
    // accumulation: a second backward adds the same gradients again
    raster_cuda_backward(&rc, &din.in, dwI, dwA, dwD, &gg);
    CK(cudaDeviceSynchronize());
    cmp_f("2× d means (+=)", cg[0], dg[0], gn[0], TOL_BWD, ALLOW_BWD, 2);
    cmp_f("2× d colors (+=)", cg[4], dg[4], gn[4], TOL_BWD, ALLOW_BWD, 2);
    cmp_f("2× d bg (+=)", cg[5], dg[5], gn[5], TOL_BWD, ALLOW_BWD, 2);
    if (o.reps > 0) { // timing
        cudaEvent_t e0, e1;
        CK(cudaEventCreate(&e0));
        CK(cudaEventCreate(&e1));
        float ms_f = 0, ms_b = 0, ms;
        for (int it = -2; it < o.reps; it++) { // two warm-up rounds
            CK(cudaEventRecord(e0, 0));
            raster_cuda_forward(&rc, &din.in);
            CK(cudaEventRecord(e1, 0));
            CK(cudaEventSynchronize(e1));
            CK(cudaEventElapsedTime(&ms, e0, e1));
            if (it >= 0) ms_f += ms;
            CK(cudaEventRecord(e0, 0));
            raster_cuda_backward(&rc, &din.in, dwI, dwA, dwD, &gg);
            CK(cudaEventRecord(e1, 0));
            CK(cudaEventSynchronize(e1));
            CK(cudaEventElapsedTime(&ms, e0, e1));
            if (it >= 0) ms_b += ms;
        }
        printf("    TIME %d images of %dx%d, %d Gaussians per scene, %zu intersections: forward %.3f ms, "
               "backward %.3f ms (mean of %d); CPU (this machine's threads) forward %.1f ms, backward %.1f ms\n",
               (int)ni, d.W, d.H, d.G, rc.n_isect, ms_f / o.reps, ms_b / o.reps, o.reps, 1e3 * t_cpu_fwd,
               1e3 * t_cpu_bwd);
        CK(cudaEventDestroy(e0));
        CK(cudaEventDestroy(e1));
    }
    for (int i = 0; i < 6; i++) {
        CK(cudaFree(dg[i]));
        free(cg[i]);
    }
    CK(cudaFree(dwI));
    if (dwA) CK(cudaFree(dwA));
    if (dwD) CK(cudaFree(dwD));
    raster_cuda_free(&rc);
    dev_in_free(&din);
    raster_free(&r);
    free(wI), free(wA), free(wD);
    return n_fail == fail0;
}

// Camera centre o = −Rᵀt of camera i of a scene (float64 masters)
static void cam_centre(const Scene *s, int i, double o[3]) {
    const double *M = s->w2c + 12 * i;
    for (int k = 0; k < 3; k++) o[k] = -(M[k] * M[3] + M[4 + k] * M[7] + M[8 + k] * M[11]);
}

static void bench(int reps) {
    RasterDims d = {1, 0, 8, 512, 512, 3};
    Scene s;
    scene_aligned(&s, d, 4, 512, 512, 31); // G = 4·512² = 1,048,576
    CaseOpt o = {4, 1, 1, 0, reps};
    run_case("paper scale (bench)", &s, o);
    scene_free(&s);
}

int main(int argc, char **argv) {
    if (raster_cuda_device_count() == 0) {
        printf("skipped: no CUDA device (the CUDA rasterizer tests run on a GPU machine, see "
               "docs/gpu-verification.md)\n");
        return 0;
    }
    int dev = 0;
    struct cudaDeviceProp prop;
    CK(cudaGetDevice(&dev));
    CK(cudaGetDeviceProperties(&prop, dev));
    printf("device %d: %s\n", dev, prop.name);
    const char *env = getenv("AVAT3R_RASTER_BENCH");
    if ((argc > 1 && !strcmp(argv[1], "--bench")) || (env && *env && strcmp(env, "0"))) {
        int reps = argc > 2 ? atoi(argv[2]) : 10;
        bench(reps > 0 ? reps : 10);
        printf("CUDA rasterizer bench: %d of %d checks passed\n", n_pass, n_pass + n_fail);
        return n_fail ? 1 : 0;
    }
    Scene s;
    CaseOpt o = {8, 1, 1, 0, 0};
    // 1. random cloud, one image, K = 3
    RasterDims d1 = {1, 300, 1, 64, 64, 3};
    scene_random(&s, d1, 1);
    run_case("random 1 image", &s, o);
    scene_free(&s);
    // 2. two scenes × three cameras, 70×45 (partial tiles), partly culled: pushed far, behind camera 0,
    //    outside the field of view, invalid inputs, opacities outside [0, 1]
    RasterDims d2 = {2, 500, 3, 70, 45, 3};
    scene_random(&s, d2, 2);
    for (int i = 0; i < 20; i++) s.means[(40 + i) * 3 + 2] += 3.0;
    double oc[3];
    cam_centre(&s, 0, oc);
    for (int i = 0; i < 10; i++)
        for (int k = 0; k < 3; k++) s.means[(70 + i) * 3 + k] = (1.2 + 0.05 * i) * oc[k];
    for (int i = 0; i < 10; i++) s.means[(90 + i) * 3 + 0] += 0.6 + 0.1 * i;
    s.means[0] = NAN;
    s.colors[3 * 3 + 1] = INFINITY;
    s.scales[5 * 3] = 0;
    s.scales[6 * 3 + 2] = -0.01;
    for (int k = 0; k < 4; k++) s.quats[8 * 4 + k] = 0;
    s.opac[10] = 1.5, s.opac[11] = -0.2, s.opac[12] = NAN, s.opac[500 + 13] = 1.2;
    scene_sync32(&s);
    run_case("random 2×3 partly culled", &s, o);
    // 3. the same with every camera of scene 1 turned around (its Gaussians all behind the near plane)
    for (int i = 3; i < 6; i++) {
        for (int k = 0; k < 3; k++) s.w2c[i * 12 + 8 + k] *= -1, s.w2c[i * 12 + 0 + k] *= -1;
        s.w2c[i * 12 + 11] *= -1, s.w2c[i * 12 + 3] *= -1;
    }
    scene_sync32(&s);
    run_case("scene 1 facing away", &s, o);
    // 4. pool too small: both grow it once (and log a warning)
    o.ipg = 0.05;
    run_case("pool growth", &s, o);
    o.ipg = 8;
    scene_free(&s);
    // 5. pixel-aligned scenes like the model's output: 2 scenes of 4 views of 24×24, 2 targets of 96×80
    RasterDims d5 = {2, 0, 2, 96, 80, 3};
    scene_aligned(&s, d5, 4, 24, 24, 5);
    run_case("pixel-aligned 2×2", &s, o);
    scene_free(&s);
    // 6. generic K (5), only the image loss, no quaternion gradient
    RasterDims d6 = {1, 200, 2, 40, 33, 5};
    scene_random(&s, d6, 6);
    CaseOpt o6 = {8, 0, 0, 1, 0};
    run_case("K=5, image loss only", &s, o6);
    scene_free(&s);
    // 7. all three loss terms with K = 1
    RasterDims d7 = {1, 150, 1, 33, 17, 1};
    scene_random(&s, d7, 7);
    run_case("K=1", &s, o);
    scene_free(&s);
    // 8. no Gaussians: the image is the background
    RasterDims d8 = {1, 0, 2, 20, 20, 3};
    scene_random(&s, d8, 8);
    run_case("empty scene", &s, o);
    scene_free(&s);
    // 9. zero-size image
    RasterDims d9 = {1, 50, 2, 0, 0, 3};
    scene_random(&s, d9, 9);
    run_case("zero-size image", &s, o);
    scene_free(&s);
    printf("CUDA rasterizer tests: %d of %d checks passed\n", n_pass, n_pass + n_fail);
    return n_fail ? 1 : 0;
}
