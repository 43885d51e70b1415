// npy.h — read a float32 array from NumPy .npy bytes (format 1.0/2.0/3.0, '<f4', C order only). The aux
// maps of a capture are .npy members of zips; no Debian C library reads .npy, and the format is a fixed
// header plus raw data, so this strict reader is all that is needed.
#ifndef AVAT3R_NPY_H
#define AVAT3R_NPY_H
#include <stddef.h>
#include <stdint.h>

#define NPY_MAX_DIMS 8
// Parses the header; on success *data points at the floats inside `bytes` (aligned or not: copy with
// memcpy), shape/ndim are filled. Returns 0, or -1 with a message naming `what`.
int npy_parse_f32(const uint8_t *bytes, size_t n, const char *what, int64_t shape[NPY_MAX_DIMS], int *ndim,
                  const uint8_t **data, char *err, size_t errlen);
#endif
