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

#include "deque.h"
#include "injector.h"
#include "kind.h"
#include "metrics.h"
#include "idle.h"
#include "registry.h"
#include "task_cache.h"
#include "trace.h"
#include "util.h"

struct worker {
    struct deque deque;                    /* deque.c; the worker owns the bottom */
    struct wisp_runtime *rt;
    unsigned index;
    struct wisp_task *next;                /* LIFO slot: the task a poll woke last, worker-only */
    struct wisp_task *deferred;            /* woken while running: LIFO stack, worker-only */
    struct wisp_task **scratch;            /* deque overflow batch, capacity/2 */
    uint64_t rng;                          /* victim selection */
    uint32_t tick;                         /* fairness: injector every so many ticks */
    uint32_t slot_runs;                    /* tasks run from the slot in a row */
    bool searching;                        /* counted in idle.counts as searching */
    bool wake_pending;                     /* a wake pushed work to the deque in this poll */
    bool in_sleepers;                      /* idle.c, under idle.lock */
    pthread_t thread;
    bool started;
    struct task_cache cache;               /* task_cache.c: freed task blocks */
    /* The task this worker spawned last: its next task unless a thief takes
     * it (worker.c).  Own line: written on every spawn, read by thieves. */
    _Alignas(WISP_CACHE_LINE) struct wisp_task *_Atomic spawned;
    /* metrics.h: written by this worker only.  Own lines. */
    _Alignas(WISP_CACHE_LINE) struct worker_metrics metrics;
    /* idle.c: futex word, 0 parked, 1 unparked.  Own line: written by notifiers. */
    _Alignas(WISP_CACHE_LINE) _Atomic uint32_t park_word;
};

struct wisp_runtime {
    unsigned nworkers;
    size_t wisp__deque_capacity;
    uint64_t id;                           /* process-unique, for kind.c's cache */
    struct worker **workers;               /* each cache-line aligned */
    struct kind_table kinds;               /* kind.c */
    struct registry registry;              /* registry.c */
    struct idle idle;                      /* idle.c */
    struct injector injector;              /* injector.c */
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

/* Internal constructor: wisp__deque_capacity 0 means the default (tests use tiny
 * deques to force wraparound and overflow). */
int wisp__runtime_create(struct wisp_runtime **out, const wisp_runtime_config_t *cfg,
                   size_t wisp__deque_capacity);

/* worker.c */
struct worker *wisp__worker_current(void);
/* Outside threads that use rt (spawning, queueing a woken task) bracket it
 * with these; wisp_runtime_free waits until none is inside.  enter returns
 * false, and counts nothing, on one of rt's own workers. */
bool wisp__runtime_outside_enter(struct wisp_runtime *rt);
void wisp__runtime_outside_exit(struct wisp_runtime *rt);
void *wisp__worker_main(void *arg);
/* Queues t, which carries its run reference, and wakes an idle worker if
 * none is searching.  On one of rt's workers a spawn goes into the worker's
 * stealable spawn slot and a wake (spawn false) into its private LIFO slot,
 * both at the front of its local queue; a task either displaces goes onto
 * the deque.  Elsewhere: onto the injector. */
void wisp__worker_schedule(struct wisp_runtime *rt, struct wisp_task *t, bool spawn);
/* Shutdown, after the workers are joined: close what the queues hold. */
void wisp__worker_close_queued(struct worker *w);
void wisp__worker_close_injector(struct wisp_runtime *rt);
/* Any queue holds work (idle.c's last check before sleeping). */
bool wisp__worker_any_work(struct wisp_runtime *rt);

static inline bool runtime_is_shutdown(struct wisp_runtime *rt)
{
    /* acquire: pairs with the seq_cst store in wisp_runtime_free. */
    return atomic_load_explicit(&rt->shutdown, memory_order_acquire);
}

#endif /* WISP_RUNTIME_INTERNAL_H */
