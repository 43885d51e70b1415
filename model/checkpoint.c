// checkpoint.c — model checkpoint writer/reader (docs/formats.md). Refuses anything it cannot trust.
#include "checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "../common/util.h"
#include "params.h"

static const char CKPT_MAGIC[8] = {'A', 'V', 'T', '3', 'C', 'K', 'P', 'T'};

static uint32_t crc_of(const void *data, size_t n) {
    uLong c = crc32(0L, Z_NULL, 0);
    const unsigned char *p = (const unsigned char *)data;
    while (n) { // zlib takes uInt lengths
        uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, p, chunk);
        p += chunk;
        n -= chunk;
    }
    return (uint32_t)c;
}

void checkpoint_save(const char *path, const ModelConfig *cfg, const float *params, size_t n_params) {
    ModelConfig copy = *cfg;
    CfgTable t = model_config_table(&copy);
    char *text = cfg_to_string(&t, 1);
    uint64_t clen = strlen(text), off = (64 + clen + 63) / 64 * 64;
    unsigned char hdr[64] = {0};
    uint32_t ver = CKPT_VERSION, kind = CKPT_KIND_MODEL, ccrc = crc_of(text, clen);
    uint32_t pcrc = crc_of(params, n_params * sizeof(float));
    uint64_t np = n_params;
    memcpy(hdr, CKPT_MAGIC, 8);
    memcpy(hdr + 8, &ver, 4);
    memcpy(hdr + 12, &kind, 4);
    memcpy(hdr + 16, &np, 8);
    memcpy(hdr + 24, &clen, 8);
    memcpy(hdr + 32, &off, 8);
    memcpy(hdr + 40, &ccrc, 4);
    memcpy(hdr + 44, &pcrc, 4);
    AtomicFile af;
    atomicOpen(&af, path);
    fwriteCheck(hdr, 1, 64, af.f);
    fwriteCheck(text, 1, clen, af.f);
    static const unsigned char zeros[64] = {0};
    if (off - 64 - clen) fwriteCheck(zeros, 1, off - 64 - clen, af.f);
    fwriteCheck(params, sizeof(float), n_params, af.f);
    atomicClose(&af);
    free(text);
}

#define FAIL(...) FAIL_FILE(path, __VA_ARGS__)

int checkpoint_load(const char *path, ModelConfig *cfg, float **params, CkptHeader *h, char *err, size_t errlen) {
    char *text = NULL;
    float *p = NULL;
    if (params) *params = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open checkpoint", path);
        return -1;
    }
    int64_t fsize = file_size(f);
    unsigned char hdr[64];
    if (fsize < 64 || fread(hdr, 1, 64, f) != 64) FAIL("too short to be a checkpoint (%lld bytes)", (long long)fsize);
    if (memcmp(hdr, CKPT_MAGIC, 8)) FAIL("not an avat3r checkpoint (bad magic)");
    memcpy(&h->version, hdr + 8, 4);
    memcpy(&h->kind, hdr + 12, 4);
    memcpy(&h->n_params, hdr + 16, 8);
    memcpy(&h->config_len, hdr + 24, 8);
    memcpy(&h->payload_offset, hdr + 32, 8);
    memcpy(&h->config_crc, hdr + 40, 4);
    memcpy(&h->payload_crc, hdr + 44, 4);
    if (h->version != CKPT_VERSION) FAIL("unsupported checkpoint version %u (this build reads %d)", h->version, CKPT_VERSION);
    if (h->kind != CKPT_KIND_MODEL) FAIL("unsupported checkpoint kind %u", h->kind);
    if (h->config_len > (1u << 20) || h->payload_offset != (64 + h->config_len + 63) / 64 * 64)
        FAIL("corrupt header (config_len %llu, payload_offset %llu)", (unsigned long long)h->config_len,
             (unsigned long long)h->payload_offset);
    if (h->n_params > ((uint64_t)1 << 40)) FAIL("corrupt header (n_params %llu)", (unsigned long long)h->n_params);
    uint64_t want = h->payload_offset + 4 * h->n_params;
    if ((uint64_t)fsize != want)
        FAIL("file is %lld bytes but the header promises %llu (%s)", (long long)fsize, (unsigned long long)want,
             (uint64_t)fsize < want ? "truncated" : "trailing bytes");
    text = (char *)mallocCheck(h->config_len + 1);
    if (fread(text, 1, h->config_len, f) != h->config_len) FAIL("short read of the config");
    text[h->config_len] = 0;
    if (crc_of(text, h->config_len) != h->config_crc) FAIL("config CRC mismatch (corrupt file)");
    if (model_config_from_text(cfg, text, path, err, errlen)) {
        char m2[400];
        snprintf(m2, sizeof m2, "%s", err);
        FAIL("bad config inside checkpoint: %s", m2);
    }
    size_t sizes[NUM_PARAM_TENSORS], n = param_sizes(cfg, sizes);
    if (n != h->n_params)
        FAIL("holds %llu parameters but its config implies %zu", (unsigned long long)h->n_params, n);
    if (params) {
        p = (float *)mallocCheck(4 * (n ? n : 1));
        fseekCheck(f, (long)h->payload_offset, SEEK_SET);
        if (fread(p, 4, n, f) != n) FAIL("short read of the parameters");
        if (crc_of(p, 4 * n) != h->payload_crc) FAIL("parameter CRC mismatch (corrupt file)");
        *params = p;
    }
    free(text);
    fclose(f);
    return 0;
fail:
    free(text);
    free(p);
    fclose(f);
    return -1;
}
