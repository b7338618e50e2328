/* metrics.c - wisp_runtime_metrics: sums the workers' counters (see
 * metrics.h) and reads the runtime-wide ones. */
#include "metrics.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "runtime.h"

#if WISP_METRICS
static void read_worker(struct worker *w, wisp_worker_metrics_t *out)
{
    struct worker_metrics *m = &w->metrics;
    /* relaxed: counters are monotonic statistics, not synchronisation. */
#define READ(f) out->f = atomic_load_explicit(&m->published.f, memory_order_relaxed);
    WORKER_COUNTERS(READ)
#undef READ
}

static void add_worker(wisp_worker_metrics_t *sum, const wisp_worker_metrics_t *w)
{
    const uint64_t *src = (const uint64_t *)w;
    uint64_t *dst = (uint64_t *)sum;
    for (size_t i = 0; i < sizeof(*w) / sizeof(uint64_t); i++)
        dst[i] += src[i];
}
#endif

int wisp_runtime_metrics(const wisp_runtime_t *crt, wisp_runtime_metrics_t *m)
{
    if (!crt || !m || m->size < offsetof(wisp_runtime_metrics_t, total) + sizeof(m->total))
        return -EINVAL;
#if !WISP_METRICS
    return -ENOTSUP;
#else
    struct wisp_runtime *rt = (struct wisp_runtime *)crt;
    wisp_runtime_metrics_t r;
    memset(&r, 0, sizeof(r));
    r.size = m->size;
    r.version = WISP_METRICS_VERSION;
    r.workers = rt->nworkers;
    r.per_worker = m->per_worker;
    r.per_worker_len = m->per_worker_len;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        wisp_worker_metrics_t w;
        read_worker(rt->workers[i], &w);
        add_worker(&r.total, &w);
        if (m->per_worker && i < m->per_worker_len)
            m->per_worker[i] = w;
    }
    wisp__injector_counts(&rt->injector, &r.remote_spawns, &r.remote_wakes);
    r.injector_depth = injector_len(&rt->injector);
    /* relaxed: statistics. */
    r.remote_cancelled = atomic_load_explicit(&rt->outside.cancelled, memory_order_relaxed);
    uint64_t spawned = r.total.spawns + r.remote_spawns;
    uint64_t ended = r.total.completed + r.total.cancelled + r.remote_cancelled;
    r.live_tasks = spawned > ended ? spawned - ended : 0;
    size_t n = m->size < sizeof(r) ? m->size : sizeof(r);
    memcpy(m, &r, n);
    return 0;
#endif
}
