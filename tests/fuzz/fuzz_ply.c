// fuzz_ply.c — the 3DGS PLY reader (render/ply.c: ply_read), then the conversion to activated values.
// Seeds: a small PLY written by ply_write (tests/fuzz/seeds.sh) and header variants.
#include "fuzz_common.h"

#include "../../render/ply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[1024], err[1024];
    fz_write(path, sizeof path, "in.ply", data, size);
    PlyGaussians p;
    if (ply_read(path, &p, err, sizeof err)) return 0;
    if (p.n <= 4096) {
        float *a = malloc(sizeof(float) * (16 * p.n + 1));
        ply_to_activated(&p, a, a + 3 * p.n, a + 7 * p.n, a + 10 * p.n, a + 11 * p.n);
        free(a);
    }
    ply_free(&p);
    return 0;
}
