// step_cuda.cu — the GPU training step (see step_cuda.h). The order of operations is train/step.c's,
// call for call, so the CPU step is the oracle of this one.
#include <math.h>
#include <string.h>

extern "C" {
#include "../../common/log.h"
#include "../../common/timer.h"
}
#include "../../model/cuda/launch.h"
#include "../../model/cuda/matmul_cuda.h"
#include "loss_cuda.h"
#include "optim_cuda.h"
#include "step_cuda.h"

// gauss [n, 14] → the rasterizer's arrays; counts Gaussians with a NaN or Inf in any attribute (the CPU
// rasterizer's n_nonfinite: it tests the same 14 values). The count is an integer atomic: exact.
__global__ static void split_kernel(float *means, float *quats, float *scales, float *opac, float *colors,
                                    unsigned long long *n_bad, const float *gauss, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float *g = gauss + i * GAUSS_DIM;
    for (int c = 0; c < 3; c++) means[i * 3 + c] = g[GAUSS_OFF_POS + c];
    for (int c = 0; c < 3; c++) colors[i * 3 + c] = g[GAUSS_OFF_RGB + c];
    for (int c = 0; c < 3; c++) scales[i * 3 + c] = g[GAUSS_OFF_SCALE + c];
    for (int c = 0; c < 4; c++) quats[i * 4 + c] = g[GAUSS_OFF_ROT + c];
    opac[i] = g[GAUSS_OFF_OPAC];
    int finite = 1;
    for (int k = 0; k < GAUSS_DIM; k++) finite &= isfinite(g[k]) ? 1 : 0;
    if (!finite) atomicAdd(n_bad, 1ull);
}

// fault-injection hook: every Gaussian's colour channel 0 becomes +Inf (as train/step.c does)
__global__ static void inf_colour_kernel(float *gauss, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) gauss[i * GAUSS_DIM + GAUSS_OFF_RGB] = INFINITY;
}

// the rasterizer's gradient arrays → dgauss [n, 14] (overwritten)
__global__ static void merge_kernel(float *dgauss, const float *dmeans, const float *dquats, const float *dscales,
                                    const float *dopac, const float *dcolors, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float *g = dgauss + i * GAUSS_DIM;
    for (int c = 0; c < 3; c++) g[GAUSS_OFF_POS + c] = dmeans[i * 3 + c];
    for (int c = 0; c < 3; c++) g[GAUSS_OFF_RGB + c] = dcolors[i * 3 + c];
    for (int c = 0; c < 3; c++) g[GAUSS_OFF_SCALE + c] = dscales[i * 3 + c];
    for (int c = 0; c < 4; c++) g[GAUSS_OFF_ROT + c] = dquats[i * 4 + c];
    g[GAUSS_OFF_OPAC] = dopac[i];
}

// floats per sample of each input, in inbuf's order (the model's NUM_INPUTS, then the targets); 0 where
// the model does not read it
typedef struct {
    size_t rgb, pos, conf, sap, w2c, K, expr, tgt_rgb, tgt_w2c, tgt_K, tgt_mouth;
} InSizes;
static InSizes in_sizes(const TrainerCuda *t) {
    size_t n[NUM_INPUTS];
    mc_input_sizes(&t->mc, 1, n);
    InSizes s = {n[0], n[1], n[2], n[3], n[4], n[5], n[6],
                 (size_t)t->Vt * t->H * t->W * 3, (size_t)t->Vt * 12, (size_t)t->Vt * 9,
                 t->tc.w_mouth > 0 ? (size_t)t->Vt * t->H * t->W : 0};
    return s;
}

#define N_IN 11
static const char *const IN_NAMES[N_IN] = {"rgb", "pos",     "conf",    "sap",  "w2c",     "K",
                                           "expr", "tgt_rgb", "tgt_w2c", "tgt_K", "tgt_mouth"};

// host → device for fields [first, first + count) of `per_sample` floats each (0 = not used) times B
static void upload_fields(float *const dst[], const float *const src[], const size_t per_sample[], int first, int count,
                          int B) {
    for (int k = first; k < first + count; k++) {
        if (!per_sample[k]) continue;
        if (!src[k]) FATAL("cuda: the batch has no '%s' but the model config needs it", IN_NAMES[k]);
        cudaCheck(cudaMemcpy(dst[k], src[k], sizeof(float) * per_sample[k] * B, cudaMemcpyHostToDevice));
    }
}

// b's fields back to back in a slot's layout (in_floats) into the host buffer dst
static void pack_batch(const TrainerCuda *t, float *dst, const TrainBatch *b) {
    InSizes s = in_sizes(t);
    const size_t *f = &s.rgb;
    const float *src[N_IN] = {b->in.rgb,  b->in.pos,  b->in.conf, b->in.sap, b->in.w2c,    b->in.K,
                              b->in.expr, b->tgt_rgb, b->tgt_w2c, b->tgt_K,  b->tgt_mouth};
    for (int k = 0; k < N_IN; k++) {
        if (!f[k]) continue;
        if (!src[k] && k == N_IN - 1) { // a batch without a mouth region: as the CPU, the term is 0
            memset(dst, 0, sizeof(float) * f[k] * t->B);
            dst += f[k] * t->B;
            continue;
        }
        if (!src[k]) FATAL("cuda: the batch has no '%s' but the model config needs it", IN_NAMES[k]);
        memcpy(dst, src[k], sizeof(float) * f[k] * t->B);
        dst += f[k] * t->B;
    }
}

// t->in and t->tgt_* → the fields of slot `slot` (NULL where the model does not read one)
static void point_at(TrainerCuda *t, int slot) {
    InSizes s = in_sizes(t);
    const size_t *f = &s.rgb;
    float *p = t->inbuf[slot], **dst[N_IN] = {(float **)&t->in.rgb, (float **)&t->in.pos, (float **)&t->in.conf,
                                              (float **)&t->in.sap, (float **)&t->in.w2c, (float **)&t->in.K,
                                              (float **)&t->in.expr, &t->tgt_rgb, &t->tgt_w2c, &t->tgt_K,
                                              &t->tgt_mouth};
    for (int k = 0; k < N_IN; k++) *dst[k] = f[k] ? p : NULL, p += f[k] * t->B;
}

static float *dalloc(size_t n) {
    float *p;
    cudaCheck(cudaMalloc((void **)&p, sizeof(float) * (n ? n : 1)));
    cudaCheck(cudaMemset(p, 0, sizeof(float) * (n ? n : 1)));
    return p;
}

// seconds since *t0, after the queued work is done; *t0 moves on (only when timing: syncs cost)
static double lap(TrainerCuda *t, double *t0) {
    if (!t->timed) return 0;
    cudaCheck(cudaDeviceSynchronize());
    double now = time_now_s(), d = now - *t0;
    *t0 = now;
    return d;
}

extern "C" void trainer_cuda_build(TrainerCuda *t, const ModelConfig *mc, const TrainConfig *tc,
                                   const LpipsWeights *lw) {
    memset(t, 0, sizeof *t);
    t->mc = *mc;
    t->tc = *tc;
    t->B = tc->micro_batch, t->V = mc->views_in, t->Vt = mc->views_target, t->H = mc->img_h, t->W = mc->img_w;
    t->G = (size_t)t->V * t->H * t->W;
    avat3r_cuda_build(&t->m, mc, t->B);
    RasterDims d = {t->B, (int)t->G, t->Vt, t->W, t->H, 3};
    raster_cuda_build(&t->r, d, 4); // as trainer_build: 4 tiles per Gaussian on average
    const size_t n_img = (size_t)t->B * t->Vt, BG = (size_t)t->B * t->G, np = t->m.n_params;
    ssim_cuda_build(&t->ssim, (int)n_img, t->H, t->W, 3);
    if (lw) {
        t->have_lpips = 1;
        lpips_cuda_build(&t->lp, lw, (int)n_img, t->H, t->W);
    }
    // the matmuls' precision (train_precision's values are MatmulPrecision's); bf16 needs operand scratch
    const int prec = train_precision(tc);
    if (prec < 0) FATAL("trainer_cuda: key 'precision': '%s' is not fp32, tf32 or bf16", tc->precision);
    if (prec == MATMUL_BF16) {
        size_t need = t->m.max_operand;
        if (t->have_lpips && t->lp.max_operand > need) need = t->lp.max_operand;
        matmul_cuda_reserve(need);
    }
    matmul_cuda_set_precision((MatmulPrecision)prec);
    t->adam_m = dalloc(np), t->adam_v = dalloc(np);
    // inputs and targets: one buffer, fields back to back
    InSizes s = in_sizes(t);
    const size_t *f = &s.rgb, nf = sizeof s / sizeof(size_t);
    size_t total = 0;
    for (size_t k = 0; k < nf; k++) total += f[k] * t->B;
    t->in_floats = total;
    for (int k = 0; k < 2; k++) {
        t->inbuf[k] = dalloc(total);
        cudaCheck(cudaHostAlloc((void **)&t->pinned[k], sizeof(float) * (total ? total : 1), cudaHostAllocDefault));
        cudaCheck(cudaEventCreateWithFlags(&t->uploaded[k], cudaEventDisableTiming));
        cudaCheck(cudaEventCreateWithFlags(&t->released[k], cudaEventDisableTiming));
    }
    cudaCheck(cudaStreamCreateWithFlags(&t->copy_stream, cudaStreamNonBlocking));
    t->staged = -1;
    point_at(t, 0);
    float train_bg[3];
    train_config_background(tc, train_bg);
    t->bg = dalloc(3);
    cudaCheck(cudaMemcpy(t->bg, train_bg, sizeof train_bg, cudaMemcpyHostToDevice));
    float **bufs[10] = {&t->means, &t->quats, &t->scales, &t->opac, &t->colors,
                        &t->dmeans, &t->dquats, &t->dscales, &t->dopac, &t->dcolors};
    const int widths[5] = {3, 4, 3, 1, 3};
    for (int k = 0; k < 10; k++) *bufs[k] = dalloc(BG * widths[k % 5]);
    t->dimage = dalloc(n_img * t->H * t->W * 3);
    t->dgauss = dalloc(BG * GAUSS_DIM);
    cudaCheck(cudaMalloc((void **)&t->scal, 3 * sizeof(double))); // L1, the gradient norm², the mouth L1
    cudaCheck(cudaMalloc((void **)&t->partial, TRAIN_CUDA_PARTIALS * sizeof(double)));
    cudaCheck(cudaMalloc((void **)&t->n_bad, sizeof(unsigned long long)));
}

extern "C" void trainer_cuda_free(TrainerCuda *t) {
    avat3r_cuda_free(&t->m);
    raster_cuda_free(&t->r);
    ssim_cuda_free(&t->ssim);
    if (t->have_lpips) lpips_cuda_free(&t->lp);
    cudaCheck(cudaStreamSynchronize(t->copy_stream)); // no upload may still read a pinned buffer
    for (int k = 0; k < 2; k++) {
        cudaCheck(cudaFreeHost(t->pinned[k]));
        cudaCheck(cudaEventDestroy(t->uploaded[k]));
        cudaCheck(cudaEventDestroy(t->released[k]));
    }
    cudaCheck(cudaStreamDestroy(t->copy_stream));
    void *bufs[] = {t->adam_m, t->adam_v, t->inbuf[0], t->inbuf[1], t->bg, t->means, t->quats, t->scales, t->opac, t->colors,
                    t->dmeans, t->dquats, t->dscales, t->dopac, t->dcolors, t->dimage, t->dgauss, t->scal,
                    t->partial, t->n_bad};
    for (size_t k = 0; k < sizeof bufs / sizeof bufs[0]; k++) cudaCheck(cudaFree(bufs[k]));
    memset(t, 0, sizeof *t);
}

extern "C" void trainer_cuda_set_state(TrainerCuda *t, const float *params, const float *adam_m,
                                       const float *adam_v) {
    const size_t bytes = sizeof(float) * t->m.n_params;
    avat3r_cuda_set_params(&t->m, params);
    if (adam_m) cudaCheck(cudaMemcpy(t->adam_m, adam_m, bytes, cudaMemcpyHostToDevice));
    else cudaCheck(cudaMemset(t->adam_m, 0, bytes));
    if (adam_v) cudaCheck(cudaMemcpy(t->adam_v, adam_v, bytes, cudaMemcpyHostToDevice));
    else cudaCheck(cudaMemset(t->adam_v, 0, bytes));
}

extern "C" void trainer_cuda_get_state(const TrainerCuda *t, float *params, float *adam_m, float *adam_v) {
    const size_t bytes = sizeof(float) * t->m.n_params;
    avat3r_cuda_get_params(&t->m, params);
    if (adam_m) cudaCheck(cudaMemcpy(adam_m, t->adam_m, bytes, cudaMemcpyDeviceToHost));
    if (adam_v) cudaCheck(cudaMemcpy(adam_v, t->adam_v, bytes, cudaMemcpyDeviceToHost));
}

extern "C" void trainer_cuda_zero_grad(TrainerCuda *t) {
    cudaCheck(cudaMemset(t->m.grads, 0, sizeof(float) * t->m.n_params));
}

extern "C" void trainer_cuda_stage(TrainerCuda *t, const TrainBatch *b) {
    if (t->staged >= 0) FATAL("trainer_cuda_stage: the staged micro-batch was not launched yet");
    const int slot = t->next_slot;
    double t0 = time_now_s();
    cudaCheck(cudaEventSynchronize(t->uploaded[slot])); // the slot's last upload has left its pinned buffer
    pack_batch(t, t->pinned[slot], b);
    // the kernels that read the slot's previous batch come first, then the copy
    cudaCheck(cudaStreamWaitEvent(t->copy_stream, t->released[slot], 0));
    cudaCheck(cudaMemcpyAsync(t->inbuf[slot], t->pinned[slot], sizeof(float) * t->in_floats, cudaMemcpyHostToDevice,
                              t->copy_stream));
    cudaCheck(cudaEventRecord(t->uploaded[slot], t->copy_stream));
    t->staged = slot, t->next_slot = 1 - slot;
    t->t_upload += lap(t, &t0);
}

static RasterIn raster_in(const TrainerCuda *t) {
    RasterIn in = {t->means, t->quats, t->scales, t->opac, t->colors, t->tgt_w2c, t->tgt_K, t->bg};
    return in;
}

// network forward, split, rasterize (the batch is on the device); fault: the test hook (training only)
static void forward_render(TrainerCuda *t, double *t0, int fault) {
    const size_t BG = (size_t)t->B * t->G;
    avat3r_cuda_forward(&t->m, &t->in);
    if (fault) KLAUNCH(inf_colour_kernel, blocks_for(BG, 256), 256, 0, t->m.a.gauss, BG);
    cudaCheck(cudaMemset(t->n_bad, 0, sizeof(unsigned long long)));
    KLAUNCH(split_kernel, blocks_for(BG, 256), 256, 0, t->means, t->quats, t->scales, t->opac, t->colors, t->n_bad,
            t->m.a.gauss, BG);
    t->t_net_fwd += lap(t, t0);
    RasterIn rin = raster_in(t);
    raster_cuda_forward(&t->r, &rin);
    t->t_render_fwd += lap(t, t0);
}

extern "C" void trainer_cuda_render(TrainerCuda *t, const TrainBatch *b) {
    if (t->launched) FATAL("trainer_cuda_render: a micro-step was launched and not finished");
    // the slot without a staged batch: its last upload was waited for by the kernels that read it, and
    // this synchronous copy (from its pinned buffer, which the host may refill once that upload is done)
    // runs after them on the default stream
    const int slot = t->staged >= 0 ? 1 - t->staged : t->next_slot;
    double t0 = time_now_s();
    cudaCheck(cudaEventSynchronize(t->uploaded[slot])); // as trainer_cuda_stage, then a synchronous copy
    pack_batch(t, t->pinned[slot], b);
    cudaCheck(cudaMemcpy(t->inbuf[slot], t->pinned[slot], sizeof(float) * t->in_floats, cudaMemcpyHostToDevice));
    point_at(t, slot);
    forward_render(t, &t0, 0);
    cudaCheck(cudaEventRecord(t->released[slot], 0));
}

extern "C" void trainer_cuda_micro_launch(TrainerCuda *t, double grad_scale, int with_lpips) {
    const TrainConfig *tc = &t->tc;
    const size_t n_img = (size_t)t->B * t->Vt, npx = n_img * t->H * t->W * 3, BG = (size_t)t->B * t->G;
    if (t->staged < 0) FATAL("trainer_cuda_micro_launch: no staged micro-batch (trainer_cuda_stage)");
    if (t->launched) FATAL("trainer_cuda_micro_launch: the last micro-step was not finished");
    const int slot = t->staged;
    t->staged = -1;
    double t0 = time_now_s();
    cudaCheck(cudaStreamWaitEvent(0, t->uploaded[slot], 0)); // the default stream waits for the upload
    point_at(t, slot);
    forward_render(t, &t0, t->fault_inf_act);
    const float *img = t->r.image; // [B, Vt, H, W, 3]
    l1_forward_cuda(&t->scal[0], img, t->tgt_rgb, npx, t->partial);
    const int mouth = tc->w_mouth > 0;
    if (mouth) l1_weighted_forward_cuda(&t->scal[2], img, t->tgt_rgb, t->tgt_mouth, npx / 3, 3, t->partial);
    ssim_forward_cuda(&t->ssim, img, t->tgt_rgb, NULL);
    const int lp = with_lpips && t->have_lpips && tc->w_lpips > 0;
    if (lp) lpips_forward_cuda(&t->lp, img, t->tgt_rgb, NULL);
    // dLoss/dimage, already multiplied by grad_scale (the loss value is read back below, off this path)
    cudaCheck(cudaMemset(t->dimage, 0, sizeof(float) * npx));
    l1_backward_cuda(t->dimage, img, t->tgt_rgb, npx, grad_scale * tc->w_l1);
    if (mouth) l1_weighted_backward_cuda(t->dimage, img, t->tgt_rgb, t->tgt_mouth, npx / 3, 3, grad_scale * tc->w_mouth);
    ssim_backward_cuda(&t->ssim, t->dimage, img, t->tgt_rgb, -grad_scale * tc->w_ssim);
    if (lp) lpips_backward_cuda(&t->lp, t->dimage, grad_scale * tc->w_lpips);
    t->t_loss += lap(t, &t0);
    // renderer backward (it accumulates: clear first) → dgauss
    float *dbufs[5] = {t->dmeans, t->dquats, t->dscales, t->dopac, t->dcolors};
    const int widths[5] = {3, 4, 3, 1, 3};
    for (int k = 0; k < 5; k++) cudaCheck(cudaMemset(dbufs[k], 0, sizeof(float) * BG * widths[k]));
    RasterIn rin = raster_in(t);
    RasterGrad rg = {t->dmeans, t->dquats, t->dscales, t->dopac, t->dcolors, NULL};
    raster_cuda_backward(&t->r, &rin, t->dimage, NULL, NULL, &rg);
    KLAUNCH(merge_kernel, blocks_for(BG, 256), 256, 0, t->dgauss, t->dmeans, t->dquats, t->dscales, t->dopac,
            t->dcolors, BG);
    t->t_render_bwd += lap(t, &t0);
    // activation gradients are per micro-batch; parameter gradients sum over the accumulated ones
    cudaCheck(cudaMemset(t->m.dacts, 0, sizeof(float) * t->m.n_acts));
    avat3r_cuda_backward(&t->m, &t->in, t->dgauss);
    cudaCheck(cudaEventRecord(t->released[slot], 0)); // nothing reads the slot after this
    t->t_net_bwd += lap(t, &t0);
    t->launched = 1, t->launched_lpips = lp;
}

extern "C" LossTerms trainer_cuda_micro_finish(TrainerCuda *t) {
    const TrainConfig *tc = &t->tc;
    if (!t->launched) FATAL("trainer_cuda_micro_finish: no micro-step was launched");
    const int lp = t->launched_lpips;
    t->launched = 0;
    // the loss terms (these copies wait for the queued work on the default stream, not for copy_stream)
    double l1, ssim;
    unsigned long long bad;
    cudaCheck(cudaMemcpy(&l1, &t->scal[0], sizeof l1, cudaMemcpyDeviceToHost));
    cudaCheck(cudaMemcpy(&ssim, t->ssim.total, sizeof ssim, cudaMemcpyDeviceToHost));
    cudaCheck(cudaMemcpy(&bad, t->n_bad, sizeof bad, cudaMemcpyDeviceToHost));
    LossTerms L = {tc->w_l1 * l1 + tc->w_ssim * (1 - ssim), l1, ssim, NAN, NAN};
    if (tc->w_mouth > 0) {
        cudaCheck(cudaMemcpy(&L.l1_mouth, &t->scal[2], sizeof L.l1_mouth, cudaMemcpyDeviceToHost));
        L.loss += tc->w_mouth * L.l1_mouth;
    }
    if (lp) {
        cudaCheck(cudaMemcpy(&L.lpips, t->lp.total, sizeof L.lpips, cudaMemcpyDeviceToHost));
        L.loss += tc->w_lpips * L.lpips;
    }
    t->n_nonfinite_gauss = (long)bad;
    if (bad) L.loss = NAN; // as on the CPU: the rasterizer leaves such Gaussians out, the loss would look fine
    return L;
}

extern "C" LossTerms trainer_cuda_micro_step(TrainerCuda *t, const TrainBatch *b, double grad_scale,
                                             int with_lpips) {
    trainer_cuda_stage(t, b);
    trainer_cuda_micro_launch(t, grad_scale, with_lpips);
    return trainer_cuda_micro_finish(t);
}

extern "C" double trainer_cuda_update(TrainerCuda *t, long step, double *lr_out) {
    const TrainConfig *tc = &t->tc;
    double t0 = time_now_s();
    grad_norm_sq_cuda(&t->scal[1], t->m.grads, t->m.n_params, t->partial);
    double sq;
    cudaCheck(cudaMemcpy(&sq, &t->scal[1], sizeof sq, cudaMemcpyDeviceToHost));
    double norm = sqrt(sq), lr = train_lr(tc, step);
    if (lr_out) *lr_out = lr;
    if (!isfinite(norm)) {
        t->t_opt += lap(t, &t0);
        return norm;
    }
    double scale = tc->grad_clip > 0 && norm > tc->grad_clip ? tc->grad_clip / norm : 1.0;
    AdamWHyper h = {lr, tc->beta1, tc->beta2, tc->adam_eps, tc->weight_decay};
    adamw_update_cuda(t->m.params, t->m.grads, t->adam_m, t->adam_v, t->m.param_sizes, &h, scale, (uint64_t)step + 1);
    t->t_opt += lap(t, &t0);
    return norm;
}

// ----------------------------------------------------------------------------------------------
// the network alone (step_cuda.h: NetCuda)

extern "C" void net_cuda_build(NetCuda *n, const ModelConfig *mc, int B, const float *host_params) {
    memset(n, 0, sizeof *n);
    avat3r_cuda_build(&n->m, mc, B);
    avat3r_cuda_set_params(&n->m, host_params);
    size_t s[NUM_INPUTS], total = 0;
    mc_input_sizes(mc, B, s);
    for (int k = 0; k < NUM_INPUTS; k++) total += s[k];
    n->inbuf = dalloc(total);
    float *p = n->inbuf, **dst[NUM_INPUTS] = {(float **)&n->in.rgb, (float **)&n->in.pos, (float **)&n->in.conf,
                                             (float **)&n->in.sap, (float **)&n->in.w2c, (float **)&n->in.K,
                                             (float **)&n->in.expr};
    for (int k = 0; k < NUM_INPUTS; k++) *dst[k] = s[k] ? p : NULL, p += s[k];
}

extern "C" void net_cuda_free(NetCuda *n) {
    avat3r_cuda_free(&n->m);
    cudaCheck(cudaFree(n->inbuf));
    memset(n, 0, sizeof *n);
}

extern "C" void net_cuda_forward(NetCuda *n, const Avat3rBatch *in, float *gauss_host, int expr_only) {
    const ModelConfig *c = &n->m.cfg;
    size_t s[NUM_INPUTS];
    mc_input_sizes(c, 1, s);
    const float *src[NUM_INPUTS] = {in->rgb, in->pos, in->conf, in->sap, in->w2c, in->K, in->expr};
    float *const dst[NUM_INPUTS] = {(float *)n->in.rgb, (float *)n->in.pos, (float *)n->in.conf, (float *)n->in.sap,
                                    (float *)n->in.w2c, (float *)n->in.K, (float *)n->in.expr};
    if (expr_only) upload_fields(dst, src, s, NUM_INPUTS - 1, 1, n->m.B); // the code (the last input); the views stay
    else upload_fields(dst, src, s, 0, NUM_INPUTS, n->m.B);
    avat3r_cuda_forward(&n->m, &n->in);
    size_t ng = (size_t)n->m.B * c->views_in * c->img_h * c->img_w * GAUSS_DIM;
    cudaCheck(cudaMemcpy(gauss_host, n->m.a.gauss, sizeof(float) * ng, cudaMemcpyDeviceToHost));
}
