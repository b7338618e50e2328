/* worker.c - the worker loop and where scheduled tasks go.
 *
 * Owns: each worker's local queue (deque bottom, LIFO slot, spawn slot,
 * deferred list), its searching flag and tick, and the calling thread's
 * worker pointer.  Touches: other workers' deques (top only) and spawn slots
 * by stealing, the injector, idle.c's counters.
 *
 * The local queue is two one-task slots in front of the Chase-Lev deque.  A
 * task woken by a poll on this worker goes into the private LIFO slot and
 * runs as soon as that poll returns, with no atomic operation to queue or
 * take it (a ping-pong pair stays on one core, as with Tokio's LIFO slot); a
 * spawned task goes into the spawn slot, which thieves may take, like Go's
 * runnext: one exchange puts it (and publishes it for the no-lost-wakeup
 * check), one takes it, where the deque would need three atomic operations.
 * A task either slot displaces goes onto the deque.
 *
 * Order of work: every FAIRNESS_TICKS tasks the injector first, then the
 * deque, so neither outside work nor local work starves behind a chain of
 * tasks running through the slots; otherwise the LIFO slot (at most
 * MAX_SLOT_RUNS times in a row), the spawn slot, the deque (LIFO, for cache
 * locality), the injector; tasks that woke themselves (wisp_yield), which
 * wait on a deferred list behind the work that is ready now; then stealing;
 * then a bounded spin; then parking. */
#include <stdlib.h>

#include "clock.h"
#include "runtime.h"
#include "task.h"

#define FAIRNESS_TICKS 61
/* Consecutive runs from the LIFO slot before its task must wait its turn. */
#define MAX_SLOT_RUNS 3
#define INJECTOR_BATCH_MAX 64
/* A searching worker spins this long before parking: long enough that a
 * busy worker's next wake usually finds it still searching (no futex wake
 * needed), short enough to cost nothing measurable when idle. */
#define SEARCH_NS 50000
/* A victim's only task is stolen once we have searched this long: it is
 * most likely the next task its owner runs (the next link of a chain). */
#define LONE_STEAL_NS 5000
/* Pause between search rounds: a searcher that re-reads the victims' deque
 * indices too eagerly pulls their cache lines away from their owners. */
#define SPIN_PAUSES 256

static WISP_TLS struct worker *current_worker;

struct worker *wisp__worker_current(void)
{
    return current_worker;
}

/* ---- queueing ------------------------------------------------------------- */

static void close_chain(struct wisp_task *t)
{
    while (t) {
        struct wisp_task *next = t->next;
        wisp__task_close_queued(t);
        t = next;
    }
}

/* A full deque moves its older half, plus t, to the injector in one lock. */
static void worker_overflow(struct worker *w, struct wisp_task *t)
{
    for (;;) {
        size_t n = wisp__deque_take_half(&w->deque, w->scratch);
        if (n == 0) { /* a thief made room */
            if (wisp__deque_push(&w->deque, t))
                return;
            continue;
        }
        for (size_t i = 0; i + 1 < n; i++)
            w->scratch[i]->next = w->scratch[i + 1];
        w->scratch[n - 1]->next = t;
        METRIC_ADD(&w->metrics, overflows, n + 1);
        if (!wisp__injector_push_chain(&w->rt->injector, w->scratch[0], t, n + 1, FROM_OVERFLOW)) {
            t->next = NULL;
            close_chain(w->scratch[0]);
        }
        return;
    }
}

static void worker_push(struct worker *w, struct wisp_task *t)
{
    if (!wisp__deque_push(&w->deque, t))
        worker_overflow(w, t);
}

bool wisp__runtime_outside_enter(struct wisp_runtime *rt)
{
    struct worker *w = current_worker;
    if (w && w->rt == rt)
        return false;
    /* seq_cst: pairs with wisp_runtime_free's seq_cst shutdown store and
     * load of this count: either we see the shutdown flag after entering,
     * or free sees us inside and waits. */
    atomic_fetch_add_explicit(&rt->outside_inflight, 1, memory_order_seq_cst);
    return true;
}

void wisp__runtime_outside_exit(struct wisp_runtime *rt)
{
    /* release: our last touch of rt happens before wisp_runtime_free's
     * acquire load that lets it free rt. */
    atomic_fetch_sub_explicit(&rt->outside_inflight, 1, memory_order_release);
}

/* A spawn's caller (wisp_spawn) has entered already.  A wake enters here:
 * its task is listed in the registry, which keeps rt alive until the task
 * is unlisted, and entering covers the unpark that follows the push. */
static void schedule_outside(struct wisp_runtime *rt, struct wisp_task *t, bool spawn)
{
    if (!spawn)
        wisp__runtime_outside_enter(rt);
    TRACE(rt, NULL, spawn ? TRACE_SPAWN : TRACE_WAKE, t, -1);
    if (wisp__injector_push(&rt->injector, t, spawn ? FROM_OUTSIDE_SPAWN : FROM_OUTSIDE_WAKE))
        wisp__idle_notify_one(&rt->idle);
    else /* shutting down: close it ourselves (we own its run reference) */
        wisp__task_close_queued(t);
    if (!spawn)
        wisp__runtime_outside_exit(rt);
}

/* After pushing to our deque: wake an idle worker if none is searching. */
static void worker_offer(struct worker *w)
{
    wisp__deque_publish(&w->deque);
    wisp__idle_notify_one(&w->rt->idle);
}

void wisp__worker_schedule(struct wisp_runtime *rt, struct wisp_task *t, bool spawn)
{
    struct worker *w = current_worker;
    if (!w || w->rt != rt) {
        schedule_outside(rt, t, spawn);
        return;
    }
    TRACE(rt, w, spawn ? TRACE_SPAWN : TRACE_WAKE, t, w->index);
    /* A spawn offers the work at once (the contract: queued work never
     * waits for a busy worker's poll). */
    if (spawn) {
        METRIC_ADD(&w->metrics, spawns, 1);
        /* seq_cst: like wisp__deque_publish, orders the new task before the
         * check of idle workers below (idle.c's Dekker pattern); release
         * for thieves, whose acquire CAS takes the slot. */
        struct wisp_task *displaced =
            atomic_exchange_explicit(&w->spawned, t, memory_order_seq_cst);
        /* The displaced task gets a plain push: a parking worker's check
         * sees the slot's new task, which is enough to keep it awake.  Only
         * if a thief took that task first could a third worker park without
         * seeing this one; then it waits for the thief or for us, never
         * lost.  A seq_cst publish here would cost every spawn an RMW. */
        if (displaced)
            worker_push(w, displaced);
        wisp__idle_notify_one(&rt->idle);
        return;
    }
    /* A wake waits for the poll to end: unparking a worker costs a futex
     * wake (3-80 us on a VM) inside the waker's poll, and a lone woken task
     * is simply this worker's next one. */
    METRIC_ADD(&w->metrics, wakes, 1);
    struct wisp_task *displaced = w->next;
    w->next = t;
    if (displaced) {
        worker_push(w, displaced);
        w->wake_pending = true;
    }
}

/* After a poll that pushed woken tasks to our deque: offer them to an
 * idle worker (the slot holds the one we run next). */
static void worker_after_poll(struct worker *w)
{
    if (!w->wake_pending)
        return;
    w->wake_pending = false;
    worker_offer(w);
}

/* ---- finding work --------------------------------------------------------- */

static uint64_t next_random(struct worker *w)
{
    /* xorshift64* */
    uint64_t x = w->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    w->rng = x;
    return x * UINT64_C(0x2545F4914F6CDD1D);
}

/* Takes a batch from the injector: returns the first, queues the rest
 * locally where other workers can steal them. */
static struct wisp_task *worker_pop_injector(struct worker *w)
{
    struct wisp_runtime *rt = w->rt;
    size_t len = injector_len(&rt->injector);
    if (!len)
        return NULL;
    size_t want = len / rt->nworkers + 1;
    size_t room = wisp__deque_capacity(&w->deque) / 2;
    if (want > room)
        want = room;
    if (want > INJECTOR_BATCH_MAX)
        want = INJECTOR_BATCH_MAX;
    size_t n;
    struct wisp_task *first = wisp__injector_pop_batch(&rt->injector, want, &n);
    if (!first)
        return NULL;
    METRIC_ADD(&w->metrics, injector_pops, n);
    for (struct wisp_task *t = first->next; t;) {
        struct wisp_task *next = t->next;
        worker_push(w, t);
        t = next;
    }
    if (n > 1)
        worker_offer(w);
    return first;
}

/* Moves the deferred (self-woken) tasks onto the deque, oldest on top of
 * the bottom so it runs first.  false if there were none. */
static bool worker_flush_deferred(struct worker *w)
{
    struct wisp_task *t = w->deferred;
    if (!t)
        return false;
    w->deferred = NULL;
    /* The stack holds the newest first: pushing in that order leaves the
     * oldest at the bottom, which the owner pops next. */
    bool several = t->next != NULL;
    while (t) {
        struct wisp_task *next = t->next;
        worker_push(w, t);
        t = next;
    }
    if (several)
        worker_offer(w);
    return true;
}

static void worker_count_steal(struct worker *w, struct worker *victim, size_t taken)
{
    METRIC_ADD(&w->metrics, steals, 1);
    METRIC_ADD(&w->metrics, tasks_stolen, taken);
    TRACE(w->rt, w, TRACE_STEAL, victim->index, taken);
}

/* A victim's spawn slot: its next task, taken only when nothing else is. */
static struct wisp_task *steal_spawned(struct worker *victim)
{
    /* acquire: pairs with the owner's exchange that put the task there. */
    struct wisp_task *t = atomic_load_explicit(&victim->spawned, memory_order_acquire);
    /* acq_rel: the owner's and other thieves' exchanges race us for it. */
    if (t && atomic_compare_exchange_strong_explicit(&victim->spawned, &t, NULL,
                                                     memory_order_acq_rel, memory_order_relaxed))
        return t;
    return NULL;
}

/* Steals from a random victim onwards; takes up to half of the victim's
 * deque (each task by its own CAS), returning one and queueing the rest
 * here.  Unless take_lone, a victim's only task (the last in its deque, or
 * its spawn slot) is left alone: it is most likely the task its owner runs
 * next (the next link of a chain), and taking it would only move the work
 * to another core.  Go's runqsteal treats runnext the same way. */
static struct wisp_task *worker_steal(struct worker *w, bool take_lone)
{
    struct wisp_runtime *rt = w->rt;
    unsigned n = rt->nworkers;
    unsigned start = (unsigned)(next_random(w) % n);
    for (unsigned i = 0; i < n; i++) {
        struct worker *victim = rt->workers[(start + i) % n];
        if (victim == w)
            continue;
        METRIC_ADD(&w->metrics, steal_attempts, 1);
        size_t len = wisp__deque_len(&victim->deque);
        if (len == 0 && take_lone) {
            struct wisp_task *t = steal_spawned(victim);
            if (t) {
                worker_count_steal(w, victim, 1);
                return t;
            }
        }
        if (len == 0 || (!take_lone && len < 2))
            continue;
        struct wisp_task *first = NULL;
        enum steal_result r;
        do
            r = wisp__deque_steal(&victim->deque, &first);
        while (r == STEAL_RETRY);
        if (r != STEAL_OK)
            continue;
        size_t taken = 1, extra = wisp__deque_len(&victim->deque) / 2;
        for (size_t k = 0; k < extra; k++, taken++) {
            struct wisp_task *t;
            if (wisp__deque_steal(&victim->deque, &t) != STEAL_OK)
                break;
            worker_push(w, t);
        }
        worker_count_steal(w, victim, taken);
        return first;
    }
    return NULL;
}

/* Looks for work for at most SEARCH_NS, then gives up (the caller parks). */
static struct wisp_task *worker_search(struct worker *w)
{
    if (!w->searching) {
        if (!wisp__idle_begin_search(&w->rt->idle))
            return NULL;
        w->searching = true;
    }
    uint64_t start = clock_now_ns(), elapsed = 0;
    while (elapsed < SEARCH_NS) {
        struct wisp_task *t = worker_steal(w, elapsed >= LONE_STEAL_NS);
        if (!t)
            t = worker_pop_injector(w);
        if (t)
            return t;
        if (runtime_is_shutdown(w->rt))
            return NULL;
        for (int i = 0; i < SPIN_PAUSES; i++)
            cpu_relax();
        elapsed = clock_now_ns() - start;
    }
    return NULL;
}

static void worker_defer(struct worker *w, struct wisp_task *t)
{
    t->next = w->deferred;
    w->deferred = t;
}

static struct wisp_task *worker_next_task(struct worker *w)
{
    struct wisp_task *t;
    if (++w->tick % FAIRNESS_TICKS == 0) {
        metrics_publish(&w->metrics);
        worker_flush_deferred(w);
        /* The deque's turn too: a chain of tasks running through the slots
         * (each waking or spawning the next) would otherwise keep what waits
         * on the deque from ever running.  Its bottom, not its top, so a
         * fork-join tree keeps its depth-first order. */
        if ((t = worker_pop_injector(w)) || (t = wisp__deque_pop(&w->deque)))
            return t;
    }
    if ((t = w->next)) {
        w->next = NULL;
        /* Tasks waking each other through the slot would starve the rest:
         * after a few runs in a row the slot task waits like a yield. */
        if (++w->slot_runs <= MAX_SLOT_RUNS)
            return t;
        worker_defer(w, t);
    }
    w->slot_runs = 0;
    /* relaxed load: only a hint; the exchange decides.  relaxed exchange:
     * a task we find there is one we put (thieves only take). */
    if (atomic_load_explicit(&w->spawned, memory_order_relaxed) &&
        (t = atomic_exchange_explicit(&w->spawned, NULL, memory_order_relaxed)))
        return t;
    if ((t = wisp__deque_pop(&w->deque)))
        return t;
    if ((t = worker_pop_injector(w)))
        return t;
    if (worker_flush_deferred(w) && (t = wisp__deque_pop(&w->deque)))
        return t;
    return worker_search(w);
}

/* ---- the loop ------------------------------------------------------------- */

bool wisp__worker_any_work(struct wisp_runtime *rt)
{
    if (injector_len(&rt->injector))
        return true;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct worker *w = rt->workers[i];
        /* seq_cst: pairs with the spawner's seq_cst exchange (idle.c). */
        if (wisp__deque_len(&w->deque) || atomic_load_explicit(&w->spawned, memory_order_seq_cst))
            return true;
    }
    return false;
}

static void worker_end_search(struct worker *w)
{
    w->searching = false;
    /* The last searcher to find work hands the search on, so that further
     * queued work finds a worker (Tokio's and Go's ramp-up). */
    if (wisp__idle_end_search(&w->rt->idle) && wisp__worker_any_work(w->rt))
        wisp__idle_notify_one(&w->rt->idle);
}

/* Busy time is the time between unparking and parking again. */
static void worker_count_busy(struct worker *w, bool parking)
{
#if WISP_METRICS
    uint64_t now = clock_now_ns();
    if (parking) {
        METRIC_ADD(&w->metrics, busy_ns, now - w->metrics.busy_since);
        METRIC_ADD(&w->metrics, parks, 1);
        metrics_publish(&w->metrics); /* exact while we sleep */
    } else {
        w->metrics.busy_since = now;
        METRIC_ADD(&w->metrics, unparks, 1);
    }
#else
    (void)w, (void)parking;
#endif
}

static void worker_park(struct worker *w)
{
    struct wisp_runtime *rt = w->rt;
    wisp__idle_park_prepare(&rt->idle, w, w->searching);
    w->searching = false;
    /* The last check (see idle.c): work queued before a producer could see
     * us parked, or shutdown. */
    if (wisp__worker_any_work(rt) || w->deferred || w->next || runtime_is_shutdown(rt)) {
        wisp__idle_park_cancel(&rt->idle, w);
    } else {
        worker_count_busy(w, true);
        TRACE(rt, w, TRACE_PARK, 0, 0);
        wisp__idle_park_wait(w);
        TRACE(rt, w, TRACE_UNPARK, 0, 0);
        worker_count_busy(w, false);
    }
    w->searching = true; /* whoever unparked us counted us as searching */
}

void *wisp__worker_main(void *arg)
{
    struct worker *w = arg;
    struct wisp_runtime *rt = w->rt;
    current_worker = w;
    w->metrics.busy_since = clock_now_ns();
    while (!runtime_is_shutdown(rt)) {
        struct wisp_task *t = worker_next_task(w);
        if (!t) {
            worker_park(w);
            continue;
        }
        if (w->searching)
            worker_end_search(w);
        METRIC_ADD(&w->metrics, polls, 1);
        if (wisp__task_run(t)) { /* woken during its poll (wisp_yield): a local wake */
            METRIC_ADD(&w->metrics, wakes, 1);
            worker_defer(w, t);
        }
        worker_after_poll(w);
    }
    current_worker = NULL;
    wisp__task_cache_drain(&w->cache);
    return NULL;
}

void wisp__worker_close_injector(struct wisp_runtime *rt)
{
    close_chain(wisp__injector_close(&rt->injector));
}

void wisp__worker_close_queued(struct worker *w)
{
    /* The worker has exited: this thread is now the deque's owner. */
    struct wisp_task *t;
    if (w->next)
        wisp__task_close_queued(w->next);
    w->next = NULL;
    /* relaxed: the worker thread has been joined. */
    if ((t = atomic_exchange_explicit(&w->spawned, NULL, memory_order_relaxed)))
        wisp__task_close_queued(t);
    close_chain(w->deferred);
    w->deferred = NULL;
    while ((t = wisp__deque_pop(&w->deque)))
        wisp__task_close_queued(t);
}
