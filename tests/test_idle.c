/* test_idle.c - parking: no lost wakeups and no stuck work.  An outside
 * thread and a task ping-pong through wakers with pauses that let the
 * workers park; idle workers all park; a spawn from a busy worker reaches
 * a parked one; a wake from outside reaches a parked pool; many outside
 * threads spawn and join in tight loops.  Check's per-test timeout is the
 * watchdog: a lost wakeup hangs and fails the test. */
#include "helpers.h"

#include <sched.h>
#include <unistd.h>

#include "runtime.h"

/* ---- ping-pong between an outside thread and a task --------------------- */

struct court {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    long ball;       /* odd: the task's turn; even: the outside thread's */
    long rounds;
    wisp_waker_t waker;
};

static wisp_poll_t court_task_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)out;
    struct court *c = *(struct court **)f;
    pthread_mutex_lock(&c->lock);
    while (c->ball % 2 == 1) { /* our turn: hit it back */
        c->ball++;
        pthread_cond_signal(&c->cond);
    }
    int done = c->ball >= 2 * c->rounds;
    if (!done)
        wisp_waker_set(&c->waker, wisp_context_waker(cx));
    pthread_mutex_unlock(&c->lock);
    return done ? WISP_READY : WISP_PENDING;
}

START_TEST(ping_pong_with_outside_thread)
{
    wisp_runtime_t *rt = rt_new(2);
    struct court c = { .rounds = stress(50000) };
    pthread_mutex_init(&c.lock, NULL);
    pthread_cond_init(&c.cond, NULL);
    c.waker = WISP_WAKER_EMPTY;
    struct court *p = &c;
    wisp_join_t *j;
    ck_assert_int_eq(wisp_spawn(rt, court_task_poll, &p, sizeof(p), NULL, &j), 0);
    for (long r = 0; r < c.rounds; r++) {
        pthread_mutex_lock(&c.lock);
        c.ball++; /* serve: now odd */
        wisp_waker_t w = c.waker;
        c.waker = WISP_WAKER_EMPTY;
        pthread_mutex_unlock(&c.lock);
        wisp_waker_wake(&w);
        pthread_mutex_lock(&c.lock);
        while (c.ball % 2 == 1)
            pthread_cond_wait(&c.cond, &c.lock);
        pthread_mutex_unlock(&c.lock);
        if (r % 97 == 0)
            usleep(300); /* long enough for the workers to park */
    }
    ck_assert_int_eq(wisp_join(j, NULL), 0);
    ck_assert_int_eq(c.ball, 2 * c.rounds);
    wisp_waker_drop(&c.waker);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

static wisp_poll_t echo_poll(void *f, wisp_context_t *cx, void **out);

/* ---- an idle runtime parks every worker ---------------------------------- */

static unsigned unparked(wisp_runtime_t *rt)
{
    return (unsigned)(atomic_load(&rt->idle.counts) >> 32);
}

START_TEST(idle_workers_all_park)
{
    wisp_runtime_t *rt = rt_new(4);
    for (int i = 0; i < 500 && unparked(rt) != 0; i++)
        usleep(10000);
    ck_assert_uint_eq(unparked(rt), 0);
    /* and again after some work */
    for (int i = 0; i < 1000; i++) {
        void *v = NULL;
        ck_assert_int_eq(wisp_spawn(rt, echo_poll, &v, sizeof(v), NULL, NULL), 0);
    }
    for (int i = 0; i < 500 && unparked(rt) != 0; i++)
        usleep(10000);
    ck_assert_uint_eq(unparked(rt), 0);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

/* ---- a spawn on a busy worker reaches a parked worker ------------------------ */

struct flag_task {
    _Atomic long *flag;
};

static wisp_poll_t set_flag_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)cx;
    (void)out;
    atomic_store(((struct flag_task *)f)->flag, 1);
    return WISP_READY;
}

struct busy_parent {
    wisp_runtime_t *rt;
    _Atomic long flag;
};

/* Spawns a child onto its own deque, then blocks its worker until the
 * child ran: only another worker, unparked by the spawn, can run it. */
static wisp_poll_t busy_parent_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)cx;
    (void)out;
    struct busy_parent *bp = *(struct busy_parent **)f;
    struct flag_task ft = { &bp->flag };
    ck_assert_int_eq(wisp_spawn(bp->rt, set_flag_poll, &ft, sizeof(ft), NULL, NULL), 0);
    while (!atomic_load(&bp->flag))
        sched_yield();
    return WISP_READY;
}

START_TEST(spawn_from_busy_worker_unparks_another)
{
    wisp_runtime_t *rt = rt_new(2);
    for (int i = 0; i < 30; i++) {
        usleep(2000); /* let both workers park */
        struct busy_parent bp = { rt, 0 };
        struct busy_parent *p = &bp;
        wisp_join_t *j;
        ck_assert_int_eq(wisp_spawn(rt, busy_parent_poll, &p, sizeof(p), NULL, &j), 0);
        ck_assert_int_eq(wisp_join(j, NULL), 0);
    }
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

/* Two tasks spawned from outside, the first busy until the second ran: a
 * worker that takes both from the injector (one to run, one onto its deque)
 * while it is the only searcher must hand the second on when its search
 * ends, or nobody takes it (a regression: the searcher once kept any lone
 * task of its own deque, as if it were a woken one). */
struct pair_gate {
    _Atomic long arrived;
};

static wisp_poll_t pair_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)cx, (void)out;
    struct pair_gate *g = *(struct pair_gate **)f;
    atomic_fetch_add(&g->arrived, 1);
    while (atomic_load(&g->arrived) < 2)
        sched_yield();
    return WISP_READY;
}

START_TEST(outside_pair_runs_side_by_side)
{
    /* a gate per round: a task may still be leaving the last round's */
    static struct pair_gate gates[200];
    wisp_runtime_t *rt = rt_new(2);
    for (int i = 0; i < 200; i++) {
        if (i % 4 == 0)
            usleep(1000); /* now and then, from a parked pool */
        struct pair_gate *gp = &gates[i];
        for (int k = 0; k < 2; k++)
            ck_assert_int_eq(wisp_spawn(rt, pair_poll, &gp, sizeof(gp), NULL, NULL), 0);
        wait_for(&gp->arrived, 2, 10);
    }
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

/* ---- wakes and spawns from outside reach a parked pool ----------------- */

START_TEST(outside_wake_reaches_parked_pool)
{
    wisp_runtime_t *rt = rt_new(2);
    for (int i = 0; i < 30; i++) {
        struct signal s;
        signal_init(&s);
        struct signal_future f = { &s, (void *)(uintptr_t)i };
        wisp_join_t *j;
        ck_assert_int_eq(wisp_spawn(rt, signal_future_poll, &f, sizeof(f), NULL, &j), 0);
        wait_for(&s.polls, 1, 10);
        usleep(2000); /* every worker parks */
        signal_raise(&s);
        void *out;
        ck_assert_int_eq(wisp_join(j, &out), 0);
        ck_assert_ptr_eq(out, (void *)(uintptr_t)i);
        signal_destroy(&s);
    }
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

static wisp_poll_t echo_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)cx;
    *out = *(void **)f;
    return WISP_READY;
}

static void *spawn_join_loop(void *arg)
{
    wisp_runtime_t *rt = arg;
    for (long i = 0; i < stress(20000); i++) {
        void *v = (void *)(uintptr_t)(i + 1), *out = NULL;
        wisp_join_t *j;
        ck_assert_int_eq(wisp_spawn(rt, echo_poll, &v, sizeof(v), NULL, &j), 0);
        ck_assert_int_eq(wisp_join(j, &out), 0);
        ck_assert_ptr_eq(out, v);
        if (i % 200 == 0)
            usleep(200);
    }
    return NULL;
}

START_TEST(outside_spawn_join_loops)
{
    for (unsigned workers = 1; workers <= 3; workers++) {
        wisp_runtime_t *rt = rt_new(workers);
        pthread_t th[4];
        for (int i = 0; i < 4; i++)
            pthread_create(&th[i], NULL, spawn_join_loop, rt);
        for (int i = 0; i < 4; i++)
            pthread_join(th[i], NULL);
        ck_assert_int_eq(wisp_runtime_free(rt), 0);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("park");
    TCase *tc = tcase_create("park");
    tcase_set_timeout(tc, TEST_TIMEOUT);
    tcase_add_test(tc, ping_pong_with_outside_thread);
    tcase_add_test(tc, idle_workers_all_park);
    tcase_add_test(tc, spawn_from_busy_worker_unparks_another);
    tcase_add_test(tc, outside_pair_runs_side_by_side);
    tcase_add_test(tc, outside_wake_reaches_parked_pool);
    tcase_add_test(tc, outside_spawn_join_loops);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
