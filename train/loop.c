// loop.c — the training run (see loop.h and docs/training.md).
#include "loop.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/timer.h"
#include "../common/util.h"
#include "../data/data_config.h"
#include "../data/loader.h"
#include "checkpoint.h"
#include "group_stats.h"
#include "params.h"
#include "step.h"
#include "step_device.h"
#include "png_write.h"

#define MAX_SHARDS 65536
#define MAX_HELD 256

// ------------------------------------------------------------------------------------------------
// run state (written into every training checkpoint as text, beside the training and data keys)

static const CfgKey state_keys[] = {
    {"state_step", CFG_FLOAT, offsetof(RunState, step), 0, 1e15, "0", "completed optimizer steps"},
    {"state_data_cursor", CFG_FLOAT, offsetof(RunState, data_cursor), 0, 1e15, "0", "next micro-batch index"},
    {"state_skipped", CFG_FLOAT, offsetof(RunState, skipped), 0, 1e15, "0", "bad steps skipped"},
    {"state_bad_in_row", CFG_FLOAT, offsetof(RunState, bad_in_row), 0, 1e15, "0", "... in a row"},
    {"state_loss_mean", CFG_FLOAT, offsetof(RunState, loss_mean), 0, 1e30, "0", "running mean loss of good steps"},
    {"state_loss_n", CFG_FLOAT, offsetof(RunState, loss_n), 0, 1e15, "0", "good steps in that mean"},
    {"state_data_drawn", CFG_FLOAT, offsetof(RunState, data_drawn), 0, 1e15, "0", "samples drawn"},
    {"state_data_skipped", CFG_FLOAT, offsetof(RunState, data_skipped), 0, 1e15, "0", "samples skipped: damaged data"},
    {"state_elapsed_s", CFG_FLOAT, offsetof(RunState, elapsed_s), 0, 1e15, "0", "training wall time"},
    {"state_best_psnr", CFG_FLOAT, offsetof(RunState, best_psnr), -1, 1e3, "-1", "best validation PSNR"},
    {"state_world", CFG_FLOAT, offsetof(RunState, world), 1, 1e9, "1", "ranks of the run that wrote it"},
};


static void tables_of(RunConfig *r, CfgTable t[3]) {
    t[0] = (CfgTable){state_keys, (int)(sizeof state_keys / sizeof state_keys[0]), &r->st};
    t[1] = train_config_table(&r->tc);
    t[2] = data_config_table(&r->dc);
}

static char *state_text(RunConfig *r) {
    CfgTable t[3];
    tables_of(r, t);
    return cfg_to_string(t, 3);
}

// ------------------------------------------------------------------------------------------------
// small helpers

static volatile sig_atomic_t g_stop_signal = 0;
static void on_signal(int sig) { g_stop_signal = sig; }

static int is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int expand_shards(const char *const *data, int ndata, char **out, int max, char *err, size_t errlen) {
    int n = 0;
    for (int i = 0; i < ndata; i++) {
        if (!is_dir(data[i])) {
            if (access(data[i], R_OK)) return error_set(err, errlen, "%s: cannot read shard (--data)", data[i]);
            if (n < max) out[n++] = strdup(data[i]);
            continue;
        }
        DIR *d = opendir(data[i]);
        if (!d) return error_set(err, errlen, "%s: cannot open folder (--data): %s", data[i], strerror(errno));
        int first = n;
        for (struct dirent *e; (e = readdir(d));) {
            if (!ends_with(e->d_name, ".h5") || n >= max) continue;
            size_t l = strlen(data[i]) + strlen(e->d_name) + 2;
            out[n] = (char *)mallocCheck(l);
            snprintf(out[n], l, "%s/%s", data[i], e->d_name);
            n++;
        }
        closedir(d);
        qsort(out + first, n - first, sizeof(char *), cmp_str);
        if (n == first) return error_set(err, errlen, "%s: no *.h5 shards in this folder (--data)", data[i]);
    }
    if (!n) return error_set(err, errlen, "no shards given (--data)");
    return n;
}

// Checkpoints in the run folder, by step (ckpt_<step>.ckpt). Returns the count; steps[] ascending.
static int list_checkpoints(const char *dir, long *steps, int max) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        long s;
        char tail[8];
        if (sscanf(e->d_name, "ckpt_%ld.ckp%1s", &s, tail) == 2 && ends_with(e->d_name, ".ckpt") && n < max)
            steps[n++] = s;
    }
    closedir(d);
    for (int i = 1; i < n; i++) // insertion sort: a handful of files
        for (int j = i; j > 0 && steps[j - 1] > steps[j]; j--) {
            long x = steps[j];
            steps[j] = steps[j - 1], steps[j - 1] = x;
        }
    return n;
}

static void ckpt_path(char *buf, size_t n, const char *dir, long step) { snprintf(buf, n, "%s/ckpt_%08ld.ckpt", dir, step); }

static double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

static void fmt_duration(char *buf, size_t n, double s) {
    if (!isfinite(s) || s < 0) snprintf(buf, n, "?");
    else if (s < 60) snprintf(buf, n, "%.0fs", s);
    else if (s < 3600) snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
}

static void json_num(FILE *f, const char *key, double v) {
    if (isfinite(v)) fprintf(f, ",\"%s\":%.9g", key, v);
    else fprintf(f, ",\"%s\":null", key);
}

// The per-group sizes of group_stats.h into the open JSON object of a train line, as "groups":{...}.
static void log_groups(FILE *f, const Trainer *t, const TrainConfig *tc, long step) {
    GroupStats g[NUM_PARAM_GROUPS];
    group_stats(t->m.params, t->m.grads, t->adam_v, t->m.param_sizes, tc->beta2, tc->adam_eps, (uint64_t)step, g);
    fprintf(f, ",\"groups\":{");
    for (int k = 0, first = 1; k < NUM_PARAM_GROUPS; k++) {
        if (!g[k].n) continue;
        fprintf(f, "%s\"%s\":{\"n\":%zu", first ? "" : ",", g[k].name, g[k].n), first = 0;
        json_num(f, "param_rms", g[k].param_rms), json_num(f, "grad_rms", g[k].grad_rms);
        json_num(f, "step_frac", g[k].step_frac), fprintf(f, "}");
    }
    fprintf(f, "}");
}

// On resume the log keeps only the lines of the steps the checkpoint holds: the steps after it are run
// again and logged again, so the log reads as one uninterrupted run.
static void truncate_log(const char *path, long upto_step) {
    FILE *f = fopen(path, "r");
    if (!f) return;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%.4000s.tmp", path);
    FILE *o = fopenCheck(tmp, "w");
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "\"step\":");
        size_t l = strlen(line);
        if (!p || !l || line[l - 1] != '\n') continue; // a torn last line of a killed run
        if (atol(p + 7) <= upto_step) fputs(line, o);
    }
    fclose(f);
    fcloseCheck(o);
    if (rename(tmp, path)) FATAL("cannot rename %s over %s: %s", tmp, path, strerror(errno));
}

// ------------------------------------------------------------------------------------------------
// validation set: a few fixed batches, copied out of a loader once

typedef struct {
    int n;            // batches
    int B, V, Vt, H, W, E, CS, hs, ws;
    float *rgb, *pos, *conf, *sap, *w2c, *K, *expr, *tgt_rgb, *tgt_w2c, *tgt_K, *tgt_mouth; // [n, ...] each
    float *expr_swap; // [B, E] the expression sweep's codes for batch 0
    float *w2c_swap, *K_swap; // [B, Vt, 12], [B, Vt, 9] its target cameras
    // the expression sweep: the first sample's capture at SWEEP frames, from its first target camera
    int sweep_n;
    float *sweep_gt, *sweep_expr, *sweep_w2c, *sweep_K; // [n, H, W, 3], [n, E], [n, 12], [n, 9]
    float *sweep_mouth;                                  // [n, H, W] each frame's mouth region (0: none)
    float *sweep_fixed, *sweep_diff;                     // [H, W, 3] scratch
    int zoom, zx0, zy0;                                  // mouth close-up: factor (0: none), window corner
    char from[64];    // "held-out identities" or "training identities"
} ValSet;
#define SWEEP 8
#define VS_FIELDS 11

static size_t vs_sz(const ValSet *v, int which) {
    size_t B = v->B, V = v->V, Vt = v->Vt, HW = (size_t)v->H * v->W;
    switch (which) {
    case 0: return B * V * HW * 3;            // rgb
    case 1: return B * V * HW * 3;            // pos
    case 2: return B * V * HW;                // conf
    case 3: return B * V * v->hs * v->ws * v->CS; // sap
    case 4: return B * V * 12;                // w2c
    case 5: return B * V * 9;                 // K
    case 6: return B * v->E;                  // expr
    case 7: return B * Vt * HW * 3;           // tgt_rgb
    case 8: return B * Vt * 12;               // tgt_w2c
    case 9: return B * Vt * 9;                // tgt_K
    default: return B * Vt * HW;              // tgt_mouth
    }
}

static float **vs_field(ValSet *v, int which) {
    float **f[VS_FIELDS] = {&v->rgb,  &v->pos,     &v->conf,    &v->sap,   &v->w2c,      &v->K,
                            &v->expr, &v->tgt_rgb, &v->tgt_w2c, &v->tgt_K, &v->tgt_mouth};
    return f[which];
}

static TrainBatch vs_batch(ValSet *v, int i, const ModelConfig *mc) {
    TrainBatch tb;
    memset(&tb, 0, sizeof tb);
    tb.in.rgb = v->rgb + i * vs_sz(v, 0);
    tb.in.pos = mc->use_dust3r ? v->pos + i * vs_sz(v, 1) : NULL;
    tb.in.conf = mc->use_dust3r ? v->conf + i * vs_sz(v, 2) : NULL;
    tb.in.sap = mc->use_sapiens ? v->sap + i * vs_sz(v, 3) : NULL;
    tb.in.w2c = v->w2c + i * vs_sz(v, 4);
    tb.in.K = v->K + i * vs_sz(v, 5);
    tb.in.expr = v->expr + i * vs_sz(v, 6);
    tb.tgt_rgb = v->tgt_rgb + i * vs_sz(v, 7);
    tb.tgt_w2c = v->tgt_w2c + i * vs_sz(v, 8);
    tb.tgt_K = v->tgt_K + i * vs_sz(v, 9);
    tb.tgt_mouth = v->tgt_mouth + i * vs_sz(v, 10);
    return tb;
}

static TrainBatch loader_batch(const Batch *b, const ModelConfig *mc) {
    TrainBatch tb;
    memset(&tb, 0, sizeof tb);
    tb.in = (Avat3rBatch){b->rgb, mc->use_dust3r ? b->pos : NULL, mc->use_dust3r ? b->conf : NULL,
                          mc->use_sapiens ? b->sap : NULL, b->w2c, b->K, b->expr};
    tb.tgt_rgb = b->tgt_rgb, tb.tgt_w2c = b->tgt_w2c, tb.tgt_K = b->tgt_K, tb.tgt_mouth = b->tgt_mouth;
    return tb;
}

// test hooks that change a training micro-batch from a step on (AVAT3R_FAULT_*; −1 = off)
typedef struct {
    long nan_input_from; // one input pixel becomes NaN
    long explode_from;   // the targets ×1e4 (an exploding loss)
} DataHooks;

// The next training micro-batch, for step `label` (1-based, for the log and the hooks): drawn from the loader
// (damaged samples it skipped are logged and added to *drawn / *skipped with the rest of its draws), the
// hooks applied (the batch is ours until the next loader_next), then staged on the device. 0, or −1 with
// the loader's message in err.
static int stage_micro_batch(Loader *L, StepDevice *sd, const ModelConfig *mc, const DataHooks *hk, long label,
                             double *drawn, double *skipped, char *err, size_t errlen) {
    const Batch *b = loader_next(L, err, errlen);
    if (!b) return -1;
    *drawn += b->drawn, *skipped += b->skipped;
    for (int j = 0; j < b->skipped && j < LOADER_SKIP_NOTES; j++)
        LOG_W("step %ld: damaged data skipped and redrawn: %s", label, b->skip_note[j]);
    if (b->skipped > LOADER_SKIP_NOTES)
        LOG_W("step %ld: %d more damaged samples skipped", label, b->skipped - LOADER_SKIP_NOTES);
    if (hk->nan_input_from > 0 && label >= hk->nan_input_from) b->rgb[0] = NAN;
    if (hk->explode_from > 0 && label >= hk->explode_from) {
        const size_t n = (size_t)L->o.micro_batch * mc->views_target * mc->img_h * mc->img_w * 3;
        for (size_t i = 0; i < n; i++) b->tgt_rgb[i] *= 1e4f;
    }
    TrainBatch tb = loader_batch(b, mc);
    step_device_stage(sd, &tb);
    return 0;
}

static int check_loader_dims(const Loader *L, const ModelConfig *mc, const char *what, char *err, size_t errlen) {
    if (L->W != mc->img_w || L->H != mc->img_h)
        return error_set(err, errlen, "%s: the shards hold %dx%d images but the config wants img_w x img_h = %dx%d "
                         "(pack with --size %d, or change the config)", what, L->W, L->H, mc->img_w, mc->img_h, mc->img_w);
    if (L->E != mc->expr_dim)
        return error_set(err, errlen, "%s: the shards' expression codes have %d values but expr_dim = %d", what, L->E,
                         mc->expr_dim);
    if (mc->use_sapiens && (L->sw != mc->sapiens_w || L->sh != mc->sapiens_h || L->sc != mc->sapiens_ch))
        return error_set(err, errlen, "%s: the shards' Sapiens maps are %dx%dx%d but the config wants "
                         "sapiens_w x sapiens_h x sapiens_ch = %dx%dx%d", what, L->sw, L->sh, L->sc, mc->sapiens_w,
                         mc->sapiens_h, mc->sapiens_ch);
    return 0;
}

// The mouth close-up of the sweep grid: one window for all frames (so that the rows compare like with like)
// around the union of the frames' mouth regions, magnified by the largest whole factor (2..8) at which the
// window, W/zoom × H/zoom pixels, still holds the union. zoom = 0 when no frame has a mouth region.
static void sweep_zoom_window(ValSet *v) {
    const int W = v->W, H = v->H;
    int x0 = W, y0 = H, x1 = -1, y1 = -1;
    for (int k = 0; k < v->sweep_n; k++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                if (v->sweep_mouth[((size_t)k * H + y) * W + x] > 0) {
                    x0 = x < x0 ? x : x0, x1 = x > x1 ? x : x1;
                    y0 = y < y0 ? y : y0, y1 = y > y1 ? y : y1;
                }
    v->zoom = 0;
    if (x1 < 0) return;
    int zoom = 8;
    while (zoom > 2 && (W / zoom < x1 - x0 + 1 || H / zoom < y1 - y0 + 1)) zoom--;
    int ww = W / zoom, wh = H / zoom, cx = (x0 + x1 + 1) / 2, cy = (y0 + y1 + 1) / 2;
    v->zx0 = cx - ww / 2, v->zy0 = cy - wh / 2; // centred, then moved inside the image
    v->zx0 = v->zx0 < 0 ? 0 : v->zx0 + ww > W ? W - ww : v->zx0;
    v->zy0 = v->zy0 < 0 ? 0 : v->zy0 + wh > H ? H - wh : v->zy0;
    v->zoom = zoom;
}

// The sweep's ground truth: SWEEP frames spread over the first sample's capture, seen from its first target
// camera, with their expression codes and cameras. Frames without that image are skipped.
static void sweep_load(ValSet *v, Loader *L, const Sample *smp) {
    Shard *s = &L->shards[smp->subject];
    const int c = smp->target_cam[0], F = s->m.n_frames, HW = v->H * v->W;
    v->sweep_gt = (float *)callocCheck((size_t)SWEEP * HW * 3, sizeof(float));
    v->sweep_expr = (float *)callocCheck((size_t)SWEEP * v->E, sizeof(float));
    v->sweep_w2c = (float *)callocCheck(SWEEP * 12, sizeof(float));
    v->sweep_K = (float *)callocCheck(SWEEP * 9, sizeof(float));
    v->sweep_mouth = (float *)callocCheck((size_t)SWEEP * HW, sizeof(float));
    v->sweep_fixed = (float *)callocCheck((size_t)HW * 3, sizeof(float));
    v->sweep_diff = (float *)callocCheck((size_t)HW * 3, sizeof(float));
    uint8_t *rgb = (uint8_t *)mallocCheck((size_t)HW * 3);
    char err[1024];
    v->sweep_n = 0;
    for (int k = 0; k < SWEEP && k < F; k++) {
        int f = (int)((long)k * F / (SWEEP < F ? SWEEP : F));
        if (shard_get_image(s, f, c, rgb, err, sizeof err) != 0 || !s->m.expr) continue;
        int n = v->sweep_n++;
        for (int i = 0; i < HW * 3; i++) v->sweep_gt[(size_t)n * HW * 3 + i] = rgb[i] * (1.0f / 255);
        memcpy(v->sweep_expr + (size_t)n * v->E, s->m.expr + (size_t)f * v->E, sizeof(float) * v->E);
        loader_head_frame_camera(s, f, c, v->sweep_w2c + n * 12);
        for (int j = 0; j < 9; j++) v->sweep_K[n * 9 + j] = (float)s->m.K[((size_t)f * s->m.n_cams + c) * 9 + j];
        if (shard_get_parts(s, f, c, rgb, err, sizeof err) == 0) // labels (HW bytes) into the same scratch
            loader_mouth_region(rgb, v->W, v->H, v->sweep_mouth + (size_t)n * HW);
    }
    free(rgb);
    sweep_zoom_window(v);
}

static int valset_build(ValSet *v, char **shards, int n_shards, const char **held, int n_held, const RunConfig *rc,
                        char *err, size_t errlen) {
    const ModelConfig *mc = &rc->mc;
    const TrainConfig *tc = &rc->tc;
    memset(v, 0, sizeof *v);
    if (tc->val_samples <= 0) return 0;
    LoaderOptions lo = {mc->views_in, mc->views_target, mc->random_timesteps, mc->use_dust3r, mc->use_sapiens,
                        tc->micro_batch, 1, 0, (uint64_t)tc->seed + 0x5eed, NULL, 1, 2, 0, tc->max_skip_rate};
    const char *list[MAX_HELD + 1];
    for (int i = 0; i < n_held; i++) list[i] = held[i];
    list[n_held] = NULL;
    Loader L;
    snprintf(v->from, sizeof v->from, "held-out identities");
    int rc_open = -1;
    if (n_held) {
        lo.held_out = list, lo.only_held_out = 1;
        rc_open = loader_open(&L, (const char *const *)shards, n_shards, &lo, 0, err, errlen);
        if (rc_open) LOG_W("validation: no usable held-out capture (%s); validating on training identities", err);
    } else {
        LOG_W("validation: no held_out captures in the config; validating on training identities (novel views "
              "and frames, not novel identities)");
    }
    if (rc_open) {
        lo.held_out = NULL, lo.only_held_out = 0;
        snprintf(v->from, sizeof v->from, "training identities");
        if (loader_open(&L, (const char *const *)shards, n_shards, &lo, 0, err, errlen)) return -1;
    }
    if (check_loader_dims(&L, mc, "validation data", err, errlen)) {
        loader_close(&L);
        return -1;
    }
    v->B = tc->micro_batch, v->V = mc->views_in, v->Vt = mc->views_target, v->H = mc->img_h, v->W = mc->img_w;
    v->E = mc->expr_dim, v->CS = mc->sapiens_ch, v->hs = mc->sapiens_h, v->ws = mc->sapiens_w;
    v->n = (tc->val_samples + v->B - 1) / v->B;
    for (int k = 0; k < VS_FIELDS; k++)
        *vs_field(v, k) = (float *)callocCheck((size_t)v->n * vs_sz(v, k) + 1, sizeof(float));
    v->expr_swap = (float *)callocCheck(vs_sz(v, 6), sizeof(float));
    v->w2c_swap = (float *)callocCheck(vs_sz(v, 8), sizeof(float));
    v->K_swap = (float *)callocCheck(vs_sz(v, 9), sizeof(float));
    for (int i = 0; i < v->n; i++) {
        const Batch *b = loader_next(&L, err, errlen);
        if (!b) {
            loader_close(&L);
            return -1;
        }
        if (i == 0) sweep_load(v, &L, &b->sample[0]);
        const float *src[VS_FIELDS] = {b->rgb,  b->pos,     b->conf,    b->sap,   b->w2c,      b->K,
                                       b->expr, b->tgt_rgb, b->tgt_w2c, b->tgt_K, b->tgt_mouth};
        for (int k = 0; k < VS_FIELDS; k++)
            if (src[k]) memcpy(*vs_field(v, k) + i * vs_sz(v, k), src[k], sizeof(float) * vs_sz(v, k));
    }
    loader_close(&L);
    return 0;
}

static void valset_free(ValSet *v) {
    for (int k = 0; k < VS_FIELDS; k++) free(*vs_field(v, k));
    free(v->expr_swap), free(v->w2c_swap), free(v->K_swap);
    free(v->sweep_gt), free(v->sweep_expr), free(v->sweep_w2c), free(v->sweep_K), free(v->sweep_mouth);
    free(v->sweep_fixed), free(v->sweep_diff);
    memset(v, 0, sizeof *v);
}


// Grid PNG: per sample one row — the V inputs | the Vt predictions | the Vt ground truths.
typedef struct {
    int rows, cols, W, H;
    uint8_t *px; // [rows·H, cols·W, 3]
} Grid;

static void grid_put(Grid *g, int row, int col, const float *img) {
    const int W = g->W, H = g->H, stride = g->cols * W * 3;
    for (int y = 0; y < H; y++)
        rgb8_from_unit(img + (size_t)y * W * 3, (size_t)W * 3, g->px + (size_t)(row * H + y) * stride + (size_t)col * W * 3);
}

// The window at (x0, y0) of img [H, W, 3], magnified zoom times by repeating pixels, into a cell; what the
// magnified window leaves of the cell (W not a multiple of zoom) stays mid-grey.
static void grid_put_zoom(Grid *g, int row, int col, const float *img, int x0, int y0, int zoom) {
    const int W = g->W, H = g->H, stride = g->cols * W * 3;
    for (int y = 0; y < H; y++) {
        uint8_t *dst = g->px + (size_t)(row * H + y) * stride + (size_t)col * W * 3;
        for (int x = 0; x < W; x++) {
            if (y / zoom >= H / zoom || x / zoom >= W / zoom) {
                dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = 128;
                continue;
            }
            rgb8_from_unit(img + ((size_t)(y0 + y / zoom) * W + x0 + x / zoom) * 3, 3, dst + 3 * x);
        }
    }
}

static void grid_write(const Grid *g, const char *path) { png_write_rgb8(path, g->px, g->cols * g->W, g->rows * g->H); }

typedef struct {
    double psnr, psnr_baseline, l1, ssim;
    double psnr_expr, psnr_expr_fixed; // the expression sweep with each frame's code / the first frame's
    double psnr_mouth;                 // PSNR over the validation targets' mouth regions (NaN: none)
    double psnr_expr_mouth, psnr_expr_mouth_fixed; // the sweep's, over its frames' mouth regions
} ValResult;

// Σ w·(a − b)² and Σ w·C over npx pixels of C channels: a region's squared error and its element count
static void mse_region_acc(const float *a, const float *b, const float *w, size_t npx, int C, double *se, double *n) {
    for (size_t p = 0; p < npx; p++) {
        if (w[p] == 0) continue;
        for (int c = 0; c < C; c++) {
            double d = (double)a[p * C + c] - b[p * C + c];
            *se += w[p] * d * d;
        }
        *n += w[p] * C;
    }
}

// PSNR of a region pooled over images (the regions are small and some images have none): NaN without any
static double psnr_region(double se, double n) { return n > 0 ? psnr_capped(se / n) : NAN; }

// Renders every validation batch (the model, or the trivial baseline) into the grid; returns the mean
// per-image PSNR and fills l1/ssim means.
static double val_pass(StepDevice *sd, ValSet *vs, Grid *grid, int baseline, double *l1, double *ssim,
                       double *psnr_mouth) {
    Trainer *t = sd->t;
    const int B = vs->B, V = vs->V, Vt = vs->Vt;
    const size_t HW3 = (size_t)vs->H * vs->W * 3;
    int n_img = 0, row = 0;
    double psnr = 0, sl1 = 0, sssim = 0, mse_m = 0, n_m = 0;
    for (int i = 0; i < vs->n; i++) {
        TrainBatch tb = vs_batch(vs, i, &t->mc);
        if (baseline) trainer_render_baseline(t, &tb);
        else step_device_render(sd, &tb);
        for (int k = 0; k < B * Vt; k++) psnr += psnr_capped(mse(t->r.image + k * HW3, tb.tgt_rgb + k * HW3, HW3));
        if (psnr_mouth) mse_region_acc(t->r.image, tb.tgt_rgb, tb.tgt_mouth, (size_t)B * Vt * HW3 / 3, 3, &mse_m, &n_m);
        sl1 += l1_forward(t->r.image, tb.tgt_rgb, B * Vt * HW3) * B * Vt;
        sssim += ssim_forward(&t->ssim, t->r.image, tb.tgt_rgb, NULL) * B * Vt;
        n_img += B * Vt;
        for (int b = 0; b < B && row < grid->rows; b++, row++) {
            for (int v = 0; v < V; v++) grid_put(grid, row, v, tb.in.rgb + ((size_t)b * V + v) * HW3);
            for (int v = 0; v < Vt; v++) {
                grid_put(grid, row, V + v, t->r.image + ((size_t)b * Vt + v) * HW3);
                grid_put(grid, row, V + Vt + v, tb.tgt_rgb + ((size_t)b * Vt + v) * HW3);
            }
        }
    }
    if (l1) *l1 = sl1 / n_img;
    if (ssim) *ssim = sssim / n_img;
    if (psnr_mouth) *psnr_mouth = psnr_region(mse_m, n_m);
    return psnr / n_img;
}

// Expression sweep: the first validation sample's avatar (built from its inputs) driven by the expression
// codes of other frames of the same capture, rendered into the first target camera at those frames.
// Row 1: the ground truth of those frames; row 2: the avatar with each frame's code; row 3: what the code
// changed, 0.5 + 4·(row 2 − the same camera with the first frame's code); with part labels, rows 4 and 5:
// rows 1 and 2 magnified around the mouth (sweep_zoom_window). r->psnr_expr: the mean PSNR of
// row 2 against row 1; r->psnr_expr_fixed: the same with the first frame's code everywhere (the gap measures
// how much of the expression the model takes from the code); r->psnr_expr_mouth / _fixed: the same two over
// the frames' mouth regions (pooled; NaN when the shard has no part labels), where the expression shows most.
static void expr_sweep(StepDevice *sd, ValSet *vs, Grid *g, const char *path, ValResult *r) {
    Trainer *t = sd->t;
    const int B = vs->B, E = vs->E, Vt = vs->Vt;
    const size_t HW3 = (size_t)vs->H * vs->W * 3;
    TrainBatch tb = vs_batch(vs, 0, &t->mc);
    memcpy(vs->w2c_swap, tb.tgt_w2c, sizeof(float) * B * Vt * 12);
    memcpy(vs->K_swap, tb.tgt_K, sizeof(float) * B * Vt * 9);
    double psnr[2] = {0, 0}, se[2] = {0, 0}, n[2] = {0, 0}; // [0]: the first frame's code, [1]: each frame's
    const size_t HW = HW3 / 3;
    for (int k = 0; k < vs->sweep_n; k++) {
        grid_put(g, 0, k, vs->sweep_gt + k * HW3);
        memcpy(vs->w2c_swap, vs->sweep_w2c + k * 12, sizeof(float) * 12); // sample 0, target view 0
        memcpy(vs->K_swap, vs->sweep_K + k * 9, sizeof(float) * 9);
        TrainBatch sw = tb;
        sw.in.expr = vs->expr_swap;
        sw.tgt_w2c = vs->w2c_swap, sw.tgt_K = vs->K_swap;
        for (int pass = 0; pass < 2; pass++) { // 0: the first frame's code, 1: this frame's
            const float *code = vs->sweep_expr + (size_t)(pass ? k : 0) * E;
            for (int b = 0; b < B; b++) memcpy(vs->expr_swap + (size_t)b * E, code, sizeof(float) * E);
            step_device_render(sd, &sw);
            psnr[pass] += psnr_capped(mse(t->r.image, vs->sweep_gt + k * HW3, HW3));
            mse_region_acc(t->r.image, vs->sweep_gt + k * HW3, vs->sweep_mouth + k * HW, HW, 3, &se[pass], &n[pass]);
            if (!pass) memcpy(vs->sweep_fixed, t->r.image, sizeof(float) * HW3);
        }
        grid_put(g, 1, k, t->r.image);
        if (g->rows >= 5 && vs->zoom) {
            grid_put_zoom(g, 3, k, vs->sweep_gt + k * HW3, vs->zx0, vs->zy0, vs->zoom);
            grid_put_zoom(g, 4, k, t->r.image, vs->zx0, vs->zy0, vs->zoom);
        }
        for (size_t i = 0; i < HW3; i++) vs->sweep_diff[i] = 0.5f + 4 * (t->r.image[i] - vs->sweep_fixed[i]);
        grid_put(g, 2, k, vs->sweep_diff);
    }
    grid_write(g, path);
    r->psnr_expr = psnr[1] / vs->sweep_n, r->psnr_expr_fixed = psnr[0] / vs->sweep_n;
    r->psnr_expr_mouth = psnr_region(se[1], n[1]), r->psnr_expr_mouth_fixed = psnr_region(se[0], n[0]);
}

// The baseline once per run (val_baseline.png beside the run's grids), then the model.
static ValResult validate(StepDevice *sd, ValSet *vs, Grid *grid, Grid *sweep, const char *dir, long step,
                          double *baseline) {
    char png[4200];
    if (isnan(*baseline)) {
        *baseline = val_pass(sd, vs, grid, 1, NULL, NULL, NULL);
        snprintf(png, sizeof png, "%s/val_baseline.png", dir);
        grid_write(grid, png);
    }
    ValResult r;
    r.psnr = val_pass(sd, vs, grid, 0, &r.l1, &r.ssim, &r.psnr_mouth);
    r.psnr_baseline = *baseline;
    snprintf(png, sizeof png, "%s/val_%08ld.png", dir, step);
    grid_write(grid, png);
    r.psnr_expr = r.psnr_expr_fixed = r.psnr_expr_mouth = r.psnr_expr_mouth_fixed = NAN;
    if (sweep->cols > 1) {
        snprintf(png, sizeof png, "%s/expr_%08ld.png", dir, step);
        expr_sweep(sd, vs, sweep, png, &r);
    }
    return r;
}

// ------------------------------------------------------------------------------------------------
// checkpoints

static void save_checkpoint(const char *dir, RunConfig *rc, Trainer *t, long step) {
    char path[4200];
    ckpt_path(path, sizeof path, dir, step);
    char *state = state_text(rc);
    checkpoint_save_train(path, &rc->mc, t->m.params, t->adam_m, t->adam_v, t->m.n_params, state);
    free(state);
    long steps[4096];
    int n = list_checkpoints(dir, steps, 4096);
    for (int i = 0; i + rc->tc.ckpt_keep < n; i++) { // keep the newest ckpt_keep
        char old[4200];
        ckpt_path(old, sizeof old, dir, steps[i]);
        if (steps[i] != step) remove(old);
    }
}

// One training checkpoint's configs, state and arrays (loop.h).
int run_checkpoint_read(const char *path, RunConfig *rc, float **params, float **m, float **v, char *err,
                        size_t errlen) {
    float *p = NULL, *m1 = NULL, *m2 = NULL;
    char *state = NULL;
    CkptHeader h;
    if (checkpoint_load_train(path, &rc->mc, &p, &m1, &m2, &state, &h, err, errlen)) return -1;
    CfgTable t[3];
    tables_of(rc, t);
    char name[4300];
    snprintf(name, sizeof name, "%s (training state)", path);
    int rc_parse = cfg_defaults(t, 3, err, errlen) || cfg_load_text(state, name, t, 3, err, errlen);
    free(state);
    if (!rc_parse && rc->st.data_cursor != rc->st.step * rc->tc.grad_accum) {
        error_set(err, errlen, "%s: inconsistent training state (step %.0f, data cursor %.0f)", path, rc->st.step,
                  rc->st.data_cursor);
        rc_parse = 1;
    }
    if (rc_parse || !params) free(p), p = NULL;
    if (rc_parse || !m) free(m1), m1 = NULL;
    if (rc_parse || !v) free(m2), m2 = NULL;
    if (rc_parse) return -2;
    if (params) *params = p;
    if (m) *m = m1;
    if (v) *v = m2;
    return 0;
}

// Temporaries "NAME.tmp.<pid>" that a killed run left in the run folder (a checkpoint is ~1 GB at paper
// size): removed when no process <pid> is alive on this machine. A live one (another run writing into
// this folder) is left alone.
static void remove_stale_temporaries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));) {
        const char *t = strstr(e->d_name, ".tmp.");
        char *end = NULL;
        long pid = t ? strtol(t + 5, &end, 10) : 0;
        if (!t || pid <= 0 || *end || pid == (long)getpid() || !(kill((pid_t)pid, 0) != 0 && errno == ESRCH)) continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) == 0) LOG_I("resume: removed %s, left by a killed run", path);
    }
    closedir(d);
}

// Loads the newest checkpoint of the run that verifies (a corrupt newest one is reported and skipped).
// Returns 1 loaded, 0 none in the folder, −1 error.
static int load_latest(const char *dir, RunConfig *rc, float **params, float **m, float **v, char *err, size_t errlen) {
    long steps[4096];
    int n = list_checkpoints(dir, steps, 4096);
    for (int i = n - 1; i >= 0; i--) {
        char path[4200];
        ckpt_path(path, sizeof path, dir, steps[i]);
        int r = run_checkpoint_read(path, rc, params, m, v, err, errlen);
        if (r == -1) {
            LOG_W("resume: skipping %s: %s", path, err);
            continue;
        }
        if (r == 0 && (long)rc->st.step != steps[i]) {
            free(*params), free(*m), free(*v);
            r = error_set(err, errlen, "%s: inconsistent training state (it holds step %.0f)", path, rc->st.step);
        }
        if (r) return -1;
        LOG_I("resume: %s (step %.0f)", path, rc->st.step);
        return 1;
    }
    if (n) return error_set(err, errlen, "%s: no checkpoint in the run folder verifies (see the warnings above)", dir);
    return 0;
}

// ------------------------------------------------------------------------------------------------

static int load_config(const TrainRunOptions *o, RunConfig *rc, float **params, float **m, float **v,
                       int *ckpt_micro_batch, char *err, size_t errlen) {
    CfgTable t[3];
    tables_of(rc, t);
    int loaded = 0;
    if (o->resume) {
        loaded = load_latest(o->out, rc, params, m, v, err, errlen);
        if (loaded < 0) return -1;
        if (!loaded) LOG_I("resume: no checkpoint in %s yet; starting a new run", o->out);
        if (loaded) *ckpt_micro_batch = rc->tc.micro_batch;
    }
    if (!loaded) {
        if (!o->config) return error_set(err, errlen, "--config is required for a new run");
        if (cfg_defaults(t, 1, err, errlen)) return -1;
        if (model_config_load_with(&rc->mc, o->config, t + 1, 2, err, errlen)) return -1;
    }
    // command-line overrides; a resumed run may change training keys (e.g. val_every), never the model
    CfgTable all[4] = {model_config_table(&rc->mc), t[1], t[2], t[0]};
    ModelConfig before = rc->mc;
    CfgTable bt = model_config_table(&before);
    char *before_txt = cfg_to_string(&bt, 1);
    for (int i = 0; i < o->nsets; i++)
        if (cfg_set(o->sets[i], "--set", all, 3, err, errlen)) {
            free(before_txt);
            return -1;
        }
    if (o->steps > 0) rc->tc.steps = (int)o->steps;
    CfgTable at = model_config_table(&rc->mc);
    char *after_txt = cfg_to_string(&at, 1);
    int changed = strcmp(before_txt, after_txt);
    free(before_txt), free(after_txt);
    if (loaded && changed) return error_set(err, errlen, "--set: a resumed run cannot change model keys");
    if (model_config_validate(&rc->mc, err, errlen) || train_config_validate(&rc->tc, err, errlen)) return -1;
    return loaded;
}

// ------------------------------------------------------------------------------------------------
// several ranks (train/dist.h, docs/distributed.md)

// What every rank must agree on before the first step: the configuration, the parameters and AdamW
// moments it starts from, the step, and the data it sees.
typedef struct {
    uint32_t config_crc, state_crc;
    int64_t step, n_shards, n_pairs;
} RankFacts;

static RankFacts rank_facts(RunConfig *rc, const Trainer *t, const Loader *L) {
    RankFacts f;
    memset(&f, 0, sizeof f);
    CfgTable tt[3];
    tables_of(rc, tt);
    CfgTable all[3] = {model_config_table(&rc->mc), tt[1], tt[2]};
    char *txt = cfg_to_string(all, 3);
    f.config_crc = crc32_update(0, txt, strlen(txt));
    free(txt);
    const size_t nb = sizeof(float) * t->m.n_params;
    f.state_crc = crc32_update(crc32_update(crc32_update(0, t->m.params, nb), t->adam_m, nb), t->adam_v, nb);
    f.step = (int64_t)rc->st.step, f.n_shards = L->n_shards, f.n_pairs = L->sampler.n_pairs;
    return f;
}

// Every rank gets every rank's facts; all of them reach the same verdict. 0, or −1 with the first
// disagreement in err (offender: this rank is one of those that differ from rank 0).
static int ranks_agree(Dist *d, const RankFacts *mine, const char *what_check, const char *when, int *offender,
                       char *err, size_t errlen) {
    RankFacts *all = (RankFacts *)callocCheck((size_t)d->world, sizeof *all);
    *offender = 0;
    if (dist_allgather_bytes(d, mine, sizeof *mine, all, what_check)) {
        free(all);
        return error_set(err, errlen, "%s", d->err);
    }
    int bad = 0, first = -1;
    for (int r = 1; r < d->world; r++) {
        const RankFacts *a = &all[r], *z = &all[0];
        int differs = a->step != z->step || a->state_crc != z->state_crc || a->config_crc != z->config_crc ||
                      a->n_shards != z->n_shards || a->n_pairs != z->n_pairs;
        bad += differs;
        if (differs && first < 0) first = r;
        if (differs && r == d->rank) *offender = 1;
    }
    if (bad) {
        const RankFacts *a = &all[first], *z = &all[0];
        char what[600];
        if (a->step != z->step)
            snprintf(what, sizeof what, "it starts at step %lld, rank 0 at step %lld (the run folder must be on a "
                     "filesystem every rank sees, and every rank needs the same --resume)", (long long)a->step, (long long)z->step);
        else if (a->config_crc != z->config_crc)
            snprintf(what, sizeof what, "its configuration differs from rank 0's (every rank needs the same --config, "
                     "--set and --steps)");
        else if (a->state_crc != z->state_crc)
            snprintf(what, sizeof what, "its parameters or AdamW moments differ from rank 0's (another checkpoint file, "
                     "or another build of avat3r?)");
        else
            snprintf(what, sizeof what, "it sees other data than rank 0 (%lld shards with %lld usable frames, rank 0: %lld "
                     "with %lld; every rank needs the same --data)", (long long)a->n_shards, (long long)a->n_pairs,
                     (long long)z->n_shards, (long long)z->n_pairs);
        error_set(err, errlen, "rank %d%s disagrees with rank 0 %s: %s", first, bad > 1 ? " (and others)" : "", when, what);
    }
    free(all);
    return bad ? -1 : 0;
}

// A failure while starting: say it; with several ranks, tell the others why this rank stops.
static int start_failed(Dist *d, const char *msg) {
    LOG_E("%s", msg);
    if (d->world > 1) dist_abort(d, msg);
    dist_free(d);
    return 1;
}

static double default_dist_timeout(void) {
    TrainConfig tc;
    char err[256];
    CfgTable t = train_config_table(&tc);
    return cfg_defaults(&t, 1, err, sizeof err) ? 300 : tc.dist_timeout;
}

int train_run(const TrainRunOptions *o) {
    char err[2048], msg[2400];
    Dist d;
    DistFlags df = o->dist;
    if (!df.run_tag) df.run_tag = o->out;
    if (dist_resolve(&d, &df, err, sizeof err)) {
        LOG_E("%s", err);
        return 1;
    }
    const int lead = d.rank == 0, multi = d.world > 1;
    if (!lead) log_set_level(LOG_WARN); // rank 0 speaks for the run; the others report only problems
#define START_FAIL(...)                                  \
    do {                                                 \
        snprintf(msg, sizeof msg, __VA_ARGS__);          \
        return start_failed(&d, msg);                    \
    } while (0)
    // a failed collective (another rank died, hung or stopped the run): say why and end with status 4
#define RANKS_OR_STOP(call)                              \
    do {                                                 \
        if (call) {                                      \
            LOG_E("%s", d.err);                          \
            status = 4;                                  \
            goto done;                                   \
        }                                                \
    } while (0)
    RunConfig rc;
    memset(&rc, 0, sizeof rc);
    float *params = NULL, *mom1 = NULL, *mom2 = NULL;
    int resumed, ckpt_mb = 0;
    if (lead && mkdir(o->out, 0755) && errno != EEXIST) {
        snprintf(err, sizeof err, "%s: cannot create the run folder: %s", o->out, strerror(errno));
        resumed = -1;
    } else {
        // the rank that writes the run folder cleans it: another node's pids mean nothing here
        if (lead && o->resume) remove_stale_temporaries(o->out);
        resumed = load_config(o, &rc, &params, &mom1, &mom2, &ckpt_mb, err, sizeof err);
    }
    if (multi) {
        // a rank whose configuration failed still joins, so that the others hear why instead of waiting for it
        char cerr[1200];
        if (dist_connect(&d, resumed >= 0 ? rc.tc.dist_timeout : default_dist_timeout(), cerr, sizeof cerr)) {
            if (resumed < 0) LOG_E("%s", err);
            LOG_E("%s", cerr);
            dist_free(&d);
            return resumed < 0 ? 1 : 4;
        }
        uint32_t id_crc = crc32_update(0, d.unique_id, DIST_ID_BYTES);
        LOG_I("data parallel: rank %d of %d (local rank %d) from %s; rank 0 at %s:%d; unique id %08x", d.rank, d.world,
              d.local_rank, d.source, d.host, d.port, (unsigned)id_crc);
    }
    if (resumed < 0) START_FAIL("%s", err);
    const double ckpt_world = resumed ? rc.st.world : 0;
    if (!resumed) rc.st.best_psnr = -1;
    rc.st.world = d.world;
    ModelConfig *mc = &rc.mc;
    TrainConfig *tc = &rc.tc;
    if (tc->threads > 0) omp_set_num_threads(tc->threads);
    if (mc->views_target > 64 || tc->micro_batch > 64) // the loader's Batch holds ≤ 64 samples
        START_FAIL("micro_batch %d: at most 64", tc->micro_batch);
    const char *device = o->device ? o->device : "cpu"; // where the step runs (train/step_device.h)
    if (step_device_check(device, err, sizeof err)) START_FAIL("%s", err);

    // the effective config, for people and for `--config RUN/config.cfg`
    char path[4200];
    snprintf(path, sizeof path, "%s/config.cfg", o->out);
    if (lead) {
        CfgTable t[3];
        tables_of(&rc, t);
        CfgTable all[3] = {model_config_table(mc), t[1], t[2]};
        AtomicFile af;
        atomicOpen(&af, path);
        fprintf(af.f, "# written by avat3r train: the run's effective configuration\n");
        cfg_write(af.f, all, 3);
        atomicClose(&af);
    }

    // data
    char **shards = (char **)callocCheck(MAX_SHARDS, sizeof(char *));
    int n_shards = expand_shards(o->data, o->ndata, shards, MAX_SHARDS, err, sizeof err);
    if (n_shards < 0) START_FAIL("%s", err);
    char held_buf[CFG_STR_MAX];
    const char *held[MAX_HELD + 1];
    int n_held = data_held_out_list(&rc.dc, held_buf, sizeof held_buf, held, MAX_HELD);
    held[n_held] = NULL;
    ValSet vs;
    memset(&vs, 0, sizeof vs);
    if (lead && valset_build(&vs, shards, n_shards, held, n_held, &rc, err, sizeof err)) START_FAIL("%s", err);
    long step = (long)rc.st.step;
    LoaderOptions lo = {mc->views_in, mc->views_target, mc->random_timesteps, mc->use_dust3r, mc->use_sapiens,
                        tc->micro_batch, d.world, d.rank, (uint64_t)tc->seed, n_held ? held : NULL,
                        tc->loader_threads, tc->loader_threads + 2, 0, tc->max_skip_rate};
    Loader L;
    if (loader_open(&L, (const char *const *)shards, n_shards, &lo, (uint64_t)rc.st.data_cursor, err, sizeof err))
        START_FAIL("training data: %s", err);
    if (check_loader_dims(&L, mc, "training data", err, sizeof err)) START_FAIL("%s", err);

    // LPIPS
    LpipsWeights lw;
    int have_lpips = 0;
    if (tc->w_lpips > 0 && tc->lpips_weights[0]) {
        if (lpips_weights_load(&lw, tc->lpips_weights, err, sizeof err)) START_FAIL("key 'lpips_weights': %s", err);
        if (lw.net != lpips_net_from_name(tc->lpips_net))
            START_FAIL("key 'lpips_weights': %s holds the other backbone than lpips_net = %s", tc->lpips_weights,
                       tc->lpips_net);
        if (lpips_check_size(lw.net, mc->img_h, mc->img_w, err, sizeof err)) START_FAIL("key 'lpips_net': %s", err);
        have_lpips = 1;
        LOG_I("LPIPS (%s) from step %d with weight %g", tc->lpips_net, train_lpips_start(tc), tc->w_lpips);
    } else if (lead) {
        LOG_W("LPIPS is OFF: %s; the loss is %g·L1 + %g·(1−SSIM)",
              tc->w_lpips > 0 ? "no weights file (key lpips_weights; tools/convert_lpips.py makes one)" : "w_lpips = 0",
              tc->w_l1, tc->w_ssim);
    }

    // model, optimizer
    Trainer t;
    trainer_build(&t, mc, tc, have_lpips ? &lw : NULL);
    if (resumed) {
        memcpy(t.m.params, params, sizeof(float) * t.m.n_params);
        memcpy(t.adam_m, mom1, sizeof(float) * t.m.n_params);
        memcpy(t.adam_v, mom2, sizeof(float) * t.m.n_params);
        free(params), free(mom1), free(mom2);
    } else {
        avat3r_init_params(&t.m, (uint64_t)tc->seed);
    }
    // the CPU trainer above runs the step, or holds the host copies of a GPU trainer that starts from its state
    StepDevice sd;
    if (step_device_open(&sd, &t, device, d.local_rank, err, sizeof err)) FATAL("%s", err); // checked above
    LOG_I("model: %zu parameters; %d shards (%d held out); micro-batch %d x %d accumulated; %d threads; "
          "validation on %d samples of %s", t.m.n_params, n_shards, n_held, tc->micro_batch, tc->grad_accum,
          omp_get_max_threads(), vs.n * vs.B, vs.from);
    if (resumed && (ckpt_world != d.world || ckpt_mb != tc->micro_batch)) {
        // the loader draws global samples (cursor·world + rank)·micro_batch + b: what a micro-step consumes is
        // world·micro_batch samples, and the sequence continues exactly when that product is unchanged
        double old_per = ckpt_world * ckpt_mb, new_per = (double)d.world * tc->micro_batch;
        if (old_per == new_per)
            LOG_I("resume: the checkpoint was written by %.0f rank(s) x micro_batch %d, this run has %d x %d: the same "
                  "%.0f samples per micro-step, so the sample sequence continues exactly", ckpt_world, ckpt_mb, d.world,
                  tc->micro_batch, new_per);
        else
            LOG_W("resume: the checkpoint was written by %.0f rank(s) x micro_batch %d (%.0f samples per micro-step), this "
                  "run has %d x %d (%.0f): parameters and AdamW state carry over exactly, but the sample order differs "
                  "from an uninterrupted run: it continues at global sample %.0f where that run would have drawn %.0f "
                  "(docs/distributed.md)", ckpt_world, ckpt_mb, old_per, d.world, tc->micro_batch, new_per,
                  rc.st.data_cursor * new_per, rc.st.data_cursor * old_per);
    }
    FILE *logf = NULL;
    Grid grid = {0, 0, 0, 0, NULL}, sweep = {0, 0, 0, 0, NULL};
    int status = 0, nccl = 0; // nccl: the GPU ranks average their gradients through NCCL
    if (multi) {
        RankFacts f = rank_facts(&rc, &t, &L);
        int offender = 0;
        if (ranks_agree(&d, &f, "the start-up check", "before the first step", &offender, err, sizeof err)) {
            if (lead || offender || d.broken) LOG_E("%s", err);
            status = d.broken ? 4 : 1;
            goto done;
        }
        LOG_I("data parallel: %d ranks agree on the configuration, the starting parameters (step %ld) and the data; "
              "%d samples per optimizer step in all (micro_batch %d x grad_accum %d x %d ranks); gradients averaged "
              "across ranks before clipping and AdamW; dist_timeout %g s", d.world, step,
              tc->micro_batch * tc->grad_accum * d.world, tc->micro_batch, tc->grad_accum, d.world, tc->dist_timeout);
    }
    // GPU ranks average their gradients through NCCL when the build has it; AVAT3R_NCCL_SINGLE sends a single
    // process through the same path, a check that it matches the plain step (docs/distributed.md)
    if (sd.cuda && (multi || getenv("AVAT3R_NCCL_SINGLE"))) {
        nccl = step_device_nccl_init(&sd, &d, err, sizeof err);
        if (nccl < 0) {
            LOG_E("%s", err);
            status = 4;
            goto done;
        }
        LOG_I("%s: gradients averaged %s", multi ? "data parallel on GPUs" : "AVAT3R_NCCL_SINGLE, one rank",
              nccl ? "on the devices through NCCL" : multi ? "through the host (this build has no NCCL)"
                                                           : "by nobody: this build has no NCCL");
    }

    // logs
    snprintf(path, sizeof path, "%s/log.jsonl", o->out);
    if (lead) {
        if (resumed) truncate_log(path, step);
        else remove(path);
        logf = fopenCheck(path, "a");
    }
    grid = (Grid){vs.n * vs.B < 4 ? vs.n * vs.B : 4, mc->views_in + 2 * mc->views_target, mc->img_w, mc->img_h, NULL};
    grid.px = (uint8_t *)callocCheck((size_t)(grid.rows ? grid.rows : 1) * grid.H * grid.cols * grid.W * 3, 1);
    sweep = (Grid){vs.zoom ? 5 : 3, vs.sweep_n, mc->img_w, mc->img_h, NULL};
    sweep.px = (uint8_t *)callocCheck((size_t)sweep.rows * sweep.H * (sweep.cols ? sweep.cols : 1) * sweep.W * 3, 1);
    double baseline = NAN;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    const long fault_rank = env_long("AVAT3R_FAULT_RANK");
    const int fault_here = fault_rank < 0 || fault_rank == d.rank;
    const long kill_at = fault_here ? env_long("AVAT3R_FAULT_KILL_AT_STEP") : -1;
    const long term_at = fault_here ? env_long("AVAT3R_FAULT_SIGTERM_AT_STEP") : -1;
    const long nan_from = fault_here ? env_long("AVAT3R_FAULT_NAN_FROM_STEP") : -1;
    const long hang_at = fault_here ? env_long("AVAT3R_FAULT_HANG_AT_STEP") : -1;
    const long inf_act_from = fault_here ? env_long("AVAT3R_FAULT_INF_ACT_FROM_STEP") : -1;
    const DataHooks hooks = {fault_here ? env_long("AVAT3R_FAULT_NAN_INPUT_FROM_STEP") : -1,
                             fault_here ? env_long("AVAT3R_FAULT_EXPLODE_FROM_STEP") : -1};
    // With --device cuda the next micro-batch is fetched and its upload started while the GPU runs the current
    // one (between step_device_micro_launch and _finish). Checkpoints count micro-steps run (data_cursor), so
    // a micro-batch fetched ahead and never run (the run stopped) is drawn again on resume. A fetch that fails
    // is reported when its micro-batch is due, as without the look-ahead.
    const int ahead = sd.cuda;
    int have_next = 0, next_failed = 0;
    double next_drawn = 0, next_skipped = 0; // the staged micro-batch's draws, counted in the step that runs it
    char data_err[512] = "";
    if (L.n_unreadable)
        LOG_W("training data: %d of %d shards cannot be read and are left out (max_skip_rate %g); the first: %s",
              L.n_unreadable, n_shards, tc->max_skip_rate, L.unreadable);

// a full disk must not silently drop log lines: a failed flush of log.jsonl stops the run
#define LOG_FLUSH_OR_STOP()                                                                                       \
    do {                                                                                                          \
        if (fflush(logf) != 0 || ferror(logf)) {                                                                  \
            snprintf(msg, sizeof msg, "%s/log.jsonl: write failed (%s): disk full? the last checkpoint is intact", \
                     o->out, strerror(errno));                                                                    \
            LOG_E("%s", msg);                                                                                     \
            dist_abort(&d, msg);                                                                                  \
            status = 1;                                                                                           \
            goto done;                                                                                            \
        }                                                                                                         \
    } while (0)
    const int lp_start = train_lpips_start(tc);
    const double samples_per_step = (double)tc->micro_batch * tc->grad_accum * d.world;
    double t_run0 = time_now_s(), ema_step_s = NAN, elapsed0 = rc.st.elapsed_s;
    long saved_at = step;
    LOG_I("training: steps %ld..%d, lr %g (%s, warm-up %d), run folder %s", step + 1, tc->steps, tc->lr,
          tc->lr_schedule, tc->warmup_steps, o->out);
    while (step < tc->steps) {
        double t0 = time_now_s(), t_data = 0;
        step_device_zero_grad(&sd);
        LossTerms acc = {0, 0, 0, 0, 0};
        int with_lp = have_lpips && step >= lp_start, with_mouth = tc->w_mouth > 0;
        double drawn = 0, dskipped = 0; // samples drawn and skipped for damaged data in this step (this rank)
        long nonfinite_gauss = 0;
        for (int k = 0; k < tc->grad_accum; k++) {
            double td = time_now_s();
            if (!have_next) next_failed = stage_micro_batch(&L, &sd, mc, &hooks, step + 1, &next_drawn, &next_skipped,
                                                            data_err, sizeof data_err) != 0;
            t_data += time_now_s() - td;
            have_next = 0;
            if (next_failed) {
                snprintf(msg, sizeof msg, "training data: %s", data_err);
                LOG_E("%s", msg);
                dist_abort(&d, msg); // several ranks: the others stop with this message
                status = 1;
                goto done;
            }
            drawn += next_drawn, dskipped += next_skipped;
            next_drawn = next_skipped = 0;
            t.fault_inf_act = inf_act_from > 0 && step + 1 >= inf_act_from;
            const int last_micro = k + 1 == tc->grad_accum;
            // the gradient hook: NaN before the last backward, which adds to it (so that with NCCL the poison
            // is in the buffer before its bucket is reduced during that backward)
            if (last_micro && nan_from > 0 && step + 1 >= nan_from) step_device_poison_grad(&sd);
            step_device_reduce_in_backward(&sd, nccl && last_micro); // NCCL: the all-reduce overlaps this backward
            step_device_micro_launch(&sd, 1.0 / tc->grad_accum, with_lp);
            step_device_reduce_in_backward(&sd, 0);
            if (ahead && !(last_micro && step + 1 == tc->steps)) { // the GPU is busy: fetch the next one
                td = time_now_s();
                const long label = last_micro ? step + 2 : step + 1;
                next_failed = stage_micro_batch(&L, &sd, mc, &hooks, label, &next_drawn, &next_skipped, data_err,
                                                sizeof data_err) != 0;
                have_next = 1;
                t_data += time_now_s() - td;
            }
            LossTerms l = step_device_micro_finish(&sd);
            nonfinite_gauss += t.n_nonfinite_gauss;
            acc.loss += l.loss / tc->grad_accum, acc.l1 += l.l1 / tc->grad_accum, acc.ssim += l.ssim / tc->grad_accum;
            acc.lpips += with_lp ? l.lpips / tc->grad_accum : 0;
            acc.l1_mouth += with_mouth ? l.l1_mouth / tc->grad_accum : 0;
        }
        if (!with_lp) acc.lpips = NAN;
        if (!with_mouth) acc.l1_mouth = NAN;
        // several ranks: the mean gradient (the same bits on every rank, so the updates stay identical), the
        // mean loss terms, and whether any rank was asked to stop (so that all stop after the same step)
        int stop_all = 0;
        double t_comm = 0;
        if (multi) {
            double tc0 = time_now_s();
            d.step = step + 1;
            double v[8] = {acc.loss, acc.l1,  acc.ssim, with_lp ? acc.lpips : 0, g_stop_signal ? 1 : 0,
                           drawn,    dskipped, with_mouth ? acc.l1_mouth : 0};
            if (nccl) { // the TCP collective first: it finds a dead or hung rank (dist_timeout), NCCL would wait
                RANKS_OR_STOP(dist_allreduce_sum_f64(&d, v, 8, "the loss all-reduce"));
                step_device_allreduce_grads(&sd);
            } else { // the CPU, or GPUs without NCCL: through the host
                step_device_grads_to_host(&sd);
                RANKS_OR_STOP(dist_allreduce_mean_f32(&d, t.m.grads, t.m.n_params, "the gradient all-reduce") ||
                              dist_allreduce_sum_f64(&d, v, 8, "the loss all-reduce"));
                step_device_grads_from_host(&sd);
            }
            acc.loss = v[0] / d.world, acc.l1 = v[1] / d.world, acc.ssim = v[2] / d.world;
            if (with_lp) acc.lpips = v[3] / d.world;
            if (with_mouth) acc.l1_mouth = v[7] / d.world;
            stop_all = v[4] > 0;
            drawn = v[5], dskipped = v[6]; // every rank counts the same totals, so all stop together
            t_comm = time_now_s() - tc0;
        } else if (nccl) { // one rank through NCCL (AVAT3R_NCCL_SINGLE): the path of many, on one GPU
            step_device_allreduce_grads(&sd);
        }
        double lr = train_lr(tc, step), norm = NAN;
        // a bad step changes nothing: a non-finite loss, a loss spike (loss_spike × the running mean of the
        // good steps, once 20 are in), or a non-finite gradient norm (trainer_update then leaves the
        // parameters and moments alone)
        char whybuf[96];
        const char *why = NULL;
        if (!isfinite(acc.loss) && nonfinite_gauss)
            snprintf(whybuf, sizeof whybuf, "non-finite Gaussians (%ld on rank %d)", nonfinite_gauss, d.rank), why = whybuf;
        else if (!isfinite(acc.loss))
            why = "non-finite loss";
        else if (tc->loss_spike > 0 && rc.st.loss_n >= 20 && acc.loss > tc->loss_spike * rc.st.loss_mean)
            why = "loss spike";
        if (!why) {
            norm = step_device_update(&sd, step, &lr);
            if (!isfinite(norm)) why = "non-finite gradient";
        }
        const int bad = why != NULL;
        if (!bad) { // the running mean loss_spike compares with: the last ~100 good steps
            rc.st.loss_n++;
            rc.st.loss_mean += (acc.loss - rc.st.loss_mean) / fmin(rc.st.loss_n, 100);
        }
        rc.st.data_drawn += drawn, rc.st.data_skipped += dskipped;
        step++;
        double dt = time_now_s() - t0;
        ema_step_s = isnan(ema_step_s) ? dt : 0.9 * ema_step_s + 0.1 * dt;
        rc.st.step = step;
        rc.st.data_cursor = (double)step * tc->grad_accum;
        rc.st.elapsed_s = elapsed0 + time_now_s() - t_run0;
        if (bad) {
            rc.st.skipped++, rc.st.bad_in_row++;
            if (lead)
                LOG_W("step %ld: %s (loss %g, running mean %g, gradient norm %g): step skipped, parameters unchanged "
                      "(%.0f in a row, limit max_bad_steps = %d)", step, why, acc.loss, rc.st.loss_mean, norm,
                      rc.st.bad_in_row, tc->max_bad_steps);
        } else {
            rc.st.bad_in_row = 0;
        }
        if (lead) {
            fprintf(logf, "{\"kind\":\"train\",\"step\":%ld", step);
            json_num(logf, "loss", acc.loss), json_num(logf, "l1", acc.l1), json_num(logf, "ssim", acc.ssim);
            json_num(logf, "lpips", acc.lpips), json_num(logf, "lr", lr), json_num(logf, "grad_norm", norm);
            if (with_mouth) json_num(logf, "l1_mouth", acc.l1_mouth);
            json_num(logf, "step_s", dt), json_num(logf, "data_s", t_data);
            if (multi) json_num(logf, "comm_s", t_comm);
            json_num(logf, "samples_per_s", samples_per_step / dt);
            fprintf(logf, ",\"skipped\":%d,\"data_skipped\":%.0f", bad, dskipped);
            if (!bad && step % tc->log_every == 0) {
                step_device_pull(&sd, 1);
                log_groups(logf, &t, tc, step);
            }
            fprintf(logf, "}\n");
            LOG_FLUSH_OR_STOP();
        }
        if (lead && (step % tc->log_every == 0 || step == 1 || step == tc->steps)) {
            char eta[32], lps[32];
            fmt_duration(eta, sizeof eta, ema_step_s * (tc->steps - step));
            if (isfinite(acc.lpips)) snprintf(lps, sizeof lps, "%.4f", acc.lpips);
            else snprintf(lps, sizeof lps, "-");
            printf("step %6ld/%d | loss %.5f (l1 %.5f ssim %.4f lpips %s) | lr %.2e | |g| %.3f | %.2f samples/s | "
                   "data %2.0f%% | ETA %s\n",
                   step, tc->steps, acc.loss, acc.l1, acc.ssim, lps, lr, norm, samples_per_step / ema_step_s,
                   100 * t_data / dt, eta);
            fflush(stdout);
        }
        if (rc.st.bad_in_row >= tc->max_bad_steps) { // every rank sees the same losses and norms: all stop here
            LOG_E("stopping: %.0f bad steps (non-finite or loss spikes) in a row (limit max_bad_steps = %d) at step "
                  "%ld; parameters are those of step %ld; last good checkpoint in %s. Lower lr or check the data.",
                  rc.st.bad_in_row, tc->max_bad_steps, step, step - (long)rc.st.bad_in_row, o->out);
            status = 3;
            goto done;
        }
        // damaged data: a budget of max_skip_rate × max(drawn, skip_rate_after) skipped samples
        if (rc.st.data_skipped > tc->max_skip_rate * fmax(rc.st.data_drawn, tc->skip_rate_after)) {
            LOG_E("stopping at step %ld: %.0f of the %.0f samples drawn so far were skipped for damaged data (limit "
                  "max_skip_rate = %g over at least skip_rate_after = %d samples); the warnings above name the files. "
                  "Re-pack those captures, or raise max_skip_rate. Last checkpoint in %s.", step, rc.st.data_skipped,
                  rc.st.data_drawn, tc->max_skip_rate, tc->skip_rate_after, o->out);
            status = 5;
            goto done;
        }
        if (step == kill_at) raise(SIGKILL); // test hook: a hard kill between checkpoints
        if (step == term_at) raise(SIGTERM);
        if (step == hang_at) raise(SIGSTOP); // test hook: a hung rank
        if (step % tc->ckpt_every == 0 || step == tc->steps) {
            step_device_pull(&sd, 0);
            if (lead) save_checkpoint(o->out, &rc, &t, step);
            saved_at = step;
            // nobody runs ahead of a checkpoint: when this returns, the file is complete
            RANKS_OR_STOP(multi && dist_barrier(&d, "the barrier after a checkpoint"));
        }
        if (lead && vs.n && ((tc->val_every && step % tc->val_every == 0) || step == tc->steps)) {
            ValResult vr = validate(&sd, &vs, &grid, &sweep, o->out, step, &baseline);
            if (vr.psnr > rc.st.best_psnr) rc.st.best_psnr = vr.psnr;
            fprintf(logf, "{\"kind\":\"val\",\"step\":%ld", step);
            json_num(logf, "psnr", vr.psnr), json_num(logf, "psnr_baseline", vr.psnr_baseline);
            json_num(logf, "l1", vr.l1), json_num(logf, "ssim", vr.ssim);
            json_num(logf, "psnr_expr", vr.psnr_expr), json_num(logf, "psnr_expr_fixed", vr.psnr_expr_fixed);
            json_num(logf, "psnr_mouth", vr.psnr_mouth), json_num(logf, "psnr_expr_mouth", vr.psnr_expr_mouth);
            json_num(logf, "psnr_expr_mouth_fixed", vr.psnr_expr_mouth_fixed);
            fprintf(logf, "}\n");
            LOG_FLUSH_OR_STOP();
            printf("val  %6ld | PSNR %.2f dB (baseline: input colours at input positions %.2f dB) | SSIM %.4f | "
                   "val_%08ld.png on %s\n", step, vr.psnr, vr.psnr_baseline, vr.ssim, step, vs.from);
            if (!isnan(vr.psnr_expr))
                printf("val  %6ld | expression sweep: PSNR %.2f dB with each frame's code, %.2f dB with one fixed code "
                       "| expr_%08ld.png\n", step, vr.psnr_expr, vr.psnr_expr_fixed, step);
            if (!isnan(vr.psnr_expr_mouth))
                printf("val  %6ld | mouth regions: PSNR %.2f dB on the validation targets; the sweep's %.2f dB with "
                       "each frame's code, %.2f dB with one fixed code\n",
                       step, vr.psnr_mouth, vr.psnr_expr_mouth, vr.psnr_expr_mouth_fixed);
            fflush(stdout);
        }
        if (multi ? stop_all : g_stop_signal != 0) {
            if (saved_at != step) {
                step_device_pull(&sd, 0);
                if (lead) save_checkpoint(o->out, &rc, &t, step);
                RANKS_OR_STOP(multi && dist_barrier(&d, "the barrier after the stop checkpoint"));
            }
            if (lead)
                LOG_W("%s at step %ld: checkpoint written to %s; continue with --resume",
                      g_stop_signal ? strsignal(g_stop_signal) : "a stop signal to another rank", step, o->out);
            goto done;
        }
    }
    snprintf(path, sizeof path, "%s/final.ckpt", o->out);
    step_device_pull(&sd, 0);
    if (lead) checkpoint_save(path, mc, t.m.params, t.m.n_params);
    if (multi) { // the final barrier, and the proof that the ranks never diverged
        RankFacts f = rank_facts(&rc, &t, &L);
        int offender = 0;
        if (ranks_agree(&d, &f, "the final check", "at the end of the run (the ranks diverged: a bug)", &offender, err, sizeof err)) {
            LOG_E("%s", err);
            status = 4;
            goto done;
        }
        LOG_I("data parallel: all %d ranks end with bit-identical parameters and AdamW moments (crc %08x)", d.world,
              (unsigned)f.state_crc);
    }
    LOG_I("done: %ld steps, %.0f skipped, %.0f of %.0f samples skipped for damaged data, %.1f s of training, peak "
          "memory %.0f MB; model %s", step, rc.st.skipped, rc.st.data_skipped, rc.st.data_drawn, rc.st.elapsed_s,
          peak_rss_mb(), path);
    if (multi)
        LOG_I("data parallel: %.1f s in collectives on rank 0 (%.0f MB sent and received), %.1f%% of the training time",
              d.comm_s, d.comm_bytes / 1e6, 100 * d.comm_s / (rc.st.elapsed_s - elapsed0 + 1e-9));
done:
    if (logf) fclose(logf);
    loader_close(&L);
    step_device_close(&sd);
    trainer_free(&t);
    if (have_lpips) lpips_weights_free(&lw);
    valset_free(&vs);
    free(grid.px), free(sweep.px);
    for (int i = 0; i < n_shards; i++) free(shards[i]);
    free(shards);
    dist_free(&d);
    return status;
#undef START_FAIL
#undef RANKS_OR_STOP
#undef LOG_FLUSH_OR_STOP
}
