// fuzz_checkpoint.c — checkpoints (model/checkpoint.c: checkpoint_load with parameters, then
// checkpoint_load_train), including the config text inside (model_config_from_text). A CRC check would
// stop almost every mutation, so unless bit 0 of header byte 56 (a reserved zero byte the reader does not
// look at) is set, the harness first rewrites both CRC fields to match the bytes they cover.
// Seeds: a model checkpoint of a 2298-parameter config and a training one (tests/fuzz/seeds.sh).
#include "fuzz_common.h"

#include "../../model/checkpoint.h"

static uint64_t rd64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (fz_names_device(data, size)) return 0; // the config text may name an include
    uint8_t *b = malloc(size + 1);
    memcpy(b, data, size);
    if (size >= 64 && !(b[56] & 1)) {
        uint64_t clen = rd64(b + 24), off = rd64(b + 32);
        if (clen <= size - 64) {
            uint32_t c = crc32_update(0, b + 64, clen);
            memcpy(b + 40, &c, 4);
        }
        if (off <= size) {
            uint32_t c = crc32_update(0, b + off, size - off);
            memcpy(b + 44, &c, 4);
        }
    }
    char path[1024], err[2048];
    fz_write(path, sizeof path, "in.ckpt", b, size);
    free(b);
    ModelConfig c;
    CkptHeader h;
    float *params = NULL, *m = NULL, *v = NULL;
    char *state = NULL;
    if (checkpoint_load(path, &c, &params, &h, err, sizeof err) == 0) {
        volatile float sink = h.n_params ? params[h.n_params - 1] : 0;
        (void)sink;
        free(params);
    }
    if (checkpoint_load_train(path, &c, &params, &m, &v, &state, &h, err, sizeof err) == 0) {
        volatile float sink = h.n_params ? m[h.n_params - 1] + v[h.n_params - 1] : 0;
        (void)sink;
        free(params), free(m), free(v), free(state);
    }
    return 0;
}
