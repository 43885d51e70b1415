// ava256.c — opening one ava256 capture: frame_list.csv, head_pose.zip, the camera set
// (calibration ∩ non-empty image zips) with each zip indexed by member basename, optional masks, part
// labels and background plates. Layout and pitfalls: shared/reference/ava256_format.md §2-§3.
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zip.h>

#include "ava256_internal.h"
#include "util.h"

#define CSV_MAX_BYTES ((size_t)64 << 20)
#define HEAD_POSE_MAX_BYTES 4096

// ---------------------------------------------------------------------------------------------------
// CSV: a line splitter good for the dataset's two small files (no quoted commas, optional quotes).

// Splits `line` in place at commas; trims blanks and one pair of surrounding double quotes.
static int csv_split(char *line, char **fields, int max) {
    int n = 0;
    char *p = line;
    for (;;) {
        char *comma = strchr(p, ',');
        if (comma) *comma = 0;
        while (*p == ' ' || *p == '\t') p++;
        char *e = p + strlen(p);
        while (e > p && (e[-1] == ' ' || e[-1] == '\t')) *--e = 0;
        if (e - p >= 2 && p[0] == '"' && e[-1] == '"') {
            e[-1] = 0;
            p++;
        }
        if (n < max) fields[n] = p;
        n++;
        if (!comma) break;
        p = comma + 1;
    }
    return n;
}

// Next line of a NUL-terminated buffer (handles \r\n); NULL at the end.
static char *next_line(char **cursor) {
    char *s = *cursor;
    if (!s || !*s) return NULL;
    char *nl = strchr(s, '\n');
    if (nl) {
        *nl = 0;
        *cursor = nl + 1;
    } else {
        *cursor = s + strlen(s);
    }
    size_t n = strlen(s);
    if (n && s[n - 1] == '\r') s[n - 1] = 0;
    return s;
}

static int is_blank(const char *s) {
    for (; *s; s++)
        if (*s != ' ' && *s != '\t') return 0;
    return 1;
}

static int parse_uint(const char *s, int64_t *v) {
    int64_t x = 0;
    int nd = 0;
    for (; *s; s++, nd++) {
        if (*s < '0' || *s > '9' || nd >= 18) return 0;
        x = x * 10 + (*s - '0');
    }
    if (nd == 0) return 0;
    *v = x;
    return 1;
}

typedef struct {
    int64_t id;
    int idx;
} IdIdx;

static int cmp_ididx(const void *a, const void *b) {
    const IdIdx *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id ? 1 : x->idx - y->idx;
}

static int parse_frame_list(Ava256Capture *cap, char *err, size_t errlen) {
    char path[4200];
    snprintf(path, sizeof path, "%s/frame_list.csv", cap->dir);
    char *text;
    size_t len;
    int r = ava_slurp(path, CSV_MAX_BYTES, &text, &len, err, errlen);
    if (r == AVA256_MISSING) return error_set(err, errlen, "%s: not found (every capture has one)", path);
    if (r != AVA256_OK) return r;
    char *cur = text;
    if ((unsigned char)cur[0] == 0xEF && (unsigned char)cur[1] == 0xBB && (unsigned char)cur[2] == 0xBF) cur += 3;
    char *fields[16];
    char *line = next_line(&cur);
    int ncols = line ? csv_split(line, fields, 16) : 0, col_seg = -1, col_frame = -1;
    for (int i = 0; i < ncols && i < 16; i++) {
        if (strcmp(fields[i], "seg_id") == 0) col_seg = i;
        if (strcmp(fields[i], "frame_id") == 0) col_frame = i;
    }
    if (col_seg < 0 || col_frame < 0) {
        free(text);
        return error_set(err, errlen, "%s:1: header must name the columns 'seg_id' and 'frame_id'", path);
    }
    int cap_frames = 1024, lineno = 1;
    cap->frames = mallocCheck(cap_frames * sizeof *cap->frames);
    int *lines = mallocCheck(cap_frames * sizeof(int));
    while ((line = next_line(&cur))) {
        lineno++;
        if (is_blank(line)) continue;
        int n = csv_split(line, fields, 16);
        if (n != ncols) {
            free(text), free(lines);
            return error_set(err, errlen, "%s:%d: expected %d fields like the header, got %d", path, lineno, ncols, n);
        }
        int64_t id;
        if (!parse_uint(fields[col_frame], &id)) {
            error_set(err, errlen, "%s:%d: field 'frame_id' must be a non-negative integer, got '%.40s'", path, lineno,
                     fields[col_frame]);
            free(text), free(lines);
            return AVA256_ERROR;
        }
        if (!fields[col_seg][0]) {
            free(text), free(lines);
            return error_set(err, errlen, "%s:%d: field 'seg_id' is empty", path, lineno);
        }
        if (cap->n_frames == cap_frames) {
            cap_frames *= 2;
            Ava256Frame *nf = mallocCheck(cap_frames * sizeof *nf);
            memcpy(nf, cap->frames, cap->n_frames * sizeof *nf);
            free(cap->frames);
            cap->frames = nf;
            int *nl = mallocCheck(cap_frames * sizeof(int));
            memcpy(nl, lines, cap->n_frames * sizeof(int));
            free(lines);
            lines = nl;
        }
        int seq = -1;
        for (int s = 0; s < cap->n_seqs; s++)
            if (strcmp(cap->seq_names[s], fields[col_seg]) == 0) seq = s;
        if (seq < 0) {
            char **ns = mallocCheck((cap->n_seqs + 1) * sizeof(char *));
            if (cap->n_seqs) memcpy(ns, cap->seq_names, cap->n_seqs * sizeof(char *));
            free(cap->seq_names);
            cap->seq_names = ns;
            ns[cap->n_seqs] = mallocCheck(strlen(fields[col_seg]) + 1);
            strcpy(ns[cap->n_seqs], fields[col_seg]);
            seq = cap->n_seqs++;
        }
        Ava256Frame *f = &cap->frames[cap->n_frames];
        memset(f, 0, sizeof *f);
        f->id = id;
        f->seq = seq;
        f->expr_row = -1;
        lines[cap->n_frames++] = lineno;
    }
    free(text);
    if (cap->n_frames == 0) {
        free(lines);
        return error_set(err, errlen, "%s: no frames after the header", path);
    }
    IdIdx *order = mallocCheck(cap->n_frames * sizeof *order);
    for (int i = 0; i < cap->n_frames; i++) order[i] = (IdIdx){cap->frames[i].id, i};
    qsort(order, cap->n_frames, sizeof *order, cmp_ididx);
    cap->frame_order = mallocCheck(cap->n_frames * sizeof(int));
    for (int i = 0; i < cap->n_frames; i++) {
        cap->frame_order[i] = order[i].idx;
        if (i > 0 && order[i].id == order[i - 1].id) {
            error_set(err, errlen, "%s:%d: frame id %lld repeats line %d", path, lines[order[i].idx],
                     (long long)order[i].id, lines[order[i - 1].idx]);
            free(order), free(lines);
            return AVA256_ERROR;
        }
    }
    free(order);
    free(lines);
    return AVA256_OK;
}

int ava256_find_frame(const Ava256Capture *cap, int64_t frame_id) {
    int lo = 0, hi = cap->n_frames - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int64_t v = cap->frames[cap->frame_order[mid]].id;
        if (v == frame_id) return cap->frame_order[mid];
        if (v < frame_id) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

int ava256_find_camera(const Ava256Capture *cap, const char *id) {
    for (int c = 0; c < cap->n_cams; c++)
        if (strcmp(cap->cams[c].calib.id, id) == 0) return c;
    return -1;
}

// ---------------------------------------------------------------------------------------------------
// Head poses: {frame:06d}.txt, 3 rows x 4 numbers, head->world, mm.

static int parse_head_pose(const char *text, double m[12]) {
    const char *p = text;
    for (int i = 0; i < 12; i++) {
        char *end;
        m[i] = strtod(p, &end);
        if (end == p || !isfinite(m[i])) return -1;
        p = end;
    }
    for (; *p; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') return -1;
    return 0;
}

static int load_head_poses(Ava256Capture *cap, char *err, size_t errlen) {
    char zpath[4200];
    snprintf(zpath, sizeof zpath, "%s/head_pose/head_pose.zip", cap->dir);
    struct zip *z;
    int r = ava_zip_open(zpath, &z, err, errlen);
    if (r == AVA256_MISSING) return error_set(err, errlen, "%s: not found (the head->world pose of every frame)", zpath);
    if (r != AVA256_OK) return r;
    int64_t n = ava_zip_count(z);
    for (int64_t e = 0; e < n; e++) {
        const char *name = ava_zip_name(z, e);
        int64_t id;
        if (!ava_frame_member(ava_basename(name), ".txt", &id)) continue;
        int f = ava256_find_frame(cap, id);
        if (f < 0) continue; // a pose for a frame the list does not use
        if (cap->frames[f].has_head_pose) {
            r = error_set(err, errlen, "%s: member '%s': a second pose for frame %lld", zpath, name, (long long)id);
            zip_discard(z); // frees `name`: format first
            return r;
        }
        size_t len;
        r = ava_zip_read(z, zpath, e, &cap->buf, &cap->buf_cap, &len, err, errlen);
        if (r != AVA256_OK) {
            zip_discard(z);
            return r;
        }
        if (len > HEAD_POSE_MAX_BYTES) {
            r = error_set(err, errlen, "%s: member '%s': %zu bytes; expected a 3x4 text matrix", zpath, name, len);
            zip_discard(z);
            return r;
        }
        cap->buf[len] = 0;
        double m[12];
        double oe = 0;
        if (parse_head_pose((const char *)cap->buf, m) == 0) {
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 3; j++) {
                    double d = -(i == j);
                    for (int k = 0; k < 3; k++) d += m[i * 4 + k] * m[j * 4 + k];
                    oe = fmax(oe, fabs(d));
                }
        } else {
            oe = INFINITY;
        }
        if (!(oe < 1e-3)) {
            r = error_set(err, errlen, "%s: member '%s': expected 3 rows of 4 numbers [R|t] with R a rotation%s",
                         zpath, name, isinf(oe) ? "" : " (R is not orthonormal)");
            zip_discard(z);
            return r;
        }
        for (int i = 0; i < 3; i++) m[i * 4 + 3] *= 1e-3; // mm -> m
        memcpy(cap->frames[f].head, m, sizeof m);
        cap->frames[f].has_head_pose = 1;
    }
    zip_discard(z);
    for (int f = 0; f < cap->n_frames; f++) cap->n_missing_head_pose += !cap->frames[f].has_head_pose;
    return AVA256_OK;
}

// ---------------------------------------------------------------------------------------------------
// Per-camera zips, indexed by basename {digits}{ext} (".avif", ".png") -> frame index.

static int index_frames(Ava256Capture *cap, struct zip *z, const char *zpath, const char *ext, int64_t *member,
                        int *count, char *err, size_t errlen) {
    for (int f = 0; f < cap->n_frames; f++) member[f] = -1;
    *count = 0;
    int64_t n = ava_zip_count(z);
    for (int64_t e = 0; e < n; e++) {
        const char *name = ava_zip_name(z, e);
        int64_t id;
        if (!ava_frame_member(ava_basename(name), ext, &id)) continue; // directories, stray files
        int f = ava256_find_frame(cap, id);
        if (f < 0) continue;
        if (member[f] >= 0)
            return error_set(err, errlen, "%s: members '%s' and '%s' are both frame %lld", zpath,
                            ava_zip_name(z, member[f]), name, (long long)id);
        member[f] = e;
        (*count)++;
    }
    return AVA256_OK;
}

static void exclude(Ava256Capture *cap, const char *id, const char *reason) {
    Ava256Excluded *e = &cap->excluded[cap->n_excluded++];
    snprintf(e->id, sizeof e->id, "%s", id);
    snprintf(e->reason, sizeof e->reason, "%s", reason);
}

// An optional per-camera zip (foreground_masks/, segmentation_parts/: some cameras' zips are not in the
// release): DIR/cam{id}.zip opened and indexed by frame when present (*z NULL when absent), *has set then.
static int open_optional_zip(Ava256Capture *cap, const char *dir, const char *id, const char *ext, struct zip **z,
                             int64_t **member, int *has, char *err, size_t errlen) {
    char zpath[4400];
    snprintf(zpath, sizeof zpath, "%s/cam%s.zip", dir, id);
    if (ava_zip_open(zpath, z, err, errlen) == AVA256_ERROR) return AVA256_ERROR;
    if (!*z) return AVA256_OK;
    int cnt;
    *member = mallocCheck(cap->n_frames * sizeof(int64_t));
    if (index_frames(cap, *z, zpath, ext, *member, &cnt, err, errlen) != AVA256_OK) return AVA256_ERROR;
    *has = 1;
    return AVA256_OK;
}

static int open_cameras(Ava256Capture *cap, char *err, size_t errlen) {
    char path[4200];
    snprintf(path, sizeof path, "%s/camera_calibration.json", cap->dir);
    Ava256Calib *calib;
    int n;
    if (ava256_read_calibration(path, &calib, &n, err, errlen) != AVA256_OK) return AVA256_ERROR;
    cap->cams = callocCheck((size_t)n, sizeof *cap->cams);
    cap->excluded = callocCheck((size_t)n, sizeof *cap->excluded);
    char mdir[4200], pdir[4200];
    snprintf(mdir, sizeof mdir, "%s/foreground_masks", cap->dir);
    snprintf(pdir, sizeof pdir, "%s/segmentation_parts", cap->dir);
    int masks_dir = ava_is_dir(mdir), parts_dir = ava_is_dir(pdir);
    for (int i = 0; i < n; i++) {
        char zpath[4400], why[160];
        snprintf(zpath, sizeof zpath, "%s/image/cam%s.zip", cap->dir, calib[i].id);
        struct zip *z;
        struct stat st;
        if (stat(zpath, &st) == 0 && st.st_size == 0) { // an empty download: no data, like a missing zip
            snprintf(why, sizeof why, "image/cam%s.zip is empty (0 bytes)", calib[i].id);
            exclude(cap, calib[i].id, why);
            continue;
        }
        int r = ava_zip_open(zpath, &z, err, errlen);
        if (r == AVA256_MISSING) {
            snprintf(why, sizeof why, "no image/cam%s.zip", calib[i].id);
            exclude(cap, calib[i].id, why);
            continue;
        }
        if (r != AVA256_OK) {
            free(calib);
            return r;
        }
        Ava256Camera *c = &cap->cams[cap->n_cams];
        c->calib = calib[i];
        c->img = z;
        c->bg_member = -1;
        c->img_member = mallocCheck(cap->n_frames * sizeof(int64_t));
        cap->n_cams++; // owned by cap from here on: ava256_close releases it on any error below
        if (index_frames(cap, z, zpath, ".avif", c->img_member, &c->n_images, err, errlen) != AVA256_OK) {
            free(calib);
            return AVA256_ERROR;
        }
        if (c->n_images == 0) {
            snprintf(why, sizeof why, "image/cam%s.zip holds no image of a frame in frame_list.csv", calib[i].id);
            zip_discard(z);
            free(c->img_member);
            memset(c, 0, sizeof *c);
            cap->n_cams--;
            exclude(cap, calib[i].id, why);
            continue;
        }
        if ((masks_dir && open_optional_zip(cap, mdir, calib[i].id, ".avif", &c->mask, &c->mask_member,
                                            &cap->has_masks, err, errlen) != AVA256_OK) ||
            (parts_dir && open_optional_zip(cap, pdir, calib[i].id, ".png", &c->parts, &c->parts_member,
                                            &cap->has_parts, err, errlen) != AVA256_OK)) {
            free(calib);
            return AVA256_ERROR;
        }
    }
    free(calib);
    if (cap->n_cams == 0)
        return error_set(err, errlen, "%s/image: no calibrated camera has a zip with images of frame_list.csv frames",
                        cap->dir);
    return AVA256_OK;
}

static int open_background(Ava256Capture *cap, char *err, size_t errlen) {
    char zpath[4200];
    snprintf(zpath, sizeof zpath, "%s/background_image/background_image.zip", cap->dir);
    int r = ava_zip_open(zpath, &cap->bg, err, errlen);
    if (r != AVA256_OK) return r == AVA256_MISSING ? AVA256_OK : r;
    int64_t n = ava_zip_count(cap->bg);
    for (int64_t e = 0; e < n; e++) {
        const char *base = ava_basename(ava_zip_name(cap->bg, e));
        size_t len = strlen(base);
        if (len <= 5 || len - 5 >= AVA256_ID_MAX || strcmp(base + len - 5, ".avif") != 0) continue;
        char id[AVA256_ID_MAX];
        memcpy(id, base, len - 5);
        id[len - 5] = 0;
        int c = ava256_find_camera(cap, id);
        if (c < 0) continue;
        if (cap->cams[c].bg_member >= 0)
            return error_set(err, errlen, "%s: two plates for camera '%s'", zpath, id);
        cap->cams[c].bg_member = e;
        cap->has_background = 1;
    }
    return AVA256_OK;
}

// ---------------------------------------------------------------------------------------------------

void ava256_close(Ava256Capture *cap) {
    for (int c = 0; c < cap->n_cams; c++) {
        if (cap->cams[c].img) zip_discard(cap->cams[c].img);
        if (cap->cams[c].mask) zip_discard(cap->cams[c].mask);
        if (cap->cams[c].parts) zip_discard(cap->cams[c].parts);
        free(cap->cams[c].img_member);
        free(cap->cams[c].mask_member);
        free(cap->cams[c].parts_member);
    }
    if (cap->bg) zip_discard(cap->bg);
    free(cap->cams);
    free(cap->excluded);
    free(cap->frames);
    free(cap->frame_order);
    for (int s = 0; s < cap->n_seqs; s++) free(cap->seq_names[s]);
    free(cap->seq_names);
    free(cap->present);
    free(cap->expr_ids);
    free(cap->expr);
    free(cap->buf);
    memset(cap, 0, sizeof *cap);
}

int ava256_open(Ava256Capture *cap, const char *path, int flags, char *err, size_t errlen) {
    memset(cap, 0, sizeof *cap);
    size_t pl = strlen(path);
    while (pl > 1 && path[pl - 1] == '/') pl--;
    if (pl > 3500) return error_set(err, errlen, "%.200s...: path too long", path);
    char probe[4200];
    snprintf(probe, sizeof probe, "%.*s/decoder", (int)pl, path);
    if (ava_is_dir(probe)) { // the capture folder {mcd}--{mct}--{sid}
        snprintf(cap->dir, sizeof cap->dir, "%.*s/decoder", (int)pl, path);
    } else if (ava_is_dir(path)) { // the decoder/ folder itself
        snprintf(cap->dir, sizeof cap->dir, "%.*s", (int)pl, path);
    } else {
        return error_set(err, errlen, "%s: not a folder; expected a capture's decoder/ folder or the folder above it",
                        path);
    }
    if (parse_frame_list(cap, err, errlen) != AVA256_OK || load_head_poses(cap, err, errlen) != AVA256_OK ||
        open_cameras(cap, err, errlen) != AVA256_OK || open_background(cap, err, errlen) != AVA256_OK ||
        ava_load_expr(cap, flags, err, errlen) != AVA256_OK) {
        ava256_close(cap);
        return AVA256_ERROR;
    }
    cap->present = callocCheck((size_t)cap->n_cams * cap->n_frames, 1);
    for (int c = 0; c < cap->n_cams; c++)
        for (int fr = 0; fr < cap->n_frames; fr++) {
            uint8_t p = cap->cams[c].img_member[fr] >= 0;
            cap->present[(size_t)c * cap->n_frames + fr] = p;
            cap->n_images += p;
        }
    cap->n_missing_images = (int64_t)cap->n_cams * cap->n_frames - cap->n_images;
    return AVA256_OK;
}

// ---------------------------------------------------------------------------------------------------

static int valid_token(const char *s) {
    if (!*s || strlen(s) > 64) return 0;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '-' ||
              *s == '_'))
            return 0;
    return 1;
}

void ava256_free_list(char **list, int n) {
    for (int i = 0; i < n; i++) free(list[i]);
    free(list);
}

int ava256_list_captures(const char *root, char ***dirs, int *n, char *err, size_t errlen) {
    *dirs = NULL;
    *n = 0;
    char path[4200];
    snprintf(path, sizeof path, "%s/256_ids.csv", root);
    char *text;
    size_t len;
    int r = ava_slurp(path, CSV_MAX_BYTES, &text, &len, err, errlen);
    if (r == AVA256_MISSING) return error_set(err, errlen, "%s: not found (columns mcd,sid,mct)", path);
    if (r != AVA256_OK) return r;
    char *cur = text, *fields[16], *line = next_line(&cur);
    int ncols = line ? csv_split(line, fields, 16) : 0, col[3] = {-1, -1, -1};
    const char *names[3] = {"mcd", "sid", "mct"};
    for (int i = 0; i < ncols && i < 16; i++)
        for (int k = 0; k < 3; k++)
            if (strcmp(fields[i], names[k]) == 0) col[k] = i;
    if (col[0] < 0 || col[1] < 0 || col[2] < 0) {
        free(text);
        return error_set(err, errlen, "%s:1: header must name the columns 'mcd', 'sid' and 'mct'", path);
    }
    int cap_n = 64, lineno = 1;
    char **out = mallocCheck(cap_n * sizeof(char *));
    while ((line = next_line(&cur))) {
        lineno++;
        if (is_blank(line)) continue;
        int m = csv_split(line, fields, 16);
        int bad = m != ncols;
        for (int k = 0; k < 3 && !bad; k++) bad = !valid_token(fields[col[k]]);
        if (bad) {
            ava256_free_list(out, *n);
            free(text);
            *n = 0;
            return error_set(err, errlen, "%s:%d: expected %d fields with mcd, sid and mct made of letters and digits",
                            path, lineno, ncols);
        }
        if (*n == cap_n) {
            cap_n *= 2;
            char **no = mallocCheck(cap_n * sizeof(char *));
            memcpy(no, out, *n * sizeof(char *));
            free(out);
            out = no;
        }
        size_t sz = strlen(root) + strlen(fields[col[0]]) + strlen(fields[col[1]]) + strlen(fields[col[2]]) + 8;
        out[*n] = mallocCheck(sz);
        snprintf(out[*n], sz, "%s/%s--%s--%s", root, fields[col[0]], fields[col[2]], fields[col[1]]);
        (*n)++;
    }
    free(text);
    *dirs = out;
    return AVA256_OK;
}
