// fuzz_npy.c — the .npy reader of the aux maps and of `animate --codes` (data/npy.c: npy_parse_f32) on raw
// bytes. On success it reads every float the shape promises, as its callers do.
// Seeds: members of the synthetic capture's aux zips (DUSt3R [H, W, 4], Sapiens [h, w, C]).
#include "fuzz_common.h"

#include "../../data/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int64_t shape[NPY_MAX_DIMS];
    int nd = 0;
    const uint8_t *p = NULL;
    char err[1024];
    if (npy_parse_f32(data, size, "fuzz", shape, &nd, &p, err, sizeof err)) return 0;
    size_t count = 1;
    for (int k = 0; k < nd; k++) count *= (size_t)shape[k];
    float acc = 0, v;
    for (size_t i = 0; i < count; i++) memcpy(&v, p + 4 * i, 4), acc += v;
    volatile float sink = acc;
    (void)sink;
    return 0;
}
