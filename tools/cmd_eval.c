// cmd_eval.c — `avat3r eval`: a checkpoint's PSNR, SSIM, LPIPS and AKD on held-out subjects (issue #6). Per
// subject, samples drawn as in training from that capture alone (4 inputs by k-farthest viewpoints, targets
// at other cameras of the target frame, the target frame's expression code), rendered at the training size.
// AKD: dlib's 68 landmarks (tools/landmarks.c) on the rendering and on the ground truth, both in the face
// box of the ground-truth head projection (docs/akd.md).
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/util.h"
#include "checkpoint.h"
#include "cli.h"
#include "data_config.h"
#include "landmarks.h"
#include "loader.h"
#include "loop.h"
#include "png_write.h"
#include "step.h"
#include "step_device.h"

static const char *USAGE =
    "--checkpoint CKPT --data SHARD... --subjects ID,ID,...|held-out|all --out DIR\n"
    "       [--samples N] [--lpips ALEX_WEIGHTS] [--akd DLIB_MODEL|--no-akd] [--inconsistent|--consistent] [--seed S]\n"
    "       [--device cpu|cuda]\n"
    "  Per subject N samples (default 8) drawn as in training from that capture alone; every target view is\n"
    "  scored. held-out: the held_out key stored in a training checkpoint. --inconsistent: inputs from random\n"
    "  other frames (the paper's evaluation); --consistent: inputs at the target frame; default: the model's\n"
    "  random_timesteps. --akd: a dlib shape predictor for AKD (docs/akd.md), default when it exists\n"
    "  " LANDMARKS_DLIB_68 " (without it AKD is skipped and counted).\n"
    "  Writes DIR/metrics.json (per image and means) and DIR/metrics.md.";

// A metric, or null where it was not computed (no weights, no model, no scored image).
static void json_num_or_null(cJSON *o, const char *name, int have, double v) {
    if (have) cJSON_AddNumberToObject(o, name, v);
    else cJSON_AddNullToObject(o, name);
}

int cmd_eval(int argc, char **argv) {
    const char *ckpt = NULL, *out = NULL, *subjects = NULL, *lpips_path = NULL, *akd_path = NULL, *data[1024];
    const char *device = "cpu";
    int ndata = 0, samples = 8, timesteps = -1, no_akd = 0;
    unsigned long long seed = 7;
    for (int i = 1; i < argc; i++) {
        int has = i + 1 < argc;
        const char *a = argv[i];
        if (!strcmp(a, "--help")) {
            printf("usage: avat3r eval %s\n", USAGE);
            return 0;
        } else if (!strcmp(a, "--checkpoint") && has) ckpt = argv[++i];
        else if (!strcmp(a, "--out") && has) out = argv[++i];
        else if (!strcmp(a, "--subjects") && has) subjects = argv[++i];
        else if (!strcmp(a, "--lpips") && has) lpips_path = argv[++i];
        else if (!strcmp(a, "--akd") && has) akd_path = argv[++i];
        else if (!strcmp(a, "--no-akd")) no_akd = 1;
        else if (!strcmp(a, "--samples") && has) samples = atoi(argv[++i]);
        else if (!strcmp(a, "--seed") && has) seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--inconsistent")) timesteps = 1;
        else if (!strcmp(a, "--consistent")) timesteps = 0;
        else if (!strcmp(a, "--device") && has) {
            device = argv[++i];
            char derr[256];
            if (step_device_check(device, derr, sizeof derr)) {
                fprintf(stderr, "avat3r eval %s\n", derr);
                return 2;
            }
        }
        else if (!strcmp(a, "--data") && has) {
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) && ndata < 1024) data[ndata++] = argv[++i];
        } else {
            fprintf(stderr, "avat3r eval: unknown or incomplete option '%s'\nusage: avat3r eval %s\n", a, USAGE);
            return 2;
        }
    }
    if (!ckpt || !out || !ndata || !subjects || samples < 1) {
        fprintf(stderr, "avat3r eval: --checkpoint, --data, --subjects and --out are required\nusage: avat3r eval %s\n",
                USAGE);
        return 2;
    }
    char err[2048];
    char *shards[4096];
    int n_shards = expand_shards(data, ndata, shards, 4096, err, sizeof err);
    if (n_shards < 0) {
        fprintf(stderr, "avat3r eval: %s\n", err);
        return 1;
    }
    ModelConfig c;
    CkptHeader h;
    float *params = NULL;
    if (checkpoint_load(ckpt, &c, &params, &h, err, sizeof err)) {
        fprintf(stderr, "avat3r eval: %s\n", err);
        return 1;
    }
    char held[CFG_STR_MAX] = "";
    if (!strcmp(subjects, "held-out")) { // the data key stored in a training checkpoint's state
        RunConfig rc;
        if (h.kind != CKPT_KIND_TRAIN || run_checkpoint_read(ckpt, &rc, NULL, NULL, NULL, err, sizeof err)) {
            fprintf(stderr, "avat3r eval: --subjects held-out needs a training checkpoint (ckpt_<step>.ckpt); with %s "
                            "pass the list: --subjects ID,ID\n", ckpt);
            return 1;
        }
        snprintf(held, sizeof held, "%s", rc.dc.held_out);
        if (!held[0]) {
            fprintf(stderr, "avat3r eval: %s: the run had no held_out captures; pass --subjects ID,ID\n", ckpt);
            return 1;
        }
        subjects = held;
    }
    LpipsWeights lw;
    int have_lpips = 0;
    if (lpips_path) {
        if (lpips_weights_load(&lw, lpips_path, err, sizeof err)) {
            fprintf(stderr, "avat3r eval: --lpips: %s\n", err);
            return 1;
        }
        if (lw.net != LPIPS_ALEX) fprintf(stderr, "avat3r eval: note: %s is not AlexNet LPIPS (the paper's metric)\n", lpips_path);
        if (lpips_check_size(lw.net, c.img_h, c.img_w, err, sizeof err)) {
            fprintf(stderr, "avat3r eval: --lpips: %s\n", err);
            return 1;
        }
        have_lpips = 1;
    }
    // AKD: an explicit --akd must load; the default model may be missing (AKD skipped, counted)
    LandmarkModel lm;
    int have_akd = 0;
    const char *akd_model = NULL;
    if (!no_akd) {
        akd_model = akd_path ? akd_path : LANDMARKS_DLIB_68;
        if (akd_path || access(akd_model, R_OK) == 0) {
            if (landmarks_load(&lm, akd_model, err, sizeof err)) {
                fprintf(stderr, "avat3r eval: --akd: %s\n", err);
                return 1;
            }
            have_akd = 1;
        } else {
            fprintf(stderr, "avat3r eval: note: no %s (Debian: apt-get install libdlib-data); AKD skipped\n",
                    akd_model);
        }
    }
    TrainConfig tc;
    {
        CfgTable t = train_config_table(&tc);
        if (cfg_defaults(&t, 1, err, sizeof err)) FATAL("%s", err);
    }
    tc.micro_batch = 1;
    Trainer t;
    trainer_build(&t, &c, &tc, NULL);
    memcpy(t.m.params, params, sizeof(float) * t.m.n_params);
    free(params);
    StepDevice sd; // the network and the renderer on the CPU or the GPU; the metrics on the CPU
    if (step_device_open(&sd, &t, device, 0, err, sizeof err)) FATAL("%s", err); // checked with the options
    const int Vt = c.views_target;
    const size_t HW3 = (size_t)c.img_h * c.img_w * 3;
    Lpips lp;
    if (have_lpips) lpips_build(&lp, &lw, Vt, c.img_h, c.img_w, 1);
    float *ssim_per = (float *)mallocCheck(sizeof(float) * Vt), *lp_per = (float *)mallocCheck(sizeof(float) * Vt);
    uint8_t *pred8 = (uint8_t *)mallocCheck(HW3), *gt8 = (uint8_t *)mallocCheck(HW3);
    if (mkdir(out, 0755) && access(out, W_OK)) {
        fprintf(stderr, "avat3r eval: cannot create %s\n", out);
        return 1;
    }
    cJSON *root = cJSON_CreateObject(), *imgs = cJSON_AddArrayToObject(root, "images");
    cJSON *subj_json = cJSON_AddArrayToObject(root, "subjects");
    cJSON_AddStringToObject(root, "checkpoint", ckpt);
    int rt = timesteps < 0 ? c.random_timesteps : timesteps;
    cJSON_AddBoolToObject(root, "inconsistent_inputs", rt);
    double sum_psnr = 0, sum_ssim = 0, sum_lp = 0, sum_akd = 0;
    int n_img = 0, n_subj = 0, n_skipped = 0, n_akd = 0, n_akd_box = 0, n_akd_model = 0, n_akd_off = 0;
    int n_damaged = 0; // samples the loader skipped and redrew for damaged data (CRC, decode, non-finite map)
    for (int d = 0; d < n_shards; d++) {
        Shard s;
        if (shard_open(&s, shards[d], err, sizeof err)) {
            fprintf(stderr, "avat3r eval: %s\n", err);
            return 1;
        }
        int want = data_capture_in_list(s.m.capture, subjects);
        char cap[256];
        snprintf(cap, sizeof cap, "%s", s.m.capture);
        shard_close(&s);
        if (!want) continue;
        LoaderOptions lo = {c.views_in, Vt, rt, c.use_dust3r, c.use_sapiens, 1, 1, 0, seed, NULL, 1, 2, 0, 0};
        Loader L;
        const char *one[1] = {shards[d]};
        if (loader_open(&L, one, 1, &lo, 0, err, sizeof err)) {
            fprintf(stderr, "avat3r eval: %s: skipped (%s)\n", cap, err);
            n_skipped++;
            continue;
        }
        if (L.W != c.img_w || L.H != c.img_h) {
            fprintf(stderr, "avat3r eval: %s holds %dx%d images, the model wants %dx%d\n", shards[d], L.W, L.H, c.img_w,
                    c.img_h);
            return 1;
        }
        double sp = 0, ss = 0, sl = 0, sa = 0;
        int na = 0, na_skip = 0, failed = 0;
        const int imgs_before = cJSON_GetArraySize(imgs);
        for (int k = 0; k < samples && !failed; k++) {
            const Batch *b = loader_next(&L, err, sizeof err);
            if (!b) { // data damaged beyond redrawing: the subject is skipped, like one that does not open
                fprintf(stderr, "avat3r eval: %s: skipped (%s)\n", cap, err);
                failed = 1;
                break;
            }
            for (int j = 0; j < b->skipped && j < LOADER_SKIP_NOTES; j++)
                fprintf(stderr, "avat3r eval: damaged data skipped and redrawn: %s\n", b->skip_note[j]);
            n_damaged += b->skipped;
            TrainBatch tb = {{b->rgb, c.use_dust3r ? b->pos : NULL, c.use_dust3r ? b->conf : NULL,
                              c.use_sapiens ? b->sap : NULL, b->w2c, b->K, b->expr},
                             b->tgt_rgb, b->tgt_w2c, b->tgt_K, b->tgt_mouth};
            step_device_render(&sd, &tb);
            ssim_forward(&t.ssim, t.r.image, b->tgt_rgb, ssim_per);
            if (have_lpips) lpips_forward(&lp, t.r.image, b->tgt_rgb, lp_per);
            for (int v = 0; v < Vt; v++) {
                double psnr = psnr_capped(mse(t.r.image + v * HW3, b->tgt_rgb + v * HW3, HW3));
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "subject", cap);
                cJSON_AddNumberToObject(o, "sample", k);
                cJSON_AddNumberToObject(o, "target_frame", b->sample[0].target_frame);
                cJSON_AddNumberToObject(o, "target_camera", b->sample[0].target_cam[v]);
                cJSON_AddNumberToObject(o, "psnr", psnr);
                cJSON_AddNumberToObject(o, "ssim", ssim_per[v]);
                json_num_or_null(o, "lpips", have_lpips, have_lpips ? lp_per[v] : 0);
                // AKD in the face box of the ground-truth head projection (the target camera, head frame)
                LandmarkBox box;
                int box_ok = landmarks_face_box(b->tgt_w2c + 12 * v, b->tgt_K + 9 * v, c.img_w, c.img_h, &box) == 0;
                if (box_ok) {
                    cJSON *bj = cJSON_AddArrayToObject(o, "face_box");
                    long bb[4] = {box.left, box.top, box.right, box.bottom};
                    for (int q = 0; q < 4; q++) cJSON_AddItemToArray(bj, cJSON_CreateNumber((double)bb[q]));
                }
                if (have_akd && box_ok) {
                    rgb8_from_unit(t.r.image + v * HW3, HW3, pred8);
                    rgb8_from_unit(b->tgt_rgb + v * HW3, HW3, gt8);
                    double akd = landmarks_akd(&lm, pred8, gt8, c.img_w, c.img_h, box);
                    cJSON_AddNumberToObject(o, "akd", akd);
                    sa += akd, na++;
                } else {
                    cJSON_AddNullToObject(o, "akd");
                    cJSON_AddStringToObject(o, "akd_skipped", no_akd      ? "turned off (--no-akd)"
                                                              : !have_akd ? "model missing"
                                                                          : "face centre not in the image");
                    na_skip++;
                    if (no_akd) n_akd_off++;
                    else if (!have_akd) n_akd_model++;
                    else n_akd_box++;
                }
                cJSON_AddItemToArray(imgs, o);
                sp += psnr, ss += ssim_per[v], sl += have_lpips ? lp_per[v] : 0;
            }
        }
        loader_close(&L);
        if (failed) { // none of its images count
            while (cJSON_GetArraySize(imgs) > imgs_before) cJSON_DeleteItemFromArray(imgs, cJSON_GetArraySize(imgs) - 1);
            n_skipped++;
            continue;
        }
        int ni = samples * Vt;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "subject", cap);
        cJSON_AddNumberToObject(o, "images", ni);
        cJSON_AddNumberToObject(o, "psnr", sp / ni);
        cJSON_AddNumberToObject(o, "ssim", ss / ni);
        json_num_or_null(o, "lpips", have_lpips, sl / ni);
        json_num_or_null(o, "akd", na, na ? sa / na : 0);
        cJSON_AddNumberToObject(o, "akd_images", na);
        cJSON_AddNumberToObject(o, "akd_skipped", na_skip);
        cJSON_AddItemToArray(subj_json, o);
        char lps[32] = "-", akds[48] = "-";
        if (have_lpips) snprintf(lps, sizeof lps, "%.4f", sl / ni);
        if (na) snprintf(akds, sizeof akds, "%.2f px (%d images)", sa / na, na);
        printf("%-40s %3d images  PSNR %.2f dB  SSIM %.4f  LPIPS %s  AKD %s\n", cap, ni, sp / ni, ss / ni, lps, akds);
        sum_psnr += sp, sum_ssim += ss, sum_lp += sl, n_img += ni, n_subj++;
        sum_akd += sa, n_akd += na;
    }
    if (!n_subj) {
        fprintf(stderr, "avat3r eval: no shard among --data matches --subjects %s\n", subjects);
        return 1;
    }
    cJSON *mean = cJSON_AddObjectToObject(root, "mean");
    cJSON_AddNumberToObject(mean, "psnr", sum_psnr / n_img);
    cJSON_AddNumberToObject(mean, "ssim", sum_ssim / n_img);
    json_num_or_null(mean, "lpips", have_lpips, sum_lp / n_img);
    json_num_or_null(mean, "akd", n_akd, n_akd ? sum_akd / n_akd : 0);
    cJSON_AddNumberToObject(root, "images_scored", n_img);
    cJSON *aj = cJSON_AddObjectToObject(root, "akd");
    if (have_akd) cJSON_AddStringToObject(aj, "model", akd_model);
    else cJSON_AddNullToObject(aj, "model");
    char rule[256];
    snprintf(rule, sizeof rule, "docs/akd.md: head-frame face centre (%g, %g, %g) m, half-size %g m, projected by the "
             "target camera, square", LANDMARKS_FACE_CENTRE[0], LANDMARKS_FACE_CENTRE[1], LANDMARKS_FACE_CENTRE[2],
             LANDMARKS_FACE_RADIUS);
    cJSON_AddStringToObject(aj, "face_box", rule);
    cJSON_AddNumberToObject(aj, "images_scored", n_akd);
    cJSON_AddNumberToObject(aj, "skipped_box_outside", n_akd_box);
    cJSON_AddNumberToObject(aj, "skipped_model_missing", n_akd_model);
    cJSON_AddNumberToObject(aj, "skipped_turned_off", n_akd_off);
    cJSON_AddNumberToObject(root, "subjects_scored", n_subj);
    cJSON_AddNumberToObject(root, "subjects_skipped", n_skipped);
    cJSON_AddNumberToObject(root, "damaged_samples_redrawn", n_damaged);
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.json", out);
    cli_write_json(path, root);
    AtomicFile af;
    snprintf(path, sizeof path, "%s/metrics.md", out);
    atomicOpen(&af, path);
    fprintf(af.f, "| subjects | images | inputs | PSNR ↑ | SSIM ↑ | LPIPS ↓ | AKD ↓ |\n|---|---|---|---|---|---|---|\n");
    fprintf(af.f, "| %d | %d | %s | %.2f | %.4f | ", n_subj, n_img, rt ? "inconsistent expressions" : "target frame",
            sum_psnr / n_img, sum_ssim / n_img);
    if (have_lpips) fprintf(af.f, "%.4f | ", sum_lp / n_img);
    else fprintf(af.f, "– | ");
    if (n_akd) fprintf(af.f, "%.2f |\n", sum_akd / n_akd);
    else fprintf(af.f, "– |\n");
    fprintf(af.f, "\nAKD: dlib's 68 landmarks on %d of %d images, pixels of the %dx%d images (skipped: %d faces "
                  "outside the image, %d without the model, %d with --no-akd).\n",
            n_akd, n_img, c.img_w, c.img_h, n_akd_box, n_akd_model, n_akd_off);
    atomicClose(&af);
    char akds[64] = " (AKD: no dlib model)";
    if (n_akd) snprintf(akds, sizeof akds, ", AKD %.2f px", sum_akd / n_akd);
    else if (have_akd) snprintf(akds, sizeof akds, " (AKD: no face box inside an image)");
    else if (no_akd) akds[0] = 0;
    printf("mean over %d images of %d subjects: PSNR %.2f dB, SSIM %.4f%s%s -> %s/metrics.json\n", n_img, n_subj,
           sum_psnr / n_img, sum_ssim / n_img, have_lpips ? "" : " (LPIPS: pass --lpips ALEX_WEIGHTS)", akds, out);
    cJSON_Delete(root);
    free(ssim_per), free(lp_per);
    for (int d = 0; d < n_shards; d++) free(shards[d]);
    if (have_lpips) lpips_free(&lp), lpips_weights_free(&lw);
    if (have_akd) landmarks_free(&lm);
    free(pred8), free(gt8);
    step_device_close(&sd);
    trainer_free(&t);
    return 0;
}
