/* local_queue.c - a worker's local queue (see local_queue.h).
 *
 * Owns: struct local_queue.  Touches: the runtime's injector (overflow,
 * refills), the deque (deque.c owns its protocol), the tasks' next links
 * while they sit in a private list or move to the injector, and
 * task.c's close on shutdown.
 *
 * THE LOCAL QUEUE
 *
 *   part      written by             read / taken by             ordering
 *   --------  ---------------------  --------------------------  ----------------------------
 *   lifo      owner (a wake during   owner                       plain: owner only
 *             a poll)
 *   spawned   owner (a spawn):       owner: relaxed exchange;    the put is seq_cst: it is
 *             seq_cst exchange       thieves: acq_rel CAS, only  the publish idle.c's rule
 *                                    after LONE_STEAL_NS         needs; acquire for thieves
 *   deque     owner: bottom push     owner: bottom pop (LIFO);   deque.c (Le et al. 2013);
 *             (release); publish     thieves: top steal (seq_cst wisp__lq_offer publishes
 *             (seq_cst RMW) before   CAS; its only task just     pushes before a wakeup
 *             offering               from an owner stuck in a    check
 *                                    poll: worker.c)
 *   capped    owner (a LIFO-slot     owner, when the rest of     plain: owner only
 *             task that ran          the queue is empty, or at
 *             MAX_LIFO_RUNS times)   a fairness turn
 *   yielded   owner (wisp_yield, or  owner, only once the deque  plain: owner only
 *             any self-wake)         and the capped list are
 *                                    empty
 *
 * Where displaced tasks go.  A wake that finds the LIFO slot taken moves
 * the older task to the deque bottom and the owner offers it to idle
 * workers once the poll returns (waking a worker inside the poll would cost
 * the poll a futex wake).  A spawn that finds the spawn slot taken moves the
 * older task to the deque bottom and publishes at once (wisp__lq_offer):
 * the spawn's offer to idle workers follows, and a parking worker that does
 * not see the slot's new task (a thief took it) must see the displaced one
 * (idle.c's table, row "displaced spawn").  A full deque moves its older
 * half, plus the new task, to the injector in one lock (deque.c says why
 * the deque does not grow).  The private lists move onto the deque when
 * their turn comes (all at once, oldest at the bottom so it runs first, the
 * rest stealable and offered).
 *
 * The order of pops (lq_pop, inline in local_queue.h; the steps out of the
 * fast path are here):
 *   1. every FAIRNESS_TICKS pops, a fairness turn: the capped list moves
 *      onto the deque; then the injector and the deque bottom, first one
 *      then the other, alternating from one turn to the next; if both are
 *      empty, the yielded list;
 *   2. the LIFO slot, at most MAX_LIFO_RUNS times in a row (then its task
 *      goes to the capped list);
 *   3. the spawn slot;
 *   4. the deque bottom (LIFO: a fork-join tree runs depth first, in cache,
 *      and its queue stays short);
 *   5. a batch from the injector (about a 1/nworkers share; the rest goes
 *      onto the deque, offered to idle workers);
 *   6. the capped list;
 *   7. the yielded list;
 *   8. nothing: the worker steals, then parks.
 *
 * wisp_yield's promise.  A yield (wisp__lq_push_yield) first moves what the
 * two slots hold onto the deque, then puts the yielder on the yielded list,
 * which is taken only when the deque and the capped list are empty (steps 1
 * and 7).  So a yielder runs again only after every task that was queued on
 * its worker when it yielded, however long a chain keeps the slots busy: a
 * chain running through the spawn slot reaches the deque at each fairness
 * turn, and the yielders behind it at the turns that find it empty.
 *
 * Fairness bound.  The injector gets a turn at least every 2 *
 * FAIRNESS_TICKS pops; the deque bottom too, so a chain through the slots
 * cannot keep the deque from running; a LIFO-slot chain (tasks waking each
 * other) gives way after MAX_LIFO_RUNS, and its task runs again at the
 * latest at the next turn.  Within the deque the order is LIFO: a task deep
 * in it waits while its owner keeps pushing newer ones (a fork-join tree's
 * own expansion); idle workers steal from the top, the oldest end. */
#include "local_queue.h"

#include <errno.h>

#include "alloc.h"
#include "injector.h"
#include "metrics.h"
#include "task.h"

/* Tasks taken from the injector at once, at most. */
#define INJECTOR_BATCH_MAX 64

int wisp__lq_init(struct local_queue *q, size_t capacity, struct injector *injector,
                  unsigned nworkers, struct worker_metrics *metrics)
{
    q->scratch = alloc_zeroed(capacity / 2, sizeof(*q->scratch), 0);
    if (!q->scratch)
        return -ENOMEM;
    int err = wisp__deque_init(&q->deque, capacity);
    if (err) {
        alloc_free(q->scratch);
        return err;
    }
    q->injector = injector;
    q->nworkers = nworkers;
    q->metrics = metrics;
    q->lifo = q->capped = q->yielded = NULL;
    q->countdown = FAIRNESS_TICKS;
    q->turns = 0;
    q->lifo_runs = 0;
    atomic_init(&q->spawned, NULL);
    atomic_init(&q->polls, 0);
    return 0;
}

void wisp__lq_destroy(struct local_queue *q)
{
    wisp__deque_destroy(&q->deque);
    alloc_free(q->scratch);
}

/* ---- pushing ---------------------------------------------------------------- */

static void close_chain(struct wisp_task *t)
{
    while (t) {
        struct wisp_task *next = t->next;
        wisp__task_close_queued(t);
        t = next;
    }
}

/* A full deque moves its older half, plus t, to the injector in one lock. */
static void lq_overflow(struct local_queue *q, struct wisp_task *t)
{
    for (;;) {
        size_t n = wisp__deque_take_half(&q->deque, q->scratch);
        if (n == 0) { /* a thief made room */
            if (wisp__deque_push(&q->deque, t))
                return;
            continue;
        }
        for (size_t i = 0; i + 1 < n; i++)
            q->scratch[i]->next = q->scratch[i + 1];
        q->scratch[n - 1]->next = t;
        METRIC_ADD(q->metrics, overflows, n + 1);
        if (!wisp__injector_push_chain(q->injector, q->scratch[0], t, n + 1, FROM_OVERFLOW)) {
            /* Closed: only at shutdown, after the workers are gone. */
            t->next = NULL;
            close_chain(q->scratch[0]);
        }
        return;
    }
}

static void lq_push(struct local_queue *q, struct wisp_task *t)
{
    if (!wisp__deque_push(&q->deque, t))
        lq_overflow(q, t);
}

void wisp__lq_offer(struct local_queue *q)
{
    wisp__deque_publish(&q->deque);
}

void wisp__lq_push_spawn(struct local_queue *q, struct wisp_task *t)
{
    /* seq_cst: publishes t for idle.c's check (row "spawn"); release for
     * the thieves whose acquire CAS takes the slot. */
    struct wisp_task *displaced = atomic_exchange_explicit(&q->spawned, t, memory_order_seq_cst);
    if (displaced) {
        lq_push(q, displaced);
        /* Row "displaced spawn": a thief may take t before a parking worker
         * looks, so the displaced task needs a publish of its own. */
        wisp__lq_offer(q);
    }
}

bool wisp__lq_push_wake(struct local_queue *q, struct wisp_task *t)
{
    struct wisp_task *displaced = q->lifo;
    q->lifo = t;
    if (!displaced)
        return false;
    lq_push(q, displaced);
    return true;
}

void wisp__lq_push_yield(struct local_queue *q, struct wisp_task *t)
{
    /* What the slots hold is ready now: it goes ahead of the yielder, onto
     * the deque.  No offer: the owner pops it next (step 4). */
    if (q->lifo) {
        lq_push(q, q->lifo);
        q->lifo = NULL;
    }
    struct wisp_task *s;
    /* relaxed: as in lq_pop's step 3. */
    if (atomic_load_explicit(&q->spawned, memory_order_relaxed) &&
        (s = atomic_exchange_explicit(&q->spawned, NULL, memory_order_relaxed)))
        lq_push(q, s);
    t->next = q->yielded;
    q->yielded = t;
}

/* ---- popping ------------------------------------------------------------------ */

/* Step 5 (and part of 1): a batch from the injector; the first is
 * returned, the rest queued here where other workers can steal them. */
struct lq_next wisp__lq_refill(struct local_queue *q)
{
    struct lq_next n = { NULL, 0 };
    size_t len = injector_len(q->injector);
    if (!len)
        return n;
    size_t want = len / q->nworkers + 1;
    size_t room = wisp__deque_capacity(&q->deque) / 2;
    if (want > room)
        want = room;
    if (want > INJECTOR_BATCH_MAX)
        want = INJECTOR_BATCH_MAX;
    size_t count;
    struct wisp_task *first = wisp__injector_pop_batch(q->injector, want, &count);
    if (!first)
        return n;
    METRIC_ADD(q->metrics, injector_pops, count);
    for (struct wisp_task *t = first->next; t;) {
        struct wisp_task *next = t->next;
        lq_push(q, t);
        t = next;
    }
    n.task = first;
    n.flags = count > 1 ? LQ_OFFER : 0;
    return n;
}

/* A private list moves onto the deque, oldest at the bottom; true if it
 * held anything. */
static bool lq_flush(struct local_queue *q, struct wisp_task **list, unsigned *flags)
{
    struct wisp_task *t = *list;
    if (!t)
        return false;
    *list = NULL;
    if (t->next)
        *flags |= LQ_OFFER;
    /* Newest first: pushing in that order leaves the oldest at the bottom. */
    while (t) {
        struct wisp_task *next = t->next;
        lq_push(q, t);
        t = next;
    }
    return true;
}

/* Step 2: a LIFO-slot task that ran MAX_LIFO_RUNS times in a row. */
void wisp__lq_cap(struct local_queue *q, struct wisp_task *t)
{
    t->next = q->capped;
    q->capped = t;
}

/* Steps 6 and 7 (the deque is empty): the capped list, else the yielded. */
struct lq_next wisp__lq_take_private(struct local_queue *q)
{
    struct lq_next n = { NULL, 0 };
    if (lq_flush(q, &q->capped, &n.flags) || lq_flush(q, &q->yielded, &n.flags))
        n.task = wisp__deque_pop(&q->deque);
    return n;
}

/* Step 1. */
struct lq_next wisp__lq_fair_turn(struct local_queue *q)
{
    bool injector_first = q->turns & 1;
    unsigned flags = 0;
    struct lq_next n = { NULL, 0 };
    lq_flush(q, &q->capped, &flags);
    if (injector_first)
        n = wisp__lq_refill(q);
    if (!n.task)
        n.task = wisp__deque_pop(&q->deque);
    if (!n.task && !injector_first)
        n = wisp__lq_refill(q);
    if (!n.task)
        n = wisp__lq_take_private(q);
    n.flags |= flags;
    return n;
}

void wisp__lq_close_all(struct local_queue *q)
{
    /* The owner is gone (joined): this thread owns the queue now. */
    struct wisp_task *t;
    if (q->lifo)
        wisp__task_close_queued(q->lifo);
    q->lifo = NULL;
    /* relaxed: the owner has been joined. */
    if ((t = atomic_exchange_explicit(&q->spawned, NULL, memory_order_relaxed)))
        wisp__task_close_queued(t);
    close_chain(q->capped);
    close_chain(q->yielded);
    q->capped = q->yielded = NULL;
    while ((t = wisp__deque_pop(&q->deque)))
        wisp__task_close_queued(t);
}

/* ---- stealing and the parking check ------------------------------------------ */

/* A victim's spawn slot: its next task, taken only when nothing else is. */
static struct wisp_task *steal_spawned(struct local_queue *victim)
{
    /* acquire: pairs with the owner's exchange that put the task there. */
    struct wisp_task *t = atomic_load_explicit(&victim->spawned, memory_order_acquire);
    /* acq_rel: the owner's and other thieves' exchanges race us for it. */
    if (t && atomic_compare_exchange_strong_explicit(&victim->spawned, &t, NULL,
                                                     memory_order_acq_rel, memory_order_relaxed))
        return t;
    return NULL;
}

struct wisp_task *wisp__lq_steal(struct local_queue *into, struct local_queue *victim,
                                 unsigned lone, size_t *taken)
{
    *taken = 0;
    size_t len = wisp__deque_len(&victim->deque);
    if (len == 0 && (lone & LQ_LONE_SPAWNED)) {
        struct wisp_task *t = steal_spawned(victim);
        if (t)
            *taken = 1;
        return t;
    }
    if (len == 0 || (len < 2 && !(lone & LQ_LONE_DEQUE)))
        return NULL;
    struct wisp_task *first = NULL;
    enum steal_result r;
    do
        r = wisp__deque_steal(&victim->deque, &first);
    while (r == STEAL_RETRY);
    if (r != STEAL_OK)
        return NULL;
    size_t n = 1, extra = wisp__deque_len(&victim->deque) / 2;
    for (size_t k = 0; k < extra; k++, n++) {
        struct wisp_task *t;
        if (wisp__deque_steal(&victim->deque, &t) != STEAL_OK)
            break;
        lq_push(into, t);
    }
    *taken = n;
    return first;
}

bool wisp__lq_has_work(struct local_queue *q)
{
    /* seq_cst: the parker half of idle.c's rule; pairs with the owner's
     * seq_cst exchange into the slot and its publish of the deque. */
    return wisp__deque_len(&q->deque) ||
           atomic_load_explicit(&q->spawned, memory_order_seq_cst) != NULL;
}
