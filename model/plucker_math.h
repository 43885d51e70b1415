// plucker_math.h — the Plücker ray (o×d, d) of a pixel, written once over `real` for the CPU
// (model/layers.c, float and double; real and R_ from common/real.h) and the GPU
// (model/cuda/pixels_cuda.cu: real = float, R_(x) = x, PLUCKER_FN = __host__ __device__ static inline), so
// both paths run the same double-precision arithmetic. No include guard: each precision of layers.c
// includes it once (the camera struct, double only, has its own guard).
#ifndef PLUCKER_FN
#define PLUCKER_FN static inline
#endif

#ifndef AVAT3R_PLUCKER_CAM
#define AVAT3R_PLUCKER_CAM
typedef struct {
    double R[3][3];  // world-to-camera rotation
    double o[3];     // camera centre −Rᵀt
    double Ki[3][3]; // K⁻¹
} PluckerCam;
#endif

// One view's camera from w2c[3,4] and K[3,3]; K⁻¹ by the adjugate (K is a general 3×3 here, pinhole in
// practice).
PLUCKER_FN void R_(plucker_cam)(PluckerCam *cam, const real *w2c, const real *K) {
    double t[3];
    for (int r = 0; r < 3; r++) {
        for (int c = 0; c < 3; c++) cam->R[r][c] = w2c[r * 4 + c];
        t[r] = w2c[r * 4 + 3];
    }
    for (int c = 0; c < 3; c++) cam->o[c] = -(cam->R[0][c] * t[0] + cam->R[1][c] * t[1] + cam->R[2][c] * t[2]);
    double a = K[0], b = K[1], c = K[2], d = K[3], e = K[4], f = K[5], g = K[6], h = K[7], ii = K[8];
    double det = a * (e * ii - f * h) - b * (d * ii - f * g) + c * (d * h - e * g);
    double Ki[3][3] = {{(e * ii - f * h) / det, (c * h - b * ii) / det, (b * f - c * e) / det},
                       {(f * g - d * ii) / det, (a * ii - c * g) / det, (c * d - a * f) / det},
                       {(d * h - e * g) / det, (b * g - a * h) / det, (a * e - b * d) / det}};
    for (int r = 0; r < 3; r++)
        for (int c3 = 0; c3 < 3; c3++) cam->Ki[r][c3] = Ki[r][c3];
}

// out[6] = (o×d, d) for the unit world direction d through the centre of pixel (x, y)
PLUCKER_FN void R_(plucker_ray)(real *out, const PluckerCam *cam, int x, int y) {
    double px[3] = {x + 0.5, y + 0.5, 1.0}, dc[3], dw[3];
    for (int r = 0; r < 3; r++) dc[r] = cam->Ki[r][0] * px[0] + cam->Ki[r][1] * px[1] + cam->Ki[r][2] * px[2];
    for (int r = 0; r < 3; r++) dw[r] = cam->R[0][r] * dc[0] + cam->R[1][r] * dc[1] + cam->R[2][r] * dc[2]; // Rᵀ dc
    double n = sqrt(dw[0] * dw[0] + dw[1] * dw[1] + dw[2] * dw[2]);
    for (int r = 0; r < 3; r++) dw[r] /= n;
    const double *o = cam->o;
    out[0] = (real)(o[1] * dw[2] - o[2] * dw[1]);
    out[1] = (real)(o[2] * dw[0] - o[0] * dw[2]);
    out[2] = (real)(o[0] * dw[1] - o[1] * dw[0]);
    out[3] = (real)dw[0];
    out[4] = (real)dw[1];
    out[5] = (real)dw[2];
}
