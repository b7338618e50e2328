/* test_task_state.c - the task state word under every race we can set up:
 * concurrent wakes of an idle task (scheduled exactly once), wakes while
 * running (polled exactly once more), wakes after completion (nothing),
 * abort of idle / queued / running / finished tasks, wake racing abort,
 * join_poll from a task, detach, waker clones outliving completion, the
 * drop-before-report guarantee, and the never-two-polls-at-once rule. */
#include "helpers.h"

#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

#include "runtime.h"

/* ---- a blocker occupies a worker until released ------------------------- */

struct blocker {
    _Atomic long *started;
    _Atomic long *release;
};

static wisp_poll_t blocker_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)cx;
    (void)out;
    struct blocker *b = f;
    atomic_store(b->started, 1);
    while (!atomic_load(b->release))
        sched_yield();
    return WISP_READY;
}

static void spawn_blocker(wisp_runtime_t *rt, _Atomic long *started, _Atomic long *release)
{
    struct blocker b = { started, release };
    ck_assert_int_eq(wisp_spawn(rt, blocker_poll, &b, sizeof(b), NULL, NULL), 0);
    wait_for(started, 1, 10);
}

static wisp_waker_t clone_signal_waker(struct signal *s)
{
    pthread_mutex_lock(&s->lock);
    wisp_waker_t w = wisp_waker_clone(&s->waker);
    pthread_mutex_unlock(&s->lock);
    return w;
}

static wisp_join_t *spawn_signal(wisp_runtime_t *rt, struct signal *s, void *result)
{
    struct signal_future f = { s, result };
    wisp_join_t *j = NULL;
    ck_assert_int_eq(wisp_spawn(rt, signal_future_poll, &f, sizeof(f), signal_future_drop, &j), 0);
    ck_assert_ptr_nonnull(j);
    return j;
}

/* ---- concurrent wakes of an idle task ------------------------------------ */

#define STORM_THREADS 8

struct storm {
    wisp_waker_t w;
    pthread_barrier_t *barrier;
    int by_value;
};

static void *storm_thread(void *arg)
{
    struct storm *st = arg;
    pthread_barrier_wait(st->barrier);
    for (int i = 0; i < 100; i++)
        wisp_waker_wake_by_ref(&st->w);
    if (st->by_value)
        wisp_waker_wake(&st->w);
    else
        wisp_waker_drop(&st->w);
    return NULL;
}

START_TEST(wake_storm_schedules_exactly_once)
{
    wisp_runtime_t *rt = rt_new(1);
    struct signal s;
    signal_init(&s);
    wisp_join_t *j = spawn_signal(rt, &s, (void *)7);
    wait_for(&s.polls, 1, 10);
    _Atomic long started = 0, release = 0;
    spawn_blocker(rt, &started, &release); /* the only worker is now busy */

    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, STORM_THREADS);
    pthread_t th[STORM_THREADS];
    struct storm st[STORM_THREADS];
    for (int i = 0; i < STORM_THREADS; i++) {
        st[i] = (struct storm){ clone_signal_waker(&s), &barrier, i % 2 };
        pthread_create(&th[i], NULL, storm_thread, &st[i]);
    }
    for (int i = 0; i < STORM_THREADS; i++)
        pthread_join(th[i], NULL);
    /* 800 wakes from 8 threads: exactly one queue entry. */
    ck_assert_uint_eq(injector_len(&rt->injector), 1);
    atomic_store(&release, 1);
    wait_for(&s.polls, 2, 10);
    usleep(20000);
    ck_assert_int_eq(atomic_load(&s.polls), 2);
    signal_raise(&s);
    void *out = NULL;
    ck_assert_int_eq(wisp_join(j, &out), 0);
    ck_assert_ptr_eq(out, (void *)7);
    ck_assert_int_eq(atomic_load(&s.polls), 3);
    ck_assert_int_eq(atomic_load(&s.drops), 1);
    ck_assert_int_eq(atomic_load(&s.overlapped), 0);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
    signal_destroy(&s);
    pthread_barrier_destroy(&barrier);
}
END_TEST

/* ---- wakes while running -------------------------------------------------- */

struct selfwake {
    _Atomic long polls;
    _Atomic long in_poll;
    _Atomic long started;
    _Atomic long woken;
    wisp_waker_t stash;
};

static wisp_poll_t selfwake_poll(void *f, wisp_context_t *cx, void **out)
{
    struct selfwake *sw = *(struct selfwake **)f;
    ck_assert_int_eq(atomic_fetch_add(&sw->in_poll, 1), 0);
    long n = atomic_fetch_add(&sw->polls, 1) + 1;
    wisp_poll_t r = WISP_READY;
    if (n == 1) {
        sw->stash = wisp_waker_clone(wisp_context_waker(cx));
        atomic_store(&sw->started, 1);
        while (!atomic_load(&sw->woken)) /* the test wakes us meanwhile */
            sched_yield();
        r = WISP_PENDING;
    } else {
        *out = (void *)(uintptr_t)n;
    }
    atomic_fetch_sub(&sw->in_poll, 1);
    return r;
}

static void *wake_many_thread(void *arg)
{
    struct selfwake *sw = arg;
    wait_for(&sw->started, 1, 10);
    for (int i = 0; i < 50; i++)
        wisp_waker_wake_by_ref(&sw->stash);
    atomic_store(&sw->woken, 1);
    return NULL;
}

START_TEST(wake_while_running_polls_once_more)
{
    wisp_runtime_t *rt = rt_new(2);
    struct selfwake sw = { 0 };
    struct selfwake *p = &sw;
    wisp_join_t *j;
    ck_assert_int_eq(wisp_spawn(rt, selfwake_poll, &p, sizeof(p), NULL, &j), 0);
    pthread_t th;
    pthread_create(&th, NULL, wake_many_thread, &sw);
    void *out;
    ck_assert_int_eq(wisp_join(j, &out), 0);
    pthread_join(th, NULL);
    ck_assert_ptr_eq(out, (void *)2);
    ck_assert_int_eq(atomic_load(&sw.polls), 2);
    /* The stashed waker outlives completion: waking it does nothing. */
    wisp_waker_wake_by_ref(&sw.stash);
    wisp_waker_t c = wisp_waker_clone(&sw.stash);
    wisp_waker_wake(&c);
    usleep(10000);
    ck_assert_int_eq(atomic_load(&sw.polls), 2);
    wisp_waker_drop(&sw.stash);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

/* ---- abort ------------------------------------------------------------------ */

START_TEST(abort_idle_task_drops_at_once)
{
    wisp_runtime_t *rt = rt_new(2);
    struct signal s;
    signal_init(&s);
    wisp_join_t *j = spawn_signal(rt, &s, NULL);
    wait_for(&s.polls, 1, 10);
    /* Wait until it is idle (its poll returned), then abort. */
    while (atomic_load(&s.in_poll))
        sched_yield();
    usleep(1000);
    wisp_join_abort(j);
    wait_for(&s.drops, 1, 10);
    ck_assert(wisp_join_is_finished(j));
    wisp_join_abort(j); /* twice: nothing more */
    signal_raise(&s);   /* a wake after close: nothing */
    usleep(10000);
    ck_assert_int_eq(atomic_load(&s.polls), 1);
    void *out = (void *)1;
    ck_assert_int_eq(wisp_join(j, &out), -ECANCELED);
    ck_assert_ptr_null(out);
    ck_assert_int_eq(atomic_load(&s.drops), 1);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
    signal_destroy(&s);
}
END_TEST

START_TEST(abort_queued_task_never_polls)
{
    wisp_runtime_t *rt = rt_new(1);
    _Atomic long started = 0, release = 0;
    spawn_blocker(rt, &started, &release);
    struct signal s;
    signal_init(&s);
    wisp_join_t *j = spawn_signal(rt, &s, NULL); /* sits in the injector */
    wisp_join_abort(j);
    atomic_store(&release, 1);
    wait_for(&s.drops, 1, 10); /* a worker drops it with no further wake */
    ck_assert_int_eq(wisp_join(j, NULL), -ECANCELED);
    ck_assert_int_eq(atomic_load(&s.polls), 0);
    ck_assert_int_eq(atomic_load(&s.drops), 1);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
    signal_destroy(&s);
}
END_TEST

struct gated {
    _Atomic long *started;
    _Atomic long *go;
    _Atomic long *drops;
    wisp_poll_t result;
};

static wisp_poll_t gated_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)cx;
    struct gated *g = f;
    atomic_store(g->started, 1);
    while (!atomic_load(g->go))
        sched_yield();
    *out = (void *)99;
    return g->result;
}

static void gated_drop(void *f)
{
    atomic_fetch_add(((struct gated *)f)->drops, 1);
}

static void abort_running(wisp_poll_t result)
{
    wisp_runtime_t *rt = rt_new(2);
    _Atomic long started = 0, go = 0, drops = 0;
    struct gated g = { &started, &go, &drops, result };
    wisp_join_t *j;
    ck_assert_int_eq(wisp_spawn(rt, gated_poll, &g, sizeof(g), gated_drop, &j), 0);
    wait_for(&started, 1, 10);
    wisp_join_abort(j);
    ck_assert(!wisp_join_is_finished(j)); /* closed when the poll returns */
    ck_assert_int_eq(atomic_load(&drops), 0);
    atomic_store(&go, 1);
    void *out = (void *)1;
    ck_assert_int_eq(wisp_join(j, &out), -ECANCELED);
    ck_assert_ptr_null(out);
    ck_assert_int_eq(atomic_load(&drops), 1);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}

START_TEST(abort_running_task_discards_ready)
{
    abort_running(WISP_READY);
}
END_TEST

START_TEST(abort_running_task_closes_on_pending)
{
    abort_running(WISP_PENDING);
}
END_TEST

START_TEST(abort_finished_task_does_nothing)
{
    wisp_runtime_t *rt = rt_new(2);
    _Atomic long started = 0, go = 1, drops = 0;
    struct gated g = { &started, &go, &drops, WISP_READY };
    wisp_join_t *j;
    ck_assert_int_eq(wisp_spawn(rt, gated_poll, &g, sizeof(g), gated_drop, &j), 0);
    while (!wisp_join_is_finished(j))
        sched_yield();
    ck_assert_int_eq(atomic_load(&drops), 1); /* dropped before finished shows */
    wisp_join_abort(j);
    void *out;
    ck_assert_int_eq(wisp_join(j, &out), 0);
    ck_assert_ptr_eq(out, (void *)99);
    ck_assert_int_eq(atomic_load(&drops), 1);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

/* ---- wake racing abort ------------------------------------------------------ */

#define RACE_TASKS 64

struct race {
    struct signal sig[RACE_TASKS];
    wisp_join_t *join[RACE_TASKS];
    wisp_waker_t clones[RACE_TASKS];
    pthread_barrier_t barrier;
};

static void *race_raiser(void *arg)
{
    struct race *r = arg;
    pthread_barrier_wait(&r->barrier);
    for (int i = 0; i < RACE_TASKS; i++)
        signal_raise(&r->sig[i]);
    return NULL;
}

static void *race_aborter(void *arg)
{
    struct race *r = arg;
    pthread_barrier_wait(&r->barrier);
    for (int i = RACE_TASKS - 1; i >= 0; i--)
        wisp_join_abort(r->join[i]);
    return NULL;
}

static void *race_waker(void *arg)
{
    struct race *r = arg;
    pthread_barrier_wait(&r->barrier);
    for (int k = 0; k < 20; k++)
        for (int i = 0; i < RACE_TASKS; i++)
            wisp_waker_wake_by_ref(&r->clones[i]);
    for (int i = 0; i < RACE_TASKS; i++)
        wisp_waker_wake(&r->clones[i]);
    return NULL;
}

START_TEST(wake_races_abort)
{
    for (long round = 0; round < stress(400); round++) {
        wisp_runtime_t *rt = rt_new(2);
        struct race *r = calloc(1, sizeof(*r));
        for (int i = 0; i < RACE_TASKS; i++) {
            signal_init(&r->sig[i]);
            r->join[i] = spawn_signal(rt, &r->sig[i], (void *)(uintptr_t)(i + 1));
        }
        for (int i = 0; i < RACE_TASKS; i++) {
            wait_for(&r->sig[i].polls, 1, 10);
            while (atomic_load(&r->sig[i].in_poll))
                sched_yield();
            r->clones[i] = clone_signal_waker(&r->sig[i]);
        }
        pthread_barrier_init(&r->barrier, NULL, 3);
        pthread_t a, b, c;
        pthread_create(&a, NULL, race_raiser, r);
        pthread_create(&b, NULL, race_aborter, r);
        pthread_create(&c, NULL, race_waker, r);
        pthread_join(a, NULL);
        pthread_join(b, NULL);
        pthread_join(c, NULL);
        for (int i = 0; i < RACE_TASKS; i++) {
            void *out = NULL;
            int st = wisp_join(r->join[i], &out);
            ck_assert(st == 0 || st == -ECANCELED);
            if (st == 0)
                ck_assert_ptr_eq(out, (void *)(uintptr_t)(i + 1));
            ck_assert_int_eq(atomic_load(&r->sig[i].drops), 1);
            ck_assert_int_eq(atomic_load(&r->sig[i].overlapped), 0);
        }
        ck_assert_int_eq(wisp_runtime_free(rt), 0);
        for (int i = 0; i < RACE_TASKS; i++)
            signal_destroy(&r->sig[i]);
        pthread_barrier_destroy(&r->barrier);
        free(r);
    }
}
END_TEST

/* ---- join_poll from a task ---------------------------------------------------- */

struct parent {
    wisp_runtime_t *rt;
    struct signal *child_sig;
    wisp_join_t *child;
    _Atomic long *spawned;
};

static wisp_poll_t parent_poll(void *f, wisp_context_t *cx, void **out)
{
    struct parent *p = f;
    if (!p->child) {
        struct signal_future cf = { p->child_sig, (void *)40 };
        ck_assert_int_eq(
            wisp_spawn(p->rt, signal_future_poll, &cf, sizeof(cf), signal_future_drop, &p->child), 0);
        atomic_store(p->spawned, 1);
    }
    int status = 1;
    void *v = NULL;
    if (wisp_join_poll(p->child, cx, &status, &v) == WISP_PENDING)
        return WISP_PENDING;
    ck_assert_int_eq(status, 0);
    *out = (void *)((uintptr_t)v + 2);
    return WISP_READY;
}

START_TEST(join_poll_from_a_task)
{
    wisp_runtime_t *rt = rt_new(2);
    struct signal s;
    signal_init(&s);
    _Atomic long spawned = 0;
    struct parent p = { rt, &s, NULL, &spawned };
    wisp_join_t *j;
    ck_assert_int_eq(wisp_spawn(rt, parent_poll, &p, sizeof(p), NULL, &j), 0);
    wait_for(&spawned, 1, 10);
    wait_for(&s.polls, 1, 10);
    usleep(5000);
    ck_assert(!wisp_join_is_finished(j));
    signal_raise(&s);
    void *out;
    ck_assert_int_eq(wisp_join(j, &out), 0);
    ck_assert_ptr_eq(out, (void *)42);
    ck_assert_int_eq(atomic_load(&s.drops), 1);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
    signal_destroy(&s);
}
END_TEST

/* ---- re-polling a join handle while its task finishes ---------------------- */

/* A hand-written executor that polls a handle in a loop re-registers its
 * waker each time; the finisher may be waking the registered one at that
 * moment.  The waker must be consumed exactly once: the counting waker's
 * references end where they started.  (An audit found the registrant and
 * the finisher both consuming it.) */
struct spinner {
    unsigned spin;
};

static wisp_poll_t spinner_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)cx;
    volatile unsigned x = 0; /* busy work of random length */
    for (unsigned i = 0; i < ((struct spinner *)f)->spin; i++)
        x += i;
    *out = (void *)(uintptr_t)(x == 1 ? 2 : 1);
    return WISP_READY;
}

START_TEST(repolled_join_consumes_waker_once)
{
    wisp_runtime_t *rt = rt_new(1);
    unsigned seed = 1;
    for (long i = 0; i < stress(20000); i++) {
        struct counting_waker cw = { 0 };
        wisp_waker_t mine = counting_waker(&cw);
        wisp_context_t cx = wisp_context_from_waker(&mine);
        struct spinner sp = { 200 + rand_r(&seed) % 2000 };
        wisp_join_t *j;
        ck_assert_int_eq(wisp_spawn(rt, spinner_poll, &sp, sizeof(sp), NULL, &j), 0);
        int st;
        void *out;
        while (wisp_join_poll(j, &cx, &st, &out) == WISP_PENDING)
            ;
        ck_assert_int_eq(st, 0);
        /* the handle is freed; a notify in flight holds the task, not cw:
         * wait until every clone it took is gone */
        long refs;
        while ((refs = atomic_load(&cw.refs)) > 1)
            sched_yield();
        ck_assert_int_eq(refs, 1);
        wisp_waker_drop(&mine);
    }
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

/* ---- detach; clones outliving; drop before report ------------------------- */

START_TEST(detached_task_runs_on)
{
    wisp_runtime_t *rt = rt_new(2);
    struct signal s;
    signal_init(&s);
    wisp_join_t *j = spawn_signal(rt, &s, NULL);
    wisp_join_detach(j);
    wait_for(&s.polls, 1, 10);
    /* the first poll has returned PENDING once its waker is stored */
    for (int stored = 0; !stored; sched_yield()) {
        pthread_mutex_lock(&s.lock);
        stored = !wisp_waker_is_empty(&s.waker);
        pthread_mutex_unlock(&s.lock);
    }
    signal_raise(&s);
    wait_for(&s.drops, 1, 10);
    ck_assert_int_eq(atomic_load(&s.polls), 2);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
    signal_destroy(&s);
}
END_TEST

#define CLONES 1000

struct cloner {
    wisp_waker_t clones[CLONES];
    _Atomic long polls;
    _Atomic long ready;
};

static wisp_poll_t cloner_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)out;
    struct cloner *c = *(struct cloner **)f;
    if (atomic_fetch_add(&c->polls, 1) == 0) {
        for (int i = 0; i < CLONES; i++)
            c->clones[i] = wisp_waker_clone(wisp_context_waker(cx));
        atomic_store(&c->ready, 1);
        return WISP_PENDING;
    }
    return WISP_READY;
}

struct clone_user {
    struct cloner *c;
    int from, to;
};

static void *clone_user_thread(void *arg)
{
    struct clone_user *u = arg;
    for (int i = u->from; i < u->to; i++) {
        if (i % 3 == 0)
            wisp_waker_wake(&u->c->clones[i]);
        else if (i % 3 == 1) {
            wisp_waker_wake_by_ref(&u->c->clones[i]);
            wisp_waker_drop(&u->c->clones[i]);
        } else
            wisp_waker_drop(&u->c->clones[i]);
    }
    return NULL;
}

START_TEST(clones_used_concurrently_with_completion)
{
    for (long round = 0; round < stress(200); round++) {
        wisp_runtime_t *rt = rt_new(2);
        struct cloner *c = calloc(1, sizeof(*c));
        wisp_join_t *j;
        ck_assert_int_eq(wisp_spawn(rt, cloner_poll, &c, sizeof(c), NULL, &j), 0);
        wait_for(&c->ready, 1, 10);
        pthread_t th[4];
        struct clone_user u[4];
        for (int i = 0; i < 4; i++) {
            u[i] = (struct clone_user){ c, i * CLONES / 4, (i + 1) * CLONES / 4 };
            pthread_create(&th[i], NULL, clone_user_thread, &u[i]);
        }
        ck_assert_int_eq(wisp_join(j, NULL), 0);
        for (int i = 0; i < 4; i++)
            pthread_join(th[i], NULL);
        ck_assert_int_eq(atomic_load(&c->polls), 2);
        ck_assert_int_eq(wisp_runtime_free(rt), 0);
        free(c);
    }
}
END_TEST

static _Atomic long slow_drop_done;

static void slow_drop(void *f)
{
    (void)f;
    usleep(20000);
    atomic_store(&slow_drop_done, 1);
}

static wisp_poll_t ready_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)cx;
    *out = *(void **)f;
    return WISP_READY;
}

struct join_poller {
    wisp_join_t *j;
    int status;
    void *out;
    int saw_drop;
};

static wisp_poll_t join_poller_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)out;
    struct join_poller *jp = *(struct join_poller **)f;
    if (wisp_join_poll(jp->j, cx, &jp->status, &jp->out) == WISP_PENDING)
        return WISP_PENDING;
    jp->saw_drop = (int)atomic_load(&slow_drop_done);
    return WISP_READY;
}

START_TEST(drop_runs_before_join_reports)
{
    wisp_runtime_t *rt = rt_new(2);
    void *val = (void *)5;
    for (int how = 0; how < 3; how++) {
        atomic_store(&slow_drop_done, 0);
        wisp_join_t *j;
        ck_assert_int_eq(wisp_spawn(rt, ready_poll, &val, sizeof(val), slow_drop, &j), 0);
        if (how == 0) { /* wisp_join */
            void *out;
            ck_assert_int_eq(wisp_join(j, &out), 0);
            ck_assert_int_eq(atomic_load(&slow_drop_done), 1);
            ck_assert_ptr_eq(out, val);
        } else if (how == 1) { /* is_finished */
            while (!wisp_join_is_finished(j))
                sched_yield();
            ck_assert_int_eq(atomic_load(&slow_drop_done), 1);
            ck_assert_int_eq(wisp_join(j, NULL), 0);
        } else { /* join_poll from block_on */
            struct join_poller jp = { j, 1, NULL, 0 };
            struct join_poller *pp = &jp;
            ck_assert_int_eq(wisp_block_on(rt, join_poller_poll, &pp, NULL), 0);
            ck_assert_int_eq(jp.status, 0);
            ck_assert_ptr_eq(jp.out, val);
            ck_assert_int_eq(jp.saw_drop, 1);
        }
    }
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

/* ---- never two polls at once, under wake pressure ------------------------- */

#define BUSY_TASKS 32

struct busy {
    pthread_mutex_t lock;
    wisp_waker_t waker;
    _Atomic long polls;
    _Atomic long in_poll;
    _Atomic long overlapped;
    long target;
};

static wisp_poll_t busy_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)out;
    struct busy *b = *(struct busy **)f;
    if (atomic_fetch_add(&b->in_poll, 1) != 0)
        atomic_store(&b->overlapped, 1);
    long n = atomic_fetch_add(&b->polls, 1) + 1;
    wisp_poll_t r = WISP_READY;
    if (n < b->target) {
        pthread_mutex_lock(&b->lock);
        wisp_waker_set(&b->waker, wisp_context_waker(cx));
        pthread_mutex_unlock(&b->lock);
        if (n % 7 == 0)
            wisp_waker_wake_by_ref(wisp_context_waker(cx)); /* self-wake */
        r = WISP_PENDING;
    }
    atomic_fetch_sub(&b->in_poll, 1);
    return r;
}

struct pressure {
    struct busy *b;
    _Atomic long *stop;
};

static void *pressure_thread(void *arg)
{
    struct pressure *p = arg;
    unsigned seed = 1;
    while (!atomic_load(p->stop)) {
        struct busy *b = &p->b[rand_r(&seed) % BUSY_TASKS];
        pthread_mutex_lock(&b->lock);
        wisp_waker_t w = wisp_waker_clone(&b->waker);
        pthread_mutex_unlock(&b->lock);
        wisp_waker_wake(&w);
    }
    return NULL;
}

START_TEST(never_polled_concurrently)
{
    wisp_runtime_t *rt = rt_new(2);
    struct busy *b = calloc(BUSY_TASKS, sizeof(*b));
    wisp_join_t *j[BUSY_TASKS];
    for (int i = 0; i < BUSY_TASKS; i++) {
        pthread_mutex_init(&b[i].lock, NULL);
        b[i].target = stress(20000);
        struct busy *p = &b[i];
        ck_assert_int_eq(wisp_spawn(rt, busy_poll, &p, sizeof(p), NULL, &j[i]), 0);
    }
    _Atomic long stop = 0;
    pthread_t th[3];
    struct pressure pr = { b, &stop };
    for (int i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, pressure_thread, &pr);
    for (int i = 0; i < BUSY_TASKS; i++)
        ck_assert_int_eq(wisp_join(j[i], NULL), 0);
    atomic_store(&stop, 1);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < BUSY_TASKS; i++) {
        ck_assert_int_eq(atomic_load(&b[i].overlapped), 0);
        ck_assert_int_eq(atomic_load(&b[i].polls), b[i].target); /* never after READY */
        wisp_waker_drop(&b[i].waker);
        pthread_mutex_destroy(&b[i].lock);
    }
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
    free(b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("task_state");
    TCase *tc = tcase_create("races");
    tcase_set_timeout(tc, TEST_TIMEOUT);
    tcase_add_test(tc, wake_storm_schedules_exactly_once);
    tcase_add_test(tc, wake_while_running_polls_once_more);
    tcase_add_test(tc, abort_idle_task_drops_at_once);
    tcase_add_test(tc, abort_queued_task_never_polls);
    tcase_add_test(tc, abort_running_task_discards_ready);
    tcase_add_test(tc, abort_running_task_closes_on_pending);
    tcase_add_test(tc, abort_finished_task_does_nothing);
    tcase_add_test(tc, wake_races_abort);
    tcase_add_test(tc, join_poll_from_a_task);
    tcase_add_test(tc, repolled_join_consumes_waker_once);
    tcase_add_test(tc, detached_task_runs_on);
    tcase_add_test(tc, clones_used_concurrently_with_completion);
    tcase_add_test(tc, drop_runs_before_join_reports);
    tcase_add_test(tc, never_polled_concurrently);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
