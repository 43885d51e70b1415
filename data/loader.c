// loader.c — prefetching batch loader (see loader.h). Each worker claims the next step, waits for its
// ring slot to be free, fills the whole batch (sampler -> shard decodes -> floats), and marks it ready.
#include "loader.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "data_config.h"

static void batch_alloc(Batch *b, const Loader *L) {
    size_t B = L->o.micro_batch, V = L->o.views_in, Vt = L->o.views_target, HW = (size_t)L->W * L->H;
    b->rgb = (float *)callocCheck(B * V * HW * 3, 4);
    b->pos = L->o.use_dust3r ? (float *)callocCheck(B * V * HW * 3, 4) : NULL;
    b->conf = L->o.use_dust3r ? (float *)callocCheck(B * V * HW, 4) : NULL;
    b->sap = L->o.use_sapiens ? (float *)callocCheck(B * V * (size_t)L->sh * L->sw * L->sc, 4) : NULL;
    b->w2c = (float *)callocCheck(B * V * 12, 4);
    b->K = (float *)callocCheck(B * V * 9, 4);
    b->expr = (float *)callocCheck(B * (L->E ? L->E : 1), 4);
    b->tgt_rgb = (float *)callocCheck(B * Vt * HW * 3, 4);
    b->tgt_mask = (float *)callocCheck(B * Vt * HW, 4);
    b->tgt_mouth = (float *)callocCheck(B * Vt * HW, 4);
    b->tgt_w2c = (float *)callocCheck(B * Vt * 12, 4);
    b->tgt_K = (float *)callocCheck(B * Vt * 9, 4);
}

static void batch_free(Batch *b) {
    free(b->rgb), free(b->pos), free(b->conf), free(b->sap), free(b->w2c), free(b->K), free(b->expr);
    free(b->tgt_rgb), free(b->tgt_mask), free(b->tgt_mouth), free(b->tgt_w2c), free(b->tgt_K);
}

// camera c of shard s at frame f, in the head frame of that frame: [R|t] · [Rh|th] = [R·Rh | R·th + t]
void loader_head_frame_camera(const Shard *s, int f, int c, float *out) {
    const double *R = s->m.w2c + 12 * c, *H = s->m.head_pose + 12 * f;
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 3; j++)
            out[i * 4 + j] = (float)(R[i * 4] * H[j] + R[i * 4 + 1] * H[4 + j] + R[i * 4 + 2] * H[8 + j]);
        out[i * 4 + 3] = (float)(R[i * 4] * H[3] + R[i * 4 + 1] * H[7] + R[i * 4 + 2] * H[11] + R[i * 4 + 3]);
    }
}

// Box of the mouth classes (6 UpperLip .. 10 TongueVisible) over pixel indices x0..x1, y0..y1, its size in
// pixels w = x1 − x0 + 1, h = y1 − y0 + 1, margins mx = 0.3·w + 1, my = 0.3·h + 1. Pixel (x, y) is inside when
// floor(x0 − mx) ≤ x ≤ ceil(x1 + mx) and floor(y0 − my) ≤ y ≤ ceil(y1 + my), clamped to the image; in integers
// x0 − 1 − ⌈3w/10⌉ ≤ x ≤ x1 + 1 + ⌈3w/10⌉ (exact: no rounding of 0.3·w decides a pixel).
int loader_mouth_region(const uint8_t *labels, int W, int H, float *out) {
    int x0 = W, x1 = -1, y0 = H, y1 = -1;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t k = labels[(size_t)y * W + x];
            if (k >= 6 && k <= 10) {
                if (x < x0) x0 = x;
                if (x > x1) x1 = x;
                if (y < y0) y0 = y;
                if (y > y1) y1 = y;
            }
        }
    memset(out, 0, sizeof(float) * (size_t)W * H);
    if (x1 < 0) return 0;
    int gx = (3 * (x1 - x0 + 1) + 9) / 10 + 1, gy = (3 * (y1 - y0 + 1) + 9) / 10 + 1; // ⌈0.3·size⌉ + 1
    int lx = x0 - gx > 0 ? x0 - gx : 0, hx = x1 + gx < W - 1 ? x1 + gx : W - 1;
    int ly = y0 - gy > 0 ? y0 - gy : 0, hy = y1 + gy < H - 1 ? y1 + gy : H - 1;
    for (int y = ly; y <= hy; y++)
        for (int x = lx; x <= hx; x++) out[(size_t)y * W + x] = 1.0f;
    return 1;
}

static int frame_usable(const Shard *s, int f) {
    for (int k = 0; k < 12; k++)
        if (!isfinite(s->m.head_pose[12 * f + k])) return 0;
    for (int k = 0; k < s->m.expr_dim; k++)
        if (!isfinite(s->m.expr[(size_t)f * s->m.expr_dim + k])) return 0;
    return 1;
}

// -1 with a message naming the map, file, frame, camera and element when a decoded map holds a NaN or
// an infinity (the CRC only proves the bytes are those that were written).
static int first_nonfinite(const float *x, size_t n, const Shard *s, const char *what, int f, int c, char *err,
                           size_t errlen) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return error_set(err, errlen, "%.900s: %s map of frame %d camera %d holds %g at element %zu", s->path, what,
                             f, c, x[i], i);
    return 0;
}

// Decodes one view: image (and mask or aux maps) into the batch. Returns 0, -1 with err set when the
// data is damaged (the sample is skipped), or -2 for what is not the data's fault (the batch fails).
static int load_view(Loader *L, Batch *b, int bi, int is_target, int v, int si, int f, int c, uint8_t *u8,
                     float *aux) {
    Shard *s = &L->shards[si];
    size_t HW = (size_t)L->W * L->H;
    int nv = is_target ? L->o.views_target : L->o.views_in;
    size_t slot = (size_t)bi * nv + v;
    int r = shard_get_image(s, f, c, u8, b->err, sizeof b->err);
    if (r) {
        if (r == 1) {
            snprintf(b->err, sizeof b->err, "%.900s: no image for frame %d camera %d (sampler bug)", s->path, f, c);
            return -2;
        }
        return -1;
    }
    float *dst = (is_target ? b->tgt_rgb : b->rgb) + slot * HW * 3;
    for (size_t i = 0; i < HW * 3; i++) dst[i] = u8[i] * (1.0f / 255.0f);
    const double *K = s->m.K + ((size_t)f * s->m.n_cams + c) * 9;
    float *Kd = (is_target ? b->tgt_K : b->K) + slot * 9;
    for (int k = 0; k < 9; k++) Kd[k] = (float)K[k];
    loader_head_frame_camera(s, f, c, (is_target ? b->tgt_w2c : b->w2c) + slot * 12);
    if (is_target) {
        float *m = b->tgt_mask + slot * HW;
        r = shard_get_mask(s, f, c, u8, b->err, sizeof b->err);
        if (r < 0) return -1;
        for (size_t i = 0; i < HW; i++) m[i] = r == 1 ? 1.0f : u8[i] * (1.0f / 255.0f);
        // mouth region from the part labels; damaged labels skip the sample like a damaged mask
        float *mo = b->tgt_mouth + slot * HW;
        r = shard_get_parts(s, f, c, u8, b->err, sizeof b->err);
        if (r < 0) return -1;
        if (r == 1) memset(mo, 0, sizeof(float) * HW); // the slot is reused: clear what an earlier batch left
        else loader_mouth_region(u8, L->W, L->H, mo);
    } else {
        if (L->o.use_dust3r) {
            if (shard_get_aux(s, SHARD_DUST3R, f, c, aux, b->err, sizeof b->err)) return -1;
            if (first_nonfinite(aux, HW * 4, s, "DUSt3R", f, c, b->err, sizeof b->err)) return -1;
            for (size_t i = 0; i < HW; i++) {
                for (int k = 0; k < 3; k++) b->pos[(slot * HW + i) * 3 + k] = aux[i * 4 + k];
                b->conf[slot * HW + i] = aux[i * 4 + 3];
            }
        }
        if (L->o.use_sapiens) {
            size_t n = (size_t)L->sh * L->sw * L->sc;
            if (shard_get_aux(s, SHARD_SAPIENS, f, c, b->sap + slot * n, b->err, sizeof b->err)) return -1;
            if (first_nonfinite(b->sap + slot * n, n, s, "Sapiens", f, c, b->err, sizeof b->err)) return -1;
        }
    }
    __atomic_add_fetch(&L->n_decoded, 1, __ATOMIC_RELAXED);
    return 0;
}

static void fill_batch(Loader *L, Batch *b, uint64_t step, uint8_t *u8, float *aux) {
    b->failed = 0, b->err[0] = 0, b->step = step, b->drawn = 0, b->skipped = 0;
    for (int bi = 0; bi < L->o.micro_batch && !b->failed; bi++) {
        Sample *sm = &b->sample[bi];
        const uint64_t index = sampler_index(step, L->o.world, L->o.rank, L->o.micro_batch, bi);
        for (int attempt = 0;; attempt++) {
            sampler_draw_attempt(&L->sampler, index, attempt, sm);
            const Shard *s = &L->shards[sm->subject];
            if (L->E) memcpy(b->expr + (size_t)bi * L->E, s->m.expr + (size_t)sm->target_frame * L->E, 4 * (size_t)L->E);
            int bad = 0;
            for (int v = 0; v < sm->n_input && !bad; v++)
                bad = load_view(L, b, bi, 0, v, sm->subject, sm->input_frame[v], sm->input_cam[v], u8, aux);
            for (int t = 0; t < sm->n_target && !bad; t++)
                bad = load_view(L, b, bi, 1, t, sm->subject, sm->target_frame, sm->target_cam[t], u8, aux);
            b->drawn++;
            if (!bad) break;
            if (bad == -2) {
                b->failed = 1;
                break;
            }
            // damaged data: skip this draw, note it, and draw again (deterministically: attempt + 1)
            if (b->skipped < LOADER_SKIP_NOTES)
                snprintf(b->skip_note[b->skipped], sizeof b->skip_note[0], "sample %llu draw %d: %.980s",
                         (unsigned long long)index, attempt, b->err);
            b->skipped++;
            if (attempt + 1 == LOADER_MAX_DRAWS) {
                char last[1024];
                snprintf(last, sizeof last, "%s", b->err);
                snprintf(b->err, sizeof b->err, "sample %llu: %d draws in a row hit damaged data; the last: %.900s",
                         (unsigned long long)index, LOADER_MAX_DRAWS, last);
                b->failed = 1;
                break;
            }
        }
    }
    if (!b->failed) b->err[0] = 0;
}

static void *worker(void *arg) {
    Loader *L = (Loader *)arg;
    uint8_t *u8 = (uint8_t *)mallocCheck((size_t)L->W * L->H * 3);
    float *aux = (float *)mallocCheck(4 * (size_t)L->W * L->H * 4);
    for (;;) {
        pthread_mutex_lock(&L->mu);
        // the slot of the next step is free once the consumer is past step − depth + 1: the batch it took
        // last (next_take − 1) stays untouched until its next call. Re-read next_fill after every wait:
        // another worker may have claimed it meanwhile.
        while (!L->stop && L->next_fill + 1 >= L->next_take + (uint64_t)L->o.depth) pthread_cond_wait(&L->cv, &L->mu);
        uint64_t step = L->next_fill;
        if (L->stop) {
            pthread_mutex_unlock(&L->mu);
            break;
        }
        L->next_fill++;
        Batch *b = &L->ring[step % L->o.depth];
        b->ready = 0;
        pthread_mutex_unlock(&L->mu);
        fill_batch(L, b, step, u8, aux);
        pthread_mutex_lock(&L->mu);
        b->ready = 1;
        pthread_cond_broadcast(&L->cv);
        pthread_mutex_unlock(&L->mu);
    }
    free(u8), free(aux);
    shard_thread_release();
    return NULL;
}

int loader_open(Loader *L, const char *const *paths, int n, const LoaderOptions *o, uint64_t first_step, char *err,
                size_t errlen) {
    memset(L, 0, sizeof *L);
    L->o = *o;
    if (n < 1 || o->micro_batch < 1 || o->micro_batch > 64 || o->threads < 1 || o->depth < o->threads + 1 ||
        o->world < 1 || o->rank < 0 || o->rank >= o->world) {
        snprintf(err, errlen, "loader: bad options (shards %d, micro_batch %d, threads %d, depth %d, rank %d/%d)", n,
                 o->micro_batch, o->threads, o->depth, o->rank, o->world);
        return -1;
    }
    L->shards = (Shard *)callocCheck(n, sizeof(Shard));
    L->subj = (SamplerSubject *)callocCheck(n, sizeof(SamplerSubject));
    int opened = 0;
    for (int k = 0; k < n; k++) {
        Shard *s = &L->shards[opened];
        char why[1024];
        if (shard_open(s, paths[k], why, sizeof why)) {
            // a damaged shard is skipped while such shards stay within max_skip_rate of all
            if (L->n_unreadable == 0) snprintf(L->unreadable, sizeof L->unreadable, "%s", why);
            L->n_unreadable++;
            if (L->n_unreadable > o->max_skip_rate * n) {
                snprintf(err, errlen, "%s%s", why,
                         L->n_unreadable > 1 ? " (and other shards: more than max_skip_rate of them cannot be read)" : "");
                goto fail;
            }
            continue;
        }
        int i = opened++; // counted as soon as it is open: the checks below close it on failure
        L->n_shards = opened;
        if (i == 0) L->W = s->m.W, L->H = s->m.H, L->E = s->m.expr_dim, L->sh = s->m.sap_h, L->sw = s->m.sap_w, L->sc = s->m.sap_c;
        if (s->m.W != L->W || s->m.H != L->H || s->m.expr_dim != L->E || s->m.sap_h != L->sh || s->m.sap_w != L->sw ||
            s->m.sap_c != L->sc) {
            snprintf(err, errlen, "%s: image size, code size or Sapiens map size differs from %s", s->path,
                     L->shards[0].path);
            goto fail;
        }
        if (o->use_dust3r && !s->has[SHARD_DUST3R]) {
            snprintf(err, errlen, "%s: the config uses DUSt3R maps but this shard has none (pack them, or set use_dust3r = false)", s->path);
            goto fail;
        }
        if (o->use_sapiens && !s->has[SHARD_SAPIENS]) {
            snprintf(err, errlen, "%s: the config uses Sapiens maps but this shard has none (pack them, or set use_sapiens = false)", s->path);
            goto fail;
        }
    }
    if (!opened) {
        snprintf(err, errlen, "no shard could be opened; the first: %.900s", L->unreadable);
        goto fail;
    }
    n = L->n_shards = opened;
    // sampler catalogue: camera directions from the mean head position; usable images
    L->dirs = (double *)callocCheck((size_t)n * SHARD_MAX_CAMS * 3, 8);
    size_t total = 0;
    for (int i = 0; i < n; i++) total += (size_t)L->shards[i].m.n_cams * L->shards[i].m.n_frames;
    L->present = (uint8_t *)callocCheck(total + 1, 1);
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        const Shard *s = &L->shards[i];
        int C = s->m.n_cams, F = s->m.n_frames, nf = 0;
        double hc[3] = {0, 0, 0};
        for (int f = 0; f < F; f++)
            if (frame_usable(s, f)) {
                for (int k = 0; k < 3; k++) hc[k] += s->m.head_pose[12 * f + 4 * k + 3];
                nf++;
            }
        for (int k = 0; k < 3; k++) hc[k] /= nf ? nf : 1;
        double *d = L->dirs + (size_t)i * SHARD_MAX_CAMS * 3;
        for (int c = 0; c < C; c++) {
            const double *R = s->m.w2c + 12 * c;
            double ctr[3], len = 0;
            for (int k = 0; k < 3; k++) ctr[k] = -(R[k] * R[3] + R[4 + k] * R[7] + R[8 + k] * R[11]) - hc[k];
            for (int k = 0; k < 3; k++) len += ctr[k] * ctr[k];
            for (int k = 0; k < 3; k++) d[3 * c + k] = ctr[k] / (sqrt(len) + 1e-12);
        }
        uint8_t *p = L->present + off;
        for (int c = 0; c < C; c++)
            for (int f = 0; f < F; f++)
                p[(size_t)c * F + f] = s->blob[SHARD_IMAGE].len[(size_t)f * C + c] > 0 && frame_usable(s, f) &&
                                       (!o->use_dust3r || s->blob[SHARD_DUST3R].len[(size_t)f * C + c] > 0) &&
                                       (!o->use_sapiens || s->blob[SHARD_SAPIENS].len[(size_t)f * C + c] > 0);
        // a held-out entry names the capture ("20240101--0900--TST001") or its subject id ("TST001")
        int held = 0;
        for (int k = 0; o->held_out && o->held_out[k]; k++) held |= data_capture_matches(s->m.capture, o->held_out[k]);
        if (o->only_held_out) held = !held; // the validation stream: the held-out identities only
        L->subj[i] = (SamplerSubject){C, F, d, p, held};
        off += (size_t)C * F;
    }
    if (sampler_init(&L->sampler, L->subj, n, o->views_in, o->views_target, o->random_timesteps, o->seed, err, errlen))
        goto fail;
    L->ring = (Batch *)callocCheck(o->depth, sizeof(Batch));
    for (int k = 0; k < o->depth; k++) batch_alloc(&L->ring[k], L);
    pthread_mutex_init(&L->mu, NULL);
    pthread_cond_init(&L->cv, NULL);
    L->next_fill = L->next_take = first_step;
    L->workers = (pthread_t *)callocCheck(o->threads, sizeof(pthread_t));
    for (int t = 0; t < o->threads; t++) pthread_create(&L->workers[t], NULL, worker, L);
    return 0;
fail:
    for (int i = 0; i < opened; i++) shard_close(&L->shards[i]);
    free(L->shards), free(L->subj), free(L->dirs), free(L->present);
    memset(L, 0, sizeof *L);
    return -1;
}

const Batch *loader_next(Loader *L, char *err, size_t errlen) {
    pthread_mutex_lock(&L->mu);
    uint64_t step = L->next_take; // taking it releases the batch returned by the previous call
    Batch *b = &L->ring[step % L->o.depth];
    while (!(b->ready && b->step == step)) pthread_cond_wait(&L->cv, &L->mu);
    L->next_take++;
    pthread_cond_broadcast(&L->cv);
    pthread_mutex_unlock(&L->mu);
    if (b->failed) {
        snprintf(err, errlen, "%s", b->err);
        return NULL;
    }
    return b;
}

void loader_close(Loader *L) {
    if (!L->shards) return;
    pthread_mutex_lock(&L->mu);
    L->stop = 1;
    pthread_cond_broadcast(&L->cv);
    pthread_mutex_unlock(&L->mu);
    for (int t = 0; t < L->o.threads; t++) pthread_join(L->workers[t], NULL);
    for (int k = 0; k < L->o.depth; k++) batch_free(&L->ring[k]);
    for (int i = 0; i < L->n_shards; i++) shard_close(&L->shards[i]);
    sampler_free(&L->sampler);
    pthread_mutex_destroy(&L->mu);
    pthread_cond_destroy(&L->cv);
    free(L->ring), free(L->workers), free(L->shards), free(L->subj), free(L->dirs), free(L->present);
    memset(L, 0, sizeof *L);
}
