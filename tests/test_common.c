// test_common.c — tests of common/: checked I/O and FATAL messages, Philox, timer, logger, config files.
#define _POSIX_C_SOURCE 200809L // fork, pipe, dup2, mkdir
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zip.h>

#include "config.h"
#include "log.h"
#include "rng.h"
#include "test.h"
#include "timer.h"
#include "util.h"

// ----------------------------------------------------------------------------------------------
// helpers

// Runs fn(arg) in a child with stderr captured into out; returns the child's exit code (-1 if it
// died by a signal). A child whose fn returns exits 0.
static int run_child(void (*fn)(void *), void *arg, char *out, size_t outlen) {
    int fds[2];
    if (pipe(fds) != 0) return -2;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return -2;
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        fn(arg);
        fflush(stderr);
        _exit(0);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t got;
    char sink[256];
    while ((got = read(fds[0], n + 1 < outlen ? out + n : sink, n + 1 < outlen ? outlen - 1 - n : sizeof sink)) > 0)
        if (n + 1 < outlen) n += (size_t)got;
    out[n] = '\0';
    close(fds[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void tmp_path(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", test_tmpdir(), name); }

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

static int read_text(const char *path, char *buf, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t got = fread(buf, 1, n - 1, f);
    buf[got] = '\0';
    fclose(f);
    return (int)got;
}

// ----------------------------------------------------------------------------------------------
// util

static void child_fatal(void *arg) {
    (void)arg;
    FATAL("something broke: %d", 42);
}

static int test_fatal_at(void) {
    char err[4096];
    int rc = run_child(child_fatal, NULL, err, sizeof err);
    CHECK(rc == 1, "exit code %d", rc);
    CHECK(strstr(err, "FATAL ") == err, "stderr: %s", err);
    CHECK(strstr(err, "test_common.c:"), "no file:line in: %s", err);
    CHECK(strstr(err, ": something broke: 42\n"), "stderr: %s", err);
    return 0;
}

static void child_fopen_missing(void *arg) {
    (void)arg;
    fopenCheck("/nonexistent_dir_avat3r/x.bin", "rb");
}

static void child_fopen_write_missing(void *arg) {
    (void)arg;
    fopenCheck("/nonexistent_dir_avat3r/x.bin", "wb");
}

static int test_fopen_check(void) {
    char err[4096];
    int rc = run_child(child_fopen_missing, NULL, err, sizeof err);
    CHECK(rc == 1, "exit code %d", rc);
    CHECK(strstr(err, "FATAL ") == err, "stderr: %s", err);
    CHECK(strstr(err, "test_common.c:"), "no caller file:line in: %s", err);
    CHECK(strstr(err, "'/nonexistent_dir_avat3r/x.bin'") && strstr(err, "'rb'"), "no path/mode: %s", err);
    CHECK(strstr(err, "(No such file or directory)"), "no strerror: %s", err);
    CHECK(strstr(err, "\n  hint: check the path exists and is readable"), "no hint: %s", err);
    rc = run_child(child_fopen_write_missing, NULL, err, sizeof err);
    CHECK(rc == 1 && strstr(err, "hint: check the directory exists and is writable"), "rc %d: %s", rc, err);
    return 0;
}

static void child_fread_short(void *arg) {
    FILE *f = fopenCheck((const char *)arg, "rb");
    float x[8];
    freadCheck(x, sizeof(float), 8, f);
}

static int test_fread_check(void) {
    char path[600];
    tmp_path(path, sizeof path, "short.bin");
    FILE *f = fopenCheck(path, "wb");
    float x[3] = {1, 2, 3}, y[3] = {0};
    fwriteCheck(x, sizeof(float), 3, f);
    fcloseCheck(f);
    f = fopenCheck(path, "rb");
    CHECK(file_size(f) == 12, "file_size %lld", (long long)file_size(f));
    freadCheck(y, sizeof(float), 3, f);
    CHECK(y[0] == 1 && y[1] == 2 && y[2] == 3, "read back %g %g %g", y[0], y[1], y[2]);
    fseekCheck(f, 4, SEEK_SET);
    CHECK(file_size(f) == 12 && ftell(f) == 4, "file_size must restore the position");
    freadCheck(y, sizeof(float), 1, f);
    CHECK(y[0] == 2, "after fseek read %g", y[0]);
    freadCheck(y, sizeof(float), 0, f); // zero items or zero-sized items are not a short read
    freadCheck(y, 0, 5, f);
    fcloseCheck(f);

    char err[4096];
    int rc = run_child(child_fread_short, path, err, sizeof err);
    CHECK(rc == 1, "exit code %d", rc);
    CHECK(strstr(err, "FATAL ") == err && strstr(err, "test_common.c:"), "stderr: %s", err);
    CHECK(strstr(err, "file truncated or corrupt?"), "no hint: %s", err);
    CHECK(strstr(err, "expected 8") && strstr(err, "got 3"), "no counts: %s", err);
    return 0;
}

static void child_calloc_overflow(void *arg) {
    (void)arg;
    callocCheck(SIZE_MAX / 2, 4);
}

#if !defined(__SANITIZE_ADDRESS__)
static void child_malloc_huge(void *arg) {
    (void)arg;
    mallocCheck((size_t)1 << 62);
}
#endif

static int test_alloc_check(void) {
    float *p = mallocCheck(0); // must not be mistaken for a failure
    free(p);
    int *q = callocCheck(16, sizeof(int));
    for (int i = 0; i < 16; i++) CHECK(q[i] == 0, "calloc not zeroed");
    free(q);
    char err[4096];
    int rc = run_child(child_calloc_overflow, NULL, err, sizeof err);
    CHECK(rc == 1, "exit code %d", rc);
    CHECK(strstr(err, "hint: out of memory: reduce batch size or model size"), "stderr: %s", err);
#if !defined(__SANITIZE_ADDRESS__) // ASan aborts on huge requests instead of returning NULL
    rc = run_child(child_malloc_huge, NULL, err, sizeof err);
    CHECK(rc == 1, "exit code %d", rc);
    CHECK(strstr(err, "4611686018427387904 bytes"), "no size: %s", err);
    CHECK(strstr(err, "hint: out of memory: reduce batch size or model size"), "stderr: %s", err);
#endif
    return 0;
}

static void child_atomic_bad_dir(void *arg) {
    (void)arg;
    AtomicFile af;
    atomicOpen(&af, "/nonexistent_dir_avat3r/out.ckpt");
}

static int test_atomic_file(void) {
    char path[600], buf[256];
    tmp_path(path, sizeof path, "atomic.txt");
    CHECK(write_text(path, "old contents\n") == 0, "cannot write %s", path);
    AtomicFile af;
    atomicOpen(&af, path);
    CHECK(strstr(af.tmp, ".tmp.") != NULL, "tmp name %s", af.tmp);
    fprintf(af.f, "new contents\n");
    fflush(af.f);
    read_text(path, buf, sizeof buf);
    CHECK(strcmp(buf, "old contents\n") == 0, "target changed before close: %s", buf);
    char tmp[sizeof af.tmp];
    strcpy(tmp, af.tmp);
    atomicClose(&af);
    read_text(path, buf, sizeof buf);
    CHECK(strcmp(buf, "new contents\n") == 0, "target after close: %s", buf);
    CHECK(access(tmp, F_OK) != 0, "temporary file %s left behind", tmp);

    char err[4096];
    int rc = run_child(child_atomic_bad_dir, NULL, err, sizeof err);
    CHECK(rc == 1, "exit code %d", rc);
    CHECK(strstr(err, "/nonexistent_dir_avat3r/out.ckpt") && strstr(err, "hint: "), "stderr: %s", err);
    return 0;
}

// ----------------------------------------------------------------------------------------------
// rng

static int test_philox_kat(void) {
    // known-answer vectors from Random123 (kat_vectors: philox4x32_10)
    const uint32_t ctr[3][4] = {{0, 0, 0, 0},
                                {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
                                {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}};
    const uint32_t key[3][2] = {{0, 0}, {0xffffffff, 0xffffffff}, {0xa4093822, 0x299f31d0}};
    const uint32_t want[3][4] = {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
                                 {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
                                 {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}};
    for (int t = 0; t < 3; t++) {
        uint32_t out[4];
        philox4x32_10(ctr[t], key[t], out);
        for (int j = 0; j < 4; j++)
            CHECK(out[j] == want[t][j], "vector %d word %d: got 0x%08x want 0x%08x", t, j, out[j], want[t][j]);
    }
    // the Rng mapping: key = seed halves, counter = (draw index, stream)
    Rng r = rng_make(0x299f31d0a4093822ull, ((uint64_t)0x03707344 << 32) | 0x13198a2e);
    CHECK(rng_u32_at(&r, ((uint64_t)0x85a308d3 << 32) | 0x243f6a88) == 0xd16cfe09, "Rng -> Philox mapping");
    return 0;
}

static int test_rng_uniform(void) {
    Rng r = rng_make(1234, 0);
    const int n = 1000000;
    double s = 0, s2 = 0, s64 = 0;
    float lo = 1, hi = 0;
    for (int i = 0; i < n; i++) {
        float u = rng_next_uniform(&r);
        CHECK(u >= 0.0f && u < 1.0f, "uniform %g out of [0,1)", u);
        if (u < lo) lo = u;
        if (u > hi) hi = u;
        s += u;
        s2 += (double)u * u;
        double d = rng_uniform64_at(&r, (uint64_t)i);
        CHECK(d >= 0.0 && d < 1.0, "uniform64 %g out of [0,1)", d);
        s64 += d;
    }
    double mean = s / n, var = s2 / n - mean * mean;
    // standard error of the mean is 0.29/sqrt(1e6) = 3e-4: 5e-3 is a >10 sigma tolerance
    CHECK(fabs(mean - 0.5) < 5e-3, "mean %g", mean);
    CHECK(fabs(var - 1.0 / 12) < 5e-3, "variance %g", var);
    CHECK(fabs(s64 / n - 0.5) < 5e-3, "uniform64 mean %g", s64 / n);
    CHECK(lo < 1e-4 && hi > 1 - 1e-4, "range [%g, %g] not covered", lo, hi);
    CHECK(r.counter == (uint64_t)n, "counter %llu", (unsigned long long)r.counter);
    return 0;
}

static int test_rng_normal(void) {
    Rng r = rng_make(42, 7);
    const int n = 1000000;
    double s = 0, s2 = 0, s4 = 0;
    for (int i = 0; i < n; i++) {
        double z = rng_next_normal(&r);
        CHECK(isfinite(z), "non-finite normal at %d", i);
        s += z;
        s2 += z * z;
    }
    double mean = s / n, var = s2 / n - mean * mean;
    r.counter = 0;
    for (int i = 0; i < n; i++) {
        double z = rng_next_normal(&r) - mean;
        s4 += z * z * z * z;
    }
    double kurt = s4 / n / (var * var);
    CHECK(fabs(mean) < 5e-3, "mean %g", mean);
    CHECK(fabs(var - 1) < 1e-2, "variance %g", var);
    CHECK(fabs(kurt - 3) < 0.05, "kurtosis %g (want 3)", kurt); // sd of the estimate is ~0.005
    return 0;
}

static int test_rng_purity(void) {
    Rng a = rng_make(99, 3), b = rng_make(99, 3);
    for (uint64_t i = 0; i < 1000; i++) {
        CHECK(rng_next_u32(&a) == rng_u32_at(&b, i), "u32 draw %llu", (unsigned long long)i);
        CHECK(b.counter == 0, "*_at must not advance the counter");
    }
    a.counter = 0;
    for (uint64_t i = 0; i < 1000; i++) CHECK(rng_next_uniform(&a) == rng_uniform_at(&b, i), "uniform draw");
    a.counter = 0;
    for (uint64_t i = 0; i < 1000; i++) CHECK(rng_next_normal(&a) == rng_normal_at(&b, i), "normal draw");
    // far-away indices (high counter word) work and are reproducible
    uint64_t far = 0x123456789abcull;
    CHECK(rng_u32_at(&b, far) == rng_u32_at(&b, far), "not pure");
    CHECK(rng_u32_at(&b, far) != rng_u32_at(&b, far & 0xffffffffu), "high counter word ignored");
    return 0;
}

static int test_rng_streams(void) {
    Rng s0 = rng_make(5, 0), s1 = rng_make(5, 1), s2 = rng_make(5, 1ull << 32), t0 = rng_make(6, 0),
        t1 = rng_make(5ull | (1ull << 32), 0);
    int same01 = 0, same02 = 0, sameseed = 0, samehigh = 0;
    for (uint64_t i = 0; i < 1000; i++) {
        uint32_t x = rng_u32_at(&s0, i);
        same01 += x == rng_u32_at(&s1, i);
        same02 += x == rng_u32_at(&s2, i);
        sameseed += x == rng_u32_at(&t0, i);
        samehigh += x == rng_u32_at(&t1, i);
    }
    CHECK(same01 < 3 && same02 < 3, "streams agree on %d / %d of 1000 draws", same01, same02);
    CHECK(sameseed < 3 && samehigh < 3, "seeds agree on %d / %d of 1000 draws", sameseed, samehigh);
    return 0;
}

static void child_below_zero(void *arg) {
    Rng *r = arg;
    rng_next_below(r, 0);
}

static int test_rng_below(void) {
    Rng r = rng_make(7, 0);
    int count[3] = {0};
    const int n = 300000;
    for (int i = 0; i < n; i++) {
        uint32_t x = rng_next_below(&r, 3);
        CHECK(x < 3, "next_below(3) = %u", x);
        count[x]++;
    }
    double chi2 = 0;
    for (int k = 0; k < 3; k++) chi2 += (count[k] - n / 3.0) * (count[k] - n / 3.0) / (n / 3.0);
    CHECK(chi2 < 20, "chi2 %g for counts %d %d %d", chi2, count[0], count[1], count[2]); // 2 dof
    for (int i = 0; i < 100; i++) CHECK(rng_next_below(&r, 1) == 0, "next_below(1)");
    // n = 3 * 2^30: without rejection, x = floor(u * 3/4) maps two u's onto every x = 0 mod 3 and one
    // onto the others, so P(x mod 3 == 0) would be 1/2 instead of 1/3
    uint32_t big = 0xC0000000u;
    int zero_mod3 = 0;
    for (int i = 0; i < 30000; i++) {
        uint32_t x = rng_next_below(&r, big);
        CHECK(x < big, "next_below(big) = %u", x);
        zero_mod3 += x % 3 == 0;
    }
    CHECK(zero_mod3 > 9500 && zero_mod3 < 10500, "x mod 3 == 0 in %d of 30000 draws (want ~10000)", zero_mod3);
    char err[1024];
    int rc = run_child(child_below_zero, &r, err, sizeof err);
    CHECK(rc == 1 && strstr(err, "FATAL"), "next_below(0): rc %d, %s", rc, err);
    return 0;
}

// ----------------------------------------------------------------------------------------------
// timer, log

static int test_timer(void) {
    double t0 = time_now_s();
    struct timespec ts = {0, 20000000};
    nanosleep(&ts, NULL);
    double t1 = time_now_s();
    CHECK(t1 - t0 >= 0.015 && t1 - t0 < 5.0, "20 ms sleep measured as %g s", t1 - t0);
    return 0;
}

static void child_log(void *arg) {
    log_set_file((const char *)arg);
    log_set_level(LOG_INFO);
    LOG_D("hidden %d", 1);
    LOG_I("hello %d", 2);
    LOG_W("careful\n");
    log_set_level(LOG_DEBUG);
    LOG_D("now shown");
    log_set_level(LOG_ERROR);
    LOG_W("hidden too");
    LOG_E("bad %s", "thing");
    log_set_file(NULL);
    LOG_E("stderr only");
}

static int test_log(void) {
    char path[600], err[4096], file[4096];
    tmp_path(path, sizeof path, "run.log");
    CHECK(write_text(path, "previous line\n") == 0, "cannot write %s", path);
    int rc = run_child(child_log, path, err, sizeof err);
    CHECK(rc == 0, "exit code %d: %s", rc, err);
    read_text(path, file, sizeof file);
    CHECK(strncmp(file, "previous line\n[", 15) == 0, "log file must be appended to: %s", file);
    CHECK(strstr(file, "] INFO hello 2\n") && strstr(file, "] WARN careful\n") &&
              strstr(file, "] DEBUG now shown\n") && strstr(file, "] ERROR bad thing\n"),
          "log file: %s", file);
    CHECK(!strstr(file, "hidden") && !strstr(file, "stderr only"), "log file: %s", file);
    CHECK(strstr(err, "] INFO hello 2\n") && strstr(err, "] ERROR stderr only\n") && !strstr(err, "hidden"),
          "stderr: %s", err);
    CHECK(err[0] == '[' && err[5] == '-' && err[20] == ']', "timestamp format: %s", err);
    return 0;
}

// ----------------------------------------------------------------------------------------------
// config

typedef struct {
    int width;
    int depth;
    double lr;
    int use_sapiens;
    char name[CFG_STR_MAX];
} ModelCfg;

typedef struct {
    int steps;
    double beta;
    char out_dir[CFG_STR_MAX];
} TrainCfg;

static const CfgKey model_keys[] = {
    {"width", CFG_INT, offsetof(ModelCfg, width), 1, 8192, "128", "hidden width"},
    {"depth", CFG_INT, offsetof(ModelCfg, depth), 0, 64, "4", "number of blocks"},
    {"lr", CFG_FLOAT, offsetof(ModelCfg, lr), 0, 1, "3e-4", "learning rate"},
    {"use_sapiens", CFG_BOOL, offsetof(ModelCfg, use_sapiens), 0, 0, "false", "use Sapiens features"},
    {"name", CFG_STRING, offsetof(ModelCfg, name), 0, 0, "tiny", "model name"},
};

static const CfgKey train_keys[] = {
    {"steps", CFG_INT, offsetof(TrainCfg, steps), 1, 1e9, "1000", "optimizer steps"},
    {"beta", CFG_FLOAT, offsetof(TrainCfg, beta), -1, 1, "0.9", "momentum"},
    {"out_dir", CFG_STRING, offsetof(TrainCfg, out_dir), 0, 0, "", "output directory"},
};

#define NKEYS(a) ((int)(sizeof(a) / sizeof((a)[0])))

typedef struct {
    ModelCfg m;
    TrainCfg t;
    CfgTable tables[2];
} Cfgs;

static void cfgs_init(Cfgs *c) {
    memset(c, 0, sizeof *c);
    c->tables[0] = (CfgTable){model_keys, NKEYS(model_keys), &c->m};
    c->tables[1] = (CfgTable){train_keys, NKEYS(train_keys), &c->t};
    char err[512];
    if (cfg_defaults(c->tables, 2, err, sizeof err) != 0) {
        fprintf(stderr, "cfg_defaults: %s\n", err);
        exit(1);
    }
}

static int test_config_defaults(void) {
    Cfgs c;
    cfgs_init(&c);
    CHECK(c.m.width == 128 && c.m.depth == 4 && c.m.lr == 3e-4 && c.m.use_sapiens == 0, "model defaults");
    CHECK(strcmp(c.m.name, "tiny") == 0, "name default '%s'", c.m.name);
    CHECK(c.t.steps == 1000 && c.t.beta == 0.9 && c.t.out_dir[0] == '\0', "train defaults");

    // an invalid default is reported with its key
    static const CfgKey bad[] = {{"ok", CFG_INT, 0, 0, 10, "3", ""}, {"heads", CFG_INT, 4, 1, 16, "0", ""}};
    int dst[2];
    CfgTable t = {bad, 2, dst};
    char err[512];
    CHECK(cfg_defaults(&t, 1, err, sizeof err) != 0, "bad default accepted");
    CHECK(strstr(err, "key 'heads'") && strstr(err, "value 0 out of range [1, 16]"), "message: %s", err);
    static const CfgKey bad2[] = {{"flag", CFG_BOOL, 0, 0, 0, "maybe", ""}};
    CfgTable t2 = {bad2, 1, dst};
    CHECK(cfg_defaults(&t2, 1, err, sizeof err) != 0 && strstr(err, "key 'flag'"), "message: %s", err);
    return 0;
}

static int test_config_file(void) {
    Cfgs c;
    cfgs_init(&c);
    char path[600], err[1024];
    tmp_path(path, sizeof path, "basic.cfg");
    CHECK(write_text(path, "# a comment line\n"
                           "\n"
                           "   width=256   # trailing comment\n"
                           "depth = 12\r\n" // CRLF line ending
                           "\tlr = 1e-3\n"
                           "use_sapiens = yes\n"
                           "name = big model   \n"
                           "steps = +5000\n"
                           "beta = -0.5#no space before the comment\n"
                           "out_dir = runs/a\n"
                           "   # indented comment\n"
                           "width = 512") == 0, // no final newline; later lines override
          "write");
    int rc = cfg_load_file(path, c.tables, 2, err, sizeof err);
    CHECK(rc == 0, "load failed: %s", err);
    CHECK(c.m.width == 512 && c.m.depth == 12 && c.m.lr == 1e-3 && c.m.use_sapiens == 1, "model values %d %d %g %d",
          c.m.width, c.m.depth, c.m.lr, c.m.use_sapiens);
    CHECK(strcmp(c.m.name, "big model") == 0, "string '%s'", c.m.name);
    CHECK(c.t.steps == 5000 && c.t.beta == -0.5 && strcmp(c.t.out_dir, "runs/a") == 0, "train values");

    const char *bools[][2] = {{"true", "1"}, {"false", "0"}, {"1", "1"}, {"0", "0"}, {"no", "0"}, {"TRUE", "1"}};
    for (int i = 0; i < 6; i++) {
        char text[64];
        snprintf(text, sizeof text, "use_sapiens = %s\n", bools[i][0]);
        CHECK(cfg_load_text(text, "b.cfg", c.tables, 2, err, sizeof err) == 0, "%s: %s", bools[i][0], err);
        CHECK(c.m.use_sapiens == atoi(bools[i][1]), "bool '%s' -> %d", bools[i][0], c.m.use_sapiens);
    }
    // empty text and an empty string value are fine
    CHECK(cfg_load_text("", "e.cfg", c.tables, 2, err, sizeof err) == 0, "empty text: %s", err);
    CHECK(cfg_load_text("out_dir =\n", "e.cfg", c.tables, 2, err, sizeof err) == 0 && c.t.out_dir[0] == '\0',
          "empty string value: %s", err);

    tmp_path(path, sizeof path, "does_not_exist.cfg");
    CHECK(cfg_load_file(path, c.tables, 2, err, sizeof err) != 0, "missing file accepted");
    CHECK(strstr(err, path) && strstr(err, "No such file or directory"), "message: %s", err);
    return 0;
}

// Loads `text` as "x.cfg" and expects an error containing every one of the NULL-ended strings.
static int expect_error(Cfgs *c, const char *text, const char **want) {
    char err[1024];
    int rc = cfg_load_text(text, "x.cfg", c->tables, 2, err, sizeof err);
    CHECK(rc != 0, "accepted: %s", text);
    for (int i = 0; want[i]; i++) CHECK(strstr(err, want[i]), "'%s' not in message: %s", want[i], err);
    return 0;
}

static int test_config_errors(void) {
    Cfgs c;
    cfgs_init(&c);
    struct {
        const char *text;
        const char *want[4];
    } cases[] = {
        {"width = 64\n\nwidth = 0\n", {"x.cfg:3: key 'width': value 0 out of range [1, 8192]", NULL}},
        {"width = 9000\n", {"x.cfg:1: key 'width': value 9000 out of range [1, 8192]", NULL}},
        {"width = 4.5\n", {"x.cfg:1: key 'width': expected an integer, got '4.5'", NULL}},
        {"#\nwidth = 4x\n", {"x.cfg:2: key 'width': expected an integer, got '4x'", NULL}},
        {"width = 0x10\n", {"x.cfg:1: key 'width':", "integer", NULL}},
        {"width =\n", {"x.cfg:1: key 'width': expected an integer, got ''", NULL}},
        {"width = 99999999999\n", {"x.cfg:1: key 'width':", "does not fit", NULL}},
        {"width = -99999999999999999999999\n", {"x.cfg:1: key 'width':", "does not fit", NULL}},
        {"lr = abc\n", {"x.cfg:1: key 'lr': expected a number, got 'abc'", NULL}},
        {"lr = 1e-3x\n", {"x.cfg:1: key 'lr': expected a number", NULL}},
        {"lr = nan\n", {"x.cfg:1: key 'lr': expected a finite number", NULL}},
        {"lr = inf\n", {"x.cfg:1: key 'lr': expected a finite number", NULL}},
        {"lr = 1e999\n", {"x.cfg:1: key 'lr': expected a finite number", NULL}},
        {"lr = 2.5\n", {"x.cfg:1: key 'lr': value 2.5 out of range [0, 1]", NULL}},
        {"beta = -1.5\n", {"x.cfg:1: key 'beta': value -1.5 out of range [-1, 1]", NULL}},
        {"use_sapiens = maybe\n", {"x.cfg:1: key 'use_sapiens': expected true/false/1/0/yes/no", NULL}},
        {"widht = 8\n", {"x.cfg:1: unknown key 'widht' (did you mean 'width'?)", NULL}},
        {"\n\nstepz = 8\n", {"x.cfg:3: unknown key 'stepz' (did you mean 'steps'?)", NULL}},
        {"completely_unknown = 8\n", {"x.cfg:1: unknown key 'completely_unknown'", NULL}},
        {"width 8\n", {"x.cfg:1: expected 'key = value'", NULL}},
        {"width = 8\n\n\n\njust words\n", {"x.cfg:5: expected 'key = value'", NULL}},
        {"= 8\n", {"x.cfg:1: expected 'key = value'", NULL}},
        {"my width = 8\n", {"x.cfg:1: expected 'key = value'", NULL}},
        {"include =\n", {"x.cfg:1: include", NULL}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (expect_error(&c, cases[i].text, cases[i].want) != 0) return 1;
    // no "did you mean" for far-away names
    char err[1024];
    CHECK(cfg_load_text("zzzzzz = 1\n", "x.cfg", c.tables, 2, err, sizeof err) != 0 && !strstr(err, "did you mean"),
          "message: %s", err);
    // a string of CFG_STR_MAX - 1 bytes fits, one more does not
    char text[CFG_STR_MAX + 32];
    snprintf(text, sizeof text, "name = %0*d\n", CFG_STR_MAX - 1, 0);
    CHECK(cfg_load_text(text, "x.cfg", c.tables, 2, err, sizeof err) == 0, "longest string: %s", err);
    CHECK(strlen(c.m.name) == CFG_STR_MAX - 1, "string length %zu", strlen(c.m.name));
    snprintf(text, sizeof text, "name = %0*d\n", CFG_STR_MAX, 0);
    const char *want[] = {"x.cfg:1: key 'name':", "too long", NULL};
    if (expect_error(&c, text, want) != 0) return 1;
    // a tiny error buffer is truncated, never overflowed
    char small[8];
    CHECK(cfg_load_text("width = 0\n", "x.cfg", c.tables, 2, small, sizeof small) != 0 && strlen(small) == 7,
          "small buffer: %s", small);
    CHECK(cfg_load_text("width = 0\n", "x.cfg", c.tables, 2, NULL, 0) != 0, "NULL error buffer");
    return 0;
}

static int test_config_include(void) {
    char dir[600], sub[700], path[800], err[1024];
    tmp_path(dir, sizeof dir, "inc");
    snprintf(sub, sizeof sub, "%s/sub", dir);
    CHECK(mkdir(dir, 0755) == 0 && mkdir(sub, 0755) == 0, "mkdir %s", sub);
    snprintf(path, sizeof path, "%s/base.cfg", sub);
    CHECK(write_text(path, "width = 8\ndepth = 2\nlr = 0.5\ninclude = common.cfg # relative to sub/\n") == 0, "w");
    snprintf(path, sizeof path, "%s/common.cfg", sub);
    CHECK(write_text(path, "steps = 77\nbeta = 0.25\n") == 0, "w");
    snprintf(path, sizeof path, "%s/main.cfg", dir);
    CHECK(write_text(path, "width = 4       # overridden by the include below\n"
                           "include = sub/base.cfg\n"
                           "depth = 3       # overrides the include\n"
                           "beta = 0.125\n") == 0,
          "w");
    Cfgs c;
    cfgs_init(&c);
    CHECK(cfg_load_file(path, c.tables, 2, err, sizeof err) == 0, "load: %s", err);
    CHECK(c.m.width == 8 && c.m.depth == 3 && c.m.lr == 0.5, "model %d %d %g", c.m.width, c.m.depth, c.m.lr);
    CHECK(c.t.steps == 77 && c.t.beta == 0.125, "train %d %g", c.t.steps, c.t.beta);

    // the same file may be included twice in sequence (not a cycle)
    snprintf(path, sizeof path, "%s/twice.cfg", dir);
    CHECK(write_text(path, "include = sub/common.cfg\nsteps = 1\ninclude = sub/common.cfg\n") == 0, "w");
    CHECK(cfg_load_file(path, c.tables, 2, err, sizeof err) == 0 && c.t.steps == 77, "twice: %s", err);

    // an error inside an included file names that file and its line
    snprintf(path, sizeof path, "%s/bad.cfg", sub);
    CHECK(write_text(path, "\n\nsteps = 0\n") == 0, "w");
    snprintf(path, sizeof path, "%s/usebad.cfg", dir);
    CHECK(write_text(path, "include = sub/bad.cfg\n") == 0, "w");
    CHECK(cfg_load_file(path, c.tables, 2, err, sizeof err) != 0, "bad include accepted");
    char want[900];
    snprintf(want, sizeof want, "%s/sub/bad.cfg:3: key 'steps': value 0 out of range", dir);
    CHECK(strstr(err, want), "message: %s", err);

    // a missing include
    snprintf(path, sizeof path, "%s/missing.cfg", dir);
    CHECK(write_text(path, "width = 3\ninclude = nope.cfg\n") == 0, "w");
    CHECK(cfg_load_file(path, c.tables, 2, err, sizeof err) != 0, "missing include accepted");
    snprintf(want, sizeof want, "%s:2: cannot open include 'nope.cfg': No such file or directory", path);
    CHECK(strstr(err, want), "message: %s", err);

    // in-memory text resolves includes from the current directory
    char text[900];
    snprintf(text, sizeof text, "include = %s/sub/common.cfg\nbeta = 0.5\n", dir);
    CHECK(cfg_load_text(text, "mem", c.tables, 2, err, sizeof err) == 0, "text include: %s", err);
    CHECK(c.t.steps == 77 && c.t.beta == 0.5, "text include values");
    CHECK(cfg_load_text("\ninclude = nope_avat3r.cfg\n", "mem", c.tables, 2, err, sizeof err) != 0 &&
              strstr(err, "mem:2: cannot open include 'nope_avat3r.cfg': No such file or directory"),
          "message: %s", err);
    return 0;
}

static int test_config_include_cycle(void) {
    char dir[600], a[700], b[700], self[700], err[4096], want[3000];
    tmp_path(dir, sizeof dir, "cyc");
    CHECK(mkdir(dir, 0755) == 0, "mkdir");
    snprintf(a, sizeof a, "%s/a.cfg", dir);
    snprintf(b, sizeof b, "%s/b.cfg", dir);
    CHECK(write_text(a, "width = 2\ninclude = b.cfg\n") == 0, "w");
    CHECK(write_text(b, "depth = 2\n\ninclude = ./a.cfg\n") == 0, "w"); // a different spelling of a.cfg
    Cfgs c;
    cfgs_init(&c);
    CHECK(cfg_load_file(a, c.tables, 2, err, sizeof err) != 0, "cycle accepted");
    snprintf(want, sizeof want, "%s:3: include cycle: %s -> %s -> %s/./a.cfg", b, a, b, dir);
    CHECK(strstr(err, want), "message: %s\nwant: %s", err, want);

    snprintf(self, sizeof self, "%s/self.cfg", dir);
    CHECK(write_text(self, "include = self.cfg\n") == 0, "w");
    CHECK(cfg_load_file(self, c.tables, 2, err, sizeof err) != 0, "self include accepted");
    snprintf(want, sizeof want, "%s:1: include cycle: %s -> %s", self, self, self);
    CHECK(strstr(err, want), "message: %s", err);
    return 0;
}

static int test_config_include_depth(void) {
    // f0 includes f1 includes ... : 8 levels of includes are fine, 9 are refused
    char dir[600], path[700], text[64], err[4096];
    tmp_path(dir, sizeof dir, "deep");
    CHECK(mkdir(dir, 0755) == 0, "mkdir");
    for (int i = 0; i <= 9; i++) {
        snprintf(path, sizeof path, "%s/f%d.cfg", dir, i);
        if (i < 9)
            snprintf(text, sizeof text, "steps = %d\ninclude = f%d.cfg\n", 100 + i, i + 1);
        else
            snprintf(text, sizeof text, "steps = 9\n");
        CHECK(write_text(path, text) == 0, "w");
    }
    Cfgs c;
    cfgs_init(&c);
    snprintf(path, sizeof path, "%s/f1.cfg", dir); // f1 .. f9: 8 levels
    CHECK(cfg_load_file(path, c.tables, 2, err, sizeof err) == 0, "8 levels refused: %s", err);
    CHECK(c.t.steps == 9, "steps %d", c.t.steps);
    snprintf(path, sizeof path, "%s/f0.cfg", dir); // f0 .. f9: 9 levels
    CHECK(cfg_load_file(path, c.tables, 2, err, sizeof err) != 0, "9 levels accepted");
    char want[800];
    snprintf(want, sizeof want, "%s/f8.cfg:2: include 'f9.cfg' nested too deep", dir);
    CHECK(strstr(err, want), "message: %s", err);
    return 0;
}

static int test_config_set(void) {
    Cfgs c;
    cfgs_init(&c);
    char err[1024];
    CHECK(cfg_set("width=64", "--set", c.tables, 2, err, sizeof err) == 0 && c.m.width == 64, "set: %s", err);
    CHECK(cfg_set("  lr = 0.25 ", "--set", c.tables, 2, err, sizeof err) == 0 && c.m.lr == 0.25, "set: %s", err);
    CHECK(cfg_set("out_dir=runs/x y", "--set", c.tables, 2, err, sizeof err) == 0 &&
              strcmp(c.t.out_dir, "runs/x y") == 0,
          "set string: %s '%s'", err, c.t.out_dir);
    CHECK(cfg_set("width=0", "--set", c.tables, 2, err, sizeof err) != 0, "range accepted");
    CHECK(strcmp(err, "--set: key 'width': value 0 out of range [1, 8192]") == 0, "message: %s", err);
    CHECK(c.m.width == 64, "a refused value must not be stored");
    CHECK(cfg_set("widht=3", "--set", c.tables, 2, err, sizeof err) != 0 &&
              strcmp(err, "--set: unknown key 'widht' (did you mean 'width'?)") == 0,
          "message: %s", err);
    CHECK(cfg_set("width", "--set", c.tables, 2, err, sizeof err) != 0 &&
              strstr(err, "--set: expected 'key = value'") == err,
          "message: %s", err);
    CHECK(cfg_set("name=a#b", "--set", c.tables, 2, err, sizeof err) != 0 && strstr(err, "--set: key 'name':"),
          "'#' in a value: %s", err);
    return 0;
}

static int test_config_roundtrip(void) {
    Cfgs c, d;
    cfgs_init(&c);
    c.m.width = 4096;
    c.m.depth = 0;
    c.m.lr = 0.1; // not exactly representable: %.17g must still round-trip
    c.m.use_sapiens = 1;
    strcpy(c.m.name, "model with spaces/and=equals");
    c.t.steps = 123456789;
    c.t.beta = -1.0 / 3.0;
    strcpy(c.t.out_dir, "");
    char *s = cfg_to_string(c.tables, 2);
    const char *want = "width = 4096\ndepth = 0\nlr = 0.10000000000000001\nuse_sapiens = true\n"
                       "name = model with spaces/and=equals\nsteps = 123456789\nbeta = -0.33333333333333331\n"
                       "out_dir = \n";
    CHECK(strcmp(s, want) == 0, "canonical text:\n%s", s);

    char path[600], file[2048], err[1024];
    tmp_path(path, sizeof path, "roundtrip.cfg");
    FILE *f = fopenCheck(path, "wb");
    cfg_write(f, c.tables, 2);
    fcloseCheck(f);
    read_text(path, file, sizeof file);
    CHECK(strcmp(file, s) == 0, "cfg_write and cfg_to_string differ:\n%s", file);

    cfgs_init(&d);
    CHECK(cfg_load_file(path, d.tables, 2, err, sizeof err) == 0, "reload: %s", err);
    CHECK(d.m.width == c.m.width && d.m.depth == c.m.depth && d.m.lr == c.m.lr && d.m.use_sapiens == 1 &&
              strcmp(d.m.name, c.m.name) == 0,
          "model differs after reload");
    CHECK(d.t.steps == c.t.steps && d.t.beta == c.t.beta && strcmp(d.t.out_dir, c.t.out_dir) == 0,
          "train differs after reload");
    char *s2 = cfg_to_string(d.tables, 2);
    CHECK(strcmp(s, s2) == 0, "text differs after reload:\n%s", s2);
    free(s);
    free(s2);

    // extreme doubles survive too
    const double vals[] = {5e-324, 1e-300, 0.999999999999999889, 2.2250738585072014e-308};
    for (int i = 0; i < 4; i++) {
        c.m.lr = vals[i];
        s = cfg_to_string(c.tables, 2);
        cfgs_init(&d);
        CHECK(cfg_load_text(s, "rt", d.tables, 2, err, sizeof err) == 0, "%s", err);
        CHECK(d.m.lr == vals[i], "lr %.17g came back as %.17g", vals[i], d.m.lr);
        free(s);
    }
    return 0;
}

static int test_config_multi_table(void) {
    Cfgs c;
    cfgs_init(&c);
    char err[1024];
    CHECK(cfg_load_text("steps = 5\nwidth = 16\nout_dir = o\nname = n\n", "m.cfg", c.tables, 2, err, sizeof err) == 0,
          "%s", err);
    CHECK(c.t.steps == 5 && c.m.width == 16 && strcmp(c.t.out_dir, "o") == 0 && strcmp(c.m.name, "n") == 0,
          "values went to the wrong table");
    // one table alone does not know the other's keys
    CHECK(cfg_load_text("steps = 5\n", "m.cfg", c.tables, 1, err, sizeof err) != 0 &&
              strstr(err, "m.cfg:1: unknown key 'steps'"),
          "message: %s", err);
    char *s = cfg_to_string(&c.tables[1], 1);
    CHECK(strcmp(s, "steps = 5\nbeta = 0.90000000000000002\nout_dir = o\n") == 0, "one table: %s", s);
    free(s);
    return 0;
}

static void child_duplicate_key(void *arg) {
    (void)arg;
    static const CfgKey other[] = {{"lr", CFG_FLOAT, 0, 0, 1, "0.1", "clashes with the model table"}};
    double x;
    ModelCfg m;
    CfgTable t[2] = {{model_keys, NKEYS(model_keys), &m}, {other, 1, &x}};
    char err[256];
    cfg_defaults(t, 2, err, sizeof err);
}

static void child_duplicate_in_table(void *arg) {
    (void)arg;
    static const CfgKey keys[] = {{"a", CFG_INT, 0, 0, 1, "0", ""}, {"a", CFG_INT, 4, 0, 1, "0", ""}};
    int x[2];
    CfgTable t = {keys, 2, x};
    char err[256];
    cfg_set("a=1", "--set", &t, 1, err, sizeof err);
}

static int test_config_duplicate_key(void) {
    char err[4096];
    int rc = run_child(child_duplicate_key, NULL, err, sizeof err);
    CHECK(rc == 1, "exit code %d", rc);
    CHECK(strstr(err, "FATAL ") == err && strstr(err, "'lr'"), "stderr: %s", err);
    rc = run_child(child_duplicate_in_table, NULL, err, sizeof err);
    CHECK(rc == 1 && strstr(err, "FATAL ") == err && strstr(err, "'a'"), "rc %d: %s", rc, err);
    return 0;
}

static int test_config_help(void) {
    Cfgs c;
    cfgs_init(&c);
    char path[600], text[4096];
    tmp_path(path, sizeof path, "help.txt");
    FILE *f = fopenCheck(path, "wb");
    cfg_print_help(f, c.tables, 2);
    fcloseCheck(f);
    read_text(path, text, sizeof text);
    for (int i = 0; i < NKEYS(model_keys); i++)
        CHECK(strstr(text, model_keys[i].name) && strstr(text, model_keys[i].help), "missing %s:\n%s",
              model_keys[i].name, text);
    CHECK(strstr(text, "out_dir") && strstr(text, "[1, 8192]") && strstr(text, "float") && strstr(text, "3e-4"),
          "help:\n%s", text);
    return 0;
}

const TestCase common_tests[] = {
    {"common/util_fatal_at", test_fatal_at},
    {"common/util_fopen_check", test_fopen_check},
    {"common/util_fread_check", test_fread_check},
    {"common/util_alloc_check", test_alloc_check},
    {"common/util_atomic_file", test_atomic_file},
    {"common/rng_philox_kat", test_philox_kat},
    {"common/rng_uniform", test_rng_uniform},
    {"common/rng_normal", test_rng_normal},
    {"common/rng_purity", test_rng_purity},
    {"common/rng_streams", test_rng_streams},
    {"common/rng_below", test_rng_below},
    {"common/timer", test_timer},
    {"common/log", test_log},
    {"common/config_defaults", test_config_defaults},
    {"common/config_file", test_config_file},
    {"common/config_errors", test_config_errors},
    {"common/config_include", test_config_include},
    {"common/config_include_cycle", test_config_include_cycle},
    {"common/config_include_depth", test_config_include_depth},
    {"common/config_set", test_config_set},
    {"common/config_roundtrip", test_config_roundtrip},
    {"common/config_multi_table", test_config_multi_table},
    {"common/config_duplicate_key", test_config_duplicate_key},
    {"common/config_help", test_config_help},
    {NULL, NULL},
};

int test_zip_edit(const char *path, const char *name, const void *data, size_t size, int add) {
    int e = 0;
    zip_t *z = zip_open(path, add ? ZIP_CREATE : 0, &e);
    if (!z) return fprintf(stderr, "    %s: zip_open failed (libzip error %d)\n", path, e), -1;
    zip_int64_t i = zip_name_locate(z, name, 0);
    int ok = add || i >= 0;
    if (ok && data) { // zip_file_add with OVERWRITE replaces an existing member in place
        void *copy = malloc(size ? size : 1);
        memcpy(copy, data, size);
        zip_source_t *src = zip_source_buffer(z, copy, size, 1);
        i = src ? zip_file_add(z, name, src, ZIP_FL_OVERWRITE) : -1;
        ok = i >= 0;
        if (!ok && src) zip_source_free(src);
        if (!src) free(copy);
        ok = ok && zip_set_file_compression(z, (zip_uint64_t)i, ZIP_CM_STORE, 0) == 0;
    } else if (ok) {
        ok = i >= 0 && zip_delete(z, (zip_uint64_t)i) == 0;
    }
    if (!ok || zip_close(z) != 0) {
        fprintf(stderr, "    %s: cannot %s member '%s': %s\n", path, data ? (add ? "add" : "replace") : "delete", name,
                zip_strerror(z));
        zip_discard(z);
        return -1;
    }
    return 0;
}
