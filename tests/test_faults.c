// test_faults.c — fault injection (issue #9): write errors and a full disk through an LD_PRELOAD shim
// (tests/faultshim.c), and kill -9 at random points of `avat3r train` and `avat3r pack`
// (docs/robustness.md "Fault injection").
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/timer.h"
#include "checkpoint.h"
#include "loop.h"
#include "shard.h"
#include "test.h"

#ifndef AVAT3R_FAULTSHIM
#define AVAT3R_FAULTSHIM "libavat3r_faultshim.so"
#endif

// ------------------------------------------------------------------------------------------------
// helpers

// The fixture every test here uses (the same tag as tests/test_train.c: made once per test run).
static const char *fixture_shards(void) { return test_micro_shards("train", 3, 6); }
static const char *fixture_caps(void) {
    static char caps[1024];
    snprintf(caps, sizeof caps, "%s/train_caps", test_tmpdir());
    return caps;
}

// The pack options of the fixture (tests/main.c test_micro_shards), so shards compare with its shards.
#define PACK_OPTS "--size 32 --sapiens-size 8x8 --quiet --threads 2"

// "VAR=value ..." that preloads the shim with `vars` (FAULTSHIM_...). A sanitized avat3r refuses to start
// when a library is preloaded in front of the ASan runtime unless verify_asan_link_order=0; the existing
// ASAN_OPTIONS are kept. Valid until the next call.
static const char *shim_env(const char *vars) {
    static char env[8192];
    const char *asan = getenv("ASAN_OPTIONS");
    snprintf(env, sizeof env, "LD_PRELOAD='%s' ASAN_OPTIONS='%s%sverify_asan_link_order=0' FAULTSHIM_LOG=1 %s",
             AVAT3R_FAULTSHIM, asan ? asan : "", asan && *asan ? ":" : "", vars);
    return env;
}

static int shim_built(void) {
    if (access(AVAT3R_FAULTSHIM, R_OK) == 0) return 1;
    fprintf(stderr, "    %s is missing (ninja builds it with the tests)\n", AVAT3R_FAULTSHIM);
    return 0;
}

// Every command runs with OMP_WAIT_POLICY=passive: on a shared 2-core machine, OpenMP threads that spin
// while waiting make a 0.4 s training run take 5 s when another process holds a core (same results).
static const char *train_cmd(const char *shards, const char *run, const char *extra, const char *env) {
    static char cmd[16384];
    snprintf(cmd, sizeof cmd,
             "exec env OMP_WAIT_POLICY=passive %s '%s' train --config '%s/configs/tiny.cfg' --data '%s' --out '%s' " TEST_MICRO_SETS
             "%s >> '%s.log' 2>&1",
             env ? env : "", AVAT3R_BINARY, test_source_root(), shards, run, extra, run);
    return cmd;
}

static const char *pack_cmd(const char *caps, const char *out, const char *env) {
    static char cmd[16384];
    snprintf(cmd, sizeof cmd, "exec env OMP_WAIT_POLICY=passive %s '%s' pack --ava256 '%s' --out '%s' " PACK_OPTS " >> '%s.log' 2>&1",
             env ? env : "", AVAT3R_BINARY, caps, out, out);
    return cmd;
}

// Runs cmd to its end; its exit status (128 + signal when killed), without test_system's message (the
// tests here expect failures).
static int run_quiet(const char *cmd) {
    fflush(stdout), fflush(stderr);
    int st = system(cmd);
    return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

// The whole of a (small) text file, malloc'd; "" when missing.
static char *slurp(const char *path) {
    char *t = test_read_text(path, NULL);
    return t ? t : (char *)calloc(1, 1);
}

static int log_has(const char *log, const char *needle) {
    char *s = slurp(log);
    int yes = strstr(s, needle) != NULL;
    free(s);
    return yes;
}

// The product failed cleanly: no sanitizer report (an ASan "DEADLYSIGNAL" exits 1 like a clean error)
// and no UBSan finding in its log.
static int no_sanitizer_report(const char *log) {
    char *s = slurp(log);
    const char *hit = strstr(s, "Sanitizer");
    if (!hit) hit = strstr(s, "runtime error:");
    if (hit) printf("    %s: %.200s\n", log, hit);
    free(s);
    return hit == NULL;
}

// Entries of dir whose name contains `part` (NULL: all), and the first such name into first.
static int count_names(const char *dir, const char *part, char *first, size_t n) {
    DIR *d = opendir(dir);
    int k = 0;
    if (first && n) first[0] = 0;
    if (!d) return 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        if (part && !strstr(e->d_name, part)) continue;
        if (first && n && !k) snprintf(first, n, "%s", e->d_name);
        k++;
    }
    closedir(d);
    return k;
}

static int ends_with(const char *s, const char *t) {
    size_t a = strlen(s), b = strlen(t);
    return a >= b && !strcmp(s + a - b, t);
}

// splitmix64: the kill points from a fixed seed
static uint64_t rng_state = 0x9e3779b97f4a7c15ull * 9;
static double uniform(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) / 9007199254740992.0;
}

// Starts `sh -c cmd` (cmd execs the binary, so the pid is the binary's).
static pid_t spawn(const char *cmd) {
    fflush(stdout), fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

// Waits until the child exits or `deadline` (time_now_s) passes; then SIGKILLs it. Returns its exit status
// when it ended by itself, -1 when it was killed.
static int kill_at(pid_t pid, double deadline) {
    int st;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (time_now_s() >= deadline) break;
        time_sleep_s(0.002);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

// Waits (at most `timeout` s) until dir holds a name containing `part`; 1 found, 0 not (the child may
// have ended: then *status is its exit status, else -2).
static int wait_for_name(pid_t pid, const char *dir, const char *part, double timeout, int *status) {
    double t_end = time_now_s() + timeout;
    *status = -2;
    while (time_now_s() < t_end) {
        if (count_names(dir, part, NULL, 0)) return 1;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            return count_names(dir, part, NULL, 0) > 0;
        }
        time_sleep_s(0.001);
    }
    return 0;
}

// The highest step with a "train" line in run/log.jsonl (0: none yet).
static int last_logged_step(const char *run) {
    static const char key[] = "\"kind\":\"train\",\"step\":";
    char path[1200];
    snprintf(path, sizeof path, "%s/log.jsonl", run);
    char *s = slurp(path);
    int best = 0;
    for (char *p = strstr(s, key); p; p = strstr(p + 1, key)) {
        int v = atoi(p + sizeof key - 1);
        if (v > best) best = v;
    }
    free(s);
    return best;
}

// Waits (at most `timeout` s) until run/log.jsonl holds step `step`; 1 yes, 0 not (the child may have ended:
// then *status is its exit status, else -2).
static int wait_for_step(pid_t pid, const char *run, int step, double timeout, int *status) {
    double t_end = time_now_s() + timeout;
    *status = -2;
    while (time_now_s() < t_end) {
        if (last_logged_step(run) >= step) return 1;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            return 0;
        }
        time_sleep_s(0.002);
    }
    return 0;
}

// ------------------------------------------------------------------------------------------------
// checkpoints

// Two training checkpoints hold the same parameters, AdamW moments and run state (all but the wall time).
static int same_train_ckpt(const char *a, const char *b) {
    ModelConfig c[2];
    float *P[2] = {0}, *M[2] = {0}, *V[2] = {0};
    char *S[2] = {0}, err[1024];
    CkptHeader h[2];
    const char *path[2] = {a, b};
    int ok = 1;
    for (int k = 0; k < 2 && ok; k++)
        if (checkpoint_load_train(path[k], &c[k], &P[k], &M[k], &V[k], &S[k], &h[k], err, sizeof err)) {
            printf("    %s\n", err);
            ok = 0;
        }
    if (ok) {
        size_t n = h[0].n_params;
        ok = h[1].n_params == n && !memcmp(P[0], P[1], 4 * n) && !memcmp(M[0], M[1], 4 * n) &&
             !memcmp(V[0], V[1], 4 * n);
        if (!ok) printf("    %s and %s: parameters or AdamW moments differ\n", a, b);
        for (int k = 0; k < 2 && ok; k++) { // the state without its wall time
            char *e = strstr(S[k], "state_elapsed_s = "), *nl = e ? strchr(e, '\n') : NULL;
            if (nl) memmove(e, nl + 1, strlen(nl + 1) + 1);
        }
        if (ok && strcmp(S[0], S[1])) ok = 0, printf("    %s and %s: run states differ:\n%s\n---\n%s\n", a, b, S[0], S[1]);
    }
    for (int k = 0; k < 2; k++) free(P[k]), free(M[k]), free(V[k]), free(S[k]);
    return ok;
}

// Every checkpoint in a run folder verifies: each ckpt_<step>.ckpt reads as a training checkpoint of that
// step, final.ckpt (if there) as a model. Counts them and the temporaries ("*.tmp.*") beside them.
static int verify_run_folder(const char *dir, int *n_ckpt, int *n_tmp) {
    DIR *d = opendir(dir);
    *n_ckpt = *n_tmp = 0;
    if (!d) return 0; // not created yet
    int bad = 0;
    for (struct dirent *e; (e = readdir(d));) {
        char path[4400], err[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        long step;
        char tail[8];
        if (strstr(e->d_name, ".tmp.")) {
            (*n_tmp)++;
        } else if (sscanf(e->d_name, "ckpt_%ld.ckp%1s", &step, tail) == 2 && ends_with(e->d_name, ".ckpt")) {
            RunConfig rc;
            if (run_checkpoint_read(path, &rc, NULL, NULL, NULL, err, sizeof err) || (long)rc.st.step != step) {
                printf("    %s does not verify: %s\n", path, err);
                bad = 1;
            }
            (*n_ckpt)++;
        } else if (!strcmp(e->d_name, "final.ckpt")) {
            ModelConfig c;
            CkptHeader h;
            float *p = NULL;
            if (checkpoint_load(path, &c, &p, &h, err, sizeof err)) printf("    %s does not verify: %s\n", path, err), bad = 1;
            free(p);
            (*n_ckpt)++;
        }
    }
    closedir(d);
    return bad ? -1 : 0;
}

// ------------------------------------------------------------------------------------------------
// shards

// Two shards hold the same metadata and decode to the same images, masks and aux maps.
static int same_shard(const char *a, const char *b) {
    Shard s[2];
    char err[2048];
    if (shard_open(&s[0], a, err, sizeof err)) return printf("    %s\n", err), 0;
    if (shard_open(&s[1], b, err, sizeof err)) return shard_close(&s[0]), printf("    %s\n", err), 0;
    const ShardMeta *m = &s[0].m, *n = &s[1].m;
    int ok = !strcmp(m->capture, n->capture) && m->n_cams == n->n_cams && m->n_frames == n->n_frames && m->W == n->W &&
             m->H == n->H && m->expr_dim == n->expr_dim && m->sap_h == n->sap_h && m->sap_w == n->sap_w &&
             m->sap_c == n->sap_c;
    size_t C = (size_t)m->n_cams, F = (size_t)m->n_frames;
    ok = ok && !memcmp(m->cam_ids, n->cam_ids, C * SHARD_ID_LEN) && !memcmp(m->w2c, n->w2c, 8 * 12 * C) &&
         !memcmp(m->K, n->K, 8 * 9 * C * F) && !memcmp(m->frame_ids, n->frame_ids, 4 * F) &&
         !memcmp(m->head_pose, n->head_pose, 8 * 12 * F) &&
         (!m->expr_dim || !memcmp(m->expr, n->expr, 4 * F * (size_t)m->expr_dim));
    if (!ok) printf("    %s and %s: metadata differ\n", a, b);
    size_t img = (size_t)m->W * m->H * 3, aux_d = (size_t)m->W * m->H * 4, aux_s = (size_t)m->sap_h * m->sap_w * m->sap_c;
    size_t cap = img > 4 * aux_d ? img : 4 * aux_d;
    if (4 * aux_s > cap) cap = 4 * aux_s;
    uint8_t *buf[2] = {(uint8_t *)malloc(cap), (uint8_t *)malloc(cap)};
    for (size_t f = 0; f < F && ok; f++)
        for (size_t c = 0; c < C && ok; c++)
            for (int kind = 0; kind < 4 && ok; kind++) {
                int r[2];
                size_t bytes = kind == 0 ? img : kind == 1 ? img / 3 : kind == 2 ? 4 * aux_d : 4 * aux_s;
                for (int k = 0; k < 2; k++) {
                    memset(buf[k], 0, cap);
                    r[k] = kind == 0   ? shard_get_image(&s[k], (int)f, (int)c, buf[k], err, sizeof err)
                           : kind == 1 ? shard_get_mask(&s[k], (int)f, (int)c, buf[k], err, sizeof err)
                                       : shard_get_aux(&s[k], kind == 2 ? SHARD_DUST3R : SHARD_SAPIENS, (int)f, (int)c,
                                                       (float *)buf[k], err, sizeof err);
                    if (r[k] < 0) printf("    %s\n", err);
                }
                if (r[0] != r[1] || r[0] < 0 || (r[0] == 0 && memcmp(buf[0], buf[1], bytes))) {
                    printf("    %s and %s: payload %d of frame %zu camera %zu differs\n", a, b, kind, f, c);
                    ok = 0;
                }
            }
    free(buf[0]), free(buf[1]);
    shard_close(&s[0]), shard_close(&s[1]);
    return ok;
}

// The fixture's shard names (<capture>.h5), up to 8.
static int fixture_shard_names(const char *shards, char names[8][300]) {
    DIR *d = opendir(shards);
    int n = 0;
    if (!d) return 0;
    for (struct dirent *e; (e = readdir(d)) && n < 8;)
        if (ends_with(e->d_name, ".h5")) snprintf(names[n++], 300, "%s", e->d_name);
    closedir(d);
    return n;
}

// The pack tests' start: the fixture's shards (and their names, 3 of them), and the shim built.
static int pack_fault_fixture(const char **shards, char names[8][300], int *n_caps) {
    *shards = fixture_shards();
    CHECK(*shards, "fixture failed (see %s/train_caps.log)", test_tmpdir());
    CHECK(shim_built(), "no shim");
    *n_caps = fixture_shard_names(*shards, names);
    CHECK(*n_caps == 3, "expected 3 fixture shards, found %d", *n_caps);
    return 0;
}

// Every *.h5 in out opens (no partial file under a shard's name) and equals the fixture's shard of that name.
static int check_out_shards(const char *out, const char *shards, int *n_h5) {
    char names[8][300];
    int n = fixture_shard_names(shards, names), bad = 0;
    *n_h5 = 0;
    for (int k = 0; k < n; k++) {
        char a[4096], b[4096];
        snprintf(a, sizeof a, "%s/%s", out, names[k]);
        snprintf(b, sizeof b, "%s/%s", shards, names[k]);
        if (access(a, F_OK) != 0) continue;
        (*n_h5)++;
        if (!same_shard(a, b)) bad = 1;
    }
    return bad ? -1 : 0;
}

// ------------------------------------------------------------------------------------------------
// a) a checkpoint write fails: a full disk mid-file, fsync EIO, rename EDQUOT

static int test_ckpt_disk_full(void) {
    const char *shards = fixture_shards();
    CHECK(shards, "fixture failed (see %s/train_caps.log)", test_tmpdir());
    CHECK(shim_built(), "no shim");
    char a[1024], pa[1200], pb[1200];
    const char *common = "--steps 6 --set ckpt_every=2 --set val_every=0 --set warmup_steps=2 --set lr=1e-3";
    snprintf(a, sizeof a, "%s/fault_ckpt_straight", test_tmpdir());
    CHECK(run_quiet(train_cmd(shards, a, common, NULL)) == 0, "straight run failed (%s.log)", a);
    struct stat st;
    snprintf(pa, sizeof pa, "%s/ckpt_00000002.ckpt", a);
    CHECK(stat(pa, &st) == 0, "the straight run has no step-2 checkpoint");
    long long ckpt_bytes = (long long)st.st_size;
    struct {
        const char *name, *vars, *says, *strerr;
    } cases[3];
    char write_vars[256];
    // the byte budget: all of the step-2 checkpoint, half of the step-4 one
    snprintf(write_vars, sizeof write_vars, "FAULTSHIM_MATCH=.ckpt FAULTSHIM_OP=write FAULTSHIM_AFTER=%lld",
             ckpt_bytes + ckpt_bytes / 2);
    cases[0].name = "disk full", cases[0].vars = write_vars, cases[0].says = "fwrite", cases[0].strerr = strerror(ENOSPC);
    cases[1].name = "fsync EIO", cases[1].vars = "FAULTSHIM_MATCH=.ckpt FAULTSHIM_OP=fsync FAULTSHIM_AFTER=1 FAULTSHIM_ERRNO=EIO";
    cases[1].says = "fsync", cases[1].strerr = strerror(EIO);
    cases[2].name = "rename EDQUOT",
    cases[2].vars = "FAULTSHIM_MATCH=.ckpt FAULTSHIM_OP=rename FAULTSHIM_AFTER=1 FAULTSHIM_ERRNO=EDQUOT";
    cases[2].says = "rename", cases[2].strerr = strerror(EDQUOT);
    for (int k = 0; k < 3; k++) {
        char r[1024], log[1100], want[1200], tmpname[512];
        snprintf(r, sizeof r, "%s/fault_ckpt_%d", test_tmpdir(), k);
        snprintf(log, sizeof log, "%s.log", r);
        int rc = run_quiet(train_cmd(shards, r, common, shim_env(cases[k].vars)));
        CHECK(rc == 1, "%s: expected exit status 1, got %d (%s)", cases[k].name, rc, log);
        CHECK(log_has(log, "faultshim: "), "%s: the shim injected nothing (%s)", cases[k].name, log);
        CHECK(no_sanitizer_report(log), "%s: a sanitizer report instead of a clean exit", cases[k].name);
        // the FATAL line names the checkpoint, what failed and why
        snprintf(want, sizeof want, "writing '%s/ckpt_00000004.ckpt'", r);
        char *text = slurp(log), *fatal = strstr(text, "FATAL "), *nl = fatal ? strchr(fatal, '\n') : NULL;
        if (nl) *nl = 0;
        int named = fatal && strstr(fatal, want) && strstr(fatal, cases[k].says) && strstr(fatal, cases[k].strerr);
        if (!named) printf("    FATAL line: %s\n", fatal ? fatal : "(none)");
        free(text);
        CHECK(named, "%s: no FATAL line saying \"%s\", \"%s\" and \"%s\" (%s)", cases[k].name, want,
              cases[k].says, cases[k].strerr, log);
        // the previous checkpoint is intact and equal to the straight run's; no later one, no temporary
        snprintf(pb, sizeof pb, "%s/ckpt_00000002.ckpt", r);
        CHECK(same_train_ckpt(pa, pb), "%s: the step-2 checkpoint differs from the straight run's", cases[k].name);
        snprintf(pb, sizeof pb, "%s/ckpt_00000004.ckpt", r);
        CHECK(access(pb, F_OK) != 0, "%s: a step-4 checkpoint exists", cases[k].name);
        CHECK(count_names(r, ".tmp", tmpname, sizeof tmpname) == 0, "%s: temporary left behind: %s", cases[k].name,
              tmpname);
        // and the run resumes from it to the straight run's end
        CHECK(run_quiet(train_cmd(shards, r, "--resume", NULL)) == 0, "%s: resume failed (%s)", cases[k].name, log);
        snprintf(pa, sizeof pa, "%s/final.ckpt", a);
        snprintf(pb, sizeof pb, "%s/final.ckpt", r);
        CHECK(test_same_params(pa, pb), "%s: resumed run is not bit-identical to the straight run", cases[k].name);
        snprintf(pa, sizeof pa, "%s/ckpt_00000002.ckpt", a);
        printf("    %-13s at the step-4 checkpoint: exit %d, message names it (\"%s\"), step 2 intact, no temporary, "
               "resume = straight run\n", cases[k].name, rc, cases[k].strerr);
    }
    return 0;
}

// A full disk under log.jsonl (its flush fails at step 3): the run stops at once with exit status 1 and a
// message naming the log, rather than training on with its log lines silently dropped; the step-2
// checkpoint is intact and the run resumes from it to the straight run's end.
static int test_log_disk_full(void) {
    const char *shards = fixture_shards();
    CHECK(shards, "fixture failed (see %s/train_caps.log)", test_tmpdir());
    CHECK(shim_built(), "no shim");
    char a[1024], r[1024], log[1100], pa[1200], pb[1200];
    const char *common = "--steps 6 --set ckpt_every=2 --set val_every=0 --set warmup_steps=2 --set lr=1e-3";
    snprintf(a, sizeof a, "%s/fault_log_straight", test_tmpdir());
    snprintf(r, sizeof r, "%s/fault_log_full", test_tmpdir());
    snprintf(log, sizeof log, "%s.log", r);
    CHECK(run_quiet(train_cmd(shards, a, common, NULL)) == 0, "straight run failed (%s.log)", a);
    int rc = run_quiet(train_cmd(shards, r, common, shim_env("FAULTSHIM_MATCH=log.jsonl FAULTSHIM_OP=flush FAULTSHIM_AFTER=2")));
    CHECK(rc == 1, "expected exit status 1, got %d (%s)", rc, log);
    CHECK(log_has(log, "faultshim: ") && no_sanitizer_report(log), "no injection, or a sanitizer report (%s)", log);
    CHECK(log_has(log, "log.jsonl: write failed (No space left on device)"), "no message naming log.jsonl (%s)", log);
    snprintf(pa, sizeof pa, "%s/ckpt_00000002.ckpt", a);
    snprintf(pb, sizeof pb, "%s/ckpt_00000002.ckpt", r);
    CHECK(same_train_ckpt(pa, pb), "the step-2 checkpoint differs from the straight run's");
    snprintf(pb, sizeof pb, "%s/ckpt_00000004.ckpt", r);
    CHECK(access(pb, F_OK) != 0, "the run went on to step 4");
    CHECK(run_quiet(train_cmd(shards, r, "--resume", NULL)) == 0, "resume failed (%s)", log);
    snprintf(pa, sizeof pa, "%s/final.ckpt", a);
    snprintf(pb, sizeof pb, "%s/final.ckpt", r);
    CHECK(test_same_params(pa, pb), "resumed run is not bit-identical to the straight run");
    printf("    log.jsonl flush fails at step 3: exit 1 naming it, step 2 intact, resume = straight run\n");
    return 0;
}

// ------------------------------------------------------------------------------------------------
// b) `avat3r pack` with failing HDF5 writes, closes or renames

static int test_pack_write_error(void) {
    const char *shards;
    char names[8][300];
    int n_caps;
    if (pack_fault_fixture(&shards, names, &n_caps)) return 1;
    struct {
        const char *name, *vars;
    } cases[] = {
        {"disk full", "FAULTSHIM_MATCH=.h5 FAULTSHIM_OP=write FAULTSHIM_AFTER=20000"},
        {"close EIO", "FAULTSHIM_MATCH=.h5 FAULTSHIM_OP=close FAULTSHIM_AFTER=1 FAULTSHIM_ERRNO=EIO"},
        {"rename EIO", "FAULTSHIM_MATCH=.h5 FAULTSHIM_OP=rename FAULTSHIM_AFTER=1 FAULTSHIM_ERRNO=EIO"},
    };
    // libhdf5 1.10 keeps part of a file whose H5Fclose failed, so LeakSanitizer (ASan builds) reports a leak
    // inside libhdf5 after a failed close: that one library's leaks are suppressed here, ours are not.
    char supp[1024], vars[4096];
    snprintf(supp, sizeof supp, "%s/lsan_libhdf5.supp", test_tmpdir());
    FILE *f = fopen(supp, "w");
    CHECK(f && fputs("leak:libhdf5\n", f) >= 0 && fclose(f) == 0, "cannot write %s", supp);
    const char *lsan = getenv("LSAN_OPTIONS");
    for (int k = 0; k < 3; k++) {
        char out[1024], log[1100], tmpname[512];
        snprintf(out, sizeof out, "%s/fault_pack_%d", test_tmpdir(), k);
        snprintf(log, sizeof log, "%s.log", out);
        snprintf(vars, sizeof vars, "LSAN_OPTIONS='%s%ssuppressions=%s:print_suppressions=0' %s", lsan ? lsan : "",
                 lsan && *lsan ? ":" : "", supp, cases[k].vars);
        int rc = run_quiet(pack_cmd(fixture_caps(), out, shim_env(vars)));
        CHECK(rc == 1, "%s: expected exit status 1, got %d (%s)", cases[k].name, rc, log);
        CHECK(log_has(log, "faultshim: "), "%s: the shim injected nothing (%s)", cases[k].name, log);
        CHECK(no_sanitizer_report(log), "%s: a sanitizer report instead of a clean exit", cases[k].name);
        int n_h5 = 0;
        CHECK(check_out_shards(out, shards, &n_h5) == 0, "%s: a shard in %s is partial or wrong", cases[k].name, out);
        CHECK(n_h5 < n_caps, "%s: every capture was packed", cases[k].name);
        // every capture without its shard has an error line naming that shard
        char *text = slurp(log);
        for (int c = 0; c < n_caps; c++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", out, names[c]);
            if (access(path, F_OK) == 0) continue;
            int named = 0;
            for (char *line = strstr(text, "error: "); line && !named; line = strstr(line + 1, "error: ")) {
                char *end = strchr(line, '\n');
                size_t len = end ? (size_t)(end - line) : strlen(line);
                char save = line[len];
                line[len] = 0;
                named = strstr(line, path) != NULL;
                line[len] = save;
            }
            if (!named) {
                free(text);
                CHECK(0, "%s: no error line names %s (%s)", cases[k].name, path, log);
            }
        }
        free(text);
        CHECK(count_names(out, ".tmp", tmpname, sizeof tmpname) == 0, "%s: temporary left behind: %s", cases[k].name,
              tmpname);
        // a rerun without the fault packs what is missing, equal to an uninterrupted pack
        CHECK(run_quiet(pack_cmd(fixture_caps(), out, NULL)) == 0, "%s: the rerun failed (%s)", cases[k].name, log);
        int done = 0;
        CHECK(check_out_shards(out, shards, &done) == 0 && done == n_caps, "%s: after the rerun %d of %d shards, or "
              "one differs from the fixture's", cases[k].name, done, n_caps);
        printf("    %-10s: exit %d, %d of %d shards written (complete), the others named in an error line, no "
               "temporary; the rerun completes them\n", cases[k].name, rc, n_h5, n_caps);
    }
    return 0;
}

// ------------------------------------------------------------------------------------------------
// c) kill -9 of `avat3r train` at random points, one of them during a checkpoint write

static int test_kill_random_train(void) {
    const char *shards = fixture_shards();
    CHECK(shards, "fixture failed (see %s/train_caps.log)", test_tmpdir());
    CHECK(shim_built(), "no shim");
    const int steps = 12;
    char common[512], a[1024], b[1024], pa[1200], pb[1200];
    snprintf(common, sizeof common,
             "--steps %d --set ckpt_every=2 --set val_every=0 --set warmup_steps=2 --set lr=1e-3 --resume", steps);
    snprintf(a, sizeof a, "%s/fault_kill_straight", test_tmpdir());
    snprintf(b, sizeof b, "%s/fault_kill_train", test_tmpdir());
    CHECK(run_quiet(train_cmd(shards, a, common, NULL)) == 0, "straight run failed (%s.log)", a);
    // The killed runs write checkpoints through a slow disk (15 ms per fwrite, about 0.1 s a checkpoint),
    // so that a kill soon after a step often lands inside a checkpoint write. Kill points follow progress,
    // not the clock, so that a loaded machine still spreads them over the run: kill 0 once the first
    // checkpoint's temporary exists (0.1 s per fwrite there, 0.7 s a checkpoint, so that a late look at the
    // folder still finds the write going on); kills 1-3 at a random time up to 0.12 s after a random step
    // among the next 4 that the run has not logged yet.
    char env[8192], env_slower[8192];
    snprintf(env, sizeof env, "%s", shim_env("FAULTSHIM_MATCH=.ckpt FAULTSHIM_OP=none FAULTSHIM_DELAY_US=15000"));
    snprintf(env_slower, sizeof env_slower, "%s",
             shim_env("FAULTSHIM_MATCH=.ckpt FAULTSHIM_OP=none FAULTSHIM_DELAY_US=100000"));
    int during_write = 0;
    for (int k = 0; k < 4; k++) {
        int logged = last_logged_step(b), target = logged + 1 + (int)(uniform() * 4);
        if (target > steps) target = steps;
        double extra = (k == 0 ? 0.06 : 0.12) * uniform();
        pid_t pid = spawn(train_cmd(shards, b, common, k == 0 ? env_slower : env));
        CHECK(pid > 0, "fork failed");
        int rc = -3, status;
        char part[64], where[128];
        snprintf(part, sizeof part, ".ckpt.tmp.%d", (int)pid);
        if (k == 0) {
            if (!wait_for_name(pid, b, part, 120, &status)) {
                if (status == -2) kill(pid, SIGKILL), waitpid(pid, NULL, 0);
                CHECK(0, "no checkpoint write started (exit %d; %s.log)", status, b);
            }
            snprintf(where, sizeof where, "%.3f s into the first checkpoint write", extra);
        } else {
            if (!wait_for_step(pid, b, target, 120, &status)) {
                if (status == -2) kill(pid, SIGKILL), waitpid(pid, NULL, 0), status = 124; // hung: fails below
                rc = status;
            }
            snprintf(where, sizeof where, "%.3f s after step %d", extra, target);
        }
        if (rc == -3) rc = kill_at(pid, time_now_s() + extra);
        int n_ckpt, n_tmp, n_mine = count_names(b, part, NULL, 0);
        CHECK(verify_run_folder(b, &n_ckpt, &n_tmp) == 0, "after kill %d a checkpoint in %s does not verify", k, b);
        if (k == 0)
            CHECK(rc == -1 && n_mine == 1, "kill 0 did not land inside a checkpoint write (rc %d, %d temporaries)", rc,
                  n_mine);
        during_write += rc == -1 && n_mine;
        if (rc == -1)
            printf("    kill %d: SIGKILL %s (%s); then %d checkpoints, all verify, %d temporaries beside them\n", k, where,
                   n_mine ? "inside a checkpoint write" : "between checkpoint writes", n_ckpt, n_tmp);
        else
            printf("    kill %d: the run ended (exit %d) before its kill point, %s\n", k, rc, where);
        CHECK(rc == -1 || rc == 0, "the run failed by itself (exit %d; %s.log)", rc, b);
    }
    CHECK(run_quiet(train_cmd(shards, b, common, NULL)) == 0, "the last resume failed (%s.log)", b);
    snprintf(pa, sizeof pa, "%s/final.ckpt", a);
    snprintf(pb, sizeof pb, "%s/final.ckpt", b);
    CHECK(test_same_params(pa, pb), "killed and resumed is not bit-identical to the straight run");
    snprintf(pa, sizeof pa, "%s/ckpt_%08d.ckpt", a, steps);
    snprintf(pb, sizeof pb, "%s/ckpt_%08d.ckpt", b, steps);
    CHECK(same_train_ckpt(pa, pb), "the last checkpoints differ (moments or state)");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "test \"$(grep -c '\"kind\":\"train\"' '%s/log.jsonl')\" = %d", b, steps);
    CHECK(run_quiet(cmd) == 0, "log.jsonl does not hold steps 1..%d exactly once", steps);
    // each resume removes the temporaries the killed runs left (train/loop.c remove_stale_temporaries)
    snprintf(cmd, sizeof cmd, "! ls '%s' | grep -q '\\.tmp\\.' && grep -q 'left by a killed run' '%s.log'", b, b);
    CHECK(run_quiet(cmd) == 0, "a temporary is left in %s after the last resume, or none was ever removed", b);
    snprintf(cmd, sizeof cmd, "%s.log", b);
    CHECK(no_sanitizer_report(cmd), "a sanitizer report in a killed or resumed run");
    printf("    4 kills (%d inside a checkpoint write) + resumes = straight run: parameters, moments, state bit-identical; "
           "every checkpoint present verified after each kill\n", during_write);
    return 0;
}

// ------------------------------------------------------------------------------------------------
// d) kill -9 of `avat3r pack` at random points

static int test_kill_random_pack(void) {
    const char *shards;
    char names[8][300];
    int n_caps;
    if (pack_fault_fixture(&shards, names, &n_caps)) return 1;
    char out[1024], tmpname[512];
    snprintf(out, sizeof out, "%s/fault_kill_pack", test_tmpdir());
    // HDF5 writes through a slow disk: 5 ms per write; 50 ms for kill 0, so that a late look at the folder on
    // a loaded machine still finds the write going on
    char env[8192], env_slower[8192];
    snprintf(env, sizeof env, "%s", shim_env("FAULTSHIM_MATCH=.h5 FAULTSHIM_OP=none FAULTSHIM_DELAY_US=5000"));
    snprintf(env_slower, sizeof env_slower, "%s",
             shim_env("FAULTSHIM_MATCH=.h5 FAULTSHIM_OP=none FAULTSHIM_DELAY_US=50000"));
    // Kill points follow progress: each kill picks a capture without its shard yet, waits until its
    // temporary exists and kills up to 20 ms (kill 0, on the slower disk) or 0.4 s later (inside that
    // shard's write, or in a later capture's).
    int inside = 0;
    for (int k = 0; k < 4; k++) {
        int todo[8], n_todo = 0;
        for (int c = 0; c < n_caps; c++) {
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", out, names[c]);
            if (access(p, F_OK) != 0) todo[n_todo++] = c;
        }
        int pick = n_todo ? todo[(int)(uniform() * n_todo) % n_todo] : -1;
        double extra = (k == 0 ? 0.02 : 0.4) * uniform();
        pid_t pid = spawn(pack_cmd(fixture_caps(), out, k == 0 ? env_slower : env));
        CHECK(pid > 0, "fork failed");
        char part[512], where[512];
        snprintf(part, sizeof part, "%s.tmp.%d", pick >= 0 ? names[pick] : "-", (int)pid);
        snprintf(where, sizeof where, "%.3f s after %s's shard write began", extra, pick >= 0 ? names[pick] : "-");
        int rc = -3, status;
        if (pick < 0) rc = kill_at(pid, time_now_s() + 120); // nothing left to pack: it ends by itself
        else if (!wait_for_name(pid, out, part, 120, &status)) {
            if (status == -2) kill(pid, SIGKILL), waitpid(pid, NULL, 0), status = 124; // hung: fails below
            rc = status;
        }
        if (rc == -3) rc = kill_at(pid, time_now_s() + extra);
        int n_h5, n_mine = count_names(out, part, NULL, 0);
        CHECK(check_out_shards(out, shards, &n_h5) == 0, "after kill %d a shard in %s is partial or wrong", k, out);
        if (k == 0) CHECK(rc == -1 && n_mine == 1, "kill 0 did not land inside a shard write (rc %d)", rc);
        inside += rc == -1 && n_mine;
        if (rc == -1)
            printf("    kill %d: SIGKILL %.*s (%s); then %d of %d shards, each complete and equal to the fixture's\n", k,
                   300, where, n_mine ? "inside it: its temporary is left" : "after it", n_h5, n_caps);
        else
            printf("    kill %d: the pack ended (exit %d) before its kill point\n", k, rc);
        CHECK(rc == -1 || rc == 0, "the pack failed by itself (exit %d; %s.log)", rc, out);
    }
    // what a copy that stopped half-way and another killed pack leave: a truncated file under a shard's name,
    // a stale temporary of a dead process beside it. Neither may be taken for a shard. (pack removes the
    // temporaries of the captures it packs; it leaves those beside complete shards alone.)
    char path[4096], ref[4096];
    snprintf(path, sizeof path, "%s/%s", out, names[0]);
    snprintf(ref, sizeof ref, "%s/%s", shards, names[0]);
    struct stat st;
    CHECK(stat(ref, &st) == 0, "no %s", ref);
    char cmd[20480];
    snprintf(cmd, sizeof cmd, "head -c %lld '%s' > '%s' && head -c 5000 '%s' > '%s.tmp.999999999'",
             (long long)st.st_size / 2, ref, path, ref, path);
    CHECK(test_system(cmd) == 0, "cannot plant the damaged files");
    CHECK(run_quiet(pack_cmd(fixture_caps(), out, NULL)) == 0, "the last pack failed (%s.log)", out);
    int n_h5;
    CHECK(check_out_shards(out, shards, &n_h5) == 0 && n_h5 == n_caps, "after the last pack: %d of %d shards, or one "
          "differs from an uninterrupted pack's", n_h5, n_caps);
    CHECK(count_names(out, ".tmp", tmpname, sizeof tmpname) == 0, "temporary left behind: %s", tmpname);
    snprintf(cmd, sizeof cmd, "%s.log", out);
    CHECK(no_sanitizer_report(cmd), "a sanitizer report in a killed or resumed pack");
    printf("    4 kills (%d inside a shard write) + a truncated shard + a stale temporary, then pack: every shard equals "
           "an uninterrupted pack's, no temporary left\n", inside);
    return 0;
}

const TestCase fault_tests[] = {
    {"fault_ckpt_disk_full", test_ckpt_disk_full},
    {"fault_log_disk_full", test_log_disk_full},
    {"fault_pack_write_error", test_pack_write_error},
    {"fault_kill_random_train", test_kill_random_train},
    {"fault_kill_random_pack", test_kill_random_pack},
    {NULL, NULL},
};
