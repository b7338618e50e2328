/* futex.h - the Linux futex system call, the primitive every sleeping
 * thread of wisp ends in (driver_futex.c builds the parking driver on it).
 * No state.  Private futexes only: every word is in this process. */
#ifndef WISP_FUTEX_H
#define WISP_FUTEX_H

#include <errno.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "fault.h"

/* No deadline. */
#define FUTEX_FOREVER UINT64_MAX

/* Sleeps while *word == expected, until woken or until deadline_ns
 * (CLOCK_MONOTONIC, absolute; FUTEX_FOREVER: none).  Returns 0 when woken,
 * when *word differed, or on a signal (the caller re-checks its condition
 * in a loop either way: spurious returns are part of the contract), and
 * -ETIMEDOUT once the deadline has passed. */
static inline int futex_wait_until(_Atomic uint32_t *word, uint32_t expected, uint64_t deadline_ns)
{
    long r;
    if (deadline_ns == FUTEX_FOREVER) {
        r = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
    } else {
        /* WAIT_BITSET takes an absolute CLOCK_MONOTONIC time, so a retry
         * after a signal does not stretch the deadline. */
        struct timespec ts = clock_timespec(deadline_ns);
        r = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_BITSET_PRIVATE, expected, &ts, NULL,
                    FUTEX_BITSET_MATCH_ANY);
    }
    if (fault_futex_eintr())
        return 0; /* as if a signal had interrupted the wait */
    if (r == -1 && errno == ETIMEDOUT)
        return -ETIMEDOUT;
    return 0; /* woken, EAGAIN (word changed) or EINTR: the caller re-checks */
}

static inline void futex_wake(_Atomic uint32_t *word, int count)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, count, NULL, NULL, 0);
}

#endif /* WISP_FUTEX_H */
