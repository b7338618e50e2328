/* spin.h - the lock of the sync primitives' critical sections (lib/sync_*,
 * lib/waitq.h): a test-and-test-and-set spinlock whose unlock is a plain
 * release store.
 *
 * Owns: struct spin's word (0 free, 1 held).  Why not lock.h's futex
 * mutex: a channel operation takes its lock once or twice, and the futex
 * mutex's unlock must be an atomic exchange (to see sleepers), which on
 * x86 costs a locked instruction; here it is an ordinary store.  The
 * sections guarded are a few dozen instructions that never block, call
 * out (wakers are woken after the unlock, waitq.h) or take another lock,
 * so a waiter spins briefly; if the holder was preempted, the waiter yields
 * its CPU after a while instead of burning it (sched_yield), and it never
 * sleeps on the lock itself.
 * Orderings: the acquiring exchange is acquire, the releasing store is
 * release: a holder's writes happen before the next holder's reads. */
#ifndef WISP_SPIN_H
#define WISP_SPIN_H

#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

#include "util.h"

struct spin {
    _Atomic uint32_t held;
};

static inline void spin_init(struct spin *l)
{
    atomic_init(&l->held, 0);
}

static inline void spin_acquire_slow(struct spin *l)
{
    for (unsigned n = 0;; n++) {
        /* relaxed: only a hint that the lock may be free; the exchange
         * below decides. */
        while (atomic_load_explicit(&l->held, memory_order_relaxed)) {
            if (++n < 256)
                cpu_relax();
            else
                sched_yield(); /* the holder may have been preempted */
        }
        /* acquire: pairs with spin_release's release store. */
        if (!atomic_exchange_explicit(&l->held, 1, memory_order_acquire))
            return;
    }
}

static inline void spin_acquire(struct spin *l)
{
    /* acquire: pairs with spin_release's release store, so the previous
     * holder's writes are visible inside the section. */
    if (likely(!atomic_exchange_explicit(&l->held, 1, memory_order_acquire)))
        return;
    spin_acquire_slow(l);
}

static inline void spin_release(struct spin *l)
{
    /* release: publishes the section's writes to the next acquirer. */
    atomic_store_explicit(&l->held, 0, memory_order_release);
}

#endif /* WISP_SPIN_H */
