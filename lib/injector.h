/* injector.h - the runtime's global queue for work that arrives from
 * outside the pool (spawns and wakes on other threads) and for deque
 * overflow.  Multi-producer, multi-consumer, FIFO, unbounded.
 *
 * Owns: the list of queued tasks (linked through wisp_task.next), its
 * length and the closed flag.  Touches: only the next field of the tasks it
 * holds. */
#ifndef WISP_INJECTOR_H
#define WISP_INJECTOR_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lock.h"
#include "util.h"

struct wisp_task;

struct injector {
    /* Read without the lock so that idle polling never touches the mutex. */
    _Alignas(WISP_CACHE_LINE) _Atomic size_t len;
    _Alignas(WISP_CACHE_LINE) struct wisp__lock lock;
    struct wisp_task *head, *tail;
    bool closed;
    uint64_t remote_spawns, remote_wakes; /* metrics: pushes from outside threads */
};

/* Who pushes: counted for metrics (under the lock, so for free). */
enum injector_source { FROM_OVERFLOW, FROM_OUTSIDE_SPAWN, FROM_OUTSIDE_WAKE };

int wisp__injector_init(struct injector *q);
void wisp__injector_destroy(struct injector *q);

/* Appends the chain first..last (count tasks linked through next).
 * false: the injector is closed; nothing was queued. */
bool wisp__injector_push_chain(struct injector *q, struct wisp_task *first, struct wisp_task *last,
                         size_t count, enum injector_source from);
bool wisp__injector_push(struct injector *q, struct wisp_task *task, enum injector_source from);

/* Metrics: how many tasks outside threads have spawned and woken. */
void wisp__injector_counts(struct injector *q, uint64_t *spawns, uint64_t *wakes);

/* Takes up to max tasks (max >= 1) and returns the first, chained through
 * next and NULL-terminated; *count gets how many.  NULL when empty. */
struct wisp_task *wisp__injector_pop_batch(struct injector *q, size_t max, size_t *count);

/* Closes the injector: later pushes fail.  Returns what was still queued. */
struct wisp_task *wisp__injector_close(struct injector *q);

/* A racy hint, exact once producers are quiescent. */
static inline size_t injector_len(struct injector *q)
{
    /* seq_cst: part of the parker's R' in idle.c's table; pairs with the
     * fetch_add in push. */
    return atomic_load_explicit(&q->len, memory_order_seq_cst);
}

#endif /* WISP_INJECTOR_H */
