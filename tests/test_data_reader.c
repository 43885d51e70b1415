// test_data_reader.c — the ava256 reader (data/ava256.h) on the synthetic fixture of
// shared/reference/ava256_format.md §10 (tools/reference/make_ava256_fixture.py, generated once per
// test run into test_tmpdir()), its 8 assertions, and rejection of broken files: every message must
// name the file (and the field or member).
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <png.h>
#include <setjmp.h>
#include <zip.h>

#include "ava256.h"
#include "test.h"

#define NS 2 // subjects
#define NC 8 // cameras with images
#define NF 10
#define IW 42
#define IH 64

static const char *SUBJ[NS] = {"20240101--0900--TST001", "20240102--1030--TST002"};

// ----------------------------------------------------------------------------------------------
// helpers

static const char *python(void) { return getenv("AVAT3R_PYTHON") ? getenv("AVAT3R_PYTHON") : "/usr/bin/python3"; }

static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

// The fixture, generated on first use (tests run one after another, so later tests find it).
static const char *fixture(void) {
    static char dir[1024];
    snprintf(dir, sizeof dir, "%s/ava256_fixture", test_tmpdir());
    char done[1100], cmd[4096];
    snprintf(done, sizeof done, "%s/expected.json", dir);
    if (exists(done)) return dir;
    snprintf(cmd, sizeof cmd,
             "'%s' '%s/tools/reference/make_ava256_fixture.py' '%s' > /dev/null && "
             "'%s' '%s/tools/ava256_expr_codes.py' '%s/ava256_tiny/%s' '%s/ava256_tiny/%s' > /dev/null",
             python(), test_source_root(), dir, python(), test_source_root(), dir, SUBJ[0], dir, SUBJ[1]);
    if (test_system(cmd) != 0) {
        fprintf(stderr, "    fixture generation failed (needs python3-numpy and avifenc; set AVAT3R_PYTHON)\n");
        return NULL;
    }
    return dir;
}

static void subject_path(char *buf, size_t n, int s) { snprintf(buf, n, "%s/ava256_tiny/%s", fixture(), SUBJ[s]); }

// A private copy of subject s's capture folder to break: returns its path in buf.
static int copy_subject(int s, const char *name, char *buf, size_t n) {
    char src[1200], cmd[4096];
    subject_path(src, sizeof src, s);
    snprintf(buf, n, "%s/%s", test_tmpdir(), name);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", buf, src, buf);
    return test_system(cmd);
}

static cJSON *expected_json(void) {
    char p[1200];
    snprintf(p, sizeof p, "%s/expected.json", fixture());
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    static char text[1 << 20];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    return cJSON_Parse(text);
}

static uint8_t *read_raw(const char *sid, const char *ext, size_t size) {
    char p[1200];
    snprintf(p, sizeof p, "%s/expected/%s.%s", fixture(), sid, ext);
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    uint8_t *b = malloc(size);
    size_t got = fread(b, 1, size, f);
    fclose(f);
    if (got != size) {
        free(b);
        return NULL;
    }
    return b;
}

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

static int has(const char *msg, const char *what) { return strstr(msg, what) != NULL; }

static int json_int(const cJSON *o, const char *k) { return cJSON_GetObjectItem(o, k)->valueint; }

// ----------------------------------------------------------------------------------------------
// §10 assertions 1, 8: sample count, camera set, folder forms

static int test_sample_count(void) {
    CHECK(fixture(), "no fixture");
    char root[1200], err[1024];
    snprintf(root, sizeof root, "%s/ava256_tiny", fixture());
    char **dirs;
    int n;
    CHECK(ava256_list_captures(root, &dirs, &n, err, sizeof err) == AVA256_OK, "%s", err);
    CHECK(n == NS, "256_ids.csv lists %d captures", n);
    int64_t total = 0;
    for (int s = 0; s < NS; s++) {
        CHECK(strstr(dirs[s], SUBJ[s]), "capture %d is %s", s, dirs[s]);
        Ava256Capture cap;
        CHECK(ava256_open(&cap, dirs[s], AVA256_REQUIRE_EXPR, err, sizeof err) == AVA256_OK, "%s", err);
        CHECK(cap.n_cams == NC && cap.n_frames == NF, "%d cams, %d frames", cap.n_cams, cap.n_frames);
        CHECK(cap.n_missing_images == (s == 1), "subject %d: %lld missing", s, (long long)cap.n_missing_images);
        CHECK(cap.n_missing_head_pose == 0 && cap.n_missing_expr == 0, "poses/codes missing");
        CHECK(cap.has_masks && cap.has_background, "optional assets not found");
        CHECK(strcmp(cap.cams[0].calib.id, "400101") == 0 && strcmp(cap.cams[7].calib.id, "400108") == 0,
              "camera order %s..%s", cap.cams[0].calib.id, cap.cams[7].calib.id);
        CHECK(cap.n_seqs == 2 && strcmp(cap.seq_names[0], "EXP_neutral_peak") == 0 && cap.frames[4].seq == 1,
              "sequences");
        CHECK(cap.frames[3].id == 20009 && ava256_find_frame(&cap, 20027) == 9 && ava256_find_frame(&cap, 20001) == -1,
              "frame ids");
        total += cap.n_images;
        ava256_close(&cap);
    }
    ava256_free_list(dirs, n);
    CHECK(total == NS * NF * NC - 1, "sample count %lld, expected %d", (long long)total, NS * NF * NC - 1);
    // the decoder/ folder itself opens the same capture
    char dec[1300];
    subject_path(dec, sizeof dec, 0);
    strcat(dec, "/decoder/");
    Ava256Capture cap;
    CHECK(ava256_open(&cap, dec, 0, err, sizeof err) == AVA256_OK, "%s", err);
    CHECK(cap.n_images == NF * NC && has(cap.dir, "TST001/decoder"), "decoder dir: %s", cap.dir);
    ava256_close(&cap);
    // not a capture
    CHECK(ava256_open(&cap, "/nonexistent/capture", 0, err, sizeof err) == AVA256_ERROR &&
              has(err, "/nonexistent/capture: not a folder"),
          "%s", err);
    CHECK(ava256_open(&cap, root, 0, err, sizeof err) == AVA256_ERROR && has(err, "frame_list.csv: not found"), "%s",
          err);
    return 0;
}

static int test_extra_camera_excluded(void) {
    CHECK(fixture(), "no fixture");
    char p[1200], err[1024];
    subject_path(p, sizeof p, 0);
    Ava256Capture cap;
    CHECK(ava256_open(&cap, p, 0, err, sizeof err) == AVA256_OK, "%s", err);
    CHECK(cap.n_excluded == 1 && strcmp(cap.excluded[0].id, "400109") == 0, "excluded %d", cap.n_excluded);
    CHECK(has(cap.excluded[0].reason, "image/cam400109.zip"), "reason: %s", cap.excluded[0].reason);
    CHECK(ava256_find_camera(&cap, "400109") == -1 && ava256_find_camera(&cap, "400104") == 3, "find_camera");
    ava256_close(&cap);
    // An empty zip for a calibration camera excludes it too.
    char dir[1200], z[1400];
    CHECK(copy_subject(0, "case_empty_zip", dir, sizeof dir) == 0, "copy");
    snprintf(z, sizeof z, "%s/decoder/image/cam400102.zip", dir);
    CHECK(write_text(z, "") == 0, "write");
    CHECK(ava256_open(&cap, dir, 0, err, sizeof err) == AVA256_OK, "%s", err);
    CHECK(cap.n_cams == NC - 1 && cap.n_excluded == 2 && strcmp(cap.excluded[0].id, "400102") == 0,
          "%d cams, %d excluded", cap.n_cams, cap.n_excluded);
    printf("    excluded %s: %s\n", cap.excluded[0].id, cap.excluded[0].reason);
    ava256_close(&cap);
    // ... and so does a valid zip without images of listed frames (here: only an end-of-directory record)
    CHECK(write_text(z, "PK\x05\x06") == 0, "write");
    FILE *f = fopen(z, "ab");
    CHECK(f, "open");
    for (int i = 0; i < 18; i++) fputc(0, f);
    fclose(f);
    CHECK(ava256_open(&cap, dir, 0, err, sizeof err) == AVA256_OK, "%s", err);
    CHECK(cap.n_cams == NC - 1 && strcmp(cap.excluded[0].id, "400102") == 0 && has(cap.excluded[0].reason, "no image"),
          "%d cams, reason %s", cap.n_cams, cap.excluded[0].reason);
    printf("    excluded %s: %s\n", cap.excluded[0].id, cap.excluded[0].reason);
    ava256_close(&cap);
    return 0;
}

// ----------------------------------------------------------------------------------------------
// §10 assertions 2, 3, 4: decoded size, scaled K, head centre projects onto the disc centroid

static int test_decoded_size(void) {
    CHECK(fixture(), "no fixture");
    char p[1200], err[1024];
    subject_path(p, sizeof p, 0);
    Ava256Capture cap;
    CHECK(ava256_open(&cap, p, 0, err, sizeof err) == AVA256_OK, "%s", err);
    Ava256Image im = {0}, mk = {0}, bg = {0};
    for (int c = 0; c < cap.n_cams; c++)
        for (int f = 0; f < cap.n_frames; f++) {
            CHECK(ava256_read_image(&cap, c, f, &im, err, sizeof err) == AVA256_OK, "%s", err);
            CHECK(im.w == IW && im.h == IH && im.c == 3, "cam %d frame %d: %dx%dx%d", c, f, im.w, im.h, im.c);
            CHECK(ava256_read_mask(&cap, c, f, &mk, err, sizeof err) == AVA256_OK, "%s", err);
            CHECK(mk.w == IW && mk.h == IH && mk.c == 1, "mask %dx%dx%d", mk.w, mk.h, mk.c);
        }
    CHECK(ava256_read_background(&cap, 2, &bg, err, sizeof err) == AVA256_OK, "%s", err);
    CHECK(bg.w == IW && bg.h == IH && bg.c == 3, "plate %dx%d", bg.w, bg.h);
    CHECK(cap.img_w == IW && cap.img_h == IH, "capture image size");
    ava256_image_free(&im), ava256_image_free(&mk), ava256_image_free(&bg);
    ava256_close(&cap);
    return 0;
}

static int test_scaled_K(void) {
    CHECK(fixture(), "no fixture");
    char p[1200], err[1024];
    subject_path(p, sizeof p, 1);
    Ava256Capture cap;
    CHECK(ava256_open(&cap, p, 0, err, sizeof err) == AVA256_OK, "%s", err);
    const double Kn[9] = {8000, 0, 1334, 0, 8000, 2048, 0, 0, 1}; // the JSON stores its transpose
    for (int c = 0; c < cap.n_cams; c++) {
        const Ava256Calib *k = &cap.cams[c].calib;
        for (int i = 0; i < 9; i++) CHECK(k->K[i] == Kn[i], "cam %s K[%d] = %g, expected %g", k->id, i, k->K[i], Kn[i]);
        double Ks[9];
        ava256_scale_K(k->K, IW, IH, Ks);
        const double sx = 42.0 / 2668.0, sy = 64.0 / 4096.0;
        const double want[9] = {8000 * sx, 0, 1334 * sx, 0, 8000 * sy, 2048 * sy, 0, 0, 1};
        for (int i = 0; i < 9; i++)
            CHECK(fabs(Ks[i] - want[i]) < 1e-12, "scaled K[%d] = %.15g, expected %.15g", i, Ks[i], want[i]);
        CHECK(fabs(Ks[2] - 21.0) < 1e-12 && fabs(Ks[5] - 32.0) < 1e-12, "principal point at the image centre");
        // extrinsics in metres: the camera sits 1.1 m from the head centre (0, 0, 1) m and looks at it
        double C[3];
        ava256_camera_centre(k->w2c, C);
        double d = sqrt(C[0] * C[0] + C[1] * C[1] + (C[2] - 1) * (C[2] - 1));
        CHECK(fabs(d - 1.1) < 1e-9, "cam %s: %.12f m from the head centre", k->id, d);
        double z = k->w2c[8] * 0 + k->w2c[9] * 0 + k->w2c[10] * 1 + k->w2c[11]; // depth of (0,0,1)
        CHECK(fabs(z - 1.1) < 1e-9, "cam %s: head centre at depth %.12f", k->id, z);
        CHECK(k->distortion[0] == -0.07 && k->distortion[3] == 0.003, "distortion kept as stored");
    }
    ava256_close(&cap);
    return 0;
}

// Coverage-weighted disc centroid of an image over its background plate (corner block excluded).
static void disc_centroid(const Ava256Image *im, const Ava256Image *bg, const int disc[3], double *u, double *v) {
    double sw = 0, su = 0, sv = 0;
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++) {
            if (x < 2 && y < 2) continue;
            const uint8_t *p = im->px + 3 * (y * im->w + x), *b = bg->px + 3 * (y * im->w + x);
            int ch = 0;
            for (int k = 1; k < 3; k++)
                if (abs(disc[k] - b[k]) > abs(disc[ch] - b[ch])) ch = k;
            double w = (double)(p[ch] - b[ch]) / (disc[ch] - b[ch]);
            w = w < 0.03 ? 0 : w > 1 ? 1 : w; // the lossy file's ringing around the background
            sw += w, su += w * (x + 0.5), sv += w * (y + 0.5);
        }
    *u = su / sw;
    *v = sv / sw;
}

static int test_head_centre_projection(void) {
    CHECK(fixture(), "no fixture");
    cJSON *ex = expected_json();
    CHECK(ex, "expected.json");
    char p[1200], err[1024];
    Ava256Image im = {0}, bg = {0};
    double worst = 0;
    for (int s = 0; s < NS; s++) {
        const cJSON *sj = cJSON_GetArrayItem(cJSON_GetObjectItem(ex, "subjects"), s);
        subject_path(p, sizeof p, s);
        Ava256Capture cap;
        CHECK(ava256_open(&cap, p, 0, err, sizeof err) == AVA256_OK, "%s", err);
        for (int f = 0; f < cap.n_frames; f++) { // head pose in metres: t = (5k, 0, 1000) mm
            const Ava256Frame *fr = &cap.frames[f];
            CHECK(fr->has_head_pose && fabs(fr->head[3] - 0.005 * f) < 1e-12 && fabs(fr->head[11] - 1.0) < 1e-12,
                  "frame %d head t = (%g, %g, %g)", f, fr->head[3], fr->head[7], fr->head[11]);
            CHECK(fabs(fr->head[0] - cos(2.0 * f * M_PI / 180)) < 1e-8, "frame %d yaw", f);
        }
        for (int c = 0; c < cap.n_cams; c++) {
            const cJSON *dc = cJSON_GetArrayItem(cJSON_GetObjectItem(sj, "disc_colour"), c);
            int disc[3] = {cJSON_GetArrayItem(dc, 0)->valueint, cJSON_GetArrayItem(dc, 1)->valueint,
                           cJSON_GetArrayItem(dc, 2)->valueint};
            CHECK(ava256_read_background(&cap, c, &bg, err, sizeof err) == AVA256_OK, "%s", err);
            const double *T = cap.cams[c].calib.w2c;
            double K[9];
            ava256_scale_K(cap.cams[c].calib.K, IW, IH, K);
            for (int f = 0; f < cap.n_frames; f++) {
                int r = ava256_read_image(&cap, c, f, &im, err, sizeof err);
                if (r == AVA256_MISSING) continue;
                CHECK(r == AVA256_OK, "%s", err);
                const double *h = cap.frames[f].head;
                double X[3];
                for (int i = 0; i < 3; i++)
                    X[i] = T[4 * i] * h[3] + T[4 * i + 1] * h[7] + T[4 * i + 2] * h[11] + T[4 * i + 3];
                double pu = K[0] * X[0] / X[2] + K[1] * X[1] / X[2] + K[2], pv = K[4] * X[1] / X[2] + K[5];
                const cJSON *cp = cJSON_GetArrayItem(cJSON_GetArrayItem(cJSON_GetObjectItem(sj, "centre_px"), c), f);
                CHECK(fabs(pu - cJSON_GetArrayItem(cp, 0)->valuedouble) < 1e-9 &&
                          fabs(pv - cJSON_GetArrayItem(cp, 1)->valuedouble) < 1e-9,
                      "projection (%f, %f) differs from the generator's", pu, pv);
                double u, v;
                disc_centroid(&im, &bg, disc, &u, &v);
                double e = hypot(u - pu, v - pv);
                if (e > worst) worst = e;
                CHECK(e < 0.5, "subject %d cam %s frame %lld: centroid (%.3f, %.3f), projection (%.3f, %.3f)", s,
                      cap.cams[c].calib.id, (long long)cap.frames[f].id, u, v, pu, pv);
            }
        }
        ava256_close(&cap);
    }
    printf("    worst centroid-projection distance %.4f px\n", worst);
    ava256_image_free(&im), ava256_image_free(&bg);
    cJSON_Delete(ex);
    return 0;
}

// ----------------------------------------------------------------------------------------------
// §10 assertion 5: exact pixels on the lossless files (images, masks, plates); the lossy 4:2:0 one close

static int test_pixels_exact(void) {
    CHECK(fixture(), "no fixture");
    cJSON *ex = expected_json();
    CHECK(ex, "expected.json");
    const cJSON *lossy = cJSON_GetObjectItem(ex, "lossy");
    const size_t npx = (size_t)IW * IH;
    char p[1200], err[1024];
    Ava256Image im = {0};
    int checked = 0;
    for (int s = 0; s < NS; s++) {
        const char *sid = s ? "TST002" : "TST001";
        uint8_t *rgb = read_raw(sid, "rgb", NC * NF * npx * 3), *mask = read_raw(sid, "mask", NC * NF * npx),
                *bgs = read_raw(sid, "bg", NC * npx * 3);
        CHECK(rgb && mask && bgs, "expected/%s.*", sid);
        subject_path(p, sizeof p, s);
        Ava256Capture cap;
        CHECK(ava256_open(&cap, p, 0, err, sizeof err) == AVA256_OK, "%s", err);
        for (int c = 0; c < cap.n_cams; c++) {
            CHECK(ava256_read_background(&cap, c, &im, err, sizeof err) == AVA256_OK, "%s", err);
            CHECK(memcmp(im.px, bgs + c * npx * 3, npx * 3) == 0, "plate of cam %s differs", cap.cams[c].calib.id);
            for (int f = 0; f < cap.n_frames; f++) {
                int r = ava256_read_image(&cap, c, f, &im, err, sizeof err);
                if (r == AVA256_MISSING) continue;
                CHECK(r == AVA256_OK, "%s", err);
                const uint8_t *want = rgb + (c * NF + f) * npx * 3;
                int is_lossy = strcmp(sid, cJSON_GetObjectItem(lossy, "sid")->valuestring) == 0 &&
                               strcmp(cap.cams[c].calib.id, cJSON_GetObjectItem(lossy, "camera")->valuestring) == 0 &&
                               cap.frames[f].id == json_int(lossy, "frame");
                if (is_lossy) { // YUV 4:2:0, BT.709, limited range: close, not equal
                    double sum = 0;
                    int mx = 0;
                    for (size_t i = 0; i < npx * 3; i++) {
                        int d = abs(im.px[i] - want[i]);
                        sum += d;
                        mx = d > mx ? d : mx;
                    }
                    printf("    lossy 4:2:0 file: mean |diff| %.3f, max %d\n", sum / (npx * 3), mx);
                    CHECK(sum / (npx * 3) < 2.0, "lossy file decodes to mean |diff| %.3f", sum / (npx * 3));
                    // the disc's centre pixel: right only when the BT.709 matrix and limited range are honoured
                    const uint8_t *a = im.px + 3 * (32 * IW + 21), *b = want + 3 * (32 * IW + 21);
                    printf("    lossy centre (%d,%d,%d), source (%d,%d,%d)\n", a[0], a[1], a[2], b[0], b[1], b[2]);
                    CHECK(abs(a[0] - b[0]) <= 4 && abs(a[1] - b[1]) <= 4 && abs(a[2] - b[2]) <= 4,
                          "lossy centre (%d,%d,%d) vs (%d,%d,%d)", a[0], a[1], a[2], b[0], b[1], b[2]);
                } else {
                    size_t i = 0;
                    while (i < npx * 3 && im.px[i] == want[i]) i++;
                    CHECK(i == npx * 3, "%s cam %s frame %lld: pixel %zu channel %zu is %d, expected %d", sid,
                          cap.cams[c].calib.id, (long long)cap.frames[f].id, i / 3, i % 3, im.px[i], want[i]);
                    checked++;
                    // the corner block encodes the frame index: (250, 20k, 250 - 20k)
                    CHECK(im.px[0] == 250 && im.px[1] == 20 * f && im.px[2] == 250 - 20 * f, "frame block of frame %d",
                          f);
                }
                CHECK(ava256_read_mask(&cap, c, f, &im, err, sizeof err) == AVA256_OK, "%s", err);
                CHECK(memcmp(im.px, mask + (c * NF + f) * npx, npx) == 0, "mask of cam %s frame %d differs",
                      cap.cams[c].calib.id, f);
            }
        }
        ava256_close(&cap);
        free(rgb), free(mask), free(bgs);
    }
    CHECK(checked == NS * NC * NF - 2, "%d lossless images compared", checked);
    ava256_image_free(&im);
    cJSON_Delete(ex);
    return 0;
}

// ----------------------------------------------------------------------------------------------
// §10 assertions 6, 7: expression codes; the dropped member is reported and skipped

static int test_expression_codes(void) {
    CHECK(fixture(), "no fixture");
    char p[1200], err[1024];
    for (int s = 0; s < NS; s++) { // TST001: int keys + numpy; TST002: str keys + lists
        subject_path(p, sizeof p, s);
        Ava256Capture cap;
        CHECK(ava256_open(&cap, p, AVA256_REQUIRE_EXPR, err, sizeof err) == AVA256_OK, "%s", err);
        CHECK(cap.expr_dim == 256 && cap.n_expr == NF && cap.expr_note[0] == 0, "dim %d, %lld codes", cap.expr_dim,
              (long long)cap.n_expr);
        for (int f = 0; f < cap.n_frames; f++) {
            const float *code;
            CHECK(ava256_expr_code(&cap, f, &code, err, sizeof err) == AVA256_OK, "%s", err);
            for (int j = 0; j < 256; j++) {
                float want = (float)(0.1 * sin(0.37 * j + 0.11 * (double)cap.frames[f].id + s));
                CHECK(fabsf(code[j] - want) <= 1e-7f, "subject %d frame %lld code[%d] = %.9g, expected %.9g", s,
                      (long long)cap.frames[f].id, j, code[j], want);
            }
        }
        ava256_close(&cap);
    }
    return 0;
}

static int test_missing_member(void) {
    CHECK(fixture(), "no fixture");
    char p[1200], err[1024];
    subject_path(p, sizeof p, 1);
    Ava256Capture cap;
    CHECK(ava256_open(&cap, p, 0, err, sizeof err) == AVA256_OK, "%s", err);
    int c = ava256_find_camera(&cap, "400105"), f = ava256_find_frame(&cap, 20027);
    CHECK(c == 4 && f == 9, "camera %d frame %d", c, f);
    CHECK(cap.n_missing_images == 1 && cap.present[c * cap.n_frames + f] == 0 && cap.cams[c].n_images == NF - 1,
          "missing member not reported");
    Ava256Image im = {0};
    CHECK(ava256_read_image(&cap, c, f, &im, err, sizeof err) == AVA256_MISSING, "dropped image not MISSING");
    CHECK(ava256_read_image(&cap, c, f, &im, err, sizeof err) == AVA256_MISSING, "dropped image not MISSING");
    CHECK(cap.n_skipped_images == 2, "skipped %lld", (long long)cap.n_skipped_images);
    CHECK(ava256_read_mask(&cap, c, f, &im, err, sizeof err) == AVA256_MISSING && cap.n_skipped_masks == 1, "mask");
    CHECK(ava256_read_image(&cap, c, f - 1, &im, err, sizeof err) == AVA256_OK, "%s", err); // the rest still reads
    CHECK(ava256_read_image(&cap, c + 1, f, &im, err, sizeof err) == AVA256_OK, "%s", err);
    ava256_image_free(&im);
    ava256_close(&cap);
    return 0;
}

// ----------------------------------------------------------------------------------------------
// rejections: every message names the file and what was wrong

static int test_rejects_truncated_zip(void) {
    CHECK(fixture(), "no fixture");
    char dir[1200], z[1400], err[1024];
    CHECK(copy_subject(0, "case_truncated_zip", dir, sizeof dir) == 0, "copy");
    snprintf(z, sizeof z, "%s/decoder/image/cam400103.zip", dir);
    struct stat st;
    CHECK(stat(z, &st) == 0 && truncate(z, st.st_size / 2) == 0, "truncate");
    Ava256Capture cap;
    CHECK(ava256_open(&cap, dir, 0, err, sizeof err) == AVA256_ERROR, "a truncated zip was accepted");
    printf("    %s\n", err);
    CHECK(has(err, z) && has(err, "zip"), "message does not name the file: %s", err);
    CHECK(cap.n_cams == 0 && cap.cams == NULL, "capture not left zeroed");
    // the head-pose zip too
    CHECK(copy_subject(0, "case_truncated_pose", dir, sizeof dir) == 0, "copy");
    snprintf(z, sizeof z, "%s/decoder/head_pose/head_pose.zip", dir);
    CHECK(stat(z, &st) == 0 && truncate(z, st.st_size - 30) == 0, "truncate");
    CHECK(ava256_open(&cap, dir, 0, err, sizeof err) == AVA256_ERROR && has(err, z), "head pose: %s", err);
    return 0;
}

static int test_rejects_corrupt_avif(void) {
    CHECK(fixture(), "no fixture");
    char dir[1200], z[1400], err[1024];
    CHECK(copy_subject(0, "case_corrupt_avif", dir, sizeof dir) == 0, "copy");
    snprintf(z, sizeof z, "%s/decoder/image/cam400101.zip", dir);
    static const char junk[] = "\0\0\0\x18" "ftypavif this is not an AV1 payload at all";
    CHECK(test_zip_edit(z, "cam400101/020000.avif", junk, sizeof junk, 0) == 0, "rewrite zip");
    // a real AVIF cut in half
    char zimg[1400];
    snprintf(zimg, sizeof zimg, "%s/decoder/image/cam400102.zip", dir);
    Ava256Capture cap;
    CHECK(ava256_open(&cap, dir, 0, err, sizeof err) == AVA256_OK, "%s", err);
    Ava256Image im = {0};
    CHECK(ava256_read_image(&cap, 0, 0, &im, err, sizeof err) == AVA256_ERROR, "garbage AVIF decoded");
    printf("    %s\n", err);
    CHECK(has(err, z) && has(err, "cam400101/020000.avif") && has(err, "AVIF"), "message: %s", err);
    CHECK(ava256_read_image(&cap, 0, 1, &im, err, sizeof err) == AVA256_OK, "the next member: %s", err);
    ava256_close(&cap);

    // a truncated AVIF (half of a real one) inside an intact zip
    {
        zip_t *za = zip_open(zimg, ZIP_RDONLY, NULL);
        CHECK(za, "open %s", zimg);
        zip_stat_t st;
        CHECK(zip_stat(za, "cam400102/020003.avif", 0, &st) == 0, "stat");
        static uint8_t half[1 << 16];
        zip_file_t *zf = zip_fopen(za, "cam400102/020003.avif", 0);
        CHECK(zf && st.size < sizeof half && zip_fread(zf, half, st.size) == (zip_int64_t)st.size, "read");
        zip_fclose(zf);
        zip_discard(za);
        CHECK(test_zip_edit(zimg, "cam400102/020003.avif", half, st.size / 2, 0) == 0, "rewrite");
    }
    CHECK(ava256_open(&cap, dir, 0, err, sizeof err) == AVA256_OK, "%s", err);
    CHECK(ava256_read_image(&cap, 1, 1, &im, err, sizeof err) == AVA256_ERROR, "half an AVIF decoded");
    printf("    %s\n", err);
    CHECK(has(err, zimg) && has(err, "cam400102/020003.avif"), "message: %s", err);
    ava256_close(&cap);

    // flipped bytes inside a STORED member: the zip's CRC catches it before the decoder sees it
    FILE *f = fopen(zimg, "r+b");
    CHECK(f, "open");
    uint8_t lh[30];
    CHECK(fread(lh, 1, 30, f) == 30 && lh[0] == 'P' && lh[1] == 'K', "local header");
    long data = 30 + (lh[26] | lh[27] << 8) + (lh[28] | lh[29] << 8); // first member: cam400102/020000.avif
    fseek(f, data + 200, SEEK_SET);
    int b = fgetc(f);
    fseek(f, data + 200, SEEK_SET);
    fputc(b ^ 0x5a, f);
    fclose(f);
    CHECK(ava256_open(&cap, dir, 0, err, sizeof err) == AVA256_OK, "%s", err);
    CHECK(ava256_read_image(&cap, 1, 0, &im, err, sizeof err) == AVA256_ERROR, "a CRC error went unnoticed");
    printf("    %s\n", err);
    CHECK(has(err, zimg) && has(err, "cam400102/020000.avif") && has(err, "CRC"), "message: %s", err);
    ava256_close(&cap);
    ava256_image_free(&im);
    return 0;
}

static int test_rejects_malformed_json(void) {
    CHECK(fixture(), "no fixture");
    char dir[1200], js[1400], err[1024];
    CHECK(copy_subject(0, "case_bad_json", dir, sizeof dir) == 0, "copy");
    snprintf(js, sizeof js, "%s/decoder/camera_calibration.json", dir);
    char *t = test_read_text(js, NULL);
    CHECK(t, "read");
    t[strlen(t) / 2] = 0; // cut mid-file
    CHECK(write_text(js, t) == 0, "write");
    free(t);
    Ava256Capture cap;
    CHECK(ava256_open(&cap, dir, 0, err, sizeof err) == AVA256_ERROR, "half a JSON file was accepted");
    printf("    %s\n", err);
    CHECK(has(err, js) && has(err, "malformed JSON"), "message: %s", err);
    CHECK(write_text(js, "{\"cameras\": []}") == 0, "write");
    CHECK(ava256_open(&cap, dir, 0, err, sizeof err) == AVA256_ERROR && has(err, js) && has(err, "'KRT'"), "%s", err);
    return 0;
}

// Rewrites camera `id`'s field `key` in a calibration file with the JSON text `value`.
static int edit_calibration(const char *js, const char *id, const char *key, const char *value) {
    char *t = test_read_text(js, NULL);
    cJSON *root = t ? cJSON_Parse(t) : NULL;
    free(t);
    if (!root) return -1;
    cJSON *krt = cJSON_GetObjectItem(root, "KRT"), *cam;
    int done = -1;
    cJSON_ArrayForEach(cam, krt) {
        if (strcmp(cJSON_GetObjectItem(cam, "cameraId")->valuestring, id) == 0) {
            cJSON_ReplaceItemInObject(cam, key, cJSON_Parse(value));
            done = 0;
        }
    }
    char *out = cJSON_Print(root);
    cJSON_Delete(root);
    if (done == 0) done = write_text(js, out);
    free(out);
    return done;
}

static int test_rejects_bad_K(void) {
    CHECK(fixture(), "no fixture");
    char dir[1200], js[1400], err[1024];
    const char *bad[] = {"[[8000,0,0],[0,8000,0]]", "[[8000,0,0],[0,\"8000\",0],[1334,2048,1]]",
                         "[[8000,0,1334],[0,8000,2048],[0,0,1]]", "[[-8000,0,0],[0,8000,0],[1334,2048,1]]"};
    for (int i = 0; i < 4; i++) {
        CHECK(copy_subject(0, "case_bad_K", dir, sizeof dir) == 0, "copy");
        snprintf(js, sizeof js, "%s/decoder/camera_calibration.json", dir);
        CHECK(edit_calibration(js, "400103", "K", bad[i]) == 0, "edit");
        Ava256Capture cap;
        CHECK(ava256_open(&cap, dir, 0, err, sizeof err) == AVA256_ERROR, "K = %s was accepted", bad[i]);
        printf("    %s\n", err);
        CHECK(has(err, js) && has(err, "camera '400103'") && has(err, "field 'K'"), "message: %s", err);
        if (i == 2) CHECK(has(err, "untransposed"), "no hint about the transposition: %s", err);
    }
    // T must be a transposed rigid transform
    CHECK(copy_subject(0, "case_bad_T", dir, sizeof dir) == 0, "copy");
    snprintf(js, sizeof js, "%s/decoder/camera_calibration.json", dir);
    CHECK(edit_calibration(js, "400105", "T", "[[2,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]") == 0, "edit");
    Ava256Capture cap;
    CHECK(ava256_open(&cap, dir, 0, err, sizeof err) == AVA256_ERROR && has(err, "camera '400105'") &&
              has(err, "field 'T'"),
          "%s", err);
    return 0;
}

static int test_rejects_bad_frame_id(void) {
    CHECK(fixture(), "no fixture");
    char dir[1200], csv[1400], err[1024];
    CHECK(copy_subject(1, "case_bad_csv", dir, sizeof dir) == 0, "copy");
    snprintf(csv, sizeof csv, "%s/decoder/frame_list.csv", dir);
    CHECK(write_text(csv, "seg_id,frame_id\r\nEXP_neutral_peak,20000\r\nEXP_neutral_peak,20003\r\n"
                          "EXP_free_face,20x06\r\n") == 0,
          "write");
    Ava256Capture cap;
    CHECK(ava256_open(&cap, dir, 0, err, sizeof err) == AVA256_ERROR, "a non-numeric frame id was accepted");
    printf("    %s\n", err);
    CHECK(has(err, csv) && has(err, ":4:") && has(err, "'frame_id'") && has(err, "20x06"), "message: %s", err);
    CHECK(write_text(csv, "seg_id,frame_id\nA,20000\nB,20000\n") == 0, "write");
    CHECK(ava256_open(&cap, dir, 0, err, sizeof err) == AVA256_ERROR && has(err, csv) && has(err, "repeats"), "%s",
          err);
    CHECK(write_text(csv, "frame,segment\nA,20000\n") == 0, "write");
    CHECK(ava256_open(&cap, dir, 0, err, sizeof err) == AVA256_ERROR && has(err, csv) && has(err, "header"), "%s", err);
    // a shorter list is fine: the zips' other members are ignored
    CHECK(write_text(csv, "frame_id,seg_id\n20003,EXP_neutral_peak\n20027,EXP_free_face\n") == 0, "write");
    CHECK(ava256_open(&cap, dir, 0, err, sizeof err) == AVA256_OK, "%s", err);
    CHECK(cap.n_frames == 2 && cap.n_images == 2 * NC - 1 && cap.frames[1].expr_row >= 0, "subset");
    ava256_close(&cap);
    return 0;
}

static int test_missing_sidecar(void) {
    CHECK(fixture(), "no fixture");
    char dir[1200], side[1400], err[1024];
    CHECK(copy_subject(0, "case_no_sidecar", dir, sizeof dir) == 0, "copy");
    snprintf(side, sizeof side, "%s/decoder/%s", dir, AVA256_EXPR_SIDECAR);
    CHECK(unlink(side) == 0, "unlink");
    Ava256Capture cap;
    CHECK(ava256_open(&cap, dir, AVA256_REQUIRE_EXPR, err, sizeof err) == AVA256_ERROR, "opened without codes");
    printf("    %s\n", err);
    CHECK(has(err, side) && has(err, "no expression codes; run: /usr/bin/python3 tools/ava256_expr_codes.py"),
          "message: %s", err);
    CHECK(ava256_open(&cap, dir, 0, err, sizeof err) == AVA256_OK, "%s", err);
    const float *code;
    CHECK(cap.expr_dim == 0 && ava256_expr_code(&cap, 0, &code, err, sizeof err) == AVA256_ERROR, "codes?");
    CHECK(has(err, side) && has(err, "run: "), "message: %s", err);
    ava256_close(&cap);
    // a truncated sidecar
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' '%s/tools/ava256_expr_codes.py' '%s' > /dev/null", python(), test_source_root(),
             dir);
    CHECK(test_system(cmd) == 0, "converter");
    struct stat st;
    CHECK(stat(side, &st) == 0 && truncate(side, st.st_size - 100) == 0, "truncate");
    CHECK(ava256_open(&cap, dir, 0, err, sizeof err) == AVA256_ERROR, "a truncated sidecar was accepted");
    printf("    %s\n", err);
    CHECK(has(err, side) && has(err, "truncated"), "message: %s", err);
    return 0;
}

// The converter on torch tensors (when torch imports), and its message when torch cannot be imported.
static int test_expr_converter_torch(void) {
    CHECK(fixture(), "no fixture");
    char dir[1200], cmd[8192], log[1400], err[1024];
    CHECK(copy_subject(0, "case_torch", dir, sizeof dir) == 0, "copy");
    snprintf(cmd, sizeof cmd, "'%s' -c 'import torch' 2>/dev/null", python());
    int have_torch = system(cmd) == 0;
    snprintf(log, sizeof log, "%s/case_torch.log", test_tmpdir());
    if (have_torch) {
        snprintf(cmd, sizeof cmd,
                 "'%s' -c \"import torch, pickle, math\n"
                 "d = {20000 + 3*k: torch.tensor([0.1*math.sin(0.37*j + 0.11*(20000 + 3*k)) for j in range(256)],"
                 " dtype=torch.float32).reshape(16, 4, 4) for k in range(10)}\n"
                 "pickle.dump(d, open('%s/decoder/%s', 'wb'))\" && "
                 "'%s' '%s/tools/ava256_expr_codes.py' '%s' > /dev/null",
                 python(), dir, AVA256_EXPR_PKL, python(), test_source_root(), dir);
        CHECK(test_system(cmd) == 0, "torch pickle conversion");
        Ava256Capture cap;
        CHECK(ava256_open(&cap, dir, AVA256_REQUIRE_EXPR, err, sizeof err) == AVA256_OK, "%s", err);
        for (int f = 0; f < cap.n_frames; f++) {
            const float *code;
            CHECK(ava256_expr_code(&cap, f, &code, err, sizeof err) == AVA256_OK, "%s", err);
            for (int j = 0; j < 256; j++)
                CHECK(fabsf(code[j] - (float)(0.1 * sin(0.37 * j + 0.11 * (double)cap.frames[f].id))) <= 1e-7f,
                      "torch code %d[%d]", f, j);
        }
        ava256_close(&cap);
    } else { // GLOBAL torch._utils._rebuild_tensor_v2, as a pickled tensor starts
        printf("    torch not importable: only the no-torch message is checked\n");
        char pkl[1400];
        snprintf(pkl, sizeof pkl, "%s/decoder/%s", dir, AVA256_EXPR_PKL);
        CHECK(write_text(pkl, "\x80\x02ctorch._utils\n_rebuild_tensor_v2\n.") == 0, "write pickle");
    }
    // with torch hidden (an importable 'torch' that fails), the converter says what is missing
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s/notorch/torch' && "
             "echo 'raise ModuleNotFoundError(\"No module named torch\", name=\"torch\")' "
             "> '%s/notorch/torch/__init__.py' && PYTHONPATH='%s/notorch' '%s' '%s/tools/ava256_expr_codes.py' '%s' "
             "2> '%s'; test $? -eq 1",
             test_tmpdir(), test_tmpdir(), test_tmpdir(), python(), test_source_root(), dir, log);
    CHECK(test_system(cmd) == 0, "the converter did not exit 1 without torch");
    char *msg = test_read_text(log, NULL);
    CHECK(msg, "log");
    printf("    %s", msg);
    int ok = has(msg, "aeparams_1440000.pkl") && has(msg, "torch") && has(msg, "python3-torch");
    free(msg);
    CHECK(ok, "message does not name the file and torch");
    return 0;
}

static int test_rejects_bad_head_pose(void) {
    CHECK(fixture(), "no fixture");
    char dir[1200], z[1400], err[1024];
    CHECK(copy_subject(0, "case_bad_pose", dir, sizeof dir) == 0, "copy");
    snprintf(z, sizeof z, "%s/decoder/head_pose/head_pose.zip", dir);
    static const char short_pose[] = "1 0 0 0\n0 1 0 0\n0 0 1\n";
    CHECK(test_zip_edit(z, "020006.txt", short_pose, strlen(short_pose), 0) == 0, "rewrite");
    Ava256Capture cap;
    CHECK(ava256_open(&cap, dir, 0, err, sizeof err) == AVA256_ERROR, "a 3x3 head pose was accepted");
    printf("    %s\n", err);
    CHECK(has(err, z) && has(err, "member '020006.txt'") && has(err, "3 rows of 4 numbers"), "message: %s", err);
    static const char scaled[] = "2 0 0 0\n0 1 0 0\n0 0 1 1000\n";
    CHECK(test_zip_edit(z, "020006.txt", scaled, strlen(scaled), 0) == 0, "rewrite");
    CHECK(ava256_open(&cap, dir, 0, err, sizeof err) == AVA256_ERROR && has(err, "020006.txt") &&
              has(err, "orthonormal"),
          "%s", err);
    // a pose member that is simply absent: counted, not fatal
    int code;
    zip_t *za = zip_open(z, 0, &code);
    CHECK(za && zip_delete(za, (zip_uint64_t)zip_name_locate(za, "020006.txt", 0)) == 0 && zip_close(za) == 0,
          "delete");
    CHECK(ava256_open(&cap, dir, 0, err, sizeof err) == AVA256_OK, "%s", err);
    CHECK(cap.n_missing_head_pose == 1 && !cap.frames[2].has_head_pose && cap.frames[3].has_head_pose, "pose count");
    ava256_close(&cap);
    return 0;
}

// Every prefix and many single-byte corruptions of a real AVIF, calibration and frame list: an error
// or a decode, never a crash (run under ASan/UBSan).
static int test_corruption_never_crashes(void) {
    CHECK(fixture(), "no fixture");
    char p[1200], err[1024];
    subject_path(p, sizeof p, 0);
    Ava256Capture cap;
    CHECK(ava256_open(&cap, p, 0, err, sizeof err) == AVA256_OK, "%s", err);
    Ava256Image im = {0};
    CHECK(ava256_read_image(&cap, 3, 4, &im, err, sizeof err) == AVA256_OK, "%s", err); // leaves bytes in cap.buf
    size_t n = 0;
    { // the member's size, from the zip
        zip_stat_t st;
        CHECK(zip_stat_index(cap.cams[3].img, (zip_uint64_t)cap.cams[3].img_member[4], 0, &st) == 0, "stat");
        n = (size_t)st.size;
    }
    uint8_t *good = malloc(n), *bad = malloc(n);
    memcpy(good, cap.buf, n);
    int errors = 0, decodes = 0;
    for (size_t len = 0; len < n; len += 3) {
        int r = ava256_decode_avif(good, len, 3, &im, "prefix", err, sizeof err);
        errors += r == AVA256_ERROR;
        CHECK(r == AVA256_ERROR || r == AVA256_OK, "prefix %zu: %d", len, r);
    }
    uint32_t x = 12345;
    for (int t = 0; t < 400; t++) {
        memcpy(bad, good, n);
        for (int k = 0; k < 1 + t % 4; k++) {
            x = x * 1664525u + 1013904223u;
            bad[(x >> 8) % n] ^= (uint8_t)(1u << (x % 8));
        }
        int r = ava256_decode_avif(bad, n, t % 2 ? 1 : 3, &im, "flipped", err, sizeof err);
        CHECK(r == AVA256_ERROR || r == AVA256_OK, "flip %d: %d", t, r);
        decodes += r == AVA256_OK;
    }
    printf("    AVIF: %d prefixes rejected; %d of 400 corrupted copies still decoded (AV1 has no checksum)\n", errors,
           decodes);
    free(good), free(bad);
    ava256_image_free(&im);
    ava256_close(&cap);

    char src[1400], dst[1400];
    snprintf(src, sizeof src, "%s/decoder/camera_calibration.json", p);
    snprintf(dst, sizeof dst, "%s/cut.json", test_tmpdir());
    char *js = test_read_text(src, NULL);
    CHECK(js, "read");
    size_t jn = strlen(js);
    int rejected = 0;
    for (size_t len = 0; len < jn; len += 11) {
        char c = js[len];
        js[len] = 0;
        CHECK(write_text(dst, js) == 0, "write");
        js[len] = c;
        Ava256Calib *cams;
        int nc;
        int r = ava256_read_calibration(dst, &cams, &nc, err, sizeof err);
        CHECK(r == AVA256_ERROR && has(err, dst), "prefix %zu of the calibration: %d (%s)", len, r, err);
        rejected++;
    }
    free(js);
    printf("    calibration: all %d prefixes rejected\n", rejected);
    return 0;
}

// ----------------------------------------------------------------------------------------------
// part labels (segmentation_parts/cam{ID}.zip, cam{ID}/{frame:06d}.png)

typedef struct {
    uint8_t *p;
    size_t n, cap;
} MemPng;

static void mem_png_write(png_structp png, png_bytep d, size_t n) {
    MemPng *m = (MemPng *)png_get_io_ptr(png);
    if (m->n + n > m->cap) {
        m->cap = (m->n + n) * 2;
        m->p = realloc(m->p, m->cap);
    }
    memcpy(m->p + m->n, d, n);
    m->n += n;
}
static void mem_png_flush(png_structp png) { (void)png; }

// A PNG of w×h written with libpng's low-level API (malloc'd; *n its size): bit depth and colour type as given,
// rows taken from px as they are. Every file carries gAMA 1.0 (linear), which a reader that applies gamma
// would convert; palette files get a 256-entry palette far from the identity (and a tRNS), so a reader that
// expands the palette returns colours, not the indices.
static uint8_t *png_make(int w, int h, int depth, int ctype, int interlace, const uint8_t *px, size_t *n) {
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    static MemPng m; // static: not a local changed between setjmp and a longjmp
    memset(&m, 0, sizeof m);
    int ch = ctype == PNG_COLOR_TYPE_RGB ? 3 : 1;
    size_t rb = (size_t)w * ch * depth / 8;
    png_bytep *rows = malloc(sizeof(png_bytep) * (size_t)h);
    for (int y = 0; y < h; y++) rows[y] = (png_bytep)px + (size_t)y * rb;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(rows), free(m.p);
        return NULL;
    }
    png_set_write_fn(png, &m, mem_png_write, mem_png_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, ctype, interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (ctype == PNG_COLOR_TYPE_PALETTE) {
        png_color pal[256];
        png_byte trns[256];
        for (int i = 0; i < 256; i++) {
            pal[i] = (png_color){(png_byte)(255 - i), (png_byte)(i * 7), (png_byte)(i * 3 + 1)};
            trns[i] = (png_byte)i;
        }
        png_set_PLTE(png, info, pal, 256);
        png_set_tRNS(png, info, trns, 256, NULL);
    }
    png_set_gAMA(png, info, 1.0);
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    *n = m.n;
    return m.p;
}

// segmentation_parts: class labels come out exactly as stored, whatever the PNG's gAMA, palette or interlacing
// says: 8-bit gray (every byte value, plain and Adam7) and 8-bit palette (the indices). 16-bit gray, 8-bit RGB,
// a truncated PNG and a non-PNG member are errors naming the zip and the member (and what the PNG is); a frame
// without a member and a camera without a zip are MISSING, counted; a capture without the folder has none.
static int test_part_labels(void) {
    CHECK(fixture(), "no fixture");
    char dir[1200], z[1400], name[64], err[1024];
    CHECK(copy_subject(0, "case_parts", dir, sizeof dir) == 0, "copy");
    Ava256Capture cap;
    CHECK(ava256_open(&cap, dir, 0, err, sizeof err) == AVA256_OK, "%s", err);
    CHECK(!cap.has_parts && cap.cams[0].parts == NULL, "a capture without segmentation_parts has labels");
    Ava256Image im = {0};
    CHECK(ava256_read_parts(&cap, 0, 0, &im, err, sizeof err) == AVA256_MISSING && cap.n_skipped_parts == 1, "no zip");
    int64_t fid[7];
    for (int k = 0; k < 7; k++) fid[k] = cap.frames[k].id;
    ava256_close(&cap);
    snprintf(z, sizeof z, "%s/decoder/segmentation_parts", dir);
    CHECK(mkdir(z, 0755) == 0, "mkdir %s", z);
    snprintf(z, sizeof z, "%s/decoder/segmentation_parts/cam400101.zip", dir);
    const int w = IW, h = IH; // the image size (not required by the reader)
    uint8_t *g8 = malloc((size_t)w * h), *g16 = malloc((size_t)w * h * 2), *rgb = malloc((size_t)w * h * 3);
    for (int i = 0; i < w * h; i++) g8[i] = (uint8_t)((i * 37 + i / w) & 0xff); // every byte value
    for (int i = 0; i < w * h * 2; i++) g16[i] = (uint8_t)(i * 5);
    for (int i = 0; i < w * h * 3; i++) rgb[i] = (uint8_t)(i % 11);
    // frame 0: gray8; 1: gray8 Adam7; 2: palette8; 3: gray16; 4: RGB8; 5: gray8 cut in half; 6: not a PNG; 7: none
    const int depth[6] = {8, 8, 8, 16, 8, 8}, ctype[6] = {PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_PALETTE,
                                                          PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_GRAY};
    const uint8_t *src[6] = {g8, g8, g8, g16, rgb, g8};
    size_t full_n = 0;
    uint8_t *full = NULL;
    for (int k = 0; k < 6; k++) {
        size_t n;
        uint8_t *png = png_make(w, h, depth[k], ctype[k], k == 1, src[k], &n);
        CHECK(png, "png_make %d", k);
        if (k == 5) n /= 2;
        snprintf(name, sizeof name, "cam400101/%06lld.png", (long long)fid[k]);
        int rz = test_zip_edit(z, name, png, n, 1);
        if (k == 0) full = png, full_n = n; // kept for the prefix checks below
        else free(png);
        CHECK(rz == 0, "zip %s", name);
    }
    snprintf(name, sizeof name, "cam400101/%06lld.png", (long long)fid[6]);
    uint8_t junk[64];
    memset(junk, 'x', sizeof junk);
    CHECK(test_zip_edit(z, name, junk, sizeof junk, 1) == 0, "zip %s", name);
    CHECK(ava256_open(&cap, dir, 0, err, sizeof err) == AVA256_OK, "%s", err);
    int c = ava256_find_camera(&cap, "400101");
    CHECK(c >= 0 && cap.has_parts && cap.cams[c].parts && cap.cams[c].parts_member[0] >= 0, "segmentation zip not indexed");
    for (int k = 0; k < 3; k++) {
        int r = ava256_read_parts(&cap, c, k, &im, err, sizeof err);
        CHECK(r == AVA256_OK, "frame %d: %s", k, err);
        CHECK(im.w == w && im.h == h && im.c == 1, "frame %d: %dx%dx%d", k, im.w, im.h, im.c);
        CHECK(!memcmp(im.px, g8, (size_t)w * h), "frame %d (%s): labels are not the stored bytes", k,
              k == 2 ? "palette" : k == 1 ? "gray, interlaced" : "gray");
    }
    const char *why[4] = {"16-bit gray PNG; expected 8-bit gray or 8-bit palette", "8-bit RGB PNG; expected",
                          "PNG decode failed", "not a PNG file"};
    for (int k = 3; k < 7; k++) {
        snprintf(name, sizeof name, "cam400101/%06lld.png", (long long)fid[k]);
        int r = ava256_read_parts(&cap, c, k, &im, err, sizeof err);
        printf("    %s\n", err);
        CHECK(r == AVA256_ERROR && has(err, z) && has(err, name) && has(err, why[k - 3]), "frame %d: %d '%s'", k, r, err);
    }
    int64_t before = cap.n_skipped_parts;
    CHECK(ava256_read_parts(&cap, c, 7, &im, err, sizeof err) == AVA256_MISSING, "a frame without a member");
    CHECK(ava256_read_parts(&cap, c + 1, 0, &im, err, sizeof err) == AVA256_MISSING, "a camera without a zip");
    CHECK(cap.n_skipped_parts == before + 2, "MISSING not counted");
    // every prefix of a good PNG is refused (never read past the end, never crash)
    int refused = 0;
    for (size_t len = 0; len < full_n; len += 7)
        refused += ava256_decode_label_png(full, len, &im, "prefix", err, sizeof err) == AVA256_ERROR;
    CHECK(refused == (int)((full_n + 6) / 7), "%d of %zu prefixes refused", refused, (full_n + 6) / 7);
    CHECK(ava256_decode_label_png(full, full_n, &im, "whole", err, sizeof err) == AVA256_OK, "%s", err);
    free(g8), free(g16), free(rgb), free(full);
    ava256_image_free(&im);
    ava256_close(&cap);
    return 0;
}

const TestCase data_reader_tests[] = {
    {"ava256_sample_count", test_sample_count},
    {"ava256_extra_camera_excluded", test_extra_camera_excluded},
    {"ava256_decoded_size", test_decoded_size},
    {"ava256_scaled_K", test_scaled_K},
    {"ava256_head_centre_projection", test_head_centre_projection},
    {"ava256_pixels_exact", test_pixels_exact},
    {"ava256_expression_codes", test_expression_codes},
    {"ava256_missing_member", test_missing_member},
    {"ava256_part_labels", test_part_labels},
    {"ava256_rejects_truncated_zip", test_rejects_truncated_zip},
    {"ava256_rejects_corrupt_avif", test_rejects_corrupt_avif},
    {"ava256_rejects_malformed_json", test_rejects_malformed_json},
    {"ava256_rejects_bad_K", test_rejects_bad_K},
    {"ava256_rejects_bad_frame_id", test_rejects_bad_frame_id},
    {"ava256_rejects_bad_head_pose", test_rejects_bad_head_pose},
    {"ava256_corruption_never_crashes", test_corruption_never_crashes},
    {"ava256_missing_sidecar", test_missing_sidecar},
    {"ava256_expr_converter_torch", test_expr_converter_torch},
    {NULL, NULL},
};
