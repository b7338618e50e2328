/* runtime.c - creating and freeing a runtime, block_on, and the queries
 * (current runtime, worker index, worker count).
 *
 * Owns: struct wisp_runtime's lifetime, its configuration, its workers'
 * threads, the count of outside threads inside it, the shutdown sequence,
 * and the calling thread's block_on runtime.
 *
 * THE SHUTDOWN SEQUENCE (wisp_runtime_free)
 *
 *   1. Refuse spawns: CAS the shutdown flag false -> true (seq_cst; one of
 *      two racing frees wins, the other gets -EINVAL).
 *   2. Unpark every worker and join them.  Each finishes the poll it is in
 *      (a READY there completes the task normally) and leaves its loop at
 *      the next check of the flag; what its local queue holds stays there.
 *      Before its thread exits it cancels the I/O operations in flight on
 *      its driver and waits for their completions, then closes the driver's
 *      remote queue (io_uring.c, io_epoll.c): from then on no completion can
 *      arrive, and a request sent there is answered by its sender.
 *   2b. Close the blocking pool (blocking.c): queued jobs are closed, running
 *      ones finish, its threads exit.
 *   3. Close the injector: later pushes fail.  Close the tasks it held.
 *   4. Close what every worker's local queue holds (this thread owns the
 *      queues now; local_queue.c).
 *   5. Close every idle task through the registry (registry.c), waiting for
 *      the tasks other threads are closing at that moment.  Then detach the
 *      timers still armed (their futures live outside any task: they will
 *      report -ESHUTDOWN).
 *   6. Wait until no outside thread is inside the runtime (outside_inflight
 *      reaches 0).
 *   7. Free the runtime and everything it owns, the I/O drivers' memory
 *      last of all the shared parts (other threads may unpark a driver or
 *      give it buffers back until step 6).
 * "Close" is task.c's: the future is dropped exactly once, the join handle
 * reports -ECANCELED, an awaiter is woken.
 *
 * What may race it, case by case:
 *   - A spawn from an outside thread enters outside_inflight (seq_cst RMW)
 *     and then reads the flag (seq_cst load): with step 1's CAS and step
 *     6's seq_cst load of the count this is a Dekker pair, so either the
 *     spawn sees the flag and returns -ESHUTDOWN, or step 6 sees the spawn
 *     inside and waits for it; a spawn that got in pushes to the injector,
 *     or, after step 3, finds it closed and closes its own task.
 *   - A spawn on a worker happens during a poll of step 2: its task goes to
 *     that worker's local queue and is closed in step 4.  A spawn from a
 *     drop function that shutdown runs sees the flag: -ESHUTDOWN.
 *   - A wake from a worker (step 2) queues locally: step 4.  A wake from an
 *     outside thread enters outside_inflight, then pushes to the injector:
 *     before step 3 the task is closed there; after, the push fails and the
 *     waker closes the task itself (it holds the run reference).  Meanwhile
 *     the task is SCHEDULED, so step 5 cannot claim it and waits for it to
 *     leave the registry.
 *   - An abort of an idle task claims it (RUNNING|CLOSED) and closes it on
 *     the aborting thread; step 5 waits for it the same way.  An abort of a
 *     queued or running task only marks it CLOSED; its owner (a worker in
 *     step 2, or steps 3-4) closes it.
 *   - A drop function that shutdown runs may wake, abort or drop anything;
 *     a wisp_runtime_free from it returns -EINVAL (the flag is set) or
 *     -EDEADLK (task.c knows whose task this thread is closing).
 *   - Closes that cause closes (a finish waking an awaiter whose queueing
 *     fails, a drop function aborting another task) do not nest on the
 *     stack: task.c queues them on a per-thread list that the outermost
 *     close drains, so any chain closes in bounded stack.
 *   - Wakers outliving the runtime: a task never touches its runtime once
 *     it is FINISHED and unlisted, so such wakers only touch their task. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "fault.h"
#include "io.h"
#include "parker.h"
#include "runtime.h"
#include "task.h"
#include "util.h"

#define DEFAULT_QUEUE_CAPACITY 256
#define MAX_QUEUE_CAPACITY (1u << 24)
#define DEFAULT_RING_ENTRIES 256
#define MAX_RING_ENTRIES 32768
#define DEFAULT_BLOCKING_THREADS 512
#define DEFAULT_BLOCKING_KEEPALIVE_NS (UINT64_C(10) * 1000000000)

static WISP_TLS wisp_runtime_t *block_on_runtime;

static unsigned online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

/* ---- configuration ------------------------------------------------------------ */

/* Reads the caller's config of `size` bytes (what its header called
 * sizeof(wisp_runtime_config_t)) into *out, with defaults for what it does
 * not have.  Fields this library does not know must be zero. */
static int config_read(wisp_runtime_config_t *out, const wisp_runtime_config_t *cfg, size_t size)
{
    memset(out, 0, sizeof(*out));
    if (cfg) {
        if (size < sizeof(cfg->workers))
            return -EINVAL;
        size_t known = sizeof(*out);
        for (size_t i = known; i < size; i++)
            if (((const unsigned char *)cfg)[i])
                return -EINVAL; /* a field from a newer header, set */
        memcpy(out, cfg, size < known ? size : known);
    }
    if (out->workers > WISP_MAX_WORKERS)
        return -EINVAL;
    if (out->workers == 0)
        out->workers = online_cpus() < WISP_MAX_WORKERS ? online_cpus() : WISP_MAX_WORKERS;
    if (out->queue_capacity == 0)
        out->queue_capacity = DEFAULT_QUEUE_CAPACITY;
    if (out->queue_capacity < 2 || out->queue_capacity > MAX_QUEUE_CAPACITY ||
        (out->queue_capacity & (out->queue_capacity - 1)))
        return -EINVAL;
    if (out->stack_size && out->stack_size < (size_t)PTHREAD_STACK_MIN)
        return -EINVAL;
    if (out->cpus > WISP_CPUS_OS || out->io > WISP_IO_EPOLL)
        return -EINVAL;
    if (out->ring_entries > MAX_RING_ENTRIES)
        return -EINVAL;
    if (!out->ring_entries)
        out->ring_entries = DEFAULT_RING_ENTRIES;
    if (!out->blocking_threads)
        out->blocking_threads = DEFAULT_BLOCKING_THREADS;
    if (!out->blocking_keepalive_ns)
        out->blocking_keepalive_ns = DEFAULT_BLOCKING_KEEPALIVE_NS;
    if (!out->thread_name)
        out->thread_name = "wisp";
    return 0;
}

/* ---- workers ---------------------------------------------------------------- */

static void worker_free(struct worker *w)
{
    if (!w)
        return;
    wisp__lq_destroy(&w->queue);
    alloc_free(w->watch);
    alloc_free(w);
}

static struct worker *worker_new(struct wisp_runtime *rt, unsigned index)
{
    struct worker *w = alloc_zeroed(1, sizeof(*w), _Alignof(struct worker));
    if (!w)
        return NULL;
    w->rt = rt;
    w->index = index;
    w->rng = UINT64_C(0x9E3779B97F4A7C15) * (index + 1) | 1;
    wisp__futex_driver_init(&w->futex);
    w->driver = &w->futex.base;
    wisp__idle_slot_init(&w->idle, w->driver);
    wisp__timer_wheel_init(&w->timers, rt->epoch_ns, w->driver);
    w->watch = alloc_zeroed(rt->nworkers, sizeof(*w->watch), 0);
    if (!w->watch || wisp__lq_init(&w->queue, rt->config.queue_capacity, &rt->injector,
                                   rt->nworkers, &w->metrics) != 0) {
        alloc_free(w->watch);
        alloc_free(w);
        return NULL;
    }
    return w;
}

/* Frees what wisp_runtime_new_sized built, in reverse; the workers are stopped. */
static void runtime_destroy(struct wisp_runtime *rt, int stage)
{
    if (stage >= 6)
        wisp__io_runtime_destroy(rt);
    if (rt->workers)
        for (unsigned i = 0; i < rt->nworkers; i++)
            worker_free(rt->workers[i]);
    alloc_free(rt->workers);
    if (stage >= 5)
        wisp__blocking_destroy(&rt->blocking);
    if (stage >= 4) {
        wisp__trace_runtime_destroy(rt);
        pthread_mutex_destroy(&rt->trace_lock);
    }
    if (stage >= 3)
        wisp__injector_destroy(&rt->injector);
    if (stage >= 2)
        wisp__idle_destroy(&rt->idle);
    if (stage >= 1)
        wisp__registry_destroy(&rt->registry);
    wisp__kind_table_destroy(&rt->kinds);
    alloc_free(rt);
}

/* Steps 2 (and the unwinding of a failed start): the flag is set. */
static void runtime_stop_workers(struct wisp_runtime *rt)
{
    wisp__idle_unpark_all(&rt->idle);
    for (unsigned i = 0; i < rt->nworkers; i++)
        if (rt->workers[i]->started)
            pthread_join(rt->workers[i]->thread, NULL);
}

static int runtime_start_workers(struct wisp_runtime *rt)
{
    pthread_attr_t attr;
    int err = fault_thread() ? EAGAIN : pthread_attr_init(&attr);
    if (err)
        return -err;
    if (rt->config.stack_size)
        err = pthread_attr_setstacksize(&attr, rt->config.stack_size);
    for (unsigned i = 0; i < rt->nworkers && !err; i++) {
        struct worker *w = rt->workers[i];
        err = fault_thread() ? EAGAIN : pthread_create(&w->thread, &attr, wisp__worker_main, w);
        w->started = !err;
        if (!err) { /* named before wisp_runtime_new returns; best effort: a debugging aid */
            char name[16];
            snprintf(name, sizeof(name), "%s-%u", rt->config.thread_name, w->index);
            pthread_setname_np(w->thread, name);
        }
    }
    pthread_attr_destroy(&attr);
    return -err;
}

int wisp_runtime_new_sized(wisp_runtime_t **out, const wisp_runtime_config_t *cfg, size_t size)
{
    static _Atomic uint64_t next_id = 1;
    if (!out)
        return -EINVAL;
    *out = NULL;
    wisp_runtime_config_t config;
    int err = config_read(&config, cfg, size);
    if (err)
        return err;
    unsigned n = config.workers;

    struct wisp_runtime *rt = alloc_zeroed(1, sizeof(*rt), _Alignof(struct wisp_runtime));
    if (!rt)
        return -ENOMEM;
    rt->config = config;
    rt->nworkers = n;
    rt->epoch_ns = clock_now_ns();
    /* relaxed: only uniqueness matters. */
    rt->id = atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed);
    atomic_init(&rt->shutdown, false);
    atomic_init(&rt->outside_inflight, 0);
    atomic_init(&rt->outside.cancelled, 0);
    atomic_init(&rt->tracing, false);
    atomic_init(&rt->trace, NULL);
    wisp__kind_table_init(&rt->kinds);

    int stage = 0;
    if ((err = wisp__registry_init(&rt->registry, n)))
        goto fail;
    stage = 1;
    if ((err = wisp__idle_init(&rt->idle, n)))
        goto fail;
    stage = 2;
    if ((err = wisp__injector_init(&rt->injector)))
        goto fail;
    stage = 3;
    if ((err = fault_mutex() ? -EAGAIN : -pthread_mutex_init(&rt->trace_lock, NULL)))
        goto fail;
    stage = 4;
    if ((err = wisp__blocking_init(&rt->blocking, rt, config.blocking_threads,
                                   config.blocking_keepalive_ns)))
        goto fail;
    stage = 5;
    err = -ENOMEM;
    rt->workers = alloc_zeroed(n, sizeof(*rt->workers), 0);
    if (!rt->workers)
        goto fail;
    for (unsigned i = 0; i < n; i++)
        if (!(rt->workers[i] = worker_new(rt, i)))
            goto fail;
    if ((err = wisp__io_runtime_init(rt)))
        goto fail;
    stage = 6;
    wisp__trace_runtime_created(rt);
    if ((err = runtime_start_workers(rt))) {
        /* relaxed: the workers read it after the unpark (idle.c's lock). */
        atomic_store_explicit(&rt->shutdown, true, memory_order_relaxed);
        runtime_stop_workers(rt);
        goto fail;
    }
    *out = rt;
    return 0;
fail:
    runtime_destroy(rt, stage);
    return err;
}

/* The function behind the header's macro: a caller that reaches it (through
 * a function pointer, or built before the config could grow) passed the
 * first layout, which had only `workers`. */
int(wisp_runtime_new)(wisp_runtime_t **rt, const wisp_runtime_config_t *cfg)
{
    return wisp_runtime_new_sized(rt, cfg, sizeof(cfg->workers));
}

/* ---- outside threads (steps 1 and 6) ---------------------------------------- */

bool wisp__runtime_outside_enter(struct wisp_runtime *rt)
{
    struct worker *w = wisp__worker_current();
    if (w && w->rt == rt)
        return false;
    /* seq_cst: the Dekker pair of step 1 with the shutdown CAS and step 6's
     * load of this count: either we see the flag after entering, or free
     * sees us inside and waits. */
    atomic_fetch_add_explicit(&rt->outside_inflight, 1, memory_order_seq_cst);
    return true;
}

void wisp__runtime_outside_exit(struct wisp_runtime *rt)
{
    /* release: our last touch of rt happens before step 6's load that lets
     * wisp_runtime_free free rt. */
    atomic_fetch_sub_explicit(&rt->outside_inflight, 1, memory_order_release);
}

/* ---- wisp_runtime_free ---------------------------------------------------------- */

int wisp_runtime_free(wisp_runtime_t *rt)
{
    if (!rt)
        return -EINVAL;
    struct worker *self = wisp__worker_current();
    if (self && self->rt == rt)
        return -EDEADLK;
    /* A second free (e.g. from a drop function shutdown runs). */
    if (runtime_is_shutdown(rt))
        return -EINVAL;
    /* Inside a drop function this thread runs for one of rt's tasks (an
     * abort, a wake that lost to shutdown): freeing would wait for it. */
    if (wisp__task_closing_runtime() == rt)
        return -EDEADLK;
    /* Step 1.  seq_cst: see the cases above. */
    bool expected = false;
    if (!atomic_compare_exchange_strong_explicit(&rt->shutdown, &expected, true,
                                                 memory_order_seq_cst, memory_order_relaxed))
        return -EINVAL;
    runtime_stop_workers(rt);                                /* step 2 */
    wisp__blocking_shutdown(&rt->blocking);                  /* step 2b */
    wisp__task_close_chain(wisp__injector_close(&rt->injector)); /* step 3 */
    for (unsigned i = 0; i < rt->nworkers; i++)              /* step 4 */
        wisp__lq_close_all(&rt->workers[i]->queue);
    wisp__registry_close_all(&rt->registry);                 /* step 5 */
    for (unsigned i = 0; i < rt->nworkers; i++)              /* ... and timers */
        wisp__timer_wheel_detach_all(&rt->workers[i]->timers);
    /* Step 6.  seq_cst: the other half of step 1's Dekker pair; acquire for
     * the release decrements in wisp__runtime_outside_exit. */
    while (atomic_load_explicit(&rt->outside_inflight, memory_order_seq_cst))
        sched_yield();
    wisp__trace_runtime_flush(rt);
    runtime_destroy(rt, 6);                                  /* step 7 */
    return 0;
}

/* ---- queries and block_on --------------------------------------------------------- */

unsigned wisp_runtime_workers(const wisp_runtime_t *rt)
{
    return rt ? rt->nworkers : 0;
}

wisp_runtime_t *wisp_runtime_current(void)
{
    struct worker *w = wisp__worker_current();
    return w ? w->rt : block_on_runtime;
}

int wisp_worker_index(void)
{
    struct worker *w = wisp__worker_current();
    return w ? (int)w->index : -1;
}

int wisp_block_on(wisp_runtime_t *rt, wisp_poll_fn poll, void *future, void **output)
{
    if (wisp__worker_current())
        return -EDEADLK;
    if (!poll)
        return -EINVAL;
    struct wisp__parker *p = wisp__parker_new();
    if (!p)
        return -ENOMEM;
    wisp_runtime_t *outer = block_on_runtime;
    block_on_runtime = rt;
    wisp_waker_t waker = wisp__parker_waker(p);
    wisp_context_t cx = wisp_context_from_waker(&waker);
    void *result = NULL;
    while (poll(future, &cx, &result) != WISP_READY)
        wisp__parker_park(p, DRIVER_FOREVER);
    block_on_runtime = outer;
    wisp__parker_release(p);
    if (output)
        *output = result;
    return 0;
}
