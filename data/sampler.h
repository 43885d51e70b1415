// sampler.h — which images make one training sample (docs/data.md): a subject, a target frame,
// views_target target cameras at that frame, views_in input cameras chosen by k-farthest viewpoints,
// and input frames that are random and different from each other (random_timesteps) or the target frame.
// A sample is a pure function of (seed, global sample index), so ranks shard the sequence without
// talking to each other and a resumed run continues it from a single counter.
#ifndef AVAT3R_SAMPLER_H
#define AVAT3R_SAMPLER_H
#include <stddef.h>
#include <stdint.h>

#define SAMPLER_MAX_VIEWS 64

typedef struct {           // what the sampler needs to know of one capture
    int n_cams, n_frames;
    const double *cam_dir; // [n_cams, 3] unit direction from the head centre to each camera
    const uint8_t *present;// [n_cams, n_frames] 1 where the image exists (missing members are 0)
    int held_out;          // 1: never drawn for training
} SamplerSubject;

typedef struct {
    int subject, target_frame;            // indices into the catalog / the subject's frame list
    int n_target, n_input;
    int target_cam[SAMPLER_MAX_VIEWS];
    int input_cam[SAMPLER_MAX_VIEWS];
    int input_frame[SAMPLER_MAX_VIEWS];   // frame index per input view
} Sample;

typedef struct {
    uint64_t seed;
    int views_in, views_target, random_timesteps;
    int n_subjects;
    const SamplerSubject *subjects;
    // (subject, frame) pairs a target can use: a frame with at least views_target + 1 images
    int64_t n_pairs;
    int32_t *pair_subject, *pair_frame;
} Sampler;

// Builds the table of usable (subject, frame) pairs. Returns 0, or -1 with a message (no usable pair,
// bad view counts).
int sampler_init(Sampler *s, const SamplerSubject *subjects, int n_subjects, int views_in, int views_target,
                 int random_timesteps, uint64_t seed, char *err, size_t errlen);
void sampler_free(Sampler *s);
// Sample number `index` of the global sequence. Rank r of W, micro-batch B, step t uses indices
// (t·W + r)·B + b, b < B: see sampler_index().
void sampler_draw(const Sampler *s, uint64_t index, Sample *out);
// Draw `attempt` of sample `index`: attempt 0 is sampler_draw; later attempts are independent draws, used
// in place of a sample whose data turned out damaged (the same files give the same replacements).
void sampler_draw_attempt(const Sampler *s, uint64_t index, int attempt, Sample *out);
static inline uint64_t sampler_index(uint64_t step, int world, int rank, int micro_batch, int b) {
    return ((step * (uint64_t)world + (uint64_t)rank) * (uint64_t)micro_batch) + (uint64_t)b;
}

#endif
