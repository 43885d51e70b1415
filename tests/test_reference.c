// test_reference.c — the C network against the independent PyTorch implementation
// (tools/reference/avat3r_ref.py, autograd only), tensor by tensor, like llm.c's test_gpt2.
// For each config: C writes a checkpoint and a batch, PyTorch runs forward + backward in float64 and
// writes its debug state, and both C precisions are compared with it.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/atb.h"
#include "avat3r.h"
#include "batch_random.h"
#include "checkpoint.h"
#include "test.h"

// Prints one row and returns 1 if max|c - ref| > tol · max|ref|.
static int compare(const char *name, const float *c32, const double *c64, const double *ref, size_t n, double tol) {
    double m = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        double v = c32 ? c32[i] : c64[i];
        double d = fabs(v - ref[i]);
        m = (d > m || d != d) ? d : m;
        s = fmax(s, fabs(ref[i]));
    }
    double rel = m / (s + 1e-30);
    int bad = !(rel <= tol);
    printf("    %-16s %-6s max abs %.3e  max|ref| %.3e  rel %.2e %s\n", name, c32 ? "f32" : "f64", m, s, rel,
           bad ? "FAIL" : "ok");
    return bad;
}

// via_export: the reference loads the parameters from `avat3r export`'s safetensors file instead of the
// checkpoint (PyTorch-style names, docs/formats.md), so the same comparison checks the export.
// expr_norm: turn on the optional expression-token LayerNorm (docs/model.md step 6) on top of the file.
static int reference_case_ex(const char *cfg_file, int via_export, int expr_norm) {
    char path[4096], err[1024], ck[1024], bt[1024], dbg[1024], cmd[8192];
    snprintf(path, sizeof path, "%s/configs/%s", test_source_root(), cfg_file);
    ModelConfig c;
    CHECK(!test_load_config(&c, path, err, sizeof err), "%s", err);
    if (expr_norm) c.expr_norm = 1;
    int B = 2;
    Avat3r m;
    Avat3r_f64 md;
    avat3r_build(&m, &c, B);
    avat3r_build_f64(&md, &c, B);
    avat3r_init_params(&m, 17);
    // biases and LayerNorm affine start at 0/1; move them so their wiring is visible in the outputs
    for (size_t i = 0; i < m.n_params; i++) m.params[i] += 0.01f * (float)sin(1.7 * i);
    for (size_t i = 0; i < m.n_params; i++) md.params[i] = m.params[i];
    RandomBatch rb;
    random_batch_make(&rb, &c, B, 23);
    snprintf(ck, sizeof ck, "%s/ref.ckpt", test_tmpdir());
    snprintf(bt, sizeof bt, "%s/ref_batch.atb", test_tmpdir());
    snprintf(dbg, sizeof dbg, "%s/ref_debug.atb", test_tmpdir());
    checkpoint_save(ck, &c, m.params, m.n_params);
    if (via_export) {
        char st[1024];
        snprintf(st, sizeof st, "%.900s/ref.safetensors", test_tmpdir());
        snprintf(cmd, sizeof cmd, "'%s' export --checkpoint '%s' --out '%s' | sed 's/^/    /'", AVAT3R_BINARY, ck, st);
        CHECK(test_system(cmd) == 0, "avat3r export failed");
        snprintf(ck, sizeof ck, "%s", st);
    }
    random_batch_write(&rb, bt);
    const char *py = getenv("AVAT3R_PYTHON") ? getenv("AVAT3R_PYTHON") : "/usr/bin/python3";
    snprintf(cmd, sizeof cmd, "'%s' '%s/tools/reference/avat3r_ref.py' step --ckpt '%s' --batch '%s' --out '%s' --dtype float64",
             py, test_source_root(), ck, bt, dbg);
    CHECK(test_system(cmd) == 0, "the PyTorch reference failed (is python3-torch installed? set AVAT3R_PYTHON)");
    Atb ref;
    CHECK(!atb_read(dbg, &ref, err, sizeof err), "%s", err);

    Avat3rBatch in = random_batch_f32(&rb);
    Avat3rBatch_f64 ind = random_batch_f64(&rb);
    avat3r_forward(&m, &in);
    avat3r_forward_f64(&md, &ind);
    avat3r_zero_grad(&m);
    avat3r_zero_grad_f64(&md);
    avat3r_backward(&m, &in, rb.w32);
    avat3r_backward_f64(&md, &ind, rb.w);

    int S = c.expr_tokens, D = c.width, N = mc_tokens(&c);
    size_t G = (size_t)B * c.views_in * c.img_h * c.img_w;
    size_t BN = (size_t)B * N;
    struct { const char *name; const float *a32; const double *a64; size_t n; } acts[] = {
        {"plucker", m.a.plucker, md.a.plucker, G * 6},
        {"x0", m.a.x0, md.a.x0, BN * D},
        {"expr_tokens", c.expr_norm ? m.a.etokn : m.a.etok, c.expr_norm ? md.a.etokn : md.a.etok, (size_t)B * S * D},
        {"xf", m.a.lnf, md.a.lnf, BN * D},
        {"raw", m.a.raw, md.a.raw, G * 14},
        {"gauss", m.a.gauss, md.a.gauss, G * 14},
    };
    int bad = 0;
    // Tolerances, as max|C − ref| / max|ref| per tensor. Double vs double differs only in summation
    // order: measured ≤ 1e-14, limit 1e-11. Float32 against the float64 reference: measured ≤ 7e-7 for
    // activations and ≤ 4e-6 for gradients (tiny configs, this machine), limits 10× above that.
    const double tol64 = 1e-11, tol32_act = 1e-5, tol32_grad = 5e-5;
    for (size_t k = 0; k < sizeof acts / sizeof acts[0]; k++) {
        double *r = (double *)malloc(sizeof(double) * acts[k].n);
        if (atb_get_f64(&ref, acts[k].name, r, acts[k].n, err, sizeof err)) {
            printf("    %s\n", err);
            bad++;
        } else {
            bad += compare(acts[k].name, NULL, acts[k].a64, r, acts[k].n, tol64);
            bad += compare(acts[k].name, acts[k].a32, NULL, r, acts[k].n, tol32_act);
        }
        free(r);
    }
    double loss64 = 0, lossr = 0;
    for (size_t i = 0; i < G * 14; i++) loss64 += rb.w[i] * md.a.gauss[i];
    CHECK(!atb_get_f64(&ref, "loss", &lossr, 1, err, sizeof err), "%s", err);
    printf("    loss: C f64 %.12f  PyTorch f64 %.12f\n", loss64, lossr);
    bad += !(fabs(loss64 - lossr) <= 1e-11 * (1 + fabs(lossr)));
    size_t off = 0;
    for (int j = 0; j < NUM_PARAM_TENSORS; j++) {
        size_t n = m.param_sizes[j];
        if (n) {
            char gname[160];
            snprintf(gname, sizeof gname, "grad.%s", param_names[j]);
            double *r = (double *)malloc(sizeof(double) * n);
            if (atb_get_f64(&ref, gname, r, n, err, sizeof err)) {
                printf("    %s\n", err);
                bad++;
            } else {
                bad += compare(gname, NULL, md.grads + off, r, n, tol64);
                bad += compare(gname, m.grads + off, NULL, r, n, tol32_grad);
            }
            free(r);
        } else {
            char gname[160];
            snprintf(gname, sizeof gname, "grad.%s", param_names[j]);
            CHECK(!atb_find(&ref, gname), "reference has %s but the C model has no such tensor", gname);
        }
        off += n;
    }
    atb_free(&ref);
    avat3r_free(&m);
    avat3r_free_f64(&md);
    random_batch_free(&rb);
    CHECK(bad == 0, "%d tensors differ from the PyTorch reference", bad);
    return 0;
}

static int reference_case(const char *cfg_file) { return reference_case_ex(cfg_file, 0, 0); }
static int test_ref_full(void) { return reference_case("ablations/tiny_full.cfg"); }
static int test_ref_full_expr_norm(void) { return reference_case_ex("ablations/tiny_full.cfg", 0, 1); }
static int test_export_full(void) { return reference_case_ex("ablations/tiny_full.cfg", 1, 1); }
static int test_export_no_sapiens(void) { return reference_case_ex("ablations/tiny_no_sapiens.cfg", 1, 0); }
static int test_ref_no_sapiens(void) { return reference_case("ablations/tiny_no_sapiens.cfg"); }
static int test_ref_no_dust3r(void) { return reference_case("ablations/tiny_no_dust3r.cfg"); }
static int test_ref_no_rand(void) { return reference_case("ablations/tiny_no_random_timesteps.cfg"); }
static int test_ref_just_ca(void) { return reference_case("ablations/tiny_just_cross_attention.cfg"); }

// The reference's own self-tests (its unfold vs conv2d, attention vs a loop, gradcheck).
static int test_ref_selftest(void) {
    CHECK(test_python_script("tools/reference/selftest.py") == 0, "tools/reference/selftest.py failed");
    return 0;
}

const TestCase reference_tests[] = {
    {"reference/selftest", test_ref_selftest},
    {"reference/tiny_full", test_ref_full},
    {"reference/tiny_full_expr_norm", test_ref_full_expr_norm},
    {"reference/tiny_no_sapiens", test_ref_no_sapiens},
    {"reference/tiny_no_dust3r", test_ref_no_dust3r},
    {"reference/tiny_no_random_timesteps", test_ref_no_rand},
    {"reference/tiny_just_cross_attention", test_ref_just_ca},
    {"reference/export_safetensors_full", test_export_full},
    {"reference/export_safetensors_no_sapiens", test_export_no_sapiens},
    {NULL, NULL},
};
