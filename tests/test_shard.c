// test_shard.c — HDF5 shards: metadata and payloads round-trip (JPEG within its quality, masks, part labels
// and aux maps exactly), missing entries, optional part labels (absent in older shards), atomic writing,
// concurrent readers, damaged files named in errors.
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fcntl.h>
#include <hdf5.h>

#include "../common/util.h"
#include "shard.h"
#include "test.h"

static const char *const BLOB_DS[SHARD_NBLOBS] = {"blobs/image_jpeg", "blobs/mask_zstd", "blobs/dust3r_zstd",
                                                  "blobs/sapiens_zstd", "blobs/parts_zstd"};

static int flip_at(const char *path, long long pos) {
    int fd = open(path, O_RDWR);
    unsigned char b = 0;
    int ok = fd >= 0 && pread(fd, &b, 1, pos) == 1;
    b ^= 0x5a;
    ok = ok && pwrite(fd, &b, 1, pos) == 1;
    if (fd >= 0) close(fd);
    return ok ? 0 : -1;
}

int test_flip_shard_payload(const char *path, int blob, int f, int c, long at, char *err, size_t errlen) {
    Shard s;
    if (shard_open(&s, path, err, errlen)) return -1;
    size_t i = (size_t)f * s.m.n_cams + c;
    long long off = s.blob[blob].off[i], len = s.blob[blob].len[i];
    shard_close(&s);
    if (len <= 0 || at >= len) return error_set(err, errlen, "%s: no payload byte %ld for frame %d camera %d", path, at, f, c);
    long long pos = off + (at < 0 ? len / 2 : at); // in the blob dataset
    hid_t fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), ds = H5Dopen2(fid, BLOB_DS[blob], H5P_DEFAULT);
    hid_t pl = H5Dget_create_plist(ds);
    hsize_t chunk = 0, coord, size = 0;
    haddr_t addr = 0;
    unsigned mask = 0;
    int ok = H5Pget_chunk(pl, 1, &chunk) == 1 && chunk > 0;
    coord = ok ? (hsize_t)pos / chunk * chunk : 0;
    ok = ok && H5Dget_chunk_info_by_coord(ds, &coord, &mask, &addr, &size) >= 0 && addr != HADDR_UNDEF;
    H5Pclose(pl), H5Dclose(ds), H5Fclose(fid);
    if (!ok) return error_set(err, errlen, "%s: cannot locate the chunk of %s byte %lld", path, BLOB_DS[blob], pos);
    if (flip_at(path, (long long)addr + (pos - (long long)coord)))
        return error_set(err, errlen, "%s: cannot rewrite byte %lld", path, (long long)addr + (pos - (long long)coord));
    return 0;
}

int test_flip_file_bytes(const char *path, const void *what, size_t n) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return -1;
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *buf = malloc(size > 0 ? (size_t)size : 1);
    size_t got = fread(buf, 1, (size_t)size, fp);
    fclose(fp);
    long long pos = -1;
    for (size_t i = 0; n && i + n <= got && pos < 0; i++)
        if (!memcmp(buf + i, what, n)) pos = (long long)(i + n / 2);
    free(buf);
    return pos < 0 ? -1 : flip_at(path, pos);
}

enum { C = 3, F = 4, W = 48, H = 40, SH = 4, SW = 5, SC = 6 };

static void image(int f, int c, uint8_t *rgb) { // smooth, so JPEG at quality 95 stays close
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int k = 0; k < 3; k++)
                rgb[(y * W + x) * 3 + k] = (uint8_t)(128 + 100 * sin(0.05 * (x + 2 * y) + f + 2 * c + k));
}

// The shard metadata every test writes: the arrays live in the fixture, m points at them.
typedef struct {
    char ids[C][SHARD_ID_LEN];
    double w2c[C * 12], K[F * C * 9], hp[F * 12];
    int32_t fid[F];
    float ex[F * 7];
    ShardMeta m;
} MetaFx;

static void meta(MetaFx *x) {
    ShardMeta *m = &x->m;
    memset(x, 0, sizeof *x); // the id strings' tails too: they are compared with memcmp
    snprintf(m->capture, sizeof m->capture, "20240101--0900--TST001");
    m->n_cams = C, m->n_frames = F, m->W = W, m->H = H, m->expr_dim = 7, m->sap_h = SH, m->sap_w = SW, m->sap_c = SC;
    for (int c = 0; c < C; c++) snprintf(x->ids[c], SHARD_ID_LEN, "4001%02d", c);
    for (int i = 0; i < C * 12; i++) x->w2c[i] = 0.1 * i - 1;
    for (int i = 0; i < F * C * 9; i++) x->K[i] = 1.5 * i;
    for (int f = 0; f < F; f++) x->fid[f] = 20000 + 3 * f;
    for (int i = 0; i < F * 12; i++) x->hp[i] = 0.01 * i;
    for (int i = 0; i < F * 7; i++) x->ex[i] = (float)sin(i);
    m->cam_ids = x->ids, m->w2c = x->w2c, m->K = x->K, m->frame_ids = x->fid, m->head_pose = x->hp, m->expr = x->ex;
}

// Part labels of (f, c): every byte value occurs (the payload is bytes, whatever classes they name).
static uint8_t label(int f, int c, int i) { return (uint8_t)((i * 31 + 5 * f + c) & 0xff); }
// (frame 1, camera 2) has an image but no labels; (2, 1) has nothing.
static int has_labels(int f, int c) { return !(f == 1 && c == 2); }

// counts: the pack counts to record (shard_set_counts), or NULL for none. parts: write part labels.
static int write_shard_opts(const char *path, const int64_t *counts, int parts) {
    char err[512];
    MetaFx x;
    meta(&x);
    ShardWriter *w = shard_create(path, &x.m, 95, err, sizeof err);
    CHECK(w, "%s", err);
    uint8_t rgb[W * H * 3], mask[W * H], lab[W * H];
    float d3[W * H * 4], sp[SH * SW * SC];
    for (int f = 0; f < F; f++)
        for (int c = 0; c < C; c++) {
            if (f == 2 && c == 1) continue; // a missing image
            image(f, c, rgb);
            for (int i = 0; i < W * H; i++) mask[i] = (uint8_t)((i * 7 + f + c) & 0xff), lab[i] = label(f, c, i);
            if (parts && has_labels(f, c)) CHECK(!shard_put_parts(w, f, c, lab, err, sizeof err), "%s", err);
            for (int i = 0; i < W * H * 4; i++) d3[i] = (float)(i * 0.001 + f - c);
            for (int i = 0; i < SH * SW * SC; i++) sp[i] = (float)(i + 10 * f + c);
            CHECK(!shard_put_image(w, f, c, rgb, err, sizeof err), "%s", err);
            CHECK(!shard_put_mask(w, f, c, mask, err, sizeof err), "%s", err);
            CHECK(!shard_put_aux(w, SHARD_DUST3R, f, c, d3, err, sizeof err), "%s", err);
            CHECK(!shard_put_aux(w, SHARD_SAPIENS, f, c, sp, err, sizeof err), "%s", err);
        }
    CHECK(shard_put_image(w, 0, 0, rgb, err, sizeof err) != 0 && strstr(err, "twice"), "double write accepted");
    if (parts) CHECK(shard_put_parts(w, 0, 0, lab, err, sizeof err) != 0 && strstr(err, "parts_zstd") && strstr(err, "twice"),
                     "double label write accepted: '%s'", err);
    if (counts) shard_set_counts(w, counts[0], counts[1], counts[2]);
    CHECK(!shard_finish(w, err, sizeof err), "%s", err);
    return 0;
}
static int write_shard_counts(const char *path, const int64_t *counts) { return write_shard_opts(path, counts, 1); }
static int write_shard(const char *path) { return write_shard_counts(path, NULL); }

static int test_roundtrip(void) {
    char path[1024], err[512];
    snprintf(path, sizeof path, "%s/cap.h5", test_tmpdir());
    if (write_shard(path)) return 1;
    char tmpname[1100];
    snprintf(tmpname, sizeof tmpname, "%s.tmp.%d", path, (int)getpid());
    CHECK(access(tmpname, F_OK) != 0, "temporary file left behind");
    Shard s;
    CHECK(!shard_open(&s, path, err, sizeof err), "%s", err);
    MetaFx x;
    meta(&x);
    CHECK(s.m.n_cams == C && s.m.n_frames == F && s.m.W == W && s.m.H == H && s.m.expr_dim == 7, "sizes");
    CHECK(!strcmp(s.m.capture, x.m.capture) && !memcmp(s.m.cam_ids, x.ids, sizeof x.ids), "capture / camera ids");
    CHECK(!memcmp(s.m.w2c, x.w2c, sizeof x.w2c) && !memcmp(s.m.K, x.K, sizeof x.K) &&
              !memcmp(s.m.head_pose, x.hp, sizeof x.hp),
          "cameras / poses not exact");
    CHECK(!memcmp(s.m.frame_ids, x.fid, sizeof x.fid) && !memcmp(s.m.expr, x.ex, sizeof x.ex), "frames / codes not exact");
    uint8_t rgb[W * H * 3], want[W * H * 3], mask[W * H];
    float d3[W * H * 4], sp[SH * SW * SC];
    double worst = 1e9;
    CHECK(s.has[SHARD_PARTS], "the shard's part labels are not reported");
    for (int f = 0; f < F; f++)
        for (int c = 0; c < C; c++) {
            int r = shard_get_image(&s, f, c, rgb, err, sizeof err);
            if (f == 2 && c == 1) {
                CHECK(r == 1 && shard_get_mask(&s, f, c, mask, err, sizeof err) == 1, "missing image not reported");
                CHECK(shard_get_parts(&s, f, c, mask, err, sizeof err) == 1, "missing labels not reported");
                continue;
            }
            // part labels: bit-exact, or 1 where none were written
            int rp = shard_get_parts(&s, f, c, mask, err, sizeof err);
            CHECK(rp == !has_labels(f, c), "labels of frame %d camera %d: %d (%s)", f, c, rp, err);
            for (int i = 0; i < W * H && rp == 0; i++)
                CHECK(mask[i] == label(f, c, i), "labels of frame %d camera %d not exact at %d", f, c, i);
            CHECK(r == 0, "%s", err);
            image(f, c, want);
            double mse = 0;
            for (int i = 0; i < W * H * 3; i++) mse += (rgb[i] - want[i]) * (double)(rgb[i] - want[i]);
            double psnr = 10 * log10(255.0 * 255.0 / (mse / (W * H * 3) + 1e-12));
            worst = fmin(worst, psnr);
            CHECK(!shard_get_mask(&s, f, c, mask, err, sizeof err), "%s", err);
            for (int i = 0; i < W * H; i++) CHECK(mask[i] == (uint8_t)((i * 7 + f + c) & 0xff), "mask not exact");
            CHECK(!shard_get_aux(&s, SHARD_DUST3R, f, c, d3, err, sizeof err), "%s", err);
            CHECK(!shard_get_aux(&s, SHARD_SAPIENS, f, c, sp, err, sizeof err), "%s", err);
            for (int i = 0; i < W * H * 4; i++) CHECK(d3[i] == (float)(i * 0.001 + f - c), "dust3r map not exact");
            for (int i = 0; i < SH * SW * SC; i++) CHECK(sp[i] == (float)(i + 10 * f + c), "sapiens map not exact");
        }
    printf("    JPEG quality 95: worst PSNR %.1f dB\n", worst);
    CHECK(worst > 38, "JPEG round trip too lossy: %.1f dB", worst);
    CHECK(shard_get_image(&s, F, 0, rgb, err, sizeof err) < 0 && strstr(err, path), "out of range: '%s'", err);
    CHECK(s.missing_images == -1 && s.corrupt_images == -1 && s.no_mask_images == -1, "a shard without pack counts "
          "reads %lld/%lld/%lld", (long long)s.missing_images, (long long)s.corrupt_images, (long long)s.no_mask_images);
    shard_close(&s);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' inspect '%s' | tr -d ' \\t\\n' | grep -q '\"frames\":4,\"cameras\":3.*\"missing_images\":1,"
             "\"missing_why\":null'", AVAT3R_BINARY, path);
    CHECK(test_system(cmd) == 0, "avat3r inspect on a shard");
    // the pack counts: absent above (-1, checked before the close); written, they read back; values that cannot fit the shard (more
    // images than the one without an image, negative) read as absent; the metadata CRC does not cover them
    const int64_t cases[4][3] = {{0, 1, 0}, {1, 0, 0}, {1, 1, 0}, {0, 0, -1}};
    const int64_t wantc[4][3] = {{0, 1, 0}, {1, 0, 0}, {-1, -1, -1}, {-1, -1, -1}};
    for (int k = 0; k < 4; k++) {
        snprintf(path, sizeof path, "%s/cap_counts%d.h5", test_tmpdir(), k);
        if (write_shard_counts(path, cases[k])) return 1;
        CHECK(!shard_open(&s, path, err, sizeof err), "%s", err);
        int ok = s.missing_images == wantc[k][0] && s.corrupt_images == wantc[k][1] && s.no_mask_images == wantc[k][2];
        CHECK(ok, "counts %lld/%lld/%lld read back as %lld/%lld/%lld", (long long)cases[k][0], (long long)cases[k][1],
              (long long)cases[k][2], (long long)s.missing_images, (long long)s.corrupt_images, (long long)s.no_mask_images);
        shard_close(&s);
    }
    return 0;
}

// A shard written without any shard_put_parts has no parts datasets at all (the layout of every shard from
// before them: the seed shard of tests/fuzz/corpus is one), opens with has[SHARD_PARTS] = 0 and answers 1
// for every (frame, camera)'s labels while its other payloads read as usual.
static int test_parts_optional(void) {
    char path[1024], err[512];
    snprintf(path, sizeof path, "%s/noparts.h5", test_tmpdir());
    if (write_shard_opts(path, NULL, 0)) return 1;
    hid_t fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK(fid >= 0, "reopen");
    int any = H5Lexists(fid, "blobs/parts_zstd", H5P_DEFAULT) > 0 || H5Lexists(fid, "blobs/parts_zstd_offset", H5P_DEFAULT) > 0 ||
              H5Aexists(fid, "parts_zstd_index_crc32") > 0;
    H5Fclose(fid);
    CHECK(!any, "a shard without labels has part-label datasets or attributes");
    const char *old = "tests/fuzz/corpus/shard/small.h5"; // written by tests/fuzz/seed_shard.c before part labels
    char oldp[4096];
    snprintf(oldp, sizeof oldp, "%s/%s", test_source_root(), old);
    const char *files[2] = {path, oldp};
    for (int k = 0; k < 2; k++) {
        Shard s;
        CHECK(!shard_open(&s, files[k], err, sizeof err), "%s", err);
        CHECK(!s.has[SHARD_PARTS] && s.has[SHARD_IMAGE] && s.has[SHARD_MASK], "%s: has %d/%d/%d", files[k],
              s.has[SHARD_PARTS], s.has[SHARD_IMAGE], s.has[SHARD_MASK]);
        size_t n = (size_t)s.m.W * s.m.H;
        uint8_t *buf = malloc(n * 3);
        int images = 0;
        for (int f = 0; f < s.m.n_frames; f++)
            for (int c = 0; c < s.m.n_cams; c++) {
                CHECK(shard_get_parts(&s, f, c, buf, err, sizeof err) == 1, "%s: labels of frame %d camera %d", files[k], f, c);
                int r = shard_get_image(&s, f, c, buf, err, sizeof err);
                CHECK(r >= 0, "%s", err);
                images += r == 0;
            }
        printf("    %s: opens, no labels, %d images read\n", k ? old : "a shard without labels", images);
        CHECK(images > 0, "no image read");
        free(buf);
        shard_close(&s);
    }
    return 0;
}

typedef struct { Shard *s; uint8_t *out; int bad; } Job;
static void *reader(void *p) {
    Job *j = p;
    char err[256];
    for (int f = 0; f < F; f++)
        for (int c = 0; c < C; c++) j->bad |= shard_get_image(j->s, f, c, j->out + (size_t)(f * C + c) * W * H * 3, err, sizeof err) < 0;
    shard_thread_release(); // this thread's TurboJPEG handle and buffer
    return NULL;
}

static int test_concurrent_and_damaged(void) {
    char path[1024], err[512];
    snprintf(path, sizeof path, "%s/cap2.h5", test_tmpdir());
    if (write_shard(path)) return 1;
    Shard s;
    CHECK(!shard_open(&s, path, err, sizeof err), "%s", err);
    size_t n = (size_t)F * C * W * H * 3;
    uint8_t *a = calloc(n, 1), *b = calloc(n, 1), *ref = calloc(n, 1);
    Job ja = {&s, a, 0}, jb = {&s, b, 0}, jr = {&s, ref, 0};
    reader(&jr);
    pthread_t t1, t2;
    pthread_create(&t1, NULL, reader, &ja);
    pthread_create(&t2, NULL, reader, &jb);
    pthread_join(t1, NULL), pthread_join(t2, NULL);
    CHECK(!ja.bad && !jb.bad && !memcmp(a, ref, n) && !memcmp(b, ref, n), "concurrent readers disagree");
    shard_close(&s);
    free(a), free(b), free(ref);
    // a truncated copy, a non-HDF5 file and an HDF5 file that is not a shard are refused, naming the file
    char bad[1100], cmd[4096];
    snprintf(bad, sizeof bad, "%s/trunc.h5", test_tmpdir());
    snprintf(cmd, sizeof cmd, "head -c 3000 '%s' > '%s'", path, bad);
    CHECK(test_system(cmd) == 0, "truncate");
    CHECK(shard_open(&s, bad, err, sizeof err) != 0 && strstr(err, bad), "truncated shard: '%s'", err);
    printf("    truncated: %s\n", err);
    snprintf(bad, sizeof bad, "%s/junk.h5", test_tmpdir());
    FILE *f = fopen(bad, "wb");
    fprintf(f, "definitely not hdf5");
    fclose(f);
    CHECK(shard_open(&s, bad, err, sizeof err) != 0 && strstr(err, "not an HDF5 file"), "junk: '%s'", err);
    // an aborted writer leaves nothing behind
    MetaFx x;
    meta(&x);
    snprintf(bad, sizeof bad, "%s/aborted.h5", test_tmpdir());
    ShardWriter *w = shard_create(bad, &x.m, 90, err, sizeof err);
    CHECK(w, "%s", err);
    shard_abort(w);
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -q aborted", test_tmpdir());
    CHECK(system(cmd) != 0, "an aborted shard left a file");
    return 0;
}

// Every payload carries a CRC-32 and the metadata one more: a flipped byte in an image, mask or aux payload
// fails that (frame, camera) alone with a message naming the file, blob, frame, camera and the CRC, while
// every other payload still reads bit-identically; a flipped byte in the cameras or head poses fails
// shard_open. A shard written before checksums (no meta_crc32, no *_crc32 datasets) still reads; one whose
// CRC datasets were removed while meta_crc32 stayed is refused.
static int test_crc(void) {
    char path[1024], bad[1100], cmd[4096], err[1024];
    snprintf(path, sizeof path, "%s/crc.h5", test_tmpdir());
    if (write_shard(path)) return 1;
    snprintf(bad, sizeof bad, "%s/crc_flipped.h5", test_tmpdir());
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", path, bad);
    CHECK(test_system(cmd) == 0, "copy");
    CHECK(!test_flip_shard_payload(bad, SHARD_IMAGE, 1, 0, -1, err, sizeof err), "%s", err);
    CHECK(!test_flip_shard_payload(bad, SHARD_MASK, 3, 2, 0, err, sizeof err), "%s", err);
    CHECK(!test_flip_shard_payload(bad, SHARD_DUST3R, 0, 2, -1, err, sizeof err), "%s", err);
    CHECK(!test_flip_shard_payload(bad, SHARD_SAPIENS, 3, 1, -1, err, sizeof err), "%s", err);
    CHECK(!test_flip_shard_payload(bad, SHARD_PARTS, 0, 1, -1, err, sizeof err), "%s", err);
    Shard a, b;
    CHECK(!shard_open(&a, path, err, sizeof err), "%s", err);
    CHECK(!shard_open(&b, bad, err, sizeof err), "payload flips must not fail the open: %s", err);
    uint8_t ra[W * H * 3], rb[W * H * 3];
    float fa[W * H * 4], fb[W * H * 4];
    int failed = 0;
    for (int f = 0; f < F; f++)
        for (int c = 0; c < C; c++) {
            for (int kind = 0; kind < SHARD_NBLOBS; kind++) {
                int want_bad = (kind == SHARD_IMAGE && f == 1 && c == 0) || (kind == SHARD_MASK && f == 3 && c == 2) ||
                               (kind == SHARD_DUST3R && f == 0 && c == 2) || (kind == SHARD_SAPIENS && f == 3 && c == 1) ||
                               (kind == SHARD_PARTS && f == 0 && c == 1);
                int r1, r2;
                size_t n;
                if (kind == SHARD_PARTS) {
                    r1 = shard_get_parts(&a, f, c, ra, err, sizeof err);
                    r2 = shard_get_parts(&b, f, c, rb, err, sizeof err);
                    n = (size_t)W * H;
                } else if (kind == SHARD_IMAGE || kind == SHARD_MASK) {
                    r1 = kind ? shard_get_mask(&a, f, c, ra, err, sizeof err) : shard_get_image(&a, f, c, ra, err, sizeof err);
                    r2 = kind ? shard_get_mask(&b, f, c, rb, err, sizeof err) : shard_get_image(&b, f, c, rb, err, sizeof err);
                    n = kind ? (size_t)W * H : (size_t)W * H * 3;
                } else {
                    r1 = shard_get_aux(&a, kind, f, c, fa, err, sizeof err);
                    r2 = shard_get_aux(&b, kind, f, c, fb, err, sizeof err);
                    n = 4 * (kind == SHARD_DUST3R ? (size_t)W * H * 4 : (size_t)SH * SW * SC);
                }
                int absent = (f == 2 && c == 1) || (kind == SHARD_PARTS && !has_labels(f, c));
                CHECK(r1 == absent, "clean shard: kind %d frame %d camera %d gave %d", kind, f, c, r1);
                if (want_bad) {
                    char where[64];
                    snprintf(where, sizeof where, "frame %d camera %d", f, c);
                    CHECK(r2 == -1 && strstr(err, "CRC-32") && strstr(err, bad) && strstr(err, where),
                          "kind %d %s: rc %d, '%s'", kind, where, r2, err);
                    if (!failed++) printf("    %s\n", err);
                    continue;
                }
                CHECK(r2 == r1, "kind %d frame %d camera %d: %d vs %d (%s)", kind, f, c, r2, r1, err);
                int bytes = kind == SHARD_IMAGE || kind == SHARD_MASK || kind == SHARD_PARTS;
                const void *pa = bytes ? (const void *)ra : (const void *)fa, *pb = bytes ? (const void *)rb : (const void *)fb;
                CHECK(r1 || !memcmp(pa, pb, n), "kind %d frame %d camera %d differs from the clean shard", kind, f, c);
            }
        }
    CHECK(failed == 5, "%d damaged payloads reported, want 5", failed);
    // the part labels' index, covered by its own attribute: one payload CRC of blobs/parts_zstd_crc32
    uint32_t parts_crc = a.blob[SHARD_PARTS].crc[(size_t)3 * C + 2];
    shard_close(&a), shard_close(&b);
    // metadata: a camera's translation, a head pose, the labels' index
    MetaFx x;
    meta(&x);
    const void *what[3] = {&x.w2c[7], &x.hp[13], &parts_crc};
    const size_t wlen[3] = {8, 8, 4};
    for (int k = 0; k < 3; k++) {
        snprintf(cmd, sizeof cmd, "cp '%s' '%s'", path, bad);
        CHECK(test_system(cmd) == 0, "copy");
        CHECK(!test_flip_file_bytes(bad, what[k], wlen[k]), "value %d not found in the file", k);
        const char *want = k < 2 ? "meta_crc32" : "parts_zstd_index_crc32";
        err[0] = 0; // an accepted file leaves no message: not the last one's
        CHECK(shard_open(&b, bad, err, sizeof err) != 0 && strstr(err, want) && strstr(err, bad),
              "a flipped metadata byte was accepted: '%s'", err);
        if (k != 1) printf("    %s\n", err);
    }
    // a shard from before checksums; and one stripped of its CRC datasets
    for (int keep_attr = 0; keep_attr < 2; keep_attr++) {
        snprintf(cmd, sizeof cmd, "cp '%s' '%s'", path, bad);
        CHECK(test_system(cmd) == 0, "copy");
        hid_t fid = H5Fopen(bad, H5F_ACC_RDWR, H5P_DEFAULT);
        CHECK(fid >= 0, "reopen");
        if (!keep_attr) CHECK(H5Adelete(fid, "meta_crc32") >= 0, "attribute");
        for (int k = 0; k < SHARD_NBLOBS; k++) {
            char name[64];
            snprintf(name, sizeof name, "%s_crc32", BLOB_DS[k]);
            CHECK(H5Ldelete(fid, name, H5P_DEFAULT) >= 0, "%s", name);
        }
        H5Fclose(fid);
        int rc = shard_open(&b, bad, err, sizeof err);
        if (!keep_attr) {
            CHECK(rc == 0 && !b.blob[0].crc, "a shard without checksums: %s", err);
            CHECK(shard_get_image(&b, 1, 0, rb, err, sizeof err) == 0, "%s", err);
            shard_close(&b);
        } else {
            CHECK(rc != 0 && strstr(err, "crc32"), "CRC datasets removed but meta_crc32 kept: accepted (%s)", err);
        }
    }
    return 0;
}

// Shards that fuzzing and review found broke the reader (docs/robustness.md, tests/fuzz/regress/shard/):
// each must be refused with a message naming the file, never crash, exit or allocate without bound.
// hdf5-alloc-1tb.h5 needs ASan's allocator_may_return_null (libhdf5 asks for 1 TB), so it stays with the
// fuzz smoke run.
static int test_fuzz_regressions(void) {
    const char *names[] = {"attr-array.h5", "blob-rank2.h5", "huge-k.h5", "index-wrap.h5", "sapiens-neg.h5"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        char path[4096], err[1024];
        snprintf(path, sizeof path, "%s/tests/fuzz/regress/shard/%s", test_source_root(), names[k]);
        CHECK(access(path, R_OK) == 0, "missing regression input %s", path);
        Shard sh;
        int rc = shard_open(&sh, path, err, sizeof err);
        if (rc == 0) shard_close(&sh);
        CHECK(rc != 0 && strstr(err, names[k]), "%s: opened (rc %d) or the message does not name it: '%s'", names[k], rc,
              err);
        printf("    %-16s refused: %.160s\n", names[k], err);
    }
    return 0;
}

const TestCase shard_tests[] = {
    {"data/shard_fuzz_regressions", test_fuzz_regressions},
    {"data/shard_roundtrip", test_roundtrip},
    {"data/shard_parts_optional", test_parts_optional},
    {"data/shard_crc_flipped_bytes", test_crc},
    {"data/shard_concurrent_damaged_atomic", test_concurrent_and_damaged},
    {NULL, NULL},
};
