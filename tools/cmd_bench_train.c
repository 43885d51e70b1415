// cmd_bench_train.c — `avat3r bench train`: the full training step on the CPU (train/step.c) or, with
// --device cuda, on one GPU (train/cuda/step_cuda.cu, through train/step_device.h) — samples/s, peak
// memory and the share of each phase — and the same step minus the rasterizer in the PyTorch reference
// (tools/reference/train_step_ref.py bench, on the same device), run side by side from this process.
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "../common/timer.h"
#include "../common/util.h"
#include "batch_random.h"
#include "checkpoint.h"
#include "cli.h"
#include "loader.h"
#include "step.h"
#include "step_device.h"

int cmd_bench_train(int argc, char **argv) {
    const char *usage = "--config FILE [--batch B] [--iters N] [--threads T] [--device cpu|cuda] [--no-ref] [--set k=v]\n"
                        "  --device cuda also measures the GPU's matmul rate (n = 8192; AVAT3R_BENCH_PEAK_N=n to change it)\n"
                        "  for the transformer's MFU, and reports the device memory in use\n"
                        "  (random batches: cameras on a sphere, point maps near the origin; the data loader is "
                        "timed by `avat3r bench data`)";
    CliOpts o;
    if (cli_parse_opts(argc, argv, &o, "bench train", usage)) return 2;
    if (o.threads > 0) omp_set_num_threads(o.threads);
    const int threads = omp_get_max_threads(), B = o.batch, iters = o.iters;
    ModelConfig c;
    TrainConfig tc; // the file's training keys (precision, clip, AdamW) with the overrides; one micro-batch of B
    cli_load_configs(&c, &tc, o.config, o.sets, o.nsets);
    tc.micro_batch = B, tc.w_lpips = 0;
    Trainer t;
    trainer_build(&t, &c, &tc, NULL);
    avat3r_init_params(&t.m, 1);
    RandomBatch rb;
    random_batch_make(&rb, &c, B, 2);
    const int Vt = c.views_target, H = c.img_h, W = c.img_w;
    float *tw, *tk, *trgb;
    random_targets_make(&c, B, 7, &tw, &tk, &trgb);
    TrainBatch tb = {random_batch_f32(&rb), trgb, tw, tk, NULL};
    StepDevice sd;
    char err[256];
    if (step_device_open(&sd, &t, o.device, 0, err, sizeof err)) FATAL("%s", err);
    const int gpu = sd.cuda;
    // the step, `n` times after one warm-up; seconds in all. On the GPU every step ends with host reads
    // (the loss, the norm), so the wall time covers the device's work.
    double totals[2] = {0, 0}, parts[6];
    for (int pass = 0; pass < 1 + gpu; pass++) { // GPU: a second pass, synchronised per phase, for the breakdown
        step_device_timed(&sd, pass == 1);
        double sum = 0;
        step_device_stage(&sd, &tb); // as train/loop.c: the next micro-batch is staged while one runs
        for (int it = -1; it < iters; it++) {
            if (it == 0) step_device_times(&sd, parts, 1);
            double t0 = time_now_s();
            step_device_zero_grad(&sd);
            step_device_micro_launch(&sd, 1.0, 0);
            if (it + 1 < iters) step_device_stage(&sd, &tb);
            step_device_micro_finish(&sd);
            step_device_update(&sd, 1000, NULL);
            if (it >= 0) sum += time_now_s() - t0;
        }
        totals[pass] = sum;
        step_device_times(&sd, parts, 0);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const double ms = 1e3 * totals[0] / iters;
    double total = totals[gpu]; // the pass the phases were timed in
    const char *names[6] = {"network forward", "render forward", "losses (fwd+bwd)", "render backward",
                            "network backward", "clip + AdamW"};
    if (gpu)
        printf("CUDA training step (matmuls %s, batch %d, %d target views of %dx%d, %zu Gaussians/sample): %.2f "
               "ms/step = %.2f samples/s (mean of %d); host peak memory %.0f MB; breakdown from a second pass that "
               "synchronises at every phase end:\n", tc.precision, B, Vt, W, H, t.G, ms, B / (ms * 1e-3), iters,
               ru.ru_maxrss / 1024.0);
    else
        printf("C training step (float32, %d threads, batch %d, %d target views of %dx%d, %zu Gaussians/sample): "
               "%.2f ms/step = %.2f samples/s (mean of %d), peak memory %.0f MB\n",
               threads, B, Vt, W, H, t.G, ms, B / (ms * 1e-3), iters, ru.ru_maxrss / 1024.0);

    double rest = total;
    for (int k = 0; k < 6; k++) {
        printf("  %-18s %8.2f ms  %5.1f%%\n", names[k], 1e3 * parts[k] / iters, 100 * parts[k] / total);
        rest -= parts[k];
    }
    printf("  %-18s %8.2f ms  %5.1f%%   (splitting the Gaussians, zeroing gradients)\n", "other", 1e3 * rest / iters,
           100 * rest / total);
    if (gpu) { // MFU: the network's FLOPs (3x forward) over its phases' time, against the measured matmul rate
        const char *pn = getenv("AVAT3R_BENCH_PEAK_N");
        int n = pn ? atoi(pn) : 8192;
        double peak = step_device_gemm_peak(&sd, n > 0 ? n : 8192, 10), mem = step_device_mem_used(&sd);
        double net_s = (parts[0] + parts[4]) / iters, fl = 3 * model_forward_flops(&c) * B;
        printf("network: %.1f GFLOP/step in %.2f ms (forward incl. the upload + backward) = %.1f TFLOP/s; matmul rate "
               "(%s, %dx%dx%d) %.1f TFLOP/s; MFU %.1f%%\n", fl / 1e9, 1e3 * net_s, fl / net_s / 1e12, t.tc.precision,
               n, n, n, peak, peak > 0 ? 100 * fl / net_s / 1e12 / peak : 0.0);
        if (mem >= 0) printf("device memory in use: %.2f GB (the CUDA context included)\n", mem / 1e9);
    }
    int rc = 0;
    if (!o.no_ref) {
        char dir[] = "/tmp/avat3r_bench.XXXXXX";
        if (!mkdtemp(dir)) FATAL("cannot create a temporary directory");
        char path[512], args[4096];
        snprintf(path, sizeof path, "%s/bench.ckpt", dir);
        checkpoint_save(path, &c, t.m.params, t.m.n_params);
        snprintf(args, sizeof args, "'%s/tools/reference/train_step_ref.py' bench --ckpt '%s' --B %d --iters %d --threads %d "
                 "--device %s", cli_source_root(), path, B, iters, threads, gpu ? "cuda" : "cpu");
        double ref = cli_reference_bench_ms(args);
        unlink(path);
        rmdir(dir);
        double c_cmp = 1e3 * (total - parts[1] - parts[3]) / iters;
        if (ref > 0 && gpu)
            printf("PyTorch reference on the GPU, the same step minus the rasterizer (float32, eager): %.2f ms; CUDA "
                   "without its rasterizer: %.2f ms (breakdown pass)\nratio: avat3r.c is %.2fx %s than PyTorch on the "
                   "comparable part (gsplat is not installed on the device machine: no rasterizer on the PyTorch side)\n",
                   ref, c_cmp, ref >= c_cmp ? ref / c_cmp : c_cmp / ref, ref >= c_cmp ? "faster" : "slower");
        else if (ref > 0)
            printf("PyTorch reference, the same step minus the rasterizer (float32, %d threads): %.2f ms; C without "
                   "its rasterizer: %.2f ms\nratio: C is %.2fx %s than PyTorch on the comparable part (no CPU PyTorch "
                   "Gaussian rasterizer exists at this size: gsplat is CUDA-only)\n",
                   threads, ref, c_cmp, ref >= c_cmp ? ref / c_cmp : c_cmp / ref, ref >= c_cmp ? "faster" : "slower");
        else rc = 1;
    }
    free(tw), free(tk), free(trgb);
    random_batch_free(&rb);
    step_device_close(&sd);
    trainer_free(&t);
    return rc;
}
