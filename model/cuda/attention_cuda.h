// attention_cuda.h — fused multi-head attention on the GPU (fp32). Same arguments as attention_forward /
// attention_backward in model/layers_decl.h, minus the CPU scratch; head dims up to 128 (16, 32, 64 and
// 128 compiled with constant trip counts, the rest by a generic kernel).
#ifndef AVAT3R_ATTENTION_CUDA_H
#define AVAT3R_ATTENTION_CUDA_H
#ifdef __cplusplus
extern "C" {
#endif
// out[B·Nq rows, ldo], lse[B,NH,Nq]; q/k/v rows of strides ldq/ldk/ldv (device pointers)
void attention_forward_cuda(float *out, int ldo, float *lse, const float *q, int ldq, const float *k, int ldk,
                            const float *v, int ldv, int B, int Nq, int Nk, int NH, int hd);
// dq/dk/dv += (strides of q/k/v). delta: device scratch [B·NH·Nq].
void attention_backward_cuda(float *dq, float *dk, float *dv, const float *dout, const float *out, int ldo,
                             const float *lse, const float *q, int ldq, const float *k, int ldk, const float *v,
                             int ldv, int B, int Nq, int Nk, int NH, int hd, float *delta);
#ifdef __cplusplus
}
#endif
#endif
