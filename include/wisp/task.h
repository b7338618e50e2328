/* wisp/task.h - spawning tasks and awaiting them through join handles.
 *
 * A join handle belongs to the caller and must be released exactly once:
 * by wisp_join, by wisp_join_poll returning READY, or by wisp_join_detach.
 * It is used by one thread at a time; wisp_join_abort and
 * wisp_join_is_finished may be called from any thread while it is alive.
 * Using a handle after its release is caught while the task's memory is
 * still alive (-EINVAL, or nothing for detach and abort) and undefined once
 * it is gone.  docs/guide.md says more. */
#ifndef WISP_TASK_H
#define WISP_TASK_H

#include <wisp/future.h>
#include <wisp/runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wisp_join wisp_join_t;

/* Copies size bytes of future into the task's single allocation and
 * schedules it: on the calling worker's deque, or on the injector from any
 * other thread.  drop (may be NULL) runs exactly once on the copy.  join NULL
 * detaches the task.  -EINVAL, -ENOMEM, -ESHUTDOWN; on error nothing was
 * copied or scheduled and drop is not called. */
WISP_API int wisp_spawn(wisp_runtime_t *rt, wisp_poll_fn poll, const void *future, size_t size,
                        wisp_drop_fn drop, wisp_join_t **join);

/* Runs fn(arg) on the runtime's blocking pool, a bounded set of extra
 * threads for work that blocks (getaddrinfo, disk I/O, long computations)
 * and must not hold up a worker.  The handle (join may be NULL: detached)
 * reports fn's return value as the task's output, and is awaited, aborted
 * and released as any task's.  If fn never runs (the job was aborted while
 * queued, or the runtime freed first), drop(arg) runs instead (drop may be
 * NULL); an abort while fn runs lets it finish and discards its result.
 * -EINVAL (NULL rt or fn), -ENOMEM, -ESHUTDOWN, -EAGAIN (the pool has no
 * thread and none could be started); on error neither fn nor drop runs. */
typedef void *(*wisp_blocking_fn)(void *arg);
WISP_API int wisp_spawn_blocking(wisp_runtime_t *rt, wisp_blocking_fn fn, void *arg,
                                 wisp_drop_fn drop, wisp_join_t **join);

/* Blocks an outside thread until the task ends; stores its output (output
 * may be NULL) and frees the handle.  0, -ECANCELED (aborted or shut down;
 * *output set to NULL), -EDEADLK on a worker (handle untouched), -EINVAL
 * (NULL, or a handle released already).  Allocates nothing. */
WISP_API int wisp_join(wisp_join_t *join, void **output);

/* Awaits the task from inside another future.  PENDING registers the waker;
 * READY sets *status (0 or -ECANCELED) and *output (either may be NULL) and
 * frees the handle.  A NULL join or cx, or a handle released already,
 * returns READY with *status -EINVAL (and the handle, if any, untouched). */
WISP_API wisp_poll_t wisp_join_poll(wisp_join_t *join, wisp_context_t *cx, int *status, void **output);

/* Releases the handle; the task runs on.  NULL, or released already: no-op. */
WISP_API void wisp_join_detach(wisp_join_t *join);

/* Cancels the task: one that is not running is closed by this call (its
 * future dropped here, or by a worker); a running one when its poll returns
 * (a READY result is discarded).  The handle stays valid and must still be
 * released.  NULL, a finished task, or a handle released already: no-op. */
WISP_API void wisp_join_abort(wisp_join_t *join);

/* True once the task has completed or been closed (its future dropped). */
WISP_API bool wisp_join_is_finished(const wisp_join_t *join);

#ifdef __cplusplus
}
#endif

#endif /* WISP_TASK_H */
