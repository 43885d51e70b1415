// dist.h — data parallelism across processes without torchrun or MPI (issue #8, CPU part; docs/distributed.md).
//
// Ranks come from flags (--world/--rank/--local-rank/--master), from `avat3r launch` (AVAT3R_* variables),
// from OpenMPI's mpirun (OMPI_COMM_WORLD_*) or from Slurm's srun (SLURM_PROCID, ...). Rank 0 listens on the
// master port; the others connect to it with retries, introduce themselves (world size, rank, run id) and
// receive the run's 128-byte unique id (the NCCL id of the CUDA path, issue #7). The same TCP connections
// (a star around rank 0) carry the CPU collectives: every collective has a fixed reduction order (rank 0
// adds the ranks' data in rank order and sends the result back), so every rank gets the same bits and runs
// are reproducible. Every wait has a timeout; errors name the rank and what it was doing:
// "rank 1 closed its connection during the gradient all-reduce at step 12".
//
// A world of 1 never opens a socket. Functions return 0, or −1 with the message in d->err; after a failure
// every later collective fails with the same message (rank 0 has told the others why).
#ifndef AVAT3R_DIST_H
#define AVAT3R_DIST_H
#include <stddef.h>
#include <stdint.h>

#define DIST_ID_BYTES 128      // the size of an ncclUniqueId
#define DIST_DEFAULT_PORT 29500
#define DIST_MAX_WORLD 65536

typedef struct {               // what the command line says; world 0 = not given (the environment decides)
    int world, rank, local_rank; // rank, local_rank −1 = not given
    const char *master;        // "HOST:PORT", "HOST" (port 29500) or NULL
    const char *run_tag;       // mixed into the run id (train uses the run folder): other runs' ranks are refused
} DistFlags;

typedef struct {
    int world, rank, local_rank;
    char host[256];            // rank 0's address as the others reach it (rank 0 listens on every interface)
    int port;
    char source[160];          // where world and rank came from, for the log
    char job[96];              // job id from the environment (launch, mpirun, Slurm) or ""
    char tag[256];             // run tag (DistFlags.run_tag)
    double timeout_s;          // a peer that makes no progress for this long counts as dead or hung
    // connections: rank 0 holds fd[1..world−1] (fd[0] = −1), the others fd[0] (to rank 0)
    int *fd;
    char (*peer_host)[64];     // rank 0: each rank's host name (messages)
    unsigned char unique_id[DIST_ID_BYTES];
    uint32_t seq;              // collectives so far (every message header carries it)
    long step;                 // context for messages: the training step (−1: none)
    unsigned char *scratch;    // one chunk
    int broken;                // a collective failed: everything after fails with err
    int failed_peer;           // the rank whose connection failed (−1: none)
    double comm_s, comm_bytes; // time in collectives and bytes this rank sent + received
    char err[1024];
} Dist;

// World, rank, local rank and master from the flags or the environment (no sockets). 0, or −1 with a
// message in err (e.g. "--world 2 needs --rank", a rank out of range, an unparsable --master).
int dist_resolve(Dist *d, const DistFlags *f, char *err, size_t errlen);
// The bootstrap (world > 1; a no-op for world 1): rank 0 listens and waits up to timeout_s for every
// rank; the others connect, retrying until timeout_s. Strangers (another run id, another world size, a
// duplicate rank) are refused with the reason. 0, or −1 with a message in err ("rank 1 did not connect
// within 60 s", "could not connect to rank 0 at node01:29500 within 60 s: Connection refused"); a failure
// leaves no socket open and nothing allocated.
int dist_connect(Dist *d, double timeout_s, char *err, size_t errlen);
// dist_resolve + dist_connect.
int dist_init(Dist *d, const DistFlags *f, double timeout_s, char *err, size_t errlen);

// x ← (x_0 + x_1 + … + x_{W−1}) / W, summed in rank order in float, in chunks; the same bits everywhere.
int dist_allreduce_mean_f32(Dist *d, float *x, size_t n, const char *what);
// x ← x_0 + x_1 + … in rank order (double): small vectors (losses, flags).
int dist_allreduce_sum_f64(Dist *d, double *x, size_t n, const char *what);
// Rank 0's n bytes to every rank.
int dist_broadcast_bytes(Dist *d, void *buf, size_t n, const char *what);
// all[r·n .. r·n + n) ← rank r's n bytes, on every rank.
int dist_allgather_bytes(Dist *d, const void *mine, size_t n, void *all, const char *what);
int dist_barrier(Dist *d, const char *what);
// This rank stops the run: rank 0 tells every rank why; another rank tells rank 0 (which tells the rest).
// Best effort, bounded by a few seconds.
void dist_abort(Dist *d, const char *why);
void dist_free(Dist *d);

// The first host of a Slurm node list: "node[01-04],x" → "node01", "gpu-a[3,5-7]" → "gpu-a3", "x,y" → "x".
// 0, or −1 when the list is empty or malformed.
int dist_first_host(const char *nodelist, char *out, size_t n);
// A free TCP port on this machine (bound to port 0 and released; another process may take it meanwhile).
int dist_free_port(void);

#endif
