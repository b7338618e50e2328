/* test_metrics.c - runtime metrics add up (polls >= tasks, spawned =
 * completed + cancelled once everything ended, per-worker sums = totals,
 * versioned size handling).  Skipped in a build without metrics. */
#include "helpers.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static wisp_runtime_metrics_t read_metrics(wisp_runtime_t *rt, wisp_worker_metrics_t *per, unsigned n)
{
    wisp_runtime_metrics_t m = { .size = sizeof(m), .per_worker = per, .per_worker_len = n };
    ck_assert_int_eq(wisp_runtime_metrics(rt, &m), 0);
    return m;
}

START_TEST(metrics_add_up)
{
    wisp_runtime_t *rt = rt_new(2);
    enum { N = 500 };
    run_parents(rt, N);
    usleep(20000); /* workers finish their bookkeeping and park */
    wisp_worker_metrics_t per[2];
    wisp_runtime_metrics_t m = read_metrics(rt, per, 2);
    ck_assert_uint_eq(m.version, WISP_METRICS_VERSION);
    ck_assert_uint_eq(m.workers, 2);
    ck_assert_uint_eq(m.remote_spawns, N);
    ck_assert_uint_eq(m.total.spawns, 2 * N);
    ck_assert_uint_eq(m.total.completed, 3 * N);
    ck_assert_uint_eq(m.total.cancelled + m.remote_cancelled, 0);
    ck_assert_uint_eq(m.live_tasks, 0);
    ck_assert_uint_eq(m.injector_depth, 0);
    /* every task polled at least once; children polled 4 times each */
    ck_assert_uint_ge(m.total.polls, 3 * N + 2 * N * 3);
    ck_assert_uint_ge(m.total.wakes, 2 * N * 3); /* the children's yields */
    /* everything that entered the injector left it */
    ck_assert_uint_eq(m.total.injector_pops, m.remote_spawns + m.remote_wakes + m.total.overflows);
    ck_assert_uint_le(m.total.steals, m.total.steal_attempts);
    ck_assert_uint_ge(m.total.tasks_stolen, m.total.steals);
    ck_assert_uint_ge(m.total.parks, 1);
    ck_assert_uint_gt(m.total.busy_ns, 0);
    /* per-worker rows add up to the total */
    const uint64_t *t = (const uint64_t *)&m.total;
    for (size_t f = 0; f < sizeof(m.total) / sizeof(uint64_t); f++)
        ck_assert_uint_eq(((uint64_t *)&per[0])[f] + ((uint64_t *)&per[1])[f], t[f]);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

START_TEST(metrics_count_cancellations)
{
    wisp_runtime_t *rt = rt_new(2);
    enum { K = 100 };
    struct signal s;
    signal_init(&s);
    wisp_join_t *j[K];
    for (int i = 0; i < K; i++) {
        struct signal_future f = { &s, NULL };
        ck_assert_int_eq(wisp_spawn(rt, signal_future_poll, &f, sizeof(f), NULL, &j[i]), 0);
    }
    wait_for(&s.polls, K, 10);
    wisp_runtime_metrics_t m = read_metrics(rt, NULL, 0);
    ck_assert_uint_eq(m.live_tasks, K);
    for (int i = 0; i < K; i++) {
        while (!wisp_join_is_finished(j[i])) { /* idle: abort closes it here */
            wisp_join_abort(j[i]);
            usleep(100);
        }
        ck_assert_int_eq(wisp_join(j[i], NULL), -ECANCELED);
    }
    m = read_metrics(rt, NULL, 0);
    ck_assert_uint_eq(m.remote_spawns, K);
    ck_assert_uint_eq(m.total.cancelled + m.remote_cancelled, K);
    ck_assert_uint_eq(m.live_tasks, 0);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
    signal_destroy(&s);
}
END_TEST

START_TEST(metrics_versioned_size)
{
    wisp_runtime_t *rt = rt_new(1);
    ck_assert_int_eq(wisp_runtime_metrics(rt, NULL), -EINVAL);
    ck_assert_int_eq(wisp_runtime_metrics(NULL, &(wisp_runtime_metrics_t){ .size = sizeof(wisp_runtime_metrics_t) }), -EINVAL);
    wisp_runtime_metrics_t m = { .size = 8 };
    ck_assert_int_eq(wisp_runtime_metrics(rt, &m), -EINVAL);
    /* a caller compiled with a larger struct: nothing past our size is written */
    struct {
        wisp_runtime_metrics_t m;
        uint64_t future_field;
    } big;
    memset(&big, 0xAB, sizeof(big));
    big.m.size = sizeof(big);
    big.m.per_worker = NULL;
    big.m.per_worker_len = 0;
    ck_assert_int_eq(wisp_runtime_metrics(rt, &big.m), 0);
    ck_assert_uint_eq(big.m.workers, 1);
    ck_assert_uint_eq(big.future_field, UINT64_C(0xABABABABABABABAB));
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

int main(void)
{
    if (!WISP_METRICS)
        return skip_suite("built with WISP_METRICS=OFF");
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_set_timeout(tc, TEST_TIMEOUT);
    tcase_add_test(tc, metrics_add_up);
    tcase_add_test(tc, metrics_count_cancellations);
    tcase_add_test(tc, metrics_versioned_size);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
