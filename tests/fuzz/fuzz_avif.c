// fuzz_avif.c — the AVIF wrapper (data/ava256_image.c: ava256_decode_avif, libavif underneath) on raw
// bytes, as RGB (c = 3) and as a mask (c = 1). Seeds: the synthetic capture's images, masks, plates.
#include "fuzz_common.h"

#include "../../data/ava256.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[1024];
    Ava256Image im = {0};
    for (int c = 3; c >= 1; c -= 2)
        if (ava256_decode_avif(data, size, c, &im, "fuzz", err, sizeof err) == AVA256_OK) {
            volatile uint8_t sink = im.px[(size_t)im.w * im.h * im.c - 1];
            (void)sink;
        }
    ava256_image_free(&im);
    return 0;
}
