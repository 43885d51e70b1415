// pack.c — one ava256 capture into one shard (see pack.h). Cameras are processed in parallel, each
// worker with its own capture handle (zip handles are per thread); only the shard writes are serialised.
#include "pack.h"

#include <limits.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/timer.h"
#include "../common/util.h"
#include <zip.h>

#include "ava256.h"
#include "ava256_internal.h"
#include "npy.h"
#include "shard.h"

void pack_capture_name(const char *dir, char *out, size_t n) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", dir);
    size_t L = strlen(tmp);
    while (L && tmp[L - 1] == '/') tmp[--L] = 0;
    if (L >= 8 && !strcmp(tmp + L - 8, "/decoder")) tmp[L - 8] = 0;
    const char *slash = strrchr(tmp, '/');
    snprintf(out, n, "%s", slash ? slash + 1 : tmp);
}

int pack_crop_side(int w, int h, double crop) {
    int m = w < h ? w : h;
    if (!(crop > 0) || crop >= 1) return m;
    int s = (int)lround(crop * m);
    return s < 1 ? 1 : s;
}

void pack_crop_origin(int w, int h, int side, double cx, double cy, int *x0, int *y0) {
    double fx = floor(cx - side / 2.0 + 0.5), fy = floor(cy - side / 2.0 + 0.5);
    if (!isfinite(fx)) fx = (w - side) / 2.0;
    if (!isfinite(fy)) fy = (h - side) / 2.0;
    *x0 = (int)fmin(fmax(fx, 0), w - side);
    *y0 = (int)fmin(fmax(fy, 0), h - side);
}

void pack_crop_K(const double K[9], int x0, int y0, int side, int size, double out[9]) {
    double s = (double)size / side;
    // shift the principal point into the crop, then scale both rows (pixel centres at +0.5 on both sides)
    double k[9] = {K[0] * s, K[1] * s, (K[2] - x0) * s, K[3] * s, K[4] * s, (K[5] - y0) * s, 0, 0, 1};
    memcpy(out, k, sizeof k);
}

void pack_resize(const uint8_t *src, int stride, int side, int c, uint8_t *dst, int size) {
    // each output pixel averages the source area it covers (exact box filter with fractional edges)
    double scale = (double)side / size;
    for (int y = 0; y < size; y++) {
        double sy0 = y * scale, sy1 = (y + 1) * scale;
        for (int x = 0; x < size; x++) {
            double sx0 = x * scale, sx1 = (x + 1) * scale, acc[4] = {0}, wsum = 0;
            for (int yy = (int)sy0; yy < side && yy < sy1; yy++) {
                double wy = fmin(sy1, yy + 1) - fmax(sy0, yy);
                for (int xx = (int)sx0; xx < side && xx < sx1; xx++) {
                    double wgt = wy * (fmin(sx1, xx + 1) - fmax(sx0, xx));
                    const uint8_t *p = src + (size_t)yy * stride + (size_t)xx * c;
                    for (int k = 0; k < c; k++) acc[k] += wgt * p[k];
                    wsum += wgt;
                }
            }
            for (int k = 0; k < c; k++) dst[((size_t)y * size + x) * c + k] = (uint8_t)lrint(acc[k] / wsum);
        }
    }
}

// One camera's aux-map zip (aux/dust3r or aux/sapiens, docs/formats.md): members by frame index.
typedef struct {
    struct zip *z;
    int64_t *member; // [n_frames], -1 when absent
    char path[4300];
} AuxZip;

// Opens aux/<kind>/cam<ID>.zip of camera ci; a capture without it leaves a->z NULL (not an error).
static int aux_open(const Ava256Capture *cap, int ci, const char *kind, AuxZip *a, char *err, size_t errlen) {
    memset(a, 0, sizeof *a);
    snprintf(a->path, sizeof a->path, "%s/aux/%s/cam%s.zip", cap->dir, kind, cap->cams[ci].calib.id);
    int r = ava_zip_open(a->path, &a->z, err, errlen);
    if (r == AVA256_MISSING) return a->z = NULL, 0;
    if (r != AVA256_OK) return -1;
    a->member = (int64_t *)mallocCheck(sizeof(int64_t) * (cap->n_frames + 1));
    for (int f = 0; f < cap->n_frames; f++) a->member[f] = -1;
    for (int64_t i = 0; i < ava_zip_count(a->z); i++) {
        int64_t fid;
        if (!ava_frame_member(ava_basename(ava_zip_name(a->z, i)), ".npy", &fid)) continue;
        int f = ava256_find_frame(cap, fid);
        if (f >= 0) a->member[f] = i;
    }
    return 0;
}

static void aux_close(AuxZip *a) {
    if (a->z) zip_discard(a->z);
    free(a->member);
    memset(a, 0, sizeof *a);
}

// Reads frame f's float map; 1 when absent. shape/data point into *buf.
static int aux_read(AuxZip *a, int f, uint8_t **buf, size_t *cap, int64_t shape[NPY_MAX_DIMS], int *ndim,
                    const uint8_t **data, char *err, size_t errlen) {
    if (!a->z || a->member[f] < 0) return 1;
    size_t len = 0;
    if (ava_zip_read(a->z, a->path, a->member[f], buf, cap, &len, err, errlen) != AVA256_OK) return -1;
    char what[4400];
    snprintf(what, sizeof what, "%s: member '%s'", a->path, ava_zip_name(a->z, a->member[f]));
    return npy_parse_f32(*buf, len, what, shape, ndim, data, err, errlen);
}

typedef struct {
    const Ava256Capture *cap;
    const PackOptions *o;
    ShardWriter *w;
    pthread_mutex_t lock;
    int n_sel, *sel;     // selected camera indices
    int sap_h, sap_w, sap_c; // Sapiens output grid (0 = no Sapiens maps in this capture)
    int64_t n_dust3r, n_sapiens;
    double *K;           // [F, n_sel, 9] filled by workers
    int64_t done, total, missing, masks;
    double t0, last_print;
    int failed;
    char err[1024];
} PackJob;

static void progress(PackJob *j, const char *name) {
    double now = time_now_s();
    if (j->o->quiet || (now - j->last_print < 0.25 && j->done < j->total)) return; // ≤ 4 updates a second
    j->last_print = now;
    double dt = now - j->t0, rate = j->done / (dt > 1e-9 ? dt : 1e-9);
    double eta = rate > 0 ? (j->total - j->done) / rate : 0;
    int bar = (int)(30.0 * j->done / (j->total ? j->total : 1));
    fprintf(stderr, "\r  %s [%.*s%*s] %lld/%lld images, %.0f/s, ETA %.0f s   ", name, bar,
            "##############################", 30 - bar, "", (long long)j->done, (long long)j->total, rate, eta);
}

// Decode, crop, resize, composite and encode camera `ci` for every frame; hand the bytes to the writer.
static void pack_camera(PackJob *j, Ava256Capture *cap, int si, const char *name) {
    const PackOptions *o = j->o;
    int ci = j->sel[si], S = o->size;
    Ava256Image im = {0}, mk = {0};
    uint8_t *rgb = (uint8_t *)mallocCheck((size_t)S * S * 3), *mask = (uint8_t *)mallocCheck((size_t)S * S);
    uint8_t *jpg = NULL;
    size_t jcap = 0, jn = 0;
    char err[1024];
    const Ava256Calib *cal = &cap->cams[ci].calib;
    AuxZip dz, sz;
    uint8_t *abuf = NULL;
    size_t acap = 0;
    float *dmap = (float *)mallocCheck(4 * (size_t)S * S * 4);
    float *smap = (float *)mallocCheck(4 * ((size_t)j->sap_h * j->sap_w * j->sap_c + 1));
    if (aux_open(cap, ci, "dust3r", &dz, err, sizeof err) || aux_open(cap, ci, "sapiens", &sz, err, sizeof err)) {
        pthread_mutex_lock(&j->lock);
        if (!j->failed) j->failed = 1, snprintf(j->err, sizeof j->err, "%s", err);
        pthread_mutex_unlock(&j->lock);
    }
    for (int f = 0; f < cap->n_frames && !j->failed; f++) {
        int r = ava256_read_image(cap, ci, f, &im, err, sizeof err);
        int64_t missing = r == AVA256_MISSING;
        if (r == AVA256_ERROR) {
            pthread_mutex_lock(&j->lock);
            if (!j->failed) j->failed = 1, snprintf(j->err, sizeof j->err, "%s", err);
            pthread_mutex_unlock(&j->lock);
            break;
        }
        // crop around the head centre (head pose translation) projected into this camera
        double Kimg[9], ctr[2] = {im.w / 2.0, im.h / 2.0};
        if (r == AVA256_OK) {
            ava256_scale_K(cal->K, im.w, im.h, Kimg);
            const Ava256Frame *fr = &cap->frames[f];
            if (fr->has_head_pose) {
                const double *R = cal->w2c, *hp = fr->head;
                double p[3];
                for (int k = 0; k < 3; k++) p[k] = R[k * 4] * hp[3] + R[k * 4 + 1] * hp[7] + R[k * 4 + 2] * hp[11] + R[k * 4 + 3];
                if (p[2] > 1e-6) ctr[0] = Kimg[0] * p[0] / p[2] + Kimg[2], ctr[1] = Kimg[4] * p[1] / p[2] + Kimg[5];
            }
            int side = pack_crop_side(im.w, im.h, o->crop), x0, y0;
            pack_crop_origin(im.w, im.h, side, ctr[0], ctr[1], &x0, &y0);
            pack_crop_K(Kimg, x0, y0, side, S, j->K + ((size_t)f * j->n_sel + si) * 9);
            pack_resize(im.px + ((size_t)y0 * im.w + x0) * 3, im.w * 3, side, 3, rgb, S);
            int have_mask = ava256_read_mask(cap, ci, f, &mk, err, sizeof err) == AVA256_OK && mk.w == im.w && mk.h == im.h;
            if (have_mask) {
                pack_resize(mk.px + (size_t)y0 * mk.w + x0, mk.w, side, 1, mask, S);
                for (size_t i = 0; i < (size_t)S * S; i++) {
                    double a = mask[i] / 255.0;
                    for (int k = 0; k < 3; k++)
                        rgb[i * 3 + k] = (uint8_t)lrint(rgb[i * 3 + k] * a + 255.0 * o->background[k] * (1 - a));
                }
            }
            if (shard_encode_jpeg(rgb, S, S, o->quality, &jpg, &jcap, &jn)) {
                pthread_mutex_lock(&j->lock);
                if (!j->failed) j->failed = 1, snprintf(j->err, sizeof j->err, "%s: JPEG encoding failed", name);
                pthread_mutex_unlock(&j->lock);
                break;
            }
            int64_t shp[NPY_MAX_DIMS];
            int nd = 0, have_d = 0, have_s = 0;
            const uint8_t *raw;
            // DUSt3R map: nearest sample at each output pixel (averaging 3D points across a silhouette would
            // invent points in mid-air), world mm -> this frame's head frame in metres
            int r2 = aux_read(&dz, f, &abuf, &acap, shp, &nd, &raw, err, sizeof err);
            if (r2 == 0 && (nd != 3 || shp[0] != im.h || shp[1] != im.w || shp[2] != 4)) {
                snprintf(err, sizeof err, "%.900s: DUSt3R map of frame %d is not [%d, %d, 4]", dz.path, f, im.h, im.w);
                r2 = -1;
            }
            if (r2 == 0 && cap->frames[f].has_head_pose) {
                const double *hp = cap->frames[f].head;
                for (int y = 0; y < S; y++)
                    for (int x = 0; x < S; x++) {
                        int sx = x0 + (int)((x + 0.5) * side / S), sy = y0 + (int)((y + 0.5) * side / S);
                        float v[4];
                        memcpy(v, raw + ((size_t)sy * im.w + sx) * 16, 16);
                        double w[3] = {v[0] * 1e-3 - hp[3], v[1] * 1e-3 - hp[7], v[2] * 1e-3 - hp[11]};
                        float *o = dmap + ((size_t)y * S + x) * 4;
                        for (int k = 0; k < 3; k++) o[k] = (float)(hp[k] * w[0] + hp[4 + k] * w[1] + hp[8 + k] * w[2]); // Rhᵀ
                        o[3] = v[3];
                    }
                have_d = 1;
            }
            // Sapiens map: a grid over the whole image; sample it bilinearly at the crop's cell centres
            int r3 = r2 < 0 ? 1 : aux_read(&sz, f, &abuf, &acap, shp, &nd, &raw, err, sizeof err);
            if (r3 == 0 && (nd != 3 || shp[2] != j->sap_c || shp[0] < 1 || shp[1] < 1 || shp[0] > INT_MAX ||
                            shp[1] > INT_MAX)) { // an empty grid would be sampled at index -1
                snprintf(err, sizeof err, "%.900s: Sapiens map of frame %d has %d dims / %lld channels, expected a non-empty "
                         "[h, w, %d] grid", sz.path, f, nd, nd == 3 ? (long long)shp[2] : 0LL, j->sap_c);
                r3 = -1;
            }
            if (r3 == 0) {
                int gh = (int)shp[0], gw = (int)shp[1], C = j->sap_c;
                for (int y = 0; y < j->sap_h; y++)
                    for (int x = 0; x < j->sap_w; x++) {
                        double px = x0 + (x + 0.5) * side / j->sap_w, py = y0 + (y + 0.5) * side / j->sap_h;
                        double gx = px / im.w * gw - 0.5, gy = py / im.h * gh - 0.5;
                        gx = fmin(fmax(gx, 0), gw - 1), gy = fmin(fmax(gy, 0), gh - 1);
                        int ax = (int)gx, ay = (int)gy, bx = ax + (ax < gw - 1), by = ay + (ay < gh - 1);
                        double lx = gx - ax, ly = gy - ay;
                        for (int k = 0; k < C; k++) {
                            float q[4];
                            memcpy(&q[0], raw + (((size_t)ay * gw + ax) * C + k) * 4, 4);
                            memcpy(&q[1], raw + (((size_t)ay * gw + bx) * C + k) * 4, 4);
                            memcpy(&q[2], raw + (((size_t)by * gw + ax) * C + k) * 4, 4);
                            memcpy(&q[3], raw + (((size_t)by * gw + bx) * C + k) * 4, 4);
                            smap[((size_t)y * j->sap_w + x) * C + k] =
                                (float)((1 - ly) * ((1 - lx) * q[0] + lx * q[1]) + ly * ((1 - lx) * q[2] + lx * q[3]));
                        }
                    }
                have_s = 1;
            }
            if (r2 < 0 || r3 < 0) {
                pthread_mutex_lock(&j->lock);
                if (!j->failed) j->failed = 1, snprintf(j->err, sizeof j->err, "%s", err);
                pthread_mutex_unlock(&j->lock);
                break;
            }
            pthread_mutex_lock(&j->lock);
            if (!j->failed && have_d && shard_put_aux(j->w, SHARD_DUST3R, f, si, dmap, j->err, sizeof j->err)) j->failed = 1;
            if (!j->failed && have_s && shard_put_aux(j->w, SHARD_SAPIENS, f, si, smap, j->err, sizeof j->err)) j->failed = 1;
            j->n_dust3r += have_d, j->n_sapiens += have_s;
            if (!j->failed && shard_put_jpeg(j->w, f, si, jpg, jn, j->err, sizeof j->err)) j->failed = 1;
            if (!j->failed && have_mask && shard_put_mask(j->w, f, si, mask, j->err, sizeof j->err)) j->failed = 1;
            j->masks += have_mask;
            pthread_mutex_unlock(&j->lock);
        } else {
            // a dropped image: nothing is stored and the sampler never draws it; its K slot keeps the
            // native K so the table holds no garbage
            memcpy(j->K + ((size_t)f * j->n_sel + si) * 9, cal->K, sizeof cal->K);
        }
        pthread_mutex_lock(&j->lock);
        j->done++, j->missing += missing;
        progress(j, name);
        pthread_mutex_unlock(&j->lock);
    }
    ava256_image_free(&im), ava256_image_free(&mk);
    aux_close(&dz), aux_close(&sz);
    free(rgb), free(mask), free(jpg), free(abuf), free(dmap), free(smap);
}

int pack_capture(const char *dir, const char *out, const PackOptions *o, PackStats *st, char *err, size_t errlen) {
    memset(st, 0, sizeof *st);
    Ava256Capture cap;
    if (ava256_open(&cap, dir, AVA256_REQUIRE_EXPR, err, errlen)) return -1;
    PackJob j;
    memset(&j, 0, sizeof j);
    j.cap = &cap, j.o = o, j.t0 = time_now_s();
    pthread_mutex_init(&j.lock, NULL);
    j.sel = (int *)mallocCheck(sizeof(int) * (cap.n_cams + 1));
    for (int c = 0; c < cap.n_cams; c++) {
        int keep = !o->cameras;
        for (int k = 0; o->cameras && k < o->n_cameras; k++) keep |= !strcmp(o->cameras[k], cap.cams[c].calib.id);
        if (keep) j.sel[j.n_sel++] = c;
    }
    if (j.n_sel == 0) {
        snprintf(err, errlen, "%s: none of the requested cameras is in this capture", cap.dir);
        ava256_close(&cap);
        free(j.sel);
        return -1;
    }
    int F = cap.n_frames, C = j.n_sel;
    // Sapiens channels: from the first map found (the shard records the grid it stores)
    for (int s2 = 0; s2 < C && !j.sap_c; s2++) {
        AuxZip a;
        if (aux_open(&cap, j.sel[s2], "sapiens", &a, err, errlen)) {
            ava256_close(&cap);
            free(j.sel);
            return -1;
        }
        uint8_t *b = NULL;
        size_t bc = 0;
        int64_t shp[NPY_MAX_DIMS];
        int nd = 0;
        const uint8_t *raw;
        for (int f = 0; f < cap.n_frames && a.z && !j.sap_c; f++)
            if (aux_read(&a, f, &b, &bc, shp, &nd, &raw, err, errlen) == 0 && nd == 3) j.sap_c = (int)shp[2];
        free(b);
        aux_close(&a);
    }
    if (j.sap_c) j.sap_h = o->sapiens_h, j.sap_w = o->sapiens_w;
    ShardMeta m;
    memset(&m, 0, sizeof m);
    pack_capture_name(cap.dir, m.capture, sizeof m.capture);
    m.n_cams = C, m.n_frames = F, m.W = m.H = o->size, m.expr_dim = cap.expr_dim;
    m.sap_h = j.sap_h, m.sap_w = j.sap_w, m.sap_c = j.sap_c;
    m.cam_ids = (char(*)[SHARD_ID_LEN])callocCheck(C, SHARD_ID_LEN);
    m.w2c = (double *)mallocCheck(8 * 12 * (size_t)C);
    for (int s = 0; s < C; s++) {
        snprintf(m.cam_ids[s], SHARD_ID_LEN, "%s", cap.cams[j.sel[s]].calib.id);
        memcpy(m.w2c + 12 * s, cap.cams[j.sel[s]].calib.w2c, 8 * 12);
    }
    m.K = j.K = (double *)callocCheck((size_t)F * C * 9, 8);
    m.frame_ids = (int32_t *)mallocCheck(4 * (size_t)F);
    m.head_pose = (double *)mallocCheck(8 * 12 * (size_t)F);
    m.expr = cap.expr_dim ? (float *)mallocCheck(4 * (size_t)F * cap.expr_dim) : NULL;
    for (int f = 0; f < F; f++) {
        m.frame_ids[f] = (int32_t)cap.frames[f].id;
        memcpy(m.head_pose + 12 * f, cap.frames[f].head, 8 * 12);
        if (!cap.frames[f].has_head_pose) // unknown pose: NaN, so a loader can refuse the frame
            for (int k = 0; k < 12; k++) m.head_pose[12 * f + k] = NAN;
        if (cap.expr_dim) {
            const float *code;
            char e2[256];
            if (ava256_expr_code(&cap, f, &code, e2, sizeof e2) == AVA256_OK)
                memcpy(m.expr + (size_t)f * cap.expr_dim, code, 4 * cap.expr_dim);
            else // a frame without a code: NaN row (documented in docs/formats.md)
                for (int k = 0; k < cap.expr_dim; k++) m.expr[(size_t)f * cap.expr_dim + k] = NAN;
        }
    }
    j.total = (int64_t)F * C;
    // create the shard first (fail early); the workers fill j.K, which is handed over before finishing
    j.w = shard_create(out, &m, o->quality, err, errlen);
    if (!j.w) goto done;
    {
        int nt = o->threads > 0 ? o->threads : omp_get_max_threads();
        if (nt > C) nt = C;
#pragma omp parallel num_threads(nt)
        {
            // one capture handle per worker: libzip archives are not shared between threads
            Ava256Capture mine, *cp = &cap;
            char e3[1024];
            int own = omp_get_thread_num() != 0;
            if (own) {
                if (ava256_open(&mine, dir, 0, e3, sizeof e3)) {
                    pthread_mutex_lock(&j.lock);
                    if (!j.failed) j.failed = 1, snprintf(j.err, sizeof j.err, "%s", e3);
                    pthread_mutex_unlock(&j.lock);
                    own = 0, cp = NULL;
                } else cp = &mine;
            }
#pragma omp for schedule(dynamic, 1)
            for (int s = 0; s < C; s++)
                if (cp && !j.failed) pack_camera(&j, cp, s, m.capture);
            if (own) ava256_close(&mine);
        }
    }
    if (!o->quiet) fprintf(stderr, "\n");
    if (j.failed) {
        snprintf(err, errlen, "%s", j.err);
        shard_abort(j.w);
        goto fail;
    }
    shard_set_K(j.w, j.K);
    if (shard_finish(j.w, err, errlen)) goto fail;
    st->images = j.total - j.missing, st->missing_images = j.missing, st->masks = j.masks, st->frames = F, st->cameras = C;
    st->dust3r = j.n_dust3r, st->sapiens = j.n_sapiens;
done:
    ava256_close(&cap);
    free(m.cam_ids), free(m.w2c), free(m.K), free(m.frame_ids), free(m.head_pose), free(m.expr), free(j.sel);
    pthread_mutex_destroy(&j.lock);
    return j.w ? 0 : -1;
fail:
    j.w = NULL;
    goto done;
}
