// fuzz_zip.c — the ava256 zip reader (data/ava256_zip.c): ava_zip_open on a file, then for every member
// its name, basename, frame id and a full read with the length and CRC checks (ava_zip_read).
// Seeds: the synthetic capture's zips (image, mask, head pose, background, aux).
#include "fuzz_common.h"

#include <zip.h>

#include "../../data/ava256_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[1024], err[1024];
    fz_write(path, sizeof path, "in.zip", data, size);
    struct zip *z = NULL;
    if (ava_zip_open(path, &z, err, sizeof err) != AVA256_OK) return 0;
    uint8_t *buf = NULL;
    size_t cap = 0;
    int64_t n = ava_zip_count(z);
    for (int64_t e = 0; e < n && e < 4096; e++) {
        const char *name = ava_zip_name(z, e);
        int64_t id;
        (void)ava_frame_member(ava_basename(name), ".avif", &id);
        size_t len = 0;
        if (ava_zip_read(z, path, e, &buf, &cap, &len, err, sizeof err) == AVA256_OK && len) {
            volatile uint8_t sink = buf[len - 1]; // the whole member is there
            (void)sink;
        }
    }
    free(buf);
    zip_discard(z);
    return 0;
}
