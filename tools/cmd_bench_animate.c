// cmd_bench_animate.c — `avat3r bench animate`: avatar creation time and animation frames per second
// on the CPU (issue #6). Scaffold: filled in by the animate work.
#include <stdio.h>

#include "cli.h"

int cmd_bench_animate(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "avat3r bench animate: not implemented yet (issue #6)\n");
    return 2;
}
