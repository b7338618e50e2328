/* test_blocking.c - the blocking pool: jobs run and report through join
 * handles (from outside and from tasks), the pool stays within its thread
 * bound, idle threads exit after the keep-alive, an abort of a queued job
 * runs its drop instead, and shutdown waits for running jobs and drops the
 * queued ones exactly once. */
#include "helpers.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#define MS 1000000u

static void *add_one(void *arg)
{
    return (void *)((uintptr_t)arg + 1);
}

struct gate {
    _Atomic long running, peak, ran, dropped;
    _Atomic long open;
    unsigned sleep_us;
};

static void *gated(void *arg)
{
    struct gate *g = arg;
    long r = atomic_fetch_add(&g->running, 1) + 1;
    long p = atomic_load(&g->peak);
    while (r > p && !atomic_compare_exchange_weak(&g->peak, &p, r))
        ;
    if (g->sleep_us)
        usleep(g->sleep_us);
    while (!atomic_load(&g->open))
        usleep(200);
    atomic_fetch_sub(&g->running, 1);
    atomic_fetch_add(&g->ran, 1);
    return NULL;
}

static void gated_drop(void *arg)
{
    atomic_fetch_add(&((struct gate *)arg)->dropped, 1);
}

START_TEST(jobs_report_through_join_handles)
{
    wisp_runtime_t *rt = rt_new(2);
    wisp_join_t *j;
    void *out;
    ck_assert_int_eq(wisp_spawn_blocking(rt, add_one, (void *)41, NULL, &j), 0);
    ck_assert_int_eq(wisp_join(j, &out), 0);
    ck_assert_ptr_eq(out, (void *)42);
    ck_assert_int_eq(wisp_spawn_blocking(NULL, add_one, NULL, NULL, &j), -EINVAL);
    ck_assert_ptr_null(j);
    ck_assert_int_eq(wisp_spawn_blocking(rt, NULL, NULL, NULL, &j), -EINVAL);
    ck_assert_int_eq(wisp_spawn_blocking(rt, add_one, (void *)1, NULL, NULL), 0); /* detached */
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

/* A task awaits a blocking job through wisp_join_poll. */
struct awaiter {
    wisp_runtime_t *rt;
    wisp_join_t *j;
};

static wisp_poll_t awaiter_poll(void *f, wisp_context_t *cx, void **out)
{
    struct awaiter *a = f;
    if (!a->j)
        ck_assert_int_eq(wisp_spawn_blocking(a->rt, add_one, (void *)99, NULL, &a->j), 0);
    int st;
    if (wisp_join_poll(a->j, cx, &st, out) == WISP_PENDING)
        return WISP_PENDING;
    ck_assert_int_eq(st, 0);
    return WISP_READY;
}

START_TEST(tasks_await_blocking_jobs)
{
    wisp_runtime_t *rt = rt_new(2);
    for (int i = 0; i < 50; i++) {
        struct awaiter a = { rt, NULL };
        wisp_join_t *j;
        void *out;
        ck_assert_int_eq(wisp_spawn(rt, awaiter_poll, &a, sizeof(a), NULL, &j), 0);
        ck_assert_int_eq(wisp_join(j, &out), 0);
        ck_assert_ptr_eq(out, (void *)100);
    }
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

START_TEST(pool_stays_within_its_bound_and_threads_expire)
{
    wisp_runtime_t *rt;
    ck_assert_int_eq(wisp_runtime_new(&rt, &(wisp_runtime_config_t){
                         .workers = 1, .blocking_threads = 3, .thread_name = "tpool", .blocking_keepalive_ns = 50 * MS }),
                     0);
    struct gate g = { .sleep_us = 2000 };
    atomic_store(&g.open, 1);
    enum { N = 20 };
    wisp_join_t *j[N];
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(wisp_spawn_blocking(rt, gated, &g, gated_drop, &j[i]), 0);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(wisp_join(j[i], NULL), 0);
    ck_assert_int_eq(atomic_load(&g.ran), N);
    ck_assert_int_le(atomic_load(&g.peak), 3);
    ck_assert_int_ge(atomic_load(&g.peak), 2); /* it did run them side by side */
    ck_assert_int_le(threads_named("tpool-blk"), 3);
    /* the pool's threads leave after the keep-alive (counted by name: io-wq
     * threads of the rings come and go on their own schedule) */
    double waited = 0;
    while (threads_named("tpool-blk") > 0 && waited < 5) {
        usleep(10000);
        waited += 0.01;
    }
    ck_assert_int_eq(threads_named("tpool-blk"), 0);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
    ck_assert_int_eq(atomic_load(&g.dropped), 0);
}
END_TEST

START_TEST(abort_of_a_queued_job_runs_its_drop)
{
    wisp_runtime_t *rt;
    ck_assert_int_eq(wisp_runtime_new(&rt, &(wisp_runtime_config_t){ .workers = 1, .blocking_threads = 1 }), 0);
    struct gate g = { 0 };
    wisp_join_t *busy, *queued;
    ck_assert_int_eq(wisp_spawn_blocking(rt, gated, &g, gated_drop, &busy), 0);
    wait_for(&g.running, 1, 10); /* the only thread is taken */
    ck_assert_int_eq(wisp_spawn_blocking(rt, gated, &g, gated_drop, &queued), 0);
    wisp_join_abort(queued);
    atomic_store(&g.open, 1);
    ck_assert_int_eq(wisp_join(queued, NULL), -ECANCELED);
    ck_assert_int_eq(wisp_join(busy, NULL), 0);
    ck_assert_int_eq(atomic_load(&g.ran), 1);
    ck_assert_int_eq(atomic_load(&g.dropped), 1);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

struct opener {
    struct gate *g;
    useconds_t delay;
};

static void *open_later(void *arg)
{
    struct opener *o = arg;
    usleep(o->delay);
    atomic_store(&o->g->open, 1);
    return NULL;
}

/* Shutdown: the running job finishes (and reports), the queued ones are
 * dropped exactly once and report -ECANCELED. */
START_TEST(shutdown_waits_for_running_and_drops_queued)
{
    wisp_runtime_t *rt;
    ck_assert_int_eq(wisp_runtime_new(&rt, &(wisp_runtime_config_t){ .workers = 1, .blocking_threads = 2 }), 0);
    struct gate g = { 0 };
    enum { N = 10 };
    wisp_join_t *j[N];
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(wisp_spawn_blocking(rt, gated, &g, gated_drop, &j[i]), 0);
    wait_for(&g.running, 2, 10);
    struct opener o = { &g, 50000 };
    pthread_t th;
    pthread_create(&th, NULL, open_later, &o);
    ck_assert_int_eq(wisp_runtime_free(rt), 0); /* waits for the two running */
    pthread_join(th, NULL);
    ck_assert_int_eq(atomic_load(&g.ran), 2);
    ck_assert_int_eq(atomic_load(&g.dropped), N - 2);
    int ok = 0, cancelled = 0;
    for (int i = 0; i < N; i++) {
        int r = wisp_join(j[i], NULL);
        ok += r == 0;
        cancelled += r == -ECANCELED;
    }
    ck_assert_int_eq(ok, 2);
    ck_assert_int_eq(cancelled, N - 2);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("blocking");
    TCase *tc = tcase_create("blocking");
    tcase_set_timeout(tc, TEST_TIMEOUT);
    tcase_add_test(tc, jobs_report_through_join_handles);
    tcase_add_test(tc, tasks_await_blocking_jobs);
    tcase_add_test(tc, pool_stays_within_its_bound_and_threads_expire);
    tcase_add_test(tc, abort_of_a_queued_job_runs_its_drop);
    tcase_add_test(tc, shutdown_waits_for_running_and_drops_queued);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
