/* test_shutdown.c - wisp_runtime_free: 10,000 pending tasks each dropped
 * exactly once, queued tasks closed without a poll, a running poll finishing
 * normally, spawns from drop functions refused, a second free refused, free
 * on a worker refused, wakers and aborts racing shutdown, and wakers used
 * after the runtime is gone. */
#include "helpers.h"

#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

/* ---- a future pending forever, its waker stashed in a slot ------------- */

struct forever {
    wisp_waker_t *slot;
    pthread_mutex_t *lock;
    _Atomic long *polls;
    _Atomic long *drops;
};

static wisp_poll_t forever_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)out;
    struct forever *fv = f;
    atomic_fetch_add(fv->polls, 1);
    pthread_mutex_lock(fv->lock);
    wisp_waker_set(fv->slot, wisp_context_waker(cx));
    pthread_mutex_unlock(fv->lock);
    return WISP_PENDING;
}

static void forever_drop(void *f)
{
    atomic_fetch_add(((struct forever *)f)->drops, 1);
}

#define PENDING_TASKS 10000

struct herd {
    wisp_waker_t slot[PENDING_TASKS];
    wisp_join_t *join[PENDING_TASKS];
    pthread_mutex_t lock;
    _Atomic long polls, drops;
};

static struct herd *herd_spawn(wisp_runtime_t *rt, long n, int keep_joins)
{
    struct herd *h = calloc(1, sizeof(*h));
    pthread_mutex_init(&h->lock, NULL);
    for (long i = 0; i < n; i++) {
        struct forever fv = { &h->slot[i], &h->lock, &h->polls, &h->drops };
        ck_assert_int_eq(wisp_spawn(rt, forever_poll, &fv, sizeof(fv), forever_drop,
                                    keep_joins && i % 2 ? &h->join[i] : NULL),
                         0);
    }
    wait_for(&h->polls, n, 60);
    return h;
}

struct waker_abuse {
    struct herd *h;
    long n;
};

static void *use_wakers_after_free(void *arg)
{
    struct waker_abuse *a = arg;
    for (long i = 0; i < a->n; i++) {
        wisp_waker_t *w = &a->h->slot[i];
        wisp_waker_wake_by_ref(w);
        wisp_waker_t c = wisp_waker_clone(w);
        wisp_waker_wake(&c);
        c = wisp_waker_clone(w);
        wisp_waker_drop(&c);
    }
    return NULL;
}

START_TEST(closes_10000_pending_tasks)
{
    wisp_runtime_t *rt = rt_new(2);
    long n = PENDING_TASKS;
    struct herd *h = herd_spawn(rt, n, 1);
    ck_assert_int_eq(atomic_load(&h->drops), 0);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
    ck_assert_int_eq(atomic_load(&h->drops), n);
    ck_assert_int_eq(atomic_load(&h->polls), n);
    /* Join handles outlive the runtime and report the cancellation. */
    for (long i = 1; i < n; i += 2) {
        ck_assert(wisp_join_is_finished(h->join[i]));
        void *out = (void *)1;
        ck_assert_int_eq(wisp_join(h->join[i], &out), -ECANCELED);
        ck_assert_ptr_null(out);
    }
    /* Wakers outlive it too: clone, wake, wake by ref and drop from
     * several threads; nothing happens and the last reference frees. */
    pthread_t th[3];
    struct waker_abuse a = { h, n };
    for (int i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, use_wakers_after_free, &a);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    ck_assert_int_eq(atomic_load(&h->polls), n);
    for (long i = 0; i < n; i++)
        wisp_waker_drop(&h->slot[i]);
    pthread_mutex_destroy(&h->lock);
    free(h);
}
END_TEST

/* ---- queued tasks are closed without being polled -------------------- */

struct gate {
    _Atomic long started, release, finished;
};

static wisp_poll_t gate_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)cx;
    struct gate *g = *(struct gate **)f;
    atomic_store(&g->started, 1);
    while (!atomic_load(&g->release))
        sched_yield();
    atomic_store(&g->finished, 1);
    *out = (void *)77;
    return WISP_READY;
}

static void *release_later(void *arg)
{
    usleep(50000);
    atomic_store(&((struct gate *)arg)->release, 1);
    return NULL;
}

START_TEST(queued_tasks_closed_unpolled_and_running_poll_completes)
{
    wisp_runtime_t *rt = rt_new(1);
    struct gate g = { 0 };
    struct gate *gp = &g;
    wisp_join_t *gj;
    ck_assert_int_eq(wisp_spawn(rt, gate_poll, &gp, sizeof(gp), NULL, &gj), 0);
    wait_for(&g.started, 1, 10);
    pthread_mutex_t lock;
    pthread_mutex_init(&lock, NULL);
    _Atomic long polls = 0, drops = 0;
    wisp_waker_t slot = WISP_WAKER_EMPTY;
    long n = stress(10000);
    for (long i = 0; i < n; i++) {
        struct forever fv = { &slot, &lock, &polls, &drops };
        ck_assert_int_eq(wisp_spawn(rt, forever_poll, &fv, sizeof(fv), forever_drop, NULL), 0);
    }
    pthread_t th;
    pthread_create(&th, NULL, release_later, &g);
    ck_assert_int_eq(wisp_runtime_free(rt), 0); /* waits for the running poll */
    pthread_join(th, NULL);
    ck_assert_int_eq(atomic_load(&g.finished), 1);
    void *out;
    ck_assert_int_eq(wisp_join(gj, &out), 0); /* it completed normally */
    ck_assert_ptr_eq(out, (void *)77);
    ck_assert_int_eq(atomic_load(&drops), n);
    ck_assert_int_le(atomic_load(&polls), n);
    wisp_waker_drop(&slot);
    pthread_mutex_destroy(&lock);
}
END_TEST

/* ---- drop functions during shutdown --------------------------------------- */

static wisp_runtime_t *dying;
static _Atomic long spawn_results, free_results, drops_seen;

static wisp_poll_t nop_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)f;
    (void)cx;
    (void)out;
    return WISP_READY;
}

static void reentrant_drop(void *f)
{
    (void)f;
    atomic_fetch_add(&drops_seen, 1);
    if (wisp_spawn(dying, nop_poll, NULL, 0, NULL, NULL) == -ESHUTDOWN)
        atomic_fetch_add(&spawn_results, 1);
    if (wisp_runtime_free(dying) == -EINVAL)
        atomic_fetch_add(&free_results, 1);
}

START_TEST(drop_functions_cannot_spawn_or_free)
{
    dying = rt_new(2);
    pthread_mutex_t lock;
    pthread_mutex_init(&lock, NULL);
    _Atomic long polls = 0, drops = 0;
    wisp_waker_t slot = WISP_WAKER_EMPTY;
    enum { N = 100 };
    for (int i = 0; i < N; i++) {
        struct forever fv = { &slot, &lock, &polls, &drops };
        ck_assert_int_eq(wisp_spawn(dying, forever_poll, &fv, sizeof(fv), reentrant_drop, NULL), 0);
    }
    wait_for(&polls, N, 10);
    ck_assert_int_eq(wisp_runtime_free(dying), 0);
    ck_assert_int_eq(atomic_load(&drops_seen), N);
    ck_assert_int_eq(atomic_load(&spawn_results), N);
    ck_assert_int_eq(atomic_load(&free_results), N);
    wisp_waker_drop(&slot);
    pthread_mutex_destroy(&lock);
}
END_TEST

/* A drop function run by an abort on an outside thread cannot free the
 * runtime: free would wait for that very task to finish closing. */
static _Atomic long abort_drop_rc;

static void freeing_drop(void *f)
{
    atomic_store(&abort_drop_rc, wisp_runtime_free(dying));
    forever_drop(f);
}

START_TEST(free_from_an_abort_drop_refused)
{
    dying = rt_new(2);
    pthread_mutex_t lock;
    pthread_mutex_init(&lock, NULL);
    _Atomic long polls = 0, drops = 0;
    wisp_waker_t slot = WISP_WAKER_EMPTY;
    struct forever fv = { &slot, &lock, &polls, &drops };
    wisp_join_t *j;
    ck_assert_int_eq(wisp_spawn(dying, forever_poll, &fv, sizeof(fv), freeing_drop, &j), 0);
    wait_for(&polls, 1, 10);
    while (!wisp_join_is_finished(j)) { /* idle: the abort closes it here */
        wisp_join_abort(j);
        usleep(100);
    }
    ck_assert_int_eq(atomic_load(&drops), 1);
    ck_assert_int_eq(atomic_load(&abort_drop_rc), -EDEADLK);
    ck_assert_int_eq(wisp_join(j, NULL), -ECANCELED);
    ck_assert_int_eq(wisp_runtime_free(dying), 0);
    wisp_waker_drop(&slot);
    pthread_mutex_destroy(&lock);
}
END_TEST

/* ---- free / join / block_on on a worker ------------------------------------ */

struct on_worker {
    wisp_runtime_t *rt;
    wisp_join_t *other;
    int free_rc, join_rc, block_rc;
};

static wisp_poll_t on_worker_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)cx;
    (void)out;
    struct on_worker *o = *(struct on_worker **)f;
    o->free_rc = wisp_runtime_free(o->rt);
    o->join_rc = wisp_join(o->other, NULL);
    o->block_rc = wisp_block_on(NULL, NULL, NULL, NULL); /* EDEADLK first */
    return WISP_READY;
}

START_TEST(deadlocking_calls_on_a_worker_refused)
{
    wisp_runtime_t *rt = rt_new(2);
    struct signal s;
    signal_init(&s);
    struct signal_future sf = { &s, (void *)3 };
    wisp_join_t *other;
    ck_assert_int_eq(wisp_spawn(rt, signal_future_poll, &sf, sizeof(sf), NULL, &other), 0);
    struct on_worker o = { rt, other, 0, 0, 0 };
    struct on_worker *p = &o;
    wisp_join_t *j;
    ck_assert_int_eq(wisp_spawn(rt, on_worker_poll, &p, sizeof(p), NULL, &j), 0);
    ck_assert_int_eq(wisp_join(j, NULL), 0);
    ck_assert_int_eq(o.free_rc, -EDEADLK);
    ck_assert_int_eq(o.join_rc, -EDEADLK);
    ck_assert_int_eq(o.block_rc, -EDEADLK);
    /* The handle was left untouched: it still works from outside. */
    signal_raise(&s);
    void *out;
    ck_assert_int_eq(wisp_join(other, &out), 0);
    ck_assert_ptr_eq(out, (void *)3);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
    signal_destroy(&s);
}
END_TEST

/* ---- wakes and aborts racing shutdown --------------------------------------- */

struct racer {
    struct herd *h;
    long n;
    _Atomic long *stop;
    int abort;
};

static void *race_shutdown(void *arg)
{
    struct racer *r = arg;
    while (!atomic_load(r->stop)) {
        for (long i = 0; i < r->n; i++) {
            if (r->abort && r->h->join[i]) {
                wisp_join_abort(r->h->join[i]);
                continue;
            }
            pthread_mutex_lock(&r->h->lock);
            wisp_waker_t w = wisp_waker_clone(&r->h->slot[i]);
            pthread_mutex_unlock(&r->h->lock);
            wisp_waker_wake(&w);
        }
    }
    return NULL;
}

START_TEST(wakes_and_aborts_race_shutdown)
{
    for (long round = 0; round < stress(200); round++) {
        wisp_runtime_t *rt = rt_new(2);
        long n = 200;
        struct herd *h = herd_spawn(rt, n, 1);
        _Atomic long stop = 0;
        struct racer wr = { h, n, &stop, 0 }, ar = { h, n, &stop, 1 };
        pthread_t a, b;
        pthread_create(&a, NULL, race_shutdown, &wr);
        pthread_create(&b, NULL, race_shutdown, &ar);
        usleep(1000);
        ck_assert_int_eq(wisp_runtime_free(rt), 0);
        ck_assert_int_eq(atomic_load(&h->drops), n);
        atomic_store(&stop, 1);
        pthread_join(a, NULL);
        pthread_join(b, NULL);
        ck_assert_int_eq(atomic_load(&h->drops), n);
        for (long i = 0; i < n; i++) {
            if (h->join[i])
                ck_assert_int_eq(wisp_join(h->join[i], NULL), -ECANCELED);
            wisp_waker_drop(&h->slot[i]);
        }
        pthread_mutex_destroy(&h->lock);
        free(h);
    }
}
END_TEST

/* ---- a drop function that wakes other pending tasks ------------------------ */

static struct herd *chain_herd;

static void waking_drop(void *f)
{
    atomic_fetch_add(((struct forever *)f)->drops, 1);
    for (int i = 0; i < 10; i++) {
        pthread_mutex_lock(&chain_herd->lock);
        wisp_waker_t w = wisp_waker_clone(&chain_herd->slot[rand() % 100]);
        pthread_mutex_unlock(&chain_herd->lock);
        wisp_waker_wake(&w);
    }
}

START_TEST(drops_that_wake_during_shutdown)
{
    wisp_runtime_t *rt = rt_new(2);
    struct herd *h = calloc(1, sizeof(*h));
    chain_herd = h;
    pthread_mutex_init(&h->lock, NULL);
    for (long i = 0; i < 100; i++) {
        struct forever fv = { &h->slot[i], &h->lock, &h->polls, &h->drops };
        ck_assert_int_eq(wisp_spawn(rt, forever_poll, &fv, sizeof(fv), waking_drop, NULL), 0);
    }
    wait_for(&h->polls, 100, 10);
    ck_assert_int_eq(wisp_runtime_free(rt), 0);
    ck_assert_int_eq(atomic_load(&h->drops), 100);
    for (long i = 0; i < 100; i++)
        wisp_waker_drop(&h->slot[i]);
    pthread_mutex_destroy(&h->lock);
    free(h);
}
END_TEST


/* ---- closing a long chain of awaiting tasks runs in bounded stack ---------- */

/* Link k spawns link k+1 and awaits it through wisp_join_poll; the last link
 * is pending forever.  Closing the last one wakes its awaiter, whose close
 * wakes the next awaiter, and so on: 100,000 links deep.  With the tail
 * link spawning a "trigger" task (listed last, so shutdown closes it
 * first), the trigger's drop function has a helper thread abort the tail
 * while the injector is closed: the same chain from an outside abort. */
#define CHAIN_LINKS 100000

struct chain_ctl {
    wisp_runtime_t *rt;
    _Atomic long built;        /* links polled once */
    _Atomic long drops;
    wisp_join_t *_Atomic tail; /* the last link's handle (owned by its parent) */
    int via_abort;
};

struct chain_link {
    struct chain_ctl *ctl;
    long left;
    wisp_join_t *next;
    int polled;
};

static wisp_poll_t trigger_poll(void *f, wisp_context_t *cx, void **out)
{
    (void)f, (void)cx, (void)out;
    return WISP_PENDING;
}

static void *abort_tail(void *arg)
{
    struct chain_ctl *ctl = arg;
    wisp_join_abort(atomic_load(&ctl->tail));
    return NULL;
}

static void trigger_drop(void *f)
{
    /* Runs on the freeing thread after the injector closed; the abort runs
     * on a thread of its own, outside any close. */
    pthread_t th;
    pthread_create(&th, NULL, abort_tail, *(struct chain_ctl **)f);
    pthread_join(th, NULL);
}

static void chain_link_drop(void *f);

static wisp_poll_t chain_link_poll(void *f, wisp_context_t *cx, void **out)
{
    struct chain_link *l = f;
    struct chain_ctl *ctl = l->ctl;
    if (!l->polled) {
        l->polled = 1;
        if (l->left > 0) {
            struct chain_link next = { ctl, l->left - 1, NULL, 0 };
            ck_assert_int_eq(wisp_spawn(ctl->rt, chain_link_poll, &next, sizeof(next),
                                        chain_link_drop, &l->next), 0);
            if (l->left == 1)
                atomic_store(&ctl->tail, l->next);
        } else if (ctl->via_abort) { /* the tail: the trigger is listed after it */
            ck_assert_int_eq(wisp_spawn(ctl->rt, trigger_poll, &ctl, sizeof(ctl), trigger_drop, NULL), 0);
        }
        atomic_fetch_add(&ctl->built, 1);
    }
    if (l->left == 0)
        return WISP_PENDING; /* the tail: pending forever */
    int status;
    return wisp_join_poll(l->next, cx, &status, out);
}

static void chain_link_drop(void *f)
{
    struct chain_link *l = f;
    atomic_fetch_add(&l->ctl->drops, 1);
    if (l->next)
        wisp_join_detach(l->next);
}

static void close_chain_at_shutdown(int via_abort)
{
    struct chain_ctl ctl = { .via_abort = via_abort };
    ctl.rt = rt_new(1); /* one worker: links are listed in the order they run */
    struct chain_link head = { &ctl, CHAIN_LINKS - 1, NULL, 0 };
    ck_assert_int_eq(wisp_spawn(ctl.rt, chain_link_poll, &head, sizeof(head), chain_link_drop, NULL), 0);
    wait_for(&ctl.built, CHAIN_LINKS, 60);
    usleep(20000); /* the trigger task, if any, is polled and listed */
    ck_assert_int_eq(wisp_runtime_free(ctl.rt), 0);
    ck_assert_int_eq(atomic_load(&ctl.drops), CHAIN_LINKS);
}

START_TEST(join_chain_closed_in_bounded_stack)
{
    close_chain_at_shutdown(0);
}
END_TEST

START_TEST(abort_after_injector_closed_in_bounded_stack)
{
    close_chain_at_shutdown(1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("shutdown");
    TCase *tc = tcase_create("shutdown");
    tcase_set_timeout(tc, TEST_TIMEOUT);
    tcase_add_test(tc, closes_10000_pending_tasks);
    tcase_add_test(tc, queued_tasks_closed_unpolled_and_running_poll_completes);
    tcase_add_test(tc, drop_functions_cannot_spawn_or_free);
    tcase_add_test(tc, deadlocking_calls_on_a_worker_refused);
    tcase_add_test(tc, free_from_an_abort_drop_refused);
    tcase_add_test(tc, wakes_and_aborts_race_shutdown);
    tcase_add_test(tc, drops_that_wake_during_shutdown);
    tcase_add_test(tc, join_chain_closed_in_bounded_stack);
    tcase_add_test(tc, abort_after_injector_closed_in_bounded_stack);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
