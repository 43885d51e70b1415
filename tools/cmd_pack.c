// cmd_pack.c — `avat3r pack`: ava256 captures -> one HDF5 shard each (data/pack.c). Resumable: a shard
// that already opens is kept, a stale temporary file is redone; each shard appears atomically.
#include <ctype.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/timer.h"
#include "../common/util.h"
#include "ava256.h"
#include "cli.h"
#include "pack.h"
#include "shard.h"

static const char *USAGE =
    "--ava256 DIR --out SHARDS [--size 512] [--quality 92] [--cameras ID,ID,...] [--subjects SID,...]\n"
    "       [--threads N] [--background r,g,b] [--sapiens-size WxH] [--crop F] [--max-corrupt F] [--no-parts] [--quiet]\n"
    "  --crop F: the square crop around the projected head is F times the image's short side, in (0, 1] (default 1).\n"
    "  --size 8..4096, --quality 1..100, --threads 0..1024 (0 = one per core), --background r,g,b in [0, 1].\n"
    "  An image is skipped (counted as no mask) when its camera has a mask zip without a member for its frame.\n"
    "  --max-corrupt F: a corrupt image (its image, mask, DUSt3R or Sapiens member does not read or decode) is\n"
    "    skipped, counted and named in a warning; a capture with more than F of its images corrupt is not\n"
    "    packed (default 0.01; 0 = none tolerated, 1 = no limit). Pack exits 1 when a capture failed.\n"
    "  Part labels (segmentation_parts) are stored where present, cropped like the image and resampled nearest;\n"
    "    a damaged label member keeps its image without labels (counted, named in a warning). --no-parts: none.\n"
    "  DIR: a release root holding 256_ids.csv, or one capture folder. One SHARDS/<capture>.h5 per capture.";

// Converts the expression-code pickle when its sidecar is missing; says how to do it by hand otherwise.
static int ensure_sidecar(const char *capdir) {
    char side[4200], pkl[4200], dec[4096];
    snprintf(dec, sizeof dec, "%s", capdir);
    struct stat st;
    snprintf(side, sizeof side, "%s/decoder", capdir);
    if (stat(side, &st) == 0 && S_ISDIR(st.st_mode)) snprintf(dec, sizeof dec, "%s/decoder", capdir);
    snprintf(side, sizeof side, "%s/%s", dec, AVA256_EXPR_SIDECAR);
    snprintf(pkl, sizeof pkl, "%s/%s", dec, AVA256_EXPR_PKL);
    if (stat(side, &st) == 0 || stat(pkl, &st) != 0) return 0; // done already, or nothing to convert
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "'%s' '%s/tools/ava256_expr_codes.py' '%s'", cli_python(), cli_source_root(), dec);
    fprintf(stderr, "converting expression codes: %s\n", cmd);
    if (system(cmd) != 0) {
        fprintf(stderr,
                "error: %s: could not convert the expression codes. Run by hand (needs python3 and numpy; torch if "
                "the pickle holds torch tensors):\n  python3 tools/ava256_expr_codes.py '%s'\n",
                pkl, dec);
        return -1;
    }
    return 0;
}

static int split_list(char *s, const char **out, int max) {
    int n = 0;
    for (char *t = strtok(s, ","); t && n < max; t = strtok(NULL, ",")) out[n++] = t;
    return n;
}

int cmd_pack(int argc, char **argv) {
    const char *root = NULL, *out = NULL;
    char *cams_arg = NULL, *subj_arg = NULL;
    PackOptions o = {512, 92, {1, 1, 1}, NULL, 0, 0, 0, 64, 64, 1.0, 0.01, 0};
    for (int i = 1; i < argc; i++) {
        int has = i + 1 < argc, bad = 0;
        const char *a = argv[i];
        if (!strcmp(a, "--help")) {
            printf("usage: avat3r pack %s\n", USAGE);
            return 0;
        } else if (!strcmp(a, "--ava256") && has) root = argv[++i];
        else if (!strcmp(a, "--out") && has) out = argv[++i];
        // numbers are read whole ("12abc" and "0.6x" are refused, not read as 12 and 0.6), ranges checked here
        else if (!strcmp(a, "--size") && has) bad = cli_parse_int("pack", a, argv[++i], 8, 4096, &o.size);
        else if (!strcmp(a, "--quality") && has) bad = cli_parse_int("pack", a, argv[++i], 1, 100, &o.quality);
        else if (!strcmp(a, "--threads") && has) bad = cli_parse_int("pack", a, argv[++i], 0, 1024, &o.threads);
        else if (!strcmp(a, "--cameras") && has) cams_arg = argv[++i];
        else if (!strcmp(a, "--subjects") && has) subj_arg = argv[++i];
        else if (!strcmp(a, "--quiet")) o.quiet = 1;
        else if (!strcmp(a, "--no-parts")) o.no_parts = 1;
        else if (!strcmp(a, "--crop") && has) bad = cli_parse_double("pack", a, argv[++i], 0, 1, 1, &o.crop);
        else if (!strcmp(a, "--max-corrupt") && has) bad = cli_parse_double("pack", a, argv[++i], 0, 1, 0, &o.max_corrupt);
        else if (!strcmp(a, "--sapiens-size") && has) {
            const char *v = argv[++i];
            char *x = NULL, *end = NULL;
            long sw = isdigit((unsigned char)v[0]) ? strtol(v, &x, 10) : 0;
            long sh = x && *x == 'x' && isdigit((unsigned char)x[1]) ? strtol(x + 1, &end, 10) : 0;
            o.sapiens_w = (int)(sw > 0 && sw <= 1024 ? sw : 0), o.sapiens_h = (int)(sh > 0 && sh <= 1024 ? sh : 0);
            if (!end || *end || !o.sapiens_w || !o.sapiens_h) {
                fprintf(stderr, "avat3r pack: --sapiens-size '%s': expected WxH, each 1..1024\n", v);
                bad = 1;
            }
        } else if (!strcmp(a, "--background") && has) {
            const char *v = argv[++i];
            int end = -1;
            if (sscanf(v, "%lf,%lf,%lf%n", &o.background[0], &o.background[1], &o.background[2], &end) != 3 || v[end] ||
                !(o.background[0] >= 0 && o.background[0] <= 1 && o.background[1] >= 0 && o.background[1] <= 1 &&
                  o.background[2] >= 0 && o.background[2] <= 1)) {
                fprintf(stderr, "avat3r pack: --background '%s': expected r,g,b, each in [0, 1]\n", v);
                bad = 1;
            }
        } else {
            fprintf(stderr, "avat3r pack: unknown or incomplete option '%s'\nusage: avat3r pack %s\n", a, USAGE);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "usage: avat3r pack %s\n", USAGE);
            return 2;
        }
    }
    if (!root || !out) {
        fprintf(stderr, "avat3r pack: need --ava256 and --out\nusage: avat3r pack %s\n", USAGE);
        return 2;
    }
    const char *cams[1024], *subjects[1024];
    int n_subj = 0;
    if (cams_arg) o.n_cameras = split_list(cams_arg, cams, 1024), o.cameras = cams;
    if (subj_arg) n_subj = split_list(subj_arg, subjects, 1024);
    if (mkdir(out, 0755) != 0 && access(out, W_OK) != 0) {
        fprintf(stderr, "error: %s: cannot create or write the output folder\n", out);
        return 1;
    }
    // the captures: a release root (256_ids.csv) or a single capture folder
    char **dirs = NULL, err[2048], ids[4200];
    int n = 0;
    snprintf(ids, sizeof ids, "%s/256_ids.csv", root);
    if (access(ids, R_OK) == 0) {
        if (ava256_list_captures(root, &dirs, &n, err, sizeof err)) {
            fprintf(stderr, "error: %s\n", err);
            return 1;
        }
    } else {
        dirs = (char **)mallocCheck(sizeof(char *));
        dirs[0] = strdup(root);
        n = 1;
    }
    int packed = 0, skipped = 0, failed = 0;
    PackStats tot = {0};
    double t0 = time_now_s();
    for (int i = 0; i < n; i++) {
        char base[1024], path[5200];
        pack_capture_name(dirs[i], base, sizeof base);
        int want = n_subj == 0;
        for (int k = 0; k < n_subj; k++) want |= strstr(base, subjects[k]) != NULL;
        if (!want) continue;
        snprintf(path, sizeof path, "%s/%s.h5", out, base);
        Shard sh;
        if (access(path, R_OK) == 0 && shard_open(&sh, path, err, sizeof err) == 0) { // resumable: keep
            shard_close(&sh);
            skipped++;
            continue;
        }
        // temporaries of a killed run (another pid) are never taken for a shard: remove them
        char pat[5300];
        snprintf(pat, sizeof pat, "%s.tmp.*", path);
        glob_t g;
        if (glob(pat, 0, NULL, &g) == 0) {
            for (size_t k = 0; k < g.gl_pathc; k++) unlink(g.gl_pathv[k]);
            globfree(&g);
        }
        if (ensure_sidecar(dirs[i])) {
            failed++;
            continue;
        }
        PackStats st;
        fprintf(stderr, "[%d/%d] %s\n", i + 1, n, base);
        if (pack_capture(dirs[i], path, &o, &st, err, sizeof err)) {
            fprintf(stderr, "error: %s\n", err);
            failed++;
            continue;
        }
        packed++;
        tot.images += st.images, tot.missing_images += st.missing_images, tot.masks += st.masks;
        tot.corrupt_images += st.corrupt_images, tot.no_mask_images += st.no_mask_images;
        printf("%s: %lld frames x %lld cameras, %lld images (%lld missing, %lld corrupt, %lld no mask, skipped), %lld "
               "masks, %lld part labels (%lld damaged, left out), %lld DUSt3R and %lld Sapiens maps\n",
               path, (long long)st.frames, (long long)st.cameras, (long long)st.images, (long long)st.missing_images,
               (long long)st.corrupt_images, (long long)st.no_mask_images, (long long)st.masks, (long long)st.parts,
               (long long)st.bad_parts, (long long)st.dust3r, (long long)st.sapiens);
    }
    printf("pack: %d captures packed, %d already done, %d failed; %lld images (%lld missing, %lld corrupt, %lld no mask) "
           "in %.1f s\n",
           packed, skipped, failed, (long long)tot.images, (long long)tot.missing_images, (long long)tot.corrupt_images,
           (long long)tot.no_mask_images, time_now_s() - t0);
    ava256_free_list(dirs, n);
    return failed ? 1 : 0;
}
