// ava256_calib.c — camera_calibration.json: {"KRT": [{cameraId, K, distortion, T, ...}, ...]}.
// K and T are stored TRANSPOSED (row-vector layout): K = json.K^T, R[i][j] = json.T[j][i],
// t[i] = json.T[3][i] (mm; converted to metres here). K is in native 2668x4096 pixels.
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ava256_internal.h"
#include "util.h"

#define CALIB_MAX_BYTES ((size_t)64 << 20)

// Reads a rows x cols array of numbers into m (json row-major). 0 on success.
static int json_matrix(const cJSON *a, int rows, int cols, double *m) {
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != rows) return -1;
    for (int i = 0; i < rows; i++) {
        const cJSON *r = cJSON_GetArrayItem(a, i);
        if (!cJSON_IsArray(r) || cJSON_GetArraySize(r) != cols) return -1;
        for (int j = 0; j < cols; j++) {
            const cJSON *v = cJSON_GetArrayItem(r, j);
            if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return -1;
            m[i * cols + j] = v->valuedouble;
        }
    }
    return 0;
}

// Max |R R^T - I| for a row-major 3x3 block with row stride `stride`.
static double orth_error(const double *R, int stride) {
    double e = 0;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            double d = 0;
            for (int k = 0; k < 3; k++) d += R[i * stride + k] * R[j * stride + k];
            d -= (i == j);
            if (fabs(d) > e) e = fabs(d);
        }
    return e;
}

static double det3(const double *R, int s) {
    return R[0] * (R[s + 1] * R[2 * s + 2] - R[s + 2] * R[2 * s + 1]) -
           R[1] * (R[s] * R[2 * s + 2] - R[s + 2] * R[2 * s]) + R[2] * (R[s] * R[2 * s + 1] - R[s + 1] * R[2 * s]);
}

static int valid_id(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n >= AVA256_ID_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

static int parse_camera(const cJSON *o, int idx, const char *path, Ava256Calib *c, char *err, size_t errlen) {
    memset(c, 0, sizeof *c);
    if (!cJSON_IsObject(o)) return error_set(err, errlen, "%s: KRT[%d] must be an object", path, idx);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "cameraId");
    if (!cJSON_IsString(id) || !valid_id(id->valuestring))
        return error_set(err, errlen,
                        "%s: KRT[%d]: field 'cameraId' must be a string of 1-%d letters/digits (e.g. \"400101\")",
                        path, idx, AVA256_ID_MAX - 1);
    strcpy(c->id, id->valuestring);
    const cJSON *pm = cJSON_GetObjectItemCaseSensitive(o, "projectionModel");
    if (pm && !(cJSON_IsString(pm) && strcmp(pm->valuestring, "Pinhole") == 0))
        return error_set(err, errlen, "%s: camera '%s': field 'projectionModel' must be \"Pinhole\"", path, c->id);

    double k[9];
    if (json_matrix(cJSON_GetObjectItemCaseSensitive(o, "K"), 3, 3, k) != 0)
        return error_set(err, errlen, "%s: camera '%s': field 'K' must be a 3x3 array of numbers", path, c->id);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) c->K[i * 3 + j] = k[j * 3 + i]; // stored transposed
    // exact 0/1 in the released files; a float32 round trip elsewhere must not break the check
    if (fabs(c->K[3]) > 1e-6 || fabs(c->K[6]) > 1e-6 || fabs(c->K[7]) > 1e-6 || fabs(c->K[8] - 1) > 1e-6 ||
        !(c->K[0] > 0) || !(c->K[4] > 0)) {
        int untransposed = fabs(k[2]) > 1e-6 || fabs(k[5]) > 1e-6;
        return error_set(err, errlen,
                        "%s: camera '%s': field 'K' must be the transposed pinhole matrix "
                        "[[fx,0,0],[s,fy,0],[cx,cy,1]] with fx, fy > 0%s",
                        path, c->id, untransposed ? " (this one looks untransposed or is not a pinhole K)" : "");
    }

    double t[16];
    if (json_matrix(cJSON_GetObjectItemCaseSensitive(o, "T"), 4, 4, t) != 0)
        return error_set(err, errlen, "%s: camera '%s': field 'T' must be a 4x4 array of numbers", path, c->id);
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 3; j++) c->w2c[i * 4 + j] = t[j * 4 + i];
        c->w2c[i * 4 + 3] = t[3 * 4 + i] * 1e-3; // mm -> m
    }
    if (fabs(t[3]) > 1e-6 || fabs(t[7]) > 1e-6 || fabs(t[11]) > 1e-6 || fabs(t[15] - 1) > 1e-6)
        return error_set(err, errlen,
                        "%s: camera '%s': field 'T' must be the transposed rigid transform (column 3 = 0,0,0,1; "
                        "row 3 = translation in mm)",
                        path, c->id);
    double oe = orth_error(c->w2c, 4);
    if (oe > 1e-3 || det3(c->w2c, 4) <= 0)
        return error_set(err, errlen,
                        "%s: camera '%s': field 'T' must hold a rotation (|R R^T - I| = %.3g, det = %.6f)", path,
                        c->id, oe, det3(c->w2c, 4));

    const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "distortion");
    if (d) { // ignored (the images are undistorted), but a malformed value still means a broken file
        if (!cJSON_IsArray(d) || cJSON_GetArraySize(d) > 8)
            return error_set(err, errlen, "%s: camera '%s': field 'distortion' must be an array of up to 8 numbers",
                            path, c->id);
        for (int i = 0; i < cJSON_GetArraySize(d); i++) {
            const cJSON *v = cJSON_GetArrayItem(d, i);
            if (!cJSON_IsNumber(v))
                return error_set(err, errlen, "%s: camera '%s': field 'distortion' must be an array of numbers",
                                path, c->id);
            if (i < 4) c->distortion[i] = v->valuedouble;
        }
    }
    return AVA256_OK;
}

int ava256_read_calibration(const char *path, Ava256Calib **cams, int *n, char *err, size_t errlen) {
    *cams = NULL;
    *n = 0;
    char *text;
    size_t len;
    int r = ava_slurp(path, CALIB_MAX_BYTES, &text, &len, err, errlen);
    if (r == AVA256_MISSING) return error_set(err, errlen, "%s: not found (every capture has one)", path);
    if (r != AVA256_OK) return r;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        int line = 1, col = 1;
        for (const char *p = text; end && p < end && p < text + len; p++) {
            if (*p == '\n') line++, col = 1;
            else col++;
        }
        free(text);
        return error_set(err, errlen, "%s: malformed JSON near line %d, column %d", path, line, col);
    }
    free(text);
    const cJSON *krt = cJSON_GetObjectItemCaseSensitive(root, "KRT");
    if (!cJSON_IsArray(krt) || cJSON_GetArraySize(krt) == 0) {
        cJSON_Delete(root);
        return error_set(err, errlen, "%s: field 'KRT' must be a non-empty array of cameras", path);
    }
    int m = cJSON_GetArraySize(krt);
    Ava256Calib *c = callocCheck((size_t)m, sizeof *c);
    for (int i = 0; i < m; i++) {
        if (parse_camera(cJSON_GetArrayItem(krt, i), i, path, &c[i], err, errlen) != AVA256_OK) {
            free(c);
            cJSON_Delete(root);
            return AVA256_ERROR;
        }
        for (int j = 0; j < i; j++)
            if (strcmp(c[j].id, c[i].id) == 0) {
                error_set(err, errlen, "%s: camera '%s' appears twice (KRT[%d] and KRT[%d])", path, c[i].id, j, i);
                free(c);
                cJSON_Delete(root);
                return AVA256_ERROR;
            }
    }
    cJSON_Delete(root);
    *cams = c;
    *n = m;
    return AVA256_OK;
}
