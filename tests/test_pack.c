// test_pack.c — `avat3r pack` on the ava256 fixture: every image packed or counted missing, K follows
// the crop (the head centre projects onto the disc in the packed image), codes and poses carried over
// exactly, background composited from the mask, resumable over stale and broken outputs. Corrupt payloads
// (issue #9): damaged image, mask and aux members are skipped, counted and named, the rest packed as from
// the undamaged capture; truncated zips and captures over --max-corrupt fail with a message, no shard.
// Part labels: cropped like the image and resampled nearest, damaged ones leave their image without labels.
#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zip.h>
#include <zlib.h>

#include "ava256.h"
#include "ava256_internal.h"
#include "ava256_write.h"
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
        snprintf(cmd, sizeof cmd, "'%s' pack --ava256 /nonexistent --out '%s/x' --crop %s 2>&1 | grep -qF -- \"--crop '%s': "
                 "expected a number in (0, 1]\"", AVAT3R_BINARY, test_tmpdir(), k ? "1.5" : "0", k ? "1.5" : "0");
        CHECK(test_system(cmd) == 0, "--crop %s not refused", k ? "1.5" : "0");
    }
    return 0;
}

// A Sapiens map of shape (0, W, C) is a valid .npy; pack once read it at index -1 (found while fuzzing,
// docs/robustness.md). It must now fail with the file named, never crash.
static int test_pack_empty_sapiens(void) {
    char caps[1024], cmd[12288];
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
    // the empty map is a corrupt payload of one image (docs/data.md): 1 of 4 images is over the default
    // --max-corrupt; with the limit lifted the other three are packed
    snprintf(cmd, sizeof cmd, "'%s' pack --ava256 \"$(ls -d '%s'/caps/*/)\" --out '%s/shards' --size 16 --sapiens-size 8x8 "
             "--quiet --max-corrupt 1 > '%s.pack' 2>&1; echo \"exit $?\" >> '%s.pack'; cat '%s.pack' | sed 's/^/    /'; "
             "grep -q 'exit 0' '%s.pack' && grep -q '3 images (0 missing, 1 corrupt, 0 no mask, skipped)' '%s.pack' && "
             "grep -q 'skipped (corrupt Sapiens map): .*aux/sapiens/cam.*zip: member' '%s.pack'",
             AVAT3R_BINARY, caps, caps, caps, caps, caps, caps, caps, caps);
    CHECK(test_system(cmd) == 0, "with --max-corrupt 1 the empty Sapiens map was not skipped and counted");
    return 0;
}

// ---- corrupt payloads (issue #9) ----

static int count_occurrences(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

static uint32_t le32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static unsigned le16(const uint8_t *p) { return p[0] | p[1] << 8; }
static void put_le32(uint8_t *p, uint32_t v) { p[0] = v, p[1] = v >> 8, p[2] = v >> 16, p[3] = v >> 24; }

// Damages member `name` of the STORED zip at `path` in place (synth writes STORED zips without ZIP64 at
// this size): garbage = 0 flips 16 bytes in the middle of its data, so libzip's CRC check fails; garbage = 1
// overwrites all of its data with a pattern and rewrites both CRC fields, so the zip stays valid and only
// the payload is wrong. The member is found through the central directory, its data through its local
// header. Returns 0, or -1 with a message.
static int zip_damage(const char *path, const char *name, int garbage) {
    size_t n;
    uint8_t *z = (uint8_t *)test_read_text(path, &n);
    if (!z || n < 22) return fprintf(stderr, "    %s: unreadable\n", path), free(z), -1;
    size_t eocd = n - 22;
    while (eocd > 0 && le32(z + eocd) != 0x06054b50) eocd--;
    size_t cd = le32(z + eocd + 16), entries = le16(z + eocd + 10), data = 0, size = 0, crc_local = 0, crc_central = 0;
    int found = 0;
    for (size_t e = 0; e < entries && cd + 46 <= n && le32(z + cd) == 0x02014b50; e++) {
        size_t nl = le16(z + cd + 28), xl = le16(z + cd + 30), cl = le16(z + cd + 32), lho = le32(z + cd + 42);
        if (nl == strlen(name) && !memcmp(z + cd + 46, name, nl)) {
            if (le16(z + cd + 10) != 0 || lho + 30 > n) break; // not STORED, or a broken offset: not our fixture
            found = 1, crc_central = cd + 16, crc_local = lho + 14, size = le32(z + cd + 20);
            data = lho + 30 + le16(z + lho + 26) + le16(z + lho + 28);
            break;
        }
        cd += 46 + nl + xl + cl;
    }
    if (!found || data + size > n || size < 16) {
        fprintf(stderr, "    %s: no STORED member '%s' of 16+ bytes\n", path, name);
        free(z);
        return -1;
    }
    if (garbage) {
        for (size_t i = 0; i < size; i++) z[data + i] = (uint8_t)(0x5a ^ (i * 37));
        uint32_t crc = (uint32_t)crc32(0L, z + data, (uInt)size);
        put_le32(z + crc_local, crc), put_le32(z + crc_central, crc);
    } else {
        for (size_t i = 0; i < 16; i++) z[data + size / 2 - 8 + i] ^= 0xff;
    }
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(z, 1, n, f) == n;
    if (f) ok &= fclose(f) == 0;
    free(z);
    return ok ? 0 : -1;
}

// The clean captures (2 subjects × 4 cameras × 5 frames of 32×48, masks, DUSt3R and Sapiens maps, no
// dropped image) and their pack TMP/pkc/clean/, made once per run; `caps` gets a fresh copy of the
// captures for one test to damage. The packs of the tests use the same options (PACK_ARGS).
#define PACK_ARGS "--size 16 --sapiens-size 4x4 --quiet --threads 2"
static int corrupt_fixture(const char *tag, char *caps, size_t n) {
    char base[1024], cmd[8192];
    snprintf(base, sizeof base, "%s/pkc", test_tmpdir());
    snprintf(cmd, sizeof cmd,
             "test -e '%s/.done' || { '%s' synth --out '%s/caps' --subjects 2 --cameras 4 --frames 5 --size 32x48 "
             "--sapiens-size 8x8 --no-drop --no-seg --threads 1 > '%s.log' 2>&1 && '%s' pack --ava256 '%s/caps' --out "
             "'%s/clean' " PACK_ARGS " >> '%s.log' 2>&1 && touch '%s/.done'; }",
             base, AVAT3R_BINARY, base, base, AVAT3R_BINARY, base, base, base, base);
    CHECK(test_system(cmd) == 0, "could not make the clean captures and their pack (%s.log)", base);
    snprintf(caps, n, "%s/%s", test_tmpdir(), tag);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s/caps' '%s'", caps, base, caps);
    CHECK(test_system(cmd) == 0, "copy");
    return 0;
}

// Capture k's folder and name (in 256_ids.csv order).
static int capture_dir(const char *caps, int k, char *dir, size_t n, char *name, size_t nn) {
    char **dirs, err[1024];
    int nd;
    CHECK(!ava256_list_captures(caps, &dirs, &nd, err, sizeof err), "%s", err);
    CHECK(k < nd, "only %d captures", nd);
    snprintf(dir, n, "%s", dirs[k]);
    pack_capture_name(dirs[k], name, nn);
    ava256_free_list(dirs, nd);
    return 0;
}

// The member of (frame f, camera c) in capture `dir`: kind 0 the image, 1 the mask, 2 the DUSt3R map;
// zip gets the zip's path, member the member's name.
static int member_of(const char *dir, int f, int c, int kind, char *zip, size_t zn, char *member, size_t mn) {
    Ava256Capture cap;
    char err[1024];
    CHECK(!ava256_open(&cap, dir, 0, err, sizeof err), "%s", err);
    const char *id = cap.cams[c].calib.id;
    long long fid = (long long)cap.frames[f].id;
    if (kind == 0) snprintf(zip, zn, "%s/image/cam%s.zip", cap.dir, id), snprintf(member, mn, "cam%s/%06lld.avif", id, fid);
    if (kind == 1) snprintf(zip, zn, "%s/foreground_masks/cam%s.zip", cap.dir, id), snprintf(member, mn, "%06lld.avif", fid);
    if (kind == 2) snprintf(zip, zn, "%s/aux/dust3r/cam%s.zip", cap.dir, id), snprintf(member, mn, "%06lld.npy", fid);
    ava256_close(&cap);
    return 0;
}

// The shard at `path` against the clean pack of the same capture: the (frame, camera) pairs with bad[f·C + c]
// hold nothing (no image, mask or aux map; native K), every other pair has exactly the clean pair's image,
// mask, DUSt3R and Sapiens payloads and K.
static int compare_to_clean(const char *path, const char *dir, const char *name, const int *bad, int n_bad_expected) {
    char clean[1300], err[1024];
    Ava256Capture cap;
    CHECK(!ava256_open(&cap, dir, 0, err, sizeof err), "%s", err);
    snprintf(clean, sizeof clean, "%s/pkc/clean/%s.h5", test_tmpdir(), name);
    Shard a, b;
    CHECK(!shard_open(&a, path, err, sizeof err), "%s", err);
    CHECK(!shard_open(&b, clean, err, sizeof err), "%s", err);
    int F = a.m.n_frames, C = a.m.n_cams, W = a.m.W, H = a.m.H, na = a.m.sap_h * a.m.sap_w * a.m.sap_c, n_bad = 0;
    CHECK(F == b.m.n_frames && C == b.m.n_cams && W == b.m.W && H == b.m.H && na == b.m.sap_h * b.m.sap_w * b.m.sap_c,
          "sizes differ from the clean pack");
    size_t px = (size_t)W * H;
    uint8_t *ia = malloc(px * 3), *ib = malloc(px * 3);
    float *fa = malloc(4 * (px * 4 + (size_t)na)), *fb = malloc(4 * (px * 4 + (size_t)na));
    int fails = 0;
    for (int f = 0; f < F && !fails; f++)
        for (int c = 0; c < C && !fails; c++) {
            const double *Ka = a.m.K + ((size_t)f * C + c) * 9, *Kb = b.m.K + ((size_t)f * C + c) * 9;
            int r[2][4];
            r[0][0] = shard_get_image(&a, f, c, ia, err, sizeof err), r[1][0] = shard_get_image(&b, f, c, ib, err, sizeof err);
            int same = r[0][0] == r[1][0] && (r[0][0] != 0 || !memcmp(ia, ib, px * 3));
            r[0][1] = shard_get_mask(&a, f, c, ia, err, sizeof err), r[1][1] = shard_get_mask(&b, f, c, ib, err, sizeof err);
            same &= r[0][1] == r[1][1] && (r[0][1] != 0 || !memcmp(ia, ib, px));
            for (int k = 0; k < 2; k++) {
                int kind = k ? SHARD_SAPIENS : SHARD_DUST3R;
                size_t cnt = k ? (size_t)na : px * 4;
                r[0][2 + k] = shard_get_aux(&a, kind, f, c, fa, err, sizeof err);
                r[1][2 + k] = shard_get_aux(&b, kind, f, c, fb, err, sizeof err);
                same &= r[0][2 + k] == r[1][2 + k] && (r[0][2 + k] != 0 || !memcmp(fa, fb, 4 * cnt));
            }
            if (bad[f * C + c]) {
                n_bad++;
                int none = r[0][0] == 1 && r[0][1] == 1 && r[0][2] == 1 && r[0][3] == 1;
                if (!none || r[1][0] != 0 || memcmp(Ka, cap.cams[c].calib.K, 72))
                    fails = 1, fprintf(stderr, "    frame %d camera %d: not skipped, or K is not the native K\n", f, c);
            } else if (!same || memcmp(Ka, Kb, 72)) {
                fails = 1, fprintf(stderr, "    frame %d camera %d: differs from the clean pack\n", f, c);
            }
        }
    free(ia), free(ib), free(fa), free(fb);
    shard_close(&a), shard_close(&b);
    ava256_close(&cap);
    CHECK(!fails, "%s against %s", path, clean);
    CHECK(n_bad == n_bad_expected, "%d damaged pairs inside the shard, want %d", n_bad, n_bad_expected);
    return 0;
}

// Runs pack with `args`, output to `log` (and echoed, indented, when `echo`); returns its exit status.
static int run_pack_echo(const char *args, const char *log, int echo) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' pack %s > '%s' 2>&1", AVAT3R_BINARY, args, log);
    fflush(stdout), fflush(stderr);
    int st = system(cmd);
    char *t = echo ? test_read_text(log, NULL) : NULL;
    if (t) { // the pack's own lines, indented so the runner never reads them as its own
        for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n")) printf("      | %s\n", line);
        free(t);
    }
    return st == -1 ? -1 : WEXITSTATUS(st);
}
static int run_pack(const char *args, const char *log) { return run_pack_echo(args, log, 1); }

// Flipped bytes inside two AVIF members of one capture's image zips (libzip: CRC error): exactly those two
// images are skipped, counted as corrupt and named once each (zip, member, reason); the other 18 are packed
// bit-identically to the undamaged capture's pack.
static int test_pack_corrupt_flipped(void) {
    char caps[1024], dir[1300], name[256], zip[4400], member[256], args[4096], log[1300], shard[1600];
    if (corrupt_fixture("pkc_flip", caps, sizeof caps)) return 1;
    if (capture_dir(caps, 0, dir, sizeof dir, name, sizeof name)) return 1;
    const int damaged[2][2] = {{1, 0}, {3, 2}}; // (frame, camera)
    int bad[5 * 4] = {0};
    char named[2][4800];
    for (int k = 0; k < 2; k++) {
        if (member_of(dir, damaged[k][0], damaged[k][1], 0, zip, sizeof zip, member, sizeof member)) return 1;
        CHECK(!zip_damage(zip, member, 0), "damage %s", zip);
        snprintf(named[k], sizeof named[k], "%s: member '%s': read failed (CRC error)", zip, member);
        bad[damaged[k][0] * 4 + damaged[k][1]] = 1;
    }
    snprintf(log, sizeof log, "%s/pack.log", caps);
    snprintf(args, sizeof args, "--ava256 '%s' --out '%s/shards' --max-corrupt 0.1 " PACK_ARGS, dir, caps);
    CHECK(run_pack(args, log) == 0, "pack failed on 2 corrupt images of 20 with --max-corrupt 0.1");
    char *t = test_read_text(log, NULL);
    int lines = count_occurrences(t, "skipped (corrupt image)"), ok_count = strstr(t, "18 images (0 missing, 2 corrupt, 0 no mask, skipped)") != NULL;
    int ok_named = count_occurrences(t, named[0]) == 1 && count_occurrences(t, named[1]) == 1;
    int ok_summary = strstr(t, "20 images") == NULL && strstr(t, "18 images (0 missing, 2 corrupt, 0 no mask) in") != NULL;
    free(t);
    CHECK(lines == 2, "%d corrupt-image warnings, want 2", lines);
    CHECK(ok_named, "the warnings do not name the zip, member and CRC error once each ('%s')", named[0]);
    CHECK(ok_count && ok_summary, "the capture line or the summary does not count 18 images and 2 corrupt");
    snprintf(shard, sizeof shard, "%s/shards/%s.h5", caps, name);
    return compare_to_clean(shard, dir, name, bad, 2);
}

// Packs capture `dir` (of the copy `caps`) with --max-corrupt 0.1 and checks the result: exactly one warning
// each for named[0] and named[1], two corrupt warnings in all, the capture line holds `counted`, and the
// shard matches the clean pack except at the two pairs marked in `bad`.
static int pack_two_skipped(const char *caps, const char *dir, const char *name, char named[2][4800],
                            const char *counted, const int *bad) {
    char args[4096], log[1300], shard[1600];
    snprintf(log, sizeof log, "%s/pack.log", caps);
    snprintf(args, sizeof args, "--ava256 '%s' --out '%s/shards' --max-corrupt 0.1 " PACK_ARGS, dir, caps);
    CHECK(run_pack(args, log) == 0, "pack failed");
    char *t = test_read_text(log, NULL);
    int ok = count_occurrences(t, named[0]) == 1 && count_occurrences(t, named[1]) == 1 &&
             count_occurrences(t, "skipped (corrupt") == 2 && strstr(t, counted);
    free(t);
    CHECK(ok, "want exactly two warnings, '%s' and '%s', and '%s'", named[0], named[1], counted);
    snprintf(shard, sizeof shard, "%s/shards/%s.h5", caps, name);
    return compare_to_clean(shard, dir, name, bad, 2);
}

// A valid zip whose AVIF member is garbage (CRCs rewritten: libzip reads it, libavif refuses it), and a
// DUSt3R .npy member with flipped bytes: both images are skipped as corrupt, the rest packed as clean.
static int test_pack_corrupt_garbage(void) {
    char caps[1024], dir[1300], name[256], zip[4400], member[256], err[1024];
    char named[2][4800];
    if (corrupt_fixture("pkc_garbage", caps, sizeof caps)) return 1;
    if (capture_dir(caps, 1, dir, sizeof dir, name, sizeof name)) return 1;
    int bad[5 * 4] = {0};
    if (member_of(dir, 2, 1, 0, zip, sizeof zip, member, sizeof member)) return 1;
    CHECK(!zip_damage(zip, member, 1), "damage %s", zip);
    snprintf(named[0], sizeof named[0], "skipped (corrupt image): %s: member '%s': not a readable AVIF image", zip, member);
    bad[2 * 4 + 1] = 1;
    { // the zip itself is intact: the member reads with its length and CRC checked
        struct zip *z;
        CHECK(ava_zip_open(zip, &z, err, sizeof err) == AVA256_OK, "%s", err);
        uint8_t *buf = NULL;
        size_t cap = 0, len = 0;
        int rd = -2;
        for (int64_t i = 0; i < ava_zip_count(z); i++)
            if (!strcmp(ava_zip_name(z, i), member)) rd = ava_zip_read(z, zip, i, &buf, &cap, &len, err, sizeof err);
        zip_discard(z);
        free(buf);
        CHECK(rd == AVA256_OK, "the rewritten zip does not read: %s", rd == -2 ? "no member" : err);
    }
    if (member_of(dir, 0, 3, 2, zip, sizeof zip, member, sizeof member)) return 1;
    CHECK(!zip_damage(zip, member, 0), "damage %s", zip);
    snprintf(named[1], sizeof named[1], "skipped (corrupt DUSt3R map): %s: member '%s': read failed (CRC error)", zip, member);
    bad[0 * 4 + 3] = 1;
    return pack_two_skipped(caps, dir, name, named, "18 images (0 missing, 2 corrupt, 0 no mask, skipped)", bad);
}

// A corrupt mask skips its image (docs/data.md: an un-composited image among composited ones is not kept):
// one mask member with flipped bytes (CRC error), one valid zip member that is not AVIF.
static int test_pack_corrupt_mask(void) {
    char caps[1024], dir[1300], name[256], zip[4400], member[256];
    char named[2][4800];
    if (corrupt_fixture("pkc_mask", caps, sizeof caps)) return 1;
    if (capture_dir(caps, 0, dir, sizeof dir, name, sizeof name)) return 1;
    int bad[5 * 4] = {0};
    for (int k = 0; k < 2; k++) {
        int f = k ? 0 : 4, c = k ? 2 : 0;
        if (member_of(dir, f, c, 1, zip, sizeof zip, member, sizeof member)) return 1;
        CHECK(!zip_damage(zip, member, k), "damage %s", zip);
        snprintf(named[k], sizeof named[k], "skipped (corrupt mask): %s: member '%s': %s", zip, member,
                 k ? "not a readable AVIF image" : "read failed (CRC error)");
        bad[f * 4 + c] = 1;
    }
    return pack_two_skipped(caps, dir, name, named, "18 images (0 missing, 2 corrupt, 0 no mask, skipped), 18 masks", bad);
}

// No shard file or temporary of capture `name` in `out`.
static int no_shard(const char *out, const char *name) {
    char pat[10000];
    snprintf(pat, sizeof pat, "%s/%s.h5*", out, name);
    glob_t g;
    int r = glob(pat, 0, NULL, &g);
    if (r == 0) {
        fprintf(stderr, "    left behind: %s\n", g.gl_pathv[0]);
        globfree(&g);
    }
    return r == GLOB_NOMATCH;
}

// An image zip cut in the middle has lost its central directory (at the end): libzip cannot open it, so
// the capture fails with a message naming the zip (docs/data.md), no shard; the other capture is packed
// and pack exits 1.
static int test_pack_corrupt_truncated(void) {
    char caps[1024], dir[1300], name[256], name1[256], zip[4400], member[256], args[4096], log[1300], cmd[9200], err[1024];
    if (corrupt_fixture("pkc_trunc", caps, sizeof caps)) return 1;
    if (capture_dir(caps, 0, dir, sizeof dir, name, sizeof name)) return 1;
    if (capture_dir(caps, 1, cmd, sizeof cmd, name1, sizeof name1)) return 1;
    if (member_of(dir, 0, 1, 0, zip, sizeof zip, member, sizeof member)) return 1;
    snprintf(cmd, sizeof cmd, "truncate -s $(( $(stat -c %%s '%s') / 2 )) '%s'", zip, zip);
    CHECK(test_system(cmd) == 0, "truncate");
    snprintf(log, sizeof log, "%s/pack.log", caps);
    snprintf(args, sizeof args, "--ava256 '%s' --out '%s/shards' " PACK_ARGS, caps, caps);
    CHECK(run_pack(args, log) == 1, "pack did not exit 1 with a truncated zip");
    char want[4800];
    snprintf(want, sizeof want, "error: %s: not a readable zip archive", zip);
    char *t = test_read_text(log, NULL);
    int ok = strstr(t, want) && strstr(t, "truncated download?") && strstr(t, "1 captures packed, 0 already done, 1 failed");
    free(t);
    CHECK(ok, "want '%s ... truncated download?' and 1 packed, 1 failed", want);
    snprintf(cmd, sizeof cmd, "%s/shards", caps);
    CHECK(no_shard(cmd, name), "a shard or temporary of the failed capture is left");
    Shard sh;
    snprintf(cmd, sizeof cmd, "%s/shards/%s.h5", caps, name1);
    CHECK(!shard_open(&sh, cmd, err, sizeof err), "the undamaged capture was not packed: %s", err);
    shard_close(&sh);
    return 0;
}

// 6 of 20 images of one capture corrupt (30 %) with --max-corrupt 0.1: that capture stops with a message
// naming it and the flag, leaves no shard, the other capture is packed, pack exits 1. The default limit
// (0.01) refuses it too; --max-corrupt 1 packs the 14 intact images. Out-of-range values are refused.
static int test_pack_corrupt_over_limit(void) {
    char caps[1024], dir[1300], name[256], name1[256], zip[4400], member[256], args[4096], log[1300], path[4600], err[1024];
    if (corrupt_fixture("pkc_limit", caps, sizeof caps)) return 1;
    if (capture_dir(caps, 0, dir, sizeof dir, name, sizeof name)) return 1;
    if (capture_dir(caps, 1, path, sizeof path, name1, sizeof name1)) return 1;
    for (int k = 0; k < 6; k++) {
        if (member_of(dir, k % 5, (k * 3) % 4, 0, zip, sizeof zip, member, sizeof member)) return 1;
        CHECK(!zip_damage(zip, member, 0), "damage %s", zip);
    }
    snprintf(log, sizeof log, "%s/pack.log", caps);
    snprintf(args, sizeof args, "--ava256 '%s' --out '%s/shards' --max-corrupt 0.1 " PACK_ARGS, caps, caps);
    CHECK(run_pack(args, log) == 1, "pack did not exit 1 with 30%% of a capture's images corrupt");
    char want[1024];
    snprintf(want, sizeof want, "error: %s: ", name);
    char *t = test_read_text(log, NULL);
    const char *e = strstr(t, want);
    int warnings = count_occurrences(t, "skipped (corrupt image)");
    int ok = e && strstr(e, "corrupt images of its 20, more than --max-corrupt 0.1 allows (2)") &&
             strstr(t, "1 captures packed, 0 already done, 1 failed");
    free(t);
    CHECK(ok, "want '%s... corrupt images of its 20, more than --max-corrupt 0.1 allows (2)' and 1 packed, 1 failed", want);
    CHECK(warnings >= 3 && warnings <= 6, "%d corrupt-image warnings (packing stops after the 3rd; 2 workers)", warnings);
    snprintf(path, sizeof path, "%s/shards", caps);
    CHECK(no_shard(path, name), "a shard or temporary of the failed capture is left");
    Shard sh;
    snprintf(path, sizeof path, "%s/shards/%s.h5", caps, name1);
    CHECK(!shard_open(&sh, path, err, sizeof err), "the undamaged capture was not packed: %s", err);
    shard_close(&sh);
    // the default limit; then no limit
    snprintf(args, sizeof args, "--ava256 '%s' --out '%s/shards' " PACK_ARGS, dir, caps);
    CHECK(run_pack(args, log) == 1, "the default --max-corrupt 0.01 let 6 of 20 corrupt images through");
    t = test_read_text(log, NULL);
    ok = strstr(t, "1 corrupt images of its 20, more than --max-corrupt 0.01 allows (0)") != NULL;
    free(t);
    CHECK(ok, "the default limit's message");
    snprintf(args, sizeof args, "--ava256 '%s' --out '%s/shards' --max-corrupt 1 " PACK_ARGS, dir, caps);
    CHECK(run_pack(args, log) == 0, "--max-corrupt 1 did not pack the intact images");
    t = test_read_text(log, NULL);
    ok = strstr(t, "14 images (0 missing, 6 corrupt, 0 no mask, skipped)") && count_occurrences(t, "skipped (corrupt image)") == 6;
    free(t);
    CHECK(ok, "want 14 images packed, 6 corrupt named");
    const char *badv[] = {"1.5", "-0.1", "x", "0.1x"};
    for (int k = 0; k < 4; k++) {
        snprintf(args, sizeof args, "--ava256 '%s' --out '%s/shards' --max-corrupt %s", dir, caps, badv[k]);
        CHECK(run_pack_echo(args, log, 0) == 2, "--max-corrupt %s not refused", badv[k]);
        t = test_read_text(log, NULL);
        char wantv[256];
        snprintf(wantv, sizeof wantv, "--max-corrupt '%s': expected a number in [0, 1]", badv[k]);
        ok = strstr(t, wantv) != NULL;
        free(t);
        CHECK(ok, "--max-corrupt %s: the message does not say the range", badv[k]);
    }
    return 0;
}

// A valid lossless AVIF of w×h (a smooth pattern), malloc'd.
static uint8_t *avif_of_size(int w, int h, size_t *n) {
    uint8_t *rgb = malloc((size_t)w * h * 3);
    for (int i = 0; i < w * h * 3; i++) rgb[i] = (uint8_t)(40 + (i * 7) % 170);
    AvwAvifOpts ao = {0, 0, 8};
    uint8_t *b = avw_avif_rgb8(rgb, w, h, &ao, n);
    free(rgb);
    return b;
}

// The shard's pack counts (attributes missing_images, corrupt_images, no_mask_images) are m, k and nm.
static int shard_counts_are(const char *path, int64_t m, int64_t k, int64_t nm) {
    Shard sh;
    char err[1024];
    CHECK(!shard_open(&sh, path, err, sizeof err), "%s", err);
    int64_t got[3] = {sh.missing_images, sh.corrupt_images, sh.no_mask_images};
    shard_close(&sh);
    CHECK(got[0] == m && got[1] == k && got[2] == nm, "%s: attributes missing/corrupt/no_mask_images read %lld/%lld/%lld, "
          "want %lld/%lld/%lld", path, (long long)got[0], (long long)got[1], (long long)got[2], (long long)m, (long long)k,
          (long long)nm);
    return 0;
}

// The capture's image size is decided once over the capture (the size most images have), not by the first
// image a worker decodes: a capture whose FIRST image in (camera, frame) order is a valid AVIF of another size
// loses only that image, with 1 and with 2 workers; the rest is packed bit-identically to the clean capture,
// and the shard records 1 corrupt image. Two sizes equally common fail the capture with both named.
static int test_pack_first_image_wrong_size(void) {
    char caps[1024], dir[1300], name[256], zip[4400], member[256], args[4096], log[1300], shard[1600], named[4800];
    if (corrupt_fixture("pkc_size", caps, sizeof caps)) return 1;
    if (capture_dir(caps, 0, dir, sizeof dir, name, sizeof name)) return 1;
    size_t n;
    uint8_t *avif = avif_of_size(24, 36, &n);
    if (member_of(dir, 0, 0, 0, zip, sizeof zip, member, sizeof member)) return 1;
    int rz = test_zip_edit(zip, member, avif, n, 0);
    CHECK(rz == 0, "could not replace %s in %s", member, zip);
    snprintf(named, sizeof named, "skipped (corrupt image): %s: member '%s': image is 24x36, the capture's images are 32x48",
             zip, member);
    int bad[5 * 4] = {0};
    bad[0] = 1;
    for (int threads = 1; threads <= 2; threads++) {
        snprintf(log, sizeof log, "%s/pack%d.log", caps, threads);
        snprintf(args, sizeof args, "--ava256 '%s' --out '%s/shards%d' --max-corrupt 0.1 --size 16 --sapiens-size 4x4 "
                 "--quiet --threads %d", dir, caps, threads, threads);
        int rc = run_pack(args, log);
        char *t = test_read_text(log, NULL);
        int ok = count_occurrences(t, named) == 1 && count_occurrences(t, "skipped (corrupt") == 1 &&
                 strstr(t, "19 images (0 missing, 1 corrupt, 0 no mask, skipped)");
        free(t);
        CHECK(rc == 0 && ok, "%d worker(s): want exit 0 (got %d), one warning '%s' and 19 images, 1 corrupt", threads, rc,
              named);
        snprintf(shard, sizeof shard, "%s/shards%d/%s.h5", caps, threads, name);
        if (compare_to_clean(shard, dir, name, bad, 1) || shard_counts_are(shard, 0, 1, 0)) return 1;
    }
    // cameras 0 and 1 entirely of the other size: 10 images of each size, no size to trust
    for (int c = 0; c < 2; c++)
        for (int f = 0; f < 5; f++) {
            if (member_of(dir, f, c, 0, zip, sizeof zip, member, sizeof member)) return 1;
            rz = test_zip_edit(zip, member, avif, n, 0);
            CHECK(rz == 0, "could not replace %s in %s", member, zip);
        }
    free(avif);
    snprintf(log, sizeof log, "%s/pack_tie.log", caps);
    snprintf(args, sizeof args, "--ava256 '%s' --out '%s/shards_tie' --max-corrupt 1 " PACK_ARGS, dir, caps);
    CHECK(run_pack(args, log) == 1, "pack did not fail a capture with as many images of 24x36 as of 32x48");
    char *t = test_read_text(log, NULL);
    char want[1600];
    snprintf(want, sizeof want, "%s/decoder/image: as many images are 24x36 as 32x48 (10 each), so the capture's image "
             "size is ambiguous", dir);
    int ok = strstr(t, want) != NULL;
    free(t);
    CHECK(ok, "the message does not say '%s'", want);
    snprintf(shard, sizeof shard, "%s/shards_tie", caps);
    CHECK(no_shard(shard, name), "a shard or temporary of the failed capture is left");
    return 0;
}

// A camera with a mask zip that lacks the member of one frame: that image is skipped (not kept with the
// dome behind the head), counted as "no mask" apart from missing and corrupt, and named once. With a
// dropped image and a corrupt one beside it, the capture line, the summary, the shard's attributes and
// `avat3r inspect` all count 1 missing, 1 corrupt, 1 no mask; the rest is packed as from the clean capture.
// A camera without any mask zip keeps all its images, none composited (as before).
static int test_pack_missing_mask_member(void) {
    char caps[1024], dir[1300], dir1[1300], name[256], name1[256], zip[4400], member[256], args[4096], log[1300];
    char shard[1600], named[4800], cmd[8192];
    if (corrupt_fixture("pkc_nomask", caps, sizeof caps)) return 1;
    if (capture_dir(caps, 0, dir, sizeof dir, name, sizeof name)) return 1;
    if (capture_dir(caps, 1, dir1, sizeof dir1, name1, sizeof name1)) return 1;
    int bad[5 * 4] = {0}, rz;
    Ava256Capture cap;
    char err[1024];
    CHECK(!ava256_open(&cap, dir, 0, err, sizeof err), "%s", err);
    long long fid = (long long)cap.frames[2].id;
    char cid[AVA256_ID_MAX];
    snprintf(cid, sizeof cid, "%s", cap.cams[1].calib.id);
    ava256_close(&cap);
    // (frame 2, camera 1): no mask member
    if (member_of(dir, 2, 1, 1, zip, sizeof zip, member, sizeof member)) return 1;
    rz = test_zip_edit(zip, member, NULL, 0, 0);
    CHECK(rz == 0, "could not delete %s from %s", member, zip);
    snprintf(named, sizeof named, "warning: %s: frame %lld camera %s: skipped (no mask): %s: no member for frame %lld", name,
             fid, cid, zip, fid);
    bad[2 * 4 + 1] = 1;
    // (frame 4, camera 3): a dropped image; (frame 0, camera 2): a corrupt one
    if (member_of(dir, 4, 3, 0, zip, sizeof zip, member, sizeof member)) return 1;
    rz = test_zip_edit(zip, member, NULL, 0, 0);
    CHECK(rz == 0, "could not delete %s from %s", member, zip);
    bad[4 * 4 + 3] = 1;
    if (member_of(dir, 0, 2, 0, zip, sizeof zip, member, sizeof member)) return 1;
    CHECK(!zip_damage(zip, member, 0), "damage %s", zip);
    bad[0 * 4 + 2] = 1;
    // the other capture: camera 0 has no mask zip at all
    if (member_of(dir1, 0, 0, 1, zip, sizeof zip, member, sizeof member)) return 1;
    CHECK(unlink(zip) == 0, "rm %s", zip);
    snprintf(log, sizeof log, "%s/pack.log", caps);
    snprintf(args, sizeof args, "--ava256 '%s' --out '%s/shards' --max-corrupt 0.1 " PACK_ARGS, caps, caps);
    int rc = run_pack(args, log);
    char *t = test_read_text(log, NULL);
    int ok_warn = count_occurrences(t, named) == 1 && count_occurrences(t, "skipped (no mask)") == 1;
    int ok_line = strstr(t, "17 images (1 missing, 1 corrupt, 1 no mask, skipped), 17 masks") != NULL;
    int ok_line1 = strstr(t, "20 images (0 missing, 0 corrupt, 0 no mask, skipped), 15 masks") != NULL;
    int ok_sum = strstr(t, "37 images (1 missing, 1 corrupt, 1 no mask) in") != NULL;
    free(t);
    CHECK(rc == 0, "pack failed (exit %d)", rc);
    CHECK(ok_warn, "want exactly one warning '%s'", named);
    CHECK(ok_line && ok_sum, "the capture line or the summary does not count 17 images, 1 missing, 1 corrupt, 1 no mask");
    CHECK(ok_line1, "the camera without a mask zip did not keep its 5 images un-composited (want 20 images, 15 masks)");
    snprintf(shard, sizeof shard, "%s/shards/%s.h5", caps, name);
    if (compare_to_clean(shard, dir, name, bad, 3) || shard_counts_are(shard, 1, 1, 1)) return 1;
    snprintf(cmd, sizeof cmd, "'%s' inspect '%s' | tr -d ' \t\n' | grep -q '\"missing_images\":3,\"missing_why\":{"
             "\"dropped\":1,\"corrupt\":1,\"no_mask\":1}'", AVAT3R_BINARY, shard);
    CHECK(test_system(cmd) == 0, "avat3r inspect does not print the shard's missing/corrupt/no-mask counts");
    snprintf(shard, sizeof shard, "%s/shards/%s.h5", caps, name1);
    return shard_counts_are(shard, 0, 0, 0);
}

// Part labels (segmentation_parts) through pack: every stored label image is the capture's label PNG cropped
// with the image's square and resampled nearest, pixel by pixel: output (x, y) = source (x0 + floor((x + 0.5)·
// side/S), y0 + floor((y + 0.5)·side/S)), with (x0, y0) recovered from the stored K. (frame 0, camera 0) gets
// hash-like labels, where any averaging shows. A label PNG of the wrong size and a truncated one keep their
// images WITHOUT labels, each counted and named once (zip, member, reason); --no-parts stores none.
static int test_pack_part_labels(void) {
    char base[1024], caps[1100], dir[1300], name[256], cmd[8192], args[4096], log[1300], shard[1600], err[1024];
    snprintf(base, sizeof base, "%s/pkparts", test_tmpdir());
    snprintf(cmd, sizeof cmd, "'%s' synth --out '%s/caps' --subjects 1 --cameras 2 --frames 3 --size 32x48 --no-aux "
             "--no-drop --threads 1 > '%s.log' 2>&1", AVAT3R_BINARY, base, base);
    CHECK(test_system(cmd) == 0, "synth failed (%s.log)", base);
    snprintf(caps, sizeof caps, "%s/caps", base);
    if (capture_dir(caps, 0, dir, sizeof dir, name, sizeof name)) return 1;
    enum { IW = 32, IH = 48, S = 16, SIDE = 24 }; // --crop 0.75 of the short side 32: side 24 -> 16, 1.5 px a step
    Ava256Capture cap;
    CHECK(!ava256_open(&cap, dir, 0, err, sizeof err), "%s", err);
    CHECK(cap.has_parts && cap.n_cams == 2 && cap.n_frames == 3, "synth wrote no part labels");
    char zip[2][4400], member[3][2][64];
    for (int c = 0; c < 2; c++) {
        snprintf(zip[c], sizeof zip[c], "%s/segmentation_parts/cam%s.zip", cap.dir, cap.cams[c].calib.id);
        for (int f = 0; f < 3; f++)
            snprintf(member[f][c], sizeof member[f][c], "cam%s/%06lld.png", cap.cams[c].calib.id, (long long)cap.frames[f].id);
    }
    ava256_close(&cap);
    uint8_t lab[IW * IH];
    for (int y = 0; y < IH; y++)
        for (int x = 0; x < IW; x++) lab[y * IW + x] = (uint8_t)((x * 73 + y * 151 + x * y * 17) >> 1);
    size_t n;
    uint8_t *png = avw_png_gray8(lab, IW, IH, &n);
    CHECK(test_zip_edit(zip[0], member[0][0], png, n, 0) == 0, "replace %s", member[0][0]);
    free(png);
    png = avw_png_gray8(lab, 16, 24, &n); // (frame 1, camera 0): labels of another size
    CHECK(test_zip_edit(zip[0], member[1][0], png, n, 0) == 0, "replace %s", member[1][0]);
    free(png);
    png = avw_png_gray8(lab, IW, IH, &n); // (frame 2, camera 1): cut in half
    CHECK(test_zip_edit(zip[1], member[2][1], png, n / 2, 0) == 0, "replace %s", member[2][1]);
    free(png);
    snprintf(log, sizeof log, "%s/pack.log", base);
    snprintf(args, sizeof args, "--ava256 '%s' --out '%s/shards' --size 16 --crop 0.75 --quiet --threads 2", dir, base);
    CHECK(run_pack(args, log) == 0, "pack failed");
    char named[2][4800];
    snprintf(named[0], sizeof named[0], "kept without part labels (damaged labels): %s: member '%s': labels are 16x24, the "
             "image is 32x48", zip[0], member[1][0]);
    snprintf(named[1], sizeof named[1], "kept without part labels (damaged labels): %s: member '%s': PNG decode failed",
             zip[1], member[2][1]);
    char *t = test_read_text(log, NULL);
    int ok_warn = count_occurrences(t, named[0]) == 1 && count_occurrences(t, named[1]) == 1 &&
                  count_occurrences(t, "part labels (damaged") == 2 && !strstr(t, "skipped (");
    int ok_line = strstr(t, "6 images (0 missing, 0 corrupt, 0 no mask, skipped), 6 masks, 4 part labels (2 damaged, "
                            "left out)") != NULL;
    free(t);
    CHECK(ok_warn, "want one warning each: '%s' and '%s'", named[0], named[1]);
    CHECK(ok_line, "the capture line does not count 6 images, 4 part labels, 2 damaged");
    snprintf(shard, sizeof shard, "%s/shards/%s.h5", base, name);
    Shard sh;
    CHECK(!shard_open(&sh, shard, err, sizeof err), "%s", err);
    CHECK(!ava256_open(&cap, dir, 0, err, sizeof err), "%s", err);
    CHECK(sh.has[SHARD_PARTS] && sh.m.W == S, "no labels in the shard");
    uint8_t rgb[S * S * 3], got[S * S];
    Ava256Image src = {0};
    int compared = 0, offset = 0;
    for (int f = 0; f < 3; f++)
        for (int c = 0; c < 2; c++) {
            CHECK(shard_get_image(&sh, f, c, rgb, err, sizeof err) == 0, "frame %d camera %d: image not kept: %s", f, c, err);
            int r = shard_get_parts(&sh, f, c, got, err, sizeof err), damaged = (f == 1 && c == 0) || (f == 2 && c == 1);
            CHECK(r == damaged, "frame %d camera %d: labels %d, want %d (%s)", f, c, r, damaged, err);
            if (damaged) continue;
            CHECK(ava256_read_parts(&cap, c, f, &src, err, sizeof err) == AVA256_OK, "%s", err);
            double Kimg[9];
            ava256_scale_K(cap.cams[c].calib.K, IW, IH, Kimg);
            const double *Kc = sh.m.K + ((size_t)f * 2 + c) * 9;
            long x0 = lround(Kimg[2] - Kc[2] * SIDE / S), y0 = lround(Kimg[5] - Kc[5] * SIDE / S);
            CHECK(x0 >= 0 && x0 <= IW - SIDE && y0 >= 0 && y0 <= IH - SIDE, "crop origin %ld,%ld", x0, y0);
            offset += x0 > 0 && y0 > 0;
            for (int y = 0; y < S; y++)
                for (int x = 0; x < S; x++) {
                    long sx = x0 + (long)floor((x + 0.5) * SIDE / S), sy = y0 + (long)floor((y + 0.5) * SIDE / S);
                    CHECK(got[y * S + x] == src.px[sy * IW + sx], "frame %d camera %d: label (%d, %d) is %d, source (%ld, %ld) "
                          "is %d", f, c, x, y, got[y * S + x], sx, sy, src.px[sy * IW + sx]);
                }
            if (f == 0 && c == 0) CHECK(!memcmp(src.px, lab, sizeof lab), "the hand-made labels did not read back");
            compared++;
        }
    printf("    %d label images equal the nearest-resampled crop of their PNG (%d crops off both top and left)\n",
           compared, offset);
    CHECK(offset > 0, "no crop with an offset: the crop origin is not tested");
    ava256_image_free(&src);
    ava256_close(&cap);
    shard_close(&sh);
    // --no-parts: no labels stored, none read (so no warnings either)
    snprintf(args, sizeof args, "--ava256 '%s' --out '%s/shards_np' --size 16 --crop 0.75 --quiet --no-parts", dir, base);
    CHECK(run_pack(args, log) == 0, "pack --no-parts failed");
    t = test_read_text(log, NULL);
    int ok = strstr(t, "6 masks, 0 part labels (0 damaged, left out)") && !strstr(t, "warning");
    free(t);
    CHECK(ok, "--no-parts: want 0 part labels and no warning");
    snprintf(shard, sizeof shard, "%s/shards_np/%s.h5", base, name);
    CHECK(!shard_open(&sh, shard, err, sizeof err), "%s", err);
    ok = !sh.has[SHARD_PARTS] && sh.has[SHARD_IMAGE] && shard_get_parts(&sh, 0, 0, got, err, sizeof err) == 1;
    shard_close(&sh);
    CHECK(ok, "--no-parts: the shard has labels");
    return 0;
}

// Numbers on the command line are read whole and range-checked: a bad value is refused with exit 2 and a
// message naming the flag and the value (atoi/atof read "12abc" as 12 and "0.6x" as 0.6).
static int test_pack_strict_numbers(void) {
    char args[4096], log[1300];
    const char *bad[][2] = {{"--size", "12abc"}, {"--size", "4"},       {"--size", ""},          {"--quality", "92.5"},
                            {"--quality", "0"},  {"--threads", "2x"},    {"--threads", "-1"},     {"--crop", "0.6x"},
                            {"--crop", "nan"},   {"--crop", "0"},        {"--max-corrupt", "1e"}, {"--sapiens-size", "8x8x"},
                            {"--sapiens-size", "8"}, {"--sapiens-size", "+8x8"}, {"--background", "1,1,1x"},
                            {"--background", "2,0,0"}};
    snprintf(log, sizeof log, "%s/strict.log", test_tmpdir());
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        snprintf(args, sizeof args, "--ava256 /nonexistent --out '%s/strict' %s '%s'", test_tmpdir(), bad[k][0], bad[k][1]);
        int rc = run_pack_echo(args, log, 0);
        char want[256];
        snprintf(want, sizeof want, "avat3r pack: %s '%s': expected", bad[k][0], bad[k][1]);
        char *t = test_read_text(log, NULL);
        int ok = t && strstr(t, want) != NULL;
        free(t);
        CHECK(rc == 2 && ok, "%s '%s': exit %d (want 2), or no message '%s...'", bad[k][0], bad[k][1], rc, want);
    }
    // good values pass the parser (the capture folder does not exist: exit 1, not 2)
    snprintf(args, sizeof args, "--ava256 /nonexistent --out '%s/strict' --size 16 --quality 90 --threads 0 --crop .5 "
             "--max-corrupt 1 --sapiens-size 8x6 --background 0,0.5,1 --quiet", test_tmpdir());
    int rc = run_pack_echo(args, log, 0);
    CHECK(rc == 1, "good values: exit %d, want 1 (no such capture)", rc);
    return 0;
}

// The DUSt3R/Sapiens precompute scripts' writers against what synth writes (stand-in arrays; the
// networks are not installed here): tools/reference/precompute_selftest.py.
static int test_precompute_writers(void) {
    CHECK(test_python_script("tools/reference/precompute_selftest.py") == 0, "tools/reference/precompute_selftest.py failed");
    return 0;
}

const TestCase pack_tests[] = {
    {"pack_crop", test_pack_crop},
    {"pack_empty_sapiens_map", test_pack_empty_sapiens},
    {"pack_corrupt_flipped_image_bytes", test_pack_corrupt_flipped},
    {"pack_corrupt_garbage_avif_and_dust3r", test_pack_corrupt_garbage},
    {"pack_corrupt_mask", test_pack_corrupt_mask},
    {"pack_corrupt_truncated_zip", test_pack_corrupt_truncated},
    {"pack_corrupt_over_limit", test_pack_corrupt_over_limit},
    {"pack_first_image_wrong_size", test_pack_first_image_wrong_size},
    {"pack_missing_mask_member", test_pack_missing_mask_member},
    {"pack_part_labels", test_pack_part_labels},
    {"pack_strict_number_options", test_pack_strict_numbers},
    {"data/precompute_scripts_writers", test_precompute_writers},
    {"data/pack_fixture_resumable", test_pack_fixture},
    {NULL, NULL},
};
