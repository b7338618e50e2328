/* task.h - the task: one allocation holding the header, the future's copy
 * and (after completion) the output; one atomic state word.
 *
 * State word (64 bits), every transition one atomic read-modify-write:
 *
 *   bit 0  SCHEDULED  queued, or woken while RUNNING (poll it again)
 *   bit 1  RUNNING    someone owns the future right now (a worker polling
 *                     it, or a closer dropping it)
 *   bit 2  COMPLETED  the future returned READY; output is valid
 *   bit 3  CLOSED     cancelled: never polled again
 *   bit 4  FINISHED   the future has been dropped and COMPLETED/CLOSED is
 *                     final; join handles report from here on
 *   bit 5  HANDLE     a join handle exists
 *   bit 6  AWAITER    the awaiter slot holds a waker
 *   bit 7  LOCKED     the awaiter slot is being written or taken
 *   bit 8  REGISTERED the task has been listed in the registry (it went
 *                     idle once); it is unlisted when it finishes
 *   bits 9..19   registry shard the task is listed in (registry.c)
 *   bits 20..31  allocation size in 16-byte units, 0 if too large to record
 *                (used for jemalloc's sized free)
 *   bits 32..63  reference count
 *
 * References.  Every holder of a pointer to the task owns one: each waker
 * clone, the join handle, the registry (while the task is listed there), and
 * the queue the task sits in while SCHEDULED (the "run reference", which a
 * worker inherits when it pops the task and hands back to a queue when the
 * task was woken during its poll).  A spawned task starts with the run
 * reference, and one more if a join handle is returned.
 *
 * Tracking for shutdown: a queued task is found through its queue, a
 * running one through its worker; only idle tasks need the registry.  So a
 * task is listed lazily, by its worker, the first time a poll returns
 * PENDING, before it can become idle; tasks that finish in their first poll
 * never touch it.
 * The memory is freed when the count reaches zero, by whoever drops last.
 *
 * Who may touch the future: only the thread that set RUNNING.  A worker sets
 * it when it starts a poll (clearing SCHEDULED); wisp_join_abort sets it
 * (with CLOSED) on an idle task to drop the future itself; shutdown does the
 * same after the workers are gone.  So the drop function runs exactly once.
 */
#ifndef WISP_TASK_INTERNAL_H
#define WISP_TASK_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <wisp/wisp.h>

#define TASK_SCHEDULED (UINT64_C(1) << 0)
#define TASK_RUNNING (UINT64_C(1) << 1)
#define TASK_COMPLETED (UINT64_C(1) << 2)
#define TASK_CLOSED (UINT64_C(1) << 3)
#define TASK_FINISHED (UINT64_C(1) << 4)
#define TASK_HANDLE (UINT64_C(1) << 5)
#define TASK_AWAITER (UINT64_C(1) << 6)
#define TASK_LOCKED (UINT64_C(1) << 7)
#define TASK_REGISTERED (UINT64_C(1) << 8)
#define TASK_SHARD_SHIFT 9
#define TASK_SHARD_BITS 11
#define TASK_UNITS_SHIFT 20
#define TASK_UNITS_BITS 12
#define TASK_REF_SHIFT 32
#define TASK_REF_ONE (UINT64_C(1) << TASK_REF_SHIFT)

#define TASK_SHARD_MAX ((1u << TASK_SHARD_BITS) - 1)

/* What a group of tasks shares: their runtime and functions.  Interned per
 * runtime (kind.c) so that the header stays within one cache line. */
struct task_kind {
    struct wisp_runtime *rt;
    wisp_poll_fn poll;
    wisp_drop_fn drop;
    struct task_kind *next; /* kind.c's hash chain */
};

struct wisp_task {
    _Atomic uint64_t state;
    const struct task_kind *kind;
    void *output;                          /* valid once COMPLETED */
    struct wisp_task *next;                /* injector / deferred list link */
    struct wisp_task *reg_prev, *reg_next; /* registry list, under its shard lock */
    wisp_waker_t awaiter;                  /* guarded by LOCKED / AWAITER */
    /* the future's copy follows, aligned for max_align_t */
};

_Static_assert(sizeof(struct wisp_task) == 64, "task header must stay one cache line");
_Static_assert(sizeof(struct wisp_task) % _Alignof(max_align_t) == 0, "future alignment");

static inline void *task_future(struct wisp_task *t)
{
    return (char *)t + sizeof(*t);
}

static inline unsigned task_shard(uint64_t state)
{
    return (unsigned)(state >> TASK_SHARD_SHIFT) & TASK_SHARD_MAX;
}

static inline uint64_t task_refs(uint64_t state)
{
    return state >> TASK_REF_SHIFT;
}

/* Reference counting (refs are in units of TASK_REF_ONE). */
void wisp__task_ref(struct wisp_task *t);
void wisp__task_unref(struct wisp_task *t, uint64_t refs);

/* Waker side: the state logic of wake_by_ref, made atomic.  wisp__task_wake
 * consumes the caller's reference. */
void wisp__task_wake_by_ref(struct wisp_task *t);
void wisp__task_wake(struct wisp_task *t);

/* Worker side: polls a task popped from a queue, owning its run reference.
 * Returns true if the task was woken during the poll and must be queued
 * again (the run reference goes with it). */
bool wisp__task_run(struct wisp_task *t);

/* Shutdown: close a task popped from a queue (owning its run reference),
 * or any unfinished task the registry hands over (owning the registry's). */
void wisp__task_close_queued(struct wisp_task *t);

/* Registry and shutdown: claim an idle task (not queued, running or
 * finished) by setting RUNNING|CLOSED; then close it, releasing owned_refs. */
bool wisp__task_try_claim_idle(struct wisp_task *t);
void wisp__task_close_claimed(struct wisp_task *t, uint64_t owned_refs);

/* The runtime whose task the calling (non-worker) thread is closing right
 * now, if any: its drop function is running (runtime.c's deadlock check). */
struct wisp_runtime *wisp__task_closing_runtime(void);

/* The waker vtable of tasks (waker.c). */
extern const wisp_waker_vtable_t wisp__task_waker_vtable;

#endif /* WISP_TASK_INTERNAL_H */
