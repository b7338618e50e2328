/* local_queue.h - a worker's local queue: two one-task slots and two
 * private lists around a Chase-Lev deque.  The protocol (who writes and reads
 * each part, the orderings, where displaced tasks go, the fairness bound)
 * is stated once, at the top of local_queue.c.
 *
 * Owns: struct local_queue.  Its owner is one worker thread; thieves (other
 * workers) only steal, and parking workers only ask whether it has work. */
#ifndef WISP_LOCAL_QUEUE_H
#define WISP_LOCAL_QUEUE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "deque.h"
#include "util.h"

struct injector;
struct wisp_task;
struct worker_metrics;

/* Every so many pops the oldest queued work gets a turn (local_queue.c). */
#define FAIRNESS_TICKS 61
/* Consecutive runs from the LIFO slot before its task waits its turn. */
#define MAX_LIFO_RUNS 3

struct local_queue {
    struct deque deque;          /* owner: bottom; thieves: top */
    struct injector *injector;   /* the runtime's: overflow and refills */
    unsigned nworkers;           /* refills take about a 1/nworkers share */
    struct worker_metrics *metrics; /* the owner's counters (metrics.h) */
    struct wisp_task **scratch;  /* overflow batch, capacity/2 entries */
    struct wisp_task *lifo;      /* owner only: the task a poll woke last */
    struct wisp_task *capped;    /* owner only: LIFO runs cut short, newest first */
    struct wisp_task *yielded;   /* owner only: yielded tasks, newest first */
    uint32_t countdown;          /* owner only: pops until the next fairness turn */
    uint32_t turns;              /* owner only: fairness turns so far */
    uint32_t lifo_runs;          /* owner only: LIFO-slot runs in a row */
    /* The task the owner spawned last: its next task unless a thief takes
     * it.  Own line: written on every spawn, read by thieves and parkers. */
    _Alignas(WISP_CACHE_LINE) struct wisp_task *_Atomic spawned;
    /* Odd while the owner is inside a poll, bumped as each poll starts and
     * ends: a thief that sees it odd and unchanged for LONE_STEAL_NS knows
     * the owner is stuck in one poll (worker.c).  Same line as spawned:
     * the owner writes both, thieves read both. */
    _Atomic uint32_t polls;
};

int wisp__lq_init(struct local_queue *q, size_t capacity, struct injector *injector,
                  unsigned nworkers, struct worker_metrics *metrics);
void wisp__lq_destroy(struct local_queue *q);

/* ---- the owner ------------------------------------------------------------ */

/* A task spawned by the running poll: into the spawn slot.  The caller then
 * offers work to an idle worker (idle.c). */
void wisp__lq_push_spawn(struct local_queue *q, struct wisp_task *t);

/* A task woken by the running poll: into the LIFO slot.  true when that
 * displaced an older one onto the deque: the caller offers it to idle
 * workers once the poll ends (wisp__lq_offer, then idle.c). */
bool wisp__lq_push_wake(struct local_queue *q, struct wisp_task *t);

/* A task that woke itself while running (wisp_yield): it runs again only
 * after everything queued here now. */
void wisp__lq_push_yield(struct local_queue *q, struct wisp_task *t);

/* What a pop returns: the task (NULL when the local queue and the
 * injector are empty) and flags for the owner. */
struct lq_next {
    struct wisp_task *task;
    unsigned flags;
};
#define LQ_OFFER 1u /* tasks moved onto the deque: offer them to idle workers */
#define LQ_TURN 2u  /* this pop was a fairness turn (the owner's periodic chores) */

/* Steps of lq_pop below, out of line. */
struct lq_next wisp__lq_fair_turn(struct local_queue *q);
struct lq_next wisp__lq_refill(struct local_queue *q);
struct lq_next wisp__lq_take_private(struct local_queue *q);
void wisp__lq_cap(struct local_queue *q, struct wisp_task *t);

/* The next task to run, in local_queue.c's order.  Inline: the common
 * steps (the slots, the deque) are the loop's work between two polls. */
static inline struct lq_next lq_pop(struct local_queue *q)
{
    struct wisp_task *t;
    unsigned flags = 0;
    if (unlikely(--q->countdown == 0)) { /* step 1 */
        q->countdown = FAIRNESS_TICKS;
        q->turns++;
        struct lq_next n = wisp__lq_fair_turn(q);
        n.flags |= LQ_TURN;
        if (n.task)
            return n;
        flags = n.flags;
    }
    if ((t = q->lifo)) { /* step 2 */
        q->lifo = NULL;
        if (++q->lifo_runs <= MAX_LIFO_RUNS)
            return (struct lq_next){ t, flags };
        wisp__lq_cap(q, t);
    }
    q->lifo_runs = 0;
    /* Step 3.  relaxed load: a hint; relaxed exchange: a task found there
     * is one we put (thieves only take). */
    if (atomic_load_explicit(&q->spawned, memory_order_relaxed) &&
        (t = atomic_exchange_explicit(&q->spawned, NULL, memory_order_relaxed)))
        return (struct lq_next){ t, flags };
    if ((t = wisp__deque_pop(&q->deque))) /* step 4 */
        return (struct lq_next){ t, flags };
    struct lq_next n = wisp__lq_refill(q); /* step 5 */
    if (!n.task)
        n = wisp__lq_take_private(q); /* steps 6, 7 */
    n.flags |= flags;
    return n;
}

/* Publishes the owner's pushes before it checks for parked workers (the
 * producer half of idle.c's no-lost-wakeup rule). */
void wisp__lq_offer(struct local_queue *q);

/* Shutdown, the owner gone: closes every task the queue holds. */
void wisp__lq_close_all(struct local_queue *q);

/* ---- other threads ---------------------------------------------------------- */

/* A thief (the owner of `into`) takes work from victim: up to half of its
 * deque, returning one task and queueing the rest in `into`; *taken says
 * how many.  A victim's only task is left alone unless `lone` says to take
 * it: LQ_LONE_SPAWNED for its spawn slot (with its deque empty),
 * LQ_LONE_DEQUE for the one task on its deque (worker.c's lone rule). */
#define LQ_LONE_SPAWNED 1u
#define LQ_LONE_DEQUE 2u
struct wisp_task *wisp__lq_steal(struct local_queue *into, struct local_queue *victim,
                                 unsigned lone, size_t *taken);

/* The owner, as each poll starts and as it ends; relaxed: a hint for
 * thieves (worker.c's lone rule), which no wakeup or ownership depends on. */
static inline void lq_count_poll(struct local_queue *q)
{
    uint32_t n = atomic_load_explicit(&q->polls, memory_order_relaxed);
    atomic_store_explicit(&q->polls, n + 1, memory_order_relaxed);
}

/* Any thread: the owner's poll count (relaxed, a hint). */
static inline uint32_t lq_polls(const struct local_queue *q)
{
    return atomic_load_explicit(&q->polls, memory_order_relaxed);
}

/* Any thread: whether the deque or the spawn slot holds work (seq_cst: the
 * parker half of idle.c's no-lost-wakeup rule). */
bool wisp__lq_has_work(struct local_queue *q);

#endif /* WISP_LOCAL_QUEUE_H */
