/* atomic_waker.c - the AtomicWaker pattern (protocol in atomic_waker.h). */
#include "atomic_waker.h"

#define AW_WAITING 0u
#define AW_REGISTERING 1u
#define AW_WAKING 2u

void wisp__atomic_waker_register(struct atomic_waker *aw, const wisp_waker_t *w)
{
    uint32_t s = AW_WAITING;
    /* acquire: pairs with the release clear of WAKING in take, so the slot
     * as the last waker left it is what we see. */
    if (atomic_compare_exchange_strong_explicit(&aw->state, &s, AW_REGISTERING,
                                                memory_order_acquire, memory_order_acquire)) {
        wisp_waker_set(&aw->waker, w);
        s = AW_REGISTERING;
        /* acq_rel: release publishes the slot to a wake's acq_rel fetch_or;
         * acquire on failure for the wake's effects. */
        if (atomic_compare_exchange_strong_explicit(&aw->state, &s, AW_WAITING,
                                                    memory_order_acq_rel, memory_order_acquire))
            return;
        /* A wake came in while we registered (REGISTERING|WAKING): it left
         * the slot to us.  Take the waker and wake it ourselves. */
        wisp_waker_t taken = aw->waker;
        aw->waker = WISP_WAKER_EMPTY;
        /* release: as the clear in take. */
        atomic_store_explicit(&aw->state, AW_WAITING, memory_order_release);
        wisp_waker_wake(&taken);
        return;
    }
    if (s == AW_WAKING) /* a wake in progress: this registration is already woken */
        wisp_waker_wake_by_ref(w);
    /* else a concurrent registration: a caller's error (one registrant at
     * a time); nothing sensible to do but leave it to the other one. */
}

wisp_waker_t wisp__atomic_waker_take(struct atomic_waker *aw)
{
    /* acq_rel: acquire the registrant's slot write (its release unlock). */
    uint32_t s = atomic_fetch_or_explicit(&aw->state, AW_WAKING, memory_order_acq_rel);
    if (s != AW_WAITING)
        return WISP_WAKER_EMPTY; /* the registrant or another waker handles it */
    wisp_waker_t w = aw->waker;
    aw->waker = WISP_WAKER_EMPTY;
    /* release: our slot write happens before the next registrant's acquire. */
    atomic_fetch_and_explicit(&aw->state, ~AW_WAKING, memory_order_release);
    return w;
}

void wisp__atomic_waker_wake(struct atomic_waker *aw)
{
    wisp_waker_t w = wisp__atomic_waker_take(aw);
    wisp_waker_wake(&w);
}

void wisp__atomic_waker_destroy(struct atomic_waker *aw)
{
    wisp_waker_drop(&aw->waker);
}

/* ---- the public face (wisp/sync.h) ---- */

#include <wisp/sync.h>

_Static_assert(sizeof(struct atomic_waker) <= sizeof(wisp_atomic_waker_t),
               "wisp_atomic_waker_t too small");
_Static_assert(_Alignof(struct atomic_waker) <= _Alignof(wisp_atomic_waker_t),
               "wisp_atomic_waker_t misaligned");

void wisp_atomic_waker_init(wisp_atomic_waker_t *aw)
{
    if (aw)
        atomic_waker_init((struct atomic_waker *)aw);
}

void wisp_atomic_waker_register(wisp_atomic_waker_t *aw, const wisp_waker_t *w)
{
    if (aw && w)
        wisp__atomic_waker_register((struct atomic_waker *)aw, w);
}

void wisp_atomic_waker_wake(wisp_atomic_waker_t *aw)
{
    if (aw)
        wisp__atomic_waker_wake((struct atomic_waker *)aw);
}

wisp_waker_t wisp_atomic_waker_take(wisp_atomic_waker_t *aw)
{
    return aw ? wisp__atomic_waker_take((struct atomic_waker *)aw) : WISP_WAKER_EMPTY;
}

void wisp_atomic_waker_destroy(wisp_atomic_waker_t *aw)
{
    if (aw)
        wisp__atomic_waker_destroy((struct atomic_waker *)aw);
}
