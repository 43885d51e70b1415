// ava256_expr.c — the expression-code sidecar (docs/formats.md) that
// tools/ava256_expr_codes.py converts from expression_codes/aeparams_1440000.pkl:
// "AVT3EXPR", u32 version = 1, u32 dim, u64 count, u64 source_size, then count records
// (int64 frame id, float32[dim]) sorted by frame id; little-endian.
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ava256_internal.h"
#include "util.h"

#define EXPR_HEADER 32
#define EXPR_MAX_BYTES ((size_t)1 << 31)
#define EXPR_MAX_DIM 65536

static uint32_t rd_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd_u64(const uint8_t *p) { return (uint64_t)rd_u32(p) | (uint64_t)rd_u32(p + 4) << 32; }

int ava_load_expr(Ava256Capture *cap, int flags, char *err, size_t errlen) {
    for (int f = 0; f < cap->n_frames; f++) cap->frames[f].expr_row = -1;
    char path[4200], pkl[4200];
    snprintf(path, sizeof path, "%s/%s", cap->dir, AVA256_EXPR_SIDECAR);
    snprintf(pkl, sizeof pkl, "%s/%s", cap->dir, AVA256_EXPR_PKL);
    struct stat pst;
    int have_pkl = stat(pkl, &pst) == 0;
    char *buf;
    size_t len;
    int r = ava_slurp(path, EXPR_MAX_BYTES, &buf, &len, err, errlen);
    if (r == AVA256_MISSING) {
        if (have_pkl)
            snprintf(cap->expr_note, sizeof cap->expr_note,
                     "%.1800s/%s: no expression codes; run: /usr/bin/python3 tools/ava256_expr_codes.py %.1800s",
                     cap->dir, AVA256_EXPR_SIDECAR, cap->dir);
        else
            snprintf(cap->expr_note, sizeof cap->expr_note,
                     "%.1800s/%s: no expression codes (and no %.1800s/%s to convert; it exists only in the 4TB "
                     "release)", cap->dir, AVA256_EXPR_SIDECAR, cap->dir, AVA256_EXPR_PKL);
        if (flags & AVA256_REQUIRE_EXPR) return error_set(err, errlen, "%s", cap->expr_note);
        cap->n_missing_expr = cap->n_frames;
        return AVA256_OK;
    }
    if (r != AVA256_OK) return r;
    const uint8_t *p = (const uint8_t *)buf;
    if (len < EXPR_HEADER || memcmp(p, "AVT3EXPR", 8) != 0) {
        free(buf);
        return error_set(err, errlen, "%s: not an expression sidecar (expected magic AVT3EXPR); rerun "
                        "tools/ava256_expr_codes.py", path);
    }
    uint32_t version = rd_u32(p + 8), dim = rd_u32(p + 12);
    uint64_t count = rd_u64(p + 16), source_size = rd_u64(p + 24);
    if (version != 1 || dim == 0 || dim > EXPR_MAX_DIM) {
        free(buf);
        return error_set(err, errlen, "%s: field '%s' = %u; expected %s", path, version != 1 ? "version" : "dim",
                        version != 1 ? version : dim, version != 1 ? "1" : "1..65536");
    }
    size_t rec = 8 + 4 * (size_t)dim;
    if (count == 0 || count > (len - EXPR_HEADER) / rec || EXPR_HEADER + count * rec != len) {
        free(buf);
        return error_set(err, errlen, "%s: %zu bytes, but the header says %llu records of %u floats (%llu bytes); "
                        "truncated? rerun tools/ava256_expr_codes.py", path, len, (unsigned long long)count, dim,
                        (unsigned long long)(EXPR_HEADER + count * rec));
    }
    if (have_pkl && source_size != (uint64_t)pst.st_size) {
        free(buf);
        return error_set(err, errlen, "%s: made from a %llu-byte pickle, but %s has %lld bytes: stale; run: "
                        "/usr/bin/python3 tools/ava256_expr_codes.py %s", path, (unsigned long long)source_size, pkl,
                        (long long)pst.st_size, cap->dir);
    }
    cap->expr_ids = mallocCheck(count * sizeof(int64_t));
    cap->expr = mallocCheck(count * dim * sizeof(float));
    for (uint64_t i = 0; i < count; i++) {
        const uint8_t *q = p + EXPR_HEADER + i * rec;
        int64_t id = (int64_t)rd_u64(q);
        if (i > 0 && id <= cap->expr_ids[i - 1]) {
            free(buf);
            return error_set(err, errlen, "%s: record %llu: frame id %lld is not above the previous one (%lld); "
                            "expected ids sorted and unique", path, (unsigned long long)i, (long long)id,
                            (long long)cap->expr_ids[i - 1]);
        }
        cap->expr_ids[i] = id;
        float *dst = cap->expr + i * dim;
        memcpy(dst, q + 8, 4 * (size_t)dim); // little-endian host (x86-64, aarch64)
        for (uint32_t j = 0; j < dim; j++)
            if (!isfinite(dst[j])) {
                free(buf);
                return error_set(err, errlen, "%s: frame %lld: code[%u] is not finite", path, (long long)id, j);
            }
    }
    free(buf);
    cap->expr_dim = (int)dim;
    cap->n_expr = (int64_t)count;
    for (int f = 0; f < cap->n_frames; f++) { // binary search per frame
        int64_t lo = 0, hi = cap->n_expr - 1, id = cap->frames[f].id;
        while (lo <= hi) {
            int64_t mid = lo + (hi - lo) / 2;
            if (cap->expr_ids[mid] == id) {
                cap->frames[f].expr_row = mid;
                break;
            }
            if (cap->expr_ids[mid] < id) lo = mid + 1;
            else hi = mid - 1;
        }
        if (cap->frames[f].expr_row < 0) cap->n_missing_expr++;
    }
    return AVA256_OK;
}

int ava256_expr_code(Ava256Capture *cap, int frame, const float **code, char *err, size_t errlen) {
    if (frame < 0 || frame >= cap->n_frames)
        FATAL("ava256_expr_code: frame index %d outside 0..%d", frame, cap->n_frames - 1);
    *code = NULL;
    if (cap->expr_dim == 0) return error_set(err, errlen, "%s", cap->expr_note);
    int64_t row = cap->frames[frame].expr_row;
    if (row < 0) {
        cap->n_skipped_expr++;
        return AVA256_MISSING;
    }
    *code = cap->expr + row * cap->expr_dim;
    return AVA256_OK;
}
