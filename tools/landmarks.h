// landmarks.h — dlib's ensemble-of-regression-trees shape predictor (Kazemi & Sullivan 2014), read from
// dlib's own serialized model file (shape_predictor_68_face_landmarks.dat) and run in C, and the AKD
// metric built on it (issue #6). docs/akd.md has the file format, the algorithm and the face-box rule.
//
// The predictor follows dlib 19.24's shape_predictor::operator() step by step, so its points rounded to
// the nearest pixel (floor(x + 0.5), as dlib's full_object_detection stores them) are dlib's points;
// tests/test_landmarks.c checks that against libdlib on rendered heads.
#ifndef AVAT3R_LANDMARKS_H
#define AVAT3R_LANDMARKS_H

#include <stddef.h>
#include <stdint.h>

#define LANDMARKS_DLIB_68 "/usr/share/dlib/shape_predictor_68_face_landmarks.dat"

typedef struct {
    int n_parts;           // landmarks per shape (68)
    int n_cascades;        // cascade levels (15)
    int n_trees;           // trees over all levels
    float *initial;        // [2 n_parts] mean shape, box-normalized ((0,0) = top-left, (1,1) = bottom-right)
    int *level_tree;       // [n_cascades + 1] first tree of each level
    int *level_feat;       // [n_cascades + 1] first feature pixel of each level
    int *tree_split;       // [n_trees + 1] first split of each tree (a tree has n splits and n + 1 leaves)
    uint32_t *split_idx;   // [splits, 2] the two feature pixels a split compares (within its level)
    float *split_thresh;   // [splits]
    float *leaf;           // [leaves, 2 n_parts] shape increments; tree t's leaves start at tree_split[t] + t
    uint32_t *anchor;      // [features] the landmark each feature pixel hangs on
    float *delta;          // [features, 2] offset from that landmark in the mean shape
} LandmarkModel;

// dlib's rectangle: inclusive pixel bounds (right = left + width - 1).
typedef struct {
    long left, top, right, bottom;
} LandmarkBox;

// Reads a dlib shape_predictor file. 0, or -1 with "path: field: what is wrong" in err (truncated,
// foreign, inconsistent counts); never allocates more than the file's length can justify.
int landmarks_load(LandmarkModel *m, const char *path, char *err, size_t errlen);
void landmarks_free(LandmarkModel *m);

// Runs the cascade on an 8-bit image: channels 1 (gray) or 3 (RGB, intensity (r + g + b) / 3 in integers,
// dlib's get_pixel_intensity of an rgb_pixel); stride in bytes between rows. pts [2 n_parts]: (x, y) in
// pixels before dlib's final rounding (pixel centres at integers). Feature pixels outside the image read 0.
void landmarks_predict(const LandmarkModel *m, const uint8_t *img, int W, int H, int stride, int channels,
                       LandmarkBox box, double *pts);

// Mean Euclidean distance between two shapes of n points [n, 2].
double landmarks_mean_distance(const double *a, const double *b, int n);

// AKD of one image pair: landmarks on the prediction and on the ground truth, same box, same model; the mean
// distance in pixels. RGB8 images of W x H, rows packed.
double landmarks_akd(const LandmarkModel *m, const uint8_t *pred_rgb, const uint8_t *gt_rgb, int W, int H,
                     LandmarkBox box);

// The face box of a head seen by a camera (docs/akd.md "Face box"): the head-frame face centre
// LANDMARKS_FACE_CENTRE projected by K [3, 3] · w2c [3, 4] (world = head frame, metres; K's pixel centres at
// +0.5), half-size fx · LANDMARKS_FACE_RADIUS / depth, square, corners rounded to pixel centres. 0, or -1 when
// the face centre is behind the camera or projects outside the W x H image (a box that only partly leaves the
// image is kept: its outside pixels read 0, as in dlib).
#define LANDMARKS_FACE_RADIUS 0.075
extern const double LANDMARKS_FACE_CENTRE[3];
int landmarks_face_box(const float *w2c, const float *K, int W, int H, LandmarkBox *box);

#endif
