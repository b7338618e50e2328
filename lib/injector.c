/* injector.c - global MPMC FIFO: an intrusive list under a mutex, with an
 * atomic length read before taking the lock (see injector.h).
 *
 * The list is intrusive so that queueing never allocates: a wake from any
 * thread cannot fail for lack of memory. */
#include "injector.h"

#include "task.h"

int wisp__injector_init(struct injector *q)
{
    lock_init(&q->lock);
    atomic_init(&q->len, 0);
    q->head = q->tail = NULL;
    q->closed = false;
    q->remote_spawns = q->remote_wakes = 0;
    return 0;
}

void wisp__injector_destroy(struct injector *q)
{
    (void)q; /* nothing to free: the lock is a word */
}

bool wisp__injector_push_chain(struct injector *q, struct wisp_task *first, struct wisp_task *last,
                         size_t count, enum injector_source from)
{
    lock_acquire(&q->lock);
    if (q->closed) { /* rejected: the tasks are left untouched */
        lock_release(&q->lock);
        return false;
    }
    last->next = NULL;
    if (q->tail)
        q->tail->next = first;
    else
        q->head = first;
    q->tail = last;
    if (from == FROM_OUTSIDE_SPAWN)
        q->remote_spawns += count;
    else if (from == FROM_OUTSIDE_WAKE)
        q->remote_wakes += count;
    /* seq_cst: the producer's W of idle.c's table (row "outside spawn or
     * wake"); pairs with injector_len in the parker's last check. */
    atomic_fetch_add_explicit(&q->len, count, memory_order_seq_cst);
    lock_release(&q->lock);
    return true;
}

bool wisp__injector_push(struct injector *q, struct wisp_task *task, enum injector_source from)
{
    return wisp__injector_push_chain(q, task, task, 1, from);
}

void wisp__injector_counts(struct injector *q, uint64_t *spawns, uint64_t *wakes)
{
    lock_acquire(&q->lock);
    *spawns = q->remote_spawns;
    *wakes = q->remote_wakes;
    lock_release(&q->lock);
}

struct wisp_task *wisp__injector_pop_batch(struct injector *q, size_t max, size_t *count)
{
    *count = 0;
    /* relaxed: a hint only; the lock below orders the list itself. */
    if (atomic_load_explicit(&q->len, memory_order_relaxed) == 0)
        return NULL;
    lock_acquire(&q->lock);
    struct wisp_task *first = q->head, *last = NULL;
    size_t n = 0;
    for (struct wisp_task *t = first; t && n < max; t = t->next) {
        last = t;
        n++;
    }
    if (n) {
        q->head = last->next;
        if (!q->head)
            q->tail = NULL;
        last->next = NULL;
        /* relaxed: the lock orders the list; len is a hint for readers. */
        atomic_fetch_sub_explicit(&q->len, n, memory_order_relaxed);
    }
    lock_release(&q->lock);
    *count = n;
    return n ? first : NULL;
}

struct wisp_task *wisp__injector_close(struct injector *q)
{
    lock_acquire(&q->lock);
    q->closed = true;
    struct wisp_task *all = q->head;
    q->head = q->tail = NULL;
    /* relaxed: the list is now private to the caller. */
    atomic_store_explicit(&q->len, 0, memory_order_relaxed);
    lock_release(&q->lock);
    return all;
}
