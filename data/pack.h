// pack.h — ava256 capture -> one HDF5 shard (docs/data.md "Packing"): square crop around the projected
// head, resize to the training size, background composited from the foreground mask, K adjusted to the
// crop, JPEG images, zstd masks and part labels, per-frame head poses and expression codes.
#ifndef AVAT3R_PACK_H
#define AVAT3R_PACK_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int size;               // output images are size × size
    int quality;            // JPEG quality
    double background[3];   // composited behind the mask, in [0,1]
    const char *const *cameras; // only these camera ids (NULL = all)
    int n_cameras;
    int threads;            // decode/resize threads per capture (0 = OpenMP default)
    int quiet;              // no progress bar
    int sapiens_h, sapiens_w; // grid the Sapiens maps are resampled to over the crop (the model's sapiens_h/w)
    double crop;            // crop side as a fraction of the image's short side, (0, 1]; 0 = 1 (the largest square)
    double max_corrupt;     // in [0, 1]: the capture fails once more than this fraction of its images (those
                            // its zips list, selected cameras) is corrupt; 0 = any corrupt image fails it
    int no_parts;           // leave out the part labels (segmentation_parts); 0 = store them where present
} PackOptions;

typedef struct {
    int64_t images;          // stored in the shard
    int64_t missing_images;  // dropped: no member in the camera's zip
    int64_t corrupt_images;  // skipped: image, mask, DUSt3R or Sapiens member unreadable (stored like missing)
    int64_t no_mask_images;  // skipped: the camera has a mask zip but it lacks this frame (stored like missing)
    int64_t masks, frames, cameras, dust3r, sapiens;
    int64_t parts;           // part-label images stored
    int64_t bad_parts;       // label members that did not read or decode, or not at the image's size: the
                             // image is stored without labels (not counted as corrupt)
} PackStats;

// Packs one capture folder into out_path (atomic). Returns 0, or -1 with a message naming the file.
// A corrupt image (a (frame, camera) whose image, mask, DUSt3R or Sapiens member does not read or decode)
// is skipped: nothing is stored for it, as for a dropped image, and a warning on stderr names the capture,
// frame, camera, zip, member and reason. An image whose camera has a mask zip without a member for its
// frame is skipped the same way and counted apart (no_mask_images). Part labels are optional: a damaged
// label member keeps its image without labels (bad_parts; a warning names it). Every image must have the capture's
// size (ava256_image_size); two equally common sizes fail the capture. Capture-level damage (a zip that
// does not open, e.g. truncated) and more than o->max_corrupt corrupt images fail the capture; no shard is
// written then. The shard records the missing, corrupt and no-mask counts (shard_set_counts).
int pack_capture(const char *capture_dir, const char *out_path, const PackOptions *o, PackStats *st, char *err,
                 size_t errlen);

// The capture's name from its folder or its decoder/ folder: ".../20240101--0900--TST001[/decoder][/]"
// -> "20240101--0900--TST001" (the shard is named after it).
void pack_capture_name(const char *dir, char *out, size_t n);
// The square crop of side `side` (≤ min(w, h)) of a w×h image around pixel (cx, cy), clamped inside the
// image. Returns the crop's top-left corner.
void pack_crop_origin(int w, int h, int side, double cx, double cy, int *x0, int *y0);
// The crop side for a w×h image: crop·min(w, h) rounded, at least 1 (crop 0 means 1).
int pack_crop_side(int w, int h, double crop);
// K of the crop resized to size×size, from K of the full image (row-major 3x3).
void pack_crop_K(const double K_img[9], int x0, int y0, int side, int size, double K_out[9]);
// Area-weighted resize of a square 8-bit crop (side×side, c channels, row stride `stride` bytes).
void pack_resize(const uint8_t *src, int stride, int side, int c, uint8_t *dst, int size);
// Nearest resize of a square crop of class labels (one byte per pixel; averaging would invent classes):
// dst(x, y) = src(floor((x + 0.5)·side/size), floor((y + 0.5)·side/size)), clamped to the crop.
void pack_resize_labels(const uint8_t *src, int stride, int side, uint8_t *dst, int size);

#endif
