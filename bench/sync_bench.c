/* sync_bench.c - wisp-bench's workloads of the sync primitives
 * (wisp/sync.h), each the shape of its Tokio peer in bench/peers/tokio:
 *
 *   ping_pong         Tokio's benches/rt_multi_threaded.rs ping_pong: per
 *                     round a root task spawns 1,000 pingers; each makes
 *                     two oneshots, spawns a ponger that awaits the first
 *                     and answers on the second, sends, awaits the answer;
 *                     the last pinger ends the round.  n pairs in all (the
 *                     last round takes n % 1,000); ns per pair.
 *   ping_pong_rounds  two tasks bounce a value n times over two bounded(1)
 *                     channels; ns per round trip.
 *   chan_mpsc         4 producers send n values (producer p: p, p+4, ...)
 *                     into one bounded(1,024) channel; one consumer takes
 *                     them all; ns per message.
 *   mutex_contended   8 tasks take one async mutex n/8 times each (the
 *                     first n % 8 once more), increment the counter it
 *                     guards, and yield after every 64th acquisition (the
 *                     lock released); ns per acquisition.
 * Each checks its own result and exits 1 if it is wrong. */
#include <stdatomic.h>
#include <stdint.h>

#include "bench.h"
#include "sync_bench.h"

/* ---- ping_pong ------------------------------------------------------------- */

#define PINGS_PER_ROUND 1000

struct pp_round {
    wisp_runtime_t *rt;
    long pings;
    _Atomic long remaining;
    _Atomic long pongs;
    struct latch latch;
};

struct ponger {
    wisp_oneshot_rx_t *rx1;
    wisp_oneshot_tx_t *tx2;
    struct pp_round *r;
};

static wisp_poll_t ponger_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)out;
    struct ponger *p = f;
    int st;
    if (wisp_oneshot_recv_poll(p->rx1, cx, &st, NULL) == WISP_PENDING)
        return WISP_PENDING;
    if (st != 0)
        die("ping_pong: ponger recv", st);
    wisp_oneshot_rx_drop(p->rx1);
    atomic_fetch_add_explicit(&p->r->pongs, 1, memory_order_relaxed);
    int err = wisp_oneshot_send(p->tx2, NULL);
    if (err)
        die("ping_pong: ponger send", err);
    return WISP_READY;
}

struct pinger {
    struct pp_round *r;
    wisp_oneshot_rx_t *rx2; /* NULL until the first poll */
};

static wisp_poll_t pinger_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)out;
    struct pinger *p = f;
    if (!p->rx2) {
        wisp_oneshot_tx_t *tx1 = NULL, *tx2 = NULL;
        wisp_oneshot_rx_t *rx1 = NULL;
        int err = wisp_oneshot_new(&tx1, &rx1, NULL);
        if (!err)
            err = wisp_oneshot_new(&tx2, &p->rx2, NULL);
        if (err)
            die("ping_pong: oneshot", err);
        struct ponger pg = { rx1, tx2, p->r };
        err = wisp_spawn(p->r->rt, ponger_poll, &pg, sizeof(pg), NULL, NULL);
        if (err)
            die("ping_pong: spawn", err);
        err = wisp_oneshot_send(tx1, NULL);
        if (err)
            die("ping_pong: pinger send", err);
    }
    int st;
    if (wisp_oneshot_recv_poll(p->rx2, cx, &st, NULL) == WISP_PENDING)
        return WISP_PENDING;
    if (st != 0)
        die("ping_pong: pinger recv", st);
    wisp_oneshot_rx_drop(p->rx2);
    if (atomic_fetch_sub_explicit(&p->r->remaining, 1, memory_order_acq_rel) == 1)
        latch_set(&p->r->latch);
    return WISP_READY;
}

static wisp_poll_t pp_root_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)cx;
    (void)out;
    struct pp_round *r = *(struct pp_round **)f;
    struct pinger p = { r, NULL };
    for (long i = 0; i < r->pings; i++) {
        int err = wisp_spawn(r->rt, pinger_poll, &p, sizeof(p), NULL, NULL);
        if (err)
            die("ping_pong: spawn", err);
    }
    return WISP_READY;
}

double bench_ping_pong(wisp_runtime_t *rt, long n, long *ops)
{
    *ops = n;
    struct pp_round r = { .rt = rt };
    atomic_init(&r.pongs, 0);
    double t0 = now();
    for (long done = 0; done < n; done += r.pings) {
        r.pings = n - done < PINGS_PER_ROUND ? n - done : PINGS_PER_ROUND;
        atomic_init(&r.remaining, r.pings);
        latch_init(&r.latch);
        struct pp_round *rp = &r;
        int err = wisp_spawn(rt, pp_root_poll, &rp, sizeof(rp), NULL, NULL);
        if (err)
            die("ping_pong: spawn", err);
        latch_wait(&r.latch);
        latch_destroy(&r.latch);
    }
    double t = now() - t0;
    if (atomic_load(&r.pongs) != n) {
        fprintf(stderr, "wisp-bench: ping_pong: %ld pongs, expected %ld\n", atomic_load(&r.pongs), n);
        exit(1);
    }
    return t;
}

/* ---- ping_pong_rounds ------------------------------------------------------ */

struct rounds {
    wisp_runtime_t *rt;
    wisp_chan_tx_t *ab_tx, *ba_tx;
    wisp_chan_rx_t *ab_rx, *ba_rx;
    long n;
    long final;
    struct countdown c;
};

/* One side's loop: send, then receive (ping), or receive, then send (pong). */
struct bouncer {
    struct rounds *g;
    int ping;
    int sending;     /* the send future is live */
    int receiving;   /* the receive future is live */
    long k;          /* round trips done (ping) */
    wisp_chan_send_t send;
    wisp_chan_recv_t recv;
};

static wisp_poll_t bouncer_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)out;
    struct bouncer *b = f;
    struct rounds *g = b->g;
    wisp_chan_tx_t *tx = b->ping ? g->ab_tx : g->ba_tx;
    wisp_chan_rx_t *rx = b->ping ? g->ba_rx : g->ab_rx;
    for (;;) {
        if (b->sending) {
            void *st;
            if (wisp_chan_send_poll(&b->send, cx, &st) == WISP_PENDING)
                return WISP_PENDING;
            wisp_chan_send_drop(&b->send);
            b->sending = 0;
            if (st)
                die("ping_pong_rounds: send", (int)(intptr_t)st);
            wisp_chan_recv_init(&b->recv, rx);
            b->receiving = 1;
        }
        if (b->receiving) {
            void *msg;
            if (wisp_chan_recv_poll(&b->recv, cx, &msg) == WISP_PENDING)
                return WISP_PENDING;
            int st = wisp_chan_recv_status(&b->recv);
            wisp_chan_recv_drop(&b->recv);
            b->receiving = 0;
            long v = (long)(intptr_t)msg;
            if (b->ping) {
                if (st)
                    die("ping_pong_rounds: ping recv", st);
                if (v != b->k + 1) {
                    fprintf(stderr, "wisp-bench: ping_pong_rounds: got %ld, expected %ld\n", v,
                            b->k + 1);
                    exit(1);
                }
                if (++b->k == g->n) {
                    g->final = v;
                    wisp_chan_tx_drop(g->ab_tx); /* ends pong's loop */
                    countdown_hit(&g->c);
                    return WISP_READY;
                }
                v = b->k;
            } else {
                if (st == -EPIPE) {
                    countdown_hit(&g->c);
                    return WISP_READY;
                }
                v++;
            }
            wisp_chan_send_init(&b->send, tx, (void *)(intptr_t)v);
            b->sending = 1;
        }
    }
}

static wisp_poll_t rounds_root_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)cx;
    (void)out;
    struct rounds *g = *(struct rounds **)f;
    struct bouncer b = { .g = g };
    for (int i = 0; i < 2; i++) {
        b.ping = i == 0;
        if (b.ping) {
            wisp_chan_send_init(&b.send, g->ab_tx, (void *)(intptr_t)0);
            b.sending = 1;
        } else {
            wisp_chan_recv_init(&b.recv, g->ab_rx);
            b.sending = 0;
            b.receiving = 1;
        }
        int err = wisp_spawn(g->rt, bouncer_poll, &b, sizeof(b), NULL, NULL);
        if (err)
            die("ping_pong_rounds: spawn", err);
    }
    return WISP_READY;
}

double bench_ping_pong_rounds(wisp_runtime_t *rt, long n, long *ops)
{
    *ops = n;
    struct rounds g = { .rt = rt, .n = n };
    int err = wisp_mpsc_new(&g.ab_tx, &g.ab_rx, 1, NULL);
    if (!err)
        err = wisp_mpsc_new(&g.ba_tx, &g.ba_rx, 1, NULL);
    if (err)
        die("ping_pong_rounds: channel", err);
    atomic_init(&g.c.left, 2);
    latch_init(&g.c.latch);
    struct rounds *gp = &g;
    double t0 = now();
    err = wisp_spawn(rt, rounds_root_poll, &gp, sizeof(gp), NULL, NULL);
    if (err)
        die("ping_pong_rounds: spawn", err);
    latch_wait(&g.c.latch);
    double t = now() - t0;
    latch_destroy(&g.c.latch);
    if (g.final != n) {
        fprintf(stderr, "wisp-bench: ping_pong_rounds: final %ld, expected %ld\n", g.final, n);
        exit(1);
    }
    wisp_chan_rx_drop(g.ab_rx);
    wisp_chan_tx_drop(g.ba_tx);
    wisp_chan_rx_drop(g.ba_rx);
    return t;
}

/* ---- chan_mpsc --------------------------------------------------------------- */

#define MPSC_PRODUCERS 4
#define MPSC_CAPACITY 1024

struct mpsc_run {
    wisp_runtime_t *rt;
    wisp_chan_tx_t *tx;
    wisp_chan_rx_t *rx;
    long n;
    long count;
    unsigned long long sum;
    struct latch latch;
};

struct producer {
    struct mpsc_run *m;
    long next;
    int live;
    wisp_chan_send_t send;
};

static wisp_poll_t producer_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)out;
    struct producer *p = f;
    for (;;) {
        if (!p->live) {
            if (p->next >= p->m->n) {
                wisp_chan_tx_drop(p->m->tx);
                return WISP_READY;
            }
            wisp_chan_send_init(&p->send, p->m->tx, (void *)(intptr_t)p->next);
            p->live = 1;
        }
        void *st;
        if (wisp_chan_send_poll(&p->send, cx, &st) == WISP_PENDING)
            return WISP_PENDING;
        wisp_chan_send_drop(&p->send);
        p->live = 0;
        if (st)
            die("chan_mpsc: send", (int)(intptr_t)st);
        p->next += MPSC_PRODUCERS;
    }
}

struct consumer {
    struct mpsc_run *m;
    int live;
    wisp_chan_recv_t recv;
};

static wisp_poll_t consumer_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)out;
    struct consumer *c = f;
    struct mpsc_run *m = c->m;
    for (;;) {
        if (!c->live) {
            wisp_chan_recv_init(&c->recv, m->rx);
            c->live = 1;
        }
        void *msg;
        if (wisp_chan_recv_poll(&c->recv, cx, &msg) == WISP_PENDING)
            return WISP_PENDING;
        int st = wisp_chan_recv_status(&c->recv);
        wisp_chan_recv_drop(&c->recv);
        c->live = 0;
        if (st == -EPIPE) {
            latch_set(&m->latch);
            return WISP_READY;
        }
        m->count++;
        m->sum += (unsigned long long)(intptr_t)msg;
    }
}

static wisp_poll_t mpsc_root_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)cx;
    (void)out;
    struct mpsc_run *m = *(struct mpsc_run **)f;
    struct consumer c = { m, 0, { { 0 } } };
    int err = wisp_spawn(m->rt, consumer_poll, &c, sizeof(c), NULL, NULL);
    for (int i = 0; i < MPSC_PRODUCERS && !err; i++) {
        struct producer p = { m, i, 0, { { 0 } } };
        if (i > 0)
            wisp_chan_tx_clone(m->tx);
        err = wisp_spawn(m->rt, producer_poll, &p, sizeof(p), NULL, NULL);
    }
    if (err)
        die("chan_mpsc: spawn", err);
    return WISP_READY;
}

double bench_chan_mpsc(wisp_runtime_t *rt, long n, long *ops)
{
    *ops = n;
    struct mpsc_run m = { .rt = rt, .n = n };
    int err = wisp_mpsc_new(&m.tx, &m.rx, MPSC_CAPACITY, NULL);
    if (err)
        die("chan_mpsc: channel", err);
    latch_init(&m.latch);
    struct mpsc_run *mp = &m;
    double t0 = now();
    err = wisp_spawn(rt, mpsc_root_poll, &mp, sizeof(mp), NULL, NULL);
    if (err)
        die("chan_mpsc: spawn", err);
    latch_wait(&m.latch);
    double t = now() - t0;
    latch_destroy(&m.latch);
    unsigned long long want = (unsigned long long)n * (unsigned long long)(n - 1) / 2;
    if (m.count != n || m.sum != want) {
        fprintf(stderr, "wisp-bench: chan_mpsc: %ld messages summing to %llu, expected %ld, %llu\n",
                m.count, m.sum, n, want);
        exit(1);
    }
    wisp_chan_rx_drop(m.rx);
    return t;
}

/* ---- mutex_contended ----------------------------------------------------------- */

#define MUTEX_TASKS 8
#define MUTEX_YIELD_EVERY 64

struct mutex_run {
    wisp_mutex_t mutex;
    long counter; /* guarded by mutex */
    struct countdown c;
};

struct locker {
    struct mutex_run *m;
    long takes, done;
    int live;
    wisp_mutex_lock_t lock;
};

static wisp_poll_t locker_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)out;
    struct locker *l = f;
    while (l->done < l->takes) {
        if (!l->live) {
            wisp_mutex_lock_init(&l->lock, &l->m->mutex);
            l->live = 1;
        }
        if (wisp_mutex_lock_poll(&l->lock, cx, NULL) == WISP_PENDING)
            return WISP_PENDING;
        wisp_mutex_lock_drop(&l->lock);
        l->live = 0;
        l->m->counter++;
        wisp_mutex_unlock(&l->m->mutex);
        if (++l->done % MUTEX_YIELD_EVERY == 0 && l->done < l->takes)
            return wisp_yield(cx);
    }
    countdown_hit(&l->m->c);
    return WISP_READY;
}

static wisp_poll_t mutex_root_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)cx;
    (void)out;
    struct mutex_run *m = ((void **)f)[0];
    long n = (long)(intptr_t)((void **)f)[1];
    for (int i = 0; i < MUTEX_TASKS; i++) {
        struct locker l = { .m = m, .takes = n / MUTEX_TASKS + (i < n % MUTEX_TASKS) };
        int err = wisp_spawn(wisp_runtime_current(), locker_poll, &l, sizeof(l), NULL, NULL);
        if (err)
            die("mutex_contended: spawn", err);
    }
    return WISP_READY;
}

double bench_mutex_contended(wisp_runtime_t *rt, long n, long *ops)
{
    *ops = n;
    struct mutex_run m = { .counter = 0 };
    wisp_mutex_init(&m.mutex);
    atomic_init(&m.c.left, MUTEX_TASKS);
    latch_init(&m.c.latch);
    void *args[2] = { &m, (void *)(intptr_t)n };
    double t0 = now();
    int err = wisp_spawn(rt, mutex_root_poll, args, sizeof(args), NULL, NULL);
    if (err)
        die("mutex_contended: spawn", err);
    latch_wait(&m.c.latch);
    double t = now() - t0;
    latch_destroy(&m.c.latch);
    if (m.counter != n) {
        fprintf(stderr, "wisp-bench: mutex_contended: counter %ld, expected %ld\n", m.counter, n);
        exit(1);
    }
    wisp_mutex_destroy(&m.mutex);
    return t;
}
