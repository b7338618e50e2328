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
 *   wait group: the count is an atomic; the change that brings it to zero
 *     then takes the lock and notifies every waiter.  A waiter checks the
 *     count under the lock before queueing, so a zero reached before its
 *     check is seen by the check, and one reached after finds it queued
 *     (the adder's fetch_add happens before its lock section; the waiter's
 *     check is inside its own: the lock orders them). */
#include <errno.h>
#include <stdatomic.h>

#include <wisp/sync.h>

#include "debug.h"
#include "lock.h"
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
    struct wisp__lock lock;
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
    lock_init(&n->lock);
    n->permit = false;
    n->gen = 0;
    n->q.head = n->q.tail = NULL;
}

void wisp_notify_destroy(wisp_notify_t *pn)
{
    if (pn)
        WISP_CHECK_USE(!((struct notify *)pn)->q.head, "wisp_notify_destroy with waiters queued");
}

static void notify_one_locked(struct notify *n, struct wake_list *wl)
{
    if (!waitq_notify_head(&n->q, wl, NOTIFY_ONE))
        n->permit = true;
}

void wisp_notify_one(wisp_notify_t *pn)
{
    struct notify *n = (struct notify *)pn;
    if (!n)
        return;
    struct wake_list wl;
    wake_list_init(&wl);
    lock_acquire(&n->lock);
    notify_one_locked(n, &wl);
    lock_release(&n->lock);
    wake_list_wake(&wl);
}

void wisp_notify_waiters(wisp_notify_t *pn)
{
    struct notify *n = (struct notify *)pn;
    if (!n)
        return;
    struct wake_list wl;
    wake_list_init(&wl);
    lock_acquire(&n->lock);
    uint64_t gen = ++n->gen;
    waitq_notify_before(&n->q, &wl, &n->lock, gen, NOTIFY_ALL);
    lock_release(&n->lock);
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
    lock_acquire(&n->lock);
    if (waiter_state(&f->node) == WAITER_NOTIFIED || (waiter_state(&f->node) == WAITER_NONE && n->permit)) {
        if (waiter_state(&f->node) == WAITER_NONE)
            n->permit = false;
        lock_release(&n->lock);
        return event_ready(f, 0, output);
    }
    waiter_set_waker(&f->node, cx);
    if (waiter_state(&f->node) == WAITER_NONE) {
        f->node.gen = n->gen;
        waitq_push_back(&n->q, &f->node);
    }
    lock_release(&n->lock);
    return WISP_PENDING;
}

void wisp_notified_drop(void *pf)
{
    struct event_fut *f = pf;
    struct notify *n = f->prim;
    if (n && (waiter_state(&f->node) == WAITER_QUEUED || waiter_state(&f->node) == WAITER_NOTIFIED)) {
        struct wake_list wl;
        wake_list_init(&wl);
        lock_acquire(&n->lock);
        if (waiter_state(&f->node) == WAITER_QUEUED)
            waitq_remove(&n->q, &f->node);
        else if (f->node.tag == NOTIFY_ONE) /* not seen: passed on */
            notify_one_locked(n, &wl);
        lock_release(&n->lock);
        wake_list_wake(&wl);
    }
    waiter_set_state(&f->node, WAITER_DONE);
    wisp_waker_drop(&f->node.waker);
}

/* ---- barrier ---- */

struct barrier {
    struct wisp__lock lock;
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
    lock_init(&b->lock);
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
    lock_acquire(&b->lock);
    if (waiter_state(&f->node) == WAITER_NOTIFIED) {
        lock_release(&b->lock);
        return event_ready(f, 0, output);
    }
    if (waiter_state(&f->node) == WAITER_QUEUED) {
        waiter_set_waker(&f->node, cx);
        lock_release(&b->lock);
        return WISP_PENDING;
    }
    if (++b->arrived < b->n) {
        waiter_set_waker(&f->node, cx);
        f->node.gen = b->gen;
        waitq_push_back(&b->q, &f->node);
        lock_release(&b->lock);
        return WISP_PENDING;
    }
    b->arrived = 0; /* the leader: release this generation */
    uint64_t gen = ++b->gen;
    waitq_notify_before(&b->q, &wl, &b->lock, gen, 0);
    lock_release(&b->lock);
    wake_list_wake(&wl);
    return event_ready(f, 1, output);
}

void wisp_barrier_wait_drop(void *pf)
{
    struct event_fut *f = pf;
    struct barrier *b = f->prim;
    if (b && waiter_state(&f->node) == WAITER_QUEUED) {
        lock_acquire(&b->lock);
        if (waiter_state(&f->node) == WAITER_QUEUED)
            waitq_remove(&b->q, &f->node); /* it stays counted as arrived */
        lock_release(&b->lock);
    }
    waiter_set_state(&f->node, WAITER_DONE);
    wisp_waker_drop(&f->node.waker);
}

/* ---- wait group ---- */

struct waitgroup {
    _Atomic int64_t count;
    struct wisp__lock lock;
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
    lock_init(&wg->lock);
    wg->gen = 0;
    wg->q.head = wg->q.tail = NULL;
}

void wisp_waitgroup_destroy(wisp_waitgroup_t *pw)
{
    if (pw)
        WISP_CHECK_USE(!((struct waitgroup *)pw)->q.head,
                       "wisp_waitgroup_destroy with waiters queued");
}

void wisp_waitgroup_add(wisp_waitgroup_t *pw, int64_t delta)
{
    struct waitgroup *wg = (struct waitgroup *)pw;
    if (!wg || delta == 0)
        return;
    /* acq_rel: release the work done before done() to the waiters (who
     * acquire the count), acquire the others' for ours. */
    int64_t now = atomic_fetch_add_explicit(&wg->count, delta, memory_order_acq_rel) + delta;
    WISP_CHECK_USE(now >= 0, "wisp_waitgroup_add: the count went below zero");
    if (now != 0)
        return;
    struct wake_list wl;
    wake_list_init(&wl);
    lock_acquire(&wg->lock);
    uint64_t gen = ++wg->gen;
    waitq_notify_before(&wg->q, &wl, &wg->lock, gen, 0);
    lock_release(&wg->lock);
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
    if (waiter_state(&f->node) == WAITER_NONE && wisp_waitgroup_count((wisp_waitgroup_t *)wg) == 0)
        return event_ready(f, 0, output);
    lock_acquire(&wg->lock);
    if (waiter_state(&f->node) == WAITER_NOTIFIED) {
        lock_release(&wg->lock);
        return event_ready(f, 0, output);
    }
    if (wisp_waitgroup_count((wisp_waitgroup_t *)wg) == 0) {
        if (waiter_state(&f->node) == WAITER_QUEUED)
            waitq_remove(&wg->q, &f->node);
        lock_release(&wg->lock);
        return event_ready(f, 0, output);
    }
    waiter_set_waker(&f->node, cx);
    if (waiter_state(&f->node) == WAITER_NONE) {
        f->node.gen = wg->gen;
        waitq_push_back(&wg->q, &f->node);
    }
    lock_release(&wg->lock);
    return WISP_PENDING;
}

void wisp_waitgroup_wait_drop(void *pf)
{
    struct event_fut *f = pf;
    struct waitgroup *wg = f->prim;
    if (wg && waiter_state(&f->node) == WAITER_QUEUED) {
        lock_acquire(&wg->lock);
        if (waiter_state(&f->node) == WAITER_QUEUED)
            waitq_remove(&wg->q, &f->node);
        lock_release(&wg->lock);
    }
    waiter_set_state(&f->node, WAITER_DONE);
    wisp_waker_drop(&f->node.waker);
}
