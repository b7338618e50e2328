/* helpers.h - shared by the Check tests: a counting waker, a futex-free
 * latch, runtime shortcuts and a few test futures. */
#ifndef WISP_TEST_HELPERS_H
#define WISP_TEST_HELPERS_H

#include <check.h>
#include <pthread.h>
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

/* A suite that cannot run in this build: says why, and returns 77, which
 * ctest reports as a skip (SKIP_RETURN_CODE). */
int skip_suite(const char *why);

/* Sanitizer builds reserve huge address ranges: skip RLIMIT_AS tests. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define WISP_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define WISP_TEST_SANITIZED 1
#endif
#endif
#ifndef WISP_TEST_SANITIZED
#define WISP_TEST_SANITIZED 0
#endif

/* A future that parks until someone wakes it through the waker it stored
 * in a shared slot: "wait for a signal".  Counts polls and drops. */
struct signal {
    pthread_mutex_t lock;
    wisp_waker_t waker;
    int raised;
    _Atomic long polls;
    _Atomic long drops;
    _Atomic long in_poll;      /* concurrency detector */
    _Atomic long overlapped;   /* set if two polls ever overlapped */
};
void signal_init(struct signal *s);
void signal_raise(struct signal *s); /* from any thread: raise and wake */
void signal_destroy(struct signal *s);

struct signal_future {
    struct signal *sig;
    void *result;
};
wisp_poll_t signal_future_poll(void *f, wisp_context_t *cx, void **out);
void signal_future_drop(void *f);

/* A small xorshift64 generator for test threads. */
uint64_t rng_next(uint64_t *state);

/* Worker threads must not call ck_assert (Check's failure path is not
 * thread-safe): they record the first failure and the test thread reports
 * it after joining them, with check_no_failure. */
struct failure {
    _Atomic int count;
    char msg[200];
};
void fail_later(struct failure *f, const char *fmt, ...);
void check_no_failure(struct failure *f);

/* A small fork-join workload: n parents spawned from this thread, each
 * spawning two children that yield three times; joins them all. */
void run_parents(wisp_runtime_t *rt, int n);

/* Threads: count the calling process's threads (from /proc). */
int process_threads(void);
/* Threads of this process whose name ends with suffix (io_uring's io-wq
 * workers are threads of the process too: count by name to see one pool). */
int threads_named(const char *suffix);

#endif /* WISP_TEST_HELPERS_H */
