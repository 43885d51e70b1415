// main.c — the test runner: runs every suite's tests, each in its own child process, and prints
// "N passed, N failed". Usage: avat3r_tests [substring ...]  (run only tests whose name matches)
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define LEAK_CHECK() __lsan_do_leak_check() // reports and exits non-zero on a leak
#else
#define LEAK_CHECK() ((void)0)
#endif

#include "../common/timer.h"
#include "checkpoint.h"
#include "data_config.h"
#include "model_config.h"
#include "test.h"
#include "train_config.h"

extern const TestCase common_tests[];
extern const TestCase layer_tests[];
extern const TestCase model_tests[];
extern const TestCase reference_tests[];
extern const TestCase render_tests[];
extern const TestCase render_reference_tests[];
extern const TestCase sampler_tests[];
extern const TestCase shard_tests[];
extern const TestCase data_reader_tests[];
extern const TestCase pack_tests[];
extern const TestCase loader_tests[];
extern const TestCase synth_tests[];
extern const TestCase loss_image_tests[];
extern const TestCase lpips_tests[];
extern const TestCase train_tests[];
extern const TestCase animate_tests[];
extern const TestCase landmarks_tests[];
extern const TestCase dist_tests[];
extern const TestCase fault_tests[];

static const TestCase *suites[] = {common_tests, layer_tests, model_tests, reference_tests, render_tests,
                                    render_reference_tests, sampler_tests, shard_tests,
                                    data_reader_tests, pack_tests, loader_tests, synth_tests,
                                    loss_image_tests, lpips_tests, train_tests, animate_tests,
                                    landmarks_tests, dist_tests, fault_tests};

int test_load_config(void *model_config, const char *path, char *err, size_t errlen) {
    DataConfig dc;
    TrainConfig tc;
    CfgTable extra[2] = {data_config_table(&dc), train_config_table(&tc)};
    return model_config_load_with((ModelConfig *)model_config, path, extra, 2, err, errlen);
}

int test_load_param_pair(const char *a, const char *b, float **p, float **q, size_t *np, size_t *nq) {
    ModelConfig c;
    CkptHeader h[2];
    char err[1024];
    *p = *q = NULL;
    if (checkpoint_load(a, &c, p, &h[0], err, sizeof err) || checkpoint_load(b, &c, q, &h[1], err, sizeof err)) {
        printf("    %s\n", err);
        free(*p), free(*q);
        *p = *q = NULL;
        return -1;
    }
    *np = h[0].n_params, *nq = h[1].n_params;
    return 0;
}

int test_same_params(const char *a, const char *b) {
    float *p, *q;
    size_t n, m, k = 0;
    if (test_load_param_pair(a, b, &p, &q, &n, &m)) return 0;
    int same = n == m && !memcmp(p, q, 4 * n);
    if (!same) {
        while (k < n && k < m && p[k] == q[k]) k++;
        printf("    %s and %s differ from parameter %zu of %zu\n", a, b, k, n);
    }
    free(p), free(q);
    return same;
}

char *test_read_text(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t n = 0, cap = 1 << 16;
    char *s = (char *)malloc(cap + 1);
    for (size_t got; (got = fread(s + n, 1, cap - n, f)) > 0;) { // not ftell: a log may still be growing
        n += got;
        if (n == cap) s = (char *)realloc(s, (cap *= 2) + 1);
    }
    fclose(f);
    s[n] = 0;
    if (len) *len = n;
    return s;
}

static char tmpdir[512];
const char *test_tmpdir(void) { return tmpdir; }

const char *test_micro_shards(const char *tag, int subjects, int frames) {
    static char shards[1024]; // valid until the next call
    char caps[1024], cmd[8192], done[1100];
    snprintf(shards, sizeof shards, "%s/%s_shards", tmpdir, tag);
    snprintf(done, sizeof done, "%s/.done", shards);
    if (access(done, F_OK) == 0) return shards; // made by an earlier test of this run
    snprintf(caps, sizeof caps, "%s/%s_caps", tmpdir, tag);
    snprintf(cmd, sizeof cmd,
             "'%s' synth --out '%s' --subjects %d --cameras 8 --frames %d --size 48x72 --sapiens-size 8x8 --no-drop "
             "--threads 2 > '%s.log' 2>&1 && '%s' pack --ava256 '%s' --out '%s' --size 32 --sapiens-size 8x8 --quiet "
             "--threads 2 >> '%s.log' 2>&1 && touch '%s'",
             AVAT3R_BINARY, caps, subjects, frames, caps, AVAT3R_BINARY, caps, shards, caps, done);
    return test_system(cmd) ? NULL : shards;
}

const char *test_source_root(void) {
    const char *r = getenv("AVAT3R_SOURCE_ROOT");
#ifdef AVAT3R_SOURCE_ROOT_DEFAULT
    if (!r) r = AVAT3R_SOURCE_ROOT_DEFAULT;
#endif
    return r ? r : ".";
}

int test_system(const char *cmd) {
    fflush(stdout);
    fflush(stderr);
    int st = system(cmd);
    int rc = (st == -1) ? -1 : (WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    if (rc != 0) fprintf(stderr, "    command failed (exit %d): %s\n", rc, cmd);
    return rc;
}

int test_python_script_args(const char *script, const char *args) {
    char cmd[16384];
    const char *py = getenv("AVAT3R_PYTHON") ? getenv("AVAT3R_PYTHON") : "/usr/bin/python3";
    const char *tag = strrchr(script, '/') ? strrchr(script, '/') + 1 : script; // the log prefix: no '/' for sed
    snprintf(cmd, sizeof cmd,
             "AVAT3R_BIN='%s' '%s' '%s/%s' %s > '%s/script.log' 2>&1; rc=$?; sed 's/^/    %s> /' "
             "'%s/script.log'; exit $rc",
             AVAT3R_BINARY, py, test_source_root(), script, args, tmpdir, tag, tmpdir);
    return test_system(cmd);
}

int test_python_script(const char *script) { return test_python_script_args(script, ""); }

static int matches(const char *name, int argc, char **argv) {
    if (argc <= 1) return 1;
    for (int i = 1; i < argc; i++)
        if (strstr(name, argv[i])) return 1;
    return 0;
}

int main(int argc, char **argv) {
    snprintf(tmpdir, sizeof tmpdir, "%s/avat3r_tests.%d", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (int)getpid());
    if (mkdir(tmpdir, 0755) != 0) {
        perror(tmpdir);
        return 2;
    }
    int timeout_s = getenv("AVAT3R_TEST_TIMEOUT") ? atoi(getenv("AVAT3R_TEST_TIMEOUT")) : 900;
    int passed = 0, failed = 0;
    for (size_t s = 0; s < sizeof suites / sizeof suites[0]; s++) {
        for (const TestCase *t = suites[s]; t->name; t++) {
            if (!matches(t->name, argc, argv)) continue;
            printf("RUN  %s\n", t->name);
            fflush(stdout);
            double t0 = time_now_s();
            pid_t pid = fork();
            if (pid == 0) {
                alarm(timeout_s); // a hung test is killed and counted as failed
                int rc = t->fn();
                fflush(stdout);
                fflush(stderr);
                // _exit skips the atexit hook where LeakSanitizer would run: run it here, so a test or
                // library leak fails the test under ASan (tools/test.sh)
                LEAK_CHECK();
                _exit(rc == 0 ? 0 : 1);
            }
            int st = 0;
            waitpid(pid, &st, 0);
            double dt = time_now_s() - t0;
            if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
                printf("PASS %s (%.2f s)\n", t->name, dt);
                passed++;
            } else {
                if (WIFSIGNALED(st))
                    printf("FAIL %s (killed by signal %d: %s)\n", t->name, WTERMSIG(st), strsignal(WTERMSIG(st)));
                else
                    printf("FAIL %s (exit %d, %.2f s)\n", t->name, WEXITSTATUS(st), dt);
                failed++;
            }
            fflush(stdout);
        }
    }
    if (!getenv("AVAT3R_KEEP_TMP")) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 && passed > 0 ? 0 : 1;
}
