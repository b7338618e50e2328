/* idle.h - idle-worker coordination: who is parked, who is searching for
 * work, and waking exactly one worker when work appears.
 *
 * Owns: struct idle (the counters, the sleeper stack) and each worker's
 * park_word and in_sleepers fields.  Touches nothing else; the caller does
 * the last check for work between park_prepare and park_wait. */
#ifndef WISP_PARK_H
#define WISP_PARK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "util.h"

struct worker;

struct idle {
    /* low 32 bits: searching workers; high 32 bits: unparked workers.  Read
     * by every producer without the lock; written under it (or with a CAS
     * for searching). */
    _Alignas(WISP_CACHE_LINE) _Atomic uint64_t counts;
    _Alignas(WISP_CACHE_LINE) pthread_mutex_t lock;
    struct worker **sleepers; /* stack, under lock */
    unsigned nsleepers;
    unsigned nworkers;
};

int wisp__idle_init(struct idle *idle, unsigned nworkers);
void wisp__idle_destroy(struct idle *idle);

/* Producer side, after queueing work: wakes one parked worker unless one is
 * already searching or none is parked.  Cheap (one load) when busy. */
void wisp__idle_notify_one(struct idle *idle);
bool wisp__idle_should_notify(struct idle *idle);

/* A worker starts searching (stealing); false if enough already are
 * (at most half the workers search, as in Tokio and Go). */
bool wisp__idle_begin_search(struct idle *idle);
/* A searching worker found work; true if it was the last searcher. */
bool wisp__idle_end_search(struct idle *idle);

/* Parking, in three steps so the caller can check for work in between:
 * prepare (now counted as parked), then either cancel (work was found; the
 * worker continues as a searcher) or wait (returns once unparked, also as a
 * searcher). */
void wisp__idle_park_prepare(struct idle *idle, struct worker *w, bool was_searching);
void wisp__idle_park_cancel(struct idle *idle, struct worker *w);
void wisp__idle_park_wait(struct worker *w);

/* Shutdown: unpark everyone. */
void wisp__idle_unpark_all(struct idle *idle);

#endif /* WISP_PARK_H */
