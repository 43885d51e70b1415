// cmd_model.c — verbs on the network: init, inspect, selfcheck.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/atb.h"
#include "../common/timer.h"
#include "../common/util.h"
#include "avat3r.h"
#include "batch_random.h"
#include "train_config.h"
#include "checkpoint.h"
#include "cli.h"
#include "step_device.h"
#include "data_config.h"
#include "loop.h"
#include "ply.h"
#include "shard.h"

const char *cli_source_root(void) {
    const char *r = getenv("AVAT3R_SOURCE_ROOT");
#ifdef AVAT3R_SOURCE_ROOT_DEFAULT
    if (!r) r = AVAT3R_SOURCE_ROOT_DEFAULT;
#endif
    return r ? r : ".";
}

const char *cli_python(void) { return getenv("AVAT3R_PYTHON") ? getenv("AVAT3R_PYTHON") : "/usr/bin/python3"; }

void cli_load_model_config(ModelConfig *c, const char *path, const char **sets, int nsets) {
    TrainConfig tc;
    cli_load_configs(c, &tc, path, sets, nsets);
}

void cli_load_configs(ModelConfig *c, TrainConfig *tc, const char *path, const char **sets, int nsets) {
    char err[1024], def[4096];
    if (!path) {
        snprintf(def, sizeof def, "%s/configs/tiny.cfg", cli_source_root());
        path = def;
    }
    // the model's keys, the data pipeline's and the training loop's share a file
    DataConfig dc;
    CfgTable extra[2] = {data_config_table(&dc), train_config_table(tc)};
    if (model_config_load_with(c, path, extra, 2, err, sizeof err)) {
        fprintf(stderr, "error: %s\n", err);
        exit(1);
    }
    CfgTable t[3] = {model_config_table(c), extra[0], extra[1]};
    for (int i = 0; i < nsets; i++)
        if (cfg_set(sets[i], "--set", t, 3, err, sizeof err)) {
            fprintf(stderr, "error: %s\n", err);
            exit(1);
        }
    if (model_config_validate(c, err, sizeof err) || train_config_validate(tc, err, sizeof err)) {
        fprintf(stderr, "error: %s (after --set overrides)\n", err);
        exit(1);
    }
}

void cli_print_config_keys(void) {
    ModelConfig c;
    DataConfig dc;
    TrainConfig tc;
    CfgTable t[3] = {model_config_table(&c), data_config_table(&dc), train_config_table(&tc)};
    cfg_print_help(stdout, t, 3);
}

int cli_parse_opts(int argc, char **argv, CliOpts *o, const char *verb, const char *usage) {
    memset(o, 0, sizeof *o);
    o->batch = 1;
    o->iters = 5;
    o->rounds = 3;
    o->device = "cpu";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: avat3r %s %s\n", verb, usage);
            exit(0);
        } else if (!strcmp(a, "--config") && has) o->config = argv[++i];
        else if (!strcmp(a, "--out") && has) o->out = argv[++i];
        else if (!strcmp(a, "--device") && has) o->device = argv[++i];
        else if (!strcmp(a, "--seed") && has) o->seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--batch") && has) o->batch = atoi(argv[++i]);
        else if (!strcmp(a, "--iters") && has) o->iters = atoi(argv[++i]);
        else if (!strcmp(a, "--rounds") && has) o->rounds = atoi(argv[++i]);
        else if (!strcmp(a, "--threads") && has) o->threads = atoi(argv[++i]);
        else if (!strcmp(a, "--no-ref")) o->no_ref = 1;
        else if (!strcmp(a, "--flops-only")) o->flops_only = 1;
        else if (!strcmp(a, "--set") && has && o->nsets < 64) o->sets[o->nsets++] = argv[++i];
        else {
            fprintf(stderr, "avat3r %s: unknown or incomplete option '%s'\nusage: avat3r %s %s\n", verb, a, verb, usage);
            return 1;
        }
    }
    if (strcmp(o->device, "cpu")) { // of the verbs parsed here, only bench train has a GPU path
        char err[256];
        if (strcmp(verb, "bench train")) {
            fprintf(stderr, "avat3r %s: --device %s: this verb runs on the CPU only so far (the GPU runs `train`, "
                    "`eval`, `animate`, `bench train` and `bench animate`; issue #7)\n", verb, o->device);
            return 1;
        }
        if (step_device_check(o->device, err, sizeof err)) {
            fprintf(stderr, "avat3r %s %s\n", verb, err);
            return 1;
        }
    }
    if (o->batch < 1 || o->batch > 1024 || o->iters < 1) {
        fprintf(stderr, "avat3r %s: --batch must be 1..1024 and --iters >= 1\n", verb);
        return 1;
    }
    return 0;
}

int cmd_init(int argc, char **argv) {
    CliOpts o;
    if (cli_parse_opts(argc, argv, &o, "init", "--config FILE --seed N --out FILE.ckpt [--set key=value ...]")) return 2;
    if (!o.out) {
        fprintf(stderr, "avat3r init: --out FILE.ckpt is required\n");
        return 2;
    }
    ModelConfig c;
    cli_load_model_config(&c, o.config, o.sets, o.nsets);
    size_t sizes[NUM_PARAM_TENSORS], n = param_sizes(&c, sizes);
    float *params = (float *)mallocCheck(sizeof(float) * (n ? n : 1));
    params_init(params, &c, o.seed);
    checkpoint_save(o.out, &c, params, n);
    printf("wrote %s: %zu parameters (seed %llu)\n", o.out, n, o.seed);
    free(params);
    return 0;
}

static cJSON *config_json(ModelConfig *c) {
    CfgTable t = model_config_table(c);
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < t.n; i++) {
        const CfgKey *k = &t.keys[i];
        const char *p = (const char *)c + k->offset;
        if (k->type == CFG_INT) cJSON_AddNumberToObject(o, k->name, *(const int *)p);
        else if (k->type == CFG_BOOL) cJSON_AddBoolToObject(o, k->name, *(const int *)p);
        else if (k->type == CFG_FLOAT) cJSON_AddNumberToObject(o, k->name, *(const double *)p);
        else cJSON_AddStringToObject(o, k->name, p);
    }
    return o;
}

static int print_json(cJSON *j) {
    char *s = cJSON_Print(j);
    printf("%s\n", s);
    free(s);
    cJSON_Delete(j);
    return 0;
}

int cmd_inspect(int argc, char **argv) {
    if (argc != 2 || !strcmp(argv[1], "--help")) {
        printf("usage: avat3r inspect FILE   (a .ckpt checkpoint, an .atb tensor bundle, a 3DGS .ply or an .h5 shard)\n");
        return argc == 2 ? 0 : 2;
    }
    const char *path = argv[1];
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "error: %s: cannot open\n", path);
        return 1;
    }
    char magic[8] = {0};
    size_t got = fread(magic, 1, 8, f);
    fclose(f);
    char err[1024];
    cJSON *j = cJSON_CreateObject();
    if (got == 8 && !memcmp(magic, "AVT3CKPT", 8)) {
        ModelConfig c;
        CkptHeader h;
        if (checkpoint_load(path, &c, NULL, &h, err, sizeof err)) {
            cJSON_Delete(j);
            fprintf(stderr, "error: %s\n", err);
            return 1;
        }
        size_t sizes[NUM_PARAM_TENSORS], n = param_sizes(&c, sizes);
        cJSON_AddStringToObject(j, "kind", h.kind == CKPT_KIND_TRAIN ? "training_checkpoint" : "model_checkpoint");
        cJSON_AddStringToObject(j, "file", path);
        if (h.kind == CKPT_KIND_TRAIN) { // the run state: step and data cursor (docs/formats.md)
            RunConfig rc;
            if (run_checkpoint_read(path, &rc, NULL, NULL, NULL, err, sizeof err)) {
                cJSON_Delete(j);
                fprintf(stderr, "error: %s\n", err);
                return 1;
            }
            cJSON_AddNumberToObject(j, "step", rc.st.step);
            cJSON_AddNumberToObject(j, "data_cursor", rc.st.data_cursor);
        }
        cJSON_AddNumberToObject(j, "version", h.version);
        cJSON_AddItemToObject(j, "config", config_json(&c));
        cJSON_AddNumberToObject(j, "params", (double)n);
        cJSON *groups = cJSON_CreateObject(), *tensors = cJSON_CreateObject();
        for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
            cJSON *g = cJSON_GetObjectItem(groups, param_group(i));
            if (!g) g = cJSON_AddNumberToObject(groups, param_group(i), 0);
            cJSON_SetNumberValue(g, g->valuedouble + (double)sizes[i]);
            cJSON_AddNumberToObject(tensors, param_names[i], (double)sizes[i]);
        }
        cJSON_AddItemToObject(j, "groups", groups);
        cJSON_AddItemToObject(j, "tensors", tensors);
        cJSON_AddNumberToObject(j, "forward_gflops_per_sample", model_forward_flops(&c) / 1e9);
        return print_json(j);
    }
    if (got == 8 && !memcmp(magic, "AVT3TENS", 8)) {
        Atb b;
        if (atb_read(path, &b, err, sizeof err)) {
            cJSON_Delete(j);
            fprintf(stderr, "error: %s\n", err);
            return 1;
        }
        cJSON_AddStringToObject(j, "kind", "tensor_bundle");
        cJSON_AddStringToObject(j, "file", path);
        cJSON *ts = cJSON_CreateObject();
        static const char *dtn[] = {"float32", "float64", "int32"};
        for (int i = 0; i < b.n; i++) {
            cJSON *t = cJSON_CreateObject(), *dims = cJSON_CreateArray();
            for (int d = 0; d < b.t[i].ndim; d++) cJSON_AddItemToArray(dims, cJSON_CreateNumber((double)b.t[i].dims[d]));
            cJSON_AddStringToObject(t, "dtype", dtn[b.t[i].dtype]);
            cJSON_AddItemToObject(t, "shape", dims);
            cJSON_AddItemToObject(ts, b.t[i].name, t);
        }
        cJSON_AddItemToObject(j, "tensors", ts);
        atb_free(&b);
        return print_json(j);
    }
    if (got == 8 && !memcmp(magic, "\x89HDF\r\n\x1a\n", 8)) {
        Shard sh;
        if (shard_open(&sh, path, err, sizeof err)) {
            cJSON_Delete(j);
            fprintf(stderr, "error: %s\n", err);
            return 1;
        }
        static const char *names[SHARD_NBLOBS] = {"images", "masks", "dust3r", "sapiens", "parts"};
        size_t n = (size_t)sh.m.n_frames * sh.m.n_cams;
        cJSON_AddStringToObject(j, "kind", "shard");
        cJSON_AddStringToObject(j, "file", path);
        cJSON_AddStringToObject(j, "capture", sh.m.capture);
        cJSON_AddNumberToObject(j, "frames", sh.m.n_frames);
        cJSON_AddNumberToObject(j, "cameras", sh.m.n_cams);
        cJSON_AddNumberToObject(j, "width", sh.m.W);
        cJSON_AddNumberToObject(j, "height", sh.m.H);
        cJSON_AddNumberToObject(j, "expr_dim", sh.m.expr_dim);
        cJSON *present = cJSON_CreateObject(), *bytes = cJSON_CreateObject();
        size_t have_img = 0;
        for (int b = 0; b < SHARD_NBLOBS; b++) {
            size_t have = 0;
            for (size_t i = 0; i < n; i++) have += sh.blob[b].len[i] > 0;
            if (b == SHARD_IMAGE) have_img = have;
            cJSON_AddNumberToObject(present, names[b], (double)have);
            cJSON_AddNumberToObject(bytes, names[b], (double)sh.blob[b].size);
        }
        cJSON_AddItemToObject(j, "present", present);
        cJSON_AddNumberToObject(j, "missing_images", (double)(n - have_img));
        // why they are missing, as pack counted it (shards from before these attributes: null)
        if (sh.missing_images >= 0) {
            cJSON *why = cJSON_CreateObject();
            cJSON_AddNumberToObject(why, "dropped", (double)sh.missing_images);
            cJSON_AddNumberToObject(why, "corrupt", (double)sh.corrupt_images);
            cJSON_AddNumberToObject(why, "no_mask", (double)sh.no_mask_images);
            cJSON_AddItemToObject(j, "missing_why", why);
        } else {
            cJSON_AddNullToObject(j, "missing_why");
        }
        cJSON_AddItemToObject(j, "bytes", bytes);
        FILE *fs = fopen(path, "rb");
        if (fs) {
            cJSON_AddNumberToObject(j, "file_bytes", (double)file_size(fs));
            fclose(fs);
        }
        shard_close(&sh);
        return print_json(j);
    }
    if (got >= 4 && !memcmp(magic, "ply\n", 4)) {
        PlyGaussians p;
        if (ply_read(path, &p, err, sizeof err)) {
            cJSON_Delete(j);
            fprintf(stderr, "error: %s\n", err);
            return 1;
        }
        double lo[3] = {INFINITY, INFINITY, INFINITY}, hi[3] = {-INFINITY, -INFINITY, -INFINITY};
        size_t nonfinite = 0;
        for (size_t i = 0; i < p.n; i++) {
            int ok = 1;
            for (int k = 0; k < 3; k++) ok &= isfinite(p.xyz[i * 3 + k]);
            if (!ok) {
                nonfinite++;
                continue;
            }
            for (int k = 0; k < 3; k++) lo[k] = fmin(lo[k], p.xyz[i * 3 + k]), hi[k] = fmax(hi[k], p.xyz[i * 3 + k]);
        }
        cJSON_AddStringToObject(j, "kind", "gaussian_ply");
        cJSON_AddStringToObject(j, "file", path);
        cJSON_AddNumberToObject(j, "count", (double)p.n);
        cJSON_AddNumberToObject(j, "nonfinite_positions", (double)nonfinite);
        if (p.n > nonfinite) {
            cJSON *bmin = cJSON_CreateDoubleArray(lo, 3), *bmax = cJSON_CreateDoubleArray(hi, 3);
            cJSON *bounds = cJSON_CreateObject();
            cJSON_AddItemToObject(bounds, "min", bmin);
            cJSON_AddItemToObject(bounds, "max", bmax);
            cJSON_AddItemToObject(j, "bounds", bounds);
        }
        ply_free(&p);
        return print_json(j);
    }
    cJSON_Delete(j);
    fprintf(stderr, "error: %s: not a file avat3r knows (expected an avat3r checkpoint, tensor bundle, 3DGS PLY or shard)\n", path);
    return 1;
}

// The README's demo for now: the model end to end on a random batch, with its gradients checked.
double cli_timed_step(Avat3r *m, const Avat3rBatch *in, const float *dgauss, double *fwd_ms) {
    double t0 = time_now_s();
    avat3r_forward(m, in);
    double t1 = time_now_s();
    avat3r_zero_grad(m);
    avat3r_backward(m, in, dgauss);
    double t2 = time_now_s();
    *fwd_ms = 1e3 * (t1 - t0);
    return 1e3 * (t2 - t0);
}

int cmd_selfcheck(int argc, char **argv) {
    CliOpts o;
    if (cli_parse_opts(argc, argv, &o, "selfcheck", "[--config FILE] [--batch B] [--seed N] [--set key=value ...]"))
        return 2;
    ModelConfig c;
    cli_load_model_config(&c, o.config, o.sets, o.nsets);
    int B = o.batch;
    Avat3r m;
    avat3r_build(&m, &c, B);
    avat3r_init_params(&m, o.seed);
    RandomBatch rb;
    random_batch_make(&rb, &c, B, o.seed + 1);
    Avat3rBatch in = random_batch_f32(&rb);
    size_t G = (size_t)B * c.views_in * c.img_h * c.img_w;
    printf("avat3r selfcheck: %zu parameters, %d tokens/sample, %zu Gaussians/batch, %.2f GFLOP fwd/sample\n",
           m.n_params, mc_tokens(&c), G, model_forward_flops(&c) / 1e9);
    printf("  flags: sapiens=%d dust3r=%d random_timesteps=%d\n", c.use_sapiens, c.use_dust3r, c.random_timesteps);
    double fwd_ms, step_ms = cli_timed_step(&m, &in, rb.w32, &fwd_ms);
    int bad = 0;
    double loss = 0, gn = 0;
    for (size_t i = 0; i < G * 14; i++) {
        loss += (double)rb.w32[i] * m.a.gauss[i];
        bad += !isfinite(m.a.gauss[i]);
    }
    for (size_t i = 0; i < m.n_params; i++) {
        gn += (double)m.grads[i] * m.grads[i];
        bad += !isfinite(m.grads[i]);
    }
    static const char *attr[] = {"position", "colour", "scale", "rotation", "opacity"};
    static const int off[] = {0, 3, 6, 9, 13, 14};
    for (int a = 0; a < 5; a++) {
        double lo = 1e30, hi = -1e30;
        for (size_t g = 0; g < G; g++)
            for (int k = off[a]; k < off[a + 1]; k++) {
                double v = m.a.gauss[g * 14 + k];
                lo = v < lo ? v : lo;
                hi = v > hi ? v : hi;
            }
        printf("  %-9s range [% .4f, % .4f]\n", attr[a], lo, hi);
    }
    printf("  loss sum(w*gauss) = %.6f, |grad| = %.6e, forward %.1f ms, backward %.1f ms\n", loss, sqrt(gn),
           fwd_ms, step_ms - fwd_ms);
    // The double-precision twin must agree with the float model, and its gradient with finite differences.
    Avat3r_f64 md;
    avat3r_build_f64(&md, &c, B);
    for (size_t i = 0; i < m.n_params; i++) md.params[i] = m.params[i];
    Avat3rBatch_f64 ind = random_batch_f64(&rb);
    avat3r_forward_f64(&md, &ind);
    double maxd = 0, maxv = 0;
    for (size_t i = 0; i < G * 14; i++) {
        double d = fabs(md.a.gauss[i] - m.a.gauss[i]);
        maxd = d > maxd ? d : maxd;
        maxv = fabs(md.a.gauss[i]) > maxv ? fabs(md.a.gauss[i]) : maxv;
    }
    avat3r_zero_grad_f64(&md);
    avat3r_backward_f64(&md, &ind, rb.w);
    printf("  float vs double Gaussians: max abs diff %.3e (max |value| %.3f)\n", maxd, maxv);
    bad += !(maxd <= 1e-3 * (1 + maxv));
    // finite differences on the 6 largest-gradient parameters
    double worst = 0;
    for (int r = 0; r < 6; r++) {
        size_t best = 0;
        double bv = -1;
        for (size_t i = (size_t)r; i < md.n_params; i += 6)
            if (fabs(md.grads[i]) > bv) bv = fabs(md.grads[best = i]);
        double keep = md.params[best], h = 1e-6 * (1 + fabs(keep)), lp = 0, lm = 0;
        md.params[best] = keep + h;
        avat3r_forward_f64(&md, &ind);
        for (size_t i = 0; i < G * 14; i++) lp += rb.w[i] * md.a.gauss[i];
        md.params[best] = keep - h;
        avat3r_forward_f64(&md, &ind);
        for (size_t i = 0; i < G * 14; i++) lm += rb.w[i] * md.a.gauss[i];
        md.params[best] = keep;
        double fd = (lp - lm) / (2 * h), rel = fabs(fd - md.grads[best]) / (fabs(fd) + fabs(md.grads[best]) + 1e-12);
        worst = rel > worst ? rel : worst;
    }
    printf("  finite differences (double, 6 parameters): worst relative error %.2e\n", worst);
    bad += !(worst < 1e-5);
    printf("%s\n", bad ? "SELFCHECK FAILED" : "selfcheck ok");
    avat3r_free_f64(&md);
    avat3r_free(&m);
    random_batch_free(&rb);
    return bad ? 1 : 0;
}
