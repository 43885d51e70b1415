// checkpoint.h — model checkpoints (docs/formats.md): config text + float32 parameters.
#ifndef AVAT3R_CHECKPOINT_H
#define AVAT3R_CHECKPOINT_H
#include <stddef.h>
#include <stdint.h>
#include "model_config.h"

#define CKPT_VERSION 1
#define CKPT_KIND_MODEL 1

typedef struct {
    uint32_t version, kind;
    uint64_t n_params, config_len, payload_offset;
    uint32_t config_crc, payload_crc;
} CkptHeader;

// Writes atomically (temporary name, then rename).
void checkpoint_save(const char *path, const ModelConfig *cfg, const float *params, size_t n_params);
// Reads and verifies everything (magic, version, kind, exact size, CRCs, config, parameter count).
// On success fills cfg, *params (malloc'd, caller frees; NULL allowed to skip loading them) and hdr.
// Returns 0, or -1 with "path: what is wrong" in err.
int checkpoint_load(const char *path, ModelConfig *cfg, float **params, CkptHeader *hdr, char *err, size_t errlen);

#endif
