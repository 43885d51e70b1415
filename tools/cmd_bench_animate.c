// cmd_bench_animate.c — `avat3r bench animate`: avatar creation time (one network forward, the aux maps
// given) and animation frames per second (per frame: a network forward with a new expression code, the
// export, one rendered view) on the CPU, with random weights and random inputs (tools/batch_random.h).
// The same code path as `avat3r animate` (tools/animate.h), without the files.
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "../common/rng.h"
#include "../common/timer.h"
#include "../common/util.h"
#include "animate.h"
#include "batch_random.h"
#include "cli.h"

static const char *USAGE =
    "--config FILE [--frames N] [--threads T] [--size WxH] [--device cpu|cuda] [--set key=value ...]\n"
    "  Random weights and inputs (cameras on a sphere, point maps near the origin); N frames (default 3) after\n"
    "  the creation pass; the view is rendered at WxH (default: the model's image size).";

int cmd_bench_animate(int argc, char **argv) {
    const char *config = NULL, *size = NULL, *sets[64];
    int nsets = 0, frames = 3, threads = 0;
    const char *device = "cpu";
    for (int i = 1; i < argc; i++) {
        int has = i + 1 < argc;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: avat3r bench animate %s\n", USAGE);
            return 0;
        } else if (!strcmp(argv[i], "--config") && has) config = argv[++i];
        else if (!strcmp(argv[i], "--frames") && has) frames = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && has) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--size") && has) size = argv[++i];
        else if (!strcmp(argv[i], "--set") && has && nsets < 64) sets[nsets++] = argv[++i];
        else if (!strcmp(argv[i], "--device") && has) device = argv[++i];
        else {
            fprintf(stderr, "avat3r bench animate: unknown or incomplete option '%s'\nusage: avat3r bench animate %s\n",
                    argv[i], USAGE);
            return 2;
        }
    }
    if (frames < 1 || frames > 10000 || threads < 0) {
        fprintf(stderr, "avat3r bench animate: --frames must be 1..10000 and --threads >= 0\n");
        return 2;
    }
    if (threads > 0) omp_set_num_threads(threads);
    threads = omp_get_max_threads();
    ModelConfig c;
    cli_load_model_config(&c, config, sets, nsets);
    int W = c.img_w, H = c.img_h;
    if (size && (sscanf(size, "%dx%d", &W, &H) != 2 || W < 8 || H < 8 || W > 4096 || H > 4096)) {
        fprintf(stderr, "avat3r bench animate: --size '%s': want WxH, 8..4096 each\n", size);
        return 2;
    }
    size_t sizes[NUM_PARAM_TENSORS], np = param_sizes(&c, sizes);
    const double flops = model_forward_flops(&c);
    printf("config %s: %.2f M parameters, %d views of %dx%d, %d tokens, forward %.1f GFLOP; %d thread(s)\n",
           config ? config : "configs/tiny.cfg", np / 1e6, c.views_in, c.img_w, c.img_h, mc_tokens(&c), flops / 1e9, threads);
    fflush(stdout);
    float *params = (float *)mallocCheck(sizeof(float) * (np ? np : 1));
    params_init(params, &c, 1);
    RandomBatch rb;
    random_batch_make(&rb, &c, 1, 2);
    Avat3rBatch in = random_batch_f32(&rb);
    const int E = c.expr_dim;
    float *codes = (float *)mallocCheck(sizeof(float) * (size_t)(frames + 1) * E);
    Rng r = rng_make(3, 0);
    for (size_t i = 0; i < (size_t)(frames + 1) * E; i++) codes[i] = (float)rng_normal_at(&r, i);
    double w2c[12], K[9];
    random_camera(w2c, K, W, H, &r);
    float w2cf[12], Kf[9];
    for (int i = 0; i < 12; i++) w2cf[i] = (float)w2c[i];
    for (int i = 0; i < 9; i++) Kf[i] = (float)K[i];
    const float bg[3] = {1, 1, 1};
    Avatar a;
    char err[256];
    if (avatar_build(&a, &c, params, &in, W, H, 1, bg, device, err, sizeof err)) {
        fprintf(stderr, "avat3r bench animate %s\n", err);
        return 2;
    }
    free(params);
    // creation: the first forward of this avatar (cold: the first touch of the activation memory included)
    double t0 = time_now_s();
    size_t n = avatar_forward(&a, codes);
    double t_create = time_now_s() - t0;
    printf("avatar creation (network forward, aux maps given): %.3f s (%.1f GFLOP/s), %zu of %zu Gaussians kept "
           "(confidence >= %g)\n", t_create, flops / t_create / 1e9, n, (size_t)c.views_in * c.img_h * c.img_w,
           c.conf_threshold);
    fflush(stdout);
    double t_net = 0, t_render = 0;
    for (int k = 0; k < frames; k++) {
        double t1 = time_now_s();
        avatar_forward(&a, codes + (size_t)(k + 1) * E);
        double t2 = time_now_s();
        avatar_render(&a, w2cf, Kf);
        double t3 = time_now_s();
        t_net += t2 - t1, t_render += t3 - t2;
        printf("  frame %d: network %.3f s, render %dx%d %.3f s\n", k + 1, t2 - t1, W, H, t3 - t2);
        fflush(stdout);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const double per = (t_net + t_render) / frames;
    printf("animation: %.3f s/frame = %.3f frames/s (mean of %d; network %.3f s + render %.3f s per frame), "
           "peak memory %.0f MB\n", per, 1 / per, frames, t_net / frames, t_render / frames, ru.ru_maxrss / 1024.0);
    avatar_free(&a);
    random_batch_free(&rb);
    free(codes);
    return 0;
}
