// cmd_export.c — `avat3r export`: a checkpoint as safetensors (huggingface's format: an 8-byte header
// length, a JSON header naming every tensor's dtype, shape and byte range, then the raw data), under the
// PyTorch-style names of model/params.c with the model config in the metadata (docs/formats.md).
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "checkpoint.h"
#include "cli.h"
#include "params.h"

static const char *USAGE = "--checkpoint CKPT [--format safetensors] --out FILE.safetensors\n"
                           "  Any checkpoint kind (model or training); parameters only, float32, little-endian.";

int cmd_export(int argc, char **argv) {
    const char *ckpt = NULL, *out = NULL, *format = "safetensors";
    for (int i = 1; i < argc; i++) {
        int has = i + 1 < argc;
        if (!strcmp(argv[i], "--help")) {
            printf("usage: avat3r export %s\n", USAGE);
            return 0;
        } else if (!strcmp(argv[i], "--checkpoint") && has) ckpt = argv[++i];
        else if (!strcmp(argv[i], "--out") && has) out = argv[++i];
        else if (!strcmp(argv[i], "--format") && has) format = argv[++i];
        else {
            fprintf(stderr, "avat3r export: unknown or incomplete option '%s'\nusage: avat3r export %s\n", argv[i], USAGE);
            return 2;
        }
    }
    if (!ckpt || !out) {
        fprintf(stderr, "avat3r export: --checkpoint and --out are required\nusage: avat3r export %s\n", USAGE);
        return 2;
    }
    if (strcmp(format, "safetensors")) {
        fprintf(stderr, "avat3r export: --format %s: only safetensors is supported\n", format);
        return 2;
    }
    ModelConfig c;
    CkptHeader h;
    float *params = NULL;
    char err[2048];
    if (checkpoint_load(ckpt, &c, &params, &h, err, sizeof err)) {
        fprintf(stderr, "avat3r export: %s\n", err);
        return 1;
    }
    ParamExport *e = (ParamExport *)mallocCheck(sizeof(ParamExport) * param_export_max(&c));
    int n = param_export_entries(&c, e);
    cJSON *hdr = cJSON_CreateObject(), *meta = cJSON_AddObjectToObject(hdr, "__metadata__");
    CfgTable t = model_config_table(&c);
    char *cfg_text = cfg_to_string(&t, 1);
    cJSON_AddStringToObject(meta, "format", "pt");
    cJSON_AddStringToObject(meta, "producer", "avat3r.c");
    cJSON_AddStringToObject(meta, "avat3r_config", cfg_text);
    size_t at = 0, total = 0;
    for (int i = 0; i < n; i++) {
        cJSON *o = cJSON_AddObjectToObject(hdr, e[i].name), *shape = cJSON_AddArrayToObject(o, "shape");
        cJSON_AddStringToObject(o, "dtype", "F32");
        for (int k = 0; k < e[i].ndim; k++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)e[i].shape[k]));
        cJSON *rng = cJSON_AddArrayToObject(o, "data_offsets");
        cJSON_AddItemToArray(rng, cJSON_CreateNumber((double)at));
        cJSON_AddItemToArray(rng, cJSON_CreateNumber((double)(at + 4 * e[i].count)));
        at += 4 * e[i].count;
        total += e[i].count;
    }
    if (total != h.n_params) FATAL("export table covers %zu of %llu parameters", total, (unsigned long long)h.n_params);
    char *json = cJSON_PrintUnformatted(hdr);
    size_t jl = strlen(json), padded = (jl + 7) / 8 * 8; // the data starts 8-byte aligned (spaces pad the JSON)
    uint64_t hl = padded;
    AtomicFile af;
    atomicOpen(&af, out);
    fwriteCheck(&hl, 8, 1, af.f);
    fwriteCheck(json, 1, jl, af.f);
    for (size_t k = jl; k < padded; k++) fputc(' ', af.f);
    for (int i = 0; i < n; i++) fwriteCheck(params + e[i].offset, sizeof(float), e[i].count, af.f);
    atomicClose(&af);
    printf("wrote %s: %d tensors, %zu parameters, %.1f MB\n", out, n, total, (8 + padded + at) / 1e6);
    cJSON_Delete(hdr);
    free(json), free(cfg_text), free(e), free(params);
    return 0;
}
