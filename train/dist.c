// dist.c — see dist.h. Plain POSIX sockets; no MPI, no threads.
//
// Wire format (host byte order: every rank runs the same binary on the same kind of CPU):
//   hello    rank r → 0    Hello (magic, version, world, rank, local rank, job id, run tag, host name)
//   welcome  0 → rank r    Welcome (status 0 and the unique id, or status 1 and the reason it was refused)
//   message  either way    Header {tag, seq, len} + len bytes; tag DATA (a chunk of a collective) or
//                          ABORT (text: why the sender stops the run)
// A collective moves its data in chunks of DIST_CHUNK bytes in lock step: rank r sends chunk c, rank 0
// receives chunk c from ranks 1..W−1 in rank order, combines, and sends the result to ranks 1..W−1 in rank
// order. Nobody sends more than one chunk ahead, so no socket buffer can fill up into a deadlock.
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "dist.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/timer.h"
#include "../common/util.h"

#define DIST_MAGIC 0x44335641u // "AV3D"
#define DIST_VERSION 1u
#define DIST_CHUNK (1u << 20)  // bytes per message of a collective
enum { TAG_DATA = 1, TAG_ABORT = 2 };

typedef struct {
    uint32_t magic, version, world, rank, local_rank, pad;
    char job[96], tag[256], host[64];
} Hello;

typedef struct {
    uint32_t magic, status; // 0 welcome, 1 refused
    unsigned char unique_id[DIST_ID_BYTES];
    char reason[512];
} Welcome;

typedef struct {
    uint32_t tag, seq;
    uint64_t len;
} Header;

// ------------------------------------------------------------------------------------------------
// small helpers

static void copy_str(char *dst, size_t n, const char *src) { snprintf(dst, n, "%s", src ? src : ""); }

// " at step N" when the caller set a step
static const char *at_step(const Dist *d) {
    static __thread char buf[48];
    if (d->step >= 0) snprintf(buf, sizeof buf, " at step %ld", d->step);
    else buf[0] = 0;
    return buf;
}

static const char *peer_name(const Dist *d, int peer) {
    static __thread char buf[128];
    if (d->rank == 0 && d->peer_host && d->peer_host[peer][0]) snprintf(buf, sizeof buf, "rank %d (%s)", peer, d->peer_host[peer]);
    else snprintf(buf, sizeof buf, "rank %d", peer);
    return buf;
}

// ------------------------------------------------------------------------------------------------
// node lists, master address, ranks from flags or the environment

int dist_first_host(const char *list, char *out, size_t n) {
    if (!list || !*list || !n) return -1;
    // the first top-level entry (commas inside brackets belong to a range)
    char entry[512];
    size_t k = 0;
    int depth = 0;
    for (const char *p = list; *p && k + 1 < sizeof entry; p++) {
        if (*p == '[') depth++;
        else if (*p == ']') depth--;
        else if (*p == ',' && depth == 0) break;
        if (depth < 0 || depth > 1) return -1;
        entry[k++] = *p;
    }
    entry[k] = 0;
    if (depth != 0 || !k) return -1;
    // every bracket group → its first number, keeping its zero padding: "n[009-012]" → "n009"
    size_t o = 0;
    for (const char *p = entry; *p;) {
        if (*p == '[') {
            p++;
            if (*p < '0' || *p > '9') return -1;
            while (*p >= '0' && *p <= '9') {
                if (o + 1 >= n) return -1;
                out[o++] = *p++;
            }
            while (*p && *p != ']') p++; // the rest of the group: "-04", ",3-5"
            if (*p != ']') return -1;
            p++;
        } else {
            if (o + 1 >= n) return -1;
            out[o++] = *p++;
        }
    }
    out[o] = 0;
    return o ? 0 : -1;
}

// "HOST:PORT" or "HOST" (port unchanged)
static int parse_master(const char *s, char *host, size_t hn, int *port, char *err, size_t errlen, const char *origin) {
    if (!s || !*s) return error_set(err, errlen, "%s: empty master address", origin);
    const char *colon = strrchr(s, ':');
    size_t hl = colon ? (size_t)(colon - s) : strlen(s);
    if (!hl || hl >= hn) return error_set(err, errlen, "%s: '%s' is not HOST:PORT", origin, s);
    if (colon) {
        char *end;
        long p = strtol(colon + 1, &end, 10);
        if (*end || p < 1 || p > 65535) return error_set(err, errlen, "%s: '%s': the port must be 1..65535", origin, s);
        *port = (int)p;
    }
    memcpy(host, s, hl);
    host[hl] = 0;
    return 0;
}

// MASTER_ADDR / MASTER_PORT (torchrun's names) over whatever host/port hold. 1 when MASTER_ADDR is set.
static int master_from_env(Dist *d, char *err, size_t errlen) {
    const char *a = getenv("MASTER_ADDR");
    long p = env_long("MASTER_PORT");
    if (p == -2 || p > 65535 || p == 0) return error_set(err, errlen, "MASTER_PORT='%s' is not a port number", getenv("MASTER_PORT"));
    if (p > 0) d->port = (int)p;
    if (a && *a) {
        if (parse_master(a, d->host, sizeof d->host, &d->port, err, errlen, "MASTER_ADDR")) return -1;
        return 1;
    }
    return 0;
}

int dist_resolve(Dist *d, const DistFlags *f, char *err, size_t errlen) {
    memset(d, 0, sizeof *d);
    d->world = 1, d->rank = 0, d->local_rank = 0, d->step = -1, d->timeout_s = 300, d->failed_peer = -1;
    d->port = DIST_DEFAULT_PORT;
    copy_str(d->host, sizeof d->host, "127.0.0.1");
    copy_str(d->source, sizeof d->source, "a single process");
    copy_str(d->tag, sizeof d->tag, f ? f->run_tag : NULL);
    DistFlags none = {0, -1, -1, NULL, NULL};
    if (!f) f = &none;
    long w = -1, r = -1, lr = -1;
    int have_master = 0;
    if (f->world > 0 || f->rank >= 0 || f->local_rank >= 0) { // flags
        if (f->world <= 0) return error_set(err, errlen, "--rank/--local-rank need --world");
        w = f->world, r = f->world == 1 && f->rank < 0 ? 0 : f->rank;
        if (r < 0) return error_set(err, errlen, "--world %d needs --rank (0..%d)", f->world, f->world - 1);
        lr = f->local_rank >= 0 ? f->local_rank : r;
        copy_str(d->source, sizeof d->source, "the --world/--rank flags");
        if (master_from_env(d, err, errlen) < 0) return -1;
    } else if (getenv("AVAT3R_WORLD")) { // avat3r launch
        w = env_long("AVAT3R_WORLD"), r = env_long("AVAT3R_RANK"), lr = env_long("AVAT3R_LOCAL_RANK");
        if (w < 1 || r < 0) return error_set(err, errlen, "AVAT3R_WORLD='%s' / AVAT3R_RANK='%s' (set by avat3r launch) are not "
                                           "a world size and a rank", getenv("AVAT3R_WORLD"), getenv("AVAT3R_RANK") ? getenv("AVAT3R_RANK") : "");
        if (lr < 0) lr = r;
        const char *m = getenv("AVAT3R_MASTER");
        if (m && parse_master(m, d->host, sizeof d->host, &d->port, err, errlen, "AVAT3R_MASTER")) return -1;
        copy_str(d->source, sizeof d->source, "avat3r launch (AVAT3R_WORLD, AVAT3R_RANK)");
        copy_str(d->job, sizeof d->job, getenv("AVAT3R_RUN_ID"));
    } else if (getenv("OMPI_COMM_WORLD_SIZE")) { // mpirun (OpenMPI)
        w = env_long("OMPI_COMM_WORLD_SIZE"), r = env_long("OMPI_COMM_WORLD_RANK"), lr = env_long("OMPI_COMM_WORLD_LOCAL_RANK");
        long ls = env_long("OMPI_COMM_WORLD_LOCAL_SIZE");
        if (w < 1 || r < 0) return error_set(err, errlen, "OMPI_COMM_WORLD_SIZE / OMPI_COMM_WORLD_RANK are not a world size and a rank");
        if (lr < 0) lr = r;
        copy_str(d->source, sizeof d->source, "OpenMPI (OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_RANK)");
        const char *job = getenv("OMPI_MCA_ess_base_jobid") ? getenv("OMPI_MCA_ess_base_jobid") : getenv("PMIX_NAMESPACE");
        if (job) snprintf(d->job, sizeof d->job, "ompi:%.80s", job);
        have_master = master_from_env(d, err, errlen);
        if (have_master < 0) return -1;
        if (!have_master && !f->master && w > 1 && ls != w)
            return error_set(err, errlen, "mpirun across several hosts: set MASTER_ADDR (rank 0's host) or pass --master HOST:PORT");
    } else if (getenv("SLURM_PROCID") && getenv("SLURM_STEP_ID")) { // srun (not the batch script itself)
        w = env_long("SLURM_STEP_NUM_TASKS");
        if (w < 1) w = env_long("SLURM_NTASKS");
        r = env_long("SLURM_PROCID"), lr = env_long("SLURM_LOCALID");
        if (w < 1 || r < 0) return error_set(err, errlen, "SLURM_NTASKS / SLURM_PROCID are not a task count and a task id");
        if (lr < 0) lr = r;
        copy_str(d->source, sizeof d->source, "Slurm (SLURM_NTASKS, SLURM_PROCID)");
        long job = env_long("SLURM_JOB_ID"), step = env_long("SLURM_STEP_ID");
        snprintf(d->job, sizeof d->job, "slurm:%ld.%ld", job, step);
        if (job >= 0) d->port = DIST_DEFAULT_PORT + (int)((job * 16 + (step > 0 ? step : 0)) % 8192);
        have_master = master_from_env(d, err, errlen);
        if (have_master < 0) return -1;
        if (!have_master && !f->master) {
            const char *lists[3] = {"SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST"};
            const char *list = NULL;
            for (int k = 0; k < 3 && !list; k++) list = getenv(lists[k]);
            if (w > 1 && (!list || dist_first_host(list, d->host, sizeof d->host)))
                return error_set(err, errlen, "Slurm: cannot tell rank 0's host from the node list '%s'; set MASTER_ADDR or "
                               "pass --master HOST:PORT", list ? list : "");
        }
    }
    if (f->master && parse_master(f->master, d->host, sizeof d->host, &d->port, err, errlen, "--master")) return -1;
    if (w >= 1) {
        if (w > DIST_MAX_WORLD) return error_set(err, errlen, "world size %ld: at most %d", w, DIST_MAX_WORLD);
        if (r >= w) return error_set(err, errlen, "rank %ld is not below the world size %ld (from %s)", r, w, d->source);
        d->world = (int)w, d->rank = (int)r, d->local_rank = (int)lr;
    }
    if (d->world == 1) copy_str(d->source, sizeof d->source, "a single process");
    return 0;
}

// ------------------------------------------------------------------------------------------------
// sockets: non-blocking, every wait through poll() with a deadline

static void sock_setup(int fd) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL, 0) | O_NONBLOCK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// Waits until fd is readable (events = POLLIN) or writable; 1 ready, 0 timed out, −1 error/hang-up.
static int wait_fd(int fd, short events, double timeout_s) {
    double end = time_now_s() + timeout_s;
    for (;;) {
        double left = end - time_now_s();
        if (left <= 0) return 0;
        struct pollfd p = {fd, events, 0};
        int ms = left > 1e6 ? 1000000000 : (int)(left * 1000) + 1;
        int r = poll(&p, 1, ms);
        if (r < 0 && errno == EINTR) continue; // a signal (SIGTERM: the loop stops after this step)
        if (r < 0) return -1;
        if (r == 0) continue;
        if (p.revents & events) return 1;
        if (p.revents & (POLLERR | POLLHUP | POLLNVAL)) return -1;
    }
}

enum { IO_OK = 0, IO_CLOSED = -1, IO_TIMEOUT = -2, IO_ERROR = -3 };

// Sends or receives exactly n bytes. The timeout counts time without progress (a slow peer that keeps
// moving data is not a hung one). errno_out: the errno of an IO_ERROR.
static int xfer(int fd, void *buf, size_t n, int sending, double timeout_s, int *errno_out) {
    unsigned char *p = (unsigned char *)buf;
    while (n) {
        ssize_t k = sending ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);
        if (k > 0) {
            p += k, n -= (size_t)k;
            continue;
        }
        if (k == 0 && !sending) return IO_CLOSED;
        if (k < 0 && errno == EINTR) continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int w = wait_fd(fd, sending ? POLLOUT : POLLIN, timeout_s);
            if (w == 0) return IO_TIMEOUT;
            if (w < 0 && !sending) continue; // hang-up with data still queued: recv tells
            if (w < 0) return IO_CLOSED;
            continue;
        }
        if (k < 0 && (errno == ECONNRESET || errno == EPIPE || errno == ENOTCONN)) return IO_CLOSED;
        if (errno_out) *errno_out = errno;
        return IO_ERROR;
    }
    return IO_OK;
}

// ------------------------------------------------------------------------------------------------
// messages

static int fail(Dist *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(Dist *d, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->err, sizeof d->err, fmt, ap);
    va_end(ap);
    d->broken = 1;
    return -1;
}

static void io_message(Dist *d, int peer, int rc, int e, int sending, double timeout, const char *what) {
    const char *who = peer_name(d, peer);
    d->failed_peer = peer;
    if (rc == IO_CLOSED)
        fail(d, "%s closed its connection during %s%s (it died or stopped; see its own messages)", who, what, at_step(d));
    else if (rc == IO_TIMEOUT)
        fail(d, "%s %s for %g s during %s%s: hung, stopped, or far slower than the others (key dist_timeout)", who,
             sending ? "accepted no data" : "sent nothing", timeout, what, at_step(d));
    else
        fail(d, "connection to %s failed during %s%s: %s", who, what, at_step(d), strerror(e));
}

// How long to wait on a peer. Rank 0 waits dist_timeout on each rank; the others wait longer on rank 0,
// which itself may be waiting dist_timeout on a third rank before it tells them why the run stops.
static double peer_timeout(const Dist *d) { return d->rank == 0 ? d->timeout_s : 2 * d->timeout_s + 5; }

// After a lost connection to rank 0: an ABORT it sent before closing may still be queued.
static int read_abort(int fd, char *text, size_t n) {
    Header h;
    if (xfer(fd, &h, sizeof h, 0, 0.5, NULL) != IO_OK || h.tag != TAG_ABORT || h.len >= n) return 0;
    if (xfer(fd, text, h.len, 0, 0.5, NULL) != IO_OK) return 0;
    text[h.len] = 0;
    return 1;
}

static int send_msg(Dist *d, int peer, const void *data, size_t len, const char *what) {
    int fd = d->fd[d->rank == 0 ? peer : 0], e = 0;
    Header h = {TAG_DATA, d->seq, len};
    double t = peer_timeout(d);
    int rc = xfer(fd, &h, sizeof h, 1, t, &e);
    if (rc == IO_OK && len) rc = xfer(fd, (void *)data, len, 1, t, &e);
    d->comm_bytes += sizeof h + len;
    if (rc == IO_OK) return 0;
    char text[1100];
    if (d->rank != 0 && rc == IO_CLOSED && read_abort(fd, text, sizeof text))
        return fail(d, "rank 0 stopped the run: %s", text);
    io_message(d, peer, rc, e, 1, t, what);
    return -1;
}

static int recv_msg(Dist *d, int peer, void *data, size_t len, const char *what) {
    int fd = d->fd[d->rank == 0 ? peer : 0], e = 0;
    Header h;
    double t = peer_timeout(d);
    int rc = xfer(fd, &h, sizeof h, 0, t, &e);
    if (rc != IO_OK) {
        io_message(d, peer, rc, e, 0, t, what);
        return -1;
    }
    if (h.tag == TAG_ABORT && h.len < 1024) {
        char text[1100];
        if (xfer(fd, text, h.len, 0, 5, &e) != IO_OK) snprintf(text, sizeof text, "(its reason was cut off)");
        else text[h.len] = 0;
        d->failed_peer = peer;
        return fail(d, "%s stopped the run: %s", peer_name(d, peer), text);
    }
    if (h.tag != TAG_DATA || h.seq != d->seq || h.len != len)
        return fail(d, "protocol error with %s during %s%s: got message %u (%llu bytes, tag %u), expected message %u "
                    "(%zu bytes): the ranks disagree about the sequence of collectives (a bug) or run different builds",
                    peer_name(d, peer), what, at_step(d), h.seq, (unsigned long long)h.len, h.tag, d->seq, len);
    rc = len ? xfer(fd, data, len, 0, t, &e) : IO_OK;
    d->comm_bytes += sizeof h + len;
    if (rc != IO_OK) {
        io_message(d, peer, rc, e, 0, t, what);
        return -1;
    }
    return 0;
}

// Best effort: an ABORT with the text to one peer (short timeout; the peer may be gone).
static void send_abort(Dist *d, int peer, const char *why) {
    int fd = d->fd[d->rank == 0 ? peer : 0];
    if (fd < 0) return;
    size_t len = strlen(why);
    if (len > 1000) len = 1000;
    Header h = {TAG_ABORT, d->seq, len};
    if (xfer(fd, &h, sizeof h, 1, 1.0, NULL) == IO_OK) xfer(fd, (void *)why, len, 1, 1.0, NULL);
}

void dist_abort(Dist *d, const char *why) {
    if (d->world <= 1 || !d->fd) return;
    if (d->rank != 0) {
        char text[1024];
        snprintf(text, sizeof text, "%s", why);
        send_abort(d, 0, text);
        shutdown(d->fd[0], SHUT_WR);
        return;
    }
    for (int r = 1; r < d->world; r++) send_abort(d, r, why);
    // let the others read it: close our direction, drain theirs (a rank blocked sending a chunk finishes its
    // send, then reads the ABORT) for at most 2 s in all
    for (int r = 1; r < d->world; r++)
        if (d->fd[r] >= 0) shutdown(d->fd[r], SHUT_WR);
    double end = time_now_s() + 2;
    unsigned char sink[65536];
    for (int r = 1; r < d->world; r++) {
        if (d->fd[r] < 0 || (d->broken && r == d->failed_peer)) continue; // the culprit may never close
        for (;;) {
            double left = end - time_now_s();
            if (left <= 0 || wait_fd(d->fd[r], POLLIN, left) != 1) break;
            ssize_t k = recv(d->fd[r], sink, sizeof sink, 0);
            if (k <= 0 && !(k < 0 && (errno == EINTR || errno == EAGAIN))) break;
        }
    }
}

// On rank 0, a failure in a collective stops the run for everyone: tell them why.
static int collective_failed(Dist *d) {
    if (d->rank == 0) dist_abort(d, d->err);
    return -1;
}

// ------------------------------------------------------------------------------------------------
// bootstrap

static void fill_hello(const Dist *d, Hello *h) {
    memset(h, 0, sizeof *h);
    h->magic = DIST_MAGIC, h->version = DIST_VERSION, h->world = (uint32_t)d->world, h->rank = (uint32_t)d->rank;
    h->local_rank = (uint32_t)d->local_rank;
    copy_str(h->job, sizeof h->job, d->job);
    copy_str(h->tag, sizeof h->tag, d->tag);
    gethostname(h->host, sizeof h->host - 1);
}

// The run's unique id: from the kernel's random source (getrandom blocks only until it is seeded, at boot).
static void random_bytes(unsigned char *p, size_t n) {
    for (size_t got = 0; got < n;) {
        ssize_t k = getrandom(p + got, n - got, 0);
        if (k < 0 && errno != EINTR) FATAL("getrandom: %s", strerror(errno));
        if (k > 0) got += (size_t)k;
    }
}

// Why rank 0 refuses this hello ("" = welcome).
static void judge_hello(const Dist *d, const Hello *h, char *why, size_t n) {
    why[0] = 0;
    if (h->magic != DIST_MAGIC || h->version != DIST_VERSION)
        snprintf(why, n, "not an avat3r rank of protocol version %u", DIST_VERSION);
    else if ((int)h->world != d->world)
        snprintf(why, n, "it has world size %u, rank 0 has %d", h->world, d->world);
    else if (h->rank == 0 || (int)h->rank >= d->world)
        snprintf(why, n, "rank %u is not one of 1..%d", h->rank, d->world - 1);
    else if (strncmp(h->job, d->job, sizeof h->job))
        snprintf(why, n, "it belongs to job '%.96s', rank 0 to job '%.96s'", h->job, d->job);
    else if (strncmp(h->tag, d->tag, sizeof h->tag))
        snprintf(why, n, "it runs '%.180s', rank 0 runs '%.180s' (ranks must be given the same run folder)", h->tag, d->tag);
    else if (d->fd[h->rank] >= 0)
        snprintf(why, n, "rank %u has already joined (two processes with the same rank)", h->rank);
}

static int bootstrap_root(Dist *d, double timeout_s, char *err, size_t errlen) {
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    if (ls < 0) return error_set(err, errlen, "rank 0: socket: %s", strerror(errno));
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET, a.sin_addr.s_addr = htonl(INADDR_ANY), a.sin_port = htons((uint16_t)d->port);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, d->world < 128 ? 128 : d->world)) {
        int e = errno;
        close(ls);
        return error_set(err, errlen, "rank 0 cannot listen on port %d: %s%s", d->port, strerror(e),
                       e == EADDRINUSE ? " (another run uses it: pick another port with --master HOST:PORT, MASTER_PORT "
                                         "or launch --master-port)" : "");
    }
    sock_setup(ls);
    double end = time_now_s() + timeout_s;
    int arrived = 0;
    while (arrived < d->world - 1) {
        double left = end - time_now_s();
        if (left <= 0 || wait_fd(ls, POLLIN, left) != 1) break;
        int c = accept(ls, NULL, NULL);
        if (c < 0) continue;
        sock_setup(c);
        Hello h;
        left = end - time_now_s();
        if (xfer(c, &h, sizeof h, 0, left < 10 ? (left > 0.5 ? left : 0.5) : 10, NULL) != IO_OK) {
            LOG_W("rank 0: a connection on port %d sent no valid hello; ignored", d->port);
            close(c);
            continue;
        }
        h.job[sizeof h.job - 1] = h.tag[sizeof h.tag - 1] = h.host[sizeof h.host - 1] = 0;
        Welcome w;
        memset(&w, 0, sizeof w);
        w.magic = DIST_MAGIC;
        judge_hello(d, &h, w.reason, sizeof w.reason);
        if (w.reason[0]) {
            LOG_W("rank 0: refused a connection from %s (rank %u): %s", h.host, h.rank, w.reason);
            w.status = 1;
            xfer(c, &w, sizeof w, 1, 1.0, NULL);
            close(c);
            continue;
        }
        d->fd[h.rank] = c;
        copy_str(d->peer_host[h.rank], sizeof d->peer_host[h.rank], h.host);
        arrived++;
    }
    close(ls);
    if (arrived < d->world - 1) {
        char list[256] = "";
        int missing = 0;
        for (int r = 1; r < d->world; r++) {
            if (d->fd[r] >= 0) continue;
            if (missing < 8) {
                size_t l = strlen(list);
                snprintf(list + l, sizeof list - l, "%s%d", missing ? ", " : "", r);
            }
            missing++;
        }
        if (missing > 8) snprintf(list + strlen(list), sizeof list - strlen(list), " and %d more", missing - 8);
        error_set(err, errlen, "rank%s %s did not connect within %g s (rank 0 listens on port %d; the others connect to "
                "%s:%d)", missing > 1 ? "s" : "", list, timeout_s, d->port, d->host, d->port);
        Welcome w;
        memset(&w, 0, sizeof w);
        w.magic = DIST_MAGIC, w.status = 1;
        copy_str(w.reason, sizeof w.reason, err);
        for (int r = 1; r < d->world; r++)
            if (d->fd[r] >= 0) xfer(d->fd[r], &w, sizeof w, 1, 1.0, NULL);
        return -1;
    }
    random_bytes(d->unique_id, DIST_ID_BYTES);
    Welcome w;
    memset(&w, 0, sizeof w);
    w.magic = DIST_MAGIC;
    memcpy(w.unique_id, d->unique_id, DIST_ID_BYTES);
    for (int r = 1; r < d->world; r++) {
        int e = 0, rc = xfer(d->fd[r], &w, sizeof w, 1, timeout_s, &e);
        if (rc != IO_OK) {
            io_message(d, r, rc, e, 1, timeout_s, "start-up");
            copy_str(err, errlen, d->err);
            dist_abort(d, d->err);
            return -1;
        }
    }
    return 0;
}

static int bootstrap_rank(Dist *d, double timeout_s, char *err, size_t errlen) {
    double end = time_now_s() + timeout_s;
    char port[16], last[512] = "no attempt";
    snprintf(port, sizeof port, "%d", d->port);
    int fd = -1;
    while (fd < 0) {
        double left = end - time_now_s();
        if (left <= 0)
            return error_set(err, errlen, "rank %d could not connect to rank 0 at %s:%d within %g s: %s (is rank 0 running, "
                           "and listening there?)", d->rank, d->host, d->port, timeout_s, last);
        struct addrinfo hints, *res = NULL;
        memset(&hints, 0, sizeof hints);
        hints.ai_family = AF_INET, hints.ai_socktype = SOCK_STREAM;
        int g = getaddrinfo(d->host, port, &hints, &res);
        if (g) {
            snprintf(last, sizeof last, "cannot resolve '%s': %s", d->host, gai_strerror(g));
        } else {
            int c = socket(res->ai_family, res->ai_socktype, res->ai_protocol);
            if (c >= 0) {
                sock_setup(c);
                int r = connect(c, res->ai_addr, res->ai_addrlen);
                if (r && errno == EINPROGRESS) {
                    int e = 0;
                    socklen_t el = sizeof e;
                    if (wait_fd(c, POLLOUT, left < 2 ? left : 2) == 1 && !getsockopt(c, SOL_SOCKET, SO_ERROR, &e, &el) && !e) r = 0;
                    else errno = e ? e : ETIMEDOUT;
                }
                if (!r) fd = c;
                else {
                    snprintf(last, sizeof last, "%s", strerror(errno));
                    close(c);
                }
            }
            freeaddrinfo(res);
        }
        if (fd < 0) time_sleep_s(0.2);
    }
    d->fd[0] = fd;
    Hello h;
    fill_hello(d, &h);
    int e = 0, rc = xfer(fd, &h, sizeof h, 1, timeout_s, &e);
    Welcome w;
    // rank 0 may wait up to its own timeout for the last rank before it answers
    if (rc == IO_OK) rc = xfer(fd, &w, sizeof w, 0, 2 * timeout_s + 5, &e);
    if (rc == IO_CLOSED)
        return error_set(err, errlen, "rank %d: rank 0 at %s:%d closed the connection during start-up (see its messages)",
                       d->rank, d->host, d->port);
    if (rc == IO_TIMEOUT)
        return error_set(err, errlen, "rank %d: rank 0 at %s:%d did not answer within %g s", d->rank, d->host, d->port,
                       2 * timeout_s + 5);
    if (rc != IO_OK) return error_set(err, errlen, "rank %d: start-up with rank 0 failed: %s", d->rank, strerror(e));
    w.reason[sizeof w.reason - 1] = 0;
    if (w.magic != DIST_MAGIC) return error_set(err, errlen, "rank %d: %s:%d is not an avat3r rank 0", d->rank, d->host, d->port);
    if (w.status) return error_set(err, errlen, "rank %d: rank 0 at %s:%d refused this rank: %s", d->rank, d->host, d->port, w.reason);
    memcpy(d->unique_id, w.unique_id, DIST_ID_BYTES);
    return 0;
}

int dist_connect(Dist *d, double timeout_s, char *err, size_t errlen) {
    d->timeout_s = timeout_s;
    if (d->world <= 1) return 0;
    int nfd = d->rank == 0 ? d->world : 1;
    d->fd = (int *)mallocCheck(sizeof(int) * nfd);
    for (int i = 0; i < nfd; i++) d->fd[i] = -1;
    if (d->rank == 0) d->peer_host = (char(*)[64])callocCheck((size_t)d->world, 64);
    d->scratch = (unsigned char *)mallocCheck(DIST_CHUNK);
    double t0 = time_now_s();
    int rc = d->rank == 0 ? bootstrap_root(d, timeout_s, err, errlen) : bootstrap_rank(d, timeout_s, err, errlen);
    if (rc) { // nothing is left open or allocated (dist_free after this is a no-op)
        copy_str(d->err, sizeof d->err, err);
        d->broken = 1;
        dist_free(d);
        return -1;
    }
    d->comm_s += time_now_s() - t0;
    return 0;
}

int dist_init(Dist *d, const DistFlags *f, double timeout_s, char *err, size_t errlen) {
    if (dist_resolve(d, f, err, errlen)) return -1;
    return dist_connect(d, timeout_s, err, errlen);
}

void dist_free(Dist *d) {
    if (d->fd) {
        int nfd = d->rank == 0 ? d->world : 1;
        for (int i = 0; i < nfd; i++)
            if (d->fd[i] >= 0) close(d->fd[i]);
    }
    free(d->fd), free(d->peer_host), free(d->scratch);
    d->fd = NULL, d->peer_host = NULL, d->scratch = NULL;
}

// ------------------------------------------------------------------------------------------------
// collectives

enum { OP_MEAN_F32, OP_SUM_F64 };

static void combine(int op, void *acc, const void *in, size_t bytes) {
    if (op == OP_MEAN_F32) {
        float *a = (float *)acc;
        const float *b = (const float *)in;
        for (size_t i = 0, n = bytes / 4; i < n; i++) a[i] += b[i];
    } else {
        double *a = (double *)acc;
        const double *b = (const double *)in;
        for (size_t i = 0, n = bytes / 8; i < n; i++) a[i] += b[i];
    }
}

static int allreduce(Dist *d, void *x, size_t n, size_t esize, int op, const char *what) {
    if (d->world <= 1) return 0;
    if (d->broken) return -1;
    double t0 = time_now_s();
    const size_t total = n * esize, chunk = DIST_CHUNK / esize * esize;
    unsigned char *p = (unsigned char *)x;
    size_t off = 0;
    do { // at least one message, so n = 0 is a barrier
        size_t len = total - off < chunk ? total - off : chunk;
        if (d->rank == 0) {
            for (int r = 1; r < d->world; r++) { // rank order: the same sum on every run
                if (recv_msg(d, r, d->scratch, len, what)) return collective_failed(d);
                combine(op, p + off, d->scratch, len);
            }
            if (op == OP_MEAN_F32) {
                float *a = (float *)(p + off);
                const float w = (float)d->world;
                for (size_t i = 0; i < len / 4; i++) a[i] /= w;
            }
            for (int r = 1; r < d->world; r++)
                if (send_msg(d, r, p + off, len, what)) return collective_failed(d);
        } else {
            if (send_msg(d, 0, p + off, len, what) || recv_msg(d, 0, p + off, len, what)) return -1;
        }
        off += len;
    } while (off < total);
    d->seq++;
    d->comm_s += time_now_s() - t0;
    return 0;
}

int dist_allreduce_mean_f32(Dist *d, float *x, size_t n, const char *what) {
    return allreduce(d, x, n, sizeof(float), OP_MEAN_F32, what);
}

int dist_allreduce_sum_f64(Dist *d, double *x, size_t n, const char *what) {
    return allreduce(d, x, n, sizeof(double), OP_SUM_F64, what);
}

int dist_barrier(Dist *d, const char *what) { return allreduce(d, NULL, 0, sizeof(float), OP_MEAN_F32, what); }

int dist_broadcast_bytes(Dist *d, void *buf, size_t n, const char *what) {
    if (d->world <= 1) return 0;
    if (d->broken) return -1;
    double t0 = time_now_s();
    unsigned char *p = (unsigned char *)buf;
    size_t off = 0;
    do {
        size_t len = n - off < DIST_CHUNK ? n - off : DIST_CHUNK;
        if (d->rank == 0) {
            for (int r = 1; r < d->world; r++)
                if (send_msg(d, r, p + off, len, what)) return collective_failed(d);
        } else if (recv_msg(d, 0, p + off, len, what)) {
            return -1;
        }
        off += len;
    } while (off < n);
    d->seq++;
    d->comm_s += time_now_s() - t0;
    return 0;
}

int dist_allgather_bytes(Dist *d, const void *mine, size_t n, void *all, const char *what) {
    unsigned char *out = (unsigned char *)all;
    memmove(out + (size_t)d->rank * n, mine, n);
    if (d->world <= 1) return 0;
    if (d->broken) return -1;
    if (n > DIST_CHUNK) return fail(d, "allgather of %zu bytes per rank: at most %u", n, DIST_CHUNK);
    if (d->rank == 0) {
        for (int r = 1; r < d->world; r++)
            if (recv_msg(d, r, out + (size_t)r * n, n, what)) return collective_failed(d);
    } else if (send_msg(d, 0, mine, n, what)) {
        return -1;
    }
    d->seq++;
    return dist_broadcast_bytes(d, out, n * (size_t)d->world, what);
}

int dist_free_port(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET, a.sin_addr.s_addr = htonl(INADDR_ANY), a.sin_port = 0;
    socklen_t l = sizeof a;
    int port = -1;
    if (!bind(s, (struct sockaddr *)&a, sizeof a) && !getsockname(s, (struct sockaddr *)&a, &l)) port = ntohs(a.sin_port);
    close(s);
    return port;
}
