// cmd_train.c — `avat3r train`: argument parsing around train_run (train/loop.h).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "loop.h"
#include "step_device.h"

static const char *USAGE =
    "--config FILE --data SHARDS... --out RUN [--steps N] [--resume] [--set key=value ...]\n"
    "       [--world N --rank R [--local-rank L] [--master HOST:PORT]] [--device cpu|cuda]\n"
    "  Trains on HDF5 shards (files or folders of *.h5; `avat3r pack` writes them) and writes the run folder:\n"
    "  config.cfg, log.jsonl (one JSON object per step and per validation), ckpt_<step>.ckpt (the newest\n"
    "  ckpt_keep kept), val_<step>.png (inputs | prediction | ground truth on held-out samples), final.ckpt.\n"
    "  --resume continues from the newest complete checkpoint in RUN (config from the checkpoint; --set may\n"
    "  change training keys, --steps the horizon). SIGINT/SIGTERM write a checkpoint and exit 0.\n"
    "  Several processes (data parallel, docs/distributed.md): ranks from --world/--rank/--local-rank/--master,\n"
    "  or from `avat3r launch --procs N -- train ...`, mpirun (OMPI_COMM_WORLD_*) or srun (SLURM_PROCID, ...);\n"
    "  rank 0 listens on the master port (default 29500; MASTER_ADDR/MASTER_PORT also work).\n"
    "  --device cuda runs the step on a GPU (builds with CUDA; matmuls per the key precision, fp32 by default;\n"
    "  one GPU per rank, local rank mod the GPUs of the node; gradients averaged through NCCL, or the host in\n"
    "  builds without it); checkpoints are the CPU's, so either device resumes the other's run.\n"
    "  Keys: docs/training.md, or `avat3r train --keys`.";

int cmd_train(int argc, char **argv) {
    TrainRunOptions o;
    memset(&o, 0, sizeof o);
    o.dist = (DistFlags){0, -1, -1, NULL, NULL};
    const char *sets[64], *data[1024];
    for (int i = 1; i < argc; i++) {
        int has = i + 1 < argc;
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: avat3r train %s\n", USAGE);
            return 0;
        } else if (!strcmp(a, "--keys")) {
            cli_print_config_keys();
            return 0;
        } else if (!strcmp(a, "--config") && has) o.config = argv[++i];
        else if (!strcmp(a, "--out") && has) o.out = argv[++i];
        else if (!strcmp(a, "--steps") && has) o.steps = atol(argv[++i]);
        else if (!strcmp(a, "--resume")) o.resume = 1;
        else if (!strcmp(a, "--world") && has) {
            if (cli_parse_int("train", a, argv[++i], 1, DIST_MAX_WORLD, &o.dist.world)) return 2;
        } else if (!strcmp(a, "--rank") && has) {
            if (cli_parse_int("train", a, argv[++i], 0, DIST_MAX_WORLD - 1, &o.dist.rank)) return 2;
        } else if (!strcmp(a, "--local-rank") && has) {
            if (cli_parse_int("train", a, argv[++i], 0, DIST_MAX_WORLD - 1, &o.dist.local_rank)) return 2;
        } else if (!strcmp(a, "--master") && has) o.dist.master = argv[++i];
        else if (!strcmp(a, "--device") && has) {
            o.device = argv[++i];
            char err[256];
            if (step_device_check(o.device, err, sizeof err)) {
                fprintf(stderr, "avat3r train %s\n", err);
                return 2;
            }
        }
        else if (!strcmp(a, "--set") && has) {
            if (o.nsets == 64) {
                fprintf(stderr, "avat3r train: at most 64 --set\n");
                return 2;
            }
            sets[o.nsets++] = argv[++i];
        } else if (!strcmp(a, "--data") && has) {
            // every following argument up to the next option is a shard or folder
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) && o.ndata < 1024) data[o.ndata++] = argv[++i];
        } else {
            fprintf(stderr, "avat3r train: unknown or incomplete option '%s'\nusage: avat3r train %s\n", a, USAGE);
            return 2;
        }
    }
    if (!o.out || !o.ndata || (!o.config && !o.resume)) {
        fprintf(stderr, "avat3r train: --data, --out and --config (or --resume) are required\nusage: avat3r train %s\n",
                USAGE);
        return 2;
    }
    o.sets = sets, o.data = data;
    return train_run(&o);
}
