// cmd_render.c — `avat3r render --ply F --camera ... --out img.png`: look at a PLY with the project's
// own rasterizer.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "batch_random.h"
#include "cli.h"
#include "ply.h"
#include "raster.h"
#include "png_write.h"

static int parse_vec(const char *s, double *v, int n) {
    char *end;
    for (int i = 0; i < n; i++) {
        v[i] = strtod(s, &end);
        if (end == s || (i < n - 1 && *end != ',')) return -1;
        s = end + 1;
    }
    return *end == 0 ? 0 : -1;
}

static const char *USAGE =
    "--ply FILE --out IMG.png [--camera ex,ey,ez[,tx,ty,tz]] [--fov DEG] [--size WxH] [--bg r,g,b]\n"
    "  The camera looks from eye e at target t (default: the centre of the Gaussians' bounds); without\n"
    "  --camera it sits 3 bounding radii in front (−z) of the centre. Image y runs along world −y.";

int cmd_render(int argc, char **argv) {
    const char *ply = NULL, *out = NULL, *cam = NULL, *size = "512x512", *bgs = "1,1,1";
    double fov = 30;
    for (int i = 1; i < argc; i++) {
        int has = i + 1 < argc;
        if (!strcmp(argv[i], "--help")) {
            printf("usage: avat3r render %s\n", USAGE);
            return 0;
        } else if (!strcmp(argv[i], "--ply") && has) ply = argv[++i];
        else if (!strcmp(argv[i], "--out") && has) out = argv[++i];
        else if (!strcmp(argv[i], "--camera") && has) cam = argv[++i];
        else if (!strcmp(argv[i], "--fov") && has) fov = atof(argv[++i]);
        else if (!strcmp(argv[i], "--size") && has) size = argv[++i];
        else if (!strcmp(argv[i], "--bg") && has) bgs = argv[++i];
        else if (!strcmp(argv[i], "--device") && has && !strcmp(argv[i + 1], "cpu")) i++;
        else {
            fprintf(stderr, "avat3r render: unknown or incomplete option '%s'\nusage: avat3r render %s\n", argv[i], USAGE);
            return 2;
        }
    }
    int W = 0, H = 0;
    double bg[3];
    if (!ply || !out || sscanf(size, "%dx%d", &W, &H) != 2 || W < 1 || H < 1 || W > 16384 || H > 16384 ||
        parse_vec(bgs, bg, 3) || !(fov > 0 && fov < 179)) {
        fprintf(stderr, "avat3r render: need --ply and --out; --size WxH (1..16384), --bg r,g,b, --fov in (0,179)\n");
        return 2;
    }
    char err[1024];
    PlyGaussians p;
    if (ply_read(ply, &p, err, sizeof err)) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    size_t n = p.n;
    float *means = mallocCheck(12 * n + 4), *quats = mallocCheck(16 * n + 4), *scales = mallocCheck(12 * n + 4);
    float *opac = mallocCheck(4 * n + 4), *cols = mallocCheck(12 * n + 4);
    ply_to_activated(&p, means, quats, scales, opac, cols);
    double lo[3] = {1e30, 1e30, 1e30}, hi[3] = {-1e30, -1e30, -1e30};
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 3; k++)
            if (isfinite(means[i * 3 + k])) lo[k] = fmin(lo[k], means[i * 3 + k]), hi[k] = fmax(hi[k], means[i * 3 + k]);
    double ctr[3], rad = 0, eye[3], tgt[3], v6[6];
    for (int k = 0; k < 3; k++) ctr[k] = n ? 0.5 * (lo[k] + hi[k]) : 0, rad = fmax(rad, n ? 0.5 * (hi[k] - lo[k]) : 1);
    memcpy(tgt, ctr, sizeof ctr);
    if (cam && !parse_vec(cam, v6, 6)) memcpy(eye, v6, 24), memcpy(tgt, v6 + 3, 24);
    else if (cam && !parse_vec(cam, v6, 3)) memcpy(eye, v6, 24);
    else if (cam) {
        fprintf(stderr, "avat3r render: --camera wants ex,ey,ez or ex,ey,ez,tx,ty,tz\n");
        return 2;
    } else eye[0] = ctr[0], eye[1] = ctr[1], eye[2] = ctr[2] - 3 * fmax(rad, 1e-3);
    double w2c[12], f = 0.5 * H / tan(fov * M_PI / 360), K[9] = {f, 0, W / 2.0, 0, f, H / 2.0, 0, 0, 1};
    camera_look_at(w2c, eye, tgt);
    float w2cf[12], Kf[9], bgf[3] = {(float)bg[0], (float)bg[1], (float)bg[2]};
    for (int i = 0; i < 12; i++) w2cf[i] = (float)w2c[i];
    for (int i = 0; i < 9; i++) Kf[i] = (float)K[i];
    RasterDims d = {1, (int)n, 1, W, H, 3};
    Raster r;
    raster_build(&r, d, 16); // generous: a close-up view puts one Gaussian on many tiles
    RasterIn in = {means, quats, scales, opac, cols, w2cf, Kf, bgf};
    raster_forward(&r, &in);
    png_write_rgbf(out, r.image, W, H);
    printf("rendered %zu Gaussians (%ld invalid, %ld culled) to %s (%dx%d), eye (%.3f, %.3f, %.3f)\n", n, r.n_invalid,
           r.n_culled, out, W, H, eye[0], eye[1], eye[2]);
    raster_free(&r);
    ply_free(&p);
    free(means), free(quats), free(scales), free(opac), free(cols);
    return 0;
}
