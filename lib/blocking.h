/* blocking.h - the blocking pool: a bounded set of extra threads that run
 * plain functions (wisp_spawn_blocking) so that a worker never blocks on
 * getaddrinfo, a slow disk or a file read of the epoll backend.
 *
 * Owns: struct blocking_pool (the job queue, its threads, their count).
 * A job is a task of a kind of its own (task.c), so its join handle, abort
 * and shutdown are the tasks'; the pool only queues it and runs its one
 * poll on a pool thread. */
#ifndef WISP_BLOCKING_H
#define WISP_BLOCKING_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct wisp_runtime;
struct wisp_task;

struct blocking_pool {
    pthread_mutex_t lock;
    pthread_cond_t work;          /* jobs queued, or shutdown */
    pthread_cond_t exited;        /* a thread left (shutdown waits for all) */
    struct wisp_task *head, *tail; /* queued jobs, through next */
    unsigned threads, idle, max_threads;
    uint64_t keepalive_ns;
    bool closed;
    struct wisp_runtime *rt;
};

int wisp__blocking_init(struct blocking_pool *p, struct wisp_runtime *rt, unsigned max_threads,
                        uint64_t keepalive_ns);
/* Queues a job (a task holding its run reference): 0, or -ESHUTDOWN
 * (closed) or -EAGAIN (no thread exists and none could be started); on
 * error the job was not queued. */
int wisp__blocking_submit(struct blocking_pool *p, struct wisp_task *t);
/* Shutdown: refuses new jobs, closes the queued ones (their drop runs
 * once), and waits for the running ones and every thread to finish. */
void wisp__blocking_shutdown(struct blocking_pool *p);
void wisp__blocking_destroy(struct blocking_pool *p);

#endif /* WISP_BLOCKING_H */
