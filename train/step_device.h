// step_device.h — where the training step runs (`avat3r train --device cpu|cuda`): on the CPU
// (train/step.c), or on one GPU (train/cuda/step_cuda.cu, builds with CUDA). The run (train/loop.c) calls
// these in place of trainer_*. With cuda the caller's CPU Trainer stays the host side of the run: it holds
// the parameters and AdamW moments that checkpoints, logs and resume read and write (pulled from the GPU
// at those points only), and its validation code reads the GPU's renders from t->r.image.
#ifndef AVAT3R_STEP_DEVICE_H
#define AVAT3R_STEP_DEVICE_H
#include <stddef.h>

#include "dist.h"
#include "step.h"

typedef struct {
    Trainer *t;  // the CPU trainer (built and freed by the caller)
    int cuda;    // 1: the step runs on the GPU
    void *gpu;   // TrainerCuda (builds with CUDA only)
    void *nccl;  // the ranks' NCCL state (step_device_nccl_init; builds with NCCL only)
    // the CPU's staged micro-batch and the loss terms of its launched micro-step (the CPU runs a micro-step
    // inside step_device_micro_launch; the GPU queues it there)
    TrainBatch staged;
    int have_staged, launched;
    LossTerms loss;
} StepDevice;

// "cpu" or "cuda": 0 when this build and machine can run it, else −1 with the reason in err.
int step_device_check(const char *device, char *err, size_t errlen);
// Attaches to a built CPU trainer whose parameters and moments are set (initialised or resumed); with
// cuda, selects GPU local_rank mod the visible count (one process per GPU of a node), builds the GPU
// trainer and copies them to it. 0, or −1 with the reason in err.
int step_device_open(StepDevice *s, Trainer *t, const char *device, int local_rank, char *err, size_t errlen);
void step_device_close(StepDevice *s);
void step_device_zero_grad(StepDevice *s);
// As trainer_micro_step (the same loss terms on either device); sets t->n_nonfinite_gauss.
// = step_device_stage + step_device_micro_launch + step_device_micro_finish.
LossTerms step_device_micro_step(StepDevice *s, const TrainBatch *b, double grad_scale, int with_lpips);
// The same in three parts, so that the next micro-batch can be fetched and staged between launch and finish
// while the GPU works (train/loop.c does this with --device cuda):
// stage: hands b over (GPU: copied to page-locked memory on return, its upload runs asynchronously; CPU:
//   b's buffers are read at launch, so they must stay valid until then). One staged micro-batch at a time.
// launch: the micro-step on the staged batch (GPU: queued; CPU: run). t->fault_inf_act is read here.
// finish: its loss terms, once the device is done; sets t->n_nonfinite_gauss.
void step_device_stage(StepDevice *s, const TrainBatch *b);
void step_device_micro_launch(StepDevice *s, double grad_scale, int with_lpips);
LossTerms step_device_micro_finish(StepDevice *s);
double step_device_update(StepDevice *s, long step, double *lr_out); // as trainer_update
void step_device_render(StepDevice *s, const TrainBatch *b);          // as trainer_render: t->r.image (host)
// The GPU's parameters and moments (and, with grads, the parameter gradients) into t. No-op on the CPU.
void step_device_pull(StepDevice *s, int grads);
void step_device_poison_grad(StepDevice *s); // fault-injection hook: parameter gradient 0 becomes NaN
// Data parallelism through the host (train/dist.c's all-reduce): the GPU's parameter gradients into
// t->m.grads, and back after the all-reduce. No-ops on the CPU.
void step_device_grads_to_host(StepDevice *s);
void step_device_grads_from_host(StepDevice *s);
// Data parallelism on the GPUs (issue #8): an NCCL communicator over the run's ranks, bootstrapped through
// train/dist.c (rank 0's ncclUniqueId broadcast over the TCP rendezvous; a world of 1 needs no rendezvous).
// Returns 1 when the gradients will go through NCCL, 0 when this build has no NCCL or the step runs on the
// CPU (the caller then uses the host all-reduce), −1 with the reason in err.
int step_device_nccl_init(StepDevice *s, Dist *d, char *err, size_t errlen);
// grads ← their mean over the ranks, on the device (ncclAllReduce with ncclAvg: every rank gets the same
// bits). FATAL on an NCCL error. Call after a TCP collective of the same step, so that a dead or hung rank
// is found by train/dist.c's timeouts before the host waits on NCCL.
// With step_device_reduce_in_backward(s, 1) set around the launch of a step's last micro-batch, the
// all-reduce runs bucket by bucket (params.h grad_bucket_slices) on its own stream while that backward
// goes on, and step_device_allreduce_grads only makes the default stream wait for it; without, it reduces
// the whole buffer at once. No-op without NCCL.
void step_device_reduce_in_backward(StepDevice *s, int on);
void step_device_allreduce_grads(StepDevice *s);
// Seconds per phase since the last reset (network forward incl. the upload, render forward, losses, render
// backward, network backward, clip + AdamW), as Trainer's t_* fields. On the GPU the phases are timed
// only after step_device_timed(s, 1), which synchronises the device at every phase end (a benchmark's
// breakdown pass; a plain run never waits for it).
void step_device_times(StepDevice *s, double out[6], int reset);
void step_device_timed(StepDevice *s, int on);
// Benchmarks: the GPU's n×n×n matmul rate in the run's precision (TFLOP/s; 0 on the CPU), and the device
// memory in use (bytes, cudaMemGetInfo: total − free, the CUDA context included; −1 on the CPU or when the
// device does not say).
double step_device_gemm_peak(StepDevice *s, int n, int reps);
double step_device_mem_used(StepDevice *s);

// The network alone on either device, for inference (avat3r animate): m is the CPU model with its
// parameters set; with cuda a GPU copy (train/cuda/step_cuda.h NetCuda, batch m->B) runs the forward and
// the Gaussians are copied into m->a.gauss, so the caller reads them where the CPU forward leaves them.
typedef struct {
    Avat3r *m;
    int cuda;
    void *gpu;
} NetDevice;
int net_device_open(NetDevice *n, Avat3r *m, const char *device, char *err, size_t errlen);
// expr_only: the views are those of the last call, only in->expr changed (the GPU uploads just the code)
void net_device_forward(NetDevice *n, const Avat3rBatch *in, int expr_only);
void net_device_close(NetDevice *n);

#endif
