/* clock.h - the one monotonic clock of lib/: nanoseconds of CLOCK_MONOTONIC
 * (what futex deadlines, the timer wheel, metrics and traces share).  No
 * state. */
#ifndef WISP_CLOCK_H
#define WISP_CLOCK_H

#include <stdint.h>
#include <time.h>

#define NS_PER_SEC UINT64_C(1000000000)

static inline uint64_t clock_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

static inline struct timespec clock_timespec(uint64_t ns)
{
    return (struct timespec){ .tv_sec = (time_t)(ns / NS_PER_SEC),
                              .tv_nsec = (long)(ns % NS_PER_SEC) };
}

#endif /* WISP_CLOCK_H */
