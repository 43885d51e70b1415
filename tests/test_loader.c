// test_loader.c — batches from packed fixture shards: deterministic whatever the thread count, resumable
// from a step, rank-sharded, cameras in the head frame (the head centre projects onto the disc), codes of
// the target frame, clear errors for missing aux maps.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data_config.h"
#include "loader.h"
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
    LoaderOptions o = {4, 2, 1, 0, 0, 2, 1, 0, 5, NULL, threads, threads + 2, 0};
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

const TestCase loader_tests[] = {
    {"data/loader_aux_maps_reproject", test_aux_maps},
    {"data/loader_synth_pack_end_to_end", test_synth_pack_load},
    {"data/loader_deterministic_resumable_headframe", test_loader},
    {NULL, NULL},
};
