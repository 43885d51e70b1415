// ava256_image.c — one zip member -> AVIF decode (libavif) -> RGB8 or gray8, or label PNG (libpng) ->
// class indices; plus K scaling.
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <avif/avif.h>
#include <png.h>

#include "ava256_internal.h"
#include "util.h"

#define AVA_IMAGE_MAX_SIDE 16384

void ava256_image_free(Ava256Image *im) {
    free(im->px);
    memset(im, 0, sizeof *im);
}

int ava256_decode_avif(const uint8_t *data, size_t size, int c, Ava256Image *out, const char *what, char *err,
                       size_t errlen) {
    if (c != 1 && c != 3) FATAL("ava256_decode_avif: c must be 1 or 3, got %d", c);
    avifDecoder *d = avifDecoderCreate();
    if (!d) FATAL("avifDecoderCreate failed (out of memory)");
    d->maxThreads = 1; // callers parallelise over images, not inside one
    d->ignoreExif = AVIF_TRUE;
    d->ignoreXMP = AVIF_TRUE;
    avifResult r = avifDecoderSetIOMemory(d, data, size);
    if (r == AVIF_RESULT_OK) r = avifDecoderParse(d);
    if (r != AVIF_RESULT_OK) {
        avifDecoderDestroy(d);
        return error_set(err, errlen, "%s: not a readable AVIF image (%s); expected an AVIF still image", what,
                        avifResultToString(r));
    }
    r = avifDecoderNextImage(d);
    if (r != AVIF_RESULT_OK) {
        avifDecoderDestroy(d);
        return error_set(err, errlen, "%s: AVIF decode failed (%s)", what, avifResultToString(r));
    }
    const avifImage *img = d->image;
    int w = (int)img->width, h = (int)img->height;
    if (w <= 0 || h <= 0 || w > AVA_IMAGE_MAX_SIDE || h > AVA_IMAGE_MAX_SIDE) {
        avifDecoderDestroy(d);
        return error_set(err, errlen, "%s: image size %dx%d is outside 1..%d", what, w, h, AVA_IMAGE_MAX_SIDE);
    }
    size_t need = (size_t)w * h * 3; // gray is converted to RGB first, then compacted in place
    if (out->cap < need) {
        free(out->px);
        out->px = mallocCheck(need);
        out->cap = need;
    }
    // libavif applies the file's matrix coefficients (CICP), range, bit depth and chroma upsampling.
    // Bilinear upsampling is pinned so decodes do not depend on whether libyuv is present.
    avifRGBImage rgb;
    avifRGBImageSetDefaults(&rgb, img);
    rgb.format = AVIF_RGB_FORMAT_RGB;
    rgb.depth = 8;
    rgb.chromaUpsampling = AVIF_CHROMA_UPSAMPLING_BEST_QUALITY;
    rgb.pixels = out->px;
    rgb.rowBytes = (uint32_t)w * 3;
    r = avifImageYUVToRGB(img, &rgb);
    avifDecoderDestroy(d);
    if (r != AVIF_RESULT_OK)
        return error_set(err, errlen, "%s: YUV to RGB conversion failed (%s)", what, avifResultToString(r));
    if (c == 1)
        for (size_t i = 0; i < (size_t)w * h; i++) out->px[i] = out->px[3 * i]; // channel 0 (grey: R = G = B)
    out->w = w;
    out->h = h;
    out->c = c;
    return AVA256_OK;
}

// ---- label PNGs: libpng's low-level reader with no transform set, so the samples come out as stored (the
// simplified API would apply gAMA/sRGB and expand palettes, which changes class indices)

typedef struct {
    const uint8_t *data;
    size_t size, pos;
    char msg[200]; // libpng's error message
} PngSrc;

static void png_src_read(png_structp png, png_bytep out, size_t n) {
    PngSrc *s = (PngSrc *)png_get_io_ptr(png);
    if (n > s->size - s->pos) png_error(png, "the data ends early (truncated file)");
    memcpy(out, s->data + s->pos, n);
    s->pos += n;
}

static void png_on_error(png_structp png, png_const_charp msg) {
    PngSrc *s = (PngSrc *)png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; } // ancillary chunks only

// The libpng calls, apart from the caller so that no local of the function holding setjmp changes before a
// longjmp. 0 = decoded into out, 1 = not 8-bit gray/palette (*depth, *ctype say what), -1 = libpng error.
static int png_read_labels(png_structp png, png_infop info, PngSrc *src, Ava256Image *out, int *depth, int *ctype) {
    if (setjmp(png_jmpbuf(png))) return -1;
    png_set_read_fn(png, src, png_src_read);
    png_set_user_limits(png, AVA_IMAGE_MAX_SIDE, AVA_IMAGE_MAX_SIDE);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    *depth = png_get_bit_depth(png, info), *ctype = png_get_color_type(png, info);
    if (*depth != 8 || (*ctype != PNG_COLOR_TYPE_GRAY && *ctype != PNG_COLOR_TYPE_PALETTE)) return 1;
    int passes = png_set_interlace_handling(png); // Adam7: rows are revisited, the buffer holds them whole
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != w) png_error(png, "row size is not one byte per pixel");
    size_t need = (size_t)w * h;
    if (out->cap < need) {
        free(out->px);
        out->px = mallocCheck(need);
        out->cap = need;
    }
    for (int p = 0; p < passes; p++)
        for (png_uint_32 y = 0; y < h; y++) png_read_row(png, out->px + (size_t)y * w, NULL);
    png_read_end(png, NULL); // through IEND: a file cut after its pixel data is refused too
    out->w = (int)w, out->h = (int)h, out->c = 1;
    return 0;
}

int ava256_decode_label_png(const uint8_t *data, size_t size, Ava256Image *out, const char *what, char *err,
                            size_t errlen) {
    if (size < 8 || png_sig_cmp(data, 0, 8))
        return error_set(err, errlen, "%s: not a PNG file (bad signature); expected an 8-bit label PNG", what);
    PngSrc src = {data, size, 0, "unknown error"};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) FATAL("png_create_read_struct failed (out of memory)");
    int depth = 0, ctype = 0;
    int r = png_read_labels(png, info, &src, out, &depth, &ctype);
    png_destroy_read_struct(&png, &info, NULL);
    if (r < 0) return error_set(err, errlen, "%s: PNG decode failed (%s); expected a complete 8-bit label PNG", what, src.msg);
    if (r > 0) {
        const char *kind = ctype == PNG_COLOR_TYPE_GRAY ? "gray" : ctype == PNG_COLOR_TYPE_PALETTE ? "palette"
                         : ctype == PNG_COLOR_TYPE_RGB ? "RGB" : ctype == PNG_COLOR_TYPE_GRAY_ALPHA ? "gray+alpha"
                         : ctype == PNG_COLOR_TYPE_RGB_ALPHA ? "RGBA" : "unknown-colour-type";
        return error_set(err, errlen, "%s: %d-bit %s PNG; expected 8-bit gray or 8-bit palette class labels", what,
                         depth, kind);
    }
    return AVA256_OK;
}

#define MEMBER_LABELS 0 // decode_member's c for a part-label PNG

// Reads member idx of z and decodes it: an AVIF to c = 3 or 1 channels, or (c = MEMBER_LABELS) a label PNG;
// names "zpath: member 'name'" in messages.
static int decode_member(Ava256Capture *cap, struct zip *z, const char *zpath, int64_t idx, int c, Ava256Image *out,
                         char *err, size_t errlen) {
    size_t len;
    int r = ava_zip_read(z, zpath, idx, &cap->buf, &cap->buf_cap, &len, err, errlen);
    if (r != AVA256_OK) return r;
    char what[4400];
    snprintf(what, sizeof what, "%s: member '%s'", zpath, ava_zip_name(z, idx));
    if (c == MEMBER_LABELS) return ava256_decode_label_png(cap->buf, len, out, what, err, errlen);
    return ava256_decode_avif(cap->buf, len, c, out, what, err, errlen);
}

static void check_index(const Ava256Capture *cap, int cam, int frame, const char *fn) {
    if (cam < 0 || cam >= cap->n_cams) FATAL("%s: camera index %d outside 0..%d", fn, cam, cap->n_cams - 1);
    if (frame < 0 || frame >= cap->n_frames) FATAL("%s: frame index %d outside 0..%d", fn, frame, cap->n_frames - 1);
}

int ava256_read_image(Ava256Capture *cap, int cam, int frame, Ava256Image *out, char *err, size_t errlen) {
    check_index(cap, cam, frame, "ava256_read_image");
    const Ava256Camera *c = &cap->cams[cam];
    if (c->img_member[frame] < 0) {
        cap->n_skipped_images++;
        return AVA256_MISSING;
    }
    char zpath[4200];
    snprintf(zpath, sizeof zpath, "%s/image/cam%s.zip", cap->dir, c->calib.id);
    int r = decode_member(cap, c->img, zpath, c->img_member[frame], 3, out, err, errlen);
    if (r != AVA256_OK) return r;
    if (cap->img_w == 0) {
        cap->img_w = out->w;
        cap->img_h = out->h;
    } else if (out->w != cap->img_w || out->h != cap->img_h) {
        return error_set(err, errlen, "%s: member '%s': image is %dx%d, the capture's images are %dx%d", zpath,
                        ava_zip_name(c->img, c->img_member[frame]), out->w, out->h, cap->img_w, cap->img_h);
    }
    return AVA256_OK;
}

// The size an AVIF declares (its header; no pixel is decoded). 0, or -1 when it does not parse.
static int avif_size(const uint8_t *data, size_t size, int *w, int *h) {
    avifDecoder *d = avifDecoderCreate();
    if (!d) FATAL("avifDecoderCreate failed (out of memory)");
    d->ignoreExif = AVIF_TRUE;
    d->ignoreXMP = AVIF_TRUE;
    avifResult r = avifDecoderSetIOMemory(d, data, size);
    if (r == AVIF_RESULT_OK) r = avifDecoderParse(d);
    *w = r == AVIF_RESULT_OK ? (int)d->image->width : 0;
    *h = r == AVIF_RESULT_OK ? (int)d->image->height : 0;
    avifDecoderDestroy(d);
    return r == AVIF_RESULT_OK && *w > 0 && *h > 0 && *w <= AVA_IMAGE_MAX_SIDE && *h <= AVA_IMAGE_MAX_SIDE ? 0 : -1;
}

typedef struct {
    int w, h;
    int64_t n;
} SizeVote;

// Adds one image of w×h to the tally (at most `cap` distinct sizes are kept; later new ones are dropped).
static void vote(SizeVote *v, int *nv, int cap, int w, int h) {
    for (int i = 0; i < *nv; i++)
        if (v[i].w == w && v[i].h == h) {
            v[i].n++;
            return;
        }
    if (*nv < cap) v[(*nv)++] = (SizeVote){w, h, 1};
}

// Votes the sizes of camera `cam`'s present images, all of them or (samples > 0) up to `samples` spread
// evenly over its frames. Members that do not read or parse cast no vote.
static void vote_camera(Ava256Capture *cap, int cam, int samples, SizeVote *v, int *nv, int vcap) {
    const Ava256Camera *c = &cap->cams[cam];
    int n = 0;
    for (int f = 0; f < cap->n_frames; f++) n += c->img_member[f] >= 0;
    int want = samples > 0 && samples < n ? samples : n;
    char zpath[4200], e[64];
    snprintf(zpath, sizeof zpath, "%s/image/cam%s.zip", cap->dir, c->calib.id);
    for (int k = 0, seen = 0, f = 0; k < want && f < cap->n_frames; f++) {
        if (c->img_member[f] < 0) continue;
        // the k-th sample is present image round(k·(n−1)/(want−1)): the first and the last always
        int64_t pick = want == 1 ? 0 : ((int64_t)k * (n - 1) + (want - 1) / 2) / (want - 1);
        if (seen++ != pick) continue;
        k++;
        size_t len;
        int w, h;
        if (ava_zip_read(c->img, zpath, c->img_member[f], &cap->buf, &cap->buf_cap, &len, e, sizeof e) == AVA256_OK &&
            avif_size(cap->buf, len, &w, &h) == 0)
            vote(v, nv, vcap, w, h);
    }
}

int ava256_image_size(Ava256Capture *cap, const int *cams, int n_cams, char *err, size_t errlen) {
    enum { VCAP = 64 };
    SizeVote v[VCAP];
    int nv = 0;
    if (!cams) n_cams = cap->n_cams;
    for (int pass = 0; pass < 2; pass++) { // a sample of each camera; every image when the sample disagrees
        nv = 0;
        for (int i = 0; i < n_cams; i++) vote_camera(cap, cams ? cams[i] : i, pass ? 0 : AVA256_SIZE_SAMPLES, v, &nv, VCAP);
        int best = -1, tie = -1;
        for (int i = 0; i < nv; i++) {
            if (best < 0 || v[i].n > v[best].n) best = i, tie = -1;
            else if (v[i].n == v[best].n) tie = i;
        }
        if (best < 0) return AVA256_MISSING; // no image header reads: leave the size to the first decode
        if ((pass == 0 && nv == 1) || (pass == 1 && tie < 0)) {
            cap->img_w = v[best].w, cap->img_h = v[best].h;
            return AVA256_OK;
        }
        if (pass == 1)
            return error_set(err, errlen, "%s/image: as many images are %dx%d as %dx%d (%lld each), so the capture's "
                             "image size is ambiguous; expected one size for all images (re-download the zips of the "
                             "cameras whose images have the wrong size)", cap->dir, v[best].w, v[best].h, v[tie].w,
                             v[tie].h, (long long)v[best].n);
    }
    return AVA256_MISSING; // not reached
}

// Frame `frame` of camera `cam` from one of its optional per-camera zips (DIR/cam{id}.zip: z and member, NULL
// when the camera has none), decoded as decode_member's c; MISSING (counted in *skipped) when absent.
static int read_optional(Ava256Capture *cap, int cam, int frame, const char *dir, struct zip *z, const int64_t *member,
                         int c, int64_t *skipped, Ava256Image *out, char *err, size_t errlen) {
    if (!z || member[frame] < 0) {
        (*skipped)++;
        return AVA256_MISSING;
    }
    char zpath[4200];
    snprintf(zpath, sizeof zpath, "%s/%s/cam%s.zip", cap->dir, dir, cap->cams[cam].calib.id);
    return decode_member(cap, z, zpath, member[frame], c, out, err, errlen);
}

int ava256_read_mask(Ava256Capture *cap, int cam, int frame, Ava256Image *out, char *err, size_t errlen) {
    check_index(cap, cam, frame, "ava256_read_mask");
    const Ava256Camera *c = &cap->cams[cam];
    return read_optional(cap, cam, frame, "foreground_masks", c->mask, c->mask_member, 1, &cap->n_skipped_masks, out,
                         err, errlen);
}

int ava256_read_parts(Ava256Capture *cap, int cam, int frame, Ava256Image *out, char *err, size_t errlen) {
    check_index(cap, cam, frame, "ava256_read_parts");
    const Ava256Camera *c = &cap->cams[cam];
    return read_optional(cap, cam, frame, "segmentation_parts", c->parts, c->parts_member, MEMBER_LABELS,
                         &cap->n_skipped_parts, out, err, errlen);
}

int ava256_read_background(Ava256Capture *cap, int cam, Ava256Image *out, char *err, size_t errlen) {
    check_index(cap, cam, 0, "ava256_read_background");
    const Ava256Camera *c = &cap->cams[cam];
    if (!cap->bg || c->bg_member < 0) return AVA256_MISSING;
    char zpath[4200];
    snprintf(zpath, sizeof zpath, "%s/background_image/background_image.zip", cap->dir);
    return decode_member(cap, cap->bg, zpath, c->bg_member, 3, out, err, errlen);
}

void ava256_scale_K(const double K_native[9], int w, int h, double K_out[9]) {
    double sx = (double)w / AVA256_NATIVE_W, sy = (double)h / AVA256_NATIVE_H;
    for (int j = 0; j < 3; j++) {
        K_out[j] = K_native[j] * sx;
        K_out[3 + j] = K_native[3 + j] * sy;
        K_out[6 + j] = K_native[6 + j];
    }
}

void ava256_camera_centre(const double w2c[12], double c[3]) {
    for (int i = 0; i < 3; i++) c[i] = -(w2c[i] * w2c[3] + w2c[4 + i] * w2c[7] + w2c[8 + i] * w2c[11]);
}
