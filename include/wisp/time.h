/* wisp/time.h - timers: sleep, sleep until, interval, and a timeout around
 * any future.  1 ms resolution, never early.
 *
 * Each is a future you embed in your own (or spawn directly: the poll and
 * drop functions have the wisp_poll_fn / wisp_drop_fn shapes).  Initialising
 * one only computes its deadline; its first poll arms it on the wheel of the
 * worker that polls it (from wisp_block_on, on one of the block_on runtime's
 * workers).  Drop what you initialised and polled (the *_drop functions): a
 * dropped timer is removed from its wheel at once, from any thread.
 *
 * Times are nanoseconds of CLOCK_MONOTONIC (wisp_now_ns).  A timer must be
 * dropped before its runtime is freed, or after: wisp_runtime_free detaches
 * the timers still armed, which then report -ESHUTDOWN; dropping one while
 * the runtime is being freed is a race the caller must avoid. */
#ifndef WISP_TIME_H
#define WISP_TIME_H

#include <wisp/future.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Nanoseconds of CLOCK_MONOTONIC. */
WISP_API uint64_t wisp_now_ns(void);

/* A sleep.  Opaque: its size is fixed for the ABI. */
typedef struct wisp_sleep {
    uint64_t opaque[12];
} wisp_sleep_t;

/* Sleep for duration_ns from now / until deadline_ns (absolute). */
WISP_API void wisp_sleep_init(wisp_sleep_t *s, uint64_t duration_ns);
WISP_API void wisp_sleep_until_init(wisp_sleep_t *s, uint64_t deadline_ns);
/* READY once the deadline has passed, with *output (may be NULL) set to
 * (void *)(intptr_t) 0, or to -ENXIO when polled on a thread with no
 * runtime (not a worker, not in wisp_block_on with a runtime), or to
 * -ESHUTDOWN when its runtime was freed while it was armed. */
WISP_API wisp_poll_t wisp_sleep_poll(void *s, wisp_context_t *cx, void **output);
/* Removes it from its wheel; it may then be initialised again. */
WISP_API void wisp_sleep_drop(void *s);
/* A new deadline for a sleep (armed or not, fired or not): the next poll
 * waits for it. */
WISP_API void wisp_sleep_reset(wisp_sleep_t *s, uint64_t deadline_ns);
WISP_API uint64_t wisp_sleep_deadline(const wisp_sleep_t *s);

/* An interval: READY once per period.  The first tick is one period after
 * init; a tick missed (the task was busy) is not made up: the next one is
 * the first period boundary after now. */
typedef struct wisp_interval {
    wisp_sleep_t sleep;
    uint64_t period_ns;
    uint64_t ticks;
} wisp_interval_t;

/* -EINVAL for a zero period. */
WISP_API int wisp_interval_init(wisp_interval_t *it, uint64_t period_ns);
/* READY at each tick (*output: the tick's number, counting from 1, as
 * (void *)(uintptr_t), or a negative errno as wisp_sleep_poll's). */
WISP_API wisp_poll_t wisp_interval_poll(void *it, wisp_context_t *cx, void **output);
WISP_API void wisp_interval_drop(void *it);

/* A timeout around another future: polls it until it is READY or the time
 * is up.  The inner future stays the caller's: wisp_timeout_drop drops only
 * the timer. */
typedef struct wisp_timeout {
    wisp_sleep_t sleep;
    wisp_poll_fn poll;
    void *future;
} wisp_timeout_t;

WISP_API void wisp_timeout_init(wisp_timeout_t *t, uint64_t duration_ns, wisp_poll_fn poll,
                                void *future);
/* READY with *status 0 and *output the inner future's output when it
 * completed in time; with *status -ETIMEDOUT (the inner future still
 * pending: drop it or poll it again) when the time ran out first; or with
 * the sleep's error.  Either pointer may be NULL. */
WISP_API wisp_poll_t wisp_timeout_poll(wisp_timeout_t *t, wisp_context_t *cx, int *status,
                                       void **output);
WISP_API void wisp_timeout_drop(wisp_timeout_t *t);

#ifdef __cplusplus
}
#endif

#endif /* WISP_TIME_H */
