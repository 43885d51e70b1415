// util.c — checked wrappers: on failure print where, what and a hint, then exit(1).
#define _POSIX_C_SOURCE 200809L // fsync, fileno, getpid, fseeko, ftello
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

// ---- temporaries of atomic files ----
// atomic_open registers (FILE *, temporary path) here and atomic_close unregisters it, so that a failed
// write names its file and every exit through FATAL or a failed check removes the temporaries still open:
// no "*.tmp.<pid>" outlives a run that failed. A fixed table (no allocation) under a mutex. Files beyond the table's size are written as before, only without
// that clean-up (and a failed write names them through /proc/self/fd).
#define ATOMIC_TABLE 128
static struct {
    int used;
    pid_t pid;            // the process that opened it (a forked child that fails leaves it alone)
    FILE *f;
    char tmp[4200];
} atomic_table[ATOMIC_TABLE];
static pthread_mutex_t atomic_table_mu = PTHREAD_MUTEX_INITIALIZER;

static void table_lock(void) { pthread_mutex_lock(&atomic_table_mu); }
static void table_unlock(void) { pthread_mutex_unlock(&atomic_table_mu); }

static void atomic_register(FILE *f, const char *tmp) {
    table_lock();
    for (int k = 0; k < ATOMIC_TABLE; k++)
        if (!atomic_table[k].used) {
            atomic_table[k].used = 1, atomic_table[k].f = f, atomic_table[k].pid = getpid();
            snprintf(atomic_table[k].tmp, sizeof atomic_table[k].tmp, "%s", tmp);
            break;
        }
    table_unlock();
}

// Drops the entry of temporary `tmp` (atomic_close takes over: it renames the file or removes it).
static void atomic_release(const char *tmp) {
    table_lock();
    for (int k = 0; k < ATOMIC_TABLE; k++)
        if (atomic_table[k].used && !strcmp(atomic_table[k].tmp, tmp)) atomic_table[k].used = 0, atomic_table[k].f = NULL;
    table_unlock();
}

// The path f writes to, into buf: a registered temporary with the file it becomes, else what
// /proc/self/fd says, else "(unknown file)".
static const char *name_of(FILE *f, char *buf, size_t n) {
    int found = 0;
    table_lock();
    for (int k = 0; k < ATOMIC_TABLE && !found; k++)
        if (f && atomic_table[k].used && atomic_table[k].f == f) {
            const char *t = atomic_table[k].tmp, *dot = strstr(t, ".tmp.");
            // "X.tmp.<pid>" becomes X
            snprintf(buf, n, "'%.*s' (temporary '%s')", dot ? (int)(dot - t) : (int)strlen(t), t, t);
            found = 1;
        }
    table_unlock();
    if (found) return buf;
    char link[64], path[4096];
    int fd = f ? fileno(f) : -1;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t l = fd >= 0 ? readlink(link, path, sizeof path - 1) : -1;
    if (l < 0) return snprintf(buf, n, "(unknown file)"), buf;
    path[l] = 0;
    snprintf(buf, n, "'%s'", path);
    return buf;
}

// Removes every temporary this process registered (it is about to exit with an error).
static void remove_temporaries(void) {
    pid_t me = getpid();
    table_lock();
    for (int k = 0; k < ATOMIC_TABLE; k++)
        if (atomic_table[k].used) {
            if (atomic_table[k].pid == me) unlink(atomic_table[k].tmp);
            atomic_table[k].used = 0, atomic_table[k].f = NULL;
        }
    table_unlock();
}

// "FATAL file:line: <what> (<strerror>)\n  hint: <hint>\n", then exit(1). err = 0 omits the strerror part.
static void fatal_hint(const char *file, int line, int err, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 5, 6), noreturn));
static void fatal_hint(const char *file, int line, int err, const char *hint, const char *fmt, ...) {
    char what[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (err != 0)
        fprintf(stderr, "FATAL %s:%d: %s (%s)\n  hint: %s\n", file, line, what, strerror(err), hint);
    else
        fprintf(stderr, "FATAL %s:%d: %s\n  hint: %s\n", file, line, what, hint);
    remove_temporaries();
    exit(1);
}

void fatal_at(const char *file, int line, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "FATAL %s:%d: %s\n", file, line, msg);
    remove_temporaries();
    exit(1);
}

void *malloc_check(size_t size, const char *file, int line) {
    void *p = malloc(size > 0 ? size : 1); // malloc(0) may legally return NULL
    if (!p)
        fatal_hint(file, line, errno ? errno : ENOMEM, "out of memory: reduce batch size or model size",
                   "malloc of %zu bytes failed", size);
    return p;
}

void *calloc_check(size_t n, size_t size, const char *file, int line) {
    if (size != 0 && n > SIZE_MAX / size)
        fatal_hint(file, line, ENOMEM, "out of memory: reduce batch size or model size",
                   "calloc of %zu x %zu bytes overflows size_t", n, size);
    void *p = calloc(n > 0 ? n : 1, size > 0 ? size : 1);
    if (!p)
        fatal_hint(file, line, errno ? errno : ENOMEM, "out of memory: reduce batch size or model size",
                   "calloc of %zu x %zu bytes failed", n, size);
    return p;
}

FILE *fopen_check(const char *path, const char *mode, const char *file, int line) {
    FILE *f = fopen(path, mode);
    if (!f) {
        int e = errno;
        int writing = strpbrk(mode, "wa+") != NULL;
        fatal_hint(file, line, e,
                   writing ? "check the directory exists and is writable" : "check the path exists and is readable",
                   "cannot open '%s' with mode '%s'", path, mode);
    }
    return f;
}

void fread_check(void *ptr, size_t size, size_t n, FILE *f, const char *file, int line) {
    if (size == 0 || n == 0) return; // fread returns 0 here, which is not a short read
    errno = 0;
    size_t got = fread(ptr, size, n, f);
    if (got != n) {
        int e = errno;
        char hint[256];
        snprintf(hint, sizeof hint, "file truncated or corrupt? expected %zu items of %zu bytes, got %zu", n, size,
                 got);
        if (ferror(f)) fatal_hint(file, line, e, hint, "fread failed");
        fatal_hint(file, line, 0, hint, "fread hit end of file after %zu of %zu items", got, n);
    }
}

void fwrite_check(const void *ptr, size_t size, size_t n, FILE *f, const char *file, int line) {
    if (size == 0 || n == 0) return;
    errno = 0;
    size_t put = fwrite(ptr, size, n, f);
    if (put != n) {
        int e = errno;
        char name[8600];
        fatal_hint(file, line, e, "disk full, or the file is not writable?", "writing %s: fwrite wrote %zu of %zu items of %zu bytes",
                   name_of(f, name, sizeof name), put, n, size);
    }
}

void fseek_check(FILE *f, long off, int whence, const char *file, int line) {
    if (fseek(f, off, whence) != 0)
        fatal_hint(file, line, errno, "is the file shorter than expected, or not seekable (a pipe)?",
                   "fseek to offset %ld (whence %d) failed", off, whence);
}

void fclose_check(FILE *f, const char *file, int line) {
    char name[8600];
    name_of(f, name, sizeof name); // before the descriptor is gone
    if (fclose(f) != 0)
        fatal_hint(file, line, errno, "disk full? buffered data may not have been written", "fclose of %s failed", name);
}

void atomic_open(AtomicFile *af, const char *path, const char *file, int line) {
    size_t len = strlen(path);
    if (len >= sizeof af->path)
        fatal_hint(file, line, ENAMETOOLONG, "use a shorter output path", "path of %zu bytes is too long", len);
    memcpy(af->path, path, len + 1);
    snprintf(af->tmp, sizeof af->tmp, "%s.tmp.%d", path, (int)getpid());
    af->f = fopen(af->tmp, "wb");
    if (!af->f)
        fatal_hint(file, line, errno, "check the directory exists and is writable",
                   "cannot create temporary file '%s' for '%s'", af->tmp, path);
    atomic_register(af->f, af->tmp);
}

// Every failure below removes the temporary and leaves the old file, if any, untouched.
void atomic_close(AtomicFile *af, const char *file, int line) {
    // flush stdio, then the kernel, before the rename makes the new file visible: otherwise a crash
    // could leave a renamed but empty file in place of the old one
    FILE *f = af->f;
    const char *what = NULL, *hint = NULL;
    int e = 0;
    if (fflush(f) != 0) e = errno, what = "fflush", hint = "disk full? the old file (if any) is untouched";
    else if (fsync(fileno(f)) != 0)
        e = errno, what = "fsync", hint = "disk full or I/O error? the old file (if any) is untouched";
    atomic_release(af->tmp); // from here on every failure below removes the temporary itself
    af->f = NULL;
    if (what) {
        fclose(f);
        unlink(af->tmp);
        fatal_hint(file, line, e, hint, "writing '%s': %s of the temporary '%s' failed", af->path, what, af->tmp);
    }
    if (fclose(f) != 0) {
        e = errno;
        unlink(af->tmp);
        fatal_hint(file, line, e, "disk full? the old file (if any) is untouched",
                   "writing '%s': fclose of the temporary '%s' failed", af->path, af->tmp);
    }
    if (rename(af->tmp, af->path) != 0) {
        e = errno;
        unlink(af->tmp);
        fatal_hint(file, line, e,
                   "the old file (if any) is untouched; is the target a directory, its folder not writable, or the disk full?",
                   "writing '%s': rename of the temporary '%s' over it failed", af->path, af->tmp);
    }
}

int64_t file_size(FILE *f) {
    off_t pos = ftello(f);
    if (pos < 0 || fseeko(f, 0, SEEK_END) != 0)
        fatal_hint(__FILE__, __LINE__, errno, "file_size needs a regular, seekable file (not a pipe)",
                   "cannot seek in file");
    off_t end = ftello(f);
    if (end < 0 || fseeko(f, pos, SEEK_SET) != 0)
        fatal_hint(__FILE__, __LINE__, errno, "file_size needs a regular, seekable file (not a pipe)",
                   "cannot seek in file");
    return (int64_t)end;
}

int error_set(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int mkdir_p(const char *path) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return errno = ENAMETOOLONG, -1;
    for (char *p = buf + 1;; p++) {
        char c = *p;
        if (c == '/' || c == 0) {
            *p = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
            *p = c;
        }
        if (c == 0) return 0;
    }
}

long env_long(const char *name) {
    const char *v = getenv(name);
    if (!v || !*v) return -1;
    char *end;
    long x = strtol(v, &end, 10);
    return *end || x < 0 ? -2 : x;
}
