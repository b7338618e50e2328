/* wisp/future.h - the poll protocol: wakers, contexts and futures.
 *
 * A waker is a {data, vtable} pair with the four functions of Rust's
 * RawWakerVTable.  A future is any memory plus a poll function that returns
 * WISP_READY (storing its result) or WISP_PENDING (promising that the waker it
 * was given, or a clone of it, will be woken when progress can be made).
 *
 * Wake semantics, for a task T and any waker of T, from any thread: woken
 * while idle, T is scheduled exactly once however many threads wake it;
 * while scheduled, nothing more; while running, T is polled once more after
 * the poll returns PENDING; after it finished, nothing.  T is never polled by
 * two threads at once, nor after READY.  Every clone must be dropped or
 * consumed by wisp_waker_wake.  docs/guide.md says more. */
#ifndef WISP_FUTURE_H
#define WISP_FUTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wisp/export.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum wisp_poll { WISP_PENDING = 0, WISP_READY = 1 } wisp_poll_t;

typedef struct wisp_waker wisp_waker_t;
typedef struct wisp_waker_vtable {
    wisp_waker_t (*clone)(const void *data);
    void (*wake)(const void *data);        /* wakes and releases this waker's reference */
    void (*wake_by_ref)(const void *data); /* wakes, keeps the reference */
    void (*drop)(const void *data);        /* releases the reference */
} wisp_waker_vtable_t;

struct wisp_waker {
    const void *data;
    const wisp_waker_vtable_t *vtable;     /* NULL: the empty waker */
};

#define WISP_WAKER_EMPTY ((wisp_waker_t){ NULL, NULL })

WISP_API wisp_waker_t wisp_waker_clone(const wisp_waker_t *w);    /* empty in, empty out */
WISP_API void wisp_waker_wake(wisp_waker_t *w);                   /* wake + release; leaves *w empty */
WISP_API void wisp_waker_wake_by_ref(const wisp_waker_t *w);      /* no-op on empty */
WISP_API void wisp_waker_drop(wisp_waker_t *w);                   /* release; leaves *w empty; no-op on empty */
WISP_API bool wisp_waker_is_empty(const wisp_waker_t *w);
WISP_API bool wisp_waker_will_wake(const wisp_waker_t *a, const wisp_waker_t *b); /* same data and vtable */
WISP_API void wisp_waker_set(wisp_waker_t *slot, const wisp_waker_t *w);
    /* store a clone of w in slot, dropping what slot held, unless will_wake(slot, w) */
WISP_API wisp_waker_t wisp_waker_noop(void);                      /* a waker whose functions do nothing */

typedef struct wisp_context {
    const wisp_waker_t *waker;   /* treat as private; use the functions */
    void *reserved;
} wisp_context_t;

WISP_API wisp_context_t wisp_context_from_waker(const wisp_waker_t *w);
WISP_API const wisp_waker_t *wisp_context_waker(const wisp_context_t *cx);

/* A future is any memory plus a poll function. On READY the function stores the
 * result (any pointer-sized value, may be NULL) in *output. Returning PENDING is a
 * promise that the waker in cx (or a clone of it) will be woken when progress can be
 * made: "pending must wake". */
typedef wisp_poll_t (*wisp_poll_fn)(void *future, wisp_context_t *cx, void **output);
typedef void (*wisp_drop_fn)(void *future);

WISP_API wisp_poll_t wisp_yield(wisp_context_t *cx);
    /* wake the current task so that it runs again only after the other tasks that are
     * ready now on this worker have had their turn; returns WISP_PENDING. cx must be
     * the context the task was polled with. */

#ifdef __cplusplus
}
#endif

#endif /* WISP_FUTURE_H */
