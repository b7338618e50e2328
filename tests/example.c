/* example.c - README's example, built and run as a test: spawn a task,
 * join it, and drive the seeds' timer future (a thread sleeps, then wakes
 * the task) both as a task and with wisp_block_on. */
#define _DEFAULT_SOURCE /* usleep */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <wisp/wisp.h>

/* Shared between the timer future and its thread. */
struct timer_state {
    pthread_mutex_t lock;
    bool completed;
    wisp_waker_t waker; /* the task to wake when the time is up */
};

struct timer_future {
    struct timer_state *state;
    unsigned usec;
    bool started;
};

static void *timer_thread(void *arg)
{
    struct timer_future *t = arg;
    usleep(t->usec);
    pthread_mutex_lock(&t->state->lock);
    t->state->completed = true;
    wisp_waker_t w = t->state->waker; /* take the waker out ... */
    t->state->waker = WISP_WAKER_EMPTY;
    pthread_mutex_unlock(&t->state->lock);
    wisp_waker_wake(&w); /* ... and wake it outside the lock */
    return NULL;
}

static wisp_poll_t timer_poll(void *future, wisp_context_t *cx, void **output)
{
    struct timer_future *t = future;
    pthread_mutex_lock(&t->state->lock);
    bool done = t->state->completed;
    if (!done) /* pending must wake: leave our waker for the thread */
        wisp_waker_set(&t->state->waker, wisp_context_waker(cx));
    pthread_mutex_unlock(&t->state->lock);
    if (!t->started) {
        t->started = true;
        pthread_t th;
        pthread_create(&th, NULL, timer_thread, t); /* t lives in the task */
        pthread_detach(th);
    }
    if (!done)
        return WISP_PENDING;
    *output = "timer fired";
    return WISP_READY;
}

static wisp_poll_t add_poll(void *future, wisp_context_t *cx, void **output)
{
    (void)cx;
    int *pair = future;
    *output = (void *)(intptr_t)(pair[0] + pair[1]);
    return WISP_READY;
}

int main(void)
{
    wisp_runtime_t *rt;
    int err = wisp_runtime_new(&rt, &(wisp_runtime_config_t){ .workers = 2 });
    if (err) {
        fprintf(stderr, "wisp_runtime_new: %d\n", err);
        return 1;
    }

    /* spawn + join */
    int pair[2] = { 40, 2 };
    wisp_join_t *join;
    void *sum;
    if (wisp_spawn(rt, add_poll, pair, sizeof(pair), NULL, &join) || wisp_join(join, &sum))
        return 1;
    printf("40 + 2 = %d\n", (int)(intptr_t)sum);

    /* the timer future as a task, woken from another thread */
    struct timer_state state = { PTHREAD_MUTEX_INITIALIZER, false, WISP_WAKER_EMPTY };
    struct timer_future timer = { &state, 10000, false };
    void *msg;
    if (wisp_spawn(rt, timer_poll, &timer, sizeof(timer), NULL, &join) || wisp_join(join, &msg))
        return 1;
    printf("task: %s\n", (const char *)msg);

    /* the same future driven in place by wisp_block_on */
    struct timer_state state2 = { PTHREAD_MUTEX_INITIALIZER, false, WISP_WAKER_EMPTY };
    struct timer_future timer2 = { &state2, 10000, false };
    if (wisp_block_on(rt, timer_poll, &timer2, &msg))
        return 1;
    printf("block_on: %s\n", (const char *)msg);

    wisp_runtime_free(rt);
    return (int)(intptr_t)sum == 42 ? 0 : 1;
}
