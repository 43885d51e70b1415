// ava256.h — reader for one ava256 capture in its released on-disk layout (docs/formats.md "ava256 captures";
// the format itself: shared/reference/ava256_format.md). It parses the calibration, the frame list, the
// head poses and the expression-code sidecar at open, indexes every camera's image zip by member
// basename, and decodes single images (AVIF -> RGB8 / gray8, part-label PNG -> class indices) on demand.
//
// Units and conventions on the way out (docs/conventions.md): cameras are OpenCV world->camera [R|t],
// 3x4 row-major, translation in METRES (the files are in mm); K is row-major in native 2668x4096 sensor
// pixels (scale it to the decoded image with ava256_scale_K); head poses are head->world [R|t] in metres.
// Distortion coefficients are kept but ignored: the released images are already undistorted.
//
// Errors: functions that can fail take (err, errlen) and return AVA256_ERROR with a message that names
// the file, the field or zip member, and what was expected. A dropped image (a frame of frame_list.csv
// without a member in a camera's zip, ~0.1% of the real data) is not an error: decoders return
// AVA256_MISSING and count it in the capture. Out-of-range camera/frame indices are caller bugs (FATAL).
//
// Threads: a capture owns open zip handles (libzip archives are not safe for concurrent reads), one
// scratch buffer and its counters, so use one Ava256Capture per thread; different captures share
// nothing and may be read from different threads at once. ava256_open parses JSON with cJSON, whose
// parse-error position is process-wide: open captures from one thread (or serialise the opens).
// File descriptors: one per image zip (~80) plus one per mask and part-label zip, held until ava256_close.
#ifndef AVAT3R_AVA256_H
#define AVAT3R_AVA256_H
#include <stddef.h>
#include <stdint.h>

#define AVA256_NATIVE_W 2668 // the sensor size K refers to (portrait); the JSON does not store it
#define AVA256_NATIVE_H 4096
#define AVA256_ID_MAX 32

enum { AVA256_OK = 0, AVA256_MISSING = 1, AVA256_ERROR = -1 };

// ava256_open flags
#define AVA256_REQUIRE_EXPR 1 // fail when the expression sidecar is absent (otherwise: expr_note says why)

// The expression-code sidecar written by tools/ava256_expr_codes.py next to the pickle.
#define AVA256_EXPR_PKL "expression_codes/aeparams_1440000.pkl"
#define AVA256_EXPR_SIDECAR "expression_codes/aeparams_1440000.f32.bin"

typedef struct {
    char id[AVA256_ID_MAX]; // cameraId, e.g. "400101"
    double K[9];            // native 2668x4096 pixels, row-major: fx s cx / 0 fy cy / 0 0 1 (JSON holds K^T)
    double w2c[12];         // world->camera [R|t], row-major, t in metres (JSON holds T^T, t in mm)
    double distortion[4];   // k1 k2 p1 p2 as stored (0 when absent); ignored
} Ava256Calib;

typedef struct {
    Ava256Calib calib;
    struct zip *img;      // image/cam{id}.zip, open until ava256_close
    struct zip *mask;     // foreground_masks/cam{id}.zip, or NULL
    struct zip *parts;    // segmentation_parts/cam{id}.zip, or NULL
    int64_t *img_member;  // [n_frames] zip entry index of frame f's image, -1 when dropped
    int64_t *mask_member; // [n_frames] or NULL (no mask zip)
    int64_t *parts_member; // [n_frames] entry of frame f's label PNG (-1 when absent), or NULL (no parts zip)
    int64_t bg_member;    // entry of {id}.avif in background_image.zip, -1 when absent
    int n_images;         // frames of frame_list.csv with an image member
} Ava256Camera;

typedef struct {
    int64_t id;          // frame id as in frame_list.csv (the zips pad it to 6 digits)
    int seq;             // index into Ava256Capture.seq_names (seg_id)
    int has_head_pose;   // 0 when head_pose.zip lacks this frame
    double head[12];     // head->world [R|t], row-major, t in metres: x_world = R x_head + t
    int64_t expr_row;    // row of this frame in Ava256Capture.expr, -1 when the sidecar lacks it
} Ava256Frame;

typedef struct {
    char id[AVA256_ID_MAX];
    char reason[160];
} Ava256Excluded;

typedef struct {
    char dir[4096];            // the decoder/ folder
    int n_cams;                // calibration ∩ non-empty image zips, in calibration order
    Ava256Camera *cams;
    int n_excluded;            // calibration cameras left out (no zip, or no image of a listed frame)
    Ava256Excluded *excluded;
    int n_frames;              // frame_list.csv rows, in file order
    Ava256Frame *frames;
    int *frame_order;          // [n_frames] frame indices sorted by id (ava256_find_frame)
    int n_seqs;
    char **seq_names;          // distinct seg_id values in order of first appearance
    uint8_t *present;          // [n_cams, n_frames] 1 where the image member exists
    int64_t n_images;          // sum of present: the (frame, camera) samples this capture has
    int64_t n_missing_images;  // n_frames * n_cams - n_images (dropped members)
    int n_missing_head_pose;   // frames without a head pose
    int has_masks, has_background;
    int has_parts;             // some camera has a segmentation_parts zip
    struct zip *bg;            // background_image/background_image.zip, or NULL
    // expression codes (from the sidecar), sorted by frame id
    int expr_dim;              // 0 when there are none
    int64_t n_expr;
    int64_t *expr_ids;         // [n_expr]
    float *expr;               // [n_expr, expr_dim]
    int n_missing_expr;        // frames of frame_list.csv the sidecar has no code for
    char expr_note[4096];      // why there are no codes ("" when loaded)
    // counters of decode calls answered AVA256_MISSING (skipped, never fatal)
    int64_t n_skipped_images, n_skipped_masks, n_skipped_expr, n_skipped_parts;
    int img_w, img_h;          // the capture's image size (ava256_image_size, or else the first decoded image;
                               // 0 before); ava256_read_image refuses images of another size
    uint8_t *buf;              // scratch for member bytes
    size_t buf_cap;
} Ava256Capture;

// An 8-bit image, [h, w, c] row-major; px is reused (grown) across decodes; free with ava256_image_free.
typedef struct {
    int w, h, c;
    uint8_t *px;
    size_t cap;
} Ava256Image;

// Opens a capture: `path` is its decoder/ folder or the capture folder holding decoder/. Needs
// camera_calibration.json, frame_list.csv, head_pose/head_pose.zip and image/cam*.zip; uses
// foreground_masks/, segmentation_parts/, background_image/ and the expression sidecar when present. On error the capture
// is left zeroed (nothing to close).
int ava256_open(Ava256Capture *cap, const char *path, int flags, char *err, size_t errlen);
void ava256_close(Ava256Capture *cap);

// Index of a frame id / camera id, or -1.
int ava256_find_frame(const Ava256Capture *cap, int64_t frame_id);
int ava256_find_camera(const Ava256Capture *cap, const char *id);

// Decodes camera `cam`'s image of frame index `frame` to RGB8 (c = 3). AVA256_OK, AVA256_MISSING
// (dropped member; counted in n_skipped_images) or AVA256_ERROR (unreadable zip member, corrupt AVIF,
// a size other than cap->img_w × img_h once that is known: see ava256_image_size).
int ava256_read_image(Ava256Capture *cap, int cam, int frame, Ava256Image *out, char *err, size_t errlen);
// Decides the capture's image size before any image is decoded, so that it does not depend on which image
// comes first: the size most of its images have. Only AVIF headers are parsed; members that do not read or
// parse are left out. First AVA256_SIZE_SAMPLES images per camera (of `cams`, n_cams indices; NULL = all
// cameras), spread evenly over its frames, first and last included: when they all have one size, that is
// it; otherwise every image of those cameras is read and the most common size wins. Sets cap->img_w/img_h
// (copy them into other handles of the capture). AVA256_MISSING when no image header reads at all (the size
// is then left to the first decode); AVA256_ERROR, naming the two sizes, when two sizes are equally common.
#define AVA256_SIZE_SAMPLES 5
int ava256_image_size(Ava256Capture *cap, const int *cams, int n_cams, char *err, size_t errlen);
// Foreground mask to gray8 (c = 1; channel 0 of libavif's RGB conversion). MISSING also when the
// capture has no mask zip for this camera (counted in n_skipped_masks).
int ava256_read_mask(Ava256Capture *cap, int cam, int frame, Ava256Image *out, char *err, size_t errlen);
// Part labels (segmentation_parts, class indices 0..10: docs/formats.md) to c = 1, each byte exactly as the
// PNG stores it. MISSING when the capture has no parts zip for this camera or it lacks the frame (counted in
// n_skipped_parts); ERROR for an unreadable member or a PNG that is not 8-bit gray or 8-bit palette. The size
// is not checked against the image (callers do: pack keeps the image without labels).
int ava256_read_parts(Ava256Capture *cap, int cam, int frame, Ava256Image *out, char *err, size_t errlen);
// Empty-dome background plate to RGB8. MISSING when the capture has no plate for this camera.
int ava256_read_background(Ava256Capture *cap, int cam, Ava256Image *out, char *err, size_t errlen);
// The expression code of frame index `frame`: *code points into cap->expr (expr_dim floats).
// MISSING when the sidecar lacks the frame (counted in n_skipped_expr); ERROR (with expr_note) when
// the capture has no sidecar at all.
int ava256_expr_code(Ava256Capture *cap, int frame, const float **code, char *err, size_t errlen);

// K (native pixels) scaled per axis to a decoded w x h image: rows 0 and 1 times w/2668 and h/4096.
void ava256_scale_K(const double K_native[9], int w, int h, double K_out[9]);
// Camera centre in world coordinates (metres): C = -R^T t.
void ava256_camera_centre(const double w2c[12], double c[3]);

// Lower-level pieces, usable on their own (the synthetic writer's tests, `avat3r pack`).
// camera_calibration.json -> *cams (malloc'd; caller frees), in file order.
int ava256_read_calibration(const char *path, Ava256Calib **cams, int *n, char *err, size_t errlen);
// AVIF bytes -> 8-bit image with c = 3 (RGB) or c = 1 (channel 0), honouring the file's YUV matrix,
// range and chroma subsampling (libavif). `what` names the source in messages ("x.zip: member 'y'").
int ava256_decode_avif(const uint8_t *data, size_t size, int c, Ava256Image *out, const char *what, char *err,
                       size_t errlen);
// Label PNG bytes -> c = 1 image of the stored samples, untransformed (no gamma, palette or bit-depth
// conversion): 8-bit gray gives its grey values, 8-bit palette its indices; other PNGs are an error naming
// `what` and what the PNG is. Interlaced files are accepted; the PNG must be complete (through IEND).
int ava256_decode_label_png(const uint8_t *data, size_t size, Ava256Image *out, const char *what, char *err,
                            size_t errlen);
void ava256_image_free(Ava256Image *im);
// The capture folders listed by ROOT/256_ids.csv (columns mcd,sid,mct in any order) as
// "ROOT/{mcd}--{mct}--{sid}", malloc'd; free with ava256_free_list. Existence is not checked.
int ava256_list_captures(const char *root, char ***dirs, int *n, char *err, size_t errlen);
void ava256_free_list(char **list, int n);

#endif
