// test.h — the project's minimal test harness. Each test is `int fn(void)` returning 0 on success;
// each test file exports a table `const TestCase NAME_tests[]` ending with {NULL, NULL}, listed in
// tests/main.c. The runner forks one child per test, so a crash or a FATAL exit fails that test only.
#ifndef AVAT3R_TEST_H
#define AVAT3R_TEST_H

#include <math.h>
#include <stdio.h>

typedef struct {
    const char *name;
    int (*fn)(void);
} TestCase;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "    check failed at %s:%d: %s\n    ", __FILE__, __LINE__, #cond);      \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

// Directory for files a test writes (created by the runner, one per run).
const char *test_tmpdir(void);
// Source tree root (for configs/ and tools/), from AVAT3R_SOURCE_ROOT or the build-time default.
const char *test_source_root(void);
// Runs `cmd` through /bin/sh; returns its exit status (or -1). Prints the command when it fails.
int test_system(const char *cmd);
// Runs <script> (a path from the source root, e.g. "tools/reference/selftest.py") with the project's Python
// (AVAT3R_PYTHON or /usr/bin/python3), its output indented and prefixed with the script's name so its own
// summary lines are never read as this runner's. Returns the exit status.
int test_python_script(const char *script);
// The same with arguments after the script (e.g. a verb: "selftest").
int test_python_script_args(const char *script, const char *args);

// Synthetic captures (`avat3r synth`, 8 cameras, 48×72) packed to 32×32 shards in TMP/<tag>_shards, made
// once per test run and shared by the tests that ask for the same tag. NULL if synth or pack failed; the
// string is valid until the next call.
const char *test_micro_shards(const char *tag, int subjects, int frames);

// Flips byte `at` (0 ≤ at < payload length; −1: the middle) of the payload of (blob, frame f, camera c) in
// the shard file at `path`, in place on disk (found through the HDF5 chunk index). 0, or −1 with err.
int test_flip_shard_payload(const char *path, int blob, int f, int c, long at, char *err, size_t errlen);
// Flips one byte of the first occurrence of the `n` bytes `what` in the file at `path`. 0, or −1 if absent.
int test_flip_file_bytes(const char *path, const void *what, size_t n);

// Edits member `name` of the zip at `path` (libzip rewrites the archive), the new member STORED and `size`
// bytes copied from `data`. add = 0: the member must exist; it is replaced, or deleted when data is NULL.
// add = 1: the zip is created when absent and the member added or replaced. 0, or −1 with a message.
int test_zip_edit(const char *path, const char *name, const void *data, size_t size, int add);

// The micro model the training tests run: 32×32 inputs, patch 4, width 32, 2 layers; 16 Sapiens channels
// are what `avat3r synth` writes (docs/formats.md "Aux maps"). TEST_MICRO_SETS adds one loader thread, 2
// OpenMP threads and 2 validation samples. `--set` options for `avat3r train` on test_micro_shards' shards.
#define TEST_MICRO_MODEL                                                                                           \
    "--set img_h=32 --set img_w=32 --set patch=4 --set width=32 --set heads=2 --set layers=2 --set expr_hidden=32 " \
    "--set expr_tokens=2 --set sapiens_h=8 --set sapiens_w=8 --set sapiens_ch=16 --set views_target=2 "
#define TEST_MICRO_SETS TEST_MICRO_MODEL "--set loader_threads=1 --set threads=2 --set val_samples=2 "
// The parameters of the model checkpoints a and b (malloc'd) and their counts; −1 when one does not load
// (it says why; nothing is left allocated).
int test_load_param_pair(const char *a, const char *b, float **p, float **q, size_t *np, size_t *nq);
// 1 when the model checkpoints a and b hold bit-identical parameters; else says where they first differ.
int test_same_params(const char *a, const char *b);

// The whole of a file as NUL-terminated text (malloc'd; its length in *len when len is not NULL), or NULL
// when it cannot be opened.
char *test_read_text(const char *path, size_t *len);

// Loads a config file the way `avat3r` does: model keys beside the data and training keys (configs/*.cfg
// hold all three). model_config_load alone accepts only model keys.
int test_load_config(void *model_config, const char *path, char *err, size_t errlen);

#endif
