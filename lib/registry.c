/* registry.c - the sharded list of unfinished tasks (see registry.h).
 *
 * One circular doubly linked list per shard, under the shard's mutex.  A
 * worker lists the tasks it spawns in its own shard, so the lock is usually
 * uncontended and its cache line stays local; the task records its shard in
 * its state word so any thread can unlist it.  Only workers list tasks (at
 * the end of a poll, task.c), so nothing is listed once the workers are
 * joined and shutdown walks the lists.  A task is unlisted when it
 * finishes, or by shutdown, which claims it first. */
#include "registry.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "alloc.h"
#include "lock.h"
#include "runtime.h"
#include "task.h"

struct registry_shard {
    _Alignas(WISP_CACHE_LINE) struct wisp__lock lock;
    struct wisp_task head; /* sentinel: only its link fields are used */
    size_t count;
};

int wisp__registry_init(struct registry *r, unsigned nworkers)
{
    unsigned n = nworkers;
    if (n > TASK_SHARD_MAX + 1)
        n = TASK_SHARD_MAX + 1;
    r->shards = alloc_zeroed(n, sizeof(*r->shards), _Alignof(struct registry_shard));
    if (!r->shards)
        return -ENOMEM;
    for (unsigned i = 0; i < n; i++) {
        struct registry_shard *s = &r->shards[i];
        lock_init(&s->lock);
        s->head.reg_prev = s->head.reg_next = &s->head;
        s->count = 0;
    }
    r->nshards = n;
    return 0;
}

void wisp__registry_destroy(struct registry *r)
{
    alloc_free(r->shards);
}

unsigned wisp__registry_shard_of_worker(struct registry *r, unsigned worker_index)
{
    return worker_index % r->nshards;
}

static void link_task(struct registry_shard *s, struct wisp_task *t)
{
    t->reg_next = s->head.reg_next;
    t->reg_prev = &s->head;
    s->head.reg_next->reg_prev = t;
    s->head.reg_next = t;
    s->count++;
}

static void unlink_task(struct registry_shard *s, struct wisp_task *t)
{
    t->reg_prev->reg_next = t->reg_next;
    t->reg_next->reg_prev = t->reg_prev;
    t->reg_prev = t->reg_next = NULL;
    s->count--;
}

void wisp__registry_insert(struct registry *r, struct wisp_task *t, unsigned shard)
{
    struct registry_shard *s = &r->shards[shard];
    lock_acquire(&s->lock);
    link_task(s, t);
    lock_release(&s->lock);
}

static struct registry_shard *shard_of(struct registry *r, struct wisp_task *t)
{
    /* relaxed: the shard bits are set once, by the worker that listed the
     * task, before anyone can unlist it (ordered by REGISTERED's release). */
    uint64_t state = atomic_load_explicit(&t->state, memory_order_relaxed);
    return &r->shards[task_shard(state)];
}

bool wisp__registry_remove(struct registry *r, struct wisp_task *t)
{
    struct registry_shard *s = shard_of(r, t);
    lock_acquire(&s->lock);
    bool listed = t->reg_prev != NULL;
    if (listed)
        unlink_task(s, t);
    lock_release(&s->lock);
    return listed;
}

/* Closes the idle tasks of one shard; returns how many tasks stay listed
 * (being closed right now by other threads). */
static size_t shard_close_idle(struct registry_shard *s)
{
    lock_acquire(&s->lock);
    struct wisp_task *t = s->head.reg_next;
    while (t != &s->head) {
        if (!wisp__task_claim_idle(t)) {
            t = t->reg_next;
            continue;
        }
        /* Claimed: unlist it (its registry reference is now ours) and close
         * it without the lock, since its drop function may abort or wake
         * tasks listed here. */
        unlink_task(s, t);
        lock_release(&s->lock);
        wisp__task_close_claimed(t, 1);
        lock_acquire(&s->lock);
        t = s->head.reg_next;
    }
    size_t left = s->count;
    lock_release(&s->lock);
    return left;
}

void wisp__registry_close_all(struct registry *r)
{
    for (;;) {
        size_t left = 0;
        for (unsigned i = 0; i < r->nshards; i++)
            left += shard_close_idle(&r->shards[i]);
        if (!left)
            return;
        /* Tasks another thread holds: an outside waker whose queueing failed
         * (it closes the task itself) or an abort dropping a future.  Both
         * finish without waiting on us. */
        sched_yield();
    }
}
