/* sync_sem.c - the FIFO semaphore, and the mutex and rwlock built on it
 * (wisp/sync.h).
 *
 * Owns: struct sem (inside wisp_semaphore_t) and the acquire future.
 * Touches: its waiters' nodes (waitq.h), under its lock.
 *
 * Protocol.  avail is one word: the permits nobody holds or is owed
 * (shifted by 2), bit 1 WAITERS (the queue is not empty), bit 0 CLOSED.
 * The lock guards the queue, and WAITERS changes only under it, together
 * with the queue.  Permits go to queued waiters first: a release that
 * finds WAITERS gives its permits, under the lock, to the head waiter, then
 * the next, each taking what it still needs (n), and puts back into avail
 * only what no waiter needs, clearing WAITERS in the same CAS when the
 * queue empties.  So while WAITERS is set avail holds no permit, and:
 *   - acquire's fast path is one CAS taking permits from avail (no lock);
 *     it cannot barge past a waiter, as avail has none while one waits;
 *   - release's fast path is one CAS adding permits while WAITERS is
 *     clear; a waiter that queued meanwhile changed the word (it takes
 *     the permits there and sets WAITERS in one CAS), so the CAS fails and
 *     the release goes the slow way.  No Dekker handshake: both sides
 *     decide on the same word.
 * A waiter handed all it needs is NOTIFIED (off the queue, woken); its
 * next poll sees it.  Dropped before that, it gives its n permits back
 * through the release path: the next waiter gets them.  Dropped while
 * queued with part of its need met, it gives back that part.
 * Orderings: a CAS that takes permits is acquire, one that gives them is
 * release: the last holder's writes happen before the next holder's
 * reads; the waiters' fields are under the lock. */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <wisp/sync.h>

#include "debug.h"
#include "lock.h"
#include "util.h"
#include "waitq.h"

#define SEM_CLOSED ((size_t)1)
#define SEM_WAITERS ((size_t)2)
#define SEM_SHIFT 2
#define SEM_MAX WISP_SEMAPHORE_MAX

struct sem {
    _Atomic size_t avail; /* permits << 2 | WAITERS | CLOSED */
    struct wisp__lock lock;
    struct waitq q;
#if WISP_DEBUG
    _Atomic size_t held; /* acquired and not released: for the misuse check */
#endif
};

struct acquire {
    struct waiter node;
    struct sem *sem;
    size_t want;
    int status;
};

_Static_assert(sizeof(struct sem) <= sizeof(wisp_semaphore_t), "wisp_semaphore_t too small");
_Static_assert(sizeof(struct acquire) <= sizeof(wisp_acquire_t), "wisp_acquire_t too small");

static inline struct sem *sem_of(const wisp_semaphore_t *s)
{
    return (struct sem *)s;
}

static void held_add(struct sem *s, size_t n)
{
#if WISP_DEBUG
    atomic_fetch_add_explicit(&s->held, n, memory_order_relaxed);
#else
    (void)s;
    (void)n;
#endif
}

int wisp_semaphore_init(wisp_semaphore_t *ps, size_t permits)
{
    if (!ps || permits > SEM_MAX)
        return -EINVAL;
    struct sem *s = sem_of(ps);
    atomic_init(&s->avail, permits << SEM_SHIFT);
    lock_init(&s->lock);
    s->q.head = s->q.tail = NULL;
#if WISP_DEBUG
    atomic_init(&s->held, 0);
#endif
    return 0;
}

void wisp_semaphore_destroy(wisp_semaphore_t *ps)
{
    if (ps)
        WISP_CHECK_USE(!sem_of(ps)->q.head, "wisp_semaphore_destroy with waiters queued");
}

/* Takes n permits from avail if it holds them: 0, -EAGAIN, -EPIPE. */
static int sem_take(struct sem *s, size_t n)
{
    /* relaxed: the CAS below is what orders. */
    size_t a = atomic_load_explicit(&s->avail, memory_order_relaxed);
    for (;;) {
        if (a & SEM_CLOSED)
            return -EPIPE;
        if ((a >> SEM_SHIFT) < n)
            return -EAGAIN;
        /* acquire: pairs with the release of the fetch_add/CAS that put
         * these permits there (the last holder's writes). */
        if (atomic_compare_exchange_weak_explicit(&s->avail, &a, a - (n << SEM_SHIFT),
                                                  memory_order_acquire, memory_order_relaxed))
            return 0;
    }
}

/* Adds n permits to avail (capped at the maximum), clearing WAITERS if
 * clear_waiters; fails (false) if WAITERS is set and not to be cleared. */
static bool sem_put(struct sem *s, size_t n, bool clear_waiters)
{
    /* relaxed load; the CAS releases (pairs with the acquire of whoever
     * takes these permits). */
    size_t a = atomic_load_explicit(&s->avail, memory_order_relaxed);
    for (;;) {
        if ((a & SEM_WAITERS) && !clear_waiters)
            return false;
        size_t have = a >> SEM_SHIFT;
        size_t next = have + n > SEM_MAX ? SEM_MAX : have + n;
        if (atomic_compare_exchange_weak_explicit(&s->avail, &a,
                                                  (next << SEM_SHIFT) | (a & SEM_CLOSED),
                                                  memory_order_release, memory_order_relaxed))
            return true;
    }
}

/* Under the lock: gives n permits to the queued waiters in order, the rest
 * to avail (clearing WAITERS once the queue is empty). */
static void sem_give_locked(struct sem *s, size_t n, struct wake_list *wl)
{
    while (n && s->q.head) {
        struct waiter *w = s->q.head;
        size_t take = w->n < n ? w->n : n;
        w->n -= take;
        n -= take;
        if (w->n)
            return; /* still short: it keeps its place at the head; n is 0 */
        waitq_notify_head(&s->q, wl, 0);
        if (wake_list_full(wl) && n) {
            /* Keep WAITERS truthful while unlocked: if the queue is empty
             * now, newcomers must see the word as it is (no permits: we
             * still hold n), so leave WAITERS set until we relock. */
            wake_list_flush(wl, &s->lock);
        }
    }
    if (!s->q.head)
        sem_put(s, n, true);
}

static void sem_give(struct sem *s, size_t n)
{
    if (sem_put(s, n, false)) /* the fast path: nobody waits */
        return;
    struct wake_list wl;
    wake_list_init(&wl);
    lock_acquire(&s->lock);
    sem_give_locked(s, n, &wl);
    lock_release(&s->lock);
    wake_list_wake(&wl);
}

int wisp_semaphore_try_acquire(wisp_semaphore_t *ps, size_t n)
{
    if (!ps || n == 0 || n > SEM_MAX)
        return -EINVAL;
    struct sem *s = sem_of(ps);
    int r = sem_take(s, n);
    if (r == 0)
        held_add(s, n);
    return r == -EPIPE ? -EAGAIN : r;
}

void wisp_semaphore_release(wisp_semaphore_t *ps, size_t n)
{
    if (!ps || n == 0)
        return;
    struct sem *s = sem_of(ps);
#if WISP_DEBUG
    size_t h = atomic_load_explicit(&s->held, memory_order_relaxed);
    do
        WISP_CHECK_USE(h >= n, "wisp_semaphore_release: more permits than were acquired");
    while (!atomic_compare_exchange_weak_explicit(&s->held, &h, h - n, memory_order_relaxed,
                                                  memory_order_relaxed));
#endif
    sem_give(s, n);
}

void wisp_semaphore_add_permits(wisp_semaphore_t *ps, size_t n)
{
    if (ps && n)
        sem_give(sem_of(ps), n > SEM_MAX ? SEM_MAX : n);
}

size_t wisp_semaphore_available(const wisp_semaphore_t *ps)
{
    if (!ps)
        return 0;
    /* relaxed: a snapshot. */
    return atomic_load_explicit(&sem_of(ps)->avail, memory_order_relaxed) >> SEM_SHIFT;
}

void wisp_semaphore_close(wisp_semaphore_t *ps)
{
    if (!ps)
        return;
    struct sem *s = sem_of(ps);
    struct wake_list wl;
    wake_list_init(&wl);
    lock_acquire(&s->lock);
    /* release: as sem_put's. */
    atomic_fetch_or_explicit(&s->avail, SEM_CLOSED, memory_order_release);
    while (s->q.head) {
        wake_list_flush(&wl, &s->lock);
        if (!s->q.head)
            break;
        waitq_notify_head(&s->q, &wl, 1); /* tag 1: closed */
    }
    /* relaxed: under the lock, only the flag changes. */
    atomic_fetch_and_explicit(&s->avail, ~SEM_WAITERS, memory_order_relaxed);
    lock_release(&s->lock);
    wake_list_wake(&wl);
}

/* ---- the acquire future ---- */

void wisp_acquire_init(wisp_acquire_t *pf, wisp_semaphore_t *s, size_t n)
{
    struct acquire *f = (struct acquire *)pf;
    waiter_init(&f->node);
    f->sem = s ? sem_of(s) : NULL;
    f->want = n;
    f->status = 1; /* not done */
}

static wisp_poll_t acquire_done(struct acquire *f, int status, void **output)
{
    f->status = status;
    waiter_set_state(&f->node, WAITER_DONE);
    if (status == 0)
        held_add(f->sem, f->want);
    if (output)
        *output = (void *)(intptr_t)status;
    return WISP_READY;
}

wisp_poll_t wisp_acquire_poll(void *pf, wisp_context_t *cx, void **output)
{
    struct acquire *f = pf;
    if (waiter_state(&f->node) == WAITER_DONE) {
        if (output)
            *output = (void *)(intptr_t)f->status;
        return WISP_READY;
    }
    struct sem *s = f->sem;
    if (!s || f->want == 0 || f->want > SEM_MAX) {
        f->status = -EINVAL;
        waiter_set_state(&f->node, WAITER_DONE);
        if (output)
            *output = (void *)(intptr_t)-EINVAL;
        return WISP_READY;
    }
    if (waiter_state(&f->node) == WAITER_NONE) {
        int r = sem_take(s, f->want); /* the fast path: no lock */
        if (r != -EAGAIN)
            return acquire_done(f, r, output);
        lock_acquire(&s->lock);
        /* Under the lock, take what avail has (it is 0 while others
         * queue) and queue for the rest. */
        size_t need = f->want;
        size_t a = atomic_load_explicit(&s->avail, memory_order_relaxed);
        for (;;) {
            if (a & SEM_CLOSED) {
                lock_release(&s->lock);
                return acquire_done(f, -EPIPE, output);
            }
            size_t have = a >> SEM_SHIFT;
            size_t next;
            if (have >= need) /* released meanwhile: enough, no queueing */
                next = a - (need << SEM_SHIFT);
            else /* take it all and queue for the rest */
                next = (a & SEM_CLOSED) | SEM_WAITERS;
            /* acquire: as sem_take's. */
            if (atomic_compare_exchange_weak_explicit(&s->avail, &a, next, memory_order_acquire,
                                                      memory_order_relaxed)) {
                need = have >= need ? 0 : need - have;
                break;
            }
        }
        if (need == 0) {
            lock_release(&s->lock);
            return acquire_done(f, 0, output);
        }
        f->node.n = need;
        waiter_set_waker(&f->node, cx);
        waitq_push_back(&s->q, &f->node);
        lock_release(&s->lock);
        return WISP_PENDING;
    }
    lock_acquire(&s->lock);
    if (waiter_state(&f->node) == WAITER_NOTIFIED) {
        int st = f->node.tag ? -EPIPE : 0;
        size_t got = f->want - f->node.n; /* closed: what it had been given */
        lock_release(&s->lock);
        if (st && got)
            sem_give(s, got);
        return acquire_done(f, st, output);
    }
    waiter_set_waker(&f->node, cx);
    lock_release(&s->lock);
    return WISP_PENDING;
}

void wisp_acquire_drop(void *pf)
{
    struct acquire *f = pf;
    struct sem *s = f->sem;
    if (!s || waiter_state(&f->node) == WAITER_NONE || waiter_state(&f->node) == WAITER_DONE) {
        wisp_waker_drop(&f->node.waker);
        waiter_set_state(&f->node, WAITER_DONE);
        return;
    }
    struct wake_list wl;
    wake_list_init(&wl);
    lock_acquire(&s->lock);
    /* QUEUED: what it had been given so far; NOTIFIED and not seen: all
     * of it (n is 0).  Either goes on to the next waiters. */
    size_t back = f->want - f->node.n;
    if (waiter_state(&f->node) == WAITER_QUEUED)
        waitq_remove(&s->q, &f->node);
    waiter_set_state(&f->node, WAITER_DONE);
    if (back)
        sem_give_locked(s, back, &wl);
    else if (!s->q.head) /* relaxed: under the lock, only the flag changes */
        atomic_fetch_and_explicit(&s->avail, ~SEM_WAITERS, memory_order_relaxed);
    lock_release(&s->lock);
    wisp_waker_drop(&f->node.waker);
    wake_list_wake(&wl);
}

/* ---- mutex ---- */

#if WISP_DEBUG
static _Thread_local char outside_marker;
static uint64_t holder_id(void)
{
    return (uint64_t)(uintptr_t)(wisp__debug_polling ? wisp__debug_polling
                                                     : (const void *)&outside_marker);
}
#endif

void wisp_mutex_init(wisp_mutex_t *m)
{
    if (!m)
        return;
    wisp_semaphore_init(&m->sem, 1);
    m->debug_holder = 0;
}

void wisp_mutex_destroy(wisp_mutex_t *m)
{
    if (m)
        wisp_semaphore_destroy(&m->sem);
}

static void mutex_held(wisp_mutex_t *m)
{
#if WISP_DEBUG
    /* relaxed: read only by the holder, ordered by the permit's acquire. */
    atomic_store_explicit((_Atomic uint64_t *)&m->debug_holder, holder_id(), memory_order_relaxed);
#else
    (void)m;
#endif
}

int wisp_mutex_try_lock(wisp_mutex_t *m)
{
    if (!m)
        return -EINVAL;
    int r = wisp_semaphore_try_acquire(&m->sem, 1);
    if (r == 0)
        mutex_held(m);
    return r;
}

void wisp_mutex_unlock(wisp_mutex_t *m)
{
    if (!m)
        return;
#if WISP_DEBUG
    uint64_t h = atomic_load_explicit((_Atomic uint64_t *)&m->debug_holder, memory_order_relaxed);
    WISP_CHECK_USE(wisp_semaphore_available(&m->sem) == 0 && h == holder_id(),
                   "wisp_mutex_unlock: the mutex is not held by this task");
    atomic_store_explicit((_Atomic uint64_t *)&m->debug_holder, 0, memory_order_relaxed);
#endif
    wisp_semaphore_release(&m->sem, 1);
}

void wisp_mutex_lock_init(wisp_mutex_lock_t *f, wisp_mutex_t *m)
{
    wisp_acquire_init(&f->acq, m ? &m->sem : NULL, 1);
}

wisp_poll_t wisp_mutex_lock_poll(void *pf, wisp_context_t *cx, void **output)
{
    wisp_mutex_lock_t *f = pf;
    struct acquire *a = (struct acquire *)&f->acq;
    bool was_done = waiter_state(&a->node) == WAITER_DONE;
    void *st = NULL;
    if (wisp_acquire_poll(&f->acq, cx, &st) == WISP_PENDING)
        return WISP_PENDING;
    if (!was_done && st == NULL)
        mutex_held((wisp_mutex_t *)((char *)a->sem - offsetof(wisp_mutex_t, sem)));
    if (output)
        *output = st;
    return WISP_READY;
}

void wisp_mutex_lock_drop(void *pf)
{
    wisp_acquire_drop(&((wisp_mutex_lock_t *)pf)->acq);
}

/* ---- rwlock: readers take one permit, a writer all of them ---- */

#define RW_MAX WISP_RWLOCK_MAX_READERS

void wisp_rwlock_init(wisp_rwlock_t *l)
{
    if (l)
        wisp_semaphore_init(&l->sem, RW_MAX);
}

void wisp_rwlock_destroy(wisp_rwlock_t *l)
{
    if (l)
        wisp_semaphore_destroy(&l->sem);
}

int wisp_rwlock_try_read(wisp_rwlock_t *l)
{
    return l ? wisp_semaphore_try_acquire(&l->sem, 1) : -EINVAL;
}

int wisp_rwlock_try_write(wisp_rwlock_t *l)
{
    return l ? wisp_semaphore_try_acquire(&l->sem, RW_MAX) : -EINVAL;
}

void wisp_rwlock_read_unlock(wisp_rwlock_t *l)
{
    if (l)
        wisp_semaphore_release(&l->sem, 1);
}

void wisp_rwlock_write_unlock(wisp_rwlock_t *l)
{
    if (l)
        wisp_semaphore_release(&l->sem, RW_MAX);
}

void wisp_rwlock_read_init(wisp_rwlock_lock_t *f, wisp_rwlock_t *l)
{
    wisp_acquire_init(&f->acq, l ? &l->sem : NULL, 1);
}

void wisp_rwlock_write_init(wisp_rwlock_lock_t *f, wisp_rwlock_t *l)
{
    wisp_acquire_init(&f->acq, l ? &l->sem : NULL, RW_MAX);
}

wisp_poll_t wisp_rwlock_lock_poll(void *pf, wisp_context_t *cx, void **output)
{
    return wisp_acquire_poll(&((wisp_rwlock_lock_t *)pf)->acq, cx, output);
}

void wisp_rwlock_lock_drop(void *pf)
{
    wisp_acquire_drop(&((wisp_rwlock_lock_t *)pf)->acq);
}
