// cmd_bench.c — `avat3r bench model`: forward+backward time of the C path against the PyTorch
// reference of the same config, batch and thread count, run side by side from this process.
#include <cblas.h>
#include <cjson/cJSON.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/timer.h"
#include "../common/util.h"
#include "avat3r.h"
#include "batch_random.h"
#include "checkpoint.h"
#include "cli.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double cli_reference_bench_ms(const char *args) {
    char cmd[8192], out[4096] = {0};
    // Measured on the 2-core machine (docs/benchmarks.md): passive makes C's many short parallel regions pay
    // a futex wake-up each (+35 % per step); active keeps this process's idle threads spinning on the cores
    // the reference runs on (the reference 5-10x slower). Either way the ratio is not the machine's.
    static int warned;
    const char *wp = getenv("OMP_WAIT_POLICY");
    if (wp && *wp && !warned++)
        fprintf(stderr, "bench: note: OMP_WAIT_POLICY=%s is set; it distorts the C/PyTorch ratio (passive slows C, "
                        "active slows the reference): unset it for a comparison\n", wp);
    snprintf(cmd, sizeof cmd, "'%s' %s", cli_python(), args);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    if (pclose(p) != 0) {
        fprintf(stderr, "reference benchmark failed: %s\n%s\n", cmd, out);
        return -1;
    }
    const char *brace = strrchr(out, '{'); // the script's last line is one JSON object
    cJSON *j = brace ? cJSON_Parse(brace) : NULL, *ms = j ? cJSON_GetObjectItem(j, "fwd_bwd_ms") : NULL;
    double v = cJSON_IsNumber(ms) ? ms->valuedouble : -1;
    cJSON_Delete(j);
    return v;
}

// The machine's matmul roof: OpenBLAS sgemm on 1024³ (large enough to run at the kernel's peak), the median
// GFLOP/s of 5 after a warm-up, on the threads the bench uses. The model's matmuls are far smaller; this says
// how much of the step's time is left above the hardware's float32 throughput.
static double sgemm_peak_gflops(void) {
    const int n = 1024;
    float *a = (float *)mallocCheck(sizeof(float) * n * n), *b = (float *)mallocCheck(sizeof(float) * n * n);
    float *c = (float *)mallocCheck(sizeof(float) * n * n);
    for (size_t i = 0; i < (size_t)n * n; i++) a[i] = (float)(i % 7) * 0.1f, b[i] = (float)(i % 5) * 0.1f;
    double t[6];
    for (int r = 0; r < 6; r++) {
        double t0 = time_now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1, a, n, b, n, 0, c, n);
        t[r] = time_now_s() - t0;
    }
    free(a), free(b), free(c);
    return 2.0 * n * n * n / median(t + 1, 5) / 1e9;
}

// The network reference's bench verb on the checkpoint and batch in dir.
static double reference_ms(const char *dir, int iters, int threads) {
    char args[4096];
    snprintf(args, sizeof args,
             "'%s/tools/reference/avat3r_ref.py' bench --ckpt '%s/bench.ckpt' --batch '%s/bench.atb' --iters %d "
             "--warmup 1 --threads %d --dtype float32",
             cli_source_root(), dir, dir, iters, threads);
    return cli_reference_bench_ms(args);
}

int cmd_bench(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "render")) return cmd_bench_render(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "data")) return cmd_bench_data(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "train")) return cmd_bench_train(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "animate")) return cmd_bench_animate(argc - 1, argv + 1);
    if (argc < 2 || strcmp(argv[1], "model")) {
        fprintf(stderr, "usage: avat3r bench model --config FILE [--batch B] [--iters N] [--rounds R] [--threads T] [--no-ref] "
                        "[--flops-only]\n       avat3r bench render --scale tiny|paper|small [--iters N] [--no-ref]\n"
                        "       avat3r bench data [--size 512] [--images 64] [--quality 92]\n"
                        "       avat3r bench train --config FILE [--batch B] [--iters N] [--threads T] [--no-ref]\n"
                        "       avat3r bench animate --config FILE [--frames N] [--threads T] [--size WxH]\n");
        return 2;
    }
    CliOpts o;
    if (cli_parse_opts(argc - 1, argv + 1, &o, "bench model",
                       "--config FILE [--batch B] [--iters N] [--rounds R] [--threads T] [--no-ref] [--flops-only] [--set k=v]"))
        return 2;
    const char *config = o.config;
    int B = o.batch, iters = o.iters, threads = o.threads;
    if (o.rounds < 1 || o.rounds > 64) {
        fprintf(stderr, "avat3r bench model: --rounds must be 1..64\n");
        return 2;
    }
    if (threads > 0) omp_set_num_threads(threads);
    threads = omp_get_max_threads();
    ModelConfig c;
    cli_load_model_config(&c, config, o.sets, o.nsets);
    size_t sizes[NUM_PARAM_TENSORS], np = param_sizes(&c, sizes);
    double fl = model_forward_flops(&c);
    printf("config %s: %zu parameters (%.2f M), %d tokens/sample, forward %.3f GFLOP/sample, "
           "training step ~%.3f GFLOP/sample (3x forward)\n",
           config ? config : "configs/tiny.cfg", np, np / 1e6, mc_tokens(&c), fl / 1e9, 3 * fl / 1e9);
    if (o.flops_only) return 0;

    Avat3r m;
    avat3r_build(&m, &c, B);
    avat3r_init_params(&m, 1);
    RandomBatch rb;
    random_batch_make(&rb, &c, B, 2);
    Avat3rBatch in = random_batch_f32(&rb);
    double *tf = (double *)mallocCheck(sizeof(double) * iters), *tfb = (double *)mallocCheck(sizeof(double) * iters);
    char dir[] = "/tmp/avat3r_bench.XXXXXX";
    if (!o.no_ref) { // the reference loads the same parameters and batch
        if (!mkdtemp(dir)) FATAL("cannot create a temporary directory");
        char path[512];
        snprintf(path, sizeof path, "%s/bench.ckpt", dir);
        checkpoint_save(path, &c, m.params, m.n_params);
        snprintf(path, sizeof path, "%s/bench.atb", dir);
        random_batch_write(&rb, path);
    }
    // Rounds alternate the C timing and the reference's, so that a shift of the machine's speed between
    // processes (seen on shared machines: ±20 %) shows as spread across rounds instead of one wrong ratio.
    int rounds = o.no_ref ? 1 : o.rounds, rc = 0;
    double ratios[64];
    for (int r = 0; r < rounds; r++) {
        for (int it = -1; it < iters; it++) { // one warm-up
            double f, fb = cli_timed_step(&m, &in, rb.w32, &f);
            if (it >= 0) tf[it] = f, tfb[it] = fb;
        }
        double ms_f = median(tf, iters), ms_fb = median(tfb, iters);
        printf("C (float32, %d threads, batch %d): forward %.2f ms, forward+backward %.2f ms (median of %d), %.2f "
               "GFLOP/s\n", threads, B, ms_f, ms_fb, iters, 3 * fl * B / (ms_fb * 1e-3) / 1e9);
        if (r == 0) {
            double peak = sgemm_peak_gflops();
            printf("roof: OpenBLAS sgemm 1024^3 on this machine %.1f GFLOP/s (%d threads); the C step is at %.0f %% of it "
                   "(a step at the roof: %.2f ms)\n", peak, threads, 100 * 3 * fl * B / (ms_fb * 1e-3) / 1e9 / peak,
                   3 * fl * B / peak / 1e6);
        }
        if (o.no_ref) break;
        double ref = reference_ms(dir, iters, threads);
        if (ref <= 0) {
            rc = 1;
            break;
        }
        ratios[r] = ref / ms_fb;
        printf("PyTorch reference (float32, %d threads, batch %d): forward+backward %.2f ms\n"
               "ratio: C is %.2fx %s than PyTorch\n",
               threads, B, ref, ref >= ms_fb ? ref / ms_fb : ms_fb / ref, ref >= ms_fb ? "faster" : "slower");
        fflush(stdout);
    }
    if (!o.no_ref) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    }
    if (!rc && rounds > 1) {
        double lo = ratios[0], hi = ratios[0];
        for (int r = 1; r < rounds; r++) lo = ratios[r] < lo ? ratios[r] : lo, hi = ratios[r] > hi ? ratios[r] : hi;
        printf("ratio over %d rounds (PyTorch time / C time): median %.2f, range %.2f-%.2f\n", rounds,
               median(ratios, rounds), lo, hi);
    }
    free(tf);
    free(tfb);
    random_batch_free(&rb);
    avat3r_free(&m);
    return rc;
}
