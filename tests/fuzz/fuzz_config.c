// fuzz_config.c — config files (common/config.c with the model, training and data key tables, as
// `avat3r train --config` reads them: model_config_load_with, then the cross-key checks). A config that
// loads must survive a round trip: its canonical text (cfg_to_string, what checkpoints store) parses back
// to the same text. Includes resolve next to the input; inputs naming /dev, /proc, /sys or /run are
// skipped (an include of /dev/zero would read forever: that is the user's doing, not a parser bug).
// Seeds: configs/*.cfg and configs/ablations/*.cfg.
#include "fuzz_common.h"

#include "../../data/data_config.h"
#include "../../model/model_config.h"
#include "../../train/train_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (fz_names_device(data, size)) return 0;
    char path[1024], err[2048];
    fz_write(path, sizeof path, "in.cfg", data, size);
    ModelConfig mc;
    TrainConfig tc;
    DataConfig dc;
    CfgTable t[3] = {model_config_table(&mc), train_config_table(&tc), data_config_table(&dc)};
    if (model_config_load_with(&mc, path, t + 1, 2, err, sizeof err)) return 0;
    if (train_config_validate(&tc, err, sizeof err) == 0) {
        float bg[3];
        train_config_background(&tc, bg);
        (void)train_lr(&tc, tc.steps / 2);
    }
    char buf[CFG_STR_MAX];
    const char *names[64];
    (void)data_held_out_list(&dc, buf, sizeof buf, names, 64);
    // round trip of the canonical text
    char *text = cfg_to_string(t, 3);
    ModelConfig mc2 = mc;
    TrainConfig tc2 = tc;
    DataConfig dc2 = dc;
    CfgTable t2[3] = {model_config_table(&mc2), train_config_table(&tc2), data_config_table(&dc2)};
    if (cfg_defaults(t2, 3, err, sizeof err) || cfg_load_text(text, "canonical", t2, 3, err, sizeof err)) {
        fprintf(stderr, "canonical text does not parse back: %s\n%s", err, text);
        abort();
    }
    char *text2 = cfg_to_string(t2, 3);
    if (strcmp(text, text2)) {
        fprintf(stderr, "canonical text changes on a round trip:\n%s\n---\n%s", text, text2);
        abort();
    }
    free(text), free(text2);
    return 0;
}
