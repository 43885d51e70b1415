// batch_random.c — random well-formed input batches (see batch_random.h).
#include "batch_random.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/atb.h"
#include "../common/rng.h"
#include "../common/util.h"

static double *fill(size_t n, uint64_t seed, uint64_t stream, double lo, double hi, int normal, double sd) {
    double *x = (double *)mallocCheck(sizeof(double) * (n ? n : 1));
    Rng r = rng_make(seed, stream);
    for (size_t i = 0; i < n; i++) x[i] = normal ? sd * rng_normal_at(&r, i) : lo + (hi - lo) * rng_uniform64_at(&r, i);
    return x;
}

static float *to_f32(const double *x, size_t n) {
    float *y = (float *)mallocCheck(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) y[i] = (float)x[i];
    return y;
}

void camera_look_at_up(double *w2c, const double eye[3], const double target[3], const double up[3]) {
    double z[3] = {target[0] - eye[0], target[1] - eye[1], target[2] - eye[2]}, x[3], y[3];
    double nz = sqrt(z[0] * z[0] + z[1] * z[1] + z[2] * z[2]), nu = sqrt(up[0] * up[0] + up[1] * up[1] + up[2] * up[2]);
    for (int i = 0; i < 3; i++) z[i] /= nz;
    double a[3] = {-up[0] / nu + 0.0, -up[1] / nu + 0.0, -up[2] / nu + 0.0}; // image y (down); + 0.0: no −0
    if (fabs(a[0] * z[0] + a[1] * z[1] + a[2] * z[2]) > 0.999) { // looking (nearly) along up: another hint
        int zfree = fabs(a[2]) < 0.9;
        a[0] = zfree ? 0 : 1, a[1] = 0, a[2] = zfree ? 1 : 0;
    }
    x[0] = a[1] * z[2] - a[2] * z[1];
    x[1] = a[2] * z[0] - a[0] * z[2];
    x[2] = a[0] * z[1] - a[1] * z[0];
    double nx = sqrt(x[0] * x[0] + x[1] * x[1] + x[2] * x[2]);
    for (int i = 0; i < 3; i++) x[i] /= nx;
    y[0] = z[1] * x[2] - z[2] * x[1];
    y[1] = z[2] * x[0] - z[0] * x[2];
    y[2] = z[0] * x[1] - z[1] * x[0];
    const double *R[3] = {x, y, z};
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 3; j++) w2c[i * 4 + j] = R[i][j];
        w2c[i * 4 + 3] = -(R[i][0] * eye[0] + R[i][1] * eye[1] + R[i][2] * eye[2]);
    }
}

void camera_look_at(double *w2c, const double eye[3], const double target[3]) {
    const double up[3] = {0, -1, 0};
    camera_look_at_up(w2c, eye, target, up);
}

void random_camera(double *w2c, double *K, int W, int H, Rng *r) {
    double az = (rng_next_uniform(r) - 0.5) * 2.4, el = (rng_next_uniform(r) - 0.5) * 0.8;
    double dist = 0.9 + 0.2 * rng_next_uniform(r);
    double eye[3] = {dist * cos(el) * sin(az), dist * sin(el), -dist * cos(el) * cos(az)}, origin[3] = {0, 0, 0};
    camera_look_at(w2c, eye, origin);
    double f = 1.2 * W;
    double k[9] = {f, 0, W / 2.0, 0, f, H / 2.0, 0, 0, 1};
    memcpy(K, k, sizeof k);
}

void random_batch_make(RandomBatch *rb, const ModelConfig *c, int B, uint64_t seed) {
    memset(rb, 0, sizeof *rb);
    rb->cfg = *c;
    rb->B = B;
    size_t BV = (size_t)B * c->views_in, HW = (size_t)c->img_h * c->img_w, n[NUM_INPUTS];
    mc_input_sizes(c, B, n);
    rb->n_rgb = n[0], rb->n_pos = n[1], rb->n_conf = n[2], rb->n_sap = n[3], rb->n_w2c = n[4], rb->n_K = n[5];
    rb->n_expr = n[6];
    rb->n_w = BV * HW * 14;
    rb->rgb = fill(rb->n_rgb, seed, 1, 0, 1, 0, 0);
    rb->pos = fill(rb->n_pos, seed, 2, 0, 0, 1, 0.08);
    rb->conf = fill(rb->n_conf, seed, 3, 0, 1, 0, 0);
    rb->sap = fill(rb->n_sap, seed, 4, 0, 0, 1, 1.0);
    rb->expr = fill(rb->n_expr, seed, 5, 0, 0, 1, 1.0);
    rb->w = fill(rb->n_w, seed, 6, 0, 0, 1, 1.0);
    rb->w2c = (double *)mallocCheck(sizeof(double) * rb->n_w2c);
    rb->K = (double *)mallocCheck(sizeof(double) * rb->n_K);
    Rng r = rng_make(seed, 7);
    for (size_t i = 0; i < BV; i++) random_camera(rb->w2c + 12 * i, rb->K + 9 * i, c->img_w, c->img_h, &r);
    rb->rgb32 = to_f32(rb->rgb, rb->n_rgb);
    rb->pos32 = to_f32(rb->pos, rb->n_pos);
    rb->conf32 = to_f32(rb->conf, rb->n_conf);
    rb->sap32 = to_f32(rb->sap, rb->n_sap);
    rb->w2c32 = to_f32(rb->w2c, rb->n_w2c);
    rb->K32 = to_f32(rb->K, rb->n_K);
    rb->expr32 = to_f32(rb->expr, rb->n_expr);
    rb->w32 = to_f32(rb->w, rb->n_w);
}

void random_batch_free(RandomBatch *rb) {
    double *d[] = {rb->rgb, rb->pos, rb->conf, rb->sap, rb->w2c, rb->K, rb->expr, rb->w};
    float *f[] = {rb->rgb32, rb->pos32, rb->conf32, rb->sap32, rb->w2c32, rb->K32, rb->expr32, rb->w32};
    for (int i = 0; i < 8; i++) {
        free(d[i]);
        free(f[i]);
    }
    memset(rb, 0, sizeof *rb);
}

Avat3rBatch random_batch_f32(const RandomBatch *rb) {
    Avat3rBatch b = {rb->rgb32, rb->n_pos ? rb->pos32 : NULL, rb->n_conf ? rb->conf32 : NULL,
                     rb->n_sap ? rb->sap32 : NULL, rb->w2c32, rb->K32, rb->expr32};
    return b;
}

Avat3rBatch_f64 random_batch_f64(const RandomBatch *rb) {
    Avat3rBatch_f64 b = {rb->rgb, rb->n_pos ? rb->pos : NULL, rb->n_conf ? rb->conf : NULL,
                         rb->n_sap ? rb->sap : NULL, rb->w2c, rb->K, rb->expr};
    return b;
}

void random_batch_write(const RandomBatch *rb, const char *path) {
    const ModelConfig *c = &rb->cfg;
    uint64_t B = rb->B, V = c->views_in, H = c->img_h, W = c->img_w;
    uint64_t d_rgb[] = {B, V, H, W, 3}, d_conf[] = {B, V, H, W};
    uint64_t d_sap[] = {B, V, (uint64_t)c->sapiens_h, (uint64_t)c->sapiens_w, (uint64_t)c->sapiens_ch};
    uint64_t d_w2c[] = {B, V, 3, 4}, d_K[] = {B, V, 3, 3}, d_expr[] = {B, (uint64_t)c->expr_dim};
    uint64_t d_w[] = {B, V * H * W, 14};
    uint32_t count = 5 + (c->use_dust3r ? 2 : 0) + (c->use_sapiens ? 1 : 0);
    AtbWriter w;
    atb_write_begin(&w, path, count);
    atb_write_tensor(&w, "rgb", ATB_F64, 5, d_rgb, rb->rgb);
    if (c->use_dust3r) {
        atb_write_tensor(&w, "pos", ATB_F64, 5, d_rgb, rb->pos);
        atb_write_tensor(&w, "conf", ATB_F64, 4, d_conf, rb->conf);
    }
    if (c->use_sapiens) atb_write_tensor(&w, "sap", ATB_F64, 5, d_sap, rb->sap);
    atb_write_tensor(&w, "w2c", ATB_F64, 4, d_w2c, rb->w2c);
    atb_write_tensor(&w, "K", ATB_F64, 4, d_K, rb->K);
    atb_write_tensor(&w, "expr", ATB_F64, 2, d_expr, rb->expr);
    atb_write_tensor(&w, "w", ATB_F64, 3, d_w, rb->w);
    atb_write_end(&w);
}

void random_targets_make(const ModelConfig *cfg, int B, uint64_t seed, float **w2c, float **K, float **rgb) {
    const int Vt = cfg->views_target, H = cfg->img_h, W = cfg->img_w;
    const size_t n_rgb = (size_t)B * Vt * H * W * 3;
    *w2c = (float *)mallocCheck(sizeof(float) * B * Vt * 12);
    *K = (float *)mallocCheck(sizeof(float) * B * Vt * 9);
    *rgb = (float *)mallocCheck(sizeof(float) * n_rgb);
    Rng r = rng_make(seed, 0);
    for (int i = 0; i < B * Vt; i++) {
        double w[12], k[9];
        random_camera(w, k, W, H, &r);
        for (int j = 0; j < 12; j++) (*w2c)[i * 12 + j] = (float)w[j];
        for (int j = 0; j < 9; j++) (*K)[i * 9 + j] = (float)k[j];
    }
    for (size_t i = 0; i < n_rgb; i++) (*rgb)[i] = rng_uniform_at(&r, i + 1000); // past the cameras' draws
}
