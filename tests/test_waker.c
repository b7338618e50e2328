/* test_waker.c - the public waker and context API: empty wakers, clone /
 * wake / wake_by_ref / drop reference accounting, will_wake and set, the
 * no-op waker, contexts, wisp_yield, and a hand-written executor loop. */
#include "helpers.h"

START_TEST(empty_waker_is_inert)
{
    wisp_waker_t e = WISP_WAKER_EMPTY;
    ck_assert(wisp_waker_is_empty(&e));
    ck_assert(wisp_waker_is_empty(NULL));
    wisp_waker_t c = wisp_waker_clone(&e);
    ck_assert(wisp_waker_is_empty(&c));
    c = wisp_waker_clone(NULL);
    ck_assert(wisp_waker_is_empty(&c));
    wisp_waker_wake_by_ref(&e);
    wisp_waker_wake_by_ref(NULL);
    wisp_waker_wake(&e);
    wisp_waker_wake(NULL);
    wisp_waker_drop(&e);
    wisp_waker_drop(NULL);
    ck_assert(wisp_waker_is_empty(&e));
    wisp_waker_t e2 = WISP_WAKER_EMPTY;
    ck_assert(wisp_waker_will_wake(&e, &e2));
}
END_TEST

START_TEST(reference_accounting)
{
    struct counting_waker cw = { 0 };
    wisp_waker_t w = counting_waker(&cw);
    ck_assert_int_eq(atomic_load(&cw.refs), 1);
    ck_assert(!wisp_waker_is_empty(&w));

    wisp_waker_t c1 = wisp_waker_clone(&w);
    wisp_waker_t c2 = wisp_waker_clone(&w);
    ck_assert_int_eq(atomic_load(&cw.refs), 3);
    ck_assert(wisp_waker_will_wake(&w, &c1));

    wisp_waker_wake_by_ref(&c1);
    ck_assert_int_eq(atomic_load(&cw.wakes), 1);
    ck_assert_int_eq(atomic_load(&cw.refs), 3);
    ck_assert(!wisp_waker_is_empty(&c1));

    wisp_waker_wake(&c1); /* consumes */
    ck_assert_int_eq(atomic_load(&cw.wakes), 2);
    ck_assert_int_eq(atomic_load(&cw.refs), 2);
    ck_assert(wisp_waker_is_empty(&c1));
    wisp_waker_wake(&c1); /* now empty: no-op */
    ck_assert_int_eq(atomic_load(&cw.wakes), 2);

    wisp_waker_drop(&c2);
    ck_assert(wisp_waker_is_empty(&c2));
    ck_assert_int_eq(atomic_load(&cw.refs), 1);
    wisp_waker_drop(&c2); /* empty: no-op */
    ck_assert_int_eq(atomic_load(&cw.refs), 1);
    wisp_waker_drop(&w);
    ck_assert_int_eq(atomic_load(&cw.refs), 0);
}
END_TEST

START_TEST(set_clones_only_when_needed)
{
    struct counting_waker a = { 0 }, b = { 0 };
    wisp_waker_t wa = counting_waker(&a), wb = counting_waker(&b);
    wisp_waker_t slot = WISP_WAKER_EMPTY;

    wisp_waker_set(&slot, &wa); /* empty slot: clone */
    ck_assert_int_eq(atomic_load(&a.refs), 2);
    wisp_waker_set(&slot, &wa); /* will_wake: nothing */
    ck_assert_int_eq(atomic_load(&a.refs), 2);
    ck_assert(!wisp_waker_will_wake(&slot, &wb));
    wisp_waker_set(&slot, &wb); /* replace: drop a, clone b */
    ck_assert_int_eq(atomic_load(&a.refs), 1);
    ck_assert_int_eq(atomic_load(&b.refs), 2);
    ck_assert(wisp_waker_will_wake(&slot, &wb));
    wisp_waker_t empty = WISP_WAKER_EMPTY;
    wisp_waker_set(&slot, &empty); /* storing the empty waker clears */
    ck_assert(wisp_waker_is_empty(&slot));
    ck_assert_int_eq(atomic_load(&b.refs), 1);
    wisp_waker_drop(&wa);
    wisp_waker_drop(&wb);
    ck_assert_int_eq(atomic_load(&a.refs), 0);
    ck_assert_int_eq(atomic_load(&b.refs), 0);
}
END_TEST

START_TEST(noop_waker)
{
    wisp_waker_t n = wisp_waker_noop();
    ck_assert(!wisp_waker_is_empty(&n));
    wisp_waker_t c = wisp_waker_clone(&n);
    ck_assert(wisp_waker_will_wake(&n, &c));
    wisp_waker_wake_by_ref(&c);
    wisp_waker_wake(&c);
    ck_assert(wisp_waker_is_empty(&c));
    wisp_waker_drop(&n);
    ck_assert(wisp_waker_is_empty(&n));
}
END_TEST

START_TEST(context_round_trip_and_yield)
{
    struct counting_waker cw = { 0 };
    wisp_waker_t w = counting_waker(&cw);
    wisp_context_t cx = wisp_context_from_waker(&w);
    ck_assert_ptr_eq(wisp_context_waker(&cx), &w);
    ck_assert_ptr_null(wisp_context_waker(NULL));
    ck_assert_int_eq(wisp_yield(&cx), WISP_PENDING);
    ck_assert_int_eq(atomic_load(&cw.wakes), 1);
    ck_assert_int_eq(atomic_load(&cw.refs), 1); /* yield wakes by reference */
    wisp_waker_drop(&w);
}
END_TEST

/* A countdown future polled by a hand-written executor loop: it wakes its
 * waker by reference each time it is not done yet ("pending must wake"). */
struct countdown_future {
    int left;
};

static wisp_poll_t countdown_poll(void *f, wisp_context_t *cx, void **out)
{
    struct countdown_future *c = f;
    if (c->left == 0) {
        *out = (void *)(uintptr_t)42;
        return WISP_READY;
    }
    c->left--;
    wisp_waker_wake_by_ref(wisp_context_waker(cx));
    return WISP_PENDING;
}

START_TEST(hand_written_executor)
{
    struct counting_waker cw = { 0 };
    wisp_waker_t w = counting_waker(&cw);
    wisp_context_t cx = wisp_context_from_waker(&w);
    struct countdown_future f = { 5 };
    void *out = NULL;
    int polls = 0;
    long seen = 0;
    for (;;) {
        polls++;
        if (countdown_poll(&f, &cx, &out) == WISP_READY)
            break;
        ck_assert_int_gt(atomic_load(&cw.wakes), seen); /* it woke us */
        seen = atomic_load(&cw.wakes);
    }
    ck_assert_int_eq(polls, 6);
    ck_assert_ptr_eq(out, (void *)(uintptr_t)42);
    wisp_waker_drop(&w);
    ck_assert_int_eq(atomic_load(&cw.refs), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("waker");
    TCase *tc = tcase_create("api");
    tcase_set_timeout(tc, TEST_TIMEOUT);
    tcase_add_test(tc, empty_waker_is_inert);
    tcase_add_test(tc, reference_accounting);
    tcase_add_test(tc, set_clones_only_when_needed);
    tcase_add_test(tc, noop_waker);
    tcase_add_test(tc, context_round_trip_and_yield);
    tcase_add_test(tc, hand_written_executor);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
