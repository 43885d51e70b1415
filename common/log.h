// log.h — leveled logger to stderr, optionally mirrored into a file (append).
#ifndef AVAT3R_LOG_H
#define AVAT3R_LOG_H
typedef enum { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 } LogLevel;
void log_set_level(LogLevel level);
void log_set_file(const char *path); // NULL closes; opened with fopen(path, "a")
void log_msg(LogLevel level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define LOG_I(...) log_msg(LOG_INFO, __VA_ARGS__)
#define LOG_W(...) log_msg(LOG_WARN, __VA_ARGS__)
#define LOG_E(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define LOG_D(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#endif
