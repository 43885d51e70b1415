// synth_head.c — procedural Gaussian heads, the synthetic dome rig and the per-camera outputs
// (see synth_head.h). Surfaces are sampled on a (u, v) parameter grid with flat Gaussians ("discs")
// tangent to the surface; small features (teeth, brows, lashes) are single blobs. The sample grid of
// every surface is sized from the identity's REST face, so an identity has the same Gaussians in every
// frame (like a tracked mesh): expressions only move them, and textures never shimmer.
#include "synth_head.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rng.h"
#include "../common/util.h"

const char *const synth_part_names[SYNTH_NPARTS] = {
    "skin", "nose",      "ear",       "neck",        "hair",        "brow",   "eyelid", "sclera",
    "iris", "upper_lip", "lower_lip", "upper_teeth", "lower_teeth", "tongue", "mouth",  "clothes"};
const uint8_t synth_part_ava_class[SYNTH_NPARTS] = {2, 2, 2, 2, 1, 2, 2, 2, 2, 6, 7, 8, 9, 10, 2, 4};
const char *const synth_expr_names[SYNTH_NEXPR] = {"jaw_open", "smile",      "pucker", "brow_raise",
                                                   "blink",    "tongue_out", "gaze_x", "gaze_y"};
const double SYNTH_HEAD_CENTRE_MM[3] = {0, 0, 1000};

// ----------------------------------------------------------------------------------------------
// small maths

static double sq(double x) { return x * x; }
static double clampd(double x, double a, double b) { return x < a ? a : (x > b ? b : x); }
static double lerp(double a, double b, double t) { return a + (b - a) * t; }
// smoothstep from e0 to e1 (either order)
static double smooth(double e0, double e1, double x) {
    double t = clampd((x - e0) / (e1 - e0), 0, 1);
    return t * t * (3 - 2 * t);
}
static double dot3(const double *a, const double *b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }
static double norm3(const double *a) { return sqrt(dot3(a, a)); }
static void cross3(const double *a, const double *b, double *o) {
    double x = a[1] * b[2] - a[2] * b[1], y = a[2] * b[0] - a[0] * b[2], z = a[0] * b[1] - a[1] * b[0];
    o[0] = x, o[1] = y, o[2] = z;
}
static void normalize3(double *a) {
    double n = norm3(a);
    if (n > 0) a[0] /= n, a[1] /= n, a[2] /= n;
}
static void matvec3(const double *M, const double *x, double *y) {
    for (int i = 0; i < 3; i++) y[i] = M[3 * i] * x[0] + M[3 * i + 1] * x[1] + M[3 * i + 2] * x[2];
}
static void matmul3(const double *A, const double *B, double *C) {
    double T[9];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) T[3 * i + j] = A[3 * i] * B[j] + A[3 * i + 1] * B[3 + j] + A[3 * i + 2] * B[6 + j];
    memcpy(C, T, sizeof T);
}
static void rot_x(double a, double *M) {
    double c = cos(a), s = sin(a), R[9] = {1, 0, 0, 0, c, -s, 0, s, c};
    memcpy(M, R, sizeof R);
}
static void rot_y(double a, double *M) {
    double c = cos(a), s = sin(a), R[9] = {c, 0, s, 0, 1, 0, -s, 0, c};
    memcpy(M, R, sizeof R);
}
static void rot_z(double a, double *M) {
    double c = cos(a), s = sin(a), R[9] = {c, -s, 0, s, c, 0, 0, 0, 1};
    memcpy(M, R, sizeof R);
}
// Quaternion (w, x, y, z) of a rotation matrix (row-major), the convention of docs/render.md.
static void quat_of(const double *m, double *q) {
    double tr = m[0] + m[4] + m[8], S;
    if (tr > 0) {
        S = sqrt(tr + 1) * 2;
        q[0] = 0.25 * S, q[1] = (m[7] - m[5]) / S, q[2] = (m[2] - m[6]) / S, q[3] = (m[3] - m[1]) / S;
    } else if (m[0] > m[4] && m[0] > m[8]) {
        S = sqrt(1 + m[0] - m[4] - m[8]) * 2;
        q[0] = (m[7] - m[5]) / S, q[1] = 0.25 * S, q[2] = (m[1] + m[3]) / S, q[3] = (m[2] + m[6]) / S;
    } else if (m[4] > m[8]) {
        S = sqrt(1 + m[4] - m[0] - m[8]) * 2;
        q[0] = (m[2] - m[6]) / S, q[1] = (m[1] + m[3]) / S, q[2] = 0.25 * S, q[3] = (m[5] + m[7]) / S;
    } else {
        S = sqrt(1 + m[8] - m[0] - m[4]) * 2;
        q[0] = (m[3] - m[1]) / S, q[1] = (m[2] + m[6]) / S, q[2] = (m[5] + m[7]) / S, q[3] = 0.25 * S;
    }
}
static uint32_t hash32(uint32_t x) {
    x ^= x >> 16, x *= 0x7feb352dU, x ^= x >> 15, x *= 0x846ca68bU, x ^= x >> 16;
    return x;
}
// deterministic texture noise in [0, 1) from small integers
static double hashf(uint32_t a, uint32_t b, uint32_t c) {
    return (hash32(a * 0x9E3779B1U ^ hash32(b * 0x85EBCA77U ^ hash32(c + 0x27d4eb2fU))) >> 8) * (1.0 / 16777216.0);
}

// ----------------------------------------------------------------------------------------------
// identity, frames, codes

static void mix3(float *o, const float *a, const float *b, double t) {
    for (int k = 0; k < 3; k++) o[k] = (float)lerp(a[k], b[k], t);
}

void synth_identity(SynthIdentity *id, uint64_t seed, int subject) {
    memset(id, 0, sizeof *id);
    Rng r = rng_make(seed, 0x1D000000ull + (uint64_t)subject);
#define U() ((double)rng_next_uniform(&r))
    id->shape[0] = (float)(0.92 + 0.16 * U());
    id->shape[1] = (float)(0.94 + 0.12 * U());
    id->shape[2] = (float)(0.94 + 0.12 * U());
    id->jaw_taper = (float)(0.14 + 0.16 * U());
    id->chin = (float)(0.002 + 0.007 * U());
    id->nose_len = (float)(0.88 + 0.24 * U());
    id->nose_width = (float)(0.85 + 0.30 * U());
    id->nose_depth = (float)(0.80 + 0.40 * U());
    id->lip_full = (float)(0.80 + 0.45 * U());
    id->mouth_width = (float)(0.88 + 0.24 * U());
    id->ear_size = (float)(0.88 + 0.24 * U());
    id->neck_width = (float)(0.90 + 0.20 * U());
    id->eye_gap = (float)(0.030 + 0.004 * U());
    id->hair_len = (float)U();
    id->hair_volume = (float)(0.005 + 0.010 * U());
    double hl = U();
    id->hairline = (float)(-0.006 + 0.024 * hl * hl);
    // skin: a ramp from very light to very dark, plus a little jitter
    static const float skin[5][3] = {{0.96f, 0.80f, 0.69f},
                                     {0.87f, 0.66f, 0.52f},
                                     {0.68f, 0.47f, 0.33f},
                                     {0.44f, 0.29f, 0.19f},
                                     {0.27f, 0.17f, 0.11f}};
    double ts = U() * 3.999;
    int ks = (int)ts;
    mix3(id->skin, skin[ks], skin[ks + 1], ts - ks);
    for (int k = 0; k < 3; k++) id->skin[k] = (float)clampd(id->skin[k] + 0.04 * (U() - 0.5), 0, 1);
    static const float rose[3] = {0.72f, 0.30f, 0.33f};
    for (int k = 0; k < 3; k++) id->lip[k] = (float)(0.9 * lerp(id->skin[k], rose[k], 0.4));
    // hair: black, dark brown, brown, blond, red, grey
    static const float hair[6][3] = {{0.045f, 0.040f, 0.035f}, {0.14f, 0.09f, 0.055f}, {0.30f, 0.19f, 0.10f},
                                     {0.74f, 0.60f, 0.36f},    {0.56f, 0.23f, 0.09f},  {0.62f, 0.61f, 0.58f}};
    static const double hair_w[6] = {0.30, 0.25, 0.17, 0.12, 0.08, 0.08};
    double th = U(), acc = 0;
    int kh = 5;
    for (int k = 0; k < 6; k++)
        if (th < (acc += hair_w[k])) {
            kh = k;
            break;
        }
    for (int k = 0; k < 3; k++) id->hair[k] = (float)clampd(hair[kh][k] * (0.9 + 0.2 * U()), 0, 1);
    double bd = (kh == 3 || kh == 5) ? 0.55 : 0.8; // light hair has darker brows
    for (int k = 0; k < 3; k++) id->brow[k] = (float)(id->hair[k] * bd);
    // iris: brown, dark brown, blue, green, grey, hazel
    static const float iris[6][3] = {{0.36f, 0.20f, 0.08f}, {0.17f, 0.10f, 0.05f}, {0.26f, 0.46f, 0.68f},
                                     {0.30f, 0.46f, 0.26f}, {0.46f, 0.51f, 0.56f}, {0.47f, 0.36f, 0.15f}};
    int ki = (int)(U() * 5.999);
    for (int k = 0; k < 3; k++) id->iris[k] = (float)clampd(iris[ki][k] * (0.9 + 0.2 * U()), 0, 1);
    // clothes: any hue, moderate saturation
    double hue = U() * 6, sat = 0.25 + 0.5 * U(), val = 0.25 + 0.55 * U();
    int hi = (int)hue % 6;
    double f = hue - (int)hue, p = val * (1 - sat), q = val * (1 - sat * f), t = val * (1 - sat * (1 - f));
    double rgb[6][3] = {{val, t, p}, {q, val, p}, {p, val, t}, {p, q, val}, {t, p, val}, {val, p, q}};
    for (int k = 0; k < 3; k++) id->clothes[k] = (float)rgb[hi][k];
#undef U
}

// One expression key pose k of a subject: a pure function of (seed, subject, k).
// Types cycle through a per-subject permutation so every expression shows up within 8 keys.
enum { KEY_JAW, KEY_SMILE, KEY_PUCKER, KEY_BROW, KEY_BLINK, KEY_TONGUE, KEY_TURN, KEY_MIX, NKEY };
static void key_pose(float *x, float *rot, uint64_t seed, int subject, long k) {
    memset(x, 0, sizeof(float) * SYNTH_NEXPR);
    rot[0] = rot[1] = rot[2] = 0;
    if (k <= 0) return; // key 0: neutral, facing the rig
    Rng r = rng_make(seed, 0xE0000000ull + (uint64_t)subject);
    long cyc = (k - 1) / NKEY, pos = (k - 1) % NKEY;
    int perm[NKEY];
    for (int i = 0; i < NKEY; i++) perm[i] = i;
    for (int i = NKEY - 1; i > 0; i--) { // Fisher-Yates with counter-indexed draws
        int j = (int)(rng_uniform_at(&r, (uint64_t)cyc * 64 + i) * (i + 1));
        int t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    uint64_t b = 1000000 + (uint64_t)k * 32;
#define UK(i) ((double)rng_uniform_at(&r, b + (i)))
    double amp = 0.55 + 0.45 * UK(0);
    switch (perm[pos]) {
    case KEY_JAW:
        x[SX_JAW_OPEN] = (float)amp;
        break;
    case KEY_SMILE:
        x[SX_SMILE] = (float)amp;
        x[SX_JAW_OPEN] = (float)(0.25 * UK(1));
        break;
    case KEY_PUCKER:
        x[SX_PUCKER] = (float)amp;
        break;
    case KEY_BROW:
        x[SX_BROW_RAISE] = (float)amp;
        break;
    case KEY_BLINK:
        x[SX_BLINK] = 1;
        break;
    case KEY_TONGUE:
        x[SX_TONGUE_OUT] = (float)amp;
        x[SX_JAW_OPEN] = (float)(0.5 + 0.3 * UK(1));
        break;
    case KEY_TURN:
        rot[0] = (float)((UK(1) < 0.5 ? -1 : 1) * (0.25 + 0.2 * UK(2))), rot[1] = (float)(0.3 * (UK(3) - 0.5));
        break;
    default: // a mix of several
        x[SX_JAW_OPEN] = (float)(0.6 * UK(1) * UK(1));
        x[SX_SMILE] = (float)(UK(2) < 0.5 ? 0.8 * UK(3) : 0);
        x[SX_PUCKER] = (float)(x[SX_SMILE] == 0 && UK(4) < 0.5 ? 0.7 * UK(5) : 0);
        x[SX_BROW_RAISE] = (float)(UK(6) < 0.5 ? UK(7) : 0);
        x[SX_BLINK] = (float)(UK(8) < 0.2 ? 1 : 0);
        break;
    }
    x[SX_GAZE_X] = (float)(1.2 * (UK(10) - 0.5));
    x[SX_GAZE_Y] = (float)(1.0 * (UK(11) - 0.5));
    if (perm[pos] != KEY_TURN) rot[0] = (float)(0.16 * (UK(12) - 0.5)), rot[1] = (float)(0.12 * (UK(13) - 0.5));
    rot[2] = (float)(0.08 * (UK(14) - 0.5));
#undef UK
}

void synth_frame(SynthFrame *f, uint64_t seed, int subject, double t, int neutral) {
    memset(f, 0, sizeof *f);
    Rng r = rng_make(seed, 0xE1000000ull + (uint64_t)subject);
    // a slow drift of the whole head (both segments), metres and radians
    for (int k = 0; k < 3; k++) {
        double ph = 6.283185307179586 * rng_uniform_at(&r, k), per = 37 + 11 * k;
        f->drift[k] = (float)(0.006 * sin(6.283185307179586 * t / per + ph));
    }
    double wob = 0.02 * sin(6.283185307179586 * t / 53 + 6.283185307179586 * rng_uniform_at(&r, 3));
    if (neutral) {
        f->yaw = (float)wob;
        return;
    }
    double kt = t / SYNTH_KEY_PERIOD;
    long k = (long)floor(kt);
    double a = smooth(0, 1, kt - (double)k);
    float x0[SYNTH_NEXPR], x1[SYNTH_NEXPR], r0[3], r1[3];
    key_pose(x0, r0, seed, subject, k);
    key_pose(x1, r1, seed, subject, k + 1);
    for (int i = 0; i < SYNTH_NEXPR; i++) f->expr[i] = (float)lerp(x0[i], x1[i], a);
    f->yaw = (float)(lerp(r0[0], r1[0], a) + wob);
    f->pitch = (float)lerp(r0[1], r1[1], a);
    f->roll = (float)lerp(r0[2], r1[2], a);
}

void synth_head_pose(const SynthFrame *f, double Rh[9], double th[3]) {
    // rest pose: head +y (up) -> world −y (the world is y-down), head +z (face) -> world −z (the rig)
    double base[9] = {1, 0, 0, 0, -1, 0, 0, 0, -1}, Ry[9], Rx[9], Rz[9];
    rot_y(f->yaw, Ry), rot_x(f->pitch, Rx), rot_z(f->roll, Rz);
    matmul3(Ry, Rx, Rh);
    matmul3(Rh, Rz, Rh);
    matmul3(base, Rh, Rh);
    for (int k = 0; k < 3; k++) th[k] = SYNTH_HEAD_CENTRE_MM[k] / 1000 + f->drift[k];
}

double synth_code_matrix(int row, int col) {
    Rng r = rng_make(SYNTH_CODE_SEED, 0);
    return 0.5 * rng_normal_at(&r, (uint64_t)row * SYNTH_NEXPR + col);
}

void synth_expr_code(const float expr[SYNTH_NEXPR], float code[SYNTH_CODE_DIM]) {
    for (int i = 0; i < SYNTH_CODE_DIM; i++) {
        double s = 0;
        for (int j = 0; j < SYNTH_NEXPR; j++) s += synth_code_matrix(i, j) * expr[j];
        code[i] = (float)s;
    }
}

// ----------------------------------------------------------------------------------------------
// the face: derived numbers of one (identity, expression)

typedef struct {
    const SynthIdentity *id;
    double R[3];              // skull radii
    double ex, ey, eye_r, ez; // eye centres (±ex, ey, ez) and radius
    double sock_d;            // eye socket depth
    double ym, zm, mw;        // lip line height, face depth there, mouth half width
    double smile, pucker, jaw, alpha, tongue, brow;
    double piv[3];       // jaw pivot (near the TMJ)
    double psi_u, psi_l; // upper / lower lid edge angles (radians above / below the eye's equator)
    double gaze[3];
    double ear_c[3], ear_top; // left ear centre (x > 0) and the height of its top
} Face;

// Skull surface: an ellipsoid point p0 (= R ⊙ d) with face shaping. y is never changed.
static void skull_deform(const Face *F, const double p0[3], int sockets, double p[3]) {
    const SynthIdentity *id = F->id;
    double fz = p0[2] > 0 ? p0[2] / F->R[2] : 0, fz2 = fz * fz;
    double w = clampd(-p0[1] / F->R[1], 0, 1);
    double sx = (1 - id->jaw_taper * pow(w, 1.5)) * (1 + 0.05 * exp(-sq((p0[1] + 0.012) / 0.022)) * fz);
    p[0] = p0[0] * sx;
    p[1] = p0[1];
    double z = p0[2];
    z += id->chin * exp(-sq((p0[1] + 0.084 * id->shape[1]) / 0.016)) * fz2;  // chin
    z += 0.005 * exp(-sq((p0[1] - F->ym) / 0.018) - sq(p0[0] / 0.03)) * fz2; // muzzle
    z += 0.003 * exp(-sq((p0[1] - (F->ey + 0.018)) / 0.008)) * fz2;          // brow ridge
    z -= 0.004 * exp(-sq((p0[1] - (F->ey - 0.022)) / 0.012) - sq((fabs(p0[0]) - 0.035) / 0.012)) *
         fz2; // under the cheekbones
    if (sockets)
        for (int s = -1; s <= 1; s += 2)
            z -= F->sock_d * exp(-sq((p[0] - s * F->ex) / 0.020) - sq((p0[1] - F->ey) / 0.013)) * fz2;
    p[2] = z;
}

static void skull_at(const Face *F, double th, double ph, int sockets, double p[3]) {
    double p0[3] = {F->R[0] * sin(th) * sin(ph), F->R[1] * cos(th), F->R[2] * sin(th) * cos(ph)};
    skull_deform(F, p0, sockets, p);
}

// The front skull point with p.x = x, p.y = y.
static void face_at(const Face *F, double x, double y, int sockets, double p[3]) {
    double p0x = x;
    for (int it = 0; it < 6; it++) {
        double zz = 1 - sq(p0x / F->R[0]) - sq(y / F->R[1]);
        double p0[3] = {p0x, y, F->R[2] * sqrt(zz > 0 ? zz : 0)};
        skull_deform(F, p0, sockets, p);
        if (fabs(p[0]) < 1e-12) break;
        p0x *= x / p[0];
    }
}

// The side (+x) skull point with p.y = y and undeformed depth z.
static void side_at(const Face *F, double y, double z, double p[3]) {
    double xx = 1 - sq(y / F->R[1]) - sq(z / F->R[2]);
    double p0[3] = {F->R[0] * sqrt(xx > 0 ? xx : 0), y, z};
    skull_deform(F, p0, 0, p);
}

static double lipline(const Face *F, double x) {
    double u = x / F->mw;
    return F->ym + F->smile * 0.009 * fmin(u * u, 1.5);
}

// How much a (pre-jaw) point follows the jaw: all of the chin, nothing above the lip line, a hard cut
// inside the mouth (so the lips part) and a smooth stretch outside it (the cheeks).
static double jaw_weight(const Face *F, const double p[3]) {
    double ll = lipline(F, p[0]);
    double hard = p[1] < ll ? 1 : 0, soft = smooth(ll + 0.004, ll - 0.03, p[1]);
    double c = 1 - smooth(0.85, 1.35, fabs(p[0]) / F->mw);
    return (c * hard + (1 - c) * soft) * smooth(F->piv[2] - 0.02, F->piv[2] + 0.02, p[2]);
}

static void jaw_apply(const Face *F, double w, double p[3]) {
    double a = w * F->alpha, c = cos(a), s = sin(a), y = p[1] - F->piv[1], z = p[2] - F->piv[2];
    p[1] = F->piv[1] + y * c - z * s;
    p[2] = F->piv[2] + y * s + z * c;
}

static void face_setup(Face *F, const SynthIdentity *id, const float *x) {
    memset(F, 0, sizeof *F);
    F->id = id;
    static const double base[3] = {0.074, 0.100, 0.094};
    for (int k = 0; k < 3; k++) F->R[k] = base[k] * id->shape[k];
    F->ex = id->eye_gap;
    F->ey = 0.008 * id->shape[1];
    F->eye_r = 0.0122;
    F->sock_d = 0.008;
    F->ym = -0.050 * id->shape[1];
    F->smile = x[SX_SMILE];
    F->pucker = x[SX_PUCKER];
    F->tongue = x[SX_TONGUE_OUT];
    F->brow = x[SX_BROW_RAISE];
    F->jaw = fmin(1, fmax(x[SX_JAW_OPEN], 0.6 * x[SX_TONGUE_OUT]) + 0.12 * F->pucker * (1 - x[SX_JAW_OPEN]));
    F->alpha = 0.30 * F->jaw;
    F->mw = 0.024 * id->mouth_width * (1 + 0.28 * F->smile - 0.38 * F->pucker);
    F->piv[0] = 0, F->piv[1] = -0.015 * id->shape[1], F->piv[2] = 0.005;
    double p[3];
    face_at(F, 0, F->ym, 0, p);
    F->zm = p[2];
    face_at(F, F->ex, F->ey, 0, p);
    F->ez = p[2] - F->sock_d + 0.006 - F->eye_r;
    F->psi_l = 0.46 - 0.15 * F->smile;
    F->psi_u = lerp(0.52 + 0.14 * F->brow - 0.10 * F->smile, -F->psi_l - 0.06, x[SX_BLINK]);
    double gx = 0.35 * x[SX_GAZE_X], gy = 0.25 * x[SX_GAZE_Y];
    F->gaze[0] = sin(gx) * cos(gy), F->gaze[1] = sin(gy), F->gaze[2] = cos(gx) * cos(gy);
    double ey = F->ey - 0.010, ez = -0.008;
    side_at(F, ey, ez, p);
    F->ear_c[0] = p[0] + 0.002, F->ear_c[1] = ey, F->ear_c[2] = ez;
    F->ear_top = ey + 0.029 * id->ear_size;
}

// Height above which hair grows, as a function of the azimuth around the head (0 = front).
static double hairline(const Face *F, const double p[3]) {
    double a = fabs(atan2(p[0], p[2])), ey = F->ey, ht = F->ear_top, yf = ey + 0.065 + F->id->hairline;
    static const double ka[8] = {0, 0.70, 1.10, 1.30, 1.42, 1.95, 2.30, 3.1416};
    double ky[8] = {yf, yf - 0.008, ey + 0.012, ey - 0.008, ht + 0.005, ht + 0.005, -0.040, -0.066};
    for (int i = 0; i < 7; i++)
        if (a <= ka[i + 1]) return lerp(ky[i], ky[i + 1], (a - ka[i]) / (ka[i + 1] - ka[i]));
    return ky[7];
}

// ----------------------------------------------------------------------------------------------
// the Gaussian buffer

static void push(SynthHead *h, const double p[3], const double t1in[3], const double nin[3], double s1, double s2,
                 double s3, double op, const float rgb[3], int part) {
    if (h->n == h->cap) {
        int cap = h->cap ? 2 * h->cap : 4096;
        h->mean = (float *)realloc(h->mean, sizeof(float) * 3 * cap);
        h->quat = (float *)realloc(h->quat, sizeof(float) * 4 * cap);
        h->scale = (float *)realloc(h->scale, sizeof(float) * 3 * cap);
        h->opac = (float *)realloc(h->opac, sizeof(float) * cap);
        h->rgb = (float *)realloc(h->rgb, sizeof(float) * 3 * cap);
        h->normal = (float *)realloc(h->normal, sizeof(float) * 3 * cap);
        h->part = (uint8_t *)realloc(h->part, cap);
        if (!h->mean || !h->quat || !h->scale || !h->opac || !h->rgb || !h->normal || !h->part)
            FATAL("out of memory growing the synthetic head to %d Gaussians", cap);
        h->cap = cap;
    }
    // orthonormal frame (t1, t2, n): the Gaussian's local axes
    double n[3] = {nin[0], nin[1], nin[2]}, t1[3] = {t1in[0], t1in[1], t1in[2]}, t2[3];
    normalize3(n);
    if (norm3(n) < 0.5) n[0] = 0, n[1] = 0, n[2] = 1;
    double d = dot3(t1, n);
    for (int k = 0; k < 3; k++) t1[k] -= d * n[k];
    if (norm3(t1) < 1e-9) { // any perpendicular
        double a[3] = {fabs(n[0]) < 0.9 ? 1 : 0, fabs(n[0]) < 0.9 ? 0 : 1, 0};
        cross3(n, a, t1);
    }
    normalize3(t1);
    cross3(n, t1, t2);
    double M[9] = {t1[0], t2[0], n[0], t1[1], t2[1], n[1], t1[2], t2[2], n[2]}, q[4];
    quat_of(M, q);
    int i = h->n++;
    for (int k = 0; k < 3; k++) {
        h->mean[3 * i + k] = (float)p[k];
        h->rgb[3 * i + k] = (float)clampd(rgb[k], 0, 1);
        h->normal[3 * i + k] = (float)n[k];
    }
    for (int k = 0; k < 4; k++) h->quat[4 * i + k] = (float)q[k];
    h->scale[3 * i] = (float)s1, h->scale[3 * i + 1] = (float)s2, h->scale[3 * i + 2] = (float)s3;
    h->opac[i] = (float)op;
    h->part[i] = (uint8_t)part;
}

void synth_head_free(SynthHead *h) {
    free(h->mean), free(h->quat), free(h->scale), free(h->opac), free(h->rgb), free(h->normal), free(h->part);
    memset(h, 0, sizeof *h);
}

// ----------------------------------------------------------------------------------------------
// parametric surfaces

typedef struct Surf Surf;
struct Surf {
    void (*f)(const Surf *s, const Face *F, double u, double v, double p[3]);
    // colour, part and opacity of the sample (i, j) at the pre-jaw point p; returns 0 to drop it.
    // Drops must not depend on the expression, so an identity keeps its Gaussians in every frame.
    int (*paint)(const Surf *s, const Face *F, double u, double v, int i, int j, const double p[3], float rgb[3],
                 double *op);
    double c[3], A[9], r[3]; // generic ellipsoid/sphere data: centre, axes (columns), radii
    int side;                // ±1 for mirrored features
    float rgb[3];
    int part;
    double opac;
    double ref[3];
    int ref_mode; // normals point away from ref (0), towards it (1), away from the vertical axis through it (2)
    double sp, thick, an_u, an_v; // spacing, normal std (m), anisotropy along u and v
    int jaw;                      // 0 static, 1 follows the jaw, −1 by jaw_weight
    uint32_t salt;                // texture noise key
};

static void surf_eval(const Surf *s, const Face *F, double u, double v, double p[3]) {
    s->f(s, F, u, v, p);
    if (s->jaw) {
        double w = s->jaw < 0 ? jaw_weight(F, p) : 1;
        if (w > 0) jaw_apply(F, w, p);
    }
}

static double poly_len(const Surf *s, const Face *F, int along_u, double fixed, double a0, double a1) {
    double L = 0, q[3], prev[3];
    for (int k = 0; k <= 24; k++) {
        double t = a0 + (a1 - a0) * k / 24;
        if (along_u)
            surf_eval(s, F, t, fixed, q);
        else
            surf_eval(s, F, fixed, t, q);
        if (k) L += sqrt(sq(q[0] - prev[0]) + sq(q[1] - prev[1]) + sq(q[2] - prev[2]));
        memcpy(prev, q, sizeof q);
    }
    return L;
}

// Step of one grid cell through (u, v): central difference, or twice the shorter half where a cut
// (the mouth) makes one side jump.
static void cell_step(const Surf *s, const Face *F, double u, double v, double du, double dv, double o[3]) {
    double a[3], b[3], c[3];
    surf_eval(s, F, u - du / 2, v - dv / 2, a);
    surf_eval(s, F, u, v, b);
    surf_eval(s, F, u + du / 2, v + dv / 2, c);
    double d1[3] = {b[0] - a[0], b[1] - a[1], b[2] - a[2]}, d2[3] = {c[0] - b[0], c[1] - b[1], c[2] - b[2]};
    double l1 = norm3(d1), l2 = norm3(d2);
    for (int k = 0; k < 3; k++) o[k] = l1 > 2 * l2 ? 2 * d2[k] : (l2 > 2 * l1 ? 2 * d1[k] : d1[k] + d2[k]);
}

static void surf_sample(SynthHead *h, const Surf *s, const Face *F, const Face *F0, double u0, double u1, double v0,
                        double v1) {
    double Lv = 0;
    for (int k = 0; k < 5; k++) Lv = fmax(Lv, poly_len(s, F0, 0, u0 + (u1 - u0) * (k + 0.5) / 5, v0, v1));
    int nv = (int)fmax(1, ceil(Lv / s->sp));
    double dv = (v1 - v0) / nv;
    for (int j = 0; j < nv; j++) {
        double v = v0 + dv * (j + 0.5);
        int nu = (int)fmax(1, ceil(poly_len(s, F0, 1, v, u0, u1) / s->sp)); // rows sized on the rest face
        double du = (u1 - u0) / nu;
        for (int i = 0; i < nu; i++) {
            double u = u0 + du * (i + 0.5), q[3], p[3], a[3], b[3], n[3], op = s->opac;
            float rgb[3] = {s->rgb[0], s->rgb[1], s->rgb[2]};
            s->f(s, F, u, v, q);
            if (s->paint && !s->paint(s, F, u, v, i, j, q, rgb, &op)) continue;
            surf_eval(s, F, u, v, p);
            cell_step(s, F, u, v, du, 0, a);
            cell_step(s, F, u, v, 0, dv, b);
            cross3(a, b, n);
            if (norm3(n) < 1e-14) { // degenerate cell: normal from the reference point
                for (int k = 0; k < 3; k++) n[k] = p[k] - s->ref[k];
            }
            double dr[3] = {p[0] - s->ref[0], s->ref_mode == 2 ? 0 : p[1] - s->ref[1], p[2] - s->ref[2]};
            if ((dot3(n, dr) < 0) != (s->ref_mode == 1)) n[0] = -n[0], n[1] = -n[1], n[2] = -n[2];
            normalize3(n);
            double la = norm3(a), t1[3];
            for (int k = 0; k < 3; k++) t1[k] = la > 1e-12 ? a[k] / la : 0;
            double bt = dot3(b, t1), bp[3] = {b[0] - bt * t1[0], b[1] - bt * t1[1], b[2] - bt * t1[2]};
            double s1 = clampd(0.62 * la, 0.2 * s->sp, 2.5 * s->sp) * s->an_u;
            double s2 = clampd(0.62 * norm3(bp), 0.2 * s->sp, 2.5 * s->sp) * s->an_v;
            if (la < 1e-12) memcpy(t1, bp, sizeof t1);
            push(h, p, t1, n, s1, s2, s->thick, op, rgb, s->part);
        }
    }
}

static Surf surf_new(void (*f)(const Surf *, const Face *, double, double, double *), int part, const float rgb[3],
                     double sp) {
    Surf s;
    memset(&s, 0, sizeof s);
    s.f = f;
    s.part = part;
    if (rgb) memcpy(s.rgb, rgb, sizeof s.rgb);
    s.sp = sp;
    s.thick = 0.25 * sp;
    s.an_u = s.an_v = 1;
    s.opac = 0.97;
    s.A[0] = s.A[4] = s.A[8] = 1;
    s.salt = (uint32_t)part * 7919u + 13u;
    return s;
}

// ellipsoid: c + A·(r0 sinv cosu, r1 cosv, r2 sinv sinu); u azimuth around the local y axis, v polar
static void f_ellipsoid(const Surf *s, const Face *F, double u, double v, double p[3]) {
    (void)F;
    double l[3] = {s->r[0] * sin(v) * cos(u), s->r[1] * cos(v), s->r[2] * sin(v) * sin(u)};
    matvec3(s->A, l, p);
    for (int k = 0; k < 3; k++) p[k] += s->c[k];
}

static float noise_mul(const Surf *s, int i, int j, double amp) {
    return (float)(1 + amp * (hashf(s->salt, (uint32_t)i, (uint32_t)j) - 0.5));
}

// --- skin
static void f_skull(const Surf *s, const Face *F, double u, double v, double p[3]) {
    (void)s;
    skull_at(F, v, u, 1, p);
}
static int paint_skin(const Surf *s, const Face *F, double u, double v, int i, int j, const double p[3], float rgb[3],
                      double *op) {
    (void)u, (void)v, (void)op;
    if (p[1] > hairline(F, p) + 0.012 && F->id->hair_volume > 0) return 0; // under opaque hair
    double fz = p[2] > 0 ? p[2] / F->R[2] : 0;
    double cheek = exp(-sq((fabs(p[0]) - 0.040) / 0.018) - sq((p[1] - F->ey + 0.025) / 0.018)) * fz;
    double m = noise_mul(s, i, j, 0.05);
    rgb[0] = (float)((rgb[0] + 0.05 * cheek) * m);
    rgb[1] = (float)((rgb[1] - 0.03 * cheek) * m);
    rgb[2] = (float)((rgb[2] - 0.02 * cheek) * m);
    return 1;
}

// --- hair
static void f_hair(const Surf *s, const Face *F, double u, double v, double p[3]) {
    (void)s;
    double d[3] = {sin(v) * sin(u), cos(v), sin(v) * cos(u)};
    skull_at(F, v, u, 0, p);
    double hv = F->id->hair_volume * (0.55 + 0.45 * fmax(0, cos(v)));
    for (int k = 0; k < 3; k++) p[k] += d[k] * hv;
}
static int paint_hair(const Surf *s, const Face *F, double u, double v, int i, int j, const double p[3], float rgb[3],
                      double *op) {
    (void)u, (void)v;
    double hl = hairline(F, p);
    if (p[1] < hl) return 0;
    *op *= smooth(hl, hl + 0.006, p[1]);
    if (*op < 0.02) return 0;
    double strand = 0.65 * hashf(s->salt, (uint32_t)i, 0) + 0.35 * hashf(s->salt, (uint32_t)i, (uint32_t)j);
    for (int k = 0; k < 3; k++) rgb[k] = (float)(rgb[k] * (0.7 + 0.6 * strand));
    return 1;
}
// long hair: a curtain hanging from the sides and back
static void f_curtain(const Surf *s, const Face *F, double u, double v, double p[3]) {
    (void)s;
    // hugs the skull at the top (continuing the hair shell), then falls clear of the ears
    double hv = F->id->hair_volume, fl = 0.08 * fmax(0, -v), sk = sqrt(fmax(0, 1 - sq(v / F->R[1])));
    double b = smooth(F->ey + 0.045, F->ey + 0.016, v);
    double rx = lerp(F->R[0] * sk + hv, fmax(F->R[0] * 1.02 + hv, F->ear_c[0] + 0.016 + 0.3 * hv), b);
    double rz = lerp(F->R[2] * sk + hv, F->R[2] * 0.98 + hv, b);
    p[0] = (rx + fl) * sin(u);
    p[1] = v;
    p[2] = (rz + fl) * cos(u) - 0.004 * b;
}
static int paint_curtain(const Surf *s, const Face *F, double u, double v, int i, int j, const double p[3],
                         float rgb[3], double *op) {
    (void)F, (void)u, (void)v, (void)p, (void)op;
    double strand = 0.65 * hashf(s->salt, (uint32_t)i, 0) + 0.35 * hashf(s->salt, (uint32_t)i, (uint32_t)j);
    for (int k = 0; k < 3; k++) rgb[k] = (float)(rgb[k] * (0.65 + 0.6 * strand));
    return 1;
}

// --- neck and clothes
static double neck_z(double y) { return -0.018 + (y < -0.06 ? 0.12 * (y + 0.06) : 0); } // the base sits further back
static void f_neck(const Surf *s, const Face *F, double u, double v, double p[3]) {
    (void)s;
    double w = F->id->neck_width;
    p[0] = 0.055 * w * sin(u);
    p[1] = v;
    p[2] = neck_z(v) + 0.057 * w * cos(u);
}
static int paint_clothes(const Surf *s, const Face *F, double u, double v, int i, int j, const double p[3],
                         float rgb[3], double *op) {
    (void)u, (void)v, (void)op;
    double w = F->id->neck_width;
    if (sq(p[0] / (0.064 * w)) + sq((p[2] - neck_z(p[1])) / (0.068 * w)) < 1) return 0; // neck hole
    double m = noise_mul(s, i, j, 0.10);
    for (int k = 0; k < 3; k++) rgb[k] *= (float)m;
    return 1;
}
static int paint_plain(const Surf *s, const Face *F, double u, double v, int i, int j, const double p[3], float rgb[3],
                       double *op) {
    (void)F, (void)u, (void)v, (void)p, (void)op;
    double m = noise_mul(s, i, j, 0.06);
    for (int k = 0; k < 3; k++) rgb[k] *= (float)m;
    return 1;
}
// ears: darker in the hollow of the outer face
static int paint_ear(const Surf *s, const Face *F, double u, double v, int i, int j, const double p[3], float rgb[3],
                     double *op) {
    (void)F, (void)p, (void)op;
    double xl = sin(v) * cos(u), yl = s->r[1] * cos(v), zl = s->r[2] * sin(v) * sin(u);
    double m = xl > 0 ? exp(-sq(yl / 0.013) - sq(zl / 0.008)) : 0;
    double nm = noise_mul(s, i, j, 0.05);
    for (int k = 0; k < 3; k++) rgb[k] = (float)(rgb[k] * (1 - 0.45 * m) * nm);
    return 1;
}

// --- eyes: sphere around the gaze axis (v = angle from the gaze), lids on a slightly larger shell
static void f_eyeball(const Surf *s, const Face *F, double u, double v, double p[3]) {
    double g[3] = {F->gaze[0], F->gaze[1], F->gaze[2]}, e1[3], e2[3], up[3] = {0, 1, 0};
    cross3(up, g, e1);
    normalize3(e1);
    cross3(g, e1, e2);
    double r = s->r[0], c[3] = {s->side * F->ex, F->ey, F->ez};
    for (int k = 0; k < 3; k++) p[k] = c[k] + r * (cos(v) * g[k] + sin(v) * (cos(u) * e1[k] + sin(u) * e2[k]));
}
static int paint_iris(const Surf *s, const Face *F, double u, double v, int i, int j, const double p[3], float rgb[3],
                      double *op) {
    (void)F, (void)u, (void)p, (void)op;
    double t = v / 0.42; // 0 centre .. 1 limbus
    double m = t < 0.36 ? 0.05 : (0.55 + 0.55 * (1 - t) + 0.25 * (hashf(s->salt, (uint32_t)i, (uint32_t)j) - 0.5));
    if (t > 0.88) m *= 0.6; // dark limbal ring
    for (int k = 0; k < 3; k++) rgb[k] = (float)(t < 0.36 ? 0.03 : rgb[k] * m);
    return 1;
}
// lid shell: (u = latitude towards ±x, v in [0, 1] from the lid edge to the far end)
static void f_lid(const Surf *s, const Face *F, double u, double v, double p[3]) {
    double l0 = s->r[1] > 0 ? F->psi_u : -F->psi_l, l1 = s->r[1] > 0 ? 1.9 : -1.7;
    double L = lerp(l0, l1, v), r = F->eye_r + 0.0015, c[3] = {s->side * F->ex, F->ey, F->ez};
    p[0] = c[0] + r * sin(u);
    p[1] = c[1] + r * cos(u) * sin(L);
    p[2] = c[2] + r * cos(u) * cos(L);
}

// --- lips: half tubes along the lip line (u in [−1, 1] across the mouth, v around the tube)
static void f_lip(const Surf *s, const Face *F, double u, double v, double p[3]) {
    double lf = F->id->lip_full, prof = 0.35 + 0.65 * pow(fmax(0, 1 - u * u), 0.6);
    int up = s->side > 0;
    double a = (up ? 0.0048 : 0.0060) * lf * prof * (1 + 0.3 * F->pucker);
    double b = (up ? 0.0046 : 0.0052) * lf * prof * (1 + 0.5 * F->pucker);
    double x = F->mw * u, ll = lipline(F, x) + s->side * 0.0012 * F->pucker * (1 - u * u), yc = ll + s->side * a, q[3];
    face_at(F, x, yc, 0, q);
    double zc = q[2] - 0.0025 + 0.010 * F->pucker * (1 - u * u) - 0.004 * F->smile * u * u;
    p[0] = x;
    p[1] = yc + a * sin(v);
    p[2] = zc + b * cos(v);
}
static int paint_lip(const Surf *s, const Face *F, double u, double v, int i, int j, const double p[3], float rgb[3],
                     double *op) {
    (void)F, (void)u, (void)p, (void)op;
    double m = noise_mul(s, i, j, 0.06) * (0.92 + 0.08 * cos(v));
    for (int k = 0; k < 3; k++) rgb[k] *= (float)m;
    return 1;
}

// --- mouth cavity: a dent behind the skin of the mouth region (u = angle, v = radius fraction), its
// rim 5 mm under the skin so it never shows through; its lower half follows the jaw smoothly.
static void f_cavity(const Surf *s, const Face *F, double u, double v, double p[3]) {
    (void)s;
    double x = 1.05 * F->mw * v * cos(u), y = F->ym - 0.013 + 0.021 * v * sin(u), q[3];
    face_at(F, x, y, 0, q);
    p[0] = x, p[1] = y, p[2] = q[2] - 0.005 - 0.030 * sqrt(fmax(0, 1 - v * v));
    double w = clampd((lipline(F, x) - y) / 0.025, 0, 1);
    jaw_apply(F, w, p);
}
static int paint_cavity(const Surf *s, const Face *F, double u, double v, int i, int j, const double p[3], float rgb[3],
                        double *op) {
    (void)F, (void)u, (void)p, (void)op;
    double m = noise_mul(s, i, j, 0.06) * (0.55 + 0.45 * v); // darker deep inside
    for (int k = 0; k < 3; k++) rgb[k] *= (float)m;
    return 1;
}
static void f_tongue(const Surf *s, const Face *F, double u, double v, double p[3]) {
    (void)s;
    double t = F->tongue, l[3] = {0.018 * sin(v) * cos(u), 0.0065 * cos(v), 0.024 * sin(v) * sin(u)}, R[9], q[3];
    rot_x(0.3 * t, R);
    matvec3(R, l, q);
    p[0] = q[0];
    p[1] = q[1] + F->ym - 0.011 - 0.005 * t;
    p[2] = q[2] + F->zm - 0.034 + 0.036 * t;
}
static int paint_tongue(const Surf *s, const Face *F, double u, double v, int i, int j, const double p[3], float rgb[3],
                        double *op) {
    (void)F, (void)p, (void)op;
    double xl = 0.018 * sin(v) * cos(u), m = noise_mul(s, i, j, 0.08) * (1 - 0.15 * exp(-sq(xl / 0.004)));
    for (int k = 0; k < 3; k++) rgb[k] *= (float)m;
    return 1;
}

// ----------------------------------------------------------------------------------------------
// blobs: teeth, brows, lashes, nostrils, highlights

static void blob(SynthHead *h, const Face *F, int jaw, double p[3], const double t1[3], const double n[3], double s1,
                 double s2, double s3, double op, const float rgb[3], int part) {
    double q[3] = {p[0], p[1], p[2]}, tt[3], nn[3];
    memcpy(tt, t1, sizeof tt);
    memcpy(nn, n, sizeof nn);
    if (jaw) { // rotate the frame with the jaw too
        jaw_apply(F, 1, q);
        double R[9];
        rot_x(F->alpha, R);
        matvec3(R, t1, tt);
        matvec3(R, n, nn);
    }
    push(h, q, tt, nn, s1, s2, s3, op, rgb, part);
}

static void teeth(SynthHead *h, const Face *F, int lower) {
    static const float white[3] = {0.95f, 0.93f, 0.86f};
    int nt = 10;
    double wf = F->id->mouth_width * (lower ? 0.9 : 1.0);
    for (int k = 0; k < nt; k++) {
        double ang = -0.95 + 1.9 * (k + 0.5) / nt;
        double p[3] = {0.021 * wf * sin(ang), lower ? F->ym - 0.0036 : F->ym - 0.0004,
                       F->zm - 0.0056 - (lower ? 0.0012 : 0) - 0.021 * (1 - cos(ang))};
        double t1[3] = {cos(ang), 0, -sin(ang)}, n[3] = {sin(ang), 0, cos(ang)};
        float c[3];
        double m = 0.93 + 0.07 * hashf(lower ? 71 : 72, (uint32_t)k, 0) - 0.10 * fabs(ang);
        for (int i = 0; i < 3; i++) c[i] = (float)(white[i] * m);
        double sy = (lower ? 0.0028 : 0.0036) * (fabs(ang) > 0.6 ? 0.85 : 1);
        // t2 = n × t1 is vertical: the tooth is long in y
        blob(h, F, lower, p, t1, n, 0.0018, sy, 0.0013, 0.98, c,
             lower ? SYNTH_PART_LOWER_TEETH : SYNTH_PART_UPPER_TEETH);
    }
}

static void brows(SynthHead *h, const Face *F, int side) {
    int nb = 12;
    double prev[3] = {0, 0, 0};
    for (int k = 0; k <= nb; k++) {
        double s = (double)k / nb, x = side * (F->ex - 0.016 + 0.038 * s);
        double y = F->ey + 0.016 + 0.004 * sin(3.14159 * pow(s, 0.8)) - 0.003 * s * s +
                   F->brow * (0.008 + 0.003 * (1 - s)) - 0.002 * F->smile,
               q[3];
        face_at(F, x, y, 1, q);
        q[2] += 0.0014;
        if (k) {
            double t1[3] = {q[0] - prev[0], q[1] - prev[1], q[2] - prev[2]}, n[3] = {0.3 * x / 0.05, 0.1, 1}, c[3];
            float col[3];
            double m = 0.85 + 0.3 * hashf(91, (uint32_t)k, (uint32_t)side + 2);
            for (int i = 0; i < 3; i++) col[i] = (float)(F->id->brow[i] * m);
            for (int i = 0; i < 3; i++) c[i] = 0.5 * (q[i] + prev[i]);
            double th = 0.0012 + 0.0018 * (1 - s);
            push(h, c, t1, n, 0.0032, th, 0.0010, 0.95, col, SYNTH_PART_BROW);
        }
        memcpy(prev, q, sizeof q);
    }
}

static void lashes(SynthHead *h, const Face *F, int side) {
    static const float dark[3] = {0.05f, 0.04f, 0.04f};
    double r = F->eye_r + 0.0019, L = F->psi_u, c[3] = {side * F->ex, F->ey, F->ez};
    int nl = 14;
    for (int k = 0; k < nl; k++) {
        double u = -1.15 + 2.3 * (k + 0.5) / nl;
        double d[3] = {sin(u), cos(u) * sin(L), cos(u) * cos(L)}, t1[3] = {cos(u), -sin(u) * sin(L), -sin(u) * cos(L)};
        double p[3] = {c[0] + r * d[0], c[1] + r * d[1], c[2] + r * d[2]};
        double outer = side * u > 0 ? 1.3 : 1.0; // thicker towards the outer corner
        push(h, p, t1, d, 0.0011, 0.0006 * outer, 0.0005, 0.95, dark, SYNTH_PART_EYELID);
    }
}

// ----------------------------------------------------------------------------------------------
// the whole head

static void build(SynthHead *h, const Face *F, const Face *F0) {
    const SynthIdentity *id = F->id;
    const double PI = 3.141592653589793;
    float skin[3], c3[3];
    memcpy(skin, id->skin, sizeof skin);
    // skin of the head and face
    Surf s = surf_new(f_skull, SYNTH_PART_SKIN, skin, 0.0026);
    s.paint = paint_skin;
    s.jaw = -1;
    surf_sample(h, &s, F, F0, -PI, PI, 0.02, 2.75);
    // ears
    for (int side = -1; side <= 1; side += 2) {
        Surf e = surf_new(f_ellipsoid, SYNTH_PART_EAR, NULL, 0.0022);
        for (int k = 0; k < 3; k++) e.rgb[k] = (float)(skin[k] * (k == 0 ? 0.97 : 0.90));
        e.paint = paint_ear;
        e.salt += (uint32_t)side + 5;
        double Rx[9], Ry[9];
        rot_x(-0.22, Rx);        // top leans back
        rot_y(-side * 0.35, Ry); // back edge stands off the head
        matmul3(Ry, Rx, e.A);
        // local x = thickness: outward is +x for the left ear; mirror the right one
        if (side < 0)
            for (int k = 0; k < 3; k++) e.A[3 * k] = -e.A[3 * k];
        e.c[0] = side * F->ear_c[0], e.c[1] = F->ear_c[1], e.c[2] = F->ear_c[2];
        e.r[0] = 0.0055, e.r[1] = 0.029 * id->ear_size, e.r[2] = 0.016 * id->ear_size;
        memcpy(e.ref, e.c, sizeof e.ref);
        surf_sample(h, &e, F, F0, 0, 2 * PI, 0.05, PI - 0.05);
    }
    // neck and clothes
    for (int k = 0; k < 3; k++) c3[k] = skin[k] * 0.92f;
    Surf n = surf_new(f_neck, SYNTH_PART_NECK, c3, 0.0042);
    n.paint = paint_plain;
    n.ref[2] = -0.03;
    n.ref_mode = 2;
    surf_sample(h, &n, F, F0, -PI, PI, -0.235, -0.035);
    Surf cl = surf_new(f_ellipsoid, SYNTH_PART_CLOTHES, id->clothes, 0.0075);
    cl.paint = paint_clothes;
    cl.c[0] = 0, cl.c[1] = -0.245, cl.c[2] = -0.03;
    cl.r[0] = 0.20, cl.r[1] = 0.085, cl.r[2] = 0.12;
    memcpy(cl.ref, cl.c, sizeof cl.ref);
    surf_sample(h, &cl, F, F0, 0, 2 * PI, 0.02, 1.75);
    // hair
    if (id->hair_volume > 0) {
        Surf hs = surf_new(f_hair, SYNTH_PART_HAIR, id->hair, 0.0032);
        hs.paint = paint_hair;
        hs.thick = 0.0012;
        hs.an_u = 0.8, hs.an_v = 1.7;
        hs.opac = 0.96;
        surf_sample(h, &hs, F, F0, -PI, PI, 0.02, 2.55);
        if (id->hair_len > 0.35) {
            double yend = -0.06 - 0.16 * (id->hair_len - 0.35) / 0.65;
            Surf hc = surf_new(f_curtain, SYNTH_PART_HAIR, id->hair, 0.0036);
            hc.paint = paint_curtain;
            hc.thick = 0.0012;
            hc.an_u = 0.8, hc.an_v = 1.7;
            hc.opac = 0.96;
            hc.salt += 1;
            hc.ref[2] = -0.004;
            hc.ref_mode = 2;
            surf_sample(h, &hc, F, F0, 0.95, 2 * PI - 0.95, yend, F->ey + 0.045);
        }
    }
    // nose: bridge, lower nose, tip, alae, nostrils
    {
        float ns[3] = {skin[0] * 1.0f, skin[1] * 0.95f, skin[2] * 0.93f};
        double q[3], T[3], P[3];
        double ytip = F->ey - (F->ey - (F->ym + 0.022)) * id->nose_len;
        face_at(F, 0, F->ey + 0.004, 0, q);
        T[0] = 0, T[1] = F->ey + 0.004, T[2] = q[2] + 0.001;
        face_at(F, 0, ytip, 0, q);
        P[0] = 0, P[1] = ytip, P[2] = q[2] + 0.019 * id->nose_depth;
        double al[3] = {0, P[1] - T[1], P[2] - T[2]}, len = norm3(al);
        normalize3(al);
        double fw[3] = {0, -al[2], al[1]}; // perpendicular in the y-z plane (points forward-up)
        if (fw[2] < 0) fw[1] = -fw[1], fw[2] = -fw[2];
        struct {
            double t0, t1, w, d;
        } seg[2] = {{-0.05, 0.75, 0.0062, 0.0058}, {0.35, 1.00, 0.0086, 0.0066}};
        for (int k = 0; k < 2; k++) {
            Surf e = surf_new(f_ellipsoid, SYNTH_PART_NOSE, ns, 0.0016);
            e.paint = paint_plain;
            e.salt += (uint32_t)k;
            double tm = 0.5 * (seg[k].t0 + seg[k].t1);
            for (int i = 0; i < 3; i++) e.c[i] = T[i] + al[i] * len * tm - fw[i] * seg[k].d * 0.85;
            double ax[3] = {1, 0, 0};
            for (int i = 0; i < 3; i++) e.A[3 * i] = ax[i], e.A[3 * i + 1] = al[i], e.A[3 * i + 2] = fw[i];
            e.r[0] = seg[k].w * id->nose_width, e.r[1] = 0.5 * len * (seg[k].t1 - seg[k].t0), e.r[2] = seg[k].d;
            memcpy(e.ref, e.c, sizeof e.ref);
            surf_sample(h, &e, F, F0, 0, 2 * PI, 0.05, PI - 0.05);
        }
        Surf tip = surf_new(f_ellipsoid, SYNTH_PART_NOSE, ns, 0.0015);
        tip.paint = paint_plain;
        tip.salt += 3;
        for (int i = 0; i < 3; i++) tip.c[i] = P[i] - fw[i] * 0.0062 - al[i] * 0.002;
        tip.r[0] = 0.0092 * id->nose_width, tip.r[1] = 0.0072, tip.r[2] = 0.0078;
        memcpy(tip.ref, tip.c, sizeof tip.ref);
        surf_sample(h, &tip, F, F0, 0, 2 * PI, 0.05, PI - 0.05);
        for (int side = -1; side <= 1; side += 2) {
            Surf a = surf_new(f_ellipsoid, SYNTH_PART_NOSE, ns, 0.0015);
            a.paint = paint_plain;
            a.salt += 4 + (uint32_t)(side + 1);
            face_at(F, side * 0.0105 * id->nose_width, ytip - 0.003, 0, q);
            a.c[0] = side * 0.0105 * id->nose_width, a.c[1] = ytip - 0.003, a.c[2] = q[2] + 0.002;
            a.r[0] = 0.0055 * id->nose_width, a.r[1] = 0.0050, a.r[2] = 0.0068;
            memcpy(a.ref, a.c, sizeof a.ref);
            surf_sample(h, &a, F, F0, 0, 2 * PI, 0.05, PI - 0.05);
            static const float nostril[3] = {0.10f, 0.05f, 0.045f};
            double p[3] = {side * 0.0048 * id->nose_width, ytip - 0.0082, P[2] - 0.0075};
            double t1[3] = {0, 0, 1}, dn[3] = {0, -1, 0.25};
            push(h, p, t1, dn, 0.0030, 0.0020, 0.0009, 0.95, nostril, SYNTH_PART_NOSE);
        }
    }
    // eyes
    for (int side = -1; side <= 1; side += 2) {
        static const float white[3] = {0.93f, 0.90f, 0.87f};
        double c[3] = {side * F->ex, F->ey, F->ez};
        Surf sc = surf_new(f_eyeball, SYNTH_PART_SCLERA, white, 0.0011);
        sc.side = side;
        sc.r[0] = F->eye_r;
        memcpy(sc.ref, c, sizeof sc.ref);
        sc.paint = paint_plain;
        sc.salt += (uint32_t)side + 3;
        surf_sample(h, &sc, F, F0, 0, 2 * PI, 0.42, 1.45);
        Surf ir = surf_new(f_eyeball, SYNTH_PART_IRIS, id->iris, 0.0007);
        ir.side = side;
        ir.r[0] = F->eye_r + 0.0002;
        memcpy(ir.ref, c, sizeof ir.ref);
        ir.paint = paint_iris;
        ir.salt += (uint32_t)side + 9;
        surf_sample(h, &ir, F, F0, 0, 2 * PI, 0.0, 0.44);
        // a painted corneal highlight (up and towards the key light)
        double hd[3] = {F->gaze[0] + 0.22, F->gaze[1] + 0.28, F->gaze[2]}, hp[3];
        normalize3(hd);
        for (int k = 0; k < 3; k++) hp[k] = c[k] + (F->eye_r + 0.0005) * hd[k];
        static const float wh[3] = {1, 1, 1};
        double t1[3] = {1, 0, 0};
        push(h, hp, t1, hd, 0.0007, 0.0007, 0.0002, 0.85, wh, SYNTH_PART_IRIS);
        // lids: upper (r[1] > 0) and lower
        for (int up = 0; up <= 1; up++) {
            float lc[3] = {skin[0] * 0.97f, skin[1] * 0.90f, skin[2] * 0.88f};
            Surf l = surf_new(f_lid, SYNTH_PART_EYELID, lc, 0.0011);
            l.side = side;
            l.r[1] = up ? 1 : -1;
            memcpy(l.ref, c, sizeof l.ref);
            l.paint = paint_plain;
            l.salt += (uint32_t)(side + 1) * 2 + (uint32_t)up + 20;
            surf_sample(h, &l, F, F0, -1.52, 1.52, 0, 1);
        }
        lashes(h, F, side);
        brows(h, F, side);
    }
    // mouth: cavity, teeth, tongue, lips
    {
        static const float cav[3] = {0.22f, 0.06f, 0.07f}, tongue[3] = {0.80f, 0.36f, 0.40f};
        Surf b = surf_new(f_cavity, SYNTH_PART_MOUTH, cav, 0.0022);
        b.ref[0] = 0, b.ref[1] = F->ym - 0.013, b.ref[2] = F->zm + 0.05; // normals face the front
        b.ref_mode = 1;
        b.paint = paint_cavity;
        surf_sample(h, &b, F, F0, 0, 2 * PI, 0, 1);
        teeth(h, F, 0);
        teeth(h, F, 1);
        Surf t = surf_new(f_tongue, SYNTH_PART_TONGUE, tongue, 0.0022);
        t.jaw = 1;
        t.paint = paint_tongue;
        t.ref[1] = F->ym - 0.011 - 0.005 * F->tongue, t.ref[2] = F->zm - 0.034 + 0.036 * F->tongue;
        jaw_apply(F, 1, t.ref); // the tongue's centre where it is now
        surf_sample(h, &t, F, F0, 0, 2 * PI, 0.05, PI - 0.05);
        for (int up = 0; up <= 1; up++) {
            Surf l = surf_new(f_lip, up ? SYNTH_PART_UPPER_LIP : SYNTH_PART_LOWER_LIP, id->lip, 0.0011);
            l.side = up ? 1 : -1;
            l.jaw = up ? 0 : 1;
            l.paint = paint_lip;
            l.opac = 0.98;
            l.ref[0] = 0, l.ref[1] = F0->ym, l.ref[2] = F0->zm - 0.03;
            surf_sample(h, &l, F, F0, -1, 1, -1.5707963, 1.5707963);
        }
    }
}

void synth_head_build(SynthHead *h, const SynthIdentity *id, const float expr[SYNTH_NEXPR]) {
    float zero[SYNTH_NEXPR] = {0};
    Face F, F0;
    face_setup(&F, id, expr);
    face_setup(&F0, id, zero);
    h->n = 0;
    build(h, &F, &F0);
}

// ----------------------------------------------------------------------------------------------
// the rig

void synth_dome(AvwCamera *cams, int n, uint64_t seed, int subject) {
    const double D2R = 3.141592653589793 / 180;
    Rng r = rng_make(seed, 0xCA000000ull + (uint64_t)subject);
    int nreg = n > 1 ? n - 1 : n; // the last camera is the extra one (calibrated, no data)
    int rows = nreg >= 9 ? 3 : (nreg >= 2 ? 2 : 1);
    static const double el3[3] = {25, 5, -15}, el2[2] = {15, -8}, el1[1] = {5};
    const double *els = rows == 3 ? el3 : (rows == 2 ? el2 : el1);
    int idx = 0;
    for (int row = 0; row < rows; row++) {
        int cnt = nreg / rows + (row < nreg % rows);
        double span = row % 2 ? 130 : 150; // a narrower middle row staggers the azimuths
        for (int k = 0; k < cnt; k++, idx++) {
            double az = cnt == 1 ? 0 : -span / 2 + span * k / (cnt - 1);
            cams[idx].t[0] = az, cams[idx].t[1] = els[row]; // stash angles; filled below
        }
    }
    if (n > 1) cams[n - 1].t[0] = 150, cams[n - 1].t[1] = 10;
    for (int i = 0; i < n; i++) {
        AvwCamera *c = &cams[i];
        double az = (c->t[0] + 2 * (rng_next_uniform(&r) - 0.5)) * D2R,
               el = (c->t[1] + 2 * (rng_next_uniform(&r) - 0.5)) * D2R;
        double dist = 1100 + 60 * (rng_next_uniform(&r) - 0.5);
        const double *hc = SYNTH_HEAD_CENTRE_MM;
        double eye[3] = {hc[0] + dist * sin(az) * cos(el), hc[1] - dist * sin(el), hc[2] - dist * cos(az) * cos(el)};
        double tgt[3] = {hc[0] + 20 * (rng_next_uniform(&r) - 0.5), hc[1] + 25 + 20 * (rng_next_uniform(&r) - 0.5),
                         hc[2] + 20 * (rng_next_uniform(&r) - 0.5)};
        // OpenCV look-at (rows: right, down, forward), world y is down
        double z[3] = {tgt[0] - eye[0], tgt[1] - eye[1], tgt[2] - eye[2]}, a[3] = {0, 1, 0}, x[3], y[3];
        normalize3(z);
        cross3(a, z, x);
        normalize3(x);
        cross3(z, x, y);
        for (int k = 0; k < 3; k++) c->R[k] = x[k], c->R[3 + k] = y[k], c->R[6 + k] = z[k];
        for (int k = 0; k < 3; k++)
            c->t[k] = -(c->R[3 * k] * eye[0] + c->R[3 * k + 1] * eye[1] + c->R[3 * k + 2] * eye[2]);
        double f = 9000 * (1 + 0.04 * (rng_next_uniform(&r) - 0.5));
        double K[9] = {f,
                       0,
                       SYNTH_NATIVE_W / 2.0 + 50 * (rng_next_uniform(&r) - 0.5),
                       0,
                       f * (1 + 0.004 * (rng_next_uniform(&r) - 0.5)),
                       SYNTH_NATIVE_H / 2.0 + 50 * (rng_next_uniform(&r) - 0.5),
                       0,
                       0,
                       1};
        memcpy(c->K, K, sizeof K);
        // small non-zero distortion: the images are undistorted; readers must ignore these
        double dist4[4] = {-0.07, 0.04, -0.003, 0.003};
        for (int k = 0; k < 4; k++) c->dist[k] = dist4[k] * (1 + 0.2 * (rng_next_uniform(&r) - 0.5));
        snprintf(c->id, sizeof c->id, "%06d", 400101 + i);
    }
}

void synth_camera_for_image(const AvwCamera *c, int W, int H, double K_img[9], double w2c_m[12]) {
    double sx = (double)W / SYNTH_NATIVE_W, sy = (double)H / SYNTH_NATIVE_H;
    double K[9] = {c->K[0] * sx, c->K[1] * sx, c->K[2] * sx, c->K[3] * sy, c->K[4] * sy, c->K[5] * sy, 0, 0, 1};
    memcpy(K_img, K, sizeof K);
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 3; j++) w2c_m[4 * i + j] = c->R[3 * i + j];
        w2c_m[4 * i + 3] = c->t[i] / 1000;
    }
}

// ----------------------------------------------------------------------------------------------
// rendering

#define SYNTH_CHUNK 8 // cameras per rasterizer call (bounds the intersection pool)
#define SYNTH_K (3 + SYNTH_NPARTS)

void synth_render(SynthRender *o, const SynthHead *h, const double Rh[9], const double th[3], int C,
                  const double *w2c_m, const double *K_img, int W, int H) {
    int G = h->n, Cm = C < SYNTH_CHUNK ? C : SYNTH_CHUNK;
    size_t px = (size_t)W * H;
    if (o->W != W || o->H != H || o->C != C) {
        free(o->rgb), free(o->alpha), free(o->depth), free(o->parts);
        o->rgb = (float *)mallocCheck(sizeof(float) * C * px * 3);
        o->alpha = (float *)mallocCheck(sizeof(float) * C * px);
        o->depth = (float *)mallocCheck(sizeof(float) * C * px);
        o->parts = (float *)mallocCheck(sizeof(float) * C * px * SYNTH_NPARTS);
        o->W = W, o->H = H, o->C = C;
    }
    if (o->rG != G || o->rCm != Cm || o->r.d.W != W || o->r.d.H != H) {
        if (o->rG) raster_free(&o->r);
        RasterDims d = {1, G, Cm, W, H, SYNTH_K};
        raster_build(&o->r, d, 4);
        o->rG = G, o->rCm = Cm;
    }
    if (o->buf_n < G) {
        free(o->buf);
        o->buf = (float *)mallocCheck(sizeof(float) * (size_t)G * (3 + 4 + SYNTH_K));
        o->buf_n = G;
    }
    float *means = o->buf, *quats = means + 3 * (size_t)G, *cols = quats + 4 * (size_t)G;
    // world-space Gaussians; shading from a key and a fill light fixed in the world (y down, rig at −z)
    double qh[4], L1[3] = {0.35, -0.55, -0.75}, L2[3] = {-0.70, 0.05, -0.60};
    normalize3(L1), normalize3(L2);
    quat_of(Rh, qh);
    for (int i = 0; i < G; i++) {
        double m[3] = {h->mean[3 * i], h->mean[3 * i + 1], h->mean[3 * i + 2]}, w[3], nh[3], nw[3];
        matvec3(Rh, m, w);
        for (int k = 0; k < 3; k++) means[3 * i + k] = (float)(w[k] + th[k]);
        const float *q = h->quat + 4 * i; // qh ⊗ q
        double a0 = qh[0], a1 = qh[1], a2 = qh[2], a3 = qh[3];
        quats[4 * i + 0] = (float)(a0 * q[0] - a1 * q[1] - a2 * q[2] - a3 * q[3]);
        quats[4 * i + 1] = (float)(a0 * q[1] + a1 * q[0] + a2 * q[3] - a3 * q[2]);
        quats[4 * i + 2] = (float)(a0 * q[2] - a1 * q[3] + a2 * q[0] + a3 * q[1]);
        quats[4 * i + 3] = (float)(a0 * q[3] + a1 * q[2] - a2 * q[1] + a3 * q[0]);
        for (int k = 0; k < 3; k++) nh[k] = h->normal[3 * i + k];
        matvec3(Rh, nh, nw);
        double shade = 0.40 + 0.52 * fmax(0, dot3(nw, L1)) + 0.20 * fmax(0, dot3(nw, L2));
        float *c = cols + (size_t)SYNTH_K * i;
        for (int k = 0; k < 3; k++) c[k] = (float)fmin(1, h->rgb[3 * i + k] * shade);
        for (int k = 0; k < SYNTH_NPARTS; k++) c[3 + k] = k == h->part[i] ? 1.f : 0.f;
    }
    float bg[SYNTH_K] = {0}, w2c[SYNTH_CHUNK * 12], Kf[SYNTH_CHUNK * 9];
    RasterIn in = {means, quats, h->scale, h->opac, cols, w2c, Kf, bg};
    for (int c0 = 0; c0 < C; c0 += Cm) {
        for (int j = 0; j < Cm; j++) {
            int c = c0 + j < C ? c0 + j : C - 1; // pad a short last chunk with copies
            for (int k = 0; k < 12; k++) w2c[12 * j + k] = (float)w2c_m[12 * c + k];
            for (int k = 0; k < 9; k++) Kf[9 * j + k] = (float)K_img[9 * c + k];
        }
        raster_forward(&o->r, &in);
        for (int j = 0; j < Cm && c0 + j < C; j++) {
            size_t c = (size_t)c0 + j;
            const float *img = o->r.image + (size_t)j * px * SYNTH_K;
            for (size_t p = 0; p < px; p++) {
                for (int k = 0; k < 3; k++) o->rgb[(c * px + p) * 3 + k] = img[p * SYNTH_K + k];
                for (int k = 0; k < SYNTH_NPARTS; k++)
                    o->parts[(c * px + p) * SYNTH_NPARTS + k] = img[p * SYNTH_K + 3 + k];
                float a = o->r.alpha[(size_t)j * px + p], d = o->r.depth[(size_t)j * px + p];
                o->alpha[c * px + p] = a;
                o->depth[c * px + p] = a > 1e-6f ? d / a : 0;
            }
        }
    }
}

void synth_render_free(SynthRender *o) {
    free(o->rgb), free(o->alpha), free(o->depth), free(o->parts), free(o->buf);
    if (o->rG) raster_free(&o->r);
    memset(o, 0, sizeof *o);
}

// ----------------------------------------------------------------------------------------------
// per-camera outputs

static uint8_t to_u8(double v) { return (uint8_t)lrint(255 * clampd(v, 0, 1)); }

void synth_plate(uint8_t *rgb8, int W, int H, uint64_t seed, int subject, int cam) {
    Rng r = rng_make(seed, 0xB6000000ull + (uint64_t)subject * 4096 + (uint64_t)cam);
    double g = 0.24 + 0.12 * rng_next_uniform(&r), tint[3], fx = 1 + 2 * rng_next_uniform(&r),
           fy = 0.5 + 1.5 * rng_next_uniform(&r), ph = 6.283185307179586 * rng_next_uniform(&r);
    for (int k = 0; k < 3; k++) tint[k] = 1 + 0.10 * (rng_next_uniform(&r) - 0.5);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double u = (x + 0.5) / W, v = (y + 0.5) / H;
            double val = g * (1.12 - 0.24 * v) + 0.025 * sin(6.283185307179586 * (fx * u + fy * v) + ph) +
                         0.012 * sin(6.283185307179586 * (3.1 * u - 2.3 * v) + 2 * ph);
            for (int k = 0; k < 3; k++) rgb8[((size_t)y * W + x) * 3 + k] = to_u8(val * tint[k]);
        }
}

void synth_compose(const SynthRender *r, int c, const uint8_t *plate, uint8_t *rgb8, uint8_t *mask8) {
    size_t px = (size_t)r->W * r->H;
    for (size_t p = 0; p < px; p++) {
        double a = r->alpha[c * px + p], norm = 1;
        // The rasterizer stops at T <= 1e-4 without the last Gaussian, so solid surfaces keep up to ~0.3%
        // transmittance: count alpha within 0.5% of 1 as opaque (mask 255, no plate showing through).
        if (a >= SYNTH_OPAQUE) norm = 1 / a, a = 1;
        for (int k = 0; k < 3; k++)
            rgb8[p * 3 + k] = to_u8(r->rgb[(c * px + p) * 3 + k] * norm + (1 - a) * (plate[p * 3 + k] / 255.0));
        mask8[p] = to_u8(a);
    }
}

void synth_segmentation(const SynthRender *r, int c, uint8_t *labels) {
    size_t px = (size_t)r->W * r->H;
    for (size_t p = 0; p < px; p++) {
        const float *w = r->parts + (c * px + p) * SYNTH_NPARTS;
        int best = 0;
        for (int k = 1; k < SYNTH_NPARTS; k++)
            if (w[k] > w[best]) best = k;
        labels[p] = r->alpha[c * px + p] >= 0.5f ? synth_part_ava_class[best] : 0;
    }
}

void synth_dust3r(const SynthRender *r, int c, const double w2c_m[12], const double K[9], uint64_t seed, int subject,
                  int cam, int frame_index, float *out) {
    int W = r->W, H = r->H;
    size_t px = (size_t)W * H;
    Rng g = rng_make(seed, (0xD5ull << 56) ^ ((uint64_t)subject << 40) ^ ((uint64_t)cam << 24) ^ (uint64_t)frame_index);
    const double *M = w2c_m;
    double C[3], hc[3];
    for (int k = 0; k < 3; k++)
        C[k] = -(M[k] * M[3] + M[4 + k] * M[7] + M[8 + k] * M[11]), hc[k] = SYNTH_HEAD_CENTRE_MM[k] / 1000;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            size_t p = (size_t)y * W + x;
            double a = r->alpha[c * px + p], z = r->depth[c * px + p];
            double dc[3] = {(x + 0.5 - K[2]) / K[0], (y + 0.5 - K[5]) / K[4], 1}, dw[3], pw[3], sigma, conf;
            for (int k = 0; k < 3; k++) dw[k] = M[k] * dc[0] + M[4 + k] * dc[1] + M[8 + k] * dc[2]; // Rᵀ·dc
            double u = rng_uniform_at(&g, p * 4 + 3);
            if (a >= 0.5 && z > 0) {
                for (int k = 0; k < 3; k++) pw[k] = C[k] + z * dw[k];
                sigma = 0.0015 + 0.006 * (1 - a);
                conf = a * a * (0.75 + 0.2 * u);
            } else { // the dome: a sphere of 1.8 m around the head, the camera inside it
                double nd = norm3(dw), o[3] = {C[0] - hc[0], C[1] - hc[1], C[2] - hc[2]};
                for (int k = 0; k < 3; k++) dw[k] /= nd;
                double b = dot3(o, dw), cc = dot3(o, o) - 1.8 * 1.8, s = -b + sqrt(fmax(0, b * b - cc));
                for (int k = 0; k < 3; k++) pw[k] = C[k] + s * dw[k];
                sigma = 0.030;
                conf = 0.02 + 0.08 * u;
            }
            for (int k = 0; k < 3; k++) out[p * 4 + k] = (float)(1000 * (pw[k] + sigma * rng_normal_at(&g, p * 4 + k)));
            out[p * 4 + 3] = (float)conf;
        }
}

void synth_sapiens(const SynthRender *r, int c, int ws, int hs, float *out) {
    int W = r->W, H = r->H;
    size_t px = (size_t)W * H;
    for (int cy = 0; cy < hs; cy++)
        for (int cx = 0; cx < ws; cx++) {
            int x0 = (int)((long)cx * W / ws), x1 = (int)((long)(cx + 1) * W / ws);
            int y0 = (int)((long)cy * H / hs), y1 = (int)((long)(cy + 1) * H / hs);
            double acc[SYNTH_NPARTS] = {0};
            int n = 0;
            for (int y = y0; y < y1; y++)
                for (int x = x0; x < x1; x++, n++)
                    for (int k = 0; k < SYNTH_NPARTS; k++)
                        acc[k] += r->parts[(c * px + (size_t)y * W + x) * SYNTH_NPARTS + k];
            for (int k = 0; k < SYNTH_NPARTS; k++)
                out[((size_t)cy * ws + cx) * SYNTH_NPARTS + k] = (float)(n ? acc[k] / n : 0);
        }
}
