/* task_state.h - the task state word: its bits, every transition as a pure
 * function of the old word, and the one helper that applies them.
 *
 * Owns: the meaning of struct wisp_task's state word.  Touches nothing:
 * task.c applies the transitions and performs what they ask for.
 *
 * THE STATE WORD (64 bits)
 *
 *   bit 0   SCHEDULED   queued, or woken while RUNNING (poll it again)
 *   bit 1   RUNNING     someone owns the future now: a worker polling it,
 *                       or a closer dropping it
 *   bit 2   COMPLETED   the future returned READY; the output is valid
 *   bit 3   CLOSED      cancelled: never polled again
 *   bit 4   FINISHED    the future has been dropped; COMPLETED/CLOSED are
 *                       final; join handles report from here on
 *   bit 5   HANDLE      a join handle exists
 *   bit 6   AW_REG      the awaiter slot's atomic waker: registering
 *   bit 7   AW_WAKE     ... waking
 *   bit 8   REGISTERED  listed in the registry (the task went idle once)
 *   bit 9   AW_HAS      ... the slot holds a waker (bits 6, 7, 9 belong to
 *                       atomic_waker.h's protocol: no transition here
 *                       writes them; FINISH reads AW_HAS)
 *   bits 10..20  the registry shard it is listed in
 *   bits 21..31  allocation size in 16-byte units (0: too large to record)
 *   bits 32..63  reference count
 *
 * Invariants of a word anyone can see (ts_valid): COMPLETED and CLOSED
 * are exclusive; COMPLETED implies FINISHED; FINISHED implies neither
 * RUNNING nor SCHEDULED; CLOSED without FINISHED implies RUNNING or
 * SCHEDULED (an owner will close it); the count is at least one, and at
 * least the references the bits account for (ts_counted_refs).
 *
 * References.  Every holder of a pointer to the task owns one: each waker
 * clone, the join handle, the registry (while the task is listed), and the
 * queue the task sits in while SCHEDULED (the "run reference", which a
 * worker inherits when it pops the task and hands back to a queue when the
 * task was woken during its poll).  A spawned task starts with the run
 * reference, and one more if a join handle is returned.
 *
 * Who may touch the future: only the thread that set RUNNING (a worker at
 * the start of a poll; an abort or shutdown claiming an idle task; a closer
 * of a queued task).  So the drop function runs exactly once.
 *
 * TRANSITIONS
 *
 * Each ts_* below is a pure function of the old word (and an argument):
 * it returns the new word, whether to store it, and the action the caller
 * must perform.  Its preconditions are ts_allowed's, asserted in WISP_DEBUG
 * builds.  task.c applies every transition through ts_update (a CAS loop),
 * except the two whose new word is the old one plus or minus a constant,
 * whatever the old one was: REF_INC and REF_DEC are one fetch-op each
 * (ts_ref_inc, ts_ref_dec), and the
 * pure function of the old word they return is checked against it in
 * debug builds.
 * tests/test_state_table.c drives every (state, event) pair the word
 * allows through them and checks the result and the action against a table
 * of its own.
 *
 *   event          from                       to                              action
 *   -------------  -------------------------  ------------------------------  ----------
 *   TO_RUNNING     SCHEDULED, not RUNNING     -SCHEDULED +RUNNING             POLL, or
 *                                                                             CLOSE if CLOSED
 *   TO_IDLE        RUNNING, REGISTERED        CLOSED: unchanged               CLOSE
 *                                             SCHEDULED: -RUNNING             REQUEUE
 *                                             else: -RUNNING, -1 ref          IDLE
 *   FINISH(c, n)   RUNNING                    -RUNNING -SCHEDULED +FINISHED,  NOTIFY if AW_HAS
 *                                             +COMPLETED (c, not CLOSED) or   (refs kept), else
 *                                             +CLOSED; -n refs unless NOTIFY  DEALLOC at 0
 *   WAKE_BY_REF    one ref held               done: unchanged, no store       NOTHING
 *                                             SCHEDULED: unchanged (stored)   NOTHING
 *                                             RUNNING: +SCHEDULED             NOTHING
 *                                             idle: +SCHEDULED +1 ref         SCHEDULE
 *   WAKE           a waker's ref (given)      done: -1 ref                    DEALLOC at 0
 *                                             SCHEDULED: -1 ref               NOTHING
 *                                             RUNNING: +SCHEDULED -1 ref      NOTHING
 *                                             idle: +SCHEDULED (ref -> run)   SCHEDULE
 *   ABORT          one ref held               no HANDLE: no store             MISUSE
 *                                             done: no store                  NOTHING
 *                                             RUNNING or SCHEDULED: +CLOSED   NOTHING
 *                                             idle: +CLOSED +RUNNING          CLOSE
 *   CLAIM_IDLE     REGISTERED (shutdown)      idle: +CLOSED +RUNNING          CLOSE
 *                                             else: no store                  BUSY
 *   CLOSE_QUEUED   SCHEDULED, not RUNNING     +CLOSED +RUNNING                CLOSE
 *   REGISTER(sh)   RUNNING, not REGISTERED    +REGISTERED +shard +1 ref       NOTHING
 *   REF_INC        one ref held               +1 ref                          NOTHING
 *   REF_DEC(n)     n refs held, uncounted     -n refs                         DEALLOC at 0
 *   RELEASE_HANDLE any                        HANDLE: -HANDLE -1 ref          DEALLOC at 0
 *                                             else: no store                  MISUSE
 * ("done": COMPLETED, CLOSED or FINISHED; "idle": none of SCHEDULED,
 * RUNNING, done.)
 *
 * The awaiter slot: the join handle's holder registers a waker there, and
 * the finisher takes and wakes it, by the atomic waker's protocol
 * (atomic_waker.h) on bits 6 and 7 of this word.  FINISHED and the
 * registration live in one word, so their order is that word's order: a
 * registrant re-reads FINISHED after registering, the finisher takes the
 * slot after FINISH; one of them sees the other (no Dekker pair).  FINISH
 * keeps the finisher's references when the slot holds a waker (AW_HAS:
 * NOTIFY): the task must outlive the take and the wake, which a handle
 * released at that moment would not guarantee.  A registration still under
 * way (AW_REG) needs nothing: its registrant holds the handle's reference,
 * sees FINISHED when it re-reads the word, and empties the slot itself. */
#ifndef WISP_TASK_STATE_H
#define WISP_TASK_STATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "debug.h"
#include "util.h"

#define TASK_SCHEDULED (UINT64_C(1) << 0)
#define TASK_RUNNING (UINT64_C(1) << 1)
#define TASK_COMPLETED (UINT64_C(1) << 2)
#define TASK_CLOSED (UINT64_C(1) << 3)
#define TASK_FINISHED (UINT64_C(1) << 4)
#define TASK_HANDLE (UINT64_C(1) << 5)
#define TASK_AW_REG (UINT64_C(1) << 6)
#define TASK_AW_WAKE (UINT64_C(1) << 7)
#define TASK_REGISTERED (UINT64_C(1) << 8)
#define TASK_AW_HAS (UINT64_C(1) << 9)
#define TASK_FLAG_BITS 10
#define TASK_FLAGS ((UINT64_C(1) << TASK_FLAG_BITS) - 1)
#define TASK_SHARD_SHIFT 10
#define TASK_SHARD_BITS 11
#define TASK_UNITS_SHIFT 21
#define TASK_UNITS_BITS 11
#define TASK_REF_SHIFT 32
#define TASK_REF_ONE (UINT64_C(1) << TASK_REF_SHIFT)
#define TASK_REF_MAX (UINT32_MAX - 1)

#define TASK_SHARD_MAX ((1u << TASK_SHARD_BITS) - 1)
#define TASK_UNITS_MAX ((UINT64_C(1) << TASK_UNITS_BITS) - 1)
#define TASK_DONE (TASK_COMPLETED | TASK_CLOSED | TASK_FINISHED)

static inline uint64_t task_refs(uint64_t s)
{
    return s >> TASK_REF_SHIFT;
}

static inline unsigned task_shard(uint64_t s)
{
    return (unsigned)(s >> TASK_SHARD_SHIFT) & TASK_SHARD_MAX;
}

static inline bool ts_idle(uint64_t s)
{
    return !(s & (TASK_SCHEDULED | TASK_RUNNING | TASK_DONE));
}

/* The references the bits account for: the run reference (queued, or a
 * worker polling: RUNNING without CLOSED; a closer's RUNNING uses another
 * holder's), the registry's (REGISTERED until FINISHED: the finisher takes
 * it when it unlists the task) and the join handle's. */
static inline uint64_t ts_counted_refs(uint64_t s)
{
    bool run_ref = (s & TASK_SCHEDULED) || ((s & TASK_RUNNING) && !(s & TASK_CLOSED));
    bool registry_ref = (s & TASK_REGISTERED) && !(s & TASK_FINISHED);
    return (uint64_t)run_ref + registry_ref + !!(s & TASK_HANDLE);
}

/* A word anyone can observe (the invariants above). */
static inline bool ts_valid(uint64_t s)
{
    if ((s & TASK_COMPLETED) && (s & TASK_CLOSED))
        return false;
    if ((s & TASK_COMPLETED) && !(s & TASK_FINISHED))
        return false;
    if ((s & TASK_FINISHED) && (s & (TASK_RUNNING | TASK_SCHEDULED)))
        return false;
    if ((s & TASK_FINISHED) && !(s & (TASK_COMPLETED | TASK_CLOSED)))
        return false;
    if ((s & TASK_CLOSED) && !(s & TASK_FINISHED) && !(s & (TASK_RUNNING | TASK_SCHEDULED)))
        return false;
    uint64_t counted = ts_counted_refs(s);
    return task_refs(s) >= (counted ? counted : 1);
}

enum ts_event {
    TS_TO_RUNNING,
    TS_TO_IDLE,
    TS_FINISH,
    TS_WAKE_BY_REF,
    TS_WAKE,
    TS_ABORT,
    TS_CLAIM_IDLE,
    TS_CLOSE_QUEUED,
    TS_REGISTER,
    TS_REF_INC,
    TS_REF_DEC,
    TS_RELEASE_HANDLE,
    TS_EVENTS
};

enum ts_action {
    TS_NOTHING,  /* no further effect */
    TS_POLL,     /* TO_RUNNING: poll the future */
    TS_CLOSE,    /* the caller holds RUNNING on a CLOSED task: drop the future,
                  * then FINISH as closed */
    TS_SCHEDULE, /* queue the task; the new run reference goes with it */
    TS_REQUEUE,  /* TO_IDLE: woken during the poll: queue it again, with
                  * the run reference */
    TS_IDLE,     /* TO_IDLE: waits for a wake (the run reference dropped) */
    TS_NOTIFY,   /* FINISH: take and wake the awaiter, then release the
                  * references that were kept for it */
    TS_DEALLOC,  /* the last reference is gone: free the task */
    TS_BUSY,     /* CLAIM_IDLE: another thread owns it; try again later */
    TS_MISUSE,   /* RELEASE_HANDLE, ABORT: the handle was released
                  * already (a caller's error, reported) */
};

struct ts_step {
    uint64_t prev;         /* the word the transition was computed from */
    uint64_t next;         /* the word to store (if store) */
    enum ts_action action;
    bool store;
};

/* Arguments.  FINISH: completed | refs << 1.  REGISTER: the shard.
 * REF_DEC: the number of references. */
#define TS_FINISH_ARG(completed, refs) ((uint64_t)!!(completed) | (uint64_t)(refs) << 1)

/* The preconditions of each event (the "from" column). */
static inline bool ts_allowed(enum ts_event ev, uint64_t s, uint64_t arg)
{
    uint64_t refs = task_refs(s);
    switch (ev) {
    case TS_TO_RUNNING:
    case TS_CLOSE_QUEUED:
        return (s & TASK_SCHEDULED) && !(s & (TASK_RUNNING | TASK_FINISHED));
    case TS_TO_IDLE:
        return (s & TASK_RUNNING) && (s & TASK_REGISTERED) && !(s & TASK_FINISHED);
    case TS_FINISH:
        return (s & TASK_RUNNING) && !(s & TASK_FINISHED) && refs >= (arg >> 1);
    case TS_WAKE_BY_REF: /* any holder: a poll's own waker borrows the run reference */
        return refs >= 1;
    case TS_WAKE: /* a clone's reference, beyond those counted, is given up */
        return refs >= ts_counted_refs(s) + 1;
    case TS_REF_INC: /* a count at the maximum aborts (leaked clones) */
        return refs >= 1;
    case TS_ABORT:
        return refs >= 1;
    case TS_CLAIM_IDLE:
        return (s & TASK_REGISTERED) != 0;
    case TS_REGISTER:
        return (s & TASK_RUNNING) && !(s & (TASK_REGISTERED | TASK_FINISHED)) &&
               arg <= TASK_SHARD_MAX && refs >= 1;
    case TS_REF_DEC: /* n references beyond those counted */
        return arg >= 1 && refs >= ts_counted_refs(s) + arg;
    case TS_RELEASE_HANDLE:
        return true;
    case TS_EVENTS:
        break;
    }
    return false;
}

static inline struct ts_step ts_store(uint64_t next, enum ts_action action)
{
    return (struct ts_step){ 0, next, action, true };
}

static inline struct ts_step ts_keep(uint64_t s, enum ts_action action)
{
    return (struct ts_step){ 0, s, action, false };
}

/* After dropping references: free at zero. */
static inline struct ts_step ts_drop_refs(uint64_t next)
{
    return ts_store(next, task_refs(next) ? TS_NOTHING : TS_DEALLOC);
}

static inline struct ts_step ts_to_running(uint64_t s, uint64_t arg)
{
    WISP_ASSERT(ts_allowed(TS_TO_RUNNING, s, arg));
    (void)arg;
    return ts_store((s & ~TASK_SCHEDULED) | TASK_RUNNING, s & TASK_CLOSED ? TS_CLOSE : TS_POLL);
}

static inline struct ts_step ts_to_idle(uint64_t s, uint64_t arg)
{
    WISP_ASSERT(ts_allowed(TS_TO_IDLE, s, arg));
    (void)arg;
    if (s & TASK_CLOSED)
        return ts_keep(s, TS_CLOSE);
    if (s & TASK_SCHEDULED)
        return ts_store(s & ~TASK_RUNNING, TS_REQUEUE);
    /* The registry's reference keeps the count above zero. */
    return ts_store((s & ~TASK_RUNNING) - TASK_REF_ONE, TS_IDLE);
}

static inline struct ts_step ts_finish(uint64_t s, uint64_t arg)
{
    WISP_ASSERT(ts_allowed(TS_FINISH, s, arg));
    bool ok = (arg & 1) && !(s & TASK_CLOSED);
    uint64_t next = (s & ~(TASK_RUNNING | TASK_SCHEDULED)) | TASK_FINISHED |
                    (ok ? TASK_COMPLETED : TASK_CLOSED);
    if (s & TASK_AW_HAS) /* the references wait until the awaiter is woken */
        return ts_store(next, TS_NOTIFY);
    return ts_drop_refs(next - (arg >> 1) * TASK_REF_ONE);
}

static inline struct ts_step ts_wake_by_ref(uint64_t s, uint64_t arg)
{
    WISP_ASSERT(ts_allowed(TS_WAKE_BY_REF, s, arg));
    (void)arg;
    if (s & TASK_DONE)
        return ts_keep(s, TS_NOTHING);
    if (s & TASK_SCHEDULED) /* stored all the same: the coming poll's acquire
                             * then sees what the waker wrote before waking */
        return ts_store(s, TS_NOTHING);
    if (s & TASK_RUNNING) /* the worker requeues it after the poll */
        return ts_store(s | TASK_SCHEDULED, TS_NOTHING);
    if (unlikely(task_refs(s) >= TASK_REF_MAX)) /* leaked clones: as Arc does */
        abort();
    return ts_store((s | TASK_SCHEDULED) + TASK_REF_ONE, TS_SCHEDULE);
}

static inline struct ts_step ts_wake(uint64_t s, uint64_t arg)
{
    WISP_ASSERT(ts_allowed(TS_WAKE, s, arg));
    (void)arg;
    if (s & TASK_DONE)
        return ts_drop_refs(s - TASK_REF_ONE);
    /* A queue or the runner holds the run reference: ours is dropped (the
     * count stays above zero).  Idle: ours becomes the run reference. */
    if (s & TASK_SCHEDULED)
        return ts_store(s - TASK_REF_ONE, TS_NOTHING);
    if (s & TASK_RUNNING)
        return ts_store((s | TASK_SCHEDULED) - TASK_REF_ONE, TS_NOTHING);
    return ts_store(s | TASK_SCHEDULED, TS_SCHEDULE);
}

static inline struct ts_step ts_abort(uint64_t s, uint64_t arg)
{
    WISP_ASSERT(ts_allowed(TS_ABORT, s, arg));
    (void)arg;
    if (!(s & TASK_HANDLE)) /* the handle was released already */
        return ts_keep(s, TS_MISUSE);
    if (s & TASK_DONE)
        return ts_keep(s, TS_NOTHING);
    if (s & (TASK_RUNNING | TASK_SCHEDULED)) /* its owner closes it */
        return ts_store(s | TASK_CLOSED, TS_NOTHING);
    return ts_store(s | TASK_CLOSED | TASK_RUNNING, TS_CLOSE);
}

static inline struct ts_step ts_claim_idle(uint64_t s, uint64_t arg)
{
    WISP_ASSERT(ts_allowed(TS_CLAIM_IDLE, s, arg));
    (void)arg;
    if (!ts_idle(s))
        return ts_keep(s, TS_BUSY);
    return ts_store(s | TASK_CLOSED | TASK_RUNNING, TS_CLOSE);
}

static inline struct ts_step ts_close_queued(uint64_t s, uint64_t arg)
{
    WISP_ASSERT(ts_allowed(TS_CLOSE_QUEUED, s, arg));
    (void)arg;
    return ts_store(s | TASK_CLOSED | TASK_RUNNING, TS_CLOSE);
}

static inline struct ts_step ts_register(uint64_t s, uint64_t shard)
{
    WISP_ASSERT(ts_allowed(TS_REGISTER, s, shard));
    if (unlikely(task_refs(s) >= TASK_REF_MAX)) /* leaked clones: as Arc does */
        abort();
    return ts_store((s | TASK_REGISTERED | shard << TASK_SHARD_SHIFT) + TASK_REF_ONE, TS_NOTHING);
}

static inline struct ts_step ts_ref_inc_step(uint64_t s, uint64_t arg)
{
    WISP_ASSERT(ts_allowed(TS_REF_INC, s, arg));
    (void)arg;
    if (unlikely(task_refs(s) >= TASK_REF_MAX)) /* leaked clones: as Arc does */
        abort();
    return ts_store(s + TASK_REF_ONE, TS_NOTHING);
}

static inline struct ts_step ts_ref_dec_step(uint64_t s, uint64_t n)
{
    WISP_ASSERT(ts_allowed(TS_REF_DEC, s, n));
    return ts_drop_refs(s - n * TASK_REF_ONE);
}

static inline struct ts_step ts_release_handle(uint64_t s, uint64_t arg)
{
    WISP_ASSERT(ts_allowed(TS_RELEASE_HANDLE, s, arg));
    (void)arg;
    if (!(s & TASK_HANDLE))
        return ts_keep(s, TS_MISUSE);
    return ts_drop_refs(s - TASK_HANDLE - TASK_REF_ONE);
}

/* Every transition by its event (the table test drives them through this). */
static inline struct ts_step ts_transition(enum ts_event ev, uint64_t s, uint64_t arg)
{
    switch (ev) {
    case TS_TO_RUNNING: return ts_to_running(s, arg);
    case TS_TO_IDLE: return ts_to_idle(s, arg);
    case TS_FINISH: return ts_finish(s, arg);
    case TS_WAKE_BY_REF: return ts_wake_by_ref(s, arg);
    case TS_WAKE: return ts_wake(s, arg);
    case TS_ABORT: return ts_abort(s, arg);
    case TS_CLAIM_IDLE: return ts_claim_idle(s, arg);
    case TS_CLOSE_QUEUED: return ts_close_queued(s, arg);
    case TS_REGISTER: return ts_register(s, arg);
    case TS_REF_INC: return ts_ref_inc_step(s, arg);
    case TS_REF_DEC: return ts_ref_dec_step(s, arg);
    case TS_RELEASE_HANDLE: return ts_release_handle(s, arg);
    case TS_EVENTS: break;
    }
    abort();
}

/* ---- applying transitions -------------------------------------------------- */

typedef struct ts_step (*ts_fn)(uint64_t s, uint64_t arg);

/* The one update helper: computes fn on the current word and stores the
 * result with a CAS, again on a newer word until it sticks; a step that
 * stores nothing returns at once.  Inlined with fn, so each call site is
 * one load and one CAS in the common case.
 *   success: the CAS's order (acquire or acq_rel; each call site says what
 *            it pairs with).
 *   The load and a failed CAS are acquire: a step that stores nothing (or
 *   the next attempt) decides on a word whose writer's effects we see. */
static inline __attribute__((always_inline)) struct ts_step
ts_update(_Atomic uint64_t *word, ts_fn fn, uint64_t arg, memory_order success)
{
    uint64_t s = atomic_load_explicit(word, memory_order_acquire);
    for (;;) {
        struct ts_step st = fn(s, arg);
        st.prev = s;
        if (!st.store ||
            atomic_compare_exchange_weak_explicit(word, &s, st.next, success, memory_order_acquire))
            return st;
    }
}

/* REF_INC as a fetch-add.  relaxed: as Arc::clone, taking a reference
 * needs no ordering; the caller already holds one that keeps the task
 * alive.  A count this high means leaked clones: abort, as Arc does. */
static inline void ts_ref_inc(_Atomic uint64_t *word)
{
    uint64_t s = atomic_fetch_add_explicit(word, TASK_REF_ONE, memory_order_relaxed);
    if (unlikely(task_refs(s) >= TASK_REF_MAX))
        abort();
    WISP_ASSERT(ts_ref_inc_step(s, 0).next == s + TASK_REF_ONE);
}

/* REF_DEC(n) as a fetch-sub; the step is REF_DEC's on the old word.
 * acq_rel: release our writes to the task; whoever drops the last
 * reference acquires everyone's before freeing (as Arc's drop). */
static inline struct ts_step ts_ref_dec(_Atomic uint64_t *word, uint64_t n)
{
    uint64_t s = atomic_fetch_sub_explicit(word, n * TASK_REF_ONE, memory_order_acq_rel);
    struct ts_step st = ts_ref_dec_step(s, n);
    st.prev = s;
    WISP_ASSERT(st.next == s - n * TASK_REF_ONE);
    return st;
}

#endif /* WISP_TASK_STATE_H */
