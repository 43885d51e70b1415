// fuzz_landmarks.c — dlib shape-predictor files (tools/landmarks.c: landmarks_load), then one prediction
// on a small gray image so that every index the loader accepted is used.
// Seeds: a small model in dlib's serialization (tests/fuzz/seeds.sh writes it) and prefixes of it.
#include "fuzz_common.h"

#include "../../tools/landmarks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[1024], err[1024];
    fz_write(path, sizeof path, "in.dat", data, size);
    LandmarkModel m;
    if (landmarks_load(&m, path, err, sizeof err)) return 0;
    if ((int64_t)m.n_trees * m.n_parts <= 1 << 20) { // bound the time of one input, not the memory
        uint8_t img[32 * 32];
        for (int i = 0; i < 32 * 32; i++) img[i] = (uint8_t)(i * 7);
        LandmarkBox box = {4, 4, 27, 27};
        double *pts = malloc(sizeof(double) * 2 * m.n_parts);
        landmarks_predict(&m, img, 32, 32, 32, 1, box, pts);
        free(pts);
    }
    landmarks_free(&m);
    return 0;
}
