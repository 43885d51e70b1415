// shard.c — HDF5 shard writer/reader (see shard.h and docs/formats.md "Shard").
#include "shard.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "../common/util.h"

static const char *const BLOB_NAMES[SHARD_NBLOBS] = {"image_jpeg", "mask_zstd", "dust3r_zstd", "sapiens_zstd",
                                                      "parts_zstd"};
// The blobs every shard has, in the order meta_crc32 covers them; the ones after are optional (shard.h).
#define CORE_BLOBS 4
_Static_assert(SHARD_PARTS == CORE_BLOBS && SHARD_NBLOBS == CORE_BLOBS + 1, "optional blobs come last");
#ifndef BLOB_CHUNK // tests/fuzz/seed_shard.c builds with small chunks, to keep its seed small
#define BLOB_CHUNK (1 << 20) // bytes per HDF5 chunk of the append-only blobs
#endif

struct ShardWriter {
    ShardMeta m;
    char path[4096], tmp[4200];
    hid_t file;
    ShardBlob blob[SHARD_NBLOBS];
    int quality;
    uint8_t *jpg; // shard_put_image's encode buffer
    size_t jpg_cap;
    int has_counts; // shard_set_counts was called
    int64_t counts[3]; // missing, corrupt, no_mask
};

static const char *const COUNT_NAMES[3] = {"missing_images", "corrupt_images", "no_mask_images"};

#define ERR(...) error_set(err, errlen, __VA_ARGS__)

// ---- small HDF5 helpers (all return < 0 on failure) ----

static int put_attr_str(hid_t obj, const char *name, const char *v) {
    hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR);
    H5Tset_size(t, strlen(v) + 1);
    hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t r = a < 0 ? -1 : H5Awrite(a, t, v);
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp), H5Tclose(t);
    return r < 0 ? -1 : 0;
}

// A scalar attribute: stored as ftype, given as mtype.
static int put_attr(hid_t obj, const char *name, hid_t ftype, hid_t mtype, const void *v) {
    hid_t sp = H5Screate(H5S_SCALAR), a = H5Acreate2(obj, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t r = a < 0 ? -1 : H5Awrite(a, mtype, v);
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    return r < 0 ? -1 : 0;
}
static int put_attr_int(hid_t obj, const char *name, int v) { return put_attr(obj, name, H5T_STD_I32LE, H5T_NATIVE_INT, &v); }

// 1 when attribute `a` holds exactly one value (H5Aread fills as many as it holds).
static int attr_is_one(hid_t a) {
    hid_t sp = H5Aget_space(a);
    hssize_t n = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
    if (sp >= 0) H5Sclose(sp);
    return n == 1;
}

// An integer attribute holding one value, read as mtype (a float one is refused rather than converted).
static int get_attr(hid_t obj, const char *name, hid_t mtype, void *v) {
    if (H5Aexists(obj, name) <= 0) return -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return -1;
    hid_t t = H5Aget_type(a);
    herr_t r = t < 0 || H5Tget_class(t) != H5T_INTEGER || !attr_is_one(a) ? -1 : H5Aread(a, mtype, v);
    if (t >= 0) H5Tclose(t);
    H5Aclose(a);
    return r < 0 ? -1 : 0;
}
static int get_attr_int(hid_t obj, const char *name, int *v) { return get_attr(obj, name, H5T_NATIVE_INT, v); }

static int get_attr_str(hid_t obj, const char *name, char *v, size_t cap) {
    if (H5Aexists(obj, name) <= 0) return -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT), t = H5Aget_type(a), mt = H5Tcopy(H5T_C_S1);
    size_t n = H5Tget_size(t);
    int r = -1;
    if (n < cap && H5Tget_class(t) == H5T_STRING && !H5Tis_variable_str(t) && attr_is_one(a)) {
        H5Tset_size(mt, n);
        r = H5Aread(a, mt, v) < 0 ? -1 : 0;
        v[n] = 0;
    }
    H5Tclose(mt), H5Tclose(t), H5Aclose(a);
    return r;
}

static int put_ds(hid_t file, const char *name, hid_t ftype, hid_t mtype, int rank, const hsize_t *dims, const void *data) {
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(file, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t r = d < 0 ? -1 : H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    if (d >= 0) H5Dclose(d);
    H5Sclose(sp);
    return r < 0 ? -1 : 0;
}

// Reads a whole dataset after checking its shape; returns 0 or -1 with a message naming the dataset.
static int get_ds(hid_t file, const char *path, const char *name, hid_t mtype, int rank, const hsize_t *dims,
                  void *data, char *err, size_t errlen) {
    if (H5Lexists(file, name, H5P_DEFAULT) <= 0) return ERR("%s: dataset '%s' missing", path, name);
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT), sp = H5Dget_space(d);
    hsize_t got[8] = {0};
    int rk = H5Sget_simple_extent_ndims(sp), ok = rk == rank;
    if (ok) H5Sget_simple_extent_dims(sp, got, NULL);
    for (int i = 0; ok && i < rank; i++) ok = got[i] == dims[i];
    herr_t r = ok ? H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) : -1;
    H5Sclose(sp), H5Dclose(d);
    if (!ok) return ERR("%s: dataset '%s' has an unexpected shape", path, name);
    if (r < 0) return ERR("%s: dataset '%s' could not be read (corrupt file?)", path, name);
    return 0;
}

// ---- writer ----

static void meta_copy(ShardMeta *dst, const ShardMeta *m) {
    *dst = *m;
    size_t C = m->n_cams, F = m->n_frames;
    dst->cam_ids = (char(*)[SHARD_ID_LEN])mallocCheck(SHARD_ID_LEN * C + 1);
    memcpy(dst->cam_ids, m->cam_ids, SHARD_ID_LEN * C);
    for (size_t c = 0; c < C; c++) { // zeros after each id's NUL: the file holds no stale caller bytes
        char *id = dst->cam_ids[c];
        size_t n = strnlen(id, SHARD_ID_LEN);
        if (n < SHARD_ID_LEN) memset(id + n, 0, SHARD_ID_LEN - n);
    }
    dst->w2c = (double *)mallocCheck(8 * 12 * C + 8);
    memcpy(dst->w2c, m->w2c, 8 * 12 * C);
    dst->K = (double *)mallocCheck(8 * 9 * F * C + 8);
    memcpy(dst->K, m->K, 8 * 9 * F * C);
    dst->frame_ids = (int32_t *)mallocCheck(4 * F + 4);
    memcpy(dst->frame_ids, m->frame_ids, 4 * F);
    dst->head_pose = (double *)mallocCheck(8 * 12 * F + 8);
    memcpy(dst->head_pose, m->head_pose, 8 * 12 * F);
    dst->expr = NULL;
    if (m->expr_dim) {
        dst->expr = (float *)mallocCheck(4 * (size_t)m->expr_dim * F);
        memcpy(dst->expr, m->expr, 4 * (size_t)m->expr_dim * F);
    }
}

static void meta_free(ShardMeta *m) {
    free(m->cam_ids), free(m->w2c), free(m->K), free(m->frame_ids), free(m->head_pose), free(m->expr);
    memset(m, 0, sizeof *m);
}

#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define CRC_DIFFERS(a, b) ((void)(a), (void)(b), 0) // the fuzz harness: reach the decoders with mutated bytes
#else
#define CRC_DIFFERS(a, b) ((a) != (b))
#endif

// zlib's CRC-32 (crc32_z takes a size_t length), continued from c (0 to start)
static uint32_t crc_of(uint32_t c, const void *p, size_t n) { return (uint32_t)crc32_z(c, (const Bytef *)p, n); }

// CRC-32 of everything shard_open reads besides the payloads, in file byte order (little-endian hosts):
// camera ids, w2c, K, frame ids, head poses, codes, and each core blob's offsets, lengths and payload CRCs.
static uint32_t meta_crc(const ShardMeta *m, const ShardBlob *blob) {
    size_t C = m->n_cams, F = m->n_frames;
    uint32_t c = 0;
    c = crc_of(c, m->cam_ids, SHARD_ID_LEN * C);
    c = crc_of(c, m->w2c, 8 * 12 * C);
    c = crc_of(c, m->K, 8 * 9 * F * C);
    c = crc_of(c, m->frame_ids, 4 * F);
    c = crc_of(c, m->head_pose, 8 * 12 * F);
    if (m->expr_dim) c = crc_of(c, m->expr, 4 * F * (size_t)m->expr_dim);
    for (int b = 0; b < CORE_BLOBS; b++) {
        c = crc_of(c, blob[b].off, 8 * F * C);
        c = crc_of(c, blob[b].len, 8 * F * C);
        c = crc_of(c, blob[b].crc, 4 * F * C);
    }
    return c;
}

// CRC-32 of an optional blob's index, its offsets, lengths and payload CRCs (root attribute <blob>_index_crc32:
// parts_zstd_index_crc32). Kept out of meta_crc32 so that readers that know only the core blobs still open
// and check a shard that has it.
static uint32_t index_crc(const ShardBlob *bl, size_t n) {
    uint32_t c = crc_of(0, bl->off, 8 * n);
    c = crc_of(c, bl->len, 8 * n);
    return crc_of(c, bl->crc, 4 * n);
}

// The append-only byte dataset blobs/<name> (the group exists). < 0 on failure.
static hid_t blob_dataset_create(hid_t file, int b) {
    char name[64];
    snprintf(name, sizeof name, "blobs/%s", BLOB_NAMES[b]);
    hsize_t dim = 0, maxd = H5S_UNLIMITED, chunk = BLOB_CHUNK;
    hid_t sp = H5Screate_simple(1, &dim, &maxd), pl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(pl, 1, &chunk);
    hid_t ds = H5Dcreate2(file, name, H5T_STD_U8LE, sp, H5P_DEFAULT, pl, H5P_DEFAULT);
    H5Pclose(pl), H5Sclose(sp);
    return ds;
}

// libhdf5 1.10 crashes in its exit handler (H5F__close_cb, a NULL dereference) when an H5Fclose failed earlier
// in the process, e.g. a full disk while a shard is flushed: the failed file stays registered in the library,
// which closes it again at exit (fixed upstream by HDFGroup/hdf5#2291). Every file here is closed explicitly,
// so the handler is not needed. H5dont_atexit must come before the library's first use.
static pthread_once_t h5_once = PTHREAD_ONCE_INIT;
static void h5_init_once(void) { H5dont_atexit(); }
static void h5_init(void) { pthread_once(&h5_once, h5_init_once); }

ShardWriter *shard_create(const char *path, const ShardMeta *m, int quality, char *err, size_t errlen) {
    if (m->n_cams < 1 || m->n_cams > SHARD_MAX_CAMS || m->n_frames < 1 || m->W < 1 || m->H < 1 || quality < 1 ||
        quality > 100) {
        ERR("%s: bad shard metadata (cameras %d, frames %d, size %dx%d, quality %d)", path, m->n_cams, m->n_frames,
            m->W, m->H, quality);
        return NULL;
    }
    h5_init();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); // we check every return value and report ourselves
    ShardWriter *w = (ShardWriter *)callocCheck(1, sizeof *w);
    meta_copy(&w->m, m);
    w->quality = quality;
    snprintf(w->path, sizeof w->path, "%s", path);
    snprintf(w->tmp, sizeof w->tmp, "%s.tmp.%d", path, (int)getpid());
    w->file = H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (w->file < 0) {
        ERR("%s: cannot create the HDF5 file", w->tmp);
        shard_abort(w);
        return NULL;
    }
    hid_t g = H5Gcreate2(w->file, "blobs", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g >= 0) H5Gclose(g);
    for (int b = 0; b < SHARD_NBLOBS; b++) {
        size_t n = (size_t)m->n_frames * m->n_cams;
        w->blob[b].off = (int64_t *)callocCheck(n, 8);
        w->blob[b].len = (int64_t *)callocCheck(n, 8);
        w->blob[b].crc = (uint32_t *)callocCheck(n, 4);
        if (b >= CORE_BLOBS) continue; // optional: created by its first payload (blob_append)
        w->blob[b].ds = blob_dataset_create(w->file, b);
        if (w->blob[b].ds < 0) {
            ERR("%s: cannot create dataset blobs/%s", w->tmp, BLOB_NAMES[b]);
            shard_abort(w);
            return NULL;
        }
    }
    return w;
}

static int blob_append(ShardWriter *w, int b, int f, int c, const void *bytes, size_t n, char *err, size_t errlen) {
    if (f < 0 || f >= w->m.n_frames || c < 0 || c >= w->m.n_cams)
        return ERR("%s: frame %d / camera %d out of range", w->tmp, f, c);
    ShardBlob *bl = &w->blob[b];
    size_t i = (size_t)f * w->m.n_cams + c;
    if (bl->len[i]) return ERR("%s: %s for frame %d camera %d written twice", w->tmp, BLOB_NAMES[b], f, c);
    if (!bl->ds) { // an optional blob's first payload
        hid_t d = blob_dataset_create(w->file, b);
        if (d < 0) return ERR("%s: cannot create dataset blobs/%s", w->tmp, BLOB_NAMES[b]);
        bl->ds = d;
    }
    hsize_t start = (hsize_t)bl->size, cnt = n, newsize = start + n;
    hid_t ds = (hid_t)bl->ds;
    if (H5Dset_extent(ds, &newsize) < 0) return ERR("%s: cannot grow blobs/%s (disk full?)", w->tmp, BLOB_NAMES[b]);
    hid_t fs = H5Dget_space(ds), ms = H5Screate_simple(1, &cnt, NULL);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &cnt, NULL);
    herr_t r = H5Dwrite(ds, H5T_NATIVE_UINT8, ms, fs, H5P_DEFAULT, bytes);
    H5Sclose(ms), H5Sclose(fs);
    if (r < 0) return ERR("%s: writing blobs/%s failed (disk full?)", w->tmp, BLOB_NAMES[b]);
    bl->off[i] = (int64_t)start, bl->len[i] = (int64_t)n, bl->size = (int64_t)newsize;
    bl->crc[i] = crc_of(0, bytes, n);
    return 0;
}

// Per-thread TurboJPEG handles and the reader's payload buffer: workers encode and decode at once, and a
// TurboJPEG handle must not be shared. shard_thread_release() frees them when a worker thread ends.
static _Thread_local tjhandle tl_enc, tl_dec;
static _Thread_local uint8_t *tl_buf;
static _Thread_local size_t tl_cap;

void shard_thread_release(void) {
    if (tl_enc) tjDestroy(tl_enc);
    if (tl_dec) tjDestroy(tl_dec);
    free(tl_buf);
    tl_enc = tl_dec = NULL, tl_buf = NULL, tl_cap = 0;
}

int shard_encode_jpeg(const uint8_t *rgb, int w, int h, int quality, uint8_t **out, size_t *cap, size_t *n) {
    if (!tl_enc) tl_enc = tjInitCompress();
    unsigned long size = tjBufSize(w, h, TJSAMP_444);
    if (*cap < size) {
        free(*out);
        *out = (uint8_t *)mallocCheck(size);
        *cap = size;
    }
    unsigned char *buf = *out;
    unsigned long got = size;
    // TJFLAG_NOREALLOC: encode into our buffer, sized by tjBufSize for the worst case
    if (!tl_enc || tjCompress2(tl_enc, rgb, w, 0, h, TJPF_RGB, &buf, &got, TJSAMP_444, quality,
                               TJFLAG_ACCURATEDCT | TJFLAG_NOREALLOC))
        return -1;
    *n = got;
    return 0;
}

int shard_put_image(ShardWriter *w, int f, int c, const uint8_t *rgb, char *err, size_t errlen) {
    size_t n = 0;
    if (shard_encode_jpeg(rgb, w->m.W, w->m.H, w->quality, &w->jpg, &w->jpg_cap, &n))
        return ERR("%s: JPEG encoding of frame %d camera %d failed", w->tmp, f, c);
    return blob_append(w, SHARD_IMAGE, f, c, w->jpg, n, err, errlen);
}

int shard_put_jpeg(ShardWriter *w, int f, int c, const uint8_t *jpeg, size_t n, char *err, size_t errlen) {
    return blob_append(w, SHARD_IMAGE, f, c, jpeg, n, err, errlen);
}

static int put_zstd(ShardWriter *w, int b, int f, int c, const void *src, size_t n, char *err, size_t errlen) {
    size_t cap = ZSTD_compressBound(n);
    void *dst = mallocCheck(cap);
    size_t z = ZSTD_compress(dst, cap, src, n, 3);
    int r = ZSTD_isError(z) ? ERR("%s: zstd failed: %s", w->tmp, ZSTD_getErrorName(z))
                            : blob_append(w, b, f, c, dst, z, err, errlen);
    free(dst);
    return r;
}

int shard_put_mask(ShardWriter *w, int f, int c, const uint8_t *gray, char *err, size_t errlen) {
    return put_zstd(w, SHARD_MASK, f, c, gray, (size_t)w->m.W * w->m.H, err, errlen);
}

int shard_put_parts(ShardWriter *w, int f, int c, const uint8_t *labels, char *err, size_t errlen) {
    return put_zstd(w, SHARD_PARTS, f, c, labels, (size_t)w->m.W * w->m.H, err, errlen);
}

static size_t aux_floats(const ShardMeta *m, int kind) {
    return kind == SHARD_DUST3R ? (size_t)m->W * m->H * 4 : (size_t)m->sap_h * m->sap_w * m->sap_c;
}

int shard_put_aux(ShardWriter *w, int kind, int f, int c, const float *data, char *err, size_t errlen) {
    if (kind != SHARD_DUST3R && kind != SHARD_SAPIENS) return ERR("%s: unknown aux kind %d", w->tmp, kind);
    if (!aux_floats(&w->m, kind)) return ERR("%s: the shard was created without Sapiens map sizes", w->tmp);
    return put_zstd(w, kind, f, c, data, 4 * aux_floats(&w->m, kind), err, errlen);
}

void shard_set_K(ShardWriter *w, const double *K) { memcpy(w->m.K, K, 8 * 9 * (size_t)w->m.n_frames * w->m.n_cams); }

void shard_abort(ShardWriter *w) {
    if (!w) return;
    for (int b = 0; b < SHARD_NBLOBS; b++) {
        if (w->blob[b].ds > 0) H5Dclose((hid_t)w->blob[b].ds);
        free(w->blob[b].off), free(w->blob[b].len), free(w->blob[b].crc);
    }
    if (w->file >= 0 && w->file) H5Fclose(w->file);
    free(w->jpg);
    unlink(w->tmp);
    meta_free(&w->m);
    free(w);
}

void shard_set_counts(ShardWriter *w, int64_t missing, int64_t corrupt, int64_t no_mask) {
    w->has_counts = 1;
    w->counts[0] = missing, w->counts[1] = corrupt, w->counts[2] = no_mask;
}

int shard_finish(ShardWriter *w, char *err, size_t errlen) {
    const ShardMeta *m = &w->m;
    hsize_t C = m->n_cams, F = m->n_frames;
    hsize_t d_fc[2] = {F, C}, d_c34[3] = {C, 3, 4}, d_fc33[4] = {F, C, 3, 3}, d_f[1] = {F}, d_f34[3] = {F, 3, 4};
    hsize_t d_c[1] = {C}, d_fe[2] = {F, (hsize_t)m->expr_dim};
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, SHARD_ID_LEN);
    int bad = 0;
    hid_t root = H5Gopen2(w->file, "/", H5P_DEFAULT);
    bad |= put_attr_str(root, "format", "avat3r-shard");
    bad |= put_attr_int(root, "version", SHARD_VERSION);
    bad |= put_attr_str(root, "capture", m->capture);
    bad |= put_attr_int(root, "width", m->W);
    bad |= put_attr_int(root, "height", m->H);
    bad |= put_attr_int(root, "jpeg_quality", w->quality);
    bad |= put_attr_int(root, "sapiens_h", m->sap_h);
    bad |= put_attr_int(root, "sapiens_w", m->sap_w);
    bad |= put_attr_int(root, "sapiens_c", m->sap_c);
    const uint32_t mcrc = meta_crc(m, w->blob);
    bad |= put_attr(root, "meta_crc32", H5T_STD_U32LE, H5T_NATIVE_UINT32, &mcrc);
    for (int b = CORE_BLOBS; b < SHARD_NBLOBS; b++) {
        if (!w->blob[b].ds) continue; // no payload of this kind: the shard has no such datasets
        char name[64];
        snprintf(name, sizeof name, "%s_index_crc32", BLOB_NAMES[b]);
        const uint32_t icrc = index_crc(&w->blob[b], (size_t)F * C);
        bad |= put_attr(root, name, H5T_STD_U32LE, H5T_NATIVE_UINT32, &icrc);
    }
    for (int k = 0; k < 3 && w->has_counts; k++) bad |= put_attr(root, COUNT_NAMES[k], H5T_STD_I64LE, H5T_NATIVE_INT64, &w->counts[k]);
    H5Gclose(root);
    bad |= put_ds(w->file, "camera_ids", st, st, 1, d_c, m->cam_ids);
    bad |= put_ds(w->file, "w2c", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 3, d_c34, m->w2c);
    bad |= put_ds(w->file, "K", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 4, d_fc33, m->K);
    bad |= put_ds(w->file, "frame_ids", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, d_f, m->frame_ids);
    bad |= put_ds(w->file, "head_pose", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 3, d_f34, m->head_pose);
    if (m->expr_dim) bad |= put_ds(w->file, "expr", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, d_fe, m->expr);
    H5Tclose(st);
    for (int b = 0; b < SHARD_NBLOBS; b++) {
        if (!w->blob[b].ds) continue; // an optional blob without payloads
        char name[64];
        snprintf(name, sizeof name, "blobs/%s_offset", BLOB_NAMES[b]);
        bad |= put_ds(w->file, name, H5T_STD_I64LE, H5T_NATIVE_INT64, 2, d_fc, w->blob[b].off);
        snprintf(name, sizeof name, "blobs/%s_length", BLOB_NAMES[b]);
        bad |= put_ds(w->file, name, H5T_STD_I64LE, H5T_NATIVE_INT64, 2, d_fc, w->blob[b].len);
        snprintf(name, sizeof name, "blobs/%s_crc32", BLOB_NAMES[b]);
        bad |= put_ds(w->file, name, H5T_STD_U32LE, H5T_NATIVE_UINT32, 2, d_fc, w->blob[b].crc);
        H5Dclose((hid_t)w->blob[b].ds);
        w->blob[b].ds = 0;
    }
    bad |= H5Fclose(w->file) < 0;
    w->file = 0;
    if (bad) {
        ERR("%s: writing or closing the shard failed (disk full?)", w->tmp);
        shard_abort(w);
        return -1;
    }
    // the bytes on disk before the name: a crash after the rename must not leave a torn shard
    int fd = open(w->tmp, O_RDONLY);
    if (fd < 0 || fsync(fd) != 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        ERR("%s: fsync failed: %s (disk full or I/O error?)", w->tmp, strerror(e));
        shard_abort(w);
        return -1;
    }
    close(fd);
    if (rename(w->tmp, w->path) != 0) {
        ERR("%s: cannot rename to %s: %s", w->tmp, w->path, strerror(errno));
        shard_abort(w);
        return -1;
    }
    w->tmp[0] = 0; // nothing left to unlink
    shard_abort(w);
    return 0;
}

// ---- reader ----

int shard_open(Shard *s, const char *path, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    h5_init();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    snprintf(s->path, sizeof s->path, "%s", path);
    if (access(path, R_OK) != 0) return ERR("%s: cannot read the file", path);
    if (H5Fis_hdf5(path) <= 0) return ERR("%s: not an HDF5 file (or truncated)", path);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return ERR("%s: cannot open as HDF5", path);
    s->file = f;
    char fmt[64] = "";
    int ver = 0;
    ShardMeta *m = &s->m;
    if (get_attr_str(f, "format", fmt, sizeof fmt) || strcmp(fmt, "avat3r-shard")) {
        H5Fclose(f);
        return ERR("%s: not an avat3r shard (attribute 'format' missing or wrong)", path);
    }
    if (get_attr_int(f, "version", &ver) || ver != SHARD_VERSION) {
        H5Fclose(f);
        return ERR("%s: shard version %d, this build reads %d", path, ver, SHARD_VERSION);
    }
    get_attr_str(f, "capture", m->capture, sizeof m->capture);
    if (get_attr_int(f, "width", &m->W) || get_attr_int(f, "height", &m->H) || m->W < 1 || m->H < 1 ||
        m->W > SHARD_MAX_SIDE || m->H > SHARD_MAX_SIDE) {
        H5Fclose(f);
        return ERR("%s: attributes 'width'/'height' missing or outside 1..%d", path, SHARD_MAX_SIDE);
    }
    get_attr_int(f, "sapiens_h", &m->sap_h), get_attr_int(f, "sapiens_w", &m->sap_w), get_attr_int(f, "sapiens_c", &m->sap_c);
    uint32_t want_meta_crc = 0;
    const int has_meta_crc = get_attr(f, "meta_crc32", H5T_NATIVE_UINT32, &want_meta_crc) == 0;
    // callers size buffers from these: all 0 (no maps) or all positive, with a bounded product
    int sap_none = !m->sap_h && !m->sap_w && !m->sap_c;
    if (!sap_none && (m->sap_h < 1 || m->sap_w < 1 || m->sap_c < 1 ||
                      (int64_t)m->sap_h * m->sap_w * m->sap_c > SHARD_MAX_AUX_FLOATS)) {
        H5Fclose(f);
        return ERR("%s: attributes 'sapiens_h/w/c' = %d, %d, %d: expected all 0 or positive with at most %d floats",
                   path, m->sap_h, m->sap_w, m->sap_c, SHARD_MAX_AUX_FLOATS);
    }
    // sizes from the index datasets
    hid_t d = H5Dopen2(f, "K", H5P_DEFAULT);
    hsize_t dims[4] = {0};
    if (d < 0 || H5Sget_simple_extent_ndims(H5Dget_space(d)) != 4) {
        if (d >= 0) H5Dclose(d);
        H5Fclose(f);
        return ERR("%s: dataset 'K' missing or not [frames, cameras, 3, 3]", path);
    }
    hid_t sp = H5Dget_space(d);
    H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp), H5Dclose(d);
    // the index arrays below are allocated from these dims before any data is read: bound them
    if (dims[1] < 1 || dims[1] > SHARD_MAX_CAMS || dims[0] < 1 || dims[0] > SHARD_MAX_SAMPLES / dims[1] ||
        dims[2] != 3 || dims[3] != 3) {
        H5Fclose(f);
        return ERR("%s: dataset 'K' has shape [%llu, %llu, %llu, %llu]; expected [frames, cameras, 3, 3] with at most %d "
                   "cameras and %d (frame, camera) pairs", path, (unsigned long long)dims[0], (unsigned long long)dims[1],
                   (unsigned long long)dims[2], (unsigned long long)dims[3], SHARD_MAX_CAMS, SHARD_MAX_SAMPLES);
    }
    m->n_frames = (int)dims[0], m->n_cams = (int)dims[1];
    size_t C = m->n_cams, F = m->n_frames;
    m->cam_ids = (char(*)[SHARD_ID_LEN])callocCheck(C, SHARD_ID_LEN);
    m->w2c = (double *)mallocCheck(8 * 12 * C);
    m->K = (double *)mallocCheck(8 * 9 * F * C);
    m->frame_ids = (int32_t *)mallocCheck(4 * F);
    m->head_pose = (double *)mallocCheck(8 * 12 * F);
    hsize_t d_c[1] = {C}, d_c34[3] = {C, 3, 4}, d_fc33[4] = {F, C, 3, 3}, d_f[1] = {F}, d_f34[3] = {F, 3, 4};
    hsize_t d_fc[2] = {F, C};
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, SHARD_ID_LEN);
    int rc = get_ds(f, path, "camera_ids", st, 1, d_c, m->cam_ids, err, errlen);
    H5Tclose(st);
    if (!rc) rc = get_ds(f, path, "w2c", H5T_NATIVE_DOUBLE, 3, d_c34, m->w2c, err, errlen);
    if (!rc) rc = get_ds(f, path, "K", H5T_NATIVE_DOUBLE, 4, d_fc33, m->K, err, errlen);
    if (!rc) rc = get_ds(f, path, "frame_ids", H5T_NATIVE_INT32, 1, d_f, m->frame_ids, err, errlen);
    if (!rc) rc = get_ds(f, path, "head_pose", H5T_NATIVE_DOUBLE, 3, d_f34, m->head_pose, err, errlen);
    if (!rc && H5Lexists(f, "expr", H5P_DEFAULT) > 0) {
        hid_t e = H5Dopen2(f, "expr", H5P_DEFAULT), es = H5Dget_space(e);
        hsize_t ed[2] = {0};
        if (H5Sget_simple_extent_ndims(es) == 2) H5Sget_simple_extent_dims(es, ed, NULL);
        H5Sclose(es), H5Dclose(e);
        if (ed[0] != F || ed[1] < 1 || ed[1] > 65536) rc = ERR("%s: dataset 'expr' is not [frames, dim]", path);
        else {
            m->expr_dim = (int)ed[1];
            m->expr = (float *)mallocCheck(4 * F * ed[1]);
            hsize_t dfe[2] = {F, ed[1]};
            rc = get_ds(f, path, "expr", H5T_NATIVE_FLOAT, 2, dfe, m->expr, err, errlen);
        }
    }
    for (int b = 0; !rc && b < SHARD_NBLOBS; b++) {
        char name[64];
        ShardBlob *bl = &s->blob[b];
        bl->off = (int64_t *)callocCheck(F * C, 8);
        bl->len = (int64_t *)callocCheck(F * C, 8);
        snprintf(name, sizeof name, "blobs/%s", BLOB_NAMES[b]);
        if (b >= CORE_BLOBS && H5Lexists(f, name, H5P_DEFAULT) <= 0) continue; // optional, absent: no payloads
        hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
        if (ds < 0) {
            rc = ERR("%s: dataset '%s' missing", path, name);
            break;
        }
        hid_t bs = H5Dget_space(ds);
        hsize_t total = 0;
        int rank = H5Sget_simple_extent_ndims(bs);
        if (rank == 1) H5Sget_simple_extent_dims(bs, &total, NULL); // a 1-element array: check the rank first
        H5Sclose(bs);
        bl->ds = ds, bl->size = (int64_t)total;
        if (rank != 1 || total > (hsize_t)INT64_MAX) {
            rc = ERR("%s: dataset '%s' is not a 1-D byte array", path, name);
            break;
        }
        snprintf(name, sizeof name, "blobs/%s_offset", BLOB_NAMES[b]);
        rc = get_ds(f, path, name, H5T_NATIVE_INT64, 2, d_fc, bl->off, err, errlen);
        snprintf(name, sizeof name, "blobs/%s_length", BLOB_NAMES[b]);
        if (!rc) rc = get_ds(f, path, name, H5T_NATIVE_INT64, 2, d_fc, bl->len, err, errlen);
        snprintf(name, sizeof name, "blobs/%s_crc32", BLOB_NAMES[b]);
        if (!rc && (has_meta_crc || H5Lexists(f, name, H5P_DEFAULT) > 0)) { // absent in shards written before checksums
            bl->crc = (uint32_t *)mallocCheck(4 * F * C);
            rc = get_ds(f, path, name, H5T_NATIVE_UINT32, 2, d_fc, bl->crc, err, errlen);
        }
        for (size_t i = 0; !rc && i < F * C; i++) {
            if (bl->len[i] < 0 || bl->off[i] < 0 || bl->len[i] > bl->size - bl->off[i] || bl->len[i] > SHARD_MAX_PAYLOAD)
                rc = ERR("%s: blobs/%s index entry %zu points outside the blob (corrupt file)", path, BLOB_NAMES[b], i);
            s->has[b] |= bl->len[i] > 0;
        }
        if (!rc && b >= CORE_BLOBS && has_meta_crc) { // an optional blob's index has its own CRC attribute
            uint32_t want = 0, got = 0;
            snprintf(name, sizeof name, "%s_index_crc32", BLOB_NAMES[b]);
            if (get_attr(f, name, H5T_NATIVE_UINT32, &want) != 0)
                rc = ERR("%s: blobs/%s is present but attribute %s is missing: corrupt file; re-pack the capture", path,
                         BLOB_NAMES[b], name);
            else if (got = index_crc(bl, F * C), CRC_DIFFERS(got, want))
                rc = ERR("%s: the index of blobs/%s fails its CRC-32 check (attribute %s %08x, computed %08x): corrupt "
                         "file; re-pack the capture", path, BLOB_NAMES[b], name, want, got);
        }
    }
    if (!rc && has_meta_crc) {
        int all = 1;
        for (int b = 0; b < CORE_BLOBS; b++) all &= s->blob[b].crc != NULL;
        uint32_t got = all ? meta_crc(m, s->blob) : 0;
        if (!all || CRC_DIFFERS(got, want_meta_crc))
            rc = ERR("%s: the metadata (cameras, intrinsics, frames, head poses, codes, payload index) fails its CRC-32 "
                     "check (attribute meta_crc32 %08x, computed %08x): corrupt file; re-pack the capture",
                     path, want_meta_crc, got);
    }
    if (rc) {
        shard_close(s);
        return -1;
    }
    // the packer's counts: informational (not in meta_crc32), so values that cannot be right — negative, or
    // more than the (frame, camera) pairs without an image — read as unknown rather than failing the shard
    int64_t cnt[3], absent = 0, sum = 0;
    int ok = 1;
    for (size_t i = 0; i < F * C; i++) absent += s->blob[SHARD_IMAGE].len[i] == 0;
    for (int k = 0; k < 3; k++) {
        ok &= get_attr(f, COUNT_NAMES[k], H5T_NATIVE_INT64, &cnt[k]) == 0 && cnt[k] >= 0 && cnt[k] <= absent;
        if (ok) sum += cnt[k];
    }
    ok &= sum <= absent;
    s->missing_images = ok ? cnt[0] : -1, s->corrupt_images = ok ? cnt[1] : -1, s->no_mask_images = ok ? cnt[2] : -1;
    pthread_mutex_init(&s->lock, NULL);
    return 0;
}

void shard_close(Shard *s) {
    for (int b = 0; b < SHARD_NBLOBS; b++) {
        if (s->blob[b].ds > 0) H5Dclose((hid_t)s->blob[b].ds);
        free(s->blob[b].off), free(s->blob[b].len), free(s->blob[b].crc);
    }
    if (s->file > 0) {
        H5Fclose((hid_t)s->file);
        pthread_mutex_destroy(&s->lock);
    }
    meta_free(&s->m);
    memset(s, 0, sizeof *s);
}

// Payload bytes of (b, f, c) into the thread's buffer. 1 = missing.

static int read_payload(Shard *s, int b, int f, int c, const uint8_t **out, size_t *n, char *err, size_t errlen) {
    if (f < 0 || f >= s->m.n_frames || c < 0 || c >= s->m.n_cams)
        return ERR("%s: frame %d / camera %d out of range", s->path, f, c);
    size_t i = (size_t)f * s->m.n_cams + c;
    int64_t len = s->blob[b].len[i];
    if (len == 0) return 1;
    if ((size_t)len > tl_cap) {
        free(tl_buf);
        tl_cap = (size_t)len + (size_t)len / 4;
        tl_buf = (uint8_t *)mallocCheck(tl_cap);
    }
    hsize_t start = (hsize_t)s->blob[b].off[i], cnt = (hsize_t)len;
    pthread_mutex_lock(&s->lock);
    hid_t ds = (hid_t)s->blob[b].ds, fs = H5Dget_space(ds), ms = H5Screate_simple(1, &cnt, NULL);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &cnt, NULL);
    herr_t r = H5Dread(ds, H5T_NATIVE_UINT8, ms, fs, H5P_DEFAULT, tl_buf);
    H5Sclose(ms), H5Sclose(fs);
    pthread_mutex_unlock(&s->lock);
    if (r < 0) return ERR("%s: reading blobs/%s for frame %d camera %d failed (corrupt file?)", s->path, BLOB_NAMES[b], f, c);
    if (s->blob[b].crc) {
        uint32_t got = crc_of(0, tl_buf, (size_t)len);
        if (CRC_DIFFERS(got, s->blob[b].crc[i]))
            return ERR("%s: blobs/%s of frame %d camera %d fails its CRC-32 check (stored %08x, read %08x): corrupt "
                       "bytes", s->path, BLOB_NAMES[b], f, c, s->blob[b].crc[i], got);
    }
    *out = tl_buf, *n = (size_t)len;
    return 0;
}

int shard_get_image(Shard *s, int f, int c, uint8_t *rgb, char *err, size_t errlen) {
    const uint8_t *p = NULL;
    size_t n = 0;
    int r = read_payload(s, SHARD_IMAGE, f, c, &p, &n, err, errlen);
    if (r) return r;
    if (!tl_dec) tl_dec = tjInitDecompress();
    tjhandle tj = tl_dec;
    int w = 0, h = 0, sub = 0, cs = 0;
    if (!tj || tjDecompressHeader3(tj, p, n, &w, &h, &sub, &cs) || w != s->m.W || h != s->m.H)
        return ERR("%s: image of frame %d camera %d is not a %dx%d JPEG (corrupt?)", s->path, f, c, s->m.W, s->m.H);
    if (tjDecompress2(tj, p, n, rgb, w, 0, h, TJPF_RGB, TJFLAG_ACCURATEDCT))
        return ERR("%s: JPEG of frame %d camera %d: %s", s->path, f, c, tjGetErrorStr2(tj));
    return 0;
}

static int get_zstd(Shard *s, int b, int f, int c, void *dst, size_t want, char *err, size_t errlen) {
    const uint8_t *p = NULL;
    size_t n = 0;
    int r = read_payload(s, b, f, c, &p, &n, err, errlen);
    if (r) return r;
    size_t got = ZSTD_decompress(dst, want, p, n);
    if (ZSTD_isError(got) || got != want)
        return ERR("%s: blobs/%s of frame %d camera %d: %s", s->path, BLOB_NAMES[b], f, c,
                   ZSTD_isError(got) ? ZSTD_getErrorName(got) : "wrong decompressed size");
    return 0;
}

int shard_get_mask(Shard *s, int f, int c, uint8_t *gray, char *err, size_t errlen) {
    return get_zstd(s, SHARD_MASK, f, c, gray, (size_t)s->m.W * s->m.H, err, errlen);
}

int shard_get_parts(Shard *s, int f, int c, uint8_t *labels, char *err, size_t errlen) {
    return get_zstd(s, SHARD_PARTS, f, c, labels, (size_t)s->m.W * s->m.H, err, errlen);
}

int shard_get_aux(Shard *s, int kind, int f, int c, float *data, char *err, size_t errlen) {
    if (kind != SHARD_DUST3R && kind != SHARD_SAPIENS) return ERR("%s: unknown aux kind %d", s->path, kind);
    return get_zstd(s, kind, f, c, data, 4 * aux_floats(&s->m, kind), err, errlen);
}
