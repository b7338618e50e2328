/* parker.c - thread-parking waker (see parker.h).
 *
 * state: EMPTY, NOTIFIED (a wake is pending), PARKED (the thread sleeps on
 * the futex).  A wake stores NOTIFIED and issues the futex wake only when
 * the thread is actually asleep, so waking a running thread costs one
 * atomic exchange. */
#include "parker.h"

#include <stdlib.h>

#include "futex.h"

enum { PARKER_EMPTY = 0, PARKER_NOTIFIED = 1, PARKER_PARKED = 2 };

struct parker {
    _Atomic uint32_t state;
    _Atomic uint32_t refs;
};

static const wisp_waker_vtable_t parker_vtable;

struct parker *wisp__parker_new(void)
{
    struct parker *p = malloc(sizeof(*p));
    if (p) {
        atomic_init(&p->state, PARKER_EMPTY);
        atomic_init(&p->refs, 1);
    }
    return p;
}

wisp_waker_t wisp__parker_waker(struct parker *p)
{
    return (wisp_waker_t){ p, &parker_vtable };
}

void wisp__parker_park(struct parker *p)
{
    uint32_t s = PARKER_NOTIFIED;
    /* acquire: pairs with the waker's release exchange (its writes). */
    if (atomic_compare_exchange_strong_explicit(&p->state, &s, PARKER_EMPTY, memory_order_acquire,
                                                memory_order_relaxed))
        return;
    /* s is EMPTY: only this thread moves the state away from NOTIFIED. */
    if (!atomic_compare_exchange_strong_explicit(&p->state, &s, PARKER_PARKED,
                                                 memory_order_acquire, memory_order_relaxed)) {
        /* Notified in between.  acquire: as above. */
        atomic_exchange_explicit(&p->state, PARKER_EMPTY, memory_order_acquire);
        return;
    }
    for (;;) {
        futex_wait(&p->state, PARKER_PARKED);
        s = PARKER_NOTIFIED;
        /* acquire: pairs with the waker's release exchange. */
        if (atomic_compare_exchange_strong_explicit(&p->state, &s, PARKER_EMPTY,
                                                    memory_order_acquire, memory_order_relaxed))
            return;
    }
}

static void parker_unpark(struct parker *p)
{
    /* release: pairs with the acquire in wisp__parker_park (the waker's writes). */
    if (atomic_exchange_explicit(&p->state, PARKER_NOTIFIED, memory_order_release) ==
        PARKER_PARKED)
        futex_wake(&p->state, 1);
}

void wisp__parker_release(struct parker *p)
{
    /* acq_rel: the last releaser acquires all others' writes before free. */
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1)
        free(p);
}

static wisp_waker_t parker_clone_fn(const void *data)
{
    struct parker *p = (struct parker *)data;
    /* relaxed: the caller's reference keeps p alive, as in Arc::clone. */
    if (atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed) >= UINT32_MAX - 1)
        abort();
    return wisp__parker_waker(p);
}

static void parker_wake_by_ref_fn(const void *data)
{
    parker_unpark((struct parker *)data);
}

static void parker_wake_fn(const void *data)
{
    parker_unpark((struct parker *)data);
    wisp__parker_release((struct parker *)data);
}

static void parker_drop_fn(const void *data)
{
    wisp__parker_release((struct parker *)data);
}

static const wisp_waker_vtable_t parker_vtable = {
    parker_clone_fn, parker_wake_fn, parker_wake_by_ref_fn, parker_drop_fn,
};
