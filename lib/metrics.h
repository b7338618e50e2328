/* metrics.h - the counters behind wisp_runtime_metrics.
 *
 * Owns: struct worker_metrics (one per worker, inside struct worker, on
 * lines of its own) and struct outside_metrics (the runtime's counters for
 * work done on outside threads).  A worker counts in plain fields that only
 * it touches (an add to memory, nothing the compiler must keep in order),
 * and publishes them to atomic copies that wisp_runtime_metrics reads:
 * every FAIRNESS_TICKS tasks, before it parks, and when it exits.  So a
 * reader sees counts at most that many tasks old, and exact ones once the
 * workers are idle.  Built with WISP_METRICS=OFF, every METRIC_* is nothing. */
#ifndef WISP_METRICS_INTERNAL_H
#define WISP_METRICS_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>

#include <wisp/config.h>

#include "util.h"

#define WORKER_COUNTERS(X)                                                                        \
    X(polls) X(spawns) X(wakes) X(steal_attempts) X(steals) X(tasks_stolen) X(injector_pops)   \
    X(overflows) X(parks) X(unparks) X(busy_ns) X(completed) X(cancelled)

struct worker_metrics {
#define PLAIN(f) uint64_t f;
    WORKER_COUNTERS(PLAIN) /* the owner's running counts */
#undef PLAIN
    uint64_t busy_since;   /* when it last unparked */
    struct {
#define SHARED(f) _Atomic uint64_t f;
        WORKER_COUNTERS(SHARED) /* published for readers */
#undef SHARED
    } published;
};

/* Owner only: copies the running counts for readers. */
static inline void metrics_publish(struct worker_metrics *m)
{
    (void)m;
#if WISP_METRICS
    /* relaxed: statistics; readers need no ordering with anything else. */
#define PUBLISH(f) atomic_store_explicit(&m->published.f, m->f, memory_order_relaxed);
    WORKER_COUNTERS(PUBLISH)
#undef PUBLISH
#endif
}

/* Tasks closed on outside threads: rare paths (abort, shutdown).  Tasks
 * only complete on workers. */
struct outside_metrics {
    _Atomic uint64_t cancelled;
};

#if WISP_METRICS
/* A plain add: only the owner touches the running counts. */
#define METRIC_ADD(m, field, n) ((m)->field += (uint64_t)(n))
/* relaxed fetch_add: several outside threads may count at once. */
#define METRIC_ADD_SHARED(m, field, n)                                                            \
    atomic_fetch_add_explicit(&(m)->field, (uint64_t)(n), memory_order_relaxed)
#else
#define METRIC_ADD(m, field, n) ((void)(m))
#define METRIC_ADD_SHARED(m, field, n) ((void)(m))
#endif

#endif /* WISP_METRICS_INTERNAL_H */
