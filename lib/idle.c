/* idle.c - idle workers sleep in their driver; producers wake one (see
 * idle.h).
 *
 * Owns: struct idle and the idle_slot of each worker.
 *
 * THE NO-LOST-WAKEUP RULE
 *
 * Queued work never waits for a busy worker while another sleeps.  Every
 * producer publishes its work with a seq_cst write W, then reads `counts`
 * seq_cst (wisp__idle_should_notify, R); every parker writes `counts` with a
 * seq_cst RMW W' (park_prepare), then reads every queue seq_cst (the last
 * check, R').
 *
 *   producer                    publishing write W (seq_cst)         then
 *   --------------------------  -----------------------------------  --------------------
 *   spawn on a worker           exchange into the spawn slot         notify_one
 *                               (local_queue.c)
 *   displaced spawn             deque push, then the publish RMW on  notify_one
 *                               bottom (wisp__lq_offer)
 *   wake displacing the LIFO    deque push; after the poll, the      notify_one
 *   slot                        publish RMW on bottom
 *   injector batch or deferred  deque pushes, then the publish RMW   notify_one
 *   flush of more than one
 *   outside spawn or wake,      fetch_add of the injector length,    notify_one
 *   deque overflow              under its lock (injector.c)          (the spawn's, or
 *                                                                     the one above)
 *   last searcher finding work  fetch_sub of `searching` in          has_work, then
 *                               end_search (it is a W' for the       notify_one
 *                               producers that skipped their wake)
 *   shutdown                    the shutdown CAS (runtime.c)         unpark_all, under
 *                                                                     the lock
 *
 *   parker                      W' (seq_cst RMW)                     then R' (seq_cst)
 *   --------------------------  -----------------------------------  --------------------
 *   worker about to sleep       counts -= unparked (and searching)   injector length,
 *                               in park_prepare                      each deque's bottom
 *                                                                     and top, each spawn
 *                                                                     slot; its own LIFO
 *                                                                     slot and deferred
 *                                                                     list (private)
 *
 * Proof sketch (store buffering): all of W, R, W', R' are seq_cst, so they
 * lie in one total order S consistent with each thread's program order.  If
 * the producer's R misses the parker's W' (reads counts from before it),
 * then R precedes W' in S; W precedes R; so W precedes W', which precedes
 * R', and R' sees W: the parker finds the work and does not sleep.  Else R
 * sees the worker counted as parked and notify_one wakes a sleeper (any:
 * each sleeper searches every queue).  A worker that is already searching
 * makes producers skip the wake (no herd); it either finds the work, or
 * parks (then it is a parker above), or ends its search as the last
 * searcher, which is the "last searcher" row: its RMW is a W' against the
 * producer that saw it searching, so its has_work check sees the work (a
 * lone task on its own deque excepted: it runs that next itself, and the
 * lone rule in worker.c keeps thieves off it).
 * A displaced spawn needs its own publish because a thief may take the
 * slot's new task before the parker's R': the exchange alone then proves
 * nothing about the deque.
 *
 * ThreadSanitizer cannot check this argument (it does not model store→load
 * reordering or the total order S).  tests/test_dekker.c runs each row as
 * a litmus test on the hardware, with the real functions, and counts the
 * outcome "both missed" (it must be zero; without a row's publish it is
 * not, on x86, within a second).
 *
 * Sleeping itself is the driver's protocol (driver_futex.c, or the I/O
 * ring's): a notifier sets `unparked`, then unparks the driver, which never
 * loses an unpark made before the worker sleeps.
 *
 * No thundering herd: one worker is woken per notification, none while
 * another is searching, and at most half the workers search at once. */
#include "idle.h"

#include <errno.h>

#include "alloc.h"
#include "fault.h"

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
    idle->sleepers = alloc_zeroed(nworkers, sizeof(*idle->sleepers), 0);
    if (!idle->sleepers)
        return -ENOMEM;
    int err = fault_mutex() ? EAGAIN : pthread_mutex_init(&idle->lock, NULL);
    if (err) {
        alloc_free(idle->sleepers);
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
    alloc_free(idle->sleepers);
}

void wisp__idle_slot_init(struct idle_slot *slot, struct wisp__driver *driver)
{
    slot->driver = driver;
    atomic_init(&slot->unparked, 1);
    slot->in_sleepers = false;
}

bool wisp__idle_should_notify(struct idle *idle)
{
    /* seq_cst: R of the table. */
    uint64_t c = atomic_load_explicit(&idle->counts, memory_order_seq_cst);
    return searching_of(c) == 0 && unparked_of(c) < idle->nworkers;
}

/* Under idle->lock: slot leaves the sleepers; returns it for the unpark. */
static struct idle_slot *unpark_locked(struct idle *idle, struct idle_slot *slot)
{
    slot->in_sleepers = false;
    /* seq_cst: counted as searching before it runs, so producers do not
     * wake a second worker for the same work. */
    atomic_fetch_add_explicit(&idle->counts, ONE_SEARCHING + ONE_UNPARKED, memory_order_seq_cst);
    /* release: pairs with the acquire load in park_wait. */
    atomic_store_explicit(&slot->unparked, 1, memory_order_release);
    return slot;
}

void wisp__idle_notify_one(struct idle *idle)
{
    if (!wisp__idle_should_notify(idle))
        return;
    pthread_mutex_lock(&idle->lock);
    struct idle_slot *slot = NULL;
    if (idle->nsleepers && wisp__idle_should_notify(idle))
        slot = unpark_locked(idle, idle->sleepers[--idle->nsleepers]);
    pthread_mutex_unlock(&idle->lock);
    /* Outside the lock: the unpark may be a system call. */
    if (slot)
        driver_unpark(slot->driver);
}

bool wisp__idle_begin_search(struct idle *idle)
{
    /* relaxed: the CAS below is the synchronising access. */
    uint64_t c = atomic_load_explicit(&idle->counts, memory_order_relaxed);
    do {
        if (2 * searching_of(c) >= idle->nworkers)
            return false;
        /* seq_cst: producers' R must see us searching. */
    } while (!atomic_compare_exchange_weak_explicit(&idle->counts, &c, c + ONE_SEARCHING,
                                                    memory_order_seq_cst, memory_order_relaxed));
    return true;
}

bool wisp__idle_end_search(struct idle *idle)
{
    /* seq_cst: the "last searcher" row's W'. */
    uint64_t c = atomic_fetch_sub_explicit(&idle->counts, ONE_SEARCHING, memory_order_seq_cst);
    return searching_of(c) == 1;
}

void wisp__idle_park_prepare(struct idle *idle, struct idle_slot *slot, bool was_searching)
{
    pthread_mutex_lock(&idle->lock);
    /* relaxed: the lock orders it with unpark_locked's store. */
    atomic_store_explicit(&slot->unparked, 0, memory_order_relaxed);
    slot->in_sleepers = true;
    idle->sleepers[idle->nsleepers++] = slot;
    /* seq_cst: W' of the table; the caller's last check (R') follows. */
    atomic_fetch_sub_explicit(&idle->counts, ONE_UNPARKED + (was_searching ? ONE_SEARCHING : 0),
                              memory_order_seq_cst);
    pthread_mutex_unlock(&idle->lock);
}

void wisp__idle_park_cancel(struct idle *idle, struct idle_slot *slot)
{
    pthread_mutex_lock(&idle->lock);
    if (slot->in_sleepers) {
        for (unsigned i = 0; i < idle->nsleepers; i++) {
            if (idle->sleepers[i] == slot) {
                idle->sleepers[i] = idle->sleepers[--idle->nsleepers];
                break;
            }
        }
        unpark_locked(idle, slot);
    }
    /* Else a notifier already unparked us and counted us as searching. */
    pthread_mutex_unlock(&idle->lock);
}

int wisp__idle_park_wait(struct idle_slot *slot, uint64_t deadline_ns)
{
    int r = driver_park(slot->driver, deadline_ns);
    /* acquire: pairs with the release store in unpark_locked. */
    if (atomic_load_explicit(&slot->unparked, memory_order_acquire))
        return DRIVER_UNPARKED;
    /* Not a notifier's unpark: the driver's own (a timer armed from
     * elsewhere, an I/O request) or a spurious return.  The caller must
     * look at its timers and driver before it sleeps again, with a new
     * deadline: sleeping on here could miss what the unpark announced. */
    return r == DRIVER_UNPARKED ? DRIVER_EVENTS : r;
}

void wisp__idle_unpark_all(struct idle *idle)
{
    /* Shutdown only: unparking under the lock costs nothing that matters. */
    pthread_mutex_lock(&idle->lock);
    for (unsigned i = 0; i < idle->nsleepers; i++)
        driver_unpark(unpark_locked(idle, idle->sleepers[i])->driver);
    idle->nsleepers = 0;
    pthread_mutex_unlock(&idle->lock);
}
