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

// a scale from its raw value: exp of the biased log-scale clamped to [log scale_min, log scale_max]
GAUSS_FN real R_(gauss_scale)(real r, const R_(GaussAct) *ga) {
    real x = r + (real)ga->scale_bias, lo = (real)ga->log_scale_min, hi = (real)ga->log_scale_max;
    return exp(x < lo ? lo : (x > hi ? hi : x));
}

// The transcendental values of one pixel, which the forward and the backward both start from (the CPU
// computes them for a tile of pixels at a time, vectorised): f the offsets' tanh (with DUSt3R) or f[0] the
// depth logit's sigmoid (without); e the 3 scales; *s the opacity's sigmoid.
GAUSS_FN void R_(gauss_fns)(real f[3], real e[3], real *s, const real *r, int has_pos, const R_(GaussAct) *ga) {
    if (has_pos)
        for (int c = 0; c < 3; c++) f[c] = tanh(r[c]);
    else
        f[0] = R_(sigmoid)(r[0]);
    for (int c = 0; c < 3; c++) e[c] = R_(gauss_scale)(r[6 + c], ga);
    *s = R_(sigmoid)(r[13]);
}

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

// the activations from the pixel's transcendental values (gauss_fns)
GAUSS_FN void R_(gaussian_act_from)(real *g, const real *r, const real *rgb, const real *pos, real conf, const real *o,
                                    const real *d, const R_(GaussAct) *ga, const real *f, const real *e, real s) {
    if (pos) {
        for (int c = 0; c < 3; c++) g[c] = pos[c] + (real)ga->pos_offset_max * f[c];
    } else {
        real depth = (real)ga->depth_near + (real)(ga->depth_far - ga->depth_near) * f[0];
        for (int c = 0; c < 3; c++) g[c] = o[c] + d[c] * depth;
    }
    for (int c = 0; c < 3; c++) g[3 + c] = rgb[c] + r[3 + c];
    for (int c = 0; c < 3; c++) g[6 + c] = e[c];
    R_(gauss_rot)(g + 9, r + 9);
    g[13] = s * conf;
}

GAUSS_FN void R_(gaussian_act)(real *g, const real *r, const real *rgb, const real *pos, real conf, const real *o,
                               const real *d, const R_(GaussAct) *ga) {
    real f[3], e[3], s;
    R_(gauss_fns)(f, e, &s, r, pos != NULL, ga);
    R_(gaussian_act_from)(g, r, rgb, pos, conf, o, d, ga, f, e, s);
}

// dr += d(activations)ᵀ dg from the pixel's transcendental values; has_pos as pos != NULL in the forward
GAUSS_FN void R_(gaussian_act_backward_from)(real *dr, const real *dg, const real *r, int has_pos, real conf,
                                             const real *d, const R_(GaussAct) *ga, const real *f, const real *e,
                                             real s) {
    if (has_pos) {
        for (int c = 0; c < 3; c++) dr[c] += dg[c] * (real)ga->pos_offset_max * (1 - f[c] * f[c]);
    } else {
        real dd = dg[0] * d[0] + dg[1] * d[1] + dg[2] * d[2];
        dr[0] += dd * (real)(ga->depth_far - ga->depth_near) * f[0] * (1 - f[0]);
    }
    for (int c = 0; c < 3; c++) dr[3 + c] += dg[3 + c];
    for (int c = 0; c < 3; c++) { // no gradient through an active clamp; inside it e = exp(x)
        real x = r[6 + c] + (real)ga->scale_bias;
        if (x >= (real)ga->log_scale_min && x <= (real)ga->log_scale_max) dr[6 + c] += dg[6 + c] * e[c];
    }
    R_(gauss_rot_backward)(dr + 9, dg + 9, r + 9);
    dr[13] += dg[13] * conf * s * (1 - s);
}

GAUSS_FN void R_(gaussian_act_backward)(real *dr, const real *dg, const real *r, int has_pos, real conf,
                                        const real *d, const R_(GaussAct) *ga) {
    real f[3], e[3], s;
    R_(gauss_fns)(f, e, &s, r, has_pos, ga);
    R_(gaussian_act_backward_from)(dr, dg, r, has_pos, conf, d, ga, f, e, s);
}
