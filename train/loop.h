// loop.h — `avat3r train`: the training run around the step (train/step.h): configs, data streams,
// validation, logs, checkpoints, resume, signals (docs/training.md).
#ifndef AVAT3R_LOOP_H
#define AVAT3R_LOOP_H
#include <stddef.h>

#include "../data/data_config.h"
#include "dist.h"
#include "model_config.h"
#include "train_config.h"

typedef struct {
    const char *config;             // config file (may be NULL with resume when the run has a checkpoint)
    const char *const *sets;        // "key=value" overrides
    int nsets;
    const char *const *data;        // shard files or folders of *.h5
    int ndata;
    const char *out;                // run folder
    long steps;                     // > 0: overrides the config's `steps`
    int resume;                     // continue from the newest complete checkpoint in `out`
    DistFlags dist;                 // ranks from flags; world 0 = from the environment (docs/distributed.md)
    const char *device;             // "cpu" (NULL) or "cuda" (train/step_device.h)
} TrainRunOptions;

// Runs to the end, to a signal, or to a fatal condition. Returns the process exit status:
// 0 done or interrupted cleanly (checkpoint written), 1 bad input, 3 too many non-finite steps,
// 4 another rank failed, hung or disagreed (data-parallel runs; the message names the rank).
//
// With several ranks (train/dist.h, docs/distributed.md) every rank draws its own samples, the gradients
// are averaged across ranks after the accumulation and before clipping and AdamW (the same bits on every
// rank), and rank 0 alone validates, logs and writes the run folder. A world of 1 opens no socket and runs
// exactly as before.
//
// Test hooks (fault injection), read from the environment:
//   AVAT3R_FAULT_KILL_AT_STEP=N     SIGKILL itself right after step N's update, before its checkpoint
//   AVAT3R_FAULT_SIGTERM_AT_STEP=N  raise SIGTERM at the same point (the handler's path)
//   AVAT3R_FAULT_NAN_FROM_STEP=N    poison the gradients of every step from N on (1-based)
//   AVAT3R_FAULT_NAN_INPUT_FROM_STEP=N  an input pixel is NaN from step N on
//   AVAT3R_FAULT_INF_ACT_FROM_STEP=N    the network's output Gaussians (activations) get +Inf colours from N on
//   AVAT3R_FAULT_EXPLODE_FROM_STEP=N    the target images are scaled by 1e4 from N on (an exploding loss)
//   AVAT3R_FAULT_HANG_AT_STEP=N     SIGSTOP itself at the same point (a hung rank)
//   AVAT3R_FAULT_RANK=R             apply the hooks above on rank R only (default: every rank)
int train_run(const TrainRunOptions *o);

typedef struct { // the run state in a training checkpoint (docs/formats.md), counters as doubles (exact < 2^53)
    double step;          // completed optimizer steps
    double data_cursor;   // next micro-batch index of the training stream (= step · grad_accum)
    double skipped;       // bad steps (non-finite, loss spike) skipped so far
    double bad_in_row;    // ... of which in a row at the end
    double loss_mean;     // running mean of the good steps' losses (loss_spike), and how many went in
    double loss_n;
    double data_drawn;    // samples drawn by the loader(s), all ranks
    double data_skipped;  // ... of which skipped for damaged data
    double elapsed_s;     // training wall time so far
    double best_psnr;     // best validation PSNR so far (−1: none)
    double world;         // ranks of the run that wrote it (1 for checkpoints from before issue #8)
} RunState;

typedef struct { // everything a training checkpoint says about its run
    ModelConfig mc;
    TrainConfig tc;
    DataConfig dc;
    RunState st;
} RunConfig;

// Reads a training checkpoint: configs and run state into rc, the arrays into *params, *m, *v where those
// are not NULL (malloc'd). 0; −1 when the file does not load (message in err); −2 when its state text is
// invalid or inconsistent.
int run_checkpoint_read(const char *path, RunConfig *rc, float **params, float **m, float **v, char *err,
                        size_t errlen);

// --data entries: files as given, folders expanded to their *.h5 in name order (strdup'd into out).
// Returns the count, or −1 with a message naming the entry.
int expand_shards(const char *const *data, int ndata, char **out, int max, char *err, size_t errlen);

#endif
