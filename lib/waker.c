/* waker.c - the public waker and context functions, the no-op waker,
 * wisp_yield, and the vtable of task wakers.
 *
 * Owns: nothing.  Touches: a task's state through task.c's transitions. */
#include <stddef.h>

#include <wisp/wisp.h>

#include "task.h"

wisp_waker_t wisp_waker_clone(const wisp_waker_t *w)
{
    if (!w || !w->vtable)
        return WISP_WAKER_EMPTY;
    return w->vtable->clone(w->data);
}

void wisp_waker_wake(wisp_waker_t *w)
{
    if (!w || !w->vtable)
        return;
    wisp_waker_t taken = *w;
    *w = WISP_WAKER_EMPTY;
    taken.vtable->wake(taken.data);
}

void wisp_waker_wake_by_ref(const wisp_waker_t *w)
{
    if (w && w->vtable)
        w->vtable->wake_by_ref(w->data);
}

void wisp_waker_drop(wisp_waker_t *w)
{
    if (!w || !w->vtable)
        return;
    wisp_waker_t taken = *w;
    *w = WISP_WAKER_EMPTY;
    taken.vtable->drop(taken.data);
}

bool wisp_waker_is_empty(const wisp_waker_t *w)
{
    return !w || !w->vtable;
}

bool wisp_waker_will_wake(const wisp_waker_t *a, const wisp_waker_t *b)
{
    if (!a || !b)
        return a == b;
    return a->data == b->data && a->vtable == b->vtable;
}

void wisp_waker_set(wisp_waker_t *slot, const wisp_waker_t *w)
{
    if (!slot || wisp_waker_will_wake(slot, w))
        return;
    wisp_waker_t fresh = wisp_waker_clone(w);
    wisp_waker_drop(slot);
    *slot = fresh;
}

/* ---- no-op waker ---------------------------------------------------------- */

static wisp_waker_t noop_clone(const void *data);
static void noop_fn(const void *data)
{
    (void)data;
}

static const wisp_waker_vtable_t noop_vtable = { noop_clone, noop_fn, noop_fn, noop_fn };

static wisp_waker_t noop_clone(const void *data)
{
    return (wisp_waker_t){ data, &noop_vtable };
}

wisp_waker_t wisp_waker_noop(void)
{
    return (wisp_waker_t){ NULL, &noop_vtable };
}

/* ---- contexts ------------------------------------------------------------- */

wisp_context_t wisp_context_from_waker(const wisp_waker_t *w)
{
    return (wisp_context_t){ w, NULL };
}

const wisp_waker_t *wisp_context_waker(const wisp_context_t *cx)
{
    return cx ? cx->waker : NULL;
}

wisp_poll_t wisp_yield(wisp_context_t *cx)
{
    /* On a task this sets SCHEDULED while RUNNING; the worker then queues
     * the task behind the work that is ready now (worker.c's deferred list). */
    wisp_waker_wake_by_ref(wisp_context_waker(cx));
    return WISP_PENDING;
}

/* ---- task wakers ---------------------------------------------------------- */

static wisp_waker_t task_waker_clone(const void *data)
{
    wisp__task_ref((struct wisp_task *)data);
    return (wisp_waker_t){ data, &wisp__task_waker_vtable };
}

static void task_waker_wake(const void *data)
{
    wisp__task_wake((struct wisp_task *)data);
}

static void task_waker_wake_by_ref(const void *data)
{
    wisp__task_wake_by_ref((struct wisp_task *)data);
}

static void task_waker_drop(const void *data)
{
    wisp__task_unref((struct wisp_task *)data, 1);
}

const wisp_waker_vtable_t wisp__task_waker_vtable = {
    task_waker_clone, task_waker_wake, task_waker_wake_by_ref, task_waker_drop,
};
