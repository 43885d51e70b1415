// cmd_launch.c — `avat3r launch --procs N -- train ...`: N local ranks of one command (issue #8,
// docs/distributed.md). Each child gets AVAT3R_WORLD, AVAT3R_RANK, AVAT3R_LOCAL_RANK, AVAT3R_MASTER
// (127.0.0.1:PORT) and AVAT3R_RUN_ID (so ranks of another launch are refused), and OMP_NUM_THREADS =
// cores / N unless it is set. SIGINT, SIGTERM and SIGHUP are forwarded to every rank (training writes a
// checkpoint and stops). When a rank fails, the others get SIGTERM, then SIGKILL after --grace seconds;
// the exit status is the first failing rank's (128 + signal for a signal), 0 when all succeed.
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../common/timer.h"
#include "cli.h"
#include "dist.h"

static const char *USAGE =
    "usage: avat3r launch --procs N [--master-port P] [--grace S] -- COMMAND [ARGS...]\n"
    "  Starts N local ranks of COMMAND: an avat3r verb (`train ...`) or a program path (anything with a '/').\n"
    "  --gpus N is the same as --procs N (one rank per GPU once the CUDA path exists; CPU ranks for now).\n"
    "  --master-port P: the port rank 0 listens on (default: a free one). --grace S: seconds between SIGTERM and\n"
    "  SIGKILL for the other ranks after one fails (default 10). Forwards SIGINT/SIGTERM/SIGHUP to every rank.\n"
    "  Set --set threads=1 (or OMP_NUM_THREADS) when the ranks share few cores; launch sets OMP_NUM_THREADS to\n"
    "  cores / N unless it is already set. docs/distributed.md has mpirun and Slurm recipes.";

static pid_t *g_pids;
static int g_n;
static volatile sig_atomic_t g_signal;

static void forward(int sig) {
    g_signal = sig;
    for (int i = 0; i < g_n; i++)
        if (g_pids[i] > 0) kill(g_pids[i], sig);
}

// A whole-number option, or the usage after cli_parse_int's message.
static int parse_pos(const char *flag, const char *v, int lo, int hi, int *out) {
    if (cli_parse_int("launch", flag, v, lo, hi, out)) return fprintf(stderr, "%s\n", USAGE), -1;
    return 0;
}

static void describe(char *buf, size_t n, int st) {
    if (WIFEXITED(st)) snprintf(buf, n, "exited with status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st)) snprintf(buf, n, "was killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else snprintf(buf, n, "ended (status %d)", st);
}

int cmd_launch(int argc, char **argv) {
    int procs = 0, port = 0, grace = 10, dashdash = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "--")) {
            dashdash = i;
            break;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("%s\n", USAGE);
            return 0;
        } else if ((!strcmp(a, "--procs") || !strcmp(a, "--gpus")) && has) {
            if (parse_pos(a, argv[++i], 1, 1024, &procs)) return 2;
        } else if (!strcmp(a, "--master-port") && has) {
            if (parse_pos(a, argv[++i], 1, 65535, &port)) return 2;
        } else if (!strcmp(a, "--grace") && has) {
            if (parse_pos(a, argv[++i], 0, 3600, &grace)) return 2;
        } else {
            fprintf(stderr, "avat3r launch: unknown or incomplete option '%s'\n%s\n", a, USAGE);
            return 2;
        }
    }
    if (!procs || dashdash < 0 || dashdash + 1 >= argc) {
        fprintf(stderr, "avat3r launch: --procs N (or --gpus N) and -- COMMAND are required\n%s\n", USAGE);
        return 2;
    }
    char **cmd = argv + dashdash + 1;
    const int ncmd = argc - dashdash - 1;
    // an avat3r verb runs this same binary; a path runs that program
    char self[4096];
    ssize_t l = readlink("/proc/self/exe", self, sizeof self - 1);
    if (l <= 0) {
        fprintf(stderr, "avat3r launch: cannot find this program's path (/proc/self/exe): %s\n", strerror(errno));
        return 1;
    }
    self[l] = 0;
    const int is_verb = strchr(cmd[0], '/') == NULL;
    char **args = (char **)calloc((size_t)ncmd + 2, sizeof(char *));
    if (!args) return 1;
    int k = 0;
    if (is_verb) args[k++] = self;
    for (int i = 0; i < ncmd; i++) args[k++] = cmd[i];
    args[k] = NULL;
    const char *prog = is_verb ? self : cmd[0];

    if (!port) port = dist_free_port();
    if (port <= 0) port = DIST_DEFAULT_PORT;
    char master[64], run_id[64], world[16], threads[32];
    snprintf(master, sizeof master, "127.0.0.1:%d", port);
    snprintf(run_id, sizeof run_id, "launch:%d-%ld", (int)getpid(), (long)time(NULL));
    snprintf(world, sizeof world, "%d", procs);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    snprintf(threads, sizeof threads, "%ld", cores / procs > 1 ? cores / procs : 1);
    fprintf(stderr, "avat3r launch: %d ranks of '%s%s', rank 0 listens on %s\n", procs, is_verb ? "avat3r " : "", cmd[0],
            master);
    fflush(stderr);

    g_pids = (pid_t *)calloc((size_t)procs, sizeof(pid_t));
    if (!g_pids) return 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward;
    sigemptyset(&sa.sa_mask);
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT), sigaddset(&block, SIGTERM), sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, &old); // no forwarding while the table is half filled
    sigaction(SIGINT, &sa, NULL), sigaction(SIGTERM, &sa, NULL), sigaction(SIGHUP, &sa, NULL);
    const pid_t parent = getpid();
    for (int r = 0; r < procs; r++) {
        pid_t pid = fork();
        if (pid < 0) {
            fprintf(stderr, "avat3r launch: fork for rank %d failed: %s; stopping the others\n", r, strerror(errno));
            for (int i = 0; i < r; i++) kill(g_pids[i], SIGKILL);
            for (int i = 0; i < r; i++) waitpid(g_pids[i], NULL, 0);
            return 1;
        }
        if (pid == 0) {
            // the rank dies with the launcher (SIGTERM: it writes a checkpoint and stops with the others)
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (getppid() != parent) _exit(1);
            signal(SIGINT, SIG_DFL), signal(SIGTERM, SIG_DFL), signal(SIGHUP, SIG_DFL);
            sigprocmask(SIG_SETMASK, &old, NULL);
            char rank[16];
            snprintf(rank, sizeof rank, "%d", r);
            setenv("AVAT3R_WORLD", world, 1), setenv("AVAT3R_RANK", rank, 1), setenv("AVAT3R_LOCAL_RANK", rank, 1);
            setenv("AVAT3R_MASTER", master, 1), setenv("AVAT3R_RUN_ID", run_id, 1);
            setenv("OMP_NUM_THREADS", threads, 0);
            execv(prog, args);
            fprintf(stderr, "avat3r launch: rank %d: cannot run %s: %s\n", r, prog, strerror(errno));
            _exit(127);
        }
        g_pids[r] = pid;
    }
    g_n = procs;
    sigprocmask(SIG_SETMASK, &old, NULL);

    int status = 0, first_bad = -1, alive = procs, termed = 0, killed = 0;
    double kill_at = 0;
    while (alive) {
        int st;
        pid_t pid = waitpid(-1, &st, WNOHANG);
        if (pid < 0 && errno == EINTR) continue;
        if (pid < 0) break;
        if (pid == 0) {
            if (termed && !killed && time_now_s() >= kill_at) {
                fprintf(stderr, "avat3r launch: %d rank(s) still running %d s after SIGTERM: SIGKILL\n", alive, grace);
                for (int i = 0; i < procs; i++)
                    if (g_pids[i] > 0) kill(g_pids[i], SIGKILL);
                killed = 1;
            }
            time_sleep_s(0.02);
            continue;
        }
        int r = 0;
        while (r < procs && g_pids[r] != pid) r++;
        if (r == procs) continue;
        g_pids[r] = 0;
        alive--;
        int ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
        if (!ok && first_bad < 0) {
            first_bad = r;
            status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
            char what[128];
            describe(what, sizeof what, st);
            fprintf(stderr, "avat3r launch: rank %d %s%s\n", r, what, alive ? "; stopping the other ranks" : "");
            if (alive) {
                for (int i = 0; i < procs; i++)
                    if (g_pids[i] > 0) kill(g_pids[i], SIGTERM), kill(g_pids[i], SIGCONT);
                termed = 1;
                kill_at = time_now_s() + grace;
            }
        } else if (!ok) {
            char what[128];
            describe(what, sizeof what, st);
            fprintf(stderr, "avat3r launch: rank %d %s\n", r, what);
        }
    }
    g_n = 0;
    free(g_pids);
    free(args);
    if (first_bad < 0 && g_signal)
        fprintf(stderr, "avat3r launch: %s forwarded to every rank; all ranks exited 0\n", strsignal(g_signal));
    return status;
}
