// test_lpips.c — LPIPS (train/lpips.c): the input gradient against central finite differences in double,
// both precisions against the independent PyTorch reference (tools/reference/lpips_ref.py, autograd),
// the weight file (round trip and every refusal), the converter (fake torchvision + lin .pth files ->
// tools/convert_lpips.py -> C, against lpips_ref.py reading the .pth files itself), LPIPS(x, x) = 0,
// and thread-count independence.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "../common/atb.h"
#include "../common/rng.h"
#include "lpips.h"
#include "test.h"

// Images in [0, 1], drawn as floats so the float and double runs (and PyTorch) see the same values.
static void rand_images(double *v, size_t n, uint64_t seed, uint64_t stream) {
    Rng r = rng_make(seed, stream);
    for (size_t i = 0; i < n; i++) v[i] = (double)rng_uniform_at(&r, i);
}

static float *to32(const double *x, size_t n) {
    float *y = (float *)malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) y[i] = (float)x[i];
    return y;
}

static void write_images(const char *path, const double *x, const double *y, int N, int H, int W) {
    uint64_t dims[4] = {(uint64_t)N, (uint64_t)H, (uint64_t)W, 3};
    AtbWriter w;
    atb_write_begin(&w, path, 2);
    atb_write_tensor(&w, "x", ATB_F64, 4, dims, x);
    atb_write_tensor(&w, "y", ATB_F64, 4, dims, y);
    atb_write_end(&w);
}

// max|c − ref| / max|ref| over a tensor (c32 or c64), printed; returns 1 when above tol.
static int compare(const char *name, const float *c32, const double *c64, const double *ref, size_t n, double tol) {
    double m = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        double v = c32 ? c32[i] : c64[i], e = fabs(v - ref[i]);
        s = fmax(s, fabs(ref[i]));
        m = fmax(m, e != e ? INFINITY : e);
    }
    double rel = m / (s + 1e-300);
    int bad = !(rel <= tol);
    printf("    %-8s %-4s max abs %.3e  max|ref| %.3e  rel %.2e  (tol %.0e) %s\n", name, c32 ? "f32" : "f64", m, s, rel,
           tol, bad ? "FAIL" : "ok");
    return bad;
}

// ----------------------------------------------------------------------------------------------
// finite differences (double)

// Central differences in double. Two error sources pull the step h apart: rounding (the forward sums
// thousands of terms per unit: ~1e-16·|L| of noise, divided by h) grows as h shrinks, and ReLU kinks /
// pool argmax switches inside ±h grow with h: a pixel's receptive field holds ~10⁴–10⁵ units, so at
// h = 1e-4 one of them usually crosses. Measured here (worst of 20 elements, relative to
// max(|g|, 1e-3·max|g|)): h = 1e-4: 4e-2 (a kink), 1e-5: 1e-7, 1e-6: 1e-5 (rounding), 1e-7: 1e-5 .. 9e-5.
// So each element takes the better of h = 1e-5 and 1e-6, and the random ±1 direction through every
// pixel at once (all units move: kinks are likelier, but the derivative is larger) the better of 1e-6
// and 1e-7: a kink spoils one step, rounding the other, a bug both. Measured: elements ≤ 1.4e-6 (VGG;
// absolute ≤ 1.2e-11 against max|g| ≈ 4e-3), direction ≤ 3e-8. Tolerance 1e-5, while a real bug (a
// wrong index, a missing 1/s, a dropped term) is O(1).
#define FD_TOL 1e-5

// (L(x0 + h·d) − L(x0 − h·d)) / 2h for d = e_i (v NULL) or d = v; x is left equal to x0.
static double central(Lpips_f64 *l, double *x, const double *x0, const double *y, size_t n, size_t i, const double *v,
                      double h) {
    double L[2];
    for (int s = 0; s < 2; s++) {
        double hs = s ? -h : h;
        if (v)
            for (size_t j = 0; j < n; j++) x[j] = x0[j] + hs * v[j];
        else
            x[i] = x0[i] + hs;
        L[s] = lpips_forward_f64(l, x, y, NULL);
    }
    if (v)
        memcpy(x, x0, 8 * n);
    else
        x[i] = x0[i];
    return (L[0] - L[1]) / (2 * h);
}

static int fd_case(int net, int N, int H, int W, uint64_t seed) {
    LpipsWeights w;
    lpips_weights_random(&w, net, seed);
    Lpips_f64 l;
    lpips_build_f64(&l, &w, N, H, W, 0);
    size_t n = (size_t)N * H * W * 3;
    double *x = malloc(8 * n), *x0 = malloc(8 * n), *y = malloc(8 * n), *dx = calloc(n, 8), *v = malloc(8 * n);
    rand_images(x0, n, seed, 1);
    rand_images(y, n, seed, 2);
    memcpy(x, x0, 8 * n);
    double L = lpips_forward_f64(&l, x, y, NULL);
    lpips_backward_f64(&l, dx, 1.0);
    double gmax = 0;
    for (size_t i = 0; i < n; i++) gmax = fmax(gmax, fabs(dx[i]));
    // elements: the corners, the middle, the last row/column (which a stride-4 conv may not reach: there
    // the gradient is exactly 0 and FD must agree), then spread ones
    size_t idx[32];
    int ni = 0;
    idx[ni++] = 0, idx[ni++] = n - 1, idx[ni++] = n / 2 + 1;
    idx[ni++] = ((size_t)(H - 1) * W + 0) * 3 + 1;               // image 0, last row, first column
    idx[ni++] = ((size_t)0 * W + (W - 1)) * 3 + 2;               // image 0, first row, last column
    idx[ni++] = (((size_t)(N - 1) * H + H / 2) * W + W - 1) * 3; // last image, middle row, last column
    Rng r = rng_make(seed, 3);
    for (; ni < 24; ni++) idx[ni] = rng_u32_at(&r, (uint64_t)ni) % n;
    double worst = 0, worst_abs = 0;
    for (int t = 0; t < ni; t++) {
        size_t i = idx[t];
        double e = INFINITY;
        for (double h = 1e-5; h > 0.5e-6; h /= 10) e = fmin(e, fabs(central(&l, x, x0, y, n, i, NULL, h) - dx[i]));
        // relative to the element's own gradient, floored at 1e-3 of the largest (zero gradients too)
        worst = fmax(worst, e / fmax(fabs(dx[i]), 1e-3 * gmax)), worst_abs = fmax(worst_abs, e);
    }
    for (size_t i = 0; i < n; i++) v[i] = rng_uniform_at(&r, 1000 + i) < 0.5 ? -1 : 1;
    double an = 0, dir = INFINITY;
    for (size_t i = 0; i < n; i++) an += dx[i] * v[i];
    for (double h = 1e-6; h > 0.5e-7; h /= 10) dir = fmin(dir, fabs(central(&l, x, x0, y, n, 0, v, h) - an) / fabs(an));
    printf("    LPIPS-%s N=%d %dx%d: L = %.6f, max|dL/dx| %.3e; %d elements: worst rel %.2e (abs %.2e); "
           "random direction rel %.2e (tol %.0e)\n",
           lpips_net_name(net), N, H, W, L, gmax, ni, worst, worst_abs, dir, FD_TOL);
    lpips_free_f64(&l);
    lpips_weights_free(&w);
    free(x), free(x0), free(y), free(dx), free(v);
    CHECK(worst < FD_TOL && dir < FD_TOL, "LPIPS-%s gradient differs from finite differences", lpips_net_name(net));
    return 0;
}

// Odd sizes: floor-mode pools drop a row/column (VGG 33 -> 16, 21 -> 10 -> 5 -> 2 -> 1); AlexNet's
// stride-4 conv leaves the last column of 50 unreached and its 3/2 pools drop borders (45: 10 -> 4 -> 1).
static int test_fd_vgg(void) { return fd_case(LPIPS_VGG, 2, 33, 21, 11); }
static int test_fd_alex(void) { return fd_case(LPIPS_ALEX, 2, 45, 50, 12); }

// ----------------------------------------------------------------------------------------------
// against the PyTorch reference (float64)

// Tolerances relative to the tensor's largest |value|. f64 1e-10: C double and PyTorch float64 differ
// only in summation order (measured ≤ 6e-15). f32 1e-4: up to 13 float convs with sums of up to 4608
// products each (ε·√K ≈ 1e-5 per layer at worst, compounding through the trunk), then a channel
// normalisation and the difference of two unit vectors, which cancels digits; measured: distances
// ≤ 5e-8, gradients ≤ 3.3e-6 (VGG), so 1e-4 leaves room for other sizes and seeds.
static int ref_case(int net, int N, int H, int W, uint64_t seed) {
    LpipsWeights w;
    lpips_weights_random(&w, net, seed);
    char wp[1024], ip[1024], op[1024], args[4096], err[1024];
    snprintf(wp, sizeof wp, "%s/lpips_%s.bin", test_tmpdir(), lpips_net_name(net));
    snprintf(ip, sizeof ip, "%s/images_%s.atb", test_tmpdir(), lpips_net_name(net));
    snprintf(op, sizeof op, "%s/ref_%s.atb", test_tmpdir(), lpips_net_name(net));
    lpips_weights_save(&w, wp);
    size_t n = (size_t)N * H * W * 3;
    double *x = malloc(8 * n), *y = malloc(8 * n);
    rand_images(x, n, seed, 1);
    rand_images(y, n, seed, 2);
    write_images(ip, x, y, N, H, W);
    snprintf(args, sizeof args, "compare --weights '%s' --images '%s' --out '%s' --dtype float64", wp, ip, op);
    CHECK(test_python_script_args("tools/reference/lpips_ref.py", args) == 0, "lpips_ref.py compare failed");
    Atb ref;
    CHECK(!atb_read(op, &ref, err, sizeof err), "%s", err);
    double *rper = malloc(8 * N), *rgrad = malloc(8 * n), rmean;
    CHECK(!atb_get_f64(&ref, "per", rper, N, err, sizeof err), "%s", err);
    CHECK(!atb_get_f64(&ref, "grad.x", rgrad, n, err, sizeof err), "%s", err);
    CHECK(!atb_get_f64(&ref, "mean", &rmean, 1, err, sizeof err), "%s", err);
    // C, both precisions
    Lpips_f64 l64;
    Lpips l32;
    lpips_build_f64(&l64, &w, N, H, W, 0);
    lpips_build(&l32, &w, N, H, W, 0);
    double *per64 = malloc(8 * N), *dx64 = calloc(n, 8);
    float *x32 = to32(x, n), *y32 = to32(y, n), *per32 = malloc(4 * N), *dx32 = calloc(n, 4);
    double m64 = lpips_forward_f64(&l64, x, y, per64);
    lpips_backward_f64(&l64, dx64, 1.0);
    double m32 = lpips_forward(&l32, x32, y32, per32);
    lpips_backward(&l32, dx32, 1.0);
    printf("    LPIPS-%s N=%d %dx%d: mean C f64 %.12f, C f32 %.8f, PyTorch %.12f\n", lpips_net_name(net), N, H, W, m64,
           m32, rmean);
    float m32f = (float)m32;
    int bad = 0;
    bad += compare("mean", NULL, &m64, &rmean, 1, 1e-10);
    bad += compare("mean", &m32f, NULL, &rmean, 1, 1e-4);
    bad += compare("per", NULL, per64, rper, N, 1e-10);
    bad += compare("per", per32, NULL, rper, N, 1e-4);
    bad += compare("grad.x", NULL, dx64, rgrad, n, 1e-10);
    bad += compare("grad.x", dx32, NULL, rgrad, n, 1e-4);
    atb_free(&ref);
    lpips_free(&l32);
    lpips_free_f64(&l64);
    lpips_weights_free(&w);
    free(x), free(y), free(rper), free(rgrad), free(per64), free(dx64), free(x32), free(y32), free(per32), free(dx32);
    CHECK(bad == 0, "%d tensors differ from the PyTorch reference", bad);
    return 0;
}

static int test_ref_vgg(void) { return ref_case(LPIPS_VGG, 2, 37, 30, 21); }
static int test_ref_alex(void) { return ref_case(LPIPS_ALEX, 3, 67, 75, 22); }

// The reference's own checks: gradcheck, LPIPS(x, x) = 0, floor-mode grids, its file reader.
static int test_ref_selftest(void) {
    CHECK(test_python_script_args("tools/reference/lpips_ref.py", "selftest") == 0, "lpips_ref.py selftest failed");
    return 0;
}

// ----------------------------------------------------------------------------------------------
// converter: fake .pth files -> convert_lpips.py -> C, against lpips_ref.py reading the .pth files

static int converter_case(int net, int N, int H, int W) {
    const char *nm = lpips_net_name(net), *T = test_tmpdir();
    char bb[1024], ln[1024], bin[1024], ip[1024], op[1024], args[8192], err[1024];
    snprintf(bb, sizeof bb, "%s/fake_%s_backbone.pth", T, nm);
    snprintf(ln, sizeof ln, "%s/fake_%s_lin.pth", T, nm);
    snprintf(bin, sizeof bin, "%s/converted_%s.bin", T, nm);
    snprintf(ip, sizeof ip, "%s/conv_images_%s.atb", T, nm);
    snprintf(op, sizeof op, "%s/conv_ref_%s.atb", T, nm);
    snprintf(args, sizeof args, "fake --net %s --backbone '%s' --lin '%s' --seed 7", nm, bb, ln);
    CHECK(test_python_script_args("tools/reference/lpips_ref.py", args) == 0, "lpips_ref.py fake failed");
    snprintf(args, sizeof args, "--net %s --backbone '%s' --lin '%s' --out '%s'", nm, bb, ln, bin);
    CHECK(test_python_script_args("tools/convert_lpips.py", args) == 0, "convert_lpips.py failed");
    size_t n = (size_t)N * H * W * 3;
    double *x = malloc(8 * n), *y = malloc(8 * n), *rper = malloc(8 * N), *rgrad = malloc(8 * n);
    double *per = malloc(8 * N), *dx = calloc(n, 8);
    rand_images(x, n, 31, 1);
    rand_images(y, n, 31, 2);
    write_images(ip, x, y, N, H, W);
    snprintf(args, sizeof args, "fromtorch --net %s --backbone '%s' --lin '%s' --images '%s' --out '%s'", nm, bb, ln,
             ip, op);
    CHECK(test_python_script_args("tools/reference/lpips_ref.py", args) == 0, "lpips_ref.py fromtorch failed");
    LpipsWeights w;
    CHECK(!lpips_weights_load(&w, bin, err, sizeof err), "%s", err);
    Atb ref;
    CHECK(!atb_read(op, &ref, err, sizeof err), "%s", err);
    CHECK(!atb_get_f64(&ref, "per", rper, N, err, sizeof err), "%s", err);
    CHECK(!atb_get_f64(&ref, "grad.x", rgrad, n, err, sizeof err), "%s", err);
    Lpips_f64 l;
    lpips_build_f64(&l, &w, N, H, W, 0);
    lpips_forward_f64(&l, x, y, per);
    lpips_backward_f64(&l, dx, 1.0);
    printf("    converted LPIPS-%s (%zu floats) N=%d %dx%d, C f64 against lpips_ref.py on the .pth files:\n", nm, w.n,
           N, H, W);
    int bad = compare("per", NULL, per, rper, N, 1e-10) + compare("grad.x", NULL, dx, rgrad, n, 1e-10);
    atb_free(&ref);
    lpips_free_f64(&l);
    lpips_weights_free(&w);
    free(x), free(y), free(rper), free(rgrad), free(per), free(dx);
    CHECK(bad == 0, "the converted LPIPS-%s weights do not reproduce the .pth files' LPIPS", nm);
    return 0;
}

static int test_converter(void) {
    if (converter_case(LPIPS_ALEX, 2, 40, 36)) return 1;
    return converter_case(LPIPS_VGG, 2, 24, 20);
}

// ----------------------------------------------------------------------------------------------
// weight file: round trip, refusals

static unsigned char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 16);
    *len = fread(b, 1, (size_t)n, f);
    fclose(f);
    return b;
}

static void spit(const char *path, const unsigned char *b, size_t len) {
    FILE *f = fopen(path, "wb");
    if (f) fwrite(b, 1, len, f), fclose(f);
}

// Re-stamps the CRC (header bytes 20..23) over everything after the 64-byte header.
static void restamp(unsigned char *b, size_t len) {
    uint32_t c = (uint32_t)crc32(crc32(0L, Z_NULL, 0), b + 64, (uInt)(len - 64));
    memcpy(b + 20, &c, 4);
}

// Loading `b` must fail with a message naming the file and containing `want`.
static int refused(const char *label, const unsigned char *b, size_t len, const char *want) {
    char p[1024], err[1024] = "";
    snprintf(p, sizeof p, "%s/bad_%s.bin", test_tmpdir(), label);
    spit(p, b, len);
    LpipsWeights w;
    int rc = lpips_weights_load(&w, p, err, sizeof err);
    printf("    %-14s -> %s\n", label, rc ? err : "(accepted)");
    CHECK(rc == -1, "%s: a bad file was accepted", label);
    CHECK(strstr(err, p) && strstr(err, want), "%s: message '%s' should name the file and say '%s'", label, err, want);
    CHECK(w.data == NULL, "%s: data left allocated", label);
    return 0;
}

static int test_weights_file(void) {
    char p[1024], err[1024];
    for (int net = LPIPS_VGG; net <= LPIPS_ALEX; net++) {
        LpipsWeights w, r;
        lpips_weights_random(&w, net, 5);
        snprintf(p, sizeof p, "%s/rt_%s.bin", test_tmpdir(), lpips_net_name(net));
        lpips_weights_save(&w, p);
        CHECK(!lpips_weights_load(&r, p, err, sizeof err), "%s", err);
        CHECK(r.net == net && r.n == w.n && r.n_conv == w.n_conv, "header fields differ after the round trip");
        CHECK(!memcmp(r.data, w.data, 4 * w.n), "weights differ after the round trip");
        for (int i = 0; i < w.n_conv; i++)
            CHECK(r.conv[i].w - r.data == w.conv[i].w - w.data && r.conv[i].OC == w.conv[i].OC, "conv %d layout", i);
        for (int k = 0; k < LPIPS_TAPS; k++) CHECK(r.lin[k] - r.data == w.lin[k] - w.data, "lin %d layout", k);
        printf("    LPIPS-%s: %zu floats, %d convs: save -> load bit-exact\n", lpips_net_name(net), w.n, w.n_conv);
        lpips_weights_free(&r);
        lpips_weights_free(&w);
    }
    // refusals, on the AlexNet file
    size_t len;
    unsigned char *b = slurp(p, &len), *c = malloc(len + 16);
    CHECK(b, "cannot read %s back", p);
    size_t table = 64, payload = 64 + 4 * (6 * 5 + 5);
    LpipsWeights none;
    CHECK(lpips_weights_load(&none, "/nonexistent/lpips.bin", err, sizeof err) == -1 && strstr(err, "/nonexistent"),
          "a missing file: %s", err);
    CHECK(lpips_weights_load(&none, test_tmpdir(), err, sizeof err) == -1 && strstr(err, "not a regular file"),
          "a directory: %s", err);
    int bad = 0;
    bad += refused("empty", b, 0, "too short");
    bad += refused("truncated", b, len - 4, "truncated");
    memcpy(c, b, len), c[len] = 0;
    bad += refused("trailing", c, len + 1, "trailing bytes");
    memcpy(c, b, len), memcpy(c, "AVT3CKPT", 8);
    bad += refused("foreign_magic", c, len, "bad magic");
    memcpy(c, b, len), c[8] = 2;
    bad += refused("version", c, len, "version 2");
    memcpy(c, b, len), c[12] = 7;
    bad += refused("net_id", c, len, "unknown net id 7");
    memcpy(c, b, len), c[40] = 1;
    bad += refused("reserved", c, len, "reserved header byte 40");
    memcpy(c, b, len), c[payload + 1000] ^= 0x10;
    bad += refused("flipped_byte", c, len, "CRC mismatch");
    memcpy(c, b, len), c[table + 4 * 3] = 5, restamp(c, len); // conv 0 kw 11 -> 5, CRC made consistent
    bad += refused("shape", c, len, "kw is 5, LPIPS-alex expects 11");
    memcpy(c, b, len);
    float nan = NAN, neg = -0.25f;
    memcpy(c + payload + 4 * 17, &nan, 4), restamp(c, len);
    bad += refused("nan_weight", c, len, "not finite");
    memcpy(c, b, len);
    memcpy(c + len - 4 * 256 + 4 * 3, &neg, 4), restamp(c, len); // lin4 weight 3 (lin4 is the last 256 floats)
    bad += refused("negative_lin", c, len, "lin4 weight 3 is negative");
    free(b), free(c);
    CHECK(bad == 0, "%d bad files were not refused properly", bad);
    return 0;
}

static int test_sizes(void) {
    char err[256];
    CHECK(lpips_min_size(LPIPS_VGG) == 16 && lpips_min_size(LPIPS_ALEX) == 31, "min sizes %d %d",
          lpips_min_size(LPIPS_VGG), lpips_min_size(LPIPS_ALEX));
    CHECK(lpips_check_size(LPIPS_VGG, 16, 16, err, sizeof err) == 0, "%s", err);
    CHECK(lpips_check_size(LPIPS_VGG, 16, 15, err, sizeof err) == -1 && strstr(err, "at least 16"), "%s", err);
    printf("    %s\n", err);
    CHECK(lpips_check_size(LPIPS_ALEX, 30, 64, err, sizeof err) == -1 && strstr(err, "at least 31"), "%s", err);
    printf("    %s\n", err);
    CHECK(lpips_net_from_name("vgg") == LPIPS_VGG && lpips_net_from_name("alex") == LPIPS_ALEX &&
              lpips_net_from_name("squeeze") == -1 && lpips_net_from_name(NULL) == -1,
          "lpips_net_from_name");
    // the smallest accepted size runs (every tap has a 1×1 grid at least)
    for (int net = LPIPS_VGG; net <= LPIPS_ALEX; net++) {
        int m = lpips_min_size(net);
        LpipsWeights w;
        lpips_weights_random(&w, net, 3);
        Lpips l;
        lpips_build(&l, &w, 1, m, m, 0);
        size_t n = (size_t)m * m * 3;
        double *xd = malloc(8 * n), *yd = malloc(8 * n);
        rand_images(xd, n, 3, 1), rand_images(yd, n, 3, 2);
        float *x = to32(xd, n), *y = to32(yd, n), *dx = calloc(n, 4);
        double L = lpips_forward(&l, x, y, NULL);
        lpips_backward(&l, dx, 1);
        int finite = isfinite(L) && L > 0;
        for (size_t i = 0; i < n; i++) finite &= isfinite(dx[i]);
        printf("    LPIPS-%s at %dx%d: %.6f\n", lpips_net_name(net), m, m, L);
        lpips_free(&l);
        lpips_weights_free(&w);
        free(xd), free(yd), free(x), free(y), free(dx);
        CHECK(finite, "LPIPS-%s at its minimum size is not finite and positive", lpips_net_name(net));
    }
    return 0;
}

// ----------------------------------------------------------------------------------------------
// invariants

// LPIPS(x, x) = 0 exactly (both halves of the batch run through identical computations), and the
// gradient there is 0: it is 2·w·(f̂x − f̂y)·… with f̂x = f̂y.
static int test_identical(void) {
    for (int net = LPIPS_VGG; net <= LPIPS_ALEX; net++) {
        int N = 2, H = net == LPIPS_VGG ? 20 : 35, W = net == LPIPS_VGG ? 18 : 40;
        size_t n = (size_t)N * H * W * 3;
        LpipsWeights w;
        lpips_weights_random(&w, net, 4);
        double *x = malloc(8 * n), *dx = calloc(n, 8), per[2];
        rand_images(x, n, 4, 1);
        float *x32 = to32(x, n), *dx32 = calloc(n, 4), per32[2];
        Lpips_f64 l64;
        Lpips l32;
        lpips_build_f64(&l64, &w, N, H, W, 0);
        lpips_build(&l32, &w, N, H, W, 0);
        double L64 = lpips_forward_f64(&l64, x, x, per), L32 = lpips_forward(&l32, x32, x32, per32);
        lpips_backward_f64(&l64, dx, 1);
        lpips_backward(&l32, dx32, 1);
        int zero = L64 == 0 && L32 == 0 && per[0] == 0 && per[1] == 0 && per32[0] == 0 && per32[1] == 0;
        int gzero = 1;
        for (size_t i = 0; i < n; i++) gzero &= dx[i] == 0 && dx32[i] == 0;
        printf("    LPIPS-%s(x, x): f64 %g, f32 %g; gradient all zero: %s\n", lpips_net_name(net), L64, L32,
               gzero ? "yes" : "no");
        lpips_free(&l32);
        lpips_free_f64(&l64);
        lpips_weights_free(&w);
        free(x), free(dx), free(x32), free(dx32);
        CHECK(zero && gzero, "LPIPS-%s(x, x) is not exactly 0 with a zero gradient", lpips_net_name(net));
    }
    return 0;
}

// Results do not depend on the thread count of our loops (OpenBLAS keeps its own threads).
static int test_threads(void) {
    int N = 2, H = 36, W = 33;
    size_t n = (size_t)N * H * W * 3;
    double *xd = malloc(8 * n), *yd = malloc(8 * n);
    rand_images(xd, n, 6, 1), rand_images(yd, n, 6, 2);
    float *x = to32(xd, n), *y = to32(yd, n);
    for (int net = LPIPS_VGG; net <= LPIPS_ALEX; net++) {
        LpipsWeights w;
        lpips_weights_random(&w, net, 6);
        float *dx[2], per[2][2];
        double L[2];
        for (int t = 0; t < 2; t++) {
            Lpips l;
            lpips_build(&l, &w, N, H, W, t + 1);
            dx[t] = calloc(n, 4);
            L[t] = lpips_forward(&l, x, y, per[t]);
            lpips_backward(&l, dx[t], 0.5);
            lpips_free(&l);
        }
        int same = L[0] == L[1] && !memcmp(per[0], per[1], sizeof per[0]) && !memcmp(dx[0], dx[1], 4 * n);
        printf("    LPIPS-%s, 1 vs 2 threads: %s\n", lpips_net_name(net), same ? "bit-identical" : "DIFFERENT");
        free(dx[0]), free(dx[1]);
        lpips_weights_free(&w);
        CHECK(same, "LPIPS-%s depends on the thread count", lpips_net_name(net));
    }
    free(xd), free(yd), free(x), free(y);
    return 0;
}

const TestCase lpips_tests[] = {
    {"lpips/weights_file", test_weights_file},
    {"lpips/sizes", test_sizes},
    {"lpips/identical_pair_is_zero", test_identical},
    {"lpips/threads_bit_identical", test_threads},
    {"lpips/fd_vgg_f64", test_fd_vgg},
    {"lpips/fd_alex_f64", test_fd_alex},
    {"lpips/reference_selftest", test_ref_selftest},
    {"lpips/reference_vgg", test_ref_vgg},
    {"lpips/reference_alex", test_ref_alex},
    {"lpips/converter", test_converter},
    {NULL, NULL},
};
