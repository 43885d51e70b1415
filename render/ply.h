// ply.h — Gaussians as a standard 3DGS PLY (binary little-endian, float32, one `vertex` element):
// x y z nx ny nz f_dc_0..2 opacity scale_0..2 rot_0..3 (SH degree 0), values BEFORE activation as the
// Inria trainer writes them, so any 3DGS viewer opens the file (docs/formats.md).
#ifndef AVAT3R_PLY_H
#define AVAT3R_PLY_H
#include <stddef.h>

#define PLY_SH_C0 0.28209479177387814 // colour = 0.5 + C0 · f_dc

typedef struct { // raw (pre-activation) fields, each [n, ...]
    size_t n;
    float *xyz;     // [n, 3]
    float *f_dc;    // [n, 3]
    float *opacity; // [n] logit
    float *scale;   // [n, 3] log
    float *rot;     // [n, 4] (w, x, y, z), not necessarily normalised
} PlyGaussians;

void ply_alloc(PlyGaussians *p, size_t n);
void ply_free(PlyGaussians *p);
// From activated values (colour in [0,1], opacity in (0,1), positive scales): f_dc = (c − 0.5)/C0,
// opacity = logit (clamped to [1e-6, 1 − 1e-6] first), scale = log. Returns the count of Gaussians whose
// values had to be clamped (non-positive scale or opacity outside (0,1)).
size_t ply_from_activated(PlyGaussians *p, const float *means, const float *quats, const float *scales,
                          const float *opacities, const float *colors);
// Back to activated values (exp, sigmoid, 0.5 + C0·f_dc, normalised quaternion).
void ply_to_activated(const PlyGaussians *p, float *means, float *quats, float *scales, float *opacities,
                      float *colors);
// Writes atomically. Reading accepts the properties in any order and ignores extra ones (f_rest_*,
// normals); it refuses anything but binary little-endian float vertices, naming the file and field.
void ply_write(const char *path, const PlyGaussians *p);
int ply_read(const char *path, PlyGaussians *p, char *err, size_t errlen);

#endif
