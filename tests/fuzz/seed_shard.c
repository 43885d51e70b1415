// seed_shard.c — writes the fuzz seed shard: 2 frames x 2 cameras of 8x8 with every blob kind (JPEG image,
// zstd mask, DUSt3R and 2x2x3 Sapiens maps), expression codes of 4, and one missing image. data/shard.c
// is compiled into it with 256-byte blob chunks, so the file stays a few kB.
// Usage: seed_shard OUT.h5 [VARIANT]; a variant then rewrites one object of the file the way a corrupt or
// hostile shard could (the regression inputs of tests/fuzz/regress/shard/):
//   blob-rank2   blobs/mask_zstd as a [2, 4] array (the reader took its extent as 1-D: a stack overflow)
//   attr-array   attribute 'version' as 64 int32 values (H5Aread filled 64 ints into one)
//   huge-k       dataset 'K' of [2^30, 2, 3, 3] without storage (index arrays of 2^31 entries allocated)
//   sapiens-neg  attributes sapiens_h/w/c = -1, 1, 4 (buffers sized from a wrapped product)
//   index-wrap   blobs/image_jpeg_offset[0] = 2^62, _length[0] = 2^62 (off + len overflows int64)
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../data/shard.h"

static void set_attr_int(hid_t f, const char *name, int v) {
    H5Adelete(f, name);
    hid_t sp = H5Screate(H5S_SCALAR), a = H5Acreate2(f, name, H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT, &v);
    H5Aclose(a), H5Sclose(sp);
}

static int variant(const char *path, const char *v) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0) return 1;
    if (!strcmp(v, "blob-rank2")) {
        H5Ldelete(f, "blobs/mask_zstd", H5P_DEFAULT);
        hsize_t d[2] = {2, 4};
        hid_t sp = H5Screate_simple(2, d, NULL);
        hid_t ds = H5Dcreate2(f, "blobs/mask_zstd", H5T_STD_U8LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Dclose(ds), H5Sclose(sp);
    } else if (!strcmp(v, "attr-array")) {
        H5Adelete(f, "version");
        hsize_t d = 64;
        int vals[64];
        for (int i = 0; i < 64; i++) vals[i] = 1;
        hid_t sp = H5Screate_simple(1, &d, NULL), a = H5Acreate2(f, "version", H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, H5T_NATIVE_INT, vals);
        H5Aclose(a), H5Sclose(sp);
    } else if (!strcmp(v, "huge-k")) {
        H5Ldelete(f, "K", H5P_DEFAULT);
        hsize_t d[4] = {(hsize_t)1 << 30, 2, 3, 3};
        hid_t sp = H5Screate_simple(4, d, NULL), pl = H5Pcreate(H5P_DATASET_CREATE);
        H5Pset_alloc_time(pl, H5D_ALLOC_TIME_LATE);
        hid_t ds = H5Dcreate2(f, "K", H5T_IEEE_F64LE, sp, H5P_DEFAULT, pl, H5P_DEFAULT);
        H5Dclose(ds), H5Pclose(pl), H5Sclose(sp);
    } else if (!strcmp(v, "sapiens-neg")) {
        set_attr_int(f, "sapiens_h", -1), set_attr_int(f, "sapiens_w", 1), set_attr_int(f, "sapiens_c", 4);
    } else if (!strcmp(v, "index-wrap")) {
        int64_t big = (int64_t)1 << 62;
        const char *names[2] = {"blobs/image_jpeg_offset", "blobs/image_jpeg_length"};
        for (int k = 0; k < 2; k++) {
            hid_t ds = H5Dopen2(f, names[k], H5P_DEFAULT), fs = H5Dget_space(ds);
            hsize_t start[2] = {0, 0}, cnt[2] = {1, 1}, one = 1;
            H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL);
            hid_t ms = H5Screate_simple(1, &one, NULL);
            H5Dwrite(ds, H5T_NATIVE_INT64, ms, fs, H5P_DEFAULT, &big);
            H5Sclose(ms), H5Sclose(fs), H5Dclose(ds);
        }
    } else {
        fprintf(stderr, "seed_shard: unknown variant '%s'\n", v);
        H5Fclose(f);
        return 2;
    }
    return H5Fclose(f) < 0;
}

int main(int argc, char **argv) {
    if (argc != 2 && argc != 3) return fprintf(stderr, "usage: seed_shard OUT.h5 [VARIANT]\n"), 2;
    enum { F = 2, C = 2, W = 8, H = 8 };
    char ids[C][SHARD_ID_LEN] = {"400101", "400102"};
    double w2c[C * 12] = {0}, K[F * C * 9] = {0}, head[F * 12] = {0};
    int32_t frames[F] = {20000, 20003};
    float expr[F * 4] = {0.1f, -0.2f, 0.3f, 0.0f, 1.0f, 2.0f, -3.0f, 0.5f};
    for (int c = 0; c < C; c++) w2c[c * 12] = w2c[c * 12 + 5] = w2c[c * 12 + 10] = 1, w2c[c * 12 + 11] = 1;
    for (int i = 0; i < F * C; i++) K[i * 9] = K[i * 9 + 4] = 10, K[i * 9 + 2] = K[i * 9 + 5] = 4, K[i * 9 + 8] = 1;
    for (int f = 0; f < F; f++) head[f * 12] = head[f * 12 + 5] = head[f * 12 + 10] = 1;
    ShardMeta m = {.n_cams = C, .n_frames = F, .W = W, .H = H, .expr_dim = 4, .sap_h = 2, .sap_w = 2, .sap_c = 3,
                   .cam_ids = ids, .w2c = w2c, .K = K, .frame_ids = frames, .head_pose = head, .expr = expr};
    snprintf(m.capture, sizeof m.capture, "20240101--0900--FUZ001");
    char err[1024];
    ShardWriter *w = shard_create(argv[1], &m, 90, err, sizeof err);
    if (!w) return fprintf(stderr, "%s\n", err), 1;
    uint8_t rgb[W * H * 3], gray[W * H];
    float dust[W * H * 4], sap[2 * 2 * 3];
    for (int i = 0; i < W * H * 3; i++) rgb[i] = (uint8_t)(i * 37);
    for (int i = 0; i < W * H; i++) gray[i] = (uint8_t)(i < 32 ? 255 : 0);
    for (int i = 0; i < W * H * 4; i++) dust[i] = (float)i * 0.01f;
    for (int i = 0; i < 12; i++) sap[i] = (float)i;
    for (int f = 0; f < F; f++)
        for (int c = 0; c < C; c++) {
            if (f == 1 && c == 1) continue; // a dropped image
            if (shard_put_image(w, f, c, rgb, err, sizeof err) || shard_put_mask(w, f, c, gray, err, sizeof err) ||
                shard_put_aux(w, SHARD_DUST3R, f, c, dust, err, sizeof err) ||
                shard_put_aux(w, SHARD_SAPIENS, f, c, sap, err, sizeof err))
                return fprintf(stderr, "%s\n", err), 1;
        }
    if (shard_finish(w, err, sizeof err)) return fprintf(stderr, "%s\n", err), 1;
    return argc == 3 ? variant(argv[1], argv[2]) : 0;
}
