// ava256_zip.c — file and zip-member access for the ava256 reader (libzip: STORED, deflate, ZIP64).
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zip.h>

#include "ava256_internal.h"
#include "util.h"

#define AVA_MEMBER_MAX ((size_t)1 << 28) // 256 MiB: far above any real image; guards corrupt sizes


int ava_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int ava_slurp(const char *path, size_t max, char **buf, size_t *len, char *err, size_t errlen) {
    *buf = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) return AVA256_MISSING;
        return error_set(err, errlen, "%s: cannot open (%s)", path, strerror(errno));
    }
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return error_set(err, errlen, "%s: cannot seek (%s)", path, strerror(errno));
    }
    long n = ftell(f);
    if (n < 0 || (size_t)n > max) {
        fclose(f);
        return error_set(err, errlen, "%s: size %ld is over the %zu-byte limit for this file", path, n, max);
    }
    rewind(f);
    char *b = mallocCheck((size_t)n + 1);
    if (fread(b, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(b);
        return error_set(err, errlen, "%s: short read", path);
    }
    fclose(f);
    b[n] = 0;
    *buf = b;
    *len = (size_t)n;
    return AVA256_OK;
}

int ava_zip_open(const char *path, struct zip **z, char *err, size_t errlen) {
    *z = NULL;
    struct stat st;
    if (stat(path, &st) != 0 && errno == ENOENT) return AVA256_MISSING;
    int code = 0;
    zip_t *za = zip_open(path, ZIP_RDONLY, &code);
    if (!za) {
        zip_error_t ze;
        zip_error_init_with_code(&ze, code);
        int r = error_set(err, errlen,
                         "%s: not a readable zip archive (%s); expected a complete zip (truncated download?)", path,
                         zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return r;
    }
    *z = za;
    return AVA256_OK;
}

int64_t ava_zip_count(struct zip *z) {
    zip_int64_t n = zip_get_num_entries(z, 0);
    return n < 0 ? 0 : n;
}

const char *ava_zip_name(struct zip *z, int64_t idx) {
    const char *s = zip_get_name(z, (zip_uint64_t)idx, ZIP_FL_ENC_RAW);
    return s ? s : "";
}

const char *ava_basename(const char *name) {
    size_t n = strlen(name);
    if (n == 0 || name[n - 1] == '/') return ""; // directory entry
    const char *s = strrchr(name, '/');
    const char *b = strrchr(name, '\\'); // zips written on Windows
    if (b && (!s || b > s)) s = b;
    return s ? s + 1 : name;
}

int ava_frame_member(const char *base, const char *ext, int64_t *frame_id) {
    int64_t v = 0;
    int nd = 0;
    const char *p = base;
    for (; *p >= '0' && *p <= '9'; p++, nd++) {
        if (nd >= 18) return 0; // no frame id has 18+ digits; keeps v in range
        v = v * 10 + (*p - '0');
    }
    if (nd == 0 || strcmp(p, ext) != 0) return 0;
    *frame_id = v;
    return 1;
}

int ava_zip_read(struct zip *z, const char *zpath, int64_t idx, uint8_t **buf, size_t *cap, size_t *len, char *err,
                 size_t errlen) {
    const char *name = ava_zip_name(z, idx);
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(z, (zip_uint64_t)idx, 0, &st) != 0 || !(st.valid & ZIP_STAT_SIZE))
        return error_set(err, errlen, "%s: member '%s': cannot stat (%s)", zpath, name, zip_strerror(z));
    if (st.size > AVA_MEMBER_MAX)
        return error_set(err, errlen, "%s: member '%s': size %llu is over the %zu-byte limit (corrupt directory?)",
                        zpath, name, (unsigned long long)st.size, AVA_MEMBER_MAX);
    size_t n = (size_t)st.size;
    if (*cap < n + 1) {
        free(*buf);
        *cap = n + 1 > 65536 ? n + 1 : 65536;
        *buf = mallocCheck(*cap);
    }
    zip_file_t *f = zip_fopen_index(z, (zip_uint64_t)idx, 0);
    if (!f) return error_set(err, errlen, "%s: member '%s': cannot open (%s)", zpath, name, zip_strerror(z));
    zip_int64_t got = zip_fread(f, *buf, n);
    // One more read must report end of data: libzip checks the CRC there, not on the short read above.
    uint8_t extra;
    zip_int64_t tail = got == (zip_int64_t)n ? zip_fread(f, &extra, 1) : 0;
    if (got != (zip_int64_t)n || tail != 0) {
        int r;
        if (got < 0 || tail < 0)
            r = error_set(err, errlen, "%s: member '%s': read failed (%s); expected %zu intact bytes", zpath, name,
                         zip_error_strerror(zip_file_get_error(f)), n);
        else
            r = error_set(err, errlen, "%s: member '%s': got %lld bytes, the directory says %zu", zpath, name,
                         (long long)(got + tail), n);
        zip_fclose(f);
        return r;
    }
    zip_fclose(f);
    *len = n;
    return AVA256_OK;
}
