// test_synth.c — `avat3r synth` and the procedural heads: the ava256 tree and member names exactly as
// shared/reference/ava256_format.md names them, the calibration JSON (transposed K and T, millimetres),
// lossless AVIF round trips against a re-render from the files' own cameras, masks, plates, aux maps,
// expression codes (the fixed linear map, through the pickle), the dropped member and the extra camera,
// determinism, identities per seed, expressions that do what they say, and the zip writer's ZIP64 path.
#include <avif/avif.h>
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zip.h>

#include "../common/util.h"
#include "ava256_write.h"
#include "synth_head.h"
#include "test.h"

int cmd_synth(int argc, char **argv);

#define TC 6 // the tiny config: 2 subjects x 6 cameras x 5 frames x 48x64
#define TF 5
#define TW 48
#define TH 64
#define TSEED 7

static int run_synth(const char *out, const char *seed) {
    char *argv[] = {"synth", "--out",  (char *)out, "--subjects", "2",          "--cameras", "6", "--frames",
                    "5",     "--size", "48x64",     "--seed",     (char *)seed, "--threads", "2", NULL};
    return cmd_synth(15, argv);
}

static char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    int64_t sz = file_size(f);
    char *b = (char *)mallocCheck((size_t)sz + 1);
    freadCheck(b, 1, (size_t)sz, f);
    fclose(f);
    b[sz] = 0;
    if (n) *n = (size_t)sz;
    return b;
}

// --- zip via libzip (an independent reader of what avw_zip writes)
typedef struct {
    int n;
    char names[64][64];
} ZipList;

static int zip_list(const char *path, ZipList *l) {
    int err = 0;
    zip_t *z = zip_open(path, ZIP_RDONLY | ZIP_CHECKCONS, &err);
    if (!z) return -1;
    l->n = (int)zip_get_num_entries(z, 0);
    for (int i = 0; i < l->n && i < 64; i++) {
        zip_stat_t st;
        if (zip_stat_index(z, (zip_uint64_t)i, 0, &st) != 0 || st.comp_method != ZIP_CM_STORE) {
            zip_close(z);
            return -2;
        }
        snprintf(l->names[i], sizeof l->names[i], "%s", st.name);
    }
    zip_close(z);
    return 0;
}

static uint8_t *zip_read(const char *path, const char *name, size_t *n) {
    int err = 0;
    zip_t *z = zip_open(path, ZIP_RDONLY, &err);
    if (!z) return NULL;
    zip_stat_t st;
    uint8_t *b = NULL;
    if (zip_stat(z, name, 0, &st) == 0) {
        zip_file_t *f = zip_fopen(z, name, 0);
        b = (uint8_t *)mallocCheck(st.size + 1);
        if (!f || zip_fread(f, b, st.size) != (zip_int64_t)st.size) free(b), b = NULL;
        if (f) zip_fclose(f);
        *n = st.size;
    }
    zip_close(z);
    return b;
}

static uint8_t *avif_decode(const uint8_t *data, size_t n, int *W, int *H) {
    avifDecoder *d = avifDecoderCreate();
    avifImage *img = avifImageCreateEmpty();
    uint8_t *out = NULL;
    if (avifDecoderReadMemory(d, img, data, n) == AVIF_RESULT_OK) {
        avifRGBImage rgb;
        avifRGBImageSetDefaults(&rgb, img);
        rgb.format = AVIF_RGB_FORMAT_RGB;
        rgb.depth = 8;
        avifRGBImageAllocatePixels(&rgb);
        if (avifImageYUVToRGB(img, &rgb) == AVIF_RESULT_OK) {
            *W = (int)img->width, *H = (int)img->height;
            out = (uint8_t *)mallocCheck((size_t)*W * *H * 3);
            for (int y = 0; y < *H; y++)
                memcpy(out + (size_t)y * *W * 3, rgb.pixels + (size_t)y * rgb.rowBytes, (size_t)*W * 3);
        }
        avifRGBImageFreePixels(&rgb);
    }
    avifImageDestroy(img);
    avifDecoderDestroy(d);
    return out;
}

static uint8_t *zip_avif(const char *zpath, const char *member, int *W, int *H) {
    size_t n = 0;
    uint8_t *b = zip_read(zpath, member, &n);
    if (!b) return NULL;
    uint8_t *px = avif_decode(b, n, W, H);
    free(b);
    return px;
}

// NPY: checks the header's dtype and shape, returns a pointer to the data inside b
static const float *npy_data(const uint8_t *b, size_t n, const char *shape) {
    if (n < 10 || memcmp(b, "\x93NUMPY\x01\x00", 8)) return NULL;
    size_t hl = b[8] | (size_t)b[9] << 8;
    char hdr[256];
    snprintf(hdr, sizeof hdr, "%.*s", (int)hl, (const char *)b + 10);
    if ((10 + hl) % 64 || !strstr(hdr, "'descr': '<f4'") || !strstr(hdr, shape)) return NULL;
    return (const float *)(b + 10 + hl);
}

// --- the capture's own files
typedef struct {
    char id[16];
    double K[9], R[9], t[3]; // K native, row-major; t mm
} JCam;

static int read_calib(const char *path, JCam *cams, int max) {
    char *s = read_all(path, NULL);
    cJSON *j = s ? cJSON_Parse(s) : NULL;
    free(s);
    cJSON *krt = j ? cJSON_GetObjectItem(j, "KRT") : NULL;
    int n = krt ? cJSON_GetArraySize(krt) : -1;
    for (int c = 0; c < n && c < max; c++) {
        cJSON *o = cJSON_GetArrayItem(krt, c), *K = cJSON_GetObjectItem(o, "K"), *T = cJSON_GetObjectItem(o, "T");
        snprintf(cams[c].id, sizeof cams[c].id, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(o, "cameraId")));
        for (int i = 0; i < 3; i++)
            for (int k = 0; k < 3; k++) // the JSON holds K and T transposed
                cams[c].K[3 * i + k] = cJSON_GetArrayItem(cJSON_GetArrayItem(K, k), i)->valuedouble,
                                  cams[c].R[3 * i + k] = cJSON_GetArrayItem(cJSON_GetArrayItem(T, k), i)->valuedouble;
        for (int i = 0; i < 3; i++) cams[c].t[i] = cJSON_GetArrayItem(cJSON_GetArrayItem(T, 3), i)->valuedouble;
    }
    cJSON_Delete(j);
    return n;
}

static int read_frames(const char *path, int64_t *fid, int *neutral, int max) {
    char *s = read_all(path, NULL);
    if (!s || strncmp(s, "seg_id,frame_id\n", 16)) return free(s), -1;
    int n = 0;
    for (char *p = s + 16; *p && n < max; n++) {
        char seg[64];
        int len = 0;
        if (sscanf(p, "%63[^,],%" SCNd64 "%n", seg, &fid[n], &len) != 2) break;
        char num[32];
        snprintf(num, sizeof num, "%" PRId64, fid[n]);
        if (strncmp(p + strlen(seg) + 1, num, strlen(num))) return free(s), -2; // unpadded, exactly
        neutral[n] = !strcmp(seg, "EXP_neutral_peak");
        p += len;
        if (*p == '\n') p++;
    }
    free(s);
    return n;
}

static int read_pose(const char *zpath, int64_t frame, double R[9], double t[3]) {
    char m[64];
    size_t n = 0;
    avw_member_pose(m, sizeof m, frame);
    char *b = (char *)zip_read(zpath, m, &n);
    if (!b) return -1;
    b[n] = 0;
    int got = sscanf(b, "%lf %lf %lf %lf %lf %lf %lf %lf %lf %lf %lf %lf", &R[0], &R[1], &R[2], &t[0], &R[3], &R[4],
                     &R[5], &t[1], &R[6], &R[7], &R[8], &t[2]);
    int lines = 0;
    for (size_t i = 0; i < n; i++) lines += b[i] == '\n';
    free(b);
    return got == 12 && lines == 3 ? 0 : -2;
}

static void image_camera(const JCam *c, int W, int H, double K[9], double w2c[12]) {
    double sx = (double)W / 2668, sy = (double)H / 4096;
    double k[9] = {c->K[0] * sx, 0, c->K[2] * sx, 0, c->K[4] * sy, c->K[5] * sy, 0, 0, 1};
    memcpy(K, k, sizeof k);
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 3; j++) w2c[4 * i + j] = c->R[3 * i + j];
        w2c[4 * i + 3] = c->t[i] / 1000;
    }
}

static void project(const double K[9], const double w2c[12], const double x[3], double *u, double *v) {
    double p[3];
    for (int i = 0; i < 3; i++)
        p[i] = w2c[4 * i] * x[0] + w2c[4 * i + 1] * x[1] + w2c[4 * i + 2] * x[2] + w2c[4 * i + 3];
    *u = K[0] * p[0] / p[2] + K[2], *v = K[4] * p[1] / p[2] + K[5];
}

static int check_rot(const double R[9]) {
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            double d = R[3 * i] * R[3 * j] + R[3 * i + 1] * R[3 * j + 1] + R[3 * i + 2] * R[3 * j + 2];
            if (fabs(d - (i == j)) > 1e-6) return 0;
        }
    double det =
        R[0] * (R[4] * R[8] - R[5] * R[7]) - R[1] * (R[3] * R[8] - R[5] * R[6]) + R[2] * (R[3] * R[7] - R[4] * R[6]);
    return fabs(det - 1) < 1e-6;
}

static int check_capture(const char *root, const char *name, int subject, int last) {
    char dec[1024], p[1400], m[128];
    snprintf(dec, sizeof dec, "%s/%s/decoder", root, name);
    // calibration: C + 1 cameras, transposed K/T, millimetres, looking at the head
    JCam cams[TC + 1];
    snprintf(p, sizeof p, "%s/camera_calibration.json", dec);
    CHECK(read_calib(p, cams, TC + 1) == TC + 1, "%s: want %d cameras", p, TC + 1);
    {
        char *s = read_all(p, NULL);
        cJSON *j = cJSON_Parse(s), *o = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "KRT"), 0);
        cJSON *K = cJSON_GetObjectItem(o, "K"), *T = cJSON_GetObjectItem(o, "T");
        CHECK(cJSON_GetArraySize(K) == 3 && cJSON_GetArraySize(T) == 4, "K 3x3 and T 4x4");
        // transposed: K's zeros are above the diagonal in the stored rows, cx cy sit in row 2
        CHECK(cJSON_GetArrayItem(cJSON_GetArrayItem(K, 0), 1)->valuedouble == 0 &&
                  cJSON_GetArrayItem(cJSON_GetArrayItem(K, 0), 2)->valuedouble == 0 &&
                  cJSON_GetArrayItem(cJSON_GetArrayItem(K, 2), 2)->valuedouble == 1,
              "K must be stored transposed");
        for (int i = 0; i < 3; i++)
            CHECK(cJSON_GetArrayItem(cJSON_GetArrayItem(T, i), 3)->valuedouble == 0, "T column 3 must be (0,0,0,1)");
        CHECK(cJSON_GetArrayItem(cJSON_GetArrayItem(T, 3), 3)->valuedouble == 1, "T[3][3] = 1");
        CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(o, "distortion")) == 4, "4 distortion coefficients");
        CHECK(!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(o, "projectionModel")), "Pinhole"), "Pinhole");
        cJSON_Delete(j);
        free(s);
    }
    for (int c = 0; c <= TC; c++) {
        JCam *k = &cams[c];
        char want[16];
        snprintf(want, sizeof want, "%d", 400101 + c);
        CHECK(!strcmp(k->id, want), "camera %d id %s", c, k->id);
        CHECK(k->K[0] > 7000 && k->K[0] < 11000 && k->K[2] > 1000 && k->K[2] < 1700 && k->K[5] > 1800 && k->K[5] < 2300,
              "native K: f %.1f cx %.1f cy %.1f", k->K[0], k->K[2], k->K[5]);
        CHECK(check_rot(k->R), "camera %s: R is not a rotation", k->id);
        double C[3], d2 = 0, hc[3] = {0, 0, 1000}, fw = 0;
        for (int i = 0; i < 3; i++) C[i] = -(k->R[i] * k->t[0] + k->R[3 + i] * k->t[1] + k->R[6 + i] * k->t[2]);
        for (int i = 0; i < 3; i++) d2 += (C[i] - hc[i]) * (C[i] - hc[i]);
        for (int i = 0; i < 3; i++) fw += k->R[6 + i] * (hc[i] - C[i]) / sqrt(d2);
        CHECK(fabs(sqrt(d2) - 1100) < 50, "camera %s %.1f mm from the head (want ~1100 mm)", k->id, sqrt(d2));
        CHECK(fw > 0.99, "camera %s does not look at the head (cos %.3f)", k->id, fw);
        snprintf(p, sizeof p, "%s/image/cam%.15s.zip", dec, k->id);
        CHECK((access(p, F_OK) == 0) == (c < TC), "%s: only the %d regular cameras have zips", p, TC);
    }
    // frame list: unpadded ids with gaps
    int64_t fid[16];
    int neutral[16];
    snprintf(p, sizeof p, "%s/frame_list.csv", dec);
    CHECK(read_frames(p, fid, neutral, 16) == TF, "%s: want %d frames", p, TF);
    int gap = 0;
    for (int k = 1; k < TF; k++) {
        CHECK(fid[k] > fid[k - 1], "ids increase");
        gap |= fid[k] - fid[k - 1] > 1;
    }
    CHECK(gap && neutral[0] && !neutral[TF - 1], "want gaps, a neutral first and a free-face last frame");
    // every archive: exact member names, STORED, no directory entries
    int drop = last ? 4 : -1;
    for (int c = 0; c < TC; c++) {
        const char *assets[5] = {"image", "foreground_masks", "segmentation_parts", "aux/dust3r", "aux/sapiens"};
        for (int a = 0; a < 5; a++) {
            ZipList l;
            snprintf(p, sizeof p, "%s/%s/cam%.15s.zip", dec, assets[a], cams[c].id);
            CHECK(zip_list(p, &l) == 0, "%s: unreadable, or a member not STORED", p);
            int want = TF - (c == drop);
            CHECK(l.n == want, "%s: %d members, want %d", p, l.n, want);
            for (int k = 0; k < want; k++) {
                if (a == 0)
                    avw_member_image(m, sizeof m, cams[c].id, fid[k]);
                else if (a == 1)
                    avw_member_mask(m, sizeof m, fid[k]);
                else if (a == 2)
                    avw_member_seg(m, sizeof m, cams[c].id, fid[k]);
                else
                    avw_member_npy(m, sizeof m, fid[k]);
                CHECK(!strcmp(l.names[k], m), "%s: member %d is '%s', want '%s'", p, k, l.names[k], m);
            }
        }
    }
    char want0[64];
    snprintf(want0, sizeof want0, "cam%s/%06" PRId64 ".avif", cams[0].id, fid[0]);
    avw_member_image(m, sizeof m, cams[0].id, fid[0]);
    CHECK(!strcmp(m, want0), "image member rule");
    {
        ZipList l;
        snprintf(p, sizeof p, "%s/background_image/background_image.zip", dec);
        CHECK(zip_list(p, &l) == 0 && l.n == TC, "%s", p);
        for (int c = 0; c < TC; c++) {
            snprintf(m, sizeof m, "%.15s.avif", cams[c].id);
            CHECK(!strcmp(l.names[c], m), "plate member %s, want %s", l.names[c], m);
        }
        snprintf(p, sizeof p, "%s/head_pose/head_pose.zip", dec);
        CHECK(zip_list(p, &l) == 0 && l.n == TF, "%s", p);
        for (int k = 0; k < TF; k++) {
            snprintf(m, sizeof m, "%06" PRId64 ".txt", fid[k]);
            CHECK(!strcmp(l.names[k], m), "pose member %s, want %s", l.names[k], m);
        }
    }
    // re-render frame k of camera c from the files' own cameras and poses: the lossless AVIF must match
    SynthIdentity id;
    synth_identity(&id, TSEED, subject);
    SynthHead head;
    SynthRender R;
    memset(&head, 0, sizeof head);
    memset(&R, 0, sizeof R);
    int checked = 0;
    for (int k = 0; k < TF; k += 2)
        for (int c = 0; c < TC; c += 5) {
            SynthFrame fr;
            synth_frame(&fr, TSEED, subject, (double)(fid[k] - fid[0]), neutral[k]);
            double Rh[9], th[3], Rf[9], tf[3], K[9], w2c[12];
            synth_head_pose(&fr, Rh, th);
            snprintf(p, sizeof p, "%s/head_pose/head_pose.zip", dec);
            CHECK(read_pose(p, fid[k], Rf, tf) == 0, "pose %" PRId64, fid[k]);
            CHECK(check_rot(Rf), "head pose R is a rotation");
            for (int i = 0; i < 3; i++) CHECK(fabs(tf[i] - 1000 * th[i]) < 1e-3, "head pose t in mm");
            for (int i = 0; i < 9; i++) CHECK(fabs(Rf[i] - Rh[i]) < 1e-8, "head pose R");
            image_camera(&cams[c], TW, TH, K, w2c);
            synth_head_build(&head, &id, fr.expr);
            synth_render(&R, &head, Rh, th, 1, w2c, K, TW, TH);
            int W = 0, H = 0, Wp = 0, Hp = 0, Wm = 0, Hm = 0;
            snprintf(p, sizeof p, "%s/background_image/background_image.zip", dec);
            snprintf(m, sizeof m, "%.15s.avif", cams[c].id);
            uint8_t *plate = zip_avif(p, m, &Wp, &Hp), ref[TW * TH * 3], mref[TW * TH];
            CHECK(plate && Wp == TW && Hp == TH, "plate %s decodes to %dx%d", m, Wp, Hp);
            uint8_t want_plate[TW * TH * 3];
            synth_plate(want_plate, TW, TH, TSEED, subject, c);
            CHECK(!memcmp(plate, want_plate, sizeof want_plate), "plate %s differs from the generator", m);
            synth_compose(&R, 0, plate, ref, mref);
            snprintf(p, sizeof p, "%s/image/cam%.15s.zip", dec, cams[c].id);
            avw_member_image(m, sizeof m, cams[c].id, fid[k]);
            uint8_t *img = zip_avif(p, m, &W, &H);
            CHECK(img && W == TW && H == TH, "%s %s decodes to %dx%d (want %dx%d: W x H)", p, m, W, H, TW, TH);
            int diff = 0;
            for (int i = 0; i < TW * TH * 3; i++) diff += img[i] != ref[i];
            CHECK(diff == 0, "%s: %d channel values differ from the re-render (lossless AVIF must be exact)", m, diff);
            snprintf(p, sizeof p, "%s/foreground_masks/cam%.15s.zip", dec, cams[c].id);
            avw_member_mask(m, sizeof m, fid[k]);
            uint8_t *mask = zip_avif(p, m, &Wm, &Hm);
            CHECK(mask && Wm == TW && Hm == TH, "mask %s", m);
            for (int i = 0; i < TW * TH; i++)
                CHECK(mask[3 * i] == mref[i], "mask pixel %d: %d, want %d", i, mask[3 * i], mref[i]);
            // the head centre (from the pose file) lands on the head; the top-left corner is background
            double u, v, hc[3] = {tf[0] / 1000, tf[1] / 1000, tf[2] / 1000};
            project(K, w2c, hc, &u, &v);
            CHECK(u > 0 && u < TW && v > 0 && v < TH, "head centre projects to (%.1f, %.1f)", u, v);
            int pi = (int)v * TW + (int)u;
            CHECK(mask[3 * pi] == 255, "mask at the head centre (%.1f, %.1f) is %d", u, v, mask[3 * pi]);
            CHECK(mask[0] == 0 && !memcmp(img, plate, 3), "corner: mask %d, image must equal the plate", mask[0]);
            // aux: the DUSt3R-like point at the head centre pixel lies on the head; the corner is unsure
            snprintf(p, sizeof p, "%s/aux/dust3r/cam%.15s.zip", dec, cams[c].id);
            avw_member_npy(m, sizeof m, fid[k]);
            size_t nb = 0;
            uint8_t *b = zip_read(p, m, &nb);
            const float *d = b ? npy_data(b, nb, "'shape': (64, 48, 4)") : NULL;
            CHECK(d, "%s %s: not a float32 (64, 48, 4) npy", p, m);
            double dist = 0;
            for (int i = 0; i < 3; i++) dist += (d[4 * pi + i] - tf[i]) * (d[4 * pi + i] - tf[i]);
            dist = sqrt(dist);
            CHECK(dist > 40 && dist < 140 && d[4 * pi + 3] > 0.5,
                  "dust3r point %.1f mm from the head centre, conf %.2f", dist, d[4 * pi + 3]);
            CHECK(d[3] < 0.2, "dust3r corner confidence %.2f", d[3]);
            free(b);
            snprintf(p, sizeof p, "%s/aux/sapiens/cam%.15s.zip", dec, cams[c].id);
            b = zip_read(p, m, &nb);
            d = b ? npy_data(b, nb, "'shape': (16, 12, 16)") : NULL;
            CHECK(d, "%s %s: not a float32 (16, 12, 16) npy", p, m);
            double sum = 0;
            int cell = ((int)v / 4) * 12 + (int)u / 4;
            for (int i = 0; i < 16; i++) sum += d[16 * cell + i];
            CHECK(sum > 0.5 && sum < 1 + 1e-5, "sapiens parts at the head centre sum to %.3f", sum);
            free(b), free(img), free(mask), free(plate);
            checked++;
        }
    synth_head_free(&head);
    synth_render_free(&R);
    CHECK(checked == 6, "checked %d images", checked);
    // every mask: 255 where the head centre (from the pose file) projects, 0 in the top-left corner
    for (int k = 0; k < TF; k++)
        for (int c = 0; c < TC; c++) {
            if (c == drop && k == TF - 1) continue;
            double Rf[9], tf[3], K[9], w2c[12], u, v;
            snprintf(p, sizeof p, "%s/head_pose/head_pose.zip", dec);
            CHECK(read_pose(p, fid[k], Rf, tf) == 0, "pose %" PRId64, fid[k]);
            double hc[3] = {tf[0] / 1000, tf[1] / 1000, tf[2] / 1000};
            image_camera(&cams[c], TW, TH, K, w2c);
            project(K, w2c, hc, &u, &v);
            int W = 0, H = 0;
            snprintf(p, sizeof p, "%s/foreground_masks/cam%.15s.zip", dec, cams[c].id);
            avw_member_mask(m, sizeof m, fid[k]);
            uint8_t *mask = zip_avif(p, m, &W, &H);
            CHECK(mask && W == TW && H == TH && u > 0 && u < TW && v > 0 && v < TH, "mask %s %s, centre (%.1f, %.1f)",
                  p, m, u, v);
            int pi = (int)v * TW + (int)u;
            CHECK(mask[3 * pi] == 255 && mask[0] == 0,
                  "%s %s: mask %d at the head centre (%.1f, %.1f), %d in the corner", p, m, mask[3 * pi], u, v,
                  mask[0]);
            free(mask);
        }
    // expression codes: the pickle (via Python) holds code = M·expr for every frame
    char raw[1400], cmd[4000];
    snprintf(p, sizeof p, "%s/" AVW_EXPR_PKL, dec);
    snprintf(raw, sizeof raw, "%s/codes_%d.raw", test_tmpdir(), subject);
    const char *py = getenv("AVAT3R_PYTHON") ? getenv("AVAT3R_PYTHON") : "/usr/bin/python3";
    snprintf(cmd, sizeof cmd,
             "'%s' -c \"import pickle,sys,numpy as np; d=pickle.load(open(sys.argv[1],'rb')); "
             "assert all(type(k) is int for k in d) and all(isinstance(v,np.ndarray) and v.dtype==np.float32 and "
             "v.shape==(256,) for v in d.values()); "
             "open(sys.argv[2],'wb').write(b''.join(np.int64(k).tobytes()+d[k].astype('<f4').tobytes() for k in "
             "sorted(d)))\" '%s' '%s'",
             py, p, raw);
    CHECK(test_system(cmd) == 0, "reading %s with Python", p);
    size_t nr = 0;
    char *rb = read_all(raw, &nr);
    CHECK(rb && nr == (size_t)TF * (8 + 4 * SYNTH_CODE_DIM), "codes: %zu bytes", nr);
    for (int k = 0; k < TF; k++) {
        const char *rec = rb + (size_t)k * (8 + 4 * SYNTH_CODE_DIM);
        int64_t f;
        float code[SYNTH_CODE_DIM], want[SYNTH_CODE_DIM];
        memcpy(&f, rec, 8);
        memcpy(code, rec + 8, sizeof code);
        SynthFrame fr;
        synth_frame(&fr, TSEED, subject, (double)(fid[k] - fid[0]), neutral[k]);
        for (int i = 0; i < SYNTH_CODE_DIM; i++) {
            double s = 0;
            for (int j = 0; j < SYNTH_NEXPR; j++) s += synth_code_matrix(i, j) * fr.expr[j];
            want[i] = (float)s;
        }
        CHECK(f == fid[k], "code key %" PRId64 ", want %" PRId64, f, fid[k]);
        CHECK(!memcmp(code, want, sizeof code), "code of frame %" PRId64 " is not M·expr", f);
    }
    free(rb);
    return 0;
}

static int test_synth_capture(void) {
    char out[1024], p[1200];
    snprintf(out, sizeof out, "%s/synth_a", test_tmpdir());
    CHECK(run_synth(out, "7") == 0, "avat3r synth failed");
    snprintf(p, sizeof p, "%s/256_ids.csv", out);
    char *ids = read_all(p, NULL);
    CHECK(ids && !strncmp(ids, "mcd,sid,mct\n", 12), "256_ids.csv header");
    char mcd[2][16], sid[2][16], mct[2][16];
    CHECK(sscanf(ids + 12, "%15[^,],%15[^,],%15[^\n]\n%15[^,],%15[^,],%15[^\n]", mcd[0], sid[0], mct[0], mcd[1], sid[1],
                 mct[1]) == 6,
          "256_ids.csv rows: %s", ids);
    free(ids);
    for (int s = 0; s < 2; s++) {
        char name[128];
        snprintf(name, sizeof name, "%s--%s--%s", mcd[s], mct[s], sid[s]); // note the order: mcd, mct, sid
        CHECK(strlen(mcd[s]) == 8 && strlen(mct[s]) == 4 && strlen(sid[s]) == 6, "ids %s %s %s", mcd[s], mct[s],
              sid[s]);
        if (check_capture(out, name, s, s == 1)) return 1;
    }
    return 0;
}

static int test_synth_deterministic(void) {
    char a[1024], b[1024], c[1024], cmd[4000], p[1200];
    snprintf(a, sizeof a, "%s/synth_d1", test_tmpdir());
    snprintf(b, sizeof b, "%s/synth_d2", test_tmpdir());
    snprintf(c, sizeof c, "%s/synth_d3", test_tmpdir());
    CHECK(run_synth(a, "11") == 0 && run_synth(b, "11") == 0 && run_synth(c, "12") == 0, "avat3r synth failed");
    snprintf(cmd, sizeof cmd, "diff -r '%s' '%s'", a, b);
    CHECK(test_system(cmd) == 0, "two runs with one seed differ");
    // another seed: other identities, other pixels
    SynthIdentity i1, i2;
    synth_identity(&i1, 11, 0);
    synth_identity(&i2, 12, 0);
    CHECK(memcmp(&i1, &i2, sizeof i1) != 0, "seeds 11 and 12 give the same identity");
    snprintf(p, sizeof p, "%s/256_ids.csv", c);
    char *ids = read_all(p, NULL), mcd[16], sid[16], mct[16];
    CHECK(ids && sscanf(ids + 12, "%15[^,],%15[^,],%15[^\n]", mcd, sid, mct) == 3, "256_ids.csv");
    free(ids);
    snprintf(
        cmd, sizeof cmd,
        "cmp -s '%s/%s--%s--%s/decoder/image/cam400101.zip' \"$(ls -d '%s'/2*--*--*001)/decoder/image/cam400101.zip\"",
        c, mcd, mct, sid, a);
    CHECK(system(cmd) != 0, "seed 12's images equal seed 11's");
    // and nothing half-written is left behind
    snprintf(cmd, sizeof cmd, "test -z \"$(find '%s' -name '*.tmp*' -o -name '.*.old.*')\"", a);
    CHECK(test_system(cmd) == 0, "temporary files left in %s", a);
    return 0;
}

// Expressions do what they say: part coverage in a frontal view, and the code is linear.
static double coverage(const SynthRender *R, int part) {
    double s = 0;
    for (int i = 0; i < R->W * R->H; i++) s += R->parts[(size_t)i * SYNTH_NPARTS + part];
    return s;
}
static double centroid_v(const SynthRender *R, int part) {
    double s = 0, sv = 0;
    for (int i = 0; i < R->W * R->H; i++)
        s += R->parts[(size_t)i * SYNTH_NPARTS + part],
            sv += (i / R->W + 0.5) * R->parts[(size_t)i * SYNTH_NPARTS + part];
    return sv / fmax(s, 1e-9);
}

static int test_synth_expressions(void) {
    SynthIdentity id;
    synth_identity(&id, 3, 0);
    id.hair_len = 0.1f; // short hair: the ears show
    const int W = 96, H = 144;
    double K[9] = {9000.0 * W / 2668, 0, W / 2.0, 0, 9000.0 * H / 4096, H / 2.0 + 4, 0, 0, 1};
    double w2c[12] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0.1}; // at world (0, 0, -0.1) m, looking along +z
    SynthHead h;
    SynthRender R;
    memset(&h, 0, sizeof h);
    memset(&R, 0, sizeof R);
    SynthFrame fr;
    memset(&fr, 0, sizeof fr);
    double Rh[9], th[3];
    synth_head_pose(&fr, Rh, th);
    enum { NEUTRAL, JAW, SMILE, PUCKER, BROW, BLINK, TONGUE, NCASE };
    float ex[NCASE][SYNTH_NEXPR] = {{0}};
    ex[JAW][SX_JAW_OPEN] = 1, ex[SMILE][SX_SMILE] = 1, ex[PUCKER][SX_PUCKER] = 1, ex[BROW][SX_BROW_RAISE] = 1;
    ex[BLINK][SX_BLINK] = 1, ex[TONGUE][SX_TONGUE_OUT] = 1, ex[TONGUE][SX_JAW_OPEN] = 0.6f;
    double cov[NCASE][SYNTH_NPARTS], browv[NCASE], lipz[NCASE], lipw[NCASE];
    int ng = -1;
    for (int e = 0; e < NCASE; e++) {
        synth_head_build(&h, &id, ex[e]);
        CHECK(ng < 0 || h.n == ng, "the Gaussian count changes with the expression (%d vs %d)", h.n, ng);
        ng = h.n;
        int per[SYNTH_NPARTS] = {0};
        lipz[e] = 0, lipw[e] = 0;
        int nl = 0;
        for (int i = 0; i < h.n; i++) {
            per[h.part[i]]++;
            if (h.part[i] == SYNTH_PART_UPPER_LIP)
                lipz[e] += h.mean[3 * i + 2], nl++, lipw[e] = fmax(lipw[e], fabs(h.mean[3 * i]));
        }
        lipz[e] /= nl;
        for (int k = 0; k < SYNTH_NPARTS; k++) CHECK(per[k] > 0, "no Gaussians for part %s", synth_part_names[k]);
        synth_render(&R, &h, Rh, th, 1, w2c, K, W, H);
        for (int k = 0; k < SYNTH_NPARTS; k++) cov[e][k] = coverage(&R, k);
        browv[e] = centroid_v(&R, SYNTH_PART_BROW);
    }
    for (int k = 0; k < SYNTH_NPARTS; k++)
        printf("    %-12s neutral %7.1f  jaw %7.1f  blink %7.1f  tongue %7.1f px\n", synth_part_names[k],
               cov[NEUTRAL][k], cov[JAW][k], cov[BLINK][k], cov[TONGUE][k]);
    static const int seen[] = {SYNTH_PART_SKIN, SYNTH_PART_NOSE,      SYNTH_PART_EAR,       SYNTH_PART_NECK,
                               SYNTH_PART_HAIR, SYNTH_PART_BROW,      SYNTH_PART_EYELID,    SYNTH_PART_SCLERA,
                               SYNTH_PART_IRIS, SYNTH_PART_UPPER_LIP, SYNTH_PART_LOWER_LIP, SYNTH_PART_CLOTHES};
    for (size_t i = 0; i < sizeof seen / sizeof seen[0]; i++)
        CHECK(cov[NEUTRAL][seen[i]] > 1, "%s not visible in a frontal neutral view", synth_part_names[seen[i]]);
    double inner_n = cov[NEUTRAL][SYNTH_PART_UPPER_TEETH] + cov[NEUTRAL][SYNTH_PART_LOWER_TEETH] +
                     cov[NEUTRAL][SYNTH_PART_MOUTH] + cov[NEUTRAL][SYNTH_PART_TONGUE];
    CHECK(inner_n < 1, "closed mouth shows %.1f px of teeth/cavity/tongue", inner_n);
    CHECK(cov[JAW][SYNTH_PART_UPPER_TEETH] > 3 && cov[JAW][SYNTH_PART_MOUTH] > 5,
          "open jaw: teeth %.1f, cavity %.1f px", cov[JAW][SYNTH_PART_UPPER_TEETH], cov[JAW][SYNTH_PART_MOUTH]);
    CHECK(cov[TONGUE][SYNTH_PART_TONGUE] > 10 && cov[TONGUE][SYNTH_PART_TONGUE] > 3 * cov[JAW][SYNTH_PART_TONGUE] + 1,
          "tongue out: %.1f px (jaw only: %.1f)", cov[TONGUE][SYNTH_PART_TONGUE], cov[JAW][SYNTH_PART_TONGUE]);
    double eye_n = cov[NEUTRAL][SYNTH_PART_SCLERA] + cov[NEUTRAL][SYNTH_PART_IRIS];
    double eye_b = cov[BLINK][SYNTH_PART_SCLERA] + cov[BLINK][SYNTH_PART_IRIS];
    CHECK(eye_b < 0.05 * eye_n, "blink leaves %.1f of %.1f px of eye", eye_b, eye_n);
    CHECK(browv[BROW] < browv[NEUTRAL] - 0.8, "brow raise moves the brows from v %.2f to %.2f", browv[NEUTRAL],
          browv[BROW]);
    CHECK(lipz[PUCKER] > lipz[NEUTRAL] + 0.004, "pucker pushes the lips forward (%.4f -> %.4f m)", lipz[NEUTRAL],
          lipz[PUCKER]);
    CHECK(lipw[SMILE] > lipw[NEUTRAL] * 1.15, "smile widens the mouth (%.4f -> %.4f m)", lipw[NEUTRAL], lipw[SMILE]);
    CHECK(lipw[PUCKER] < lipw[NEUTRAL] * 0.8, "pucker narrows the mouth");
    // the code is a fixed linear map, zero for the neutral face
    float c1[SYNTH_CODE_DIM], c2[SYNTH_CODE_DIM], c3[SYNTH_CODE_DIM], mix[SYNTH_NEXPR];
    for (int j = 0; j < SYNTH_NEXPR; j++) mix[j] = 0.5f * ex[JAW][j] + 0.25f * ex[BLINK][j];
    synth_expr_code(ex[JAW], c1);
    synth_expr_code(ex[BLINK], c2);
    synth_expr_code(mix, c3);
    double nz = 0;
    for (int i = 0; i < SYNTH_CODE_DIM; i++) {
        CHECK(fabs(c3[i] - (0.5 * c1[i] + 0.25 * c2[i])) < 1e-6, "code is not linear at %d", i);
        nz += fabs(c1[i]);
    }
    CHECK(nz > 10, "codes are (nearly) zero");
    synth_expr_code(ex[NEUTRAL], c1);
    for (int i = 0; i < SYNTH_CODE_DIM; i++) CHECK(c1[i] == 0, "neutral code is not zero");
    synth_head_free(&h);
    synth_render_free(&R);
    return 0;
}

// The zip writer's ZIP64 records (forced), read back by libzip and, where present, Python's zipfile.
static int test_synth_zip64(void) {
    char p[1024], cmd[3000];
    for (int force = 0; force <= 1; force++) {
        snprintf(p, sizeof p, "%s/z%d.zip", test_tmpdir(), force);
        AvwZip z;
        avw_zip_open(&z, p);
        z.force_zip64 = force;
        avw_zip_add(&z, "cam400101/020000.avif", "hello", 5);
        avw_zip_add(&z, "020001.txt", "", 0);
        avw_zip_add(&z, "x.bin", "\x00\x01\x02", 3);
        avw_zip_close(&z);
        ZipList l;
        CHECK(zip_list(p, &l) == 0 && l.n == 3, "%s: libzip lists %d members", p, l.n);
        CHECK(!strcmp(l.names[0], "cam400101/020000.avif") && !strcmp(l.names[2], "x.bin"), "names");
        size_t n = 0;
        uint8_t *b = zip_read(p, "cam400101/020000.avif", &n);
        CHECK(b && n == 5 && !memcmp(b, "hello", 5), "member data");
        free(b);
        b = zip_read(p, "x.bin", &n);
        CHECK(b && n == 3 && !memcmp(b, "\x00\x01\x02", 3), "binary member data");
        free(b);
        const char *py = getenv("AVAT3R_PYTHON") ? getenv("AVAT3R_PYTHON") : "/usr/bin/python3";
        if (access(py, X_OK) == 0) {
            snprintf(cmd, sizeof cmd,
                     "'%s' -c \"import zipfile,sys; z=zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; "
                     "assert [i.filename for i in z.infolist()]==['cam400101/020000.avif','020001.txt','x.bin']; "
                     "assert all(i.compress_type==0 for i in z.infolist()); assert "
                     "z.read('cam400101/020000.avif')==b'hello'\" '%s'",
                     py, p);
            CHECK(test_system(cmd) == 0, "Python's zipfile rejects %s", p);
        }
    }
    return 0;
}

const TestCase synth_tests[] = {
    {"synth_expressions", test_synth_expressions},
    {"synth_zip64", test_synth_zip64},
    {"synth_capture", test_synth_capture},
    {"synth_deterministic", test_synth_deterministic},
    {NULL, NULL},
};
