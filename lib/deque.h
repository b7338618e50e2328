/* deque.h - per-worker Chase-Lev work-stealing deque of task pointers.
 *
 * Owns: the ring of slots and the top/bottom indices.  Touches nothing else.
 * The owner pushes and pops at the bottom; any thread steals at the top.
 * Fixed capacity (a power of two); a full push tells the caller, who moves
 * half of the deque to the injector with wisp__deque_take_half (see deque.c). */
#ifndef WISP_DEQUE_H
#define WISP_DEQUE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct wisp_task;

struct deque {
    _Alignas(WISP_CACHE_LINE) _Atomic int64_t top;  /* thieves CAS it */
    _Alignas(WISP_CACHE_LINE) _Atomic int64_t bottom; /* owner writes it */
    struct wisp_task *_Atomic *slots;
    int64_t mask;
};

int wisp__deque_init(struct deque *d, size_t capacity); /* 0 or -EINVAL/-ENOMEM */
void wisp__deque_destroy(struct deque *d);

/* Owner only.  false: the deque is full and task was not pushed. */
bool wisp__deque_push(struct deque *d, struct wisp_task *task);

/* Owner only, after pushes and before checking for parked workers: see
 * idle.c (no lost wakeups). */
void wisp__deque_publish(struct deque *d);

/* Owner only.  The most recently pushed task, or NULL when empty. */
struct wisp_task *wisp__deque_pop(struct deque *d);

enum steal_result { STEAL_EMPTY, STEAL_RETRY, STEAL_OK };

/* Any thread.  STEAL_RETRY: lost a race, the deque may still hold tasks. */
enum steal_result wisp__deque_steal(struct deque *d, struct wisp_task **out);

/* Owner only: claims the oldest half of a full deque into out[] (which must
 * hold capacity/2 entries).  Returns how many were claimed, 0 if a thief
 * raced us (the deque then has room again). */
size_t wisp__deque_take_half(struct deque *d, struct wisp_task **out);

/* Any thread: a racy estimate, exact when the owner is quiescent. */
size_t wisp__deque_len(const struct deque *d);

size_t wisp__deque_capacity(const struct deque *d);

#endif /* WISP_DEQUE_H */
