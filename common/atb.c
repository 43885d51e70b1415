// atb.c — tensor bundle reader/writer (docs/formats.md). Little-endian hosts only (checked).
#include "atb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char ATB_MAGIC[8] = {'A', 'V', 'T', '3', 'T', 'E', 'N', 'S'};
static size_t atb_elem_size(int dtype) { return dtype == ATB_F64 ? 8 : 4; }

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        snprintf(err, errlen, __VA_ARGS__);                                                        \
        goto fail;                                                                                 \
    } while (0)

int atb_read(const char *path, Atb *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open tensor bundle", path);
        return -1;
    }
    int64_t fsize = file_size(f), pos = 16;
    char magic[8];
    uint32_t ver = 0, count = 0;
    if (fread(magic, 1, 8, f) != 8 || memcmp(magic, ATB_MAGIC, 8)) FAIL("%s: not a tensor bundle (bad magic)", path);
    if (fread(&ver, 4, 1, f) != 1 || ver != 1) FAIL("%s: unsupported tensor bundle version %u", path, ver);
    if (fread(&count, 4, 1, f) != 1 || count > 100000) FAIL("%s: bad tensor count", path);
    out->t = (AtbTensor *)callocCheck(count ? count : 1, sizeof(AtbTensor));
    for (uint32_t i = 0; i < count; i++) {
        AtbTensor *t = &out->t[i];
        uint32_t nlen = 0, dt = 0, nd = 0;
        if (fread(&nlen, 4, 1, f) != 1 || nlen == 0 || nlen >= sizeof t->name) FAIL("%s: tensor %u: bad name length", path, i);
        if (fread(t->name, 1, nlen, f) != nlen) FAIL("%s: tensor %u: truncated name", path, i);
        if (fread(&dt, 4, 1, f) != 1 || dt > 2) FAIL("%s: tensor '%s': bad dtype %u", path, t->name, dt);
        if (fread(&nd, 4, 1, f) != 1 || nd > ATB_MAX_DIMS) FAIL("%s: tensor '%s': bad ndim %u", path, t->name, nd);
        t->dtype = (int)dt;
        t->ndim = (int)nd;
        t->count = 1;
        for (uint32_t d = 0; d < nd; d++) {
            if (fread(&t->dims[d], 8, 1, f) != 1) FAIL("%s: tensor '%s': truncated dims", path, t->name);
            if (t->dims[d] > (1ull << 40) || (t->dims[d] && t->count > (1ull << 40) / t->dims[d]))
                FAIL("%s: tensor '%s': dims too large", path, t->name);
            t->count *= t->dims[d];
        }
        pos += 12 + nlen + 8 * nd;
        size_t bytes = t->count * atb_elem_size(t->dtype);
        if (pos + (int64_t)bytes > fsize) FAIL("%s: tensor '%s': truncated data (file has %lld bytes, need %lld)", path,
                                             t->name, (long long)fsize, (long long)(pos + bytes));
        t->data = mallocCheck(bytes ? bytes : 1);
        if (fread(t->data, 1, bytes, f) != bytes) FAIL("%s: tensor '%s': short read", path, t->name);
        pos += bytes;
        out->n = (int)i + 1;
    }
    if (pos != fsize) FAIL("%s: %lld trailing bytes after the last tensor", path, (long long)(fsize - pos));
    fclose(f);
    return 0;
fail:
    fclose(f);
    atb_free(out);
    return -1;
}

void atb_free(Atb *b) {
    for (int i = 0; b->t && i < b->n; i++) free(b->t[i].data);
    free(b->t);
    memset(b, 0, sizeof *b);
}

const AtbTensor *atb_find(const Atb *b, const char *name) {
    for (int i = 0; i < b->n; i++)
        if (!strcmp(b->t[i].name, name)) return &b->t[i];
    return NULL;
}

static int atb_get(const Atb *b, const char *name, void *dst, int as_f64, size_t count, char *err, size_t errlen) {
    const AtbTensor *t = atb_find(b, name);
    if (!t) {
        snprintf(err, errlen, "tensor '%s' missing from bundle", name);
        return -1;
    }
    if (t->count != count) {
        snprintf(err, errlen, "tensor '%s': %zu elements, expected %zu", name, t->count, count);
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        double v = t->dtype == ATB_F64 ? ((const double *)t->data)[i]
                   : t->dtype == ATB_F32 ? ((const float *)t->data)[i]
                                         : ((const int32_t *)t->data)[i];
        if (as_f64) ((double *)dst)[i] = v;
        else ((float *)dst)[i] = (float)v;
    }
    return 0;
}
int atb_get_f32(const Atb *b, const char *name, float *dst, size_t count, char *err, size_t errlen) {
    return atb_get(b, name, dst, 0, count, err, errlen);
}
int atb_get_f64(const Atb *b, const char *name, double *dst, size_t count, char *err, size_t errlen) {
    return atb_get(b, name, dst, 1, count, err, errlen);
}

void atb_write_begin(AtbWriter *w, const char *path, uint32_t count) {
    uint32_t one = 1;
    if (*(const uint8_t *)&one != 1) FATAL("tensor bundles are little-endian; this host is not");
    atomicOpen(&w->af, path);
    w->expected = count;
    w->written = 0;
    fwriteCheck(ATB_MAGIC, 1, 8, w->af.f);
    fwriteCheck(&one, 4, 1, w->af.f);
    fwriteCheck(&count, 4, 1, w->af.f);
}

void atb_write_tensor(AtbWriter *w, const char *name, int dtype, int ndim, const uint64_t *dims, const void *data) {
    uint32_t nlen = (uint32_t)strlen(name), dt = (uint32_t)dtype, nd = (uint32_t)ndim;
    if (w->written >= w->expected) FATAL("atb: more tensors than announced (%u) writing '%s'", w->expected, name);
    if (nd > ATB_MAX_DIMS || nlen == 0 || nlen >= 128) FATAL("atb: bad tensor '%s'", name);
    size_t count = 1;
    for (int d = 0; d < ndim; d++) count *= dims[d];
    fwriteCheck(&nlen, 4, 1, w->af.f);
    fwriteCheck(name, 1, nlen, w->af.f);
    fwriteCheck(&dt, 4, 1, w->af.f);
    fwriteCheck(&nd, 4, 1, w->af.f);
    if (nd) fwriteCheck(dims, 8, nd, w->af.f);
    if (count) fwriteCheck(data, atb_elem_size(dtype), count, w->af.f);
    w->written++;
}

void atb_write_end(AtbWriter *w) {
    if (w->written != w->expected) FATAL("atb: wrote %u tensors, announced %u", w->written, w->expected);
    atomicClose(&w->af);
}
