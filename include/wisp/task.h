/* wisp/task.h - spawning tasks and awaiting them through join handles. */
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

/* Blocks an outside thread until the task ends; stores its output (output
 * may be NULL) and frees the handle.  0, -ECANCELED (aborted or shut down;
 * *output set to NULL), -EDEADLK on a worker (handle untouched), -EINVAL. */
WISP_API int wisp_join(wisp_join_t *join, void **output);

/* Awaits the task from inside another future.  PENDING registers the waker;
 * READY sets *status (0 or -ECANCELED) and *output (either may be NULL) and
 * frees the handle.  A NULL join or cx returns READY with *status -EINVAL. */
WISP_API wisp_poll_t wisp_join_poll(wisp_join_t *join, wisp_context_t *cx, int *status, void **output);

/* Releases the handle; the task runs on.  NULL: no-op. */
WISP_API void wisp_join_detach(wisp_join_t *join);

/* Cancels the task (see core-api.md); the handle stays valid.  NULL: no-op. */
WISP_API void wisp_join_abort(wisp_join_t *join);

/* True once the task has completed or been closed (its future dropped). */
WISP_API bool wisp_join_is_finished(const wisp_join_t *join);

#ifdef __cplusplus
}
#endif

#endif /* WISP_TASK_H */
