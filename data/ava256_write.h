// ava256_write.h — writers for the ava256 on-disk layout (shared/reference/ava256_format.md), used by
// `avat3r synth`. Prefix avw_ (the reader in data/ava256.h is a separate module).
//
// Per capture `{mcd}--{mct}--{sid}/decoder/` (real layout):
//   camera_calibration.json                 {"KRT": [...]} with K and T stored TRANSPOSED, t in mm
//   frame_list.csv                          "seg_id,frame_id", unpadded frame ids
//   head_pose/head_pose.zip                 {frame:06d}.txt        3x4 head->world, mm
//   image/cam{ID}.zip                       cam{ID}/{frame:06d}.avif
//   foreground_masks/cam{ID}.zip            {frame:06d}.avif       8-bit grey (YUV400)
//   segmentation_parts/cam{ID}.zip          cam{ID}/{frame:06d}.png 8-bit class labels
//   background_image/background_image.zip   {ID}.avif
//   expression_codes/aeparams_1440000.pkl   pickle (protocol 4) dict int frame_id -> numpy float32[256]
// and the root's 256_ids.csv ("mcd,sid,mct"). Zips are STORED, no directory entries, fixed timestamps
// (1980-01-01), ZIP64 records only when an archive needs them.
//
// Derived maps a precompute tool writes next to them (NOT part of real ava256; same conventions):
//   aux/dust3r/cam{ID}.zip     {frame:06d}.npy  float32 '<f4' shape (H, W, 4): x, y, z of the pixel's
//                              surface point in the WORLD frame in MILLIMETRES (like the calibration and
//                              head poses; map to the head frame with the inverse head pose) and a
//                              confidence in [0, 1]; H x W = the image size
//   aux/sapiens/cam{ID}.zip    {frame:06d}.npy  float32 '<f4' shape (hs, ws, C): per-cell features
//                              (synthetic: part weights, C = 16)
//   aux/sapiens/channels.txt   one channel name per line
// Images are AVIF: lossless by default (YUV444, identity matrix, full range, quantizer 0: decoding gives
// the exact RGB8), or lossy 4:2:0 (BT.601 matrix, full range) at a chosen quantizer. Masks are YUV400
// (BT.601 matrix, full range: every RGB channel of the decode equals the stored grey; `avat3r synth`
// keeps them lossless even with --lossy). Colour tags: BT.709 primaries, sRGB transfer.
#ifndef AVAT3R_AVA256_WRITE_H
#define AVAT3R_AVA256_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "../common/util.h"

#define AVW_EXPR_PKL "expression_codes/aeparams_1440000.pkl"

// One calibrated camera: K in native 2668x4096 pixels (row-major), world->camera R (row-major) and t (mm),
// distortion [k1, k2, p1, p2] (written, but the images are undistorted).
typedef struct {
    char id[12];
    double K[9], R[9], t[3], dist[4];
} AvwCamera;

// mkdir -p (mode 0755); FATAL on failure.
void avw_mkdirs(const char *path);
void avw_capture_name(char *buf, size_t n, const char *mcd, const char *mct, const char *sid);

void avw_write_calibration(const char *path, const AvwCamera *cams, int n);
void avw_write_frame_list(const char *path, const char *const *seg, const int64_t *frame, int n);
void avw_write_ids(const char *path, const char *const *mcd, const char *const *sid, const char *const *mct, int n);
// "%.9g %.9g %.9g %.9g\n" x 3 rows of [R | t] (head->world, t in mm); returns the length.
int avw_head_pose_text(char *buf, size_t n, const double R[9], const double t[3]);

// Member names, one rule per asset (they differ: ava256_format.md §2).
void avw_member_image(char *buf, size_t n, const char *cam, int64_t frame); // cam{ID}/{frame:06d}.avif
void avw_member_mask(char *buf, size_t n, int64_t frame);                   // {frame:06d}.avif
void avw_member_seg(char *buf, size_t n, const char *cam, int64_t frame);   // cam{ID}/{frame:06d}.png
void avw_member_pose(char *buf, size_t n, int64_t frame);                   // {frame:06d}.txt
void avw_member_plate(char *buf, size_t n, const char *cam);                // {ID}.avif
void avw_member_npy(char *buf, size_t n, int64_t frame);                    // {frame:06d}.npy

// A streaming STORED zip writer: members go to disk as they are added (only names, sizes and CRCs stay
// in memory), the central directory at close; written to path.tmp.<pid> and renamed at close.
typedef struct {
    char *name;
    uint32_t crc, size;
    uint64_t offset;
} AvwZipEntry;
typedef struct {
    AtomicFile af;
    AvwZipEntry *e;
    int n, cap;
    uint64_t pos;
    int force_zip64; // write ZIP64 extra fields and end records even when not needed (tests)
} AvwZip;
void avw_zip_open(AvwZip *z, const char *path);
void avw_zip_add(AvwZip *z, const char *name, const void *data, size_t size);
void avw_zip_close(AvwZip *z);

typedef struct {
    int lossy;     // 0: lossless (YUV444 identity q0); 1: YUV420 BT.601 at `quantizer`
    int quantizer; // 0 (best) .. 63
    int speed;     // encoder speed 0 (slow) .. 10 (fast)
} AvwAvifOpts;
// Encoded bytes (malloc'd, caller frees). Single-threaded encoders, so the output is deterministic.
uint8_t *avw_avif_rgb8(const uint8_t *rgb, int W, int H, const AvwAvifOpts *o, size_t *size);
uint8_t *avw_avif_gray8(const uint8_t *g, int W, int H, const AvwAvifOpts *o, size_t *size);
uint8_t *avw_png_gray8(const uint8_t *g, int W, int H, size_t *size);
// NPY v1.0 of a float32 little-endian C-order array (header padded to 64 bytes).
uint8_t *avw_npy_f32(const float *x, const int64_t *shape, int ndim, size_t *size);

// Writes the expression-code pickle through `python script RAW PKL` (tools/synth_write_pickle.py):
// RAW = "AVSYCODE", u32 version 1, u32 dim, u64 n, n x i64 frame ids, n x dim float32 (little-endian).
// FATAL with a hint when python or numpy is missing.
// Checks up front that `python script --check` runs (Python 3 with numpy); FATAL with a hint if not.
void avw_check_pickle_writer(const char *python, const char *script);
void avw_write_codes_pickle(const char *python, const char *script, const char *pkl_path, const int64_t *frame,
                            const float *codes, int n, int dim);

#endif
