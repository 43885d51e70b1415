// log.c — "[YYYY-MM-DD HH:MM:SS] LEVEL message" to stderr, mirrored into a log file when one is set.
// Each message is formatted into one buffer and written with one fprintf per stream, so lines from
// concurrent threads do not interleave mid-line (stdio locks the stream per call).
#define _POSIX_C_SOURCE 200809L // localtime_r
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util.h"

static LogLevel log_level = LOG_INFO;
static FILE *log_file = NULL;

void log_set_level(LogLevel level) { log_level = level; }

void log_set_file(const char *path) {
    if (log_file) {
        fclose(log_file);
        log_file = NULL;
    }
    if (path) log_file = fopenCheck(path, "a");
}

void log_msg(LogLevel level, const char *fmt, ...) {
    if (level < log_level) return;
    static const char *names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    const char *name = (level >= LOG_DEBUG && level <= LOG_ERROR) ? names[level] : "?";
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t len = strlen(msg);
    if (len > 0 && msg[len - 1] == '\n') msg[len - 1] = '\0'; // callers may or may not end with \n
    fprintf(stderr, "[%s] %s %s\n", stamp, name, msg);
    if (log_file) {
        fprintf(log_file, "[%s] %s %s\n", stamp, name, msg);
        fflush(log_file); // the file should survive a crash that follows the message
    }
}
