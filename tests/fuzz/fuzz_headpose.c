// fuzz_headpose.c — the head-pose text members of head_pose/head_pose.zip (data/ava256.c: parse_head_pose
// and its orthonormality check, through ava256_open). The input is the text of member 020000.txt; after a
// NUL byte, the rest is member 020001.txt. The harness zips it (STORED) next to a two-frame
// frame_list.csv; ava256_open reads the poses and stops at the missing calibration.
// Seeds: the synthetic capture's pose members.
#include "fuzz_common.h"

#include <zip.h>

#include "../../data/ava256.h"

static void add(zip_t *z, const char *name, const uint8_t *p, size_t n) {
    zip_source_t *s = zip_source_buffer(z, p, n, 0);
    if (!s || zip_file_add(z, name, s, ZIP_FL_OVERWRITE) < 0) abort();
    zip_set_file_compression(z, zip_name_locate(z, name, 0), ZIP_CM_STORE, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[1024], err[1024];
    static int ready;
    if (!ready) {
        fz_mkdirs("cap/decoder/head_pose");
        static const char list[] = "seg_id,frame_id\nEXP_a,20000\nEXP_a,20001\n";
        fz_write(path, sizeof path, "cap/decoder/frame_list.csv", (const uint8_t *)list, sizeof list - 1);
        ready = 1;
    }
    fz_path(path, sizeof path, "cap/decoder/head_pose/head_pose.zip");
    int code;
    zip_t *z = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &code);
    if (!z) abort();
    const uint8_t *nul = memchr(data, 0, size);
    size_t n0 = nul ? (size_t)(nul - data) : size;
    add(z, "head_pose/020000.txt", data, n0);
    if (nul) add(z, "head_pose/020001.txt", nul + 1, size - n0 - 1);
    if (zip_close(z) != 0) abort();
    Ava256Capture cap;
    char dir[1024];
    if (ava256_open(&cap, fz_path(dir, sizeof dir, "cap"), 0, err, sizeof err) == AVA256_OK) ava256_close(&cap);
    return 0;
}
