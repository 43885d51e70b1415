// synth_head.h — procedural heads as 3D Gaussians, for `avat3r synth` (DESIGN.md §7).
//
// A head is built in the HEAD FRAME (metres, origin at the skull centre, +x = the subject's left,
// +y up, +z forward: the face looks along +z), like ava256's registered meshes. It has skin, hair,
// eyes (sclera, iris, lids, lashes), brows, nose, lips, teeth, tongue, mouth cavity, ears, neck and
// shoulders in clothes. Every Gaussian carries a semantic part label (SYNTH_PART_*).
//
// Identity parameters (shape, colours, hair) are drawn from (seed, subject). Expression parameters
// are SYNTH_NEXPR numbers per frame (smooth in time); head turn is rigid and lives in the head pose,
// not in the expression. The 256-d expression code is a fixed seeded linear map of the expression
// parameters (the same map for every seed, so a code means the same thing in every dataset).
//
// The synthetic world frame (millimetres in the files, metres inside): OpenCV-like, y down; the head
// centre rests at SYNTH_HEAD_CENTRE_MM and the face looks along world −z, towards the dome cameras.
#ifndef AVAT3R_SYNTH_HEAD_H
#define AVAT3R_SYNTH_HEAD_H

#include <stdint.h>

#include "ava256_write.h"
#include "raster.h"

// Semantic parts = the channels of the Sapiens-like maps (in this order).
enum {
    SYNTH_PART_SKIN,
    SYNTH_PART_NOSE,
    SYNTH_PART_EAR,
    SYNTH_PART_NECK,
    SYNTH_PART_HAIR,
    SYNTH_PART_BROW,
    SYNTH_PART_EYELID, // lids and lashes
    SYNTH_PART_SCLERA,
    SYNTH_PART_IRIS, // iris, pupil and the corneal highlight
    SYNTH_PART_UPPER_LIP,
    SYNTH_PART_LOWER_LIP,
    SYNTH_PART_UPPER_TEETH,
    SYNTH_PART_LOWER_TEETH,
    SYNTH_PART_TONGUE,
    SYNTH_PART_MOUTH, // the cavity behind the lips
    SYNTH_PART_CLOTHES,
    SYNTH_NPARTS
};
extern const char *const synth_part_names[SYNTH_NPARTS];
// ava256 segmentation_parts class of each part (0 bg, 1 Hair, 2 Body, 4 Apparel, 6 UpperLip,
// 7 LowerLip, 8 UpperTeeth, 9 LowerTeeth, 10 TongueVisible).
extern const uint8_t synth_part_ava_class[SYNTH_NPARTS];

// Expression parameters: all in [0, 1] except gaze in [−1, 1].
enum { SX_JAW_OPEN, SX_SMILE, SX_PUCKER, SX_BROW_RAISE, SX_BLINK, SX_TONGUE_OUT, SX_GAZE_X, SX_GAZE_Y, SYNTH_NEXPR };
extern const char *const synth_expr_names[SYNTH_NEXPR];
#define SYNTH_CODE_DIM 256
#define SYNTH_CODE_SEED 0x5EEDC0DEull // the fixed key of the expression-code map
#define SYNTH_KEY_PERIOD 4            // frame-id units between expression key poses

// The native ava256 sensor (portrait) and the synthetic rig.
#define SYNTH_NATIVE_W 2668
#define SYNTH_NATIVE_H 4096
extern const double SYNTH_HEAD_CENTRE_MM[3];

typedef struct {
    float shape[3];  // skull radius multipliers (width, height, depth)
    float jaw_taper; // how much the lower face narrows
    float chin;      // forward chin bump (m)
    float nose_len, nose_width, nose_depth, lip_full, mouth_width, ear_size, neck_width; // multipliers
    float eye_gap;                                                // half the distance between the eye centres (m)
    float hair_len;                                               // 0 = crop .. 1 = below the shoulders
    float hair_volume;                                            // hair shell thickness (m)
    float hairline;                                               // front hairline offset (m, + = receding)
    float skin[3], lip[3], hair[3], brow[3], iris[3], clothes[3]; // albedo RGB in [0, 1]
} SynthIdentity;

// Per frame: expression and rigid head motion (relative to the rest pose facing the cameras).
typedef struct {
    float expr[SYNTH_NEXPR];
    float yaw, pitch, roll; // radians, about the head's y, x, z axes
    float drift[3];         // head-centre offset, metres, world frame
} SynthFrame;

// The Gaussians of one head in the head frame (activated values, as the rasterizer takes them).
typedef struct {
    int n, cap;
    float *mean;   // [n, 3]
    float *quat;   // [n, 4] (w, x, y, z)
    float *scale;  // [n, 3] standard deviations
    float *opac;   // [n]
    float *rgb;    // [n, 3] albedo (shading is applied at render time, with a light fixed in the world)
    float *normal; // [n, 3] outward surface normal
    uint8_t *part; // [n]
} SynthHead;

// Rendered outputs of Cm cameras of W x H pixels.
typedef struct {
    int W, H, C;
    float *rgb;   // [C, H, W, 3] premultiplied colour (composite: rgb + (1 − alpha)·background)
    float *alpha; // [C, H, W]
    float *depth; // [C, H, W] expected camera-z depth in metres (0 where alpha is 0)
    float *parts; // [C, H, W, SYNTH_NPARTS] premultiplied part weights (sum = alpha)
    Raster r;     // cached rasterizer, rebuilt when the dimensions change
    int rG, rCm;
    float *buf; // world-space Gaussian scratch
    int buf_n;
} SynthRender;

void synth_identity(SynthIdentity *id, uint64_t seed, int subject);
// The frame at time t (frame-id units since the capture's first frame). neutral: the
// EXP_neutral_peak segment (expression 0, only a small drift of the head).
void synth_frame(SynthFrame *f, uint64_t seed, int subject, double t, int neutral);
// Head pose head->world (x_w = Rh x_h + th), th in metres.
void synth_head_pose(const SynthFrame *f, double Rh[9], double th[3]);
// code = M · expr with M [SYNTH_CODE_DIM, SYNTH_NEXPR], entries 0.5·N(0, 1) drawn from SYNTH_CODE_SEED.
void synth_expr_code(const float expr[SYNTH_NEXPR], float code[SYNTH_CODE_DIM]);
double synth_code_matrix(int row, int col);

void synth_head_build(SynthHead *h, const SynthIdentity *id, const float expr[SYNTH_NEXPR]);
void synth_head_free(SynthHead *h);

// n dome cameras around the head: rows at 2 or 3 elevations, azimuth −75°..75° facing the face, about
// 1.1 m away, with a small per-capture jitter drawn from (seed, subject); the last one (the extra camera
// that gets no data) sits behind-left. K in native 2668x4096 pixels (f ≈ 9000), world->camera with t in
// mm. Ids are "400101" + index.
void synth_dome(AvwCamera *cams, int n, uint64_t seed, int subject);
// Native K scaled per axis to a W x H image (fx·W/2668, cx·W/2668, fy·H/4096, cy·H/4096), and the
// world-to-camera matrix in metres, as float arrays the rasterizer takes.
void synth_camera_for_image(const AvwCamera *c, int W, int H, double K_img[9], double w2c_m[12]);

void synth_render(SynthRender *out, const SynthHead *h, const double Rh[9], const double th[3], int C,
                  const double *w2c_m, const double *K_img, int W, int H);
void synth_render_free(SynthRender *out);

// Background plate of one camera: a gently textured grey, RGB8 [H, W, 3].
void synth_plate(uint8_t *rgb8, int W, int H, uint64_t seed, int subject, int cam);
// Camera c of a render composited over the plate: RGB8 image and the 8-bit mask round(255·alpha),
// where alpha >= SYNTH_OPAQUE counts as 1 (colour divided by alpha; see synth_compose).
#define SYNTH_OPAQUE 0.995
void synth_compose(const SynthRender *r, int c, const uint8_t *plate, uint8_t *rgb8, uint8_t *mask8);
// ava256-style segmentation labels (synth_part_ava_class of the dominant part where alpha ≥ 0.5).
void synth_segmentation(const SynthRender *r, int c, uint8_t *labels);
// DUSt3R-like point map [H, W, 4]: world x, y, z in MILLIMETRES and a confidence in [0, 1].
// Foreground pixels: the true expected surface point plus seeded noise (σ 1.5 mm, more at the
// silhouette), confidence ≈ alpha²·(0.75..0.95); background: a noisy point on a 1.8 m sphere
// around the head (the dome), confidence 0.02..0.10. Noise is a pure function of
// (seed, subject, cam, frame_index, pixel).
void synth_dust3r(const SynthRender *r, int c, const double w2c_m[12], const double K_img[9], uint64_t seed,
                  int subject, int cam, int frame_index, float *out);
// Sapiens-like map [hs, ws, SYNTH_NPARTS]: the part weights averaged over each cell (area average of
// the pixels whose centres fall into the cell).
void synth_sapiens(const SynthRender *r, int c, int ws, int hs, float *out);

#endif
