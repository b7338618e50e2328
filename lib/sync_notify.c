/* sync_notify.c - notify, barrier and wait group (wisp/sync.h): the
 * primitives whose waiters wait for an event rather than for a resource.
 *
 * Owns: struct notify, struct barrier, struct waitgroup and their futures.
 * Touches: waiter nodes (waitq.h), under each primitive's lock.
 *
 * Protocols (each under the primitive's lock; wakers woken after it):
 *   notify: notify_one hands the head waiter the notification (NOTIFIED,
 *     tag ONE), or stores one permit when nobody waits; a waiter's first
 *     poll consumes a stored permit.  A ONE-notified waiter dropped before
 *     it saw it passes it on (to the next waiter, or back to the permit).
 *     notify_waiters bumps the generation and notifies every waiter queued
 *     in an earlier one (tag ALL: nothing to pass on).
 *   barrier: the n-th arrival of a generation is the leader: it bumps the
 *     generation and notifies every waiter of the old one.
 *   wait group: the count is an atomic, changed by CAS while the result
 *     is not zero; the change that brings it to zero is made under the
 *     lock, together with notifying every waiter.  A waiter reads the count
 *     only under the lock.  So a wait completes only after the last done()
 *     has released the lock, its last touch of the wait group: the owner
 *     may destroy it as soon as a wait has completed.  For that, done()
 *     never unlocks midway: it notifies one batch of waiters (a wake
 *     list), and each notified waiter, when it is polled (or dropped),
 *     notifies the next batch under the lock: a cascade. */
#include <errno.h>
#include <stdatomic.h>

#include <wisp/sync.h>

#include "debug.h"
#include "spin.h"
#include "waitq.h"

struct event_fut {
    struct waiter node;
    void *prim;
    int result;
};

_Static_assert(sizeof(struct event_fut) <= sizeof(wisp_notified_t), "wisp_notified_t too small");
_Static_assert(sizeof(struct event_fut) <= sizeof(wisp_barrier_wait_t), "too small");
_Static_assert(sizeof(struct event_fut) <= sizeof(wisp_waitgroup_wait_t), "too small");

static void event_init(void *pf, void *prim)
{
    struct event_fut *f = pf;
    waiter_init(&f->node);
    f->prim = prim;
    f->result = 0;
}

static wisp_poll_t event_ready(struct event_fut *f, int result, void **output)
{
    waiter_set_state(&f->node, WAITER_DONE);
    f->result = result;
    wisp_waker_drop(&f->node.waker);
    if (output)
        *output = (void *)(intptr_t)result;
    return WISP_READY;
}

/* ---- notify ---- */

#define NOTIFY_ONE 1u
#define NOTIFY_ALL 2u

struct notify {
    struct spin lock;
    bool permit;
    uint64_t gen;
    struct waitq q;
};
_Static_assert(sizeof(struct notify) <= sizeof(wisp_notify_t), "wisp_notify_t too small");

void wisp_notify_init(wisp_notify_t *pn)
{
    struct notify *n = (struct notify *)pn;
    if (!n)
        return;
    spin_init(&n->lock);
    n->permit = false;
    n->gen = 0;
    n->q.head = n->q.tail = NULL;
}

void wisp_notify_destroy(wisp_notify_t *pn)
{
    if (pn)
        WISP_CHECK_USE(!((struct notify *)pn)->q.head, "wisp_notify_destroy with waiters queued");
}

/* The oldest waiter not already being woken by a notify_waiters under way
 * (those queued before its generation: it dropped the lock to wake a
 * batch), else the permit. */
static void notify_one_locked(struct notify *n, struct wake_list *wl)
{
    struct waiter *w = n->q.head;
    while (w && w->gen < n->gen)
        w = w->next;
    if (w)
        waitq_notify(&n->q, w, wl, NOTIFY_ONE);
    else
        n->permit = true;
}

void wisp_notify_one(wisp_notify_t *pn)
{
    struct notify *n = (struct notify *)pn;
    if (!n)
        return;
    struct wake_list wl;
    wake_list_init(&wl);
    spin_acquire(&n->lock);
    notify_one_locked(n, &wl);
    spin_release(&n->lock);
    wake_list_wake(&wl);
}

void wisp_notify_waiters(wisp_notify_t *pn)
{
    struct notify *n = (struct notify *)pn;
    if (!n)
        return;
    struct wake_list wl;
    wake_list_init(&wl);
    spin_acquire(&n->lock);
    uint64_t gen = ++n->gen;
    waitq_notify_before(&n->q, &wl, &n->lock, gen, NOTIFY_ALL);
    spin_release(&n->lock);
    wake_list_wake(&wl);
}

void wisp_notified_init(wisp_notified_t *f, wisp_notify_t *n)
{
    event_init(f, n);
}

wisp_poll_t wisp_notified_poll(void *pf, wisp_context_t *cx, void **output)
{
    struct event_fut *f = pf;
    struct notify *n = f->prim;
    if (waiter_state(&f->node) == WAITER_DONE)
        return event_ready(f, f->result, output);
    if (!n)
        return event_ready(f, -EINVAL, output);
    spin_acquire(&n->lock);
    if (waiter_state(&f->node) == WAITER_NOTIFIED || (waiter_state(&f->node) == WAITER_NONE && n->permit)) {
        if (waiter_state(&f->node) == WAITER_NONE)
            n->permit = false;
        spin_release(&n->lock);
        return event_ready(f, 0, output);
    }
    waiter_set_waker(&f->node, cx);
    if (waiter_state(&f->node) == WAITER_NONE) {
        f->node.gen = n->gen;
        waitq_push_back(&n->q, &f->node);
    }
    spin_release(&n->lock);
    return WISP_PENDING;
}

void wisp_notified_drop(void *pf)
{
    struct event_fut *f = pf;
    struct notify *n = f->prim;
    if (n && (waiter_state(&f->node) == WAITER_QUEUED || waiter_state(&f->node) == WAITER_NOTIFIED)) {
        struct wake_list wl;
        wake_list_init(&wl);
        spin_acquire(&n->lock);
        if (waiter_state(&f->node) == WAITER_QUEUED)
            waitq_remove(&n->q, &f->node);
        else if (f->node.tag == NOTIFY_ONE) /* not seen: passed on */
            notify_one_locked(n, &wl);
        spin_release(&n->lock);
        wake_list_wake(&wl);
    }
    waiter_set_state(&f->node, WAITER_DONE);
    wisp_waker_drop(&f->node.waker);
}

/* ---- barrier ---- */

struct barrier {
    struct spin lock;
    size_t n, arrived;
    uint64_t gen;
    struct waitq q;
};
_Static_assert(sizeof(struct barrier) <= sizeof(wisp_barrier_t), "wisp_barrier_t too small");

int wisp_barrier_init(wisp_barrier_t *pb, size_t n)
{
    struct barrier *b = (struct barrier *)pb;
    if (!b || n == 0)
        return -EINVAL;
    spin_init(&b->lock);
    b->n = n;
    b->arrived = 0;
    b->gen = 0;
    b->q.head = b->q.tail = NULL;
    return 0;
}

void wisp_barrier_destroy(wisp_barrier_t *pb)
{
    if (pb)
        WISP_CHECK_USE(!((struct barrier *)pb)->q.head, "wisp_barrier_destroy with waiters queued");
}

void wisp_barrier_wait_init(wisp_barrier_wait_t *f, wisp_barrier_t *b)
{
    event_init(f, b);
}

wisp_poll_t wisp_barrier_wait_poll(void *pf, wisp_context_t *cx, void **output)
{
    struct event_fut *f = pf;
    struct barrier *b = f->prim;
    if (waiter_state(&f->node) == WAITER_DONE)
        return event_ready(f, f->result, output);
    if (!b)
        return event_ready(f, -EINVAL, output);
    struct wake_list wl;
    wake_list_init(&wl);
    spin_acquire(&b->lock);
    if (waiter_state(&f->node) == WAITER_NOTIFIED) {
        spin_release(&b->lock);
        return event_ready(f, 0, output);
    }
    if (waiter_state(&f->node) == WAITER_QUEUED) {
        waiter_set_waker(&f->node, cx);
        spin_release(&b->lock);
        return WISP_PENDING;
    }
    if (++b->arrived < b->n) {
        waiter_set_waker(&f->node, cx);
        f->node.gen = b->gen;
        waitq_push_back(&b->q, &f->node);
        spin_release(&b->lock);
        return WISP_PENDING;
    }
    b->arrived = 0; /* the leader: release this generation */
    uint64_t gen = ++b->gen;
    waitq_notify_before(&b->q, &wl, &b->lock, gen, 0);
    spin_release(&b->lock);
    wake_list_wake(&wl);
    return event_ready(f, 1, output);
}

void wisp_barrier_wait_drop(void *pf)
{
    struct event_fut *f = pf;
    struct barrier *b = f->prim;
    if (b) /* an arrival stays counted */
        waiter_leave(&b->q, &b->lock, &f->node);
    else
        waiter_set_state(&f->node, WAITER_DONE);
}

/* ---- wait group ---- */

struct waitgroup {
    _Atomic int64_t count;
    struct spin lock;
    uint64_t gen;
    struct waitq q;
};
_Static_assert(sizeof(struct waitgroup) <= sizeof(wisp_waitgroup_t), "wisp_waitgroup_t too small");

void wisp_waitgroup_init(wisp_waitgroup_t *pw)
{
    struct waitgroup *wg = (struct waitgroup *)pw;
    if (!wg)
        return;
    atomic_init(&wg->count, 0);
    spin_init(&wg->lock);
    wg->gen = 0;
    wg->q.head = wg->q.tail = NULL;
}

void wisp_waitgroup_destroy(wisp_waitgroup_t *pw)
{
    if (pw)
        WISP_CHECK_USE(!((struct waitgroup *)pw)->q.head,
                       "wisp_waitgroup_destroy with waiters queued");
}

/* Notifies the waiters queued before the last zero, one wake list's
 * worth (the rest are notified by these ones: the cascade above). */
static void wg_cascade_locked(struct waitgroup *wg, struct wake_list *wl)
{
    while (wg->q.head && wg->q.head->gen < wg->gen && !wake_list_full(wl))
        waitq_notify_head(&wg->q, wl, 0);
}

void wisp_waitgroup_add(wisp_waitgroup_t *pw, int64_t delta)
{
    struct waitgroup *wg = (struct waitgroup *)pw;
    if (!wg || delta == 0)
        return;
    /* relaxed: the CAS orders. */
    int64_t c = atomic_load_explicit(&wg->count, memory_order_relaxed);
    while (c + delta != 0) {
        WISP_CHECK_USE(c + delta > 0, "wisp_waitgroup_add: the count went below zero");
        /* acq_rel: release the work done before done() to the waiters
         * (whose lock section reads the count after ours), acquire the
         * others'. */
        if (atomic_compare_exchange_weak_explicit(&wg->count, &c, c + delta, memory_order_acq_rel,
                                                  memory_order_relaxed))
            return;
    }
    struct wake_list wl;
    wake_list_init(&wl);
    spin_acquire(&wg->lock);
    /* acq_rel: as above; under the lock, so waiters see it with it. */
    int64_t now = atomic_fetch_add_explicit(&wg->count, delta, memory_order_acq_rel) + delta;
    WISP_CHECK_USE(now >= 0, "wisp_waitgroup_add: the count went below zero");
    if (now == 0) {
        wg->gen++;
        wg_cascade_locked(wg, &wl);
    }
    spin_release(&wg->lock);
    wake_list_wake(&wl);
}

void wisp_waitgroup_done(wisp_waitgroup_t *wg)
{
    wisp_waitgroup_add(wg, -1);
}

int64_t wisp_waitgroup_count(const wisp_waitgroup_t *pw)
{
    const struct waitgroup *wg = (const struct waitgroup *)pw;
    /* acquire: as the waiters'. */
    return wg ? atomic_load_explicit(&wg->count, memory_order_acquire) : 0;
}

void wisp_waitgroup_wait_init(wisp_waitgroup_wait_t *f, wisp_waitgroup_t *wg)
{
    event_init(f, wg);
}

wisp_poll_t wisp_waitgroup_wait_poll(void *pf, wisp_context_t *cx, void **output)
{
    struct event_fut *f = pf;
    struct waitgroup *wg = f->prim;
    if (waiter_state(&f->node) == WAITER_DONE)
        return event_ready(f, f->result, output);
    if (!wg)
        return event_ready(f, -EINVAL, output);
    struct wake_list wl;
    wake_list_init(&wl);
    spin_acquire(&wg->lock);
    if (waiter_state(&f->node) == WAITER_NOTIFIED) {
        wg_cascade_locked(wg, &wl);
        spin_release(&wg->lock);
        wake_list_wake(&wl);
        return event_ready(f, 0, output);
    }
    if (wisp_waitgroup_count((wisp_waitgroup_t *)wg) == 0) {
        if (waiter_state(&f->node) == WAITER_QUEUED)
            waitq_remove(&wg->q, &f->node);
        spin_release(&wg->lock);
        return event_ready(f, 0, output);
    }
    waiter_set_waker(&f->node, cx);
    if (waiter_state(&f->node) == WAITER_NONE) {
        f->node.gen = wg->gen;
        waitq_push_back(&wg->q, &f->node);
    }
    spin_release(&wg->lock);
    return WISP_PENDING;
}

void wisp_waitgroup_wait_drop(void *pf)
{
    struct event_fut *f = pf;
    struct waitgroup *wg = f->prim;
    uint32_t st = waiter_state(&f->node);
    if (wg && (st == WAITER_QUEUED || st == WAITER_NOTIFIED)) {
        struct wake_list wl;
        wake_list_init(&wl);
        spin_acquire(&wg->lock);
        if (waiter_state(&f->node) == WAITER_QUEUED)
            waitq_remove(&wg->q, &f->node);
        else /* notified and unseen: the cascade goes on from here */
            wg_cascade_locked(wg, &wl);
        spin_release(&wg->lock);
        wake_list_wake(&wl);
    }
    waiter_set_state(&f->node, WAITER_DONE);
    wisp_waker_drop(&f->node.waker);
}
