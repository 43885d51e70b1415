// test_landmarks.c — the C shape predictor (tools/landmarks.c) against dlib's C++ one on rendered synthetic
// heads, the AKD metric, the model reader's refusals, and AKD in `avat3r eval` (issue #6).
//
// The model is Debian's libdlib-data file (99 MB); the oracle is build/dlib_landmarks_ref (libdlib-dev). Each
// test loads the model once. Without the model or the oracle the tests print why and pass.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/timer.h"
#include "../common/util.h"
#include "landmarks.h"
#include "synth_head.h"
#include "test.h"

static const char *model_path(void) {
    const char *p = getenv("AVAT3R_DLIB_MODEL");
    return p ? p : LANDMARKS_DLIB_68;
}

// 1 when the model is readable; else prints the reason to skip.
static int have_model(void) {
    if (access(model_path(), R_OK) == 0) return 1;
    printf("    SKIP: no %s (Debian: apt-get install libdlib-data)\n", model_path());
    return 0;
}

static int load_model(LandmarkModel *m) {
    char err[1024];
    double t0 = time_now_s();
    if (landmarks_load(m, model_path(), err, sizeof err)) {
        printf("    %s\n", err);
        return -1;
    }
    printf("    model %s: %d parts, %d levels, %d trees, loaded in %.2f s\n", model_path(), m->n_parts, m->n_cascades,
           m->n_trees, time_now_s() - t0);
    return 0;
}

// One synthetic head (seed 1, `subject`, frame time t) seen by dome camera `cam` (of 16; 8 is about frontal, 14
// three-quarter, 5 near profile), cropped square around the head as `avat3r pack` does and rendered at W x W over
// its background plate. Also gives the camera as eval sees it: w2c in the head frame, K.
static void render_head(int subject, int cam, double t, int W, uint8_t *rgb, float *w2c_head, float *Kf) {
    enum { C = 16 };
    const unsigned long long seed = 1;
    SynthIdentity id;
    synth_identity(&id, seed, subject);
    AvwCamera cams[C + 1];
    synth_dome(cams, C + 1, seed, subject);
    SynthFrame fr;
    synth_frame(&fr, seed, subject, t, 0);
    double Rh[9], th[3], w2c[12], p[3];
    synth_head_pose(&fr, Rh, th);
    const AvwCamera *c = &cams[cam];
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 3; j++) w2c[4 * i + j] = c->R[3 * i + j];
        w2c[4 * i + 3] = c->t[i] / 1000;
    }
    for (int i = 0; i < 3; i++)
        p[i] = w2c[4 * i] * th[0] + w2c[4 * i + 1] * th[1] + w2c[4 * i + 2] * th[2] + w2c[4 * i + 3];
    const double u0 = c->K[0] * p[0] / p[2] + c->K[2], v0 = c->K[4] * p[1] / p[2] + c->K[5], side = SYNTH_NATIVE_W;
    const double x0 = fmin(fmax(u0 - side / 2, 0), SYNTH_NATIVE_W - side);
    const double y0 = fmin(fmax(v0 - side / 2, 0), SYNTH_NATIVE_H - side), s = W / side;
    double K[9] = {c->K[0] * s, 0, (c->K[2] - x0) * s, 0, c->K[4] * s, (c->K[5] - y0) * s, 0, 0, 1};
    SynthHead h;
    SynthRender R;
    memset(&h, 0, sizeof h);
    memset(&R, 0, sizeof R);
    synth_head_build(&h, &id, fr.expr);
    synth_render(&R, &h, Rh, th, 1, w2c, K, W, W);
    uint8_t *plate = (uint8_t *)mallocCheck((size_t)W * W * 3), *mask = (uint8_t *)mallocCheck((size_t)W * W);
    synth_plate(plate, W, W, seed, subject, cam);
    synth_compose(&R, 0, plate, rgb, mask);
    for (int i = 0; i < 3; i++) { // w2c · head pose: the camera in the head frame
        for (int j = 0; j < 3; j++) {
            double a = 0;
            for (int k = 0; k < 3; k++) a += w2c[4 * i + k] * Rh[3 * k + j];
            w2c_head[4 * i + j] = (float)a;
        }
        w2c_head[4 * i + 3] =
            (float)(w2c[4 * i] * th[0] + w2c[4 * i + 1] * th[1] + w2c[4 * i + 2] * th[2] + w2c[4 * i + 3]);
    }
    for (int i = 0; i < 9; i++) Kf[i] = (float)K[i];
    free(plate), free(mask);
    synth_head_free(&h);
    synth_render_free(&R);
}

static void write_pnm(const char *path, const uint8_t *px, int W, int H, int channels) {
    FILE *f = fopenCheck(path, "wb");
    fprintf(f, "%s\n%d %d\n255\n", channels == 1 ? "P5" : "P6", W, H);
    fwriteCheck(px, 1, (size_t)W * H * channels, f);
    fcloseCheck(f);
}

// ---------------------------------------------------------------------------------------------------------
// C against dlib: every point of every job, rounded as dlib rounds, must be dlib's point, and the unrounded
// points must match dlib's own cascade before its rounding (dlib's pseudo-inverse box transform is off by
// ~1e-15 relative, so they differ at ~1e-13 px; the bound is 1e-3 px).

#define MAX_JOBS 32
typedef struct {
    char path[1100];
    int W, H, channels;
    LandmarkBox box;
    double pts[2 * 68];
} Job;

static int test_vs_dlib(void) {
    if (!have_model()) return 0;
    if (access(AVAT3R_DLIB_REF, X_OK) != 0) {
        printf("    SKIP: no dlib oracle %s (install libdlib-dev and reconfigure: meson builds it when dlib-1 is "
               "found)\n",
               AVAT3R_DLIB_REF);
        return 0;
    }
    LandmarkModel m;
    CHECK(load_model(&m) == 0, "model load");
    CHECK(m.n_parts == 68, "%d parts", m.n_parts);
    static Job jobs[MAX_JOBS];
    int nj = 0;
    // (size, subject, camera, frame time): frontal, three-quarter and near-profile views at 64² (the training
    // size) and 256²
    static const int views[][4] = {{64, 0, 8, 0},  {64, 1, 14, 5}, {64, 2, 5, 9},  {64, 3, 10, 2},
                                   {256, 0, 8, 3}, {256, 1, 14, 0}, {256, 2, 5, 6}, {256, 3, 1, 4}};
    const int nv = (int)(sizeof views / sizeof views[0]);
    double t_pred = 0;
    int n_pred = 0;
    for (int i = 0; i < nv; i++) {
        const int W = views[i][0];
        uint8_t *rgb = (uint8_t *)mallocCheck((size_t)W * W * 3), *gray = (uint8_t *)mallocCheck((size_t)W * W);
        float w2c[12], K[9];
        render_head(views[i][1], views[i][2], views[i][3], W, rgb, w2c, K);
        LandmarkBox b;
        CHECK(landmarks_face_box(w2c, K, W, W, &b) == 0, "view %d: no face box", i);
        char ppm[1100], pgm[1100];
        snprintf(ppm, sizeof ppm, "%s/lm_%d.ppm", test_tmpdir(), i);
        snprintf(pgm, sizeof pgm, "%s/lm_%d.pgm", test_tmpdir(), i);
        write_pnm(ppm, rgb, W, W, 3);
        for (int p = 0; p < W * W; p++) gray[p] = (uint8_t)((rgb[3 * p] + rgb[3 * p + 1] + rgb[3 * p + 2]) / 3);
        write_pnm(pgm, gray, W, W, 1);
        const long bw = b.right - b.left;
        // the projected box; the same box half outside on the left/top; beyond the right/bottom; wider than the
        // image; and the gray image with the projected box
        LandmarkBox boxes[5] = {b,
                                {-bw / 2, -bw / 3, -bw / 2 + bw, -bw / 3 + bw},
                                {W - bw / 2, W - 2 * bw / 3, W - bw / 2 + bw, W - 2 * bw / 3 + bw},
                                {-W / 4, -W / 5, W + W / 4, -W / 5 + W + W / 2},
                                b};
        for (int k = 0; k < 5 && nj < MAX_JOBS; k++) {
            if (k > 0 && k < 4 && i % 2) continue; // the outside boxes on half the views
            Job *j = &jobs[nj++];
            snprintf(j->path, sizeof j->path, "%s", k == 4 ? pgm : ppm);
            j->W = W, j->H = W, j->channels = k == 4 ? 1 : 3, j->box = boxes[k];
            double t0 = time_now_s();
            landmarks_predict(&m, k == 4 ? gray : rgb, W, W, W * j->channels, j->channels, j->box, j->pts);
            t_pred += time_now_s() - t0, n_pred++;
        }
        free(rgb), free(gray);
    }
    char jobs_path[1100], out_path[1100], cmd[8192];
    snprintf(jobs_path, sizeof jobs_path, "%s/lm_jobs.txt", test_tmpdir());
    snprintf(out_path, sizeof out_path, "%s/lm_dlib.txt", test_tmpdir());
    FILE *f = fopenCheck(jobs_path, "w");
    for (int k = 0; k < nj; k++)
        fprintf(f, "%s %ld %ld %ld %ld\n", jobs[k].path, jobs[k].box.left, jobs[k].box.top, jobs[k].box.right,
                jobs[k].box.bottom);
    fcloseCheck(f);
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s' > '%s' 2> '%s.err'; rc=$?; sed 's/^/    /' '%s.err'; exit $rc",
             AVAT3R_DLIB_REF, model_path(), jobs_path, out_path, out_path, out_path);
    CHECK(test_system(cmd) == 0, "the dlib oracle failed");
    f = fopenCheck(out_path, "r");
    int job = -1, pt = 0, n_pts = 0, n_round = 0;
    double max_d = 0;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        int k;
        long xi, yi;
        double x, y;
        if (sscanf(line, "job %d", &k) == 1) {
            CHECK(k == job + 1 && k < nj && (job < 0 || pt == 68), "oracle output out of order at job %d", k);
            job = k, pt = 0;
            continue;
        }
        CHECK(job >= 0 && pt < 68 && sscanf(line, "%ld %ld %lf %lf", &xi, &yi, &x, &y) == 4, "bad oracle line: %s",
              line);
        const double *c = jobs[job].pts + 2 * pt;
        long cx = (long)floor(c[0] + 0.5), cy = (long)floor(c[1] + 0.5);
        if (cx != xi || cy != yi) {
            if (n_round < 5)
                printf("    job %d (%s, box %ld %ld %ld %ld) point %d: C (%ld, %ld), dlib (%ld, %ld)\n", job,
                       jobs[job].path, jobs[job].box.left, jobs[job].box.top, jobs[job].box.right,
                       jobs[job].box.bottom, pt, cx, cy, xi, yi);
            n_round++;
        }
        max_d = fmax(max_d, fmax(fabs(c[0] - x), fabs(c[1] - y)));
        pt++, n_pts++;
    }
    fclose(f);
    CHECK(job == nj - 1 && pt == 68, "the oracle answered %d of %d jobs", job + 1, nj);
    printf("    %d jobs (64² and 256², RGB and gray, boxes partly outside): %d points, %d differ from dlib's after "
           "rounding; unrounded max |C - dlib| = %.3g px; C %.2f ms per prediction\n",
           nj, n_pts, n_round, max_d, 1e3 * t_pred / n_pred);
    CHECK(n_round == 0, "%d points differ from dlib's", n_round);
    CHECK(max_d < 1e-3, "unrounded points differ by %.3g px", max_d);
    landmarks_free(&m);
    return 0;
}

// ---------------------------------------------------------------------------------------------------------
// AKD: 0 on an image with itself; a translated copy with the translated box moves every landmark by exactly
// the translation (the cascade is translation-equivariant when off-image pixels read 0 in both); with the
// same box, as AKD uses, the detector follows most of a small shift.

static int test_akd(void) {
    if (!have_model()) return 0;
    LandmarkModel m;
    CHECK(load_model(&m) == 0, "model load");
    const int W = 256, dx = 3, dy = 4, W2 = W + dx, H2 = W + dy;
    uint8_t *rgb = (uint8_t *)mallocCheck((size_t)W * W * 3), *big = (uint8_t *)callocCheck((size_t)W2 * H2 * 3, 1);
    uint8_t *sh = (uint8_t *)mallocCheck((size_t)W * W * 3);
    float w2c[12], K[9];
    render_head(0, 8, 0, W, rgb, w2c, K);
    LandmarkBox b;
    CHECK(landmarks_face_box(w2c, K, W, W, &b) == 0, "no face box");
    double a0 = landmarks_akd(&m, rgb, rgb, W, W, b);
    CHECK(a0 == 0, "AKD of an image with itself: %g", a0);
    // translated into a larger zero canvas
    for (int y = 0; y < W; y++) memcpy(big + ((size_t)(y + dy) * W2 + dx) * 3, rgb + (size_t)y * W * 3, (size_t)W * 3);
    double p0[2 * 68], p1[2 * 68];
    landmarks_predict(&m, rgb, W, W, 3 * W, 3, b, p0);
    LandmarkBox b1 = {b.left + dx, b.top + dy, b.right + dx, b.bottom + dy};
    landmarks_predict(&m, big, W2, H2, 3 * W2, 3, b1, p1);
    double worst = 0;
    for (int k = 0; k < 68; k++)
        worst = fmax(worst, fmax(fabs(p1[2 * k] - p0[2 * k] - dx), fabs(p1[2 * k + 1] - p0[2 * k + 1] - dy)));
    CHECK(worst < 1e-9, "translated image and box: landmarks off the translation by %g px", worst);
    CHECK(fabs(landmarks_mean_distance(p0, p1, 68) - hypot(dx, dy)) < 1e-9, "mean distance is not the shift");
    // the same frame, content shifted (edges replicated), the same box: AKD is the metric as eval computes it
    for (int y = 0; y < W; y++)
        for (int x = 0; x < W; x++) {
            int sx = x - dx < 0 ? 0 : x - dx, sy = y - dy < 0 ? 0 : y - dy;
            memcpy(sh + ((size_t)y * W + x) * 3, rgb + ((size_t)sy * W + sx) * 3, 3);
        }
    double a1 = landmarks_akd(&m, sh, rgb, W, W, b);
    printf("    AKD(image, image) = 0; translated with its box: exactly %.2f px; shifted by (%d, %d) = %.2f px in the "
           "same box: AKD %.2f px\n",
           hypot(dx, dy), dx, dy, hypot(dx, dy), a1);
    CHECK(a1 > 0.5 * hypot(dx, dy) && a1 < 1.5 * hypot(dx, dy), "AKD of a %.2f px shift is %.2f px", hypot(dx, dy), a1);
    free(rgb), free(big), free(sh);
    landmarks_free(&m);
    return 0;
}

// ---------------------------------------------------------------------------------------------------------
// The face box rule on a hand-made camera: 1 m in front of the face, looking back at it (head frame +y up, +z
// forward; camera y down, z forward), f = 100 px, 64²: the centre (0, -0.03, 0.05) m lies at depth 0.95 m.

static int test_face_box(void) {
    const float K[9] = {100, 0, 32, 0, 100, 32, 0, 0, 1};
    float w2c[12] = {1, 0, 0, 0, 0, -1, 0, 0, 0, 0, -1, 1};
    LandmarkBox b;
    CHECK(landmarks_face_box(w2c, K, 64, 64, &b) == 0, "no box");
    // u = 32 - 0.5, v = 100 · 0.03 / 0.95 + 31.5 = 34.66, half = 7.5 / 0.95 = 7.89 px, side round(15.79) = 16
    CHECK(b.left == 24 && b.top == 27 && b.right == 40 && b.bottom == 43, "box %ld %ld %ld %ld", b.left, b.top, b.right,
          b.bottom);
    w2c[3] = 0.4f; // the face centre 42 px to the right: outside the image
    CHECK(landmarks_face_box(w2c, K, 64, 64, &b) == -1, "a face centre outside the image gave a box");
    w2c[3] = 0.28f; // 29.5 px to the right: inside, the box partly outside is kept
    CHECK(landmarks_face_box(w2c, K, 64, 64, &b) == 0 && b.right > 63, "a box partly outside the image");
    w2c[3] = 0, w2c[11] = -1; // behind the camera
    CHECK(landmarks_face_box(w2c, K, 64, 64, &b) == -1, "a face behind the camera gave a box");
    return 0;
}

// ---------------------------------------------------------------------------------------------------------
// The reader refuses truncated, foreign and inconsistent files with the file and the field named.

static int expect_refusal(const char *path, const char *field, const char *what) {
    LandmarkModel m;
    char err[1024] = "";
    int rc = landmarks_load(&m, path, err, sizeof err);
    printf("    %s: %s\n", what, err);
    CHECK(rc == -1, "%s: accepted", what);
    CHECK(strstr(err, path) && strstr(err, field), "%s: the message does not name %s and '%s'", what, path, field);
    return 0;
}

static int write_prefix(const char *src, const char *dst, int64_t n) {
    FILE *in = fopen(src, "rb");
    if (!in) return -1;
    FILE *out = fopenCheck(dst, "wb");
    static uint8_t buf[1 << 20];
    while (n > 0) {
        size_t k = fread(buf, 1, n < (int64_t)sizeof buf ? (size_t)n : sizeof buf, in);
        if (!k) break;
        fwriteCheck(buf, 1, k, out);
        n -= (int64_t)k;
    }
    fclose(in);
    fcloseCheck(out);
    return 0;
}

static int test_reader_errors(void) {
    char p[1100];
    snprintf(p, sizeof p, "%s/lm_bad.dat", test_tmpdir());
    // foreign: a config file, an empty file, a PNG signature
    char cfg[1100];
    snprintf(cfg, sizeof cfg, "%s/configs/tiny.cfg", test_source_root());
    if (expect_refusal(cfg, "version", "a config file")) return 1;
    FILE *f = fopenCheck(p, "wb");
    fcloseCheck(f);
    if (expect_refusal(p, "version", "an empty file")) return 1;
    f = fopenCheck(p, "wb");
    fwriteCheck("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 1, 16, f);
    fcloseCheck(f);
    if (expect_refusal(p, "version", "a PNG")) return 1;
    // a forged header: version 1, a 68-point mean shape, then 2^40 cascade levels in a 600-byte file
    f = fopenCheck(p, "wb");
    fwriteCheck("\x01\x01" "\x81\x88" "\x81\x01", 1, 6, f); // int 1; long -136, long -1 (dlib's newer matrix header)
    for (int i = 0; i < 136; i++) fwriteCheck("\x01\x01\x81\x01", 1, 4, f); // 1 · 2^-1
    fwriteCheck("\x06\0\0\0\0\0\x01", 1, 7, f);
    fcloseCheck(f);
    if (expect_refusal(p, "forests", "a forged count")) return 1;
    // the same with a 3-column mean shape
    f = fopenCheck(p, "wb");
    fwriteCheck("\x01\x01" "\x81\x88" "\x81\x03", 1, 6, f);
    fcloseCheck(f);
    if (expect_refusal(p, "initial_shape", "a matrix instead of a column")) return 1;
    if (!have_model()) return 0;
    // truncated copies of the real model: in the header, in the first tree, in the last level's offsets
    f = fopenCheck(model_path(), "rb");
    int64_t size = file_size(f);
    fclose(f);
    struct {
        int64_t n;
        const char *field;
    } cuts[] = {{3, "initial_shape"}, {100000, "forests[0]"}, {size - 5, "deltas[14]"}};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        CHECK(write_prefix(model_path(), p, cuts[i].n) == 0, "copy");
        char what[64];
        snprintf(what, sizeof what, "the first %lld bytes", (long long)cuts[i].n);
        if (expect_refusal(p, cuts[i].field, what)) return 1;
        LandmarkModel m;
        char err[1024];
        landmarks_load(&m, p, err, sizeof err);
        CHECK(strstr(err, "truncated"), "%s: not reported as truncated", what);
    }
    remove(p);
    return 0;
}

// ---------------------------------------------------------------------------------------------------------
// `avat3r eval` with AKD: per image (with the face box), per subject, the mean, the skip counts; --no-akd.

static int test_eval_akd(void) {
    if (!have_model()) return 0;
    char d[1100], cmd[8192];
    snprintf(d, sizeof d, "%s/lm_eval", test_tmpdir());
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s' && cd '%s' && '%s' synth --out caps --subjects 2 --cameras 8 --frames 4 --size 96x144 "
             "--sapiens-size 8x8 --no-drop --threads 1 > log.txt 2>&1 && '%s' pack --ava256 caps --out shards --size 64 "
             "--sapiens-size 8x8 --quiet --threads 1 >> log.txt 2>&1 && '%s' init --config '%s/configs/tiny.cfg' "
             "--seed 0 --out m.ckpt --set patch=8 --set width=32 --set heads=2 --set layers=1 --set expr_hidden=32 "
             "--set expr_tokens=2 --set sapiens_h=8 --set sapiens_w=8 --set views_target=2 >> log.txt 2>&1",
             d, d, AVAT3R_BINARY, AVAT3R_BINARY, AVAT3R_BINARY, test_source_root());
    CHECK(test_system(cmd) == 0, "fixture failed (%s/log.txt)", d);
    snprintf(cmd, sizeof cmd,
             "cd '%s' && '%s' eval --checkpoint m.ckpt --data shards --subjects all --samples 2 --akd '%s' --out ev "
             "> ev.log 2>&1 && sed 's/^/    /' ev.log",
             d, AVAT3R_BINARY, model_path());
    CHECK(test_system(cmd) == 0, "eval failed (%s/ev.log)", d);
    // 2 subjects x 2 samples x 2 targets; every image has a box here (the head is in the middle of the crop)
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"import json,sys; m=json.load(open('%s/ev/metrics.json')); im=m['images']; "
             "a=[i['akd'] for i in im if i['akd'] is not None]; "
             "assert len(im)==8 and len(a)==m['akd']['images_scored']==8, (len(im), len(a)); "
             "assert all(v>0 and len(i['face_box'])==4 for v,i in zip(a,im)), a; "
             "assert abs(sum(a)/len(a)-m['mean']['akd'])<1e-9; "
             "assert all(s['akd_images']==4 and s['akd_skipped']==0 and s['akd']>0 for s in m['subjects']); "
             "assert m['akd']['skipped_box_outside']==0 and m['akd']['skipped_model_missing']==0; "
             "print('    per-image AKD', ' '.join('%%.2f' %% v for v in a))\" && grep -q 'AKD: dlib' '%s/ev/metrics.md' && "
             "! grep -q '| – |$' '%s/ev/metrics.md'",
             d, d, d);
    CHECK(test_system(cmd) == 0, "metrics.json / metrics.md without the AKD values");
    snprintf(cmd, sizeof cmd,
             "cd '%s' && '%s' eval --checkpoint m.ckpt --data shards --subjects all --samples 1 --no-akd --out ev2 "
             "> ev2.log 2>&1 && /usr/bin/python3 -c \"import json; m=json.load(open('ev2/metrics.json')); "
             "assert m['mean']['akd'] is None and m['akd']['skipped_turned_off']==4 and "
             "all(i['akd'] is None for i in m['images'])\"",
             d, AVAT3R_BINARY);
    CHECK(test_system(cmd) == 0, "--no-akd");
    snprintf(cmd, sizeof cmd,
             "cd '%s' && ! '%s' eval --checkpoint m.ckpt --data shards --subjects all --samples 1 --akd m.ckpt --out "
             "ev3 > ev3.log 2>&1 && grep -q 'm.ckpt: version' ev3.log",
             d, AVAT3R_BINARY);
    CHECK(test_system(cmd) == 0, "--akd with a foreign file: no clear error (%s/ev3.log)", d);
    return 0;
}

const TestCase landmarks_tests[] = {
    {"landmarks_vs_dlib", test_vs_dlib},
    {"landmarks_akd", test_akd},
    {"landmarks_face_box", test_face_box},
    {"landmarks_reader_errors", test_reader_errors},
    {"landmarks_eval_akd", test_eval_akd},
    {NULL, NULL},
};
