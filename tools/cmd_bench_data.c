// cmd_bench_data.c — `avat3r bench data`: decoding throughput from a packed shard (JPEG images at the
// training size), one thread and all threads, in decoded images per second per core.
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <avif/avif.h>

#include "../common/rng.h"
#include "../common/timer.h"
#include "../common/util.h"
#include "cli.h"
#include "ava256.h"
#include "loader.h"
#include "shard.h"

// A photo-like test image: smooth shading plus fine noise, so JPEG sizes resemble real captures.
static void make_image(uint8_t *rgb, int W, int H, int seed) {
    Rng r = rng_make((uint64_t)seed, 9);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int k = 0; k < 3; k++) {
                double v = 120 + 80 * sin(0.013 * x + 0.007 * y * (k + 1) + seed) + 12 * rng_next_normal(&r);
                rgb[((size_t)y * W + x) * 3 + k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
}

// Raw AVIF decoding (what streaming the release without packing costs): lossy 4:2:0 files like the real
// captures, decoded with the reader's libavif path. Returns images/s on one thread, or -1.
static double avif_rate(int size, int n_img) {
    uint8_t *rgb = (uint8_t *)mallocCheck((size_t)size * size * 3);
    avifRWData *files = (avifRWData *)callocCheck(n_img, sizeof(avifRWData));
    for (int i = 0; i < n_img; i++) {
        make_image(rgb, size, size, 100 + i);
        avifEncoder *enc = avifEncoderCreate(); // an encoder writes one file; a second write fails
        enc->speed = 10;
        enc->minQuantizer = 20, enc->maxQuantizer = 30;
        avifImage *im = avifImageCreate(size, size, 8, AVIF_PIXEL_FORMAT_YUV420);
        avifRGBImage r;
        avifRGBImageSetDefaults(&r, im);
        r.format = AVIF_RGB_FORMAT_RGB, r.pixels = rgb, r.rowBytes = (uint32_t)size * 3;
        avifResult a = avifImageRGBToYUV(im, &r);
        if (a == AVIF_RESULT_OK) a = avifEncoderWrite(enc, im, &files[i]);
        if (a != AVIF_RESULT_OK) {
            fprintf(stderr, "AVIF encoding for the benchmark failed: %s\n", avifResultToString(a));
            avifImageDestroy(im);
            avifEncoderDestroy(enc);
            return -1;
        }
        avifImageDestroy(im);
        avifEncoderDestroy(enc);
    }
    Ava256Image out = {0};
    char err[512];
    double best = 1e30;
    for (int round = 0; round < 3; round++) {
        double t0 = time_now_s();
        for (int i = 0; i < n_img; i++)
            if (ava256_decode_avif(files[i].data, files[i].size, 3, &out, "bench", err, sizeof err)) FATAL("%s", err);
        best = fmin(best, time_now_s() - t0);
    }
    for (int i = 0; i < n_img; i++) avifRWDataFree(&files[i]);
    free(files), free(rgb);
    ava256_image_free(&out);
    return n_img / best;
}

// Samples per second through the loader: a shard of 16 cameras × 8 frames at size², paper views
// (4 inputs at random frames, 8 targets), micro-batch 1, `threads` prefetch workers.
static double loader_rate(const char *dir, int size, int quality, int threads, int steps) {
    enum { C = 16, F = 8 };
    char path[700], err[1024];
    snprintf(path, sizeof path, "%s/loader.h5", dir);
    ShardMeta m;
    memset(&m, 0, sizeof m);
    snprintf(m.capture, sizeof m.capture, "bench--0000--BEN001");
    m.n_cams = C, m.n_frames = F, m.W = m.H = size;
    char ids[C][SHARD_ID_LEN];
    double w2c[C * 12], K[F * C * 9] = {0}, hp[F * 12] = {0};
    int32_t fid[F];
    for (int c = 0; c < C; c++) { // cameras on a circle around the head, looking at it
        double a = 2 * M_PI * c / C, R[9] = {cos(a), 0, -sin(a), 0, 1, 0, sin(a), 0, cos(a)};
        snprintf(ids[c], SHARD_ID_LEN, "%d", 400000 + c);
        for (int i = 0; i < 3; i++) {
            for (int k = 0; k < 3; k++) w2c[12 * c + 4 * i + k] = R[3 * i + k];
            w2c[12 * c + 4 * i + 3] = i == 2 ? 1.0 : 0.0;
        }
    }
    for (int i = 0; i < F * C; i++) K[9 * i] = K[9 * i + 4] = size, K[9 * i + 2] = K[9 * i + 5] = size / 2.0, K[9 * i + 8] = 1;
    for (int f = 0; f < F; f++) fid[f] = f, hp[12 * f] = hp[12 * f + 5] = hp[12 * f + 10] = 1;
    m.cam_ids = ids, m.w2c = w2c, m.K = K, m.frame_ids = fid, m.head_pose = hp;
    ShardWriter *w = shard_create(path, &m, quality, err, sizeof err);
    if (!w) FATAL("%s", err);
    uint8_t *rgb = (uint8_t *)mallocCheck((size_t)size * size * 3);
    for (int f = 0; f < F; f++)
        for (int c = 0; c < C; c++) {
            make_image(rgb, size, size, f * C + c);
            if (shard_put_image(w, f, c, rgb, err, sizeof err)) FATAL("%s", err);
        }
    free(rgb);
    if (shard_finish(w, err, sizeof err)) FATAL("%s", err);
    const char *paths[1] = {path};
    LoaderOptions o = {4, 8, 1, 0, 0, 1, 1, 0, 1, NULL, threads, threads + 2, 0, 0};
    Loader L;
    if (loader_open(&L, paths, 1, &o, 0, err, sizeof err)) FATAL("%s", err);
    if (!loader_next(&L, err, sizeof err)) FATAL("%s", err); // warm-up
    double t0 = time_now_s();
    for (int s = 0; s < steps; s++)
        if (!loader_next(&L, err, sizeof err)) FATAL("%s", err);
    double dt = time_now_s() - t0;
    loader_close(&L);
    return steps / dt;
}

int cmd_bench_data(int argc, char **argv) {
    int size = 512, n_img = 64, quality = 92, threads = 0, rounds = 3;
    for (int i = 1; i < argc; i++) {
        int has = i + 1 < argc;
        if (!strcmp(argv[i], "--size") && has) size = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--images") && has) n_img = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quality") && has) quality = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && has) threads = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: avat3r bench data [--size 512] [--images 64] [--quality 92] [--threads T]\n");
            return 2;
        }
    }
    if (size < 16 || size > 4096 || n_img < 1 || n_img > 4096) {
        fprintf(stderr, "avat3r bench data: --size 16..4096, --images 1..4096\n");
        return 2;
    }
    if (threads > 0) omp_set_num_threads(threads);
    threads = omp_get_max_threads();
    char dir[] = "/tmp/avat3r_bench.XXXXXX", path[600], err[1024];
    if (!mkdtemp(dir)) FATAL("cannot create a temporary directory");
    snprintf(path, sizeof path, "%s/bench.h5", dir);
    // one capture: n_img frames × 1 camera
    ShardMeta m;
    memset(&m, 0, sizeof m);
    snprintf(m.capture, sizeof m.capture, "bench");
    m.n_cams = 1, m.n_frames = n_img, m.W = size, m.H = size;
    char ids[1][SHARD_ID_LEN] = {"400000"};
    double w2c[12] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1};
    double *K = (double *)callocCheck((size_t)n_img * 9, 8), *hp = (double *)callocCheck((size_t)n_img * 12, 8);
    int32_t *fid = (int32_t *)mallocCheck(4 * (size_t)n_img);
    for (int f = 0; f < n_img; f++) fid[f] = f, K[f * 9 + 8] = 1, hp[f * 12] = hp[f * 12 + 5] = hp[f * 12 + 10] = 1;
    m.cam_ids = ids, m.w2c = w2c, m.K = K, m.frame_ids = fid, m.head_pose = hp;
    ShardWriter *w = shard_create(path, &m, quality, err, sizeof err);
    if (!w) FATAL("%s", err);
    uint8_t *rgb = (uint8_t *)mallocCheck((size_t)size * size * 3);
    for (int f = 0; f < n_img; f++) {
        make_image(rgb, size, size, f);
        if (shard_put_image(w, f, 0, rgb, err, sizeof err)) FATAL("%s", err);
    }
    if (shard_finish(w, err, sizeof err)) FATAL("%s", err);
    Shard s;
    if (shard_open(&s, path, err, sizeof err)) FATAL("%s", err);
    printf("shard: %d JPEG images of %dx%d (quality %d), %.1f KB each on average\n", n_img, size, size, quality,
           s.blob[SHARD_IMAGE].size / 1024.0 / n_img);
    double best1 = 1e30, bestN = 1e30;
    uint8_t *out = (uint8_t *)mallocCheck((size_t)threads * size * size * 3);
    for (int r = 0; r < rounds; r++) {
        double t0 = time_now_s();
        for (int f = 0; f < n_img; f++)
            if (shard_get_image(&s, f, 0, out, err, sizeof err)) FATAL("%s", err);
        double t1 = time_now_s();
        int bad = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(| : bad)
        for (int f = 0; f < n_img; f++) {
            char e2[256];
            bad |= shard_get_image(&s, f, 0, out + (size_t)omp_get_thread_num() * size * size * 3, e2, sizeof e2) != 0;
        }
        double t2 = time_now_s();
        if (bad) FATAL("decoding failed in a worker thread");
        best1 = fmin(best1, t1 - t0), bestN = fmin(bestN, t2 - t1);
    }
    printf("1 thread: %.0f decoded %dx%d images/s (%.2f ms each)\n", n_img / best1, size, size, 1e3 * best1 / n_img);
    printf("%d threads: %.0f images/s, %.0f images/s per core\n", threads, n_img / bestN, n_img / bestN / threads);
    shard_close(&s);
    double sr = loader_rate(dir, size, quality, threads, 40);
    printf("loader (4 inputs at random frames + 8 targets, %d workers): %.1f samples/s = %.0f decoded images/s, "
           "%.1f samples/s per core\n", threads, sr, 12 * sr, sr / threads);
    double ar = avif_rate(size, 16);
    if (ar > 0) printf("raw AVIF (4:2:0, libavif, 1 thread): %.0f decoded %dx%d images/s (%.2f ms each)\n", ar, size, size, 1e3 / ar);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    free(K), free(hp), free(fid), free(rgb), free(out);
    return 0;
}
