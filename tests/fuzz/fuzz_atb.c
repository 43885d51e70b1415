// fuzz_atb.c — the tensor bundle reader (common/atb.c: atb_read, atb_get_f64).
// Seeds: small bundles (tests/fuzz/seeds.sh).
#include "fuzz_common.h"

#include "../../common/atb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[1024], err[1024];
    fz_write(path, sizeof path, "in.atb", data, size);
    Atb b;
    if (atb_read(path, &b, err, sizeof err)) return 0;
    for (int i = 0; i < b.n; i++)
        if (b.t[i].count <= 1 << 16 && atb_find(&b, b.t[i].name) == &b.t[i]) { // first of a repeated name
            double *d = malloc(sizeof(double) * (b.t[i].count + 1));
            if (atb_get_f64(&b, b.t[i].name, d, b.t[i].count, err, sizeof err)) abort(); // it is there
            free(d);
        }
    atb_free(&b);
    return 0;
}
