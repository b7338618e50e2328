/* worker.c - the worker loop, and where a scheduled task goes.
 *
 * Owns: each worker's loop state (searching flag, wake_pending, victim
 * RNG) and the calling thread's worker pointer.  Touches: its own local
 * queue (local_queue.c owns that protocol and the order of work), other
 * workers' queues by stealing, the injector, idle.c's counters (idle.c owns
 * the no-lost-wakeup rule) and its parking driver.
 *
 * A worker runs tasks from its local queue until it is empty, then searches
 * (steals from other workers, then the injector) for at most SEARCH_NS,
 * then parks. */
#include <sched.h>
#include <stdlib.h>

#include "clock.h"
#include "io.h"
#include "runtime.h"
#include "task.h"

/* A searching worker spins this long before parking: long enough that a
 * busy worker's next wake usually finds it still searching (no futex wake
 * needed), short enough to cost nothing measurable when idle. */
#define SEARCH_NS 50000
/* The lone rule.  A victim's only task is most likely the next one its
 * owner runs, so a thief leaves it for LONE_STEAL_NS:
 *   - a task in its spawn slot (the next link of a chain, a new
 *     connection's task) is taken once the thief has searched this long:
 *     spawned work spreads, which is what the spawn rule is for (queued
 *     work never waits for a busy poll);
 *   - the one task on its deque (most often a task woken by the owner's
 *     I/O, whose next operations would go to the owner's ring too: moved
 *     away, each later completion costs a cross-CPU wakeup) is taken only
 *     from an owner stuck in one poll: inside a poll (its count odd) with
 *     the count unchanged for this long.  Owners between polls (reaping
 *     completions, or in the futex wake that offered the task: 3-80 us on
 *     a VM, long enough for the woken thief to take it from its waker) and
 *     owners getting on with their queue keep it: woken work stays. */
#define LONE_STEAL_NS 5000
/* Pause between search rounds: a searcher that re-reads the victims' deque
 * indices too eagerly pulls their cache lines away from their owners.
 * Each round ends with a sched_yield: a searcher keeps its CPU only while
 * nothing else wants it.  Where the machine has more runnable threads than
 * CPUs (a server beside its clients), a pure spin took the CPU from the
 * very threads whose requests it waits for: wisp-httpd under wrk -t1 -c64
 * on 2 CPUs spent 29 % of its time spinning and left wrk 84-91 % of a CPU
 * (67-73k requests/s); yielding gives wrk 99 % and 77k, as nginx, whose
 * workers sleep.  Alone on its CPU the yield returns at once. */
#define SPIN_PAUSES 256

static WISP_TLS struct worker *current_worker;

struct worker *wisp__worker_current(void)
{
    return current_worker;
}

/* ---- queueing ------------------------------------------------------------- */

/* A spawn's caller (wisp_spawn) has entered already.  A wake enters here:
 * its task is listed in the registry, which keeps rt alive until the task
 * is unlisted, and entering covers the unpark that follows the push. */
static void schedule_outside(struct wisp_runtime *rt, struct wisp_task *t, bool spawn)
{
    if (!spawn)
        wisp__runtime_outside_enter(rt);
    TRACE(rt, NULL, spawn ? TRACE_SPAWN : TRACE_WAKE, t, -1);
    if (wisp__injector_push(&rt->injector, t, spawn ? FROM_OUTSIDE_SPAWN : FROM_OUTSIDE_WAKE))
        wisp__idle_notify_one(&rt->idle); /* idle.c, row "outside spawn or wake" */
    else /* shutting down: the task is closed (we own its run reference) */
        wisp__task_close_queued(t);
    if (!spawn)
        wisp__runtime_outside_exit(rt);
}

void wisp__worker_schedule(struct wisp_runtime *rt, struct wisp_task *t, bool spawn)
{
    struct worker *w = current_worker;
    if (!w || w->rt != rt) {
        schedule_outside(rt, t, spawn);
        return;
    }
    TRACE(rt, w, spawn ? TRACE_SPAWN : TRACE_WAKE, t, w->index);
    if (spawn) {
        /* A spawn offers the work at once (the contract: queued work never
         * waits for a busy worker's poll); idle.c, rows "spawn" and
         * "displaced spawn". */
        METRIC_ADD(&w->metrics, spawns, 1);
        wisp__lq_push_spawn(&w->queue, t);
        wisp__idle_notify_one(&rt->idle);
        return;
    }
    /* A wake waits for the poll to end: unparking a worker costs a futex
     * wake (3-80 us on a VM) inside the waker's poll, and a lone woken task
     * is simply this worker's next one. */
    METRIC_ADD(&w->metrics, wakes, 1);
    if (wisp__lq_push_wake(&w->queue, t))
        w->wake_pending = true;
}

/* After pushing tasks to our deque: publish them and wake an idle worker
 * if none is searching (idle.c's table). */
static void worker_offer(struct worker *w)
{
    /* While we search, idle.c skips the wake (a searcher, us, exists):
     * worker_end_search hands the work on instead. */
    w->offered_in_search |= w->searching;
    wisp__lq_offer(&w->queue);
    wisp__idle_notify_one(&w->rt->idle);
}

/* After a poll or a reap whose wakes displaced tasks onto the deque.  Two
 * or more are offered; a lone one is left to us: a thief would take it only
 * if our next poll got stuck (the lone rule below), and the offer's futex
 * wake would cost this worker 3-80 us per wake in a pair of tasks that take
 * turns (a socket ping-pong: each message wakes both).  So a lone woken
 * task waits for our next poll to end unless a worker is searching anyway;
 * wakes make no promise beyond that (core-api.md: the spawn rule is for
 * spawns). */
static void worker_offer_wakes(struct worker *w)
{
    w->wake_pending = false;
    if (wisp__deque_len(&w->queue.deque) >= 2)
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

/* Fires the timers due now on this worker's wheel; true if any fired
 * (their tasks are queued here). */
static bool worker_fire_timers(struct worker *w)
{
    uint64_t now = clock_now_ns();
    return timer_due(&w->timers, now) && wisp__timer_advance(&w->timers, now) > 0;
}

/* Submits and reaps this worker's I/O (io.h); the tasks completions woke
 * are queued here.  True if any completion came. */
static bool worker_io(struct worker *w)
{
    if (!io_worker_poll(w->io))
        return false;
    if (w->wake_pending) /* wakes displaced tasks onto the deque */
        worker_offer_wakes(w);
    return true;
}

/* The periodic chores of a fairness turn. */
static void worker_turn(struct worker *w)
{
    metrics_publish(&w->metrics); /* metrics are at most FAIRNESS_TICKS pops old */
    worker_io(w);
    worker_fire_timers(w);
}

/* The local queue's next task, offering what it moved onto the deque.
 * Inlined: it is most of the loop's work between two polls. */
static inline __attribute__((always_inline)) struct wisp_task *worker_pop(struct worker *w)
{
    struct lq_next n = lq_pop(&w->queue);
    if (unlikely(n.flags)) {
        if (n.flags & LQ_OFFER)
            worker_offer(w);
        if (n.flags & LQ_TURN)
            worker_turn(w);
    }
    return n.task;
}

/* Whether victim has been inside one poll for LONE_STEAL_NS, as far as
 * this search has watched it (the lone rule above). */
static bool victim_stuck(struct worker *w, struct worker *victim, uint64_t now)
{
    struct lone_watch *lw = &w->watch[victim->index];
    uint32_t polls = lq_polls(&victim->queue);
    if (lw->since < w->search_start || lw->polls != polls) {
        lw->since = now;
        lw->polls = polls;
        return false;
    }
    return (polls & 1) && now - lw->since >= LONE_STEAL_NS;
}

/* Steals from a random victim onwards (local_queue.c says what is taken). */
static struct wisp_task *worker_steal(struct worker *w, uint64_t now)
{
    struct wisp_runtime *rt = w->rt;
    unsigned n = rt->nworkers;
    unsigned start = (unsigned)(next_random(w) % n);
    for (unsigned i = 0; i < n; i++) {
        struct worker *victim = rt->workers[(start + i) % n];
        if (victim == w)
            continue;
        METRIC_ADD(&w->metrics, steal_attempts, 1);
        size_t taken;
        /* The poll count is read only when it matters: its line is the
         * owner's, written twice a poll. */
        unsigned lone = now - w->search_start >= LONE_STEAL_NS ? LQ_LONE_SPAWNED : 0;
        if (wisp__deque_len(&victim->queue.deque) == 1 && victim_stuck(w, victim, now))
            lone |= LQ_LONE_DEQUE;
        struct wisp_task *t = wisp__lq_steal(&w->queue, &victim->queue, lone, &taken);
        if (t) {
            METRIC_ADD(&w->metrics, steals, 1);
            METRIC_ADD(&w->metrics, tasks_stolen, taken);
            TRACE(rt, w, TRACE_STEAL, victim->index, taken);
            return t;
        }
    }
    return NULL;
}

/* Looks for work for at most SEARCH_NS, then gives up (the caller parks):
 * as a searcher it steals; a worker that may not search (enough do) but
 * has I/O in flight on its own driver waits for its completions instead,
 * which only it can reap (an idle worker that sleeps at once would be
 * woken for them moments later, at the price of a wakeup). */
static struct wisp_task *worker_search(struct worker *w)
{
    if (!w->searching && wisp__idle_begin_search(&w->rt->idle))
        w->searching = true;
    bool steal = w->searching;
    if (!steal && !io_worker_expecting(w->io))
        return NULL;
    uint64_t start = clock_now_ns(), now = start;
    w->search_start = start;
    while (now - start < SEARCH_NS) {
        struct wisp_task *t = steal ? worker_steal(w, now) : NULL;
        if (!t)
            t = worker_pop(w); /* the injector */
        if (t)
            return t;
        if (runtime_is_shutdown(w->rt))
            return NULL;
        if (worker_io(w) && (t = worker_pop(w)))
            return t;
        /* Pause, looking at the I/O driver now and then: a completion for
         * one of our tasks is work only we can pick up. */
        for (int i = 0; i < SPIN_PAUSES && !(i % 16 == 0 && io_worker_ready(w->io)); i++)
            cpu_relax();
        sched_yield();
        now = clock_now_ns();
    }
    return NULL;
}

static struct wisp_task *worker_next_task(struct worker *w)
{
    struct wisp_task *t = worker_pop(w);
    if (!t) {
        bool io = worker_io(w), timers = worker_fire_timers(w);
        if (io || timers)
            t = worker_pop(w);
    }
    return t ? t : worker_search(w);
}

/* ---- the loop ------------------------------------------------------------- */

/* Work queued on the injector or on any worker's queue but skip's. */
static bool any_work_but(struct wisp_runtime *rt, const struct worker *skip)
{
    /* seq_cst loads throughout: R' of idle.c's table. */
    if (injector_len(&rt->injector))
        return true;
    for (unsigned i = 0; i < rt->nworkers; i++)
        if (rt->workers[i] != skip && wisp__lq_has_work(&rt->workers[i]->queue))
            return true;
    return false;
}

bool wisp__worker_any_work(struct wisp_runtime *rt)
{
    return any_work_but(rt, NULL);
}

/* wisp__worker_any_work, except that the one task on our own deque is ours
 * to run next, not work to hand on (a woken task kept there:
 * worker_offer_wakes), unless it came with an offer made while we searched
 * (an injector batch, whose wake idle.c skipped because we were the
 * searcher). */
static bool worker_work_for_others(struct worker *w)
{
    /* seq_cst loads throughout: R' of idle.c's table. */
    size_t own = wisp__deque_len(&w->queue.deque);
    return own >= 2 || (own == 1 && w->offered_in_search) ||
           atomic_load_explicit(&w->queue.spawned, memory_order_seq_cst) ||
           any_work_but(w->rt, w);
}

static void worker_end_search(struct worker *w)
{
    w->searching = false;
    /* The last searcher to find work hands the search on, so that further
     * queued work finds a worker (idle.c, row "last searcher"). */
    bool hand_on = wisp__idle_end_search(&w->rt->idle) && worker_work_for_others(w);
    w->offered_in_search = false;
    if (hand_on)
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
    struct local_queue *q = &w->queue;
    wisp__idle_park_prepare(&rt->idle, &w->idle, w->searching);
    w->searching = false;
    w->offered_in_search = false;
    /* The last check (R' of idle.c's table): work published before a
     * producer could see us parked, our own private slots, or shutdown. */
    if (wisp__worker_any_work(rt) || q->lifo || q->capped || q->yielded || runtime_is_shutdown(rt)) {
        wisp__idle_park_cancel(&rt->idle, &w->idle);
    } else {
        worker_count_busy(w, true);
        TRACE(rt, w, TRACE_PARK, 0, 0);
        /* Asleep until unparked, or until the earliest timer (timer.c: an
         * earlier one armed from elsewhere unparks us). */
        uint64_t deadline = wisp__timer_park_deadline(&w->timers);
        if (wisp__idle_park_wait(&w->idle, deadline) != DRIVER_UNPARKED)
            wisp__idle_park_cancel(&rt->idle, &w->idle);
        wisp__timer_unparked(&w->timers);
        TRACE(rt, w, TRACE_UNPARK, 0, 0);
        worker_count_busy(w, false);
    }
    w->searching = true; /* whoever unparked us counted us as searching */
    if (w->wake_pending) /* the driver's events woke tasks while we slept */
        worker_offer_wakes(w);
}

/* Puts the calling worker on its CPU (config.cpus): the index-th CPU of
 * the process's affinity mask.  Spread (the default) runs it there once and
 * gives the whole mask back: the scheduler then wakes it where it last ran,
 * so workers start out on distinct CPUs.  Without that, on machines whose
 * scheduler does not look for an idle CPU at wakeup (no shared last-level
 * cache in the topology, as on many VMs), workers woken by the same thread
 * queue up on its CPU for milliseconds while the others idle. */
static void worker_place(struct worker *w)
{
    if (w->rt->config.cpus == WISP_CPUS_OS)
        return;
    cpu_set_t all, one;
    if (sched_getaffinity(0, sizeof(all), &all) != 0 || CPU_COUNT(&all) < 2)
        return;
    int want = (int)(w->index % (unsigned)CPU_COUNT(&all)), cpu = -1;
    for (int c = 0, k = 0; c < CPU_SETSIZE && cpu < 0; c++)
        if (CPU_ISSET(c, &all) && k++ == want)
            cpu = c;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    /* best effort: a CPU refused (a cgroup change meanwhile) leaves it be */
    if (sched_setaffinity(0, sizeof(one), &one) == 0 && w->rt->config.cpus == WISP_CPUS_SPREAD)
        sched_setaffinity(0, sizeof(all), &all);
}

void *wisp__worker_main(void *arg)
{
    struct worker *w = arg;
    struct wisp_runtime *rt = w->rt;
    worker_place(w);
    current_worker = w;
    wisp__io_worker_start(w);
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
        lq_count_poll(&w->queue); /* odd: in a poll (the lone rule) */
        bool again = wisp__task_run(t, w);
        lq_count_poll(&w->queue);
        if (again) { /* woken during its poll (wisp_yield): a local wake */
            METRIC_ADD(&w->metrics, wakes, 1);
            wisp__lq_push_yield(&w->queue, t);
        }
        if (w->wake_pending) /* a wake displaced a task from the LIFO slot */
            worker_offer_wakes(w);
    }
    wisp__io_worker_stop(w); /* runtime.c, step 2: cancel and drain its I/O */
    current_worker = NULL;
    metrics_publish(&w->metrics);
    wisp__task_cache_drain(&w->cache);
    return NULL;
}
