// cli.h — shared helpers of the avat3r command's verbs (option parsers and the JSON writer in cli.c, the rest in cmd_model.c).
#ifndef AVAT3R_CLI_H
#define AVAT3R_CLI_H
#include "avat3r.h"
#include "model_config.h"
#include "train_config.h"

// Loads --config (default: configs/tiny.cfg under the source root) and applies --set overrides.
// Exits with a message naming the file, line and key on any error.
void cli_load_model_config(ModelConfig *c, const char *path, const char **sets, int nsets);
// The same, keeping the training keys of the file and the overrides too (validated).
void cli_load_configs(ModelConfig *c, TrainConfig *tc, const char *path, const char **sets, int nsets);
const char *cli_source_root(void);
// Prints every config key (model, data, training) with type, range, default and help.
void cli_print_config_keys(void);
const char *cli_python(void); // AVAT3R_PYTHON or /usr/bin/python3
// Runs `python3 ARGS` (a reference script's bench verb) and returns the fwd_bwd_ms of its last JSON
// line, or -1 after printing its output.
double cli_reference_bench_ms(const char *args);
// One timed forward, zero-grad and backward of the model on a batch: returns its ms, the forward's in *fwd_ms.
double cli_timed_step(Avat3r *m, const Avat3rBatch *in, const float *dgauss, double *fwd_ms);

// Options the model verbs share; cli_parse_opts prints usage/errors and returns non-zero on a bad one.
typedef struct {
    const char *config, *out, *device;
    const char *sets[64];
    int nsets, batch, iters, rounds, threads, no_ref, flops_only;
    unsigned long long seed;
} CliOpts;
int cli_parse_opts(int argc, char **argv, CliOpts *o, const char *verb, const char *usage);

// A whole-number option value in lo..hi: 0, or -1 after "avat3r VERB: FLAG 'V': expected ..." on stderr.
int cli_parse_int(const char *verb, const char *flag, const char *v, int lo, int hi, int *out);
// A finite number in [lo, hi] ((lo, hi] when lo_open), the whole string: 0, or -1 after
// "avat3r VERB: FLAG 'V': expected a number in [lo, hi]" on stderr.
int cli_parse_double(const char *verb, const char *flag, const char *v, double lo, double hi, int lo_open, double *out);

typedef struct cJSON cJSON;
// Writes j as indented JSON plus a newline to path, atomically (NAME.tmp.<pid>, then renamed).
void cli_write_json(const char *path, const cJSON *j);

int cmd_init(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_selfcheck(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_render(int argc, char **argv);
int cmd_bench_render(int argc, char **argv);
int cmd_bench_data(int argc, char **argv);
int cmd_bench_train(int argc, char **argv);
int cmd_bench_animate(int argc, char **argv);
int cmd_pack(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_animate(int argc, char **argv);
int cmd_launch(int argc, char **argv);
#endif
