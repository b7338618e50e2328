/* test_sync.c - wisp/sync.h: the atomic waker, channels (oneshot, MPSC,
 * MPMC, broadcast, watch), notify, semaphore, mutex, rwlock, barrier, wait
 * group, select and join_all.
 *
 * Most tests drive futures by hand on the test thread, with no runtime:
 * each future is polled with a context made from its own counting waker
 * (struct hand), so a test sees exactly which waiter a release woke, and in
 * which order waiters queued.  They check the contract of the header:
 * FIFO service with no barging, every drop-while-queued case (a claim, a
 * slot, a lock, permits or a notification handed to a future dropped
 * before it saw them passes on), closing, bad arguments, READY staying
 * READY.  The rest run threads or a 2-worker runtime: close racing send
 * (each message received, dropped by drop_msg or refused exactly once),
 * a signal racing the first poll of a wait for every primitive (no lost
 * wakeup), stress of every channel kind, a mutex held across yields,
 * select over 64 channels, the atomic waker's lost-wakeup race, barrier
 * generations, a wait group's last done() against the wait it releases,
 * and the last handles of both sides of a channel dropped at once (its own
 * TCase, "last_handles": run it alone under ASan with CK_FORK=no).  No test
 * asserts on timing; a lost wakeup is caught by a 10-20 s bound. */
#include "helpers.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <signal.h>
#include <sys/wait.h>

#include <wisp/config.h>
#include <wisp/sync.h>
#include <wisp/time.h>

#define MS UINT64_C(1000000)
#define MSG(v) ((void *)(uintptr_t)(v))
#define VAL(p) ((uintptr_t)(p))
#define STATUS(p) ((int)(intptr_t)(p))

/* ---- hand-driven futures: a counting waker per waiter ----------------------- */

struct hand {
    struct counting_waker c;
    wisp_waker_t w;
    wisp_context_t cx;
};

static void hand_init(struct hand *h)
{
    atomic_init(&h->c.wakes, 0);
    atomic_init(&h->c.refs, 0);
    h->w = counting_waker(&h->c);
    h->cx = wisp_context_from_waker(&h->w);
}

static void hands_init(struct hand *h, int n)
{
    for (int i = 0; i < n; i++)
        hand_init(&h[i]);
}

static long woken(struct hand *h)
{
    return atomic_load(&h->c.wakes);
}

static long refs(struct hand *h)
{
    return atomic_load(&h->c.refs);
}

/* Drops the hand's own reference: every clone a primitive took must have
 * been dropped or consumed by now (all futures dropped). */
static void hand_fini(struct hand *h)
{
    wisp_waker_drop(&h->w);
    long r = atomic_load(&h->c.refs);
    ck_assert_msg(r == 0, "%ld clone(s) of a waker still held after every future was dropped", r);
}

static void hands_fini(struct hand *h, int n)
{
    for (int i = 0; i < n; i++)
        hand_fini(&h[i]);
}

static wisp_poll_t hpoll(wisp_poll_fn fn, void *f, struct hand *h, void **out)
{
    void *o = MSG(0x5a5a5a); /* a sentinel: READY must set it */
    wisp_poll_t r = fn(f, &h->cx, &o);
    if (out)
        *out = o;
    return r;
}

#define ck_pending(fn, f, h) \
    ck_assert_msg(hpoll((fn), (f), (h), NULL) == WISP_PENDING, "%s: expected PENDING", #f)
#define ck_ready(fn, f, h, out) \
    ck_assert_msg(hpoll((fn), (f), (h), (out)) == WISP_READY, "%s: expected READY", #f)

/* ---- messages dropped by a channel ------------------------------------------- */

#define IDS 1024
static _Atomic long g_drops;
static _Atomic int g_dropped[IDS];

static void drop_id(void *m)
{
    uintptr_t v = VAL(m);
    atomic_fetch_add(&g_drops, 1);
    if (v < IDS)
        atomic_fetch_add(&g_dropped[v], 1);
}

static void drops_reset(void)
{
    atomic_store(&g_drops, 0);
    for (int i = 0; i < IDS; i++)
        atomic_store(&g_dropped[i], 0);
}

/* Reference-counted messages for broadcast and watch (clone_msg adds a
 * reference, drop_msg releases one): g_rc_live counts the objects alive. */
struct rc {
    _Atomic long refs;
    long value;
};
static _Atomic long g_rc_live;

static struct rc *rc_new(long v)
{
    struct rc *r = malloc(sizeof(*r));
    if (!r)
        abort();
    atomic_init(&r->refs, 1);
    r->value = v;
    atomic_fetch_add(&g_rc_live, 1);
    return r;
}

static void *rc_clone(void *m)
{
    atomic_fetch_add(&((struct rc *)m)->refs, 1);
    return m;
}

static void rc_drop(void *m)
{
    struct rc *r = m;
    if (!r)
        return;
    long old = atomic_fetch_sub(&r->refs, 1);
    if (old <= 0)
        abort(); /* a reference released twice */
    if (old == 1) {
        free(r);
        atomic_fetch_sub(&g_rc_live, 1);
    }
}

static long rc_val(void *m)
{
    return ((struct rc *)m)->value;
}

/* Channel kinds for loop tests. */
enum { K_MPSC = 0, K_MPMC = 1, K_UNBOUNDED = 2 };

static int chan_new(int kind, wisp_chan_tx_t **tx, wisp_chan_rx_t **rx, size_t cap,
                    wisp_drop_fn drop)
{
    switch (kind) {
    case K_MPSC:
        return wisp_mpsc_new(tx, rx, cap, drop);
    case K_MPMC:
        return wisp_mpmc_new(tx, rx, cap, drop);
    default:
        return wisp_mpsc_unbounded_new(tx, rx, drop);
    }
}

/* A future that is READY (with value) or PENDING as told, counting polls
 * and drops: a branch for select and join_all. */
struct toy {
    int ready;
    long value;
    long polls;
    _Atomic long drops;
};

static wisp_poll_t toy_poll(void *f, wisp_context_t *cx, void **out)
{
    struct toy *t = f;
    (void)cx;
    t->polls++;
    if (!t->ready)
        return WISP_PENDING;
    *out = MSG(t->value);
    return WISP_READY;
}

static void toy_drop(void *f)
{
    atomic_fetch_add(&((struct toy *)f)->drops, 1);
}

/* ==== bad arguments ========================================================= */

START_TEST(bad_arguments)
{
    void *m;
    wisp_oneshot_tx_t *otx;
    wisp_oneshot_rx_t *orx;
    ck_assert_int_eq(wisp_oneshot_new(NULL, &orx, NULL), -EINVAL);
    ck_assert_int_eq(wisp_oneshot_new(&otx, NULL, NULL), -EINVAL);
    ck_assert_int_eq(wisp_oneshot_send(NULL, MSG(1)), -EINVAL);

    wisp_chan_tx_t *tx;
    wisp_chan_rx_t *rx;
    size_t over = ((size_t)1 << 31) + 1;
    ck_assert_int_eq(wisp_mpsc_new(NULL, &rx, 4, NULL), -EINVAL);
    ck_assert_int_eq(wisp_mpsc_new(&tx, NULL, 4, NULL), -EINVAL);
    ck_assert_int_eq(wisp_mpsc_new(&tx, &rx, 0, NULL), -EINVAL);
    ck_assert_int_eq(wisp_mpsc_new(&tx, &rx, over, NULL), -EINVAL);
    ck_assert_int_eq(wisp_mpsc_new(&tx, &rx, SIZE_MAX, NULL), -EINVAL);
    ck_assert_int_eq(wisp_mpsc_unbounded_new(NULL, &rx, NULL), -EINVAL);
    ck_assert_int_eq(wisp_mpsc_unbounded_new(&tx, NULL, NULL), -EINVAL);
    ck_assert_int_eq(wisp_mpmc_new(NULL, &rx, 4, NULL), -EINVAL);
    ck_assert_int_eq(wisp_mpmc_new(&tx, NULL, 4, NULL), -EINVAL);
    ck_assert_int_eq(wisp_mpmc_new(&tx, &rx, 0, NULL), -EINVAL);
    ck_assert_int_eq(wisp_mpmc_new(&tx, &rx, over, NULL), -EINVAL);
    ck_assert_ptr_null(wisp_chan_tx_clone(NULL));
    ck_assert_ptr_null(wisp_chan_rx_clone(NULL));
    ck_assert_int_eq(wisp_chan_try_send(NULL, MSG(1)), -EINVAL);
    ck_assert_int_eq(wisp_chan_try_recv(NULL, &m), -EINVAL);
    /* an MPSC receiver is not cloned; an MPMC one is */
    ck_assert_int_eq(wisp_mpsc_new(&tx, &rx, 4, NULL), 0);
    ck_assert_ptr_null(wisp_chan_rx_clone(rx));
    wisp_chan_tx_t *tx2 = wisp_chan_tx_clone(tx);
    ck_assert_ptr_eq(tx2, tx);
    wisp_chan_tx_drop(tx2);
    wisp_chan_tx_drop(tx);
    wisp_chan_rx_drop(rx);
    ck_assert_int_eq(wisp_mpsc_unbounded_new(&tx, &rx, NULL), 0);
    ck_assert_ptr_null(wisp_chan_rx_clone(rx));
    wisp_chan_tx_drop(tx);
    wisp_chan_rx_drop(rx);
    ck_assert_int_eq(wisp_mpmc_new(&tx, &rx, 4, NULL), 0);
    wisp_chan_rx_t *rx2 = wisp_chan_rx_clone(rx);
    ck_assert_ptr_nonnull(rx2);
    wisp_chan_rx_drop(rx2);
    wisp_chan_rx_drop(rx);
    wisp_chan_tx_drop(tx);

    wisp_bcast_tx_t *btx;
    wisp_bcast_rx_t *brx;
    ck_assert_int_eq(wisp_bcast_new(NULL, &brx, 4, NULL, NULL), -EINVAL);
    ck_assert_int_eq(wisp_bcast_new(&btx, &brx, 0, NULL, NULL), -EINVAL);
    ck_assert_int_eq(wisp_bcast_new(&btx, &brx, over, NULL, NULL), -EINVAL);
    ck_assert_int_eq(wisp_bcast_new(&btx, NULL, 4, NULL, NULL), 0); /* no receiver yet: fine */
    ck_assert_int_eq(wisp_bcast_subscribe(NULL, &brx), -EINVAL);
    ck_assert_int_eq(wisp_bcast_subscribe(btx, NULL), -EINVAL);
    ck_assert_ptr_null(wisp_bcast_tx_clone(NULL));
    ck_assert_int_eq(wisp_bcast_send(NULL, MSG(1), NULL), -EINVAL);
    ck_assert_int_eq(wisp_bcast_try_recv(NULL, &m), -EINVAL);
    wisp_bcast_tx_drop(btx);

    wisp_watch_tx_t *wtx;
    wisp_watch_rx_t *wrx, *wrx2;
    ck_assert_int_eq(wisp_watch_new(NULL, &wrx, MSG(1), NULL, NULL), -EINVAL);
    ck_assert_int_eq(wisp_watch_send(NULL, MSG(1)), -EINVAL);
    ck_assert_int_eq(wisp_watch_subscribe(NULL, &wrx), -EINVAL);
    ck_assert_int_eq(wisp_watch_rx_clone(NULL, &wrx2), -EINVAL);
    ck_assert_int_eq(wisp_watch_new(&wtx, &wrx, MSG(1), NULL, NULL), 0);
    ck_assert_int_eq(wisp_watch_subscribe(wtx, NULL), -EINVAL);
    ck_assert_int_eq(wisp_watch_rx_clone(wrx, NULL), -EINVAL);
    wisp_watch_rx_drop(wrx);
    wisp_watch_tx_drop(wtx);

    wisp_semaphore_t s;
    ck_assert_int_eq(wisp_semaphore_init(NULL, 1), -EINVAL);
    ck_assert_int_eq(wisp_semaphore_init(&s, WISP_SEMAPHORE_MAX + 1), -EINVAL);
    ck_assert_int_eq(wisp_semaphore_init(&s, WISP_SEMAPHORE_MAX), 0);
    ck_assert_uint_eq(wisp_semaphore_available(&s), WISP_SEMAPHORE_MAX);
    ck_assert_int_eq(wisp_semaphore_try_acquire(&s, 0), -EINVAL);
    ck_assert_int_eq(wisp_semaphore_try_acquire(&s, WISP_SEMAPHORE_MAX + 1), -EINVAL);
    ck_assert_int_eq(wisp_semaphore_try_acquire(NULL, 1), -EINVAL);
    ck_assert_uint_eq(wisp_semaphore_available(&s), WISP_SEMAPHORE_MAX);
    struct hand h;
    hand_init(&h);
    wisp_acquire_t a;
    void *out;
    wisp_acquire_init(&a, &s, 0);
    ck_ready(wisp_acquire_poll, &a, &h, &out);
    ck_assert_int_eq(STATUS(out), -EINVAL);
    wisp_acquire_drop(&a);
    wisp_acquire_init(&a, &s, WISP_SEMAPHORE_MAX + 1);
    ck_ready(wisp_acquire_poll, &a, &h, &out);
    ck_assert_int_eq(STATUS(out), -EINVAL);
    wisp_acquire_drop(&a);
    ck_assert_uint_eq(wisp_semaphore_available(&s), WISP_SEMAPHORE_MAX);
    wisp_semaphore_destroy(&s);
    hand_fini(&h);

    ck_assert_int_eq(wisp_mutex_try_lock(NULL), -EINVAL);
    ck_assert_int_eq(wisp_rwlock_try_read(NULL), -EINVAL);
    ck_assert_int_eq(wisp_rwlock_try_write(NULL), -EINVAL);

    wisp_barrier_t b;
    ck_assert_int_eq(wisp_barrier_init(&b, 0), -EINVAL);
    ck_assert_int_eq(wisp_barrier_init(NULL, 1), -EINVAL);

    wisp_select_t sel;
    struct toy t = { .ready = 1 };
    wisp_branch_t br[2] = { { toy_poll, toy_drop, &t }, { NULL, NULL, &t } };
    ck_assert_int_eq(wisp_select_init(&sel, NULL, 2, 0), -EINVAL);
    ck_assert_int_eq(wisp_select_init(&sel, br, 2, 0), -EINVAL); /* a branch without poll */
    wisp_join_all_t j;
    void *outs[2];
    ck_assert_int_eq(wisp_join_all_init(&j, NULL, outs, 2), -EINVAL);
    ck_assert_int_eq(wisp_join_all_init(&j, br, NULL, 2), -EINVAL);
    ck_assert_int_eq(wisp_join_all_init(&j, br, outs, 2), -EINVAL);
    ck_assert_int_eq(atomic_load(&t.drops), 0); /* refused: nothing dropped */

    /* futures on NULL handles: READY at once with -EINVAL */
    hand_init(&h);
    wisp_chan_send_t cs;
    wisp_chan_send_init(&cs, NULL, MSG(1));
    ck_ready(wisp_chan_send_poll, &cs, &h, &out);
    ck_assert_int_eq(STATUS(out), -EINVAL);
    wisp_chan_send_drop(&cs);
    wisp_chan_recv_t cr;
    wisp_chan_recv_init(&cr, NULL);
    ck_ready(wisp_chan_recv_poll, &cr, &h, &out);
    ck_assert_int_eq(wisp_chan_recv_status(&cr), -EINVAL);
    wisp_chan_recv_drop(&cr);
    wisp_bcast_recv_t bf;
    wisp_bcast_recv_init(&bf, NULL);
    ck_ready(wisp_bcast_recv_poll, &bf, &h, &out);
    ck_assert_int_eq(wisp_bcast_recv_status(&bf), -EINVAL);
    wisp_bcast_recv_drop(&bf);
    wisp_acquire_init(&a, NULL, 1);
    ck_ready(wisp_acquire_poll, &a, &h, &out);
    ck_assert_int_eq(STATUS(out), -EINVAL);
    wisp_acquire_drop(&a);
    int st = 0;
    ck_assert_int_eq(wisp_oneshot_recv_poll(NULL, &h.cx, &st, &m), WISP_READY);
    ck_assert_int_eq(st, -EINVAL);
    ck_assert_int_eq(wisp_oneshot_try_recv(NULL, &m), -EINVAL);
    hand_fini(&h);
}
END_TEST

/* Zero branches: select is READY at once with winner -1; join_all READY. */
START_TEST(select_and_join_all_of_nothing)
{
    struct hand h;
    hand_init(&h);
    void *out;
    wisp_select_t sel;
    ck_assert_int_eq(wisp_select_init(&sel, NULL, 0, 0), 0);
    ck_ready(wisp_select_poll, &sel, &h, &out);
    ck_assert_int_eq(wisp_select_winner(&sel), -1);
    wisp_select_drop(&sel);
    wisp_join_all_t j;
    ck_assert_int_eq(wisp_join_all_init(&j, NULL, NULL, 0), 0);
    ck_ready(wisp_join_all_poll, &j, &h, &out);
    ck_assert_ptr_null(out);
    wisp_join_all_drop(&j);
    hand_fini(&h);
}
END_TEST

/* try_ forms on closed channels: -EPIPE (and a closed channel stays so). */
START_TEST(try_forms_on_closed_channels)
{
    drops_reset();
    void *m;
    for (int kind = 0; kind < 3; kind++) {
        wisp_chan_tx_t *tx;
        wisp_chan_rx_t *rx;
        /* the receiver gone: sends fail */
        ck_assert_int_eq(chan_new(kind, &tx, &rx, 2, drop_id), 0);
        ck_assert(!wisp_chan_is_closed(tx));
        wisp_chan_rx_drop(rx);
        ck_assert(wisp_chan_is_closed(tx));
        ck_assert_int_eq(wisp_chan_try_send(tx, MSG(1)), -EPIPE);
        wisp_chan_tx_drop(tx);
        /* every sender gone: receives fail once empty */
        ck_assert_int_eq(chan_new(kind, &tx, &rx, 2, drop_id), 0);
        ck_assert_int_eq(wisp_chan_try_recv(rx, &m), -EAGAIN);
        ck_assert_int_eq(wisp_chan_try_send(tx, MSG(2)), 0);
        wisp_chan_tx_drop(tx);
        ck_assert_int_eq(wisp_chan_try_recv(rx, &m), 0);
        ck_assert_uint_eq(VAL(m), 2);
        ck_assert_int_eq(wisp_chan_try_recv(rx, &m), -EPIPE);
        ck_assert_int_eq(wisp_chan_try_recv(rx, &m), -EPIPE);
        wisp_chan_rx_drop(rx);
        /* closed by the receiver: sends fail, what is queued is still received */
        ck_assert_int_eq(chan_new(kind, &tx, &rx, 2, drop_id), 0);
        ck_assert_int_eq(wisp_chan_try_send(tx, MSG(3)), 0);
        wisp_chan_close(rx);
        ck_assert(wisp_chan_is_closed(tx));
        ck_assert_int_eq(wisp_chan_try_send(tx, MSG(4)), -EPIPE);
        ck_assert_uint_eq(wisp_chan_len(rx), 1);
        ck_assert_int_eq(wisp_chan_try_recv(rx, &m), 0);
        ck_assert_uint_eq(VAL(m), 3);
        ck_assert_int_eq(wisp_chan_try_recv(rx, &m), -EPIPE); /* senders still alive */
        wisp_chan_close(rx);                                   /* twice: harmless */
        ck_assert_int_eq(wisp_chan_try_send(tx, MSG(5)), -EPIPE);
        wisp_chan_tx_drop(tx);
        wisp_chan_rx_drop(rx);
    }
    /* an MPMC channel stays open while one receiver is left */
    wisp_chan_tx_t *tx;
    wisp_chan_rx_t *rx;
    ck_assert_int_eq(wisp_mpmc_new(&tx, &rx, 2, drop_id), 0);
    wisp_chan_rx_t *rx2 = wisp_chan_rx_clone(rx);
    wisp_chan_rx_drop(rx);
    ck_assert(!wisp_chan_is_closed(tx));
    ck_assert_int_eq(wisp_chan_try_send(tx, MSG(6)), 0);
    wisp_chan_rx_drop(rx2);
    ck_assert(wisp_chan_is_closed(tx));
    ck_assert_int_eq(wisp_chan_try_send(tx, MSG(7)), -EPIPE);
    ck_assert_int_eq(atomic_load(&g_dropped[6]), 0); /* the channel is alive: not yet */
    wisp_chan_tx_drop(tx);
    ck_assert_int_eq(atomic_load(&g_dropped[6]), 1); /* freed with the last handle */
    ck_assert_int_eq(atomic_load(&g_drops), 1);      /* refused messages stay the caller's */

    /* oneshot */
    wisp_oneshot_tx_t *otx;
    wisp_oneshot_rx_t *orx;
    ck_assert_int_eq(wisp_oneshot_new(&otx, &orx, drop_id), 0);
    ck_assert_int_eq(wisp_oneshot_try_recv(orx, &m), -EAGAIN);
    wisp_oneshot_tx_drop(otx);
    ck_assert_int_eq(wisp_oneshot_try_recv(orx, &m), -EPIPE);
    wisp_oneshot_rx_drop(orx);

    /* broadcast: every sender gone and nothing left: -EPIPE; no receiver: -EPIPE */
    wisp_bcast_tx_t *btx;
    wisp_bcast_rx_t *brx;
    ck_assert_int_eq(wisp_bcast_new(&btx, &brx, 4, NULL, drop_id), 0);
    ck_assert_int_eq(wisp_bcast_try_recv(brx, &m), -EAGAIN);
    ck_assert_int_eq(wisp_bcast_send(btx, MSG(8), NULL), 0);
    wisp_bcast_tx_drop(btx);
    ck_assert_int_eq(wisp_bcast_try_recv(brx, &m), 0);
    ck_assert_uint_eq(VAL(m), 8);
    ck_assert_int_eq(wisp_bcast_try_recv(brx, &m), -EPIPE);
    wisp_bcast_rx_drop(brx);
    ck_assert_int_eq(wisp_bcast_new(&btx, &brx, 4, NULL, drop_id), 0);
    wisp_bcast_rx_drop(brx);
    ck_assert_int_eq(wisp_bcast_send(btx, MSG(9), NULL), -EPIPE);
    wisp_bcast_tx_drop(btx);
    ck_assert_int_eq(atomic_load(&g_dropped[9]), 0);

    /* watch: every receiver gone: -EPIPE, the value stays the caller's */
    wisp_watch_tx_t *wtx;
    wisp_watch_rx_t *wrx;
    ck_assert_int_eq(wisp_watch_new(&wtx, &wrx, MSG(10), NULL, drop_id), 0);
    wisp_watch_rx_drop(wrx);
    ck_assert_int_eq(wisp_watch_send(wtx, MSG(11)), -EPIPE);
    wisp_watch_tx_drop(wtx);
    ck_assert_int_eq(atomic_load(&g_dropped[11]), 0);
    ck_assert_int_eq(atomic_load(&g_dropped[10]), 1); /* the initial value, the channel's */

    /* a closed semaphore: waiting and later acquires fail with -EPIPE */
    wisp_semaphore_t s;
    struct hand h[2];
    hands_init(h, 2);
    wisp_acquire_t a[2];
    void *out;
    ck_assert_int_eq(wisp_semaphore_init(&s, 1), 0);
    wisp_acquire_init(&a[0], &s, 2);
    ck_pending(wisp_acquire_poll, &a[0], &h[0]);
    wisp_semaphore_close(&s);
    ck_assert_int_ge(woken(&h[0]), 1);
    ck_ready(wisp_acquire_poll, &a[0], &h[0], &out);
    ck_assert_int_eq(STATUS(out), -EPIPE);
    wisp_acquire_init(&a[1], &s, 1);
    ck_ready(wisp_acquire_poll, &a[1], &h[1], &out);
    ck_assert_int_eq(STATUS(out), -EPIPE);
    wisp_acquire_drop(&a[0]);
    wisp_acquire_drop(&a[1]);
    wisp_semaphore_destroy(&s);
    hands_fini(h, 2);
}
END_TEST

/* ==== FIFO order, no barging ============================================= */

/* K tasks queue on a held mutex one after another: each unlock wakes only
 * the next in queue order, which then gets the lock; a newcomer that locks
 * between the unlock and the woken waiter's poll (the mutex lets it:
 * wisp/sync.h) leaves the waiter first in line, woken again by the next
 * unlock; and a waiter that waited 1 ms gets the lock handed to it. */
START_TEST(mutex_waiters_lock_in_fifo_order)
{
    enum { K = 8 };
    wisp_mutex_t m;
    wisp_mutex_init(&m);
    struct hand h[K + 1];
    hands_init(h, K + 1);
    wisp_mutex_lock_t f[K + 1];
    void *out;
    ck_assert_int_eq(wisp_mutex_try_lock(&m), 0);
    uint64_t first_queued = wisp_now_ns(); /* f[0] queues after this */
    for (int i = 0; i < K; i++) {
        wisp_mutex_lock_init(&f[i], &m);
        ck_pending(wisp_mutex_lock_poll, &f[i], &h[i]);
    }
    ck_assert_int_eq(wisp_mutex_try_lock(&m), -EAGAIN);
    for (int i = 0; i < K; i++) {
        wisp_mutex_unlock(&m); /* the test's hold, then f[i-1]'s */
        ck_assert_int_eq(woken(&h[i]), 1);
        for (int j = i + 1; j <= K; j++)
            ck_assert_msg(woken(&h[j]) == 0, "unlock %d woke waiter %d too", i, j);
        if (i == 1) { /* a newcomer barges in: f[1] stays first, woken again */
            /* Unless a waiter has waited 1 ms by now (a slow or loaded
             * machine): then the lock may have been handed over already. */
            bool young = wisp_now_ns() - first_queued < 1000000;
            int r = wisp_mutex_try_lock(&m);
            if (young)
                ck_assert_int_eq(r, 0);
            if (r == 0) {
                ck_pending(wisp_mutex_lock_poll, &f[i], &h[i]);
                wisp_mutex_unlock(&m);
                ck_assert_int_eq(woken(&h[i]), 2);
                for (int j = i + 1; j <= K; j++)
                    ck_assert_msg(woken(&h[j]) == 0, "the newcomer's unlock woke waiter %d", j);
            }
        }
        if (i == 3) { /* f[3] has waited 1 ms: it gets the lock handed over */
            if (wisp_mutex_try_lock(&m) == 0) { /* not handed over yet: barge, then wait */
                ck_pending(wisp_mutex_lock_poll, &f[i], &h[i]);
                usleep(2000);
                wisp_mutex_unlock(&m);
                ck_assert_int_eq(woken(&h[i]), 2);
            }
            ck_assert_int_eq(wisp_mutex_try_lock(&m), -EAGAIN); /* starving: no barging */
        }
        if (i == K / 2) { /* a newcomer queues behind everyone */
            wisp_mutex_lock_init(&f[K], &m);
            ck_pending(wisp_mutex_lock_poll, &f[K], &h[K]);
        }
        for (int j = i + 1; j < K; j++)
            ck_pending(wisp_mutex_lock_poll, &f[j], &h[j]);
        ck_ready(wisp_mutex_lock_poll, &f[i], &h[i], &out);
        ck_assert_ptr_null(out);
        ck_ready(wisp_mutex_lock_poll, &f[i], &h[i], &out); /* READY stays READY */
        ck_assert_ptr_null(out);
        wisp_mutex_lock_drop(&f[i]); /* a completed lock future: the lock stays held */
        ck_assert_int_eq(wisp_mutex_try_lock(&m), -EAGAIN);
    }
    wisp_mutex_unlock(&m);
    ck_assert_int_eq(woken(&h[K]), 1);
    ck_ready(wisp_mutex_lock_poll, &f[K], &h[K], &out);
    wisp_mutex_lock_drop(&f[K]);
    wisp_mutex_unlock(&m);
    ck_assert_int_eq(wisp_mutex_try_lock(&m), 0); /* nobody waits: free for anyone */
    wisp_mutex_unlock(&m);
    /* an uncontended lock future is READY at its first poll */
    wisp_mutex_lock_init(&f[0], &m);
    ck_ready(wisp_mutex_lock_poll, &f[0], &h[0], &out);
    wisp_mutex_lock_drop(&f[0]);
    wisp_mutex_unlock(&m);
    wisp_mutex_destroy(&m);
    hands_fini(h, K + 1);
}
END_TEST

/* A waiter for 3 permits blocks later waiters for 1 even when 1 would fit;
 * partial grants wait at the head. */
START_TEST(semaphore_big_request_blocks_later_small_ones)
{
    wisp_semaphore_t s;
    struct hand h[3];
    hands_init(h, 3);
    wisp_acquire_t a[3];
    void *out;
    ck_assert_int_eq(wisp_semaphore_init(&s, 2), 0);
    wisp_acquire_init(&a[0], &s, 3); /* 2 there: not enough */
    ck_pending(wisp_acquire_poll, &a[0], &h[0]);
    wisp_acquire_init(&a[1], &s, 1); /* would fit, but a[0] is first */
    ck_pending(wisp_acquire_poll, &a[1], &h[1]);
    ck_assert_int_eq(wisp_semaphore_try_acquire(&s, 1), -EAGAIN);
    wisp_acquire_init(&a[2], &s, 1);
    ck_pending(wisp_acquire_poll, &a[2], &h[2]);
    wisp_semaphore_add_permits(&s, 1); /* 3 now: the big one's */
    ck_assert_int_eq(woken(&h[0]), 1);
    ck_assert_int_eq(woken(&h[1]), 0);
    ck_assert_int_eq(woken(&h[2]), 0);
    ck_assert_int_eq(wisp_semaphore_try_acquire(&s, 1), -EAGAIN);
    ck_pending(wisp_acquire_poll, &a[1], &h[1]);
    ck_ready(wisp_acquire_poll, &a[0], &h[0], &out);
    ck_assert_int_eq(STATUS(out), 0);
    ck_pending(wisp_acquire_poll, &a[1], &h[1]);
    ck_pending(wisp_acquire_poll, &a[2], &h[2]);
    wisp_semaphore_release(&s, 3); /* one each for a[1] and a[2], one left */
    ck_assert_int_eq(woken(&h[1]), 1);
    ck_assert_int_eq(woken(&h[2]), 1);
    ck_ready(wisp_acquire_poll, &a[1], &h[1], &out);
    ck_assert_int_eq(STATUS(out), 0);
    ck_ready(wisp_acquire_poll, &a[2], &h[2], &out);
    ck_assert_int_eq(STATUS(out), 0);
    ck_assert_uint_eq(wisp_semaphore_available(&s), 1);
    wisp_semaphore_release(&s, 2);
    ck_assert_uint_eq(wisp_semaphore_available(&s), 3);
    for (int i = 0; i < 3; i++)
        wisp_acquire_drop(&a[i]);

    /* none left: a waiter for 2 gets 1, waits for the other; the small one behind waits */
    ck_assert_int_eq(wisp_semaphore_try_acquire(&s, 3), 0);
    ck_assert_uint_eq(wisp_semaphore_available(&s), 0);
    wisp_acquire_init(&a[0], &s, 2);
    ck_pending(wisp_acquire_poll, &a[0], &h[0]);
    wisp_acquire_init(&a[1], &s, 1);
    ck_pending(wisp_acquire_poll, &a[1], &h[1]);
    wisp_semaphore_release(&s, 1);
    ck_assert_int_eq(woken(&h[0]), 1); /* unchanged */
    ck_assert_int_eq(woken(&h[1]), 1);
    ck_assert_int_eq(wisp_semaphore_try_acquire(&s, 1), -EAGAIN);
    ck_pending(wisp_acquire_poll, &a[0], &h[0]);
    ck_pending(wisp_acquire_poll, &a[1], &h[1]);
    wisp_semaphore_release(&s, 1);
    ck_assert_int_eq(woken(&h[0]), 2);
    ck_assert_int_eq(woken(&h[1]), 1);
    ck_ready(wisp_acquire_poll, &a[0], &h[0], &out);
    ck_assert_int_eq(STATUS(out), 0);
    ck_pending(wisp_acquire_poll, &a[1], &h[1]);
    wisp_semaphore_release(&s, 1);
    ck_assert_int_eq(woken(&h[1]), 2);
    ck_ready(wisp_acquire_poll, &a[1], &h[1], &out);
    ck_assert_int_eq(STATUS(out), 0);
    wisp_semaphore_release(&s, 3);
    ck_assert_uint_eq(wisp_semaphore_available(&s), 3);
    wisp_acquire_drop(&a[0]);
    wisp_acquire_drop(&a[1]);
    wisp_semaphore_destroy(&s);
    hands_fini(h, 3);
}
END_TEST

/* A queued writer blocks later readers; readers behind it go in together. */
START_TEST(rwlock_queued_writer_blocks_later_readers)
{
    enum { W1, R1, R2, W2, R3, N };
    wisp_rwlock_t l;
    wisp_rwlock_init(&l);
    struct hand h[N];
    hands_init(h, N);
    wisp_rwlock_lock_t f[N];
    void *out;
    ck_assert_int_eq(wisp_rwlock_try_read(&l), 0);
    ck_assert_int_eq(wisp_rwlock_try_read(&l), 0); /* two readers at once */
    ck_assert_int_eq(wisp_rwlock_try_write(&l), -EAGAIN);
    wisp_rwlock_write_init(&f[W1], &l);
    ck_pending(wisp_rwlock_lock_poll, &f[W1], &h[W1]);
    wisp_rwlock_read_init(&f[R1], &l);
    ck_pending(wisp_rwlock_lock_poll, &f[R1], &h[R1]); /* a reader behind a writer waits */
    wisp_rwlock_read_init(&f[R2], &l);
    ck_pending(wisp_rwlock_lock_poll, &f[R2], &h[R2]);
    wisp_rwlock_write_init(&f[W2], &l);
    ck_pending(wisp_rwlock_lock_poll, &f[W2], &h[W2]);
    wisp_rwlock_read_init(&f[R3], &l);
    ck_pending(wisp_rwlock_lock_poll, &f[R3], &h[R3]);
    ck_assert_int_eq(wisp_rwlock_try_read(&l), -EAGAIN);
    ck_assert_int_eq(wisp_rwlock_try_write(&l), -EAGAIN);
    wisp_rwlock_read_unlock(&l); /* one reader left */
    ck_assert_int_eq(woken(&h[W1]), 0);
    ck_pending(wisp_rwlock_lock_poll, &f[W1], &h[W1]);
    wisp_rwlock_read_unlock(&l);
    ck_assert_int_eq(woken(&h[W1]), 1);
    for (int i = R1; i < N; i++)
        ck_assert_int_eq(woken(&h[i]), 0);
    ck_assert_int_eq(wisp_rwlock_try_read(&l), -EAGAIN);
    ck_ready(wisp_rwlock_lock_poll, &f[W1], &h[W1], &out);
    ck_assert_ptr_null(out);
    for (int i = R1; i < N; i++)
        ck_pending(wisp_rwlock_lock_poll, &f[i], &h[i]);
    wisp_rwlock_write_unlock(&l); /* both readers behind W1 go in, not W2 nor R3 */
    ck_assert_int_eq(woken(&h[R1]), 1);
    ck_assert_int_eq(woken(&h[R2]), 1);
    ck_assert_int_eq(woken(&h[W2]), 0);
    ck_assert_int_eq(woken(&h[R3]), 0);
    ck_ready(wisp_rwlock_lock_poll, &f[R1], &h[R1], &out);
    ck_ready(wisp_rwlock_lock_poll, &f[R2], &h[R2], &out);
    ck_pending(wisp_rwlock_lock_poll, &f[W2], &h[W2]);
    ck_pending(wisp_rwlock_lock_poll, &f[R3], &h[R3]); /* behind W2 */
    ck_assert_int_eq(wisp_rwlock_try_read(&l), -EAGAIN);
    wisp_rwlock_read_unlock(&l);
    ck_assert_int_eq(woken(&h[W2]), 0);
    wisp_rwlock_read_unlock(&l);
    ck_assert_int_eq(woken(&h[W2]), 1);
    ck_assert_int_eq(woken(&h[R3]), 0);
    ck_ready(wisp_rwlock_lock_poll, &f[W2], &h[W2], &out);
    ck_pending(wisp_rwlock_lock_poll, &f[R3], &h[R3]);
    wisp_rwlock_write_unlock(&l);
    ck_assert_int_eq(woken(&h[R3]), 1);
    ck_ready(wisp_rwlock_lock_poll, &f[R3], &h[R3], &out);
    ck_assert_int_eq(wisp_rwlock_try_read(&l), 0); /* readers share, nobody queued */
    ck_assert_int_eq(wisp_rwlock_try_write(&l), -EAGAIN);
    wisp_rwlock_read_unlock(&l);
    wisp_rwlock_read_unlock(&l);
    ck_assert_int_eq(wisp_rwlock_try_write(&l), 0);
    ck_assert_int_eq(wisp_rwlock_try_read(&l), -EAGAIN);
    wisp_rwlock_write_unlock(&l);
    for (int i = 0; i < N; i++)
        wisp_rwlock_lock_drop(&f[i]);
    wisp_rwlock_destroy(&l);
    hands_fini(h, N);
}
END_TEST

/* Senders waiting on a full bounded channel get the freed slots in queue
 * order, and a try_send cannot take a slot while they wait (loop: MPSC,
 * MPMC). */
START_TEST(bounded_senders_served_fifo)
{
    enum { K = 5 };
    drops_reset();
    wisp_chan_tx_t *tx;
    wisp_chan_rx_t *rx;
    ck_assert_int_eq(chan_new(_i, &tx, &rx, 1, drop_id), 0);
    ck_assert_int_eq(wisp_chan_try_send(tx, MSG(100)), 0);
    ck_assert_int_eq(wisp_chan_try_send(tx, MSG(101)), -EAGAIN);
    struct hand h[K];
    hands_init(h, K);
    wisp_chan_send_t s[K];
    void *m, *out;
    for (int i = 0; i < K; i++) {
        wisp_chan_send_init(&s[i], tx, MSG(i + 1));
        ck_pending(wisp_chan_send_poll, &s[i], &h[i]);
    }
    ck_assert_uint_eq(wisp_chan_len(rx), 1);
    ck_assert_int_eq(wisp_chan_try_recv(rx, &m), 0);
    ck_assert_uint_eq(VAL(m), 100);
    for (int i = 0; i < K; i++) {
        ck_assert_msg(woken(&h[i]) >= 1, "sender %d not woken for its slot", i);
        ck_assert_int_eq(wisp_chan_try_send(tx, MSG(101)), -EAGAIN); /* s[i]'s slot */
        for (int j = i + 1; j < K; j++)
            ck_pending(wisp_chan_send_poll, &s[j], &h[j]);
        ck_ready(wisp_chan_send_poll, &s[i], &h[i], &out);
        ck_assert_int_eq(STATUS(out), 0);
        ck_ready(wisp_chan_send_poll, &s[i], &h[i], &out); /* READY stays READY */
        ck_assert_int_eq(STATUS(out), 0);
        ck_assert_int_eq(wisp_chan_try_recv(rx, &m), 0);
        ck_assert_uint_eq(VAL(m), (uintptr_t)i + 1);
    }
    ck_assert_int_eq(wisp_chan_try_recv(rx, &m), -EAGAIN);
    ck_assert_int_eq(wisp_chan_try_send(tx, MSG(7)), 0); /* nobody queued: anyone's slot */
    for (int i = 0; i < K; i++)
        wisp_chan_send_drop(&s[i]);
    wisp_chan_tx_drop(tx);
    wisp_chan_rx_drop(rx);
    ck_assert_int_eq(atomic_load(&g_dropped[7]), 1); /* queued at the free: drop_msg */
    ck_assert_int_eq(atomic_load(&g_drops), 1);
    hands_fini(h, K);
}
END_TEST

/* MPMC receivers waiting on an empty channel get messages in queue order:
 * a newcomer (a new receive, a try_recv) does not take a message meant for
 * a woken receiver that has not polled yet. */
START_TEST(mpmc_receivers_served_fifo)
{
    enum { K = 4 };
    drops_reset();
    wisp_chan_tx_t *tx;
    wisp_chan_rx_t *rx[K];
    ck_assert_int_eq(wisp_mpmc_new(&tx, &rx[0], 4, drop_id), 0);
    for (int i = 1; i < K; i++)
        rx[i] = wisp_chan_rx_clone(rx[0]);
    struct hand h[K];
    hands_init(h, K);
    wisp_chan_recv_t r[K];
    void *m, *out;
    for (int i = 0; i < K - 1; i++) {
        wisp_chan_recv_init(&r[i], rx[i]);
        ck_pending(wisp_chan_recv_poll, &r[i], &h[i]);
    }
    ck_assert_int_eq(wisp_chan_try_send(tx, MSG(1)), 0);
    ck_assert_int_ge(woken(&h[0]), 1);
    wisp_chan_recv_init(&r[K - 1], rx[K - 1]); /* a newcomer */
    ck_pending(wisp_chan_recv_poll, &r[K - 1], &h[K - 1]);
    ck_assert_int_eq(wisp_chan_try_recv(rx[K - 1], &m), -EAGAIN);
    ck_pending(wisp_chan_recv_poll, &r[1], &h[1]);
    ck_pending(wisp_chan_recv_poll, &r[2], &h[2]);
    ck_ready(wisp_chan_recv_poll, &r[0], &h[0], &out);
    ck_assert_uint_eq(VAL(out), 1);
    ck_assert_int_eq(wisp_chan_recv_status(&r[0]), 0);
    ck_assert_int_eq(wisp_chan_try_send(tx, MSG(2)), 0);
    ck_assert_int_eq(wisp_chan_try_send(tx, MSG(3)), 0);
    ck_assert_int_ge(woken(&h[1]), 1);
    ck_assert_int_ge(woken(&h[2]), 1);
    ck_assert_int_eq(wisp_chan_try_recv(rx[0], &m), -EAGAIN); /* both claimed */
    ck_pending(wisp_chan_recv_poll, &r[K - 1], &h[K - 1]);
    ck_ready(wisp_chan_recv_poll, &r[2], &h[2], &out); /* claims, not particular messages */
    ck_ready(wisp_chan_recv_poll, &r[1], &h[1], &m);
    ck_assert_msg((VAL(out) == 3 && VAL(m) == 2) || (VAL(out) == 2 && VAL(m) == 3),
                  "got %lu and %lu", (unsigned long)VAL(out), (unsigned long)VAL(m));
    ck_assert_int_eq(wisp_chan_try_send(tx, MSG(4)), 0);
    ck_assert_int_ge(woken(&h[K - 1]), 1);
    ck_ready(wisp_chan_recv_poll, &r[K - 1], &h[K - 1], &out);
    ck_assert_uint_eq(VAL(out), 4);
    for (int i = 0; i < K; i++) {
        wisp_chan_recv_drop(&r[i]);
        wisp_chan_rx_drop(rx[i]);
    }
    wisp_chan_tx_drop(tx);
    ck_assert_int_eq(atomic_load(&g_drops), 0);
    hands_fini(h, K);
}
END_TEST

/* notify_one wakes the longest waiter only; with none waiting it stores
 * one permit (not two); notify_waiters wakes the waiters of now (counted
 * from their first poll) and stores nothing. */
START_TEST(notify_one_wakes_the_longest_waiter)
{
    enum { N = 9 };
    wisp_notify_t n;
    wisp_notify_init(&n);
    struct hand h[N];
    hands_init(h, N);
    wisp_notified_t f[N];
    void *out;
    for (int i = 0; i < 3; i++) {
        wisp_notified_init(&f[i], &n);
        ck_pending(wisp_notified_poll, &f[i], &h[i]);
    }
    wisp_notify_one(&n);
    ck_assert_int_eq(woken(&h[0]), 1);
    ck_assert_int_eq(woken(&h[1]), 0);
    ck_assert_int_eq(woken(&h[2]), 0);
    ck_pending(wisp_notified_poll, &f[1], &h[1]);
    ck_pending(wisp_notified_poll, &f[2], &h[2]);
    ck_ready(wisp_notified_poll, &f[0], &h[0], &out);
    ck_assert_ptr_null(out);
    ck_ready(wisp_notified_poll, &f[0], &h[0], &out); /* READY stays READY */
    wisp_notify_one(&n);
    ck_assert_int_eq(woken(&h[1]), 1);
    ck_assert_int_eq(woken(&h[2]), 0);
    ck_ready(wisp_notified_poll, &f[1], &h[1], &out);
    ck_pending(wisp_notified_poll, &f[2], &h[2]);
    wisp_notify_one(&n);
    ck_assert_int_eq(woken(&h[2]), 1);
    ck_ready(wisp_notified_poll, &f[2], &h[2], &out);
    /* none waiting: two notify_one store one permit */
    wisp_notify_one(&n);
    wisp_notify_one(&n);
    wisp_notified_init(&f[3], &n);
    ck_ready(wisp_notified_poll, &f[3], &h[3], &out);
    wisp_notified_init(&f[4], &n);
    ck_pending(wisp_notified_poll, &f[4], &h[4]);
    wisp_notified_init(&f[5], &n);
    ck_pending(wisp_notified_poll, &f[5], &h[5]);
    wisp_notified_init(&f[6], &n); /* not polled: not waiting yet */
    wisp_notify_waiters(&n);
    ck_assert_int_eq(woken(&h[4]), 1);
    ck_assert_int_eq(woken(&h[5]), 1);
    ck_ready(wisp_notified_poll, &f[4], &h[4], &out);
    ck_ready(wisp_notified_poll, &f[5], &h[5], &out);
    ck_pending(wisp_notified_poll, &f[6], &h[6]); /* it was not waiting; nothing stored */
    wisp_notified_init(&f[7], &n);
    ck_pending(wisp_notified_poll, &f[7], &h[7]);
    wisp_notify_waiters(&n);
    ck_assert_int_eq(woken(&h[6]), 1);
    ck_assert_int_eq(woken(&h[7]), 1);
    ck_ready(wisp_notified_poll, &f[6], &h[6], &out);
    ck_ready(wisp_notified_poll, &f[7], &h[7], &out);
    wisp_notified_init(&f[8], &n);
    ck_pending(wisp_notified_poll, &f[8], &h[8]); /* notify_waiters stored nothing */
    for (int i = 0; i < N; i++)
        wisp_notified_drop(&f[i]);
    wisp_notify_destroy(&n);
    hands_fini(h, N);
}
END_TEST

/* ==== dropping a future while it waits ===================================== */

/* A receive woken for a message and dropped before it polled again took
 * nothing: MPMC passes the claim to the next receiver (woken: no lost
 * wakeup); MPSC leaves the message in the channel.  A receive dropped
 * while queued, before any message, takes nothing either. */
START_TEST(recv_dropped_after_wake_leaves_the_message)
{
    drops_reset();
    struct hand h[3];
    hands_init(h, 3);
    wisp_chan_recv_t r[3];
    void *m, *out;
    wisp_chan_tx_t *tx;
    wisp_chan_rx_t *rx, *rx2;

    ck_assert_int_eq(wisp_mpmc_new(&tx, &rx, 4, drop_id), 0);
    rx2 = wisp_chan_rx_clone(rx);
    wisp_chan_recv_init(&r[0], rx);
    ck_pending(wisp_chan_recv_poll, &r[0], &h[0]);
    wisp_chan_recv_init(&r[1], rx2);
    ck_pending(wisp_chan_recv_poll, &r[1], &h[1]);
    ck_assert_int_eq(wisp_chan_try_send(tx, MSG(5)), 0);
    ck_assert_int_ge(woken(&h[0]), 1);
    ck_assert_int_eq(woken(&h[1]), 0);
    wisp_chan_recv_drop(&r[0]); /* woken for 5, never saw it */
    ck_assert_msg(woken(&h[1]) >= 1, "the claim of a dropped receive was not passed on");
    ck_ready(wisp_chan_recv_poll, &r[1], &h[1], &out);
    ck_assert_uint_eq(VAL(out), 5);
    ck_assert_int_eq(wisp_chan_recv_status(&r[1]), 0);
    wisp_chan_recv_drop(&r[1]);
    ck_assert_int_eq(wisp_chan_try_recv(rx, &m), -EAGAIN);
    /* the last receiver woken and dropped: the message stays for a later receive */
    wisp_chan_recv_init(&r[0], rx);
    ck_pending(wisp_chan_recv_poll, &r[0], &h[0]);
    ck_assert_int_eq(wisp_chan_try_send(tx, MSG(6)), 0);
    wisp_chan_recv_drop(&r[0]);
    ck_assert_uint_eq(wisp_chan_len(rx), 1);
    ck_assert_int_eq(wisp_chan_try_recv(rx2, &m), 0);
    ck_assert_uint_eq(VAL(m), 6);
    /* dropped while queued, before any message */
    wisp_chan_recv_init(&r[0], rx);
    ck_pending(wisp_chan_recv_poll, &r[0], &h[0]);
    wisp_chan_recv_init(&r[1], rx2);
    ck_pending(wisp_chan_recv_poll, &r[1], &h[1]);
    wisp_chan_recv_drop(&r[0]);
    ck_assert_int_eq(wisp_chan_try_send(tx, MSG(7)), 0);
    ck_assert_int_ge(woken(&h[1]), 2);
    ck_ready(wisp_chan_recv_poll, &r[1], &h[1], &out);
    ck_assert_uint_eq(VAL(out), 7);
    wisp_chan_recv_drop(&r[1]);
    /* two claims, the first dropped: both messages still reach the others */
    wisp_chan_recv_init(&r[0], rx);
    ck_pending(wisp_chan_recv_poll, &r[0], &h[0]);
    wisp_chan_recv_init(&r[1], rx2);
    ck_pending(wisp_chan_recv_poll, &r[1], &h[1]);
    wisp_chan_recv_init(&r[2], rx);
    ck_pending(wisp_chan_recv_poll, &r[2], &h[2]);
    ck_assert_int_eq(wisp_chan_try_send(tx, MSG(8)), 0);
    ck_assert_int_eq(wisp_chan_try_send(tx, MSG(9)), 0);
    wisp_chan_recv_drop(&r[0]);
    ck_assert_int_ge(woken(&h[2]), 1);
    ck_ready(wisp_chan_recv_poll, &r[1], &h[1], &out);
    ck_ready(wisp_chan_recv_poll, &r[2], &h[2], &m);
    ck_assert_uint_eq(VAL(out) + VAL(m), 17);
    wisp_chan_recv_drop(&r[1]);
    wisp_chan_recv_drop(&r[2]);
    wisp_chan_rx_drop(rx2);
    wisp_chan_rx_drop(rx);
    wisp_chan_tx_drop(tx);

    for (int kind = K_MPSC; kind <= K_UNBOUNDED; kind += K_UNBOUNDED - K_MPSC) {
        ck_assert_int_eq(chan_new(kind, &tx, &rx, 4, drop_id), 0);
        wisp_chan_recv_init(&r[0], rx);
        ck_pending(wisp_chan_recv_poll, &r[0], &h[0]);
        ck_assert_int_eq(wisp_chan_try_send(tx, MSG(10)), 0);
        ck_assert_int_ge(woken(&h[0]), 1);
        wisp_chan_recv_drop(&r[0]);
        ck_assert_uint_eq(wisp_chan_len(rx), 1);
        wisp_chan_recv_init(&r[0], rx);
        ck_ready(wisp_chan_recv_poll, &r[0], &h[0], &out);
        ck_assert_uint_eq(VAL(out), 10);
        wisp_chan_recv_drop(&r[0]);
        wisp_chan_rx_drop(rx);
        wisp_chan_tx_drop(tx);
    }
    ck_assert_int_eq(atomic_load(&g_drops), 0);
    hands_fini(h, 3);
}
END_TEST

/* A send dropped while queued did not send; one dropped after a slot was
 * granted to it did not send either, and the slot goes to the next sender
 * (loop: MPSC, MPMC). */
START_TEST(send_dropped_while_waiting_did_not_send)
{
    enum { N = 6 };
    drops_reset();
    wisp_chan_tx_t *tx;
    wisp_chan_rx_t *rx;
    ck_assert_int_eq(chan_new(_i, &tx, &rx, 1, drop_id), 0);
    struct hand h[N];
    hands_init(h, N);
    wisp_chan_send_t s[N];
    void *m, *out;
    ck_assert_int_eq(wisp_chan_try_send(tx, MSG(100)), 0);
    for (int i = 1; i <= 3; i++) {
        wisp_chan_send_init(&s[i], tx, MSG(i));
        ck_pending(wisp_chan_send_poll, &s[i], &h[i]);
    }
    wisp_chan_send_drop(&s[2]); /* queued, no slot yet */
    ck_assert_int_eq(wisp_chan_try_recv(rx, &m), 0);
    ck_assert_uint_eq(VAL(m), 100);
    ck_assert_int_ge(woken(&h[1]), 1);
    ck_ready(wisp_chan_send_poll, &s[1], &h[1], &out);
    ck_assert_int_eq(STATUS(out), 0);
    ck_assert_int_eq(wisp_chan_try_recv(rx, &m), 0);
    ck_assert_uint_eq(VAL(m), 1);
    ck_assert_int_ge(woken(&h[3]), 1); /* s[2] is gone: s[3] is next */
    ck_ready(wisp_chan_send_poll, &s[3], &h[3], &out);
    ck_assert_int_eq(STATUS(out), 0);
    ck_assert_int_eq(wisp_chan_try_recv(rx, &m), 0);
    ck_assert_uint_eq(VAL(m), 3);
    ck_assert_int_eq(wisp_chan_try_recv(rx, &m), -EAGAIN);

    /* a slot granted to s[4], which is dropped before it polls: s[5] gets it */
    ck_assert_int_eq(wisp_chan_try_send(tx, MSG(200)), 0);
    for (int i = 4; i <= 5; i++) {
        wisp_chan_send_init(&s[i], tx, MSG(i));
        ck_pending(wisp_chan_send_poll, &s[i], &h[i]);
    }
    ck_assert_int_eq(wisp_chan_try_recv(rx, &m), 0);
    ck_assert_uint_eq(VAL(m), 200);
    ck_assert_int_ge(woken(&h[4]), 1);
    ck_assert_int_eq(wisp_chan_try_send(tx, MSG(201)), -EAGAIN);
    wisp_chan_send_drop(&s[4]);
    ck_assert_msg(woken(&h[5]) >= 1, "the slot of a dropped send was not passed on");
    ck_assert_int_eq(wisp_chan_try_send(tx, MSG(201)), -EAGAIN); /* s[5]'s now */
    ck_ready(wisp_chan_send_poll, &s[5], &h[5], &out);
    ck_assert_int_eq(STATUS(out), 0);
    ck_assert_int_eq(wisp_chan_try_recv(rx, &m), 0);
    ck_assert_uint_eq(VAL(m), 5); /* 4 was never sent */
    ck_assert_int_eq(wisp_chan_try_recv(rx, &m), -EAGAIN);

    /* the last sender granted a slot and dropped: the slot is free again */
    ck_assert_int_eq(wisp_chan_try_send(tx, MSG(300)), 0);
    wisp_chan_send_init(&s[0], tx, MSG(301));
    ck_pending(wisp_chan_send_poll, &s[0], &h[0]);
    ck_assert_int_eq(wisp_chan_try_recv(rx, &m), 0);
    wisp_chan_send_drop(&s[0]);
    ck_assert_int_eq(wisp_chan_try_recv(rx, &m), -EAGAIN);
    ck_assert_int_eq(wisp_chan_try_send(tx, MSG(302)), 0);
    ck_assert_int_eq(wisp_chan_try_recv(rx, &m), 0);
    ck_assert_uint_eq(VAL(m), 302);

    for (int i = 1; i < N; i++)
        if (i != 2 && i != 4)
            wisp_chan_send_drop(&s[i]);
    wisp_chan_tx_drop(tx);
    wisp_chan_rx_drop(rx);
    ck_assert_int_eq(atomic_load(&g_drops), 0); /* the unsent ones are ours, not dropped */
    hands_fini(h, N);
}
END_TEST

/* A lock, permits or a read/write lock handed to a waiter that is dropped
 * before it polled again pass to the next waiter (woken: no lost wakeup). */
START_TEST(lock_dropped_after_handoff_passes_it_on)
{
    struct hand h[4];
    hands_init(h, 4);
    void *out;

    /* mutex */
    wisp_mutex_t m;
    wisp_mutex_init(&m);
    wisp_mutex_lock_t l[4];
    ck_assert_int_eq(wisp_mutex_try_lock(&m), 0);
    for (int i = 0; i < 4; i++) {
        wisp_mutex_lock_init(&l[i], &m);
        ck_pending(wisp_mutex_lock_poll, &l[i], &h[i]);
    }
    wisp_mutex_unlock(&m);
    ck_assert_int_eq(woken(&h[0]), 1);
    wisp_mutex_lock_drop(&l[0]); /* woken for the lock, never looked */
    ck_assert_int_eq(woken(&h[1]), 1);
    ck_assert_int_eq(woken(&h[2]), 0);
    ck_ready(wisp_mutex_lock_poll, &l[1], &h[1], &out);
    wisp_mutex_lock_drop(&l[2]); /* queued, never handed anything */
    wisp_mutex_unlock(&m);
    ck_assert_int_eq(woken(&h[2]), 0);
    ck_assert_int_eq(woken(&h[3]), 1);
    ck_ready(wisp_mutex_lock_poll, &l[3], &h[3], &out);
    wisp_mutex_unlock(&m);
    ck_assert_int_eq(wisp_mutex_try_lock(&m), 0);
    wisp_mutex_unlock(&m);
    wisp_mutex_lock_drop(&l[1]);
    wisp_mutex_lock_drop(&l[3]);
    wisp_mutex_destroy(&m);

    /* semaphore: all of it handed over, then dropped */
    wisp_semaphore_t s;
    wisp_acquire_t a[4];
    ck_assert_int_eq(wisp_semaphore_init(&s, 0), 0);
    wisp_acquire_init(&a[0], &s, 2);
    ck_pending(wisp_acquire_poll, &a[0], &h[0]);
    wisp_acquire_init(&a[1], &s, 1);
    ck_pending(wisp_acquire_poll, &a[1], &h[1]);
    wisp_semaphore_add_permits(&s, 2);
    ck_assert_int_eq(woken(&h[0]), 2);
    ck_assert_int_eq(woken(&h[1]), 1);
    wisp_acquire_drop(&a[0]);
    ck_assert_int_eq(woken(&h[1]), 2);
    ck_ready(wisp_acquire_poll, &a[1], &h[1], &out);
    ck_assert_int_eq(STATUS(out), 0);
    ck_assert_uint_eq(wisp_semaphore_available(&s), 1); /* the other one came back */
    wisp_semaphore_release(&s, 1);
    ck_assert_uint_eq(wisp_semaphore_available(&s), 2);
    wisp_acquire_drop(&a[1]);
    /* part of it there (1 of 3), kept for the head, then dropped: that part goes on */
    ck_assert_int_eq(wisp_semaphore_try_acquire(&s, 1), 0);
    wisp_acquire_init(&a[2], &s, 3);
    ck_pending(wisp_acquire_poll, &a[2], &h[2]); /* the 1 left is kept for it, waits for 2 */
    ck_assert_uint_eq(wisp_semaphore_available(&s), 1);
    ck_assert_int_eq(wisp_semaphore_try_acquire(&s, 1), -EAGAIN); /* not for a newcomer */
    wisp_acquire_init(&a[3], &s, 1);
    ck_pending(wisp_acquire_poll, &a[3], &h[3]);
    wisp_acquire_drop(&a[2]);
    ck_assert_int_eq(woken(&h[3]), 2);
    ck_ready(wisp_acquire_poll, &a[3], &h[3], &out);
    ck_assert_int_eq(STATUS(out), 0);
    ck_assert_uint_eq(wisp_semaphore_available(&s), 0);
    wisp_semaphore_release(&s, 2);
    ck_assert_uint_eq(wisp_semaphore_available(&s), 2);
    wisp_acquire_drop(&a[3]);
    wisp_semaphore_destroy(&s);

    /* rwlock: a writer handed the lock and dropped; readers behind it go in */
    wisp_rwlock_t rw;
    wisp_rwlock_init(&rw);
    wisp_rwlock_lock_t f[3];
    ck_assert_int_eq(wisp_rwlock_try_read(&rw), 0);
    wisp_rwlock_write_init(&f[0], &rw);
    ck_pending(wisp_rwlock_lock_poll, &f[0], &h[0]);
    wisp_rwlock_read_init(&f[1], &rw);
    ck_pending(wisp_rwlock_lock_poll, &f[1], &h[1]);
    wisp_rwlock_read_init(&f[2], &rw);
    ck_pending(wisp_rwlock_lock_poll, &f[2], &h[2]);
    long w0 = woken(&h[0]), w1 = woken(&h[1]), w2 = woken(&h[2]);
    wisp_rwlock_read_unlock(&rw);
    ck_assert_int_eq(woken(&h[0]), w0 + 1);
    wisp_rwlock_lock_drop(&f[0]);
    ck_assert_int_eq(woken(&h[1]), w1 + 1);
    ck_assert_int_eq(woken(&h[2]), w2 + 1);
    ck_ready(wisp_rwlock_lock_poll, &f[1], &h[1], &out);
    ck_ready(wisp_rwlock_lock_poll, &f[2], &h[2], &out);
    ck_assert_int_eq(wisp_rwlock_try_write(&rw), -EAGAIN);
    wisp_rwlock_read_unlock(&rw);
    wisp_rwlock_read_unlock(&rw);
    wisp_rwlock_lock_drop(&f[1]);
    wisp_rwlock_lock_drop(&f[2]);
    /* a writer queued behind a writer, dropped: the reader behind waits for the unlock */
    ck_assert_int_eq(wisp_rwlock_try_write(&rw), 0);
    wisp_rwlock_write_init(&f[0], &rw);
    ck_pending(wisp_rwlock_lock_poll, &f[0], &h[0]);
    wisp_rwlock_read_init(&f[1], &rw);
    ck_pending(wisp_rwlock_lock_poll, &f[1], &h[1]);
    w1 = woken(&h[1]);
    wisp_rwlock_lock_drop(&f[0]);
    ck_pending(wisp_rwlock_lock_poll, &f[1], &h[1]);
    wisp_rwlock_write_unlock(&rw);
    ck_assert_int_eq(woken(&h[1]), w1 + 1);
    ck_ready(wisp_rwlock_lock_poll, &f[1], &h[1], &out);
    wisp_rwlock_read_unlock(&rw);
    ck_assert_int_eq(wisp_rwlock_try_write(&rw), 0);
    wisp_rwlock_write_unlock(&rw);
    wisp_rwlock_lock_drop(&f[1]);
    wisp_rwlock_destroy(&rw);
    hands_fini(h, 4);
}
END_TEST

/* A notify_one handed to a waiter dropped before it saw it goes to the
 * next waiter, or is stored when there is none. */
START_TEST(notified_dropped_after_notify_passes_it_on)
{
    struct hand h[5];
    hands_init(h, 5);
    wisp_notified_t f[5];
    void *out;
    wisp_notify_t n;
    wisp_notify_init(&n);
    wisp_notified_init(&f[0], &n);
    ck_pending(wisp_notified_poll, &f[0], &h[0]);
    wisp_notified_init(&f[1], &n);
    ck_pending(wisp_notified_poll, &f[1], &h[1]);
    wisp_notify_one(&n);
    ck_assert_int_eq(woken(&h[0]), 1);
    ck_assert_int_eq(woken(&h[1]), 0);
    wisp_notified_drop(&f[0]);
    ck_assert_int_eq(woken(&h[1]), 1);
    ck_ready(wisp_notified_poll, &f[1], &h[1], &out);
    wisp_notified_drop(&f[1]);
    /* no one next: stored for the next wait */
    wisp_notified_init(&f[2], &n);
    ck_pending(wisp_notified_poll, &f[2], &h[2]);
    wisp_notify_one(&n);
    wisp_notified_drop(&f[2]);
    wisp_notified_init(&f[3], &n);
    ck_ready(wisp_notified_poll, &f[3], &h[3], &out);
    wisp_notified_init(&f[4], &n);
    ck_pending(wisp_notified_poll, &f[4], &h[4]); /* only the one */
    /* a waiter dropped while queued is no longer counted */
    wisp_notified_drop(&f[4]);
    wisp_notify_one(&n);
    wisp_notified_init(&f[4], &n);
    ck_ready(wisp_notified_poll, &f[4], &h[4], &out);
    for (int i = 2; i < 5; i++)
        wisp_notified_drop(&f[i]);
    wisp_notify_destroy(&n);
    hands_fini(h, 5);
}
END_TEST

/* ==== oneshot ================================================================ */

START_TEST(oneshot_send_receive_and_close)
{
    drops_reset();
    struct hand h;
    hand_init(&h);
    wisp_oneshot_tx_t *tx;
    wisp_oneshot_rx_t *rx;
    int st;
    void *m;

    /* a waiting receiver is woken by the send */
    ck_assert_int_eq(wisp_oneshot_new(&tx, &rx, drop_id), 0);
    ck_assert_int_eq(wisp_oneshot_recv_poll(rx, &h.cx, &st, &m), WISP_PENDING);
    ck_assert(!wisp_oneshot_tx_is_closed(tx));
    ck_assert_int_eq(wisp_oneshot_send(tx, MSG(1)), 0);
    ck_assert_int_eq(woken(&h), 1);
    st = 99;
    ck_assert_int_eq(wisp_oneshot_recv_poll(rx, &h.cx, &st, &m), WISP_READY);
    ck_assert_int_eq(st, 0);
    ck_assert_uint_eq(VAL(m), 1);
    wisp_oneshot_rx_drop(rx);

    /* the sender dropped without sending: the waiting receiver gets -EPIPE */
    ck_assert_int_eq(wisp_oneshot_new(&tx, &rx, drop_id), 0);
    ck_assert_int_eq(wisp_oneshot_recv_poll(rx, &h.cx, &st, &m), WISP_PENDING);
    wisp_oneshot_tx_drop(tx);
    ck_assert_int_eq(woken(&h), 2);
    ck_assert_int_eq(wisp_oneshot_recv_poll(rx, &h.cx, &st, &m), WISP_READY);
    ck_assert_int_eq(st, -EPIPE);
    ck_assert_int_eq(wisp_oneshot_try_recv(rx, &m), -EPIPE);
    wisp_oneshot_rx_drop(rx);

    /* the receiver dropped first: the send fails, the message is the caller's */
    ck_assert_int_eq(wisp_oneshot_new(&tx, &rx, drop_id), 0);
    wisp_oneshot_rx_drop(rx);
    ck_assert(wisp_oneshot_tx_is_closed(tx));
    ck_assert_int_eq(wisp_oneshot_send(tx, MSG(2)), -EPIPE); /* tx gone too */
    ck_assert_int_eq(atomic_load(&g_dropped[2]), 0);

    /* rx_close: a message sent before is still received */
    ck_assert_int_eq(wisp_oneshot_new(&tx, &rx, drop_id), 0);
    ck_assert_int_eq(wisp_oneshot_send(tx, MSG(3)), 0);
    wisp_oneshot_rx_close(rx);
    ck_assert_int_eq(wisp_oneshot_try_recv(rx, &m), 0);
    ck_assert_uint_eq(VAL(m), 3);
    wisp_oneshot_rx_drop(rx);
    /* rx_close first: a later send fails */
    ck_assert_int_eq(wisp_oneshot_new(&tx, &rx, drop_id), 0);
    ck_assert_int_eq(wisp_oneshot_tx_poll_closed(tx, &h.cx), WISP_PENDING);
    wisp_oneshot_rx_close(rx);
    ck_assert_int_eq(woken(&h), 3);
    ck_assert(wisp_oneshot_tx_is_closed(tx));
    ck_assert_int_eq(wisp_oneshot_tx_poll_closed(tx, &h.cx), WISP_READY);
    ck_assert_int_eq(wisp_oneshot_send(tx, MSG(4)), -EPIPE);
    ck_assert_int_eq(wisp_oneshot_recv_poll(rx, &h.cx, &st, &m), WISP_READY);
    ck_assert_int_eq(st, -EPIPE);
    wisp_oneshot_rx_drop(rx);
    ck_assert_int_eq(atomic_load(&g_dropped[4]), 0);

    /* sent and never received: dropped with the receiver */
    ck_assert_int_eq(wisp_oneshot_new(&tx, &rx, drop_id), 0);
    ck_assert_int_eq(wisp_oneshot_send(tx, MSG(5)), 0);
    ck_assert_int_eq(atomic_load(&g_dropped[5]), 0);
    wisp_oneshot_rx_drop(rx);
    ck_assert_int_eq(atomic_load(&g_dropped[5]), 1);
    /* received with msg NULL: not taken, so dropped with drop_msg */
    ck_assert_int_eq(wisp_oneshot_new(&tx, &rx, drop_id), 0);
    ck_assert_int_eq(wisp_oneshot_send(tx, MSG(6)), 0);
    ck_assert_int_eq(wisp_oneshot_recv_poll(rx, &h.cx, &st, NULL), WISP_READY);
    ck_assert_int_eq(st, 0);
    wisp_oneshot_rx_drop(rx);
    ck_assert_int_eq(atomic_load(&g_dropped[6]), 1);
    /* a receiver that stops polling loses nothing: the message waits in the channel */
    ck_assert_int_eq(wisp_oneshot_new(&tx, &rx, drop_id), 0);
    ck_assert_int_eq(wisp_oneshot_recv_poll(rx, &h.cx, &st, &m), WISP_PENDING);
    ck_assert_int_eq(wisp_oneshot_send(tx, MSG(7)), 0);
    ck_assert_int_eq(wisp_oneshot_try_recv(rx, &m), 0);
    ck_assert_uint_eq(VAL(m), 7);
    wisp_oneshot_rx_drop(rx);
    /* poll_closed wakes on the receiver's drop */
    ck_assert_int_eq(wisp_oneshot_new(&tx, &rx, drop_id), 0);
    long w = woken(&h);
    ck_assert_int_eq(wisp_oneshot_tx_poll_closed(tx, &h.cx), WISP_PENDING);
    wisp_oneshot_rx_drop(rx);
    ck_assert_int_eq(woken(&h), w + 1);
    ck_assert_int_eq(wisp_oneshot_tx_poll_closed(tx, &h.cx), WISP_READY);
    wisp_oneshot_tx_drop(tx);

    ck_assert_int_eq(atomic_load(&g_drops), 2);
    hand_fini(&h);
}
END_TEST

/* ==== closing while others wait ============================================= */

/* The last sender dropped while the receiver waits: it gets what is queued,
 * then -EPIPE; a waiting receiver is woken (loop: MPSC, MPMC, unbounded). */
START_TEST(last_sender_dropped_while_receiver_waits)
{
    drops_reset();
    struct hand h;
    hand_init(&h);
    wisp_chan_recv_t r;
    void *m, *out;
    wisp_chan_tx_t *tx;
    wisp_chan_rx_t *rx;
    ck_assert_int_eq(chan_new(_i, &tx, &rx, 4, drop_id), 0);
    wisp_chan_tx_t *tx2 = wisp_chan_tx_clone(tx);
    wisp_chan_recv_init(&r, rx);
    ck_pending(wisp_chan_recv_poll, &r, &h);
    wisp_chan_tx_drop(tx); /* tx2 is still there */
    ck_pending(wisp_chan_recv_poll, &r, &h);
    ck_assert_int_eq(wisp_chan_try_send(tx2, MSG(1)), 0);
    ck_assert_int_ge(woken(&h), 1);
    ck_ready(wisp_chan_recv_poll, &r, &h, &out);
    ck_assert_uint_eq(VAL(out), 1);
    wisp_chan_recv_drop(&r);
    ck_assert_int_eq(wisp_chan_try_send(tx2, MSG(2)), 0);
    ck_assert_int_eq(wisp_chan_try_send(tx2, MSG(3)), 0);
    wisp_chan_tx_drop(tx2);
    for (uintptr_t want = 2; want <= 3; want++) {
        wisp_chan_recv_init(&r, rx);
        ck_ready(wisp_chan_recv_poll, &r, &h, &out);
        ck_assert_int_eq(wisp_chan_recv_status(&r), 0);
        ck_assert_uint_eq(VAL(out), want);
        wisp_chan_recv_drop(&r);
    }
    wisp_chan_recv_init(&r, rx);
    ck_ready(wisp_chan_recv_poll, &r, &h, &out);
    ck_assert_int_eq(wisp_chan_recv_status(&r), -EPIPE);
    ck_assert_ptr_null(out);
    ck_ready(wisp_chan_recv_poll, &r, &h, &out); /* READY stays READY */
    ck_assert_int_eq(wisp_chan_recv_status(&r), -EPIPE);
    wisp_chan_recv_drop(&r);
    ck_assert_int_eq(wisp_chan_try_recv(rx, &m), -EPIPE);
    wisp_chan_rx_drop(rx);
    /* waiting on an empty channel when the last sender goes */
    ck_assert_int_eq(chan_new(_i, &tx, &rx, 4, drop_id), 0);
    wisp_chan_recv_init(&r, rx);
    ck_pending(wisp_chan_recv_poll, &r, &h);
    long w = woken(&h);
    wisp_chan_tx_drop(tx);
    ck_assert_int_eq(woken(&h), w + 1);
    ck_ready(wisp_chan_recv_poll, &r, &h, &out);
    ck_assert_int_eq(wisp_chan_recv_status(&r), -EPIPE);
    wisp_chan_recv_drop(&r);
    wisp_chan_rx_drop(rx);
    ck_assert_int_eq(atomic_load(&g_drops), 0);
    hand_fini(&h);
}
END_TEST

/* The last receiver dropped while senders wait: they are woken with -EPIPE
 * and their messages stay theirs; the queued message is dropped when the
 * channel is freed (loop: MPSC, MPMC). */
START_TEST(receiver_dropped_while_senders_wait)
{
    drops_reset();
    struct hand h[3];
    hands_init(h, 3);
    wisp_chan_send_t s[3];
    void *out;
    wisp_chan_tx_t *tx;
    wisp_chan_rx_t *rx, *rx2 = NULL;
    ck_assert_int_eq(chan_new(_i, &tx, &rx, 1, drop_id), 0);
    if (_i == K_MPMC)
        rx2 = wisp_chan_rx_clone(rx);
    ck_assert_int_eq(wisp_chan_try_send(tx, MSG(1)), 0);
    for (int i = 0; i < 2; i++) {
        wisp_chan_send_init(&s[i], tx, MSG(i + 2));
        ck_pending(wisp_chan_send_poll, &s[i], &h[i]);
    }
    wisp_chan_rx_drop(rx);
    if (rx2) { /* one receiver left: still open */
        ck_assert(!wisp_chan_is_closed(tx));
        ck_pending(wisp_chan_send_poll, &s[0], &h[0]);
        wisp_chan_rx_drop(rx2);
    }
    ck_assert_int_ge(woken(&h[0]), 1);
    ck_assert_int_ge(woken(&h[1]), 1);
    for (int i = 0; i < 2; i++) {
        ck_ready(wisp_chan_send_poll, &s[i], &h[i], &out);
        ck_assert_int_eq(STATUS(out), -EPIPE);
        wisp_chan_send_drop(&s[i]);
    }
    ck_assert(wisp_chan_is_closed(tx));
    ck_assert_int_eq(wisp_chan_try_send(tx, MSG(4)), -EPIPE);
    wisp_chan_send_init(&s[2], tx, MSG(5));
    ck_ready(wisp_chan_send_poll, &s[2], &h[2], &out);
    ck_assert_int_eq(STATUS(out), -EPIPE);
    wisp_chan_send_drop(&s[2]);
    ck_assert_int_eq(atomic_load(&g_drops), 0);
    wisp_chan_tx_drop(tx);
    ck_assert_int_eq(atomic_load(&g_dropped[1]), 1);
    ck_assert_int_eq(atomic_load(&g_drops), 1);
    hands_fini(h, 3);
}
END_TEST

/* wisp_chan_close: waiting senders get -EPIPE, a waiting receiver too once
 * the queue is empty; what was queued is still received (loop: MPSC, MPMC,
 * unbounded). */
START_TEST(chan_close_wakes_waiters_keeps_messages)
{
    drops_reset();
    struct hand h[3];
    hands_init(h, 3);
    void *m, *out;
    wisp_chan_tx_t *tx;
    wisp_chan_rx_t *rx;
    ck_assert_int_eq(chan_new(_i, &tx, &rx, 1, drop_id), 0);
    ck_assert_int_eq(wisp_chan_try_send(tx, MSG(1)), 0);
    wisp_chan_send_t s;
    wisp_chan_send_init(&s, tx, MSG(2));
    if (_i == K_UNBOUNDED) {
        ck_ready(wisp_chan_send_poll, &s, &h[0], &out); /* never waits */
        ck_assert_int_eq(STATUS(out), 0);
    } else {
        ck_pending(wisp_chan_send_poll, &s, &h[0]);
    }
    wisp_chan_close(rx);
    ck_assert(wisp_chan_is_closed(tx));
    ck_assert_int_eq(wisp_chan_try_send(tx, MSG(3)), -EPIPE);
    if (_i != K_UNBOUNDED) {
        ck_assert_int_ge(woken(&h[0]), 1);
        ck_ready(wisp_chan_send_poll, &s, &h[0], &out);
        ck_assert_int_eq(STATUS(out), -EPIPE);
    }
    wisp_chan_send_drop(&s);
    ck_assert_int_eq(wisp_chan_try_recv(rx, &m), 0);
    ck_assert_uint_eq(VAL(m), 1);
    if (_i == K_UNBOUNDED) {
        ck_assert_int_eq(wisp_chan_try_recv(rx, &m), 0);
        ck_assert_uint_eq(VAL(m), 2);
    }
    wisp_chan_recv_t r;
    wisp_chan_recv_init(&r, rx);
    ck_ready(wisp_chan_recv_poll, &r, &h[1], &out);
    ck_assert_int_eq(wisp_chan_recv_status(&r), -EPIPE);
    wisp_chan_recv_drop(&r);
    wisp_chan_tx_drop(tx);
    wisp_chan_rx_drop(rx);
    /* a receiver waiting on an empty channel when it is closed */
    ck_assert_int_eq(chan_new(_i, &tx, &rx, 1, drop_id), 0);
    wisp_chan_recv_init(&r, rx);
    ck_pending(wisp_chan_recv_poll, &r, &h[2]);
    wisp_chan_close(rx);
    ck_assert_int_ge(woken(&h[2]), 1);
    ck_ready(wisp_chan_recv_poll, &r, &h[2], &out);
    ck_assert_int_eq(wisp_chan_recv_status(&r), -EPIPE);
    wisp_chan_recv_drop(&r);
    wisp_chan_rx_drop(rx);
    wisp_chan_tx_drop(tx);
    ck_assert_int_eq(atomic_load(&g_drops), 0);
    hands_fini(h, 3);
}
END_TEST

/* An unbounded channel never makes a sender wait; many messages queued are
 * received in order, and those left are dropped with the channel. */
START_TEST(unbounded_grows_and_keeps_order)
{
    drops_reset();
    struct hand h;
    hand_init(&h);
    wisp_chan_tx_t *tx;
    wisp_chan_rx_t *rx;
    void *m, *out;
    ck_assert_int_eq(wisp_mpsc_unbounded_new(&tx, &rx, drop_id), 0);
    long n = 100000;
    for (long i = 1; i <= n; i++) {
        if (i % 2) {
            ck_assert_int_eq(wisp_chan_try_send(tx, MSG(IDS + i)), 0);
        } else {
            wisp_chan_send_t s;
            wisp_chan_send_init(&s, tx, MSG(IDS + i));
            ck_ready(wisp_chan_send_poll, &s, &h, &out);
            ck_assert_int_eq(STATUS(out), 0);
            wisp_chan_send_drop(&s);
        }
    }
    ck_assert_uint_eq(wisp_chan_len(rx), (size_t)n);
    for (long i = 1; i <= n - 10; i++) {
        ck_assert_int_eq(wisp_chan_try_recv(rx, &m), 0);
        if (VAL(m) != (uintptr_t)(IDS + i))
            ck_abort_msg("message %ld came as %lu", i, (unsigned long)(VAL(m) - IDS));
    }
    wisp_chan_tx_drop(tx);
    wisp_chan_rx_drop(rx);
    ck_assert_int_eq(atomic_load(&g_drops), 10);
    hand_fini(&h);
}
END_TEST

/* ==== close racing send, from threads ======================================= */

/* Each message is a heap object with an id; its fate is recorded exactly
 * once: received, dropped by the channel (drop_msg), or refused (the send
 * failed: the sender frees it).  A second fate is a double delivery or a
 * double free; none is a leak (and ASan sees both). */
enum { FATE_NONE, FATE_RECEIVED, FATE_DROPPED, FATE_REFUSED };
static _Atomic int *g_fate;
static long g_fate_n;
static struct failure g_fail;

struct hmsg {
    long id;
};

static void fate(long id, int how)
{
    if (id < 0 || id >= g_fate_n) {
        fail_later(&g_fail, "message id %ld out of range", id);
        return;
    }
    int old = atomic_exchange(&g_fate[id], how);
    if (old != FATE_NONE)
        fail_later(&g_fail, "message %ld: fate %d after fate %d", id, how, old);
}

static void hmsg_drop(void *m)
{
    struct hmsg *h = m;
    fate(h->id, FATE_DROPPED);
    free(h);
}

static struct hmsg *hmsg_new(long id)
{
    struct hmsg *h = malloc(sizeof(*h));
    if (!h)
        abort();
    h->id = id;
    return h;
}

static void fates_reset(long n)
{
    for (long i = 0; i < n; i++)
        atomic_store(&g_fate[i], FATE_NONE);
    g_fate_n = n;
}

static void fates_check(long n, const char *what, long round)
{
    for (long i = 0; i < n; i++) {
        int f = atomic_load(&g_fate[i]);
        if (f == FATE_NONE)
            ck_abort_msg("%s round %ld: message %ld lost (never received, dropped nor refused)",
                         what, round, i);
    }
    check_no_failure(&g_fail);
}

struct race {
    wisp_chan_tx_t *tx;
    wisp_chan_rx_t *rx;
    long n;
    long stop_after; /* the receiver closes (or drops) after this many */
    int drop_rx;     /* 1: drop the receiver; 0: wisp_chan_close, then drain */
    uint64_t seed;
    _Atomic int go;
};

static void *race_sender(void *arg)
{
    struct race *r = arg;
    uint64_t rng = r->seed | 1;
    bool refused = false;
    while (!atomic_load(&r->go))
        ;
    for (long i = 0; i < r->n; i++) {
        struct hmsg *m = hmsg_new(i);
        int st = -EAGAIN;
        if (rng_next(&rng) % 3 == 0)
            st = wisp_chan_try_send(r->tx, m);
        if (st == -EAGAIN) {
            wisp_chan_send_t f;
            void *out = MSG(1);
            wisp_chan_send_init(&f, r->tx, m);
            if (wisp_block_on(NULL, wisp_chan_send_poll, &f, &out) != 0)
                fail_later(&g_fail, "block_on(send) failed");
            wisp_chan_send_drop(&f);
            st = STATUS(out);
        }
        if (st == 0) {
            if (refused)
                fail_later(&g_fail, "message %ld sent after an earlier send got -EPIPE", i);
            continue;
        }
        if (st != -EPIPE)
            fail_later(&g_fail, "send of %ld: status %d", i, st);
        refused = true;
        fate(i, FATE_REFUSED);
        free(m);
    }
    wisp_chan_tx_drop(r->tx);
    return NULL;
}

static void *race_receiver(void *arg)
{
    struct race *r = arg;
    long got = 0;
    bool closed = false;
    while (!atomic_load(&r->go))
        ;
    for (;;) {
        if (!closed && got == r->stop_after) {
            if (r->drop_rx) {
                wisp_chan_rx_drop(r->rx);
                return NULL;
            }
            wisp_chan_close(r->rx);
            closed = true;
        }
        wisp_chan_recv_t f;
        void *out = NULL;
        wisp_chan_recv_init(&f, r->rx);
        if (wisp_block_on(NULL, wisp_chan_recv_poll, &f, &out) != 0)
            fail_later(&g_fail, "block_on(recv) failed");
        int st = wisp_chan_recv_status(&f);
        wisp_chan_recv_drop(&f);
        if (st == -EPIPE)
            break;
        if (st != 0 || !out) {
            fail_later(&g_fail, "recv: status %d, message %p", st, out);
            break;
        }
        fate(((struct hmsg *)out)->id, FATE_RECEIVED);
        free(out);
        got++;
    }
    if (!closed && got < r->stop_after && got != r->n)
        fail_later(&g_fail, "receiver got -EPIPE after %ld of %ld messages", got, r->n);
    wisp_chan_rx_drop(r->rx);
    return NULL;
}

/* A sender thread sends n messages (waiting sends through wisp_block_on
 * with no runtime, some try_sends) while a receiver thread receives a
 * random number, then closes (and drains) or drops the receiver.  Every
 * kind of channel, many rounds. */
START_TEST(close_races_send_each_message_once)
{
    enum { N = 64 };
    _Atomic int fates[N];
    g_fate = fates;
    memset(&g_fail, 0, sizeof(g_fail));
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    long rounds = stress(1500);
    for (long round = 0; round < rounds; round++) {
        fates_reset(N);
        struct race r = { .n = N };
        int kind = (int)(round % 3);
        size_t cap = 1 + rng_next(&rng) % 8;
        ck_assert_int_eq(chan_new(kind, &r.tx, &r.rx, cap, hmsg_drop), 0);
        r.stop_after = (long)(rng_next(&rng) % (N + 1));
        r.drop_rx = (int)(rng_next(&rng) % 2);
        r.seed = rng_next(&rng);
        atomic_init(&r.go, 0);
        pthread_t a, b;
        ck_assert_int_eq(pthread_create(&a, NULL, race_sender, &r), 0);
        ck_assert_int_eq(pthread_create(&b, NULL, race_receiver, &r), 0);
        atomic_store(&r.go, 1);
        pthread_join(a, NULL);
        pthread_join(b, NULL);
        /* both handles gone: the channel was freed, what it held dropped */
        fates_check(N, "close race", round);
    }
    g_fate = NULL;
}
END_TEST

/* The same with a oneshot: the send races the receiver's close or drop. */
struct os_race {
    wisp_oneshot_tx_t *tx;
    wisp_oneshot_rx_t *rx;
    int how;
    _Atomic int go;
};

static void *os_race_sender(void *arg)
{
    struct os_race *r = arg;
    while (!atomic_load(&r->go))
        ;
    struct hmsg *m = hmsg_new(0);
    int st = wisp_oneshot_send(r->tx, m);
    if (st == -EPIPE) {
        fate(0, FATE_REFUSED);
        free(m);
    } else if (st != 0) {
        fail_later(&g_fail, "oneshot send: %d", st);
    }
    return NULL;
}

static void *os_race_receiver(void *arg)
{
    struct os_race *r = arg;
    while (!atomic_load(&r->go))
        ;
    void *m = NULL;
    int st = 0;
    switch (r->how) {
    case 0: /* drop at once */
        break;
    case 1: /* close, then take what came before the close */
        wisp_oneshot_rx_close(r->rx);
        st = wisp_oneshot_try_recv(r->rx, &m);
        break;
    case 2: /* try once */
        st = wisp_oneshot_try_recv(r->rx, &m);
        break;
    default: { /* wait for it */
        wisp_context_t cx;
        wisp_waker_t w = wisp_waker_noop();
        cx = wisp_context_from_waker(&w);
        while (wisp_oneshot_recv_poll(r->rx, &cx, &st, &m) == WISP_PENDING)
            sched_yield();
        if (st != 0)
            fail_later(&g_fail, "oneshot recv: %d", st);
        break;
    }
    }
    if (r->how && st == 0) {
        fate(((struct hmsg *)m)->id, FATE_RECEIVED);
        free(m);
    } else if (r->how && st != -EAGAIN && st != -EPIPE) {
        fail_later(&g_fail, "oneshot try_recv: %d", st);
    }
    wisp_oneshot_rx_drop(r->rx);
    return NULL;
}

START_TEST(oneshot_send_races_receiver_drop)
{
    _Atomic int fates[1];
    g_fate = fates;
    memset(&g_fail, 0, sizeof(g_fail));
    long rounds = stress(4000);
    for (long round = 0; round < rounds; round++) {
        fates_reset(1);
        struct os_race r = { .how = (int)(round % 4) };
        atomic_init(&r.go, 0);
        ck_assert_int_eq(wisp_oneshot_new(&r.tx, &r.rx, hmsg_drop), 0);
        pthread_t a, b;
        ck_assert_int_eq(pthread_create(&a, NULL, os_race_sender, &r), 0);
        ck_assert_int_eq(pthread_create(&b, NULL, os_race_receiver, &r), 0);
        atomic_store(&r.go, 1);
        pthread_join(a, NULL);
        pthread_join(b, NULL);
        fates_check(1, "oneshot race", round);
    }
    g_fate = NULL;
}
END_TEST

/* ==== stress: producers and consumers on a runtime ========================== */

struct cstress {
    long producers, per;
    _Atomic unsigned char *seen;
    long *last;  /* the one MPSC consumer: the last sequence number per producer */
    bool fifo;
    _Atomic long received;
    struct failure fail;
};

struct producer {
    struct cstress *s;
    wisp_chan_tx_t *tx;
    long id, next;
    bool sending;
    wisp_chan_send_t send;
};

static wisp_poll_t producer_poll(void *f, wisp_context_t *cx, void **out)
{
    struct producer *p = f;
    int budget = 64;
    while (p->next < p->s->per) {
        if (!p->sending) {
            wisp_chan_send_init(&p->send, p->tx, MSG(p->id * p->s->per + p->next + 1));
            p->sending = true;
        }
        void *st;
        if (wisp_chan_send_poll(&p->send, cx, &st) == WISP_PENDING)
            return WISP_PENDING;
        wisp_chan_send_drop(&p->send);
        p->sending = false;
        if (STATUS(st) != 0) {
            fail_later(&p->s->fail, "producer %ld: send status %d", p->id, STATUS(st));
            break;
        }
        p->next++;
        if (--budget == 0)
            return wisp_yield(cx);
    }
    wisp_chan_tx_drop(p->tx);
    p->tx = NULL;
    *out = NULL;
    return WISP_READY;
}

static void producer_drop(void *f)
{
    struct producer *p = f;
    if (p->sending)
        wisp_chan_send_drop(&p->send);
    if (p->tx)
        wisp_chan_tx_drop(p->tx);
}

struct consumer {
    struct cstress *s;
    wisp_chan_rx_t *rx;
    bool receiving;
    wisp_chan_recv_t recv;
};

static void cstress_record(struct cstress *s, uintptr_t v)
{
    long total = s->producers * s->per;
    if (v == 0 || v > (uintptr_t)total) {
        fail_later(&s->fail, "received a message %lu that was never sent", (unsigned long)v);
        return;
    }
    long idx = (long)v - 1, p = idx / s->per, seq = idx % s->per;
    if (atomic_fetch_add(&s->seen[idx], 1) != 0)
        fail_later(&s->fail, "message %ld of producer %ld received twice", seq, p);
    if (s->fifo) {
        if (seq != s->last[p] + 1)
            fail_later(&s->fail, "producer %ld: message %ld after %ld", p, seq, s->last[p]);
        s->last[p] = seq;
    }
    atomic_fetch_add(&s->received, 1);
}

static wisp_poll_t consumer_poll(void *f, wisp_context_t *cx, void **out)
{
    struct consumer *c = f;
    int budget = 64;
    for (;;) {
        if (!c->receiving) {
            wisp_chan_recv_init(&c->recv, c->rx);
            c->receiving = true;
        }
        void *m;
        if (wisp_chan_recv_poll(&c->recv, cx, &m) == WISP_PENDING)
            return WISP_PENDING;
        int st = wisp_chan_recv_status(&c->recv);
        wisp_chan_recv_drop(&c->recv);
        c->receiving = false;
        if (st == -EPIPE)
            break;
        if (st != 0) {
            fail_later(&c->s->fail, "recv status %d", st);
            break;
        }
        cstress_record(c->s, VAL(m));
        if (--budget == 0)
            return wisp_yield(cx);
    }
    wisp_chan_rx_drop(c->rx);
    c->rx = NULL;
    *out = NULL;
    return WISP_READY;
}

static void consumer_drop(void *f)
{
    struct consumer *c = f;
    if (c->receiving)
        wisp_chan_recv_drop(&c->recv);
    if (c->rx)
        wisp_chan_rx_drop(c->rx);
}

static void chan_stress(int kind, size_t cap, long producers, long consumers, long per)
{
    drops_reset();
    wisp_runtime_t *rt = rt_new(2);
    struct cstress s = { .producers = producers, .per = per, .fifo = consumers == 1 };
    long total = producers * per;
    s.seen = calloc((size_t)total, 1);
    s.last = malloc((size_t)producers * sizeof(long));
    ck_assert_ptr_nonnull(s.seen);
    for (long p = 0; p < producers; p++)
        s.last[p] = -1;
    wisp_chan_tx_t *tx;
    wisp_chan_rx_t *rx;
    ck_assert_int_eq(chan_new(kind, &tx, &rx, cap, drop_id), 0);
    wisp_join_t **j = calloc((size_t)(producers + consumers), sizeof(*j));
    for (long c = 0; c < consumers; c++) {
        struct consumer co = { .s = &s, .rx = kind == K_MPMC ? wisp_chan_rx_clone(rx) : rx };
        ck_assert_ptr_nonnull(co.rx);
        ck_assert_int_eq(wisp_spawn(rt, consumer_poll, &co, sizeof(co), consumer_drop, &j[c]), 0);
    }
    if (kind == K_MPMC)
        wisp_chan_rx_drop(rx);
    for (long p = 0; p < producers; p++) {
        struct producer pr = { .s = &s, .tx = wisp_chan_tx_clone(tx), .id = p };
        ck_assert_int_eq(
            wisp_spawn(rt, producer_poll, &pr, sizeof(pr), producer_drop, &j[consumers + p]), 0);
    }
    wisp_chan_tx_drop(tx);
    for (long i = 0; i < producers + consumers; i++)
        ck_assert_int_eq(wisp_join(j[i], NULL), 0);
    check_no_failure(&s.fail);
    ck_assert_int_eq(atomic_load(&s.received), total);
    for (long i = 0; i < total; i++)
        if (atomic_load(&s.seen[i]) != 1)
            ck_abort_msg("message %ld of producer %ld received %d times", i % per, i / per,
                         (int)atomic_load(&s.seen[i]));
    ck_assert_int_eq(atomic_load(&g_drops), 0);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
    free(j);
    free(s.seen);
    free(s.last);
}

/* 8 producers and 8 consumers on an MPMC channel of capacity 4, then 64
 * (loop index), 2 workers: every message received exactly once. */
START_TEST(mpmc_8x8_every_message_once)
{
    size_t caps[] = { 4, 64, 1 };
    chan_stress(K_MPMC, caps[_i], 8, 8, stress(20000));
}
END_TEST

/* 8 producers, 1 consumer: also each producer's messages in order (loop:
 * capacity 16, capacity 1, unbounded). */
START_TEST(mpsc_8x1_fifo_per_producer)
{
    int kinds[] = { K_MPSC, K_MPSC, K_UNBOUNDED };
    size_t caps[] = { 16, 1, 0 };
    chan_stress(kinds[_i], caps[_i], 8, 1, stress(20000));
}
END_TEST

/* ---- broadcast: every receiver sees every message in order, or -EOVERFLOW
 * with the count it missed, the two adding up ---- */

struct bshared {
    long n;
    _Atomic long overflows;
    struct failure fail;
};

struct bsender {
    struct bshared *s;
    wisp_bcast_tx_t *tx;
    long next;
};

static wisp_poll_t bsender_poll(void *f, wisp_context_t *cx, void **out)
{
    struct bsender *b = f;
    while (b->next <= b->s->n) {
        struct rc *m = rc_new(b->next);
        size_t nrx = 0;
        int r = wisp_bcast_send(b->tx, m, &nrx);
        if (r != 0 || nrx != 4) {
            fail_later(&b->s->fail, "bcast_send %ld: %d, %zu receivers", b->next, r, nrx);
            if (r != 0)
                rc_drop(m);
        }
        if (b->next++ % 16 == 0)
            return wisp_yield(cx); /* let the receivers keep up, mostly */
    }
    wisp_bcast_tx_drop(b->tx);
    b->tx = NULL;
    *out = NULL;
    return WISP_READY;
}

static void bsender_drop(void *f)
{
    struct bsender *b = f;
    if (b->tx)
        wisp_bcast_tx_drop(b->tx);
}

struct breceiver {
    struct bshared *s;
    wisp_bcast_rx_t *rx;
    bool receiving;
    wisp_bcast_recv_t recv;
    long last, got, missed, pending_missed;
};

static wisp_poll_t breceiver_poll(void *f, wisp_context_t *cx, void **out)
{
    struct breceiver *b = f;
    int budget = 32;
    for (;;) {
        if (!b->receiving) {
            wisp_bcast_recv_init(&b->recv, b->rx);
            b->receiving = true;
        }
        void *m = NULL;
        if (wisp_bcast_recv_poll(&b->recv, cx, &m) == WISP_PENDING)
            return WISP_PENDING;
        int st = wisp_bcast_recv_status(&b->recv);
        wisp_bcast_recv_drop(&b->recv);
        b->receiving = false;
        if (st == 0) {
            long v = rc_val(m);
            rc_drop(m);
            if (v != b->last + 1 + b->pending_missed)
                fail_later(&b->s->fail, "received %ld after %ld (missed %ld)", v, b->last,
                           b->pending_missed);
            b->last = v;
            b->pending_missed = 0;
            b->got++;
        } else if (st == -EOVERFLOW) {
            uint64_t missed = wisp_bcast_recv_missed(b->rx);
            if (missed == 0)
                fail_later(&b->s->fail, "-EOVERFLOW with 0 missed");
            b->pending_missed += (long)missed;
            b->missed += (long)missed;
            atomic_fetch_add(&b->s->overflows, 1);
        } else if (st == -EPIPE) {
            if (b->last != b->s->n || b->got + b->missed != b->s->n)
                fail_later(&b->s->fail, "-EPIPE: last %ld, got %ld + missed %ld of %ld", b->last,
                           b->got, b->missed, b->s->n);
            wisp_bcast_rx_drop(b->rx);
            b->rx = NULL;
            *out = NULL;
            return WISP_READY;
        } else {
            fail_later(&b->s->fail, "bcast recv status %d", st);
        }
        if (--budget == 0)
            return wisp_yield(cx);
    }
}

static void breceiver_drop(void *f)
{
    struct breceiver *b = f;
    if (b->receiving)
        wisp_bcast_recv_drop(&b->recv);
    if (b->rx)
        wisp_bcast_rx_drop(b->rx);
}

START_TEST(bcast_receivers_see_every_message_or_count_it)
{
    enum { R = 4 };
    atomic_store(&g_rc_live, 0);
    wisp_runtime_t *rt = rt_new(2);
    struct bshared s = { .n = stress(50000) };
    wisp_bcast_tx_t *tx;
    wisp_bcast_rx_t *rx[R];
    size_t caps[] = { 16, 1024 };
    ck_assert_int_eq(wisp_bcast_new(&tx, &rx[0], caps[_i], rc_clone, rc_drop), 0);
    for (int i = 1; i < R; i++)
        ck_assert_int_eq(wisp_bcast_subscribe(tx, &rx[i]), 0);
    wisp_join_t *j[R + 1];
    for (int i = 0; i < R; i++) {
        struct breceiver b = { .s = &s, .rx = rx[i] };
        ck_assert_int_eq(wisp_spawn(rt, breceiver_poll, &b, sizeof(b), breceiver_drop, &j[i]), 0);
    }
    struct bsender bs = { .s = &s, .tx = tx, .next = 1 };
    ck_assert_int_eq(wisp_spawn(rt, bsender_poll, &bs, sizeof(bs), bsender_drop, &j[R]), 0);
    for (int i = 0; i <= R; i++)
        ck_assert_int_eq(wisp_join(j[i], NULL), 0);
    check_no_failure(&s.fail);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
    ck_assert_int_eq(atomic_load(&g_rc_live), 0); /* every clone and copy dropped */
    fprintf(stderr, "bcast capacity %zu: %ld overflows\n", caps[_i], atomic_load(&s.overflows));
}
END_TEST

/* Deterministic: subscribe sees later messages only; falling behind gives
 * -EOVERFLOW once with the count missed; a waiting receive is woken. */
START_TEST(bcast_lag_and_subscribe)
{
    atomic_store(&g_rc_live, 0);
    struct hand h[2];
    hands_init(h, 2);
    wisp_bcast_tx_t *tx;
    wisp_bcast_rx_t *rx1, *rx2;
    void *m, *out;
    size_t nrx;
    ck_assert_int_eq(wisp_bcast_new(&tx, &rx1, 2, rc_clone, rc_drop), 0);
    ck_assert_int_eq(wisp_bcast_send(tx, rc_new(1), &nrx), 0);
    ck_assert_uint_eq(nrx, 1);
    ck_assert_int_eq(wisp_bcast_subscribe(tx, &rx2), 0);
    ck_assert_int_eq(wisp_bcast_send(tx, rc_new(2), &nrx), 0);
    ck_assert_uint_eq(nrx, 2);
    for (long v = 1; v <= 2; v++) {
        ck_assert_int_eq(wisp_bcast_try_recv(rx1, &m), 0);
        ck_assert_int_eq(rc_val(m), v);
        rc_drop(m);
    }
    ck_assert_int_eq(wisp_bcast_try_recv(rx1, &m), -EAGAIN);
    ck_assert_int_eq(wisp_bcast_try_recv(rx2, &m), 0);
    ck_assert_int_eq(rc_val(m), 2);
    rc_drop(m);
    ck_assert_int_eq(wisp_bcast_try_recv(rx2, &m), -EAGAIN);
    /* 4 more into a capacity of 2: 3 and 4 are gone */
    for (long v = 3; v <= 6; v++)
        ck_assert_int_eq(wisp_bcast_send(tx, rc_new(v), NULL), 0);
    ck_assert_int_eq(atomic_load(&g_rc_live), 2); /* the overwritten ones were dropped */
    wisp_bcast_rx_t *rxs[2] = { rx1, rx2 };
    for (int r = 0; r < 2; r++) {
        ck_assert_int_eq(wisp_bcast_try_recv(rxs[r], &m), -EOVERFLOW);
        ck_assert_uint_eq(wisp_bcast_recv_missed(rxs[r]), 2);
        for (long v = 5; v <= 6; v++) {
            ck_assert_int_eq(wisp_bcast_try_recv(rxs[r], &m), 0);
            ck_assert_int_eq(rc_val(m), v);
            rc_drop(m);
        }
        ck_assert_int_eq(wisp_bcast_try_recv(rxs[r], &m), -EAGAIN);
    }
    /* the receive future: woken by a send; READY at once when something is there */
    wisp_bcast_recv_t f[2];
    wisp_bcast_recv_init(&f[0], rx1);
    ck_pending(wisp_bcast_recv_poll, &f[0], &h[0]);
    ck_assert_int_eq(wisp_bcast_send(tx, rc_new(7), NULL), 0);
    ck_assert_int_ge(woken(&h[0]), 1);
    ck_ready(wisp_bcast_recv_poll, &f[0], &h[0], &out);
    ck_assert_int_eq(wisp_bcast_recv_status(&f[0]), 0);
    ck_assert_int_eq(rc_val(out), 7);
    rc_drop(out);
    wisp_bcast_recv_drop(&f[0]);
    /* a receive dropped before READY took nothing */
    wisp_bcast_recv_init(&f[1], rx2);
    ck_assert_int_eq(wisp_bcast_try_recv(rx2, &m), 0);
    rc_drop(m);
    ck_pending(wisp_bcast_recv_poll, &f[1], &h[1]);
    ck_assert_int_eq(wisp_bcast_send(tx, rc_new(8), NULL), 0);
    wisp_bcast_recv_drop(&f[1]);
    ck_assert_int_eq(wisp_bcast_try_recv(rx2, &m), 0);
    ck_assert_int_eq(rc_val(m), 8);
    rc_drop(m);
    /* a receiver dropped; the senders dropped: the rest, then -EPIPE */
    wisp_bcast_rx_drop(rx2);
    wisp_bcast_tx_t *tx2 = wisp_bcast_tx_clone(tx);
    ck_assert_ptr_nonnull(tx2);
    wisp_bcast_tx_drop(tx);
    ck_assert_int_eq(wisp_bcast_send(tx2, rc_new(9), &nrx), 0);
    ck_assert_uint_eq(nrx, 1);
    wisp_bcast_recv_init(&f[0], rx1);
    ck_ready(wisp_bcast_recv_poll, &f[0], &h[0], &out);
    ck_assert_int_eq(rc_val(out), 8);
    rc_drop(out);
    wisp_bcast_recv_drop(&f[0]);
    wisp_bcast_recv_init(&f[0], rx1);
    ck_ready(wisp_bcast_recv_poll, &f[0], &h[0], &out);
    ck_assert_int_eq(rc_val(out), 9);
    rc_drop(out);
    wisp_bcast_recv_drop(&f[0]);
    wisp_bcast_recv_init(&f[0], rx1);
    ck_pending(wisp_bcast_recv_poll, &f[0], &h[0]);
    long w = woken(&h[0]);
    wisp_bcast_tx_drop(tx2);
    ck_assert_int_eq(woken(&h[0]), w + 1);
    ck_ready(wisp_bcast_recv_poll, &f[0], &h[0], &out);
    ck_assert_int_eq(wisp_bcast_recv_status(&f[0]), -EPIPE);
    wisp_bcast_recv_drop(&f[0]);
    ck_assert_int_eq(wisp_bcast_try_recv(rx1, &m), -EPIPE);
    wisp_bcast_rx_drop(rx1);
    ck_assert_int_eq(atomic_load(&g_rc_live), 0);
    hands_fini(h, 2);
}
END_TEST

/* ---- watch ---- */

START_TEST(watch_changes_and_borrow)
{
    atomic_store(&g_rc_live, 0);
    struct hand h[2];
    hands_init(h, 2);
    wisp_watch_tx_t *tx;
    wisp_watch_rx_t *rx, *rx2, *rx3;
    wisp_watch_changed_t f[2];
    void *m, *out;
    ck_assert_int_eq(wisp_watch_new(&tx, &rx, rc_new(0), rc_clone, rc_drop), 0);
    m = wisp_watch_borrow(rx);
    ck_assert_int_eq(rc_val(m), 0);
    rc_drop(m);
    ck_assert(!wisp_watch_has_changed(rx));
    wisp_watch_changed_init(&f[0], rx);
    ck_pending(wisp_watch_changed_poll, &f[0], &h[0]);
    ck_assert_int_eq(wisp_watch_send(tx, rc_new(1)), 0);
    ck_assert_int_eq(atomic_load(&g_rc_live), 1); /* 0 was dropped */
    ck_assert_int_eq(woken(&h[0]), 1);
    ck_assert(wisp_watch_has_changed(rx));
    ck_ready(wisp_watch_changed_poll, &f[0], &h[0], &out);
    ck_assert_int_eq(STATUS(out), 0);
    wisp_watch_changed_drop(&f[0]);
    m = wisp_watch_borrow(rx);
    ck_assert_int_eq(rc_val(m), 1);
    rc_drop(m);
    ck_assert(!wisp_watch_has_changed(rx));
    /* values replaced before the receiver looked are skipped */
    ck_assert_int_eq(wisp_watch_send(tx, rc_new(2)), 0);
    ck_assert_int_eq(wisp_watch_send(tx, rc_new(3)), 0);
    wisp_watch_changed_init(&f[0], rx);
    ck_ready(wisp_watch_changed_poll, &f[0], &h[0], &out); /* changed already */
    wisp_watch_changed_drop(&f[0]);
    m = wisp_watch_borrow(rx);
    ck_assert_int_eq(rc_val(m), 3);
    rc_drop(m);
    /* a clone has seen what rx has */
    ck_assert_int_eq(wisp_watch_rx_clone(rx, &rx2), 0);
    ck_assert(!wisp_watch_has_changed(rx2));
    wisp_watch_changed_init(&f[0], rx);
    ck_pending(wisp_watch_changed_poll, &f[0], &h[0]);
    wisp_watch_changed_init(&f[1], rx2);
    ck_pending(wisp_watch_changed_poll, &f[1], &h[1]);
    /* cancellation consumes nothing */
    wisp_watch_changed_drop(&f[0]);
    ck_assert_int_eq(wisp_watch_send(tx, rc_new(4)), 0);
    ck_assert_int_ge(woken(&h[1]), 1);
    ck_assert(wisp_watch_has_changed(rx));
    ck_ready(wisp_watch_changed_poll, &f[1], &h[1], &out);
    ck_assert_int_eq(STATUS(out), 0);
    wisp_watch_changed_drop(&f[1]);
    wisp_watch_changed_init(&f[0], rx);
    ck_ready(wisp_watch_changed_poll, &f[0], &h[0], &out);
    wisp_watch_changed_drop(&f[0]);
    ck_assert_int_eq(wisp_watch_subscribe(tx, &rx3), 0);
    m = wisp_watch_borrow(rx3);
    ck_assert_int_eq(rc_val(m), 4);
    rc_drop(m);
    m = wisp_watch_borrow(rx);
    rc_drop(m);
    m = wisp_watch_borrow(rx2);
    rc_drop(m);
    /* the sender dropped: waiting receivers get -EPIPE; the value stays */
    wisp_watch_changed_init(&f[0], rx);
    ck_pending(wisp_watch_changed_poll, &f[0], &h[0]);
    long w = woken(&h[0]);
    wisp_watch_tx_drop(tx);
    ck_assert_int_eq(woken(&h[0]), w + 1);
    ck_ready(wisp_watch_changed_poll, &f[0], &h[0], &out);
    ck_assert_int_eq(STATUS(out), -EPIPE);
    wisp_watch_changed_drop(&f[0]);
    wisp_watch_changed_init(&f[1], rx2);
    ck_ready(wisp_watch_changed_poll, &f[1], &h[1], &out);
    ck_assert_int_eq(STATUS(out), -EPIPE);
    wisp_watch_changed_drop(&f[1]);
    m = wisp_watch_borrow(rx3);
    ck_assert_int_eq(rc_val(m), 4);
    rc_drop(m);
    wisp_watch_rx_drop(rx);
    wisp_watch_rx_drop(rx2);
    ck_assert_int_eq(atomic_load(&g_rc_live), 1);
    wisp_watch_rx_drop(rx3);
    ck_assert_int_eq(atomic_load(&g_rc_live), 0);
    hands_fini(h, 2);
}
END_TEST

struct wshared {
    long n;
    struct failure fail;
    _Atomic long finished;
};

struct wsender {
    struct wshared *s;
    wisp_watch_tx_t *tx;
    long next;
};

static wisp_poll_t wsender_poll(void *f, wisp_context_t *cx, void **out)
{
    struct wsender *w = f;
    while (w->next <= w->s->n) {
        struct rc *m = rc_new(w->next);
        if (wisp_watch_send(w->tx, m) != 0) {
            fail_later(&w->s->fail, "watch_send %ld refused", w->next);
            rc_drop(m);
        }
        if (w->next++ % 8 == 0)
            return wisp_yield(cx);
    }
    wisp_watch_tx_drop(w->tx);
    w->tx = NULL;
    *out = NULL;
    return WISP_READY;
}

static void wsender_drop(void *f)
{
    struct wsender *w = f;
    if (w->tx)
        wisp_watch_tx_drop(w->tx);
}

struct wreceiver {
    struct wshared *s;
    wisp_watch_rx_t *rx;
    bool waiting;
    wisp_watch_changed_t changed;
    long last, seen;
};

static wisp_poll_t wreceiver_poll(void *f, wisp_context_t *cx, void **out)
{
    struct wreceiver *w = f;
    for (;;) {
        if (!w->waiting) {
            wisp_watch_changed_init(&w->changed, w->rx);
            w->waiting = true;
        }
        void *st;
        if (wisp_watch_changed_poll(&w->changed, cx, &st) == WISP_PENDING)
            return WISP_PENDING;
        wisp_watch_changed_drop(&w->changed);
        w->waiting = false;
        void *m = wisp_watch_borrow(w->rx);
        long v = rc_val(m);
        rc_drop(m);
        if (STATUS(st) == 0) {
            if (v <= w->last)
                fail_later(&w->s->fail, "changed, but borrowed %ld after %ld", v, w->last);
            w->last = v;
            w->seen++;
            continue;
        }
        if (STATUS(st) != -EPIPE)
            fail_later(&w->s->fail, "changed status %d", STATUS(st));
        if (v != w->s->n)
            fail_later(&w->s->fail, "sender gone; the final value is %ld, not %ld", v, w->s->n);
        atomic_fetch_add(&w->s->finished, 1);
        wisp_watch_rx_drop(w->rx);
        w->rx = NULL;
        *out = NULL;
        return WISP_READY;
    }
}

static void wreceiver_drop(void *f)
{
    struct wreceiver *w = f;
    if (w->waiting)
        wisp_watch_changed_drop(&w->changed);
    if (w->rx)
        wisp_watch_rx_drop(w->rx);
}

/* A sender task replaces the value N times; 4 receiver tasks see it grow
 * and, once the sender is gone, the final value. */
START_TEST(watch_receivers_see_the_final_value)
{
    enum { R = 4 };
    atomic_store(&g_rc_live, 0);
    wisp_runtime_t *rt = rt_new(2);
    struct wshared s = { .n = stress(50000) };
    wisp_watch_tx_t *tx;
    wisp_watch_rx_t *rx[R];
    ck_assert_int_eq(wisp_watch_new(&tx, &rx[0], rc_new(0), rc_clone, rc_drop), 0);
    for (int i = 1; i < R; i++)
        ck_assert_int_eq(wisp_watch_subscribe(tx, &rx[i]), 0);
    wisp_join_t *j[R + 1];
    for (int i = 0; i < R; i++) {
        struct wreceiver w = { .s = &s, .rx = rx[i], .last = -1 };
        ck_assert_int_eq(wisp_spawn(rt, wreceiver_poll, &w, sizeof(w), wreceiver_drop, &j[i]), 0);
    }
    struct wsender ws = { .s = &s, .tx = tx, .next = 1 };
    ck_assert_int_eq(wisp_spawn(rt, wsender_poll, &ws, sizeof(ws), wsender_drop, &j[R]), 0);
    for (int i = 0; i <= R; i++)
        ck_assert_int_eq(wisp_join(j[i], NULL), 0);
    check_no_failure(&s.fail);
    ck_assert_int_eq(atomic_load(&s.finished), R);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
    ck_assert_int_eq(atomic_load(&g_rc_live), 0);
}
END_TEST

/* ==== a mutex held across polls ============================================= */

struct mshared {
    wisp_mutex_t m;
    long counter;        /* plain: only under the mutex */
    _Atomic long inside; /* how many hold it: must be 0 or 1 */
    _Atomic long holder;
    _Atomic long try_wins;
    struct failure fail;
};

struct locker {
    struct mshared *s;
    long id, rounds, round;
    int yields, y;
    int phase; /* 0: start a lock, 1: locking, 2: holding */
    bool trier; /* uses try_lock only */
    long tries;
    long seen;
    wisp_mutex_lock_t lk;
};

static wisp_poll_t locker_poll(void *f, wisp_context_t *cx, void **out)
{
    struct locker *l = f;
    struct mshared *s = l->s;
    for (;;) {
        if (l->phase == 0) {
            if (l->round == l->rounds) {
                *out = NULL;
                return WISP_READY;
            }
            if (l->trier) {
                l->tries++;
                if (wisp_mutex_try_lock(&s->m) != 0) {
                    if (l->tries > 100 * l->rounds) { /* give up: FIFO lets queued ones first */
                        l->round = l->rounds;
                        continue;
                    }
                    return wisp_yield(cx);
                }
                atomic_fetch_add(&s->try_wins, 1);
            } else {
                wisp_mutex_lock_init(&l->lk, &s->m);
                l->phase = 1;
            }
        }
        if (l->phase == 1) {
            void *o;
            if (wisp_mutex_lock_poll(&l->lk, cx, &o) == WISP_PENDING)
                return WISP_PENDING;
            wisp_mutex_lock_drop(&l->lk);
        }
        if (l->phase <= 1) {
            if (atomic_fetch_add(&s->inside, 1) != 0)
                fail_later(&s->fail, "locker %ld got the mutex while another held it", l->id);
            atomic_store(&s->holder, l->id);
            l->seen = s->counter; /* read here, written back after the yields */
            l->phase = 2;
            l->y = 0;
        }
        if (l->y < l->yields) {
            if (atomic_load(&s->holder) != l->id)
                fail_later(&s->fail, "locker %ld: %ld got in while it held the mutex", l->id,
                           atomic_load(&s->holder));
            l->y++;
            return wisp_yield(cx);
        }
        s->counter = l->seen + 1;
        atomic_fetch_sub(&s->inside, 1);
        wisp_mutex_unlock(&s->m);
        l->round++;
        l->phase = 0;
    }
}

static void locker_drop(void *f)
{
    struct locker *l = f;
    if (l->phase == 1)
        wisp_mutex_lock_drop(&l->lk);
}

/* 8 tasks lock, yield 5 times holding the lock, and unlock, many rounds on
 * 2 workers, and a ninth tries try_lock: nobody ever gets in while another
 * holds it, and the count read before the yields and written after is
 * exact. */
START_TEST(mutex_held_across_yields)
{
    enum { L = 8 };
    wisp_runtime_t *rt = rt_new(2);
    struct mshared s = { 0 };
    wisp_mutex_init(&s.m);
    long rounds = stress(400);
    wisp_join_t *j[L + 1];
    for (int i = 0; i <= L; i++) {
        struct locker l = { .s = &s, .id = i + 1, .rounds = rounds, .yields = 1 + i % 5,
                            .trier = i == L };
        ck_assert_int_eq(wisp_spawn(rt, locker_poll, &l, sizeof(l), locker_drop, &j[i]), 0);
    }
    for (int i = 0; i <= L; i++)
        ck_assert_int_eq(wisp_join(j[i], NULL), 0);
    check_no_failure(&s.fail);
    ck_assert_int_eq(s.counter, L * rounds + atomic_load(&s.try_wins));
    ck_assert_int_eq(wisp_mutex_try_lock(&s.m), 0);
    wisp_mutex_unlock(&s.m);
    wisp_mutex_destroy(&s.m);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
    fprintf(stderr, "mutex: try_lock won %ld times\n", atomic_load(&s.try_wins));
}
END_TEST

/* ==== select ================================================================== */

/* The winner's output and index; the others are dropped at once (poll set
 * to NULL) and took nothing; the winner is dropped by select_drop. */
START_TEST(select_losers_take_nothing)
{
    drops_reset();
    struct hand h;
    hand_init(&h);
    enum { C = 3 };
    wisp_chan_tx_t *tx[C];
    wisp_chan_rx_t *rx[C];
    wisp_chan_recv_t r[C];
    wisp_branch_t br[C];
    wisp_select_t sel;
    void *m, *out;
    for (int c = 0; c < C; c++)
        ck_assert_int_eq(wisp_mpmc_new(&tx[c], &rx[c], 4, drop_id), 0);
    ck_assert_int_eq(wisp_chan_try_send(tx[1], MSG(11)), 0);
    ck_assert_int_eq(wisp_chan_try_send(tx[1], MSG(12)), 0);
    ck_assert_int_eq(wisp_chan_try_send(tx[2], MSG(21)), 0);
    for (int c = 0; c < C; c++) {
        wisp_chan_recv_init(&r[c], rx[c]);
        br[c] = (wisp_branch_t){ wisp_chan_recv_poll, wisp_chan_recv_drop, &r[c] };
    }
    ck_assert_int_eq(wisp_select_init(&sel, br, C, WISP_SELECT_BIASED), 0);
    ck_ready(wisp_select_poll, &sel, &h, &out);
    ck_assert_int_eq(wisp_select_winner(&sel), 1);
    ck_assert_uint_eq(VAL(out), 11);
    ck_assert_int_eq(wisp_chan_recv_status(&r[1]), 0);
    ck_assert_ptr_null(br[0].poll); /* polled (queued on an empty channel), then dropped */
    ck_assert_ptr_null(br[2].poll); /* never polled, dropped */
    ck_assert_ptr_nonnull(br[1].poll);
    wisp_select_drop(&sel);
    ck_assert_uint_eq(wisp_chan_len(rx[1]), 1);
    ck_assert_uint_eq(wisp_chan_len(rx[2]), 1);
    /* the loser queued on channel 0 is gone from its queue: its memory can go */
    memset(r, 0xa5, sizeof(r));
    ck_assert_int_eq(wisp_chan_try_send(tx[0], MSG(1)), 0);
    ck_assert_int_eq(wisp_chan_try_recv(rx[0], &m), 0);
    ck_assert_uint_eq(VAL(m), 1);
    ck_assert_int_eq(wisp_chan_try_recv(rx[1], &m), 0);
    ck_assert_uint_eq(VAL(m), 12);
    ck_assert_int_eq(wisp_chan_try_recv(rx[2], &m), 0);
    ck_assert_uint_eq(VAL(m), 21);

    /* every branch waiting; two channels get a message before the select
     * polls again: one wins, the other's message stays */
    for (int c = 0; c < C; c++) {
        wisp_chan_recv_init(&r[c], rx[c]);
        br[c] = (wisp_branch_t){ wisp_chan_recv_poll, wisp_chan_recv_drop, &r[c] };
    }
    ck_assert_int_eq(wisp_select_init(&sel, br, C, 0), 0);
    ck_pending(wisp_select_poll, &sel, &h);
    long w = woken(&h);
    ck_assert_int_eq(wisp_chan_try_send(tx[2], MSG(22)), 0);
    ck_assert_int_eq(woken(&h), w + 1);
    ck_assert_int_eq(wisp_chan_try_send(tx[1], MSG(13)), 0);
    ck_ready(wisp_select_poll, &sel, &h, &out);
    long win = wisp_select_winner(&sel);
    ck_assert(win == 1 || win == 2);
    ck_assert_uint_eq(VAL(out), win == 1 ? 13 : 22);
    wisp_select_drop(&sel);
    ck_assert_int_eq(wisp_chan_try_recv(rx[win == 1 ? 2 : 1], &m), 0);
    ck_assert_uint_eq(VAL(m), win == 1 ? 22 : 13);
    for (int c = 0; c < C; c++) {
        ck_assert_int_eq(wisp_chan_try_recv(rx[c], &m), -EAGAIN);
        wisp_chan_tx_drop(tx[c]);
        wisp_chan_rx_drop(rx[c]);
    }
    ck_assert_int_eq(atomic_load(&g_drops), 0);
    hand_fini(&h);
}
END_TEST

/* Branch drops: each loser once at the win, the winner once at select_drop;
 * a select dropped before any win drops all; "none is favoured": with
 * every branch ready, fresh selects do not always pick the same one (a
 * biased one always picks the first). */
START_TEST(select_drops_and_rotation)
{
    struct hand h;
    hand_init(&h);
    enum { B = 4 };
    struct toy t[B];
    wisp_branch_t br[B];
    wisp_select_t sel;
    void *out;
    memset(t, 0, sizeof(t));
    t[1].ready = 1;
    t[1].value = 7;
    t[2].ready = 1;
    t[2].value = 8;
    for (int i = 0; i < B; i++)
        br[i] = (wisp_branch_t){ toy_poll, toy_drop, &t[i] };
    ck_assert_int_eq(wisp_select_init(&sel, br, B, WISP_SELECT_BIASED), 0);
    ck_ready(wisp_select_poll, &sel, &h, &out);
    ck_assert_int_eq(wisp_select_winner(&sel), 1);
    ck_assert_uint_eq(VAL(out), 7);
    ck_assert_int_eq(t[2].polls, 0); /* at most one completes: nothing polled after the win */
    ck_assert_int_eq(atomic_load(&t[0].drops), 1);
    ck_assert_int_eq(atomic_load(&t[1].drops), 0);
    ck_assert_int_eq(atomic_load(&t[2].drops), 1);
    ck_assert_int_eq(atomic_load(&t[3].drops), 1);
    wisp_select_drop(&sel);
    for (int i = 0; i < B; i++)
        ck_assert_int_eq(atomic_load(&t[i].drops), 1);
    /* dropped with no winner: every branch once */
    memset(t, 0, sizeof(t));
    for (int i = 0; i < B; i++)
        br[i] = (wisp_branch_t){ toy_poll, toy_drop, &t[i] };
    ck_assert_int_eq(wisp_select_init(&sel, br, B, 0), 0);
    ck_pending(wisp_select_poll, &sel, &h);
    ck_pending(wisp_select_poll, &sel, &h);
    for (int i = 0; i < B; i++)
        ck_assert_int_eq(t[i].polls, 2);
    wisp_select_drop(&sel);
    for (int i = 0; i < B; i++)
        ck_assert_int_eq(atomic_load(&t[i].drops), 1);
    /* a branch with no drop function */
    memset(t, 0, sizeof(t));
    t[0].ready = 1;
    br[0] = (wisp_branch_t){ toy_poll, NULL, &t[0] };
    br[1] = (wisp_branch_t){ toy_poll, NULL, &t[1] };
    ck_assert_int_eq(wisp_select_init(&sel, br, 2, WISP_SELECT_BIASED), 0);
    ck_ready(wisp_select_poll, &sel, &h, &out);
    wisp_select_drop(&sel);
    /* rotation: all ready, a fresh select each round */
    int wins[B] = { 0 }, biased0 = 0;
    for (int round = 0; round < 40; round++) {
        memset(t, 0, sizeof(t));
        for (int i = 0; i < B; i++) {
            t[i].ready = 1;
            t[i].value = i;
            br[i] = (wisp_branch_t){ toy_poll, toy_drop, &t[i] };
        }
        unsigned flags = round % 2 ? WISP_SELECT_BIASED : 0;
        ck_assert_int_eq(wisp_select_init(&sel, br, B, flags), 0);
        ck_ready(wisp_select_poll, &sel, &h, &out);
        long win = wisp_select_winner(&sel);
        ck_assert_uint_eq(VAL(out), (uintptr_t)win);
        if (flags)
            biased0 += win == 0;
        else
            wins[win]++;
        wisp_select_drop(&sel);
        for (int i = 0; i < B; i++)
            ck_assert_int_eq(atomic_load(&t[i].drops), 1);
    }
    ck_assert_int_eq(biased0, 20);
    int distinct = 0;
    for (int i = 0; i < B; i++)
        distinct += wins[i] > 0;
    ck_assert_msg(distinct >= 2,
                  "20 fresh unbiased selects with every branch ready all picked branch %d: "
                  "the start does not rotate across selects, so branch 0 is favoured",
                  wins[0] ? 0 : wins[1] ? 1 : wins[2] ? 2 : 3);
    hand_fini(&h);
}
END_TEST

/* ---- select over 64 channels on a runtime ---- */

#define NCH 64

struct selshared {
    long n;
    _Atomic unsigned char *seen;
    _Atomic long received;
    _Atomic long rounds, waited; /* selects, and those that were PENDING first */
    struct failure fail;
};

struct selsender {
    struct selshared *s;
    wisp_chan_tx_t *tx[NCH];
    long next, step;
    uint64_t rng;
    bool sending;
    bool bursty; /* send a few, then wait until all are received */
    int burst_left;
    wisp_chan_send_t f;
};

static wisp_poll_t selsender_poll(void *fp, wisp_context_t *cx, void **out)
{
    struct selsender *p = fp;
    int budget = 32;
    while (p->next <= p->s->n) {
        if (p->bursty && !p->sending && p->burst_left == 0) {
            /* the receiver drains everything and waits on all 64 channels
             * again; the next burst then wakes several of its branches at
             * once, and the losers are dropped holding a claim */
            if (atomic_load(&p->s->received) < p->next - 1)
                return wisp_yield(cx);
            p->burst_left = 1 + (int)(rng_next(&p->rng) % 8);
        }
        if (!p->sending) {
            int c = (int)(rng_next(&p->rng) % NCH);
            wisp_chan_send_init(&p->f, p->tx[c], MSG(p->next));
            p->sending = true;
        }
        void *st;
        if (wisp_chan_send_poll(&p->f, cx, &st) == WISP_PENDING)
            return WISP_PENDING;
        wisp_chan_send_drop(&p->f);
        p->sending = false;
        if (STATUS(st) != 0)
            fail_later(&p->s->fail, "send %ld: status %d", p->next, STATUS(st));
        p->next += p->step;
        if (p->bursty)
            p->burst_left--;
        if (--budget == 0)
            return wisp_yield(cx);
    }
    for (int c = 0; c < NCH; c++) {
        wisp_chan_tx_drop(p->tx[c]);
        p->tx[c] = NULL;
    }
    *out = NULL;
    return WISP_READY;
}

static void selsender_drop(void *fp)
{
    struct selsender *p = fp;
    if (p->sending)
        wisp_chan_send_drop(&p->f);
    for (int c = 0; c < NCH; c++)
        if (p->tx[c])
            wisp_chan_tx_drop(p->tx[c]);
}

struct selrecv {
    struct selshared *s;
    wisp_chan_rx_t *rx[NCH];
    int open;
    bool active, pended;
    size_t nbr;
    int map[NCH];
    wisp_chan_recv_t recv[NCH];
    wisp_branch_t br[NCH];
    wisp_select_t sel;
};

static wisp_poll_t selrecv_poll(void *fp, wisp_context_t *cx, void **out)
{
    struct selrecv *r = fp;
    struct selshared *s = r->s;
    for (int budget = 0; budget < 8; budget++) {
        if (!r->active) {
            if (r->open == 0) {
                *out = NULL;
                return WISP_READY;
            }
            size_t k = 0;
            for (int c = 0; c < NCH; c++) {
                if (!r->rx[c])
                    continue;
                wisp_chan_recv_init(&r->recv[k], r->rx[c]);
                r->br[k] = (wisp_branch_t){ wisp_chan_recv_poll, wisp_chan_recv_drop, &r->recv[k] };
                r->map[k] = c;
                k++;
            }
            r->nbr = k;
            if (wisp_select_init(&r->sel, r->br, k, 0) != 0) {
                fail_later(&s->fail, "select_init failed");
                *out = NULL;
                return WISP_READY;
            }
            r->active = true;
        }
        void *m;
        if (wisp_select_poll(&r->sel, cx, &m) == WISP_PENDING) {
            r->pended = true;
            return WISP_PENDING;
        }
        atomic_fetch_add(&s->rounds, 1);
        if (r->pended)
            atomic_fetch_add(&s->waited, 1);
        r->pended = false;
        long w = wisp_select_winner(&r->sel);
        if (w < 0 || (size_t)w >= r->nbr) {
            fail_later(&s->fail, "winner %ld of %zu", w, r->nbr);
            *out = NULL;
            return WISP_READY;
        }
        for (size_t i = 0; i < r->nbr; i++)
            if ((i == (size_t)w) != (r->br[i].poll != NULL))
                fail_later(&s->fail, "branch %zu (winner %ld): poll %s", i, w,
                           r->br[i].poll ? "set" : "NULL");
        int st = wisp_chan_recv_status(&r->recv[w]);
        wisp_select_drop(&r->sel);
        r->active = false;
        if (st == -EPIPE) {
            int c = r->map[w];
            wisp_chan_rx_drop(r->rx[c]);
            r->rx[c] = NULL;
            r->open--;
            continue;
        }
        long v = (long)VAL(m);
        if (st != 0 || v < 1 || v > s->n)
            fail_later(&s->fail, "select: status %d, message %ld", st, v);
        else if (atomic_fetch_add(&s->seen[v - 1], 1) != 0)
            fail_later(&s->fail, "message %ld received twice", v);
        atomic_fetch_add(&s->received, 1);
    }
    return wisp_yield(cx); /* let the channels fill: more than one branch ready */
}

static void selrecv_drop(void *fp)
{
    struct selrecv *r = fp;
    if (r->active)
        wisp_select_drop(&r->sel);
    for (int c = 0; c < NCH; c++)
        if (r->rx[c])
            wisp_chan_rx_drop(r->rx[c]);
}

/* A task selects over receives on 64 channels, re-initialising them each
 * round, until every channel is closed; two sender tasks send N messages
 * to random channels (capacity 4, so they wait too).  Every message is
 * received exactly once: no loser of a select took one (loop: MPSC, MPMC
 * channels, where a loser may hold a claim when dropped; then both again
 * with one sender sending in bursts, each after the receiver drained
 * everything, so that losers do get dropped holding claims; and two select
 * tasks on the same MPMC channels, bursts: a loser's claim must go to the
 * other task's waiting branch). */
START_TEST(select_over_64_channels)
{
    drops_reset();
    wisp_runtime_t *rt = rt_new(2);
    int kind = _i % 2 || _i == 4 ? K_MPMC : K_MPSC;
    bool bursty = _i >= 2;
    int receivers = _i == 4 ? 2 : 1; /* two select tasks on the same MPMC channels */
    struct selshared s = { .n = bursty ? stress(10000) : stress(30000) };
    s.seen = calloc((size_t)s.n, 1);
    struct selrecv *r = calloc(2, sizeof(*r)); /* big: spawned by copy, built here */
    struct selsender p[2];
    memset(p, 0, sizeof(p));
    for (int c = 0; c < NCH; c++) {
        wisp_chan_tx_t *tx;
        ck_assert_int_eq(chan_new(kind, &tx, &r->rx[c], 4, drop_id), 0);
        p[0].tx[c] = tx;
        p[1].tx[c] = bursty ? NULL : wisp_chan_tx_clone(tx);
    }
    wisp_join_t *j[4];
    for (int k = 0; k < receivers; k++) {
        if (k > 0)
            for (int c = 0; c < NCH; c++)
                r[k].rx[c] = wisp_chan_rx_clone(r[0].rx[c]);
        r[k].s = &s;
        r[k].open = NCH;
    }
    for (int k = 0; k < receivers; k++)
        ck_assert_int_eq(wisp_spawn(rt, selrecv_poll, &r[k], sizeof(r[k]), selrecv_drop, &j[k]), 0);
    int senders = bursty ? 1 : 2;
    for (int k = 0; k < senders; k++) {
        p[k].s = &s;
        p[k].next = k + 1;
        p[k].step = senders;
        p[k].rng = 0x1234567ull * (k + 1);
        p[k].bursty = bursty;
        ck_assert_int_eq(wisp_spawn(rt, selsender_poll, &p[k], sizeof(p[k]), selsender_drop,
                                    &j[receivers + k]),
                         0);
    }
    for (int k = 0; k < receivers + senders; k++)
        ck_assert_int_eq(wisp_join(j[k], NULL), 0);
    check_no_failure(&s.fail);
    ck_assert_int_eq(atomic_load(&s.received), s.n);
    for (long i = 0; i < s.n; i++)
        if (atomic_load(&s.seen[i]) != 1)
            ck_abort_msg("message %ld received %d times", i + 1, (int)atomic_load(&s.seen[i]));
    fprintf(stderr, "select over 64 %s%s%s: %ld selects, %ld of them woken after PENDING\n",
            kind == K_MPMC ? "MPMC" : "MPSC", bursty ? " bursty" : "",
            receivers > 1 ? ", 2 receivers" : "", atomic_load(&s.rounds),
            atomic_load(&s.waited));
    ck_assert_int_eq(atomic_load(&g_drops), 0);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
    free(r);
    free(s.seen);
}
END_TEST

/* ==== join_all ================================================================ */

struct osb {
    wisp_oneshot_rx_t *rx;
    _Atomic long drops;
};

static wisp_poll_t osb_poll(void *f, wisp_context_t *cx, void **out)
{
    struct osb *o = f;
    int st;
    void *m = NULL;
    if (wisp_oneshot_recv_poll(o->rx, cx, &st, &m) == WISP_PENDING)
        return WISP_PENDING;
    *out = st == 0 ? m : MSG(0xdead);
    return WISP_READY;
}

static void osb_drop(void *f)
{
    struct osb *o = f;
    wisp_oneshot_rx_drop(o->rx);
    o->rx = NULL;
    atomic_fetch_add(&o->drops, 1);
}

/* Branches complete in any order; each output lands in its slot; each
 * branch is dropped once, when it completes. */
START_TEST(join_all_outputs_in_their_slots)
{
    drops_reset();
    struct hand h;
    hand_init(&h);
    wisp_oneshot_tx_t *otx[2];
    struct osb o[2];
    memset(o, 0, sizeof(o));
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(wisp_oneshot_new(&otx[i], &o[i].rx, drop_id), 0);
    wisp_chan_tx_t *tx;
    wisp_chan_rx_t *rx;
    ck_assert_int_eq(wisp_mpsc_new(&tx, &rx, 2, drop_id), 0);
    wisp_chan_recv_t r;
    wisp_chan_recv_init(&r, rx);
    struct toy t = { .ready = 1, .value = 42 };
    wisp_branch_t br[4] = {
        { osb_poll, osb_drop, &o[0] },
        { wisp_chan_recv_poll, wisp_chan_recv_drop, &r },
        { toy_poll, toy_drop, &t },
        { osb_poll, osb_drop, &o[1] },
    };
    void *outs[4] = { 0 }, *out;
    wisp_join_all_t j;
    ck_assert_int_eq(wisp_join_all_init(&j, br, outs, 4), 0);
    ck_pending(wisp_join_all_poll, &j, &h);
    ck_assert_ptr_null(br[2].poll);
    ck_assert_int_eq(atomic_load(&t.drops), 1);
    ck_assert_uint_eq(VAL(outs[2]), 42);
    ck_assert_int_eq(wisp_oneshot_send(otx[1], MSG(33)), 0);
    ck_assert_int_ge(woken(&h), 1);
    ck_pending(wisp_join_all_poll, &j, &h);
    ck_assert_ptr_null(br[3].poll);
    ck_assert_int_eq(atomic_load(&o[1].drops), 1);
    ck_assert_uint_eq(VAL(outs[3]), 33);
    ck_assert_int_eq(wisp_chan_try_send(tx, MSG(11)), 0);
    ck_assert_int_ge(woken(&h), 2);
    ck_pending(wisp_join_all_poll, &j, &h);
    ck_assert_ptr_null(br[1].poll);
    ck_assert_uint_eq(VAL(outs[1]), 11);
    ck_assert_int_eq(wisp_oneshot_send(otx[0], MSG(10)), 0);
    ck_assert_int_ge(woken(&h), 3);
    ck_ready(wisp_join_all_poll, &j, &h, &out);
    ck_assert_ptr_null(out);
    ck_assert_uint_eq(VAL(outs[0]), 10);
    ck_assert_uint_eq(VAL(outs[1]), 11);
    ck_assert_uint_eq(VAL(outs[2]), 42);
    ck_assert_uint_eq(VAL(outs[3]), 33);
    wisp_join_all_drop(&j);
    ck_assert_int_eq(atomic_load(&o[0].drops), 1);
    ck_assert_int_eq(atomic_load(&o[1].drops), 1);
    ck_assert_int_eq(atomic_load(&t.drops), 1);

    /* dropped before every branch completed: the rest dropped once */
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(wisp_oneshot_new(&otx[i], &o[i].rx, drop_id), 0);
        atomic_store(&o[i].drops, 0);
    }
    br[0] = (wisp_branch_t){ osb_poll, osb_drop, &o[0] };
    br[1] = (wisp_branch_t){ osb_poll, osb_drop, &o[1] };
    ck_assert_int_eq(wisp_join_all_init(&j, br, outs, 2), 0);
    ck_assert_int_eq(wisp_oneshot_send(otx[0], MSG(5)), 0);
    ck_pending(wisp_join_all_poll, &j, &h);
    ck_assert_int_eq(atomic_load(&o[0].drops), 1);
    ck_assert_uint_eq(VAL(outs[0]), 5);
    wisp_join_all_drop(&j);
    ck_assert_int_eq(atomic_load(&o[0].drops), 1);
    ck_assert_int_eq(atomic_load(&o[1].drops), 1);
    wisp_oneshot_tx_drop(otx[1]);
    wisp_chan_tx_drop(tx);
    wisp_chan_rx_drop(rx);
    ck_assert_int_eq(atomic_load(&g_drops), 0);
    hand_fini(&h);
}
END_TEST

struct yield_send {
    wisp_oneshot_tx_t *tx;
    int yields;
    long value;
};

static wisp_poll_t yield_send_poll(void *f, wisp_context_t *cx, void **out)
{
    struct yield_send *y = f;
    if (y->yields-- > 0)
        return wisp_yield(cx);
    wisp_oneshot_send(y->tx, MSG(y->value));
    y->tx = NULL;
    *out = NULL;
    return WISP_READY;
}

static void yield_send_drop(void *f)
{
    struct yield_send *y = f;
    if (y->tx)
        wisp_oneshot_tx_drop(y->tx);
}

static wisp_poll_t sleep_branch_poll(void *f, wisp_context_t *cx, void **out)
{
    void *st;
    if (wisp_sleep_poll(f, cx, &st) == WISP_PENDING)
        return WISP_PENDING;
    *out = MSG(STATUS(st) == 0 ? 1000 : 0xbad);
    return WISP_READY;
}

/* join_all from wisp_block_on on a runtime: sleeps and oneshots sent by
 * tasks, all outputs in place. */
START_TEST(join_all_of_sleeps_and_tasks)
{
    wisp_runtime_t *rt = rt_new(2);
    enum { S = 3, O = 3 };
    wisp_sleep_t sl[S];
    struct osb o[O];
    wisp_branch_t br[S + O];
    void *outs[S + O];
    for (int i = 0; i < S; i++) {
        wisp_sleep_init(&sl[i], (uint64_t)(S - i) * 5 * MS);
        br[i] = (wisp_branch_t){ sleep_branch_poll, wisp_sleep_drop, &sl[i] };
    }
    for (int i = 0; i < O; i++) {
        wisp_oneshot_tx_t *tx;
        memset(&o[i], 0, sizeof(o[i]));
        ck_assert_int_eq(wisp_oneshot_new(&tx, &o[i].rx, NULL), 0);
        br[S + i] = (wisp_branch_t){ osb_poll, osb_drop, &o[i] };
        struct yield_send y = { tx, 10 * (O - i), 100 + i };
        ck_assert_int_eq(wisp_spawn(rt, yield_send_poll, &y, sizeof(y), yield_send_drop, NULL), 0);
    }
    wisp_join_all_t j;
    ck_assert_int_eq(wisp_join_all_init(&j, br, outs, S + O), 0);
    void *out = MSG(1);
    ck_assert_int_eq(wisp_block_on(rt, wisp_join_all_poll, &j, &out), 0);
    ck_assert_ptr_null(out);
    for (int i = 0; i < S; i++)
        ck_assert_uint_eq(VAL(outs[i]), 1000);
    for (int i = 0; i < O; i++) {
        ck_assert_uint_eq(VAL(outs[S + i]), 100 + (uintptr_t)i);
        ck_assert_int_eq(atomic_load(&o[i].drops), 1);
    }
    for (int i = 0; i < S + O; i++)
        ck_assert_ptr_null(br[i].poll);
    wisp_join_all_drop(&j);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

/* ==== atomic waker ============================================================ */

START_TEST(atomic_waker_register_wake_take)
{
    struct hand a, b;
    hand_init(&a);
    hand_init(&b);
    wisp_atomic_waker_t aw = WISP_ATOMIC_WAKER_INIT;
    wisp_atomic_waker_wake(&aw); /* nothing registered: harmless, not remembered */
    wisp_waker_t t = wisp_atomic_waker_take(&aw);
    ck_assert(wisp_waker_is_empty(&t));
    wisp_atomic_waker_register(&aw, &a.w);
    ck_assert_int_eq(woken(&a), 0);
    ck_assert_int_eq(refs(&a), 2); /* a clone is stored */
    wisp_atomic_waker_register(&aw, &a.w);
    ck_assert_int_eq(refs(&a), 2); /* the same task: kept, not cloned again */
    wisp_atomic_waker_register(&aw, &b.w);
    ck_assert_int_eq(refs(&a), 1); /* replaced: a's clone dropped */
    ck_assert_int_eq(refs(&b), 2);
    ck_assert_int_eq(woken(&a), 0);
    wisp_atomic_waker_wake(&aw);
    ck_assert_int_eq(woken(&b), 1);
    ck_assert_int_eq(refs(&b), 1); /* woken and removed */
    wisp_atomic_waker_wake(&aw);
    ck_assert_int_eq(woken(&b), 1);
    wisp_atomic_waker_register(&aw, &a.w);
    t = wisp_atomic_waker_take(&aw);
    ck_assert(wisp_waker_will_wake(&t, &a.w));
    ck_assert_int_eq(woken(&a), 0);
    wisp_atomic_waker_wake(&aw); /* taken: nothing there */
    ck_assert_int_eq(woken(&a), 0);
    wisp_waker_wake(&t);
    ck_assert_int_eq(woken(&a), 1);
    ck_assert_int_eq(refs(&a), 1);
    wisp_atomic_waker_register(&aw, &b.w);
    wisp_atomic_waker_destroy(&aw); /* drops the registered one */
    ck_assert_int_eq(refs(&b), 1);
    ck_assert_int_eq(woken(&b), 1);
    wisp_atomic_waker_t aw2;
    wisp_atomic_waker_init(&aw2);
    wisp_atomic_waker_register(&aw2, &a.w);
    wisp_atomic_waker_wake(&aw2);
    ck_assert_int_eq(woken(&a), 2);
    wisp_atomic_waker_destroy(&aw2);
    hand_fini(&a);
    hand_fini(&b);
}
END_TEST

struct awrace {
    wisp_atomic_waker_t aw;
    _Atomic long flag, ack;
    long n;
    struct counting_waker cw[2];
    struct failure fail;
};

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The waiter: register, then check the flag; if it is not there yet, wait
 * for a wake of the waker it registered.  A lost wakeup leaves it waiting
 * forever (caught after 20 s).  It alternates two wakers, so a register
 * also replaces. */
static void *aw_waiter(void *arg)
{
    struct awrace *s = arg;
    wisp_waker_t w[2] = { counting_waker(&s->cw[0]), counting_waker(&s->cw[1]) };
    for (long i = 1; i <= s->n && !atomic_load(&s->fail.count); i++) {
        int k = (int)(i & 1);
        for (;;) {
            long before = atomic_load(&s->cw[k].wakes);
            wisp_atomic_waker_register(&s->aw, &w[k]);
            if (atomic_load(&s->flag) >= i)
                break;
            double end = mono() + 20;
            while (atomic_load(&s->cw[k].wakes) == before) {
                if (mono() > end) {
                    fail_later(&s->fail, "lost wakeup at round %ld", i);
                    goto out;
                }
                sched_yield();
            }
        }
        atomic_store(&s->ack, i);
    }
out:
    wisp_waker_drop(&w[0]);
    wisp_waker_drop(&w[1]);
    return NULL;
}

static void *aw_wakerthread(void *arg)
{
    struct awrace *s = arg;
    uint64_t rng = 88172645463325252ull;
    for (long i = 1; i <= s->n; i++) {
        while (atomic_load(&s->ack) != i - 1)
            if (atomic_load(&s->fail.count))
                return NULL;
        for (unsigned spin = (unsigned)(rng_next(&rng) % 64); spin; spin--)
            atomic_signal_fence(memory_order_seq_cst);
        atomic_store(&s->flag, i);
        wisp_atomic_waker_wake(&s->aw);
    }
    return NULL;
}

/* Flag-then-wake against register-then-check from two threads, many
 * times: no wakeup is lost; every clone is released. */
START_TEST(atomic_waker_no_lost_wakeup_threads)
{
    struct awrace *s = calloc(1, sizeof(*s));
    wisp_atomic_waker_init(&s->aw);
    s->n = stress(100000);
    pthread_t a, b;
    ck_assert_int_eq(pthread_create(&a, NULL, aw_waiter, s), 0);
    ck_assert_int_eq(pthread_create(&b, NULL, aw_wakerthread, s), 0);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    check_no_failure(&s->fail);
    ck_assert_int_eq(atomic_load(&s->ack), s->n);
    wisp_atomic_waker_destroy(&s->aw);
    ck_assert_int_eq(atomic_load(&s->cw[0].refs) + atomic_load(&s->cw[1].refs), 0);
    free(s);
}
END_TEST

struct awtask {
    struct awrace *s;
    long seen;
};

static wisp_poll_t awtask_poll(void *f, wisp_context_t *cx, void **out)
{
    struct awtask *t = f;
    for (;;) {
        wisp_atomic_waker_register(&t->s->aw, wisp_context_waker(cx));
        long v = atomic_load(&t->s->flag);
        if (v <= t->seen)
            return WISP_PENDING;
        t->seen = v;
        atomic_store(&t->s->ack, v);
        if (v == t->s->n) {
            *out = NULL;
            return WISP_READY;
        }
    }
}

/* The same with a task on a runtime as the waiter and the test thread as
 * the waker: a lost wakeup shows as the task never acknowledging. */
START_TEST(atomic_waker_no_lost_wakeup_task)
{
    wisp_runtime_t *rt = rt_new(2);
    struct awrace *s = calloc(1, sizeof(*s));
    wisp_atomic_waker_init(&s->aw);
    s->n = stress(20000);
    struct awtask t = { s, 0 };
    wisp_join_t *j;
    ck_assert_int_eq(wisp_spawn(rt, awtask_poll, &t, sizeof(t), NULL, &j), 0);
    for (long i = 1; i <= s->n; i++) {
        wait_for(&s->ack, i - 1, 20);
        atomic_store(&s->flag, i);
        wisp_atomic_waker_wake(&s->aw);
    }
    ck_assert_int_eq(wisp_join(j, NULL), 0);
    wisp_atomic_waker_destroy(&s->aw);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
    free(s);
}
END_TEST

/* ==== barrier and wait group ================================================== */

START_TEST(barrier_by_hand)
{
    struct hand h[6];
    hands_init(h, 6);
    wisp_barrier_t b;
    wisp_barrier_wait_t f[6];
    void *out;
    ck_assert_int_eq(wisp_barrier_init(&b, 3), 0);
    for (int gen = 0; gen < 2; gen++) {
        int o = gen * 3;
        wisp_barrier_wait_init(&f[o], &b);
        ck_pending(wisp_barrier_wait_poll, &f[o], &h[o]);
        wisp_barrier_wait_init(&f[o + 1], &b);
        ck_pending(wisp_barrier_wait_poll, &f[o + 1], &h[o + 1]);
        ck_pending(wisp_barrier_wait_poll, &f[o], &h[o]); /* polling again is no second arrival */
        wisp_barrier_wait_init(&f[o + 2], &b);
        ck_ready(wisp_barrier_wait_poll, &f[o + 2], &h[o + 2], &out);
        ck_assert_uint_eq(VAL(out), 1); /* the last to arrive leads */
        ck_assert_int_eq(woken(&h[o]), 1);
        ck_assert_int_eq(woken(&h[o + 1]), 1);
        ck_ready(wisp_barrier_wait_poll, &f[o], &h[o], &out);
        ck_assert_uint_eq(VAL(out), 0);
        ck_ready(wisp_barrier_wait_poll, &f[o + 1], &h[o + 1], &out);
        ck_assert_uint_eq(VAL(out), 0);
        ck_ready(wisp_barrier_wait_poll, &f[o + 2], &h[o + 2], &out); /* stays READY */
        ck_assert_uint_eq(VAL(out), 1);
    }
    for (int i = 0; i < 6; i++)
        wisp_barrier_wait_drop(&f[i]);
    wisp_barrier_destroy(&b);
    /* arrived, then dropped: still counted, never releases the others early */
    ck_assert_int_eq(wisp_barrier_init(&b, 2), 0);
    wisp_barrier_wait_init(&f[0], &b);
    ck_pending(wisp_barrier_wait_poll, &f[0], &h[0]);
    wisp_barrier_wait_drop(&f[0]);
    wisp_barrier_wait_init(&f[1], &b);
    ck_ready(wisp_barrier_wait_poll, &f[1], &h[1], &out);
    ck_assert_uint_eq(VAL(out), 1);
    wisp_barrier_wait_drop(&f[1]);
    wisp_barrier_wait_init(&f[2], &b); /* the next generation starts empty */
    ck_pending(wisp_barrier_wait_poll, &f[2], &h[2]);
    wisp_barrier_wait_init(&f[3], &b);
    ck_ready(wisp_barrier_wait_poll, &f[3], &h[3], &out);
    ck_assert_uint_eq(VAL(out), 1);
    ck_ready(wisp_barrier_wait_poll, &f[2], &h[2], &out);
    ck_assert_uint_eq(VAL(out), 0);
    wisp_barrier_wait_drop(&f[2]);
    wisp_barrier_wait_drop(&f[3]);
    wisp_barrier_destroy(&b);
    /* n = 1: every wait leads at once */
    ck_assert_int_eq(wisp_barrier_init(&b, 1), 0);
    for (int i = 0; i < 3; i++) {
        wisp_barrier_wait_init(&f[i], &b);
        ck_ready(wisp_barrier_wait_poll, &f[i], &h[i], &out);
        ck_assert_uint_eq(VAL(out), 1);
        wisp_barrier_wait_drop(&f[i]);
    }
    wisp_barrier_destroy(&b);
    hands_fini(h, 6);
}
END_TEST

struct bar_shared {
    wisp_barrier_t b;
    long n, gens;
    _Atomic long *arrived, *leaders, *released;
    struct failure fail;
};

struct bar_task {
    struct bar_shared *s;
    long gen;
    bool waiting;
    int yields;
    uint64_t rng;
    wisp_barrier_wait_t f;
};

static wisp_poll_t bar_task_poll(void *fp, wisp_context_t *cx, void **out)
{
    struct bar_task *t = fp;
    struct bar_shared *s = t->s;
    for (;;) {
        if (t->gen == s->gens) {
            *out = NULL;
            return WISP_READY;
        }
        if (t->yields > 0) { /* arrive at different times */
            t->yields--;
            return wisp_yield(cx);
        }
        if (!t->waiting) {
            atomic_fetch_add(&s->arrived[t->gen], 1);
            wisp_barrier_wait_init(&t->f, &s->b);
            t->waiting = true;
        }
        void *lead;
        if (wisp_barrier_wait_poll(&t->f, cx, &lead) == WISP_PENDING)
            return WISP_PENDING;
        wisp_barrier_wait_drop(&t->f);
        t->waiting = false;
        long a = atomic_load(&s->arrived[t->gen]);
        if (a != s->n)
            fail_later(&s->fail, "generation %ld released with %ld of %ld arrived", t->gen, a, s->n);
        if (VAL(lead) == 1)
            atomic_fetch_add(&s->leaders[t->gen], 1);
        else if (VAL(lead) != 0)
            fail_later(&s->fail, "barrier output %lu", (unsigned long)VAL(lead));
        atomic_fetch_add(&s->released[t->gen], 1);
        t->gen++;
        t->yields = (int)(rng_next(&t->rng) % 4);
    }
}

static void bar_task_drop(void *fp)
{
    struct bar_task *t = fp;
    if (t->waiting)
        wisp_barrier_wait_drop(&t->f);
}

/* n tasks through many generations of one barrier on 2 workers: nobody is
 * released before all n arrived, exactly one leader per generation. */
START_TEST(barrier_generations_one_leader_each)
{
    enum { N = 6 };
    wisp_runtime_t *rt = rt_new(2);
    struct bar_shared s = { .n = N, .gens = stress(2000) };
    ck_assert_int_eq(wisp_barrier_init(&s.b, N), 0);
    s.arrived = calloc((size_t)s.gens, sizeof(*s.arrived));
    s.leaders = calloc((size_t)s.gens, sizeof(*s.leaders));
    s.released = calloc((size_t)s.gens, sizeof(*s.released));
    wisp_join_t *j[N];
    for (int i = 0; i < N; i++) {
        struct bar_task t = { .s = &s, .rng = 0x2545F4914F6CDD1Dull * (i + 1) };
        ck_assert_int_eq(wisp_spawn(rt, bar_task_poll, &t, sizeof(t), bar_task_drop, &j[i]), 0);
    }
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(wisp_join(j[i], NULL), 0);
    check_no_failure(&s.fail);
    for (long g = 0; g < s.gens; g++) {
        ck_assert_msg(atomic_load(&s.leaders[g]) == 1, "generation %ld had %ld leaders", g,
                      atomic_load(&s.leaders[g]));
        ck_assert_int_eq(atomic_load(&s.released[g]), N);
    }
    wisp_barrier_destroy(&s.b);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
    free(s.arrived);
    free(s.leaders);
    free(s.released);
}
END_TEST

START_TEST(waitgroup_by_hand)
{
    struct hand h[2];
    hands_init(h, 2);
    wisp_waitgroup_t wg;
    wisp_waitgroup_wait_t f[2];
    void *out;
    wisp_waitgroup_init(&wg);
    ck_assert_int_eq(wisp_waitgroup_count(&wg), 0);
    wisp_waitgroup_wait_init(&f[0], &wg);
    ck_ready(wisp_waitgroup_wait_poll, &f[0], &h[0], &out); /* zero: at once */
    ck_assert_ptr_null(out);
    wisp_waitgroup_wait_drop(&f[0]);
    wisp_waitgroup_add(&wg, 3);
    ck_assert_int_eq(wisp_waitgroup_count(&wg), 3);
    wisp_waitgroup_wait_init(&f[0], &wg);
    ck_pending(wisp_waitgroup_wait_poll, &f[0], &h[0]);
    wisp_waitgroup_wait_init(&f[1], &wg);
    ck_pending(wisp_waitgroup_wait_poll, &f[1], &h[1]);
    wisp_waitgroup_done(&wg);
    wisp_waitgroup_add(&wg, -1);
    ck_assert_int_eq(wisp_waitgroup_count(&wg), 1);
    ck_pending(wisp_waitgroup_wait_poll, &f[0], &h[0]);
    ck_assert_int_eq(woken(&h[1]), 0);
    wisp_waitgroup_wait_drop(&f[1]); /* cancelled: gives up nothing */
    wisp_waitgroup_done(&wg);
    ck_assert_int_eq(woken(&h[0]), 1);
    ck_assert_int_eq(woken(&h[1]), 0);
    ck_ready(wisp_waitgroup_wait_poll, &f[0], &h[0], &out);
    wisp_waitgroup_wait_drop(&f[0]);
    wisp_waitgroup_destroy(&wg);
    hands_fini(h, 2);
}
END_TEST

struct wg_task {
    wisp_waitgroup_t *wg;
    _Atomic long *finished;
    int yields;
};

static wisp_poll_t wg_task_poll(void *f, wisp_context_t *cx, void **out)
{
    struct wg_task *t = f;
    if (t->yields-- > 0)
        return wisp_yield(cx);
    atomic_fetch_add(t->finished, 1);
    wisp_waitgroup_done(t->wg);
    *out = NULL;
    return WISP_READY;
}

/* 16 tasks, each done at its end; the test thread's wait (block_on)
 * completes only after all 16 finished.  Many rounds. */
START_TEST(waitgroup_wait_after_all_done)
{
    enum { T = 16 };
    wisp_runtime_t *rt = rt_new(2);
    long rounds = stress(300);
    for (long round = 0; round < rounds; round++) {
        wisp_waitgroup_t wg;
        _Atomic long finished = 0;
        wisp_waitgroup_init(&wg);
        wisp_waitgroup_add(&wg, T);
        for (int i = 0; i < T; i++) {
            struct wg_task t = { &wg, &finished, (int)((round + i) % 7) };
            ck_assert_int_eq(wisp_spawn(rt, wg_task_poll, &t, sizeof(t), NULL, NULL), 0);
        }
        wisp_waitgroup_wait_t f;
        wisp_waitgroup_wait_init(&f, &wg);
        ck_assert_int_eq(wisp_block_on(rt, wisp_waitgroup_wait_poll, &f, NULL), 0);
        ck_assert_int_eq(atomic_load(&finished), T);
        ck_assert_int_eq(wisp_waitgroup_count(&wg), 0);
        wisp_waitgroup_wait_drop(&f);
        wisp_waitgroup_destroy(&wg);
    }
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

/* ==== signal against first wait, from two threads ========================== */

/* Two threads meet at a spin barrier each round; then, with a little random
 * delay each, one signals (done, notify_one, a release, a send, ...) while
 * the other polls a fresh future for the event.  A future that returned
 * PENDING must be woken: a check-then-queue window in a primitive shows as
 * a waiter never woken (caught after 10 s).  Each round has wakers of its
 * own, so a late wake of an earlier round cannot hide a lost one. */
enum { EV_WAITGROUP, EV_NOTIFY, EV_BARRIER, EV_SEMAPHORE, EV_MUTEX, EV_RWLOCK, EV_CHAN_RECV,
       EV_CHAN_SEND, EV_ONESHOT, EV_WATCH, EV_BCAST, EV_KINDS };
static const char *const ev_names[EV_KINDS] = { "waitgroup", "notify", "barrier", "semaphore",
                                                "mutex", "rwlock", "chan recv", "chan send",
                                                "oneshot", "watch", "bcast" };

struct evrace {
    int kind;
    long iters;
    _Atomic long arrive;
    _Atomic int stop;
    _Atomic long leaders;
    _Atomic long pendings; /* rounds in which a wait polled PENDING first */
    struct failure fail;
    struct counting_waker *cwa, *cwb;
    wisp_waitgroup_t wg;
    wisp_notify_t n;
    wisp_barrier_t b;
    wisp_semaphore_t sem;
    wisp_mutex_t m;
    wisp_rwlock_t rw;
    wisp_chan_tx_t *tx;
    wisp_chan_rx_t *rx;
    wisp_oneshot_tx_t *otx;
    wisp_oneshot_rx_t *orx;
    wisp_watch_tx_t *wtx;
    wisp_watch_rx_t *wrx;
    wisp_bcast_tx_t *btx;
    wisp_bcast_rx_t *brx;
};

static bool ev_meet(struct evrace *e, long target)
{
    atomic_fetch_add(&e->arrive, 1);
    unsigned spins = 0;
    while (atomic_load(&e->arrive) < target) {
        if (atomic_load(&e->stop))
            return false;
        if (++spins % 128 == 0)
            sched_yield();
    }
    return true;
}

static void ev_jitter(uint64_t *rng, unsigned range)
{
    for (unsigned k = (unsigned)(rng_next(rng) % range); k; k--)
        atomic_signal_fence(memory_order_seq_cst);
}

/* Polls f until READY with round r's waker c, waiting for a wake after each
 * PENDING; false if none came. */
static bool ev_drive(struct evrace *e, wisp_poll_fn poll, void *f, struct counting_waker *c,
                     void **out, long r)
{
    wisp_waker_t w = counting_waker(c);
    wisp_context_t cx = wisp_context_from_waker(&w);
    bool ok = true;
    for (bool first = true;; first = false) {
        long before = atomic_load(&c->wakes);
        if (poll(f, &cx, out) == WISP_READY)
            break;
        if (first)
            atomic_fetch_add(&e->pendings, 1);
        double end = mono() + 10;
        unsigned spins = 0;
        while (ok && atomic_load(&c->wakes) == before) {
            if (++spins % 256 == 0) {
                if (mono() > end) {
                    fail_later(&e->fail, "%s round %ld: PENDING and never woken", ev_names[e->kind],
                               r);
                    ok = false;
                }
                if (atomic_load(&e->stop))
                    ok = false;
                sched_yield();
            }
        }
        if (!ok)
            break;
    }
    wisp_waker_drop(&w);
    if (!ok)
        atomic_store(&e->stop, 1);
    return ok;
}

static wisp_poll_t ev_oneshot_poll(void *f, wisp_context_t *cx, void **out)
{
    int st;
    void *m = NULL;
    if (wisp_oneshot_recv_poll(*(wisp_oneshot_rx_t **)f, cx, &st, &m) == WISP_PENDING)
        return WISP_PENDING;
    *out = st == 0 ? m : MSG(0xdead);
    return WISP_READY;
}

static void ev_setup(struct evrace *e, long r)
{
    switch (e->kind) {
    case EV_WAITGROUP:
        wisp_waitgroup_add(&e->wg, 1);
        break;
    case EV_MUTEX:
        if (wisp_mutex_try_lock(&e->m) != 0)
            fail_later(&e->fail, "round %ld: the mutex is still held", r);
        break;
    case EV_RWLOCK:
        if (wisp_rwlock_try_write(&e->rw) != 0)
            fail_later(&e->fail, "round %ld: the rwlock is still held", r);
        break;
    case EV_CHAN_SEND:
        if (wisp_chan_try_send(e->tx, MSG(1)) != 0)
            fail_later(&e->fail, "round %ld: the channel is not empty", r);
        break;
    case EV_ONESHOT:
        if (wisp_oneshot_new(&e->otx, &e->orx, NULL) != 0)
            fail_later(&e->fail, "oneshot_new");
        break;
    default:
        break;
    }
}

static void ev_signal(struct evrace *e, long r)
{
    void *out = NULL, *m = NULL;
    switch (e->kind) {
    case EV_WAITGROUP:
        wisp_waitgroup_done(&e->wg);
        break;
    case EV_NOTIFY:
        wisp_notify_one(&e->n);
        break;
    case EV_BARRIER: {
        wisp_barrier_wait_t f;
        wisp_barrier_wait_init(&f, &e->b);
        if (ev_drive(e, wisp_barrier_wait_poll, &f, &e->cwa[r], &out, r))
            atomic_fetch_add(&e->leaders, (long)VAL(out));
        wisp_barrier_wait_drop(&f);
        break;
    }
    case EV_SEMAPHORE:
        wisp_semaphore_add_permits(&e->sem, 1);
        break;
    case EV_MUTEX:
        wisp_mutex_unlock(&e->m);
        break;
    case EV_RWLOCK:
        wisp_rwlock_write_unlock(&e->rw);
        break;
    case EV_CHAN_RECV:
        if (wisp_chan_try_send(e->tx, MSG(r + 1)) != 0)
            fail_later(&e->fail, "round %ld: try_send failed", r);
        break;
    case EV_CHAN_SEND:
        if (wisp_chan_try_recv(e->rx, &m) != 0 || VAL(m) != 1)
            fail_later(&e->fail, "round %ld: try_recv did not get the first message", r);
        break;
    case EV_ONESHOT:
        if (wisp_oneshot_send(e->otx, MSG(r + 1)) != 0)
            fail_later(&e->fail, "round %ld: oneshot_send failed", r);
        break;
    case EV_WATCH:
        if (wisp_watch_send(e->wtx, MSG(r + 1)) != 0)
            fail_later(&e->fail, "round %ld: watch_send failed", r);
        break;
    default:
        if (wisp_bcast_send(e->btx, MSG(r + 1), NULL) != 0)
            fail_later(&e->fail, "round %ld: bcast_send failed", r);
        break;
    }
}

static void ev_wait(struct evrace *e, long r)
{
    void *out = NULL;
    struct counting_waker *c = &e->cwb[r];
    union {
        wisp_waitgroup_wait_t wg;
        wisp_notified_t n;
        wisp_barrier_wait_t b;
        wisp_acquire_t a;
        wisp_mutex_lock_t m;
        wisp_rwlock_lock_t rw;
        wisp_chan_recv_t recv;
        wisp_chan_send_t send;
        wisp_watch_changed_t wc;
        wisp_bcast_recv_t br;
    } f;
    switch (e->kind) {
    case EV_WAITGROUP:
        wisp_waitgroup_wait_init(&f.wg, &e->wg);
        ev_drive(e, wisp_waitgroup_wait_poll, &f.wg, c, &out, r);
        wisp_waitgroup_wait_drop(&f.wg);
        break;
    case EV_NOTIFY:
        wisp_notified_init(&f.n, &e->n);
        ev_drive(e, wisp_notified_poll, &f.n, c, &out, r);
        wisp_notified_drop(&f.n);
        break;
    case EV_BARRIER:
        wisp_barrier_wait_init(&f.b, &e->b);
        if (ev_drive(e, wisp_barrier_wait_poll, &f.b, c, &out, r))
            atomic_fetch_add(&e->leaders, (long)VAL(out));
        wisp_barrier_wait_drop(&f.b);
        break;
    case EV_SEMAPHORE:
        wisp_acquire_init(&f.a, &e->sem, 1);
        if (ev_drive(e, wisp_acquire_poll, &f.a, c, &out, r) && out != NULL)
            fail_later(&e->fail, "round %ld: acquire status %d", r, STATUS(out));
        wisp_acquire_drop(&f.a);
        break;
    case EV_MUTEX:
        wisp_mutex_lock_init(&f.m, &e->m);
        if (ev_drive(e, wisp_mutex_lock_poll, &f.m, c, &out, r))
            wisp_mutex_unlock(&e->m);
        wisp_mutex_lock_drop(&f.m);
        break;
    case EV_RWLOCK:
        wisp_rwlock_read_init(&f.rw, &e->rw);
        if (ev_drive(e, wisp_rwlock_lock_poll, &f.rw, c, &out, r))
            wisp_rwlock_read_unlock(&e->rw);
        wisp_rwlock_lock_drop(&f.rw);
        break;
    case EV_CHAN_RECV:
        wisp_chan_recv_init(&f.recv, e->rx);
        if (ev_drive(e, wisp_chan_recv_poll, &f.recv, c, &out, r) && VAL(out) != (uintptr_t)r + 1)
            fail_later(&e->fail, "round %ld: received %lu", r, (unsigned long)VAL(out));
        wisp_chan_recv_drop(&f.recv);
        break;
    case EV_CHAN_SEND:
        wisp_chan_send_init(&f.send, e->tx, MSG(r + 2));
        if (ev_drive(e, wisp_chan_send_poll, &f.send, c, &out, r) && out != NULL)
            fail_later(&e->fail, "round %ld: send status %d", r, STATUS(out));
        wisp_chan_send_drop(&f.send);
        break;
    case EV_ONESHOT:
        if (ev_drive(e, ev_oneshot_poll, &e->orx, c, &out, r) && VAL(out) != (uintptr_t)r + 1)
            fail_later(&e->fail, "round %ld: oneshot gave %lu", r, (unsigned long)VAL(out));
        wisp_oneshot_rx_drop(e->orx);
        break;
    case EV_WATCH:
        wisp_watch_changed_init(&f.wc, e->wrx);
        if (ev_drive(e, wisp_watch_changed_poll, &f.wc, c, &out, r) &&
            VAL(wisp_watch_borrow(e->wrx)) != (uintptr_t)r + 1)
            fail_later(&e->fail, "round %ld: watch value", r);
        wisp_watch_changed_drop(&f.wc);
        break;
    default:
        wisp_bcast_recv_init(&f.br, e->brx);
        if (ev_drive(e, wisp_bcast_recv_poll, &f.br, c, &out, r) && VAL(out) != (uintptr_t)r + 1)
            fail_later(&e->fail, "round %ld: bcast gave %lu", r, (unsigned long)VAL(out));
        wisp_bcast_recv_drop(&f.br);
        break;
    }
}

static void ev_cleanup(struct evrace *e, long r)
{
    void *m = NULL;
    if (e->kind == EV_CHAN_SEND && (wisp_chan_try_recv(e->rx, &m) != 0 || VAL(m) != (uintptr_t)r + 2))
        fail_later(&e->fail, "round %ld: the waiting send's message is not there", r);
}

static void *ev_signaller(void *arg)
{
    struct evrace *e = arg;
    uint64_t rng = 0x853c49e6748fea9bull;
    for (long r = 0; r < e->iters; r++) {
        ev_setup(e, r);
        if (!ev_meet(e, 4 * r + 2))
            break;
        ev_jitter(&rng, 2048); /* the signal mostly later: the wait has more to do */
        ev_signal(e, r);
        if (!ev_meet(e, 4 * r + 4))
            break;
        ev_cleanup(e, r);
    }
    return NULL;
}

static void *ev_waiter(void *arg)
{
    struct evrace *e = arg;
    uint64_t rng = 0xda3e39cb94b95bdbull;
    for (long r = 0; r < e->iters; r++) {
        if (!ev_meet(e, 4 * r + 2))
            break;
        ev_jitter(&rng, 128);
        ev_wait(e, r);
        if (!ev_meet(e, 4 * r + 4))
            break;
    }
    return NULL;
}

START_TEST(signal_races_first_wait_no_lost_wakeup)
{
    struct evrace *e = calloc(1, sizeof(*e));
    e->kind = _i;
    e->iters = stress(10000);
    e->cwa = calloc((size_t)e->iters, sizeof(*e->cwa));
    e->cwb = calloc((size_t)e->iters, sizeof(*e->cwb));
    wisp_waitgroup_init(&e->wg);
    wisp_notify_init(&e->n);
    ck_assert_int_eq(wisp_barrier_init(&e->b, 2), 0);
    ck_assert_int_eq(wisp_semaphore_init(&e->sem, 0), 0);
    wisp_mutex_init(&e->m);
    wisp_rwlock_init(&e->rw);
    ck_assert_int_eq(wisp_mpsc_new(&e->tx, &e->rx, 1, NULL), 0);
    ck_assert_int_eq(wisp_watch_new(&e->wtx, &e->wrx, MSG(0), NULL, NULL), 0);
    ck_assert_int_eq(wisp_bcast_new(&e->btx, &e->brx, 4, NULL, NULL), 0);
    pthread_t a, b;
    ck_assert_int_eq(pthread_create(&a, NULL, ev_signaller, e), 0);
    ck_assert_int_eq(pthread_create(&b, NULL, ev_waiter, e), 0);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    check_no_failure(&e->fail);
    fprintf(stderr, "signal vs wait, %s: %ld of %ld waits were PENDING first\n", ev_names[_i],
            atomic_load(&e->pendings), e->iters);
    if (_i == EV_BARRIER)
        ck_assert_int_eq(atomic_load(&e->leaders), e->iters);
    for (long r = 0; r < e->iters; r++)
        ck_assert_int_eq(atomic_load(&e->cwa[r].refs) + atomic_load(&e->cwb[r].refs), 0);
    /* every signal consumed: nothing stored for a later wait */
    struct hand h;
    hand_init(&h);
    wisp_notified_t nf;
    wisp_notified_init(&nf, &e->n);
    ck_pending(wisp_notified_poll, &nf, &h);
    wisp_notified_drop(&nf);
    hand_fini(&h);
    ck_assert_uint_eq(wisp_semaphore_available(&e->sem), 0);
    ck_assert_int_eq(wisp_waitgroup_count(&e->wg), 0);
    wisp_chan_tx_drop(e->tx);
    wisp_chan_rx_drop(e->rx);
    wisp_watch_tx_drop(e->wtx);
    wisp_watch_rx_drop(e->wrx);
    wisp_bcast_tx_drop(e->btx);
    wisp_bcast_rx_drop(e->brx);
    wisp_waitgroup_destroy(&e->wg);
    wisp_notify_destroy(&e->n);
    wisp_barrier_destroy(&e->b);
    wisp_semaphore_destroy(&e->sem);
    wisp_mutex_destroy(&e->m);
    wisp_rwlock_destroy(&e->rw);
    free(e->cwa);
    free(e->cwb);
    free(e);
}
END_TEST

/* ==== the last done() against the wait it releases ========================== */

struct wgrace {
    wisp_waitgroup_t *wg;
    long iters;
    _Atomic long arrive, done_rounds;
    _Atomic int stop;
};

static void *wg_doer(void *arg)
{
    struct wgrace *w = arg;
    uint64_t rng = 0x6a09e667f3bcc909ull;
    for (long r = 0; r < w->iters; r++) {
        atomic_fetch_add(&w->arrive, 1);
        while (atomic_load(&w->arrive) < 2 * r + 2)
            if (atomic_load(&w->stop))
                return NULL;
        ev_jitter(&rng, 512);
        wisp_waitgroup_done(w->wg);
        atomic_store(&w->done_rounds, r + 1);
    }
    return NULL;
}

/* Once a wait has seen the count at zero, its owner may destroy the wait
 * group at once (it is in the owner's memory; the tasks that called done
 * are not futures of it).  So the done() that brings the count to zero
 * must not touch the wait group after a wait can see zero.  Each round the
 * test thread polls a wait until READY while another thread calls the last
 * done(); then it fills the wait group with a pattern and checks, once
 * done() returned, that nothing wrote to it (nor hung on it). */
START_TEST(waitgroup_done_does_not_touch_it_after_the_wait)
{
    struct wgrace *w = calloc(1, sizeof(*w));
    w->wg = malloc(sizeof(*w->wg));
    w->iters = stress(20000);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, wg_doer, w), 0);
    struct hand h;
    hand_init(&h);
    unsigned char pattern[sizeof(wisp_waitgroup_t)];
    memset(pattern, 0xa5, sizeof(pattern));
    long late = 0, pending = 0;
    for (long r = 0; r < w->iters; r++) {
        wisp_waitgroup_init(w->wg);
        wisp_waitgroup_add(w->wg, 1);
        atomic_fetch_add(&w->arrive, 1);
        while (atomic_load(&w->arrive) < 2 * r + 2)
            ;
        wisp_waitgroup_wait_t f;
        wisp_waitgroup_wait_init(&f, w->wg);
        bool first = true;
        while (hpoll(wisp_waitgroup_wait_poll, &f, &h, NULL) == WISP_PENDING) {
            pending += first;
            first = false;
        }
        wisp_waitgroup_wait_drop(&f);
        wisp_waitgroup_destroy(w->wg);
        memcpy(w->wg, pattern, sizeof(pattern)); /* as if freed and reused */
        double end = mono() + 5;
        while (atomic_load(&w->done_rounds) != r + 1) {
            if (mono() > end) {
                atomic_store(&w->stop, 1);
                ck_abort_msg("round %ld: done() did not return after the wait completed: it is "
                             "still using the wait group",
                             r);
            }
            sched_yield();
        }
        if (memcmp(w->wg, pattern, sizeof(pattern)) != 0)
            late++;
    }
    pthread_join(th, NULL);
    hand_fini(&h);
    free(w->wg);
    free(w);
    fprintf(stderr, "waitgroup: %ld of %ld waits PENDING first; done() wrote to it afterwards "
                    "%ld times\n",
            pending, stress(20000), late);
    ck_assert_msg(late == 0,
                  "%ld times the last done() wrote to the wait group after a wait had seen the "
                  "count at zero (its owner may have freed it by then)",
                  late);
}
END_TEST

/* ==== the last handles of both sides dropped at once ========================== */

/* A waker whose first wake (once armed) stops until the test says go on:
 * a wake running long, as on a preempted thread, held open on purpose. */
struct gate {
    _Atomic int armed, in_wake, go_on;
    _Atomic long wakes, refs;
};

static void gate_hold(struct gate *g)
{
    if (atomic_exchange(&g->armed, 0) != 1)
        return;
    atomic_store(&g->in_wake, 1);
    double end = mono() + 10;
    while (!atomic_load(&g->go_on) && mono() < end)
        sched_yield();
}

static wisp_waker_t gate_clone(const void *d);
static void gate_wake(const void *d)
{
    struct gate *g = (struct gate *)d;
    gate_hold(g);
    atomic_fetch_add(&g->wakes, 1);
    atomic_fetch_sub(&g->refs, 1);
}
static void gate_wake_by_ref(const void *d)
{
    struct gate *g = (struct gate *)d;
    gate_hold(g);
    atomic_fetch_add(&g->wakes, 1);
}
static void gate_drop(const void *d)
{
    atomic_fetch_sub(&((struct gate *)d)->refs, 1);
}
static const wisp_waker_vtable_t gate_vtable = { gate_clone, gate_wake, gate_wake_by_ref,
                                                 gate_drop };
static wisp_waker_t gate_clone(const void *d)
{
    atomic_fetch_add(&((struct gate *)d)->refs, 1);
    return (wisp_waker_t){ d, &gate_vtable };
}

enum { GATE_CHAN_RX_DROP, GATE_CHAN_TX_DROP, GATE_BCAST_TX_DROP, GATE_WATCH_TX_DROP, GATE_CASES };
#define GATE_WAITERS 40 /* more than one batch of wakes (WAKE_LIST_MAX 32) */

struct gate_case {
    int which;
    struct gate g;
    wisp_chan_tx_t *tx;
    wisp_chan_rx_t *rx;
    wisp_bcast_tx_t *btx;
    wisp_watch_tx_t *wtx;
};

static void *gate_dropper(void *arg)
{
    struct gate_case *c = arg;
    switch (c->which) {
    case GATE_CHAN_RX_DROP:
        wisp_chan_rx_drop(c->rx);
        break;
    case GATE_CHAN_TX_DROP:
        wisp_chan_tx_drop(c->tx);
        break;
    case GATE_BCAST_TX_DROP:
        wisp_bcast_tx_drop(c->btx);
        break;
    default:
        wisp_watch_tx_drop(c->wtx);
        break;
    }
    return NULL;
}

/* One side's last handle is dropped while more than a batch of the other
 * side's futures wait: the drop wakes them in batches, and in the middle
 * of it (its first wake held open) every waiting future and every handle
 * of the other side is dropped too.  The channel is freed once, after
 * both are done with it (ASan: no use after free, no double free, no
 * leak).  Loop: chan rx drop vs waiting senders, chan tx drop vs waiting
 * MPMC receivers, broadcast and watch tx drop vs waiting receivers. */
START_TEST(last_handles_dropped_during_wakes)
{
    enum { N = GATE_WAITERS };
    drops_reset();
    struct gate_case *c = calloc(1, sizeof(*c));
    c->which = _i;
    wisp_waker_t w = gate_clone(&c->g);
    wisp_context_t cx = wisp_context_from_waker(&w);
    void *futs = calloc(N, sizeof(wisp_chan_send_t) > sizeof(wisp_bcast_recv_t)
                               ? sizeof(wisp_chan_send_t) : sizeof(wisp_bcast_recv_t));
    wisp_chan_send_t *sends = futs;
    wisp_chan_recv_t *recvs = futs;
    wisp_bcast_recv_t *brecvs = futs;
    wisp_watch_changed_t *wchs = futs;
    wisp_chan_tx_t *txs[N];
    wisp_chan_rx_t *rxs[N];
    wisp_bcast_rx_t *brxs[N];
    wisp_watch_rx_t *wrxs[N];
    void *out;
    switch (_i) {
    case GATE_CHAN_RX_DROP: /* N senders wait on a full channel */
        ck_assert_int_eq(wisp_mpsc_new(&c->tx, &c->rx, 1, drop_id), 0);
        ck_assert_int_eq(wisp_chan_try_send(c->tx, MSG(1)), 0);
        for (int i = 0; i < N; i++) {
            txs[i] = wisp_chan_tx_clone(c->tx);
            wisp_chan_send_init(&sends[i], txs[i], MSG(2));
            ck_assert_int_eq(wisp_chan_send_poll(&sends[i], &cx, &out), WISP_PENDING);
        }
        wisp_chan_tx_drop(c->tx);
        break;
    case GATE_CHAN_TX_DROP: /* N receivers wait on an empty MPMC channel */
        ck_assert_int_eq(wisp_mpmc_new(&c->tx, &c->rx, 1, drop_id), 0);
        for (int i = 0; i < N; i++) {
            rxs[i] = wisp_chan_rx_clone(c->rx);
            wisp_chan_recv_init(&recvs[i], rxs[i]);
            ck_assert_int_eq(wisp_chan_recv_poll(&recvs[i], &cx, &out), WISP_PENDING);
        }
        wisp_chan_rx_drop(c->rx);
        break;
    case GATE_BCAST_TX_DROP:
    {
        wisp_bcast_rx_t *first;
        ck_assert_int_eq(wisp_bcast_new(&c->btx, &first, 2, NULL, drop_id), 0);
        ck_assert_int_eq(wisp_bcast_send(c->btx, MSG(3), NULL), 0); /* kept in the ring */
        for (int i = 0; i < N; i++) {
            ck_assert_int_eq(wisp_bcast_subscribe(c->btx, &brxs[i]), 0);
            wisp_bcast_recv_init(&brecvs[i], brxs[i]);
            ck_assert_int_eq(wisp_bcast_recv_poll(&brecvs[i], &cx, &out), WISP_PENDING);
        }
        wisp_bcast_rx_drop(first);
        break;
    }
    default: {
        wisp_watch_rx_t *first;
        ck_assert_int_eq(wisp_watch_new(&c->wtx, &first, MSG(3), NULL, drop_id), 0);
        for (int i = 0; i < N; i++) {
            ck_assert_int_eq(wisp_watch_subscribe(c->wtx, &wrxs[i]), 0);
            wisp_watch_changed_init(&wchs[i], wrxs[i]);
            ck_assert_int_eq(wisp_watch_changed_poll(&wchs[i], &cx, &out), WISP_PENDING);
        }
        wisp_watch_rx_drop(first);
        break;
    }
    }
    atomic_store(&c->g.armed, 1);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, gate_dropper, c), 0);
    /* the first wake is held open: the drop is between two batches */
    double end = mono() + 10;
    while (!atomic_load(&c->g.in_wake) && mono() < end)
        sched_yield();
    ck_assert_msg(atomic_load(&c->g.in_wake), "the drop woke nobody");
    for (int i = 0; i < N; i++) {
        switch (_i) {
        case GATE_CHAN_RX_DROP:
            wisp_chan_send_drop(&sends[i]);
            wisp_chan_tx_drop(txs[i]);
            break;
        case GATE_CHAN_TX_DROP:
            wisp_chan_recv_drop(&recvs[i]);
            wisp_chan_rx_drop(rxs[i]);
            break;
        case GATE_BCAST_TX_DROP:
            wisp_bcast_recv_drop(&brecvs[i]);
            wisp_bcast_rx_drop(brxs[i]);
            break;
        default:
            wisp_watch_changed_drop(&wchs[i]);
            wisp_watch_rx_drop(wrxs[i]);
            break;
        }
    }
    atomic_store(&c->g.go_on, 1);
    pthread_join(th, NULL);
    wisp_waker_drop(&w);
    ck_assert_int_eq(atomic_load(&c->g.refs), 0);
    /* freed exactly once: the queued message / the watch value dropped once */
    long d = atomic_load(&g_dropped[_i == GATE_CHAN_RX_DROP ? 1 : 3]);
    if (_i != GATE_CHAN_TX_DROP) /* that one holds nothing: only ASan sees it */
        ck_assert_msg(d == 1, "the channel was freed %ld times (what it held was dropped %ld times)",
                      d, d);
    free(futs);
    free(c);
}
END_TEST

/* ==== polled again after READY ============================================== */

/* "A future may be polled again after READY: it stays READY with the same
 * result."  Every kind of future, output and status. */
START_TEST(polled_again_after_ready_same_result)
{
    drops_reset();
    struct hand h;
    hand_init(&h);
    void *out;
    char bad[512] = "";
#define AGAIN(what, fn, f, want)                                                            \
    do {                                                                                    \
        ck_assert_msg(hpoll((fn), (f), &h, &out) == WISP_READY, "%s: PENDING again", what); \
        if (out != (want))                                                                  \
            snprintf(bad + strlen(bad), sizeof(bad) - strlen(bad), " %s: %p, not %p;", what, \
                     out, (void *)(want));                                                  \
    } while (0)

    wisp_chan_tx_t *tx;
    wisp_chan_rx_t *rx;
    ck_assert_int_eq(wisp_mpmc_new(&tx, &rx, 2, drop_id), 0);
    wisp_chan_send_t s;
    wisp_chan_send_init(&s, tx, MSG(5));
    ck_ready(wisp_chan_send_poll, &s, &h, &out);
    AGAIN("chan send", wisp_chan_send_poll, &s, MSG(0));
    wisp_chan_send_drop(&s);
    wisp_chan_recv_t r;
    wisp_chan_recv_init(&r, rx);
    ck_ready(wisp_chan_recv_poll, &r, &h, &out);
    ck_assert_uint_eq(VAL(out), 5);
    AGAIN("chan recv", wisp_chan_recv_poll, &r, NULL); /* a message is handed out once */
    ck_assert_int_eq(wisp_chan_recv_status(&r), 0);     /* the status stays */
    ck_assert_int_eq(wisp_chan_recv_status(&r), 0);
    wisp_chan_recv_drop(&r);

    wisp_mutex_t m;
    wisp_mutex_init(&m);
    wisp_mutex_lock_t l;
    wisp_mutex_lock_init(&l, &m);
    ck_ready(wisp_mutex_lock_poll, &l, &h, &out);
    AGAIN("mutex lock", wisp_mutex_lock_poll, &l, NULL);
    wisp_mutex_lock_drop(&l);
    wisp_mutex_unlock(&m);
    wisp_mutex_destroy(&m);

    wisp_semaphore_t sem;
    wisp_semaphore_init(&sem, 0);
    wisp_semaphore_close(&sem);
    wisp_acquire_t a;
    wisp_acquire_init(&a, &sem, 1);
    ck_ready(wisp_acquire_poll, &a, &h, &out);
    AGAIN("acquire (closed)", wisp_acquire_poll, &a, MSG(-EPIPE));
    wisp_acquire_drop(&a);
    wisp_semaphore_destroy(&sem);

    wisp_notify_t n;
    wisp_notify_init(&n);
    wisp_notify_one(&n);
    wisp_notified_t nf;
    wisp_notified_init(&nf, &n);
    ck_ready(wisp_notified_poll, &nf, &h, &out);
    AGAIN("notified", wisp_notified_poll, &nf, NULL);
    wisp_notified_drop(&nf);
    wisp_notify_destroy(&n);

    wisp_bcast_tx_t *btx;
    wisp_bcast_rx_t *brx;
    ck_assert_int_eq(wisp_bcast_new(&btx, &brx, 2, NULL, drop_id), 0);
    ck_assert_int_eq(wisp_bcast_send(btx, MSG(6), NULL), 0);
    wisp_bcast_recv_t br;
    wisp_bcast_recv_init(&br, brx);
    ck_ready(wisp_bcast_recv_poll, &br, &h, &out);
    ck_assert_uint_eq(VAL(out), 6);
    AGAIN("bcast recv", wisp_bcast_recv_poll, &br, NULL); /* handed out once */
    ck_assert_int_eq(wisp_bcast_recv_status(&br), 0);
    wisp_bcast_recv_drop(&br);

    wisp_watch_tx_t *wtx;
    wisp_watch_rx_t *wrx;
    ck_assert_int_eq(wisp_watch_new(&wtx, &wrx, MSG(7), NULL, NULL), 0);
    wisp_watch_borrow(wrx);
    wisp_watch_send(wtx, MSG(8));
    wisp_watch_changed_t wc;
    wisp_watch_changed_init(&wc, wrx);
    ck_ready(wisp_watch_changed_poll, &wc, &h, &out);
    AGAIN("watch changed", wisp_watch_changed_poll, &wc, MSG(0));
    wisp_watch_changed_drop(&wc);

    wisp_oneshot_tx_t *otx;
    wisp_oneshot_rx_t *orx;
    int ost = 99;
    void *om;
    ck_assert_int_eq(wisp_oneshot_new(&otx, &orx, drop_id), 0);
    ck_assert_int_eq(wisp_oneshot_send(otx, MSG(4)), 0);
    ck_assert_int_eq(wisp_oneshot_recv_poll(orx, &h.cx, &ost, &om), WISP_READY);
    ck_assert_int_eq(ost, 0);
    ck_assert_int_eq(wisp_oneshot_recv_poll(orx, &h.cx, &ost, &om), WISP_READY);
    if (ost != -EPIPE || om != NULL) /* the header: nothing more will come */
        snprintf(bad + strlen(bad), sizeof(bad) - strlen(bad),
                 " oneshot recv: status %d, msg %p, not -EPIPE, NULL;", ost, om);
    wisp_oneshot_rx_drop(orx);

    wisp_waitgroup_t wg;
    wisp_waitgroup_init(&wg);
    wisp_waitgroup_wait_t wf;
    wisp_waitgroup_wait_init(&wf, &wg);
    ck_ready(wisp_waitgroup_wait_poll, &wf, &h, &out);
    AGAIN("waitgroup wait", wisp_waitgroup_wait_poll, &wf, NULL);
    wisp_waitgroup_wait_drop(&wf);
    wisp_waitgroup_destroy(&wg);

    struct toy t[2] = { { .ready = 0 }, { .ready = 1, .value = 9 } };
    wisp_branch_t b[2] = { { toy_poll, toy_drop, &t[0] }, { toy_poll, toy_drop, &t[1] } };
    wisp_select_t sel;
    ck_assert_int_eq(wisp_select_init(&sel, b, 2, 0), 0);
    ck_ready(wisp_select_poll, &sel, &h, &out);
    ck_assert_uint_eq(VAL(out), 9);
    AGAIN("select", wisp_select_poll, &sel, MSG(9));
    ck_assert_int_eq(wisp_select_winner(&sel), 1);
    ck_assert_int_eq(t[1].polls, 1); /* the winner is not polled again */
    wisp_select_drop(&sel);

    wisp_chan_tx_drop(tx);
    wisp_chan_rx_drop(rx);
    wisp_bcast_tx_drop(btx);
    wisp_bcast_rx_drop(brx);
    wisp_watch_tx_drop(wtx);
    wisp_watch_rx_drop(wrx);
    hand_fini(&h);
    ck_assert_msg(bad[0] == 0, "polled again after READY, a different output:%s", bad);
#undef AGAIN
}
END_TEST

/* A bounded channel's capacity counts undelivered messages only: a message
 * the receiver has taken frees its slot at once, even while the receiver
 * delivers from a batch it noted under the lock (sync_chan.c). */
START_TEST(received_messages_free_their_slots_at_once)
{
    wisp_chan_tx_t *tx;
    wisp_chan_rx_t *rx;
    ck_assert_int_eq(wisp_mpsc_new(&tx, &rx, 4, NULL), 0);
    for (uintptr_t v = 1; v <= 4; v++)
        ck_assert_int_eq(wisp_chan_try_send(tx, MSG(v)), 0);
    ck_assert_int_eq(wisp_chan_try_send(tx, MSG(9)), -EAGAIN);
    void *m;
    ck_assert_int_eq(wisp_chan_try_recv(rx, &m), 0);
    ck_assert_uint_eq(VAL(m), 1);
    ck_assert_int_eq(wisp_chan_try_recv(rx, &m), 0);
    ck_assert_uint_eq(VAL(m), 2);
    ck_assert_uint_eq(wisp_chan_len(rx), 2);
    ck_assert_int_eq(wisp_chan_try_send(tx, MSG(5)), 0);
    ck_assert_int_eq(wisp_chan_try_send(tx, MSG(6)), 0);
    ck_assert_int_eq(wisp_chan_try_send(tx, MSG(9)), -EAGAIN); /* 3, 4, 5, 6 */
    /* a sender that queues now is served by the next receive */
    struct hand h;
    hand_init(&h);
    wisp_chan_send_t s;
    wisp_chan_send_init(&s, tx, MSG(7));
    ck_pending(wisp_chan_send_poll, &s, &h);
    for (uintptr_t v = 3; v <= 6; v++) {
        ck_assert_int_eq(wisp_chan_try_recv(rx, &m), 0);
        ck_assert_uint_eq(VAL(m), v);
        if (v == 3)
            ck_assert_int_ge(woken(&h), 1);
    }
    void *out;
    ck_ready(wisp_chan_send_poll, &s, &h, &out);
    ck_assert_int_eq(STATUS(out), 0);
    wisp_chan_send_drop(&s);
    ck_assert_int_eq(wisp_chan_try_recv(rx, &m), 0);
    ck_assert_uint_eq(VAL(m), 7);
    ck_assert_int_eq(wisp_chan_try_recv(rx, &m), -EAGAIN);
    wisp_chan_tx_drop(tx);
    wisp_chan_rx_drop(rx);
    hand_fini(&h);
}
END_TEST

/* ==== a timeout around a receive ========================================== */

struct timed_recv {
    wisp_timeout_t t;
    wisp_chan_recv_t recv;
    int status;
};

static wisp_poll_t timed_recv_poll(void *f, wisp_context_t *cx, void **out)
{
    struct timed_recv *tr = f;
    return wisp_timeout_poll(&tr->t, cx, &tr->status, out);
}

struct late_send {
    wisp_sleep_t sleep;
    wisp_chan_tx_t *tx;
    int armed;
};

static wisp_poll_t late_send_poll(void *f, wisp_context_t *cx, void **out)
{
    struct late_send *ls = f;
    (void)out;
    if (!ls->armed) {
        wisp_sleep_init(&ls->sleep, 5 * 1000000ull);
        ls->armed = 1;
    }
    if (wisp_sleep_poll(&ls->sleep, cx, NULL) == WISP_PENDING)
        return WISP_PENDING;
    wisp_sleep_drop(&ls->sleep);
    ck_assert_int_eq(wisp_chan_try_send(ls->tx, MSG(77)), 0);
    return WISP_READY;
}

/* wisp_timeout_t bounds a receive: on an empty channel it times out, and
 * the receive dropped then took nothing (a message sent after is received
 * by the next receive); a message that comes in time is the output. */
START_TEST(timeout_around_a_receive)
{
    wisp_runtime_t *rt = rt_new(2);
    wisp_chan_tx_t *tx;
    wisp_chan_rx_t *rx;
    ck_assert_int_eq(wisp_mpsc_new(&tx, &rx, 4, NULL), 0);
    struct timed_recv tr;
    void *out = MSG(1);
    wisp_chan_recv_init(&tr.recv, rx);
    wisp_timeout_init(&tr.t, 20 * 1000000ull, wisp_chan_recv_poll, &tr.recv);
    uint64_t t0 = wisp_now_ns();
    ck_assert_int_eq(wisp_block_on(rt, timed_recv_poll, &tr, &out), 0);
    ck_assert_int_eq(tr.status, -ETIMEDOUT);
    ck_assert_uint_ge(wisp_now_ns() - t0, 20 * 1000000ull);
    wisp_timeout_drop(&tr.t);
    wisp_chan_recv_drop(&tr.recv); /* queued when dropped: takes nothing */
    ck_assert_int_eq(wisp_chan_try_send(tx, MSG(5)), 0);
    void *m = NULL;
    ck_assert_int_eq(wisp_chan_try_recv(rx, &m), 0);
    ck_assert_uint_eq(VAL(m), 5);

    /* in time: a task sends after 5 ms, the timeout is 10 s */
    struct late_send ls = { .tx = tx };
    ck_assert_int_eq(wisp_spawn(rt, late_send_poll, &ls, sizeof(ls), NULL, NULL), 0);
    wisp_chan_recv_init(&tr.recv, rx);
    wisp_timeout_init(&tr.t, 10000 * 1000000ull, wisp_chan_recv_poll, &tr.recv);
    ck_assert_int_eq(wisp_block_on(rt, timed_recv_poll, &tr, &out), 0);
    ck_assert_int_eq(tr.status, 0);
    ck_assert_uint_eq(VAL(out), 77);
    ck_assert_int_eq(wisp_chan_recv_status(&tr.recv), 0);
    wisp_timeout_drop(&tr.t);
    wisp_chan_recv_drop(&tr.recv);
    wisp_chan_tx_drop(tx);
    wisp_chan_rx_drop(rx);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

/* ==== misuse the debug build catches =================================== */

static void *unlock_elsewhere(void *m)
{
    wisp_mutex_unlock(m); /* held by the main thread: not ours */
    return NULL;
}

/* Runs fn in a child; in a WISP_DEBUG build it must abort (SIGABRT). */
static void expect_debug_abort(void (*fn)(void), const char *what)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stderr)) /* the report is expected */
            _exit(3);
        fn();
        _exit(0);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
                  "%s: not caught by the debug build", what);
}

static void mutex_unlocked_by_non_holder(void)
{
    wisp_mutex_t m;
    wisp_mutex_init(&m);
    if (wisp_mutex_try_lock(&m) != 0)
        _exit(4);
    pthread_t t;
    pthread_create(&t, NULL, unlock_elsewhere, &m);
    pthread_join(t, NULL);
}

static void mutex_unlocked_twice(void)
{
    wisp_mutex_t m;
    wisp_mutex_init(&m);
    if (wisp_mutex_try_lock(&m) != 0)
        _exit(4);
    wisp_mutex_unlock(&m);
    wisp_mutex_unlock(&m);
}

static void permit_released_twice(void)
{
    wisp_semaphore_t s;
    if (wisp_semaphore_init(&s, 2) != 0 || wisp_semaphore_try_acquire(&s, 1) != 0)
        _exit(4);
    wisp_semaphore_release(&s, 1);
    wisp_semaphore_release(&s, 1);
}

START_TEST(misuse_caught_in_debug_builds)
{
    if (!WISP_DEBUG)
        return; /* undefined there: documented, not checked */
    expect_debug_abort(mutex_unlocked_by_non_holder, "a mutex unlocked by a non-holder");
    expect_debug_abort(mutex_unlocked_twice, "a mutex unlocked twice");
    expect_debug_abort(permit_released_twice, "a permit released twice");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sync");
    TCase *tc = tcase_create("sync");
    tcase_set_timeout(tc, TEST_TIMEOUT);
    /* bad input, closed channels */
    tcase_add_test(tc, bad_arguments);
    tcase_add_test(tc, misuse_caught_in_debug_builds);
    tcase_add_test(tc, timeout_around_a_receive);
    tcase_add_test(tc, received_messages_free_their_slots_at_once);
    tcase_add_test(tc, select_and_join_all_of_nothing);
    tcase_add_test(tc, try_forms_on_closed_channels);
    /* FIFO, no barging */
    tcase_add_test(tc, mutex_waiters_lock_in_fifo_order);
    tcase_add_test(tc, semaphore_big_request_blocks_later_small_ones);
    tcase_add_test(tc, rwlock_queued_writer_blocks_later_readers);
    tcase_add_loop_test(tc, bounded_senders_served_fifo, K_MPSC, K_MPMC + 1);
    tcase_add_test(tc, mpmc_receivers_served_fifo);
    tcase_add_test(tc, notify_one_wakes_the_longest_waiter);
    /* dropped while queued */
    tcase_add_test(tc, recv_dropped_after_wake_leaves_the_message);
    tcase_add_loop_test(tc, send_dropped_while_waiting_did_not_send, K_MPSC, K_MPMC + 1);
    tcase_add_test(tc, lock_dropped_after_handoff_passes_it_on);
    tcase_add_test(tc, notified_dropped_after_notify_passes_it_on);
    /* oneshot, closing */
    tcase_add_test(tc, oneshot_send_receive_and_close);
    tcase_add_loop_test(tc, last_sender_dropped_while_receiver_waits, 0, 3);
    tcase_add_loop_test(tc, receiver_dropped_while_senders_wait, K_MPSC, K_MPMC + 1);
    tcase_add_loop_test(tc, chan_close_wakes_waiters_keeps_messages, 0, 3);
    tcase_add_test(tc, unbounded_grows_and_keeps_order);
    tcase_add_test(tc, close_races_send_each_message_once);
    tcase_add_test(tc, oneshot_send_races_receiver_drop);
    /* stress */
    tcase_add_loop_test(tc, mpmc_8x8_every_message_once, 0, 3);
    tcase_add_loop_test(tc, mpsc_8x1_fifo_per_producer, 0, 3);
    tcase_add_loop_test(tc, bcast_receivers_see_every_message_or_count_it, 0, 2);
    tcase_add_test(tc, bcast_lag_and_subscribe);
    tcase_add_test(tc, watch_changes_and_borrow);
    tcase_add_test(tc, watch_receivers_see_the_final_value);
    tcase_add_test(tc, mutex_held_across_yields);
    /* select, join_all */
    tcase_add_test(tc, select_losers_take_nothing);
    tcase_add_test(tc, select_drops_and_rotation);
    tcase_add_loop_test(tc, select_over_64_channels, 0, 5);
    tcase_add_test(tc, join_all_outputs_in_their_slots);
    tcase_add_test(tc, join_all_of_sleeps_and_tasks);
    /* atomic waker */
    tcase_add_test(tc, atomic_waker_register_wake_take);
    tcase_add_test(tc, atomic_waker_no_lost_wakeup_threads);
    tcase_add_test(tc, atomic_waker_no_lost_wakeup_task);
    /* barrier, wait group */
    tcase_add_test(tc, barrier_by_hand);
    tcase_add_test(tc, barrier_generations_one_leader_each);
    tcase_add_test(tc, waitgroup_by_hand);
    tcase_add_test(tc, waitgroup_wait_after_all_done);
    tcase_add_test(tc, polled_again_after_ready_same_result);
    tcase_add_loop_test(tc, signal_races_first_wait_no_lost_wakeup, 0, EV_KINDS);
    tcase_add_test(tc, waitgroup_done_does_not_touch_it_after_the_wait);
    suite_add_tcase(s, tc);
    /* a case of its own (CK_RUN_CASE=last_handles): under ASan with CK_FORK=no
     * a use after free there ends the whole process */
    TCase *tl = tcase_create("last_handles");
    tcase_set_timeout(tl, TEST_TIMEOUT);
    tcase_add_loop_test(tl, last_handles_dropped_during_wakes, 0, GATE_CASES);
    suite_add_tcase(s, tl);
    return run_suite(s);
}
