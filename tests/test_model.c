// test_model.c — the whole network: finite differences in double over every parameter tensor,
// float vs double, determinism, initialisation, checkpoints, configs and the CLI.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rng.h"
#include "../common/util.h"
#include "avat3r.h"
#include "batch_random.h"
#include "checkpoint.h"
#include "test.h"

// A micro config where every path is exercised: 2 views, 2 upsampler stages, 2 layers, B = 2.
static ModelConfig micro_config(int use_s, int use_d) {
    ModelConfig c;
    CfgTable t = model_config_table(&c);
    char err[512];
    if (cfg_defaults(&t, 1, err, sizeof err)) abort();
    c.views_in = 2, c.img_h = 8, c.img_w = 12, c.patch = 4, c.width = 8, c.heads = 2, c.layers = 2;
    c.mlp_ratio = 2, c.expr_dim = 6, c.expr_tokens = 3, c.expr_hidden = 5, c.sapiens_ch = 3;
    c.sapiens_h = 3, c.sapiens_w = 5, c.use_sapiens = use_s, c.use_dust3r = use_d;
    c.expr_norm = use_s && use_d; // the full case also covers the optional expression-token LayerNorm
    c.init_std = 0.3; // large enough that every branch moves the output measurably
    return c;
}

static double loss_f64(Avat3r_f64 *m, const Avat3rBatch_f64 *in, const double *w) {
    avat3r_forward_f64(m, in);
    size_t n = (size_t)m->B * m->cfg.views_in * m->cfg.img_h * m->cfg.img_w * 14;
    double s = 0;
    for (size_t i = 0; i < n; i++) s += w[i] * m->a.gauss[i];
    return s;
}

static int fd_model(int use_s, int use_d) {
    ModelConfig c = micro_config(use_s, use_d);
    Avat3r_f64 m;
    avat3r_build_f64(&m, &c, 2);
    avat3r_init_params_f64(&m, 7);
    // LayerNorm weights/biases and all biases start at 1/0: perturb them so their gradients are generic
    Rng r = rng_make(99, 0);
    for (size_t i = 0; i < m.n_params; i++) m.params[i] += 0.1 * rng_normal_at(&r, i);
    // Differences are only valid away from the ReLU kinks of the expression MLP: take the first
    // batch seed whose pre-activations stay 0.05 from zero (a step of 2h = 6e-3 moves them by ~1e-2 at most).
    RandomBatch rb;
    Avat3rBatch_f64 in;
    for (uint64_t seed = 11;; seed++) {
        random_batch_make(&rb, &c, 2, seed);
        in = random_batch_f64(&rb);
        loss_f64(&m, &in, rb.w);
        double mn = 1e9;
        for (int i = 0; i < 2 * c.expr_hidden; i++) mn = fmin(mn, fmin(fabs(m.a.e1[i]), fabs(m.a.e2[i])));
        if (mn > 0.05) break;
        CHECK(seed < 400, "no batch seed keeps the ReLUs away from their kinks");
        random_batch_free(&rb);
    }
    avat3r_zero_grad_f64(&m);
    avat3r_backward_f64(&m, &in, rb.w);
    printf("    config sapiens=%d dust3r=%d: %zu parameters\n", use_s, use_d, m.n_params);
    double *ps = m.params;
    int fails = 0;
    for (int j = 0; j < NUM_PARAM_TENSORS; j++) {
        size_t n = m.param_sizes[j];
        if (!n) {
            ps += n;
            continue;
        }
        double worst = 0, gmax = 0; // same noise floor as tests/test_layers.c fd_worst
        for (size_t i = 0; i < n; i++) gmax = fmax(gmax, fabs(m.grads[(ps - m.params) + i]));
        size_t step = n > 12 ? n / 12 : 1;
        for (size_t i = 0; i < n; i += step) {
            // fourth-order central stencil: truncation O(h⁴) lets h be large enough that the loss's
            // rounding noise (~1e-12 absolute over thousands of outputs) stays far below the gradient
            double keep = ps[i], h = getenv("FD_H") ? atof(getenv("FD_H")) : 3e-3, f[4], dx[4] = {2, 1, -1, -2};
            for (int k = 0; k < 4; k++) {
                ps[i] = keep + dx[k] * h;
                f[k] = loss_f64(&m, &in, rb.w);
            }
            ps[i] = keep;
            double fd = (-f[0] + 8 * f[1] - 8 * f[2] + f[3]) / (12 * h), an = m.grads[(ps - m.params) + i];
            worst = fmax(worst, fabs(fd - an) / fmax(fabs(fd) + fabs(an), 1e-3 * gmax + 1e-12));
        }
        int bad = !(worst < 3e-5);
        fails += bad;
        printf("    %-10s worst rel err %.2e (max |grad| %.2e) %s\n", param_names[j], worst, gmax, bad ? "FAIL" : "");
        ps += n;
    }
    random_batch_free(&rb);
    avat3r_free_f64(&m);
    CHECK(fails == 0, "%d parameter tensors disagree with finite differences", fails);
    return 0;
}

static int test_fd_full(void) { return fd_model(1, 1); }
static int test_fd_no_sapiens(void) { return fd_model(0, 1); }
static int test_fd_no_dust3r(void) { return fd_model(1, 0); }
static int test_fd_just_cross_attention(void) { return fd_model(0, 0); }

// The float model against its double twin on the same parameters and batch.
static int test_float_vs_double(void) {
    ModelConfig c = micro_config(1, 1);
    c.init_std = 0.05;
    Avat3r m;
    Avat3r_f64 md;
    avat3r_build(&m, &c, 2);
    avat3r_build_f64(&md, &c, 2);
    avat3r_init_params(&m, 3);
    for (size_t i = 0; i < m.n_params; i++) md.params[i] = m.params[i];
    RandomBatch rb;
    random_batch_make(&rb, &c, 2, 5);
    Avat3rBatch in = random_batch_f32(&rb);
    Avat3rBatch_f64 ind = random_batch_f64(&rb);
    avat3r_forward(&m, &in);
    avat3r_forward_f64(&md, &ind);
    avat3r_zero_grad(&m);
    avat3r_zero_grad_f64(&md);
    avat3r_backward(&m, &in, rb.w32);
    avat3r_backward_f64(&md, &ind, rb.w);
    size_t ng = (size_t)2 * c.views_in * c.img_h * c.img_w * 14;
    double eg = 0, sg = 0, ed = 0, sd = 0;
    for (size_t i = 0; i < ng; i++) eg = fmax(eg, fabs(m.a.gauss[i] - md.a.gauss[i])), sg = fmax(sg, fabs(md.a.gauss[i]));
    for (size_t i = 0; i < m.n_params; i++) ed = fmax(ed, fabs(m.grads[i] - md.grads[i])), sd = fmax(sd, fabs(md.grads[i]));
    printf("    gaussians max rel %.2e, gradients max rel %.2e\n", eg / sg, ed / sd);
    CHECK(eg / sg < 1e-5 && ed / sd < 1e-4, "float and double disagree");
    avat3r_free(&m);
    avat3r_free_f64(&md);
    random_batch_free(&rb);
    return 0;
}

// Same inputs, same thread count: bit-identical outputs and gradients.
static int test_determinism(void) {
    ModelConfig c = micro_config(1, 1);
    Avat3r m;
    avat3r_build(&m, &c, 2);
    avat3r_init_params(&m, 3);
    RandomBatch rb;
    random_batch_make(&rb, &c, 2, 5);
    Avat3rBatch in = random_batch_f32(&rb);
    float *g1 = (float *)malloc(4 * m.n_params);
    for (int run = 0; run < 2; run++) {
        avat3r_forward(&m, &in);
        avat3r_zero_grad(&m);
        avat3r_backward(&m, &in, rb.w32);
        if (run == 0) memcpy(g1, m.grads, 4 * m.n_params);
    }
    CHECK(!memcmp(g1, m.grads, 4 * m.n_params), "two identical steps gave different gradients");
    // parameters untouched by the backward pass keep zero gradient only where a feature is off
    free(g1);
    avat3r_free(&m);
    random_batch_free(&rb);
    return 0;
}

static int test_init(void) {
    ModelConfig c = micro_config(1, 1);
    size_t sizes[NUM_PARAM_TENSORS], n = param_sizes(&c, sizes);
    float *a = (float *)malloc(4 * n), *b = (float *)malloc(4 * n);
    params_init(a, &c, 42);
    params_init(b, &c, 42);
    CHECK(!memcmp(a, b, 4 * n), "same seed, different parameters");
    params_init(b, &c, 43);
    CHECK(memcmp(a, b, 4 * n), "different seeds, same parameters");
    // LayerNorm weights are 1, biases 0, weights have the configured spread
    size_t off = 0;
    for (int j = 0; j < NUM_PARAM_TENSORS; j++) {
        double s2 = 0;
        for (size_t i = 0; i < sizes[j]; i++) s2 += (double)a[off + i] * a[off + i];
        ParamInit rule = param_init_rule(j);
        if (rule == INIT_ONE) CHECK(a[off] == 1 && a[off + sizes[j] - 1] == 1, "%s not ones", param_names[j]);
        if (rule == INIT_ZERO && sizes[j]) CHECK(s2 == 0, "%s not zero", param_names[j]);
        if (rule == INIT_NORMAL && sizes[j] > 100) {
            double sd = sqrt(s2 / sizes[j]);
            CHECK(fabs(sd - c.init_std) < 0.2 * c.init_std, "%s std %g", param_names[j], sd);
        }
        off += sizes[j];
    }
    free(a);
    free(b);
    return 0;
}

static int test_param_counts(void) {
    char err[1024], path[4096];
    snprintf(path, sizeof path, "%s/configs/paper.cfg", test_source_root());
    ModelConfig c;
    CHECK(!test_load_config(&c, path, err, sizeof err), "%s", err);
    size_t s[NUM_PARAM_TENSORS], n = param_sizes(&c, s);
    // hand count for the paper config (docs/model.md): D=768, L=8, M=3072, p=16, Cin=12
    size_t D = 768, L = 8, M = 3072;
    size_t blocks = L * (2 * D + 3 * D * D + 3 * D + D * D + D + 2 * D + D * D + D + 2 * D * D + 2 * D + D * D + D +
                         2 * D + M * D + M + D * M + D);
    size_t enc = D * 16 * 16 * 12 + D + D * (D + 1920) + D + 32 * 32 * D;
    size_t expr = 256 * 256 + 256 + 256 * 256 + 256 + 4 * D * 256 + 4 * D; // the MLP (expr_norm is off)
    size_t up = 0, ci = D;
    for (int k = 0; k < 4; k++, ci /= 2) up += 4 * (ci / 2) * ci + 4 * (ci / 2);
    size_t want = enc + expr + blocks + 2 * D + up + 14 * (D / 16) + 14;
    printf("    paper config: %zu parameters (%.1f M), %.1f GFLOP forward per sample\n", n, n / 1e6,
           model_forward_flops(&c) / 1e9);
    CHECK(n == want, "paper parameter count %zu, hand count %zu", n, want);
    return 0;
}

// params.h's gradient buckets (the data-parallel all-reduce that overlaps the backward): together they cover
// every parameter exactly once; bucket 0 holds only the head, upsampler and final norm, buckets 1..L only
// slices of the per-layer tensors (block L−1 first, each slice inside its tensor's layer l), bucket L+1 only
// the encoder and expression tensors. (That each bucket is final when the backward hands it over is checked
// on the CUDA backward, tests/cuda/test_step_cuda.c 7.)
static int test_grad_buckets(void) {
    ModelConfig cs[4];
    cs[0] = micro_config(1, 1), cs[1] = micro_config(0, 1), cs[2] = micro_config(1, 0);
    char path[4096], err[1024];
    snprintf(path, sizeof path, "%s/configs/paper.cfg", test_source_root());
    CHECK(!test_load_config(&cs[3], path, err, sizeof err), "%s", err);
    for (int ci = 0; ci < 4; ci++) {
        const ModelConfig *c = &cs[ci];
        size_t sizes[NUM_PARAM_TENSORS], n = param_sizes(c, sizes), start[NUM_PARAM_TENSORS + 1] = {0};
        for (int i = 0; i < NUM_PARAM_TENSORS; i++) start[i + 1] = start[i] + sizes[i];
        unsigned char *seen = (unsigned char *)calloc(n, 1);
        const int L = c->layers, NB = GRAD_BUCKETS(c);
        CHECK(NB == L + 2, "%d buckets for %d layers", NB, L);
        for (int b = 0; b < NB; b++) {
            size_t off[NUM_PARAM_TENSORS], cnt[NUM_PARAM_TENSORS];
            int ns = grad_bucket_slices(c, b, off, cnt);
            CHECK(ns > 0, "config %d bucket %d is empty", ci, b);
            for (int k = 0; k < ns; k++) {
                int i = 0; // the tensor holding the slice
                while (i < NUM_PARAM_TENSORS && !(off[k] >= start[i] && off[k] < start[i + 1])) i++;
                CHECK(i < NUM_PARAM_TENSORS && off[k] + cnt[k] <= start[i + 1], "config %d bucket %d slice %d crosses "
                      "a tensor end", ci, b, k);
                const int g = param_group_index(i);
                int want_g_ok = b == 0 ? g >= 3 : b == L + 1 ? g <= 1 : g == 2;
                CHECK(want_g_ok, "config %d bucket %d holds %s (group %s)", ci, b, param_names[i], param_group(i));
                if (g == 2) { // block l = L − b owns the l-th of L equal slices
                    size_t per = sizes[i] / L;
                    CHECK(cnt[k] == per && off[k] == start[i] + (size_t)(L - b) * per, "config %d bucket %d: %s slice "
                          "at %zu+%zu, want layer %d", ci, b, param_names[i], off[k] - start[i], cnt[k], L - b);
                }
                for (size_t j = 0; j < cnt[k]; j++) seen[off[k] + j]++;
            }
        }
        size_t once = 0;
        for (size_t j = 0; j < n; j++) once += seen[j] == 1;
        free(seen);
        CHECK(once == n, "config %d: %zu of %zu parameters in exactly one bucket", ci, once, n);
        printf("    config %d: %d buckets cover all %zu parameters once\n", ci, NB, n);
    }
    return 0;
}

static int test_checkpoint(void) {
    ModelConfig c = micro_config(1, 0);
    size_t s[NUM_PARAM_TENSORS], n = param_sizes(&c, s);
    float *p = (float *)malloc(4 * n);
    params_init(p, &c, 5);
    char path[1024], err[1024];
    snprintf(path, sizeof path, "%s/m.ckpt", test_tmpdir());
    checkpoint_save(path, &c, p, n);
    ModelConfig c2;
    float *q = NULL;
    CkptHeader h;
    CHECK(!checkpoint_load(path, &c2, &q, &h, err, sizeof err), "%s", err);
    CHECK(!memcmp(p, q, 4 * n) && h.n_params == n, "round trip not exact");
    { // compare by canonical text: the struct has padding
        CfgTable t1 = model_config_table(&c), t2 = model_config_table(&c2);
        char *s1 = cfg_to_string(&t1, 1), *s2 = cfg_to_string(&t2, 1);
        int same = !strcmp(s1, s2);
        free(s1);
        free(s2);
        CHECK(same, "config round trip not exact");
    }
    free(q);
    // damage the file in four ways; each must be refused with a message that says what is wrong
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = (unsigned char *)malloc(sz + 8);
    CHECK(fread(buf, 1, sz, f) == (size_t)sz, "read back");
    fclose(f);
    struct { const char *what, *expect; long len; long flip; } cases[] = {
        {"truncated", "truncated", sz - 5, -1},
        {"trailing", "trailing", sz + 4, -1},
        {"foreign", "not an avat3r checkpoint", sz, 0},
        {"flipped parameter byte", "CRC", sz, sz - 3},
        {"flipped config byte", "CRC", sz, 70},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char bad[1100];
        snprintf(bad, sizeof bad, "%s/bad%zu.ckpt", test_tmpdir(), k);
        memset(buf + sz, 0, 8);
        if (cases[k].flip >= 0) buf[cases[k].flip] ^= 0x5a;
        f = fopen(bad, "wb");
        fwrite(buf, 1, cases[k].len, f);
        fclose(f);
        if (cases[k].flip >= 0) buf[cases[k].flip] ^= 0x5a;
        int rc = checkpoint_load(bad, &c2, &q, &h, err, sizeof err);
        CHECK(rc != 0 && strstr(err, cases[k].expect) && strstr(err, bad), "%s: rc %d, message '%s'", cases[k].what, rc,
              err);
        printf("    %-24s refused: %s\n", cases[k].what, err);
    }
    free(buf);
    free(p);
    return 0;
}

// A checkpoint written before the expr_norm key existed (no such line in its config, 37 tensors) still
// loads, in C and in the Python reader, as expr_norm = false (the default) with its parameters unchanged.
static int test_checkpoint_before_expr_norm(void) {
    ModelConfig c = micro_config(1, 1);
    c.expr_norm = 0;
    size_t s[NUM_PARAM_TENSORS], n = param_sizes(&c, s);
    float *p = (float *)malloc(4 * n);
    params_init(p, &c, 5);
    char path[1024], old[1100], err[1024], cmd[4096];
    snprintf(path, sizeof path, "%s/new.ckpt", test_tmpdir());
    snprintf(old, sizeof old, "%s/old.ckpt", test_tmpdir());
    checkpoint_save(path, &c, p, n);
    // rewrite it without the line: header fields config_len (24), payload_offset (32), config_crc (40)
    FILE *f = fopen(path, "rb");
    CHECK(f, "open %s", path);
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = (unsigned char *)malloc(sz);
    CHECK(fread(buf, 1, sz, f) == (size_t)sz, "read back");
    fclose(f);
    uint64_t clen, poff;
    memcpy(&clen, buf + 24, 8);
    memcpy(&poff, buf + 32, 8);
    char *text = (char *)calloc(clen + 1, 1);
    memcpy(text, buf + 64, clen);
    char *line = strstr(text, "expr_norm = false\n");
    CHECK(line, "no expr_norm line in the config text");
    memmove(line, line + 18, strlen(line + 18) + 1);
    uint64_t nlen = strlen(text), npoff = (64 + nlen + 63) / 64 * 64;
    uint32_t ncrc = crc32_update(0, text, nlen);
    memcpy(buf + 24, &nlen, 8);
    memcpy(buf + 32, &npoff, 8);
    memcpy(buf + 40, &ncrc, 4);
    f = fopen(old, "wb");
    fwrite(buf, 1, 64, f);
    fwrite(text, 1, nlen, f);
    for (uint64_t k = 64 + nlen; k < npoff; k++) fputc(0, f);
    fwrite(buf + poff, 1, sz - poff, f);
    fclose(f);
    ModelConfig c2;
    float *q = NULL;
    CkptHeader h;
    CHECK(!checkpoint_load(old, &c2, &q, &h, err, sizeof err), "%s", err);
    CHECK(c2.expr_norm == 0 && h.n_params == n && !memcmp(p, q, 4 * n), "old checkpoint: expr_norm %d, %llu params",
          c2.expr_norm, (unsigned long long)h.n_params);
    printf("    checkpoint without an expr_norm line: loads as expr_norm = false, %zu parameters\n", n);
    snprintf(cmd, sizeof cmd,
             "cd '%s/tools/reference' && /usr/bin/python3 -c \"import atb,sys; c,w=atb.read_ckpt(sys.argv[1]); "
             "assert c['expr_norm'] is False and w.size == %zu, (c['expr_norm'], w.size); print('    python: ok')\" '%s'",
             test_source_root(), n, old);
    CHECK(test_system(cmd) == 0, "the Python reader disagrees");
    free(q);
    free(text);
    free(buf);
    free(p);
    return 0;
}

static int test_configs(void) {
    const char *files[] = {"tiny.cfg", "paper.cfg", "ablations/tiny_full.cfg", "ablations/tiny_no_sapiens.cfg",
                           "ablations/tiny_no_dust3r.cfg", "ablations/tiny_no_random_timesteps.cfg",
                           "ablations/tiny_just_cross_attention.cfg", "ablations/paper_full.cfg",
                           "ablations/paper_no_sapiens.cfg", "ablations/paper_no_dust3r.cfg",
                           "ablations/paper_no_random_timesteps.cfg", "ablations/paper_just_cross_attention.cfg"};
    // (S, D, T) per file, -1 = as the base
    int flags[][3] = {{1, 1, 1}, {1, 1, 1}, {1, 1, 1}, {0, 1, 1}, {1, 0, 1}, {1, 1, 0},
                      {0, 0, 1}, {1, 1, 1}, {0, 1, 1}, {1, 0, 1}, {1, 1, 0}, {0, 0, 1}};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[4096], err[1024];
        snprintf(path, sizeof path, "%s/configs/%s", test_source_root(), files[i]);
        ModelConfig c;
        CHECK(!test_load_config(&c, path, err, sizeof err), "%s", err);
        CHECK(c.use_sapiens == flags[i][0] && c.use_dust3r == flags[i][1] && c.random_timesteps == flags[i][2],
              "%s: flags S=%d D=%d T=%d", files[i], c.use_sapiens, c.use_dust3r, c.random_timesteps);
    }
    // a bad value names the file, the line and the key; a cross-key problem names the key
    char path[1024], err[1024];
    snprintf(path, sizeof path, "%s/bad.cfg", test_tmpdir());
    FILE *f = fopen(path, "w");
    fprintf(f, "# comment\nwidth = 100\nheads = 3\n");
    fclose(f);
    ModelConfig c;
    CHECK(model_config_load(&c, path, err, sizeof err) != 0 && strstr(err, "bad.cfg") && strstr(err, "heads"),
          "cross-key check: '%s'", err);
    f = fopen(path, "w");
    fprintf(f, "patch = 8\npatch = 12\n");
    fclose(f);
    CHECK(model_config_load(&c, path, err, sizeof err) != 0 && strstr(err, "patch"), "power of two: '%s'", err);
    f = fopen(path, "w");
    fprintf(f, "layers = -1\n");
    fclose(f);
    CHECK(model_config_load(&c, path, err, sizeof err) != 0 && strstr(err, "bad.cfg:1") && strstr(err, "layers"),
          "range: '%s'", err);
    return 0;
}

// The CLI end to end: init writes a checkpoint, inspect summarises it as JSON, bad input fails cleanly.
static int test_cli_init_inspect(void) {
    char cmd[8192], ck[1024], js[1024];
    snprintf(ck, sizeof ck, "%s/cli.ckpt", test_tmpdir());
    snprintf(js, sizeof js, "%s/inspect.json", test_tmpdir());
    snprintf(cmd, sizeof cmd, "'%s' init --config '%s/configs/tiny.cfg' --seed 3 --out '%s' > /dev/null", AVAT3R_BINARY,
             test_source_root(), ck);
    CHECK(test_system(cmd) == 0, "init failed");
    snprintf(cmd, sizeof cmd, "'%s' inspect '%s' > '%s'", AVAT3R_BINARY, ck, js);
    CHECK(test_system(cmd) == 0, "inspect failed");
    FILE *f = fopen(js, "r");
    char buf[16384] = {0};
    CHECK(f && fread(buf, 1, sizeof buf - 1, f) > 0, "no inspect output");
    fclose(f);
    ModelConfig c;
    char err[1024], path[4096];
    snprintf(path, sizeof path, "%s/configs/tiny.cfg", test_source_root());
    CHECK(!test_load_config(&c, path, err, sizeof err), "%s", err);
    size_t s[NUM_PARAM_TENSORS], n = param_sizes(&c, s);
    char want[64];
    snprintf(want, sizeof want, "\"params\":\t%zu", n);
    CHECK(strstr(buf, "\"kind\":\t\"model_checkpoint\"") && strstr(buf, want) && strstr(buf, "\"config\":") &&
              strstr(buf, "\"blocks\":"),
          "inspect JSON lacks kind/params/config/groups:\n%s", buf);
    // a foreign file and a missing one: non-zero exit
    snprintf(cmd, sizeof cmd, "'%s' inspect '%s/configs/tiny.cfg' 2>/dev/null", AVAT3R_BINARY, test_source_root());
    CHECK(system(cmd) != 0, "inspect accepted a config file as a checkpoint");
    snprintf(cmd, sizeof cmd, "'%s' init --config /nonexistent.cfg --out /tmp/x.ckpt 2>/dev/null", AVAT3R_BINARY);
    CHECK(system(cmd) != 0, "init accepted a missing config");
    snprintf(cmd, sizeof cmd, "'%s' selfcheck --set layers=1 --set width=64 > /dev/null", AVAT3R_BINARY);
    CHECK(test_system(cmd) == 0, "selfcheck failed");
    return 0;
}

const TestCase model_tests[] = {
    {"model/finite_differences_full", test_fd_full},
    {"model/finite_differences_no_sapiens", test_fd_no_sapiens},
    {"model/finite_differences_no_dust3r", test_fd_no_dust3r},
    {"model/finite_differences_just_cross_attention", test_fd_just_cross_attention},
    {"model/float_vs_double", test_float_vs_double},
    {"model/determinism", test_determinism},
    {"model/init", test_init},
    {"model/param_counts", test_param_counts},
    {"model/grad_buckets", test_grad_buckets},
    {"model/checkpoint", test_checkpoint},
    {"model/checkpoint_before_expr_norm", test_checkpoint_before_expr_norm},
    {"model/configs", test_configs},
    {"model/cli_init_inspect_selfcheck", test_cli_init_inspect},
    {NULL, NULL},
};
