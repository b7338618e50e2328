/* atomic_waker.h - one registered waker that any thread can wake, without a
 * lock: the AtomicWaker pattern of Rust's futures crate, in C.  Public as
 * wisp_atomic_waker_t (wisp/sync.h); inside wisp it is the join handle's
 * awaiter slot (task.c), the oneshot's two slots and the I/O and timer
 * futures' wakers.
 *
 * Owns: the protocol, which runs on three bits of a 64-bit word
 * (REGISTERING, WAKING, and HAS: the slot holds a waker) and a waker slot.  The rest of the word belongs to the
 * caller and may change concurrently: every step is a CAS or a fetch-op
 * that keeps it.  struct atomic_waker is the standalone form (bits 0-2 of
 * its own word); a task runs it on bits 6, 7 and 9 of its state word, so
 * that the event its join handle waits for (FINISHED) and the registration
 * are ordered by one word (task_state.h).
 *
 * Protocol.  With neither bit set the slot is at rest (empty, or holding
 * the registered waker).
 *   register(w): CAS REGISTERING in (acquire), from a word with neither
 *     bit; store a clone of w in the slot (unless it already wakes the
 *     same task); CAS REGISTERING out and HAS in (acq_rel; HAS only for a
 *     non-empty waker).  If that CAS finds WAKING,
 *     a wake came in meanwhile and left the slot to us: take the waker out,
 *     clear the three bits (release) and wake it here.  If the first CAS finds
 *     WAKING, a wake is in progress: wake w directly.
 *   take(): fetch_or WAKING (acq_rel).  If neither bit was set, the slot
 *     is ours: take the waker, clear WAKING and HAS (release), return it for the
 *     caller to wake.  Else a registration is in progress (it sees WAKING
 *     and wakes) or another take is (it wakes).
 * Registration by one thread at a time (the future's poller); takes and
 * wakes from any number of threads.  A wake that finds no registered waker
 * is not remembered: the event must be visible to the future (in its own
 * state, read after registering), as with every waker.
 * Orderings: register's acquire pairs with take's release clear (the slot
 * as the last taker left it); register's acq_rel unlock pairs with take's
 * acq_rel fetch_or (the slot's new waker). */
#ifndef WISP_ATOMIC_WAKER_H
#define WISP_ATOMIC_WAKER_H

#include <stdatomic.h>
#include <stdint.h>

#include <wisp/future.h>

/* Where the protocol runs: a word, its two bits, the slot. */
struct aw_ref {
    _Atomic uint64_t *word;
    uint64_t registering, waking, has;
    wisp_waker_t *slot;
};

void wisp__aw_register(struct aw_ref r, const wisp_waker_t *w);
/* Takes the registered waker out (for the caller to wake, e.g. after it
 * drops a lock); empty if none is registered or a registration is under
 * way (it then wakes itself). */
wisp_waker_t wisp__aw_take(struct aw_ref r);

/* The standalone form. */
struct atomic_waker {
    _Atomic uint64_t state;
    wisp_waker_t waker;
};

static inline void atomic_waker_init(struct atomic_waker *aw)
{
    atomic_init(&aw->state, 0);
    aw->waker = WISP_WAKER_EMPTY;
}

static inline struct aw_ref atomic_waker_ref(struct atomic_waker *aw)
{
    return (struct aw_ref){ &aw->state, 1, 2, 4, &aw->waker };
}

static inline void wisp__atomic_waker_register(struct atomic_waker *aw, const wisp_waker_t *w)
{
    wisp__aw_register(atomic_waker_ref(aw), w);
}

static inline wisp_waker_t wisp__atomic_waker_take(struct atomic_waker *aw)
{
    return wisp__aw_take(atomic_waker_ref(aw));
}

static inline void wisp__atomic_waker_wake(struct atomic_waker *aw)
{
    wisp_waker_t w = wisp__atomic_waker_take(aw);
    wisp_waker_wake(&w);
}

/* Releases the registered waker; no other thread may use aw any more. */
static inline void wisp__atomic_waker_destroy(struct atomic_waker *aw)
{
    wisp_waker_drop(&aw->waker);
}

#endif /* WISP_ATOMIC_WAKER_H */
