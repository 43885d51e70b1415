// cli.c — the option parsers and the JSON writer the avat3r verbs share (cli.h). In the tools library, so
// the verbs the test runner links directly (cmd_synth.c) use them too.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "../common/util.h"
#include "cli.h"

int cli_parse_int(const char *verb, const char *flag, const char *v, int lo, int hi, int *out) {
    char *end;
    long x = strtol(v, &end, 10);
    if (!*v || *end || x < lo || x > hi) {
        fprintf(stderr, "avat3r %s: %s '%s': expected a whole number in %d..%d\n", verb, flag, v, lo, hi);
        return -1;
    }
    *out = (int)x;
    return 0;
}

int cli_parse_double(const char *verb, const char *flag, const char *v, double lo, double hi, int lo_open, double *out) {
    char *end;
    double x = strtod(v, &end);
    if (!*v || *end || !isfinite(x) || x > hi || (lo_open ? !(x > lo) : !(x >= lo))) {
        fprintf(stderr, "avat3r %s: %s '%s': expected a number in %c%g, %g]\n", verb, flag, v, lo_open ? '(' : '[', lo,
                hi);
        return -1;
    }
    *out = x;
    return 0;
}

void cli_write_json(const char *path, const cJSON *j) {
    char *s = cJSON_Print(j);
    AtomicFile af;
    atomicOpen(&af, path);
    fprintf(af.f, "%s\n", s);
    atomicClose(&af);
    cJSON_free(s);
}
