/* atomic_waker.h - one registered waker that any thread can wake, without a
 * lock: the AtomicWaker pattern of Rust's futures crate, in C.  Used where a
 * future waits for an event that another thread signals: an I/O operation's
 * completion, a timer firing, a readiness event.
 *
 * Owns: struct atomic_waker (a state word and the waker slot).
 *
 * Protocol.  state is WAITING (0), REGISTERING or WAKING (bits).
 *   register(w): CAS WAITING -> REGISTERING (acquire); store a clone of w in
 *     the slot (unless it already wakes the same task); CAS REGISTERING ->
 *     WAITING (acq_rel).  If that CAS fails, a wake came in meanwhile
 *     (state REGISTERING|WAKING): take the waker out, reset the state to
 *     WAITING and wake it here, so the wake is not lost.  If the first CAS
 *     finds WAKING, a wake is in progress: wake w directly.
 *   wake(): fetch_or WAKING (acq_rel).  If the old state was WAITING, the
 *     slot is ours: take the waker, clear WAKING (release), wake it.  Else a
 *     registration is in progress (it will see WAKING and wake) or another
 *     wake is (it will wake).
 * Registration by one thread at a time (the future's poller); wakes from
 * any number of threads.  A wake that finds no registered waker is not
 * remembered: the event the wake announces must be visible to the future
 * (its own state, read after registering), as with every waker.
 * Every ordering: register's acquire pairs with wake's release clear (the
 * slot's previous contents); register's acq_rel unlock pairs with wake's
 * acq_rel fetch_or (the slot's new waker). */
#ifndef WISP_ATOMIC_WAKER_H
#define WISP_ATOMIC_WAKER_H

#include <stdatomic.h>
#include <stdint.h>

#include <wisp/future.h>

struct atomic_waker {
    _Atomic uint32_t state;
    wisp_waker_t waker;
};

static inline void atomic_waker_init(struct atomic_waker *aw)
{
    atomic_init(&aw->state, 0);
    aw->waker = WISP_WAKER_EMPTY;
}

void wisp__atomic_waker_register(struct atomic_waker *aw, const wisp_waker_t *w);
/* Takes the registered waker out (for the caller to wake, e.g. after it
 * drops a lock); empty if none is registered or a registration is under
 * way (it then wakes itself). */
wisp_waker_t wisp__atomic_waker_take(struct atomic_waker *aw);
void wisp__atomic_waker_wake(struct atomic_waker *aw);
/* Releases the registered waker; no other thread may use aw any more. */
void wisp__atomic_waker_destroy(struct atomic_waker *aw);

#endif /* WISP_ATOMIC_WAKER_H */
