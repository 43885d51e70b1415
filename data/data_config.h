// data_config.h — config keys of the data pipeline (beside the model's keys in the same .cfg files).
#ifndef AVAT3R_DATA_CONFIG_H
#define AVAT3R_DATA_CONFIG_H
#include <stddef.h>

#include "../common/config.h"

typedef struct {
    char held_out[CFG_STR_MAX]; // comma-separated capture names or subject ids never drawn for training
} DataConfig;

CfgTable data_config_table(DataConfig *c);
// Splits held_out into at most `max` names (pointers into `buf`, which receives a copy); returns the count.
int data_held_out_list(const DataConfig *c, char *buf, size_t buflen, const char **names, int max);

// A capture name ("20240101--0900--TST001") matches a name that is the capture itself or its subject id
// ("TST001", the part after the last '-'): the rule of held_out and of `avat3r eval --subjects`.
int data_capture_matches(const char *capture, const char *name);
// The same against a comma-separated list; "all" matches every capture.
int data_capture_in_list(const char *capture, const char *list);

#endif
