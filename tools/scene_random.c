// scene_random.c — random and pixel-aligned Gaussian scenes (see scene_random.h).
#include "scene_random.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/atb.h"
#include "../common/rng.h"
#include "../common/util.h"
#include "batch_random.h"

static void scene_alloc(Scene *s, RasterDims d) {
    memset(s, 0, sizeof *s);
    s->d = d;
    size_t BG = (size_t)d.B * d.G, BC = (size_t)d.B * d.Cm;
    s->means = (double *)callocCheck(BG * 3 + 1, 8);
    s->quats = (double *)callocCheck(BG * 4 + 1, 8);
    s->scales = (double *)callocCheck(BG * 3 + 1, 8);
    s->opac = (double *)callocCheck(BG + 1, 8);
    s->colors = (double *)callocCheck(BG * d.K + 1, 8);
    s->w2c = (double *)callocCheck(BC * 12, 8);
    s->K = (double *)callocCheck(BC * 9, 8);
    s->bg = (double *)callocCheck(d.K, 8);
}

static void cameras(Scene *s, Rng *r) {
    for (int i = 0; i < s->d.B * s->d.Cm; i++) random_camera(s->w2c + 12 * i, s->K + 9 * i, s->d.W, s->d.H, r);
    for (int k = 0; k < s->d.K; k++) s->bg[k] = rng_next_uniform(r);
}

void scene_random(Scene *s, RasterDims d, uint64_t seed) {
    scene_alloc(s, d);
    Rng r = rng_make(seed, 100);
    for (size_t i = 0; i < (size_t)d.B * d.G; i++) {
        for (int k = 0; k < 3; k++) s->means[i * 3 + k] = 0.3 * (rng_next_uniform(&r) - 0.5);
        for (int k = 0; k < 4; k++) s->quats[i * 4 + k] = rng_next_normal(&r);
        for (int k = 0; k < 3; k++) s->scales[i * 3 + k] = 0.01 + 0.07 * rng_next_uniform(&r);
        s->opac[i] = i % 7 == 3 ? 0.985 + 0.01 * rng_next_uniform(&r) : 0.05 + 0.9 * rng_next_uniform(&r);
        for (int k = 0; k < d.K; k++) s->colors[i * d.K + k] = rng_next_uniform(&r);
    }
    cameras(s, &r);
    scene_sync32(s);
}

void scene_aligned(Scene *s, RasterDims d, int V, int vw, int vh, uint64_t seed) {
    d.G = V * vw * vh;
    scene_alloc(s, d);
    Rng r = rng_make(seed, 200);
    double vw2c[12], vK[9];
    for (int b = 0; b < d.B; b++)
        for (int v = 0; v < V; v++) {
            random_camera(vw2c, vK, vw, vh, &r);
            double o[3];
            for (int c = 0; c < 3; c++) o[c] = -(vw2c[c] * vw2c[3] + vw2c[4 + c] * vw2c[7] + vw2c[8 + c] * vw2c[11]);
            for (int y = 0; y < vh; y++)
                for (int x = 0; x < vw; x++) {
                    size_t i = (size_t)b * d.G + ((size_t)v * vh + y) * vw + x;
                    double dc[3] = {(x + 0.5 - vK[2]) / vK[0], (y + 0.5 - vK[5]) / vK[4], 1}, dw[3];
                    for (int c = 0; c < 3; c++) dw[c] = vw2c[c] * dc[0] + vw2c[4 + c] * dc[1] + vw2c[8 + c] * dc[2];
                    double depth = 0.9 + 0.05 * rng_next_uniform(&r); // a bumpy surface near the origin
                    for (int c = 0; c < 3; c++) s->means[i * 3 + c] = o[c] + depth * dw[c];
                    double foot = depth / vK[0]; // one input pixel at that depth
                    for (int c = 0; c < 3; c++) s->scales[i * 3 + c] = foot * (0.5 + 0.5 * rng_next_uniform(&r));
                    s->quats[i * 4] = 1;
                    for (int c = 1; c < 4; c++) s->quats[i * 4 + c] = 0.2 * rng_next_normal(&r);
                    s->opac[i] = 0.3 + 0.69 * rng_next_uniform(&r);
                    for (int k = 0; k < d.K; k++) s->colors[i * d.K + k] = rng_next_uniform(&r);
                }
        }
    cameras(s, &r);
    scene_sync32(s);
}

static float *f32_of(float *old, const double *x, size_t n) {
    free(old);
    float *y = (float *)mallocCheck(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) y[i] = (float)x[i];
    return y;
}

void scene_sync32(Scene *s) {
    RasterDims d = s->d;
    size_t BG = (size_t)d.B * d.G, BC = (size_t)d.B * d.Cm;
    s->means32 = f32_of(s->means32, s->means, BG * 3);
    s->quats32 = f32_of(s->quats32, s->quats, BG * 4);
    s->scales32 = f32_of(s->scales32, s->scales, BG * 3);
    s->opac32 = f32_of(s->opac32, s->opac, BG);
    s->colors32 = f32_of(s->colors32, s->colors, BG * d.K);
    s->w2c32 = f32_of(s->w2c32, s->w2c, BC * 12);
    s->K32 = f32_of(s->K32, s->K, BC * 9);
    s->bg32 = f32_of(s->bg32, s->bg, d.K);
}

void scene_free(Scene *s) {
    void *p[] = {s->means, s->quats, s->scales, s->opac, s->colors, s->w2c, s->K, s->bg, s->means32, s->quats32,
                 s->scales32, s->opac32, s->colors32, s->w2c32, s->K32, s->bg32};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) free(p[i]);
    memset(s, 0, sizeof *s);
}

RasterIn scene_in32(const Scene *s) {
    RasterIn in = {s->means32, s->quats32, s->scales32, s->opac32, s->colors32, s->w2c32, s->K32, s->bg32};
    return in;
}

RasterIn_f64 scene_in64(const Scene *s) {
    RasterIn_f64 in = {s->means, s->quats, s->scales, s->opac, s->colors, s->w2c, s->K, s->bg};
    return in;
}

void scene_write(const Scene *s, const char *path, const double *wI, const double *wA, const double *wD) {
    RasterDims d = s->d;
    uint64_t B = d.B, G = d.G, C = d.Cm, H = d.H, W = d.W, K = d.K;
    size_t px = (size_t)B * C * H * W;
    double *z = (double *)callocCheck(px * K + 1, 8);
    uint64_t dm[] = {B, G, 3}, dq[] = {B, G, 4}, dop[] = {B, G}, dc[] = {B, G, K}, dw[] = {B, C, 3, 4};
    uint64_t dk[] = {B, C, 3, 3}, dbg[] = {K}, dsz[] = {2}, dI[] = {B, C, H, W, K}, dA[] = {B, C, H, W};
    int32_t size[2] = {d.W, d.H};
    AtbWriter w;
    atb_write_begin(&w, path, 12);
    atb_write_tensor(&w, "means", ATB_F64, 3, dm, s->means);
    atb_write_tensor(&w, "quats", ATB_F64, 3, dq, s->quats);
    atb_write_tensor(&w, "scales", ATB_F64, 3, dm, s->scales);
    atb_write_tensor(&w, "opacities", ATB_F64, 2, dop, s->opac);
    atb_write_tensor(&w, "colors", ATB_F64, 3, dc, s->colors);
    atb_write_tensor(&w, "w2c", ATB_F64, 4, dw, s->w2c);
    atb_write_tensor(&w, "K", ATB_F64, 4, dk, s->K);
    atb_write_tensor(&w, "background", ATB_F64, 1, dbg, s->bg);
    atb_write_tensor(&w, "size", ATB_I32, 1, dsz, size);
    atb_write_tensor(&w, "wI", ATB_F64, 5, dI, wI ? wI : z);
    atb_write_tensor(&w, "wA", ATB_F64, 4, dA, wA ? wA : z);
    atb_write_tensor(&w, "wD", ATB_F64, 4, dA, wD ? wD : z);
    atb_write_end(&w);
    free(z);
}
