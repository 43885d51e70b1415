// sampler.c — deterministic sample selection (see sampler.h).
#include "sampler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rng.h"
#include "../common/util.h"

#define SAMPLER_STREAM 0x5a4d504cull // "SMPL": keeps sampler draws apart from other users of the seed

int sampler_init(Sampler *s, const SamplerSubject *subj, int n_subjects, int views_in, int views_target,
                 int random_timesteps, uint64_t seed, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    if (views_in < 1 || views_target < 1 || views_in > SAMPLER_MAX_VIEWS || views_target > SAMPLER_MAX_VIEWS) {
        snprintf(err, errlen, "sampler: views_in %d and views_target %d must be 1..%d", views_in, views_target,
                 SAMPLER_MAX_VIEWS);
        return -1;
    }
    s->seed = seed, s->views_in = views_in, s->views_target = views_target;
    s->random_timesteps = random_timesteps, s->subjects = subj, s->n_subjects = n_subjects;
    int64_t n = 0;
    for (int k = 0; k < 2; k++) { // count, then fill
        n = 0;
        for (int i = 0; i < n_subjects; i++) {
            if (subj[i].held_out) continue;
            for (int f = 0; f < subj[i].n_frames; f++) {
                int have = 0;
                for (int c = 0; c < subj[i].n_cams; c++) have += subj[i].present[(size_t)c * subj[i].n_frames + f];
                // a target frame needs its targets, and its inputs too when timesteps are not random
                int need = random_timesteps ? views_target : (views_in > views_target ? views_in : views_target);
                if (have < need || subj[i].n_cams < views_in) continue;
                if (random_timesteps && subj[i].n_frames < views_in) continue;
                if (k) s->pair_subject[n] = i, s->pair_frame[n] = f;
                n++;
            }
        }
        if (!k) {
            if (n == 0) {
                snprintf(err, errlen, "sampler: no (subject, frame) has %d target images and %d input cameras "
                                      "(%d subjects, held-out ones excluded)", views_target, views_in, n_subjects);
                return -1;
            }
            s->pair_subject = (int32_t *)mallocCheck(sizeof(int32_t) * n);
            s->pair_frame = (int32_t *)mallocCheck(sizeof(int32_t) * n);
        }
    }
    s->n_pairs = n;
    return 0;
}

void sampler_free(Sampler *s) {
    free(s->pair_subject);
    free(s->pair_frame);
    memset(s, 0, sizeof *s);
}

// Picks k distinct cameras by farthest-point sampling on their viewing directions: a random first one,
// then each time the camera whose smallest distance to those already chosen is largest (ties: lowest id).
// `ok` marks the cameras that may be chosen; `taken` those excluded. Returns how many were chosen.
static int k_farthest(const SamplerSubject *sj, const uint8_t *ok, const uint8_t *taken, int k, Rng *r, int *out) {
    int n = sj->n_cams, cand = 0;
    for (int c = 0; c < n; c++) cand += ok[c] && !taken[c];
    if (cand == 0) return 0;
    int first = (int)rng_next_below(r, (uint32_t)cand), chosen = 0;
    for (int c = 0; c < n; c++)
        if (ok[c] && !taken[c] && first-- == 0) {
            out[chosen++] = c;
            break;
        }
    while (chosen < k) {
        int best = -1;
        double best_d = -1;
        for (int c = 0; c < n; c++) {
            if (!ok[c] || taken[c]) continue;
            double dmin = 1e30;
            for (int j = 0; j < chosen; j++) {
                if (out[j] == c) { dmin = -1; break; }
                const double *a = sj->cam_dir + 3 * c, *b = sj->cam_dir + 3 * out[j];
                double d = (a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1]) + (a[2] - b[2]) * (a[2] - b[2]);
                dmin = d < dmin ? d : dmin;
            }
            if (dmin > best_d) best_d = dmin, best = c;
        }
        if (best < 0) break;
        out[chosen++] = best;
    }
    return chosen;
}

// k distinct uniform draws from the cameras marked in ok (partial Fisher-Yates over the candidates).
static int pick_uniform(const uint8_t *ok, int n, int k, Rng *r, int *out) {
    int cand[1024], m = 0;
    for (int c = 0; c < n && m < 1024; c++)
        if (ok[c]) cand[m++] = c;
    if (k > m) k = m;
    for (int i = 0; i < k; i++) {
        int j = i + (int)rng_next_below(r, (uint32_t)(m - i));
        int t = cand[i];
        cand[i] = cand[j], cand[j] = t;
        out[i] = cand[i];
    }
    return k;
}

void sampler_draw(const Sampler *s, uint64_t index, Sample *o) { sampler_draw_attempt(s, index, 0, o); }

void sampler_draw_attempt(const Sampler *s, uint64_t index, int attempt, Sample *o) {
    memset(o, 0, sizeof *o);
    // one Philox stream per sample: key (seed, stream), counter starts at index·2^20; a redraw keys
    // another stream (the attempt in the stream's high 32 bits)
    Rng r = rng_make(s->seed, SAMPLER_STREAM | (uint64_t)(uint32_t)attempt << 32);
    r.counter = index << 20;
    int64_t p = (int64_t)(((uint64_t)rng_next_u32(&r) << 32 | rng_next_u32(&r)) % (uint64_t)s->n_pairs);
    int si = s->pair_subject[p], tf = s->pair_frame[p];
    const SamplerSubject *sj = &s->subjects[si];
    int n = sj->n_cams, F = sj->n_frames;
    o->subject = si, o->target_frame = tf;
    uint8_t ok[1024] = {0}, none[1024] = {0}, taken[1024] = {0};
    if (n > 1024) FATAL("sampler: %d cameras (at most 1024)", n);
    // input frames: distinct random frames, or the target frame
    if (s->random_timesteps) {
        // distinct uniform frames by rejection: views_in ≤ 64 draws from F ≥ views_in frames (sampler_init
        // guarantees it), with no table sized by F — real captures have ~5,000 frames
        for (int v = 0; v < s->views_in; v++) {
            int f, dup;
            do {
                f = (int)rng_next_below(&r, (uint32_t)F);
                dup = 0;
                for (int u = 0; u < v; u++) dup |= o->input_frame[u] == f;
            } while (dup);
            o->input_frame[v] = f;
        }
    } else {
        for (int v = 0; v < s->views_in; v++) o->input_frame[v] = tf;
    }
    // input cameras: k-farthest among the cameras with an image at one of the input frames (at the
    // target frame when timesteps are equal)
    for (int c = 0; c < n; c++) {
        if (s->random_timesteps) {
            int any = 0;
            for (int v = 0; v < s->views_in; v++) any |= sj->present[(size_t)c * F + o->input_frame[v]];
            ok[c] = (uint8_t)any;
        } else {
            ok[c] = sj->present[(size_t)c * F + tf];
        }
    }
    o->n_input = k_farthest(sj, ok, none, s->views_in, &r, o->input_cam);
    // an input camera without an image at its own frame takes the nearest frame (in list order) that has one
    for (int v = 0; v < o->n_input; v++) {
        int c = o->input_cam[v], f = o->input_frame[v];
        for (int d = 0; d < F && !sj->present[(size_t)c * F + f]; d++) {
            int a = o->input_frame[v] + d + 1, b = o->input_frame[v] - d - 1;
            if (a < F && sj->present[(size_t)c * F + a]) f = a;
            else if (b >= 0 && sj->present[(size_t)c * F + b]) f = b;
        }
        o->input_frame[v] = f;
        taken[c] = 1;
    }
    // targets: present at the target frame, not used as an input camera when there are enough cameras
    int avail = 0;
    for (int c = 0; c < n; c++) ok[c] = sj->present[(size_t)c * F + tf], avail += ok[c] && !taken[c];
    if (avail >= s->views_target)
        for (int c = 0; c < n; c++) ok[c] = ok[c] && !taken[c];
    o->n_target = pick_uniform(ok, n, s->views_target, &r, o->target_cam);
}
