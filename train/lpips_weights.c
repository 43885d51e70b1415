// lpips_weights.c — the LPIPS architectures and the weight file (docs/lpips.md): reader, writer, random
// weights for tests. Float only (compiled once). The reader refuses anything it cannot trust.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/rng.h"
#include "../common/util.h"
#include "checkpoint.h" // crc32_update
#include "lpips.h"

static const char LPIPS_MAGIC[8] = {'A', 'V', 'T', '3', 'L', 'P', 'I', 'P'};
#define LPIPS_FILE_VERSION 1
#define LPIPS_HEADER 64

// One conv row of an architecture table: shape, the pool in front of it, the tap after its ReLU, and
// its index in torchvision's `features` Sequential.
typedef struct {
    int OC, IC, k, stride, pad, pool_k, pool_s, tap, torch_index;
} ArchRow;

// torchvision vgg16().features[0:30]: 3×3 pad-1 convs; 2×2/2 max-pools at indices 4, 9, 16, 23; taps
// after relu1_2 (3), relu2_2 (8), relu3_3 (15), relu4_3 (22), relu5_3 (29).
static const ArchRow VGG16[13] = {
    // OC, IC, k, stride, pad, pool_k, pool_s, tap, features index
    {64, 3, 3, 1, 1, 0, 0, -1, 0},
    {64, 64, 3, 1, 1, 0, 0, 0, 2}, // relu1_2
    {128, 64, 3, 1, 1, 2, 2, -1, 5},
    {128, 128, 3, 1, 1, 0, 0, 1, 7}, // relu2_2
    {256, 128, 3, 1, 1, 2, 2, -1, 10},
    {256, 256, 3, 1, 1, 0, 0, -1, 12},
    {256, 256, 3, 1, 1, 0, 0, 2, 14}, // relu3_3
    {512, 256, 3, 1, 1, 2, 2, -1, 17},
    {512, 512, 3, 1, 1, 0, 0, -1, 19},
    {512, 512, 3, 1, 1, 0, 0, 3, 21}, // relu4_3
    {512, 512, 3, 1, 1, 2, 2, -1, 24},
    {512, 512, 3, 1, 1, 0, 0, -1, 26},
    {512, 512, 3, 1, 1, 0, 0, 4, 28}, // relu5_3
};
// torchvision alexnet().features[0:12]: conv 11×11/4 p2, pool 3/2 (index 2), conv 5×5 p2, pool 3/2
// (index 5), three 3×3 p1 convs; every ReLU is a tap.
static const ArchRow ALEX[5] = {
    {64, 3, 11, 4, 2, 0, 0, 0, 0},    // relu1
    {192, 64, 5, 1, 2, 3, 2, 1, 3},   // relu2
    {384, 192, 3, 1, 1, 3, 2, 2, 6},  // relu3
    {256, 384, 3, 1, 1, 0, 0, 3, 8},  // relu4
    {256, 256, 3, 1, 1, 0, 0, 4, 10}, // relu5
};

int lpips_net_from_name(const char *name) {
    if (name && !strcmp(name, "vgg")) return LPIPS_VGG;
    if (name && !strcmp(name, "alex")) return LPIPS_ALEX;
    return -1;
}

const char *lpips_net_name(int net) { return net == LPIPS_VGG ? "vgg" : net == LPIPS_ALEX ? "alex" : "?"; }

int lpips_layout(LpipsWeights *w, int net) {
    memset(w, 0, sizeof *w);
    const ArchRow *a = net == LPIPS_VGG ? VGG16 : net == LPIPS_ALEX ? ALEX : NULL;
    if (!a) return -1;
    w->net = net;
    w->n_conv = net == LPIPS_VGG ? 13 : 5;
    size_t n = 0;
    for (int i = 0; i < w->n_conv; i++) {
        LpipsConv *c = &w->conv[i];
        c->OC = a[i].OC, c->IC = a[i].IC, c->kh = c->kw = a[i].k, c->stride = a[i].stride, c->pad = a[i].pad;
        c->pool_k = a[i].pool_k, c->pool_s = a[i].pool_s, c->tap = a[i].tap, c->torch_index = a[i].torch_index;
        n += (size_t)c->OC * c->IC * c->kh * c->kw + c->OC;
        if (c->tap >= 0) w->tap_ch[c->tap] = c->OC;
    }
    for (int k = 0; k < LPIPS_TAPS; k++) n += w->tap_ch[k];
    w->n = n;
    return 0;
}

// Points conv[i].w/b and lin[k] into w->data, in file order.
static void carve(LpipsWeights *w) {
    float *p = w->data;
    for (int i = 0; i < w->n_conv; i++) {
        LpipsConv *c = &w->conv[i];
        c->w = p, p += (size_t)c->OC * c->IC * c->kh * c->kw;
        c->b = p, p += c->OC;
    }
    for (int k = 0; k < LPIPS_TAPS; k++) w->lin[k] = p, p += w->tap_ch[k];
}

// Output side of a conv / pool; < 1 means the input is too small.
static int conv_out(int n, int k, int s, int p) { return n + 2 * p < k ? 0 : (n + 2 * p - k) / s + 1; }

// Smallest tapped grid over the trunk for an H×W input (both sides separately), 0 if a layer is empty.
static int smallest_grid(const LpipsWeights *w, int n) {
    int m = n;
    for (int i = 0; i < w->n_conv; i++) {
        const LpipsConv *c = &w->conv[i];
        if (c->pool_k) m = conv_out(m, c->pool_k, c->pool_s, 0);
        m = conv_out(m, c->kh, c->stride, c->pad);
        if (m < 1) return 0;
    }
    return m;
}

int lpips_chunk_rows(size_t cols_chunk, size_t K, int Wo) {
    size_t r = cols_chunk / (K * (size_t)Wo);
    return r < 1 ? 1 : (int)(r > (1u << 30) ? (1u << 30) : r);
}

void lpips_plan(const LpipsWeights *w, int N, int H, int W, size_t cols_chunk, LpipsPlan *p) {
    memset(p, 0, sizeof *p);
    p->max_elems = (size_t)H * W * 3, p->max_m = 1;
    int h = H, wd = W;
    for (int i = 0; i < w->n_conv; i++) {
        const LpipsConv *c = &w->conv[i];
        p->ph[i] = h, p->pw[i] = wd;
        if (c->pool_k) h = conv_out(h, c->pool_k, c->pool_s, 0), wd = conv_out(wd, c->pool_k, c->pool_s, 0);
        p->ih[i] = h, p->iw[i] = wd;
        if (c->pool_k && (size_t)h * wd * c->IC > p->max_elems) p->max_elems = (size_t)h * wd * c->IC;
        p->oh[i] = conv_out(h, c->kh, c->stride, c->pad), p->ow[i] = conv_out(wd, c->kw, c->stride, c->pad);
        h = p->oh[i], wd = p->ow[i];
        if ((size_t)h * wd * c->OC > p->max_elems) p->max_elems = (size_t)h * wd * c->OC;
        if (c->tap >= 0) p->tap_conv[c->tap] = i;
        p->n_w += (size_t)c->OC * c->IC * c->kh * c->kw + c->OC;
        size_t K = (size_t)c->kh * c->kw * c->IC, rows = (size_t)N * p->oh[i];
        size_t cr = (size_t)lpips_chunk_rows(cols_chunk, K, p->ow[i]);
        size_t m = (rows < cr ? rows : cr) * p->ow[i];
        if (m * K > p->cols) p->cols = m * K;
        if (m > p->max_m) p->max_m = m;
    }
    for (int k = 0; k < LPIPS_TAPS; k++) p->n_w += w->tap_ch[k];
}

int lpips_min_size(int net) {
    LpipsWeights w;
    if (lpips_layout(&w, net)) return -1;
    for (int n = 1; n < 4096; n++)
        if (smallest_grid(&w, n) >= 1) return n; // monotone in n
    return -1;
}

int lpips_check_size(int net, int H, int W, char *err, size_t errlen) {
    int m = lpips_min_size(net);
    if (m < 0) return error_set(err, errlen, "LPIPS: unknown net id %d", net);
    if (H < m || W < m)
        return error_set(err, errlen, "LPIPS-%s needs images of at least %d×%d pixels, got %d×%d (H×W)",
                         lpips_net_name(net), m, m, H, W);
    return 0;
}

void lpips_weights_free(LpipsWeights *w) {
    free(w->data);
    memset(w, 0, sizeof *w);
}

void lpips_weights_random(LpipsWeights *w, int net, uint64_t seed) {
    if (lpips_layout(w, net)) FATAL("lpips_weights_random: unknown net id %d", net);
    w->data = (float *)mallocCheck(sizeof(float) * w->n);
    carve(w);
    for (int i = 0; i < w->n_conv; i++) {
        LpipsConv *c = &w->conv[i];
        size_t nw = (size_t)c->OC * c->IC * c->kh * c->kw;
        double sd = sqrt(2.0 / ((double)c->IC * c->kh * c->kw)); // He: keeps ReLU activations O(1)
        Rng rw = rng_make(seed, 2 * i), rb = rng_make(seed, 2 * i + 1);
        for (size_t j = 0; j < nw; j++) c->w[j] = (float)(sd * rng_normal_at(&rw, j));
        for (int j = 0; j < c->OC; j++) c->b[j] = (float)(0.1 * rng_normal_at(&rb, j));
    }
    for (int k = 0; k < LPIPS_TAPS; k++) {
        Rng r = rng_make(seed, 2 * w->n_conv + k);
        for (int j = 0; j < w->tap_ch[k]; j++) w->lin[k][j] = (float)fabs(rng_normal_at(&r, j));
    }
}

// The shape table: per conv OC, IC, kh, kw, stride, pad; then the 5 lin lengths (int32 each).
static int shape_table(const LpipsWeights *w, int32_t *t) {
    int n = 0;
    for (int i = 0; i < w->n_conv; i++) {
        const LpipsConv *c = &w->conv[i];
        t[n++] = c->OC, t[n++] = c->IC, t[n++] = c->kh, t[n++] = c->kw, t[n++] = c->stride, t[n++] = c->pad;
    }
    for (int k = 0; k < LPIPS_TAPS; k++) t[n++] = w->tap_ch[k];
    return n;
}
#define TABLE_MAX (6 * LPIPS_MAX_CONV + LPIPS_TAPS)

void lpips_weights_save(const LpipsWeights *w, const char *path) {
    int32_t table[TABLE_MAX];
    int nt = shape_table(w, table);
    uint32_t crc = crc32_update(crc32_update(0, table, 4 * (size_t)nt), w->data, 4 * w->n);
    unsigned char hdr[LPIPS_HEADER] = {0};
    uint32_t ver = LPIPS_FILE_VERSION, net = (uint32_t)w->net, nc = (uint32_t)w->n_conv;
    uint64_t nf = w->n;
    memcpy(hdr, LPIPS_MAGIC, 8);
    memcpy(hdr + 8, &ver, 4);
    memcpy(hdr + 12, &net, 4);
    memcpy(hdr + 16, &nc, 4);
    memcpy(hdr + 20, &crc, 4);
    memcpy(hdr + 24, &nf, 8);
    AtomicFile af;
    atomicOpen(&af, path);
    fwriteCheck(hdr, 1, sizeof hdr, af.f);
    fwriteCheck(table, 4, (size_t)nt, af.f);
    fwriteCheck(w->data, sizeof(float), w->n, af.f);
    atomicClose(&af);
}

static const char *const FIELD[6] = {"OC", "IC", "kh", "kw", "stride", "pad"};

#define FAIL(...) FAIL_FILE(path, __VA_ARGS__)

int lpips_weights_load(LpipsWeights *w, const char *path, char *err, size_t errlen) {
    memset(w, 0, sizeof *w);
    float *data = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return error_set(err, errlen, "%s: cannot open LPIPS weights", path);
    struct stat st;
    if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) FAIL("not a regular file");
    int64_t fsize = file_size(f);
    unsigned char hdr[LPIPS_HEADER];
    if (fsize < LPIPS_HEADER || fread(hdr, 1, LPIPS_HEADER, f) != LPIPS_HEADER)
        FAIL("too short to be an LPIPS weight file (%lld bytes, the header alone is %d)", (long long)fsize,
             LPIPS_HEADER);
    if (memcmp(hdr, LPIPS_MAGIC, 8))
        FAIL("not an avat3r LPIPS weight file (bad magic; convert with tools/convert_lpips.py)");
    uint32_t ver, net, nc, crc;
    uint64_t nf;
    memcpy(&ver, hdr + 8, 4);
    memcpy(&net, hdr + 12, 4);
    memcpy(&nc, hdr + 16, 4);
    memcpy(&crc, hdr + 20, 4);
    memcpy(&nf, hdr + 24, 8);
    if (ver != LPIPS_FILE_VERSION)
        FAIL("unsupported LPIPS weight file version %u (this build reads %d)", ver, LPIPS_FILE_VERSION);
    LpipsWeights lay;
    if (lpips_layout(&lay, (int)net)) FAIL("unknown net id %u (1 = vgg, 2 = alex)", net);
    if (nc != (uint32_t)lay.n_conv)
        FAIL("n_conv %u, but LPIPS-%s has %d convs", nc, lpips_net_name((int)net), lay.n_conv);
    for (int i = 32; i < LPIPS_HEADER; i++)
        if (hdr[i]) FAIL("reserved header byte %d is not zero", i);
    if (nf != lay.n)
        FAIL("holds %llu floats, LPIPS-%s has %zu", (unsigned long long)nf, lpips_net_name((int)net), lay.n);
    int32_t want[TABLE_MAX], table[TABLE_MAX];
    int nt = shape_table(&lay, want);
    uint64_t expect = LPIPS_HEADER + 4 * (uint64_t)nt + 4 * nf;
    if ((uint64_t)fsize != expect)
        FAIL("file is %lld bytes but the header promises %llu (%s)", (long long)fsize, (unsigned long long)expect,
             (uint64_t)fsize < expect ? "truncated" : "trailing bytes");
    if (fread(table, 4, (size_t)nt, f) != (size_t)nt) FAIL("short read of the shape table");
    data = (float *)mallocCheck(sizeof(float) * lay.n);
    if (fread(data, sizeof(float), lay.n, f) != lay.n) FAIL("short read of the weights");
    uint32_t got = crc32_update(crc32_update(0, table, 4 * (size_t)nt), data, 4 * lay.n);
    if (got != crc) FAIL("CRC mismatch (stored %08x, computed %08x): the file is corrupt", crc, got);
    // after the CRC, a shape mismatch means a writer bug or a foreign layout, not corruption
    for (int i = 0; i < nt; i++)
        if (table[i] != want[i]) {
            if (i < 6 * lay.n_conv)
                FAIL("conv %d (features.%d): %s is %d, LPIPS-%s expects %d", i / 6, lay.conv[i / 6].torch_index,
                     FIELD[i % 6], (int)table[i], lpips_net_name((int)net), (int)want[i]);
            FAIL("lin%d has %d channels, LPIPS-%s expects %d", i - 6 * lay.n_conv, (int)table[i],
                 lpips_net_name((int)net), (int)want[i]);
        }
    *w = lay;
    w->data = data;
    carve(w);
    for (size_t j = 0; j < w->n; j++)
        if (!isfinite(data[j])) FAIL("weight %zu of %zu is not finite (%g)", j, w->n, (double)data[j]);
    for (int k = 0; k < LPIPS_TAPS; k++)
        for (int j = 0; j < w->tap_ch[k]; j++)
            // lpips v0.1 clamps lin weights at 0 in training: a negative one means a foreign or broken file
            if (!(w->lin[k][j] >= 0))
                FAIL("lin%d weight %d is negative (%g); LPIPS lin weights are all >= 0", k, j, (double)w->lin[k][j]);
    fclose(f);
    return 0;
fail:
    free(data);
    memset(w, 0, sizeof *w);
    fclose(f);
    return -1;
}
