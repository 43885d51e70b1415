// test_animate.c — `avat3r animate`, `avat3r bench animate` and the web viewer (issue #6).
//
// A micro model trained for a few dozen steps on synthetic captures (enough for its Gaussians to form a
// head: they sit at the DUSt3R points with the input colours) animates a held-out identity. Checked: F
// frames give F PLYs that ply_read reads and F PNGs that equal an in-process render of those PLYs from the
// manifest's cameras; different codes give different Gaussians and the same code the same ones; the
// turntable orbits the head; bad arguments are refused with a message naming the file or field; and the
// viewer, in headless Chromium, draws a head (and does not on black Gaussians or a missing file).
#include <cjson/cJSON.h>
#include <math.h>
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/rng.h"
#include "ply.h"
#include "raster.h"
#include "test.h"

typedef struct {
    char shards[1024], ckpt[1200], subject[300], out[1024]; // out: one `animate --frames` run
} Fixture;

// Synthetic captures → shards → 40 training steps with the last capture held out (made once per test run).
static const Fixture *fixture(void) {
    static Fixture fx;
    char run[1024], done[1100], cmd[8192];
    const char *sh = test_micro_shards("train", 3, 6); // the training tests' captures
    if (!sh) return NULL;
    snprintf(fx.shards, sizeof fx.shards, "%s", sh);
    snprintf(run, sizeof run, "%s/anim_run", test_tmpdir());
    snprintf(fx.ckpt, sizeof fx.ckpt, "%s/final.ckpt", run);
    snprintf(done, sizeof done, "%s/.done", run);
    // the subject: the last capture (held out from training: a novel identity, as the paper animates)
    snprintf(cmd, sizeof cmd, "ls '%s' | grep '\\.h5$' | tail -n 1", fx.shards);
    FILE *p = popen(cmd, "r");
    if (!p || !fgets(fx.subject, sizeof fx.subject, p)) return p ? (pclose(p), NULL) : NULL;
    pclose(p);
    *strstr(fx.subject, ".h5") = 0;
    snprintf(fx.out, sizeof fx.out, "%s/anim_out", test_tmpdir());
    if (access(done, F_OK) == 0) return &fx;
    snprintf(cmd, sizeof cmd,
             "'%s' train --config '%s/configs/tiny.cfg' --data '%s' --out '%s' " TEST_MICRO_SETS
             "--steps 40 --set ckpt_every=1000 "
             "--set val_every=0 --set warmup_steps=5 --set lr=3e-3 --set held_out=%s > '%s.log' 2>&1 && touch '%s'",
             AVAT3R_BINARY, test_source_root(), fx.shards, run, fx.subject, run, done);
    if (test_system(cmd)) return NULL;
    return &fx;
}

// The `--frames 0:3 --views 2` run the viewer test also opens (made once).
static const Fixture *animated(void) {
    const Fixture *fx = fixture();
    if (!fx) return NULL;
    char cmd[8192], done[1100];
    snprintf(done, sizeof done, "%s/manifest.json", fx->out);
    if (access(done, F_OK) == 0) return fx;
    snprintf(cmd, sizeof cmd,
             "'%s' animate --checkpoint '%s' --data '%s' --subject '%s' --frames 0:3 --views 2 --size 64x64 "
             "--threads 2 --out '%s' > '%s.log' 2>&1",
             AVAT3R_BINARY, fx->ckpt, fx->shards, fx->subject, fx->out, fx->out);
    return test_system(cmd) ? NULL : fx;
}

static cJSON *read_json(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = calloc(1 << 22, 1);
    size_t n = fread(buf, 1, (1 << 22) - 1, f);
    fclose(f);
    buf[n] = 0;
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    return j;
}

static int json_floats(const cJSON *a, float *out, int n) {
    if (cJSON_GetArraySize(a) != n) return -1;
    for (int i = 0; i < n; i++) out[i] = (float)cJSON_GetArrayItem(a, i)->valuedouble;
    return 0;
}

// RGB8 pixels of a PNG (malloc'd), or NULL.
static uint8_t *read_png(const char *path, int *W, int *H) {
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&im, path)) return NULL;
    im.format = PNG_FORMAT_RGB;
    uint8_t *px = malloc(PNG_IMAGE_SIZE(im));
    if (!png_image_finish_read(&im, NULL, px, 0, NULL)) return free(px), NULL;
    *W = (int)im.width, *H = (int)im.height;
    return px;
}

// Renders a PLY in-process from one camera (white background, as animate renders) into RGB8.
static uint8_t *render_ply(const PlyGaussians *p, const float *w2c, const float *K, int W, int H) {
    size_t n = p->n;
    float *m = malloc(12 * n), *q = malloc(16 * n), *s = malloc(12 * n), *o = malloc(4 * n), *c = malloc(12 * n);
    ply_to_activated(p, m, q, s, o, c);
    const float bg[3] = {1, 1, 1};
    Raster r;
    RasterDims d = {1, (int)n, 1, W, H, 3};
    raster_build(&r, d, 8);
    RasterIn in = {m, q, s, o, c, w2c, K, bg};
    raster_forward(&r, &in);
    uint8_t *px = malloc((size_t)W * H * 3);
    for (size_t i = 0; i < (size_t)W * H * 3; i++) {
        float v = r.image[i];
        px[i] = (uint8_t)lrintf(255.f * (v < 0 ? 0 : v > 1 ? 1 : v));
    }
    raster_free(&r);
    free(m), free(q), free(s), free(o), free(c);
    return px;
}

// Largest difference between two PLYs' raw values (INFINITY when their counts differ).
static double ply_maxdiff(const PlyGaussians *a, const PlyGaussians *b) {
    if (a->n != b->n) return INFINITY;
    double d = 0;
    for (size_t i = 0; i < a->n * 3; i++)
        d = fmax(d, fmax(fabs(a->xyz[i] - b->xyz[i]), fmax(fabs(a->f_dc[i] - b->f_dc[i]), fabs(a->scale[i] - b->scale[i]))));
    for (size_t i = 0; i < a->n; i++) d = fmax(d, fabs(a->opacity[i] - b->opacity[i]));
    for (size_t i = 0; i < a->n * 4; i++) d = fmax(d, fabs(a->rot[i] - b->rot[i]));
    return d;
}

// Every frame of an animate folder: the PLY reads back with the manifest's count, and each view of the PNG
// equals the in-process render of the PLY from the manifest's camera (per frame under a turntable).
// Fills ply[] (F of them). Returns 0 or 1 after a message.
static int check_frames(const char *dir, cJSON *man, int F, PlyGaussians *ply) {
    const cJSON *frames = cJSON_GetObjectItem(man, "frames"), *cams = cJSON_GetObjectItem(man, "cameras");
    const int V = cJSON_GetObjectItem(man, "views")->valueint, W = cJSON_GetObjectItem(man, "width")->valueint,
              H = cJSON_GetObjectItem(man, "height")->valueint;
    CHECK(cJSON_GetArraySize(frames) == F, "manifest lists %d frames, want %d", cJSON_GetArraySize(frames), F);
    int worst = 0;
    long n_off = 0;
    for (int k = 0; k < F; k++) {
        const cJSON *fr = cJSON_GetArrayItem(frames, k), *fc = cJSON_GetObjectItem(fr, "cameras");
        char path[2048], err[1024];
        snprintf(path, sizeof path, "%s/%s", dir, cJSON_GetObjectItem(fr, "ply")->valuestring);
        CHECK(ply_read(path, &ply[k], err, sizeof err) == 0, "%s", err);
        CHECK(ply[k].n == (size_t)cJSON_GetObjectItem(fr, "gaussians")->valuedouble && ply[k].n > 100,
              "%s: %zu Gaussians, manifest says %g", path, ply[k].n, cJSON_GetObjectItem(fr, "gaussians")->valuedouble);
        snprintf(path, sizeof path, "%s/%s", dir, cJSON_GetObjectItem(fr, "png")->valuestring);
        int pw = 0, ph = 0;
        uint8_t *png = read_png(path, &pw, &ph);
        CHECK(png && pw == V * W && ph == H, "%s: %dx%d, want %dx%d", path, pw, ph, V * W, H);
        for (int v = 0; v < V; v++) {
            const cJSON *cam = cJSON_GetArrayItem(fc ? fc : cams, v);
            float w2c[12], K[9];
            CHECK(cam && !json_floats(cJSON_GetObjectItem(cam, "w2c"), w2c, 12) &&
                  !json_floats(cJSON_GetObjectItem(cam, "K"), K, 9), "frame %d: no camera %d in the manifest", k, v);
            uint8_t *ref = render_ply(&ply[k], w2c, K, W, H);
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W * 3; x++) {
                    int d = abs((int)png[((size_t)y * V * W + (size_t)v * W) * 3 + x] - (int)ref[((size_t)y * W) * 3 + x]);
                    worst = d > worst ? d : worst, n_off += d > 0;
                }
            free(ref);
        }
        free(png);
    }
    printf("    %s: %d frames x %d view(s) of %dx%d: PNG vs in-process render of the PLY: max |diff| %d/255, %ld values "
           "differ\n", dir, F, V, W, H, worst, n_off);
    CHECK(worst <= 1, "a PNG differs from rendering its PLY by %d/255", worst);
    return 0;
}

// F frames of the capture, 2 driving views: PLYs, PNGs, manifest, video; consecutive codes differ.
static int test_animate_frames(void) {
    const Fixture *fx = animated();
    CHECK(fx, "fixture or animate failed (see %s/anim_*.log)", test_tmpdir());
    char path[2048];
    snprintf(path, sizeof path, "%s/manifest.json", fx->out);
    cJSON *man = read_json(path);
    CHECK(man, "%s does not parse", path);
    CHECK(!strcmp(cJSON_GetObjectItem(man, "subject")->valuestring, fx->subject), "wrong subject in the manifest");
    CHECK(!strcmp(cJSON_GetObjectItem(cJSON_GetObjectItem(man, "codes"), "kind")->valuestring, "frames"), "codes kind");
    PlyGaussians ply[3];
    memset(ply, 0, sizeof ply);
    if (check_frames(fx->out, man, 3, ply)) return 1;
    // the expression enters the network: each frame's code moves the Gaussians. The forward is deterministic
    // (the same code gives the same bits: animate_codes_turntable), so any difference comes from the code; how
    // much depends on the model (the micro model barely tells these neighbouring frames' codes apart).
    for (int k = 1; k < 3; k++) {
        double d = ply_maxdiff(&ply[0], &ply[k]);
        printf("    frame 0 vs frame %d (other codes): max |raw difference| %.3g\n", k, d);
        CHECK(d > 0 && isfinite(d), "frames 0 and %d have the same Gaussians", k);
    }
    for (int k = 0; k < 3; k++) ply_free(&ply[k]);
    // the video, when ffmpeg is here: 3 frames, even size
    const cJSON *vid = cJSON_GetObjectItem(man, "video");
    if (test_system("command -v ffprobe > /dev/null") == 0) {
        CHECK(cJSON_IsString(vid), "ffmpeg is on PATH but the manifest names no video");
        char cmd[4096];
        snprintf(cmd, sizeof cmd, "test \"$(ffprobe -v error -count_frames -select_streams v:0 -show_entries "
                 "stream=nb_read_frames,width,height,pix_fmt -of csv=p=0 '%s/animation.mp4')\" = '128,64,yuv420p,3'", fx->out);
        CHECK(test_system(cmd) == 0, "animation.mp4 is not 3 frames of 128x64 yuv420p");
    } else {
        printf("    no ffprobe: the video is not checked\n");
    }
    cJSON_Delete(man);
    return 0;
}

// Writes codes [F, E] as .npy float32.
static void write_npy(const char *path, const float *v, int F, int E) {
    char h[128];
    int n = snprintf(h, sizeof h, "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", F, E);
    while ((10 + n + 1) % 64) h[n++] = ' ';
    h[n++] = '\n';
    FILE *f = fopen(path, "wb");
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(n & 255), (unsigned char)(n >> 8)};
    fwrite(pre, 1, 10, f);
    fwrite(h, 1, n, f);
    fwrite(v, 4, (size_t)F * E, f);
    fclose(f);
}

// A codes file with a repeated row under a turntable from a named camera, without ffmpeg on PATH: the same
// code gives the same Gaussians bit for bit, another code others; the camera circles the head's centre at
// a constant distance, a quarter turn per frame; PNGs only.
static int test_animate_codes_turntable(void) {
    const Fixture *fx = fixture();
    CHECK(fx, "fixture failed (see %s/anim_*.log)", test_tmpdir());
    const int E = 256, F = 4;
    float *codes = calloc((size_t)F * E, sizeof(float));
    Rng r = rng_make(11, 0);
    for (int i = 0; i < E; i++) codes[2 * E + i] = (float)(3 * rng_normal_at(&r, i)), codes[3 * E + i] = 0.5f;
    char npy[1100], out[1100], cmd[16384];
    snprintf(npy, sizeof npy, "%s/anim_codes.npy", test_tmpdir());
    snprintf(out, sizeof out, "%s/anim_turntable", test_tmpdir());
    write_npy(npy, codes, F, E);
    free(codes);
    snprintf(cmd, sizeof cmd,
             "PATH=/nonexistent '%s' animate --checkpoint '%s' --data '%s' --subject '%s' --codes '%s' --turntable "
             "--camera 400103 --size 48x40 --threads 1 --fps 10 --out '%s' > '%s.log' 2>&1 && grep -q 'PNGs only' '%s.log' "
             "&& test ! -e '%s/animation.mp4'",
             AVAT3R_BINARY, fx->ckpt, fx->shards, fx->subject, npy, out, out, out, out);
    CHECK(test_system(cmd) == 0, "animate --codes --turntable failed or made a video without ffmpeg (%s.log)", out);
    char path[2048];
    snprintf(path, sizeof path, "%s/manifest.json", out);
    cJSON *man = read_json(path);
    CHECK(man, "%s does not parse", path);
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(man, "video")), "the manifest names a video");
    CHECK(!strcmp(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(man, "cameras"), 0), "name")->valuestring,
                  "400103"), "the manifest's camera is not --camera 400103");
    PlyGaussians ply[4];
    memset(ply, 0, sizeof ply);
    if (check_frames(out, man, F, ply)) return 1;
    double same = ply_maxdiff(&ply[0], &ply[1]), other = ply_maxdiff(&ply[0], &ply[2]), third = ply_maxdiff(&ply[2], &ply[3]);
    printf("    same code twice: max |diff| %.3g; code 0 vs a random code: %.3g; random vs constant code: %.3g\n", same,
           other, third);
    CHECK(same == 0, "the same code gave different Gaussians");
    CHECK(other > 0 && third > 0 && isfinite(other) && isfinite(third), "different codes gave the same Gaussians");
    for (int k = 0; k < F; k++) ply_free(&ply[k]);
    // the orbit: every camera looks at the centre from the same distance, 90 degrees apart about `up`
    float ctr[3], up[3], prev[3] = {0, 0, 0};
    CHECK(!json_floats(cJSON_GetObjectItem(man, "centre"), ctr, 3) && !json_floats(cJSON_GetObjectItem(man, "up"), up, 3),
          "no centre/up");
    double dist0 = 0;
    const cJSON *frames = cJSON_GetObjectItem(man, "frames");
    for (int k = 0; k < F; k++) {
        const cJSON *cam = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(frames, k), "cameras"), 0);
        float w[12], pos[3], off[3];
        CHECK(!json_floats(cJSON_GetObjectItem(cam, "w2c"), w, 12), "frame %d: no turntable camera", k);
        for (int j = 0; j < 3; j++) pos[j] = -(w[j] * w[3] + w[4 + j] * w[7] + w[8 + j] * w[11]);
        double dist = 0, dot = 0, along = 0, proj[3];
        for (int j = 0; j < 3; j++) off[j] = pos[j] - ctr[j], dist += off[j] * off[j], along += off[j] * up[j];
        dist = sqrt(dist);
        double fwd = 0; // the optical axis points at the centre
        for (int j = 0; j < 3; j++) fwd += w[8 + j] * -off[j] / dist;
        CHECK(fwd > 0.9999, "frame %d: the camera does not look at the centre (cos %.5f)", k, fwd);
        for (int j = 0; j < 3; j++) proj[j] = off[j] - along * up[j];
        if (k == 0) dist0 = dist;
        CHECK(fabs(dist - dist0) < 1e-4 * dist0, "frame %d: distance %.5f, frame 0 %.5f", k, dist, dist0);
        if (k) {
            double a = 0, b = 0;
            for (int j = 0; j < 3; j++) dot += proj[j] * prev[j], a += proj[j] * proj[j], b += prev[j] * prev[j];
            CHECK(fabs(dot / sqrt(a * b)) < 1e-3, "frame %d: not a quarter turn from the previous (cos %.4f)", k, dot / sqrt(a * b));
        }
        for (int j = 0; j < 3; j++) prev[j] = (float)proj[j];
    }
    cJSON_Delete(man);
    return 0;
}

// Bad arguments: a message naming the file or field, a non-zero exit, no crash (a signal would show as
// exit >= 128; ASan/UBSan reports fail the grep of the message-only output).
static int test_animate_bad_input(void) {
    const Fixture *fx = fixture();
    CHECK(fx, "fixture failed (see %s/anim_*.log)", test_tmpdir());
    char bad_npy[1100], not_npy[1100], bad_ckpt[1100], out[1100];
    snprintf(bad_npy, sizeof bad_npy, "%s/anim_bad_dim.npy", test_tmpdir());
    snprintf(not_npy, sizeof not_npy, "%s/anim_not.npy", test_tmpdir());
    snprintf(bad_ckpt, sizeof bad_ckpt, "%s/anim_garbage.ckpt", test_tmpdir());
    snprintf(out, sizeof out, "%s/anim_bad_out", test_tmpdir());
    float z[14] = {0};
    write_npy(bad_npy, z, 2, 7);
    FILE *f = fopen(not_npy, "w");
    fputs("0.1 0.2 0.3\n", f);
    fclose(f);
    f = fopen(bad_ckpt, "w");
    fputs("this is not a checkpoint, just some bytes ..............................................\n", f);
    fclose(f);
    struct {
        const char *args, *expect;
    } cases[] = {
        {"--subject NOBODY --frames 0:2", "no shard among --data holds that capture or subject"},
        {"--subject {S} --frames 4:99", "outside the capture"},
        {"--subject {S} --frames 3:3", "outside the capture"},
        {"--subject {S} --frames two", "want A:B"},
        {"--subject {S} --codes {BADNPY}", "field 'shape' is (2, 7), want (F, 256)"},
        {"--subject {S} --codes {NOTNPY}", "not a .npy file"},
        {"--subject {S} --codes /nonexistent/codes.npy", "cannot read the codes file"},
        {"--subject {S} --codes /", "not a regular file"},
        {"--subject {S} --frames 0:2 --codes {BADNPY}", "exactly one of --codes"},
        {"--subject {S} --frames 0:2 --camera 999999", "no such camera"},
        {"--subject {S} --frames 0:2 --views 2 --camera 400101", "exclude each other"},
        {"--subject {S} --frames 0:2 --size 12", "--size '12'"},
        {"--subject {S} --frames 0:2 --bogus", "unknown or incomplete option '--bogus'"},
        {"CKPT={BADCKPT} --subject {S} --frames 0:2", "not an avat3r checkpoint"},
        {"CKPT=/nonexistent/model.ckpt --subject {S} --frames 0:2", "/nonexistent/model.ckpt"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        // expand {S}, {BADNPY}, {NOTNPY}, {BADCKPT}; CKPT=... replaces the checkpoint
        char args[2048] = "", ckpt[1200];
        snprintf(ckpt, sizeof ckpt, "%s", fx->ckpt);
        const char *a = cases[i].args;
        if (!strncmp(a, "CKPT=", 5)) {
            const char *sp = strchr(a, ' ');
            snprintf(ckpt, sizeof ckpt, "%.*s", (int)(sp - a - 5), a + 5);
            if (!strcmp(ckpt, "{BADCKPT}")) snprintf(ckpt, sizeof ckpt, "%s", bad_ckpt);
            a = sp + 1;
        }
        for (const char *p = a; *p;) {
            const char *keys[4] = {"{S}", "{BADNPY}", "{NOTNPY}", "{BADCKPT}"}, *vals[4] = {fx->subject, bad_npy, not_npy, bad_ckpt};
            int hit = 0;
            for (int k = 0; k < 4 && !hit; k++)
                if (!strncmp(p, keys[k], strlen(keys[k])))
                    snprintf(args + strlen(args), sizeof args - strlen(args), "'%s'", vals[k]), p += strlen(keys[k]), hit = 1;
            if (!hit) snprintf(args + strlen(args), sizeof args - strlen(args), "%c", *p++);
        }
        char cmd[8192], log[1200];
        snprintf(log, sizeof log, "%s/anim_bad_%zu.log", test_tmpdir(), i);
        snprintf(cmd, sizeof cmd, "'%s' animate --checkpoint '%s' --data '%s' %s --out '%s' > '%s' 2>&1; rc=$?; "
                 "test $rc -ge 1 -a $rc -le 2 && grep -qF -- \"%s\" '%s' && ! grep -q 'Sanitizer\\|runtime error' '%s'",
                 AVAT3R_BINARY, ckpt, fx->shards, args, out, log, cases[i].expect, log, log);
        CHECK(test_system(cmd) == 0, "case '%s': want exit 1 or 2 and a message containing \"%s\" (see %s)", cases[i].args,
              cases[i].expect, log);
        char line[512] = "";
        FILE *lf = fopen(log, "r");
        if (lf && fgets(line, sizeof line, lf)) line[strcspn(line, "\n")] = 0;
        if (lf) fclose(lf);
        printf("    refused: %-48.48s -> %.110s\n", cases[i].args, line);
    }
    return 0;
}

// The viewer in Debian's headless Chromium (tools/viewer/e2e.mjs): a head on the animate output; no head on
// the same sequence with black Gaussians; an error when a PLY is missing or the folder has no manifest.
static int test_animate_viewer_e2e(void) {
    char mods[1200], cmd[8192];
    snprintf(mods, sizeof mods, "%s/tools/viewer/node_modules", test_source_root());
    const char *missing = test_system("command -v node > /dev/null 2>&1") ? "node (apt-get install nodejs)"
                          : access("/usr/bin/chromium", X_OK)              ? "/usr/bin/chromium (apt-get install chromium)"
                          : 0;
    char dep[1300];
    for (int k = 0; !missing && k < 3; k++) {
        const char *pkg[3] = {"playwright-core", "three", "@mkkellogg/gaussian-splats-3d"};
        snprintf(dep, sizeof dep, "%s/%s/package.json", mods, pkg[k]);
        if (access(dep, R_OK)) missing = dep;
    }
    if (missing) {
        printf("    SKIP: the viewer end-to-end test needs %s (tools/test.sh runs npm ci in tools/viewer)\n", missing);
        return 0;
    }
    const Fixture *fx = animated();
    CHECK(fx, "fixture or animate failed (see %s/anim_*.log)", test_tmpdir());
    char e2e[1200], shot[1100], dark[1100], holey[1100];
    snprintf(e2e, sizeof e2e, "%s/tools/viewer/e2e.mjs", test_source_root());
    snprintf(shot, sizeof shot, "%s/anim_viewer.png", test_tmpdir());
    snprintf(dark, sizeof dark, "%s/anim_black", test_tmpdir());
    snprintf(holey, sizeof holey, "%s/anim_missing_ply", test_tmpdir());
    // 1: the real output — a head
    snprintf(cmd, sizeof cmd, "node '%s' '%s' --screenshot '%s' --timeout 120 > '%s.log' 2>&1; rc=$?; sed 's/^/    e2e> /' "
             "'%s.log'; exit $rc", e2e, fx->out, shot, shot, shot);
    CHECK(test_system(cmd) == 0, "the viewer did not draw a head (screenshot %s)", shot);
    // 2: the same frames with black Gaussians on the black page — must fail the check
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", dark, fx->out, dark);
    CHECK(test_system(cmd) == 0, "copy failed");
    for (int k = 0; k < 3; k++) {
        char path[1300], err[1024];
        PlyGaussians p;
        snprintf(path, sizeof path, "%s/frame_%04d.ply", dark, k);
        CHECK(ply_read(path, &p, err, sizeof err) == 0, "%s", err);
        for (size_t i = 0; i < p.n * 3; i++) p.f_dc[i] = (float)(-0.5 / PLY_SH_C0);
        ply_write(path, &p);
        ply_free(&p);
    }
    snprintf(cmd, sizeof cmd, "node '%s' '%s' --timeout 120 > '%s.log' 2>&1; rc=$?; sed 's/^/    e2e> /' '%s.log'; "
             "test $rc = 1 && grep -q 'no head drawn' '%s.log'", e2e, dark, dark, dark, dark);
    CHECK(test_system(cmd) == 0, "the check passed on black Gaussians: it cannot fail");
    // 3: a manifest naming a PLY that is not there, and a folder without a manifest — the viewer reports it
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s' && rm '%s/frame_0001.ply'", holey, fx->out, holey, holey);
    CHECK(test_system(cmd) == 0, "copy failed");
    snprintf(cmd, sizeof cmd, "node '%s' '%s' --timeout 120 > '%s.log' 2>&1; rc=$?; sed 's/^/    e2e> /' '%s.log'; "
             "test $rc = 1", e2e, holey, holey, holey);
    CHECK(test_system(cmd) == 0, "the viewer did not fail on a missing PLY");
    snprintf(cmd, sizeof cmd, "node '%s' '%s/no_such_folder' --timeout 60 > '%s.nf.log' 2>&1; rc=$?; sed 's/^/    e2e> /' "
             "'%s.nf.log'; test $rc = 1 && grep -q 'HTTP 404' '%s.nf.log'", e2e, test_tmpdir(), holey, holey, holey);
    CHECK(test_system(cmd) == 0, "the viewer did not fail on a wrong path");
    return 0;
}

// `avat3r bench animate` on the micro model: creation time and frames/s are reported.
static int test_animate_bench(void) {
    char cmd[16384], log[1100];
    snprintf(log, sizeof log, "%s/anim_bench.log", test_tmpdir());
    snprintf(cmd, sizeof cmd, "'%s' bench animate --config '%s/configs/tiny.cfg' " TEST_MICRO_MODEL "--frames 2 --threads 1 "
             "--size 48x48 > '%s' 2>&1 && grep -q 'avatar creation (network forward, aux maps given): [0-9.]* s' '%s' && "
             "grep -q 'animation: [0-9.]* s/frame = [0-9.]* frames/s' '%s' && sed 's/^/    /' '%s'",
             AVAT3R_BINARY, test_source_root(), log, log, log, log);
    CHECK(test_system(cmd) == 0, "bench animate failed (%s)", log);
    return 0;
}

const TestCase animate_tests[] = {
    {"animate_frames", test_animate_frames},
    {"animate_codes_turntable", test_animate_codes_turntable},
    {"animate_bad_input", test_animate_bad_input},
    {"animate_viewer_e2e", test_animate_viewer_e2e},
    {"animate_bench", test_animate_bench},
    {NULL, NULL},
};
