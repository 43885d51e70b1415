// test_render.c — the rasterizer: every input gradient against central differences in double,
// invariants (a point lands on its pixel, occlusion, empty scenes, alpha range), bad input, and
// thread-count independence.
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/atb.h"
#include "../common/rng.h"
#include "ply.h"
#include "raster.h"
#include "scene_random.h"
#include "test.h"

typedef struct {
    Raster_f64 r;
    Scene s;
    double *wI, *wA, *wD;
} Case;

static double *rnd(size_t n, uint64_t stream) {
    double *x = (double *)malloc(sizeof(double) * (n ? n : 1));
    Rng r = rng_make(555, stream);
    for (size_t i = 0; i < n; i++) x[i] = rng_normal_at(&r, i);
    return x;
}

static double case_loss(Case *c) {
    RasterIn_f64 in = scene_in64(&c->s);
    raster_forward_f64(&c->r, &in);
    RasterDims d = c->s.d;
    size_t px = (size_t)d.B * d.Cm * d.H * d.W;
    double l = 0;
    for (size_t i = 0; i < px * d.K; i++) l += c->wI[i] * c->r.image[i];
    for (size_t i = 0; i < px; i++) l += c->wA[i] * c->r.alpha[i] + c->wD[i] * c->r.depth[i];
    return l;
}

// FD over every element of x (or 60 spread ones); noise floor as in tests/test_layers.c.
static int fd_check(Case *c, const char *name, double *x, size_t n, const double *grad, double tol) {
    double worst = 0, gmax = 0;
    for (size_t i = 0; i < n; i++) gmax = fmax(gmax, fabs(grad[i]));
    size_t step = n > 60 ? n / 60 : 1, checked = 0;
    for (size_t i = 0; i < n; i += step, checked++) {
        double keep = x[i], h = 1e-6;
        x[i] = keep + h;
        double lp = case_loss(c);
        x[i] = keep - h;
        double lm = case_loss(c);
        x[i] = keep;
        double fd = (lp - lm) / (2 * h);
        worst = fmax(worst, fabs(fd - grad[i]) / fmax(fabs(fd) + fabs(grad[i]), 1e-3 * gmax + 1e-12));
    }
    case_loss(c);
    printf("    %-12s worst rel err %.2e over %zu elements (max |grad| %.2e)\n", name, worst, checked, gmax);
    return worst < tol;
}

static int fd_scene(Scene *s, const char *label) {
    Case c;
    c.s = *s;
    RasterDims d = s->d;
    raster_build_f64(&c.r, d, 8);
    size_t px = (size_t)d.B * d.Cm * d.H * d.W, BG = (size_t)d.B * d.G;
    c.wI = rnd(px * d.K, 1), c.wA = rnd(px, 2), c.wD = rnd(px, 3);
    case_loss(&c);
    printf("    scene %s: %d Gaussians, %zu intersections, %ld culled, %ld invalid\n", label, d.G, c.r.n_isect,
           c.r.n_culled, c.r.n_invalid);
    double *gm = calloc(BG * 3 + 1, 8), *gq = calloc(BG * 4 + 1, 8), *gs = calloc(BG * 3 + 1, 8);
    double *go = calloc(BG + 1, 8), *gc = calloc(BG * d.K + 1, 8), *gb = calloc(d.K, 8);
    RasterGrad_f64 g = {gm, gq, gs, go, gc, gb};
    RasterIn_f64 in = scene_in64(&c.s);
    raster_backward_f64(&c.r, &in, c.wI, c.wA, c.wD, &g);
    int ok = 1;
    ok &= fd_check(&c, "means", c.s.means, BG * 3, gm, 1e-5);
    ok &= fd_check(&c, "quats", c.s.quats, BG * 4, gq, 1e-5);
    ok &= fd_check(&c, "scales", c.s.scales, BG * 3, gs, 1e-5);
    ok &= fd_check(&c, "opacities", c.s.opac, BG, go, 1e-5);
    ok &= fd_check(&c, "colors", c.s.colors, BG * d.K, gc, 1e-5);
    ok &= fd_check(&c, "background", c.s.bg, d.K, gb, 1e-5);
    raster_free_f64(&c.r);
    free(c.wI), free(c.wA), free(c.wD), free(gm), free(gq), free(gs), free(go), free(gc), free(gb);
    return ok;
}

static int test_fd_random(void) {
    // overlapping, nearly opaque (every 7th), off-screen and behind-camera Gaussians, 2 scenes × 2 cameras
    RasterDims d = {2, 40, 2, 37, 29, 3};
    Scene s;
    scene_random(&s, d, 1);
    for (int i = 0; i < 3; i++) s.means[(5 + i) * 3 + 2] += 3.0; // pushed far: off-screen or tiny
    // one Gaussian behind camera 0 of scene 0: on the line from the origin through that camera's
    // centre o = −Rᵀt, beyond the camera
    for (int k = 0; k < 3; k++) s.means[9 * 3 + k] = 1.3 * -(s.w2c[k] * s.w2c[3] + s.w2c[4 + k] * s.w2c[7] + s.w2c[8 + k] * s.w2c[11]);
    for (size_t i = 0; i < (size_t)d.B * d.G * 3; i++) s.scales[i] *= 1.5; // a few pixels wide at 37 px
    int ok = fd_scene(&s, "random");
    scene_free(&s);
    CHECK(ok, "rasterizer gradients disagree with finite differences");
    return 0;
}

static int test_fd_aligned(void) {
    RasterDims d = {1, 0, 2, 24, 20, 3}; // 4 input views of 6×5 pixels -> 120 Gaussians
    Scene s;
    scene_aligned(&s, d, 4, 6, 5, 2);
    int ok = fd_scene(&s, "pixel-aligned");
    scene_free(&s);
    CHECK(ok, "rasterizer gradients disagree with finite differences");
    return 0;
}

// A tiny Gaussian at a known point lands on the pixel it projects to.
static int test_point_lands(void) {
    RasterDims d = {1, 1, 1, 40, 30, 3};
    Scene s;
    scene_random(&s, d, 3);
    double *M = s.w2c, *K = s.K;
    // a point 1 m in front of the camera, off-centre: camera coords (0.05, -0.03, 1.0)
    double pc[3] = {0.05, -0.03, 1.0}, pw[3];
    for (int j = 0; j < 3; j++) pw[j] = M[j] * (pc[0] - M[3]) + M[4 + j] * (pc[1] - M[7]) + M[8 + j] * (pc[2] - M[11]);
    memcpy(s.means, pw, sizeof pw);
    s.scales[0] = s.scales[1] = s.scales[2] = 0.001;
    s.opac[0] = 0.9;
    s.colors[0] = 1, s.colors[1] = 1, s.colors[2] = 1;
    s.bg[0] = s.bg[1] = s.bg[2] = 0;
    scene_sync32(&s);
    Raster r;
    raster_build(&r, d, 4);
    RasterIn in = scene_in32(&s);
    raster_forward(&r, &in);
    double u = K[0] * pc[0] / pc[2] + K[2], v = K[4] * pc[1] / pc[2] + K[5];
    int best = 0;
    for (int i = 1; i < d.W * d.H; i++)
        if (r.alpha[i] > r.alpha[best]) best = i;
    int bx = best % d.W, by = best / d.W;
    printf("    projected (%.2f, %.2f), brightest pixel centre (%.1f, %.1f), alpha %.3f\n", u, v, bx + 0.5, by + 0.5,
           r.alpha[best]);
    CHECK(fabs(bx + 0.5 - u) <= 0.5 && fabs(by + 0.5 - v) <= 0.5 && r.alpha[best] > 0.5, "point missed its pixel");
    raster_free(&r);
    scene_free(&s);
    return 0;
}

// An opaque Gaussian in front hides one behind; an empty scene is the background; alpha ∈ [0, 1].
static int test_occlusion_empty_alpha(void) {
    RasterDims d = {1, 2, 1, 32, 32, 3};
    Scene s;
    scene_random(&s, d, 4);
    double *M = s.w2c;
    for (int gi = 0; gi < 2; gi++) {
        double pc[3] = {0, 0, gi == 0 ? 1.0 : 1.2};
        for (int j = 0; j < 3; j++)
            s.means[gi * 3 + j] = M[j] * (pc[0] - M[3]) + M[4 + j] * (pc[1] - M[7]) + M[8 + j] * (pc[2] - M[11]);
        for (int k = 0; k < 3; k++) s.scales[gi * 3 + k] = 0.2, s.colors[gi * 3 + k] = gi == 0 ? 1 : 0;
        s.opac[gi] = 1.0;
    }
    scene_sync32(&s);
    Raster r;
    raster_build(&r, d, 4);
    RasterIn in = scene_in32(&s);
    raster_forward(&r, &in);
    size_t c = (size_t)(16 * 32 + 16) * 3;
    printf("    centre pixel colour (%.4f %.4f %.4f), alpha %.4f\n", r.image[c], r.image[c + 1], r.image[c + 2], r.alpha[16 * 32 + 16]);
    CHECK(r.image[c] > 0.98 && r.alpha[16 * 32 + 16] > 0.98, "the front Gaussian does not cover the centre");
    raster_free(&r);
    // random scene: alpha within [0, 1]; empty scene: exactly the background
    scene_free(&s);
    d.G = 300;
    scene_random(&s, d, 5);
    raster_build(&r, d, 8);
    in = scene_in32(&s);
    raster_forward(&r, &in);
    for (int i = 0; i < d.W * d.H; i++) CHECK(r.alpha[i] >= 0 && r.alpha[i] <= 1, "alpha %g out of [0,1]", r.alpha[i]);
    raster_free(&r);
    scene_free(&s);
    d.G = 0;
    scene_random(&s, d, 6);
    raster_build(&r, d, 8);
    in = scene_in32(&s);
    raster_forward(&r, &in);
    for (int i = 0; i < d.W * d.H; i++)
        CHECK(r.alpha[i] == 0 && r.image[i * 3] == s.bg32[0] && r.image[i * 3 + 2] == s.bg32[2], "empty scene != background");
    raster_free(&r);
    scene_free(&s);
    return 0;
}

// NaN/Inf, zero or negative scales, zero quaternions, wild opacities, cameras facing away, empty images.
static int test_bad_input(void) {
    RasterDims d = {1, 50, 2, 33, 27, 3};
    Scene s;
    scene_random(&s, d, 7);
    s.means[0] = NAN;
    s.colors[3 * 3 + 1] = INFINITY;
    s.scales[5 * 3] = 0;
    s.scales[6 * 3 + 2] = -0.01;
    for (int k = 0; k < 4; k++) s.quats[8 * 4 + k] = 0;
    s.opac[10] = 1.5, s.opac[11] = -0.2, s.opac[12] = NAN;
    scene_sync32(&s);
    Raster r;
    raster_build(&r, d, 8);
    RasterIn in = scene_in32(&s);
    raster_forward(&r, &in);
    printf("    invalid %ld (expected 6), culled %ld\n", r.n_invalid, r.n_culled);
    CHECK(r.n_invalid == 6, "invalid count %ld", r.n_invalid);
    size_t px = (size_t)d.Cm * d.W * d.H;
    for (size_t i = 0; i < px * 3; i++) CHECK(isfinite(r.image[i]), "non-finite pixel");
    float *dI = calloc(px * 3, 4), *gm = calloc(150, 4), *gq = calloc(200, 4), *gs = calloc(150, 4), *go = calloc(50, 4);
    float *gc = calloc(150, 4), *gb = calloc(3, 4);
    for (size_t i = 0; i < px * 3; i++) dI[i] = 1;
    RasterGrad g = {gm, gq, gs, go, gc, gb};
    raster_backward(&r, &in, dI, NULL, NULL, &g);
    for (int i = 0; i < 150; i++) CHECK(isfinite(gm[i]) && isfinite(gs[i]) && isfinite(gc[i]), "non-finite gradient");
    for (int i = 0; i < 50; i++) CHECK(isfinite(go[i]), "non-finite opacity gradient");
    CHECK(gm[0] == 0 && gs[5 * 3] == 0 && gq[8 * 4] == 0, "invalid Gaussians must get no gradient");
    raster_free(&r);
    // every camera turned around: everything behind the near plane, the image is the background
    for (int i = 0; i < d.Cm; i++)
        for (int k = 0; k < 3; k++) s.w2c[i * 12 + 8 + k] *= -1, s.w2c[i * 12 + 0 + k] *= -1;
    for (int i = 0; i < d.Cm; i++) s.w2c[i * 12 + 11] *= -1, s.w2c[i * 12 + 3] *= -1;
    scene_sync32(&s);
    raster_build(&r, d, 8);
    in = scene_in32(&s);
    raster_forward(&r, &in);
    printf("    cameras facing away: culled %ld of %d\n", r.n_culled, d.Cm * d.G - d.Cm * 6);
    CHECK(r.n_culled == d.Cm * (d.G - 6), "cameras facing away should cull every valid Gaussian");
    for (size_t i = 0; i < px; i++) CHECK(r.alpha[i] == 0, "alpha behind the camera");
    raster_free(&r);
    // zero-size image
    RasterDims z = {1, 50, 2, 0, 0, 3};
    raster_build(&r, z, 8);
    raster_forward(&r, &in);
    raster_backward(&r, &in, NULL, NULL, NULL, &g);
    raster_free(&r);
    scene_free(&s);
    free(dI), free(gm), free(gq), free(gs), free(go), free(gc), free(gb);
    return 0;
}

// Same scene with 1 and 2 threads: bit-identical images and gradients.
static int test_threads(void) {
    RasterDims d = {1, 0, 2, 48, 40, 3};
    Scene s;
    scene_aligned(&s, d, 4, 16, 16, 9);
    d = s.d;
    size_t px = (size_t)d.Cm * d.W * d.H, n = (size_t)d.G;
    float *img[2], *grad[2];
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(t + 1);
        Raster r;
        raster_build(&r, d, 8);
        RasterIn in = scene_in32(&s);
        raster_forward(&r, &in);
        float *dI = malloc(px * 3 * 4);
        for (size_t i = 0; i < px * 3; i++) dI[i] = (float)sin(0.37 * i);
        grad[t] = calloc(n * 14, 4);
        RasterGrad g = {grad[t], grad[t] + 3 * n, grad[t] + 7 * n, grad[t] + 10 * n, grad[t] + 11 * n, NULL};
        raster_backward(&r, &in, dI, r.alpha, NULL, &g);
        img[t] = malloc(px * 3 * 4);
        memcpy(img[t], r.image, px * 3 * 4);
        raster_free(&r);
        free(dI);
    }
    CHECK(!memcmp(img[0], img[1], px * 3 * 4), "image depends on the thread count");
    CHECK(!memcmp(grad[0], grad[1], n * 14 * 4), "gradients depend on the thread count");
    free(img[0]), free(img[1]), free(grad[0]), free(grad[1]);
    scene_free(&s);
    return 0;
}

// PLY: raw fields round-trip bit for bit, an independent numpy reader agrees field by field, the
// activation conversions invert each other, and the CLI renders and inspects the file.
static int test_ply(void) {
    RasterDims d = {1, 0, 1, 64, 64, 3};
    Scene s;
    scene_aligned(&s, d, 4, 8, 8, 11);
    size_t n = (size_t)s.d.G;
    PlyGaussians p, q;
    ply_alloc(&p, n);
    size_t clamped = ply_from_activated(&p, s.means32, s.quats32, s.scales32, s.opac32, s.colors32);
    CHECK(clamped == 0, "%zu Gaussians clamped", clamped);
    char path[1024], ref[1024], err[1024], cmd[8192];
    snprintf(path, sizeof path, "%s/g.ply", test_tmpdir());
    snprintf(ref, sizeof ref, "%s/g_expected.atb", test_tmpdir());
    ply_write(path, &p);
    CHECK(!ply_read(path, &q, err, sizeof err), "%s", err);
    CHECK(q.n == n && !memcmp(p.xyz, q.xyz, 12 * n) && !memcmp(p.f_dc, q.f_dc, 12 * n) &&
              !memcmp(p.opacity, q.opacity, 4 * n) && !memcmp(p.scale, q.scale, 12 * n) && !memcmp(p.rot, q.rot, 16 * n),
          "PLY round trip not bit-exact");
    float *m = malloc(12 * n), *qu = malloc(16 * n), *sc = malloc(12 * n), *op = malloc(4 * n), *co = malloc(12 * n);
    ply_to_activated(&q, m, qu, sc, op, co);
    ply_free(&q); // q is read into again below
    double e = 0;
    for (size_t i = 0; i < 3 * n; i++) {
        e = fmax(e, fabs(sc[i] - s.scales32[i]) / s.scales32[i]);
        e = fmax(e, fabs(co[i] - s.colors32[i]));
    }
    for (size_t i = 0; i < n; i++) e = fmax(e, fabs(op[i] - s.opac32[i]));
    CHECK(e < 1e-5, "activated round trip error %g", e);
    uint64_t d3[] = {n, 3}, d1[] = {n}, d4[] = {n, 4};
    AtbWriter w;
    atb_write_begin(&w, ref, 5);
    atb_write_tensor(&w, "xyz", ATB_F32, 2, d3, p.xyz);
    atb_write_tensor(&w, "f_dc", ATB_F32, 2, d3, p.f_dc);
    atb_write_tensor(&w, "opacity", ATB_F32, 1, d1, p.opacity);
    atb_write_tensor(&w, "scale", ATB_F32, 2, d3, p.scale);
    atb_write_tensor(&w, "rot", ATB_F32, 2, d4, p.rot);
    atb_write_end(&w);
    const char *py = getenv("AVAT3R_PYTHON") ? getenv("AVAT3R_PYTHON") : "/usr/bin/python3";
    snprintf(cmd, sizeof cmd, "'%s' '%s/tools/reference/ply_check.py' '%s' '%s'", py, test_source_root(), path, ref);
    CHECK(test_system(cmd) == 0, "numpy reader disagrees with the C writer");
    snprintf(cmd, sizeof cmd, "'%s' render --ply '%s' --out '%s/g.png' --size 96x80 > /dev/null && test -s '%s/g.png'",
             AVAT3R_BINARY, path, test_tmpdir(), test_tmpdir());
    CHECK(test_system(cmd) == 0, "avat3r render failed");
    snprintf(cmd, sizeof cmd, "'%s' inspect '%s' | grep -q '\"count\":\t%zu'", AVAT3R_BINARY, path, n);
    CHECK(test_system(cmd) == 0, "avat3r inspect does not report the count");
    // damaged copies are refused with the file named
    snprintf(cmd, sizeof cmd, "cp '%s' '%s/bad.ply'", path, test_tmpdir());
    CHECK(test_system(cmd) == 0, "copy");
    snprintf(path, sizeof path, "%s/bad.ply", test_tmpdir());
    FILE *f = fopen(path, "r+b");
    fseek(f, -7, SEEK_END);
    long keep = ftell(f);
    fclose(f);
    CHECK(truncate(path, keep) == 0, "truncate");
    CHECK(ply_read(path, &q, err, sizeof err) != 0 && strstr(err, "truncated") && strstr(err, path), "truncated PLY: '%s'", err);
    f = fopen(path, "wb");
    fprintf(f, "ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nend_header\n0\n");
    fclose(f);
    CHECK(ply_read(path, &q, err, sizeof err) != 0 && strstr(err, "ascii"), "ascii PLY: '%s'", err);
    ply_free(&p);
    free(m), free(qu), free(sc), free(op), free(co);
    scene_free(&s);
    return 0;
}

// ---- the per-tile depth sort against qsort with the (depth, id) comparator ----
static const double *sort_z64;
static const float *sort_z32;
static int cmp_zid(const void *pa, const void *pb) {
    int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
    double za = sort_z64 ? sort_z64[a] : sort_z32[a], zb = sort_z64 ? sort_z64[b] : sort_z32[b];
    if (za != zb) return za < zb ? -1 : 1;
    return (a > b) - (a < b);
}

static int test_depth_sort(void) {
    // lengths on both sides of the insertion-sort cut; depths with many exact ties (a few distinct values),
    // spread over several exponents, and negative ones (the key's sign handling)
    int ns[] = {2, 3, 17, 32, 33, 64, 257, 1000, 4099};
    for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++)
        for (int ties = 0; ties < 2; ties++) {
            int n = ns[t], G = 2 * n + 7;
            double *z = (double *)malloc(sizeof(double) * G);
            float *zf = (float *)malloc(sizeof(float) * G);
            Rng r = rng_make(71, (uint64_t)(t * 2 + ties));
            for (int g = 0; g < G; g++) {
                double u = rng_uniform_at(&r, (uint64_t)g);
                z[g] = ties ? (double)((int)(u * 5) - 1) * 0.75 : exp(12 * u - 4) * (u < 0.1 ? -1 : 1);
                zf[g] = (float)z[g];
            }
            // a tile's list: ascending ids, a subset of the Gaussians
            int32_t *ids = (int32_t *)malloc(4 * n), *ids32 = (int32_t *)malloc(4 * n), *want = (int32_t *)malloc(4 * n);
            int32_t *scratch = (int32_t *)malloc(4 * n);
            void *keys = malloc(16 * (size_t)n);
            for (int i = 0, g = 0; i < n; i++, g += 1 + (g % 3 == 0)) ids[i] = ids32[i] = g % G;
            for (int i = 1; i < n; i++) // keep ascending and unique
                if (ids[i] <= ids[i - 1]) ids[i] = ids32[i] = ids[i - 1] + 1;
            int ok = 1;
            for (int prec = 0; prec < 2; prec++) {
                memcpy(want, ids, 4 * n);
                sort_z64 = prec ? z : NULL, sort_z32 = prec ? NULL : zf;
                qsort(want, (size_t)n, 4, cmp_zid);
                if (prec) raster_sort_by_depth_f64(ids, scratch, keys, n, z);
                else raster_sort_by_depth(ids32, scratch, keys, n, zf);
                ok &= !memcmp(prec ? ids : ids32, want, 4 * (size_t)n);
            }
            free(z), free(zf), free(ids), free(ids32), free(want), free(scratch), free(keys);
            CHECK(ok, "depth sort of %d ids (%s) differs from qsort by (depth, id)", ns[t], ties ? "ties" : "spread");
        }
    return 0;
}

const TestCase render_tests[] = {
    {"render/depth_sort", test_depth_sort},
    {"render/ply_roundtrip_numpy_cli", test_ply},
    {"render/finite_differences_random", test_fd_random},
    {"render/finite_differences_aligned", test_fd_aligned},
    {"render/point_lands_on_its_pixel", test_point_lands},
    {"render/occlusion_empty_alpha", test_occlusion_empty_alpha},
    {"render/bad_input", test_bad_input},
    {"render/thread_count_independent", test_threads},
    {NULL, NULL},
};
