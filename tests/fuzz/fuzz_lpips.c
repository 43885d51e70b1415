// fuzz_lpips.c — LPIPS weight files (train/lpips_weights.c: lpips_weights_load). The file must be exactly
// as long as its net's layout (VGG 14.7 M floats, AlexNet 2.5 M), which no mutation of a small seed
// reaches, and it is CRC-checked, so the harness shapes the input by its length modulo 4:
//   0: taken as is, then the CRC field (bytes 20..23) is rewritten to match;
//   1: the last byte is dropped and the rest taken as is (CRC included);
//   2 or 3: those bytes are dropped, the body after the header and shape table is repeated up to the
//      length the header's net asks for (AlexNet only, ~10 MB; VGG inputs are taken as they are), and the
//      CRC is rewritten. This reaches the shape-table, finiteness and lin-weight checks.
// Seeds: headers with the shape tables of both nets and a few weights (tests/fuzz/seeds.sh).
#include "fuzz_common.h"

#include "../../model/checkpoint.h"
#include "../../train/lpips.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int mode = (int)(size % 4);
    size_t n = mode == 0 ? size : size - (mode == 1 ? 1 : mode);
    size_t full = n;
    if (mode >= 2 && n >= 64) {
        uint32_t net;
        memcpy(&net, data + 12, 4);
        LpipsWeights lay;
        if (net == LPIPS_ALEX && lpips_layout(&lay, (int)net) == 0) full = 64 + 4 * (5 * 6 + 5) + 4 * lay.n;
    }
    uint8_t *b = calloc(full > n ? full : n, 1);
    memcpy(b, data, n);
    size_t body = 64 + 4 * (5 * 6 + 5);
    if (full > n && n > body)
        for (size_t i = n; i < full; i++) b[i] = b[body + (i - n) % (n - body)];
    if (full > n) n = full;
    if (mode != 1 && n >= 64) {
        uint32_t c = crc32_update(0, b + 64, n - 64);
        memcpy(b + 20, &c, 4);
    }
    char path[1024], err[1024];
    fz_write(path, sizeof path, "in.lpips", b, n);
    free(b);
    LpipsWeights w;
    if (lpips_weights_load(&w, path, err, sizeof err) == 0) lpips_weights_free(&w);
    return 0;
}
