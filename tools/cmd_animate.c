// cmd_animate.c — `avat3r animate`: build an avatar from 4 input views of one subject and drive it with
// expression codes (issue #6): per code one network forward (the code enters every block through
// cross-attention, so nothing past the patch embedding can be reused), one 3DGS PLY and one rendered
// PNG; then manifest.json for the web viewer (tools/viewer/) and, with ffmpeg on PATH, animation.mp4.
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/timer.h"
#include "../common/util.h"
#include "animate.h"
#include "batch_random.h"
#include "checkpoint.h"
#include "cli.h"
#include "loader.h"
#include "loop.h"
#include "npy.h"
#include "ply.h"
#include "png_write.h"

// ------------------------------------------------------------------------------------------------
// the avatar (animate.h)

int avatar_build(Avatar *a, const ModelConfig *c, const float *params, const Avat3rBatch *in, int W, int H, int ncam,
                 const float bg[3], const char *device, char *err, size_t errlen) {
    memset(a, 0, sizeof *a);
    a->c = *c;
    avat3r_build(&a->m, c, 1);
    memcpy(a->m.params, params, sizeof(float) * a->m.n_params);
    if (net_device_open(&a->nd, &a->m, device, err, errlen)) {
        avat3r_free(&a->m);
        return -1;
    }
    a->in = *in;
    a->W = W, a->H = H, a->ncam = ncam;
    memcpy(a->bg, bg, sizeof a->bg);
    size_t G = (size_t)c->views_in * c->img_h * c->img_w;
    a->means = (float *)mallocCheck(G * 12), a->quats = (float *)mallocCheck(G * 16);
    a->scales = (float *)mallocCheck(G * 12), a->opac = (float *)mallocCheck(G * 4);
    a->colors = (float *)mallocCheck(G * 12);
    return 0;
}

void avatar_free(Avatar *a) {
    net_device_close(&a->nd);
    avat3r_free(&a->m);
    if (a->have_raster) raster_free(&a->r);
    free(a->means), free(a->quats), free(a->scales), free(a->opac), free(a->colors);
    memset(a, 0, sizeof *a);
}

size_t avatar_forward(Avatar *a, const float *code) {
    a->in.expr = code;
    net_device_forward(&a->nd, &a->in, a->views_sent); // the views are fixed for the avatar's life
    a->views_sent = 1;
    // Export (DESIGN.md §4): the confidence multiplies opacity in training; a PLY drops the Gaussians whose
    // confidence is below conf_threshold and keeps the opacity the network was trained to render with.
    const float *g = a->m.a.gauss, *conf = a->c.use_dust3r ? a->in.conf : NULL;
    const size_t G = (size_t)a->c.views_in * a->c.img_h * a->c.img_w;
    size_t n = 0;
    for (size_t i = 0; i < G; i++) {
        if (conf && !(conf[i] >= a->c.conf_threshold)) continue;
        const float *q = g + i * GAUSS_DIM;
        memcpy(a->means + n * 3, q, 12);
        memcpy(a->colors + n * 3, q + 3, 12);
        memcpy(a->scales + n * 3, q + 6, 12);
        memcpy(a->quats + n * 4, q + 9, 16);
        a->opac[n] = q[13];
        n++;
    }
    a->n = n;
    return n;
}

void avatar_render(Avatar *a, const float *w2c, const float *K) {
    if (a->have_raster && (size_t)a->r.d.G != a->n) raster_free(&a->r), a->have_raster = 0;
    if (!a->have_raster) {
        RasterDims d = {1, (int)a->n, a->ncam, a->W, a->H, 3};
        raster_build(&a->r, d, 8); // rendered larger than the inputs: a Gaussian spans more tiles than in training
        a->have_raster = 1;
    }
    RasterIn rin = {a->means, a->quats, a->scales, a->opac, a->colors, w2c, K, a->bg};
    raster_forward(&a->r, &rin);
}

// ------------------------------------------------------------------------------------------------
// the verb

static const char *USAGE =
    "--checkpoint CKPT --data SHARD... --subject ID (--codes FILE.npy | --frames A:B) --out DIR\n"
    "       [--size WxH] [--views N | --camera NAME] [--turntable] [--fps F] [--seed S] [--threads T]\n"
    "       [--device cpu|cuda]\n"
    "  Builds the avatar of capture or subject ID from 4 input views drawn as in training (seed S, default 7),\n"
    "  then per expression code: DIR/frame_%04d.ply (3DGS) and DIR/frame_%04d.png. --frames A:B: the codes of\n"
    "  frames A..B-1 (indices into the capture's frame list); --codes: a .npy float32 [F, expr_dim].\n"
    "  The PNG shows N (default 1) cameras of the capture at the inputs' target frame, or --camera NAME, side\n"
    "  by side; --turntable orbits one camera around the head over the sequence. --size: per view (default:\n"
    "  the model's image size times the smallest integer that reaches 256). Writes DIR/manifest.json (the web\n"
    "  viewer reads it) and, when ffmpeg is on PATH, DIR/animation.mp4 (H.264 or MPEG-4, yuv420p, --fps, 25).\n"
    "  --device cuda runs the network on the GPU (the export and the renders stay on the CPU).";

typedef struct {
    const char *ckpt, *subject, *codes, *frames, *out, *camera, *size, *device, *data[1024];
    int ndata, views, turntable, threads;
    double fps;
    unsigned long long seed;
} AnimOpts;

static int parse_opts(int argc, char **argv, AnimOpts *o) {
    memset(o, 0, sizeof *o);
    o->seed = 7, o->fps = 25, o->device = "cpu";
    for (int i = 1; i < argc; i++) {
        int has = i + 1 < argc;
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: avat3r animate %s\n", USAGE);
            exit(0);
        } else if (!strcmp(a, "--checkpoint") && has) o->ckpt = argv[++i];
        else if (!strcmp(a, "--subject") && has) o->subject = argv[++i];
        else if (!strcmp(a, "--codes") && has) o->codes = argv[++i];
        else if (!strcmp(a, "--frames") && has) o->frames = argv[++i];
        else if (!strcmp(a, "--out") && has) o->out = argv[++i];
        else if (!strcmp(a, "--camera") && has) o->camera = argv[++i];
        else if (!strcmp(a, "--size") && has) o->size = argv[++i];
        else if (!strcmp(a, "--views") && has) o->views = atoi(argv[++i]);
        else if (!strcmp(a, "--fps") && has) o->fps = atof(argv[++i]);
        else if (!strcmp(a, "--seed") && has) o->seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--threads") && has) o->threads = atoi(argv[++i]);
        else if (!strcmp(a, "--turntable")) o->turntable = 1;
        else if (!strcmp(a, "--device") && has) o->device = argv[++i];
        else if (!strcmp(a, "--data") && has) {
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) && o->ndata < 1024) o->data[o->ndata++] = argv[++i];
        } else {
            fprintf(stderr, "avat3r animate: unknown or incomplete option '%s'\nusage: avat3r animate %s\n", a, USAGE);
            return -1;
        }
    }
    const char *why = NULL;
    if (!o->ckpt || !o->ndata || !o->subject || !o->out) why = "--checkpoint, --data, --subject and --out are required";
    else if (!o->codes == !o->frames) why = "give exactly one of --codes FILE and --frames A:B";
    else if (o->camera && o->views) why = "--views and --camera exclude each other";
    else if (o->views < 0 || o->views > 16) why = "--views must be 1..16";
    else if (o->turntable && o->views > 1) why = "--turntable renders one view; drop --views";
    else if (!(o->fps > 0 && o->fps <= 240)) why = "--fps must be in (0, 240]";
    else if (o->threads < 0) why = "--threads must be >= 0";
    if (why) {
        fprintf(stderr, "avat3r animate: %s\nusage: avat3r animate %s\n", why, USAGE);
        return -1;
    }
    if (!o->views) o->views = 1;
    return 0;
}

// --codes FILE: a .npy float32 [F, E]. Returns the codes (malloc'd) and F, or NULL with a message.
static float *read_codes_npy(const char *path, int E, int *F, char *err, size_t errlen) {
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return error_set(err, errlen, "%s: the codes file (--codes) is not a regular file", path), NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return error_set(err, errlen, "%s: cannot read the codes file (--codes): %s", path, strerror(errno)), NULL;
    int64_t n = file_size(f);
    if (n < 0 || n > ((int64_t)1 << 31)) {
        fclose(f);
        return error_set(err, errlen, "%s: the codes file (--codes) has %lld bytes (at most 2 GiB)", path, (long long)n), NULL;
    }
    uint8_t *bytes = (uint8_t *)mallocCheck((size_t)n + 1);
    size_t got = fread(bytes, 1, (size_t)n, f);
    fclose(f);
    int64_t shape[NPY_MAX_DIMS];
    int nd = 0;
    const uint8_t *data = NULL;
    float *codes = NULL;
    char what[4200];
    snprintf(what, sizeof what, "%s (--codes)", path);
    if (got != (size_t)n || npy_parse_f32(bytes, (size_t)n, what, shape, &nd, &data, err, errlen)) {
        if (got != (size_t)n) error_set(err, errlen, "%s: short read", what);
        free(bytes);
        return NULL;
    }
    if (nd != 2 || shape[1] != E || shape[0] < 1 || shape[0] > 100000) {
        char s[128] = "(";
        for (int k = 0; k < nd; k++) snprintf(s + strlen(s), sizeof s - strlen(s), "%s%lld", k ? ", " : "", (long long)shape[k]);
        error_set(err, errlen, "%s: field 'shape' is %s), want (F, %d): F >= 1 expression codes of expr_dim = %d values "
                  "(the checkpoint's)", what, s, E, E);
        free(bytes);
        return NULL;
    }
    *F = (int)shape[0];
    codes = (float *)mallocCheck(sizeof(float) * (size_t)*F * E);
    memcpy(codes, data, sizeof(float) * (size_t)*F * E);
    free(bytes);
    for (size_t i = 0; i < (size_t)*F * E; i++)
        if (!isfinite(codes[i])) {
            error_set(err, errlen, "%s: code %zu value %zu is not finite", what, i / E, i % E);
            free(codes);
            return NULL;
        }
    return codes;
}

// --frames A:B against a capture of F frames: half-open [A, B) like a Python slice.
static int parse_range(const char *s, int F, int *a, int *b, const char *shard, char *err, size_t errlen) {
    char *e1, *e2;
    long x = strtol(s, &e1, 10), y = *e1 == ':' ? strtol(e1 + 1, &e2, 10) : 0;
    if (*e1 != ':' || e2 == e1 + 1 || *e2)
        return error_set(err, errlen, "--frames '%s': want A:B (frame indices, B exclusive)", s);
    if (x < 0 || y <= x || y > F)
        return error_set(err, errlen, "--frames %ld:%ld is outside the capture: %s has %d frames (0:%d is all of them)",
                         x, y, shard, F, F);
    *a = (int)x, *b = (int)y;
    return 0;
}



// cams [n] images [H, W, 3] → one strip [H, n·W, 3]
static void strip(float *dst, const float *imgs, int n, int W, int H) {
    for (int v = 0; v < n; v++)
        for (int y = 0; y < H; y++)
            memcpy(dst + ((size_t)y * n * W + (size_t)v * W) * 3, imgs + (((size_t)v * H + y) * W) * 3, sizeof(float) * W * 3);
}

static double dot3(const double *a, const double *b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }
static void cross3(double *o, const double *a, const double *b) {
    o[0] = a[1] * b[2] - a[2] * b[1], o[1] = a[2] * b[0] - a[0] * b[2], o[2] = a[0] * b[1] - a[1] * b[0];
}
static void norm3(double *a) {
    double n = sqrt(dot3(a, a));
    for (int k = 0; k < 3; k++) a[k] /= n > 1e-30 ? n : 1;
}

static void cam_centre(const float *w2c, double *o) { // o = −Rᵀt
    for (int k = 0; k < 3; k++)
        o[k] = -(w2c[k] * w2c[3] + w2c[4 + k] * w2c[7] + w2c[8 + k] * w2c[11]);
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

// Median of the Gaussians' positions per axis: the head's centre, robust to stray far-away points.
static void gaussian_centre(const Avatar *a, double *ctr) {
    float *v = (float *)mallocCheck(sizeof(float) * (a->n + 1));
    for (int k = 0; k < 3; k++) {
        for (size_t i = 0; i < a->n; i++) v[i] = a->means[i * 3 + k];
        qsort(v, a->n, sizeof(float), cmp_float);
        ctr[k] = a->n ? v[a->n / 2] : 0;
    }
    free(v);
}

// A camera for the manifest: the matrices the PNG used, and the same as position / look-at / up / vertical
// field of view (what a three.js viewer takes), looking at the head's centre distance.
static cJSON *camera_json(const char *name, const float *w2c, const float *K, int W, int H, const double *ctr) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddItemToObject(o, "w2c", cJSON_CreateFloatArray(w2c, 12));
    cJSON_AddItemToObject(o, "K", cJSON_CreateFloatArray(K, 9));
    cJSON_AddNumberToObject(o, "width", W);
    cJSON_AddNumberToObject(o, "height", H);
    double pos[3], at[3], up[3], d[3];
    cam_centre(w2c, pos);
    for (int k = 0; k < 3; k++) d[k] = ctr[k] - pos[k];
    double dist = sqrt(dot3(d, d));
    for (int k = 0; k < 3; k++) at[k] = pos[k] + dist * w2c[8 + k], up[k] = -w2c[4 + k];
    cJSON_AddItemToObject(o, "position", cJSON_CreateDoubleArray(pos, 3));
    cJSON_AddItemToObject(o, "look_at", cJSON_CreateDoubleArray(at, 3));
    cJSON_AddItemToObject(o, "up", cJSON_CreateDoubleArray(up, 3));
    cJSON_AddNumberToObject(o, "fov_y_deg", 2 * atan(0.5 * H / K[4]) * 180 / M_PI);
    return o;
}

// DIR/animation.mp4 from the PNGs with ffmpeg (H.264, else MPEG-4), written to a temporary name first.
// Returns 1 written, 0 no ffmpeg, -1 failed.
static int make_video(const char *dir, int F, double fps) {
    if (system("command -v ffmpeg > /dev/null 2>&1") != 0) return 0;
    const char *codecs[2] = {"libx264 -preset veryfast -crf 18", "mpeg4 -q:v 3"};
    for (int k = 0; k < 2; k++) {
        char cmd[9000];
        snprintf(cmd, sizeof cmd,
                 "ffmpeg -nostdin -y -loglevel error -framerate %g -i '%s/frame_%%04d.png' -frames:v %d "
                 "-vf 'pad=ceil(iw/2)*2:ceil(ih/2)*2' -c:v %s -pix_fmt yuv420p -f mp4 '%s/animation.mp4.tmp' "
                 "&& mv '%s/animation.mp4.tmp' '%s/animation.mp4'",
                 fps, dir, F, codecs[k], dir, dir, dir);
        if (system(cmd) == 0) return 1;
    }
    return -1;
}


// ------------------------------------------------------------------------------------------------
// one run: everything it holds, freed by anim_free whatever step failed

typedef struct {
    AnimOpts o;
    ModelConfig c;
    float *params, *codes;             // [n_params], [F, E]
    int F, fa, fb;                     // codes; with --frames, frames [fa, fb) of the capture
    char *shards[4096];
    int n_shards;
    const char *shard_path;
    Shard s;                           // the subject's capture (metadata, cameras, codes)
    Sample smp;                        // the training-style sample the inputs come from
    float *rgb, *pos, *conf, *sap, *w2c, *K; // the input views [V, ...]
    int N, W, H;                       // driving views, size of each
    float *cw2c, *cK;                  // [N, 12], [N, 9] the driving cameras at W×H
    char cam_names[16][SHARD_ID_LEN];
    double up[3];                      // the turntable's axis
} Anim;

static void anim_free(Anim *x) {
    shard_close(&x->s);
    for (int d = 0; d < x->n_shards; d++) free(x->shards[d]);
    free(x->params), free(x->codes), free(x->rgb), free(x->pos), free(x->conf), free(x->sap), free(x->w2c), free(x->K);
    free(x->cw2c), free(x->cK);
}

// The checkpoint, and the one shard among --data that holds the subject.
static int anim_open(Anim *x, char *err, size_t errlen) {
    CkptHeader hdr;
    if (checkpoint_load(x->o.ckpt, &x->c, &x->params, &hdr, err, errlen)) {
        char m[4096];
        snprintf(m, sizeof m, "%s", err);
        return error_set(err, errlen, "--checkpoint: %s", m);
    }
    x->n_shards = expand_shards(x->o.data, x->o.ndata, x->shards, 4096, err, errlen);
    if (x->n_shards < 0) return x->n_shards = 0, -1;
    int pick = -1, n_match = 0;
    char seen[1024] = "";
    for (int d = 0; d < x->n_shards; d++) {
        Shard s;
        if (shard_open(&s, x->shards[d], err, errlen)) return -1;
        if (data_capture_matches(s.m.capture, x->o.subject)) pick = pick < 0 ? d : pick, n_match++;
        if (strlen(seen) < 900) snprintf(seen + strlen(seen), sizeof seen - strlen(seen), "%s%s", d ? ", " : "", s.m.capture);
        shard_close(&s);
    }
    if (!n_match)
        return error_set(err, errlen, "--subject %s: no shard among --data holds that capture or subject (they hold: %s)",
                         x->o.subject, seen);
    if (n_match > 1)
        return error_set(err, errlen, "--subject %s matches %d captures; name one capture (among: %s)", x->o.subject,
                         n_match, seen);
    x->shard_path = x->shards[pick];
    if (shard_open(&x->s, x->shard_path, err, errlen)) return -1;
    const ShardMeta *m = &x->s.m;
    const ModelConfig *c = &x->c;
    if (m->W != c->img_w || m->H != c->img_h)
        return error_set(err, errlen, "%s holds %dx%d images, the model (%s) wants img_w x img_h = %dx%d", x->shard_path,
                         m->W, m->H, x->o.ckpt, c->img_w, c->img_h);
    if (c->use_sapiens && (m->sap_w != c->sapiens_w || m->sap_h != c->sapiens_h || m->sap_c != c->sapiens_ch))
        return error_set(err, errlen, "%s: Sapiens maps are %dx%dx%d, the model wants sapiens_w x sapiens_h x sapiens_ch = "
                         "%dx%dx%d", x->shard_path, m->sap_w, m->sap_h, m->sap_c, c->sapiens_w, c->sapiens_h, c->sapiens_ch);
    return 0;
}

// The codes: frames [A, B) of the capture, or the rows of --codes.
static int anim_codes(Anim *x, char *err, size_t errlen) {
    const int E = x->c.expr_dim;
    const ShardMeta *m = &x->s.m;
    if (!x->o.frames) return (x->codes = read_codes_npy(x->o.codes, E, &x->F, err, errlen)) ? 0 : -1;
    if (!m->expr)
        return error_set(err, errlen, "%s: field 'expr': this capture has no expression codes; use --codes FILE", x->shard_path);
    if (m->expr_dim != E)
        return error_set(err, errlen, "%s: field 'expr' has %d values per frame, the model (%s) wants expr_dim = %d",
                         x->shard_path, m->expr_dim, x->o.ckpt, E);
    if (parse_range(x->o.frames, m->n_frames, &x->fa, &x->fb, x->shard_path, err, errlen)) return -1;
    x->F = x->fb - x->fa;
    x->codes = (float *)mallocCheck(sizeof(float) * (size_t)x->F * E);
    memcpy(x->codes, m->expr + (size_t)x->fa * E, sizeof(float) * (size_t)x->F * E);
    for (size_t i = 0; i < (size_t)x->F * E; i++)
        if (!isfinite(x->codes[i]))
            return error_set(err, errlen, "%s: field 'expr': frame %zu (id %d) has no finite code", x->shard_path,
                             x->fa + i / E, m->frame_ids[x->fa + i / E]);
    return 0;
}

// The input views, drawn as training and eval draw a sample (the same seed gives the sample eval scores
// first), and the driving cameras: that sample's target cameras, or --camera, at its target frame.
static int anim_inputs(Anim *x, char *err, size_t errlen) {
    const ModelConfig *c = &x->c;
    const ShardMeta *m = &x->s.m;
    const int V = c->views_in;
    x->N = x->o.camera ? 1 : x->o.views;
    const int Vt = x->N > c->views_target ? x->N : c->views_target;
    LoaderOptions lo = {V, Vt, c->random_timesteps, c->use_dust3r, c->use_sapiens, 1, 1, 0, x->o.seed, NULL, 1, 2, 0, 0};
    Loader L;
    const char *one[1] = {x->shard_path};
    if (loader_open(&L, one, 1, &lo, 0, err, errlen)) return -1;
    const Batch *b = loader_next(&L, err, errlen);
    if (!b) return loader_close(&L), -1;
    const size_t HW = (size_t)c->img_h * c->img_w, nsap = (size_t)c->sapiens_h * c->sapiens_w * c->sapiens_ch;
    x->rgb = (float *)mallocCheck(sizeof(float) * V * HW * 3);
    x->w2c = (float *)mallocCheck(sizeof(float) * V * 12), x->K = (float *)mallocCheck(sizeof(float) * V * 9);
    memcpy(x->rgb, b->rgb, sizeof(float) * V * HW * 3);
    memcpy(x->w2c, b->w2c, sizeof(float) * V * 12), memcpy(x->K, b->K, sizeof(float) * V * 9);
    if (c->use_dust3r) {
        x->pos = (float *)mallocCheck(sizeof(float) * V * HW * 3), x->conf = (float *)mallocCheck(sizeof(float) * V * HW);
        memcpy(x->pos, b->pos, sizeof(float) * V * HW * 3), memcpy(x->conf, b->conf, sizeof(float) * V * HW);
    }
    if (c->use_sapiens) {
        x->sap = (float *)mallocCheck(sizeof(float) * V * nsap);
        memcpy(x->sap, b->sap, sizeof(float) * V * nsap);
    }
    x->smp = b->sample[0];
    const int N = x->N, f0 = x->smp.target_frame;
    x->cw2c = (float *)callocCheck((size_t)N * 12, sizeof(float)), x->cK = (float *)callocCheck((size_t)N * 9, sizeof(float));
    if (!x->o.camera) {
        int n_tgt = x->smp.n_target;
        if (n_tgt >= N) {
            memcpy(x->cw2c, b->tgt_w2c, sizeof(float) * N * 12), memcpy(x->cK, b->tgt_K, sizeof(float) * N * 9);
            for (int v = 0; v < N; v++) snprintf(x->cam_names[v], SHARD_ID_LEN, "%s", m->cam_ids[x->smp.target_cam[v]]);
        }
        loader_close(&L);
        if (n_tgt < N)
            return error_set(err, errlen, "--views %d: frame %d of %s has only %d cameras beside the inputs", N, f0,
                             x->shard_path, n_tgt);
        return 0;
    }
    loader_close(&L);
    int ci = -1;
    for (int k = 0; k < m->n_cams; k++)
        if (!strcmp(m->cam_ids[k], x->o.camera)) ci = k;
    if (ci < 0) {
        char have[600] = "";
        for (int k = 0; k < m->n_cams && strlen(have) < 500; k++)
            snprintf(have + strlen(have), sizeof have - strlen(have), " %s", m->cam_ids[k]);
        return error_set(err, errlen, "--camera %s: %s has no such camera (it has%s)", x->o.camera, x->shard_path, have);
    }
    // its intrinsics at the target frame, or at the nearest frame with its image (the crop follows the head,
    // so K is stored per frame)
    int fk = -1;
    for (int d = 0; d < m->n_frames && fk < 0; d++)
        for (int sg = -1; sg <= 1 && fk < 0; sg += 2) {
            int f = f0 + sg * d;
            if (f >= 0 && f < m->n_frames && x->s.blob[SHARD_IMAGE].len[(size_t)f * m->n_cams + ci] > 0) fk = f;
        }
    if (fk < 0)
        return error_set(err, errlen, "--camera %s: %s has no image of that camera, so no intrinsics", x->o.camera,
                         x->shard_path);
    loader_head_frame_camera(&x->s, f0, ci, x->cw2c);
    for (int k = 0; k < 9; k++) x->cK[k] = (float)m->K[((size_t)fk * m->n_cams + ci) * 9 + k];
    snprintf(x->cam_names[0], SHARD_ID_LEN, "%s", m->cam_ids[ci]);
    return 0;
}

// Output size (K scaled from the stored image to W×H) and the turntable's axis: the capture's mean camera
// "up" at the target frame, in its head frame (dome cameras stand upright).
static int anim_view_setup(Anim *x, char *err, size_t errlen) {
    const ModelConfig *c = &x->c;
    if (x->o.size) {
        if (sscanf(x->o.size, "%dx%d", &x->W, &x->H) != 2 || x->W < 8 || x->H < 8 || x->W > 4096 || x->H > 4096)
            return error_set(err, errlen, "--size '%s': want WxH, 8..4096 each", x->o.size);
    } else {
        int k = 1;
        while (k * c->img_h < 256 && k < 64) k++;
        x->W = k * c->img_w, x->H = k * c->img_h;
    }
    const double sx = (double)x->W / c->img_w, sy = (double)x->H / c->img_h;
    for (int v = 0; v < x->N; v++) {
        float *K = x->cK + v * 9;
        K[0] *= sx, K[1] *= sx, K[2] *= sx, K[4] *= sy, K[5] *= sy;
    }
    memset(x->up, 0, sizeof x->up);
    for (int k = 0; k < x->s.m.n_cams; k++) {
        float w[12];
        loader_head_frame_camera(&x->s, x->smp.target_frame, k, w);
        for (int j = 0; j < 3; j++) x->up[j] -= w[4 + j];
    }
    norm3(x->up);
    if (mkdir_p(x->o.out) || access(x->o.out, W_OK)) return error_set(err, errlen, "--out %s: cannot create or write this folder", x->o.out);
    return 0;
}

static cJSON *manifest_head(const Anim *x) {
    const ShardMeta *m = &x->s.m;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "format", "avat3r-animation");
    cJSON_AddNumberToObject(root, "version", 1);
    cJSON_AddStringToObject(root, "checkpoint", x->o.ckpt);
    cJSON_AddStringToObject(root, "subject", m->capture);
    cJSON_AddStringToObject(root, "shard", x->shard_path);
    cJSON *jc = cJSON_AddObjectToObject(root, "codes");
    cJSON_AddStringToObject(jc, "kind", x->o.frames ? "frames" : "file");
    if (x->o.frames) cJSON_AddNumberToObject(jc, "first", x->fa), cJSON_AddNumberToObject(jc, "end", x->fb);
    else cJSON_AddStringToObject(jc, "path", x->o.codes);
    cJSON_AddNumberToObject(jc, "count", x->F);
    cJSON_AddNumberToObject(jc, "dim", x->c.expr_dim);
    cJSON_AddNumberToObject(root, "fps", x->o.fps);
    cJSON_AddNumberToObject(root, "seed", (double)x->o.seed);
    cJSON *jin = cJSON_AddArrayToObject(root, "inputs");
    for (int v = 0; v < x->c.views_in; v++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "camera", m->cam_ids[x->smp.input_cam[v]]);
        cJSON_AddNumberToObject(e, "frame_index", x->smp.input_frame[v]);
        cJSON_AddNumberToObject(e, "frame_id", m->frame_ids[x->smp.input_frame[v]]);
        cJSON_AddItemToArray(jin, e);
    }
    cJSON_AddNumberToObject(root, "camera_frame_index", x->smp.target_frame);
    cJSON_AddStringToObject(root, "camera_mode", x->o.turntable ? "turntable" : "fixed");
    cJSON_AddNumberToObject(root, "views", x->N);
    cJSON_AddNumberToObject(root, "width", x->W);
    cJSON_AddNumberToObject(root, "height", x->H);
    cJSON_AddItemToObject(root, "up", cJSON_CreateDoubleArray(x->up, 3));
    return root;
}

// Per code: network forward, PLY, render from exactly what the PLY holds, PNG; then the video and the
// manifest. Returns the exit status.
static int anim_run(Anim *x) {
    const ModelConfig *c = &x->c;
    const int N = x->N, W = x->W, H = x->H, F = x->F, E = c->expr_dim;
    const float bg[3] = {1, 1, 1}; // the training background (the packer's default)
    Avat3rBatch in = {x->rgb, x->pos, x->conf, x->sap, x->w2c, x->K, NULL};
    Avatar a;
    char err[256];
    if (avatar_build(&a, c, x->params, &in, W, H, N, bg, x->o.device, err, sizeof err)) {
        fprintf(stderr, "avat3r animate %s\n", err);
        return 2;
    }
    const ShardMeta *m = &x->s.m;
    printf("avat3r animate: %s, inputs", m->capture);
    for (int v = 0; v < c->views_in; v++)
        printf(" cam %s frame %d", m->cam_ids[x->smp.input_cam[v]], m->frame_ids[x->smp.input_frame[v]]);
    printf("; %d codes from %s; %dx%d x %d view(s); %d thread(s)\n", F, x->o.frames ? "the capture's frames" : x->o.codes,
           W, H, N, omp_get_max_threads());
    cJSON *root = manifest_head(x), *jframes = cJSON_CreateArray();
    cJSON_AddItemToObject(root, "background", cJSON_CreateFloatArray(bg, 3));
    PlyGaussians ply;
    memset(&ply, 0, sizeof ply);
    float *png = (float *)mallocCheck(sizeof(float) * (size_t)N * W * H * 3), tw2c[12], tK[9];
    double ctr[3] = {0, 0, 0}, orbit0[3] = {0, 0, 0}, t_net = 0, t_render = 0, t_start = time_now_s();
    int rc = 0;
    for (int k = 0; k < F; k++) {
        double t0 = time_now_s();
        size_t n = avatar_forward(&a, x->codes + (size_t)k * E);
        double t1 = time_now_s();
        if (!n) {
            fprintf(stderr, "avat3r animate: no Gaussian of these inputs has a DUSt3R confidence >= conf_threshold = %g\n",
                    c->conf_threshold);
            rc = 1;
            break;
        }
        // the PLY, and the render from exactly its values: the PNG is the PLY's image bit for bit
        if (ply.n != n) ply_free(&ply), ply_alloc(&ply, n);
        ply_from_activated(&ply, a.means, a.quats, a.scales, a.opac, a.colors);
        ply_to_activated(&ply, a.means, a.quats, a.scales, a.opac, a.colors);
        char pl[64], pn[64], path[4200];
        snprintf(pl, sizeof pl, "frame_%04d.ply", k), snprintf(pn, sizeof pn, "frame_%04d.png", k);
        snprintf(path, sizeof path, "%s/%s", x->o.out, pl);
        ply_write(path, &ply);
        if (k == 0) {
            gaussian_centre(&a, ctr);
            cam_centre(x->cw2c, orbit0);
            for (int j = 0; j < 3; j++) orbit0[j] -= ctr[j];
        }
        const float *rw2c = x->cw2c, *rK = x->cK;
        if (x->o.turntable) { // the first camera's offset from the centre, rotated about the up axis (Rodrigues)
            double th = 2 * M_PI * k / F, cs = cos(th), sn = sin(th), uxo[3], eye[3], ud = dot3(x->up, orbit0);
            cross3(uxo, x->up, orbit0);
            for (int j = 0; j < 3; j++) eye[j] = ctr[j] + orbit0[j] * cs + uxo[j] * sn + x->up[j] * ud * (1 - cs);
            double w2c_d[12];
            camera_look_at_up(w2c_d, eye, ctr, x->up);
            for (int j = 0; j < 12; j++) tw2c[j] = (float)w2c_d[j];
            const float Kt[9] = {x->cK[0], 0, 0.5f * W, 0, x->cK[4], 0.5f * H, 0, 0, 1};
            memcpy(tK, Kt, sizeof Kt);
            rw2c = tw2c, rK = tK;
        }
        double t2 = time_now_s();
        avatar_render(&a, rw2c, rK);
        double t3 = time_now_s();
        strip(png, a.r.image, N, W, H);
        snprintf(path, sizeof path, "%s/%s", x->o.out, pn);
        png_write_rgbf(path, png, N * W, H);
        t_net += t1 - t0, t_render += t3 - t2;
        cJSON *jf = cJSON_CreateObject();
        cJSON_AddNumberToObject(jf, "index", k);
        cJSON_AddStringToObject(jf, "ply", pl);
        cJSON_AddStringToObject(jf, "png", pn);
        cJSON_AddNumberToObject(jf, "gaussians", (double)n);
        if (x->o.frames) {
            cJSON_AddNumberToObject(jf, "frame_index", x->fa + k);
            cJSON_AddNumberToObject(jf, "frame_id", m->frame_ids[x->fa + k]);
        } else {
            cJSON_AddNumberToObject(jf, "code_row", k);
        }
        if (x->o.turntable) cJSON_AddItemToArray(cJSON_AddArrayToObject(jf, "cameras"), camera_json("turntable", rw2c, rK, W, H, ctr));
        cJSON_AddItemToArray(jframes, jf);
        printf("frame %4d/%d: %zu Gaussians, network %.2f s, render %.2f s -> %s, %s\n", k + 1, F, n, t1 - t0, t3 - t2,
               pl, pn);
        fflush(stdout);
    }
    if (rc == 0) {
        cJSON *jcams = cJSON_AddArrayToObject(root, "cameras"); // the fixed cameras (turntable: where it starts)
        for (int v = 0; v < N; v++)
            cJSON_AddItemToArray(jcams, camera_json(x->cam_names[v], x->cw2c + v * 12, x->cK + v * 9, W, H, ctr));
        cJSON_AddItemToObject(root, "centre", cJSON_CreateDoubleArray(ctr, 3));
        cJSON_AddNumberToObject(root, "gaussians", (double)a.n);
        cJSON_AddItemToObject(root, "frames", jframes);
        jframes = NULL;
        int vid = make_video(x->o.out, F, x->o.fps); // before the manifest, which names it only when it exists
        if (vid > 0) cJSON_AddStringToObject(root, "video", "animation.mp4");
        else cJSON_AddNullToObject(root, "video");
        char path[4200];
        snprintf(path, sizeof path, "%s/manifest.json", x->o.out);
        cli_write_json(path, root);
        double total = time_now_s() - t_start;
        printf("%d frames in %.2f s (%.2f frames/s; network %.2f s, render %.2f s, the rest files) -> %s\n", F, total,
               F / total, t_net, t_render, path);
        if (vid > 0) printf("video: %s/animation.mp4 (%g fps)\n", x->o.out, x->o.fps);
        else if (vid == 0) printf("no ffmpeg on PATH: PNGs only (no animation.mp4)\n");
        else fprintf(stderr, "avat3r animate: ffmpeg failed: PNGs only (no animation.mp4)\n");
        printf("viewer: node tools/viewer/serve.mjs %s   (prints the URL to open)\n", x->o.out);
    }
    cJSON_Delete(jframes);
    cJSON_Delete(root);
    free(png);
    ply_free(&ply);
    avatar_free(&a);
    return rc;
}

int cmd_animate(int argc, char **argv) {
    Anim x;
    memset(&x, 0, sizeof x);
    if (parse_opts(argc, argv, &x.o)) return 2;
    if (x.o.threads > 0) omp_set_num_threads(x.o.threads);
    char err[4096];
    int rc = 1;
    if (anim_open(&x, err, sizeof err) || anim_codes(&x, err, sizeof err) || anim_inputs(&x, err, sizeof err) ||
        anim_view_setup(&x, err, sizeof err))
        fprintf(stderr, "avat3r animate: %s\n", err);
    else
        rc = anim_run(&x);
    anim_free(&x);
    return rc;
}
