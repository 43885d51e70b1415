// cmd_bench_render.c — `avat3r bench render`: the rasterizer on pixel-aligned scenes like the model
// produces (one Gaussian per input pixel of V views), forward and backward timed separately, peak
// memory, and the naive PyTorch reference on the same scene side by side (when it is small enough).
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "../common/timer.h"
#include "../common/util.h"
#include "cli.h"
#include "raster.h"
#include "scene_random.h"

static double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

static double ref_ms(const char *scene, int iters, int threads) {
    char args[4096];
    snprintf(args, sizeof args, "'%s/tools/reference/raster_ref.py' bench --scene '%s' --iters %d --threads %d",
             cli_source_root(), scene, iters, threads);
    return cli_reference_bench_ms(args);
}

int cmd_bench_render(int argc, char **argv) {
    const char *usage = "--scale tiny|paper|small [--iters N] [--threads T] [--no-ref]\n"
                        "  tiny: 4x64x64 Gaussians -> 4 views at 64x64; paper: 4x512x512 -> 8 views at 512x512;\n"
                        "  small: 4x16x16 -> 4 views at 32x32 (where the naive reference is affordable)";
    const char *scale = "tiny";
    int iters = 5, threads = 0, no_ref = 0;
    for (int i = 1; i < argc; i++) {
        int has = i + 1 < argc;
        if (!strcmp(argv[i], "--scale") && has) scale = argv[++i];
        else if (!strcmp(argv[i], "--iters") && has) iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && has) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-ref")) no_ref = 1;
        else if (!strcmp(argv[i], "--device") && has && !strcmp(argv[i + 1], "cpu")) i++;
        else {
            fprintf(stderr, "usage: avat3r bench render %s\n", usage);
            return 2;
        }
    }
    int V = 4, vw, Cm, W;
    if (!strcmp(scale, "tiny")) vw = 64, Cm = 4, W = 64;
    else if (!strcmp(scale, "paper")) vw = 512, Cm = 8, W = 512;
    else if (!strcmp(scale, "small")) vw = 16, Cm = 4, W = 32;
    else {
        fprintf(stderr, "avat3r bench render: --scale tiny|paper|small\n");
        return 2;
    }
    if (iters < 1) iters = 1;
    if (threads > 0) omp_set_num_threads(threads);
    threads = omp_get_max_threads();
    RasterDims d = {1, 0, Cm, W, W, 3};
    Scene s;
    scene_aligned(&s, d, V, vw, vw, 1);
    d = s.d;
    Raster r;
    raster_build(&r, d, 4);
    RasterIn in = scene_in32(&s);
    size_t px = (size_t)Cm * W * W, G = (size_t)d.G;
    float *dI = (float *)mallocCheck(px * 3 * 4), *grads = (float *)callocCheck(G * 14 + 3, 4);
    for (size_t i = 0; i < px * 3; i++) dI[i] = (float)((i * 2654435761u) % 1000) / 1000.f - 0.5f;
    RasterGrad g = {grads, grads + 3 * G, grads + 7 * G, grads + 10 * G, grads + 11 * G, grads + 14 * G};
    double *tf = (double *)mallocCheck(8 * iters), *tb = (double *)mallocCheck(8 * iters);
    for (int it = -1; it < iters; it++) {
        double t0 = time_now_s();
        raster_forward(&r, &in);
        double t1 = time_now_s();
        raster_backward(&r, &in, dI, NULL, NULL, &g);
        double t2 = time_now_s();
        if (it >= 0) tf[it] = 1e3 * (t1 - t0), tb[it] = 1e3 * (t2 - t1);
    }
    double f = tf[0], b = tb[0];
    for (int i = 1; i < iters; i++) f = tf[i] < f ? tf[i] : f, b = tb[i] < b ? tb[i] : b; // best of N
    printf("render %s: %zu Gaussians -> %d views of %dx%d, %zu tile intersections, %d threads\n", scale, G, Cm, W, W,
           r.n_isect, threads);
    printf("C (float32): forward %.2f ms (%.2f ms/view), backward %.2f ms (%.2f ms/view), "
           "forward+backward %.2f ms/view (best of %d), peak RSS %.0f MB\n",
           f, f / Cm, b, b / Cm, (f + b) / Cm, iters, peak_rss_mb());
    int rc = 0;
    if (!no_ref) {
        if (G * px > 512ull * 1024 * 1024) {
            printf("PyTorch reference: skipped at this size (naive O(pixels x Gaussians)); use --scale small\n");
        } else {
            char dir[] = "/tmp/avat3r_bench.XXXXXX", path[600], cmd[700];
            if (!mkdtemp(dir)) FATAL("cannot create a temporary directory");
            snprintf(path, sizeof path, "%s/scene.atb", dir);
            double *w = (double *)mallocCheck(px * 3 * 8);
            for (size_t i = 0; i < px * 3; i++) w[i] = dI[i];
            scene_write(&s, path, w, NULL, NULL);
            free(w);
            double ref = ref_ms(path, iters, threads);
            snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
            if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
            if (ref > 0)
                printf("PyTorch reference (naive, float32, %d threads): forward+backward %.2f ms\nratio: C is %.1fx faster\n",
                       threads, ref, ref / (f + b));
            else rc = 1;
        }
    }
    free(tf), free(tb), free(dI), free(grads);
    raster_free(&r);
    scene_free(&s);
    return rc;
}
