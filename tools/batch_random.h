// batch_random.h — a random but well-formed input batch (cameras on a sphere looking at the head,
// point maps near the origin), for self-checks, benchmarks and the reference tests.
#ifndef AVAT3R_BATCH_RANDOM_H
#define AVAT3R_BATCH_RANDOM_H
#include <stdint.h>
#include "../common/rng.h"
#include "avat3r.h"

typedef struct {
    ModelConfig cfg;
    int B;
    // float64 master copies and float32 copies of the same values; w = loss weights [B, V·H·W, 14]
    double *rgb, *pos, *conf, *sap, *w2c, *K, *expr, *w;
    float *rgb32, *pos32, *conf32, *sap32, *w2c32, *K32, *expr32, *w32;
    size_t n_rgb, n_pos, n_conf, n_sap, n_w2c, n_K, n_expr, n_w;
} RandomBatch;

// World-to-camera [R|t] (OpenCV axes: x right, y down, z forward) of a camera at eye looking at target with
// `up` pointing up in the image; within ~2.6° of looking along `up`, another hint axis keeps it defined.
void camera_look_at_up(double *w2c, const double eye[3], const double target[3], const double up[3]);
// The same with image y along world −y (up = (0, −1, 0)).
void camera_look_at(double *w2c, const double eye[3], const double target[3]);
// A camera ~1 m from the origin looking at it (OpenCV), focal 1.2·W, principal point at the centre.
void random_camera(double *w2c, double *K, int W, int H, Rng *r);

void random_batch_make(RandomBatch *rb, const ModelConfig *cfg, int B, uint64_t seed);
void random_batch_free(RandomBatch *rb);
Avat3rBatch random_batch_f32(const RandomBatch *rb);
Avat3rBatch_f64 random_batch_f64(const RandomBatch *rb);
// Supervision for a training step on such a batch: Vt random target cameras per sample (random_camera)
// and uniform random colours, float32: w2c [B, Vt, 12], K [B, Vt, 9], rgb [B, Vt, H, W, 3] (malloc'd).
void random_targets_make(const ModelConfig *cfg, int B, uint64_t seed, float **w2c, float **K, float **rgb);
// Writes the batch as a tensor bundle (docs/formats.md "Test batch"), float64.
void random_batch_write(const RandomBatch *rb, const char *path);

#endif
