// params.h — the parameter table of docs/model.md: names, sizes, groups, init rule; FLOP counts.
#ifndef AVAT3R_PARAMS_H
#define AVAT3R_PARAMS_H
#include <stddef.h>
#include <stdint.h>
#include "model_config.h"

#define NUM_PARAM_TENSORS 39
extern const char *const param_names[NUM_PARAM_TENSORS];

typedef enum { INIT_NORMAL, INIT_NORMAL_RESID, INIT_ZERO, INIT_ONE } ParamInit;
ParamInit param_init_rule(int i);
// Group of tensor i: "encoder", "expression", "blocks", "final_norm", "upsampler", "head" — its index in
// param_group_names, and the name.
#define NUM_PARAM_GROUPS 6
extern const char *const param_group_names[NUM_PARAM_GROUPS];
int param_group_index(int i);
const char *param_group(int i);
// Element counts of every tensor for a config; returns the total.
size_t param_sizes(const ModelConfig *c, size_t sizes[NUM_PARAM_TENSORS]);
// Gradient buckets, in the order the backward pass finishes them, so that data-parallel ranks can
// all-reduce a bucket while the backward computes the next (issue #8): bucket 0 = head, upsampler and
// final LayerNorm; bucket 1 + (L−1−l) = block l (its slice of every per-layer tensor); bucket L + 1 = the
// rest (expression MLP and norm, patch and Sapiens projections, position embedding). Writes bucket b's
// (offset, count) slices of the flat parameter buffer (at most NUM_PARAM_TENSORS, empty tensors left out)
// and returns how many. Together the buckets cover every parameter exactly once.
#define GRAD_BUCKETS(c) ((c)->layers + 2)
int grad_bucket_slices(const ModelConfig *c, int bucket, size_t offset[NUM_PARAM_TENSORS],
                       size_t count[NUM_PARAM_TENSORS]);
// Multiply-add FLOPs (×2) of one forward pass for one sample, matmuls and attention included.
double model_forward_flops(const ModelConfig *c);

// Export layout (`avat3r export`, docs/formats.md "safetensors"): every tensor under a PyTorch-style name
// with its shape, per-layer tensors split by block and the upsampler by stage. `offset`/`count` index the
// flat parameter buffer. Returns the number of entries (≤ param_export_max(c)); disabled features' empty
// tensors are left out.
typedef struct {
    char name[96];
    int ndim;
    int64_t shape[2];
    size_t offset, count;
} ParamExport;
int param_export_max(const ModelConfig *c);
int param_export_entries(const ModelConfig *c, ParamExport *e);

#endif
