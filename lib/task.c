/* task.c - task allocation, the state word's transitions, spawn, and join
 * handles.  The state word and the ownership rules are described in
 * task.h; every transition below is one CAS or fetch-op on t->state.
 *
 * Owns: struct wisp_task (its memory, state word, future, output, awaiter
 * slot).  Touches: the registry (listing and unlisting) and the scheduler
 * (wisp__worker_schedule) of the task's runtime, only while the task is
 * unfinished: wisp_runtime_free waits for every listed task and every
 * outside scheduler before it frees the runtime (see runtime.c), and a
 * finished task never looks at its runtime again. */
#include "task.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "parker.h"
#include "runtime.h"

#define TASK_UNITS_MAX ((UINT64_C(1) << TASK_UNITS_BITS) - 1)
#define TASK_DONE_MASK (TASK_COMPLETED | TASK_CLOSED | TASK_FINISHED)

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
    return p ? p : wisp_alloc(bytes);
}

static void task_dealloc(struct wisp_task *t, uint64_t state)
{
    if (state & TASK_AWAITER)
        wisp_waker_drop(&t->awaiter);
    size_t size = ((size_t)(state >> TASK_UNITS_SHIFT) & TASK_UNITS_MAX) * 16;
    struct worker *w = wisp__worker_current();
    if (!w || !wisp__task_cache_put(&w->cache, t, size))
        wisp_free_sized(t, size);
}

static void refcount_overflow(void)
{
    /* As Rust's Arc does: a count this high means leaked clones. */
    abort();
}

void wisp__task_ref(struct wisp_task *t)
{
    /* relaxed: taking a reference needs no ordering, as in Arc::clone; the
     * caller already holds one that keeps the task alive. */
    uint64_t s = atomic_fetch_add_explicit(&t->state, TASK_REF_ONE, memory_order_relaxed);
    if (unlikely(task_refs(s) >= UINT32_MAX - 1))
        refcount_overflow();
}

void wisp__task_unref(struct wisp_task *t, uint64_t refs)
{
    /* acq_rel: release our writes to the task; whoever drops the last
     * reference acquires everyone's before freeing. */
    uint64_t s = atomic_fetch_sub_explicit(&t->state, refs * TASK_REF_ONE, memory_order_acq_rel);
    if (task_refs(s) == refs)
        task_dealloc(t, s - refs * TASK_REF_ONE);
}

/* ---- the awaiter slot ---------------------------------------------------- */

/* Called by the finisher after FINISHED is set.  If the slot is LOCKED the
 * registrant holds it; it will see FINISHED when it unlocks and handle it. */
static void task_notify_awaiter(struct wisp_task *t)
{
    /* acquire: pairs with the registrant's release unlock (the waker). */
    uint64_t s = atomic_load_explicit(&t->state, memory_order_acquire);
    do {
        if (!(s & TASK_AWAITER) || (s & TASK_LOCKED))
            return;
    } while (!atomic_compare_exchange_weak_explicit(&t->state, &s, s | TASK_LOCKED,
                                                    memory_order_acquire, memory_order_acquire));
    wisp_waker_t w = t->awaiter;
    t->awaiter = WISP_WAKER_EMPTY;
    /* release: our slot write happens before the next locker's reads. */
    atomic_fetch_and_explicit(&t->state, ~(TASK_AWAITER | TASK_LOCKED), memory_order_release);
    wisp_waker_wake(&w);
}

/* PENDING: w (or an equivalent waker) will be woken when the task finishes. */
static wisp_poll_t task_register_awaiter(struct wisp_task *t, const wisp_waker_t *w)
{
    /* acquire: pairs with the finisher's release CAS (output, FINISHED). */
    uint64_t s = atomic_load_explicit(&t->state, memory_order_acquire);
    do {
        /* Only a finisher takes LOCKED besides us, and only after FINISHED. */
        if (s & TASK_FINISHED)
            return WISP_READY;
    } while (!atomic_compare_exchange_weak_explicit(&t->state, &s, s | TASK_LOCKED,
                                                    memory_order_acquire, memory_order_acquire));
    if (!(s & TASK_AWAITER))
        t->awaiter = wisp_waker_clone(w);
    else
        wisp_waker_set(&t->awaiter, w);
    s |= TASK_LOCKED;
    /* Unlock, unless the task finished meanwhile: then we keep LOCKED, so a
     * finisher that saw AWAITER (from an earlier registration) backs off in
     * task_notify_awaiter, and empty the slot ourselves.
     * release: publishes the slot to the finisher's acquire CAS. */
    while (!(s & TASK_FINISHED)) {
        if (atomic_compare_exchange_weak_explicit(&t->state, &s, (s & ~TASK_LOCKED) | TASK_AWAITER,
                                                  memory_order_acq_rel, memory_order_acquire))
            return WISP_PENDING;
    }
    /* acquire on the failed CAS above: the finisher's output is visible. */
    wisp_waker_drop(&t->awaiter);
    /* release: the slot write happens before dealloc's read of it. */
    atomic_fetch_and_explicit(&t->state, ~(TASK_AWAITER | TASK_LOCKED), memory_order_release);
    return WISP_READY;
}

/* ---- finishing ------------------------------------------------------------ */

static void task_drop_future(struct wisp_task *t)
{
    if (t->kind->drop)
        t->kind->drop(task_future(t));
}

/* Metrics: where a task ended.  On a worker of its runtime (the only place
 * a task completes), after the fact; elsewhere (always a close) before the
 * task is unlisted, after which the runtime may be freed. */
static struct worker *task_count_end(struct wisp_task *t)
{
    struct worker *w = wisp__worker_current();
    if (w && w->rt == t->kind->rt)
        return w;
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
    /* relaxed: the CAS below is the synchronising access. */
    uint64_t s = atomic_load_explicit(&t->state, memory_order_relaxed), next;
    bool notify;
    do {
        bool ok = completed && !(s & TASK_CLOSED);
        next = (s & ~(TASK_RUNNING | TASK_SCHEDULED)) | TASK_FINISHED |
               (ok ? TASK_COMPLETED : TASK_CLOSED);
        /* With an awaiter we keep our references until it is woken. */
        notify = s & TASK_AWAITER;
        if (!notify)
            next -= owned_refs * TASK_REF_ONE;
        /* acq_rel: release publishes output and the drop's effects to join
         * handles (their acquire load); acquire in case we free the task. */
    } while (!atomic_compare_exchange_weak_explicit(&t->state, &s, next, memory_order_acq_rel,
                                                    memory_order_relaxed));
    if (w) {
        if (next & TASK_COMPLETED)
            METRIC_ADD(&w->metrics, completed, 1);
        else
            METRIC_ADD(&w->metrics, cancelled, 1);
    }
    if (notify) {
        task_notify_awaiter(t);
        wisp__task_unref(t, owned_refs);
    } else if (task_refs(next) == 0) {
        task_dealloc(t, next);
    }
}

/* The runtime whose task this thread is closing, when it is not one of
 * that runtime's workers: wisp_runtime_free called from the drop function
 * would wait for this very task (runtime.c refuses with -EDEADLK). */
static WISP_TLS struct wisp_runtime *closing_for;

struct wisp_runtime *wisp__task_closing_runtime(void)
{
    return closing_for;
}

static void task_close_owned(struct wisp_task *t, uint64_t owned_refs)
{
    struct wisp_runtime *outer = closing_for;
    closing_for = t->kind->rt;
    task_drop_future(t);
    closing_for = outer;
    task_finish(t, false, NULL, owned_refs);
}

/* ---- waking --------------------------------------------------------------- */

static inline void check_ref_room(uint64_t s)
{
    if (unlikely(task_refs(s) >= UINT32_MAX - 1))
        refcount_overflow();
}

void wisp__task_wake_by_ref(struct wisp_task *t)
{
    /* acquire: see a current state; the CAS below does the real work. */
    uint64_t s = atomic_load_explicit(&t->state, memory_order_acquire), next;
    do {
        if (s & TASK_DONE_MASK)
            return;
        if (s & TASK_SCHEDULED)
            next = s; /* still write, so the coming poll sees what we wrote */
        else if (s & TASK_RUNNING)
            next = s | TASK_SCHEDULED; /* the worker requeues it after the poll */
        else {
            check_ref_room(s);
            next = (s | TASK_SCHEDULED) + TASK_REF_ONE; /* the run reference */
        }
        /* acq_rel: release pairs with the poller's acquire in wisp__task_run, so
         * the waker's writes happen before the next poll. */
    } while (!atomic_compare_exchange_weak_explicit(&t->state, &s, next, memory_order_acq_rel,
                                                    memory_order_acquire));
    if (!(s & (TASK_SCHEDULED | TASK_RUNNING)))
        wisp__worker_schedule(t->kind->rt, t, false);
}

void wisp__task_wake(struct wisp_task *t)
{
    /* acquire: see a current state; the CAS below does the real work. */
    uint64_t s = atomic_load_explicit(&t->state, memory_order_acquire), next;
    do {
        if (s & TASK_DONE_MASK) {
            wisp__task_unref(t, 1);
            return;
        }
        /* Our reference: dropped when a queue or the runner already holds
         * one (the count cannot reach zero), else it becomes the run
         * reference. */
        if (s & TASK_SCHEDULED)
            next = s - TASK_REF_ONE;
        else if (s & TASK_RUNNING)
            next = (s | TASK_SCHEDULED) - TASK_REF_ONE;
        else
            next = s | TASK_SCHEDULED;
        /* acq_rel: as in wisp__task_wake_by_ref. */
    } while (!atomic_compare_exchange_weak_explicit(&t->state, &s, next, memory_order_acq_rel,
                                                    memory_order_acquire));
    if (!(s & (TASK_SCHEDULED | TASK_RUNNING)))
        wisp__worker_schedule(t->kind->rt, t, false);
}

/* ---- running and closing -------------------------------------------------- */

/* The worker polling t lists it in its own shard before t can go idle; the
 * registry's reference is added with REGISTERED and the shard bits. */
static void task_register(struct wisp_task *t)
{
    struct registry *reg = &t->kind->rt->registry;
    unsigned shard = wisp__registry_shard_of_worker(reg, wisp__worker_current()->index);
    wisp__registry_insert(reg, t, shard);
    /* relaxed: only the owner (us) reads REGISTERED before the poll-end
     * CAS, which publishes it with release. */
    atomic_fetch_add_explicit(&t->state,
                              TASK_REGISTERED | ((uint64_t)shard << TASK_SHARD_SHIFT) | TASK_REF_ONE,
                              memory_order_relaxed);
}

bool wisp__task_run(struct wisp_task *t)
{
    /* relaxed: the CAS below acquires. */
    uint64_t s = atomic_load_explicit(&t->state, memory_order_relaxed);
    /* acquire: pairs with the release of the wake or spawn that queued it. */
    while (!atomic_compare_exchange_weak_explicit(&t->state, &s,
                                                  (s & ~TASK_SCHEDULED) | TASK_RUNNING,
                                                  memory_order_acquire, memory_order_relaxed))
        ;
    if (unlikely(s & TASK_CLOSED)) { /* aborted while queued */
        task_close_owned(t, 1);
        return false;
    }
    wisp_waker_t waker = { t, &wisp__task_waker_vtable };
    wisp_context_t cx = { &waker, NULL };
    void *output = NULL;
    struct wisp_runtime *rt = t->kind->rt;
    TRACE(rt, wisp__worker_current(), TRACE_POLL_BEGIN, t, 0);
    wisp_poll_t res = t->kind->poll(task_future(t), &cx, &output);
    TRACE(rt, wisp__worker_current(), TRACE_POLL_END, t, res == WISP_READY);
    if (res == WISP_READY) {
        task_drop_future(t);
        task_finish(t, true, output, 1);
        return false;
    }
    /* relaxed: the CAS below is the synchronising access. */
    s = atomic_load_explicit(&t->state, memory_order_relaxed);
    if (!(s & TASK_REGISTERED)) {
        task_register(t);
        s = atomic_load_explicit(&t->state, memory_order_relaxed);
    }
    for (;;) {
        if (s & TASK_CLOSED) { /* aborted during the poll */
            task_close_owned(t, 1);
            return false;
        }
        /* Woken during the poll: keep SCHEDULED, the run reference goes
         * back to a queue.  Else drop it: the registry's keeps the task. */
        uint64_t next = (s & TASK_SCHEDULED) ? s & ~TASK_RUNNING
                                             : (s & ~TASK_RUNNING) - TASK_REF_ONE;
        /* acq_rel: release publishes the poll's writes to the next poller
         * and to the waker that set SCHEDULED; acquire pairs with it. */
        if (atomic_compare_exchange_weak_explicit(&t->state, &s, next, memory_order_acq_rel,
                                                  memory_order_relaxed))
            return (s & TASK_SCHEDULED) != 0;
    }
}

void wisp__task_close_queued(struct wisp_task *t)
{
    /* A queued task is never RUNNING or finished: claim it.  acquire: pairs
     * with the release of the wake or spawn that queued it. */
    atomic_fetch_or_explicit(&t->state, TASK_RUNNING | TASK_CLOSED, memory_order_acquire);
    task_close_owned(t, 1);
}

bool wisp__task_try_claim_idle(struct wisp_task *t)
{
    /* acquire: pairs with the release of the last poll's end. */
    uint64_t s = atomic_load_explicit(&t->state, memory_order_acquire);
    do {
        if (s & (TASK_SCHEDULED | TASK_RUNNING | TASK_DONE_MASK))
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&t->state, &s,
                                                    s | TASK_RUNNING | TASK_CLOSED,
                                                    memory_order_acq_rel, memory_order_acquire));
    return true;
}

void wisp__task_close_claimed(struct wisp_task *t, uint64_t owned_refs)
{
    task_close_owned(t, owned_refs);
}

/* ---- spawn ---------------------------------------------------------------- */

static int task_spawn(wisp_runtime_t *rt, wisp_poll_fn poll, const void *future, size_t size,
                      wisp_drop_fn drop, wisp_join_t **join)
{
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
    wisp__worker_schedule(rt, t, true);
    return 0;
}

int wisp_spawn(wisp_runtime_t *rt, wisp_poll_fn poll, const void *future, size_t size,
               wisp_drop_fn drop, wisp_join_t **join)
{
    if (join)
        *join = NULL;
    if (!rt || !poll || (size && !future) || size > SIZE_MAX / 2)
        return -EINVAL;
    /* From an outside thread: counted as in flight before looking at the
     * shutdown flag, so wisp_runtime_free either refuses us here or waits
     * for us to finish with rt. */
    bool outside = wisp__runtime_outside_enter(rt);
    int err = task_spawn(rt, poll, future, size, drop, join);
    if (outside)
        wisp__runtime_outside_exit(rt);
    return err;
}

/* ---- join handles --------------------------------------------------------- */

static void task_release_handle(struct wisp_task *t)
{
    /* HANDLE is set while the handle lives, so subtracting it clears it.
     * acq_rel: as in wisp__task_unref. */
    uint64_t s = atomic_fetch_sub_explicit(&t->state, TASK_HANDLE | TASK_REF_ONE,
                                           memory_order_acq_rel);
    if (task_refs(s) == 1)
        task_dealloc(t, s - (TASK_HANDLE | TASK_REF_ONE));
}

/* The task is FINISHED: report, and free the handle. */
static int task_take_result(struct wisp_task *t, void **output)
{
    /* acquire: pairs with the finisher's release CAS (output). */
    uint64_t s = atomic_load_explicit(&t->state, memory_order_acquire);
    bool ok = s & TASK_COMPLETED;
    if (output)
        *output = ok ? t->output : NULL;
    task_release_handle(t);
    return ok ? 0 : -ECANCELED;
}

wisp_poll_t wisp_join_poll(wisp_join_t *join, wisp_context_t *cx, int *status, void **output)
{
    if (!join || !cx) {
        if (status)
            *status = -EINVAL;
        if (output)
            *output = NULL;
        return WISP_READY;
    }
    struct wisp_task *t = (struct wisp_task *)join;
    static const wisp_waker_t empty = WISP_WAKER_EMPTY;
    const wisp_waker_t *w = wisp_context_waker(cx);
    if (task_register_awaiter(t, w ? w : &empty) == WISP_PENDING)
        return WISP_PENDING;
    int st = task_take_result(t, output);
    if (status)
        *status = st;
    return WISP_READY;
}

bool wisp_join_is_finished(const wisp_join_t *join)
{
    if (!join)
        return false;
    struct wisp_task *t = (struct wisp_task *)join;
    /* acquire: pairs with the finisher's release CAS, so the drop function's
     * effects are visible to whoever sees true. */
    return atomic_load_explicit(&t->state, memory_order_acquire) & TASK_FINISHED;
}

void wisp_join_detach(wisp_join_t *join)
{
    if (join)
        task_release_handle((struct wisp_task *)join);
}

void wisp_join_abort(wisp_join_t *join)
{
    if (!join)
        return;
    struct wisp_task *t = (struct wisp_task *)join;
    /* acquire: see a current state; the CAS below does the real work. */
    uint64_t s = atomic_load_explicit(&t->state, memory_order_acquire), next;
    do {
        if (s & TASK_DONE_MASK)
            return;
        /* Running or queued: its owner closes it.  Idle: we claim it. */
        next = s | TASK_CLOSED;
        if (!(s & (TASK_RUNNING | TASK_SCHEDULED)))
            next |= TASK_RUNNING;
        /* acq_rel: acquire the last poll's writes before dropping the future
         * ourselves; release our CLOSED to the owner. */
    } while (!atomic_compare_exchange_weak_explicit(&t->state, &s, next, memory_order_acq_rel,
                                                    memory_order_acquire));
    if (!(s & (TASK_RUNNING | TASK_SCHEDULED)))
        task_close_owned(t, 0);
}

int wisp_join(wisp_join_t *join, void **output)
{
    if (wisp__worker_current())
        return -EDEADLK;
    if (!join)
        return -EINVAL;
    struct wisp_task *t = (struct wisp_task *)join;
    if (!wisp_join_is_finished(join)) {
        struct parker *p = wisp__parker_new();
        if (!p)
            return -ENOMEM;
        wisp_waker_t w = wisp__parker_waker(p);
        while (task_register_awaiter(t, &w) == WISP_PENDING)
            wisp__parker_park(p);
        wisp__parker_release(p);
    }
    return task_take_result(t, output);
}
