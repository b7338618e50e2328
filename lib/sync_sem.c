/* sync_sem.c - the FIFO semaphore, and the mutex and rwlock built on it
 * (wisp/sync.h).
 *
 * Owns: struct sem (inside wisp_semaphore_t) and the acquire future.
 * Touches: its waiters' nodes (waitq.h), under its lock.
 *
 * Protocol.  avail is one word: the permits nobody holds (shifted by 4),
 * bit 3 FIFO (hand-off mode always: semaphores and rwlocks), bit 2 STARVE
 * (hand-off mode for now: a mutex whose head waiter waited too long), bit
 * 1 WAITERS (the queue is not empty), bit 0 CLOSED.  The lock guards the
 * queue; WAITERS and STARVE change only under it.  Waiters queue in FIFO
 * order and are served in that order: only the head is woken or handed
 * permits, and it keeps its place until it has them.  Two modes:
 *   - Hand-off (FIFO, or STARVE, with WAITERS): the fast path refuses; a
 *     release adds its permits to avail under the lock, and while avail
 *     covers the head's n, takes them out for it and hands them over
 *     (NOTIFIED: they are its own before it runs).  Strict FIFO: a big
 *     request at the head blocks later small ones, a queued writer later
 *     readers.
 *   - Normal (a mutex, until it starves; as Go's sync.Mutex): a release
 *     adds its permits to avail (one CAS when nobody waits; under the lock
 *     when WAITERS) and wakes the head if it is not woken already.  The
 *     woken head, polled, takes the permits if they are still there; a
 *     newcomer may have taken them first (its fast path is one CAS on
 *     avail), and then the head stays first and waits for the next
 *     release.  Letting the releasing task take the lock again at once
 *     keeps a lock that is released and retaken in a loop from turning into
 *     a convoy, where every acquisition is a hand-off and a task switch
 *     (mutex_contended: 83 ns per acquisition with hand-off, 55 without).
 *     Once the head has waited STARVE_NS, STARVE is set (hand-off mode)
 *     until the queue empties: no waiter waits much longer than STARVE_NS
 *     plus the time the ones before it hold the lock, however many others
 *     keep acquiring.
 * A waiter needs all its n permits at once: in hand-off mode they
 * accumulate in avail for the head (nobody else may take them).
 * Cancellation: a head dropped after it was woken passes the wake to the
 * next waiter; one dropped after it was handed its permits gives them back
 * through the release path.
 * Orderings: a CAS that takes permits is acquire, one that gives them is
 * release: the last holder's writes happen before the next holder's
 * reads; the waiters' fields are under the lock. */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <wisp/sync.h>

#include "clock.h"
#include "debug.h"
#include "spin.h"
#include "util.h"
#include "waitq.h"

#define SEM_CLOSED ((size_t)1)
#define SEM_WAITERS ((size_t)2)
#define SEM_STARVE ((size_t)4)
#define SEM_FIFO ((size_t)8) /* always in hand-off mode (semaphore, rwlock) */
#define SEM_FLAGS ((size_t)15)
#define SEM_SHIFT 4
#define SEM_MAX WISP_SEMAPHORE_MAX
/* A head that waited this long gets the permits handed to it. */
#define STARVE_NS 1000000u

/* waiter.tag */
#define W_WOKEN 1u  /* queued, and woken to try again */
#define W_CLOSED 2u /* NOTIFIED by a close (else NOTIFIED: handed its permits) */

struct sem {
    _Atomic size_t avail; /* permits << 4 | FIFO | STARVE | WAITERS | CLOSED */
    size_t mode;          /* FIFO or 0, fixed at init: the fast paths' guess */
    struct spin lock;
    struct waitq q;
#if WISP_DEBUG
    _Atomic size_t held; /* acquired and not released: for the misuse check */
#endif
};

struct acquire {
    struct waiter node;   /* gen: when it queued (ns) */
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

static int sem_init(wisp_semaphore_t *ps, size_t permits, size_t mode)
{
    if (!ps || permits > SEM_MAX)
        return -EINVAL;
    struct sem *s = sem_of(ps);
    atomic_init(&s->avail, permits << SEM_SHIFT | mode);
    s->mode = mode;
    spin_init(&s->lock);
    s->q.head = s->q.tail = NULL;
#if WISP_DEBUG
    atomic_init(&s->held, 0);
#endif
    return 0;
}

int wisp_semaphore_init(wisp_semaphore_t *ps, size_t permits)
{
    return sem_init(ps, permits, SEM_FIFO);
}

void wisp_semaphore_destroy(wisp_semaphore_t *ps)
{
    if (ps)
        WISP_CHECK_USE(!sem_of(ps)->q.head, "wisp_semaphore_destroy with waiters queued");
}

/* Hand-off mode: permits go to the waiters in order, nobody barges. */
static inline bool sem_handoff(size_t a)
{
    return (a & SEM_WAITERS) && (a & (SEM_STARVE | SEM_FIFO));
}

/* Takes n permits from avail: 0, -EAGAIN, -EPIPE.  Refuses in hand-off
 * mode unless head (the head waiter, under the lock) asks. */
static int sem_take(struct sem *s, size_t n, bool head)
{
    /* No load first: guess the word (exactly n permits, no waiters), so
     * that a contended line is fetched once, for the CAS, not twice; a
     * wrong guess costs a failed CAS that returns the real word. */
    size_t a = n << SEM_SHIFT | s->mode;
    for (;;) {
        if (a & SEM_CLOSED)
            return -EPIPE;
        if ((sem_handoff(a) && !head) || (a >> SEM_SHIFT) < n)
            return -EAGAIN;
        /* acquire: pairs with the release of the CAS that put these
         * permits there (the last holder's writes). */
        if (atomic_compare_exchange_weak_explicit(&s->avail, &a, a - (n << SEM_SHIFT),
                                                  memory_order_acquire, memory_order_relaxed))
            return 0;
    }
}

/* Sets and clears flag bits (under the lock). */
static void sem_flags(struct sem *s, size_t set, size_t clear)
{
    /* relaxed: only flags change, and only under the lock, which orders
     * them for the next holder; the fast paths read them as hints a CAS
     * then confirms. */
    size_t a = atomic_load_explicit(&s->avail, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&s->avail, &a, (a | set) & ~clear,
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

/* Adds n permits (capped at the maximum); fails (false) if WAITERS is set
 * and !locked: the caller must then take the lock and serve the queue. */
static bool sem_put(struct sem *s, size_t n, bool locked)
{
    /* A guess (no permits, no waiters), as in sem_take; the CAS releases
     * (pairs with the acquire of whoever takes these permits). */
    size_t a = s->mode;
    for (;;) {
        if ((a & SEM_WAITERS) && !locked)
            return false;
        size_t have = a >> SEM_SHIFT;
        size_t next = have + n > SEM_MAX ? SEM_MAX : have + n;
        if (atomic_compare_exchange_weak_explicit(&s->avail, &a,
                                                  (next << SEM_SHIFT) | (a & SEM_FLAGS),
                                                  memory_order_release, memory_order_relaxed))
            return true;
    }
}

static inline uint64_t waited_ns(const struct waiter *w, uint64_t now)
{
    return now > w->gen ? now - w->gen : 0;
}

/* Under the lock, after permits were added or a waiter left: serves the
 * queue.  Starving: hands permits to the waiters in order while avail
 * covers the head.  Normal: wakes the head (once) if avail has permits. */
static void sem_serve_locked(struct sem *s, struct wake_list *wl)
{
    for (;;) {
        /* Room in the wake list first: a full one is woken with the lock
         * dropped, so nothing read before it is trusted after it. */
        wake_list_flush(wl, &s->lock);
        struct waiter *w = s->q.head;
        /* relaxed: under the lock (flags), a hint for the count. */
        size_t a = atomic_load_explicit(&s->avail, memory_order_relaxed);
        if (!w) {
            if (a & (SEM_WAITERS | SEM_STARVE))
                sem_flags(s, 0, SEM_WAITERS | SEM_STARVE);
            return;
        }
        if (!(a & (SEM_STARVE | SEM_FIFO)) && waited_ns(w, clock_now_ns()) >= STARVE_NS) {
            sem_flags(s, SEM_STARVE, 0);
            a |= SEM_STARVE;
        }
        if (a & (SEM_STARVE | SEM_FIFO)) {
            if (sem_take(s, w->n, true) != 0)
                return; /* not enough yet: they accumulate for it */
            waitq_notify_head(&s->q, wl, 0);
            continue;
        }
        if ((a >> SEM_SHIFT) >= w->n && !(w->tag & W_WOKEN) && w->waker.vtable) {
            w->tag |= W_WOKEN;
            wl->w[wl->n++] = w->waker;
            w->waker = WISP_WAKER_EMPTY;
        }
        return;
    }
}

static void sem_give(struct sem *s, size_t n)
{
    if (sem_put(s, n, false)) /* the fast path: nobody waits */
        return;
    struct wake_list wl;
    wake_list_init(&wl);
    spin_acquire(&s->lock);
    sem_put(s, n, true);
    sem_serve_locked(s, &wl);
    spin_release(&s->lock);
    wake_list_wake(&wl);
}

int wisp_semaphore_try_acquire(wisp_semaphore_t *ps, size_t n)
{
    if (!ps || n == 0 || n > SEM_MAX)
        return -EINVAL;
    struct sem *s = sem_of(ps);
    int r = sem_take(s, n, false);
    if (r == 0)
        held_add(s, n);
    return r;
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
    spin_acquire(&s->lock);
    /* release: as sem_put's. */
    atomic_fetch_or_explicit(&s->avail, SEM_CLOSED, memory_order_release);
    while (s->q.head) {
        wake_list_flush(&wl, &s->lock);
        if (!s->q.head)
            break;
        waitq_notify_head(&s->q, &wl, W_CLOSED);
    }
    sem_flags(s, 0, SEM_WAITERS | SEM_STARVE);
    spin_release(&s->lock);
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
    wisp_waker_drop(&f->node.waker);
    if (status == 0)
        held_add(f->sem, f->want);
    if (output)
        *output = (void *)(intptr_t)status;
    return WISP_READY;
}

wisp_poll_t wisp_acquire_poll(void *pf, wisp_context_t *cx, void **output)
{
    struct acquire *f = pf;
    uint32_t st = waiter_state(&f->node);
    if (st == WAITER_DONE) {
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
    if (st == WAITER_NONE) {
        int r = sem_take(s, f->want, false); /* the fast path: no lock */
        if (r != -EAGAIN)
            return acquire_done(f, r, output);
    }
    struct wake_list wl;
    wake_list_init(&wl);
    spin_acquire(&s->lock);
    st = waiter_state(&f->node);
    int r = 1;
    if (st == WAITER_NOTIFIED) {
        r = (f->node.tag & W_CLOSED) ? -EPIPE : 0; /* handed its permits, or closed */
    } else if (st == WAITER_NONE) {
        /* Take the permits if they came meanwhile (as the fast path would:
         * not in hand-off mode), else set WAITERS, in one CAS: a release
         * that adds permits without the lock does so by a CAS on this
         * word, so it either came first (we see its permits) or fails and
         * serves the queue under the lock, where it finds us. */
        size_t a = atomic_load_explicit(&s->avail, memory_order_relaxed);
        for (;;) {
            bool take = !(a & SEM_CLOSED) && !sem_handoff(a) && (a >> SEM_SHIFT) >= f->want;
            size_t next = take ? a - (f->want << SEM_SHIFT) : a | SEM_WAITERS;
            if (a & SEM_CLOSED) {
                r = -EPIPE;
                break;
            }
            /* acquire: as sem_take's (when taking). */
            if (atomic_compare_exchange_weak_explicit(&s->avail, &a, next, memory_order_acquire,
                                                      memory_order_relaxed)) {
                r = take ? 0 : 1;
                break;
            }
        }
        if (r == 1) {
            f->node.n = f->want;
            f->node.tag = 0;
            f->node.gen = clock_now_ns();
            waitq_push_back(&s->q, &f->node);
            /* In hand-off mode avail may hold permits already that the
             * queue before us is owed less than: serve. */
            sem_serve_locked(s, &wl);
        }
    } else { /* QUEUED: woken to try again, or still waiting */
        bool head = s->q.head == &f->node; /* only the head may take */
        r = head ? sem_take(s, f->want, true) : -EAGAIN;
        if (r == 0) {
            waitq_remove(&s->q, &f->node);
            sem_serve_locked(s, &wl); /* permits left for the next one? */
        } else {
            r = 1;
            f->node.tag &= ~W_WOKEN;
            if (head)
                sem_serve_locked(s, &wl); /* starving now?  enough meanwhile? */
        }
    }
    if (r == 1 && waiter_state(&f->node) == WAITER_QUEUED) {
        waiter_set_waker(&f->node, cx);
        spin_release(&s->lock);
        wake_list_wake(&wl);
        return WISP_PENDING;
    }
    if (r == 1) /* sem_serve_locked handed it its permits just now, or a
                 * close came while it had the lock dropped */
        r = (f->node.tag & W_CLOSED) ? -EPIPE : 0;
    spin_release(&s->lock);
    wake_list_wake(&wl);
    return acquire_done(f, r, output);
}

void wisp_acquire_drop(void *pf)
{
    struct acquire *f = pf;
    struct sem *s = f->sem;
    uint32_t st = waiter_state(&f->node);
    if (s && (st == WAITER_QUEUED || st == WAITER_NOTIFIED)) {
        struct wake_list wl;
        wake_list_init(&wl);
        spin_acquire(&s->lock);
        st = waiter_state(&f->node);
        if (st == WAITER_QUEUED) {
            waitq_remove(&s->q, &f->node); /* a wake it had goes to the next */
            sem_serve_locked(s, &wl);
        } else if (!(f->node.tag & W_CLOSED)) { /* handed its permits, unseen */
            sem_put(s, f->want, true);
            sem_serve_locked(s, &wl);
        }
        spin_release(&s->lock);
        wake_list_wake(&wl);
    }
    waiter_set_state(&f->node, WAITER_DONE);
    wisp_waker_drop(&f->node.waker);
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
    sem_init(&m->sem, 1, 0); /* normal mode: barging, hand-off when starving */
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
