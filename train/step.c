// step.c — the CPU training step (see step.h).
#include "step.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "../common/timer.h"
#include "../common/util.h"
#include "layers.h"
#include "optim.h"

void trainer_build(Trainer *t, const ModelConfig *mc, const TrainConfig *tc, const LpipsWeights *lw) {
    memset(t, 0, sizeof *t);
    t->mc = *mc;
    t->tc = *tc;
    t->B = tc->micro_batch, t->V = mc->views_in, t->Vt = mc->views_target, t->H = mc->img_h, t->W = mc->img_w;
    t->G = (size_t)t->V * t->H * t->W;
    train_config_background(tc, t->bg);
    avat3r_build(&t->m, mc, t->B);
    // each Gaussian covers about one input pixel; 4 tiles each on average leaves room for close-ups
    RasterDims d = {t->B, (int)t->G, t->Vt, t->W, t->H, 3};
    raster_build(&t->r, d, 4);
    const size_t n_img = (size_t)t->B * t->Vt;
    ssim_build(&t->ssim, (int)n_img, t->H, t->W, 3);
    if (lw) {
        t->have_lpips = 1;
        t->lw = *lw; // the caller keeps the weights alive
        lpips_build(&t->lp, lw, (int)n_img, t->H, t->W, omp_get_max_threads());
    }
    size_t np = t->m.n_params, BG = (size_t)t->B * t->G;
    t->adam_m = (float *)callocCheck(np, sizeof(float));
    t->adam_v = (float *)callocCheck(np, sizeof(float));
    float **bufs[10] = {&t->means, &t->quats, &t->scales, &t->opac, &t->colors,
                        &t->dmeans, &t->dquats, &t->dscales, &t->dopac, &t->dcolors};
    const int widths[5] = {3, 4, 3, 1, 3};
    for (int k = 0; k < 10; k++) *bufs[k] = (float *)callocCheck(BG * widths[k % 5], sizeof(float));
    t->dimage = (float *)callocCheck(n_img * t->H * t->W * 3, sizeof(float));
    t->dgauss = (float *)callocCheck(BG * GAUSS_DIM, sizeof(float));
}

void trainer_free(Trainer *t) {
    avat3r_free(&t->m);
    raster_free(&t->r);
    ssim_free(&t->ssim);
    if (t->have_lpips) lpips_free(&t->lp);
    float *bufs[] = {t->adam_m, t->adam_v, t->means, t->quats, t->scales, t->opac, t->colors, t->dmeans,
                     t->dquats, t->dscales, t->dopac, t->dcolors, t->dimage, t->dgauss};
    for (size_t k = 0; k < sizeof bufs / sizeof bufs[0]; k++) free(bufs[k]);
    memset(t, 0, sizeof *t);
}

// Parameter gradients only: trainer_micro_step clears the activation gradients before each backward.
void trainer_zero_grad(Trainer *t) { memset(t->m.grads, 0, sizeof(float) * t->m.n_params); }

// gauss [B·G, 14] → the rasterizer's separate arrays
static void split_gaussians(Trainer *t, const float *gauss) {
    const long BG = (long)t->B * (long)t->G;
#pragma omp parallel for schedule(static)
    for (long i = 0; i < BG; i++) {
        const float *g = gauss + i * GAUSS_DIM;
        for (int c = 0; c < 3; c++) t->means[i * 3 + c] = g[GAUSS_OFF_POS + c];
        for (int c = 0; c < 3; c++) t->colors[i * 3 + c] = g[GAUSS_OFF_RGB + c];
        for (int c = 0; c < 3; c++) t->scales[i * 3 + c] = g[GAUSS_OFF_SCALE + c];
        for (int c = 0; c < 4; c++) t->quats[i * 4 + c] = g[GAUSS_OFF_ROT + c];
        t->opac[i] = g[GAUSS_OFF_OPAC];
    }
}

static RasterIn raster_in(const Trainer *t, const TrainBatch *b) {
    RasterIn in = {t->means, t->quats, t->scales, t->opac, t->colors, b->tgt_w2c, b->tgt_K, t->bg};
    return in;
}

void trainer_render(Trainer *t, const TrainBatch *b) {
    avat3r_forward(&t->m, &b->in);
    split_gaussians(t, t->m.a.gauss);
    RasterIn rin = raster_in(t, b);
    raster_forward(&t->r, &rin);
}

void trainer_render_baseline(Trainer *t, const TrainBatch *b) {
    const ModelConfig *c = &t->mc;
    // the Plücker rays and camera centres (used without DUSt3R); no network pass
    plucker_forward(t->m.a.plucker, t->m.a.cam_o, b->in.w2c, b->in.K, t->B * t->V, t->H, t->W);
    const long BG = (long)t->B * (long)t->G;
    float *raw = t->dgauss; // scratch: zero offsets, identity rotation, opacity logit(0.99)
    memset(raw, 0, sizeof(float) * BG * GAUSS_DIM);
    for (long i = 0; i < BG; i++) raw[i * GAUSS_DIM + GAUSS_OFF_OPAC] = logf(0.99f / 0.01f);
    GaussAct ga = gauss_act(c);
    int d = c->use_dust3r;
    gaussians_forward(t->m.a.gauss, raw, b->in.rgb, d ? b->in.pos : NULL, d ? b->in.conf : NULL, t->m.a.plucker,
                      t->m.a.cam_o, &ga, t->B * t->V, t->H * t->W);
    split_gaussians(t, t->m.a.gauss);
    RasterIn rin = raster_in(t, b);
    raster_forward(&t->r, &rin);
}

LossTerms trainer_micro_step(Trainer *t, const TrainBatch *b, double grad_scale, int with_lpips) {
    const TrainConfig *tc = &t->tc;
    const size_t n_img = (size_t)t->B * t->Vt, npx = n_img * t->H * t->W * 3;
    double t0 = time_now_s();
    avat3r_forward(&t->m, &b->in);
    if (t->fault_inf_act)
        for (size_t i = 0; i < (size_t)t->B * t->G; i++) t->m.a.gauss[i * GAUSS_DIM + GAUSS_OFF_RGB] = INFINITY;
    split_gaussians(t, t->m.a.gauss);
    double t1 = time_now_s();
    RasterIn rin = raster_in(t, b);
    raster_forward(&t->r, &rin);
    t->n_nonfinite_gauss = t->r.n_nonfinite;
    double t2 = time_now_s();
    const float *img = t->r.image; // [B, Vt, H, W, 3]
    LossTerms L = {0, 0, 0, NAN, NAN};
    L.l1 = l1_forward(img, b->tgt_rgb, npx);
    L.ssim = ssim_forward(&t->ssim, img, b->tgt_rgb, NULL);
    L.loss = tc->w_l1 * L.l1 + tc->w_ssim * (1 - L.ssim);
    // a batch without part labels has no mouth region: the term is 0 (and so is its gradient)
    const int mouth = tc->w_mouth > 0;
    if (mouth) {
        L.l1_mouth = b->tgt_mouth ? l1_weighted_forward(img, b->tgt_rgb, b->tgt_mouth, npx / 3, 3) : 0;
        L.loss += tc->w_mouth * L.l1_mouth;
    }
    int lp = with_lpips && t->have_lpips && tc->w_lpips > 0;
    if (lp) {
        L.lpips = lpips_forward(&t->lp, img, b->tgt_rgb, NULL);
        L.loss += tc->w_lpips * L.lpips;
    }
    // the rasterizer leaves non-finite Gaussians out of the image, so the loss alone would look fine while
    // the network's output is broken: such a step is a non-finite one
    if (t->n_nonfinite_gauss) L.loss = NAN;
    // dLoss/dimage, already multiplied by grad_scale
    memset(t->dimage, 0, sizeof(float) * npx);
    l1_backward(t->dimage, img, b->tgt_rgb, npx, grad_scale * tc->w_l1);
    if (mouth && b->tgt_mouth)
        l1_weighted_backward(t->dimage, img, b->tgt_rgb, b->tgt_mouth, npx / 3, 3, grad_scale * tc->w_mouth);
    ssim_backward(&t->ssim, t->dimage, img, b->tgt_rgb, -grad_scale * tc->w_ssim);
    if (lp) lpips_backward(&t->lp, t->dimage, grad_scale * tc->w_lpips);
    double t3 = time_now_s();
    // renderer backward → Gaussian gradients (the rasterizer accumulates: clear first)
    const size_t BG = (size_t)t->B * t->G;
    float *dbufs[5] = {t->dmeans, t->dquats, t->dscales, t->dopac, t->dcolors};
    const int widths[5] = {3, 4, 3, 1, 3};
    for (int k = 0; k < 5; k++) memset(dbufs[k], 0, sizeof(float) * BG * widths[k]);
    RasterGrad rg = {t->dmeans, t->dquats, t->dscales, t->dopac, t->dcolors, NULL};
    raster_backward(&t->r, &rin, t->dimage, NULL, NULL, &rg);
    double t4 = time_now_s();
#pragma omp parallel for schedule(static)
    for (long i = 0; i < (long)BG; i++) {
        float *g = t->dgauss + i * GAUSS_DIM;
        for (int c = 0; c < 3; c++) g[GAUSS_OFF_POS + c] = t->dmeans[i * 3 + c];
        for (int c = 0; c < 3; c++) g[GAUSS_OFF_RGB + c] = t->dcolors[i * 3 + c];
        for (int c = 0; c < 3; c++) g[GAUSS_OFF_SCALE + c] = t->dscales[i * 3 + c];
        for (int c = 0; c < 4; c++) g[GAUSS_OFF_ROT + c] = t->dquats[i * 4 + c];
        g[GAUSS_OFF_OPAC] = t->dopac[i];
    }
    // activation gradients accumulate inside the backward: clear them per micro-batch, keep the
    // parameter gradients (they sum over the accumulated micro-batches)
    avat3r_zero_dacts(&t->m);
    avat3r_backward(&t->m, &b->in, t->dgauss);
    double t5 = time_now_s();
    t->t_net_fwd += t1 - t0, t->t_render_fwd += t2 - t1, t->t_loss += t3 - t2;
    t->t_render_bwd += t4 - t3, t->t_net_bwd += t5 - t4;
    return L;
}

double trainer_update(Trainer *t, long step, double *lr_out) {
    const TrainConfig *tc = &t->tc;
    double t0 = time_now_s();
    double norm = grad_global_norm(t->m.grads, t->m.n_params);
    double lr = train_lr(tc, step);
    if (lr_out) *lr_out = lr;
    if (!isfinite(norm)) {
        t->t_opt += time_now_s() - t0;
        return norm;
    }
    double scale = tc->grad_clip > 0 && norm > tc->grad_clip ? tc->grad_clip / norm : 1.0;
    AdamWHyper h = {lr, tc->beta1, tc->beta2, tc->adam_eps, tc->weight_decay};
    adamw_step(t->m.params, t->m.grads, t->adam_m, t->adam_v, t->m.param_sizes, &h, scale, (uint64_t)step + 1);
    t->t_opt += time_now_s() - t0;
    return norm;
}
