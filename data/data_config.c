// data_config.c — the data key table (see data_config.h).
#include "data_config.h"

#include <stdio.h>
#include <string.h>

static const CfgKey data_keys[] = {
    {"held_out", CFG_STRING, offsetof(DataConfig, held_out), 0, 0, "",
     "comma-separated capture names or subject ids (e.g. TST001) never drawn for training"},
};

CfgTable data_config_table(DataConfig *c) {
    CfgTable t = {data_keys, (int)(sizeof data_keys / sizeof data_keys[0]), c};
    return t;
}

int data_held_out_list(const DataConfig *c, char *buf, size_t buflen, const char **names, int max) {
    snprintf(buf, buflen, "%s", c->held_out);
    int n = 0;
    for (char *save = NULL, *t = strtok_r(buf, ", ", &save); t && n < max; t = strtok_r(NULL, ", ", &save)) names[n++] = t;
    return n;
}
