// fuzz_expr.c — the expression-code sidecar expression_codes/aeparams_1440000.f32.bin (data/ava256_expr.c,
// through ava256_open with AVA256_REQUIRE_EXPR, then ava256_expr_code for every frame). The harness sets
// up a minimal capture once (frame list, an empty head_pose.zip, one calibrated camera whose image zip
// lists frame 20000; images are not decoded at open) and writes the input as the sidecar.
// Seeds: the synthetic capture's sidecar (3 codes of 256 floats) and small variants.
#include "fuzz_common.h"

#include <zip.h>

#include "../../data/ava256.h"

static void make_zip(const char *rel, const char *member) {
    char path[1024];
    int code;
    zip_t *z = zip_open(fz_path(path, sizeof path, rel), ZIP_CREATE | ZIP_TRUNCATE, &code);
    if (!z) abort();
    if (member) {
        static const char bytes[] = "not decoded at open";
        zip_source_t *s = zip_source_buffer(z, bytes, sizeof bytes - 1, 0);
        if (!s || zip_file_add(z, member, s, 0) < 0) abort();
    } else {
        zip_dir_add(z, "empty", 0); // libzip writes no file for an archive without entries
    }
    if (zip_close(z) != 0) abort();
}

static void setup(void) {
    char path[1024];
    fz_mkdirs("cap/decoder/head_pose");
    fz_mkdirs("cap/decoder/image");
    fz_mkdirs("cap/decoder/expression_codes");
    static const char list[] = "seg_id,frame_id\nEXP_a,20000\nEXP_a,20001\nEXP_b,20005\n";
    fz_write(path, sizeof path, "cap/decoder/frame_list.csv", (const uint8_t *)list, sizeof list - 1);
    static const char calib[] =
        "{\"KRT\": [{\"cameraId\": \"400101\", \"K\": [[5000, 0, 0], [0, 5000, 0], [1334, 2048, 1]],"
        " \"T\": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1000, 1]]}]}";
    fz_write(path, sizeof path, "cap/decoder/camera_calibration.json", (const uint8_t *)calib, sizeof calib - 1);
    make_zip("cap/decoder/head_pose/head_pose.zip", NULL);
    make_zip("cap/decoder/image/cam400101.zip", "cam400101/020000.avif");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[1024], err[1024];
    static int ready;
    if (!ready) setup(), ready = 1;
    fz_write(path, sizeof path, "cap/decoder/expression_codes/aeparams_1440000.f32.bin", data, size);
    Ava256Capture cap;
    if (ava256_open(&cap, fz_path(path, sizeof path, "cap"), AVA256_REQUIRE_EXPR, err, sizeof err) != AVA256_OK)
        return 0;
    for (int f = 0; f < cap.n_frames; f++) {
        const float *code = NULL;
        if (ava256_expr_code(&cap, f, &code, err, sizeof err) == AVA256_OK) {
            volatile float sink = code[cap.expr_dim - 1];
            (void)sink;
        }
    }
    ava256_close(&cap);
    return 0;
}
