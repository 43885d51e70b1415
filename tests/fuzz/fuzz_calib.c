// fuzz_calib.c — camera_calibration.json (data/ava256_calib.c: ava256_read_calibration, cJSON underneath).
// Seeds: the synthetic capture's calibration.
#include "fuzz_common.h"

#include "../../data/ava256.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[1024], err[1024];
    fz_write(path, sizeof path, "camera_calibration.json", data, size);
    Ava256Calib *cams = NULL;
    int n = 0;
    if (ava256_read_calibration(path, &cams, &n, err, sizeof err) == AVA256_OK) {
        double c[3];
        for (int i = 0; i < n; i++) ava256_camera_centre(cams[i].w2c, c);
    }
    free(cams);
    return 0;
}
