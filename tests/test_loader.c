// test_loader.c — batches from packed fixture shards: deterministic whatever the thread count, resumable
// from a step, rank-sharded, cameras in the head frame (the head centre projects onto the disc), codes of
// the target frame, clear errors for missing aux maps; the mouth region of the targets from their part labels.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data_config.h"
#include "loader.h"
#include "shard.h"
#include "model_config.h"
#include "test.h"
#include "train_config.h"

static int pack_fixture(char shards[2][1200]) {
    char cmd[8192];
    const char *py = getenv("AVAT3R_PYTHON") ? getenv("AVAT3R_PYTHON") : "/usr/bin/python3";
    snprintf(cmd, sizeof cmd,
             "'%s' '%s/tools/reference/make_ava256_fixture.py' '%s/fx' > /dev/null && '%s' pack --ava256 '%s/fx/ava256_tiny' "
             "--out '%s/shards' --size 32 --quiet > /dev/null",
             py, test_source_root(), test_tmpdir(), AVAT3R_BINARY, test_tmpdir(), test_tmpdir());
    CHECK(test_system(cmd) == 0, "fixture + pack failed");
    snprintf(shards[0], 1200, "%s/shards/20240101--0900--TST001.h5", test_tmpdir());
    snprintf(shards[1], 1200, "%s/shards/20240102--1030--TST002.h5", test_tmpdir());
    return 0;
}

static LoaderOptions opts(int threads) {
    LoaderOptions o = {4, 2, 1, 0, 0, 2, 1, 0, 5, NULL, threads, threads + 2, 0, 0};
    return o;
}

static size_t batch_floats(void) { return (size_t)2 * 4 * 32 * 32 * 3; }

static int test_loader(void) {
    char sh[2][1200], err[1024];
    if (pack_fixture(sh)) return 1;
    const char *paths[2] = {sh[0], sh[1]};
    Loader a, b, c;
    LoaderOptions o2 = opts(2), o1 = opts(1);
    CHECK(!loader_open(&a, paths, 2, &o2, 0, err, sizeof err), "%s", err);
    CHECK(!loader_open(&b, paths, 2, &o1, 0, err, sizeof err), "%s", err);
    CHECK(!loader_open(&c, paths, 2, &o2, 3, err, sizeof err), "%s", err); // resumed at step 3
    float *saved = malloc(4 * batch_floats() * 6);
    double worst = 0;
    for (int step = 0; step < 6; step++) {
        const Batch *x = loader_next(&a, err, sizeof err), *y = loader_next(&b, err, sizeof err);
        CHECK(x && y, "%s", err);
        CHECK(x->step == (uint64_t)step && y->step == (uint64_t)step, "steps out of order");
        CHECK(!memcmp(x->rgb, y->rgb, 4 * batch_floats()) && !memcmp(x->tgt_rgb, y->tgt_rgb, 4 * (size_t)2 * 2 * 32 * 32 * 3) &&
                  !memcmp(x->w2c, y->w2c, 4 * 2 * 4 * 12) && !memcmp(x->sample, y->sample, sizeof x->sample),
              "batch %d differs between 1 and 2 workers", step);
        memcpy(saved + (size_t)step * batch_floats(), x->rgb, 4 * batch_floats());
        // the head centre is the origin of the head frame: it projects onto the disc of every view
        for (int i = 0; i < 2 * 2; i++) {
            const float *R = x->tgt_w2c + 12 * i, *K = x->tgt_K + 9 * i, *img = x->tgt_rgb + (size_t)i * 32 * 32 * 3;
            double u = K[0] * R[3] / R[11] + K[2], v = K[4] * R[7] / R[11] + K[5], sx = 0, sy = 0, sw = 0;
            for (int p = 0; p < 32 * 32; p++)
                if (!(img[3 * p] > 0.94f && img[3 * p + 1] > 0.94f && img[3 * p + 2] > 0.94f)) sx += p % 32 + 0.5, sy += p / 32 + 0.5, sw++;
            CHECK(sw > 10, "no head in a target view");
            worst = fmax(worst, hypot(sx / sw - u, sy / sw - v));
        }
        for (int bi = 0; bi < 2; bi++) {
            const Sample *sm = &x->sample[bi];
            const Shard *s = &a.shards[sm->subject];
            CHECK(!memcmp(x->expr + 256 * bi, s->m.expr + (size_t)sm->target_frame * 256, 4 * 256), "expression code");
        }
    }
    printf("    head centre vs disc centroid in the target views: worst %.2f px at 32x32\n", worst);
    CHECK(worst < 1.0, "cameras are not in the head frame (%.2f px)", worst);
    for (int step = 3; step < 6; step++) {
        const Batch *z = loader_next(&c, err, sizeof err);
        CHECK(z && z->step == (uint64_t)step, "resumed loader: %s", z ? "wrong step" : err);
        CHECK(!memcmp(z->rgb, saved + (size_t)step * batch_floats(), 4 * batch_floats()), "resumed step %d differs", step);
    }
    printf("    decoded %lld images in 2 workers\n", (long long)a.n_decoded);
    // held-out subjects from a config file (a subject id and the model keys in one file): never drawn
    char cfgp[1300];
    snprintf(cfgp, sizeof cfgp, "%s/held.cfg", test_tmpdir());
    FILE *hf = fopen(cfgp, "w");
    fprintf(hf, "include = %s/configs/tiny.cfg\nheld_out = TST002\n", test_source_root());
    fclose(hf);
    ModelConfig mc;
    DataConfig dc;
    TrainConfig tc;
    CfgTable extra[2] = {data_config_table(&dc), train_config_table(&tc)};
    CHECK(!model_config_load_with(&mc, cfgp, extra, 2, err, sizeof err), "%s", err);
    char hbuf[256];
    const char *held[9] = {0};
    CHECK(data_held_out_list(&dc, hbuf, sizeof hbuf, held, 8) == 1 && !strcmp(held[0], "TST002"), "held_out list");
    LoaderOptions oh = opts(1);
    oh.held_out = held;
    Loader h;
    CHECK(!loader_open(&h, paths, 2, &oh, 0, err, sizeof err), "%s", err);
    for (int step = 0; step < 10; step++) {
        const Batch *x = loader_next(&h, err, sizeof err);
        CHECK(x, "%s", err);
        for (int bi = 0; bi < 2; bi++) CHECK(x->sample[bi].subject == 0, "held-out subject TST002 was drawn");
    }
    loader_close(&h);
    loader_close(&a), loader_close(&b), loader_close(&c);
    free(saved);
    // configs asking for aux maps the shards lack: refused, naming the shard
    LoaderOptions od = opts(1);
    od.use_dust3r = 1;
    CHECK(loader_open(&a, paths, 2, &od, 0, err, sizeof err) != 0 && strstr(err, "DUSt3R") && strstr(err, ".h5"), "'%s'", err);
    return 0;
}

// The whole path on synthetic heads: synth -> pack -> loader; the head centre (the origin of each
// view's head frame) falls inside the head's mask in every target view.
static int test_synth_pack_load(void) {
    char cmd[8192], err[1024], sh[2][1300];
    snprintf(cmd, sizeof cmd,
             "'%s' synth --out '%s/syn' --subjects 2 --cameras 6 --frames 5 --size 48x64 --seed 4 --no-aux > /dev/null && "
             "'%s' pack --ava256 '%s/syn' --out '%s/synsh' --size 32 --quiet > /dev/null && ls '%s/synsh' > '%s/list.txt'",
             AVAT3R_BINARY, test_tmpdir(), AVAT3R_BINARY, test_tmpdir(), test_tmpdir(), test_tmpdir(), test_tmpdir());
    CHECK(test_system(cmd) == 0, "synth + pack failed");
    char list[1300];
    snprintf(list, sizeof list, "%s/list.txt", test_tmpdir());
    FILE *f = fopen(list, "r");
    char name[2][256];
    CHECK(f && fscanf(f, "%255s %255s", name[0], name[1]) == 2, "two shards expected");
    fclose(f);
    for (int i = 0; i < 2; i++) snprintf(sh[i], sizeof sh[i], "%s/synsh/%s", test_tmpdir(), name[i]);
    const char *paths[2] = {sh[0], sh[1]};
    LoaderOptions o = opts(2);
    Loader L;
    CHECK(!loader_open(&L, paths, 2, &o, 0, err, sizeof err), "%s", err);
    int inside = 0, total = 0;
    for (int step = 0; step < 8; step++) {
        const Batch *x = loader_next(&L, err, sizeof err);
        CHECK(x, "%s", err);
        for (int i = 0; i < 2 * 2; i++) {
            const float *R = x->tgt_w2c + 12 * i, *K = x->tgt_K + 9 * i, *m = x->tgt_mask + (size_t)i * 32 * 32;
            int u = (int)floor(K[0] * R[3] / R[11] + K[2]), v = (int)floor(K[4] * R[7] / R[11] + K[5]);
            total++;
            inside += u >= 0 && u < 32 && v >= 0 && v < 32 && m[v * 32 + u] > 0.5f;
        }
    }
    loader_close(&L);
    printf("    head centre inside the head mask in %d of %d target views\n", inside, total);
    CHECK(inside == total, "cameras and images disagree on synthetic heads");
    return 0;
}

// Aux maps through pack and the loader: every confident DUSt3R point (head frame, metres) reprojects
// through its view's head-frame camera onto its own pixel; Sapiens part weights stay in [0, 1].
static int test_aux_maps(void) {
    char cmd[8192], err[1024], sh[2][1300];
    snprintf(cmd, sizeof cmd,
             "'%s' synth --out '%s/syna' --subjects 2 --cameras 6 --frames 5 --size 48x64 --seed 4 > /dev/null && "
             "'%s' pack --ava256 '%s/syna' --out '%s/synash' --size 32 --sapiens-size 8x8 --quiet > /dev/null && "
             "ls '%s/synash' > '%s/lista.txt'",
             AVAT3R_BINARY, test_tmpdir(), AVAT3R_BINARY, test_tmpdir(), test_tmpdir(), test_tmpdir(), test_tmpdir());
    CHECK(test_system(cmd) == 0, "synth + pack with aux maps failed");
    char list[1300], name[2][256];
    snprintf(list, sizeof list, "%s/lista.txt", test_tmpdir());
    FILE *f = fopen(list, "r");
    CHECK(f && fscanf(f, "%255s %255s", name[0], name[1]) == 2, "two shards expected");
    fclose(f);
    for (int i = 0; i < 2; i++) snprintf(sh[i], sizeof sh[i], "%s/synash/%s", test_tmpdir(), name[i]);
    const char *paths[2] = {sh[0], sh[1]};
    LoaderOptions o = opts(2);
    o.use_dust3r = o.use_sapiens = 1;
    Loader L;
    CHECK(!loader_open(&L, paths, 2, &o, 0, err, sizeof err), "%s", err);
    CHECK(L.sh == 8 && L.sw == 8 && L.sc == 16, "Sapiens grid %dx%dx%d", L.sh, L.sw, L.sc);
    double worst = 0, sum = 0;
    long confident = 0, beyond = 0;
    for (int step = 0; step < 4; step++) {
        const Batch *x = loader_next(&L, err, sizeof err);
        CHECK(x, "%s", err);
        for (int v = 0; v < 2 * 4; v++) {
            const float *R = x->w2c + 12 * v, *K = x->K + 9 * v;
            for (int p = 0; p < 32 * 32; p++) {
                if (x->conf[(size_t)v * 1024 + p] < 0.5f) continue;
                const float *X = x->pos + ((size_t)v * 1024 + p) * 3;
                double c[3];
                for (int k = 0; k < 3; k++) c[k] = R[4 * k] * X[0] + R[4 * k + 1] * X[1] + R[4 * k + 2] * X[2] + R[4 * k + 3];
                double u = K[0] * c[0] / c[2] + K[2], w = K[4] * c[1] / c[2] + K[5];
                double e = hypot(u - (p % 32 + 0.5), w - (p / 32 + 0.5));
                worst = fmax(worst, e), sum += e, beyond += e > 0.75;
                confident++;
            }
            for (size_t q = 0; q < 8 * 8 * 16; q++) {
                float s = x->sap[(size_t)v * 8 * 8 * 16 + q];
                CHECK(s >= -1e-6f && s <= 1 + 1e-6f, "Sapiens weight %g", s);
            }
        }
    }
    loader_close(&L);
    // Expected error: nearest sampling of a 48-px crop at 32 px puts each point's own pixel centre
    // 0.25 source px = 1/6 output px off in x and y (0.24 px), and the synthetic maps add 1.5 mm of noise
    // (~0.15 px at 1.1 m, more at silhouettes). A wrong crop, K, head-frame transform or axis order moves
    // every point by a pixel or more.
    printf("    %ld confident DUSt3R points: mean reprojection error %.3f px, worst %.3f px, %ld beyond 0.75 px\n",
           confident, sum / confident, worst, beyond);
    CHECK(confident > 1000 && sum / confident < 0.35 && beyond < confident / 50 && worst < 2,
          "DUSt3R points, cameras and crops disagree");
    return 0;
}

// 1 when the sample uses image (f, c) of its subject's shard
static int sample_uses(const Sample *sm, int f, int c) {
    for (int v = 0; v < sm->n_input; v++)
        if (sm->input_frame[v] == f && sm->input_cam[v] == c) return 1;
    for (int t = 0; t < sm->n_target; t++)
        if (sm->target_frame == f && sm->target_cam[t] == c) return 1;
    return 0;
}

// Damaged data (docs/robustness.md "Damaged data in training"): images whose bytes fail their CRC are never
// handed out. The samples that would use them are skipped, counted and noted with the file, frame and
// camera, and redrawn; the batches are the same for 1 and 2 workers, and every batch without a skip equals
// the clean shards' batch of that step. Data damaged everywhere fails the batch with a message. A shard
// that cannot be opened is left out while within max_skip_rate, and named otherwise.
static int test_damaged(void) {
    char sh[2][1200], dmg[2][1300], cmd[8192], err[1024];
    if (pack_fixture(sh)) return 1;
    for (int i = 0; i < 2; i++) {
        snprintf(dmg[i], sizeof dmg[i], "%s/dmg_%d.h5", test_tmpdir(), i);
        snprintf(cmd, sizeof cmd, "cp '%s' '%s'", sh[i], dmg[i]);
        CHECK(test_system(cmd) == 0, "copy");
    }
    Shard s;
    CHECK(!shard_open(&s, dmg[0], err, sizeof err), "%s", err);
    const int F = s.m.n_frames, C = s.m.n_cams;
    uint8_t *bad = calloc((size_t)F * C, 1);
    int n_bad = 0;
    for (int f = 0; f < F; f++)
        for (int c = 0; c < C; c++)
            if ((f * C + c) % 4 == 1 && s.blob[SHARD_IMAGE].len[(size_t)f * C + c] > 0) bad[f * C + c] = 1, n_bad++;
    shard_close(&s);
    for (int f = 0; f < F; f++)
        for (int c = 0; c < C; c++)
            if (bad[f * C + c]) CHECK(!test_flip_shard_payload(dmg[0], SHARD_IMAGE, f, c, -1, err, sizeof err), "%s", err);
    const char *clean[2] = {sh[0], sh[1]}, *paths[2] = {dmg[0], dmg[1]};
    Loader a, b, k;
    LoaderOptions o2 = opts(2), o1 = opts(1);
    CHECK(!loader_open(&a, paths, 2, &o2, 0, err, sizeof err), "%s", err);
    CHECK(!loader_open(&b, paths, 2, &o1, 0, err, sizeof err), "%s", err);
    CHECK(!loader_open(&k, clean, 2, &o1, 0, err, sizeof err), "%s", err);
    long skipped = 0, drawn = 0, same = 0, clean_batches = 0;
    const size_t nin = batch_floats(), ntg = (size_t)2 * 2 * 32 * 32 * 3;
    for (int step = 0; step < 24; step++) {
        const Batch *x = loader_next(&a, err, sizeof err), *y = loader_next(&b, err, sizeof err);
        CHECK(x && y, "step %d: %s", step, err);
        const Batch *z = loader_next(&k, err, sizeof err);
        CHECK(z, "%s", err);
        CHECK(x->skipped == y->skipped && x->drawn == y->drawn && !memcmp(x->sample, y->sample, sizeof x->sample) &&
                  !memcmp(x->rgb, y->rgb, 4 * nin) && !memcmp(x->tgt_rgb, y->tgt_rgb, 4 * ntg),
              "step %d differs between 1 and 2 workers", step);
        CHECK(x->drawn == 2 + x->skipped, "step %d: drawn %d, skipped %d", step, x->drawn, x->skipped);
        for (int bi = 0; bi < 2; bi++)
            for (int f = 0; f < F; f++)
                for (int c = 0; c < C; c++)
                    CHECK(!(x->sample[bi].subject == 0 && bad[f * C + c] && sample_uses(&x->sample[bi], f, c)),
                          "step %d: a damaged image (frame %d camera %d) reached the batch", step, f, c);
        for (int j = 0; j < x->skipped && j < LOADER_SKIP_NOTES; j++) {
            CHECK(strstr(x->skip_note[j], dmg[0]) && strstr(x->skip_note[j], "CRC-32") && strstr(x->skip_note[j], "camera"),
                  "note '%s'", x->skip_note[j]);
            if (skipped == 0 && j == 0) printf("    step %d: %s\n", step, x->skip_note[j]);
        }
        if (!x->skipped) {
            clean_batches++;
            same += !memcmp(x->rgb, z->rgb, 4 * nin) && !memcmp(x->tgt_rgb, z->tgt_rgb, 4 * ntg) &&
                    !memcmp(x->sample, z->sample, sizeof x->sample);
        }
        skipped += x->skipped, drawn += x->drawn;
    }
    printf("    %d of %d images of one shard damaged: %ld of %ld samples drawn skipped; %ld of %ld batches without a "
           "skip equal the clean shards' batches\n", n_bad, F * C, skipped, drawn, same, clean_batches);
    CHECK(skipped > 0 && clean_batches > 0 && same == clean_batches, "skips or clean batches not as expected");
    loader_close(&a), loader_close(&b), loader_close(&k);
    // every image damaged: a batch fails after LOADER_MAX_DRAWS draws, with the reason
    for (int i = 0; i < 2; i++) {
        CHECK(!shard_open(&s, dmg[i], err, sizeof err), "%s", err);
        int F2 = s.m.n_frames, C2 = s.m.n_cams;
        int64_t *len = malloc(8 * (size_t)F2 * C2);
        memcpy(len, s.blob[SHARD_IMAGE].len, 8 * (size_t)F2 * C2);
        shard_close(&s);
        for (int j = 0; j < F2 * C2; j++)
            if (len[j] > 0 && !(i == 0 && bad[j]))
                CHECK(!test_flip_shard_payload(dmg[i], SHARD_IMAGE, j / C2, j % C2, 0, err, sizeof err), "%s", err);
        free(len);
    }
    CHECK(!loader_open(&a, paths, 2, &o1, 0, err, sizeof err), "%s", err);
    const Batch *x = loader_next(&a, err, sizeof err);
    CHECK(!x && strstr(err, "draws in a row hit damaged data") && strstr(err, "CRC-32"), "all damaged: '%s'", err);
    printf("    all damaged: %.200s\n", err);
    loader_close(&a);
    // a truncated shard: named at max_skip_rate 0, left out at 0.5
    snprintf(cmd, sizeof cmd, "head -c 5000 '%s' > '%s'", sh[1], dmg[1]);
    CHECK(test_system(cmd) == 0, "truncate");
    paths[0] = sh[0];
    CHECK(loader_open(&a, paths, 2, &o1, 0, err, sizeof err) != 0 && strstr(err, dmg[1]), "truncated shard: '%s'", err);
    o1.max_skip_rate = 0.5;
    CHECK(!loader_open(&a, paths, 2, &o1, 0, err, sizeof err), "%s", err);
    CHECK(a.n_shards == 1 && a.n_unreadable == 1 && strstr(a.unreadable, dmg[1]), "%d open, %d unreadable", a.n_shards,
          a.n_unreadable);
    x = loader_next(&a, err, sizeof err);
    CHECK(x && x->skipped == 0 && x->sample[0].subject == 0 && x->sample[1].subject == 0, "%s", err);
    loader_close(&a);
    free(bad);
    return 0;
}

// A DUSt3R map holding a NaN (bytes intact: its CRC passes) is damaged data too: the sample is skipped with
// the map, frame, camera and element named. The shard is rewritten through the writer with one bad map.
static int test_nonfinite_aux(void) {
    char cmd[8192], err[1024], src[1300], dst[1300], list[1300], name[256];
    snprintf(cmd, sizeof cmd,
             "'%s' synth --out '%s/synn' --subjects 1 --cameras 6 --frames 4 --size 48x64 --seed 5 > /dev/null && "
             "'%s' pack --ava256 '%s/synn' --out '%s/synnsh' --size 32 --quiet > /dev/null && ls '%s/synnsh' > '%s/listn.txt'",
             AVAT3R_BINARY, test_tmpdir(), AVAT3R_BINARY, test_tmpdir(), test_tmpdir(), test_tmpdir(), test_tmpdir());
    CHECK(test_system(cmd) == 0, "synth + pack failed");
    snprintf(list, sizeof list, "%s/listn.txt", test_tmpdir());
    FILE *lf = fopen(list, "r");
    CHECK(lf && fscanf(lf, "%255s", name) == 1, "no shard");
    fclose(lf);
    snprintf(src, sizeof src, "%s/synnsh/%s", test_tmpdir(), name);
    snprintf(dst, sizeof dst, "%s/nan_%s", test_tmpdir(), name);
    Shard s;
    CHECK(!shard_open(&s, src, err, sizeof err), "%s", err);
    CHECK(s.has[SHARD_DUST3R], "the synthetic shard has no DUSt3R maps");
    ShardWriter *w = shard_create(dst, &s.m, 95, err, sizeof err);
    CHECK(w, "%s", err);
    const int F = s.m.n_frames, C = s.m.n_cams, HW = s.m.W * s.m.H;
    uint8_t *rgb = malloc((size_t)HW * 3), *mask = malloc(HW);
    float *d3 = malloc(16 * (size_t)HW);
    int nan_f = 1, nan_c = 2;
    for (int f = 0; f < F; f++)
        for (int c = 0; c < C; c++) {
            if (shard_get_image(&s, f, c, rgb, err, sizeof err)) continue;
            CHECK(!shard_put_image(w, f, c, rgb, err, sizeof err), "%s", err);
            if (!shard_get_mask(&s, f, c, mask, err, sizeof err)) CHECK(!shard_put_mask(w, f, c, mask, err, sizeof err), "%s", err);
            if (!shard_get_aux(&s, SHARD_DUST3R, f, c, d3, err, sizeof err)) {
                if (f == nan_f && c == nan_c) d3[4 * 37 + 1] = NAN;
                CHECK(!shard_put_aux(w, SHARD_DUST3R, f, c, d3, err, sizeof err), "%s", err);
            }
        }
    CHECK(!shard_finish(w, err, sizeof err), "%s", err);
    shard_close(&s);
    free(rgb), free(mask), free(d3);
    const char *paths[1] = {dst};
    LoaderOptions o = opts(1);
    o.use_dust3r = 1;
    Loader L;
    CHECK(!loader_open(&L, paths, 1, &o, 0, err, sizeof err), "%s", err);
    int noted = 0;
    char where[64];
    snprintf(where, sizeof where, "DUSt3R map of frame %d camera %d holds nan", nan_f, nan_c);
    for (int step = 0; step < 40 && !noted; step++) {
        const Batch *x = loader_next(&L, err, sizeof err);
        CHECK(x, "%s", err);
        for (int bi = 0; bi < 2; bi++)
            for (int v = 0; v < 4 * 32 * 32 * 3; v++) CHECK(isfinite(x->pos[(size_t)bi * 4 * 32 * 32 * 3 + v]), "NaN handed out");
        for (int j = 0; j < x->skipped && j < LOADER_SKIP_NOTES; j++) {
            CHECK(strstr(x->skip_note[j], where), "note '%s'", x->skip_note[j]);
            if (!noted++) printf("    step %d: %s\n", step, x->skip_note[j]);
        }
    }
    CHECK(noted, "the NaN map was never drawn in 40 steps (fixture too large?)");
    loader_close(&L);
    return 0;
}

// loader_mouth_region on hand-made 20×16 label maps, against boxes worked out by hand from the rule
// floor(x0 − mx) ≤ x ≤ ceil(x1 + mx), mx = 0.3·w + 1 (w = x1 − x0 + 1 pixels), the same in y, clamped.
static int test_mouth_region(void) {
    enum { W = 20, H = 16 };
    uint8_t lab[W * H];
    float out[W * H];
    // box: lo_x, hi_x, lo_y, hi_y (inclusive) after growth and clamping; -1: no mouth
    struct { int px[4][3]; int box[4]; const char *what; } cases[] = {
        // x 6..9 (w 4: mx 2.2 -> 3..12), y 10..11 (h 2: my 1.6 -> 8..13); classes 6, 8, 10 all count
        {{{6, 10, 6}, {9, 11, 10}, {7, 10, 8}, {-1, 0, 0}}, {3, 12, 8, 13}, "lips, teeth, tongue"},
        // x 5..14 (w 10: mx 4.0 exactly -> 1..18), y 3 (h 1: my 1.3 -> 1..5)
        {{{5, 3, 7}, {14, 3, 9}, {-1, 0, 0}}, {1, 18, 1, 5}, "0.3·w an integer"},
        // x 0..1, y 14..15 (w = h = 2: m 1.6 -> -2..3 and 12..17): clamped to 0..3, 12..15
        {{{0, 15, 6}, {1, 14, 6}, {-1, 0, 0}}, {0, 3, 12, 15}, "clamped at the border"},
        {{{-1, 0, 0}}, {-1, -1, -1, -1}, "no mouth"},
    };
    for (int k = 0; k < 4; k++) {
        for (int i = 0; i < W * H; i++) lab[i] = (uint8_t)(i % 3 == 0 ? 2 : i % 7 == 0 ? 5 : i % 11 == 0 ? 11 : i % 13 == 0 ? 255 : 0);
        for (int p = 0; p < 4 && cases[k].px[p][0] >= 0; p++) lab[cases[k].px[p][1] * W + cases[k].px[p][0]] = (uint8_t)cases[k].px[p][2];
        for (int i = 0; i < W * H; i++) out[i] = 7.0f; // every pixel must be written
        int r = loader_mouth_region(lab, W, H, out);
        const int *b = cases[k].box;
        CHECK(r == (b[0] >= 0), "%s: returned %d", cases[k].what, r);
        int n = 0;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                float want = x >= b[0] && x <= b[1] && y >= b[2] && y <= b[3] ? 1.0f : 0.0f;
                CHECK(out[y * W + x] == want, "%s: pixel (%d, %d) is %g, want %g (box x %d..%d, y %d..%d)", cases[k].what, x, y,
                      out[y * W + x], want, b[0], b[1], b[2], b[3]);
                n += want > 0;
            }
        printf("    %-26s %3d pixels\n", cases[k].what, n);
    }
    return 0;
}

// Batch.tgt_mouth from shards: synth -> pack (with labels) and pack --no-parts of the same capture, in one
// loader. A target from the labelled shard holds exactly loader_mouth_region of its stored labels, and some
// are non-zero; a target from the other shard is all 0 (its ring slot held a mouth before: cleared). Label
// payloads that fail their CRC skip the samples that use them as targets, noted like a damaged mask.
static int test_mouth_from_labels(void) {
    char cmd[8192], err[1024], sh[2][1300], clean[1300], list[1300], name[256];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && '%s' synth --out synm --subjects 1 --cameras 6 --frames 5 --size 48x64 --seed 4 --no-aux > synm.log 2>&1 && "
             "'%s' pack --ava256 synm --out synmsh --size 32 --quiet >> synm.log 2>&1 && "
             "'%s' pack --ava256 synm --out synmnp --size 32 --quiet --no-parts >> synm.log 2>&1 && ls synmsh > listm.txt",
             test_tmpdir(), AVAT3R_BINARY, AVAT3R_BINARY, AVAT3R_BINARY);
    CHECK(test_system(cmd) == 0, "synth + pack failed (%s/synm.log)", test_tmpdir());
    snprintf(list, sizeof list, "%s/listm.txt", test_tmpdir());
    FILE *f = fopen(list, "r");
    CHECK(f && fscanf(f, "%255s", name) == 1, "no shard");
    fclose(f);
    snprintf(clean, sizeof clean, "%s/synmsh/%s", test_tmpdir(), name);
    snprintf(sh[0], sizeof sh[0], "%s/mouth_dmg_%s", test_tmpdir(), name);
    snprintf(sh[1], sizeof sh[1], "%s/synmnp/%s", test_tmpdir(), name);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", clean, sh[0]);
    CHECK(test_system(cmd) == 0, "copy");
    Shard s, np;
    CHECK(!shard_open(&s, clean, err, sizeof err), "%s", err);
    CHECK(!shard_open(&np, sh[1], err, sizeof err), "%s", err);
    CHECK(s.has[SHARD_PARTS] && !np.has[SHARD_PARTS], "labels: packed %d, --no-parts %d", s.has[SHARD_PARTS], np.has[SHARD_PARTS]);
    const int F = s.m.n_frames, C = s.m.n_cams, HW = 32 * 32;
    uint8_t *bad = calloc((size_t)F * C, 1);
    for (int i = 0; i < F * C; i++)
        if (i % 5 == 2 && s.blob[SHARD_PARTS].len[i] > 0) {
            bad[i] = 1;
            CHECK(!test_flip_shard_payload(sh[0], SHARD_PARTS, i / C, i % C, -1, err, sizeof err), "%s", err);
        }
    const char *paths[2] = {sh[0], sh[1]};
    LoaderOptions o = opts(2);
    Loader L;
    CHECK(!loader_open(&L, paths, 2, &o, 0, err, sizeof err), "%s", err);
    uint8_t lab[32 * 32];
    float want[32 * 32];
    int with_mouth = 0, labelled = 0, unlabelled = 0, skipped = 0;
    for (int step = 0; step < 24; step++) {
        const Batch *x = loader_next(&L, err, sizeof err);
        CHECK(x, "%s", err);
        for (int j = 0; j < x->skipped && j < LOADER_SKIP_NOTES; j++) {
            CHECK(strstr(x->skip_note[j], sh[0]) && strstr(x->skip_note[j], "parts_zstd") && strstr(x->skip_note[j], "CRC-32"),
                  "note '%s'", x->skip_note[j]);
            if (!skipped && !j) printf("    step %d: %s\n", step, x->skip_note[j]);
        }
        skipped += x->skipped;
        for (int bi = 0; bi < 2; bi++)
            for (int t = 0; t < 2; t++) {
                const Sample *sm = &x->sample[bi];
                const float *m = x->tgt_mouth + ((size_t)bi * 2 + t) * HW;
                int fr = sm->target_frame, c = sm->target_cam[t];
                if (sm->subject == 1) {
                    for (int p = 0; p < HW; p++) CHECK(m[p] == 0, "step %d: a target without labels has mouth %g", step, m[p]);
                    unlabelled++;
                    continue;
                }
                CHECK(!bad[fr * C + c], "step %d: damaged labels of frame %d camera %d reached the batch", step, fr, c);
                CHECK(shard_get_parts(&s, fr, c, lab, err, sizeof err) == 0, "%s", err);
                int any = loader_mouth_region(lab, 32, 32, want);
                CHECK(!memcmp(m, want, sizeof want), "step %d: frame %d camera %d: tgt_mouth is not the region of its labels",
                      step, fr, c);
                labelled++, with_mouth += any;
            }
    }
    loader_close(&L);
    shard_close(&s), shard_close(&np);
    free(bad);
    printf("    %d targets with labels (%d with a mouth region), %d without; %d samples skipped for damaged labels\n",
           labelled, with_mouth, unlabelled, skipped);
    CHECK(with_mouth > 0 && unlabelled > 0 && skipped > 0, "want targets with a mouth, targets without labels and skips");
    return 0;
}

const TestCase loader_tests[] = {
    {"data/loader_mouth_region_box", test_mouth_region},
    {"data/loader_mouth_from_part_labels", test_mouth_from_labels},
    {"data/loader_skips_damaged_data", test_damaged},
    {"data/loader_skips_nonfinite_aux_map", test_nonfinite_aux},
    {"data/loader_aux_maps_reproject", test_aux_maps},
    {"data/loader_synth_pack_end_to_end", test_synth_pack_load},
    {"data/loader_deterministic_resumable_headframe", test_loader},
    {NULL, NULL},
};
