// test_render_reference.c — the C rasterizer against the naive PyTorch rasterizer
// (tools/reference/raster_ref.py: every Gaussian at every pixel, sorted, autograd for gradients).
// C writes the scene and loss weights, PyTorch writes images and all input gradients in float64;
// both C precisions are compared with them tensor by tensor.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/atb.h"
#include "../common/rng.h"
#include "raster.h"
#include "scene_random.h"
#include "test.h"

// Tolerances (measured on these scenes: f64 ≤ 2e-15, f32 ≤ 1.1e-6 relative to max|ref|): f64 1e-12;
// f32 1e-5 for images and 2e-5 for gradients.
// max|c − ref| / max|ref|; for float32 also the share of elements off by more than tol·max|ref|,
// because a float32 alpha can land on the other side of the 1/255 cut or the T stop than float64 does,
// which moves one pixel by up to 1/255 (printed, and bounded separately).
static int compare(const char *name, const float *c32, const double *c64, const double *ref, size_t n, double tol,
                   double max_outlier_share) {
    double m = 0, s = 0;
    for (size_t i = 0; i < n; i++) s = fmax(s, fabs(ref[i]));
    size_t outliers = 0;
    for (size_t i = 0; i < n; i++) {
        double v = c32 ? c32[i] : c64[i], e = fabs(v - ref[i]);
        if (e != e) e = INFINITY;
        if (e > tol * (s + 1e-30)) outliers++;
        m = fmax(m, e);
    }
    double share = n ? (double)outliers / n : 0;
    int bad = c32 ? share > max_outlier_share : outliers > 0;
    printf("    %-18s %-4s max abs %.3e  max|ref| %.3e  rel %.2e  beyond tol %zu/%zu %s\n", name, c32 ? "f32" : "f64",
           m, s, m / (s + 1e-30), outliers, n, bad ? "FAIL" : "ok");
    return bad;
}

static int run_case(Scene *s, const char *label) {
    RasterDims d = s->d;
    size_t px = (size_t)d.B * d.Cm * d.H * d.W, BG = (size_t)d.B * d.G;
    double *w[3];
    for (int k = 0; k < 3; k++) {
        size_t n = k == 0 ? px * d.K : px;
        w[k] = malloc(8 * n);
        Rng r = rng_make(31, k);
        for (size_t i = 0; i < n; i++) w[k][i] = rng_normal_at(&r, i);
    }
    char sp[1024], dp[1024], cmd[8192], err[1024];
    snprintf(sp, sizeof sp, "%s/scene_%s.atb", test_tmpdir(), label);
    snprintf(dp, sizeof dp, "%s/debug_%s.atb", test_tmpdir(), label);
    scene_write(s, sp, w[0], w[1], w[2]);
    const char *py = getenv("AVAT3R_PYTHON") ? getenv("AVAT3R_PYTHON") : "/usr/bin/python3";
    snprintf(cmd, sizeof cmd, "'%s' '%s/tools/reference/raster_ref.py' render --scene '%s' --out '%s' --dtype float64",
             py, test_source_root(), sp, dp);
    CHECK(test_system(cmd) == 0, "the PyTorch rasterizer failed");
    Atb ref;
    CHECK(!atb_read(dp, &ref, err, sizeof err), "%s", err);
    // C in both precisions
    Raster r32;
    Raster_f64 r64;
    raster_build(&r32, d, 8);
    raster_build_f64(&r64, d, 8);
    RasterIn in32 = scene_in32(s);
    RasterIn_f64 in64 = scene_in64(s);
    raster_forward(&r32, &in32);
    raster_forward_f64(&r64, &in64);
    size_t ng = BG * (3 + 4 + 3 + 1 + d.K) + d.K;
    double *g64 = calloc(ng, 8);
    float *g32 = calloc(ng, 4), *w32[3];
    for (int k = 0; k < 3; k++) {
        size_t n = k == 0 ? px * d.K : px;
        w32[k] = malloc(4 * n);
        for (size_t i = 0; i < n; i++) w32[k][i] = (float)w[k][i];
    }
    size_t o[7] = {0, BG * 3, BG * 7, BG * 10, BG * 11, BG * (11 + d.K), ng};
    RasterGrad_f64 G64 = {g64 + o[0], g64 + o[1], g64 + o[2], g64 + o[3], g64 + o[4], g64 + o[5]};
    RasterGrad G32 = {g32 + o[0], g32 + o[1], g32 + o[2], g32 + o[3], g32 + o[4], g32 + o[5]};
    raster_backward_f64(&r64, &in64, w[0], w[1], w[2], &G64);
    raster_backward(&r32, &in32, w32[0], w32[1], w32[2], &G32);
    printf("    scene %s: B=%d G=%d Cm=%d %dx%d, %zu intersections, %ld invalid, %ld culled\n", label, d.B, d.G, d.Cm, d.W,
           d.H, r64.n_isect, r64.n_invalid, r64.n_culled);
    struct { const char *name; const float *a32; const double *a64; size_t n; double tol32; } t[] = {
        {"image", r32.image, r64.image, px * d.K, 1e-5},
        {"alpha", r32.alpha, r64.alpha, px, 1e-5},
        {"depth", r32.depth, r64.depth, px, 1e-5},
        {"grad.means", g32 + o[0], g64 + o[0], BG * 3, 2e-5},
        {"grad.quats", g32 + o[1], g64 + o[1], BG * 4, 2e-5},
        {"grad.scales", g32 + o[2], g64 + o[2], BG * 3, 2e-5},
        {"grad.opacities", g32 + o[3], g64 + o[3], BG, 2e-5},
        {"grad.colors", g32 + o[4], g64 + o[4], BG * d.K, 2e-5},
        {"grad.background", g32 + o[5], g64 + o[5], (size_t)d.K, 2e-5},
    };
    int bad = 0;
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) {
        double *rv = malloc(8 * (t[k].n + 1));
        if (atb_get_f64(&ref, t[k].name, rv, t[k].n, err, sizeof err)) {
            printf("    %s\n", err);
            bad++;
        } else {
            bad += compare(t[k].name, NULL, t[k].a64, rv, t[k].n, 1e-12, 0);
            bad += compare(t[k].name, t[k].a32, NULL, rv, t[k].n, t[k].tol32, 0.005);
        }
        free(rv);
    }
    const AtbTensor *ni = atb_find(&ref, "n_invalid");
    long ref_invalid = ni ? (long)((const int32_t *)ni->data)[0] : -1;
    CHECK(ref_invalid == r64.n_invalid, "invalid count: C %ld, PyTorch %ld", r64.n_invalid, ref_invalid);
    atb_free(&ref);
    raster_free(&r32);
    raster_free_f64(&r64);
    for (int k = 0; k < 3; k++) free(w[k]), free(w32[k]);
    free(g64), free(g32);
    CHECK(bad == 0, "%d tensors differ from the PyTorch rasterizer", bad);
    return 0;
}

static int test_ref_random(void) {
    RasterDims d = {2, 150, 2, 45, 33, 3};
    Scene s;
    scene_random(&s, d, 21);
    for (int i = 0; i < 4; i++) s.means[(10 + i) * 3 + 2] += 2.5; // far away: small or off-screen
    for (int k = 0; k < 3; k++) // one behind camera 0
        s.means[20 * 3 + k] = 1.3 * -(s.w2c[k] * s.w2c[3] + s.w2c[4 + k] * s.w2c[7] + s.w2c[8 + k] * s.w2c[11]);
    scene_sync32(&s);
    int rc = run_case(&s, "random");
    scene_free(&s);
    return rc;
}

static int test_ref_aligned(void) {
    RasterDims d = {1, 0, 3, 40, 36, 3};
    Scene s;
    scene_aligned(&s, d, 4, 12, 10, 22);
    int rc = run_case(&s, "aligned");
    scene_free(&s);
    return rc;
}

static int test_ref_invalid(void) {
    RasterDims d = {1, 60, 2, 32, 24, 4}; // K = 4 channels: the channel count is a parameter
    Scene s;
    scene_random(&s, d, 23);
    s.means[0] = NAN;
    s.colors[2 * 4 + 3] = INFINITY;
    s.scales[4 * 3 + 1] = 0;
    s.scales[5 * 3] = -0.02;
    for (int k = 0; k < 4; k++) s.quats[6 * 4 + k] = 0;
    s.opac[7] = 1.5, s.opac[8] = -0.2;
    scene_sync32(&s);
    int rc = run_case(&s, "invalid");
    scene_free(&s);
    return rc;
}

// The reference's own self-tests (gradcheck, tile rule, stop/skip arithmetic, invariants).
static int test_ref_selftest(void) {
    CHECK(test_python_script("tools/reference/raster_selftest.py") == 0, "tools/reference/raster_selftest.py failed");
    return 0;
}

const TestCase render_reference_tests[] = {
    {"render_reference/selftest", test_ref_selftest},
    {"render_reference/random_scenes", test_ref_random},
    {"render_reference/pixel_aligned", test_ref_aligned},
    {"render_reference/invalid_inputs_4_channels", test_ref_invalid},
    {NULL, NULL},
};
