// util.c — checked wrappers: on failure print where, what and a hint, then exit(1).
#define _POSIX_C_SOURCE 200809L // fsync, fileno, getpid, fseeko, ftello
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

// "FATAL file:line: <what> (<strerror>)\n  hint: <hint>\n", then exit(1). err = 0 omits the strerror part.
static void fatal_hint(const char *file, int line, int err, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 5, 6), noreturn));
static void fatal_hint(const char *file, int line, int err, const char *hint, const char *fmt, ...) {
    char what[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (err != 0)
        fprintf(stderr, "FATAL %s:%d: %s (%s)\n  hint: %s\n", file, line, what, strerror(err), hint);
    else
        fprintf(stderr, "FATAL %s:%d: %s\n  hint: %s\n", file, line, what, hint);
    exit(1);
}

void fatal_at(const char *file, int line, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "FATAL %s:%d: %s\n", file, line, msg);
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
    if (put != n)
        fatal_hint(file, line, errno, "disk full, or the file is not writable?",
                   "fwrite wrote %zu of %zu items of %zu bytes", put, n, size);
}

void fseek_check(FILE *f, long off, int whence, const char *file, int line) {
    if (fseek(f, off, whence) != 0)
        fatal_hint(file, line, errno, "is the file shorter than expected, or not seekable (a pipe)?",
                   "fseek to offset %ld (whence %d) failed", off, whence);
}

void fclose_check(FILE *f, const char *file, int line) {
    if (fclose(f) != 0)
        fatal_hint(file, line, errno, "disk full? buffered data may not have been written",
                   "fclose failed");
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
}

void atomic_close(AtomicFile *af, const char *file, int line) {
    // flush stdio, then the kernel, before the rename makes the new file visible: otherwise a crash
    // could leave a renamed but empty file in place of the old one
    if (fflush(af->f) != 0) {
        int e = errno;
        fclose(af->f);
        remove(af->tmp);
        fatal_hint(file, line, e, "disk full? the old file (if any) is untouched", "fflush of '%s' failed", af->tmp);
    }
    if (fsync(fileno(af->f)) != 0) {
        int e = errno;
        fclose(af->f);
        remove(af->tmp);
        fatal_hint(file, line, e, "disk full or I/O error? the old file (if any) is untouched",
                   "fsync of '%s' failed", af->tmp);
    }
    if (fclose(af->f) != 0) {
        int e = errno;
        remove(af->tmp);
        fatal_hint(file, line, e, "disk full? the old file (if any) is untouched", "fclose of '%s' failed", af->tmp);
    }
    af->f = NULL;
    if (rename(af->tmp, af->path) != 0) {
        int e = errno;
        remove(af->tmp);
        fatal_hint(file, line, e, "check the target is not a directory and its directory is writable",
                   "rename of '%s' to '%s' failed", af->tmp, af->path);
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
