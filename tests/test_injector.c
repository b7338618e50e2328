/* test_injector.c - the global MPMC injector queue (lib/injector.c) on its
 * own: FIFO order and batch pops (chained through next, NULL-terminated,
 * count and length exact), pushing prebuilt chains, closing (the remainder
 * is handed back, later pushes fail and leave their tasks alone), and a
 * multi-producer / multi-consumer stress where every task must be consumed
 * exactly once and each producer's tasks keep their order.
 *
 * The injector writes the tasks' next field, so the tasks are real, zeroed
 * struct wisp_task objects from one calloc'ed array, never handed to any
 * other part of the library; a task's index is its offset in that array. */
#include "helpers.h"

#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "injector.h"
#include "task.h"

/* ---- tasks ---------------------------------------------------------------- */

static struct wisp_task *tasks;
static size_t ntasks;

static void tasks_alloc(size_t n)
{
    tasks = calloc(n, sizeof(*tasks));
    ck_assert_ptr_nonnull(tasks);
    ntasks = n;
}

static void tasks_free(void)
{
    free(tasks);
    tasks = NULL;
    ntasks = 0;
}

/* The index of a task, or -1 if t is not one of ours. */
static long task_index(const struct wisp_task *t)
{
    uintptr_t p = (uintptr_t)t, base = (uintptr_t)tasks;
    if (p < base || (p - base) % sizeof(struct wisp_task) != 0)
        return -1;
    size_t i = (p - base) / sizeof(struct wisp_task);
    return i < ntasks ? (long)i : -1;
}

/* A next value that is no task: the injector must overwrite it wherever it
 * terminates a chain. */
#define JUNK ((struct wisp_task *)(uintptr_t)0xdead0)

/* Check's ck_assert records its location on every call (a system call);
 * loops use this, which calls into Check only when it fails. */
#define REQUIRE_MSG(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg(__VA_ARGS__);                                                             \
    } while (0)

/* Checks that chain is exactly tasks first, first+1, ..., first+n-1,
 * linked through next and NULL-terminated. */
static void check_chain(const struct wisp_task *chain, size_t first, size_t n)
{
    const struct wisp_task *t = chain;
    for (size_t i = 0; i < n; i++) {
        REQUIRE_MSG(t != NULL, "chain ends after %zu of %zu tasks", i, n);
        REQUIRE_MSG(t == &tasks[first + i], "chain position %zu: task %ld, want %zu", i,
                    task_index(t), first + i);
        t = t->next;
    }
    REQUIRE_MSG(t == NULL, "chain of %zu does not end in NULL (next is task %ld)", n, task_index(t));
}

/* ---- 1. FIFO and batches -------------------------------------------------- */

START_TEST(test_empty)
{
    struct injector q;
    ck_assert_int_eq(wisp__injector_init(&q), 0);
    ck_assert_uint_eq(injector_len(&q), 0);
    size_t count = 99;
    ck_assert_ptr_null(wisp__injector_pop_batch(&q, 1, &count));
    ck_assert_uint_eq(count, 0);
    count = 99;
    ck_assert_ptr_null(wisp__injector_pop_batch(&q, 32, &count));
    ck_assert_uint_eq(count, 0);
    ck_assert_uint_eq(injector_len(&q), 0);
    wisp__injector_destroy(&q);
}
END_TEST

START_TEST(test_fifo_batches)
{
    struct injector q;
    ck_assert_int_eq(wisp__injector_init(&q), 0);
    tasks_alloc(20);
    for (size_t i = 0; i < 10; i++) {
        tasks[i].next = JUNK;
        ck_assert(wisp__injector_push(&q, &tasks[i], FROM_OUTSIDE_SPAWN));
        ck_assert_uint_eq(injector_len(&q), i + 1);
    }
    size_t count = 0;
    struct wisp_task *t = wisp__injector_pop_batch(&q, 3, &count);
    ck_assert_uint_eq(count, 3);
    check_chain(t, 0, 3);
    ck_assert_uint_eq(injector_len(&q), 7);

    t = wisp__injector_pop_batch(&q, 1, &count);
    ck_assert_uint_eq(count, 1);
    check_chain(t, 3, 1);
    ck_assert_uint_eq(injector_len(&q), 6);

    /* Pushing behind a partly drained queue keeps the order. */
    tasks[10].next = JUNK;
    ck_assert(wisp__injector_push(&q, &tasks[10], FROM_OUTSIDE_SPAWN));
    ck_assert_uint_eq(injector_len(&q), 7);

    /* max larger than what is queued: everything, and no more. */
    t = wisp__injector_pop_batch(&q, 100, &count);
    ck_assert_uint_eq(count, 7);
    check_chain(t, 4, 7);
    ck_assert_uint_eq(injector_len(&q), 0);
    count = 99;
    ck_assert_ptr_null(wisp__injector_pop_batch(&q, 5, &count));
    ck_assert_uint_eq(count, 0);

    /* Drained to empty (head and tail reset): it works again. */
    for (size_t i = 11; i < 20; i++) {
        tasks[i].next = JUNK;
        ck_assert(wisp__injector_push(&q, &tasks[i], FROM_OUTSIDE_SPAWN));
    }
    ck_assert_uint_eq(injector_len(&q), 9);
    t = wisp__injector_pop_batch(&q, 9, &count); /* exactly max */
    ck_assert_uint_eq(count, 9);
    check_chain(t, 11, 9);
    ck_assert_uint_eq(injector_len(&q), 0);
    ck_assert_ptr_null(wisp__injector_pop_batch(&q, 1, &count));
    ck_assert_uint_eq(count, 0);

    /* One at a time, with interleaved pushes: strict FIFO. */
    memset(tasks, 0, 20 * sizeof(*tasks));
    size_t pushed = 0, popped = 0;
    for (int round = 0; round < 5; round++) {
        for (int k = 0; k < 3 && pushed < 20; k++)
            ck_assert(wisp__injector_push(&q, &tasks[pushed++], FROM_OUTSIDE_SPAWN));
        t = wisp__injector_pop_batch(&q, 1, &count);
        ck_assert_uint_eq(count, 1);
        check_chain(t, popped++, 1);
        ck_assert_uint_eq(injector_len(&q), pushed - popped);
    }
    while (popped < pushed) {
        t = wisp__injector_pop_batch(&q, 2, &count);
        size_t want = pushed - popped < 2 ? pushed - popped : 2;
        ck_assert_uint_eq(count, want);
        check_chain(t, popped, want);
        popped += want;
    }
    ck_assert_uint_eq(injector_len(&q), 0);
    wisp__injector_destroy(&q);
    tasks_free();
}
END_TEST

/* ---- 2. chains ------------------------------------------------------------ */

START_TEST(test_push_chain)
{
    struct injector q;
    ck_assert_int_eq(wisp__injector_init(&q), 0);
    tasks_alloc(12);
    /* A prebuilt chain 0..4.  Its last next is junk: push_chain terminates
     * the chain itself (worker.c's overflow path relies on that). */
    for (size_t i = 0; i < 5; i++)
        tasks[i].next = i + 1 < 5 ? &tasks[i + 1] : JUNK;
    ck_assert(wisp__injector_push_chain(&q, &tasks[0], &tasks[4], 5, FROM_OVERFLOW));
    ck_assert_uint_eq(injector_len(&q), 5);

    /* A single push and a one-task chain go behind it. */
    ck_assert(wisp__injector_push(&q, &tasks[5], FROM_OUTSIDE_SPAWN));
    tasks[6].next = JUNK;
    ck_assert(wisp__injector_push_chain(&q, &tasks[6], &tasks[6], 1, FROM_OVERFLOW));
    ck_assert_uint_eq(injector_len(&q), 7);

    /* A second chain appended to a non-empty queue. */
    for (size_t i = 7; i < 12; i++)
        tasks[i].next = i + 1 < 12 ? &tasks[i + 1] : JUNK;
    ck_assert(wisp__injector_push_chain(&q, &tasks[7], &tasks[11], 5, FROM_OVERFLOW));
    ck_assert_uint_eq(injector_len(&q), 12);

    /* Batches that cut across chain boundaries. */
    size_t count = 0;
    struct wisp_task *t = wisp__injector_pop_batch(&q, 4, &count);
    ck_assert_uint_eq(count, 4);
    check_chain(t, 0, 4);
    t = wisp__injector_pop_batch(&q, 4, &count);
    ck_assert_uint_eq(count, 4);
    check_chain(t, 4, 4);
    ck_assert_uint_eq(injector_len(&q), 4);
    t = wisp__injector_pop_batch(&q, 32, &count);
    ck_assert_uint_eq(count, 4);
    check_chain(t, 8, 4);
    ck_assert_uint_eq(injector_len(&q), 0);
    ck_assert_ptr_null(wisp__injector_pop_batch(&q, 1, &count));

    /* A chain into an empty (drained) queue, popped whole. */
    for (size_t i = 0; i < 3; i++)
        tasks[i].next = i + 1 < 3 ? &tasks[i + 1] : JUNK;
    ck_assert(wisp__injector_push_chain(&q, &tasks[0], &tasks[2], 3, FROM_OVERFLOW));
    t = wisp__injector_pop_batch(&q, 3, &count);
    ck_assert_uint_eq(count, 3);
    check_chain(t, 0, 3);
    ck_assert_uint_eq(injector_len(&q), 0);
    wisp__injector_destroy(&q);
    tasks_free();
}
END_TEST

/* ---- 3. close ------------------------------------------------------------- */

START_TEST(test_close_returns_remainder)
{
    struct injector q;
    ck_assert_int_eq(wisp__injector_init(&q), 0);
    tasks_alloc(8);
    for (size_t i = 0; i < 5; i++)
        ck_assert(wisp__injector_push(&q, &tasks[i], FROM_OUTSIDE_SPAWN));
    size_t count = 0;
    struct wisp_task *t = wisp__injector_pop_batch(&q, 2, &count);
    ck_assert_uint_eq(count, 2);
    check_chain(t, 0, 2);

    t = wisp__injector_close(&q);
    check_chain(t, 2, 3);
    ck_assert_uint_eq(injector_len(&q), 0);

    /* Closed: pushes fail, pops find nothing. */
    ck_assert(!wisp__injector_push(&q, &tasks[5], FROM_OUTSIDE_SPAWN));
    tasks[6].next = &tasks[7];
    ck_assert(!wisp__injector_push_chain(&q, &tasks[6], &tasks[7], 2, FROM_OVERFLOW));
    ck_assert_uint_eq(injector_len(&q), 0);
    count = 99;
    ck_assert_ptr_null(wisp__injector_pop_batch(&q, 8, &count));
    ck_assert_uint_eq(count, 0);

    /* Closing again hands back nothing. */
    ck_assert_ptr_null(wisp__injector_close(&q));
    ck_assert(!wisp__injector_push(&q, &tasks[5], FROM_OUTSIDE_SPAWN));
    ck_assert_ptr_null(wisp__injector_pop_batch(&q, 1, &count));
    wisp__injector_destroy(&q);

    /* Closing an empty injector. */
    ck_assert_int_eq(wisp__injector_init(&q), 0);
    ck_assert_ptr_null(wisp__injector_close(&q));
    ck_assert(!wisp__injector_push(&q, &tasks[0], FROM_OUTSIDE_SPAWN));
    ck_assert_ptr_null(wisp__injector_pop_batch(&q, 1, &count));
    ck_assert_uint_eq(injector_len(&q), 0);
    wisp__injector_destroy(&q);
    tasks_free();
}
END_TEST

/* A rejected push must leave its task alone: the injector only touches the
 * tasks it holds (injector.h), and a task it refused is not one of them. */
START_TEST(test_push_after_close_leaves_task)
{
    struct injector q;
    ck_assert_int_eq(wisp__injector_init(&q), 0);
    tasks_alloc(4);
    ck_assert_ptr_null(wisp__injector_close(&q));

    struct wisp_task before[4];
    tasks[0].next = JUNK;
    tasks[1].next = &tasks[2];
    tasks[2].next = &tasks[3];
    tasks[3].next = JUNK;
    memcpy(before, tasks, sizeof(before));

    ck_assert(!wisp__injector_push(&q, &tasks[0], FROM_OUTSIDE_SPAWN));
    ck_assert_msg(tasks[0].next == JUNK, "rejected wisp__injector_push changed next from %p to %p",
                  (void *)JUNK, (void *)tasks[0].next);
    ck_assert(!wisp__injector_push_chain(&q, &tasks[1], &tasks[3], 3, FROM_OVERFLOW));
    ck_assert_msg(tasks[3].next == JUNK,
                  "rejected wisp__injector_push_chain changed last->next from %p to %p", (void *)JUNK,
                  (void *)tasks[3].next);
    ck_assert_msg(memcmp(before, tasks, sizeof(before)) == 0, "rejected pushes changed tasks");
    wisp__injector_destroy(&q);
    tasks_free();
}
END_TEST

/* ---- 4. MPMC stress ------------------------------------------------------- */

enum { PRODUCERS = 4, CONSUMERS = 2 };

struct mpmc {
    struct injector q;
    size_t per_producer;
    _Atomic int *seen;      /* per task: how many times it was consumed */
    _Atomic long consumed;  /* in total */
    _Atomic long consumers_tasks[CONSUMERS];
    struct failure fail;
};

struct producer_arg {
    struct mpmc *m;
    size_t id;
};

static void *producer(void *arg)
{
    struct producer_arg *pa = arg;
    struct mpmc *m = pa->m;
    size_t base = pa->id * m->per_producer, end = base + m->per_producer;
    uint64_t rng = 0x9e3779b97f4a7c15u * (pa->id + 1);
    for (size_t i = base; i < end;) {
        /* Mostly single pushes, sometimes a short chain. */
        size_t len = rng_next(&rng) % 8 == 0 ? 1 + (size_t)(rng_next(&rng) % 4) : 1;
        if (len > end - i)
            len = end - i;
        bool ok;
        if (len == 1) {
            ok = wisp__injector_push(&m->q, &tasks[i], FROM_OUTSIDE_SPAWN);
        } else {
            for (size_t k = i; k + 1 < i + len; k++)
                tasks[k].next = &tasks[k + 1];
            ok = wisp__injector_push_chain(&m->q, &tasks[i], &tasks[i + len - 1], len, FROM_OVERFLOW);
        }
        if (!ok) {
            fail_later(&m->fail, "producer %zu: push refused by an open injector", pa->id);
            return NULL;
        }
        i += len;
    }
    return NULL;
}

struct consumer_arg {
    struct mpmc *m;
    int id;
};

static void *consumer(void *arg)
{
    struct consumer_arg *ca = arg;
    struct mpmc *m = ca->m;
    long total = (long)(PRODUCERS * m->per_producer);
    long last[PRODUCERS]; /* per producer: the last index this consumer saw */
    for (int p = 0; p < PRODUCERS; p++)
        last[p] = -1;
    uint64_t rng = 0x2545f4914f6cdd1du + (uint64_t)ca->id;
    long mine = 0;
    /* Stop early on any failure, so that the others do not wait forever for
     * tasks that will never come. */
    while (atomic_load_explicit(&m->consumed, memory_order_relaxed) < total &&
           atomic_load_explicit(&m->fail.count, memory_order_relaxed) == 0) {
        size_t max = 1 + (size_t)(rng_next(&rng) % 32), count = 99;
        struct wisp_task *t = wisp__injector_pop_batch(&m->q, max, &count);
        if (!t) {
            if (count != 0)
                fail_later(&m->fail, "empty pop set count %zu", count);
            sched_yield();
            continue;
        }
        if (count < 1 || count > max)
            fail_later(&m->fail, "pop_batch(%zu) returned count %zu", max, count);
        size_t n = 0;
        for (; t && n <= max; t = t->next, n++) {
            long i = task_index(t);
            if (i < 0) {
                fail_later(&m->fail, "consumer %d got a pointer %p that is no task", ca->id,
                           (void *)t);
                return NULL;
            }
            if (atomic_fetch_add_explicit(&m->seen[i], 1, memory_order_relaxed) != 0)
                fail_later(&m->fail, "task %ld consumed twice", i);
            size_t p = (size_t)i / m->per_producer;
            if (i <= last[p])
                fail_later(&m->fail, "consumer %d: producer %zu's task %ld after %ld", ca->id, p, i,
                           last[p]);
            last[p] = i;
        }
        if (n != count)
            fail_later(&m->fail, "pop_batch(%zu): count %zu but chain of %s%zu", max, count,
                       t ? "more than " : "", n);
        if (t)
            return NULL; /* an unterminated chain: stop before looping */
        mine += (long)n;
        atomic_fetch_add_explicit(&m->consumed, (long)n, memory_order_relaxed);
    }
    atomic_store(&m->consumers_tasks[ca->id], mine);
    return NULL;
}

START_TEST(test_mpmc_stress)
{
    struct mpmc *m = calloc(1, sizeof(*m));
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(wisp__injector_init(&m->q), 0);
    m->per_producer = (size_t)stress(200000);
    size_t total = PRODUCERS * m->per_producer;
    tasks_alloc(total);
    m->seen = calloc(total, sizeof(*m->seen));
    ck_assert_ptr_nonnull(m->seen);

    pthread_t pth[PRODUCERS], cth[CONSUMERS];
    struct producer_arg pa[PRODUCERS];
    struct consumer_arg ca[CONSUMERS];
    for (int i = 0; i < CONSUMERS; i++) {
        ca[i] = (struct consumer_arg){ m, i };
        ck_assert_int_eq(pthread_create(&cth[i], NULL, consumer, &ca[i]), 0);
    }
    for (int i = 0; i < PRODUCERS; i++) {
        pa[i] = (struct producer_arg){ m, (size_t)i };
        ck_assert_int_eq(pthread_create(&pth[i], NULL, producer, &pa[i]), 0);
    }
    for (int i = 0; i < PRODUCERS; i++)
        ck_assert_int_eq(pthread_join(pth[i], NULL), 0);
    for (int i = 0; i < CONSUMERS; i++)
        ck_assert_int_eq(pthread_join(cth[i], NULL), 0);

    int nfail = atomic_load(&m->fail.count);
    ck_assert_msg(nfail == 0, "%d failure(s) in worker threads, first: %s", nfail, m->fail.msg);
    long consumed = atomic_load(&m->consumed), by_consumers = 0;
    for (int i = 0; i < CONSUMERS; i++)
        by_consumers += atomic_load(&m->consumers_tasks[i]);
    ck_assert_int_eq(consumed, (long)total);
    ck_assert_int_eq(by_consumers, (long)total);
    for (size_t i = 0; i < total; i++) {
        int c = atomic_load_explicit(&m->seen[i], memory_order_relaxed);
        REQUIRE_MSG(c == 1, "task %zu consumed %d times", i, c);
    }
    ck_assert_uint_eq(injector_len(&m->q), 0);
    size_t count = 99;
    ck_assert_ptr_null(wisp__injector_pop_batch(&m->q, 32, &count));
    ck_assert_uint_eq(count, 0);
    if (getenv("WISP_TEST_VERBOSE"))
        fprintf(stderr, "mpmc: %zu tasks, consumer 0 took %ld, consumer 1 took %ld\n", total,
                atomic_load(&m->consumers_tasks[0]), atomic_load(&m->consumers_tasks[1]));
    free(m->seen);
    tasks_free();
    wisp__injector_destroy(&m->q);
    free(m);
}
END_TEST

static Suite *injector_suite(void)
{
    Suite *s = suite_create("injector");
    TCase *tc = tcase_create("basic");
    tcase_set_timeout(tc, TEST_TIMEOUT);
    tcase_add_test(tc, test_empty);
    tcase_add_test(tc, test_fifo_batches);
    tcase_add_test(tc, test_push_chain);
    tcase_add_test(tc, test_close_returns_remainder);
    tcase_add_test(tc, test_push_after_close_leaves_task);
    suite_add_tcase(s, tc);

    tc = tcase_create("stress");
    tcase_set_timeout(tc, TEST_TIMEOUT);
    tcase_add_test(tc, test_mpmc_stress);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(injector_suite());
}
