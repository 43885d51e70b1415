// cmd_launch.c — `avat3r launch --gpus N -- train ...`: N local ranks of one command (issue #8). Scaffold.
#include <stdio.h>

#include "cli.h"

int cmd_launch(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "avat3r launch: not implemented yet (issue #8)\n");
    return 2;
}
