// test_step_cuda.c — the GPU training step (train/cuda/step_cuda.cu) against the CPU training step
// (train/step.c) it mirrors: the same model, the same batches, the same optimizer run on both.
//   avat3r_cuda_step_tests [CONFIG.cfg]   (a config file replaces the small default config; B = 1 then)
//
// What is checked, and why these tolerances:
//   1. state round trip (set_state / get_state): bit-identical.
//   2. the first micro-step, from identical parameters: the Gaussians, the rendered images and the loss
//      terms (L1, SSIM, LPIPS with random VGG weights) within TOL_MODEL of the CPU (the network is within TOL_MODEL, tests/cuda/test_model_cuda.c; the renderer
//      and the losses are float code of the same math), the gradients within TOL_MODEL of the largest.
//   3. a 20-step run (2 micro-batches of different samples per step, so gradient accumulation and the
//      1/grad_accum scale are in it; warm-up, clipping and weight decay on; LPIPS off for the first half and
//      on from step LPIPS_FROM, as lpips_start switches it on in a run): every step's loss within
//      TOL_CURVE relatively. Parameters drift apart as float summation orders differ and AdamW normalises
//      each coordinate's tiny gradient differences to O(lr) steps, so the curve is the oracle here, as in
//      llm.c's test_gpt2.cu. TOL_CURVE = 1e-3 is ten times TOL_MODEL for twenty steps of drift; the run
//      must lower the loss by more than ten times TOL_CURVE (checked too, so the comparison cannot pass on
//      a stalled run).
//   4. a NaN in the input: the micro-step reports a NaN loss and non-finite Gaussians, the update
//      reports a non-finite norm and leaves every parameter and moment bit-identical (as on the CPU).
//   6. the look-ahead order of train/loop.c (stage the next micro-batch between launch and finish):
//      the plain order's losses and gradients (see 6. below).
//   7. the gradient buckets the backward reports for the NCCL all-reduce: final when reported (see 7. below).
//   8. the network alone (NetCuda), then with only a new expression code uploaded (see 8. below).
//   5. the run of 3. with bf16 matmuls (key precision = bf16): every step's loss within TOL_BF16_CURVE of
//      the fp32 CPU curve, falling in both phases. The loss is a mean over all pixels, so the operand
//      rounding (u = 2^-8) reaches it averaged: TOL_BF16_CURVE = 2e-2 is about 5u, where a broken bf16 path
//      (a wrong layout, an unconverted operand) moves the loss by O(1).
// Without a GPU it says so and exits 0.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../model/cuda/avat3r_cuda.h"
#include "../../model/cuda/layers_cuda.h" // cuda_device_count
#include "../../tools/batch_random.h"
#include "../../train/cuda/step_cuda.h"
#include "../../train/step.h"
#include "cuda_test.h"

#define TOL_MODEL 1e-4
#define TOL_CURVE 1e-3
#define TOL_BF16_CURVE 2e-2 // see 5. in the header
#define STEPS 20
#define LPIPS_FROM 10

static int pass, fail;
static void check(int ok, const char *what, double got, double want, double tol) {
    printf("%s %s: gpu %.9g cpu %.9g (rel %.2e, tol %.0e)\n", ok ? "PASS" : "FAIL", what, got, want,
           fabs(got - want) / (fabs(want) + 1e-30), tol);
    ok ? pass++ : fail++;
}
static int close_rel(double a, double b, double tol) { return fabs(a - b) <= tol * fabs(b); }

static ModelConfig small_config(void) {
    ModelConfig c;
    CfgTable t = model_config_table(&c);
    char err[256];
    if (cfg_defaults(&t, 1, err, sizeof err)) FATAL("%s", err);
    c.views_in = 2, c.views_target = 2, c.img_h = 16, c.img_w = 24, c.patch = 4, c.width = 32, c.heads = 2;
    c.layers = 2, c.mlp_ratio = 2, c.expr_dim = 6, c.expr_tokens = 3, c.expr_hidden = 5, c.sapiens_ch = 3;
    c.sapiens_h = 3, c.sapiens_w = 5, c.use_sapiens = 1, c.use_dust3r = 1;
    return c;
}

// two micro-batches of different samples (inputs and targets)
typedef struct {
    RandomBatch rb;
    float *tw, *tk, *trgb, *mouth;
    TrainBatch tb;
} Micro;
static void micro_make(Micro *m, const ModelConfig *c, int B, uint64_t seed) {
    random_batch_make(&m->rb, c, B, seed);
    random_targets_make(c, B, seed + 100, &m->tw, &m->tk, &m->trgb);
    // a mouth region (the w_mouth term) in each target view but the last, which has none
    const int nv = B * c->views_target, H = c->img_h, W = c->img_w;
    m->mouth = (float *)callocCheck((size_t)nv * H * W, sizeof(float));
    for (int v = 0; v + 1 < nv; v++)
        for (int y = H / 2; y < H / 2 + 4; y++)
            for (int x = W / 3 + v; x < W / 3 + v + 6; x++) m->mouth[((size_t)v * H + y) * W + x] = 1;
    m->tb = (TrainBatch){random_batch_f32(&m->rb), m->trgb, m->tw, m->tk, m->mouth};
}
static void micro_free(Micro *m) {
    random_batch_free(&m->rb);
    free(m->tw), free(m->tk), free(m->trgb), free(m->mouth);
}

// 7.: copies each reported gradient bucket aside (device to device, on the default stream)
typedef struct {
    TrainerCuda *t;
    float *shadow;       // [n_params] device
    unsigned char *seen; // [n_params] host: how often each parameter was copied
    int next, in_order;  // the bucket expected next; all came in order so far
} BucketProbe;
static void bucket_probe(void *ctx, int b) {
    BucketProbe *p = (BucketProbe *)ctx;
    p->in_order &= b == p->next++;
    size_t off[NUM_PARAM_TENSORS], cnt[NUM_PARAM_TENSORS];
    int n = grad_bucket_slices(&p->t->mc, b, off, cnt);
    for (int k = 0; k < n; k++) {
        CK(cudaMemcpy(p->shadow + off[k], p->t->m.grads + off[k], 4 * cnt[k], cudaMemcpyDeviceToDevice));
        for (size_t j = 0; j < cnt[k]; j++) p->seen[off[k] + j]++;
    }
}

int main(int argc, char **argv) {
    if (cuda_device_count() == 0) {
        printf("no CUDA device: the CUDA training-step tests are skipped (run them on a GPU machine, see "
               "docs/gpu-verification.md)\n");
        return 0;
    }
    ModelConfig c = small_config();
    if (argc > 1) {
        char err[512];
        if (model_config_load(&c, argv[1], err, sizeof err)) FATAL("%s", err);
    }
    TrainConfig tc;
    {
        CfgTable t = train_config_table(&tc);
        char err[512];
        if (cfg_defaults(&t, 1, err, sizeof err)) FATAL("%s", err);
    }
    const int B = argc > 1 ? 1 : 2; // a config file is a larger model: one sample per micro-batch keeps the CPU side short
    tc.micro_batch = B, tc.grad_accum = 2, tc.w_lpips = 0, tc.steps = STEPS, tc.warmup_steps = 3;
    tc.lr = 1e-2, tc.grad_clip = 0.5, tc.weight_decay = 0.05, tc.w_lpips = 0.5, tc.w_mouth = 0.5;
    LpipsWeights lw;
    lpips_weights_random(&lw, LPIPS_VGG, 17);
    printf("-- training step: views %d -> %d of %dx%d, width %d, layers %d, B %d x %d micro-batches, %d steps\n",
           c.views_in, c.views_target, c.img_w, c.img_h, c.width, c.layers, B, tc.grad_accum, STEPS);
    Trainer cpu;
    TrainerCuda gpu;
    trainer_build(&cpu, &c, &tc, &lw);
    trainer_cuda_build(&gpu, &c, &tc, &lw);
    avat3r_init_params(&cpu.m, 5);
    const size_t np = cpu.m.n_params, nimg = (size_t)B * c.views_target * c.img_h * c.img_w * 3;
    float *hp = (float *)mallocCheck(4 * np), *hm = (float *)mallocCheck(4 * np), *hv = (float *)mallocCheck(4 * np);
    float *hg = (float *)mallocCheck(4 * np), *img = (float *)mallocCheck(4 * nimg);

    // 1. state round trip
    Rng r = rng_make(3, 0);
    for (size_t i = 0; i < np; i++) cpu.adam_m[i] = 1e-3f * (float)rng_normal_at(&r, i);
    for (size_t i = 0; i < np; i++) cpu.adam_v[i] = 1e-6f * fabsf((float)rng_normal_at(&r, np + i));
    trainer_cuda_set_state(&gpu, cpu.m.params, cpu.adam_m, cpu.adam_v);
    trainer_cuda_get_state(&gpu, hp, hm, hv);
    int same = !memcmp(hp, cpu.m.params, 4 * np) && !memcmp(hm, cpu.adam_m, 4 * np) && !memcmp(hv, cpu.adam_v, 4 * np);
    printf("%s state round trip (%zu parameters, both moments): %s\n", same ? "PASS" : "FAIL", np,
           same ? "bit-identical" : "differs");
    same ? pass++ : fail++;
    memset(cpu.adam_m, 0, 4 * np), memset(cpu.adam_v, 0, 4 * np); // the run starts from zero moments
    trainer_cuda_set_state(&gpu, cpu.m.params, NULL, NULL);
    float *p0 = (float *)mallocCheck(4 * np); // the starting parameters, for the bf16 run (5.)
    memcpy(p0, cpu.m.params, 4 * np);

    Micro mb[2];
    micro_make(&mb[0], &c, B, 21);
    micro_make(&mb[1], &c, B, 22);

    // 2. the first micro-step: image, loss terms, gradients
    trainer_cuda_render(&gpu, &mb[0].tb);
    trainer_render(&cpu, &mb[0].tb);
    int ok = ct_compare("render: Gaussians", cpu.m.a.gauss, gpu.m.a.gauss, (size_t)B * cpu.G * GAUSS_DIM, TOL_MODEL);
    ok ? pass++ : fail++;
    ok = ct_compare("render: target views", cpu.r.image, gpu.r.image, nimg, TOL_MODEL);
    ok ? pass++ : fail++;
    trainer_zero_grad(&cpu);
    trainer_cuda_zero_grad(&gpu);
    LossTerms lc = trainer_micro_step(&cpu, &mb[0].tb, 0.5, 0);
    LossTerms lg = trainer_cuda_micro_step(&gpu, &mb[0].tb, 0.5, 0);
    check(close_rel(lg.l1, lc.l1, TOL_MODEL), "first micro-step L1", lg.l1, lc.l1, TOL_MODEL);
    check(close_rel(lg.ssim, lc.ssim, TOL_MODEL), "first micro-step SSIM", lg.ssim, lc.ssim, TOL_MODEL);
    check(close_rel(lg.l1_mouth, lc.l1_mouth, TOL_MODEL) && lc.l1_mouth > 0, "first micro-step mouth L1 (w_mouth 0.5)",
          lg.l1_mouth, lc.l1_mouth, TOL_MODEL);
    check(close_rel(lg.loss, lc.loss, TOL_MODEL), "first micro-step loss", lg.loss, lc.loss, TOL_MODEL);
    ok = isnan(lg.lpips) && isnan(lc.lpips);
    printf("%s LPIPS off: lpips reported as NaN on both\n", ok ? "PASS" : "FAIL");
    ok ? pass++ : fail++;
    ok = ct_compare("first micro-step: parameter gradients (x 0.5)", cpu.m.grads, gpu.m.grads, np, TOL_MODEL);
    ok ? pass++ : fail++;
    ok = ct_compare("first micro-step: dLoss/dGaussians", cpu.dgauss, gpu.dgauss, (size_t)B * cpu.G * GAUSS_DIM,
                    TOL_MODEL);
    ok ? pass++ : fail++;

    // 3. the run: step 0 continues with the second micro-batch
    double curve_c[STEPS], curve_g[STEPS], worst = 0;
    int curve_ok = 1;
    for (int s = 0; s < STEPS; s++) {
        double lsum_c = 0, lsum_g = 0;
        for (int k = 0; k < tc.grad_accum; k++) {
            if (s == 0 && k == 0) {
                lsum_c += lc.loss, lsum_g += lg.loss;
                continue;
            }
            if (k == 0) trainer_zero_grad(&cpu), trainer_cuda_zero_grad(&gpu);
            const int lp = s >= LPIPS_FROM;
            LossTerms a = trainer_micro_step(&cpu, &mb[k].tb, 1.0 / tc.grad_accum, lp);
            LossTerms g = trainer_cuda_micro_step(&gpu, &mb[k].tb, 1.0 / tc.grad_accum, lp);
            lsum_c += a.loss, lsum_g += g.loss;
            if (s == LPIPS_FROM && k == 0) {
                check(close_rel(g.lpips, a.lpips, TOL_CURVE), "LPIPS term when it switches on", g.lpips, a.lpips,
                      TOL_CURVE);
                ok = a.lpips > 0;
                printf("%s the LPIPS term is on and non-zero on the CPU (%g)\n", ok ? "PASS" : "FAIL", a.lpips);
                ok ? pass++ : fail++;
            }
        }
        double nc = trainer_update(&cpu, s, NULL), ng = trainer_cuda_update(&gpu, s, NULL);
        curve_c[s] = lsum_c / tc.grad_accum, curve_g[s] = lsum_g / tc.grad_accum;
        double rel = fabs(curve_g[s] - curve_c[s]) / fabs(curve_c[s]);
        worst = fmax(worst, rel);
        curve_ok &= rel <= TOL_CURVE && isfinite(curve_g[s]);
        if (s < 3 || s == LPIPS_FROM || s == STEPS - 1 || rel > TOL_CURVE)
            printf("   step %2d: loss cpu %.7f gpu %.7f (rel %.2e), grad norm cpu %.6g gpu %.6g\n", s, curve_c[s],
                   curve_g[s], rel, nc, ng);
    }
    printf("%s loss curve over %d steps: worst rel %.2e (tol %.0e)\n", curve_ok ? "PASS" : "FAIL", STEPS, worst,
           TOL_CURVE);
    curve_ok ? pass++ : fail++;
    // training lowers the loss within each phase (L1 + SSIM, then with LPIPS, whose switch raises it)
    double d1 = (curve_c[0] - curve_c[LPIPS_FROM - 1]) / curve_c[0];
    double d2 = (curve_c[LPIPS_FROM] - curve_c[STEPS - 1]) / curve_c[LPIPS_FROM];
    ok = d1 > 0 && d2 > 0 && d1 + d2 > 10 * TOL_CURVE;
    printf("%s the run lowers the loss: %.4f -> %.4f without LPIPS, %.4f -> %.4f with it (%.2f%% + %.2f%%; must "
           "both fall, by more than %.1f%% together)\n", ok ? "PASS" : "FAIL", curve_c[0], curve_c[LPIPS_FROM - 1],
           curve_c[LPIPS_FROM], curve_c[STEPS - 1], 100 * d1, 100 * d2, 100 * 10 * TOL_CURVE);
    ok ? pass++ : fail++;

    // 4. a NaN in the input image: NaN loss, non-finite norm, nothing updated
    trainer_cuda_get_state(&gpu, hp, hm, hv);
    size_t nrgb = mb[0].rb.n_rgb;
    float keep = mb[0].rb.rgb32[nrgb / 2];
    mb[0].rb.rgb32[nrgb / 2] = NAN;
    trainer_cuda_zero_grad(&gpu);
    LossTerms ln = trainer_cuda_micro_step(&gpu, &mb[0].tb, 1.0, 1);
    double nn = trainer_cuda_update(&gpu, STEPS, NULL);
    mb[0].rb.rgb32[nrgb / 2] = keep;
    float *hp2 = (float *)mallocCheck(4 * np), *hm2 = (float *)mallocCheck(4 * np), *hv2 = (float *)mallocCheck(4 * np);
    trainer_cuda_get_state(&gpu, hp2, hm2, hv2);
    same = !memcmp(hp, hp2, 4 * np) && !memcmp(hm, hm2, 4 * np) && !memcmp(hv, hv2, 4 * np);
    ok = isnan(ln.loss) && gpu.n_nonfinite_gauss > 0 && !isfinite(nn) && same;
    printf("%s NaN input pixel: loss %g, %ld non-finite Gaussians, grad norm %g, state %s\n", ok ? "PASS" : "FAIL",
           ln.loss, gpu.n_nonfinite_gauss, nn, same ? "unchanged" : "CHANGED");
    ok ? pass++ : fail++;

    // 6. train/loop.c's look-ahead order: the next micro-batch staged between launch and finish, its host
    //    buffers overwritten (NaN) as soon as it is staged, a validation render while it waits in its slot.
    //    It must give the plain order's loss terms and gradients. A real copy engine finishes the upload
    //    early or late; the emulator runs it as late as allowed (at the wait), and the cudaDeviceSynchronize
    //    before the render makes it finish early, so a render into the staged slot would show here too.
    //    Tolerance: TOL_MODEL (the rasterizer's backward sums with float atomics on a GPU).
    {
        float *g_plain = (float *)mallocCheck(4 * np);
        trainer_cuda_set_state(&gpu, hp, hm, hv);
        trainer_cuda_zero_grad(&gpu);
        LossTerms a0 = trainer_cuda_micro_step(&gpu, &mb[0].tb, 0.5, 1);
        LossTerms a1 = trainer_cuda_micro_step(&gpu, &mb[1].tb, 0.5, 1);
        CK(cudaMemcpy(g_plain, gpu.m.grads, 4 * np, cudaMemcpyDeviceToHost));
        trainer_cuda_set_state(&gpu, hp, hm, hv);
        trainer_cuda_zero_grad(&gpu);
        trainer_cuda_stage(&gpu, &mb[0].tb);
        trainer_cuda_micro_launch(&gpu, 0.5, 1);
        trainer_cuda_stage(&gpu, &mb[1].tb);
        const size_t nr = mb[1].rb.n_rgb;
        float *keep_rgb = (float *)mallocCheck(4 * nr), *keep_tgt = (float *)mallocCheck(4 * nimg);
        memcpy(keep_rgb, mb[1].rb.rgb32, 4 * nr), memcpy(keep_tgt, mb[1].trgb, 4 * nimg);
        for (size_t i = 0; i < nr; i++) mb[1].rb.rgb32[i] = NAN;
        for (size_t i = 0; i < nimg; i++) mb[1].trgb[i] = NAN;
        LossTerms b0 = trainer_cuda_micro_finish(&gpu);
        CK(cudaDeviceSynchronize());
        trainer_cuda_render(&gpu, &mb[0].tb);
        trainer_cuda_micro_launch(&gpu, 0.5, 1);
        LossTerms b1 = trainer_cuda_micro_finish(&gpu);
        memcpy(mb[1].rb.rgb32, keep_rgb, 4 * nr), memcpy(mb[1].trgb, keep_tgt, 4 * nimg);
        ok = close_rel(b0.loss, a0.loss, TOL_MODEL) && close_rel(b1.loss, a1.loss, TOL_MODEL) && a1.loss != a0.loss;
        printf("%s look-ahead order: losses %.9g, %.9g against the plain order's %.9g, %.9g (tol %.0e rel)\n",
               ok ? "PASS" : "FAIL", b0.loss, b1.loss, a0.loss, a1.loss, TOL_MODEL);
        ok ? pass++ : fail++;
        ok = ct_compare("look-ahead order: accumulated parameter gradients", g_plain, gpu.m.grads, np, TOL_MODEL);
        ok ? pass++ : fail++;
        free(g_plain), free(keep_rgb), free(keep_tgt);
    }

    // 7. the gradient buckets of the data-parallel all-reduce (train/step_device.c, NCCL): the network's
    //    backward reports each bucket (params.h grad_bucket_slices) once its gradients are final. A hook that
    //    copies the bucket's slices aside when reported, on the default stream (so after the bucket's queued
    //    kernels), must end with a copy equal, bit for bit, to the final gradients, every parameter copied
    //    once, the buckets reported in order; armed on the second of two accumulated micro-batches, as the
    //    loop does.
    {
        BucketProbe bp = {&gpu, (float *)NULL, (unsigned char *)callocCheck(np, 1), 0, 1};
        CK(cudaMalloc((void **)&bp.shadow, 4 * np));
        CK(cudaMemset(bp.shadow, 0xff, 4 * np)); // NaN: an element never copied fails the comparison
        trainer_cuda_set_state(&gpu, hp, hm, hv);
        trainer_cuda_zero_grad(&gpu);
        trainer_cuda_micro_step(&gpu, &mb[0].tb, 0.5, 1);
        gpu.m.grads_ready = bucket_probe, gpu.m.grads_ready_ctx = &bp;
        trainer_cuda_micro_step(&gpu, &mb[1].tb, 0.5, 1);
        gpu.m.grads_ready = NULL;
        size_t once = 0;
        for (size_t i = 0; i < np; i++) once += bp.seen[i] == 1;
        float *sh = (float *)mallocCheck(4 * np), *gr = (float *)mallocCheck(4 * np);
        CK(cudaMemcpy(sh, bp.shadow, 4 * np, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(gr, gpu.m.grads, 4 * np, cudaMemcpyDeviceToHost));
        const int NB = GRAD_BUCKETS(&c);
        ok = bp.next == NB && bp.in_order && once == np && !memcmp(sh, gr, 4 * np);
        printf("%s gradient buckets: %d of %d reported %s, %zu of %zu parameters copied once, the copies taken when "
               "reported %s the final gradients\n", ok ? "PASS" : "FAIL", bp.next, NB,
               bp.in_order ? "in order" : "OUT OF ORDER", once, np, memcmp(sh, gr, 4 * np) ? "DIFFER FROM" : "equal");
        ok ? pass++ : fail++;
        CK(cudaFree(bp.shadow));
        free(bp.seen), free(sh), free(gr);
    }

    // 8. the network alone (NetCuda, avat3r animate --device cuda): a forward with every input, then one
    //    with only a new expression code uploaded (expr_only), against the CPU forward on the first
    //    sample's views with the second sample's code. init_std 0.3 makes the code move the Gaussians by far
    //    more than the tolerance, so a code that was not uploaded fails.
    {
        ModelConfig c8 = c;
        c8.init_std = 0.3;
        Avat3r m8;
        avat3r_build(&m8, &c8, B);
        avat3r_init_params(&m8, 9);
        NetCuda nc;
        net_cuda_build(&nc, &c8, B, m8.params);
        const size_t ng = (size_t)B * c8.views_in * c8.img_h * c8.img_w * GAUSS_DIM;
        float *ga = (float *)mallocCheck(4 * ng), *gb = (float *)mallocCheck(4 * ng);
        Avat3rBatch in = mb[0].tb.in;
        net_cuda_forward(&nc, &in, ga, 0);
        in.expr = mb[1].tb.in.expr;
        net_cuda_forward(&nc, &in, gb, 1);
        avat3r_forward(&m8, &in);
        double err = 0, moved = 0, big = 0;
        for (size_t i = 0; i < ng; i++) {
            err = fmax(err, fabs((double)gb[i] - m8.a.gauss[i]));
            moved = fmax(moved, fabs((double)gb[i] - ga[i]));
            big = fmax(big, fabs(m8.a.gauss[i]));
        }
        ok = err <= TOL_MODEL * big && moved > 100 * TOL_MODEL * big;
        printf("%s network alone, only the code uploaded for the second forward: max abs err %.2e (tol %.0e of max "
               "%.2e); the new code moved the Gaussians by %.2e (must exceed 100x the tolerance)\n",
               ok ? "PASS" : "FAIL", err, TOL_MODEL, big, moved);
        ok ? pass++ : fail++;
        net_cuda_free(&nc);
        avat3r_free(&m8);
        free(ga), free(gb);
    }

    trainer_cuda_free(&gpu);

    // 5. the same run with bf16 matmuls (precision = bf16; the precision is one per process, so after the
    //    fp32 trainer is gone) against the fp32 CPU curve: within TOL_BF16_CURVE, and still falling
    TrainConfig tb16 = tc;
    snprintf(tb16.precision, sizeof tb16.precision, "bf16");
    trainer_cuda_build(&gpu, &c, &tb16, &lw);
    trainer_cuda_set_state(&gpu, p0, NULL, NULL);
    double curve_b[STEPS], worst_b = 0;
    for (int s = 0; s < STEPS; s++) {
        double lsum = 0;
        trainer_cuda_zero_grad(&gpu);
        for (int k = 0; k < tc.grad_accum; k++)
            lsum += trainer_cuda_micro_step(&gpu, &mb[k].tb, 1.0 / tc.grad_accum, s >= LPIPS_FROM).loss;
        trainer_cuda_update(&gpu, s, NULL);
        curve_b[s] = lsum / tc.grad_accum;
        worst_b = fmax(worst_b, fabs(curve_b[s] - curve_c[s]) / fabs(curve_c[s]));
        if (!isfinite(curve_b[s])) worst_b = INFINITY;
    }
    double b1 = (curve_b[0] - curve_b[LPIPS_FROM - 1]) / curve_b[0];
    double b2 = (curve_b[LPIPS_FROM] - curve_b[STEPS - 1]) / curve_b[LPIPS_FROM];
    ok = worst_b <= TOL_BF16_CURVE && b1 > 0 && b2 > 0;
    printf("%s bf16 matmuls: loss curve within %.2e of the fp32 CPU's (tol %.0e; step %d: %.7f vs %.7f), falling "
           "by %.2f%% and %.2f%%\n", ok ? "PASS" : "FAIL", worst_b, TOL_BF16_CURVE, STEPS - 1, curve_b[STEPS - 1],
           curve_c[STEPS - 1], 100 * b1, 100 * b2);
    ok ? pass++ : fail++;
    trainer_cuda_free(&gpu);

    micro_free(&mb[0]), micro_free(&mb[1]);
    free(hp), free(hm), free(hv), free(hg), free(img), free(hp2), free(hm2), free(hv2), free(p0);
    trainer_free(&cpu);
    lpips_weights_free(&lw);
    printf("CUDA training-step tests: %d of %d checks passed\n", pass, pass + fail);
    return fail ? 1 : 0;
}
