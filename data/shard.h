// shard.h — one capture packed into one HDF5 file (docs/formats.md "Shard"): cameras, per-frame head
// poses and expression codes, per-(frame, camera) intrinsics of the stored crop, and variable-length
// payloads — JPEG images, zstd-compressed masks, part labels and aux maps — in append-only blob datasets
// indexed by (frame, camera). Written to a temporary name and renamed when complete.
#ifndef AVAT3R_SHARD_H
#define AVAT3R_SHARD_H
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define SHARD_VERSION 1
#define SHARD_MAX_CAMS 1024
// Reader limits (shard_open refuses more: buffers are sized from these fields before any data is read)
#define SHARD_MAX_SIDE 16384             // width, height
#define SHARD_MAX_SAMPLES (1 << 22)      // frames x cameras
#define SHARD_MAX_AUX_FLOATS (1 << 28)   // sapiens_h x sapiens_w x sapiens_c
#define SHARD_MAX_PAYLOAD ((int64_t)1 << 30) // bytes of one (frame, camera) payload
#define SHARD_ID_LEN 32 // bytes per camera id, NUL included

// SHARD_PARTS (ava256 part labels) is optional in the file: its datasets exist only when a label was written,
// and shards without them (all shards written before it) read as having none. Its index is covered by its
// own attribute parts_zstd_index_crc32, not by meta_crc32, so that readers from before it still open shards
// with labels.
enum { SHARD_IMAGE = 0, SHARD_MASK = 1, SHARD_DUST3R = 2, SHARD_SAPIENS = 3, SHARD_PARTS = 4, SHARD_NBLOBS = 5 };

typedef struct {
    char capture[256];          // e.g. 20240101--0900--TST001
    int n_cams, n_frames, W, H; // W×H: the stored image size
    int expr_dim;               // 0 when the capture has no expression codes
    int sap_h, sap_w, sap_c;    // Sapiens-like map size (0 when absent)
    char (*cam_ids)[SHARD_ID_LEN]; // [C]
    double *w2c;                // [C, 3, 4] world-to-camera, metres
    double *K;                  // [F, C, 3, 3] intrinsics of the stored crop, pixels
    int32_t *frame_ids;         // [F]
    double *head_pose;          // [F, 3, 4] head-to-world, metres
    float *expr;                // [F, expr_dim] (NULL when expr_dim = 0)
} ShardMeta;

typedef struct {
    int64_t *off, *len; // [F, C] byte ranges in the blob; len 0 = missing (all 0 for an absent optional blob)
    uint32_t *crc;      // [F, C] CRC-32 (zlib) of each payload; NULL for a shard written before checksums
    int64_t size;       // bytes written so far
    long ds;            // hid_t of the blob dataset (kept as long so this header needs no HDF5); 0 when absent
} ShardBlob;

typedef struct ShardWriter ShardWriter;

// Creates PATH.tmp.<pid>; the metadata arrays are copied. Returns NULL with a message on failure.
ShardWriter *shard_create(const char *path, const ShardMeta *meta, int jpeg_quality, char *err, size_t errlen);
// Payloads for (frame f, camera c): RGB8 [H, W, 3] encoded to JPEG; gray8 masks [H, W] and float32 aux
// maps (dust3r [H, W, 4] = xyz + confidence; sapiens [sap_h, sap_w, sap_c]) compressed with zstd.
int shard_put_image(ShardWriter *w, int f, int c, const uint8_t *rgb, char *err, size_t errlen);
// The same with the JPEG encoded by the caller (shard_encode_jpeg is thread-safe: encode in workers,
// then hand the bytes to the single writer).
int shard_put_jpeg(ShardWriter *w, int f, int c, const uint8_t *jpeg, size_t n, char *err, size_t errlen);
// RGB8 [h, w, 3] -> JPEG (4:4:4, accurate DCT) in *out (grown as needed, free with free()).
int shard_encode_jpeg(const uint8_t *rgb, int w, int h, int quality, uint8_t **out, size_t *cap, size_t *n);
// Frees the calling thread's TurboJPEG handles and read buffer (call when a worker thread ends).
void shard_thread_release(void);
int shard_put_mask(ShardWriter *w, int f, int c, const uint8_t *gray, char *err, size_t errlen);
// Part labels [H, W] (ava256 class indices, one byte each), zstd-compressed like the masks.
int shard_put_parts(ShardWriter *w, int f, int c, const uint8_t *labels, char *err, size_t errlen);
int shard_put_aux(ShardWriter *w, int kind, int f, int c, const float *data, char *err, size_t errlen);
// Replaces the [F, C, 3, 3] intrinsics given at create (a packer learns them while it decodes).
void shard_set_K(ShardWriter *w, const double *K);
// The packer's counts of (frame, camera) images it did not store: dropped (no image member), corrupt, and
// skipped for a missing mask member. Written by shard_finish as the root attributes missing_images,
// corrupt_images and no_mask_images (informational: not covered by meta_crc32). Not called: not written.
void shard_set_counts(ShardWriter *w, int64_t missing, int64_t corrupt, int64_t no_mask);
// Writes the indices and metadata, closes and renames over PATH. Frees w in every case.
int shard_finish(ShardWriter *w, char *err, size_t errlen);
void shard_abort(ShardWriter *w); // removes the temporary file

typedef struct {
    ShardMeta m;
    char path[4096];
    long file;                 // hid_t
    ShardBlob blob[SHARD_NBLOBS];
    int has[SHARD_NBLOBS];
    pthread_mutex_t lock;      // HDF5 reads are serialised; decoding happens outside the lock
    // The packer's counts (attributes missing_images, corrupt_images, no_mask_images; shard_set_counts);
    // -1 when the shard has none (written before them, or not by pack) or they do not fit the shard.
    int64_t missing_images, corrupt_images, no_mask_images;
} Shard;

// Opens and checks a shard: attributes, shapes, every index entry inside its blob, and the CRC-32 of the
// metadata (attribute `meta_crc32`, when the shard has one). Payload CRCs are checked on every read.
int shard_open(Shard *s, const char *path, char *err, size_t errlen);
void shard_close(Shard *s);
// Decoders into caller buffers: rgb [H, W, 3]; gray [H, W]; aux as above. Return 0, 1 when that
// (frame, camera) has no such payload, or -1 with a message naming the file, frame and camera (a payload
// whose bytes fail their CRC-32, or that does not decode).
// Safe to call from several threads on one Shard.
int shard_get_image(Shard *s, int f, int c, uint8_t *rgb, char *err, size_t errlen);
int shard_get_mask(Shard *s, int f, int c, uint8_t *gray, char *err, size_t errlen);
// labels [H, W]; 1 also for every (frame, camera) of a shard without part labels.
int shard_get_parts(Shard *s, int f, int c, uint8_t *labels, char *err, size_t errlen);
int shard_get_aux(Shard *s, int kind, int f, int c, float *data, char *err, size_t errlen);

#endif
