// cmd_synth.c — `avat3r synth`: synthetic captures in the exact ava256 layout (DESIGN.md §7,
// shared/reference/ava256_format.md §10), rendered with the project's own rasterizer.
#include <cjson/cJSON.h>
#include <ftw.h>
#include <glob.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "../common/rng.h"
#include "../common/timer.h"
#include "../common/util.h"
#include "ava256_write.h"
#include "cli.h"
#include "synth_head.h"
#include "png_write.h"

int cmd_synth(int argc, char **argv);

static const char *USAGE =
    "--out DIR [--subjects N] [--cameras C] [--frames F] [--size WxH] [--seed S]\n"
    "       [--lossy] [--quantizer Q] [--speed 0..10] [--sapiens-size WxH] [--no-aux] [--no-seg] [--no-drop]\n"
    "       [--threads N] [--python PATH] [--preview FILE.png]\n"
    "  Writes N captures DIR/{mcd}--{mct}--{sid}/decoder/... in the ava256 layout plus DIR/256_ids.csv:\n"
    "  C dome cameras (+1 calibrated camera without data), F frames with id gaps, images W x H (default\n"
    "  167x256, portrait like the native 2668x4096; K in the JSON is native), lossless AVIF unless --lossy\n"
    "  (images and plates 4:2:0 at quantizer Q, default 30; masks stay lossless). Aux maps (decoder/aux/: DUSt3R-like "
    "point maps, Sapiens-like part\n"
    "  maps at --sapiens-size, default W/4 x H/4) unless --no-aux. One (camera, frame) of the last capture is\n"
    "  dropped from every per-camera zip unless --no-drop. Deterministic for a seed.\n"
    "  Defaults: --subjects 2 --cameras 16 --frames 20 --seed 1. The expression-code pickle needs Python 3\n"
    "  with numpy (--python, or AVAT3R_PYTHON; default /usr/bin/python3).";

typedef struct {
    const char *out, *python, *preview;
    char script[4200]; // tools/synth_write_pickle.py
    int subjects, cameras, frames, W, H, sw, sh, aux, seg, drop, threads;
    uint64_t seed;
    AvwAvifOpts avif;
} SynthOpts;

static const char *source_root(void) {
    const char *r = getenv("AVAT3R_SOURCE_ROOT");
#ifdef AVAT3R_SOURCE_ROOT_DEFAULT
    if (!r) r = AVAT3R_SOURCE_ROOT_DEFAULT;
#endif
    return r ? r : ".";
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}
static void rm_rf(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS) != 0) FATAL("could not remove %s", path);
}

static void path_join(char *buf, size_t n, const char *a, const char *b) {
    if (snprintf(buf, n, "%s/%s", a, b) >= (int)n) FATAL("path too long: %s/%s", a, b);
}

// Capture naming: dates one day apart, times spread over the day, sid = 3 seeded letters + number.
static void capture_ids(uint64_t seed, int s, char mcd[16], char mct[8], char sid[16]) {
    snprintf(mcd, 16, "%04d%02d%02d", 2024 + s / 336, 1 + (s / 28) % 12, 1 + s % 28);
    int m = 9 * 60 + (s * 37) % 600;
    snprintf(mct, 8, "%02d%02d", m / 60, m % 60);
    Rng r = rng_make(seed, 0x51D00000ull + (uint64_t)s);
    snprintf(sid, 16, "%c%c%c%03d", 'A' + (int)rng_next_below(&r, 26), 'A' + (int)rng_next_below(&r, 26),
             'A' + (int)rng_next_below(&r, 26), (s + 1) % 1000);
}

// Frame ids: consecutive at 30 fps with seeded gaps of 1..3 missing ids (at least one gap when F >= 3).
static void frame_ids(uint64_t seed, int s, int F, int64_t *fid) {
    Rng r = rng_make(seed, 0xF0000000ull + (uint64_t)s);
    fid[0] = 20000 + 1000 * (s % 50);
    for (int k = 1; k < F; k++)
        fid[k] = fid[k - 1] + 1 + (rng_next_uniform(&r) < 0.3f ? 1 + (int64_t)rng_next_below(&r, 3) : 0);
    if (F >= 3 && fid[F - 1] - fid[0] == F - 1) fid[F - 1] += 2; // at least one gap for readers to meet
}

static int n_neutral(int F) { return F / 4 > 1 ? F / 4 : 1; }

typedef struct { // one camera's encoded outputs of one frame
    uint8_t *img, *mask, *seg, *dust, *sap;
    size_t n_img, n_mask, n_seg, n_dust, n_sap;
} CamOut;

static void write_identity_json(const char *path, const SynthIdentity *id) {
    cJSON *o = cJSON_CreateObject();
#define NUM(k) cJSON_AddNumberToObject(o, #k, id->k)
#define VEC(k) cJSON_AddItemToObject(o, #k, cJSON_CreateFloatArray(id->k, 3))
    VEC(shape), NUM(jaw_taper), NUM(chin), NUM(nose_len), NUM(nose_width), NUM(nose_depth), NUM(lip_full);
    NUM(mouth_width), NUM(ear_size), NUM(neck_width), NUM(eye_gap), NUM(hair_len), NUM(hair_volume), NUM(hairline);
    VEC(skin), VEC(lip), VEC(hair), VEC(brow), VEC(iris), VEC(clothes);
#undef NUM
#undef VEC
    cli_write_json(path, o);
    cJSON_Delete(o);
}

// The contact sheet: up to 4 captures x 4 frames (rows) by up to 8 cameras (columns).
typedef struct {
    uint8_t *px;
    int cols, rows, W, H;
} Sheet;

static void write_capture(const SynthOpts *o, int s, const char *mcd, const char *mct, const char *sid, Sheet *sheet) {
    const int C = o->cameras, F = o->frames, W = o->W, H = o->H;
    const size_t px = (size_t)W * H;
    char name[128], final[4096], tmp[4096], dec[4200], path[4400], member[256];
    avw_capture_name(name, sizeof name, mcd, mct, sid);
    path_join(final, sizeof final, o->out, name);
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp.%d", o->out, name, (int)getpid());
    for (int i = 0; i < 2; i++) { // leftovers of an interrupted run of this capture
        glob_t g;
        snprintf(path, sizeof path, "%s/.%s.%s.*", o->out, name, i ? "old" : "tmp");
        if (glob(path, 0, NULL, &g) == 0)
            for (size_t j = 0; j < g.gl_pathc; j++) rm_rf(g.gl_pathv[j]);
        globfree(&g);
    }
    path_join(dec, sizeof dec, tmp, "decoder");
    static const char *dirs[] = {"image",     "foreground_masks", "segmentation_parts", "background_image",
                                 "head_pose", "expression_codes", "aux/dust3r",         "aux/sapiens"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        if (i == 2 && !o->seg) continue;
        if (i >= 6 && !o->aux) continue;
        path_join(path, sizeof path, dec, dirs[i]);
        avw_mkdirs(path);
    }
    double t0 = time_now_s();
    printf("synth: capture %d/%d %s: %d cameras (+1 without data), %d frames, %dx%d\n", s + 1, o->subjects, name, C, F,
           W, H);
    fflush(stdout);

    SynthIdentity id;
    synth_identity(&id, o->seed, s);
    AvwCamera *cams = (AvwCamera *)mallocCheck(sizeof(AvwCamera) * (C + 1));
    synth_dome(cams, C + 1, o->seed, s);
    path_join(path, sizeof path, dec, "camera_calibration.json");
    avw_write_calibration(path, cams, C + 1);
    double *K = (double *)mallocCheck(sizeof(double) * 9 * C), *w2c = (double *)mallocCheck(sizeof(double) * 12 * C);
    for (int c = 0; c < C; c++) synth_camera_for_image(&cams[c], W, H, K + 9 * c, w2c + 12 * c);

    int64_t *fid = (int64_t *)mallocCheck(sizeof(int64_t) * F);
    frame_ids(o->seed, s, F, fid);
    const char **seg = (const char **)mallocCheck(sizeof(char *) * F);
    int nn = n_neutral(F);
    for (int k = 0; k < F; k++) seg[k] = k < nn ? "EXP_neutral_peak" : "EXP_free_face";
    path_join(path, sizeof path, dec, "frame_list.csv");
    avw_write_frame_list(path, seg, fid, F);

    // the dropped member (a "dropped frame"): last capture, the 5th camera (or the last), last frame
    int drop_c = (o->drop && s == o->subjects - 1 && C >= 2 && F >= 2) ? (C > 4 ? 4 : C - 1) : -1;

    // plates, and the zips that grow frame by frame
    uint8_t *plates = (uint8_t *)mallocCheck(px * 3 * C);
    AvwZip zp, *zi = (AvwZip *)callocCheck(C, sizeof(AvwZip)), *zm = (AvwZip *)callocCheck(C, sizeof(AvwZip));
    AvwZip *zs = (AvwZip *)callocCheck(C, sizeof(AvwZip)), *zd = (AvwZip *)callocCheck(C, sizeof(AvwZip));
    AvwZip *za = (AvwZip *)callocCheck(C, sizeof(AvwZip)), zh;
    path_join(path, sizeof path, dec, "background_image/background_image.zip");
    avw_zip_open(&zp, path);
    for (int c = 0; c < C; c++) {
        const char *cid = cams[c].id;
        synth_plate(plates + px * 3 * c, W, H, o->seed, s, c);
        size_t n;
        uint8_t *b = avw_avif_rgb8(plates + px * 3 * c, W, H, &o->avif, &n);
        avw_member_plate(member, sizeof member, cid);
        avw_zip_add(&zp, member, b, n);
        free(b);
        snprintf(path, sizeof path, "%s/image/cam%s.zip", dec, cid);
        avw_zip_open(&zi[c], path);
        snprintf(path, sizeof path, "%s/foreground_masks/cam%s.zip", dec, cid);
        avw_zip_open(&zm[c], path);
        if (o->seg) {
            snprintf(path, sizeof path, "%s/segmentation_parts/cam%s.zip", dec, cid);
            avw_zip_open(&zs[c], path);
        }
        if (o->aux) {
            snprintf(path, sizeof path, "%s/aux/dust3r/cam%s.zip", dec, cid);
            avw_zip_open(&zd[c], path);
            snprintf(path, sizeof path, "%s/aux/sapiens/cam%s.zip", dec, cid);
            avw_zip_open(&za[c], path);
        }
    }
    avw_zip_close(&zp);
    path_join(path, sizeof path, dec, "head_pose/head_pose.zip");
    avw_zip_open(&zh, path);

    float *codes = (float *)mallocCheck(sizeof(float) * SYNTH_CODE_DIM * F);
    size_t pcap = 256 + (size_t)F * 256;
    char *params = (char *)mallocCheck(pcap);
    size_t plen = (size_t)snprintf(params, pcap, "frame_id,seg_id");
    for (int j = 0; j < SYNTH_NEXPR; j++)
        plen += (size_t)snprintf(params + plen, pcap - plen, ",%s", synth_expr_names[j]);
    plen += (size_t)snprintf(params + plen, pcap - plen, ",yaw,pitch,roll,drift_x,drift_y,drift_z\n");

    SynthHead head;
    SynthRender R;
    memset(&head, 0, sizeof head);
    memset(&R, 0, sizeof R);
    CamOut *co = (CamOut *)callocCheck(C, sizeof(CamOut));
    int *colmap = (int *)mallocCheck(sizeof(int) * C); // contact-sheet column of each camera, or -1
    for (int c = 0; c < C; c++) colmap[c] = -1;
    for (int j = 0; sheet && j < sheet->cols; j++) colmap[(long)j * C / sheet->cols] = j;
    int every = F / 10 > 1 ? F / 10 : 1;
    for (int k = 0; k < F; k++) {
        double tf = time_now_s();
        SynthFrame fr;
        synth_frame(&fr, o->seed, s, (double)(fid[k] - fid[0]), k < nn);
        synth_expr_code(fr.expr, codes + (size_t)SYNTH_CODE_DIM * k);
        plen += (size_t)snprintf(params + plen, pcap - plen, "%" PRId64 ",%s", fid[k], seg[k]);
        for (int j = 0; j < SYNTH_NEXPR; j++) plen += (size_t)snprintf(params + plen, pcap - plen, ",%.6g", fr.expr[j]);
        plen += (size_t)snprintf(params + plen, pcap - plen, ",%.6g,%.6g,%.6g,%.6g,%.6g,%.6g\n", fr.yaw, fr.pitch,
                                 fr.roll, fr.drift[0], fr.drift[1], fr.drift[2]);
        double Rh[9], th[3], th_mm[3];
        synth_head_pose(&fr, Rh, th);
        for (int i = 0; i < 3; i++) th_mm[i] = th[i] * 1000;
        char pose[512];
        int pl = avw_head_pose_text(pose, sizeof pose, Rh, th_mm);
        avw_member_pose(member, sizeof member, fid[k]);
        avw_zip_add(&zh, member, pose, (size_t)pl);

        synth_head_build(&head, &id, fr.expr);
        synth_render(&R, &head, Rh, th, C, w2c, K, W, H);
        int row = -1, nf = F < 4 ? F : 4; // contact-sheet row of this frame, if any
        for (int j = 0; sheet && s < 4 && j < nf; j++)
            if ((long)j * F / nf == k) row = s * nf + j;
#pragma omp parallel for schedule(dynamic, 1)
        for (int c = 0; c < C; c++) {
            CamOut *q = &co[c];
            uint8_t *rgb = (uint8_t *)mallocCheck(px * 3), *mask = (uint8_t *)mallocCheck(px);
            synth_compose(&R, c, plates + px * 3 * c, rgb, mask);
            q->img = avw_avif_rgb8(rgb, W, H, &o->avif, &q->n_img);
            AvwAvifOpts lossless = o->avif; // masks stay exact (and tiny) even with --lossy
            lossless.lossy = 0;
            q->mask = avw_avif_gray8(mask, W, H, &lossless, &q->n_mask);
            if (row >= 0 && colmap[c] >= 0)
                for (int y = 0; y < H; y++)
                    memcpy(sheet->px + (((size_t)row * H + y) * sheet->cols * W + (size_t)colmap[c] * W) * 3,
                           rgb + (size_t)y * W * 3, (size_t)W * 3);
            if (o->seg) {
                synth_segmentation(&R, c, mask); // (reuses the mask buffer)
                q->seg = avw_png_gray8(mask, W, H, &q->n_seg);
            }
            if (o->aux) {
                float *d = (float *)mallocCheck(sizeof(float) * px * 4);
                synth_dust3r(&R, c, w2c + 12 * c, K + 9 * c, o->seed, s, c, k, d);
                int64_t shd[3] = {H, W, 4};
                q->dust = avw_npy_f32(d, shd, 3, &q->n_dust);
                free(d);
                float *a = (float *)mallocCheck(sizeof(float) * (size_t)o->sw * o->sh * SYNTH_NPARTS);
                synth_sapiens(&R, c, o->sw, o->sh, a);
                int64_t sha[3] = {o->sh, o->sw, SYNTH_NPARTS};
                q->sap = avw_npy_f32(a, sha, 3, &q->n_sap);
                free(a);
            }
            free(rgb), free(mask);
        }
        for (int c = 0; c < C; c++) { // zips in camera order: deterministic
            CamOut *q = &co[c];
            if (!(c == drop_c && k == F - 1)) {
                const char *cid = cams[c].id;
                avw_member_image(member, sizeof member, cid, fid[k]);
                avw_zip_add(&zi[c], member, q->img, q->n_img);
                avw_member_mask(member, sizeof member, fid[k]);
                avw_zip_add(&zm[c], member, q->mask, q->n_mask);
                if (o->seg) {
                    avw_member_seg(member, sizeof member, cid, fid[k]);
                    avw_zip_add(&zs[c], member, q->seg, q->n_seg);
                }
                if (o->aux) {
                    avw_member_npy(member, sizeof member, fid[k]);
                    avw_zip_add(&zd[c], member, q->dust, q->n_dust);
                    avw_zip_add(&za[c], member, q->sap, q->n_sap);
                }
            }
            free(q->img), free(q->mask), free(q->seg), free(q->dust), free(q->sap);
            memset(q, 0, sizeof *q);
        }
        if ((k + 1) % every == 0 || k == F - 1) {
            printf("  frame %d/%d (id %" PRId64 ", %s): %d Gaussians, %.2f s\n", k + 1, F, fid[k], seg[k], head.n,
                   time_now_s() - tf);
            fflush(stdout);
        }
    }
    for (int c = 0; c < C; c++) {
        avw_zip_close(&zi[c]);
        avw_zip_close(&zm[c]);
        if (o->seg) avw_zip_close(&zs[c]);
        if (o->aux) avw_zip_close(&zd[c]), avw_zip_close(&za[c]);
    }
    avw_zip_close(&zh);

    path_join(path, sizeof path, dec, AVW_EXPR_PKL);
    avw_write_codes_pickle(o->python, o->script, path, fid, codes, F, SYNTH_CODE_DIM);

    if (o->aux) {
        AtomicFile af;
        path_join(path, sizeof path, dec, "aux/sapiens/channels.txt");
        atomicOpen(&af, path);
        for (int k = 0; k < SYNTH_NPARTS; k++) fprintf(af.f, "%s\n", synth_part_names[k]);
        atomicClose(&af);
        path_join(path, sizeof path, dec, "aux/synth_params.csv");
        atomicOpen(&af, path);
        fwriteCheck(params, 1, plen, af.f);
        atomicClose(&af);
        path_join(path, sizeof path, dec, "aux/synth_identity.json");
        write_identity_json(path, &id);
    }

    // publish: the capture appears under its final name complete or not at all
    char old[4200];
    snprintf(old, sizeof old, "%s/.%s.old.%d", o->out, name, (int)getpid());
    struct stat st;
    if (lstat(final, &st) == 0 && rename(final, old) != 0) FATAL("could not move the old %s aside", final);
    if (rename(tmp, final) != 0) FATAL("could not rename %s to %s", tmp, final);
    rm_rf(old);
    printf("synth: wrote %s (%.2f s)%s\n", final, time_now_s() - t0,
           drop_c >= 0 ? "; dropped one member per per-camera zip (camera index 4 or last, last frame)" : "");
    if (drop_c >= 0) printf("  dropped: cam%s frame %" PRId64 "\n", cams[drop_c].id, fid[F - 1]);

    synth_head_free(&head);
    synth_render_free(&R);
    free(co), free(colmap), free(cams), free(K), free(w2c), free(fid), free(seg), free(plates), free(codes),
        free(params);
    free(zi), free(zm), free(zs), free(zd), free(za);
}

static int parse_size(const char *s, int *W, int *H) {
    return sscanf(s, "%dx%d", W, H) == 2 && *W >= 1 && *H >= 1 && *W <= 16384 && *H <= 16384 ? 0 : -1;
}

int cmd_synth(int argc, char **argv) {
    SynthOpts o;
    memset(&o, 0, sizeof o);
    o.subjects = 2, o.cameras = 16, o.frames = 20, o.W = 167, o.H = 256, o.seed = 1;
    o.aux = 1, o.seg = 1, o.drop = 1;
    o.avif.quantizer = 30, o.avif.speed = 8;
    o.python = getenv("AVAT3R_PYTHON") ? getenv("AVAT3R_PYTHON") : "/usr/bin/python3";
    const char *sap = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: avat3r synth %s\n", USAGE);
            return 0;
        } else if (!strcmp(a, "--out") && has)
            o.out = argv[++i];
        else if (!strcmp(a, "--subjects") && has)
            o.subjects = atoi(argv[++i]);
        else if (!strcmp(a, "--cameras") && has)
            o.cameras = atoi(argv[++i]);
        else if (!strcmp(a, "--frames") && has)
            o.frames = atoi(argv[++i]);
        else if (!strcmp(a, "--size") && has) {
            if (parse_size(argv[++i], &o.W, &o.H)) o.W = 0;
        } else if (!strcmp(a, "--sapiens-size") && has)
            sap = argv[++i];
        else if (!strcmp(a, "--seed") && has)
            o.seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--lossy"))
            o.avif.lossy = 1;
        else if (!strcmp(a, "--quantizer") && has)
            o.avif.quantizer = atoi(argv[++i]);
        else if (!strcmp(a, "--speed") && has)
            o.avif.speed = atoi(argv[++i]);
        else if (!strcmp(a, "--no-aux"))
            o.aux = 0;
        else if (!strcmp(a, "--no-seg"))
            o.seg = 0;
        else if (!strcmp(a, "--no-drop"))
            o.drop = 0;
        else if (!strcmp(a, "--threads") && has)
            o.threads = atoi(argv[++i]);
        else if (!strcmp(a, "--python") && has)
            o.python = argv[++i];
        else if (!strcmp(a, "--preview") && has)
            o.preview = argv[++i];
        else if (!strcmp(a, "--device") && has && !strcmp(argv[i + 1], "cpu"))
            i++;
        else {
            fprintf(stderr, "avat3r synth: unknown or incomplete option '%s'\nusage: avat3r synth %s\n", a, USAGE);
            return 2;
        }
    }
    o.sw = o.W / 4 > 1 ? o.W / 4 : 1, o.sh = o.H / 4 > 1 ? o.H / 4 : 1;
    if (sap && parse_size(sap, &o.sw, &o.sh)) o.sw = 0;
    const char *bad = !o.out                                 ? "--out DIR is required"
                      : o.subjects < 1 || o.subjects > 999   ? "--subjects must be 1..999"
                      : o.cameras < 1 || o.cameras > 899     ? "--cameras must be 1..899"
                      : o.frames < 1 || o.frames > 100000    ? "--frames must be 1..100000"
                      : o.W < 1                              ? "--size wants WxH (1..16384)"
                      : o.sw < 1 || o.sw > o.W || o.sh > o.H ? "--sapiens-size wants WxH no larger than the image"
                      : o.avif.quantizer < 0 || o.avif.quantizer > 63 ? "--quantizer must be 0..63"
                      : o.avif.speed < 0 || o.avif.speed > 10         ? "--speed must be 0..10"
                                                                      : NULL;
    if (bad) {
        fprintf(stderr, "avat3r synth: %s\nusage: avat3r synth %s\n", bad, USAGE);
        return 2;
    }
#ifdef _OPENMP
    if (o.threads > 0) omp_set_num_threads(o.threads);
#endif
    // every camera keeps up to five zips open while frames are rendered
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    snprintf(o.script, sizeof o.script, "%s/tools/synth_write_pickle.py", source_root());
    avw_check_pickle_writer(o.python, o.script); // fail before rendering anything
    avw_mkdirs(o.out);
    double t0 = time_now_s();
    Sheet sheet = {0}, *sh = NULL;
    if (o.preview) {
        sheet.cols = o.cameras < 8 ? o.cameras : 8;
        sheet.rows = (o.subjects < 4 ? o.subjects : 4) * (o.frames < 4 ? o.frames : 4);
        sheet.W = o.W, sheet.H = o.H;
        sheet.px = (uint8_t *)callocCheck((size_t)sheet.cols * o.W * sheet.rows * o.H * 3, 1);
        sh = &sheet;
    }
    char(*mcd)[16] = mallocCheck(16 * (size_t)o.subjects), (*sid)[16] = mallocCheck(16 * (size_t)o.subjects);
    char(*mct)[8] = mallocCheck(8 * (size_t)o.subjects);
    const char **pm = mallocCheck(sizeof(char *) * 3 * o.subjects);
    for (int s = 0; s < o.subjects; s++) {
        capture_ids(o.seed, s, mcd[s], mct[s], sid[s]);
        write_capture(&o, s, mcd[s], mct[s], sid[s], sh);
        pm[s] = mcd[s], pm[o.subjects + s] = sid[s], pm[2 * o.subjects + s] = mct[s];
    }
    char path[4200];
    path_join(path, sizeof path, o.out, "256_ids.csv");
    avw_write_ids(path, pm, pm + o.subjects, pm + 2 * o.subjects, o.subjects);
    if (sh) {
        png_write_rgb8(o.preview, sheet.px, sheet.cols * o.W, sheet.rows * o.H);
        printf("synth: preview %s (%d captures x %d frames by %d cameras)\n", o.preview,
               sheet.rows / (o.frames < 4 ? o.frames : 4), o.frames < 4 ? o.frames : 4, sheet.cols);
        free(sheet.px);
    }
    printf("synth: %d captures in %s (%.2f s); index %s\n", o.subjects, o.out, time_now_s() - t0, path);
    free(mcd), free(sid), free(mct), free(pm);
    return 0;
}
