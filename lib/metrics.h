/* metrics.h - the counters behind wisp_runtime_metrics.
 *
 * Owns: struct worker_metrics (one per worker, inside struct worker, on
 * lines of its own) and struct outside_metrics (the runtime's counters for
 * work done on outside threads).  A worker's counters are written only by
 * that worker, with a relaxed load and store (no read-modify-write, no
 * shared line on the hot path), and read relaxed by wisp_runtime_metrics.
 * Built with WISP_METRICS=OFF, every METRIC_* is nothing. */
#ifndef WISP_METRICS_INTERNAL_H
#define WISP_METRICS_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>

#include "util.h"

#ifndef WISP_METRICS_ENABLED
#define WISP_METRICS_ENABLED 1
#endif

struct worker_metrics {
    _Atomic uint64_t polls, spawns, wakes, steal_attempts, steals, tasks_stolen, injector_pops,
        overflows, parks, unparks, busy_ns, completed, cancelled;
    uint64_t busy_since; /* owner only: when it last unparked */
};

/* Tasks closed on outside threads: rare paths (abort, shutdown).  Tasks
 * only complete on workers. */
struct outside_metrics {
    _Atomic uint64_t cancelled;
};

#if WISP_METRICS_ENABLED
/* relaxed load and store: only the owner writes; readers tolerate a value
 * one update behind. */
#define METRIC_ADD(m, field, n)                                                                   \
    atomic_store_explicit(&(m)->field,                                                            \
                          atomic_load_explicit(&(m)->field, memory_order_relaxed) + (uint64_t)(n), \
                          memory_order_relaxed)
/* relaxed fetch_add: several outside threads may count at once. */
#define METRIC_ADD_SHARED(m, field, n)                                                            \
    atomic_fetch_add_explicit(&(m)->field, (uint64_t)(n), memory_order_relaxed)
#else
#define METRIC_ADD(m, field, n) ((void)(m))
#define METRIC_ADD_SHARED(m, field, n) ((void)(m))
#endif

/* Monotonic nanoseconds. */
uint64_t metrics_now_ns(void);

#endif /* WISP_METRICS_INTERNAL_H */
