// npy.c — strict .npy reader (see npy.h; format: numpy.lib.format).
#include "npy.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int npy_parse_f32(const uint8_t *b, size_t n, const char *what, int64_t shape[NPY_MAX_DIMS], int *ndim,
                  const uint8_t **data, char *err, size_t errlen) {
    if (n < 10 || memcmp(b, "\x93NUMPY", 6)) return snprintf(err, errlen, "%s: not a .npy file", what), -1;
    int major = b[6];
    size_t hlen, off;
    if (major == 1) hlen = b[8] | (size_t)b[9] << 8, off = 10;
    else if ((major == 2 || major == 3) && n >= 12)
        hlen = b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24, off = 12;
    else return snprintf(err, errlen, "%s: unsupported .npy version %d", what, major), -1;
    if (off + hlen > n || hlen > 65536) return snprintf(err, errlen, "%s: truncated .npy header", what), -1;
    char h[65537];
    memcpy(h, b + off, hlen);
    h[hlen] = 0;
    if (!strstr(h, "'descr': '<f4'")) return snprintf(err, errlen, "%s: dtype must be '<f4' (float32 little-endian)", what), -1;
    if (!strstr(h, "'fortran_order': False")) return snprintf(err, errlen, "%s: Fortran-order arrays are not read", what), -1;
    const char *s = strstr(h, "'shape': (");
    if (!s) return snprintf(err, errlen, "%s: no shape in the .npy header", what), -1;
    s += 10;
    *ndim = 0;
    size_t count = 1;
    while (*s && *s != ')') {
        char *end;
        long long v = strtoll(s, &end, 10);
        if (end == s || v < 0 || *ndim >= NPY_MAX_DIMS) return snprintf(err, errlen, "%s: bad shape in the .npy header", what), -1;
        if (v > 0 && count > SIZE_MAX / 4 / (size_t)v) // the byte count would wrap and match a short file
            return snprintf(err, errlen, "%s: shape in the .npy header is too large", what), -1;
        shape[(*ndim)++] = v;
        count *= (size_t)v;
        s = end;
        while (*s == ',' || *s == ' ') s++;
    }
    size_t start = off + hlen;
    if (n - start != count * 4)
        return snprintf(err, errlen, "%s: %zu data bytes for %zu floats (truncated or trailing data)", what, n - start, count), -1;
    *data = b + start;
    return 0;
}
