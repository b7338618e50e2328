/* helpers.h - shared by the Check tests: a counting waker, a futex-free
 * latch, runtime shortcuts and a few test futures. */
#ifndef WISP_TEST_HELPERS_H
#define WISP_TEST_HELPERS_H

#include <check.h>
#include <stdatomic.h>
#include <wisp/wisp.h>

/* How much a stress test does: smaller under sanitizers (set by the
 * WISP_STRESS environment variable: a divisor, default 1). */
long stress(long n);

/* Per-test timeout in seconds, scaled by CK_TIMEOUT_MULTIPLIER by Check. */
#define TEST_TIMEOUT 60

wisp_runtime_t *rt_new(unsigned workers);

/* A waker that counts wakes and live references. */
struct counting_waker {
    _Atomic long wakes;
    _Atomic long refs;
};
wisp_waker_t counting_waker(struct counting_waker *c); /* adds a reference */

/* Spin-wait (with sched_yield) until *flag reaches want; fails the test if
 * it takes longer than seconds. */
void wait_for(_Atomic long *flag, long want, double seconds);

/* Run a suite with Check in fork mode; returns the process exit code. */
int run_suite(Suite *s);

#endif
