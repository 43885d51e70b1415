// ava256_internal.h — helpers shared by the ava256 reader's files (not part of its API).
#ifndef AVAT3R_AVA256_INTERNAL_H
#define AVAT3R_AVA256_INTERNAL_H
#include <stddef.h>
#include <stdint.h>

#include "../common/util.h"
#include "ava256.h"

struct zip;

// Errors: error_set() from common/util.h, which returns -1 = AVA256_ERROR.
_Static_assert(AVA256_ERROR == -1, "error_set's return value is AVA256_ERROR");

// Reads a whole file (at most max bytes, NUL-terminated for text parsers). AVA256_MISSING when it does
// not exist, AVA256_ERROR when unreadable or larger than max.
int ava_slurp(const char *path, size_t max, char **buf, size_t *len, char *err, size_t errlen);
int ava_is_dir(const char *path);

// Opens a zip read-only: AVA256_MISSING when the file does not exist, AVA256_ERROR when it is not a
// readable zip (truncated: the central directory is at the end, so truncation is caught here).
int ava_zip_open(const char *path, struct zip **z, char *err, size_t errlen);
// Reads member `idx` whole into *buf (grown; *cap is its size), checking the length and the CRC.
int ava_zip_read(struct zip *z, const char *zpath, int64_t idx, uint8_t **buf, size_t *cap, size_t *len, char *err,
                 size_t errlen);
// Name of entry idx (never NULL; "" when libzip has none).
const char *ava_zip_name(struct zip *z, int64_t idx);
int64_t ava_zip_count(struct zip *z);
// Basename of a member name ("cam400101/020000.avif" -> "020000.avif"); "" for directory entries.
const char *ava_basename(const char *name);
// "020000.avif" with ext ".avif" -> 20000. Returns 1 when `base` is digits followed by exactly ext.
int ava_frame_member(const char *base, const char *ext, int64_t *frame_id);

// The expression sidecar (ava256_expr.c): fills cap->expr* and frames[].expr_row, or expr_note.
int ava_load_expr(Ava256Capture *cap, int flags, char *err, size_t errlen);

#endif
