/* bench.h - what wisp-bench's workload files share: a latch an outside
 * thread waits on, a countdown tasks hit, the clock, and the exits (die,
 * skip).  The I/O and timer workloads live in io_bench.c. */
#ifndef WISP_BENCH_H
#define WISP_BENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wisp/wisp.h>

/* ---- a one-shot latch the outside thread waits on ------------------------- */

struct latch {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;
};

static inline void latch_init(struct latch *l)
{
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->cond, NULL);
    l->done = 0;
}

static inline void latch_set(struct latch *l)
{
    pthread_mutex_lock(&l->lock);
    l->done = 1;
    pthread_cond_signal(&l->cond);
    pthread_mutex_unlock(&l->lock);
}

static inline void latch_wait(struct latch *l)
{
    pthread_mutex_lock(&l->lock);
    while (!l->done)
        pthread_cond_wait(&l->cond, &l->lock);
    pthread_mutex_unlock(&l->lock);
}

static inline void latch_destroy(struct latch *l)
{
    pthread_cond_destroy(&l->cond);
    pthread_mutex_destroy(&l->lock);
}

static inline void die(const char *what, int err)
{
    fprintf(stderr, "wisp-bench: %s: %s\n", what, strerror(-err));
    exit(1);
}

/* Exit status 77: the run cannot be done in this build (ctest: skipped). */
static inline void skip(const char *why)
{
    printf("skip: %s\n", why);
    exit(77);
}

static inline double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- countdown: n tasks each decrement; the last sets the latch ---------- */

struct countdown {
    _Atomic long left;
    struct latch latch;
};

static inline void countdown_hit(struct countdown *c)
{
    if (atomic_fetch_sub_explicit(&c->left, 1, memory_order_acq_rel) == 1)
        latch_set(&c->latch);
}

/* ---- io_bench.c ---- */

double bench_socket_ping_pong(wisp_runtime_t *rt, long n, long *ops);
double bench_file_read(wisp_runtime_t *rt, long n, long *ops);
double bench_timer_fire(wisp_runtime_t *rt, long n, long *ops);
double bench_timer_cancel(wisp_runtime_t *rt, long n, long *ops);
double bench_ring_wake(wisp_runtime_t *rt, long n, long *ops);
double bench_park_wake(wisp_runtime_t *rt, long n, long *ops);
double bench_idle_timers(wisp_runtime_t *rt, long n, long *ops, double *extra);
/* CPU seconds this process has used. */
double cpu_seconds(void);

#endif /* WISP_BENCH_H */
