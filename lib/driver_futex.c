/* driver_futex.c - the futex parking driver (see driver.h).
 *
 * Owns: struct futex_driver's state word.
 *
 * The word is EMPTY, NOTIFIED or PARKED.  unpark exchanges in NOTIFIED and
 * issues a futex wake only if the old value was PARKED, so unparking a
 * thread that is awake costs one atomic exchange.  park consumes NOTIFIED
 * if it is there (return at once); else it moves EMPTY to PARKED and sleeps
 * while the word stays PARKED.
 *
 * No lost unpark: the owner only sleeps in futex_wait(word, PARKED), which
 * the kernel refuses to start once the word is no longer PARKED.  An unpark
 * either finds EMPTY (the owner's CAS to PARKED then fails and it consumes
 * NOTIFIED) or PARKED (the exchange changes the word, so a wait that has
 * not started yet returns at once, and one that has is woken by the futex
 * wake).  Only the owner moves the word away from NOTIFIED, so the token
 * is consumed exactly once.
 *
 * The exchange is the unparker's last access to the driver's memory (the
 * futex wake after it is a system call on the address, which reads and
 * writes nothing there): a thread that has consumed NOTIFIED may free it. */
#include "driver.h"

#include <errno.h>

#include "futex.h"

enum { FUTEX_DRIVER_EMPTY = 0, FUTEX_DRIVER_NOTIFIED = 1, FUTEX_DRIVER_PARKED = 2 };

static int futex_driver_park(struct wisp__driver *base, uint64_t deadline_ns)
{
    struct futex_driver *d = (struct futex_driver *)base;
    uint32_t s = FUTEX_DRIVER_NOTIFIED;
    /* acquire: pairs with the unparker's release exchange, so what it wrote
     * before unparking is visible once we return. */
    if (atomic_compare_exchange_strong_explicit(&d->state, &s, FUTEX_DRIVER_EMPTY,
                                                memory_order_acquire, memory_order_relaxed))
        return DRIVER_UNPARKED;
    /* s is EMPTY: only the owner (us) moves the word away from NOTIFIED and
     * only we set PARKED.  acquire: on failure NOTIFIED arrived meanwhile,
     * and we return as unparked. */
    if (!atomic_compare_exchange_strong_explicit(&d->state, &s, FUTEX_DRIVER_PARKED,
                                                 memory_order_acquire, memory_order_acquire)) {
        atomic_store_explicit(&d->state, FUTEX_DRIVER_EMPTY, memory_order_relaxed);
        return DRIVER_UNPARKED;
    }
    int r = futex_wait_until(&d->state, FUTEX_DRIVER_PARKED, deadline_ns);
    /* Woken, timed out, or spurious: leave PARKED.  The exchange tells
     * which: NOTIFIED means an unpark came (consume it, report unparked even
     * at the deadline).  acquire: pairs with the unparker's release. */
    if (atomic_exchange_explicit(&d->state, FUTEX_DRIVER_EMPTY, memory_order_acquire) ==
        FUTEX_DRIVER_NOTIFIED)
        return DRIVER_UNPARKED;
    return r == -ETIMEDOUT ? DRIVER_TIMEDOUT : DRIVER_UNPARKED;
}

static void futex_driver_unpark(struct wisp__driver *base)
{
    struct futex_driver *d = (struct futex_driver *)base;
    /* release: pairs with the acquire in park (the unparker's writes). */
    if (atomic_exchange_explicit(&d->state, FUTEX_DRIVER_NOTIFIED, memory_order_release) ==
        FUTEX_DRIVER_PARKED)
        futex_wake(&d->state, 1);
}

static const struct driver_ops futex_driver_ops = { futex_driver_park, futex_driver_unpark };

void wisp__futex_driver_init(struct futex_driver *d)
{
    d->base.ops = &futex_driver_ops;
    atomic_init(&d->state, FUTEX_DRIVER_EMPTY);
}
