// dist.h — data parallelism across processes without torchrun: ranks from flags or the environment
// (Slurm, OpenMPI), a TCP bootstrap on the master address, and gradient all-reduce (issue #8). Scaffold.
#ifndef AVAT3R_DIST_H
#define AVAT3R_DIST_H

#endif
