/* test_timer.c - timers: sleeps fire in deadline order and never early,
 * also with every worker parked; 100,000 timers; cancellation from another
 * thread; intervals; timeouts; sleeps from wisp_block_on; a sleep with no
 * runtime; a sleep outliving its runtime; the wheel itself (cascading over
 * every level, O(1) cancel). */
#include "helpers.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "clock.h"
#include "runtime.h"
#include "timer.h"

#define MS UINT64_C(1000000)

/* ---- a task that sleeps, then records when it woke ------------------------- */

struct sleeper {
    wisp_sleep_t sleep;
    uint64_t deadline;
    _Atomic long *order;      /* next position */
    long *position;           /* where this one came */
    uint64_t *woke_at;
    _Atomic long *done;
};

static wisp_poll_t sleeper_poll(void *f, wisp_context_t *cx, void **out)
{
    struct sleeper *s = f;
    void *st;
    if (wisp_sleep_poll(&s->sleep, cx, &st) == WISP_PENDING)
        return WISP_PENDING;
    *s->woke_at = clock_now_ns();
    *s->position = atomic_fetch_add(s->order, 1);
    atomic_fetch_add(s->done, 1);
    *out = st;
    return WISP_READY;
}

static void sleeper_drop(void *f)
{
    wisp_sleep_drop(&((struct sleeper *)f)->sleep);
}

START_TEST(sleeps_fire_in_order_never_early)
{
    wisp_runtime_t *rt = rt_new(2);
    enum { N = 40 };
    long position[N];
    uint64_t woke[N], deadline[N];
    _Atomic long order = 0, done = 0;
    uint64_t now = clock_now_ns();
    wisp_join_t *j[N];
    for (int i = 0; i < N; i++) {
        /* spread over 5..200 ms, in a shuffled spawn order */
        int k = (i * 17) % N;
        deadline[k] = now + (5 + (uint64_t)k * 5) * MS;
        struct sleeper s = { .order = &order, .position = &position[k], .woke_at = &woke[k], .done = &done };
        wisp_sleep_until_init(&s.sleep, deadline[k]);
        ck_assert_int_eq(wisp_spawn(rt, sleeper_poll, &s, sizeof(s), sleeper_drop, &j[k]), 0);
    }
    for (int i = 0; i < N; i++) {
        void *st;
        ck_assert_int_eq(wisp_join(j[i], &st), 0);
        ck_assert_ptr_null(st);
    }
    for (int k = 0; k < N; k++) {
        ck_assert_uint_ge(woke[k], deadline[k]); /* never early */
        if (k > 0)
            ck_assert_int_gt(position[k], position[k - 1]); /* 5 ms apart: in order */
    }
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

/* Every worker parked: the earliest timer's deadline is what wakes one. */
START_TEST(timers_fire_with_every_worker_idle)
{
    wisp_runtime_t *rt = rt_new(2);
    _Atomic long order = 0, done = 0;
    long pos;
    uint64_t woke;
    uint64_t deadline = clock_now_ns() + 300 * MS;
    struct sleeper s = { .order = &order, .position = &pos, .woke_at = &woke, .done = &done };
    wisp_sleep_until_init(&s.sleep, deadline);
    ck_assert_int_eq(wisp_spawn(rt, sleeper_poll, &s, sizeof(s), sleeper_drop, NULL), 0);
    usleep(100000); /* everyone parks (the only task waits on the timer) */
    wisp_runtime_metrics_t m = { .size = sizeof(m) };
    if (wisp_runtime_metrics(rt, &m) == 0)
        ck_assert_uint_ge(m.total.parks, 2);
    wait_for(&done, 1, 10);
    ck_assert_uint_ge(woke, deadline);
    ck_assert_uint_lt(woke - deadline, 200 * MS); /* a loaded machine may be late */
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

/* A timer armed from outside on a worker that sleeps with no deadline: the
 * arm unparks it, and it must sleep again with the new deadline, not go
 * back to sleeping forever (it did, as every unpark that was not a
 * notifier's made the park loop sleep again with the old deadline). */
START_TEST(timer_armed_from_outside_wakes_a_sleeping_worker)
{
    wisp_runtime_t *rt = rt_new(1);
    usleep(50000); /* the worker parks with no timer */
    for (int i = 0; i < 5; i++) {
        wisp_sleep_t s;
        void *st = (void *)1;
        uint64_t t0 = clock_now_ns();
        wisp_sleep_init(&s, 10 * MS);
        ck_assert_int_eq(wisp_block_on(rt, wisp_sleep_poll, &s, &st), 0);
        wisp_sleep_drop(&s);
        ck_assert_ptr_null(st);
        ck_assert_uint_ge(clock_now_ns() - t0, 10 * MS);
        usleep(20000);
    }
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

/* ---- many timers, and cancellation from another thread ------------------------ */

struct many {
    wisp_sleep_t sleep;
    _Atomic long *polled, *fired;
};

static wisp_poll_t many_poll(void *f, wisp_context_t *cx, void **out)
{
    struct many *m = f;
    void *st;
    wisp_poll_t r = wisp_sleep_poll(&m->sleep, cx, &st);
    if (r == WISP_PENDING) {
        atomic_fetch_add(m->polled, 1);
        return WISP_PENDING;
    }
    atomic_fetch_add(m->fired, 1);
    *out = st;
    return WISP_READY;
}

static void many_drop(void *f)
{
    wisp_sleep_drop(&((struct many *)f)->sleep);
}

START_TEST(hundred_thousand_timers)
{
    wisp_runtime_t *rt = rt_new(2);
    long n = stress(100000);
    _Atomic long polled = 0, fired = 0;
    uint64_t now = clock_now_ns();
    for (long i = 0; i < n; i++) {
        struct many m = { .polled = &polled, .fired = &fired };
        wisp_sleep_until_init(&m.sleep, now + (uint64_t)(10 + i % 300) * MS);
        ck_assert_int_eq(wisp_spawn(rt, many_poll, &m, sizeof(m), many_drop, NULL), 0);
    }
    wait_for(&fired, n, 60);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

struct canceller {
    wisp_join_t **joins;
    long n;
};

static void *abort_all(void *arg)
{
    struct canceller *c = arg;
    for (long i = 0; i < c->n; i++)
        wisp_join_abort(c->joins[i]);
    return NULL;
}

/* Sleeps armed on the workers' wheels, dropped (aborted) from an outside
 * thread: each drop removes its entry under that wheel's lock; none fires. */
START_TEST(timers_cancelled_from_another_thread)
{
    wisp_runtime_t *rt = rt_new(2);
    long n = stress(20000);
    _Atomic long polled = 0, fired = 0;
    wisp_join_t **joins = calloc((size_t)n, sizeof(*joins));
    uint64_t now = clock_now_ns();
    for (long i = 0; i < n; i++) {
        struct many m = { .polled = &polled, .fired = &fired };
        wisp_sleep_until_init(&m.sleep, now + 10000 * MS);
        ck_assert_int_eq(wisp_spawn(rt, many_poll, &m, sizeof(m), many_drop, &joins[i]), 0);
    }
    wait_for(&polled, n, 30); /* all armed */
    struct canceller c = { joins, n };
    pthread_t th;
    pthread_create(&th, NULL, abort_all, &c);
    pthread_join(th, NULL);
    for (long i = 0; i < n; i++)
        ck_assert_int_eq(wisp_join(joins[i], NULL), -ECANCELED);
    ck_assert_int_eq(atomic_load(&fired), 0);
    /* the wheels are empty again */
    struct wisp_runtime *r = (struct wisp_runtime *)rt;
    for (unsigned i = 0; i < r->nworkers; i++)
        ck_assert_uint_eq(r->workers[i]->timers.armed, 0);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
    free(joins);
}
END_TEST

/* ---- interval and timeout ------------------------------------------------------ */

struct ticker {
    wisp_interval_t it;
    int want;
    uint64_t started, ended;
};

static wisp_poll_t ticker_poll(void *f, wisp_context_t *cx, void **out)
{
    struct ticker *t = f;
    void *tick;
    while (wisp_interval_poll(&t->it, cx, &tick) == WISP_READY) {
        ck_assert((intptr_t)tick > 0);
        if ((intptr_t)tick == t->want) {
            t->ended = clock_now_ns();
            *out = (void *)(t->ended - t->started);
            return WISP_READY;
        }
    }
    return WISP_PENDING;
}

static void ticker_drop(void *f)
{
    wisp_interval_drop(&((struct ticker *)f)->it);
}

START_TEST(interval_ticks_each_period)
{
    wisp_runtime_t *rt = rt_new(2);
    struct ticker t = { .want = 10, .started = clock_now_ns() };
    ck_assert_int_eq(wisp_interval_init(&t.it, 10 * MS), 0);
    ck_assert_int_eq(wisp_interval_init(&t.it, 0), -EINVAL);
    ck_assert_int_eq(wisp_interval_init(&t.it, 10 * MS), 0);
    wisp_join_t *j;
    ck_assert_int_eq(wisp_spawn(rt, ticker_poll, &t, sizeof(t), ticker_drop, &j), 0);
    void *elapsed;
    ck_assert_int_eq(wisp_join(j, &elapsed), 0);
    ck_assert_uint_ge((uintptr_t)elapsed, 100 * MS); /* ten periods, never early */
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

/* A future that is ready after n polls, waking itself in between, or
 * never (n < 0). */
static wisp_poll_t eventually_poll(void *f, wisp_context_t *cx, void **out)
{
    int *n = f;
    if (*n < 0)
        return WISP_PENDING;
    if ((*n)-- == 0) {
        *out = (void *)42;
        return WISP_READY;
    }
    return wisp_yield(cx);
}

struct timed {
    wisp_timeout_t to;
    int inner;
};

static wisp_poll_t timed_poll(void *f, wisp_context_t *cx, void **out)
{
    struct timed *t = f;
    t->to.future = &t->inner; /* the task copied us: point at our own copy */
    int st;
    void *v;
    if (wisp_timeout_poll(&t->to, cx, &st, &v) == WISP_PENDING)
        return WISP_PENDING;
    *out = st ? (void *)(intptr_t)st : v;
    return WISP_READY;
}

static void timed_drop(void *f)
{
    wisp_timeout_drop(&((struct timed *)f)->to);
}

START_TEST(timeout_bounds_a_future)
{
    wisp_runtime_t *rt = rt_new(2);
    void *out;
    wisp_join_t *j;
    struct timed quick = { .inner = 5 }, never = { .inner = -1 };
    wisp_timeout_init(&quick.to, 1000 * MS, eventually_poll, NULL);
    ck_assert_int_eq(wisp_spawn(rt, timed_poll, &quick, sizeof(quick), timed_drop, &j), 0);
    ck_assert_int_eq(wisp_join(j, &out), 0);
    ck_assert_ptr_eq(out, (void *)42);
    uint64_t t0 = clock_now_ns();
    wisp_timeout_init(&never.to, 30 * MS, eventually_poll, NULL);
    ck_assert_int_eq(wisp_spawn(rt, timed_poll, &never, sizeof(never), timed_drop, &j), 0);
    ck_assert_int_eq(wisp_join(j, &out), 0);
    ck_assert_int_eq((intptr_t)out, -ETIMEDOUT);
    ck_assert_uint_ge(clock_now_ns() - t0, 30 * MS);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

/* ---- block_on, no runtime, outliving the runtime -------------------------------- */

START_TEST(sleep_from_block_on_and_without_runtime)
{
    wisp_runtime_t *rt = rt_new(2);
    wisp_sleep_t s;
    void *st = (void *)1;
    uint64_t t0 = clock_now_ns();
    wisp_sleep_init(&s, 20 * MS);
    ck_assert_int_eq(wisp_block_on(rt, wisp_sleep_poll, &s, &st), 0);
    wisp_sleep_drop(&s);
    ck_assert_ptr_null(st);
    ck_assert_uint_ge(clock_now_ns() - t0, 20 * MS);
    /* no runtime to arm it on */
    wisp_sleep_init(&s, 20 * MS);
    ck_assert_int_eq(wisp_block_on(NULL, wisp_sleep_poll, &s, &st), 0);
    ck_assert_int_eq((intptr_t)st, -ENXIO);
    wisp_sleep_drop(&s);
    /* a deadline already past needs no runtime */
    wisp_sleep_until_init(&s, clock_now_ns() - 1);
    ck_assert_int_eq(wisp_block_on(NULL, wisp_sleep_poll, &s, &st), 0);
    ck_assert_ptr_null(st);
    wisp_sleep_drop(&s);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

/* Polls the sleep once (arming it) and is done, leaving it armed. */
static wisp_poll_t arm_once_poll(void *f, wisp_context_t *cx, void **out)
{
    void *st = NULL;
    ck_assert_int_eq(wisp_sleep_poll(f, cx, &st), WISP_PENDING);
    *out = st;
    return WISP_READY;
}

START_TEST(sleep_outliving_its_runtime)
{
    wisp_runtime_t *rt = rt_new(1);
    wisp_sleep_t s;
    wisp_sleep_init(&s, 100000 * MS);
    ck_assert_int_eq(wisp_block_on(rt, arm_once_poll, &s, NULL), 0);
    ck_assert_int_eq(wisp_runtime_free(rt), 0); /* detaches it */
    wisp_waker_t w = wisp_waker_noop();
    wisp_context_t cx = wisp_context_from_waker(&w);
    void *st;
    ck_assert_int_eq(wisp_sleep_poll(&s, &cx, &st), WISP_READY);
    ck_assert_int_eq((intptr_t)st, -ESHUTDOWN);
    wisp_sleep_drop(&s); /* touches no wheel */
}
END_TEST

/* ---- the wheel alone: every level, cascades, cancel ----------------------------- */

START_TEST(wheel_cascades_through_every_level)
{
    struct timer_wheel *w = calloc(1, sizeof(*w));
    wisp__timer_wheel_init(w, 0, NULL);
    enum { N = 7 };
    /* deadlines at every level: 1 ms ... about 16 days */
    uint64_t ms[N] = { 1, 70, 5000, 300000, 20000000, 1400000000ull, 68000000000ull };
    struct timer_entry e[N];
    for (int i = 0; i < N; i++) {
        timer_entry_init(&e[i]);
        wisp__timer_arm(w, &e[i], ms[i] * MS);
    }
    ck_assert_uint_eq(w->armed, N);
    for (int i = 0; i < N; i++) {
        /* just before: not fired; at the deadline: fired */
        wisp__timer_advance(w, ms[i] * MS - 1);
        ck_assert_uint_eq(atomic_load(&e[i].state), TIMER_ARMED);
        ck_assert_uint_eq(wisp__timer_advance(w, ms[i] * MS), 1);
        ck_assert_uint_eq(atomic_load(&e[i].state), TIMER_FIRED);
    }
    ck_assert_uint_eq(w->armed, 0);
    /* cancel at every level */
    for (int i = 0; i < N; i++) {
        timer_entry_init(&e[i]);
        wisp__timer_arm(w, &e[i], (ms[N - 1] + ms[i]) * MS);
    }
    for (int i = 0; i < N; i++)
        wisp__timer_cancel(&e[i]);
    ck_assert_uint_eq(w->armed, 0);
    ck_assert_uint_eq(wisp__timer_park_deadline(w), DRIVER_FOREVER);
    /* deadlines across the top level's turn (64^6 ms) fire in time too */
    uint64_t base = w->elapsed, turn = WHEEL_MAX_MS + 1;
    uint64_t cross[3] = { turn + 5, turn + 5000000, base + WHEEL_MAX_MS };
    for (int i = 0; i < 3; i++) {
        timer_entry_init(&e[i]);
        wisp__timer_arm(w, &e[i], cross[i] * MS);
    }
    for (int i = 0; i < 3; i++) {
        for (uint64_t t = w->elapsed; t + 1000000000 < cross[i]; t += 1000000000) /* coarse steps */
            wisp__timer_advance(w, t * MS);
        wisp__timer_advance(w, cross[i] * MS - 1);
        ck_assert_uint_eq(atomic_load(&e[i].state), TIMER_ARMED);
        wisp__timer_advance(w, cross[i] * MS);
        ck_assert_uint_eq(atomic_load(&e[i].state), TIMER_FIRED);
    }
    ck_assert_uint_eq(w->armed, 0);
    free(w);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("timer");
    TCase *tc = tcase_create("timer");
    tcase_set_timeout(tc, TEST_TIMEOUT);
    tcase_add_test(tc, sleeps_fire_in_order_never_early);
    tcase_add_test(tc, timers_fire_with_every_worker_idle);
    tcase_add_test(tc, timer_armed_from_outside_wakes_a_sleeping_worker);
    tcase_add_test(tc, hundred_thousand_timers);
    tcase_add_test(tc, timers_cancelled_from_another_thread);
    tcase_add_test(tc, interval_ticks_each_period);
    tcase_add_test(tc, timeout_bounds_a_future);
    tcase_add_test(tc, sleep_from_block_on_and_without_runtime);
    tcase_add_test(tc, sleep_outliving_its_runtime);
    tcase_add_test(tc, wheel_cascades_through_every_level);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
