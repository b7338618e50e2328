/* wisp/metrics.h - runtime metrics and scheduler tracing.
 *
 * Metrics are counted all the time (per-worker counters written only by
 * their worker) unless the library was built with WISP_METRICS=OFF, when
 * wisp_runtime_metrics returns -ENOTSUP.  Tracing records scheduling events
 * into per-worker ring buffers once started, and writes them as Chrome
 * Trace Event JSON (Perfetto, chrome://tracing), one track per worker.
 * Setting WISP_TRACE=path in the environment traces every runtime from
 * wisp_runtime_new to wisp_runtime_free, which writes the file. */
#ifndef WISP_METRICS_H
#define WISP_METRICS_H

#include <wisp/runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped when fields are appended to the structs below. */
#define WISP_METRICS_VERSION 1

typedef struct wisp_worker_metrics {
    uint64_t polls;           /* polls of tasks */
    uint64_t spawns;          /* tasks spawned by code running on this worker */
    uint64_t wakes;           /* tasks queued here by a wake (yields included) */
    uint64_t steal_attempts;  /* victims tried while searching */
    uint64_t steals;          /* attempts that took at least one task */
    uint64_t tasks_stolen;    /* tasks those steals took */
    uint64_t injector_pops;   /* tasks taken from the injector */
    uint64_t overflows;       /* tasks moved to the injector from a full deque */
    uint64_t parks;           /* times the worker went to sleep */
    uint64_t unparks;         /* times it was woken */
    uint64_t busy_ns;         /* time not parked */
    uint64_t completed;       /* tasks that returned READY here */
    uint64_t cancelled;       /* tasks closed unfinished here */
} wisp_worker_metrics_t;

typedef struct wisp_runtime_metrics {
    /* in: sizeof(wisp_runtime_metrics_t) as the caller was compiled; the
     * library fills no byte past it, so older callers keep working. */
    uint32_t size;
    uint32_t version;         /* out: WISP_METRICS_VERSION */
    unsigned workers;         /* out */
    /* in: an array of per_worker_len entries to fill, or NULL */
    wisp_worker_metrics_t *per_worker;
    unsigned per_worker_len;
    /* out: the runtime as a whole */
    uint64_t live_tasks;      /* spawned, not yet completed or cancelled */
    uint64_t injector_depth;  /* tasks in the injector now */
    uint64_t remote_spawns;   /* spawned from outside threads */
    uint64_t remote_wakes;    /* woken from outside threads */
    uint64_t remote_cancelled;/* closed on outside threads (abort, shutdown) */
    wisp_worker_metrics_t total; /* sum over the workers */
} wisp_runtime_metrics_t;

/* Fills *m (set m->size first).  -EINVAL: NULL or m->size too small for
 * the fields up to `total`; -ENOTSUP: built without metrics. */
WISP_API int wisp_runtime_metrics(const wisp_runtime_t *rt, wisp_runtime_metrics_t *m);

/* Starts recording scheduling events: poll begin/end (task id), spawn,
 * wake (source and target worker), steal (victim), park and unpark.  Each
 * worker keeps the latest events_per_worker (0: 65536).  -EINVAL, -ENOMEM,
 * -EALREADY (already recording), -ENOTSUP (built without tracing). */
WISP_API int wisp_trace_start(wisp_runtime_t *rt, size_t events_per_worker);

/* Stops recording; what was recorded is kept for wisp_trace_write. */
WISP_API int wisp_trace_stop(wisp_runtime_t *rt);

/* Stops recording and writes the recorded events to path as Chrome Trace
 * Event JSON.  -EINVAL, -ENODATA (never started), or -errno from I/O. */
WISP_API int wisp_trace_write(wisp_runtime_t *rt, const char *path);

#ifdef __cplusplus
}
#endif

#endif /* WISP_METRICS_H */
