/* idle.h - idle workers: who is parked, who is searching for work, and
 * waking exactly one worker when work appears.  The no-lost-wakeup rule (a
 * table of every producer and every parker, and the proof) is at the top of
 * idle.c; every file that publishes work or parks points there.
 *
 * Owns: struct idle (the counters, the sleeper stack) and each worker's
 * idle fields (struct idle_slot).  Touches the worker's parking driver
 * (driver.h) only to sleep on it and to unpark it. */
#ifndef WISP_IDLE_H
#define WISP_IDLE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "driver.h"
#include "util.h"

/* A worker's part of the protocol: its driver, and whether it is parked. */
struct idle_slot {
    struct wisp__driver *driver; /* where the worker sleeps */
    /* 1 once a notifier took the worker off the sleeper stack (it then runs
     * as a searcher); 0 from park_prepare on.  Own line: written by
     * notifiers, read by the worker. */
    _Alignas(WISP_CACHE_LINE) _Atomic uint32_t unparked;
    bool in_sleepers;            /* under idle.lock */
};

struct idle {
    /* low 32 bits: searching workers; high 32 bits: unparked workers.  Read
     * by every producer without the lock; written under it (or with a CAS
     * for searching). */
    _Alignas(WISP_CACHE_LINE) _Atomic uint64_t counts;
    _Alignas(WISP_CACHE_LINE) pthread_mutex_t lock;
    struct idle_slot **sleepers; /* stack, under lock */
    unsigned nsleepers;
    unsigned nworkers;
};

int wisp__idle_init(struct idle *idle, unsigned nworkers);
void wisp__idle_destroy(struct idle *idle);
void wisp__idle_slot_init(struct idle_slot *slot, struct wisp__driver *driver);

/* Producer side, after publishing work (idle.c's table): wakes one parked
 * worker unless one is already searching or none is parked.  One seq_cst
 * load when nobody sleeps. */
void wisp__idle_notify_one(struct idle *idle);
bool wisp__idle_should_notify(struct idle *idle);

/* A worker starts searching (stealing); false if enough already are (at
 * most half the workers search, as in Tokio and Go). */
bool wisp__idle_begin_search(struct idle *idle);
/* A searching worker found work; true if it was the last searcher. */
bool wisp__idle_end_search(struct idle *idle);

/* Parking, in three steps so the caller can do its last check for work in
 * between: prepare (now counted as parked), then either cancel (work was
 * found: the worker continues as a searcher) or wait. */
void wisp__idle_park_prepare(struct idle *idle, struct idle_slot *slot, bool was_searching);
void wisp__idle_park_cancel(struct idle *idle, struct idle_slot *slot);
/* Sleeps in the driver once: DRIVER_UNPARKED when a notifier unparked the
 * worker (it runs on as a searcher); else DRIVER_TIMEDOUT (the deadline
 * passed) or DRIVER_EVENTS (the driver has events of its own, was unparked
 * by someone else than a notifier, or returned spuriously).  In those cases
 * the worker is still counted parked: the caller cancels, and looks at its
 * timers and driver before parking again. */
int wisp__idle_park_wait(struct idle_slot *slot, uint64_t deadline_ns);

/* Shutdown: unpark everyone. */
void wisp__idle_unpark_all(struct idle *idle);

#endif /* WISP_IDLE_H */
