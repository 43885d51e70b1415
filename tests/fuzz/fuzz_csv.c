// fuzz_csv.c — the two CSV files of a release (data/ava256.c): frame_list.csv through ava256_open (which
// parses it first and then stops at the missing head_pose.zip) and 256_ids.csv through
// ava256_list_captures; the same bytes go to both. Seeds: the synthetic capture's frame list and index.
#include "fuzz_common.h"

#include "../../data/ava256.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[1024], dir[1024], err[1024];
    static int ready;
    if (!ready) fz_mkdirs("cap/decoder"), ready = 1;
    fz_write(path, sizeof path, "cap/decoder/frame_list.csv", data, size);
    fz_write(path, sizeof path, "cap/256_ids.csv", data, size);
    Ava256Capture cap;
    if (ava256_open(&cap, fz_path(dir, sizeof dir, "cap"), 0, err, sizeof err) == AVA256_OK) ava256_close(&cap);
    char **list = NULL;
    int n = 0;
    if (ava256_list_captures(fz_path(dir, sizeof dir, "cap"), &list, &n, err, sizeof err) == AVA256_OK)
        ava256_free_list(list, n);
    return 0;
}
