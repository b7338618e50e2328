/* idle.c - idle workers sleep on a futex; producers wake one (see idle.h).
 *
 * No lost wakeups: a producer queues work with a seq_cst store, then reads
 * counts seq_cst; a parking worker updates counts with a seq_cst RMW, then
 * reads every queue seq_cst (wisp__worker_any_work).  In the single total order
 * of those seq_cst accesses either the producer sees the worker parked and
 * wakes it, or the worker sees the work and does not sleep.
 *
 * No thundering herd: one worker is woken per notification, and none while
 * another is already searching; a searcher that finds work and was the last
 * one wakes the next (worker.c), so wakeups ramp up only as work allows.
 * An idle runtime sleeps in futex_wait with no timeout: it costs no CPU. */
#include "idle.h"

#include <errno.h>
#include <stdlib.h>

#include "futex.h"
#include "runtime.h"

#define ONE_SEARCHING UINT64_C(1)
#define ONE_UNPARKED (UINT64_C(1) << 32)

static unsigned searching_of(uint64_t c)
{
    return (unsigned)(c & 0xffffffffu);
}

static unsigned unparked_of(uint64_t c)
{
    return (unsigned)(c >> 32);
}

int wisp__idle_init(struct idle *idle, unsigned nworkers)
{
    idle->sleepers = calloc(nworkers, sizeof(*idle->sleepers));
    if (!idle->sleepers)
        return -ENOMEM;
    int err = pthread_mutex_init(&idle->lock, NULL);
    if (err) {
        free(idle->sleepers);
        return -err;
    }
    idle->nsleepers = 0;
    idle->nworkers = nworkers;
    atomic_init(&idle->counts, (uint64_t)nworkers * ONE_UNPARKED);
    return 0;
}

void wisp__idle_destroy(struct idle *idle)
{
    pthread_mutex_destroy(&idle->lock);
    free(idle->sleepers);
}

bool wisp__idle_should_notify(struct idle *idle)
{
    /* seq_cst: the producer half of the Dekker pattern described above. */
    uint64_t c = atomic_load_explicit(&idle->counts, memory_order_seq_cst);
    return searching_of(c) == 0 && unparked_of(c) < idle->nworkers;
}

/* Under idle->lock. */
static void unpark_locked(struct idle *idle, struct worker *w)
{
    w->in_sleepers = false;
    /* seq_cst: counted as searching before it runs, so producers do not
     * wake a second worker for the same work. */
    atomic_fetch_add_explicit(&idle->counts, ONE_SEARCHING + ONE_UNPARKED, memory_order_seq_cst);
    /* release: pairs with the acquire load in wisp__idle_park_wait. */
    atomic_store_explicit(&w->park_word, 1, memory_order_release);
}

void wisp__idle_notify_one(struct idle *idle)
{
    if (!wisp__idle_should_notify(idle))
        return;
    pthread_mutex_lock(&idle->lock);
    struct worker *w = NULL;
    if (idle->nsleepers && wisp__idle_should_notify(idle)) {
        w = idle->sleepers[--idle->nsleepers];
        unpark_locked(idle, w);
    }
    pthread_mutex_unlock(&idle->lock);
    if (w)
        futex_wake(&w->park_word, 1);
}

bool wisp__idle_begin_search(struct idle *idle)
{
    /* relaxed: the CAS below is the synchronising access. */
    uint64_t c = atomic_load_explicit(&idle->counts, memory_order_relaxed);
    do {
        if (2 * searching_of(c) >= idle->nworkers)
            return false;
        /* seq_cst: producers' wisp__idle_should_notify must see us searching. */
    } while (!atomic_compare_exchange_weak_explicit(&idle->counts, &c, c + ONE_SEARCHING,
                                                    memory_order_seq_cst, memory_order_relaxed));
    return true;
}

bool wisp__idle_end_search(struct idle *idle)
{
    /* seq_cst: after this a producer may need to wake someone. */
    uint64_t c = atomic_fetch_sub_explicit(&idle->counts, ONE_SEARCHING, memory_order_seq_cst);
    return searching_of(c) == 1;
}

void wisp__idle_park_prepare(struct idle *idle, struct worker *w, bool was_searching)
{
    pthread_mutex_lock(&idle->lock);
    /* relaxed: the lock orders it with unpark_locked's store. */
    atomic_store_explicit(&w->park_word, 0, memory_order_relaxed);
    w->in_sleepers = true;
    idle->sleepers[idle->nsleepers++] = w;
    /* seq_cst: the worker half of the Dekker pattern; the caller's check
     * for work comes after it. */
    atomic_fetch_sub_explicit(&idle->counts, ONE_UNPARKED + (was_searching ? ONE_SEARCHING : 0),
                              memory_order_seq_cst);
    pthread_mutex_unlock(&idle->lock);
}

void wisp__idle_park_cancel(struct idle *idle, struct worker *w)
{
    pthread_mutex_lock(&idle->lock);
    if (w->in_sleepers) {
        for (unsigned i = 0; i < idle->nsleepers; i++) {
            if (idle->sleepers[i] == w) {
                idle->sleepers[i] = idle->sleepers[--idle->nsleepers];
                break;
            }
        }
        unpark_locked(idle, w);
    }
    /* Else a notifier already unparked us and counted us as searching. */
    pthread_mutex_unlock(&idle->lock);
}

void wisp__idle_park_wait(struct worker *w)
{
    /* acquire: pairs with the release store in unpark_locked. */
    while (atomic_load_explicit(&w->park_word, memory_order_acquire) == 0)
        futex_wait(&w->park_word, 0);
}

void wisp__idle_unpark_all(struct idle *idle)
{
    /* Shutdown only: waking under the lock costs nothing that matters. */
    pthread_mutex_lock(&idle->lock);
    for (unsigned i = 0; i < idle->nsleepers; i++) {
        unpark_locked(idle, idle->sleepers[i]);
        futex_wake(&idle->sleepers[i]->park_word, 1);
    }
    idle->nsleepers = 0;
    pthread_mutex_unlock(&idle->lock);
}
