// landmarks.c — see landmarks.h; the format and the algorithm are written out in docs/akd.md.
#include "landmarks.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"

// ---------------------------------------------------------------------------------------------------------
// dlib's serialization, read through a buffered cursor that knows the file length (so that every count
// can be checked against the bytes left before anything is allocated for it).

typedef struct {
    FILE *f;
    const char *path;
    int64_t size, off; // file length; offset of the next byte
    uint8_t buf[1 << 16];
    size_t pos, len;
    char field[160];   // what is being read, for messages
    char *err;
    size_t errlen;
} Rd;

static int rd_fail(Rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int rd_fail(Rd *r, const char *fmt, ...) {
    char m[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    return error_set(r->err, r->errlen, "%s: %s (at byte %lld): %s", r->path, r->field, (long long)r->off, m);
}

static void rd_field(Rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void rd_field(Rd *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->field, sizeof r->field, fmt, ap);
    va_end(ap);
}

// The next byte without consuming it.
static int rd_peek(Rd *r, int *b) {
    *b = 0;
    if (r->pos == r->len) {
        r->len = fread(r->buf, 1, sizeof r->buf, r->f);
        r->pos = 0;
        if (r->len == 0) return rd_fail(r, "the file ends here (truncated)");
    }
    *b = r->buf[r->pos];
    return 0;
}

static int rd_byte(Rd *r, int *b) {
    if (rd_peek(r, b)) return -1;
    r->pos++, r->off++;
    return 0;
}

static int64_t rd_left(const Rd *r) { return r->size - r->off; }

// dlib's integers: a control byte (low 4 bits: the number of value bytes that follow, little-endian; bit 7:
// negative, for signed types only), then the magnitude. `nbytes` is sizeof the C++ type.
static int rd_int(Rd *r, int is_signed, int nbytes, int64_t *out) {
    int c, b;
    if (rd_byte(r, &c)) return -1;
    int neg = is_signed && (c & 0x80);
    int n = is_signed ? (c & 0x0F) : (c & 0x8F); // dlib ignores bits 4..6 (reserved)
    if (n == 0 || n > nbytes)
        return rd_fail(r, "integer control byte 0x%02x: %d value bytes for a %d-byte %s integer", c, n, nbytes,
                       is_signed ? "signed" : "unsigned");
    uint64_t v = 0;
    for (int i = 0; i < n; i++) {
        if (rd_byte(r, &b)) return -1;
        v |= (uint64_t)b << (8 * i);
    }
    uint64_t lim = nbytes >= 8 ? (uint64_t)INT64_MAX : ((uint64_t)1 << (8 * nbytes - is_signed)) - 1;
    if (v > lim) return rd_fail(r, "integer %llu out of range for a %d-byte integer", (unsigned long long)v, nbytes);
    *out = neg ? -(int64_t)v : (int64_t)v;
    return 0;
}

// std::vector / unsigned long counts; each element takes at least `min_bytes` bytes of what is left.
static int rd_count(Rd *r, int64_t min_bytes, int64_t *n) {
    if (rd_int(r, 0, 8, n)) return -1;
    if (*n > rd_left(r) / min_bytes)
        return rd_fail(r,
                       "count %lld of elements of at least %lld bytes each, but only %lld bytes are left "
                       "(truncated or corrupt)",
                       (long long)*n, (long long)min_bytes, (long long)rd_left(r));
    return 0;
}

// dlib's floats: signed int64 mantissa and int16 exponent, value = mantissa · 2^exponent (exponents 32000,
// 32001, 32002 mean +inf, -inf, NaN). The pre-2013 ASCII encoding is recognized by bits 0x70 of its first
// byte (never set in a control byte) and refused.
#define RD_FLOAT_MIN_BYTES 4
static int rd_float(Rd *r, float *out) {
    int b;
    if (rd_peek(r, &b)) return -1;
    if (b & 0x70) return rd_fail(r, "not dlib's binary float encoding (byte 0x%02x)", b);
    int64_t man, ex;
    if (rd_int(r, 1, 8, &man) || rd_int(r, 1, 2, &ex)) return -1;
    if (ex >= 32000) return rd_fail(r, "a non-finite value (exponent code %lld)", (long long)ex);
    // as dlib's float_details: the mantissa rounded to float, then scaled
    *out = ldexpf((float)man, (int)ex);
    if (!isfinite(*out)) return rd_fail(r, "%lld * 2^%lld overflows a float", (long long)man, (long long)ex);
    return 0;
}

// A dlib::matrix<float,0,1> of exactly `rows` rows: rows and columns (negated by newer dlib), then the values.
static int rd_column(Rd *r, int64_t rows, float *out) {
    int64_t nr, nc;
    if (rd_int(r, 1, 8, &nr) || rd_int(r, 1, 8, &nc)) return -1;
    if (nr < 0 || nc < 0) nr = -nr, nc = -nc;
    if (nc != 1 || nr != rows)
        return rd_fail(r, "a %lld x %lld matrix where a %lld x 1 column was expected", (long long)nr, (long long)nc,
                       (long long)rows);
    for (int64_t i = 0; i < rows; i++)
        if (rd_float(r, out + i)) return -1;
    return 0;
}

// Growable arrays whose growth is paid for by bytes already read.
static void *grow(void *p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return p;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    void *q = realloc(p, c * elem);
    if (!q) FATAL("out of memory growing a landmark model array to %zu elements", c);
    *cap = c;
    return q;
}

void landmarks_free(LandmarkModel *m) {
    free(m->initial), free(m->level_tree), free(m->level_feat), free(m->tree_split), free(m->split_idx);
    free(m->split_thresh), free(m->leaf), free(m->anchor), free(m->delta);
    memset(m, 0, sizeof *m);
}

// The file: int version (1); matrix<float,0,1> initial_shape; vector<vector<regression_tree>> forests, a
// regression_tree = vector<split_feature> (ulong idx1, ulong idx2, float thresh) + vector<matrix<float,0,1>>
// leaf_values; vector<vector<ulong>> anchor_idx; vector<vector<vector<float,2>>> deltas.
int landmarks_load(LandmarkModel *m, const char *path, char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    Rd *r = (Rd *)callocCheck(1, sizeof(Rd));
    r->path = path, r->err = err, r->errlen = errlen;
    snprintf(r->field, sizeof r->field, "file");
    r->f = fopen(path, "rb");
    if (!r->f) {
        free(r);
        return error_set(err, errlen, "%s: cannot open: %s (the dlib 68-point model comes with Debian's libdlib-data)",
                         path, strerror(errno));
    }
    if (fseek(r->f, 0, SEEK_END) || (r->size = ftell(r->f)) < 0 || fseek(r->f, 0, SEEK_SET)) {
        fclose(r->f), free(r);
        return error_set(err, errlen, "%s: not a seekable regular file", path);
    }
    size_t cap_split = 0, cap_thresh = 0, cap_leaf = 0, cap_tree = 0, cap_feat = 0;
    int64_t n_split = 0, n_leaf = 0, n, v;

    rd_field(r, "version");
    if (rd_int(r, 1, 4, &v)) goto fail;
    if (v != 1) {
        rd_fail(r, "%lld, expected 1 (dlib::shape_predictor's format version)", (long long)v);
        goto fail;
    }
    rd_field(r, "initial_shape");
    {
        int64_t nr, nc;
        if (rd_int(r, 1, 8, &nr) || rd_int(r, 1, 8, &nc)) goto fail;
        if (nr < 0 || nc < 0) nr = -nr, nc = -nc;
        if (nc != 1 || nr < 4 || nr % 2 || nr > rd_left(r) / RD_FLOAT_MIN_BYTES) {
            rd_fail(r, "%lld x %lld: expected a column of 2 x parts coordinates (at least 2 parts)", (long long)nr,
                    (long long)nc);
            goto fail;
        }
        m->n_parts = (int)(nr / 2);
        m->initial = (float *)mallocCheck(sizeof(float) * nr);
        for (int64_t i = 0; i < nr; i++)
            if (rd_float(r, m->initial + i)) goto fail;
    }
    const int64_t D = 2 * (int64_t)m->n_parts;
    // least bytes: a count 2, a float 4, a tree 4 (two counts), a split 8, a leaf 4 + 4·D
    rd_field(r, "forests");
    if (rd_count(r, 2, &n)) goto fail;
    if (n < 1) {
        rd_fail(r, "no cascade levels");
        goto fail;
    }
    m->n_cascades = (int)n;
    m->level_tree = (int *)callocCheck((size_t)n + 1, sizeof(int));
    m->level_feat = (int *)callocCheck((size_t)n + 1, sizeof(int));
    for (int c = 0; c < m->n_cascades; c++) {
        rd_field(r, "forests[%d]", c);
        int64_t nt;
        if (rd_count(r, 4, &nt)) goto fail;
        if (m->n_trees + nt > INT32_MAX / 2) {
            rd_fail(r, "%lld trees", (long long)nt);
            goto fail;
        }
        for (int64_t t = 0; t < nt; t++, m->n_trees++) {
            m->tree_split = (int *)grow(m->tree_split, &cap_tree, (size_t)m->n_trees + 2, sizeof(int));
            m->tree_split[m->n_trees] = (int)n_split;
            rd_field(r, "forests[%d][%lld].splits", c, (long long)t);
            int64_t ns, nl;
            if (rd_count(r, 2 + 2 + RD_FLOAT_MIN_BYTES, &ns)) goto fail;
            if (n_split + ns > INT32_MAX / 2) {
                rd_fail(r, "%lld splits", (long long)ns);
                goto fail;
            }
            m->split_idx = (uint32_t *)grow(m->split_idx, &cap_split, (size_t)(n_split + ns), 2 * sizeof(uint32_t));
            m->split_thresh = (float *)grow(m->split_thresh, &cap_thresh, (size_t)(n_split + ns), sizeof(float));
            for (int64_t s = 0; s < ns; s++, n_split++) {
                rd_field(r, "forests[%d][%lld].splits[%lld]", c, (long long)t, (long long)s);
                int64_t i1, i2;
                if (rd_int(r, 0, 8, &i1) || rd_int(r, 0, 8, &i2)) goto fail;
                if (i1 > UINT32_MAX || i2 > UINT32_MAX) { // checked against the level's pixels below
                    rd_fail(r, "feature index %lld", (long long)(i1 > i2 ? i1 : i2));
                    goto fail;
                }
                m->split_idx[2 * n_split] = (uint32_t)i1, m->split_idx[2 * n_split + 1] = (uint32_t)i2;
                if (rd_float(r, m->split_thresh + n_split)) goto fail;
            }
            rd_field(r, "forests[%d][%lld].leaf_values", c, (long long)t);
            if (rd_count(r, 4 + RD_FLOAT_MIN_BYTES * D, &nl)) goto fail;
            if (nl != ns + 1 || (nl & (nl - 1))) { // dlib's requirement: a full binary tree
                rd_fail(r, "%lld leaves for %lld splits: a full binary tree has splits + 1 (a power of 2)",
                        (long long)nl, (long long)ns);
                goto fail;
            }
            // cap_leaf counts shapes, not floats
            m->leaf = (float *)grow(m->leaf, &cap_leaf, (size_t)(n_leaf + nl), sizeof(float) * (size_t)D);
            for (int64_t l = 0; l < nl; l++, n_leaf++) {
                rd_field(r, "forests[%d][%lld].leaf_values[%lld]", c, (long long)t, (long long)l);
                if (rd_column(r, D, m->leaf + n_leaf * D)) goto fail;
            }
        }
        m->level_tree[c + 1] = m->n_trees;
    }
    if (!m->tree_split) m->tree_split = (int *)grow(m->tree_split, &cap_tree, 1, sizeof(int));
    m->tree_split[m->n_trees] = (int)n_split;
    rd_field(r, "anchor_idx");
    if (rd_count(r, 2, &n)) goto fail;
    if (n != m->n_cascades) {
        rd_fail(r, "%lld lists for %d cascade levels", (long long)n, m->n_cascades);
        goto fail;
    }
    int64_t n_feat = 0;
    for (int c = 0; c < m->n_cascades; c++) {
        rd_field(r, "anchor_idx[%d]", c);
        if (rd_count(r, 2, &n)) goto fail;
        if (n_feat + n > INT32_MAX / 2) {
            rd_fail(r, "%lld feature pixels", (long long)n);
            goto fail;
        }
        m->anchor = (uint32_t *)grow(m->anchor, &cap_feat, (size_t)(n_feat + n), sizeof(uint32_t));
        for (int64_t i = 0; i < n; i++, n_feat++) {
            rd_field(r, "anchor_idx[%d][%lld]", c, (long long)i);
            if (rd_int(r, 0, 8, &v)) goto fail;
            if (v >= m->n_parts) {
                rd_fail(r, "landmark %lld of %d", (long long)v, m->n_parts);
                goto fail;
            }
            m->anchor[n_feat] = (uint32_t)v;
        }
        m->level_feat[c + 1] = (int)n_feat;
    }
    m->delta = (float *)mallocCheck(sizeof(float) * 2 * ((size_t)n_feat + 1));
    rd_field(r, "deltas");
    if (rd_count(r, 2, &n)) goto fail;
    if (n != m->n_cascades) {
        rd_fail(r, "%lld lists for %d cascade levels", (long long)n, m->n_cascades);
        goto fail;
    }
    for (int c = 0; c < m->n_cascades; c++) {
        rd_field(r, "deltas[%d]", c);
        if (rd_count(r, 2 * RD_FLOAT_MIN_BYTES, &n)) goto fail;
        int nf = m->level_feat[c + 1] - m->level_feat[c];
        if (n != nf) {
            rd_fail(r, "%lld offsets for the level's %d anchors", (long long)n, nf);
            goto fail;
        }
        for (int i = m->level_feat[c]; i < m->level_feat[c + 1]; i++) {
            rd_field(r, "deltas[%d][%d]", c, i - m->level_feat[c]);
            if (rd_float(r, m->delta + 2 * i) || rd_float(r, m->delta + 2 * i + 1)) goto fail;
        }
    }
    // every split compares two of its own level's feature pixels
    for (int c = 0; c < m->n_cascades; c++) {
        int nf = m->level_feat[c + 1] - m->level_feat[c];
        for (int t = m->level_tree[c]; t < m->level_tree[c + 1]; t++)
            for (int s = m->tree_split[t]; s < m->tree_split[t + 1]; s++)
                if (m->split_idx[2 * s] >= (uint32_t)nf || m->split_idx[2 * s + 1] >= (uint32_t)nf) {
                    rd_field(r, "forests[%d][%d].splits[%d]", c, t - m->level_tree[c], s - m->tree_split[t]);
                    rd_fail(r, "feature pixel %u or %u, the level has %d", m->split_idx[2 * s],
                            m->split_idx[2 * s + 1], nf);
                    goto fail;
                }
    }
    fclose(r->f);
    free(r);
    return 0;
fail:
    fclose(r->f);
    free(r);
    landmarks_free(m);
    return -1;
}

// ---------------------------------------------------------------------------------------------------------
// The cascade (dlib's shape_predictor::operator(), impl::extract_feature_pixel_values, regression_tree).

// dlib's find_similarity_transform(mean shape -> current shape) (Umeyama), of which the feature extraction
// uses only the linear part. In 2-D it has a closed form: with the cross-covariance C = [[a, b], [c, d]] of the
// centred points (to · fromᵀ) and σ² the variance of `from`, scale·rotation = [[a + d, b − c], [c − b, a + d]] / σ²
// (the maximum of trace(Rᵀ C) over rotations; dlib gets the same from an SVD). Both compute it in double and
// round it to float, so they agree unless a value lies within ~1e-16 of a float rounding boundary.
static void similarity(const float *from, const float *to, int n, float T[4]) {
    double mf[2] = {0, 0}, mt[2] = {0, 0}, sf = 0, C[4] = {0, 0, 0, 0};
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 2; k++) mf[k] += from[2 * i + k], mt[k] += to[2 * i + k];
    for (int k = 0; k < 2; k++) mf[k] /= n, mt[k] /= n;
    for (int i = 0; i < n; i++) {
        double fx = from[2 * i] - mf[0], fy = from[2 * i + 1] - mf[1];
        double tx = to[2 * i] - mt[0], ty = to[2 * i + 1] - mt[1];
        sf += fx * fx + fy * fy;
        C[0] += tx * fx, C[1] += tx * fy, C[2] += ty * fx, C[3] += ty * fy;
    }
    sf /= n;
    for (int k = 0; k < 4; k++) C[k] /= n;
    if (sf == 0) sf = 1; // dlib: scale 1 for a degenerate mean shape (never in a trained model)
    T[0] = T[3] = (float)((C[0] + C[3]) / sf);
    T[1] = (float)((C[1] - C[2]) / sf);
    T[2] = (float)((C[2] - C[1]) / sf);
}

void landmarks_predict(const LandmarkModel *m, const uint8_t *img, int W, int H, int stride, int channels,
                       LandmarkBox box, double *pts) {
    if (channels != 1 && channels != 3) FATAL("landmarks_predict: %d channels (1 or 3)", channels);
    const int P = m->n_parts;
    // unnormalizing_tform(box): (0,0) -> top-left, (1,1) -> bottom-right; dlib solves it by a pseudo-inverse
    // (off by ~1e-15 relative), here it is exact: x = left + (right − left)·u
    const double bw = (double)(box.right - box.left), bh = (double)(box.bottom - box.top);
    const double bx = (double)box.left, by = (double)box.top;
    int max_feat = 0;
    for (int c = 0; c < m->n_cascades; c++)
        if (m->level_feat[c + 1] - m->level_feat[c] > max_feat) max_feat = m->level_feat[c + 1] - m->level_feat[c];
    float *shape = (float *)mallocCheck(sizeof(float) * 2 * P);
    float *feat = (float *)mallocCheck(sizeof(float) * (size_t)(max_feat + 1));
    memcpy(shape, m->initial, sizeof(float) * 2 * P);
    for (int c = 0; c < m->n_cascades; c++) {
        float T[4];
        similarity(m->initial, shape, P, T);
        for (int i = m->level_feat[c]; i < m->level_feat[c + 1]; i++) {
            // the feature pixel in the current shape, in float as dlib's matrix<float> expression: (T·δ) + anchor
            // (ISO C mode, meson's c_std=c11, contracts no a·b + c into an FMA, which would round differently)
            const float dx = m->delta[2 * i], dy = m->delta[2 * i + 1];
            const uint32_t a = m->anchor[i];
            const float u = T[0] * dx + T[1] * dy + shape[2 * a];
            const float v = T[2] * dx + T[3] * dy + shape[2 * a + 1];
            // to pixels in double, then dlib's rounding of a point: floor(x + 0.5); outside the image reads 0
            const double X = floor(bw * (double)u + bx + 0.5), Y = floor(bh * (double)v + by + 0.5);
            float val = 0;
            if (X >= 0 && X <= W - 1 && Y >= 0 && Y <= H - 1) {
                const uint8_t *p = img + (size_t)Y * (size_t)stride + (size_t)X * (size_t)channels;
                val = channels == 1 ? p[0] : (float)(((unsigned)p[0] + p[1] + p[2]) / 3);
            }
            feat[i - m->level_feat[c]] = val;
        }
        for (int t = m->level_tree[c]; t < m->level_tree[c + 1]; t++) {
            const int s0 = m->tree_split[t], ns = m->tree_split[t + 1] - s0;
            int k = 0;
            while (k < ns) {
                const uint32_t *ix = m->split_idx + 2 * (size_t)(s0 + k);
                k = feat[ix[0]] - feat[ix[1]] > m->split_thresh[s0 + k] ? 2 * k + 1 : 2 * k + 2;
            }
            const float *leaf = m->leaf + ((size_t)s0 + t + (size_t)(k - ns)) * 2 * P;
            for (int j = 0; j < 2 * P; j++) shape[j] += leaf[j];
        }
    }
    for (int k = 0; k < P; k++) {
        pts[2 * k] = bw * (double)shape[2 * k] + bx;
        pts[2 * k + 1] = bh * (double)shape[2 * k + 1] + by;
    }
    free(shape), free(feat);
}

double landmarks_mean_distance(const double *a, const double *b, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += hypot(a[2 * i] - b[2 * i], a[2 * i + 1] - b[2 * i + 1]);
    return n > 0 ? s / n : 0;
}

double landmarks_akd(const LandmarkModel *m, const uint8_t *pred_rgb, const uint8_t *gt_rgb, int W, int H,
                     LandmarkBox box) {
    double *p = (double *)mallocCheck(sizeof(double) * 4 * m->n_parts), *g = p + 2 * m->n_parts;
    landmarks_predict(m, pred_rgb, W, H, 3 * W, 3, box, p);
    landmarks_predict(m, gt_rgb, W, H, 3 * W, 3, box, g);
    double d = landmarks_mean_distance(p, g, m->n_parts);
    free(p);
    return d;
}

// ---------------------------------------------------------------------------------------------------------
// The face box from the ground-truth projection of the head (docs/akd.md "Face box").

const double LANDMARKS_FACE_CENTRE[3] = {0, -0.03, 0.05};

int landmarks_face_box(const float *w2c, const float *K, int W, int H, LandmarkBox *box) {
    const double *c = LANDMARKS_FACE_CENTRE;
    double p[3];
    for (int r = 0; r < 3; r++)
        p[r] = w2c[4 * r] * c[0] + w2c[4 * r + 1] * c[1] + w2c[4 * r + 2] * c[2] + w2c[4 * r + 3];
    if (!(p[2] > 1e-6)) return -1; // behind the camera
    // K puts pixel centres at +0.5, dlib at integers
    const double u = K[0] * p[0] / p[2] + K[1] * p[1] / p[2] + K[2] - 0.5, v = K[4] * p[1] / p[2] + K[5] - 0.5;
    const double half = K[0] * LANDMARKS_FACE_RADIUS / p[2];
    if (!(u >= 0 && u <= W - 1 && v >= 0 && v <= H - 1) || !(half >= 1 && half < 1e6)) return -1;
    // corners at the projected extent rounded to pixel centres; dlib maps the shape's (0,0) and (1,1) onto them
    const long side = (long)floor(2 * half + 0.5);
    box->left = (long)floor(u - half + 0.5), box->top = (long)floor(v - half + 0.5);
    box->right = box->left + side, box->bottom = box->top + side;
    return 0;
}
