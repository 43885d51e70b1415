// png_write.c — see png_write.h.
#include "png_write.h"

#include <math.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"

void png_write_rgb8(const char *path, const uint8_t *px, int W, int H) {
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    im.width = (png_uint_32)W, im.height = (png_uint_32)H, im.format = PNG_FORMAT_RGB;
    AtomicFile af;
    atomicOpen(&af, path);
    if (!png_image_write_to_stdio(&im, af.f, 0, px, 0, NULL)) FATAL("writing %s: %s", path, im.message);
    atomicClose(&af);
}

void rgb8_from_unit(const float *x, size_t n, uint8_t *out) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        out[i] = (uint8_t)lrintf(255.f * (v < 0 ? 0 : v > 1 ? 1 : v));
    }
}

void png_write_rgbf(const char *path, const float *img, int W, int H) {
    uint8_t *px = (uint8_t *)mallocCheck((size_t)W * H * 3);
    rgb8_from_unit(img, (size_t)W * H * 3, px);
    png_write_rgb8(path, px, W, H);
    free(px);
}
