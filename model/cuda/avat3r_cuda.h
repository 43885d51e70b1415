// avat3r_cuda.h — the Avat3r network on one GPU (fp32), the counterpart of model/avat3r.c: the same
// parameter and activation layouts (param_sizes, mc_act_sizes), the same forward and backward, with the
// CPU model as its oracle (tests/cuda/test_model_cuda.c). All pointers in it are device pointers.
#ifndef AVAT3R_AVAT3R_CUDA_H
#define AVAT3R_AVAT3R_CUDA_H
#ifdef __cplusplus
extern "C" {
#endif
#include "../avat3r.h"

typedef struct {
    ModelConfig cfg;
    int B;                                  // batch size the activations are sized for
    size_t param_sizes[NUM_PARAM_TENSORS];
    size_t n_params;
    float *params, *grads;                  // [n_params] each, device
    ParamTensors p, g;                      // named views into params / grads
    size_t n_acts;
    float *acts, *dacts;                    // [n_acts] each, device, laid out as the CPU model's
    ActTensors a, da;
    float *att_delta;                       // [B·NH·N] attention backward scratch
    size_t max_operand;                     // floats of the largest matmul operand (bf16 scratch, matmul_cuda_reserve)
    // when set, called by avat3r_cuda_backward (host side, once the bucket's last kernel is queued on the
    // default stream) as each gradient bucket of params.h's grad_bucket_slices is final: data-parallel
    // ranks all-reduce it while the backward goes on (train/step_device.c, issue #8)
    void (*grads_ready)(void *ctx, int bucket);
    void *grads_ready_ctx;
} Avat3rCuda;

// Allocates everything on the current device for batch size B (and sets up cuBLAS). Nothing else allocates.
void avat3r_cuda_build(Avat3rCuda *m, const ModelConfig *cfg, int B);
void avat3r_cuda_free(Avat3rCuda *m);
// Copies host parameters [n_params] in (checkpoints stay in the CPU format) / out.
void avat3r_cuda_set_params(Avat3rCuda *m, const float *host_params);
void avat3r_cuda_get_params(const Avat3rCuda *m, float *host_params);
// in: device pointers with the shapes of Avat3rBatch. Gaussians in m->a.gauss [B·V·H·W, 14].
void avat3r_cuda_forward(Avat3rCuda *m, const Avat3rBatch *in);
void avat3r_cuda_zero_grad(Avat3rCuda *m);
// Backward from dL/dgauss [B·V·H·W, 14] (device); parameter gradients accumulate into m->grads.
void avat3r_cuda_backward(Avat3rCuda *m, const Avat3rBatch *in, const float *dgauss);
#ifdef __cplusplus
}
#endif
#endif
