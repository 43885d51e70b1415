// timer.c — monotonic wall clock (never jumps with NTP or date changes, unlike gettimeofday).
#define _POSIX_C_SOURCE 200809L // clock_gettime
#include "timer.h"

#include <errno.h>
#include <time.h>

double time_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void time_sleep_s(double s) {
    if (!(s > 0)) return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}
