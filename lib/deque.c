/* deque.c - Chase-Lev work-stealing deque (Chase & Lev 2005), with the
 * C11 orderings of Le, Pop, Cohen and Zappa Nardelli, "Correct and Efficient
 * Work-Stealing for Weak Memory Models" (PPoPP 2013).
 *
 * Owns: struct deque.  Touches: nothing but its own memory.
 *
 * Capacity is fixed.  A growable array needs safe reclamation of the old
 * array (a thief may still read it); a fixed ring needs none, keeps memory
 * bounded per worker, and the rare overflow is amortised by moving half of
 * the deque to the injector at once, as Tokio does.  Indices are 64-bit and
 * never wrap in practice; slots are atomic so that a thief reading a slot the
 * owner is writing is a benign, TSan-visible race, not undefined behaviour.
 *
 * The paper's standalone fences are replaced by operations ThreadSanitizer
 * understands: push publishes bottom with a release store (wisp__deque_publish
 * adds the seq_cst step of idle.c's no-lost-wakeup table where a wakeup check
 * follows a push; local_queue.c says where), take pairs its bottom store with
 * a seq_cst load of top, and steal reads top and bottom seq_cst.
 * Those seq_cst accesses give exactly the store-load order the fences gave.
 */
#include "deque.h"

#include <errno.h>

#include "alloc.h"

int wisp__deque_init(struct deque *d, size_t capacity)
{
    if (capacity < 2 || (capacity & (capacity - 1)) != 0)
        return -EINVAL;
    d->slots = alloc_zeroed(capacity, sizeof(*d->slots), 0);
    if (!d->slots)
        return -ENOMEM;
    d->mask = (int64_t)capacity - 1;
    atomic_init(&d->top, 0);
    atomic_init(&d->bottom, 0);
    return 0;
}

void wisp__deque_destroy(struct deque *d)
{
    alloc_free((void *)d->slots);
    d->slots = NULL;
}

size_t wisp__deque_capacity(const struct deque *d)
{
    return (size_t)d->mask + 1;
}

bool wisp__deque_push(struct deque *d, struct wisp_task *task)
{
    /* relaxed: only the owner writes bottom. */
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
    /* acquire: pairs with the thieves' CAS on top, so that the slot we are
     * about to reuse has really been read by the thief that took it. */
    int64_t t = atomic_load_explicit(&d->top, memory_order_acquire);
    if (b - t > d->mask)
        return false;
    /* relaxed: published by the store to bottom below. */
    atomic_store_explicit(&d->slots[b & d->mask], task, memory_order_relaxed);
    /* release: pairs with the thieves' load of bottom so they see the slot. */
    atomic_store_explicit(&d->bottom, b + 1, memory_order_release);
    return true;
}

void wisp__deque_publish(struct deque *d)
{
    /* seq_cst RMW: a producer's W in idle.c's table, pairing with the
     * parker's seq_cst loads in wisp__deque_len.  An RMW rather than a
     * fence, so ThreadSanitizer sees it. */
    atomic_fetch_add_explicit(&d->bottom, 0, memory_order_seq_cst);
}

struct wisp_task *wisp__deque_pop(struct deque *d)
{
    /* relaxed: only the owner writes bottom. */
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed) - 1;
    /* seq_cst store then seq_cst load: the store-load order the paper gets
     * from its seq_cst fence; pairs with the thieves' seq_cst top/bottom. */
    atomic_store_explicit(&d->bottom, b, memory_order_seq_cst);
    int64_t t = atomic_load_explicit(&d->top, memory_order_seq_cst);
    if (t > b) {
        /* Empty: restore.  relaxed: only the owner writes bottom. */
        atomic_store_explicit(&d->bottom, b + 1, memory_order_relaxed);
        return NULL;
    }
    /* relaxed: we wrote this slot ourselves. */
    struct wisp_task *task = atomic_load_explicit(&d->slots[b & d->mask], memory_order_relaxed);
    if (t == b) {
        /* Last element: race the thieves for it on top.  seq_cst: pairs with
         * the thieves' CAS on top. */
        if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1, memory_order_seq_cst,
                                                     memory_order_relaxed))
            task = NULL;
        /* relaxed: only the owner writes bottom. */
        atomic_store_explicit(&d->bottom, b + 1, memory_order_relaxed);
    }
    return task;
}

enum steal_result wisp__deque_steal(struct deque *d, struct wisp_task **out)
{
    /* seq_cst: the paper's acquire load of top followed by its seq_cst
     * fence; pairs with the owner's seq_cst bottom store in wisp__deque_pop. */
    int64_t t = atomic_load_explicit(&d->top, memory_order_seq_cst);
    /* seq_cst (acquire at least): pairs with the owner's store of bottom in
     * wisp__deque_push, making the slot contents visible. */
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_seq_cst);
    if (t >= b)
        return STEAL_EMPTY;
    /* relaxed: the acquire on bottom made the slot visible; the CAS below
     * discards the value if the slot was reused meanwhile. */
    struct wisp_task *task = atomic_load_explicit(&d->slots[t & d->mask], memory_order_relaxed);
    /* seq_cst: pairs with the owner's CAS in wisp__deque_pop and other thieves. */
    if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1, memory_order_seq_cst,
                                                 memory_order_relaxed))
        return STEAL_RETRY;
    *out = task;
    return STEAL_OK;
}

size_t wisp__deque_take_half(struct deque *d, struct wisp_task **out)
{
    /* acquire: pairs with the thieves' CAS on top (their reads are done). */
    int64_t t = atomic_load_explicit(&d->top, memory_order_acquire);
    /* relaxed: only the owner writes bottom. */
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
    int64_t half = (d->mask + 1) / 2;
    if (b - t < half)
        return 0;
    for (int64_t i = 0; i < half; i++)
        /* relaxed: the owner wrote these slots. */
        out[i] = atomic_load_explicit(&d->slots[(t + i) & d->mask], memory_order_relaxed);
    /* Claim them like a batch of steals.  Safe because only the owner moves
     * bottom and bottom - t >= half, so no pop can reach these slots.
     * seq_cst: pairs with the thieves' CAS on top. */
    if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + half, memory_order_seq_cst,
                                                 memory_order_relaxed))
        return 0;
    return (size_t)half;
}

size_t wisp__deque_len(const struct deque *d)
{
    /* seq_cst: part of the parker's R' in idle.c's table; pairs with
     * wisp__deque_publish's RMW on bottom. */
    int64_t b = atomic_load_explicit(&((struct deque *)d)->bottom, memory_order_seq_cst);
    int64_t t = atomic_load_explicit(&((struct deque *)d)->top, memory_order_seq_cst);
    return b > t ? (size_t)(b - t) : 0;
}
