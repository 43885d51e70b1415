// raster.c — the differentiable Gaussian rasterizer on the CPU (docs/render.md): EWA projection,
// 16×16 tile binning with a per-tile depth sort, front-to-back compositing, and the exact backward
// walked back to front per pixel. Compiled twice (float, and double with -DAVAT3R_F64).
// Threads: OpenMP over images (binning) and tiles (sort, compositing, backward). Gradients are first
// written per (tile, Gaussian) intersection and then summed per Gaussian in intersection order, so the
// result does not depend on the thread count.
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "../common/util.h"
#include "raster.h"
#include "../common/real.h"

#define GSTRIDE(K) (7 + (K)) // per-intersection gradient: du dv dA dB dC dopacity dz dcolor[K]

// ----------------------------------------------------------------------------------------------
// projection of one Gaussian into one camera and its backward: shared with the CUDA kernels

#include "raster_project.h"

// ----------------------------------------------------------------------------------------------
// the per-tile depth sort: (depth, Gaussian id) ascending. The tile's list is filled in id order, so a
// stable sort by depth alone gives the ties by id; an LSD radix sort on the depth's bits is stable.

#ifdef AVAT3R_F64
typedef uint64_t DepthKey;
#else
typedef uint32_t DepthKey;
#endif
#define KEY_BITS (8 * (int)sizeof(DepthKey))

// the float's bits as an unsigned key with the same order (negatives reversed, sign bit set for the rest)
static inline DepthKey R_(depth_key)(real z) {
    DepthKey u;
    memcpy(&u, &z, sizeof u);
    return (u >> (KEY_BITS - 1)) ? ~u : u | ((DepthKey)1 << (KEY_BITS - 1));
}

void R_(raster_sort_by_depth)(int32_t *ids, int32_t *ids2, void *keys, int n, const real *z) {
    DepthKey *k = (DepthKey *)keys, *k2 = k + n;
    for (int i = 0; i < n; i++) k[i] = R_(depth_key)(z[ids[i]]);
    if (n <= 32) { // insertion sort, stable: moves an element only past strictly larger keys
        for (int i = 1; i < n; i++) {
            DepthKey kk = k[i];
            int32_t id = ids[i], j = i - 1;
            for (; j >= 0 && k[j] > kk; j--) k[j + 1] = k[j], ids[j + 1] = ids[j];
            k[j + 1] = kk, ids[j + 1] = id;
        }
        return;
    }
    int32_t *src = ids, *dst = ids2;
    DepthKey *ks = k, *kd = k2;
    for (int shift = 0; shift < KEY_BITS; shift += 8) {
        int cnt[257] = {0};
        for (int i = 0; i < n; i++) cnt[((ks[i] >> shift) & 255) + 1]++;
        if (cnt[((ks[0] >> shift) & 255) + 1] == n) continue; // one digit for all: the pass moves nothing
        for (int b = 0; b < 256; b++) cnt[b + 1] += cnt[b];
        for (int i = 0; i < n; i++) {
            int o = cnt[(ks[i] >> shift) & 255]++;
            dst[o] = src[i], kd[o] = ks[i];
        }
        int32_t *ti = src;
        src = dst, dst = ti;
        DepthKey *tk = ks;
        ks = kd, kd = tk;
    }
    if (src != ids) memcpy(ids, src, sizeof(int32_t) * (size_t)n);
}

// ----------------------------------------------------------------------------------------------
// build / free

// the intersection pool and everything sized by it
static void R_(isect_alloc)(R_(Raster) *r) {
    r->isect = (int32_t *)mallocCheck(r->isect_cap * sizeof(int32_t));
    r->isect_grad = (real *)mallocCheck(r->isect_cap * GSTRIDE(r->d.K) * sizeof(real));
    r->sort_ids = (int32_t *)mallocCheck(r->isect_cap * sizeof(int32_t));
    r->sort_keys = mallocCheck(2 * r->isect_cap * sizeof(DepthKey));
}

void R_(raster_build)(R_(Raster) *r, RasterDims d, double isect_per_gaussian) {
    memset(r, 0, sizeof *r);
    if (d.B < 1 || d.G < 0 || d.Cm < 1 || d.W < 0 || d.H < 0 || d.K < 1 || d.K > RASTER_MAX_K)
        FATAL("raster_build: bad dimensions B=%d G=%d Cm=%d W=%d H=%d K=%d", d.B, d.G, d.Cm, d.W, d.H, d.K);
    r->d = d;
    r->tiles_x = (d.W + RASTER_TILE - 1) / RASTER_TILE;
    r->tiles_y = (d.H + RASTER_TILE - 1) / RASTER_TILE;
    r->n_img = d.B * d.Cm;
    size_t ni = r->n_img, G = d.G, px = (size_t)ni * d.W * d.H, nt = (size_t)ni * r->tiles_x * r->tiles_y;
    r->image = (real *)callocCheck(px * d.K + 1, sizeof(real));
    r->alpha = (real *)callocCheck(px + 1, sizeof(real));
    r->depth = (real *)callocCheck(px + 1, sizeof(real));
    r->T_final = (real *)callocCheck(px + 1, sizeof(real));
    r->n_contrib = (int32_t *)callocCheck(px + 1, sizeof(int32_t));
    r->mean2d = (real *)callocCheck(ni * G * 2 + 1, sizeof(real));
    r->conic = (real *)callocCheck(ni * G * 3 + 1, sizeof(real));
    r->zcam = (real *)callocCheck(ni * G + 1, sizeof(real));
    r->halfw = (real *)callocCheck(ni * G * 2 + 1, sizeof(real));
    r->rect = (int32_t *)callocCheck(ni * G * 4 + 1, sizeof(int32_t));
    r->valid = (uint8_t *)callocCheck((size_t)d.B * G + 1, 1);
    r->tile_off = (int64_t *)callocCheck(nt + 1, sizeof(int64_t));
    r->tile_cur = (int64_t *)callocCheck(nt + 1, sizeof(int64_t));
    r->bg_tile = (real *)callocCheck(nt * d.K + 1, sizeof(real));
    r->g_acc = (real *)callocCheck(G * GSTRIDE(d.K) + 1, sizeof(real));
    r->isect_cap = (size_t)(ni * G * (isect_per_gaussian > 0 ? isect_per_gaussian : 1)) + 1;
    R_(isect_alloc)(r);
}

void R_(raster_free)(R_(Raster) *r) {
    void *p[] = {r->image, r->alpha, r->depth, r->T_final, r->n_contrib, r->mean2d, r->conic, r->zcam, r->halfw, r->rect,
                 r->valid, r->tile_off, r->tile_cur, r->bg_tile, r->g_acc, r->isect, r->isect_grad, r->sort_ids,
                 r->sort_keys};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) free(p[i]);
    memset(r, 0, sizeof *r);
}

// ----------------------------------------------------------------------------------------------
// forward

static int R_(finite_all)(const real *x, int n) {
    for (int i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

static inline real R_(clamp01)(real o) { return o < 0 ? 0 : (o > 1 ? 1 : o); }

// The pixels where o·exp(−σ) ≥ ALPHA_MIN can hold: σ ≤ s = ln(o/ALPHA_MIN), an ellipse whose bounding box
// has half-widths sqrt(2s·Σxx), sqrt(2s·Σyy) (Σ2 = conic⁻¹), widened by one pixel so rounding can never
// drop a pixel the per-pixel rule would keep. Every pixel outside it would be skipped by that rule, so
// visiting only the box changes nothing but the amount of work. Worked out once per (image, Gaussian):
// hw = the half-widths; −1 when no pixel can reach ALPHA_MIN, +∞ for a degenerate conic (the whole tile,
// where the per-pixel rule decides).
static void R_(support_halfwidths)(real *hw, const real *cn, real o) {
    if (!(o >= (real)RASTER_ALPHA_MIN)) {
        hw[0] = hw[1] = -1;
        return;
    }
    real s = log(o / (real)RASTER_ALPHA_MIN);
    real det = cn[0] * cn[2] - cn[1] * cn[1];
    if (!(det > 0)) {
        hw[0] = hw[1] = (real)INFINITY;
        return;
    }
    hw[0] = sqrt(2 * s * cn[2] / det) + 1, hw[1] = sqrt(2 * s * cn[0] / det) + 1;
}

// The box within one tile: 0 when it misses the tile; else the half-open pixel ranges.
static inline int R_(support_box)(const real *m2, const real *hw, int px0, int py0, int tw, int th, int *x0, int *x1,
                                  int *y0, int *y1) {
    real hx = hw[0], hy = hw[1];
    if (hx < 0) return 0;
    // pixel i has its centre at i + 0.5: keep i with |i + 0.5 − u| ≤ hx
    real fx0 = ceil(m2[0] - hx - (real)0.5), fx1 = floor(m2[0] + hx - (real)0.5) + 1;
    real fy0 = ceil(m2[1] - hy - (real)0.5), fy1 = floor(m2[1] + hy - (real)0.5) + 1;
    *x0 = (int)fmax(fx0, px0), *x1 = (int)fmin(fx1, px0 + tw);
    *y0 = (int)fmax(fy0, py0), *y1 = (int)fmin(fy1, py0 + th);
    return *x1 > *x0 && *y1 > *y0;
}

void R_(raster_forward)(R_(Raster) *r, const R_(RasterIn) *in) {
    RasterDims d = r->d;
    int G = d.G, K = d.K, W = d.W, H = d.H, txs = r->tiles_x, tys = r->tiles_y, nt = txs * tys, ni = r->n_img;
    // 1. validity per Gaussian
    long n_invalid = 0, n_nonfinite = 0;
#pragma omp parallel for reduction(+ : n_invalid, n_nonfinite)
    for (long bg = 0; bg < (long)d.B * G; bg++) {
        const real *q = in->quats + bg * 4, *s = in->scales + bg * 3;
        int finite = R_(finite_all)(in->means + bg * 3, 3) && R_(finite_all)(q, 4) && R_(finite_all)(s, 3) &&
                     R_(finite_all)(in->opacities + bg, 1) && R_(finite_all)(in->colors + bg * K, K);
        int ok = finite && s[0] > 0 && s[1] > 0 && s[2] > 0 &&
                 sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]) >= 1e-12;
        r->valid[bg] = (uint8_t)ok;
        n_invalid += !ok, n_nonfinite += !finite;
    }
    // 2. projection per (image, Gaussian)
    long n_culled = 0;
#pragma omp parallel for reduction(+ : n_culled)
    for (long ig = 0; ig < (long)ni * G; ig++) {
        int img = (int)(ig / G), g = (int)(ig % G), b = img / d.Cm;
        int32_t *rc = r->rect + ig * 4;
        rc[0] = rc[1] = rc[2] = rc[3] = 0;
        if (!r->valid[(size_t)b * G + g]) continue;
        R_(Proj) P;
        size_t bg = (size_t)b * G + g;
        if (!R_(project)(&P, in->means + bg * 3, in->quats + bg * 4, in->scales + bg * 3, in->w2c + (size_t)img * 12,
                         in->K + (size_t)img * 9, W, H, txs, tys)) {
            n_culled++;
            continue;
        }
        r->mean2d[ig * 2] = P.u, r->mean2d[ig * 2 + 1] = P.v;
        r->conic[ig * 3] = P.A, r->conic[ig * 3 + 1] = P.B, r->conic[ig * 3 + 2] = P.C;
        r->zcam[ig] = P.p[2];
        R_(support_halfwidths)(r->halfw + ig * 2, r->conic + ig * 3, R_(clamp01)(in->opacities[bg]));
        rc[0] = P.x0, rc[1] = P.x1, rc[2] = P.y0, rc[3] = P.y1;
    }
    r->n_invalid = n_invalid, r->n_nonfinite = n_nonfinite;
    r->n_culled = n_culled;
    // 3. bin: count per (image, tile), prefix sum, fill in Gaussian order
    memset(r->tile_off, 0, sizeof(int64_t) * ((size_t)ni * nt + 1));
#pragma omp parallel for
    for (int img = 0; img < ni; img++)
        for (int g = 0; g < G; g++) {
            const int32_t *rc = r->rect + ((size_t)img * G + g) * 4;
            for (int ty = rc[2]; ty < rc[3]; ty++)
                for (int tx = rc[0]; tx < rc[1]; tx++) r->tile_off[(size_t)img * nt + ty * txs + tx + 1]++;
        }
    for (size_t t = 0; t < (size_t)ni * nt; t++) r->tile_off[t + 1] += r->tile_off[t];
    r->n_isect = (size_t)r->tile_off[(size_t)ni * nt];
    if (r->n_isect > r->isect_cap) { // the pool was sized for typical scenes; grow once, loudly
        LOG_W("raster: %zu tile intersections exceed the pool (%zu); growing it", r->n_isect, r->isect_cap);
        free(r->isect), free(r->isect_grad), free(r->sort_ids), free(r->sort_keys);
        r->isect_cap = r->n_isect + r->n_isect / 4;
        R_(isect_alloc)(r);
    }
    memcpy(r->tile_cur, r->tile_off, sizeof(int64_t) * (size_t)ni * nt);
#pragma omp parallel for
    for (int img = 0; img < ni; img++)
        for (int g = 0; g < G; g++) {
            const int32_t *rc = r->rect + ((size_t)img * G + g) * 4;
            for (int ty = rc[2]; ty < rc[3]; ty++)
                for (int tx = rc[0]; tx < rc[1]; tx++) r->isect[r->tile_cur[(size_t)img * nt + ty * txs + tx]++] = g;
        }
    // 4. sort each tile's list by (depth, index), in the tile's own slice of the scratch
    DepthKey *keys = (DepthKey *)r->sort_keys;
#pragma omp parallel for schedule(dynamic, 16)
    for (long t = 0; t < (long)ni * nt; t++) {
        int64_t a = r->tile_off[t], n = r->tile_off[t + 1] - a;
        if (n > 1)
            R_(raster_sort_by_depth)(r->isect + a, r->sort_ids + a, keys + 2 * a, (int)n, r->zcam + (size_t)(t / nt) * G);
    }
    // 5. composite front to back, one tile per task. Gaussian-major inside the tile: each Gaussian
    //    visits only the pixels where its alpha can reach ALPHA_MIN (support_box), so the per-pixel
    //    sequence of operations is exactly the per-pixel loop of docs/render.md, for far less work.
#pragma omp parallel for schedule(dynamic, 4)
    for (long t = 0; t < (long)ni * nt; t++) {
        int img = (int)(t / nt), tile = (int)(t % nt), tx = tile % txs, ty = tile / txs, b = img / d.Cm;
        const int32_t *list = r->isect + r->tile_off[t];
        int n = (int)(r->tile_off[t + 1] - r->tile_off[t]);
        const real *m2 = r->mean2d + (size_t)img * G * 2, *cn = r->conic + (size_t)img * G * 3;
        const real *zc = r->zcam + (size_t)img * G, *hw = r->halfw + (size_t)img * G * 2;
        int px0 = tx * RASTER_TILE, py0 = ty * RASTER_TILE;
        int tw = W - px0 < RASTER_TILE ? W - px0 : RASTER_TILE, th = H - py0 < RASTER_TILE ? H - py0 : RASTER_TILE;
        real T[RASTER_TILE * RASTER_TILE], D[RASTER_TILE * RASTER_TILE], acc[RASTER_TILE * RASTER_TILE * RASTER_MAX_K];
        int32_t last[RASTER_TILE * RASTER_TILE];
        uint8_t done[RASTER_TILE * RASTER_TILE];
        int npix = tw * th, ndone = 0;
        for (int p = 0; p < npix; p++) T[p] = 1, D[p] = 0, last[p] = 0, done[p] = 0;
        memset(acc, 0, sizeof(real) * npix * K);
        for (int j = 0; j < n && ndone < npix; j++) {
            int g = list[j], x0, x1, y0, y1;
            real o = R_(clamp01)(in->opacities[(size_t)b * G + g]);
            if (!R_(support_box)(m2 + g * 2, hw + g * 2, px0, py0, tw, th, &x0, &x1, &y0, &y1)) continue;
            const real *c = in->colors + ((size_t)b * G + g) * K;
            for (int yy = y0; yy < y1; yy++)
                for (int xx = x0; xx < x1; xx++) {
                    int p = (yy - py0) * tw + (xx - px0);
                    if (done[p]) continue;
                    real dx = (real)(xx + 0.5) - m2[g * 2], dy = (real)(yy + 0.5) - m2[g * 2 + 1];
                    real sig = (real)0.5 * (cn[g * 3] * dx * dx + cn[g * 3 + 2] * dy * dy) + cn[g * 3 + 1] * dx * dy;
                    if (sig < 0) continue;
                    real al = o * exp(-sig);
                    if (al > (real)RASTER_ALPHA_MAX) al = (real)RASTER_ALPHA_MAX;
                    if (al < (real)RASTER_ALPHA_MIN) continue;
                    real Tn = T[p] * (1 - al);
                    if (Tn <= (real)RASTER_T_MIN) {
                        done[p] = 1, ndone++;
                        continue;
                    }
                    for (int k = 0; k < K; k++) acc[p * K + k] += c[k] * al * T[p];
                    D[p] += zc[g] * al * T[p];
                    T[p] = Tn;
                    last[p] = j + 1;
                }
        }
        for (int p = 0; p < npix; p++) {
            size_t pix = ((size_t)img * H + py0 + p / tw) * W + px0 + p % tw;
            for (int k = 0; k < K; k++) r->image[pix * K + k] = acc[p * K + k] + T[p] * in->background[k];
            r->alpha[pix] = 1 - T[p];
            r->depth[pix] = D[p];
            r->T_final[pix] = T[p];
            r->n_contrib[pix] = last[p];
        }
    }
}

// ----------------------------------------------------------------------------------------------
// backward

void R_(raster_backward)(R_(Raster) *r, const R_(RasterIn) *in, const real *dimage, const real *dalpha,
                         const real *ddepth, R_(RasterGrad) *gout) {
    RasterDims d = r->d;
    int G = d.G, K = d.K, W = d.W, H = d.H, txs = r->tiles_x, nt = txs * r->tiles_y, ni = r->n_img, S = GSTRIDE(K);
    // 1. back to front per tile, Gaussian-major over the same support boxes as the forward: every
    //    pixel sees its contributors in exact reverse order; gradients go to (tile, Gaussian) slots
    memset(r->bg_tile, 0, sizeof(real) * (size_t)ni * nt * K);
#pragma omp parallel for schedule(dynamic, 4)
    for (long t = 0; t < (long)ni * nt; t++) {
        int img = (int)(t / nt), tile = (int)(t % nt), tx = tile % txs, ty = tile / txs, b = img / d.Cm;
        int64_t off = r->tile_off[t];
        const int32_t *list = r->isect + off;
        int n = (int)(r->tile_off[t + 1] - off);
        real *gi = r->isect_grad + (size_t)off * S;
        memset(gi, 0, sizeof(real) * (size_t)n * S);
        const real *m2 = r->mean2d + (size_t)img * G * 2, *cn = r->conic + (size_t)img * G * 3;
        const real *zc = r->zcam + (size_t)img * G, *hw = r->halfw + (size_t)img * G * 2;
        real *bgt = r->bg_tile + (size_t)t * K;
        int px0 = tx * RASTER_TILE, py0 = ty * RASTER_TILE;
        int tw = W - px0 < RASTER_TILE ? W - px0 : RASTER_TILE, th = H - py0 < RASTER_TILE ? H - py0 : RASTER_TILE;
        int npix = tw * th;
        // per pixel: transmittance in front of the current Gaussian, colour/depth behind it
        real T[RASTER_TILE * RASTER_TILE], Sd[RASTER_TILE * RASTER_TILE], Sk[RASTER_TILE * RASTER_TILE * RASTER_MAX_K];
        for (int p = 0; p < npix; p++) {
            size_t pix = ((size_t)img * H + py0 + p / tw) * W + px0 + p % tw;
            real Tf = r->T_final[pix];
            T[p] = Tf, Sd[p] = 0;
            for (int k = 0; k < K; k++) {
                Sk[p * K + k] = Tf * in->background[k];
                if (dimage) bgt[k] += Tf * dimage[pix * K + k];
            }
        }
        for (int j = n - 1; j >= 0; j--) {
            int g = list[j], x0, x1, y0, y1;
            real o_in = in->opacities[(size_t)b * G + g], o = R_(clamp01)(o_in);
            if (!R_(support_box)(m2 + g * 2, hw + g * 2, px0, py0, tw, th, &x0, &x1, &y0, &y1)) continue;
            real A = cn[g * 3], B = cn[g * 3 + 1], C = cn[g * 3 + 2];
            const real *col = in->colors + ((size_t)b * G + g) * K;
            real *gg = gi + (size_t)j * S;
            for (int yy = y0; yy < y1; yy++)
                for (int xx = x0; xx < x1; xx++) {
                    int p = (yy - py0) * tw + (xx - px0);
                    size_t pix = ((size_t)img * H + yy) * W + xx;
                    if (j >= r->n_contrib[pix]) continue; // behind where this pixel stopped
                    real dx = (real)(xx + 0.5) - m2[g * 2], dy = (real)(yy + 0.5) - m2[g * 2 + 1];
                    real sig = (real)0.5 * (A * dx * dx + C * dy * dy) + B * dx * dy;
                    if (sig < 0) continue;
                    real Gv = exp(-sig), al = o * Gv;
                    int capped = al > (real)RASTER_ALPHA_MAX;
                    if (capped) al = (real)RASTER_ALPHA_MAX;
                    if (al < (real)RASTER_ALPHA_MIN) continue;
                    real oma = 1 - al;
                    if (oma < (real)RASTER_ONE_MINUS_ALPHA_MIN) oma = (real)RASTER_ONE_MINUS_ALPHA_MIN;
                    real ra = 1 / oma;
                    T[p] *= ra; // transmittance in front of this Gaussian
                    real Tp = T[p], Tf = r->T_final[pix];
                    real dAl = dalpha ? dalpha[pix] : 0, dD = ddepth ? ddepth[pix] : 0;
                    real dal = dAl * Tf * ra + dD * (zc[g] * Tp - Sd[p] * ra);
                    for (int k = 0; k < K; k++) {
                        if (dimage) {
                            real dI = dimage[pix * K + k];
                            dal += dI * (col[k] * Tp - Sk[p * K + k] * ra);
                            gg[7 + k] += al * Tp * dI;
                        }
                        Sk[p * K + k] += col[k] * al * Tp;
                    }
                    gg[6] += al * Tp * dD;
                    Sd[p] += zc[g] * al * Tp;
                    if (!capped) {
                        real dsig = -dal * o * Gv;
                        if (o_in >= 0 && o_in <= 1) gg[5] += dal * Gv;
                        gg[2] += (real)0.5 * dx * dx * dsig;
                        gg[3] += dx * dy * dsig;
                        gg[4] += (real)0.5 * dy * dy * dsig;
                        gg[0] += -(A * dx + B * dy) * dsig; // dx = px − u
                        gg[1] += -(C * dy + B * dx) * dsig;
                    }
                }
        }
    }
    if (gout->background)
        for (size_t t = 0; t < (size_t)ni * nt; t++)
            for (int k = 0; k < K; k++) gout->background[k] += r->bg_tile[t * K + k];
    // 2. per image: sum intersections per Gaussian in list order, then project back
    for (int img = 0; img < ni; img++) {
        int b = img / d.Cm;
        memset(r->g_acc, 0, sizeof(real) * (size_t)G * S);
        for (int64_t i = r->tile_off[(size_t)img * nt]; i < r->tile_off[(size_t)(img + 1) * nt]; i++) {
            real *acc = r->g_acc + (size_t)r->isect[i] * S;
            const real *src = r->isect_grad + (size_t)i * S;
            for (int k = 0; k < S; k++) acc[k] += src[k];
        }
#pragma omp parallel for
        for (int g = 0; g < G; g++) {
            const int32_t *rc = r->rect + ((size_t)img * G + g) * 4;
            if (rc[1] <= rc[0] || rc[3] <= rc[2]) continue; // culled or invalid: no gradient
            size_t bg = (size_t)b * G + g;
            const real *acc = r->g_acc + (size_t)g * S;
            if (gout->colors)
                for (int k = 0; k < K; k++) gout->colors[bg * K + k] += acc[7 + k];
            if (gout->opacities) gout->opacities[bg] += acc[5];
            R_(Proj) P;
            R_(project)(&P, in->means + bg * 3, in->quats + bg * 4, in->scales + bg * 3, in->w2c + (size_t)img * 12,
                        in->K + (size_t)img * 9, W, H, txs, r->tiles_y);
            real dm[3] = {0}, dq[4] = {0}, ds[3] = {0};
            R_(project_backward)(&P, in->w2c + (size_t)img * 12, in->K + (size_t)img * 9, in->scales + bg * 3, acc, dm,
                                 dq, ds);
            for (int k = 0; k < 3; k++) {
                if (gout->means) gout->means[bg * 3 + k] += dm[k];
                if (gout->scales) gout->scales[bg * 3 + k] += ds[k];
            }
            if (gout->quats)
                for (int k = 0; k < 4; k++) gout->quats[bg * 4 + k] += dq[k];
        }
    }
}
