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

void pack_resize_labels(const uint8_t *src, int stride, int side, uint8_t *dst, int size) {
    for (int y = 0; y < size; y++) {
        int sy = (int)floor((y + 0.5) * side / size);
        sy = sy < side ? sy : side - 1;
        for (int x = 0; x < size; x++) {
            int sx = (int)floor((x + 0.5) * side / size);
            dst[(size_t)y * size + x] = src[(size_t)sy * stride + (sx < side ? sx : side - 1)];
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
    int64_t done, total, missing, masks, corrupt, no_mask, parts, bad_parts;
    int img_w, img_h;    // the capture's image size (ava256_image_size), 0 when undecided
    int64_t n_present;   // images the selected cameras' zips list: the denominator of --max-corrupt
    int64_t max_corrupt; // more corrupt images than this fail the capture
    double t0, last_print;
    int failed;
    char err[1024];
} PackJob;

// The first failure wins; the workers stop at their next image. Call with j->lock held.
static void job_fail(PackJob *j, const char *msg) {
    if (!j->failed) j->failed = 1, snprintf(j->err, sizeof j->err, "%s", msg);
}

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

// One worker's buffers and aux zips for one camera.
typedef struct {
    Ava256Image im, mk, pl;
    uint8_t *rgb, *mask, *parts, *jpg, *abuf; // rgb [S, S, 3], mask, labels [S, S], the JPEG, aux member bytes
    size_t jcap, jn, acap;
    float *dmap, *smap;               // DUSt3R [S, S, 4], Sapiens [sap_h, sap_w, sap_c]
    AuxZip dz, sz;
    double K[9];                      // K of the stored crop
    int have_mask, have_d, have_s, have_parts;
    int bad_parts;                    // the label member is damaged: the image is kept without; parts_err says why
    char parts_err[1024];
} CamWork;

enum { IMG_OK = 0, IMG_MISSING = 1, IMG_CORRUPT = 2, IMG_NO_MASK = 3, IMG_FAIL = -1 };

// Decodes, crops, resizes and composites (frame f, camera si), samples its DUSt3R/Sapiens maps and encodes
// the JPEG, all into w; writes nothing to the shard. IMG_MISSING: no image member (dropped). IMG_NO_MASK:
// the camera has a mask zip without a member for this frame; err names the zip and the frame. IMG_CORRUPT:
// one of this image's members (*what: "image", "mask", "DUSt3R map", "Sapiens map") does not read or
// decode, or does not fit the image; err names the zip, the member and the reason. IMG_FAIL: the packer
// itself failed (JPEG encoding). Part labels never skip the image: damaged ones set w->bad_parts instead.
static int prepare_image(const PackJob *j, Ava256Capture *cap, int si, int f, CamWork *w, const char **what,
                         char *err, size_t errlen) {
    const PackOptions *o = j->o;
    int ci = j->sel[si], S = o->size;
    const Ava256Calib *cal = &cap->cams[ci].calib;
    const Ava256Camera *cam = &cap->cams[ci];
    w->have_mask = w->have_d = w->have_s = w->have_parts = w->bad_parts = 0;
    // A camera with a mask zip composites every image it keeps: an image whose mask member is absent is
    // skipped (counted as no_mask) rather than kept with the dome behind the head among flat backgrounds.
    if (cam->img_member[f] >= 0 && cam->mask && cam->mask_member[f] < 0) {
        *what = "mask";
        snprintf(err, errlen, "%.900s/foreground_masks/cam%s.zip: no member for frame %lld", cap->dir, cal->id,
                 (long long)cap->frames[f].id);
        return IMG_NO_MASK;
    }
    *what = "image";
    int r = ava256_read_image(cap, ci, f, &w->im, err, errlen);
    if (r == AVA256_MISSING) return IMG_MISSING;
    if (r != AVA256_OK) return IMG_CORRUPT;
    const Ava256Image *im = &w->im;
    // crop around the head centre (head pose translation) projected into this camera
    double Kimg[9], ctr[2] = {im->w / 2.0, im->h / 2.0};
    ava256_scale_K(cal->K, im->w, im->h, Kimg);
    const Ava256Frame *fr = &cap->frames[f];
    if (fr->has_head_pose) {
        const double *R = cal->w2c, *hp = fr->head;
        double p[3];
        for (int k = 0; k < 3; k++) p[k] = R[k * 4] * hp[3] + R[k * 4 + 1] * hp[7] + R[k * 4 + 2] * hp[11] + R[k * 4 + 3];
        if (p[2] > 1e-6) ctr[0] = Kimg[0] * p[0] / p[2] + Kimg[2], ctr[1] = Kimg[4] * p[1] / p[2] + Kimg[5];
    }
    int side = pack_crop_side(im->w, im->h, o->crop), x0, y0;
    pack_crop_origin(im->w, im->h, side, ctr[0], ctr[1], &x0, &y0);
    pack_crop_K(Kimg, x0, y0, side, S, w->K);
    pack_resize(im->px + ((size_t)y0 * im->w + x0) * 3, im->w * 3, side, 3, w->rgb, S);
    // The mask. A corrupt one skips the image: kept without it, the image would be the only one of its
    // capture whose dome background is not replaced, and nothing downstream could tell (docs/data.md).
    // A capture or camera without a mask zip keeps all its images as they are (MISSING here).
    *what = "mask";
    r = ava256_read_mask(cap, ci, f, &w->mk, err, errlen);
    if (r == AVA256_ERROR) return IMG_CORRUPT;
    if (r == AVA256_OK) {
        const Ava256Image *mk = &w->mk;
        if (mk->w != im->w || mk->h != im->h) {
            snprintf(err, errlen, "%.900s/foreground_masks/cam%s.zip: member '%s': mask is %dx%d, the image is %dx%d",
                     cap->dir, cal->id, ava_zip_name(cap->cams[ci].mask, cap->cams[ci].mask_member[f]), mk->w,
                     mk->h, im->w, im->h);
            return IMG_CORRUPT;
        }
        pack_resize(mk->px + (size_t)y0 * mk->w + x0, mk->w, side, 1, w->mask, S);
        for (size_t i = 0; i < (size_t)S * S; i++) {
            double a = w->mask[i] / 255.0;
            for (int k = 0; k < 3; k++)
                w->rgb[i * 3 + k] = (uint8_t)lrint(w->rgb[i * 3 + k] * a + 255.0 * o->background[k] * (1 - a));
        }
        w->have_mask = 1;
    }
    int64_t shp[NPY_MAX_DIMS];
    int nd = 0;
    const uint8_t *raw;
    // DUSt3R map: nearest sample at each output pixel (averaging 3D points across a silhouette would
    // invent points in mid-air), world mm -> this frame's head frame in metres
    *what = "DUSt3R map";
    r = aux_read(&w->dz, f, &w->abuf, &w->acap, shp, &nd, &raw, err, errlen);
    if (r < 0) return IMG_CORRUPT;
    if (r == 0 && (nd != 3 || shp[0] != im->h || shp[1] != im->w || shp[2] != 4)) {
        snprintf(err, errlen, "%.900s: member '%s': DUSt3R map of frame %lld is not [%d, %d, 4]", w->dz.path,
                 ava_zip_name(w->dz.z, w->dz.member[f]), (long long)fr->id, im->h, im->w);
        return IMG_CORRUPT;
    }
    if (r == 0 && fr->has_head_pose) {
        const double *hp = fr->head;
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                int sx = x0 + (int)((x + 0.5) * side / S), sy = y0 + (int)((y + 0.5) * side / S);
                float v[4];
                memcpy(v, raw + ((size_t)sy * im->w + sx) * 16, 16);
                double wp[3] = {v[0] * 1e-3 - hp[3], v[1] * 1e-3 - hp[7], v[2] * 1e-3 - hp[11]};
                float *out = w->dmap + ((size_t)y * S + x) * 4;
                for (int k = 0; k < 3; k++) out[k] = (float)(hp[k] * wp[0] + hp[4 + k] * wp[1] + hp[8 + k] * wp[2]); // Rhᵀ
                out[3] = v[3];
            }
        w->have_d = 1;
    }
    // Sapiens map: a grid over the whole image; sample it bilinearly at the crop's cell centres
    *what = "Sapiens map";
    r = aux_read(&w->sz, f, &w->abuf, &w->acap, shp, &nd, &raw, err, errlen);
    if (r < 0) return IMG_CORRUPT;
    if (r == 0 && (nd != 3 || shp[2] != j->sap_c || shp[0] < 1 || shp[1] < 1 || shp[0] > INT_MAX ||
                   shp[1] > INT_MAX)) { // an empty grid would be sampled at index -1
        snprintf(err, errlen, "%.900s: member '%s': Sapiens map of frame %lld has %d dims / %lld channels, expected a "
                 "non-empty [h, w, %d] grid", w->sz.path, ava_zip_name(w->sz.z, w->sz.member[f]), (long long)fr->id,
                 nd, nd == 3 ? (long long)shp[2] : 0LL, j->sap_c);
        return IMG_CORRUPT;
    }
    if (r == 0) {
        int gh = (int)shp[0], gw = (int)shp[1], C = j->sap_c;
        for (int y = 0; y < j->sap_h; y++)
            for (int x = 0; x < j->sap_w; x++) {
                double px = x0 + (x + 0.5) * side / j->sap_w, py = y0 + (y + 0.5) * side / j->sap_h;
                double gx = px / im->w * gw - 0.5, gy = py / im->h * gh - 0.5;
                gx = fmin(fmax(gx, 0), gw - 1), gy = fmin(fmax(gy, 0), gh - 1);
                int ax = (int)gx, ay = (int)gy, bx = ax + (ax < gw - 1), by = ay + (ay < gh - 1);
                double lx = gx - ax, ly = gy - ay;
                for (int k = 0; k < C; k++) {
                    float q[4];
                    memcpy(&q[0], raw + (((size_t)ay * gw + ax) * C + k) * 4, 4);
                    memcpy(&q[1], raw + (((size_t)ay * gw + bx) * C + k) * 4, 4);
                    memcpy(&q[2], raw + (((size_t)by * gw + ax) * C + k) * 4, 4);
                    memcpy(&q[3], raw + (((size_t)by * gw + bx) * C + k) * 4, 4);
                    w->smap[((size_t)y * j->sap_w + x) * C + k] =
                        (float)((1 - ly) * ((1 - lx) * q[0] + lx * q[1]) + ly * ((1 - lx) * q[2] + lx * q[3]));
                }
            }
        w->have_s = 1;
    }
    // Part labels, last: read only for an image that is kept. Same crop as the image, nearest resampling (an
    // average of class indices is another class). Damaged labels leave the image without any, not skipped.
    if (!o->no_parts && cam->parts && cam->parts_member[f] >= 0) {
        r = ava256_read_parts(cap, ci, f, &w->pl, w->parts_err, sizeof w->parts_err);
        if (r == AVA256_OK && (w->pl.w != im->w || w->pl.h != im->h)) {
            snprintf(w->parts_err, sizeof w->parts_err, "%.900s/segmentation_parts/cam%s.zip: member '%s': labels are "
                     "%dx%d, the image is %dx%d", cap->dir, cal->id, ava_zip_name(cam->parts, cam->parts_member[f]),
                     w->pl.w, w->pl.h, im->w, im->h);
            r = AVA256_ERROR;
        }
        if (r == AVA256_OK) {
            pack_resize_labels(w->pl.px + (size_t)y0 * w->pl.w + x0, w->pl.w, side, w->parts, S);
            w->have_parts = 1;
        }
        w->bad_parts = r == AVA256_ERROR;
    }
    *what = "image";
    if (shard_encode_jpeg(w->rgb, S, S, o->quality, &w->jpg, &w->jcap, &w->jn)) {
        snprintf(err, errlen, "%.900s: frame %lld camera %s: JPEG encoding failed", cap->dir, (long long)fr->id, cal->id);
        return IMG_FAIL;
    }
    return IMG_OK;
}

// Packs camera `si` for every frame: prepare_image in this worker, then the shard writes under the lock.
// A missing or corrupt image stores nothing (the sampler never draws it); its K slot keeps the native K so
// the table holds no garbage.
static void pack_camera(PackJob *j, Ava256Capture *cap, int si, const char *name) {
    const PackOptions *o = j->o;
    int ci = j->sel[si], S = o->size;
    const Ava256Calib *cal = &cap->cams[ci].calib;
    CamWork w;
    memset(&w, 0, sizeof w);
    w.rgb = (uint8_t *)mallocCheck((size_t)S * S * 3), w.mask = (uint8_t *)mallocCheck((size_t)S * S);
    w.parts = (uint8_t *)mallocCheck((size_t)S * S);
    w.dmap = (float *)mallocCheck(4 * (size_t)S * S * 4);
    w.smap = (float *)mallocCheck(4 * ((size_t)j->sap_h * j->sap_w * j->sap_c + 1));
    char err[1024], msg[1024];
    if (aux_open(cap, ci, "dust3r", &w.dz, err, sizeof err) || aux_open(cap, ci, "sapiens", &w.sz, err, sizeof err)) {
        pthread_mutex_lock(&j->lock);
        job_fail(j, err);
        pthread_mutex_unlock(&j->lock);
    }
    for (int f = 0; f < cap->n_frames && !j->failed; f++) {
        const char *what = "image";
        int r = prepare_image(j, cap, si, f, &w, &what, err, sizeof err);
        double *K = j->K + ((size_t)f * j->n_sel + si) * 9;
        pthread_mutex_lock(&j->lock);
        if (r == IMG_FAIL) {
            job_fail(j, err);
        } else if (r == IMG_OK) {
            memcpy(K, w.K, sizeof w.K);
            if (!j->failed && w.have_d && shard_put_aux(j->w, SHARD_DUST3R, f, si, w.dmap, j->err, sizeof j->err)) j->failed = 1;
            if (!j->failed && w.have_s && shard_put_aux(j->w, SHARD_SAPIENS, f, si, w.smap, j->err, sizeof j->err)) j->failed = 1;
            j->n_dust3r += w.have_d, j->n_sapiens += w.have_s;
            if (!j->failed && shard_put_jpeg(j->w, f, si, w.jpg, w.jn, j->err, sizeof j->err)) j->failed = 1;
            if (!j->failed && w.have_mask && shard_put_mask(j->w, f, si, w.mask, j->err, sizeof j->err)) j->failed = 1;
            j->masks += w.have_mask;
            if (!j->failed && w.have_parts && shard_put_parts(j->w, f, si, w.parts, j->err, sizeof j->err)) j->failed = 1;
            j->parts += w.have_parts, j->bad_parts += w.bad_parts;
            if (w.bad_parts) {
                if (!o->quiet) fputc('\n', stderr); // off the progress line
                fprintf(stderr, "warning: %s: frame %lld camera %s: kept without part labels (damaged labels): %s\n",
                        name, (long long)cap->frames[f].id, cal->id, w.parts_err);
            }
        } else {
            memcpy(K, cal->K, sizeof cal->K);
            j->missing += r == IMG_MISSING;
            if (r == IMG_NO_MASK || r == IMG_CORRUPT) {
                if (!o->quiet) fputc('\n', stderr); // off the progress line
                fprintf(stderr, "warning: %s: frame %lld camera %s: skipped (%s%s): %s\n", name,
                        (long long)cap->frames[f].id, cal->id, r == IMG_NO_MASK ? "no mask" : "corrupt ",
                        r == IMG_NO_MASK ? "" : what, err);
            }
            j->no_mask += r == IMG_NO_MASK;
            if (r == IMG_CORRUPT) {
                j->corrupt++;
                if (j->corrupt > j->max_corrupt) {
                    snprintf(msg, sizeof msg,
                             "%s: %lld corrupt images of its %lld, more than --max-corrupt %g allows (%lld); packing "
                             "stopped there, no shard written. Each corrupt image is named in a warning above: "
                             "re-download those zips, or raise --max-corrupt to pack the rest",
                             name, (long long)j->corrupt, (long long)j->n_present, o->max_corrupt,
                             (long long)j->max_corrupt);
                    job_fail(j, msg);
                }
            }
        }
        j->done++;
        progress(j, name);
        pthread_mutex_unlock(&j->lock);
    }
    ava256_image_free(&w.im), ava256_image_free(&w.mk), ava256_image_free(&w.pl);
    aux_close(&w.dz), aux_close(&w.sz);
    free(w.rgb), free(w.mask), free(w.parts), free(w.jpg), free(w.abuf), free(w.dmap), free(w.smap);
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
    // the image size every image must have, decided once over the capture (not by whichever image a worker
    // decodes first); an ambiguous one fails the capture
    if (ava256_image_size(&cap, j.sel, C, err, errlen) == AVA256_ERROR) {
        ava256_close(&cap);
        free(j.sel);
        return -1;
    }
    j.img_w = cap.img_w, j.img_h = cap.img_h;
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
    for (int s = 0; s < C; s++) j.n_present += cap.cams[j.sel[s]].n_images;
    double mc = o->max_corrupt > 0 ? (o->max_corrupt < 1 ? o->max_corrupt : 1) : 0;
    j.max_corrupt = (int64_t)floor(mc * (double)j.n_present + 1e-9); // 0.29 × 100 allows 29, not 28
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
                    job_fail(&j, e3);
                    pthread_mutex_unlock(&j.lock);
                    own = 0, cp = NULL;
                } else {
                    cp = &mine;
                    mine.img_w = j.img_w, mine.img_h = j.img_h;
                }
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
    shard_set_counts(j.w, j.missing, j.corrupt, j.no_mask);
    if (shard_finish(j.w, err, errlen)) goto fail;
    st->images = j.total - j.missing - j.corrupt - j.no_mask, st->missing_images = j.missing;
    st->corrupt_images = j.corrupt, st->no_mask_images = j.no_mask;
    st->masks = j.masks, st->frames = F, st->cameras = C;
    st->dust3r = j.n_dust3r, st->sapiens = j.n_sapiens;
    st->parts = j.parts, st->bad_parts = j.bad_parts;
done:
    ava256_close(&cap);
    free(m.cam_ids), free(m.w2c), free(m.K), free(m.frame_ids), free(m.head_pose), free(m.expr), free(j.sel);
    pthread_mutex_destroy(&j.lock);
    return j.w ? 0 : -1;
fail:
    j.w = NULL;
    goto done;
}
