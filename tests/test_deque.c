/* test_deque.c - the Chase-Lev work-stealing deque (lib/deque.c) on its own:
 * argument checks, LIFO pop / FIFO steal, ring wraparound on a tiny deque
 * (checked against a reference model), full pushes and wisp__deque_take_half,
 * a multi-thief stampede with overflow where every item must be taken
 * exactly once, and the owner's pop racing thieves for the last element.
 *
 * The deque never dereferences its tasks, so items here are addresses of
 * "tokens" in one array, aligned like a task so that the pointer conversion
 * is valid; an item's index is its offset in that array. */
#include "helpers.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "deque.h"
#include "task.h"

/* ---- items ---------------------------------------------------------------- */

struct token {
    _Alignas(struct wisp_task) unsigned char byte;
};

static struct token *tokens;
static size_t ntokens;

static void tokens_alloc(size_t n)
{
    tokens = calloc(n, sizeof(*tokens));
    ck_assert_ptr_nonnull(tokens);
    ntokens = n;
}

static void tokens_free(void)
{
    free(tokens);
    tokens = NULL;
    ntokens = 0;
}

static struct wisp_task *tok(size_t i)
{
    return (struct wisp_task *)(void *)&tokens[i];
}

/* The index of an item, or -1 if t is not one of ours. */
static long tok_index(const struct wisp_task *t)
{
    uintptr_t p = (uintptr_t)t, base = (uintptr_t)tokens;
    if (p < base || (p - base) % sizeof(struct token) != 0)
        return -1;
    size_t i = (p - base) / sizeof(struct token);
    return i < ntokens ? (long)i : -1;
}

/* Check's ck_assert records its location on every call (a write to Check's
 * pipe, one system call per check); the loops below use these instead,
 * which only call into Check when they fail. */
#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg("Assertion '%s' failed", #cond);                                          \
    } while (0)
#define REQUIRE_MSG(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg(__VA_ARGS__);                                                             \
    } while (0)
/* t must be item number want. */
#define REQUIRE_ITEM(t, want)                                                                      \
    do {                                                                                           \
        const struct wisp_task *t_ = (t);                                                          \
        size_t w_ = (want);                                                                        \
        if (t_ != tok(w_))                                                                         \
            ck_abort_msg("%s: got item %ld, want %zu", #t, tok_index(t_), w_);                     \
    } while (0)

static void start_thread(pthread_t *th, void *(*fn)(void *), void *arg)
{
    int err = pthread_create(th, NULL, fn, arg);
    ck_assert_msg(err == 0, "pthread_create: %d", err);
}

/* ---- 1. basics ------------------------------------------------------------ */

START_TEST(test_init_rejects_bad_capacity)
{
    struct deque d;
    ck_assert_int_eq(wisp__deque_init(&d, 0), -EINVAL);
    ck_assert_int_eq(wisp__deque_init(&d, 1), -EINVAL);
    ck_assert_int_eq(wisp__deque_init(&d, 3), -EINVAL);
    ck_assert_int_eq(wisp__deque_init(&d, 6), -EINVAL);
    ck_assert_int_eq(wisp__deque_init(&d, 2), 0);
    ck_assert_uint_eq(wisp__deque_capacity(&d), 2);
    wisp__deque_destroy(&d);
    ck_assert_int_eq(wisp__deque_init(&d, 1024), 0);
    ck_assert_uint_eq(wisp__deque_capacity(&d), 1024);
    wisp__deque_destroy(&d);
}
END_TEST

START_TEST(test_empty)
{
    struct deque d;
    ck_assert_int_eq(wisp__deque_init(&d, 8), 0);
    struct wisp_task *out = NULL;
    ck_assert_uint_eq(wisp__deque_len(&d), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_ptr_null(wisp__deque_pop(&d));
        ck_assert_int_eq(wisp__deque_steal(&d, &out), STEAL_EMPTY);
        ck_assert_uint_eq(wisp__deque_len(&d), 0);
    }
    /* A pop on empty must restore bottom: the deque still works. */
    tokens_alloc(2);
    ck_assert(wisp__deque_push(&d, tok(0)));
    ck_assert_uint_eq(wisp__deque_len(&d), 1);
    ck_assert_ptr_eq(wisp__deque_pop(&d), tok(0));
    ck_assert_ptr_null(wisp__deque_pop(&d));
    ck_assert(wisp__deque_push(&d, tok(1)));
    ck_assert_int_eq(wisp__deque_steal(&d, &out), STEAL_OK);
    ck_assert_ptr_eq(out, tok(1));
    ck_assert_int_eq(wisp__deque_steal(&d, &out), STEAL_EMPTY);
    ck_assert_ptr_null(wisp__deque_pop(&d));
    ck_assert_uint_eq(wisp__deque_len(&d), 0);
    wisp__deque_destroy(&d);
    tokens_free();
}
END_TEST

START_TEST(test_pop_lifo_steal_fifo)
{
    struct deque d;
    ck_assert_int_eq(wisp__deque_init(&d, 16), 0);
    tokens_alloc(10);
    for (size_t i = 0; i < 10; i++) {
        ck_assert(wisp__deque_push(&d, tok(i)));
        ck_assert_uint_eq(wisp__deque_len(&d), i + 1);
    }
    /* The owner pops the newest first. */
    ck_assert_ptr_eq(wisp__deque_pop(&d), tok(9));
    ck_assert_ptr_eq(wisp__deque_pop(&d), tok(8));
    ck_assert_uint_eq(wisp__deque_len(&d), 8);
    /* Thieves take the oldest first. */
    struct wisp_task *out = NULL;
    for (size_t i = 0; i < 3; i++) {
        ck_assert_int_eq(wisp__deque_steal(&d, &out), STEAL_OK);
        ck_assert_ptr_eq(out, tok(i));
    }
    ck_assert_uint_eq(wisp__deque_len(&d), 5);
    for (size_t i = 7; i >= 3; i--)
        ck_assert_ptr_eq(wisp__deque_pop(&d), tok(i));
    ck_assert_uint_eq(wisp__deque_len(&d), 0);
    ck_assert_ptr_null(wisp__deque_pop(&d));
    ck_assert_int_eq(wisp__deque_steal(&d, &out), STEAL_EMPTY);
    wisp__deque_destroy(&d);
    tokens_free();
}
END_TEST

/* ---- 2. wraparound, full pushes, take_half -------------------------------- */

/* Fixed cycles on a capacity-4 ring: fill it, a fifth push fails, then take
 * from both ends alternately.  Each cycle moves the indices on by 4. */
START_TEST(test_wraparound_cycles)
{
    enum { ROUNDS = 10000 };
    struct deque d;
    ck_assert_int_eq(wisp__deque_init(&d, 4), 0);
    tokens_alloc((size_t)ROUNDS * 4 + 1);
    unsigned char *seen = calloc(ntokens, 1);
    ck_assert_ptr_nonnull(seen);
    struct wisp_task *out = NULL;
    size_t next = 0;
    for (int r = 0; r < ROUNDS; r++) {
        size_t a = next;
        for (int k = 0; k < 4; k++)
            REQUIRE(wisp__deque_push(&d, tok(next++)));
        REQUIRE(wisp__deque_len(&d) == 4);
        REQUIRE(!wisp__deque_push(&d, tok(ntokens - 1))); /* full */
        REQUIRE(wisp__deque_len(&d) == 4);
        REQUIRE(wisp__deque_steal(&d, &out) == STEAL_OK);
        REQUIRE_ITEM(out, a);
        seen[a]++;
        REQUIRE_ITEM(wisp__deque_pop(&d), a + 3);
        seen[a + 3]++;
        REQUIRE(wisp__deque_steal(&d, &out) == STEAL_OK);
        REQUIRE_ITEM(out, a + 1);
        seen[a + 1]++;
        REQUIRE_ITEM(wisp__deque_pop(&d), a + 2);
        seen[a + 2]++;
        REQUIRE(wisp__deque_len(&d) == 0);
        REQUIRE(wisp__deque_pop(&d) == NULL);
        REQUIRE(wisp__deque_steal(&d, &out) == STEAL_EMPTY);
    }
    /* The indices really went round the ring many times (top moves on by
     * two steals and the last pop each round). */
    int64_t top = atomic_load(&d.top);
    REQUIRE(top >= (int64_t)ROUNDS * 2);
    for (size_t i = 0; i < next; i++)
        REQUIRE_MSG(seen[i] == 1, "item %zu taken %d times", i, seen[i]);
    REQUIRE(seen[ntokens - 1] == 0);
    free(seen);
    wisp__deque_destroy(&d);
    tokens_free();
}
END_TEST

START_TEST(test_full_and_take_half)
{
    struct deque d;
    ck_assert_int_eq(wisp__deque_init(&d, 4), 0);
    tokens_alloc(16);
    struct wisp_task *out[2] = { NULL, NULL }, *s = NULL;
    /* Move the indices off zero first, so the half straddles the ring end. */
    for (size_t i = 10; i < 13; i++)
        ck_assert(wisp__deque_push(&d, tok(i)));
    for (size_t i = 10; i < 13; i++) {
        ck_assert_int_eq(wisp__deque_steal(&d, &s), STEAL_OK);
        ck_assert_ptr_eq(s, tok(i));
    }
    for (size_t i = 0; i < 4; i++)
        ck_assert(wisp__deque_push(&d, tok(i)));
    ck_assert(!wisp__deque_push(&d, tok(4)));
    ck_assert(!wisp__deque_push(&d, tok(4)));
    ck_assert_uint_eq(wisp__deque_len(&d), 4);

    ck_assert_uint_eq(wisp__deque_take_half(&d, out), 2);
    ck_assert_ptr_eq(out[0], tok(0));
    ck_assert_ptr_eq(out[1], tok(1));
    ck_assert_uint_eq(wisp__deque_len(&d), 2);

    /* Room again: two pushes fit, the third does not. */
    ck_assert(wisp__deque_push(&d, tok(4)));
    ck_assert(wisp__deque_push(&d, tok(5)));
    ck_assert(!wisp__deque_push(&d, tok(6)));
    ck_assert_uint_eq(wisp__deque_len(&d), 4);

    /* Again, on the refilled ring. */
    ck_assert_uint_eq(wisp__deque_take_half(&d, out), 2);
    ck_assert_ptr_eq(out[0], tok(2));
    ck_assert_ptr_eq(out[1], tok(3));
    ck_assert(wisp__deque_push(&d, tok(6)));

    /* What is left comes out in order from both ends. */
    ck_assert_int_eq(wisp__deque_steal(&d, &s), STEAL_OK);
    ck_assert_ptr_eq(s, tok(4));
    ck_assert_ptr_eq(wisp__deque_pop(&d), tok(6));
    ck_assert_ptr_eq(wisp__deque_pop(&d), tok(5));
    ck_assert_ptr_null(wisp__deque_pop(&d));
    ck_assert_int_eq(wisp__deque_steal(&d, &s), STEAL_EMPTY);
    wisp__deque_destroy(&d);

    /* Capacity 2: half is one item. */
    ck_assert_int_eq(wisp__deque_init(&d, 2), 0);
    ck_assert(wisp__deque_push(&d, tok(7)));
    ck_assert(wisp__deque_push(&d, tok(8)));
    ck_assert(!wisp__deque_push(&d, tok(9)));
    ck_assert_uint_eq(wisp__deque_take_half(&d, out), 1);
    ck_assert_ptr_eq(out[0], tok(7));
    ck_assert(wisp__deque_push(&d, tok(9)));
    ck_assert_ptr_eq(wisp__deque_pop(&d), tok(9));
    ck_assert_ptr_eq(wisp__deque_pop(&d), tok(8));
    ck_assert_ptr_null(wisp__deque_pop(&d));
    wisp__deque_destroy(&d);
    tokens_free();
}
END_TEST

/* Random single-threaded operations on a capacity-4 deque, each checked
 * against a reference model (a ring of item indices). */
START_TEST(test_wraparound_model)
{
    enum { OPS = 200000, CAP = 4 };
    struct deque d;
    ck_assert_int_eq(wisp__deque_init(&d, CAP), 0);
    tokens_alloc(OPS);
    unsigned char *taken = calloc(OPS, 1);
    ck_assert_ptr_nonnull(taken);
    size_t model[CAP], head = 0, count = 0, next = 0;
    uint64_t rng = 0x9e3779b97f4a7c15u;
    size_t fulls = 0, halves = 0;
    for (int op = 0; op < OPS; op++) {
        unsigned kind = (unsigned)(rng_next(&rng) % 5);
        if (kind <= 1 && next < OPS) { /* push (more often, so it fills) */
            if (!wisp__deque_push(&d, tok(next))) {
                REQUIRE(count == CAP);
                fulls++;
                struct wisp_task *half[CAP / 2];
                REQUIRE(wisp__deque_take_half(&d, half) == CAP / 2);
                for (size_t i = 0; i < CAP / 2; i++) {
                    REQUIRE_ITEM(half[i], model[head]);
                    taken[model[head]]++;
                    head = (head + 1) % CAP;
                    count--;
                }
                halves++;
                REQUIRE(wisp__deque_push(&d, tok(next)));
            } else {
                REQUIRE(count < CAP);
            }
            model[(head + count) % CAP] = next++;
            count++;
        } else if (kind == 2 || kind == 3) { /* pop: newest */
            struct wisp_task *t = wisp__deque_pop(&d);
            if (count == 0) {
                REQUIRE(t == NULL);
            } else {
                size_t want = model[(head + count - 1) % CAP];
                REQUIRE_ITEM(t, want);
                taken[want]++;
                count--;
            }
        } else { /* steal: oldest */
            struct wisp_task *t = NULL;
            enum steal_result r = wisp__deque_steal(&d, &t);
            if (count == 0) {
                REQUIRE(r == STEAL_EMPTY);
            } else {
                REQUIRE(r == STEAL_OK); /* no other thief: no retry */
                REQUIRE_ITEM(t, model[head]);
                taken[model[head]]++;
                head = (head + 1) % CAP;
                count--;
            }
        }
        REQUIRE(wisp__deque_len(&d) == count);
    }
    /* Drain what is left. */
    while (count) {
        struct wisp_task *t = wisp__deque_pop(&d);
        size_t want = model[(head + count - 1) % CAP];
        REQUIRE_ITEM(t, want);
        taken[want]++;
        count--;
    }
    REQUIRE(wisp__deque_pop(&d) == NULL);
    REQUIRE_MSG(fulls > 100 && halves == fulls, "fulls %zu halves %zu", fulls, halves);
    int64_t top = atomic_load(&d.top);
    REQUIRE(top >= 10000);
    for (size_t i = 0; i < next; i++)
        REQUIRE_MSG(taken[i] == 1, "item %zu taken %d times", i, taken[i]);
    free(taken);
    wisp__deque_destroy(&d);
    tokens_free();
}
END_TEST

/* ---- 3. multi-thief stampede ---------------------------------------------- */

enum { STAMPEDE_THIEVES = 3 };

struct stampede {
    struct deque d;
    _Atomic int *taken; /* per item: how many times it was taken */
    _Atomic int done;   /* the owner has pushed everything */
    _Atomic long stolen;
    struct failure fail;
};

static void take(struct stampede *s, const struct wisp_task *t, const char *who)
{
    long i = tok_index(t);
    if (i < 0) {
        fail_later(&s->fail, "%s got a pointer %p that is no item", who, (const void *)t);
        return;
    }
    if (atomic_fetch_add_explicit(&s->taken[i], 1, memory_order_relaxed) != 0)
        fail_later(&s->fail, "%s took item %ld a second time", who, i);
}

static void *stampede_thief(void *arg)
{
    struct stampede *s = arg;
    long last = -1, mine = 0;
    for (;;) {
        /* acquire, read before the steal: if the owner had finished, an
         * empty deque stays empty. */
        int done = atomic_load_explicit(&s->done, memory_order_acquire);
        struct wisp_task *t = NULL;
        enum steal_result r = wisp__deque_steal(&s->d, &t);
        if (r == STEAL_OK) {
            take(s, t, "thief");
            /* Thieves take in push order: one thief's items only grow. */
            long i = tok_index(t);
            if (i >= 0 && i <= last)
                fail_later(&s->fail, "thief stole %ld after %ld (not FIFO)", i, last);
            last = i;
            mine++;
        } else if (r == STEAL_RETRY) {
            cpu_relax();
        } else if (done) {
            break;
        } else {
            sched_yield();
        }
    }
    atomic_fetch_add(&s->stolen, mine);
    return NULL;
}

static void stampede_run(size_t capacity)
{
    size_t n = (size_t)stress(1000000);
    struct stampede *s = calloc(1, sizeof(*s));
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(wisp__deque_init(&s->d, capacity), 0);
    tokens_alloc(n);
    s->taken = calloc(n, sizeof(*s->taken));
    ck_assert_ptr_nonnull(s->taken);
    struct wisp_task **half = calloc(capacity / 2, sizeof(*half));
    ck_assert_ptr_nonnull(half);

    pthread_t th[STAMPEDE_THIEVES];
    for (int i = 0; i < STAMPEDE_THIEVES; i++)
        start_thread(&th[i], stampede_thief, s);

    /* This thread is the owner. */
    long popped = 0, overflowed = 0, fulls = 0;
    for (size_t i = 0; i < n; i++) {
        if (!wisp__deque_push(&s->d, tok(i))) {
            fulls++;
            size_t got = wisp__deque_take_half(&s->d, half);
            REQUIRE(got == 0 || got == capacity / 2);
            for (size_t k = 0; k < got; k++) {
                take(s, half[k], "take_half");
                long a = tok_index(half[k]), b = k ? tok_index(half[k - 1]) : -1;
                REQUIRE_MSG(a > b, "take_half out of order: %ld after %ld", a, b);
            }
            overflowed += (long)got;
            /* Either we took half or a thief made room. */
            REQUIRE(wisp__deque_push(&s->d, tok(i)));
        }
        if (i % 3 == 2) {
            /* The newest item, or nothing if a thief took it as the last. */
            struct wisp_task *t = wisp__deque_pop(&s->d);
            if (t) {
                REQUIRE_ITEM(t, i);
                take(s, t, "owner");
                popped++;
            } else {
                REQUIRE(wisp__deque_len(&s->d) == 0);
            }
        }
    }
    /* release: pairs with the thieves' acquire of done. */
    atomic_store_explicit(&s->done, 1, memory_order_release);
    /* Drain from the bottom too, racing the thieves; LIFO order. */
    long prev = (long)n;
    for (struct wisp_task *t; (t = wisp__deque_pop(&s->d)) != NULL;) {
        long i = tok_index(t);
        REQUIRE_MSG(i >= 0 && i < prev, "owner drained %ld after %ld", i, prev);
        prev = i;
        take(s, t, "owner");
        popped++;
    }
    for (int i = 0; i < STAMPEDE_THIEVES; i++)
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);

    check_no_failure(&s->fail);
    REQUIRE(wisp__deque_len(&s->d) == 0);
    long stolen = atomic_load(&s->stolen);
    REQUIRE_MSG(popped + overflowed + stolen == (long)n,
                  "popped %ld + overflowed %ld + stolen %ld != %zu", popped, overflowed, stolen, n);
    for (size_t i = 0; i < n; i++) {
        int c = atomic_load_explicit(&s->taken[i], memory_order_relaxed);
        REQUIRE_MSG(c == 1, "item %zu taken %d times", i, c);
    }
    if (getenv("WISP_TEST_VERBOSE"))
        fprintf(stderr, "stampede cap %zu: n %zu popped %ld stolen %ld overflowed %ld (fulls %ld)\n",
                capacity, n, popped, stolen, overflowed, fulls);

    free(half);
    free(s->taken);
    tokens_free();
    wisp__deque_destroy(&s->d);
    free(s);
}

START_TEST(test_stampede_cap64)
{
    stampede_run(64);
}
END_TEST

START_TEST(test_stampede_cap4)
{
    stampede_run(4);
}
END_TEST

/* ---- 4. owner pop vs thieves for the last element ------------------------- */

enum { LAST_THIEVES = 2 };

struct last_race {
    struct deque d;
    _Atomic int *taken;
    _Atomic long round;   /* item round-1 is in the deque; -1: stop */
    _Atomic long arrived; /* thieves finished with their round */
    _Atomic long thief_wins;
    struct failure fail;
};

static void *last_thief(void *arg)
{
    struct last_race *s = arg;
    long seen = 0;
    for (;;) {
        long r;
        unsigned spins = 0;
        /* acquire: pairs with the owner's release store of round. */
        while ((r = atomic_load_explicit(&s->round, memory_order_acquire)) == seen)
            if (++spins % 64 == 0)
                sched_yield();
            else
                cpu_relax();
        if (r < 0)
            break;
        seen = r;
        struct wisp_task *t = NULL;
        enum steal_result res;
        while ((res = wisp__deque_steal(&s->d, &t)) == STEAL_RETRY)
            cpu_relax();
        if (res == STEAL_OK) {
            long i = tok_index(t);
            if (i != r - 1)
                fail_later(&s->fail, "round %ld: thief stole item %ld", r - 1, i);
            else if (atomic_fetch_add(&s->taken[i], 1) != 0)
                fail_later(&s->fail, "round %ld: item taken twice", i);
            atomic_fetch_add(&s->thief_wins, 1);
        }
        /* release: our take happens before the owner checks the round. */
        atomic_fetch_add_explicit(&s->arrived, 1, memory_order_release);
    }
    return NULL;
}

START_TEST(test_pop_races_steal_for_last)
{
    long rounds = stress(100000);
    struct last_race *s = calloc(1, sizeof(*s));
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(wisp__deque_init(&s->d, 4), 0);
    tokens_alloc((size_t)rounds);
    s->taken = calloc((size_t)rounds, sizeof(*s->taken));
    ck_assert_ptr_nonnull(s->taken);
    pthread_t th[LAST_THIEVES];
    for (int i = 0; i < LAST_THIEVES; i++)
        start_thread(&th[i], last_thief, s);

    uint64_t rng = 0x2545f4914f6cdd1du;
    long owner_wins = 0;
    /* Every round needs all three threads on a CPU: on a loaded machine
     * that is slow, so after the first 1000 rounds a time budget may end the
     * test early (each round still checks exactly-once). */
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    long r;
    for (r = 0; r < rounds; r++) {
        if (r >= 1000 && r % 256 == 0) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (now.tv_sec - start.tv_sec >= 5)
                break;
        }
        REQUIRE(wisp__deque_push(&s->d, tok((size_t)r)));
        /* release: the thieves may now steal item r. */
        atomic_store_explicit(&s->round, r + 1, memory_order_release);
        /* Jitter (not a timing assertion): vary who gets there first. */
        for (unsigned k = (unsigned)(rng_next(&rng) % 256); k; k--)
            cpu_relax();
        struct wisp_task *t = wisp__deque_pop(&s->d);
        if (t) {
            REQUIRE_ITEM(t, (size_t)r);
            REQUIRE(atomic_fetch_add(&s->taken[r], 1) == 0);
            owner_wins++;
        }
        /* acquire: pairs with the thieves' release increments. */
        long want = (long)LAST_THIEVES * (r + 1);
        unsigned spins = 0;
        while (atomic_load_explicit(&s->arrived, memory_order_acquire) != want)
            if (++spins % 64 == 0)
                sched_yield();
            else
                cpu_relax();
        int c = atomic_load(&s->taken[r]);
        REQUIRE_MSG(c == 1, "round %ld: the last item was taken %d times", r, c);
        REQUIRE(wisp__deque_len(&s->d) == 0);
        REQUIRE(wisp__deque_pop(&s->d) == NULL);
    }
    atomic_store_explicit(&s->round, -1, memory_order_release);
    for (int i = 0; i < LAST_THIEVES; i++)
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    check_no_failure(&s->fail);
    long thief_wins = atomic_load(&s->thief_wins);
    ck_assert_int_eq(owner_wins + thief_wins, r);
    if (getenv("WISP_TEST_VERBOSE"))
        fprintf(stderr, "last-element race: %ld rounds, owner %ld, thieves %ld\n", r,
                owner_wins, thief_wins);
    free(s->taken);
    tokens_free();
    wisp__deque_destroy(&s->d);
    free(s);
}
END_TEST

static Suite *deque_suite(void)
{
    Suite *s = suite_create("deque");
    TCase *tc = tcase_create("basic");
    tcase_set_timeout(tc, TEST_TIMEOUT);
    tcase_add_test(tc, test_init_rejects_bad_capacity);
    tcase_add_test(tc, test_empty);
    tcase_add_test(tc, test_pop_lifo_steal_fifo);
    tcase_add_test(tc, test_wraparound_cycles);
    tcase_add_test(tc, test_full_and_take_half);
    tcase_add_test(tc, test_wraparound_model);
    suite_add_tcase(s, tc);

    tc = tcase_create("stress");
    tcase_set_timeout(tc, TEST_TIMEOUT);
    tcase_add_test(tc, test_stampede_cap64);
    tcase_add_test(tc, test_stampede_cap4);
    tcase_add_test(tc, test_pop_races_steal_for_last);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(deque_suite());
}
