// cmd_animate.c — `avat3r animate`: build an avatar from 4 input views and drive it with expression
// codes; one 3DGS PLY and one rendered frame per code (issue #6). Scaffold: filled in by the animate work.
#include <stdio.h>

#include "cli.h"

int cmd_animate(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "avat3r animate: not implemented yet (issue #6)\n");
    return 2;
}
