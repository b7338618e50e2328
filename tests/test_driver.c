/* test_driver.c - the parking driver (driver.h): park until unparked or
 * until a deadline, unpark from any thread, an unpark made before the park
 * counts once, spurious returns are harmless; the same through the
 * thread-parking waker of wisp_block_on (parker.h). */
#include "helpers.h"

#include <pthread.h>
#include <unistd.h>

#include "clock.h"
#include "driver.h"
#include "parker.h"

#define MS UINT64_C(1000000)

START_TEST(deadline_in_the_past_returns_at_once)
{
    struct futex_driver d;
    wisp__futex_driver_init(&d);
    uint64_t t0 = clock_now_ns();
    ck_assert_int_eq(driver_park(&d.base, t0 - 1), DRIVER_TIMEDOUT);
    ck_assert_int_eq(driver_park(&d.base, 0), DRIVER_TIMEDOUT);
    ck_assert_uint_lt(clock_now_ns() - t0, 50 * MS);
}
END_TEST

START_TEST(deadline_is_kept)
{
    struct futex_driver d;
    wisp__futex_driver_init(&d);
    for (int i = 0; i < 5; i++) {
        uint64_t t0 = clock_now_ns(), deadline = t0 + 20 * MS;
        int r;
        /* spurious returns are allowed: loop until the driver says so */
        while ((r = driver_park(&d.base, deadline)) == DRIVER_UNPARKED)
            ;
        uint64_t t1 = clock_now_ns();
        ck_assert_int_eq(r, DRIVER_TIMEDOUT);
        ck_assert_uint_ge(t1, deadline); /* never early */
        ck_assert_uint_lt(t1 - deadline, 500 * MS); /* a loaded machine may be late */
    }
}
END_TEST

START_TEST(unpark_before_park_is_a_token)
{
    struct futex_driver d;
    wisp__futex_driver_init(&d);
    for (int i = 0; i < 3; i++)
        driver_unpark(&d.base); /* three unparks: one token */
    uint64_t t0 = clock_now_ns();
    ck_assert_int_eq(driver_park(&d.base, t0 + 1000 * MS), DRIVER_UNPARKED);
    ck_assert_uint_lt(clock_now_ns() - t0, 100 * MS);
    /* the token is spent: the next park waits for its deadline */
    ck_assert_int_eq(driver_park(&d.base, clock_now_ns() + 10 * MS), DRIVER_TIMEDOUT);
}
END_TEST

struct unparker {
    struct futex_driver *d;
    unsigned delay_us;
};

static void *unpark_later(void *arg)
{
    struct unparker *u = arg;
    usleep(u->delay_us);
    driver_unpark(&u->d->base);
    return NULL;
}

START_TEST(unpark_from_another_thread_wakes_a_sleeper)
{
    struct futex_driver d;
    wisp__futex_driver_init(&d);
    for (int i = 0; i < 20; i++) {
        struct unparker u = { &d, (unsigned)(i % 4) * 1000 };
        pthread_t th;
        pthread_create(&th, NULL, unpark_later, &u);
        uint64_t t0 = clock_now_ns();
        /* no deadline: only the unpark can end this */
        while (driver_park(&d.base, DRIVER_FOREVER) != DRIVER_UNPARKED)
            ;
        ck_assert_uint_lt(clock_now_ns() - t0, 10000 * MS);
        pthread_join(th, NULL);
    }
}
END_TEST

/* Many unparkers racing one parker that loops on a counter: no unpark that
 * comes after the parker's last check is lost (the parker would hang). */
struct race {
    struct futex_driver d;
    _Atomic long produced;
    long rounds;
};

static void *produce(void *arg)
{
    struct race *r = arg;
    for (long i = 0; i < r->rounds; i++) {
        atomic_fetch_add(&r->produced, 1);
        driver_unpark(&r->d.base);
    }
    return NULL;
}

START_TEST(no_unpark_is_lost)
{
    struct race r;
    wisp__futex_driver_init(&r.d);
    atomic_init(&r.produced, 0);
    r.rounds = stress(200000);
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, produce, &r);
    long want = 3 * r.rounds;
    uint64_t deadline = clock_now_ns() + 30000 * MS;
    while (atomic_load(&r.produced) < want) {
        ck_assert_uint_lt(clock_now_ns(), deadline);
        driver_park(&r.d.base, DRIVER_FOREVER);
    }
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
}
END_TEST

START_TEST(block_on_parker_keeps_deadlines)
{
    struct wisp__parker *p = wisp__parker_new();
    ck_assert_ptr_nonnull(p);
    uint64_t deadline = clock_now_ns() + 15 * MS;
    int r;
    while ((r = wisp__parker_park(p, deadline)) == DRIVER_UNPARKED)
        ;
    ck_assert_int_eq(r, DRIVER_TIMEDOUT);
    ck_assert_uint_ge(clock_now_ns(), deadline);
    /* its waker unparks it, also through clones that outlive the call */
    wisp_waker_t w = wisp__parker_waker(p), c = wisp_waker_clone(&w);
    wisp_waker_wake_by_ref(&c);
    ck_assert_int_eq(wisp__parker_park(p, clock_now_ns() + 1000 * MS), DRIVER_UNPARKED);
    wisp__parker_release(p);
    wisp_waker_wake(&c); /* the last reference: frees it */
}
END_TEST

START_TEST(join_parker_counts_its_clones)
{
    wisp_waker_t w = wisp__join_waker();
    wisp_waker_t c1 = wisp_waker_clone(&w), c2 = wisp_waker_clone(&w);
    wisp_waker_wake(&c1);
    wisp__join_park(); /* the token c1 left */
    wisp_waker_drop(&c2);
    wisp__join_quiesce(); /* returns: no clone left */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("driver");
    TCase *tc = tcase_create("driver");
    tcase_set_timeout(tc, TEST_TIMEOUT);
    tcase_add_test(tc, deadline_in_the_past_returns_at_once);
    tcase_add_test(tc, deadline_is_kept);
    tcase_add_test(tc, unpark_before_park_is_a_token);
    tcase_add_test(tc, unpark_from_another_thread_wakes_a_sleeper);
    tcase_add_test(tc, no_unpark_is_lost);
    tcase_add_test(tc, block_on_parker_keeps_deadlines);
    tcase_add_test(tc, join_parker_counts_its_clones);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
