// timer.h — monotonic wall clock.
#ifndef AVAT3R_TIMER_H
#define AVAT3R_TIMER_H
double time_now_s(void); // seconds from an arbitrary origin, CLOCK_MONOTONIC
void time_sleep_s(double s); // sleeps s seconds (≤ 0: returns at once), resumed after signals
#endif
