/* wisp/runtime.h - the worker pool: create, free, query, block_on. */
#ifndef WISP_RUNTIME_H
#define WISP_RUNTIME_H

#include <wisp/future.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wisp_runtime wisp_runtime_t;

/* Largest worker count wisp_runtime_new accepts. */
#define WISP_MAX_WORKERS 4096u

typedef struct wisp_runtime_config {
    unsigned workers;   /* 0: one per online CPU */
    /* fields may be added at the end; a zeroed field means its default */
} wisp_runtime_config_t;

/* Creates a runtime and starts its workers.  -EINVAL: rt NULL or workers >
 * WISP_MAX_WORKERS; -ENOMEM / -EAGAIN: out of memory or threads (nothing is
 * leaked and no thread is left running). */
WISP_API int wisp_runtime_new(wisp_runtime_t **rt, const wisp_runtime_config_t *cfg);

/* Shuts down and frees: later spawns fail with -ESHUTDOWN, every unfinished
 * task is closed and its future dropped exactly once, workers are joined.
 * -EDEADLK on one of rt's own workers, or from a drop function this thread
 * is running for one of rt's tasks (nothing done); -EINVAL for NULL or a
 * runtime already being freed. */
WISP_API int wisp_runtime_free(wisp_runtime_t *rt);

WISP_API unsigned wisp_runtime_workers(const wisp_runtime_t *rt); /* 0 for NULL */

/* Runtime of the calling worker or block_on thread, else NULL. */
WISP_API wisp_runtime_t *wisp_runtime_current(void);

/* 0..workers-1 on a worker, -1 elsewhere. */
WISP_API int wisp_worker_index(void);

/* Polls future in place on the calling outside thread until READY, parking
 * between polls.  While it runs wisp_runtime_current() returns rt (which may
 * be NULL).  -EDEADLK on a worker thread (checked first), -EINVAL for NULL
 * poll, -ENOMEM if the parking waker cannot be allocated. */
WISP_API int wisp_block_on(wisp_runtime_t *rt, wisp_poll_fn poll, void *future, void **output);

#ifdef __cplusplus
}
#endif

#endif /* WISP_RUNTIME_H */
