// faultshim.c — an LD_PRELOAD library that makes file writes fail, for the fault-injection tests
// (tests/test_faults.c, docs/robustness.md "Fault injection"). It interposes write, pwrite, pwrite64,
// writev, fwrite, fflush, fclose, fsync, fdatasync, rename and close, and fails those that touch a file
// whose path contains FAULTSHIM_MATCH. glibc's stdio writes its buffers through internal calls that cannot
// be interposed, so stdio is failed at the FILE* level (fwrite, fflush, fclose) and raw descriptors at the
// system-call wrappers (what HDF5's sec2 driver uses). fprintf, fputs and putc are not interposed.
//
// Environment (read once, when the library loads):
//   FAULTSHIM_MATCH=substring  only files whose path contains it are affected (unset or empty: no faults)
//   FAULTSHIM_OP=write|flush|fsync|rename|close|none   which operation fails (default write; none: only
//                              FAULTSHIM_DELAY_US applies)
//   FAULTSHIM_AFTER=N          write: N bytes reach matching files (counted across the process), then writes
//                              fail — a disk that fills up mid-file. Other ops: the first N matching calls
//                              succeed, every later one fails. Default 0.
//   FAULTSHIM_ERRNO=ENOSPC|EIO|EDQUOT|EFBIG|EROFS|<number>   the errno of a failure (default ENOSPC)
//   FAULTSHIM_DELAY_US=N       sleep N µs before each matching write, pwrite, writev or fwrite (a slow
//                              disk), whatever the op
//   FAULTSHIM_LOG=1            one line on stderr per injected failure ("faultshim: ...")
// A failure is what the kernel or libc would report: -1, a short count or EOF, with errno set; fwrite also
// sets the stream's error indicator. A write that straddles the byte budget is cut short (the bytes that
// fit are written, as on a filling disk) and the next one fails. fclose and close release the stream or
// descriptor even when they report a failure, as Linux does; a failing fflush (op flush) discards the
// stream's buffered bytes, as a failed write would lose them.
// meson passes -D_FILE_OFFSET_BITS=64, which renames pwrite to pwrite64 in the headers: this file defines
// both symbols itself (on 64-bit Linux off_t is 64 bits either way)
#undef _FILE_OFFSET_BITS
#ifndef _GNU_SOURCE
#define _GNU_SOURCE // RTLD_NEXT
#endif
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

enum { OP_WRITE, OP_FLUSH, OP_FSYNC, OP_RENAME, OP_CLOSE, OP_NONE };
static const char *const op_names[] = {"write", "flush", "fsync", "rename", "close", "none"};

static char match[1024]; // empty: the shim lets everything through
static int op = OP_WRITE, fail_errno = ENOSPC, log_on;
static long long after, delay_us;
static atomic_llong bytes_let_through; // op write: bytes written to matching files
static atomic_llong calls_seen;        // other ops: matching calls so far

static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static size_t (*real_fwrite)(const void *, size_t, size_t, FILE *);
static int (*real_fflush)(FILE *);
static int (*real_fclose)(FILE *);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_rename)(const char *, const char *);
static int (*real_close)(int);

// The next definition of a symbol (libc's, or a sanitizer's interceptor). A symbol that cannot be found
// is fatal: the shim cannot do its job, and silence would let a test pass without a fault.
static void *next(const char *name) {
    void *p = dlsym(RTLD_NEXT, name);
    if (!p) {
        fprintf(stderr, "faultshim: dlsym(RTLD_NEXT, \"%s\") failed\n", name);
        abort();
    }
    return p;
}

static int parse_errno(const char *s) {
    static const struct { const char *name; int value; } names[] = {
        {"ENOSPC", ENOSPC}, {"EIO", EIO}, {"EDQUOT", EDQUOT}, {"EFBIG", EFBIG}, {"EROFS", EROFS}};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
        if (!strcmp(s, names[k].name)) return names[k].value;
    int v = atoi(s);
    return v > 0 ? v : ENOSPC;
}

// Runs when the library loads, before the program's own code (and after a sanitizer runtime's
// initialisation, which the executable's preinit array does first).
__attribute__((constructor)) static void faultshim_init(void) {
    real_write = (ssize_t(*)(int, const void *, size_t))next("write");
    real_pwrite = (ssize_t(*)(int, const void *, size_t, off_t))next("pwrite");
    real_pwrite64 = (ssize_t(*)(int, const void *, size_t, off_t))next("pwrite64");
    real_writev = (ssize_t(*)(int, const struct iovec *, int))next("writev");
    real_fwrite = (size_t(*)(const void *, size_t, size_t, FILE *))next("fwrite");
    real_fflush = (int (*)(FILE *))next("fflush");
    real_fclose = (int (*)(FILE *))next("fclose");
    real_fsync = (int (*)(int))next("fsync");
    real_fdatasync = (int (*)(int))next("fdatasync");
    real_rename = (int (*)(const char *, const char *))next("rename");
    real_close = (int (*)(int))next("close");
    const char *v = getenv("FAULTSHIM_MATCH");
    if (v) snprintf(match, sizeof match, "%s", v);
    if ((v = getenv("FAULTSHIM_OP")) && *v) {
        int found = 0;
        for (int k = 0; k < (int)(sizeof op_names / sizeof op_names[0]); k++)
            if (!strcmp(v, op_names[k])) op = k, found = 1;
        if (!found) {
            fprintf(stderr, "faultshim: FAULTSHIM_OP=%s: expected write, flush, fsync, rename, close or none\n", v);
            abort();
        }
    }
    if ((v = getenv("FAULTSHIM_AFTER"))) after = atoll(v);
    if ((v = getenv("FAULTSHIM_ERRNO")) && *v) fail_errno = parse_errno(v);
    if ((v = getenv("FAULTSHIM_DELAY_US"))) delay_us = atoll(v);
    log_on = (v = getenv("FAULTSHIM_LOG")) && *v && strcmp(v, "0");
}

// The path behind a descriptor ("" when unknown); 1 when it contains FAULTSHIM_MATCH.
static int fd_matches(int fd, char *path, size_t n) {
    path[0] = 0;
    if (!match[0] || fd < 0) return 0;
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t l = readlink(link, path, n - 1);
    if (l < 0) return path[0] = 0, 0;
    path[l] = 0;
    return strstr(path, match) != NULL;
}

static int file_matches(FILE *f, char *path, size_t n) {
    path[0] = 0;
    return f && match[0] && fd_matches(fileno(f), path, n);
}

static void note(const char *what, const char *path) {
    if (!log_on) return;
    char line[1400];
    int l = snprintf(line, sizeof line, "faultshim: %s %s: %s\n", what, path, strerror(fail_errno));
    if (l > 0) real_write(2, line, (size_t)l < sizeof line ? (size_t)l : sizeof line - 1);
}

static void slow_down(void) {
    if (delay_us <= 0) return;
    struct timespec ts = {(time_t)(delay_us / 1000000), (long)(delay_us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

// op write: how many of n bytes may still be written (0: the disk is full)
static size_t take_bytes(size_t n) {
    long long used = atomic_load(&bytes_let_through);
    for (;;) {
        long long left = after - used;
        if (left <= 0) return 0;
        long long give = (long long)n < left ? (long long)n : left;
        if (atomic_compare_exchange_weak(&bytes_let_through, &used, used + give)) return (size_t)give;
    }
}

// other ops: 1 when this matching call is to fail
static int call_fails(void) { return atomic_fetch_add(&calls_seen, 1) >= after; }

static void set_stream_error(FILE *f) {
#ifdef _IO_ERR_SEEN
    f->_flags |= _IO_ERR_SEEN; // what ferror() reads (glibc)
#else
    (void)f;
#endif
}

// ---- descriptors ----

static ssize_t pwrite_common(ssize_t (*real)(int, const void *, size_t, off_t), int fd, const void *buf, size_t n,
                             off_t off, const char *name) {
    char path[1024];
    if (n == 0 || !fd_matches(fd, path, sizeof path)) return real(fd, buf, n, off);
    slow_down();
    if (op != OP_WRITE) return real(fd, buf, n, off);
    size_t give = take_bytes(n);
    if (give == 0) {
        note(name, path);
        errno = fail_errno;
        return -1;
    }
    return real(fd, buf, give, off);
}

static ssize_t write_plain(int fd, const void *buf, size_t n, off_t off) {
    (void)off;
    return real_write(fd, buf, n);
}

ssize_t write(int fd, const void *buf, size_t n) { return pwrite_common(write_plain, fd, buf, n, 0, "write to"); }

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
    return pwrite_common(real_pwrite, fd, buf, n, off, "pwrite to");
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) {
    return pwrite_common(real_pwrite64, fd, buf, n, off, "pwrite64 to");
}

ssize_t writev(int fd, const struct iovec *iov, int cnt) {
    char path[1024];
    size_t total = 0;
    for (int k = 0; k < cnt; k++) total += iov[k].iov_len;
    if (total == 0 || !fd_matches(fd, path, sizeof path)) return real_writev(fd, iov, cnt);
    slow_down();
    if (op != OP_WRITE) return real_writev(fd, iov, cnt);
    size_t give = take_bytes(total);
    if (give == 0) {
        note("writev to", path);
        errno = fail_errno;
        return -1;
    }
    if (give == total) return real_writev(fd, iov, cnt);
    ssize_t done = 0; // the part that fits, piece by piece
    for (int k = 0; k < cnt && give > 0; k++) {
        size_t len = iov[k].iov_len < give ? iov[k].iov_len : give;
        ssize_t w = real_write(fd, iov[k].iov_base, len);
        if (w < 0) return done ? done : w;
        done += w, give -= (size_t)w;
        if ((size_t)w < len) break;
    }
    return done;
}

// 1 when this call of op `want` on fd is to fail (it then is logged and errno set)
static int fd_call_fails(int want, int fd, const char *what) {
    char path[1024];
    if (op != want || !fd_matches(fd, path, sizeof path) || !call_fails()) return 0;
    note(what, path);
    errno = fail_errno;
    return 1;
}

int fsync(int fd) { return fd_call_fails(OP_FSYNC, fd, "fsync of") ? -1 : real_fsync(fd); }

int fdatasync(int fd) { return fd_call_fails(OP_FSYNC, fd, "fdatasync of") ? -1 : real_fdatasync(fd); }

int close(int fd) {
    if (!fd_call_fails(OP_CLOSE, fd, "close of")) return real_close(fd);
    real_close(fd); // released anyway
    errno = fail_errno;
    return -1;
}

int rename(const char *from, const char *to) {
    if (op == OP_RENAME && match[0] && from && to && (strstr(from, match) || strstr(to, match)) && call_fails()) {
        note("rename of", from);
        errno = fail_errno;
        return -1;
    }
    return real_rename(from, to);
}

// ---- stdio ----

size_t fwrite(const void *ptr, size_t size, size_t n, FILE *f) {
    char path[1024];
    size_t bytes = size * n;
    if (bytes == 0 || !file_matches(f, path, sizeof path)) return real_fwrite(ptr, size, n, f);
    slow_down();
    if (op != OP_WRITE) return real_fwrite(ptr, size, n, f);
    size_t give = take_bytes(bytes);
    if (give == bytes) return real_fwrite(ptr, size, n, f);
    if (give) real_fwrite(ptr, 1, give, f);
    note("fwrite to", path);
    set_stream_error(f);
    errno = fail_errno;
    return give / size;
}

int fflush(FILE *f) {
    char path[1024];
    if (op == OP_FLUSH && file_matches(f, path, sizeof path) && call_fails()) {
        __fpurge(f);
        note("fflush of", path);
        set_stream_error(f);
        errno = fail_errno;
        return EOF;
    }
    return real_fflush(f);
}

int fclose(FILE *f) {
    char path[1024];
    if ((op == OP_CLOSE || op == OP_FLUSH) && file_matches(f, path, sizeof path) && call_fails()) {
        if (op == OP_FLUSH) __fpurge(f); // the implicit flush fails: its bytes are lost
        real_fclose(f);                  // released anyway
        note("fclose of", path);
        errno = fail_errno;
        return EOF;
    }
    return real_fclose(f);
}
