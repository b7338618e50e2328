/* task.c - tasks: memory, spawn, polling, closing, join handles.  Every
 * change of the state word is a transition of task_state.h, applied
 * through ts_update (or ts_ref_inc/ts_ref_dec); this file performs the
 * actions they return.
 *
 * Owns: struct wisp_task (its memory, future, output, awaiter slot) and
 * the calling thread's list of pending closes.  Touches: the registry
 * (listing and unlisting) and the scheduler (wisp__worker_schedule) of the
 * task's runtime, only while the task is unfinished: wisp_runtime_free waits
 * for every listed task and every outside scheduler before it frees the
 * runtime (runtime.c), and a finished task never looks at its runtime
 * again. */
#include "task.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "atomic_waker.h"
#include "parker.h"
#include "runtime.h"

/* ---- memory ------------------------------------------------------------ */

static size_t task_alloc_size(size_t future_size)
{
    /* Rounded to 16 so the size is recordable in units (sized free). */
    return (sizeof(struct wisp_task) + future_size + 15) & ~(size_t)15;
}

static void *task_alloc(size_t bytes)
{
    struct worker *w = wisp__worker_current();
    void *p = w ? wisp__task_cache_get(&w->cache, bytes) : NULL;
    return p ? p : alloc_task(bytes);
}

/* The DEALLOC action: s is the final word (no references left). */
static void task_dealloc(struct wisp_task *t, uint64_t s)
{
    wisp_waker_drop(&t->awaiter); /* a waker registered and never taken */
    size_t size = ((size_t)(s >> TASK_UNITS_SHIFT) & TASK_UNITS_MAX) * 16;
    struct worker *w = wisp__worker_current();
    if (!w || !wisp__task_cache_put(&w->cache, t, size))
        free_task(t, size);
}

void wisp__task_ref(struct wisp_task *t)
{
    ts_ref_inc(&t->state);
}

void wisp__task_unref(struct wisp_task *t, uint64_t refs)
{
    struct ts_step st = ts_ref_dec(&t->state, refs);
    if (st.action == TS_DEALLOC)
        task_dealloc(t, st.next);
}

/* ---- the awaiter slot: an atomic waker on bits 6, 7, 9 of the state word ---- */

static inline struct aw_ref task_awaiter(struct wisp_task *t)
{
    return (struct aw_ref){ &t->state, TASK_AW_REG, TASK_AW_WAKE, TASK_AW_HAS, &t->awaiter };
}

/* The FINISH action NOTIFY: take the awaiter's waker and wake it. */
static void task_notify_awaiter(struct wisp_task *t)
{
    wisp_waker_t w = wisp__aw_take(task_awaiter(t));
    wisp_waker_wake(&w);
}

/* 1: w (or an equivalent waker) will be woken when the task finishes.
 * 0: finished.  -EINVAL: the handle is gone. */
static inline __attribute__((always_inline)) int task_register_awaiter(struct wisp_task *t,
                                                                       const wisp_waker_t *w)
{
    /* acquire: on FINISHED, pairs with the finisher's release in FINISH
     * (the output and the drop's effects). */
    uint64_t s = atomic_load_explicit(&t->state, memory_order_acquire);
    if (!(s & TASK_HANDLE))
        return -EINVAL;
    if (s & TASK_FINISHED)
        return 0;
    wisp__aw_register(task_awaiter(t), w);
    /* acquire: as above.  The registration and FINISH are on this one
     * word: either FINISH came first and we see it here, or the
     * finisher's take (after FINISH) finds our waker. */
    s = atomic_load_explicit(&t->state, memory_order_acquire);
    if (!(s & TASK_FINISHED))
        return 1;
    /* Finished meanwhile: empty the slot ourselves (the waker may be
     * wisp_join's thread-local one, which must not outlive this call),
     * unless the finisher's take has it (wisp_join then quiesces). */
    wisp_waker_t mine = wisp__aw_take(task_awaiter(t));
    wisp_waker_drop(&mine);
    return 0;
}

/* ---- finishing -------------------------------------------------------------- */

static void task_drop_future(struct wisp_task *t)
{
    if (t->kind->drop)
        t->kind->drop(task_future(t));
}

/* Metrics: where a task ended.  On a worker of its runtime (the only place
 * a task completes), after the fact; elsewhere (always a close) before the
 * task is unlisted, after which the runtime may be freed. */
static wisp_poll_t blocking_poll(void *f, wisp_context_t *cx, void **out);

static struct worker *task_count_end(struct wisp_task *t)
{
    struct worker *w = wisp__worker_current();
    if (w && w->rt == t->kind->rt)
        return w;
    if (t->kind->poll != blocking_poll) /* blocking jobs are not counted as tasks */
        METRIC_ADD_SHARED(&t->kind->rt->outside, cancelled, 1);
    return NULL;
}

/* The owner of the future (RUNNING holder), after dropping it, publishes
 * the outcome and releases owned_refs references (plus the registry's if it
 * is the one to unlist the task).  completed is ignored once CLOSED. */
static void task_finish(struct wisp_task *t, bool completed, void *output, uint64_t owned_refs)
{
    struct worker *w = task_count_end(t);
    /* Unlist first: once the task is unlisted and FINISHED, wisp_runtime_free
     * may free the runtime, so it is the last thing here to touch it.
     * relaxed: REGISTERED was set by an owner before us (ordered by the
     * acquire that made us the owner). */
    if ((atomic_load_explicit(&t->state, memory_order_relaxed) & TASK_REGISTERED) &&
        wisp__registry_remove(&t->kind->rt->registry, t))
        owned_refs++;
    t->output = output;
    /* acq_rel: release publishes the output and the drop's effects to join
     * handles (task_register_awaiter's and wisp_join_is_finished's acquire); acquire in
     * case we free the task. */
    struct ts_step st = ts_update(&t->state, ts_finish, TS_FINISH_ARG(completed, owned_refs),
                                  memory_order_acq_rel);
    if (w) {
        if (st.next & TASK_COMPLETED)
            METRIC_ADD(&w->metrics, completed, 1);
        else
            METRIC_ADD(&w->metrics, cancelled, 1);
    }
    if (st.action == TS_NOTIFY) {
        task_notify_awaiter(t);
        if (owned_refs) /* 0: an abort by the handle's holder, whose reference it uses */
            wisp__task_unref(t, owned_refs);
    } else if (st.action == TS_DEALLOC) {
        task_dealloc(t, st.next);
    }
}

/* ---- closing, in bounded stack ------------------------------------------------ */

/* Closes nest: a close finishes its task, which wakes the awaiter, whose
 * queueing fails once the injector is closed, so the awaiter is closed
 * inline, and so on down a chain of awaiting tasks; a drop function may
 * abort another task.  So a close on a thread already closing a task is
 * queued on this list (holding one reference) and the outermost close
 * drains it: the stack stays flat for any chain length. */
static WISP_TLS struct {
    struct wisp_task *pending; /* linked through next, each owning one reference */
    bool active;
    /* The runtime whose task's drop function this thread is running, when
     * it is not one of that runtime's workers: wisp_runtime_free called
     * from the drop function would wait for this very task (-EDEADLK). */
    struct wisp_runtime *runtime;
} closer;

struct wisp_runtime *wisp__task_closing_runtime(void)
{
    return closer.runtime;
}

static void task_close_now(struct wisp_task *t, uint64_t owned_refs)
{
    struct wisp_runtime *outer = closer.runtime;
    closer.runtime = t->kind->rt;
    task_drop_future(t);
    closer.runtime = outer;
    task_finish(t, false, NULL, owned_refs);
}

/* The CLOSE action: the caller holds RUNNING on a CLOSED task and owns
 * owned_refs references to it. */
static void task_close(struct wisp_task *t, uint64_t owned_refs)
{
    if (closer.active) {
        if (owned_refs == 0)
            wisp__task_ref(t);
        else if (owned_refs > 1) /* we keep one: the count stays above zero */
            wisp__task_unref(t, owned_refs - 1);
        t->next = closer.pending;
        closer.pending = t;
        return;
    }
    closer.active = true;
    task_close_now(t, owned_refs);
    while ((t = closer.pending)) {
        closer.pending = t->next;
        task_close_now(t, 1);
    }
    closer.active = false;
}

void wisp__task_close_queued(struct wisp_task *t)
{
    /* acquire: pairs with the release of the wake or spawn that queued it. */
    ts_update(&t->state, ts_close_queued, 0, memory_order_acquire);
    task_close(t, 1);
}

void wisp__task_close_chain(struct wisp_task *t)
{
    while (t) {
        struct wisp_task *next = t->next;
        wisp__task_close_queued(t);
        t = next;
    }
}

bool wisp__task_claim_idle(struct wisp_task *t)
{
    /* acq_rel: acquire pairs with the release of the last poll's end
     * (TO_IDLE), so we see the future as it left it; release publishes
     * CLOSED to a concurrent abort's or wake's acquire. */
    return ts_update(&t->state, ts_claim_idle, 0, memory_order_acq_rel).action == TS_CLOSE;
}

void wisp__task_close_claimed(struct wisp_task *t, uint64_t owned_refs)
{
    task_close(t, owned_refs);
}

/* ---- waking ------------------------------------------------------------------- */

void wisp__task_wake_by_ref(struct wisp_task *t)
{
    /* acq_rel: release pairs with the poller's acquire in TO_RUNNING, so the
     * waker's writes happen before the next poll. */
    if (ts_update(&t->state, ts_wake_by_ref, 0, memory_order_acq_rel).action == TS_SCHEDULE)
        wisp__worker_schedule(t->kind->rt, t, false);
}

void wisp__task_wake(struct wisp_task *t)
{
    /* acq_rel: as in wisp__task_wake_by_ref; acquire also for DEALLOC. */
    struct ts_step st = ts_update(&t->state, ts_wake, 0, memory_order_acq_rel);
    if (st.action == TS_SCHEDULE)
        wisp__worker_schedule(t->kind->rt, t, false);
    else if (st.action == TS_DEALLOC)
        task_dealloc(t, st.next);
}

/* ---- running ------------------------------------------------------------------ */

/* The worker polling t lists it in its own shard before t can go idle
 * (REGISTER adds the registry's reference and the shard bits). */
static void task_register(struct wisp_task *t)
{
    struct registry *reg = &t->kind->rt->registry;
    unsigned shard = wisp__registry_shard_of_worker(reg, wisp__worker_current()->index);
    wisp__registry_insert(reg, t, shard);
    /* acquire (the helper's weakest): no reader needs more, since only we
     * read REGISTERED before our TO_IDLE, whose release publishes it to the
     * acquire of whoever claims or wakes the task next. */
    ts_update(&t->state, ts_register, shard, memory_order_acquire);
}

bool wisp__task_run(struct wisp_task *t, struct worker *w)
{
    /* acquire: pairs with the release of the wake or spawn that queued it. */
    if (unlikely(ts_update(&t->state, ts_to_running, 0, memory_order_acquire).action == TS_CLOSE)) {
        task_close(t, 1); /* aborted while queued */
        return false;
    }
    wisp_waker_t waker = { t, &wisp__task_waker_vtable };
    wisp_context_t cx = { &waker, NULL };
    void *output = NULL;
    struct wisp_runtime *rt = t->kind->rt;
    TRACE(rt, w, TRACE_POLL_BEGIN, t, 0);
#if WISP_DEBUG
    const void *outer = wisp__debug_polling;
    wisp__debug_polling = t;
#endif
    wisp_poll_t res = t->kind->poll(task_future(t), &cx, &output);
#if WISP_DEBUG
    wisp__debug_polling = outer;
#endif
    TRACE(rt, w, TRACE_POLL_END, t, res == WISP_READY);
    if (res == WISP_READY) {
        task_drop_future(t);
        task_finish(t, true, output, 1);
        return false;
    }
    /* relaxed: only the owner (us) sets REGISTERED. */
    if (!(atomic_load_explicit(&t->state, memory_order_relaxed) & TASK_REGISTERED))
        task_register(t);
    /* acq_rel: release publishes the poll's writes to the next poller (its
     * TO_RUNNING) and to the waker that set SCHEDULED; acquire pairs with
     * that waker's release. */
    switch (ts_update(&t->state, ts_to_idle, 0, memory_order_acq_rel).action) {
    case TS_CLOSE: /* aborted during the poll */
        task_close(t, 1);
        return false;
    case TS_REQUEUE: /* woken during the poll: the run reference goes back to a queue */
        return true;
    default: /* idle: the registry's reference keeps it */
        return false;
    }
}

/* ---- spawn -------------------------------------------------------------------- */

/* A new task holding its run reference (and the handle's if join), not
 * yet queued. */
static int task_new(wisp_runtime_t *rt, wisp_poll_fn poll, const void *future, size_t size,
                    wisp_drop_fn drop, wisp_join_t **join, struct wisp_task **out)
{
    /* seq_cst (runtime_is_shutdown): on an outside thread this follows
     * wisp__runtime_outside_enter's seq_cst RMW: runtime.c's step 1. */
    if (runtime_is_shutdown(rt))
        return -ESHUTDOWN;
    const struct task_kind *kind = wisp__kind_get(rt, poll, drop);
    if (!kind)
        return -ENOMEM;
    size_t bytes = task_alloc_size(size);
    struct wisp_task *t = task_alloc(bytes);
    if (!t)
        return -ENOMEM;
    if (size)
        memcpy(task_future(t), future, size);
    uint64_t units = bytes / 16 <= TASK_UNITS_MAX ? bytes / 16 : 0;
    uint64_t refs = join ? 2 : 1; /* run reference, handle */
    atomic_init(&t->state, TASK_SCHEDULED | (join ? TASK_HANDLE : 0) |
                               (units << TASK_UNITS_SHIFT) | refs * TASK_REF_ONE);
    t->kind = kind;
    t->output = NULL;
    t->next = NULL;
    t->reg_prev = t->reg_next = NULL;
    t->awaiter = WISP_WAKER_EMPTY;
    if (join)
        *join = (wisp_join_t *)t;
    *out = t;
    return 0;
}

static int task_spawn(wisp_runtime_t *rt, wisp_poll_fn poll, const void *future, size_t size,
                      wisp_drop_fn drop, wisp_join_t **join)
{
    struct wisp_task *t;
    int err = task_new(rt, poll, future, size, drop, join, &t);
    if (!err)
        wisp__worker_schedule(rt, t, true);
    return err;
}

int wisp_spawn(wisp_runtime_t *rt, wisp_poll_fn poll, const void *future, size_t size,
               wisp_drop_fn drop, wisp_join_t **join)
{
    if (join)
        *join = NULL;
    if (!rt || !poll || (size && !future) || size > SIZE_MAX / 2)
        return -EINVAL;
    /* From an outside thread: counted as in flight before looking at the
     * shutdown flag (runtime.c, step 1). */
    bool outside = wisp__runtime_outside_enter(rt);
    int err = task_spawn(rt, poll, future, size, drop, join);
    if (outside)
        wisp__runtime_outside_exit(rt);
    return err;
}

/* ---- blocking jobs ------------------------------------------------------------- */

/* A blocking job is a task whose one poll runs the function on a thread of
 * the blocking pool (blocking.c); it never returns PENDING, so it is never
 * woken, listed or stolen.  Its drop runs the caller's drop if it did not
 * run. */
struct blocking_job {
    wisp_blocking_fn fn;
    void *arg;
    wisp_drop_fn drop;
    bool ran;
};

static wisp_poll_t blocking_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)cx;
    struct blocking_job *job = f;
    job->ran = true;
    *out = job->fn(job->arg);
    return WISP_READY;
}

static void blocking_drop(void *f)
{
    struct blocking_job *job = f;
    if (!job->ran && job->drop)
        job->drop(job->arg);
}

int wisp_spawn_blocking(wisp_runtime_t *rt, wisp_blocking_fn fn, void *arg, wisp_drop_fn drop,
                        wisp_join_t **join)
{
    if (join)
        *join = NULL;
    if (!rt || !fn)
        return -EINVAL;
    bool outside = wisp__runtime_outside_enter(rt); /* runtime.c, step 1 */
    struct blocking_job job = { fn, arg, drop, false };
    struct wisp_task *t;
    int err = task_new(rt, blocking_poll, &job, sizeof(job), blocking_drop, join, &t);
    if (!err && (err = wisp__blocking_submit(&rt->blocking, t))) {
        /* Not queued: nobody saw it; free it without running anything. */
        if (join)
            *join = NULL;
        task_dealloc(t, atomic_load_explicit(&t->state, memory_order_relaxed));
    }
    if (outside)
        wisp__runtime_outside_exit(rt);
    return err;
}

/* ---- join handles ------------------------------------------------------------- */

/* The task is FINISHED (or the handle misused): report, and free the
 * handle.  -EINVAL if the handle was released already. */
static inline __attribute__((always_inline)) int task_take_result(struct wisp_task *t,
                                                                  void **output)
{
    /* acquire: pairs with the finisher's release in FINISH (the output). */
    uint64_t s = atomic_load_explicit(&t->state, memory_order_acquire);
    void *out = t->output;
    /* acq_rel: release our reads of the task before a free by someone
     * else; acquire in case we free it. */
    struct ts_step st = ts_update(&t->state, ts_release_handle, 0, memory_order_acq_rel);
    if (st.action == TS_MISUSE) {
        if (output)
            *output = NULL;
        return -EINVAL;
    }
    bool ok = s & TASK_COMPLETED;
    if (output)
        *output = ok ? out : NULL;
    if (st.action == TS_DEALLOC)
        task_dealloc(t, st.next);
    return ok ? 0 : -ECANCELED;
}

wisp_poll_t wisp_join_poll(wisp_join_t *join, wisp_context_t *cx, int *status, void **output)
{
    int st = -EINVAL; /* NULL arguments, or a handle released already */
    void *out = NULL;
    if (join && cx) {
        struct wisp_task *t = (struct wisp_task *)join;
        static const wisp_waker_t empty = WISP_WAKER_EMPTY;
        const wisp_waker_t *w = wisp_context_waker(cx);
        int a = task_register_awaiter(t, w ? w : &empty);
        if (a == 1)
            return WISP_PENDING;
        if (a == 0)
            st = task_take_result(t, &out);
    }
    if (status)
        *status = st;
    if (output)
        *output = out;
    return WISP_READY;
}

bool wisp_join_is_finished(const wisp_join_t *join)
{
    if (!join)
        return false;
    struct wisp_task *t = (struct wisp_task *)join;
    /* acquire: pairs with the finisher's release in FINISH, so the drop
     * function's effects are visible to whoever sees true. */
    return atomic_load_explicit(&t->state, memory_order_acquire) & TASK_FINISHED;
}

void wisp_join_detach(wisp_join_t *join)
{
    if (!join)
        return;
    struct wisp_task *t = (struct wisp_task *)join;
    /* acq_rel: as in task_take_result.  MISUSE (released already): nothing. */
    struct ts_step st = ts_update(&t->state, ts_release_handle, 0, memory_order_acq_rel);
    if (st.action == TS_DEALLOC)
        task_dealloc(t, st.next);
}

void wisp_join_abort(wisp_join_t *join)
{
    if (!join)
        return;
    struct wisp_task *t = (struct wisp_task *)join;
    /* acq_rel: acquire the last poll's writes before dropping the future
     * ourselves; release our CLOSED to the owner.  MISUSE: nothing. */
    if (ts_update(&t->state, ts_abort, 0, memory_order_acq_rel).action == TS_CLOSE)
        task_close(t, 0);
}

int wisp_join(wisp_join_t *join, void **output)
{
    if (wisp__worker_current())
        return -EDEADLK;
    if (!join)
        return -EINVAL;
    struct wisp_task *t = (struct wisp_task *)join;
    if (!wisp_join_is_finished(join)) {
        /* The thread's join parker: no allocation (parker.h). */
        wisp_waker_t w = wisp__join_waker();
        int a;
        while ((a = task_register_awaiter(t, &w)) == 1)
            wisp__join_park();
        /* A finisher may still be waking our waker: wait until it is done
         * with it, so that this thread may exit once we return. */
        wisp__join_quiesce();
        if (a < 0) {
            if (output)
                *output = NULL;
            return -EINVAL;
        }
    }
    return task_take_result(t, output);
}
