/* task.h - the task: one allocation holding the header, the future's copy
 * and (after completion) the output.  Its state word, the references and
 * who may touch the future are task_state.h's; task.c applies the
 * transitions and performs what they ask for.
 *
 * Owns: struct wisp_task and struct task_kind's layout. */
#ifndef WISP_TASK_INTERNAL_H
#define WISP_TASK_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <wisp/wisp.h>

#include "task_state.h"

/* What a group of tasks shares: their runtime and functions.  Interned per
 * runtime (kind.c) so that the header stays within one cache line. */
struct task_kind {
    struct wisp_runtime *rt;
    wisp_poll_fn poll;
    wisp_drop_fn drop;
    struct task_kind *next; /* kind.c's hash chain */
};

struct wisp_task {
    _Atomic uint64_t state;                /* task_state.h */
    const struct task_kind *kind;
    void *output;                          /* valid once COMPLETED */
    /* A queue's link (injector, deferred list), or task.c's list of
     * pending closes: a task is in at most one of them at a time. */
    struct wisp_task *next;
    struct wisp_task *reg_prev, *reg_next; /* registry list, under its shard lock */
    wisp_waker_t awaiter;                  /* the atomic waker's slot: state bits AW_* */
    /* the future's copy follows, aligned for max_align_t */
};

_Static_assert(sizeof(struct wisp_task) == 64, "task header must stay one cache line");
_Static_assert(sizeof(struct wisp_task) % _Alignof(max_align_t) == 0, "future alignment");

static inline void *task_future(struct wisp_task *t)
{
    return (char *)t + sizeof(*t);
}

/* References (REF_INC, REF_DEC). */
void wisp__task_ref(struct wisp_task *t);
void wisp__task_unref(struct wisp_task *t, uint64_t refs);

/* Waker side (WAKE_BY_REF, WAKE): wisp__task_wake consumes the caller's
 * reference. */
void wisp__task_wake_by_ref(struct wisp_task *t);
void wisp__task_wake(struct wisp_task *t);

/* Worker side: w polls a task popped from a queue, owning its run
 * reference.  Returns true if the task was woken during the poll and must
 * be queued again (the run reference goes with it). */
struct worker;
bool wisp__task_run(struct wisp_task *t, struct worker *w);

/* Shutdown: close a task popped from a queue (owning its run reference),
 * or a chain of them linked through next. */
void wisp__task_close_queued(struct wisp_task *t);
void wisp__task_close_chain(struct wisp_task *first);

/* Registry and shutdown: claim an idle task (CLAIM_IDLE); then close it,
 * releasing owned_refs. */
bool wisp__task_claim_idle(struct wisp_task *t);
void wisp__task_close_claimed(struct wisp_task *t, uint64_t owned_refs);

/* The runtime whose task the calling (non-worker) thread is closing right
 * now, if any: its drop function is running (runtime.c's deadlock check). */
struct wisp_runtime *wisp__task_closing_runtime(void);

/* The waker vtable of tasks (waker.c). */
extern const wisp_waker_vtable_t wisp__task_waker_vtable;

#endif /* WISP_TASK_INTERNAL_H */
