/* atomic_waker.c - the AtomicWaker pattern (protocol in atomic_waker.h). */
#include <stdatomic.h>

#include "atomic_waker.h"

void wisp__aw_register(struct aw_ref r, const wisp_waker_t *w)
{
    const uint64_t bits = r.registering | r.waking | r.has;
    /* relaxed: the CAS below decides. */
    uint64_t s = atomic_load_explicit(r.word, memory_order_relaxed);
    for (;;) {
        if (s & r.waking) { /* a wake in progress: this registration is woken */
            wisp_waker_wake_by_ref(w);
            return;
        }
        if (s & r.registering) /* a concurrent registration: the caller's */
            return;            /* error (one registrant); leave it to it */
        /* acquire: pairs with the release clear of WAKING in take, so the
         * slot as the last taker left it is what we see. */
        if (atomic_compare_exchange_weak_explicit(r.word, &s, s | r.registering,
                                                  memory_order_acquire, memory_order_relaxed))
            break;
    }
    wisp_waker_set(r.slot, w);
    uint64_t has = wisp_waker_is_empty(r.slot) ? 0 : r.has;
    s |= r.registering;
    for (;;) {
        if (s & r.waking)
            break;
        /* acq_rel: release publishes the slot to a take's acq_rel
         * fetch_or; acquire on failure for the take's effects. */
        if (atomic_compare_exchange_weak_explicit(r.word, &s, (s & ~(r.registering | r.has)) | has,
                                                  memory_order_acq_rel, memory_order_acquire))
            return;
    }
    /* A take came in while we registered: it left the slot to us.  Take
     * the waker and wake it ourselves. */
    wisp_waker_t taken = *r.slot;
    *r.slot = WISP_WAKER_EMPTY;
    /* release: as the clear in take. */
    atomic_fetch_and_explicit(r.word, ~bits, memory_order_release);
    wisp_waker_wake(&taken);
}

wisp_waker_t wisp__aw_take(struct aw_ref r)
{
    /* acq_rel: acquire the registrant's slot write (its release unlock). */
    uint64_t s = atomic_fetch_or_explicit(r.word, r.waking, memory_order_acq_rel);
    if (s & (r.registering | r.waking))
        return WISP_WAKER_EMPTY; /* the registrant or another taker handles it */
    wisp_waker_t w = *r.slot;
    *r.slot = WISP_WAKER_EMPTY;
    /* release: our slot write happens before the next registrant's acquire. */
    atomic_fetch_and_explicit(r.word, ~(r.waking | r.has), memory_order_release);
    return w;
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
