/* driver.h - the parking driver: where a thread with nothing to do sleeps,
 * and how another thread wakes it.
 *
 * One small interface, two operations:
 *   park(d, deadline)  the owner sleeps until an unpark, until deadline_ns
 *                      (CLOCK_MONOTONIC, absolute; DRIVER_FOREVER: none), or
 *                      until the driver has events of its own to hand over;
 *   unpark(d)          any thread, any number of times: the owner's current
 *                      park returns, or else its next one returns at once.
 * An unpark is a token, not a counter: many unparks before a park make one
 * early return.  park may also return spuriously (0), so a caller always
 * re-checks its own condition in a loop.
 *
 * Every sleeping thread of wisp parks through a driver: workers (idle.c's
 * protocol decides when), wisp_block_on and wisp_join (parker.c).  The futex
 * driver below is the one every thread has; a worker with an I/O ring parks
 * in the ring instead, so that completions, timers and unparks all wake it.
 *
 * Owns: nothing here; each driver owns its own struct. */
#ifndef WISP_DRIVER_H
#define WISP_DRIVER_H

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>

#define DRIVER_FOREVER UINT64_MAX

/* What park returns. */
#define DRIVER_UNPARKED 0           /* unparked, or spurious: re-check */
#define DRIVER_TIMEDOUT (-ETIMEDOUT) /* the deadline passed */
#define DRIVER_EVENTS 1             /* the driver has events of its own ready */

struct wisp__driver;

struct driver_ops {
    int (*park)(struct wisp__driver *d, uint64_t deadline_ns);
    void (*unpark)(struct wisp__driver *d);
};

struct wisp__driver {
    const struct driver_ops *ops;
};

static inline int driver_park(struct wisp__driver *d, uint64_t deadline_ns)
{
    return d->ops->park(d, deadline_ns);
}

static inline void driver_unpark(struct wisp__driver *d)
{
    d->ops->unpark(d);
}

/* ---- the futex driver (driver_futex.c) ------------------------------------ */

struct futex_driver {
    struct wisp__driver base;
    /* EMPTY, NOTIFIED (an unpark is pending) or PARKED (the owner sleeps on
     * this word); see driver_futex.c for the protocol. */
    _Atomic uint32_t state;
};

void wisp__futex_driver_init(struct futex_driver *d);

#endif /* WISP_DRIVER_H */
