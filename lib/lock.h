/* lock.h - a small mutex on a futex word, for the short critical sections
 * of lib/ (registry shards, the injector): the uncontended lock and unlock
 * are one atomic operation each and inline, where pthread_mutex_lock is a
 * call through the PLT with its own checks around the same operation.
 *
 * Owns: struct wisp__lock's word.  The algorithm is the classic three-state
 * futex mutex (Drepper, "Futexes Are Tricky", mutex 2; Rust's std Mutex):
 * 0 unlocked, 1 locked, 2 locked with possible sleepers.  A locker that
 * finds it taken swaps in 2 and sleeps while the word is 2; unlock swaps in
 * 0 and wakes one sleeper if the old value was 2.  No lost wakeup: a
 * sleeper only sleeps on the value 2, which unlock replaces before its
 * wake.  Not fair and not recursive; never held across a call that may
 * block or take another lock of this kind. */
#ifndef WISP_LOCK_H
#define WISP_LOCK_H

#include <stdatomic.h>
#include <stdint.h>

#include "futex.h"
#include "util.h"

struct wisp__lock {
    _Atomic uint32_t state;
};

#define LOCK_INIT { 0 }

static inline void lock_init(struct wisp__lock *l)
{
    atomic_init(&l->state, 0);
}

static inline void lock_acquire_slow(struct wisp__lock *l)
{
    for (int spin = 0; spin < 64; spin++) { /* a short critical section ends soon */
        cpu_relax();
        uint32_t s = 0;
        /* acquire: as in lock_acquire. */
        if (atomic_load_explicit(&l->state, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_weak_explicit(&l->state, &s, 1, memory_order_acquire,
                                                  memory_order_relaxed))
            return;
    }
    /* acquire: pairs with the release exchange in lock_release. */
    while (atomic_exchange_explicit(&l->state, 2, memory_order_acquire) != 0)
        futex_wait_until(&l->state, 2, FUTEX_FOREVER);
}

static inline void lock_acquire(struct wisp__lock *l)
{
    uint32_t s = 0;
    /* acquire: pairs with the release exchange in lock_release, so the
     * previous holder's writes are visible inside the section. */
    if (likely(atomic_compare_exchange_weak_explicit(&l->state, &s, 1, memory_order_acquire,
                                                     memory_order_relaxed)))
        return;
    lock_acquire_slow(l);
}

static inline void lock_release(struct wisp__lock *l)
{
    /* release: publishes the section's writes to the next acquirer. */
    if (unlikely(atomic_exchange_explicit(&l->state, 0, memory_order_release) == 2))
        futex_wake(&l->state, 1);
}

#endif /* WISP_LOCK_H */
