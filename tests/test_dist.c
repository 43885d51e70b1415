// test_dist.c — data-parallel training across processes on the CPU (issue #8, docs/distributed.md):
// ranks from flags and from the environment (launch, OpenMPI, Slurm node lists); the TCP bootstrap and the
// collectives between forked processes, with exact sums and the same bits on every rank; a rank that never
// arrives, dies or hangs; and `avat3r train` itself: 2 ranks × micro_batch b against 1 process × 2b, a rank
// killed mid-run, and its 2-rank checkpoint resumed by one process.
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/timer.h"
#include "../common/rng.h"
#include "checkpoint.h"
#include "dist.h"
#include "test.h"

// ------------------------------------------------------------------------------------------------
// ranks from flags and the environment

static void clear_env(void) {
    const char *vars[] = {"AVAT3R_WORLD", "AVAT3R_RANK", "AVAT3R_LOCAL_RANK", "AVAT3R_MASTER", "AVAT3R_RUN_ID",
                          "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK",
                          "OMPI_COMM_WORLD_LOCAL_SIZE", "OMPI_MCA_ess_base_jobid", "PMIX_NAMESPACE", "SLURM_PROCID",
                          "SLURM_NTASKS", "SLURM_STEP_NUM_TASKS", "SLURM_LOCALID", "SLURM_STEP_ID", "SLURM_JOB_ID",
                          "SLURM_JOB_NODELIST", "SLURM_NODELIST", "SLURM_STEP_NODELIST", "MASTER_ADDR", "MASTER_PORT"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) unsetenv(vars[i]);
}

static int test_ranks_from_env(void) {
    struct {
        const char *list, *first;
    } lists[] = {
        {"node[01-04],x", "node01"}, {"x,node[01-04]", "x"}, {"gpu-a[3,5-7]", "gpu-a3"}, {"n[009-012]", "n009"},
        {"single", "single"}, {"rack[1-2]-n[07-08],y", "rack1-n07"}, {"host-7", "host-7"},
    };
    char h[256];
    for (size_t k = 0; k < sizeof lists / sizeof lists[0]; k++) {
        CHECK(dist_first_host(lists[k].list, h, sizeof h) == 0 && !strcmp(h, lists[k].first), "'%s' -> '%s', want '%s'",
              lists[k].list, h, lists[k].first);
        printf("    Slurm node list %-22s -> %s\n", lists[k].list, h);
    }
    const char *bad[] = {"", "node[01-04", "node[]", "a]b", ",x"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) CHECK(dist_first_host(bad[k], h, sizeof h) == -1, "'%s' accepted", bad[k]);

    Dist d;
    char err[1024];
    DistFlags none = {0, -1, -1, NULL, "runA"};
    clear_env();
    CHECK(!dist_resolve(&d, &none, err, sizeof err) && d.world == 1 && d.rank == 0, "no environment: %s", err);
    // OpenMPI on one host: rank 0 on 127.0.0.1
    setenv("OMPI_COMM_WORLD_SIZE", "4", 1), setenv("OMPI_COMM_WORLD_RANK", "2", 1);
    setenv("OMPI_COMM_WORLD_LOCAL_RANK", "2", 1), setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "4", 1);
    setenv("OMPI_MCA_ess_base_jobid", "777", 1);
    CHECK(!dist_resolve(&d, &none, err, sizeof err), "%s", err);
    CHECK(d.world == 4 && d.rank == 2 && d.local_rank == 2 && !strcmp(d.host, "127.0.0.1") && d.port == DIST_DEFAULT_PORT &&
          strstr(d.source, "OpenMPI") && !strcmp(d.job, "ompi:777"), "OpenMPI: %d %d %s:%d %s", d.world, d.rank, d.host, d.port, d.job);
    // OpenMPI across hosts needs the master
    setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "2", 1);
    CHECK(dist_resolve(&d, &none, err, sizeof err) == -1 && strstr(err, "MASTER_ADDR"), "multi-host mpirun without master: %s", err);
    printf("    %s\n", err);
    setenv("MASTER_ADDR", "head01", 1), setenv("MASTER_PORT", "31000", 1);
    CHECK(!dist_resolve(&d, &none, err, sizeof err) && !strcmp(d.host, "head01") && d.port == 31000, "MASTER_ADDR: %s", err);
    // flags win over the environment; --master over MASTER_ADDR
    DistFlags fl = {2, 1, -1, "10.0.0.5:4000", "runA"};
    CHECK(!dist_resolve(&d, &fl, err, sizeof err) && d.world == 2 && d.rank == 1 && d.local_rank == 1 &&
          !strcmp(d.host, "10.0.0.5") && d.port == 4000 && strstr(d.source, "flags"), "flags: %s", err);
    clear_env();
    // Slurm: only inside an srun step; the master is the first host of the step's node list
    setenv("SLURM_PROCID", "5", 1), setenv("SLURM_NTASKS", "8", 1), setenv("SLURM_LOCALID", "1", 1);
    setenv("SLURM_JOB_ID", "4242", 1), setenv("SLURM_JOB_NODELIST", "gpu[007-010],login", 1);
    CHECK(!dist_resolve(&d, &none, err, sizeof err) && d.world == 1, "the batch script itself (no SLURM_STEP_ID) is not a rank");
    setenv("SLURM_STEP_ID", "0", 1);
    CHECK(!dist_resolve(&d, &none, err, sizeof err), "%s", err);
    CHECK(d.world == 8 && d.rank == 5 && d.local_rank == 1 && !strcmp(d.host, "gpu007") && strstr(d.source, "Slurm") &&
          d.port == DIST_DEFAULT_PORT + (4242 * 16) % 8192 && !strcmp(d.job, "slurm:4242.0"),
          "Slurm: %d %d %d %s:%d %s", d.world, d.rank, d.local_rank, d.host, d.port, d.job);
    printf("    Slurm task 5 of 8: rank 0 at %s:%d (job %s)\n", d.host, d.port, d.job);
    // avat3r launch beats Slurm (launch inside an allocation)
    setenv("AVAT3R_WORLD", "2", 1), setenv("AVAT3R_RANK", "0", 1), setenv("AVAT3R_MASTER", "127.0.0.1:5555", 1);
    CHECK(!dist_resolve(&d, &none, err, sizeof err) && d.world == 2 && d.rank == 0 && d.port == 5555 &&
          strstr(d.source, "launch"), "launch: %s", err);
    clear_env();
    // refused: a rank outside the world, --rank without --world, --world 2 without --rank, a bad port
    struct {
        DistFlags f;
        const char *expect;
    } bads[] = {
        {{2, 2, -1, NULL, NULL}, "not below the world size"},
        {{0, 1, -1, NULL, NULL}, "need --world"},
        {{2, -1, -1, NULL, NULL}, "needs --rank"},
        {{2, 0, -1, "host:0", NULL}, "port"},
        {{2, 0, -1, ":80", NULL}, "HOST:PORT"},
    };
    for (size_t k = 0; k < sizeof bads / sizeof bads[0]; k++) {
        CHECK(dist_resolve(&d, &bads[k].f, err, sizeof err) == -1 && strstr(err, bads[k].expect), "case %zu: '%s'", k, err);
        printf("    refused: %s\n", err);
    }
    return 0;
}

// ------------------------------------------------------------------------------------------------
// forked ranks

typedef struct {
    int world, port;
    double timeout;
    const char *tag;
    int fail_rank, fail_at, fail_how; // the rank that misbehaves at iteration fail_at: 1 exits, 2 SIGSTOPs
    int iters;
} Scenario;

static void errfile(char *buf, size_t n, const char *name, int rank) {
    snprintf(buf, n, "%s/dist_%s_rank%d.txt", test_tmpdir(), name, rank);
}

static int read_text(const char *path, char *buf, size_t n) {
    buf[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t k = fread(buf, 1, n - 1, f);
    buf[k] = 0;
    fclose(f);
    return 0;
}

static void kill_all(pid_t *pids, int n) {
    for (int i = 0; i < n; i++)
        if (pids[i] > 0) kill(pids[i], SIGKILL);
    for (int i = 0; i < n; i++)
        if (pids[i] > 0) waitpid(pids[i], NULL, 0), pids[i] = 0;
}

// Waits for the listed ranks (mask) until the deadline; their exit codes into code[] (−1 killed/timeout).
// Kills and reaps everything on return, so no child outlives a test.
static int wait_ranks(pid_t *pids, int n, unsigned mask, double timeout_s, int *code) {
    double end = time_now_s() + timeout_s;
    int left = 0;
    for (int i = 0; i < n; i++) {
        code[i] = -1;
        left += (mask >> i) & 1;
    }
    while (left && time_now_s() < end) {
        int st;
        pid_t p = waitpid(-1, &st, WNOHANG);
        if (p <= 0) {
            time_sleep_s(0.01);
            continue;
        }
        for (int i = 0; i < n; i++)
            if (pids[i] == p) {
                code[i] = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
                pids[i] = 0;
                if ((mask >> i) & 1) left--;
            }
    }
    kill_all(pids, n);
    return left ? -1 : 0;
}

static float val_exact(int r, size_t i) { return (float)((r + 1) * (int)(i % 1024)) * 0.25f; }
static float val_rand(int r, size_t i) {
    Rng g = rng_make(77 + (uint64_t)r, 0);
    return (float)rng_normal_at(&g, i);
}

// Every collective, checked against what it must give; 0 ok, 1 wrong, 2 a dist error.
static int collectives_rank(Dist *d, FILE *log) {
    const int W = d->world, r = d->rank;
    const size_t sizes[4] = {0, 1, 262144 + 7, 1000003}; // 262144 floats is one 1 MiB chunk
    for (int k = 0; k < 4; k++) {
        size_t n = sizes[k];
        float *x = (float *)malloc(4 * n + 4);
        for (size_t i = 0; i < n; i++) x[i] = k == 3 ? val_rand(r, i) : val_exact(r, i);
        if (dist_allreduce_mean_f32(d, x, n, "the test all-reduce")) return 2;
        for (size_t i = 0; i < n; i++) {
            float want;
            if (k == 3) { // rank order, in float: the bits every rank must get
                want = val_rand(0, i);
                for (int q = 1; q < W; q++) want += val_rand(q, i);
                want /= (float)W;
            } else {
                want = (float)(W + 1) / 2 * (float)(i % 1024) * 0.25f; // mean of (q+1)·v: exact in float
            }
            if (memcmp(&want, &x[i], 4)) {
                fprintf(log, "all-reduce n=%zu: element %zu is %.9g, want %.9g\n", n, i, x[i], want);
                return 1;
            }
        }
        free(x);
    }
    double v[3] = {r, 1.5, r == 1 ? 1e300 : 0};
    if (dist_allreduce_sum_f64(d, v, 3, "the f64 sum")) return 2;
    if (v[0] != W * (W - 1) / 2.0 || v[1] != 1.5 * W || v[2] != 1e300) {
        fprintf(log, "f64 sum: %g %g %g\n", v[0], v[1], v[2]);
        return 1;
    }
    unsigned char b[5000];
    for (int i = 0; i < 5000; i++) b[i] = r == 0 ? (unsigned char)(i * 7) : 0;
    if (dist_broadcast_bytes(d, b, sizeof b, "the test broadcast")) return 2;
    for (int i = 0; i < 5000; i++)
        if (b[i] != (unsigned char)(i * 7)) {
            fprintf(log, "broadcast byte %d\n", i);
            return 1;
        }
    // every rank has the same unique id (the NCCL id of the CUDA path)
    uint32_t mine[2] = {(uint32_t)r * 11u, crc32_update(0, d->unique_id, DIST_ID_BYTES)}, all[2 * 64];
    if (dist_allgather_bytes(d, mine, sizeof mine, all, "the test allgather")) return 2;
    for (int q = 0; q < W; q++)
        if (all[2 * q] != (uint32_t)q * 11u || all[2 * q + 1] != all[1]) {
            fprintf(log, "allgather entry %d: %u %08x (rank 0's id %08x)\n", q, all[2 * q], all[2 * q + 1], all[1]);
            return 1;
        }
    if (dist_barrier(d, "the test barrier")) return 2;
    // throughput: 8 M floats (32 MB) once, printed by rank 0
    size_t n = 8u << 20;
    float *x = (float *)calloc(n, 4);
    double t0 = time_now_s();
    if (dist_allreduce_mean_f32(d, x, n, "the timed all-reduce")) return 2;
    double dt = time_now_s() - t0;
    free(x);
    if (r == 0) fprintf(log, "%.3f s for 32 MB (%.0f MB/s of gradient through rank 0)\n", dt, 32 / dt);
    return 0;
}

static int run_rank(const Scenario *s, const char *name, int rank) {
    char path[1024];
    errfile(path, sizeof path, name, rank);
    FILE *log = fopen(path, "w");
    if (!log) return 3;
    char master[64], err[1024];
    snprintf(master, sizeof master, "127.0.0.1:%d", s->port);
    DistFlags f = {s->world, rank, -1, master, s->tag};
    Dist d;
    if (dist_init(&d, &f, s->timeout, err, sizeof err)) {
        fprintf(log, "%s", err);
        fclose(log);
        return 2;
    }
    int rc = 0;
    if (s->iters == 0) {
        rc = collectives_rank(&d, log);
        if (rc == 2) fprintf(log, "%s", d.err);
    } else {
        float g[1000];
        for (int it = 1; it <= s->iters && !rc; it++) {
            if (rank == s->fail_rank && it == s->fail_at) {
                fclose(log);
                if (s->fail_how == 1) _exit(9); // dies: the kernel closes its sockets
                raise(SIGSTOP);                  // hangs (the parent SIGKILLs it)
            }
            d.step = it;
            for (int i = 0; i < 1000; i++) g[i] = (float)(rank + it);
            if (dist_allreduce_mean_f32(&d, g, 1000, "the gradient all-reduce")) {
                fprintf(log, "%s", d.err);
                rc = 2;
            }
        }
    }
    dist_free(&d);
    fclose(log);
    return rc;
}

static int spawn(const Scenario *s, const char *name, pid_t *pids, int first, int last) {
    fflush(stdout), fflush(stderr);
    for (int r = first; r <= last; r++) {
        pid_t p = fork();
        if (p < 0) return -1;
        if (p == 0) _exit(run_rank(s, name, r));
        pids[r] = p;
    }
    return 0;
}

static int test_collectives(void) {
    for (int W = 2; W <= 3; W++) {
        Scenario s = {W, dist_free_port(), 20, "collectives", -1, 0, 0, 0};
        pid_t pids[3] = {0};
        int code[3];
        double t0 = time_now_s();
        CHECK(!spawn(&s, "coll", pids, 0, W - 1), "fork");
        int rc = wait_ranks(pids, W, (1u << W) - 1, 120, code);
        char text[2048], path[1024];
        for (int r = 0; r < W; r++) {
            errfile(path, sizeof path, "coll", r);
            read_text(path, text, sizeof text);
            if (code[r] != 0 || text[0]) printf("    world %d rank %d (exit %d): %s", W, r, code[r], text);
        }
        CHECK(rc == 0, "ranks did not finish");
        for (int r = 0; r < W; r++) CHECK(code[r] == 0, "rank %d of %d failed", r, W);
        printf("    world %d: bootstrap, all-reduce (exact sums; 1 M random floats bit-equal to the rank-order sum on "
               "every rank), f64 sum, broadcast, allgather of the unique id, barrier: ok in %.2f s\n", W, time_now_s() - t0);
    }
    return 0;
}

// A rank that never arrives; rank 0 that nobody listens as; a stranger refused while the real rank joins.
static int test_rank_missing(void) {
    char err[1024];
    Dist d;
    int port = dist_free_port();
    char master[64];
    snprintf(master, sizeof master, "127.0.0.1:%d", port);
    DistFlags f0 = {2, 0, -1, master, "runA"};
    double t0 = time_now_s();
    int rc = dist_init(&d, &f0, 2, err, sizeof err);
    double dt = time_now_s() - t0;
    dist_free(&d);
    printf("    rank 0 alone, timeout 2 s: after %.2f s: %s\n", dt, err);
    CHECK(rc == -1 && strstr(err, "rank 1 did not connect within 2 s") && dt >= 1.9 && dt < 4, "missing rank: %s", err);
    DistFlags f1 = {2, 1, -1, master, "runA"}; // nobody listens
    t0 = time_now_s();
    rc = dist_init(&d, &f1, 1.5, err, sizeof err);
    dt = time_now_s() - t0;
    dist_free(&d);
    printf("    rank 1 alone, timeout 1.5 s: after %.2f s: %s\n", dt, err);
    CHECK(rc == -1 && strstr(err, "could not connect to rank 0") && strstr(err, master) && dt < 4, "no rank 0: %s", err);

    // a stranger (rank 1 of another run folder) is refused with both names; the real rank 1 then joins
    Scenario real = {2, dist_free_port(), 10, "runA", -1, 0, 0, 1};
    Scenario stranger = real;
    stranger.tag = "runB";
    pid_t pids[2] = {0}, sp[2] = {0};
    int code[2], scode[2];
    CHECK(!spawn(&real, "real", pids, 0, 0), "fork");
    time_sleep_s(0.3);
    if (spawn(&stranger, "stranger", sp, 1, 1)) {
        kill_all(pids, 2);
        CHECK(0, "fork");
    }
    rc = wait_ranks(sp, 2, 2, 20, scode);
    char text[2048], path[1024];
    errfile(path, sizeof path, "stranger", 1);
    read_text(path, text, sizeof text);
    printf("    stranger: %s\n", text);
    if (rc || !strstr(text, "refused this rank") || !strstr(text, "runB") || !strstr(text, "runA")) {
        kill_all(pids, 2);
        CHECK(0, "the stranger was not refused clearly");
    }
    // its process ends with dist_init's failure code, 2 (under valgrind a leak on that path would make it 99)
    if (scode[1] != 2) {
        kill_all(pids, 2);
        CHECK(0, "the refused rank exited with %d, not 2", scode[1]);
    }
    if (spawn(&real, "real", pids, 1, 1)) {
        kill_all(pids, 2);
        CHECK(0, "fork");
    }
    rc = wait_ranks(pids, 2, 3, 30, code);
    CHECK(rc == 0 && code[0] == 0 && code[1] == 0, "the real rank 1 did not join after the stranger (%d %d)", code[0], code[1]);
    printf("    then the real rank 1 joined and the all-reduce ran\n");
    return 0;
}

// 3 ranks in a loop of all-reduces; one dies (exits) or hangs (SIGSTOP) at iteration 4.
static int dies_or_hangs(int how) {
    const char *name = how == 1 ? "dies" : "hangs";
    Scenario s = {3, dist_free_port(), 2, "runC", 2, 4, how, 1000};
    pid_t pids[3] = {0};
    int code[3];
    double t0 = time_now_s();
    CHECK(!spawn(&s, name, pids, 0, 2), "fork");
    int rc = wait_ranks(pids, 3, 3, 30, code); // ranks 0 and 1; rank 2 is killed afterwards if it hangs
    double dt = time_now_s() - t0;
    char t0s[2048], t1s[2048], path[1024];
    errfile(path, sizeof path, name, 0);
    read_text(path, t0s, sizeof t0s);
    errfile(path, sizeof path, name, 1);
    read_text(path, t1s, sizeof t1s);
    printf("    rank 2 %s at step 4 (dist timeout 2 s); ranks 0 and 1 stopped after %.2f s, exit %d and %d\n"
           "      rank 0: %s\n      rank 1: %s\n", name, dt, code[0], code[1], t0s, t1s);
    CHECK(rc == 0 && code[0] == 2 && code[1] == 2, "ranks 0 and 1 should fail with an error, not hang or succeed");
    const char *what = how == 1 ? "closed its connection during the gradient all-reduce at step 4"
                                : "sent nothing for 2 s during the gradient all-reduce at step 4";
    CHECK(strstr(t0s, "rank 2") && strstr(t0s, what), "rank 0's message");
    CHECK(strstr(t1s, "rank 0 stopped the run") && strstr(t1s, "rank 2") && strstr(t1s, what), "rank 1's message");
    CHECK(how == 1 ? dt < 10 : dt > 1.9 && dt < 10, "took %.2f s", dt);
    return 0;
}

static int test_rank_dies(void) { return dies_or_hangs(1); }
static int test_rank_hangs(void) { return dies_or_hangs(2); }

// ------------------------------------------------------------------------------------------------
// `avat3r train` with several ranks

static const char *fixture_shards(void) { return test_micro_shards("dist", 2, 4); }

// The micro model of tests/test_train.c, one thread per rank, no validation, a checkpoint every 2 steps.
// adam_eps 1e-4 (as the step-reference test): with 1e-8, Adam's g/(√v + eps) turns float rounding in
// near-zero gradient entries into visible parameter differences (measured: 2.7e-4·lr after 4 steps).
#define LR 1e-3
#define DIST_SETS                                                                                                  \
    TEST_MICRO_MODEL                                                                                               \
    "--set loader_threads=1 --set threads=1 --set val_samples=0 --set warmup_steps=2 --set lr=1e-3 "               \
    "--set adam_eps=1e-4 --set ckpt_every=2 --set dist_timeout=20 --steps 4 "

// env, then `avat3r PREFIX train ...` with the run's output appended to RUN.log; `timeout` bounds it.
static int run_train(const char *prefix, const char *run, const char *extra, const char *env) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "cd '%s' && %s timeout -k 5 120 %s train --config '%s/configs/tiny.cfg' --data '%s' --out '%s' "
             DIST_SETS "%s >> '%s.log' 2>&1", test_tmpdir(), env ? env : "", prefix, test_source_root(),
             fixture_shards(), run, extra, run);
    return test_system(cmd);
}

static int max_param_diff(const char *a, const char *b, double *out) {
    float *p, *q;
    size_t n, nb;
    if (test_load_param_pair(a, b, &p, &q, &n, &nb)) return -1;
    double m = 0;
    for (size_t i = 0; i < n && n == nb; i++) {
        double e = fabs((double)p[i] - q[i]);
        m = e > m || e != e ? e : m;
    }
    *out = n == nb ? m : INFINITY;
    free(p), free(q);
    return 0;
}

// One process with micro_batch 2 (made once per test run, shared by the tests below).
static const char *single_run(void) {
    static char run[1024];
    char done[1100];
    snprintf(run, sizeof run, "%s/dist_single", test_tmpdir());
    snprintf(done, sizeof done, "%s/final.ckpt", run);
    if (access(done, F_OK) == 0) return run;
    char prefix[2048];
    snprintf(prefix, sizeof prefix, "'%s'", AVAT3R_BINARY);
    if (run_train(prefix, run, "--set micro_batch=2", NULL)) return NULL;
    return run;
}

// 2 ranks x micro_batch 1 (made once per test run): through mpirun when it exists (OMPI_* variables), else
// avat3r launch. *how says which; *secs how long it took.
static const char *two_rank_run(const char **how, double *secs) {
    static char run[1024];
    static const char *used = "";
    static double took = 0;
    char done[1100], prefix[2048];
    snprintf(run, sizeof run, "%s/dist_two", test_tmpdir());
    snprintf(done, sizeof done, "%s/final.ckpt", run);
    if (access(done, F_OK) != 0) {
        int mpi = test_system("command -v mpirun > /dev/null 2>&1") == 0;
        if (mpi)
            snprintf(prefix, sizeof prefix, "mpirun %s --oversubscribe -np 2 -x OMP_NUM_THREADS=1 -x MASTER_PORT=%d '%s'",
                     geteuid() == 0 ? "--allow-run-as-root" : "", dist_free_port(), AVAT3R_BINARY);
        else
            snprintf(prefix, sizeof prefix, "'%s' launch --procs 2 --", AVAT3R_BINARY);
        double t0 = time_now_s();
        if (run_train(prefix, run, "--set micro_batch=1", NULL)) return NULL;
        took = time_now_s() - t0, used = mpi ? "mpirun" : "avat3r launch";
    }
    if (how) *how = used;
    if (secs) *secs = took;
    return run;
}

// Parameters after N steps of 2 ranks x micro_batch 1 equal those of 1 process x micro_batch 2 within float
// rounding: the ranks draw the same global samples (sampler_index), and the mean of the two ranks'
// gradients is the gradient of the batch of two (every loss term is a mean over the batch's images); only the
// order of float additions differs. Run through mpirun when it exists (OMPI_* variables), else launch.
static int test_train_two_ranks(void) {
    CHECK(fixture_shards(), "fixture failed (%s/dist_caps.log)", test_tmpdir());
    const char *single = single_run();
    CHECK(single, "the 1-process run failed (%s/dist_single.log)", test_tmpdir());
    const char *how = "";
    double dt = 0;
    const char *run = two_rank_run(&how, &dt);
    CHECK(run, "the 2-rank run failed (%s/dist_two.log)", test_tmpdir());
    char a[1100], b[1100], cmd[8192];
    snprintf(a, sizeof a, "%s/final.ckpt", single);
    snprintf(b, sizeof b, "%s/final.ckpt", run);
    double m;
    CHECK(!max_param_diff(a, b, &m), "checkpoints");
    printf("    4 steps, 2 ranks x micro_batch 1 (%s, %.1f s) vs 1 process x micro_batch 2: max |param diff| %.2e = "
           "%.2e lr\n", how, dt, m, m / LR);
    // Tolerance: 1e-4·lr. The measured difference (3.7e-6·lr = 3.7e-9 = 2^-28 absolute) is one float ulp of a
    // parameter of magnitude 0.03-0.06: the gradients agree to float rounding (the batch backward and the mean
    // of two per-sample backwards add the same terms in another order), and Adam's normalised step passes
    // that rounding on to a few parameters at the last bit.
    CHECK(m <= 1e-4 * LR, "parameters differ by %.3e = %.3e lr (tolerance 1e-4 lr)", m, m / LR);
    snprintf(cmd, sizeof cmd, "grep -q 'all 2 ranks end with bit-identical parameters' '%s.log' && "
             "grep -q 'rank 0 of 2' '%s.log' && test \"$(grep -c '\"kind\":\"train\"' '%s/log.jsonl')\" = 4 && "
             "grep -q '\"comm_s\"' '%s/log.jsonl'", run, run, run, run);
    CHECK(test_system(cmd) == 0, "rank 0's log lacks the agreement line or the 4 steps (%s.log)", run);
    // the per-step losses are the same batch's: equal to float rounding
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 -c \"import json,sys; L=[[json.loads(l)['loss'] for l in open(r+'/log.jsonl')] "
             "for r in sys.argv[1:]]; d=max(abs(x-y)/abs(y) for x,y in zip(*L)); print('    per-step loss: max rel diff %%.1e' %% d); "
             "sys.exit(d > 1e-5)\" '%s' '%s'", single, run);
    CHECK(test_system(cmd) == 0, "the losses differ");
    return 0;
}

// 2 ranks (avat3r launch), rank 1 SIGKILLed after step 3 (checkpoints every 2): rank 0 stops at once with a
// message naming rank 1, launch exits non-zero; the step-2 checkpoint, written by 2 ranks, is resumed by ONE
// process with micro_batch 2 (the same 2 samples per micro-step, so the same sample sequence) and ends where
// the uninterrupted 1-process run ends, within the tolerance above.
static int test_train_kill_resume(void) {
    CHECK(fixture_shards(), "fixture failed (%s/dist_caps.log)", test_tmpdir());
    const char *single = single_run();
    CHECK(single, "the 1-process run failed (%s/dist_single.log)", test_tmpdir());
    char run[1024], prefix[2048], a[1100], b[1100], cmd[8192];
    snprintf(run, sizeof run, "%s/dist_killed", test_tmpdir());
    snprintf(prefix, sizeof prefix, "'%s' launch --procs 2 --grace 5 --", AVAT3R_BINARY);
    double t0 = time_now_s();
    int rc = run_train(prefix, run, "--set micro_batch=1", "AVAT3R_FAULT_RANK=1 AVAT3R_FAULT_KILL_AT_STEP=3");
    double dt = time_now_s() - t0;
    CHECK(rc != 0, "launch exited 0 although rank 1 was killed");
    snprintf(cmd, sizeof cmd, "grep -E 'rank 1.*closed its connection during the gradient all-reduce at step 4|rank 1 was "
             "killed' '%s.log' | sed 's/^/    /'", run);
    test_system(cmd);
    snprintf(cmd, sizeof cmd, "grep -q 'rank 1 (.*) closed its connection during the gradient all-reduce at step 4' '%s.log' && "
             "grep -q 'avat3r launch: rank 1 was killed by signal 9' '%s.log' && test -f '%s/ckpt_00000002.ckpt' && "
             "! test -f '%s/ckpt_00000004.ckpt'", run, run, run, run);
    CHECK(test_system(cmd) == 0, "expected rank 0's message naming rank 1, launch's, and only the step-2 checkpoint (%s.log)", run);
    printf("    launch returned %d after %.1f s\n", rc, dt);
    CHECK(dt < 60, "too slow to stop");
    // nothing of the run is left running
    snprintf(cmd, sizeof cmd, "! pgrep -f -- '[-]-out %s' > /dev/null", run); // [-]: not this shell's own line
    CHECK(test_system(cmd) == 0, "a rank outlived launch");
    char prefix1[2048];
    snprintf(prefix1, sizeof prefix1, "'%s'", AVAT3R_BINARY);
    CHECK(run_train(prefix1, run, "--resume --set micro_batch=2", NULL) == 0, "the 1-process resume failed (%s.log)", run);
    snprintf(cmd, sizeof cmd, "grep -q 'written by 2 rank(s) x micro_batch 1, this run has 1 x 2: the same 2 samples per "
             "micro-step' '%s.log' && test \"$(grep -c '\"kind\":\"train\"' '%s/log.jsonl')\" = 4", run, run);
    CHECK(test_system(cmd) == 0, "the resume did not say how the sample sequence continues, or the log is not steps 1..4");
    snprintf(a, sizeof a, "%s/final.ckpt", single);
    snprintf(b, sizeof b, "%s/final.ckpt", run);
    double m;
    CHECK(!max_param_diff(a, b, &m), "checkpoints");
    printf("    2 ranks to step 2, killed at 3, resumed by 1 process x micro_batch 2 to step 4 vs 1 process throughout: "
           "max |param diff| %.2e = %.2e lr\n", m, m / LR);
    CHECK(m <= 1e-4 * LR, "parameters differ by %.3e lr", m / LR);
    return 0;
}

// Signals: SIGTERM to `avat3r launch` reaches every rank; they stop after the same step, rank 0 writes the
// checkpoint, and all exit 0. And a stop asked of rank 1 alone (the test hook raises SIGTERM in rank 1 after
// step 2; the ranks agree on it at step 3's all-reduce) resumed by 2 ranks ends bit-identical to the
// uninterrupted 2-rank run.
static int test_train_sigterm(void) {
    const char *shards = fixture_shards();
    CHECK(shards, "fixture failed (%s/dist_caps.log)", test_tmpdir());
    char r[1024], cmd[8192];
    snprintf(r, sizeof r, "%s/dist_term", test_tmpdir());
    snprintf(cmd, sizeof cmd,
             "cd '%s' && '%s' launch --procs 2 -- train --config '%s/configs/tiny.cfg' --data '%s' --out '%s' " DIST_SETS
             "--steps 100000 --set micro_batch=1 > '%s.log' 2>&1 & p=$!; "
             "for i in $(seq 600); do grep -q '\"kind\":\"train\"' '%s/log.jsonl' 2>/dev/null && break; sleep 0.1; done; "
             "kill -TERM $p; for i in $(seq 600); do kill -0 $p 2>/dev/null || break; sleep 0.1; done; "
             "kill -KILL $p 2>/dev/null; wait $p; rc=$?; grep -E 'continue with --resume|forwarded' '%s.log' | sed 's/^/    /'; "
             "test $rc = 0 && grep -q 'continue with --resume' '%s.log' && grep -q 'Terminated forwarded to every rank; "
             "all ranks exited 0' '%s.log' && ls '%s'/ckpt_*.ckpt > /dev/null",
             test_tmpdir(), AVAT3R_BINARY, test_source_root(), shards, r, r, r, r, r, r, r);
    CHECK(test_system(cmd) == 0, "SIGTERM to launch did not stop every rank cleanly with a checkpoint (%s.log)", r);

    const char *two = two_rank_run(NULL, NULL);
    CHECK(two, "the 2-rank run failed (%s/dist_two.log)", test_tmpdir());
    char prefix[2048], a[1100], b[1100];
    snprintf(r, sizeof r, "%s/dist_term_hook", test_tmpdir());
    snprintf(prefix, sizeof prefix, "'%s' launch --procs 2 --", AVAT3R_BINARY);
    CHECK(run_train(prefix, r, "--set micro_batch=1", "AVAT3R_FAULT_RANK=1 AVAT3R_FAULT_SIGTERM_AT_STEP=2") == 0,
          "the stop should exit 0 (%s.log)", r);
    snprintf(cmd, sizeof cmd, "grep -q 'a stop signal to another rank at step 3' '%s.log' && test -f '%s/ckpt_00000003.ckpt' "
             "&& ! test -f '%s/final.ckpt'", r, r, r);
    CHECK(test_system(cmd) == 0, "expected a stop after step 3 with its checkpoint (%s.log)", r);
    CHECK(run_train(prefix, r, "--resume --set micro_batch=1", NULL) == 0, "the 2-rank resume failed (%s.log)", r);
    snprintf(a, sizeof a, "%s/final.ckpt", two);
    snprintf(b, sizeof b, "%s/final.ckpt", r);
    double m = -1;
    CHECK(!max_param_diff(a, b, &m) && m == 0, "stopped at 3 + resumed differs from the straight 2-rank run by %.3e", m);
    printf("    rank 1 asked to stop after step 2: all stopped after step 3 (checkpoint), resumed by 2 ranks: final "
           "parameters bit-identical to the uninterrupted 2-rank run\n");
    return 0;
}

// Bad input: --device cuda without a GPU, an unknown device; ranks given different configurations (the plain --world/--rank/--master form).
static int test_train_bad_input(void) {
    const char *shards = fixture_shards();
    CHECK(shards, "fixture failed");
    char r[1024], cmd[8192];
    snprintf(r, sizeof r, "%s/dist_bad", test_tmpdir());
    // no GPU here: a CUDA build finds no device, a CPU-only build says it has no CUDA; either is exit 2
    snprintf(cmd, sizeof cmd, "'%s' train --config '%s/configs/tiny.cfg' --data '%s' --out '%s' --device cuda > %s.cuda "
             "2>&1; test $? = 2 && grep -E -q 'device cuda: (no CUDA device is visible|this avat3r was built without "
             "CUDA)' %s.cuda && test ! -e '%s'", AVAT3R_BINARY, test_source_root(), shards, r, r, r, r);
    CHECK(test_system(cmd) == 0, "--device cuda without a GPU not refused clearly (%s.cuda)", r);
    snprintf(cmd, sizeof cmd, "'%s' train --config '%s/configs/tiny.cfg' --data '%s' --out '%s' --device tpu 2>&1 | "
             "grep -q \"expected cpu or cuda\"", AVAT3R_BINARY, test_source_root(), shards, r);
    CHECK(test_system(cmd) == 0, "--device tpu not refused");
    int port = dist_free_port();
    snprintf(cmd, sizeof cmd,
             "cd '%s' && B='%s'; A=\"train --config %s/configs/tiny.cfg --data %s --out %s " DIST_SETS "\"; "
             "timeout 60 $B $A --world 2 --rank 0 --master 127.0.0.1:%d --set lr=1e-3 > %s.0 2>&1 & "
             "timeout 60 $B $A --world 2 --rank 1 --master 127.0.0.1:%d --set lr=2e-3 > %s.1 2>&1; r1=$?; wait $!; r0=$?; "
             "test $r0 = 1 && test $r1 = 1 && grep -q 'rank 1 disagrees with rank 0 before the first step: its "
             "configuration differs' %s.0 && grep -q 'configuration differs' %s.1 && sed -n '$p' %s.0 | sed 's/^/    /'",
             test_tmpdir(), AVAT3R_BINARY, test_source_root(), shards, r, port, r, port, r, r, r, r);
    CHECK(test_system(cmd) == 0, "ranks with different configurations not refused (%s.0, %s.1)", r, r);
    return 0;
}

const TestCase dist_tests[] = {
    {"dist_ranks_from_env", test_ranks_from_env},
    {"dist_collectives", test_collectives},
    {"dist_rank_missing", test_rank_missing},
    {"dist_rank_dies", test_rank_dies},
    {"dist_rank_hangs", test_rank_hangs},
    {"dist_train_two_ranks", test_train_two_ranks},
    {"dist_train_kill_resume", test_train_kill_resume},
    {"dist_train_sigterm", test_train_sigterm},
    {"dist_train_bad_input", test_train_bad_input},
    {NULL, NULL},
};
