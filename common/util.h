// util.h — checked wrappers for allocation and file I/O, in the spirit of llm.c's utils.h.
// Every failure prints file:line of the caller, what failed (a failed write names its file), and a hint,
// then exits(1).
// Nothing here returns an error code: callers never have to check.
#ifndef AVAT3R_UTIL_H
#define AVAT3R_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

void *malloc_check(size_t size, const char *file, int line);
void *calloc_check(size_t n, size_t size, const char *file, int line);
FILE *fopen_check(const char *path, const char *mode, const char *file, int line);
void fread_check(void *ptr, size_t size, size_t n, FILE *f, const char *file, int line);
void fwrite_check(const void *ptr, size_t size, size_t n, FILE *f, const char *file, int line);
void fseek_check(FILE *f, long off, int whence, const char *file, int line);
void fclose_check(FILE *f, const char *file, int line);

#define mallocCheck(size) malloc_check(size, __FILE__, __LINE__)
#define callocCheck(n, size) calloc_check(n, size, __FILE__, __LINE__)
#define fopenCheck(path, mode) fopen_check(path, mode, __FILE__, __LINE__)
#define freadCheck(ptr, size, n, f) fread_check(ptr, size, n, f, __FILE__, __LINE__)
#define fwriteCheck(ptr, size, n, f) fwrite_check(ptr, size, n, f, __FILE__, __LINE__)
#define fseekCheck(f, off, whence) fseek_check(f, off, whence, __FILE__, __LINE__)
#define fcloseCheck(f) fclose_check(f, __FILE__, __LINE__)

// Prints "FATAL file:line: <message>" to stderr and exits(1). Like every failed check here, it first
// removes the temporaries of the atomic files still open (below).
void fatal_at(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4), noreturn));
#define FATAL(...) fatal_at(__FILE__, __LINE__, __VA_ARGS__)

// Formats a message into err (when err is not NULL) and returns -1: the one way functions that can
// fail report why ("file: field: what was expected"), so callers write `return error_set(...)`.
int error_set(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

// In a reader with `char *err, size_t errlen` parameters and a `fail:` cleanup label: formats
// "path: message" into err and jumps to fail.
#define FAIL_FILE(path, ...)                                                                       \
    do {                                                                                           \
        char m_[1024];                                                                             \
        snprintf(m_, sizeof m_, __VA_ARGS__);                                                      \
        error_set(err, errlen, "%s: %s", path, m_);                                                \
        goto fail;                                                                                 \
    } while (0)

// Atomic file writing: open "path.tmp.<pid>" for writing; atomic_close fsyncs, closes and renames it
// over path. A crash in between leaves the old file (if any) untouched. Until atomic_close the temporary
// is registered: a failed fwriteCheck on af.f names path, and a failed check or FATAL anywhere in the
// process removes the temporary before exiting, so only a kill (SIGKILL, power loss) leaves a
// "*.tmp.<pid>" behind. A failing fflush, fsync, fclose or rename in atomic_close exits the same way,
// naming path and what failed.
typedef struct {
    FILE *f;
    char path[4096];
    char tmp[4200];
} AtomicFile;
void atomic_open(AtomicFile *af, const char *path, const char *file, int line);
void atomic_close(AtomicFile *af, const char *file, int line);
#define atomicOpen(af, path) atomic_open(af, path, __FILE__, __LINE__)
#define atomicClose(af) atomic_close(af, __FILE__, __LINE__)

// A whole-number environment variable: its value (≥ 0), −1 when unset or empty, −2 when not a whole number.
long env_long(const char *name);

// mkdir -p (mode 0755): 0, or -1 with errno set (existing folders are fine).
int mkdir_p(const char *path);

// Size of an open file in bytes (restores the position).
int64_t file_size(FILE *f);

#endif
