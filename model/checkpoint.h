// checkpoint.h — model checkpoints (docs/formats.md): config text + float32 parameters.
#ifndef AVAT3R_CHECKPOINT_H
#define AVAT3R_CHECKPOINT_H
#include <stddef.h>
#include <stdint.h>
#include "model_config.h"

#define CKPT_VERSION 1
#define CKPT_KIND_MODEL 1 // parameters only
#define CKPT_KIND_TRAIN 2 // parameters, AdamW moments and the run's state (train/ writes the state text)

typedef struct {
    uint32_t version, kind;
    uint64_t n_params, config_len, payload_offset;
    uint32_t config_crc, payload_crc;
    uint64_t state_len; // kind TRAIN: bytes of state text at the end of the payload
} CkptHeader;

// zlib CRC-32 of n bytes continuing `crc` (start with 0), for buffers of any size. Every file format of
// the project checks its payload with it.
uint32_t crc32_update(uint32_t crc, const void *data, size_t n);

// Writes atomically (temporary name, then rename).
void checkpoint_save(const char *path, const ModelConfig *cfg, const float *params, size_t n_params);
// Reads and verifies everything (magic, version, kind, exact size, CRCs, config, parameter count).
// On success fills cfg, *params (malloc'd, caller frees; NULL allowed to skip loading them) and hdr.
// Returns 0, or -1 with "path: what is wrong" in err.
// Accepts both kinds (a training checkpoint serves wherever a model one does).
int checkpoint_load(const char *path, ModelConfig *cfg, float **params, CkptHeader *hdr, char *err, size_t errlen);

// Training checkpoint: after the parameters, the AdamW moments m and v [n_params] each, then the state
// text (NUL-free, written and parsed by train/). Written atomically.
void checkpoint_save_train(const char *path, const ModelConfig *cfg, const float *params, const float *m,
                           const float *v, size_t n_params, const char *state);
// Reads a TRAIN checkpoint (a MODEL one is refused: it has no optimizer state). Everything is verified
// before anything is returned; *params, *m, *v, *state are malloc'd (state NUL-terminated).
int checkpoint_load_train(const char *path, ModelConfig *cfg, float **params, float **m, float **v, char **state,
                          CkptHeader *hdr, char *err, size_t errlen);

#endif
