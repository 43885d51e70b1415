// avat3r.c — the avat3r command: one program, one verb per job.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "cli.h"

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
    const char *issue; // for verbs that later issues build
} Verb;

static const Verb verbs[] = {
    {"init", cmd_init, "write a freshly initialised model checkpoint", NULL},
    {"inspect", cmd_inspect, "print a JSON summary of a checkpoint, tensor bundle or PLY", NULL},
    {"selfcheck", cmd_selfcheck, "build the model, run forward+backward on a random batch, check the gradients", NULL},
    {"bench", cmd_bench, "time forward+backward against the PyTorch reference", NULL},
    {"train", cmd_train, "train a model on packed shards (checkpoints, resume, validation)", NULL},
    {"synth", cmd_synth, "write synthetic captures (procedural heads) in the ava256 layout", NULL},
    {"pack", cmd_pack, "pack ava256 captures into HDF5 shards (crop, resize, JPEG)", NULL},
    {"eval", cmd_eval, "evaluate a checkpoint on held-out subjects (PSNR, SSIM, LPIPS; AKD: issue #6)", NULL},
    {"export", cmd_export, "export a checkpoint as safetensors (PyTorch-style names, config in the metadata)", NULL},
    {"render", cmd_render, "render a 3DGS PLY to PNG with the project's rasterizer", NULL},
    {"animate", cmd_animate, "build an avatar and drive it with expression codes (PLY per frame, video)", NULL},
    {"launch", cmd_launch, "start N local ranks of a command (data-parallel training)", NULL},
};
#define NVERBS ((int)(sizeof verbs / sizeof verbs[0]))

static void usage(FILE *f) {
    fprintf(f, "usage: avat3r <verb> [options]   (avat3r <verb> --help for each)\n\nverbs:\n");
    for (int i = 0; i < NVERBS; i++)
        fprintf(f, "  %-10s %s%s%s%s\n", verbs[i].name, verbs[i].help, verbs[i].fn ? "" : "  [not yet: issue ",
                verbs[i].fn ? "" : verbs[i].issue, verbs[i].fn ? "" : "]");
    fprintf(f, "\nCommon options: --config FILE, --set key=value (repeatable), --device cpu|cuda.\n");
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return argc < 2 ? 2 : 0;
    }
    for (int i = 0; i < NVERBS; i++) {
        if (strcmp(argv[1], verbs[i].name)) continue;
        if (!verbs[i].fn) {
            fprintf(stderr, "avat3r %s: not implemented yet (tracked in issue %s)\n", verbs[i].name, verbs[i].issue);
            return 2;
        }
        return verbs[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "avat3r: unknown verb '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
