/* test_runtime.c - runtime creation and queries, spawn and join from
 * outside and from tasks, block_on (with the seeds' timer future woken from
 * another thread), runtime_current / worker_index, yield fairness, injector
 * fairness against a task that keeps its worker's deque full, and a
 * fork-join tree through join_poll. */
#include "helpers.h"

#include <sched.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "runtime.h"

START_TEST(create_query_free)
{
    wisp_runtime_t *rt = NULL;
    ck_assert_int_eq(wisp_runtime_new(&rt, NULL), 0); /* defaults */
    ck_assert_uint_eq(wisp_runtime_workers(rt), (unsigned)sysconf(_SC_NPROCESSORS_ONLN));
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
    /* Baseline after one cycle: sanitizers start helper threads lazily. */
    int threads_before = process_threads();
    wisp_runtime_config_t cfg = { .workers = 3 };
    ck_assert_int_eq(wisp_runtime_new(&rt, &cfg), 0);
    ck_assert_uint_eq(wisp_runtime_workers(rt), 3);
    ck_assert_ptr_null(wisp_runtime_current());
    ck_assert_int_eq(wisp_worker_index(), -1);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
    for (int i = 0; i < 50; i++) { /* no leaks, no stuck threads */
        rt = rt_new(2);
        ck_assert_int_eq(wisp_runtime_free(rt), 0);
    }
    ck_assert_int_eq(process_threads(), threads_before);
}
END_TEST

/* ---- where am I --------------------------------------------------------- */

struct whereami {
    wisp_runtime_t *rt;
    int index;
};

static wisp_poll_t whereami_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)cx;
    struct whereami *w = *(struct whereami **)f;
    w->rt = wisp_runtime_current();
    w->index = wisp_worker_index();
    *out = NULL;
    return WISP_READY;
}

START_TEST(current_runtime_and_worker_index)
{
    wisp_runtime_t *rt = rt_new(3);
    for (int i = 0; i < 20; i++) {
        struct whereami w = { NULL, -5 };
        struct whereami *p = &w;
        wisp_join_t *j;
        ck_assert_int_eq(wisp_spawn(rt, whereami_poll, &p, sizeof(p), NULL, &j), 0);
        ck_assert_int_eq(wisp_join(j, NULL), 0);
        ck_assert_ptr_eq(w.rt, rt);
        ck_assert_int_ge(w.index, 0);
        ck_assert_int_lt(w.index, 3);
    }
    /* block_on: current is rt there, worker index stays -1 */
    struct whereami w = { NULL, -5 };
    struct whereami *p = &w;
    ck_assert_int_eq(wisp_block_on(rt, whereami_poll, &p, NULL), 0);
    ck_assert_ptr_eq(w.rt, rt);
    ck_assert_int_eq(w.index, -1);
    ck_assert_ptr_null(wisp_runtime_current());
    ck_assert_int_eq(wisp_block_on(NULL, whereami_poll, &p, NULL), 0);
    ck_assert_ptr_null(w.rt);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

/* ---- the seeds' timer future: a thread sleeps, then wakes the task --------- */

struct timer_shared {
    pthread_mutex_t lock;
    int completed;
    wisp_waker_t waker;
    _Atomic long refs; /* future + thread */
};

struct timer_future {
    struct timer_shared *shared;
    unsigned usec;
    pthread_t thread;
    int started;
};

static void timer_shared_release(struct timer_shared *s)
{
    if (atomic_fetch_sub(&s->refs, 1) == 1) {
        wisp_waker_drop(&s->waker);
        pthread_mutex_destroy(&s->lock);
        free(s);
    }
}

static void *timer_thread(void *arg)
{
    struct timer_future *tf = arg;
    struct timer_shared *s = tf->shared;
    usleep(tf->usec);
    pthread_mutex_lock(&s->lock);
    s->completed = 1;
    wisp_waker_t w = s->waker;
    s->waker = WISP_WAKER_EMPTY;
    pthread_mutex_unlock(&s->lock);
    wisp_waker_wake(&w);
    timer_shared_release(s);
    return NULL;
}

static wisp_poll_t timer_poll(void *f, wisp_context_t *cx, void **out)
{
    struct timer_future *tf = f;
    struct timer_shared *s = tf->shared;
    pthread_mutex_lock(&s->lock);
    int done = s->completed;
    if (!done)
        wisp_waker_set(&s->waker, wisp_context_waker(cx));
    pthread_mutex_unlock(&s->lock);
    if (!tf->started) { /* start the timer thread on first poll */
        tf->started = 1;
        pthread_create(&tf->thread, NULL, timer_thread, tf);
        pthread_detach(tf->thread);
    }
    if (!done)
        return WISP_PENDING;
    *out = (void *)(uintptr_t)tf->usec;
    return WISP_READY;
}

static struct timer_future timer_new(unsigned usec)
{
    struct timer_shared *s = calloc(1, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    s->waker = WISP_WAKER_EMPTY;
    atomic_init(&s->refs, 2);
    return (struct timer_future){ s, usec, 0, 0 };
}

START_TEST(block_on_timer_future)
{
    /* Alone (rt NULL): the hand-rolled executor path. */
    struct timer_future tf = timer_new(20000);
    void *out = NULL;
    ck_assert_int_eq(wisp_block_on(NULL, timer_poll, &tf, &out), 0);
    ck_assert_ptr_eq(out, (void *)20000);
    timer_shared_release(tf.shared);
}
END_TEST

static void timer_drop(void *f)
{
    timer_shared_release(((struct timer_future *)f)->shared);
}

START_TEST(spawned_timer_futures)
{
    wisp_runtime_t *rt = rt_new(2);
    enum { N = 50 };
    wisp_join_t *j[N];
    for (int i = 0; i < N; i++) {
        struct timer_future tf = timer_new(1000 + 100 * (unsigned)i);
        /* The task owns its copy; timer_drop releases its reference.  The
         * thread needs a stable pointer: it gets the task's copy, so start
         * it from the first poll (timer_poll does). */
        ck_assert_int_eq(wisp_spawn(rt, timer_poll, &tf, sizeof(tf), timer_drop, &j[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        void *out;
        ck_assert_int_eq(wisp_join(j[i], &out), 0);
        ck_assert_ptr_eq(out, (void *)(uintptr_t)(1000 + 100 * i));
    }
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

/* ---- spawn from block_on and join_poll from it ------------------------- */

static wisp_poll_t value_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)cx;
    *out = *(void **)f;
    return WISP_READY;
}

struct spawn_and_await {
    wisp_join_t *j;
};

static wisp_poll_t spawn_and_await_poll(void *f, wisp_context_t *cx, void **out)
{
    struct spawn_and_await *s = f;
    if (!s->j) {
        void *v = (void *)123;
        ck_assert_int_eq(wisp_spawn(wisp_runtime_current(), value_poll, &v, sizeof(v), NULL, &s->j), 0);
    }
    int status;
    if (wisp_join_poll(s->j, cx, &status, out) == WISP_PENDING)
        return WISP_PENDING;
    ck_assert_int_eq(status, 0);
    return WISP_READY;
}

START_TEST(block_on_spawns_onto_runtime)
{
    wisp_runtime_t *rt = rt_new(2);
    struct spawn_and_await s = { NULL };
    void *out = NULL;
    ck_assert_int_eq(wisp_block_on(rt, spawn_and_await_poll, &s, &out), 0);
    ck_assert_ptr_eq(out, (void *)123);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

/* ---- fork-join: fib through spawn + join_poll ----------------------------- */

struct fib {
    wisp_runtime_t *rt;
    long n;
    int phase;
    uintptr_t a;
    wisp_join_t *ja, *jb;
};

static wisp_poll_t fib_poll(void *f, wisp_context_t *cx, void **out)
{
    struct fib *fb = f;
    int st;
    void *v;
    if (fb->phase == 0) {
        if (fb->n < 2) {
            *out = (void *)(uintptr_t)fb->n;
            return WISP_READY;
        }
        struct fib a = { fb->rt, fb->n - 1, 0, 0, NULL, NULL };
        struct fib b = { fb->rt, fb->n - 2, 0, 0, NULL, NULL };
        ck_assert_int_eq(wisp_spawn(fb->rt, fib_poll, &a, sizeof(a), NULL, &fb->ja), 0);
        ck_assert_int_eq(wisp_spawn(fb->rt, fib_poll, &b, sizeof(b), NULL, &fb->jb), 0);
        fb->phase = 1;
    }
    if (fb->phase == 1) {
        if (wisp_join_poll(fb->ja, cx, &st, &v) == WISP_PENDING)
            return WISP_PENDING;
        ck_assert_int_eq(st, 0);
        fb->a = (uintptr_t)v;
        fb->phase = 2;
    }
    if (wisp_join_poll(fb->jb, cx, &st, &v) == WISP_PENDING)
        return WISP_PENDING;
    ck_assert_int_eq(st, 0);
    *out = (void *)(fb->a + (uintptr_t)v);
    return WISP_READY;
}

START_TEST(fork_join_fib)
{
    for (unsigned workers = 1; workers <= 4; workers++) {
        wisp_runtime_t *rt = rt_new(workers);
        struct fib root = { rt, 20, 0, 0, NULL, NULL };
        wisp_join_t *j;
        ck_assert_int_eq(wisp_spawn(rt, fib_poll, &root, sizeof(root), NULL, &j), 0);
        void *out;
        ck_assert_int_eq(wisp_join(j, &out), 0);
        ck_assert_uint_eq((uintptr_t)out, 6765);
        ck_assert_int_eq(wisp_runtime_free(rt), 0);
    }
}
END_TEST

/* ---- many tasks from many outside threads --------------------------------- */

static _Atomic long ran;

static wisp_poll_t count_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)f;
    (void)cx;
    (void)out;
    atomic_fetch_add(&ran, 1);
    return WISP_READY;
}

static void *spawner_thread(void *arg)
{
    wisp_runtime_t *rt = arg;
    for (long i = 0; i < stress(250000); i++)
        ck_assert_int_eq(wisp_spawn(rt, count_poll, NULL, 0, NULL, NULL), 0);
    return NULL;
}

/* Spawns n counting tasks from inside a task (onto its worker's deque). */
struct spawn_many {
    wisp_runtime_t *rt;
    long n;
};

static wisp_poll_t spawn_many_task_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)cx;
    (void)out;
    struct spawn_many *s = f;
    for (long i = 0; i < s->n; i++)
        ck_assert_int_eq(wisp_spawn(s->rt, count_poll, NULL, 0, NULL, NULL), 0);
    return WISP_READY;
}

/* block_on future: runs spawn_many_task_poll as a task and awaits it. */
static wisp_poll_t spawn_many_poll(void *f, wisp_context_t *cx, void **out)
{
    struct spawn_many *s = f;
    static wisp_join_t *j;
    if (s->n >= 0) {
        ck_assert_int_eq(wisp_spawn(s->rt, spawn_many_task_poll, s, sizeof(*s), NULL, &j), 0);
        s->n = -1;
    }
    int st;
    if (wisp_join_poll(j, cx, &st, out) == WISP_PENDING)
        return WISP_PENDING;
    ck_assert_int_eq(st, 0);
    return WISP_READY;
}

START_TEST(many_outside_spawners)
{
    wisp_runtime_t *rt = rt_new(2);
    atomic_store(&ran, 0);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, spawner_thread, rt);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    wait_for(&ran, 4 * stress(250000), 60);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

/* ---- fairness -------------------------------------------------------------- */

/* A task that yields until a flag is set: it must not starve the task
 * that sets the flag, even with a single worker. */
struct yielder {
    _Atomic long *flag;
    long yields;
};

static wisp_poll_t yielder_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)out;
    struct yielder *y = f;
    if (atomic_load(y->flag))
        return WISP_READY;
    y->yields++;
    return wisp_yield(cx);
}

static wisp_poll_t setter_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)cx;
    (void)out;
    atomic_store(*(_Atomic long **)f, 1);
    return WISP_READY;
}

struct yield_then_spawn {
    wisp_runtime_t *rt;
    _Atomic long *flag;
    int spawned;
};

/* Spawns the setter onto its own worker's deque, then yields until it ran:
 * the setter is ready now, so it must run before the yielder again. */
static wisp_poll_t yield_then_spawn_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)out;
    struct yield_then_spawn *y = f;
    if (!y->spawned) {
        y->spawned = 1;
        ck_assert_int_eq(wisp_spawn(y->rt, setter_poll, &y->flag, sizeof(y->flag), NULL, NULL), 0);
    }
    if (atomic_load(y->flag))
        return WISP_READY;
    return wisp_yield(cx);
}

START_TEST(yield_does_not_starve)
{
    wisp_runtime_t *rt = rt_new(1);
    for (int round = 0; round < 20; round++) {
        _Atomic long flag = 0;
        _Atomic long *fp = &flag;
        struct yielder y = { &flag, 0 };
        wisp_join_t *a, *b;
        ck_assert_int_eq(wisp_spawn(rt, yielder_poll, &y, sizeof(y), NULL, &a), 0);
        ck_assert_int_eq(wisp_spawn(rt, setter_poll, &fp, sizeof(fp), NULL, &b), 0);
        ck_assert_int_eq(wisp_join(b, NULL), 0);
        ck_assert_int_eq(wisp_join(a, NULL), 0);

        atomic_store(&flag, 0);
        struct yield_then_spawn ys = { rt, &flag, 0 };
        ck_assert_int_eq(wisp_spawn(rt, yield_then_spawn_poll, &ys, sizeof(ys), NULL, &a), 0);
        ck_assert_int_eq(wisp_join(a, NULL), 0);
    }
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

/* A task that keeps its worker's deque non-empty forever (each poll spawns
 * a successor locally) must not starve work arriving on the injector. */
struct hog {
    wisp_runtime_t *rt;
    _Atomic long *stop;
};

static wisp_poll_t hog_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)cx;
    (void)out;
    struct hog *h = f;
    if (!atomic_load(h->stop))
        ck_assert_int_eq(wisp_spawn(h->rt, hog_poll, h, sizeof(*h), NULL, NULL), 0);
    return WISP_READY;
}

START_TEST(injector_not_starved_by_local_work)
{
    wisp_runtime_t *rt = rt_new(1);
    _Atomic long stop = 0;
    _Atomic long *sp = &stop;
    struct hog h = { rt, &stop };
    ck_assert_int_eq(wisp_spawn(rt, hog_poll, &h, sizeof(h), NULL, NULL), 0);
    usleep(2000);
    wisp_join_t *j;
    ck_assert_int_eq(wisp_spawn(rt, setter_poll, &sp, sizeof(sp), NULL, &j), 0);
    ck_assert_int_eq(wisp_join(j, NULL), 0);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

/* A task queued on the deque behind a chain that runs through the spawn
 * slot (each link spawns the next) must still get its turn.  The parent
 * spawns the setter, then the first link: the link displaces the setter
 * from the spawn slot onto the deque. */
struct chain_parent {
    wisp_runtime_t *rt;
    _Atomic long *stop;
};

static wisp_poll_t chain_parent_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)cx;
    (void)out;
    struct chain_parent *p = f;
    struct hog h = { p->rt, p->stop };
    ck_assert_int_eq(wisp_spawn(p->rt, setter_poll, &p->stop, sizeof(p->stop), NULL, NULL), 0);
    ck_assert_int_eq(wisp_spawn(p->rt, hog_poll, &h, sizeof(h), NULL, NULL), 0);
    return WISP_READY;
}

START_TEST(deque_not_starved_by_spawn_chain)
{
    wisp_runtime_t *rt = rt_new(1);
    /* One flag per round, alive until the runtime is gone: a round's last
     * link may still read its flag while the next round runs. */
    _Atomic long stop[20];
    for (int round = 0; round < 20; round++) {
        atomic_init(&stop[round], 0);
        struct chain_parent p = { rt, &stop[round] };
        ck_assert_int_eq(wisp_spawn(rt, chain_parent_poll, &p, sizeof(p), NULL, NULL), 0);
        wait_for(&stop[round], 1, 30); /* hangs if the deque starves */
    }
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

/* Two tasks that keep yielding beside a chain of spawns running through the
 * spawn slot: wisp_yield's promise (the yielder runs again only after the
 * tasks ready now on its worker had their turn) means the two alternate,
 * so both are polled about equally often while the chain runs. */
struct counted_yielder {
    _Atomic long *stop;
    _Atomic long *polls;
};

static wisp_poll_t counted_yielder_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)out;
    struct counted_yielder *y = f;
    if (atomic_load(y->stop))
        return WISP_READY;
    atomic_fetch_add(y->polls, 1);
    return wisp_yield(cx);
}

struct countdown_link {
    wisp_runtime_t *rt;
    long left;
    _Atomic long *stop;
};

static wisp_poll_t countdown_link_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)cx, (void)out;
    struct countdown_link *l = f;
    if (l->left == 0) {
        atomic_store(l->stop, 1);
        return WISP_READY;
    }
    struct countdown_link next = { l->rt, l->left - 1, l->stop };
    ck_assert_int_eq(wisp_spawn(l->rt, countdown_link_poll, &next, sizeof(next), NULL, NULL), 0);
    return WISP_READY;
}

struct yielders_and_chain {
    wisp_runtime_t *rt;
    _Atomic long *stop;
    _Atomic long *polls; /* two counters */
    long links;
};

static wisp_poll_t yielders_and_chain_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)cx, (void)out;
    struct yielders_and_chain *p = f;
    for (int i = 0; i < 2; i++) {
        struct counted_yielder y = { p->stop, &p->polls[i] };
        ck_assert_int_eq(wisp_spawn(p->rt, counted_yielder_poll, &y, sizeof(y), NULL, NULL), 0);
    }
    struct countdown_link first = { p->rt, p->links, p->stop };
    ck_assert_int_eq(wisp_spawn(p->rt, countdown_link_poll, &first, sizeof(first), NULL, NULL), 0);
    return WISP_READY;
}

START_TEST(yielders_alternate_beside_spawn_chain)
{
    wisp_runtime_t *rt = rt_new(1);
    _Atomic long stop = 0, polls[2] = { 0, 0 };
    struct yielders_and_chain p = { rt, &stop, polls, stress(2000000) };
    ck_assert_int_eq(wisp_spawn(rt, yielders_and_chain_poll, &p, sizeof(p), NULL, NULL), 0);
    wait_for(&stop, 1, 60);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
    long a = atomic_load(&polls[0]), b = atomic_load(&polls[1]);
    /* Each tick of the fairness interval gives one of them a turn. */
    ck_assert_msg(a > 0 && b > 0 && a <= 2 * b + 2 && b <= 2 * a + 2,
                  "yielders polled %ld and %ld times", a, b);
}
END_TEST

/* ---- a wake on a worker queues the task on that worker --------------------- */

struct partner {
    struct signal *sig;
    _Atomic long *woken_on;
    _Atomic long *waker_on;
};

static wisp_poll_t waits_poll(void *f, wisp_context_t *cx, void **out)
{
    struct partner *p = f;
    void *dummy;
    if (signal_future_poll(&(struct signal_future){ p->sig, NULL }, cx, &dummy) == WISP_PENDING)
        return WISP_PENDING;
    atomic_store(p->woken_on, wisp_worker_index());
    *out = NULL;
    return WISP_READY;
}

static wisp_poll_t wakes_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)cx;
    (void)out;
    struct partner *p = f;
    atomic_store(p->waker_on, wisp_worker_index());
    signal_raise(p->sig);
    return WISP_READY;
}

START_TEST(wake_on_worker_runs_there)
{
    wisp_runtime_t *rt = rt_new(2);
    int same = 0;
    for (int round = 0; round < 50; round++) {
        struct signal s;
        signal_init(&s);
        _Atomic long woken_on = -1, waker_on = -1;
        struct partner p = { &s, &woken_on, &waker_on };
        wisp_join_t *a, *b;
        ck_assert_int_eq(wisp_spawn(rt, waits_poll, &p, sizeof(p), NULL, &a), 0);
        wait_for(&s.polls, 1, 10);
        while (atomic_load(&s.in_poll)) /* let A go idle first */
            sched_yield();
        usleep(1000);
        ck_assert_int_eq(wisp_spawn(rt, wakes_poll, &p, sizeof(p), NULL, &b), 0);
        ck_assert_int_eq(wisp_join(a, NULL), 0);
        ck_assert_int_eq(wisp_join(b, NULL), 0);
        same += atomic_load(&woken_on) == atomic_load(&waker_on);
        signal_destroy(&s);
    }
    /* The woken task goes onto the waker's deque and its worker is free
     * right after: it runs there, unless another worker stole it. */
    ck_assert_int_ge(same, 40);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

/* ---- a ping-pong pair in the LIFO slot does not starve local work ------ */

struct pair_side {
    struct signal *mine, *theirs;
    _Atomic long *stop;
    wisp_runtime_t *rt;
    int spawn_setter;
};

/* Bounces with its partner through wakers until stop is set; one side
 * first spawns the setter onto the same worker. */
static wisp_poll_t pair_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)out;
    struct pair_side *p = f;
    if (p->spawn_setter) {
        p->spawn_setter = 0;
        ck_assert_int_eq(wisp_spawn(p->rt, setter_poll, &p->stop, sizeof(p->stop), NULL, NULL), 0);
    }
    if (atomic_load(p->stop)) {
        signal_raise(p->theirs); /* let the partner finish too */
        return WISP_READY;
    }
    pthread_mutex_lock(&p->mine->lock);
    p->mine->raised = 0;
    wisp_waker_set(&p->mine->waker, wisp_context_waker(cx));
    pthread_mutex_unlock(&p->mine->lock);
    signal_raise(p->theirs);
    return WISP_PENDING;
}

START_TEST(lifo_slot_does_not_starve)
{
    wisp_runtime_t *rt = rt_new(1);
    struct signal a, b;
    signal_init(&a);
    signal_init(&b);
    _Atomic long stop = 0;
    struct pair_side sa = { &a, &b, &stop, rt, 1 }, sb = { &b, &a, &stop, rt, 0 };
    wisp_join_t *ja, *jb;
    ck_assert_int_eq(wisp_spawn(rt, pair_poll, &sb, sizeof(sb), NULL, &jb), 0);
    ck_assert_int_eq(wisp_spawn(rt, pair_poll, &sa, sizeof(sa), NULL, &ja), 0);
    ck_assert_int_eq(wisp_join(ja, NULL), 0); /* hangs if the setter starves */
    ck_assert_int_eq(wisp_join(jb, NULL), 0);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
    signal_destroy(&a);
    signal_destroy(&b);
}
END_TEST

/* ---- tiny deques: the scheduler's overflow and wraparound under load ------ */

START_TEST(capacity_4_deques)
{
    wisp_runtime_t *rt;
    ck_assert_int_eq(wisp_runtime_new(&rt, &(wisp_runtime_config_t){ .workers = 3, .queue_capacity = 4 }), 0);
    /* fork-join: every parent spawns two children onto a 4-slot deque */
    for (int round = 0; round < 5; round++) {
        struct fib root = { rt, 18, 0, 0, NULL, NULL };
        wisp_join_t *j;
        ck_assert_int_eq(wisp_spawn(rt, fib_poll, &root, sizeof(root), NULL, &j), 0);
        void *out;
        ck_assert_int_eq(wisp_join(j, &out), 0);
        ck_assert_uint_eq((uintptr_t)out, 2584);
    }
    /* a task spawning many: its deque overflows to the injector again and again */
    atomic_store(&ran, 0);
    ck_assert_int_eq(wisp_block_on(rt, spawn_many_poll, &(struct spawn_many){ rt, stress(100000) }, NULL), 0);
    wait_for(&ran, stress(100000), 60);
    /* yields and wakes through tiny deques */
    _Atomic long flag = 0;
    struct yielder y = { &flag, 0 };
    wisp_join_t *yj[8];
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(wisp_spawn(rt, yielder_poll, &y, sizeof(y), NULL, &yj[i]), 0);
    usleep(10000);
    atomic_store(&flag, 1);
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(wisp_join(yj[i], NULL), 0);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("runtime");
    TCase *tc = tcase_create("runtime");
    tcase_set_timeout(tc, TEST_TIMEOUT);
    tcase_add_test(tc, create_query_free);
    tcase_add_test(tc, current_runtime_and_worker_index);
    tcase_add_test(tc, block_on_timer_future);
    tcase_add_test(tc, spawned_timer_futures);
    tcase_add_test(tc, block_on_spawns_onto_runtime);
    tcase_add_test(tc, fork_join_fib);
    tcase_add_test(tc, many_outside_spawners);
    tcase_add_test(tc, yield_does_not_starve);
    tcase_add_test(tc, injector_not_starved_by_local_work);
    tcase_add_test(tc, deque_not_starved_by_spawn_chain);
    tcase_add_test(tc, yielders_alternate_beside_spawn_chain);
    tcase_add_test(tc, wake_on_worker_runs_there);
    tcase_add_test(tc, lifo_slot_does_not_starve);
    tcase_add_test(tc, capacity_4_deques);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
