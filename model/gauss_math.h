// gauss_math.h — the Gaussian activations of one pixel (docs/model.md step 11) and their backward,
// written once over `real` for the CPU (model/layers.c, float and double; real and R_ from common/real.h)
// and the GPU (model/cuda/pixels_cuda.cu: real = float, R_(x) = x, GAUSS_FN = __host__ __device__
// static inline), so both paths run the same arithmetic. No include guard: each precision of layers.c
// includes it once. raw/g/dg are one pixel's 14 values; pos (3 values, NULL without DUSt3R) and conf
// are the pixel's DUSt3R point and confidence; o and d its camera centre and unit ray (read only without
// DUSt3R; NULL with it).
#ifndef GAUSS_FN
#define GAUSS_FN static inline
#endif

GAUSS_FN real R_(sigmoid)(real x) { return 1 / (1 + exp(-x)); }

// rotation: the identity plus the raw 4 values, normalised (as torch.nn.functional.normalize)
GAUSS_FN void R_(gauss_rot)(real *g, const real *r) {
    real q[4] = {r[0] + 1, r[1], r[2], r[3]};
    real nq = sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
    real den = nq > (real)1e-12 ? nq : (real)1e-12;
    for (int c = 0; c < 4; c++) g[c] = q[c] / den;
}

GAUSS_FN void R_(gauss_rot_backward)(real *dr, const real *dg, const real *r) {
    real q[4] = {r[0] + 1, r[1], r[2], r[3]};
    real nq = sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
    if (nq > (real)1e-12) { // d(q/|q|) = (dg − u (u·dg)) / |q| with u = q/|q|
        real u[4], ud = 0;
        for (int c = 0; c < 4; c++) {
            u[c] = q[c] / nq;
            ud += u[c] * dg[c];
        }
        for (int c = 0; c < 4; c++) dr[c] += (dg[c] - u[c] * ud) / nq;
    } else {
        for (int c = 0; c < 4; c++) dr[c] += dg[c] / (real)1e-12;
    }
}

GAUSS_FN void R_(gaussian_act)(real *g, const real *r, const real *rgb, const real *pos, real conf, const real *o,
                               const real *d, const R_(GaussAct) *ga) {
    if (pos) {
        for (int c = 0; c < 3; c++) g[c] = pos[c] + (real)ga->pos_offset_max * tanh(r[c]);
    } else {
        real depth = (real)ga->depth_near + (real)(ga->depth_far - ga->depth_near) * R_(sigmoid)(r[0]);
        for (int c = 0; c < 3; c++) g[c] = o[c] + d[c] * depth;
    }
    for (int c = 0; c < 3; c++) g[3 + c] = rgb[c] + r[3 + c];
    for (int c = 0; c < 3; c++) {
        real x = r[6 + c] + (real)ga->scale_bias;
        real lo = (real)ga->log_scale_min, hi = (real)ga->log_scale_max;
        g[6 + c] = exp(x < lo ? lo : (x > hi ? hi : x));
    }
    R_(gauss_rot)(g + 9, r + 9);
    g[13] = R_(sigmoid)(r[13]) * conf;
}

// dr += d(activations)ᵀ dg; has_pos as pos != NULL in the forward
GAUSS_FN void R_(gaussian_act_backward)(real *dr, const real *dg, const real *r, int has_pos, real conf,
                                        const real *d, const R_(GaussAct) *ga) {
    if (has_pos) {
        for (int c = 0; c < 3; c++) {
            real t = tanh(r[c]);
            dr[c] += dg[c] * (real)ga->pos_offset_max * (1 - t * t);
        }
    } else {
        real s = R_(sigmoid)(r[0]);
        real dd = dg[0] * d[0] + dg[1] * d[1] + dg[2] * d[2];
        dr[0] += dd * (real)(ga->depth_far - ga->depth_near) * s * (1 - s);
    }
    for (int c = 0; c < 3; c++) dr[3 + c] += dg[3 + c];
    for (int c = 0; c < 3; c++) {
        real x = r[6 + c] + (real)ga->scale_bias;
        real lo = (real)ga->log_scale_min, hi = (real)ga->log_scale_max;
        if (x >= lo && x <= hi) dr[6 + c] += dg[6 + c] * exp(x);
    }
    R_(gauss_rot_backward)(dr + 9, dg + 9, r + 9);
    real s = R_(sigmoid)(r[13]);
    dr[13] += dg[13] * conf * s * (1 - s);
}
