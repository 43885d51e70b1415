// loader.h — training batches from shards (docs/data.md "Loader"): the sampler picks the images, prefetch
// threads decode them (JPEG, zstd) into a ring of batches ahead of the training step. A batch's content
// depends only on (seed, world, rank, micro-batch, step), never on thread timing.
//
// Cameras come out in the head frame of their own frame (w2c · head pose), metres: the head sits at the
// same place in every view, whatever it did between the input frames and the target frame.
#ifndef AVAT3R_LOADER_H
#define AVAT3R_LOADER_H
#include <pthread.h>
#include <stdint.h>

#include "sampler.h"
#include "shard.h"

typedef struct {
    int views_in, views_target, random_timesteps;
    int use_dust3r, use_sapiens;     // load the aux maps (the shards must have them)
    int micro_batch;                 // B
    int world, rank;                 // data-parallel sharding of the sample sequence
    uint64_t seed;
    const char *const *held_out;     // capture names or subject ids never drawn (NULL-terminated, or NULL)
    int threads;                     // prefetch workers (≥ 1)
    int depth;                       // batches in the ring (≥ threads + 1; one is the batch in use)
    int only_held_out;               // invert held_out: draw only those captures (validation)
    double max_skip_rate;            // shards that cannot be opened are skipped while they are at most this
                                     // fraction of all (0: any such shard fails loader_open)
} LoaderOptions;

// A sample whose images, masks, part labels or maps cannot be read (CRC mismatch, undecodable JPEG or zstd,
// non-finite aux map) is
// skipped and redrawn (draw attempt 1, 2, ... of the same index: deterministic); after LOADER_MAX_DRAWS
// damaged draws in a row the batch fails.
#define LOADER_MAX_DRAWS 16
#define LOADER_SKIP_NOTES 4 // skipped samples described per batch (the rest only counted)

typedef struct {
    uint64_t step;
    Sample sample[64];  // [B]
    // model inputs (docs/model.md): float, channel-last
    float *rgb;         // [B, V, H, W, 3] in [0,1]
    float *pos, *conf;  // [B, V, H, W, 3], [B, V, H, W] (use_dust3r)
    float *sap;         // [B, V, sh, sw, CS] (use_sapiens)
    float *w2c;         // [B, V, 3, 4]
    float *K;           // [B, V, 3, 3]
    float *expr;        // [B, E] target frame's code
    // supervision
    float *tgt_rgb;     // [B, Vt, H, W, 3]
    float *tgt_mask;    // [B, Vt, H, W] (1 where the shard has no mask)
    float *tgt_mouth;   // [B, Vt, H, W] 1 inside the target's mouth region (from its part labels), else 0;
                        // all 0 for a target without labels (loader_mouth_region)
    float *tgt_w2c;     // [B, Vt, 3, 4]
    float *tgt_K;       // [B, Vt, 3, 3]
    int ready;          // filled for `step`
    int failed;
    char err[1024];
    int drawn, skipped; // samples drawn for this batch, and those skipped (damaged data); drawn = B + skipped
    char skip_note[LOADER_SKIP_NOTES][1024]; // the first skipped ones: file, frame, camera and what is wrong
} Batch;

typedef struct {
    LoaderOptions o;
    int n_shards, W, H, E, sh, sw, sc; // n_shards: those opened
    int n_unreadable;      // shards skipped because they could not be opened (max_skip_rate)
    char unreadable[1024]; // the first one's error
    Shard *shards;
    SamplerSubject *subj;
    double *dirs;          // [n_shards, C_max, 3]
    uint8_t *present;      // per shard [C, F]
    Sampler sampler;
    Batch *ring;           // [depth]
    pthread_t *workers;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t next_fill;    // next step a worker will claim
    uint64_t next_take;    // next step the consumer will take
    int stop;
    int64_t n_decoded;     // images decoded (statistics)
} Loader;

// Opens the shards, builds the sampler, starts the workers at `first_step` (the step to resume from).
// A shard that cannot be opened (truncated, corrupt metadata) is skipped and counted (n_unreadable) while
// such shards are at most max_skip_rate of all. Returns 0, or -1 with a message naming the shard and what
// is wrong.
int loader_open(Loader *L, const char *const *shard_paths, int n_shards, const LoaderOptions *o, uint64_t first_step,
                char *err, size_t errlen);
// The batch of the next step (first_step, first_step + 1, ...); blocks until it is decoded. Valid until
// the next call. NULL with a message in err when a worker failed.
const Batch *loader_next(Loader *L, char *err, size_t errlen);
void loader_close(Loader *L);
// Camera c of shard s at frame f as the loader hands it out: world-to-camera in that frame's head frame,
// [3, 4] metres.
void loader_head_frame_camera(const Shard *s, int f, int c, float *out);
// The mouth region of a W×H part-label image (ava256 classes, docs/data.md "Loader"): out[W·H] = 1 inside the
// bounding box of the classes 6..10 (lips, teeth, tongue) grown on each side, else 0. Returns 1, or 0 (out all
// 0) when no pixel has those classes. A box rather than the labels: an open mouth's cavity is labelled Body.
int loader_mouth_region(const uint8_t *labels, int W, int H, float *out);

#endif
