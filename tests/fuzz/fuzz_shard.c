// fuzz_shard.c — HDF5 shards through our reader (data/shard.c: shard_open, then every (frame, camera)
// payload through shard_get_image / shard_get_mask / shard_get_parts / shard_get_aux into buffers of the
// sizes the shard declares, as the loader does). libhdf5 itself parses the container: a crash inside it is
// reported as a library finding (docs/robustness.md), not fixed here.
// Seeds: a 2-frame x 2-camera 8x8 shard with every blob kind (tests/fuzz/seed_shard.c) and its prefixes.
#include "fuzz_common.h"

#include "../../data/shard.h"

// libhdf5 allocates what a corrupt size field asks for (1 TB in the first input the fuzzer found) and
// returns an error when malloc fails, as glibc's malloc does for such sizes; ASan aborts instead unless
// told to return NULL. Our own allocations stay checked: mallocCheck exits on NULL, which libFuzzer reports,
// and libFuzzer's -malloc_limit_mb (= -rss_limit_mb) reports any successful allocation over the limit.
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[1024], err[1024];
    fz_write(path, sizeof path, "in.h5", data, size);
    Shard s;
    if (shard_open(&s, path, err, sizeof err)) return 0;
    size_t px = (size_t)s.m.W * s.m.H, sap = (size_t)s.m.sap_h * s.m.sap_w * s.m.sap_c;
    if (px <= 1 << 16 && (size_t)s.m.n_frames * s.m.n_cams <= 64) { // bound one input's time
        uint8_t *rgb = malloc(px * 3), *gray = malloc(px);
        float *dust = malloc(px * 16), *sp = sap <= 1 << 16 ? malloc(sap * 4 + 4) : NULL;
        for (int f = 0; f < s.m.n_frames; f++)
            for (int c = 0; c < s.m.n_cams; c++) {
                (void)shard_get_image(&s, f, c, rgb, err, sizeof err);
                (void)shard_get_mask(&s, f, c, gray, err, sizeof err);
                (void)shard_get_parts(&s, f, c, gray, err, sizeof err);
                (void)shard_get_aux(&s, SHARD_DUST3R, f, c, dust, err, sizeof err);
                if (sp) (void)shard_get_aux(&s, SHARD_SAPIENS, f, c, sp, err, sizeof err);
            }
        free(rgb), free(gray), free(dust), free(sp);
    }
    shard_close(&s);
    shard_thread_release();
    return 0;
}
