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

int data_capture_matches(const char *capture, const char *name) {
    size_t cl = strlen(capture), nl = strlen(name);
    return !strcmp(name, capture) ||
           (nl && nl + 2 <= cl && !strcmp(capture + cl - nl, name) && capture[cl - nl - 1] == '-');
}

int data_capture_in_list(const char *capture, const char *list) {
    if (!strcmp(list, "all")) return 1;
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save = NULL, *t = strtok_r(buf, ", ", &save); t; t = strtok_r(NULL, ", ", &save))
        if (data_capture_matches(capture, t)) return 1;
    return 0;
}
