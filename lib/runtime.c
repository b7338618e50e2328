/* runtime.c - creating and freeing a runtime, block_on, and the queries
 * (current runtime, worker index, worker count).
 *
 * Owns: struct wisp_runtime's lifetime, its workers' threads, the shutdown
 * sequence, and the calling thread's block_on runtime.
 *
 * Shutdown, in order: refuse spawns; wake and join the workers (each
 * finishes the poll it is in); close the injector and every worker queue,
 * closing the tasks they hold; close every remaining (idle) task through the
 * registry, waiting for tasks other threads are closing; wait for outside
 * threads still inside schedule_outside; free.  A task never touches its
 * runtime once it is FINISHED and unlisted, so wakers outliving the runtime
 * only ever touch their task. */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "parker.h"
#include "util.h"
#include "runtime.h"
#include "task.h"

#define DEFAULT_DEQUE_CAPACITY 256

static WISP_TLS wisp_runtime_t *block_on_runtime;

static unsigned online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

static void worker_free(struct worker *w)
{
    if (!w)
        return;
    wisp__deque_destroy(&w->deque);
    free(w->scratch);
    free(w);
}

static struct worker *worker_new(struct wisp_runtime *rt, unsigned index)
{
    struct worker *w = aligned_alloc(_Alignof(struct worker), sizeof(*w));
    if (!w)
        return NULL;
    memset(w, 0, sizeof(*w));
    w->rt = rt;
    w->index = index;
    w->rng = UINT64_C(0x9E3779B97F4A7C15) * (index + 1) | 1;
    atomic_init(&w->park_word, 1);
    atomic_init(&w->spawned, NULL);
    w->scratch = calloc(rt->wisp__deque_capacity / 2, sizeof(*w->scratch));
    if (!w->scratch || wisp__deque_init(&w->deque, rt->wisp__deque_capacity) != 0) {
        free(w->scratch);
        free(w);
        return NULL;
    }
    return w;
}

/* Frees what wisp__runtime_create built, in reverse; the workers are stopped. */
static void runtime_destroy(struct wisp_runtime *rt, int stage)
{
    if (rt->workers)
        for (unsigned i = 0; i < rt->nworkers; i++)
            worker_free(rt->workers[i]);
    free(rt->workers);
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
    free(rt);
}

static void runtime_stop_workers(struct wisp_runtime *rt)
{
    /* seq_cst: pairs with the workers' acquire loads and with the parking
     * workers' last check (idle.c). */
    atomic_store_explicit(&rt->shutdown, true, memory_order_seq_cst);
    wisp__idle_unpark_all(&rt->idle);
    for (unsigned i = 0; i < rt->nworkers; i++)
        if (rt->workers[i]->started)
            pthread_join(rt->workers[i]->thread, NULL);
}

static int runtime_start_workers(struct wisp_runtime *rt)
{
    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct worker *w = rt->workers[i];
        int err = pthread_create(&w->thread, NULL, wisp__worker_main, w);
        if (err)
            return -err;
        w->started = true;
    }
    return 0;
}

int wisp__runtime_create(struct wisp_runtime **out, const wisp_runtime_config_t *cfg,
                   size_t wisp__deque_capacity)
{
    static _Atomic uint64_t next_id = 1;
    if (!out)
        return -EINVAL;
    *out = NULL;
    unsigned n = cfg ? cfg->workers : 0;
    if (n > WISP_MAX_WORKERS)
        return -EINVAL;
    if (n == 0)
        n = online_cpus() < WISP_MAX_WORKERS ? online_cpus() : WISP_MAX_WORKERS;
    if (wisp__deque_capacity == 0)
        wisp__deque_capacity = DEFAULT_DEQUE_CAPACITY;
    if (wisp__deque_capacity < 2 || (wisp__deque_capacity & (wisp__deque_capacity - 1)))
        return -EINVAL;

    struct wisp_runtime *rt = aligned_alloc(_Alignof(struct wisp_runtime), sizeof(*rt));
    if (!rt)
        return -ENOMEM;
    memset(rt, 0, sizeof(*rt));
    rt->nworkers = n;
    rt->wisp__deque_capacity = wisp__deque_capacity;
    /* relaxed: only uniqueness matters. */
    rt->id = atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed);
    atomic_init(&rt->shutdown, false);
    atomic_init(&rt->outside_inflight, 0);
    atomic_init(&rt->outside.cancelled, 0);
    atomic_init(&rt->tracing, false);
    atomic_init(&rt->trace, NULL);
    wisp__kind_table_init(&rt->kinds);

    int err, stage = 0;
    if ((err = wisp__registry_init(&rt->registry, n)))
        goto fail;
    stage = 1;
    if ((err = wisp__idle_init(&rt->idle, n)))
        goto fail;
    stage = 2;
    if ((err = wisp__injector_init(&rt->injector)))
        goto fail;
    stage = 3;
    if ((err = -pthread_mutex_init(&rt->trace_lock, NULL)))
        goto fail;
    stage = 4;
    err = -ENOMEM;
    rt->workers = calloc(n, sizeof(*rt->workers));
    if (!rt->workers)
        goto fail;
    for (unsigned i = 0; i < n; i++)
        if (!(rt->workers[i] = worker_new(rt, i)))
            goto fail;
    wisp__trace_runtime_created(rt);
    if ((err = runtime_start_workers(rt))) {
        runtime_stop_workers(rt);
        goto fail;
    }
    *out = rt;
    return 0;
fail:
    runtime_destroy(rt, stage);
    return err;
}

int wisp_runtime_new(wisp_runtime_t **rt, const wisp_runtime_config_t *cfg)
{
    return wisp__runtime_create(rt, cfg, 0);
}

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
    bool expected = false;
    /* Of two frees racing, one wins.  seq_cst: pairs with the workers'
     * acquire loads, the parking workers' last check (idle.c) and the
     * outside threads' check in wisp__runtime_outside_enter. */
    if (!atomic_compare_exchange_strong_explicit(&rt->shutdown, &expected, true,
                                                 memory_order_seq_cst, memory_order_relaxed))
        return -EINVAL;
    runtime_stop_workers(rt);
    wisp__worker_close_injector(rt);
    for (unsigned i = 0; i < rt->nworkers; i++)
        wisp__worker_close_queued(rt->workers[i]);
    wisp__registry_close_all(&rt->registry);
    /* seq_cst (acquire at least): pairs with wisp__runtime_outside_enter's
     * seq_cst increment and wisp__runtime_outside_exit's release decrement. */
    while (atomic_load_explicit(&rt->outside_inflight, memory_order_seq_cst))
        sched_yield();
    wisp__trace_runtime_flush(rt);
    runtime_destroy(rt, 4);
    return 0;
}

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
    struct parker *p = wisp__parker_new();
    if (!p)
        return -ENOMEM;
    wisp_runtime_t *outer = block_on_runtime;
    block_on_runtime = rt;
    wisp_waker_t waker = wisp__parker_waker(p);
    wisp_context_t cx = wisp_context_from_waker(&waker);
    void *result = NULL;
    while (poll(future, &cx, &result) != WISP_READY)
        wisp__parker_park(p);
    block_on_runtime = outer;
    wisp__parker_release(p);
    if (output)
        *output = result;
    return 0;
}
