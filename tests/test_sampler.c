// test_sampler.c — the sampler: pure function of (seed, index), rank sharding, k-farthest inputs,
// random vs equal timesteps, missing images, held-out subjects, targets apart from inputs.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sampler.h"
#include "test.h"

// 3 subjects: 8 cameras on a circle (45° apart) and 12 frames; subject 2 held out; some images missing
typedef struct {
    SamplerSubject s[3];
    double dir[8 * 3];
    uint8_t present[3][8 * 12];
} Cat;

static void make_cat(Cat *c) {
    for (int k = 0; k < 8; k++) {
        c->dir[3 * k] = cos(k * M_PI / 4), c->dir[3 * k + 1] = 0, c->dir[3 * k + 2] = sin(k * M_PI / 4);
    }
    for (int i = 0; i < 3; i++) {
        memset(c->present[i], 1, sizeof c->present[i]);
        c->s[i] = (SamplerSubject){8, 12, c->dir, c->present[i], i == 2};
    }
    c->present[0][3 * 12 + 5] = 0; // subject 0, camera 3, frame 5 missing
    c->present[1][6 * 12 + 0] = 0;
}

static int test_determinism_and_sharding(void) {
    Cat c;
    make_cat(&c);
    Sampler a, b;
    char err[256];
    CHECK(!sampler_init(&a, c.s, 3, 4, 3, 1, 42, err, sizeof err), "%s", err);
    CHECK(!sampler_init(&b, c.s, 3, 4, 3, 1, 42, err, sizeof err), "%s", err);
    Sample x, y;
    int differ = 0;
    for (uint64_t i = 0; i < 500; i++) {
        sampler_draw(&a, i, &x);
        sampler_draw(&b, i, &y); // a "resumed" sampler: same index, same sample
        CHECK(!memcmp(&x, &y, sizeof x), "index %llu differs between two samplers", (unsigned long long)i);
        sampler_draw(&a, i + 1, &y);
        differ += memcmp(&x, &y, sizeof x) != 0;
    }
    CHECK(differ > 450, "consecutive samples are too often equal (%d/500 differ)", differ);
    // ranks × micro-batch × steps cover every index exactly once
    uint8_t seen[60] = {0};
    for (int t = 0; t < 10; t++)
        for (int r = 0; r < 2; r++)
            for (int bb = 0; bb < 3; bb++) {
                uint64_t i = sampler_index(t, 2, r, 3, bb);
                CHECK(i < 60 && !seen[i], "index %llu repeated or out of range", (unsigned long long)i);
                seen[i] = 1;
            }
    // a different seed gives a different sequence
    Sampler z;
    CHECK(!sampler_init(&z, c.s, 3, 4, 3, 1, 43, err, sizeof err), "%s", err);
    int same = 0;
    for (uint64_t i = 0; i < 100; i++) {
        sampler_draw(&a, i, &x);
        sampler_draw(&z, i, &y);
        same += !memcmp(&x, &y, sizeof x);
    }
    CHECK(same < 10, "seeds 42 and 43 gave %d equal samples of 100", same);
    sampler_free(&a), sampler_free(&b), sampler_free(&z);
    return 0;
}

static int test_views(void) {
    Cat c;
    make_cat(&c);
    for (int rt = 0; rt < 2; rt++) {
        Sampler s;
        char err[256];
        CHECK(!sampler_init(&s, c.s, 3, 4, 3, rt, 7, err, sizeof err), "%s", err);
        int counts[2][12] = {{0}};
        for (uint64_t i = 0; i < 4000; i++) {
            Sample x;
            sampler_draw(&s, i, &x);
            const SamplerSubject *sj = &c.s[x.subject];
            CHECK(!sj->held_out, "held-out subject drawn");
            CHECK(x.n_input == 4 && x.n_target == 3, "views %d/%d", x.n_input, x.n_target);
            counts[x.subject][x.target_frame]++;
            // k-farthest on 8 directions 45° apart, k = 4: every pair at least 90° apart — when all 8 are
            // candidates (a missing image at the frame in play removes one, and 45° pairs become possible)
            int all8 = 1;
            for (int cam = 0; cam < 8; cam++) {
                int any = 0;
                if (rt)
                    for (int v = 0; v < 4; v++) any |= sj->present[cam * 12 + x.input_frame[v]];
                else any = sj->present[cam * 12 + x.target_frame];
                all8 &= any;
            }
            for (int u = 0; u < 4 && all8; u++)
                for (int v = u + 1; v < 4; v++) {
                    const double *p = c.dir + 3 * x.input_cam[u], *q = c.dir + 3 * x.input_cam[v];
                    double dot = p[0] * q[0] + p[1] * q[1] + p[2] * q[2];
                    CHECK(x.input_cam[u] != x.input_cam[v] && dot < 1e-9, "inputs %d and %d not spread (cos %.3f)",
                          x.input_cam[u], x.input_cam[v], dot);
                }
            for (int v = 0; v < 4; v++) {
                CHECK(sj->present[x.input_cam[v] * 12 + x.input_frame[v]], "input image missing");
                if (!rt) CHECK(x.input_frame[v] == x.target_frame, "equal timesteps expected");
                for (int t = 0; t < 3; t++) CHECK(x.target_cam[t] != x.input_cam[v], "target camera is an input");
            }
            for (int t = 0; t < 3; t++) CHECK(sj->present[x.target_cam[t] * 12 + x.target_frame], "target image missing");
        }
        // every (subject, frame) of the 2 training subjects drawn, roughly uniformly (mean 4000/24 ≈ 167)
        for (int i = 0; i < 2; i++)
            for (int f = 0; f < 12; f++) CHECK(counts[i][f] > 100 && counts[i][f] < 240, "pair (%d,%d) drawn %d times", i, f, counts[i][f]);
        sampler_free(&s);
    }
    return 0;
}

static int test_random_frames_distinct(void) {
    Cat c;
    make_cat(&c);
    memset(c.present, 1, sizeof c.present); // no missing images: frames must be pairwise distinct
    Sampler s;
    char err[256];
    CHECK(!sampler_init(&s, c.s, 3, 4, 3, 1, 9, err, sizeof err), "%s", err);
    for (uint64_t i = 0; i < 2000; i++) {
        Sample x;
        sampler_draw(&s, i, &x);
        for (int u = 0; u < 4; u++)
            for (int v = u + 1; v < 4; v++) CHECK(x.input_frame[u] != x.input_frame[v], "input frames repeat");
    }
    sampler_free(&s);
    // too few cameras for the requested views: a clear error
    CHECK(sampler_init(&s, c.s, 3, 9, 3, 1, 9, err, sizeof err) != 0 && strstr(err, "sampler"), "'%s'", err);
    return 0;
}

// A subject with more frames than any fixed table (real captures have ~5,000): every frame can be an input.
static int test_many_frames(void) {
    enum { NF = 6000 };
    static uint8_t present[4 * NF];
    double dir[12] = {1, 0, 0, 0, 0, 1, -1, 0, 0, 0, 0, -1};
    memset(present, 1, sizeof present);
    SamplerSubject sj = {4, NF, dir, present, 0};
    Sampler s;
    char err[256];
    CHECK(!sampler_init(&s, &sj, 1, 4, 2, 1, 3, err, sizeof err), "%s", err);
    int beyond = 0, lo = NF, hi = 0;
    for (uint64_t i = 0; i < 3000; i++) {
        Sample x;
        sampler_draw(&s, i, &x);
        for (int v = 0; v < 4; v++) {
            int f = x.input_frame[v];
            CHECK(f >= 0 && f < NF, "frame %d out of range", f);
            beyond += f >= 4096, lo = f < lo ? f : lo, hi = f > hi ? f : hi;
            for (int u = 0; u < v; u++) CHECK(x.input_frame[u] != f, "input frames repeat");
        }
    }
    printf("    input frames span [%d, %d] of %d; %d of 12000 beyond 4095\n", lo, hi, NF, beyond);
    CHECK(beyond > 12000 * 1900 / 6000 * 0.8, "frames past 4095 are (almost) never drawn: %d", beyond);
    sampler_free(&s);
    return 0;
}

const TestCase sampler_tests[] = {
    {"data/sampler_many_frames", test_many_frames},
    {"data/sampler_determinism_sharding", test_determinism_and_sharding},
    {"data/sampler_views_farthest_missing_heldout", test_views},
    {"data/sampler_random_frames_distinct", test_random_frames_distinct},
    {NULL, NULL},
};
