/* registry.h - every unfinished task of a runtime, so that shutdown can
 * close each exactly once (tasks that are pending and held only by wakers
 * sit in no queue).
 *
 * Owns: the shard lists (intrusive, through wisp_task.reg_prev/reg_next)
 * and their locks.  The list holds one reference to each task (task.h).
 * Touches: only those link fields, plus task.c's claim/close on shutdown. */
#ifndef WISP_REGISTRY_H
#define WISP_REGISTRY_H

#include <stdbool.h>

struct wisp_task;
struct registry_shard;

struct registry {
    struct registry_shard *shards;
    unsigned nshards; /* one per worker (up to the state word's shard bits) */
};

int wisp__registry_init(struct registry *r, unsigned nworkers);
void wisp__registry_destroy(struct registry *r);

/* The shard a worker lists its tasks in: its own, so the lock and its
 * cache line usually stay with that worker. */
unsigned wisp__registry_shard_of_worker(struct registry *r, unsigned worker_index);

/* Lists t; called by workers only, which shutdown joins before it walks
 * the lists. */
void wisp__registry_insert(struct registry *r, struct wisp_task *t, unsigned shard);

/* true if this call unlisted t (and so now owns the registry's reference). */
bool wisp__registry_remove(struct registry *r, struct wisp_task *t);

/* Shutdown, after the workers are joined: closes every idle task, and
 * waits until the tasks other threads are closing are gone too. */
void wisp__registry_close_all(struct registry *r);

#endif /* WISP_REGISTRY_H */
