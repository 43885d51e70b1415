// ava256_write.c — writers for the ava256 layout (see ava256_write.h).
#include "ava256_write.h"

#include <avif/avif.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ava256_write.c writes little-endian files by copying memory: port the byte order first"
#endif

void avw_mkdirs(const char *path) {
    if (mkdir_p(path)) FATAL("mkdir -p '%s': %s", path, strerror(errno));
}

void avw_capture_name(char *buf, size_t n, const char *mcd, const char *mct, const char *sid) {
    snprintf(buf, n, "%s--%s--%s", mcd, mct, sid);
}

// ----------------------------------------------------------------------------------------------
// text files

static void write_text(const char *path, const char *text) {
    AtomicFile af;
    atomicOpen(&af, path);
    fwriteCheck(text, 1, strlen(text), af.f);
    atomicClose(&af);
}

void avw_write_calibration(const char *path, const AvwCamera *cams, int n) {
    cJSON *root = cJSON_CreateObject(), *krt = cJSON_AddArrayToObject(root, "KRT");
    for (int c = 0; c < n; c++) {
        const AvwCamera *cam = &cams[c];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "cameraId", cam->id);
        cJSON_AddStringToObject(o, "projectionModel", "Pinhole");
        cJSON_AddStringToObject(o, "distortionModel", "RadialAndTangential");
        // K stored transposed: rows [fx,0,0], [0,fy,0], [cx,cy,1]
        cJSON *K = cJSON_AddArrayToObject(o, "K");
        for (int i = 0; i < 3; i++) {
            cJSON *row = cJSON_CreateArray();
            for (int j = 0; j < 3; j++) cJSON_AddItemToArray(row, cJSON_CreateNumber(cam->K[3 * j + i]));
            cJSON_AddItemToArray(K, row);
        }
        cJSON *d = cJSON_AddArrayToObject(o, "distortion");
        for (int k = 0; k < 4; k++) cJSON_AddItemToArray(d, cJSON_CreateNumber(cam->dist[k]));
        // T = transpose of [[R, t], [0, 0, 0, 1]]: rows 0..2 are R's columns (then 0), row 3 is (t, 1)
        cJSON *T = cJSON_AddArrayToObject(o, "T");
        for (int i = 0; i < 4; i++) {
            cJSON *row = cJSON_CreateArray();
            for (int j = 0; j < 4; j++) {
                double v = i < 3 ? (j < 3 ? cam->R[3 * j + i] : 0) : (j < 3 ? cam->t[j] : 1);
                cJSON_AddItemToArray(row, cJSON_CreateNumber(v));
            }
            cJSON_AddItemToArray(T, row);
        }
        cJSON_AddItemToArray(krt, o);
    }
    char *s = cJSON_Print(root);
    if (!s) FATAL("cJSON_Print failed for %s", path);
    size_t len = strlen(s);
    char *t = (char *)mallocCheck(len + 2);
    memcpy(t, s, len);
    t[len] = '\n', t[len + 1] = 0;
    write_text(path, t);
    free(t);
    cJSON_free(s);
    cJSON_Delete(root);
}

void avw_write_frame_list(const char *path, const char *const *seg, const int64_t *frame, int n) {
    size_t cap = 32 + (size_t)n * 96;
    char *buf = (char *)mallocCheck(cap);
    size_t len = (size_t)snprintf(buf, cap, "seg_id,frame_id\n");
    for (int i = 0; i < n; i++) len += (size_t)snprintf(buf + len, cap - len, "%s,%" PRId64 "\n", seg[i], frame[i]);
    write_text(path, buf);
    free(buf);
}

void avw_write_ids(const char *path, const char *const *mcd, const char *const *sid, const char *const *mct, int n) {
    size_t cap = 32 + (size_t)n * 96;
    char *buf = (char *)mallocCheck(cap);
    size_t len = (size_t)snprintf(buf, cap, "mcd,sid,mct\n");
    for (int i = 0; i < n; i++) len += (size_t)snprintf(buf + len, cap - len, "%s,%s,%s\n", mcd[i], sid[i], mct[i]);
    write_text(path, buf);
    free(buf);
}

int avw_head_pose_text(char *buf, size_t n, const double R[9], const double t[3]) {
    int len = 0;
    for (int i = 0; i < 3; i++)
        len +=
            snprintf(buf + len, n - (size_t)len, "%.9g %.9g %.9g %.9g\n", R[3 * i], R[3 * i + 1], R[3 * i + 2], t[i]);
    return len;
}

void avw_member_image(char *b, size_t n, const char *cam, int64_t f) {
    snprintf(b, n, "cam%s/%06" PRId64 ".avif", cam, f);
}
void avw_member_mask(char *b, size_t n, int64_t f) { snprintf(b, n, "%06" PRId64 ".avif", f); }
void avw_member_seg(char *b, size_t n, const char *cam, int64_t f) {
    snprintf(b, n, "cam%s/%06" PRId64 ".png", cam, f);
}
void avw_member_pose(char *b, size_t n, int64_t f) { snprintf(b, n, "%06" PRId64 ".txt", f); }
void avw_member_plate(char *b, size_t n, const char *cam) { snprintf(b, n, "%s.avif", cam); }
void avw_member_npy(char *b, size_t n, int64_t f) { snprintf(b, n, "%06" PRId64 ".npy", f); }

// ----------------------------------------------------------------------------------------------
// zip (PKWARE APPNOTE 6.3: local header + data per member, central directory, end records)

typedef struct {
    uint8_t b[128];
    int n;
} Bytes;
static void put16(Bytes *o, unsigned v) { o->b[o->n++] = (uint8_t)v, o->b[o->n++] = (uint8_t)(v >> 8); }
static void put32(Bytes *o, uint32_t v) { put16(o, v & 0xFFFF), put16(o, v >> 16); }
static void put64(Bytes *o, uint64_t v) { put32(o, (uint32_t)v), put32(o, (uint32_t)(v >> 32)); }

#define ZIP_DOS_DATE 0x0021   // 1980-01-01: fixed, so archives are byte-identical run to run
#define ZIP_MADE_BY (3u << 8) // unix

static void zwrite(AvwZip *z, const void *p, size_t n) {
    fwriteCheck(p, 1, n, z->af.f);
    z->pos += n;
}

void avw_zip_open(AvwZip *z, const char *path) {
    memset(z, 0, sizeof *z);
    atomicOpen(&z->af, path);
}

void avw_zip_add(AvwZip *z, const char *name, const void *data, size_t size) {
    size_t nl = strlen(name);
    if (size >= 0xFFFFFFFFu)
        FATAL("zip member %s of %s is %zu bytes: members over 4 GiB are not supported", name, z->af.path, size);
    if (nl == 0 || nl > 0xFFFF) FATAL("bad zip member name '%s'", name);
    if (z->n == z->cap) {
        z->cap = z->cap ? 2 * z->cap : 256;
        z->e = (AvwZipEntry *)realloc(z->e, sizeof(AvwZipEntry) * z->cap);
        if (!z->e) FATAL("out of memory indexing %s", z->af.path);
    }
    AvwZipEntry *e = &z->e[z->n++];
    e->name = strdup(name);
    if (!e->name) FATAL("out of memory");
    e->crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), (const Bytef *)data, (uInt)size);
    e->size = (uint32_t)size;
    e->offset = z->pos;
    Bytes h = {{0}, 0};
    put32(&h, 0x04034b50), put16(&h, 20), put16(&h, 0), put16(&h, 0); // signature, version 2.0, flags, STORED
    put16(&h, 0), put16(&h, ZIP_DOS_DATE), put32(&h, e->crc), put32(&h, e->size), put32(&h, e->size);
    put16(&h, (unsigned)nl), put16(&h, 0);
    zwrite(z, h.b, (size_t)h.n);
    zwrite(z, name, nl);
    if (size) zwrite(z, data, size);
}

void avw_zip_close(AvwZip *z) {
    uint64_t cd_off = z->pos;
    int any64 = z->force_zip64;
    for (int i = 0; i < z->n; i++) {
        AvwZipEntry *e = &z->e[i];
        int big = e->offset >= 0xFFFFFFFFu || z->force_zip64;
        any64 |= big;
        Bytes x = {{0}, 0}, h = {{0}, 0};
        if (big) { // ZIP64 extra field: the fields set to 0xFFFFFFFF, in APPNOTE order
            put16(&x, 0x0001), put16(&x, z->force_zip64 ? 24 : 8);
            if (z->force_zip64) put64(&x, e->size), put64(&x, e->size);
            put64(&x, e->offset);
        }
        uint32_t sz = z->force_zip64 ? 0xFFFFFFFFu : e->size;
        size_t nl = strlen(e->name);
        put32(&h, 0x02014b50), put16(&h, ZIP_MADE_BY | (big ? 45 : 20)), put16(&h, big ? 45 : 20);
        put16(&h, 0), put16(&h, 0), put16(&h, 0), put16(&h, ZIP_DOS_DATE);
        put32(&h, e->crc), put32(&h, sz), put32(&h, sz), put16(&h, (unsigned)nl), put16(&h, (unsigned)x.n);
        put16(&h, 0), put16(&h, 0), put16(&h, 0), put32(&h, 0100644u << 16); // comment, disk, attrs (-rw-r--r--)
        put32(&h, big ? 0xFFFFFFFFu : (uint32_t)e->offset);
        zwrite(z, h.b, (size_t)h.n);
        zwrite(z, e->name, nl);
        zwrite(z, x.b, (size_t)x.n);
    }
    uint64_t cd_size = z->pos - cd_off, n = (uint64_t)z->n;
    any64 |= n >= 0xFFFF || cd_off >= 0xFFFFFFFFu || cd_size >= 0xFFFFFFFFu;
    Bytes h = {{0}, 0};
    if (any64) {
        uint64_t rec = z->pos;
        put32(&h, 0x06064b50), put64(&h, 44), put16(&h, ZIP_MADE_BY | 45), put16(&h, 45), put32(&h, 0), put32(&h, 0);
        put64(&h, n), put64(&h, n), put64(&h, cd_size), put64(&h, cd_off);
        put32(&h, 0x07064b50), put32(&h, 0), put64(&h, rec), put32(&h, 1); // locator
    }
    unsigned n16 = any64 ? 0xFFFF : (unsigned)n;
    put32(&h, 0x06054b50), put16(&h, 0), put16(&h, 0), put16(&h, n16), put16(&h, n16);
    put32(&h, any64 ? 0xFFFFFFFFu : (uint32_t)cd_size), put32(&h, any64 ? 0xFFFFFFFFu : (uint32_t)cd_off), put16(&h, 0);
    zwrite(z, h.b, (size_t)h.n);
    atomicClose(&z->af);
    for (int i = 0; i < z->n; i++) free(z->e[i].name);
    free(z->e);
    z->e = NULL, z->n = z->cap = 0;
}

// ----------------------------------------------------------------------------------------------
// AVIF, PNG, NPY

static uint8_t *avif_encode(avifImage *img, const AvwAvifOpts *o, size_t *size) {
    avifEncoder *e = avifEncoderCreate();
    if (!e) FATAL("avifEncoderCreate failed");
    e->maxThreads = 1; // deterministic output; callers parallelise over images
    e->speed = o->speed;
    int q = o->lossy ? o->quantizer : AVIF_QUANTIZER_LOSSLESS;
    e->minQuantizer = e->maxQuantizer = q;
    e->minQuantizerAlpha = e->maxQuantizerAlpha = q;
    if (avifCodecName(AVIF_CODEC_CHOICE_AOM, AVIF_CODEC_FLAG_CAN_ENCODE)) e->codecChoice = AVIF_CODEC_CHOICE_AOM;
    avifRWData out = AVIF_DATA_EMPTY;
    avifResult r = avifEncoderWrite(e, img, &out);
    if (r != AVIF_RESULT_OK)
        FATAL("AVIF encode failed: %s (libavif %s; needs an AV1 encoder: aom, rav1e or svt)", avifResultToString(r),
              avifVersion());
    uint8_t *bytes = (uint8_t *)mallocCheck(out.size);
    memcpy(bytes, out.data, out.size);
    *size = out.size;
    avifRWDataFree(&out);
    avifEncoderDestroy(e);
    return bytes;
}

uint8_t *avw_avif_rgb8(const uint8_t *rgb, int W, int H, const AvwAvifOpts *o, size_t *size) {
    avifImage *img = avifImageCreate(W, H, 8, o->lossy ? AVIF_PIXEL_FORMAT_YUV420 : AVIF_PIXEL_FORMAT_YUV444);
    if (!img) FATAL("avifImageCreate failed");
    img->colorPrimaries = AVIF_COLOR_PRIMARIES_BT709;
    img->transferCharacteristics = AVIF_TRANSFER_CHARACTERISTICS_SRGB;
    img->matrixCoefficients = o->lossy ? AVIF_MATRIX_COEFFICIENTS_BT601 : AVIF_MATRIX_COEFFICIENTS_IDENTITY;
    img->yuvRange = AVIF_RANGE_FULL;
    avifRGBImage ri;
    avifRGBImageSetDefaults(&ri, img);
    ri.format = AVIF_RGB_FORMAT_RGB;
    ri.depth = 8;
    ri.pixels = (uint8_t *)rgb;
    ri.rowBytes = (uint32_t)W * 3;
    avifResult r = avifImageRGBToYUV(img, &ri);
    if (r != AVIF_RESULT_OK) FATAL("avifImageRGBToYUV: %s", avifResultToString(r));
    uint8_t *out = avif_encode(img, o, size);
    avifImageDestroy(img);
    return out;
}

uint8_t *avw_avif_gray8(const uint8_t *g, int W, int H, const AvwAvifOpts *o, size_t *size) {
    avifImage *img = avifImageCreate(W, H, 8, AVIF_PIXEL_FORMAT_YUV400);
    if (!img) FATAL("avifImageCreate failed");
    img->colorPrimaries = AVIF_COLOR_PRIMARIES_BT709;
    img->transferCharacteristics = AVIF_TRANSFER_CHARACTERISTICS_SRGB;
    img->matrixCoefficients = AVIF_MATRIX_COEFFICIENTS_BT601; // (identity needs 4:4:4; grey is Y anyway)
    img->yuvRange = AVIF_RANGE_FULL;
    avifResult r = avifImageAllocatePlanes(img, AVIF_PLANES_YUV);
    if (r != AVIF_RESULT_OK) FATAL("avifImageAllocatePlanes: %s", avifResultToString(r));
    for (int y = 0; y < H; y++)
        memcpy(img->yuvPlanes[AVIF_CHAN_Y] + (size_t)y * img->yuvRowBytes[AVIF_CHAN_Y], g + (size_t)y * W, (size_t)W);
    uint8_t *out = avif_encode(img, o, size);
    avifImageDestroy(img);
    return out;
}

uint8_t *avw_png_gray8(const uint8_t *g, int W, int H, size_t *size) {
    png_image p;
    memset(&p, 0, sizeof p);
    p.version = PNG_IMAGE_VERSION;
    p.width = (png_uint_32)W, p.height = (png_uint_32)H, p.format = PNG_FORMAT_GRAY;
    png_alloc_size_t n = 0;
    if (!png_image_write_to_memory(&p, NULL, &n, 0, g, 0, NULL)) FATAL("PNG size: %s", p.message);
    uint8_t *buf = (uint8_t *)mallocCheck(n);
    if (!png_image_write_to_memory(&p, buf, &n, 0, g, 0, NULL)) FATAL("PNG encode: %s", p.message);
    *size = n;
    return buf;
}

uint8_t *avw_npy_f32(const float *x, const int64_t *shape, int ndim, size_t *size) {
    char hdr[256], dims[160] = "";
    size_t count = 1, dl = 0;
    for (int i = 0; i < ndim; i++) {
        dl += (size_t)snprintf(dims + dl, sizeof dims - dl, "%" PRId64 "%s", shape[i],
                               ndim == 1 ? "," : (i < ndim - 1 ? ", " : ""));
        count *= (size_t)shape[i];
    }
    int hl = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", dims);
    int total = 10 + hl + 1, pad = (64 - total % 64) % 64; // magic(6) ver(2) len(2) dict pad '\n'
    int hlen = hl + pad + 1;
    *size = 10 + (size_t)hlen + 4 * count;
    uint8_t *b = (uint8_t *)mallocCheck(*size);
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    b[8] = (uint8_t)hlen, b[9] = (uint8_t)(hlen >> 8);
    memcpy(b + 10, hdr, (size_t)hl);
    memset(b + 10 + hl, ' ', (size_t)pad);
    b[10 + hl + pad] = '\n';
    memcpy(b + 10 + hlen, x, 4 * count);
    return b;
}

// ----------------------------------------------------------------------------------------------
// expression codes: a pickle, written by Python (numpy arrays pickle through numpy's own reducers)

static int run_python(const char *python, const char *script, const char *a1, const char *a2) {
    char cmd[13000];
    if (strchr(python, '\'') || strchr(script, '\'') || strchr(a1, '\'') || (a2 && strchr(a2, '\'')))
        FATAL("paths with single quotes are not supported: %s %s %s", python, script, a1);
    if (access(script, R_OK) != 0)
        FATAL("missing %s (the expression-code pickle writer; set AVAT3R_SOURCE_ROOT to the source tree)", script);
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s'%s%s%s", python, script, a1, a2 ? " '" : "", a2 ? a2 : "", a2 ? "'" : "");
    fflush(stdout);
    int st = system(cmd);
    int rc = st == -1 ? -1 : (WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    if (rc == 127)
        FATAL("cannot run %s: the expression-code pickle needs Python 3 with numpy (--python or AVAT3R_PYTHON)",
              python);
    if (rc == 3)
        FATAL("%s has no numpy: the expression-code pickle needs it (apt-get install python3-numpy, or --python)",
              python);
    return rc;
}

void avw_check_pickle_writer(const char *python, const char *script) {
    int rc = run_python(python, script, "--check", NULL);
    if (rc != 0) FATAL("'%s %s --check' failed (exit %d)", python, script, rc);
}

void avw_write_codes_pickle(const char *python, const char *script, const char *pkl_path, const int64_t *frame,
                            const float *codes, int n, int dim) {
    char raw[4200];
    snprintf(raw, sizeof raw, "%s.raw.%d", pkl_path, (int)getpid());
    FILE *f = fopenCheck(raw, "wb");
    uint32_t v[2] = {1, (uint32_t)dim};
    uint64_t nn = (uint64_t)n;
    fwriteCheck("AVSYCODE", 1, 8, f);
    fwriteCheck(v, 4, 2, f);
    fwriteCheck(&nn, 8, 1, f);
    fwriteCheck(frame, 8, (size_t)n, f);
    fwriteCheck(codes, 4, (size_t)n * dim, f);
    fcloseCheck(f);
    int rc = run_python(python, script, raw, pkl_path);
    remove(raw);
    if (rc != 0) FATAL("writing %s failed (exit %d)", pkl_path, rc);
}
