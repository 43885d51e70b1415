// png_write.h — 8-bit RGB PNG files, written atomically (NAME.tmp.<pid>, then renamed): validation grids,
// renders, animation frames, synthetic previews. libpng's simplified API.
#ifndef AVAT3R_PNG_WRITE_H
#define AVAT3R_PNG_WRITE_H
#include <stdint.h>

#include <stddef.h>

// The project's one float -> 8-bit rule: clamp to [0, 1], then round 255·x to the nearest byte (lrintf).
// Bytes read as byte/255 come back unchanged.
void rgb8_from_unit(const float *x, size_t n, uint8_t *out);
// px [H, W, 3] bytes. Exits with the path and libpng's message when writing fails.
void png_write_rgb8(const char *path, const uint8_t *px, int W, int H);
// img [H, W, 3] floats in [0, 1] (clamped, then rounded to the nearest of 0..255).
void png_write_rgbf(const char *path, const float *img, int W, int H);

#endif
