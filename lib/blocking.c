/* blocking.c - the blocking pool (see blocking.h).
 *
 * Owns: struct blocking_pool.  Touches: the tasks it queues (their next
 * link while queued; task.c runs and closes them).
 *
 * Threads are started on demand, one per submission that finds none idle,
 * up to max_threads; beyond that jobs wait in FIFO order.  An idle thread
 * waits keepalive_ns for a job, then exits.  Threads are detached: the
 * count, under the lock, is what shutdown waits on, and a thread's last
 * access to the pool is that decrement (then it only returns).
 *
 * Shutdown (runtime.c, step 2b): closed is set, so submissions fail with
 * -ESHUTDOWN; the queued jobs are taken out and closed on the shutting-down
 * thread (each job's drop runs exactly once, its handle reports
 * -ECANCELED); idle threads are woken and exit; running jobs finish their
 * function and report normally; shutdown returns once the count is 0. */
#include "blocking.h"

#include <errno.h>
#include <stdio.h>
#include <time.h>

#include "clock.h"
#include "fault.h"
#include "runtime.h"
#include "task.h"

int wisp__blocking_init(struct blocking_pool *p, struct wisp_runtime *rt, unsigned max_threads,
                        uint64_t keepalive_ns)
{
    pthread_condattr_t attr;
    int err = fault_mutex() ? EAGAIN : pthread_mutex_init(&p->lock, NULL);
    if (err)
        return -err;
    if ((err = pthread_condattr_init(&attr))) {
        pthread_mutex_destroy(&p->lock);
        return -err;
    }
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if ((err = pthread_cond_init(&p->work, &attr))) {
        pthread_condattr_destroy(&attr);
        pthread_mutex_destroy(&p->lock);
        return -err;
    }
    if ((err = pthread_cond_init(&p->exited, NULL))) {
        pthread_cond_destroy(&p->work);
        pthread_condattr_destroy(&attr);
        pthread_mutex_destroy(&p->lock);
        return -err;
    }
    pthread_condattr_destroy(&attr);
    p->head = p->tail = NULL;
    p->threads = p->idle = 0;
    p->max_threads = max_threads;
    p->keepalive_ns = keepalive_ns;
    p->closed = false;
    p->rt = rt;
    return 0;
}

void wisp__blocking_destroy(struct blocking_pool *p)
{
    pthread_cond_destroy(&p->exited);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->lock);
}

/* Under the lock. */
static struct wisp_task *pool_pop(struct blocking_pool *p)
{
    struct wisp_task *t = p->head;
    if (t) {
        p->head = t->next;
        if (!p->head)
            p->tail = NULL;
        t->next = NULL;
    }
    return t;
}

static void *pool_thread(void *arg)
{
    struct blocking_pool *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        struct wisp_task *t;
        while ((t = pool_pop(p))) {
            pthread_mutex_unlock(&p->lock);
            /* The job's one poll runs its function (task.c); a job aborted
             * while queued is closed here instead. */
            wisp__task_run(t, NULL);
            pthread_mutex_lock(&p->lock);
        }
        if (p->closed)
            break;
        struct timespec until = clock_timespec(clock_now_ns() + p->keepalive_ns);
        p->idle++;
        int r = pthread_cond_timedwait(&p->work, &p->lock, &until);
        p->idle--;
        if (r == ETIMEDOUT && !p->head)
            break;
    }
    p->threads--;
    pthread_cond_broadcast(&p->exited);
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* Under the lock: starts one more thread; false if it could not. */
static bool pool_grow(struct blocking_pool *p)
{
    pthread_attr_t attr;
    pthread_t th;
    if (fault_thread() || pthread_attr_init(&attr))
        return false;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (p->rt->config.stack_size)
        pthread_attr_setstacksize(&attr, p->rt->config.stack_size);
    int err = pthread_create(&th, &attr, pool_thread, p);
    pthread_attr_destroy(&attr);
    if (err)
        return false;
    char name[16];
    snprintf(name, sizeof(name), "%s-blk", p->rt->config.thread_name);
    pthread_setname_np(th, name); /* best effort */
    p->threads++;
    return true;
}

int wisp__blocking_submit(struct blocking_pool *p, struct wisp_task *t)
{
    pthread_mutex_lock(&p->lock);
    if (p->closed) {
        pthread_mutex_unlock(&p->lock);
        return -ESHUTDOWN;
    }
    if (!p->idle && p->threads < p->max_threads && !pool_grow(p) && !p->threads) {
        pthread_mutex_unlock(&p->lock);
        return -EAGAIN;
    }
    t->next = NULL;
    if (p->tail)
        p->tail->next = t;
    else
        p->head = t;
    p->tail = t;
    if (p->idle)
        pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->lock);
    return 0;
}

void wisp__blocking_shutdown(struct blocking_pool *p)
{
    pthread_mutex_lock(&p->lock);
    p->closed = true;
    struct wisp_task *queued = p->head;
    p->head = p->tail = NULL;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    wisp__task_close_chain(queued);
    pthread_mutex_lock(&p->lock);
    while (p->threads)
        pthread_cond_wait(&p->exited, &p->lock);
    pthread_mutex_unlock(&p->lock);
}
