// checkpoint.c — model checkpoint writer/reader (docs/formats.md). Refuses anything it cannot trust.
#include "checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "../common/util.h"
#include "params.h"

static const char CKPT_MAGIC[8] = {'A', 'V', 'T', '3', 'C', 'K', 'P', 'T'};

uint32_t crc32_update(uint32_t crc, const void *data, size_t n) { return (uint32_t)crc32_z(crc, (const Bytef *)data, n); }

static uint32_t crc_of(const void *data, size_t n) { return crc32_update(0, data, n); }

// Header (64 bytes, little-endian): magic[8], version u32, kind u32, n_params u64, config_len u64,
// payload_offset u64, config_crc u32, payload_crc u32, state_len u64 (TRAIN only, else 0), zeros.
static void save_any(const char *path, uint32_t kind, const ModelConfig *cfg, const float *const *arrays,
                     int n_arrays, size_t n_params, const char *state) {
    ModelConfig copy = *cfg;
    CfgTable t = model_config_table(&copy);
    char *text = cfg_to_string(&t, 1);
    uint64_t clen = strlen(text), off = (64 + clen + 63) / 64 * 64, slen = state ? strlen(state) : 0;
    unsigned char hdr[64] = {0};
    uint32_t ver = CKPT_VERSION, ccrc = crc_of(text, clen);
    uLong pc = crc32(0L, Z_NULL, 0);
    for (int k = 0; k < n_arrays; k++) pc = crc32_combine(pc, crc_of(arrays[k], n_params * 4), (z_off_t)(n_params * 4));
    if (slen) pc = crc32_combine(pc, crc_of(state, slen), (z_off_t)slen);
    uint32_t pcrc = (uint32_t)pc;
    uint64_t np = n_params;
    memcpy(hdr, CKPT_MAGIC, 8);
    memcpy(hdr + 8, &ver, 4);
    memcpy(hdr + 12, &kind, 4);
    memcpy(hdr + 16, &np, 8);
    memcpy(hdr + 24, &clen, 8);
    memcpy(hdr + 32, &off, 8);
    memcpy(hdr + 40, &ccrc, 4);
    memcpy(hdr + 44, &pcrc, 4);
    memcpy(hdr + 48, &slen, 8);
    AtomicFile af;
    atomicOpen(&af, path);
    fwriteCheck(hdr, 1, 64, af.f);
    fwriteCheck(text, 1, clen, af.f);
    static const unsigned char zeros[64] = {0};
    if (off - 64 - clen) fwriteCheck(zeros, 1, off - 64 - clen, af.f);
    for (int k = 0; k < n_arrays; k++) fwriteCheck(arrays[k], sizeof(float), n_params, af.f);
    if (slen) fwriteCheck(state, 1, slen, af.f);
    atomicClose(&af);
    free(text);
}

void checkpoint_save(const char *path, const ModelConfig *cfg, const float *params, size_t n_params) {
    const float *a[1] = {params};
    save_any(path, CKPT_KIND_MODEL, cfg, a, 1, n_params, NULL);
}

void checkpoint_save_train(const char *path, const ModelConfig *cfg, const float *params, const float *m,
                           const float *v, size_t n_params, const char *state) {
    const float *a[3] = {params, m, v};
    save_any(path, CKPT_KIND_TRAIN, cfg, a, 3, n_params, state);
}

#define FAIL(...) FAIL_FILE(path, __VA_ARGS__)

// Reads and verifies the whole file. out[0..2] = params, m, v (each may be NULL = not wanted; for a
// MODEL file only out[0] exists); *state likewise. With want_payload = 0 only the header and config
// are checked (inspect).
static int load_any(const char *path, ModelConfig *cfg, float **out[3], char **state, int want_payload,
                    CkptHeader *h, char *err, size_t errlen) {
    char *text = NULL, *st = NULL;
    float *arr[3] = {NULL, NULL, NULL};
    for (int k = 0; k < 3; k++)
        if (out[k]) *out[k] = NULL;
    if (state) *state = NULL;
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
    memcpy(&h->state_len, hdr + 48, 8);
    if (h->version != CKPT_VERSION) FAIL("unsupported checkpoint version %u (this build reads %d)", h->version, CKPT_VERSION);
    if (h->kind != CKPT_KIND_MODEL && h->kind != CKPT_KIND_TRAIN) FAIL("unsupported checkpoint kind %u", h->kind);
    if (h->config_len > (1u << 20) || h->payload_offset != (64 + h->config_len + 63) / 64 * 64)
        FAIL("corrupt header (config_len %llu, payload_offset %llu)", (unsigned long long)h->config_len,
             (unsigned long long)h->payload_offset);
    if (h->n_params > ((uint64_t)1 << 40)) FAIL("corrupt header (n_params %llu)", (unsigned long long)h->n_params);
    if (h->kind == CKPT_KIND_MODEL ? h->state_len != 0 : h->state_len > (1u << 24))
        FAIL("corrupt header (state_len %llu)", (unsigned long long)h->state_len);
    int n_arrays = h->kind == CKPT_KIND_TRAIN ? 3 : 1;
    uint64_t want = h->payload_offset + 4 * h->n_params * n_arrays + h->state_len;
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
    if (want_payload) {
        // every array is read (the CRC covers the whole payload); unwanted ones are freed at the end
        fseekCheck(f, (long)h->payload_offset, SEEK_SET);
        uLong pc = crc32(0L, Z_NULL, 0);
        for (int k = 0; k < n_arrays; k++) {
            arr[k] = (float *)mallocCheck(4 * (n ? n : 1));
            if (fread(arr[k], 4, n, f) != n) FAIL("short read of the %s", k ? "optimizer moments" : "parameters");
            pc = crc32_combine(pc, crc_of(arr[k], 4 * n), (z_off_t)(4 * n));
        }
        st = (char *)mallocCheck(h->state_len + 1);
        if (fread(st, 1, h->state_len, f) != h->state_len) FAIL("short read of the training state");
        st[h->state_len] = 0;
        if (h->state_len) pc = crc32_combine(pc, crc_of(st, h->state_len), (z_off_t)h->state_len);
        if ((uint32_t)pc != h->payload_crc) FAIL("payload CRC mismatch (corrupt file)");
        if (memchr(st, 0, h->state_len)) FAIL("training state holds a NUL byte (corrupt file)");
        for (int k = 0; k < 3; k++)
            if (out[k]) *out[k] = arr[k], arr[k] = NULL;
        if (state) *state = st, st = NULL;
    }
    for (int k = 0; k < 3; k++) free(arr[k]);
    free(st);
    free(text);
    fclose(f);
    return 0;
fail:
    for (int k = 0; k < 3; k++) free(arr[k]);
    free(st);
    free(text);
    fclose(f);
    return -1;
}

int checkpoint_load(const char *path, ModelConfig *cfg, float **params, CkptHeader *h, char *err, size_t errlen) {
    float **out[3] = {params, NULL, NULL};
    return load_any(path, cfg, out, NULL, params != NULL, h, err, errlen);
}

int checkpoint_load_train(const char *path, ModelConfig *cfg, float **params, float **m, float **v, char **state,
                          CkptHeader *h, char *err, size_t errlen) {
    float **out[3] = {params, m, v};
    if (load_any(path, cfg, out, state, 1, h, err, errlen)) return -1;
    if (h->kind != CKPT_KIND_TRAIN) {
        free(*params), free(*m), free(*v), free(*state);
        *params = *m = *v = NULL, *state = NULL;
        return error_set(err, errlen, "%s: a model checkpoint (no optimizer state) cannot be resumed", path);
    }
    return 0;
}
