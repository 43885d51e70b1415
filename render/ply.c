// ply.c — 3DGS PLY writer/reader (see ply.h).
#include "ply.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"

// the 17 properties we write, in Inria's order (no f_rest: SH degree 0)
static const char *const PROPS[] = {"x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
                                    "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"};
#define NPROPS 17

void ply_alloc(PlyGaussians *p, size_t n) {
    p->n = n;
    p->xyz = (float *)callocCheck(n * 3 + 1, 4);
    p->f_dc = (float *)callocCheck(n * 3 + 1, 4);
    p->opacity = (float *)callocCheck(n + 1, 4);
    p->scale = (float *)callocCheck(n * 3 + 1, 4);
    p->rot = (float *)callocCheck(n * 4 + 1, 4);
}

void ply_free(PlyGaussians *p) {
    free(p->xyz), free(p->f_dc), free(p->opacity), free(p->scale), free(p->rot);
    memset(p, 0, sizeof *p);
}

size_t ply_from_activated(PlyGaussians *p, const float *means, const float *quats, const float *scales,
                          const float *opacities, const float *colors) {
    size_t clamped = 0;
    for (size_t i = 0; i < p->n; i++) {
        int bad = 0;
        for (int k = 0; k < 3; k++) {
            p->xyz[i * 3 + k] = means[i * 3 + k];
            p->f_dc[i * 3 + k] = (float)((colors[i * 3 + k] - 0.5) / PLY_SH_C0);
            double s = scales[i * 3 + k];
            if (!(s > 1e-30)) s = 1e-30, bad = 1;
            p->scale[i * 3 + k] = (float)log(s);
        }
        double o = opacities[i];
        if (!(o >= 1e-6 && o <= 1 - 1e-6)) o = o > 0.5 ? 1 - 1e-6 : 1e-6, bad = 1;
        p->opacity[i] = (float)log(o / (1 - o));
        for (int k = 0; k < 4; k++) p->rot[i * 4 + k] = quats[i * 4 + k];
        clamped += bad;
    }
    return clamped;
}

void ply_to_activated(const PlyGaussians *p, float *means, float *quats, float *scales, float *opacities,
                      float *colors) {
    for (size_t i = 0; i < p->n; i++) {
        for (int k = 0; k < 3; k++) {
            means[i * 3 + k] = p->xyz[i * 3 + k];
            colors[i * 3 + k] = (float)(0.5 + PLY_SH_C0 * p->f_dc[i * 3 + k]);
            scales[i * 3 + k] = (float)exp(p->scale[i * 3 + k]);
        }
        opacities[i] = (float)(1 / (1 + exp(-(double)p->opacity[i])));
        const float *q = p->rot + i * 4;
        double n = sqrt((double)q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
        for (int k = 0; k < 4; k++) quats[i * 4 + k] = n > 1e-12 ? (float)(q[k] / n) : (k == 0);
    }
}

void ply_write(const char *path, const PlyGaussians *p) {
    uint32_t one = 1;
    if (*(const unsigned char *)&one != 1) FATAL("PLY writing assumes a little-endian host");
    AtomicFile af;
    atomicOpen(&af, path);
    fprintf(af.f, "ply\nformat binary_little_endian 1.0\ncomment written by avat3r.c\nelement vertex %zu\n", p->n);
    for (int i = 0; i < NPROPS; i++) fprintf(af.f, "property float %s\n", PROPS[i]);
    fprintf(af.f, "end_header\n");
    float row[NPROPS];
    for (size_t i = 0; i < p->n; i++) {
        float v[NPROPS] = {p->xyz[i * 3], p->xyz[i * 3 + 1], p->xyz[i * 3 + 2], 0, 0, 0,
                           p->f_dc[i * 3], p->f_dc[i * 3 + 1], p->f_dc[i * 3 + 2], p->opacity[i],
                           p->scale[i * 3], p->scale[i * 3 + 1], p->scale[i * 3 + 2],
                           p->rot[i * 4], p->rot[i * 4 + 1], p->rot[i * 4 + 2], p->rot[i * 4 + 3]};
        memcpy(row, v, sizeof row);
        fwriteCheck(row, sizeof row, 1, af.f);
    }
    atomicClose(&af);
}

#define FAIL(...) FAIL_FILE(path, __VA_ARGS__)

int ply_read(const char *path, PlyGaussians *p, char *err, size_t errlen) {
    memset(p, 0, sizeof *p);
    float *row = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open PLY file", path);
        return -1;
    }
    char line[512];
    int nprop = 0, idx[NPROPS], in_vertex = 0, seen_format = 0;
    for (int i = 0; i < NPROPS; i++) idx[i] = -1;
    long long count = -1;
    if (!fgets(line, sizeof line, f) || strncmp(line, "ply", 3)) FAIL("not a PLY file (no 'ply' magic line)");
    for (int ln = 2;; ln++) {
        if (!fgets(line, sizeof line, f)) FAIL("header ends before 'end_header'");
        line[strcspn(line, "\r\n")] = 0;
        char a[64] = "", b[64] = "", c[128] = "";
        int nf = sscanf(line, "%63s %63s %127s", a, b, c);
        if (!strcmp(a, "end_header")) break;
        if (!strcmp(a, "comment") || !strcmp(a, "obj_info") || nf <= 0) continue;
        if (!strcmp(a, "format")) {
            if (strcmp(b, "binary_little_endian")) FAIL("header line %d: format '%s' (only binary_little_endian is read)", ln, b);
            seen_format = 1;
        } else if (!strcmp(a, "element")) {
            if (!strcmp(b, "vertex")) {
                if (count >= 0) FAIL("header line %d: a second vertex element", ln);
                char *end;
                count = strtoll(c, &end, 10);
                if (*end || count < 0 || count > (1LL << 31)) FAIL("header line %d: bad vertex count '%s'", ln, c);
                in_vertex = 1;
            } else {
                if (in_vertex) FAIL("header line %d: element '%s' after the vertices is not supported", ln, b);
                FAIL("header line %d: element '%s' before the vertices is not supported", ln, b);
            }
        } else if (!strcmp(a, "property")) {
            if (!in_vertex) FAIL("header line %d: property outside the vertex element", ln);
            if (strcmp(b, "float") && strcmp(b, "float32"))
                FAIL("header line %d: property '%s' has type '%s' (only float is read)", ln, c, b);
            for (int i = 0; i < NPROPS; i++)
                if (!strcmp(c, PROPS[i])) idx[i] = nprop;
            nprop++;
        } else {
            FAIL("header line %d: unexpected '%s'", ln, a);
        }
    }
    if (!seen_format) FAIL("no 'format' line in the header");
    if (count < 0) FAIL("no 'element vertex' in the header");
    for (int i = 0; i < NPROPS; i++)
        if (idx[i] < 0 && (i < 3 || i > 5)) FAIL("missing vertex property '%s'", PROPS[i]); // normals optional
    long start = ftell(f);
    int64_t size = file_size(f);
    if (size - start != (int64_t)count * nprop * 4)
        FAIL("%lld vertices of %d floats need %lld bytes after the header, found %lld (truncated or trailing data)",
             count, nprop, (long long)count * nprop * 4, (long long)(size - start));
    ply_alloc(p, (size_t)count);
    row = (float *)mallocCheck(sizeof(float) * nprop);
    for (long long i = 0; i < count; i++) {
        if (fread(row, 4, (size_t)nprop, f) != (size_t)nprop) FAIL("short read at vertex %lld", i);
        for (int k = 0; k < 3; k++) {
            p->xyz[i * 3 + k] = row[idx[k]];
            p->f_dc[i * 3 + k] = row[idx[6 + k]];
            p->scale[i * 3 + k] = row[idx[10 + k]];
        }
        p->opacity[i] = row[idx[9]];
        for (int k = 0; k < 4; k++) p->rot[i * 4 + k] = row[idx[13 + k]];
    }
    free(row);
    fclose(f);
    return 0;
fail:
    free(row);
    ply_free(p);
    fclose(f);
    return -1;
}
