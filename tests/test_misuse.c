/* test_misuse.c - every misuse the contract names gets its documented
 * error, never a crash or a hang: NULL and absurd arguments, calls on a
 * worker that would deadlock.  Running out of memory and threads is
 * test_limits.c. */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static _Atomic long drops;

static void count_drop(void *f)
{
    (void)f;
    atomic_fetch_add(&drops, 1);
}

static wisp_poll_t ready_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)f;
    (void)cx;
    *out = NULL;
    return WISP_READY;
}

START_TEST(runtime_bad_arguments)
{
    int threads_before = process_threads();
    wisp_runtime_config_t cfg = { .workers = WISP_MAX_WORKERS + 1 };
    ck_assert_int_eq(wisp_runtime_new(NULL, NULL), -EINVAL);
    wisp_runtime_t *rt = (wisp_runtime_t *)0x1;
    ck_assert_int_eq(wisp_runtime_new(&rt, &cfg), -EINVAL);
    ck_assert_ptr_null(rt);
    cfg.workers = 100000000;
    ck_assert_int_eq(wisp_runtime_new(&rt, &cfg), -EINVAL);
    ck_assert_int_eq(wisp_runtime_free(NULL), -EINVAL);
    ck_assert_uint_eq(wisp_runtime_workers(NULL), 0);
    ck_assert_int_eq(process_threads(), threads_before);
}
END_TEST

START_TEST(spawn_bad_arguments)
{
    wisp_runtime_t *rt = rt_new(1);
    wisp_join_t *j = (wisp_join_t *)0x1;
    int x = 5;
    atomic_store(&drops, 0);
    ck_assert_int_eq(wisp_spawn(NULL, ready_poll, &x, sizeof(x), count_drop, &j), -EINVAL);
    ck_assert_ptr_null(j);
    ck_assert_int_eq(wisp_spawn(rt, NULL, &x, sizeof(x), count_drop, &j), -EINVAL);
    ck_assert_int_eq(wisp_spawn(rt, ready_poll, NULL, sizeof(x), count_drop, &j), -EINVAL);
    ck_assert_int_eq(wisp_spawn(rt, ready_poll, &x, SIZE_MAX, count_drop, &j), -EINVAL);
    ck_assert_int_eq(atomic_load(&drops), 0); /* drop never called on error */
    /* size 0 with a NULL future is fine */
    ck_assert_int_eq(wisp_spawn(rt, ready_poll, NULL, 0, count_drop, &j), 0);
    ck_assert_int_eq(wisp_join(j, NULL), 0);
    ck_assert_int_eq(atomic_load(&drops), 1);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

START_TEST(join_bad_arguments)
{
    ck_assert_int_eq(wisp_join(NULL, NULL), -EINVAL);
    int status = 0;
    void *out = (void *)1;
    wisp_waker_t w = wisp_waker_noop();
    wisp_context_t cx = wisp_context_from_waker(&w);
    ck_assert_int_eq(wisp_join_poll(NULL, &cx, &status, &out), WISP_READY);
    ck_assert_int_eq(status, -EINVAL);
    ck_assert_ptr_null(out);
    wisp_join_detach(NULL);
    wisp_join_abort(NULL);
    ck_assert(!wisp_join_is_finished(NULL));

    /* join_poll with a NULL context leaves the handle usable */
    wisp_runtime_t *rt = rt_new(1);
    wisp_join_t *j;
    ck_assert_int_eq(wisp_spawn(rt, ready_poll, NULL, 0, NULL, &j), 0);
    ck_assert_int_eq(wisp_join_poll(j, NULL, &status, &out), WISP_READY);
    ck_assert_int_eq(status, -EINVAL);
    ck_assert_int_eq(wisp_join(j, NULL), 0);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

/* A handle used after it was released, while the task's memory is still
 * alive (a waker clone keeps it): caught, not a double release. */
static wisp_waker_t kept;

static wisp_poll_t keep_waker_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)f;
    kept = wisp_waker_clone(wisp_context_waker(cx));
    *out = (void *)7;
    return WISP_READY;
}

START_TEST(released_handle_use_is_caught)
{
    wisp_runtime_t *rt = rt_new(1);
    wisp_join_t *j;
    void *out;
    int status;
    wisp_waker_t w = wisp_waker_noop();
    wisp_context_t cx = wisp_context_from_waker(&w);

    /* joined, then joined, polled, aborted and detached again */
    ck_assert_int_eq(wisp_spawn(rt, keep_waker_poll, NULL, 0, NULL, &j), 0);
    ck_assert_int_eq(wisp_join(j, &out), 0);
    ck_assert_ptr_eq(out, (void *)7);
    ck_assert_int_eq(wisp_join(j, &out), -EINVAL);
    ck_assert_ptr_null(out);
    out = (void *)1;
    ck_assert_int_eq(wisp_join_poll(j, &cx, &status, &out), WISP_READY);
    ck_assert_int_eq(status, -EINVAL);
    ck_assert_ptr_null(out);
    wisp_join_abort(j);
    wisp_join_detach(j);
    wisp_waker_drop(&kept); /* the last reference: freed exactly once */

    /* detached, then detached and joined again */
    ck_assert_int_eq(wisp_spawn(rt, keep_waker_poll, NULL, 0, NULL, &j), 0);
    while (!wisp_join_is_finished(j))
        usleep(100);
    wisp_join_detach(j);
    wisp_join_detach(j);
    ck_assert_int_eq(wisp_join(j, NULL), -EINVAL);
    wisp_waker_drop(&kept);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
}
END_TEST

START_TEST(block_on_bad_arguments)
{
    ck_assert_int_eq(wisp_block_on(NULL, NULL, NULL, NULL), -EINVAL);
    void *out = (void *)1;
    ck_assert_int_eq(wisp_block_on(NULL, ready_poll, NULL, &out), 0);
    ck_assert_ptr_null(out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("misuse");
    TCase *tc = tcase_create("misuse");
    tcase_set_timeout(tc, TEST_TIMEOUT);
    tcase_add_test(tc, runtime_bad_arguments);
    tcase_add_test(tc, spawn_bad_arguments);
    tcase_add_test(tc, join_bad_arguments);
    tcase_add_test(tc, block_on_bad_arguments);
    tcase_add_test(tc, released_handle_use_is_caught);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
