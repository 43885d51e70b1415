// fuzz_common.h — shared by the libFuzzer harnesses in tests/fuzz/ (docs/robustness.md).
// Most of our parsers take a path, so a harness writes the input to a file in a per-process scratch
// folder (/dev/shm when it exists, else $TMPDIR or /tmp) and calls the parser on it. The folder is
// removed at exit.
#ifndef AVAT3R_FUZZ_COMMON_H
#define AVAT3R_FUZZ_COMMON_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char fz_dir[512];

static inline void fz_rm_tree(const char *path) {
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char p[1024];
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            fz_rm_tree(p);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static inline void fz_cleanup(void) {
    if (fz_dir[0]) fz_rm_tree(fz_dir);
}

// The scratch folder (created on first use).
static inline const char *fz_tmpdir(void) {
    if (!fz_dir[0]) {
        struct stat st;
        const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : getenv("TMPDIR");
        if (!base) base = "/tmp";
        snprintf(fz_dir, sizeof fz_dir, "%s/avat3r-fuzz-%d", base, (int)getpid());
        if (mkdir(fz_dir, 0700) != 0 && !(stat(fz_dir, &st) == 0 && S_ISDIR(st.st_mode))) {
            perror(fz_dir);
            abort();
        }
        atexit(fz_cleanup);
    }
    return fz_dir;
}

// "<scratch>/<name>" into buf.
static inline const char *fz_path(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", fz_tmpdir(), name);
    return buf;
}

// mkdir -p of "<scratch>/<rel>".
static inline void fz_mkdirs(const char *rel) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", fz_tmpdir(), rel);
    for (char *s = p + strlen(fz_tmpdir()) + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            mkdir(p, 0700);
            *s = '/';
        }
    mkdir(p, 0700);
}

// Writes bytes to "<scratch>/<name>" and returns the full path (in buf).
static inline const char *fz_write(char *buf, size_t n, const char *name, const uint8_t *data, size_t size) {
    fz_path(buf, n, name);
    FILE *f = fopen(buf, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(buf);
        abort();
    }
    return buf;
}

// A harness must not let an input name a device or another process's files (config includes take
// any path): inputs that mention one are skipped, not parsed.
static inline int fz_names_device(const uint8_t *data, size_t size) {
    static const char *const bad[] = {"/dev", "/proc", "/sys", "/run"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
        if (memmem(data, size, bad[k], strlen(bad[k]))) return 1;
    return 0;
}

#endif
