/* runtime.h - the runtime object and the worker record, shared by the
 * files that make up the scheduler (worker.c, idle.c, runtime.c, task.c).
 *
 * Owns nothing by itself; each field is owned by the file named beside it. */
#ifndef WISP_RUNTIME_INTERNAL_H
#define WISP_RUNTIME_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <wisp/wisp.h>

#include "blocking.h"
#include "driver.h"
#include "idle.h"
#include "injector.h"
#include "kind.h"
#include "local_queue.h"
#include "metrics.h"
#include "registry.h"
#include "task_cache.h"
#include "timer.h"
#include "trace.h"
#include "util.h"

struct io_driver;

/* What a searching worker last saw of a victim (worker.c's lone rule). */
struct lone_watch {
    uint64_t since; /* when polls last changed, as far as we saw */
    uint32_t polls;
};

struct worker {
    struct local_queue queue;              /* local_queue.c */
    struct wisp_runtime *rt;
    unsigned index;
    uint64_t rng;                          /* victim selection */
    bool searching;                        /* counted in idle.counts as searching */
    bool wake_pending;                     /* a wake pushed work to the deque in this poll */
    bool offered_in_search;                /* worker.c: an offer made while we searched */
    pthread_t thread;
    bool started;
    struct task_cache cache;               /* task_cache.c: freed task blocks */
    /* metrics.h: written by this worker only.  Own lines. */
    _Alignas(WISP_CACHE_LINE) struct worker_metrics metrics;
    struct idle_slot idle;                 /* idle.c */
    struct futex_driver futex;             /* driver.h: where the worker sleeps */
    struct wisp__driver *driver;           /* the one it parks in */
    struct timer_wheel timers;             /* timer.c */
    struct io_driver *io;                  /* io_runtime.c: its I/O driver */
    struct lone_watch *watch;              /* worker.c: one per victim, owner only */
    uint64_t search_start;                 /* worker.c: when the current search began */
};

struct wisp_runtime {
    unsigned nworkers;
    wisp_runtime_config_t config;          /* runtime.c: normalised, defaults filled in */
    uint64_t epoch_ns;                     /* creation: ms 0 of the timer wheels */
    uint64_t id;                           /* process-unique, for kind.c's cache */
    struct worker **workers;               /* each cache-line aligned */
    struct kind_table kinds;               /* kind.c */
    struct registry registry;              /* registry.c */
    struct idle idle;                      /* idle.c */
    struct injector injector;              /* injector.c */
    struct blocking_pool blocking;         /* blocking.c */
    unsigned io_backend;                   /* io_runtime.c: WISP_IO_URING or _EPOLL */
    void *io_shared;                       /* the backend's (io_epoll.c's table) */
    void (*io_shared_free)(void *);
    /* runtime.c: set once by wisp_runtime_free. */
    _Alignas(WISP_CACHE_LINE) _Atomic bool shutdown;
    /* worker.c: outside threads between queueing a task and finishing the
     * unpark; wisp_runtime_free waits for zero before freeing. */
    _Alignas(WISP_CACHE_LINE) _Atomic unsigned outside_inflight;
    struct outside_metrics outside;        /* metrics.h */
    /* trace.c: read at every event site, written when tracing starts or
     * stops.  Own line. */
    _Alignas(WISP_CACHE_LINE) _Atomic bool tracing;
    struct trace_state *_Atomic trace;
    pthread_mutex_t trace_lock;
};

/* A scheduling event: a USDT probe, and a trace record if tracing is on
 * (trace.h).  w is the recording worker, NULL on an outside thread. */
#define TRACE(rt, w, type, a, b)                                                                  \
    do {                                                                                          \
        struct worker *trace_w_ = (w);                                                            \
        trace_usdt((type), trace_w_ ? (int)trace_w_->index : -1, (uint64_t)(a), (int64_t)(b));    \
        trace_event((rt), &(rt)->tracing, trace_w_, (type), (uint64_t)(a), (int64_t)(b));         \
    } while (0)

/* ---- runtime.c ---- */

/* Outside threads that use rt (spawning, queueing a woken task) bracket it
 * with these; wisp_runtime_free waits until none is inside (runtime.c's
 * shutdown protocol).  enter returns false, and counts nothing, on one of
 * rt's own workers. */
bool wisp__runtime_outside_enter(struct wisp_runtime *rt);
void wisp__runtime_outside_exit(struct wisp_runtime *rt);

static inline bool runtime_is_shutdown(struct wisp_runtime *rt)
{
    /* seq_cst: pairs with the shutdown CAS in wisp_runtime_free, and, after
     * wisp__runtime_outside_enter's seq_cst RMW, forms the Dekker pair of
     * runtime.c's step 1 (a load that costs what an acquire load does). */
    return atomic_load_explicit(&rt->shutdown, memory_order_seq_cst);
}

/* ---- worker.c ---- */

struct worker *wisp__worker_current(void);
void *wisp__worker_main(void *arg);
/* Queues t, which carries its run reference, and wakes an idle worker if
 * none is searching.  On one of rt's workers a spawn goes into the worker's
 * spawn slot and a wake (spawn false) into its LIFO slot (local_queue.c);
 * elsewhere onto the injector. */
void wisp__worker_schedule(struct wisp_runtime *rt, struct wisp_task *t, bool spawn);
/* Any shared queue holds work (the last check of idle.c's table). */
bool wisp__worker_any_work(struct wisp_runtime *rt);

#endif /* WISP_RUNTIME_INTERNAL_H */
