// step_device.c — the CPU/GPU dispatch of the training step (see step_device.h). The GPU side is compiled
// only with -DAVAT3R_CUDA (meson, when nvcc is found or the emulator build is asked for).
#include "step_device.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "../common/util.h"

#ifdef AVAT3R_CUDA
#include <cuda_runtime_api.h>

#include "../model/cuda/cuda_check.h"
#include "../model/cuda/layers_cuda.h" // cuda_device_count
#include "../model/cuda/matmul_cuda.h"
#include "cuda/step_cuda.h"
#endif
#ifdef AVAT3R_NCCL
#include <nccl.h>

static void nccl_check(ncclResult_t r, const char *file, int line) {
    if (r != ncclSuccess) {
        fprintf(stderr, "FATAL %s:%d: NCCL error: %s\n  hint: NCCL_DEBUG=INFO shows why (network interfaces: "
                "NCCL_SOCKET_IFNAME; one GPU per rank)\n", file, line, ncclGetErrorString(r));
        exit(1);
    }
}
#define ncclCheck(x) nccl_check((x), __FILE__, __LINE__)

// The ranks' communicator and the all-reduce that overlaps the backward: as the backward finishes a gradient
// bucket (params.h grad_bucket_slices), the bucket's slices are averaged on `stream` while the default stream
// goes on with the next bucket's kernels.
typedef struct {
    ncclComm_t comm;
    cudaStream_t stream;        // non-blocking: waits for the default stream only at each bucket's event
    cudaEvent_t ready;          // recorded on the default stream when a bucket is final (each wait takes
                                // the latest record, so one event serves every bucket)
    cudaEvent_t done;           // on `stream`, after the step's last all-reduce
    const ModelConfig *mc;      // the buckets' layout (grad_bucket_slices)
    float *grads;               // the GPU's flat gradient buffer
    int armed;                  // reduce during the next backward (the last micro-batch of a step)
    int issued;                 // buckets queued since the last step_device_allreduce_grads
} NcclDP;

static void nccl_bucket_ready(void *ctx, int b) {
    NcclDP *n = (NcclDP *)ctx;
    if (!n->armed) return;
    size_t off[NUM_PARAM_TENSORS], cnt[NUM_PARAM_TENSORS];
    const int ns = grad_bucket_slices(n->mc, b, off, cnt);
    cudaCheck(cudaEventRecord(n->ready, 0));
    cudaCheck(cudaStreamWaitEvent(n->stream, n->ready, 0));
    ncclCheck(ncclGroupStart()); // one launch for the bucket's slices
    for (int k = 0; k < ns; k++)
        ncclCheck(ncclAllReduce(n->grads + off[k], n->grads + off[k], cnt[k], ncclFloat, ncclAvg, n->comm, n->stream));
    ncclCheck(ncclGroupEnd());
    n->issued++;
}
#endif

int step_device_check(const char *device, char *err, size_t errlen) {
    if (!strcmp(device, "cpu")) return 0;
    if (strcmp(device, "cuda")) {
        snprintf(err, errlen, "--device '%s': expected cpu or cuda", device);
        return -1;
    }
#ifdef AVAT3R_CUDA
    if (cuda_device_count() > 0) return 0;
    snprintf(err, errlen, "--device cuda: no CUDA device is visible (check nvidia-smi and CUDA_VISIBLE_DEVICES)");
#else
    snprintf(err, errlen, "--device cuda: this avat3r was built without CUDA (nvcc was not found at `meson "
                          "setup`; install the CUDA toolkit and set up with -Dcuda=enabled)");
#endif
    return -1;
}

int step_device_open(StepDevice *s, Trainer *t, const char *device, int local_rank, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    s->t = t;
    if (step_device_check(device, err, errlen)) return -1;
    if (!strcmp(device, "cpu")) {
        if (strcmp(t->tc.precision, "fp32"))
            LOG_W("precision = %s applies to --device cuda; the CPU computes in fp32", t->tc.precision);
        return 0;
    }
#ifdef AVAT3R_CUDA
    s->cuda = 1;
    cudaCheck(cudaSetDevice((local_rank > 0 ? local_rank : 0) % cuda_device_count()));
    TrainerCuda *g = (TrainerCuda *)mallocCheck(sizeof *g);
    trainer_cuda_build(g, &t->mc, &t->tc, t->have_lpips ? &t->lw : NULL);
    trainer_cuda_set_state(g, t->m.params, t->adam_m, t->adam_v);
    s->gpu = g;
    struct cudaDeviceProp p;
    int dev = 0;
    cudaCheck(cudaGetDevice(&dev));
    cudaCheck(cudaGetDeviceProperties(&p, dev));
    LOG_I("device: CUDA device %d (%s), matmuls in %s; the step runs there, checkpoints and validation read "
          "host copies", dev, p.name, t->tc.precision);
#endif
    return 0;
}

void step_device_close(StepDevice *s) {
#ifdef AVAT3R_NCCL
    if (s->nccl) {
        NcclDP *n = (NcclDP *)s->nccl;
        cudaCheck(cudaStreamSynchronize(n->stream));
        ncclCheck(ncclCommDestroy(n->comm));
        cudaCheck(cudaEventDestroy(n->ready));
        cudaCheck(cudaEventDestroy(n->done));
        cudaCheck(cudaStreamDestroy(n->stream));
        if (s->gpu) ((TrainerCuda *)s->gpu)->m.grads_ready = NULL;
        free(n);
    }
#endif
#ifdef AVAT3R_CUDA
    if (s->gpu) trainer_cuda_free((TrainerCuda *)s->gpu), free(s->gpu);
#endif
    memset(s, 0, sizeof *s);
}

void step_device_zero_grad(StepDevice *s) {
#ifdef AVAT3R_CUDA
    if (s->cuda) {
        trainer_cuda_zero_grad((TrainerCuda *)s->gpu);
        return;
    }
#endif
    trainer_zero_grad(s->t);
}

void step_device_stage(StepDevice *s, const TrainBatch *b) {
    if (s->have_staged) FATAL("step_device_stage: the staged micro-batch was not launched yet");
#ifdef AVAT3R_CUDA
    if (s->cuda) trainer_cuda_stage((TrainerCuda *)s->gpu, b);
#endif
    s->staged = *b, s->have_staged = 1;
}

void step_device_micro_launch(StepDevice *s, double grad_scale, int with_lpips) {
    if (!s->have_staged) FATAL("step_device_micro_launch: no staged micro-batch (step_device_stage)");
    if (s->launched) FATAL("step_device_micro_launch: the last micro-step was not finished");
    s->have_staged = 0, s->launched = 1;
#ifdef AVAT3R_CUDA
    if (s->cuda) {
        TrainerCuda *g = (TrainerCuda *)s->gpu;
        g->fault_inf_act = s->t->fault_inf_act; // the loop sets the hook on the CPU trainer
        trainer_cuda_micro_launch(g, grad_scale, with_lpips);
        return;
    }
#endif
    s->loss = trainer_micro_step(s->t, &s->staged, grad_scale, with_lpips);
}

LossTerms step_device_micro_finish(StepDevice *s) {
    if (!s->launched) FATAL("step_device_micro_finish: no micro-step was launched");
    s->launched = 0;
#ifdef AVAT3R_CUDA
    if (s->cuda) {
        TrainerCuda *g = (TrainerCuda *)s->gpu;
        s->loss = trainer_cuda_micro_finish(g);
        s->t->n_nonfinite_gauss = g->n_nonfinite_gauss;
    }
#endif
    return s->loss;
}

LossTerms step_device_micro_step(StepDevice *s, const TrainBatch *b, double grad_scale, int with_lpips) {
    step_device_stage(s, b);
    step_device_micro_launch(s, grad_scale, with_lpips);
    return step_device_micro_finish(s);
}

double step_device_update(StepDevice *s, long step, double *lr_out) {
#ifdef AVAT3R_CUDA
    if (s->cuda) return trainer_cuda_update((TrainerCuda *)s->gpu, step, lr_out);
#endif
    return trainer_update(s->t, step, lr_out);
}

void step_device_render(StepDevice *s, const TrainBatch *b) {
#ifdef AVAT3R_CUDA
    if (s->cuda) {
        TrainerCuda *g = (TrainerCuda *)s->gpu;
        trainer_cuda_render(g, b);
        size_t n = (size_t)g->B * g->Vt * g->H * g->W * 3;
        cudaCheck(cudaMemcpy(s->t->r.image, g->r.image, sizeof(float) * n, cudaMemcpyDeviceToHost));
        return;
    }
#endif
    trainer_render(s->t, b);
}

void step_device_pull(StepDevice *s, int grads) {
#ifdef AVAT3R_CUDA
    if (s->cuda) {
        TrainerCuda *g = (TrainerCuda *)s->gpu;
        trainer_cuda_get_state(g, s->t->m.params, s->t->adam_m, s->t->adam_v);
        if (grads) step_device_grads_to_host(s);
    }
#endif
    (void)s, (void)grads;
}

void step_device_grads_to_host(StepDevice *s) {
#ifdef AVAT3R_CUDA
    if (s->cuda) {
        TrainerCuda *g = (TrainerCuda *)s->gpu;
        cudaCheck(cudaMemcpy(s->t->m.grads, g->m.grads, sizeof(float) * g->m.n_params, cudaMemcpyDeviceToHost));
    }
#endif
    (void)s;
}

void step_device_grads_from_host(StepDevice *s) {
#ifdef AVAT3R_CUDA
    if (s->cuda) {
        TrainerCuda *g = (TrainerCuda *)s->gpu;
        cudaCheck(cudaMemcpy(g->m.grads, s->t->m.grads, sizeof(float) * g->m.n_params, cudaMemcpyHostToDevice));
    }
#endif
    (void)s;
}

void step_device_poison_grad(StepDevice *s) {
#ifdef AVAT3R_CUDA
    if (s->cuda) {
        const float nan = NAN;
        cudaCheck(cudaMemcpy(((TrainerCuda *)s->gpu)->m.grads, &nan, sizeof nan, cudaMemcpyHostToDevice));
        return;
    }
#endif
    s->t->m.grads[0] = NAN;
}

void step_device_times(StepDevice *s, double out[6], int reset) {
#ifdef AVAT3R_CUDA
    if (s->cuda) {
        TrainerCuda *g = (TrainerCuda *)s->gpu;
        double *f[7] = {&g->t_upload, &g->t_net_fwd, &g->t_render_fwd, &g->t_loss, &g->t_render_bwd, &g->t_net_bwd,
                        &g->t_opt};
        out[0] = *f[0] + *f[1];
        for (int k = 1; k < 6; k++) out[k] = *f[k + 1];
        if (reset)
            for (int k = 0; k < 7; k++) *f[k] = 0;
        return;
    }
#endif
    Trainer *t = s->t;
    double *f[6] = {&t->t_net_fwd, &t->t_render_fwd, &t->t_loss, &t->t_render_bwd, &t->t_net_bwd, &t->t_opt};
    for (int k = 0; k < 6; k++) {
        out[k] = *f[k];
        if (reset) *f[k] = 0;
    }
}

void step_device_timed(StepDevice *s, int on) {
#ifdef AVAT3R_CUDA
    if (s->cuda) ((TrainerCuda *)s->gpu)->timed = on;
#endif
    (void)s, (void)on;
}

int net_device_open(NetDevice *n, Avat3r *m, const char *device, char *err, size_t errlen) {
    memset(n, 0, sizeof *n);
    n->m = m;
    if (step_device_check(device, err, errlen)) return -1;
#ifdef AVAT3R_CUDA
    if (!strcmp(device, "cuda")) {
        n->cuda = 1;
        NetCuda *g = (NetCuda *)mallocCheck(sizeof *g);
        net_cuda_build(g, &m->cfg, m->B, m->params);
        n->gpu = g;
    }
#endif
    return 0;
}

void net_device_forward(NetDevice *n, const Avat3rBatch *in, int expr_only) {
#ifdef AVAT3R_CUDA
    if (n->cuda) {
        net_cuda_forward((NetCuda *)n->gpu, in, n->m->a.gauss, expr_only);
        return;
    }
#endif
    (void)expr_only; // the CPU reads the host buffers in place
    avat3r_forward(n->m, in);
}

void net_device_close(NetDevice *n) {
#ifdef AVAT3R_CUDA
    if (n->gpu) net_cuda_free((NetCuda *)n->gpu), free(n->gpu);
#endif
    memset(n, 0, sizeof *n);
}

double step_device_gemm_peak(StepDevice *s, int n, int reps) {
#ifdef AVAT3R_CUDA
    if (s->cuda) return matmul_cuda_peak_tflops(n, reps);
#endif
    (void)s, (void)n, (void)reps;
    return 0;
}

double step_device_mem_used(StepDevice *s) {
#ifdef AVAT3R_CUDA
    size_t free_b = 0, total_b = 0;
    if (s->cuda && cudaMemGetInfo(&free_b, &total_b) == cudaSuccess && total_b) return (double)(total_b - free_b);
#endif
    (void)s;
    return -1;
}

int step_device_nccl_init(StepDevice *s, Dist *d, char *err, size_t errlen) {
#ifdef AVAT3R_NCCL
    if (!s->cuda) return 0;
    ncclUniqueId id;
    _Static_assert(sizeof id == DIST_ID_BYTES, "an ncclUniqueId is the rendezvous' unique id size");
    if (d->rank == 0) ncclCheck(ncclGetUniqueId(&id));
    if (dist_broadcast_bytes(d, &id, sizeof id, "the NCCL id")) {
        snprintf(err, errlen, "%s", d->err);
        return -1;
    }
    TrainerCuda *g = (TrainerCuda *)s->gpu;
    NcclDP *n = (NcclDP *)callocCheck(1, sizeof *n);
    ncclCheck(ncclCommInitRank(&n->comm, d->world, id, d->rank));
    cudaCheck(cudaStreamCreateWithFlags(&n->stream, cudaStreamNonBlocking));
    cudaCheck(cudaEventCreateWithFlags(&n->ready, cudaEventDisableTiming));
    cudaCheck(cudaEventCreateWithFlags(&n->done, cudaEventDisableTiming));
    n->mc = &g->mc, n->grads = g->m.grads;
    g->m.grads_ready = nccl_bucket_ready, g->m.grads_ready_ctx = n;
    s->nccl = n;
    return 1;
#else
    (void)s, (void)d, (void)err, (void)errlen;
    return 0;
#endif
}

void step_device_reduce_in_backward(StepDevice *s, int on) {
#ifdef AVAT3R_NCCL
    if (s->nccl) ((NcclDP *)s->nccl)->armed = on;
#endif
    (void)s, (void)on;
}

void step_device_allreduce_grads(StepDevice *s) {
#ifdef AVAT3R_NCCL
    TrainerCuda *g = (TrainerCuda *)s->gpu;
    NcclDP *n = (NcclDP *)s->nccl;
    const int n_buckets = GRAD_BUCKETS(n->mc);
    if (n->issued == n_buckets) { // queued during the backward: the default stream waits for the last one
        cudaCheck(cudaEventRecord(n->done, n->stream));
        cudaCheck(cudaStreamWaitEvent(0, n->done, 0));
    } else if (n->issued == 0) { // not armed (e.g. a caller without step_device_reduce_in_backward): all at once
        ncclCheck(ncclAllReduce(g->m.grads, g->m.grads, g->m.n_params, ncclFloat, ncclAvg, n->comm, 0));
    } else {
        FATAL("step_device_allreduce_grads: %d of %d gradient buckets were reduced (armed for part of a backward?)",
              n->issued, n_buckets);
    }
    n->issued = 0;
#else
    (void)s;
    FATAL("step_device_allreduce_grads: this build has no NCCL");
#endif
}
