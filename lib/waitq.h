/* waitq.h - the FIFO of waiting futures every primitive of wisp/sync.h
 * queues its waiters in, and the list of wakers woken after a lock is
 * released.
 *
 * Owns: struct waiter (the node embedded in each waiting future) and
 * struct waitq.  Touches nothing else: the primitive that owns a queue
 * guards it with its own lock, and every function here is called under
 * that lock.
 *
 * A waiter's life: NONE (initialised, never queued) -> QUEUED (in the
 * list, its waker set) -> NOTIFIED (taken off the list by whoever hands it
 * what it waits for; its waker moved to a wake list) -> DONE (its future
 * saw the result).  The lock holder moves it between QUEUED and NOTIFIED;
 * the owner alone sets NONE and DONE.  The lock's acquire/release orders
 * every field; state is atomic (relaxed) only so that the owner may look
 * at it without the lock: seeing NONE or DONE (its own writes) it needs no
 * lock, seeing QUEUED or NOTIFIED it takes the lock and looks again.  A future is
 * dropped under the same lock, which is what makes "pass the turn on"
 * exact: a NOTIFIED waiter dropped before it saw its result gives the
 * result to the next waiter in the same critical section.
 *
 * Wakers are never woken under the lock (a waker may be user code that
 * takes the same lock): they are moved into a wake_list and woken after
 * the unlock.  A list holds WAKE_LIST_MAX; a loop that may wake more
 * unlocks, wakes the batch and relocks (wake_list_flush), and a primitive
 * that wakes "everyone waiting now" tags each waiter with the generation
 * it queued in, so that waiters queued during such a window are not
 * taken for older ones. */
#ifndef WISP_WAITQ_H
#define WISP_WAITQ_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <wisp/future.h>

#include "debug.h"
#include "spin.h"

enum waiter_state { WAITER_NONE = 0, WAITER_QUEUED, WAITER_NOTIFIED, WAITER_DONE };

struct waiter {
    struct waiter *next, *prev;
    wisp_waker_t waker;
    _Atomic uint32_t state; /* enum waiter_state: waiter_state() */
    uint32_t tag;      /* the primitive's own use (how it was notified) */
    uint64_t gen;      /* the generation it queued in */
    size_t n;          /* the primitive's own use (permits still needed) */
};

struct waitq {
    struct waiter *head, *tail;
};

static inline uint32_t waiter_state(const struct waiter *w)
{
    /* relaxed: see the protocol above; the lock orders the rest. */
    return atomic_load_explicit(&((struct waiter *)w)->state, memory_order_relaxed);
}

static inline void waiter_set_state(struct waiter *w, uint32_t st)
{
    atomic_store_explicit(&w->state, st, memory_order_relaxed);
}

static inline void waiter_init(struct waiter *w)
{
    w->next = w->prev = NULL;
    w->waker = WISP_WAKER_EMPTY;
    atomic_init(&w->state, WAITER_NONE);
    w->tag = 0;
    w->gen = 0;
    w->n = 0;
}

static inline void waitq_push_back(struct waitq *q, struct waiter *w)
{
    WISP_ASSERT(waiter_state(w) != WAITER_QUEUED);
    w->next = NULL;
    w->prev = q->tail;
    if (q->tail)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
    waiter_set_state(w, WAITER_QUEUED);
}

static inline void waitq_push_front(struct waitq *q, struct waiter *w)
{
    WISP_ASSERT(waiter_state(w) != WAITER_QUEUED);
    w->prev = NULL;
    w->next = q->head;
    if (q->head)
        q->head->prev = w;
    else
        q->tail = w;
    q->head = w;
    waiter_set_state(w, WAITER_QUEUED);
}

/* Unlinks w; its state is the caller's to set. */
static inline void waitq_unlink(struct waitq *q, struct waiter *w)
{
    WISP_ASSERT(waiter_state(w) == WAITER_QUEUED);
    if (w->prev)
        w->prev->next = w->next;
    else
        q->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        q->tail = w->prev;
    w->next = w->prev = NULL;
}

/* The owner takes its waiter off the queue (NONE: its own state). */
static inline void waitq_remove(struct waitq *q, struct waiter *w)
{
    waitq_unlink(q, w);
    waiter_set_state(w, WAITER_NONE);
}

/* ---- waking after the unlock ---- */

#define WAKE_LIST_MAX 32

struct wake_list {
    unsigned n;
    wisp_waker_t w[WAKE_LIST_MAX];
};

static inline void wake_list_init(struct wake_list *l)
{
    l->n = 0;
}

static inline int wake_list_full(const struct wake_list *l)
{
    return l->n == WAKE_LIST_MAX;
}

/* Wakes and empties the list; call without the lock held. */
static inline void wake_list_wake(struct wake_list *l)
{
    for (unsigned i = 0; i < l->n; i++)
        wisp_waker_wake(&l->w[i]);
    l->n = 0;
}

/* Takes waiter w off q as NOTIFIED (with tag) and moves its waker into l
 * (not full). */
static inline void waitq_notify(struct waitq *q, struct waiter *w, struct wake_list *l,
                                uint32_t tag)
{
    WISP_ASSERT(!wake_list_full(l));
    /* Straight from QUEUED to NOTIFIED: the owner, looking without the
     * lock, must never see NONE here (it would take NONE for its own). */
    waitq_unlink(q, w);
    waiter_set_state(w, WAITER_NOTIFIED);
    w->tag = tag;
    l->w[l->n++] = w->waker;
    w->waker = WISP_WAKER_EMPTY;
}

/* The head waiter, as waitq_notify.  Returns it, or NULL for an empty
 * queue. */
static inline struct waiter *waitq_notify_head(struct waitq *q, struct wake_list *l, uint32_t tag)
{
    struct waiter *w = q->head;
    if (!w)
        return NULL;
    waitq_notify(q, w, l, tag);
    return w;
}

/* A full list is woken with the lock dropped for the while. */
static inline void wake_list_flush(struct wake_list *l, struct spin *lock)
{
    if (!wake_list_full(l))
        return;
    spin_release(lock);
    wake_list_wake(l);
    spin_acquire(lock);
}

/* Notifies every waiter queued in a generation before gen (tag as above),
 * relocking between batches; the caller wakes what is left in l after its
 * unlock. */
static inline void waitq_notify_before(struct waitq *q, struct wake_list *l,
                                       struct spin *lock, uint64_t gen, uint32_t tag)
{
    while (q->head && q->head->gen < gen) {
        wake_list_flush(l, lock);
        if (!q->head || q->head->gen >= gen)
            break;
        waitq_notify_head(q, l, tag);
    }
}

/* Drops a waiter whose primitive wants nothing from it but that it leave
 * the queue (a notification it got needs no passing on).  QUEUED or
 * NOTIFIED, it takes the lock: that orders the notifier's move of its
 * waker before the drop below. */
static inline void waiter_leave(struct waitq *q, struct spin *lock, struct waiter *w)
{
    uint32_t st = waiter_state(w);
    if (st == WAITER_QUEUED || st == WAITER_NOTIFIED) {
        spin_acquire(lock);
        if (waiter_state(w) == WAITER_QUEUED)
            waitq_remove(q, w);
        spin_release(lock);
    }
    waiter_set_state(w, WAITER_DONE);
    wisp_waker_drop(&w->waker);
}

/* The waker the future was polled with, stored in its node. */
static inline void waiter_set_waker(struct waiter *w, const wisp_context_t *cx)
{
    const wisp_waker_t *wk = wisp_context_waker(cx);
    if (wk)
        wisp_waker_set(&w->waker, wk);
}

#endif /* WISP_WAITQ_H */
