/* test_dekker.c - idle.c's no-lost-wakeup table, row by row, as litmus
 * tests on the hardware with the library's own functions.
 *
 * Each row is a store-buffering pair: a producer publishes work and then
 * reads whether a worker is parked; a parker counts itself parked and then
 * reads the queues.  Two threads run the two halves at the same moment
 * (a spin barrier, then a random few pauses for the parker), many times
 * over, and count the outcome the protocol forbids: the producer saw
 * nobody parked AND the parker saw no work.  ThreadSanitizer cannot see this bug class
 * (store-to-load reordering); the hardware can.
 *
 * A control row does what the displaced spawn did before it was fixed (a
 * plain release push, no publish): the forbidden outcome must show up
 * there, or the harness cannot see reordering on this machine (one CPU, a
 * sanitizer's serialised atomics) and the suite reports a skip. */
#include "helpers.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "idle.h"
#include "injector.h"
#include "local_queue.h"
#include "task.h"

#define ROUNDS 100000L

struct litmus;
typedef bool (*half_fn)(struct litmus *l);

struct litmus {
    struct idle idle;
    struct local_queue q;
    struct injector injector;
    struct idle_slot slot;
    struct futex_driver driver;
    struct wisp_task tasks[4];
    half_fn producer, parker;
    void (*setup)(struct litmus *l);
    _Atomic long arrived;   /* barrier */
    bool produced_saw_parked, parker_saw_work;
    long forbidden;
};

/* ---- the halves --------------------------------------------------------------- */

static bool producer_spawn(struct litmus *l)
{
    wisp__lq_push_spawn(&l->q, &l->tasks[1]);
    return wisp__idle_should_notify(&l->idle);
}

static bool producer_wake_displacing(struct litmus *l)
{
    /* the LIFO slot holds tasks[0]: the wake displaces it onto the deque,
     * and the worker offers it after the poll */
    if (wisp__lq_push_wake(&l->q, &l->tasks[1]))
        wisp__lq_offer(&l->q);
    return wisp__idle_should_notify(&l->idle);
}

static bool producer_outside(struct litmus *l)
{
    wisp__injector_push(&l->injector, &l->tasks[1], FROM_OUTSIDE_SPAWN);
    return wisp__idle_should_notify(&l->idle);
}

/* The control: the displaced spawn as it was before the fix. */
static bool producer_unpublished_push(struct litmus *l)
{
    wisp__deque_push(&l->q.deque, &l->tasks[1]);
    return wisp__idle_should_notify(&l->idle);
}

/* The parker's W': park_prepare's seq_cst RMW of the counts, alone (the
 * lock around it in park_prepare orders it with notifiers, not with the
 * queues; leaving it out here only widens the window the race needs). */
static void parker_counts_itself_parked(struct litmus *l)
{
    atomic_fetch_sub_explicit(&l->idle.counts, (uint64_t)1 << 32, memory_order_seq_cst);
}

/* The parker: W', then the last check of worker.c (here on the one queue
 * and injector of the litmus). */
static bool parker_all(struct litmus *l)
{
    parker_counts_itself_parked(l);
    return wisp__lq_has_work(&l->q) || injector_len(&l->injector);
}

/* For the displaced spawn: a thief took the slot's new task before the
 * parker looked, so only the deque can tell it about the displaced one. */
static bool parker_deque_only(struct litmus *l)
{
    parker_counts_itself_parked(l);
    return wisp__deque_len(&l->q.deque) != 0;
}

/* The last searcher: the producer saw it searching and skipped its wake;
 * its end_search RMW is the W' of the row. */
static bool searcher_ends(struct litmus *l)
{
    wisp__idle_end_search(&l->idle);
    return wisp__lq_has_work(&l->q) || injector_len(&l->injector);
}

static bool producer_sees_searcher(struct litmus *l)
{
    wisp__lq_push_spawn(&l->q, &l->tasks[1]);
    /* idle_should_notify's read: while someone searches the producer skips
     * its wake, counting on that searcher.  Report whether it did not. */
    uint64_t c = atomic_load_explicit(&l->idle.counts, memory_order_seq_cst);
    return (c & 0xffffffffu) == 0;
}

/* ---- state between rounds --------------------------------------------------------- */

static void reset_queues(struct litmus *l)
{
    while (wisp__deque_pop(&l->q.deque))
        ;
    atomic_store(&l->q.spawned, NULL);
    l->q.lifo = NULL;
    size_t n;
    while (wisp__injector_pop_batch(&l->injector, 64, &n))
        ;
    l->idle.nsleepers = 0;
    l->slot.in_sleepers = false;
}

static void setup_plain(struct litmus *l)
{
    reset_queues(l);
    atomic_store(&l->idle.counts, (uint64_t)2 << 32); /* two workers, both running */
}

static void setup_displaced(struct litmus *l)
{
    setup_plain(l);
    atomic_store(&l->q.spawned, &l->tasks[0]); /* the slot is taken */
}

static void setup_lifo_taken(struct litmus *l)
{
    setup_plain(l);
    l->q.lifo = &l->tasks[0];
}

static void setup_searching(struct litmus *l)
{
    reset_queues(l);
    /* two workers, both unparked, one of them searching */
    atomic_store(&l->idle.counts, ((uint64_t)2 << 32) | 1);
}

/* ---- the harness ------------------------------------------------------------------ */

static void barrier(struct litmus *l, long *generation)
{
    long target = 2 * ++*generation;
    atomic_fetch_add(&l->arrived, 1);
    while (atomic_load(&l->arrived) < target)
        cpu_relax();
}

/* The parker starts 0 to 15 pauses after the producer: the offsets at
 * which the race can show lie in that range on the machines tried (AMD
 * EPYC: a few hundred forbidden outcomes per 100,000 rounds of the
 * control). */
static void jitter(uint64_t *rng)
{
    for (int k = (int)(rng_next(rng) >> 60); k > 0; k--)
        cpu_relax();
}

struct side {
    struct litmus *l;
    int producer;
    long rounds;
};

static void *run_side(void *arg)
{
    struct side *s = arg;
    struct litmus *l = s->l;
    long generation = 0;
    uint64_t rng = 0xC2B2AE3D27D4EB4Fu;
    for (long i = 0; i < s->rounds; i++) {
        if (s->producer)
            l->setup(l);
        barrier(l, &generation);
        if (!s->producer) {
            /* Share the lines both sides read: the producer's store then
             * needs a round trip before it leaves its store buffer, which
             * is when the race can show. */
            (void)wisp__lq_has_work(&l->q);
            (void)injector_len(&l->injector);
            (void)atomic_load(&l->idle.counts);
        }
        barrier(l, &generation);
        if (!s->producer)
            jitter(&rng);
        if (s->producer)
            l->produced_saw_parked = l->producer(l);
        else
            l->parker_saw_work = l->parker(l);
        barrier(l, &generation);
        if (s->producer && !l->produced_saw_parked && !l->parker_saw_work)
            l->forbidden++;
    }
    return NULL;
}

static long run_row(half_fn producer, half_fn parker, void (*setup)(struct litmus *), long rounds)
{
    /* Also run outside a test (the control, in main): no ck_assert here. */
    struct litmus *l = calloc(1, sizeof(*l));
    if (!l || wisp__idle_init(&l->idle, 2) || wisp__injector_init(&l->injector) ||
        wisp__lq_init(&l->q, 16, &l->injector, 2, NULL))
        abort();
    wisp__futex_driver_init(&l->driver);
    wisp__idle_slot_init(&l->slot, &l->driver.base);
    l->producer = producer;
    l->parker = parker;
    l->setup = setup;
    struct side a = { l, 1, rounds }, b = { l, 0, rounds };
    pthread_t ta, tb;
    pthread_create(&ta, NULL, run_side, &a);
    pthread_create(&tb, NULL, run_side, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    long forbidden = l->forbidden;
    reset_queues(l);
    wisp__lq_destroy(&l->q);
    wisp__injector_destroy(&l->injector);
    wisp__idle_destroy(&l->idle);
    free(l);
    return forbidden;
}

static long control_hits;

START_TEST(row_spawn)
{
    ck_assert_int_eq(run_row(producer_spawn, parker_all, setup_plain, ROUNDS), 0);
}
END_TEST

START_TEST(row_displaced_spawn)
{
    ck_assert_int_eq(run_row(producer_spawn, parker_deque_only, setup_displaced, ROUNDS), 0);
}
END_TEST

START_TEST(row_wake_displacing_lifo)
{
    ck_assert_int_eq(run_row(producer_wake_displacing, parker_deque_only, setup_lifo_taken, ROUNDS), 0);
}
END_TEST

START_TEST(row_outside_spawn)
{
    ck_assert_int_eq(run_row(producer_outside, parker_all, setup_plain, ROUNDS), 0);
}
END_TEST

START_TEST(row_last_searcher)
{
    ck_assert_int_eq(run_row(producer_sees_searcher, searcher_ends, setup_searching, ROUNDS), 0);
}
END_TEST

int main(void)
{
    if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
        return skip_suite("one CPU: no store buffer to race");
    if (WISP_TEST_SANITIZED)
        return skip_suite("a sanitizer serialises atomics: reordering cannot show");
    /* The control must show the forbidden outcome, or a zero below means
     * nothing on this machine. */
    control_hits = run_row(producer_unpublished_push, parker_deque_only, setup_plain, ROUNDS);
    printf("control (push without publish): %ld forbidden outcomes in %ld rounds\n",
           control_hits, ROUNDS);
    if (control_hits == 0)
        return skip_suite("the control showed no store-to-load reordering on this machine");
    Suite *s = suite_create("dekker");
    TCase *tc = tcase_create("dekker");
    tcase_set_timeout(tc, TEST_TIMEOUT);
    tcase_add_test(tc, row_spawn);
    tcase_add_test(tc, row_displaced_spawn);
    tcase_add_test(tc, row_wake_displacing_lifo);
    tcase_add_test(tc, row_outside_spawn);
    tcase_add_test(tc, row_last_searcher);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
