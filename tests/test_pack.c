// test_pack.c — `avat3r pack` on the ava256 fixture: every image packed or counted missing, K follows
// the crop (the head centre projects onto the disc in the packed image), codes and poses carried over
// exactly, background composited from the mask, resumable over stale and broken outputs.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ava256.h"
#include "pack.h"
#include "shard.h"
#include "test.h"

static int make_fixture(char *root, size_t n) {
    char cmd[4096];
    const char *py = getenv("AVAT3R_PYTHON") ? getenv("AVAT3R_PYTHON") : "/usr/bin/python3";
    snprintf(cmd, sizeof cmd, "'%s' '%s/tools/reference/make_ava256_fixture.py' '%s/fx' > /dev/null", py,
             test_source_root(), test_tmpdir());
    CHECK(test_system(cmd) == 0, "fixture generator failed");
    snprintf(root, n, "%s/fx/ava256_tiny", test_tmpdir());
    return 0;
}

static int test_pack_fixture(void) {
    char root[1024], out[1100], cmd[8192], path[1300], err[1024];
    if (make_fixture(root, sizeof root)) return 1;
    snprintf(out, sizeof out, "%s/shards", test_tmpdir());
    snprintf(cmd, sizeof cmd, "'%s' pack --ava256 '%s' --out '%s' --size 32 --quiet --background 1,1,1 > /dev/null",
             AVAT3R_BINARY, root, out);
    CHECK(test_system(cmd) == 0, "pack failed");
    int64_t images = 0, missing = 0;
    for (int s = 0; s < 2; s++) {
        const char *name = s ? "20240102--1030--TST002" : "20240101--0900--TST001";
        snprintf(path, sizeof path, "%s/%s.h5", out, name);
        Shard sh;
        CHECK(!shard_open(&sh, path, err, sizeof err), "%s", err);
        char cap_dir[1300];
        snprintf(cap_dir, sizeof cap_dir, "%s/%s", root, name);
        Ava256Capture cap;
        CHECK(!ava256_open(&cap, cap_dir, 0, err, sizeof err), "%s", err);
        CHECK(sh.m.n_frames == cap.n_frames && sh.m.n_cams == cap.n_cams && sh.m.expr_dim == cap.expr_dim, "sizes");
        uint8_t rgb[32 * 32 * 3];
        double worst = 0;
        for (int f = 0; f < sh.m.n_frames; f++) {
            CHECK(sh.m.frame_ids[f] == cap.frames[f].id, "frame ids");
            CHECK(!memcmp(sh.m.head_pose + 12 * f, cap.frames[f].head, 96), "head pose not carried exactly");
            const float *code;
            CHECK(ava256_expr_code(&cap, f, &code, err, sizeof err) == AVA256_OK, "%s", err);
            CHECK(!memcmp(sh.m.expr + (size_t)f * sh.m.expr_dim, code, 4 * (size_t)sh.m.expr_dim), "codes not exact");
            for (int c = 0; c < sh.m.n_cams; c++) {
                int r = shard_get_image(&sh, f, c, rgb, err, sizeof err);
                CHECK(r >= 0, "%s", err);
                if (r == 1) {
                    missing++;
                    continue;
                }
                images++;
                // the disc (the head) is the non-background part; its centroid vs the projected head centre
                double sx = 0, sy = 0, sw = 0;
                for (int i = 0; i < 32 * 32; i++) {
                    int bg = rgb[3 * i] > 240 && rgb[3 * i + 1] > 240 && rgb[3 * i + 2] > 240;
                    if (!bg) sx += i % 32 + 0.5, sy += i / 32 + 0.5, sw += 1;
                }
                const double *K = sh.m.K + ((size_t)f * sh.m.n_cams + c) * 9, *R = sh.m.w2c + 12 * c;
                const double *hp = sh.m.head_pose + 12 * f;
                double p[3];
                for (int k = 0; k < 3; k++) p[k] = R[k * 4] * hp[3] + R[k * 4 + 1] * hp[7] + R[k * 4 + 2] * hp[11] + R[k * 4 + 3];
                double u = K[0] * p[0] / p[2] + K[2], v = K[4] * p[1] / p[2] + K[5];
                CHECK(sw > 10, "no head in frame %d camera %d", f, c);
                worst = fmax(worst, hypot(sx / sw - u, sy / sw - v));
            }
        }
        printf("    %s: head centre vs disc centroid, worst %.2f px at 32x32\n", name, worst);
        CHECK(worst < 1.0, "K does not follow the crop (%.2f px)", worst);
        shard_close(&sh);
        ava256_close(&cap);
    }
    CHECK(images == 159 && missing == 1, "packed %lld images, %lld missing (want 159 and 1)", (long long)images,
          (long long)missing);
    // resumable: a finished shard is kept; a broken one and a stale temporary are redone
    snprintf(path, sizeof path, "%s/20240101--0900--TST001.h5", out);
    snprintf(cmd, sizeof cmd, "head -c 100 '%s' > '%s.x' && mv '%s.x' '%s' && touch '%s.tmp.99999'", path, path, path,
             path, path);
    CHECK(test_system(cmd) == 0, "damage");
    snprintf(cmd, sizeof cmd, "'%s' pack --ava256 '%s' --out '%s' --size 32 --quiet | grep -q '1 captures packed, 1 already done'",
             AVAT3R_BINARY, root, out);
    CHECK(test_system(cmd) == 0, "pack did not redo exactly the broken capture");
    Shard sh;
    CHECK(!shard_open(&sh, path, err, sizeof err), "re-packed shard: %s", err);
    shard_close(&sh);
    snprintf(cmd, sizeof cmd, "test ! -e '%s.tmp.99999'", path);
    CHECK(test_system(cmd) == 0, "stale temporary left behind");
    return 0;
}

// --crop F: the crop side, its clamping inside the image, and K following it (a 3D point's pixel in the full
// image maps to its pixel in the resized crop); out-of-range values are refused by the command.
static int test_pack_crop(void) {
    CHECK(pack_crop_side(96, 144, 1.0) == 96 && pack_crop_side(96, 144, 0) == 96 && pack_crop_side(96, 144, 0.6) == 58,
          "crop side");
    int x0, y0;
    pack_crop_origin(96, 144, 58, 2.0, 140.0, &x0, &y0); // near a corner: clamped inside
    CHECK(x0 == 0 && y0 == 144 - 58, "clamped origin %d,%d", x0, y0);
    pack_crop_origin(96, 144, 58, 50.3, 70.6, &x0, &y0);
    CHECK(x0 == 21 && y0 == 42, "centred origin %d,%d", x0, y0);
    const double K[9] = {120, 0, 47.5, 0, 118, 71.2, 0, 0, 1}, P[3] = {0.031, -0.042, 0.9};
    double Kc[9];
    pack_crop_K(K, x0, y0, 58, 64, Kc);
    double u = K[0] * P[0] / P[2] + K[2], v = K[4] * P[1] / P[2] + K[5];
    double uc = Kc[0] * P[0] / P[2] + Kc[2], vc = Kc[4] * P[1] / P[2] + Kc[5];
    CHECK(fabs(uc - (u - x0) * 64 / 58) < 1e-9 && fabs(vc - (v - y0) * 64 / 58) < 1e-9, "K does not follow the crop");
    char cmd[2048];
    for (int k = 0; k < 2; k++) {
        snprintf(cmd, sizeof cmd, "'%s' pack --ava256 /nonexistent --out '%s/x' --crop %s 2>&1 | grep -q -- '--crop in (0, 1]'",
                 AVAT3R_BINARY, test_tmpdir(), k ? "1.5" : "0");
        CHECK(test_system(cmd) == 0, "--crop %s not refused", k ? "1.5" : "0");
    }
    return 0;
}

// A Sapiens map of shape (0, W, C) is a valid .npy; pack once read it at index -1 (found while fuzzing,
// docs/robustness.md). It must now fail with the file named, never crash.
static int test_pack_empty_sapiens(void) {
    char caps[1024], cmd[8192];
    snprintf(caps, sizeof caps, "%s/empty_sap", test_tmpdir());
    snprintf(cmd, sizeof cmd,
             "'%s' synth --out '%s/caps' --subjects 1 --cameras 2 --frames 2 --size 32x48 --sapiens-size 8x8 --no-drop "
             "--threads 1 > '%s.log' 2>&1 && cd \"$(ls -d '%s'/caps/*/decoder/aux/sapiens)\" && /usr/bin/python3 -c \""
             "import glob, io, zipfile, numpy as np\n"
             "z = sorted(glob.glob('*.zip'))[0]\n"
             "with zipfile.ZipFile(z) as src:\n"
             "    items = [(n, src.read(n)) for n in src.namelist()]\n"
             "a = np.load(io.BytesIO(items[0][1])); b = io.BytesIO(); np.save(b, np.zeros((0,) + a.shape[1:], a.dtype))\n"
             "items[0] = (items[0][0], b.getvalue())\n"
             "with zipfile.ZipFile(z, 'w') as out:\n"
             "    [out.writestr(n, d) for n, d in items]\n"
             "print(z, items[0][0])\" >> '%s.log' 2>&1",
             AVAT3R_BINARY, caps, caps, caps, caps);
    CHECK(test_system(cmd) == 0, "could not make the capture with an empty Sapiens map (%s.log)", caps);
    snprintf(cmd, sizeof cmd, "'%s' pack --ava256 \"$(ls -d '%s'/caps/*/)\" --out '%s/shards' --size 16 --sapiens-size 8x8 "
             "--quiet > '%s.pack' 2>&1; echo \"exit $?\" >> '%s.pack'; cat '%s.pack' | sed 's/^/    /'; "
             "grep -q 'exit 1' '%s.pack' && grep -q 'sapiens' '%s.pack'",
             AVAT3R_BINARY, caps, caps, caps, caps, caps, caps, caps);
    CHECK(test_system(cmd) == 0, "pack did not refuse the empty Sapiens map with a message naming it");
    return 0;
}

// The DUSt3R/Sapiens precompute scripts' writers against what synth writes (stand-in arrays; the
// networks are not installed here): tools/reference/precompute_selftest.py.
static int test_precompute_writers(void) {
    CHECK(test_python_script("precompute_selftest.py") == 0, "tools/reference/precompute_selftest.py failed");
    return 0;
}

const TestCase pack_tests[] = {
    {"pack_crop", test_pack_crop},
    {"pack_empty_sapiens_map", test_pack_empty_sapiens},
    {"data/precompute_scripts_writers", test_precompute_writers},
    {"data/pack_fixture_resumable", test_pack_fixture},
    {NULL, NULL},
};
